#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""torch.distributed.rpc over RXP, one world of worker processes per
scenario:

    PYTHONPATH=build/python /usr/bin/python3 plugins/torch/tests/worlds.py NAME

Each scenario spawns its workers (torch.multiprocessing, spawn), runs
checks on them, and exits 0 only if every worker passed. ctest registers
one test per scenario (tests.cmake). RXP_TEST_TIMEOUT_SCALE scales the
time bounds (the rxe guest is slow); RXP_TEST_TRANSPORT picks rxp's
transport (default auto).
"""
import faulthandler
import os
import signal
import sys
import tempfile
import threading
import time
import traceback

import torch
import torch.distributed.autograd as dist_autograd
import torch.distributed.rpc as rpc
import torch.multiprocessing as mp
from torch.distributed.optim import DistributedOptimizer

import rxp_torch

SCALE = float(os.environ.get("RXP_TEST_TIMEOUT_SCALE", "1"))
TRANSPORT = os.environ.get("RXP_TEST_TRANSPORT", "auto")


def opts(**kw):
    kw.setdefault("rpc_timeout", 30 * SCALE)
    kw.setdefault("transport", TRANSPORT)
    kw.setdefault("num_worker_threads", 8)
    return rxp_torch.RxpRpcBackendOptions(**kw)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(fn, text):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any error type torch raises
        check(text in str(e), "error %r does not contain %r" % (str(e), text))
        return e
    raise AssertionError("no error raised (wanted %r)" % text)


# ------------------------------------------------------------ functions
# (module level: the callee imports them by name)

def udf_add(a, b):
    return a + b


def udf_echo(*xs):
    return xs if len(xs) != 1 else xs[0]


def udf_same_storage(a, b):
    return a.storage().data_ptr() == b.storage().data_ptr()


def udf_describe(t):
    return (t.requires_grad, t.is_contiguous(), t.layout == torch.sparse_coo,
            t.shape, t.stride() if t.layout == torch.strided else None)


def udf_raise(msg):
    raise ValueError(msg)


def udf_sleep(sec):
    time.sleep(sec)
    return sec


def udf_call(dst, a):
    return rpc.rpc_sync(dst, torch.add, args=(a, 1))


def udf_to_here(rref):
    return rref.to_here() * 2


def udf_owner_rrefs():
    from torch.distributed.rpc import _rref_context_get_debug_info
    return int(_rref_context_get_debug_info()["num_owner_rrefs"])


_release = threading.Event()


def udf_release():
    _release.set()


def udf_die():
    os.kill(os.getpid(), signal.SIGKILL)


def udf_param(n):
    return torch.ones(n, requires_grad=True)


def udf_rref_value(rref):
    return rref.local_value().clone()


def udf_rref_loss(rref, x):
    return (rref.local_value() * x).sum()


@rpc.functions.async_execution
def async_add_twice(dst, x):
    return rpc.rpc_async(dst, torch.add, args=(x, 1)).then(
        lambda f: f.wait() * 2)


@torch.jit.script
def script_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y


@torch.jit.script
def script_calls_rpc(dst: str, x: torch.Tensor) -> torch.Tensor:
    fut = rpc.rpc_async(dst, script_add, (x, x))
    return fut.wait()


# ------------------------------------------------------------ scenarios

def check_call_kinds(peer, t):
    """A Python UDF, TorchScript rpc_async (and TorchScript that calls it),
    remote() of a builtin and of TorchScript, each checked on @t."""
    check(torch.equal(rpc.rpc_sync(peer, udf_add, args=(t, t)), 2 * t), "udf")
    check(torch.equal(rpc.rpc_async(peer, script_add, args=(t, t)).wait(),
                      2 * t), "torchscript rpc_async")
    check(torch.equal(script_calls_rpc(peer, t), 2 * t),
          "torchscript calling rpc_async")
    check(torch.equal(rpc.remote(peer, torch.mul, args=(t, 3)).to_here(),
                      3 * t), "remote to_here")
    check(torch.equal(rpc.remote(peer, script_add, args=(t, t)).to_here(),
                      2 * t), "remote torchscript to_here")


def two_rank0(name, peer):
    t = torch.ones(4)
    # builtin, Python UDF, TorchScript, TorchScript that calls rpc
    check(torch.equal(rpc.rpc_sync(peer, torch.add, args=(t, 2)), t + 2),
          "builtin")
    check_call_kinds(peer, t)
    check(torch.equal(rpc.rpc_sync(name, torch.add, args=(t, 1)), t + 1),
          "self send")
    check(torch.equal(rpc.rpc_sync(peer, async_add_twice, args=(name, t)),
                      (t + 1) * 2), "async_execution")
    # tensors of every size, byte for byte
    g = torch.Generator().manual_seed(7)
    for n in (0, 1, 4096, 1 << 20, 64 << 20):
        x = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g)
        y = rpc.rpc_sync(peer, udf_echo, args=(x,))
        check(y.dtype == torch.uint8 and torch.equal(x, y),
              "echo of %d bytes" % n)
    for dt in (torch.float64, torch.int32, torch.bool, torch.bfloat16,
               torch.complex64):
        x = (torch.arange(24) % 3).to(dt).reshape(2, 3, 4)
        check(torch.equal(rpc.rpc_sync(peer, udf_echo, args=(x,)), x),
              "dtype %s" % dt)
    # views of one storage travel once and arrive sharing it
    base = torch.arange(100.)
    a, b = base[10:20], base[15:40:5]
    check(rpc.rpc_sync(peer, udf_same_storage, args=(a, b)),
          "views arrive on one storage")
    ra, rb = rpc.rpc_sync(peer, udf_echo, args=(a, b))
    check(torch.equal(ra, a) and torch.equal(rb, b), "views' values")
    check(ra.storage().data_ptr() == rb.storage().data_ptr(),
          "returned views share a storage")
    # non-contiguous, sparse, requires_grad as they were
    nc = torch.arange(12.).reshape(3, 4).t()
    d = rpc.rpc_sync(peer, udf_describe, args=(nc,))
    check(d[1] is False and tuple(d[3]) == (4, 3) and d[4] == (1, 4),
          "non-contiguous %r" % (d,))
    check(torch.equal(rpc.rpc_sync(peer, udf_echo, args=(nc,)), nc),
          "non-contiguous values")
    sp = torch.sparse_coo_tensor([[0, 1, 2], [2, 0, 1]], [3., 4., 5.], (3, 3))
    r = rpc.rpc_sync(peer, udf_echo, args=(sp,))
    check(r.layout == torch.sparse_coo and torch.equal(r.to_dense(),
                                                       sp.to_dense()),
          "sparse")
    rg = rpc.rpc_sync(peer, udf_describe, args=(torch.ones(2,
                                                           requires_grad=True),))
    check(rg[0] is True, "requires_grad arrives")
    # the callee's exception, with its text
    raises(lambda: rpc.rpc_sync(peer, udf_raise, args=("boom 42",)),
           "boom 42")
    # timeouts are torch's own timeout errors
    t0 = time.monotonic()
    raises(lambda: rpc.rpc_sync(peer, udf_sleep, args=(3 * SCALE,),
                                timeout=0.5 * SCALE),
           "RPC ran for more than set timeout")
    check(time.monotonic() - t0 < 2.5 * SCALE, "timeout on time")
    fut = rpc.rpc_async(peer, udf_sleep, args=(0.5,), timeout=0)
    check(fut.wait() == 0.5, "timeout 0 means none")
    rpc._set_rpc_timeout(0.3 * SCALE)
    raises(lambda: rpc.rpc_sync(peer, udf_sleep, args=(2 * SCALE,)),
           "RPC ran for more than set timeout")
    rpc._set_rpc_timeout(30 * SCALE)
    rr = rpc.remote(peer, udf_sleep, args=(2 * SCALE,), timeout=0.3 * SCALE)
    raises(lambda: rr._get_future().wait(),
           "RPC ran for more than set timeout")
    raises(lambda: rr.to_here(), "RRef creation via rpc.remote() timed out")
    # profiler: rpc_async_jit# events for TorchScript calls
    with torch.autograd.profiler.profile() as prof:
        rpc.rpc_async(peer, script_add, args=(t, t)).wait()
        rpc.remote(peer, torch.add, args=(t, t)).to_here()
    names = [e.name for e in prof.function_events]
    check(any(n.startswith("rpc_async_jit#") for n in names),
          "profiler rpc_async_jit event in %r" % names)
    check(any(n.startswith("to_here#") for n in names),
          "profiler to_here event in %r" % names)
    # worker info, metrics, debug info, errors for bad input
    agent = rpc.api._get_current_rpc_agent()
    infos = sorted((w.name, w.id) for w in agent.get_worker_infos())
    check(infos == [(name, 0), (peer, 1)], "worker infos %r" % infos)
    check(rpc.get_worker_info(peer).id == 1, "get_worker_info")
    m = agent.get_metrics()
    for k in ("agent.thread_pool_size", "agent.num_idle_threads",
              "agent.client_active_calls", "agent.server_active_calls",
              "agent.server_active_async_calls"):
        check(k in m, "metric " + k)
    check(m["agent.thread_pool_size"] == "8", "pool size %r" % m)
    rpc.enable_gil_profiling(True)
    rpc.rpc_sync(peer, udf_add, args=(1, 2))
    check("agent.gil_average_wait_time_us" in agent.get_metrics(),
          "gil metric")
    info = rpc.api._get_current_rpc_agent().get_debug_info()
    # auto: the network backend, with shm beside it for same-host peers
    check(info.get("rxp.transport", "").replace("+shm", "") in
          ("tcp", "tcp-poll", "verbs"),
          "debug info transport %r" % info.get("rxp.transport"))
    raises(lambda: rpc.rpc_sync("nobody", torch.add, args=(t, 1)),
           "could not find destination")


def scenario_two(rank, world):
    name, peer = "worker%d" % rank, "worker%d" % (1 - rank)
    if rank == 0:
        two_rank0(name, peer)
    else:
        # the other direction, with a UDF that calls back
        check(torch.equal(rpc.rpc_sync(peer, udf_call, args=(name,
                                                            torch.zeros(2))),
                          torch.ones(2)), "nested call back to me")


def scenario_three(rank, world):
    if rank != 0:
        return
    # an RRef owned by worker1, forked to worker2, deleted on the owner
    t = torch.arange(6.)
    before = rpc.rpc_sync("worker1", udf_owner_rrefs)
    rref = rpc.remote("worker1", torch.add, args=(t, 1))
    check(torch.equal(rpc.rpc_sync("worker2", udf_to_here, args=(rref,)),
                      (t + 1) * 2), "rref forked to a third worker")
    check(rpc.rpc_sync("worker1", udf_owner_rrefs) == before + 1,
          "owner holds the rref")
    del rref
    deadline = time.monotonic() + 10 * SCALE
    while rpc.rpc_sync("worker1", udf_owner_rrefs) != before:
        check(time.monotonic() < deadline, "owner never deleted the rref")
        time.sleep(0.05)
    # distributed autograd across workers
    with dist_autograd.context() as cid:
        a = torch.rand(3, 3, requires_grad=True)
        b = torch.rand(3, 3, requires_grad=True)
        s = rpc.rpc_sync("worker1", torch.add, args=(a, b))
        loss = rpc.rpc_sync("worker2", torch.mul, args=(s, 2)).sum()
        dist_autograd.backward(cid, [loss])
        grads = dist_autograd.get_gradients(cid)
        check(torch.allclose(grads[a], torch.full((3, 3), 2.)),
              "dist autograd gradient")
    # DistributedOptimizer on a parameter owned by worker1
    p = rpc.remote("worker1", udf_param, args=(4,))
    opt = DistributedOptimizer(torch.optim.SGD, [p], lr=0.5)
    with dist_autograd.context() as cid:
        loss = rpc.rpc_sync("worker1", udf_rref_loss, args=(p, 2.0))
        dist_autograd.backward(cid, [loss])
        opt.step(cid)
    v = rpc.rpc_sync("worker1", udf_rref_value, args=(p,))
    check(torch.allclose(v, torch.zeros(4)), "optimizer step %r" % v)


def scenario_four(rank, world):
    me = "worker%d" % rank
    futs = []
    for r in range(world):
        x = torch.full((1000,), float(rank * 10 + r))
        futs.append((x, rpc.rpc_async("worker%d" % r, udf_echo, args=(x,))))
        futs.append((x + 1, rpc.rpc_async("worker%d" % r, torch.add,
                                          args=(x, 1))))
    for want, f in futs:
        check(torch.equal(f.wait(), want), me + " all to all")


def scenario_kill(rank, world):
    # worker2 dies (SIGKILL) while rank 0 waits on it: the call fails at
    # once, not at its timeout; the others carry on and leave ungracefully
    if rank == 0:
        slow = rpc.rpc_async("worker2", udf_sleep, args=(60,), timeout=0)
        time.sleep(0.3)
        t0 = time.monotonic()
        try:
            rpc.rpc_sync("worker2", udf_die, timeout=0)
        except Exception:  # noqa: BLE001 - the death fails it
            pass
        raises(slow.wait, "worker2")
        check(time.monotonic() - t0 < 10 * SCALE, "lost peer fails fast")
        check(torch.equal(rpc.rpc_sync("worker1", torch.add,
                                       args=(torch.ones(1), 1)),
                          torch.full((1,), 2.)), "survivor still served")
        rpc.rpc_sync("worker1", udf_release)
    else:  # worker2 dies in here; worker1 is released by rank 0
        check(_release.wait(120 * SCALE), "rank 0 never released me")
        # an ungraceful shutdown closes at once: let the release's
        # response reach rank 0 first
        time.sleep(1)
    return "ungraceful"


def scenario_inflight(rank, world):
    # graceful shutdown waits for every call in flight, on both sides
    if rank == 0:
        futs = [rpc.rpc_async("worker1", udf_sleep, args=(0.01,))
                for _ in range(200)]
        futs += [rpc.rpc_async("worker1", udf_echo, args=(torch.ones(1000),))
                 for _ in range(200)]
        return ("check_after_shutdown", futs)
    return None


def scenario_ungraceful(rank, world):
    # shutdown(graceful=False) with calls pending fails them, never hangs
    if rank == 0:
        futs = [rpc.rpc_async("worker1", udf_sleep, args=(3,), timeout=0)
                for _ in range(5)]
        time.sleep(0.2)
        rpc.shutdown(graceful=False)
        for f in futs:
            raises(f.wait, "")
        return "done"
    time.sleep(1)
    return "ungraceful"


def scenario_verbs(rank, world):
    # torch over RDMA: rank 0 on device A, rank 1 on device B (the guest's
    # two rxe devices; one device in --mode one). The transport is forced,
    # and checked, so a silent fall back to tcp cannot pass.
    name, peer = "worker%d" % rank, "worker%d" % (1 - rank)
    agent = rpc.api._get_current_rpc_agent()
    tr = agent.get_debug_info().get("rxp.transport")
    check(tr == "verbs", "%s runs on transport %r, not verbs" % (name, tr))
    if rank == 1:
        # the other direction, a UDF that calls back into me
        check(torch.equal(rpc.rpc_sync(peer, udf_call,
                                       args=(name, torch.zeros(2))),
                          torch.ones(2)), "nested call back to me")
        return None
    t = torch.ones(4)
    check_call_kinds(peer, t)
    g = torch.Generator().manual_seed(9)
    for n in (1 << 20, 64 << 20):
        x = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g)
        t0 = time.monotonic()
        y = rpc.rpc_sync(peer, udf_echo, args=(x,))
        say(rank, "echo of %d bytes: %.2f s" % (n, time.monotonic() - t0))
        check(y.dtype == torch.uint8 and tuple(y.shape) == (n,) and
              torch.equal(x, y), "echo of %d bytes" % n)
        del y
    tr = rpc.rpc_sync(peer, udf_transport)
    check(tr == "verbs", "worker1 says its transport is %r" % tr)
    return None


def udf_transport():
    return rpc.api._get_current_rpc_agent().get_debug_info().get(
        "rxp.transport")


SCENARIOS = {
    "verbs": (2, scenario_verbs),
    "two": (2, scenario_two),
    "three": (3, scenario_three),
    "four": (4, scenario_four),
    "kill": (3, scenario_kill),
    "inflight": (2, scenario_inflight),
    "ungraceful": (2, scenario_ungraceful),
}


T0 = time.monotonic()


def say(rank, what):
    if os.environ.get("RXP_TEST_VERBOSE"):
        print("[%7.3f] worker%d: %s" % (time.monotonic() - T0, rank, what),
              file=sys.stderr, flush=True)


# The verbs scenario: one world of 2 forked processes (importing torch
# takes ~30 s per interpreter in the TCG guest), shorter bounds than the
# others' so that a hang is reported well inside the ctest TIMEOUT
# (tests.cmake) and the CI verbs stage's budget.
VERBS_DEADLINE = 30 * SCALE


def scenario_opts(scenario, rank):
    if scenario != "verbs":
        return {}
    a = os.environ.get("RXP_ADDR_A", "127.0.0.1")
    b = os.environ.get("RXP_ADDR_B", a)  # --mode one: one device
    return {"transport": "verbs", "bind_addr": b if rank % 2 else a}


def verbs_device_missing():
    """None if an RDMA device is there, else why not."""
    try:
        devs = sorted(os.listdir("/sys/class/infiniband"))
    except OSError:
        devs = []
    if not devs:
        return "no RDMA device (/sys/class/infiniband is empty or absent)"
    return None


def worker(scenario, rank, world, init, q):
    _, fn = SCENARIOS[scenario]
    # a hung worker says where it hangs before the runner gives up
    faulthandler.dump_traceback_later(
        (VERBS_DEADLINE - 5 * SCALE if scenario == "verbs" else 200 * SCALE)
        + 10 * rank, exit=True)
    try:
        rpc.init_rpc("worker%d" % rank, rank=rank, world_size=world,
                     backend=rpc.BackendType.RXP,
                     rpc_backend_options=opts(init_method=init,
                                              **scenario_opts(scenario,
                                                              rank)))
        say(rank, "initialised")
        res = fn(rank, world)
        say(rank, "scenario done")
        if isinstance(res, tuple) and res[0] == "check_after_shutdown":
            rpc.shutdown()
            for f in res[1]:
                check(f.done(), "a call was still pending after shutdown")
                f.wait()
        elif res == "ungraceful":
            rpc.shutdown(graceful=False)
        elif res != "done":
            rpc.shutdown()
        say(rank, "shut down")
        q.put((rank, "ok"))
    except BaseException:  # noqa: BLE001 - report everything
        tb = traceback.format_exc()
        print("worker%d: %s" % (rank, tb), file=sys.stderr, flush=True)
        q.put((rank, tb))
        q.close()
        q.join_thread()  # the result must leave before we do
        os._exit(1)


def dupname(rank, world, init, q):
    try:
        rpc.init_rpc("same", rank=rank, world_size=world,
                     backend=rpc.BackendType.RXP,
                     rpc_backend_options=opts(init_method=init,
                                              init_timeout=10 * SCALE))
        q.put((rank, "init_rpc accepted a duplicate name"))
    except Exception as e:  # noqa: BLE001
        # torch's own suites (test_duplicate_name) look for this text
        q.put((rank, "ok" if "is not unique" in str(e)
               else "wrong error: %s" % e))


def run(scenario):
    # fork for verbs: the children inherit the imported torch (importing
    # rxp_torch starts no thread, and nothing here has run a torch op yet)
    ctx = mp.get_context("fork" if scenario == "verbs" else "spawn")
    q = ctx.Queue()
    fd, path = tempfile.mkstemp(prefix="rxp-torch-store-")
    os.close(fd)
    os.unlink(path)
    init = "file://" + path
    if scenario == "dupname":
        world, target, args = 2, dupname, ()
    else:
        world, _ = SCENARIOS[scenario]
        target = worker
        args = (scenario,)
    procs = [ctx.Process(target=target, args=args + (r, world, init, q))
             for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + (VERBS_DEADLINE if scenario == "verbs"
                                   else 240 * SCALE)
    results = {}
    want = world - 1 if scenario == "kill" else world  # worker2 dies
    while len(results) < want and time.monotonic() < deadline:
        try:
            r, res = q.get(timeout=1)
            results[r] = res
        except Exception:  # noqa: BLE001 - queue.Empty
            if scenario != "kill" and any(p.exitcode not in (None, 0)
                                          for p in procs):
                time.sleep(1)
                while not q.empty():
                    r, res = q.get()
                    results[r] = res
                break
    for p in procs:
        p.join(timeout=max(1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    if os.path.exists(path):
        os.unlink(path)
    bad = {r: res for r, res in results.items() if res != "ok"}
    missing = [r for r in range(want) if r not in results]
    for r, res in sorted(bad.items()):
        print("worker%d FAILED:\n%s" % (r, res))
    if missing:
        print("no result from workers %s (hung or crashed; exit codes %s)"
              % (missing, [procs[r].exitcode for r in missing]))
    if bad or missing:
        return 1
    print("%s: %d workers passed" % (scenario, want))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or (sys.argv[1] not in SCENARIOS and
                              sys.argv[1] != "dupname"):
        print("usage: worlds.py %s|dupname" % "|".join(SCENARIOS))
        sys.exit(2)
    if sys.argv[1] == "verbs":
        why = verbs_device_missing()
        if why:
            # 77 = skipped (SKIP_RETURN_CODE), unless CI says the device
            # must be there (inside the rxe guest): then a failure
            req = os.environ.get("RXP_TEST_REQUIRE_DEVICE", "")
            must = req not in ("", "0")
            print("%s: %s" % ("FAILED (RXP_TEST_REQUIRE_DEVICE=%s)" % req
                              if must else "skipping", why))
            sys.exit(1 if must else 77)
        os.environ.setdefault("MASTER_ADDR",
                              os.environ.get("RXP_ADDR_A", "127.0.0.1"))
    T0 = time.monotonic()
    sys.exit(run(sys.argv[1]))
