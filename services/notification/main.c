/*
 * notification-service: tells the customer how an order ended, through a
 * signed webhook or a JSON-lines sink file. Wiring only: configuration,
 * logging, the worker and its handler.
 */
#include "notification_handlers.h"
#include "notification_rules.h"
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE "notification-service"
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_MAX_IN_FLIGHT 64

/* Writes --help: what the service does, its variables, the shared ones. */
static void usage(FILE *out)
{
    fprintf(out, "Usage: " SERVICE " [--help]\n"
                 "\n"
                 "Notifies the customer of every order's end. Consumes " NTF_T_REJECTED
                 ",\n" NTF_T_CONFIRMED " and " NTF_T_CANCELLED " from ORDERS_TOPIC;\n"
                 "emits " NTF_T_SENT " to NOTIFICATIONS_TOPIC, keyed by the order id.\n"
                 "\n"
                 "With NOTIFY_WEBHOOK_URL, POSTs the notification (JSON) with the headers\n"
                 "X-Event-Id (the notification id, derived from the event's id: the same on\n"
                 "every redelivery, for the receiver's dedup) and X-Signature:\n"
                 "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<X-Event-Id>.<body>\" keyed\n"
                 "with NOTIFY_WEBHOOK_SECRET> (a second v1 with NOTIFY_WEBHOOK_SECRET_PREVIOUS\n"
                 "while a secret is rotated). Requests run concurrently, at most\n"
                 "NOTIFY_WEBHOOK_MAX_IN_FLIGHT at once; a slow webhook delays only the\n"
                 "notifications waiting for it. 2xx is delivered; 5xx, 408, 429, timeouts and\n"
                 "connection errors are retried and count against the webhook's circuit\n"
                 "breaker, which pauses delivery while the webhook is down; other statuses\n"
                 "dead-letter the event. Without a webhook, appends one JSON line per\n"
                 "notification to NOTIFY_SINK_FILE.\n"
                 "\n"
                 "Service environment:\n");
    svc_help_var(out, "ORDERS_TOPIC", "topic of the order events", "orders");
    svc_help_var(out, "NOTIFICATIONS_TOPIC", "topic NotificationSent goes to", "notifications");
    svc_help_var(out, "NOTIFY_WEBHOOK_URL", "http(s) URL notifications are POSTed to",
                 "unset (sink file)");
    svc_help_var(out, "NOTIFY_WEBHOOK_SECRET",
                 "HMAC-SHA256 key of X-Signature; required with a webhook (never logged)", "unset");
    svc_help_var(out, "NOTIFY_WEBHOOK_SECRET_FILE",
                 "file holding the secret instead (Docker/Kubernetes secrets)", "unset");
    svc_help_var(out, "NOTIFY_WEBHOOK_SECRET_PREVIOUS",
                 "while rotating: the old secret, also signed with (or _FILE)", "unset");
    svc_help_var(out, "NOTIFY_WEBHOOK_MAX_IN_FLIGHT", "most webhook requests at once", "64");
    svc_help_var(out, "NOTIFY_WEBHOOK_TIMEOUT_MS", "whole webhook request timeout", "10s");
    svc_help_var(out, "NOTIFY_WEBHOOK_CONNECT_TIMEOUT_MS", "webhook connect timeout", "3s");
    svc_help_var(out, "NOTIFY_SINK_FILE", "file notifications are appended to without a webhook",
                 "notifications.jsonl");
    svc_help_breaker(out, "NOTIFY_WEBHOOK", "webhook");
    fprintf(out, "\nShared libevents settings. ");
    lev_config_print_help(out);
    fprintf(out, "\nExit status: 0 after a clean stop (SIGTERM, SIGINT), 1 on a runtime failure,\n"
                 "2 on bad configuration or usage.\n");
}

