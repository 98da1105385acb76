/* notification-service handler: glue between the worker, the webhook or
 * sink file and the rules of notification_rules.h. */
#ifndef NOTIFICATION_HANDLERS_H
#define NOTIFICATION_HANDLERS_H

#include "svc.h"

#include <libevents.h>

/* The service's own settings (environment, see main.c). */
typedef struct ntf_service_s {
    const char *orders_topic;        /* ORDERS_TOPIC */
    const char *notifications_topic; /* NOTIFICATIONS_TOPIC */
    const char *webhook_url;         /* NOTIFY_WEBHOOK_URL, NULL: append to sink_path */
    char *secrets[2];                /* NOTIFY_WEBHOOK_SECRET[_FILE], then
                                        NOTIFY_WEBHOOK_SECRET_PREVIOUS[_FILE] (never logged) */
    size_t nsecrets;
    char webhook_host[128];          /* the URL's host, for logs */
    const char *sink_path;           /* NOTIFY_SINK_FILE */
    svc_http_t *http;                /* client for the webhook, NULL without one */
    lev_breaker_conf_t breaker_conf; /* NOTIFY_WEBHOOK_BREAKER_* */
    lev_breaker_t *breaker;          /* the webhook's circuit breaker, NULL without one */
    lev_counter_t *notifications;    /* shop_notifications_total{channel,outcome} */
} ntf_service_t;

/* shop.order.OrderRejected / OrderConfirmed / OrderCancelled: deliver one
 * notification and emit NotificationSent. opaque is the ntf_service_t.
 * With a webhook the record is deferred while the request runs on the
 * HTTP client's thread; the outcome counts for svc->breaker. */
lev_result_t ntf_handle_terminal(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque);

#endif
