# Sourced by scripts that need a Postgres of their own (and the two install helpers it uses): a throwaway cluster in a temporary
# directory, trust auth for user postgres on 127.0.0.1, installed from the system's packages
# when no server is present.
#
#   private_pg_start PORT [-c name=value ...]   sets private_pg_url; call private_pg_stop on exit

private_pg_dir=""
private_pg_url=""

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

private_pg_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bin" ] && command -v initdb >/dev/null; then bin=$(dirname "$(command -v initdb)"); fi
    echo "$bin"
}

# Sets private_pg_server to the server binaries' directory, installing them when missing; as
# root, makes sure the user the server runs as exists.
private_pg_ensure_server() {
    private_pg_server=$(private_pg_bin)
    if [ -z "$private_pg_server" ]; then
        echo "installing the PostgreSQL server"
        if command -v apt-get >/dev/null; then
            apt_install postgresql
        elif command -v dnf >/dev/null; then
            as_root dnf install -y -q postgresql-server >/dev/null
        else
            echo "no Postgres server installed and no package manager to install one" >&2
            return 1
        fi
        private_pg_server=$(private_pg_bin)
    fi
    # The server refuses to run as root.
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    fi
}

private_pg_start() {
    local port="$1"
    shift
    private_pg_ensure_server || return 1
    private_pg_dir=$(mktemp -d /tmp/quint-pg.XXXXXX)
    private_pg_run=""
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$private_pg_dir"
        private_pg_run="runuser -u postgres --"
    fi
    $private_pg_run "$private_pg_server/initdb" -D "$private_pg_dir/data" -U postgres --auth=trust >/dev/null
    $private_pg_run "$private_pg_server/pg_ctl" -D "$private_pg_dir/data" -l "$private_pg_dir/log" -w \
        -o "-p $port -k $private_pg_dir -c listen_addresses=127.0.0.1 $*" start >/dev/null
    private_pg_url="postgres://postgres@127.0.0.1:$port/postgres"
    echo "started a private Postgres on 127.0.0.1:$port ($("$private_pg_server/postgres" --version))"
}

private_pg_stop() {
    if [ -n "$private_pg_dir" ]; then
        $private_pg_run "$private_pg_server/pg_ctl" -D "$private_pg_dir/data" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$private_pg_dir"
        private_pg_dir=""
    fi
}
