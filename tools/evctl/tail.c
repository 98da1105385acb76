/* evctl tail: print a topic's records as JSON lines, decoded from Avro. */
#include "evctl.h"

#include <errno.h>
#include <string.h>

static const evctl_opt_t opts[] = {
    {"from", "POS", "where to start (default: end with --follow, else beginning)", 0},
    {"until", "POS", "stop before this position", 0},
    {"follow", NULL, "keep waiting for new records (Ctrl-C stops)", 0},
    {"partition", "P[,P...]", "only these partitions", 0},
    {"type", "TYPE", "only events of this type (full name, or the name after the last dot)", 1},
    {"key", "KEY", "only records with this key", 1},
    {"max", "N", "stop after printing N records", 0},
    {NULL, NULL, NULL, 0},
};

typedef struct tail_s {
    evctl_ctx_t *ctx;
    evctl_filter_t filter;
    long long max;
    uint64_t printed;
    int closed; /* stdout went away */
} tail_t;

/* Scan callback of tail: prints a record that passes the filters; stops at
 * --max or when stdout is gone. */
static int on_record(void *opaque, evctl_scan_t *s, const rd_kafka_message_t *m)
{
    tail_t *t = opaque;
    char type[256];
    (void)s;
    if (!evctl_filter_match(t->ctx, &t->filter, m, type, sizeof type))
        return 0;
    json_t *j = evctl_record_json(t->ctx, m, NULL, 0);
    if (!j)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if (evctl_out(j) != 0) {
        t->closed = 1;
        return 1;
    }
    t->printed++;
    return t->max > 0 && t->printed >= (uint64_t)t->max ? 1 : 0;
}

/* evctl tail TOPIC: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    tail_t t = {.ctx = ctx};
    evctl_scan_t scan;
    evctl_progress_t prog;
    rd_kafka_t *rk = NULL;
    int rc, follow = evctl_flag(args, "follow");
    memset(&scan, 0, sizeof scan);
    if ((rc = evctl_opt_long(args, "max", 1, INT64_MAX, 0, &t.max)) != 0 ||
        (rc = evctl_range_check("from", evctl_opt(args, "from"), "until",
                                evctl_opt(args, "until"))) != 0)
        return rc;
    evctl_filter_init(&t.filter, args);
    if ((rc = evctl_load_schemas(ctx)) != 0)
        return rc;
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        return rc;
    if ((rc = evctl_scan_plan(&scan, ctx, rk, args->pos[0], evctl_opt(args, "partition"),
                              evctl_opt(args, "from"), follow ? "end" : "beginning",
                              evctl_opt(args, "until"), follow)) != 0)
        goto out;
    evctl_progress_init(&prog, ctx, "tail");
    prog.enabled = prog.enabled && !follow;
    rc = evctl_scan_run(&scan, on_record, &t, &prog, &t.printed);
    evctl_progress_end(&prog);
    if (t.closed)
        rc = errno == EPIPE ? 0 : EVCTL_EXIT_INTERNAL;
out:
    evctl_scan_clear(&scan);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_tail = {
    "tail",
    "TOPIC [options]",
    "print records as JSON lines with their metadata, decoded from Avro",
    "Each record becomes one line:\n"
    "  {\"topic\",\"partition\",\"offset\",\"timestamp\" (RFC 3339),\"timestamp_ms\",\"key\",\n"
    "   \"headers\":{name: value},\"type\",\"value\":{...Avro JSON...}}\n"
    "A record that does not decode (garbage, unknown schema fingerprint, truncated) is\n"
    "printed with \"error\":{\"class\",\"where\",\"message\"} and \"raw\" (the value in\n"
    "base64) instead of \"value\". Keys and header values that are not UTF-8 are shown as\n"
    "{\"base64\": ...}; a repeated header name maps to an array of values.\n"
    "\n"
    "Without --follow, tail stops at the end of every partition as it was when it\n"
    "started; with --follow it waits for new records until Ctrl-C (exit 130).\n"
    "\n",
    opts,
    1,
    1,
    run,
};
