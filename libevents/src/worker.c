/*
 * The consumer-group worker: lifecycle, configuration calls and the run
 * loop. The loop serves the producer's delivery reports, finishes records
 * in offset order, resumes partitions whose time has come, takes the next
 * poll batch and hands it to the pipeline (worker_pipeline.c); when there
 * is nothing to do it sleeps in poll(2) until librdkafka has something for
 * it (both clients' queues write to a pipe), a timer is due, or it is
 * asked to stop. It never sleeps while records wait to be handled.
 */
#include "codec_internal.h"
#include "trace_internal.h"
#include "worker_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================
 * Names
 * ====================================================================== */

void lev_retry_topic_name(const char *group, int level, char *out, size_t size)
{
    snprintf(out, size, "%s.retry.%d", group, level);
}

void lev_dlq_topic_name(const char *group, char *out, size_t size)
{
    snprintf(out, size, "%s.dlq", group);
}

int lev_w_retry_level(const lev_worker_t *w, const char *topic)
{
    size_t glen = strlen(w->group);
    if (strncmp(topic, w->group, glen) != 0 || strncmp(topic + glen, ".retry.", 7) != 0)
        return 0;
    const char *d = topic + glen + 7;
    int level = 0;
    for (; *d >= '0' && *d <= '9' && level <= LEV_RETRY_LEVELS_MAX; d++)
        level = level * 10 + (*d - '0');
    return *d == '\0' && level > 0 && level <= LEV_RETRY_LEVELS_MAX ? level : 0;
}

const lev_retry_policy_t *lev_w_policy(const lev_worker_t *w, const whandler_t *h)
{
    return h && h->has_policy ? &h->policy : &w->conf.retry;
}

/* ======================================================================
 * Lifecycle
 * ====================================================================== */

rd_kafka_conf_t *lev_w_consumer_conf_new(const lev_config_t *conf, lev_error_t *err)
{
    const lev_kv_t defaults[] = {
        {"group.id", conf->group_id},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        {"topic.metadata.refresh.interval.ms", "10000"},
        /* members come and go without stopping the others (see README) */
        {"partition.assignment.strategy", "cooperative-sticky"},
        /* consumer lag and broker states for /metrics and /readyz */
        {conf->http_addr && *conf->http_addr ? "statistics.interval.ms" : NULL, "5000"},
        {NULL, NULL},
    };
    return lev_kafka_conf_new(conf, RD_KAFKA_CONSUMER, defaults, NULL, err);
}

rd_kafka_conf_t *lev_w_producer_conf_new(const lev_config_t *conf, lev_error_t *err)
{
    const lev_kv_t defaults[] = {
        /* the loop sends each batch's outputs and goes on: a short linger
         * keeps latency low, and outputs queue behind in-flight requests
         * under load, which batches them anyway */
        {"linger.ms", "1"},
        {NULL, NULL},
    };
    return lev_producer_conf_new(conf, defaults, NULL, err);
}

/* The consumer's client errors (served by its polls, on the worker's
 * thread): logged as librdkafka would without a callback, and kept for
 * the start (worker_admin.c). librdkafka recovers from all but fatal ones. */
static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    lev_worker_t *w = opaque;
    (void)rk;
    if (!w->client_error_fatal) /* a refusal is what the start reports */
        snprintf(w->client_error, sizeof w->client_error, "%s", reason ? reason : "");
    if (lev_kafka_err_is_auth(err) || err == RD_KAFKA_RESP_ERR__SSL)
        w->client_error_fatal = 1;
    lev_log(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT
                ? LEV_LOG_WARN
                : LEV_LOG_ERROR,
            "consumer client error", "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), "reason",
            reason, NULL);
}

