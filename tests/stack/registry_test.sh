#!/usr/bin/env bash
# The workflow in the Confluent wire format, against a real schema registry
# (tools/schema-registry: Apicurio Registry) and Confluent's own Python
# client (confluent-kafka, tests/stack/confluent_client.py):
#   1. tools/stack demo --wire confluent: every sample order ends as its
#      "demo-expect" header says; the schemas are registered under
#      <topic>-<record name>; every record on orders is Confluent-framed;
#   2. interop: an OrderPlaced written by confluent-kafka's AvroSerializer is
#      handled by the services, and confluent-kafka's AvroDeserializer reads
#      every record the services and evctl wrote;
#   3. evolution: order-service with an incompatible OrderAccepted stops at
#      start with the registry's reason; with a compatible one (a field with
#      a default) it registers a new version, and billing- and
#      notification-service, still on the old schema, read what it writes
#      (the new writer fetched by id and resolved to their reader);
#   4. the registry stopped (SIGSTOP: it accepts connections and answers
#      nothing) while records with an id no service has seen arrive: the
#      partitions wait, nothing is dead-lettered, and everything is handled
#      once it answers again; a service started meanwhile waits, saying so;
#   5. hostile frames (a truncated Confluent header, an id the registry does
#      not have, the id of a JSON schema) are dead-lettered by every group
#      reading the topic, with their class and reason;
#   6. the registry behind an HTTPS proxy asking for basic auth: evctl
#      checks the schemas and decodes records through it with the CA and a
#      password file; a wrong password (401) and an untrusted certificate
#      are refused saying why; the password appears in no output;
#   7. every order of the test is notified exactly once.
#
# Environment: LEV_BUILD_DIR (required: the build with the services and
# evctl), LEV_REGISTRY_TEST_DIR (run directory; default a temporary one).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${LEV_BUILD_DIR:?LEV_BUILD_DIR must name a build directory with the services and evctl}"
run=${LEV_REGISTRY_TEST_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lev-registry-test.XXXXXX")}
EVCTL="$LEV_BUILD_DIR/tools/evctl/evctl"
SVC="$LEV_BUILD_DIR/services"
CLIENT="$root/tests/stack/confluent_client.py"

# shellcheck source=checks.sh
. "$root/tests/stack/checks.sh"
# shellcheck source=../ports.sh
. "$root/tests/ports.sh"
unset KAFKA_BOOTSTRAP REDIS_URL LEV_SCHEMA_REGISTRY_URL LEV_WIRE_FORMAT \
  LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY
for v in $(env | sed -n 's/^\(KAFKA_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done

PY=$("$root/tools/schema-registry" python) || { echo "FAIL: no Python with confluent-kafka"; exit 1; }

regpid=""
extra=()
cleanup() {
  [ -n "$regpid" ] && kill -CONT "$regpid" 2>/dev/null
  for p in "${extra[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  LEV_RUN_DIR="$run" "$root/tools/stack" down --clean --stop-timeout 10 >/dev/null 2>&1 || true
}
if [ -d "$run/stack" ]; then cleanup; fi
rm -rf "$run"
mkdir -p "$run"
trap cleanup EXIT
lev_reserve_ports kport 2
lev_reserve_ports rport
lev_reserve_ports wport
lev_reserve_ports hport 3
lev_reserve_ports gport 2
export LEV_RUN_DIR="$run" LEV_BUILD_DIR LEV_STACK_NO_BUILD=1 LEV_STACK_NO_DEPS=1 \
  LEV_STACK_KAFKA_PORT=$kport LEV_STACK_REDIS_PORT=$rport LEV_STACK_WEBHOOK_PORT=$wport \
  LEV_STACK_HTTP_PORT=$hport LEV_STACK_REGISTRY_PORT=$gport
# a registry that does not answer costs each try one second, not five
export LEV_SCHEMA_REGISTRY_TIMEOUT_MS=1000 LEV_SCHEMA_REGISTRY_RETRIES=1

# ------------------------------------------------------------ 1. the demo
timed "tools/stack demo --wire confluent" "$run/demo.out" \
  "$root/tools/stack" demo --wire confluent --demo-timeout 90 && rc=0 || rc=$?
tail -n 14 "$run/demo.out"
expect "the demo in the Confluent wire format ends every order as expected (exit $rc)" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || { tail -n 40 "$run/demo.out"; exit 1; }
envval() { sed -n "s/^$1=//p" "$run/stack/env"; }
KB=$(envval KAFKA_BOOTSTRAP)
RU=$(envval REDIS_URL)
REG=$(envval LEV_SCHEMA_REGISTRY_URL)
regpid=$(cat "$run/registry/registry.pid")
regpid_saved=$regpid
regpid=""
export KAFKA_BOOTSTRAP="$KB" LEV_SCHEMA_DIRS="$root/schemas" LEV_TOPICS_FILE="$root/tools/topics.json" \
  LEV_SCHEMA_REGISTRY_URL="$REG" LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY=topic_record

curl -sf "$REG/subjects" >"$run/subjects.json"
for s in orders-shop.order.OrderPlaced orders-shop.order.OrderAccepted \
  payments-shop.billing.PaymentSucceeded notifications-shop.notification.NotificationSent; do
  expect "subject $s is registered" grep -q "\"$s\"" "$run/subjects.json"
done
"$EVCTL" tail orders --from beginning --quiet >"$run/orders.jsonl"
expect "every record on orders is Confluent-framed and decodes ($(wc -l <"$run/orders.jsonl") records)" \
  "$PY" -c '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if recs and all(r.get("wire") == "confluent" and "value" in r and "schema_id" in r
                           for r in recs) else 1)' "$run/orders.jsonl"

