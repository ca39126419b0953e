#!/usr/bin/env bash
# Builds Quint.pkg for macOS (run on a Mac with Xcode's command line tools): quintd and quintctl
# (universal if both architectures are built, else this Mac's), the LaunchDaemon, the default
# config, and the pre/postinstall scripts that enroll from managed preferences.
#
# packaging/macos/build-pkg.sh [version]      → target/packages/Quint-<version>.pkg
# Sign with QUINT_PKG_SIGN_IDENTITY="Developer ID Installer: …" (and notarize before rollout).
set -euo pipefail
cd "$(dirname "$0")/../.."
version="${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

targets=(aarch64-apple-darwin x86_64-apple-darwin)
built=()
for target in "${targets[@]}"; do
    if rustup target list --installed | grep -qx "$target"; then
        cargo build --release --quiet -p quint-daemon --bin quintd --bin quintctl --target "$target"
        built+=("$target")
    fi
done
[ "${#built[@]}" -gt 0 ] || { echo "no macOS Rust target installed (rustup target add aarch64-apple-darwin)" >&2; exit 1; }

mkdir -p "$root/usr/local/bin" "$root/Library/LaunchDaemons" "$root/etc/quint/policy.d"
for program in quintd quintctl; do
    inputs=()
    for target in "${built[@]}"; do inputs+=("target/$target/release/$program"); done
    lipo -create -output "$root/usr/local/bin/$program" "${inputs[@]}"
done
cp packaging/macos/com.quint.quintd.plist "$root/Library/LaunchDaemons/"
cp packaging/linux/config.yaml "$root/etc/quint/config.yaml"
cp packaging/linux/policy.d/README "$root/etc/quint/policy.d/README"

mkdir -p target/packages
component="target/packages/quint-component.pkg"
pkgbuild --root "$root" --identifier com.quint.agent --version "$version" \
    --scripts packaging/macos/scripts --ownership recommended "$component"
sign=()
[ -n "${QUINT_PKG_SIGN_IDENTITY:-}" ] && sign=(--sign "$QUINT_PKG_SIGN_IDENTITY")
productbuild --package "$component" "${sign[@]}" "target/packages/Quint-$version.pkg"
rm -f "$component"
echo "target/packages/Quint-$version.pkg"