static rd_kafka_t *consumer_new(lev_worker_t *w, const lev_config_t *conf, lev_error_t *err)
{
    rd_kafka_conf_t *kc = lev_w_consumer_conf_new(conf, err);
    if (!kc)
        return NULL;
    rd_kafka_conf_set_opaque(kc, w);
    rd_kafka_conf_set_rebalance_cb(kc, lev_w_rebalance_cb);
    rd_kafka_conf_set_error_cb(kc, consumer_error_cb);
    lev_w_obs_consumer_conf(w, kc);
    char errstr[512], value[32];
    size_t vlen = sizeof value;
    if (rd_kafka_conf_get(kc, "max.poll.interval.ms", value, &vlen) == RD_KAFKA_CONF_OK)
        w->max_poll_interval_ms = atoi(value);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(kc);
        lev_error_set(err, LEV_ERR_KAFKA, NULL, "cannot create consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int wake_pipe_open(lev_worker_t *w)
{
    if (pipe(w->wake) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(w->wake[i], F_SETFL, fcntl(w->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(w->wake[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

lev_worker_t *lev_worker_new(const lev_config_t *conf, lev_error_t *err)
{
    if (!conf || !conf->service || !conf->group_id) {
        lev_error_set(err, LEV_ERR_ARG, NULL, "configuration without service or group");
        return NULL;
    }
    lev_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    w->wake[0] = w->wake[1] = -1;
    w->conf = *conf;
    w->conf.kafka = NULL; /* not kept: the clients took their copies */
    w->conf.nkafka = 0;
    w->conf.http_addr = NULL;
    w->service = strdup(conf->service);
    w->group = strdup(conf->group_id);
    w->source = strdup(conf->source ? conf->source : "/libevents");
    w->max_poll_interval_ms = 300000;
    w->ctx.w = w;
    w->defer_mu_ok = pthread_mutex_init(&w->defer_mu, NULL) == 0;
    if (!w->service || !w->group || !w->source || !w->defer_mu_ok) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (strlen(w->group) > W_NAME_MAX - 16) {
        lev_error_set(err, LEV_ERR_CONFIG, "LEV_GROUP_ID", "longer than %d characters",
                      W_NAME_MAX - 16);
        goto fail;
    }
    if (wake_pipe_open(w) != 0) {
        lev_error_set(err, LEV_ERR_IO, NULL, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    w->schemas = lev_schemas_new();
    if (!w->schemas || lev_schemas_load_path(w->schemas, conf->schema_dirs, err) != 0)
        goto fail;
    w->codec = lev_codec_new(w->schemas, &conf->limits);
    if (!w->codec) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (lev_w_registry_init(w, err) != 0)
        goto fail;
    /* the producer's client is made at run, once the topics' record size
     * limit is known; a bad setting fails here */
    if (!(w->producer_conf = lev_w_producer_conf_new(conf, err)))
        goto fail;
    for (size_t i = 0; i < conf->nkafka; i++)
        if (strcmp(conf->kafka[i].key, "message.max.bytes") == 0)
            w->user_max_message_bytes = 1;
    /* two connections: the engine's claims overlap with handlers' own calls */
    if (conf->redis_url && conf->redis_url[0] &&
        (!(w->store = lev_store_new(conf->redis_url, 5000, err)) ||
         !(w->app_store = lev_store_new(conf->redis_url, 5000, err))))
        goto fail;
    if (lev_w_obs_init(w, conf, err) != 0)
        goto fail;
    if (lev_tracer_new(w->service, &w->tracer, err) != 0 || lev_w_obs_traces(w, err) != 0)
        goto fail;
    if (!(w->rk = consumer_new(w, conf, err)))
        goto fail;
    w->consumer_q = rd_kafka_queue_get_consumer(w->rk);
    rd_kafka_queue_io_event_enable(w->consumer_q, w->wake[1], "c", 1);
    if (lev_w_obs_serve(w, conf, err) != 0)
        goto fail;
    w->conf.http_addr = NULL; /* not kept: the endpoint is made */
    return w;
fail:
    lev_worker_destroy(w);
    return NULL;
}

/* Frees the records still held: in partitions, on the ready list, free. */
static void records_free(lev_worker_t *w)
{
    for (size_t i = 0; i < w->nbuckets; i++)
        for (wpart_t *p = w->buckets[i]; p; p = p->hnext)
            lev_w_abandon_from(w, p, p->head);
    lev_w_process_ready(w); /* abandoned ones whose last report came in */
    for (wrec_t *r = w->free_recs, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    w->free_recs = NULL;
}

void lev_worker_destroy(lev_worker_t *w)
{
    if (!w)
        return;
    lev_w_obs_state(w, OBS_STOPPED);
    lev_w_signals_remove(w);
    lev_w_defer_shutdown(w);
    /* reports still owed arrive here, for records given up: they go to the
     * ready list and are freed below */
    if (w->producer) {
        lev_producer_set_wakeup_fd(w->producer, -1);
        lev_producer_destroy(w->producer);
    }
    /* every consumed message goes back before the consumer: librdkafka's
     * destroy waits for the last one */
    records_free(w);
    /* claims of records given up only now (deferrals resumed after run
     * returned) are released, so the next owner need not wait for their
     * leases */
    if (w->store && !w->store_down && lev_w_pending_settles(w))
        lev_w_settle(w);
    lev_w_parts_free(w);
    /* the last spans (records freed above included) go out, within the
     * shutdown bound */
    if (w->tracer) {
        lev_w_spans_flush(w);
        lev_tracer_destroy(w->tracer,
                           w->conf.shutdown_timeout_ms > 0 ? w->conf.shutdown_timeout_ms : 5000);
        w->tracer = NULL;
    }
    free(w->spans);
    if (w->consumer_q) {
        rd_kafka_queue_io_event_enable(w->consumer_q, -1, NULL, 0);
        rd_kafka_queue_destroy(w->consumer_q);
    }
    if (w->rk)
        rd_kafka_destroy(w->rk);
    w->rk = NULL;
    if (w->producer_conf)
        rd_kafka_conf_destroy(w->producer_conf);
    lev_w_ctx_free(&w->ctx);
    lev_w_breakers_free(w);
    if (w->defer_mu_ok)
        pthread_mutex_destroy(&w->defer_mu);
    for (size_t i = 0; i < w->nschemas; i++)
        if (w->have_value && w->have_value[i])
            avro_value_decref(&w->values[i]);
    free(w->values);
    free(w->have_value);
    free(w->by_schema);
    lev_store_destroy(w->store);
    lev_store_destroy(w->app_store);
    lev_w_obs_free(w); /* after the stores, which count into its series */
    lev_codec_destroy(w->codec);
    lev_w_registry_free(w); /* after the codec, which borrows it */
    lev_schemas_destroy(w->schemas);
    for (size_t i = 0; i < w->nhandlers; i++) {
        free(w->handlers[i].type);
        free(w->handlers[i].state_prefix);
    }
    for (size_t i = 0; i < w->ntopics; i++)
        free(w->topics[i]);
    for (size_t i = 0; i < w->noutputs; i++)
        free(w->outputs[i]);
    lev_w_state_free(w);
    for (int i = 0; i < 2; i++) {
        lev_w_keys_free(&w->done[i]);
        lev_w_keys_free(&w->rel[i]);
        lev_w_keys_free(&w->renew[i]);
        lev_w_keys_free(&w->claims[i]);
        lev_w_keys_free(&w->dead[i]);
        lev_w_keys_free(&w->deadmark[i]);
        lev_w_keys_free(&w->claimmark[i]);
    }
    free(w->claim_res);
    free(w->renew_ok);
    free(w->batch);
    free(w->prev);
    for (int i = 0; i < 2; i++)
        if (w->wake[i] >= 0)
            close(w->wake[i]);
    free(w->service);
    free(w->group);
    free(w->source);
    free(w);
}

int lev_worker_on(lev_worker_t *w, const char *type, lev_handler_fn fn, void *opaque,
                  lev_error_t *err)
{
    if (!w || !type || !fn)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "worker, type and handler are required");
    if (w->running)
        return lev_error_set(err, LEV_ERR_STATE, type, "the worker is running");
    if (!lev_schemas_find(w->schemas, type))
        return lev_error_set(err, LEV_ERR_NOT_FOUND, type,
                             "no schema of this type is loaded (LEV_SCHEMA_DIRS)");
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].type, type) == 0)
            return lev_error_set(err, LEV_ERR_ARG, type, "a handler is registered already");
    if (w->nhandlers == W_MAX_HANDLERS)
        return lev_error_set(err, LEV_ERR_ARG, type, "too many handlers");
    whandler_t *h = &w->handlers[w->nhandlers];
    memset(h, 0, sizeof *h);
    if (!(h->type = strdup(type)))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    h->fn = fn;
    h->opaque = opaque;
    w->nhandlers++;
    return LEV_OK;
}

static whandler_t *handler_find(lev_worker_t *w, const char *type)
{
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].type, type) == 0)
            return &w->handlers[i];
    return NULL;
}

int lev_worker_retry_policy(lev_worker_t *w, const char *type, const lev_retry_policy_t *policy)
{
    whandler_t *h = w && type && policy && !w->running ? handler_find(w, type) : NULL;
    if (!h || policy->attempts < 1 || policy->levels < 0 || policy->levels > LEV_RETRY_LEVELS_MAX)
        return LEV_ERR_ARG;
    h->policy = *policy;
    h->has_policy = 1;
    return LEV_OK;
}

/* Adds a copy of name to list (of at most max) unless it is there. */
static int name_add(char **list, size_t *n, size_t max, const char *name, lev_error_t *err)
{
    if (!name || !*name || strlen(name) >= W_NAME_MAX)
        return lev_error_set(err, LEV_ERR_ARG, name, "invalid topic name");
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i], name) == 0)
            return LEV_OK;
    if (*n == max)
        return lev_error_set(err, LEV_ERR_ARG, name, "too many topics");
    if (!(list[*n] = strdup(name)))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    (*n)++;
    return LEV_OK;
}

int lev_worker_subscribe(lev_worker_t *w, const char *topic, lev_error_t *err)
{
    if (!w)
        return lev_error_set(err, LEV_ERR_ARG, topic, "no worker");
    if (w->running)
        return lev_error_set(err, LEV_ERR_STATE, topic, "the worker is running");
    return name_add(w->topics, &w->ntopics, W_MAX_TOPICS, topic, err);
}

int lev_worker_declare_output(lev_worker_t *w, const char *topic, lev_error_t *err)
{
    if (!w)
        return lev_error_set(err, LEV_ERR_ARG, topic, "no worker");
    if (w->running)
        return lev_error_set(err, LEV_ERR_STATE, topic, "the worker is running");
    return name_add(w->outputs, &w->noutputs, W_MAX_OUTPUTS, topic, err);
}

void lev_w_wake(lev_worker_t *w)
{
    if (w->wake[1] >= 0) {
        ssize_t n = write(w->wake[1], "w", 1);
        (void)n; /* a full pipe wakes the loop all the same */
    }
}

void lev_worker_stop(lev_worker_t *w)
{
    if (!w)
        return;
    w->stop = 1;
    lev_w_wake(w);
}

int lev_worker_stop_on_signals(lev_worker_t *w)
{
    if (!w)
        return LEV_ERR_ARG;
    return lev_w_signals_add(w);
}

const lev_schemas_t *lev_worker_schemas(const lev_worker_t *w)
{
    return w->schemas;
}

lev_codec_t *lev_worker_codec(lev_worker_t *w)
{
    return w->codec;
}

lev_store_t *lev_worker_store(lev_worker_t *w)
{
    return w->app_store;
}

rd_kafka_t *lev_worker_producer_client(lev_worker_t *w)
{
    return w && w->producer ? lev_producer_client(w->producer) : NULL;
}

#define STAT(f) atomic_load_explicit(&w->stats.f, memory_order_relaxed)

void lev_worker_stats(const lev_worker_t *w, lev_worker_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!w)
        return;
    out->received = STAT(received);
    out->handled = STAT(handled);
    out->skipped_duplicates = STAT(skipped_duplicates);
    out->emitted = STAT(emitted);
    out->retried_inprocess = STAT(retried_inprocess);
    out->sent_to_retry = STAT(sent_to_retry);
    out->dead_lettered = STAT(dead_lettered);
    out->batches = STAT(batches);
    out->finished = STAT(finished);
    out->produce_failures = STAT(produce_failures);
    out->rebalances = STAT(rebalances);
    out->given_up_waiting = STAT(given_up_waiting);
    out->in_flight_peak = STAT(in_flight_peak);
    out->deferred = STAT(deferred);
    out->deferred_peak = STAT(deferred_peak);
    out->breaker_waits = STAT(breaker_waits);
    out->store_round_trips = w->store ? lev_store_round_trips(w->store) : 0;
    out->state_round_trips = w->app_store ? lev_store_round_trips(w->app_store) : 0;
    out->state_conflicts = STAT(state_conflicts);
}

