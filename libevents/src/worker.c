/*
 * The consumer-group worker: poll a batch, decode, claim idempotency keys
 * (one Redis round trip), run handlers in partition order, produce their
 * outputs, wait for the broker's acknowledgements, complete or release the
 * claims (one round trip each), then store each partition's offset up to
 * its first unfinished message and seek back to that message.
 *
 * A partition whose message cannot finish now (in-process retry backoff, a
 * retry-topic message not yet due, a claim held by another live owner, an
 * output the broker did not acknowledge) is paused until its due time, so
 * the poll loop never sleeps and the other partitions keep flowing.
 */
#include "kafka_internal.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HANDLERS 64
#define MAX_TOPICS 32
#define MAX_PAUSED 1024
#define NAME_MAX_LEN 250

/* ======================================================================
 * Types
 * ====================================================================== */

typedef struct handler_s {
    char *type;
    lev_handler_fn fn;
    void *opaque;
    int has_policy;
    lev_retry_policy_t policy;
} handler_t;

/* A partition paused until resume_at (monotonic ms). */
typedef struct paused_s {
    char topic[NAME_MAX_LEN];
    int32_t partition;
    int64_t resume_at;
} paused_t;

/* In-process attempts of the message a partition is blocked on. */
typedef struct attempt_s {
    char topic[NAME_MAX_LEN];
    int32_t partition;
    int64_t offset;
    int attempts;
    int64_t first_failure_ms;
} attempt_t;

typedef enum slot_state_e {
    S_PENDING = 0,
    S_SKIPPED,    /* behind a blocked message of its partition: fetched again */
    S_FINISHED,   /* nothing to wait for (no handler, already done) */
    S_HANDLED,    /* handler ok; outputs in flight; claim to complete */
    S_MOVED,      /* sent to a retry or dead-letter topic; claim to release */
    S_UNFINISHED, /* must be fetched again; claim to release */
} slot_state_t;

typedef struct slot_s {
    rd_kafka_message_t *m;
    slot_state_t state;
    int failed;  /* an output was not acknowledged */
    int claimed; /* we own its idempotency claim */
    int revoked; /* its partition was revoked while the batch was held */
    char *claim_key;
    /* decoded, or why not */
    int decoded;
    int decode_rc;
    char *decode_error;
    avro_value_t value;
    const lev_schema_t *reader;
    const handler_t *handler;
    char id[128];
} slot_t;

typedef struct output_s {
    char *topic;
    char *key;
    void *value;
    size_t value_len;
    lev_event_headers_t eh;
} output_t;

struct lev_ctx_s {
    lev_worker_t *w;
    const lev_event_t *ev;
    output_t *out;
    size_t nout, capout;
    avro_value_t *values;
    size_t nvalues, capvalues;
    char error[512];
};

struct lev_worker_s {
    char *service, *group, *source;
    lev_config_t conf; /* own copy of the scalar settings; strings above */
    lev_schemas_t *schemas;
    lev_codec_t *codec;
    lev_producer_t *producer;
    lev_store_t *store;
    rd_kafka_t *rk;
    handler_t handlers[MAX_HANDLERS];
    size_t nhandlers;
    char *topics[MAX_TOPICS];
    size_t ntopics;
    paused_t paused[MAX_PAUSED];
    size_t npaused;
    attempt_t *attempts;
    size_t nattempts, capattempts;
    slot_t *batch;
    size_t nbatch;
    struct block_s *blocks;
    int store_down;
    volatile sig_atomic_t stop;
    int max_poll_interval_ms;
    lev_worker_stats_t stats;
};

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

/* Level of a retry topic of this group (1..), or 0 for any other topic. */
static int retry_level_of(const lev_worker_t *w, const char *topic)
{
    size_t glen = strlen(w->group);
    if (strncmp(topic, w->group, glen) != 0 || strncmp(topic + glen, ".retry.", 7) != 0)
        return 0;
    int level = atoi(topic + glen + 7);
    return level > 0 && level <= LEV_RETRY_LEVELS_MAX ? level : 0;
}

static const char *header_str(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &h) != 0 || !h ||
        rd_kafka_header_get_last(h, name, &v, &len) != 0 || !v)
        return NULL;
    if (len >= size)
        len = size - 1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

static int64_t header_i64(const rd_kafka_message_t *m, const char *name, int64_t def)
{
    char buf[32];
    if (!header_str(m, name, buf, sizeof buf))
        return def;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end != buf && *end == '\0' ? (int64_t)v : def;
}

/* ======================================================================
 * Paused partitions and in-process attempts
 * ====================================================================== */

static void tp_list_add(rd_kafka_topic_partition_list_t *l, const char *topic, int32_t p,
                        int64_t offset)
{
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = offset;
}

