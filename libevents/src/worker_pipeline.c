/*
 * The record pipeline. A poll batch is taken from the consumer, its
 * idempotency keys are claimed in one Redis round trip (together with the
 * completions and releases of the records that finished since the last
 * one), and its records are handled in order. Their outputs are sent and
 * the loop goes on to the next batch at once: nothing waits for the broker.
 *
 * Each record counts the delivery reports it waits for. When the last one
 * is in, the record is finished, or, when a report failed, it is dead-
 * lettered (the broker refused it for good) or held and handled again (the
 * broker did not acknowledge in time). A partition's offset advances only
 * over its prefix of finished records.
 *
 * A record that cannot go on now (in-process retry backoff, a retry record
 * not due, a claim held by another live owner, a report that failed) holds
 * its partition: the record and everything after it are given up, the
 * partition is seeked back to it and paused until its time comes. Other
 * partitions keep flowing.
 */
#include "codec_internal.h"
#include "worker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_RETRY_MS 1000
#define PRODUCE_RETRY_MAX_MS 5000

/* ======================================================================
 * Intake
 * ====================================================================== */

wrec_t *lev_w_rec_take(lev_worker_t *w, rd_kafka_message_t *m)
{
    wpart_t *p = lev_w_part_find(w, rd_kafka_topic_name(m->rkt), m->partition);
    /* a partition not (or no longer) ours, one held and seeked back, or a
     * record taken already: fetched before a pause or seek, fetched again */
    if (!p || !p->assigned || (p->pause & (PAUSE_HOLD | PAUSE_BREAKER)) ||
        (p->next_offset >= 0 && m->offset < p->next_offset)) {
        rd_kafka_message_destroy(m);
        return NULL;
    }
    wrec_t *r = lev_w_rec_alloc(w);
    if (!r) {
        /* out of memory: hold the partition at this record for a while */
        lev_log(LEV_LOG_ERROR, "out of memory taking a record", NULL);
        p->resume_at = lev_mono_ms() + 1000;
        lev_w_pause(w, p, PAUSE_HOLD);
        lev_w_seek(w, p, m->offset);
        p->next_offset = m->offset;
        rd_kafka_message_destroy(m);
        return NULL;
    }
    r->m = m;
    r->w = w;
    r->part = p;
    r->in_batch = 1;
    r->bytes = m->len + m->key_len;
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    p->next_offset = m->offset + 1;
    w->inflight++;
    w->inflight_bytes += r->bytes;
    W_STAT_ADD(w, received, 1);
    lev_mx_add(p->mx_consumed, 1);
    if (w->inflight > atomic_load_explicit(&w->stats.in_flight_peak, memory_order_relaxed))
        atomic_store_explicit(&w->stats.in_flight_peak, w->inflight, memory_order_relaxed);
    return r;
}

/* ======================================================================
 * Handling
 * ====================================================================== */

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

/* Queues r on its retry or dead-letter topic as r->fail says. A record too
 * large to send again is dead-lettered without its value; one that cannot
 * be queued at all holds its partition for a while. */
static void route(lev_worker_t *w, wrec_t *r)
{
    int rc = lev_w_route(w, r);
    if (rc == LEV_ERR_TOO_LARGE && !(r->fail->level == 0 && r->fail->omitted_bytes > 0)) {
        r->fail->level = 0;
        r->fail->omitted_bytes = r->m->len;
        rc = lev_w_route(w, r);
    }
    if (rc != 0 && r->part)
        lev_w_hold(w, r, lev_mono_ms() + PRODUCE_RETRY_MAX_MS);
}

/* Dead-letters r at once (undecodable, permanent failure). */
static void dead_letter(lev_worker_t *w, wrec_t *r, const char *error_class, const char *message,
                        int attempts, int64_t first_failure_ms)
{
    if (lev_w_fail(r, error_class, message, attempts, 0, first_failure_ms, 0) != 0) {
        lev_w_hold(w, r, lev_mono_ms() + 1000);
        return;
    }
    route(w, r);
}

void lev_w_ready_push(lev_worker_t *w, wrec_t *r)
{
    if (r->ready)
        return;
    r->ready = 1;
    r->ready_next = w->ready;
    w->ready = r;
}

void lev_w_delivery_cb(void *opaque, int err, const char *errstr, int32_t partition, int64_t offset)
{
    wrec_t *r = opaque;
    (void)partition;
    (void)offset;
    if (err && !r->fail_code) {
        r->fail_code = err;
        free(r->fail_text);
        r->fail_text = strdup(errstr ? errstr : lev_err_name(err));
    }
    if (--r->outstanding == 0)
        lev_w_ready_push(r->w, r);
}

