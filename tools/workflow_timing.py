"""Timing the order workflow from its records (Python standard library
only): the orders to publish, reading the topics back with `evctl tail`,
and the per-hop and end-to-end latencies taken from the events' own Kafka
timestamps. Used by tools/hop-latency and tools/bench/bench_workflow."""

import json
import os
import subprocess
import time
import uuid

HOPS = [
    ("placed -> accepted/rejected", "order-service",
     ["OrderPlaced"], ["OrderAccepted", "OrderRejected"]),
    ("accepted -> payment result", "billing-service",
     ["OrderAccepted"], ["PaymentSucceeded", "PaymentFailed"]),
    ("payment result -> confirmed/cancelled", "order-service",
     ["PaymentSucceeded", "PaymentFailed"], ["OrderConfirmed", "OrderCancelled"]),
    ("confirmed/cancelled/rejected -> notified", "notification-service",
     ["OrderConfirmed", "OrderCancelled", "OrderRejected"], ["NotificationSent"]),
]


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def order_line(i, kind="valid", tag="latency"):
    """One `evctl publish` line and its order id. kind: valid, invalid (a
    quantity of 0: rejected) or declined (a token the payment rules
    decline: cancelled)."""
    oid = str(uuid.uuid4())
    quantity = 0 if kind == "invalid" else 1
    token = "tok_decline_insufficient" if kind == "declined" else "tok_visa_4242"
    return json.dumps({
        "type": "shop.order.OrderPlaced",
        "value": {
            "order_id": oid, "customer_id": "cust-%s-%d" % (tag, i),
            "customer_email": {"string": "%s@example.com" % tag},
            "items": [{"sku": "BOOK-42", "quantity": quantity, "unit_price_minor": 1999}],
            "currency": "EUR", "total_minor": 1999 * quantity, "payment_token": token,
            "placed_at": int(time.time() * 1000)}}), oid


def default_evctl():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, os.environ.get("LEV_BUILD_DIR", "build"), "tools", "evctl", "evctl")


def publish(evctl, lines, rate=None, linger0=False):
    """Publishes the lines with evctl (all at once, or at `rate` per second)."""
    env = dict(os.environ)
    if linger0:  # sent as soon as published: an order's timestamp is when it leaves evctl
        env["KAFKA_LINGER_MS"] = "0"
    cmd = [evctl, "publish", "--quiet", "-"]
    if rate:
        cmd[2:2] = ["--rate", "%g/s" % rate]
    subprocess.run(cmd, input="\n".join(lines) + "\n", check=True, text=True, env=env,
                   stdout=subprocess.DEVNULL)


def tail(evctl, topic, since_ms):
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since_ms / 1000.0)) + "Z"
    out = subprocess.run([evctl, "tail", topic, "--from", since, "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


def notified(evctl, ids, since_ms):
    """How many of the orders `ids` have their notification."""
    seen = set()
    for r in tail(evctl, "notifications", since_ms):
        if r.get("key") in ids and r.get("type", "").endswith("NotificationSent"):
            seen.add(r["key"])
    return len(seen)


def wait_notified(evctl, ids, since_ms, timeout, every=1.0):
    deadline = time.time() + timeout
    while True:
        done = notified(evctl, ids, since_ms)
        if done == len(ids) or time.time() > deadline:
            return done
        time.sleep(every)


def events_of(evctl, ids, since_ms):
    """order id -> {event type (short name): its first Kafka timestamp}."""
    events = {}
    for topic in ("orders", "payments", "notifications"):
        for r in tail(evctl, topic, since_ms):
            if r.get("key") not in ids or "type" not in r:
                continue
            short = r["type"].rsplit(".", 1)[-1]
            events.setdefault(r["key"], {}).setdefault(short, r["timestamp_ms"])
    return events


def summarize(events):
    """Per-hop and end-to-end latencies (ms) of the orders' events."""
    result = {"hops": []}
    for name, service, froms, tos in HOPS:
        d = []
        for e in events.values():
            f = [e[t] for t in froms if t in e]
            t = [e[x] for x in tos if x in e]
            if f and t:
                d.append(min(t) - min(f))
        result["hops"].append({"hop": name, "service": service, "n": len(d),
                               "p50_ms": percentile(d, 50), "p95_ms": percentile(d, 95),
                               "p99_ms": percentile(d, 99), "max_ms": max(d) if d else None})
    e2e = [e["NotificationSent"] - e["OrderPlaced"] for e in events.values()
           if "NotificationSent" in e and "OrderPlaced" in e]
    result["end_to_end"] = {"n": len(e2e), "p50_ms": percentile(e2e, 50),
                            "p95_ms": percentile(e2e, 95), "p99_ms": percentile(e2e, 99),
                            "max_ms": max(e2e) if e2e else None}
    placed = [e["OrderPlaced"] for e in events.values() if "OrderPlaced" in e]
    done = [e["NotificationSent"] for e in events.values() if "NotificationSent" in e]
    result["span_ms"] = (max(done) - min(placed)) if placed and done else None
    return result


def print_table(result):
    print("%-42s %-22s %6s %7s %7s %7s %7s" % ("hop", "service", "n", "p50", "p95", "p99",
                                                "max"))
    rows = result["hops"] + [dict(result["end_to_end"], hop="placed -> notified",
                                  service="end to end")]
    for h in rows:
        print("%-42s %-22s %6d %5sms %5sms %5sms %5sms" % (
            h["hop"], h["service"], h["n"], h["p50_ms"], h["p95_ms"], h["p99_ms"],
            h["max_ms"]))
