#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, rule-pack tests and the
# end-to-end tests that start real quintd/quintctl processes. One command, on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1
started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust (https://rustup.rs) and re-run" >&2
    exit 1
fi
cargo --version
rustup component list --installed 2>/dev/null | grep -qE '^(rustfmt|clippy)' || rustup component add rustfmt clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build binaries for the end-to-end tests"
cargo build --workspace --bins

step "tests"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
printf '\nall tests finished in %ss\n' "$(( $(date +%s) - started ))"
echo "${passed} passed, ${failed} failed"
exit "$status"
