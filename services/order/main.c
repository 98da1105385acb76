/*
 * order-service: validates placed orders and settles them by their payment
 * result. Wiring only: configuration, logging, the worker and its handlers.
 */
#include "order_handlers.h"
#include "order_rules.h"
#include "svc.h"

#include <stdio.h>
#include <string.h>

#define SERVICE "order-service"
#define DEFAULT_STATE_TTL_MS (30LL * 86400000)

/* Writes --help: what the service does, its variables, the shared ones. */
static void usage(FILE *out)
{
    fprintf(out, "Usage: " SERVICE " [--help]\n"
                 "\n"
                 "Validates placed orders and settles them by their payment result.\n"
                 "Consumes " ORD_T_PLACED " from ORDERS_TOPIC and " ORD_T_PAYMENT_SUCCEEDED "\n"
                 "and " ORD_T_PAYMENT_FAILED " from PAYMENTS_TOPIC; emits OrderAccepted,\n"
                 "OrderRejected, OrderConfirmed and OrderCancelled to ORDERS_TOPIC, keyed by\n"
                 "the order id. Each order's state is kept in Redis under\n"
                 "<service>:order:<order id>; Redis is required.\n"
                 "\n"
                 "Service environment:\n");
    svc_help_var(out, "ORDERS_TOPIC", "topic of the order events", "orders");
    svc_help_var(out, "PAYMENTS_TOPIC", "topic of the payment results", "payments");
    svc_help_var(out, "ORDER_STATE_TTL",
                 "how long an order's state is kept after its last change; 0 keeps it forever",
                 "30d");
    fprintf(out, "\nShared libevents settings. ");
    lev_config_print_help(out);
    fprintf(out, "\nExit status: 0 after a clean stop (SIGTERM, SIGINT), 1 on a runtime failure,\n"
                 "2 on bad configuration or usage.\n");
}

/* Reads the service's own variables into svc. */
static int settings_from_env(void *opaque, const lev_config_t *conf, lev_error_t *err)
{
    ord_service_t *svc = opaque;
    svc->orders_topic = svc_env_str("ORDERS_TOPIC", "orders");
    svc->payments_topic = svc_env_str("PAYMENTS_TOPIC", "payments");
    int rc = svc_env_duration("ORDER_STATE_TTL", DEFAULT_STATE_TTL_MS, &svc->state_ttl_ms, err);
    if (rc)
        return rc;
    if (!conf->redis_url || !*conf->redis_url)
        return svc_error(err, LEV_ERR_CONFIG, "REDIS_URL", SERVICE " keeps order state in Redis");
    return LEV_OK;
}

/* Registers the handlers and the topics. */
static int wire(lev_worker_t *w, void *opaque, lev_error_t *err)
{
    ord_service_t *svc = opaque;
    static const char *const labels[] = {"state", NULL};
    svc->orders = lev_metrics_counter_new(
        w, "shop_orders_total", "Orders that reached a state, counted when it is recorded", labels,
        err);
    if (!svc->orders)
        return err->code ? err->code : LEV_ERR_NOMEM;
    /* every state is there from the start, so a rate of zero is data */
    for (int i = 0; i < 4; i++) {
        const char *state[1] = {
            (const char *[]){"accepted", "rejected", "confirmed", "cancelled"}[i]};
        lev_counter_add(svc->orders, state, 0);
    }
    int rc = lev_worker_on(w, ORD_T_PLACED, ord_handle_placed, svc, err);
    if (!rc)
        rc = lev_worker_on(w, ORD_T_PAYMENT_SUCCEEDED, ord_handle_payment, svc, err);
    if (!rc)
        rc = lev_worker_on(w, ORD_T_PAYMENT_FAILED, ord_handle_payment, svc, err);
    /* every order event is keyed by its order id: the batch's order
     * records are read in one round trip */
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:order:", lev_worker_service(w));
    const char *const types[] = {ORD_T_PLACED, ORD_T_PAYMENT_SUCCEEDED, ORD_T_PAYMENT_FAILED};
    for (size_t i = 0; i < 3 && !rc; i++)
        rc = lev_worker_state_prefetch(w, types[i], prefix, err);
    if (!rc)
        rc = lev_worker_subscribe(w, svc->orders_topic, err);
    if (!rc)
        rc = lev_worker_subscribe(w, svc->payments_topic, err);
    const char *const emits[] = {ORD_T_ACCEPTED, ORD_T_REJECTED, ORD_T_CONFIRMED, ORD_T_CANCELLED};
    for (size_t i = 0; i < 4 && !rc; i++)
        rc = lev_worker_declare_emits(w, svc->orders_topic, emits[i], err);
    if (!rc)
        lev_log(LEV_LOG_INFO, "settings", "orders_topic", svc->orders_topic, "payments_topic",
                svc->payments_topic, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    static const svc_def_t def = {SERVICE, usage, settings_from_env, wire, NULL};
    ord_service_t svc = {0};
    return svc_main(argc, argv, &def, &svc);
}
