/*
 * Failure handling against a real broker and Redis: in-process retries,
 * retry topics and their due times, dead letters and their headers, hostile
 * bytes, duplicate deliveries, a crash between claim and done, a Redis
 * outage, and the Redis round trips per batch.
 */
#include "check.h"
#include "testutil.h"

#include <signal.h>
#include <sys/wait.h>

typedef struct {
    char in[96], out[128], group[128], dlq[160], effect[256], log[256];
    char e_in[160], e_out[160], e_group[160], e_effect[300], e_schemas[1100];
} run_t;

static void run_init(run_t *r, const char *name)
{
    const char *tmp = lev_test_env("TMPDIR", "/tmp");
    lev_test_unique(name, r->in, sizeof r->in);
    snprintf(r->out, sizeof r->out, "%s-out", r->in);
    snprintf(r->group, sizeof r->group, "%s-group", r->in);
    lev_dlq_topic_name(r->group, r->dlq, sizeof r->dlq);
    snprintf(r->effect, sizeof r->effect, "%s/%s.effects", tmp, r->in);
    snprintf(r->log, sizeof r->log, "%s/%s.log", tmp, r->in);
    snprintf(r->e_in, sizeof r->e_in, "IN_TOPIC=%s", r->in);
    snprintf(r->e_out, sizeof r->e_out, "OUT_TOPIC=%s", r->out);
    snprintf(r->e_group, sizeof r->e_group, "LEV_GROUP_ID=%s", r->group);
    snprintf(r->e_effect, sizeof r->e_effect, "EFFECT_LOG=%s", r->effect);
    snprintf(r->e_schemas, sizeof r->e_schemas, "LEV_SCHEMA_DIRS=%s/schemas:%s/worker",
             lev_test_env("LEV_SOURCE_DIR", "."), lev_test_env("LEV_TEST_DATA", "tests/data"));
    unlink(r->effect);
}

/* Starts the test worker with the run's variables and up to 6 more. */
static pid_t run_start(run_t *r, char *const extra[])
{
    char *env[16] = {r->e_in, r->e_out, r->e_group, r->e_effect, r->e_schemas};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    return lev_test_start_worker(env, r->log);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* Lines of path that contain needle. */
static size_t count_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

typedef struct {
    const char *path, *needle;
    size_t min;
} lines_with_t;

static int has_lines_with(void *arg)
{
    const lines_with_t *l = arg;
    return count_lines_with(l->path, l->needle) >= l->min;
}

/* Waits until at least min lines of path contain needle. */
static int wait_lines_with(const char *path, const char *needle, size_t min, int timeout_ms)
{
    lines_with_t l = {path, needle, min};
    char what[600];
    snprintf(what, sizeof what, "%zu line(s) with %s in %s", min, needle, path);
    return lev_test_wait_for(has_lines_with, &l, 20, timeout_ms, what);
}

typedef struct {
    const char *path, *name;
    long long min;
} stat_at_least_t;

static int stat_at_least(void *arg)
{
    const stat_at_least_t *c = arg;
    json_t *j = json_load_file(c->path, 0, NULL);
    int ok = j && json_integer_value(json_object_get(j, c->name)) >= c->min;
    json_decref(j);
    return ok;
}

/* Waits until counter `name` of a worker's STATS_FILE reaches min. */
static int wait_stat(const char *path, const char *name, long long min, int timeout_ms)
{
    stat_at_least_t c = {path, name, min};
    char what[600];
    snprintf(what, sizeof what, "%s >= %lld in %s", name, min, path);
    return lev_test_wait_for(stat_at_least, &c, 10, timeout_ms, what);
}

static const char *sku_bad_first(size_t i)
{
    return i == 0 ? "sku-bad" : "sku-plain";
}

/* ---------------------------------------------------------------------- */

static void transient_failure_twice_then_success_is_handled_once_without_dead_letter(void)
{
    enum { N = 20 };
    run_t r;
    run_init(&r, "it-transient");
    REQUIRE(lev_test_create_topic(r.in, 2) == 0);
    REQUIRE(lev_test_create_topic(r.out, 2) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N, ids, NULL) == 0);
    char *extra[] = {"FAIL_MODE=transient:2", "LEV_RETRY_ATTEMPTS=3", "LEV_RETRY_BACKOFF_MS=50",
                     NULL};
    pid_t w = run_start(&r, extra);
    CHECK(lev_test_wait_lines(r.effect, N, 60000) >= N);
    size_t nout;
    char **out = lev_test_read_order_ids(r.out, N, 30000, &nout);
    CHECK_INT(lev_test_missing(ids, N, out, nout), ==, 0);
    CHECK_INT(nout, ==, N);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    /* each handled once (third attempt), none dead-lettered */
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    CHECK_INT(nh, ==, N);
    CHECK_INT(lev_test_distinct(handled, nh), ==, N);
    lev_test_record_t *dl;
    CHECK_INT(lev_test_read_topic(r.dlq, 0, 5000, &dl), ==, 0);
    lev_test_records_free(dl, 0);
    /* the attempts are in the logs */
    CHECK(file_contains(r.log, "\"msg\":\"transient failure, retrying in process\""));
    CHECK(file_contains(r.log, "\"attempt\":\"3\""));
    lev_test_strings_free(handled, nh);
    lev_test_strings_free(out, nout);
}

