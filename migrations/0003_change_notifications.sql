-- Change notifications for the relay's caches (relay/src/cache.rs, notify.rs). Triggers, not
-- handlers, send them, so a change made any way (the API, the admin CLI, plain SQL) reaches
-- every relay process at commit.

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
