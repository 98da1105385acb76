/*
 * Private parts of the worker, shared by its files:
 *
 *   worker.c          lifecycle, configuration calls and the run loop
 *   worker_pipeline.c the batch step: intake, classifying, handlers, delivery
 *                     reports, finishing in offset order, offsets
 *   worker_record.c   records: their headers, allocation, giving them up
 *   worker_claims.c   the idempotency round trip: keys to claim and settle
 *   worker_ctx.c      the handler context (lev_ctx_*)
 *   worker_route.c    retry and dead-letter records and their lev_* headers
 *   worker_parts.c    partition state, pausing, rebalances (eager and cooperative)
 *   worker_admin.c    topics: creation, size limits, metadata warm-up
 *   worker_defer.c    deferred records (lev_ctx_defer), per-key waiting,
 *                     circuit breakers
 *   worker_signal.c   SIGTERM/SIGINT for every worker of the process
 *   worker_observe.c  metrics, /healthz and /readyz (the HTTP endpoint's
 *                     thread reads only atomics and what is handed to it
 *                     under obs.stats_mu)
 *
 * Everything here runs on the thread that runs lev_worker_run, except
 * lev_worker_stop and the signal handler, which only set the stop flag and
 * write to the wake pipe, and lev_deferral_resume, which queues under
 * defer_mu and writes to the wake pipe.
 */
#ifndef LEV_WORKER_INTERNAL_H
#define LEV_WORKER_INTERNAL_H

#include "http_internal.h"
#include "kafka_internal.h"
#include "metrics_internal.h"
#include "producer_internal.h"
#include "store_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define W_MAX_HANDLERS 64
#define W_MAX_TOPICS 32
#define W_MAX_OUTPUTS 32
#define W_NAME_MAX 250
#define W_ID_MAX (LEV_EVENT_ID_MAX + 1)
#define W_CLAIM_RESULTS 4 /* the lev_claim_t values */

/* ======================================================================
 * Handlers
 * ====================================================================== */

typedef struct whandler_s {
    char *type;
    lev_handler_fn fn;
    void *opaque;
    int has_policy;
    lev_retry_policy_t policy;
    lev_breaker_t *breaker; /* the dependency its records need, or NULL */
    char *state_prefix;     /* lev_worker_state_prefetch: "<prefix><Kafka key>", or NULL */
    /* metrics (NULL without the endpoint): results by lev_result_t, and
     * duplicates skipped; the duration of its calls */
    lev_mx_series_t *mx_result[3], *mx_duplicate, *mx_seconds;
} whandler_t;

/* ======================================================================
 * Records
 * ====================================================================== */

typedef struct wpart_s wpart_t;
typedef struct wrec_s wrec_t;
typedef struct wspan_s wspan_t; /* worker_trace.c */

typedef enum wrec_state_e {
    REC_NEW = 0,  /* taken from the consumer, not handled yet */
    REC_WAIT,     /* its outputs (or retry or dead-letter record) wait for reports */
    REC_DONE,     /* finished: its offset may be stored once the ones before it are */
    REC_DEFERRED, /* its handler deferred it: waits for lev_deferral_resume */
    REC_PARKED,   /* not handled yet: an earlier record of its key is deferred */
} wrec_state_t;

/* What the idempotency claim of a record is. */
typedef enum wclaim_e {
    CLAIM_NONE = 0, /* no store, or not a record to claim */
    CLAIM_NEEDED,   /* to be claimed in this batch's round trip */
    CLAIM_OWNED,    /* our lease */
    CLAIM_DONE,     /* handled before: skip */
    CLAIM_BUSY,     /* another live owner: wait */
    CLAIM_DEAD,     /* dead-lettered before: skip */
} wclaim_t;

/* What the delivery reports a record waits for belong to. */
typedef enum wroute_e {
    ROUTE_NONE = 0,
    ROUTE_OUTPUTS,  /* the events its handler emitted */
    ROUTE_RETRY,    /* the record, moved to a retry topic */
    ROUTE_DLQ,      /* the record, dead-lettered */
    ROUTE_DLQ_BARE, /* dead-lettered without its value (it was too large) */
} wroute_t;

