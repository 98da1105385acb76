#!/usr/bin/env python3
"""A small webhook receiver for notification-service (Python standard library only).

Accepts the notifications that notification-service POSTs (NOTIFY_WEBHOOK_URL),
checks their signature and keeps one copy per event id, so the notifications
of a local stack are visible:

  - X-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>] is verified when a
    secret is configured: each v1 is an HMAC-SHA256, keyed with a secret, of
    "<t>.<X-Event-Id>.<raw body>". The request passes when any v1 matches any
    of the secrets (--secret-file and --secret-env, both repeatable, so a
    rotation can accept the old and the new) and t is within --tolerance
    seconds (300) of now, so a captured request cannot be replayed later.
    A missing, malformed, stale or wrong signature is answered 401.
    --create-secret writes a random secret into the first --secret-file
    when it does not exist (mode 0600, owned by --secret-owner UID if given),
    so a stack needs no secret written anywhere in its configuration.
  - X-Event-Id identifies the notification: a redelivery with an id already
    received is answered 200 and recorded as a duplicate, not stored again.
  - Every accepted notification is printed as one line on stdout and, with
    --out FILE, appended to FILE as a JSON line
    {"received_at", "event_id", "duplicate", "body"}; ids already in FILE count
    as received after a restart.

Endpoints: POST <any path> (the webhook), GET /healthz ("ok"),
GET /notifications (the stored notifications as a JSON array).

Usage: webhook-receiver.py [--host 127.0.0.1] [--port 8080] [--out FILE]
                           [--secret-file PATH]... [--secret-env NAME]...
                           [--create-secret] [--secret-owner UID]
                           [--tolerance SECONDS]
Stops cleanly on SIGTERM or SIGINT.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import secrets as random_secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


def verify_signature(header, secrets, event_id, raw, tolerance, now=None):
    """None when header (t=<unix>,v1=<hex>[,v1=<hex>]) signs "<t>.<event_id>.<raw>"
    with one of secrets (bytes) within tolerance seconds of now, else why not."""
    t, sigs = None, []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            if t is not None or not value.isdigit() or len(value) > 12:
                return "malformed timestamp"
            t = int(value)
        elif name == "v1":
            sigs.append(value)
    if t is None or not sigs:
        return "malformed signature"
    if abs((time.time() if now is None else now) - t) > tolerance:
        return "timestamp outside the tolerance"
    signed = f"{t}.{event_id}.".encode() + raw
    ok = False
    for secret in secrets:
        want = hmac.new(secret, signed, hashlib.sha256).hexdigest()
        for sig in sigs:  # constant time, every pair compared
            ok |= hmac.compare_digest(want.encode(), sig.encode())
    return None if ok else "no signature matches"


class State:
    def __init__(self, out, secrets, tolerance):
        self.out = out
        self.secrets = secrets
        self.tolerance = tolerance
        self.lock = threading.Lock()
        self.seen = set()
        self.stored = []
        self.duplicates = 0
        if out and os.path.exists(out):
            with open(out, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if not rec.get("duplicate"):
                        self.seen.add(rec.get("event_id"))
                        self.stored.append(rec)

    def record(self, event_id, body):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        with self.lock:
            dup = event_id in self.seen
            rec = {"received_at": now, "event_id": event_id, "duplicate": dup, "body": body}
            if dup:
                self.duplicates += 1
            else:
                self.seen.add(event_id)
                self.stored.append(rec)
            if self.out:
                with open(self.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        return dup


def summary(body):
    if not isinstance(body, dict):
        return ""
    parts = []
    for k in ("type", "order_id", "customer_id"):
        v = body.get(k)
        if isinstance(v, (str, int)) and v != "":
            parts.append(f"{k}={v}")
    if isinstance(body.get("subject"), str):
        parts.append(json.dumps(body["subject"]))
    return " ".join(parts)


class Handler(BaseHTTPRequestHandler):
    server_version = "webhook-receiver/1"
    # keep-alive: a sender's connections are reused (every reply has a
    # Content-Length), not one TCP connection per notification
    protocol_version = "HTTP/1.1"
    # the reply's headers and body are two writes: without TCP_NODELAY the
    # body waits for the sender's delayed ACK, 40 ms per notification
    disable_nagle_algorithm = True
    state = None  # set in main

    def log_message(self, fmt, *args):  # access log off: one line per notification instead
        pass

    def reply(self, code, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"status": "ok"})
        elif self.path == "/notifications":
            with self.state.lock:
                self.reply(200, list(self.state.stored))
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        st = self.state
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.reply(413, {"error": "body missing or too large"})
            return
        raw = self.rfile.read(n)
        event_id = self.headers.get("X-Event-Id", "")
        if st.secrets:
            why = verify_signature(self.headers.get("X-Signature", ""), st.secrets, event_id, raw,
                                   st.tolerance)
            if why:
                print(f"rejected a request: {why} ({self.path})", flush=True)
                self.reply(401, {"error": f"bad signature: {why}"})
                return
        if not event_id:
            self.reply(400, {"error": "X-Event-Id missing"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.reply(400, {"error": "body is not JSON"})
            return
        dup = st.record(event_id, body)
        tag = "duplicate" if dup else "received"
        print(f"{tag} {event_id} {summary(body)}".rstrip(), flush=True)
        self.reply(200, {"status": tag})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # a burst of senders (notification-service opens up to 64 connections)
    # must not overflow the listen backlog (5 by default): dropped SYNs turn
    # into 1-3 s connect retries
    request_queue_size = 512


def create_secret(path, owner):
    """Writes 32 random bytes as hex to path unless it exists (never replaced)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(random_secrets.token_hex(32))
    if owner is not None:
        os.chown(path, owner, -1)
    print(f"created a random webhook secret in {path}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--out", help="append accepted notifications to this JSON-lines file")
    ap.add_argument("--secret-file", action="append", default=[],
                    help="file holding an HMAC secret (repeatable; trailing newline ignored)")
    ap.add_argument("--secret-env", action="append", default=[],
                    help="environment variable holding an HMAC secret (repeatable; default "
                         "NOTIFY_WEBHOOK_SECRET when no --secret-file is given; unset or empty: "
                         "not used)")
    ap.add_argument("--create-secret", action="store_true",
                    help="write a random secret into the first --secret-file if it is missing")
    ap.add_argument("--secret-owner", type=int, help="uid to own a secret file created here")
    ap.add_argument("--tolerance", type=int, default=300,
                    help="seconds a signature's timestamp may be off from now (300)")
    args = ap.parse_args()
    if args.tolerance < 0:
        ap.error("--tolerance: must not be negative")

    secrets = []
    if args.create_secret:
        if not args.secret_file:
            ap.error("--create-secret: needs a --secret-file")
        create_secret(args.secret_file[0], args.secret_owner)
    for path in args.secret_file:
        try:
            with open(path, "rb") as f:
                value = f.read().rstrip(b"\r\n")
        except OSError as e:
            print(f"webhook-receiver: --secret-file {path}: {e.strerror}", file=sys.stderr)
            return 2
        if not value:
            print(f"webhook-receiver: --secret-file {path}: empty", file=sys.stderr)
            return 2
        secrets.append(value)
    for name in args.secret_env or ([] if args.secret_file else ["NOTIFY_WEBHOOK_SECRET"]):
        value = os.environ.get(name, "")
        if value:
            secrets.append(value.encode())
    Handler.state = State(args.out, secrets, args.tolerance)
    srv = Server((args.host, args.port), Handler)

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    check = (f"signatures checked ({len(secrets)} secret{'s' if len(secrets) > 1 else ''})"
             if secrets else "signatures NOT checked (no secret)")
    print(f"listening on {args.host}:{srv.server_address[1]}, {check}", flush=True)
    srv.serve_forever()
    srv.server_close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
