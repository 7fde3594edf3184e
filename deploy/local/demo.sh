#!/usr/bin/env bash
# Runs the main job on this machine: parameter-server shards and workers as separate
# daemons on free loopback ports, training an MLP on Fashion-MNIST.
#
# Usage: deploy/local/demo.sh [--mode sync|async] [--servers N] [--workers N]
#                             [--epochs N] [--optimizer NAME] [--learning_rate X]
#                             [--batch_size N] [--device auto|cpu|cuda]
#                             [--staleness_bound N] [--buffer_steps K] [--secure]
#                             [--export FILE.npz] [-- extra worker flags]
# The same settings may come from the environment: MODE, SERVERS, WORKERS, EPOCHS,
# OPTIMIZER, LEARNING_RATE, BATCH_SIZE, DEVICE, STALENESS_BOUND, BUFFER_STEPS.
# --mode ssp is bounded staleness (default bound 2); --buffer_steps K pushes once every
# K local steps (buffered gradients). --secure runs everything as a shared cluster
# should (docs/security.md): mutual TLS with certificates made for this run
# (deploy/k8s/make-tls-secret.sh --out), and tokens with roles; the default is plaintext
# without tokens, on 127.0.0.1 only. --export writes the trained model with psctl export
# (docs/model_files.md; deploy/local/eval_model.py FILE measures it with numpy and PyTorch).
# PS_BIN=<dir> runs <dir>/server/ps_server and <dir>/worker/ps_worker instead of building.
# It installs missing packages, builds, streams progress, stops every daemon it started
# (also on Ctrl-C or failure) and ends with one line:
#   final test_accuracy=... train_samples_per_sec=... samples_per_sec=... mode=... servers=...
# (train_samples_per_sec over the training time alone, samples_per_sec over the wall time
# from starting the workers, as the PyTorch peers in tests/peers/ report them).
set -euo pipefail

MODE="${MODE:-sync}"
SERVERS="${SERVERS:-2}"
WORKERS="${WORKERS:-2}"
EPOCHS="${EPOCHS:-5}"
OPTIMIZER="${OPTIMIZER:-}"
LEARNING_RATE="${LEARNING_RATE:-}"
BATCH_SIZE="${BATCH_SIZE:-64}"
DEVICE="${DEVICE:-auto}"
STALENESS_BOUND="${STALENESS_BOUND:-2}"
BUFFER_STEPS="${BUFFER_STEPS:-1}"
SECURE="${SECURE:-0}"
EXPORT="${EXPORT:-}"
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE="$2"; shift 2 ;;
    --servers) SERVERS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --optimizer) OPTIMIZER="$2"; shift 2 ;;
    --learning_rate|--lr) LEARNING_RATE="$2"; shift 2 ;;
    --batch_size) BATCH_SIZE="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --staleness_bound) STALENESS_BOUND="$2"; shift 2 ;;
    --buffer_steps) BUFFER_STEPS="$2"; shift 2 ;;
    --secure) SECURE=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    --export) EXPORT="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in SERVERS WORKERS EPOCHS BATCH_SIZE BUFFER_STEPS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: $v='${!v}' must be a positive integer" >&2; exit 2; }
done
case "$MODE" in sync|async|ssp) ;; *) echo "demo.sh: mode '$MODE' must be sync, async or ssp" >&2; exit 2 ;; esac
[[ "$STALENESS_BOUND" =~ ^[0-9]+$ ]] || { echo "demo.sh: STALENESS_BOUND='$STALENESS_BOUND' must be a non-negative integer" >&2; exit 2; }
MODE_FLAGS=(--mode="$MODE" --buffer_steps="$BUFFER_STEPS")
[ "$MODE" = ssp ] && MODE_FLAGS+=(--staleness_bound="$STALENESS_BOUND")
# Defaults that reach 0.85 test accuracy within 5 epochs in both modes.
if [ -z "$OPTIMIZER" ]; then OPTIMIZER=momentum; fi
if [ -z "$LEARNING_RATE" ]; then
  case "$OPTIMIZER" in adam|adamw) LEARNING_RATE=0.001 ;; adagrad) LEARNING_RATE=0.01 ;; momentum|nesterov) LEARNING_RATE=0.02 ;; *) LEARNING_RATE=0.1 ;; esac
  # A buffered push carries the sum of K steps' gradients: scale the rate by 2/K (K > 2).
  if [ "$BUFFER_STEPS" -gt 2 ]; then
    LEARNING_RATE="$(awk -v r="$LEARNING_RATE" -v k="$BUFFER_STEPS" 'BEGIN { printf "%g", r * 2 / k }')"
  fi
