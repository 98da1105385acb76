/*
 * evctl publish: JSON lines in, Avro events out. The whole input is read
 * and validated first (every line converted and encoded); nothing is sent
 * when a line is bad unless --skip-bad. Deliveries are checked.
 *
 * Memory does not grow with the input: each line is validated and encoded,
 * appended to a spool (an unlinked temporary file) and freed; duplicate ids
 * are found with a table of 8 bytes per event (a hash tag and the spool
 * offset, the spooled record read back to confirm); then the spool is read
 * back and sent with a bounded number of records in flight.
 */
#include "evctl.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* One validated input line, ready to spool. */
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
    /* kept from line to line (the fast path's) */
    char *vbuf; /* the value encoded: value points here when value_in_vbuf */
    size_t vlen, vcap;
    int value_in_vbuf;
    char *copy; /* the line, its envelope strings NUL-terminated in place */
    size_t copy_cap;
} item_t;

/* Frees what an item owns for its line and empties it. */
static void item_clear(item_t *it)
{
    free(it->topic);
    free(it->key);
    if (!it->value_in_vbuf)
        free(it->value);
    json_decref(it->doc);
    memset(it, 0, offsetof(item_t, headers));
    it->nheaders = 0;
    it->doc = NULL;
    it->value_in_vbuf = 0;
}

static void item_free(item_t *it)
{
    if (!it)
        return;
    item_clear(it);
    free(it->vbuf);
    free(it->copy);
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
/* The topics description, loaded the first time a line needs routing by
 * type, on the main thread (worker threads read it once it has loaded). */
typedef struct routes_s {
    evctl_topology_t topo;
    int state;       /* 0 not tried, 1 loaded, -1 failed */
    json_t *by_type; /* every known schema's full name -> its topic or null */
} routes_t;

/* The topic of every known schema, matched once: the patterns (fnmatch
 * over every topic's "types") took a tenth of a worker's time per line. */
static json_t *routes_index(const evctl_ctx_t *ctx, const evctl_topology_t *topo)
{
    json_t *by_type = json_object();
    for (size_t i = 0; by_type && i < lev_schemas_count(ctx->schemas); i++) {
        const char *name = lev_schema_name(lev_schemas_at(ctx->schemas, i));
        if (!name || json_object_get(by_type, name))
            continue;
        const char *topic = evctl_topology_topic_for_type(topo, name);
        if (json_object_set_new(by_type, name, topic ? json_string(topic) : json_null()) != 0) {
            json_decref(by_type);
            return NULL; /* out of memory: the patterns, line by line */
        }
    }
    return by_type;
}

static const char *route(evctl_ctx_t *ctx, routes_t *r, const char *type)
{
    if (!r)
        return NULL; /* a worker thread, before the main one loaded them */
    if (r->state == 0) {
        r->state = evctl_topology_load(&r->topo, ctx, -1, -1, -1) == 0 ? 1 : -1;
        if (r->state == 1)
            r->by_type = routes_index(ctx, &r->topo);
    }
    if (r->state != 1)
        return NULL;
    json_t *known = r->by_type ? json_object_get(r->by_type, type) : NULL;
    if (known)
        return json_string_value(known); /* NULL for null: no topic */
    return evctl_topology_topic_for_type(&r->topo, type);
}

/* What publish checks beyond each line's own content. */
typedef struct rules_s {
    const char *topic_opt; /* --topic */
    int allow_lev;         /* --allow-lev-headers */
    int dry_run;           /* --dry-run: the registry is asked, never changed */
} rules_t;

/* In the Confluent format, the schema registered for the topic's subject
 * (once per subject); a dry run only asks the registry whether it would be
 * accepted. 0, or an error code with err filled. Once the registry failed,
 * every line says so. */
static int register_for(evctl_ctx_t *ctx, const rules_t *rules, const char *topic,
                        const lev_schema_t *schema, lev_error_t *err)
{
    static lev_error_t registry_down;
    if (lev_codec_wire_format(ctx->codec) != LEV_WIRE_CONFLUENT)
        return 0;
    if (registry_down.code) {
        *err = registry_down;
        return registry_down.code;
    }
    int rc = rules->dry_run ? evctl_registry_would_accept(ctx, topic, schema, err)
                            : lev_codec_register(ctx->codec, topic, schema, err);
    if (rc == LEV_ERR_REGISTRY)
        registry_down = *err;
    return rc;
}

/* A dry run in the Confluent format checks values in single-object framing
 * (the registry gave no id). */
static int dry_confluent(const evctl_ctx_t *ctx, const rules_t *rules)
{
    return rules->dry_run && lev_codec_wire_format(ctx->codec) == LEV_WIRE_CONFLUENT;
}

/* The item's headers: the CloudEvents ones (meta: the line's id and time,
 * ce_source, correlation_id and traceparent from its headers), then the
 * other headers of the line, in its order. */
static void item_headers(item_t *it, const lev_schema_t *schema, const lev_event_meta_t *meta,
                         const lev_header_t *user, size_t nuser)
{
    lev_event_headers(&it->eh, lev_schema_name(schema), meta);
    for (size_t i = 0; i < it->eh.n; i++)
        it->headers[it->nheaders++] = it->eh.h[i];
    for (size_t i = 0; i < nuser; i++) {
        const char *k = user[i].name;
        if (strcmp(k, LEV_H_CE_SOURCE) != 0 && strcmp(k, LEV_H_CORRELATION_ID) != 0 &&
            strcmp(k, LEV_H_TRACEPARENT) != 0)
            it->headers[it->nheaders++] = user[i];
    }
}

/* One of the line's headers (value s, NULL for null; is_text_or_null 0
 * when it is neither): NULL, or the error class with where and text. */
static const char *check_header(const rules_t *rules, const char *k, const char *s,
                                int is_text_or_null, char *where, size_t wsize, char *text,
                                size_t tsize)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (strcmp(k, reserved[i]) == 0) {
            snprintf(where, wsize, "headers.%s", k);
            snprintf(text, tsize, "set by evctl (use the line's \"id\", \"type\" or \"time\")");
            return "json";
        }
    }
    if (!is_text_or_null) {
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
    lev_event_headers_t *eh = NULL; /* for the sizes of its members */
    size_t cap = strcmp(k, LEV_H_CE_SOURCE) == 0        ? sizeof eh->source
                 : strcmp(k, LEV_H_CORRELATION_ID) == 0 ? sizeof eh->correlation_id
                 : strcmp(k, LEV_H_TRACEPARENT) == 0    ? sizeof eh->traceparent
                                                        : 0;
    if (cap && (!s || strlen(s) >= cap)) {
        snprintf(where, wsize, "headers.%s", k);
        snprintf(text, tsize, "expected a string of at most %zu bytes", cap - 1);
        return "json";
    }
    return NULL;
}

