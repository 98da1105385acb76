/*
 * libevents worker: a consumer-group worker that decodes events, dispatches
 * them by type to handlers and finishes each record before storing its
 * offset.
 *
 * A record is finished when its handler succeeded and every event it
 * emitted was acknowledged by the broker, or it was moved to a retry topic
 * (acknowledged), or dead-lettered (acknowledged), or its idempotency key
 * says it was handled before. The worker is a pipeline: while one batch's
 * outputs wait for the broker, the next batch is polled, claimed and
 * handled. Offsets are stored per partition only up to the first
 * unfinished record; an unfinished record is fetched again. A record whose
 * outputs are not acknowledged in time is handled again, never skipped.
 * Offsets are committed every second, on partition revoke and at shutdown.
 *
 * Threads:
 *   - A worker belongs to the thread that calls lev_worker_run: create it,
 *     register handlers, subscribe and destroy it on one thread, and do not
 *     call lev_worker_* on it from another thread while it runs, except
 *     lev_worker_stop (any thread, and async-signal-safe) and
 *     lev_worker_stats (any thread; each counter is read whole).
 *   - Handlers run on the thread of lev_worker_run, one at a time, in
 *     partition order. A handler may call lev_ctx_* and use the store of
 *     lev_ctx_store (the worker's own Redis connection); it must not call
 *     lev_worker_run or lev_worker_destroy. Delivery reports, rebalances,
 *     retries, resume functions of deferred records and circuit breakers
 *     are all handled on that thread too, between handler calls. Only
 *     lev_deferral_resume is meant for other threads (see below).
 *   - librdkafka's own threads log through the process-wide log callback
 *     (see common.h), which must therefore be thread-safe; lev_log_json is.
 */
#ifndef LIBEVENTS_WORKER_H
#define LIBEVENTS_WORKER_H

#include <libevents/codec.h>
#include <libevents/common.h>
#include <libevents/config.h>
#include <libevents/producer.h>
#include <libevents/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Dead-letter and retry headers (version 1). Each hop replaces them. */
#define LEV_H_DLQ_VERSION "lev_dlq_version" /* "1" */
#define LEV_H_ORIG_TOPIC "lev_original_topic"
#define LEV_H_ORIG_PARTITION "lev_original_partition"
#define LEV_H_ORIG_OFFSET "lev_original_offset"
#define LEV_H_ORIG_TIMESTAMP "lev_original_timestamp"
#define LEV_H_GROUP "lev_group"
#define LEV_H_SERVICE "lev_service"
#define LEV_H_ERROR_CLASS "lev_error_class"
#define LEV_H_ERROR_MESSAGE "lev_error_message"
#define LEV_H_ATTEMPTS "lev_attempts"
#define LEV_H_FIRST_FAILURE "lev_first_failure"
#define LEV_H_LAST_FAILURE "lev_last_failure"
#define LEV_H_DUE "lev_due" /* retry topics: not before this time (ms since epoch) */
/* Dead-letter records whose value was too large to send again: the value is
 * left out and this header holds its size in bytes; the original stays at
 * lev_original_topic / _partition / _offset. */
#define LEV_H_VALUE_OMITTED "lev_value_omitted"
/* Set by `evctl dlq redrive` on each record it sends again:
 * "<dead-letter topic>/<partition>/<offset>". A worker that dead-letters an
 * event marks its idempotency key so that the same record fetched again is
 * skipped; a redriven record (a different provenance) is handled anew. */
#define LEV_H_REDRIVE_FROM "evctl_redrive_from"

/* The error classes (LEV_H_ERROR_CLASS) of retry and dead-letter records. */
/* A handler failed (LEV_RESULT_PERMANENT, or TRANSIENT with a retry level
 * left: the record goes to a retry topic). */
#define LEV_CLASS_HANDLER "handler"
/* A handler kept failing transiently through the last retry level. */
#define LEV_CLASS_RETRIES_EXHAUSTED "retries-exhausted"
/* An output larger than its topic takes. */
#define LEV_CLASS_TOO_LARGE "too-large"
/* An output the broker refused for good. */
#define LEV_CLASS_PRODUCE "produce"
/* A ce_id or ce_source that cannot key the event. */
#define LEV_CLASS_BAD_ID "bad-id"
/* A record that does not decode is classed by lev_err_name() of the
 * codec's error: "decode", "unknown-schema", "resolve". */

