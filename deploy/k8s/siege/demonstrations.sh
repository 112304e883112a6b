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
# Knobs: GATEWAY_URL, CONCURRENCY, DURATION, READY_TIMEOUT_SECS, SETTLE_TIMEOUT_SECS.
# Needs siege, curl and jq (the cafe-siege image, deploy/siege/Dockerfile).
set -eu

GATEWAY_URL=${GATEWAY_URL:-http://gateway:8080}
DEMONSTRATION=${DEMONSTRATION:-redeploy}
CONCURRENCY=${CONCURRENCY:-100}
READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS:-600}
SETTLE_TIMEOUT_SECS=${SETTLE_TIMEOUT_SECS:-120}
BODY='{"phoneNumber":"01087654321","productName":"coffee","qty":2,"amt":1000}'
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
siege --rc="$work/siegerc" -c"$CONCURRENCY" -t"$DURATION" --content-type "application/json" \
  "$GATEWAY_URL/orders POST $BODY" >"$work/out" 2>"$work/err" || true
grep -v '^HTTP/' "$work/err" || true

awk '/^HTTP\// { print $2 }' "$work/out" | sort | uniq -c >"$work/codes"
say "answers by status:"; cat "$work/codes"
answered=$(awk '{ n += $1 } END { print n + 0 }' "$work/codes")
unexpected=$(awk -v ok=" $allowed " 'index(ok, " " $2 " ") == 0 { n += $1 } END { print n + 0 }' "$work/codes")
socket_errors=$(grep -c '\[error\]' "$work/err" || true)
status=0
[ "$answered" -gt 0 ] || { say "FAIL: no request was answered" >&2; status=1; }
[ "$unexpected" -eq 0 ] || { say "FAIL: $unexpected answers other than $allowed" >&2; status=1; }
[ "$socket_errors" -eq 0 ] || { say "FAIL: $socket_errors requests failed on the socket or timed out" >&2; status=1; }

# No order without its payment, no approved payment without its order, once the cafe has
# settled (a placement cut short is voided by the order service's reconciler).
approved_payments() {
  page=0; total=0
  while :; do
    body=$(curl -fsS "$GATEWAY_URL/payments?size=1000&page=$page") || return 1
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
  orders=$(curl -fsS "$GATEWAY_URL/orders?size=1" | jq '.page.totalElements') || orders=unknown
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
