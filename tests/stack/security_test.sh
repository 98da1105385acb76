#!/usr/bin/env bash
# The workflow over TLS and SASL: a broker whose only client listener is
# SASL_SSL with SCRAM-SHA-512 (tools/kafka start --sasl-ssl: a private CA
# and a broker certificate for 127.0.0.1 made with openssl, a SCRAM user per
# service and one for the operator), then
#   - refusals, each with a message that says why: a client without
#     security settings (evctl: the broker hung up, "connecting to a SSL
#     listener?"), a wrong password and an unknown user (evctl and a
#     service: "authentication failed", "invalid credentials"; the service
#     stops at once with exit 1), a client that does not trust the CA ("TLS
#     handshake failed", "certificate verify failed");
#   - least privilege: the broker enforces ACLs (StandardAuthorizer);
#     `evctl acls` is refused to the operator and applied by the admin, then
#     finds them all a second time; billing-service's principal may not
#     write to orders nor read notifications; a principal without ACLs may
#     do nothing;
#   - Redis ACLs: a Redis user per service (tools/redis users), allowed its
#     own <group>:* keys and the commands libevents uses: billing-service's
#     user can neither read nor write order-service's keys, and the other way
#     round; a rediss:// URL stops a service saying why;
#   - the demo over it (tools/stack demo): each service connects as its own
#     principal with its password in a file (KAFKA_SASL_PASSWORD_FILE) and as
#     its own Redis user, evctl as the operator, under those ACLs; every
#     sample order ends as expected;
#   - no password appears in any output or log of the clients.
#
# Environment: LEV_BUILD_DIR (required: the build with the services and
# evctl), LEV_SECURITY_TEST_DIR (run directory; default a temporary one).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${LEV_BUILD_DIR:?LEV_BUILD_DIR must name a build directory with the services and evctl}"
run=${LEV_SECURITY_TEST_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lev-security-test.XXXXXX")}
EVCTL="$LEV_BUILD_DIR/tools/evctl/evctl"
ORDER="$LEV_BUILD_DIR/services/order/order-service"

# shellcheck source=checks.sh
. "$root/tests/stack/checks.sh"
has() { grep -qF -- "$2" "$1"; } # has FILE TEXT

# shellcheck source=../ports.sh
. "$root/tests/ports.sh"
unset KAFKA_BOOTSTRAP REDIS_URL
for v in $(env | sed -n 's/^\(KAFKA_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done

kafka() { "$root/tools/kafka" "$@" --dir "$run/kafka" --port "$kport"; }
cleanup() {
  LEV_RUN_DIR="$run" "$root/tools/stack" down --stop-timeout 10 >/dev/null 2>&1 || true
  kafka stop >/dev/null 2>&1 || true
  "$root/tools/redis" stop --dir "$run/redis" --port "$rport" >/dev/null 2>&1 || true
}

for attempt in 1 2 3; do
  rm -rf "$run"
  mkdir -p "$run"
  lev_reserve_ports kport 2
  lev_reserve_ports rport
  lev_reserve_ports wport
  lev_reserve_ports hport 3
  trap cleanup EXIT
  t0=$SECONDS
  kafka start --sasl-ssl --acls \
    --users order-service,billing-service,notification-service,operator,nobody \
    >"$run/kafka-start.out" 2>&1 && krc=0 || krc=$?
  cat "$run/kafka-start.out"
  echo "   the SASL_SSL broker started in $((SECONDS - t0)) s"
  if [ "$krc" -ne 0 ] && [ "$attempt" -lt 3 ] &&
    lev_port_taken "$run/kafka-start.out" "$run"/kafka/*.log; then
    echo "a port was taken after all; again on other ports"
    cleanup
    trap - EXIT
    continue
  fi
  break
done
[ "$krc" -eq 0 ] || { echo "FAIL: tools/kafka start --sasl-ssl"; exit 1; }
"$root/tools/redis" start --dir "$run/redis" --port "$rport" >/dev/null 2>&1 ||
  { echo "FAIL: tools/redis start"; exit 1; }
export LEV_SCHEMA_DIRS="$root/schemas" REDIS_URL="redis://127.0.0.1:$rport/0"
creds="$run/kafka/credentials"
expect "the broker's only client listener is SASL_SSL" \
  grep -q "^listeners=SASL_SSL://127.0.0.1:$kport,CONTROLLER://" "$run/kafka/server.properties"
expect "every password file is readable by its owner only" \
  test -z "$(find "$creds" -type f ! -perm 0600)"

# The operator's settings, as a user would take them.
operator_env() {
  set -a
  eval "$("$root/tools/kafka" env --dir "$run/kafka" --port "$kport" --user operator)"
  set +a
}

# 1. refusals
out="$run/refusals"
mkdir -p "$out"
KAFKA_BOOTSTRAP="127.0.0.1:$kport" "$EVCTL" topics --timeout 5s >/dev/null 2>"$out/plain.err" &&
  rc=0 || rc=$?
cat "$out/plain.err"
expect "evctl without security settings is refused (exit $rc)" [ "$rc" -ne 0 ]
expect "... and says the listener may want TLS" has "$out/plain.err" "security.protocol"

(
  operator_env
  unset KAFKA_SASL_PASSWORD_FILE
  KAFKA_SASL_PASSWORD=not-the-password "$EVCTL" topics --timeout 20s >/dev/null 2>"$out/wrong.err"
) && rc=0 || rc=$?
cat "$out/wrong.err"
expect "evctl with a wrong password is refused (exit $rc)" [ "$rc" -ne 0 ]
expect "... saying authentication failed for invalid credentials" \
  bash -c 'grep -q "authentication failed" "$1" && grep -q "invalid credentials" "$1"' _ "$out/wrong.err"

(
  operator_env
  KAFKA_SASL_USERNAME=nobody "$EVCTL" topics --timeout 20s >/dev/null 2>"$out/nobody.err"
) && rc=0 || rc=$?
expect "evctl as an unknown user is refused (exit $rc)" [ "$rc" -ne 0 ]
expect "... saying authentication failed" has "$out/nobody.err" "authentication failed"

(
  operator_env
  unset KAFKA_SSL_CA_LOCATION
  "$EVCTL" topics --timeout 20s >/dev/null 2>"$out/noca.err"
) && rc=0 || rc=$?
cat "$out/noca.err"
expect "evctl that does not trust the broker's CA is refused (exit $rc)" [ "$rc" -ne 0 ]
expect "... saying the TLS handshake failed on the certificate" \
  bash -c 'grep -q "TLS handshake failed" "$1" && grep -q "certificate verify failed" "$1"' _ "$out/noca.err"

t0=$SECONDS
(
  operator_env
  export KAFKA_SASL_USERNAME=order-service KAFKA_SASL_PASSWORD=not-the-password
  unset KAFKA_SASL_PASSWORD_FILE
  cd "$out"
  timeout 60 "$ORDER" >"$out/service.log" 2>&1
) && rc=0 || rc=$?
grep '"cannot start"' "$out/service.log" || tail -n 5 "$out/service.log"
expect "order-service with a wrong password stops by itself with exit 1 (exit $rc, $((SECONDS - t0)) s)" \
  [ "$rc" -eq 1 ]
expect "... logging that Kafka refused it for invalid credentials" \
  bash -c 'grep "\"cannot start\"" "$1" | grep -q "invalid credentials"' _ "$out/service.log"

# 2. least privilege: the ACLs of tools/topics.json, applied by the admin
as_user() { # as_user USER COMMAND...: with USER's settings
  (
    set -a
    eval "$("$root/tools/kafka" env --dir "$run/kafka" --port "$kport" --user "$1")"
    set +a
    shift
    "$@"
  )
}
as_user operator "$EVCTL" acls >"$out/acls-operator.out" 2>"$out/acls-operator.err" && rc=0 || rc=$?
expect "evctl acls as the operator is refused (exit $rc): only the admin may change ACLs" \
  bash -c '[ "$1" -ne 0 ] && grep -q "may not create ACLs" "$2"' _ "$rc" "$out/acls-operator.err"
as_user admin "$EVCTL" acls >"$out/acls.out" 2>"$out/acls.err" && rc=0 || rc=$?
cat "$out/acls.err"
expect "evctl acls as the admin creates the ACLs (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && grep -q "\"status\":\"created\"" "$2"' _ "$rc" "$out/acls.out"
as_user admin "$EVCTL" acls >"$out/acls2.out" 2>"$out/acls2.err" && rc=0 || rc=$?
expect "a second evctl acls finds them all (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && ! grep -v "\"status\":\"exists\"" "$2"' _ "$rc" "$out/acls2.out"
expect "no principal gets a wildcard but the operator" \
  bash -c '! grep "\"resource\":\"\*\"" "$1" | grep -v "User:operator"' _ "$out/acls.out"
as_user operator "$EVCTL" topics >/dev/null 2>"$out/topics.err" && rc=0 || rc=$?
expect "the operator creates the workflow's topics (exit $rc)" [ "$rc" -eq 0 ]

"$root/tools/stack-demo.py" prepare "$root/tools/demo-orders.jsonl" "$out/orders.jsonl" >/dev/null
as_user billing-service "$EVCTL" publish "$out/orders.jsonl" >/dev/null 2>"$out/billing-writes.err" &&
  rc=0 || rc=$?
expect "billing-service's principal may not write to orders (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "Topic authorization failed" "$2"' _ "$rc" "$out/billing-writes.err"
as_user billing-service "$EVCTL" tail notifications --from beginning --timeout 10s \
  >/dev/null 2>"$out/billing-reads.err" && rc=0 || rc=$?
expect "billing-service's principal may not read notifications (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "not authorized" "$2"' _ "$rc" "$out/billing-reads.err"
as_user nobody "$EVCTL" publish "$out/orders.jsonl" >/dev/null 2>"$out/nobody-writes.err" &&
  rc=0 || rc=$?
expect "a principal without ACLs may not write (exit $rc)" [ "$rc" -ne 0 ]
as_user nobody "$EVCTL" tail orders --from beginning --timeout 10s >/dev/null \
  2>"$out/nobody-reads.err" && rc=0 || rc=$?
expect "... nor read (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "not authorized" "$2"' _ "$rc" "$out/nobody-reads.err"
as_user nobody "$EVCTL" topics >"$out/nobody-topics.out" 2>/dev/null && rc=0 || rc=$?
expect "... nor create topics (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "Authorization failed" "$2"' _ "$rc" "$out/nobody-topics.out"

# 3. Redis: a user per service, on its own keys
"$root/tools/redis" users --dir "$run/redis" --port "$rport" \
  --users order-service,billing-service,notification-service >"$out/redis-users.out" 2>&1 ||
  { cat "$out/redis-users.out"; fail "tools/redis users"; }
rcreds="$run/redis/credentials"
rcli() { # rcli USER COMMAND...: redis-cli as USER (password from its file, not argv)
  local u=$1
  shift
  REDISCLI_AUTH=$(cat "$rcreds/$u") redis-cli --no-auth-warning -h 127.0.0.1 -p "$rport" \
    --user "$u" "$@" 2>&1
}
said() { [[ "$1" == *"$2"* ]]; } # said TEXT PART
expect "order-service's Redis user writes its own keys" \
  said "$(rcli order-service SET order-service:order:probe 1)" OK
expect "billing-service's Redis user cannot read order-service's keys" \
  said "$(rcli billing-service GET order-service:order:probe)" NOPERM
expect "... nor write them" said "$(rcli billing-service SET order-service:order:probe 2)" NOPERM
expect "order-service's Redis user cannot write billing-service's ledger" \
  said "$(rcli order-service SET billing-service:charge:probe 1)" NOPERM
expect "... nor run what libevents does not use (FLUSHALL, KEYS)" \
  said "$(rcli order-service FLUSHALL) $(rcli order-service KEYS '*')" "NOPERM"
(
  cd "$out"
  REDIS_URL="rediss://127.0.0.1:$rport/0" timeout 30 "$ORDER" >"$out/rediss.log" 2>&1
) && rc=0 || rc=$?
grep '"cannot start' "$out/rediss.log" | head -n1
expect "a rediss:// URL stops a service saying what TLS to Redis needs (exit $rc)" \
  bash -c '[ "$1" -ne 0 ] && grep -q "hiredis 1.0" "$2"' _ "$rc" "$out/rediss.log"

# 4. the demo: each service as its own Kafka principal and Redis user,
# evctl as the operator
t0=$SECONDS
(
  operator_env
  export LEV_RUN_DIR="$run" LEV_BUILD_DIR LEV_STACK_NO_BUILD=1 LEV_STACK_NO_DEPS=1 \
    LEV_STACK_KAFKA_PORT="$kport" LEV_STACK_REDIS_PORT="$rport" LEV_STACK_WEBHOOK_PORT="$wport" \
    LEV_STACK_HTTP_PORT="$hport" LEV_STACK_KAFKA_CREDENTIALS="$creds" \
    LEV_STACK_REDIS_CREDENTIALS="$rcreds"
  "$root/tools/stack" demo --demo-timeout 120
) >"$run/demo.out" 2>&1 && rc=0 || rc=$?
tail -n 14 "$run/demo.out"
echo "   demo took $((SECONDS - t0)) s"
expect "tools/stack demo over SASL_SSL exits 0" [ "$rc" -eq 0 ]
principal_of() { # the SASL user and password file a running service was given
  local pid
  pid=$(head -n1 "$run/services/$1.pid" 2>/dev/null) || return 0
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
    sed -n 's/^KAFKA_SASL_USERNAME=//p; s/^KAFKA_SASL_PASSWORD_FILE=//p' | paste -sd' '
}
for s in order billing notification; do
  expect "$s-service runs as $s-service with its password file (got: $(principal_of "$s"))" \
    [ "$(principal_of "$s")" = "$s-service $creds/$s-service" ]
  expect "... and its worker started over SASL_SSL" grep -q '"worker started"' "$run/services/$s.log"
done
expect "order-service wrote its records under its Redis user's prefix" \
  [ "$(redis-cli -h 127.0.0.1 -p "$rport" --scan --pattern 'order-service:*' | grep -c .)" -gt 1 ]

# 5. no password in what the clients wrote
leaked=""
for f in "$creds"/* "$rcreds"/*; do
  pw=$(cat "$f")
  hits=$(grep -rlF -- "$pw" "$out" "$run/services" "$run/demo.out" "$run/demo" \
    "$run/topics.log" 2>/dev/null || true)
  [ -z "$hits" ] || leaked="$leaked $(basename "$f"):$hits"
done
expect "no password in any output or log of the clients${leaked:+ (found:$leaked)}" [ -z "$leaked" ]

LEV_RUN_DIR="$run" "$root/tools/stack" down --stop-timeout 10 >/dev/null 2>&1 || true
cleanup
trap - EXIT
echo "security test: $passes passed, $fails failed"
if [ "$fails" -eq 0 ]; then
  rm -rf "$run"
  exit 0
fi
exit 1