static void pause_until(lev_worker_t *w, const char *topic, int32_t partition, int64_t resume_at)
{
    for (size_t i = 0; i < w->npaused; i++) {
        paused_t *p = &w->paused[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            p->resume_at = resume_at;
            return;
        }
    }
    if (w->npaused == MAX_PAUSED)
        return; /* cannot happen with sane partition counts; it stays unpaused */
    paused_t *p = &w->paused[w->npaused++];
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->partition = partition;
    p->resume_at = resume_at;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    tp_list_add(l, topic, partition, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_pause_partitions(w->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Resumes the partitions whose time has come; returns ms until the next one
 * (or `cap` when none is waiting). */
static int resume_due(lev_worker_t *w, int cap)
{
    int64_t now = lev_mono_ms(), next = now + cap;
    rd_kafka_topic_partition_list_t *l = NULL;
    for (size_t i = 0; i < w->npaused;) {
        paused_t *p = &w->paused[i];
        if (p->resume_at <= now) {
            if (!l)
                l = rd_kafka_topic_partition_list_new(4);
            tp_list_add(l, p->topic, p->partition, RD_KAFKA_OFFSET_INVALID);
            w->paused[i] = w->paused[--w->npaused];
            continue;
        }
        if (p->resume_at < next)
            next = p->resume_at;
        i++;
    }
    if (l) {
        rd_kafka_resume_partitions(w->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    return (int)(next - now);
}

static void forget_partitions(lev_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    for (int j = 0; j < parts->cnt; j++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[j];
        for (size_t i = 0; i < w->npaused;) {
            if (w->paused[i].partition == tp->partition && !strcmp(w->paused[i].topic, tp->topic))
                w->paused[i] = w->paused[--w->npaused];
            else
                i++;
        }
        for (size_t i = 0; i < w->nattempts;) {
            if (w->attempts[i].partition == tp->partition &&
                !strcmp(w->attempts[i].topic, tp->topic))
                w->attempts[i] = w->attempts[--w->nattempts];
            else
                i++;
        }
        for (size_t i = 0; i < w->nbatch; i++) {
            rd_kafka_message_t *m = w->batch[i].m;
            if (m->partition == tp->partition && !strcmp(rd_kafka_topic_name(m->rkt), tp->topic))
                w->batch[i].revoked = 1;
        }
    }
}

static attempt_t *attempt_find(lev_worker_t *w, const rd_kafka_message_t *m, int create)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (size_t i = 0; i < w->nattempts; i++) {
        attempt_t *a = &w->attempts[i];
        if (a->partition == m->partition && a->offset == m->offset && !strcmp(a->topic, topic))
            return a;
    }
    if (!create)
        return NULL;
    if (w->nattempts == w->capattempts) {
        size_t cap = w->capattempts ? w->capattempts * 2 : 16;
        attempt_t *na = realloc(w->attempts, cap * sizeof *na);
        if (!na)
            return NULL;
        w->attempts = na;
        w->capattempts = cap;
    }
    attempt_t *a = &w->attempts[w->nattempts++];
    memset(a, 0, sizeof *a);
    snprintf(a->topic, sizeof a->topic, "%s", topic);
    a->partition = m->partition;
    a->offset = m->offset;
    return a;
}

static void attempt_drop(lev_worker_t *w, const rd_kafka_message_t *m)
{
    attempt_t *a = attempt_find(w, m, 0);
    if (a)
        *a = w->attempts[--w->nattempts];
}

/* ======================================================================
 * Consumer: rebalance and creation
 * ====================================================================== */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    lev_worker_t *w = opaque;
    char count[16];
    snprintf(count, sizeof count, "%d", parts->cnt);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        lev_log(LEV_LOG_INFO, "partitions assigned", "count", count, NULL);
        rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked (or lost): commit what is stored, forget local state. Messages
     * of these partitions still held in the batch are not handled. */
    lev_log(LEV_LOG_INFO, "partitions revoked", "count", count, NULL);
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk)) {
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            lev_log(LEV_LOG_WARN, "commit on revoke failed", "error", rd_kafka_err2str(cerr), NULL);
    }
    forget_partitions(w, parts);
    /* librdkafka keeps a partition's pause flag across unassign and assign:
     * resume what we give up, or it would come back paused for good */
    rd_kafka_resume_partitions(rk, parts);
    rd_kafka_assign(rk, NULL);
}

static rd_kafka_t *consumer_new(lev_worker_t *w, const lev_config_t *conf, lev_error_t *err)
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
        {NULL, NULL},
    };
    rd_kafka_conf_t *kc = lev_kafka_conf_new(conf, RD_KAFKA_CONSUMER, defaults, NULL, err);
    if (!kc)
        return NULL;
    rd_kafka_conf_set_opaque(kc, w);
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
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

/* ======================================================================
 * Lifecycle
 * ====================================================================== */

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
    w->conf = *conf;
    w->conf.kafka = NULL; /* not kept: the clients took their copies */
    w->conf.nkafka = 0;
    w->service = strdup(conf->service);
    w->group = strdup(conf->group_id);
    w->source = strdup(conf->source ? conf->source : "/libevents");
    w->max_poll_interval_ms = 300000;
    if (!w->service || !w->group || !w->source) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
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
    if (!(w->producer = lev_producer_new(conf, NULL, err)))
        goto fail;
    if (conf->redis_url && conf->redis_url[0] &&
        !(w->store = lev_store_new(conf->redis_url, 5000, err)))
        goto fail;
    if (!(w->rk = consumer_new(w, conf, err)))
        goto fail;
    return w;
fail:
    lev_worker_destroy(w);
    return NULL;
}

void lev_worker_destroy(lev_worker_t *w)
{
    if (!w)
        return;
    if (w->rk)
        rd_kafka_destroy(w->rk);
    lev_producer_destroy(w->producer);
    lev_store_destroy(w->store);
    lev_codec_destroy(w->codec);
    lev_schemas_destroy(w->schemas);
    for (size_t i = 0; i < w->nhandlers; i++)
        free(w->handlers[i].type);
    for (size_t i = 0; i < w->ntopics; i++)
        free(w->topics[i]);
    free(w->attempts);
    free(w->batch);
    free(w->blocks);
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
    if (!lev_schemas_find(w->schemas, type))
        return lev_error_set(err, LEV_ERR_NOT_FOUND, type,
                             "no schema of this type is loaded (LEV_SCHEMA_DIRS)");
    if (w->nhandlers == MAX_HANDLERS)
        return lev_error_set(err, LEV_ERR_ARG, type, "too many handlers");
    handler_t *h = &w->handlers[w->nhandlers];
    memset(h, 0, sizeof *h);
    if (!(h->type = strdup(type)))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    h->fn = fn;
    h->opaque = opaque;
    w->nhandlers++;
    return LEV_OK;
}

static handler_t *handler_find(lev_worker_t *w, const char *type)
{
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].type, type) == 0)
            return &w->handlers[i];
    return NULL;
}

