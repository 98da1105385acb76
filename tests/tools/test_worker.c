/*
 * A worker for the integration tests: handles shop.order.OrderPlaced from
 * IN_TOPIC by recording a side effect and emitting an OrderAccepted to
 * OUT_TOPIC. Behaviour by environment:
 *   IN_TOPIC, OUT_TOPIC   topics (required)
 *   EFFECT_LOG            file: one line "<order_id> <event_id> <attempt> <pid>" per handler run
 *   EFFECT_ONCE=1         the side effect is guarded by a Redis set-once key, so it
 *                         happens once per event even when the handler runs twice
 *   FAIL_MODE             "" | "transient:N" (fail N times per event, then succeed)
 *                         | "transient" (always) | "permanent"
 *   FAIL_SKU              only events with an item of this sku fail (others succeed)
 *   HANDLE_DELAY_MS       sleep in the handler before the side effect (simulates work)
 *   AFTER_EFFECT_DELAY_MS sleep after the side effect, before emitting (a window
 *                         in which a kill leaves the claim taken but not done)
 *   ORDER_RETRY_ATTEMPTS, ORDER_RETRY_DELAYS
 *                         a retry policy for OrderPlaced only (lev_worker_retry_policy),
 *                         overriding LEV_RETRY_ATTEMPTS and LEV_RETRY_DELAYS
 *   STATS_FILE            file: the worker's counters (lev_worker_stats) as one JSON
 *                         object, replaced every 20 ms while it runs, so a test can
 *                         wait for what the worker did
 * plus every libevents variable (KAFKA_BOOTSTRAP, REDIS_URL, LEV_*).
 */
#include <fcntl.h>
#include <libevents.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *out_topic;
    int effect_fd;
    int effect_once;
    const char *fail_mode;
    const char *fail_sku;
    int fail_times;
    int delay_ms;
    int after_ms;
} app_t;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Does the order have an item with this sku? */
static int has_sku(const avro_value_t *order, const char *sku)
{
    avro_value_t items, item, f;
    size_t n = 0;
    if (avro_value_get_by_name(order, "items", &items, NULL) || avro_value_get_size(&items, &n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if (avro_value_get_by_index(&items, i, &item, NULL) == 0 &&
            avro_value_get_by_name(&item, "sku", &f, NULL) == 0 &&
            avro_value_get_string(&f, &s, &len) == 0 && strcmp(s, sku) == 0)
            return 1;
    }
    return 0;
}

static lev_result_t on_order_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    app_t *app = opaque;
    const char *order_id = NULL, *customer = NULL, *currency = NULL, *token = NULL;
    int64_t total = 0;
    if (lev_value_get_string(&ev->value, "order_id", &order_id, NULL) ||
        lev_value_get_string(&ev->value, "customer_id", &customer, NULL) ||
        lev_value_get_string(&ev->value, "currency", &currency, NULL) ||
        lev_value_get_string(&ev->value, "payment_token", &token, NULL) ||
        lev_value_get_long(&ev->value, "total_minor", &total)) {
        lev_ctx_set_error(ctx, "order without the expected fields");
        return LEV_RESULT_PERMANENT;
    }
    if (app->delay_ms > 0)
        sleep_ms(app->delay_ms);
    int fails = !app->fail_sku || has_sku(&ev->value, app->fail_sku);
    if (fails && strcmp(app->fail_mode, "permanent") == 0) {
        lev_ctx_set_error(ctx, "permanent failure requested");
        return LEV_RESULT_PERMANENT;
    }
    if (fails && strcmp(app->fail_mode, "transient") == 0) {
        lev_ctx_set_error(ctx, "transient failure requested (attempt %d)", ev->attempt);
        return LEV_RESULT_TRANSIENT;
    }
    if (fails && app->fail_times > 0 && ev->attempt <= app->fail_times) {
        lev_ctx_set_error(ctx, "transient failure %d of %d", ev->attempt, app->fail_times);
        return LEV_RESULT_TRANSIENT;
    }
    if (app->effect_fd >= 0) {
        int do_effect = 1;
        if (app->effect_once && lev_ctx_store(ctx)) {
            char key[256];
            snprintf(key, sizeof key, "%s:effect:%s", lev_ctx_service(ctx), ev->id);
            lev_error_t err;
            if (lev_store_set_once(lev_ctx_store(ctx), key, "1", 0, &do_effect, &err) != 0) {
                lev_ctx_set_error(ctx, "store: %s", err.text);
                return LEV_RESULT_TRANSIENT;
            }
        }
        if (do_effect) {
            char line[512];
            int n = snprintf(line, sizeof line, "%s %s %d %d\n", order_id, ev->id, ev->attempt,
                             (int)getpid());
            if (write(app->effect_fd, line, (size_t)n) != n) {
                lev_ctx_set_error(ctx, "effect log write failed");
                return LEV_RESULT_TRANSIENT;
            }
        }
    }
    if (app->after_ms > 0)
        sleep_ms(app->after_ms);
    avro_value_t out;
    lev_error_t err;
    if (lev_ctx_new_value(ctx, "shop.order.OrderAccepted", &out) ||
        lev_value_set_string(&out, "order_id", order_id) ||
        lev_value_set_string(&out, "customer_id", customer) ||
        lev_value_set_string(&out, "currency", currency) ||
        lev_value_set_long(&out, "total_minor", total) ||
        lev_value_set_string(&out, "payment_token", token) ||
        lev_value_set_long(&out, "accepted_at", lev_now_ms()) ||
        lev_ctx_emit(ctx, app->out_topic, order_id, &out, &err)) {
        lev_ctx_set_error(ctx, "cannot build the output");
        return LEV_RESULT_PERMANENT;
    }
    return LEV_RESULT_OK;
}

