#!/usr/bin/env bash
# Fuzzes the public API with schemathesis, from the gateway's own description
# (`GET /openapi.json`), three times: as a manager, as a customer (both on one `cafe up` with
# auth on) and with no token on a second `cafe up --auth off`. Each run checks that nothing
# answers 5xx and that every status code, content type, header and body is the one the
# description documents. Exits non-zero if any run finds a failure.
#
# Installs schemathesis (a pinned version) into a virtualenv of its own, made with
# `python3 -m venv` (apt-get installs python3-venv if that fails), and reuses it next time.
# The cafe runs on free ports with fresh data and log directories under a temporary
# directory; its logs stay there afterwards with the reports (JUnit XML and the text output
# of each run), its databases do not.
#
#   bash scripts/fuzz.sh                         the three runs, fixed seed
#   CAFE_FUZZ_SEED=123 bash scripts/fuzz.sh      another seed (the same one reproduces a run)
#   CAFE_FUZZ_RANDOM=1 bash scripts/fuzz.sh      a random seed, printed
#
# Under CI (CI=true) the fixed seed's three runs are followed by one more as a manager with a
# random seed, printed with the line that reproduces it: the fixed runs keep CI repeatable,
# the random one keeps finding what they cannot.
#
# Environment:
#   CAFE_BIN                the `cafe` binary (default: build it, `cargo build --bin cafe`)
#   CAFE_FUZZ_VENV          the virtualenv (default ~/.cache/cafe/schemathesis-<version>)
#   CAFE_FUZZ_SCHEMA        an OpenAPI file to use instead of the gateway's /openapi.json
#   CAFE_FUZZ_SEED          the seed (default 20250101); CAFE_FUZZ_RANDOM=1 picks one
#   CAFE_FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 25)
#   CAFE_FUZZ_PHASES        schemathesis phases (default examples,coverage,fuzzing,stateful)
#   CAFE_FUZZ_WORKERS       concurrent schemathesis workers (default 1: hypothesis, under
#                           schemathesis, can fail with a runtime error of its own when two
#                           workers build strategies at once)
#   CAFE_FUZZ_RUNS          which runs, of "manager customer open" (default all three)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Checks each description against the OpenAPI 3.1 schema before any fuzzing.
SPEC_VALIDATOR_VERSION=0.9.0
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance

die() { echo "fuzz.sh: $*" >&2; exit 1; }
say() { echo "fuzz.sh: $*" >&2; }

# --- schemathesis, in its own virtualenv ------------------------------------------------
venv="${CAFE_FUZZ_VENV:-$HOME/.cache/cafe/schemathesis-$SCHEMATHESIS_VERSION-$SPEC_VALIDATOR_VERSION}"
st="$venv/bin/schemathesis"
installed() {
  "$st" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION" &&
    "$venv/bin/python" -c 'import sys, importlib.metadata as m; sys.exit(m.version("openapi-spec-validator") != sys.argv[1])' \
      "$SPEC_VALIDATOR_VERSION" 2>/dev/null
}
if ! installed; then
  command -v python3 >/dev/null || die "python3 is missing (schemathesis needs Python 3.9 or newer)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    say "python3 -m venv failed; installing python3-venv (apt-get install python3-venv)"
    command -v apt-get >/dev/null || die "python3 cannot make a virtualenv and there is no apt-get to install python3-venv"
    sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
    $sudo_ apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq python3-venv >/dev/null \
      || die "cannot install python3-venv"
    python3 -m venv "$venv" || { rm -rf "$venv"; die "python3 -m venv still fails after installing python3-venv"; }
  fi
  say "installing schemathesis==$SCHEMATHESIS_VERSION and openapi-spec-validator==$SPEC_VALIDATOR_VERSION into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    "openapi-spec-validator==$SPEC_VALIDATOR_VERSION" \
    || { rm -rf "$venv"; die "cannot install schemathesis==$SCHEMATHESIS_VERSION and openapi-spec-validator"; }
  installed || die "schemathesis or openapi-spec-validator does not run from $venv"
fi
py="$venv/bin/python"
command -v curl >/dev/null || die "curl is missing"

# --- the cafe binary --------------------------------------------------------------------
if [ -z "${CAFE_BIN:-}" ]; then
  cargo build --bin cafe
  CAFE_BIN="${CARGO_TARGET_DIR:-target}/debug/cafe"
fi
[ -x "$CAFE_BIN" ] || die "no cafe binary at $CAFE_BIN"

# --- settings ---------------------------------------------------------------------------
if [ "${CAFE_FUZZ_RANDOM:-0}" = 1 ]; then
  seed=$(( (RANDOM << 15 | RANDOM) ))
  say "random seed: $seed"
else
  seed="${CAFE_FUZZ_SEED:-20250101}"