int lev_worker_retry_policy(lev_worker_t *w, const char *type, const lev_retry_policy_t *policy)
{
    handler_t *h = w && type && policy ? handler_find(w, type) : NULL;
    if (!h || policy->attempts < 1 || policy->levels < 0 || policy->levels > LEV_RETRY_LEVELS_MAX)
        return LEV_ERR_ARG;
    h->policy = *policy;
    h->has_policy = 1;
    return LEV_OK;
}

int lev_worker_subscribe(lev_worker_t *w, const char *topic, lev_error_t *err)
{
    if (!w || !topic || !*topic || strlen(topic) >= NAME_MAX_LEN)
        return lev_error_set(err, LEV_ERR_ARG, topic, "invalid topic name");
    if (w->ntopics == MAX_TOPICS)
        return lev_error_set(err, LEV_ERR_ARG, topic, "too many topics");
    if (!(w->topics[w->ntopics] = strdup(topic)))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    w->ntopics++;
    return LEV_OK;
}

void lev_worker_stop(lev_worker_t *w)
{
    if (w)
        w->stop = 1;
}

static lev_worker_t *signal_worker;

static void on_signal(int sig)
{
    (void)sig;
    if (signal_worker)
        signal_worker->stop = 1;
}

int lev_worker_stop_on_signals(lev_worker_t *w)
{
    signal_worker = w;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return LEV_ERR_IO;
    return LEV_OK;
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
    return w->store;
}

void lev_worker_stats(const lev_worker_t *w, lev_worker_stats_t *out)
{
    *out = w->stats;
    out->store_round_trips = w->store ? lev_store_round_trips(w->store) : 0;
}

/* ======================================================================
 * Handler context
 * ====================================================================== */

int lev_ctx_new_value(lev_ctx_t *ctx, const char *type, avro_value_t *out)
{
    const lev_schema_t *s = lev_schemas_find(ctx->w->schemas, type);
    if (!s)
        return LEV_ERR_NOT_FOUND;
    if (ctx->nvalues == ctx->capvalues) {
        size_t cap = ctx->capvalues ? ctx->capvalues * 2 : 4;
        avro_value_t *nv = realloc(ctx->values, cap * sizeof *nv);
        if (!nv)
            return LEV_ERR_NOMEM;
        ctx->values = nv;
        ctx->capvalues = cap;
    }
    int rc = lev_codec_new_value(ctx->w->codec, s, out);
    if (rc == 0)
        ctx->values[ctx->nvalues++] = *out;
    return rc;
}

int lev_ctx_emit(lev_ctx_t *ctx, const char *topic, const char *key, avro_value_t *value,
                 lev_error_t *err)
{
    if (!ctx || !topic || !value)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "topic and value are required");
    avro_schema_t as = avro_value_get_schema(value);
    const char *type = as ? avro_schema_type_name(as) : NULL;
    const char *ns = as ? avro_schema_namespace(as) : NULL;
    char fullname[256];
    snprintf(fullname, sizeof fullname, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "." : "",
             type ? type : "");
    const lev_schema_t *s = lev_schemas_find(ctx->w->schemas, fullname);
    if (!s)
        return lev_error_set(err, LEV_ERR_NOT_FOUND, fullname, "no schema of this type");
    if (ctx->nout == ctx->capout) {
        size_t cap = ctx->capout ? ctx->capout * 2 : 4;
        output_t *no = realloc(ctx->out, cap * sizeof *no);
        if (!no)
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        ctx->out = no;
        ctx->capout = cap;
    }
    output_t *o = &ctx->out[ctx->nout];
    memset(o, 0, sizeof *o);
    int rc = lev_codec_encode(ctx->w->codec, s, value, &o->value, &o->value_len, err);
    if (rc != 0)
        return rc;
    /* n-th output of this type for this input: deterministic ids */
    unsigned n = 0;
    for (size_t i = 0; i < ctx->nout; i++)
        n += strcmp(ctx->out[i].eh.type, fullname) == 0;
    char id[LEV_UUID_STR_LEN], trace[64];
    lev_uuid_derive(ctx->ev->id, fullname, n, id);
    lev_traceparent_new(ctx->ev->traceparent, trace);
    lev_event_meta_t meta = {.id = id,
                             .source = ctx->w->source,
                             .correlation_id = ctx->ev->correlation_id,
                             .traceparent = trace};
    lev_event_headers(&o->eh, fullname, &meta);
    o->topic = strdup(topic);
    o->key = strdup(key ? key : "");
    if (!o->topic || !o->key) {
        free(o->topic);
        free(o->key);
        free(o->value);
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    }
    ctx->nout++;
    return LEV_OK;
}

void lev_ctx_set_error(lev_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
}

lev_store_t *lev_ctx_store(lev_ctx_t *ctx)
{
    return ctx->w->store;
}

const char *lev_ctx_service(const lev_ctx_t *ctx)
{
    return ctx->w->service;
}

lev_codec_t *lev_ctx_codec(lev_ctx_t *ctx)
{
    return ctx->w->codec;
}

static void ctx_clear(lev_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nout; i++) {
        free(ctx->out[i].topic);
        free(ctx->out[i].key);
        free(ctx->out[i].value);
    }
    for (size_t i = 0; i < ctx->nvalues; i++)
        avro_value_decref(&ctx->values[i]);
    free(ctx->out);
    free(ctx->values);
    memset(ctx, 0, sizeof *ctx);
}

/* ======================================================================
 * Producing: outputs, retry and dead-letter records
 * ====================================================================== */

static void delivery_cb(void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset)
{
    slot_t *s = opaque;
    (void)partition;
    (void)offset;
    if (err) {
        s->failed = 1;
        lev_log(LEV_LOG_WARN, "output not acknowledged; the input will be handled again", "error",
                errstr, "event_id", s->id, NULL);
    }
}

