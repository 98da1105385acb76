/* libevents: errors, logging, ids. */
#ifndef LIBEVENTS_COMMON_H
#define LIBEVENTS_COMMON_H

#include <libevents/version.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LEV_BUILDING)
#define LEV_API __attribute__((visibility("default")))
#else
#define LEV_API
#endif

/* ======================================================================
 * Version. The headers' version is LEV_VERSION_MAJOR, _MINOR, _PATCH,
 * LEV_VERSION_STR and LEV_VERSION_NUMBER (libevents/version.h); these
 * calls give the version of the library the program runs with, which can
 * differ from the headers it was compiled with (a newer shared library
 * of the same SONAME, see "ABI" in libevents.h).
 * ====================================================================== */

/* The library's version as text: "<major>.<minor>.<patch>". Static. */
LEV_API const char *lev_version(void);

/* The library's version as 0xMMmmpp, comparable with LEV_VERSION_NUMBER. */
LEV_API int lev_version_number(void);

/* ======================================================================
 * Errors
 * ====================================================================== */

/* Error codes. Every failing call returns one of these (negative). */
typedef enum lev_err_e {
    LEV_OK = 0,
    LEV_ERR_ARG = -1,            /* invalid argument */
    LEV_ERR_NOMEM = -2,          /* allocation failed */
    LEV_ERR_IO = -3,             /* file or socket I/O */
    LEV_ERR_SCHEMA = -4,         /* malformed or unsupported Avro schema */
    LEV_ERR_DECODE = -5,         /* bytes do not match the writer schema */
    LEV_ERR_UNKNOWN_SCHEMA = -6, /* writer fingerprint is not among the loaded schemas */
    LEV_ERR_RESOLVE = -7,        /* writer schema cannot be read with the reader schema */
    LEV_ERR_ENCODE = -8,         /* a value could not be encoded */
    LEV_ERR_JSON = -9,           /* JSON does not match the schema, or is not JSON */
    LEV_ERR_CONFIG = -10,        /* bad configuration value */
    LEV_ERR_KAFKA = -11,         /* broker or client error */
    LEV_ERR_REDIS = -12,         /* Redis unavailable or answered an error */
    LEV_ERR_TIMEOUT = -13,       /* an operation did not finish in time */
    LEV_ERR_NOT_FOUND = -14,     /* no such item */
    LEV_ERR_STATE = -15,         /* call not valid in the object's current state */
    LEV_ERR_TOO_LARGE = -16,     /* a record is larger than the producer or broker accepts */
    LEV_ERR_REFUSED = -17,       /* the broker refused a record for good (not worth a retry) */
    LEV_ERR_REGISTRY = -18,      /* the schema registry could not be asked or failed (transient) */
} lev_err_t;

/* A short stable name for an error code ("decode", "unknown-schema", ...). */
LEV_API const char *lev_err_name(int err);

/*
 * Detail of an error, filled by calls that take a `lev_error_t *err`
 * (which may be NULL). `where` names the place at fault when there is one:
 * a file ("schemas/x.avsc"), a file and line ("orders.jsonl:12") or a field
 * path inside a value ("items[2].quantity"). `text` says what is wrong.
 * Both are NUL-terminated and cut to fit. The array sizes are part of the
 * ABI and change only with the SONAME (see "ABI" in libevents.h): copy
 * them with sizeof, never with a literal length.
 */
typedef struct lev_error_s {
    int code;
    char where[256];
    char text[512];
} lev_error_t;

/* Formats "where: text" (or just text) into buf; returns buf. */
LEV_API const char *lev_error_format(const lev_error_t *err, char *buf, size_t size);

/* ======================================================================
 * Logging. The library never prints: it reports through one process-wide
 * callback. Without a callback, nothing is logged. The callback is called
 * from any thread (librdkafka logs from its own threads), so it must be
 * thread-safe; lev_log_json is. The settings below may be changed at any
 * time, from any thread.
 * ====================================================================== */

typedef enum lev_log_level_e {
    LEV_LOG_DEBUG = 0,
    LEV_LOG_INFO = 1,
    LEV_LOG_WARN = 2,
    LEV_LOG_ERROR = 3,
} lev_log_level_t;

/* A key/value string pair (log fields, configuration entries). */
typedef struct lev_kv_s {
    const char *key;
    const char *value;
} lev_kv_t;

typedef void (*lev_log_cb)(void *opaque, lev_log_level_t level, const char *msg,
                           const lev_kv_t *fields, size_t nfields);

/* Installs the process-wide log callback (NULL turns logging off) and the
 * lowest level passed to it. */
LEV_API void lev_log_set(lev_log_cb cb, void *opaque, lev_log_level_t min_level);

/* A ready-made callback writing one JSON object per line:
 * {"ts":"...","level":"info","msg":"...","service":"...",<fields>}.
 * `opaque` is a FILE * (NULL means stderr). Lines are written with one
 * write so concurrent writers do not interleave. */
LEV_API void lev_log_json(void *opaque, lev_log_level_t level, const char *msg,
                          const lev_kv_t *fields, size_t nfields);

/* Sets the "service" field lev_log_json adds to every line (copied). */
LEV_API void lev_log_set_service(const char *service);

/* Parses "debug", "info", "warn"/"warning", "error". Returns 0 or LEV_ERR_CONFIG. */
LEV_API int lev_log_level_parse(const char *s, lev_log_level_t *out);

/* Logs through the installed callback: fields are given as key, value
 * pairs of strings ending with NULL; a NULL value skips its pair. */
LEV_API void lev_log(lev_log_level_t level, const char *msg, ...);

/* ======================================================================
 * Ids and time
 * ====================================================================== */

#define LEV_UUID_STR_LEN 37 /* 36 characters and the NUL */

/* A random (version 4) UUID in canonical text form. */
LEV_API void lev_uuid4(char out[LEV_UUID_STR_LEN]);

/* A name-based (version 5, SHA-1) UUID of `name` in the namespace given as
 * canonical text. Returns LEV_ERR_ARG when the namespace is not a UUID. */
LEV_API int lev_uuid5(const char *ns, const char *name, size_t name_len,
                      char out[LEV_UUID_STR_LEN]);

/* The id of an event derived from an input event: a version 5 UUID of
 * "<input_id>/<output_type>/<n>" in the input id's namespace, so handling the
 * same input again emits the same ids. `n` counts outputs of that type
 * emitted for one input (0 for the first). */
LEV_API int lev_uuid_derive(const char *input_id, const char *output_type, unsigned n,
                            char out[LEV_UUID_STR_LEN]);

/* The same for an input event identified by its source and id, as
 * CloudEvents identifies events: two sources that share an id derive
 * different ids. With source NULL or "", the same as lev_uuid_derive. This
 * is how a worker derives the ids of what a handler emits. */
LEV_API int lev_uuid_derive_event(const char *source, const char *input_id, const char *output_type,
                                  unsigned n, char out[LEV_UUID_STR_LEN]);

/* Milliseconds since the epoch (wall clock) and a monotonic clock. */
LEV_API int64_t lev_now_ms(void);
LEV_API int64_t lev_mono_ms(void);

/* RFC 3339 UTC with milliseconds ("2026-11-21T17:05:00.123Z"). */
LEV_API void lev_time_format(int64_t ms, char out[32]);
/* Parses RFC 3339 (Z or +hh:mm offset, optional fraction). 0 or LEV_ERR_ARG. */
LEV_API int lev_time_parse(const char *s, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