# tools/stack up again (restarts what was stopped), as for the first up:
# the registry and the broker are the stack's own, not "given"
stack_up() { env -u KAFKA_BOOTSTRAP -u LEV_SCHEMA_REGISTRY_URL "$root/tools/stack" up; }

# A new order line from the demo's template: prints it, its id in $run/$1.id
new_order() {
  "$PY" - "$root/tools/demo-orders.jsonl" "$run/$1.id" "${2:-}" <<'EOF'
import json, sys, uuid
line = json.loads(open(sys.argv[1]).readline())
oid = str(uuid.uuid4())
line["value"]["order_id"] = oid
line.pop("headers", None)
if sys.argv[3]:
    line["value"]["channel"] = sys.argv[3]
open(sys.argv[2], "w").write(oid + "\n")
print(json.dumps(line))
EOF
}
# The keys of a topic's records (kcat: no decoding, works while the registry sleeps).
keys_of() { kcat -C -b "$KB" -t "$1" -o beginning -e -q -f '%k\n' 2>/dev/null; }
notified() { keys_of notifications | grep -cxF -f "$1" || true; }
wait_notified() { # wait_notified IDFILE COUNT SECONDS
  local t0=$SECONDS
  while [ "$(notified "$1")" -lt "$2" ]; do
    [ $((SECONDS - t0)) -ge "$3" ] && return 1
    sleep 0.5
  done
}

# ------------------------------------------------------------ 2. interop
new_order py >"$run/py.jsonl"
timed "confluent-kafka AvroSerializer produces an OrderPlaced" "$run/py-produce.out" \
  "$PY" "$CLIENT" produce --bootstrap "$KB" --registry "$REG" --topic orders \
  --schema "$root/schemas/order_placed.avsc" --strategy topic_record <"$run/py.jsonl" && rc=0 || rc=$?
cat "$run/py-produce.out"
expect "... and the broker acknowledged it (exit $rc)" [ "$rc" -eq 0 ]
expect "the services handle it: its order is notified" wait_notified "$run/py.id" 1 60
n=$(keys_of notifications | wc -l)
timed "confluent-kafka AvroDeserializer reads the $n notifications" "$run/py-notifications.jsonl" \
  "$PY" "$CLIENT" consume --bootstrap "$KB" --registry "$REG" --topic notifications \
  --count "$n" --timeout 60 && rc=0 || rc=$?
