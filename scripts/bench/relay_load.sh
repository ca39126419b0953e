#!/usr/bin/env bash
# Relay ingest under load, side by side with row-by-row inserts, in one run on this machine:
# a fresh database on the local Postgres, `quint-relay serve` (release) as a quint_app login,
# then `quint-relay-load` with 32 devices posting 500-event batches, then the same generator
# inserting the same kind of events one INSERT per event. Prints both JSON results and the
# ratio; drops the database and role afterwards.
#
# scripts/bench/relay_load.sh [seconds]     (QUINT_TEST_PG overrides the Postgres URL)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
admin="${QUINT_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
base="${admin%/*}"
db="quint_load_$$"
role="${db}_app"
owner_url="$base/$db"
app_url="$(echo "$owner_url" | sed -E "s#://([^@/]*@)?#://${role}@#")"

cargo build --release --quiet -p quint-relay -p quint-e2e --bin quint-relay --bin quint-relay-load
bin=target/release

psql_admin() { psql "$admin" -qAtc "$1"; }
cleanup() {
    [ -n "${relay_pid:-}" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true
    psql_admin "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'" >/dev/null || true
    psql_admin "DROP DATABASE IF EXISTS $db" || true
    psql_admin "DROP ROLE IF EXISTS $role" || true
}
trap cleanup EXIT

psql_admin "CREATE DATABASE $db"
"$bin/quint-relay" migrate --database-url "$owner_url" >/dev/null
psql_admin "CREATE ROLE $role LOGIN IN ROLE quint_app"
api_key=$("$bin/quint-relay" admin tenant create --name load --json --database-url "$owner_url" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
QUINT_LOG=warn "$bin/quint-relay" serve --database-url "$app_url" --listen "127.0.0.1:$port" --pool-size 32 &
relay_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

echo "== POST /v1/ingest, 32 devices, 500-event batches, ${seconds}s"
batched=$("$bin/quint-relay-load" --relay "http://127.0.0.1:$port" --api-key "$api_key" --seconds "$seconds")
echo "$batched"
echo "== POST /v1/ingest, open loop: 32 devices offering 50,000 events/s together, ${seconds}s"
offered=$("$bin/quint-relay-load" --relay "http://127.0.0.1:$port" --api-key "$api_key" --seconds "$seconds" --rate 50000)
echo "$offered"
echo "== row by row: the same writes one statement at a time, 32 connections, ${seconds}s"
rows=$("$bin/quint-relay-load" --relay "http://127.0.0.1:$port" --api-key "$api_key" --seconds "$seconds" --row-by-row --database-url "$app_url")
echo "$rows"
python3 - "$batched" "$rows" "$offered" <<'PY'
import json, sys
b, r, o = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"offered 50k/s: {o['events_per_s']:.0f} events/s delivered, batch p50 {o['batch_ms_p50']:.1f} ms, p99 {o['batch_ms_p99']:.1f} ms")
print(f"relay ingest: {b['events_per_s']:.0f} events/s, batch p50 {b['batch_ms_p50']:.1f} ms, p99 {b['batch_ms_p99']:.1f} ms")
print(f"row by row:   {r['events_per_s']:.0f} events/s, batch p50 {r['batch_ms_p50']:.1f} ms, p99 {r['batch_ms_p99']:.1f} ms")
print(f"ratio: {b['events_per_s'] / r['events_per_s']:.1f}x")
PY
