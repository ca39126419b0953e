#!/usr/bin/env bash
# Latency `quintctl mcp wrap` adds per tools/call, side by side with the unwrapped server, in
# one run: the official SDK client (tests/mcp/client.mjs bench) calls server-everything's `echo`
# N times (after 200 warm-up calls), directly and through the wrapper with a private release
# quintd deciding and recording every call (default policy). Rounds alternate direct/wrapped so
# machine noise hits both. Two paces: one call every INTERVAL ms (an agent makes a few per second
# at most; default 5 ms, 200 calls/s) and back to back (a stress test: on a 2-core machine the
# client, server, wrapper and quintd then compete for the CPU). Prints each round and the
# medians of p50/p99 per pace.
#
# scripts/bench/mcp_latency.sh [calls per round] [rounds] [interval ms]
set -euo pipefail
cd "$(dirname "$0")/../.."
calls="${1:-2000}"
rounds="${2:-3}"
interval="${3:-5}"
node="${QUINT_TEST_NODE:-node}"
[ -d tests/mcp/node_modules/@modelcontextprotocol/sdk ] || npm ci --prefix tests/mcp --no-audit --no-fund
cargo build --release --quiet -p quint-daemon --bin quintd --bin quintctl
bin="$PWD/target/release"
work=$(mktemp -d)
cleanup() {
    [ -n "${quintd_pid:-}" ] && kill "$quintd_pid" 2>/dev/null && wait "$quintd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/policy.d" "$work/home"
printf 'policy_dir: %s\nlog_level: warn\n' "$work/policy.d" > "$work/config.yaml"
export QUINT_CONFIG="$work/config.yaml" QUINT_STATE_DIR="$work/state" QUINT_SOCKET="$work/quintd.sock" HOME="$work/home"
"$bin/quintd" 2>"$work/quintd.log" &
quintd_pid=$!
for _ in $(seq 100); do [ -S "$work/quintd.sock" ] && break; sleep 0.1; done
server=("$node" tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio)
results=()
for pace in "$interval" 0; do
    for round in $(seq "$rounds"); do
        direct=$("$node" tests/mcp/client.mjs bench "$calls" "$pace" -- "${server[@]}" 2>/dev/null)
        wrapped=$("$node" tests/mcp/client.mjs bench "$calls" "$pace" -- "$bin/quintctl" mcp wrap --name everything -- "${server[@]}" 2>/dev/null)
        echo "interval ${pace} ms, round $round direct:  $direct"
        echo "interval ${pace} ms, round $round wrapped: $wrapped"
        results+=("$direct" "$wrapped")
    done
done
recorded=$("$bin/quintctl" events --json --limit 1000000 | wc -l)
python3 - "$recorded" "${results[@]}" <<'PY'
import json, statistics, sys
recorded = int(sys.argv[1])
runs = [json.loads(r) for r in sys.argv[2:]]
for pace in sorted({r["interval_ms"] for r in runs}, reverse=True):
    these = [r for r in runs if r["interval_ms"] == pace]
    direct, wrapped = these[0::2], these[1::2]
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    label = f"one call every {pace:g} ms" if pace else "back to back"
    for k in ("p50_ms", "p99_ms"):
        d, w = med(direct, k), med(wrapped, k)
        print(f"{label}: {k[:-3]} direct {d:.3f} ms, wrapped {w:.3f} ms, added {w - d:.3f} ms (median of {len(direct)} rounds)")
print(f"quintd recorded {recorded} events")
PY