/* The event a handler sees, its strings in `bufs`. */
typedef struct event_bufs_s {
    char source[256], correlation[256], trace[128], key[256], topic[W_NAME_MAX];
} event_bufs_t;

static void event_of(const wrec_t *r, avro_value_t *value, const lev_schema_t *reader, int attempt,
                     lev_event_t *ev, event_bufs_t *b)
{
    const rd_kafka_message_t *m = r->m;
    memset(ev, 0, sizeof *ev);
    ev->topic = rd_kafka_topic_name(m->rkt);
    int level = r->part ? r->part->level : lev_w_retry_level(r->w, ev->topic);
    if (level > 0 && lev_w_header_str(r, H_ORIG_TOPIC, b->topic, sizeof b->topic))
        ev->topic = b->topic;
    ev->partition = m->partition;
    ev->offset = m->offset;
    ev->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    ev->id = r->id;
    ev->type = lev_schema_name(reader);
    ev->source = lev_w_header_str(r, H_SOURCE, b->source, sizeof b->source);
    ev->correlation_id = lev_w_header_str(r, H_CORRELATION, b->correlation, sizeof b->correlation);
    if (!ev->correlation_id)
        ev->correlation_id = r->id;
    ev->traceparent = lev_w_header_str(r, H_TRACE, b->trace, sizeof b->trace);
    size_t klen = m->key && m->key_len < sizeof b->key - 1 ? m->key_len
                  : m->key                                 ? sizeof b->key - 1
                                                           : 0;
    if (klen)
        memcpy(b->key, m->key, klen);
    b->key[klen] = '\0';
    ev->key = b->key;
    ev->attempt = attempt;
    ev->value = *value;
}

/* The reusable value records of `reader` are decoded into. */
static avro_value_t *value_of(lev_worker_t *w, const lev_schema_t *reader)
{
    size_t i = lev_schema_index(reader);
    if (i >= w->nschemas)
        return NULL;
    if (!w->have_value[i]) {
        if (lev_codec_new_value(w->codec, reader, &w->values[i]) != 0)
            return NULL;
        w->have_value[i] = 1;
    }
    return &w->values[i];
}

/* Sends the outputs of a handler that returned OK; r waits for their
 * reports. */
static void send_outputs(lev_worker_t *w, wrec_t *r, lev_ctx_t *ctx)
{
    r->handled = 1;
    r->route = ROUTE_OUTPUTS;
    r->state = REC_WAIT;
    r->outstanding++; /* held while sending: reports may be served meanwhile */
    for (size_t i = 0; i < ctx->nout; i++) {
        wout_t *o = ctx->out[i];
        lev_msg_t msg = {.topic = lev_w_ctx_str(ctx, o->topic),
                         .partition = LEV_PARTITION_ANY,
                         .key = ctx->buf + o->key,
                         .key_len = o->key_len,
                         .value = ctx->buf + o->value,
                         .value_len = o->value_len,
                         .headers = o->eh.h,
                         .nheaders = o->eh.n};
        lev_error_t err;
        r->outstanding++;
        if (lev_producer_send(w->producer, &msg, lev_w_delivery_cb, r, &err) != 0) {
            r->outstanding--;
            if (!r->fail_code) {
                r->fail_code = err.code ? err.code : LEV_ERR_KAFKA;
                free(r->fail_text);
                r->fail_text = strdup(err.text);
            }
            lev_log(LEV_LOG_ERROR, "cannot queue an output", "error", err.text, "event_id", r->id,
                    NULL);
            break;
        }
        size_t bytes = o->key_len + o->value_len;
        r->bytes += bytes;
        w->inflight_bytes += bytes;
        W_STAT_ADD(w, emitted, 1);
    }
    r->outstanding--;
    if (r->outstanding == 0)
        lev_w_ready_push(w, r);
}

static const char *result_name(lev_result_t res)
{
    switch (res) {
    case LEV_RESULT_OK:
        return "ok";
    case LEV_RESULT_TRANSIENT:
        return "transient";
    case LEV_RESULT_PERMANENT:
        return "permanent";
    case LEV_RESULT_DEFERRED:
        return "deferred";
    }
    return "invalid";
}

/* Acts on the result of r's handler (or resume function) for a record its
 * partition still holds. */
