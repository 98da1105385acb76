/*
 * The worker against a real broker and Redis: delivery, group sharing,
 * graceful stop.
 */
#include "check.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

/* ---- produce N, consume with a group in this process ---- */

typedef struct {
    size_t n;
    char (*ids)[LEV_UUID_STR_LEN];
    char **sent;     /* JSON text of what was sent, by index */
    char **received; /* JSON text of what the handler saw, by index */
    size_t got;
    lev_test_run_t run; /* its worker, run.w */
} delivery_t;

static lev_result_t record_event(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    delivery_t *d = opaque;
    (void)ctx;
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->ids[i], ev->id) != 0)
            continue;
        if (!d->received[i]) {
            json_t *j = lev_codec_to_json(&ev->value, NULL);
            d->received[i] = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : strdup("null");
            json_decref(j);
            d->got++;
        }
        break;
    }
    if (d->got == d->n)
        lev_worker_stop(d->run.w);
    return LEV_RESULT_OK;
}

static void produced_events_all_arrive_decoded_equal_and_offsets_are_committed(void)
{
    enum { N = 300 };
    char topic[128];
    lev_test_unique("it-delivery", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 3) == 0);

    static char ids[N][LEV_UUID_STR_LEN];
    delivery_t d = {.n = N, .ids = ids};
    d.sent = calloc(N, sizeof *d.sent);
    d.received = calloc(N, sizeof *d.received);

    /* publish, keeping the JSON of each event */
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-delivery");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    REQUIRE(p && codec && s);
    for (int i = 0; i < N; i++) {
        lev_uuid4(ids[i]);
        json_t *j = lev_test_order_json(ids[i], i);
        d.sent[i] = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        avro_value_t v;
        REQUIRE(lev_codec_from_json(codec, s, j, &v, &err) == 0);
        lev_event_meta_t meta = {.id = ids[i], .source = "/shop-a"};
        CHECK(lev_producer_send_event(p, codec, topic, ids[i], s, &v, &meta, NULL, NULL, &err) ==
              0);
        avro_value_decref(&v);
        json_decref(j);
    }
    CHECK(lev_producer_flush(p, 30000) == 0);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);

    /* consume with a group */
    d.run.w = lev_worker_new(&conf, &err);
    REQUIRE(d.run.w);
    CHECK(lev_worker_on(d.run.w, "shop.order.OrderPlaced", record_event, &d, &err) == 0);
    CHECK(lev_worker_subscribe(d.run.w, topic, &err) == 0);
    REQUIRE(lev_test_run_start(&d.run, d.run.w) == 0);
    int64_t deadline = lev_mono_ms() + 90000;
    while (d.got < N && lev_mono_ms() < deadline)
        lev_test_sleep_ms(50);
    lev_worker_stop(d.run.w);
    CHECK_INT(lev_test_run_join(&d.run), ==, 0);
    CHECK_INT(d.got, ==, N);
    size_t equal = 0;
    for (int i = 0; i < N; i++)
        equal += d.received[i] && strcmp(d.sent[i], d.received[i]) == 0;
    CHECK_INT(equal, ==, N);

    /* the graceful stop committed every handled offset */
    int64_t committed[3];
    CHECK(lev_test_committed(conf.group_id, topic, 3, committed) == 0);
    CHECK_INT(committed[0] + committed[1] + committed[2], ==, N);

    /* each event's idempotency key is done, under the name the README
     * gives it: "<group>:<source length>:<source>:<id>", which keys written
     * by earlier versions must keep matching */
    lev_store_t *store = lev_store_new(conf.redis_url, 5000, &err);
    REQUIRE(store);
    static char keys[N][256];
    const char *kp[N];
    for (int i = 0; i < N; i++) {
        int w = snprintf(keys[i], sizeof keys[i], "%s:7:/shop-a:%s", conf.group_id, ids[i]);
        REQUIRE(w > 0 && (size_t)w < sizeof keys[i]);
        kp[i] = keys[i];
    }
    lev_claim_t claims[N];
    CHECK(lev_store_claim(store, kp, N, 1000, claims, &err) == 0);
    int done = 0;
    for (int i = 0; i < N; i++)
        done += claims[i] == LEV_CLAIM_DONE;
    CHECK_INT(done, ==, N);
    lev_store_destroy(store);

    lev_worker_destroy(d.run.w);
    lev_config_clear(&conf);
    for (int i = 0; i < N; i++) {
        free(d.sent[i]);
        free(d.received[i]);
    }
    free(d.sent);
    free(d.received);
}

