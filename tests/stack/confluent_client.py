#!/usr/bin/env python3
"""Confluent's own Python client, as the other side of interop tests.

Produces and consumes Avro records in the Confluent wire format (a zero byte,
the 4-byte big-endian schema id, the Avro binary body) with confluent_kafka's
Producer and Consumer and the AvroSerializer / AvroDeserializer of
confluent_kafka.schema_registry, against a real Kafka and a real
Confluent-compatible schema registry (tools/schema-registry).

  produce --bootstrap B --registry URL --topic T --schema FILE.avsc
          [--strategy topic_record|record|topic] [--key-field F]
          [--input auto|envelope|avro-json|plain] [--header K=V ...] < lines
      One record per input line (blank lines are skipped). A line is
        - an evctl envelope, {"type": ..., "value": {...}, "key": ...,
          "headers": {...}, ...} (tools/demo-orders.jsonl), whose value is in
          Avro's JSON encoding (a union's value as {"string": "..."});
        - or the value alone, in Avro's JSON encoding or as a plain dict
          (unions as bare values).
      --input auto (the default) takes a line for an envelope when it has
      "type" and "value" and only evctl's envelope fields, and decodes a
      value as Avro JSON first, then as a plain dict. An envelope's "type"
      must be the schema's full name; its headers become record headers.
      The key (UTF-8 bytes): the value's --key-field, else the envelope's
      "key", else the value's order_id when it has one (evctl's rule), else
      none. The schema is registered (auto.register.schemas) under the
      subject of --strategy (default topic_record: "<topic>-<full name>").
      Prints one JSON line: {"topic", "subject", "schema_id", "produced"}.
      Exit 0 when every record was acknowledged by the broker; 1 on a bad
      line, a serialization or registry error or a delivery error.

  consume --bootstrap B --registry URL --topic T --count N [--timeout S]
          [--group G] [--skip-other] [--strategy ...] [--logical]
      Reads T from the beginning in a fresh consumer group (default a
      random name; auto.offset.reset=earliest, no commits) and decodes each
      value with its writer schema, fetched from the registry by the id in
      the value. Prints one JSON line per record:
        {"topic", "partition", "offset", "key", "headers", "schema_id", "value"}
      Logical types are left as their Avro values (timestamp-millis as the
      long, uuid as the string), so a value reads back as it was written;
      --logical converts them (then as ISO 8601 / strings). Exit 0 after N
      records; 1 at a record it cannot decode (a value that does not start
      with the zero byte, an unknown schema id, a bad body: it says which
      record and why); 3 when fewer than N arrived within --timeout
      (default 60 s). --skip-other skips (and counts) values that do not
      start with the zero byte instead of failing on them.

Common options: --registry-timeout S (the SchemaRegistryClient's HTTP timeout,
default 10). The subject name strategy is always pinned to one of the three
functions (never the client's default "associated" strategy, which asks the
registry's /associations endpoint first).

Needs confluent-kafka[avro]: `tools/schema-registry python` prints an
interpreter that has it (the venv ${XDG_CACHE_HOME:-~/.cache}/libevents/venv-confluent).
"""

import argparse
import datetime
import decimal
import io
import json
import struct
import sys
import time
import uuid

try:
    import fastavro
    import fastavro.read
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.schema_registry import (
        Schema,
        SchemaRegistryClient,
        record_subject_name_strategy,
        topic_record_subject_name_strategy,
        topic_subject_name_strategy,
    )
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError as e:  # pragma: no cover - depends on the interpreter
    sys.stderr.write(
        "confluent_client: %s: this needs confluent-kafka[avro]; run it with the "
        "interpreter `tools/schema-registry python` prints\n" % e
    )
    sys.exit(2)

STRATEGIES = {
    "topic_record": topic_record_subject_name_strategy,
    "record": record_subject_name_strategy,
    "topic": topic_subject_name_strategy,
}
ENVELOPE_FIELDS = {"type", "key", "id", "topic", "headers", "value", "time"}

EXIT_ERROR = 1
EXIT_TIMEOUT = 3


def err(msg):
    sys.stderr.write("confluent_client: %s\n" % msg)
    sys.stderr.flush()


def full_name(schema):
    name = schema.get("name", "")
    ns = schema.get("namespace")
    return name if "." in name or not ns else ns + "." + name


def jsonable(o):
    if isinstance(o, (bytes, bytearray)):
        # Avro's JSON encoding of bytes: code points 0-255
        return bytes(o).decode("latin-1")
    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, (uuid.UUID, decimal.Decimal)):
        return str(o)
    raise TypeError("not JSON serializable: %r" % type(o))


def header_list(pairs):
    out = []
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit("confluent_client: --header %r: expected K=V" % p)
        k, v = p.split("=", 1)
        out.append((k, v.encode("utf-8")))
    return out


