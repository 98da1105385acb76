/*
 * Watching a worker: its metrics, its liveness and readiness, served on
 * its HTTP endpoint (LEV_HTTP_ADDR), and the application's own counters.
 *
 * The worker's thread updates its series without a lock (one writer,
 * relaxed stores; see metrics_internal.h) and publishes what the probes
 * need in atomics: when the loop last turned, where the worker is in its
 * life, whether it is in its group and waits for Redis. Gauges that need a
 * walk over the partitions are updated about once a second. librdkafka's
 * statistics (consumer lag, broker states, the group's state) arrive on
 * the worker's thread every statistics.interval.ms: the JSON is only
 * copied there and handed over under a lock held for a pointer swap; the
 * endpoint's thread parses it when asked.
 *
 * The endpoint's thread never touches the worker's other state. For
 * /readyz it asks Redis itself, on a connection of its own.
 */
#include "trace_internal.h"
#include "worker_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBS_TICK_MS 1000
#define OBS_PROBE_CACHE_MS 1000 /* /readyz asks Redis at most this often */
#define OBS_PROBE_TIMEOUT_MS 1000
#define OBS_STATS_INTERVAL_MS "5000" /* statistics.interval.ms with the endpoint on */

static const double seconds_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                        1,      2.5,     5,      10,    30,     60};
static const double age_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                    5,     10,   30,    60,   120, 300,  900, 3600};
static const double redis_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
static const double batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const pause_reasons[5] = {"hold", "redis", "in-flight-bound", "stopping",
                                             "circuit-breaker"};

/* ======================================================================
 * Making the instruments
 * ====================================================================== */

typedef struct fam_s {
    lev_mx_type_t type;
    const char *name, *help;
    const char *labels[4]; /* NULL-ended */
    const double *bounds;
    size_t nbounds;
} fam_t;

static lev_mx_family_t *fam(lev_worker_t *w, const fam_t *d, int *failed, lev_error_t *err)
{
    if (*failed)
        return NULL;
    lev_mx_family_t *f = lev_mx_family_new(w->obs.mx, d->type, d->name, d->help, d->labels,
                                           d->bounds, d->nbounds, 0, err);
    if (!f)
        *failed = 1;
    return f;
}

static lev_mx_series_t *series(lev_mx_family_t *f, const char *a, const char *b)
{
    const char *v[2] = {a, b};
    return lev_mx_series(f, v);
}

