#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Side-by-side comparison of rxp with its peers on 127.0.0.1.

    /usr/bin/python3 perf/compare.py --bin BUILD/perf --out docs/perf
        [--rounds 3] [--quick] [--only rtt,echo,calls]

Runs every scenario of every system once per round, alternating the order
from round to round (forward, then reversed), so that rxp and each peer
see the same machine load; ratios are computed inside a round and the
median over rounds is reported. Writes OUT/results.json, OUT/results.md,
OUT/latency_vs_size.png and OUT/throughput_vs_window.png.

Systems: rxp (rxp-perf: tcp in poll and sleep mode, tcp without io_uring,
shm in poll and sleep mode, verbs), raw TCP (perf/peers/tcp_pingpong: blocking, busy-poll, stream),
UCX (ucx_perftest, UCX_TLS=tcp and sm), TensorPipe (perf/peers/tp_pingpong:
uv and shm) and PyTorch RPC (perf/peers/torch_rpc.py). A system whose
program is missing or fails is reported as missing, with the reason; no
number is ever made up.

Every process started here is ours, runs on 127.0.0.1 only, has a timeout
and is killed by pid if it overstays.
"""
import argparse
import json
import math
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
POLL_ON = "1000000"  # RXP_POLL_US for poll mode (spin up to 1 s)
POLL_OFF = "0"       # sleep at once

PACKAGES = ["ucx-utils", "libtensorpipe-dev", "python3-torch",
            "python3-numpy", "python3-matplotlib", "libbenchmark-dev",
            "liburing-dev", "libibverbs-dev", "librdmacm-dev"]


def log(*a):
    print("compare:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_listen(port, timeout=10.0):
    """True once something listens on 127.0.0.1:port (read from /proc, no
    connection is made, so no server sees a stray client)."""
    want = ":%04X" % port
    end = time.time() + timeout
    while time.time() < end:
        for f in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(f) as fh:
                    for line in fh.readlines()[1:]:
                        p = line.split()
                        if p[1].endswith(want) and p[3] == "0A":
                            return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


def stop(proc, grace=10.0):
    """Wait for our own process, kill it (by pid) if it overstays."""
    if proc is None:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Missing(Exception):
    pass


def run_pair(server, client, env=None, timeout=180, listen_port=None,
             ready_line=False):
    """Start @server (argv or None), then @client; return client stdout."""
    e = dict(os.environ)
    e.update(env or {})
    srv = None
    if server:
        srv = subprocess.Popen(server, env=e, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        if ready_line:
            line = srv.stdout.readline()
            if not line.startswith("READY"):
                stop(srv, 1)
                raise Missing("server: " + (srv.stderr.read() or line)
                              .strip()[-300:])
        elif listen_port:
            if not wait_listen(listen_port):
                stop(srv, 1)
                raise Missing("server did not listen: "
                              + srv.stderr.read().strip()[-300:])
        else:
            time.sleep(0.3)
    cl = subprocess.Popen(client, env=e, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + timeout
        while True:
            try:
                cout, cerr = cl.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            # a server that failed (no device, bad port) leaves the client
            # waiting for its rendezvous: stop it at once
            if srv is not None and srv.poll() not in (None, 0):
                cl.kill()
                cout, cerr = cl.communicate()
                break
            if time.time() > end:
                cl.kill()
                cl.communicate()
                raise Missing("client timed out after %ds" % timeout)
    finally:
        if srv:
            stop(srv, 15)
    if cl.returncode == 0:
        return cout
    why = "client exit %d: %s" % (cl.returncode, cerr.strip()[-300:])
    if srv is not None and srv.returncode:
        why = "server exit %d: %s; %s" % (
            srv.returncode, srv.stderr.read().strip()[-300:], why)
    if cl.returncode == 77 or (srv is not None and srv.returncode == 77):
        why = "skipped: " + why
    raise Missing(why)


def json_lines(out):
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    if not rows:
        raise Missing("no result line in output")
    return rows


# ------------------------------------------------------------ runners
def rxp_job(a, label, transport, size, iters, window=1, poll=POLL_OFF,
            no_uring=False, scenario=None):
    def fn():
        exe = os.path.join(a.bin, "rxp-perf")
        if not os.access(exe, os.X_OK):
            raise Missing("rxp-perf not built (agent not in the tree yet?)")
        port = free_port()
        env = {"RXP_POLL_US": poll}
        if no_uring:
            env["RXP_NO_URING"] = "1"
        common = ["--transport", transport, "-p", str(port)]
        out = run_pair([exe] + common,
                       [exe] + common + ["-s", str(size), "-n", str(iters),
                                         "-t", str(window), "--label", label,
                                         "--json", "127.0.0.1"],
                       env=env, timeout=120)
        rows = json_lines(out)
        for r in rows:
            if scenario:
                r["scenario"] = scenario
        return rows
    return fn


def tcp_job(a, mode, size, iters, warm):
    def fn():
        exe = os.path.join(a.bin, "peers", "tcp_pingpong")
        if not os.access(exe, os.X_OK):
            exe = os.path.join(a.bin, "tcp_pingpong")
        if not os.access(exe, os.X_OK):
            raise Missing("tcp_pingpong not built")
        port = free_port()
        out = run_pair([exe, "-p", str(port)],
                       [exe, "-p", str(port), "-m", mode, "-s", str(size),
                        "-n", str(iters), "-w", str(warm), "--json",
                        "127.0.0.1"], ready_line=True, timeout=120)
        rows = json_lines(out)
        if mode != "stream":
            for r in rows:
                if size <= 64:
                    r["scenario"] = "rtt"
        return rows
    return fn


def tp_job(a, transport, size, iters, warm):
    def fn():
        exe = os.path.join(a.bin, "tp_pingpong")
        if not os.access(exe, os.X_OK):
            raise Missing("tp_pingpong not built (libtensorpipe-dev?)")
        port = free_port()
        common = [exe, "-T", transport, "-p", str(port)]
        out = run_pair(common, common + ["-s", str(size), "-n", str(iters),
                                         "-w", str(warm), "--json",
                                         "127.0.0.1"],
                       ready_line=True, timeout=120)
        return json_lines(out)
    return fn


def ucx_run(tls, test, size, iters, warm, pct):
    exe = "/usr/bin/ucx_perftest"
    if not os.access(exe, os.X_OK):
        raise Missing("ucx_perftest not installed (ucx-utils)")
    env = {"UCX_TLS": tls}
    if tls == "tcp":
        env["UCX_NET_DEVICES"] = "lo"
    port = free_port()
    args = ["-t", test, "-s", str(size), "-n", str(iters), "-w", str(warm),
            "-p", str(port), "-R", str(pct)]
    out = run_pair([exe] + args, [exe, "127.0.0.1"] + args + ["-v"],
                   env=env, listen_port=port, timeout=120)
    # final CSV line: iterations,pct_lat,avg_lat,overall_lat,avg_bw,
    #                 overall_bw,avg_mr,overall_mr  (lat in us, bw in MiB/s)
    hdr = None
    for line in out.splitlines():
        if line.startswith("iterations,"):
            hdr = line
        elif hdr and line.strip() and line.strip()[0].isdigit():
            f = [float(x) for x in line.split(",")]
            f = [x if math.isfinite(x) else None for x in f]
            return {"pct_lat": f[1], "avg_lat": f[2], "overall_lat": f[3],
                    "bw_mib": f[5], "mr": f[7]}
    raise Missing("no ucx_perftest result line: " + out[-300:])


def ucx_lat_job(tls, size, iters, warm):
    """tag_lat reports half a round trip: rows carry the full round trip
    (2x) so they compare with everyone else's."""
    def fn():
        r50 = ucx_run(tls, "tag_lat", size, iters, warm, 50)
        # p99 needs a second run; of a dozen 64 MiB calls it is the max
        r99 = ucx_run(tls, "tag_lat", size, iters, warm, 99) \
            if size <= MiB else {"pct_lat": None}
        # UCX prints avg "inf" when an outlier overflows its average
        rtt_avg = 2 * r50["avg_lat"] if r50["avg_lat"] else None
        calls = 1e6 / rtt_avg if rtt_avg else None
        return [{"system": "ucx-" + tls,
                 "scenario": "rtt" if size <= 64 else "echo",
                 "size": size, "window": 1, "iters": iters,
                 "p50_us": 2 * r50["pct_lat"],
                 "p99_us": 2 * r99["pct_lat"] if r99["pct_lat"] else None,
                 "avg_us": rtt_avg,
                 "mb_s": 2 * size * calls / 1e6 if size > 64 and calls
                 else None,
                 "calls_s": calls}]
    return fn


