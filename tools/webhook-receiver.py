#!/usr/bin/env python3
"""A small webhook receiver for notification-service (Python standard library only).

Accepts the notifications that notification-service POSTs (NOTIFY_WEBHOOK_URL),
checks their signature and keeps one copy per event id, so the notifications
of a local stack are visible:

  - X-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the secret>
    is verified when a secret is configured (--secret-env, default
    NOTIFY_WEBHOOK_SECRET); a missing or wrong signature is answered 401.
  - X-Event-Id identifies the notification: a redelivery with an id already
    received is answered 200 and recorded as a duplicate, not stored again.
  - Every accepted notification is printed as one line on stdout and, with
    --out FILE, appended to FILE as a JSON line
    {"received_at", "event_id", "duplicate", "body"}; ids already in FILE count
    as received after a restart.

Endpoints: POST <any path> (the webhook), GET /healthz ("ok"),
GET /notifications (the stored notifications as a JSON array).

Usage: webhook-receiver.py [--host 127.0.0.1] [--port 8080] [--out FILE]
                           [--secret-env NAME]
Stops cleanly on SIGTERM or SIGINT.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class State:
    def __init__(self, out, secret):
        self.out = out
        self.secret = secret.encode() if secret else None
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
        if st.secret is not None:
            want = "sha256=" + hmac.new(st.secret, raw, hashlib.sha256).hexdigest()
            got = self.headers.get("X-Signature", "")
            if not hmac.compare_digest(want.encode(), got.encode()):
                print(f"rejected a request with a bad signature ({self.path})", flush=True)
                self.reply(401, {"error": "bad signature"})
                return
        event_id = self.headers.get("X-Event-Id", "")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--out", help="append accepted notifications to this JSON-lines file")
    ap.add_argument("--secret-env", default="NOTIFY_WEBHOOK_SECRET",
                    help="environment variable holding the HMAC secret (unset or empty: no check)")
    args = ap.parse_args()

    secret = os.environ.get(args.secret_env, "")
    Handler.state = State(args.out, secret)
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    check = "signatures checked" if secret else "signatures NOT checked (no secret)"
    print(f"listening on {args.host}:{srv.server_address[1]}, {check}", flush=True)
    srv.serve_forever()
    srv.server_close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
