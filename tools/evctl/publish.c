/*
 * evctl publish: JSON lines in, Avro events out. The whole input is read
 * and validated first (every line converted and encoded); nothing is sent
 * when a line is bad unless --skip-bad. Deliveries are checked.
 */
#include "evctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_USER_HEADERS 32
#define MAX_LINE (64u << 20)

static const evctl_opt_t opts[] = {
    {"topic", "TOPIC",
     "send every event to TOPIC (default: the line's \"topic\", else by type "
     "from the topics description)",
     0},
    {"skip-bad", NULL, "publish the valid lines even when some are bad (exit code still 65)", 0},
    {"dry-run", NULL, "check everything (topics too) and print what would be sent; send nothing",
     0},
    {"rate", "N/s", "at most N events per second (default: unlimited)", 0},
    {"allow-lev-headers", NULL,
     "accept lev_* headers in \"headers\" (reserved for libevents' retry and dead-letter "
     "records; for tests)",
     0},
    {NULL, NULL, NULL, 0},
};

/* One validated input line, ready to send. */
typedef struct item_s {
    long line;
    char *topic;
    char *key; /* NULL: no key */
    void *value;
    size_t value_len;
    int64_t time_ms;
    lev_event_headers_t eh;
    lev_header_t headers[LEV_EVENT_HEADERS_MAX + MAX_USER_HEADERS];
    size_t nheaders;
    json_t *doc; /* the parsed line: user header names and values point into it */
    /* delivery */
    int sent, done, err;
    int32_t partition;
    int64_t offset;
    char errstr[256];
} item_t;

/* Frees an item and everything it owns; accepts NULL. */
static void item_free(item_t *it)
{
    if (!it)
        return;
    free(it->topic);
    free(it->key);
    free(it->value);
    json_decref(it->doc);
    free(it);
}

/* Reports a bad line on stderr and as a JSON line on stdout. */
static void report_bad(const char *name, long line, const char *cls, const char *where,
                       const char *text)
{
    fprintf(stderr, "evctl: %s:%ld: %s%s%s\n", name, line, where && *where ? where : "",
            where && *where ? ": " : "", text);
    json_t *e = json_pack("{s:s}", "class", cls);
    if (e && where && *where)
        json_object_set_new(e, "where", evctl_json_bytes(where, strlen(where)));
    if (e)
        json_object_set_new(e, "message", evctl_json_bytes(text, strlen(text)));
    evctl_out(json_pack("{s:I,s:o}", "line", (json_int_t)line, "error", e ? e : json_null()));
}

static const char *const reserved[] = {LEV_H_CE_ID, LEV_H_CE_TYPE, LEV_H_CE_SPECVERSION,
                                       LEV_H_CE_TIME, LEV_H_CONTENT_TYPE};

/* Validates one parsed line into an item. Returns 0, or fills where/text
 * and returns the error class. */
/* The topics description, loaded the first time a line needs routing by type. */
typedef struct routes_s {
    evctl_topology_t topo;
    int state; /* 0 not tried, 1 loaded, -1 failed */
} routes_t;

static const char *route(evctl_ctx_t *ctx, routes_t *r, const char *type)
{
    if (r->state == 0)
        r->state = evctl_topology_load(&r->topo, ctx, -1, -1, -1) == 0 ? 1 : -1;
    return r->state == 1 ? evctl_topology_topic_for_type(&r->topo, type) : NULL;
}

/* What publish checks beyond each line's own content. */
typedef struct rules_s {
    const char *topic_opt; /* --topic */
    int allow_lev;         /* --allow-lev-headers */
} rules_t;