static void always_failing_event_passes_each_retry_level_when_due_and_is_dead_lettered(void)
{
    enum { N = 60 };
    run_t r;
    run_init(&r, "it-exhaust");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    REQUIRE(lev_test_create_topic(r.out, 1) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    /* the first event of the single partition always fails; 59 follow it */
    REQUIRE(lev_test_publish_orders(r.in, N, ids, sku_bad_first) == 0);
    char *extra[] = {"FAIL_MODE=transient",     "FAIL_SKU=sku-bad",       "LEV_RETRY_ATTEMPTS=2",
                     "LEV_RETRY_BACKOFF_MS=50", "LEV_RETRY_DELAYS=2s,3s", NULL};
    int64_t t0 = lev_now_ms();
    pid_t w = run_start(&r, extra);

    /* the others are not held up behind it */
    size_t nout;
    char **out = lev_test_read_order_ids(r.out, N - 1, 30000, &nout);
    CHECK_INT(nout, ==, N - 1);
    int64_t others_done = lev_now_ms();

    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(r.dlq, 1, 60000, &dl);
    CHECK_INT(ndl, ==, 1);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    if (ndl == 1) {
        char b[256];
        lev_test_record_t *d = &dl[0];
        CHECK(others_done - t0 < 2000 + 3000); /* before the retries were even due */
        CHECK_STR(d->key, ids[0]);
        CHECK_STR(lev_test_header(d, "ce_id", b, sizeof b), ids[0]);
        CHECK_STR(lev_test_header(d, LEV_H_DLQ_VERSION, b, sizeof b), "1");
        CHECK_STR(lev_test_header(d, LEV_H_ORIG_TOPIC, b, sizeof b), r.in);
        CHECK_STR(lev_test_header(d, LEV_H_ORIG_PARTITION, b, sizeof b), "0");
        CHECK_STR(lev_test_header(d, LEV_H_ORIG_OFFSET, b, sizeof b), "0");
        CHECK(atoll(lev_test_header(d, LEV_H_ORIG_TIMESTAMP, b, sizeof b)) >= t0 - 60000);
        CHECK_STR(lev_test_header(d, LEV_H_GROUP, b, sizeof b), r.group);
        CHECK_STR(lev_test_header(d, LEV_H_SERVICE, b, sizeof b), "test-worker");
        CHECK_STR(lev_test_header(d, LEV_H_ERROR_CLASS, b, sizeof b), "retries-exhausted");
        CHECK(strstr(lev_test_header(d, LEV_H_ERROR_MESSAGE, b, sizeof b), "transient") != NULL);
        /* 2 in process + 1 per retry level */
        CHECK_STR(lev_test_header(d, LEV_H_ATTEMPTS, b, sizeof b), "4");
        int64_t first = atoll(lev_test_header(d, LEV_H_FIRST_FAILURE, b, sizeof b));
        int64_t last = atoll(lev_test_header(d, LEV_H_LAST_FAILURE, b, sizeof b));
        /* never before each due time: 2 s then 3 s */
        CHECK(last - first >= 5000);
        CHECK(first >= t0);
        /* headers replaced at each hop, never stacked */
        const char *name;
        const void *v;
        size_t len;
        int ours = 0;
        for (size_t i = 0;
             d->headers && rd_kafka_header_get_all(d->headers, i, &name, &v, &len) == 0; i++)
            ours += strcmp(name, LEV_H_ATTEMPTS) == 0;
        CHECK_INT(ours, ==, 1);
    }
    /* each retry topic saw it once */
    for (int level = 1; level <= 2; level++) {
        char rt[200];
        lev_retry_topic_name(r.group, level, rt, sizeof rt);
        lev_test_record_t *rr;
        size_t nr = lev_test_read_topic(rt, 1, 10000, &rr);
        CHECK_INT(nr, ==, 1);
        if (nr == 1) {
            char b[64];
            int64_t due = atoll(lev_test_header(&rr[0], LEV_H_DUE, b, sizeof b));
            CHECK(due - rr[0].timestamp >= (level == 1 ? 2000 : 3000) - 50);
        }
        lev_test_records_free(rr, nr);
    }
    lev_test_records_free(dl, ndl);
    lev_test_strings_free(out, nout);
}

static void permanent_failure_is_dead_lettered_at_once(void)
{
    enum { N = 5 };
    run_t r;
    run_init(&r, "it-permanent");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N, ids, NULL) == 0);
    /* a consumer and a producer setting passed through: neither client
     * gets the other's property (librdkafka would warn, CONFWARN) */
    char *extra[] = {"FAIL_MODE=permanent", "KAFKA_SESSION_TIMEOUT_MS=12000", "KAFKA_LINGER_MS=10",
                     NULL};
    pid_t w = run_start(&r, extra);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(r.dlq, N, 60000, &dl);
    CHECK_INT(ndl, ==, N);
    char b[64];
    for (size_t i = 0; i < ndl; i++) {
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ERROR_CLASS, b, sizeof b), "handler");
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ATTEMPTS, b, sizeof b), "1");
    }
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    CHECK(file_contains(r.log, "\"msg\":\"worker started\""));
    CHECK(!file_contains(r.log, "CONFWARN"));
    lev_test_records_free(dl, ndl);
}

