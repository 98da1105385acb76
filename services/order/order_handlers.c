/*
 * order-service handlers.
 *
 * Every order has one record in Redis, <service>:order:<order id>, holding
 * the JSON of ord_state_t. A handler reads it, asks the rules what to do,
 * and queues the next record as a compare-and-set against the text it read
 * (libevents' batched service state: the batch's records are read in one
 * round trip, and its writes go in one more), so two deliveries racing (a
 * redelivery during a rebalance, a retry topic) cannot both move the
 * order: the loser's outputs are never sent, and it is handled again and
 * finds the event already applied or the order moved on. What counts or
 * logs a state change runs once the write is in (lev_ctx_on_commit).
 *
 * The record is written before the output is sent. If the process dies
 * in between, the input is delivered again (its offset was not stored);
 * the record then names this very event, and the handler emits the same
 * output again, with the same derived event id, so downstream consumers
 * drop the copy if the first one did get out.
 *
 * A payment result for an order without a record is dead-lettered rather
 * than retried: the record is written before OrderAccepted is emitted, so
 * billing cannot have seen an order whose record does not exist yet. No
 * record means it was lost (Redis data lost or expired, see
 * ORDER_STATE_TTL) or the event was not caused by this service; waiting
 * will not bring it back, and the dead-letter topic keeps the event for an
 * operator.
 */
#include "order_handlers.h"

#include "order_rules.h"
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Redis key of an order's record. */
static void state_key(lev_ctx_t *ctx, const char *order_id, char *out, size_t size)
{
    snprintf(out, size, "%s:order:%s", lev_ctx_service(ctx), order_id);
}

/* Logs a failure, attaches it to the context, and returns res. */
static lev_result_t fail(lev_ctx_t *ctx, const lev_event_t *ev, lev_result_t res, const char *what,
                         const lev_error_t *err)
{
    char buf[800];
    const char *detail = err ? lev_error_format(err, buf, sizeof buf) : "";
    lev_ctx_set_error(ctx, "%s%s%s", what, *detail ? ": " : "", detail);
    lev_log(res == LEV_RESULT_PERMANENT ? LEV_LOG_ERROR : LEV_LOG_WARN, what, "event_id", ev->id,
            "type", ev->type, "error", detail, "correlation_id", ev->correlation_id, NULL);
    return res;
}

/* ======================================================================
 * OrderPlaced
 * ====================================================================== */

/* Reads the order record at key into *text and *st (*text NULL when there
 * is none). On failure sets *res to the handler's result (transient when
 * Redis failed, permanent when the record is corrupt) and returns -1. */
static int read_state(lev_ctx_t *ctx, const lev_event_t *ev, const char *key, char **text,
                      ord_state_t *st, lev_result_t *res)
{
    lev_error_t err;
    if (lev_ctx_state_get(ctx, key, text, &err) != 0) {
        *res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot read the order record", &err);
        return -1;
    }
    if (*text && ord_state_parse(*text, st, &err) != 0) {
        *res = fail(ctx, ev, LEV_RESULT_PERMANENT, "the order record is corrupt", &err);
        return -1;
    }
    return 0;
}

/* Counts an order that reached `status` (once per transition recorded). */
static void count_state(const ord_service_t *svc, ord_status_t status)
{
    const char *state[1] = {ord_status_name(status)};
    lev_counter_inc(svc->orders, state);
}

/* What a state change counts and logs once it is recorded. */
typedef struct ord_commit_s {
    const ord_service_t *svc;
    ord_status_t status;
    const char *msg; /* static */
    char order_id[80], event_id[LEV_EVENT_ID_MAX + 1], correlation_id[128];
    const char *k1, *k2; /* static, or NULL */
    char v1[256], v2[128];
} ord_commit_t;

static void on_commit(int committed, void *arg)
{
    ord_commit_t *c = arg;
    if (committed) {
        count_state(c->svc, c->status);
        lev_log(LEV_LOG_INFO, c->msg, "order_id", c->order_id, "event_id", c->event_id,
                "correlation_id", c->correlation_id, c->k1 ? c->k1 : "", c->k1 ? c->v1 : NULL,
                c->k2 ? c->k2 : "", c->k2 ? c->v2 : NULL, NULL);
    }
    free(c);
}

/* Queues the write of the order record (expect: the text read, NULL for a
 * new one) and what counts and logs it once it is in. 0, or -1 with *res
 * set. */