/* The headers that replace generated CloudEvents ones. */
static void header_meta(lev_event_meta_t *meta, const char *k, const char *s)
{
    if (strcmp(k, LEV_H_CE_SOURCE) == 0)
        meta->source = s;
    else if (strcmp(k, LEV_H_CORRELATION_ID) == 0)
        meta->correlation_id = s;
    else if (strcmp(k, LEV_H_TRACEPARENT) == 0)
        meta->traceparent = s;
}

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
    int rc = register_for(ctx, rules, it->topic, schema, &err);
    if (rc != 0) {
        avro_value_decref(&av);
        snprintf(where, wsize, "type");
        snprintf(text, tsize, "%s", err.text[0] ? err.text : lev_err_name(err.code));
        return lev_err_name(err.code);
    }
    if (dry_confluent(ctx, rules))
        lev_codec_set_wire_format(ctx->codec, LEV_WIRE_SOE);
    rc = lev_codec_encode(ctx->codec, schema, &av, &it->value, &it->value_len, &err);
    if (dry_confluent(ctx, rules))
        lev_codec_set_wire_format(ctx->codec, LEV_WIRE_CONFLUENT);
    avro_value_decref(&av);
    if (rc != 0) {
        snprintf(where, wsize, "value%s%s", err.where[0] ? "." : "", err.where);
        snprintf(text, tsize, "%s", err.text[0] ? err.text : lev_err_name(err.code));
        return lev_err_name(err.code);
    }
    if (json_is_string(key) && !(it->key = strdup(json_string_value(key))))
        goto nomem;
    /* headers: CloudEvents ones from the line, then the operator's */
    lev_event_meta_t meta = {
        .id = json_string_value(id), .source = ctx->conf.source, .time_ms = it->time_ms};
    json_object_foreach(headers, k, v)
    {
        const char *cls =
            check_header(rules, k, json_string_value(v), json_is_string(v) || json_is_null(v),
                         where, wsize, text, tsize);
        if (cls)
            return cls;
        header_meta(&meta, k, json_string_value(v));
    }
    lev_header_t user[MAX_USER_HEADERS];
    size_t nuser = 0;
    json_object_foreach(headers, k, v)
    {
        const char *s = json_string_value(v);
        user[nuser++] = (lev_header_t){k, s, s ? json_string_length(v) : 0};
    }
    item_headers(it, schema, &meta, user, nuser);
    return NULL;
nomem:
    snprintf(text, tsize, "out of memory");
    return "out-of-memory";
}

/* ======================================================================
 * The fast path: a line read with the pull reader and its value encoded
 * straight from its text (lev_codec_encode_json), no tree built. It fills
 * the item exactly as validate() would, or gives up on anything unusual
 * or wrong (escapes in the envelope's strings included: they are rare),
 * and the line then goes through jansson and validate(), which name what
 * is wrong.
 * ====================================================================== */

/* The deepest value the fast path skips over (the codec's cap on depth). */
#define FAST_SKIP_DEPTH 1000

/* Reads a string without escapes from the item's copy of the line and
 * NUL-terminates it in place (its closing quote). -1 when *out was set (a
 * duplicate member) or the next value is not such a string. */
static int fast_string(lev_jreader_t *r, const char **out)
{
    const char *s;
    size_t n;
    if (*out || lev_jreader_peek(r) != '"')
        return -1;
    const char *open = r->p;
    if (lev_jreader_string(r, &s, &n) != 0 || n != (size_t)(r->p - open) - 2)
        return -1;                /* decoding shortened it: an escape */
    ((char *)open)[1 + n] = '\0'; /* the text is the item's copy of the line */
    *out = open + 1;
    return 0;
}

/* Whether the schema's records key by default: 1 when it has a string
 * field order_id, 0 when it has no such field, -1 when the field is of
 * another type (validate() decides what it means). */
static int order_id_field(const lev_schema_t *schema)
{
    avro_schema_t f = avro_schema_record_field_get(lev_schema_avro(schema), "order_id");
    if (!f)
        return 0;
    return avro_typeof(f) == AVRO_STRING ? 1 : -1;
}

/* value.order_id from the value's text (already encoded, so valid): 0
 * with a new string in *out, -1 when absent or empty. */
static int fast_order_id(const char *value, size_t vlen, char **out)
{
    lev_jreader_t r;
    const char *k, *s;
    size_t kn, n;
    int first = 1, rc = -1;
    lev_jreader_init(&r, value, vlen);
    if (lev_jreader_eat(&r, '{') == 0) {
        while (lev_jreader_member(&r, &first, &k, &kn) == 1) {
            if (kn == 8 && memcmp(k, "order_id", 8) == 0) {
                if (lev_jreader_string(&r, &s, &n) == 0 && n > 0 && (*out = strndup(s, n)))
                    rc = 0;
                break;
            }
            if (lev_jreader_skip(&r, FAST_SKIP_DEPTH, NULL, NULL) != 0)
                break;
        }
    }
    lev_jreader_free(&r);
    return rc;
}

/* The line's "headers" (its text): 0 with user[] and meta filled, or -1. */
static int fast_headers(const rules_t *rules, const char *text, size_t len, lev_header_t *user,
                        size_t *nuser, lev_event_meta_t *meta)
{
    lev_jreader_t r;
    int rc = -1, more;
    char where[8], msg[8];
    lev_jreader_init(&r, text, len);
    if (lev_jreader_eat(&r, '{') != 0)
        goto out;
    more = lev_jreader_eat(&r, '}') != 0;
    while (more) {
        const char *k = NULL, *v = NULL;
        int which = 0;
        if (*nuser == MAX_USER_HEADERS || fast_string(&r, &k) != 0 || lev_jreader_eat(&r, ':') != 0)
            goto out;
        if (lev_jreader_peek(&r) == 'n' ? lev_jreader_literal(&r, &which) != 0
                                        : fast_string(&r, &v) != 0)
            goto out;
        for (size_t i = 0; i < *nuser; i++)
            if (strcmp(user[i].name, k) == 0)
                goto out; /* a duplicate */
        if (check_header(rules, k, v, 1, where, sizeof where, msg, sizeof msg))
            goto out;
        header_meta(meta, k, v);
        user[(*nuser)++] = (lev_header_t){k, v, v ? strlen(v) : 0};
        if (lev_jreader_eat(&r, ',') != 0) {
            if (lev_jreader_eat(&r, '}') != 0)
                goto out;
            more = 0;
        }
    }
    rc = lev_jreader_peek(&r) == -1 ? 0 : -1;
out:
    lev_jreader_free(&r);
    return rc;
}

/* Fills the item from the line, or returns -1 (nothing kept) for
 * validate() to do it. codec is ctx's, or a worker thread's own (then
 * routes is NULL until the main thread has loaded them, and SOE framing). */
