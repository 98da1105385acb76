/*
 * Batched service state against a real broker and Redis: the state of a
 * whole batch is read in one round trip and written in one more; a write
 * that loses its compare-and-set sends nothing and the event is handled
 * again; records of one key see each other's writes, in order. The worker
 * runs in a thread of the test; its handler appends the record's index to
 * the state of the record's key.
 */
#include "check.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#define N_MAX 600

typedef struct app_s {
    char in[96], out[128], group[128], prefix[160];
    size_t n;
    int nkeys;
    char ids[N_MAX][LEV_UUID_STR_LEN];
    atomic_int calls[N_MAX], committed[N_MAX], lost[N_MAX];
    long meddle;          /* this record's first call finds its key changed behind it, -1 none */
    int prefetch;         /* the worker prefetches the batch's keys (else reads them on demand) */
    lev_store_t *meddler; /* the "other writer" */
} app_t;

static long index_of(const app_t *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->ids[i], id) == 0)
            return (long)i;
    return -1;
}

typedef struct {
    app_t *a;
    long i;
} commit_arg_t;

static void on_commit(int committed, void *arg)
{
    commit_arg_t *c = arg;
    atomic_fetch_add(committed ? &c->a->committed[c->i] : &c->a->lost[c->i], 1);
    free(c);
}

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    app_t *a = opaque;
    const char *order_id;
    lev_error_t err;
    if (lev_value_get_string(&ev->value, "order_id", &order_id, NULL) != 0)
        return LEV_RESULT_PERMANENT;
    long i = index_of(a, order_id);
    if (i < 0)
        return LEV_RESULT_PERMANENT;
    int call = atomic_fetch_add(&a->calls[i], 1);
    char key[300], *cur = NULL, next[4096];
    snprintf(key, sizeof key, "%s%s", a->prefix, ev->key);
    if (lev_ctx_state_get(ctx, key, &cur, &err) != 0) {
        lev_ctx_set_error(ctx, "get: %s", err.text);
        return LEV_RESULT_TRANSIENT;
    }
    if (i == a->meddle && call == 0) /* someone else writes the key meanwhile */
        lev_store_set(a->meddler, key, "meddled", 0, NULL);
    snprintf(next, sizeof next, "%s%s%ld", cur ? cur : "", cur ? "," : "", i);
    commit_arg_t *c = malloc(sizeof *c);
    int rc = !c || lev_ctx_state_cas(ctx, key, cur, next, 0, &err) != 0;
    free(cur);
    if (!rc) {
        *c = (commit_arg_t){a, i};
        rc = lev_ctx_on_commit(ctx, on_commit, c, &err) != 0;
    }
    if (rc) {
        free(c);
        return LEV_RESULT_TRANSIENT;
    }
    return lev_test_emit_accepted(ctx, ev, a->out, ev->key) == 0 ? LEV_RESULT_OK
                                                                 : LEV_RESULT_PERMANENT;
}

/* Topics, and n orders over nkeys keys (record i has key "key-<i % nkeys>"). */
/* Publishes orders [from, to) (record i has key "key-<i % nkeys>"). */
static int publish_range(app_t *a, size_t from, size_t to)
{
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "test-publisher");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    int rc = p && codec && s ? 0 : -1;
    /* the handler finds a record by its id: known before it is sent */
    for (size_t i = from; i < to; i++)
        lev_uuid4(a->ids[i]);
    if (to > a->n)
        a->n = to;
    for (size_t i = from; i < to && rc == 0; i++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", (int)(i % (size_t)a->nkeys));
        json_t *j = lev_test_order_json(a->ids[i], (int)i);
        avro_value_t v;
        lev_event_meta_t meta = {.id = a->ids[i], .source = "/tests"};
        rc = lev_codec_from_json(codec, s, j, &v, &err);
        if (rc == 0) {
            rc = lev_producer_send_event(p, codec, a->in, key, s, &v, &meta, NULL, NULL, &err);
            avro_value_decref(&v);
        }
        json_decref(j);
    }
    if (rc == 0)
        rc = lev_producer_flush(p, 30000);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    return rc;
}

