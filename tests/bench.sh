#!/usr/bin/env bash
# The wire benchmark (docs/benchmarks.md, section 2): starts shards on loopback ports and
# prints, in one run, so that every figure compares with the limits beside it:
#   1. the limits: loopback TCP (iperf3, 1 MiB writes) and a plain gRPC unary call
#      (worker/grpc_echo_benchmark: a 1-byte reply as for a push, the bytes echoed as
#      for a pull);
#   2. push, pull and push+pull (the server's SGD applies every push) for 4 KiB to 16 MiB,
#      1 shard x 1 worker and 2 x 2, 1 and 8 calls in flight, over TCP and through
#      same-host windows: GB/s (all workers together), p50 and p99;
#   3. how cost grows: push and pull p50 against size, 4 KiB to 256 MiB (TCP, 1 x 1);
#   4. one shard's CPU seconds per pushed GB with 1, 2, 4 and 8 workers (TCP, 1 MiB).
#
#   ./tests/bench.sh [--seconds=S] [--quick]     (S: per figure, default 1; --quick:
#                                                 sections 1 and 2 at 1 MiB and 16 MiB)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SECONDS_PER=1
QUICK=0
for a in "$@"; do
  case "$a" in
    --seconds=*) SECONDS_PER="${a#--seconds=}" ;;
    --quick) QUICK=1 ;;
    *) echo "tests/bench.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
"$ROOT/deploy/local/install_deps.sh"
if ! command -v iperf3 >/dev/null; then
  echo "tests/bench.sh: installing iperf3 (the loopback limit)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null; }
fi
bazel build --noshow_progress //server:ps_server //worker:pushpull_benchmark \
  //worker:grpc_echo_benchmark
BIN="$ROOT/bazel-bin"
WORK="$(mktemp -d /tmp/ps-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }

