#!/usr/bin/env python3
"""Cross-checks libevents' codec against fastavro, an independent Avro
implementation, for every *.avsc under the given directories (recursively):

  1. the Parsing Canonical Form and the CRC-64-AVRO fingerprint printed by
     `lev_canon SCHEMA` equal fastavro's to_parsing_canonical_form and
     fingerprint(..., "CRC-64-AVRO");
  2. for top-level records, random values written by fastavro
     (schemaless_writer) decode with libevents (`lev_canon --decode`) to the
     JSON fastavro's json_writer gives for them; and libevents encodes that
     JSON (`lev_canon --encode`) to the very bytes fastavro wrote.

    fastavro_check.py --lev-canon PATH DIR...

fastavro comes from Debian's python3-fastavro or the venv tools/deps makes
(${XDG_CACHE_HOME:-~/.cache}/libevents/venv); when this interpreter lacks it,
the script re-runs itself with one that has it. Without fastavro anywhere the
check FAILS: it never passes without having compared anything.
"""
import argparse
import io
import json
import os
import random
import string
import struct
import subprocess
import sys
import uuid


def python_candidates():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    venv = os.path.join(cache, "libevents", "venv", "bin")
    return [sys.executable, "/usr/bin/python3", os.path.join(venv, "python3"),
            os.path.join(venv, "python")]


def ensure_fastavro():
    try:
        import fastavro  # noqa: F401
        return
    except ImportError:
        pass
    if not os.environ.get("LEV_FASTAVRO_REEXEC"):
        for py in python_candidates():
            if not (os.path.isfile(py) and os.access(py, os.X_OK)):
                continue
            ok = subprocess.run([py, "-c", "import fastavro"], capture_output=True).returncode == 0
            if ok:
                env = dict(os.environ, LEV_FASTAVRO_REEXEC="1")
                os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)
    print("FAIL: fastavro is not installed (looked in: %s); run tools/deps"
          % ", ".join(python_candidates()))
    sys.exit(1)


ensure_fastavro()

from fastavro import parse_schema, schemaless_reader, schemaless_writer  # noqa: E402
from fastavro.json_write import json_writer  # noqa: E402
from fastavro.schema import fingerprint, to_parsing_canonical_form  # noqa: E402

SAMPLES = 25
MAX_DEPTH = 4
TEXT = string.ascii_letters + string.digits + " é漢\u00a0\U0001f600\"\\/\n\t"


def named(schema, names):
    return names.get(schema, schema) if isinstance(schema, str) else schema


def kind(schema, names):
    s = named(schema, names)
    if isinstance(s, list):
        return "union"
    if isinstance(s, str):
        return s
    return s["type"]


def gen(schema, names, rnd, depth):
    s = named(schema, names)
    k = kind(s, names)
    if k == "null":
        return None
    if k == "boolean":
        return rnd.random() < 0.5
    if k == "int":
        return rnd.choice([0, 1, -1, 2**31 - 1, -2**31, rnd.randint(-2**31, 2**31 - 1)])
    if k == "long":
        if isinstance(s, dict) and s.get("logicalType") == "timestamp-millis":
            return rnd.randint(0, 4102444800000)
        return rnd.choice([0, -1, 2**63 - 1, -2**63, rnd.randint(-2**63, 2**63 - 1)])
    if k == "float":
        return struct.unpack("f", struct.pack("f", rnd.uniform(-1e6, 1e6)))[0]
    if k == "double":
        return rnd.choice([0.0, -0.5, 1e-300, rnd.uniform(-1e12, 1e12)])
    if k == "string":
        if isinstance(s, dict) and s.get("logicalType") == "uuid":
            return str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        return "".join(rnd.choice(TEXT) for _ in range(rnd.randint(0, 12)))
    if k == "bytes":
        return bytes(rnd.randint(0, 255) for _ in range(rnd.randint(0, 12)))
    if k == "fixed":
        return bytes(rnd.randint(0, 255) for _ in range(s["size"]))
    if k == "enum":
        return rnd.choice(s["symbols"])
    if k == "array":
        n = 0 if depth >= MAX_DEPTH else rnd.randint(0, 3)
        return [gen(s["items"], names, rnd, depth + 1) for _ in range(n)]
    if k == "map":
        n = 0 if depth >= MAX_DEPTH else rnd.randint(0, 3)
        return {"k%d%s" % (i, rnd.choice(["", "é", "漢"])): gen(s["values"], names, rnd, depth + 1)
                for i in range(n)}
    if k == "union":
        branches = s
        if depth >= MAX_DEPTH:
            simple = [b for b in branches if kind(b, names) not in ("record", "array", "map")]
            branches = simple or branches
        b = rnd.choice(branches)
        v = gen(b, names, rnd, depth + 1)
        bk = kind(b, names)
        if bk in ("record", "enum", "fixed"):
            return (named(b, names)["name"], v)  # fastavro's explicit union branch
        return v
    if k == "record":
        return {f["name"]: gen(f["type"], names, rnd, depth + 1) for f in s["fields"]}
    raise ValueError("unsupported type %r" % (k,))