/* The longest event id (ce_id) and source (ce_source) a worker handles, in
 * bytes. An event with an id that is empty, longer, or holds a control
 * character (below 0x20, or 0x7f), or with such a source, is dead-lettered
 * with class "bad-id" and never handled: its idempotency key would be
 * ambiguous. An event without a ce_id header is identified by its
 * topic/partition/offset. */
#define LEV_EVENT_ID_MAX 256
#define LEV_EVENT_SOURCE_MAX 1024

typedef struct lev_worker_s lev_worker_t;
typedef struct lev_ctx_s lev_ctx_t;
typedef struct lev_deferral_s lev_deferral_t;

/* Every error class a worker writes: the LEV_CLASS_* above and the codec's,
 * NULL-ended and static. For readers of dead letters, to tell a class with
 * no records at the moment from a misspelt one. A newer library may list
 * more. */
LEV_API const char *const *lev_error_classes(void);
typedef struct lev_breaker_s lev_breaker_t;

/* What a handler returns. */
typedef enum lev_result_e {
    LEV_RESULT_OK = 0,        /* done; emitted events are produced */
    LEV_RESULT_TRANSIENT = 1, /* try again later (emitted events are dropped) */
    LEV_RESULT_PERMANENT = 2, /* will never succeed: dead-letter it */
    LEV_RESULT_DEFERRED = 3,  /* waits for work of its own (lev_ctx_defer) */
} lev_result_t;

/* A decoded input event, valid during the handler call. */
typedef struct lev_event_s {
    const char *topic; /* the topic it was read from (a retry topic: the original) */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const char *key;  /* NUL-terminated copy of the key ("" when none) */
    const char *id;   /* ce_id */
    const char *type; /* full schema name of the reader schema */
    const char *source;
    const char *correlation_id;
    const char *traceparent;
    int attempt;        /* 1 on the first try, counting every earlier try */
    avro_value_t value; /* resolved to the current schema of `type` */
} lev_event_t;

typedef lev_result_t (*lev_handler_fn)(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque);

/* Creates a worker: loads the schemas of conf->schema_dirs, connects the
 * producer, the consumer (group conf->group_id) and, when conf->redis_url is
 * not empty, the idempotency store. The worker copies what it needs of conf. */
LEV_API lev_worker_t *lev_worker_new(const lev_config_t *conf, lev_error_t *err);
LEV_API void lev_worker_destroy(lev_worker_t *w);

/* Registers the handler of an event type (full schema name). Unregistered
 * types read from a subscribed topic are finished without a handler. */
LEV_API int lev_worker_on(lev_worker_t *w, const char *type, lev_handler_fn fn, void *opaque,
                          lev_error_t *err);

/* Overrides the retry policy for one event type. */
LEV_API int lev_worker_retry_policy(lev_worker_t *w, const char *type,
                                    const lev_retry_policy_t *policy);

/* Adds a topic to consume (call before run). */
LEV_API int lev_worker_subscribe(lev_worker_t *w, const char *topic, lev_error_t *err);

/* Declares a topic the handlers emit to (call before run; optional). At
 * start its metadata is fetched, so the first event after a start is not
 * delayed, and its max.message.bytes counts when the producer's own limit
 * is aligned with the topics' (see lev_worker_run). */
LEV_API int lev_worker_declare_output(lev_worker_t *w, const char *topic, lev_error_t *err);

/* Declares that handlers emit events of `type` (a loaded schema's full name)
 * to `topic`, which is declared as an output too. With LEV_WIRE_FORMAT=
 * confluent, each declared schema is registered (or looked up) in the
 * schema registry when the worker starts, under the subject of its topic;
 * the start waits while the registry does not answer and fails, with the
 * registry's reason, when it refuses a schema (incompatible with the
 * subject's versions) or the worker's credentials or access (HTTP 401 or
 * 403: LEV_ERR_CONFIG). An emit of an undeclared pair registers it then,
 * on the registry's own thread: the loop waits 100 ms at most, and while
 * the registry has not answered the emit fails with LEV_ERR_REGISTRY and
 * the record waits, as one whose writer id is unknown does: whatever the
 * handler returns, nothing of that call is sent, no attempt is counted,
 * and the record is handled again (a resume function's emit is not held:
 * its error is the resume's to act on). */