fi

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
"$ROOT/deploy/local/install_deps.sh"
if [ -n "${PS_BIN:-}" ]; then
  # Binaries built before (tests/bench_link.sh runs the demo where bazel cannot).
  BIN="$PS_BIN"
  [ -x "$BIN/server/ps_server" ] && [ -x "$BIN/worker/ps_worker" ] ||
    { echo "demo.sh: PS_BIN=$BIN holds no server/ps_server and worker/ps_worker" >&2; exit 1; }
else
  echo "building ps_server, ps_worker and psctl (a first build takes several minutes) ..."
  # Bazel's progress every 10 s ("[done / total] what runs"), and its errors.
  BUILD_RC=0
  bazel build --curses=no --show_progress_rate_limit=10 //server:ps_server //worker:ps_worker \
    //psctl:psctl 2>&1 | { grep --line-buffered -E '^\[[0-9,]+ / [0-9,]+\]|ERROR|error:' |
      grep --line-buffered -v 'WorkspaceStatusAction' || true; } |
    sed -u 's/^/  build: /' || BUILD_RC=$?
  BIN="$(bazel info bazel-bin 2>/dev/null)"
  [ "$BUILD_RC" -eq 0 ] && [ -x "$BIN/server/ps_server" ] && [ -x "$BIN/worker/ps_worker" ] ||
    { echo "demo.sh: build failed" >&2; exit 1; }
fi

RUN_DIR="$(mktemp -d /tmp/ps-demo.XXXXXX)"
PIDS=()
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "$code" -ne 0 ] && echo "demo.sh: failed (exit $code); logs are in $RUN_DIR" >&2
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "logs in $RUN_DIR"
SERVER_SECURITY=()
WORKER_SECURITY=()
if [ "$SECURE" = 1 ]; then
  # This run's own CA, certificates and tokens, in the run's directory.
  "$ROOT/deploy/k8s/make-tls-secret.sh" --out "$RUN_DIR/tls" --days 1 >/dev/null
  ( umask 077
    for role in worker operator; do head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$RUN_DIR/$role.token"; done
    printf 'worker %s\noperator %s\n' "$(cat "$RUN_DIR/worker.token")" "$(cat "$RUN_DIR/operator.token")" >"$RUN_DIR/tokens" )
  SERVER_SECURITY=(--tls_cert_file="$RUN_DIR/tls/shard.crt" --tls_key_file="$RUN_DIR/tls/shard.key"
                   --tls_ca_file="$RUN_DIR/tls/ca.crt" --tls_client_certs=require
                   --auth_tokens_file="$RUN_DIR/tokens" --token_file="$RUN_DIR/operator.token")
  WORKER_SECURITY=(--tls_ca_file="$RUN_DIR/tls/ca.crt" --tls_cert_file="$RUN_DIR/tls/worker.crt"
                   --tls_key_file="$RUN_DIR/tls/worker.key" --token_file="$RUN_DIR/worker.token")
  echo "secure: mutual TLS (certificates in $RUN_DIR/tls) and tokens ($RUN_DIR/tokens)"
fi
# Every shard is told every shard's address (as in a real deployment), so any one of
# them can answer for the whole job (psctl). The ports are free ones picked now.
PORTS=()
for ((s = 0; s < SERVERS; s++)); do
  PORTS+=("$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')")
done
PEERS="$(printf '127.0.0.1:%s,' "${PORTS[@]}")"
PEERS="${PEERS%,}"
for ((s = 0; s < SERVERS; s++)); do
  "$BIN/server/ps_server" --host=127.0.0.1 --port="${PORTS[$s]}" --port_file="$RUN_DIR/server-$s.port" \
    --shard_index="$s" --servers="$PEERS" --metrics_port=0 \
    --metrics_port_file="$RUN_DIR/server-$s.metrics_port" ${SERVER_SECURITY[@]+"${SERVER_SECURITY[@]}"} \
    >"$RUN_DIR/server-$s.log" 2>&1 &
  PIDS+=($!)
done
ADDRS=()
for ((s = 0; s < SERVERS; s++)); do
  for _ in $(seq 100); do [ -s "$RUN_DIR/server-$s.port" ] && break; sleep 0.1; done
  [ -s "$RUN_DIR/server-$s.port" ] || { echo "server $s did not start:" >&2; cat "$RUN_DIR/server-$s.log" >&2; exit 1; }
  ADDRS+=("127.0.0.1:$(cat "$RUN_DIR/server-$s.port")")
done
SERVER_LIST="$(IFS=,; echo "${ADDRS[*]}")"
echo "servers: $SERVER_LIST"
if [ "$SECURE" = 1 ]; then
  echo "watch it: PS_TOKEN_FILE=$RUN_DIR/operator.token $BIN/psctl/psctl --servers=$SERVER_LIST" \
    "--tls_ca_file=$RUN_DIR/tls/ca.crt --tls_cert_file=$RUN_DIR/tls/operator.crt" \
    "--tls_key_file=$RUN_DIR/tls/operator.key watch"
