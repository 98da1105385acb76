/*
 * evctl dlq list | show | redrive: a consumer group's dead-letter topic
 * (<group>.dlq). Dead-letter records carry the original key, value and
 * headers plus the lev_* headers of libevents/worker.h.
 */
#include "evctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The dead-letter topic of a group into out; EVCTL_EXIT_USAGE for a bad name. */
static int dlq_topic(const char *group, char *out, size_t size)
{
    if (!*group || strlen(group) > 200)
        return evctl_fail(EVCTL_EXIT_USAGE, "\"%s\" is not a consumer group name", group);
    lev_dlq_topic_name(group, out, size);
    return 0;
}

/* ======================================================================
 * dlq list
 * ====================================================================== */

static const evctl_opt_t list_opts[] = {
    {"since", "TIME", "only records dead-lettered at or after TIME (RFC 3339 or now-<duration>)",
     0},
    {"until", "TIME", "only records dead-lettered before TIME", 0},
    {"format", "json|table", "JSON lines (default) or a table for people", 0},
    {NULL, NULL, NULL, 0},
};

typedef struct bucket_s {
    char *cls, *reason, *msg; /* msg: the latest message of the bucket, as it is */
    uint64_t count;
    int64_t first_ms, last_ms;
    int32_t first_partition, last_partition;
    int64_t first_offset, last_offset;
    json_t *types, *topics; /* name -> count */
} bucket_t;

typedef struct list_s {
    evctl_ctx_t *ctx;
    json_t *index; /* "<class>\n<reason>" -> bucket number */
    bucket_t *b;
    size_t n;
    uint64_t total;
} list_t;

/* Adds one to obj[name] (a JSON integer, created at 1). */
static void count_in(json_t *obj, const char *name)
{
    json_t *c = json_object_get(obj, name);
    json_object_set_new(obj, name, json_integer(c ? json_integer_value(c) + 1 : 1));
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Length of a UUID (8-4-4-4-12 hex digits) at p, or 0. */
static size_t uuid_at(const char *p)
{
    static const int groups[] = {8, 4, 4, 4, 12};
    size_t n = 0;
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, n++)
            if (!is_hex(p[n]))
                return 0;
        if (g < 4 && p[n++] != '-')
            return 0;
    }
    return is_word(p[n]) ? 0 : n;
}

/* The reason of a dead-letter message: what varies from one record to the
 * next is replaced, so records that failed alike group together. A UUID
 * becomes <uuid>, a run of 16 or more hex digits <hex>, a number (not part
 * of a word: "sha256", "v1" stay) <n>, and the text between double quotes
 * <text>. Bytes that cannot be kept (out is full) are dropped. */