/* Why a record is being moved to a retry or dead-letter topic (allocated
 * only for records that fail). */
typedef struct wfail_s {
    const char *error_class; /* static string */
    char *message;
    int attempts;
    int level; /* retry topic level, 0 for the dead-letter topic */
    int64_t first_failure_ms, due_ms;
    size_t omitted_bytes; /* ROUTE_DLQ_BARE: size of the value left out */
} wfail_t;

/* A header of the input, as pointers into the message (valid while the
 * message lives); len 0 and ptr NULL when absent. */
typedef struct whdr_s {
    const char *ptr;
    size_t len;
} whdr_t;

enum {
    H_ID,
    H_SOURCE,
    H_CORRELATION,
    H_TRACE,
    H_ORIG_TOPIC,
    H_ORIG_PARTITION,
    H_ORIG_OFFSET,
    H_ORIG_TIMESTAMP,
    H_ATTEMPTS,
    H_FIRST_FAILURE,
    H_DUE,
    H_REDRIVE_FROM,
    H_COUNT
};

/* One record taken from the consumer, from intake to its finish. Its
 * address is the handle delivery reports refer to, so it lives until every
 * report is in, even after its partition gave it up (`part` is NULL then). */
struct wrec_s {
    rd_kafka_message_t *m;
    lev_worker_t *w;
    wpart_t *part;            /* NULL once abandoned */
    wrec_t *next;             /* partition queue, offset order (free list when unused) */
    wrec_t *ready_next;       /* the worker's ready list */
    int outstanding;          /* delivery reports due (+1 while its records are being sent) */
    uint8_t state;            /* wrec_state_t */
    uint8_t claim;            /* wclaim_t */
    uint8_t route;            /* wroute_t */
    uint8_t ready;            /* on the ready list */
    uint8_t handled;          /* its handler returned OK: complete the claim on success */
    uint8_t in_batch;         /* referenced by the batch being handled: freed at its end */
    uint8_t waiting;          /* on its partition's waiting list (deferred or parked) */
    wrec_t *wait_next;        /* that list, in offset order */
    lev_deferral_t *deferral; /* REC_DEFERRED: the one not resumed yet */
    int fail_code;            /* first failed report (LEV_ERR_*), 0 when none */
    char *fail_text;          /* its reason */
    wfail_t *fail;            /* routing to a retry or dead-letter topic, or NULL */
    const lev_schema_t *writer;
    const whandler_t *handler;
    int frame_rc;     /* the value's framing and schema: 0, or why it cannot be decoded */
    uint8_t bad_id;   /* its ce_id or ce_source cannot identify it (see LEV_EVENT_ID_MAX) */
    int64_t renew_at; /* CLAIM_OWNED: monotonic ms when its lease is extended next */
    size_t bytes;     /* counted against the in-flight bound */
    wspan_t *span;    /* its trace span while tracing is on, else NULL */
    whdr_t h[H_COUNT];
    char id[W_ID_MAX];
};

/* ======================================================================
 * Partitions
 * ====================================================================== */

/* Reasons a partition is paused; paused in librdkafka while any is set. */
enum {
    PAUSE_HOLD = 1,     /* a record waits (backoff, due time, busy claim): seeked back to it */
    PAUSE_STORE = 2,    /* Redis is unavailable */
    PAUSE_FULL = 4,     /* the in-flight bound is reached */
    PAUSE_STOP = 8,     /* the worker is stopping */
    PAUSE_BREAKER = 16, /* a record waits for a circuit breaker (`breaker`) to let it through */
};