static int write_state(lev_ctx_t *ctx, const lev_event_t *ev, const ord_service_t *svc,
                       const char *key, const char *expect, const ord_state_t *next,
                       const char *order_id, const char *msg, const char *k1, const char *v1,
                       const char *k2, const char *v2, lev_result_t *res)
{
    lev_error_t err = {0};
    char *text = ord_state_format(next);
    ord_commit_t *c = calloc(1, sizeof *c);
    if (!text || !c) {
        free(text);
        free(c);
        *res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
        return -1;
    }
    c->svc = svc;
    c->status = next->status;
    c->msg = msg;
    snprintf(c->order_id, sizeof c->order_id, "%s", order_id);
    snprintf(c->event_id, sizeof c->event_id, "%s", ev->id);
    snprintf(c->correlation_id, sizeof c->correlation_id, "%s",
             ev->correlation_id ? ev->correlation_id : "");
    c->k1 = v1 ? k1 : NULL;
    c->k2 = v2 ? k2 : NULL;
    snprintf(c->v1, sizeof c->v1, "%s", v1 ? v1 : "");
    snprintf(c->v2, sizeof c->v2, "%s", v2 ? v2 : "");
    int rc = lev_ctx_state_cas(ctx, key, expect, text, svc->state_ttl_ms, &err);
    free(text);
    if (rc != 0) {
        free(c);
        *res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot write the order record", &err);
        return -1;
    }
    if (lev_ctx_on_commit(ctx, on_commit, c, &err) != 0) {
        free(c);
        *res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot write the order record", &err);
        return -1;
    }
    return 0;
}

/* Emits OrderAccepted or OrderRejected for status (decided at `at`). */
static int emit_decision(lev_ctx_t *ctx, const ord_service_t *svc, ord_status_t status,
                         const ord_order_t *o, ord_reasons_t *reasons, int64_t at, lev_error_t *err)
{
    avro_value_t out;
    int rc;
    if (status == ORD_ACCEPTED) {
        if ((rc = lev_ctx_new_value(ctx, ORD_T_ACCEPTED, &out)) != 0)
            return svc_error(err, rc, ORD_T_ACCEPTED, "cannot make a value");
        rc = ord_accepted_fill(&out, o, at);
    } else {
        if (reasons->n == 0) {
            /* redelivery after the rules changed: the recorded decision stands */
            ord_reason_t *r = &reasons->r[reasons->n++];
            snprintf(r->code, sizeof r->code, "REJECTED_BEFORE");
            r->field[0] = '\0';
            snprintf(r->message, sizeof r->message, "the order was rejected when first placed");
        }
        if ((rc = lev_ctx_new_value(ctx, ORD_T_REJECTED, &out)) != 0)
            return svc_error(err, rc, ORD_T_REJECTED, "cannot make a value");
        rc = ord_rejected_fill(&out, o, reasons, at);
    }
    if (rc != 0)
        return svc_error(err, rc, NULL, "cannot fill the output event");
    return lev_ctx_emit(ctx, svc->orders_topic, o->order_id, &out, err);
}

/* The reasons' codes, comma-separated ("" when none). */
static void reason_codes(const ord_reasons_t *reasons, char *codes, size_t size)
{
    size_t used = 0;
    codes[0] = '\0';
    for (size_t i = 0; i < reasons->n && used < size; i++) {
        int w = snprintf(codes + used, size - used, "%s%s", i ? "," : "", reasons->r[i].code);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Logs the decision on a new order. */
static void log_decision(const lev_event_t *ev, const ord_order_t *o, ord_status_t status,
                         const ord_reasons_t *reasons, const char *how)
{
    char codes[256];
    reason_codes(reasons, codes, sizeof codes);
    lev_log(LEV_LOG_INFO, status == ORD_ACCEPTED ? "order accepted" : "order rejected", "order_id",
            o->order_id, "event_id", ev->id, "correlation_id", ev->correlation_id, "reasons",
            reasons->n ? codes : NULL, "how", how, NULL);
}

lev_result_t ord_handle_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    const ord_service_t *svc = opaque;
    lev_result_t res = LEV_RESULT_TRANSIENT;
    lev_store_t *store = lev_ctx_store(ctx);
    lev_error_t err = {0};
    ord_order_t o;
    ord_reasons_t reasons;
    ord_state_t cur = {0}, next = {0};
    char *cur_text = NULL, key[256];

    if (ord_order_from_value(&ev->value, &o, &err) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "OrderPlaced cannot be read", &err);
    int valid = ord_validate(&o, &reasons) == 0;
    if (ev->key && strcmp(ev->key, o.order_id) != 0)
        lev_log(LEV_LOG_WARN, "OrderPlaced key is not its order id", "event_id", ev->id, "key",
                ev->key, "order_id", o.order_id, NULL);

    if (!ord_is_uuid(o.order_id)) {
        /* no usable id to keep a record under: reject without one */
        if (emit_decision(ctx, svc, ORD_REJECTED, &o, &reasons, lev_now_ms(), &err) != 0) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit OrderRejected", &err);
            goto done;
        }
        log_decision(ev, &o, ORD_REJECTED, &reasons, "without record");
        count_state(svc, ORD_REJECTED);
        res = LEV_RESULT_OK;
        goto done;
    }
    if (!store) {
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "order-service needs Redis (REDIS_URL)", NULL);
        goto done;
    }
    state_key(ctx, o.order_id, key, sizeof key);
    if (read_state(ctx, ev, key, &cur_text, &cur, &res) != 0)
        goto done;
    const char *why = "";
    int act = ord_on_placed(cur_text ? &cur : NULL, ev->id, &o, valid, lev_now_ms(), &next, &why);
    switch (act) {
    case ORD_ACT_WRITE: {
        /* a new record: written only where there is none (a copy of the
         * event racing this one loses and finds it) */
        char codes[256];
        reason_codes(&reasons, codes, sizeof codes);
        if (write_state(ctx, ev, svc, key, NULL, &next, o.order_id,
                        next.status == ORD_ACCEPTED ? "order accepted" : "order rejected",
                        "reasons", reasons.n ? codes : NULL, "how", why, &res) != 0)
            goto done;
        if (emit_decision(ctx, svc, next.status, &o, &reasons, next.changed_at, &err) != 0) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit the decision", &err);
            goto done;
        }
        res = LEV_RESULT_OK;
        goto done;
    }
    case ORD_ACT_REEMIT:
        if (emit_decision(ctx, svc, cur.status, &o, &reasons, cur.changed_at, &err) != 0) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit the decision", &err);
            goto done;
        }
        log_decision(ev, &o, cur.status, &reasons, why);
        res = LEV_RESULT_OK;
        goto done;
    case ORD_ACT_IGNORE:
        lev_log(LEV_LOG_INFO, "OrderPlaced ignored", "order_id", o.order_id, "event_id", ev->id,
                "status", ord_status_name(cur.status), "why", why, "correlation_id",
                ev->correlation_id, NULL);
        res = LEV_RESULT_OK;
        goto done;
    default:
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
        goto done;
    }