static void act(lev_worker_t *w, wrec_t *r, lev_result_t res, const lev_event_t *ev, int tries_here,
                int earlier, int64_t now, int64_t first)
{
    wpart_t *p = r->part;
    const rd_kafka_message_t *m = r->m;
    lev_ctx_t *ctx = &w->ctx;
    const lev_retry_policy_t *pol = lev_w_policy(w, r->handler);
    if (res == LEV_RESULT_OK) {
        if (tries_here > 0) {
            char attempt[16];
            snprintf(attempt, sizeof attempt, "%d", ev->attempt);
            lev_log(LEV_LOG_INFO, "handled after retries", "event_id", r->id, "attempt", attempt,
                    NULL);
        }
        if (p->retry_offset == m->offset)
            p->retry_offset = -1;
        send_outputs(w, r, ctx);
        return;
    }

    const char *why = ctx->error[0] ? ctx->error : "handler failed";
    if (res == LEV_RESULT_TRANSIENT && lev_w_breaker_blocks(r)) {
        /* its dependency is out: wait for it, spending no attempt */
        char attempt[16];
        snprintf(attempt, sizeof attempt, "%d", ev->attempt);
        lev_log(LEV_LOG_INFO, "dependency unavailable; waiting for its circuit breaker", "event_id",
                r->id, "breaker", r->handler->breaker->name, "attempt", attempt, "error", why,
                NULL);
        lev_w_breaker_hold(w, r);
        return;
    }
    if (res == LEV_RESULT_TRANSIENT && p->level == 0 && tries_here + 1 < pol->attempts) {
        /* in-process retry: hold this partition, try again after a backoff */
        if (p->retry_offset != m->offset) {
            p->retry_offset = m->offset;
            p->retry_attempts = 0;
            p->first_failure_ms = now;
        }
        p->retry_attempts++;
        int64_t delay = backoff_ms(pol, p->retry_attempts);
        char attempt[16], delay_s[32];
        snprintf(attempt, sizeof attempt, "%d", ev->attempt);
        snprintf(delay_s, sizeof delay_s, "%" PRId64, delay);
        lev_log(LEV_LOG_WARN, "transient failure, retrying in process", "event_id", r->id,
                "attempt", attempt, "retry_in_ms", delay_s, "error", why, "correlation_id",
                ev->correlation_id, "traceparent", ev->traceparent, NULL);
        W_STAT_ADD(w, retried_inprocess, 1);
        lev_mx_add(w->obs.retries[0], 1);
        lev_w_hold(w, r, lev_mono_ms() + delay);
        return;
    }
    /* out of in-process attempts (or permanent): next retry topic or DLQ */
    int next = 0;
    const char *cls = LEV_CLASS_HANDLER;
    if (res == LEV_RESULT_TRANSIENT) {
        next = p->level + 1 <= pol->levels ? p->level + 1 : 0;
        cls = next ? LEV_CLASS_HANDLER : LEV_CLASS_RETRIES_EXHAUSTED;
    }
    int64_t due = next ? now + pol->delays_ms[next - 1] : 0;
    if (p->retry_offset == m->offset)
        p->retry_offset = -1;
    if (lev_w_fail(r, cls, why, earlier + tries_here + 1, next, first, due) != 0)
        lev_w_hold(w, r, lev_mono_ms() + 1000);
    else
        route(w, r);
}

/*
 * Runs the handler of a claimed record, or the resume function of its
 * deferral `d`, and acts on the result. The value is decoded again for a
 * resume (the reusable values have served other records since). With d,
 * r may have been given up meanwhile (r->part NULL): fn still runs, and
 * the outputs of an OK go out, so the work done is not done twice (the
 * record's claim is completed once they are acknowledged, and whoever
 * fetches it again finds it done).
 */
