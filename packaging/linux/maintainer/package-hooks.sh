#!/bin/sh
# What the .deb and .rpm maintainer scripts do, written once; installed as
# /usr/lib/quint/package-hooks.sh and called with one of:
#   configure  start quintd, enroll (QUINT_DEPLOY_TOKEN or /etc/quint/enroll-token, with
#              QUINT_RELAY_URL or /etc/quint/relay-url), install hooks in the managed scope
#   stop       stop quintd (deb upgrades: the new version's configure starts it again)
#   remove     stop quintd and take Quint's hooks out of the agents' managed settings
# Purge (state, configuration, logs) is in postrm: this script is gone by then.
# Works with systemd running and without it (containers, chroots: quintd is started directly,
# tracked by a pid file). State in /var/lib/quint survives upgrades; only purge removes it.
set -eu

socket=/run/quint/quintd.sock
pidfile=/run/quint/quintd.pid

systemd_running() { [ -d /run/systemd/system ]; }

wait_for_socket() {
    i=0
    while [ "$i" -lt 100 ]; do
        [ -S "$socket" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "quint: quintd did not start; see 'journalctl -u quintd' or /var/log/quintd.log" >&2
    return 1
}

start_quintd() {
    if systemd_running; then
        systemctl daemon-reload
        systemctl enable quintd.service >/dev/null 2>&1 || true
        systemctl restart quintd.service
    else
        stop_quintd
        mkdir -p /run/quint
        # A socket left by a killed quintd would pass for the new one's.
        rm -f "$socket"
        nohup /usr/bin/quintd >>/var/log/quintd.log 2>&1 &
        echo "$!" >"$pidfile"
    fi
    wait_for_socket
}

stop_quintd() {
    if systemd_running; then
        systemctl stop quintd.service 2>/dev/null || true
        return 0
    fi
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 150 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

first_line() {
    if [ -r "$1" ]; then head -n 1 "$1" | tr -d '[:space:]'; fi
}

enroll() {
    # Upgrades and reinstalls keep the device: a token still in the environment must not make
    # a second one. `quintctl enroll` re-enrolls on purpose.
    if [ -f /var/lib/quint/enrollment.json ]; then
        rm -f /etc/quint/enroll-token
        return 0
    fi
    token="${QUINT_DEPLOY_TOKEN:-$(first_line /etc/quint/enroll-token)}"
    relay="${QUINT_RELAY_URL:-$(first_line /etc/quint/relay-url)}"
    if [ -z "$token" ]; then
        echo "quint: not enrolled; run: quintctl enroll --relay URL --token-file FILE" >&2
        return 0
    fi
    if [ -z "$relay" ]; then
        echo "quint: a deploy token but no relay URL (QUINT_RELAY_URL or /etc/quint/relay-url); not enrolled" >&2
        return 0
    fi
    if QUINT_DEPLOY_TOKEN="$token" /usr/bin/quintctl enroll --relay "$relay"; then
        # Used: a deploy token does not stay on disk.
        rm -f /etc/quint/enroll-token
    else
        echo "quint: enrollment failed; quintd runs locally until 'quintctl enroll' succeeds" >&2
    fi
}

case "${1:-}" in
configure)
    start_quintd
    enroll
    /usr/bin/quintctl hooks install --scope managed || true
    /usr/bin/quintctl status || true
    ;;
stop)
    stop_quintd
    ;;
remove)
    /usr/bin/quintctl hooks uninstall --scope managed >/dev/null 2>&1 || true
    stop_quintd
    if systemd_running; then
        systemctl disable quintd.service >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 configure|stop|remove" >&2
    exit 2
    ;;
esac
