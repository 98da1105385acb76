#!/usr/bin/env python3
"""tools/webhook-receiver.py over HTTP: which signatures it accepts.

Starts the receiver on a free loopback port with a secret it creates itself
and an older one from the environment (a rotation), then posts
notifications signed as notification-service signs them
(t=<unix>,v1=<HMAC-SHA256 of "<t>.<X-Event-Id>.<body>">) and checks each
answer. Exit 0 when every check holds.
"""

import hashlib
import hmac
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RECEIVER = os.path.join(ROOT, "tools", "webhook-receiver.py")
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(secret, t, event_id, body):
    mac = hmac.new(secret, f"{t}.{event_id}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post(port, body, headers):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/notify", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        secret_path = os.path.join(tmp, "webhook.secret")
        port = free_port()
        env = dict(os.environ, OLD_SECRET="the-secret-before-the-rotation")
        proc = subprocess.Popen(
            [sys.executable, "-u", RECEIVER, "--port", str(port), "--out",
             os.path.join(tmp, "out.jsonl"), "--secret-file", secret_path, "--create-secret",
             "--secret-env", "OLD_SECRET", "--tolerance", "60"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            check(proc.poll() is None, "the receiver starts")
            mode = stat.S_IMODE(os.stat(secret_path).st_mode)
            check(mode == 0o600, f"the secret it creates is private (mode {oct(mode)})")
            with open(secret_path, "rb") as f:
                secret = f.read().strip()
            check(len(secret) == 64, "the secret is 32 random bytes in hex")

            body = json.dumps({"type": "shop.order.OrderConfirmed", "order_id": "o-1"}).encode()
            now = int(time.time())
            ev = "3b0c3c1e-0d2a-4a8e-9a55-1f0d2c8e7b10"

            def answer(sig, event_id=ev, data=body):
                hdrs = {"X-Event-Id": event_id}
                if sig is not None:
                    hdrs["X-Signature"] = sig
                return post(port, data, hdrs)

            code, res = answer(sign(secret, now, ev, body))
            check(code == 200 and res.get("status") == "received", "a valid signature is accepted")
            code, res = answer(sign(secret, now, ev, body))
            check(code == 200 and res.get("status") == "duplicate",
                  "the same event id again is a duplicate")
            ev2 = "9f1d6a7e-5b1c-4d1e-8c6f-2a3b4c5d6e7f"
            code, _ = answer(sign(b"the-secret-before-the-rotation", now, ev2, body), ev2)
            check(code == 200, "the previous secret (a rotation) is accepted")
            two = sign(b"wrong", now, ev2, body) + "," + sign(secret, now, ev2, body).split(",")[1]
            code, _ = answer(two, ev2)
            check(code == 200, "any matching v1 among several is enough")
            code, res = answer(sign(b"wrong", now, ev2, body), ev2)
            check(code == 401 and "no signature matches" in res.get("error", ""),
                  "a wrong secret is refused")
            code, res = answer(sign(secret, now - 600, ev2, body), ev2)
            check(code == 401 and "tolerance" in res.get("error", ""),
                  "a signature older than the tolerance (a replay) is refused")
            code, _ = answer(sign(secret, now, ev2, body), "another-id")
            check(code == 401, "a signature is bound to its X-Event-Id")
            code, _ = answer(sign(secret, now, ev2, body), ev2, body + b" ")
            check(code == 401, "a signature is bound to the exact body")
            for bad in ("", "sha256=" + "0" * 64, f"t=abc,v1={'0' * 64}", f"t={now}"):
                code, _ = answer(bad or None, ev2)
                check(code == 401, f"a malformed signature {bad!r} is refused")
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
        check("created a random webhook secret" in out, "the receiver says it created a secret")

    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, RECEIVER, "--secret-file", os.path.join(tmp, "nope")],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 2 and "--secret-file" in r.stderr and "nope" in r.stderr,
              "a missing secret file is named and refused")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