# Starts `n` shards (args after n go to each); sets SERVERS to their addresses and SHARD_PIDS.
start_shards() {
  local n=$1; shift
  SERVERS=""; SHARD_PIDS=()
  local ports=() i
  for ((i = 0; i < n; i++)); do ports+=("$(free_port)"); done
  local all; all=$(printf '127.0.0.1:%s,' "${ports[@]}"); all=${all%,}
  for ((i = 0; i < n; i++)); do
    "$BIN/server/ps_server" --host=127.0.0.1 --port="${ports[$i]}" --shard_index=$i \
      --servers="$all" "$@" >"$WORK/shard-$i.log" 2>&1 &
    PIDS+=($!); SHARD_PIDS+=($!)
  done
  SERVERS=$all
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 100); do
      grep -q "serving on" "$WORK/shard-$i.log" && break; sleep 0.1
    done
  done
}
stop_shards() {
  for p in "${SHARD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

# Runs `w` benchmark processes at once (worker indices 0..w-1); prints their summed
# figures, one line per size and op: size op GB/s p50 p99 (p50 the workers' median, p99
# their worst).
run_workers() {
  local w=$1; shift
  local i pids=()
  for ((i = 0; i < w; i++)); do
    "$BIN/worker/pushpull_benchmark" --servers="$SERVERS" --worker_index=$i --table_format=false \
      --seconds="$SECONDS_PER" "$@" >"$WORK/bench-$i.out" 2>"$WORK/bench-$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { cat "$WORK"/bench-*.err >&2; exit 1; }; done
  python3 - "$WORK" "$w" <<'EOF'
import sys, collections, statistics
work, w = sys.argv[1], int(sys.argv[2])
rows = collections.OrderedDict()
for i in range(w):
    for line in open(f"{work}/bench-{i}.out"):
        f = line.split()
        if len(f) == 5:
            rows.setdefault((f[0], f[1]), []).append(tuple(map(float, f[2:])))
for (size, op), v in rows.items():
    print(size, op, sum(x[0] for x in v), statistics.median(x[1] for x in v), max(x[2] for x in v))
EOF
}

human() { python3 -c "n=int('$1'); print(f'{n>>20} MiB' if n>=1<<20 else f'{n>>10} KiB')"; }

echo "== tests/bench.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, ${SECONDS_PER} s per figure"
echo
echo "## 1. Limits, this run"
IPORT=$(free_port)
iperf3 -s -1 -p "$IPORT" >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
LOOPBACK=$(iperf3 -c 127.0.0.1 -p "$IPORT" -l 1M -t 3 -J |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e9)')
printf 'loopback TCP (iperf3, 1 stream, 1 MiB writes): %.2f GB/s\n' "$LOOPBACK"
if [ "$QUICK" = 1 ]; then SIZES=1048576,16777216; else SIZES=4096,65536,1048576,16777216; fi
"$BIN/worker/grpc_echo_benchmark" --serve --port_file="$WORK/echo_port" >"$WORK/echo.log" 2>&1 &
PIDS+=($!); ECHO_PID=$!
wait_file "$WORK/echo_port"
echo "plain gRPC unary call (callback API, one in flight), push-like (1-byte reply):"
"$BIN/worker/grpc_echo_benchmark" --server="127.0.0.1:$(cat "$WORK/echo_port")" --sizes=$SIZES \
  --seconds="$SECONDS_PER"
kill $ECHO_PID; wait $ECHO_PID 2>/dev/null || true
"$BIN/worker/grpc_echo_benchmark" --serve --reply=echo --port_file="$WORK/echo_port2" >"$WORK/echo2.log" 2>&1 &
PIDS+=($!); ECHO_PID=$!
wait_file "$WORK/echo_port2"
echo "plain gRPC unary call, pull-like (the request's bytes echoed; GB/s of one direction):"
"$BIN/worker/grpc_echo_benchmark" --server="127.0.0.1:$(cat "$WORK/echo_port2")" --sizes=$SIZES \
  --seconds="$SECONDS_PER" --reply=echo
kill $ECHO_PID; wait $ECHO_PID 2>/dev/null || true

echo
echo "## 2. Push, pull, push+pull (async table, server SGD); GB/s of payload, all workers"
printf '%-8s %-9s %-6s %-3s %-9s %8s %7s %8s %8s\n' transport shards×w inflt "" op GB/s "/loop" "p50 us" "p99 us"
for transport in tcp windows; do
  same_host=false; [ "$transport" = windows ] && same_host=true
  for topo in 1 2; do
    start_shards $topo
    for inflight in 1 8; do
      run_workers $topo --sizes=$SIZES --same_host=$same_host --in_flight=$inflight \
        >"$WORK/run.txt"
      while read -r size op gbps p50 p99; do
        printf '%-8s %-9s %-6s %-3s %-9s %8.3f %7.2f %8.0f %8.0f\n' $transport "${topo}x${topo}" \
          $inflight "" "$(human $size) $op" $gbps "$(python3 -c "print($gbps/$LOOPBACK)")" $p50 $p99
      done <"$WORK/run.txt"
    done
    stop_shards
  done
done

[ "$QUICK" = 1 ] && exit 0
echo
echo "## 3. Cost against size (TCP, 1 shard x 1 worker, one in flight)"
start_shards 1
run_workers 1 --sizes=4096,65536,1048576,16777216,67108864,268435456 --same_host=false \
  --ops=push,pull >"$WORK/run.txt"
printf '%-10s %-5s %10s %12s %10s\n' size op "GB/s" "p50 us" "us/MiB"
while read -r size op gbps p50 p99; do
  printf '%-10s %-5s %10.3f %12.0f %10.1f\n' "$(human $size)" $op $gbps $p50 \
    "$(python3 -c "print($p50/($size/1048576))")"
done <"$WORK/run.txt"
stop_shards

echo
echo "## 4. One shard's CPU per pushed GB (TCP, 1 MiB pushes, one in flight per worker)"
printf '%-8s %10s %14s\n' workers "GB/s" "CPU s per GB"
TICKS=$(getconf CLK_TCK)
for w in 1 2 4 8; do
  start_shards 1
  before=$(awk '{print $14 + $15}' /proc/${SHARD_PIDS[0]}/stat)
  t0=$(date +%s.%N)
  run_workers $w --sizes=1048576 --same_host=false --ops=push >"$WORK/run.txt"
  t1=$(date +%s.%N)
  after=$(awk '{print $14 + $15}' /proc/${SHARD_PIDS[0]}/stat)
  read -r _ _ gbps _ _ <"$WORK/run.txt"
  python3 -c "
cpu = ($after - $before) / $TICKS
# The benchmark measured for SECONDS_PER s; registering and creating the table are noise.
gb = $gbps * $SECONDS_PER
print(f'{$w:<8} {$gbps:10.3f} {cpu / gb:14.3f}')"
  stop_shards
done
