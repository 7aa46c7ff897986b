#!/usr/bin/env bash
# grpc_bench.sh: the gRPC figures of `make bench`.
#
# Puts scale-server's /scale.common.v1.PingService/Ping side by side with
# scale-bench-ref-server (the same method on the gRPC C++ async API), both
# driven by h2load over h2c at 1, 16 and 64 concurrent streams, and prints
# QPS, p50/p99 latency and the ratios against the targets (QPS >= 0.95x and
# p99 <= 1.1x the reference). The two servers alternate run by run, in ABBA
# order so that drift in the machine does not favour either. A benchmark, not
# a test: missed targets are printed, never an error. Exits non-zero only when
# a server does not start or answers wrongly.
#
# Usage: tests/bench/grpc_bench.sh BUILD_DIR
# Environment (all optional):
#   SCALE_GRPC_THREADS        server threads, same for both (default max(4, 2*nproc))
#   SCALE_BENCH_DURATION      seconds of each timed h2load run (default 5)
#   SCALE_BENCH_WARMUP        seconds of warm-up before each timed run (default 1)
#   SCALE_BENCH_ROUNDS        timed runs per server per level (default 2)
#   SCALE_BENCH_H2LOAD_THREADS  h2load threads, capped by its connections (default max(1, nproc/2))
#   SCALE_BENCH_SERVER_BIN    server measured as "scale" (default BUILD_DIR/bin/scale-server)
#   SCALE_BENCH_REF_BIN       reference server (default BUILD_DIR/bin/scale-bench-ref-server)
#   SCALE_BENCH_KEEP=1        keep the work directory (h2load logs, server output)
set -euo pipefail

PY=/usr/bin/python3
METHOD=/scale.common.v1.PingService/Ping

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
BUILD_DIR=$1
SCALE_BIN=${SCALE_BENCH_SERVER_BIN:-$BUILD_DIR/bin/scale-server}
REF_BIN=${SCALE_BENCH_REF_BIN:-$BUILD_DIR/bin/scale-bench-ref-server}
DURATION=${SCALE_BENCH_DURATION:-5}
WARMUP=${SCALE_BENCH_WARMUP:-1}
ROUNDS=${SCALE_BENCH_ROUNDS:-2}
NPROC=$(nproc)
THREADS=${SCALE_GRPC_THREADS:-$((2 * NPROC > 4 ? 2 * NPROC : 4))}
H2LOAD_THREADS=${SCALE_BENCH_H2LOAD_THREADS:-$((NPROC / 2 > 1 ? NPROC / 2 : 1))}

# Concurrency levels as "streams:connections:streams-per-connection". Few
# connections with several streams each is how gRPC clients multiplex, and
# keeps h2load's own CPU share small on a small machine.
LEVELS=("1:1:1" "16:4:4" "64:4:16")

for v in DURATION WARMUP ROUNDS THREADS H2LOAD_THREADS; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "grpc_bench: $v must be a positive integer, got '${!v}'" >&2
    exit 2
  fi
done
for tool in h2load "$PY"; do
  command -v "$tool" >/dev/null || { echo "grpc_bench: $tool not found (scripts/deps.sh)" >&2; exit 1; }
