#!/usr/bin/env bash
# Relay ingest under load, side by side with row-by-row inserts, in one run on this machine:
# a private Postgres cluster with the write settings docs/relay.md recommends (max_wal_size
# 8GB; the stock 1GB checkpoints every few seconds at this rate), `quint-relay serve` (release)
# as a quint_app login, then `quint-relay-load` with 32 devices posting 500-event batches back to
# back, then offering 50,000 events/s, then making the same writes one statement at a time.
# Prints the JSON results, the ratio and CPU per event; stops everything it started.
#
# scripts/bench/relay_load.sh [seconds]
#   QUINT_TEST_PG=URL      use that Postgres as it is configured instead of a private one
#   QUINT_BENCH_POOL=N     the relay's connection pool (default 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
source scripts/lib/private-postgres.sh
source scripts/lib/local-relay.sh
cpu_log=$(mktemp)
cleanup() {
    local_relay_stop
    rm -f "$cpu_log"
    private_pg_stop
}
trap cleanup EXIT
if [ -n "${QUINT_TEST_PG:-}" ]; then
    admin="$QUINT_TEST_PG"
else
    private_pg_start "$(free_port)" -c max_wal_size=8GB
    admin="$private_pg_url"
fi

cargo build --release --quiet -p quint-relay -p quint-e2e --bin quint-relay --bin quint-relay-load
bin=target/release
QUINT_LOG=warn local_relay_start "$bin" "$admin" "quint_load_$$" --pool-size "${QUINT_BENCH_POOL:-8}"
app_url="$relay_app_url"

# CPU time (clock ticks) of the relay and of every local Postgres process: CPU per event drifts
# far less than events/s on a shared machine.
cpu_ticks() {
    local relay pg=0 pid
    relay=$(awk '{print $14 + $15}' "/proc/$relay_pid/stat")
    for pid in $(pgrep -x postgres); do
        pg=$((pg + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$relay $pg"
}
echo "== POST /v1/ingest, 32 devices, 500-event batches, ${seconds}s"
# The generator measures after a 2 s warm-up; sample CPU over the same window.
(sleep 2; cpu_ticks > "$cpu_log"; sleep "$seconds"; cpu_ticks >> "$cpu_log") &
sampler_pid=$!
batched=$("$bin/quint-relay-load" --relay "$relay_url" --api-key "$api_key" --seconds "$seconds")
wait "$sampler_pid"
echo "$batched"
echo "== POST /v1/ingest, open loop: 32 devices offering 50,000 events/s together, ${seconds}s"
offered=$("$bin/quint-relay-load" --relay "$relay_url" --api-key "$api_key" --seconds "$seconds" --rate 50000)
echo "$offered"
echo "== row by row: the same writes one statement at a time, 32 connections, ${seconds}s"
rows=$("$bin/quint-relay-load" --relay "$relay_url" --api-key "$api_key" --seconds "$seconds" --row-by-row --database-url "$app_url")
echo "$rows"
python3 - "$batched" "$rows" "$offered" "$cpu_log" "$(getconf CLK_TCK)" <<'PY'
import json, sys
b, r, o = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
(r0, p0), (r1, p1) = [map(int, line.split()) for line in open(sys.argv[4])]
per_event = lambda ticks: ticks / int(sys.argv[5]) / b["events"] * 1e6
print(f"offered 50k/s: {o['events_per_s']:.0f} events/s delivered, batch p50 {o['batch_ms_p50']:.1f} ms, p99 {o['batch_ms_p99']:.1f} ms")
print(f"relay ingest: {b['events_per_s']:.0f} events/s, batch p50 {b['batch_ms_p50']:.1f} ms, p99 {b['batch_ms_p99']:.1f} ms")
print(f"row by row:   {r['events_per_s']:.0f} events/s, batch p50 {r['batch_ms_p50']:.1f} ms, p99 {r['batch_ms_p99']:.1f} ms")
print(f"ratio: {b['events_per_s'] / r['events_per_s']:.1f}x")
print(f"CPU per event (closed loop): relay {per_event(r1 - r0):.1f} us, Postgres {per_event(p1 - p0):.1f} us")
PY