/* The counters as the JSON object of the "stats" log line (without "msg"). */
static void format_stats(const lev_worker_t *w, char *out, size_t size)
{
    lev_worker_stats_t st;
    lev_worker_stats(w, &st);
    snprintf(out, size,
             "\"received\":%llu,\"handled\":%llu,\"duplicates\":%llu,\"retried\":%llu,"
             "\"to_retry\":%llu,\"dead_lettered\":%llu,\"batches\":%llu,"
             "\"store_round_trips\":%llu",
             (unsigned long long)st.received, (unsigned long long)st.handled,
             (unsigned long long)st.skipped_duplicates, (unsigned long long)st.retried_inprocess,
             (unsigned long long)st.sent_to_retry, (unsigned long long)st.dead_lettered,
             (unsigned long long)st.batches, (unsigned long long)st.store_round_trips);
}

typedef struct {
    const lev_worker_t *w;
    const char *path;
    atomic_int stop;
} stats_writer_t;

/* Replaces STATS_FILE (write and rename: a reader sees one whole object). */
static void write_stats(stats_writer_t *sw)
{
    char tmp[4200], body[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", sw->path);
    format_stats(sw->w, body, sizeof body);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "{%s}\n", body);
    if (fclose(f) == 0)
        rename(tmp, sw->path);
}

static void *stats_main(void *arg)
{
    stats_writer_t *sw = arg;
    while (!atomic_load(&sw->stop)) {
        write_stats(sw);
        sleep_ms(20);
    }
    write_stats(sw);
    return NULL;
}

int main(void)
{
    const char *in = getenv("IN_TOPIC");
    app_t app = {.out_topic = getenv("OUT_TOPIC"), .effect_fd = -1};
    if (!in || !app.out_topic) {
        fprintf(stderr, "IN_TOPIC and OUT_TOPIC are required\n");
        return 2;
    }
    const char *fm = getenv("FAIL_MODE");
    app.fail_mode = fm ? fm : "";
    if (strncmp(app.fail_mode, "transient:", 10) == 0)
        app.fail_times = atoi(app.fail_mode + 10);
    app.fail_sku = getenv("FAIL_SKU");
    app.delay_ms = getenv("HANDLE_DELAY_MS") ? atoi(getenv("HANDLE_DELAY_MS")) : 0;
    app.after_ms = getenv("AFTER_EFFECT_DELAY_MS") ? atoi(getenv("AFTER_EFFECT_DELAY_MS")) : 0;
    app.effect_once = getenv("EFFECT_ONCE") && atoi(getenv("EFFECT_ONCE"));
    if (getenv("EFFECT_LOG")) {
        app.effect_fd = open(getenv("EFFECT_LOG"), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (app.effect_fd < 0) {
            perror("EFFECT_LOG");
            return 2;
        }
    }

    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    if (lev_config_from_env(&conf, "test-worker", &err) != 0) {
        fprintf(stderr, "configuration: %s\n", lev_error_format(&err, buf, sizeof buf));
        return 2;
    }
    lev_log_set_service(conf.service);
    lev_log_set(lev_log_json, NULL, conf.log_level);
    lev_worker_t *w = lev_worker_new(&conf, &err);
    lev_config_clear(&conf);
    if (!w) {
        fprintf(stderr, "worker: %s\n", lev_error_format(&err, buf, sizeof buf));
        return 1;
    }
    int rc = lev_worker_on(w, "shop.order.OrderPlaced", on_order_placed, &app, &err) ||
             lev_worker_subscribe(w, in, &err) ||
             lev_worker_declare_output(w, app.out_topic, &err) || lev_worker_stop_on_signals(w);
    if (!rc && (getenv("ORDER_RETRY_ATTEMPTS") || getenv("ORDER_RETRY_DELAYS"))) {
        lev_retry_policy_t policy = {.attempts = 1, .backoff_ms = 50, .backoff_max_ms = 1000};
        if (getenv("ORDER_RETRY_ATTEMPTS"))
            policy.attempts = atoi(getenv("ORDER_RETRY_ATTEMPTS"));
        rc = lev_retry_delays_parse(getenv("ORDER_RETRY_DELAYS"), &policy, &err) ||
             lev_worker_retry_policy(w, "shop.order.OrderPlaced", &policy);
    }
    if (rc) {
        fprintf(stderr, "setup: %s\n", lev_error_format(&err, buf, sizeof buf));
        lev_worker_destroy(w);
        return 2;
    }
    stats_writer_t sw = {.w = w, .path = getenv("STATS_FILE")};
    pthread_t stats_thread;
    int stats_running = sw.path && pthread_create(&stats_thread, NULL, stats_main, &sw) == 0;
    rc = lev_worker_run(w);
    if (stats_running) {
        atomic_store(&sw.stop, 1);
        pthread_join(stats_thread, NULL);
    }
    char body[600];
    format_stats(w, body, sizeof body);
    fprintf(stderr, "{\"msg\":\"stats\",%s}\n", body);
    lev_worker_destroy(w);
    if (app.effect_fd >= 0)
        close(app.effect_fd);
    return rc == 0 ? 0 : 1;
}
