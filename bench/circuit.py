#!/usr/bin/env python3
"""Samples the order service's payment circuit while a load runs.

Every INTERVAL seconds it reads `GET <order>/actuator/health` and writes one JSON line
`{"t": epoch, "state": "CLOSED"|"OPEN"|"HALF_OPEN", "calls": N, "failures": N}` to stdout,
until the file given by --stop exists or --max seconds have passed. A failed read is written
as `{"t": .., "error": ".."}`.

Python 3 standard library only.

Usage: circuit.py --order http://127.0.0.1:8081 --stop FILE [--interval 0.2] [--max 600]
"""

import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--order", required=True, help="the order service's base URL")
    parser.add_argument("--stop", required=True, help="stop once this file exists")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--max", type=float, default=600.0)
    parser.add_argument("--circuit", default="paymentCircuit")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.order)
    give_up = time.time() + args.max
    conn = None
    while not os.path.exists(args.stop) and time.time() < give_up:
        t = time.time()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
            conn.request("GET", "/actuator/health")
            res = conn.getresponse()
            health = json.loads(res.read())
            d = health.get("components", {}).get(args.circuit, {}).get("details", {})
            line = {"t": t, "state": d.get("state"), "calls": d.get("calls"), "failures": d.get("failures")}
        except (OSError, ValueError, http.client.HTTPException) as e:
            line = {"t": t, "error": str(e)}
            if conn is not None:
                conn.close()
            conn = None
        print(json.dumps(line), flush=True)
        time.sleep(max(0.0, t + args.interval - time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
