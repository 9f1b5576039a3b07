#!/usr/bin/env bash
# Entrypoint of the project's Debian-built PostgreSQL image. It honours the
# documented interface of the official `postgres` image, so the same Compose
# files run with either: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, PGDATA,
# /docker-entrypoint-initdb.d (*.sh, *.sql, *.sql.gz), `postgres -c ...`
# arguments, the server running as `postgres`, and an arbitrary --user.
set -Eeo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

# An arbitrary uid without a passwd entry: initdb and libpq need one.
setup_nss_wrapper() {
    if ! getent passwd "$(id -u)" >/dev/null 2>&1 && [ -e /usr/lib/x86_64-linux-gnu/libnss_wrapper.so ]; then
        NSS_WRAPPER_PASSWD=$(mktemp)
        NSS_WRAPPER_GROUP=$(mktemp)
        export NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
        printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$PGDATA" >"$NSS_WRAPPER_PASSWD"
        printf 'postgres:x:%s:\n' "$(id -g)" >"$NSS_WRAPPER_GROUP"
    fi
}

teardown_nss_wrapper() {
    if [ -n "${NSS_WRAPPER_PASSWD:-}" ]; then
        rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
        unset NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP LD_PRELOAD
    fi
}

process_sql() {
    psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" "$@"
}

init_database() {
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
        echo 'error: database is uninitialized and POSTGRES_PASSWORD is not set' >&2
        echo '       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)' >&2
        exit 1
    fi
    setup_nss_wrapper
    local pwfile
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    {
        echo
        echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    } >>"$PGDATA/pg_hba.conf"

    # A temporary server on the socket only, with the caller's arguments
    # (as the official image does).
    local args=("$@")
    [ "${args[0]}" = postgres ] && args=("${args[@]:1}")
    args+=(-c listen_addresses='' -p 5432)
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${args[@]}")" -w start
    if [ "$POSTGRES_DB" != postgres ]; then
        process_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
            *.sql) echo "running $f"; process_sql --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | process_sql --dbname "$POSTGRES_DB" ;;
            *) [ -e "$f" ] && echo "ignoring $f" ;;
        esac
    done
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
    teardown_nss_wrapper
    echo 'PostgreSQL init process complete; ready for start up.'
}

if [ "$1" = 'postgres' ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    export POSTGRES_USER POSTGRES_DB
    if [ "$(id -u)" = '0' ]; then
        mkdir -p "$PGDATA" /var/run/postgresql
        chown postgres:postgres "$PGDATA" /var/run/postgresql
        chmod 700 "$PGDATA"
        chmod 3777 /var/run/postgresql
        exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        init_database "$@"
    fi
    setup_nss_wrapper
fi

exec "$@"
