/*
 * Idempotent producer with checked delivery and recovery from fatal errors.
 *
 * Every message handed to lev_producer_send lives in an envelope we own
 * until its delivery report. librdkafka 2.0.2's idempotent producer can
 * raise a fatal error (sequence desynchronisation after a disconnect); the
 * client is then unusable. We purge it, collect every envelope it had not
 * delivered, destroy it, create a new client and send them again, so a
 * fatal error costs at most duplicates (which consumers dedupe by ce_id),
 * never a lost message.
 */
#include "producer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct envelope_s envelope_t;

typedef struct topic_limit_s {
    char *topic;
    size_t max_bytes;
} topic_limit_t;

/* Bytes a record adds to a record batch besides its key, value and header
 * names and values (Kafka's v2 format: the batch header, the record's
 * varints), so a record that passes the check fits a batch of its own. */
#define RECORD_OVERHEAD 96

struct lev_producer_s {
    rd_kafka_t *rk;
    rd_kafka_conf_t *template; /* copy kept to recreate the client */
    size_t outstanding;
    unsigned recreations;
    int fatal;                         /* set by the error callback */
    envelope_t *live_head, *live_tail; /* every unreported envelope, in send order */
    int shutdown_timeout_ms;
    int wake_fd; /* written when delivery reports are waiting (-1: none) */
    char source[128];
    topic_limit_t *limits; /* max.message.bytes of the topics known to us */
    size_t nlimits;
};

/* A header kept flat in its envelope: offsets into the envelope's data. */
typedef struct flat_header_s {
    uint32_t name, name_len, value, value_len;
    int has_value;
} flat_header_t;

/* One message from lev_producer_send to its delivery report: the record's
 * bytes live right after the struct, in one allocation. */
struct envelope_s {
    lev_delivery_cb cb;
    void *opaque;
    size_t record_bytes; /* key, value, headers and overhead */
    size_t topic_limit;  /* max.message.bytes of its topic, 0 when unknown */
    char *topic;
    int32_t partition;
    void *key;
    size_t key_len;
    void *value;
    size_t value_len;
    int64_t timestamp_ms;
    size_t nheaders;
    flat_header_t *headers;
    envelope_t *prev, *next;
};

static void live_add(lev_producer_t *p, envelope_t *e)
{
    e->next = NULL;
    e->prev = p->live_tail;
    if (p->live_tail)
        p->live_tail->next = e;
    else
        p->live_head = e;
    p->live_tail = e;
    p->outstanding++;
}

static void live_remove(lev_producer_t *p, envelope_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        p->live_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->live_tail = e->prev;
    p->outstanding--;
}

/* ---- callbacks (run inside rd_kafka_poll/flush on our thread) ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *conf_opaque)
{
    lev_producer_t *p = conf_opaque;
    envelope_t *e = m->_private;
    if (!e)
        return;
    if (m->err &&
        (p->fatal || m->err == RD_KAFKA_RESP_ERR__FATAL ||
         m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)) {
        /* not delivered because the client died: it stays on the live list
         * and is sent again by the next client */
        return;
    }
    live_remove(p, e);
    if (e->cb) {
        int code = lev_kafka_err_code(m->err);
        if (code == LEV_ERR_TOO_LARGE && e->topic_limit && e->record_bytes <= e->topic_limit)
            code = LEV_ERR_KAFKA; /* it fits: the batch it went in with did not */
        if (m->err)
            e->cb(e->opaque, code, rd_kafka_err2str(m->err), m->partition, -1);
        else
            e->cb(e->opaque, LEV_OK, NULL, m->partition, m->offset);
    }
    free(e);
    (void)rk;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    lev_producer_t *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        p->fatal = 1;
        lev_log(LEV_LOG_ERROR, "producer fatal error, recreating the client", "error",
                rd_kafka_err2name(ferr), "reason", fatal, NULL);
        return;
    }
    lev_log(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LEV_LOG_WARN : LEV_LOG_INFO,
            "producer client error", "error", rd_kafka_err2name(err), "reason", reason, NULL);
}

/* ---- client lifecycle ---- */

/* Makes the main queue of the current client (delivery reports, errors)
 * write to p->wake_fd when it goes from empty to not empty. */
