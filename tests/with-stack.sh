#!/usr/bin/env bash
# tests/with-stack.sh CMD [ARGS...]: runs CMD with its own ephemeral
# PostgreSQL and Redis (free loopback ports, a temp dir), exported as
# SCALE_DATABASE_URL and SCALE_REDIS_URL (plus SCALE_TEST_STACK_DIR, so a
# test can stop and restart them), and tears both down afterwards, whatever
# CMD did. Exits with CMD's status.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/scale-test-stack.XXXXXX")
read -r pg_port redis_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
for x in s: x.close()')
cleanup() {
  "$ROOT/scripts/stack.sh" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$ROOT/scripts/stack.sh" start "$dir" --pg-port "$pg_port" --redis-port "$redis_port" --ephemeral
while IFS= read -r line; do export "${line?}"; done < <("$ROOT/scripts/stack.sh" env "$dir")
export SCALE_TEST_STACK_DIR="$dir"
rc=0
"$@" || rc=$?
exit $rc
