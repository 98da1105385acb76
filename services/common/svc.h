/*
 * Helpers shared by the worker services (order, billing, notification):
 * environment variables, error reporting, ISO 4217 currencies and a small
 * HTTP client for webhooks and payment gateways.
 *
 * The sources of services/common/ are compiled into each service's rules
 * library; they are not a library of their own and are not installed.
 * Prefix: svc_.
 */
#ifndef SVC_H
#define SVC_H

#include <libevents.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* ======================================================================
 * Errors and environment
 * ====================================================================== */

/* Fills err (if not NULL) with code, where (may be NULL) and the formatted
 * text; returns code, so callers can `return svc_error(err, ...)`. */
int svc_error(lev_error_t *err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* strdup that returns NULL for NULL (and when memory runs out). */
char *svc_strdup(const char *s);

/* The value of an environment variable, or def when it is unset or empty. */
const char *svc_env_str(const char *name, const char *def);

/* A duration variable ("250ms", "10s", "2m", "30d", or bare milliseconds,
 * as lev_duration_parse); def when unset or empty. A malformed value fails
 * with LEV_ERR_CONFIG and err->where naming the variable. */
int svc_env_duration(const char *name, int64_t def, int64_t *out, lev_error_t *err);

/* An integer variable in [min, max]; def when unset or empty. */
int svc_env_int64(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                  lev_error_t *err);

/* A secret (malloc'd into *out, NULL when not configured): the variable
 * NAME when it is set and not empty, else the contents of the file that
 * NAME_FILE names (Docker and Kubernetes secrets), without its trailing
 * line end. A file that cannot be read, is empty, longer than 4096 bytes or
 * holds a NUL byte fails naming NAME_FILE. */
int svc_env_secret(const char *name, char **out, lev_error_t *err);

/* A circuit breaker's settings from <prefix>_BREAKER_FAILURES (5),
 * <prefix>_BREAKER_OPEN_MS (5s) and <prefix>_BREAKER_OPEN_MAX_MS (60s). */
int svc_env_breaker(const char *prefix, lev_breaker_conf_t *conf, lev_error_t *err);
void svc_help_breaker(FILE *out, const char *prefix, const char *what);

/* Writes one "  NAME  doc (default: def)" line for --help, in the format
 * lev_config_print_help uses. */
void svc_help_var(FILE *out, const char *name, const char *doc, const char *def);

/* Fields of decoded events; a missing field or one of another type fails
 * with LEV_ERR_DECODE and err->where naming the field. Strings are borrowed
 * from the value. A string holding a NUL byte fails (C would cut it short);
 * the _ident variants, for identifiers (ids, skus, currencies, tokens,
 * e-mail addresses), also fail on any control character (below 0x20, or
 * 0x7f), saying which and where. The _opt_ variants read a
 * ["null","string"] field: *out is NULL for the null branch. */
int svc_get_str(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err);
int svc_get_ident(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err);
int svc_get_long(const avro_value_t *rec, const char *name, int64_t *out, lev_error_t *err);
int svc_get_opt_str(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err);
int svc_get_opt_ident(const avro_value_t *rec, const char *name, const char **out,
                      lev_error_t *err);

/* Exit codes of every service. */
enum {
    SVC_EXIT_OK = 0,      /* clean stop (SIGTERM, SIGINT) or --help */
    SVC_EXIT_RUNTIME = 1, /* the worker failed while running or could not start */
    SVC_EXIT_CONFIG = 2,  /* bad configuration or command line */
};

/* The exit code for a failed lev_worker_new: configuration-like errors
 * (bad argument, configuration, schema, schema files missing or
 * unreadable) give SVC_EXIT_CONFIG, the rest (Redis unreachable, broker
 * client errors, out of memory) SVC_EXIT_RUNTIME. */
int svc_exit_code_for(int err);

/* ======================================================================
 * The common main: a service plugs its settings and handlers in.
 * ====================================================================== */

typedef struct svc_def_s {
    const char *name;         /* "order-service": default LEV_SERVICE and group */
    void (*usage)(FILE *out); /* --help text, the shared settings included */
    /* Reads the service's own variables into svc. LEV_ERR_CONFIG (err->where
     * naming the variable) exits 2; other errors exit 1. */
    int (*settings)(void *svc, const lev_config_t *conf, lev_error_t *err);
    /* Registers the handlers and subscribes the topics. */
    int (*wire)(lev_worker_t *w, void *svc, lev_error_t *err);
    /* Releases what settings() made (may be NULL). Called after the worker
     * stopped and before it is destroyed, so a client stopped here can
     * still resume the records it deferred. */
    void (*cleanup)(void *svc);
} svc_def_t;

/* Runs a service: --help, configuration from the environment, JSON logs on
 * stderr, the worker with its handlers, SIGTERM/SIGINT for a clean stop.
 * Returns the process exit code (SVC_EXIT_*). */
int svc_main(int argc, char **argv, const svc_def_t *def, void *svc);

/* ======================================================================
 * Currencies (ISO 4217)
 * ====================================================================== */

typedef struct svc_currency_s {
    char code[4];    /* alphabetic code, e.g. "EUR" */
    int minor_units; /* digits after the decimal point: 2 for EUR, 0 for JPY, 3 for KWD */
} svc_currency_t;

/* The currency with this alphabetic code, or NULL. Codes are matched
 * exactly (upper case). The built-in list holds the currencies of the ISO
 * 4217 list in use in 2025, without fund codes (BOV, CHE, CHW, CLF, COU,
 * MXV, USN, UYI, UYW), precious metals, SDR and test codes (X-codes other
 * than XAF, XCD, XCG, XOF, XPF). */
const svc_currency_t *svc_currency_find(const char *code);

/* The built-in list, sorted by code (for tests and help). */
size_t svc_currency_count(void);
const svc_currency_t *svc_currency_at(size_t i);

/* Formats an amount in minor units for people: "12.34 EUR", "-0.05 EUR",
 * "1500 JPY". An unknown currency is printed with 2 decimals. Returns out. */
const char *svc_amount_format(int64_t minor, const char *currency, char *out, size_t size);

/* ======================================================================
 * HTTP (libcurl): one asynchronous client per dependency. Requests run on
 * the client's own thread (libcurl's multi interface), at most
 * max_in_flight at once; the rest wait in order. Compiled only into the
 * services that call out.
 * ====================================================================== */

typedef struct svc_http_s svc_http_t;

/* The outcome of a request. */
typedef struct svc_http_response_s {
    long status;     /* HTTP status, 0 when no response arrived */
    char *body;      /* response body, NUL-terminated (malloc'd, may be NULL) */
    size_t body_len; /* at most SVC_HTTP_BODY_MAX; the rest is dropped */
    char error[256]; /* transport error text when status is 0 */
    int timed_out;   /* 1 when the transfer or connect timed out */
} svc_http_response_t;

#define SVC_HTTP_BODY_MAX 65536

/* How a response is to be treated. */
typedef enum svc_http_class_e {
    SVC_HTTP_OK = 0,        /* 2xx */
    SVC_HTTP_TRANSIENT = 1, /* no response (connect error, timeout), 5xx, 408, 429 */
    SVC_HTTP_PERMANENT = 2, /* any other status (4xx, unfollowed 3xx) */
} svc_http_class_t;

/* Calls curl_global_init once; call from main before any thread starts. */
int svc_http_global_init(void);

/* A client with connect and whole-request timeouts in milliseconds (a
 * request's time starts when it starts, not while it waits for a slot) and
 * its thread. Returns NULL when libcurl or the thread cannot be made. */
svc_http_t *svc_http_new(int64_t connect_timeout_ms, int64_t timeout_ms, int max_in_flight);

/* Stops the client: requests running or waiting complete with status 0
 * ("the service is stopping") before this returns. */
void svc_http_destroy(svc_http_t *http);

/* Called on the client's thread when a request is done; resp is valid
 * during the call only (take what you need, e.g. svc_http_response_move). */
typedef void (*svc_http_done_fn)(svc_http_response_t *resp, void *arg);

/* Queues a POST of `body` (len bytes, copied) to url with Content-Type
 * application/json and the extra headers ("Name: value", NULL-ended; may be
 * NULL; copied, and wiped when freed). Only http and https are allowed;
 * redirects are not followed. 0 when queued: done(resp, arg) is then
 * called exactly once, with status 0 and resp->error when no response
 * arrived. LEV_ERR_NOMEM, LEV_ERR_ARG, or LEV_ERR_STATE (stopping) when not
 * queued: done is not called. */
int svc_http_post_async(svc_http_t *http, const char *url, const char *body, size_t len,
                        const char *const *headers, svc_http_done_fn done, void *arg);

/* Moves a response (its body included) from *from to *to. */
void svc_http_response_move(svc_http_response_t *to, svc_http_response_t *from);

void svc_http_response_clear(svc_http_response_t *resp);

/* Classifies a status as above (0 meaning no response). */
svc_http_class_t svc_http_classify(long status);

/* The host part of a URL (no credentials, no port) into out; returns 0, or
 * LEV_ERR_ARG when the URL cannot be parsed or is not http(s). */
int svc_url_host(const char *url, char *out, size_t size);

#endif
