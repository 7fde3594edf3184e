#!/usr/bin/env bash
# The training benchmark (docs/benchmarks.md, 1b): the demo's job, MLP
# 784-512-256-10 on Fashion-MNIST, batch 64 per worker, plain SGD lr 0.1, against PyTorch
# peers doing the same job on the same machine. R rounds, interleaved, of:
#   1. demo TCP:     deploy/local/demo.sh, sync, 2 servers x 2 workers, -- --same_host=false
#   2. demo TCP bf16: the same with 16-bit values on the wire (--wire_format=bf16)
#   3. demo TCP layers: demo TCP with each layer pushed as backward produces it (--layer_overlap)
#   4. demo windows: demo TCP's job through same-host windows (--same_host=true)
#   4b. demo TCP secure: demo TCP with mutual TLS and tokens (demo.sh --secure)
#   5. DDP:          tests/peers/torch_ddp.py (DistributedDataParallel, gloo, 2 processes)
#   6. RPC PS sync:  tests/peers/torch_rpc_ps.py --mode sync (1 PS, 2 trainers)
#   7. RPC PS async: tests/peers/torch_rpc_ps.py --mode async (1 PS, 2 trainers)
#   8. single:       tests/peers/torch_ddp.py --processes 1 (one PyTorch process, no peers)
# then one markdown table: each round's samples/s and test accuracy, the medians, and the
# ratios the goals use: demo TCP / DDP and demo windows / RPC PS sync (medians, this run),
# and what bf16 on the wire changes: speed, accuracy, and the bytes the workers pushed.
# samples/s is every figure's own final line: all workers' samples over the wall time
# from starting the workers to the end of training (the ratios use it); a last column
# leaves out process start and data loading (the peers' train_samples_per_sec; the
# demo's samples over its slowest worker's "seconds").
#
#   ./tests/bench_train.sh [--rounds R] [--epochs E] [--quick] [--setups S,...]
#                          [--demo_flags "..."] [-- worker flags]
#
# R: default 3; E: default 5; --quick: 1 round of 1 epoch; --setups: only these (names
# as in the table's first column: demo_tcp, demo_tcp_bf16, demo_tcp_layers, demo_windows,
# demo_tcp_secure, ddp, rpc_ps_sync, rpc_ps_async, torch_single; default all). --demo_flags go to demo.sh
# itself (e.g. "--servers 1"), the arguments after -- to every demo run's workers (e.g.
# -- --wire_format=bf16). Logs of every run stay in a mktemp directory, named in the output.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ROUNDS=3
EPOCHS=5
DEMO_FLAGS=()
EXTRA=()
ONLY=()
usage() { sed -n '2,29p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --rounds=*) ROUNDS="${1#--rounds=}"; shift ;;
    --epochs) EPOCHS="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --epochs=*) EPOCHS="${1#--epochs=}"; shift ;;
    --quick) ROUNDS=1; EPOCHS=1; shift ;;
    --setups) IFS=, read -r -a ONLY <<<"${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --demo_flags) read -r -a DEMO_FLAGS <<<"${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --demo_flags=*) read -r -a DEMO_FLAGS <<<"${1#--demo_flags=}"; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tests/bench_train.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in ROUNDS EPOCHS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "tests/bench_train.sh: --${v,,} '${!v}' must be a positive integer" >&2; exit 2; }
done

"$ROOT/deploy/local/install_deps.sh"
# Debian's python3-torch is for /usr/bin/python3; a pyenv or virtualenv python3 first on
# PATH does not see it.
torch_python() {
  local py
  for py in python3 /usr/bin/python3; do
    "$py" -c 'import torch' 2>/dev/null && { echo "$py"; return 0; }
  done
  return 1
}
if ! PY="$(torch_python)"; then
  echo "tests/bench_train.sh: installing python3-torch (the PyTorch peers)"
  "$ROOT/deploy/local/install_deps.sh" python3-torch
  PY="$(torch_python)" || { echo "tests/bench_train.sh: python3-torch installed but 'import torch' fails" >&2; exit 1; }
fi
echo "building ps_server, ps_worker and psctl ..."
bazel build --noshow_progress //server:ps_server //worker:ps_worker //psctl:psctl
BIN="$ROOT/bazel-bin"
# demo.sh builds again on every run: a source edited meanwhile would change the binaries
# between rounds, so the figures would not compare. Say so if it happens.
binaries_sum() { cat "$BIN/server/ps_server" "$BIN/worker/ps_worker" | md5sum | cut -d' ' -f1; }
BUILT="$(binaries_sum)"

WORK="$(mktemp -d /tmp/ps-bench-train.XXXXXX)"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
LIMIT=$((300 + 120 * EPOCHS))  # seconds per run, far above any healthy one
FAILED=0
REBUILT=0

