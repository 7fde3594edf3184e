#!/usr/bin/python3
"""PyTorch RPC parameter-server peer of deploy/local/demo.sh's job (tests/bench_train.sh).

One PS process holds the weights of the demo's MLP 784-512-256-10 and applies plain SGD;
--trainers processes (default 2) train on their shards of Fashion-MNIST and talk to it
over torch.distributed.rpc (TensorPipe, 127.0.0.1), one compute thread per process:
  - sync: the PS waits for every trainer's gradient of a step, averages them (as the
    product's sync mode does: server/table/dense_table.cc, MaybeFinishStep), applies one
    update and answers every trainer with the new weights; the handler is
    @rpc.functions.async_execution and returns a torch.futures.Future, as PyTorch's
    "batch-updating parameter server" tutorial does;
  - async: each gradient is applied on arrival under a lock, and the trainer gets the
    weights as they are after its update.
Each request carries the whole gradient as one flat tensor and each answer the whole
weights. Data, shards, batch order and initial weights are the product's (torch_ddp.py
reproduces them and this file imports them from there). It prints one line to stdout:
  final test_accuracy=0.XXXX samples_per_sec=N train_samples_per_sec=N peer=rpc_ps mode=sync trainers=2 epochs=5
with the figures defined as in torch_ddp.py (the PS evaluates its final weights on the
10k test set after training; that is not timed). Progress goes to stderr.

Run with Debian's python3-torch: /usr/bin/python3 tests/peers/torch_rpc_ps.py [--mode async]
"""

import argparse
import sys
import threading
import time

import torch_ddp as peer
from torch_ddp import F, torch

import torch.distributed.rpc as rpc
from torch.nn.utils import parameters_to_vector, vector_to_parameters

PS_NAME = "ps"


class ParameterServer:
    """The weights as one flat tensor, and the sync step being gathered."""

    def __init__(self, args):
        self.flat = torch.cat([t.reshape(-1) for pair in peer.initial_params(args.seed)
                               for t in pair])
        self.lr = args.lr
        self.trainers = args.trainers
        self.lock = threading.Lock()
        self.step_sum = torch.zeros_like(self.flat)  # guarded by lock
        self.pending = 0                              # guarded by lock
        self.future = torch.futures.Future()          # guarded by lock
        self.updates = 0                              # guarded by lock


_ps = None  # the ParameterServer, on the PS process only


def get_weights():
    with _ps.lock:
        return _ps.flat.clone()


@rpc.functions.async_execution
def push_sync(grad):
    """Adds a trainer's gradient to the step; the last of the step applies the mean."""
    ps = _ps
    with ps.lock:
        if ps.pending == 0:
            ps.step_sum.copy_(grad)
        else:
            ps.step_sum.add_(grad)
        ps.pending += 1
        # This step's future, kept before a completing push replaces it.
        fut = ps.future
        if ps.pending == ps.trainers:
            ps.step_sum.mul_(1.0 / ps.trainers)
            ps.flat.add_(ps.step_sum, alpha=-ps.lr)
            ps.pending = 0
            ps.updates += 1
            ps.future = torch.futures.Future()
            fut.set_result(ps.flat.clone())
    return fut


def push_async(grad):
    """Applies one trainer's gradient now; returns the weights after it."""
    ps = _ps
    with ps.lock:
        ps.flat.add_(grad, alpha=-ps.lr)
        ps.updates += 1
        return ps.flat.clone()


def rpc_options(args):
    opts = {"init_method": f"tcp://127.0.0.1:{args.port}", "rpc_timeout": args.timeout}
    if args.transport == "tcp":
        opts.update(_transports=["uv"], _channels=["basic"])
    return rpc.TensorPipeRpcBackendOptions(**opts)


