/*
 * Deferred records and circuit breakers against a real broker and Redis.
 * The handler defers every record to a "dependency": a thread that resumes
 * each deferral after a delay, succeeding or failing as the case asks. The
 * worker runs in a thread of the test.
 */
#include "check.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#define KEYS_MAX 64
#define N_MAX 200

/* ---- the dependency: resumes deferrals from its own thread ---- */

typedef struct job_s {
    lev_deferral_t *d;
    int64_t due;
    long idx;
    struct job_s *next;
} job_t;

typedef struct app_s app_t;

typedef struct dep_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *jobs;
    int stop;
    pthread_t thread;
    int delay_ms;
    long slow_idx; /* this record's call takes slow_ms instead, -1 none */
    int slow_ms;
    lev_resume_fn fn;
} dep_t;

struct app_s {
    char in[96], out[128], group[128], dlq[160];
    size_t n;
    char ids[N_MAX][LEV_UUID_STR_LEN];
    int key_of[N_MAX];
    int nkeys;
    dep_t dep;
    lev_breaker_t *breaker;
    /* what happened, per record and per key */
    atomic_int handler_calls[N_MAX], ok_resumes[N_MAX];
    atomic_int deferrals, resumes, releases, failed_resumes;
    atomic_int key_inflight[KEYS_MAX], key_overlap;
    pthread_mutex_t seq_mu;
    long seq[KEYS_MAX][N_MAX];
    int nseq[KEYS_MAX];
    atomic_int down;     /* the dependency fails every call */
    long transient_once; /* index failing on its first resume, -1 none */
    long permanent;      /* index failing for good, -1 none */
    atomic_int transient_done;
};

static void *dep_main(void *arg)
{
    dep_t *dep = arg;
    pthread_mutex_lock(&dep->mu);
    while (!dep->stop || dep->jobs) {
        if (!dep->jobs) {
            pthread_cond_wait(&dep->cv, &dep->mu);
            continue;
        }
        job_t **first = &dep->jobs; /* the earliest due */
        for (job_t **at = &dep->jobs; *at; at = &(*at)->next)
            if ((*at)->due < (*first)->due)
                first = at;
        job_t *j = *first;
        int64_t now = lev_mono_ms();
        if (j->due > now && !dep->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (j->due - now) * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&dep->cv, &dep->mu, &ts);
            continue;
        }
        *first = j->next;
        pthread_mutex_unlock(&dep->mu);
        lev_deferral_resume(j->d, dep->fn, j);
        pthread_mutex_lock(&dep->mu);
    }
    pthread_mutex_unlock(&dep->mu);
    return NULL;
}

static void dep_submit(dep_t *dep, lev_deferral_t *d, long idx)
{
    job_t *j = calloc(1, sizeof *j);
    j->d = d;
    j->idx = idx;
    j->due = lev_mono_ms() + (idx == dep->slow_idx ? dep->slow_ms : dep->delay_ms);
    pthread_mutex_lock(&dep->mu);
    job_t **at = &dep->jobs;
    while (*at)
        at = &(*at)->next;
    *at = j;
    pthread_cond_signal(&dep->cv);
    pthread_mutex_unlock(&dep->mu);
}

/* Resumes what is left at once and ends the thread. */
static void dep_stop(dep_t *dep)
{
    pthread_mutex_lock(&dep->mu);
    dep->stop = 1;
    pthread_cond_signal(&dep->cv);
    pthread_mutex_unlock(&dep->mu);
    pthread_join(dep->thread, NULL);
}

/* ---- the handler and its resume function ---- */

static long index_of(const app_t *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->ids[i], id) == 0)
            return (long)i;
    return -1;
}

static lev_result_t on_resume(lev_ctx_t *ctx, const lev_event_t *ev, void *arg);

static app_t *the_app; /* the resume function's app (one case at a time) */

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    app_t *a = opaque;
    const char *order_id;
    if (lev_value_get_string(&ev->value, "order_id", &order_id, NULL) != 0)
        return LEV_RESULT_PERMANENT;
    long i = index_of(a, order_id);
    if (i < 0)
        return LEV_RESULT_PERMANENT;
    atomic_fetch_add(&a->handler_calls[i], 1);
    int k = a->key_of[i];
    if (atomic_fetch_add(&a->key_inflight[k], 1) != 0)
        atomic_fetch_add(&a->key_overlap, 1);
    pthread_mutex_lock(&a->seq_mu);
    if (a->nseq[k] < N_MAX)
        a->seq[k][a->nseq[k]++] = i;
    pthread_mutex_unlock(&a->seq_mu);
    lev_deferral_t *d = lev_ctx_defer(ctx);
    if (!d) {
        atomic_fetch_sub(&a->key_inflight[k], 1);
        return LEV_RESULT_TRANSIENT;
    }
    atomic_fetch_add(&a->deferrals, 1);
    dep_submit(&a->dep, d, i);
    return LEV_RESULT_DEFERRED;
}

