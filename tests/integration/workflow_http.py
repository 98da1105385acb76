#!/usr/bin/env python3
"""A fake payment gateway and a webhook receiver for the workflow tests.

Python standard library only. Both servers listen on 127.0.0.1 with ports
chosen by the kernel; once listening, the chosen ports are written to
<dir>/ports.json (atomically). Every request is recorded as one JSON line in
<dir>/gateway.jsonl or <dir>/webhook.jsonl, flushed at once, so the test
reads what happened from the files.

Gateway, POST /charges (JSON body from billing-service):
  - the Idempotency-Key header is required and must equal the body's
    payment_id (else 400 / 422, recorded as "bad-request");
  - a key whose outcome is known gets the same answer again and is recorded
    as "replay", never as a second charge;
  - while refusing (from the start; see /control), a payment_token starting
    with --refuse-prefix ("tok_refuse") gets 400 {"code":"TOKEN_REFUSED"}, a
    permanent error, recorded as "refused" (the outcome is not kept: once
    fixed, the same key is charged);
  - a deterministic share of keys first gets 503 (some of them several
    times, enough to go through the services' retry topics), recorded as
    "fail503";
  - then the rule: payment_token starting with "tok_decline" -> 402
    {"code":"CARD_DECLINED"}; amount_minor above --decline-above -> 200
    {"status":"declined","code":"INSUFFICIENT_FUNDS"}; else 200
    {"status":"succeeded"}. Recorded once per key as "charge" with
    result "charged" or "declined".

Gateway, POST /control {"refuse": false}: stops refusing (the "fix"); the
test calls it. Recorded as "control".

Either server, POST /control with any of
  {"down_s": S}   for the next S seconds the server is down: the gateway
                  answers every charge 503, the webhook closes every
                  connection without an answer (recorded as "down");
  {"delay_ms": D} every later request waits D ms before it is answered.
Every "charge" and "delivery" record carries "inflight": how many requests
the server was working on when it arrived (itself included), so the test
sees how many the services ran at once.

Webhook, POST /notify (from notification-service):
  - X-Signature must be t=<unix seconds>,v1=<hex>[,v1=<hex>], each hex an
    HMAC-SHA256 of "<t>.<X-Event-Id>.<body>"; it is valid when t is within
    --tolerance seconds of now and some v1 matches, compared in constant
    time, one of the --secret values (else 401, recorded as
    "bad-signature");
  - X-Event-Id must equal the body's notification_id (else 422);
  - a deterministic share of event ids first gets 503 ("fail503");
  - then 200, recorded as "delivery" with the event id and order id.
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # the services open up to 64 connections at once: with the default
    # backlog of 5, dropped SYNs delay a request past the client's timeout,
    # and it reaches the fake seconds later, after the test took stock
    request_queue_size = 512


class Recorder:
    """Appends JSON lines to a file, one write per line, thread-safe."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8")

    def write(self, **record):
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