else
  echo "watch it: $BIN/psctl/psctl --servers=$SERVER_LIST watch"
fi
for ((s = 0; s < SERVERS; s++)); do
  echo "metrics of shard $s: curl http://127.0.0.1:$(cat "$RUN_DIR/server-$s.metrics_port" 2>/dev/null)/metrics"
done

WORKER_PIDS=()
START=$(date +%s.%N)
for ((w = 0; w < WORKERS; w++)); do
  "$BIN/worker/ps_worker" --servers="$SERVER_LIST" --worker_index="$w" --num_workers="$WORKERS" \
    "${MODE_FLAGS[@]}" --epochs="$EPOCHS" --optimizer="$OPTIMIZER" --learning_rate="$LEARNING_RATE" \
    --batch_size="$BATCH_SIZE" --device="$DEVICE" ${WORKER_SECURITY[@]+"${WORKER_SECURITY[@]}"} \
    "${EXTRA[@]}" >"$RUN_DIR/worker-$w.log" 2>&1 &
  WORKER_PIDS+=($!)
  PIDS+=($!)
done
# On the terminal: worker 0's progress lines (its "job ~" figure is the whole job's pace),
# and from every worker its waits, warnings, errors and final line; the rest stays in
# the logs.
for ((w = 0; w < WORKERS; w++)); do
  if [ "$w" -eq 0 ]; then
    pattern='epoch|accuracy|waiting|done|rejoin|discarded|^[EW][0-9]{8}'
  else
    pattern='waiting|done|rejoin|discarded|^[EW][0-9]{8}'
  fi
  tail -n +1 -F "$RUN_DIR/worker-$w.log" 2>/dev/null | grep --line-buffered -E "$pattern" &
  PIDS+=($!)
done
FAILED=0
for ((w = 0; w < WORKERS; w++)); do
  if ! wait "${WORKER_PIDS[$w]}"; then
    echo "worker $w failed; its log:" >&2
    tail -n 20 "$RUN_DIR/worker-$w.log" >&2
    FAILED=1
  fi
done
END=$(date +%s.%N)
sleep 0.3  # let the streams print the last lines
[ "$FAILED" -eq 0 ] || exit 1

EVAL="$("$BIN/worker/ps_worker" --servers="$SERVER_LIST" --eval_only --device="$DEVICE" \
  ${WORKER_SECURITY[@]+"${WORKER_SECURITY[@]}"} 2>"$RUN_DIR/eval.log")" ||
  { echo "evaluation failed:" >&2; cat "$RUN_DIR/eval.log" >&2; exit 1; }
ACC="$(echo "$EVAL" | sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p')"
if [ -n "$EXPORT" ]; then
  PSCTL_SECURITY=()
  [ "$SECURE" = 1 ] && PSCTL_SECURITY=(--token_file="$RUN_DIR/operator.token" --tls_ca_file="$RUN_DIR/tls/ca.crt"
                                      --tls_cert_file="$RUN_DIR/tls/operator.crt" --tls_key_file="$RUN_DIR/tls/operator.key")
  "$BIN/psctl/psctl" --servers="$SERVER_LIST" ${PSCTL_SECURITY[@]+"${PSCTL_SECURITY[@]}"} export \
    --out="$EXPORT" | tail -n 1 || { echo "export failed" >&2; exit 1; }
fi
SAMPLES=0
for ((w = 0; w < WORKERS; w++)); do
  n="$(sed -n 's/.* done .*samples=\([0-9]*\) .*/\1/p' "$RUN_DIR/worker-$w.log")"
  SAMPLES=$((SAMPLES + ${n:-0}))
done
RATE="$(awk -v n="$SAMPLES" -v a="$START" -v b="$END" 'BEGIN { printf "%d", n / (b - a) }')"
# Over the training time alone: every worker's samples over the longest worker's own
# training seconds (its "done ... seconds=", from its first step to its last).
TRAIN_RATE="$(cat "$RUN_DIR"/worker-*.log |
  sed -n 's/.* done .*samples=\([0-9]*\) seconds=\([0-9.]*\).*/\1 \2/p' |
  awk '{ n += $1; if ($2 > t) t = $2 } END { if (t > 0) printf "%d", n / t; else print 0 }')"
WALL="$(awk -v a="$START" -v b="$END" 'BEGIN { printf "%.1f", b - a }')"
echo "throughput: $TRAIN_RATE samples/s over the training time ($SAMPLES samples; the workers'" \
  "start-up and data loading excluded); $RATE samples/s over the ${WALL} s since they started"
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()
echo "final test_accuracy=$ACC train_samples_per_sec=$TRAIN_RATE samples_per_sec=$RATE mode=$MODE servers=$SERVERS workers=$WORKERS epochs=$EPOCHS secure=$([ "$SECURE" = 1 ] && echo tls+tokens || echo no)"