/* Sends a failed message to a retry topic (level >= 1) or the dead-letter
 * topic (level 0) with the original key, value and headers, replacing the
 * lev_* headers of an earlier hop. */
static int send_failed(lev_worker_t *w, slot_t *s, int level, const char *error_class,
                       const char *message, int attempts, int64_t first_failure_ms, int64_t due_ms)
{
    rd_kafka_message_t *m = s->m;
    const char *topic = rd_kafka_topic_name(m->rkt);
    char orig_topic[NAME_MAX_LEN], orig_part[16], orig_off[32], orig_ts[32];
    int from_retry = retry_level_of(w, topic) > 0;
    if (from_retry && header_str(m, LEV_H_ORIG_TOPIC, orig_topic, sizeof orig_topic)) {
        snprintf(orig_part, sizeof orig_part, "%" PRId64,
                 header_i64(m, LEV_H_ORIG_PARTITION, m->partition));
        snprintf(orig_off, sizeof orig_off, "%" PRId64,
                 header_i64(m, LEV_H_ORIG_OFFSET, m->offset));
        snprintf(orig_ts, sizeof orig_ts, "%" PRId64,
                 header_i64(m, LEV_H_ORIG_TIMESTAMP, rd_kafka_message_timestamp(m, NULL)));
    } else {
        snprintf(orig_topic, sizeof orig_topic, "%s", topic);
        snprintf(orig_part, sizeof orig_part, "%" PRId32, m->partition);
        snprintf(orig_off, sizeof orig_off, "%" PRId64, m->offset);
        snprintf(orig_ts, sizeof orig_ts, "%" PRId64, rd_kafka_message_timestamp(m, NULL));
    }
    char att[16], first[32], last[32], due[32];
    snprintf(att, sizeof att, "%d", attempts);
    snprintf(first, sizeof first, "%" PRId64, first_failure_ms);
    snprintf(last, sizeof last, "%" PRId64, lev_now_ms());
    snprintf(due, sizeof due, "%" PRId64, due_ms);

    /* original headers without our own, then ours */
    lev_header_t hs[64];
    size_t n = 0;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == 0 && h) {
        const char *name;
        const void *v;
        size_t len;
        for (size_t i = 0; n < 48 && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++)
            if (strncmp(name, "lev_", 4) != 0)
                hs[n++] = (lev_header_t){name, v, len};
    }
    const char *ours[][2] = {
        {LEV_H_DLQ_VERSION, "1"},          {LEV_H_ORIG_TOPIC, orig_topic},
        {LEV_H_ORIG_PARTITION, orig_part}, {LEV_H_ORIG_OFFSET, orig_off},
        {LEV_H_ORIG_TIMESTAMP, orig_ts},   {LEV_H_GROUP, w->group},
        {LEV_H_SERVICE, w->service},       {LEV_H_ERROR_CLASS, error_class},
        {LEV_H_ERROR_MESSAGE, message},    {LEV_H_ATTEMPTS, att},
        {LEV_H_FIRST_FAILURE, first},      {LEV_H_LAST_FAILURE, last},
    };
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        hs[n++] = (lev_header_t){ours[i][0], ours[i][1], strlen(ours[i][1])};
    if (level > 0)
        hs[n++] = (lev_header_t){LEV_H_DUE, due, strlen(due)};

    char dest[NAME_MAX_LEN + 16];
    if (level > 0)
        lev_retry_topic_name(w->group, level, dest, sizeof dest);
    else
        lev_dlq_topic_name(w->group, dest, sizeof dest);
    lev_msg_t msg = {.topic = dest,
                     .partition = LEV_PARTITION_ANY,
                     .key = m->key,
                     .key_len = m->key_len,
                     .value = m->payload,
                     .value_len = m->len,
                     .headers = hs,
                     .nheaders = n};
    lev_error_t err;
    if (lev_producer_send(w->producer, &msg, delivery_cb, s, &err) != 0) {
        lev_log(LEV_LOG_ERROR, "cannot queue a failed message", "topic", dest, "error", err.text,
                "event_id", s->id, NULL);
        return -1;
    }
    char corr[128], trace[64];
    lev_log(level > 0 ? LEV_LOG_WARN : LEV_LOG_ERROR,
            level > 0 ? "moved to retry topic" : "dead-lettered", "topic", dest, "error_class",
            error_class, "error", message, "attempts", att, "event_id", s->id, "correlation_id",
            header_str(m, LEV_H_CORRELATION_ID, corr, sizeof corr), "traceparent",
            header_str(m, LEV_H_TRACEPARENT, trace, sizeof trace), "from_topic", topic,
            "from_offset", orig_off, NULL);
    if (level > 0)
        w->stats.sent_to_retry++;
    else
        w->stats.dead_lettered++;
    return 0;
}

/* ======================================================================
 * The batch
 * ====================================================================== */

/* A partition that cannot go on in this batch: where and until when. */
typedef struct block_s {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t resume_at;
} block_t;

typedef struct batch_s {
    block_t *blocks;
    size_t nblocks;
} batch_t;

static block_t *block_find(batch_t *b, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (size_t i = 0; i < b->nblocks; i++)
        if (b->blocks[i].partition == m->partition && !strcmp(b->blocks[i].topic, topic))
            return &b->blocks[i];
    return NULL;
}

static void block(batch_t *b, slot_t *s, int64_t resume_at)
{
    block_t *bl = block_find(b, s->m);
    if (!bl) {
        bl = &b->blocks[b->nblocks++];
        bl->topic = rd_kafka_topic_name(s->m->rkt);
        bl->partition = s->m->partition;
        bl->offset = s->m->offset;
        bl->resume_at = resume_at;
    }
    s->state = S_UNFINISHED;
}