static void wakeup_enable(lev_producer_t *p)
{
    if (p->wake_fd < 0 || !p->rk)
        return;
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(q, p->wake_fd, "p", 1);
    rd_kafka_queue_destroy(q);
}

static rd_kafka_t *client_new(lev_producer_t *p, lev_error_t *err)
{
    char errstr[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_dup(p->template);
    rd_kafka_conf_set_opaque(kc, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(kc);
        lev_error_set(err, LEV_ERR_KAFKA, NULL, "cannot create producer: %s", errstr);
    }
    return rk;
}

static void recover(lev_producer_t *p);

/* The librdkafka headers of an envelope (NULL when it has none). */
static rd_kafka_headers_t *envelope_headers(const envelope_t *e)
{
    if (e->nheaders == 0)
        return NULL;
    const char *base = (const char *)e;
    rd_kafka_headers_t *h = rd_kafka_headers_new(e->nheaders);
    for (size_t i = 0; i < e->nheaders; i++) {
        const flat_header_t *fh = &e->headers[i];
        rd_kafka_header_add(h, base + fh->name, (ssize_t)fh->name_len,
                            fh->has_value ? base + fh->value : NULL,
                            fh->has_value ? (ssize_t)fh->value_len : 0);
    }
    return h;
}

static int produce_envelope(lev_producer_t *p, envelope_t *e, lev_error_t *err)
{
    rd_kafka_headers_t *h = envelope_headers(e);
    for (int tries = 0;; tries++) {
        rd_kafka_resp_err_t rc = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(e->topic), RD_KAFKA_V_PARTITION(e->partition),
            RD_KAFKA_V_KEY(e->key, e->key_len), RD_KAFKA_V_VALUE(e->value, e->value_len),
            RD_KAFKA_V_TIMESTAMP(e->timestamp_ms), RD_KAFKA_V_OPAQUE(e), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
            return LEV_OK;
        if (rc == RD_KAFKA_RESP_ERR__FATAL && tries < 3) {
            /* the client died before its error callback ran: replace it now */
            p->fatal = 1;
            recover(p);
            continue;
        }
        if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 100) {
            rd_kafka_poll(p->rk, 100); /* let deliveries drain the queue */
            continue;
        }
        if (h)
            rd_kafka_headers_destroy(h);
        if (rc == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            char limit[32] = "?";
            size_t len = sizeof limit;
            rd_kafka_conf_get(p->template, "message.max.bytes", limit, &len);
            return lev_error_set(err, LEV_ERR_TOO_LARGE, e->topic,
                                 "record of %zu bytes exceeds the producer's message.max.bytes "
                                 "(%s)",
                                 e->key_len + e->value_len, limit);
        }
        return lev_error_set(err, lev_kafka_err_code(rc), e->topic, "produce failed: %s",
                             rd_kafka_err2str(rc));
    }
}

/* Replaces a client that raised a fatal error and re-sends, in their
 * original order, every message it had not reported. */
static void recover(lev_producer_t *p)
{
    if (!p->fatal)
        return;
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk); /* reports it still owed are ignored: we resend */
    p->rk = NULL;
    lev_error_t err;
    while (!(p->rk = client_new(p, &err))) {
        lev_log(LEV_LOG_ERROR, "cannot recreate producer, retrying", "error", err.text, NULL);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    p->fatal = 0;
    p->recreations++;
    wakeup_enable(p);
    size_t n = 0;
    for (envelope_t *e = p->live_head, *next; e; e = next) {
        next = e->next;
        if (produce_envelope(p, e, &err) != 0) {
            live_remove(p, e);
            if (e->cb)
                e->cb(e->opaque, err.code, err.text, e->partition, -1);
            free(e);
        }
        n++;
    }
    char count[32];
    snprintf(count, sizeof count, "%zu", n);
    lev_log(LEV_LOG_WARN, "producer recreated after fatal error", "resent", count, NULL);
}

