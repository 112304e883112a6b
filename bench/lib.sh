# Shared by the bench scripts: the repository as working directory, the common settings,
# building, a run directory, the processes started (stopped on exit), free ports below the
# ephemeral range, waiting for HTTP, wrk against the reference, siege's settings, and the
# run's meta.json and report. Source it after setting BENCH (the script's name, for messages)
# and the script's own settings.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Settings every script takes from the environment (a script may set them first):
#   DURATION_S=20 THREADS=2 CONNECTIONS=100  the wrk load (run_wrk)
#   DOCS=docs/BENCHMARKS.md  the file to update; DOCS= (empty) only prints
#   KEEP_RUN=1               keep the raw outputs (always kept when the script fails)
#   SKIP_BUILD=1             use the binaries already built
#   CAFE_BIN, REF_TARGET_DIR where the binaries are (default: target/release/cafe,
#                            target/bench-reference)
#   BUILD_TIMEOUT=2400 STARTUP_TIMEOUT=120 (seconds)
DURATION_S=${DURATION_S:-20}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-100}
DOCS=${DOCS-docs/BENCHMARKS.md}
KEEP_RUN=${KEEP_RUN:-}
SKIP_BUILD=${SKIP_BUILD:-}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-120}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CAFE_BIN=${CAFE_BIN:-$TARGET_DIR/release/cafe}
REF_TARGET_DIR=${REF_TARGET_DIR:-target/bench-reference}
REF_BIN="$REF_TARGET_DIR/release/bench-reference"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/cafe-${BENCH%.sh}.XXXXXX")
PIDS=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH" "$*" >&2; exit 1; }

stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	touch "$RUN/stop" 2>/dev/null || true # tells background samplers to finish
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [[ -n ${KEEP_RUN:-} || $rc -ne 0 ]]; then
		log "raw outputs kept in $RUN"
	else
		rm -rf "$RUN"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# free_base [N]: a base port BASE with BASE..BASE+N-1 (default 7) all free, below the
# ephemeral range the clients use.
free_base() {
	python3 - "${1:-7}" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(500):
    base = random.randint(20000, 30000)
    socks = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit(f"no free block of {n} ports")
EOF
}

# launch NAME LINE ARGS...: starts "$CAFE_BIN" ARGS in the background (output in
# $RUN/NAME.out and $RUN/NAME.err) and waits, at most STARTUP_TIMEOUT seconds,
# until it prints a line starting with LINE. Sets CAFE_PID (also kept in PIDS, stopped on
# exit) and READY (that line), and logs it.
launch() {
	local name=$1 line=$2 deadline
	shift 2
	log "cafe $*"
	"$CAFE_BIN" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
	CAFE_PID=$!
	PIDS+=("$CAFE_PID")
	deadline=$((SECONDS + STARTUP_TIMEOUT))
	until grep -q "^$line" "$RUN/$name.out" 2>/dev/null; do
		if ! kill -0 "$CAFE_PID" 2>/dev/null || ((SECONDS >= deadline)); then
			tail -n 20 "$RUN/$name.err" >&2 || true
			die "cafe did not print its '$line' line"
		fi
		sleep 0.1
	done
	READY=$(grep -m1 "^$line" "$RUN/$name.out")
	log "$READY"
}

