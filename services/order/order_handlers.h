/*
 * order-service handlers: glue between the worker runtime, the Redis state
 * and the rules of order_rules.h.
 */
#ifndef ORDER_HANDLERS_H
#define ORDER_HANDLERS_H

#include <libevents.h>

/* The service's own settings (environment, see main.c). */
typedef struct ord_service_s {
    const char *orders_topic;   /* ORDERS_TOPIC */
    const char *payments_topic; /* PAYMENTS_TOPIC */
    int64_t state_ttl_ms;       /* ORDER_STATE_TTL, 0 = records never expire */
    lev_counter_t *orders;      /* shop_orders_total{state}: transitions recorded */
} ord_service_t;

/* shop.order.OrderPlaced: validate, record the decision once, emit
 * OrderAccepted or OrderRejected. opaque is the ord_service_t. */
lev_result_t ord_handle_placed(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque);

/* shop.billing.PaymentSucceeded / PaymentFailed: move an accepted order to
 * confirmed or cancelled once, emit OrderConfirmed or OrderCancelled. A
 * result for an order without a record is dead-lettered (permanent). */
lev_result_t ord_handle_payment(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque);

#endif
