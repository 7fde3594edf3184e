#!/usr/bin/env bash
# Builds the CUDA backend test and the step benchmark with Bazel, bundles them with the
# shared libraries they load, and runs them from that bundle on a GPU machine that has
# the CUDA driver and runtime but no Bazel.
#
# Usage:
#   tests/gpu.sh bundle [--dir=DIR] [--with-cuda-libs]
#       Here (Bazel + CUDA toolkit): build //kernels:cuda_backend_test and
#       //kernels:step_benchmark and write DIR (default out/gpu_bundle, git-ignored):
#       DIR/bin (the binaries), DIR/lib (their non-system shared libraries: Bazel's own,
#       Abseil, OpenBLAS + libgfortran, GoogleTest, ...), DIR/lib/fallback (libstdc++,
#       libgcc_s: used only where the target's are too old), DIR/MANIFEST.
#       Never bundled: glibc (libc, libm, libpthread, libdl, librt, ld-linux) and the driver
#       (libcuda, libnvidia-*). The CUDA runtime libraries (libcudart, libcublas,
#       libcublasLt: ~600 MB) are left to the target unless --with-cuda-libs.
#   tests/gpu.sh run [--dir=DIR] [--devices=cuda,cpu] [--batches=64,256,1024]
#                    [--threads=1] [--iters=200] [--tf32]
#       Anywhere (no Bazel needed): run the CUDA test, then the benchmark for every device
#       and batch, from DIR with LD_LIBRARY_PATH=DIR/lib:$CUDA_HOME/lib64, and print a
#       summary table. Without a GPU the CUDA test skips and the cuda benchmark is marked
#       unavailable. Exit status 1 if the test or a benchmark fails.
#   tests/gpu.sh all [options of both]      bundle, then run.
#
# Environment:
#   CUDA_HOME              CUDA libraries for `run` when not bundled (default /usr/local/cuda).
#   PS_BUNDLE_OUTPUT_BASE  Bazel output base of the bundle build (default
#                          ~/.cache/ps_gpu_bundle). A separate one, so its portable flags
#                          do not evict the workspace's usual build outputs.
#   PS_BUNDLE_MARCH        -march of the bundle build (default x86-64-v3: AVX2+FMA, any
#                          recent x86-64 host; the workspace default -march=native might
#                          not run on the GPU machine's CPU).
#
# With this project's device tool: here `tests/gpu.sh bundle`, then
#   run(command="tests/gpu.sh run --batches=64,256,1024", carry=["out/gpu_bundle"]).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-}"
[[ -n "${MODE}" ]] && shift
DIR="${ROOT}/out/gpu_bundle"
WITH_CUDA_LIBS=0
DEVICES="cuda,cpu"
BATCHES="64"
THREADS=1
ITERS=200
TF32=0
for arg in "$@"; do
  case "${arg}" in
    --dir=*) DIR="${arg#--dir=}" ;;
    --with-cuda-libs) WITH_CUDA_LIBS=1 ;;
    --devices=*) DEVICES="${arg#--devices=}" ;;
    --batches=*) BATCHES="${arg#--batches=}" ;;
    --threads=*) THREADS="${arg#--threads=}" ;;
    --iters=*) ITERS="${arg#--iters=}" ;;
    --tf32) TF32=1 ;;
    *) echo "gpu.sh: unknown argument '${arg}' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
