#!/usr/bin/env python3
"""Turns the raw outputs of bench/resilience.sh into a Markdown section.

Reads, from the run directory RUN:
  siege.out         siege's verbose output: one line per answer, `HTTP/1.1 201  0.52 secs: ...`
  siege.err         siege's summary (Transactions, Availability, Transaction rate, ...) and errors
  circuit.jsonl     bench/circuit.py's samples of the payment circuit during the load
  consistency.json  bench/consistency.py's verdict after settling
  meta.json         {"date", "commit", "command", "machine", "loadavg", "delay", "duration", ...}

Prints the section on stdout. With --docs FILE it also writes it into FILE: a section with the
same heading is replaced, otherwise it is appended at the end (bench/report.py's rule).

Python 3 standard library only.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import section  # noqa: E402  (the run, the verdict and the section rule, shared by both reports)
from section import verdict  # noqa: E402

TARGET_TPS = 175
TARGET_SHARE_201 = 0.99
# The original system's demonstration 5 (siege -c100 against order, payment slowed to
# 400 + random*220 ms, Hystrix timeout 610 ms): with the circuit breaker alone, and with the
# payment autoscaled to 10 replicas.
ORIGINAL_CB = {"tps": 11.97, "availability": 35.79, "response_s": 6.95, "longest_s": 30.08}
ORIGINAL_HPA = {"tps": 17.15, "availability": 92.45, "response_s": 5.60}

ANSWER = re.compile(r"^HTTP/[\d.]+\s+(\d{3})\s+([\d.]+)\s+secs:")


def percentile(values, p):
    """Nearest-rank percentile of a sorted, non-empty list."""
    rank = max(1, -(-len(values) * p // 100))
    return values[int(rank) - 1]


def parse_answers(text):
    """{status: sorted latencies in seconds} from siege's verbose lines."""
    by_status = {}
    for line in text.splitlines():
        m = ANSWER.match(line)
        if m:
            by_status.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    for v in by_status.values():
        v.sort()
    return by_status


def parse_siege_summary(text):
    out = {}
    for key, name in [
        ("Transactions", "transactions"),
        ("Availability", "availability"),
        ("Elapsed time", "elapsed"),
        ("Response time", "response_time"),
        ("Transaction rate", "transaction_rate"),
        ("Concurrency", "concurrency"),
        ("Successful transactions", "successful"),
        ("Failed transactions", "failed"),
        ("Longest transaction", "longest"),
    ]:
        m = re.search(rf"^{key}:\s*([\d.]+)", text, re.M)
        if m:
            out[name] = float(m.group(1))
    out["errors"] = sum(1 for line in text.splitlines() if "[error]" in line)
    out["aborted"] = "aborted" in text
    return out


def parse_circuit(text):
    """Times the payment circuit opened, and for how long it was not closed."""
    samples = []
    for line in text.splitlines():
        try:
            samples.append(json.loads(line))
        except ValueError:
            pass
    samples = [s for s in samples if s.get("state")]
    opened, not_closed, worst = 0, 0.0, 0.0
    previous = None
    for s in samples:
        if s["state"] == "OPEN" and (previous is None or previous["state"] != "OPEN"):
            opened += 1
        if previous is not None and previous["state"] != "CLOSED":
            not_closed += s["t"] - previous["t"]
        if s.get("calls"):
            worst = max(worst, (s.get("failures") or 0) / s["calls"])
        previous = s
    span = samples[-1]["t"] - samples[0]["t"] if len(samples) > 1 else 0.0
    return {"samples": len(samples), "opened": opened, "not_closed_s": not_closed, "span_s": span, "worst_ratio": worst}


def fmt_s(x):
    return "n/a" if x is None else f"{x:.2f} s"


