#!/usr/bin/env bash
# make lint: formatting (clang-format, the committed .clang-format) and the API
# contract (buf lint over an image protoc builds against Debian's protos).
set -euo pipefail
cd "$(dirname "$0")/.."
rc=0

echo "lint: clang-format"
if ! git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror; then
  echo "lint: run 'make format'" >&2
  rc=1
fi

echo "lint: buf lint"
img=$(mktemp --suffix=.binpb)
trap 'rm -f "$img"' EXIT
(cd protos && protoc -I . -I /usr/include -I /usr/share/grpc-proto \
   -I /usr/share/gocode/src/github.com/gogo/googleapis \
   --include_imports --include_source_info -o "$img" $(find scale -name '*.proto' | sort))
# Lint only SCALE's files; the image also holds the third-party imports.
if ! tools/node_modules/.bin/buf lint "$img" --path scale --config protos/buf.yaml; then rc=1; fi

[[ $rc -eq 0 ]] && echo "lint: ok"
exit $rc
