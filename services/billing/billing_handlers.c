/*
 * billing-service handler.
 *
 * Who may ask for a charge: only OrderAccepted events whose ce_source is
 * one of BILLING_TRUSTED_SOURCES (order-service's, by default). Anyone else
 * able to write to the orders topic gets a dead letter, not a charge.
 *
 * The outcome of an order's charge is recorded once in Redis, under
 * <service>:charge:<order id>, as a write only where there is none
 * (libevents' batched service state: the batch's ledger records are read in
 * one round trip and its writes go in one more, before any payment result
 * is sent): the first outcome written is the outcome forever. A delivery
 * whose write loses (another recorded first) sends nothing and is handled
 * again, and like every later delivery of an OrderAccepted for that order
 * it emits the recorded outcome instead of charging again.
 *
 * Without a gateway the record is the charge (the ledger). With a gateway
 * (BILLING_GATEWAY_URL) the gateway charges, keyed by the payment id in the
 * Idempotency-Key header; the record is written after its answer. The
 * request runs on the HTTP client's thread while the record is deferred,
 * so a slow gateway holds up only the orders waiting for it. A crash
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

/* An OrderAccepted read and checked: the charge, its payment id and ledger
 * key, its outcome so far. */
typedef struct bill_job_s {
    bill_charge_t c;
    bill_outcome_t out;
    char pid[LEV_UUID_STR_LEN];
    char key[300];
} bill_job_t;

static lev_result_t job_of(lev_ctx_t *ctx, const lev_event_t *ev, const bill_service_t *svc,
                           bill_job_t *j)
{
    lev_error_t err = {0};
    char why[1400];
    memset(j, 0, sizeof *j);
    if (!bill_source_trusted(ev->source, svc->trusted_sources)) {
        snprintf(why, sizeof why, "ce_source \"%s\" is not a trusted source of %s (%s)",
                 ev->source ? ev->source : "", BILL_T_ACCEPTED, svc->trusted_sources);
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "OrderAccepted from an untrusted source", why);
    }
    if (bill_charge_from_value(&ev->value, &j->c, &err) != 0)
        return fail_err(ctx, ev, LEV_RESULT_PERMANENT, "OrderAccepted cannot be read", &err);
    if (bill_payment_id(j->c.order_id, j->pid) != 0 || strlen(j->c.order_id) > 128)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "OrderAccepted has an unusable order id", NULL);
    snprintf(j->key, sizeof j->key, "%s:charge:%s", lev_ctx_service(ctx), j->c.order_id);
    bill_outcome_init(&j->out, &j->c, j->pid);
    return LEV_RESULT_OK;
}

/* Logs the payment result of an outcome. */
static void log_outcome(const bill_outcome_t *out, const char *order_id, const char *how,
                        const char *event_id, const char *correlation_id)
{
    lev_log(LEV_LOG_INFO, out->succeeded ? "payment succeeded" : "payment failed", "order_id",
            order_id, "payment_id", out->payment_id, "reason_code",
            out->succeeded ? NULL : out->code, "gateway", out->gateway, "how", how, "event_id",
            event_id, "correlation_id", correlation_id, NULL);
}

/* Emits the payment result of j->out; logs it unless how is NULL. */
static lev_result_t emit(lev_ctx_t *ctx, const lev_event_t *ev, const bill_service_t *svc,
                         const bill_job_t *j, const char *how)
{
    lev_error_t err = {0};
    avro_value_t val;
    const bill_outcome_t *out = &j->out;
    if (lev_ctx_new_value(ctx, out->succeeded ? BILL_T_SUCCEEDED : BILL_T_FAILED, &val) != 0 ||
        bill_payment_fill(&val, &j->c, out) != 0 ||
        lev_ctx_emit(ctx, svc->payments_topic, j->c.order_id, &val, &err) != 0)
        return fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit the payment result", &err);
    if (how)
        log_outcome(out, j->c.order_id, how, ev->id, ev->correlation_id);
    return LEV_RESULT_OK;
}

/* What a charge recorded counts and logs once the ledger has it. */
typedef struct bill_commit_s {
    const bill_service_t *svc;
    bill_outcome_t out;
    char order_id[160], event_id[LEV_EVENT_ID_MAX + 1], correlation_id[128];
} bill_commit_t;

static void on_commit(int committed, void *arg)
{
    bill_commit_t *c = arg;
    if (committed) { /* recorded here: counted once */
        const char *outcome[1] = {c->out.succeeded ? "succeeded" : "declined"};
        lev_counter_inc(c->svc->charges, outcome);
        log_outcome(&c->out, c->order_id, "charged", c->event_id, c->correlation_id);
    }
    free(c);
}

/* Records j->out where no outcome is recorded yet, then emits it; the
 * result goes out only once the ledger has it (if another delivery
 * recorded first, this one is handled again and emits that outcome). */