struct wpart_s {
    char *topic;
    int32_t partition;
    int level; /* retry level of the topic, 0 for an input topic */
    wrec_t *head, *tail;
    int64_t next_offset; /* offset after the last record taken, -1 unknown */
    unsigned pause;      /* PAUSE_* */
    int64_t resume_at;   /* PAUSE_HOLD: monotonic ms */
    /* in-process attempts of the record at retry_offset */
    int64_t retry_offset;
    int retry_attempts;
    int64_t first_failure_ms;
    int produce_failures;   /* reports failed in a row (backoff of handling again) */
    wrec_t *waiting;        /* deferred and parked records, in offset order */
    lev_breaker_t *breaker; /* PAUSE_BREAKER: the breaker it waits for */
    uint8_t assigned;
    uint8_t dirty;
    lev_mx_series_t *mx_consumed, *mx_finished, *mx_age; /* NULL without the endpoint */
    wpart_t *hnext;                                      /* hash chain */
    wpart_t *dnext;                                      /* dirty list */
};

/* ======================================================================
 * The handler context
 * ====================================================================== */

/* A compare-and-set a handler queued (lev_ctx_state_cas). */
typedef struct wstate_op_s {
    char *key, *expect, *value; /* expect NULL: only when absent */
    int64_t ttl_ms;
} wstate_op_t;

/* A function to call once a record's state writes are in, or are not. */
typedef struct wcommit_s {
    lev_commit_fn fn;
    void *arg;
} wcommit_t;

typedef struct wout_s {
    size_t topic, key, key_len, value, value_len; /* offsets into the context's buffer */
    lev_event_headers_t eh;
} wout_t;

struct lev_ctx_s {
    lev_worker_t *w;
    const lev_event_t *ev;
    wrec_t *rec;              /* the record being handled */
    lev_deferral_t *deferral; /* made by lev_ctx_defer in this call */
    wout_t **out;             /* each allocated once and kept: its headers point into itself */
    size_t nout, capout;
    avro_value_t *values;
    size_t nvalues, capvalues;
    char *buf; /* topics, keys and encoded values of the outputs */
    size_t len, cap;
    wstate_op_t *state; /* state writes queued in this call */
    size_t nstate, capstate;
    wcommit_t *commits; /* lev_ctx_on_commit in this call */
    size_t ncommits, capcommits;
    int registry_wait; /* an emit's schema is not registered yet: the record waits */
    char error[512];
};

/* ======================================================================
 * The worker
 * ====================================================================== */

typedef struct wstats_s {
    _Atomic uint64_t received, handled, skipped_duplicates, emitted, retried_inprocess,
        sent_to_retry, dead_lettered, batches, finished, produce_failures, rebalances,
        given_up_waiting, in_flight_peak, deferred, deferred_peak, breaker_waits, state_conflicts;
} wstats_t;

/* ======================================================================
 * Deferrals and breakers
 * ====================================================================== */

struct lev_deferral_s {
    lev_worker_t *w;
    wrec_t *r; /* NULL once the worker let go of it (destroyed before the resume) */
    lev_resume_fn fn;
    void *arg;
    lev_deferral_t *next;                /* the resumed queue */
    lev_deferral_t *all_prev, *all_next; /* the worker's deferrals not taken back yet */
    int internal; /* a record waiting for its state writes: not counted as deferred */
};

struct lev_breaker_s {
    lev_worker_t *w;
    char *name;
    lev_breaker_conf_t conf;
    _Atomic int state;   /* lev_breaker_state_t */
    int fails;           /* failures in a row */
    int64_t open_for_ms; /* how long it stays open this time */
    int64_t probe_at;    /* OPEN: monotonic ms of the next probe */
    const wrec_t *probe; /* HALF_OPEN: the record probing (compared, never read) */
    int64_t probe_since;
    _Atomic uint64_t opened;
    lev_breaker_t *next;
};

/* ======================================================================
 * Observation: metrics and probes (worker_observe.c)
 * ====================================================================== */

/* Where the worker is in its life, for the probes. */
enum { OBS_STARTING = 0, OBS_RUNNING, OBS_STOPPING, OBS_STOPPED };

