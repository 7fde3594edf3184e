#!/usr/bin/env python3
"""Loads a model that `psctl export` wrote and measures its Fashion-MNIST test accuracy,
once with numpy alone and once as a PyTorch nn.Module, as an example of using the file
outside the parameter servers (docs/model_files.md).

    psctl --servers=127.0.0.1:PORT export --out=model.npz
    /usr/bin/python3 deploy/local/eval_model.py model.npz [--data_dir DIR] [--no_torch]

The demo's MLP keeps layer i in the tables "fc<i>.w" (in x out, so a batch times it
gives the layer's output) and "fc<i>.b"; nn.Linear holds the transpose. Prints
    numpy test_accuracy=0.XXXX
    torch test_accuracy=0.XXXX
Needs Debian's python3-numpy (and python3-torch without --no_torch) and the data set
(dataset-fashion-mnist).
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
PIXEL_MEAN = np.float32(0.2860)  # worker/data/mnist.cc
PIXEL_STD = np.float32(0.3530)


def read_maybe_gzipped(stem):
    for path, opener in ((stem + ".gz", gzip.open), (stem, open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                return f.read()
    raise FileNotFoundError(f"neither {stem}.gz nor {stem} exists "
                            "(install Debian's dataset-fashion-mnist)")


def load_test_set(data_dir):
    """(features float32 [n, 784], labels int64 [n]), normalised as the workers do."""
    images = read_maybe_gzipped(f"{data_dir}/t10k-images-idx3-ubyte")
    labels = read_maybe_gzipped(f"{data_dir}/t10k-labels-idx1-ubyte")
    magic, n, rows, cols = np.frombuffer(images, ">u4", 4)
    if magic != 0x803 or np.frombuffer(labels, ">u4", 1)[0] != 0x801:
        raise ValueError(f"{data_dir}: not IDX image and label files")
    px = np.frombuffer(images, np.uint8, offset=16).reshape(int(n), int(rows * cols))
    # p * (1/255) - mean is one fused multiply-add in the workers' build: one rounding,
    # which float64 reproduces exactly; the rest in float32, per pixel value.
    levels = np.arange(256, dtype=np.float64) * np.float64(np.float32(1.0) / np.float32(255.0))
    table = (levels - np.float64(PIXEL_MEAN)).astype(np.float32) * (np.float32(1.0) / PIXEL_STD)
    return table[px], np.frombuffer(labels, np.uint8, offset=8).astype(np.int64)


def layers_of(model):
    """[(w [in, out], b [out]), ...] from the file's fc<i>.w / fc<i>.b arrays."""
    layers = []
    while f"fc{len(layers)}.w" in model.files:
        i = len(layers)
        w, b = model[f"fc{i}.w"], model[f"fc{i}.b"]
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise ValueError(f"fc{i}.w {w.shape} and fc{i}.b {b.shape} do not make a layer")
        layers.append((w.astype(np.float32), b.astype(np.float32)))
    if not layers:
        raise ValueError(f"no fc0.w in the file (it holds {', '.join(model.files)}): "
                         "not the demo's MLP")
    return layers


def numpy_accuracy(layers, x, y):
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i + 1 < len(layers):
            h = np.maximum(h, 0)
    return float(np.mean(np.argmax(h, axis=1) == y))


def torch_accuracy(layers, x, y):
    import torch

    mods = []
    for i, (w, b) in enumerate(layers):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        # nn.Linear computes x W^T + b: its weight is the table transposed.
        lin.load_state_dict({"weight": torch.from_numpy(w.T.copy()), "bias": torch.from_numpy(b)})
        mods.append(lin)
        if i + 1 < len(layers):
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods).eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(x)).argmax(dim=1)
    return float((pred == torch.from_numpy(y)).double().mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an .npz file from psctl export")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--no_torch", action="store_true", help="numpy only")
    args = parser.parse_args()
    try:
        model = np.load(args.model)
        layers = layers_of(model)
        if "ps_tables.json" in model.files:
            tables = json.loads(model["ps_tables.json"])["tables"]
            versions = sorted({t["version"] for t in tables})
            print(f"{args.model}: {len(tables)} tables, version {'/'.join(map(str, versions))}, "
                  f"layers {' -> '.join(str(w.shape[0]) for w, _ in layers)} -> {layers[-1][0].shape[1]}")
        x, y = load_test_set(args.data_dir)
    except (OSError, ValueError, KeyError) as e:
        print(f"eval_model.py: {e}", file=sys.stderr)
        return 1
    print(f"numpy test_accuracy={numpy_accuracy(layers, x, y):.4f}")
    if not args.no_torch:
        print(f"torch test_accuracy={torch_accuracy(layers, x, y):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