static void reason_of(const char *msg, char *out, size_t size)
{
    size_t o = 0;
#define PUT(str)                                                                                   \
    do {                                                                                           \
        for (const char *q_ = (str); *q_ && o + 1 < size; q_++)                                    \
            out[o++] = *q_;                                                                        \
    } while (0)
    for (const char *p = msg; *p && o + 1 < size;) {
        int boundary = p == msg || !is_word(p[-1]);
        size_t n;
        if (*p == '"') {
            const char *end = strchr(p + 1, '"');
            if (end) {
                PUT("\"<text>\"");
                p = end + 1;
                continue;
            }
        }
        if (boundary && (n = uuid_at(p)) > 0) {
            PUT("<uuid>");
            p += n;
            continue;
        }
        if (boundary) {
            for (n = 0; is_hex(p[n]); n++)
                ;
            if (n >= 16 && !is_word(p[n])) {
                PUT("<hex>");
                p += n;
                continue;
            }
        }
        if (boundary && *p >= '0' && *p <= '9') {
            while ((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9'))
                p++;
            PUT("<n>");
            continue;
        }
        out[o++] = *p++;
    }
#undef PUT
    out[o] = '\0';
}

/* Scan callback of dlq list: counts a record into its (class, reason)
 * bucket with its time, type and original topic. */
static int list_record(void *opaque, evctl_scan_t *s, const rd_kafka_message_t *m)
{
    list_t *l = opaque;
    char cls[128], msg[1024], reason[1024], topic[256], type[256], key[1280];
    (void)s;
    if (!evctl_header_str(m, LEV_H_ERROR_CLASS, cls, sizeof cls))
        snprintf(cls, sizeof cls, "(none)");
    if (!evctl_header_str(m, LEV_H_ERROR_MESSAGE, msg, sizeof msg))
        msg[0] = '\0';
    if (!evctl_header_str(m, LEV_H_ORIG_TOPIC, topic, sizeof topic))
        snprintf(topic, sizeof topic, "(none)");
    evctl_record_type(l->ctx, m, type, sizeof type);
    reason_of(msg, reason, sizeof reason);
    snprintf(key, sizeof key, "%s\n%s", cls, reason);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    json_t *idx = json_object_get(l->index, key);
    bucket_t *b;
    if (idx) {
        b = &l->b[json_integer_value(idx)];
    } else {
        bucket_t *grown = realloc(l->b, (l->n + 1) * sizeof *grown);
        if (!grown)
            return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        l->b = grown;
        b = &l->b[l->n];
        memset(b, 0, sizeof *b);
        b->cls = strdup(cls);
        b->reason = strdup(reason);
        b->msg = strdup(msg);
        b->types = json_object();
        b->topics = json_object();
        b->first_ms = ts;
        b->first_partition = m->partition;
        b->first_offset = m->offset;
        b->last_ms = ts;
        b->last_partition = m->partition;
        b->last_offset = m->offset;
        if (!b->cls || !b->reason || !b->msg || !b->types || !b->topics) {
            free(b->cls);
            free(b->reason);
            free(b->msg);
            json_decref(b->types);
            json_decref(b->topics);
            return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        }
        json_object_set_new(l->index, key, json_integer((json_int_t)l->n));
        l->n++;
    }
    b->count++;
    l->total++;
    if (ts < b->first_ms) {
        b->first_ms = ts;
        b->first_partition = m->partition;
        b->first_offset = m->offset;
    }
    if (ts >= b->last_ms) {
        b->last_ms = ts;
        b->last_partition = m->partition;
        b->last_offset = m->offset;
        if (strcmp(b->msg, msg) != 0) {
            char *latest = strdup(msg);
            if (latest) {
                free(b->msg);
                b->msg = latest;
            }
        }
    }
    count_in(b->types, type[0] ? type : "(unknown)");
    count_in(b->topics, topic);
    return 0;
}

/* qsort order of buckets: most records first, then the latest first. */
static int by_count(const void *a, const void *b)
{
    const bucket_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->last_ms > y->last_ms ? -1 : x->last_ms < y->last_ms;
}

/* A time as an RFC 3339 JSON string, null when unknown (< 0). */
static json_t *time_json(int64_t ms)
{
    char t[32];
    if (ms < 0)
        return json_null();
    lev_time_format(ms, t);
    return json_string(t);
}

/* dlq list --format table: one row per bucket and a total line. */
static void print_table(const list_t *l, const char *group)
{
    printf("%-7s  %-16s  %-24s  %-24s  %s\n", "COUNT", "CLASS", "FIRST", "LAST", "REASON");
    for (size_t i = 0; i < l->n; i++) {
        const bucket_t *b = &l->b[i];
        char first[32] = "-", last[32] = "-";
        if (b->first_ms >= 0)
            lev_time_format(b->first_ms, first);
        if (b->last_ms >= 0)
            lev_time_format(b->last_ms, last);
        printf("%-7llu  %-16.16s  %-24s  %-24s  %.100s\n", (unsigned long long)b->count, b->cls,
               first, last, b->reason);
    }
    printf("%llu dead letter%s in %s.dlq\n", (unsigned long long)l->total, l->total == 1 ? "" : "s",
           group);
    fflush(stdout);
}

/* evctl dlq list GROUP: returns an exit code. */
static int list_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    list_t l = {.ctx = ctx, .index = json_object()};
    evctl_scan_t scan;
    evctl_progress_t prog;
    rd_kafka_t *rk = NULL;
    char topic[256];
    const char *format = evctl_opt(args, "format");
    const char *since = evctl_opt(args, "since"), *until = evctl_opt(args, "until");
    int64_t ms;
    int rc;
    memset(&scan, 0, sizeof scan);
    if (format && strcmp(format, "json") != 0 && strcmp(format, "table") != 0) {
        rc = evctl_fail(EVCTL_EXIT_USAGE, "--format: expected json or table, got \"%s\"", format);
        goto out;
    }
    if ((since && evctl_time_parse(since, &ms) != 0) ||
        (until && evctl_time_parse(until, &ms) != 0)) {
        rc = evctl_fail(EVCTL_EXIT_USAGE,
                        "--%s: expected an RFC 3339 time or now-<duration>, got \"%s\"",
                        since && evctl_time_parse(since, &ms) != 0 ? "since" : "until",
                        since && evctl_time_parse(since, &ms) != 0 ? since : until);
        goto out;
    }
    if ((rc = evctl_range_check("since", since, "until", until)) != 0)
        goto out;
    if ((rc = dlq_topic(args->pos[0], topic, sizeof topic)) != 0 || (rc = evctl_load_schemas(ctx)))
        goto out;
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        goto out;
    if ((rc = evctl_scan_plan(&scan, ctx, rk, topic, NULL, since ? since : "beginning", NULL, until,
                              0)))
        goto out;
    evctl_progress_init(&prog, ctx, "dlq list");
    rc = evctl_scan_run(&scan, list_record, &l, &prog, NULL);
    evctl_progress_end(&prog);
    if (rc)
        goto out;
    if (l.n > 1)
        qsort(l.b, l.n, sizeof *l.b, by_count);
    if (format && strcmp(format, "table") == 0) {
        print_table(&l, args->pos[0]);
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        bucket_t *b = &l.b[i];
        json_t *j = json_pack(
            "{s:s,s:o,s:o,s:o,s:I,s:o,s:o,s:{s:i,s:I},s:{s:i,s:I},s:O,s:O}", "group", args->pos[0],
            "class", evctl_json_bytes(b->cls, strlen(b->cls)), "reason",
            evctl_json_bytes(b->reason, strlen(b->reason)), "message",
            evctl_json_bytes(b->msg, strlen(b->msg)), "count", (json_int_t)b->count, "first",
            time_json(b->first_ms), "last", time_json(b->last_ms), "first_record", "partition",
            (int)b->first_partition, "offset", (json_int_t)b->first_offset, "last_record",
            "partition", (int)b->last_partition, "offset", (json_int_t)b->last_offset, "types",
            b->types, "original_topics", b->topics);
        if (evctl_out(j) != 0)
            break;
    }
    evctl_note(ctx, "%llu dead letter%s in %s, %zu distinct error%s", (unsigned long long)l.total,
               l.total == 1 ? "" : "s", topic, l.n, l.n == 1 ? "" : "s");
out:
    for (size_t i = 0; i < l.n; i++) {
        free(l.b[i].cls);
        free(l.b[i].reason);
        free(l.b[i].msg);
        json_decref(l.b[i].types);
        json_decref(l.b[i].topics);
    }
    free(l.b);
    json_decref(l.index);
    evctl_scan_clear(&scan);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_dlq_list = {
    "dlq list",
    "GROUP [options]",
    "count a group's dead letters by error class and reason",
    "Reads <GROUP>.dlq from the beginning to its current end and groups the records by\n"
    "their lev_error_class and the reason of their lev_error_message: the message with\n"
    "what varies from record to record replaced (a UUID by <uuid>, 16+ hex digits by\n"
    "<hex>, a number by <n>, text in double quotes by \"<text>\"). One JSON line per\n"
    "group of errors, most frequent first:\n"
    "  {\"group\",\"class\",\"reason\",\"message\" (the latest, as it is),\"count\",\n"
    "   \"first\",\"last\" (dead-letter times),\n"
    "   \"first_record\"/\"last_record\":{\"partition\",\"offset\"} (for dlq show),\n"
    "   \"types\":{type: count},\"original_topics\":{topic: count}}\n",
    list_opts,
    1,
    1,
    list_run,
};

/* ======================================================================
 * dlq show
 * ====================================================================== */

static const evctl_opt_t show_opts[] = {
    {"partition", "P", "partition of the dead-letter record (required)", 0},
    {"offset", "O", "offset of the dead-letter record (required)", 0},
    {NULL, NULL, NULL, 0},
};

typedef struct show_s {
    evctl_ctx_t *ctx;
    int64_t offset;
    int found;
} show_t;

/* Scan callback of dlq show: prints the record at the wanted offset with
 * its dead-letter headers by meaning, then stops the scan. */
static int show_record(void *opaque, evctl_scan_t *s, const rd_kafka_message_t *m)
{
    show_t *sh = opaque;
    (void)s;
    if (m->offset != sh->offset)
        return 1; /* the offset holds no record (compacted, or a transaction marker) */
    json_t *j = evctl_record_json(sh->ctx, m, NULL, 0);
    if (!j)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    /* the dead-letter headers, by their meaning */
    static const struct {
        const char *header, *field;
    } dl[] = {
        {LEV_H_DLQ_VERSION, "version"},
        {LEV_H_ORIG_TOPIC, "original_topic"},
        {LEV_H_ORIG_PARTITION, "original_partition"},
        {LEV_H_ORIG_OFFSET, "original_offset"},
        {LEV_H_ORIG_TIMESTAMP, "original_timestamp"},
        {LEV_H_GROUP, "group"},
        {LEV_H_SERVICE, "service"},
        {LEV_H_ERROR_CLASS, "error_class"},
        {LEV_H_ERROR_MESSAGE, "error_message"},
        {LEV_H_ATTEMPTS, "attempts"},
        {LEV_H_FIRST_FAILURE, "first_failure"},
        {LEV_H_LAST_FAILURE, "last_failure"},
    };
    json_t *d = json_object();
    char buf[2048];
    for (size_t i = 0; i < sizeof dl / sizeof dl[0]; i++) {
        if (!evctl_header_str(m, dl[i].header, buf, sizeof buf))
            continue;
        /* times are milliseconds since the epoch: show them as RFC 3339 too */
        size_t len = strlen(buf);
        if (strstr(dl[i].field, "time") || strstr(dl[i].field, "failure")) {
            if (len > 0 && len < 18 && strspn(buf, "0123456789") == len) {
                char t[32], key[64];
                lev_time_format(strtoll(buf, NULL, 10), t);
                json_object_set_new(d, dl[i].field, json_string(t));
                snprintf(key, sizeof key, "%s_ms", dl[i].field);
                json_object_set_new(d, key, json_integer(strtoll(buf, NULL, 10)));
                continue;
            }
        }
        json_object_set_new(d, dl[i].field, evctl_json_bytes(buf, len));
    }
    json_object_set_new(j, "dead_letter", d);
    sh->found = 1;
    if (isatty(fileno(stdout)))
        evctl_out_pretty(j);
    else
        evctl_out(j);
    return 1;
}

/* evctl dlq show GROUP --partition P --offset O: returns an exit code. */
static int show_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    show_t sh = {.ctx = ctx};
    evctl_scan_t scan;
    rd_kafka_t *rk = NULL;
    char topic[256], from[64];
    long long partition, offset;
    int rc;
    memset(&scan, 0, sizeof scan);
    if (!evctl_opt(args, "partition") || !evctl_opt(args, "offset"))
        return evctl_fail(EVCTL_EXIT_USAGE, "dlq show: --partition and --offset are required "
                                            "(dlq list prints them)");
    if ((rc = evctl_opt_long(args, "partition", 0, INT32_MAX, 0, &partition)) ||
        (rc = evctl_opt_long(args, "offset", 0, INT64_MAX, 0, &offset)))
        return rc;
    if ((rc = dlq_topic(args->pos[0], topic, sizeof topic)) || (rc = evctl_load_schemas(ctx)))
        return rc;
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        return rc;
    snprintf(from, sizeof from, "%lld:%lld", partition, offset);
    if ((rc = evctl_scan_plan(&scan, ctx, rk, topic, NULL, from, NULL, NULL, 0)))
        goto out;
    sh.offset = offset;
    if (scan.n != 1 || scan.ranges[0].start != offset) {
        rc = evctl_fail(EVCTL_EXIT_DATA, "%s [%lld] has no offset %lld (it holds %lld..%lld)",
                        topic, partition, offset, scan.n ? (long long)scan.ranges[0].low : 0,
                        scan.n ? (long long)scan.ranges[0].high - 1 : -1);
        goto out;
    }
    rc = evctl_scan_run(&scan, show_record, &sh, NULL, NULL);
    if (!rc && !sh.found)
        rc = evctl_fail(EVCTL_EXIT_DATA, "%s [%lld] offset %lld holds no record", topic, partition,
                        offset);
out:
    evctl_scan_clear(&scan);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_dlq_show = {
    "dlq show",
    "GROUP --partition P --offset O",
    "print one dead-letter record in full",
    "Prints the record at <GROUP>.dlq [P] offset O with all its headers, its decoded\n"
    "value (or the decode error and the raw bytes in base64), and \"dead_letter\": the\n"
    "lev_* headers by meaning (original topic, partition, offset, timestamp, group,\n"
    "service, error class and message, attempts, first and last failure). Indented when\n"
    "stdout is a terminal, one line otherwise.\n",
    show_opts,
    1,
    1,
    show_run,
};

/* ======================================================================
 * dlq redrive
 * ====================================================================== */

static const evctl_opt_t redrive_opts[] = {
    {"class", "CLASS",
     "only this error class (decode, unknown-schema, handler, ...; one matching nothing is "
     "reported)",
     1},
    {"type", "TYPE", "only events of this type", 1},
    {"key", "KEY", "only records with this key", 1},
    {"since", "TIME", "only records dead-lettered at or after TIME", 0},
    {"until", "POS", "stop before this time (or offset position)", 0},
    {"from", "POS", "start here (default: beginning; resume with the printed value)", 0},
    {"partition", "P[,P...]", "only these partitions of the dead-letter topic", 0},
    {"to", "TOPIC", "send there instead of each record's lev_original_topic", 0},
    {"rate", "N/s", "at most N records per second (default 100/s; 0: unlimited)", 0},
    {"max", "N", "redrive at most N records", 0},
    {"dry-run", NULL, "print what would be sent; send nothing", 0},
    {NULL, NULL, NULL, 0},
};

/* evctl dlq redrive GROUP: returns an exit code. */
static int redrive_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    evctl_copy_t copy = {
        .verb = "redrive",
        .from_header = LEV_H_REDRIVE_FROM,
        .at_header = "evctl_redrive_at",
        .to = evctl_opt(args, "to"),
        .strip_dead_letter = 1,
        .dry_run = evctl_flag(args, "dry-run"),
        .rate = 100,
    };
    evctl_filter_t filter;
    evctl_scan_t scan;
    rd_kafka_t *rk = NULL;
    char topic[256];
    const char *since = evctl_opt(args, "since"), *from = evctl_opt(args, "from");
    int64_t since_ms = -1;
    int rc;
    memset(&scan, 0, sizeof scan);
    copy.classes = evctl_opt_all(args, "class", &copy.nclasses);
    if (since && evctl_time_parse(since, &since_ms) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE,
                          "--since: expected an RFC 3339 time or now-<duration>, got \"%s\"",
                          since);
    if (evctl_opt(args, "rate") && evctl_rate_parse(evctl_opt(args, "rate"), &copy.rate) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "--rate: expected N, N/s, N/m or N/h, got \"%s\"",
                          evctl_opt(args, "rate"));
    if ((rc = evctl_opt_long(args, "max", 1, INT64_MAX, 0, &copy.max)) != 0 ||
        (rc = evctl_range_check("from", from, "until", evctl_opt(args, "until"))) != 0 ||
        (rc = evctl_range_check("since", since, "until", evctl_opt(args, "until"))) != 0)
        return rc;
    evctl_filter_init(&filter, args);
    if ((rc = dlq_topic(args->pos[0], topic, sizeof topic)) || (rc = evctl_load_schemas(ctx)))
        return rc;
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        return rc;
    if ((rc = evctl_scan_plan(&scan, ctx, rk, topic, evctl_opt(args, "partition"),
                              from    ? from
                              : since ? since
                                      : "beginning",
                              NULL, evctl_opt(args, "until"), 0)))
        goto out;
    if (since_ms >= 0)
        scan.since_ms = since_ms; /* --from positions plus a --since time window */
    rc = evctl_copy_run(ctx, &scan, &filter, &copy);
out:
    evctl_scan_clear(&scan);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_dlq_redrive = {
    "dlq redrive",
    "GROUP [--class C] [--type T] [--since T] [--until T] [--rate N/s] [--dry-run]",
    "send dead letters back to the topic they failed on",
    "Sends the records of <GROUP>.dlq that pass the filters back to their original topic\n"
    "(the lev_original_topic header; --to overrides), with the original key, value and\n"
    "headers, every lev_* dead-letter header removed, and the provenance headers\n"
    "evctl_redrive_from=<dlq topic>/<partition>/<offset> and evctl_redrive_at=<time>.\n"
    "The key decides the partition, so a redriven event lands where it was first read.\n"
    "Run it with --dry-run first (it checks what the run checks, with the same exit codes);\n"
    "deploy the fix before redriving.\n"
    "\n"
    "Topics are never created by sending to them: --to must exist (exit 65), and a dead\n"
    "letter without lev_original_topic or whose original topic no longer exists is\n"
    "unroutable: named on stderr, not sent, counted in the summary, exit 65 (the others\n"
    "are redriven).\n"
    "\n"
    "A --class that matches no dead letter of the range read is said so: a class\n"
    "libevents writes is merely absent (exit 0); any other value is taken for a mistake\n"
    "and listed with the classes present and the known ones (exit 65). The summary's\n"
    "\"classes\" counts the classes read.\n"
    "\n"
    "The event keeps its ce_id: other consumer groups of the original topic have handled\n"
    "it already and skip it as a duplicate; the group that failed never finished it, so it\n"
    "handles it now. The dead-letter topic itself is not changed (Kafka has no delete):\n"
    "use --since, or --from with the value printed by an earlier redrive, to avoid sending\n"
    "the same records twice.\n"
    "\n"
    "At the end one JSON summary line is printed. Ctrl-C stops cleanly: flushes, prints the\n"
    "last redriven offset per partition and the --from value to resume with (exit 130).\n",
    redrive_opts,
    1,
    1,
    redrive_run,
};
