#!/usr/bin/env bash
# Long fuzzing runs, by hand (the suite runs each target briefly: bazel/fuzz.bzl):
#
#   ./tests/fuzz.sh [RUNS] [TARGET...]
#
# builds the fuzz targets with libFuzzer, ASan and UBSan (--config=asan) and runs each for
# RUNS inputs (default 1,000,000) from its seed corpus, keeping the inputs it finds
# in /tmp/ps-fuzz/<target>/. TARGET is shard, checkpoint_file, mnist, libsvm, tf_config or
# tensor_coding (default: all). A crash leaves its input as /tmp/ps-fuzz/<target>/crash-*; replay it with
# bazel-out/k8-optasan/bin/<package>/<target>_fuzzer <file>.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
RUNS=${1:-1000000}
shift || true
declare -A PACKAGE=([shard]=server/shard [checkpoint_file]=server/checkpoint [mnist]=worker/data
                    [libsvm]=worker/data [tf_config]=common [tensor_coding]=common)
declare -A CORPUS=([shard]=server/shard/fuzz_corpus [checkpoint_file]=server/checkpoint/fuzz_corpus
                   [mnist]=worker/data/fuzz_corpus/mnist [libsvm]=worker/data/fuzz_corpus/libsvm
                   [tf_config]=common/fuzz_corpus [tensor_coding]=common/fuzz_corpus_tensor_coding)
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(shard checkpoint_file mnist libsvm tf_config tensor_coding)
"$ROOT/deploy/local/install_deps.sh"
labels=()
for t in "${TARGETS[@]}"; do labels+=("//${PACKAGE[$t]}:${t}_fuzzer"); done
bazel build --noshow_progress --config=asan "${labels[@]}"
for t in "${TARGETS[@]}"; do
  work=/tmp/ps-fuzz/$t
  mkdir -p "$work/corpus"
  echo "== $t: $RUNS runs"
  start=$SECONDS
  "bazel-out/k8-optasan/bin/${PACKAGE[$t]}/${t}_fuzzer" -runs="$RUNS" -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "${CORPUS[$t]}" \
    2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|SUMMARY|Done)|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error" || true
  echo "== $t: $((SECONDS - start)) s"
  if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    echo "== $t: found a failing input: $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null)"
    exit 1
  fi
done
