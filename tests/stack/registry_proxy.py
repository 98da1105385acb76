#!/usr/bin/env python3
"""An HTTPS front for a schema registry that asks for HTTP basic auth, as a
reverse proxy (nginx, an API gateway) in front of a registry does in many
deployments. For tests of the registry client's TLS and basic auth settings.

  registry_proxy.py --port P --cert CERT.pem --key KEY.pem --upstream URL
                    --user U --password-file FILE

Serves https://127.0.0.1:P/<path>: a request without the right
`Authorization: Basic` header gets 401 with a Confluent-style error body;
others are forwarded to <upstream>/<path> (method, body, Content-Type) and
its answer returned. Prints "ready" on standard output once it listens.
"""
import argparse
import base64
import http.server
import ssl
import sys
import urllib.error
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    args = ap.parse_args()
    with open(args.password_file) as f:
        password = f.read().rstrip("\n")
    expected = "Basic " + base64.b64encode(f"{args.user}:{password}".encode()).decode()
    upstream = args.upstream.rstrip("/")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet
            pass

        def answer(self, status, body, ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n) if n else None
            if self.headers.get("Authorization") != expected:
                self.answer(401, b'{"error_code":401,"message":"Unauthorized"}')
                return
            req = urllib.request.Request(upstream + self.path, data=data, method=self.command)
            if self.headers.get("Content-Type"):
                req.add_header("Content-Type", self.headers["Content-Type"])
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    self.answer(r.status, r.read(), r.headers.get("Content-Type", "application/json"))
            except urllib.error.HTTPError as e:
                self.answer(e.code, e.read(), e.headers.get("Content-Type", "application/json"))

        do_GET = do_POST = do_PUT = do_DELETE = forward

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
