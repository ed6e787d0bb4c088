#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Read an rxp metrics file (Prometheus text format 0.0.4) with Debian's
python3-prometheus-client parser, as a Prometheus server would, and check
what test_metrics.c made happen.

  check_metrics.py FILE --worker W [--peer P --calls N --answered N
                   --errors N]

Exit 0 if every check holds; else 1, saying which failed. The parser
refuses an illegal metric name (agent.client_active_calls) itself."""
import argparse
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^rxp_[a-z0-9_]+$")
HIST = "rxp_peer_call_latency_seconds"


def fail(msg):
    print("check_metrics: FAIL: " + msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--worker", required=True)
    ap.add_argument("--peer")
    ap.add_argument("--calls", type=int, help="requests sent to --peer")
    ap.add_argument("--answered", type=int, help="of them, answered")
    ap.add_argument("--errors", type=int, help="of them, failed")
    o = ap.parse_args()
    with open(o.file, encoding="utf-8") as f:
        text = f.read()
    try:
        fams = list(text_string_to_metric_families(text))
    except ValueError as e:
        fail("the Prometheus parser refuses the file: %s" % e)
    # every line the parser did not keep would be lost on a real scrape
    nsamples = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
    if nsamples != sum(len(f.samples) for f in fams):
        fail("%d sample lines, the parser kept %d" %
             (nsamples, sum(len(f.samples) for f in fams)))
    byname = {}
    for f in fams:
        if not NAME.match(f.name):
            fail("metric name %r is not rxp_snake_case" % f.name)
        if f.name in byname:
            fail("%s twice (families must be contiguous)" % f.name)
        byname[f.name] = f
        if not f.documentation:
            fail("%s has no HELP" % f.name)
        if f.type not in ("counter", "gauge", "histogram"):
            fail("%s has TYPE %s" % (f.name, f.type))
        for s in f.samples:
            if s.labels.get("worker") != o.worker:
                fail("%s%s: worker label is not %r" %
                     (s.name, s.labels, o.worker))
            if f.type == "counter" and not s.name.endswith("_total"):
                fail("counter sample %s lacks _total" % s.name)
            if s.value < 0 or math.isnan(s.value):
                fail("%s%s = %s" % (s.name, s.labels, s.value))
    for want in ("rxp_calls_sent", "rxp_agent_client_active_calls",
                 "rxp_transport_bytes_sent", "rxp_peer_calls", HIST,
                 "rxp_agent_info"):
        if want not in byname:
            fail("no %s" % want)
    if byname["rxp_calls_sent"].type != "counter" or \
       byname["rxp_agent_client_active_calls"].type != "gauge":
        fail("wrong TYPE for rxp_calls_sent_total or a gauge")

    if o.peer is None:
        print("check_metrics: ok: %d families" % len(fams))
        return

    def peer_value(fam, suffix=""):
        for s in byname[fam].samples:
            if s.labels.get("peer") == o.peer and s.name == fam + suffix:
                return s.value
        fail("no %s%s{peer=%r}" % (fam, suffix, o.peer))

    if o.calls is not None and peer_value("rxp_peer_calls", "_total") != o.calls:
        fail("rxp_peer_calls_total{peer=%r} = %s, not %d" %
             (o.peer, peer_value("rxp_peer_calls", "_total"), o.calls))
    if o.errors is not None and \
       peer_value("rxp_peer_errors", "_total") != o.errors:
        fail("rxp_peer_errors_total = %s, not %d" %
             (peer_value("rxp_peer_errors", "_total"), o.errors))
    buckets = [(float(s.labels["le"]), s.value)
               for s in byname[HIST].samples
               if s.name == HIST + "_bucket" and s.labels.get("peer") == o.peer]
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        fail("histogram buckets for %r: %s" % (o.peer, buckets))
    for (le0, n0), (le1, n1) in zip(buckets, buckets[1:]):
        if le1 <= le0:
            fail("bucket bounds not increasing: %s then %s" % (le0, le1))
        if n1 < n0:
            fail("buckets not cumulative: le=%s has %s, le=%s has %s" %
                 (le0, n0, le1, n1))
    count = peer_value(HIST, "_count")
    total = peer_value(HIST, "_sum")
    if buckets[-1][1] != count:
        fail("+Inf bucket %s != _count %s" % (buckets[-1][1], count))
    if o.answered is not None and count != o.answered:
        fail("%s_count{peer=%r} = %s, not the %d calls answered" %
             (HIST, o.peer, count, o.answered))
    if count and not 0 < total < count * 60:
        fail("_sum %s s for %s calls" % (total, count))
    print("check_metrics: ok: %d families; %s: %d calls answered, "
          "mean %.1f us, %d buckets" %
          (len(fams), o.peer, count, total / count * 1e6 if count else 0,
           len(buckets)))


if __name__ == "__main__":
    main()
