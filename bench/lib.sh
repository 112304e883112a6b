# Shared by the bench scripts: a run directory, the processes started (stopped on exit),
# free ports below the ephemeral range, and waiting for HTTP. Source it after setting
# BENCH (the script's name, for messages) and, optionally, KEEP_RUN.

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
# $RUN/NAME.out and $RUN/NAME.err) and waits, at most STARTUP_TIMEOUT seconds (default 120),
# until it prints a line starting with LINE. Sets CAFE_PID (also kept in PIDS, stopped on
# exit) and READY (that line), and logs it.
launch() {
	local name=$1 line=$2 deadline
	shift 2
	log "cafe $*"
	"$CAFE_BIN" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
	CAFE_PID=$!
	PIDS+=("$CAFE_PID")
	deadline=$((SECONDS + ${STARTUP_TIMEOUT:-120}))
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
