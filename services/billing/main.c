/*
 * billing-service: charges accepted orders once, through a payment gateway
 * or a Redis ledger. Wiring only: configuration, logging, the worker and
 * its handler.
 */
#include "billing_handlers.h"
#include "billing_rules.h"
#include "svc.h"

#include <stdio.h>
#include <string.h>

#define SERVICE "billing-service"
#define DEFAULT_LIMIT_MINOR 1000000
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_MAX_IN_FLIGHT 64
#define DEFAULT_TRUSTED_SOURCES "/order-service"

/* Writes --help: what the service does, its variables, the shared ones. */
static void usage(FILE *out)
{
    fprintf(out, "Usage: " SERVICE " [--help]\n"
                 "\n"
                 "Charges accepted orders, once per order. Consumes " BILL_T_ACCEPTED "\n"
                 "from ORDERS_TOPIC; emits " BILL_T_SUCCEEDED " or " BILL_T_FAILED "\n"
                 "to PAYMENTS_TOPIC, keyed by the order id.\n"
                 "\n"
                 "Only OrderAccepted events whose ce_source is one of BILLING_TRUSTED_SOURCES\n"
                 "are charged; any other is dead-lettered with the reason, so writing to the\n"
                 "orders topic is not enough to cause a charge.\n"
                 "\n"
                 "With BILLING_GATEWAY_URL, POSTs the charge as JSON to the gateway with an\n"
                 "Idempotency-Key header (the payment id, derived from the order id): 2xx is a\n"
                 "charge, 402 or a 2xx body {\"status\":\"declined\"} a decline, 5xx, 408, 429,\n"
                 "timeouts and connection errors are retried and count against the gateway's\n"
                 "circuit breaker, which pauses charging while the gateway is down; other\n"
                 "statuses dead-letter the event. Requests run concurrently, at most\n"
                 "BILLING_GATEWAY_MAX_IN_FLIGHT at once. Without it, the built-in rules decide: a "
                 "payment_token starting with\n"
                 "\"" BILL_DECLINE_TOKEN_PREFIX "\" is declined (CARD_DECLINED), an amount above\n"
                 "BILLING_AMOUNT_LIMIT_MINOR is declined (AMOUNT_LIMIT). Either way the outcome\n"
                 "is recorded once in Redis under <service>:charge:<order id> and a redelivered\n"
                 "order gets the recorded outcome, never a second charge.\n"
                 "\n"
                 "Service environment:\n");
    svc_help_var(out, "ORDERS_TOPIC", "topic of the order events", "orders");
    svc_help_var(out, "PAYMENTS_TOPIC", "topic the payment results go to", "payments");
    svc_help_var(out, "BILLING_GATEWAY_URL",
                 "http(s) URL of the payment gateway; unset: built-in rules, Redis ledger",
                 "unset");
    svc_help_var(out, "BILLING_GATEWAY_AUTH",
                 "value of the Authorization header sent to the gateway (never logged)", "unset");
    svc_help_var(out, "BILLING_GATEWAY_TIMEOUT_MS", "whole gateway request timeout", "10s");
    svc_help_var(out, "BILLING_GATEWAY_CONNECT_TIMEOUT_MS", "gateway connect timeout", "3s");
    svc_help_var(out, "BILLING_GATEWAY_MAX_IN_FLIGHT", "most gateway requests at once", "64");
    svc_help_breaker(out, "BILLING_GATEWAY", "gateway");
    svc_help_var(out, "BILLING_TRUSTED_SOURCES",
                 "comma-separated ce_source values allowed to ask for a charge",
                 DEFAULT_TRUSTED_SOURCES);
    svc_help_var(out, "BILLING_AMOUNT_LIMIT_MINOR",
                 "largest amount the built-in rules charge, in minor units", "1000000");
    fprintf(out, "\nShared libevents settings. ");
    lev_config_print_help(out);
    fprintf(out, "\nExit status: 0 after a clean stop (SIGTERM, SIGINT), 1 on a runtime failure,\n"
                 "2 on bad configuration or usage.\n");
}

