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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION_S=${DURATION_S:-20}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-100}
SIEGE_S=${SIEGE_S:-20}
LIGHT_COUNT=${LIGHT_COUNT:-200}
PAYMENT_DELAY=${PAYMENT_DELAY:-}
DOCS=${DOCS-docs/BENCHMARKS.md}
KEEP_RUN=${KEEP_RUN:-}
SKIP_BUILD=${SKIP_BUILD:-}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-120}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-120}

BODY='{"phoneNumber":"010-1234-5678","productName":"latte","qty":1,"amt":4500}'
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CAFE_BIN=${CAFE_BIN:-$TARGET_DIR/release/cafe}
REF_TARGET_DIR=${REF_TARGET_DIR:-target/bench-reference}
REF_BIN="$REF_TARGET_DIR/release/bench-reference"

BENCH=orders.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

run_wrk() { # run_wrk URL OUTFILE
	timeout $((DURATION_S + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" --latency \
		-s bench/post_order.lua "$1" | tee "$2" >&2
}

# --- tools -----------------------------------------------------------------------------------
need_tools wrk siege curl

# --- build -----------------------------------------------------------------------------------
if [[ -z $SKIP_BUILD ]]; then
	log "building cafe (release)"
	timeout "$BUILD_TIMEOUT" cargo build --release -p cafe >&2
	log "building the reference server"
	CARGO_TARGET_DIR=$REF_TARGET_DIR timeout "$BUILD_TIMEOUT" \
		cargo build --release --manifest-path bench/reference/Cargo.toml >&2
fi
[[ -x $CAFE_BIN ]] || die "$CAFE_BIN is missing"
[[ -x $REF_BIN ]] || die "$REF_BIN is missing"

# --- reference -------------------------------------------------------------------------------
REF_PORT=$(free_port)
log "reference server on 127.0.0.1:$REF_PORT"
"$REF_BIN" "$REF_PORT" "$RUN/reference.db" >"$RUN/reference.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
wait_http "http://127.0.0.1:$REF_PORT/health" 30 "$REF_PID" || die "reference server did not start"
log "wrk POST /orders against the reference for ${DURATION_S}s"
run_wrk "http://127.0.0.1:$REF_PORT/orders" "$RUN/ref_wrk.txt"
stop_pid "$REF_PID"

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

code=$(curl -sS -o "$RUN/first_order.json" -w '%{http_code}' --max-time 10 -X POST \
	-H 'Content-Type: application/json' -d "$BODY" "$GATEWAY/orders" || true)
[[ $code == 201 ]] || die "a first POST /orders answered $code: $(head -c 300 "$RUN/first_order.json" 2>/dev/null)"

log "wrk POST /orders through the gateway for ${DURATION_S}s"
LOADAVG_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
run_wrk "$GATEWAY/orders" "$RUN/cafe_wrk.txt" || log "wrk failed"
LOAD_END=$(date +%s.%N)
LOADAVG_AFTER=$(cut -d' ' -f1 /proc/loadavg)
log "waiting for the views to catch up (polling every 10 ms, at most ${CATCHUP_TIMEOUT}s)"
timeout $((CATCHUP_TIMEOUT + 30)) python3 bench/catchup.py --base "$GATEWAY" --since "$LOAD_END" \
	--timeout "$CATCHUP_TIMEOUT" --interval 0.01 >"$RUN/catchup.json" || log "catch-up poll failed"

# --- siege -----------------------------------------------------------------------------------
cat >"$RUN/siegerc" <<'EOF'
verbose = false
json_output = true
logging = false
show-logfile = false
parser = false
protocol = HTTP/1.1
connection = close
delay = 0.0
benchmark = false
limit = 1000
accept-encoding = gzip, deflate
EOF
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
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
	commit="$commit + uncommitted changes"
fi
command="bash bench/orders.sh"
for var in DURATION_S THREADS CONNECTIONS SIEGE_S LIGHT_COUNT PAYMENT_DELAY; do
	case "$var=${!var}" in
	DURATION_S=20 | THREADS=2 | CONNECTIONS=100 | SIEGE_S=20 | LIGHT_COUNT=200 | PAYMENT_DELAY=) ;;
	*) command="$var=${!var} $command" ;;
	esac
done
DATE=$(date -u +%F) COMMIT=$commit COMMAND=$command \
	CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') \
	CPUS=$(nproc) KERNEL=$(uname -r) RUSTC=$(rustc --version 2>/dev/null || echo rustc) \
	MEM_KB=$(awk '/MemTotal/ {print $2}' /proc/meminfo) \
	LOADAVG="$LOADAVG_BEFORE before, $LOADAVG_AFTER after" \
	THREADS=$THREADS CONNECTIONS=$CONNECTIONS DURATION_S=$DURATION_S SIEGE_S=$SIEGE_S \
	python3 - "$RUN/meta.json" <<'EOF'
import json, os, sys
e = os.environ
meta = {
    "date": e["DATE"], "commit": e["COMMIT"], "command": e["COMMAND"],
    "cpus": e["CPUS"], "cpu_model": e["CPU_MODEL"], "kernel": e["KERNEL"], "rustc": e["RUSTC"],
    "mem": f"{int(e['MEM_KB']) / 1048576:.0f} GiB",
    "threads": e["THREADS"], "connections": e["CONNECTIONS"],
    "loadavg": e["LOADAVG"], "duration": e["DURATION_S"] + "s", "siege_time": e["SIEGE_S"] + "S",
}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f)
EOF

echo
python3 bench/report.py "$RUN" ${DOCS:+--docs "$DOCS"}
[[ -z $DOCS ]] || log "written into $DOCS"
