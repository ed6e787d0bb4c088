#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch's own agent-agnostic RPC suites against backend RXP (or
TENSORPIPE, for comparison):

    PYTHONPATH=build/python /usr/bin/python3 plugins/torch/tests/torch_suites.py \
        --backend RXP [--suite RpcTest,DistAutogradTest] [-k pattern] \
        [--jobs N] [--json out.json] [--spawn]

Each suite of torch/testing/_internal/distributed/rpc_utils.GENERIC_TESTS
is mixed, as upstream's generate_tests does, with an agent fixture and
MultiProcessTestCase (4 ranks a test). The ranks are forked from a
forkserver that has already imported torch, rxp_torch and the suites
(~2 s a test instead of 8-18 s with spawn); --spawn uses spawn.
Prints per-suite pass/fail/skip/error counts and one line per failing
test. Not registered in ctest: too slow for CI (docs/torch-suites.md).
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_STUBS = os.path.join(_HERE, "_stubs")
if _STUBS not in sys.path:
    sys.path.insert(0, _STUBS)
# the forkserver and spawned ranks must find the stub too
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_STUBS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                if p])

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import torch  # noqa: E402,F401
import torch.distributed.rpc as rpc  # noqa: E402
import torch.multiprocessing  # noqa: E402

import rxp_torch  # noqa: E402  (registers RXP)
from torch.testing._internal.common_distributed import tp_transports  # noqa: E402
from torch.testing._internal.distributed import rpc_utils  # noqa: E402
from torch.testing._internal.distributed.rpc.rpc_agent_test_fixture import (  # noqa: E402
    RpcAgentTestFixture,
)

START_METHOD = os.environ.get("RXP_SUITES_START", "forkserver")


class RxpRpcAgentTestFixture(RpcAgentTestFixture):
    @property
    def rpc_backend(self):
        return rpc.backend_registry.BackendType["RXP"]

    @property
    def rpc_backend_options(self):
        return rxp_torch.RxpRpcBackendOptions(
            init_method=self.init_method, transport="tcp",
            num_worker_threads=16)

    def get_shutdown_error_regex(self):
        return ".*"

    def get_timeout_error_regex(self):
        return "RPC ran for more than"


class TensorPipeFixture(RpcAgentTestFixture):
    @property
    def rpc_backend(self):
        return rpc.backend_registry.BackendType["TENSORPIPE"]

    @property
    def rpc_backend_options(self):
        return rpc.backend_registry.construct_rpc_backend_options(
            self.rpc_backend, init_method=self.init_method,
            _transports=tp_transports())

    def get_shutdown_error_regex(self):
        return ".*"

    def get_timeout_error_regex(self):
        return "RPC ran for more than"


class FastSpawn(rpc_utils.SpawnHelper):
    """SpawnHelper whose ranks come from a forkserver with torch loaded."""

    def _spawn_processes(self):
        ctx = torch.multiprocessing.get_context(START_METHOD)
        self._start_processes(ctx.Process)


FIXTURES = {"RXP": RxpRpcAgentTestFixture, "TENSORPIPE": TensorPipeFixture}
SUITES = {c.__name__: c for c in rpc_utils.GENERIC_TESTS}

# classes at module level so that the ranks (which import this module as
# __mp_main__ or by name) find them by pickle
for _b, _fx in FIXTURES.items():
    for _n, _s in SUITES.items():
        _name = _b.title().replace("_", "") + _n
        _cls = type(_name, (_s, _fx, FastSpawn), {})
        _cls.__module__ = __name__
        globals()[_name] = _cls


def class_for(backend, suite):
    return globals()[backend.title() + suite]