typedef struct wobs_s {
    lev_mx_t *mx;     /* always: the application's counters live here too */
    int on;           /* the endpoint is on: the worker's own instruments are made */
    lev_http_t *http; /* the endpoint, NULL when off */
    /* the worker's families and the series it knows in advance */
    lev_mx_family_t *f_consumed, *f_finished, *f_handled, *f_seconds, *f_dead, *f_age, *f_retries;
    lev_mx_series_t *retries[LEV_RETRY_LEVELS_MAX + 1]; /* [0]: in process */
    lev_mx_series_t *produce_failures[3];               /* outputs, retry, dead-letter */
    lev_mx_series_t *claims[W_CLAIM_RESULTS];           /* owned, done, busy, dead-lettered */
    lev_mx_series_t *rebalances[3];                     /* assign, revoke, lost */
    lev_mx_series_t *batch;
    lev_mx_series_t *in_flight, *deferred, *assigned_parts;
    lev_mx_series_t *paused[5]; /* by PAUSE_* bit */
    lev_mx_family_t *f_breaker;
    lev_mx_series_t *spans_exported, *spans_dropped, *span_exports_failed; /* traces on */
    int64_t tick_at; /* monotonic ms of the next gauge update */
    /* probes: written by the worker's thread, read by the endpoint's */
    _Atomic int64_t alive_ms; /* monotonic ms the loop last turned */
    _Atomic int state;        /* OBS_* */
    _Atomic int joined;       /* an assignment came (partitions or none) and was not lost */
    _Atomic int store_down;   /* the worker waits for Redis */
    _Atomic int nassigned;
    int64_t stall_ms;          /* LEV_HEALTH_STALL_MS */
    int64_t stats_interval_ms; /* statistics.interval.ms of the consumer, 0: none */
    pthread_mutex_t stats_mu;  /* guards the two below; held only to swap them */
    int stats_mu_ok;
    char *stats;         /* the latest statistics JSON of the consumer */
    int64_t stats_at_ms; /* monotonic ms it came */
    char *redis_url;     /* for the readiness check's own connection */
    lev_store_t *probe;  /* that connection: the endpoint's thread only */
    int64_t probe_at_ms; /* when Redis was last asked */
    char probe_err[256]; /* "" when it answered */
} wobs_t;

/* Counters have one writer (the worker's thread); readers on other threads
 * see each one whole. */
#define W_STAT_ADD(w, field, n)                                                                    \
    atomic_store_explicit(&(w)->stats.field,                                                       \
                          atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + (n),     \
                          memory_order_relaxed)

/* A growable list of strings in one buffer (keys to settle or claim). */
typedef struct wkeys_s {
    char *buf;
    size_t len, cap;
    size_t *off;
    size_t n, capn;
    const char **ptrs; /* filled by wkeys_ptrs */
    size_t capp;
} wkeys_t;

struct lev_worker_s {
    char *service, *group, *source;
    lev_config_t conf; /* own copy of the scalar settings; strings above */
    lev_schemas_t *schemas;
    lev_codec_t *codec;
    /* the schema registry (worker_schemas.c), NULL without one; the
     * (topic, schema) pairs the handlers declared they emit */
    lev_registry_t *registry;
    struct w_emit_s {
        char *topic;
        const lev_schema_t *schema;
    } * emits;
    size_t nemits, capemits;
    int64_t registry_warn_at; /* next "registry unavailable" warning */
    lev_producer_t *producer;
    rd_kafka_conf_t *producer_conf; /* built at new, the client made at run */
    int user_max_message_bytes;     /* KAFKA_MESSAGE_MAX_BYTES was given */
    lev_store_t *store;             /* the engine's connection: claims and settles */
    lev_store_t *app_store;         /* the handlers' connection (lev_ctx_store) */
    /* batched service state (worker_state.c): a handler has a prefetch
     * prefix; the batch's cache; the records waiting for their writes */
    int has_state_prefix;
    struct scache_ent_s *scache;
    size_t scache_n, scache_cap;
    void **spending;
    size_t nspending, capspending;
    size_t nheld_state; /* records waiting for their state writes (flushed or not) */
    /* traces (worker_trace.c): the exporter, NULL when off; finished spans
     * not handed over yet */
    struct lev_tracer_s *tracer;
    struct lev_span_s *spans;
    size_t nspans, capspans;
    rd_kafka_t *rk;
    rd_kafka_queue_t *consumer_q;

