/*
 * bench_worker: the worker's throughput against its own ceiling, measured in
 * one run on the same input records, against a real broker (and Redis).
 *
 *   KAFKA_BOOTSTRAP=127.0.0.1:19092 REDIS_URL=redis://127.0.0.1:16379/0 \
 *   LEV_SCHEMA_DIRS=schemas bench_worker [events [rounds]]
 *
 * Publishes `events` OrderPlaced (default 50000) once to a fresh 3-partition
 * topic. Then, in each round (default 3), each in a consumer group and
 * output topic of its own:
 *   (a) ceiling: a bare librdkafka consumer copying every record (key,
 *       value, headers) to the output topic through a bare producer, both
 *       configured exactly as the worker's clients are; no decode, no
 *       Redis, no handler;
 *   (b) the worker, OrderPlaced -> handler -> OrderAccepted, with Redis
 *       idempotency;
 *   (c) the same worker without Redis;
 *   (d) (b) with its metrics on: the HTTP endpoint (LEV_HTTP_ADDR on port
 *       0) and its instruments, /metrics scraped every BENCH_SCRAPE_MS
 *       (default 1000) by a thread of this process, as Prometheus would;
 *   (e) the floor of the idempotency recipe: (a) taking records in
 *       batches as the worker does, plus the recipe's two Redis commands
 *       per record (claim, completion) in one round trip per batch, and
 *       nothing else of the worker: what Redis alone leaves of (a).
 * (b) and (d) run next to each other, in turns swapped every round, so
 * their ratio compares runs made in the same minutes.
 * A run's rate is events / (first record taken .. last output acknowledged
 * and its input finished), and its CPU figures are over the same window:
 * the clients' and the worker's start-up (clients, schemas, topics) is
 * not a cost per event. The figures are medians over the rounds; the
 * process CPU of (b) (all threads, librdkafka's included) is divided by the
 * events. Each run also prints the whole machine's CPU per event (the
 * broker's and Redis' included, from /proc/stat) and, for the runs with
 * Redis, the Redis server's own (its INFO cpu): on a machine that runs
 * them all, that is what bounds the rate. The worker's process CPU per
 * event is also set against the bare copy's, round by round: that ratio
 * moves less with the machine's speed than either figure. The line on (e)
 * gives its rate against (a), the most it could reach were no core ever
 * idle (the cores over its machine CPU per event), and (b) against (e).
 * The two last lines are
 *
 *   metrics_eps=<n> metrics_cost=<%> metrics_cpu_cost=<%>
 *   ceiling_eps=<n> worker_eps=<n> ratio=<worker/ceiling> cpu_us_per_event=<n>
 *
 * metrics_cost being the median over the rounds of 1 - (d)/(b) in rate,
 * metrics_cpu_cost the median of (d)/(b) - 1 in process CPU per event, and
 * the last line exactly that.
 * Its topics (the groups' retry and dead-letter topics too) and the
 * idempotency keys of its groups are deleted at the end.
 * Not a test: it prints figures. To profile one kind of run alone, set
 * BENCH_ONLY to a, b, c, d or e, or several (the last line then reports 0
 * for what did not run).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "bench_util.h"
#include "worker_internal.h"

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define PARTITIONS 3

static int fail(const char *what, const lev_error_t *err)
{
    return bench_fail("bench_worker", what, err);
}

#define cpu_seconds bench_cpu_seconds
#define machine_cpu_seconds bench_machine_cpu_seconds
#define now_us bench_now_us

static int admin_topics(const lev_config_t *conf, char **names, size_t n, int create)
{
    return bench_admin_topics(conf, names, n, create, PARTITIONS);
}

static long topic_count(const lev_config_t *conf, const char *topic)
{
    return bench_topic_count(conf, topic, PARTITIONS);
}

/* ---- input ---- */

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
    int rc = lev_producer_flush(p, 60000);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
    return rc ? fail("publish: not every event was acknowledged", NULL) : 0;
}

/* ---- (a) the ceiling: a bare copy ---- */

typedef struct {
    long delivered, failed;
    int64_t last_us;
} copy_t;

static void copy_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    copy_t *c = opaque;
    (void)rk;
    if (m->err)
        c->failed++;
    else
        c->delivered++;
    c->last_us = now_us();
}

/* What one run measured. */
typedef struct {
    double eps;        /* events per second */
    double cpu_us;     /* this process' CPU per event (all its threads) */
    double machine_us; /* the machine's CPU per event (broker and Redis included) */
    double redis_us;   /* the Redis server's CPU per event (0: not used, or not known) */
} result_t;