static lev_result_t on_resume(lev_ctx_t *ctx, const lev_event_t *ev, void *arg)
{
    job_t *j = arg;
    app_t *a = the_app;
    long i = j->idx;
    free(j);
    atomic_fetch_sub(&a->key_inflight[a->key_of[i]], 1);
    if (!ctx) { /* the worker stopped before it could resume: release only */
        atomic_fetch_add(&a->releases, 1);
        return LEV_RESULT_TRANSIENT;
    }
    atomic_fetch_add(&a->resumes, 1);
    if (atomic_load(&a->down)) {
        atomic_fetch_add(&a->failed_resumes, 1);
        lev_breaker_failure(a->breaker, "the dependency is down");
        lev_ctx_set_error(ctx, "the dependency is down");
        return LEV_RESULT_TRANSIENT;
    }
    lev_breaker_success(a->breaker);
    if (i == a->transient_once && atomic_fetch_add(&a->transient_done, 1) == 0) {
        lev_ctx_set_error(ctx, "a transient failure on request");
        return LEV_RESULT_TRANSIENT;
    }
    if (i == a->permanent) {
        lev_ctx_set_error(ctx, "a permanent failure on request");
        return LEV_RESULT_PERMANENT;
    }
    if (lev_test_emit_accepted(ctx, ev, a->out, ev->key) != 0)
        return LEV_RESULT_PERMANENT;
    atomic_fetch_add(&a->ok_resumes[i], 1);
    return LEV_RESULT_OK;
}

/* ---- set-up ---- */

