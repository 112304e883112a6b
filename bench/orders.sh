#!/usr/bin/env bash
# Order throughput and event latency of `cafe up`, next to a same-run reference server.
#
#   bash bench/orders.sh
#
# 1. builds `cafe` (release) and bench/reference (target/bench-reference);
# 2. wrk POST /orders against the reference (axum + SQLite WAL, one insert per request);
# 3. starts `cafe up` on free ports with a fresh data dir, the same wrk through the gateway,
#    then polls every 10 ms until /deliverypages and /mypages have seen every order;
# 4. siege POST /orders through the gateway;
# 5. light load, on a fresh cafe: 200 orders one at a time, 201 -> drink visible in /orderinfos (bench/latency.py),
#    then 200 more polling /drinks instead;
# 6. prints a Markdown section and writes it into docs/BENCHMARKS.md (same heading replaced).
#
# Everything listens on 127.0.0.1 only; every step has a time bound; whatever the script
# started is stopped on exit. Settings (environment):
#   DURATION_S=20 THREADS=2 CONNECTIONS=100 SIEGE_S=20 LIGHT_COUNT=200
#   PAYMENT_DELAY=LO-HI      passed to `cafe up --payment-delay-ms` when set
#   DOCS=docs/BENCHMARKS.md  the file to update; DOCS= (empty) only prints
#   KEEP_RUN=1               keep the raw outputs (always kept when the script fails)
#   SKIP_BUILD=1             use the binaries already built
#   CAFE_BIN, REF_TARGET_DIR where the binaries are (default: target/release/cafe,
#                            target/bench-reference)
set -euo pipefail

SIEGE_S=${SIEGE_S:-20}
LIGHT_COUNT=${LIGHT_COUNT:-200}
PAYMENT_DELAY=${PAYMENT_DELAY:-}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-120}

BODY='{"phoneNumber":"010-1234-5678","productName":"latte","qty":1,"amt":4500}'

BENCH=orders.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools -----------------------------------------------------------------------------------
need_tools wrk siege curl

# --- build -----------------------------------------------------------------------------------
build reference

# --- reference -------------------------------------------------------------------------------
wrk_reference "$RUN/ref_wrk.txt"

# --- cafe ------------------------------------------------------------------------------------
# Starts `cafe up` on free ports with data dir $1; sets CAFE_PID and GATEWAY.
start_cafe() {
	local data=$1
	BASE=$(free_base)
	cafe_args=(up --port "$BASE" --data-dir "$RUN/$data" --log-dir "$RUN/logs-$data" --auth off)
	[[ -z $PAYMENT_DELAY ]] || cafe_args+=(--payment-delay-ms "$PAYMENT_DELAY")
	launch cafe 'cafe up:' "${cafe_args[@]}"
	GATEWAY=$(grep -o 'gateway=[^ ]*' <<<"$READY" | cut -d= -f2- || true)
	GATEWAY=${GATEWAY:-http://127.0.0.1:$BASE}
	GATEWAY=${GATEWAY%/}
	wait_http "$GATEWAY/actuator/health" "$STARTUP_TIMEOUT" "$CAFE_PID" || {
		tail -n 20 "$RUN/cafe.err" >&2 || true
		die "gateway health never answered 200"
	}
}
start_cafe data

place_order "a first"

log "wrk POST /orders through the gateway for ${DURATION_S}s"
LOADAVG_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
run_wrk "$GATEWAY/orders" "$RUN/cafe_wrk.txt" || log "wrk failed"
LOAD_END=$(date +%s.%N)
LOADAVG_AFTER=$(cut -d' ' -f1 /proc/loadavg)
log "waiting for the views to catch up (polling every 10 ms, at most ${CATCHUP_TIMEOUT}s)"
timeout $((CATCHUP_TIMEOUT + 30)) python3 bench/catchup.py --base "$GATEWAY" --since "$LOAD_END" \
	--timeout "$CATCHUP_TIMEOUT" --interval 0.01 >"$RUN/catchup.json" || log "catch-up poll failed"

# --- siege -----------------------------------------------------------------------------------
write_siegerc "verbose = false" "json_output = true" "benchmark = false" "limit = 1000" \
	"accept-encoding = gzip, deflate"
log "siege -c$CONNECTIONS -t${SIEGE_S}S POST /orders through the gateway"
timeout $((SIEGE_S + 60)) siege --rc="$RUN/siegerc" -j -c"$CONNECTIONS" -t"${SIEGE_S}S" \
	--content-type "application/json" "$GATEWAY/orders POST $BODY" \
	>"$RUN/siege.out" 2>"$RUN/siege.err" || log "siege exited with $?"
tail -n 20 "$RUN/siege.out" >&2 || true
SIEGE_END=$(date +%s.%N)
timeout $((CATCHUP_TIMEOUT + 30)) python3 bench/catchup.py --base "$GATEWAY" --since "$SIEGE_END" \
	--timeout "$CATCHUP_TIMEOUT" --interval 0.01 >"$RUN/catchup_siege.json" || log "catch-up poll failed"

# --- light load ------------------------------------------------------------------------------
# On a fresh cafe: a queue of tens of thousands of drinks left by the loads above is not
# light load, and every queue read would pay for it.
stop_pid "$CAFE_PID"
start_cafe data-light
log "light load: $LIGHT_COUNT orders one at a time, 201 -> drink in /orderinfos"
timeout 900 python3 bench/latency.py --base "$GATEWAY" --count "$LIGHT_COUNT" \
	--collection orderinfos >"$RUN/latency.json" || log "light-load client failed"
log "light load again, polling /drinks (separates the event's travel from the queue query)"
timeout 900 python3 bench/latency.py --base "$GATEWAY" --count "$LIGHT_COUNT" \
	--collection drinks >"$RUN/latency_drinks.json" || log "light-load client failed"

stop_pid "$CAFE_PID"

# --- report ----------------------------------------------------------------------------------
write_meta "command=$(bench_command DURATION_S=20 THREADS=2 CONNECTIONS=100 SIEGE_S=20 LIGHT_COUNT=200 PAYMENT_DELAY=)" \
	"loadavg=$LOADAVG_BEFORE before, $LOADAVG_AFTER after" "threads=$THREADS" "connections=$CONNECTIONS" \
	"duration=${DURATION_S}s" "siege_time=${SIEGE_S}S"
report report.py
