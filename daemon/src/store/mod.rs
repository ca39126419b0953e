//! Local storage in SQLite (WAL): the outbox of actions and the audit chain, written together
//! in one transaction per batch so an answered hook call is always on disk.

pub mod audit;
pub mod mcp_pins;
pub mod outbox;

use std::path::Path;

use anyhow::Context;
use quint_policy::{Decision, Event};
use rusqlite::{params, Connection, OpenFlags};

use crate::config::Config;
use audit::{record_hash, sha256, AuditSigner, ChainHead};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS actions (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    timestamp    TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    platform     TEXT NOT NULL,
    action_type  TEXT NOT NULL,
    decision     TEXT NOT NULL,
    risk_score   INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    -- 0 pending upload, 1 acknowledged by the relay, 2 rejected by the relay
    upload_state INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS actions_pending ON actions (upload_state, seq);
CREATE INDEX IF NOT EXISTS actions_session ON actions (session_id, seq);
CREATE INDEX IF NOT EXISTS actions_decision ON actions (decision, seq);
-- The disk budget's oldest allow decisions, acknowledged or pending, without a scan.
CREATE INDEX IF NOT EXISTS actions_budget ON actions (decision, upload_state, seq);

-- Why the relay refused an event (upload_state 2); such events are not sent again.
CREATE TABLE IF NOT EXISTS upload_rejections (
    seq         INTEGER PRIMARY KEY,
    reason      TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);

-- Actions the disk budget removed (allow decisions only): `uploaded` 1 had reached the relay
-- (local history pruned), 0 had not (dropped: counted in status and reported to the relay).
-- `quintctl audit verify` accounts for these instead of reporting them deleted.
CREATE TABLE IF NOT EXISTS budget_removals (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL,
    uploaded   INTEGER NOT NULL,
    removed_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    seq            INTEGER PRIMARY KEY,
    event_id       TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    signature TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    platform   TEXT NOT NULL,
    agent_pid  INTEGER,
    cwd        TEXT,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    actions    INTEGER NOT NULL DEFAULT 0,
    denials    INTEGER NOT NULL DEFAULT 0
);
";

/// Waits out a lock held by another connection in 200 µs steps, for up to 5 s. SQLite's own
/// busy timeout sleeps in steps that grow to 100 ms, so a lock held for a millisecond by the
/// WAL checkpointer would cost a waiting hook call over 100 ms.
fn retry_briefly(attempt: i32) -> bool {
    if attempt >= 25_000 {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_micros(200));
    true
}

/// Opens (creating if needed) the database with WAL and the schema in place.
pub fn open_database(path: &Path, synchronous: &str) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    // Checkpoints (and their fsync) run on a background connection, never inside a commit
    // that a hook is waiting for: see `run_wal_checkpointer`.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // Once a checkpoint has copied everything, the WAL is cut back to this size.
    conn.pragma_update(None, "journal_size_limit", 4 << 20)?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Appends touch the right edge of each table and index: 512 KB of cache (the default is
    // 2 MB) keeps quintd small at no measured cost to the writer.
    conn.pragma_update(None, "cache_size", -512)?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.busy_handler(Some(retry_briefly))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "{} has schema version {version}, newer than this quintd understands ({SCHEMA_VERSION}); upgrade quintd",
            path.display()
        );
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(mcp_pins::SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(conn)
}

/// Copies the WAL back into the database every `interval` on its own connection, so the
/// writer's commits stay free of checkpoint I/O. Returns when `stop` is set.
pub fn run_wal_checkpointer(
    path: &Path,
    interval: std::time::Duration,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the database for WAL checkpoints");
            return;
        }
    };
    let _ = conn.busy_handler(Some(retry_briefly));
    // It only copies pages through: a small cache (the default is 2 MB) keeps quintd small.
    let _ = conn.pragma_update(None, "cache_size", -256);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
        // PASSIVE never waits on the writer; TRUNCATE now and then keeps the WAL file small.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        }) {
            Ok((busy, frames, copied)) => tracing::trace!(busy, frames, copied, "WAL checkpoint"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// A read-only connection for queries that must not block the writer.
pub fn open_reader(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", path.display()))?;
    conn.busy_handler(Some(retry_briefly))?;
    conn.pragma_update(None, "cache_size", -512)?;
    Ok(conn)
}

/// The single writer: appends actions and their audit records.
pub struct Recorder {
    conn: Connection,
    head: ChainHead,
    signer: AuditSigner,
    since_checkpoint: u64,
    checkpoint_every: u64,
}

/// Rows removed per `enforce_budget` call at most, and per size check within it.
const BUDGET_STEP: u64 = 2000;
const BUDGET_CHUNK: u64 = 50;

/// Bytes the database uses (pages in use, not the free list), as this connection sees it.
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| {
        conn.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
    };
    Ok(pragma("page_count")?.saturating_sub(pragma("freelist_count")?) * pragma("page_size")?)
}