int lev_w_obs_init(lev_worker_t *w, const lev_config_t *conf, lev_error_t *err)
{
    wobs_t *o = &w->obs;
    if (!(o->mx = lev_mx_new()))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if (!conf->http_addr || !*conf->http_addr)
        return LEV_OK;
    o->on = 1;
    o->stall_ms = conf->health_stall_ms > 0 ? conf->health_stall_ms : 30000;
    atomic_store(&o->alive_ms, lev_mono_ms());
    o->stats_mu_ok = pthread_mutex_init(&o->stats_mu, NULL) == 0;
    if (!o->stats_mu_ok)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if (conf->redis_url && *conf->redis_url && !(o->redis_url = strdup(conf->redis_url)))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");

    int failed = 0;
#define FAM(var, ty, nm, hl, ...)                                                                  \
    static const fam_t var = {.type = ty, .name = nm, .help = hl, __VA_ARGS__}
    FAM(info, LEV_MX_GAUGE, "lev_worker_info",
        "The worker's service, consumer group and libevents version; always 1",
        .labels = {"service", "group", "version"});
    lev_mx_family_t *f = fam(w, &info, &failed, err);
    if (f) {
        const char *v[3] = {w->service, w->group, LEV_VERSION_STR};
        lev_mx_set(lev_mx_series(f, v), 1);
    }
    FAM(consumed, LEV_MX_COUNTER, "lev_records_consumed_total",
        "Records taken from the consumer (a record fetched again after a hold counts again)",
        .labels = {"topic", "partition"});
    FAM(finished, LEV_MX_COUNTER, "lev_records_finished_total",
        "Records finished: handled with every output acknowledged, skipped, retried or "
        "dead-lettered; their offsets are stored",
        .labels = {"topic", "partition"});
    FAM(handled, LEV_MX_COUNTER, "lev_records_handled_total",
        "Results of the handlers (and resume functions) by event type; duplicate: skipped, "
        "handled before",
        .labels = {"type", "result"});
    FAM(seconds, LEV_MX_HISTOGRAM, "lev_handler_duration_seconds",
        "Time a handler (or resume function) call took, by event type", .labels = {"type"},
        .bounds = seconds_bounds, .nbounds = N(seconds_bounds));
    FAM(retries, LEV_MX_COUNTER, "lev_retries_total",
        "Retries of records that failed transiently: level 0 in process, level n moved to the "
        "retry topic of level n",
        .labels = {"level"});
    FAM(dead, LEV_MX_COUNTER, "lev_dead_letters_total",
        "Records moved to the group's dead-letter topic, by error class", .labels = {"class"});
    FAM(produce, LEV_MX_COUNTER, "lev_produce_failures_total",
        "Records whose outputs, retry or dead-letter record the broker did not acknowledge "
        "(handled or routed again)",
        .labels = {"route"});
    FAM(batch, LEV_MX_HISTOGRAM, "lev_poll_batch_records",
        "Records per poll batch (batches of at least one)", .bounds = batch_bounds,
        .nbounds = N(batch_bounds));
    FAM(age, LEV_MX_HISTOGRAM, "lev_record_age_seconds",
        "Age of a record when it is finished: now minus its Kafka timestamp", .labels = {"topic"},
        .bounds = age_bounds, .nbounds = N(age_bounds));
    FAM(inflight, LEV_MX_GAUGE, "lev_records_in_flight",
        "Records taken from the consumer and not finished yet", .nbounds = 0);
    FAM(deferred, LEV_MX_GAUGE, "lev_records_deferred",
        "Records waiting for their handler's own work (lev_ctx_defer)", .nbounds = 0);
    FAM(paused, LEV_MX_GAUGE, "lev_partitions_paused",
        "Assigned partitions paused, by reason (a partition may have several)",
        .labels = {"reason"});
    FAM(assigned, LEV_MX_GAUGE, "lev_partitions_assigned", "Partitions assigned to this worker",
        .nbounds = 0);
    FAM(rebalances, LEV_MX_COUNTER, "lev_rebalances_total",
        "Rebalance callbacks: partitions assigned, revoked or lost", .labels = {"event"});
    FAM(claims, LEV_MX_COUNTER, "lev_idempotency_claims_total",
        "Idempotency claims by what Redis said: owned (handle it), done (handled before), busy "
        "(another owner works on it)",
        .labels = {"result"});
    FAM(redis_rt, LEV_MX_COUNTER, "lev_redis_round_trips_total",
        "Round trips to Redis (a pipeline counts once), by connection", .labels = {"connection"});
    FAM(redis_err, LEV_MX_COUNTER, "lev_redis_errors_total",
        "Redis failures: connections lost or refused, timeouts, error replies",
        .labels = {"connection"});
    FAM(redis_s, LEV_MX_HISTOGRAM, "lev_redis_round_trip_seconds",
        "From sending a round trip's commands to having read its last reply (the claims "
        "connection works on a batch meanwhile)",
        .labels = {"connection"}, .bounds = redis_bounds, .nbounds = N(redis_bounds));
    FAM(breaker, LEV_MX_GAUGE, "lev_circuit_breaker_state",
        "State of each circuit breaker: 0 closed, 1 open, 2 half-open", .labels = {"breaker"});
#undef FAM

    o->f_consumed = fam(w, &consumed, &failed, err);
    o->f_finished = fam(w, &finished, &failed, err);
    o->f_handled = fam(w, &handled, &failed, err);
    o->f_seconds = fam(w, &seconds, &failed, err);
    o->f_retries = fam(w, &retries, &failed, err);
    o->f_dead = fam(w, &dead, &failed, err);
    lev_mx_family_t *f_produce = fam(w, &produce, &failed, err);
    lev_mx_family_t *f_batch = fam(w, &batch, &failed, err);
    o->f_age = fam(w, &age, &failed, err);
    lev_mx_family_t *f_inflight = fam(w, &inflight, &failed, err);
    lev_mx_family_t *f_deferred = fam(w, &deferred, &failed, err);
    lev_mx_family_t *f_paused = fam(w, &paused, &failed, err);
    lev_mx_family_t *f_assigned = fam(w, &assigned, &failed, err);
    lev_mx_family_t *f_rebalances = fam(w, &rebalances, &failed, err);
    lev_mx_family_t *f_claims = fam(w, &claims, &failed, err);
    lev_mx_family_t *f_redis_rt = fam(w, &redis_rt, &failed, err);
    lev_mx_family_t *f_redis_err = fam(w, &redis_err, &failed, err);
    lev_mx_family_t *f_redis_s = fam(w, &redis_s, &failed, err);
    o->f_breaker = fam(w, &breaker, &failed, err);
    if (failed)
        return err && err->code ? err->code : LEV_ERR_NOMEM;

    static const char *const routes[3] = {"outputs", "retry", "dead-letter"};
    static const char *const claim_results[W_CLAIM_RESULTS] = {"owned", "done", "busy",
                                                               "dead_lettered"};
    static const char *const events[3] = {"assign", "revoke", "lost"};
    for (int i = 0; i < 3; i++) {
        o->produce_failures[i] = lev_mx_series1(f_produce, routes[i]);
        o->rebalances[i] = lev_mx_series1(f_rebalances, events[i]);
    }
    for (int i = 0; i < W_CLAIM_RESULTS && w->store; i++)
        o->claims[i] = lev_mx_series1(f_claims, claim_results[i]);
    /* every class is there from the start, so a rate of zero is data */
    for (const char *const *c = lev_error_classes(); *c; c++)
        lev_mx_series1(o->f_dead, *c);
    o->retries[0] = lev_mx_series1(o->f_retries, "0");
    o->batch = lev_mx_series(f_batch, NULL);
    o->in_flight = lev_mx_series(f_inflight, NULL);
    o->deferred = lev_mx_series(f_deferred, NULL);
    o->assigned_parts = lev_mx_series(f_assigned, NULL);
    for (int i = 0; i < 5; i++)
        o->paused[i] = lev_mx_series1(f_paused, pause_reasons[i]);
    static const char *const conns[2] = {"claims", "handlers"};
    lev_store_t *stores[2] = {w->store, w->app_store};
    for (int i = 0; i < 2; i++) {
        if (!stores[i])
            continue;
        lev_store_obs_t so = {lev_mx_series1(f_redis_rt, conns[i]),
                              lev_mx_series1(f_redis_err, conns[i]),
                              lev_mx_series1(f_redis_s, conns[i])};
        lev_store_observe(stores[i], &so);
    }
    return LEV_OK;
}

