/*
 * notification-service handler.
 *
 * Delivery is at least once: if the process dies after the webhook
 * answered but before the input is finished, the input is handled again
 * and the webhook receives the same notification (same X-Event-Id, same
 * body, same signature) a second time. Receivers deduplicate by
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

/* POSTs body to the webhook. Returns the result for the handler, with why
 * filled when it is not LEV_RESULT_OK. */
static lev_result_t post_webhook(const ntf_service_t *svc, const char *nid, const char *body,
                                 char *why, size_t why_size)
{
    char sig[NTF_SIGNATURE_LEN], h_id[96], h_sig[96];
    const char *headers[] = {h_id, h_sig, NULL};
    svc_http_response_t resp = {0};
    lev_result_t res = LEV_RESULT_TRANSIENT;
    if (ntf_signature(svc->secret, strlen(svc->secret), body, strlen(body), sig) != 0) {
        snprintf(why, why_size, "cannot sign the notification");
        return LEV_RESULT_TRANSIENT;
    }
    snprintf(h_id, sizeof h_id, "X-Event-Id: %s", nid);
    snprintf(h_sig, sizeof h_sig, "X-Signature: %s", sig);
    if (svc_http_post(svc->http, svc->webhook_url, body, strlen(body), headers, &resp) != 0) {
        snprintf(why, why_size, "cannot make the webhook request");
        goto done;
    }
    switch (svc_http_classify(resp.status)) {
    case SVC_HTTP_OK:
        res = LEV_RESULT_OK;
        break;
    case SVC_HTTP_TRANSIENT:
        if (resp.status)
            snprintf(why, why_size, "webhook answered HTTP %ld", resp.status);
        else
            snprintf(why, why_size, "no answer from the webhook: %s", resp.error);
        res = LEV_RESULT_TRANSIENT;
        break;
    default:
        snprintf(why, why_size, "webhook refused the notification (HTTP %ld)", resp.status);
        res = LEV_RESULT_PERMANENT;
        break;
    }
done:
    svc_http_response_clear(&resp);
    return res;
}

lev_result_t ntf_handle_terminal(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    const ntf_service_t *svc = opaque;
    lev_result_t res = LEV_RESULT_TRANSIENT;
    lev_error_t err = {0};
    ntf_kind_t kind;
    ntf_trigger_t t = {0};
    char nid[LEV_UUID_STR_LEN], why[512] = "", buf[800];
    char *body = NULL;
    const char *channel = svc->webhook_url ? "webhook" : "sink";
    avro_value_t v = ev->value, val;

    if (ntf_kind_from_type(ev->type, &kind) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "not a notifying event type", ev->type);
    if (ntf_trigger_from_value(kind, &v, &t, &err) != 0)
        return fail(ctx, ev, LEV_RESULT_PERMANENT, "the event cannot be read",
                    lev_error_format(&err, buf, sizeof buf));
    if (ntf_notification_id(ev->id, nid) != 0) {
        res = fail(ctx, ev, LEV_RESULT_PERMANENT, "the event has no usable id", NULL);
        goto done;
    }
    if (!(body = ntf_render(&t, nid, ev->id, ev->type))) {
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot render the notification", NULL);
        goto done;
    }

    if (svc->webhook_url) {
        res = post_webhook(svc, nid, body, why, sizeof why);
        if (res != LEV_RESULT_OK) {
            res = fail(ctx, ev, res, "webhook delivery failed", why);
            goto done;
        }
    } else if (ntf_sink_append(svc->sink_path, body, strlen(body), &err) != 0) {
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot append to the sink file",
                   lev_error_format(&err, buf, sizeof buf));
        goto done;
    }

    if (lev_ctx_new_value(ctx, NTF_T_SENT, &val) != 0 ||
        ntf_sent_fill(&val, &t, nid, ev->id, ev->type, channel, lev_now_ms()) != 0 ||
        lev_ctx_emit(ctx, svc->notifications_topic, t.order_id, &val, &err) != 0) {
        res = fail(ctx, ev, LEV_RESULT_TRANSIENT, "cannot emit NotificationSent",
                   lev_error_format(&err, buf, sizeof buf));
        goto done;
    }
    lev_log(LEV_LOG_INFO, "notification sent", "order_id", t.order_id, "notification_id", nid,
            "kind", ntf_kind_name(kind), "channel", channel, "event_id", ev->id, "correlation_id",
            ev->correlation_id, NULL);
    res = LEV_RESULT_OK;
done:
    free(body);
    ntf_trigger_clear(&t);
    return res;
}