def run_ps(args, results):
    global _ps
    _ps = ParameterServer(args)
    test = peer.load_mnist(args.data_dir, "t10k")
    rpc.init_rpc(PS_NAME, rank=0, world_size=args.trainers + 1,
                 rpc_backend_options=rpc_options(args))
    rpc.shutdown()  # waits until every trainer is done and has shut down too
    model = peer.make_mlp(peer.initial_params(args.seed))
    vector_to_parameters(_ps.flat, model.parameters())
    results.put({"rank": 0, "accuracy": peer.evaluate(model, *test), "updates": _ps.updates})


def run_trainer(worker, args, results):
    rpc.init_rpc(f"trainer{worker}", rank=worker + 1, world_size=args.trainers + 1,
                 rpc_backend_options=rpc_options(args))
    x, y = peer.load_mnist(args.data_dir, "train")
    model = peer.make_mlp(peer.initial_params(args.seed))
    params = list(model.parameters())
    schedule = peer.BatchSchedule(len(y), worker, args.trainers, args.batch_size, args.seed)
    push = push_sync if args.mode == "sync" else push_async
    # The orders are drawn before the clock starts: Python's shuffle is slower than C++'s.
    epoch_batches = [schedule.next_epoch() for _ in range(args.epochs)]
    vector_to_parameters(rpc.rpc_sync(PS_NAME, get_weights), params)
    steps, samples = 0, 0
    t_first_step = time.time()
    log = peer.EpochLog(f"rpc_ps {args.mode} trainer {worker}", args.epochs)
    for epoch, batches in enumerate(epoch_batches):
        epoch_steps = 0
        for idx in batches:
            if args.max_steps and steps >= args.max_steps:
                break
            loss = F.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx))
            model.zero_grad(set_to_none=True)
            loss.backward()
            grad = parameters_to_vector([p.grad for p in params])
            # The answer's tensor becomes the parameters' storage: no copy.
            vector_to_parameters(rpc.rpc_sync(PS_NAME, push, args=(grad,)), params)
            log.add(loss.detach(), len(idx))
            steps, samples, epoch_steps = steps + 1, samples + len(idx), epoch_steps + 1
        if worker == 0 and epoch_steps:
            log.line(epoch, epoch_steps)
        if args.max_steps and steps >= args.max_steps:
            break
    results.put({"rank": worker + 1, "samples": samples, "t_first_step": t_first_step,
                 "t_end": time.time()})
    rpc.shutdown()


def run_rank(rank, args, results):
    torch.set_num_threads(1)
    if rank == 0:
        run_ps(args, results)
    else:
        run_trainer(rank - 1, args, results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--trainers", type=peer.positive_int, default=2)
    parser.add_argument("--transport", choices=("auto", "tcp"), default="auto",
                        help="auto: TensorPipe's choice (shared memory on one host); "
                        "tcp: its uv (TCP) transport and basic channel only")
    peer.add_common_flags(parser)
    args = parser.parse_args()
    n = peer.check_data(parser, args)
    steps = peer.steps_per_epoch(n, args.trainers, args.batch_size)
    if args.mode == "sync" and len(set(steps)) != 1:
        parser.error(f"--trainers {args.trainers} --batch_size {args.batch_size}: the shards "
                     f"take {min(steps)} and {max(steps)} steps an epoch; sync mode needs "
                     "equal counts")
    args.port = peer.free_port()
    t_launch, got = peer.launch(run_rank, args.trainers + 1, args,
                                {"TP_SOCKET_IFNAME": "lo", "GLOO_SOCKET_IFNAME": "lo",
                                 "OMP_NUM_THREADS": "1"})
    ps = [r for r in got if r["rank"] == 0]
    trained = [r for r in got if r["rank"] != 0]
    if len(ps) != 1 or len(trained) != args.trainers:
        sys.exit(f"torch_rpc_ps.py: {len(got)} of {args.trainers + 1} processes reported")
    print(f"rpc_ps: {ps[0]['updates']} updates", file=sys.stderr)
    print(peer.final_line(t_launch, trained, ps[0]["accuracy"],
                          f"peer=rpc_ps mode={args.mode} trainers={args.trainers} "
                          f"epochs={args.epochs}"), flush=True)


if __name__ == "__main__":
    main()
