/*
 * libevents configuration: environment variables (12-factor) with defaults
 * that work against the local stack (tools/stack). The README lists them.
 */
#ifndef LIBEVENTS_CONFIG_H
#define LIBEVENTS_CONFIG_H

#include <libevents/codec.h>
#include <libevents/common.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEV_RETRY_LEVELS_MAX 8

/* Retry policy: in-process attempts with exponential backoff and full
 * jitter, then one retry topic per delay level, then the dead-letter topic. */
typedef struct lev_retry_policy_s {
    int attempts;                            /* in-process attempts, the first included (>= 1) */
    int backoff_ms;                          /* first backoff */
    int backoff_max_ms;                      /* cap of the exponential backoff */
    int levels;                              /* number of retry topics (0..LEV_RETRY_LEVELS_MAX) */
    int64_t delays_ms[LEV_RETRY_LEVELS_MAX]; /* delay of each retry topic */
} lev_retry_policy_t;

/* A worker's configuration. Fill it with lev_config_init or
 * lev_config_from_env, never member by member from zero, and free it with
 * lev_config_clear: its size and layout are fixed only within one SONAME
 * (see "ABI" in libevents.h). */
typedef struct lev_config_s {
    char *service;              /* LEV_SERVICE: name in logs, ce_source and DLQ headers */
    char *bootstrap;            /* KAFKA_BOOTSTRAP: 127.0.0.1:19092 */
    char *group_id;             /* LEV_GROUP_ID: the service name */
    char *client_id;            /* LEV_CLIENT_ID: <service>-<hostname>-<pid> */
    char *redis_url;            /* REDIS_URL: redis://127.0.0.1:16379/0; "" turns idempotency off */
    char *schema_dirs;          /* LEV_SCHEMA_DIRS: schemas:<lev_install_data_dir()>/schemas */
    char *source;               /* LEV_SOURCE: ce_source of emitted events, /<service> */
    lev_log_level_t log_level;  /* LEV_LOG_LEVEL: info */
    int batch_size;             /* LEV_BATCH_SIZE: most messages taken per poll batch, 500 */
    int max_in_flight;          /* LEV_MAX_IN_FLIGHT: most records held at once, 10000 */
    size_t max_in_flight_bytes; /* LEV_MAX_IN_FLIGHT_BYTES: their bytes, 64 MiB */
    int max_deferred;           /* LEV_MAX_DEFERRED: most records waiting on handlers' own
                                   asynchronous work (lev_ctx_defer) at once, 128 */
    int delivery_timeout_ms;    /* LEV_DELIVERY_TIMEOUT_MS: produce ack deadline, 30000 */
    int shutdown_timeout_ms;    /* LEV_SHUTDOWN_TIMEOUT_MS: bound on a graceful stop, 15000 */
    int64_t lease_ms;           /* LEV_IDEMPOTENCY_LEASE_MS: claim lease, 60000 */
    int64_t done_ttl_ms;        /* LEV_IDEMPOTENCY_TTL_MS: done-key life, 7 days */
    lev_retry_policy_t retry;   /* LEV_RETRY_ATTEMPTS (3), LEV_RETRY_BACKOFF_MS (200),
                                   LEV_RETRY_BACKOFF_MAX_MS (5000),
                                   LEV_RETRY_DELAYS ("5s,30s,5m": one topic per delay) */
    lev_codec_limits_t limits;  /* LEV_MAX_VALUE_BYTES (1 MiB), LEV_MAX_ITEMS (100000) */
    lev_kv_t *kafka;            /* KAFKA_<NAME>=v becomes librdkafka property name.lower */
    size_t nkafka;              /*   (KAFKA_SECURITY_PROTOCOL -> security.protocol) */
    char *http_addr;            /* LEV_HTTP_ADDR: host:port of /metrics, /healthz, /readyz;
                                   NULL or "" (the default): no endpoint (see metrics.h) */
    int64_t health_stall_ms;    /* LEV_HEALTH_STALL_MS: /healthz fails when the worker's loop
                                   has not turned for this long, 30 s */
    lev_wire_format_t wire_format; /* LEV_WIRE_FORMAT: soe or confluent; the schema
                                      registry comes from LEV_SCHEMA_REGISTRY_* (registry.h) */
} lev_config_t;

