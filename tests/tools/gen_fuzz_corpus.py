#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_decode.c into tests/fuzz/corpus:
valid single-object encoded values of the test schemas (random values,
written by fastavro), the first of each also in the Confluent framing (00 +
the id the fuzz target binds to the schema: the low 31 bits of its
fingerprint), and the malformed cases the codec must refuse. Run once; the
files are checked in.

    python3 tests/tools/gen_fuzz_corpus.py [out_dir]
"""
import io
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastavro_check import gen, index_names  # noqa: E402  (also finds fastavro)

from fastavro import parse_schema, schemaless_writer  # noqa: E402
from fastavro.schema import fingerprint, to_parsing_canonical_form  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def zigzag(n):
    z = (n << 1) ^ (n >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def header(raw):
    le = fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO")
    return b"\xc3\x01" + bytes.fromhex(le)


def confluent_header(raw):
    """00 + the 4-byte big-endian id fuzz_decode.c binds to the schema."""
    le = bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
    fp = int.from_bytes(le, "little")
    return b"\x00" + (fp & 0x7FFFFFFF).to_bytes(4, "big")


def load(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return json.load(f)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus")
    os.makedirs(out, exist_ok=True)

    def write(name, data):
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)

    files = []
    for d in ("tests/data/avro", "schemas"):
        for root, _, names in os.walk(os.path.join(ROOT, d)):
            files += [os.path.relpath(os.path.join(root, n), ROOT)
                      for n in names if n.endswith(".avsc")]
    files.sort()
    valid = 0
    for rel in files:
        raw = load(rel)
        parsed = parse_schema(raw)
        names = {}
        index_names(parsed, names)
        rnd = random.Random(rel)
        stem = rel.replace("/", "_").replace(".avsc", "")
        for n in range(3):
            buf = io.BytesIO()
            schemaless_writer(buf, parsed, gen(parsed, names, rnd, 0))
            write("valid-%s-%d" % (stem, n), header(raw) + buf.getvalue())
            valid += 1
            if n == 0:
                write("valid-confluent-%s" % stem, confluent_header(raw) + buf.getvalue())
                valid += 1

    nulls = header(load("tests/data/avro/nulls.avsc"))
    all_types = header(load("tests/data/avro/all_types.avsc"))
    status_new = header(load("tests/data/avro/evolution/enum_added_symbol/new.avsc"))
    promoted_old = header(load("tests/data/avro/evolution/promotion/old.avsc"))
    bad = {
        "garbage": b"hello, this is not an Avro value",
        "bad-magic": b"\xc3\x02" + nulls[2:] + b"\x00\x00",
        "short-header": nulls[:7],
        "unknown-fingerprint": b"\xc3\x01\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00",
        # 6 bytes claiming 200 million nulls, then an empty map.
        "array-null-200-million": nulls + zigzag(200000000) + b"\x00" + b"\x00",
        # all_types: n, b, i, l, f, d, then a string claiming 1.5 GB.
        "huge-string-length": all_types + b"\x00\x00\x00" + b"\x00" * 12 + zigzag(1500000000)
        + b"abc",
        "enum-ordinal-out-of-range": status_new + zigzag(5),
        # promotion/old: count, ratio, big, small, then union index 4 of 2.
        "union-index-out-of-range": promoted_old + b"\x02" + b"\x00" * 4 + b"\x02\x02"
        + zigzag(4),
        "truncated-body": promoted_old + b"\x02\x00\x00",
        "trailing-garbage": status_new + zigzag(1) + b"\xff\xff",
        "negative-length": all_types + b"\x00\x00\x00" + b"\x00" * 12 + zigzag(-1),
        "varint-too-long": status_new + b"\x80" * 11 + b"\x00",
        "negative-block-count": nulls + zigzag(-3) + zigzag(0) + b"\x00" + b"\x00",
        "confluent-truncated-header": b"\x00\x00\x01",
        "confluent-unknown-id": b"\x00\x7f\xff\xff\xf0\x02",
        "confluent-bad-body": confluent_header(load("tests/data/avro/nulls.avsc"))
        + zigzag(200000000) + b"\x00",
    }
    for name, data in bad.items():
        write("bad-" + name, data)
    print("wrote %d valid and %d malformed inputs to %s" % (valid, len(bad), out))


if __name__ == "__main__":
    main()
