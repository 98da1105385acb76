#!/usr/bin/env bash
# The stack under docker compose, for real: compose.yaml and the Dockerfile run.
#
#   1. tools/compose setup: a Docker engine (found, or started on a socket of
#      its own), compose v2, the public images or their stand-ins;
#   2. the project's image built, `docker compose up --wait` on ports of
#      this test and a project name of its own;
#   3. the sample orders of tools/demo-orders.jsonl, repeated with fresh
#      ids, published through compose (`docker compose run -T topics evctl
#      publish -`) in two halves: billing-service is killed with SIGKILL
#      as soon as it has charged the first half's first orders; the second
#      half goes out while it is down; then it is started again;
#   4. every order ends as its "demo-expect" header says, is notified once
#      (one NotificationSent event, one delivery at the webhook receiver):
#      nothing is lost to the kill, nothing happens twice;
#   5. `docker compose down -v` leaves no container, volume or network of
#      the project; an engine this test started is stopped.
# Each step prints how long it took.
#
# Environment: LEV_BUILD_DIR (required: a build with evctl, used from the
# host to follow the orders), LEV_COMPOSE_TEST_DIR (work directory;
# default a temporary one), LEV_COMPOSE_REPEAT (copies of the sample
# orders, default 40).
# Exit 77 (skipped) when no engine answers and none can be started (not
# root): the only case that is not a failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${LEV_BUILD_DIR:?LEV_BUILD_DIR must name a build directory with evctl}"
work=${LEV_COMPOSE_TEST_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lev-compose-test.XXXXXX")}
repeat=${LEV_COMPOSE_REPEAT:-40}
EVCTL="$LEV_BUILD_DIR/tools/evctl/evctl"
PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
rm -rf "$work"
mkdir -p "$work"

# shellcheck source=checks.sh
. "$root/tests/stack/checks.sh"

# An engine of tools/compose's own that answers before setup is someone
# else's: only one started here is stopped at the end.
own_sock=${LEV_DOCKER_RUN:-/run/libevents-docker}/docker.sock
had_engine=0
if [ -n "${DOCKER_HOST:-}" ] || timeout 10 docker version >/dev/null 2>&1 ||
  DOCKER_HOST="unix://$own_sock" timeout 10 docker version >/dev/null 2>&1; then
  had_engine=1
elif [ "$(id -u)" != 0 ]; then
  echo "SKIP: no Docker engine answers and starting one needs root"
  exit 77
fi

timed "setup (engine, compose, images)" - "$root/tools/compose" setup ||
  { echo "FAIL: tools/compose setup"; exit 1; }
eval "$("$root/tools/compose" env 2>/dev/null)"
echo "   engine $DOCKER_HOST, compose: $COMPOSE"

# Ports below the ephemeral range, reserved for this run (tests/ports.sh).
# shellcheck source=../ports.sh
. "$root/tests/ports.sh"
lev_reserve_ports kport
lev_reserve_ports rport
lev_reserve_ports wport
lev_reserve_ports hport 3
export LEV_COMPOSE_KAFKA_PORT=$kport LEV_COMPOSE_REDIS_PORT=$rport \
  LEV_COMPOSE_WEBHOOK_PORT=$wport LEV_COMPOSE_ORDER_PORT=$hport \
  LEV_COMPOSE_BILLING_PORT=$((hport + 1)) LEV_COMPOSE_NOTIFICATION_PORT=$((hport + 2))
project="levtest$$"
# shellcheck disable=SC2086 # COMPOSE is a command with its arguments
dc() { $COMPOSE -f "$root/compose.yaml" -p "$project" "$@"; }
echo "project $project; kafka :$kport, redis :$rport, webhook :$wport, services :$hport-$((hport + 2)); work dir $work"

project_left() { # what of the project the engine still has, one line each
  local kind
  for kind in container volume network; do
    case $kind in
      container) docker ps -aq --filter "label=com.docker.compose.project=$project" ;;
      *) docker "$kind" ls -q --filter "label=com.docker.compose.project=$project" ;;
    esac | sed "s/^/$kind /"
  done
}
cleanup() {
  dc down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  if [ "$had_engine" = 0 ]; then "$root/tools/compose" engine-stop || true; fi
}
trap cleanup EXIT

timed "build the project's image" "$work/build.out" dc build ||
  { tail -n 40 "$work/build.out"; echo "FAIL: docker compose build"; exit 1; }
ok "docker compose build"
up_rc=0
timed "up --wait" "$work/up.out" dc up -d --wait --wait-timeout 300 || up_rc=$?
if [ "$up_rc" -ne 0 ]; then
  cat "$work/up.out"
  dc ps -a || true
  dc logs --no-color --tail 40 || true
  echo "FAIL: docker compose up --wait"
  exit 1
fi
ok "docker compose up --wait: every service healthy"
for port in "$hport" "$((hport + 1))" "$((hport + 2))"; do
  expect "the service published on :$port is ready" \
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"
done