/* ---- (e) the floor of the idempotency recipe: (a) plus its Redis commands ---- */

typedef struct {
    char *buf;
    size_t len, cap;
} resp_t;

static void resp_room(resp_t *r, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2;
        if (!(r->buf = realloc(r->buf, r->cap)))
            abort();
    }
}

static void resp_arg(resp_t *r, const char *s, size_t n)
{
    resp_room(r, n + 32);
    r->len += (size_t)sprintf(r->buf + r->len, "$%zu\r\n", n);
    memcpy(r->buf + r->len, s, n);
    memcpy(r->buf + r->len + n, "\r\n", 2);
    r->len += n + 2;
}

/* The recipe's claim ("SET <key> P:<token> NX PX <lease> GET") or
 * completion ("SET <key> D PX <ttl> GET") of `key`, as the worker sends them. */
static void resp_set(resp_t *r, const char *key, size_t klen, int claim, const lev_config_t *conf)
{
    static const char token[] = "P:0123456789abcdef0123456789abcdef"; /* the worker's length */
    char ms[24];
    int mlen =
        snprintf(ms, sizeof ms, "%lld", (long long)(claim ? conf->lease_ms : conf->done_ttl_ms));
    resp_room(r, 8);
    r->len += (size_t)sprintf(r->buf + r->len, "*%d\r\n", claim ? 7 : 6);
    resp_arg(r, "SET", 3);
    resp_arg(r, key, klen);
    if (claim) {
        resp_arg(r, token, sizeof token - 1);
        resp_arg(r, "NX", 2);
    } else {
        resp_arg(r, "D", 1);
    }
    resp_arg(r, "PX", 2);
    resp_arg(r, ms, (size_t)mlen);
    resp_arg(r, "GET", 3);
}

/* The idempotency key of a record, as the worker names it
 * ("<group>:<source length>:<source>:<id>", from ce_source and ce_id). */
static int record_key(rd_kafka_headers_t *h, const char *group, char *key, size_t size)
{
    const void *id = NULL, *src = NULL;
    size_t idlen = 0, srclen = 0;
    if (!h || rd_kafka_header_get_last(h, LEV_H_CE_ID, &id, &idlen) || !id)
        return -1;
    if (rd_kafka_header_get_last(h, LEV_H_CE_SOURCE, &src, &srclen) || !src)
        srclen = 0;
    int n = snprintf(key, size, "%s:%zu:%.*s:%.*s", group, srclen, (int)srclen,
                     srclen ? (const char *)src : "", (int)idlen, (const char *)id);
    return n > 0 && (size_t)n < size ? n : -1;
}

/* One round trip: every command in `r`, then `replies` replies, each nil or
 * a string (the key's earlier value). */
static int redis_round_trip(redisContext *c, resp_t *r, size_t replies)
{
    if (replies == 0)
        return 0;
    if (redisAppendFormattedCommand(c, r->buf, r->len) != REDIS_OK)
        return -1;
    r->len = 0;
    for (size_t i = 0; i < replies; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep)
            return -1;
        int ok = rep->type == REDIS_REPLY_NIL || rep->type == REDIS_REPLY_STRING;
        freeReplyObject(rep);
        if (!ok)
            return -1;
    }
    return 0;
}

/* ---- (a) the ceiling, and (e) ---- */

/* Copies every record of `in` to `out`. With `redis` (run (e)), records
 * are taken in batches of up to LEV_BATCH_SIZE, as the worker takes them,
 * and each batch costs one Redis round trip carrying the claims of its
 * records and the completions of the batch before: the recipe's two
 * commands per record, and nothing else of the worker's. It does not wait
 * for the acknowledgements before completing, which the worker must: a
 * floor of the recipe's cost, not a second worker. */
