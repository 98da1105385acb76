/*
 * Traces, exported with OTLP over HTTP in the JSON encoding (the OTLP
 * specification's "OTLP/HTTP", POST <endpoint>/v1/traces) through libcurl
 * from a thread of their own. The worker hands finished spans over once
 * per turn, under one lock; a full queue drops spans and counts them, so
 * the poll loop never waits for the collector.
 */
#include "trace_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum sampler_e {
    SAMPLE_ALWAYS_ON,
    SAMPLE_ALWAYS_OFF,
    SAMPLE_RATIO,
    SAMPLE_PARENT_ON,
    SAMPLE_PARENT_OFF,
    SAMPLE_PARENT_RATIO,
} sampler_t;

struct lev_tracer_s {
    char *url, *service;
    struct curl_slist *headers;
    _Atomic long timeout_ms; /* shortened for the last export at shutdown */
    sampler_t sampler;
    double ratio;
    size_t max_queue, batch;
    int64_t delay_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, stop;
    lev_span_t *queue; /* ring of max_queue */
    size_t head, n;
    _Atomic uint64_t exported, dropped, failed;
    int64_t last_failure_log_ms;
};

/* ======================================================================
 * Configuration
 * ====================================================================== */

static int config_fail(lev_error_t *err, const char *var, const char *fmt, const char *value)
{
    lev_error_set(err, LEV_ERR_CONFIG, var, fmt, value);
    return LEV_ERR_CONFIG;
}

/* Decodes %XX escapes of s in place (the spec's headers are URL-encoded). */
static void percent_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        unsigned x;
        if (r[0] == '%' && r[1] && r[2] && sscanf(r + 1, "%2x", &x) == 1) {
            *w++ = (char)x;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* "k1=v1,k2=v2" into curl headers "k1: v1". */
static int parse_headers(lev_tracer_t *t, const char *var, const char *spec, lev_error_t *err)
{
    char *copy = strdup(spec), *save = NULL;
    if (!copy)
        return lev_error_set(err, LEV_ERR_NOMEM, var, "out of memory");
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        while (*item == ' ')
            item++;
        if (!eq || eq == item) {
            rc = lev_error_set(err, LEV_ERR_CONFIG, var,
                               "expected key=value pairs separated by commas");
            break;
        }
        *eq = '\0';
        char *key = item, *value = eq + 1;
        for (char *e = key + strlen(key); e > key && e[-1] == ' ';)
            *--e = '\0';
        percent_decode(value);
        if (strpbrk(key, ": \r\n") || strpbrk(value, "\r\n")) {
            rc = lev_error_set(err, LEV_ERR_CONFIG, var, "a header name or value is not valid");
            break;
        }
        char line[2048];
        snprintf(line, sizeof line, "%s: %s", key, value);
        struct curl_slist *nl = curl_slist_append(t->headers, line);
        memset(line, 0, sizeof line); /* a value may be a secret */
        if (!nl) {
            rc = lev_error_set(err, LEV_ERR_NOMEM, var, "out of memory");
            break;
        }
        t->headers = nl;
    }
    memset(copy, 0, strlen(spec));
    free(copy);
    return rc;
}

static int parse_sampler(lev_tracer_t *t, lev_error_t *err)
{
    static const struct {
        const char *name;
        sampler_t s;
    } names[] = {
        {"always_on", SAMPLE_ALWAYS_ON},
        {"always_off", SAMPLE_ALWAYS_OFF},
        {"traceidratio", SAMPLE_RATIO},
        {"parentbased_always_on", SAMPLE_PARENT_ON},
        {"parentbased_always_off", SAMPLE_PARENT_OFF},
        {"parentbased_traceidratio", SAMPLE_PARENT_RATIO},
    };
    const char *v = lev_env("OTEL_TRACES_SAMPLER");
    t->sampler = SAMPLE_PARENT_ON;
    if (v) {
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] && strcmp(names[i].name, v) != 0)
            i++;
        if (i == sizeof names / sizeof names[0])
            return config_fail(err, "OTEL_TRACES_SAMPLER",
                               "expected always_on, always_off, traceidratio, "
                               "parentbased_always_on, parentbased_always_off or "
                               "parentbased_traceidratio, got \"%s\"",
                               v);
        t->sampler = names[i].s;
    }
    t->ratio = 1.0;
    const char *a = lev_env("OTEL_TRACES_SAMPLER_ARG");
    if (a && (t->sampler == SAMPLE_RATIO || t->sampler == SAMPLE_PARENT_RATIO)) {
        char *end;
        errno = 0;
        double r = strtod(a, &end);
        if (errno || *end || end == a || !(r >= 0.0 && r <= 1.0))
            return config_fail(err, "OTEL_TRACES_SAMPLER_ARG",
                               "expected a ratio from 0 to 1, got \"%s\"", a);
        t->ratio = r;
    }
    return 0;
}