static int fast_line(evctl_ctx_t *ctx, lev_codec_t *codec, routes_t *routes, const rules_t *rules,
                     item_t *it, const char *line, size_t len)
{
    if (len + 1 > it->copy_cap) {
        char *c = realloc(it->copy, len + 1);
        if (!c)
            return -1;
        it->copy = c;
        it->copy_cap = len + 1;
    }
    memcpy(it->copy, line, len);
    it->copy[len] = '\0';
    lev_jreader_t r;
    lev_jreader_init(&r, it->copy, len);
    const char *type = NULL, *key = NULL, *id = NULL, *topic = NULL, *time = NULL, *k;
    const char *value = NULL, *headers = NULL;
    const lev_schema_t *schema = NULL;
    size_t vlen = 0, hlen = 0, kn;
    int first = 1, rc = -1, has_key = 0, which, encoded = 0;
    lev_error_t err;
    if (lev_jreader_eat(&r, '{') != 0)
        goto out;
    while ((rc = lev_jreader_member(&r, &first, &k, &kn)) == 1) {
#define IS(name) (kn == sizeof name - 1 && memcmp(k, name, kn) == 0)
        if (IS("type"))
            rc = fast_string(&r, &type);
        else if (IS("id"))
            rc = fast_string(&r, &id);
        else if (IS("topic"))
            rc = fast_string(&r, &topic);
        else if (IS("time"))
            rc = fast_string(&r, &time);
        else if (IS("key") && !has_key++)
            rc = lev_jreader_peek(&r) == 'n' ? lev_jreader_literal(&r, &which)
                                             : fast_string(&r, &key);
        else if (IS("value") && !value && lev_jreader_peek(&r) == '{') {
            value = r.p;
            if (type && !encoded && lev_codec_wire_format(codec) == LEV_WIRE_SOE) {
                /* the usual order, "type" first: encoded as it is read */
                size_t used = 0;
                schema = lev_schemas_find(ctx->schemas, type);
                it->vlen = 0;
                rc = schema ? lev_codec_encode_json(codec, schema, r.p, (size_t)(r.end - r.p),
                                                    &used, &it->vbuf, &it->vlen, &it->vcap, &err)
                            : -1;
                r.p += used;
                vlen = used;
                encoded = rc == 0;
            } else {
                rc = lev_jreader_skip(&r, FAST_SKIP_DEPTH, &value, &vlen);
            }
        } else if (IS("headers") && !headers)
            rc = lev_jreader_skip(&r, FAST_SKIP_DEPTH, &headers, &hlen);
        else
            rc = -1;
#undef IS
        if (rc != 0)
            goto out;
    }
    if (rc != 0 || lev_jreader_peek(&r) != -1 || !type || !value) {
        rc = -1;
        goto out;
    }
    rc = -1;
    if (!encoded)
        schema = lev_schemas_find(ctx->schemas, type);
    if (!schema || (key && !*key) || (id && (!*id || strlen(id) >= sizeof it->eh.id)))
        goto out;
    it->time_ms = 0;
    if (time && lev_time_parse(time, &it->time_ms) != 0)
        goto out;
    lev_event_meta_t meta = {.id = id, .source = ctx->conf.source, .time_ms = it->time_ms};
    lev_header_t user[MAX_USER_HEADERS];
    size_t nuser = 0;
    if (headers && fast_headers(rules, headers, hlen, user, &nuser, &meta) != 0)
        goto out;
    const char *t = rules->topic_opt ? rules->topic_opt : topic ? topic : route(ctx, routes, type);
    if (!t || !(it->topic = strdup(t)))
        goto out;
    if (key && !(it->key = strdup(key)))
        goto out;
    if (!has_key) { /* the key defaults to value.order_id */
        int f = order_id_field(schema);
        if (f < 0 || (f == 1 && fast_order_id(value, vlen, &it->key) != 0))
            goto out;
    }
    if (!encoded) {
        if (register_for(ctx, rules, it->topic, schema, &err) != 0)
            goto out;
        it->vlen = 0;
        if (dry_confluent(ctx, rules))
            lev_codec_set_wire_format(codec, LEV_WIRE_SOE);
        int erc = lev_codec_encode_json(codec, schema, value, vlen, NULL, &it->vbuf, &it->vlen,
                                        &it->vcap, &err);
        if (dry_confluent(ctx, rules))
            lev_codec_set_wire_format(codec, LEV_WIRE_CONFLUENT);
        if (erc != 0)
            goto out;
    }
    it->value = it->vbuf;
    it->value_len = it->vlen;
    it->value_in_vbuf = 1;
    item_headers(it, schema, &meta, user, nuser);
    rc = 0;
out:
    lev_jreader_free(&r);
    if (rc != 0)
        item_clear(it);
    return rc;
}

/* ======================================================================
 * Spooled records
 *
 * u32 topic index (at REC_TOPIC_AT, filled in when spooled), then varints
 * (LEB128): line, time_ms (zigzag), key (0: none, else its length + 1)
 * and its bytes, value length and its bytes, header count; then per
 * header a name code and a value code:
 *   name   1..NWK_NAMES  the well-known name wk_names[code - 1]
 *          0             a varint length, the name, a NUL
 *   value  0             null
 *          1             the value of an earlier header of this record,
 *                        its index in one byte (correlation_id = ce_id)
 *          2..           the well-known value wk_values[code - 2]
 *          beyond        (code - 2 - NWK_VALUES) bytes, the value
 * An OrderPlaced line spools as about 300 bytes instead of the 511 of a
 * plain layout: the spool is written once and read once per line, and
 * those copies are most of what the main thread does in the first pass.
 * ====================================================================== */

#define REC_TOPIC_AT 0

/* The names and values of the headers every event carries (lev_event_headers). */
typedef struct wk_s {
    const char *s;
    size_t len;
} wk_t;
#define WK(lit)                                                                                    \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }
static const wk_t wk_names[] = {WK(LEV_H_CE_SPECVERSION), WK(LEV_H_CE_ID),
                                WK(LEV_H_CE_SOURCE),      WK(LEV_H_CE_TYPE),
                                WK(LEV_H_CE_TIME),        WK(LEV_H_CONTENT_TYPE),
                                WK(LEV_H_TRACEPARENT),    WK(LEV_H_CORRELATION_ID)};
static const wk_t wk_values[] = {WK("1.0"), WK(LEV_CONTENT_TYPE_AVRO)};
#define NWK_NAMES (sizeof wk_names / sizeof wk_names[0])
#define NWK_VALUES (sizeof wk_values / sizeof wk_values[0])
#define WK_ID 2 /* the name codes rec_parse looks for */
#define WK_SOURCE 3
#define WK_TYPE 4

typedef struct wbuf_s {
    char *p;
    size_t len, cap;
} wbuf_t;

/* Room for n more bytes in b; 0 or -1. */
static int wb_reserve(wbuf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
        return -1;
    b->p = np;
    b->cap = cap;
    return 0;
}