static int64_t backoff_ms(const lev_retry_policy_t *p, int attempt)
{
    int64_t cap = p->backoff_ms;
    for (int i = 1; i < attempt && cap < p->backoff_max_ms; i++)
        cap *= 2;
    if (cap > p->backoff_max_ms)
        cap = p->backoff_max_ms;
    /* full jitter, but never less than half, so attempts stay spread */
    return cap / 2 + (int64_t)lev_random_below((uint64_t)(cap / 2 + 1));
}

static const lev_retry_policy_t *policy_of(const lev_worker_t *w, const handler_t *h)
{
    return h && h->has_policy ? &h->policy : &w->conf.retry;
}

/* Decodes a message and finds its handler. */
static void prepare(lev_worker_t *w, slot_t *s)
{
    rd_kafka_message_t *m = s->m;
    char idbuf[128];
    if (header_str(m, LEV_H_CE_ID, idbuf, sizeof idbuf) && idbuf[0])
        snprintf(s->id, sizeof s->id, "%s", idbuf);
    else /* no event id: the record's coordinates are stable across redelivery */
        snprintf(s->id, sizeof s->id, "%s/%" PRId32 "/%" PRId64, rd_kafka_topic_name(m->rkt),
                 m->partition, m->offset);
    lev_error_t err;
    const lev_schema_t *writer = NULL;
    int rc = lev_codec_decode(w->codec, m->payload, m->len, NULL, &s->value, &writer, &err);
    if (rc != 0) {
        /* dead-lettered in partition order by run_handlers, not here: a
         * message behind a blocked one is fetched again and must not be
         * dead-lettered twice */
        char text[800];
        s->decode_rc = rc;
        s->decode_error = strdup(lev_error_format(&err, text, sizeof text));
        return;
    }
    s->decoded = 1;
    s->reader = lev_schemas_find(w->schemas, lev_schema_name(writer));
    s->handler = handler_find(w, lev_schema_name(writer));
    if (!s->handler)
        s->state = S_FINISHED; /* not ours to handle (e.g. events we emitted) */
}

/* Claims the idempotency keys of the batch in one round trip. Returns -1
 * when Redis is unavailable (nothing of the batch can finish). */
static int claim_all(lev_worker_t *w)
{
    if (!w->store)
        return 0;
    size_t n = 0;
    const char **keys = calloc(w->nbatch ? w->nbatch : 1, sizeof *keys);
    slot_t **owners = calloc(w->nbatch ? w->nbatch : 1, sizeof *owners);
    lev_claim_t *res = calloc(w->nbatch ? w->nbatch : 1, sizeof *res);
    int rc = -1;
    if (!keys || !owners || !res)
        goto done;
    for (size_t i = 0; i < w->nbatch; i++) {
        slot_t *s = &w->batch[i];
        if (s->state != S_PENDING || !s->handler)
            continue;
        size_t len = strlen(w->group) + strlen(s->id) + 2;
        if (!(s->claim_key = malloc(len)))
            goto done;
        snprintf(s->claim_key, len, "%s:%s", w->group, s->id);
        keys[n] = s->claim_key;
        owners[n++] = s;
    }
    rc = 0;
    if (n == 0)
        goto done;
    lev_error_t err;
    if (lev_store_claim(w->store, keys, n, w->conf.lease_ms, res, &err) != 0) {
        lev_log(LEV_LOG_WARN, "idempotency store unavailable", "error", err.text, NULL);
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (res[i] == LEV_CLAIM_OWNED) {
            owners[i]->claimed = 1;
        } else if (res[i] == LEV_CLAIM_DONE) {
            owners[i]->state = S_FINISHED;
            w->stats.skipped_duplicates++;
            lev_log(LEV_LOG_INFO, "duplicate skipped", "event_id", owners[i]->id, NULL);
        }
        /* busy: decided in order during handling (the partition waits) */
    }
done:
    free(keys);
    free(owners);
    free(res);
    return rc;
}

/* Completes (handled) or releases (everything else we claimed) in one round
 * trip each. */
static void settle_claims(lev_worker_t *w)
{
    if (!w->store)
        return;
    const char **done = calloc(w->nbatch ? w->nbatch : 1, sizeof *done);
    const char **rel = calloc(w->nbatch ? w->nbatch : 1, sizeof *rel);
    size_t nd = 0, nr = 0;
    if (!done || !rel)
        goto out;
    for (size_t i = 0; i < w->nbatch; i++) {
        slot_t *s = &w->batch[i];
        if (!s->claimed)
            continue;
        if (s->state == S_HANDLED && !s->failed)
            done[nd++] = s->claim_key;
        else
            rel[nr++] = s->claim_key;
    }
    lev_error_t err;
    if (nd && lev_store_complete(w->store, done, nd, w->conf.done_ttl_ms, NULL, &err) != 0)
        lev_log(LEV_LOG_WARN, "cannot mark events done; a redelivery would handle them again",
                "error", err.text, NULL);
    if (nr && lev_store_release(w->store, rel, nr, &err) != 0)
        lev_log(LEV_LOG_WARN, "cannot release claims; they expire with their lease", "error",
                err.text, NULL);
out:
    free(done);
    free(rel);
}

static void event_of(lev_worker_t *w, slot_t *s, lev_event_t *ev, char hdr[5][256], int level)
{
    rd_kafka_message_t *m = s->m;
    memset(ev, 0, sizeof *ev);
    ev->topic = rd_kafka_topic_name(m->rkt);
    if (level > 0 && header_str(m, LEV_H_ORIG_TOPIC, hdr[4], 256))
        ev->topic = hdr[4];
    ev->partition = m->partition;
    ev->offset = m->offset;
    ev->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    ev->id = s->id;
    ev->type = lev_schema_name(s->reader);
    ev->source = header_str(m, LEV_H_CE_SOURCE, hdr[0], 256);
    ev->correlation_id = header_str(m, LEV_H_CORRELATION_ID, hdr[1], 256);
    if (!ev->correlation_id)
        ev->correlation_id = s->id;
    ev->traceparent = header_str(m, LEV_H_TRACEPARENT, hdr[2], 256);
    size_t klen = m->key_len < 255 ? m->key_len : 255;
    memcpy(hdr[3], m->key ? (const char *)m->key : "", m->key ? klen : 0);
    hdr[3][m->key ? klen : 0] = '\0';
    ev->key = hdr[3];
    ev->value = s->value;
    (void)w;
}