static const char *validate(evctl_ctx_t *ctx, routes_t *routes, const rules_t *rules, item_t *it,
                            char *where, size_t wsize, char *text, size_t tsize)
{
    json_t *doc = it->doc;
    const char *k;
    json_t *v;
    lev_error_t err;
    memset(&err, 0, sizeof err);
    if (!json_is_object(doc)) {
        snprintf(text, tsize, "expected a JSON object");
        return "json";
    }
    json_object_foreach(doc, k, v)
    {
        static const char *const known[] = {"type",    "key",   "id",  "topic",
                                            "headers", "value", "time"};
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(k, known[i]) == 0;
        if (!ok) {
            snprintf(where, wsize, "%s", k);
            snprintf(text, tsize,
                     "unknown field (expected type, key, id, topic, headers, value, time)");
            return "json";
        }
    }
    json_t *type = json_object_get(doc, "type"), *value = json_object_get(doc, "value");
    json_t *key = json_object_get(doc, "key"), *id = json_object_get(doc, "id");
    json_t *topic = json_object_get(doc, "topic"), *headers = json_object_get(doc, "headers");
    json_t *time = json_object_get(doc, "time");
    if (!type && !value) { /* every missing field at once */
        snprintf(text, tsize,
                 "missing fields: type (the event's full schema name), value (the event in "
                 "Avro's JSON encoding)");
        return "json";
    }
    if (!json_is_string(type)) {
        snprintf(where, wsize, "type");
        snprintf(text, tsize,
                 type ? "expected a string" : "missing (the event's full schema name)");
        return "json";
    }
    const lev_schema_t *schema = lev_schemas_find(ctx->schemas, json_string_value(type));
    if (!schema) {
        snprintf(where, wsize, "type");
        snprintf(text, tsize, "no schema named \"%s\" (see evctl schemas list)",
                 json_string_value(type));
        return "unknown-schema";
    }
    if (!json_is_object(value)) {
        snprintf(where, wsize, "value");
        snprintf(text, tsize, value ? "expected an object" : "missing");
        return "json";
    }
    if (key && !json_is_string(key) && !json_is_null(key)) {
        snprintf(where, wsize, "key");
        snprintf(text, tsize, "expected a string or null");
        return "json";
    }
    if (json_is_string(key) && json_string_length(key) == 0) {
        snprintf(where, wsize, "key");
        snprintf(text, tsize, "empty: give a non-empty key, or null for none");
        return "json";
    }
    if (id && (!json_is_string(id) || json_string_length(id) == 0 ||
               json_string_length(id) >= sizeof it->eh.id)) {
        snprintf(where, wsize, "id");
        snprintf(text, tsize, "expected a non-empty string of at most %zu bytes",
                 sizeof it->eh.id - 1);
        return "json";
    }
    if (topic && !json_is_string(topic)) {
        snprintf(where, wsize, "topic");
        snprintf(text, tsize, "expected a string");
        return "json";
    }
    it->time_ms = 0;
    if (time &&
        (!json_is_string(time) || lev_time_parse(json_string_value(time), &it->time_ms) != 0)) {
        snprintf(where, wsize, "time");
        snprintf(text, tsize, "expected an RFC 3339 time like 2026-11-21T17:05:00Z");
        return "json";
    }
    if (headers && !json_is_object(headers)) {
        snprintf(where, wsize, "headers");
        snprintf(text, tsize, "expected an object of strings");
        return "json";
    }
    if (json_object_size(headers) > MAX_USER_HEADERS) {
        snprintf(where, wsize, "headers");
        snprintf(text, tsize, "at most %d headers", MAX_USER_HEADERS);
        return "json";
    }
    /* the value: Avro JSON to a value of the schema, then encoded */
    avro_value_t av;
    if (lev_codec_from_json(ctx->codec, schema, value, &av, &err) != 0) {
        snprintf(where, wsize, "value%s%s", err.where[0] && err.where[0] != '[' ? "." : "",
                 err.where);
        snprintf(text, tsize, "%s", err.text[0] ? err.text : lev_err_name(err.code));
        return lev_err_name(err.code);
    }
    const char *order_id = NULL;
    size_t order_len = 0;
    if (!key && lev_value_get_string(&av, "order_id", &order_id, &order_len) == 0 && order_id) {
        if (order_len == 0) {
            avro_value_decref(&av);
            snprintf(where, wsize, "value.order_id");
            snprintf(text, tsize,
                     "empty, and the key defaults to it: give a non-empty \"key\" (or null "
                     "for none)");
            return "json";
        }
        it->key = strndup(order_id, order_len);
    }
    int rc = lev_codec_encode(ctx->codec, schema, &av, &it->value, &it->value_len, &err);
    avro_value_decref(&av);
    if (rc != 0) {
        snprintf(where, wsize, "value%s%s", err.where[0] ? "." : "", err.where);
        snprintf(text, tsize, "%s", err.text[0] ? err.text : lev_err_name(err.code));
        return lev_err_name(err.code);
    }
    if (json_is_string(key) && !(it->key = strdup(json_string_value(key))))
        goto nomem;
    /* the topic: --topic, the line's, or by type */
    const char *t = rules->topic_opt ? rules->topic_opt : topic ? json_string_value(topic) : NULL;
    if (!t)
        t = route(ctx, routes, json_string_value(type));
    if (!t) {
        snprintf(where, wsize, "topic");
        snprintf(
            text, tsize,
            "no topic: give \"topic\" or --topic (no \"types\" pattern in %.300s matches %.100s)",
            routes->state == 1 ? routes->topo.path : "the topics description",
            json_string_value(type));
        return "json";
    }
    if (!(it->topic = strdup(t)))
        goto nomem;
    /* headers: CloudEvents ones from the line, then the operator's */
    lev_event_meta_t meta = {
        .id = json_string_value(id), .source = ctx->conf.source, .time_ms = it->time_ms};
    json_object_foreach(headers, k, v)
    {
        for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
            if (strcmp(k, reserved[i]) == 0) {
                snprintf(where, wsize, "headers.%s", k);
                snprintf(text, tsize, "set by evctl (use the line's \"id\", \"type\" or \"time\")");
                return "json";
            }
        }
        if (!json_is_string(v) && !json_is_null(v)) {
            snprintf(where, wsize, "headers.%s", k);
            snprintf(text, tsize, "expected a string or null");
            return "json";
        }
        if (strncmp(k, "lev_", 4) == 0 && !rules->allow_lev) {
            snprintf(where, wsize, "headers.%.200s", k);
            snprintf(text, tsize,
                     "lev_* headers are reserved for libevents' retry and dead-letter records (a "
                     "worker would take this event for one); --allow-lev-headers sends them");
            return "reserved-header";
        }
        if (!*k) {
            snprintf(where, wsize, "headers");
            snprintf(text, tsize, "a header name is empty");
            return "json";
        }
        const char *s = json_string_value(v);
        size_t cap = strcmp(k, LEV_H_CE_SOURCE) == 0        ? sizeof it->eh.source
                     : strcmp(k, LEV_H_CORRELATION_ID) == 0 ? sizeof it->eh.correlation_id
                     : strcmp(k, LEV_H_TRACEPARENT) == 0    ? sizeof it->eh.traceparent
                                                            : 0;
        if (cap && (!s || strlen(s) >= cap)) {
            snprintf(where, wsize, "headers.%s", k);
            snprintf(text, tsize, "expected a string of at most %zu bytes", cap - 1);
            return "json";
        }
        if (strcmp(k, LEV_H_CE_SOURCE) == 0)
            meta.source = s;
        else if (strcmp(k, LEV_H_CORRELATION_ID) == 0)
            meta.correlation_id = s;
        else if (strcmp(k, LEV_H_TRACEPARENT) == 0)
            meta.traceparent = s;
    }
    lev_event_headers(&it->eh, lev_schema_name(schema), &meta);
    for (size_t i = 0; i < it->eh.n; i++)
        it->headers[it->nheaders++] = it->eh.h[i];
    json_object_foreach(headers, k, v)
    {
        if (strcmp(k, LEV_H_CE_SOURCE) == 0 || strcmp(k, LEV_H_CORRELATION_ID) == 0 ||
            strcmp(k, LEV_H_TRACEPARENT) == 0)
            continue;
        const char *s = json_string_value(v);
        it->headers[it->nheaders++] = (lev_header_t){k, s, s ? json_string_length(v) : 0};
    }
    return NULL;
