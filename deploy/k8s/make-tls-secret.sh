#!/usr/bin/env bash
# Makes the Secret `ps-tls` the manifests mount (docs/security.md): a CA of the job's own,
# a certificate for the shards naming every stable name they are dialled by, and client
# certificates for the workers and for psctl (mutual TLS: the shards require one).
#   ca.crt                     the CA every daemon trusts
#   shard.crt, shard.key       the shards' (also their client certificate to each other)
#   worker.crt, worker.key     the workers'
#   operator.crt, operator.key psctl's
#
#   deploy/k8s/make-tls-secret.sh [--namespace NS] [--shards N] [--tfjob NAME]
#                                 [--names A,B,...] [--days D] [--print | --out DIR]
#
# NS: default "default"; N: default 2 (the StatefulSet's replicas); --tfjob NAME also
# names the TFJob's shards (NAME-ps-<i>.NS.svc, as Kubeflow's operator does); --names
# adds host names or IP addresses the shards are dialled by (plain hosts); D: default
# 365. Applies the Secret with kubectl; --print writes its YAML to stdout instead, --out
# the files into DIR (for daemons run without Kubernetes; the shard certificate also
# names localhost and 127.0.0.1). The CA's key is not kept: run it again (with the same
# arguments) to renew everything; the daemons read new certificates without a restart
# (within a minute).
set -euo pipefail
NAMESPACE=default
SHARDS=2
TFJOB=""
NAMES=""
DAYS=365
PRINT=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) NAMESPACE="${2:-}"; shift 2 || exit 2 ;;
    --shards) SHARDS="${2:-}"; shift 2 || exit 2 ;;
    --tfjob) TFJOB="${2:-}"; shift 2 || exit 2 ;;
    --names) NAMES="${2:-}"; shift 2 || exit 2 ;;
    --days) DAYS="${2:-}"; shift 2 || exit 2 ;;
    --print) PRINT=1; shift ;;
    --out) OUT="${2:-}"; shift 2 || exit 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "make-tls-secret.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$SHARDS" =~ ^[1-9][0-9]*$ && "$DAYS" =~ ^[1-9][0-9]*$ ]] ||
  { echo "make-tls-secret.sh: --shards and --days must be positive integers" >&2; exit 2; }
TOOLS=(openssl)
[ -z "$OUT" ] && TOOLS+=(kubectl)
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null || { echo "make-tls-secret.sh: needs $tool" >&2; exit 1; }
done
if [ -n "$OUT" ]; then
  mkdir -p "$OUT"
  OUT="$(cd "$OUT" && pwd)"
fi
umask 077
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
cd "$DIR"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -days "$DAYS" -subj "/CN=ps job CA ($NAMESPACE)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -out ca.crt 2>/dev/null

# The shards: every name a worker, psctl or another shard dials them by.
SAN="DNS:localhost,IP:127.0.0.1"
for ((i = 0; i < SHARDS; i++)); do
  SAN="$SAN,DNS:ps-$i.ps,DNS:ps-$i.ps.$NAMESPACE.svc,DNS:ps-$i.ps.$NAMESPACE.svc.cluster.local"
  if [ -n "$TFJOB" ]; then
    SAN="$SAN,DNS:$TFJOB-ps-$i,DNS:$TFJOB-ps-$i.$NAMESPACE.svc"
    SAN="$SAN,DNS:$TFJOB-ps-$i.$NAMESPACE.svc.cluster.local"
  fi
done
IFS=',' read -r -a EXTRA <<<"$NAMES"
for name in ${EXTRA[@]+"${EXTRA[@]}"}; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then SAN="$SAN,IP:$name"; else SAN="$SAN,DNS:$name"; fi
done
# sign NAME SUBJECT USAGE [SAN]
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$3"
    [ -n "${4:-}" ] && echo "subjectAltName=$4"
  } >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
sign shard "ps shard" serverAuth,clientAuth "$SAN"
sign worker "ps worker" clientAuth
sign operator "ps operator" clientAuth

ARGS=(create secret generic ps-tls --namespace "$NAMESPACE" --dry-run=client -o yaml)
for f in ca.crt shard.crt shard.key worker.crt worker.key operator.crt operator.key; do
  ARGS+=("--from-file=$f=$DIR/$f")
done
if [ -n "$OUT" ]; then
  cp ca.crt shard.crt shard.key worker.crt worker.key operator.crt operator.key "$OUT/"
  echo "certificates in $OUT"
elif [ "$PRINT" = 1 ]; then
  kubectl "${ARGS[@]}"
else
  kubectl "${ARGS[@]}" | kubectl apply -f -
  echo "Secret ps-tls applied in $NAMESPACE: shards named $(tr ',' ' ' <<<"$SAN" | wc -w) ways"
fi