/* Integers in lev_* headers come from the wire and are never trusted: an
 * attempt count at INT_MAX does not overflow (UBSan would abort), a due
 * time at the end of time or a year away is not one the worker could have
 * set and is not waited for, a negative first failure is not used. */
static void wire_integers_out_of_range_are_not_trusted(void)
{
    run_t r;
    run_init(&r, "it-wireint");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    char rt[200];
    lev_retry_topic_name(r.group, 1, rt, sizeof rt);
    REQUIRE(lev_test_create_topic(rt, 1) == 0);

    lev_schemas_t *schemas = lev_schemas_new();
    lev_error_t err;
    REQUIRE(lev_schemas_load_path(schemas, strchr(r.e_schemas, '=') + 1, &err) == 0);
    lev_codec_t *codec = lev_codec_new(schemas, NULL);
    const lev_schema_t *os = lev_schemas_find(schemas, "shop.order.OrderPlaced");
    lev_config_t conf;
    lev_test_config(&conf, "it-wireint");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    REQUIRE(p && codec && os);
    char year_away[32];
    snprintf(year_away, sizeof year_away, "%" PRId64, lev_now_ms() + (int64_t)365 * 86400000);
    const char *dues[3] = {"9223372036854775000", year_away, "-9223372036854775808"};
    char ids[3][LEV_UUID_STR_LEN];
    for (int i = 0; i < 3; i++) {
        lev_uuid4(ids[i]);
        json_t *j = lev_test_order_json(ids[i], i);
        avro_value_t v;
        void *buf;
        size_t len;
        REQUIRE(lev_codec_from_json(codec, os, j, &v, &err) == 0);
        REQUIRE(lev_codec_encode(codec, os, &v, &buf, &len, &err) == 0);
        lev_header_t h[] = {{"ce_id", ids[i], strlen(ids[i])},
                            {LEV_H_ATTEMPTS, "2147483647", 10},
                            {LEV_H_DUE, dues[i], strlen(dues[i])},
                            {LEV_H_FIRST_FAILURE, "-42", 3},
                            {LEV_H_ORIG_TOPIC, r.in, strlen(r.in)},
                            {LEV_H_ORIG_OFFSET, "99999999999999999999999", 23}};
        lev_msg_t m = {.topic = rt,
                       .partition = 0,
                       .key = ids[i],
                       .key_len = strlen(ids[i]),
                       .value = buf,
                       .value_len = len,
                       .headers = h,
                       .nheaders = sizeof h / sizeof h[0]};
        CHECK(lev_producer_send(p, &m, NULL, NULL, &err) == 0);
        free(buf);
        avro_value_decref(&v);
        json_decref(j);
    }
    CHECK(lev_producer_flush(p, 10000) == 0);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);

    /* the handler always fails: from the last retry level to the DLQ */
    char *extra[] = {"FAIL_MODE=transient", "LEV_RETRY_ATTEMPTS=1", "LEV_RETRY_DELAYS=1m", NULL};
    int64_t t0 = lev_mono_ms();
    pid_t w = run_start(&r, extra);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(r.dlq, 3, 60000, &dl);
    CHECK_INT(ndl, ==, 3);
    CHECK(lev_mono_ms() - t0 < 30000); /* nobody waited for those due times */
    for (size_t i = 0; i < ndl; i++) {
        char b[64];
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ERROR_CLASS, b, sizeof b), "retries-exhausted");
        /* the count out of range was not used: this is the first attempt counted */
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ATTEMPTS, b, sizeof b), "1");
        lev_test_header(&dl[i], LEV_H_FIRST_FAILURE, b, sizeof b);
        CHECK(strtoll(b, NULL, 10) > 0);
        /* an offset that is no number falls back to the record's own */
        char own[24];
        snprintf(own, sizeof own, "%zu", i); /* one partition: the i-th retry record */
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ORIG_OFFSET, b, sizeof b), own);
    }
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    lev_test_records_free(dl, ndl);
}

/* Sends an order with these ce_id and ce_source headers (len: bytes of the
 * id, which may hold a NUL; source NULL: none) to partition 0. */