void lev_w_obs_handlers(lev_worker_t *w)
{
    wobs_t *o = &w->obs;
    if (!o->on)
        return;
    static const char *const results[3] = {"ok", "transient", "permanent"};
    for (size_t i = 0; i < w->nhandlers; i++) {
        whandler_t *h = &w->handlers[i];
        for (int k = 0; k < 3; k++)
            h->mx_result[k] = series(o->f_handled, h->type, results[k]);
        h->mx_duplicate = series(o->f_handled, h->type, "duplicate");
        h->mx_seconds = lev_mx_series1(o->f_seconds, h->type);
    }
    /* the retry levels of every policy */
    int levels = w->conf.retry.levels;
    for (size_t i = 0; i < w->nhandlers; i++)
        if (w->handlers[i].has_policy && w->handlers[i].policy.levels > levels)
            levels = w->handlers[i].policy.levels;
    for (int l = 1; l <= levels && l <= LEV_RETRY_LEVELS_MAX; l++) {
        char level[8];
        snprintf(level, sizeof level, "%d", l);
        o->retries[l] = lev_mx_series1(o->f_retries, level);
    }
}

void lev_w_obs_part(lev_worker_t *w, wpart_t *p)
{
    wobs_t *o = &w->obs;
    if (!o->on || p->mx_consumed)
        return;
    char part[16];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    p->mx_consumed = series(o->f_consumed, p->topic, part);
    p->mx_finished = series(o->f_finished, p->topic, part);
    p->mx_age = lev_mx_series1(o->f_age, p->topic);
}