/* ======================================================================
 * The run loop
 * ====================================================================== */

/* Maps every loaded schema (writer versions included) to the handler of
 * its name, and makes room for one reusable decoded value per schema. */
static int build_dispatch(lev_worker_t *w)
{
    size_t n = lev_schemas_count(w->schemas);
    w->by_schema = calloc(n ? n : 1, sizeof *w->by_schema);
    w->values = calloc(n ? n : 1, sizeof *w->values);
    w->have_value = calloc(n ? n : 1, sizeof *w->have_value);
    if (!w->by_schema || !w->values || !w->have_value)
        return LEV_ERR_NOMEM;
    w->nschemas = n;
    for (size_t i = 0; i < n; i++)
        w->by_schema[i] = handler_find(w, lev_schema_name(lev_schemas_at(w->schemas, i)));
    return LEV_OK;
}

/* Takes up to a batch of records from the consumer without waiting (the
 * local queue drained is a batch); serves rebalances on the way. */
static size_t poll_batch(lev_worker_t *w)
{
    size_t room = (size_t)w->conf.batch_size;
    if (w->inflight >= (size_t)w->conf.max_in_flight)
        room = 1; /* paused meanwhile: only stragglers, if any */
    else if (w->inflight + room > (size_t)w->conf.max_in_flight)
        room = (size_t)w->conf.max_in_flight - w->inflight;
    while (w->nbatch < room) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 0);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                lev_log(m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? LEV_LOG_DEBUG
                                                                          : LEV_LOG_WARN,
                        "consumer error", "error", rd_kafka_message_errstr(m), NULL);
            rd_kafka_message_destroy(m);
            continue;
        }
        wrec_t *r = lev_w_rec_take(w, m);
        if (r)
            w->batch[w->nbatch++] = r;
    }
    return w->nbatch;
}