static void invoke(lev_worker_t *w, wrec_t *r, lev_deferral_t *d)
{
    wpart_t *p = r->part;
    const rd_kafka_message_t *m = r->m;
    int earlier = (int)lev_w_header_i64(r, H_ATTEMPTS, 0, 0, 1000000); /* tries before this topic */
    int tries_here = p && p->retry_offset == m->offset ? p->retry_attempts : 0;
    int64_t now = lev_now_ms();
    int64_t first = lev_w_header_i64(r, H_FIRST_FAILURE,
                                     p && p->retry_offset == m->offset ? p->first_failure_ms : now,
                                     0, INT64_MAX);

    if (!d && !lev_w_breaker_admit(w, r))
        return; /* its dependency is out: the partition waits at r */

    const lev_schema_t *reader = lev_schema_current_version(r->writer);
    if (!reader)
        reader = r->writer;
    avro_value_t *value = value_of(w, reader);
    lev_error_t err;
    int rc = value ? lev_codec_decode_into(w->codec, m->payload, m->len, reader, value, NULL, &err)
                   : lev_error_set(&err, LEV_ERR_NOMEM, NULL, "out of memory");
    if (rc == LEV_ERR_REGISTRY && !d) { /* not the record's fault: it waits */
        lev_w_registry_unavailable(w, &err);
        lev_w_hold(w, r, lev_mono_ms() + 1000);
        return;
    }
    if (rc != 0 && !d) {
        char text[800];
        dead_letter(w, r, lev_err_name(rc), lev_error_format(&err, text, sizeof text), earlier + 1,
                    now);
        return;
    }

    lev_event_t ev;
    event_bufs_t bufs;
    lev_ctx_t *ctx = &w->ctx;
    lev_w_ctx_reset(ctx);
    lev_result_t res;
    if (rc != 0) { /* decoded before, not now: out of memory */
        d->fn(NULL, NULL, d->arg);
        lev_ctx_set_error(ctx, "cannot decode the event again: %s", err.text);
        res = LEV_RESULT_TRANSIENT;
    } else {
        event_of(r, value, reader, earlier + tries_here + 1, &ev, &bufs);
        ctx->ev = &ev;
        ctx->rec = r;
        if (lev_log_enabled(LEV_LOG_DEBUG)) {
            char attempt[16];
            snprintf(attempt, sizeof attempt, "%d", ev.attempt);
            lev_log(LEV_LOG_DEBUG, d ? "resuming" : "handling", "event_id", r->id, "type", ev.type,
                    "attempt", attempt, "correlation_id", ev.correlation_id, "traceparent",
                    ev.traceparent, NULL);
        }
        if (!d)
            lev_w_span_start(w, r, ev.attempt);
        int64_t t0 = r->handler->mx_seconds ? lev_mono_ns() : 0;
        if (d) {
            res = d->fn(ctx, &ev, d->arg);
        } else {
            res = r->handler->fn(ctx, &ev, r->handler->opaque);
            W_STAT_ADD(w, handled, 1);
        }
        if (t0)
            lev_mx_observe(r->handler->mx_seconds, (double)(lev_mono_ns() - t0) / 1e9);
    }
    int resumed = d != NULL;
    free(d);

    if (ctx->registry_wait && !ctx->deferral && r->part && !resumed) {
        /* an emit's schema could not be registered yet (the registry is
         * slow or out): not the event's fault, so nothing of this call
         * goes on, no attempt is counted, and the record is handled again
         * once the registration had time, as a record whose writer id is
         * unknown waits */
        lev_w_ctx_commits_run(ctx, 0);
        lev_w_breaker_done(r);
        lev_w_hold(w, r, lev_mono_ms() + 250);
        lev_w_ctx_reset(ctx);
        ctx->rec = NULL;
        return;
    }
    if (ctx->deferral) { /* deferred in this call: waits for its resume */
        if (res != LEV_RESULT_DEFERRED)
            lev_log(LEV_LOG_ERROR,
                    "a deferred record's handler returned another result; "
                    "the record waits for its resume all the same",
                    "event_id", r->id, "result", result_name(res), NULL);
        lev_w_defer_wait(w, r, ctx->deferral);
        lev_w_ctx_reset(ctx);
        ctx->deferral = NULL;
        ctx->rec = NULL;
        return;
    }
    if (ctx->nstate > 0 && res == LEV_RESULT_OK) {
        /* its outputs wait for its state writes (worker_state.c) */
        if (lev_w_state_hold(w, r, ctx) == 0) {
            lev_w_breaker_done(r);
            lev_w_ctx_reset(ctx);
            ctx->rec = NULL;
            return;
        }
        lev_ctx_set_error(ctx, "out of memory keeping the state writes");
        res = LEV_RESULT_TRANSIENT;
    }
    lev_w_ctx_commits_run(ctx, res == LEV_RESULT_OK && ctx->nstate == 0);
    if (res == LEV_RESULT_DEFERRED || (unsigned)res > LEV_RESULT_DEFERRED) {
        lev_ctx_set_error(ctx, "the handler returned %s without a deferral (lev_ctx_defer)",
                          result_name(res));
        res = LEV_RESULT_TRANSIENT;
    }
    lev_w_breaker_done(r);
    lev_mx_add(r->handler->mx_result[res], 1);
    if (!r->part) { /* given up while deferred: only an OK's outputs go on */
        if (res == LEV_RESULT_OK)
            send_outputs(w, r, ctx);
    } else {
        act(w, r, res, &ev, tries_here, earlier, now, first);
    }
    lev_w_ctx_reset(ctx);
    ctx->rec = NULL;
}

/* Handles a record: now, or parked behind an earlier record of its key
 * that is deferred. */
static void handle(lev_worker_t *w, wrec_t *r)
{
    if (r->part->waiting && lev_w_key_waits(r)) {
        lev_w_park(r);
        return;
    }
    invoke(w, r, NULL);
}

/* Runs r's handler or resume function with r pinned (a hold may give r up
 * meanwhile; it is freed only after), then lets it go its way. */