fi
[[ "$seed" =~ ^[0-9]+$ ]] || die "the seed must be a number, not '$seed'"
max_examples="${CAFE_FUZZ_MAX_EXAMPLES:-25}"
phases="${CAFE_FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"
workers="${CAFE_FUZZ_WORKERS:-1}"
runs="${CAFE_FUZZ_RUNS:-manager customer open}"
if [ -n "${CAFE_FUZZ_SCHEMA:-}" ]; then
  [ -f "$CAFE_FUZZ_SCHEMA" ] || die "CAFE_FUZZ_SCHEMA=$CAFE_FUZZ_SCHEMA is not a file"
  CAFE_FUZZ_SCHEMA="$(cd "$(dirname "$CAFE_FUZZ_SCHEMA")" && pwd)/$(basename "$CAFE_FUZZ_SCHEMA")"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/cafe-fuzz.XXXXXX")"
reports="$work/reports"
mkdir -p "$reports"

# --- the cafe processes (and the running fuzzer): started here, always stopped on exit ----
pids=()
fuzzer=""
stop_cafes() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  local rc=$?
  if [ -n "$fuzzer" ]; then
    kill -TERM "$fuzzer" 2>/dev/null || true
    wait "$fuzzer" 2>/dev/null || true
  fi
  stop_cafes
  # The databases go; the reports and the cafe's logs stay.
  rm -rf "$work"/*/data
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_cafe NAME FLAGS...: `cafe up` on free ports with fresh directories under $work/NAME;
# sets $gateway once the gateway answers ready. Fails after 60 s.
start_cafe() {
  local name=$1; shift
  local dir="$work/$name"
  mkdir -p "$dir"
  # Made here: the child opens it only once it runs, after the first look below may come.
  : >"$dir/stdout"
  "$CAFE_BIN" up --port 0 --data-dir "$dir/data" --log-dir "$dir/logs" "$@" >"$dir/stdout" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local deadline=$((SECONDS + 60))
  gateway=""
  while [ -z "$gateway" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/stdout" >&2; die "cafe up ($name) exited before it was up"; }
    [ "$SECONDS" -lt "$deadline" ] || { cat "$dir/stdout" >&2; die "cafe up ($name) did not say where it listens within 60 s"; }
    gateway="$(sed -n 's/^cafe up: gateway=\([^ ]*\).*/\1/p' "$dir/stdout")"
    [ -n "$gateway" ] || sleep 0.1
  done
  until curl -fsS -o /dev/null "$gateway/actuator/health/readiness" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/stdout" >&2; die "cafe up ($name) exited before it was ready"; }
    [ "$SECONDS" -lt "$deadline" ] || die "the gateway of cafe up ($name) was not ready within 60 s"
    sleep 0.1
  done
  say "cafe up ($name): gateway $gateway, logs in $dir/logs"
}

# token USERNAME PASSWORD: a bearer token from POST /auth/token.
token() {
  local body
  body="$("$py" -c 'import json, sys; print(json.dumps({"username": sys.argv[1], "password": sys.argv[2]}))' "$1" "$2")"
  curl -fsS -X POST "$gateway/auth/token" -H 'Content-Type: application/json' --data-binary @- <<<"$body" \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' \
    || die "cannot get a token for '$1'"
}

