/*
 * libevents schema registry client: the Confluent Schema Registry REST API
 * (also served by Apicurio Registry under /apis/ccompat/v7, Karapace and
 * Redpanda), over libcurl and jansson.
 *
 * What it is for: values framed in the Confluent wire format
 *   00 | schema id, 4 bytes big-endian | Avro binary body
 * name their writer schema by a registry id. A codec given a registry
 * (lev_codec_set_registry) fetches the schema of an id it has not seen, and
 * a producer registers (or looks up) each schema it writes under the subject
 * its naming strategy gives, once, to learn the id it frames values with.
 *
 * Every try of a call is bounded by the configured timeout; a call is tried
 * again (after a backoff that doubles, up to `retries` times) when it
 * fails in a way that may pass: no answer, a connection refused or reset,
 * HTTP 408, 429 or 5xx, a success whose body is not JSON (a proxy's page).
 * What a retry cannot fix (HTTP 4xx) is reported at once. Schemas fetched
 * by id are cached (ids are immutable, so a hit never asks again), up to
 * `cache_size` of them, least recently used first out; an id the registry
 * says it does not have (40403) is remembered for 30 s (up to 256 such
 * ids) so hostile records do not hammer it.
 *
 * Credentials are never logged nor put in error texts; lev_registry_url()
 * gives the URL without them.
 *
 * Thread rules: a registry may be used from several threads at once; its
 * requests are serialised on one connection (answers from the cache do
 * not wait for them).
 */
#ifndef LIBEVENTS_REGISTRY_H
#define LIBEVENTS_REGISTRY_H

#include <libevents/common.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lev_registry_s lev_registry_t;

/* How the subject of a schema written to a topic is named (Confluent's
 * strategies of the same names). */
typedef enum lev_subject_strategy_e {
    LEV_SUBJECT_TOPIC = 0,        /* "<topic>-value" (TopicNameStrategy, the default) */
    LEV_SUBJECT_RECORD = 1,       /* "<record full name>" (RecordNameStrategy) */
    LEV_SUBJECT_TOPIC_RECORD = 2, /* "<topic>-<record full name>" (TopicRecordNameStrategy) */
} lev_subject_strategy_t;

typedef struct lev_registry_conf_s {
    const char *url;           /* base URL: http://host:8081, or Apicurio's
                                  http://host:8080/apis/ccompat/v7 (no trailing /);
                                  http://user:password@host... is basic auth too */
    const char *user;          /* HTTP basic auth user (wins over the URL's); NULL or "": none */
    const char *password;      /* its password */
    const char *ca_location;   /* PEM CA bundle for https; NULL: the system's */
    const char *cert_location; /* client certificate (PEM) for mutual TLS; NULL: none */
    const char *key_location;  /* its private key (PEM) */
    int timeout_ms;            /* each try of a request, connection included; 0: 5000 */
    int retries;               /* further tries of a request that may pass; -1: 0, 0: 2 */
    int retry_backoff_ms;      /* wait before the first retry, doubled after; 0: 200 */
    size_t cache_size;         /* schemas kept by id; 0: 1000 */
    lev_subject_strategy_t strategy;
} lev_registry_conf_t;

/* Parses "topic" (or "topic_name", "TopicNameStrategy"), "record"
 * ("record_name", "RecordNameStrategy"), "topic_record"
 * ("topic_record_name", "TopicRecordNameStrategy"), in any case. 0 or
 * LEV_ERR_CONFIG (LEV_ERR_ARG when out is NULL). */
LEV_API int lev_subject_strategy_parse(const char *s, lev_subject_strategy_t *out);

/* The subject of `record_fullname` written to `topic`. Returns 0, or
 * LEV_ERR_ARG when it does not fit in `size`. */
LEV_API int lev_registry_subject(lev_subject_strategy_t strategy, const char *topic,
                                 const char *record_fullname, char *out, size_t size);

/* A new client (no request is made). NULL with err: LEV_ERR_CONFIG for a
 * missing or malformed URL (err->where "url"), LEV_ERR_NOMEM. */
LEV_API lev_registry_t *lev_registry_new(const lev_registry_conf_t *conf, lev_error_t *err);

/* A client configured from the environment:
 *   LEV_SCHEMA_REGISTRY_URL                  the base URL (required)
 *   LEV_SCHEMA_REGISTRY_USER, LEV_SCHEMA_REGISTRY_PASSWORD (or
 *   LEV_SCHEMA_REGISTRY_PASSWORD_FILE, not both; its final line break
 *   is dropped)                              basic auth
 *   LEV_SCHEMA_REGISTRY_CA_LOCATION, LEV_SCHEMA_REGISTRY_CERT_LOCATION,
 *   LEV_SCHEMA_REGISTRY_KEY_LOCATION         TLS
 *   LEV_SCHEMA_REGISTRY_TIMEOUT_MS (5000), LEV_SCHEMA_REGISTRY_RETRIES (2; 0: none),
 *   LEV_SCHEMA_REGISTRY_CACHE_SIZE (1000),
 *   LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY (topic)
 * Returns NULL with err->code 0 when LEV_SCHEMA_REGISTRY_URL is unset or
 * empty; NULL with err (LEV_ERR_CONFIG naming the variable) for a bad value. */
LEV_API lev_registry_t *lev_registry_from_env(lev_error_t *err);

LEV_API void lev_registry_destroy(lev_registry_t *reg);

/* The base URL, without credentials (for logs). */
LEV_API const char *lev_registry_url(const lev_registry_t *reg);
LEV_API lev_subject_strategy_t lev_registry_strategy(const lev_registry_t *reg);

