/* billing-service rules without Kafka: payment ids, the built-in decline
 * rules, gateway requests and answers, ledger records, the event
 * conversions, and the HTTP client against a local socket. */
#define _GNU_SOURCE /* strcasestr */
#include "billing_rules.h"
#include "check.h"
#include "svc.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <libevents.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define ORDER_ID "3f1c2b9e-8d4a-4f6b-9c2e-1a2b3c4d5e6f"
#define OTHER_ID "0b0c0d0e-1111-4222-8333-444455556666"

static bill_charge_t charge(const char *token, int64_t amount)
{
    bill_charge_t c = {.order_id = ORDER_ID,
                       .customer_id = "cust-7",
                       .currency = "EUR",
                       .amount_minor = amount,
                       .payment_token = token};
    return c;
}

/* ---- payment ids ---- */

static void payment_id_is_a_stable_uuid5_of_the_order(void)
{
    char a[LEV_UUID_STR_LEN], b[LEV_UUID_STR_LEN], c[LEV_UUID_STR_LEN];
    REQUIRE(bill_payment_id(ORDER_ID, a) == 0);
    REQUIRE(bill_payment_id(ORDER_ID, b) == 0);
    REQUIRE(bill_payment_id(OTHER_ID, c) == 0);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strcmp(a, ORDER_ID) != 0);
    CHECK_INT(strlen(a), ==, 36);
    CHECK_INT(a[14], ==, '5'); /* version 5 */
    CHECK(bill_payment_id("", a) != 0);
    CHECK(bill_payment_id(NULL, a) != 0);
}

/* ---- built-in rules ---- */

static void built_in_rules_charge_or_decline(void)
{
    bill_outcome_t o;
    bill_charge_t c = charge("tok_visa", 2999);
    bill_decide(&c, 1000000, "pid", &o);
    CHECK(o.succeeded);
    CHECK_STR(o.payment_id, "pid");
    CHECK_INT(o.amount_minor, ==, 2999);
    CHECK_STR(o.currency, "EUR");
    CHECK_STR(o.code, "");

    c = charge("tok_decline", 10);
    bill_decide(&c, 1000000, "pid", &o);
    CHECK(!o.succeeded);
    CHECK_STR(o.code, BILL_R_CARD_DECLINED);
    c = charge("tok_decline_insufficient_funds", 10);
    bill_decide(&c, 1000000, "pid", &o);
    CHECK_STR(o.code, BILL_R_CARD_DECLINED);
    c = charge("tok_declin", 10); /* not the prefix */
    bill_decide(&c, 1000000, "pid", &o);
    CHECK(o.succeeded);

    c = charge("tok_visa", 1000000); /* at the limit: charged */
    bill_decide(&c, 1000000, "pid", &o);
    CHECK(o.succeeded);
    c = charge("tok_visa", 1000001);
    bill_decide(&c, 1000000, "pid", &o);
    CHECK(!o.succeeded);
    CHECK_STR(o.code, BILL_R_AMOUNT_LIMIT);
    CHECK(strstr(o.reason, "10000.01 EUR") != NULL);
    CHECK(strstr(o.reason, "10000.00 EUR") != NULL);

    c = charge("tok_visa", -1);
    bill_decide(&c, 1000000, "pid", &o);
    CHECK_STR(o.code, BILL_R_BAD_AMOUNT);

    /* a declined token wins over the amount */
    c = charge("tok_decline", 5000000);
    bill_decide(&c, 1000000, "pid", &o);
    CHECK_STR(o.code, BILL_R_CARD_DECLINED);
}

/* ---- gateway ---- */

static void gateway_request_carries_the_charge(void)
{
    bill_charge_t c = charge("tok_visa", 2999);
    char *body = bill_gateway_request(&c, "pid-1");
    REQUIRE(body != NULL);
    json_t *j = json_loads(body, 0, NULL);
    REQUIRE(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "payment_id")), "pid-1");
    CHECK_STR(json_string_value(json_object_get(j, "order_id")), ORDER_ID);
    CHECK_STR(json_string_value(json_object_get(j, "customer_id")), "cust-7");
    CHECK_STR(json_string_value(json_object_get(j, "currency")), "EUR");
    CHECK_STR(json_string_value(json_object_get(j, "payment_token")), "tok_visa");
    CHECK_INT(json_integer_value(json_object_get(j, "amount_minor")), ==, 2999);
    json_decref(j);
    char *again = bill_gateway_request(&c, "pid-1");
    CHECK_STR(again, body); /* deterministic */
    free(again);
    free(body);
}

