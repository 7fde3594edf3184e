#!/usr/bin/env python3
"""Prints torch.optim's trajectories that server/shard/one_update_per_push_test.cc checks.

Seven parameters start at 1.0 and get the same six gradients in every run; each optimizer
takes six steps. Run with Debian's python3-torch: /usr/bin/python3 this_file.py
"""
import torch

GRADS = [[0.5 * ((i * 7 + s * 3) % 11 - 5) for i in range(7)] for s in range(6)]
OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam([p], lr=0.01),
    "adagrad": lambda p: torch.optim.Adagrad([p], lr=0.1, lr_decay=0.01),
    "sgd_momentum_dampening": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5),
}

for name, make in OPTIMIZERS.items():
    p = torch.nn.Parameter(torch.ones(7, dtype=torch.float32))
    opt = make(p)
    for g in GRADS:
        opt.zero_grad()
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    print(name, ", ".join("%.9g" % v for v in p.detach().tolist()))