    whandler_t handlers[W_MAX_HANDLERS];
    size_t nhandlers;
    const whandler_t **by_schema; /* handler of each loaded schema (by index), built at run */
    avro_value_t *values;         /* decoded input of each reader schema, reused */
    uint8_t *have_value;
    size_t nschemas;
    char *topics[W_MAX_TOPICS];
    size_t ntopics;
    char *outputs[W_MAX_OUTPUTS];
    size_t noutputs;

    /* partitions */
    wpart_t **buckets;
    size_t nbuckets, nparts;
    wpart_t *dirty;
    int cooperative;

    /* records */
    wrec_t *free_recs;
    wrec_t *ready;
    size_t inflight, inflight_bytes;
    wrec_t **batch; /* being taken and classified; its claims go out next */
    size_t nbatch;
    wrec_t **prev; /* claimed while the batch before it was handled: handled next */
    size_t nprev;

    /* Redis: while one exchange is under way (settles, then the claims of
     * `prev`), the next settles and claims collect in the other lists */
    wkeys_t done[2], rel[2], renew[2], claims[2];
    /* dead-lettered records' keys and their marks; the marks of the
     * claims (empty unless a redriven record is among them, see
     * lev_store_lists_t) */
    wkeys_t dead[2], deadmark[2], claimmark[2];
    int acc;                /* index of the lists collecting */
    int64_t renew_sweep_at; /* monotonic ms of the next look for leases to extend */
    int *renew_ok;
    size_t cap_renew_ok;
    int exchanging; /* an exchange was begun and not ended */
    lev_claim_t *claim_res;
    size_t cap_res;
    int store_down;
    int64_t store_retry_at;
    int store_delay_ms;

    /* the loop */
    int wake[2]; /* pipe: librdkafka queues and lev_worker_stop write to it */
    volatile sig_atomic_t stop;
    int running;
    int full;
    int max_poll_interval_ms;
    /* the consumer's last client error (its error callback, on the
     * worker's thread), and whether it was a refusal of our credentials
     * or of our TLS handshake: a start stops on one */
    char client_error[512];
    int client_error_fatal;
    lev_ctx_t ctx;

    /* deferred records: resumed ones are queued by any thread */
    pthread_mutex_t defer_mu;
    int defer_mu_ok;
    lev_deferral_t *resumed, *resumed_tail;
    lev_deferral_t *deferrals; /* every deferral of a waiting record (worker thread only) */
    size_t ndeferred;
    lev_breaker_t *breakers;
    wstats_t stats;
    wobs_t obs;
};

/* ======================================================================
 * Between the files
 * ====================================================================== */

/* worker.c */
const lev_retry_policy_t *lev_w_policy(const lev_worker_t *w, const whandler_t *h);
/* Sleeps up to ms (0: only looks), woken early by a stop request or a
 * signal; returns 1 when the worker is asked to stop. */
int lev_w_sleep(lev_worker_t *w, int ms);
int lev_w_retry_level(const lev_worker_t *w, const char *topic);
void lev_w_wake(lev_worker_t *w);

/* worker_pipeline.c */
wrec_t *lev_w_rec_take(lev_worker_t *w, rd_kafka_message_t *m);
int lev_w_pipeline_step(lev_worker_t *w);
void lev_w_pipeline_drain(lev_worker_t *w);
void lev_w_delivery_cb(void *opaque, int err, const char *errstr, int32_t partition,
                       int64_t offset);
void lev_w_process_ready(lev_worker_t *w);
/* Puts r on the ready list: acted on once nothing is outstanding. */
void lev_w_ready_push(lev_worker_t *w, wrec_t *r);
void lev_w_advance(lev_worker_t *w);
int lev_w_serve_producer(lev_worker_t *w);

