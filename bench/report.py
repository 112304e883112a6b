#!/usr/bin/env python3
"""Turns the raw outputs of bench/orders.sh into a Markdown section.

Reads, from the run directory RUN:
  ref_wrk.txt    wrk --latency output against the reference server (with post_order.lua)
  cafe_wrk.txt   the same through the cafe gateway
  catchup.json   bench/catchup.py's result after the wrk load
  siege.out      siege's stdout (JSON summary with json_output) and siege.err (its stderr)
  latency.json   bench/latency.py's result polling /orderinfos
  latency_drinks.json  the same polling /drinks
  catchup_siege.json  bench/catchup.py's result after siege
  meta.json      {"date", "commit", "command", "machine", "loadavg", "threads", ...}

Prints the section on stdout. With --docs FILE it also writes it into FILE: a section with the
same heading is replaced, otherwise it is appended at the end.

Python 3 standard library only.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import section  # noqa: E402  (the run, the verdict and the section rule, shared by both reports)
from section import verdict  # noqa: E402

TARGET_ORDERS_PER_S = 2000
TARGET_RATIO = 0.05
TARGET_CATCHUP_MS = 1000
TARGET_P99_MS = 20


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}[unit]


def parse_wrk(text):
    """Requests/sec, duration, latency percentiles and the post_order.lua counts."""
    out = {}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = to_ms(m.group(2), m.group(3)) / 1000
    for pct, value, unit in re.findall(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out[f"p{pct}_ms"] = to_ms(value, unit)
    for key in ("created", "non201"):
        m = re.search(rf"^{key} (\d+)$", text, re.M)
        if m:
            out[key] = int(m.group(1))
    out["statuses"] = {code: int(n) for code, n in re.findall(r"^status (\S+) (\d+)$", text, re.M)}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    if "created" in out and out.get("seconds"):
        out["created_per_s"] = out["created"] / out["seconds"]
    return out


def parse_siege(stdout, stderr):
    """siege's summary, from its JSON output or from its plain-text lines."""
    text = stdout + "\n" + stderr
    m = re.search(r"\{[^{}]*\"transactions\"[^{}]*\}", text, re.S)
    if m:
        try:
            return json.loads(m.group(0))
        except ValueError:
            pass
    out = {}
    for key, label in (("transactions", "Transactions"), ("availability", "Availability"),
                       ("elapsed_time", "Elapsed time"), ("response_time", "Response time"),
                       ("transaction_rate", "Transaction rate"), ("concurrency", "Concurrency"),
                       ("successful_transactions", "Successful transactions"),
                       ("failed_transactions", "Failed transactions"),
                       ("longest_transaction", "Longest transaction")):
        m = re.search(rf"{label}:\s*([\d.]+)", text)
        if m:
            out[key] = float(m.group(1))
    return out


def fmt_int(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x:,.0f} ms" if x >= 100 else f"{x:.2f} ms"


