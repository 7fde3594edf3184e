#!/usr/bin/python3
"""PyTorch DistributedDataParallel peer of deploy/local/demo.sh's job (tests/bench_train.sh).

N processes (gloo over 127.0.0.1, one thread each) train the demo's MLP 784-512-256-10
(ReLU) on Fashion-MNIST with plain SGD and print one line to stdout:
  final test_accuracy=0.XXXX samples_per_sec=N train_samples_per_sec=N peer=ddp processes=2 epochs=5
samples_per_sec: all ranks' training samples over the wall time from launching the
processes to the end of training (so process start, imports and data loading count, as
they do in demo.sh's figure; the final evaluation does not). train_samples_per_sec: the
same samples over the time from the first training step to the end of training.
Progress (one line per epoch) goes to stderr.

Everything the result depends on is the product's, reproduced here bit for bit so that
only the arithmetic and the transport differ:
  - data: the IDX files read as worker/data/mnist.cc reads them, pixels normalised as
    (p * (1/255) - 0.2860) * (1/0.3530) in float32, the first two terms fused as the
    product's -march=native build fuses them (one FMA);
  - shards and order: rank i gets worker i's examples (worker/train/membership.cc,
    ShardIndices: a contiguous block of a permutation drawn by std::shuffle with
    std::mt19937_64(seed)), reshuffled each epoch by std::mt19937_64(seed * 7919 + i)
    (worker/train/batching.cc), batches of 64 in order, the last of an epoch shorter;
    libstdc++'s (GCC 12) shuffle and uniform_int_distribution are reimplemented below;
  - initial weights: the servers' UNIFORM initializer (server/table/initializer.cc) with
    the tables' seeds (worker/model/mlp.cc, TableSpecs: seed + 2 * layer + {0 weight, 1
    bias}, bounds +-1/sqrt(fan_in));
  - the update: each rank's gradient is the mean over its batch and DDP averages the
    ranks' gradients, as the product's sync mode averages the workers' gradients
    (server/table/dense_table.cc, MaybeFinishStep: step_sum_ *= 1 / step_full_).
torch_rpc_ps.py imports these pieces from here.

Run with Debian's python3-torch: /usr/bin/python3 tests/peers/torch_ddp.py [--epochs 1]
"""

import argparse
import datetime
import gzip
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"{os.path.basename(sys.argv[0])}: {e}: needs Debian's python3-torch; run it "
             "with /usr/bin/python3 (not a virtualenv's or pyenv's python3)")

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
PIXEL_MEAN = np.float32(0.2860)  # worker/data/mnist.cc
PIXEL_STD = np.float32(0.3530)
LAYERS = (784, 512, 256, 10)
EVAL_BATCH = 1000

# ---- The product's random streams (libstdc++, GCC 12) ----

MASK64 = (1 << 64) - 1


class Mt19937_64:
    """std::mt19937_64: same seed, same outputs."""

    def __init__(self, seed):
        mt = [seed & MASK64]
        for i in range(1, 312):
            prev = mt[-1]
            mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK64)
        self._mt = mt
        self._i = 312

    def _twist(self):
        mt = self._mt
        for i in range(312):
            y = (mt[i] & 0xFFFFFFFF80000000) | (mt[(i + 1) % 312] & 0x7FFFFFFF)
            v = mt[(i + 156) % 312] ^ (y >> 1)
            mt[i] = v ^ 0xB5026F5AA96619E9 if y & 1 else v
        self._i = 0

    def __call__(self):
        if self._i >= 312:
            self._twist()
        y = self._mt[self._i]
        self._i += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        return y ^ (y >> 43)


def uniform_below(g, n):
    """uniform_int_distribution<uint64_t>(0, n - 1)(g) for a 64-bit g (Lemire's method)."""
    product = g() * n
    low = product & MASK64
    if low < n:
        threshold = ((1 << 64) - n) % n
        while low < threshold:
            product = g() * n
            low = product & MASK64
    return product >> 64