/* Pauses fetching while too many records (or bytes, or deferred records)
 * are held; resumes once half of them are finished. */
static void update_flow(lev_worker_t *w)
{
    size_t max = (size_t)w->conf.max_in_flight, maxb = w->conf.max_in_flight_bytes;
    size_t maxd = (size_t)w->conf.max_deferred;
    if (!w->full && (w->inflight >= max || w->inflight_bytes >= maxb || w->ndeferred >= maxd)) {
        w->full = 1;
        lev_w_pause_all(w, PAUSE_FULL);
        lev_log(LEV_LOG_DEBUG, "in-flight bound reached; fetching paused", NULL);
    } else if (w->full && w->inflight <= max / 2 && w->inflight_bytes <= maxb / 2 &&
               w->ndeferred <= maxd / 2) {
        w->full = 0;
        lev_w_unpause_all(w, PAUSE_FULL);
    }
}

/* While Redis is down: pings it with backoff (100 ms doubling to 5 s);
 * once it answers, sends what waits to be settled and resumes. Returns ms
 * until the next ping. */
static int store_watch(lev_worker_t *w)
{
    int64_t now = lev_mono_ms();
    if (now < w->store_retry_at)
        return (int)(w->store_retry_at - now);
    lev_error_t err;
    if (lev_store_ping(w->store, &err) != 0) {
        char d[16];
        snprintf(d, sizeof d, "%d", w->store_delay_ms);
        lev_log(LEV_LOG_WARN, "waiting for the idempotency store", "retry_in_ms", d, "error",
                err.text, NULL);
        w->store_retry_at = now + w->store_delay_ms;
        w->store_delay_ms = w->store_delay_ms * 2 > 5000 ? 5000 : w->store_delay_ms * 2;
        return (int)(w->store_retry_at - now);
    }
    w->store_down = 0;
    if (lev_w_settle(w) != 0)
        return 100; /* lost again */
    lev_w_unpause_all(w, PAUSE_STORE);
    lev_log(LEV_LOG_INFO, "idempotency store is back", NULL);
    return 1000;
}

