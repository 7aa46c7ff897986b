#!/usr/bin/env bash
# make run: start the SCALE processes of BUILD_DIR in the foreground, print
# where to reach them and a call to paste, and stop everything on Ctrl-C.
set -euo pipefail
BUILD_DIR=${1:-build/release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD_DIR/bin"
STATE="$ROOT/.state"
mkdir -p "$STATE/log"

export SCALE_GRPC_ADDR=${SCALE_GRPC_ADDR:-127.0.0.1:50051}
export SCALE_LOG_FORMAT=${SCALE_LOG_FORMAT:-text}

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "run: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

"$BIN/scale-server" 2> >(tee "$STATE/log/scale-server.log" >&2) &
pids+=($!)

# Wait until the port answers (or the server died).
host=${SCALE_GRPC_ADDR%:*}; port=${SCALE_GRPC_ADDR##*:}
for _ in $(seq 1 100); do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "run: scale-server failed to start" >&2; exit 1; fi
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

BUF="$ROOT/tools/node_modules/.bin/buf"
[[ -x "$BUF" ]] || BUF="buf"
cat <<MSG

SCALE is running (logs: .state/log/; Ctrl-C stops everything)
  scale-server   gRPC  $SCALE_GRPC_ADDR   (health + reflection: no proto files needed)

Try:
  $BUF curl --protocol grpc --http2-prior-knowledge --list-methods http://$SCALE_GRPC_ADDR
  $BUF curl --protocol grpc --http2-prior-knowledge -d '{"message":"hello"}' \\
      http://$SCALE_GRPC_ADDR/scale.common.v1.PingService/Ping
  grpcurl -plaintext -d '{"message":"hello"}' $SCALE_GRPC_ADDR scale.common.v1.PingService/Ping

MSG
wait -n "${pids[@]}" || true