done:
    free(cur_text);
    ord_state_clear(&cur);
    ord_state_clear(&next);
    ord_order_clear(&o);
    return res;
}

/* ======================================================================
 * Payment results
 * ====================================================================== */

/* Emits OrderConfirmed or OrderCancelled for the settled record st. */
static int emit_settlement(lev_ctx_t *ctx, const ord_service_t *svc, const ord_state_t *st,
                           const ord_payment_t *p, lev_error_t *err)
{
    avro_value_t out;
    const char *type = st->status == ORD_CONFIRMED ? ORD_T_CONFIRMED : ORD_T_CANCELLED;
    int rc = lev_ctx_new_value(ctx, type, &out);
    if (rc != 0)
        return svc_error(err, rc, type, "cannot make a value");
    rc = st->status == ORD_CONFIRMED ? ord_confirmed_fill(&out, p->order_id, st, p)
                                     : ord_cancelled_fill(&out, p->order_id, st, p);
    if (rc != 0)
        return svc_error(err, rc, type, "cannot fill the output event");
    return lev_ctx_emit(ctx, svc->orders_topic, p->order_id, &out, err);
}

lev_result_t ord_handle_payment(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    const ord_service_t *svc = opaque;
    lev_result_t res = LEV_RESULT_TRANSIENT;
    lev_store_t *store = lev_ctx_store(ctx);
    lev_error_t err = {0};
    ord_payment_t p;
    ord_state_t cur = {0}, next = {0};
    char *cur_text = NULL, key[256];
    int succeeded = strcmp(ev->type, ORD_T_PAYMENT_SUCCEEDED) == 0;

    if (ord_payment_from_value(&ev->value, succeeded, &p, &err) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "payment result cannot be read", &err);
    if (!ord_is_uuid(p.order_id))
        return fail(ctx, ev, LEV_RESULT_PERMANENT,
                    "payment result for an order id that is not a UUID", NULL);
    if (!store)
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "order-service needs Redis (REDIS_URL)", NULL);
    state_key(ctx, p.order_id, key, sizeof key);
    if (read_state(ctx, ev, key, &cur_text, &cur, &res) != 0)
        goto done;
    const char *why = "";
    int act = ord_on_payment(cur_text ? &cur : NULL, ev->id, succeeded, lev_now_ms(), &next, &why);
    switch (act) {
    case ORD_ACT_WRITE:
        if (write_state(ctx, ev, svc, key, cur_text, &next, p.order_id,
                        next.status == ORD_CONFIRMED ? "order confirmed" : "order cancelled",
                        "reason_code", p.reason_code, NULL, NULL, &res) != 0)
            goto done;
        if (emit_settlement(ctx, svc, &next, &p, &err) != 0) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit the settlement", &err);
            goto done;
        }
        res = LEV_RESULT_OK;
        goto done;
    case ORD_ACT_REEMIT:
        if (emit_settlement(ctx, svc, &cur, &p, &err) != 0) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit the settlement", &err);
            goto done;
        }
        lev_log(LEV_LOG_INFO, "settlement emitted again", "order_id", p.order_id, "event_id",
                ev->id, "why", why, NULL);
        res = LEV_RESULT_OK;
        goto done;
    case ORD_ACT_IGNORE:
        lev_log(LEV_LOG_WARN, "payment result ignored", "order_id", p.order_id, "event_id", ev->id,
                "status", ord_status_name(cur.status), "why", why, "correlation_id",
                ev->correlation_id, NULL);
        res = LEV_RESULT_OK;
        goto done;
    case ORD_ACT_UNKNOWN:
        svc_error(&err, LEV_ERR_NOT_FOUND, key, "no record");
        res = fail(ctx, ev, LEV_RESULT_PERMANENT, "payment result for an unknown order", &err);
        goto done;
    default:
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
        goto done;
    }
done:
    free(cur_text);
    ord_state_clear(&cur);
    ord_state_clear(&next);
    return res;
}