DEMO=(./deploy/local/demo.sh --mode sync --servers 2 --workers 2 --batch_size 64
      --optimizer sgd --learning_rate 0.1 --epochs "$EPOCHS" "${DEMO_FLAGS[@]+"${DEMO_FLAGS[@]}"}")
SETUPS=(demo_tcp demo_tcp_bf16 demo_tcp_layers demo_windows demo_tcp_secure ddp rpc_ps_sync
        rpc_ps_async torch_single)
if [ "${#ONLY[@]}" -gt 0 ]; then
  for s in "${ONLY[@]}"; do
    [[ " ${SETUPS[*]} " == *" $s "* ]] || { echo "tests/bench_train.sh: unknown setup $s" >&2; exit 2; }
  done
  SETUPS=("${ONLY[@]}")
fi
declare -A LABEL=(
  [demo_tcp]="this project, demo, sync, TCP only"
  [demo_tcp_bf16]="this project, demo, sync, TCP only, bf16 wire"
  [demo_tcp_layers]="this project, demo, sync, TCP only, layer overlap"
  [demo_windows]="this project, demo, sync, same-host windows"
  [demo_tcp_secure]="this project, demo, sync, TCP only, mutual TLS + tokens"
  [ddp]="PyTorch DistributedDataParallel, gloo, 2 processes"
  [rpc_ps_sync]="PyTorch RPC parameter server, 2 trainers, sync"
  [rpc_ps_async]="PyTorch RPC parameter server, 2 trainers, async"
  [torch_single]="PyTorch, one process (no servers, no peers)"
)

# Runs setup $1 of round $2, bounded by LIMIT; appends "setup round rate accuracy
# train_rate" to RESULTS ("failed" for all three when it fails).
run_setup() {
  local setup=$1 round=$2 log="$WORK/round$2-$1.log" cmd
  case "$setup" in
    demo_tcp) cmd=("${DEMO[@]}" -- --same_host=false "${EXTRA[@]+"${EXTRA[@]}"}") ;;
    demo_tcp_bf16) cmd=("${DEMO[@]}" -- --same_host=false --wire_format=bf16 "${EXTRA[@]+"${EXTRA[@]}"}") ;;
    demo_tcp_layers) cmd=("${DEMO[@]}" -- --same_host=false --layer_overlap "${EXTRA[@]+"${EXTRA[@]}"}") ;;
    demo_tcp_secure) cmd=("${DEMO[@]}" --secure -- --same_host=false "${EXTRA[@]+"${EXTRA[@]}"}") ;;
    demo_windows) cmd=("${DEMO[@]}" -- --same_host=true "${EXTRA[@]+"${EXTRA[@]}"}") ;;
    ddp) cmd=("$PY" tests/peers/torch_ddp.py --processes 2 --batch_size 64 --lr 0.1 --epochs "$EPOCHS") ;;
    rpc_ps_sync) cmd=("$PY" tests/peers/torch_rpc_ps.py --mode sync --trainers 2 --batch_size 64
                      --lr 0.1 --epochs "$EPOCHS") ;;
    rpc_ps_async) cmd=("$PY" tests/peers/torch_rpc_ps.py --mode async --trainers 2 --batch_size 64
                       --lr 0.1 --epochs "$EPOCHS") ;;
    torch_single) cmd=("$PY" tests/peers/torch_ddp.py --processes 1 --batch_size 64 --lr 0.1 --epochs "$EPOCHS") ;;
  esac
  echo "${cmd[*]}" >"$log"
  local rc=0
  timeout --kill-after=30 "$LIMIT" "${cmd[@]}" >>"$log" 2>&1 || rc=$?
  local line rate acc train pushed=-
  line="$(grep '^final ' "$log" | tail -n 1 || true)"
  rate="$(sed -n 's/.* samples_per_sec=\([0-9]*\).*/\1/p' <<<"$line")"
  acc="$(sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p' <<<"$line")"
  # Without process start and data loading: the peers print it; for the demo, all
  # workers' samples over the longest worker's training seconds ("done ... seconds=").
  train="$(sed -n 's/.* train_samples_per_sec=\([0-9]*\).*/\1/p' <<<"$line")"
  if [[ "$setup" == demo_* ]]; then
    local dir
    dir="$(sed -n 's/^logs in //p' "$log" | head -n 1)"
    train="$(cat "$dir"/worker-*.log 2>/dev/null |
      sed -n 's/.* done .*samples=\([0-9]*\) seconds=\([0-9.]*\).*/\1 \2/p' |
      awk '{ n += $1; if ($2 > t) t = $2 } END { if (t > 0) printf "%d", n / t }')"
    pushed="$(cat "$dir"/worker-*.log 2>/dev/null | sed -n 's/.* done .*pushed_bytes=\([0-9]*\).*/\1/p' |
      awk '{ n += $1 } END { if (n > 0) printf "%.0f", n }')"
  fi
  if [ "$rc" -ne 0 ] || [ -z "$rate" ] || [ -z "$acc" ]; then
    echo "round $round, $setup: failed (exit $rc); see $log" >&2
    FAILED=$((FAILED + 1))
    rate=failed; acc=failed; train=failed
  else
    echo "round $round, $setup: $rate samples/s, test accuracy $acc" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$setup" "$round" "$rate" "$acc" "${train:--}" "${pushed:--}" >>"$RESULTS"
  if [[ "$setup" == demo_* ]] && [ "$(binaries_sum)" != "$BUILT" ]; then
    echo "round $round, $setup: demo.sh rebuilt the binaries (sources changed during the run)" >&2
    REBUILT=1
    BUILT="$(binaries_sum)"
  fi
}