static void send_with_id(lev_producer_t *p, lev_codec_t *codec, const lev_schema_t *os,
                         const char *topic, const char *order_id, int i, const char *id,
                         size_t id_len, const char *source)
{
    lev_error_t err;
    json_t *j = lev_test_order_json(order_id, i);
    avro_value_t v;
    void *buf;
    size_t len;
    REQUIRE(lev_codec_from_json(codec, os, j, &v, &err) == 0);
    REQUIRE(lev_codec_encode(codec, os, &v, &buf, &len, &err) == 0);
    lev_header_t h[2] = {{"ce_id", id, id_len}, {"ce_source", source, source ? strlen(source) : 0}};
    lev_msg_t m = {.topic = topic,
                   .partition = 0,
                   .key = order_id,
                   .key_len = strlen(order_id),
                   .value = buf,
                   .value_len = len,
                   .headers = h,
                   .nheaders = source ? 2 : 1};
    CHECK(lev_producer_send(p, &m, NULL, NULL, &err) == 0);
    free(buf);
    avro_value_decref(&v);
    json_decref(j);
}

/* CloudEvents identifies an event by source and id together: events that
 * share a long id prefix, or an id under two sources, are all handled, each
 * once; ids that cannot key an event (empty, too long, control characters,
 * in the id or the source) are dead-lettered with the reason. */
static void event_ids_key_with_their_source_and_bad_ids_are_dead_lettered(void)
{
    run_t r;
    run_init(&r, "it-ids");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    lev_schemas_t *schemas = lev_schemas_new();
    lev_error_t err;
    REQUIRE(lev_schemas_load_path(schemas, strchr(r.e_schemas, '=') + 1, &err) == 0);
    lev_codec_t *codec = lev_codec_new(schemas, NULL);
    const lev_schema_t *os = lev_schemas_find(schemas, "shop.order.OrderPlaced");
    lev_config_t conf;
    lev_test_config(&conf, "it-ids");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    REQUIRE(p && codec && os);

    enum { GOOD = 6, BAD = 5 };
    static char good[GOOD][LEV_UUID_STR_LEN], bad[BAD][LEV_UUID_STR_LEN];
    for (int i = 0; i < GOOD; i++)
        lev_uuid4(good[i]);
    for (int i = 0; i < BAD; i++)
        lev_uuid4(bad[i]);
    char long_a[201], long_b[201], too_long[LEV_EVENT_ID_MAX + 2];
    memset(long_a, 'x', 199);
    memcpy(long_b, long_a, 199);
    long_a[199] = 'a';
    long_b[199] = 'b';
    long_a[200] = long_b[200] = '\0';
    memset(too_long, 'y', LEV_EVENT_ID_MAX + 1);
    too_long[LEV_EVENT_ID_MAX + 1] = '\0';
    /* ids sharing their first 199 characters, each under one source */
    send_with_id(p, codec, os, r.in, good[0], 0, long_a, strlen(long_a), "/tests");
    send_with_id(p, codec, os, r.in, good[1], 1, long_b, strlen(long_b), "/tests");
    /* one id under two sources, and under none */
    send_with_id(p, codec, os, r.in, good[2], 2, "shared-id", 9, "/shop-a");
    send_with_id(p, codec, os, r.in, good[3], 3, "shared-id", 9, "/shop-b");
    send_with_id(p, codec, os, r.in, good[4], 4, "shared-id", 9, NULL);
    /* the longest id allowed */
    send_with_id(p, codec, os, r.in, good[5], 5, too_long, LEV_EVENT_ID_MAX, "/tests");
    /* ids that cannot key an event */
    send_with_id(p, codec, os, r.in, bad[0], 6, "", 0, "/tests");
    send_with_id(p, codec, os, r.in, bad[1], 7, too_long, LEV_EVENT_ID_MAX + 1, "/tests");
    send_with_id(p, codec, os, r.in, bad[2], 8, "id\r\n", 4, "/tests");
    send_with_id(p, codec, os, r.in, bad[3], 9, "ab\0cd", 5, "/tests");
    send_with_id(p, codec, os, r.in, bad[4], 10, "fine-id", 7, "/tests\x7f");
    CHECK(lev_producer_flush(p, 10000) == 0);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);

    pid_t w = run_start(&r, NULL);
    CHECK(lev_test_wait_lines(r.effect, GOOD, 60000) >= GOOD);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(r.dlq, BAD, 60000, &dl);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    CHECK_INT(nh, ==, GOOD); /* each handled, once */
    CHECK_INT(lev_test_missing(good, GOOD, handled, nh), ==, 0);
    CHECK_INT(ndl, ==, BAD);
    const char *why[BAD] = {"ce_id is empty", "ce_id is 257 bytes long, more than 256",
                            "ce_id holds the control character 0x0d at byte 2",
                            "ce_id holds the control character 0x00 at byte 2",
                            "ce_source holds the control character 0x7f at byte 6"};
    for (size_t i = 0; i < ndl && ndl == BAD; i++) {
        char b[512];
        CHECK_STR(dl[i].key, bad[i]);
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ERROR_CLASS, b, sizeof b), "bad-id");
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ERROR_MESSAGE, b, sizeof b), why[i]);
    }
    lev_test_records_free(dl, ndl);
    lev_test_strings_free(handled, nh);
}

