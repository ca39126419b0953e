#!/usr/bin/env bash
# The OS collectors' costs, side by side in one run (needs root: fanotify and the proc
# connector):
#   1. open() latency for a process outside any agent session, of a file in a directory under
#      the file guard's permission mark, against the same open with no mark (quintd stopped);
#      rounds alternate so machine noise hits both;
#   2. an idle quintd with every collector on: CPU over 60 s and resident memory, from start
#      and after the activity of 1.
#
# scripts/bench/collectors.sh [opens per round] [rounds] [idle seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
opens="${1:-20000}"
rounds="${2:-3}"
idle="${3:-60}"
if [ "$(id -u)" != 0 ]; then
    echo "needs root (fanotify permission marks and the proc connector)" >&2
    exit 1
fi
cargo build --release --quiet -p quint-daemon --bin quintd --bin quintctl
bin="$PWD/target/release"
work=$(mktemp -d)
quintd_pid=""
stop_quintd() {
    if [ -n "$quintd_pid" ]; then
        kill "$quintd_pid" 2>/dev/null || true
        wait "$quintd_pid" 2>/dev/null || true
        quintd_pid=""
    fi
}
trap 'stop_quintd; rm -rf "$work"' EXIT
mkdir -p "$work/policy.d" "$work/home/.ssh" "$work/bin"
# A stand-in agent: a copy of bash under Claude Code's executable name.
cp /bin/bash "$work/bin/claude"
echo "Host *" > "$work/home/.ssh/config"
printf 'policy_dir: %s\nlog_level: warn\ncollectors:\n  process: on\n' "$work/policy.d" > "$work/config.yaml"
export QUINT_CONFIG="$work/config.yaml" QUINT_STATE_DIR="$work/state" QUINT_SOCKET="$work/quintd.sock" HOME="$work/home"
start_quintd() {
    "$bin/quintd" 2>>"$work/quintd.log" &
    quintd_pid=$!
    for _ in $(seq 100); do [ -S "$work/quintd.sock" ] && break; sleep 0.1; done
    # The guard is up once status says so.
    for _ in $(seq 50); do
        "$bin/quintctl" status --json 2>/dev/null | grep -q '"name": "file"' && break
        sleep 0.1
    done
}
# Back to back (a burst: a program reading its files), and spaced 2 ms apart (a lone open,
# which finds quintd's guard thread asleep and pays for waking it).
cat > "$work/measure.py" <<'PY'
import json, os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
for _ in range(2000):
    os.close(os.open(path, os.O_RDONLY))
def timed(count, gap):
    samples = []
    for _ in range(count):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter_ns()
        os.close(os.open(path, os.O_RDONLY))
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return lambda p: samples[min(len(samples) - 1, int(p * len(samples)))] / 1000
burst, spaced = timed(n, 0), timed(max(n // 20, 200), 0.002)
print(json.dumps({"p50_us": burst(0.5), "p99_us": burst(0.99),
                  "spaced_p50_us": spaced(0.5), "spaced_p99_us": spaced(0.99)}))
PY
measure_opens() {
    python3 "$work/measure.py" "$work/home/.ssh/config" "$opens"
}
# Idle from start: nothing happens but the machine's own life.
idle_measure() {
    local label="$1" ticks0 ticks1 rss
    ticks0=$(awk '{print $14 + $15}' "/proc/$quintd_pid/stat")
    sleep "$idle"
    ticks1=$(awk '{print $14 + $15}' "/proc/$quintd_pid/stat")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$quintd_pid/status")
    python3 -c "t=($ticks1-$ticks0)/$(getconf CLK_TCK); print(f'idle $label: CPU {100*t/$idle:.2f} % of one core over $idle s, RSS {$rss/1024:.1f} MB')"
}
start_quintd
idle_measure "from start"
results=()
for round in $(seq "$rounds"); do
    stop_quintd
    plain=$(measure_opens)
    start_quintd
    marked=$(measure_opens)
    echo "round $round: no mark $plain, under the mark $marked"
    results+=("$plain" "$marked")
done
python3 - "${results[@]}" <<'PY'
import json, statistics, sys
runs = [json.loads(r) for r in sys.argv[1:]]
plain, marked = runs[0::2], runs[1::2]
for k in ("p50_us", "p99_us", "spaced_p50_us", "spaced_p99_us"):
    p, m = statistics.median(r[k] for r in plain), statistics.median(r[k] for r in marked)
    print(f"open() {k[:-3].replace('_', ' ')}: no mark {p:.1f} us, under the mark {m:.1f} us, added {m - p:.1f} us (median of {len(plain)} rounds)")
PY
# While an agent runs, an outsider's open also asks whether the collector has taken in every
# process started so far (one peek at its socket), to close the placement race.
"$work/bin/claude" -c "sleep 600" &
agent_pid=$!
sleep 1
with_agent=$(measure_opens)
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
python3 - "$with_agent" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"open() by an outsider while an agent runs: p50 {r['p50_us']:.1f} us, p99 {r['p99_us']:.1f} us "
      f"(spaced: p50 {r['spaced_p50_us']:.1f} us, p99 {r['spaced_p99_us']:.1f} us)")
PY
# An agent's own opens under the mark are held while policy decides them (and recorded).
agent=$("$work/bin/claude" -c "sleep 0.3; python3 $work/measure.py $work/home/.ssh/config 2000")
python3 - "$agent" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"open() by an agent process, decided by policy and recorded: p50 {r['p50_us']:.1f} us, p99 {r['p99_us']:.1f} us "
      f"(spaced: p50 {r['spaced_p50_us']:.1f} us, p99 {r['spaced_p99_us']:.1f} us)")
PY
idle_measure "after the activity above"
{ "$bin/quintctl" status --json || true; } | python3 -c 'import json,sys; [print(" ", c["name"], c["state"], "-", c["detail"]) for c in json.load(sys.stdin)["daemon"]["collectors"]]'