/* ======================================================================
 * Trace context
 * ====================================================================== */

static int hex_nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex_bytes(const char *s, uint8_t *out, size_t n)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        any |= out[i];
    }
    return any ? 0 : -1; /* all zero is invalid */
}

int lev_trace_parse(const char *tp, size_t len, lev_trace_ctx_t *out)
{
    /* version 00 is exactly 55 characters; later versions may add fields */
    if (!tp || len < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
        (len > 55 && tp[55] != '-'))
        return -1;
    int v0 = hex_nibble(tp[0]), v1 = hex_nibble(tp[1]);
    if (v0 < 0 || v1 < 0 || (v0 == 0xf && v1 == 0xf) || (v0 == 0 && v1 == 0 && len != 55))
        return -1;
    uint8_t flags;
    if (hex_bytes(tp + 3, out->trace_id, 16) != 0 || hex_bytes(tp + 36, out->span_id, 8) != 0)
        return -1;
    int f0 = hex_nibble(tp[53]), f1 = hex_nibble(tp[54]);
    if (f0 < 0 || f1 < 0)
        return -1;
    flags = (uint8_t)(f0 << 4 | f1);
    out->sampled = flags & 1;
    return 0;
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void lev_trace_format(const lev_trace_ctx_t *ctx, char out[64])
{
    char tid[33], sid[17];
    hex_of(ctx->trace_id, 16, tid);
    hex_of(ctx->span_id, 8, sid);
    snprintf(out, 64, "00-%s-%s-%s", tid, sid, ctx->sampled ? "01" : "00");
}

void lev_trace_new_span_id(uint8_t out[8])
{
    do
        lev_fast_random_bytes(out, 8);
    while (!(out[0] | out[1] | out[2] | out[3] | out[4] | out[5] | out[6] | out[7]));
}

static int ratio_keeps(double ratio, const uint8_t trace_id[16])
{
    uint64_t x = 0;
    for (int i = 8; i < 16; i++) /* the trace id's random end */
        x = x << 8 | trace_id[i];
    return ratio >= 1.0 || (double)(x >> 11) < ratio * (double)(1ull << 53);
}

int lev_tracer_sample(const lev_tracer_t *t, const lev_trace_ctx_t *parent, uint8_t trace_id[16])
{
    if (parent) {
        memcpy(trace_id, parent->trace_id, 16);
    } else {
        do
            lev_fast_random_bytes(trace_id, 16);
        while (!(trace_id[0] | trace_id[15]));
    }
    switch (t->sampler) {
    case SAMPLE_ALWAYS_ON:
        return 1;
    case SAMPLE_ALWAYS_OFF:
        return 0;
    case SAMPLE_RATIO:
        return ratio_keeps(t->ratio, trace_id);
    case SAMPLE_PARENT_ON:
        return parent ? parent->sampled : 1;
    case SAMPLE_PARENT_OFF:
        return parent ? parent->sampled : 0;
    case SAMPLE_PARENT_RATIO:
        return parent ? parent->sampled : ratio_keeps(t->ratio, trace_id);
    }
    return 0;
}

/* ======================================================================
 * Export
 * ====================================================================== */

static json_t *attr_str(const char *key, const char *value)
{
    return json_pack("{s:s,s:{s:s}}", "key", key, "value", "stringValue", value);
}

static json_t *attr_int(const char *key, int64_t value)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)value);
    return json_pack("{s:s,s:{s:s}}", "key", key, "value", "intValue", v);
}