[[ "${DIR}" = /* ]] || DIR="${ROOT}/${DIR}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
TARGETS=(//kernels:cuda_backend_test //kernels:step_benchmark)

# Libraries every Linux machine has, or must provide itself: never bundled.
SYSTEM_RE='^(linux-vdso|ld-linux|libc\.so|libm\.so|libmvec\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so|libutil\.so|libcuda\.so|libnvidia-)'
# Backward compatible, so a newer copy is safe: used only where the target's is older.
FALLBACK_RE='^(libstdc\+\+\.so|libgcc_s\.so)'
CUDA_RT_RE='^(libcudart\.so|libcublas\.so|libcublasLt\.so)'

bundle() {
  local output_base="${PS_BUNDLE_OUTPUT_BASE:-${HOME}/.cache/ps_gpu_bundle}"
  local march="${PS_BUNDLE_MARCH:-x86-64-v3}"
  local bazel=(bazel "--output_base=${output_base}")
  local flags=(--symlink_prefix=/ "--copt=-march=${march}")
  echo "== building ${TARGETS[*]} (output base ${output_base}, -march=${march})"
  (cd "${ROOT}" && "${bazel[@]}" build "${flags[@]}" "${TARGETS[@]}")
  local bin_dir
  bin_dir="$(cd "${ROOT}" && "${bazel[@]}" info "${flags[@]}" bazel-bin 2>/dev/null)"

  rm -rf "${DIR}"
  mkdir -p "${DIR}/bin" "${DIR}/lib/fallback"
  local target name lib path
  for target in "${TARGETS[@]}"; do
    name="${target##*:}"
    cp -L "${bin_dir}/kernels/${name}" "${DIR}/bin/${name}"
    chmod u+w "${DIR}/bin/${name}"
    # "soname => /path (0x...)" for every library the loader resolves.
    while read -r lib path; do
      if [[ "${lib}" =~ ${SYSTEM_RE} ]]; then continue; fi
      if [[ "${lib}" =~ ${CUDA_RT_RE} && "${WITH_CUDA_LIBS}" != 1 ]]; then continue; fi
      if [[ "${lib}" =~ ${FALLBACK_RE} ]]; then
        cp -L "${path}" "${DIR}/lib/fallback/${lib}"
      else
        cp -L "${path}" "${DIR}/lib/${lib}"
      fi
    done < <(ldd "${bin_dir}/kernels/${name}" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
    # The copy must resolve from the bundle alone (plus what is never bundled).
    if LD_LIBRARY_PATH="${DIR}/lib" ldd "${DIR}/bin/${name}" | grep -q 'not found'; then
      echo "gpu.sh: ${name} has unresolved libraries in the bundle:" >&2
      LD_LIBRARY_PATH="${DIR}/lib" ldd "${DIR}/bin/${name}" | grep 'not found' >&2
      exit 1
    fi
  done
  chmod -R u+w "${DIR}"
  # Shut the bundle build's Bazel server down: it would hold ~1 GB for hours otherwise.
  (cd "${ROOT}" && "${bazel[@]}" shutdown) || true

  local has_cuda="no (nvcc was not found at build time: the CUDA test will always skip)"
  if ldd "${bin_dir}/kernels/cuda_backend_test" | grep -q libcudart; then has_cuda="yes"; fi
  {
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
    echo "commit: $(cd "${ROOT}" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "march: ${march}"
    echo "cuda: ${has_cuda}"
    if [[ "${has_cuda}" == yes ]]; then
      echo "nvcc: $("${CUDA_HOME}/bin/nvcc" --version 2>/dev/null | sed -n "s/.*release /release /p")"
      echo "needs on the target: an NVIDIA driver for CUDA $("${CUDA_HOME}/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p') or newer$(
        [[ "${WITH_CUDA_LIBS}" == 1 ]] || echo ", and libcudart/libcublas/libcublasLt of that major version in \$CUDA_HOME/lib64")"
    fi
    echo "files:"
    (cd "${DIR}" && find bin lib -type f -printf '  %p %s\n' | sort)
  } > "${DIR}/MANIFEST"
  echo "== bundle in ${DIR} ($(du -sh "${DIR}" | cut -f1)); CUDA: ${has_cuda}"
  (cd "${DIR}" && find bin lib -type f | sort | sed 's/^/  /')
}

# Prints the benchmark's RESULT fields as "key=value" lines.
result_field() {
  tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

run() {
  [[ -x "${DIR}/bin/cuda_backend_test" ]] || {
    echo "gpu.sh: no bundle in ${DIR}; run 'tests/gpu.sh bundle' first" >&2
    exit 2
  }
  local libs="${DIR}/lib"
  [[ -d "${CUDA_HOME}/lib64" ]] && libs="${libs}:${CUDA_HOME}/lib64"
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
  # The bundled libstdc++/libgcc_s only where the target's are too old for the binaries.
  if LD_LIBRARY_PATH="${LD_LIBRARY_PATH}" ldd "${DIR}/bin/cuda_backend_test" \
      "${DIR}/bin/step_benchmark" 2>&1 | grep -q "version .* not found"; then
    export LD_LIBRARY_PATH="${DIR}/lib/fallback:${LD_LIBRARY_PATH}"
    echo "== using the bundled libstdc++ (the system one is older)"
  fi
  if ldd "${DIR}/bin/cuda_backend_test" "${DIR}/bin/step_benchmark" | grep -q 'not found'; then
    echo "gpu.sh: libraries not found (set CUDA_HOME, or bundle with --with-cuda-libs):" >&2
    ldd "${DIR}/bin/cuda_backend_test" "${DIR}/bin/step_benchmark" | grep 'not found' >&2
    exit 1
  fi
  sed -n '1,5p' "${DIR}/MANIFEST" 2>/dev/null | sed 's/^/   /'
  command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
    sed 's/^/   GPU: /' || true

  local status=0 log test_result
  log="$(mktemp -d)"
  echo "== cuda_backend_test"
  if "${DIR}/bin/cuda_backend_test" >"${log}/test.txt" 2>&1; then
    local passed skipped
    passed="$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "${log}/test.txt")"
    skipped="$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "${log}/test.txt")"
    # gtest counts skipped tests apart from passed ones.
    if [[ -n "${skipped}" ]]; then
      test_result="SKIPPED ${skipped} tests (${passed:-0} passed): $(
        grep -m1 -o 'UNAVAILABLE: .*' "${log}/test.txt" || echo 'see the log')"
    else
      test_result="PASSED ${passed} tests${skipped:+ (${skipped} skipped)}"
    fi
    grep -E '^\[ +(OK|SKIPPED|FAILED) +\] [A-Za-z].*\([0-9]+ ms\)$' "${log}/test.txt" |
      sed 's/^/   /' || true
  else
    test_result="FAILED (log below)"
    cat "${log}/test.txt"
    status=1
  fi
  echo "   ${test_result}"

  local rows=() device batch flags out line
  for device in ${DEVICES//,/ }; do
    for batch in ${BATCHES//,/ }; do
      flags=(--device="${device}" --batch="${batch}" --threads="${THREADS}" --iters="${ITERS}")
      [[ "${TF32}" == 1 ]] && flags+=(--tf32)
      echo "== step_benchmark ${flags[*]}"
      if out="$("${DIR}/bin/step_benchmark" "${flags[@]}" 2>&1)"; then
        echo "${out}" | grep -v '^RESULT ' | sed 's/^/   /'
        line="$(echo "${out}" | sed -n 's/^RESULT //p')"
        rows+=("$(printf '%-6s %6s %8s %10s %10s %10s %8s %7s %12s' "${device}" "${batch}" \
          "$( [[ "${device}" == cpu ]] && echo "${THREADS}" || echo - )" \
          "$(result_field "${line}" step_us)" "$(result_field "${line}" best_step_us)" \
          "$(result_field "${line}" samples_per_s)" "$(result_field "${line}" step_gflops)" \
          "$(awk -v s="$(result_field "${line}" gemm_share)" 'BEGIN{printf "%.0f%%", 100*s}')" \
          "$(result_field "${line}" core_sgemm1024_gflops)")")
      elif grep -q 'UNAVAILABLE' <<<"${out}"; then
        echo "   ${out}"
        rows+=("$(printf '%-6s %6s %8s   unavailable: %s' "${device}" "${batch}" - \
          "$(grep -o 'UNAVAILABLE: .*' <<<"${out}" | cut -c14-90)")")
      else
        echo "${out}" | sed 's/^/   /'
        rows+=("$(printf '%-6s %6s %8s   FAILED' "${device}" "${batch}" -)")
        status=1
      fi
    done
  done

  echo
  echo "== summary"
  echo "cuda_backend_test: ${test_result}"
  printf '%-6s %6s %8s %10s %10s %10s %8s %7s %12s\n' device batch threads step_us best_us \
    samples/s GFLOP/s GEMM% 1core_sgemm
  local row
  for row in "${rows[@]}"; do echo "${row}"; done
  echo "(step_us: median per step; GEMM%: the step's GEMMs alone as a share of the step;"
  echo " 1core_sgemm: GFLOP/s of a 1024^3 SGEMM on one CPU core, for reference)"
  rm -rf "${log}"
  return "${status}"
}

case "${MODE}" in
  bundle) bundle ;;
  run) run ;;
  all) bundle && run ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