static void retry_partition_waiting_for_its_due_time_survives_a_rebalance(void)
{
    enum { N = 5 };
    run_t r;
    run_init(&r, "it-rebalance");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    REQUIRE(lev_test_create_topic(r.out, 1) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N, ids, sku_bad_first) == 0);
    /* the first event fails once, waits 4 s in <group>.retry.1, then
     * succeeds; the first member's counters go to a file */
    char stats[300], e_stats[320];
    snprintf(stats, sizeof stats, "%s/%s.stats", lev_test_env("TMPDIR", "/tmp"), r.in);
    snprintf(e_stats, sizeof e_stats, "STATS_FILE=%s", stats);
    unlink(stats);
    char *extra[] = {"FAIL_MODE=transient:1", "FAIL_SKU=sku-bad", "LEV_RETRY_ATTEMPTS=1",
                     "LEV_RETRY_DELAYS=4s", NULL};
    char *extra_a[] = {extra[0], extra[1], extra[2], extra[3], e_stats, NULL};
    pid_t a = run_start(&r, extra_a);
    CHECK(lev_test_wait_lines(r.effect, N - 1, 30000) >= N - 1);
    char rt[200];
    lev_retry_topic_name(r.group, 1, rt, sizeof rt);
    lev_test_record_t *rr;
    size_t nr = lev_test_read_topic(rt, 1, 10000, &rr);
    CHECK_INT(nr, ==, 1);
    lev_test_records_free(rr, nr);
    /* once the first member has taken the retry record (one record more
     * than the topic had), which is not due, it holds it: the retry
     * partition is paused for the due time. A second member joins now:
     * every partition is revoked and assigned again */
    CHECK(wait_stat(stats, "received", N + 1, 30000) == 0);
    pid_t b = run_start(&r, extra);
    CHECK(wait_lines_with(r.log, "\"msg\":\"partitions revoked\"", 1, 60000) == 0);
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    if (lev_test_missing(ids, 1, handled, nh) == 0) /* a stall outlasted the due time */
        fprintf(stderr, "note: the retried event was handled before the rebalance came\n");
    lev_test_strings_free(handled, nh);
    size_t nout;
    char **out = lev_test_read_order_ids(r.out, N, 30000, &nout);
    CHECK_INT(lev_test_missing(ids, N, out, nout), ==, 0);
    CHECK_INT(lev_test_stop_worker(b), ==, 0);
    CHECK_INT(lev_test_stop_worker(a), ==, 0);
    lev_test_strings_free(out, nout);
}

static void a_retry_policy_per_event_type_overrides_the_workers(void)
{
    run_t r;
    run_init(&r, "it-policy");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    static char ids[1][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, 1, ids, NULL) == 0);
    /* the worker's policy would wait minutes; OrderPlaced's own has no levels */
    char *extra[] = {"FAIL_MODE=transient",    "LEV_RETRY_ATTEMPTS=5", "LEV_RETRY_DELAYS=5m,5m",
                     "ORDER_RETRY_ATTEMPTS=2", "ORDER_RETRY_DELAYS=",  NULL};
    int64_t t0 = lev_mono_ms();
    pid_t w = run_start(&r, extra);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(r.dlq, 1, 30000, &dl);
    CHECK_INT(ndl, ==, 1);
    CHECK(lev_mono_ms() - t0 < 30000);
    char b[64];
    if (ndl == 1) {
        CHECK_STR(lev_test_header(&dl[0], LEV_H_ERROR_CLASS, b, sizeof b), "retries-exhausted");
        CHECK_STR(lev_test_header(&dl[0], LEV_H_ATTEMPTS, b, sizeof b), "2");
    }
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    lev_test_records_free(dl, ndl);
}

/* ---------------------------------------------------------------------- */