/* Reads the service's own variables into svc. */
static int settings_from_env(void *opaque, const lev_config_t *conf, lev_error_t *err)
{
    bill_service_t *svc = opaque;
    int64_t timeout_ms, connect_ms, max_in_flight;
    int rc;
    svc->orders_topic = svc_env_str("ORDERS_TOPIC", "orders");
    svc->payments_topic = svc_env_str("PAYMENTS_TOPIC", "payments");
    svc->gateway_url = svc_env_str("BILLING_GATEWAY_URL", NULL);
    svc->gateway_auth = svc_env_str("BILLING_GATEWAY_AUTH", NULL);
    svc->trusted_sources = svc_env_str("BILLING_TRUSTED_SOURCES", DEFAULT_TRUSTED_SOURCES);
    if ((rc = svc_env_int64("BILLING_AMOUNT_LIMIT_MINOR", DEFAULT_LIMIT_MINOR, 0, INT64_MAX,
                            &svc->amount_limit_minor, err)) != 0 ||
        (rc = svc_env_duration("BILLING_GATEWAY_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, &timeout_ms,
                               err)) != 0 ||
        (rc = svc_env_duration("BILLING_GATEWAY_CONNECT_TIMEOUT_MS", DEFAULT_CONNECT_TIMEOUT_MS,
                               &connect_ms, err)) != 0 ||
        (rc = svc_env_int64("BILLING_GATEWAY_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 1, 10000,
                            &max_in_flight, err)) != 0 ||
        (rc = svc_env_breaker("BILLING_GATEWAY", &svc->breaker_conf, err)) != 0)
        return rc;
    if (!svc->gateway_url) {
        if (!conf->redis_url || !*conf->redis_url)
            return svc_error(err, LEV_ERR_CONFIG, "REDIS_URL",
                             "without BILLING_GATEWAY_URL the ledger lives in Redis");
        return LEV_OK;
    }
    if (svc_url_host(svc->gateway_url, svc->gateway_host, sizeof svc->gateway_host) != 0)
        return svc_error(err, LEV_ERR_CONFIG, "BILLING_GATEWAY_URL", "not an http(s) URL");
    if (svc_http_global_init() != 0 ||
        !(svc->http = svc_http_new(connect_ms, timeout_ms, (int)max_in_flight)))
        return svc_error(err, LEV_ERR_NOMEM, NULL, "cannot set up the HTTP client");
    return LEV_OK;
}

/* Registers the handler and the topic. */
static int wire(lev_worker_t *w, void *opaque, lev_error_t *err)
{
    bill_service_t *svc = opaque;
    static const char *const labels[] = {"outcome", NULL};
    svc->charges = lev_metrics_counter_new(
        w, "shop_charges_total",
        "Charges by outcome (succeeded, declined), counted when the outcome is recorded", labels,
        err);
    if (!svc->charges)
        return err->code ? err->code : LEV_ERR_NOMEM;
    lev_counter_add(svc->charges, (const char *[]){"succeeded"}, 0);
    lev_counter_add(svc->charges, (const char *[]){"declined"}, 0);
    int rc = lev_worker_on(w, BILL_T_ACCEPTED, bill_handle_accepted, svc, err);
    /* OrderAccepted is keyed by its order id: the batch's ledger records
     * are read in one round trip */
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:charge:", lev_worker_service(w));
    if (!rc)
        rc = lev_worker_state_prefetch(w, BILL_T_ACCEPTED, prefix, err);
    if (!rc && svc->gateway_url) { /* a gateway that is down pauses the charges */
        if (!(svc->breaker = lev_worker_breaker(w, "gateway", &svc->breaker_conf, err)))
            rc = err->code ? err->code : LEV_ERR_NOMEM;
        if (!rc)
            rc = lev_worker_needs(w, BILL_T_ACCEPTED, svc->breaker, err);
    }
    if (!rc)
        rc = lev_worker_subscribe(w, svc->orders_topic, err);
    if (!rc)
        rc = lev_worker_declare_emits(w, svc->payments_topic, BILL_T_SUCCEEDED, err);
    if (!rc)
        rc = lev_worker_declare_emits(w, svc->payments_topic, BILL_T_FAILED, err);
    if (!rc)
        lev_log(LEV_LOG_INFO, "settings", "orders_topic", svc->orders_topic, "payments_topic",
                svc->payments_topic, "charging", svc->gateway_url ? svc->gateway_host : "ledger",
                "trusted_sources", svc->trusted_sources, NULL);
    return rc;
}

static void cleanup(void *opaque)
{
    svc_http_destroy(((bill_service_t *)opaque)->http);
}

int main(int argc, char **argv)
{
    static const svc_def_t def = {SERVICE, usage, settings_from_env, wire, cleanup};
    bill_service_t svc = {0};
    return svc_main(argc, argv, &def, &svc);
}