done
for bin in "$SCALE_BIN" "$REF_BIN"; do
  [[ -x $bin ]] || { echo "grpc_bench: $bin not built (configure with -DSCALE_BUILD_BENCH=ON)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/scale-grpc-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${SCALE_BENCH_KEEP:-} == 1 ]]; then
    echo "grpc_bench: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two distinct free loopback ports: both sockets are open at once, so the
# kernel cannot hand out the same one twice.
read -r SCALE_PORT REF_PORT < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
for x in s: x.close()')

# start_server NAME PORT LOGFILE CMD... : starts CMD in the background and
# waits until PORT accepts connections; exits the script if it never does.
start_server() {
  local name=$1 port=$2 log=$3
  shift 3
  "$@" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "grpc_bench: $name exited during start-up; its output:" >&2
      sed 's/^/  | /' "$log" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "grpc_bench: $name did not accept connections on 127.0.0.1:$port within 10 s; its output:" >&2
  sed 's/^/  | /' "$log" >&2
  exit 1
}

start_server scale-server "$SCALE_PORT" "$WORK/scale.log" \
  env SCALE_GRPC_ADDR="127.0.0.1:$SCALE_PORT" SCALE_LOG_LEVEL=error \
  SCALE_GRPC_THREADS="$THREADS" SCALE_MIGRATE=off \
  SCALE_JWT_SECRET="bench-only-secret-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" "$SCALE_BIN"
start_server scale-bench-ref-server "$REF_PORT" "$WORK/ref.log" \
  env SCALE_GRPC_ADDR="127.0.0.1:$REF_PORT" SCALE_GRPC_THREADS="$THREADS" "$REF_BIN"
SCALE_PID=${PIDS[0]}
REF_PID=${PIDS[1]}
CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }          # fields after the command name
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))    # utime, stime (fields 14 and 15 of the file)
}

# The request, built once: PingRequest{message: "bench", payload: bytes 0..63}
# in protobuf wire format (field 1 and 2, both length-delimited), behind the
# 5-byte gRPC message prefix (flag 0 = uncompressed, big-endian length).
"$PY" - "$WORK/request.bin" "$WORK/body.bin" <<'EOF'
import struct, sys
message, payload = b"bench", bytes(range(64))
req = b"\x0a" + bytes([len(message)]) + message + b"\x12" + bytes([len(payload)]) + payload
open(sys.argv[1], "wb").write(req)
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(req)) + req)
EOF

# Before timing anything, check with a client nobody here wrote (grpcio) that
# each server answers OK with the echoed message and payload, and honours a
# valid x-request-id both in the response and in the initial metadata.
check_answer() {
  local name=$1 port=$2
  if ! "$PY" - "127.0.0.1:$port" "$WORK/request.bin" <<'EOF'
import sys, grpc

def fields(buf):
    """Top-level fields of a protobuf message: {number: [raw values]}."""
    out, i = {}, 0
    def varint():
        nonlocal i
        v, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            v |= (b & 0x7F) << shift; shift += 7
            if b < 0x80: return v
    while i < len(buf):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0: val = varint()
        elif wt == 2:
            n = varint(); val = buf[i:i + n]; i += n
        else: raise ValueError("unexpected wire type %d" % wt)
        out.setdefault(num, []).append(val)
    return out

addr, req_path = sys.argv[1], sys.argv[2]
req = open(req_path, "rb").read()
rid = "bench-check-0001"
with grpc.insecure_channel(addr) as ch:
    ping = ch.unary_unary("/scale.common.v1.PingService/Ping")  # raw bytes both ways
    try:
        resp, call = ping.with_call(req, metadata=[("x-request-id", rid)], timeout=5)
    except grpc.RpcError as e:
        sys.exit("Ping failed: %s %s" % (e.code(), e.details()))
f = fields(resp)
problems = []
if f.get(1) != [b"bench"]: problems.append("message not echoed: %r" % f.get(1))
if f.get(2) != [bytes(range(64))]: problems.append("payload not echoed")
if 3 not in f: problems.append("no server_time")
if f.get(4) != [rid.encode()]: problems.append("request_id %r, want %r" % (f.get(4), rid))
if dict(call.initial_metadata()).get("x-request-id") != rid:
    problems.append("x-request-id metadata missing or different")
if problems: sys.exit("; ".join(problems))
print("ok: %d-byte response, version %s, server %s"
      % (len(resp), f.get(5, [b"?"])[0].decode(), f.get(6, [b"?"])[0].decode()))
EOF
  then
    echo "grpc_bench: $name on 127.0.0.1:$port answered Ping wrongly" >&2
    exit 1
  fi
}
echo "answer check (grpcio):"
printf '  scale  '; check_answer scale-server "$SCALE_PORT"
printf '  ref    '; check_answer scale-bench-ref-server "$REF_PORT"

