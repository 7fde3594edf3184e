#!/usr/bin/env bash
# The one entry point of the ps image: picks the daemon by role and execs it, so the same
# image serves every role. The daemons read every flag from PS_<FLAG> (PS_SERVERS,
# PS_SHARD_INDEX, ...) and from TF_CONFIG; arguments given here are passed on and win.
#
# Role, first match wins: the first argument if it names one (`docker run ps:cpu worker
#   --max_steps=100`), PS_ROLE=server|worker|psctl (also ps, chief, master), TF_CONFIG's
#   task.type.
# Indices, only where neither the variable nor TF_CONFIG gives them:
#   server: PS_SHARD_INDEX from the StatefulSet ordinal, the number after the last '-' of
#           the pod's host name ($HOSTNAME: ps-1 -> 1); a lone shard may have any name.
#   worker: PS_WORKER_INDEX from JOB_COMPLETION_INDEX, which Kubernetes sets in every pod
#           of an Indexed Job.
# Addresses: a daemon listens on 127.0.0.1 unless told otherwise; in a container it is
#   reached from outside, so PS_HOST (server) and PS_HEALTH_HOST (worker) default to
#   0.0.0.0 here. deploy/k8s sets both to the pod's address (status.podIP).
# PS_BIN_DIR: where the binaries are (default /usr/local/bin).
set -euo pipefail

die() {
  echo "entrypoint: $*" >&2
  exit 2
}

role="${PS_ROLE:-}"
if [ $# -gt 0 ]; then
  case "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" in
    server | ps | worker | chief | master | psctl) role="$1"; shift ;;
  esac
fi
if [ -z "$role" ] && [ -n "${TF_CONFIG:-}" ]; then
  # The daemons parse TF_CONFIG fully; here only task.type is needed, e.g. "type":"ps".
  role="$(printf '%s' "$TF_CONFIG" | tr -d ' \n\t' |
    sed -n 's/.*"task":{[^}]*"type":"\([A-Za-z]*\)".*/\1/p')"
fi
role="$(printf '%s' "$role" | tr '[:upper:]' '[:lower:]')"
bin_dir="${PS_BIN_DIR:-/usr/local/bin}"

case "$role" in
  server | ps)
    if [ -z "${PS_SHARD_INDEX:-}" ] && [ -z "${TF_CONFIG:-}" ]; then
      host="${HOSTNAME:-$(cat /proc/sys/kernel/hostname)}"
      ordinal="${host##*-}"
      if [[ "$host" == *-* && "$ordinal" =~ ^[0-9]+$ ]]; then
        export PS_SHARD_INDEX="$ordinal"
      elif [[ "${PS_SERVERS:-}" == *,* ]]; then
        # Several shards and no way to tell which this is: guessing 0 would clash.
        die "PS_SHARD_INDEX is unset and host name '$host' does not end in -<ordinal>"
      fi
    fi
    export PS_HOST="${PS_HOST:-0.0.0.0}"
    exec "$bin_dir/ps_server" "$@"
    ;;
  worker | chief | master)
    if [ -z "${PS_WORKER_INDEX:-}" ] && [ -z "${TF_CONFIG:-}" ] && [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
      export PS_WORKER_INDEX="$JOB_COMPLETION_INDEX"
    fi
    export PS_HEALTH_HOST="${PS_HEALTH_HOST:-0.0.0.0}"
    exec "$bin_dir/ps_worker" "$@"
    ;;
  psctl)
    exec "$bin_dir/psctl" "$@"
    ;;
  "")
    die "no role: set PS_ROLE to server, worker or psctl (or pass it as the first argument)"
    ;;
  *)
    die "PS_ROLE='$role' is not one of server, worker, psctl"
    ;;
esac
