/*
 * billing-service handler.
 *
 * The outcome of an order's charge is recorded once in Redis, under
 * <service>:charge:<order id>, with SET NX (lev_store_set_once): the first
 * outcome written is the outcome forever, and every later delivery of an
 * OrderAccepted for that order emits the recorded outcome instead of
 * charging again.
 *
 * Without a gateway the record is the charge (the ledger). With a gateway
 * (BILLING_GATEWAY_URL) the gateway charges, keyed by the payment id in the
 * Idempotency-Key header; the record is written after its answer. A crash
 * between the answer and the record means the next delivery asks the
 * gateway again with the same key, which answers the same charge rather
 * than making a second one.
 *
 * Emitted events get ids derived from the input event id, so a redelivered
 * input emits the same ids again and consumers drop the copies.
 */
#include "billing_handlers.h"

#include "billing_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Logs a failure, attaches it to the context, and returns res. */
static lev_result_t fail(lev_ctx_t *ctx, const lev_event_t *ev, lev_result_t res, const char *what,
                         const char *detail)
{
    detail = detail ? detail : "";
    lev_ctx_set_error(ctx, "%s%s%s", what, *detail ? ": " : "", detail);
    lev_log(res == LEV_RESULT_PERMANENT ? LEV_LOG_ERROR : LEV_LOG_WARN, what, "event_id", ev->id,
            "error", detail, "correlation_id", ev->correlation_id, NULL);
    return res;
}

/* fail() with a lev_error_t as the detail. */
static lev_result_t fail_err(lev_ctx_t *ctx, const lev_event_t *ev, lev_result_t res,
                             const char *what, const lev_error_t *err)
{
    char buf[800];
    return fail(ctx, ev, res, what, lev_error_format(err, buf, sizeof buf));
}

/* Asks the gateway to charge c. Returns the verdict, with out filled for
 * BILL_CHARGED and BILL_DECLINED and `why` explaining the others. */
static bill_verdict_t gateway_charge(const bill_service_t *svc, const bill_charge_t *c,
                                     bill_outcome_t *out, char *why, size_t why_size)
{
    svc_http_response_t resp = {0};
    char idem[96], auth[1024];
    const char *headers[3] = {idem, NULL, NULL};
    bill_verdict_t v = BILL_TRANSIENT;
    char *body = bill_gateway_request(c, out->payment_id);
    if (!body) {
        snprintf(why, why_size, "out of memory");
        return BILL_TRANSIENT;
    }
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", out->payment_id);
    if (svc->gateway_auth) {
        snprintf(auth, sizeof auth, "Authorization: %s", svc->gateway_auth);
        headers[1] = auth;
    }
    if (svc_http_post(svc->http, svc->gateway_url, body, strlen(body), headers, &resp) != 0) {
        snprintf(why, why_size, "cannot make the gateway request");
        goto done;
    }
    v = bill_gateway_verdict(resp.status, resp.body, resp.body_len, out, why, why_size);
    if (resp.status == 0) {
        size_t used = strlen(why);
        snprintf(why + used, why_size - used, ": %s", resp.error);
    }
done:
    /* the authorization value must not linger on the stack */
    memset(auth, 0, sizeof auth);
    svc_http_response_clear(&resp);
    free(body);
    return v;
}

lev_result_t bill_handle_accepted(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    const bill_service_t *svc = opaque;
    lev_store_t *store = lev_ctx_store(ctx);
    lev_result_t res = LEV_RESULT_TRANSIENT;
    lev_error_t err = {0};
    bill_charge_t c;
    bill_outcome_t out;
    char pid[LEV_UUID_STR_LEN], key[300], why[512] = "";
    char *recorded = NULL, *record = NULL;
    const char *how = "charged";
    avro_value_t v = ev->value, val;

    if (bill_charge_from_value(&v, &c, &err) != 0)
        return fail_err(ctx, ev, LEV_RESULT_PERMANENT, "OrderAccepted cannot be read", &err);
    if (bill_payment_id(c.order_id, pid) != 0 || strlen(c.order_id) > 128)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "OrderAccepted has an unusable order id", NULL);
    snprintf(key, sizeof key, "%s:charge:%s", lev_ctx_service(ctx), c.order_id);
    bill_outcome_init(&out, &c, pid);

    /* 1. charged before? then that outcome stands */
    if (store) {
        if (lev_store_get(store, key, &recorded, &err) != 0) {
            res = fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot read the ledger", &err);
            goto done;
        }
        if (recorded) {
            if (bill_record_parse(recorded, &out, &err) != 0) {
                res = fail_err(ctx, ev, LEV_RESULT_PERMANENT, "the ledger record is corrupt", &err);
                goto done;
            }
            how = "recorded before";
            goto emit;
        }
    }

    /* 2. decide: the gateway, or the built-in rules */
    if (svc->gateway_url) {
        switch (gateway_charge(svc, &c, &out, why, sizeof why)) {
        case BILL_CHARGED:
        case BILL_DECLINED:
            break;
        case BILL_PERMANENT:
            res = fail(ctx, ev, LEV_RESULT_PERMANENT, "the gateway refused the charge", why);
            goto done;
        default:
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "the gateway did not answer the charge", why);
            goto done;
        }
        snprintf(out.gateway, sizeof out.gateway, "%s", svc->gateway_host);
    } else {
        bill_decide(&c, svc->amount_limit_minor, pid, &out);
        snprintf(out.gateway, sizeof out.gateway, "ledger");
    }
    out.at = lev_now_ms();

    /* 3. record it once; if another delivery recorded first, its outcome wins */
    if (store) {
        int created = 0;
        if (!(record = bill_record_format(&out))) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
            goto done;
        }
        if (lev_store_set_once(store, key, record, 0, &created, &err) != 0) {
            res = fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot write the ledger", &err);
            goto done;
        }
        if (!created) {
            if (lev_store_get(store, key, &recorded, &err) != 0 || !recorded) {
                res = fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot read the ledger", &err);
                goto done;
            }
            if (bill_record_parse(recorded, &out, &err) != 0) {
                res = fail_err(ctx, ev, LEV_RESULT_PERMANENT, "the ledger record is corrupt", &err);
                goto done;
            }
            how = "recorded concurrently";
        }
    }

emit:
    if (lev_ctx_new_value(ctx, out.succeeded ? BILL_T_SUCCEEDED : BILL_T_FAILED, &val) != 0 ||
        bill_payment_fill(&val, &c, &out) != 0 ||
        lev_ctx_emit(ctx, svc->payments_topic, c.order_id, &val, &err) != 0) {
        res = fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit the payment result", &err);
        goto done;
    }
    lev_log(LEV_LOG_INFO, out.succeeded ? "payment succeeded" : "payment failed", "order_id",
            c.order_id, "payment_id", out.payment_id, "reason_code",
            out.succeeded ? NULL : out.code, "gateway", out.gateway, "how", how, "event_id", ev->id,
            "correlation_id", ev->correlation_id, NULL);
    res = LEV_RESULT_OK;
done:
    free(recorded);
    free(record);
    return res;
}