# run_h2load PORT CONNS STREAMS LOGFILE: one timed run (after its own warm-up,
# which h2load leaves out of the log). Prints a warning when any response was
# not HTTP 200 or carried no gRPC message (a trailers-only error answer).
run_h2load() {
  local port=$1 conns=$2 streams=$3 log=$4 pid=$5
  local t=$((H2LOAD_THREADS < conns ? H2LOAD_THREADS : conns))
  local out c0 c1
  # The server's CPU time is sampled over the timed part only (h2load ends
  # right after it), so CPU per call is a figure the noise of a shared
  # machine disturbs far less than QPS.
  h2load -c "$conns" -m "$streams" -t "$t" --warm-up-time="${WARMUP}s" -D "${DURATION}s" \
    -d "$WORK/body.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    --log-file="$log" "http://127.0.0.1:$port$METHOD" >"$log.out" 2>&1 &
  local h2=$!
  sleep "$WARMUP"
  c0=$(cpu_ticks "$pid")
  wait "$h2" || true
  c1=$(cpu_ticks "$pid")
  out=$(<"$log.out")
  local done_n ok_n data_b
  done_n=$(sed -n 's/^requests: .* \([0-9][0-9]*\) done,.*/\1/p' <<<"$out")
  ok_n=$(sed -n 's/^status codes: \([0-9][0-9]*\) 2xx,.*/\1/p' <<<"$out")
  data_b=$(sed -n 's/^traffic: .*(\([0-9][0-9]*\)) data$/\1/p' <<<"$out")
  if [[ -z $done_n || -z $ok_n || $done_n -eq 0 ]]; then
    echo "WARNING: h2load on port $port produced no results:"
    sed 's/^/  | /' <<<"$out"
  elif ! grep -q "$done_n succeeded, 0 failed, 0 errored, 0 timeout" <<<"$out" ||
       [[ $ok_n -ne $done_n ]]; then
    echo "WARNING: port $port: not every request got HTTP 200: $(grep -E '^(requests|status codes):' <<<"$out" | tr '\n' ' ')"
  elif [[ -n $data_b && $((data_b / done_n)) -lt 78 ]]; then
    # 78 = the 5-byte prefix plus the echoed message and payload alone.
    echo "WARNING: port $port: $((data_b / done_n)) bytes of DATA per response; some answers carried no message (gRPC errors?)"
  fi
  # "ticks calls" for the CPU-per-call figure.
  echo "$((c1 - c0)) ${done_n:-0}" >"$log.cpu"
}

# cpu_per_call LOG...: server CPU microseconds per call over the given runs.
cpu_per_call() {
  cat "${@/%/.cpu}" | awk -v tck="$CLK_TCK" '{t += $1; n += $2} END {printf "%.1f", n ? t / tck * 1e6 / n : 0}'
}

# stats LOG...: "QPS P50 P99" over the given h2load log files. QPS is the
# number of HTTP 200 responses over the sum of each run's span (first start
# to last end); percentiles are nearest-rank over all runs' latencies (µs).
stats() {
  "$PY" - "$@" <<'EOF'
import math, sys
lat, n, span = [], 0, 0.0
for path in sys.argv[1:]:
    first, last = None, None
    for line in open(path):
        cols = line.split("\t")
        if len(cols) < 3: continue
        start, status, elapsed = int(cols[0]), int(cols[1]), int(cols[2])
        first = start if first is None else min(first, start)
        last = start + elapsed if last is None else max(last, start + elapsed)
        if status == 200:
            n += 1
            lat.append(elapsed)
    if first is not None: span += (last - first) / 1e6
lat.sort()
pct = lambda p: lat[max(0, math.ceil(p / 100 * len(lat)) - 1)] if lat else 0
print("%.0f %d %d" % (n / span if span else 0, pct(50), pct(99)))
EOF
}

