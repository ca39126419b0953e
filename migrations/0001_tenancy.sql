-- Quint relay schema. Tenancy is the database's job: every table carries tenant_id, has row
-- level security enabled and forced, and one policy that admits only the rows of the tenant
-- named by the transaction-local setting app.current_tenant_id.
--
-- Roles (created here if missing, cluster-wide):
--   quint_app   NOLOGIN; what the service runs as (operators create a login role IN ROLE
--               quint_app). Owns nothing, no BYPASSRLS, only the grants below.
--   quint_auth  NOLOGIN; owns the SECURITY DEFINER functions that look tokens up before the
--               tenant is known. It has a read policy on the token tables and nothing else.

-- Roles are cluster-wide while migrations lock per database: two databases migrated at the
-- same time may both try to create them, so "already exists" is fine.
DO $$
BEGIN
    BEGIN
        CREATE ROLE quint_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE quint_auth NOLOGIN NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    -- Roles that already existed get their attributes re-asserted (only a superuser may
    -- change them; otherwise say so and carry on).
    -- Only when they differ: concurrent migrations would otherwise update the same row.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ('quint_app', 'quint_auth')
               AND (rolcanlogin OR rolsuper OR rolbypassrls)) THEN
        BEGIN
            ALTER ROLE quint_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
            ALTER ROLE quint_auth NOLOGIN NOSUPERUSER NOBYPASSRLS;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot re-assert the attributes of quint_app/quint_auth: %', SQLERRM;
        END;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION quint_current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.current_tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
    tenant_id   uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE api_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants(tenant_id),
    key_id      uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE TABLE deploy_tokens (
    tenant_id   uuid NOT NULL REFERENCES tenants(tenant_id),
    token_id    uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    max_uses    integer CHECK (max_uses IS NULL OR max_uses > 0),
    uses        integer NOT NULL DEFAULT 0,
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, token_id)
);

CREATE TABLE devices (
    tenant_id       uuid NOT NULL REFERENCES tenants(tenant_id),
    device_id       uuid NOT NULL,
    token_hash      bytea NOT NULL UNIQUE,
    hostname        text NOT NULL,
    os              text NOT NULL,
    arch            text NOT NULL,
    machine_id      text NOT NULL,
    daemon_version  text NOT NULL,
    deploy_token_id uuid,
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,
    revoked_at      timestamptz,
    PRIMARY KEY (tenant_id, device_id)
);

CREATE TABLE agents (
    tenant_id     uuid NOT NULL REFERENCES tenants(tenant_id),
    device_id     uuid NOT NULL,
    platform      text NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    actions       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, device_id, platform)
);

CREATE TABLE sessions (
    tenant_id     uuid NOT NULL REFERENCES tenants(tenant_id),
    device_id     uuid NOT NULL,
    session_id    text NOT NULL,
    platform      text NOT NULL,
    started_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    actions       bigint NOT NULL DEFAULT 0,
    denied        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, device_id, session_id)
);

-- Monthly range partitions on the event's own timestamp; the primary key must include it.
CREATE TABLE actions (
    tenant_id    uuid NOT NULL,
    event_id     uuid NOT NULL,
    ts           timestamptz NOT NULL,
    device_id    uuid NOT NULL,
    session_id   text NOT NULL,
    platform     text NOT NULL,
    source       text NOT NULL,
    action_type  text NOT NULL,
    tool_name    text,
    target       text,
    decision     text NOT NULL,
    rule_ids     text[] NOT NULL DEFAULT '{}',
    risk_score   smallint NOT NULL,
    payload      json NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE actions_default PARTITION OF actions DEFAULT;

CREATE INDEX actions_tenant_ts ON actions (tenant_id, ts DESC, event_id DESC);
CREATE INDEX actions_tenant_session ON actions (tenant_id, session_id, ts DESC);
CREATE INDEX actions_tenant_device ON actions (tenant_id, device_id, ts DESC);

CREATE TABLE policies (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants(tenant_id),
    yaml        text NOT NULL,
    etag        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    tenant_id   uuid NOT NULL REFERENCES tenants(tenant_id),
    alert_id    uuid NOT NULL,
    event_id    uuid NOT NULL,
    ts          timestamptz NOT NULL,
    device_id   uuid NOT NULL,
    session_id  text NOT NULL,
    decision    text NOT NULL,
    rule_ids    text[] NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id),
    UNIQUE (tenant_id, event_id)
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
CREATE INDEX deploy_tokens_tenant ON deploy_tokens (tenant_id, created_at);
CREATE INDEX devices_tenant ON devices (tenant_id, enrolled_at);
CREATE INDEX sessions_tenant_started ON sessions (tenant_id, started_at DESC);
CREATE INDEX alerts_tenant_created ON alerts (tenant_id, created_at DESC, alert_id DESC);

-- Row level security, enabled and forced on every table, one policy each.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'api_keys', 'deploy_tokens', 'devices', 'agents',
                             'sessions', 'actions', 'policies', 'alerts']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = (SELECT quint_current_tenant())) '
            'WITH CHECK (tenant_id = (SELECT quint_current_tenant()))', t);
    END LOOP;
