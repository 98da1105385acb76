/*
 * bench_worker: end-to-end throughput of a libevents worker against a real
 * broker (and Redis). Publishes N OrderPlaced events to a fresh topic, then
 * runs a worker whose handler emits one OrderAccepted per event, and prints
 * events per second from the first handled event to the last, with
 * idempotency in Redis and without it.
 *
 *   KAFKA_BOOTSTRAP=127.0.0.1:19092 REDIS_URL=redis://127.0.0.1:16379/0 \
 *   LEV_SCHEMA_DIRS=schemas bench_worker [events]
 *
 * Topics are named bench-worker-<pid>-<n> and are left behind (delete them
 * or use a throwaway broker). Not a test.
 */
#include <libevents.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    lev_worker_t *w;
    const char *out_topic;
    long target, handled;
    int64_t first_ms, last_ms;
} bench_t;

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    bench_t *b = opaque;
    const char *order_id, *customer, *currency, *token;
    int64_t total;
    avro_value_t *in = (avro_value_t *)&ev->value, out;
    if (lev_value_get_string(in, "order_id", &order_id, NULL) ||
        lev_value_get_string(in, "customer_id", &customer, NULL) ||
        lev_value_get_string(in, "currency", &currency, NULL) ||
        lev_value_get_string(in, "payment_token", &token, NULL) ||
        lev_value_get_long(in, "total_minor", &total) ||
        lev_ctx_new_value(ctx, "shop.order.OrderAccepted", &out) ||
        lev_value_set_string(&out, "order_id", order_id) ||
        lev_value_set_string(&out, "customer_id", customer) ||
        lev_value_set_string(&out, "currency", currency) ||
        lev_value_set_long(&out, "total_minor", total) ||
        lev_value_set_string(&out, "payment_token", token) ||
        lev_value_set_long(&out, "accepted_at", lev_now_ms()) ||
        lev_ctx_emit(ctx, b->out_topic, order_id, &out, NULL))
        return LEV_RESULT_PERMANENT;
    if (b->handled++ == 0)
        b->first_ms = lev_mono_ms();
    b->last_ms = lev_mono_ms();
    if (b->handled >= b->target)
        lev_worker_stop(b->w);
    return LEV_RESULT_OK;
}

static void *run(void *arg)
{
    bench_t *b = arg;
    lev_worker_run(b->w);
    return NULL;
}

static int fail(const char *what, const lev_error_t *err)
{
    char buf[800];
    fprintf(stderr, "bench_worker: %s: %s\n", what, lev_error_format(err, buf, sizeof buf));
    return 1;
}

/* Publishes n orders to topic; returns 0. */
static int publish(const lev_config_t *conf, const char *topic, long n)
{
    lev_error_t err;
    const lev_kv_t extra[] = {{"linger.ms", "20"}, {NULL, NULL}};
    lev_producer_t *p = lev_producer_new(conf, extra, &err);
    lev_schemas_t *schemas = lev_schemas_new();
    if (!p || lev_schemas_load_path(schemas, conf->schema_dirs, &err))
        return fail("setup", &err);
    lev_codec_t *codec = lev_codec_new(schemas, NULL);
    const lev_schema_t *s = lev_schemas_find(schemas, "shop.order.OrderPlaced");
    for (long i = 0; i < n; i++) {
        char id[LEV_UUID_STR_LEN];
        lev_uuid4(id);
        json_t *j = json_pack("{s:s,s:s,s:n,s:[{s:s,s:i,s:I}],s:s,s:I,s:s,s:I}", "order_id", id,
                              "customer_id", "c-1", "customer_email", "items", "sku", "sku-1",
                              "quantity", 2, "unit_price_minor", (json_int_t)499, "currency", "EUR",
                              "total_minor", (json_int_t)998, "payment_token", "tok_visa",
                              "placed_at", (json_int_t)lev_now_ms());
        avro_value_t v;
        lev_event_meta_t meta = {.id = id};
        if (lev_codec_from_json(codec, s, j, &v, &err) ||
            lev_producer_send_event(p, codec, topic, id, s, &v, &meta, NULL, NULL, &err))
            return fail("publish", &err);
        avro_value_decref(&v);
        json_decref(j);
        if (i % 1000 == 0)
            lev_producer_poll(p, 0);
    }
    if (lev_producer_flush(p, 60000) != 0)
        fprintf(stderr, "bench_worker: not every event was acknowledged\n");
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
    return 0;
}

static int bench(long n, int with_redis, int round)
{
    lev_config_t conf;
    lev_error_t err;
    if (lev_config_from_env(&conf, "bench-worker", &err))
        return fail("configuration", &err);
    char in[96], out[128], group[128];
    snprintf(in, sizeof in, "bench-worker-%d-%d", (int)getpid(), round);
    snprintf(out, sizeof out, "%s-out", in);
    snprintf(group, sizeof group, "%s-group", in);
    lev_config_set_str(&conf.group_id, group);
    if (!with_redis)
        lev_config_set_str(&conf.redis_url, "");
    if (publish(&conf, in, n))
        return 1;
    bench_t b = {.out_topic = out, .target = n};
    b.w = lev_worker_new(&conf, &err);
    if (!b.w || lev_worker_on(b.w, "shop.order.OrderPlaced", on_placed, &b, &err) ||
        lev_worker_subscribe(b.w, in, &err))
        return fail("worker", &err);
    pthread_t th;
    pthread_create(&th, NULL, run, &b);
    pthread_join(th, NULL);
    lev_worker_stats_t st;
    lev_worker_stats(b.w, &st);
    double secs = (double)(b.last_ms - b.first_ms) / 1000.0;
    printf("%-22s %8ld events  %7.2f s  %9.0f events/s  %llu batches  %llu Redis round trips\n",
           with_redis ? "with Redis idempotency" : "without idempotency", b.handled, secs,
           secs > 0 ? (double)b.handled / secs : 0.0, (unsigned long long)st.batches,
           (unsigned long long)st.store_round_trips);
    lev_worker_destroy(b.w);
    lev_config_clear(&conf);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 50000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_worker [events]\n");
        return 64;
    }
    printf("bench_worker: %ld OrderPlaced -> handler -> OrderAccepted, acks=all, one worker\n", n);
    return bench(n, 1, 0) || bench(n, 0, 1);
}
