#!/usr/bin/env bash
# Runs every test: installs missing packages, then `bazel test //...` (unit tests beside
# the code, multi-process tests under tests/ that start real daemons on free loopback
# ports). Prints the summary; exits non-zero on any failure.
#
#   ./tests/run.sh                 the suite (what a change must pass)
#   ./tests/run.sh --sanitizers    the suite, then again under AddressSanitizer +
#                                  UndefinedBehaviorSanitizer (.bazelrc's --config=asan:
#                                  clang, the thread-safety analysis, fuzz targets on
#                                  libFuzzer), then the transport-free concurrency tests
#                                  under ThreadSanitizer (--config=tsan); what CI runs
#
# Other arguments go to bazel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SANITIZERS=0
ARGS=()
for a in "$@"; do
  if [ "$a" = "--sanitizers" ]; then SANITIZERS=1; else ARGS+=("$a"); fi
done
# openssh: tests/launcher_test runs deploy/hosts/launch.py through its own sshd;
# python3-torch: tests/export_multiprocess_test loads the exported model into an nn.Module.
"$ROOT/deploy/local/install_deps.sh" openssh-client openssh-server python3-torch
echo "bazel $(bazel --version 2>/dev/null | awk '{print $2}'): testing //..."
start=$SECONDS
bazel test --noshow_progress --test_summary=short //... ${ARGS[@]+"${ARGS[@]}"}
echo "tests/run.sh: the suite took $((SECONDS - start)) s"
if [ "$SANITIZERS" = 1 ]; then
  echo "bazel: the whole suite again under --config=asan (ASan + UBSan)"
  start=$SECONDS
  bazel test --noshow_progress --test_summary=short --config=asan //... ${ARGS[@]+"${ARGS[@]}"}
  echo "tests/run.sh: the sanitizer run took $((SECONDS - start)) s"
  # Not server/rpc or tests/: Debian's gRPC is not built with TSan, so what it hands from
  # thread to thread looks unordered (docs/reliability.md, "Sanitizers").
  TSAN_TARGETS=(//common/... //server/table/... //server/shard/... //server/checkpoint/...
                //worker/client/... //worker/data/... //worker/model/... //worker/train/...)
  echo "bazel: the transport-free concurrency tests under --config=tsan (ThreadSanitizer)"
  start=$SECONDS
  bazel test --noshow_progress --test_summary=short --config=tsan "${TSAN_TARGETS[@]}" \
    ${ARGS[@]+"${ARGS[@]}"}
  echo "tests/run.sh: the ThreadSanitizer run took $((SECONDS - start)) s"
fi