static json_t *span_json(const lev_span_t *s)
{
    char tid[33], sid[17], pid[17], start[24], end[24];
    static const uint8_t zero[8];
    hex_of(s->trace_id, 16, tid);
    hex_of(s->span_id, 8, sid);
    hex_of(s->parent_id, 8, pid);
    snprintf(start, sizeof start, "%lld", (long long)s->start_ns);
    snprintf(end, sizeof end, "%lld", (long long)s->end_ns);
    json_t *attrs = json_array();
    json_array_append_new(attrs, attr_str("messaging.system", "kafka"));
    json_array_append_new(attrs, attr_str("messaging.operation",
                                          s->kind == LEV_SPAN_PRODUCER ? "publish" : "process"));
    json_array_append_new(attrs, attr_str("messaging.destination.name", s->topic));
    if (s->partition >= 0)
        json_array_append_new(attrs,
                              attr_int("messaging.kafka.destination.partition", s->partition));
    if (s->offset >= 0)
        json_array_append_new(attrs, attr_int("messaging.kafka.message.offset", s->offset));
    if (s->event_id[0])
        json_array_append_new(attrs, attr_str("messaging.message.id", s->event_id));
    if (s->event_type[0])
        json_array_append_new(attrs, attr_str("cloudevents.event_type", s->event_type));
    if (s->attempt > 0)
        json_array_append_new(attrs, attr_int("lev.attempt", s->attempt));
    json_t *status = json_pack("{s:i}", "code", s->status);
    if (s->status == LEV_SPAN_ERROR && s->message[0])
        json_object_set_new(status, "message", json_string(s->message));
    json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:o}", "traceId", tid, "spanId", sid,
                          "name", s->name, "kind", s->kind, "startTimeUnixNano", start,
                          "endTimeUnixNano", end, "attributes", attrs, "status", status);
    if (j && memcmp(s->parent_id, zero, 8) != 0)
        json_object_set_new(j, "parentSpanId", json_string(pid));
    return j;
}

static char *batch_json(const lev_tracer_t *t, const lev_span_t *spans, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, span_json(&spans[i]));
    json_t *doc = json_pack("{s:[{s:{s:[{s:s,s:{s:s}},{s:s,s:{s:s}}]},s:[{s:{s:s,s:s},s:o}]}]}",
                            "resourceSpans", "resource", "attributes", "key", "service.name",
                            "value", "stringValue", t->service, "key", "telemetry.sdk.name",
                            "value", "stringValue", "libevents", "scopeSpans", "scope", "name",
                            "libevents", "version", LEV_VERSION_STR, "spans", arr);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return s;
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* POSTs n spans; 0 when the collector took them. */
static int export_batch(lev_tracer_t *t, CURL *c, const lev_span_t *spans, size_t n)
{
    char *body = batch_json(t, spans, n);
    if (!body)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, atomic_load(&t->timeout_ms));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    free(body);
    if (rc == CURLE_OK && status >= 200 && status < 300)
        return 0;
    int64_t now = lev_mono_ms();
    if (now - t->last_failure_log_ms > 60000) { /* at most once a minute */
        t->last_failure_log_ms = now;
        char code[16];
        snprintf(code, sizeof code, "%ld", status);
        lev_log(LEV_LOG_WARN, "cannot export spans; they are dropped", "url", t->url, "status",
                status ? code : NULL, "error", rc != CURLE_OK ? curl_easy_strerror(rc) : NULL,
                NULL);
    }
    return -1;
}