/* Runs the handler of one claimed message and acts on its result. */
static void handle(lev_worker_t *w, batch_t *b, slot_t *s)
{
    rd_kafka_message_t *m = s->m;
    int level = retry_level_of(w, rd_kafka_topic_name(m->rkt));
    const lev_retry_policy_t *pol = policy_of(w, s->handler);
    attempt_t *a = attempt_find(w, m, 0);
    int earlier = (int)header_i64(m, LEV_H_ATTEMPTS, 0); /* tries before this topic */
    int tries_here = a ? a->attempts : 0;

    char hdr[5][256];
    lev_event_t ev;
    event_of(w, s, &ev, hdr, level);
    ev.attempt = earlier + tries_here + 1;

    lev_ctx_t ctx = {.w = w, .ev = &ev};
    char attempt_s[16];
    snprintf(attempt_s, sizeof attempt_s, "%d", ev.attempt);
    lev_log(LEV_LOG_DEBUG, "handling", "event_id", s->id, "type", ev.type, "attempt", attempt_s,
            "correlation_id", ev.correlation_id, "traceparent", ev.traceparent, NULL);
    lev_result_t r = s->handler->fn(&ctx, &ev, s->handler->opaque);
    w->stats.handled++;

    if (r == LEV_RESULT_OK) {
        for (size_t i = 0; i < ctx.nout; i++) {
            output_t *o = &ctx.out[i];
            lev_msg_t msg = {.topic = o->topic,
                             .partition = LEV_PARTITION_ANY,
                             .key = o->key,
                             .key_len = strlen(o->key),
                             .value = o->value,
                             .value_len = o->value_len,
                             .headers = o->eh.h,
                             .nheaders = o->eh.n};
            lev_error_t err;
            if (lev_producer_send(w->producer, &msg, delivery_cb, s, &err) != 0) {
                s->failed = 1;
                lev_log(LEV_LOG_ERROR, "cannot queue an output", "error", err.text, "event_id",
                        s->id, NULL);
            } else {
                w->stats.emitted++;
            }
        }
        s->state = S_HANDLED;
        if (a) {
            lev_log(LEV_LOG_INFO, "handled after retries", "event_id", s->id, "attempt", attempt_s,
                    NULL);
            attempt_drop(w, m);
        }
        ctx_clear(&ctx);
        return;
    }

    const char *why = ctx.error[0] ? ctx.error : "handler failed";
    int64_t now = lev_now_ms();
    int64_t first =
        header_i64(m, LEV_H_FIRST_FAILURE, a && a->first_failure_ms ? a->first_failure_ms : now);
    if (r == LEV_RESULT_TRANSIENT && level == 0 && tries_here + 1 < pol->attempts) {
        /* in-process retry: pause this partition, try again after a backoff */
        if (!a && !(a = attempt_find(w, m, 1))) {
            block(b, s, lev_mono_ms() + pol->backoff_ms);
            ctx_clear(&ctx);
            return;
        }
        a->attempts++;
        if (!a->first_failure_ms)
            a->first_failure_ms = now;
        int64_t delay = backoff_ms(pol, a->attempts);
        char delay_s[32];
        snprintf(delay_s, sizeof delay_s, "%" PRId64, delay);
        lev_log(LEV_LOG_WARN, "transient failure, retrying in process", "event_id", s->id,
                "attempt", attempt_s, "retry_in_ms", delay_s, "error", why, "correlation_id",
                ev.correlation_id, "traceparent", ev.traceparent, NULL);
        w->stats.retried_inprocess++;
        block(b, s, lev_mono_ms() + delay);
        ctx_clear(&ctx);
        return;
    }
    /* out of in-process attempts (or permanent): next retry topic or DLQ */
    int next = 0;
    const char *cls = "handler";
    if (r == LEV_RESULT_TRANSIENT) {
        next = level + 1 <= pol->levels ? level + 1 : 0;
        cls = next ? "handler" : "retries-exhausted";
    }
    int64_t due = next ? now + pol->delays_ms[next - 1] : 0;
    int total = earlier + tries_here + 1;
    if (send_failed(w, s, next, cls, why, total, first, due) == 0)
        s->state = S_MOVED;
    else
        block(b, s, lev_mono_ms() + 1000);
    attempt_drop(w, m);
    ctx_clear(&ctx);
}