/* worker_record.c */
wrec_t *lev_w_rec_alloc(lev_worker_t *w);
void lev_w_rec_free(lev_worker_t *w, wrec_t *r);
void lev_w_scan_headers(wrec_t *r);
int64_t lev_w_header_i64(const wrec_t *r, int which, int64_t def, int64_t min, int64_t max);
const char *lev_w_header_str(const wrec_t *r, int which, char *buf, size_t size);
/* Gives up `from` and every record after it in p's queue (a record still
 * referenced by a batch or waiting for reports is freed later). */
void lev_w_abandon_from(lev_worker_t *w, wpart_t *p, wrec_t *from);
/* Gives r and what follows up, seeks its partition back to r and pauses it
 * until resume_at (monotonic ms). */
void lev_w_hold(lev_worker_t *w, wrec_t *r, int64_t resume_at);

/* worker_record.c: what is wrong with a record's ce_id or ce_source, in
 * buf (NULL when nothing is). */
const char *lev_w_id_problem(const wrec_t *r, char *buf, size_t size);

/* worker_claims.c */
int lev_w_claim_queue(lev_worker_t *w, wrec_t *r); /* 0, or -1: no memory */
size_t lev_w_claims_queued(const lev_worker_t *w);
void lev_w_claims_drop(lev_worker_t *w);
/* Queues what r's claim becomes now that r is finished or given up. */
void lev_w_settle_rec(lev_worker_t *w, wrec_t *r);
int lev_w_pending_settles(const lev_worker_t *w);
int lev_w_exchange_begin(lev_worker_t *w, lev_error_t *err);
int lev_w_exchange_end(lev_worker_t *w, lev_error_t *err);
/* Queues lease extensions for the claims of records still at work after a
 * third of the lease (deferred, parked, waiting for acknowledgements), at
 * most every sixth of it; they go with the next round trip. Returns the
 * ms until the next look. */
int lev_w_renew_sweep(lev_worker_t *w);
void lev_w_hold_unclaimed(lev_worker_t *w, wrec_t **recs, size_t n);
void lev_w_store_lost(lev_worker_t *w, const lev_error_t *err);
/* A settle-only round trip now (ends one under way first). */
int lev_w_settle(lev_worker_t *w);
void lev_w_keys_free(wkeys_t *k);

/* worker_ctx.c */
void lev_w_ctx_reset(lev_ctx_t *ctx);
void lev_w_ctx_free(lev_ctx_t *ctx);
const char *lev_w_ctx_str(const lev_ctx_t *ctx, size_t off);
/* Copies an output slot (its headers point into itself). */
void lev_w_wout_copy(wout_t *dst, const wout_t *src);
/* Puts outputs kept aside back into the context (as if just emitted). */
int lev_w_ctx_restore(lev_ctx_t *ctx, const char *buf, size_t len, const wout_t *out, size_t nout);

/* ---- batched service state (worker_state.c) ---- */

/* Reads the state keys of a batch's records into the cache (one MGET). */
void lev_w_state_prefetch(lev_worker_t *w, wrec_t **recs, size_t n);
/* Drops what the context queued (its handler did not return OK); its
 * commit functions are told so. */
void lev_w_ctx_state_clear(lev_ctx_t *ctx);
/* Calls the context's commit functions with `committed` and forgets them. */
void lev_w_ctx_commits_run(lev_ctx_t *ctx, int committed);
/* r's handler returned OK with writes queued: r waits for them, its
 * outputs kept aside. 0, or -1 out of memory (nothing changed). */
int lev_w_state_hold(lev_worker_t *w, wrec_t *r, lev_ctx_t *ctx);
int lev_w_grow_pending(lev_worker_t *w);
/* Sends every queued write in one round trip and resumes their records. */
void lev_w_state_flush(lev_worker_t *w);
void lev_w_state_cache_clear(lev_worker_t *w);

/* ---- traces (worker_trace.c) ---- */

