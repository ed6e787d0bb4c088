#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""torch.distributed.rpc on RXP next to TENSORPIPE, in the same rounds.

    /usr/bin/python3 perf/torch_compare.py --pythonpath BUILD/python
        [--out docs/perf] [--rounds 3] [--quick] [--threads 16]

Each round runs perf/peers/torch_rpc.py once per backend variant, back to
back, in an order that alternates from round to round (forward, then
reversed):

  torch-rxp         RXP (rxp_torch from --pythonpath), its defaults
  torch-rpc         TENSORPIPE, its default (shm + cma on one host)
  torch-tp-shm-cma  TENSORPIPE, _transports=["shm"], _channels=["cma"]
  torch-tp-uv-basic TENSORPIPE, _transports=["uv"], _channels=["basic"]

Rows: builtin rpc_sync (torch.add of 2-element tensors), TorchScript
rpc_async round trip, remote().to_here(), 1 MiB and 64 MiB TorchScript
tensor echo (bytes checked once), calls/s with 16 and 256 in flight.
Ratios are taken inside a round (same load); the median over rounds is
reported. Goals (issue 9, reported, never asserted): RXP at least as fast
as TENSORPIPE's default on every row, and RXP's 64 MiB echo at least 2x
TENSORPIPE over uv. Writes OUT/torch.md and OUT/torch.json; the machine's
load average is recorded before and after every run.