/* The verdict of status/body on a fresh outcome. */
static bill_verdict_t verdict(long status, const char *body, bill_outcome_t *o)
{
    bill_charge_t c = charge("tok", 1);
    char why[256];
    bill_outcome_init(o, &c, "pid");
    bill_verdict_t v =
        bill_gateway_verdict(status, body, body ? strlen(body) : 0, o, why, sizeof why);
    CHECK(why[0] != '\0');
    return v;
}

static void gateway_answers_are_classified(void)
{
    bill_outcome_t o;
    CHECK_INT(verdict(200, "{\"status\":\"succeeded\"}", &o), ==, BILL_CHARGED);
    CHECK(o.succeeded);
    CHECK_INT(verdict(201, NULL, &o), ==, BILL_CHARGED);
    CHECK_INT(verdict(200, "not json", &o), ==, BILL_CHARGED);

    CHECK_INT(verdict(200,
                      "{\"status\":\"declined\",\"code\":\"INSUFFICIENT_FUNDS\","
                      "\"message\":\"not enough money\"}",
                      &o),
              ==, BILL_DECLINED);
    CHECK(!o.succeeded);
    CHECK_STR(o.code, "INSUFFICIENT_FUNDS");
    CHECK_STR(o.reason, "not enough money");
    CHECK_INT(verdict(402, NULL, &o), ==, BILL_DECLINED);
    CHECK_STR(o.code, BILL_R_CARD_DECLINED);
    CHECK(o.reason[0] != '\0');
    CHECK_INT(verdict(402, "{\"decline_code\":\"STOLEN_CARD\"}", &o), ==, BILL_DECLINED);
    CHECK_STR(o.code, "STOLEN_CARD");

    long transient[] = {0, 408, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
        CHECK_INT(verdict(transient[i], NULL, &o), ==, BILL_TRANSIENT);
        CHECK(!o.succeeded);
    }
    long permanent[] = {301, 400, 401, 403, 404, 409, 422};
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++)
        CHECK_INT(verdict(permanent[i], NULL, &o), ==, BILL_PERMANENT);
    /* a decline body on an error status is still an error */
    CHECK_INT(verdict(503, "{\"status\":\"declined\"}", &o), ==, BILL_TRANSIENT);
}

static void http_classes(void)
{
    CHECK_INT(svc_http_classify(200), ==, SVC_HTTP_OK);
    CHECK_INT(svc_http_classify(204), ==, SVC_HTTP_OK);
    CHECK_INT(svc_http_classify(0), ==, SVC_HTTP_TRANSIENT);
    CHECK_INT(svc_http_classify(599), ==, SVC_HTTP_TRANSIENT);
    CHECK_INT(svc_http_classify(429), ==, SVC_HTTP_TRANSIENT);
    CHECK_INT(svc_http_classify(404), ==, SVC_HTTP_PERMANENT);
    CHECK_INT(svc_http_classify(302), ==, SVC_HTTP_PERMANENT);
}