echo "logs in $WORK"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SETUPS[@]}"; do run_setup "$s" "$r"; done
done

echo
echo "== tests/bench_train.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, rounds=$ROUNDS" \
  "(interleaved), epochs=$EPOCHS, batch 64 per worker, plain SGD lr 0.1"
[ "${#DEMO_FLAGS[@]}" -gt 0 ] && echo "demo flags: ${DEMO_FLAGS[*]}"
[ "${#EXTRA[@]}" -gt 0 ] && echo "demo worker flags: ${EXTRA[*]}"
echo
labels="$(for s in "${SETUPS[@]}"; do printf '%s\t%s\n' "$s" "${LABEL[$s]}"; done)"
python3 - "$RESULTS" "$ROUNDS" "$labels" <<'EOF'
import statistics, sys
results, rounds, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3]
order = [l.split("\t") for l in labels.splitlines()]
runs = {}
for line in open(results):
    setup, rnd, rate, acc, train, pushed = line.rstrip("\n").split("\t")
    runs.setdefault(setup, {})[int(rnd)] = (rate, acc, train, pushed)
def median(setup, i, cast):
    v = [cast(x[i]) for x in runs.get(setup, {}).values() if x[i] not in ("failed", "-")]
    return statistics.median(v) if v else None
head = ["setup"] + [f"round {r}: samples/s (accuracy)" for r in range(1, rounds + 1)]
print("| " + " | ".join(head + ["median samples/s", "median accuracy",
                                 "median samples/s, training only"]) + " |")
print("|" + " --- |" * (len(head) + 3))
for setup, label in order:
    cells = [label]
    for r in range(1, rounds + 1):
        rate, acc, _, _ = runs.get(setup, {}).get(r, ("failed",) * 4)
        cells.append("failed" if rate == "failed" else f"{int(rate)} ({acc})")
    m, a, t = median(setup, 0, int), median(setup, 1, float), median(setup, 2, int)
    cells += ["-" if x is None else f"{x:{f}}" for x, f in ((m, ".0f"), (a, ".4f"), (t, ".0f"))]
    print("| " + " | ".join(cells) + " |")
print()
fmt = lambda x: "-" if x is None else f"{x:.0f}"
for num, den, name in (("demo_tcp", "ddp", "demo TCP / DDP"),
                       ("demo_tcp_bf16", "ddp", "demo TCP with bf16 / DDP"),
                       ("demo_tcp_layers", "ddp", "demo TCP with layer overlap / DDP"),
                       ("demo_tcp_layers", "demo_tcp", "demo TCP: layer overlap / whole step"),
                       ("demo_tcp_secure", "demo_tcp", "demo TCP: mutual TLS + tokens / plaintext"),
                       ("demo_windows", "rpc_ps_sync", "demo windows / RPC PS sync"),
                       ("demo_windows", "torch_single", "demo windows (2 workers) / one PyTorch process")):
    for i, what in ((0, "samples/s"), (2, "samples/s, training only")):
        a, b = median(num, i, int), median(den, i, int)
        ratio = "-" if a is None or not b else f"{a / b:.2f}"
        print(f"{name}: {ratio} (medians {fmt(a)} / {fmt(b)} {what})")
a32, a16 = median("demo_tcp", 1, float), median("demo_tcp_bf16", 1, float)
b32, b16 = median("demo_tcp", 3, int), median("demo_tcp_bf16", 3, int)
if None not in (a32, a16, b32, b16):
    print(f"bf16 wire against float32 (TCP): accuracy {a16:.4f} vs {a32:.4f} "
          f"({100 * (a16 - a32):+.2f} points), bytes pushed {b16} vs {b32} ({b16 / b32:.3f}x)")
EOF
echo
echo "logs: $WORK"
[ "$REBUILT" -eq 0 ] || echo "warning: demo.sh rebuilt the binaries during the run; rounds may differ in code"
[ "$FAILED" -eq 0 ] || { echo "tests/bench_train.sh: $FAILED run(s) failed" >&2; exit 1; }