# place_orders TOKEN PHONE: three orders of the menu's first product, so the items and
# searches the fuzzer asks for by small ids (1, 2, 3: the boundary it tries first) exist and
# it reaches the operations' real answers, not only their 404s. TOKEN may be empty (auth off).
place_orders() {
  local token=$1 phone=$2 body auth=()
  [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
  body="$(curl -fsS "$gateway/menu" | "$py" -c '
import json, sys
item = json.load(sys.stdin)["_embedded"]["menu"][0]
print(json.dumps({"phoneNumber": sys.argv[1], "productName": item["productName"], "qty": 1, "amt": item["price"]}))' "$phone")" \
    || die "cannot read the menu"
  for _ in 1 2 3; do
    curl -fsS -o /dev/null -X POST "$gateway/orders" "${auth[@]}" -H 'Content-Type: application/json' --data-binary @- <<<"$body" \
      || die "cannot place an order for $phone"
  done
}

# validate NAME FILE: FILE is a valid OpenAPI 3.1 document, or the script fails here.
validate() {
  "$py" - "$2" <<'PY' || die "$1: not a valid OpenAPI 3.1 description ($2)"
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
with open(sys.argv[1]) as f:
    doc = json.load(f)
assert doc.get("openapi") == "3.1.0", "openapi: %r" % doc.get("openapi")
validate(doc, cls=OpenAPIV31SpecValidator)
PY
  say "$1: a valid OpenAPI 3.1 description ($(grep -o '"operationId"' "$2" | wc -l) operations)"
}

# The gateway's description as served, and each service's own (`cafe openapi SERVICE`).
validate_descriptions() {
  mkdir -p "$work/descriptions"
  curl -fsS -o "$work/descriptions/gateway.json" "$gateway/openapi.json" \
    || die "the gateway serves no OpenAPI description at $gateway/openapi.json"
  validate "the gateway's /openapi.json" "$work/descriptions/gateway.json"
  local service
  for service in order payment drink customercenter delivery deliverycenter identity; do
    "$CAFE_BIN" openapi "$service" >"$work/descriptions/$service.json" || die "cafe openapi $service failed"
    validate "$service's description" "$work/descriptions/$service.json"
  done
}

failed=()
# fuzz NAME [TOKEN [SEED]]: one schemathesis run against $gateway (with $seed if no SEED).
fuzz() {
  local name=$1 token=${2:-}
  local location="${CAFE_FUZZ_SCHEMA:-$gateway/openapi.json}"
  if [ -z "${CAFE_FUZZ_SCHEMA:-}" ]; then
    curl -fsS -o /dev/null "$location" || die "the gateway serves no OpenAPI description at $location"
  fi
  local args=(
    run "$location"
    --url "$gateway"
    --checks "$CHECKS"
    --phases "$phases"
    --max-examples "$max_examples"
    --seed "${3:-$seed}"
    --workers "$workers"
    --generation-database none
    --generation-with-security-parameters false
    --request-timeout 15
    --wait-for-schema 30
    --report junit
    --report-junit-path "$reports/$name.xml"
    --report-dir "$reports"
  )
  [ -n "$token" ] && args+=(--header "Authorization: Bearer $token")
  say "run '$name': schemathesis ${args[*]/#Authorization: Bearer */Authorization: Bearer ***}"
  local started=$SECONDS rc=0
  # In the background and waited for, so a signal stops the run at once (see cleanup).
  # From the work directory: schemathesis keeps a cache (.schemathesis/) where it runs.
  (cd "$work" && exec "$st" "${args[@]}") > >(tee "$reports/$name.txt") 2>&1 &
  fuzzer=$!
  wait "$fuzzer" || rc=$?
  fuzzer=""
  say "run '$name': exit $rc after $((SECONDS - started)) s; output in $reports/$name.txt"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

wants() { [[ " $runs " == *" $1 "* ]]; }

# --- auth on: a manager and a customer --------------------------------------------------
if wants manager || wants customer; then
  # --rate-limit 0: no 429 for the one subject the fuzzer signs in as, so every request
  # reaches the operation it is testing.
  start_cafe auth --auth on --rate-limit 0
  [ -n "${CAFE_FUZZ_SCHEMA:-}" ] || validate_descriptions
  password_file="$work/auth/data/manager-password"
  [ -s "$password_file" ] || die "no manager password in $password_file"
  manager_token="$(token manager "$(head -n1 "$password_file")")"
  phone="010$(printf '%08d' $(( (RANDOM << 15 | RANDOM) % 100000000 )))"
  customer_password="fuzz-customer-$seed"
  body="$("$py" -c 'import json, sys; print(json.dumps({"phoneNumber": sys.argv[1], "password": sys.argv[2]}))' "$phone" "$customer_password")"
  curl -fsS -o /dev/null -X POST "$gateway/customers" -H 'Content-Type: application/json' --data-binary @- <<<"$body" \
    || die "cannot register the customer $phone"
  customer_token="$(token "$phone" "$customer_password")"
  place_orders "$customer_token" "$phone"
  wants manager && fuzz manager "$manager_token"
  wants customer && fuzz customer "$customer_token"
  if [ "${CI:-}" = true ] && [ "${CAFE_FUZZ_RANDOM:-0}" != 1 ]; then
    random_seed=$(( (RANDOM << 15 | RANDOM) ))
    say "CI: one more run as a manager with a random seed, $random_seed"
    say "    to reproduce it: CAFE_FUZZ_SEED=$random_seed CAFE_FUZZ_RUNS=manager bash scripts/fuzz.sh"
    fuzz "manager-seed-$random_seed" "$manager_token" "$random_seed"
  fi
  stop_cafes
fi

# --- auth off: the open API, no token -----------------------------------------------------
if wants open; then
  start_cafe open --auth off
  place_orders "" "01000000001"
  fuzz open
  stop_cafes
fi

say "reports (JUnit XML, text) in $reports"
say "to reproduce: CAFE_FUZZ_SEED=$seed CAFE_FUZZ_MAX_EXAMPLES=$max_examples CAFE_FUZZ_PHASES=$phases CAFE_FUZZ_RUNS=\"$runs\" bash scripts/fuzz.sh"
if ((${#failed[@]})); then
  die "failures found in: ${failed[*]} (see the output above and $reports)"
fi
say "no failures"