/* Handles the prepared, claimed batch in order, partition by partition. */
static void run_handlers(lev_worker_t *w, batch_t *b)
{
    int64_t started = lev_mono_ms();
    int64_t budget = w->max_poll_interval_ms / 3;
    for (size_t i = 0; i < w->nbatch; i++) {
        slot_t *s = &w->batch[i];
        if (s->revoked) {
            s->state = S_UNFINISHED;
            continue;
        }
        block_t *bl = block_find(b, s->m);
        if (bl) { /* something earlier in its partition cannot finish now */
            s->state = S_SKIPPED;
            continue;
        }
        if (s->state != S_PENDING)
            continue;
        if (lev_mono_ms() - started > budget) {
            /* keep well inside max.poll.interval.ms: the rest comes again */
            block(b, s, 0);
            continue;
        }
        int level = retry_level_of(w, rd_kafka_topic_name(s->m->rkt));
        if (level > 0) {
            int64_t due = header_i64(s->m, LEV_H_DUE, 0), now = lev_now_ms();
            if (due > now) { /* not before its due time: wait without polling it */
                block(b, s, lev_mono_ms() + (due - now));
                continue;
            }
        }
        if (s->decode_rc) { /* undecodable: straight to the dead-letter topic */
            int attempts = (int)header_i64(s->m, LEV_H_ATTEMPTS, 0) + 1;
            const char *why = s->decode_error ? s->decode_error : lev_err_name(s->decode_rc);
            if (send_failed(w, s, 0, lev_err_name(s->decode_rc), why, attempts, lev_now_ms(), 0) ==
                0)
                s->state = S_MOVED;
            else
                block(b, s, lev_mono_ms() + 1000);
            continue;
        }
        if (w->store && !s->claimed) { /* busy: another owner holds a live lease */
            lev_log(LEV_LOG_INFO, "event claimed by another consumer, waiting", "event_id", s->id,
                    NULL);
            block(b, s, lev_mono_ms() + 1000);
            continue;
        }
        handle(w, b, s);
    }
}

/* Stores each partition's offset after its finished prefix and seeks back
 * to its first unfinished message, pausing it when it must wait. */
static void store_offsets(lev_worker_t *w, batch_t *b)
{
    rd_kafka_topic_partition_list_t *store = rd_kafka_topic_partition_list_new(8);
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < w->nbatch; i++) {
        slot_t *s = &w->batch[i];
        if (s->revoked)
            continue;
        const char *topic = rd_kafka_topic_name(s->m->rkt);
        rd_kafka_topic_partition_t *sk =
            rd_kafka_topic_partition_list_find(seek, topic, s->m->partition);
        if (sk)
            continue; /* an earlier message of this partition is unfinished */
        int finished =
            (s->state == S_FINISHED || s->state == S_HANDLED || s->state == S_MOVED) && !s->failed;
        if (finished) {
            rd_kafka_topic_partition_t *st =
                rd_kafka_topic_partition_list_find(store, topic, s->m->partition);
            if (!st)
                st = rd_kafka_topic_partition_list_add(store, topic, s->m->partition);
            st->offset = s->m->offset + 1;
            continue;
        }
        tp_list_add(seek, topic, s->m->partition, s->m->offset);
        block_t *bl = block_find(b, s->m);
        int64_t resume_at = bl && bl->offset == s->m->offset ? bl->resume_at : lev_mono_ms() + 1000;
        pause_until(w, topic, s->m->partition, resume_at);
    }
    if (store->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->rk, store);
        if (err)
            lev_log(LEV_LOG_WARN, "offset store failed (partition revoked?)", "error",
                    rd_kafka_err2str(err), NULL);
    }
    if (seek->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(w->rk, seek, 5000);
        if (e) {
            lev_log(LEV_LOG_ERROR, "seek failed", "error", rd_kafka_error_string(e), NULL);
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(store);
    rd_kafka_topic_partition_list_destroy(seek);
}

static void batch_free(lev_worker_t *w)
{
    for (size_t i = 0; i < w->nbatch; i++) {
        slot_t *s = &w->batch[i];
        if (s->decoded)
            avro_value_decref(&s->value);
        free(s->claim_key);
        free(s->decode_error);
        rd_kafka_message_destroy(s->m);
    }
    w->nbatch = 0;
}

/* Polls up to batch_size messages: waits up to `wait_ms` for the first,
 * then up to batch_wait_ms for the rest. */
static void poll_batch(lev_worker_t *w, int wait_ms)
{
    int64_t deadline = -1;
    while (w->nbatch < (size_t)w->conf.batch_size) {
        int timeout = wait_ms;
        if (deadline >= 0) {
            int64_t left = deadline - lev_mono_ms();
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, timeout);
        if (!m) {
            if (deadline < 0 || w->nbatch == 0)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                lev_log(m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? LEV_LOG_DEBUG
                                                                          : LEV_LOG_WARN,
                        "consumer error", "error", rd_kafka_message_errstr(m), NULL);
            rd_kafka_message_destroy(m);
            continue;
        }
        slot_t *s = &w->batch[w->nbatch++];
        memset(s, 0, sizeof *s);
        s->m = m;
        w->stats.received++;
        if (deadline < 0)
            deadline = lev_mono_ms() + w->conf.batch_wait_ms;
    }
}

/* Pauses everything and waits for Redis with backoff, polling meanwhile so
 * the group membership stays alive. */
static void wait_for_store(lev_worker_t *w)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(w->rk, &assigned) == 0 && assigned)
        rd_kafka_pause_partitions(w->rk, assigned);
    int delay = 100;
    lev_error_t err;
    while (!w->stop && lev_store_ping(w->store, &err) != 0) {
        char d[16];
        snprintf(d, sizeof d, "%d", delay);
        lev_log(LEV_LOG_WARN, "waiting for the idempotency store", "retry_in_ms", d, "error",
                err.text, NULL);
        int64_t until = lev_mono_ms() + delay;
        while (!w->stop && lev_mono_ms() < until) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 100);
            if (m && !m->err) {
                /* a partition assigned by a rebalance meanwhile: not handled
                 * now, so go back to this message and hold the partition */
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                tp_list_add(l, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
                rd_kafka_pause_partitions(w->rk, l);
                rd_kafka_error_t *e = rd_kafka_seek_partitions(w->rk, l, 5000);
                if (e)
                    rd_kafka_error_destroy(e);
                rd_kafka_topic_partition_list_destroy(l);
            }
            if (m)
                rd_kafka_message_destroy(m);
        }
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    if (assigned) {
        rd_kafka_topic_partition_list_t *now = NULL;
        if (rd_kafka_assignment(w->rk, &now) == 0 && now) {
            rd_kafka_resume_partitions(w->rk, now);
            rd_kafka_topic_partition_list_destroy(now);
        }
        rd_kafka_topic_partition_list_destroy(assigned);
        w->npaused = 0; /* everything was resumed; blocked ones block again */
    }
    if (!w->stop)
        lev_log(LEV_LOG_INFO, "idempotency store is back", NULL);
}