def ucx_bw_job(tls, size, iters, warm, scenario):
    def fn():
        r = ucx_run(tls, "tag_bw", size, iters, warm, 50)
        return [{"system": "ucx-" + tls, "scenario": scenario, "size": size,
                 "window": 0, "iters": iters, "p50_us": None,
                 "p99_us": None, "avg_us": None,
                 "mb_s": r["bw_mib"] * MiB / 1e6 if r["bw_mib"] else None,
                 "calls_s": r["mr"]}]
    return fn


def torch_job(a, tests, scale):
    def fn():
        try:
            subprocess.run([PY, "-c", "import torch.distributed.rpc as r; "
                            "assert r.is_available()"], check=True,
                           capture_output=True, timeout=60)
        except Exception:
            raise Missing("python3-torch with RPC not importable by " + PY)
        port = free_port()
        out = run_pair(None, [PY, os.path.join(HERE, "peers",
                                               "torch_rpc.py"),
                              "--port", str(port), "--json", "--tests",
                              tests, "--scale", str(scale)],
                       timeout=300)
        return json_lines(out)
    return fn


def build_jobs(a):
    q = 0.2 if a.quick else 1.0

    def n(x):
        return max(5, int(x * q))

    jobs = []  # (group, system, fn)
    groups = a.only.split(",")
    if "rtt" in groups:
        for label, poll in (("rxp-tcp-poll", POLL_ON),
                            ("rxp-tcp-sleep", POLL_OFF)):
            jobs.append(("rtt", label, rxp_job(a, label, "tcp", 0, n(20000),
                                               poll=poll)))
        jobs.append(("rtt", "rxp-tcpnouring-sleep",
                     rxp_job(a, "rxp-tcpnouring-sleep", "tcp", 0, n(20000),
                             no_uring=True)))
        jobs.append(("rtt", "rxp-verbs-poll",
                     rxp_job(a, "rxp-verbs-poll", "verbs", 0, n(20000),
                             poll=POLL_ON)))
        for label, poll in (("rxp-shm-poll", POLL_ON),
                            ("rxp-shm-sleep", POLL_OFF)):
            jobs.append(("rtt", label, rxp_job(a, label, "shm", 0, n(20000),
                                               poll=poll)))
        jobs.append(("rtt", "raw-tcp-block",
                     tcp_job(a, "block", 64, n(20000), 1000)))
        jobs.append(("rtt", "raw-tcp-busy",
                     tcp_job(a, "busy", 64, n(20000), 1000)))
        for tls in ("tcp", "sm"):
            jobs.append(("rtt", "ucx-" + tls,
                         ucx_lat_job(tls, 64, n(20000), 1000)))
        for tr in ("uv", "shm"):
            jobs.append(("rtt", "tensorpipe-" + tr,
                         tp_job(a, tr, 64, n(10000), 500)))
    if "echo" in groups:
        for size, it in ((64 << 10, 2000), (1 * MiB, 300), (64 * MiB, 12)):
            w = 2 if size == 64 * MiB else 20
            jobs.append(("echo", "rxp-tcp",
                         rxp_job(a, "rxp-tcp", "tcp", size, n(it))))
            jobs.append(("echo", "rxp-tcpnouring",
                         rxp_job(a, "rxp-tcpnouring", "tcp", size, n(it),
                                 no_uring=True)))
            jobs.append(("echo", "rxp-verbs",
                         rxp_job(a, "rxp-verbs", "verbs", size, n(it))))
            jobs.append(("echo", "rxp-shm",
                         rxp_job(a, "rxp-shm", "shm", size, n(it))))
            jobs.append(("echo", "raw-tcp-block",
                         tcp_job(a, "block", size, n(it), w)))
            jobs.append(("echo", "ucx-tcp",
                         ucx_lat_job("tcp", size, n(it), w)))
            for tr in ("uv", "shm"):
                jobs.append(("echo", "tensorpipe-" + tr,
                             tp_job(a, tr, size, n(it), w)))
        jobs.append(("echo", "raw-tcp-stream",
                     tcp_job(a, "stream", 64 * MiB, n(24), 4)))
        jobs.append(("echo", "ucx-tcp",
                     ucx_bw_job("tcp", 64 * MiB, n(24), 4, "stream")))
    if "calls" in groups:
        for w in (1, 16, 256):
            for label, poll in (("rxp-tcp-poll", POLL_ON),
                                ("rxp-tcp-sleep", POLL_OFF)):
                jobs.append(("calls", label,
                             rxp_job(a, label, "tcp", 0, n(20000), window=w,
                                     poll=poll, scenario="calls")))
        for tls in ("tcp", "sm"):
            jobs.append(("calls", "ucx-" + tls,
                         ucx_bw_job(tls, 64, n(200000), 2000, "msgrate")))
    if groups:  # torch: one process per round runs all its scenarios
        tests = []
        if "rtt" in groups:
            tests.append("rtt")
        if "echo" in groups:
            tests += ["echo1m", "echo64m"]
        if "calls" in groups:
            tests += ["async1", "async16", "async256"]
        if tests:
            jobs.append(("torch", "torch-rpc",
                         torch_job(a, ",".join(tests), q)))
    return jobs