void lev_w_obs_dead_letter(lev_worker_t *w, const char *error_class)
{
    if (w->obs.on)
        lev_mx_add(lev_mx_series1(w->obs.f_dead, error_class ? error_class : "unknown"), 1);
}

void lev_w_obs_state(lev_worker_t *w, int state)
{
    atomic_store(&w->obs.state, state);
}

int lev_w_obs_traces(lev_worker_t *w, lev_error_t *err)
{
    wobs_t *o = &w->obs;
    if (!o->on || !w->tracer)
        return LEV_OK;
    int failed = 0;
    static const fam_t spans = {.type = LEV_MX_COUNTER,
                                .name = "lev_trace_spans_total",
                                .help = "Spans finished, by what became of them: exported to the "
                                        "OTLP endpoint, or dropped (queue full, export failed)",
                                .labels = {"result"}};
    static const fam_t fails = {.type = LEV_MX_COUNTER,
                                .name = "lev_trace_export_failures_total",
                                .help = "OTLP export requests that failed (their spans dropped)"};
    lev_mx_family_t *f = fam(w, &spans, &failed, err), *g = fam(w, &fails, &failed, err);
    if (failed)
        return err && err->code ? err->code : LEV_ERR_NOMEM;
    o->spans_exported = lev_mx_series1(f, "exported");
    o->spans_dropped = lev_mx_series1(f, "dropped");
    o->span_exports_failed = lev_mx_series(g, NULL);
    return LEV_OK;
}

void lev_w_obs_tick(lev_worker_t *w, int64_t now)
{
    wobs_t *o = &w->obs;
    if (!o->on)
        return;
    atomic_store_explicit(&o->alive_ms, now, memory_order_relaxed);
    if (now < o->tick_at)
        return;
    o->tick_at = now + OBS_TICK_MS;
    int64_t paused[5] = {0}, assigned = 0;
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (wpart_t *p = w->buckets[i]; p; p = p->hnext) {
            if (!p->assigned)
                continue;
            assigned++;
            for (int b = 0; b < 5; b++)
                paused[b] += (p->pause >> b) & 1u;
        }
    }
    for (int b = 0; b < 5; b++)
        lev_mx_set(o->paused[b], paused[b]);
    lev_mx_set(o->assigned_parts, assigned);
    atomic_store(&o->nassigned, (int)assigned);
    lev_mx_set(o->in_flight, (int64_t)w->inflight);
    lev_mx_set(o->deferred, (int64_t)w->ndeferred);
    atomic_store(&o->store_down, w->store_down);
    for (lev_breaker_t *b = w->breakers; b; b = b->next)
        lev_mx_set(lev_mx_series1(o->f_breaker, b->name), atomic_load(&b->state));
    if (w->tracer) {
        lev_tracer_stats_t ts;
        lev_tracer_stats(w->tracer, &ts);
        lev_mx_set(o->spans_exported, (int64_t)ts.exported);
        lev_mx_set(o->spans_dropped, (int64_t)ts.dropped);
        lev_mx_set(o->span_exports_failed, (int64_t)ts.failed_requests);
    }
}

/* ======================================================================
 * librdkafka's statistics
 * ====================================================================== */

/* The consumer's statistics callback (on the worker's thread, from the
 * consumer's poll): keeps a copy for the endpoint. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    lev_worker_t *w = opaque;
    (void)rk;
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, json, len);
    copy[len] = '\0';
    pthread_mutex_lock(&w->obs.stats_mu);
    char *old = w->obs.stats;
    w->obs.stats = copy;
    w->obs.stats_at_ms = lev_mono_ms();
    pthread_mutex_unlock(&w->obs.stats_mu);
    free(old);
    return 0; /* librdkafka frees its buffer */
}

