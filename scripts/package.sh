#!/usr/bin/env bash
# Builds the Linux packages of quintd and quintctl: a .deb (cargo-deb) and an .rpm
# (cargo-generate-rpm), from the metadata in daemon/Cargo.toml and the files in
# packaging/linux/, into target/packages/. Installs the two cargo tools when missing.
# Prints the packages' paths.
#
# scripts/package.sh            release build (what ships)
# scripts/package.sh --debug    from the debug binaries (the tests: no second, slow build)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release deb_fast=() rpm_compress=()
if [ "${1:-}" = --debug ]; then
    # Test packages: debug binaries are large, so compress little (seconds, not minutes).
    profile=dev deb_fast=(--fast) rpm_compress=(--payload-compress none)
fi

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
command -v cargo-generate-rpm >/dev/null || cargo install cargo-generate-rpm --locked --quiet

cargo build --profile "$profile" --quiet -p quint-daemon --bin quintd --bin quintctl
out=target/packages
rm -rf "$out"
mkdir -p "$out"
# cargo-deb warns that a dev profile is for tests only: it is.
cargo deb -p quint-daemon --no-build --no-strip --profile "$profile" "${deb_fast[@]}" -o "$out/" 2>/dev/null >/dev/null
cargo generate-rpm -p daemon --profile "$profile" "${rpm_compress[@]}" -o "$out/" >/dev/null
ls "$(pwd)/$out"/*.deb "$(pwd)/$out"/*.rpm