static void *exporter_main(void *arg)
{
    lev_tracer_t *t = arg;
    CURL *c = curl_easy_init();
    lev_span_t *batch = malloc(t->batch * sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&t->mu);
        if (!t->stop && t->n < t->batch) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(t->delay_ms / 1000);
            ts.tv_nsec += (long)(t->delay_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        size_t k = 0;
        while (k < t->batch && t->n > 0) {
            batch[k++] = t->queue[t->head];
            t->head = (t->head + 1) % t->max_queue;
            t->n--;
        }
        int stop = t->stop && t->n == 0;
        pthread_mutex_unlock(&t->mu);
        if (k > 0) {
            if (c && batch && export_batch(t, c, batch, k) == 0) {
                atomic_fetch_add(&t->exported, k);
            } else {
                atomic_fetch_add(&t->dropped, k);
                atomic_fetch_add(&t->failed, 1);
            }
        }
        if (stop)
            break;
    }
    free(batch);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

/* ======================================================================
 * The tracer
 * ====================================================================== */

static void tracer_free(lev_tracer_t *t)
{
    if (!t)
        return;
    free(t->url);
    free(t->service);
    curl_slist_free_all(t->headers);
    free(t->queue);
    free(t);
}

int lev_tracer_new(const char *service, lev_tracer_t **out, lev_error_t *err)
{
    *out = NULL;
    const char *off = lev_env("OTEL_SDK_DISABLED");
    if (off && strcmp(off, "true") != 0 && strcmp(off, "false") != 0)
        return config_fail(err, "OTEL_SDK_DISABLED", "expected true or false, got \"%s\"", off);
    const char *traces_ep = lev_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base_ep = lev_env("OTEL_EXPORTER_OTLP_ENDPOINT");
    if ((off && strcmp(off, "true") == 0) || (!traces_ep && !base_ep))
        return 0; /* off */
    const char *ep = traces_ep ? traces_ep : base_ep;
    if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return config_fail(
            err, traces_ep ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT",
            "expected an http:// or https:// URL, got \"%s\"", ep);
    lev_tracer_t *t = calloc(1, sizeof *t);
    if (!t)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    int rc = 0;
    /* a base endpoint gets the signal's path; a traces endpoint is used as is */
    size_t el = strlen(ep);
    if ((t->url = malloc(el + 16)) != NULL)
        snprintf(t->url, el + 16, "%s%s", ep,
                 traces_ep                 ? ""
                 : el && ep[el - 1] == '/' ? "v1/traces"
                                           : "/v1/traces");
    const char *name = lev_env("OTEL_SERVICE_NAME");
    t->service = strdup(name ? name : service ? service : "unknown_service");
    if (!t->url || !t->service) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    long timeout, queue, delay, batch;
    if ((rc = lev_env_long("OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 600000, &timeout, err)) ||
        (rc = lev_env_long("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1000000, &queue, err)) ||
        (rc = lev_env_long("OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 600000, &delay, err)) ||
        (rc = lev_env_long("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 1000000, &batch, err)) ||
        (rc = parse_sampler(t, err)))
        goto fail;
    const char *h = lev_env("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    const char *hvar = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    if (!h) {
        h = lev_env("OTEL_EXPORTER_OTLP_HEADERS");
        hvar = "OTEL_EXPORTER_OTLP_HEADERS";
    }
    /* no "Expect: 100-continue" round trip before a large body */
    struct curl_slist *ct = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *ct2 = ct ? curl_slist_append(ct, "Expect:") : NULL;
    if (!ct2)
        curl_slist_free_all(ct);
    ct = ct2;
    if (!ct) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    t->headers = ct;
    if (h && (rc = parse_headers(t, hvar, h, err)) != 0)
        goto fail;
    atomic_store(&t->timeout_ms, timeout);
    t->max_queue = (size_t)queue;
    t->batch = (size_t)(batch < queue ? batch : queue);
    t->delay_ms = delay;
    if (!(t->queue = malloc(t->max_queue * sizeof *t->queue))) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "libcurl does not start");
        goto fail;
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0 || pthread_cond_init(&t->cv, NULL) != 0) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (pthread_create(&t->thread, NULL, exporter_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "cannot start the span exporter");
        goto fail;
    }
    t->started = 1;
    lev_log(LEV_LOG_INFO, "traces exported", "url", t->url, "service", t->service, NULL);
    *out = t;
    return 0;
fail:
    tracer_free(t);
    return rc ? rc : LEV_ERR_CONFIG;
}

void lev_tracer_submit(lev_tracer_t *t, const lev_span_t *spans, size_t n)
{
    if (!t || n == 0)
        return;
    size_t dropped = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < n; i++) {
        if (t->n == t->max_queue) {
            dropped++;
            continue;
        }
        t->queue[(t->head + t->n) % t->max_queue] = spans[i];
        t->n++;
    }
    if (t->n >= t->batch)
        pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (dropped)
        atomic_fetch_add(&t->dropped, dropped);
}

void lev_tracer_stats(const lev_tracer_t *t, lev_tracer_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!t)
        return;
    out->exported = atomic_load(&t->exported);
    out->dropped = atomic_load(&t->dropped);
    out->failed_requests = atomic_load(&t->failed);
}

void lev_tracer_destroy(lev_tracer_t *t, int timeout_ms)
{
    if (!t)
        return;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        if (timeout_ms < atomic_load(&t->timeout_ms)) /* the last export is bounded too */
            atomic_store(&t->timeout_ms, timeout_ms > 0 ? timeout_ms : 1);
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    tracer_free(t);
}