def std_shuffle(a, g):
    """std::shuffle(a.begin(), a.end(), g) in place, for len(a) < 2^32 (two swaps a draw)."""
    n = len(a)
    if n < 2:
        return
    i = 1
    if n % 2 == 0:
        j = uniform_below(g, 2)
        a[1], a[j] = a[j], a[1]
        i = 2
    while i != n:
        r = i + 1
        x = uniform_below(g, r * (r + 1))
        j, k = x // (r + 1), x % (r + 1)
        a[i], a[j] = a[j], a[i]
        a[i + 1], a[k] = a[k], a[i + 1]
        i += 2


def shard_indices(n, worker, workers, seed):
    """worker/train/membership.cc ShardIndices: worker's examples out of n."""
    order = list(range(n))
    std_shuffle(order, Mt19937_64(seed))
    return order[n * worker // workers:n * (worker + 1) // workers]


class BatchSchedule:
    """worker/train/batching.cc BatchSchedule: the shard, reshuffled every epoch."""

    def __init__(self, n, worker, workers, batch_size, seed):
        self.shard = shard_indices(n, worker, workers, seed)
        self.batch_size = batch_size
        self.steps_per_epoch = -(-len(self.shard) // batch_size)
        self._rng = Mt19937_64((seed * 7919 + worker) & MASK64)

    def next_epoch(self):
        """Shuffles and returns the epoch's batches as index tensors."""
        std_shuffle(self.shard, self._rng)
        order = torch.tensor(self.shard, dtype=torch.int64)
        return list(torch.split(order, self.batch_size))


def steps_per_epoch(n, workers, batch_size):
    """Each worker's steps per epoch (shards differ in size by at most one)."""
    return [-(-(n * (w + 1) // workers - n * w // workers) // batch_size) for w in range(workers)]


def _mix_bits(x):
    """common/placement.cc MixBits (SplitMix64's finaliser) on a uint64 array."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform_init(shape, low, high, seed):
    """server/table/initializer.cc FillInitial, UNIFORM, over the whole table."""
    n = int(np.prod(shape))
    base = _mix_bits(np.array([seed], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        bits = _mix_bits(base + np.arange(n, dtype=np.uint64))
    u = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    lo, hi = np.float32(low), np.float32(high)
    v = (np.float64(lo) + (np.float64(hi) - np.float64(lo)) * u).astype(np.float32)
    v = np.where(v < hi, v, np.nextafter(hi, lo))
    return v.reshape(shape)


def initial_params(seed, layers=LAYERS):
    """The servers' initial tables fc<i>.w [in, out] and fc<i>.b [out] as
    (weight [out, in], bias) pairs in torch's layout."""
    params = []
    for i in range(len(layers) - 1):
        fan_in, fan_out = layers[i], layers[i + 1]
        bound = np.float32(1.0) / np.sqrt(np.float32(fan_in))
        w = uniform_init((fan_in, fan_out), -bound, bound, seed + 2 * i)
        b = uniform_init((fan_out,), -bound, bound, seed + 2 * i + 1)
        params.append((torch.from_numpy(np.ascontiguousarray(w.T)), torch.from_numpy(b)))
    return params


# ---- Data, model, evaluation ----

def _read_maybe_gzipped(stem):
    for path, opener in ((stem + ".gz", gzip.open), (stem, open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                return f.read()
    raise FileNotFoundError(f"neither {stem}.gz nor {stem} exists "
                            "(install Debian's dataset-fashion-mnist)")


def load_mnist(data_dir, prefix):
    """(features float32 [n, 784], labels int64 [n]) as torch tensors, like LoadMnist."""
    images = _read_maybe_gzipped(f"{data_dir}/{prefix}-images-idx3-ubyte")
    labels = _read_maybe_gzipped(f"{data_dir}/{prefix}-labels-idx1-ubyte")
    magic, n, rows, cols = np.frombuffer(images, ">u4", 4)
    if magic != 0x803 or np.frombuffer(labels, ">u4", 1)[0] != 0x801:
        raise ValueError(f"{data_dir}/{prefix}: not IDX image and label files")
    px = np.frombuffer(images, np.uint8, offset=16).reshape(int(n), int(rows * cols))
    # The product's build (-march=native) fuses p * (1/255) - mean into one FMA: one
    # rounding, which float64 reproduces exactly (both terms fit in 53 bits). A table of
    # the 256 pixel values keeps the rest in float32.
    levels = np.arange(256, dtype=np.float64) * np.float64(np.float32(1.0) / np.float32(255.0))
    table = (levels - np.float64(PIXEL_MEAN)).astype(np.float32) * (np.float32(1.0) / PIXEL_STD)
    x = table[px]
    y = np.frombuffer(labels, np.uint8, offset=8).astype(np.int64)
    if len(y) != n:
        raise ValueError(f"{data_dir}/{prefix}: {n} images but {len(y)} labels")
    return torch.from_numpy(x), torch.from_numpy(y)


def count_examples(data_dir, prefix):
    """The number of labels in an IDX label file (reads its header only)."""
    stem = f"{data_dir}/{prefix}-labels-idx1-ubyte"
    for path, opener in ((stem + ".gz", gzip.open), (stem, open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                return int(np.frombuffer(f.read(8), ">u4")[1])
    raise FileNotFoundError(f"neither {stem}.gz nor {stem} exists")


def make_mlp(params):
    """The demo's MLP (Linear, ReLU, ..., Linear) holding copies of `params`."""
    mods = []
    for i, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods.append(lin)
        if i + 1 < len(params):
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def evaluate(model, x, y):
    """Fraction of (x, y) the model classifies correctly."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), EVAL_BATCH):
            correct += int((model(x[i:i + EVAL_BATCH]).argmax(1) == y[i:i + EVAL_BATCH]).sum())
    return correct / len(y)


class EpochLog:
    """Sums one epoch's loss; prints the epoch's line to stderr."""

    def __init__(self, who, epochs):
        self.who, self.epochs = who, epochs
        self.start = time.time()
        self.loss_sum, self.samples = 0.0, 0

    def add(self, mean_loss, samples):
        self.loss_sum += float(mean_loss) * samples
        self.samples += samples

    def line(self, epoch, steps):
        now = time.time()
        print(f"{self.who} epoch {epoch + 1}/{self.epochs} steps={steps} "
              f"loss={self.loss_sum / max(1, self.samples):.4f} "
              f"samples_per_sec_here={self.samples / max(1e-9, now - self.start):.0f}",
              file=sys.stderr, flush=True)
        self.start, self.loss_sum, self.samples = now, 0.0, 0


# ---- Launching processes ----

def int_at_least(minimum):
    """An argparse type: an integer of at least `minimum`."""
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{s}' is not an integer")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} must be at least {minimum}")
        return v
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a number")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{v} must be a positive finite number")
    return v


def add_common_flags(parser):
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--batch_size", type=positive_int, default=64, help="per process")
    parser.add_argument("--lr", "--learning_rate", type=positive_float, default=0.1,
                        help="plain SGD learning rate")
    parser.add_argument("--max_steps", type=non_negative_int, default=0,
                        help="stop each process after this many steps (0: no limit; for tests)")
    parser.add_argument("--seed", type=non_negative_int, default=1,
                        help="the product's --seed: data order and initial weights")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--timeout", type=positive_float, default=600,
                        help="seconds a collective or RPC may wait before failing")


def check_data(parser, args):
    """Exits with a usage error if the data set is missing; returns its training size."""
    try:
        return count_examples(args.data_dir, "train")
    except (OSError, ValueError) as e:
        parser.error(f"--data_dir {args.data_dir}: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(target, n, args, env):
    """Runs target(rank, args, results) in n spawned processes; returns (launch time, the
    dicts they put on `results`). Exits 1 as soon as one fails (the others are stopped),
    and stops them all on SIGTERM/SIGINT."""
    os.environ.update(env)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(rank, args, results), daemon=True)
             for rank in range(n)]

    def stop(signum, _frame):
        for p in procs:
            if p.is_alive():
                p.kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    t_launch = time.time()
    for p in procs:
        p.start()
    got = []
    while True:
        try:
            got.append(results.get(timeout=0.2))
        except queue.Empty:
            pass
        failed = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
        if failed:
            for p in procs:
                if p.is_alive():
                    p.kill()
            sys.exit(f"{os.path.basename(sys.argv[0])}: process {failed[0]} failed "
                     f"(exit {procs[failed[0]].exitcode}); stopped the others")
        if all(p.exitcode == 0 for p in procs):
            break
    while True:  # results put just before a process exited
        try:
            got.append(results.get(timeout=0.5))
        except queue.Empty:
            break
    return t_launch, got


def final_line(t_launch, trained, accuracy, tail):
    """The result line from the trainers' {samples, t_first_step, t_end} dicts."""
    samples = sum(r["samples"] for r in trained)
    t_end = max(r["t_end"] for r in trained)
    t_first = min(r["t_first_step"] for r in trained)
    return (f"final test_accuracy={accuracy:.4f} "
            f"samples_per_sec={samples / max(1e-9, t_end - t_launch):.0f} "
            f"train_samples_per_sec={samples / max(1e-9, t_end - t_first):.0f} {tail}")


# ---- DDP ----

def run_rank(rank, args, results):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank,
                            world_size=args.processes,
                            timeout=datetime.timedelta(seconds=args.timeout))
    x, y = load_mnist(args.data_dir, "train")
    test = load_mnist(args.data_dir, "t10k") if rank == 0 else None
    model = DistributedDataParallel(make_mlp(initial_params(args.seed)))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    schedule = BatchSchedule(len(y), rank, args.processes, args.batch_size, args.seed)
    steps, samples = 0, 0
    # The orders are drawn before the clock starts: Python's shuffle is slower than C++'s.
    epoch_batches = [schedule.next_epoch() for _ in range(args.epochs)]
    dist.barrier()
    t_first_step = time.time()
    log = EpochLog(f"ddp rank {rank}", args.epochs)
    for epoch, batches in enumerate(epoch_batches):
        epoch_steps = 0
        for idx in batches:
            if args.max_steps and steps >= args.max_steps:
                break
            loss = F.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.add(loss.detach(), len(idx))
            steps, samples, epoch_steps = steps + 1, samples + len(idx), epoch_steps + 1
        if rank == 0 and epoch_steps:
            log.line(epoch, epoch_steps)
        if args.max_steps and steps >= args.max_steps:
            break
    t_end = time.time()
    result = {"rank": rank, "samples": samples, "t_first_step": t_first_step, "t_end": t_end}
    if rank == 0:
        result["accuracy"] = evaluate(model.module, *test)
    results.put(result)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=positive_int, default=2)
    add_common_flags(parser)
    args = parser.parse_args()
    n = check_data(parser, args)
    steps = steps_per_epoch(n, args.processes, args.batch_size)
    if len(set(steps)) != 1:
        parser.error(f"--processes {args.processes} --batch_size {args.batch_size}: the "
                     f"shards take {min(steps)} and {max(steps)} steps an epoch; DDP needs "
                     "equal counts")
    args.port = free_port()
    t_launch, got = launch(run_rank, args.processes, args,
                           {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"})
    if len(got) != args.processes:
        sys.exit(f"torch_ddp.py: {len(got)} of {args.processes} processes reported")
    accuracy = next(r["accuracy"] for r in got if r["rank"] == 0)
    print(final_line(t_launch, got, accuracy,
                     f"peer=ddp processes={args.processes} epochs={args.epochs}"), flush=True)


if __name__ == "__main__":
    main()