static size_t frame(const lev_schema_t *s, uint64_t fp, const void *body, size_t len,
                    unsigned char *out)
{
    if (s)
        fp = lev_schema_fingerprint(s);
    out[0] = 0xC3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(fp >> (8 * i));
    memcpy(out + 10, body, len);
    return 10 + len;
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static void hostile_bytes_are_dead_lettered_by_class_and_good_events_around_them_are_handled(void)
{
    run_t r;
    run_init(&r, "it-hostile");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    REQUIRE(lev_test_create_topic(r.out, 1) == 0);

    /* schemas as the worker sees them, plus the hostile test schema */
    lev_schemas_t *schemas = lev_schemas_new();
    lev_error_t err;
    REQUIRE(lev_schemas_load_path(schemas, strchr(r.e_schemas, '=') + 1, &err) == 0);
    const lev_schema_t *hs = lev_schemas_find(schemas, "test.worker.Hostile");
    const lev_schema_t *os = lev_schemas_find(schemas, "shop.order.OrderPlaced");
    REQUIRE(hs && os);

    /* a valid order's bytes, to truncate */
    lev_codec_t *codec = lev_codec_new(schemas, NULL);
    json_t *j = lev_test_order_json("5f1b1f5e-0000-4000-8000-000000000001", 0);
    avro_value_t v;
    void *good = NULL;
    size_t good_len = 0;
    REQUIRE(lev_codec_from_json(codec, os, j, &v, &err) == 0);
    REQUIRE(lev_codec_encode(codec, os, &v, &good, &good_len, &err) == 0);
    avro_value_decref(&v);
    json_decref(j);

    static const unsigned char huge_array[] = {0x00, 0x80, 0x88, 0xDE, 0xBE, 0x01};
    static const unsigned char bad_enum[] = {0x0A, 0x00};
    unsigned char bufs[5][256];
    size_t lens[5];
    const char *classes[5] = {"decode", "decode", "unknown-schema", "decode", "decode"};
    memcpy(bufs[0], "this is not avro at all", 23);
    lens[0] = 23;
    memcpy(bufs[1], good, good_len / 2);
    lens[1] = good_len / 2;
    lens[2] = frame(NULL, 0x0123456789abcdefULL, (const unsigned char *)good + 10, good_len - 10,
                    bufs[2]);
    lens[3] = frame(hs, 0, huge_array, sizeof huge_array, bufs[3]);
    lens[4] = frame(hs, 0, bad_enum, sizeof bad_enum, bufs[4]);
    free(good);
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);

    /* good, bad, good, bad ... on one partition */
    enum { GOOD = 6 };
    static char ids[GOOD][LEV_UUID_STR_LEN];
    lev_config_t conf;
    lev_test_config(&conf, "it-hostile");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    REQUIRE(p);
    for (int i = 0; i < 5; i++) {
        REQUIRE(lev_test_publish_orders(r.in, 1, &ids[i], NULL) == 0);
        char bad_id[32];
        snprintf(bad_id, sizeof bad_id, "bad-%d", i);
        lev_header_t h[] = {{"ce_id", bad_id, strlen(bad_id)}};
        lev_msg_t m = {.topic = r.in,
                       .partition = 0,
                       .key = "k",
                       .key_len = 1,
                       .value = bufs[i],
                       .value_len = lens[i],
                       .headers = h,
                       .nheaders = 1};
        CHECK(lev_producer_send(p, &m, NULL, NULL, &err) == 0);
        CHECK(lev_producer_flush(p, 10000) == 0);
    }
    REQUIRE(lev_test_publish_orders(r.in, 1, &ids[5], NULL) == 0);
    lev_producer_destroy(p);

    pid_t w = run_start(&r, NULL);
    size_t nout;
    char **out = lev_test_read_order_ids(r.out, GOOD, 60000, &nout);
    CHECK_INT(lev_test_missing(ids, GOOD, out, nout), ==, 0);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(r.dlq, 5, 60000, &dl);
    CHECK_INT(ndl, ==, 5);
    long rss = peak_rss_kb(w);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    for (size_t i = 0; i < ndl && ndl == 5; i++) {
        char b[512], want[32];
        snprintf(want, sizeof want, "bad-%zu", i);
        CHECK_STR(lev_test_header(&dl[i], "ce_id", b, sizeof b), want);
        CHECK_STR(lev_test_header(&dl[i], LEV_H_ERROR_CLASS, b, sizeof b), classes[i]);
        CHECK(lev_test_header(&dl[i], LEV_H_ERROR_MESSAGE, b, sizeof b)[0] != '\0');
        /* the original bytes, untouched */
        CHECK_INT(dl[i].value_len, ==, lens[i]);
        CHECK(dl[i].value_len == lens[i] && memcmp(dl[i].value, bufs[i], lens[i]) == 0);
    }
    /* the 200-million-item array was refused, not allocated */
    fprintf(stderr, "worker peak RSS: %ld kB\n", rss);
    CHECK(rss > 0 && rss < 150 * 1024);
    lev_test_records_free(dl, ndl);
    lev_test_strings_free(out, nout);
}

/* ---------------------------------------------------------------------- */