def build(run):
    meta = run.meta
    ref = parse_wrk(run.text("ref_wrk.txt"))
    cafe = parse_wrk(run.text("cafe_wrk.txt"))
    catchup = run.json("catchup.json")
    siege = parse_siege(run.text("siege.out"), run.text("siege.err"))
    light = run.json("latency.json")
    after_siege = run.json("catchup_siege.json")
    light_drinks = run.json("latency_drinks.json")

    orders_per_s = cafe.get("created_per_s")
    ref_rps = ref.get("created_per_s") or ref.get("rps")
    ratio = orders_per_s / ref_rps if orders_per_s is not None and ref_rps else None
    views_ms = catchup.get("views_ms")
    light_p99 = light.get("p99_ms")
    missed = f", {light['missed']} missed" if light.get("missed") else ""

    def ge(x, target):
        return None if x is None else x >= target

    statuses = ", ".join(f"{n:,} × {code}" for code, n in sorted(cafe.get("statuses", {}).items()))
    sock = cafe.get("socket_errors", {})
    sock_txt = ", ".join(f"{k} {v}" for k, v in sock.items() if v) or "none"

    return [
        f"### {meta.get('date', '?')}, commit {meta.get('commit', '?')}",
        "",
        f"Command: `{meta.get('command', 'bash bench/orders.sh')}` "
        f"(wrk -t{meta.get('threads', 2)} -c{meta.get('connections', 100)} -d{meta.get('duration', '20s')}, "
        f"siege -c{meta.get('connections', 100)} -t{meta.get('siege_time', '20S')}, "
        f"{light.get('count', meta.get('light_count', 200))} light-load orders).",
        "",
        f"Machine: {meta.get('machine', '?')}; "
        f"1-minute load average around the cafe wrk run: {meta.get('loadavg', '?')}.",
        "",
    ] + section.table(["measure", "result", "target", "met"], [
        ["reference `POST /orders` (axum + SQLite WAL, one insert)",
         f"{fmt_int(ref_rps)} req/s, p50 {fmt_ms(ref.get('p50_ms'))}, p99 {fmt_ms(ref.get('p99_ms'))}"],
        ["cafe `POST /orders` through the gateway (wrk)", f"{fmt_int(orders_per_s)} orders/s",
         f"≥ {TARGET_ORDERS_PER_S:,} orders/s", verdict(ge(orders_per_s, TARGET_ORDERS_PER_S))],
        ["cafe latency under that load", f"p50 {fmt_ms(cafe.get('p50_ms'))}, p99 {fmt_ms(cafe.get('p99_ms'))}"],
        ["cafe ÷ reference", "n/a" if ratio is None else f"{ratio * 100:.1f} %",
         f"≥ {TARGET_RATIO * 100:.0f} %", verdict(ge(ratio, TARGET_RATIO))],
        ["answers other than 201 under wrk",
         f"{fmt_int(cafe.get('non201'))}{f' ({statuses})' if statuses else ''}; socket errors: {sock_txt}"],
        ["views caught up after the load (`/deliverypages` and `/mypages` = `/orders`)",
         f"{'never, within the timeout' if views_ms is None else fmt_ms(views_ms)} "
         f"(orders {fmt_int(catchup.get('orders'))})",
         f"≤ {TARGET_CATCHUP_MS:,} ms",
         verdict(None if not catchup else (views_ms is not None and views_ms <= TARGET_CATCHUP_MS))],
        ["drinks caught up after the load (`/drinks` = `/orders`)",
         "never, within the timeout" if catchup.get("drinks_ms") is None else fmt_ms(catchup.get("drinks_ms"))],
        ["light load: 201 → drink in `/orderinfos`",
         f"p50 {fmt_ms(light.get('p50_ms'))}, p99 {fmt_ms(light_p99)}, max {fmt_ms(light.get('max_ms'))}{missed}",
         f"p99 < {TARGET_P99_MS} ms", verdict(None if light_p99 is None else light_p99 < TARGET_P99_MS)],
        ["light load: one `/orderinfos?size=20&sort=id,desc` poll's round trip",
         f"p50 {fmt_ms(light.get('poll_p50_ms'))}, p99 {fmt_ms(light.get('poll_p99_ms'))}"],
        ["light load: 201 → drink in `/drinks?size=20&sort=id,desc`",
         f"p50 {fmt_ms(light_drinks.get('p50_ms'))}, p99 {fmt_ms(light_drinks.get('p99_ms'))} "
         f"(one poll: p50 {fmt_ms(light_drinks.get('poll_p50_ms'))}, p99 {fmt_ms(light_drinks.get('poll_p99_ms'))})"],
        ["light load: `POST /orders` round trip",
         f"p50 {fmt_ms(light.get('post_p50_ms'))}, p99 {fmt_ms(light.get('post_p99_ms'))}"],
        ["siege `POST /orders` through the gateway",
         f"{fmt_int(siege.get('transactions'))} transactions, {siege.get('availability', 'n/a')} % availability, "
         f"{fmt_int(siege.get('transaction_rate'))} trans/s, {fmt_int(siege.get('failed_transactions'))} failed, "
         f"longest {siege.get('longest_transaction', 'n/a')} s"],
        ["caught up after siege: views, drinks",
         f"{'never, within the timeout' if after_siege.get('views_ms') is None else fmt_ms(after_siege.get('views_ms'))}, "
         f"{'never, within the timeout' if after_siege.get('drinks_ms') is None else fmt_ms(after_siege.get('drinks_ms'))} "
         f"(orders {fmt_int(after_siege.get('orders'))})"],
    ]) + [""]


if __name__ == "__main__":
    sys.exit(section.main(__doc__, build))