/* The traces' series of the metrics (after the tracer is made). */
int lev_w_obs_traces(lev_worker_t *w, lev_error_t *err);

/* Starts r's span at its handler's first call (no-op with tracing off). */
void lev_w_span_start(lev_worker_t *w, wrec_t *r, int attempt);
/* The traceparent of an output of r to topic (a publish span when r is
 * sampled). -1 when r has no span: the caller makes one. */
int lev_w_span_output(const wrec_t *r, const char *topic, char traceparent[64]);
/* Ends r's spans (finished, or given up) and keeps them for the exporter. */
void lev_w_span_end(lev_worker_t *w, wrec_t *r);
/* Hands the finished spans to the exporter (once per turn). */
void lev_w_spans_flush(lev_worker_t *w);
void lev_w_state_free(lev_worker_t *w);

/* worker_route.c: queues the record on its retry or dead-letter topic as
 * r->fail says; 0 when queued (r waits for its report), else an error
 * code with the reason logged. */
int lev_w_route(lev_worker_t *w, wrec_t *r);
/* Sets r->fail (replacing an earlier one). */
int lev_w_fail(wrec_t *r, const char *error_class, const char *message, int attempts, int level,
               int64_t first_failure_ms, int64_t due_ms);

/* worker_parts.c */
wpart_t *lev_w_part_find(lev_worker_t *w, const char *topic, int32_t partition);
wpart_t *lev_w_part_get(lev_worker_t *w, const char *topic, int32_t partition);
void lev_w_pause(lev_worker_t *w, wpart_t *p, unsigned why);
void lev_w_unpause(lev_worker_t *w, wpart_t *p, unsigned why);
void lev_w_pause_all(lev_worker_t *w, unsigned why);
void lev_w_unpause_all(lev_worker_t *w, unsigned why);
int lev_w_resume_due(lev_worker_t *w, int cap_ms);
void lev_w_seek(lev_worker_t *w, wpart_t *p, int64_t offset);
void lev_w_mark_dirty(lev_worker_t *w, wpart_t *p);
void lev_w_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque);
void lev_w_parts_free(lev_worker_t *w);

/* worker_pipeline.c: runs the resume function of d (after the worker took
 * it off the resumed queue). */
void lev_w_resume(lev_worker_t *w, lev_deferral_t *d);
/* Handles the parked records of p whose keys no longer wait. */
void lev_w_wake_parked(lev_worker_t *w, wpart_t *p);

/* worker_defer.c */
/* Runs what was resumed since the last call; the number run. */
int lev_w_defer_process(lev_worker_t *w);
/* r was deferred by its handler: it waits, on its partition's list. */
void lev_w_defer_wait(lev_worker_t *w, wrec_t *r, lev_deferral_t *d);
/* d was resumed: r (d->r) no longer waits for it and is REC_NEW again. */
void lev_w_defer_untrack(lev_worker_t *w, lev_deferral_t *d);
/* A record whose deferral will not be run: given up (fetched again). */
void lev_w_defer_let_go(lev_worker_t *w, wrec_t *r);
/* 1 when an earlier record of r's key waits in its partition. */
int lev_w_key_waits(const wrec_t *r);
void lev_w_park(wrec_t *r);
void lev_w_waiting_remove(wpart_t *p, wrec_t *r);
/* Drops every record from offset `from` on from p's waiting list. */
void lev_w_waiting_cut(wpart_t *p, int64_t from);
/* At destroy: runs what was resumed with a NULL context and lets go of
 * records whose deferrals were never resumed. */
void lev_w_defer_shutdown(lev_worker_t *w);
/* 1 when r may be handed to its handler now as far as its breaker goes;
 * else the partition waits for the breaker at r. */
int lev_w_breaker_admit(lev_worker_t *w, wrec_t *r);
/* r's transient failure while its breaker is not closed: r waits for it. */
int lev_w_breaker_blocks(const wrec_t *r);
void lev_w_breaker_hold(lev_worker_t *w, wrec_t *r);
/* r's result is in (not deferred): a probe that said nothing lets another
 * record probe. */
