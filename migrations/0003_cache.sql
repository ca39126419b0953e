-- The relay's caches (relay/src/cache.rs, notify.rs): change notifications, and the key Redis
-- entries are signed with. Triggers, not handlers, send the notifications, so a change made
-- any way (the API, the admin CLI, plain SQL) reaches every relay process at commit.

-- A tenant deleted, or one of its API keys or devices revoked (or re-keyed): its cached token
-- lookups must go at once.
CREATE FUNCTION quint_notify_tenant_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS
$$
BEGIN
    PERFORM pg_notify('quint_tenant', OLD.tenant_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER quint_tenant_change AFTER DELETE OR UPDATE OF deleted_at ON tenants
    FOR EACH ROW EXECUTE FUNCTION quint_notify_tenant_change();
CREATE TRIGGER quint_tenant_change AFTER DELETE OR UPDATE OF revoked_at, token_hash ON api_keys
    FOR EACH ROW EXECUTE FUNCTION quint_notify_tenant_change();
-- Not on every update: ingest touches devices.last_seen_at on each batch.
CREATE TRIGGER quint_tenant_change AFTER DELETE OR UPDATE OF revoked_at, token_hash ON devices
    FOR EACH ROW EXECUTE FUNCTION quint_notify_tenant_change();

-- A policy set, changed or removed: cached copies go and long-polling devices wake up.
CREATE FUNCTION quint_notify_policy_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS
$$
BEGIN
    PERFORM pg_notify('quint_policy', COALESCE(NEW.tenant_id, OLD.tenant_id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER quint_policy_change AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION quint_notify_policy_change();

-- The key relay processes sign their Redis cache entries with (HMAC-SHA256), so that whoever
-- can write to Redis still cannot map a token to a tenant: an entry that does not verify is a
-- miss. Only the owner reads the table; the service gets the key through a definer function.
CREATE TABLE quint_cache_key (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key       bytea NOT NULL
);
-- Two random UUIDs: 244 bits from the server's strong random source, with no extension needed.
INSERT INTO quint_cache_key (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
ALTER TABLE quint_cache_key ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON quint_cache_key FROM PUBLIC;

CREATE FUNCTION quint_cache_key() RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
    SELECT key FROM public.quint_cache_key
$$;
REVOKE ALL ON FUNCTION quint_cache_key() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION quint_cache_key() TO quint_app;
