#!/usr/bin/env bash
# Demonstration 5 (SPEC §8): payment slowed to 400–620 ms, `siege -c100 -t60S` of POST /orders
# through the gateway; the cafe must stay up and answer every request (201, or a fast 503),
# and afterwards every order has exactly one approved payment and every approved payment its
# order.
#
#   bash bench/resilience.sh
#
# 1. builds `cafe` (release);
# 2. starts `cafe up --payment-delay-ms 400-620` on free ports with a fresh data dir, places one
#    warm-up order;
# 3. siege POST /orders through the gateway (verbose: one line per answer, so the status
#    histogram and each answer's latency come from the load generator itself), while
#    bench/circuit.py samples the payment circuit from order's health;
# 4. waits for the reconciler and checks the books (bench/consistency.py);
# 5. prints a Markdown section and writes it into docs/BENCHMARKS.md (same heading replaced,
#    other sections kept) with bench/resilience_report.py.
#
# Everything listens on 127.0.0.1 only; every step has a time bound; whatever the script
# started is stopped on exit. Settings (environment):
#   DURATION_S=60 CONCURRENCY=100 PAYMENT_DELAY=400-620
#   CAFE_ARGS="..."          extra flags for `cafe up` (e.g. "--breaker-open-ms 2000")
#   SETTLE_TIMEOUT=120       seconds after the load to wait for consistency
#   DOCS=docs/BENCHMARKS.md  the file to update; DOCS= (empty) only prints
#   KEEP_RUN=1               keep the raw outputs (always kept when the script fails)
#   SKIP_BUILD=1             use the binary already built
#   CAFE_BIN                 the binary (default: target/release/cafe)
set -euo pipefail

DURATION_S=${DURATION_S:-60}
CONCURRENCY=${CONCURRENCY:-100}
PAYMENT_DELAY=${PAYMENT_DELAY:-400-620}
CAFE_ARGS=${CAFE_ARGS:-}
SETTLE_TIMEOUT=${SETTLE_TIMEOUT:-120}

BODY='{"phoneNumber":"010-8765-4321","productName":"coffee","qty":2,"amt":1000}'

BENCH=resilience.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools -----------------------------------------------------------------------------------
need_tools siege curl

# --- build -----------------------------------------------------------------------------------
build

# --- cafe ------------------------------------------------------------------------------------
BASE=$(free_base)
# shellcheck disable=SC2206 # CAFE_ARGS is a list of flags, split on purpose
cafe_args=(up --port "$BASE" --data-dir "$RUN/data" --log-dir "$RUN/logs" --auth off --payment-delay-ms "$PAYMENT_DELAY" $CAFE_ARGS)
launch cafe 'cafe up:' "${cafe_args[@]}"
url_of() { grep -o "$1=[^ ]*" <<<"$READY" | cut -d= -f2- | sed 's:/*$::'; }
GATEWAY=$(url_of gateway)
ORDER=$(url_of order)
[[ -n $GATEWAY && -n $ORDER ]] || die "no gateway or order URL in: $READY"
wait_http "$GATEWAY/actuator/health" "$STARTUP_TIMEOUT" "$CAFE_PID" || die "gateway health never answered 200"

place_order "the warm-up"
WARMUP=1

# --- siege -----------------------------------------------------------------------------------
# verbose: one line per answer (status and latency); failures: never abort on 503s, which
# siege counts as failed transactions; connection = close: a new connection per request.
write_siegerc "verbose = true" "color = off" "quiet = false" "json_output = false" "benchmark = true" \
	"failures = 1000000" "limit = 1000" "timeout = 30"
LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
python3 bench/circuit.py --order "$ORDER" --stop "$RUN/stop" --max $((DURATION_S + 120)) >"$RUN/circuit.jsonl" &
PIDS+=("$!")
log "siege -c$CONCURRENCY -t${DURATION_S}S POST /orders through the gateway"
timeout $((DURATION_S + 90)) siege --rc="$RUN/siegerc" -c"$CONCURRENCY" -t"${DURATION_S}S" \
	--content-type "application/json" "$GATEWAY/orders POST $BODY" \
	>"$RUN/siege.out" 2>"$RUN/siege.err" || log "siege exited with $?"
LOAD_END=$(date +%s.%N)
touch "$RUN/stop"
grep -A20 'Lifting the server siege' "$RUN/siege.err" >&2 || tail -n 20 "$RUN/siege.err" >&2 || true

# --- consistency -----------------------------------------------------------------------------
CREATED=$(grep -c '^HTTP/[0-9.]* *201 ' "$RUN/siege.out" || true)
log "checking orders against payments once settled (at most ${SETTLE_TIMEOUT}s)"
timeout $((SETTLE_TIMEOUT + 60)) python3 bench/consistency.py --base "$GATEWAY" --since "$LOAD_END" \
	--min-wait 6 --timeout "$SETTLE_TIMEOUT" --created $((CREATED + WARMUP)) >"$RUN/consistency.json" ||
	log "the books are not consistent (see below)"
kill -0 "$CAFE_PID" 2>/dev/null || log "cafe is no longer running!"
stop_pid "$CAFE_PID"

# --- report ----------------------------------------------------------------------------------
write_meta "command=$(bench_command DURATION_S=60 CONCURRENCY=100 PAYMENT_DELAY=400-620 CAFE_ARGS=)" \
	"loadavg=$LOADAVG" "warmup=$WARMUP" "delay=$PAYMENT_DELAY" "cafe_args=$CAFE_ARGS" \
	"concurrency=$CONCURRENCY" "duration=${DURATION_S}S"
report resilience_report.py