static int wb_put(wbuf_t *b, const void *src, size_t n)
{
    if (wb_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static size_t uv_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *put_uv(char *at, uint64_t v)
{
    while (v >= 0x80) {
        *at++ = (char)(v | 0x80);
        v >>= 7;
    }
    *at++ = (char)v;
    return at;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

/* The code of a header name: 1 + its index in wk_names, or 0. */
static unsigned wk_name(const char *name, size_t len)
{
    for (size_t i = 0; i < NWK_NAMES; i++)
        if (wk_names[i].len == len && memcmp(name, wk_names[i].s, len) == 0)
            return (unsigned)i + 1;
    return 0;
}

/* How header i's value is spooled: its value code, *ref the index of the
 * earlier header with the same value when the code is 1. */
static uint64_t value_code(const lev_header_t *h, size_t i, unsigned *ref)
{
    const lev_header_t *x = &h[i];
    if (!x->value)
        return 0;
    for (size_t k = 0; k < NWK_VALUES; k++)
        if (x->size == wk_values[k].len && memcmp(x->value, wk_values[k].s, x->size) == 0)
            return 2 + k;
    if (x->size >= 8)
        for (size_t j = 0; j < i && j < 256; j++)
            if (h[j].value && h[j].size == x->size && memcmp(h[j].value, x->value, x->size) == 0) {
                *ref = (unsigned)j;
                return 1;
            }
    return 2 + NWK_VALUES + (uint64_t)x->size;
}

/* An item as a spooled record, appended to b (its size computed first: one
 * reservation, then plain copies). */
static int item_spool(const item_t *it, uint32_t topic, wbuf_t *b)
{
    enum { NH = LEV_EVENT_HEADERS_MAX + MAX_USER_HEADERS };
    size_t kl = it->key ? strlen(it->key) : 0, nl[NH];
    unsigned name[NH], ref[NH];
    uint64_t code[NH];
    size_t need = 4 + uv_len((uint64_t)it->line) + uv_len(zigzag(it->time_ms)) +
                  uv_len(it->key ? kl + 1 : 0) + kl + uv_len(it->value_len) + it->value_len +
                  uv_len(it->nheaders);
    for (size_t i = 0; i < it->nheaders; i++) {
        const lev_header_t *h = &it->headers[i];
        nl[i] = strlen(h->name);
        name[i] = wk_name(h->name, nl[i]);
        code[i] = value_code(it->headers, i, &ref[i]);
        need += 1 + (name[i] ? 0 : uv_len(nl[i]) + nl[i] + 1) + uv_len(code[i]) +
                (code[i] == 1                ? 1
                 : code[i] >= 2 + NWK_VALUES ? h->size
                                             : 0);
    }
    if (need > UINT32_MAX || wb_reserve(b, need) != 0)
        return -1;
    char *at = b->p + b->len;
    memcpy(at, &topic, 4);
    at += 4;
    at = put_uv(at, (uint64_t)it->line);
    at = put_uv(at, zigzag(it->time_ms));
    at = put_uv(at, it->key ? kl + 1 : 0);
    memcpy(at, it->key ? it->key : "", kl);
    at += kl;
    at = put_uv(at, it->value_len);
    if (it->value_len)
        memcpy(at, it->value, it->value_len);
    at += it->value_len;
    at = put_uv(at, it->nheaders);
    for (size_t i = 0; i < it->nheaders; i++) {
        const lev_header_t *h = &it->headers[i];
        *at++ = (char)name[i];
        if (!name[i]) {
            at = put_uv(at, nl[i]);
            memcpy(at, h->name, nl[i] + 1);
            at += nl[i] + 1;
        }
        at = put_uv(at, code[i]);
        if (code[i] == 1) {
            *at++ = (char)ref[i];
        } else if (code[i] >= 2 + NWK_VALUES && h->size) {
            memcpy(at, h->value, h->size);
            at += h->size;
        }
    }
    b->len += need;
    return 0;
}

/* A spooled record read back: pointers into the spool's record buffer. */
typedef struct rec_s {
    long line;
    int64_t time_ms;
    uint32_t topic;
    const char *key; /* NULL: none */
    size_t key_len;
    const void *value;
    size_t value_len;
    lev_header_t headers[LEV_EVENT_HEADERS_MAX + MAX_USER_HEADERS];
    size_t nheaders;
    const char *id, *type, *source; /* from the headers, NUL-terminated copies */
    char idbuf[sizeof(((lev_event_headers_t *)0)->id)];
    char typebuf[sizeof(((lev_event_headers_t *)0)->type)];
    char srcbuf[sizeof(((lev_event_headers_t *)0)->source)];
} rec_t;

typedef struct rd_s {
    const char *p, *end;
    int bad;
} rd_t;

static const void *rd_take(rd_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const void *at = r->p;
    r->p += n;
    return at;
}

static uint64_t rd_uv(rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; !r->bad && r->p < r->end && shift < 64; shift += 7) {
        unsigned char c = (unsigned char)*r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static void copy_header(const lev_header_t *h, char *buf, size_t size, const char **out)
{
    size_t n = h->value && h->size < size ? h->size : 0;
    memcpy(buf, h->value ? h->value : "", n);
    buf[n] = '\0';
    *out = buf;
}

/* Parses a spooled record; 0 or -1. */
static int rec_parse(const void *data, uint32_t len, rec_t *out)
{
    rd_t r = {data, (const char *)data + len, 0};
    const void *topic = rd_take(&r, 4);
    if (!topic)
        return -1;
    memcpy(&out->topic, topic, 4);
    out->line = (long)rd_uv(&r);
    uint64_t t = rd_uv(&r);
    out->time_ms = (int64_t)(t >> 1) ^ -(int64_t)(t & 1);
    uint64_t k = rd_uv(&r);
    out->key_len = k ? (size_t)(k - 1) : 0;
    out->key = k && k - 1 <= len ? rd_take(&r, out->key_len) : NULL;
    if (k && !out->key)
        return -1;
    uint64_t vlen = rd_uv(&r);
    out->value = vlen <= len ? rd_take(&r, (size_t)vlen) : NULL;
    out->value_len = (size_t)vlen;
    uint64_t nh = rd_uv(&r);
    if (r.bad || !out->value || nh > sizeof out->headers / sizeof out->headers[0])
        return -1;
    out->nheaders = 0;
    out->id = out->type = out->source = "";
    for (uint64_t i = 0; i < nh && !r.bad; i++) {
        const unsigned char *nc = rd_take(&r, 1);
        const char *name = NULL;
        if (nc && *nc && *nc <= NWK_NAMES) {
            name = wk_names[*nc - 1].s;
        } else if (nc && !*nc) {
            uint64_t nl = rd_uv(&r);
            name = nl < len ? rd_take(&r, (size_t)nl + 1) : NULL;
            if (!name || name[nl] != '\0')
                return -1;
        } else {
            return -1;
        }
        uint64_t code = rd_uv(&r);
        lev_header_t *h = &out->headers[out->nheaders];
        *h = (lev_header_t){name, NULL, 0};
        if (code == 1) {
            const unsigned char *j = rd_take(&r, 1);
            if (!j || *j >= out->nheaders)
                return -1;
            h->value = out->headers[*j].value;
            h->size = out->headers[*j].size;
        } else if (code >= 2 && code < 2 + NWK_VALUES) {
            h->value = wk_values[code - 2].s;
            h->size = wk_values[code - 2].len;
        } else if (code >= 2 + NWK_VALUES) {
            uint64_t n = code - 2 - NWK_VALUES;
            h->value = n <= len ? rd_take(&r, (size_t)n) : NULL;
            h->size = (size_t)n;
            if (!h->value)
                return -1;
        }
        out->nheaders++;
        unsigned c = *nc;
        if (c == WK_ID)
            copy_header(h, out->idbuf, sizeof out->idbuf, &out->id);
        else if (c == WK_TYPE)
            copy_header(h, out->typebuf, sizeof out->typebuf, &out->type);
        else if (c == WK_SOURCE)
            copy_header(h, out->srcbuf, sizeof out->srcbuf, &out->source);
    }
    return r.bad ? -1 : 0;
}

/* ======================================================================
 * Event ids seen: a table of 8 bytes per event, (spool offset + 1) << 24
 * | a 24-bit hash tag; a tag that matches is confirmed from the spool
 * ====================================================================== */

typedef struct ids_s {
    uint64_t *slot;
    size_t cap, n; /* cap a power of two */
} ids_t;

static uint64_t ident_hash(const char *source, const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then mixed */
    for (const char *p = source; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '\n') * 1099511628211ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#define IDS_TAG(h) ((h) >> 40)
#define IDS_OFF_MAX ((1ull << 40) - 2)

static size_t ids_home(uint64_t tag, size_t cap)
{
    return (size_t)((tag * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static int ids_grow(ids_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    uint64_t *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return -1;
    /* an entry's slot comes from its tag alone, so it moves without its event */
    for (size_t i = 0; i < t->cap; i++) {
        uint64_t e = t->slot[i];
        if (!e)
            continue;
        size_t j = ids_home(e & 0xffffff, cap);
        while (ns[j])
            j = (j + 1) & (cap - 1);
        ns[j] = e;
    }
    free(t->slot);
    t->slot = ns;
    t->cap = cap;
    return 0;
}

/* Room for n more entries without growing: slots stay where they are. */
static int ids_reserve(ids_t *t, size_t n)
{
    while ((t->n + n) * 4 > t->cap * 3)
        if (ids_grow(t) != 0)
            return -1;
    return 0;
}

/* Asks for the cache line of the slot an event of this hash looks at first. */
static void ids_prefetch(const ids_t *t, uint64_t hash)
{
    __builtin_prefetch(&t->slot[ids_home(IDS_TAG(hash), t->cap)]);
}

/* Looks up the event (source, id; hash its ident_hash) of the item
 * spooled at off and adds it when new. *first is the line that has it
 * already, else 0. Returns 0, or -1 when out of memory or the spool cannot
 * be read. */
static int ids_check_add(ids_t *t, evctl_spool_t *sp, const char *source, const char *id,
                         uint64_t hash, uint64_t off, rec_t *scratch, long *first)
{
    *first = 0;
    if (ids_reserve(t, 1) != 0 || off > IDS_OFF_MAX)
        return -1;
    uint64_t tag = IDS_TAG(hash);
    size_t j = ids_home(tag, t->cap);
    for (; t->slot[j]; j = (j + 1) & (t->cap - 1)) {
        if ((t->slot[j] & 0xffffff) != tag)
            continue;
        const void *data;
        uint32_t len;
        if (evctl_spool_get(sp, (t->slot[j] >> 24) - 1, &data, &len) != 0 ||
            rec_parse(data, len, scratch) != 0)
            return -1;
        if (strcmp(scratch->id, id) == 0 && strcmp(scratch->source, source) == 0) {
            *first = scratch->line;
            return 0;
        }
    }
    t->slot[j] = ((off + 1) << 24) | tag;
    t->n++;
    return 0;
}

/* ======================================================================
 * Reading and validating (first pass)
 * ====================================================================== */

/* What the first pass found. */
typedef struct input_s {
    evctl_spool_t spool;
    json_t *topics;      /* topic -> its index */
    json_t *topic_names; /* index -> [topic, first line] */
    size_t n, nbad;      /* events spooled, bad lines */
} input_t;

/* The index of topic t, added with its first line when new; -1 when out of memory. */
static long topic_index(input_t *in, const char *t, long line)
{
    json_t *i = json_object_get(in->topics, t);
    if (i)
        return (long)json_integer_value(i);
    long n = (long)json_array_size(in->topic_names);
    if (json_object_set_new(in->topics, t, json_integer(n)) != 0 ||
        json_array_append_new(in->topic_names, json_pack("[s,I]", t, (json_int_t)line)) != 0)
        return -1;
    return n;
}

/* The first pass: what it keeps from line to line. */
typedef struct reader_s {
    evctl_ctx_t *ctx;
    routes_t *routes;
    const rules_t *rules;
    const char *name;
    input_t *in;
    ids_t ids;
    wbuf_t wb;
    item_t *it;
    rec_t *scratch;
    int tree_only;
} reader_t;

/* Spools a validated event (its record in rec, topic index 0 at
 * REC_TOPIC_AT, filled in here) unless an earlier line has its source and
 * id (hash: their ident_hash): then reports the line. 0, or an exit code. */
static int spool_event(reader_t *rd, long lineno, const char *source, const char *id, uint64_t hash,
                       const char *topic, char *rec, size_t len)
{
    input_t *in = rd->in;
    long first = 0;
    if (ids_check_add(&rd->ids, &in->spool, source, id, hash, in->spool.flushed + in->spool.len,
                      rd->scratch, &first) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory or temporary file unreadable");
    if (first) {
        char text[600];
        snprintf(text, sizeof text,
                 "\"%.64s\" is also the id of line %ld (same ce_source): each event of one "
                 "input needs its own id, a service handles an id once",
                 id, first);
        report_bad(rd->name, lineno, "duplicate-id", "id", text);
        in->nbad++;
        return 0;
    }
    long t = topic_index(in, topic, lineno);
    if (t < 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    uint32_t t32 = (uint32_t)t;
    memcpy(rec + REC_TOPIC_AT, &t32, sizeof t32);
    uint64_t off;
    int rc = evctl_spool_put(&in->spool, rec, (uint32_t)len, &off);
    if (rc == 0)
        in->n++;
    return rc;
}

/* One line (without its end of line, not blank), on the main thread:
 * validated, then spooled or reported. 0, or an exit code. */
static int one_line(reader_t *rd, const char *line, size_t len, long lineno)
{
    char where[300] = "", text[600] = "";
    item_t *it = rd->it;
    if (len > MAX_LINE) {
        report_bad(rd->name, lineno, "json", "", "line too long");
        rd->in->nbad++;
        return 0;
    }
    json_error_t jerr;
    const char *cls = NULL;
    int fast = !rd->tree_only &&
               fast_line(rd->ctx, rd->ctx->codec, rd->routes, rd->rules, it, line, len) == 0;
    it->line = lineno;
    if (!fast && !(it->doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr))) {
        snprintf(where, sizeof where, "column %d", jerr.column);
        snprintf(text, sizeof text, "%s", jerr.text);
        cls = "json";
    } else if (!fast) {
        cls = validate(rd->ctx, rd->routes, rd->rules, it, where, sizeof where, text, sizeof text);
    }
    int rc = 0;
    if (cls) {
        report_bad(rd->name, lineno, cls, where, text);
        rd->in->nbad++;
    } else {
        rd->wb.len = 0;
        rc = item_spool(it, 0, &rd->wb) != 0 ? evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory")
                                             : spool_event(rd, lineno, it->eh.source, it->eh.id,
                                                           ident_hash(it->eh.source, it->eh.id),
                                                           it->topic, rd->wb.p, rd->wb.len);
    }
    item_clear(it);
    return rc;
}

/* ----------------------------------------------------------------------
 * The first pass on several cores: the main thread reads lines into
 * chunks, worker threads validate and encode them by the fast path (each
 * with its own codec), and the main thread takes the chunks back in input
 * order to spool their events, check their ids and report. A line the
 * fast path refuses is done again on the main thread, as one_line does
 * it, so every error and every record is what the single-threaded pass
 * gives.
 * ---------------------------------------------------------------------- */

#define PAR_MAX_WORKERS 4
#define PAR_CHUNK_LINES 1024
#define PAR_CHUNK_BYTES (1u << 20)
#define PAR_LINE_MAX (256u << 10)            /* longer lines: on the main thread */
#define PAR_CHUNKS (2 * PAR_MAX_WORKERS + 1) /* at most; 2 per worker + 1 in use */

typedef struct pline_s {
    long no;
    size_t off, len;     /* in the chunk's text */
    int ok;              /* the worker spooled it into out */
    size_t out, rec_len; /* at out: the record, then topic, source and id, NUL-terminated */
    uint64_t hash;       /* ident_hash of its source and id */
} pline_t;

typedef struct chunk_s {
    wbuf_t text; /* the lines, each NUL-terminated */
    pline_t *line;
    size_t n, cap;
    wbuf_t out;
} chunk_t;

typedef struct pworker_s {
    item_t *it;
    lev_codec_t *codec;
} pworker_t;

typedef struct par_s {
    reader_t *rd;
    _Atomic int routes_ready; /* rd->routes loaded: workers may read them */
    pworker_t w[PAR_MAX_WORKERS];
    int nworkers;
    evctl_pool_t *pool;
    chunk_t chunk[PAR_CHUNKS];
    chunk_t *free_chunk[PAR_CHUNKS];
    int nchunks, nfree;
    chunk_t *cur; /* being filled */
} par_t;

static int wb_str(wbuf_t *b, const char *s)
{
    return wb_put(b, s, strlen(s) + 1);
}

/* A worker thread: the fast path on every line of a chunk. */
static void par_chunk(void *arg, int worker, void *job)
{
    par_t *P = arg;
    pworker_t *w = &P->w[worker];
    chunk_t *c = job;
    reader_t *rd = P->rd;
    routes_t *routes = atomic_load(&P->routes_ready) ? rd->routes : NULL;
    c->out.len = 0;
    for (size_t i = 0; i < c->n; i++) {
        pline_t *l = &c->line[i];
        item_t *it = w->it;
        l->ok = 0;
        if (fast_line(rd->ctx, w->codec, routes, rd->rules, it, c->text.p + l->off, l->len) != 0)
            continue;
        it->line = l->no;
        l->out = c->out.len;
        int rc = item_spool(it, 0, &c->out);
        l->rec_len = c->out.len - l->out;
        if (rc == 0 && wb_str(&c->out, it->topic) == 0 && wb_str(&c->out, it->eh.source) == 0 &&
            wb_str(&c->out, it->eh.id) == 0) {
            l->ok = 1;
            l->hash = ident_hash(it->eh.source, it->eh.id);
        } else {
            c->out.len = l->out; /* out of memory: the main thread tries it */
        }
        item_clear(it);
    }
}

/* Takes the oldest chunk back: its events spooled and its other lines done
 * on the main thread, in order. 0, or an exit code. */
static int par_commit(par_t *P)
{
    chunk_t *c = evctl_pool_next(P->pool);
    if (!c)
        return 0;
    reader_t *rd = P->rd;
    /* the id table's slots for the whole chunk asked for at once: one
     * cache miss per event was most of what spooling cost this thread */
    int rc =
        ids_reserve(&rd->ids, c->n) == 0 ? 0 : evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < c->n && rc == 0; i++)
        if (c->line[i].ok)
            ids_prefetch(&rd->ids, c->line[i].hash);
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        pline_t *l = &c->line[i];
        if (!l->ok) { /* refused by the fast path, or routed before routes were loaded */
            rc = one_line(rd, c->text.p + l->off, l->len, l->no);
            if (rd->routes->state == 1)
                atomic_store(&P->routes_ready, 1); /* for the chunks started from now on */
            continue;
        }
        char *rec = c->out.p + l->out;
        const char *topic = rec + l->rec_len, *source = topic + strlen(topic) + 1;
        const char *id = source + strlen(source) + 1;
        rc = spool_event(rd, l->no, source, id, l->hash, topic, rec, l->rec_len);
    }
    c->n = 0;
    c->text.len = 0;
    P->free_chunk[P->nfree++] = c;
    return rc;
}

static int par_submit(par_t *P)
{
    chunk_t *c = P->cur;
    P->cur = NULL;
    if (!c || c->n == 0) {
        if (c)
            P->free_chunk[P->nfree++] = c;
        return 0;
    }
    return evctl_pool_submit(P->pool, c) == 0 ? 0 : -1; /* cannot be full: PAR_CHUNKS < ring */
}

/* Adds a line to the chunk being filled (taking one back first when all
 * are out). 0, or an exit code. */
static int par_add(par_t *P, const char *line, size_t len, long lineno)
{
    int rc = 0;
    while (!P->cur) {
        if (P->nfree)
            P->cur = P->free_chunk[--P->nfree];
        else if ((rc = par_commit(P)) != 0)
            return rc;
    }
    chunk_t *c = P->cur;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        pline_t *nl = realloc(c->line, cap * sizeof *nl);
        if (!nl)
            return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        c->line = nl;
        c->cap = cap;
    }
    c->line[c->n] = (pline_t){lineno, c->text.len, len, 0, 0, 0, 0};
    if (wb_put(&c->text, line, len + 1) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    c->n++;
    if ((c->n >= PAR_CHUNK_LINES || c->text.len >= PAR_CHUNK_BYTES) && par_submit(P) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "cannot queue work");
    return 0;
}

/* Submits what is being filled and takes every chunk back. */
static int par_drain(par_t *P)
{
    int rc = par_submit(P) == 0 ? 0 : evctl_fail(EVCTL_EXIT_INTERNAL, "cannot queue work");
    while (rc == 0 && evctl_pool_out(P->pool) > 0)
        rc = par_commit(P);
    return rc;
}

/* Worker threads for the first pass: 0 (the main thread alone) with one
 * core, with jansson for every line, or outside the SOE format (the
 * Confluent one registers schemas as it goes); EVCTL_PUBLISH_THREADS
 * overrides the count. */
static int par_workers(const reader_t *rd)
{
    if (rd->tree_only || lev_codec_wire_format(rd->ctx->codec) != LEV_WIRE_SOE)
        return 0;
    const char *env = getenv("EVCTL_PUBLISH_THREADS");
    long n = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2 && !(env && *env))
        return 0;
    return n < 0 ? 0 : n > PAR_MAX_WORKERS ? PAR_MAX_WORKERS : (int)n;
}

static void par_free(par_t *P)
{
    evctl_pool_destroy(P->pool);
    for (int i = 0; i < P->nworkers; i++) {
        item_free(P->w[i].it);
        lev_codec_destroy(P->w[i].codec);
    }
    for (int i = 0; i < P->nchunks; i++) {
        free(P->chunk[i].text.p);
        free(P->chunk[i].line);
        free(P->chunk[i].out.p);
    }
    free(P);
}

/* NULL when the first pass runs on the main thread alone. */
static par_t *par_new(reader_t *rd)
{
    int n = par_workers(rd);
    par_t *P = n ? calloc(1, sizeof *P) : NULL;
    if (!P)
        return NULL;
    P->rd = rd;
    P->nchunks = 2 * n + 1;
    for (int i = 0; i < P->nchunks; i++)
        P->free_chunk[P->nfree++] = &P->chunk[i];
    for (; P->nworkers < n; P->nworkers++) {
        pworker_t *w = &P->w[P->nworkers];
        if (!(w->it = calloc(1, sizeof *w->it)) ||
            !(w->codec = lev_codec_new(rd->ctx->schemas, &rd->ctx->conf.limits))) {
            free(w->it);
            break;
        }
        lev_codec_set_wire_format(w->codec, LEV_WIRE_SOE);
    }
    if (P->nworkers < n || !(P->pool = evctl_pool_new(n, par_chunk, P))) {
        par_free(P);
        return NULL;
    }
    return P;
}

/* Reads, validates and spools every line of f; returns 0 or an exit code. */
static int read_input(evctl_ctx_t *ctx, routes_t *routes, const rules_t *rules, FILE *f,
                      const char *name, input_t *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    const char *tree_env = getenv("EVCTL_PUBLISH_TREE");
    reader_t rd = {ctx,
                   routes,
                   rules,
                   name,
                   in,
                   {NULL, 0, 0},
                   {NULL, 0, 0},
                   calloc(1, sizeof(item_t)),
                   malloc(sizeof(rec_t)),
                   tree_env && strcmp(tree_env, "1") == 0};
    par_t *par = NULL;
    if (!rd.it || !rd.scratch) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    par = par_new(&rd);
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue; /* blank */
        /* the first line on the main thread: it loads what the workers
         * read (the topics description, when it routes by type) */
        if (par && (size_t)len <= PAR_LINE_MAX && in->n + in->nbad > 0) {
            rc = par_add(par, line, (size_t)len, lineno);
            continue;
        }
        if (par) /* the lines before it first */
            rc = par_drain(par);
        if (rc == 0)
            rc = one_line(&rd, line, (size_t)len, lineno);
        if (par && routes->state == 1)
            atomic_store(&par->routes_ready, 1);
    }
    if (rc == 0 && par)
        rc = par_drain(par);
    if (!rc && ferror(f))
        rc = evctl_fail(EVCTL_EXIT_DATA, "%s: read error: %s", name, strerror(errno));
out:
    if (par)
        par_free(par);
    item_free(rd.it);
    free(rd.scratch);
    free(line);
    free(rd.ids.slot);
    free(rd.wb.p);
    return rc;
}

/* ======================================================================
 * Sending (second pass)
 * ====================================================================== */

/* Records in flight at most: bounds memory whatever the input's size. */
#define WINDOW_RECORDS 10000
#define WINDOW_BYTES (16u << 20)
/* Entries whose key, id and type fit this are kept for reuse. */
#define SENT_SMALL 256
/* Records sent between two polls for delivery reports. */
#define POLL_EVERY 64

typedef struct sender_s sender_t;

/* One record sent, until its delivery report: what its output line says. */
typedef struct sent_s {
    sender_t *s;
    struct sent_s *prev, *next; /* the records in flight */
    long line;
    uint32_t topic;
    size_t bytes;
    int has_key;
    int small;             /* SENT_SMALL bytes of data: goes back to the spares */
    char *key, *id, *type; /* in data */
    size_t key_len, id_len, type_len;
    char data[];
} sent_t;

struct sender_s {
    evctl_ctx_t *ctx;
    const char *name;
    json_t *topic_names;
    sent_t *inflight;
    size_t ninflight, bytes_inflight;
    size_t published, failed;
    wbuf_t out;    /* output lines not written yet (see OUT_FLUSH) */
    sent_t *spare; /* entries of SENT_SMALL bytes of data, free for reuse */
    int each_line; /* a terminal or a paced run: each line as it comes */
};

static const char *topic_name(const sender_t *s, uint32_t i)
{
    return json_string_value(json_array_get(json_array_get(s->topic_names, i), 0));
}

static void sent_unlink(sender_t *s, sent_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->inflight = t->next;
    if (t->next)
        t->next->prev = t->prev;
    s->ninflight--;
    s->bytes_inflight -= t->bytes;
}

/* Output lines are gathered in s->out and written OUT_FLUSH bytes at a
 * time: one stdio call per line was a tenth of the sending thread. A
 * terminal, and the reader of a paced run (--rate), get each line as its
 * record is acknowledged. */
#define OUT_FLUSH (64u << 10)

static void out_flush(sender_t *s)
{
    if (s->out.len) {
        fwrite(s->out.p, 1, s->out.len, stdout);
        if (s->each_line)
            fflush(stdout);
    }
    s->out.len = 0;
}

static void report_failed(sender_t *s, const sent_t *t, const char *why)
{
    char text[700];
    out_flush(s); /* the lines before it first */
    s->failed++;
    snprintf(text, sizeof text, "delivery to %s failed: %s", topic_name(s, t->topic), why);
    report_bad(s->name, t->line, "kafka", "", text);
}

/* Writes v in decimal at `at` (20 bytes at most); returns the end. */
static char *put_int(char *at, long long v)
{
    char b[24];
    size_t n = sizeof b;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        b[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        b[--n] = '-';
    memcpy(at, b + n, sizeof b - n);
    return at + (sizeof b - n);
}

/* Nonzero when one of the 8 bytes of w is '"', '\\', DEL or below 0x20:
 * the bytes a JSON string escapes here (the classic "has a byte less than
 * n" test: it may flag a byte above a true hit, never miss one; the byte
 * loop then decides). */
static uint64_t has_special(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\'), d = w ^ (ones * 0x7f);
    return ((w - ones * 0x20) | (q - ones) | (b - ones) | (d - ones)) & ~w & highs;
}

/* Room put_json_str needs for n bytes: each may become \u00XX, plus quotes. */
#define JSON_STR_MAX(n) (6 * (n) + 2)

/* Writes the n bytes at s (UTF-8, as every string here came from JSON) as
 * a JSON string at `at`; returns the end. */
static char *put_json_str(char *at, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    *at++ = '"';
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), !has_special(w))) {
            p += 8;
            continue;
        }
        if (*p != '"' && *p != '\\' && *p >= 0x20 && *p != 0x7f) {
            p++;
            continue;
        }
        memcpy(at, run, (size_t)(p - run));
        at += p - run;
        *at++ = '\\';
        if (*p == '"' || *p == '\\') {
            *at++ = (char)*p;
        } else {
            memcpy(at, "u00", 3);
            at[3] = hex[*p >> 4];
            at[4] = hex[*p & 15];
            at += 5;
        }
        run = ++p;
    }
    memcpy(at, run, (size_t)(p - run));
    at += p - run;
    *at++ = '"';
    return at;
}

#define PUT_LIT(at, lit) (memcpy(at, lit, sizeof lit - 1), at + (sizeof lit - 1))

static void sent_free(sender_t *s, sent_t *t)
{
    if (t->small) {
        t->next = s->spare;
        s->spare = t;
    } else {
        free(t);
    }
}

/* Delivery report of one published line: prints its outcome. */
static void on_delivery(void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset)
{
    sent_t *t = opaque;
    sender_t *s = t->s;
    sent_unlink(s, t);
    if (err) {
        report_failed(s, t, errstr ? errstr : lev_err_name(err));
    } else {
        s->published++;
        /* built by hand into one reservation: a million of them */
        wbuf_t *o = &s->out;
        json_t *topic = json_array_get(json_array_get(s->topic_names, t->topic), 0);
        size_t tl = json_string_length(topic);
        size_t need = 128 + JSON_STR_MAX(tl) + JSON_STR_MAX(t->key_len) + JSON_STR_MAX(t->id_len) +
                      JSON_STR_MAX(t->type_len);
        if (wb_reserve(o, need) != 0 && (out_flush(s), wb_reserve(o, need) != 0)) {
            fprintf(stderr, "evctl: %s:%ld: delivered; out of memory for its output line\n",
                    s->name, t->line);
            sent_free(s, t);
            return;
        }
        char *at = o->p + o->len;
        at = PUT_LIT(at, "{\"line\":");
        at = put_int(at, t->line);
        at = PUT_LIT(at, ",\"topic\":");
        at = put_json_str(at, json_string_value(topic), tl);
        at = PUT_LIT(at, ",\"partition\":");
        at = put_int(at, partition);
        at = PUT_LIT(at, ",\"offset\":");
        at = put_int(at, offset);
        at = PUT_LIT(at, ",\"key\":");
        at = t->has_key ? put_json_str(at, t->key, t->key_len) : PUT_LIT(at, "null");
        at = PUT_LIT(at, ",\"id\":");
        at = put_json_str(at, t->id, t->id_len);
        at = PUT_LIT(at, ",\"type\":");
        at = put_json_str(at, t->type, t->type_len);
        at = PUT_LIT(at, "}\n");
        o->len = (size_t)(at - o->p);
        if (o->len >= OUT_FLUSH || s->each_line)
            out_flush(s);
    }
    sent_free(s, t);
}

/* A record's "in flight" entry, linked in. */
static sent_t *sent_new(sender_t *s, const rec_t *r)
{
    size_t kl = r->key ? r->key_len : 0, il = strlen(r->id), tl = strlen(r->type);
    size_t need = kl + il + tl + 3;
    sent_t *t = NULL;
    if (need <= SENT_SMALL && s->spare) {
        t = s->spare;
        s->spare = t->next;
    } else {
        t = malloc(sizeof *t + (need <= SENT_SMALL ? SENT_SMALL : need));
    }
    if (!t)
        return NULL;
    t->small = need <= SENT_SMALL;
    t->s = s;
    t->line = r->line;
    t->topic = r->topic;
    t->bytes = sizeof *t + r->value_len + kl + 256;
    t->has_key = r->key != NULL;
    t->key_len = kl;
    t->id_len = il;
    t->type_len = tl;
    t->key = t->data;
    memcpy(t->key, r->key ? r->key : "", kl);
    t->key[kl] = '\0';
    t->id = t->key + kl + 1;
    memcpy(t->id, r->id, il + 1);
    t->type = t->id + il + 1;
    memcpy(t->type, r->type, tl + 1);
    t->prev = NULL;
    t->next = s->inflight;
    if (s->inflight)
        s->inflight->prev = t;
    s->inflight = t;
    s->ninflight++;
    s->bytes_inflight += t->bytes;
    return t;
}

/* Prints one record a dry run would send. */
static void dry_print(const sender_t *s, const rec_t *r)
{
    json_t *h = json_object();
    for (size_t k = 0; k < r->nheaders; k++)
        json_object_set_new(h, r->headers[k].name,
                            r->headers[k].value
                                ? evctl_json_bytes(r->headers[k].value, r->headers[k].size)
                                : json_null());
    evctl_out(json_pack("{s:I,s:s,s:o,s:o,s:I,s:b}", "line", (json_int_t)r->line, "topic",
                        topic_name(s, r->topic), "key",
                        r->key ? evctl_json_bytes(r->key, r->key_len) : json_null(), "headers", h,
                        "bytes", (json_int_t)r->value_len, "dry_run", 1));
}

/* Every destination topic must exist before anything is sent (a dry run
 * checks it too: it answers "would this publish?"). Returns 0 or an exit code. */
static int check_topics(evctl_ctx_t *ctx, const input_t *in, const char *name, int dry)
{
    int rc = 0;
    rd_kafka_t *rk = evctl_consumer_new(ctx, NULL, &rc);
    if (!rk)
        return rc;
    size_t i;
    json_t *t;
    json_array_foreach(in->topic_names, i, t)
    {
        const char *topic = json_string_value(json_array_get(t, 0));
        int parts = evctl_topic_partitions(rk, topic, ctx->timeout_ms);
        if (parts < 0) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: %s", topic,
                            evctl_topic_partitions_why(parts));
            break;
        }
        if (parts == 0) {
            rc = evctl_fail(EVCTL_EXIT_DATA,
                            "%s:%lld: topic %s does not exist (evctl topics creates the workflow's "
                            "topics): nothing %s",
                            name, (long long)json_integer_value(json_array_get(t, 1)), topic,
                            dry ? "would be published" : "published");
            break;
        }
    }
    evctl_consumer_destroy(rk);
    return rc;
}

