#!/bin/sh
# Installs Quint on a Linux machine and enrolls it: picks the .deb or the .rpm for this
# distribution, installs it (its postinst starts quintd and enrolls with the token), and checks
# the result with `quintctl doctor`. Idempotent: run again, it changes nothing that is right.
#
#   sudo sh install.sh --token qdt_… [--relay https://relay.example.com] [--packages DIR]
#
# --packages: where quint_*.deb / quint-*.rpm are (default: beside this script). The token may
# also come from QUINT_DEPLOY_TOKEN (it stays out of the process list that way); the relay from
# QUINT_RELAY_URL or /etc/quint/relay-url (placed by configuration management).
set -eu

token="${QUINT_DEPLOY_TOKEN:-}"
relay="${QUINT_RELAY_URL:-}"
packages=$(dirname "$0")
while [ $# -gt 0 ]; do
    case "$1" in
    --token) token="$2"; shift 2 ;;
    --relay) relay="$2"; shift 2 ;;
    --packages) packages="$2"; shift 2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
if [ -z "$relay" ] && [ -r /etc/quint/relay-url ]; then
    relay=$(head -n 1 /etc/quint/relay-url | tr -d '[:space:]')
fi
[ -n "$relay" ] || { echo "install.sh: no relay: give --relay URL (or QUINT_RELAY_URL, /etc/quint/relay-url)" >&2; exit 2; }

family=""
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in
    *" debian "* | *" ubuntu "*) family=deb ;;
    *" rhel "* | *" fedora "* | *" centos "* | *" suse "* | *" opensuse "*) family=rpm ;;
    esac
fi
[ -n "$family" ] || { echo "install.sh: unsupported distribution (${ID:-unknown}); install the .deb or .rpm by hand" >&2; exit 1; }

case "$family" in
deb) pattern="quint_*.deb" ;;
rpm) pattern="quint-*.rpm" ;;
esac
# The newest version when several are there (0.10 after 0.9).
package=$(for candidate in "$packages"/$pattern; do
    [ -e "$candidate" ] && printf '%s\n' "$candidate"
done | sort -V | tail -n 1)
[ -n "$package" ] || { echo "install.sh: no quint $family package in $packages" >&2; exit 1; }

enrolled() { /usr/bin/quintctl status --json 2>/dev/null | grep -q '"enrolled": *true'; }
installed_version() {
    case "$family" in
    # Removed but not purged still has a version in dpkg's database: only "installed" counts.
    deb) dpkg-query -W -f '${db:Status-Status} ${Version}' quint 2>/dev/null | sed -n 's/^installed //p' ;;
    rpm) rpm -q --qf '%{VERSION}-%{RELEASE}' quint 2>/dev/null || true ;;
    esac
}
package_version() {
    case "$family" in
    deb) dpkg-deb -f "$package" Version ;;
    rpm) rpm -qp --qf '%{VERSION}-%{RELEASE}' "$package" ;;
    esac
}

if [ "$(installed_version)" = "$(package_version)" ]; then
    echo "quint $(installed_version) is already installed"
    if ! enrolled && [ -n "$token" ]; then
        QUINT_DEPLOY_TOKEN="$token" /usr/bin/quintctl enroll --relay "$relay"
    fi
else
    echo "installing $package"
    case "$family" in
    deb) QUINT_DEPLOY_TOKEN="$token" QUINT_RELAY_URL="$relay" dpkg -i "$package" ;;
    rpm) QUINT_DEPLOY_TOKEN="$token" QUINT_RELAY_URL="$relay" rpm -U --replacepkgs "$package" ;;
    esac
fi

if /usr/bin/quintctl doctor; then
    echo "Quint is installed and enrolled."
else
    echo "install.sh: quintctl doctor found problems (above, each with its fix)" >&2
    enrolled || exit 1
fi