void lev_w_obs_consumer_conf(lev_worker_t *w, rd_kafka_conf_t *kc)
{
    if (!w->obs.on)
        return;
    rd_kafka_conf_set_stats_cb(kc, stats_cb);
    char value[32];
    size_t n = sizeof value;
    if (rd_kafka_conf_get(kc, "statistics.interval.ms", value, &n) == RD_KAFKA_CONF_OK)
        w->obs.stats_interval_ms = atoll(value);
}

/* The latest statistics, parsed (NULL when none), and their age in ms. */
static json_t *stats_get(lev_worker_t *w, int64_t *age_ms)
{
    char *copy = NULL;
    int64_t at = 0;
    pthread_mutex_lock(&w->obs.stats_mu);
    if (w->obs.stats)
        copy = strdup(w->obs.stats);
    at = w->obs.stats_at_ms;
    pthread_mutex_unlock(&w->obs.stats_mu);
    if (!copy)
        return NULL;
    json_t *j = json_loads(copy, 0, NULL);
    free(copy);
    *age_ms = lev_mono_ms() - at;
    return j;
}

/* Brokers of the cluster that are up (*known: those listed). */
static int brokers_up(const json_t *stats, int *known)
{
    int up = 0;
    const char *name;
    json_t *b;
    *known = 0;
    json_object_foreach(json_object_get(stats, "brokers"), name, b)
    {
        /* bootstrap entries have no node id yet; the coordinator is a
         * logical alias of a broker listed anyway */
        const char *source = json_string_value(json_object_get(b, "source"));
        if (json_integer_value(json_object_get(b, "nodeid")) < 0 ||
            (source && (strcmp(source, "logical") == 0 || strcmp(source, "internal") == 0)))
            continue;
        (*known)++;
        const char *state = json_string_value(json_object_get(b, "state"));
        up += state && strcmp(state, "UP") == 0;
    }
    return up;
}

/* The group is joined, per the statistics. */
static int stats_joined(const json_t *stats)
{
    const json_t *cg = json_object_get(stats, "cgrp");
    const char *state = json_string_value(json_object_get(cg, "state"));
    const char *join = json_string_value(json_object_get(cg, "join_state"));
    return state && join && strcmp(state, "up") == 0 && strcmp(join, "steady") == 0;
}

/* lev_consumer_lag and lev_kafka_brokers_up from the statistics. */
static void render_stats(lev_worker_t *w, lev_mx_buf_t *b)
{
    int64_t age = 0;
    json_t *st = stats_get(w, &age);
    if (!st)
        return;
    static const char *const names[2] = {"topic", "partition"};
    int header = 0;
    const char *tname, *pname;
    json_t *t, *p;
    json_object_foreach(json_object_get(st, "topics"), tname, t)
    {
        json_object_foreach(json_object_get(t, "partitions"), pname, p)
        {
            json_int_t lag = json_integer_value(json_object_get(p, "consumer_lag"));
            if (strcmp(pname, "-1") == 0 || !json_is_true(json_object_get(p, "desired")) ||
                !json_is_integer(json_object_get(p, "consumer_lag")) || lag < 0)
                continue;
            if (!header++)
                lev_mx_write_header(b, "lev_consumer_lag",
                                    "Records between the committed offset and the end of each "
                                    "assigned partition (librdkafka statistics)",
                                    LEV_MX_GAUGE);
            const char *values[2] = {tname, pname};
            char v[32];
            snprintf(v, sizeof v, "%lld", (long long)lag);
            lev_mx_write_sample(b, "lev_consumer_lag", names, values, 2, v);
        }
    }
    int known;
    char v[16];
    snprintf(v, sizeof v, "%d", brokers_up(st, &known));
    lev_mx_write_header(b, "lev_kafka_brokers_up",
                        "Brokers the consumer is connected to (librdkafka statistics)",
                        LEV_MX_GAUGE);
    lev_mx_write_sample(b, "lev_kafka_brokers_up", NULL, NULL, 0, v);
    json_decref(st);
}

