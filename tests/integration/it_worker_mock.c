/*
 * The worker under faults a real broker cannot produce on demand, with
 * librdkafka's mock cluster as the broker (and the real Redis for the
 * claims): produce requests that time out or are refused mid-batch, for
 * outputs and for dead-letter and retry records; a fatal idempotent-producer
 * error; partitions revoked while their records wait for the broker.
 *
 * Each case proves what the delivery guarantees say: an offset is never
 * stored past a record whose outputs (or dead-letter or retry record) the
 * broker has not acknowledged, nothing is lost, and a side effect guarded as
 * handlers guard theirs (a set-once key) happens once.
 */
#include "check.h"
#include "testutil.h"
#include "worker_internal.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>

#define PARTS 2
#define KAFKA_API_PRODUCE 0 /* the protocol's ApiKey of ProduceRequest */

static rd_kafka_t *mock_host;
static rd_kafka_mock_cluster_t *mock;

/* A fresh mock cluster (one broker) for each case, so no fault a case
 * pushed is left for the next; every helper of testutil talks to it through
 * KAFKA_BOOTSTRAP. */
static rd_kafka_mock_cluster_t *mock_cluster(void)
{
    if (mock) {
        rd_kafka_mock_cluster_destroy(mock);
        rd_kafka_destroy(mock_host);
        mock = NULL;
    }
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "3", errstr, sizeof errstr);
    mock_host = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
    if (!mock_host)
        return NULL;
    mock = rd_kafka_mock_cluster_new(mock_host, 1);
    lev_log_set(lev_log_json, NULL, getenv("LEV_TEST_LOG") ? LEV_LOG_DEBUG : LEV_LOG_WARN);
    if (mock)
        setenv("KAFKA_BOOTSTRAP", rd_kafka_mock_cluster_bootstraps(mock), 1);
    return mock;
}

/* ---- the application: one side effect per order, one output ---- */

typedef struct app_s {
    char in[96], out[128], group[128], dlq[160];
    size_t n;
    char (*ids)[LEV_UUID_STR_LEN];
    atomic_int *runs;    /* handler runs per input */
    atomic_int *effects; /* side effects per input (guarded by a set-once key) */
    const char *fail_sku;
    lev_result_t fail_with;
} app_t;

typedef struct run_s {
    app_t *app;
    lev_test_run_t run; /* its worker, run.w */
    lev_worker_stats_t stats;
} run_t;

static long index_of(const app_t *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->ids[i], id) == 0)
            return (long)i;
    return -1;
}

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    app_t *a = opaque;
    const avro_value_t *in = &ev->value;
    const char *order_id, *sku;
    if (lev_value_get_string(in, "order_id", &order_id, NULL))
        return LEV_RESULT_PERMANENT;
    long i = index_of(a, order_id);
    if (i < 0)
        return LEV_RESULT_PERMANENT;
    atomic_fetch_add(&a->runs[i], 1);
    avro_value_t items, item;
    if (a->fail_sku && lev_value_get_field(in, "items", &items) == 0 &&
        avro_value_get_by_index(&items, 0, &item, NULL) == 0 &&
        lev_value_get_string(&item, "sku", &sku, NULL) == 0 && strcmp(sku, a->fail_sku) == 0) {
        lev_ctx_set_error(ctx, "failure requested for %s", sku);
        return a->fail_with;
    }
    char key[256];
    int created = 0;
    snprintf(key, sizeof key, "%s:effect:%s", a->group, ev->id);
    if (lev_store_set_once(lev_ctx_store(ctx), key, "1", 600000, &created, NULL) != 0)
        return LEV_RESULT_TRANSIENT;
    if (created)
        atomic_fetch_add(&a->effects[i], 1);
    return lev_test_emit_accepted(ctx, ev, a->out, order_id) == 0 ? LEV_RESULT_OK
                                                                  : LEV_RESULT_PERMANENT;
}