echo
echo "servers: scale-server $SCALE_BIN; reference $REF_BIN; $THREADS server threads each"
echo "load: h2load (h2c), per run ${WARMUP} s warm-up + ${DURATION} s timed, $ROUNDS timed runs per server"
echo "      per level in ABBA order (scale, ref, ref, scale, ...); $(nproc) CPUs shared by servers and h2load"
echo "levels: 1 stream = 1 connection x 1; 16 = 4 connections x 4; 64 = 4 connections x 16"
echo

declare -A RESULT CPU
for level in "${LEVELS[@]}"; do
  IFS=: read -r streams conns per_conn <<<"$level"
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then order=(scale ref); else order=(ref scale); fi
    for who in "${order[@]}"; do
      if [[ $who == scale ]]; then port=$SCALE_PORT pid=$SCALE_PID; else port=$REF_PORT pid=$REF_PID; fi
      printf '  %2d streams, round %d: %s...\n' "$streams" "$((r + 1))" "$who" >&2
      run_h2load "$port" "$conns" "$per_conn" "$WORK/$who-$streams-$r.log" "$pid"
    done
  done
  RESULT[scale-$streams]=$(stats "$WORK"/scale-"$streams"-*.log)
  RESULT[ref-$streams]=$(stats "$WORK"/ref-"$streams"-*.log)
  CPU[scale-$streams]=$(cpu_per_call "$WORK"/scale-"$streams"-*.log)
  CPU[ref-$streams]=$(cpu_per_call "$WORK"/ref-"$streams"-*.log)
done

# compare S_QPS R_QPS S_P99 R_P99: "QPS-ratio P99-ratio verdict", the verdict
# judged on the unrounded ratios against the issue's targets.
compare() {
  "$PY" - "$@" <<'EOF'
import sys
s_qps, r_qps, s_p99, r_p99 = map(float, sys.argv[1:])
qr = s_qps / r_qps if r_qps else float("nan")
pr = s_p99 / r_p99 if r_p99 else float("nan")
q_ok = "meets" if qr >= 0.95 else "MISSES"
p_ok = "meets" if pr <= 1.10 else "MISSES"
print("%.2f %.2f QPS %.2fx %s >=0.95x; p99 %.2fx %s <=1.1x" % (qr, pr, qr, q_ok, pr, p_ok))
EOF
}

echo
# Written out rather than printf-padded: printf pads "µs" by bytes, not characters.
echo 'streams | scale QPS |   ref QPS | QPS ratio | scale p50/p99 µs |   ref p50/p99 µs | p99 ratio'
echo '--------+-----------+-----------+-----------+------------------+------------------+----------'
VERDICTS=()
for level in "${LEVELS[@]}"; do
  streams=${level%%:*}
  read -r s_qps s_p50 s_p99 <<<"${RESULT[scale-$streams]}"
  read -r r_qps r_p50 r_p99 <<<"${RESULT[ref-$streams]}"
  read -r qr pr verdict <<<"$(compare "$s_qps" "$r_qps" "$s_p99" "$r_p99")"
  printf '%7s | %9s | %9s | %8sx | %16s | %16s | %8sx\n' \
    "$streams" "$s_qps" "$r_qps" "$qr" "$s_p50/$s_p99" "$r_p50/$r_p99" "$pr"
  VERDICTS+=("streams $streams: $verdict")
done
echo
echo 'server CPU per call (user+system over the timed runs; less noisy than QPS):'
echo 'streams | scale µs/call | ref µs/call | ratio'
for level in "${LEVELS[@]}"; do
  streams=${level%%:*}
  printf '%7s | %13s | %11s | %5sx\n' "$streams" "${CPU[scale-$streams]}" "${CPU[ref-$streams]}" \
    "$(awk -v a="${CPU[scale-$streams]}" -v b="${CPU[ref-$streams]}" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')"
done
echo
printf '%s\n' "${VERDICTS[@]}"