Every process started here is ours, on 127.0.0.1, and has a timeout.
"""
import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
MiB = 1 << 20
TESTS = "builtin,ts_async,remote,echo1m,echo64m,async16,async256"

VARIANTS = [  # (system, argv for torch_rpc.py, description)
    ("torch-rxp", ["--backend", "RXP"], "RXP (defaults)"),
    ("torch-rpc", ["--backend", "TENSORPIPE"], "TENSORPIPE default"),
    ("torch-tp-shm-cma", ["--backend", "TENSORPIPE", "--tp-transports",
                          "shm", "--tp-channels", "cma"],
     "TENSORPIPE shm + cma"),
    ("torch-tp-uv-basic", ["--backend", "TENSORPIPE", "--tp-transports",
                           "uv", "--tp-channels", "basic"],
     "TENSORPIPE uv + basic"),
]
RXP = "torch-rxp"
TP_DEFAULT = "torch-rpc"
TP_UV = "torch-tp-uv-basic"

# (key, label): key = (scenario, size, window)
ROWS = [
    (("builtin", 0, 1), "builtin rpc_sync torch.add (2 floats)"),
    (("ts_async", 0, 1), "TorchScript rpc_async(add).wait()"),
    (("remote", 0, 1), "remote(torch.add).to_here()"),
    (("echo", MiB, 1), "TorchScript echo 1 MiB"),
    (("echo", 64 * MiB, 1), "TorchScript echo 64 MiB"),
    (("calls", 0, 16), "calls/s, 16 in flight"),
    (("calls", 0, 256), "calls/s, 256 in flight"),
]


def log(*a):
    print("torch_compare:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def key(r):
    return (r["scenario"], int(r["size"]), int(r["window"]))


def metric(r):
    """(value, higher_is_better): calls/s for calls rows, else p50."""
    if r["scenario"] == "calls":
        return r["calls_s"], True
    return r["p50_us"], False


def speedup(rxp, other):
    """How many times better RXP is than @other (>1: RXP wins)."""
    a, hi = metric(rxp)
    b, _ = metric(other)
    if not a or not b:
        return None
    return a / b if hi else b / a


def run_variant(a, system, argv, scale):
    env = dict(os.environ)
    pp = [a.pythonpath] if a.pythonpath else []
    if env.get("PYTHONPATH"):
        pp.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(pp)
    cmd = [PY, os.path.join(HERE, "peers", "torch_rpc.py"), "--json",
           "--port", str(free_port()), "--tests", a.tests, "--scale",
           str(scale), "--threads", str(a.threads), "--system",
           system] + argv
    la0 = loadavg()
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=a.timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise RuntimeError("timed out after %d s: %s"
                           % (a.timeout, err.strip()[-300:]))
    if p.returncode:
        raise RuntimeError("exit %d: %s" % (p.returncode,
                                             err.strip()[-400:]))
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    la1 = loadavg()
    for r in rows:
        r["load_before"] = la0
        r["load_after"] = la1
        r["wall_s"] = time.time() - t0
    return rows


def summarize(runs, rounds):
    by = {}  # (round, system, key) -> row
    for r in runs:
        if not r.get("missing"):
            by[(r["round"], r["system"], key(r))] = r
    systems = [v[0] for v in VARIANTS]
    table = []
    for k, label in ROWS:
        row = {"key": list(k), "label": label, "systems": {}}
        for s in systems:
            rs = [by[(i, s, k)] for i in range(rounds) if (i, s, k) in by]
            if rs:
                row["systems"][s] = {
                    "p50_us": statistics.median(x["p50_us"] for x in rs),
                    "p99_us": statistics.median(x["p99_us"] for x in rs),
                    "calls_s": statistics.median(x["calls_s"] for x in rs),
                    "mb_s": statistics.median(x["mb_s"] for x in rs),
                    "rounds": len(rs)}
        for s in systems[1:]:
            rat = [speedup(by[(i, RXP, k)], by[(i, s, k)])
                   for i in range(rounds)
                   if (i, RXP, k) in by and (i, s, k) in by]
            rat = [x for x in rat if x]
            if rat:
                row.setdefault("rxp_x", {})[s] = {
                    "median": statistics.median(rat),
                    "min": min(rat), "max": max(rat),
                    "per_round": rat}
        table.append(row)
    goals = []
    for row in table:
        r = row.get("rxp_x", {}).get(TP_DEFAULT)
        goals.append({"goal": "RXP >= TENSORPIPE default: " + row["label"],
                      "target": 1.0, "ratio": r and r["median"],
                      "met": bool(r and r["median"] >= 1.0)})
    for row in table:
        if tuple(row["key"]) == ("echo", 64 * MiB, 1):
            r = row.get("rxp_x", {}).get(TP_UV)
            goals.append({"goal": "RXP 64 MiB echo >= 2x TENSORPIPE uv",
                          "target": 2.0, "ratio": r and r["median"],
                          "met": bool(r and r["median"] >= 2.0)})
    return table, goals


def fmt(v, nd=1):
    if v is None:
        return "-"
    if v >= 1000:
        return "%.0f" % v
    return ("%." + str(nd) + "f") % v


def write_md(path, res):
    L = []
    L.append("# torch.distributed.rpc: RXP next to TENSORPIPE\n")
    L.append("Generated by `%s` on %s (%s); %d round(s), each running every "
             "backend variant back to back, order reversed every other "
             "round. Figures are medians over rounds; `RXP x` columns are "
             "the medians of ratios measured in the same round (> 1: RXP is "
             "better; latency rows compare p50, calls rows calls/s). "
             "2 workers on 127.0.0.1, world size 2, 16 worker threads, "
             "torch %s.\n" % (res["command"], res["host"], time.strftime(
                 "%Y-%m-%d %H:%M UTC", time.gmtime(res["started"])),
                 res["rounds"], res["torch"]))
    la = [l for r in res["runs"] for l in (r.get("load_before"),
                                           r.get("load_after")) if l]
    if la:
        one = [x[0] for x in la]
        L.append("Machine load (1-min load average on %d cores, sampled "
                 "around every run): min %.2f, median %.2f, max %.2f. "
                 "The machine is shared: trust same-round ratios over "
                 "absolutes.\n" % (res["cores"], min(one),
                                    statistics.median(one), max(one)))
    L.append("| variant | backend options |")
    L.append("| --- | --- |")
    for s, argv, d in VARIANTS:
        info = next((r for r in res["runs"] if r["system"] == s
                     and not r.get("missing")), {})
        extra = ""
        if info.get("backend") == "RXP":
            extra = " (transport %s, poll_us %s)" % (info.get("transport"),
                                                     info.get("poll_us"))
        L.append("| `%s` | %s%s |" % (s, d, extra))
    L.append("")
    L.append("## Goals\n")
    L.append("| goal | target | ratio (same-round median) | met |")
    L.append("| --- | --- | --- | --- |")
    for g in res["goals"]:
        L.append("| %s | >= %.1fx | %s | %s |" % (
            g["goal"], g["target"],
            "-" if g["ratio"] is None else "%.2fx" % g["ratio"],
            "yes" if g["met"] else "**no**"))
    L.append("")
    L.append("## Rows\n")
    L.append("Latency rows: p50 / p99 round trip in us. Calls rows: calls/s "
             "(p50 latency of one call in brackets). Echo rows also give "
             "MB/s (2 x size per call).\n")
    systems = [v[0] for v in VARIANTS]
    L.append("| row | " + " | ".join("`%s`" % s for s in systems) + " | "
             + " | ".join("RXP x `%s`" % s for s in systems[1:]) + " |")
    L.append("| --- " * (2 * len(systems)) + "|")
    for row in res["table"]:
        cells = []
        for s in systems:
            v = row["systems"].get(s)
            if not v:
                cells.append("missing")
            elif row["key"][0] == "calls":
                cells.append("%s (%s us)" % (fmt(v["calls_s"]),
                                             fmt(v["p50_us"])))
            elif row["key"][0] == "echo":
                cells.append("%s / %s (%s MB/s)" % (
                    fmt(v["p50_us"]), fmt(v["p99_us"]), fmt(v["mb_s"])))
            else:
                cells.append("%s / %s" % (fmt(v["p50_us"]),
                                          fmt(v["p99_us"])))
        for s in systems[1:]:
            r = row.get("rxp_x", {}).get(s)
            cells.append("-" if not r else "%.2f (%.2f-%.2f)" % (
                r["median"], r["min"], r["max"]))
        L.append("| %s | %s |" % (row["label"], " | ".join(cells)))
    L.append("")
    miss = [r for r in res["runs"] if r.get("missing")]
    if miss:
        L.append("## Missing\n")
        for r in miss:
            L.append("- round %d `%s`: %s" % (r["round"] + 1, r["system"],
                                              r["why"]))
        L.append("")
    L.append("## Per round\n")
    L.append("| round | variant | load before -> after | wall s |")
    L.append("| --- | --- | --- | --- |")
    seen = set()
    for r in res["runs"]:
        k = (r["round"], r["system"])
        if k in seen or r.get("missing"):
            continue
        seen.add(k)
        L.append("| %d | `%s` | %.2f -> %.2f | %.0f |" % (
            r["round"] + 1, r["system"], r["load_before"][0],
            r["load_after"][0], r["wall_s"]))
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pythonpath", default="",
                    help="directory holding rxp_torch (BUILD/python)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs",
                                                  "perf"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scale", type=float, default=0.0,
                    help="iteration scale (default 1, --quick 0.1)")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--tests", default=TESTS)
    ap.add_argument("--timeout", type=int, default=240)
    ap.add_argument("--variants", default="",
                    help="comma-separated subset of the variant names")
    a = ap.parse_args()
    scale = a.scale or (0.1 if a.quick else 1.0)
    global VARIANTS
    if a.variants:
        want = a.variants.split(",")
        VARIANTS = [v for v in VARIANTS if v[0] in want]
    import torch
    res = {"started": time.time(), "rounds": a.rounds,
           "command": " ".join(["perf/torch_compare.py"] + sys.argv[1:]),
           "host": platform.node(), "cores": os.cpu_count(),
           "torch": torch.__version__, "scale": scale, "tests": a.tests,
           "runs": []}
    for rnd in range(a.rounds):
        order = VARIANTS if rnd % 2 == 0 else list(reversed(VARIANTS))
        for system, argv, _ in order:
            log("round %d/%d: %s (load %.2f)" % (rnd + 1, a.rounds, system,
                                                 loadavg()[0]))
            try:
                for r in run_variant(a, system, argv, scale):
                    r["round"] = rnd
                    res["runs"].append(r)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                log("%s failed: %s" % (system, e))
                res["runs"].append({"system": system, "missing": True,
                                    "round": rnd, "why": str(e)})
    res["finished"] = time.time()
    res["table"], res["goals"] = summarize(res["runs"], a.rounds)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "torch.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_md(os.path.join(a.out, "torch.md"), res)
    for g in res["goals"]:
        print("%-52s %s  %s" % (g["goal"], "-" if g["ratio"] is None
                                else "%.2fx" % g["ratio"],
                                "met" if g["met"] else "NOT met"))
    log("wrote %s" % os.path.join(a.out, "torch.md"))


if __name__ == "__main__":
    main()
