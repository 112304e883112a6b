#!/usr/bin/env python3
"""Checks, through the gateway, that no money was left behind (SPEC §6):

- every order in `GET /orders` has exactly one payment, `Approved` and of the order's amount;
- every `Approved` payment in `GET /payments` has its order in `GET /orders`.

Both collections are walked whole (`?size=1000&page=N`). A placement that a crash or a
failed void left `Pending` is settled by the order reconciler once it is older than
`--settle-after-ms` (5 s by default), so the check first waits `--min-wait` seconds after
`--since` (when the load ended), then polls until the books are consistent or `--timeout`
passes. With `--created N` (the number of 201 answers the load generator saw, plus any
warm-up orders) it also reports how many more orders are listed than that
(`listed_minus_created`: 0 when none was lost and none was made behind a 503).

Python 3 standard library only. Prints one JSON object on stdout:

    {"consistent": true, "settled_s": 6.2, "orders": N, "payments": N, "approved": N,
     "canceled": N, "voided_unpaid": N, "violations": {...}, "examples": [...], ...}

Usage: consistency.py --base http://127.0.0.1:8080 [--since EPOCH] [--min-wait 6]
                      [--timeout 120] [--interval 1] [--created N]
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse


def fetch_all(conn_factory, collection):
    """Every item of a HAL collection, all pages of 1000; raises on any failure."""
    items, page = [], 0
    conn = conn_factory()
    try:
        while True:
            conn.request("GET", f"/{collection}?size=1000&page={page}", headers={"Accept": "application/hal+json"})
            res = conn.getresponse()
            body = res.read()
            if res.status != 200:
                raise RuntimeError(f"GET /{collection} page {page}: {res.status} {body[:200]!r}")
            doc = json.loads(body)
            for rows in doc.get("_embedded", {}).values():
                items.extend(rows)
            page += 1
            if page >= doc.get("page", {}).get("totalPages", 0):
                return items
    finally:
        conn.close()


def check(orders, payments):
    """The violations of the rule, by kind, with a few examples."""
    payments_of = {}
    for p in payments:
        payments_of.setdefault(p.get("orderId"), []).append(p)
    order_ids = {o["id"] for o in orders}
    violations = {
        "orders_without_an_approved_payment": 0,
        "orders_with_several_payments": 0,
        "orders_paid_another_amount": 0,
        "approved_payments_without_an_order": 0,
    }
    examples = []

    def note(kind, what):
        violations[kind] += 1
        if len(examples) < 5:
            examples.append({kind: what})

    for o in orders:
        ps = payments_of.get(o["id"], [])
        if len(ps) > 1:
            note("orders_with_several_payments", {"order": o["id"], "payments": [p["id"] for p in ps]})
        approved = [p for p in ps if p.get("status") == "Approved"]
        if len(approved) != 1:
            note("orders_without_an_approved_payment", {"order": o["id"], "payments": ps})
        elif approved[0].get("amt") != o.get("amt"):
            note("orders_paid_another_amount", {"order": o["id"], "amt": o.get("amt"), "paid": approved[0].get("amt")})
    for p in payments:
        if p.get("status") == "Approved" and p.get("orderId") not in order_ids:
            note("approved_payments_without_an_order", p)
    consistent = all(v == 0 for v in violations.values())
    return consistent, violations, examples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the gateway, e.g. http://127.0.0.1:8080")
    parser.add_argument("--since", type=float, default=None, help="epoch seconds when the load ended")
    parser.add_argument("--min-wait", type=float, default=6.0, help="seconds after --since before judging")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds after --since to give up")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--created", type=int, default=None, help="201 answers seen by the clients")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.base)
    host, port = url.hostname, url.port or 80

    def conn_factory():
        return http.client.HTTPConnection(host, port, timeout=30)

    since = args.since if args.since is not None else time.time()
    while time.time() < since + args.min_wait:
        time.sleep(min(0.2, max(0.0, since + args.min_wait - time.time())))

    result = {}
    while True:
        try:
            orders = fetch_all(conn_factory, "orders")
            payments = fetch_all(conn_factory, "payments")
            consistent, violations, examples = check(orders, payments)
            result = {
                "consistent": consistent,
                "settled_s": round(time.time() - since, 1),
                "orders": len(orders),
                "payments": len(payments),
                "approved": sum(1 for p in payments if p.get("status") == "Approved"),
                "canceled": sum(1 for p in payments if p.get("status") == "Canceled"),
                # A void of a placement whose charge never happened leaves a Canceled row of 0.
                "voided_unpaid": sum(1 for p in payments if p.get("status") == "Canceled" and not p.get("amt")),
                "created": args.created,
                # Orders listed that no client was told of (> 0), or told of but lost (< 0).
                "listed_minus_created": None if args.created is None else len(orders) - args.created,
                "violations": violations,
                "examples": examples,
            }
        except (OSError, RuntimeError, ValueError) as e:
            result = {"consistent": False, "error": str(e), "settled_s": round(time.time() - since, 1)}
            consistent = False
        if consistent or time.time() >= since + args.timeout:
            break
        time.sleep(args.interval)

    summary = "consistent" if result.get("consistent") else "NOT consistent"
    print(
        f"consistency: {summary} after {result.get('settled_s')} s: {result.get('orders')} orders, "
        f"{result.get('approved')} approved and {result.get('canceled')} canceled payments; "
        f"violations {result.get('violations', result.get('error'))}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0 if result.get("consistent") else 1


if __name__ == "__main__":
    sys.exit(main())