/* Sends (or, dry, prints) every spooled record. Returns 0 or an exit code;
 * *unsent is the first line not sent when interrupted. */
static int send_all(evctl_ctx_t *ctx, input_t *in, sender_t *s, double rate, int dry, long *unsent)
{
    lev_producer_t *p = NULL;
    rec_t *r = malloc(sizeof *r);
    int rc = r ? evctl_spool_rewind(&in->spool) : evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if (rc == 0 && !dry && !(p = evctl_producer_new(ctx)))
        rc = EVCTL_EXIT_INTERNAL;
    evctl_rate_t pace;
    evctl_progress_t prog;
    evctl_rate_init(&pace, rate);
    evctl_progress_init(&prog, ctx, "publish");
    uint64_t done = 0;
    while (rc == 0) {
        const void *data;
        uint32_t len;
        int more = evctl_spool_next(&in->spool, &data, &len);
        if (more != 0) {
            rc = more == 1 ? 0 : more;
            break;
        }
        if (rec_parse(data, len, r) != 0) {
            rc = evctl_fail(EVCTL_EXIT_INTERNAL, "the temporary file holds a bad record");
            break;
        }
        if (dry) {
            dry_print(s, r);
            continue;
        }
        if (evctl_stop) {
            *unsent = r->line;
            break;
        }
        evctl_rate_wait(&pace, evctl_producer_poll_cb, p);
        while (!evctl_stop && (s->ninflight >= WINDOW_RECORDS || s->bytes_inflight >= WINDOW_BYTES))
            lev_producer_poll(p, 10);
        if (evctl_stop) {
            *unsent = r->line;
            break;
        }
        sent_t *t = sent_new(s, r);
        if (!t) {
            rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
            break;
        }
        lev_msg_t msg = {
            .topic = topic_name(s, r->topic),
            .partition = LEV_PARTITION_ANY,
            .key = r->key,
            .key_len = r->key_len,
            .value = r->value,
            .value_len = r->value_len,
            .headers = r->headers,
            .nheaders = r->nheaders,
            .timestamp_ms = r->time_ms,
        };
        lev_error_t err;
        if (lev_producer_send(p, &msg, on_delivery, t, &err) != 0) {
            sent_unlink(s, t);
            report_failed(s, t, err.text);
            sent_free(s, t);
        }
        if (++done % POLL_EVERY == 0)
            lev_producer_poll(p, 0); /* delivery reports, in batches */
        evctl_progress_update(&prog, done, (int64_t)(in->n - done));
    }
    if (p && lev_producer_flush(p, ctx->conf.delivery_timeout_ms + 5000) != 0)
        evctl_note(ctx, "some deliveries were not acknowledged in time");
    evctl_progress_end(&prog);
    /* reports what is still in flight as failed */
    lev_producer_destroy(p);
    out_flush(s);
    while (s->inflight) {
        sent_t *t = s->inflight;
        sent_unlink(s, t);
        report_failed(s, t, "not acknowledged in time");
        sent_free(s, t);
    }
    free(r);
    return rc;
}