rd_kafka_conf_t *lev_producer_conf_new(const lev_config_t *conf, const lev_kv_t *defaults,
                                       const lev_kv_t *extra, lev_error_t *err)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%d", conf->delivery_timeout_ms);
    const lev_kv_t base[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"compression.type", "lz4"},
        /* the same partition for a key as Java, Go (sarama's compat) and kcat -p murmur2 */
        {"partitioner", "murmur2_random"},
        {"message.timeout.ms", timeout},
    };
    enum { NBASE = sizeof base / sizeof base[0] };
    size_t ndefaults = 0;
    while (defaults && defaults[ndefaults].key)
        ndefaults++;
    lev_kv_t *merged = malloc((NBASE + ndefaults + 1) * sizeof *merged);
    if (!merged) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < NBASE; i++)
        merged[n++] = base[i];
    for (size_t i = 0; i < ndefaults; i++)
        merged[n++] = defaults[i]; /* set after the base: they win */
    merged[n] = (lev_kv_t){NULL, NULL};
    rd_kafka_conf_t *kc = lev_kafka_conf_new(conf, RD_KAFKA_PRODUCER, merged, extra, err);
    free(merged);
    if (!kc)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    return kc;
}

lev_producer_t *lev_producer_new_from_conf(rd_kafka_conf_t *kc, int shutdown_timeout_ms,
                                           const char *source, lev_error_t *err)
{
    lev_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        rd_kafka_conf_destroy(kc);
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    p->wake_fd = -1;
    p->shutdown_timeout_ms = shutdown_timeout_ms;
    snprintf(p->source, sizeof p->source, "%s", source ? source : "/libevents");
    p->template = kc;
    if (!(p->rk = client_new(p, err))) {
        rd_kafka_conf_destroy(p->template);
        free(p);
        return NULL;
    }
    return p;
}

lev_producer_t *lev_producer_new_with(const lev_config_t *conf, const lev_kv_t *defaults,
                                      const lev_kv_t *extra, lev_error_t *err)
{
    if (!conf) {
        lev_error_set(err, LEV_ERR_ARG, NULL, "no configuration");
        return NULL;
    }
    rd_kafka_conf_t *kc = lev_producer_conf_new(conf, defaults, extra, err);
    if (!kc)
        return NULL;
    return lev_producer_new_from_conf(kc, conf->shutdown_timeout_ms, conf->source, err);
}

lev_producer_t *lev_producer_new(const lev_config_t *conf, const lev_kv_t *extra, lev_error_t *err)
{
    return lev_producer_new_with(conf, NULL, extra, err);
}

void lev_producer_destroy(lev_producer_t *p)
{
    if (!p)
        return;
    if (lev_producer_flush(p, p->shutdown_timeout_ms) != 0) {
        char count[32];
        snprintf(count, sizeof count, "%zu", p->outstanding);
        lev_log(LEV_LOG_WARN, "producer closing with unacknowledged messages", "outstanding", count,
                NULL);
    }
    p->fatal = 1; /* from here on, reports only leave envelopes on the live list */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    for (envelope_t *e = p->live_head, *next; e; e = next) {
        next = e->next;
        live_remove(p, e);
        if (e->cb)
            e->cb(e->opaque, LEV_ERR_KAFKA, "producer closed before the broker acknowledged",
                  e->partition, -1);
        free(e);
    }
    rd_kafka_destroy(p->rk);
    rd_kafka_conf_destroy(p->template);
    for (size_t i = 0; i < p->nlimits; i++)
        free(p->limits[i].topic);
    free(p->limits);
    free(p);
}

