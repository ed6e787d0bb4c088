#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch RPC (torch.distributed.rpc, TensorPipe backend) peer for rxp's
comparison. Run with Debian's /usr/bin/python3 (python3-torch 1.13).

    /usr/bin/python3 perf/peers/torch_rpc.py [--port P] [--json]
        [--tests rtt,echo1m,echo64m,async16] [--rounds-scale F]

Rank 0 (this process) times the calls; rank 1 is a subprocess running this
file with --rank 1. Both on 127.0.0.1, world size 2. Scenarios:
  rtt        rpc_sync of a TorchScript function add(int, int) -> int
  echo<N>    rpc_sync of a TorchScript echo(Tensor) -> Tensor, N bytes
  async<W>   rpc_async of add with W calls in flight (calls/s)
One JSON line per scenario (same fields as perf/perf_stats.h).
"""
import argparse
import json
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
    import math
    return {
        "p50_us": lat[math.ceil(0.50 * n) - 1] / 1e3,
        "p99_us": lat[math.ceil(0.99 * n) - 1] / 1e3,
        "avg_us": sum(lat) / n / 1e3,
    }


def emit(args, scenario, size, window, iters, lat_ns, sec, nbytes_per_call):
    s = summarize(lat_ns)
    calls = iters / sec
    r = {"system": "torch-rpc", "scenario": scenario, "size": size,
         "window": window, "iters": iters, **s,
         "mb_s": nbytes_per_call * calls / 1e6, "calls_s": calls}
    if args.json:
        print(json.dumps(r), flush=True)
    else:
        print("%-14s %-12s size %10d window %4d iters %8d  p50 %9.2f us  "
              "p99 %9.2f us  avg %9.2f us  %10.1f MB/s  %10.0f calls/s" % (
                  r["system"], scenario, size, window, iters, r["p50_us"],
                  r["p99_us"], r["avg_us"], r["mb_s"], calls), flush=True)


def bench_sync(fn, fargs, iters, warm):
    for _ in range(warm):
        rpc.rpc_sync("w1", fn, args=fargs)
    lat = []
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        a = time.perf_counter_ns()
        rpc.rpc_sync("w1", fn, args=fargs)
        lat.append(time.perf_counter_ns() - a)
    return lat, (time.perf_counter_ns() - t0) / 1e9


def bench_async(window, iters, warm):
    for _ in range(warm):
        rpc.rpc_sync("w1", add, args=(1, 2))
    lat = []
    pending = []
    t0 = time.perf_counter_ns()
    issued = 0
    while len(lat) < iters:
        while issued < iters and len(pending) < window:
            pending.append((time.perf_counter_ns(),
                            rpc.rpc_async("w1", add, args=(1, 2))))
            issued += 1
        start, fut = pending.pop(0)
        if fut.wait() != 3:
            raise SystemExit("torch_rpc: bad result")
        lat.append(time.perf_counter_ns() - start)
    return lat, (time.perf_counter_ns() - t0) / 1e9


def options(port, threads):
    return rpc.TensorPipeRpcBackendOptions(
        init_method="tcp://127.0.0.1:%d" % port, num_worker_threads=threads,
        rpc_timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--port", type=int, default=29611)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tests", default="rtt,echo1m,echo64m,async16")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply iteration counts")
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("TP_SOCKET_IFNAME", "lo")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)

    if args.rank == 1:
        rpc.init_rpc("w1", rank=1, world_size=2,
                     rpc_backend_options=options(args.port, args.threads))
        rpc.shutdown()  # graceful: waits for rank 0
        return

    peer = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                             "--rank", "1", "--port", str(args.port),
                             "--threads", str(args.threads)])
    try:
        rpc.init_rpc("w0", rank=0, world_size=2,
                     rpc_backend_options=options(args.port, args.threads))

        def n(x):
            return max(3, int(x * args.scale))

        for t in args.tests.split(","):
            if t == "rtt":
                lat, sec = bench_sync(add, (1, 2), n(3000), 200)
                emit(args, "rtt", 0, 1, len(lat), lat, sec, 0)
            elif t.startswith("echo"):
                size = {"echo64": 64, "echo1m": 1 << 20,
                        "echo64m": 64 << 20}[t]
                x = torch.full((size,), 0x5a, dtype=torch.uint8)
                iters = n(300) if size <= (1 << 20) else n(10)
                lat, sec = bench_sync(echo, (x,), iters, 3)
                y = rpc.rpc_sync("w1", echo, args=(x,))
                if not torch.equal(x, y):
                    raise SystemExit("torch_rpc: echo mismatch")
                emit(args, "echo", size, 1, len(lat), lat, sec, 2 * size)
            elif t.startswith("async"):
                w = int(t[5:])
                lat, sec = bench_async(w, n(5000), 200)
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