static void invoke_pinned(lev_worker_t *w, wrec_t *r, lev_deferral_t *d)
{
    wpart_t *p = r->part;
    r->outstanding++;
    invoke(w, r, d);
    if (p && r->part == p && r->state != REC_DEFERRED)
        lev_w_waiting_remove(p, r);
    if (--r->outstanding == 0)
        lev_w_ready_push(w, r); /* finished, or given up: the ready list settles it */
}

void lev_w_resume(lev_worker_t *w, lev_deferral_t *d)
{
    wrec_t *r = d->r;
    if (r)
        lev_w_defer_untrack(w, d);
    if (!r || !w->running) { /* the worker is gone or stopped: release only */
        d->fn(NULL, NULL, d->arg);
        free(d);
        if (r)
            lev_w_defer_let_go(w, r);
        return;
    }
    wpart_t *p = r->part;
    invoke_pinned(w, r, d);
    if (p)
        lev_w_wake_parked(w, p);
}

void lev_w_wake_parked(lev_worker_t *w, wpart_t *p)
{
    for (;;) {
        wrec_t *next = NULL;
        for (wrec_t *q = p->waiting; q && !next; q = q->wait_next)
            if (q->state == REC_PARKED && !lev_w_key_waits(q))
                next = q;
        if (!next)
            return;
        if (w->stop) { /* not handled any more: fetched again */
            lev_w_hold(w, next, lev_mono_ms());
            continue;
        }
        next->state = REC_NEW;
        invoke_pinned(w, next, NULL);
    }
}

/* ======================================================================
 * The batch
 * ====================================================================== */

/* The largest due time a retry record may carry: further than the longest
 * delay of any policy from now is not ours, and is not waited for. */
static int64_t max_delay_ms(const lev_worker_t *w)
{
    int64_t d = 0;
    for (int i = 0; i < w->conf.retry.levels; i++)
        if (w->conf.retry.delays_ms[i] > d)
            d = w->conf.retry.delays_ms[i];
    for (size_t h = 0; h < w->nhandlers; h++)
        for (int i = 0; w->handlers[h].has_policy && i < w->handlers[h].policy.levels; i++)
            if (w->handlers[h].policy.delays_ms[i] > d)
                d = w->handlers[h].policy.delays_ms[i];
    return d;
}

/* First look at a record: its id, whether it is due, its writer schema and
 * handler; queues its claim. */
static void classify(lev_worker_t *w, wrec_t *r, int64_t now, int64_t max_delay)
{
    const rd_kafka_message_t *m = r->m;
    lev_w_scan_headers(r);
    if (!lev_w_header_str(r, H_ID, r->id, sizeof r->id))
        /* no event id: the record's coordinates are stable across redelivery */
        snprintf(r->id, sizeof r->id, "%s/%" PRId32 "/%" PRId64, rd_kafka_topic_name(m->rkt),
                 m->partition, m->offset);
    if (r->part->level > 0) {
        int64_t due = lev_w_header_i64(r, H_DUE, 0, 0, INT64_MAX);
        if (due > now + max_delay + 60000)
            due = 0;     /* not a due time we could have set: do not wait for it */
        if (due > now) { /* not before its due time: wait without polling it */
            lev_w_hold(w, r, lev_mono_ms() + (due - now));
            return;
        }
    }
    /* the writer schema, by fingerprint or registry id (an id not seen
     * before is asked of the registry, once) */
    size_t hdr = 0;
    lev_error_t werr;
    int wrc = lev_codec_writer(w->codec, m->payload, m->len, &r->writer, &hdr, &werr);
    if (wrc == LEV_ERR_REGISTRY) {            /* not known yet, or the registry is out: */
        lev_w_registry_unavailable(w, &werr); /* the partition waits at r */
        lev_w_hold(w, r, lev_mono_ms() + 250);
        return;
    }
    if (wrc) {
        r->writer = NULL;
        r->frame_rc = wrc == LEV_ERR_UNKNOWN_SCHEMA ? wrc : LEV_ERR_DECODE;
        return;
    }
    /* a writer learned from the registry is handled as its current version */
    const lev_schema_t *cur = lev_schema_current_version(r->writer);
    size_t idx = lev_schema_index(cur ? cur : r->writer);
    r->handler = idx < w->nschemas ? w->by_schema[idx] : NULL;
    if (!r->handler) {
        /* not ours to handle (events we emitted, for example), but hostile
         * bytes never pass unnoticed: the body is checked against its
         * writer schema with bounds (cheap, nothing is allocated) */
        if (m->len > lev_codec_limits(w->codec)->max_value_size ||
            lev_codec_validate_body(w->codec, r->writer, (const uint8_t *)m->payload + hdr,
                                    m->len - hdr, NULL) != 0) {
            r->frame_rc = LEV_ERR_DECODE;
            return;
        }
        r->state = REC_DONE;
        lev_w_mark_dirty(w, r->part);
        return;
    }
    char why[160];
    if (lev_w_id_problem(r, why, sizeof why)) { /* nothing to key it by: dead-lettered */
        r->bad_id = 1;
        return;
    }
    if (w->store) {
        if (lev_w_claim_queue(w, r) == 0)
            r->claim = CLAIM_NEEDED;
        else
            lev_w_hold(w, r, lev_mono_ms() + 1000);
    }
}

