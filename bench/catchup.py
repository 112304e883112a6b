#!/usr/bin/env python3
"""Catch-up time: how long after a load ends the views have seen every order.

Polls, every INTERVAL seconds through the gateway, `GET /orders?size=1`,
`GET /deliverypages?size=1`, `GET /mypages?size=1` and `GET /drinks?size=1`, reading
`page.totalElements` of each. The views have caught up once both view counts reach the order
count; drinks have caught up once the drink count does. Times are milliseconds after SINCE
(a Unix time, e.g. `date +%s.%N` taken when the load ended).

Python 3 standard library only. Prints one JSON object on stdout:

    {"views_ms": .., "drinks_ms": .., "orders": N, "deliverypages": N, "mypages": N,
     "drinks": N, "timed_out": false}

`views_ms` / `drinks_ms` are null when that count had not caught up by the timeout.

Usage: catchup.py --base http://127.0.0.1:8080 --since 1700000000.123 [--timeout 120]
       [--interval 0.01]
"""

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse

RESOURCES = ("orders", "deliverypages", "mypages", "drinks")


class Client:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None

    def total(self, resource):
        """page.totalElements of /<resource>?size=1, or None if it could not be read."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                self.conn.connect()
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn.request("GET", f"/{resource}?size=1", headers={"Accept": "application/hal+json"})
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                return None
            return int(json.loads(data)["page"]["totalElements"])
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--since", type=float, default=None, help="Unix time the load ended (default: now)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to keep polling")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between polls")
    args = parser.parse_args()

    since = args.since if args.since is not None else time.time()
    url = urllib.parse.urlsplit(args.base)
    client = Client(url.hostname, url.port or 80)
    deadline = time.time() + args.timeout

    views_ms = drinks_ms = None
    counts = {}
    while True:
        started = time.time()
        counts = {r: client.total(r) for r in RESOURCES}
        seen = time.time()
        orders = counts["orders"]
        if orders is not None:
            if views_ms is None and all(
                counts[v] is not None and counts[v] >= orders for v in ("deliverypages", "mypages")
            ):
                views_ms = round((seen - since) * 1000, 1)
            if drinks_ms is None and counts["drinks"] is not None and counts["drinks"] >= orders:
                drinks_ms = round((seen - since) * 1000, 1)
        if views_ms is not None and drinks_ms is not None:
            break
        if seen > deadline:
            break
        time.sleep(max(0.0, args.interval - (time.time() - started)))

    result = {"views_ms": views_ms, "drinks_ms": drinks_ms, **counts,
              "timed_out": views_ms is None or drinks_ms is None}
    print(f"catch-up: {result}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