/* Sleeps until librdkafka has something for us, the stop flag or a signal
 * wakes us, or timeout_ms passes. */
static void wait_for_work(lev_worker_t *w, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = w->wake[0], .events = POLLIN}, {.fd = -1}};
    int n = 1, sfd = lev_w_signals_fd();
    if (sfd >= 0) {
        fds[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
        n = 2;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (poll(fds, (nfds_t)n, timeout_ms) > 0 && (fds[1].revents & POLLIN))
        lev_w_signals_dispatch();
}

int lev_w_sleep(lev_worker_t *w, int ms)
{
    lev_w_obs_beat(w);
    if (lev_w_signals_pending())
        lev_w_signals_dispatch();
    if (!w->stop && ms > 0)
        wait_for_work(w, ms);
    return w->stop != 0;
}

static void drain_wake(lev_worker_t *w)
{
    char buf[64];
    while (read(w->wake[0], buf, sizeof buf) > 0)
        ;
}

/* One turn of the loop; returns 1 when it did something. */
static int turn(lev_worker_t *w, int *sleep_ms)
{
    if (w->obs.on)
        lev_w_obs_tick(w, lev_mono_ms());
    if (lev_w_signals_pending())
        lev_w_signals_dispatch();
    drain_wake(w); /* before looking at the queues: nothing written later is lost */
    int work = lev_w_serve_producer(w) > 0;
    if (lev_w_defer_process(w) > 0)
        work = 1;
    if (w->ready)
        work = 1;
    lev_w_process_ready(w);
    lev_w_advance(w);
    int next = lev_w_resume_due(w, 1000);
    int b = lev_w_breakers_tick(w, next);
    if (b < next)
        next = b;
    if (w->store_down) {
        int s = store_watch(w);
        if (s < next)
            next = s;
    }
    update_flow(w);
    int r = lev_w_renew_sweep(w);
    if (r < next)
        next = r;
    poll_batch(w);
    /* also when nothing was taken: the settles of what finished go to Redis
     * now, not with the next batch, and a batch claimed before is handled */
    if (lev_w_pipeline_step(w))
        work = 1;
    /* the state writes of what was handled: one round trip, then their
     * records' resumes are queued for the next turn */
    if (w->nspending) {
        lev_w_state_flush(w);
        work = 1;
    }
    if (w->tracer)
        lev_w_spans_flush(w);
    *sleep_ms = next;
    return work;
}

/* Graceful stop: no more fetching; waits (up to the shutdown timeout) for
 * the reports of what was sent, finishes what can be finished, settles the
 * claims, commits and leaves the group. */
static void stop_gracefully(lev_worker_t *w)
{
    lev_w_obs_state(w, OBS_STOPPING);
    lev_log(LEV_LOG_INFO, "stopping: finishing in-flight records and committing", NULL);
    lev_w_pause_all(w, PAUSE_STOP);
    lev_w_pipeline_drain(w);
    int64_t deadline = lev_mono_ms() + w->conf.shutdown_timeout_ms;
    while ((lev_producer_outstanding(w->producer) > 0 || w->ndeferred > 0 || w->nheld_state > 0) &&
           lev_mono_ms() < deadline) {
        lev_producer_poll(w->producer, 10);
        lev_w_defer_process(w);
        lev_w_state_flush(w);
        lev_w_process_ready(w);
        lev_w_advance(w);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 0); /* rebalances */
        if (m)
            rd_kafka_message_destroy(m); /* not taken: fetched again by whoever comes next */
    }
    lev_w_process_ready(w);
    lev_w_advance(w);
    if (lev_producer_outstanding(w->producer) > 0)
        lev_log(LEV_LOG_WARN, "unacknowledged records at shutdown; their inputs are handled again",
                NULL);
    if (w->ndeferred > 0)
        lev_log(LEV_LOG_WARN, "deferred records not resumed at shutdown; they are handled again",
                NULL);
    if (!w->store_down)
        lev_w_settle(w);
    rd_kafka_resp_err_t cerr = rd_kafka_commit(w->rk, NULL, 0);
    if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
        lev_log(LEV_LOG_WARN, "final commit failed", "error", rd_kafka_err2str(cerr), NULL);
    rd_kafka_consumer_close(w->rk);
}

