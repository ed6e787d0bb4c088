#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch RPC (torch.distributed.rpc) benchmark peer for rxp's comparison:
the same program over the TENSORPIPE backend (its default, or forced
transports/channels) and over rxp's RXP backend (plugins/torch). Run with
Debian's /usr/bin/python3 (python3-torch 1.13); RXP needs rxp_torch on
PYTHONPATH (build/python of a tree configured with -DRXP_TORCH=ON).

    /usr/bin/python3 perf/peers/torch_rpc.py [--port P] [--json]
        [--backend TENSORPIPE|RXP] [--tp-transports uv] [--tp-channels basic]
        [--rxp-transport auto|tcp|verbs] [--poll-us N] [--system NAME]
        [--tests rtt,echo1m,echo64m,async16] [--scale F] [--threads N]

Rank 0 (this process) times the calls; rank 1 is a subprocess running this
file with --rank 1 and the same backend options. Both on 127.0.0.1, world
size 2. Scenarios (--tests):
  rtt        rpc_sync of a TorchScript function add(int, int) -> int
  builtin    rpc_sync(torch.add) of two 2-element float tensors (builtin op)
  ts_async   rpc_async(TorchScript add(int, int)).wait(), one at a time
  remote     rpc.remote(torch.add, two 2-element tensors).to_here()
  echo<N>    rpc_sync of a TorchScript echo(Tensor) -> Tensor, N = 64, 1m,
             64m bytes; the echoed bytes are compared once after timing
  async<W>   rpc_async of TorchScript add with W calls in flight (calls/s)
One JSON line per scenario (same fields as perf/perf_stats.h) plus
"backend", "transports", "channels" (TensorPipe) or "transport" (RXP).