/* Fills defaults only (no environment). `service` is required. */
LEV_API int lev_config_init(lev_config_t *conf, const char *service, lev_error_t *err);

/* Defaults, then the environment. A bad value fails naming the variable. */
LEV_API int lev_config_from_env(lev_config_t *conf, const char *service, lev_error_t *err);

/* Frees what the configuration owns; the struct can be reused after. */
LEV_API void lev_config_clear(lev_config_t *conf);

/* Replaces a string field (copies value). */
LEV_API int lev_config_set_str(char **field, const char *value);

/* Adds or replaces a librdkafka property passed through to every client. */
LEV_API int lev_config_set_kafka(lev_config_t *conf, const char *name, const char *value);

/* Parses a duration: "250ms", "5s", "2m", "1h", "7d", or bare milliseconds. */
LEV_API int lev_duration_parse(const char *s, int64_t *ms);

/* Parses a retry delay list ("5s,30s,5m", or "" for no retry topics). */
LEV_API int lev_retry_delays_parse(const char *s, lev_retry_policy_t *policy, lev_error_t *err);

/* The data directory of the installed libevents, <prefix>/share/libevents
 * (its schemas/ is the default schema directory), found at run time next
 * to the library: <libdir>/../share/libevents from the shared library, or
 * <bindir>/../share/libevents from a program libevents is linked into
 * statically, so an installed tree keeps working when moved to another
 * prefix. When that directory does not exist (a build tree, a program
 * installed elsewhere), the directory chosen at build time. Any thread; the
 * string is static. */
LEV_API const char *lev_install_data_dir(void);

/* The kind of Kafka client lev_config_kafka_apply configures. */
typedef enum lev_kafka_client_e {
    LEV_KAFKA_PRODUCER = 0,
    LEV_KAFKA_CONSUMER = 1,
} lev_kafka_client_t;

/* Sets one librdkafka property on the caller's client configuration.
 * Returns 0, or non-zero with the reason written to errstr (errstr_size
 * bytes), as rd_kafka_conf_set does. */
typedef int (*lev_kafka_set_fn)(void *opaque, const char *name, const char *value, char *errstr,
                                size_t errstr_size);

/* For a program that makes librdkafka clients of its own (an admin tool, a
 * reader by assignment) from the same configuration as libevents' clients,
 * without libevents' headers naming librdkafka: calls set(opaque, name,
 * value, ...) for each property libevents gives its own clients of `kind`,
 * in order, a later call for a name overriding an earlier one:
 * bootstrap.servers and client.id; `defaults`; the KAFKA_* passthrough
 * (conf->kafka) without the properties only the other kind of client
 * takes, which librdkafka would warn about; `extra`; then the settings
 * at-least-once delivery rests on (producers: enable.idempotence=true,
 * acks=all; consumers: enable.auto.offset.store=false). `defaults` and
 * `extra` end with {NULL, NULL} and may be NULL. Callbacks such as the log
 * callback are not properties and stay the caller's to set.
 * Returns 0, LEV_ERR_ARG, or LEV_ERR_CONFIG when `set` refuses a property,
 * with err->where naming it, or the KAFKA_* variable it came from, and
 * err->text the reason `set` gave. */
LEV_API int lev_config_kafka_apply(const lev_config_t *conf, lev_kafka_client_t kind,
                                   const lev_kv_t *defaults, const lev_kv_t *extra,
                                   lev_kafka_set_fn set, void *opaque, lev_error_t *err);

/* For the same programs: 1 when `err`, an error code (rd_kafka_resp_err_t)
 * their librdkafka client reported, means the cluster refused the client's
 * credentials (SASL authentication failed, a mechanism the broker does not
 * enable): not a network problem, and waiting will not fix it. Else 0. */
LEV_API int lev_kafka_err_is_auth(int err);

/* Writes the environment variables above, their defaults and meaning, one
 * per line, for a program's --help. */
LEV_API void lev_config_print_help(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
