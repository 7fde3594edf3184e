#!/usr/bin/env python3
"""Starts a job's shards and workers on plain hosts over ssh, streams their progress, and
stops them all when the workers finish, on Ctrl-C, or when any process fails.

  deploy/hosts/launch.py --servers h1:50051,h2:50051 --workers h1,h2,h3 -- --epochs=5
  deploy/hosts/launch.py --hostfile hosts.txt -- --mode=async

A hosts file has one process per line ('#' starts a comment):

  server h1:50051
  server h2:50051
  worker h1
  worker h3

Every shard gets the same --servers list (in the order given) and its own --shard_index;
every worker gets the list, its own --worker_index and --num_workers. Arguments after --
go to every worker; --server_args to every shard. The binaries must be at the same path on
every host (--bin, or --ps_server/--ps_worker), and each worker host needs the data set
(--data_dir, Debian's dataset-fashion-mnist by default). docs/multi-host.md has the recipe
by hand, the ports to open and TLS.

How processes are stopped: each remote command watches its ssh connection's stdin, and
stops its daemon (SIGTERM) when that closes. So closing the pipes, or the launcher (or its
ssh) dying, ends the remote processes. A network partition ends them once the remote
sshd notices the dead connection (its TCP keepalive or ClientAliveInterval); the local ssh
gives up within 30 s (ServerAliveInterval).
Logs of every process go to --log_dir (one file each); the terminal gets every worker's
output and the shards' warnings and errors, each line prefixed with the process's name.
"""
import argparse
import os
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

# What the remote shell runs around a daemon: the daemon in the background with its pid
# kept, a reader of stdin that stops it (SIGTERM) once stdin closes, and the daemon's exit
# status as the command's own.
REMOTE_WRAPPER = (
    "exec 3<&0; "  # an asynchronous command's stdin would be /dev/null: keep ssh's as fd 3
    "{cmd} </dev/null 3<&- & p=$!; "
    "( while read -r _; do :; done; kill -TERM $p 2>/dev/null ) <&3 >/dev/null 2>&1 & w=$!; "
    "wait $p; rc=$?; kill $w 2>/dev/null; exit $rc")


def parse_hostfile(path):
    servers, workers = [], []
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 2 or fields[0] not in ("server", "worker"):
                sys.exit("%s:%d: want 'server HOST:PORT' or 'worker HOST', got %r" %
                         (path, number, raw.rstrip("\n")))
            (servers if fields[0] == "server" else workers).append(fields[1])
    return servers, workers


def split_address(address):
    """[USER@]HOST:PORT ([v6]:PORT too) as (ssh target, host to listen on, port)."""
    target, sep, port = address.rpartition(":")
    if not sep or not target or not port.isdigit():
        sys.exit("launch.py: %r is not [USER@]HOST:PORT" % address)
    target = target.replace("[", "").replace("]", "")
    return target, target.rpartition("@")[2], port