/* ---- child workers ---- */

typedef struct {
    char in[96], out[128], group[128], effect[256], log[256];
    char env_in[160], env_out[160], env_group[160], env_effect[300];
} run_t;

static void run_init(run_t *r, const char *name)
{
    lev_test_unique(name, r->in, sizeof r->in);
    snprintf(r->out, sizeof r->out, "%s-out", r->in);
    snprintf(r->group, sizeof r->group, "%s-group", r->in);
    snprintf(r->effect, sizeof r->effect, "%s/%s.effects", lev_test_env("TMPDIR", "/tmp"), r->in);
    snprintf(r->log, sizeof r->log, "%s/%s.log", lev_test_env("TMPDIR", "/tmp"), r->in);
    snprintf(r->env_in, sizeof r->env_in, "IN_TOPIC=%s", r->in);
    snprintf(r->env_out, sizeof r->env_out, "OUT_TOPIC=%s", r->out);
    snprintf(r->env_group, sizeof r->env_group, "LEV_GROUP_ID=%s", r->group);
    snprintf(r->env_effect, sizeof r->env_effect, "EFFECT_LOG=%s", r->effect);
    unlink(r->effect);
}

static pid_t run_start(run_t *r, const char *delay)
{
    char *env[] = {r->env_in, r->env_out, r->env_group, r->env_effect, (char *)delay, NULL};
    return lev_test_start_worker(env, r->log);
}

/* Handler runs in an effect log by each of two worker pids. */
static void count_by_pid(const char *path, pid_t a, pid_t b, int *by_a, int *by_b)
{
    FILE *f = fopen(path, "r");
    char line[512];
    *by_a = *by_b = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *sp = strrchr(line, ' ');
        int pid = sp ? atoi(sp + 1) : 0;
        *by_a += pid == a;
        *by_b += pid == b;
    }
    if (f)
        fclose(f);
}