END
$$;

-- The service's grants: exactly what the handlers do.
GRANT USAGE ON SCHEMA public TO quint_app;
GRANT SELECT ON tenants TO quint_app;
GRANT SELECT ON api_keys TO quint_app;
GRANT SELECT, INSERT ON deploy_tokens, devices TO quint_app;
GRANT UPDATE (revoked_at) ON deploy_tokens TO quint_app;
GRANT UPDATE (revoked_at, last_seen_at) ON devices TO quint_app;
GRANT SELECT, INSERT, UPDATE ON agents, sessions, policies, alerts TO quint_app;
GRANT SELECT, INSERT ON actions TO quint_app;
GRANT EXECUTE ON FUNCTION quint_current_tenant() TO quint_app, quint_auth;

-- Token lookups before the tenant is known: hash in, tenant and ids out. quint_auth may read
-- the token tables (and count a deploy token's uses), nothing else.
GRANT USAGE ON SCHEMA public TO quint_auth;
GRANT SELECT ON tenants, api_keys, deploy_tokens, devices TO quint_auth;
GRANT UPDATE (uses) ON deploy_tokens TO quint_auth;
CREATE POLICY token_lookup ON tenants FOR SELECT TO quint_auth USING (true);
CREATE POLICY token_lookup ON api_keys FOR SELECT TO quint_auth USING (true);
CREATE POLICY token_lookup ON deploy_tokens FOR SELECT TO quint_auth USING (true);
CREATE POLICY token_redeem ON deploy_tokens FOR UPDATE TO quint_auth USING (true) WITH CHECK (true);
CREATE POLICY token_lookup ON devices FOR SELECT TO quint_auth USING (true);

CREATE FUNCTION quint_auth_api_key(hash bytea)
RETURNS TABLE (tenant_id uuid, key_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
    SELECT k.tenant_id, k.key_id
    FROM public.api_keys k JOIN public.tenants t ON t.tenant_id = k.tenant_id
    WHERE k.token_hash = hash AND k.revoked_at IS NULL AND t.deleted_at IS NULL
$$;

CREATE FUNCTION quint_auth_device(hash bytea)
RETURNS TABLE (tenant_id uuid, device_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
    SELECT d.tenant_id, d.device_id
    FROM public.devices d JOIN public.tenants t ON t.tenant_id = d.tenant_id
    WHERE d.token_hash = hash AND d.revoked_at IS NULL AND t.deleted_at IS NULL
$$;

-- Redeems one use of a deploy token. status: ok, unknown, revoked, expired, used_up.
CREATE FUNCTION quint_redeem_deploy_token(hash bytea)
RETURNS TABLE (status text, tenant_id uuid, token_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
DECLARE
    d public.deploy_tokens%ROWTYPE;
BEGIN
    SELECT dt.* INTO d FROM public.deploy_tokens dt JOIN public.tenants t ON t.tenant_id = dt.tenant_id
    WHERE dt.token_hash = hash AND t.deleted_at IS NULL
    FOR UPDATE OF dt;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::uuid; RETURN;
    END IF;
    IF d.revoked_at IS NOT NULL THEN
        RETURN QUERY SELECT 'revoked'::text, d.tenant_id, d.token_id; RETURN;
    END IF;
    IF d.expires_at <= now() THEN
        RETURN QUERY SELECT 'expired'::text, d.tenant_id, d.token_id; RETURN;
    END IF;
    IF d.max_uses IS NOT NULL AND d.uses >= d.max_uses THEN
        RETURN QUERY SELECT 'used_up'::text, d.tenant_id, d.token_id; RETURN;
    END IF;
    UPDATE public.deploy_tokens SET uses = uses + 1
    WHERE deploy_tokens.tenant_id = d.tenant_id AND deploy_tokens.token_id = d.token_id;
    RETURN QUERY SELECT 'ok'::text, d.tenant_id, d.token_id;
END
$$;

ALTER FUNCTION quint_auth_api_key(bytea) OWNER TO quint_auth;
ALTER FUNCTION quint_auth_device(bytea) OWNER TO quint_auth;
ALTER FUNCTION quint_redeem_deploy_token(bytea) OWNER TO quint_auth;
REVOKE ALL ON FUNCTION quint_auth_api_key(bytea), quint_auth_device(bytea),
    quint_redeem_deploy_token(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION quint_auth_api_key(bytea), quint_auth_device(bytea),
    quint_redeem_deploy_token(bytea) TO quint_app;

-- Monthly partitions of actions from `months_back` before this month to `months_ahead` after
-- it. Rows that landed in the default partition for a month that now gets its own are moved
-- into it (a default partition may not hold rows of a new partition's range), under a lock so
-- no row slips between the move and the new partition, and so two callers do not race.
-- SECURITY DEFINER with a fixed search path and qualified names: the service may call it (via
-- the argument-less wrapper below), and must not be able to make it run code of its own.
CREATE FUNCTION quint_ensure_partitions(months_back integer, months_ahead integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
DECLARE
    first_month date := pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC')::date;
    m date;
    next date;
    name text;
    created integer := 0;
BEGIN
    IF months_back NOT BETWEEN 0 AND 120 OR months_ahead NOT BETWEEN 0 AND 120 THEN
        RAISE EXCEPTION 'months_back and months_ahead must be 0 to 120';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(7215002602);
    FOR i IN -months_back..months_ahead LOOP
        m := (first_month + pg_catalog.make_interval(months => i))::date;
        next := (m + interval '1 month')::date;
        name := pg_catalog.format('actions_y%sm%s', pg_catalog.to_char(m::timestamp, 'YYYY'),
                                  pg_catalog.to_char(m::timestamp, 'MM'));
        IF pg_catalog.to_regclass('public.' || name) IS NULL THEN
            LOCK TABLE public.actions_default IN EXCLUSIVE MODE;
            CREATE TEMP TABLE quint_moving (LIKE public.actions) ON COMMIT DROP;
            EXECUTE pg_catalog.format(
                'WITH moved AS (DELETE FROM public.actions_default WHERE ts >= %L AND ts < %L RETURNING *) '
                'INSERT INTO pg_temp.quint_moving SELECT * FROM moved', m, next);
            EXECUTE pg_catalog.format(
                'CREATE TABLE public.%I PARTITION OF public.actions FOR VALUES FROM (%L) TO (%L)',
                name, m, next);
            -- Partitions get the tenant policy too (enabled, not forced: the owner moves rows).
            -- No role is granted on them, so this guards against a future broad GRANT.
            EXECUTE pg_catalog.format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', name);
            EXECUTE pg_catalog.format(
                'CREATE POLICY tenant_isolation ON public.%I USING (tenant_id = (SELECT public.quint_current_tenant())) '
                'WITH CHECK (tenant_id = (SELECT public.quint_current_tenant()))', name);
            -- Straight into the new partition: the parent's forced policies would refuse rows
            -- with no tenant set.
            EXECUTE pg_catalog.format('INSERT INTO public.%I SELECT * FROM pg_temp.quint_moving', name);
            DROP TABLE pg_temp.quint_moving;
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
REVOKE ALL ON FUNCTION quint_ensure_partitions(integer, integer) FROM PUBLIC;

-- What the service may call at start: this month and the next three, nothing else.
CREATE FUNCTION quint_ensure_partitions_ahead()
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$ SELECT public.quint_ensure_partitions(0, 3) $$;
REVOKE ALL ON FUNCTION quint_ensure_partitions_ahead() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION quint_ensure_partitions_ahead() TO quint_app;

-- Only the owner creates objects in the schema (PG 14 and older let every role create there,
-- which is how definer functions get hijacked).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

ALTER TABLE actions_default ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON actions_default
    USING (tenant_id = (SELECT quint_current_tenant()))
    WITH CHECK (tenant_id = (SELECT quint_current_tenant()));