expect "... every one (exit $rc)" [ "$rc" -eq 0 ]
expect "... among them the one for its own order" grep -qF "$(cat "$run/py.id")" "$run/py-notifications.jsonl"
n=$(keys_of orders | wc -l)
timed "confluent-kafka AvroDeserializer reads the $n records of orders (evctl's, its own, the services')" \
  "$run/py-orders.jsonl" "$PY" "$CLIENT" consume --bootstrap "$KB" --registry "$REG" --topic orders \
  --count "$n" --timeout 60 && rc=0 || rc=$?
expect "... every one (exit $rc)" [ "$rc" -eq 0 ]

# ------------------------------------------------------------ 3. evolution
# OrderAccepted with one more field: without a default (incompatible under
# BACKWARD, which evctl schemas register set) and with one.
variant() { # variant DIR FIELD-JSON
  cp -r "$root/schemas" "$1"
  "$PY" - "$1/order_accepted.avsc" "$2" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["fields"].append(json.loads(sys.argv[2]))
json.dump(s, open(sys.argv[1], "w"), indent=2)
EOF
}
variant "$run/schemas-bad" '{"name":"note","type":"string"}'
variant "$run/schemas-good" '{"name":"note","type":"string","default":""}'
# order-service as tools/stack runs it, with other schemas; $1 log, rest: env
# (run it in a subshell: it becomes the service)
order_service() {
  local log=$1
  shift
  cd "$run" && exec env KAFKA_BOOTSTRAP="$KB" REDIS_URL="$RU" LEV_WIRE_FORMAT=confluent "$@" \
    "$SVC/order/order-service" </dev/null >"$log" 2>&1
}
t0=$SECONDS
(order_service "$run/order-bad.log" LEV_SCHEMA_DIRS="$run/schemas-bad" LEV_GROUP_ID=evolution-bad) &&
  rc=0 || rc=$?
grep -m1 '"cannot start"' "$run/order-bad.log" || tail -n 5 "$run/order-bad.log"
expect "order-service with an incompatible OrderAccepted stops at start (exit $rc, $((SECONDS - t0)) s)" \
  [ "$rc" -ne 0 ]
expect "... saying the registry refused it, and why" \
  bash -c 'grep -q "cannot register shop.order.OrderAccepted for topic orders" "$1" &&
           grep -q "409" "$1"' _ "$run/order-bad.log"
LEV_SCHEMA_DIRS="$run/schemas-good" "$EVCTL" schemas check --registry "$REG" >"$run/check-good.jsonl" &&
  rc=0 || rc=$?
expect "evctl schemas check --registry: the compatible OrderAccepted is compatible (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && grep "orders-shop.order.OrderAccepted" "$2" | grep -q "\"compatible\""' \
  _ "$rc" "$run/check-good.jsonl"
# order-service v2 replaces the stack's: same group, new schema
kill -TERM "$(sed -n 1p "$run/services/order.pid")"
sleep 1
(order_service "$run/order-v2.log" LEV_SCHEMA_DIRS="$run/schemas-good") &
extra+=($!)
t0=$SECONDS
until grep -q '"worker started"' "$run/order-v2.log" 2>/dev/null; do
  [ $((SECONDS - t0)) -lt 60 ] || break
  sleep 0.2