/* Topics, and n orders over nkeys keys. */
static int app_init(app_t *a, const char *name, size_t n, int nkeys)
{
    lev_error_t err;
    memset(a, 0, sizeof *a);
    lev_test_unique(name, a->in, sizeof a->in);
    snprintf(a->out, sizeof a->out, "%s-out", a->in);
    snprintf(a->group, sizeof a->group, "%s-group", a->in);
    snprintf(a->prefix, sizeof a->prefix, "%s:state:", a->in);
    a->nkeys = nkeys;
    a->meddle = -1;
    a->prefetch = 1;
    if (lev_test_create_topic(a->in, 1) != 0 || lev_test_create_topic(a->out, 1) != 0)
        return -1;
    a->meddler = lev_store_new(lev_test_env("REDIS_URL", "redis://127.0.0.1:6379/0"), 5000, &err);
    if (!a->meddler)
        return -1;
    return publish_range(a, 0, n);
}

typedef struct run_s {
    lev_test_run_t run; /* its worker, run.w */
    lev_worker_stats_t stats;
} run_t;

static int run_start(run_t *r, app_t *a)
{
    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    memset(r, 0, sizeof *r);
    lev_test_config(&conf, "it-state");
    lev_config_set_str(&conf.group_id, a->group);
    conf.retry.backoff_ms = 50;
    conf.retry.backoff_max_ms = 200;
    r->run.w = lev_worker_new(&conf, &err);
    lev_config_clear(&conf);
    if (!r->run.w || lev_worker_on(r->run.w, "shop.order.OrderPlaced", on_placed, a, &err) ||
        (a->prefetch &&
         lev_worker_state_prefetch(r->run.w, "shop.order.OrderPlaced", a->prefix, &err)) ||
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

/* Every input has exactly one output, and the out topic holds nothing else. */
static void check_outputs(const app_t *a)
{
    size_t nout;
    char **out = lev_test_read_order_ids(a->out, a->n, 30000, &nout);
    CHECK_INT(nout, ==, a->n);
    CHECK_INT(lev_test_distinct(out, nout), ==, a->n);
    lev_test_strings_free(out, nout);
}

/* The state of key-<k>, in *buf ("" when absent). */
static const char *state_of(const app_t *a, int k, char *buf, size_t size)
{
    char key[300], *v = NULL;
    snprintf(key, sizeof key, "%skey-%d", a->prefix, k);
    lev_store_get(a->meddler, key, &v, NULL);
    snprintf(buf, size, "%s", v ? v : "");
    free(v);
    return buf;
}

static void app_free(app_t *a)
{
    lev_store_destroy(a->meddler);
}

/* ---------------------------------------------------------------------- */

/* 500 records of 500 keys: the state costs two round trips per batch (a
 * read of all its keys, a pipeline of all its writes), however large the
 * batch, and each key ends holding its record's write. */
static void state_round_trips_per_batch_stay_constant_whatever_the_batch_size(void)
{
    enum { N = 500 };
    static app_t a;
    REQUIRE(app_init(&a, "it-state-trips", N, N) == 0);
    run_t r;
    REQUIRE(run_start(&r, &a) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r), ==, 0);
    check_outputs(&a);
    fprintf(stderr, "%d records in %llu batches: %llu state round trips\n", N,
            (unsigned long long)r.stats.batches, (unsigned long long)r.stats.state_round_trips);
    CHECK(r.stats.batches > 0);
    CHECK_INT(r.stats.state_round_trips, <=, 2 * r.stats.batches + 2);
    CHECK_INT(r.stats.state_round_trips, <, N / 5);
    CHECK_INT(r.stats.state_conflicts, ==, 0);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        char buf[64], want[16];
        snprintf(want, sizeof want, "%d", i);
        wrong += strcmp(state_of(&a, i, buf, sizeof buf), want) != 0;
        wrong += atomic_load(&a.calls[i]) != 1 || atomic_load(&a.committed[i]) != 1;
    }
    CHECK_INT(wrong, ==, 0);
    app_free(&a);
}