# The orders: the samples, $repeat times, each line with a fresh id.
template="$work/template.jsonl"
for ((i = 0; i < repeat; i++)); do grep -v '^[[:space:]]*$' "$root/tools/demo-orders.jsonl"; done >"$template"
"$PYTHON" "$root/tools/stack-demo.py" prepare "$template" "$work/orders.jsonl" >/dev/null
n=$(wc -l <"$work/orders.jsonl")
half=$((n / 2))
head -n "$half" "$work/orders.jsonl" >"$work/orders-1.jsonl"
tail -n +"$((half + 1))" "$work/orders.jsonl" >"$work/orders-2.jsonl"
publish() { # publish PART: 0 when evctl published every line
  timed "publish $(wc -l <"$work/orders-$1.jsonl") orders through compose" \
    "$work/publish-$1.out" dc run --rm -T topics evctl publish - <"$work/orders-$1.jsonl" ||
    { tail -n 20 "$work/publish-$1.out"; return 1; }
}
payments_so_far() { # records in the payments topic (all of this test's)
  KAFKA_BOOTSTRAP="127.0.0.1:$kport" LEV_SCHEMA_DIRS="$root/schemas" \
    "$EVCTL" tail payments --from beginning --quiet 2>/dev/null | grep -c . || true
}

# While the first half is published, billing-service dies with SIGKILL as
# soon as it has written its first payments (in the middle of its work);
# the second half goes out while it is down; then it comes back and must
# finish both, each order charged and notified once.
accepted=$(grep -c '"demo-expect": *"\(confirmed\|cancelled\)"' "$work/orders-1.jsonl" || true)
publish 1 &
publisher=$!
seen=0
for _ in $(seq 1 300); do
  seen=$(payments_so_far)
  [ "$seen" -gt 0 ] && break
  sleep 0.1
done
expect "billing-service killed with SIGKILL" dc kill -s SIGKILL billing-service
state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' \
  "$(dc ps -aq billing-service)" 2>/dev/null || echo unknown)
echo "   billing-service after the kill: $state; payments written when it was killed: $seen, after: $(payments_so_far) (of $accepted accepted in the first half)"
wait "$publisher" && ok "evctl publish through compose (first half)" ||
  fail "evctl publish through compose (first half)"
publish 2 && ok "evctl publish through compose (second half)" ||
  fail "evctl publish through compose (second half)"
timed "billing-service started again" "$work/restart.out" \
  dc up -d --wait --wait-timeout 120 billing-service && ok "billing-service up again and healthy" ||
  { cat "$work/restart.out"; fail "billing-service up again"; }

# Every order's journey, read from the host through the broker's host
# listener with the build's evctl.
rc=0
timed "every order finished" "$work/report.out" env KAFKA_BOOTSTRAP="127.0.0.1:$kport" \
  LEV_SCHEMA_DIRS="$root/schemas" LEV_TOPICS_FILE="$root/tools/topics.json" \
  "$PYTHON" "$root/tools/stack-demo.py" report "$work/orders.jsonl" --evctl "$EVCTL" \
  --timeout 240 --json-out "$work/journeys.jsonl" || rc=$?
tail -n 12 "$work/report.out"
expect "every one of the $n orders ended as expected (report exit $rc)" [ "$rc" -eq 0 ]

# The webhook receiver's record, from its volume.
dc exec -T webhook cat /data/notifications.jsonl >"$work/notifications.jsonl" 2>"$work/exec.err" ||
  cat "$work/exec.err"
"$PYTHON" - "$work/journeys.jsonl" "$work/notifications.jsonl" <<'EOF' && check_rc=0 || check_rc=$?
import json, sys
journeys = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
received = {}
for rec in map(json.loads, (l for l in open(sys.argv[2]) if l.strip())):
    if not rec["duplicate"]:
        oid = rec["body"].get("order_id")
        received[oid] = received.get(oid, 0) + 1
bad = [j for j in journeys if j["notifications"] != 1 or received.get(j["order_id"]) != 1]
for j in bad[:10]:
    print(f"  {j['order_id']}: {j['notifications']} NotificationSent, "
          f"{received.get(j['order_id'], 0)} webhook deliveries (want 1 each)")
print(f"   {len(journeys) - len(bad)} of {len(journeys)} orders notified exactly once")
sys.exit(1 if bad or not journeys else 0)
EOF
expect "each order notified exactly once (event and webhook delivery)" [ "$check_rc" -eq 0 ]

timed "down -v" "$work/down.out" dc down -v --remove-orphans --timeout 30 ||
  { cat "$work/down.out"; fail "docker compose down -v"; }
left=$(project_left)
expect "nothing of the project is left (containers, volumes, networks)" [ -z "$left" ]
[ -z "$left" ] || echo "$left"

trap - EXIT
if [ "$had_engine" = 0 ]; then timed "engine stopped" - "$root/tools/compose" engine-stop; fi
echo "compose test: $passes passed, $fails failed"
if [ "$fails" -eq 0 ]; then
  rm -rf "$work"
  exit 0
fi
exit 1