done
expect "order-service with the compatible OrderAccepted starts" grep -q '"worker started"' "$run/order-v2.log"
v1=$(curl -sf "$REG/subjects/orders-shop.order.OrderAccepted/versions/1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
v2=$(sed -n 's/.*"schema registered".*"type":"shop.order.OrderAccepted".*"schema_id":"\([0-9]*\)".*/\1/p' "$run/order-v2.log" | head -n1)
expect "... registering a new version of it (id $v2, before $v1)" bash -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$v2" "$v1"
: >"$run/v2.ids"
for i in 1 2 3; do
  new_order "v2-$i" >>"$run/v2.jsonl"
  cat "$run/v2-$i.id" >>"$run/v2.ids"
done
"$EVCTL" publish "$run/v2.jsonl" --wire confluent --quiet >/dev/null
expect "billing and notification, on the old schema, handle what order-service v2 writes (3 notified)" \
  wait_notified "$run/v2.ids" 3 60
"$EVCTL" tail orders --from beginning --quiet --type shop.order.OrderAccepted >"$run/accepted.jsonl"
expect "... OrderAccepted records framed with the new id are on orders" \
  grep -q "\"schema_id\": *$v2[,}]" "$run/accepted.jsonl"
kill -TERM "${extra[@]}" 2>/dev/null || true
wait "${extra[@]}" && rc=0 || rc=$?
expect "order-service v2 stops on SIGTERM with exit 0 (exit $rc)" [ "$rc" -eq 0 ]
extra=()

# ------------------------------------------------------------ 4. registry outage
stack_up >"$run/up2.out" 2>&1 || { cat "$run/up2.out"; echo "FAIL: stack up"; exit 1; }
# a new version of OrderPlaced (a field with a default), registered by
# someone else: no service knows its id
v2placed=$("$PY" - "$root/schemas/order_placed.avsc" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["fields"].append({"name": "channel", "type": "string", "default": "web"})
print(json.dumps({"schema": json.dumps(s)}))
EOF
)
pid_placed=$(curl -sf -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
  --data "$v2placed" "$REG/subjects/orders-shop.order.OrderPlaced/versions" |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
expect "OrderPlaced v2 registered by a third party (id $pid_placed)" [ -n "$pid_placed" ]
# its records, framed by hand (fastavro, no registry: it sleeps)
cat >"$run/frame.py" <<'EOF'
import io, json, sys
import fastavro
from confluent_kafka import Producer
bootstrap, schema_file, sid, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
schema = json.load(open(schema_file))
schema["fields"].append(json.loads(extra))
parsed = fastavro.parse_schema(schema)
p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
for line in sys.stdin:
    env = json.loads(line)
    v = env["value"]
    v["customer_email"] = v["customer_email"]["string"] if isinstance(v["customer_email"], dict) else v["customer_email"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, v)
    p.produce("orders", key=v["order_id"].encode(), value=b"\0" + sid.to_bytes(4, "big") + buf.getvalue())
sys.exit(1 if p.flush(30) else 0)
EOF
regpid=$regpid_saved
kill -STOP "$regpid"
echo "   the registry is stopped (SIGSTOP, pid $regpid)"
: >"$run/outage-v2.ids"
for i in 1 2 3; do
  new_order "out-$i" app >>"$run/outage-v2.jsonl"
  cat "$run/out-$i.id" >>"$run/outage-v2.ids"
done
expect "3 orders framed with the unseen id produced" \
  "$PY" "$run/frame.py" "$KB" "$root/schemas/order_placed.avsc" "$pid_placed" \
  '{"name":"channel","type":"string","default":"web"}' <"$run/outage-v2.jsonl"
for i in 4 5 6; do
  new_order "out-$i" >>"$run/outage-soe.jsonl"
done
"$EVCTL" publish "$run/outage-soe.jsonl" --wire soe --quiet >/dev/null &&
  ok "3 orders in single-object encoding published meanwhile" || fail "evctl publish --wire soe"
sleep 8
n=$(notified "$run/outage-v2.ids")
expect "while the registry sleeps, the orders with the unseen id wait ($n of 3 notified)" [ "$n" -eq 0 ]
for f in order billing notification; do
  expect "... and $f-service dead-lettered nothing" \
    bash -c '[ -z "$(kcat -C -b "$1" -t "$2" -o beginning -e -q -f "%k\n" 2>/dev/null)" ]' _ "$KB" "$f-service.dlq"
done
expect "... order-service says the records wait for the registry" \
  grep -q "the schema registry cannot be asked; records wait" "$run/services/order.log"
# a service started meanwhile waits for the registry
kill -TERM "$(sed -n 1p "$run/services/notification.pid")"
sleep 1
(cd "$run" && exec env KAFKA_BOOTSTRAP="$KB" REDIS_URL="$RU" LEV_WIRE_FORMAT=confluent \
  NOTIFY_SINK_FILE="$run/notify-sink.jsonl" "$SVC/notification/notification-service" \
  </dev/null >"$run/notification-wait.log" 2>&1) &
extra+=($!)
sleep 5
expect "notification-service started while the registry sleeps waits for it, saying so" \
  bash -c 'kill -0 "$1" && grep -q "the schema registry does not answer; waiting for it" "$2" &&
           ! grep -q "\"worker started\"" "$2"' _ "${extra[0]}" "$run/notification-wait.log"
t0=$SECONDS
kill -CONT "$regpid"
regpid=""
echo "   the registry answers again (SIGCONT)"
until grep -q '"worker started"' "$run/notification-wait.log"; do
  [ $((SECONDS - t0)) -lt 60 ] || break
  sleep 0.2
done
expect "... and starts once it answers ($((SECONDS - t0)) s)" grep -q '"worker started"' "$run/notification-wait.log"
kill -TERM "${extra[@]}" 2>/dev/null || true
wait "${extra[@]}" 2>/dev/null || true
extra=()
stack_up >"$run/up3.out" 2>&1 || { cat "$run/up3.out"; echo "FAIL: stack up"; exit 1; }
cat "$run"/out-?.id >"$run/outage.ids"
expect "all 6 orders of the outage are notified once it answers" wait_notified "$run/outage.ids" 6 90
echo "   drained $((SECONDS - t0)) s after the registry answered again"
curl -sf "http://127.0.0.1:$((hport + 1))/metrics" >"$run/billing.metrics" || true
expect "billing-service's /metrics counts the registry's failures and the schemas it fetched by id" \
  "$PY" -c '
import re, sys
m = dict(re.findall(r"^(lev_schema_registry_\w+) (\d+)$", open(sys.argv[1]).read(), re.M))
print("   ", m)
sys.exit(0 if int(m.get("lev_schema_registry_failures_total", 0)) > 0
         and int(m.get("lev_schema_registry_schemas_fetched_total", 0)) >= 2 else 1)' "$run/billing.metrics"

# ------------------------------------------------------------ 5. hostile frames
json_id=$(curl -sf -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
  --data '{"schemaType":"JSON","schema":"{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\"}"}' \
  "$REG/subjects/registry-test-json/versions" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$PY" - "$KB" "$json_id" <<'EOF'
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1]})
p.produce("orders", key=b"hostile-truncated", value=b"\x00\x00\x01")
p.produce("orders", key=b"hostile-unknown-id", value=b"\x00" + (2147480001).to_bytes(4, "big") + b"\x02")
p.produce("orders", key=b"hostile-json-schema", value=b"\x00" + int(sys.argv[2]).to_bytes(4, "big") + b"{}")
sys.exit(1 if p.flush(30) else 0)
EOF
for g in order-service billing-service notification-service; do
  t0=$SECONDS
  while :; do
    "$EVCTL" dlq list "$g" --quiet >"$run/dlq-$g.jsonl" 2>/dev/null || true
    total=$("$PY" -c 'import json,sys; print(sum(json.loads(l)["count"] for l in open(sys.argv[1])))' "$run/dlq-$g.jsonl")
    [ "$total" -ge 3 ] || [ $((SECONDS - t0)) -ge 60 ] || { sleep 1; continue; }
    break
  done
  expect "$g dead-lettered the 3 hostile frames and nothing else ($total)" [ "$total" -eq 3 ]
  expect "... the truncated header as decode, saying so" \
    bash -c 'grep "\"class\": *\"decode\"" "$1" | grep -q "truncated Confluent header"' _ "$run/dlq-$g.jsonl"
  expect "... the unknown id as unknown-schema" \
    bash -c 'grep "\"class\": *\"unknown-schema\"" "$1" | grep -q "40403\|not found\|No content"' _ "$run/dlq-$g.jsonl"
  expect "... the JSON schema's id as unknown-schema naming its type" \
    bash -c 'grep "\"class\": *\"unknown-schema\"" "$1" | grep -q "JSON"' _ "$run/dlq-$g.jsonl"
