#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need, if any are
# missing, and any packages named as arguments (tests/bench_train.sh adds python3-torch).
# Safe to run again: it does nothing when everything is present.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap g++ pkg-config zlib1g-dev libzip-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgoogle-glog-dev libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev prometheus-cpp-dev
  dataset-fashion-mnist
  python3 python3-grpcio python3-numpy python3-yaml curl iproute2 kubectl
  openssl  # TLS certificates: deploy/k8s/make-tls-secret.sh and the TLS tests
  clang-14 libclang-rt-14-dev lld-14  # tests/run.sh --sanitizers: ASan, UBSan, TSan, libFuzzer
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
echo "installing missing packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Packages install, services do not start: openssh-server (tests/run.sh asks for it: the
# launcher's test runs its own sshd on 127.0.0.1) would otherwise start an sshd on port 22
# of every interface now, and again at every boot.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  trap '$SUDO rm -f "$POLICY"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
if printf '%s\n' "${missing[@]}" | grep -qx openssh-server; then
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  else
    $SUDO update-rc.d ssh disable >/dev/null 2>&1 || true
  fi
  echo "openssh-server: installed for the tests, its service disabled"
fi
echo "installed: ${missing[*]}"