static void url_host_hides_credentials(void)
{
    char host[128];
    CHECK(svc_url_host("https://user:secret@pay.example.com:8443/v1/charges", host, sizeof host) ==
          0);
    CHECK_STR(host, "pay.example.com");
    CHECK(svc_url_host("http://127.0.0.1:9/x", host, sizeof host) == 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK(svc_url_host("ftp://example.com/", host, sizeof host) != 0);
    CHECK(svc_url_host("not a url", host, sizeof host) != 0);
}

/* ---- ledger ---- */

static void ledger_record_round_trips(void)
{
    bill_outcome_t o = {.succeeded = 0, .amount_minor = 1000001, .at = 1790000000000};
    snprintf(o.payment_id, sizeof o.payment_id, "%s", ORDER_ID);
    snprintf(o.currency, sizeof o.currency, "EUR");
    snprintf(o.code, sizeof o.code, BILL_R_AMOUNT_LIMIT);
    snprintf(o.reason, sizeof o.reason, "too \"much\"");
    snprintf(o.gateway, sizeof o.gateway, "ledger");
    char *text = bill_record_format(&o);
    REQUIRE(text != NULL);
    bill_outcome_t back;
    REQUIRE(bill_record_parse(text, &back, NULL) == 0);
    CHECK(!back.succeeded);
    CHECK_STR(back.payment_id, ORDER_ID);
    CHECK_INT(back.amount_minor, ==, 1000001);
    CHECK_STR(back.currency, "EUR");
    CHECK_STR(back.code, BILL_R_AMOUNT_LIMIT);
    CHECK_STR(back.reason, "too \"much\"");
    CHECK_STR(back.gateway, "ledger");
    CHECK_INT(back.at, ==, 1790000000000);
    free(text);

    o.succeeded = 1;
    text = bill_record_format(&o);
    REQUIRE(text && bill_record_parse(text, &back, NULL) == 0);
    CHECK(back.succeeded);
    free(text);

    lev_error_t err;
    CHECK_INT(bill_record_parse("{}", &back, &err), ==, LEV_ERR_JSON);
    CHECK_INT(bill_record_parse("garbage", &back, &err), ==, LEV_ERR_JSON);
    CHECK_INT(bill_record_parse(NULL, &back, &err), ==, LEV_ERR_JSON);
    CHECK_INT(bill_record_parse("{\"v\":1,\"result\":\"maybe\",\"payment_id\":\"p\","
                                "\"amount_minor\":1,\"currency\":\"EUR\",\"code\":\"\","
                                "\"reason\":\"\",\"gateway\":\"g\",\"at\":1}",
                                &back, &err),
              ==, LEV_ERR_JSON);
}

/* ---- events over the real schemas ---- */

static lev_schemas_t *schemas;
static lev_codec_t *codec;

static void codec_release(void)
{
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
}

static int codec_ready(void)
{
    if (codec)
        return 1;
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    schemas = lev_schemas_new();
    if (!schemas || lev_schemas_load_path(schemas, dirs ? dirs : "schemas", NULL) != 0)
        return 0;
    codec = lev_codec_new(schemas, NULL);
    atexit(codec_release);
    return codec != NULL;
}

static void events_convert_both_ways(void)
{
    REQUIRE(codec_ready());
    json_t *j = json_loads("{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"cust-7\","
                           "\"currency\":\"EUR\",\"total_minor\":2999,"
                           "\"payment_token\":\"tok_visa\",\"accepted_at\":5}",
                           0, NULL);
    avro_value_t in, out, back;
    REQUIRE(lev_codec_from_json(codec, lev_schemas_find(schemas, BILL_T_ACCEPTED), j, &in, NULL) ==
            0);
    json_decref(j);
    bill_charge_t c;
    REQUIRE(bill_charge_from_value(&in, &c, NULL) == 0);
    CHECK_STR(c.order_id, ORDER_ID);
    CHECK_STR(c.payment_token, "tok_visa");
    CHECK_INT(c.amount_minor, ==, 2999);

    for (int succeeded = 0; succeeded <= 1; succeeded++) {
        const char *type = succeeded ? BILL_T_SUCCEEDED : BILL_T_FAILED;
        const lev_schema_t *s = lev_schemas_find(schemas, type);
        bill_outcome_t o;
        bill_decide(&c, succeeded ? 1000000 : 1, "0b0c0d0e-1111-5222-8333-444455556666", &o);
        CHECK_INT(o.succeeded, ==, succeeded);
        snprintf(o.gateway, sizeof o.gateway, "ledger");
        o.at = 9;
        REQUIRE(lev_codec_new_value(codec, s, &out) == 0);
        CHECK(bill_payment_fill(&out, &c, &o) == 0);
        void *buf = NULL;
        size_t len = 0;
        REQUIRE(lev_codec_encode(codec, s, &out, &buf, &len, NULL) == 0);
        REQUIRE(lev_codec_decode(codec, buf, len, NULL, &back, NULL, NULL) == 0);
        json_t *r = lev_codec_to_json(&back, NULL);
        REQUIRE(r != NULL);
        CHECK_STR(json_string_value(json_object_get(r, "order_id")), ORDER_ID);
        CHECK_INT(json_integer_value(json_object_get(r, "amount_minor")), ==, 2999);
        if (succeeded) {
            CHECK_STR(json_string_value(json_object_get(r, "payment_id")),
                      "0b0c0d0e-1111-5222-8333-444455556666");
            CHECK_STR(json_string_value(json_object_get(r, "gateway")), "ledger");
            CHECK_INT(json_integer_value(json_object_get(r, "charged_at")), ==, 9);
        } else {
            CHECK_STR(json_string_value(json_object_get(r, "reason_code")), BILL_R_AMOUNT_LIMIT);
            CHECK_INT(json_integer_value(json_object_get(r, "failed_at")), ==, 9);
        }
        json_decref(r);
        free(buf);
        avro_value_decref(&back);
        avro_value_decref(&out);
    }
    avro_value_decref(&in);
}

static void charges_come_only_from_trusted_sources_without_control_characters(void)
{
    CHECK(bill_source_trusted("/order-service", "/order-service"));
    CHECK(bill_source_trusted("/order-service", " /a , /order-service "));
    CHECK(bill_source_trusted("/b", "/a,/b"));
    CHECK(!bill_source_trusted("/order-servicex", "/order-service"));
    CHECK(!bill_source_trusted("/order", "/order-service"));
    CHECK(!bill_source_trusted("/evil", "/order-service"));
    CHECK(!bill_source_trusted(NULL, "/order-service"));
    CHECK(!bill_source_trusted("", ""));
    CHECK(!bill_source_trusted("", ",,"));

    REQUIRE(codec_ready());
    static const char *const bad[][2] = {
        {"{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\",\"currency\":\"EUR\","
         "\"total_minor\":1,\"payment_token\":\"tok\\u0001\",\"accepted_at\":5}",
         "payment_token"},
        {"{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\\r\\n\",\"currency\":\"EUR\","
         "\"total_minor\":1,\"payment_token\":\"tok\",\"accepted_at\":5}",
         "customer_id"},
        {"{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\",\"currency\":\"E\\u001bUR\","
         "\"total_minor\":1,\"payment_token\":\"tok\",\"accepted_at\":5}",
         "currency"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i][0], 0, NULL);
        avro_value_t in;
        REQUIRE(j != NULL);
        REQUIRE(lev_codec_from_json(codec, lev_schemas_find(schemas, BILL_T_ACCEPTED), j, &in,
                                    NULL) == 0);
        json_decref(j);
        bill_charge_t c;
        lev_error_t err = {0};
        CHECK_INT(bill_charge_from_value(&in, &c, &err), ==, LEV_ERR_DECODE);
        CHECK_STR(err.where, bad[i][1]);
        CHECK(strstr(err.text, "control character") != NULL);
        avro_value_decref(&in);
    }
}

