#!/usr/bin/env bash
# The local stack: PostgreSQL, Redis and every SCALE process, on loopback,
# with state under .state/ (git-ignored; no system service is touched).
#
#   scripts/local.sh run  BUILD_DIR   start everything, print where it is, stop it all on Ctrl-C
#   scripts/local.sh up   BUILD_DIR   the same in the background (twice is harmless)
#   scripts/local.sh down             stop what `up` started (data is kept)
#   scripts/local.sh clean-data       down, then remove .state/
#
# Data survives down/up. The JWT secret the servers verify with is made once
# (random) and kept in .state/jwt-secret; `scalectl token` mints tokens with it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE="$ROOT/.state"
cmd=${1:-}
BUILD_DIR=${2:-build/release}
BIN="$ROOT/$BUILD_DIR/bin"

# The processes of the stack, in start order: name and the env var with its address.
PROCS=(scale-server)

stack_env() {
  while IFS= read -r line; do export "${line?}"; done < <("$ROOT/scripts/stack.sh" env "$STATE")
  if [[ ! -s $STATE/jwt-secret ]]; then
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '/+=\n' >"$STATE/jwt-secret")
  fi
  SCALE_JWT_SECRET=$(<"$STATE/jwt-secret")
  export SCALE_JWT_SECRET
  export SCALE_GRPC_ADDR=${SCALE_GRPC_ADDR:-127.0.0.1:50051}
}

alive() { [[ -f $STATE/run/$1.pid ]] && kill -0 "$(<"$STATE/run/$1.pid")" 2>/dev/null; }

wait_port() { # NAME HOST:PORT PID
  local host=${2%:*} port=${2##*:}
  for _ in $(seq 1 300); do
    kill -0 "$3" 2>/dev/null || { echo "local: $1 exited; see .state/log/$1.log" >&2; tail -5 "$STATE/log/$1.log" >&2; return 1; }
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "local: $1 did not open $2 within 30 s" >&2
  return 1
}

start_procs() {
  mkdir -p "$STATE/log" "$STATE/run"
  for p in "${PROCS[@]}"; do
    if alive "$p"; then continue; fi
    [[ -x $BIN/$p ]] || { echo "local: $BIN/$p is missing; build first (make build)" >&2; exit 1; }
    "$BIN/$p" >>"$STATE/log/$p.log" 2>&1 &
    echo $! >"$STATE/run/$p.pid"
    wait_port "$p" "$SCALE_GRPC_ADDR" "$!"
  done
}

stop_procs() {
  local p pid
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
    p=${PROCS[i]}
    if alive "$p"; then
      pid=$(<"$STATE/run/$p.pid")
      kill -TERM "$pid"
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$STATE/run/$p.pid"
  done
}

banner() {
  local buf=tools/node_modules/.bin/buf token
  [[ -x $ROOT/$buf ]] || buf=buf
  token=$("$BIN/scalectl" token --user 00000000-0000-4000-8000-000000000001 --ttl 86400)
  cat <<MSG

SCALE is running (state and logs: .state/)
  scale-server   gRPC        $SCALE_GRPC_ADDR   (health + reflection: no proto files needed)
  PostgreSQL     ${SCALE_DATABASE_URL}
  Redis          ${SCALE_REDIS_URL}

A token for a local user (valid 24 h; mint more with: SCALE_JWT_SECRET=\$(cat .state/jwt-secret) $BUILD_DIR/bin/scalectl token --user new):
  export TOKEN=$token

Try:
  $buf curl --protocol grpc --http2-prior-knowledge --list-methods http://$SCALE_GRPC_ADDR
  $buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" \\
      http://$SCALE_GRPC_ADDR/scale.accounts.v1.AccountsService/GetProfile
  grpcurl -plaintext -H "authorization: Bearer \$TOKEN" $SCALE_GRPC_ADDR scale.accounts.v1.AccountsService/GetSettings
MSG
}

case $cmd in
  run)
    mkdir -p "$STATE"
    "$ROOT/scripts/stack.sh" start "$STATE"
    stack_env
    # Ctrl-C reaches the whole process group; whatever else has died (even
    # the terminal or a pipe we write to), stop everything we started.
    shutdown_all() {
      set +e
      trap '' INT TERM PIPE
      echo "local: stopping" 2>/dev/null
      stop_procs
      "$ROOT/scripts/stack.sh" stop "$STATE" >/dev/null 2>&1
      kill "${tailer:-}" 2>/dev/null
      exit 0
    }
    trap shutdown_all INT TERM HUP
    start_procs
    banner
    echo "  (Ctrl-C stops everything; logs follow)"
    tail -n 0 -F "$STATE/log/"*.log &
    tailer=$!
    # Return when a process dies or on Ctrl-C (the trap).
    while true; do
      for p in "${PROCS[@]}"; do
        if ! alive "$p"; then
          kill "$tailer" 2>/dev/null || true
          echo "local: $p stopped; see .state/log/$p.log" >&2
          stop_procs
          "$ROOT/scripts/stack.sh" stop "$STATE"
          exit 1
        fi
      done
      sleep 1
    done
    ;;
  up)
    mkdir -p "$STATE"
    "$ROOT/scripts/stack.sh" start "$STATE"
    stack_env
    start_procs
    banner
    echo "  (make down stops it; data is kept)"
    ;;
  down)
    [[ -d $STATE ]] || exit 0
    stop_procs
    "$ROOT/scripts/stack.sh" stop "$STATE"
    echo "local: stopped (data kept in .state/; make clean-data removes it)"
    ;;
  clean-data)
    if [[ -d $STATE ]]; then
      stop_procs
      "$ROOT/scripts/stack.sh" stop "$STATE"
      rm -rf "$STATE"
    fi
    echo "local: data removed"
    ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