/// What one `enforce_budget` call removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BudgetOutcome {
    /// Allow decisions the relay already had.
    pub pruned: u64,
    /// Allow decisions the relay never got.
    pub dropped: u64,
}

/// What happened to one event handed to `append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Recorded(u64),
    /// Already stored (a spool file ingested twice, a retried request): nothing written.
    Duplicate,
}

impl Recorder {
    pub fn open(config: &Config) -> anyhow::Result<Recorder> {
        let conn = open_database(&config.database_path(), &config.storage.synchronous)?;
        let signer =
            AuditSigner::load_or_create(&config.audit_key_path(), &config.audit_public_key_path())?;
        let head = audit::read_head(&conn)?;
        Ok(Recorder {
            conn,
            head,
            signer,
            since_checkpoint: 0,
            checkpoint_every: config.storage.checkpoint_every,
        })
    }

    /// Marks events the relay accepted (1) or refused (2, with its reason), in one transaction.
    pub fn mark_uploaded(
        &mut self,
        acknowledged: &[u64],
        rejected: &[(u64, String)],
    ) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut acknowledge =
                tx.prepare_cached("UPDATE actions SET upload_state = 1 WHERE seq = ?1")?;
            // The budget may have removed an event while its batch was on the way: the relay
            // has it after all, so it is not a drop.
            let mut delivered = tx.prepare_cached(
                "UPDATE budget_removals SET uploaded = 1 WHERE seq = ?1 AND uploaded = 0",
            )?;
            for seq in acknowledged {
                acknowledge.execute([*seq as i64])?;
                delivered.execute([*seq as i64])?;
            }
            let mut reject =
                tx.prepare_cached("UPDATE actions SET upload_state = 2 WHERE seq = ?1")?;
            let mut reason = tx.prepare_cached(
                "INSERT OR REPLACE INTO upload_rejections (seq, reason, rejected_at) VALUES (?1, ?2, ?3)",
            )?;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            for (seq, why) in rejected {
                reject.execute([*seq as i64])?;
                reason.execute(params![*seq as i64, why, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn over_budget(&self, budget: u64) -> rusqlite::Result<bool> {
        Ok(self.used_bytes()? > budget)
    }

    fn used_bytes(&self) -> rusqlite::Result<u64> {
        used_bytes(&self.conn)
    }

    /// Keeps the database under `budget` bytes: past it, allow-decision actions go, oldest
    /// first, those the relay already has before those it has not (those are the drops that
    /// count); deny, ask and alert never. Removes at most `BUDGET_STEP` rows per call, so a
    /// waiting hook is never held for long; the writer calls again after its next batch.
    pub fn enforce_budget(&mut self, budget: u64) -> anyhow::Result<BudgetOutcome> {
        let mut outcome = BudgetOutcome::default();
        if self.used_bytes()? <= budget {
            return Ok(outcome);
        }
        // Down to 90 %, so a full outbox is not trimmed again after every commit.
        let target = budget / 10 * 9;
        let tx = self.conn.transaction()?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut remember = tx.prepare_cached(
            "INSERT INTO budget_removals (seq, event_id, uploaded, removed_at)
             SELECT seq, event_id, ?1, ?2 FROM actions
             WHERE decision = 'allow' AND upload_state = ?1 ORDER BY seq LIMIT ?3",
        )?;
        let mut remove = tx.prepare_cached(
            "DELETE FROM actions WHERE seq IN (SELECT seq FROM budget_removals
               WHERE removed_at = ?1 AND uploaded = ?2 ORDER BY seq DESC LIMIT ?3)",
        )?;
        // Acknowledged ones (state 1) first, then pending ones (state 0), a chunk at a time
        // until under the target.
        for state in [1, 0] {
            loop {
                let taken = outcome.pruned + outcome.dropped;
                if taken >= BUDGET_STEP || used_bytes(&tx)? <= target {
                    break;
                }
                let chunk = BUDGET_CHUNK.min(BUDGET_STEP - taken);
                let removed = remember.execute(params![state, now, chunk as i64])? as u64;
                if removed == 0 {
                    break;
                }
                remove.execute(params![now, state, removed as i64])?;
                if state == 1 {
                    outcome.pruned += removed;
                } else {
                    outcome.dropped += removed;
                }
            }
        }
        drop((remember, remove));
        tx.commit()?;
        Ok(outcome)
    }

    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Appends a batch in one transaction; on error nothing of the batch is kept.
    pub fn append(&mut self, events: &[Event]) -> anyhow::Result<Vec<Appended>> {
        let tx = self.conn.transaction()?;
        let mut head = self.head;
        let mut outcomes = Vec::with_capacity(events.len());
        {
            let mut exists = tx.prepare_cached("SELECT 1 FROM actions WHERE event_id = ?1")?;
            let mut insert_action = tx.prepare_cached(
                "INSERT INTO actions (seq, event_id, timestamp, session_id, platform, action_type, decision, risk_score, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut insert_audit = tx.prepare_cached(
                "INSERT INTO audit (seq, event_id, payload_sha256, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut upsert_session = tx.prepare_cached(
                "INSERT INTO sessions (session_id, platform, agent_pid, cwd, first_seen, last_seen, actions, denials)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1, ?6)
                 ON CONFLICT (session_id) DO UPDATE SET
                    last_seen = max(last_seen, excluded.last_seen),
                    agent_pid = coalesce(excluded.agent_pid, agent_pid),
                    cwd = coalesce(excluded.cwd, cwd),
                    actions = actions + 1,
                    denials = denials + excluded.denials",
            )?;
            for event in events {
                let event_id = event.event_id.to_string();
                if exists.exists([&event_id])? {
                    outcomes.push(Appended::Duplicate);
                    continue;
                }
                let payload = serde_json::to_string(event)?;
                let payload_sha = sha256(payload.as_bytes());
                let seq = head.seq + 1;
                let hash = record_hash(&head.hash, seq, &event_id, &payload_sha);
                let timestamp = quint_timestamp(event);
                insert_action.execute(params![
                    seq as i64,
                    event_id,
                    timestamp,
                    event.session_id,
                    event.platform,
                    event.action_type.as_str(),
                    event.decision.as_str(),
                    event.risk_score,
                    payload
                ])?;
                insert_audit.execute(params![
                    seq as i64,
                    event_id,
                    hex::encode(payload_sha),
                    hex::encode(head.hash),
                    hex::encode(hash)
                ])?;
                upsert_session.execute(params![
                    event.session_id,
                    event.platform,
                    event.agent_pid,
                    event.labels.get("cwd"),
                    timestamp,
                    (event.decision == Decision::Deny) as i64
                ])?;
                head = ChainHead { seq, hash };
                outcomes.push(Appended::Recorded(seq));
            }
        }
        let recorded = head.seq - self.head.seq;
        if self.since_checkpoint + recorded >= self.checkpoint_every {
            self.signer.checkpoint(&tx, head)?;
            self.since_checkpoint = 0;
        } else {
            self.since_checkpoint += recorded;
        }
        tx.commit()?;
        self.head = head;
        Ok(outcomes)
    }

    /// Signs the current head, so a deletion of the newest records is detectable too.
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        if self.since_checkpoint > 0 {
            self.signer.checkpoint(&self.conn, self.head)?;
            self.since_checkpoint = 0;
        }
        Ok(())
    }
}

fn quint_timestamp(event: &Event) -> String {
    event
        .timestamp
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quint_policy::{ActionType, Source};

    fn config(dir: &Path) -> Config {
        Config {
            state_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    fn event(decision: Decision) -> Event {
        let mut event = Event::new(
            Source::Hook,
            "claude-code",
            ActionType::ToolCall,
            "session-1",
        );
        event.decision = decision;
        event
    }

    fn verify(config: &Config) -> audit::VerifyReport {
        let conn = open_reader(&config.database_path()).unwrap();
        let key = std::fs::read_to_string(config.audit_public_key_path()).unwrap();
        audit::verify(&conn, &key).unwrap()
    }

    #[test]
    fn appends_are_idempotent_and_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut recorder = Recorder::open(&config).unwrap();
        let batch: Vec<Event> = (0..5).map(|_| event(Decision::Allow)).collect();
        let outcomes = recorder.append(&batch).unwrap();
        assert_eq!(outcomes.last(), Some(&Appended::Recorded(5)));
        assert_eq!(
            recorder.append(&batch[..2]).unwrap(),
            vec![Appended::Duplicate; 2]
        );
        recorder.checkpoint().unwrap();
        drop(recorder);
        let report = verify(&config);
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!((report.records, report.checkpoints), (5, 1));
        // A reopened recorder continues the same chain.
        let mut recorder = Recorder::open(&config).unwrap();
        recorder.append(&[event(Decision::Deny)]).unwrap();
        drop(recorder);
        assert!(verify(&config).ok());
    }

    #[test]
    fn the_budget_removes_uploaded_then_pending_allow_decisions_and_never_denials() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut recorder = Recorder::open(&config).unwrap();
        let padded = |decision| {
            let mut event = event(decision);
            event.target = Some("x".repeat(2000));
            event
        };
        // 400 allow (the first 100 uploaded) and 100 deny, interleaved.
        let batch: Vec<Event> = (0..500)
            .map(|i| {
                padded(if i % 5 == 4 {
                    Decision::Deny
                } else {
                    Decision::Allow
                })
            })
            .collect();
        recorder.append(&batch).unwrap();
        let uploaded: Vec<u64> = (1..=125).filter(|seq| seq % 5 != 0).collect();
        recorder.mark_uploaded(&uploaded, &[]).unwrap();
        let full = recorder.used_bytes().unwrap();
        assert_eq!(
            recorder.enforce_budget(full).unwrap(),
            BudgetOutcome::default(),
            "nothing goes under the budget"
        );

        let outcome = recorder.enforce_budget(full / 2).unwrap();
        assert_eq!(outcome.pruned, 100, "the uploaded allow decisions go first");
        assert!(outcome.dropped > 0 && outcome.dropped <= 300, "{outcome:?}");
        let conn = open_reader(&config.database_path()).unwrap();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(
            count("SELECT count(*) FROM actions WHERE decision = 'deny'"),
            100
        );
        assert_eq!(
            count("SELECT count(*) FROM actions WHERE decision = 'allow'"),
            300 - outcome.dropped as i64
        );
        // The oldest pending allow decisions went: the ones left are the newest.
        let oldest_kept = count("SELECT min(seq) FROM actions WHERE decision = 'allow'");
        assert!(oldest_kept > 125 + outcome.dropped as i64 - 1);
        assert_eq!(outbox::dropped_count(&conn).unwrap(), outcome.dropped);

        // Only denials left: nothing more can go.
        let rest = recorder.enforce_budget(1).unwrap();
        assert_eq!(rest.pruned, 0);
        assert_eq!(
            count("SELECT count(*) FROM actions WHERE decision = 'allow'"),
            0
        );
        assert_eq!(
            count("SELECT count(*) FROM actions WHERE decision = 'deny'"),
            100
        );
        assert_eq!(
            recorder.enforce_budget(1).unwrap(),
            BudgetOutcome::default()
        );

        recorder.checkpoint().unwrap();
        drop(recorder);
        let report = verify(&config);
        assert!(
            report.ok(),
            "budget removals are not tampering: {:?}",
            report.problems
        );
        assert_eq!(report.removed_by_budget, 400);
    }

    #[test]
    fn verify_names_the_edited_and_the_deleted_record() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut recorder = Recorder::open(&config).unwrap();
        let batch: Vec<Event> = (0..10).map(|_| event(Decision::Deny)).collect();
        recorder.append(&batch).unwrap();
        recorder.checkpoint().unwrap();
        drop(recorder);
        let conn = Connection::open(config.database_path()).unwrap();
        conn.execute("UPDATE actions SET payload = replace(payload, '\"deny\"', '\"allow\"'), decision = 'allow' WHERE seq = 4", [])
            .unwrap();
        let report = verify(&config);
        assert_eq!(report.problems[0].seq, 4);
        assert_eq!(
            report.problems[0].event_id.as_deref(),
            Some(batch[3].event_id.to_string().as_str())
        );
        assert!(report.problems[0].message.contains("action edited"));

        conn.execute(
            "UPDATE actions SET session_id = 'elsewhere' WHERE seq = 2",
            [],
        )
        .unwrap();
        let report = verify(&config);
        assert_eq!(
            report.problems[0].seq, 2,
            "an edited indexed column is caught: {:?}",
            report.problems
        );

        conn.execute("DELETE FROM audit WHERE seq >= 9", [])
            .unwrap();
        conn.execute("DELETE FROM actions WHERE seq >= 9", [])
            .unwrap();
        let report = verify(&config);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.message.contains("records were deleted")),
            "{:?}",
            report.problems
        );
    }
}