/* Why a record cannot be decoded, for its dead-letter record (the rare
 * path: the check is run again for its message). */
static void frame_error(lev_worker_t *w, const wrec_t *r, char *buf, size_t size)
{
    const rd_kafka_message_t *m = r->m;
    lev_error_t err;
    lev_error_clear(&err);
    size_t limit = lev_codec_limits(w->codec)->max_value_size, hdr = 0;
    const lev_schema_t *writer = NULL;
    if (r->writer && m->len > limit)
        snprintf(buf, size, "value of %zu bytes exceeds the limit of %zu", m->len, limit);
    else if (lev_codec_writer(w->codec, m->payload, m->len, &writer, &hdr, &err) != 0)
        lev_error_format(&err, buf, size); /* framing, fingerprint or id */
    else if (lev_codec_validate_body(w->codec, writer, (const uint8_t *)m->payload + hdr,
                                     m->len - hdr, &err) != 0)
        lev_error_format(&err, buf, size);
    else
        snprintf(buf, size, "undecodable value (%zu bytes)", m->len);
}

/* Handles a claimed batch in order, then frees what was given up in it. */
static void handle_batch(lev_worker_t *w, wrec_t **recs, size_t n)
{
    int64_t started = lev_mono_ms(), budget = w->max_poll_interval_ms / 3;
    lev_w_state_prefetch(w, recs, n);
    for (size_t i = 0; i < n; i++) {
        wrec_t *r = recs[i];
        if (!r->part || r->state != REC_NEW)
            continue;
        int64_t now = lev_mono_ms();
        lev_w_obs_alive(w, now); /* handlers taking their time are not a stalled loop */
        if (w->stop || now - started > budget || w->ndeferred >= (size_t)w->conf.max_deferred) {
            /* stopping, keeping well inside max.poll.interval.ms, or as
             * many records deferred as allowed: the rest is fetched again */
            lev_w_hold(w, r, lev_mono_ms());
            continue;
        }
        if (r->bad_id) { /* an id that cannot key it */
            char why[160];
            dead_letter(w, r, LEV_CLASS_BAD_ID, lev_w_id_problem(r, why, sizeof why),
                        (int)lev_w_header_i64(r, H_ATTEMPTS, 0, 0, 1000000) + 1, lev_now_ms());
            continue;
        }
        if (r->frame_rc) { /* undecodable: straight to the dead-letter topic */
            char text[800];
            frame_error(w, r, text, sizeof text);
            dead_letter(w, r, lev_err_name(r->frame_rc), text,
                        (int)lev_w_header_i64(r, H_ATTEMPTS, 0, 0, 1000000) + 1, lev_now_ms());
            continue;
        }
        if (r->claim == CLAIM_DONE) {
            r->state = REC_DONE;
            lev_w_mark_dirty(w, r->part);
            W_STAT_ADD(w, skipped_duplicates, 1);
            lev_mx_add(r->handler->mx_duplicate, 1);
            lev_log(LEV_LOG_INFO, "duplicate skipped", "event_id", r->id, NULL);
            continue;
        }
        if (r->claim == CLAIM_DEAD) { /* this copy of the event was dead-lettered */
            r->state = REC_DONE;
            lev_w_mark_dirty(w, r->part);
            W_STAT_ADD(w, skipped_duplicates, 1);
            lev_mx_add(r->handler->mx_duplicate, 1);
            lev_log(
                LEV_LOG_INFO,
                "dead-lettered before; skipped (evctl dlq redrive sends it to be handled again)",
                "event_id", r->id, NULL);
            continue;
        }
        if (r->claim == CLAIM_BUSY) { /* another owner holds a live lease */
            lev_log(LEV_LOG_INFO, "event claimed and still at work (here or elsewhere), waiting",
                    "event_id", r->id, NULL);
            lev_w_hold(w, r, lev_mono_ms() + BUSY_RETRY_MS);
            continue;
        }
        if (r->claim == CLAIM_NEEDED) { /* its claim never came back */
            lev_w_hold(w, r, lev_mono_ms());
            continue;
        }
        handle(w, r);
    }
    /* records given up while the batch held them are freed now */
    for (size_t i = 0; i < n; i++) {
        wrec_t *r = recs[i];
        r->in_batch = 0;
        if (!r->part && r->outstanding == 0 && !r->ready) {
            lev_w_settle_rec(w, r);
            lev_w_rec_free(w, r);
        }
    }
}