def parse_args():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (head -n 60 %s) for the details." % sys.argv[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
        p.add_argument("--registry", required=True,
                       help="schema registry URL (Confluent API, e.g. http://127.0.0.1:18081/apis/ccompat/v7)")
        p.add_argument("--topic", required=True)
        p.add_argument("--strategy", choices=sorted(STRATEGIES), default="topic_record",
                       help="subject name strategy (default topic_record)")
        p.add_argument("--registry-timeout", type=float, default=10.0,
                       help="HTTP timeout of the registry client in seconds (default 10)")
        p.add_argument("-X", dest="props", action="append", default=[], metavar="PROP=VALUE",
                       help="an extra librdkafka property (repeatable)")

    p = sub.add_parser("produce", help="serialize JSON lines from stdin and produce them")
    common(p)
    p.add_argument("--schema", required=True, help="the .avsc file of the values")
    p.add_argument("--key-field", help="the value's field whose string is the record key")
    p.add_argument("--input", choices=["auto", "envelope", "avro-json", "plain"], default="auto")
    p.add_argument("--header", action="append", metavar="K=V", help="a header on every record (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the broker's acknowledgements (default 30)")

    c = sub.add_parser("consume", help="read, deserialize and print records")
    common(c)
    c.add_argument("--count", type=int, required=True, help="records to read")
    c.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for them (default 60)")
    c.add_argument("--group", help="consumer group (default a fresh random one)")
    c.add_argument("--skip-other", action="store_true",
                   help="skip values that do not start with the zero byte instead of failing")
    c.add_argument("--logical", action="store_true",
                   help="convert logical types (timestamps to ISO 8601, uuid, decimal)")
    return ap.parse_args()


def kafka_conf(args, extra):
    conf = {"bootstrap.servers": args.bootstrap}
    conf.update(extra)
    for p in args.props:
        if "=" not in p:
            raise SystemExit("confluent_client: -X %r: expected PROP=VALUE" % p)
        k, v = p.split("=", 1)
        conf[k] = v
    return conf


def registry_client(args):
    return SchemaRegistryClient({"url": args.registry, "timeout": args.registry_timeout})


# ----------------------------------------------------------------- produce

def decode_value(raw, parsed, mode, where):
    """The Python value of a record from its JSON form, per --input."""
    if mode in ("auto", "avro-json"):
        try:
            return next(fastavro.json_reader(io.StringIO(json.dumps(raw)), parsed))
        except Exception as e:  # fastavro raises several types here
            if mode == "avro-json":
                raise ValueError("%s: not a value of the schema in Avro's JSON encoding: %s" % (where, e))
    if not fastavro.validate(raw, parsed, raise_errors=False):
        try:
            fastavro.validate(raw, parsed, raise_errors=True)
        except Exception as e:
            raise ValueError("%s: not a value of the schema: %s" % (where, e))
    return raw


