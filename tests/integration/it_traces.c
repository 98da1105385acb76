/*
 * Traces against a real broker and Redis, exported to an OTLP/HTTP
 * collector of the test's own (a thread that answers POST /v1/traces and
 * keeps the JSON): a span per handled record, parented by the record's
 * traceparent; a publish span per output, whose context the output
 * carries; nothing recorded for a trace its parent did not sample; a
 * record without a traceparent starts a trace.
 */
#define _GNU_SOURCE /* strcasestr */
#include "check.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the collector ---- */

typedef struct collector_s {
    int fd, port;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    json_t *spans; /* every span received */
    int requests;
    char path[128]; /* of the last request */
} collector_t;

static void collect_body(collector_t *c, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *rs, *ss, *sp;
    size_t i, j, k;
    pthread_mutex_lock(&c->mu);
    c->requests++;
    json_array_foreach(json_object_get(doc, "resourceSpans"), i, rs)
    {
        json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
        {
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
            {
                json_t *copy = json_deep_copy(sp);
                json_t *attrs = json_object_get(json_object_get(rs, "resource"), "attributes");
                json_object_set(copy, "resource", attrs ? attrs : json_null());
                json_array_append_new(c->spans, copy);
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    json_decref(doc);
}

static void serve_one(collector_t *c, int fd)
{
    char *buf = malloc(1 << 22);
    size_t len = 0, blen = 0;
    char *body = buf ? lev_test_http_read_request(fd, buf, 1 << 22, &len, &blen) : NULL;
    if (body) {
        sscanf(buf, "%*s %127s", c->path);
        collect_body(c, body, blen);
    }
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     "2\r\nConnection: close\r\n\r\n{}";
    if (write(fd, ok, strlen(ok)) < 0)
        perror("collector write");
    free(buf);
}

static void *collector_main(void *arg)
{
    collector_t *c = arg;
    while (!atomic_load(&c->stop)) {
        int fd = accept(c->fd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(c, fd);
        close(fd);
    }
    return NULL;
}

static int collector_start(collector_t *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->spans = json_array();
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(c->fd, 16) != 0 ||
        getsockname(c->fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    c->port = ntohs(a.sin_port);
    return pthread_create(&c->thread, NULL, collector_main, c);
}

static void collector_stop(collector_t *c)
{
    atomic_store(&c->stop, 1);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    pthread_join(c->thread, NULL);
    json_decref(c->spans);
    pthread_mutex_destroy(&c->mu);
}

/* ---- the worker ---- */

typedef struct app_s {
    char in[96], out[128], group[128];
} app_t;

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    app_t *a = opaque;
    return lev_test_emit_accepted(ctx, ev, a->out, ev->key) == 0 ? LEV_RESULT_OK
                                                                 : LEV_RESULT_PERMANENT;
}

enum { N = 4 };
/* inputs 0 and 1: sampled parents; 2: a parent that did not sample; 3: none */
static const char *const parents[N] = {
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-11111111111111111111111111111111-2222222222222222-00",
    NULL,
};

/* Publishes the N orders (order ids in ids), with those traceparents. */
static int publish(const app_t *a, char (*ids)[LEV_UUID_STR_LEN])
{
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "test-publisher");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    if (!p || !codec || !s)
        return -1;
    int rc = 0;
    for (int i = 0; i < N && rc == 0; i++) {
        lev_uuid4(ids[i]);
        json_t *j = lev_test_order_json(ids[i], i);
        avro_value_t v;
        void *buf = NULL;
        size_t len = 0;
        rc = lev_codec_from_json(codec, s, j, &v, &err) ||
             lev_codec_encode(codec, s, &v, &buf, &len, &err);
        json_decref(j);
        if (rc)
            break;
        avro_value_decref(&v);
        lev_event_headers_t eh;
        lev_event_meta_t meta = {.id = ids[i], .source = "/tests", .traceparent = parents[i]};
        lev_event_headers(&eh, "shop.order.OrderPlaced", &meta);
        lev_header_t h[LEV_EVENT_HEADERS_MAX];
        size_t nh = 0;
        for (size_t k = 0; k < eh.n; k++) /* input 3 goes without a traceparent */
            if (parents[i] || strcmp(eh.h[k].name, LEV_H_TRACEPARENT) != 0)
                h[nh++] = eh.h[k];
        lev_msg_t m = {.topic = a->in,
                       .partition = LEV_PARTITION_ANY,
                       .key = ids[i],
                       .key_len = strlen(ids[i]),
                       .value = buf,
                       .value_len = len,
                       .headers = h,
                       .nheaders = nh};
        rc = lev_producer_send(p, &m, NULL, NULL, &err);
        free(buf);
    }
    if (rc == 0)
        rc = lev_producer_flush(p, 30000);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    return rc;
}

static const char *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0) {
            json_t *v = json_object_get(a, "value");
            json_t *s = json_object_get(v, "stringValue");
            return s ? json_string_value(s) : json_string_value(json_object_get(v, "intValue"));
        }
    }
    return NULL;
}

static const char *str(json_t *span, const char *key)
{
    return json_string_value(json_object_get(span, key));
}