nomem:
    snprintf(text, tsize, "out of memory");
    return "out-of-memory";
}

/* Delivery report of one published line: stores the outcome in its item. */
static void on_delivery(void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset)
{
    item_t *it = opaque;
    it->done = 1;
    it->err = err;
    it->partition = partition;
    it->offset = offset;
    if (err)
        snprintf(it->errstr, sizeof it->errstr, "%s", errstr ? errstr : lev_err_name(err));
}

/* Reads every line of in; returns 0 or an exit code. */
static int read_items(evctl_ctx_t *ctx, routes_t *routes, const rules_t *rules, FILE *in,
                      const char *name, item_t ***items, size_t *nitems, size_t *nbad)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    json_t *ids = json_object(); /* "<ce_source>\n<ce_id>" -> the line that has it */
    if (!ids)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    while ((len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue; /* blank */
        char where[300] = "", text[600] = "";
        if ((size_t)len > MAX_LINE) {
            report_bad(name, lineno, "json", "", "line too long");
            (*nbad)++;
            continue;
        }
        item_t *it = calloc(1, sizeof *it);
        item_t **grown = realloc(*items, (*nitems + 1) * sizeof *grown);
        if (!it || !grown) {
            free(it);
            if (grown)
                *items = grown;
            rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
            break;
        }
        *items = grown;
        it->line = lineno;
        json_error_t jerr;
        it->doc = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        const char *cls = NULL;
        if (!it->doc) {
            snprintf(where, sizeof where, "column %d", jerr.column);
            snprintf(text, sizeof text, "%s", jerr.text);
            cls = "json";
        } else {
            cls = validate(ctx, routes, rules, it, where, sizeof where, text, sizeof text);
        }
        /* an event is its source and id (CloudEvents): a second one with both
         * would be skipped downstream as a duplicate */
        char ident[sizeof it->eh.source + sizeof it->eh.id + 1];
        snprintf(ident, sizeof ident, "%s\n%s", it->eh.source, it->eh.id);
        json_t *first = cls ? NULL : json_object_get(ids, ident);
        if (first) {
            snprintf(where, sizeof where, "id");
            snprintf(text, sizeof text,
                     "\"%.64s\" is also the id of line %lld (same ce_source): each event of one "
                     "input needs its own id, a service handles an id once",
                     it->eh.id, (long long)json_integer_value(first));
            cls = "duplicate-id";
        } else if (!cls) {
            json_object_set_new(ids, ident, json_integer(lineno));
        }
        if (cls) {
            report_bad(name, lineno, cls, where, text);
            (*nbad)++;
            item_free(it);
            continue;
        }
        (*items)[(*nitems)++] = it;
    }
    if (!rc && ferror(in))
        rc = evctl_fail(EVCTL_EXIT_DATA, "%s: read error: %s", name, strerror(errno));
    free(line);
    json_decref(ids);
    return rc;
}

