#!/usr/bin/env bash
# Installs the pinned npm tools (tools/package.json: buf) into tools/node_modules.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/../tools"
want=$(sed -n 's/.*"@bufbuild\/buf": *"\([^"]*\)".*/\1/p' package.json)
if [[ -x node_modules/.bin/buf ]] && [[ "$(node_modules/.bin/buf --version 2>/dev/null)" == "$want" ]]; then
  exit 0
fi
echo "tools: installing buf $want (npm)"
# package.json pins buf exactly, and buf pins its per-platform binary package
# exactly, so no lock file is needed (and none is written).
npm install --no-package-lock --no-save --no-audit --no-fund --loglevel=error