def reason_of(text):
    """One line from a failure's traceback: the last exception line."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    pat = re.compile(r"^[\w.]*(Error|Exception|Timeout|Failure)\b.*:|"
                     r"^AssertionError|^RuntimeError|^Process \d+ ")
    for l in reversed(lines):
        if pat.match(l) and not l.startswith("RuntimeError: Process"):
            return l[:300]
    return (lines[-1] if lines else "?")[:300]


class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = []
        self.times = {}

    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def stopTest(self, test):
        self.times[test.id()] = time.time() - self._t0
        super().stopTest(test)
        log = os.environ.get("RXP_SUITES_LOG")
        if log:  # one line a test, so that an interrupted run still counts
            st, why = "pass", ""
            for kind, lst in (("fail", self.failures), ("error", self.errors),
                              ("skip", self.skipped)):
                if lst and lst[-1][0] is test:
                    st, why = kind, reason_of(lst[-1][1]) if kind != "skip" \
                        else str(lst[-1][1])[:200]
            with open(log, "a") as fh:
                fh.write("%s\t%s\t%s\t%.1f\t%s\n" % (
                    st, test.id().split(".")[-2], test.id().split(".")[-1],
                    self.times[test.id()], why.replace("\n", " ")))
                fh.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)


def run_here(backend, suites, pattern, shard, nshards):
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = ["*%s*" % p for p in pattern.split(",")]
    out = {}
    for s in suites:
        cls = class_for(backend, s)
        names = sorted(loader.getTestCaseNames(cls))
        names = names[shard::nshards]
        suite = unittest.TestSuite(cls(n) for n in names)
        r = unittest.TextTestRunner(verbosity=2, resultclass=Result,
                                    stream=sys.stderr).run(suite)
        short = lambda t: t.id().split(".")[-1]  # noqa: E731
        out[s] = {
            "passed": [short(t) for t in r.passed],
            "failed": {short(t): reason_of(e) for t, e in r.failures},
            "errors": {short(t): reason_of(e) for t, e in r.errors},
            "skipped": {short(t): str(m)[:200] for t, m in r.skipped},
            "seconds": sum(r.times.values()),
        }
    return out


def merge(a, b):
    for s, r in b.items():
        m = a.setdefault(s, {"passed": [], "failed": {}, "errors": {},
                             "skipped": {}, "seconds": 0.0})
        m["passed"] += r["passed"]
        for k in ("failed", "errors", "skipped"):
            m[k].update(r[k])
        m["seconds"] += r["seconds"]
    return a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="RXP", choices=sorted(FIXTURES))
    ap.add_argument("--suite", default="RpcTest,DistAutogradTest,JitRpcTest",
                    help="comma list of " + ",".join(SUITES))
    ap.add_argument("-k", default="", help="substring(s) of test names, "
                    "comma separated")
    ap.add_argument("--jobs", type=int, default=1,
                    help="shards run as parallel runner processes")
    ap.add_argument("--json", default="")
    ap.add_argument("--spawn", action="store_true")
    ap.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    a = ap.parse_args()
    suites = [s for s in a.suite.split(",") if s]
    for s in suites:
        if s not in SUITES:
            ap.error("unknown suite %s" % s)
    if a.spawn:
        os.environ["RXP_SUITES_START"] = "spawn"
        global START_METHOD
        START_METHOD = "spawn"
    t0 = time.time()
    if a.jobs > 1:
        procs, files = [], []
        for i in range(a.jobs):
            f = "%s.shard%d" % (a.json or "/tmp/torch_suites_%d" % os.getpid(),
                                i)
            files.append(f)
            cmd = [sys.executable, os.path.abspath(__file__), "--backend",
                   a.backend, "--suite", a.suite, "-k", a.k, "--json", f,
                   "--shard", "%d/%d" % (i, a.jobs)] + (
                       ["--spawn"] if a.spawn else [])
            procs.append(subprocess.Popen(cmd))
        for p in procs:
            p.wait()
        res = {}
        for f in files:
            with open(f) as fh:
                merge(res, json.load(fh))
    else:
        i, n = (int(x) for x in a.shard.split("/"))
        if START_METHOD == "forkserver":
            torch.multiprocessing.set_forkserver_preload(["__main__"])
        res = run_here(a.backend, suites, a.k, i, n)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1, sort_keys=True)
    if a.shard != "0/1":
        return 0
    print("\nbackend %s, %.0f s wall" % (a.backend, time.time() - t0))
    print("%-22s %6s %6s %6s %6s" % ("suite", "pass", "fail", "error",
                                      "skip"))
    bad = 0
    for s, r in res.items():
        print("%-22s %6d %6d %6d %6d" % (s, len(r["passed"]),
                                          len(r["failed"]), len(r["errors"]),
                                          len(r["skipped"])))
        bad += len(r["failed"]) + len(r["errors"])
    for s, r in res.items():
        for kind in ("failed", "errors"):
            for t, why in sorted(r[kind].items()):
                print("%s %s.%s: %s" % (kind.upper()[:4], s, t, why))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