static const char *bad_sku;
static const char *sku_every_tenth_bad(size_t i)
{
    return i % 10 == 3 ? bad_sku : "sku-plain";
}

/* Topics on the mock cluster, orders published, counters. */
static int app_init(app_t *a, const char *name, size_t n, const char *fail_sku)
{
    rd_kafka_mock_cluster_t *mc = mock_cluster();
    if (!mc)
        return -1;
    memset(a, 0, sizeof *a);
    lev_test_unique(name, a->in, sizeof a->in);
    snprintf(a->out, sizeof a->out, "%s-out", a->in);
    snprintf(a->group, sizeof a->group, "%s-group", a->in);
    lev_dlq_topic_name(a->group, a->dlq, sizeof a->dlq);
    rd_kafka_mock_topic_create(mc, a->in, PARTS, 1);
    rd_kafka_mock_topic_create(mc, a->out, PARTS, 1);
    rd_kafka_mock_topic_create(mc, a->dlq, PARTS, 1);
    for (int l = 1; l <= 3; l++) {
        char t[200];
        lev_retry_topic_name(a->group, l, t, sizeof t);
        rd_kafka_mock_topic_create(mc, t, PARTS, 1);
    }
    a->n = n;
    a->ids = calloc(n, sizeof *a->ids);
    a->runs = calloc(n, sizeof *a->runs);
    a->effects = calloc(n, sizeof *a->effects);
    a->fail_sku = fail_sku;
    a->fail_with = LEV_RESULT_PERMANENT;
    bad_sku = fail_sku;
    return lev_test_publish_orders(a->in, n, a->ids, fail_sku ? sku_every_tenth_bad : NULL);
}

static void app_free(app_t *a)
{
    free(a->ids);
    free(a->runs);
    free((void *)a->effects);
}

