/*
 * notification-service handler.
 *
 * With a webhook, the handler renders and signs the notification, hands the
 * request to the HTTP client and defers the record; the worker goes on with
 * other records meanwhile. When the answer is in, the record is resumed on
 * the worker's thread: the webhook breaker learns the outcome, and
 * NotificationSent is emitted for a 2xx.
 *
 * Delivery is at least once: if the process dies after the webhook
 * answered but before the input is finished, the input is handled again
 * and the webhook receives the same notification (same X-Event-Id, same
 * body, a fresh signature) a second time. Receivers deduplicate by
 * X-Event-Id; sink readers by notification_id.
 */
#include "notification_handlers.h"

#include "notification_rules.h"

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
            "type", ev->type, "error", detail, "correlation_id", ev->correlation_id, NULL);
    return res;
}

/* The notification an event asks for: its trigger, id and body. */
typedef struct ntf_note_s {
    ntf_kind_t kind;
    ntf_trigger_t t;
    char nid[LEV_UUID_STR_LEN];
    char *body;
} ntf_note_t;

static void note_clear(ntf_note_t *n)
{
    free(n->body);
    ntf_trigger_clear(&n->t);
    memset(n, 0, sizeof *n);
}

/* Reads the event into n; LEV_RESULT_OK, or the failure (logged and set). */
static lev_result_t note_of(lev_ctx_t *ctx, const lev_event_t *ev, ntf_note_t *n)
{
    lev_error_t err = {0};
    char buf[800];
    memset(n, 0, sizeof *n);
    if (ntf_kind_from_type(ev->type, &n->kind) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "not a notifying event type", ev->type);
    if (ntf_trigger_from_value(n->kind, &ev->value, &n->t, &err) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "the event cannot be read",
                    lev_error_format(&err, buf, sizeof buf));
    if (ntf_notification_id(ev->id, n->nid) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "the event has no usable id", NULL);
    if (!(n->body = ntf_render(&n->t, n->nid, ev->id, ev->type)))
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot render the notification", NULL);
    return LEV_RESULT_OK;
}

/* Emits NotificationSent for a delivered notification. */
static lev_result_t sent(lev_ctx_t *ctx, const lev_event_t *ev, const ntf_service_t *svc,
                         const ntf_note_t *n, const char *channel)
{
    lev_error_t err = {0};
    avro_value_t val;
    char buf[800];
    if (lev_ctx_new_value(ctx, NTF_T_SENT, &val) != 0 ||
        ntf_sent_fill(&val, &n->t, n->nid, ev->id, ev->type, channel, lev_now_ms()) != 0 ||
        lev_ctx_emit(ctx, svc->notifications_topic, n->t.order_id, &val, &err) != 0)
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit NotificationSent",
                    lev_error_format(&err, buf, sizeof buf));
    lev_log(LEV_LOG_INFO, "notification sent", "order_id", n->t.order_id, "notification_id", n->nid,
            "kind", ntf_kind_name(n->kind), "channel", channel, "event_id", ev->id,
            "correlation_id", ev->correlation_id, NULL);
    return LEV_RESULT_OK;
}

/* Counts a delivery attempt: delivered, failed (to be retried) or refused
 * (by the receiver, for good). */
static void count(const ntf_service_t *svc, const char *channel, const char *outcome)
{
    const char *labels[2] = {channel, outcome};
    lev_counter_inc(svc->notifications, labels);
}

/* ---- the webhook, asynchronously ---- */

typedef struct ntf_call_s {
    const ntf_service_t *svc;
    lev_deferral_t *d;
    svc_http_response_t resp;
} ntf_call_t;