/*
 * One step of the pipeline. The batch just taken is classified and its
 * claims go to Redis in one round trip together with the settles of what
 * finished; while Redis works on them, the batch claimed in the step before
 * is handled. So the worker never waits for a round trip it could overlap.
 * Without Redis, the batch is handled at once. Returns 1 when it did
 * something.
 */
int lev_w_pipeline_step(lev_worker_t *w)
{
    int64_t now = lev_now_ms(), max_delay = max_delay_ms(w);
    size_t taken = w->nbatch;
    if (taken) {
        W_STAT_ADD(w, batches, 1);
        lev_mx_observe(w->obs.batch, (double)taken);
        for (size_t i = 0; i < taken; i++)
            if (w->batch[i]->part)
                classify(w, w->batch[i], now, max_delay);
    }
    if (!w->store) {
        handle_batch(w, w->batch, taken);
        w->nbatch = 0;
        return taken > 0;
    }
    int did = taken > 0;
    lev_error_t err;
    if (w->exchanging) {
        did = 1;
        if (lev_w_exchange_end(w, &err) != 0) {
            lev_w_hold_unclaimed(w, w->prev, w->nprev);
            lev_w_store_lost(w, &err);
        }
    }
    if (!w->store_down && (lev_w_claims_queued(w) || lev_w_pending_settles(w))) {
        did = 1;
        if (lev_w_exchange_begin(w, &err) != 0) {
            lev_w_claims_drop(w);
            lev_w_hold_unclaimed(w, w->batch, taken);
            lev_w_store_lost(w, &err);
        }
    } else if (lev_w_claims_queued(w)) { /* Redis is down: nothing that needs a claim goes on */
        lev_w_claims_drop(w);
        lev_w_hold_unclaimed(w, w->batch, taken);
    }
    if (w->nprev) {
        handle_batch(w, w->prev, w->nprev);
        did = 1;
    }
    wrec_t **t = w->prev;
    w->prev = w->batch;
    w->nprev = taken;
    w->batch = t;
    w->nbatch = 0;
    return did;
}

/* Ends the exchange under way and handles the batch it claimed (with the
 * stop flag set, that holds every record not handled yet): used when the
 * worker stops. */
void lev_w_pipeline_drain(lev_worker_t *w)
{
    lev_error_t err;
    if (w->exchanging && lev_w_exchange_end(w, &err) != 0) {
        lev_w_hold_unclaimed(w, w->prev, w->nprev);
        lev_w_store_lost(w, &err);
    }
    if (w->nbatch) { /* taken but never classified: fetched again */
        for (size_t i = 0; i < w->nbatch; i++)
            if (w->batch[i]->part)
                lev_w_hold(w, w->batch[i], lev_mono_ms());
        handle_batch(w, w->batch, w->nbatch);
        w->nbatch = 0;
    }
    if (w->nprev) {
        handle_batch(w, w->prev, w->nprev);
        w->nprev = 0;
    }
}

/* ======================================================================
 * Reports, finishing, offsets
 * ====================================================================== */

int lev_w_serve_producer(lev_worker_t *w)
{
    int n = 0, k;
    while ((k = lev_producer_poll(w->producer, 0)) > 0)
        n += k;
    return n;
}