static void two_consumers_share_partitions_and_one_takes_over_when_the_other_leaves(void)
{
    enum { N = 1500 };
    run_t r;
    run_init(&r, "it-share");
    REQUIRE(lev_test_create_topic(r.in, 4) == 0);
    REQUIRE(lev_test_create_topic(r.out, 3) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N, ids, NULL) == 0);

    pid_t a = run_start(&r, "HANDLE_DELAY_MS=4");
    pid_t b = run_start(&r, "HANDLE_DELAY_MS=4");
    /* both get partitions and work for a while */
    int by_a = 0, by_b = 0;
    int64_t deadline = lev_mono_ms() + 60000;
    while ((by_a == 0 || by_b == 0 || by_a + by_b < 400) && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(100);
        count_by_pid(r.effect, a, b, &by_a, &by_b);
    }
    CHECK(by_a > 0);
    CHECK(by_b > 0);
    int b_before = by_b;
    kill(a, SIGTERM);
    int status = -1;
    CHECK(lev_test_wait(a, 30000, &status) == 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the other one takes over and finishes the whole topic */
    lev_test_wait_lines(r.effect, N, 120000);
    size_t nout;
    char **out = lev_test_read_order_ids(r.out, N, 60000, &nout);
    CHECK_INT(lev_test_missing(ids, N, out, nout), ==, 0);
    count_by_pid(r.effect, a, b, &by_a, &by_b);
    CHECK(by_b > b_before); /* b took over a's partitions */
    CHECK_INT(by_a + by_b, >=, N);
    kill(b, SIGTERM);
    CHECK(lev_test_wait(b, 30000, &status) == 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    lev_test_strings_free(out, nout);
}

static void sigterm_under_load_exits_zero_commits_and_redelivers_nothing(void)
{
    enum { N = 2000 };
    run_t r;
    run_init(&r, "it-sigterm");
    REQUIRE(lev_test_create_topic(r.in, 3) == 0);
    REQUIRE(lev_test_create_topic(r.out, 3) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(r.in, N, ids, NULL) == 0);

    pid_t a = run_start(&r, "HANDLE_DELAY_MS=2");
    CHECK(lev_test_wait_lines(r.effect, 300, 60000) >= 300);
    int64_t t0 = lev_mono_ms();
    kill(a, SIGTERM);
    int status = -1;
    CHECK(lev_test_wait(a, 30000, &status) == 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(lev_mono_ms() - t0 < 20000);

    /* what was handled is exactly what was committed */
    size_t nh;
    char **handled = lev_test_effect_ids(r.effect, &nh);
    int64_t committed[3];
    CHECK(lev_test_committed(r.group, r.in, 3, committed) == 0);
    int64_t sum = 0;
    for (int p = 0; p < 3; p++)
        sum += committed[p] > 0 ? committed[p] : 0;
    CHECK_INT(sum, ==, nh);
    lev_test_strings_free(handled, nh);

    /* a restart handles the rest, and nothing twice */
    pid_t b = run_start(&r, "HANDLE_DELAY_MS=0");
    lev_test_wait_lines(r.effect, N, 120000);
    kill(b, SIGTERM);
    CHECK(lev_test_wait(b, 30000, &status) == 0);
    handled = lev_test_effect_ids(r.effect, &nh);
    CHECK_INT(nh, ==, N);
    CHECK_INT(lev_test_distinct(handled, nh), ==, N);
    lev_test_strings_free(handled, nh);
}

/* Events of a type the worker has no handler for (here OrderAccepted, as a
 * service reads the events it emitted itself) are finished without a
 * handler, between the ones it handles, and every offset is committed:
 * also one at the head of its partition while its batch waits for its
 * claims (freed once, by its batch). */
static void events_without_a_handler_are_finished_between_the_handled_ones(void)
{
    enum { N = 400 };
    char topic[128];
    lev_test_unique("it-nohandler", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 2) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    delivery_t d = {.n = N, .ids = ids};
    d.received = calloc(N, sizeof *d.received);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-nohandler");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *placed = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    const lev_schema_t *accepted = lev_schemas_find(lev_test_schemas(), "shop.order.OrderAccepted");
    REQUIRE(p && codec && placed && accepted);
    for (int i = 0; i < N; i++) {
        lev_uuid4(ids[i]);
        json_t *j = lev_test_order_json(ids[i], i);
        avro_value_t v, a;
        /* an OrderAccepted of the order first (finished without a handler
         * at the head of its partition), then the OrderPlaced */
        REQUIRE(lev_codec_new_value(codec, accepted, &a) == 0);
        lev_value_set_string(&a, "order_id", ids[i]);
        lev_value_set_string(&a, "customer_id", "c");
        lev_value_set_string(&a, "currency", "EUR");
        lev_value_set_long(&a, "total_minor", 1);
        lev_value_set_string(&a, "payment_token", "t");
        lev_value_set_long(&a, "accepted_at", lev_now_ms());
        CHECK(lev_producer_send_event(p, codec, topic, ids[i], accepted, &a, NULL, NULL, NULL,
                                      &err) == 0);
        REQUIRE(lev_codec_from_json(codec, placed, j, &v, &err) == 0);
        lev_event_meta_t meta = {.id = ids[i]};
        CHECK(lev_producer_send_event(p, codec, topic, ids[i], placed, &v, &meta, NULL, NULL,
                                      &err) == 0);
        avro_value_decref(&a);
        avro_value_decref(&v);
        json_decref(j);
    }
    CHECK(lev_producer_flush(p, 30000) == 0);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);

    d.run.w = lev_worker_new(&conf, &err);
    REQUIRE(d.run.w);
    CHECK(lev_worker_on(d.run.w, "shop.order.OrderPlaced", record_event, &d, &err) == 0);
    CHECK(lev_worker_subscribe(d.run.w, topic, &err) == 0);
    REQUIRE(lev_test_run_start(&d.run, d.run.w) == 0);
    int64_t deadline = lev_mono_ms() + 60000;
    int64_t committed[2] = {0, 0};
    while (lev_mono_ms() < deadline) {
        if (lev_test_committed(conf.group_id, topic, 2, committed) == 0 &&
            committed[0] + committed[1] == 2 * N)
            break;
        lev_test_sleep_ms(200);
    }
    lev_worker_stop(d.run.w);
    CHECK_INT(lev_test_run_join(&d.run), ==, 0);
    CHECK_INT(d.got, ==, N);
    CHECK_INT(committed[0] + committed[1], ==, 2 * N);
    lev_worker_stats_t st;
    lev_worker_stats(d.run.w, &st);
    CHECK_INT(st.handled, ==, N);
    CHECK_INT(st.finished, ==, 2 * N);
    lev_worker_destroy(d.run.w);
    lev_config_clear(&conf);
    for (int i = 0; i < N; i++)
        free(d.received[i]);
    free(d.received);
}

/* A worker started while the broker does not answer says so, keeps waiting,
 * and stops at once (exit 0) when asked, whatever the wait. */
static void start_with_the_broker_down_says_so_and_stops_at_once(void)
{
    char log[256];
    snprintf(log, sizeof log, "%s/it-broker-down-%d.log", lev_test_env("TMPDIR", "/tmp"),
             (int)getpid());
    unlink(log);
    /* a port held without listening: connections are refused */
    int closed_fd;
    int closed_port = lev_test_refusing_port(&closed_fd);
    REQUIRE(closed_port > 0);
    char bootstrap[64];
    snprintf(bootstrap, sizeof bootstrap, "KAFKA_BOOTSTRAP=127.0.0.1:%d", closed_port);
    char *env[] = {"IN_TOPIC=it-broker-down", "OUT_TOPIC=it-broker-down-out", bootstrap, NULL};
    pid_t pid = lev_test_start_worker(env, log);
    int64_t deadline = lev_mono_ms() + 20000;
    int said = 0;
    while (!said && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(200);
        FILE *f = fopen(log, "r");
        char line[2048];
        while (f && !said && fgets(line, sizeof line, f))
            said = strstr(line, "the broker does not answer; waiting for it") != NULL;
        if (f)
            fclose(f);
    }
    CHECK(said);
    int64_t t0 = lev_mono_ms();
    kill(pid, SIGTERM);
    int status = -1;
    CHECK(lev_test_wait(pid, 10000, &status) == 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(lev_mono_ms() - t0 < 3000);
    close(closed_fd);
}

/* ---- signals ---- */

static volatile sig_atomic_t terms_seen;

static void count_term(int sig)
{
    (void)sig;
    terms_seen++;
}

static lev_result_t ignore_event(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    (void)ctx;
    (void)ev;
    (void)opaque;
    return LEV_RESULT_OK;
}

/* SIGTERM stops every worker that asked for it; a worker destroyed is out
 * of reach of the handler (AddressSanitizer would see it otherwise), and
 * once the last one is gone the handler that was there before is back. */
static void sigterm_stops_every_registered_worker_and_is_safe_after_destroy(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_term;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGTERM, &sa, &old) == 0);
    terms_seen = 0;

    char topic[128];
    lev_test_unique("it-signals", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    lev_config_t conf;
    lev_error_t err;
    lev_test_run_t r[2];
    for (int i = 0; i < 2; i++) {
        lev_test_config(&conf, "it-signals");
        lev_worker_t *w = lev_worker_new(&conf, &err);
        lev_config_clear(&conf);
        REQUIRE(w);
        CHECK(lev_worker_on(w, "shop.order.OrderPlaced", ignore_event, NULL, &err) == 0);
        CHECK(lev_worker_subscribe(w, topic, &err) == 0);
        CHECK(lev_worker_stop_on_signals(w) == 0);
        REQUIRE(lev_test_run_start(&r[i], w) == 0);
    }
    lev_worker_stats_t st[2] = {{0}};
    int64_t deadline = lev_mono_ms() + 30000;
    while ((st[0].rebalances == 0 || st[1].rebalances == 0) && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(50);
        lev_worker_stats(r[0].w, &st[0]);
        lev_worker_stats(r[1].w, &st[1]);
    }
    int64_t t0 = lev_mono_ms();
    raise(SIGTERM); /* both stop, gracefully */
    for (int i = 0; i < 2; i++) {
        CHECK_INT(lev_test_run_join(&r[i]), ==, 0);
        CHECK(atomic_load(&r[i].returned_ms) - t0 < 20000);
    }
    CHECK_INT(terms_seen, ==, 0); /* ours was replaced while workers were registered */

    lev_worker_destroy(r[0].w);
    raise(SIGTERM); /* reaches the remaining worker only, never the freed one */
    CHECK_INT(terms_seen, ==, 0);
    lev_worker_destroy(r[1].w);
    raise(SIGTERM); /* the handler from before is back */
    CHECK_INT(terms_seen, ==, 1);
    sigaction(SIGTERM, &old, NULL);
}

CHECK_MAIN(CASE(produced_events_all_arrive_decoded_equal_and_offsets_are_committed),
           CASE(two_consumers_share_partitions_and_one_takes_over_when_the_other_leaves),
           CASE(sigterm_under_load_exits_zero_commits_and_redelivers_nothing),
           CASE(sigterm_stops_every_registered_worker_and_is_safe_after_destroy),
           CASE(start_with_the_broker_down_says_so_and_stops_at_once),
           CASE(events_without_a_handler_are_finished_between_the_handled_ones))