done

# ------------------------------------------------------------ 6. TLS and basic auth
# The registry behind an HTTPS proxy that asks for basic auth (as nginx in
# front of a registry does): a private CA and a certificate for 127.0.0.1.
tls="$run/tls"
mkdir -p "$tls"
(
  cd "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=registry test CA" \
    -keyout ca.key -out ca.pem
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile san.ext -out server.pem
) >"$tls/openssl.log" 2>&1 || { cat "$tls/openssl.log"; echo "FAIL: openssl"; exit 1; }
secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$secret" >"$tls/password")
lev_reserve_ports xport
"$PY" "$root/tests/stack/registry_proxy.py" --port "$xport" --cert "$tls/server.pem" \
  --key "$tls/server.key" --upstream "$REG" --user operator --password-file "$tls/password" \
  >"$tls/proxy.out" 2>&1 &
extra+=($!)
for _ in $(seq 1 50); do grep -q ready "$tls/proxy.out" && break; sleep 0.1; done
XURL="https://127.0.0.1:$xport"
auth_env=(LEV_SCHEMA_REGISTRY_CA_LOCATION="$tls/ca.pem" LEV_SCHEMA_REGISTRY_USER=operator
  LEV_SCHEMA_REGISTRY_PASSWORD_FILE="$tls/password")
