#!/usr/bin/env bash
# Type-checks what runs on a Mac (quint-daemon: quintd and quintctl, and quint-policy) for macOS
# (Apple silicon) from Linux: `cargo check` and `cargo clippy -D warnings` with the aarch64-apple-darwin standard library from rustup. There is no
# macOS C toolchain or SDK here, so the C in dependencies (ring, the bundled SQLite) is not
# compiled: a stand-in compiler writes empty objects so their build scripts finish. Nothing is
# linked. What this proves: Quint's Rust, with its cfg(target_os) modules, compiles for macOS.
#
# scripts/check-macos.sh        exit 0: checked; 2: the target could not be installed (said why)
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-apple-darwin
if ! rustup target list --installed | grep -qx "$target"; then
    if ! rustup target add "$target"; then
        echo "SKIPPED: rustup could not install the $target standard library" >&2
        exit 2
    fi
fi
stand_in=$(mktemp -d)
trap 'rm -rf "$stand_in"' EXIT
cat > "$stand_in/cc" <<'SH'
#!/bin/sh
# Writes an empty object where the compiler would, so C build scripts finish (check only).
out=""
prev=""
for a in "$@"; do
    [ "$prev" = "-o" ] && out="$a"
    case "$a" in -o?*) out="${a#-o}" ;; esac
    prev="$a"
done
[ -n "$out" ] && : > "$out"
exit 0
SH
cat > "$stand_in/ar" <<'SH'
#!/bin/sh
for a in "$@"; do case "$a" in *.a) printf '!<arch>\n' > "$a"; exit 0 ;; esac; done
exit 0
SH
chmod +x "$stand_in/cc" "$stand_in/ar"
env_name=$(echo "$target" | tr - _)
export "CC_$env_name=$stand_in/cc" "AR_$env_name=$stand_in/ar"
# The relay runs on Linux servers, and its AWS SDK would triple the time this takes.
crates=(-p quint-daemon -p quint-policy)
cargo check --quiet --target "$target" "${crates[@]}" --all-targets
cargo clippy --quiet --target "$target" "${crates[@]}" --all-targets -- -D warnings
echo "macOS ($target): cargo check and clippy -D warnings pass"