/* The worker's thread, once the answer is in. */
static lev_result_t on_answer(lev_ctx_t *ctx, const lev_event_t *ev, void *arg)
{
    ntf_call_t *c = arg;
    const ntf_service_t *svc = c->svc;
    lev_result_t res;
    char why[512];
    if (!ctx) { /* the worker stopped first: it is handled again later */
        res = LEV_RESULT_TRANSIENT;
        goto done;
    }
    switch (svc_http_classify(c->resp.status)) {
    case SVC_HTTP_OK: {
        lev_breaker_success(svc->breaker);
        count(svc, "webhook", "delivered");
        ntf_note_t n;
        res = note_of(ctx, ev, &n);
        if (res == LEV_RESULT_OK)
            res = sent(ctx, ev, svc, &n, "webhook");
        note_clear(&n);
        break;
    }
    case SVC_HTTP_TRANSIENT:
        if (c->resp.status)
            snprintf(why, sizeof why, "webhook answered HTTP %ld", c->resp.status);
        else
            snprintf(why, sizeof why, "no answer from the webhook: %s", c->resp.error);
        lev_breaker_failure(svc->breaker, why);
        count(svc, "webhook", "failed");
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "webhook delivery failed", why);
        break;
    default: /* it answered, and refused this one */
        lev_breaker_success(svc->breaker);
        snprintf(why, sizeof why, "webhook refused the notification (HTTP %ld)", c->resp.status);
        count(svc, "webhook", "refused");
        res = fail(ctx, ev, LEV_RESULT_PERMANENT, "webhook delivery failed", why);
        break;
    }
done:
    svc_http_response_clear(&c->resp);
    free(c);
    return res;
}

/* The HTTP client's thread: hands the answer to the worker. */
static void on_done(svc_http_response_t *resp, void *arg)
{
    ntf_call_t *c = arg;
    svc_http_response_move(&c->resp, resp);
    lev_deferral_resume(c->d, on_answer, c);
}

/* Signs and queues the request; the record waits for on_answer. */
static lev_result_t post_webhook(lev_ctx_t *ctx, const lev_event_t *ev, const ntf_service_t *svc,
                                 const ntf_note_t *n)
{
    char sig[NTF_SIGNATURE_MAX], h_id[96], h_sig[NTF_SIGNATURE_MAX + 16];
    const char *headers[] = {h_id, h_sig, NULL};
    size_t len = strlen(n->body);
    if (ntf_sign((const char *const *)svc->secrets, svc->nsecrets, lev_now_ms() / 1000, n->nid,
                 n->body, len, sig, sizeof sig) != 0)
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot sign the notification", NULL);
    snprintf(h_id, sizeof h_id, "X-Event-Id: %s", n->nid);
    snprintf(h_sig, sizeof h_sig, "X-Signature: %s", sig);
    ntf_call_t *c = calloc(1, sizeof *c);
    if (!c)
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "out of memory", NULL);
    c->svc = svc;
    if (!(c->d = lev_ctx_defer(ctx))) {
        free(c);
        return fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot defer the record", NULL);
    }
    int rc = svc_http_post_async(svc->http, svc->webhook_url, n->body, len, headers, on_done, c);
    if (rc != LEV_OK) { /* not queued: the answer is that there is none */
        snprintf(c->resp.error, sizeof c->resp.error, "cannot queue the request: %s",
                 lev_err_name(rc));
        lev_deferral_resume(c->d, on_answer, c);
    }
    return LEV_RESULT_DEFERRED;
}

lev_result_t ntf_handle_terminal(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    const ntf_service_t *svc = opaque;
    ntf_note_t n;
    lev_result_t res = note_of(ctx, ev, &n);
    if (res != LEV_RESULT_OK)
        goto done;
    if (svc->webhook_url) {
        res = post_webhook(ctx, ev, svc, &n);
        goto done;
    }
    lev_error_t err = {0};
    char buf[800];
    if (ntf_sink_append(svc->sink_path, n.body, strlen(n.body), &err) != 0) {
        count(svc, "sink", "failed");
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot append to the sink file",
                   lev_error_format(&err, buf, sizeof buf));
        goto done;
    }
    count(svc, "sink", "delivered");
    res = sent(ctx, ev, svc, &n, "sink");
done:
    note_clear(&n);
    return res;
}
