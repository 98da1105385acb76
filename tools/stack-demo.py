#!/usr/bin/env python3
"""The order journeys of `tools/stack demo` (Python standard library only).

  stack-demo.py prepare TEMPLATE OUT
      Copies the sample orders of TEMPLATE (evctl publish JSON lines) to OUT
      with a fresh order id (and key) and placed_at = now for every line, so
      each demo run follows new orders. Prints the new order ids.

  stack-demo.py report ORDERS --evctl PATH [--timeout S] [--json-out FILE]
                       [--orders-topic T] [--payments-topic T]
                       [--notifications-topic T]
      Reads the orders, payments and notifications topics with
      `evctl tail TOPIC --from beginning --key <the order ids>` (no --follow;
      beyond 32 orders without --key, the records filtered by key here)
      until every order of ORDERS reached a terminal state (rejected,
      confirmed, cancelled) and was notified, or until the timeout; then
      prints each order's journey as a table and, with --json-out, one JSON
      line per order. An order's expected end is its "demo-expect" header.
      Exit 0 when every order finished as expected, 1 when one did not finish
      in time or ended otherwise, 2 when evctl failed. evctl takes its
      broker and topics description from the environment (KAFKA_BOOTSTRAP,
      LEV_SCHEMA_DIRS, LEV_TOPICS_FILE).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

TERMINAL = {"OrderRejected": "rejected", "OrderConfirmed": "confirmed", "OrderCancelled": "cancelled"}
# ISO 4217 currencies whose minor unit is not 2 digits (the rest: 2).
EXPONENT = {c: 0 for c in "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()}
EXPONENT.update({c: 3 for c in "BHD IQD JOD KWD LYD OMR TND".split()})


def money(minor, currency):
    e = EXPONENT.get(currency, 2)
    if e == 0:
        return f"{minor} {currency}"
    sign = "-" if minor < 0 else ""
    q, r = divmod(abs(minor), 10**e)
    return f"{sign}{q}.{r:0{e}d} {currency}"


def prepare(template, out):
    now_ms = int(time.time() * 1000)
    lines, ids = [], []
    with open(template, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            ev = json.loads(line)
            value = ev.get("value")
            if not isinstance(value, dict) or "order_id" not in value:
                sys.exit(f"{template}:{n}: not an order (no value.order_id)")
            oid = str(uuid.uuid4())
            value["order_id"] = oid
            if "placed_at" in value:
                value["placed_at"] = now_ms
            ev["key"] = oid
            ev.pop("id", None)
            lines.append(json.dumps(ev, separators=(",", ":")))
            ids.append(oid)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    for oid in ids:
        print(oid)


def load_orders(path):
    orders = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ev = json.loads(line)
                h = ev.get("headers") or {}
                orders.append({"order_id": ev["value"]["order_id"],
                               "case": h.get("demo-case", ""),
                               "expect": h.get("demo-expect", "")})
    return orders


KEY_FILTER_MAX = 32  # evctl tail --key takes at most this many values


def tail(evctl, topic, keys):
    """The records of topic whose key is one of keys (filtered by evctl when
    they are few, else here)."""
    cmd = [evctl, "tail", topic, "--from", "beginning", "--quiet"]
    if len(keys) <= KEY_FILTER_MAX:
        cmd += ["--key", ",".join(keys)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {p.returncode}): {p.stderr.strip()}")
    wanted = set(keys)
    recs = []
    for line in p.stdout.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("key") in wanted:
            recs.append(r)
    return recs


def journeys(orders, records):
    by_id = {o["order_id"]: dict(o, events={}, undecodable=0) for o in orders}
    for r in sorted(records, key=lambda r: (r.get("timestamp_ms", 0), r.get("offset", 0))):
        j = by_id.get(r.get("key"))
        if j is None:
            continue
        if "value" not in r:
            j["undecodable"] += 1
            continue
        short = (r.get("type") or "").rsplit(".", 1)[-1]
        # the first of each type counts; a redelivered duplicate would be a later one
        j["events"].setdefault(short, {"value": r["value"], "ts": r.get("timestamp_ms", 0),
                                       "count": 0})
        j["events"][short]["count"] += 1
    out = []
    for o in orders:
        j = by_id[o["order_id"]]
        ev = j["events"]
        check = "accepted" if "OrderAccepted" in ev else "rejected" if "OrderRejected" in ev else None
        pay = "paid" if "PaymentSucceeded" in ev else "declined" if "PaymentFailed" in ev else None
        end = next((TERMINAL[t] for t in ("OrderRejected", "OrderConfirmed", "OrderCancelled") if t in ev), None)
        notified = "NotificationSent" in ev
        detail = []
        if "OrderRejected" in ev:
            detail.append(",".join(x.get("code", "?") for x in ev["OrderRejected"]["value"].get("reasons", [])))
        if "PaymentSucceeded" in ev:
            v = ev["PaymentSucceeded"]["value"]
            detail.append(f"charged {money(v.get('amount_minor', 0), v.get('currency', ''))}")
        if "PaymentFailed" in ev:
            detail.append(ev["PaymentFailed"]["value"].get("reason_code", "declined"))
        if notified:
            ch = ev["NotificationSent"]["value"].get("channel", "")
            took = ev["NotificationSent"]["ts"] - ev["OrderPlaced"]["ts"] if "OrderPlaced" in ev else None
            detail.append(f"via {ch}" + (f" after {took / 1000:.1f} s" if took is not None else ""))
        dups = sorted(t for t, e in ev.items() if e["count"] > 1)
        if dups:
            detail.append("duplicates: " + ",".join(dups))
        if j["undecodable"]:
            detail.append(f"{j['undecodable']} undecodable records")
        finished = end is not None and notified
        ok = finished and (not o["expect"] or o["expect"] == end)
        out.append(dict(o, placed="OrderPlaced" in ev, check=check, payment=pay, end=end,
                        notified=notified, notifications=ev.get("NotificationSent", {}).get("count", 0),
                        finished=finished, ok=ok, detail="; ".join(d for d in detail if d)))
    return out


def journey_cells(j):
    """The stages of one order as (text, reached) pairs; None = not on this path."""
    wait = "..."
    cells = [("placed" if j["placed"] else wait, j["placed"])]
    cells.append((j["check"] or wait, j["check"] is not None))
    if j["check"] == "rejected":
        cells += [None, None]
    else:
        cells.append((j["payment"] or wait, j["payment"] is not None))
        cells.append((j["end"] or wait, j["end"] is not None))
    cells.append(("notified" if j["notified"] else wait, j["notified"]))
    return cells


def render_journey(j):
    widths = [6, 8, 8, 9, 8]
    s = ""
    pending_skip = 0
    for i, (cell, w) in enumerate(zip(journey_cells(j), widths)):
        if cell is None:
            pending_skip += w + 4
            continue
        if i > 0:
            s += " " + "-" * (pending_skip + 1) + "> " if pending_skip else " -> "
            pending_skip = 0
        s += cell[0].ljust(w)
    return s.rstrip()


def table(js):
    rows = [("ORDER", "CASE", "JOURNEY", "RESULT", "DETAIL")]
    for j in js:
        if not j["finished"]:
            res = "TIMEOUT"
        elif j["ok"]:
            res = "ok"
        else:
            res = f"EXPECTED {j['expect']}"
        rows.append((j["order_id"][:8], j["case"], render_journey(j), res, j["detail"]))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(r[i].ljust(w[i]) for i in range(4)) + "  " + r[4])
        if k == 0:
            lines.append("  ".join("-" * w[i] for i in range(4)) + "  " + "-" * 6)
    return "\n".join(x.rstrip() for x in lines)


def report(args):
    orders = load_orders(args.orders)
    keys = [o["order_id"] for o in orders]
    topics = [args.orders_topic, args.payments_topic, args.notifications_topic]
    deadline = time.monotonic() + args.timeout
    tty = sys.stderr.isatty()
    t0 = time.monotonic()
    while True:
        try:
            recs = []
            for t in topics:
                recs += tail(args.evctl, t, keys)
        except RuntimeError as e:
            print(f"demo: {e}", file=sys.stderr)
            return 2
        js = journeys(orders, recs)
        done = sum(j["finished"] for j in js)
        if done == len(js) or time.monotonic() >= deadline:
            break
        if tty:
            print(f"\rdemo: {done}/{len(js)} orders finished ({time.monotonic() - t0:.0f} s)",
                  end="", file=sys.stderr, flush=True)
        time.sleep(args.interval)
    if tty:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    print(table(js))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            for j in js:
                f.write(json.dumps({k: j[k] for k in ("order_id", "case", "expect", "check", "payment", "end",
                                                      "notified", "notifications", "finished", "ok", "detail")}) + "\n")
    unfinished = [j for j in js if not j["finished"]]
    wrong = [j for j in js if j["finished"] and not j["ok"]]
    took = time.monotonic() - t0
    if unfinished:
        print(f"\ndemo: {len(unfinished)} of {len(js)} orders did not finish within {args.timeout:g} s",
              file=sys.stderr)
    if wrong:
        print(f"\ndemo: {len(wrong)} of {len(js)} orders ended otherwise than expected", file=sys.stderr)
    if unfinished or wrong:
        return 1
    more = sum(j["notifications"] > 1 for j in js)
    print(f"\n{len(js)} orders finished as expected in {took:.1f} s "
          f"({sum(j['end'] == 'confirmed' for j in js)} confirmed, "
          f"{sum(j['end'] == 'rejected' for j in js)} rejected, "
          f"{sum(j['end'] == 'cancelled' for j in js)} cancelled; "
          + (f"{more} notified more than once)" if more else "each notified once)"))
    return 0


def main():
    ap = argparse.ArgumentParser(description="order journeys of tools/stack demo")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("template")
    p.add_argument("out")
    r = sub.add_parser("report")
    r.add_argument("orders")
    r.add_argument("--evctl", required=True)
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("--interval", type=float, default=1.0)
    r.add_argument("--json-out")
    r.add_argument("--orders-topic", default="orders")
    r.add_argument("--payments-topic", default="payments")
    r.add_argument("--notifications-topic", default="notifications")
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.template, args.out)
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