# wait_http URL SECONDS PID: until URL answers 2xx, the deadline passes or PID exits.
wait_http() {
	local url=$1 deadline=$((SECONDS + $2)) pid=$3
	until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || return 1
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# need_tools CMD...: installs the Debian packages of the same names that are missing.
need_tools() {
	local missing=() sudo=() tool
	for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		[[ $(id -u) -eq 0 ]] || sudo=(sudo)
		timeout 600 "${sudo[@]}" apt-get update -qq
		timeout 900 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
	fi
	command -v python3 >/dev/null || die "python3 is needed"
}

# build [reference]: unless SKIP_BUILD is set, builds cafe (release) and, with `reference`,
# the reference server (bench/reference, into REF_TARGET_DIR); then checks they are there.
build() {
	if [[ -z $SKIP_BUILD ]]; then
		log "building cafe (release)"
		timeout "$BUILD_TIMEOUT" cargo build --release -p cafe >&2
		if [[ ${1:-} == reference ]]; then
			log "building the reference server"
			CARGO_TARGET_DIR=$REF_TARGET_DIR timeout "$BUILD_TIMEOUT" \
				cargo build --release --manifest-path bench/reference/Cargo.toml >&2
		fi
	fi
	[[ -x $CAFE_BIN ]] || die "$CAFE_BIN is missing"
	[[ ${1:-} != reference || -x $REF_BIN ]] || die "$REF_BIN is missing"
}

# run_wrk URL OUTFILE: wrk POST /orders (bench/post_order.lua) with THREADS, CONNECTIONS and
# DURATION_S; its output goes to OUTFILE and to stderr.
run_wrk() {
	timeout $((DURATION_S + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" --latency \
		-s bench/post_order.lua "$1" | tee "$2" >&2
}

# wrk_reference OUTFILE: run_wrk against the reference server (axum + one SQLite insert a
# request), started on a free port for it and stopped after.
wrk_reference() {
	local port pid
	port=$(free_port)
	log "reference server on 127.0.0.1:$port"
	"$REF_BIN" "$port" "$RUN/reference.db" >"$RUN/reference.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_http "http://127.0.0.1:$port/health" 30 "$pid" || die "reference server did not start"
	log "wrk POST /orders against the reference for ${DURATION_S}s"
	run_wrk "http://127.0.0.1:$port/orders" "$1"
	stop_pid "$pid"
}

# place_order WHAT: one POST /orders of $BODY through $GATEWAY (the answer in
# $RUN/first_order.json), which must be a 201; WHAT names it in the message otherwise.
place_order() {
	local code
	code=$(curl -sS -o "$RUN/first_order.json" -w '%{http_code}' --max-time 10 -X POST \
		-H 'Content-Type: application/json' -d "$BODY" "$GATEWAY/orders" || true)
	[[ $code == 201 ]] || die "$1 POST /orders answered $code: $(head -c 300 "$RUN/first_order.json" 2>/dev/null)"
}

# write_siegerc SETTING...: $RUN/siegerc, siege's settings: no log file and no parsing of
# the answers, a new HTTP/1.1 connection a request and no delay between them, then the
# script's SETTINGs ("key = value"), one a line.
write_siegerc() {
	printf '%s\n' "logging = false" "show-logfile = false" "parser = false" "protocol = HTTP/1.1" \
		"connection = close" "delay = 0.0" "$@" >"$RUN/siegerc"
}

# bench_command VAR=DEFAULT...: how to repeat this run: `bash bench/$BENCH` after each
# setting VAR whose value is not its DEFAULT (quoted when it holds more than a word).
bench_command() {
	local command="bash bench/$BENCH" pair var value
	for pair in "$@"; do
		var=${pair%%=*}
		value=${!var}
		[[ $value != "${pair#*=}" ]] || continue
		[[ $value =~ ^[A-Za-z0-9._,:/-]+$ ]] || value="\"$value\""
		command="$var=$value $command"
	done
	printf '%s\n' "$command"
}

# write_meta KEY=VALUE...: $RUN/meta.json for the report: the date, the commit (marked when
# crates or the manifests differ from it), the machine, and the pairs given.
write_meta() {
	local commit machine
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n $(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
		commit="$commit + uncommitted changes"
	fi
	machine="$(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	machine+=", $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
	machine+=", Linux $(uname -r), $(rustc --version 2>/dev/null || echo rustc)"
	python3 - "$RUN/meta.json" "date=$(date -u +%F)" "commit=$commit" "machine=$machine" "$@" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    json.dump(dict(pair.split("=", 1) for pair in sys.argv[2:]), f)
EOF
}

# report SCRIPT: prints the section bench/SCRIPT makes of $RUN, and writes it into $DOCS
# when that is set.
report() {
	echo
	python3 "bench/$1" "$RUN" ${DOCS:+--docs "$DOCS"}
	[[ -z $DOCS ]] || log "written into $DOCS"
}