/* Another writer changes a key between the batch's read and its write: the
 * compare-and-set loses, the record's output is not sent, its commit
 * function hears so, and it is handled again on the key's new value. */
static void a_lost_compare_and_set_sends_nothing_and_handles_the_event_again(void)
{
    enum { N = 5 };
    static app_t a;
    REQUIRE(app_init(&a, "it-state-lost", N, N) == 0);
    a.meddle = 2;
    run_t r;
    REQUIRE(run_start(&r, &a) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r), ==, 0);
    check_outputs(&a); /* one output each: the lost call's never went out */
    CHECK_INT(r.stats.state_conflicts, ==, 1);
    CHECK_INT(atomic_load(&a.calls[2]), ==, 2);
    CHECK_INT(atomic_load(&a.lost[2]), ==, 1);
    CHECK_INT(atomic_load(&a.committed[2]), ==, 1);
    char buf[64];
    CHECK_STR(state_of(&a, 2, buf, sizeof buf), "meddled,2");
    CHECK_STR(state_of(&a, 3, buf, sizeof buf), "3");
    app_free(&a);
}

/* Records of one key in one batch: each sees the writes of those before
 * it (a later one waits until the earlier one's write is in), in order. */
static void records_of_one_key_see_each_others_writes_in_order(void)
{
    enum { N = 12, KEYS = 3 };
    static app_t a;
    REQUIRE(app_init(&a, "it-state-order", N, KEYS) == 0);
    run_t r;
    REQUIRE(run_start(&r, &a) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r), ==, 0);
    check_outputs(&a);
    CHECK_INT(r.stats.state_conflicts, ==, 0);
    char buf[256];
    CHECK_STR(state_of(&a, 0, buf, sizeof buf), "0,3,6,9");
    CHECK_STR(state_of(&a, 1, buf, sizeof buf), "1,4,7,10");
    CHECK_STR(state_of(&a, 2, buf, sizeof buf), "2,5,8,11");
    for (int i = 0; i < N; i++)
        CHECK_INT(atomic_load(&a.calls[i]), ==, 1);
    app_free(&a);
}

/* A worker reading its keys on demand (no prefetch) reads them afresh in
 * each batch: a key changed outside between two batches is seen changed,
 * no compare-and-set is lost to a stale copy. */
static void keys_read_on_demand_are_read_afresh_in_each_batch(void)
{
    static app_t a;
    REQUIRE(app_init(&a, "it-state-fresh", 1, 1) == 0);
    a.prefetch = 0;
    run_t r;
    REQUIRE(run_start(&r, &a) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, 1, 60000) == 0);
    char buf[64], key[300];
    CHECK_STR(state_of(&a, 0, buf, sizeof buf), "0");
    snprintf(key, sizeof key, "%skey-0", a.prefix);
    REQUIRE(lev_store_set(a.meddler, key, "outside", 0, NULL) == 0);
    REQUIRE(publish_range(&a, 1, 2) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, 2, 60000) == 0);
    CHECK_INT(run_stop(&r), ==, 0);
    CHECK_STR(state_of(&a, 0, buf, sizeof buf), "outside,1");
    CHECK_INT(r.stats.state_conflicts, ==, 0);
    CHECK_INT(atomic_load(&a.calls[1]), ==, 1);
    app_free(&a);
}

CHECK_MAIN(CASE(state_round_trips_per_batch_stay_constant_whatever_the_batch_size),
           CASE(a_lost_compare_and_set_sends_nothing_and_handles_the_event_again),
           CASE(records_of_one_key_see_each_others_writes_in_order),
           CASE(keys_read_on_demand_are_read_afresh_in_each_batch))
