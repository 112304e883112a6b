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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION_S=${DURATION_S:-60}
CONCURRENCY=${CONCURRENCY:-100}
PAYMENT_DELAY=${PAYMENT_DELAY:-400-620}
CAFE_ARGS=${CAFE_ARGS:-}
SETTLE_TIMEOUT=${SETTLE_TIMEOUT:-120}
DOCS=${DOCS-docs/BENCHMARKS.md}
KEEP_RUN=${KEEP_RUN:-}
SKIP_BUILD=${SKIP_BUILD:-}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-120}

BODY='{"phoneNumber":"010-8765-4321","productName":"coffee","qty":2,"amt":1000}'
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CAFE_BIN=${CAFE_BIN:-$TARGET_DIR/release/cafe}

BENCH=resilience.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- tools -----------------------------------------------------------------------------------
need_tools siege curl

# --- build -----------------------------------------------------------------------------------
if [[ -z $SKIP_BUILD ]]; then
	log "building cafe (release)"
	timeout "$BUILD_TIMEOUT" cargo build --release -p cafe >&2
fi
[[ -x $CAFE_BIN ]] || die "$CAFE_BIN is missing"

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

code=$(curl -sS -o "$RUN/first_order.json" -w '%{http_code}' --max-time 10 -X POST \
	-H 'Content-Type: application/json' -d "$BODY" "$GATEWAY/orders" || true)
[[ $code == 201 ]] || die "the warm-up POST /orders answered $code: $(head -c 300 "$RUN/first_order.json" 2>/dev/null)"
WARMUP=1

# --- siege -----------------------------------------------------------------------------------
# verbose: one line per answer (status and latency); failures: never abort on 503s, which
# siege counts as failed transactions; connection = close: a new connection per request.
cat >"$RUN/siegerc" <<'EOF'
verbose = true
color = off
quiet = false
json_output = false
logging = false
show-logfile = false
parser = false
protocol = HTTP/1.1
connection = close
delay = 0.0
benchmark = true
failures = 1000000
limit = 1000
timeout = 30
EOF
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
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
	commit="$commit + uncommitted changes"
fi
command="bash bench/resilience.sh"
for var in DURATION_S CONCURRENCY PAYMENT_DELAY CAFE_ARGS; do
	case "$var=${!var}" in
	DURATION_S=60 | CONCURRENCY=100 | PAYMENT_DELAY=400-620 | CAFE_ARGS=) ;;
	*) command="$var=\"${!var}\" $command" ;;
	esac
done
DATE=$(date -u +%F) COMMIT=$commit COMMAND=$command LOADAVG=$LOADAVG WARMUP=$WARMUP \
	MACHINE="$(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r), $(rustc --version 2>/dev/null || echo rustc)" \
	DELAY=$PAYMENT_DELAY CAFE_ARGS=$CAFE_ARGS CONCURRENCY=$CONCURRENCY DURATION="${DURATION_S}S" \
	python3 - "$RUN/meta.json" <<'EOF'
import json, os, sys
e = os.environ
keys = ["date", "commit", "command", "loadavg", "machine", "delay", "cafe_args", "concurrency", "duration"]
meta = {k: e[k.upper()] for k in keys}
meta["warmup"] = int(e["WARMUP"])
with open(sys.argv[1], "w") as f:
    json.dump(meta, f)
EOF

echo
python3 bench/resilience_report.py "$RUN" ${DOCS:+--docs "$DOCS"}
[[ -z $DOCS ]] || log "written into $DOCS"