/* ======================================================================
 * The routes (on the endpoint's thread)
 * ====================================================================== */

/* The schema registry client's counters (atomics: read on this thread). */
static void render_registry(lev_worker_t *w, lev_mx_buf_t *b)
{
    if (!w->registry)
        return;
    lev_registry_stats_t st;
    lev_registry_stats(w->registry, &st);
    const struct {
        const char *name, *help;
        uint64_t v;
    } rows[] = {
        {"lev_schema_registry_requests_total",
         "HTTP requests to the schema registry, retries included", st.requests},
        {"lev_schema_registry_failures_total",
         "Schema registry calls that failed in a way that may pass (no answer, HTTP 5xx); "
         "records wait meanwhile",
         st.failures},
        {"lev_schema_registry_schemas_fetched_total",
         "Lookups of a writer schema by id that asked the registry (an id once found is never "
         "asked again)",
         st.cache_misses},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)rows[i].v);
        lev_mx_write_header(b, rows[i].name, rows[i].help, LEV_MX_COUNTER);
        lev_mx_write_sample(b, rows[i].name, NULL, NULL, 0, v);
    }
}

static int route_metrics(void *arg, lev_mx_buf_t *b)
{
    lev_worker_t *w = arg;
    lev_mx_render(w->obs.mx, b);
    render_stats(w, b);
    render_registry(w, b);
    lev_mx_render_process(b);
    return 200;
}

/* Appends j (consumed) as one line of JSON. */
static void put_json(lev_mx_buf_t *b, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) {
        lev_mx_buf_append(b, s, strlen(s));
        lev_mx_buf_append(b, "\n", 1);
    } else {
        b->failed = 1;
    }
    free(s);
    json_decref(j);
}

static const char *state_name(int state)
{
    static const char *const names[] = {"starting", "running", "stopping", "stopped"};
    return state >= 0 && state <= OBS_STOPPED ? names[state] : "unknown";
}

static int route_healthz(void *arg, lev_mx_buf_t *b)
{
    lev_worker_t *w = arg;
    int64_t idle = lev_mono_ms() - atomic_load(&w->obs.alive_ms);
    int state = atomic_load(&w->obs.state);
    const char *status = "ok";
    if (state == OBS_STOPPED)
        status = "stopped";
    else if (idle > w->obs.stall_ms)
        status = "stalled";
    put_json(b,
             json_pack("{s:s,s:s,s:I,s:I}", "status", status, "worker", state_name(state),
                       "loop_idle_ms", (json_int_t)idle, "stall_ms", (json_int_t)w->obs.stall_ms));
    return strcmp(status, "ok") == 0 ? 200 : 503;
}

/* Asks Redis (on the endpoint's own connection) at most once per
 * OBS_PROBE_CACHE_MS; "" in probe_err when it answered. */
static void probe_redis(wobs_t *o)
{
    int64_t now = lev_mono_ms();
    if (o->probe_at_ms && now - o->probe_at_ms < OBS_PROBE_CACHE_MS)
        return;
    o->probe_at_ms = now;
    lev_error_t err = {0};
    if (!o->probe)
        o->probe = lev_store_new(o->redis_url, OBS_PROBE_TIMEOUT_MS, &err);
    if (o->probe && lev_store_ping(o->probe, &err) == 0) {
        o->probe_err[0] = '\0';
        return;
    }
    snprintf(o->probe_err, sizeof o->probe_err, "%.200s", err.text[0] ? err.text : "no answer");
}