# ------------------------------------------------------------ analysis
def key(r):
    return (r["scenario"], int(r["size"]), int(r["window"] or 0))


LATENCY_SCEN = ("rtt", "echo")


def ref_for(system, scenario):
    """The rxp row a peer is compared with: rxp in poll mode for peers that
    busy-poll (UCX, raw busy TCP, TensorPipe shm), in sleep mode else."""
    busy = system.startswith(("ucx-", "raw-tcp-busy", "tensorpipe-shm"))
    if scenario in ("rtt", "calls", "msgrate"):
        return "rxp-tcp-poll" if busy else "rxp-tcp-sleep"
    return "rxp-tcp"


def rxp_key_for(k):
    scen, size, window = k
    if scen == "rtt":
        return ("rtt", 0, 1)
    if scen == "stream":
        return ("echo", size, 1)
    if scen == "msgrate":
        return ("calls", 0, 16)
    return k


def metric(row):
    """(value, higher_is_better) used for ratios."""
    if row["scenario"] in LATENCY_SCEN and row.get("p50_us"):
        return row["p50_us"], False
    if row["scenario"] == "calls":
        return row["calls_s"], True
    if row["scenario"] == "msgrate":
        return row["calls_s"], True
    return row.get("mb_s"), True


def per_round_index(runs):
    idx = {}
    for r in runs:
        if r.get("missing"):
            continue
        idx.setdefault(r["round"], {})[(r["system"],) + key(r)] = r
    return idx