LEV_API int lev_worker_declare_emits(lev_worker_t *w, const char *topic, const char *type,
                                     lev_error_t *err);

/* Runs until lev_worker_stop, then stops fetching, finishes what it holds,
 * flushes, commits, leaves the group. Returns 0 after a clean stop.
 *
 * At start it creates the group's retry and dead-letter topics if they are
 * missing, and sets the producer's message.max.bytes to the largest
 * max.message.bytes of the topics it writes to (dead-letter, retry and
 * declared outputs) unless KAFKA_MESSAGE_MAX_BYTES is set, so a record a
 * topic accepted can be sent on to them. */
LEV_API int lev_worker_run(lev_worker_t *w);

/* Asks run to stop. Any thread; async-signal-safe. */
LEV_API void lev_worker_stop(lev_worker_t *w);

/* SIGTERM and SIGINT stop every worker that called this (and is not
 * destroyed yet). The handlers that were installed before come back when
 * the last such worker is destroyed. */
LEV_API int lev_worker_stop_on_signals(lev_worker_t *w);

LEV_API const lev_schemas_t *lev_worker_schemas(const lev_worker_t *w);
LEV_API lev_codec_t *lev_worker_codec(lev_worker_t *w);
LEV_API lev_store_t *lev_worker_store(lev_worker_t *w); /* NULL without Redis */

/* The retry and dead-letter topics of a group: "<group>.retry.<level>"
 * (level from 1) and "<group>.dlq". */
LEV_API void lev_retry_topic_name(const char *group, int level, char *out, size_t size);
LEV_API void lev_dlq_topic_name(const char *group, char *out, size_t size);

/* Counters, for tests and metrics. `finished` counts records whose offset
 * was stored; `produce_failures` records with a failed delivery report;
 * `given_up_waiting` records given up (their partition revoked or held)
 * while their outputs still waited for the broker: they are fetched again
 * and their idempotency claims make the next owner wait for them;
 * `in_flight_peak` the most records held at once (LEV_MAX_IN_FLIGHT bounds
 * it); `deferred` the records waiting on lev_ctx_defer now, `deferred_peak`
 * the most at once (LEV_MAX_DEFERRED bounds it); `breaker_waits` the times a
 * record waited for a breaker instead of being handled or retried. */
typedef struct lev_worker_stats_s {
    uint64_t received, handled, skipped_duplicates, emitted, retried_inprocess, sent_to_retry,
        dead_lettered, batches, store_round_trips, finished, produce_failures, rebalances,
        given_up_waiting, in_flight_peak, deferred, deferred_peak, breaker_waits;
    /* batched service state: round trips of the handlers' connection
     * (lev_ctx_store), and writes that lost their compare-and-set */
    uint64_t state_round_trips, state_conflicts;
} lev_worker_stats_t;
LEV_API void lev_worker_stats(const lev_worker_t *w, lev_worker_stats_t *out);

/* ---- inside a handler (or a resume function) ---- */

/* A new empty value of the current schema of `type`, owned by the context
 * (released after the handler returns). */
LEV_API int lev_ctx_new_value(lev_ctx_t *ctx, const char *type, avro_value_t *out);

/* Emits an event: `value` (from lev_ctx_new_value) goes to `topic` keyed by
 * `key`, with an id derived from the input's source and id and the output
 * type (lev_uuid_derive_event), the
 * input's correlation id and trace. The events are produced only when the
 * handler returns LEV_RESULT_OK; the input finishes when all are acknowledged. */
LEV_API int lev_ctx_emit(lev_ctx_t *ctx, const char *topic, const char *key,
                         const avro_value_t *value, lev_error_t *err);