def build(run):
    meta = run.meta
    answers = parse_answers(run.text("siege.out"))
    siege = parse_siege_summary(run.text("siege.err"))
    circuit = parse_circuit(run.text("circuit.jsonl"))
    books = run.json("consistency.json")

    total = sum(len(v) for v in answers.values())
    created = answers.get(201, [])
    busy = answers.get(503, [])
    share = len(created) / total if total else None
    elapsed = siege.get("elapsed")
    tps = len(created) / elapsed if elapsed else None
    others = ", ".join(f"{len(v):,} × {code}" for code, v in sorted(answers.items()))
    fast_503 = sum(1 for t in busy if t < 0.1)
    slowest_503 = busy[-1] if busy else None
    lat_201 = (
        f"p50 {fmt_s(percentile(created, 50))}, p99 {fmt_s(percentile(created, 99))}, max {fmt_s(created[-1])}"
        if created
        else "n/a"
    )

    violations = books.get("violations") or {}
    broken = sum(v for v in violations.values() if isinstance(v, int))
    if not books:
        consistency = "not checked"
    elif books.get("error"):
        consistency = f"could not be read: {books['error']}"
    elif books.get("consistent"):
        consistency = (
            f"consistent {books.get('settled_s')} s after the load: {books.get('orders', 0):,} orders, each with "
            f"one approved payment; {books.get('approved', 0):,} approved payments, each with its order; "
            f"{books.get('canceled', 0):,} canceled ({books.get('voided_unpaid', 0):,} voids of placements never charged)"
        )
    else:
        consistency = f"**not consistent** {books.get('settled_s')} s after the load: {violations}; e.g. {books.get('examples', [])[:2]}"
    # Orders listed beyond the 201s siege saw: placements of the requests still in flight when
    # siege stopped, which run to their end; never more than siege's users. Fewer: orders lost.
    listed = books.get("listed_minus_created")
    concurrency = int(meta.get("concurrency", 100))
    listed_txt = (
        "n/a"
        if listed is None
        else f"{listed:+,} (listed {books.get('orders', 0):,}, 201 answers {books.get('created', 0):,})"
    )

    return [
        f"### Resilience (demonstration 5), {meta.get('date', '?')}, commit {meta.get('commit', '?')}",
        "",
        f"Command: `{meta.get('command', 'bash bench/resilience.sh')}`: release build, "
        f"`cafe up --payment-delay-ms {meta.get('delay', '400-620')}{(' ' + meta['cafe_args']) if meta.get('cafe_args') else ''}` "
        f"(call timeout, retry and breaker at their defaults unless shown: 610 ms, one retry, "
        f"10 s window / 20 calls / 10 % / 5 s open), then `siege -c{meta.get('concurrency', 100)} "
        f"-t{meta.get('duration', '60S')}` of `POST /orders` through the gateway, a new connection per "
        f"request, as the original ran it. The answers are counted from siege's own per-request lines; "
        f"the circuit is sampled every 0.2 s from order's health.",
        "",
        f"Machine: {meta.get('machine', '?')}; 1-minute load average before the run: {meta.get('loadavg', '?')}.",
        "",
    ] + section.table(
        ["measure", "cafe", "original, circuit breaker", "original, breaker + 10 payment replicas", "target", "met"],
        [
            ["transactions/s (201 answers per second)",
             f"{'n/a' if tps is None else f'{tps:.2f}'} (siege: {siege.get('transaction_rate', 'n/a')})",
             ORIGINAL_CB["tps"], ORIGINAL_HPA["tps"], f"≥ {TARGET_TPS}",
             verdict(None if tps is None else tps >= TARGET_TPS)],
            ["availability (siege)", f"{siege.get('availability', 'n/a')} %", f"{ORIGINAL_CB['availability']} %",
             f"{ORIGINAL_HPA['availability']} %"],
            ["share of 201 answers",
             f"{'n/a' if share is None else f'{share * 100:.2f} %'} ({len(created):,} of {total:,})", "", "",
             f"≥ {TARGET_SHARE_201 * 100:.0f} %", verdict(None if share is None else share >= TARGET_SHARE_201)],
            ["answers by status; siege errors",
             f"{others or 'none'}; {siege.get('errors', 0)} errors{', siege aborted' if siege.get('aborted') else ''}"],
            ["slowest 503", f"{fmt_s(slowest_503)} ({fast_503:,} of {len(busy):,} 503s under 100 ms)"],
            ["201 latency", lat_201, f"average {ORIGINAL_CB['response_s']} s, longest {ORIGINAL_CB['longest_s']} s",
             f"average {ORIGINAL_HPA['response_s']} s"],
            ["payment circuit during the load",
             f"opened {circuit['opened']} times, not closed for {circuit['not_closed_s']:.1f} s of "
             f"{circuit['span_s']:.1f} s; worst failure ratio in its window {circuit['worst_ratio'] * 100:.1f} %"],
            ["orders and payments after settling", consistency, "", "", "every pair consistent",
             verdict(None if not books or books.get("error") else (books.get("consistent") and broken == 0))],
            [f"orders listed − 201 answers (incl. {meta.get('warmup', 0)} warm-up): placements still in flight "
             "when siege stopped", listed_txt, "", "", f"0 to {concurrency} (none lost)",
             verdict(None if listed is None else 0 <= listed <= concurrency)],
        ],
    ) + [""]


if __name__ == "__main__":
    sys.exit(section.main(__doc__, build))