int lev_producer_send(lev_producer_t *p, const lev_msg_t *msg, lev_delivery_cb cb, void *opaque,
                      lev_error_t *err)
{
    if (!p || !msg || !msg->topic || (!msg->value && msg->value_len) ||
        (!msg->key && msg->key_len) || (!msg->headers && msg->nheaders))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "invalid message");
    recover(p);
    /* one allocation: envelope, header table, topic, key, value, header bytes */
    size_t tlen = strlen(msg->topic) + 1, hbytes = 0;
    for (size_t i = 0; i < msg->nheaders; i++)
        hbytes += strlen(msg->headers[i].name) + (msg->headers[i].value ? msg->headers[i].size : 0);
    size_t htab = msg->nheaders * sizeof(flat_header_t);
    size_t total = sizeof(envelope_t) + htab + tlen + msg->key_len + msg->value_len + hbytes;
    if (hbytes > UINT32_MAX / 2 || total < hbytes)
        return lev_error_set(err, LEV_ERR_TOO_LARGE, msg->topic, "headers too large");
    /* a record larger than its topic takes is refused here, before it can
     * take innocent records of its batch down with it at the broker */
    size_t record_bytes = msg->key_len + msg->value_len + hbytes + RECORD_OVERHEAD;
    size_t limit = 0;
    for (size_t i = 0; i < p->nlimits; i++)
        if (strcmp(p->limits[i].topic, msg->topic) == 0)
            limit = p->limits[i].max_bytes;
    if (limit && record_bytes > limit)
        return lev_error_set(err, LEV_ERR_TOO_LARGE, msg->topic,
                             "record of %zu bytes exceeds the topic's max.message.bytes (%zu)",
                             record_bytes, limit);
    envelope_t *e = malloc(total);
    if (!e)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    *e = (envelope_t){.cb = cb,
                      .opaque = opaque,
                      .record_bytes = record_bytes,
                      .topic_limit = limit,
                      .partition = msg->partition,
                      .timestamp_ms = msg->timestamp_ms,
                      .nheaders = msg->nheaders};
    char *base = (char *)e;
    size_t at = sizeof(envelope_t);
    e->headers = (flat_header_t *)(base + at);
    at += htab;
    e->topic = memcpy(base + at, msg->topic, tlen);
    at += tlen;
    if (msg->key) {
        e->key = memcpy(base + at, msg->key, msg->key_len);
        e->key_len = msg->key_len;
        at += msg->key_len;
    }
    if (msg->value) {
        e->value = memcpy(base + at, msg->value, msg->value_len);
        e->value_len = msg->value_len;
        at += msg->value_len;
    }
    for (size_t i = 0; i < msg->nheaders; i++) {
        const lev_header_t *h = &msg->headers[i];
        flat_header_t *fh = &e->headers[i];
        size_t nlen = strlen(h->name);
        fh->name = (uint32_t)at;
        fh->name_len = (uint32_t)nlen;
        memcpy(base + at, h->name, nlen);
        at += nlen;
        fh->has_value = h->value != NULL;
        fh->value = (uint32_t)at;
        fh->value_len = h->value ? (uint32_t)h->size : 0;
        if (h->value) {
            memcpy(base + at, h->value, h->size);
            at += h->size;
        }
    }
    int rc = produce_envelope(p, e, err);
    if (rc != 0) {
        free(e);
        return rc;
    }
    live_add(p, e);
    return LEV_OK;
}

int lev_producer_poll(lev_producer_t *p, int timeout_ms)
{
    int n = rd_kafka_poll(p->rk, timeout_ms);
    recover(p);
    return n;
}

int lev_producer_flush(lev_producer_t *p, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    while (p->outstanding > 0) {
        int64_t left = deadline - lev_mono_ms();
        if (left <= 0)
            return LEV_ERR_TIMEOUT;
        lev_producer_poll(p, left > 100 ? 100 : (int)left);
    }
    return LEV_OK;
}

size_t lev_producer_outstanding(const lev_producer_t *p)
{
    return p->outstanding;
}

unsigned lev_producer_recreations(const lev_producer_t *p)
{
    return p->recreations;
}

rd_kafka_t *lev_producer_client(lev_producer_t *p)
{
    return p->rk;
}

int lev_producer_set_topic_limit(lev_producer_t *p, const char *topic, size_t max_bytes)
{
    for (size_t i = 0; i < p->nlimits; i++) {
        if (strcmp(p->limits[i].topic, topic) == 0) {
            p->limits[i].max_bytes = max_bytes;
            return LEV_OK;
        }
    }
    topic_limit_t *nl = realloc(p->limits, (p->nlimits + 1) * sizeof *nl);
    if (!nl)
        return LEV_ERR_NOMEM;
    p->limits = nl;
    if (!(nl[p->nlimits].topic = strdup(topic)))
        return LEV_ERR_NOMEM;
    nl[p->nlimits++].max_bytes = max_bytes;
    return LEV_OK;
}

void lev_producer_set_wakeup_fd(lev_producer_t *p, int fd)
{
    p->wake_fd = fd;
    wakeup_enable(p);
}

/* ---- events: CloudEvents binary-mode headers ---- */