static void same_event_delivered_twice_has_its_side_effect_once(void)
{
    run_t r;
    run_init(&r, "it-dup");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    static char ids[3][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, 3, ids, NULL) == 0);
    pid_t w = run_start(&r, NULL);
    CHECK(lev_test_wait_lines(r.effect, 3, 30000) == 3);
    /* the same events again (a redelivery, a replay, a retried publish):
     * the same source and id */
    lev_test_record_t *recs;
    size_t n = lev_test_read_topic(r.in, 3, 10000, &recs);
    CHECK_INT(n, ==, 3);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-dup");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    REQUIRE(p);
    for (size_t i = 0; i < n; i++) {
        char id[64], source[64];
        lev_test_header(&recs[i], "ce_id", id, sizeof id);
        lev_test_header(&recs[i], "ce_source", source, sizeof source);
        /* the same event: the same source and id (the idempotency key) */
        lev_header_t h[] = {{"ce_id", id, strlen(id)}, {"ce_source", source, strlen(source)}};
        lev_msg_t m = {.topic = r.in,
                       .partition = 0,
                       .key = recs[i].key,
                       .key_len = strlen(recs[i].key),
                       .value = recs[i].value,
                       .value_len = recs[i].value_len,
                       .headers = h,
                       .nheaders = 2};
        CHECK(lev_producer_send(p, &m, NULL, NULL, &err) == 0);
    }
    CHECK(lev_producer_flush(p, 10000) == 0);
    lev_producer_destroy(p);
    lev_test_records_free(recs, n);
    /* every record of the topic finished (committed): the worker has seen
     * them all; stop it and count */
    CHECK(lev_test_wait_caught_up(r.group, r.in, 30000) == 0);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    CHECK(file_contains(r.log, "\"msg\":\"duplicate skipped\""));
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    CHECK_INT(nh, ==, 3);
    lev_test_strings_free(handled, nh);
}

static void kill9_between_claim_and_done_loses_nothing_and_repeats_no_side_effect(void)
{
    run_t r;
    run_init(&r, "it-claimkill");
    REQUIRE(lev_test_create_topic(r.in, 1) == 0);
    REQUIRE(lev_test_create_topic(r.out, 1) == 0);
    static char ids[1][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, 1, ids, NULL) == 0);
    char *first[] = {"EFFECT_ONCE=1", "AFTER_EFFECT_DELAY_MS=30000", "LEV_IDEMPOTENCY_LEASE_MS=3s",
                     NULL};
    pid_t w = run_start(&r, first);
    /* the side effect is done; the claim is taken, not done */
    CHECK(lev_test_wait_lines(r.effect, 1, 30000) == 1);
    kill(w, SIGKILL);
    int status;
    CHECK(lev_test_wait(w, 10000, &status) == 0);

    char *second[] = {"EFFECT_ONCE=1", "LEV_IDEMPOTENCY_LEASE_MS=3s", NULL};
    w = run_start(&r, second);
    size_t nout;
    char **out = lev_test_read_order_ids(r.out, 1, 60000, &nout);
    CHECK_INT(lev_test_missing(ids, 1, out, nout), ==, 0);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    CHECK_INT(nh, ==, 1);
    lev_test_strings_free(handled, nh);
    lev_test_strings_free(out, nout);
}

/* ---------------------------------------------------------------------- */

static int redis_ctl(const char *verb, const char *dir, int port)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "REDIS_URL= '%s/tools/redis' %s --dir '%s' --port %d %s >&2",
             lev_test_env("LEV_SOURCE_DIR", "."), verb, dir, port,
             strcmp(verb, "start") == 0 ? "--persist" : "");
    return system(cmd);
}

/* Starts a Redis of its own in dir on a reserved port; when the port was
 * taken after all (bound by number since the reservation), again on
 * another one. Returns the port, or -1. */
static int redis_start_own(const char *dir)
{
    char out[320], log[320], cmd[1024];
    snprintf(out, sizeof out, "%s.start.out", dir);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    for (int attempt = 1; attempt <= 3; attempt++) {
        int port = lev_test_reserve_ports(1);
        if (port < 0)
            return -1;
        snprintf(cmd, sizeof cmd,
                 "REDIS_URL= '%s/tools/redis' start --dir '%s' --port %d --persist >'%s' 2>&1",
                 lev_test_env("LEV_SOURCE_DIR", "."), dir, port, out);
        unlink(log); /* what it says is about this attempt */
        int rc = system(cmd);
        FILE *f = fopen(out, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f))
            fputs(line, stderr);
        if (f)
            fclose(f);
        if (rc == 0)
            return port;
        if (!file_contains(out, "already in use") && !file_contains(log, "already in use"))
            return -1;
        fprintf(stderr, "port %d was taken after all; another one\n", port);
        redis_ctl("stop", dir, port);
    }
    return -1;
}