/* One batch through its whole life. Returns the number of messages. */
static size_t run_batch(lev_worker_t *w, int wait_ms)
{
    poll_batch(w, wait_ms);
    if (w->nbatch == 0)
        return 0;
    w->stats.batches++;
    batch_t b = {.blocks = w->blocks, .nblocks = 0};

    for (size_t i = 0; i < w->nbatch; i++)
        prepare(w, &w->batch[i]);
    if (claim_all(w) != 0) {
        /* nothing can finish without the store: fetch it all again later */
        w->store_down = 1;
        for (size_t i = 0; i < w->nbatch; i++)
            if (w->batch[i].state == S_PENDING)
                block(&b, &w->batch[i], lev_mono_ms());
    } else {
        run_handlers(w, &b);
    }
    /* every output, retry and dead-letter record must be acknowledged */
    if (lev_producer_flush(w->producer, w->conf.delivery_timeout_ms + 5000) != 0)
        lev_log(LEV_LOG_ERROR, "broker did not acknowledge in time", NULL);
    settle_claims(w);
    store_offsets(w, &b);
    size_t n = w->nbatch;
    batch_free(w);
    return n;
}

/* Creates this group's retry and dead-letter topics if they are missing,
 * with as many partitions as the widest subscribed topic. */
static void ensure_failure_topics(lev_worker_t *w)
{
    int partitions = 0, unknown = 0;
    for (size_t i = 0; i < w->ntopics; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->rk, w->topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(w->rk, 0, rkt, &md, 5000) == 0) {
            if (md->topic_cnt == 1 && md->topics[0].err == 0 &&
                md->topics[0].partition_cnt > partitions)
                partitions = md->topics[0].partition_cnt;
            else if (md->topic_cnt != 1 || md->topics[0].err != 0)
                unknown++;
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
    }
    if (partitions == 0 || unknown) {
        /* an input topic does not exist yet: the broker's default count */
        lev_log(LEV_LOG_WARN,
                "an input topic does not exist yet; failure topics get the broker's "
                "default partition count if they are created now",
                NULL);
        if (partitions == 0)
            partitions = -1;
    }
    int levels = w->conf.retry.levels;
    for (size_t i = 0; i < w->nhandlers; i++)
        if (w->handlers[i].has_policy && w->handlers[i].policy.levels > levels)
            levels = w->handlers[i].policy.levels;
    rd_kafka_NewTopic_t *nt[LEV_RETRY_LEVELS_MAX + 1];
    int n = 0;
    char name[NAME_MAX_LEN + 16], errstr[256];
    lev_dlq_topic_name(w->group, name, sizeof name);
    nt[n++] = rd_kafka_NewTopic_new(name, partitions, -1, errstr, sizeof errstr);
    for (int l = 1; l <= levels; l++) {
        lev_retry_topic_name(w->group, l, name, sizeof name);
        nt[n++] = rd_kafka_NewTopic_new(name, partitions, -1, errstr, sizeof errstr);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->rk);
    rd_kafka_CreateTopics(w->rk, nt, (size_t)n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (ev) {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; res && i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                lev_log(LEV_LOG_WARN, "cannot create a failure topic", "topic",
                        rd_kafka_topic_result_name(res[i]), "error",
                        rd_kafka_topic_result_error_string(res[i]), NULL);
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    /* the retry topics are consumed by the same group */
    for (int l = 1; l <= levels && w->ntopics < MAX_TOPICS; l++) {
        lev_retry_topic_name(w->group, l, name, sizeof name);
        w->topics[w->ntopics++] = strdup(name);
    }
}

int lev_worker_run(lev_worker_t *w)
{
    if (!w || w->ntopics == 0)
        return LEV_ERR_ARG;
    free(w->batch);
    free(w->blocks);
    w->batch = calloc((size_t)w->conf.batch_size, sizeof *w->batch);
    w->blocks = calloc((size_t)w->conf.batch_size, sizeof *w->blocks);
    if (!w->batch || !w->blocks)
        return LEV_ERR_NOMEM;
    ensure_failure_topics(w);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)w->ntopics);
    for (size_t i = 0; i < w->ntopics; i++)
        tp_list_add(subs, w->topics[i], RD_KAFKA_PARTITION_UA, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(w->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (serr) {
        lev_log(LEV_LOG_ERROR, "subscribe failed", "error", rd_kafka_err2str(serr), NULL);
        return LEV_ERR_KAFKA;
    }
    lev_log(LEV_LOG_INFO, "worker started", "group", w->group, NULL);

    while (!w->stop) {
        int wait = resume_due(w, 100);
        if (wait < 1)
            wait = 1;
        run_batch(w, wait);
        if (w->store_down) { /* a batch could not claim: wait for Redis */
            wait_for_store(w);
            w->store_down = 0;
        }
    }

    /* graceful stop: the last batch is finished; flush, commit, leave */
    lev_log(LEV_LOG_INFO, "stopping: flushing and committing", NULL);
    if (lev_producer_flush(w->producer, w->conf.shutdown_timeout_ms) != 0)
        lev_log(LEV_LOG_WARN, "unacknowledged outputs at shutdown", NULL);
    rd_kafka_resp_err_t cerr = rd_kafka_commit(w->rk, NULL, 0);
    if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
        lev_log(LEV_LOG_WARN, "final commit failed", "error", rd_kafka_err2str(cerr), NULL);
    rd_kafka_consumer_close(w->rk);
    lev_log(LEV_LOG_INFO, "worker stopped", NULL);
    return LEV_OK;
}