/* Reads the service's own variables into svc. */
static int settings_from_env(void *opaque, const lev_config_t *conf, lev_error_t *err)
{
    ntf_service_t *svc = opaque;
    (void)conf;
    int64_t timeout_ms, connect_ms, max_in_flight;
    int rc;
    svc->orders_topic = svc_env_str("ORDERS_TOPIC", "orders");
    svc->notifications_topic = svc_env_str("NOTIFICATIONS_TOPIC", "notifications");
    svc->webhook_url = svc_env_str("NOTIFY_WEBHOOK_URL", NULL);
    svc->sink_path = svc_env_str("NOTIFY_SINK_FILE", "notifications.jsonl");
    if ((rc = svc_env_duration("NOTIFY_WEBHOOK_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, &timeout_ms,
                               err)) != 0 ||
        (rc = svc_env_duration("NOTIFY_WEBHOOK_CONNECT_TIMEOUT_MS", DEFAULT_CONNECT_TIMEOUT_MS,
                               &connect_ms, err)) != 0 ||
        (rc = svc_env_int64("NOTIFY_WEBHOOK_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 1, 10000,
                            &max_in_flight, err)) != 0 ||
        (rc = svc_env_breaker("NOTIFY_WEBHOOK", &svc->breaker_conf, err)) != 0)
        return rc;
    if (!svc->webhook_url)
        return LEV_OK;
    if (svc_url_host(svc->webhook_url, svc->webhook_host, sizeof svc->webhook_host) != 0)
        return svc_error(err, LEV_ERR_CONFIG, "NOTIFY_WEBHOOK_URL", "not an http(s) URL");
    if ((rc = svc_env_secret("NOTIFY_WEBHOOK_SECRET", &svc->secrets[0], err)) != 0)
        return rc;
    if (!svc->secrets[0])
        return svc_error(err, LEV_ERR_CONFIG, "NOTIFY_WEBHOOK_SECRET",
                         "a webhook needs a secret to sign notifications with (or "
                         "NOTIFY_WEBHOOK_SECRET_FILE)");
    svc->nsecrets = 1;
    if ((rc = svc_env_secret("NOTIFY_WEBHOOK_SECRET_PREVIOUS", &svc->secrets[1], err)) != 0)
        return rc;
    if (svc->secrets[1])
        svc->nsecrets = 2;
    if (svc_http_global_init() != 0 ||
        !(svc->http = svc_http_new(connect_ms, timeout_ms, (int)max_in_flight)))
        return svc_error(err, LEV_ERR_NOMEM, NULL, "cannot set up the HTTP client");
    return LEV_OK;
}

/* Registers the handlers and the topic. */
static int wire(lev_worker_t *w, void *opaque, lev_error_t *err)
{
    ntf_service_t *svc = opaque;
    static const char *const labels[] = {"channel", "outcome", NULL};
    svc->notifications = lev_metrics_counter_new(
        w, "shop_notifications_total",
        "Notification deliveries by channel (webhook, sink) and outcome (delivered, failed: "
        "retried, refused: by the receiver, for good)",
        labels, err);
    if (!svc->notifications)
        return err->code ? err->code : LEV_ERR_NOMEM;
    const char *channel = svc->webhook_url ? "webhook" : "sink";
    for (int i = 0; i < (svc->webhook_url ? 3 : 2); i++) {
        const char *v[2] = {channel, (const char *[]){"delivered", "failed", "refused"}[i]};
        lev_counter_add(svc->notifications, v, 0);
    }
    int rc = lev_worker_on(w, NTF_T_REJECTED, ntf_handle_terminal, svc, err);
    if (!rc)
        rc = lev_worker_on(w, NTF_T_CONFIRMED, ntf_handle_terminal, svc, err);
    if (!rc)
        rc = lev_worker_on(w, NTF_T_CANCELLED, ntf_handle_terminal, svc, err);
    if (!rc && svc->webhook_url) { /* a webhook that is down pauses its records */
        if (!(svc->breaker = lev_worker_breaker(w, "webhook", &svc->breaker_conf, err)))
            rc = err->code ? err->code : LEV_ERR_NOMEM;
        for (int i = 0; !rc && i < 3; i++)
            rc = lev_worker_needs(
                w, (const char *[]){NTF_T_REJECTED, NTF_T_CONFIRMED, NTF_T_CANCELLED}[i],
                svc->breaker, err);
    }
    if (!rc)
        rc = lev_worker_subscribe(w, svc->orders_topic, err);
    if (!rc)
        rc = lev_worker_declare_emits(w, svc->notifications_topic, NTF_T_SENT, err);
    if (!rc)
        lev_log(LEV_LOG_INFO, "settings", "orders_topic", svc->orders_topic, "notifications_topic",
                svc->notifications_topic, "delivery",
                svc->webhook_url ? svc->webhook_host : svc->sink_path, NULL);
    return rc;
}

static void cleanup(void *opaque)
{
    ntf_service_t *svc = opaque;
    svc_http_destroy(svc->http);
    for (size_t i = 0; i < 2; i++) {
        if (svc->secrets[i]) {
            memset(svc->secrets[i], 0, strlen(svc->secrets[i]));
            free(svc->secrets[i]);
        }
    }
}

int main(int argc, char **argv)
{
    static const svc_def_t def = {SERVICE, usage, settings_from_env, wire, cleanup};
    ntf_service_t svc = {0};
    return svc_main(argc, argv, &def, &svc);
}