static int route_readyz(void *arg, lev_mx_buf_t *b)
{
    lev_worker_t *w = arg;
    wobs_t *o = &w->obs;
    char reason[400] = "";
    int state = atomic_load(&o->state);
    int64_t age = 0;
    json_t *st = o->stats_interval_ms > 0 ? stats_get(w, &age) : NULL;
    int64_t stale_ms = o->stats_interval_ms * 3 + 10000;
    int known = 0, up = st ? brokers_up(st, &known) : 0;
    if (state != OBS_RUNNING) {
        snprintf(reason, sizeof reason, "the worker is %s", state_name(state));
    } else if (!atomic_load(&o->joined) && !(st && stats_joined(st))) {
        snprintf(reason, sizeof reason, "not in consumer group %s yet", w->group);
    } else if (st && age > stale_ms) {
        snprintf(reason, sizeof reason, "kafka: no statistics from the consumer for %lld ms",
                 (long long)age);
    } else if (st && known > 0 && up == 0) {
        snprintf(reason, sizeof reason, "kafka: no broker is up");
    } else if (o->redis_url && atomic_load(&o->store_down)) {
        snprintf(reason, sizeof reason, "redis: the worker is waiting for it");
    } else if (o->redis_url) {
        probe_redis(o);
        if (o->probe_err[0])
            snprintf(reason, sizeof reason, "redis: %s", o->probe_err);
    }
    json_decref(st);
    if (reason[0]) {
        put_json(b, json_pack("{s:s,s:s}", "status", "not ready", "reason", reason));
        return 503;
    }
    put_json(b,
             json_pack("{s:s,s:i}", "status", "ready", "partitions", atomic_load(&o->nassigned)));
    return 200;
}

int lev_w_obs_serve(lev_worker_t *w, const lev_config_t *conf, lev_error_t *err)
{
    if (!w->obs.on)
        return LEV_OK;
    lev_http_routes_t routes = {route_metrics, route_healthz, route_readyz, w};
    if (!(w->obs.http = lev_http_start(conf->http_addr, &routes, err)))
        return err && err->code ? err->code : LEV_ERR_IO;
    char port[16];
    snprintf(port, sizeof port, "%d", lev_http_port(w->obs.http));
    lev_log(LEV_LOG_INFO, "serving /metrics, /healthz and /readyz", "address", conf->http_addr,
            "port", port, NULL);
    return LEV_OK;
}

void lev_w_obs_free(lev_worker_t *w)
{
    wobs_t *o = &w->obs;
    lev_http_stop(o->http); /* first: its thread reads what follows */
    o->http = NULL;
    lev_store_destroy(o->probe);
    free(o->redis_url);
    free(o->stats);
    if (o->stats_mu_ok)
        pthread_mutex_destroy(&o->stats_mu);
    lev_mx_destroy(o->mx);
    memset(o, 0, sizeof *o);
}

/* ======================================================================
 * The application's counters
 * ====================================================================== */

lev_counter_t *lev_metrics_counter_new(lev_worker_t *w, const char *name, const char *help,
                                       const char *const *label_names, lev_error_t *err)
{
    if (!w || !w->obs.mx || !name) {
        lev_error_set(err, LEV_ERR_ARG, name, "a worker and a name are required");
        return NULL;
    }
    size_t len = strlen(name);
    if (len < 7 || strcmp(name + len - 6, "_total") != 0) {
        lev_error_set(err, LEV_ERR_ARG, name, "a counter's name ends in _total");
        return NULL;
    }
    if (strncmp(name, "lev_", 4) == 0 || strncmp(name, "process_", 8) == 0) {
        lev_error_set(err, LEV_ERR_ARG, name, "names starting lev_ or process_ are the worker's");
        return NULL;
    }
    return (lev_counter_t *)lev_mx_family_new(w->obs.mx, LEV_MX_COUNTER, name, help, label_names,
                                              NULL, 0, LEV_COUNTER_SERIES_MAX, err);
}

void lev_counter_add(lev_counter_t *c, const char *const *label_values, uint64_t n)
{
    lev_mx_family_t *f = (lev_mx_family_t *)c;
    if (f)
        lev_mx_add_shared(lev_mx_series(f, label_values), n);
}

void lev_counter_inc(lev_counter_t *c, const char *const *label_values)
{
    lev_counter_add(c, label_values, 1);
}

int lev_worker_http_port(const lev_worker_t *w)
{
    return w ? lev_http_port(w->obs.http) : 0;
}