def speedup(rxp_row, row):
    """How many times better rxp is than @row (>1 = rxp better)."""
    mv, hib = metric(row)
    if rxp_row["scenario"] != row["scenario"]:
        # stream/msgrate vs rxp echo/calls: compare throughputs
        rv = rxp_row["mb_s"] if row["scenario"] == "stream" \
            else rxp_row["calls_s"]
        hib = True
    else:
        rv, _ = metric(rxp_row)
    if not mv or not rv:
        return None
    return rv / mv if hib else mv / rv


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs, nrounds):
    idx = per_round_index(runs)
    groups = {}
    for r in runs:
        if r.get("missing"):
            continue
        groups.setdefault((r["system"],) + key(r), []).append(r)
    summary = []
    order = {"rtt": 0, "echo": 1, "stream": 2, "calls": 3, "msgrate": 4}
    for k, rows in sorted(groups.items(), key=lambda kv: (
            order.get(kv[0][1], 9), kv[0][2], kv[0][3],
            not kv[0][0].startswith("rxp"), kv[0][0])):
        system, scen, size, window = k
        s = {"system": system, "scenario": scen, "size": size,
             "window": window, "rounds": len(rows)}
        for f in ("p50_us", "p99_us", "avg_us", "mb_s", "calls_s"):
            s[f] = med([r.get(f) for r in rows])
        ref = ref_for(system, scen)
        if system.startswith("rxp-"):
            ref = None
        ratios = []
        if ref:
            rk = (ref,) + rxp_key_for((scen, size, window))
            for rnd, byk in idx.items():
                row = byk.get(k)
                rx = byk.get(rk)
                if row and rx:
                    ratios.append(speedup(rx, row))
        s["ref"] = ref
        s["rxp_speedup"] = med(ratios)
        summary.append(s)
    return summary


