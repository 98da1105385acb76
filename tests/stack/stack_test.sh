#!/usr/bin/env bash
# The native stack end to end: tools/stack up, status, demo, down.
#
# Runs on its own run directory and free ports (never the ctest fixtures'
# 17092/17379 nor a development stack's 19092/16379/18080), with the binaries
# of an existing build directory (--no-build: ctest may be running from that
# directory). Checks that
#   - up (with --observability) brings every part up, Prometheus included,
#     and a second up changes nothing;
#   - each service answers /readyz and serves /metrics on its own port, and
#     Prometheus scrapes them (the demo's orders show in its answers);
#   - the demo finishes every sample order of tools/demo-orders.jsonl in the
#     state its "demo-expect" header names, each notified exactly once at the
#     webhook receiver;
#   - down stops everything up started and leaves alone a Redis that was
#     already running in the run directory; no process of the stack remains.
#
# Environment: LEV_BUILD_DIR (required: the build directory with the
# binaries), LEV_STACK_TEST_DIR (run directory, emptied first and removed
# after a pass; default a temporary one).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${LEV_BUILD_DIR:?LEV_BUILD_DIR must name a build directory with the services and evctl}"
run=${LEV_STACK_TEST_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lev-stack-test.XXXXXX")}
PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3

# shellcheck source=checks.sh
. "$root/tests/stack/checks.sh"

# Ports below the ephemeral range, reserved for this run (tests/ports.sh):
# Kafka needs two in a row (client, controller).
# shellcheck source=../ports.sh
. "$root/tests/ports.sh"
unset KAFKA_BOOTSTRAP REDIS_URL
# What an earlier, interrupted run of this test left running in its run dir.
if [ -d "$run/stack" ]; then
  LEV_RUN_DIR="$run" "$root/tools/stack" down --stop-timeout 10 || true
fi
if [ -f "$run/redis/redis.conf" ]; then
  "$root/tools/redis" stop --dir "$run/redis" \
    --port "$(sed -n 's/^port //p' "$run/redis/redis.conf")" || true
fi
stack() { "$root/tools/stack" "$@"; }

cleanup() {
  stack down --stop-timeout 10 >/dev/null 2>&1 || true
  "$root/tools/redis" stop --dir "$run/redis" --port "$rport" >/dev/null 2>&1 || true
}

# A Redis that runs before `up` (started here, as a developer would with
# tools/redis): the stack must use it and leave it running. Then up. A
# server that finds its port taken after all (bound by number elsewhere
# since the reservation) makes the start fail saying so: then everything
# again on ports reserved anew.
rport=""
for attempt in 1 2 3; do
  rm -rf "$run"
  mkdir -p "$run"
  lev_reserve_ports kport 2
  lev_reserve_ports rport
  lev_reserve_ports wport
  lev_reserve_ports hport 3
  lev_reserve_ports pport
  lev_reserve_ports jport 2
  lev_reserve_ports oport
  export LEV_RUN_DIR="$run" LEV_BUILD_DIR LEV_STACK_NO_BUILD=1 LEV_STACK_NO_DEPS=1 \
    LEV_STACK_KAFKA_PORT=$kport LEV_STACK_REDIS_PORT=$rport LEV_STACK_WEBHOOK_PORT=$wport \
    LEV_STACK_HTTP_PORT=$hport LEV_STACK_PROMETHEUS_PORT=$pport LEV_STACK_JAEGER_PORT=$jport \
    LEV_STACK_OTLP_PORT=$oport
  echo "run dir $run; kafka :$kport, redis :$rport, webhook :$wport, services :$hport-$((hport + 2)), prometheus :$pport; binaries from $LEV_BUILD_DIR"
  trap cleanup EXIT
  "$root/tools/redis" start --dir "$run/redis" --port "$rport" 2>"$run/redis-start.err" &&
    redis_rc=0 || redis_rc=$?
  cat "$run/redis-start.err" >&2
  up_rc=1
  if [ "$redis_rc" -eq 0 ]; then
    redis_pid=$(cat "$run/redis/redis.pid")
    t0=$SECONDS
    stack up --observability --timeout 180 >"$run/up.out" 2>&1 && up_rc=0 || up_rc=$?
    cat "$run/up.out"
    echo "   up took $((SECONDS - t0)) s"
  fi
  if [ "$up_rc" -ne 0 ] && [ "$attempt" -lt 3 ] &&
    lev_port_taken "$run/redis-start.err" "$run/up.out" "$run"/redis/redis.log \
      "$run"/kafka/*.log "$run"/webhook/webhook.log "$run"/services/*.log \
      "$run"/prometheus/prometheus.log "$run"/jaeger/jaeger.log; then
    echo "a port was taken after all; again on other ports"
    cleanup
    trap - EXIT
    continue
  fi
  break
done
[ "$redis_rc" -eq 0 ] || { echo "FAIL: tools/redis start"; exit 1; }
expect "tools/stack up" [ "$up_rc" -eq 0 ]
expect "tools/stack status: everything up" stack status
out=$(stack up 2>&1) || true
expect "a second up changes nothing" grep -q "already up" <<<"$out"
expect "up says where the services' endpoints are" \
  grep -q "order-service: http://127.0.0.1:$hport/metrics" <<<"$out"
for port in "$hport" "$((hport + 1))" "$((hport + 2))"; do
  expect "the service on :$port says it is ready" curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"
  expect "the service on :$port serves /metrics" \
    grep -q '^lev_worker_info{' <(curl -fsS "http://127.0.0.1:$port/metrics")
done

# Every pid the stack started, for the check after down.
pids=()
for f in "$run"/services/*.pid "$run/webhook/webhook.pid" "$run/kafka/kafka.pid" \
  "$run/prometheus/prometheus.pid" "$run/jaeger/jaeger.pid"; do
  [ -f "$f" ] && pids+=("$(head -n1 "$f")")
done
expect "pids recorded for 3 services, the webhook receiver, Kafka, Prometheus and Jaeger" \
  [ ${#pids[@]} -eq 7 ]
expect "up says where Jaeger is" grep -q "jaeger: http://127.0.0.1:$jport" <<<"$out"

t0=$SECONDS
stack demo --demo-timeout 120 >"$run/demo.out" 2>&1 && demo_rc=0 || demo_rc=$?
cat "$run/demo.out"
echo "   demo took $((SECONDS - t0)) s"
expect "tools/stack demo exits 0" [ "$demo_rc" -eq 0 ]
# the services traced the demo's orders into Jaeger (spans go every second)
traced=0
for _ in $(seq 1 30); do
  svcs=$(curl -fsS "http://127.0.0.1:$jport/api/services" 2>/dev/null || true)
  if grep -q order-service <<<"$svcs" && grep -q billing-service <<<"$svcs" &&
    grep -q notification-service <<<"$svcs"; then
    traced=1
    break
  fi
  sleep 1
done
expect "the three services' spans reached Jaeger" [ "$traced" -eq 1 ]

# Each sample order's final state, by its case, from the demo's journeys and
# the webhook receiver's record.
"$PYTHON" - "$root/tools/demo-orders.jsonl" "$run/demo/journeys.jsonl" \
  "$run/webhook/notifications.jsonl" >"$run/check.out" <<'EOF' && check_rc=0 || check_rc=$?
import json, sys
template, journeys, hooks = sys.argv[1:4]
cases = [json.loads(l)["headers"] for l in open(template) if l.strip()]
js = {j["case"]: j for j in map(json.loads, open(journeys))}
received = {}
for rec in map(json.loads, open(hooks)):
    if not rec["duplicate"]:
        oid = rec["body"].get("order_id")
        received[oid] = received.get(oid, 0) + 1
bad = 0
for h in cases:
    j = js.get(h["demo-case"])
    if j is None:
        print(f"FAIL: {h['demo-case']}: not in the demo's journeys"); bad += 1; continue
    if j["end"] != h["demo-expect"] or not j["finished"]:
        print(f"FAIL: {h['demo-case']}: ended {j['end']}, expected {h['demo-expect']}"); bad += 1
    else:
        print(f"ok:   {h['demo-case']}: {j['end']}")
    if j["notifications"] != 1 or received.get(j["order_id"]) != 1:
        print(f"FAIL: {h['demo-case']}: {j['notifications']} NotificationSent events, "
              f"{received.get(j['order_id'], 0)} webhook deliveries (want 1 each)"); bad += 1
    else:
        print(f"ok:   {h['demo-case']}: notified once (event and webhook)")
sys.exit(1 if bad else 0)
EOF
cat "$run/check.out"
passes=$((passes + $(grep -c '^ok:' "$run/check.out" || true)))
fails=$((fails + $(grep -c '^FAIL:' "$run/check.out" || true)))
expect "the sample orders' final states could be checked" [ "$check_rc" -ne 2 ]

# Prometheus scraped the demo: order-service's confirmed orders (the
# sample's valid ones) reach it within a few scrapes.
want=$(grep -c '"demo-expect": *"confirmed"' "$root/tools/demo-orders.jsonl" || true)
prom_confirmed() {
  curl -fsS "http://127.0.0.1:$pport/api/v1/query" \
    --data-urlencode 'query=sum(shop_orders_total{job="order-service",state="confirmed"})' |
    "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else -1)'
}
seen=-1
for _ in $(seq 1 120); do
  seen=$(prom_confirmed 2>/dev/null || echo -1)
  [ "$seen" -ge "$want" ] && break
  sleep 0.5
done
expect "Prometheus saw the demo's $want confirmed orders (saw $seen)" [ "$seen" -ge "$want" ]

# More instances per group, then fewer: up starts and stops the difference,
# and the demo still ends every order as expected.
t0=$SECONDS
stack up --scale order=2,billing=2 >"$run/scale-out.out" 2>&1 && rc=0 || rc=$?
expect "up --scale order=2,billing=2 starts a second order and billing instance (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && grep -q "order#2-service ready" "$2" && grep -q "billing#2-service ready" "$2"' \
  _ "$rc" "$run/scale-out.out"
stack status >"$run/scaled-status.out" 2>&1 || true
expect "status lists the second instances up" \
  bash -c 'grep -q "^order#2 *up" "$1" && grep -q "^billing#2 *up" "$1"' _ "$run/scaled-status.out"
stack demo --demo-timeout 120 >"$run/demo-scaled.out" 2>&1 && rc=0 || rc=$?
expect "the demo with two order and billing instances exits 0 (exit $rc)" [ "$rc" -eq 0 ]
stack up --scale order=1 >"$run/scale-in.out" 2>&1 && rc=0 || rc=$?
expect "up --scale order=1 stops the second instances (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && grep -q "scaling in: stopping" "$2"' _ "$rc" "$run/scale-in.out"
stack status >"$run/unscaled-status.out" 2>&1 || true
expect "status lists no second instance" \
  bash -c 'grep -q "^order " "$1" && ! grep -q "#" "$1"' _ "$run/unscaled-status.out"
echo "   scaling out and in took $((SECONDS - t0)) s"

t0=$SECONDS
expect "tools/stack down" stack down
echo "   down took $((SECONDS - t0)) s"

alive() { # running, and not a zombie waiting for its parent
  local st
  st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
left=()
for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
expect "no process the stack started is left (${pids[*]})" [ ${#left[@]} -eq 0 ]
[ ${#left[@]} -eq 0 ] || ps -o pid,stat,args -p "${left[@]}" || true
ports_closed() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return 1; fi
  done
}
expect "nothing listens on the Kafka, webhook, services' and Prometheus' ports" \
  ports_closed "$kport" "$((kport + 1))" "$wport" "$hport" "$((hport + 1))" "$((hport + 2))" "$pport"
expect "the Redis that ran before up still runs (pid $redis_pid)" alive "$redis_pid"
status_rc=0
stack status >/dev/null 2>&1 || status_rc=$?
expect "tools/stack status reports the stack down" [ "$status_rc" -ne 0 ]

"$root/tools/redis" stop --dir "$run/redis" --port "$rport"
trap - EXIT
echo
echo "$passes passed, $fails failed"
if [ "$fails" -eq 0 ]; then rm -rf "$run"; else echo "logs and state kept in $run"; fi
[ "$fails" -eq 0 ]