int lev_worker_run(lev_worker_t *w)
{
    lev_error_t err;
    if (!w || w->ntopics == 0)
        return LEV_ERR_ARG;
    if (w->running)
        return LEV_ERR_STATE;
    free(w->batch);
    free(w->prev);
    w->batch = calloc((size_t)w->conf.batch_size, sizeof *w->batch);
    w->prev = calloc((size_t)w->conf.batch_size, sizeof *w->prev);
    if (!w->batch || !w->prev || build_dispatch(w) != 0)
        return LEV_ERR_NOMEM;
    lev_w_obs_handlers(w);
    int prc = lev_w_prepare_topics(w, &err);
    if (prc == 0)
        prc = lev_w_registry_start(w, &err);
    if (prc == LEV_W_STOPPED) { /* asked to stop before the broker answered */
        lev_log(LEV_LOG_INFO, "worker stopped before it started", NULL);
        lev_w_obs_state(w, OBS_STOPPED);
        return LEV_OK;
    }
    if (prc != 0) {
        lev_log(LEV_LOG_ERROR, "cannot start", "error", err.text, NULL);
        lev_w_obs_state(w, OBS_STOPPED);
        return err.code ? err.code : LEV_ERR_KAFKA;
    }
    lev_producer_set_wakeup_fd(w->producer, w->wake[1]);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)w->ntopics);
    for (size_t i = 0; i < w->ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, w->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(w->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (serr) {
        lev_log(LEV_LOG_ERROR, "subscribe failed", "error", rd_kafka_err2str(serr), NULL);
        lev_w_obs_state(w, OBS_STOPPED);
        return LEV_ERR_KAFKA;
    }
    w->running = 1;
    lev_w_obs_state(w, OBS_RUNNING);
    lev_log(LEV_LOG_INFO, "worker started", "group", w->group, NULL);
    while (!w->stop) {
        int sleep_ms = 1000;
        if (!turn(w, &sleep_ms) && !w->stop)
            wait_for_work(w, sleep_ms);
    }
    stop_gracefully(w);
    w->running = 0;
    lev_w_obs_state(w, OBS_STOPPED);
    lev_log(LEV_LOG_INFO, "worker stopped", NULL);
    return LEV_OK;
}
