#!/usr/bin/env bash
# A private PostgreSQL cluster and Redis server under one state directory, on
# loopback, touching no system service. Used by make up/down/run (state in
# .state/) and by the tests (a temp dir and free ports per test).
#
#   scripts/stack.sh start DIR [--pg-port N] [--redis-port N] [--ephemeral]
#   scripts/stack.sh stop DIR
#   scripts/stack.sh env DIR        print SCALE_DATABASE_URL=... SCALE_REDIS_URL=...
#   scripts/stack.sh status DIR
#
# start is idempotent: what already runs is left alone. --ephemeral trades
# durability for speed (no fsync, no Redis persistence): for tests only.
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` user Debian's package creates, and owns only DIR/pg.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
shift 2
pg_port=55432
redis_port=56379
ephemeral=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --pg-port) pg_port=$2; shift 2 ;;
    --redis-port) redis_port=$2; shift 2 ;;
    --ephemeral) ephemeral=1; shift ;;
    *) echo "stack: unknown option $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
PGDATA="$dir/pg/data"
PGSOCK="$dir/pg/run"
REDIS_DIR="$dir/redis"

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_running() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
redis_running() { [[ -f $REDIS_DIR/redis.pid ]] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null; }

# Ports are recorded at first start; later starts reuse them.
load_ports() {
  if [[ -f $dir/ports ]]; then
    # shellcheck disable=SC1091
    source "$dir/ports"
  fi
}

start_pg() {
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    mkdir -p "$dir/pg"
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres:postgres "$dir/pg"
      # The postgres user must be able to reach DIR.
      chmod o+x "$dir"
    fi
    as_pg mkdir -p "$PGDATA" "$PGSOCK"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      >"$dir/pg/initdb.log" 2>&1 || { cat "$dir/pg/initdb.log" >&2; exit 1; }
  fi
  if pg_running; then return 0; fi
  local opts="-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGSOCK"
  opts+=" -c max_connections=200 -c shared_buffers=128MB"
  if [[ $ephemeral -eq 1 ]]; then
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$dir/pg/postgres.log" -o "$opts" -w -t 60 start >/dev/null ||
    { tail -20 "$dir/pg/postgres.log" >&2; exit 1; }
  if ! as_pg "$PGBIN/../bin/psql" -h "$PGSOCK" -p "$pg_port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'scale'" 2>/dev/null | grep -q 1; then
    as_pg "$PGBIN/../bin/psql" -h "$PGSOCK" -p "$pg_port" -U postgres -d postgres -qc "CREATE DATABASE scale" >/dev/null
  fi
}

start_redis() {
  if redis_running; then return 0; fi
  mkdir -p "$REDIS_DIR"
  local persist=(--save "60 1" --appendonly no)
  [[ $ephemeral -eq 1 ]] && persist=(--save "" --appendonly no)
  redis-server --port "$redis_port" --bind 127.0.0.1 --protected-mode yes --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" "${persist[@]}"
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "stack: redis did not start; see $REDIS_DIR/redis.log" >&2
  exit 1
}

print_env() {
  load_ports
  echo "SCALE_DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/scale"
  echo "SCALE_REDIS_URL=redis://127.0.0.1:$redis_port/0"
}

case $cmd in
  start)
    load_ports
    printf 'pg_port=%s\nredis_port=%s\n' "$pg_port" "$redis_port" >"$dir/ports"
    start_pg
    start_redis
    ;;
  stop)
    load_ports
    if [[ -f $PGDATA/PG_VERSION ]] && pg_running; then
      as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    fi
    if redis_running; then
      redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$REDIS_DIR/redis.pid")"
      for _ in $(seq 1 100); do redis_running || break; sleep 0.05; done
    fi
    ;;
  env) print_env ;;
  status)
    load_ports
    if pg_running; then echo "postgresql: running on 127.0.0.1:$pg_port"; else echo "postgresql: stopped"; fi
    if redis_running; then echo "redis: running on 127.0.0.1:$redis_port"; else echo "redis: stopped"; fi
    ;;
  *) echo "stack: unknown command $cmd" >&2; exit 2 ;;
esac