GOALS = [
    # (id, text, numerator system/key, denominator, kind, threshold, op)
    ("rtt_poll_vs_ucx", "tiny call rtt, rxp poll mode / UCX tcp tag rtt",
     ("rxp-tcp-poll", "rtt", 0, 1), ("ucx-tcp", "rtt", 64, 1), "p50_us",
     1.3, "<="),
    ("rtt_sleep_vs_tcp", "tiny call rtt, rxp sleep mode / raw blocking TCP",
     ("rxp-tcp-sleep", "rtt", 0, 1), ("raw-tcp-block", "rtt", 64, 1),
     "p50_us", 1.1, "<="),
    ("rtt_vs_torch", "PyTorch RPC rtt / rxp sleep-mode rtt (speed-up)",
     ("torch-rpc", "rtt", 0, 1), ("rxp-tcp-sleep", "rtt", 0, 1), "p50_us",
     10.0, ">="),
    ("echo64m_vs_stream", "64 MiB echo MB/s, rxp / raw TCP stream",
     ("rxp-tcp", "echo", 64 * MiB, 1), ("raw-tcp-stream", "stream",
                                        64 * MiB, 1), "mb_s", 0.95, ">="),
    ("echo64m_vs_tp", "64 MiB echo MB/s, rxp / TensorPipe uv",
     ("rxp-tcp", "echo", 64 * MiB, 1), ("tensorpipe-uv", "echo", 64 * MiB,
                                        1), "mb_s", 1.0, ">"),
    ("shm_rtt_poll_vs_tp", "tiny call rtt, rxp shm poll mode / TensorPipe "
     "shm 64 B", ("rxp-shm-poll", "rtt", 0, 1), ("tensorpipe-shm", "rtt", 64,
                                                 1), "p50_us", 1.0, "<="),
    ("shm_rtt_sleep_vs_tcp", "tiny call rtt, rxp shm sleep mode / raw "
     "blocking TCP", ("rxp-shm-sleep", "rtt", 0, 1), ("raw-tcp-block", "rtt",
                                                      64, 1), "p50_us", 1.15,
     "<="),
    ("shm_echo1m_vs_tp", "1 MiB echo MB/s, rxp shm / TensorPipe shm",
     ("rxp-shm", "echo", MiB, 1), ("tensorpipe-shm", "echo", MiB, 1), "mb_s",
     1.0, ">="),
    ("shm_echo64m_vs_tp", "64 MiB echo MB/s, rxp shm / TensorPipe shm",
     ("rxp-shm", "echo", 64 * MiB, 1), ("tensorpipe-shm", "echo", 64 * MiB,
                                        1), "mb_s", 1.0, ">="),
    ("calls16_vs_ucx", "calls/s with 16 in flight, rxp (poll) / UCX tcp "
     "message rate", ("rxp-tcp-poll", "calls", 0, 16),
     ("ucx-tcp", "msgrate", 64, 0), "calls_s", 1.0, ">"),
    ("calls16_sleep_vs_ucx", "calls/s with 16 in flight, rxp (sleep) / UCX "
     "tcp message rate", ("rxp-tcp-sleep", "calls", 0, 16),
     ("ucx-tcp", "msgrate", 64, 0), "calls_s", 1.0, ">"),
]


def goals(runs):
    idx = per_round_index(runs)
    out = []
    for gid, text, num, den, field, thr, op in GOALS:
        ratios = []
        for rnd, byk in idx.items():
            a, b = byk.get(num), byk.get(den)
            if a and b and a.get(field) and b.get(field):
                ratios.append(a[field] / b[field])
        r = med(ratios)
        ok = None
        if r is not None:
            ok = {"<=": r <= thr, ">=": r >= thr, ">": r > thr}[op]
        out.append({"id": gid, "goal": text, "target": "%s %.2f" % (op, thr),
                    "ratio": r, "rounds": len(ratios), "met": ok})
    return out