static lev_result_t record_and_emit(lev_ctx_t *ctx, const lev_event_t *ev,
                                    const bill_service_t *svc, bill_job_t *j)
{
    lev_error_t err = {0};
    char *record = NULL;
    bill_commit_t *c = NULL;
    lev_result_t res;
    j->out.at = lev_now_ms();
    if (lev_ctx_store(ctx)) {
        if (!(record = bill_record_format(&j->out)) || !(c = calloc(1, sizeof *c))) {
            res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
            goto done;
        }
        c->svc = svc;
        c->out = j->out;
        snprintf(c->order_id, sizeof c->order_id, "%s", j->c.order_id);
        snprintf(c->event_id, sizeof c->event_id, "%s", ev->id);
        snprintf(c->correlation_id, sizeof c->correlation_id, "%s",
                 ev->correlation_id ? ev->correlation_id : "");
        if (lev_ctx_state_cas(ctx, j->key, NULL, record, 0, &err) != 0 ||
            lev_ctx_on_commit(ctx, on_commit, c, &err) != 0) {
            res = fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot write the ledger", &err);
            goto done;
        }
        c = NULL; /* on_commit's now */
        res = emit(ctx, ev, svc, j, NULL);
    } else { /* no ledger: counted as it goes */
        const char *outcome[1] = {j->out.succeeded ? "succeeded" : "declined"};
        lev_counter_inc(svc->charges, outcome);
        res = emit(ctx, ev, svc, j, "charged");
    }
done:
    free(c);
    free(record);
    return res;
}

/* ---- the gateway, asynchronously ---- */

typedef struct bill_call_s {
    const bill_service_t *svc;
    lev_deferral_t *d;
    svc_http_response_t resp;
} bill_call_t;

/* The worker's thread, once the gateway answered (or did not). */
static lev_result_t on_answer(lev_ctx_t *ctx, const lev_event_t *ev, void *arg)
{
    bill_call_t *call = arg;
    const bill_service_t *svc = call->svc;
    lev_result_t res = LEV_RESULT_TRANSIENT;
    bill_job_t j;
    char why[512] = "";
    if (!ctx) /* the worker stopped first: it is handled again later */
        goto done;
    if ((res = job_of(ctx, ev, svc, &j)) != LEV_RESULT_OK)
        goto done;
    bill_verdict_t v = bill_gateway_verdict(call->resp.status, call->resp.body, call->resp.body_len,
                                            &j.out, why, sizeof why);
    if (call->resp.status == 0) {
        size_t used = strlen(why);
        snprintf(why + used, sizeof why - used, ": %s", call->resp.error);
    }
    switch (v) {
    case BILL_CHARGED:
    case BILL_DECLINED:
        lev_breaker_success(svc->breaker);
        snprintf(j.out.gateway, sizeof j.out.gateway, "%s", svc->gateway_host);
        res = record_and_emit(ctx, ev, svc, &j);
        break;
    case BILL_PERMANENT: /* it answered, and refused this one */
        lev_breaker_success(svc->breaker);
        res = fail(ctx, ev, LEV_RESULT_PERMANENT, "the gateway refused the charge", why);
        break;
    default:
        lev_breaker_failure(svc->breaker, why);
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "the gateway did not answer the charge", why);
        break;
    }
done:
    svc_http_response_clear(&call->resp);
    free(call);
    return res;
}

/* The HTTP client's thread: hands the answer to the worker. */
static void on_done(svc_http_response_t *resp, void *arg)
{
    bill_call_t *call = arg;
    svc_http_response_move(&call->resp, resp);
    lev_deferral_resume(call->d, on_answer, call);
}

/* Queues the charge request; the record waits for on_answer. */
static lev_result_t ask_gateway(lev_ctx_t *ctx, const lev_event_t *ev, const bill_service_t *svc,
                                const bill_job_t *j)
{
    char idem[96], auth[1024];
    const char *headers[3] = {idem, NULL, NULL};
    char *body = bill_gateway_request(&j->c, j->out.payment_id);
    bill_call_t *call = calloc(1, sizeof *call);
    if (!body || !call) {
        free(body);
        free(call);
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
    }
    call->svc = svc;
    if (!(call->d = lev_ctx_defer(ctx))) {
        free(body);
        free(call);
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot defer the record", NULL);
    }
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", j->out.payment_id);
    if (svc->gateway_auth) {
        snprintf(auth, sizeof auth, "Authorization: %s", svc->gateway_auth);
        headers[1] = auth;
    }
    int rc = svc_http_post_async(svc->http, svc->gateway_url, body, strlen(body), headers, on_done,
                                 call);
    /* the authorization value must not linger on the stack */
    memset(auth, 0, sizeof auth);
    free(body);
    if (rc != LEV_OK) { /* not queued: the answer is that there is none */
        snprintf(call->resp.error, sizeof call->resp.error, "cannot queue the request: %s",
                 lev_err_name(rc));
        lev_deferral_resume(call->d, on_answer, call);
    }
    return LEV_RESULT_DEFERRED;
}

lev_result_t bill_handle_accepted(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    const bill_service_t *svc = opaque;
    lev_store_t *store = lev_ctx_store(ctx);
    lev_error_t err = {0};
    lev_result_t res;
    bill_job_t j;
    char *recorded = NULL;

    if ((res = job_of(ctx, ev, svc, &j)) != LEV_RESULT_OK)
        return res;
    /* charged before? then that outcome stands */
    if (store) {
        if (lev_ctx_state_get(ctx, j.key, &recorded, &err) != 0)
            return fail_err(ctx, ev, LEV_RESULT_TRANSIENT, "cannot read the ledger", &err);
        if (recorded) {
            if (bill_record_parse(recorded, &j.out, &err) != 0)
                res = fail_err(ctx, ev, LEV_RESULT_PERMANENT, "the ledger record is corrupt", &err);
            else
                res = emit(ctx, ev, svc, &j, "recorded before");
            free(recorded);
            return res;
        }
    }
    /* decide: the gateway, or the built-in rules */
    if (svc->gateway_url)
        return ask_gateway(ctx, ev, svc, &j);
    bill_decide(&j.c, svc->amount_limit_minor, j.pid, &j.out);
    snprintf(j.out.gateway, sizeof j.out.gateway, "ledger");
    return record_and_emit(ctx, ev, svc, &j);
}