/* The span of kind `kind` whose attribute or parent matches, or NULL. */
static json_t *find_span(json_t *spans, int kind, const char *event_id, const char *parent)
{
    size_t i;
    json_t *s;
    json_array_foreach(spans, i, s)
    {
        if (json_integer_value(json_object_get(s, "kind")) != kind)
            continue;
        if (event_id && (!attr(s, "messaging.message.id") ||
                         strcmp(attr(s, "messaging.message.id"), event_id) != 0))
            continue;
        if (parent && (!str(s, "parentSpanId") || strcmp(str(s, "parentSpanId"), parent) != 0))
            continue;
        return s;
    }
    return NULL;
}

static void spans_link_inputs_handlers_and_outputs_across_the_trace(void)
{
    app_t a;
    lev_test_unique("it-traces", a.in, sizeof a.in);
    snprintf(a.out, sizeof a.out, "%s-out", a.in);
    snprintf(a.group, sizeof a.group, "%s-group", a.in);
    REQUIRE(lev_test_create_topic(a.in, 1) == 0 && lev_test_create_topic(a.out, 1) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(publish(&a, ids) == 0);

    collector_t col;
    REQUIRE(collector_start(&col) == 0);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", col.port);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ep, 1);
    setenv("OTEL_SERVICE_NAME", "it-traces-worker", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "100", 1);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-traces");
    lev_config_set_str(&conf.group_id, a.group);
    lev_test_run_t r;
    lev_worker_t *w = lev_worker_new(&conf, &err);
    lev_config_clear(&conf);
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_SERVICE_NAME");
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
    REQUIRE(w);
    REQUIRE(lev_worker_on(w, "shop.order.OrderPlaced", on_placed, &a, &err) == 0 &&
            lev_worker_subscribe(w, a.in, &err) == 0 &&
            lev_worker_declare_output(w, a.out, &err) == 0);
    REQUIRE(lev_test_run_start(&r, w) == 0);
    lev_test_record_t *outs;
    size_t nout = lev_test_read_topic(a.out, N, 60000, &outs);
    CHECK_INT(nout, ==, N);
    /* sampled spans arrive (inputs 0, 1, 3: a process and a publish span each) */
    int64_t deadline = lev_mono_ms() + 20000;
    size_t have = 0;
    while (lev_mono_ms() < deadline && have < 6) {
        lev_test_sleep_ms(100);
        pthread_mutex_lock(&col.mu);
        have = json_array_size(col.spans);
        pthread_mutex_unlock(&col.mu);
    }
    lev_worker_stop(w);
    CHECK_INT(lev_test_run_join(&r), ==, 0);
    lev_worker_destroy(w);
    CHECK_STR(col.path, "/v1/traces");
    json_t *spans = col.spans;
    CHECK_INT(json_array_size(spans), ==, 6);

    for (int i = 0; i < N; i++) {
        /* the output of input i and its traceparent */
        char tp[128] = "";
        for (size_t k = 0; k < nout; k++)
            if (outs[k].key && strcmp(outs[k].key, ids[i]) == 0)
                lev_test_header(&outs[k], LEV_H_TRACEPARENT, tp, sizeof tp);
        REQUIRE(strlen(tp) == 55);
        json_t *proc = find_span(spans, 5, ids[i], NULL);
        if (i == 2) { /* its parent did not sample: nothing recorded, the flag passed on */
            CHECK(proc == NULL);
            CHECK(strncmp(tp + 3, parents[2] + 3, 32) == 0);
            CHECK_STR(tp + 53, "00");
            continue;
        }
        REQUIRE(proc);
        char want_name[160];
        snprintf(want_name, sizeof want_name, "%s process", a.in);
        CHECK_STR(str(proc, "name"), want_name);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(proc, "status"), "code")), ==,
                  1);
        CHECK_STR(attr(proc, "messaging.destination.name"), a.in);
        if (parents[i]) { /* child of the input's span, in its trace */
            char want_trace[33], want_parent[17];
            snprintf(want_trace, sizeof want_trace, "%.32s", parents[i] + 3);
            snprintf(want_parent, sizeof want_parent, "%.16s", parents[i] + 36);
            CHECK_STR(str(proc, "traceId"), want_trace);
            CHECK_STR(str(proc, "parentSpanId"), want_parent);
        } else { /* a new trace */
            CHECK(json_object_get(proc, "parentSpanId") == NULL);
        }
        json_t *pub = find_span(spans, 4, NULL, str(proc, "spanId"));
        REQUIRE(pub);
        CHECK_STR(str(pub, "traceId"), str(proc, "traceId"));
        CHECK_STR(attr(pub, "messaging.destination.name"), a.out);
        /* the output carries the publish span's context */
        char want_tp[64];
        snprintf(want_tp, sizeof want_tp, "00-%s-%s-01", str(pub, "traceId"), str(pub, "spanId"));
        CHECK_STR(tp, want_tp);
        const char *service = NULL;
        size_t k;
        json_t *ra;
        json_array_foreach(json_object_get(proc, "resource"), k, ra)
        {
            if (strcmp(json_string_value(json_object_get(ra, "key")), "service.name") == 0)
                service =
                    json_string_value(json_object_get(json_object_get(ra, "value"), "stringValue"));
        }
        CHECK_STR(service, "it-traces-worker");
    }
    lev_test_records_free(outs, nout);
    collector_stop(&col);
}

CHECK_MAIN(CASE(spans_link_inputs_handlers_and_outputs_across_the_trace))
