/*
 * The worker's HTTP endpoint against the real broker and Redis: /metrics
 * follows what the worker does and passes `promtool check metrics`; bad
 * requests get 404 or 405; /readyz says 503 while Redis is down and 200
 * once it is back, while /healthz stays 200; /healthz says 503 while a
 * handler holds the loop past LEV_HEALTH_STALL_MS, and 200 after; /readyz
 * says 503 while the broker (librdkafka's mock cluster) is down.
 *
 *   it_http <case>...   (tests/cmake/observability.cmake registers each)
 *
 * The worker runs in this process, its endpoint on port 0 of 127.0.0.1.
 * Its handler takes OrderPlaced events by sku: "perm" fails for good (a
 * dead letter), "flaky" fails transiently on its first attempt (retried in
 * process), "block" waits until the test lets it go, any other succeeds
 * and emits an OrderAccepted.
 */
#include "check.h"
#include "testutil.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ======================================================================
 * The worker under test
 * ====================================================================== */

typedef struct app_s {
    lev_worker_t *w;
    pthread_t th;
    int rc;
    char in[128], out[140];
    int port;
    _Atomic int blocked;  /* a "block" handler is waiting */
    _Atomic int released; /* ... and may go on */
} app_t;

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    app_t *a = opaque;
    avro_value_t items, item, sku_v;
    const char *sku = "", *order_id;
    size_t len;
    if (avro_value_get_by_name(&ev->value, "items", &items, NULL) == 0 &&
        avro_value_get_by_index(&items, 0, &item, NULL) == 0 &&
        avro_value_get_by_name(&item, "sku", &sku_v, NULL) == 0)
        avro_value_get_string(&sku_v, &sku, &len);
    if (strcmp(sku, "perm") == 0) {
        lev_ctx_set_error(ctx, "refused on purpose");
        return LEV_RESULT_PERMANENT;
    }
    if (strcmp(sku, "flaky") == 0 && ev->attempt == 1)
        return LEV_RESULT_TRANSIENT;
    if (strcmp(sku, "block") == 0) {
        atomic_store(&a->blocked, 1);
        while (!atomic_load(&a->released))
            lev_test_sleep_ms(10); /* the scenario: a handler stuck in a call */
    }
    avro_value_t out;
    if (lev_value_get_string(&ev->value, "order_id", &order_id, NULL) ||
        lev_ctx_new_value(ctx, "shop.order.OrderAccepted", &out) ||
        lev_value_set_string(&out, "order_id", order_id) ||
        lev_value_set_string(&out, "customer_id", "c") ||
        lev_value_set_string(&out, "currency", "EUR") ||
        lev_value_set_long(&out, "total_minor", 1) ||
        lev_value_set_string(&out, "payment_token", "tok") ||
        lev_value_set_long(&out, "accepted_at", lev_now_ms()) ||
        lev_ctx_emit(ctx, a->out, order_id, &out, NULL))
        return LEV_RESULT_TRANSIENT;
    return LEV_RESULT_OK;
}

static void *run(void *arg)
{
    app_t *a = arg;
    a->rc = lev_worker_run(a->w);
    return NULL;
}

/* With librdkafka's mock cluster (which takes no CreateTopics request),
 * the topics are made through it. */
static rd_kafka_mock_cluster_t *g_mock;

static int make_topic(const char *topic, int partitions)
{
    if (g_mock)
        return rd_kafka_mock_topic_create(g_mock, topic, partitions, 1) ? -1 : 0;
    return lev_test_create_topic(topic, partitions);
}

/* Starts a worker on a fresh input topic (`partitions`) with its endpoint;
 * redis_url NULL: the tests' Redis. Extra settings go through conf. */
