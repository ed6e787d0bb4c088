"""Check rxp-perf --json lines: check_perf_json.py ALL.json BW.json.

ALL.json: an -a sweep, one echo line per size 2 B .. 8 MiB (powers of
two); BW.json: one --bw line ("stream") whose mb_s counts one direction.
"""
import json
import sys

FIELDS = ("system", "scenario", "size", "window", "iters", "min_us",
          "p50_us", "p99_us", "p999_us", "max_us", "avg_us", "mb_s",
          "calls_s")


def rows(path):
    with open(path) as f:
        out = [json.loads(line) for line in f if line.strip()]
    for r in out:
        missing = [k for k in FIELDS if k not in r]
        if missing:
            sys.exit(f"{path}: {r} lacks {missing}")
        if not r["min_us"] <= r["p50_us"] <= r["p99_us"] <= r["p999_us"] \
                <= r["max_us"]:
            sys.exit(f"{path}: percentiles out of order: {r}")
    return out


def main():
    sweep = rows(sys.argv[1])
    sizes = [r["size"] for r in sweep]
    want = [1 << i for i in range(1, 24)]
    if sizes != want:
        sys.exit(f"-a sizes {sizes}, want {want}")
    for r in sweep:
        if r["scenario"] != "echo" or r["iters"] != 5 or r["window"] != 1:
            sys.exit(f"-a row {r}")
    bw = rows(sys.argv[2])
    if len(bw) != 1:
        sys.exit(f"--bw: {len(bw)} lines")
    r = bw[0]
    if r["scenario"] != "stream" or r["size"] != 65536 or r["window"] != 16:
        sys.exit(f"--bw row {r}")
    one_way = r["size"] * r["calls_s"] / 1e6
    if abs(r["mb_s"] - one_way) > 0.01 * one_way:
        sys.exit(f"--bw mb_s {r['mb_s']} is not one way ({one_way})")
    print(f"ok: {len(sweep)} sizes, --bw {r['mb_s']:.1f} MB/s")


main()