def do_produce(args):
    try:
        with open(args.schema, encoding="utf-8") as f:
            schema_str = f.read()
        schema_json = json.loads(schema_str)
        parsed = fastavro.parse_schema(schema_json)
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as e:
        err("%s: %s" % (args.schema, e))
        return EXIT_ERROR
    if not isinstance(schema_json, dict) or schema_json.get("type") != "record":
        err("%s: expected a record schema" % args.schema)
        return EXIT_ERROR
    name = full_name(schema_json)
    field_names = {f["name"] for f in schema_json.get("fields", [])}
    strategy = STRATEGIES[args.strategy]
    serializer = AvroSerializer(
        registry_client(args), schema_str,
        conf={"auto.register.schemas": True, "subject.name.strategy": strategy})
    producer = Producer(kafka_conf(args, {"acks": "all", "linger.ms": 5,
                                          "message.timeout.ms": int(args.timeout * 1000)}))
    extra_headers = header_list(args.header)
    subject = strategy(SerializationContext(args.topic, MessageField.VALUE), name)

    failures = []

    def on_delivery(e, msg):
        if e is not None:
            failures.append("key %r: %s" % (msg.key(), e))

    produced, ids, rc = 0, set(), 0
    t0 = time.monotonic()
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        where = "line %d" % lineno
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("%s: expected a JSON object" % where)
            envelope = args.input == "envelope" or (
                args.input == "auto" and "type" in doc and "value" in doc
                and set(doc) <= ENVELOPE_FIELDS and not ({"type", "value"} <= field_names))
            key, headers = None, list(extra_headers)
            if envelope:
                if doc.get("type") != name:
                    raise ValueError("%s: type %r, but the schema is %s" % (where, doc.get("type"), name))
                if not isinstance(doc.get("value"), dict):
                    raise ValueError("%s: value: expected an object" % where)
                value = decode_value(doc["value"], parsed, "avro-json" if args.input == "envelope" else "auto",
                                     where + ": value")
                if isinstance(doc.get("key"), str):
                    key = doc["key"]
                for k, v in (doc.get("headers") or {}).items():
                    headers.append((k, None if v is None else str(v).encode("utf-8")))
            else:
                value = decode_value(doc, parsed, args.input, where)
            if args.key_field:
                if args.key_field not in value or value[args.key_field] is None:
                    raise ValueError("%s: no field %s for the key" % (where, args.key_field))
                key = str(value[args.key_field])
            elif key is None and isinstance(value.get("order_id"), (str, uuid.UUID)):
                key = str(value["order_id"])
            ctx = SerializationContext(args.topic, MessageField.VALUE, headers)
            data = serializer(value, ctx)
        except Exception as e:
            if str(e).startswith("line "):
                err(str(e))
            else:  # from the serializer: the registry, or the value
                err("%s: %s: %s (registry %s)" % (where, type(e).__name__, e, args.registry))
            rc = EXIT_ERROR
            break
        if len(data) < 5 or data[0] != 0:
            err("%s: the serializer did not write the Confluent framing (%r...)" % (where, data[:5]))
            rc = EXIT_ERROR
            break
        ids.add(struct.unpack(">I", data[1:5])[0])
        while True:
            try:
                producer.produce(args.topic, key=None if key is None else key.encode("utf-8"), value=data,
                                 headers=headers or None, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        produced += 1
        producer.poll(0)
    left = producer.flush(args.timeout)
    acked = produced - len(failures) - left
    for f in failures:
        err("delivery failed: %s" % f)
    if left:
        err("%d records not acknowledged after %.0f s" % (left, args.timeout))
    if failures or left:
        rc = EXIT_ERROR
    print(json.dumps({"topic": args.topic, "subject": subject,
                      "schema_id": sorted(ids)[0] if len(ids) == 1 else sorted(ids) or None,
                      "produced": acked}),
          flush=True)
    err("produced %d records to %s in %.1f s (subject %s, schema id %s)%s" % (
        produced, args.topic, time.monotonic() - t0, subject,
        ", ".join(str(i) for i in sorted(ids)) or "-", "" if rc == 0 else "; FAILED"))
    return rc


# ----------------------------------------------------------------- consume

def do_consume(args):
    if not args.logical:
        # Values as written: no datetime / UUID / Decimal objects.
        fastavro.read.LOGICAL_READERS.clear()
    deserializer = AvroDeserializer(registry_client(args),
                                    conf={"subject.name.strategy": STRATEGIES[args.strategy]})
    group = args.group or "confluent-client-%s" % uuid.uuid4().hex[:12]
    consumer = Consumer(kafka_conf(args, {
        "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "enable.partition.eof": False}))
    consumer.subscribe([args.topic])
    read = skipped = 0
    rc = 0
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    warned = set()
    try:
        while read < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                err("timed out after %.0f s: %d of %d records read from %s (%d skipped)" % (
                    args.timeout, read, args.count, args.topic, skipped))
                rc = EXIT_TIMEOUT
                break
            msg = consumer.poll(min(left, 0.5))
            if msg is None:
                continue
            if msg.error():
                e = msg.error()
                if e.fatal():
                    err("consumer: fatal: %s" % e)
                    rc = EXIT_ERROR
                    break
                if e.code() not in warned:  # e.g. the topic does not exist yet
                    warned.add(e.code())
                    err("consumer: %s (still waiting)" % e)
                continue
            where = "%s partition %d offset %d" % (msg.topic(), msg.partition(), msg.offset())
            value = msg.value()
            if value is None or len(value) < 1 or value[0] != 0:
                why = "no value (a tombstone)" if value is None else \
                    "empty value" if len(value) == 0 else "first byte 0x%02x, not 0x00" % value[0]
                if args.skip_other:
                    skipped += 1
                    continue
                err("%s: not in the Confluent wire format: %s" % (where, why))
                rc = EXIT_ERROR
                break
            if len(value) < 5:
                err("%s: not in the Confluent wire format: %d bytes, shorter than the framing" % (
                    where, len(value)))
                rc = EXIT_ERROR
                break
            schema_id = struct.unpack(">I", value[1:5])[0]
            headers = msg.headers() or []
            try:
                obj = deserializer(value, SerializationContext(msg.topic(), MessageField.VALUE, headers))
            except Exception as e:
                err("%s: cannot deserialize (schema id %d): %s: %s" % (where, schema_id, type(e).__name__, e))
                rc = EXIT_ERROR
                break
            key = msg.key()
            out = {
                "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                "key": None if key is None else key.decode("utf-8", "replace"),
                "headers": {k: (None if v is None else v.decode("utf-8", "replace")) for k, v in headers},
                "schema_id": schema_id, "value": obj,
            }
            print(json.dumps(out, default=jsonable, sort_keys=False), flush=True)
            read += 1
    except KafkaException as e:
        err("consumer: %s" % e)
        rc = EXIT_ERROR
    finally:
        consumer.close()
    if rc == 0:
        err("read %d records from %s in %.1f s (%d skipped)" % (read, args.topic, time.monotonic() - t0, skipped))
    return rc


def main():
    args = parse_args()
    try:
        return do_produce(args) if args.cmd == "produce" else do_consume(args)
    except KafkaException as e:
        err("kafka: %s" % e)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