/* Errors of the calls below:
 *   LEV_ERR_REGISTRY  the registry could not be asked or failed to answer
 *                     (no connection, timeout, HTTP 5xx, 401/403 or
 *                     another status it should not give, an answer that
 *                     is not JSON, a 404 without a registry's error code:
 *                     the URL is not its base URL): may pass, try later;
 *   LEV_ERR_NOT_FOUND no such subject or version (HTTP 404, 40401/40402);
 *   LEV_ERR_UNKNOWN_SCHEMA no schema has this id (40403), or the id names a
 *                     schema that is not Avro (schemaType PROTOBUF, JSON),
 *                     or the registry's answer for it holds no schema;
 *   LEV_ERR_RESOLVE   the schema is incompatible with the subject's earlier
 *                     versions (HTTP 409): err->text is the registry's reason;
 *   LEV_ERR_SCHEMA    the registry refused the schema as malformed (422,
 *                     42201);
 *   LEV_ERR_ARG       a bad argument, or one the registry refused (422
 *                     with another code: 42203 for a compatibility level);
 *   LEV_ERR_NOMEM.
 * Texts name the request ("GET /schemas/ids/7: ...") and carry the
 * registry's own message when it gave one. */

/* The schema text of `id` (GET /schemas/ids/<id>): a malloc'd string the
 * caller frees. Served from the cache when it holds the id. */
LEV_API int lev_registry_schema_by_id(lev_registry_t *reg, int32_t id, char **schema_json,
                                      lev_error_t *err);

/* lev_registry_schema_by_id for a caller that must not block long (a
 * worker's loop): the request runs on the registry's own thread (started
 * on the first call), and the call that starts it waits at most `wait_ms`
 * for it (a call while it is under way returns at once). Not answered by
 * then: LEV_ERR_TIMEOUT, and the lookup goes on; a later call
 * for the same id gets its result (once: a failure is handed to one
 * caller, and the next call asks again). A cache hit returns at once. */
LEV_API int lev_registry_schema_by_id_wait(lev_registry_t *reg, int32_t id, int wait_ms,
                                           char **schema_json, lev_error_t *err);

/* Registers `schema_json` under `subject` (POST /subjects/<s>/versions),
 * or finds it registered already: *id gets its id (the same id for the
 * same schema, whatever the subject). The schema is also put in the cache. */
LEV_API int lev_registry_register(lev_registry_t *reg, const char *subject, const char *schema_json,
                                  int32_t *id, lev_error_t *err);

/* lev_registry_register for a caller that must not block long, as
 * lev_registry_schema_by_id_wait is for lookups: the registration runs on
 * the registry's own thread, this call waits at most `wait_ms` for it, and
 * LEV_ERR_TIMEOUT means it goes on; a later call for the same subject and
 * schema gets its result (once). */
LEV_API int lev_registry_register_wait(lev_registry_t *reg, const char *subject,
                                       const char *schema_json, int wait_ms, int32_t *id,
                                       lev_error_t *err);

/* Finds `schema_json` among the versions of `subject` (POST
 * /subjects/<s>): *id and *version (either may be NULL), or
 * LEV_ERR_NOT_FOUND when the subject or the schema is not registered. */
LEV_API int lev_registry_lookup(lev_registry_t *reg, const char *subject, const char *schema_json,
                                int32_t *id, int *version, lev_error_t *err);

/* The latest version of `subject` (GET /subjects/<s>/versions/latest):
 * *schema_json (malloc'd; may be NULL to skip), *id and *version (may be
 * NULL). LEV_ERR_NOT_FOUND when the subject has none; LEV_ERR_UNKNOWN_SCHEMA
 * when it is not an Avro schema. */
LEV_API int lev_registry_latest(lev_registry_t *reg, const char *subject, char **schema_json,
                                int32_t *id, int *version, lev_error_t *err);

/* Asks whether `schema_json` may be registered under `subject` (POST
 * /compatibility/subjects/<s>/versions/latest?verbose=true): *compatible
 * is 1 or 0 and, when 0, *reasons (if not NULL) a malloc'd text of the
 * registry's reasons ("" when it gave none). A subject that does not exist
 * yet is compatible. */
LEV_API int lev_registry_check(lev_registry_t *reg, const char *subject, const char *schema_json,
                               int *compatible, char **reasons, lev_error_t *err);

/* Sets the compatibility level ("BACKWARD", "FULL_TRANSITIVE", "NONE", ...)
 * of `subject`, or the registry's default when subject is NULL (PUT
 * /config[/<s>]). */
LEV_API int lev_registry_set_compatibility(lev_registry_t *reg, const char *subject,
                                           const char *level, lev_error_t *err);

/* The compatibility level of `subject` (NULL: the default; a subject
 * without a level of its own has the default's) into out; LEV_ERR_ARG
 * when it does not fit in `size`. */
LEV_API int lev_registry_get_compatibility(lev_registry_t *reg, const char *subject, char *out,
                                           size_t size, lev_error_t *err);

/* Counters since creation, for tests and metrics. */
typedef struct lev_registry_stats_s {
    uint64_t requests;     /* HTTP requests made (retries included) */
    uint64_t cache_hits;   /* schema_by_id answered from the cache (also an id
                              the registry said lately it does not have) */
    uint64_t cache_misses; /* schema_by_id that asked the registry */
    uint64_t failures;     /* calls that ended in LEV_ERR_REGISTRY */
} lev_registry_stats_t;
LEV_API void lev_registry_stats(lev_registry_t *reg, lev_registry_stats_t *out);

/* 401 or 403 when the registry's latest answer refused this client's
 * credentials or its access (the call failed with LEV_ERR_REGISTRY), else
 * 0. Waiting does not change such an answer, where an outage passes: a
 * worker stops its start on it, and waits out the others. */
LEV_API int lev_registry_refused(const lev_registry_t *reg);

#ifdef __cplusplus
}
#endif
#endif