/* ---- the HTTP client against a one-shot local server ---- */

typedef struct {
    int listener;
    const char *reply; /* NULL: accept, read, then never answer */
    char request[8192];
    size_t request_len;
} server_t;

/* Accepts one connection, reads the request head and body, answers. */
static void *serve_once(void *opaque)
{
    server_t *s = opaque;
    int fd = accept(s->listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t want = SIZE_MAX;
    while (s->request_len < sizeof s->request - 1 && s->request_len < want) {
        ssize_t n = read(fd, s->request + s->request_len, sizeof s->request - 1 - s->request_len);
        if (n <= 0)
            break;
        s->request_len += (size_t)n;
        s->request[s->request_len] = '\0';
        char *end = strstr(s->request, "\r\n\r\n");
        char *cl = strcasestr(s->request, "Content-Length:");
        if (end && cl)
            want = (size_t)(end + 4 - s->request) + (size_t)strtoul(cl + 15, NULL, 10);
    }
    if (s->reply) {
        ssize_t w = write(fd, s->reply, strlen(s->reply));
        (void)w;
    } else {
        /* never answer: hold the connection until the client gives up on
         * it (or, should it never, for 30 s) */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char c;
        while (poll(&pfd, 1, 30000) > 0 && read(fd, &c, 1) > 0) {
        }
    }
    close(fd);
    return NULL;
}

/* Starts the server on 127.0.0.1 and an ephemeral port; returns the port. */
static int server_start(server_t *s, pthread_t *t, const char *reply)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    memset(s, 0, sizeof *s);
    s->reply = reply;
    s->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listener < 0 || bind(s->listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s->listener, 1) != 0 || getsockname(s->listener, (struct sockaddr *)&a, &alen))
        return -1;
    if (pthread_create(t, NULL, serve_once, s) != 0)
        return -1;
    return ntohs(a.sin_port);
}

/* A request and the wait for its completion (which runs on the client's
 * thread). */
typedef struct waiter_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    svc_http_response_t resp;
} waiter_t;

