-- What a device last reported about itself (POST /v1/heartbeat): versions, collectors, outbox
-- depth, events its disk budget dropped, last error. Shown in GET /v1/devices.
ALTER TABLE devices ADD COLUMN health jsonb;
ALTER TABLE devices ADD COLUMN health_at timestamptz;
GRANT UPDATE (health, health_at) ON devices TO quint_app;
