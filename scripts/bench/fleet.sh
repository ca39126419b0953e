#!/usr/bin/env bash
# The fleet path, hook to Postgres, side by side in one run on this machine: simulated hooks
# sending one event per call through a private quintd enrolled with a local relay (quintd
# answers after its SQLite commit; the forwarder uploads in batches), and the obvious
# alternative, each hook call uploading its event straight to the relay. Release builds; a
# private Postgres unless QUINT_TEST_PG names one. Prints both results and the ratios; stops
# everything it started.
#
# scripts/bench/fleet.sh [events] [hooks]
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-20000}"
hooks="${2:-8}"
source scripts/lib/private-postgres.sh
source scripts/lib/local-relay.sh
work=$(mktemp -d)
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    local_relay_stop
    private_pg_stop
    rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${QUINT_TEST_PG:-}" ]; then
    admin="$QUINT_TEST_PG"
else
    private_pg_start "$(free_port)"
    admin="$private_pg_url"
fi

cargo build --release --quiet -p quint-daemon -p quint-relay -p quint-e2e \
    --bin quintd --bin quintctl --bin quint-relay --bin quint-fleet-load
bin=target/release
# Per-event uploads would hit the default per-tenant rate limit: lifted for the comparison.
QUINT_LOG=warn local_relay_start "$bin" "$admin" "quint_fleet_$$" --rate-limit 1000000 --rate-burst 100000

deploy_token() {
    curl -fsS -X POST "$relay_url/v1/deploy-tokens" -H "Authorization: Bearer $api_key" \
        -H 'Content-Type: application/json' -d '{"name":"bench"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# A private quintd (no collectors), enrolled.
export QUINT_STATE_DIR="$work/state" QUINT_SOCKET="$work/quintd.sock" QUINT_CONFIG="$work/config.yaml"
printf 'policy_dir: %s\nlog_level: warn\ncollectors:\n  process: off\n' "$work/policy.d" > "$QUINT_CONFIG"
"$bin/quintd" 2> "$work/quintd.log" &
daemon_pid=$!
for _ in $(seq 1 100); do [ -S "$QUINT_SOCKET" ] && break; sleep 0.05; done
QUINT_DEPLOY_TOKEN=$(deploy_token) "$bin/quintctl" enroll --relay "$relay_url" >/dev/null

# A second device that uploads straight from the hook.
direct_token=$(curl -fsS -X POST "$relay_url/v1/enroll" -H 'Content-Type: application/json' \
    -d "{\"deploy_token\":\"$(deploy_token)\",\"host\":{\"hostname\":\"direct\",\"os\":\"linux\",\"arch\":\"x86_64\",\"machine_id\":\"bench-direct\"},\"daemon_version\":\"bench\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["device_token"])')

echo "== $events events, $hooks concurrent hooks, one event per hook call"
"$bin/quint-fleet-load" --label "through quintd" --relay "$relay_url" --api-key "$api_key" \
    --socket "$QUINT_SOCKET" --events "$events" --hooks "$hooks" | tee "$work/quintd.txt"
"$bin/quint-fleet-load" --label "straight to the relay" --relay "$relay_url" --api-key "$api_key" \
    --direct --device-token "$direct_token" --events "$events" --hooks "$hooks" | tee "$work/direct.txt"
python3 - "$work/quintd.txt" "$work/direct.txt" <<'PY'
import re, sys
def read(path):
    text = open(path).read()
    rate = float(re.search(r"([0-9.]+) events/s", text).group(1))
    answers = re.findall(r"p50 ([0-9.]+) ms, p99 ([0-9.]+) ms", text)
    return rate, [tuple(map(float, a)) for a in answers]
q, d = read(sys.argv[1]), read(sys.argv[2])
print(f"ratio, events/s stored (quintd / direct): {q[0] / d[0]:.1f}x")
print(f"ratio, hook answer p50 under load (direct / quintd): {d[1][0][0] / q[1][0][0]:.1f}x, p99 {d[1][0][1] / q[1][0][1]:.1f}x")
print(f"ratio, paced hook answer p50 (direct / quintd): {d[1][1][0] / q[1][1][0]:.1f}x")
PY
