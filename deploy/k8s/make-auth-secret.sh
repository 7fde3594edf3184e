#!/usr/bin/env bash
# Makes the Secret `ps-auth` the manifests mount (docs/security.md): fresh random tokens
# for the three roles, and the shards' list of them.
#   tokens    the shards' list: "<role> <token> <name>" per line (--auth_tokens_file)
#   worker    the workers' token (--token_file)
#   operator  the token psctl and the shards themselves present (--token_file)
#   monitor   a read-only token for dashboards and status checks
#
#   deploy/k8s/make-auth-secret.sh [--namespace NS] [--print]
#
# Applies the Secret with kubectl, or with --print writes its YAML to stdout instead.
# The tokens never touch the disk outside a private temporary directory, removed on exit.
# Running it again replaces every token at once: the shards read their new list without
# a restart (within the kubelet's sync period), but a running worker keeps the token it
# started with and would be refused. To rotate under a running job, edit the Secret in
# steps instead (docs/security.md, "Rotating tokens").
set -euo pipefail
NAMESPACE=""
PRINT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) NAMESPACE="${2:-}"; shift 2 || { echo "--namespace needs a value" >&2; exit 2; } ;;
    --print) PRINT=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "make-auth-secret.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v kubectl >/dev/null || { echo "make-auth-secret.sh: needs kubectl" >&2; exit 1; }
umask 077
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
token() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | head -c 40; }
for role in worker operator monitor; do token >"$DIR/$role"; done
{
  echo "# role token; generated $(date -u '+%Y-%m-%d %H:%M UTC') by make-auth-secret.sh"
  # Named by role: a token rotated under a running job keeps its name (and the worker
  # indices it registered) when the new line takes the same name.
  for role in worker operator monitor; do echo "$role $(cat "$DIR/$role") ${role}s"; done
} >"$DIR/tokens"
ARGS=(create secret generic ps-auth --dry-run=client -o yaml)
for f in tokens worker operator monitor; do ARGS+=("--from-file=$f=$DIR/$f"); done
[ -n "$NAMESPACE" ] && ARGS+=(--namespace "$NAMESPACE")
if [ "$PRINT" = 1 ]; then
  kubectl "${ARGS[@]}"
else
  kubectl "${ARGS[@]}" | kubectl apply -f -
  echo "Secret ps-auth applied; psctl's token: kubectl get secret ps-auth -o jsonpath='{.data.operator}' | base64 -d"
fi