def index_names(schema, names):
    if isinstance(schema, list):
        for b in schema:
            index_names(b, names)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed", "error"):
            names[schema["name"]] = schema
        for f in schema.get("fields", []):
            index_names(f["type"], names)
        for key in ("items", "values"):
            if key in schema:
                index_names(schema[key], names)


def run(cmd, data=None):
    p = subprocess.run(cmd, input=data, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace").strip()


def fastavro_json(parsed, record):
    out = io.StringIO()
    json_writer(out, parsed, [record])
    return json.loads(out.getvalue())


def check_schema(lev_canon, path, failures):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    want_canon = to_parsing_canonical_form(raw)
    want_fp = int.from_bytes(bytes.fromhex(fingerprint(want_canon, "CRC-64-AVRO")), "little")
    rc, out, err = run([lev_canon, path])
    if rc != 0:
        failures.append("%s: lev_canon failed: %s" % (path, err))
        return 0
    got_fp, got_canon = out.decode("utf-8").rstrip("\n").split(" ", 1)
    if got_canon != want_canon:
        failures.append("%s: canonical form differs\n  libevents: %s\n  fastavro:  %s"
                        % (path, got_canon, want_canon))
    if int(got_fp, 16) != want_fp:
        failures.append("%s: fingerprint %s, fastavro %016x" % (path, got_fp, want_fp))
    if not (isinstance(raw, dict) and raw.get("type") == "record"):
        return 0

    parsed = parse_schema(raw)
    names = {}
    index_names(parsed, names)
    rnd = random.Random(path)
    for n in range(SAMPLES):
        record = gen(parsed, names, rnd, 0)
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, record)
        body = buf.getvalue()
        back = schemaless_reader(io.BytesIO(body), parsed, parsed)
        try:
            # From the generated value, which says which union branch each
            # value took (("name", value) for named types).
            want_json = fastavro_json(parsed, record)
        except RecursionError:
            # fastavro's JSON writer cannot handle recursive schemas: then
            # libevents' JSON must give back fastavro's bytes (below).
            want_json = None

        rc, out, err = run([lev_canon, "--decode", path], body)
        if rc != 0:
            failures.append("%s sample %d: libevents cannot decode fastavro's bytes %s: %s"
                            % (path, n, body.hex(), err))
            continue
        got_json = json.loads(out)
        if want_json is None:
            want_json = got_json
        elif got_json != want_json:
            failures.append("%s sample %d: decoded JSON differs\n  libevents: %s\n  fastavro:  %s"
                            % (path, n, json.dumps(got_json), json.dumps(want_json)))
            continue

        rc, out, err = run([lev_canon, "--encode", path], json.dumps(want_json).encode())
        if rc != 0:
            failures.append("%s sample %d: libevents cannot encode %s: %s"
                            % (path, n, json.dumps(want_json), err))
            continue
        if out != body:
            again = schemaless_reader(io.BytesIO(out), parsed, parsed)
            same = again == back
            failures.append("%s sample %d: bytes differ%s\n  libevents: %s\n  fastavro:  %s"
                            % (path, n, "" if same else " (and fastavro reads them differently)",
                               out.hex(), body.hex()))
    return SAMPLES


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lev-canon", required=True)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()

    files = []
    for d in args.dirs:
        for root, _, names in os.walk(d):
            files += [os.path.join(root, n) for n in names if n.endswith(".avsc")]
    files.sort()
    if not files:
        print("FAIL: no *.avsc under %s" % ", ".join(args.dirs))
        return 1

    failures = []
    values = 0
    for path in files:
        values += check_schema(args.lev_canon, path, failures)
    for f in failures:
        print("FAIL: " + f)
    print("%d schemas, %d values cross-checked with fastavro: %d failures"
          % (len(files), values, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