/* Starts a worker of the app's group in a thread of its own. */
static int run_start(run_t *r, app_t *a, const char *const *settings)
{
    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    memset(r, 0, sizeof *r);
    r->app = a;
    lev_test_config(&conf, "it-mock");
    lev_config_set_str(&conf.group_id, a->group);
    conf.retry.backoff_ms = 50;
    conf.retry.backoff_max_ms = 200;
    conf.shutdown_timeout_ms = 3000;
    for (size_t i = 0; settings && settings[i]; i += 2)
        lev_config_set_kafka(&conf, settings[i], settings[i + 1]);
    if (settings)
        for (size_t i = 0; settings[i]; i += 2)
            if (strcmp(settings[i], "message.timeout.ms") == 0)
                conf.delivery_timeout_ms = atoi(settings[i + 1]);
    r->run.w = lev_worker_new(&conf, &err);
    lev_config_clear(&conf);
    if (!r->run.w || lev_worker_on(r->run.w, "shop.order.OrderPlaced", on_placed, a, &err) ||
        lev_worker_subscribe(r->run.w, a->in, &err) ||
        lev_worker_declare_output(r->run.w, a->out, &err)) {
        fprintf(stderr, "worker: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    return lev_test_run_start(&r->run, r->run.w);
}

static int run_stop(run_t *r)
{
    return lev_test_run_finish(&r->run, &r->stats);
}

/* Waits until a report failed (the fault struck), up to timeout_ms. */
static void wait_produce_failure(run_t *r, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    lev_worker_stats_t st = {0};
    while (lev_mono_ms() < deadline && st.produce_failures == 0) {
        lev_test_sleep_ms(20);
        lev_worker_stats(r->run.w, &st);
    }
}

/* Waits until every input's offset is committed, up to timeout_ms. */
static void wait_committed(const app_t *a, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    int64_t committed[PARTS] = {0, 0};
    while (lev_mono_ms() < deadline) {
        if (lev_test_committed(a->group, a->in, PARTS, committed) == 0 &&
            committed[0] + committed[1] == (int64_t)a->n)
            return;
        lev_test_sleep_ms(200);
    }
}

/* ---- what the topics say ---- */

/* Marks in seen[] the inputs an output or dead-letter record stands for
 * (outputs by their order id, dead letters by the input's ce_id). Returns
 * how many records the topic has. */
static size_t mark_topic(const app_t *a, const char *topic, int by_header, int *seen)
{
    lev_test_record_t *recs;
    size_t nr = lev_test_read_topic(topic, 0, 5000, &recs);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    for (size_t i = 0; i < nr; i++) {
        char id[128];
        const char *s = NULL;
        avro_value_t v;
        int decoded = 0;
        if (by_header) {
            s = lev_test_header(&recs[i], "ce_id", id, sizeof id);
        } else if (lev_codec_decode(codec, recs[i].value, recs[i].value_len, NULL, &v, NULL,
                                    NULL) == 0) {
            decoded = 1;
            lev_value_get_string(&v, "order_id", &s, NULL);
        }
        long k = s ? index_of(a, s) : -1;
        if (k >= 0)
            seen[k]++;
        if (decoded)
            avro_value_decref(&v);
    }
    lev_codec_destroy(codec);
    lev_test_records_free(recs, nr);
    return nr;
}

/* Every input below its partition's committed offset has an acknowledged
 * output or dead-letter record: nothing was stored past an unfinished one.
 * Returns how many inputs lie below the committed offsets. */
static size_t check_committed_prefix_finished(const app_t *a)
{
    int64_t committed[PARTS];
    if (lev_test_committed(a->group, a->in, PARTS, committed) != 0) {
        CHECK(!"committed offsets readable");
        return 0;
    }
    int *seen = calloc(a->n, sizeof *seen);
    mark_topic(a, a->out, 0, seen);
    mark_topic(a, a->dlq, 1, seen);
    lev_test_record_t *recs;
    size_t nr = lev_test_read_topic(a->in, a->n, 10000, &recs), below = 0, unfinished = 0;
    for (size_t i = 0; i < nr; i++) {
        if (recs[i].offset >= committed[recs[i].partition])
            continue;
        char id[128];
        long k = index_of(a, lev_test_header(&recs[i], "ce_id", id, sizeof id));
        below++;
        if (k < 0 || !seen[k])
            unfinished++;
    }
    fprintf(stderr, "  committed %" PRId64 " + %" PRId64 ": %zu inputs, %zu without a record\n",
            committed[0], committed[1], below, unfinished);
    CHECK_INT(unfinished, ==, 0);
    lev_test_records_free(recs, nr);
    free(seen);
    return below;
}

/* The end state: every input finished exactly as its kind says (good ones
 * have an output, failing ones a dead letter), each side effect once, and
 * every offset committed. */
static void check_all_finished(const app_t *a, int dead_lettered_expected)
{
    int *out = calloc(a->n, sizeof *out), *dlq = calloc(a->n, sizeof *dlq);
    mark_topic(a, a->out, 0, out);
    mark_topic(a, a->dlq, 1, dlq);
    size_t missing = 0, both = 0, effects_wrong = 0, in_dlq = 0;
    for (size_t i = 0; i < a->n; i++) {
        missing += !out[i] && !dlq[i];
        both += out[i] && dlq[i];
        in_dlq += dlq[i] > 0;
        if (out[i])
            effects_wrong += atomic_load(&a->effects[i]) != 1;
    }
    CHECK_INT(missing, ==, 0);
    CHECK_INT(both, ==, 0);
    CHECK_INT(effects_wrong, ==, 0);
    if (dead_lettered_expected >= 0)
        CHECK_INT(in_dlq, ==, dead_lettered_expected);
    int64_t committed[PARTS];
    CHECK(lev_test_committed(a->group, a->in, PARTS, committed) == 0);
    CHECK_INT(committed[0] + committed[1], ==, a->n);
    free(out);
    free(dlq);
}

/* ---------------------------------------------------------------------- */

/* The worker's first produce requests are answered at once, the next ones
 * after 2.5 s, when their records have long timed out. */
static void slow_produce_after_a_while(int fast, int slow)
{
    for (int i = 0; i < fast + slow; i++)
        rd_kafka_mock_broker_push_request_error_rtts(
            mock, 1, KAFKA_API_PRODUCE, 1, RD_KAFKA_RESP_ERR_NO_ERROR, i < fast ? 0 : 2500);
}

static void outputs_not_acknowledged_in_time_are_never_stored_past_and_are_sent_again(void)
{
    enum { N = 3000 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-timeout", N, NULL) == 0);
    /* outputs time out (message.timeout.ms 800) while their inputs wait */
    slow_produce_after_a_while(3, 6);
    const char *settings[] = {"message.timeout.ms", "800", NULL};
    run_t r;
    REQUIRE(run_start(&r, &a, settings) == 0);
    wait_produce_failure(&r, 30000);
    /* stop while outputs are failing: what it commits must all be finished */
    CHECK_INT(run_stop(&r), ==, 0);
    fprintf(stderr, "  first run: %llu handled, %llu finished, %llu with a failed report\n",
            (unsigned long long)r.stats.handled, (unsigned long long)r.stats.finished,
            (unsigned long long)r.stats.produce_failures);
    CHECK(r.stats.produce_failures > 0);
    size_t below = check_committed_prefix_finished(&a);
    CHECK(below > 0 && below < N); /* some finished before the fault, not all */

    /* a second run finishes the rest */
    rd_kafka_mock_clear_request_errors(mock, KAFKA_API_PRODUCE);
    REQUIRE(run_start(&r, &a, settings) == 0);
    wait_committed(&a, 60000);
    CHECK_INT(run_stop(&r), ==, 0);
    check_all_finished(&a, 0);
    app_free(&a);
}

static void refused_outputs_dead_letter_their_inputs_and_the_partition_moves_on(void)
{
    enum { N = 200 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-refused", N, NULL) == 0);
    /* the first produce request is refused as too large, the second as an
     * invalid record: both are for good */
    rd_kafka_mock_push_request_errors(mock, KAFKA_API_PRODUCE, 2,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD);
    run_t r;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    (void)lev_test_run_wait_finished(&r.run, N, 60000);
    CHECK_INT(run_stop(&r), ==, 0);
    CHECK(r.stats.produce_failures > 0);
    CHECK(r.stats.dead_lettered > 0);
    fprintf(stderr, "  %llu dead-lettered, %llu records with a failed report\n",
            (unsigned long long)r.stats.dead_lettered,
            (unsigned long long)r.stats.produce_failures);
    check_all_finished(&a, (int)r.stats.dead_lettered);
    /* their dead letters say why, and keep the value */
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(a.dlq, 1, 10000, &dl), classes = 0;
    for (size_t i = 0; i < ndl; i++) {
        char cls[64], msg[512];
        lev_test_header(&dl[i], LEV_H_ERROR_CLASS, cls, sizeof cls);
        lev_test_header(&dl[i], LEV_H_ERROR_MESSAGE, msg, sizeof msg);
        classes += strcmp(cls, "too-large") == 0 || strcmp(cls, "produce") == 0;
        CHECK(strstr(msg, "an output was refused") != NULL);
        CHECK(dl[i].value_len > 0);
    }
    CHECK_INT(classes, ==, ndl);
    lev_test_records_free(dl, ndl);
    app_free(&a);
}

static void dead_letters_not_acknowledged_are_sent_again_and_never_stored_past(void)
{
    enum { N = 200 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-dlq", N, "sku-bad") == 0);
    /* every tenth order fails for good; produce requests (outputs and dead
     * letters) time out after the first ones */
    slow_produce_after_a_while(2, 6);
    const char *settings[] = {"message.timeout.ms", "800", NULL};
    run_t r;
    REQUIRE(run_start(&r, &a, settings) == 0);
    wait_produce_failure(&r, 30000);
    CHECK_INT(run_stop(&r), ==, 0);
    CHECK(r.stats.produce_failures > 0);
    check_committed_prefix_finished(&a);
    rd_kafka_mock_clear_request_errors(mock, KAFKA_API_PRODUCE);
    REQUIRE(run_start(&r, &a, settings) == 0);
    wait_committed(&a, 60000);
    CHECK_INT(run_stop(&r), ==, 0);
    check_all_finished(&a, N / 10);
    app_free(&a);
}

static void retry_records_not_acknowledged_are_sent_again(void)
{
    enum { N = 100 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-retry", N, "sku-flaky") == 0);
    a.fail_with = LEV_RESULT_TRANSIENT; /* in process once, then the retry topics */
    slow_produce_after_a_while(1, 4);
    const char *settings[] = {"message.timeout.ms", "800", NULL};
    run_t r;
    /* one in-process attempt, retry topics of 100 ms: every level, then the DLQ */
    setenv("LEV_RETRY_ATTEMPTS", "1", 1);
    setenv("LEV_RETRY_DELAYS", "100ms,100ms", 1);
    REQUIRE(run_start(&r, &a, settings) == 0);
    /* until every failing order is in the dead-letter topic (a retry record
     * sent again may come twice: counting finished records would not do) */
    int64_t deadline = lev_mono_ms() + 120000;
    int *dlq = calloc(N, sizeof *dlq);
    size_t in_dlq = 0;
    while (in_dlq < N / 10 && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(500);
        memset(dlq, 0, N * sizeof *dlq);
        mark_topic(&a, a.dlq, 1, dlq);
        in_dlq = 0;
        for (size_t i = 0; i < N; i++)
            in_dlq += dlq[i] > 0;
    }
    wait_committed(&a, 60000);
    CHECK_INT(run_stop(&r), ==, 0);
    unsetenv("LEV_RETRY_ATTEMPTS");
    unsetenv("LEV_RETRY_DELAYS");
    CHECK(r.stats.produce_failures > 0);
    /* every failing order reached both retry topics (counted from the
     * topics: the worker's counter leaves out records whose partition was
     * given up while they waited for the broker, as timeouts here make) */
    for (int level = 1; level <= 2; level++) {
        char topic[200];
        lev_retry_topic_name(a.group, level, topic, sizeof topic);
        memset(dlq, 0, N * sizeof *dlq);
        mark_topic(&a, topic, 1, dlq);
        size_t missing = 0;
        for (size_t i = 0; i < N; i++)
            missing += i % 10 == 3 && dlq[i] == 0;
        CHECK_INT(missing, ==, 0);
    }
    check_all_finished(&a, N / 10);
    /* each failing order ran once per hop, at least: in, retry.1, retry.2 */
    size_t short_runs = 0;
    for (size_t i = 0; i < N; i++)
        short_runs += i % 10 == 3 && atomic_load(&a.runs[i]) < 3;
    CHECK_INT(short_runs, ==, 0);
    free(dlq);
    app_free(&a);
}

static void fatal_producer_error_mid_batch_resends_and_loses_nothing(void)
{
    enum { N = 600 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-fatal", N, NULL) == 0);
    /* slow acknowledgements keep records in flight when the error strikes */
    for (int i = 0; i < 4; i++)
        rd_kafka_mock_broker_push_request_error_rtts(mock, 1, KAFKA_API_PRODUCE, 1,
                                                     RD_KAFKA_RESP_ERR_NO_ERROR, 300);
    run_t r;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    lev_worker_stats_t st = {0};
    int64_t deadline = lev_mono_ms() + 20000;
    while (st.handled < 50 && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(5);
        lev_worker_stats(r.run.w, &st);
    }
    rd_kafka_t *prk = lev_worker_producer_client(r.run.w);
    REQUIRE(prk);
    rd_kafka_test_fatal_error(prk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "test: simulated fatal idempotence error");
    (void)lev_test_run_wait_finished(&r.run, N, 60000);
    CHECK_INT(run_stop(&r), ==, 0);
    CHECK_INT(r.stats.finished, ==, N);
    check_all_finished(&a, 0);
    app_free(&a);
}

static void partitions_revoked_while_records_wait_are_given_up_without_storing_past_them(void)
{
    enum { N = 400 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-revoke", N, NULL) == 0);
    /* acknowledgements slower than a rebalance and the grace a revoke gives
     * (3 s here), faster than the idempotency lease: the first member gives
     * partitions up with records still waiting, which are acknowledged
     * later; their claims make the new owner wait, then skip them */
    for (int i = 0; i < 2; i++)
        rd_kafka_mock_broker_push_request_error_rtts(mock, 1, KAFKA_API_PRODUCE, 1,
                                                     RD_KAFKA_RESP_ERR_NO_ERROR, 25000);
    setenv("LEV_IDEMPOTENCY_LEASE_MS", "120s", 1);
    const char *settings[] = {"message.timeout.ms", "90000", "request.timeout.ms", "90000", NULL};
    run_t r1, r2;
    REQUIRE(run_start(&r1, &a, settings) == 0);
    lev_worker_stats_t st = {0};
    int64_t deadline = lev_mono_ms() + 20000;
    while (st.handled < 20 && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(20);
        lev_worker_stats(r1.run.w, &st);
    }
    REQUIRE(run_start(&r2, &a, settings) == 0); /* a second member: a rebalance */
    wait_committed(&a, 120000);
    unsetenv("LEV_IDEMPOTENCY_LEASE_MS");
    CHECK_INT(run_stop(&r2), ==, 0);
    CHECK_INT(run_stop(&r1), ==, 0);
    CHECK(r1.stats.rebalances >= 2);
    fprintf(stderr, "  first member gave up %llu records still waiting for the broker\n",
            (unsigned long long)r1.stats.given_up_waiting);
    CHECK(r1.stats.given_up_waiting > 0);
    check_all_finished(&a, 0);
    /* nothing was handled twice: the new owner found the claims of what
     * the first gave up still leased, then done */
    size_t twice = 0;
    for (size_t i = 0; i < N; i++)
        twice += atomic_load(&a.runs[i]) > 1;
    CHECK_INT(twice, ==, 0);
    app_free(&a);
}

static void records_in_flight_stay_within_their_bound_while_the_broker_is_slow(void)
{
    enum { N = 1500, MAX = 64 };
    app_t a;
    REQUIRE(app_init(&a, "it-mock-bound", N, NULL) == 0);
    /* slow acknowledgements: without a bound the worker would take the
     * whole topic into memory while it waits */
    for (int i = 0; i < 20; i++)
        rd_kafka_mock_broker_push_request_error_rtts(mock, 1, KAFKA_API_PRODUCE, 1,
                                                     RD_KAFKA_RESP_ERR_NO_ERROR, 100);
    setenv("LEV_MAX_IN_FLIGHT", "64", 1);
    run_t r;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    unsetenv("LEV_MAX_IN_FLIGHT");
    (void)lev_test_run_wait_finished(&r.run, N, 120000);
    CHECK_INT(run_stop(&r), ==, 0);
    fprintf(stderr, "  at most %llu records in flight\n",
            (unsigned long long)r.stats.in_flight_peak);
    CHECK(r.stats.in_flight_peak > 0);
    CHECK_INT(r.stats.in_flight_peak, <=, MAX + 1);
    check_all_finished(&a, 0);
    app_free(&a);
}

CHECK_MAIN(CASE(outputs_not_acknowledged_in_time_are_never_stored_past_and_are_sent_again),
           CASE(refused_outputs_dead_letter_their_inputs_and_the_partition_moves_on),
           CASE(dead_letters_not_acknowledged_are_sent_again_and_never_stored_past),
           CASE(retry_records_not_acknowledged_are_sent_again),
           CASE(fatal_producer_error_mid_batch_resends_and_loses_nothing),
           CASE(partitions_revoked_while_records_wait_are_given_up_without_storing_past_them),
           CASE(records_in_flight_stay_within_their_bound_while_the_broker_is_slow))
