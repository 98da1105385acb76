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

struct lev_producer_s {
    rd_kafka_t *rk;
    rd_kafka_conf_t *template; /* copy kept to recreate the client */
    size_t outstanding;
    unsigned recreations;
    int fatal;                         /* set by the error callback */
    envelope_t *live_head, *live_tail; /* every unreported envelope, in send order */
    int shutdown_timeout_ms;
    char source[128];
};

struct envelope_s {
    lev_producer_t *p;
    lev_delivery_cb cb;
    void *opaque;
    char *topic;
    int32_t partition;
    void *key;
    size_t key_len;
    void *value;
    size_t value_len;
    rd_kafka_headers_t *headers; /* ours; a copy goes with each attempt */
    int64_t timestamp_ms;
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

static void envelope_free(envelope_t *e)
{
    if (!e)
        return;
    if (e->headers)
        rd_kafka_headers_destroy(e->headers);
    free(e);
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
        if (m->err)
            e->cb(e->opaque, LEV_ERR_KAFKA, rd_kafka_err2str(m->err), m->partition, -1);
        else
            e->cb(e->opaque, LEV_OK, NULL, m->partition, m->offset);
    }
    envelope_free(e);
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

static int produce_envelope(lev_producer_t *p, envelope_t *e, lev_error_t *err)
{
    rd_kafka_headers_t *h = e->headers ? rd_kafka_headers_copy(e->headers) : NULL;
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
        return lev_error_set(err, LEV_ERR_KAFKA, e->topic, "produce failed: %s",
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
    size_t n = 0;
    for (envelope_t *e = p->live_head, *next; e; e = next) {
        next = e->next;
        if (produce_envelope(p, e, &err) != 0) {
            live_remove(p, e);
            if (e->cb)
                e->cb(e->opaque, LEV_ERR_KAFKA, err.text, e->partition, -1);
            envelope_free(e);
        }
        n++;
    }
    char count[32];
    snprintf(count, sizeof count, "%zu", n);
    lev_log(LEV_LOG_WARN, "producer recreated after fatal error", "resent", count, NULL);
}

lev_producer_t *lev_producer_new(const lev_config_t *conf, const lev_kv_t *extra, lev_error_t *err)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%d", conf->delivery_timeout_ms);
    const lev_kv_t defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"compression.type", "lz4"},
        /* the same partition for a key as Java, Go (sarama's compat) and kcat -p murmur2 */
        {"partitioner", "murmur2_random"},
        {"message.timeout.ms", timeout},
        {NULL, NULL},
    };
    lev_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    p->shutdown_timeout_ms = conf->shutdown_timeout_ms;
    snprintf(p->source, sizeof p->source, "%s", conf->source ? conf->source : "/libevents");
    p->template = lev_kafka_conf_new(conf, RD_KAFKA_PRODUCER, defaults, extra, err);
    if (!p->template)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(p->template, dr_cb);
    rd_kafka_conf_set_error_cb(p->template, error_cb);
    if (!(p->rk = client_new(p, err)))
        goto fail;
    return p;
fail:
    if (p->template)
        rd_kafka_conf_destroy(p->template);
    free(p);
    return NULL;
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
        envelope_free(e);
    }
    rd_kafka_destroy(p->rk);
    rd_kafka_conf_destroy(p->template);
    free(p);
}

int lev_producer_send(lev_producer_t *p, const lev_msg_t *msg, lev_delivery_cb cb, void *opaque,
                      lev_error_t *err)
{
    if (!p || !msg || !msg->topic || (!msg->value && msg->value_len))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "invalid message");
    recover(p);
    size_t tlen = strlen(msg->topic) + 1;
    envelope_t *e = malloc(sizeof *e + tlen + msg->key_len + msg->value_len);
    if (!e)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    char *data = (char *)(e + 1);
    *e = (envelope_t){.p = p, .cb = cb, .opaque = opaque, .partition = msg->partition};
    e->topic = memcpy(data, msg->topic, tlen);
    e->key = msg->key ? memcpy(data + tlen, msg->key, msg->key_len) : NULL;
    e->key_len = msg->key ? msg->key_len : 0;
    e->value = msg->value ? memcpy(data + tlen + e->key_len, msg->value, msg->value_len) : NULL;
    e->value_len = msg->value_len;
    e->timestamp_ms = msg->timestamp_ms;
    e->headers = lev_kafka_headers_new(msg->headers, msg->nheaders);
    int rc = produce_envelope(p, e, err);
    if (rc != 0) {
        envelope_free(e);
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

/* ---- events: CloudEvents binary-mode headers ---- */

void lev_traceparent_new(const char *parent, char out[64])
{
    unsigned char r[24];
    char trace[33], span[17];
    lev_random_bytes(r, sizeof r);
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

int lev_event_headers(lev_event_headers_t *out, const char *type, const lev_event_meta_t *meta)
{
    if (!out || !type)
        return LEV_ERR_ARG;
    lev_event_meta_t m = meta ? *meta : (lev_event_meta_t){0};
    memset(out, 0, sizeof *out);
    if (m.id)
        snprintf(out->id, sizeof out->id, "%s", m.id);
    else
        lev_uuid4(out->id);
    lev_time_format(m.time_ms ? m.time_ms : lev_now_ms(), out->time);
    if (m.traceparent)
        snprintf(out->traceparent, sizeof out->traceparent, "%s", m.traceparent);
    else
        lev_traceparent_new(NULL, out->traceparent);
    snprintf(out->correlation_id, sizeof out->correlation_id, "%s",
             m.correlation_id ? m.correlation_id : out->id);
    snprintf(out->source, sizeof out->source, "%s", m.source ? m.source : "/libevents");
    snprintf(out->type, sizeof out->type, "%s", type);
    const struct {
        const char *name, *value;
    } hs[] = {
        {LEV_H_CE_SPECVERSION, "1.0"},
        {LEV_H_CE_ID, out->id},
        {LEV_H_CE_SOURCE, out->source},
        {LEV_H_CE_TYPE, out->type},
        {LEV_H_CE_TIME, out->time},
        {LEV_H_CONTENT_TYPE, LEV_CONTENT_TYPE_AVRO},
        {LEV_H_TRACEPARENT, out->traceparent},
        {LEV_H_CORRELATION_ID, out->correlation_id},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        out->h[out->n++] = (lev_header_t){hs[i].name, hs[i].value, strlen(hs[i].value)};
    return LEV_OK;
}

int lev_producer_send_event(lev_producer_t *p, lev_codec_t *codec, const char *topic,
                            const char *key, const lev_schema_t *schema, avro_value_t *value,
                            const lev_event_meta_t *meta, lev_delivery_cb cb, void *opaque,
                            lev_error_t *err)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = lev_codec_encode(codec, schema, value, &buf, &len, err);
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