class Remote:
    """One daemon on one host, over ssh: its output read line by line into a queue."""

    def __init__(self, name, host, argv, ssh, log_dir, out):
        self.name = name
        self.host = host
        self.argv = argv
        self.log = open(os.path.join(log_dir, name.replace(" ", "-") + ".log"), "w")
        remote = REMOTE_WRAPPER.format(cmd=" ".join(shlex.quote(a) for a in argv))
        # "sh -c": the wrapper is POSIX sh whatever the remote login shell is; "--": a
        # host name is never taken for an ssh option.
        self.proc = subprocess.Popen(ssh + ["--", host, "sh -c " + shlex.quote(remote)],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, args=(out,), daemon=True)
        self.reader.start()

    def _read(self, out):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.log.write(line + "\n")
            self.log.flush()
            out.put((self, line))
        out.put((self, None))

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def shown(remote, line, verbose):
    """Whether a line goes to the terminal: all of a worker's, a shard's warnings,
    errors and its serving line."""
    if verbose or remote.name.startswith("worker"):
        return True
    return line[:1] in ("W", "E", "F") or "serving on" in line


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="", help="HOST:PORT of every shard, in shard order")
    ap.add_argument("--workers", default="", help="HOST of every worker (repeat for several per host)")
    ap.add_argument("--hostfile", help="'server HOST:PORT' and 'worker HOST' lines instead")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "..", "bazel-bin"),
                    help="directory holding server/ps_server and worker/ps_worker on every host")
    ap.add_argument("--ps_server", help="path of ps_server on every host (default: BIN/server/ps_server)")
    ap.add_argument("--ps_worker", help="path of ps_worker on every host (default: BIN/worker/ps_worker)")
    ap.add_argument("--ssh", default="ssh", help="the ssh command, with its options (e.g. 'ssh -p 2222 -i key')")
    ap.add_argument("--server_args", default="", help="more flags for every shard (shell words)")
    ap.add_argument("--bind_any", action="store_true",
                    help="shards listen on 0.0.0.0 rather than on the host named in --servers")
    ap.add_argument("--log_dir", help="one log file per process (default: a new directory in /tmp)")
    ap.add_argument("--stop_timeout", type=float, default=30,
                    help="seconds to wait for processes to stop (above the shards' "
                         "--shutdown_timeout, 10 s by default, and their final checkpoint)")
    ap.add_argument("--verbose", action="store_true", help="every line of the shards on the terminal too")
    ap.add_argument("worker_args", nargs="*", help="after --: flags for every worker")
    args = ap.parse_args()

    servers = [s for s in args.servers.split(",") if s]
    workers = [w for w in args.workers.split(",") if w]
    if args.hostfile:
        if servers or workers:
            sys.exit("launch.py: give --hostfile or --servers/--workers, not both")
        servers, workers = parse_hostfile(args.hostfile)
    if not servers or not workers:
        sys.exit("launch.py: no servers or no workers (give --servers and --workers, or --hostfile)")
    if len(set(servers)) != len(servers):
        sys.exit("launch.py: a shard address appears twice in %s" % ",".join(servers))
    shards = [split_address(a) for a in servers]  # every address checked before any start
    server_list = ",".join("%s:%s" % (h if ":" not in h else "[%s]" % h, p) for _, h, p in shards)
    if args.bind_any and "--plaintext" in args.server_args and "--auth_tokens_file" not in args.server_args:
        print("launch: warning: --bind_any with --plaintext and no --auth_tokens_file: the shards "
              "accept anyone who reaches their port on any interface (docs/security.md)",
              file=sys.stderr, flush=True)
    ps_server = args.ps_server or os.path.normpath(os.path.join(args.bin, "server", "ps_server"))
    ps_worker = args.ps_worker or os.path.normpath(os.path.join(args.bin, "worker", "ps_worker"))
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="ps-launch.")
    os.makedirs(log_dir, exist_ok=True)
    # No shared master connection (its background process would keep the output open), and
    # a dead connection noticed within 30 s.
    ssh = shlex.split(args.ssh) + ["-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o",
                                   "ControlPath=none", "-o", "ServerAliveInterval=10", "-o",
                                   "ServerAliveCountMax=3", "-T"]

    print("launch: %d shards (%s), %d workers on %s; logs in %s" %
          (len(servers), server_list, len(workers), ",".join(workers), log_dir), flush=True)
    out = queue.Queue()
    remotes = []
    stopping = {"why": None}
    signals = []  # what the handlers saw; the main loop acts on them (print is not reentrant)

    def stop_all(why):
        if stopping["why"] is None:
            stopping["why"] = why
            print("launch: stopping every process (%s)" % why, flush=True)
        for r in remotes:
            r.close_stdin()

    def on_signal(signum, _frame):
        signals.append(signum)
        out.put((None, None))  # wakes the main loop

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    for i, (target, host, port) in enumerate(shards):
        if signals:
            break
        argv = [ps_server, "--host=" + ("0.0.0.0" if args.bind_any else host), "--port=" + port,
                "--shard_index=%d" % i, "--servers=" + server_list] + shlex.split(args.server_args)
        remotes.append(Remote("server %d" % i, target, argv, ssh, log_dir, out))
    # The workers wait for their shards (--connect_timeout), so they start at once. Each
    # gets its rank on its host as LOCAL_RANK, which picks its GPU on a multi-GPU host.
    per_host = {}
    for i, target in enumerate(workers):
        if signals:
            break
        local_rank = per_host.get(target, 0)
        per_host[target] = local_rank + 1
        argv = ["env", "LOCAL_RANK=%d" % local_rank, ps_worker, "--servers=" + server_list,
                "--worker_index=%d" % i, "--num_workers=%d" % len(workers)] + args.worker_args
        remotes.append(Remote("worker %d" % i, target, argv, ssh, log_dir, out))
    open_streams = len(remotes)

    worker_codes = {}
    failed = []
    deadline = None
    while open_streams > 0:
        if stopping["why"] is not None and deadline is None:
            deadline = time.monotonic() + args.stop_timeout
        while signals:
            signum = signals.pop(0)
            if stopping["why"] in ("interrupted", "terminated"):
                print("launch: asked again; killing every ssh session", flush=True)
                for r in remotes:
                    r.kill()
            else:
                stop_all("interrupted" if signum == signal.SIGINT else "terminated")
        if stopping["why"] is not None and deadline is None:
            deadline = time.monotonic() + args.stop_timeout
        try:
            remote, line = out.get(timeout=0.2)
            if remote is None:
                continue
        except queue.Empty:
            if deadline is not None and time.monotonic() > deadline:
                print("launch: processes still running after %gs; killing their ssh sessions" %
                      args.stop_timeout, flush=True)
                for r in remotes:
                    r.kill()
                deadline = float("inf")
            continue
        if line is not None:
            if shown(remote, line, args.verbose):
                print("[%s %s] %s" % (remote.name, remote.host, line), flush=True)
            continue
        open_streams -= 1
        code = remote.proc.wait()
        if remote.name.startswith("worker"):
            worker_codes[remote.name] = code
        if code != 0 and stopping["why"] is None:
            failed.append(remote.name)
            print("launch: %s on %s exited with status %d; its log: %s" %
                  (remote.name, remote.host, code, remote.log.name), flush=True)
            stop_all("%s failed" % remote.name)
        elif remote.name.startswith("server") and stopping["why"] is None:
            failed.append(remote.name)
            stop_all("%s stopped before the workers finished" % remote.name)
        elif len(worker_codes) == len(workers) and stopping["why"] is None:
            stop_all("every worker finished")
    if signals or (stopping["why"] is None and not remotes):
        stopping["why"] = stopping["why"] or "interrupted"
    if stopping["why"] == "every worker finished" and not failed:
        print("launch: done; logs in %s" % log_dir, flush=True)
        return 0
    if stopping["why"] in ("interrupted", "terminated"):
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
