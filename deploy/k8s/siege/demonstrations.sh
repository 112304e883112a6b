#!/bin/sh
# The original's siege demonstrations, through the gateway (SPEC section 8):
#
#   DEMONSTRATION=redeploy      (6) siege -c100 -t120s of POST /orders while a service is
#                               rolled (kubectl rollout restart deployment/drink): every
#                               request must be answered 201.
#   DEMONSTRATION=slow-payment  (5) with payment slowed to 400-620 ms (CAFE_PAYMENT_DELAY_MS
#                               on the payment Deployment), siege -c100 -t60s: every request
#                               must be answered, 201 or a fast 503; none may time out or fail
#                               on the socket.
#
# Both then check that no order is half-made: as many orders as approved payments.
#
# Auth is on (SPEC section 9): the script signs in as the manager (POST /auth/token with
# MANAGER_PASSWORD, the Job takes it from the Secret cafe-manager) and sends the token with
# every request. A manager places orders for a phone number given in the body, at the menu's
# price (no `amt`). Without MANAGER_PASSWORD it runs the original's open requests (client-sent
# `amt`, no token), which only a cafe started with `--auth off` accepts; the Job always sets it.
# The gateway limits each client (CAFE_RATE_LIMIT, 100 requests/s) and this load comes from
# one: lift the limit for the run (deploy/k8s/siege/kustomization.yaml), or the 429s fail it.
# Knobs: GATEWAY_URL, CONCURRENCY, DURATION, READY_TIMEOUT_SECS, SETTLE_TIMEOUT_SECS,
# MANAGER_USER, MANAGER_PASSWORD.
# Needs siege, curl and jq (the cafe-siege image, deploy/siege/Dockerfile).
set -eu

GATEWAY_URL=${GATEWAY_URL:-http://gateway:8080}
DEMONSTRATION=${DEMONSTRATION:-redeploy}
CONCURRENCY=${CONCURRENCY:-100}
READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS:-600}
SETTLE_TIMEOUT_SECS=${SETTLE_TIMEOUT_SECS:-120}
MANAGER_USER=${MANAGER_USER:-manager}
MANAGER_PASSWORD=${MANAGER_PASSWORD:-}
if [ -n "$MANAGER_PASSWORD" ]; then
  BODY='{"phoneNumber":"01087654321","productName":"coffee","qty":2}'
else
  BODY='{"phoneNumber":"01087654321","productName":"coffee","qty":2,"amt":1000}'
fi
case $DEMONSTRATION in
  redeploy) DURATION=${DURATION:-120s}; allowed='201' ;;
  slow-payment) DURATION=${DURATION:-60s}; allowed='201 503' ;;
  *) echo "siege: DEMONSTRATION must be redeploy or slow-payment, not '$DEMONSTRATION'" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "siege: $*"; }

say "waiting for $GATEWAY_URL to be ready"
waited=0
until curl -fsS -o /dev/null "$GATEWAY_URL/actuator/health/readiness"; do
  [ "$waited" -lt "$READY_TIMEOUT_SECS" ] || { say "gateway not ready after ${READY_TIMEOUT_SECS}s" >&2; exit 1; }
  sleep 5; waited=$((waited + 5))
done

# The manager's token, in $work/authorization as an HTTP header line (never printed): signs
# in again when called, so a long wait cannot outlive the token (people's tokens live 1 h).
# identity may become ready after the gateway: keep trying until READY_TIMEOUT_SECS.
sign_in() {
  [ -n "$MANAGER_PASSWORD" ] || { : >"$work/authorization"; return 0; }
  jq -n --arg u "$MANAGER_USER" --arg p "$MANAGER_PASSWORD" '{username: $u, password: $p}' >"$work/credentials"
  tries=0
  while :; do
    code=$(curl -sS -o "$work/token.json" -w '%{http_code}' -H 'Content-Type: application/json' \
      --data-binary "@$work/credentials" "$GATEWAY_URL/auth/token" || true)
    [ "$code" != 200 ] || break
    # A wrong password is not retried: five failures in a minute lock the name (429).
    [ "$code" != 401 ] || { say "sign-in as $MANAGER_USER refused (401): check MANAGER_PASSWORD" >&2; exit 1; }
    [ "$tries" -lt "$READY_TIMEOUT_SECS" ] || { say "could not sign in as $MANAGER_USER (last answer $code)" >&2; exit 1; }
    sleep 5; tries=$((tries + 5))
  done
  token=$(jq -er '.access_token' "$work/token.json") || { say "sign-in answered no access_token" >&2; exit 1; }
  printf 'Authorization: Bearer %s' "$token" >"$work/authorization"
  rm -f "$work/token.json"
}
# curl with the token, if there is one (-H @file keeps it off the command line).
api() {
  if [ -s "$work/authorization" ]; then curl -fsS -H "@$work/authorization" "$@"; else curl -fsS "$@"; fi
}
if [ -n "$MANAGER_PASSWORD" ]; then
  sign_in
  say "signed in as $MANAGER_USER"
