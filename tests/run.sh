#!/usr/bin/env bash
# Runs every test: installs missing packages, then `bazel test //...` (unit tests beside
# the code, multi-process tests under tests/ that start real daemons on free loopback
# ports). Prints the summary; exits non-zero on any failure. Extra arguments go to bazel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
"$ROOT/deploy/local/install_deps.sh"
echo "bazel $(bazel --version 2>/dev/null | awk '{print $2}'): testing //..."
bazel test --noshow_progress --test_summary=short //... "$@"
# The transport-free shard's tests again under AddressSanitizer + UBSan (its own output
# tree: .bazelrc's --config=asan): the window-lifetime test must find no use after free.
echo "bazel: the shard's tests under --config=asan"
bazel test --noshow_progress --test_summary=short --config=asan //server/shard/... "$@"
