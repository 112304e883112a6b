#!/usr/bin/env bash
# The cost of checking tokens: `POST /orders` through the gateway of `cafe up`, once with
# auth on (a manager's token on every request, checked by order; order's service token
# checked by payment) and once in open mode (`--auth off`), beside the same-run reference.
#
#   bash bench/auth.sh
#
# Everything listens on 127.0.0.1 only; every step has a time bound. Settings (environment):
#   DURATION_S=20 THREADS=2 CONNECTIONS=100 DOCS=docs/BENCHMARKS.md SKIP_BUILD=1 KEEP_RUN=1
set -euo pipefail

BENCH=auth.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rate() { awk '/^Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
created() { awk '$1 == "created" {print $2}' "$1"; }

need_tools wrk curl python3
build reference
wrk_reference "$RUN/ref.txt"

for mode in off on; do
	BASE=$(free_base)
	launch "cafe-$mode" 'cafe up:' up --port "$BASE" --data-dir "$RUN/data-$mode" --log-dir "$RUN/logs-$mode" \
		--auth "$mode" --rate-limit 0
	GATEWAY="http://127.0.0.1:$BASE"
	wait_http "$GATEWAY/actuator/health" 120 "$CAFE_PID" || die "the gateway never answered"
	CAFE_TOKEN=
	if [[ $mode == on ]]; then
		password=$(cat "$RUN/data-on/manager-password")
		CAFE_TOKEN=$(curl -sS --max-time 10 "$GATEWAY/auth/token" -H 'Content-Type: application/json' \
			-d "{\"username\":\"manager\",\"password\":\"$password\"}" |
			sed -E 's/.*"access_token":"([^"]+)".*/\1/')
		[[ -n $CAFE_TOKEN ]] || die "could not sign in as the manager"
	fi
	export CAFE_TOKEN
	log "wrk POST /orders through the gateway, auth $mode"
	run_wrk "$GATEWAY/orders" "$RUN/cafe-$mode.txt"
	stop_pid "$CAFE_PID"
done

REF=$(rate "$RUN/ref.txt")
OFF=$(rate "$RUN/cafe-off.txt")
ON=$(rate "$RUN/cafe-on.txt")
SECTION=$(python3 - "$REF" "$OFF" "$ON" "$(p99 "$RUN/cafe-off.txt")" "$(p99 "$RUN/cafe-on.txt")" \
	"$(created "$RUN/cafe-off.txt")" "$(created "$RUN/cafe-on.txt")" "$(nproc)" "$(git rev-parse --short HEAD)" <<'PY'
import sys
ref, off, on, p99_off, p99_on, made_off, made_on, cores, commit = sys.argv[1:]
ref, off, on = float(ref), float(off), float(on)
print(f"""## Auth: the cost of checking tokens on every hop

`bash bench/auth.sh` (commit {commit}, {cores} cores, wrk -t2 -c100, 20 s each, one run):
`POST /orders` through the gateway of `cafe up --rate-limit 0`, open (`--auth off`) and with
auth on (a manager's token on every request, checked by order; order's own service token
checked by payment), beside the same-run reference (axum + one SQLite insert).

| run | orders/s | of the reference | p99 | created |
|---|---|---|---|---|
| reference | {ref:,.0f} | 100 % | | |
| cafe, auth off | {off:,.0f} | {100 * off / ref:.1f} % | {p99_off} | {made_off} |
| cafe, auth on | {on:,.0f} | {100 * on / ref:.1f} % | {p99_on} | {made_on} |

With auth on the cafe takes {on / off:.3f} × the orders a second of open mode (target: at least 0.90).
A token is verified once per process and then answered from the verifier's cache; what
verifying costs per request is measured by `cargo bench -p platform --bench verify` (below).
""")
PY
)
printf '%s\n' "$SECTION"
if [[ -n $DOCS ]]; then
	python3 - "$DOCS" "$SECTION" <<'PY'
import sys
sys.path.insert(0, "bench")
import section
section.write_docs(sys.argv[1], sys.argv[2])
PY
	log "written into $DOCS"
fi
