#!/usr/bin/env bash
# Demonstration 6 and the distributed throughput, on this machine's PostgreSQL and NATS.
#
#   bash bench/rolling.sh
#
# 1. `cafe up` (all-in-one): wrk POST /orders through the gateway, the same-run reference;
# 2. `cafe cluster` (every service its own process, PostgreSQL with synchronous commit on,
#    NATS JetStream): the same wrk;
# 3. siege -c100 against GET /deliverypages and POST /orders (each user alternates them)
#    through the cluster's gateway while SIGHUP rolls every service one instance at a time
#    (SIGTERM, wait for ready, next); siege runs until the roll is done, then its
#    availability and failed transactions are what we record;
# 4. appends a dated section to docs/BENCHMARKS.md.
# Each wrk measurement follows a 3 s warm-up on the same processes (connections opened,
# statements prepared, NATS consumers created). Everything is on 127.0.0.1, bounded in time,
# and stopped on exit; the cluster's databases and stream are dropped. Settings:
#   DURATION_S=20  DB_POOL=10 (each child's PostgreSQL pool: nine children must fit the
#   server's 100 connections)  DOCS=docs/BENCHMARKS.md (empty: only print)  SKIP_BUILD=1
#   KEEP_RUN=1 (keep the raw outputs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION_S=${DURATION_S:-20}
DB_POOL=${DB_POOL:-10}
DOCS=${DOCS-docs/BENCHMARKS.md}
CAFE_BIN=${CAFE_BIN:-target/release/cafe}
BODY='{"phoneNumber":"010-1234-5678","productName":"latte","qty":1,"amt":4500}'
NS="bench$(date +%s)"

BENCH=rolling.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

drop_namespace() {
	for svc in order payment drink customercenter delivery deliverycenter; do
		psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS ${NS}_${svc} WITH (FORCE)" >/dev/null 2>&1 || true
	done
	# The stream, through the JetStream API on NATS's plain protocol.
	python3 - "${NS^^}_EVENTS" <<'PY' || true
import socket, sys
s = socket.create_connection(("127.0.0.1", 4222), timeout=5)
f = s.makefile("rb")
f.readline()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.drop 1\r\nPUB $JS.API.STREAM.DELETE.%s _INBOX.drop 0\r\n\r\n' % sys.argv[1].encode())
while not f.readline().startswith(b"MSG"):
    pass
PY
}
trap 'drop_namespace; cleanup' EXIT

need_tools wrk siege curl
[ -n "${SKIP_BUILD:-}" ] || timeout 2400 cargo build --release -p cafe >&2

wrk_orders() { # url name → orders/s, after a warm-up
	timeout 40 wrk -t2 -c100 -d3s -s bench/post_order.lua "$1/orders" > "$RUN/wrk-warmup.$2" 2>&1
	timeout $((DURATION_S + 30)) wrk -t2 -c100 -d"${DURATION_S}s" --latency -s bench/post_order.lua "$1/orders" > "$RUN/wrk.$2" 2>&1
	grep -q "Non-2xx" "$RUN/wrk.$2" && { cat "$RUN/wrk.$2" >&2; die "some orders were refused ($2)"; }
	awk '/Requests\/sec/ {print $2}' "$RUN/wrk.$2"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "all-in-one"
BASE=$(free_base 7)
launch up 'cafe up:' up --port "$BASE" --data-dir "$RUN/data" --log-dir "$RUN/logs-up" --auth off
AIO=$(wrk_orders "http://127.0.0.1:$BASE" aio)
stop_pid "$CAFE_PID"

log "cluster (namespace $NS)"
BASE=$(free_base 14)
launch cluster 'cafe cluster:' cluster --port "$BASE" --namespace "$NS" --db-pool "$DB_POOL" --log-dir "$RUN/logs-cluster" --data-dir "$RUN/data-cluster" --auth off
CL=$CAFE_PID
GW="http://127.0.0.1:$BASE"
DIST=$(wrk_orders "$GW" dist)

log "rolling restart under siege -c100"
printf '%s/deliverypages\n%s/orders POST %s\n' "$GW" "$GW" "$BODY" > "$RUN/urls.txt"
cat > "$RUN/siegerc" <<RC
connection = keep-alive
failures = 1000000
json_output = true
RC
SIEGERC="$RUN/siegerc" timeout 400 siege -c100 -t300S -f "$RUN/urls.txt" --content-type "application/json" > "$RUN/siege.out" 2> "$RUN/siege.err" &
SIEGE=$!; PIDS+=("$SIEGE")
sleep 3
ROLL_START=$(date +%s.%N)
kill -HUP "$CL"
for _ in $(seq 3000); do grep -q "rolling restart done\|rolling restart failed" "$RUN/cluster.err" && break; sleep 0.1; done
ROLL_END=$(date +%s.%N)
sleep 2
kill -INT "$SIEGE"; wait "$SIEGE" || true
grep -q "rolling restart done" "$RUN/cluster.err" || { tail -20 "$RUN/cluster.err" >&2; die "the rolling restart did not finish"; }
read -r TX AVAIL RATE FAILED < <(python3 - "$RUN/siege.out" "$RUN/siege.err" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read() + open(sys.argv[2]).read()
m = re.search(r"\{[^{}]*\"transactions\"[^{}]*\}", text, re.S)
d = json.loads(m.group(0))
print(d["transactions"], d["availability"], d["transaction_rate"], d["failed_transactions"])
PY
)
ROLL_S=$(python3 -c "print(round($ROLL_END - $ROLL_START, 1))")
RATIO=$(python3 -c "print(round($DIST / $AIO, 2))")

SECTION=$(cat <<MD

### Distributed mode and rolling restart, $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD))

\`bash bench/rolling.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average before: ${LOAD_BEFORE}, after: $(cut -d' ' -f1-3 /proc/loadavg).

| measure | result | target |
|---|---|---|
| all-in-one \`POST /orders\` through the gateway (wrk -c100, ${DURATION_S} s after a 3 s warm-up), same run | ${AIO} orders/s | |
| distributed (\`cafe cluster --db-pool ${DB_POOL}\`: PostgreSQL, synchronous commit on; NATS JetStream), the same wrk | ${DIST} orders/s (${RATIO} × all-in-one) | ≥ 1,000 orders/s |
| siege -c100, GET /deliverypages + POST /orders, during a rolling restart of every service (${ROLL_S} s) | ${TX} transactions, **${AVAIL} % available**, ${FAILED} failed, ${RATE} trans/s | 100 % |
| original (Spring Boot on Kubernetes, readiness probes) | 359.49 trans/s at 100 % | ten times: 3,595 trans/s |

MD
)
printf '%s\n' "$SECTION"
if [ -n "$DOCS" ]; then # the newest result last among the results, before the analysis
	SECTION="$SECTION" python3 - "$DOCS" <<'PY'
import os, sys
path, section = sys.argv[1], os.environ["SECTION"].strip("\n") + "\n\n"
text = open(path).read()
at = text.find("\n## Where the time goes")
text = text + "\n" + section if at < 0 else text[: at + 1] + section + text[at + 1 :]
open(path, "w").write(text)
PY
fi