/* evctl publish [FILE]: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    const char *path = args->npos ? args->pos[0] : "-";
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    rules_t rules = {evctl_opt(args, "topic"), evctl_flag(args, "allow-lev-headers"),
                     evctl_flag(args, "dry-run")};
    int dry = evctl_flag(args, "dry-run"), skip_bad = evctl_flag(args, "skip-bad");
    double rate = 0;
    FILE *f = NULL;
    routes_t routes;
    input_t in;
    int rc;
    memset(&routes, 0, sizeof routes);
    memset(&in, 0, sizeof in);
    in.spool.fd = -1;
    if (evctl_opt(args, "rate") && evctl_rate_parse(evctl_opt(args, "rate"), &rate) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "--rate: expected N, N/s, N/m or N/h, got \"%s\"",
                          evctl_opt(args, "rate"));
    if ((rc = evctl_load_schemas(ctx)) != 0)
        return rc;
    in.topics = json_object();
    in.topic_names = json_array();
    if (!in.topics || !in.topic_names) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    if ((rc = evctl_spool_open(&in.spool)) != 0)
        goto out;
    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        rc = evctl_fail(EVCTL_EXIT_DATA, "%s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = read_input(ctx, &routes, &rules, f, name, &in)))
        goto out;
    if (in.nbad && !skip_bad) {
        evctl_note(ctx, "%zu bad line%s in %s: nothing published (--skip-bad publishes the others)",
                   in.nbad, in.nbad == 1 ? "" : "s", name);
        rc = EVCTL_EXIT_DATA;
        goto out;
    }
    if (in.n == 0) { /* an empty input, blank lines, or only bad lines skipped */
        evctl_note(ctx, "%s holds no event to publish", name);
        evctl_note(ctx, "published 0, skipped %zu bad, failed 0", in.nbad);
        rc = in.nbad ? EVCTL_EXIT_DATA : 0;
        goto out;
    }
    if ((rc = check_topics(ctx, &in, name, dry)) != 0)
        goto out;
    sender_t s = {.ctx = ctx,
                  .name = name,
                  .topic_names = in.topic_names,
                  .each_line = isatty(STDOUT_FILENO) || rate > 0};
    long unsent = 0;
    rc = send_all(ctx, &in, &s, rate, dry, &unsent);
    free(s.out.p);
    while (s.spare) {
        sent_t *t = s.spare;
        s.spare = t->next;
        free(t);
    }
    if (dry) {
        if (rc == 0) {
            evctl_note(ctx, "dry run: %zu event%s valid, %zu bad, nothing sent", in.n,
                       in.n == 1 ? "" : "s", in.nbad);
            rc = in.nbad ? EVCTL_EXIT_DATA : 0;
        }
        goto out;
    }
    if (rc == 0)
        rc = evctl_stop ? EVCTL_EXIT_INTERRUPTED
             : s.failed ? EVCTL_EXIT_UNAVAILABLE
             : in.nbad  ? EVCTL_EXIT_DATA
                        : 0;
    fflush(stdout);
    evctl_note(ctx, "published %zu, skipped %zu bad, failed %zu", s.published, in.nbad, s.failed);
    if (evctl_stop && unsent)
        evctl_fail(rc, "interrupted: lines from %ld on were not sent", unsent);
out:
    if (f && f != stdin)
        fclose(f);
    evctl_spool_close(&in.spool);
    json_decref(in.topics);
    json_decref(in.topic_names);
    if (routes.state == 1)
        evctl_topology_clear(&routes.topo);
    json_decref(routes.by_type);
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
    "\"id\",\"type\"} is printed, in the order the broker acknowledges them; a failed\n"
    "delivery makes the exit code 69. The summary goes to stderr.\n"
    "\n"
    "Memory stays bounded whatever the input's size: validated events wait in a temporary\n"
    "file in $TMPDIR (else /tmp), and at most 10,000 are in flight.\n"
    "\n"
    "Lines are read without building a JSON tree where they can be (most lines); any\n"
    "other line, and every bad one, goes through jansson. EVCTL_PUBLISH_TREE=1 sends\n"
    "every line through jansson: the same events, slower (for comparisons).\n"
    "With more than one core, lines are validated and encoded on worker threads (one\n"
    "per core, at most 4; EVCTL_PUBLISH_THREADS=N sets how many, 0 none): the same\n"
    "records, errors and order as on one thread.\n",
    opts,
    0,
    1,
    run,
};