static int copy_run(const lev_config_t *base, const char *in, const char *out, const char *group,
                    int with_redis, long n, result_t *res)
{
    lev_config_t conf = *base;
    conf.group_id = (char *)group;
    lev_error_t err;
    char errstr[512];
    copy_t c = {0};
    redisContext *rc = NULL;
    if (with_redis && !(rc = bench_redis_connect(conf.redis_url)))
        return fail("floor: cannot reach Redis", NULL);
    rd_kafka_conf_t *pc = lev_w_producer_conf_new(&conf, &err);
    rd_kafka_conf_t *cc = lev_w_consumer_conf_new(&conf, &err);
    if (!pc || !cc)
        return fail("ceiling configuration", &err);
    rd_kafka_conf_set_dr_msg_cb(pc, copy_dr);
    rd_kafka_conf_set_error_cb(pc, NULL);
    rd_kafka_conf_set_opaque(pc, &c);
    rd_kafka_t *prk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr);
    rd_kafka_t *crk = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr);
    if (!prk || !crk)
        return fail("ceiling clients", NULL);
    rd_kafka_poll_set_consumer(crk);
    /* as the worker does at start: the output topic's metadata first */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(prk, out, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(prk, 0, rkt, &md, 5000) == 0)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, in, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(crk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    size_t bmax = with_redis ? (size_t)conf.batch_size : 1;
    rd_kafka_message_t **batch = calloc(bmax, sizeof *batch);
    char(*keys)[2][512] = calloc(bmax, sizeof *keys); /* this batch's, the one before's */
    size_t *klen = calloc(bmax * 2, sizeof *klen);
    size_t nprev = 0;
    resp_t cmds = {0};
    if (!batch || !keys || !klen)
        return fail("floor: out of memory", NULL);
    long taken = 0;
    int64_t first = 0;
    int cur = 0;
    double cpu0 = 0, mcpu0 = 0;
    double rcpu0 = with_redis ? bench_redis_cpu_seconds(conf.redis_url) : -1;
    while (c.delivered + c.failed < n) {
        size_t nb = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(crk, taken < n ? 100 : 0);
        while (m) {
            if (m->err) {
                rd_kafka_message_destroy(m);
            } else {
                if (taken++ == 0) { /* the run's window starts here, as the worker's */
                    cpu0 = cpu_seconds();
                    mcpu0 = machine_cpu_seconds();
                    first = now_us();
                }
                batch[nb++] = m;
            }
            m = nb < bmax ? rd_kafka_consumer_poll(crk, 0) : NULL;
        }
        if (rc && nb + nprev > 0) {
            for (size_t i = 0; i < nprev; i++)
                resp_set(&cmds, keys[i][!cur], klen[i * 2 + !cur], 0, &conf);
            for (size_t i = 0; i < nb; i++) {
                rd_kafka_headers_t *h = NULL;
                rd_kafka_message_headers(batch[i], &h);
                int kl = record_key(h, group, keys[i][cur], sizeof keys[i][cur]);
                if (kl < 0)
                    return fail("floor: a record without ce_id", NULL);
                klen[i * 2 + cur] = (size_t)kl;
                resp_set(&cmds, keys[i][cur], (size_t)kl, 1, &conf);
            }
            if (redis_round_trip(rc, &cmds, nprev + nb))
                return fail("floor: Redis round trip failed", NULL);
            nprev = nb;
            cur = !cur;
        }
        for (size_t i = 0; i < nb; i++) {
            m = batch[i];
            rd_kafka_headers_t *h = NULL, *hc = NULL;
            if (rd_kafka_message_headers(m, &h) == 0 && h)
                hc = rd_kafka_headers_copy(h);
            rd_kafka_resp_err_t e;
            while (
                (e = rd_kafka_producev(
                     prk, RD_KAFKA_V_TOPIC(out), RD_KAFKA_V_KEY(m->key, m->key_len),
                     RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                     RD_KAFKA_V_HEADERS(hc), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(prk, 10);
            if (e) {
                rd_kafka_headers_destroy(hc);
                c.failed++;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(prk, taken < n ? 0 : 10);
    }
    /* the last batch's completions */
    for (size_t i = 0; rc && i < nprev; i++)
        resp_set(&cmds, keys[i][!cur], klen[i * 2 + !cur], 0, &conf);
    if (rc && redis_round_trip(rc, &cmds, nprev))
        return fail("floor: Redis round trip failed", NULL);
    res->eps = (double)n / ((double)(c.last_us - first) / 1e6);
    res->cpu_us = (cpu_seconds() - cpu0) * 1e6 / (double)n;
    res->machine_us = (machine_cpu_seconds() - mcpu0) * 1e6 / (double)n;
    double rcpu1 = rcpu0 >= 0 ? bench_redis_cpu_seconds(conf.redis_url) : -1;
    res->redis_us = rcpu1 >= rcpu0 && rcpu0 >= 0 ? (rcpu1 - rcpu0) * 1e6 / (double)n : 0;
    free(cmds.buf);
    free(batch);
    free(keys);
    free(klen);
    if (rc)
        redisFree(rc);
    rd_kafka_consumer_close(crk);
    rd_kafka_destroy(crk);
    rd_kafka_flush(prk, 10000);
    rd_kafka_destroy(prk);
    return c.failed ? fail("ceiling: some copies failed", NULL) : 0;
}

/* ---- (b), (c) the worker ---- */

typedef struct {
    lev_worker_t *w;
    const char *out_topic;
    int64_t first_us;
    double cpu_first, mcpu_first; /* process and machine CPU at the first record */
    int rc;
} bench_t;

static lev_result_t on_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    bench_t *b = opaque;
    const char *order_id, *customer, *currency, *token;
    int64_t total;
    const avro_value_t *in = &ev->value;
    avro_value_t out;
    if (!b->first_us) { /* the run's window starts here: its start-up is not per event */
        b->cpu_first = cpu_seconds();
        b->mcpu_first = machine_cpu_seconds();
        b->first_us = now_us();
    }
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
    return LEV_RESULT_OK;
}

static void *run(void *arg)
{
    bench_t *b = arg;
    pthread_setname_np(pthread_self(), "lev-worker"); /* for profilers */
    b->rc = lev_worker_run(b->w);
    return NULL;
}

/* ---- (d) a scraper, as Prometheus would be ---- */

typedef struct {
    int port, every_ms;
    _Atomic int stop;
    long scrapes, bytes, failed;
} scraper_t;

/* GET /metrics once; the bytes of the response, or -1. */
static long scrape(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long total = -1;
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        char buf[16384];
        ssize_t r;
        total = 0;
        while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
            total += r;
    }
    if (fd >= 0)
        close(fd);
    return total;
}

static void *scraper(void *arg)
{
    scraper_t *s = arg;
    while (!atomic_load(&s->stop)) {
        long n = scrape(s->port);
        if (n > 0) {
            s->scrapes++;
            s->bytes += n;
        } else {
            s->failed++;
        }
        for (int waited = 0; waited < s->every_ms && !atomic_load(&s->stop); waited += 10)
            usleep(10000);
    }
    return NULL;
}

/* ---- (b), (c), (d) the worker ---- */

static int worker(const lev_config_t *base, const char *in, const char *out, const char *group,
                  int with_redis, int with_metrics, long n, result_t *res)
{
    lev_config_t conf = *base;
    conf.group_id = (char *)group;
    if (!with_redis)
        conf.redis_url = "";
    conf.http_addr = with_metrics ? "127.0.0.1:0" : NULL;
    lev_error_t err;
    bench_t b = {.out_topic = out};
    b.w = lev_worker_new(&conf, &err);
    if (!b.w || lev_worker_on(b.w, "shop.order.OrderPlaced", on_placed, &b, &err) ||
        lev_worker_subscribe(b.w, in, &err) || lev_worker_declare_output(b.w, out, &err))
        return fail("worker", &err);
    scraper_t sc = {.port = lev_worker_http_port(b.w),
                    .every_ms = atoi(getenv("BENCH_SCRAPE_MS") ? getenv("BENCH_SCRAPE_MS") : "")};
    if (sc.every_ms <= 0)
        sc.every_ms = 1000;
    pthread_t sth;
    if (with_metrics)
        pthread_create(&sth, NULL, scraper, &sc);
    double rcpu0 = with_redis ? bench_redis_cpu_seconds(conf.redis_url) : -1;
    pthread_t th;
    pthread_create(&th, NULL, run, &b);
    lev_worker_stats_t st = {0};
    while (st.finished < (uint64_t)n) {
        usleep(1000);
        lev_worker_stats(b.w, &st);
    }
    int64_t end = now_us();
    double cpu1 = cpu_seconds(), mcpu1 = machine_cpu_seconds();
    double rcpu1 = rcpu0 >= 0 ? bench_redis_cpu_seconds(conf.redis_url) : -1;
    if (with_metrics) {
        atomic_store(&sc.stop, 1);
        pthread_join(sth, NULL);
        printf("    /metrics scraped %ld times (%ld bytes each), %ld failed\n", sc.scrapes,
               sc.scrapes ? sc.bytes / sc.scrapes : 0, sc.failed);
    }
    lev_worker_stop(b.w);
    pthread_join(th, NULL);
    res->eps = (double)n / ((double)(end - b.first_us) / 1e6);
    res->cpu_us = (cpu1 - b.cpu_first) * 1e6 / (double)n;
    res->machine_us = (mcpu1 - b.mcpu_first) * 1e6 / (double)n;
    res->redis_us = rcpu1 >= rcpu0 && rcpu0 >= 0 ? (rcpu1 - rcpu0) * 1e6 / (double)n : 0;
    printf("    %llu batches, %llu Redis round trips, %llu produce failures\n",
           (unsigned long long)st.batches, (unsigned long long)st.store_round_trips,
           (unsigned long long)st.produce_failures);
    lev_worker_destroy(b.w);
    return b.rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 50000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (n <= 0 || rounds <= 0 || rounds > 20) {
        fprintf(stderr, "usage: bench_worker [events [rounds]]\n");
        return 64;
    }
    lev_config_t conf;
    lev_error_t err;
    if (lev_config_from_env(&conf, "bench-worker", &err))
        return fail("configuration", &err);
    lev_log_set(lev_log_json, NULL, getenv("BENCH_DEBUG") ? LEV_LOG_DEBUG : LEV_LOG_WARN);
    char in[96];
    snprintf(in, sizeof in, "bench-worker-%d-in", (int)getpid());
    /* its topics: the input, then per run the output, dead-letter and
     * retry topics (20 rounds of 5 runs at most) */
    char *cleanup[1 + 20 * 5 * (2 + LEV_RETRY_LEVELS_MAX)];
    size_t ncleanup = 0;
    cleanup[ncleanup++] = in;
    char *create[] = {in};
    if (admin_topics(&conf, create, 1, 1) || publish(&conf, in, n))
        return 1;
    printf("bench_worker: %ld OrderPlaced, %d partitions, %d rounds; acks=all, idempotent\n", n,
           PARTITIONS, rounds);
    result_t r[5][20];
    memset(r, 0, sizeof r);
    const char *only = getenv("BENCH_ONLY");
    const char *kind[5] = {"copy", "redis", "plain", "metrics", "floor"};
    const char *label[5] = {"(a) ceiling, bare copy       ", "(b) worker, Redis idempotency",
                            "(c) worker, no idempotency   ", "(d) (b) with metrics, scraped ",
                            "(e) (a) + the Redis recipe    "};
    for (int i = 0; i < rounds; i++) {
        /* (b) and (d) side by side, which goes first swapped every round */
        const int order[2][5] = {{0, 4, 1, 3, 2}, {0, 4, 3, 1, 2}};
        for (int o = 0; o < 5; o++) {
            int k = order[i % 2][o];
            if (only && !strchr(only, 'a' + k))
                continue;
            char group[128], out[140];
            snprintf(group, sizeof group, "%s-%s-%d", in, kind[k], i);
            snprintf(out, sizeof out, "%s-out", group);
            char *topics[] = {out};
            admin_topics(&conf, topics, 1, 1);
            char name[160];
            cleanup[ncleanup++] = strdup(out);
            lev_dlq_topic_name(group, name, sizeof name);
            cleanup[ncleanup++] = strdup(name);
            for (int l = 1; l <= conf.retry.levels; l++) {
                lev_retry_topic_name(group, l, name, sizeof name);
                cleanup[ncleanup++] = strdup(name);
            }
            if (k == 4 && !(conf.redis_url && *conf.redis_url))
                continue;
            int rc = k == 0 || k == 4 ? copy_run(&conf, in, out, group, k == 4, n, &r[k][i])
                                      : worker(&conf, in, out, group, k != 2, k == 3, n, &r[k][i]);
            if (rc)
                return 1;
            char redis[40] = "";
            if (r[k][i].redis_us > 0)
                snprintf(redis, sizeof redis, " (Redis %.1f)", r[k][i].redis_us);
            printf("round %d  %s %9.0f events/s  CPU per event: %5.1f us process, %5.1f us "
                   "machine%s  (%ld written)\n",
                   i + 1, label[k], r[k][i].eps, r[k][i].cpu_us, r[k][i].machine_us, redis,
                   topic_count(&conf, out));
            fflush(stdout);
        }
    }
    double med[5][4];
    for (int k = 0; k < 5; k++) {
        double v[4][20];
        for (int i = 0; i < rounds; i++) {
            v[0][i] = r[k][i].eps;
            v[1][i] = r[k][i].cpu_us;
            v[2][i] = r[k][i].machine_us;
            v[3][i] = r[k][i].redis_us;
        }
        for (int m = 0; m < 4; m++)
            med[k][m] = median(v[m], rounds);
    }
    double rb = med[0][0] > 0 ? med[1][0] / med[0][0] : 0;
    double rc = med[0][0] > 0 ? med[2][0] / med[0][0] : 0;
    printf("median: ceiling %.0f events/s (%.1f us machine CPU per event); worker with Redis "
           "%.0f (%.2fx, %.1f us machine, of which the Redis server %.1f), without %.0f (%.2fx, "
           "%.1f us machine)\n",
           med[0][0], med[0][2], med[1][0], rb, med[1][2], med[1][3], med[2][0], rc, med[2][2]);
    /* the worker's CPU against the bare copy's, paired by round: a figure
     * that moves less with the machine's speed than either does */
    double cpur[20];
    int ncpur = 0;
    for (int i = 0; i < rounds; i++)
        if (r[0][i].cpu_us > 0 && r[1][i].cpu_us > 0)
            cpur[ncpur++] = r[1][i].cpu_us / r[0][i].cpu_us;
    if (ncpur)
        printf("process CPU per event: ceiling %.1f us, worker with Redis %.1f us, %.2fx the "
               "ceiling's (median of %d paired rounds)\n",
               med[0][1], med[1][1], median(cpur, ncpur), ncpur);
    /* the recipe's floor: what its Redis commands alone leave of the bare
     * copy's rate, and how much of that the worker reaches (paired) */
    double fr[20], wf[20], br[20];
    int nf = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < rounds; i++)
        if (r[0][i].eps > 0 && r[4][i].eps > 0 && r[1][i].eps > 0 && r[4][i].machine_us > 0) {
            fr[nf] = r[4][i].eps / r[0][i].eps;
            wf[nf] = r[1][i].eps / r[4][i].eps;
            /* were no core ever idle: the machine's cores over its CPU per event */
            br[nf++] = (double)ncpu * 1e6 / r[4][i].machine_us / r[0][i].eps;
        }
    if (nf)
        printf("the recipe's floor: the bare copy with the recipe's two Redis commands per event "
               "and nothing else makes %.0f events/s, %.2fx the bare copy, at %.1f us machine CPU "
               "per event (Redis %.1f); with no core ever idle, %ld cores would allow %.2fx at "
               "most; the worker with Redis makes %.2fx the floor (medians of %d paired rounds)\n",
               med[4][0], median(fr, nf), med[4][2], med[4][3], ncpu, median(br, nf),
               median(wf, nf), nf);
    /* the cost of the metrics: paired by round, (b) and (d) ran together */
    /* and in CPU per event: on a machine whose cores are all busy that is
     * what the rate pays, and it moves far less from round to round */
    double cost[20], ccost[20];
    int ncost = 0;
    for (int i = 0; i < rounds; i++)
        if (r[1][i].eps > 0 && r[3][i].eps > 0 && r[1][i].cpu_us > 0) {
            cost[ncost] = 100.0 * (1.0 - r[3][i].eps / r[1][i].eps);
            ccost[ncost++] = 100.0 * (r[3][i].cpu_us / r[1][i].cpu_us - 1.0);
        }
    double mcost = ncost ? median(cost, ncost) : 0, mccost = ncost ? median(ccost, ncost) : 0;
    if (ncost)
        printf("metrics on and scraped: %.0f events/s against %.0f without (median), %.1f%% "
               "slower; CPU %.1f us against %.1f us per event, %.1f%% more (medians of %d "
               "paired rounds)\n",
               med[3][0], med[1][0], mcost, med[3][1], med[1][1], mccost, ncost);
    admin_topics(&conf, cleanup, ncleanup, 0);
    for (size_t i = 1; i < ncleanup; i++) /* [0] is the input's name, not allocated */
        free(cleanup[i]);
    /* the idempotency keys of the runs' groups ("<in>-<kind>-<round>:..."),
     * kept for a week otherwise: a keyspace grown by earlier runs makes
     * each Redis command of later ones dearer */
    if (conf.redis_url && *conf.redis_url) {
        char pattern[128];
        snprintf(pattern, sizeof pattern, "%s-*", in);
        if (bench_redis_unlink(conf.redis_url, pattern) < 0)
            fprintf(stderr, "bench_worker: cannot delete the keys of this run (%s)\n", pattern);
    }
    printf("metrics_eps=%.0f metrics_cost=%.1f%% metrics_cpu_cost=%.1f%%\n", med[3][0], mcost,
           mccost);
    printf("ceiling_eps=%.0f worker_eps=%.0f ratio=%.2f cpu_us_per_event=%.1f\n", med[0][0],
           med[1][0], rb, med[1][1]);
    lev_config_clear(&conf);
    return 0;
}
