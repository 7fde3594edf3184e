#!/usr/bin/env bash
# Layer overlap (--layer_overlap) where a link, not the CPU, bounds the step: the demo's
# job (deploy/local/demo.sh: sync, 2 servers x 2 workers, batch B, plain SGD lr 0.1, TCP
# only) run inside a network namespace of its own whose loopback a token bucket (tc tbf)
# limits to RATE, as a cluster's network would, with and without layer overlap; R rounds,
# interleaved. Then one markdown table: samples/s and test accuracy per round, medians,
# and the ratio layer overlap / whole step.
#
#   sudo ./tests/bench_link.sh [--rounds R] [--epochs E] [--rate RATE] [--batch_size B]
#
# R: default 3; E: default 2; RATE: default 6gbit (tc's units); B: default 64 per
# worker (a larger batch computes longer for the same bytes). Needs root and tc
# (iproute2). The host's network is never touched: the shaped loopback is the
# namespace's own, and the namespace is deleted on exit. (A token bucket, not netem:
# these machines' kernels have no netem, so the link adds no delay of its own.)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ROUNDS=3
EPOCHS=2
RATE=6gbit
BATCH=64
usage() { sed -n '2,15p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --epochs) EPOCHS="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --rate) RATE="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --batch_size) BATCH="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tests/bench_link.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in ROUNDS EPOCHS BATCH; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "tests/bench_link.sh: ${v,,} '${!v}' must be a positive integer" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "tests/bench_link.sh: needs root (network namespaces, tc)" >&2; exit 1; }
command -v tc >/dev/null && command -v ip >/dev/null ||
  { echo "tests/bench_link.sh: needs tc and ip (apt-get install iproute2)" >&2; exit 1; }

"$ROOT/deploy/local/install_deps.sh"
echo "building ps_server, ps_worker and psctl ..."
bazel build --noshow_progress //server:ps_server //worker:ps_worker //psctl:psctl
BIN="$(bazel info bazel-bin 2>/dev/null)"

NS="ps-bench-link-$$"
WORK="$(mktemp -d /tmp/ps-bench-link.XXXXXX)"
cleanup() { ip netns delete "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
# A burst of 1 MiB: far above one 64 KiB loopback packet, well below one step's bytes.
tc -n "$NS" qdisc add dev lo root tbf rate "$RATE" burst 1mb latency 50ms ||
  { echo "tests/bench_link.sh: tc could not shape the namespace's loopback (tbf)" >&2; exit 1; }
echo "namespace $NS: loopback limited to $RATE ($(tc -n "$NS" qdisc show dev lo))"
echo "logs in $WORK"

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
LIMIT=$((300 + 300 * EPOCHS))
FAILED=0
DEMO=(./deploy/local/demo.sh --mode sync --servers 2 --workers 2 --batch_size "$BATCH"
      --optimizer sgd --learning_rate 0.1 --epochs "$EPOCHS" -- --same_host=false)
SETUPS=(whole_step layer_overlap)
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SETUPS[@]}"; do
    log="$WORK/round$r-$s.log"
    flags=()
    [ "$s" = layer_overlap ] && flags=(--layer_overlap)
    rc=0
    # PS_BIN: demo.sh runs these binaries rather than building (bazel's client and
    # server talk over the host's loopback, which the namespace does not have).
    timeout --kill-after=30 "$LIMIT" ip netns exec "$NS" env PS_BIN="$BIN" \
      "${DEMO[@]}" ${flags[@]+"${flags[@]}"} >"$log" 2>&1 || rc=$?
    line="$(grep '^final ' "$log" | tail -n 1 || true)"
    rate="$(sed -n 's/.* samples_per_sec=\([0-9]*\).*/\1/p' <<<"$line")"
    acc="$(sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p' <<<"$line")"
    if [ "$rc" -ne 0 ] || [ -z "$rate" ] || [ -z "$acc" ]; then
      echo "round $r, $s: failed (exit $rc); see $log" >&2
      FAILED=$((FAILED + 1))
      rate=failed; acc=failed
    else
      echo "round $r, $s: $rate samples/s, test accuracy $acc" >&2
    fi
    printf '%s\t%s\t%s\t%s\n' "$s" "$r" "$rate" "$acc" >>"$RESULTS"
  done
done

echo
echo "== tests/bench_link.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, rounds=$ROUNDS" \
  "(interleaved), epochs=$EPOCHS, batch $BATCH per worker; loopback limited to $RATE (tc tbf)"
echo
python3 - "$RESULTS" "$ROUNDS" <<'EOF'
import statistics, sys
results, rounds = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(results):
    setup, rnd, rate, acc = line.rstrip("\n").split("\t")
    runs.setdefault(setup, {})[int(rnd)] = (rate, acc)
def median(setup, i, cast):
    v = [cast(x[i]) for x in runs.get(setup, {}).values() if x[i] != "failed"]
    return statistics.median(v) if v else None
labels = {"whole_step": "demo TCP, sync, whole-step push-pull",
          "layer_overlap": "demo TCP, sync, --layer_overlap"}
print("| setup | " + " | ".join(f"round {r}: samples/s (accuracy)" for r in range(1, rounds + 1)) +
      " | median samples/s | median accuracy |")
print("|" + " --- |" * (rounds + 3))
for setup, label in labels.items():
    cells = [label]
    for r in range(1, rounds + 1):
        rate, acc = runs.get(setup, {}).get(r, ("failed", "failed"))
        cells.append("failed" if rate == "failed" else f"{int(rate)} ({acc})")
    m, a = median(setup, 0, int), median(setup, 1, float)
    cells += ["-" if m is None else f"{m:.0f}", "-" if a is None else f"{a:.4f}"]
    print("| " + " | ".join(cells) + " |")
a, b = median("layer_overlap", 0, int), median("whole_step", 0, int)
if a and b:
    print(f"\nlayer overlap / whole step: {a / b:.2f} (medians {a:.0f} / {b:.0f} samples/s)")
EOF
[ "$FAILED" -eq 0 ] || { echo "tests/bench_link.sh: $FAILED run(s) failed" >&2; exit 1; }