TensorPipe in torch 1.13: transports uv (TCP, priority 0) and shm (one
host, 200); channels basic (through the transport, 0), cma
(process_vm_readv, one host, 1200) and mpt_uv (800). The default picks the
highest-priority viable pair: shm + cma on one host when both work.
"""
import argparse
import collections
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.distributed.rpc as rpc


@torch.jit.script
def add(x: int, y: int) -> int:
    return x + y


@torch.jit.script
def echo(t: torch.Tensor) -> torch.Tensor:
    return t


def summarize(lat_ns):
    lat = sorted(lat_ns)
    n = len(lat)
    return {
        "p50_us": lat[math.ceil(0.50 * n) - 1] / 1e3,
        "p99_us": lat[math.ceil(0.99 * n) - 1] / 1e3,
        "avg_us": sum(lat) / n / 1e3,
    }


def emit(args, scenario, size, window, iters, lat_ns, sec, nbytes_per_call):
    s = summarize(lat_ns)
    calls = iters / sec
    r = {"system": args.system, "scenario": scenario, "size": size,
         "window": window, "iters": iters, **s,
         "mb_s": nbytes_per_call * calls / 1e6, "calls_s": calls,
         **args.info}
    if args.json:
        print(json.dumps(r), flush=True)
    else:
        print("%-16s %-9s size %9d window %4d iters %6d  p50 %9.2f us  "
              "p99 %9.2f us  avg %9.2f us  %9.1f MB/s  %9.0f calls/s" % (
                  r["system"], scenario, size, window, iters, r["p50_us"],
                  r["p99_us"], r["avg_us"], r["mb_s"], calls), flush=True)


def bench(call, iters, warm):
    """Time @call() (one round trip) @iters times after @warm untimed."""
    for _ in range(warm):
        call()
    lat = []
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        a = time.perf_counter_ns()
        call()
        lat.append(time.perf_counter_ns() - a)
    return lat, (time.perf_counter_ns() - t0) / 1e9


def bench_async(window, iters, warm):
    for _ in range(warm):
        rpc.rpc_sync("w1", add, args=(1, 2))
    lat = []
    pending = collections.deque()
    t0 = time.perf_counter_ns()
    issued = 0
    while len(lat) < iters:
        while issued < iters and len(pending) < window:
            pending.append((time.perf_counter_ns(),
                            rpc.rpc_async("w1", add, args=(1, 2))))
            issued += 1
        start, fut = pending.popleft()
        if fut.wait() != 3:
            raise SystemExit("torch_rpc: bad result")
        lat.append(time.perf_counter_ns() - start)
    return lat, (time.perf_counter_ns() - t0) / 1e9


def backend_args(args):
    """argv that gives rank 1 the same backend options."""
    a = ["--backend", args.backend, "--threads", str(args.threads),
         "--port", str(args.port), "--poll-us", str(args.poll_us),
         "--rxp-transport", args.rxp_transport]
    if args.tp_transports:
        a += ["--tp-transports", args.tp_transports]
    if args.tp_channels:
        a += ["--tp-channels", args.tp_channels]
    return a


def init(args, name, rank):
    method = "tcp://127.0.0.1:%d" % args.port
    if args.backend == "RXP":
        import rxp_torch
        opts = rxp_torch.RxpRpcBackendOptions(
            init_method=method, num_worker_threads=args.threads,
            rpc_timeout=120, transport=args.rxp_transport,
            poll_us=args.poll_us)
        rpc.init_rpc(name, rank=rank, world_size=2,
                     backend=rpc.BackendType.RXP, rpc_backend_options=opts)
        agent = rpc.api._get_current_rpc_agent()
        args.info = {"backend": "RXP", "transport": agent.transport,
                     "poll_us": args.poll_us}
        return
    kw = {}
    if args.tp_transports:
        kw["_transports"] = args.tp_transports.split(",")
    if args.tp_channels:
        kw["_channels"] = args.tp_channels.split(",")
    opts = rpc.TensorPipeRpcBackendOptions(
        init_method=method, num_worker_threads=args.threads,
        rpc_timeout=120, **kw)
    rpc.init_rpc(name, rank=rank, world_size=2,
                 backend=rpc.BackendType.TENSORPIPE, rpc_backend_options=opts)
    args.info = {"backend": "TENSORPIPE",
                 "transports": args.tp_transports or "default",
                 "channels": args.tp_channels or "default"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--port", type=int, default=29611)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tests", default="rtt,echo1m,echo64m,async16")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply iteration counts")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--backend", default="TENSORPIPE",
                    choices=("TENSORPIPE", "RXP"))
    ap.add_argument("--tp-transports", default="",
                    help="TensorPipe _transports, comma-separated")
    ap.add_argument("--tp-channels", default="",
                    help="TensorPipe _channels, comma-separated")
    ap.add_argument("--rxp-transport", default="auto")
    ap.add_argument("--poll-us", type=int, default=-1,
                    help="RXP poll_us (-1: $RXP_POLL_US or 0)")
    ap.add_argument("--system", default="",
                    help="name in the output (default from the backend)")
    args = ap.parse_args()
    if not args.system:
        if args.backend == "RXP":
            args.system = "torch-rxp"
        elif args.tp_transports or args.tp_channels:
            args.system = "torch-tp-%s-%s" % (
                args.tp_transports.replace(",", "+") or "default",
                args.tp_channels.replace(",", "+") or "default")
        else:
            args.system = "torch-rpc"  # TensorPipe's default (compare.py)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("TP_SOCKET_IFNAME", "lo")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)

    if args.rank == 1:
        init(args, "w1", 1)
        rpc.shutdown()  # graceful: waits for rank 0
        return

    peer = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                             "--rank", "1"] + backend_args(args))
    try:
        init(args, "w0", 0)

        def n(x):
            return max(3, int(x * args.scale))

        a2 = torch.ones(2)
        b2 = torch.full((2,), 2.0)
        want = torch.full((2,), 3.0)

        def builtin():
            return rpc.rpc_sync("w1", torch.add, args=(a2, b2))

        def ts_async():
            return rpc.rpc_async("w1", add, args=(1, 2)).wait()

        def remote():
            return rpc.remote("w1", torch.add, args=(a2, b2)).to_here()

        for t in args.tests.split(","):
            if t == "rtt":
                lat, sec = bench(lambda: rpc.rpc_sync("w1", add, args=(1, 2)),
                                 n(3000), 200)
                emit(args, "rtt", 0, 1, len(lat), lat, sec, 0)
            elif t in ("builtin", "remote"):
                fn = builtin if t == "builtin" else remote
                lat, sec = bench(fn, n(2000 if t == "builtin" else 1000), 100)
                if not torch.equal(fn(), want):
                    raise SystemExit("torch_rpc: bad %s result" % t)
                emit(args, t, 0, 1, len(lat), lat, sec, 0)
            elif t == "ts_async":
                lat, sec = bench(ts_async, n(3000), 200)
                if ts_async() != 3:
                    raise SystemExit("torch_rpc: bad ts_async result")
                emit(args, "ts_async", 0, 1, len(lat), lat, sec, 0)
            elif t.startswith("echo"):
                size = {"echo64": 64, "echo1m": 1 << 20,
                        "echo64m": 64 << 20}[t]
                # a pattern that a lost or shifted page cannot repeat
                x = (torch.arange(size, dtype=torch.int64) % 251).to(
                    torch.uint8)
                iters = n(300) if size <= (1 << 20) else n(12)
                lat, sec = bench(lambda: rpc.rpc_sync("w1", echo, args=(x,)),
                                 iters, 3 if size > (1 << 20) else 20)
                y = rpc.rpc_sync("w1", echo, args=(x,))
                if not torch.equal(x, y):
                    raise SystemExit("torch_rpc: echo mismatch")
                emit(args, "echo", size, 1, len(lat), lat, sec, 2 * size)
            elif t.startswith("async"):
                w = int(t[5:])
                lat, sec = bench_async(w, n(max(5000, 20 * w)), 200)
                emit(args, "calls", 0, w, len(lat), lat, sec, 0)
            else:
                raise SystemExit("torch_rpc: unknown test " + t)
        rpc.shutdown()
    finally:
        try:
            peer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            peer.kill()


if __name__ == "__main__":
    main()
