#!/usr/bin/env python3
"""Light-load latency: how long an order takes to reach the barista queue.

Places COUNT orders one at a time through the gateway. For each, it measures the time from
receiving the 201 of `POST /orders` until a drink with that `orderId` shows in
`GET /orderinfos?size=N&sort=id,desc` (or in the collection given by --collection, e.g.
`drinks`), polling as fast as one keep-alive connection allows. The time is taken when the
poll that lists the drink is answered, so it includes that poll's round trip: an upper bound.
The round trip of every poll and of the POST itself are reported too.

Python 3 standard library only. Prints a human summary on stderr and one JSON object on
stdout:

    {"count": 200, "found": 200, "missed": 0, "non201": 0,
     "p50_ms": .., "p99_ms": .., "max_ms": .., "post_p50_ms": .., "post_p99_ms": ..,
     "poll_p50_ms": .., "poll_p99_ms": .., "polls_per_order": .., "path": ..}

Usage: latency.py --base http://127.0.0.1:8080 [--count 200] [--collection orderinfos]
       [--page-size 20] [--timeout 10]
"""

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse

ORDER = {"phoneNumber": "010-1234-5678", "productName": "latte", "qty": 1, "amt": 4500}


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


class Client:
    """One keep-alive HTTP/1.1 connection that reconnects after an error."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def request(self, method, path, body=None):
        headers = {"Accept": "application/json, application/hal+json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                    self.conn.connect()
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp.getheader("Location"), data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def embedded_items(doc):
    """Every item of a HAL collection, whatever its relation name."""
    items = []
    for value in (doc.get("_embedded") or {}).values():
        if isinstance(value, list):
            items.extend(value)
    return items


def order_id_of(location, data):
    try:
        body = json.loads(data)
        if isinstance(body, dict) and body.get("id") is not None:
            return int(body["id"])
    except ValueError:
        pass
    if location:
        return int(location.rstrip("/").rsplit("/", 1)[-1])
    raise ValueError("201 without an order id")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--count", type=int, default=200, help="orders to place")
    parser.add_argument("--collection", default="orderinfos",
                        help="collection polled for the drink: orderinfos (the barista queue) or drinks")
    parser.add_argument("--page-size", type=int, default=20,
                        help="size of the /orderinfos page polled (newest first)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for one order's drink before counting it missed")
    parser.add_argument("--give-up-after", type=int, default=5,
                        help="stop after this many orders in a row were missed")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.base)
    host, port = url.hostname, url.port or 80
    poster = Client(host, port, timeout=10)
    poller = Client(host, port, timeout=10)
    poll_path = f"/{args.collection}?size={args.page_size}&sort=id,desc"

    latencies, posts, poll_times = [], [], []
    missed = non201 = polls = missed_in_a_row = 0
    attempted = 0
    for i in range(args.count):
        attempted += 1
        body = json.dumps(ORDER)
        t0 = time.perf_counter()
        try:
            status, location, data = poster.request("POST", "/orders", body)
        except (OSError, http.client.HTTPException) as e:
            status, location, data = f"error ({e})", None, b""
        t201 = time.perf_counter()
        if status != 201:
            non201 += 1
            print(f"order {i}: POST /orders answered {status}: {data[:200]!r}", file=sys.stderr)
            continue
        posts.append((t201 - t0) * 1000)
        order_id = order_id_of(location, data)

        deadline = t201 + args.timeout
        while True:
            polls += 1
            sent = time.perf_counter()
            try:
                status, _, data = poller.request("GET", poll_path)
            except (OSError, http.client.HTTPException) as e:
                status, data = f"error ({e})", b""
            now = time.perf_counter()
            poll_times.append((now - sent) * 1000)
            if status == 200:
                items = embedded_items(json.loads(data))
                if any(str(item.get("orderId")) == str(order_id) for item in items):
                    latencies.append((now - t201) * 1000)
                    missed_in_a_row = 0
                    break
            if now > deadline:
                missed += 1
                print(f"order {order_id}: no drink in /orderinfos after {args.timeout} s "
                      f"(last status {status})", file=sys.stderr)
                missed_in_a_row += 1
                break
        if missed_in_a_row >= args.give_up_after:
            print(f"giving up after {missed_in_a_row} orders in a row missed", file=sys.stderr)
            break

    poster.close()
    poller.close()

    result = {
        "count": attempted,
        "found": len(latencies),
        "missed": missed,
        "non201": non201,
        "path": poll_path,
        "polls_per_order": round(polls / max(1, attempted - non201), 1),
    }
    if latencies:
        result.update(p50_ms=round(percentile(latencies, 50), 2),
                      p99_ms=round(percentile(latencies, 99), 2),
                      max_ms=round(max(latencies), 2))
    if posts:
        result.update(post_p50_ms=round(percentile(posts, 50), 2),
                      post_p99_ms=round(percentile(posts, 99), 2))
    if poll_times:
        result.update(poll_p50_ms=round(percentile(poll_times, 50), 2),
                      poll_p99_ms=round(percentile(poll_times, 99), 2))
    print(f"light load: {result}", file=sys.stderr)
    print(json.dumps(result))
    return 0 if latencies else 1


if __name__ == "__main__":
    sys.exit(main())
