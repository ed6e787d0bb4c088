#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A parameter server with trainers over torch.distributed.rpc on RXP.

    torchrun --standalone --nproc_per_node=3 examples/torch/ps_train.py

Rank 0 is the parameter server: it owns the model. Ranks 1.. are trainers:
each runs the forward pass on the server by RPC, backpropagates through it
with distributed autograd, and steps a DistributedOptimizer whose
parameters live on the server. Trainers also form a gloo process group on
the same store (same MASTER_PORT as torchrun's) to average their losses.
The only rxp-specific lines are the import and backend=RXP.

Exits non-zero unless the loss fell at least tenfold.
"""
import argparse
import os

import torch
import torch.distributed as dist
import torch.distributed.autograd as dist_autograd
import torch.distributed.rpc as rpc
import torch.nn as nn
from torch.distributed.optim import DistributedOptimizer

import rxp_torch  # registers rpc.BackendType.RXP


class Net(nn.Module):
    def __init__(self, n_in):
        super().__init__()
        self.fc = nn.Linear(n_in, 1)

    def forward(self, x):
        return self.fc(x)


def param_rrefs(model_rref):
    return [rpc.RRef(p) for p in model_rref.local_value().parameters()]


def forward(model_rref, x):
    return model_rref.local_value()(x)


def train(rank, world, args):
    torch.manual_seed(1234)  # the same true weights on every trainer
    w_true = torch.randn(args.features, 1)
    g = torch.Generator().manual_seed(rank)
    model = rpc.remote("ps", Net, args=(args.features,))
    opt = DistributedOptimizer(torch.optim.SGD,
                               rpc.rpc_sync("ps", param_rrefs, args=(model,)),
                               lr=args.lr)
    first = last = None
    for step in range(args.steps):
        x = torch.randn(args.batch, args.features, generator=g)
        y = x @ w_true + 0.01 * torch.randn(args.batch, 1, generator=g)
        with dist_autograd.context() as cid:
            out = rpc.rpc_sync("ps", forward, args=(model, x))
            loss = nn.functional.mse_loss(out, y)
            dist_autograd.backward(cid, [loss])
            opt.step(cid)
        avg = loss.detach().clone()
        dist.all_reduce(avg)  # gloo, among the trainers
        avg /= world - 1
        first = avg.item() if first is None else first
        last = avg.item()
        if rank == 1 and (step % 10 == 0 or step == args.steps - 1):
            print("step %3d  mean loss over %d trainers %.5f"
                  % (step, world - 1, last), flush=True)
    return first, last


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--features", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    if world < 2:
        raise SystemExit("needs a server and at least one trainer")
    name = "ps" if rank == 0 else "trainer%d" % rank
    rpc.init_rpc(name, rank=rank, world_size=world,
                 backend=rpc.BackendType.RXP,
                 rpc_backend_options=rxp_torch.RxpRpcBackendOptions())
    ok = True
    if rank > 0:
        # the trainers' own process group, on the same torchrun store
        store = dist.TCPStore(os.environ["MASTER_ADDR"],
                              int(os.environ["MASTER_PORT"]), is_master=False)
        dist.init_process_group("gloo", store=dist.PrefixStore("pg", store),
                                rank=rank - 1, world_size=world - 1)
        first, last = train(rank, world, args)
        ok = last < first / 10
        if rank == 1:
            print("loss %.5f -> %.5f: %s" % (first, last,
                                           "ok" if ok else "NOT LEARNING"))
        dist.destroy_process_group()
    rpc.shutdown()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