static int app_start(app_t *a, const char *name, int partitions, const char *redis_url,
                     int64_t stall_ms)
{
    memset(a, 0, sizeof *a);
    lev_test_unique(name, a->in, sizeof a->in);
    snprintf(a->out, sizeof a->out, "%s-out", a->in);
    lev_config_t conf;
    lev_error_t err = {0};
    lev_test_config(&conf, name);
    char failure_topic[300];
    int rc = make_topic(a->in, partitions) | make_topic(a->out, 1);
    lev_dlq_topic_name(conf.group_id, failure_topic, sizeof failure_topic);
    if (g_mock) /* the worker's own CreateTopics is not answered either */
        rc |= make_topic(failure_topic, partitions);
    for (int l = 1; g_mock && l <= conf.retry.levels; l++) {
        lev_retry_topic_name(conf.group_id, l, failure_topic, sizeof failure_topic);
        rc |= make_topic(failure_topic, partitions);
    }
    if (rc) {
        lev_config_clear(&conf);
        return -1;
    }
    lev_config_set_str(&conf.http_addr, "127.0.0.1:0");
    if (redis_url)
        lev_config_set_str(&conf.redis_url, redis_url);
    if (stall_ms)
        conf.health_stall_ms = stall_ms;
    conf.retry.backoff_ms = 20;
    conf.retry.backoff_max_ms = 50;
    lev_config_set_kafka(&conf, "statistics.interval.ms", "500");
    a->w = lev_worker_new(&conf, &err);
    lev_config_clear(&conf);
    if (!a->w || lev_worker_on(a->w, "shop.order.OrderPlaced", on_placed, a, &err) != 0 ||
        lev_worker_subscribe(a->w, a->in, &err) != 0 ||
        lev_worker_declare_output(a->w, a->out, &err) != 0) {
        char buf[800];
        fprintf(stderr, "worker: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    a->port = lev_worker_http_port(a->w);
    if (pthread_create(&a->th, NULL, run, a) != 0)
        return -1;
    return 0;
}

static void app_stop(app_t *a)
{
    atomic_store(&a->released, 1);
    if (!a->w)
        return;
    lev_worker_stop(a->w);
    pthread_join(a->th, NULL);
    CHECK_INT(a->rc, ==, 0);
    lev_worker_destroy(a->w);
    a->w = NULL;
}

/* GET path; the status, the body in *body (malloc'd) when body is set. */
static int get(const app_t *a, const char *path, char **body)
{
    return lev_test_http("GET", a->port, path, 5000, body, NULL);
}

/* The value of a sample on the endpoint now (-1 when absent). */
static double metric(const app_t *a, const char *name, const char *labels)
{
    char *body = NULL;
    double v = -1;
    if (get(a, "/metrics", &body) == 200)
        v = lev_test_metric(body, name, labels);
    free(body);
    return v;
}

/* The sum of every sample of `name` whose labels contain `part`. */
static double metric_sum(const char *text, const char *name, const char *part)
{
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, name, nl) == 0 && line[nl] == '{') {
            const char *close = strchr(line, '}');
            const char *hit = strstr(line, part);
            if (close && hit && hit < close)
                sum += strtod(close + 1, NULL);
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return sum;
}

typedef struct {
    const app_t *a;
    const char *name, *labels;
    double want;
    int at_least;
} want_t;

static int metric_is(void *arg)
{
    want_t *w = arg;
    double v = metric(w->a, w->name, w->labels);
    return w->at_least ? v >= w->want : v == w->want;
}

/* Waits until the sample is `want` (at_least: `want` or more). */
static int wait_metric_as(const app_t *a, const char *name, const char *labels, double want,
                          int at_least, int timeout_ms)
{
    want_t w = {a, name, labels, want, at_least};
    char what[512];
    snprintf(what, sizeof what, "%s{%s} %s %g", name, labels, at_least ? ">=" : "==", want);
    int rc = lev_test_wait_for(metric_is, &w, 50, timeout_ms, what);
    if (rc)
        fprintf(stderr, "  it is %g\n", metric(a, name, labels));
    return rc;
}

static int wait_metric(const app_t *a, const char *name, const char *labels, double want,
                       int timeout_ms)
{
    return wait_metric_as(a, name, labels, want, 0, timeout_ms);
}

/* ======================================================================
 * /metrics
 * ====================================================================== */

static const char *sku_of(size_t i)
{
    return i % 10 == 3 ? "perm" : i % 10 == 7 ? "flaky" : "sku-ok";
}

/* Publishes a value that is not an Avro single-object encoding at all. */
static int publish_garbage(const char *topic)
{
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-http-garbage");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    const char id[] = "garbage-1";
    lev_header_t h[] = {{LEV_H_CE_ID, id, sizeof id - 1}};
    lev_msg_t m = {.topic = topic,
                   .partition = 0,
                   .key = "k",
                   .key_len = 1,
                   .value = "not avro",
                   .value_len = 8,
                   .headers = h,
                   .nheaders = 1};
    int rc = p ? lev_producer_send(p, &m, NULL, NULL, &err) : -1;
    if (rc == 0)
        rc = lev_producer_flush(p, 30000);
    lev_producer_destroy(p);
    return rc;
}

/* The metric families of an exposition that the README's "Watching the
 * system" section does not name (as `name`); their count. */
static int undocumented(const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/README.md", lev_test_env("LEV_SOURCE_DIR", "."));
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static char readme[1 << 20];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    fclose(f);
    readme[n] = '\0';
    char *section = strstr(readme, "\n## Watching the system\n");
    if (!section)
        return -1;
    char *end = strstr(section + 1, "\n## ");
    if (end)
        *end = '\0';
    int missing = 0;
    for (const char *line = strstr(text, "# TYPE "); line; line = strstr(line + 1, "\n# TYPE ")) {
        const char *name = line[0] == '\n' ? line + 8 : line + 7;
        size_t len = strcspn(name, " ");
        char want[200];
        snprintf(want, sizeof want, "`%.*s`", (int)len, name);
        if (!strstr(section, want)) {
            fprintf(stderr, "  %s is not in the README's Watching the system\n", want);
            missing++;
        }
    }
    return missing;
}

/* Runs promtool check metrics on text; its exit status. */
static int promtool_check(const char *text)
{
    char path[512], cmd[1200];
    snprintf(path, sizeof path, "%s/test-runs", lev_test_env("LEV_BINARY_DIR", "."));
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/test-runs/metrics-%d.txt", lev_test_env("LEV_BINARY_DIR", "."),
             (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "command -v promtool >/dev/null || { echo 'promtool is missing: run tools/deps' >&2; "
             "exit 127; }; promtool check metrics < '%s' >&2",
             path);
    int rc = system(cmd);
    if (rc == 0)
        unlink(path);
    else
        fprintf(stderr, "  promtool check metrics < %s failed\n", path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void metrics_move_as_events_are_handled_and_pass_promtool(void)
{
    enum { N = 60, PERM = 6, FLAKY = 6 }; /* sku_of: every tenth is perm, every tenth flaky */
    app_t a;
    REQUIRE(app_start(&a, "it-http-metrics", 3, NULL, 0) == 0);
    const char *type = "type=\"shop.order.OrderPlaced\"";
    char labels[256];

    /* before any event: the series are there, at zero */
    snprintf(labels, sizeof labels, "%s,result=\"ok\"", type);
    CHECK(wait_metric(&a, "lev_records_handled_total", labels, 0, 60000) == 0);
    CHECK(metric(&a, "lev_dead_letters_total", "class=\"handler\"") == 0);
    CHECK(metric(&a, "lev_retries_total", "level=\"0\"") == 0);

    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(a.in, N, ids, sku_of) == 0);
    REQUIRE(publish_garbage(a.in) == 0);

    /* every record finished: N handled or dead-lettered, and the garbage */
    snprintf(labels, sizeof labels, "topic=\"%s\"", a.in);
    int64_t deadline = lev_mono_ms() + 120000;
    char *body = NULL;
    double finished = 0;
    while (lev_mono_ms() < deadline) {
        free(body);
        body = NULL;
        if (get(&a, "/metrics", &body) == 200 &&
            (finished = metric_sum(body, "lev_records_finished_total", labels)) >= N + 1)
            break;
        lev_test_sleep_ms(100);
    }
    REQUIRE(body);
    CHECK_INT(finished, ==, N + 1);
    CHECK(metric_sum(body, "lev_records_consumed_total", labels) >= N + 1);

    snprintf(labels, sizeof labels, "%s,result=\"ok\"", type);
    CHECK_INT(lev_test_metric(body, "lev_records_handled_total", labels), ==, N - PERM);
    snprintf(labels, sizeof labels, "%s,result=\"transient\"", type);
    CHECK_INT(lev_test_metric(body, "lev_records_handled_total", labels), ==, FLAKY);
    snprintf(labels, sizeof labels, "%s,result=\"permanent\"", type);
    CHECK_INT(lev_test_metric(body, "lev_records_handled_total", labels), ==, PERM);
    snprintf(labels, sizeof labels, "%s,result=\"duplicate\"", type);
    CHECK_INT(lev_test_metric(body, "lev_records_handled_total", labels), ==, 0);
    snprintf(labels, sizeof labels, "%s", type);
    CHECK_INT(lev_test_metric(body, "lev_handler_duration_seconds_count", labels), ==, N + FLAKY);
    snprintf(labels, sizeof labels, "%s,le=\"+Inf\"", type);
    CHECK_INT(lev_test_metric(body, "lev_handler_duration_seconds_bucket", labels), ==, N + FLAKY);
    CHECK_INT(lev_test_metric(body, "lev_dead_letters_total", "class=\"handler\""), ==, PERM);
    CHECK_INT(lev_test_metric(body, "lev_dead_letters_total", "class=\"decode\""), ==, 1);
    CHECK_INT(lev_test_metric(body, "lev_retries_total", "level=\"0\""), ==, FLAKY);
    CHECK_INT(lev_test_metric(body, "lev_retries_total", "level=\"1\""), ==, 0);
    CHECK_INT(lev_test_metric(body, "lev_produce_failures_total", "route=\"outputs\""), ==, 0);
    /* every decodable event claimed (flaky ones again after their hold) */
    CHECK(lev_test_metric(body, "lev_idempotency_claims_total", "result=\"owned\"") >= N);
    CHECK(lev_test_metric(body, "lev_redis_round_trips_total", "connection=\"claims\"") > 0);
    CHECK(lev_test_metric(body, "lev_redis_round_trip_seconds_count", "connection=\"claims\"") > 0);
    CHECK_INT(lev_test_metric(body, "lev_redis_errors_total", "connection=\"claims\""), ==, 0);
    snprintf(labels, sizeof labels, "topic=\"%s\"", a.in);
    CHECK_INT(lev_test_metric(body, "lev_record_age_seconds_count", labels), ==, N + 1);
    CHECK(lev_test_metric(body, "lev_poll_batch_records_count", "") > 0);
    CHECK(lev_test_metric(body, "lev_poll_batch_records_sum", "") >=
          metric_sum(body, "lev_records_consumed_total", "topic="));
    CHECK(lev_test_metric(body, "lev_rebalances_total", "event=\"assign\"") >= 1);
    CHECK(lev_test_metric(body, "process_cpu_seconds_total", "") > 0);
    CHECK_INT(promtool_check(body), ==, 0);
    CHECK_INT(undocumented(body), ==, 0);
    free(body);

    /* gauges follow within a tick; the lag within a statistics interval
     * after the offsets are committed */
    CHECK(wait_metric(&a, "lev_records_in_flight", "", 0, 30000) == 0);
    CHECK(wait_metric(&a, "lev_partitions_assigned", "", 3 + 3 * 3, 30000) == 0); /* + retries */
    for (int p = 0; p < 3; p++) {
        snprintf(labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", a.in, p);
        CHECK(wait_metric(&a, "lev_consumer_lag", labels, 0, 60000) == 0);
    }
    CHECK(metric(&a, "lev_kafka_brokers_up", "") >= 1);

    /* bad requests, while it works */
    CHECK_INT(get(&a, "/nothing-here", NULL), ==, 404);
    CHECK_INT(lev_test_http("POST", a.port, "/metrics", 5000, NULL, NULL), ==, 405);
    CHECK_INT(lev_test_http("DELETE", a.port, "/readyz", 5000, NULL, NULL), ==, 405);
    CHECK_INT(get(&a, "/readyz", NULL), ==, 200);

    app_stop(&a);
}

/* ======================================================================
 * /readyz and /healthz
 * ====================================================================== */

/* Starts or stops a Redis of its own in dir on port (tools/redis). */
static int redis_ctl(const char *verb, const char *dir, int port)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "REDIS_URL= '%s/tools/redis' %s --dir '%s' --port %d %s >&2",
             lev_test_env("LEV_SOURCE_DIR", "."), verb, dir, port,
             strcmp(verb, "start") == 0 ? "--persist" : "");
    return system(cmd);
}

/* A Redis of its own on a reserved port (another one should the port be
 * taken after all). The port, or -1. */
static int redis_start_own(const char *dir)
{
    for (int attempt = 1; attempt <= 3; attempt++) {
        int port = lev_test_reserve_ports(1);
        if (port < 0)
            return -1;
        if (redis_ctl("start", dir, port) == 0)
            return port;
        fprintf(stderr, "redis did not start on %d; another port\n", port);
        redis_ctl("stop", dir, port);
    }
    return -1;
}

typedef struct {
    const app_t *a;
    int want;
    const char *in_body; /* the body must hold this too (NULL: any) */
    int health_failures; /* /healthz answers other than 200 meanwhile */
} probe_t;

static int readyz_is(void *arg)
{
    probe_t *p = arg;
    if (get(p->a, "/healthz", NULL) != 200)
        p->health_failures++;
    char *body = NULL;
    int status = get(p->a, "/readyz", &body);
    int ok = status == p->want && (!p->in_body || (body && strstr(body, p->in_body)));
    free(body);
    return ok;
}

static void readyz_503_while_redis_is_down_200_after_healthz_stays_200(void)
{
    char dir[512], url[128];
    snprintf(dir, sizeof dir, "%s/test-runs/readyz-redis-%d", lev_test_env("LEV_BINARY_DIR", "."),
             (int)getpid());
    int port = redis_start_own(dir);
    REQUIRE(port > 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    app_t a;
    REQUIRE(app_start(&a, "it-http-readyz", 1, url, 0) == 0);

    probe_t p = {&a, 200, "\"status\":\"ready\"", 0};
    CHECK(lev_test_wait_for(readyz_is, &p, 50, 60000, "/readyz 200 with Redis up") == 0);
    static char ids[20][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(a.in, 10, ids, NULL) == 0);
    CHECK(wait_metric(&a, "lev_records_handled_total",
                      "type=\"shop.order.OrderPlaced\",result=\"ok\"", 10, 60000) == 0);

    CHECK(redis_ctl("stop", dir, port) == 0);
    p = (probe_t){&a, 503, "\"reason\":\"redis: ", p.health_failures};
    CHECK(lev_test_wait_for(readyz_is, &p, 50, 30000, "/readyz 503 naming Redis") == 0);
    /* events while Redis is down: the worker pauses for it, loop turning */
    REQUIRE(lev_test_publish_orders(a.in, 10, ids + 10, NULL) == 0);
    CHECK(wait_metric_as(&a, "lev_partitions_paused", "reason=\"redis\"", 1, 1, 60000) == 0);
    CHECK(metric(&a, "lev_redis_errors_total", "connection=\"claims\"") > 0);
    CHECK(lev_test_wait_for(readyz_is, &p, 50, 30000, "/readyz still 503") == 0);

    CHECK(redis_ctl("start", dir, port) == 0);
    p = (probe_t){&a, 200, "\"status\":\"ready\"", p.health_failures};
    CHECK(lev_test_wait_for(readyz_is, &p, 50, 60000, "/readyz 200 once Redis is back") == 0);
    CHECK(wait_metric(&a, "lev_records_handled_total",
                      "type=\"shop.order.OrderPlaced\",result=\"ok\"", 20, 60000) == 0);
    CHECK(wait_metric(&a, "lev_partitions_paused", "reason=\"redis\"", 0, 30000) == 0);
    CHECK_INT(p.health_failures, ==, 0);
    app_stop(&a);
    redis_ctl("stop", dir, port);
}

static void readyz_503_while_the_broker_is_down_200_after(void)
{
    /* librdkafka's mock cluster, in this process: its broker can be taken
     * down and brought back on demand, which the shared one cannot */
    char errstr[256], saved[256];
    snprintf(saved, sizeof saved, "%s", lev_test_env("KAFKA_BOOTSTRAP", ""));
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
    REQUIRE(host);
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(host, 1);
    REQUIRE(mock);
    g_mock = mock;
    setenv("KAFKA_BOOTSTRAP", rd_kafka_mock_cluster_bootstraps(mock), 1);
    app_t a;
    int started = app_start(&a, "it-http-broker", 1, NULL, 0) == 0;
    CHECK(started);
    if (started) {
        probe_t p = {&a, 200, "\"status\":\"ready\"", 0};
        CHECK(lev_test_wait_for(readyz_is, &p, 50, 60000, "/readyz 200 with the broker up") == 0);
        CHECK(metric(&a, "lev_kafka_brokers_up", "") >= 1);
        rd_kafka_mock_broker_set_down(mock, 1);
        p = (probe_t){&a, 503, "\"reason\":\"kafka: ", p.health_failures};
        CHECK(lev_test_wait_for(readyz_is, &p, 50, 60000, "/readyz 503 naming Kafka") == 0);
        CHECK(wait_metric(&a, "lev_kafka_brokers_up", "", 0, 30000) == 0);
        rd_kafka_mock_broker_set_up(mock, 1);
        p = (probe_t){&a, 200, "\"status\":\"ready\"", p.health_failures};
        CHECK(lev_test_wait_for(readyz_is, &p, 50, 60000, "/readyz 200 once it is back") == 0);
        CHECK_INT(p.health_failures, ==, 0);
        app_stop(&a);
    }
    g_mock = NULL;
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(host);
    setenv("KAFKA_BOOTSTRAP", saved, 1);
}

typedef struct {
    const app_t *a;
    int want;
} health_t;

static int healthz_is(void *arg)
{
    health_t *h = arg;
    return get(h->a, "/healthz", NULL) == h->want;
}

static int blocked(void *arg)
{
    return atomic_load(&((app_t *)arg)->blocked);
}

static const char *sku_block(size_t i)
{
    (void)i;
    return "block";
}

static void healthz_503_while_a_handler_holds_the_loop_past_the_bound(void)
{
    app_t a;
    REQUIRE(app_start(&a, "it-http-healthz", 1, NULL, 1000) == 0);
    health_t h = {&a, 200};
    CHECK(lev_test_wait_for(healthz_is, &h, 50, 30000, "/healthz 200") == 0);
    probe_t p = {&a, 200, NULL, 0};
    CHECK(lev_test_wait_for(readyz_is, &p, 50, 60000, "/readyz 200") == 0);
    static char ids[1][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(a.in, 1, ids, NULL) == 0);
    /* a handler that does not return: sku "block" */
    static char ids2[1][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(a.in, 1, ids2, sku_block) == 0);
    CHECK(lev_test_wait_for(blocked, &a, 20, 60000, "the handler to block") == 0);
    h.want = 503;
    CHECK(lev_test_wait_for(healthz_is, &h, 50, 30000, "/healthz 503 while it blocks") == 0);
    char *body = NULL;
    CHECK_INT(get(&a, "/healthz", &body), ==, 503);
    CHECK(body && strstr(body, "\"status\":\"stalled\""));
    free(body);
    atomic_store(&a.released, 1);
    h.want = 200;
    CHECK(lev_test_wait_for(healthz_is, &h, 50, 30000, "/healthz 200 once it returned") == 0);
    app_stop(&a);
}

CHECK_MAIN(CASE(metrics_move_as_events_are_handled_and_pass_promtool),
           CASE(readyz_503_while_redis_is_down_200_after_healthz_stays_200),
           CASE(readyz_503_while_the_broker_is_down_200_after),
           CASE(healthz_503_while_a_handler_holds_the_loop_past_the_bound))