def bucket(key):
    """A stable number in [0, 100) for a key."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100


def failures_for(key, pct, deep_pct):
    """How many 503s a key gets before it is served: deep_pct of keys get
    5 (more than the services' in-process attempts), pct of keys get 1."""
    b = bucket(key)
    if b < deep_pct:
        return 5
    if b < deep_pct + pct:
        return 1
    return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms per request)
    disable_nagle_algorithm = True
    server_version = "workflow-fake/1"

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_POST(self):
        raw = self.read_body()
        st = self.server.state
        if self.path == "/control":
            return self.control(raw)
        if self.path not in ("/charges", "/notify") or self.path != (
                "/charges" if self.server.kind == "gateway" else "/notify"):
            return self.reply(404, {"error": "no such endpoint"})
        with st.lock:
            down = time.monotonic() < st.down_until
            delay = st.delay_ms
            st.inflight += 1
            inflight = st.inflight
        try:
            if delay:
                time.sleep(delay / 1000)
            if down:
                st.rec.write(kind="down", path=self.path)
                if self.server.kind == "webhook":
                    self.close_connection = True  # no answer at all
                    return
                return self.reply(503, {"error": "down"})
            if self.server.kind == "gateway":
                self.charge(raw, inflight)
            else:
                self.notify(raw, inflight)
        finally:
            with st.lock:
                st.inflight -= 1

    # ---- gateway ----
    def charge(self, raw, inflight):
        st = self.server.state
        key = self.headers.get("Idempotency-Key", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not key or not isinstance(body, dict):
            st.rec.write(kind="bad-request", key=key, why="no key or no JSON body")
            return self.reply(400, {"error": "Idempotency-Key and a JSON body are required"})
        order_id = body.get("order_id", "")
        if body.get("payment_id") != key:
            st.rec.write(kind="bad-request", key=key, order_id=order_id, why="key != payment_id")
            return self.reply(422, {"error": "Idempotency-Key must be the payment_id"})
        with st.lock:
            st.attempts[key] = st.attempts.get(key, 0) + 1
            attempt = st.attempts[key]
            known = st.done.get(key)
            if known is None and attempt <= failures_for(key, st.args.fail_pct, st.args.deep_fail_pct):
                st.rec.write(kind="fail503", key=key, order_id=order_id, attempt=attempt)
                status, answer = 503, {"error": "try again"}
            elif known is not None:
                st.rec.write(kind="replay", key=key, order_id=order_id, attempt=attempt)
                status, answer = known
            elif st.refusing and str(body.get("payment_token", "")).startswith(
                    st.args.refuse_prefix):
                st.rec.write(kind="refused", key=key, order_id=order_id, attempt=attempt)
                status, answer = 400, {"code": "TOKEN_REFUSED",
                                       "message": "this payment token is not accepted"}
            else:
                token = body.get("payment_token", "")
                amount = body.get("amount_minor", 0)
                if token.startswith("tok_decline"):
                    status, answer = 402, {"code": "CARD_DECLINED", "message": "the card was declined"}
                    result = "declined"
                elif amount > st.args.decline_above:
                    status, answer = 200, {"status": "declined", "code": "INSUFFICIENT_FUNDS",
                                           "message": "insufficient funds"}
                    result = "declined"
                else:
                    status, answer = 200, {"status": "succeeded", "charge_id": key}
                    result = "charged"
                st.done[key] = (status, answer)
                st.rec.write(kind="charge", key=key, order_id=order_id, amount_minor=amount,
                             currency=body.get("currency"), result=result, attempt=attempt,
                             inflight=inflight)
        self.reply(status, answer)

    def control(self, raw):
        st = self.server.state
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        known = {"refuse": bool, "down_s": (int, float), "delay_ms": int}
        if (not isinstance(body, dict) or not body or
                any(k not in known or not isinstance(v, known[k]) for k, v in body.items()) or
                ("refuse" in body and self.server.kind != "gateway")):
            return self.reply(400, {"error": 'expected {"refuse": bool} (gateway), '
                                             '{"down_s": seconds} or {"delay_ms": ms}'})
        with st.lock:
            if "refuse" in body:
                st.refusing = body["refuse"]
            if "down_s" in body:
                st.down_until = time.monotonic() + body["down_s"]
            if "delay_ms" in body:
                st.delay_ms = body["delay_ms"]
            st.rec.write(kind="control", **body)
        self.reply(200, body)

    # ---- webhook ----
    def notify(self, raw, inflight):
        st = self.server.state
        event_id = self.headers.get("X-Event-Id", "")
        why = verify_signature(self.headers.get("X-Signature", ""), st.args.secret, event_id,
                               raw, st.args.tolerance)
        if why:
            st.rec.write(kind="bad-signature", event_id=event_id, why=why)
            return self.reply(401, {"error": "bad signature: " + why})
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        if body.get("notification_id") != event_id:
            st.rec.write(kind="bad-request", event_id=event_id, why="X-Event-Id != notification_id")
            return self.reply(422, {"error": "X-Event-Id must be the notification_id"})
        with st.lock:
            st.attempts[event_id] = st.attempts.get(event_id, 0) + 1
            attempt = st.attempts[event_id]
            fail = attempt <= failures_for(event_id, st.args.fail_pct, 0)
        if fail:
            st.rec.write(kind="fail503", event_id=event_id, order_id=body.get("order_id"),
                         attempt=attempt)
            return self.reply(503, {"error": "try again"})
        st.rec.write(kind="delivery", event_id=event_id, order_id=body.get("order_id"),
                     type=body.get("type"), attempt=attempt, inflight=inflight)
        self.reply(200, {"ok": True})


def verify_signature(header, secrets, event_id, raw, tolerance):
    """None when header (t=<unix>,v1=<hex>[,v1=<hex>]) signs "<t>.<event_id>.<raw>"
    with one of secrets within tolerance seconds of now, else why not."""
    t, sigs = None, []
    for item in header.split(","):
        name, _, value = item.partition("=")
        if name == "t":
            if t is not None or not value.isdigit():
                return "malformed timestamp"
            t = int(value)
        elif name == "v1":
            sigs.append(value)
    if t is None or not sigs:
        return "malformed signature"
    if abs(time.time() - t) > tolerance:
        return "timestamp outside the tolerance"
    signed = f"{t}.{event_id}.".encode() + raw
    ok = False
    for secret in secrets:
        want = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for sig in sigs:  # constant time, every pair compared
            ok |= hmac.compare_digest(want, sig)
    return None if ok else "no signature matches"


class State:
    def __init__(self, args, path):
        self.args = args
        self.rec = Recorder(path)
        self.lock = threading.Lock()
        self.attempts = {}
        self.done = {}
        self.refusing = True
        self.down_until = 0.0
        self.delay_ms = 0
        self.inflight = 0


def serve(kind, args):
    server = Server(("127.0.0.1", 0), Handler)
    server.kind = kind
    server.state = State(args, os.path.join(args.dir, kind + ".jsonl"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True, help="where ports.json and the records go")
    p.add_argument("--secret", required=True, action="append",
                   help="HMAC key of the webhook signatures (repeat: any of them verifies)")
    p.add_argument("--tolerance", type=int, default=300,
                   help="largest age (or lead) of a signature's timestamp, seconds")
    p.add_argument("--fail-pct", type=int, default=10, help="share of keys answered 503 once")
    p.add_argument("--deep-fail-pct", type=int, default=2,
                   help="share of charge keys answered 503 five times")
    p.add_argument("--decline-above", type=int, default=500000,
                   help="amounts above this are declined with a 200 decline body")
    p.add_argument("--refuse-prefix", default="tok_refuse",
                   help="payment tokens refused with a 400 until POST /control {\"refuse\": false}")
    args = p.parse_args()

    servers = {kind: serve(kind, args) for kind in ("gateway", "webhook")}
    ports = {kind: s.server_address[1] for kind, s in servers.items()}
    tmp = os.path.join(args.dir, "ports.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ports, f)
    os.rename(tmp, os.path.join(args.dir, "ports.json"))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for s in servers.values():
        s.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
