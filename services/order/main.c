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

/* Logs a configuration error and returns SVC_EXIT_CONFIG. */
static int config_error(const lev_error_t *err)
{
    char buf[800];
    lev_log(LEV_LOG_ERROR, "bad configuration", "error", lev_error_format(err, buf, sizeof buf),
            NULL);
    return SVC_EXIT_CONFIG;
}

int main(int argc, char **argv)
{
    lev_config_t conf;
    lev_error_t err = {0};
    ord_service_t svc = {0};
    lev_worker_t *w = NULL;
    int rc = SVC_EXIT_RUNTIME;

    if (argc > 1) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        usage(help ? stdout : stderr);
        return help && argc == 2 ? SVC_EXIT_OK : SVC_EXIT_CONFIG;
    }
    lev_log_set_service(SERVICE);
    lev_log_set(lev_log_json, NULL, LEV_LOG_INFO);
    if (lev_config_from_env(&conf, SERVICE, &err) != 0)
        return config_error(&err);
    lev_log_set_service(conf.service);
    lev_log_set(lev_log_json, NULL, conf.log_level);

    svc.orders_topic = svc_env_str("ORDERS_TOPIC", "orders");
    svc.payments_topic = svc_env_str("PAYMENTS_TOPIC", "payments");
    if (svc_env_duration("ORDER_STATE_TTL", DEFAULT_STATE_TTL_MS, &svc.state_ttl_ms, &err) != 0) {
        rc = config_error(&err);
        goto done;
    }
    if (!conf.redis_url || !*conf.redis_url) {
        svc_error(&err, LEV_ERR_CONFIG, "REDIS_URL", SERVICE " keeps order state in Redis");
        rc = config_error(&err);
        goto done;
    }

    if (!(w = lev_worker_new(&conf, &err))) {
        char buf[800];
        lev_log(LEV_LOG_ERROR, "cannot start the worker", "error",
                lev_error_format(&err, buf, sizeof buf), NULL);
        rc = svc_exit_code_for(err.code);
        goto done;
    }
    if (lev_worker_on(w, ORD_T_PLACED, ord_handle_placed, &svc, &err) != 0 ||
        lev_worker_on(w, ORD_T_PAYMENT_SUCCEEDED, ord_handle_payment, &svc, &err) != 0 ||
        lev_worker_on(w, ORD_T_PAYMENT_FAILED, ord_handle_payment, &svc, &err) != 0 ||
        lev_worker_subscribe(w, svc.orders_topic, &err) != 0 ||
        lev_worker_subscribe(w, svc.payments_topic, &err) != 0) {
        rc = config_error(&err);
        goto done;
    }
    if (lev_worker_stop_on_signals(w) != 0) {
        lev_log(LEV_LOG_ERROR, "cannot install signal handlers", NULL);
        goto done;
    }
    lev_log(LEV_LOG_INFO, "starting", "group", conf.group_id, "bootstrap", conf.bootstrap,
            "orders_topic", svc.orders_topic, "payments_topic", svc.payments_topic, NULL);
    if (lev_worker_run(w) == 0) {
        lev_log(LEV_LOG_INFO, "stopped", NULL);
        rc = SVC_EXIT_OK;
    } else {
        lev_log(LEV_LOG_ERROR, "worker failed", NULL);
        rc = SVC_EXIT_RUNTIME;
    }
done:
    lev_worker_destroy(w);
    lev_config_clear(&conf);
    return rc;
}