void lev_traceparent_new(const char *parent, char out[64])
{
    unsigned char r[24];
    char trace[33], span[17];
    lev_fast_random_bytes(r, sizeof r);
    lev_hex(r, 16, trace);
    lev_hex(r + 16, 8, span);
    /* keep the parent's trace id: "00-<32 hex>-<16 hex>-<2 hex>" */
    if (parent && strlen(parent) == 55 && parent[2] == '-' && parent[35] == '-') {
        memcpy(trace, parent + 3, 32);
        trace[32] = '\0';
    }
    memcpy(out, "00-", 3);
    memcpy(out + 3, trace, 32);
    out[35] = '-';
    memcpy(out + 36, span, 16);
    memcpy(out + 52, "-01", 4);
}

/* Copies s into out[size] (cut to fit); returns its length. */
static size_t copy_str(char *out, size_t size, const char *s)
{
    size_t n = strnlen(s, size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

int lev_event_headers(lev_event_headers_t *out, const char *type, const lev_event_meta_t *meta)
{
    if (!out || !type)
        return LEV_ERR_ARG;
    lev_event_meta_t m = meta ? *meta : (lev_event_meta_t){0};
    size_t id_len, corr_len, src_len, type_len, trace_len;
    if (m.id)
        id_len = copy_str(out->id, sizeof out->id, m.id);
    else
        lev_uuid4(out->id), id_len = strlen(out->id);
    lev_time_format(m.time_ms ? m.time_ms : lev_now_ms(), out->time);
    if (m.traceparent)
        trace_len = copy_str(out->traceparent, sizeof out->traceparent, m.traceparent);
    else
        lev_traceparent_new(NULL, out->traceparent), trace_len = strlen(out->traceparent);
    corr_len = copy_str(out->correlation_id, sizeof out->correlation_id,
                        m.correlation_id ? m.correlation_id : out->id);
    src_len = copy_str(out->source, sizeof out->source, m.source ? m.source : "/libevents");
    type_len = copy_str(out->type, sizeof out->type, type);
    out->n = 0;
    out->h[out->n++] = (lev_header_t){LEV_H_CE_SPECVERSION, "1.0", 3};
    out->h[out->n++] = (lev_header_t){LEV_H_CE_ID, out->id, id_len};
    out->h[out->n++] = (lev_header_t){LEV_H_CE_SOURCE, out->source, src_len};
    out->h[out->n++] = (lev_header_t){LEV_H_CE_TYPE, out->type, type_len};
    out->h[out->n++] = (lev_header_t){LEV_H_CE_TIME, out->time, strlen(out->time)};
    out->h[out->n++] =
        (lev_header_t){LEV_H_CONTENT_TYPE, LEV_CONTENT_TYPE_AVRO, sizeof LEV_CONTENT_TYPE_AVRO - 1};
    out->h[out->n++] = (lev_header_t){LEV_H_TRACEPARENT, out->traceparent, trace_len};
    out->h[out->n++] = (lev_header_t){LEV_H_CORRELATION_ID, out->correlation_id, corr_len};
    return LEV_OK;
}

int lev_producer_send_event(lev_producer_t *p, lev_codec_t *codec, const char *topic,
                            const char *key, const lev_schema_t *schema, const avro_value_t *value,
                            const lev_event_meta_t *meta, lev_delivery_cb cb, void *opaque,
                            lev_error_t *err)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = 0;
    if (lev_codec_wire_format(codec) == LEV_WIRE_CONFLUENT)
        rc = lev_codec_register(codec, topic, schema, err); /* once per subject */
    if (rc == 0)
        rc = lev_codec_encode(codec, schema, value, &buf, &len, err);
    if (rc != 0)
        return rc;
    lev_event_meta_t m = meta ? *meta : (lev_event_meta_t){0};
    if (!m.source)
        m.source = p->source;
    lev_event_headers_t eh;
    lev_event_headers(&eh, lev_schema_name(schema), &m);
    lev_msg_t msg = {
        .topic = topic,
        .partition = LEV_PARTITION_ANY,
        .key = key,
        .key_len = key ? strlen(key) : 0,
        .value = buf,
        .value_len = len,
        .headers = eh.h,
        .nheaders = eh.n,
    };
    rc = lev_producer_send(p, &msg, cb, opaque, err);
    free(buf);
    return rc;
}
