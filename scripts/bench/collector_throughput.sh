#!/usr/bin/env bash
# The OS collectors' pipeline under load (needs root): a stand-in agent (a copy of bash named
# `claude`) runs a generator that creates, writes and deletes files in its workspace as fast
# as it can; then it execs /bin/true in a loop. Every change and exec goes kernel → collector
# → policy → redaction → SQLite. For each phase: what was offered, what was recorded, events
# recorded per second from the start to the last record, quintd's CPU per event by thread; at
# the end, what quintctl status counts as dropped.
#
# scripts/bench/collector_throughput.sh [files] [execs]
# BENCH_DIR=/dev/shm puts the workspace on tmpfs (cheaper file operations for the generator,
# which shares the machine with quintd).
set -euo pipefail
cd "$(dirname "$0")/../.."
files="${1:-100000}"
execs="${2:-2000}"
if [ "$(id -u)" != 0 ]; then
    echo "needs root (fanotify and the proc connector)" >&2
    exit 1
fi
cargo build --release --quiet -p quint-daemon --bin quintd --bin quintctl
bin="$PWD/target/release"
work=$(mktemp -d "${BENCH_DIR:-/tmp}/quint-bench.XXXXXX")
quintd_pid=""
trap '[ -n "$quintd_pid" ] && kill "$quintd_pid" 2>/dev/null; wait 2>/dev/null; [ -n "${BENCH_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
mkdir -p "$work/policy.d" "$work/home" "$work/workspace" "$work/bin"
cp /bin/bash "$work/bin/claude"
printf 'policy_dir: %s\nlog_level: warn\ncollectors:\n  process: on\n' "$work/policy.d" > "$work/config.yaml"
export QUINT_CONFIG="$work/config.yaml" QUINT_STATE_DIR="$work/state" QUINT_SOCKET="$work/quintd.sock" HOME="$work/home"
"$bin/quintd" 2>>"$work/quintd.log" &
quintd_pid=$!
for _ in $(seq 100); do [ -S "$work/quintd.sock" ] && break; sleep 0.1; done
sleep 1
# In C, so that the generator leaves as much of the machine to quintd as it can.
cat > "$work/generate.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    char name[32];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%ld", i);
        int fd = open(name, O_WRONLY | O_CREAT, 0644);
        if (fd < 0 || write(fd, "x", 1) != 1) return 1;
        close(fd);
        unlink(name);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "generator: %ld files created, written and deleted in %.2f s\n", n,
            (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
C
cc -O2 -o "$work/generate" "$work/generate.c"
count() {
    python3 - "$work/state/quint.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute("""SELECT json_extract(payload, '$.source'), json_extract(payload, '$.action_type'), count(*)
                     FROM actions GROUP BY 1, 2""").fetchall()
print(" ".join(f"{s}/{a}={c}" for s, a, c in rows))
PY
}
threads() {
    for task in /proc/"$quintd_pid"/task/*; do
        printf '%s=%s\n' "$(tr ' ' _ < "$task/comm")" "$(awk '{print $14 + $15}' "$task/stat")"
    done
}
if [ -n "${PERF_RECORD:-}" ]; then
    perf record -g -p "$quintd_pid" -o "$PERF_RECORD" 2>/dev/null &
    perf_pid=$!
fi
# One phase: the stand-in agent runs a script in its workspace; when the record count has not
# moved for 3 s (polled every 0.2 s), what was recorded in the phase, how fast, and quintd's CPU per event.
phase() {
    local name="$1" script="$2" offered="$3"
    local before_counts started generated drained last now still
    before_counts=$(count)
    threads > "$work/cpu.before"
    started=$(date +%s.%N)
    (cd "$work/workspace" && "$work/bin/claude" -c "sleep 0.3; $script")
    generated=$(date +%s.%N)
    drained="$generated"
    last=""
    still=0
    while [ "$still" -lt 15 ]; do
        sleep 0.2
        now=$(count)
        if [ "$now" = "$last" ]; then
            still=$((still + 1))
        else
            still=0
            last="$now"
            drained=$(date +%s.%N)
        fi
    done
    threads > "$work/cpu.after"
    python3 - "$name" "$offered" "$before_counts" "$last" "$started" "$generated" "$drained" "$work/cpu.before" "$work/cpu.after" "$(getconf CLK_TCK)" <<'PY'
import collections, sys
name, offered = sys.argv[1], sys.argv[2]
parse = lambda text: collections.Counter({k: int(v) for k, v in (kv.split("=") for kv in text.split())})
recorded = parse(sys.argv[4]) - parse(sys.argv[3])
started, generated, drained = map(float, sys.argv[5:8])
total = sum(recorded.values())
elapsed = drained - started - 0.3
print(f"{name}: offered {offered}; recorded {dict(recorded)}")
print(f"  {total} events in {elapsed:.2f} s (the agent done after {generated - started - 0.3:.2f} s): "
      f"{total / elapsed:,.0f} events/s")
def cpu(path):
    ticks = collections.Counter()
    for line in open(path):
        thread, value = line.strip().rsplit("=", 1)
        ticks[thread] += int(value)
    return ticks
before, after, hz = cpu(sys.argv[8]), cpu(sys.argv[9]), int(sys.argv[10])
used = {thread: (after[thread] - before[thread]) / hz for thread in after}
print(f"  quintd CPU {sum(used.values()) * 1e6 / total:.1f} us per event; by thread (the busiest "
      "bounds the rate at 1e6 / its figure): " + ", ".join(
          f"{thread} {seconds * 1e6 / total:.1f}" for thread, seconds in
          sorted(used.items(), key=lambda kv: -kv[1]) if seconds > 0))
PY
}
phase "file changes" "$work/generate $files" "$files files created, written and deleted (the kernel merges a creation with its close: $((2 * files)) changes)"
phase "execs" "for i in \$(seq $execs); do /bin/true; done" "$execs execs of /bin/true"
[ -n "${perf_pid:-}" ] && kill -INT "$perf_pid" && wait "$perf_pid" || true
{ "$bin/quintctl" status --json || true; } | python3 -c 'import json,sys; [print(" ", c["name"], c["state"], "-", c["detail"]) for c in json.load(sys.stdin)["daemon"]["collectors"] if c["name"] in ("process", "file-changes")]' || { echo "quintd log:"; tail -20 "$work/quintd.log"; }