/* evctl publish [FILE]: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    const char *path = args->npos ? args->pos[0] : "-";
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    rules_t rules = {evctl_opt(args, "topic"), evctl_flag(args, "allow-lev-headers")};
    int dry = evctl_flag(args, "dry-run"), skip_bad = evctl_flag(args, "skip-bad");
    double rate = 0;
    item_t **items = NULL;
    size_t n = 0, nbad = 0, published = 0, failed = 0;
    FILE *in = NULL;
    rd_kafka_t *rk = NULL;
    lev_producer_t *p = NULL;
    routes_t routes;
    int rc;
    memset(&routes, 0, sizeof routes);
    if (evctl_opt(args, "rate") && evctl_rate_parse(evctl_opt(args, "rate"), &rate) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "--rate: expected N, N/s, N/m or N/h, got \"%s\"",
                          evctl_opt(args, "rate"));
    if ((rc = evctl_load_schemas(ctx)) != 0)
        return rc;
    in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        rc = evctl_fail(EVCTL_EXIT_DATA, "%s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = read_items(ctx, &routes, &rules, in, name, &items, &n, &nbad)))
        goto out;
    if (nbad && !skip_bad) {
        evctl_note(ctx, "%zu bad line%s in %s: nothing published (--skip-bad publishes the others)",
                   nbad, nbad == 1 ? "" : "s", name);
        rc = EVCTL_EXIT_DATA;
        goto out;
    }
    /* every destination topic must exist before anything is sent (a dry
     * run checks it too: it answers "would this publish?") */
    if (n > 0 && !(rk = evctl_consumer_new(ctx, NULL, &rc)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(items[j]->topic, items[i]->topic) == 0;
        if (seen)
            continue;
        int parts = evctl_topic_partitions(rk, items[i]->topic, ctx->timeout_ms);
        if (parts < 0) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: no metadata from Kafka", items[i]->topic);
            goto out;
        }
        if (parts == 0) {
            rc = evctl_fail(EVCTL_EXIT_DATA,
                            "%s:%ld: topic %s does not exist (evctl topics creates the workflow's "
                            "topics): nothing %s",
                            name, items[i]->line, items[i]->topic,
                            dry ? "would be published" : "published");
            goto out;
        }
    }
    if (dry) {
        for (size_t i = 0; i < n; i++) {
            json_t *h = json_object();
            for (size_t k = 0; k < items[i]->nheaders; k++)
                json_object_set_new(
                    h, items[i]->headers[k].name,
                    evctl_json_bytes(items[i]->headers[k].value, items[i]->headers[k].size));
            evctl_out(json_pack("{s:I,s:s,s:o,s:o,s:I,s:b}", "line", (json_int_t)items[i]->line,
                                "topic", items[i]->topic, "key",
                                items[i]->key ? json_string(items[i]->key) : json_null(), "headers",
                                h, "bytes", (json_int_t)items[i]->value_len, "dry_run", 1));
        }
        evctl_note(ctx, "dry run: %zu event%s valid, %zu bad, nothing sent", n, n == 1 ? "" : "s",
                   nbad);
        rc = nbad ? EVCTL_EXIT_DATA : 0;
        goto out;
    }
    if (n > 0 && !(p = evctl_producer_new(ctx))) {
        rc = EVCTL_EXIT_INTERNAL;
        goto out;
    }
    evctl_rate_t pace;
    evctl_progress_t prog;
    evctl_rate_init(&pace, rate);
    evctl_progress_init(&prog, ctx, "publish");
    for (size_t i = 0; i < n && !evctl_stop; i++) {
        item_t *it = items[i];
        evctl_rate_wait(&pace, evctl_producer_poll_cb, p);
        if (evctl_stop)
            break;
        lev_msg_t msg = {
            .topic = it->topic,
            .partition = LEV_PARTITION_ANY,
            .key = it->key,
            .key_len = it->key ? strlen(it->key) : 0,
            .value = it->value,
            .value_len = it->value_len,
            .headers = it->headers,
            .nheaders = it->nheaders,
            .timestamp_ms = it->time_ms,
        };
        lev_error_t err;
        if (lev_producer_send(p, &msg, on_delivery, it, &err) != 0) {
            it->done = 1;
            it->err = err.code;
            snprintf(it->errstr, sizeof it->errstr, "%.255s", err.text);
        }
        it->sent = 1;
        lev_producer_poll(p, 0);
        evctl_progress_update(&prog, i + 1, (int64_t)(n - i - 1));
    }
    if (n == 0) /* an empty input, blank lines, or only bad lines skipped */
        evctl_note(ctx, "%s holds no event to publish", name);
    else if (lev_producer_flush(p, ctx->conf.delivery_timeout_ms + 5000) != 0)
        evctl_note(ctx, "some deliveries were not acknowledged in time");
    evctl_progress_end(&prog);
    for (size_t i = 0; i < n; i++) {
        item_t *it = items[i];
        if (!it->sent)
            continue;
        if (it->done && !it->err) {
            published++;
            evctl_out(json_pack("{s:I,s:s,s:i,s:I,s:o,s:s,s:s}", "line", (json_int_t)it->line,
                                "topic", it->topic, "partition", (int)it->partition, "offset",
                                (json_int_t)it->offset, "key",
                                it->key ? json_string(it->key) : json_null(), "id", it->eh.id,
                                "type", it->eh.type));
        } else {
            failed++;
            fprintf(stderr, "evctl: %s:%ld: delivery to %s failed: %s\n", name, it->line, it->topic,
                    it->done ? it->errstr : "not acknowledged in time");
            report_bad(name, it->line, "kafka", "",
                       it->done ? it->errstr : "not acknowledged in time");
        }
    }
    rc = evctl_stop ? EVCTL_EXIT_INTERRUPTED
         : failed   ? EVCTL_EXIT_UNAVAILABLE
         : nbad     ? EVCTL_EXIT_DATA
                    : 0;
    evctl_note(ctx, "published %zu, skipped %zu bad, failed %zu", published, nbad, failed);
    for (size_t i = 0; evctl_stop && i < n; i++) {
        if (!items[i]->sent) {
            evctl_fail(rc, "interrupted: lines from %ld on were not sent", items[i]->line);
            break;
        }
    }
