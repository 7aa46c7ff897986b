#!/usr/bin/env bash
# import_bench.sh BUILD_DIR: the import figures of `make bench`.
#
# Generates a statement CSV of SCALE_BENCH_IMPORT_ROWS rows (default
# 1,000,000), imports it end to end through ImportStatementStream into a
# scale-server backed by its own PostgreSQL (tests/with-stack.sh), and in the
# same run loads the same rows into an identical table with plain COPY
# through psql. Prints rows/s for both and the ratio (target >= 0.5x of raw
# COPY), the server's peak RSS during the import (target < 256 MB), and the
# parse-only throughput in MB/s (target >= 200 MB/s on one core) from
# scale-bench-parse. Figures only: never fails on time.
set -euo pipefail
BUILD_DIR=${1:?usage: $0 BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD_DIR in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
ROWS=${SCALE_BENCH_IMPORT_ROWS:-1000000}

if [[ -z ${SCALE_DATABASE_URL:-} ]]; then
  # Re-run inside a private, ephemeral PostgreSQL + Redis.
  exec "$ROOT/tests/with-stack.sh" "$0" "$BUILD_DIR"
fi

WORK=$(mktemp -d)
PID=""
cleanup() {
  [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

/usr/bin/python3 - "$WORK/statement.csv" "$ROWS" <<'EOF'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
merchants = ["Swiggy", "Amazon", "Uber", "Zomato", "Big Basket", "Airtel", "Shell", "Starbucks"]
with open(path, "w") as f:
    f.write("Date,Description,Reference,Debit,Credit\n")
    for i in range(n):
        d = "2025-%02d-%02d" % (1 + (i // 28) % 12, 1 + i % 28)
        m = merchants[i % len(merchants)]
        amt = "%d.%02d" % (rnd.randint(1, 99999), rnd.randint(0, 99))
        if i % 10 == 0:
            f.write("%s,SALARY CREDIT %d,REF%08d,,%s\n" % (d, i, i, amt))
        else:
            f.write("%s,UPI-%s-ORDER %d,REF%08d,%s,\n" % (d, m.upper(), i, i, amt))
EOF
SIZE=$(stat -c %s "$WORK/statement.csv")
awk -v r="$ROWS" -v s="$SIZE" 'BEGIN {printf "import bench: %d rows, %.1f MB CSV\n", r, s / 1e6}'

# Parse only (no database): the parser's own throughput on one core.
if [[ -x $BUILD_DIR/bin/scale-bench-parse ]]; then
  "$BUILD_DIR/bin/scale-bench-parse" "$WORK/statement.csv"
fi

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SECRET="bench-only-secret-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
SCALE_GRPC_ADDR=127.0.0.1:$PORT SCALE_LOG_LEVEL=warn SCALE_METRICS_ADDR=off SCALE_JWT_SECRET=$SECRET \
  SCALE_GRPC_MAX_MESSAGE_BYTES=64M "$BUILD_DIR/bin/scale-server" 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
TOKEN=$(SCALE_JWT_SECRET=$SECRET "$BUILD_DIR/bin/scalectl" token --user 00000000-0000-4000-8000-0000000000be)

# Peak RSS: VmHWM is the process's high-water mark, read after the import.
RESULT=$(/usr/bin/python3 - "$WORK/statement.csv" "$PORT" "$TOKEN" "$PID" <<'EOF'
import sys, time
import grpc
path, port, token, pid = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out

def field(num, payload):
    return varint((num << 3) | 2) + varint(len(payload)) + payload

data = open(path, "rb").read()
header = field(1, b"statement.csv") + field(4, b"INR") + varint((9 << 3) | 0) + varint(len(data))
def chunks():
    yield field(1, header)                      # part.header
    for i in range(0, len(data), 1 << 20):
        yield field(2, data[i:i + (1 << 20)])   # part.chunk

ch = grpc.insecure_channel("127.0.0.1:" + port)
call = ch.stream_unary("/scale.ingestion.v1.IngestionService/ImportStatementStream")
t0 = time.monotonic()
try:
    resp = call(chunks(), metadata=(("authorization", "Bearer " + token),), timeout=1800)
except grpc.RpcError as e:
    print("import failed: %s: %s" % (e.code(), e.details()), file=sys.stderr)
    resp = b""
secs = time.monotonic() - t0
inserted = 0
i = 0
while i < len(resp):  # field 2 (inserted), varint
    key = resp[i]; i += 1
    wt, num = key & 7, key >> 3
    if wt == 0:
        v = s = 0
        while True:
            b = resp[i]; i += 1
            v |= (b & 0x7F) << s; s += 7
            if not b & 0x80: break
        if num == 2: inserted = v
    elif wt == 2:
        ln = s = 0
        while True:
            b = resp[i]; i += 1
            ln |= (b & 0x7F) << s; s += 7
            if not b & 0x80: break
        i += ln
    else:
        break
hwm = [l for l in open("/proc/%s/status" % pid) if l.startswith("VmHWM")][0].split()[1]
print(inserted, "%.3f" % secs, int(hwm) // 1024)
EOF
)
read -r INSERTED IMPORT_SECS RSS_MB <<<"$RESULT"

# The same rows, raw: COPY into an identical table through psql.
psql -q "$SCALE_DATABASE_URL" -c "CREATE TABLE bench_copy (LIKE accounts.transactions INCLUDING ALL)" >/dev/null
/usr/bin/python3 - "$WORK/statement.csv" "$WORK/rows.tsv" <<'EOF'
import hashlib, sys, uuid
src, dst = sys.argv[1], sys.argv[2]
user = "00000000-0000-4000-8000-0000000000bf"
with open(src) as f, open(dst, "w") as out:
    next(f)
    for line in f:
        d, desc, ref, debit, credit = line.rstrip("\n").split(",")
        amt = -round(float(debit) * 100) if debit else round(float(credit) * 100)
        fp = hashlib.sha256(line.encode()).hexdigest()
        out.write("%s\t%s\t%s\t%d\tINR\t\t%s\t\t%s\t%s\n" % (uuid.uuid4(), user, d, amt, desc, ref, fp))
EOF
T0=$(date +%s.%N)
psql -q "$SCALE_DATABASE_URL" -c "\\copy bench_copy (id, user_id, date, amount_minor, currency, merchant, description, payment_method, reference, fingerprint) FROM '$WORK/rows.tsv'"
T1=$(date +%s.%N)
COPY_SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.3f", b - a}')

/usr/bin/python3 - "$ROWS" "$INSERTED" "$IMPORT_SECS" "$COPY_SECS" "$RSS_MB" "$SIZE" <<'EOF'
import sys
rows, inserted, isecs, csecs, rss, size = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
irate, crate = rows / isecs, rows / csecs
print("")
print("path                                   |      rows/s |    seconds")
print("---------------------------------------+-------------+-----------")
print("ImportStatementStream (parse+fp+ledger) | %11.0f | %9.2f" % (irate, isecs))
print("psql \\copy into the same table         | %11.0f | %9.2f" % (crate, csecs))
print("")
print("import / raw COPY: %.2fx (target >= 0.5x): %s" % (irate / crate, "meets" if irate / crate >= 0.5 else "MISSES"))
print("rows inserted: %d of %d%s" % (inserted, rows, "" if inserted == rows else "  (WARNING: not all rows)"))
print("scale-server peak RSS: %d MB (target < 256 MB): %s" % (rss, "meets" if rss < 256 else "MISSES"))
EOF
