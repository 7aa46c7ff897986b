#!/usr/bin/env bash
# Installs every Debian package SCALE needs to build, test and run locally.
# Idempotent: packages already present are skipped; nothing happens when all are.
# Usage: scripts/deps.sh [--check]   (--check: list what is missing, exit 1 if any)
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates xxd
  clang clang-format clang-tidy libclang-rt-14-dev
  # gRPC C core, protobuf, protobuf-c, and the protos we compile against
  libgrpc-dev protobuf-compiler libprotobuf-dev
  protobuf-c-compiler libprotobuf-c-dev
  grpc-proto golang-github-gogo-googleapis-dev
  # the C++ reference server used by `make bench`
  libgrpc++-dev protobuf-compiler-grpc
  # platform libraries
  libssl-dev libpq-dev libhiredis-dev libjwt-dev libjansson-dev
  libmicrohttpd-dev libopenblas-dev libzip-dev libexpat1-dev
  # local stack and tests
  postgresql redis-server
  libcriterion-dev python3 python3-grpcio python3-protobuf python3-yaml
  nghttp2-client curl procps iproute2
)

# Node.js runs the pinned buf CLI (tools/package.json). A machine may carry a
# Node.js of its own (with npm bundled); use it rather than fight it.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "deps: missing: ${missing[*]}"
  exit 1
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine; refresh them once.
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