/* Topics, and n orders over nkeys keys (record i has key "key-<i % nkeys>"). */
static int app_init(app_t *a, const char *name, size_t n, int nkeys, int partitions)
{
    memset(a, 0, sizeof *a);
    the_app = a;
    lev_test_unique(name, a->in, sizeof a->in);
    snprintf(a->out, sizeof a->out, "%s-out", a->in);
    snprintf(a->group, sizeof a->group, "%s-group", a->in);
    lev_dlq_topic_name(a->group, a->dlq, sizeof a->dlq);
    a->n = n;
    a->nkeys = nkeys;
    a->transient_once = a->permanent = -1;
    pthread_mutex_init(&a->seq_mu, NULL);
    pthread_mutex_init(&a->dep.mu, NULL);
    pthread_cond_init(&a->dep.cv, NULL);
    a->dep.fn = on_resume;
    a->dep.delay_ms = 100;
    a->dep.slow_idx = -1;
    if (lev_test_create_topic(a->in, partitions) != 0 ||
        lev_test_create_topic(a->out, partitions) != 0)
        return -1;

    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    lev_test_config(&conf, "test-publisher");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    if (!p || !codec || !s) {
        fprintf(stderr, "publisher: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char key[32];
        a->key_of[i] = (int)(i % (size_t)nkeys);
        snprintf(key, sizeof key, "key-%d", a->key_of[i]);
        lev_uuid4(a->ids[i]);
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
    if (rc != 0)
        fprintf(stderr, "publish: %s\n", lev_error_format(&err, buf, sizeof buf));
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    return rc;
}

static void app_free(app_t *a)
{
    pthread_mutex_destroy(&a->seq_mu);
    pthread_mutex_destroy(&a->dep.mu);
    pthread_cond_destroy(&a->dep.cv);
}

typedef struct run_s {
    lev_test_run_t run; /* its worker, run.w */
    lev_worker_stats_t stats;
} run_t;

typedef struct opts_s {
    int max_deferred;
    int shutdown_ms;
    const lev_breaker_conf_t *breaker;
    int attempts;
    const char *delays;
    int lease_ms;
} opts_t;

/* Starts the dependency and a worker of the app's group in threads. */
static int run_start(run_t *r, app_t *a, const opts_t *o)
{
    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    memset(r, 0, sizeof *r);
    a->dep.stop = 0;
    if (pthread_create(&a->dep.thread, NULL, dep_main, &a->dep) != 0)
        return -1;
    lev_test_config(&conf, "it-defer");
    lev_config_set_str(&conf.group_id, a->group);
    conf.retry.backoff_ms = 50;
    conf.retry.backoff_max_ms = 200;
    conf.shutdown_timeout_ms = o && o->shutdown_ms ? o->shutdown_ms : 5000;
    if (o && o->max_deferred)
        conf.max_deferred = o->max_deferred;
    if (o && o->attempts)
        conf.retry.attempts = o->attempts;
    if (o && o->lease_ms)
        conf.lease_ms = o->lease_ms;
    if (o && o->delays) {
        conf.retry.levels = 1;
        conf.retry.delays_ms[0] = 1000;
    }
    r->run.w = lev_worker_new(&conf, &err);
    lev_config_clear(&conf);
    if (!r->run.w || lev_worker_on(r->run.w, "shop.order.OrderPlaced", on_placed, a, &err) ||
        lev_worker_subscribe(r->run.w, a->in, &err) ||
        lev_worker_declare_output(r->run.w, a->out, &err)) {
        fprintf(stderr, "worker: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    if (o && o->breaker) {
        a->breaker = lev_worker_breaker(r->run.w, "dependency", o->breaker, &err);
        if (!a->breaker ||
            lev_worker_needs(r->run.w, "shop.order.OrderPlaced", a->breaker, &err) != 0) {
            fprintf(stderr, "breaker: %s\n", lev_error_format(&err, buf, sizeof buf));
            return -1;
        }
    }
    return lev_test_run_start(&r->run, r->run.w);
}

/* Stops the worker, then the dependency (whose last resumes come after
 * run returned), then destroys the worker. */
static int run_stop(run_t *r, app_t *a)
{
    lev_worker_stop(r->run.w);
    lev_test_run_join(&r->run);
    dep_stop(&a->dep);
    lev_worker_stats(r->run.w, &r->stats);
    lev_worker_destroy(r->run.w);
    r->run.w = NULL;
    a->breaker = NULL;
    return r->run.rc;
}

/* Every input has exactly one output, and the out topic holds nothing else. */
static void check_outputs(const app_t *a, size_t expect)
{
    size_t nout;
    char **out = lev_test_read_order_ids(a->out, expect, 30000, &nout);
    CHECK_INT(nout, ==, expect);
    CHECK_INT(lev_test_distinct(out, nout), ==, expect);
    lev_test_strings_free(out, nout);
}

static size_t dlq_count(const app_t *a)
{
    lev_test_record_t *recs;
    size_t n = lev_test_read_topic(a->dlq, 0, 3000, &recs);
    lev_test_records_free(recs, n);
    return n;
}

/* ---------------------------------------------------------------------- */

static void deferred_records_run_concurrently_and_keep_the_order_of_each_key(void)
{
    enum { N = 96, KEYS = 12 };
    static app_t a;
    REQUIRE(app_init(&a, "it-defer-order", N, KEYS, 3) == 0);
    a.dep.delay_ms = 150;
    run_t r;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    check_outputs(&a, N);

    /* each handled once; never two of one key at once; each key in order */
    for (size_t i = 0; i < N; i++)
        CHECK_INT(atomic_load(&a.handler_calls[i]), ==, 1);
    CHECK_INT(atomic_load(&a.key_overlap), ==, 0);
    for (int k = 0; k < KEYS; k++) {
        CHECK_INT(a.nseq[k], ==, N / KEYS);
        for (int s = 1; s < a.nseq[k]; s++)
            CHECK_INT(a.seq[k][s - 1], <, a.seq[k][s]);
    }
    /* records of different keys waited side by side: one key per
     * dependency call at most, but many keys at once */
    fprintf(stderr, "deferred at once: %llu\n", (unsigned long long)r.stats.deferred_peak);
    CHECK_INT(r.stats.deferred_peak, >=, KEYS / 2);
    CHECK_INT(r.stats.deferred_peak, <=, KEYS);
    CHECK_INT(r.stats.deferred, ==, 0);
    int64_t committed[3];
    CHECK(lev_test_committed(a.group, a.in, 3, committed) == 0);
    CHECK_INT(committed[0] + committed[1] + committed[2], ==, N);
    app_free(&a);
}

static void the_deferral_bound_pauses_fetching(void)
{
    enum { N = 60 };
    static app_t a;
    REQUIRE(app_init(&a, "it-defer-bound", N, N, 2) == 0);
    a.dep.delay_ms = 30;
    run_t r;
    opts_t o = {.max_deferred = 4};
    REQUIRE(run_start(&r, &a, &o) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    check_outputs(&a, N);
    fprintf(stderr, "deferred at once: %llu\n", (unsigned long long)r.stats.deferred_peak);
    CHECK_INT(r.stats.deferred_peak, <=, 4);
    CHECK_INT(r.stats.deferred_peak, >=, 2);
    for (size_t i = 0; i < N; i++)
        CHECK_INT(atomic_load(&a.ok_resumes[i]), ==, 1);
    app_free(&a);
}

static void resumed_failures_are_retried_or_dead_lettered_as_a_handler_s(void)
{
    enum { N = 20 };
    static app_t a;
    REQUIRE(app_init(&a, "it-defer-fail", N, 5, 1) == 0);
    a.transient_once = 3;
    a.permanent = 7;
    run_t r;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    check_outputs(&a, N - 1);
    CHECK_INT(r.stats.retried_inprocess, >=, 1);
    CHECK_INT(r.stats.dead_lettered, ==, 1);
    CHECK_INT(atomic_load(&a.handler_calls[3]), ==, 2); /* handled again after the failure */
    CHECK_INT(atomic_load(&a.ok_resumes[3]), ==, 1);
    CHECK_INT(atomic_load(&a.ok_resumes[7]), ==, 0);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(a.dlq, 1, 10000, &dl);
    CHECK_INT(ndl, ==, 1);
    if (ndl == 1) {
        char b[256];
        CHECK_STR(lev_test_header(&dl[0], "ce_id", b, sizeof b), a.ids[7]);
        CHECK_STR(lev_test_header(&dl[0], LEV_H_ERROR_CLASS, b, sizeof b), "handler");
        CHECK_STR(lev_test_header(&dl[0], LEV_H_ERROR_MESSAGE, b, sizeof b),
                  "a permanent failure on request");
    }
    lev_test_records_free(dl, ndl);
    /* no effect twice: every OK resume once, the records after a retried
     * one in its partition included */
    for (size_t i = 0; i < N; i++)
        CHECK_INT(atomic_load(&a.ok_resumes[i]), <=, 1);
    app_free(&a);
}

/* A record deferred for several leases while its partition is seeked back
 * to an earlier record (an in-process retry): fetched again meanwhile, it
 * finds its claim still held (the worker extends the leases of records at
 * work), waits, and is skipped as done once the deferred one finished. */
static void a_deferral_longer_than_the_lease_keeps_its_claim(void)
{
    enum { N = 2 };
    static app_t a;
    REQUIRE(app_init(&a, "it-defer-lease", N, N, 1) == 0);
    a.transient_once = 0; /* fails on its first resume: the partition goes back to it */
    a.dep.slow_idx = 1;
    a.dep.slow_ms = 3000; /* five leases */
    run_t r;
    opts_t o = {.lease_ms = 600};
    REQUIRE(run_start(&r, &a, &o) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    check_outputs(&a, N);
    CHECK_INT(r.stats.retried_inprocess, >=, 1);
    CHECK_INT(atomic_load(&a.handler_calls[0]), ==, 2);
    CHECK_INT(atomic_load(&a.handler_calls[1]), ==, 1); /* not again while at work */
    CHECK_INT(atomic_load(&a.ok_resumes[1]), ==, 1);
    CHECK_INT(r.stats.skipped_duplicates, >=, 1); /* its copy, fetched again */
    app_free(&a);
}

/* Sends the dead letter dl again to topic as `evctl dlq redrive` does: the
 * same key, value and event headers, with where it was dead-lettered.
 * Returns 0 once acknowledged. */
static int redrive(const lev_test_record_t *dl, const char *dlq, const char *topic)
{
    char from[300], id[LEV_EVENT_ID_MAX + 1], source[256];
    snprintf(from, sizeof from, "%s/%d/%" PRId64, dlq, (int)dl->partition, dl->offset);
    lev_test_header(dl, "ce_id", id, sizeof id);
    lev_test_header(dl, "ce_source", source, sizeof source);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "test-redrive");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    if (!p)
        return -1;
    lev_header_t h[3] = {{"ce_id", id, strlen(id)},
                         {"ce_source", source, strlen(source)},
                         {LEV_H_REDRIVE_FROM, from, strlen(from)}};
    lev_msg_t m = {.topic = topic,
                   .partition = dl->partition,
                   .key = dl->key,
                   .key_len = dl->key ? strlen(dl->key) : 0,
                   .value = dl->value,
                   .value_len = dl->value_len,
                   .headers = h,
                   .nheaders = 3};
    int rc = lev_producer_send(p, &m, NULL, NULL, &err);
    if (rc == 0)
        rc = lev_producer_flush(p, 10000);
    lev_producer_destroy(p);
    return rc;
}

/* Record 1 is dead-lettered while record 0, before it in the partition, is
 * still deferred; then record 0 fails and its partition seeks back to it,
 * so record 1 is fetched again. Its claim says it was dead-lettered: it is
 * skipped, not handled and dead-lettered a second time. A redrive of it
 * (the same event, carrying evctl_redrive_from) is handled anew. */
static void a_dead_lettered_record_fetched_again_is_skipped_and_a_redrive_is_handled(void)
{
    enum { N = 3 };
    static app_t a;
    REQUIRE(app_init(&a, "it-defer-dead", N, N, 1) == 0);
    a.transient_once = 0;
    a.dep.slow_idx = 0;
    a.dep.slow_ms = 1000; /* record 1 is dead-lettered meanwhile */
    a.permanent = 1;
    run_t r;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(atomic_load(&a.handler_calls[0]), ==, 2);
    CHECK_INT(atomic_load(&a.handler_calls[1]), ==, 1);
    CHECK_INT(atomic_load(&a.handler_calls[2]), ==, 1);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(a.dlq, 1, 10000, &dl);
    CHECK_INT(ndl, ==, 1);
    lev_worker_stats_t st;
    lev_worker_stats(r.run.w, &st);
    CHECK_INT(st.skipped_duplicates, >=, 1); /* its copy was fetched again, and skipped */

    REQUIRE(ndl == 1);
    REQUIRE(redrive(&dl[0], a.dlq, a.in) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, N + 1, 30000) == 0);
    lev_test_record_t *dl2;
    size_t ndl2 = lev_test_read_topic(a.dlq, 2, 10000, &dl2);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    CHECK_INT(atomic_load(&a.handler_calls[1]), ==, 2); /* the redrive was handled */
    CHECK_INT(ndl2, ==, 2);
    size_t redriven = 0;
    for (size_t i = 0; i < ndl2; i++) {
        char b[300];
        redriven += lev_test_header(&dl2[i], LEV_H_REDRIVE_FROM, b, sizeof b)[0] != '\0';
    }
    CHECK_INT(redriven, ==, 1);
    check_outputs(&a, N - 1);
    lev_test_records_free(dl, ndl);
    lev_test_records_free(dl2, ndl2);
    app_free(&a);
}

static void stop_waits_for_deferred_records_and_late_resumes_only_release(void)
{
    enum { N = 20 };
    static app_t a;
    REQUIRE(app_init(&a, "it-defer-stop", N, N, 1) == 0);

    /* resumed within the shutdown bound: finished and committed (five at
     * a time, so the stop comes with records not handled yet) */
    a.dep.delay_ms = 400;
    run_t r;
    opts_t five = {.max_deferred = 5};
    REQUIRE(run_start(&r, &a, &five) == 0);
    int64_t deadline = lev_mono_ms() + 30000;
    lev_worker_stats_t st = {0};
    while (st.deferred == 0 && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(5);
        lev_worker_stats(r.run.w, &st);
    }
    REQUIRE(st.deferred > 0);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    CHECK_INT(r.stats.deferred, ==, 0);
    CHECK_INT(atomic_load(&a.releases), ==, 0);
    CHECK_INT(atomic_load(&a.resumes), ==, atomic_load(&a.deferrals));
    int64_t committed = 0;
    CHECK(lev_test_committed(a.group, a.in, 1, &committed) == 0);
    int ok = 0;
    for (size_t i = 0; i < N; i++)
        ok += atomic_load(&a.ok_resumes[i]);
    CHECK_INT(committed, ==, ok); /* what was resumed was finished, nothing else */
    CHECK(ok > 0 && ok < N);

    /* resumed only after run returned: released, and handled by the next
     * run (each effect once in all) */
    a.dep.delay_ms = 3000;
    opts_t o = {.shutdown_ms = 300, .max_deferred = 5};
    REQUIRE(run_start(&r, &a, &o) == 0);
    deadline = lev_mono_ms() + 30000;
    memset(&st, 0, sizeof st);
    while (st.deferred == 0 && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(5);
        lev_worker_stats(r.run.w, &st);
    }
    REQUIRE(st.deferred > 0);
    int before = atomic_load(&a.deferrals);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    CHECK_INT(atomic_load(&a.releases), >, 0);
    CHECK_INT(atomic_load(&a.releases) + atomic_load(&a.resumes), ==, atomic_load(&a.deferrals));
    CHECK(before <= atomic_load(&a.deferrals));

    a.dep.delay_ms = 10;
    REQUIRE(run_start(&r, &a, NULL) == 0);
    CHECK(lev_test_run_wait_finished(&r.run, (uint64_t)(N - ok), 60000) == 0);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    check_outputs(&a, N);
    for (size_t i = 0; i < N; i++)
        CHECK_INT(atomic_load(&a.ok_resumes[i]), ==, 1);
    app_free(&a);
}

static void circuit_breaker_holds_partitions_while_the_dependency_is_down_and_drains_after(void)
{
    enum { N = 30, FAILURES = 3 };
    static app_t a;
    REQUIRE(app_init(&a, "it-breaker", N, N, 3) == 0);
    a.dep.delay_ms = 20;
    atomic_store(&a.down, 1);
    lev_breaker_conf_t bc = {.failures = FAILURES, .open_ms = 200, .open_max_ms = 800};
    /* without the breaker: 2 attempts in process, then a retry topic and
     * the dead-letter topic within seconds */
    opts_t o = {.breaker = &bc, .attempts = 2, .delays = "1s"};
    run_t r;
    REQUIRE(run_start(&r, &a, &o) == 0);

    /* down until the breaker opened and every record reached the
     * dependency or waits for the breaker, then 3 s more */
    int64_t deadline = lev_mono_ms() + 30000;
    while (lev_breaker_opened(a.breaker) == 0 && lev_mono_ms() < deadline)
        lev_test_sleep_ms(10);
    REQUIRE(lev_breaker_opened(a.breaker) > 0);
    CHECK(lev_breaker_state(a.breaker) != LEV_BREAKER_CLOSED);
    lev_test_sleep_ms(3000); /* the outage goes on: probes fail, nothing is burnt */
    lev_worker_stats_t st;
    lev_worker_stats(r.run.w, &st);
    CHECK_INT(st.finished, ==, 0);
    CHECK_INT(st.sent_to_retry, ==, 0);
    CHECK_INT(st.dead_lettered, ==, 0);
    CHECK(lev_breaker_opened(a.breaker) >= 2); /* failed probes opened it again */
    int failed = atomic_load(&a.failed_resumes);

    atomic_store(&a.down, 0);
    CHECK(lev_test_run_wait_finished(&r.run, N, 60000) == 0);
    CHECK_INT(lev_breaker_state(a.breaker), ==, LEV_BREAKER_CLOSED);
    CHECK_INT(run_stop(&r, &a), ==, 0);
    check_outputs(&a, N);
    CHECK_INT(dlq_count(&a), ==, 0);
    CHECK_INT(r.stats.sent_to_retry, ==, 0);
    CHECK_INT(r.stats.dead_lettered, ==, 0);
    /* only the failures before it opened cost an attempt */
    CHECK_INT(r.stats.retried_inprocess, <=, FAILURES - 1);
    CHECK_INT(r.stats.breaker_waits, >, 0);
    for (size_t i = 0; i < N; i++)
        CHECK_INT(atomic_load(&a.ok_resumes[i]), ==, 1);
    /* while open, records were not handed to the handler: the calls that
     * failed are the ones in flight when it opened, plus one per probe */
    fprintf(stderr,
            "failed calls during the outage: %d; records waited for the breaker %llu times\n",
            failed, (unsigned long long)r.stats.breaker_waits);
    CHECK_INT(failed, <=, N + 20);
    app_free(&a);
}

CHECK_MAIN(CASE(deferred_records_run_concurrently_and_keep_the_order_of_each_key),
           CASE(the_deferral_bound_pauses_fetching),
           CASE(resumed_failures_are_retried_or_dead_lettered_as_a_handler_s),
           CASE(a_deferral_longer_than_the_lease_keeps_its_claim),
           CASE(a_dead_lettered_record_fetched_again_is_skipped_and_a_redrive_is_handled),
           CASE(stop_waits_for_deferred_records_and_late_resumes_only_release),
           CASE(circuit_breaker_holds_partitions_while_the_dependency_is_down_and_drains_after))
