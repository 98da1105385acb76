/* billing-service handlers: glue between the worker, Redis, the gateway and
 * the rules of billing_rules.h. */
#ifndef BILLING_HANDLERS_H
#define BILLING_HANDLERS_H

#include "svc.h"

#include <libevents.h>

/* The service's own settings (environment, see main.c). */
typedef struct bill_service_s {
    const char *orders_topic;    /* ORDERS_TOPIC */
    const char *payments_topic;  /* PAYMENTS_TOPIC */
    const char *gateway_url;     /* BILLING_GATEWAY_URL, NULL: built-in rules and Redis ledger */
    const char *gateway_auth;    /* BILLING_GATEWAY_AUTH, Authorization header value, or NULL */
    char gateway_host[128];      /* the URL's host, for events and logs */
    int64_t amount_limit_minor;  /* BILLING_AMOUNT_LIMIT_MINOR (built-in rules only) */
    const char *trusted_sources; /* BILLING_TRUSTED_SOURCES: who may ask for a charge */
    svc_http_t *http;            /* client for the gateway, NULL without one */
    lev_breaker_conf_t breaker_conf; /* BILLING_GATEWAY_BREAKER_* */
    lev_breaker_t *breaker;          /* the gateway's circuit breaker, NULL without one */
    lev_counter_t *charges;          /* shop_charges_total{outcome}: outcomes recorded */
} bill_service_t;

/* shop.order.OrderAccepted: charge the order once and emit PaymentSucceeded
 * or PaymentFailed. opaque is the bill_service_t. An OrderAccepted whose
 * ce_source is not in svc->trusted_sources is never charged: it fails for
 * good (dead-lettered with the reason). With a gateway the record is
 * deferred while the request runs on the HTTP client's thread; the outcome
 * counts for svc->breaker. */
lev_result_t bill_handle_accepted(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque);

#endif