static void redis_outage_under_load_loses_and_skips_nothing_and_resumes_by_itself(void)
{
    enum { N = 1500, LATE = 300 }; /* LATE of them published while Redis is down */
    run_t r;
    run_init(&r, "it-redisdown");
    REQUIRE(lev_test_create_topic(r.in, 3) == 0);
    REQUIRE(lev_test_create_topic(r.out, 3) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N - LATE, ids, NULL) == 0);

    /* a Redis of its own, so stopping it disturbs no other test */
    char dir[256], url[128];
    snprintf(dir, sizeof dir, "%s/%s-redis", lev_test_env("TMPDIR", "/tmp"), r.in);
    int port = redis_start_own(dir);
    REQUIRE(port > 0);
    snprintf(url, sizeof url, "REDIS_URL=redis://127.0.0.1:%d/0", port);
    char *extra[] = {url, "HANDLE_DELAY_MS=2", NULL};
    pid_t w = run_start(&r, extra);
    CHECK(lev_test_wait_lines(r.effect, 200, 60000) >= 200);

    CHECK(redis_ctl("stop", dir, port) == 0);
    /* events that arrive while Redis is down (they also make the worker
     * call Redis, should it have finished the others meanwhile) */
    REQUIRE(lev_test_publish_orders(r.in, LATE, ids + (N - LATE), NULL) == 0);
    /* the worker notices... */
    CHECK(wait_lines_with(r.log, "\"msg\":\"idempotency store unavailable; pausing\"", 1, 60000) ==
          0);
    size_t at_notice = lev_test_wait_lines(r.effect, N, 0);
    /* ...and the outage lasts while it fails to reach Redis five times
     * (about 3 s of its backoff) */
    CHECK(wait_lines_with(r.log, "\"msg\":\"waiting for the idempotency store\"", 5, 60000) == 0);
    size_t during = lev_test_wait_lines(r.effect, N, 0);
    /* at most the batch in hand (claimed before) finished after it noticed */
    CHECK(during - at_notice <= 500);
    CHECK(during < N);
    /* no event that came during the outage was handled without its claim */
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    CHECK_INT(LATE - lev_test_missing(ids + (N - LATE), LATE, handled, nh), ==, 0);
    lev_test_strings_free(handled, nh);
    CHECK(waitpid(w, NULL, WNOHANG) == 0); /* still running */

    CHECK(redis_ctl("start", dir, port) == 0);
    size_t nout = 0;
    char **out = NULL;
    size_t missing = N;
    int64_t deadline = lev_mono_ms() + 120000;
    while (missing && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(1000);
        if (out)
            lev_test_strings_free(out, nout);
        out = lev_test_read_order_ids(r.out, 0, 30000, &nout);
        missing = lev_test_missing(ids, N, out, nout);
    }
    CHECK_INT(missing, ==, 0);
    CHECK(file_contains(r.log, "\"msg\":\"idempotency store is back\""));
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    redis_ctl("stop", dir, port);
    lev_test_strings_free(out, nout);
}

static void redis_round_trips_are_per_batch_not_per_message(void)
{
    enum { N = 1000 };
    run_t r;
    run_init(&r, "it-roundtrips");
    REQUIRE(lev_test_create_topic(r.in, 3) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N, ids, NULL) == 0);
    char *extra[] = {NULL};
    pid_t w = run_start(&r, extra);
    CHECK(lev_test_wait_lines(r.effect, N, 60000) == N);
    CHECK_INT(lev_test_stop_worker(w), ==, 0);
    /* the worker prints its counters when it stops */
    FILE *f = fopen(r.log, "r");
    char line[4096];
    unsigned long long batches = 0, trips = 0, handled = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"msg\":\"stats\"");
        if (s) {
            sscanf(strstr(line, "\"handled\":") + 10, "%llu", &handled);
            sscanf(strstr(line, "\"batches\":") + 10, "%llu", &batches);
            sscanf(strstr(line, "\"store_round_trips\":") + 20, "%llu", &trips);
        }
    }
    if (f)
        fclose(f);
    fprintf(stderr, "handled %llu in %llu batches with %llu Redis round trips\n", handled, batches,
            trips);
    CHECK_INT(handled, ==, N);
    CHECK(batches > 0);
    /* one claim and one completion per batch (plus the connection's setup) */
    CHECK(trips <= 2 * batches + 4);
    CHECK(trips < N / 5);
}

CHECK_MAIN(CASE(transient_failure_twice_then_success_is_handled_once_without_dead_letter),
           CASE(always_failing_event_passes_each_retry_level_when_due_and_is_dead_lettered),
           CASE(permanent_failure_is_dead_lettered_at_once),
           CASE(retry_partition_waiting_for_its_due_time_survives_a_rebalance),
           CASE(wire_integers_out_of_range_are_not_trusted),
           CASE(event_ids_key_with_their_source_and_bad_ids_are_dead_lettered),
           CASE(a_retry_policy_per_event_type_overrides_the_workers),
           CASE(hostile_bytes_are_dead_lettered_by_class_and_good_events_around_them_are_handled),
           CASE(same_event_delivered_twice_has_its_side_effect_once),
           CASE(kill9_between_claim_and_done_loses_nothing_and_repeats_no_side_effect),
           CASE(redis_outage_under_load_loses_and_skips_nothing_and_resumes_by_itself),
           CASE(redis_round_trips_are_per_batch_not_per_message))
