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

source scripts/lib/private-postgres.sh  # also as_root, apt_install

step "postgres for the relay tests"
# Use a Postgres that answers on 127.0.0.1:5432 (trust auth for user postgres); otherwise start
# a private one on port 55432 in a temporary directory (installing the server if needed) and
# stop it on exit. QUINT_TEST_OWN_PG=1 forces the private one.
trap private_pg_stop EXIT
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ "${QUINT_TEST_OWN_PG:-0}" != 1 ] && port_answers 5432; then
    export QUINT_TEST_PG="${QUINT_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
    echo "using the Postgres on 127.0.0.1:5432"
else
    private_pg_start 55432
    export QUINT_TEST_PG="$private_pg_url"
fi

# The packaging tests: systemd-analyze for the units, shellcheck for the maintainer scripts,
# rpm to read the .rpm, cargo-deb and cargo-generate-rpm to build the packages.
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v rpm >/dev/null || missing+=(rpm)
[ "${#missing[@]}" = 0 ] || apt_install "${missing[@]}"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
command -v cargo-generate-rpm >/dev/null || cargo install cargo-generate-rpm --locked --quiet

# The fleet chaos test restarts a Postgres of its own: it needs the server binaries.
private_pg_ensure_server
export QUINT_TEST_PG_BIN="$private_pg_server"

step "redis for the relay's shared cache test"
# The Redis on 127.0.0.1:6379 if one answers; otherwise a private one on port 56379 (installed
# if needed), keeping nothing on disk, stopped on exit. QUINT_TEST_OWN_REDIS=1 forces the private one.
own_redis_pid=""
stop_own_services() {
    [ -n "$own_redis_pid" ] && kill "$own_redis_pid" 2>/dev/null || true
    private_pg_stop
}
trap stop_own_services EXIT
if [ "${QUINT_TEST_OWN_REDIS:-0}" != 1 ] && port_answers 6379; then
    export QUINT_TEST_REDIS="${QUINT_TEST_REDIS:-redis://127.0.0.1:6379}"
    echo "using the Redis on 127.0.0.1:6379"
else
    if ! command -v redis-server >/dev/null; then
        echo "installing redis-server"
        apt_install redis-server
    fi
    redis-server --port 56379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    own_redis_pid=$!
    for _ in $(seq 50); do port_answers 56379 && break; sleep 0.1; done
    export QUINT_TEST_REDIS="redis://127.0.0.1:56379"
    echo "started a private Redis on 127.0.0.1:56379 ($(redis-server --version | cut -d' ' -f3))"
fi

step "schemathesis for the relay's OpenAPI test"
if [ -x target/st-venv/bin/schemathesis ]; then
    echo "using $(target/st-venv/bin/schemathesis --version)"
else
    mkdir -p target
    if ! python3 -m venv target/st-venv 2>/dev/null; then
        # Debian-like systems ship venv separately.
        echo "installing python3-venv"
        apt_install python3-venv
        python3 -m venv target/st-venv
    fi
    target/st-venv/bin/pip install -q 'schemathesis==4.*'
    echo "installed $(target/st-venv/bin/schemathesis --version) into target/st-venv"
fi

step "cfn-lint for the AWS template test"
if [ ! -x target/cfn-venv/bin/cfn-lint ]; then
    mkdir -p target
    python3 -m venv target/cfn-venv 2>/dev/null || { apt_install python3-venv; python3 -m venv target/cfn-venv; }
    target/cfn-venv/bin/pip install -q 'cfn-lint==1.*'
fi
export QUINT_TEST_CFN_LINT="$PWD/target/cfn-venv/bin/cfn-lint"
echo "using $("$QUINT_TEST_CFN_LINT" --version)"

step "moto_server for the SNS bus tests"
# AWS cannot be reached from here: moto[server] from PyPI stands in for SNS and SQS, in
# target/moto-venv, started on a free port through scripts/lib/moto_server.py (moto with its
# clock reads made cheap, see there) and stopped on exit.
if [ ! -x target/moto-venv/bin/moto_server ]; then
    mkdir -p target
    python3 -m venv target/moto-venv 2>/dev/null || { apt_install python3-venv; python3 -m venv target/moto-venv; }
    target/moto-venv/bin/pip install -q 'moto[server]==5.*'
fi
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/moto-venv/bin/python scripts/lib/moto_server.py -H 127.0.0.1 -p "$moto_port" >target/moto.log 2>&1 &
moto_pid=$!
stop_own_services() {
    kill "$moto_pid" 2>/dev/null || true
    [ -n "$own_redis_pid" ] && kill "$own_redis_pid" 2>/dev/null || true
    private_pg_stop
}
trap stop_own_services EXIT
for _ in $(seq 100); do port_answers "$moto_port" && break; sleep 0.1; done
port_answers "$moto_port" || { cat target/moto.log >&2; echo "moto_server did not start" >&2; exit 1; }
export QUINT_TEST_AWS_ENDPOINT="http://127.0.0.1:$moto_port"
echo "started moto $(target/moto-venv/bin/python -c 'import moto; print(moto.__version__)') on $QUINT_TEST_AWS_ENDPOINT"

step "npm packages for the MCP gateway tests"
# Real MCP software from npm (the official SDK, server-filesystem, server-everything), pinned by
# tests/mcp/package-lock.json, for the end-to-end tests of `quintctl mcp wrap`. Installs Debian's
# nodejs and npm if node or npm is missing; reinstalls the packages only when package.json or the
# lock changed since the last install (their hash is kept in node_modules/.quint-lock-sha).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing nodejs and npm"
    apt_install nodejs npm
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    echo "warning: node $(node --version) is older than 20, which some of the pinned packages require" >&2
mcp_lock_sha=$(cat tests/mcp/package.json tests/mcp/package-lock.json | sha256sum | cut -d' ' -f1)
if [ "$(cat tests/mcp/node_modules/.quint-lock-sha 2>/dev/null)" = "$mcp_lock_sha" ]; then
    echo "tests/mcp/node_modules is up to date with its lock"
else
    npm ci --prefix tests/mcp --no-audit --no-fund
    echo "$mcp_lock_sha" >tests/mcp/node_modules/.quint-lock-sha
fi
export QUINT_TEST_NODE="$(command -v node)"
echo "using node $(node --version) at $QUINT_TEST_NODE"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "macOS: cargo check and clippy for aarch64-apple-darwin (Rust only, not linked)"
macos=0
scripts/check-macos.sh || macos=$?
case "$macos" in
    0) ;;
    2) echo "SKIPPED: the macOS standard library could not be installed (see above)" ;;
    *) exit "$macos" ;;
esac

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