void lev_w_breaker_done(wrec_t *r);
/* Half-opens breakers whose time came; ms until the next such time. */
int lev_w_breakers_tick(lev_worker_t *w, int cap_ms);
void lev_w_breakers_free(lev_worker_t *w);

/* worker_schemas.c: the schema registry. init makes it from the
 * environment (after the codec); start registers the declared emits,
 * waiting while the registry cannot be asked (LEV_W_STOPPED when stopped
 * meanwhile); free after the codec is destroyed. */
int lev_w_registry_init(lev_worker_t *w, lev_error_t *err);
int lev_w_registry_start(lev_worker_t *w, lev_error_t *err);
void lev_w_registry_free(lev_worker_t *w);
/* A record's writer schema could not be looked up because the registry is
 * out: logs it (at most every 10 s). */
void lev_w_registry_unavailable(lev_worker_t *w, const lev_error_t *err);

/* worker_admin.c: waits for the broker, creates the failure topics, makes
 * the producer. LEV_W_STOPPED when asked to stop meanwhile. */
#define LEV_W_STOPPED 1
int lev_w_prepare_topics(lev_worker_t *w, lev_error_t *err);

/* worker_observe.c */
/* Makes the metrics registry and, with conf->http_addr, the worker's
 * instruments (after its stores, before its consumer). */
int lev_w_obs_init(lev_worker_t *w, const lev_config_t *conf, lev_error_t *err);
/* Starts the endpoint of conf->http_addr (nothing without one). */
int lev_w_obs_serve(lev_worker_t *w, const lev_config_t *conf, lev_error_t *err);
/* Stops the endpoint (first, before anything it reads is freed) and frees. */
void lev_w_obs_free(lev_worker_t *w);
/* The consumer's configuration gets the statistics callback (with the
 * endpoint on). */
void lev_w_obs_consumer_conf(lev_worker_t *w, rd_kafka_conf_t *kc);
/* Series of each handler, once they are all registered (at run). */
void lev_w_obs_handlers(lev_worker_t *w);
/* A partition was assigned: its series. */
void lev_w_obs_part(lev_worker_t *w, wpart_t *p);
/* The loop turned (with `now`, monotonic ms); gauges are updated about
 * once a second. */
void lev_w_obs_tick(lev_worker_t *w, int64_t now);
void lev_w_obs_state(lev_worker_t *w, int state);
/* A record went to the dead-letter topic with this class (acknowledged). */
void lev_w_obs_dead_letter(lev_worker_t *w, const char *error_class);

/* The loop is alive at now_ms (cheap: one relaxed store). */
static inline void lev_w_obs_alive(lev_worker_t *w, int64_t now_ms)
{
    if (w->obs.on)
        atomic_store_explicit(&w->obs.alive_ms, now_ms, memory_order_relaxed);
}

/* The same, reading the clock only with the endpoint on. */
static inline void lev_w_obs_beat(lev_worker_t *w)
{
    if (w->obs.on)
        atomic_store_explicit(&w->obs.alive_ms, lev_mono_ms(), memory_order_relaxed);
}

/* worker_signal.c */
int lev_w_signals_add(lev_worker_t *w);
void lev_w_signals_remove(lev_worker_t *w);
int lev_w_signals_pending(void);
void lev_w_signals_dispatch(void);
int lev_w_signals_fd(void);

/* The librdkafka configurations of a worker's consumer and producer (for
 * the project's benchmarks, which compare the worker with a bare client
 * set up the same way). */
rd_kafka_conf_t *lev_w_consumer_conf_new(const lev_config_t *conf, lev_error_t *err);
rd_kafka_conf_t *lev_w_producer_conf_new(const lev_config_t *conf, lev_error_t *err);

/* Private to the project's tests: the worker's current producer client
 * (NULL before run), to inject faults. */
rd_kafka_t *lev_worker_producer_client(lev_worker_t *w);

#endif
