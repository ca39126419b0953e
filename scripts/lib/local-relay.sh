# Sourced by scripts that run a relay on this machine: a database of its own on a given
# Postgres, migrated as the owner, served by `quint-relay serve` as a login role in quint_app
# (which row level security binds), and a tenant with an API key.
#
#   local_relay_start BIN_DIR ADMIN_URL NAME [serve flags...]
#       sets relay_url relay_pid relay_owner_url relay_app_url api_key tenant_id;
#       the relay logs to $relay_log if set
#   local_relay_stop    stops the relay, drops the database and the role

relay_pid="" relay_db="" relay_admin=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[2])[sys.argv[1]])' "$1" "$2"; }

local_relay_start() {
    local bin="$1" port tenant
    relay_admin="$2"
    relay_db="$3"
    shift 3
    psql -qAt "$relay_admin" -c "CREATE DATABASE $relay_db" >/dev/null
    relay_owner_url="${relay_admin%/*}/$relay_db"
    relay_app_url="$(echo "$relay_owner_url" | sed -E "s#://([^@/]*@)?#://${relay_db}_app@#")"
    "$bin/quint-relay" migrate --database-url "$relay_owner_url" >/dev/null
    psql -qAt "$relay_admin" -c "CREATE ROLE ${relay_db}_app LOGIN IN ROLE quint_app" >/dev/null
    tenant=$("$bin/quint-relay" admin tenant create --name "$relay_db" --json --database-url "$relay_owner_url")
    api_key=$(json_field api_key "$tenant")
    tenant_id=$(json_field tenant_id "$tenant")
    port=$(free_port)
    relay_url="http://127.0.0.1:$port"
    "$bin/quint-relay" serve --database-url "$relay_app_url" --listen "127.0.0.1:$port" "$@" \
        2>> "${relay_log:-/dev/null}" &
    relay_pid=$!
    for _ in $(seq 1 100); do port_answers "$port" && return 0; sleep 0.1; done
    echo "quint-relay did not start" >&2
    [ -n "${relay_log:-}" ] && tail -20 "$relay_log" >&2
    return 1
}

local_relay_stop() {
    if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
        kill -TERM "$relay_pid"
        wait "$relay_pid" 2>/dev/null || true
    fi
    relay_pid=""
    if [ -n "$relay_db" ]; then
        psql -qAt "$relay_admin" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$relay_db'" >/dev/null 2>&1 || true
        psql -qAt "$relay_admin" -c "DROP DATABASE IF EXISTS $relay_db" >/dev/null 2>&1 || true
        psql -qAt "$relay_admin" -c "DROP ROLE IF EXISTS ${relay_db}_app" >/dev/null 2>&1 || true
        relay_db=""
    fi
}