/* Says why the handler failed (goes to logs and dead-letter headers). */
LEV_API void lev_ctx_set_error(lev_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- deferring: handlers that wait for work of their own ----
 *
 * A handler that calls out (an HTTP request, say) need not block the
 * worker's thread: it calls lev_ctx_defer, hands the deferral to its own
 * machinery (another thread, an event loop), and returns
 * LEV_RESULT_DEFERRED. The worker goes on with other records meanwhile.
 * When the work is done, that machinery calls lev_deferral_resume (from any
 * thread); the worker then calls `fn` on its own thread with a context and
 * the record's event again, and fn finishes the record as a handler would:
 * it may read the event, emit, set an error and return any result
 * (LEV_RESULT_DEFERRED again, after another lev_ctx_defer, to wait once
 * more). Retries, dead-lettering and idempotency are the same as for a
 * handler's result.
 *
 * Order: records of one partition are handled in offset order, but a
 * deferred record does not hold its partition up. Only records with the
 * same non-empty key wait for it (their handlers are called after fn of the
 * deferred one returns), so the side effects of one key stay in order.
 * Offsets advance only over finished records, as always.
 *
 * Bounds: at most LEV_MAX_DEFERRED records wait at once; at the bound the
 * worker stops fetching until some are resumed. A deferred record keeps
 * its idempotency lease (LEV_IDEMPOTENCY_LEASE_MS): the machinery's own
 * timeouts must end the work well within it.
 *
 * Every deferral must be resumed exactly once, and before
 * lev_worker_destroy. lev_worker_run waits for deferred records when it
 * stops (within LEV_SHUTDOWN_TIMEOUT_MS); fn of a deferral resumed after
 * that, or still queued when the worker is destroyed, is called with ctx
 * and ev NULL, only to release arg: the record is handled again by the
 * next owner. */
typedef lev_result_t (*lev_resume_fn)(lev_ctx_t *ctx, const lev_event_t *ev, void *arg);

/* The deferral of the record being handled, or NULL (with the reason set
 * as the context's error) when it cannot be deferred: outside a handler or
 * resume function, when it was already deferred in this call, or when
 * events were emitted in this call (emit in fn instead). */
LEV_API lev_deferral_t *lev_ctx_defer(lev_ctx_t *ctx);

/* Resumes a deferred record: fn(ctx, ev, arg) runs soon on the worker's
 * thread. Any thread, exactly once per deferral; the deferral is gone
 * after. */
LEV_API void lev_deferral_resume(lev_deferral_t *d, lev_resume_fn fn, void *arg);

/* ---- batched service state ----
 *
 * Keyed records in Redis (through the worker's REDIS_URL connection) that
 * handlers read and change with compare-and-set, at a constant number of
 * round trips per poll batch: one MGET before the batch for the keys its
 * records name, one pipelined round trip after it for every write queued.
 *
 * A handler reads with lev_ctx_state_get and queues a write with
 * lev_ctx_state_cas, then emits its outputs and returns LEV_RESULT_OK as
 * usual. The outputs are not sent until the write is in: once the batch
 * is handled, the writes of all its records go to Redis in order; a record
 * whose writes swapped sends its outputs, one whose write lost (another
 * writer changed the key since it was read) sends nothing and is handled
 * again as a transient failure, reading the key afresh. Meanwhile later
 * records with the same Kafka key wait, as behind a deferred record. So the
 * state is always written before the outputs go out, exactly as with a
 * direct compare-and-set (lev_store_cas), and a crash in between
 * redelivers the input to a handler that finds the state naming it. */

/* Prefetches, for the records of `type`, the key "<prefix><Kafka key>"
 * before each batch (order-service: "order-service:order:" and records
 * keyed by order id). Other keys are read on demand, one round trip each.
 * Before lev_worker_run. */
LEV_API int lev_worker_state_prefetch(lev_worker_t *w, const char *type, const char *prefix,
                                      lev_error_t *err);

/* The value of a state key as the batch read it, or as this call queued it
 * (*value malloc'd, NULL when absent). */
LEV_API int lev_ctx_state_get(lev_ctx_t *ctx, const char *key, char **value, lev_error_t *err);

/* Queues "set key to value (TTL ttl_ms, 0 none) if it still holds expect
 * (NULL: if it is absent)", done after the handler returns OK and before
 * its outputs are sent (see above). Not in a call that deferred. */
LEV_API int lev_ctx_state_cas(lev_ctx_t *ctx, const char *key, const char *expect,
                              const char *value, int64_t ttl_ms, lev_error_t *err);

/* Called exactly once, on the worker's thread, for a call that queued
 * state writes: committed 1 once they are all in (just before the outputs
 * are sent), 0 when they are not (the call failed, a write lost and the
 * event is handled again, or the worker stopped first). For what must
 * happen only once the state changed: counters, log lines. */
typedef void (*lev_commit_fn)(int committed, void *arg);

/* Registers fn(committed, arg) for this call (see lev_commit_fn); in a
 * call that queues no write, fn is called with 1 when it returns OK. */
LEV_API int lev_ctx_on_commit(lev_ctx_t *ctx, lev_commit_fn fn, void *arg, lev_error_t *err);

/* ---- circuit breakers: one per external dependency ----
 *
 * A breaker counts the failures of a dependency (a payment gateway, a
 * webhook) that the handlers report. After `failures` in a row it opens:
 * the records of the event types that need the dependency
 * (lev_worker_needs) are no longer handed to their handlers, and their
 * partitions are paused at the first such record. A transient failure of
 * such a record while the breaker is not closed burns no attempt: the
 * record is not retried, moved to a retry topic or dead-lettered for an
 * outage; it waits. After `open_ms` the breaker is half-open: one record is
 * handled as a probe. Its success closes the breaker and every waiting
 * partition resumes; its failure opens it again for twice as long (up to
 * `open_max_ms`). Each change of state is logged (warn when it opens, info
 * otherwise) with the breaker's name.
 *
 * Breakers belong to the worker's thread: report outcomes from handlers and
 * resume functions. */
typedef enum lev_breaker_state_e {
    LEV_BREAKER_CLOSED = 0,
    LEV_BREAKER_OPEN = 1,
    LEV_BREAKER_HALF_OPEN = 2,
} lev_breaker_state_t;

typedef struct lev_breaker_conf_s {
    int failures;        /* failures in a row that open it (default 5) */
    int64_t open_ms;     /* open this long before the first probe (default 5000) */
    int64_t open_max_ms; /* the longest it stays open after failed probes (default 60000) */
} lev_breaker_conf_t;

/* A new breaker named `name` (in logs; unique per worker); conf NULL or
 * zero fields take the defaults. Before run; the worker owns it. */
LEV_API lev_breaker_t *lev_worker_breaker(lev_worker_t *w, const char *name,
                                          const lev_breaker_conf_t *conf, lev_error_t *err);

/* Records of `type` need the dependency of breaker b (before run; a type
 * needs at most one breaker). */
LEV_API int lev_worker_needs(lev_worker_t *w, const char *type, lev_breaker_t *b, lev_error_t *err);

/* The dependency answered (any answer it gave on purpose, a decline or a
 * 4xx included), or did not (no answer, a timeout, a 5xx, a 429). `why`
 * (may be NULL) is logged when the breaker opens. */
LEV_API void lev_breaker_success(lev_breaker_t *b);
LEV_API void lev_breaker_failure(lev_breaker_t *b, const char *why);

/* Its state now (any thread: read whole), and how many times it opened. */
LEV_API lev_breaker_state_t lev_breaker_state(const lev_breaker_t *b);
LEV_API uint64_t lev_breaker_opened(const lev_breaker_t *b);
LEV_API const char *lev_breaker_state_name(lev_breaker_state_t s);

/* The store (NULL without Redis) and the service name, for side-effect keys. */
LEV_API lev_store_t *lev_ctx_store(lev_ctx_t *ctx);
LEV_API const char *lev_ctx_service(const lev_ctx_t *ctx);
/* The worker's service name (LEV_SERVICE, else the program's). */
LEV_API const char *lev_worker_service(const lev_worker_t *w);
LEV_API lev_codec_t *lev_ctx_codec(lev_ctx_t *ctx);

#ifdef __cplusplus
}
#endif
#endif
