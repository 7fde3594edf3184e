#!/usr/bin/env bash
# What the portable default costs (docs/benchmarks.md, "Portable binaries"): builds the
# step benchmark and the optimizer benchmark for each -march in its own output tree
# (--platform_suffix, so the workspace's own tree is untouched), then runs them in turns,
# round by round, so that every figure compares with the others from the same minutes.
#
#   ./tests/bench_march.sh [--rounds N] [--marches x86-64-v2,x86-64-v3,native]
#
# Prints, per -march: the CPU step time (batch 64, one thread), the optimizer rates on a
# cache-sized range (compute-bound: 256 Ki elements) and on a large one (memory-bound:
# 16 Mi elements). Nothing else should run meanwhile.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ROUNDS=3
MARCHES="x86-64-v2,x86-64-v3,native"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --marches) MARCHES="$2"; shift 2 ;;
    *) echo "tests/bench_march.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
"$ROOT/deploy/local/install_deps.sh"
IFS=',' read -r -a MARCH_LIST <<<"$MARCHES"
OUT="$(mktemp -d /tmp/ps-bench-march.XXXXXX)"
for m in "${MARCH_LIST[@]}"; do
  echo "== building for -march=$m" >&2
  bazel build --noshow_progress --copt=-march="$m" --platform_suffix="march-$m" \
    //kernels:step_benchmark //server/table:optimizer_benchmark >&2
  bin="$(bazel info --copt=-march="$m" --platform_suffix="march-$m" bazel-bin 2>/dev/null)"
  mkdir -p "$OUT/$m"
  cp "$bin/kernels/step_benchmark" "$bin/server/table/optimizer_benchmark" "$OUT/$m/"
done
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
run_rounds() {
for ((r = 1; r <= ROUNDS; r++)); do
  for m in "${MARCH_LIST[@]}"; do
    echo "== round $r, -march=$m"
    "$OUT/$m/step_benchmark" --device=cpu --batch=64 --threads=1 --reference=false \
      --repeats=5 2>&1 | sed "s/^/  step: /"
    for n in 262144 16777216; do
      "$OUT/$m/optimizer_benchmark" --elements="$n" --repeats=5 2>&1 | sed "s/^/  optimizer n=$n: /"
    done
  done
done
}
run_rounds | tee "$OUT/runs.log"
# One markdown table: each figure's median over the rounds per -march, and its ratio to
# the last -march given (native by default); above 1 is slower.
python3 - "$OUT/runs.log" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
march = None; data = {}
for line in text.splitlines():
    m = re.match(r"== round (\d+), -march=(\S+)", line)
    if m: march = m.group(2); data.setdefault(march, {}); continue
    if march is None: continue
    m = re.search(r"RESULT .* step_us=([0-9.]+)", line)
    if m: data[march].setdefault("step (us)", []).append(float(m.group(1))); continue
    m = re.match(r"\s+optimizer n=(\d+): (\S.*?)\s{2,}([0-9.]+)\s", line)
    if m and not m.group(2).startswith("rule"):
        data[march].setdefault("%s, %s elements (ns/elem)" % (m.group(2).strip(), "256 Ki" if m.group(1) == "262144" else "16 Mi"), []).append(float(m.group(3)))
marches = list(data)
rows = list(data[marches[0]])
print("| figure (median of rounds) | " + " | ".join("-march=" + m for m in marches) + " | " +
      " | ".join("%s / %s" % (m, marches[-1]) for m in marches[:-1]) + " |")
print("|" + " --- |" * (1 + 2 * len(marches) - 1))
for r in rows:
    meds = [statistics.median(data[m][r]) for m in marches]
    print("| %s | %s | %s |" % (r, " | ".join("%.3f" % v if v < 100 else "%.0f" % v for v in meds),
                                " | ".join("%.2f" % (v / meds[-1]) for v in meds[:-1])))
PY
rm -rf "$OUT"
