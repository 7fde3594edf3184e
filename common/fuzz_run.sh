#!/usr/bin/env bash
# Runs a fuzz target (bazel/fuzz.bzl) as a test:
#   fuzz_run.sh <fuzzer> <runs> <max_len> <seed file>...
# A libFuzzer build fuzzes for <runs> inputs, starting from the seeds, with new inputs
# kept in a scratch corpus; a build without libFuzzer replays the seeds once each. Either
# way a crash, a sanitizer report or a leak fails the test.
set -euo pipefail
fuzzer=$1 runs=$2 max_len=$3
shift 3
work=${TEST_TMPDIR:-$(mktemp -d)}
mkdir -p "$work/seeds" "$work/new"
cp "$@" "$work/seeds/"
# libFuzzer's help lists its flags; the replay main has none. (Read it whole: a grep -q
# that stops early would end the fuzzer with SIGPIPE, and pipefail would take that as no.)
help=$("$fuzzer" -help=1 2>&1 || true)
if [[ "$help" == *" runs "* ]]; then
  exec "$fuzzer" -runs="$runs" -max_len="$max_len" -seed=1 -print_final_stats=1 \
    -artifact_prefix="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/" "$work/new" "$work/seeds"
fi
exec "$fuzzer" "$work/seeds"