env "${auth_env[@]}" "$EVCTL" schemas check --registry "$XURL" >"$tls/check.out" 2>"$tls/check.err" &&
  rc=0 || rc=$?
expect "evctl schemas check through HTTPS with basic auth (CA and password file) (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && grep -q "\"registered\"" "$2"' _ "$rc" "$tls/check.out"
env "${auth_env[@]}" "$EVCTL" tail notifications --from beginning --quiet --registry "$XURL" \
  >"$tls/tail.out" 2>"$tls/tail.err" && rc=0 || rc=$?
expect "evctl tail decodes the notifications with the writer schemas fetched through it (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && [ -s "$2" ] && ! grep -q "\"error\"" "$2"' _ "$rc" "$tls/tail.out"
env "${auth_env[@]}" LEV_SCHEMA_REGISTRY_PASSWORD_FILE= LEV_SCHEMA_REGISTRY_PASSWORD=not-the-password \
  "$EVCTL" schemas check --registry "$XURL" >/dev/null 2>"$tls/wrong.err" && rc=0 || rc=$?
cat "$tls/wrong.err"
expect "... a wrong password is refused, saying 401 (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "401" "$2"' _ "$rc" "$tls/wrong.err"
env LEV_SCHEMA_REGISTRY_USER=operator LEV_SCHEMA_REGISTRY_PASSWORD_FILE="$tls/password" \
  "$EVCTL" schemas check --registry "$XURL" >/dev/null 2>"$tls/noca.err" && rc=0 || rc=$?
cat "$tls/noca.err"
expect "... a client that does not trust the CA is refused, saying why (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -qi "certificate" "$2"' _ "$rc" "$tls/noca.err"
expect "... and the password appears in no output" \
  bash -c '! grep -rqF -- "$1" "$2"/*.out "$2"/*.err' _ "$secret" "$tls"
kill -TERM "${extra[@]}" 2>/dev/null || true
wait "${extra[@]}" 2>/dev/null || true
extra=()

# ------------------------------------------------------------ 7. exactly once
cat "$run"/py.id "$run"/v2.ids "$run"/outage.ids >"$run/all.ids"
keys_of notifications | grep -xF -f "$run/all.ids" | sort | uniq -c >"$run/counts.txt" || true
expect "every order of the test notified exactly once ($(wc -l <"$run/all.ids") orders)" \
  bash -c '[ "$(wc -l <"$1")" -eq "$(wc -l <"$2")" ] && ! awk "\$1 != 1 { bad = 1 } END { exit !bad }" "$1"' \
  _ "$run/counts.txt" "$run/all.ids"

echo "registry_test: $passes passed, $fails failed"
[ "$fails" -eq 0 ] || {
  rm -rf "$run.logs" && cp -r "$run/services" "$run.logs" && echo "the services' logs: $run.logs"
  for f in "$run"/services/*.log; do
    echo "---- $f"
    tail -n 15 "$f"
  done
  exit 1
}
cleanup
trap - EXIT
rm -rf "$run"