def machine():
    m = {"kernel": platform.release(), "cores": os.cpu_count()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True,
                                   text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                m["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        m["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    vers = {}
    for p in PACKAGES:
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p],
                           capture_output=True, text=True).stdout.strip()
        vers[p] = v or "not installed"
    m["packages"] = vers
    try:
        m["rxp_git"] = subprocess.run(
            ["git", "-C", os.path.dirname(HERE), "describe", "--always",
             "--dirty"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return m


# ------------------------------------------------------------ output
def fmt(v, nd=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "%.*f" % (nd, v)


def size_str(n):
    if n == 0:
        return "tiny"
    for unit, s in ((1 << 30, "GiB"), (MiB, "MiB"), (1024, "KiB")):
        if n >= unit and n % unit == 0:
            return "%d %s" % (n // unit, s)
    return "%d B" % n


def write_md(path, res):
    m = res["machine"]
    L = []
    L.append("# rxp vs peers on loopback (127.0.0.1)\n")
    L.append("Generated by `perf/run-peers.sh` (%s); %d round(s), order "
             "alternated each round; each figure is the median over rounds, "
             "each ratio the median of ratios measured in the same round.\n"
             % (time.strftime("%Y-%m-%d %H:%M", time.localtime(
                 res["started"])), res["rounds"]))
    L.append("Machine: %s, %s cores, kernel %s, load average at start %s "
             "(shared machine: numbers are noisy).\n" % (
                 m.get("cpu", "?"), m.get("cores"), m.get("kernel"),
                 " ".join(m.get("loadavg", []))))
    L.append("Packages: " + ", ".join("%s %s" % kv for kv in
                                      m["packages"].items())
             + ("; rxp %s" % m.get("rxp_git", "")) + ".\n")
    L.append("## Goals\n")
    L.append("| goal | target | ratio (same-round median) | met |")
    L.append("| --- | --- | --- | --- |")
    for g in res["goals"]:
        met = {True: "yes", False: "**no**", None: "missing"}[g["met"]]
        L.append("| %s | %s | %s | %s |" % (g["goal"], g["target"],
                                            fmt(g["ratio"], 2), met))
    L.append("")
    L.append("## Results\n")
    L.append("Latency = per call round trip (us). Throughput: MB/s = 10^6 "
             "bytes moved per second counting both directions of an echo "
             "(one direction for `stream`); calls/s = round trips per second "
             "(messages per second for UCX `msgrate`). UCX `tag_lat` reports "
             "half a round trip; it is doubled here. `rxp x` = how many "
             "times better rxp (row `ref`) is in the same round: latency "
             "ratio peer/rxp for rtt/echo rows, throughput ratio rxp/peer "
             "for stream/msgrate/calls rows (>1 = rxp ahead).\n")
    L.append("| scenario | size | window | system | p50 us | p99 us | MB/s "
             "| calls/s | rxp x | ref |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in res["summary"]:
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s["scenario"], size_str(s["size"]),
            s["window"] if s["window"] else "ucx default", s["system"],
            fmt(s["p50_us"]), fmt(s["p99_us"]),
            fmt(s["mb_s"]) if s["scenario"] not in ("rtt", "calls",
                                                    "msgrate") else "-",
            fmt(s["calls_s"]), fmt(s["rxp_speedup"], 2),
            s["ref"] or ""))
    L.append("")
    if res["missing"]:
        L.append("## Missing\n")
        L.append("| system | group | why |")
        L.append("| --- | --- | --- |")
        seen = set()
        for mrow in res["missing"]:
            k = (mrow["system"], mrow["group"])
            if k in seen:
                continue
            seen.add(k)
            L.append("| %s | %s | %s |" % (mrow["system"], mrow["group"],
                                          mrow["why"].replace("|", "/")
                                          .replace("\n", " ")[:200]))
        L.append("")
    L.append("Plots: `latency_vs_size.png`, `throughput_vs_window.png`. "
             "Raw rows: `results.json`.\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def plots(out, summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots")
        return
    colors = plt.get_cmap("tab20").colors
    markers = "osD^v<>ph*XP"
    fig, ax = plt.subplots(figsize=(8, 5))
    lines = {}
    for s in summary:
        if s["scenario"] in ("rtt", "echo") and s["p50_us"]:
            x = s["size"] if s["size"] else 8  # tiny call drawn at 8 B
            lines.setdefault(s["system"], []).append((x, s["p50_us"]))
    for i, (sysname, pts) in enumerate(sorted(lines.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts],
                marker=markers[i % len(markers)], color=colors[i % 20],
                label=sysname, linestyle="--" if not sysname.startswith(
                    "rxp") else "-", linewidth=2.2 if sysname.startswith(
                    "rxp") else 1.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("message / tensor size (bytes; tiny call at 8)")
    ax.set_ylabel("p50 round trip (us)")
    ax.set_title("latency vs size, 127.0.0.1")
    ax.grid(True, which="both", alpha=0.3)
    if lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency_vs_size.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    lines = {}
    flat = {}
    for s in summary:
        if s["scenario"] == "calls" and s["calls_s"]:
            lines.setdefault(s["system"], []).append((s["window"],
                                                      s["calls_s"]))
        if s["scenario"] == "msgrate" and s["calls_s"]:
            flat[s["system"] + " msg rate"] = s["calls_s"]
    for i, (sysname, pts) in enumerate(sorted(lines.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts],
                marker=markers[i % len(markers)], color=colors[2 * i % 20],
                label=sysname)
    for name, v in sorted(flat.items()):
        ax.axhline(v, linestyle=":", label=name + " (one-way, UCX window)",
                   color="gray" if "sm" in name else "black")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("calls in flight")
    ax.set_ylabel("calls/s")
    ax.set_title("small-call throughput vs window, 127.0.0.1")
    ax.grid(True, which="both", alpha=0.3)
    if lines or flat:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput_vs_window.png"), dpi=110)
    plt.close(fig)


def report(out, res):
    res["summary"] = summarize(res["runs"], res["rounds"])
    res["goals"] = goals(res["runs"])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_md(os.path.join(out, "results.md"), res)
    plots(out, res["summary"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True,
                    help="build dir of perf/ (has rxp-perf, tp_pingpong..)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs",
                                                  "perf"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="fewer iterations (smoke)")
    ap.add_argument("--only", default="rtt,echo,calls")
    ap.add_argument("--systems", default="",
                    help="comma list of system-name prefixes to run")
    ap.add_argument("--report-only", action="store_true",
                    help="re-make the summary, tables and plots from "
                    "OUT/results.json without running anything")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.report_only:
        with open(os.path.join(a.out, "results.json")) as f:
            res = json.load(f)
        report(a.out, res)
        return
    jobs = build_jobs(a)
    if a.systems:
        pref = tuple(a.systems.split(","))
        jobs = [j for j in jobs if j[1].startswith(pref)]
    res = {"started": time.time(), "rounds": a.rounds, "machine": machine(),
           "runs": [], "missing": []}
    t0 = time.time()
    skipped = {}
    for rnd in range(a.rounds):
        order = jobs if rnd % 2 == 0 else list(reversed(jobs))
        log("round %d/%d: %d jobs" % (rnd + 1, a.rounds, len(order)))
        for group, system, fn in order:
            t = time.time()
            if system in skipped:
                res["missing"].append({"system": system, "group": group,
                                       "round": rnd, "why": skipped[system]})
                continue
            try:
                rows = fn()
                for r in rows:
                    r["round"] = rnd
                    res["runs"].append(r)
                log("  %-22s %-6s ok  %.1fs" % (system, group,
                                                time.time() - t))
            except Missing as e:
                res["missing"].append({"system": system, "group": group,
                                       "round": rnd, "why": str(e)})
                if str(e).startswith("skipped") or "not built" in str(e) \
                        or "not installed" in str(e):
                    skipped[system] = str(e)  # same answer every time
                log("  %-22s %-6s MISSING (%.1fs): %s" % (
                    system, group, time.time() - t, str(e)[:160]))
    res["elapsed_s"] = time.time() - t0
    report(a.out, res)
    log("done in %.0fs: %s" % (res["elapsed_s"], a.out))
    for g in res["goals"]:
        log("  goal %-22s ratio %s target %s met %s" % (
            g["id"], fmt(g["ratio"], 2), g["target"], g["met"]))


if __name__ == "__main__":
    main()