out:
    lev_producer_destroy(p);
    evctl_consumer_destroy(rk);
    if (in && in != stdin)
        fclose(in);
    for (size_t i = 0; i < n; i++)
        item_free(items[i]);
    free(items);
    if (routes.state == 1)
        evctl_topology_clear(&routes.topo);
    return rc;
}

const evctl_cmd_t evctl_cmd_publish = {
    "publish",
    "[FILE|-] [options]",
    "validate JSON lines and publish them as Avro events",
    "Reads one event per line from FILE (default: stdin):\n"
    "  {\"type\": \"shop.order.OrderPlaced\",          full schema name (required)\n"
    "   \"value\": {...},                            the event in Avro's JSON encoding (required)\n"
    "   \"key\": \"...\",                              Kafka key (default: value.order_id if the\n"
    "                                              schema has it, else no key)\n"
    "   \"id\": \"...\",                               ce_id (default: a random UUID)\n"
    "   \"topic\": \"orders\",                         destination (default: --topic, else the "
    "topic\n"
    "                                              whose \"types\" patterns match in topics.json)\n"
    "   \"time\": \"2026-11-21T17:05:00Z\",            Kafka timestamp and ce_time (default: now)\n"
    "   \"headers\": {\"name\": \"value\", ...}}         extra headers; ce_source, correlation_id "
    "and\n"
    "                                              traceparent replace the generated ones\n"
    "In Avro's JSON encoding a union value other than null is {\"<type>\": value}, for\n"
    "example \"customer_email\": {\"string\": \"a@example.com\"}.\n"
    "\n"
    "Also refused: an empty key (\"key\": \"\", or an empty value.order_id it defaults to;\n"
    "null means no key); a ce_id that an earlier line of the input has with the same\n"
    "ce_source (the services would skip the second as a duplicate; both lines are named);\n"
    "lev_* headers, reserved for libevents' retry and dead-letter records, unless\n"
    "--allow-lev-headers. All the fields a line misses are named in one message.\n"
    "\n"
    "Every line is validated and encoded before anything is sent. A bad line is reported\n"
    "on stderr as FILE:LINE: FIELD: problem (and as {\"line\":N,\"error\":{...}} on stdout);\n"
    "then nothing is published (exit 65) unless --skip-bad. The destination topics must\n"
    "exist (exit 65). --dry-run checks all of this, destination topics included, with the\n"
    "same exit codes, and sends nothing. Every delivery is checked: for each event\n"
    "acknowledged by the broker a line {\"line\",\"topic\",\"partition\",\"offset\",\"key\",\n"
    "\"id\",\"type\"} is printed; a failed delivery makes the exit code 69. The summary goes\n"
    "to stderr.\n",
    opts,
    0,
    1,
    run,
};