/* Acts on a record whose reports are all in but one failed. */
static void delivery_failed(lev_worker_t *w, wrec_t *r)
{
    int code = r->fail_code;
    char text[512];
    snprintf(text, sizeof text, "%s", r->fail_text ? r->fail_text : lev_err_name(code));
    free(r->fail_text);
    r->fail_text = NULL;
    r->fail_code = 0;
    W_STAT_ADD(w, produce_failures, 1);
    lev_mx_add(w->obs.produce_failures[r->route == ROUTE_OUTPUTS ? 0
                                       : r->route == ROUTE_RETRY ? 1
                                                                 : 2],
               1);
    wpart_t *p = r->part;
    int permanent = code == LEV_ERR_TOO_LARGE || code == LEV_ERR_REFUSED;
    if (permanent && r->route == ROUTE_OUTPUTS) {
        /* an output the broker will never take: the input is a permanent
         * failure, dead-lettered with its value */
        char msg[700];
        snprintf(msg, sizeof msg, "an output was refused: %s", text);
        int attempts = (int)lev_w_header_i64(r, H_ATTEMPTS, 0, 0, 1000000) + 1;
        r->handled = 0;
        dead_letter(w, r, code == LEV_ERR_TOO_LARGE ? LEV_CLASS_TOO_LARGE : LEV_CLASS_PRODUCE, msg,
                    attempts, lev_now_ms());
        return;
    }
    if (permanent && (r->route == ROUTE_RETRY || r->route == ROUTE_DLQ) && r->fail) {
        /* the record itself cannot go there: dead-letter it, without its
         * value when the value is what is too large */
        if (code == LEV_ERR_TOO_LARGE) {
            r->fail->level = 0;
            r->fail->omitted_bytes = r->m->len;
            route(w, r);
            return;
        }
        if (r->route == ROUTE_RETRY) {
            r->fail->level = 0;
            route(w, r);
            return;
        }
    }
    /* not acknowledged in time, or the dead-letter topic refuses it: the
     * record is not finished; hold its partition and handle it again */
    int64_t delay = w->conf.retry.backoff_ms > 0 ? w->conf.retry.backoff_ms : 100;
    for (int i = 0; i < p->produce_failures && delay < PRODUCE_RETRY_MAX_MS; i++)
        delay *= 2;
    p->produce_failures++;
    if (delay > PRODUCE_RETRY_MAX_MS)
        delay = PRODUCE_RETRY_MAX_MS;
    lev_log(permanent ? LEV_LOG_ERROR : LEV_LOG_WARN,
            r->route == ROUTE_OUTPUTS ? "output not acknowledged; the input will be handled again"
                                      : "failed record not acknowledged; it will be routed again",
            "error", text, "event_id", r->id, "topic", p->topic, NULL);
    lev_w_hold(w, r, lev_mono_ms() + delay);
}

void lev_w_process_ready(lev_worker_t *w)
{
    while (w->ready) {
        wrec_t *r = w->ready;
        w->ready = r->ready_next;
        r->ready = 0;
        if (r->outstanding > 0)
            continue;
        if (!r->part) { /* given up earlier: only its claim is left to settle */
            if (r->fail_code == 0 && r->state == REC_WAIT)
                r->state = REC_DONE;
            lev_w_span_end(w, r);
            lev_w_settle_rec(w, r);
            if (!r->in_batch) /* else its batch frees it */
                lev_w_rec_free(w, r);
            continue;
        }
        if (r->fail_code) {
            delivery_failed(w, r);
            continue;
        }
        if (r->route == ROUTE_RETRY) {
            W_STAT_ADD(w, sent_to_retry, 1);
            if (r->fail && r->fail->level > 0 && r->fail->level <= LEV_RETRY_LEVELS_MAX)
                lev_mx_add(w->obs.retries[r->fail->level], 1);
        } else if (r->route == ROUTE_DLQ || r->route == ROUTE_DLQ_BARE) {
            W_STAT_ADD(w, dead_lettered, 1);
            lev_w_obs_dead_letter(w, r->fail ? r->fail->error_class : NULL);
        }
        r->state = REC_DONE;
        lev_w_span_end(w, r);
        lev_w_mark_dirty(w, r->part);
    }
}

void lev_w_advance(lev_worker_t *w)
{
    rd_kafka_topic_partition_list_t *store = NULL;
    int64_t now = 0; /* wall clock ms, read once: the records' age */
    lev_w_obs_beat(w);
    while (w->dirty) {
        wpart_t *p = w->dirty;
        w->dirty = p->dnext;
        p->dirty = 0;
        int64_t offset = -1;
        wrec_t *r;
        while ((r = p->head) && r->state == REC_DONE) {
            p->head = r->next;
            if (!p->head)
                p->tail = NULL;
            offset = r->m->offset + 1;
            p->produce_failures = 0;
            if (p->retry_offset == r->m->offset)
                p->retry_offset = -1;
            lev_w_settle_rec(w, r);
            W_STAT_ADD(w, finished, 1);
            if (p->mx_finished) {
                lev_mx_add(p->mx_finished, 1);
                int64_t ts = rd_kafka_message_timestamp(r->m, NULL);
                if (!now)
                    now = lev_now_ms();
                if (ts > 0)
                    lev_mx_observe(p->mx_age, ts < now ? (double)(now - ts) / 1000.0 : 0.0);
            }
            r->next = NULL;
            r->part = NULL;
            /* a record finished without handling (no handler) may still be
             * in the batch claimed for the next step: that batch frees it */
            if (!r->in_batch)
                lev_w_rec_free(w, r);
        }
        if (offset >= 0 && p->assigned) {
            if (!store)
                store = rd_kafka_topic_partition_list_new(8);
            rd_kafka_topic_partition_list_add(store, p->topic, p->partition)->offset = offset;
        }
    }
    if (!store)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->rk, store);
    if (err)
        lev_log(LEV_LOG_WARN, "offset store failed (partition revoked?)", "error",
                rd_kafka_err2str(err), NULL);
    rd_kafka_topic_partition_list_destroy(store);
}