static void on_done(svc_http_response_t *resp, void *arg)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    svc_http_response_clear(&w->resp); /* shared by several requests: keep the last */
    svc_http_response_move(&w->resp, resp);
    w->done++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* POSTs and waits for the answer (up to 10 s); 0 when done was called. */
static int post_wait(svc_http_t *h, const char *url, const char *body, size_t len,
                     const char *const *headers, svc_http_response_t *resp)
{
    waiter_t w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (svc_http_post_async(h, url, body, len, headers, on_done, &w) != 0)
        return -1;
    int64_t deadline = lev_mono_ms() + 10000;
    pthread_mutex_lock(&w.mu);
    while (!w.done && lev_mono_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&w.cv, &w.mu, &ts);
    }
    int done = w.done;
    pthread_mutex_unlock(&w.mu);
    *resp = w.resp;
    return done == 1 ? 0 : -1;
}

static void http_post_sends_headers_and_reads_the_answer(void)
{
    server_t s;
    pthread_t t;
    int port = server_start(&s, &t,
                            "HTTP/1.1 402 Payment Required\r\nContent-Type: application/json\r\n"
                            "Content-Length: 24\r\nConnection: close\r\n\r\n"
                            "{\"code\":\"CARD_DECLINED\"}");
    REQUIRE(port > 0);
    REQUIRE(svc_http_global_init() == 0);
    svc_http_t *h = svc_http_new(2000, 5000, 4);
    REQUIRE(h != NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/charges", port);
    const char *headers[] = {"Idempotency-Key: pid-1", NULL};
    svc_http_response_t resp;
    CHECK(post_wait(h, url, "{\"a\":1}", 7, headers, &resp) == 0);
    pthread_join(t, NULL);
    close(s.listener);
    CHECK_INT(resp.status, ==, 402);
    CHECK_STR(resp.body, "{\"code\":\"CARD_DECLINED\"}");
    CHECK(strstr(s.request, "POST /charges HTTP/1.1\r\n") == s.request);
    CHECK(strcasestr(s.request, "\r\nIdempotency-Key: pid-1\r\n") != NULL);
    CHECK(strcasestr(s.request, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strstr(s.request, "\r\n\r\n{\"a\":1}") != NULL);
    svc_http_response_clear(&resp);
    svc_http_destroy(h);
}

static void http_post_reports_timeouts_and_refusals_as_no_answer(void)
{
    server_t s;
    pthread_t t;
    int port = server_start(&s, &t, NULL);
    REQUIRE(port > 0);
    svc_http_t *h = svc_http_new(1000, 300, 4);
    REQUIRE(h != NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    svc_http_response_t resp;
    CHECK(post_wait(h, url, "{}", 2, NULL, &resp) == 0);
    CHECK_INT(resp.status, ==, 0);
    CHECK(resp.timed_out);
    CHECK(resp.error[0] != '\0');
    CHECK_INT(svc_http_classify(resp.status), ==, SVC_HTTP_TRANSIENT);
    svc_http_response_clear(&resp);
    pthread_join(t, NULL);
    close(s.listener);

    /* refused: a port held without listening (one just closed may be
     * taken again by anyone in the meantime) */
    int closed_fd;
    int closed_port = lev_test_refusing_port(&closed_fd);
    REQUIRE(closed_port > 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", closed_port);
    CHECK(post_wait(h, url, "{}", 2, NULL, &resp) == 0);
    CHECK_INT(resp.status, ==, 0);
    CHECK(!resp.timed_out);
    svc_http_response_clear(&resp);
    close(closed_fd);

    CHECK(post_wait(h, "file:///etc/passwd", "{}", 2, NULL, &resp) == 0);
    CHECK_INT(resp.status, ==, 0); /* not an allowed protocol */
    svc_http_response_clear(&resp);
    svc_http_destroy(h);
}

/* ---- many requests against a slow server ---- */

typedef struct slow_server_s {
    int listener;
    int hold_ms; /* how long each request waits for its answer */
    pthread_mutex_t mu;
    int active, max_active, served;
} slow_server_t;

typedef struct slow_conn_s {
    slow_server_t *s;
    int fd;
} slow_conn_t;

static void *slow_conn_main(void *arg)
{
    slow_conn_t *c = arg;
    slow_server_t *s = c->s;
    char buf[4096] = "";
    size_t len = 0;
    while (len < sizeof buf - 1 && !strstr(buf, "\r\n\r\n{}")) {
        ssize_t n = read(c->fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    pthread_mutex_lock(&s->mu);
    if (++s->active > s->max_active)
        s->max_active = s->active;
    pthread_mutex_unlock(&s->mu);
    usleep((useconds_t)s->hold_ms * 1000); /* the slow endpoint */
    pthread_mutex_lock(&s->mu);
    s->active--;
    s->served++;
    pthread_mutex_unlock(&s->mu);
    const char *reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    ssize_t w = send(c->fd, reply, strlen(reply), MSG_NOSIGNAL); /* the client may be gone */
    (void)w;
    close(c->fd);
    free(c);
    return NULL;
}

static void *slow_accept_main(void *arg)
{
    slow_server_t *s = arg;
    for (;;) {
        int fd = accept(s->listener, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down */
        slow_conn_t *c = malloc(sizeof *c);
        c->s = s;
        c->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, slow_conn_main, c);
        pthread_detach(t);
    }
}

static int slow_start(slow_server_t *s, pthread_t *t, int hold_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->hold_ms = hold_ms;
    s->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listener < 0 || bind(s->listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s->listener, 64) != 0 || getsockname(s->listener, (struct sockaddr *)&a, &alen))
        return -1;
    if (pthread_create(t, NULL, slow_accept_main, s) != 0)
        return -1;
    return ntohs(a.sin_port);
}

static void slow_stop(slow_server_t *s, pthread_t t)
{
    shutdown(s->listener, SHUT_RDWR);
    pthread_join(t, NULL);
    close(s->listener);
}

static int done_count(waiter_t *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->done;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void http_requests_run_concurrently_within_their_bound(void)
{
    enum { N = 12, MAX = 4 };
    slow_server_t s;
    pthread_t t;
    int port = slow_start(&s, &t, 300);
    REQUIRE(port > 0);
    svc_http_t *h = svc_http_new(2000, 5000, MAX);
    REQUIRE(h != NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    waiter_t w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < N; i++)
        CHECK(svc_http_post_async(h, url, "{}", 2, NULL, on_done, &w) == 0);
    int64_t deadline = lev_mono_ms() + 30000;
    while (done_count(&w) < N && lev_mono_ms() < deadline)
        usleep(10000);
    CHECK_INT(done_count(&w), ==, N);
    svc_http_response_clear(&w.resp);
    pthread_mutex_lock(&s.mu);
    /* several at once (a serial client has one), never more than the bound */
    fprintf(stderr, "  at most %d requests at once\n", s.max_active);
    CHECK_INT(s.max_active, >, 1);
    CHECK_INT(s.max_active, <=, MAX);
    CHECK_INT(s.served, ==, N);
    pthread_mutex_unlock(&s.mu);
    svc_http_destroy(h);
    slow_stop(&s, t);
}

static void http_client_stopped_completes_every_request_as_unanswered(void)
{
    enum { N = 10 };
    slow_server_t s;
    pthread_t t;
    int port = slow_start(&s, &t, 2000);
    REQUIRE(port > 0);
    svc_http_t *h = svc_http_new(2000, 10000, 2);
    REQUIRE(h != NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    waiter_t w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < N; i++)
        CHECK(svc_http_post_async(h, url, "{}", 2, NULL, on_done, &w) == 0);
    svc_http_destroy(h); /* two running, eight waiting */
    CHECK_INT(w.done, ==, N);
    CHECK_INT(w.resp.status, ==, 0);
    CHECK_STR(w.resp.error, "the service is stopping");
    svc_http_response_clear(&w.resp);
    slow_stop(&s, t);
}

CHECK_MAIN(CASE(payment_id_is_a_stable_uuid5_of_the_order), CASE(built_in_rules_charge_or_decline),
           CASE(gateway_request_carries_the_charge), CASE(gateway_answers_are_classified),
           CASE(http_classes), CASE(url_host_hides_credentials), CASE(ledger_record_round_trips),
           CASE(events_convert_both_ways), CASE(http_post_sends_headers_and_reads_the_answer),
           CASE(http_post_reports_timeouts_and_refusals_as_no_answer),
           CASE(http_requests_run_concurrently_within_their_bound),
           CASE(http_client_stopped_completes_every_request_as_unanswered),
           CASE(charges_come_only_from_trusted_sources_without_control_characters))
