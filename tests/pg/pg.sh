#!/bin/sh
# pg.sh - a throwaway PostgreSQL server for the tests and the benchmark
# (docs/operations/configuration.md, "PostgreSQL"): a cluster made with
# initdb --no-sync in DIR, listening on a Unix socket in DIR only (no TCP),
# with fsync off (unless PG_DURABLE=1). Nothing of it outlives `stop`.
#
#   tests/pg/pg.sh start DIR   starts it (or finds it running) and prints its
#                              base URL: postgres:///postgres?host=DIR&port=P&user=U
#   tests/pg/pg.sh url DIR     prints the URL of the server running in DIR
#   tests/pg/pg.sh stop DIR    stops it and removes DIR
#   tests/pg/pg.sh run DIR COMMAND [ARG]...
#                              starts it, runs COMMAND with WFO_TEST_PG set to
#                              its URL, stops it (also when COMMAND fails or
#                              is interrupted), exits with COMMAND's status
#
# As root the server runs as the user `postgres` (Debian's package makes it),
# as PostgreSQL refuses to run as root; DIR is then made that user's. The
# binaries are the newest under /usr/lib/postgresql/*/bin, or $PG_BIN.
# Idempotent: start on a running DIR prints its URL again; stop on a DIR
# with no server only removes it.
set -eu

usage() {
    echo "usage: $0 start|url|stop DIR | run DIR COMMAND [ARG]..." >&2
    exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
[ "$cmd" = run ] || [ $# -eq 0 ] || usage

bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -n "$bin" ] && [ -x "$bin/initdb" ] || {
    echo "pg.sh: no PostgreSQL server binaries (install postgresql: scripts/deps.sh test)" >&2
    exit 1
}

# Runs a command as the server's user.
if [ "$(id -u)" = 0 ]; then
    pguser=postgres
    as() { runuser -u "$pguser" -- "$@"; }
else
    pguser=$(id -un)
    as() { "$@"; }
fi

url() {
    port=$(cat "$dir/port")
    echo "postgres:///postgres?host=$dir&port=$port&user=$pguser"
}

running() {
    [ -f "$dir/data/postmaster.pid" ] && as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

# A free TCP port number, used only to name the socket file (.s.PGSQL.PORT):
# several servers may share a directory name space but not a port number.
pick_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
start)
    if running; then
        url
        exit 0
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # the server user must reach DIR: a path under /tmp or the worktree
    [ "$(id -u)" = 0 ] && chown "$pguser" "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        rm -rf "$dir/data"
        as "$bin/initdb" --no-sync -A trust -U "$pguser" -E UTF8 --locale=C -D "$dir/data" \
            >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    [ -f "$dir/port" ] || pick_port >"$dir/port"
    port=$(cat "$dir/port")
    # fsync off and no full pages: the data is thrown away; the statements
    # and the transactions are what the tests check, not the disk. The
    # benchmark sets PG_DURABLE=1: PostgreSQL's defaults (a commit is
    # flushed), like SQLite's synchronous=FULL. pg_stat_statements: the
    # benchmark counts statements per workflow.
    opts="-p $port -k $dir -c listen_addresses='' -c max_connections=300"
    opts="$opts -c shared_buffers=128MB -c shared_preload_libraries=pg_stat_statements"
    [ "${PG_DURABLE:-0}" = 1 ] ||
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$opts" \
        start >/dev/null || {
        tail -n 20 "$dir/server.log" >&2
        exit 1
    }
    url
    ;;
url)
    dir=$(cd "$dir" && pwd)
    running || {
        echo "pg.sh: no server running in $dir" >&2
        exit 1
    }
    url
    ;;
stop)
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    if running; then
        as "$bin/pg_ctl" -D "$dir/data" -w -t 30 -m fast stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
run)
    [ $# -gt 0 ] || usage
    WFO_TEST_PG=$("$0" start "$dir") || exit 1
    export WFO_TEST_PG
    trap '"$0" stop "$dir"' EXIT
    trap 'exit 130' INT TERM
    rc=0
    "$@" || rc=$?
    exit $rc
    ;;
*)
    usage
    ;;
esac