else
  : >"$work/authorization"
  say "no MANAGER_PASSWORD: the original's open requests, for a cafe run with --auth off"
fi

# Every failure counts and is shown, none ends the run (siege's default gives up after 1024).
cat >"$work/siegerc" <<RC
verbose = true
color = off
show-logfile = false
logging = false
json_output = false
failures = 100000000
timeout = 30
RC
say "demonstration $DEMONSTRATION: siege -c$CONCURRENCY -t$DURATION POST $GATEWAY_URL/orders"
if [ -s "$work/authorization" ]; then
  siege --rc="$work/siegerc" -c"$CONCURRENCY" -t"$DURATION" --content-type "application/json" \
    --header="$(cat "$work/authorization")" "$GATEWAY_URL/orders POST $BODY" >"$work/out" 2>"$work/err" || true
else
  siege --rc="$work/siegerc" -c"$CONCURRENCY" -t"$DURATION" --content-type "application/json" \
    "$GATEWAY_URL/orders POST $BODY" >"$work/out" 2>"$work/err" || true
fi
grep -v '^HTTP/' "$work/err" || true

awk '/^HTTP\// { print $2 }' "$work/out" | sort | uniq -c >"$work/codes"
say "answers by status:"; cat "$work/codes"
answered=$(awk '{ n += $1 } END { print n + 0 }' "$work/codes")
unexpected=$(awk -v ok=" $allowed " 'index(ok, " " $2 " ") == 0 { n += $1 } END { print n + 0 }' "$work/codes")
socket_errors=$(grep -c '\[error\]' "$work/err" || true)
status=0
[ "$answered" -gt 0 ] || { say "FAIL: no request was answered" >&2; status=1; }
[ "$unexpected" -eq 0 ] || { say "FAIL: $unexpected answers other than $allowed" >&2; status=1; }
limited=$(awk '$2 == 429 { n += $1 } END { print n + 0 }' "$work/codes")
[ "$limited" -eq 0 ] || say "$limited answers were the gateway's per-client limit (429): run the load test with CAFE_RATE_LIMIT=0 on the gateway" >&2
[ "$socket_errors" -eq 0 ] || { say "FAIL: $socket_errors requests failed on the socket or timed out" >&2; status=1; }

# No order without its payment, no approved payment without its order, once the cafe has
# settled (a placement cut short is voided by the order service's reconciler).
[ -z "$MANAGER_PASSWORD" ] || sign_in
approved_payments() {
  page=0; total=0
  while :; do
    body=$(api "$GATEWAY_URL/payments?size=1000&page=$page") || return 1
    n=$(printf '%s' "$body" | jq '[._embedded.payments[]? | select(.status == "Approved")] | length')
    total=$((total + n))
    pages=$(printf '%s' "$body" | jq '.page.totalPages')
    page=$((page + 1))
    [ "$page" -lt "$pages" ] || break
  done
  echo "$total"
}
waited=0
while :; do
  orders=$(api "$GATEWAY_URL/orders?size=1" | jq '.page.totalElements') || orders=unknown
  approved=$(approved_payments) || approved=unknown
  [ "$orders" != "$approved" ] || break
  if [ "$waited" -ge "$SETTLE_TIMEOUT_SECS" ]; then
    say "FAIL: $orders orders but $approved approved payments after ${SETTLE_TIMEOUT_SECS}s" >&2
    exit 1
  fi
  sleep 2; waited=$((waited + 2))
done
say "$orders orders, $approved approved payments"
[ "$status" -eq 0 ] && say "PASS: demonstration $DEMONSTRATION" || say "FAIL: demonstration $DEMONSTRATION" >&2
exit "$status"
