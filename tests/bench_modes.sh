#!/usr/bin/env bash
# Which mode to pick (docs/modes.md): the demo's job (MLP 784-512-256-10 on Fashion-MNIST,
# 2 shards, batch 64 per worker, SGD with momentum) in each way of training, one after the
# other on the same binaries, with the global batch and learning rate each one used, then
# one markdown table of speed and test accuracy.
#
#   ./tests/bench_modes.sh [--rounds R] [--epochs E] [--setups S,...] [-- worker flags]
#
# R: default 1; E: default 5; --setups: only these (default all):
#   sync            BSP, 2 workers, lr 0.02
#   sync_lr_scaled  BSP, 2 workers, lr 0.04 (linear scaling for the doubled global batch)
#   async           2 workers, lr 0.02
#   ssp             bounded staleness 2, 2 workers, lr 0.02
#   sync_buffered   BSP, 2 workers, one push per 4 local steps (their gradients' sum), lr 0.01 (demo.sh: 2/K)
#   async_buffered  async, 2 workers, one push per 4 local steps, lr 0.01
#   sync_backup     BSP, 3 workers, a step proceeds with 2 pushes (--backup_workers=1)
# Arguments after -- go to every run's workers (e.g. -- --same_host=false). Logs of every
# run stay in a mktemp directory, named in the output.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ROUNDS=1
EPOCHS=5
EXTRA=()
ONLY=()
usage() { sed -n '2,19p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --epochs) EPOCHS="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --setups) IFS=, read -r -a ONLY <<<"${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tests/bench_modes.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in ROUNDS EPOCHS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "tests/bench_modes.sh: --${v,,} '${!v}' must be a positive integer" >&2; exit 2; }
done

SETUPS=(sync sync_lr_scaled async ssp sync_buffered async_buffered sync_backup)
if [ "${#ONLY[@]}" -gt 0 ]; then
  for s in "${ONLY[@]}"; do
    [[ " ${SETUPS[*]} " == *" $s "* ]] || { echo "tests/bench_modes.sh: unknown setup $s" >&2; exit 2; }
  done
  SETUPS=("${ONLY[@]}")
fi
# setup -> "workers|global batch|learning rate|demo.sh flags|description"
declare -A SPEC=(
  [sync]="2|128|0.02|--mode sync|sync (BSP)"
  [sync_lr_scaled]="2|128|0.04|--mode sync|sync, learning rate scaled with the global batch"
  [async]="2|64 per update|0.02|--mode async|async"
  [ssp]="2|64 per update|0.02|--mode ssp --staleness_bound 2|SSP, staleness bound 2"
  [sync_buffered]="2|512 (4 steps x 64 x 2)|0.01|--mode sync --buffer_steps 4|sync, buffered 4 steps"
  [async_buffered]="2|256 per update (4 x 64)|0.01|--mode async --buffer_steps 4|async, buffered 4 steps"
  [sync_backup]="3|128 (the first 2 of 3 pushes)|0.02|--mode sync --workers 3|sync, 3 workers, 1 backup"
)

"$ROOT/deploy/local/install_deps.sh"
echo "building ps_server and ps_worker once for every run ..."
bazel build //server:ps_server //worker:ps_worker >/dev/null 2>&1 ||
  { echo "tests/bench_modes.sh: build failed (run bazel build //server:ps_server //worker:ps_worker)" >&2; exit 1; }
export PS_BIN
PS_BIN="$(bazel info bazel-bin 2>/dev/null)"

WORK="$(mktemp -d /tmp/ps-bench-modes.XXXXXX)"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
LIMIT=$((300 + 120 * EPOCHS))
FAILED=0
echo "logs in $WORK"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SETUPS[@]}"; do
    IFS='|' read -r workers batch lr flags label <<<"${SPEC[$s]}"
    log="$WORK/round$r-$s.log"
    read -r -a mode_flags <<<"$flags"
    worker_flags=()
    [ "$s" = sync_backup ] && worker_flags+=(--backup_workers=1)
    cmd=(./deploy/local/demo.sh --servers 2 --workers "$workers" --batch_size 64 --optimizer momentum
         --learning_rate "$lr" --epochs "$EPOCHS" "${mode_flags[@]}"
         -- ${worker_flags[@]+"${worker_flags[@]}"} ${EXTRA[@]+"${EXTRA[@]}"})
    echo "${cmd[*]}" >"$log"
    rc=0
    timeout --kill-after=30 "$LIMIT" "${cmd[@]}" >>"$log" 2>&1 || rc=$?
    line="$(grep '^final ' "$log" | tail -n 1 || true)"
    rate="$(sed -n 's/.* train_samples_per_sec=\([0-9]*\).*/\1/p' <<<"$line")"
    wall="$(sed -n 's/.* samples_per_sec=\([0-9]*\).*/\1/p' <<<"$line")"
    acc="$(sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p' <<<"$line")"
    if [ "$rc" -ne 0 ] || [ -z "$rate" ] || [ -z "$acc" ]; then
      echo "round $r, $s: failed (exit $rc); see $log" >&2
      FAILED=$((FAILED + 1))
      rate=failed; wall=failed; acc=failed
    else
      echo "round $r, $s: $rate samples/s over the training time, test accuracy $acc" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$rate" "$wall" "$acc" >>"$RESULTS"
  done
done

echo
echo "== tests/bench_modes.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, rounds=$ROUNDS," \
  "epochs=$EPOCHS, 2 shards, batch 64 per worker, SGD momentum 0.9"
[ "${#EXTRA[@]}" -gt 0 ] && echo "worker flags: ${EXTRA[*]}"
echo
specs="$(for s in "${SETUPS[@]}"; do printf '%s|%s\n' "$s" "${SPEC[$s]}"; done)"
python3 - "$RESULTS" "$specs" <<'EOF'
import statistics, sys
results, specs = sys.argv[1], sys.argv[2]
runs = {}
for line in open(results):
    setup, _, rate, wall, acc = line.rstrip("\n").split("\t")
    runs.setdefault(setup, []).append((rate, wall, acc))
def median(setup, i, cast):
    v = [cast(x[i]) for x in runs.get(setup, []) if x[i] != "failed"]
    return None if not v else statistics.median(v)
print("| setup | workers | global batch | learning rate | samples/s, training | samples/s, wall | test accuracy |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for line in specs.splitlines():
    setup, workers, batch, lr, _, label = line.split("|")
    cells = [label, workers, batch, lr]
    for i, cast, fmt in ((0, int, ".0f"), (1, int, ".0f"), (2, float, ".4f")):
        m = median(setup, i, cast)
        cells.append("failed" if m is None else f"{m:{fmt}}")
    print("| " + " | ".join(cells) + " |")
EOF
[ "$FAILED" -eq 0 ] || { echo "tests/bench_modes.sh: $FAILED run(s) failed" >&2; exit 1; }
