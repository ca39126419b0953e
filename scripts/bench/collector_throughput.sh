#!/usr/bin/env bash
# The OS collectors' pipeline under load (needs root): a stand-in agent (a copy of bash named
# `claude`) runs a generator that creates, writes and deletes files in its workspace as fast
# as it can, then execs /bin/true in a loop. Every change and exec goes kernel → collector →
# policy → redaction → SQLite. Printed: events offered (what the generator did), recorded,
# dropped and counted (quintctl status), and events recorded per second from the first change
# to the last record.
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
trap '[ -n "$quintd_pid" ] && kill "$quintd_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
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
threads > "$work/cpu.before"
if [ -n "${PERF_RECORD:-}" ]; then
    perf record -g -p "$quintd_pid" -o "$PERF_RECORD" 2>/dev/null &
    perf_pid=$!
fi
started=$(date +%s.%N)
(cd "$work/workspace" && "$work/bin/claude" -c "sleep 0.3; $work/generate $files; for i in \$(seq $execs); do /bin/true; done")
generated=$(date +%s.%N)
# Wait until the record count stops growing.
last=""
still=0
while [ "$still" -lt 3 ]; do
    sleep 1
    now=$(count)
    if [ "$now" = "$last" ]; then
        still=$((still + 1))
    else
        still=0
        last="$now"
        drained=$(date +%s.%N)
    fi
done
[ -n "${perf_pid:-}" ] && kill -INT "$perf_pid" && wait "$perf_pid" || true
threads > "$work/cpu.after"
echo "recorded: $last"
python3 - "$last" "$files" "$execs" "$started" "$generated" "${drained:-$generated}" "$work/cpu.before" "$work/cpu.after" "$(getconf CLK_TCK)" <<'PY'
import collections, sys
counts = dict(kv.split("=") for kv in sys.argv[1].split())
files, execs = int(sys.argv[2]), int(sys.argv[3])
started, generated, drained = map(float, sys.argv[4:7])
changes = sum(int(c) for k, c in counts.items() if k.startswith("file/"))
execs_recorded = int(counts.get("process/process.exec", 0))
total = changes + execs_recorded
print(f"offered: {files} creates+writes and {files} deletes (the kernel merges a create with its close), {execs} execs")
print(f"recorded: {changes} file changes, {execs_recorded} execs in {drained - started:.2f} s "
      f"(generator done after {generated - started:.2f} s): {total / (drained - started):,.0f} events/s")
def cpu(path):
    ticks = collections.Counter()
    for line in open(path):
        name, value = line.strip().rsplit("=", 1)
        ticks[name] += int(value)
    return ticks
before, after, hz = cpu(sys.argv[7]), cpu(sys.argv[8]), int(sys.argv[9])
used = {name: (after[name] - before[name]) / hz for name in after}
print(f"quintd CPU: {sum(used.values()) * 1e6 / total:.1f} us per event in all; by thread, us per event "
      "(the busiest bounds the rate at 1e6 / that):")
for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
    if seconds > 0:
        print(f"  {name:<20} {seconds * 1e6 / total:6.1f}")
PY
{ "$bin/quintctl" status --json || true; } | python3 -c 'import json,sys; [print(" ", c["name"], c["state"], "-", c["detail"]) for c in json.load(sys.stdin)["daemon"]["collectors"] if c["name"] in ("process", "file-changes")]' || { echo "quintd log:"; tail -20 "$work/quintd.log"; }
