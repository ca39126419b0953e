-- Cheaper ingest (each change measured in docs/performance.md, "Relay ingest").
--
-- The primary key leads with the time, so it also serves the newest-first action listing that
-- actions_tenant_ts existed for (a btree is read backwards as easily as forwards): one index
-- fewer to maintain per stored action. Duplicate detection needs all three columns either way.
ALTER TABLE actions DROP CONSTRAINT actions_pkey;
ALTER TABLE actions ADD PRIMARY KEY (tenant_id, ts, event_id);
DROP INDEX actions_tenant_ts;

-- Session ids are opaque strings: byte order is all anyone needs, and "C" comparisons skip the
-- locale's collation on every index insert and lookup.
ALTER TABLE actions ALTER COLUMN session_id TYPE text COLLATE "C";
ALTER TABLE alerts ALTER COLUMN session_id TYPE text COLLATE "C";
ALTER TABLE sessions ALTER COLUMN session_id TYPE text COLLATE "C";

-- Each action's (session, time) and (device, time) are all but unique, so btree deduplication
-- never finds anything to merge, yet tries on every full leaf page (~3 % of Postgres time under
-- ingest). Partitions created later copy these settings.
DROP INDEX actions_tenant_session;
DROP INDEX actions_tenant_device;
CREATE INDEX actions_tenant_session ON actions (tenant_id, session_id, ts DESC)
    WITH (deduplicate_items = off);
CREATE INDEX actions_tenant_device ON actions (tenant_id, device_id, ts DESC)
    WITH (deduplicate_items = off);
