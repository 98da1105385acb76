/*
 * evctl: the operator CLI of the event stack. Shared declarations of its
 * files: argument parsing (args.c), output, signals, rate and progress
 * (util.c), Kafka clients and partition ranges (kafka.c, scan.c), records
 * as JSON (record.c), the topics description (topology.c) and one file per
 * command.
 *
 * Conventions: machine output is one JSON object per line on stdout;
 * diagnostics and progress go to stderr. Every command returns one of the
 * exit codes below.
 */
#ifndef EVCTL_H
#define EVCTL_H

#include <libevents.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>

/* ======================================================================
 * Exit codes (sysexits.h values, documented in `evctl --help`)
 * ====================================================================== */

#define EVCTL_EXIT_OK 0
#define EVCTL_EXIT_USAGE 64        /* bad command line */
#define EVCTL_EXIT_DATA 65         /* bad input data (line, schema, missing topic ...) */
#define EVCTL_EXIT_UNAVAILABLE 69  /* broker (or Redis) unavailable, delivery failed */
#define EVCTL_EXIT_INTERNAL 70     /* internal error */
#define EVCTL_EXIT_INTERRUPTED 130 /* stopped by SIGINT or SIGTERM */

/* ======================================================================
 * Commands and their options
 * ====================================================================== */

#define EVCTL_MAX_OPTS 32
#define EVCTL_MAX_REPEAT 32
#define EVCTL_MAX_POS 8

/* One option of a command: `--name ARG` (arg NULL for a switch). */
typedef struct evctl_opt_s {
    const char *name;
    const char *arg;
    const char *help;
    int repeat; /* may be given more than once (values also split at commas) */
} evctl_opt_t;

typedef struct evctl_ctx_s evctl_ctx_t;
typedef struct evctl_args_s evctl_args_t;

typedef struct evctl_cmd_s {
    const char *name;        /* "tail", "dlq list" */
    const char *usage;       /* "TOPIC [options]" */
    const char *summary;     /* one line for the command list */
    const char *help;        /* paragraphs for `evctl <cmd> --help` */
    const evctl_opt_t *opts; /* ends with {NULL} */
    int min_pos, max_pos;    /* positional arguments */
    int (*run)(evctl_ctx_t *ctx, const evctl_args_t *args);
} evctl_cmd_t;

/* Parsed command line of one command. */
struct evctl_args_s {
    const evctl_cmd_t *cmd;
    const evctl_opt_t *opts[EVCTL_MAX_OPTS];
    const char *vals[EVCTL_MAX_OPTS][EVCTL_MAX_REPEAT];
    int nvals[EVCTL_MAX_OPTS];
    int nopts;
    const char *pos[EVCTL_MAX_POS];
    int npos;
    char **owned; /* copies of repeatable values, split at commas */
    size_t nowned;
};

/* Options every command takes (--bootstrap, --schemas, --quiet ...). */
extern const evctl_opt_t evctl_common_opts[];

/* Parses argv (after the command name) against the command's options and
 * the common ones. Returns 0, EVCTL_EXIT_USAGE after printing an error that
 * names the flag, or -1 when --help was asked (help already printed).
 * Release with evctl_args_clear. */
int evctl_args_parse(evctl_args_t *args, const evctl_cmd_t *cmd, int argc, char **argv);
void evctl_args_clear(evctl_args_t *args);

/* The last value of an option, or NULL when absent. */
const char *evctl_opt(const evctl_args_t *args, const char *name);
/* 1 when a switch (or an option) was given. */
int evctl_flag(const evctl_args_t *args, const char *name);
/* All values of a repeatable option; *n gets their count. */
const char *const *evctl_opt_all(const evctl_args_t *args, const char *name, int *n);

/* Parses an option value as a non-negative integer within [min, max];
 * prints a usage error naming the flag and returns EVCTL_EXIT_USAGE. */
int evctl_opt_long(const evctl_args_t *args, const char *name, long long min, long long max,
                   long long def, long long *out);

/* Prints `evctl <cmd> --help`. */
void evctl_cmd_help(const evctl_cmd_t *cmd, FILE *out);

/* ======================================================================
 * Context shared by the commands
 * ====================================================================== */

struct evctl_ctx_s {
    lev_config_t conf;       /* from the environment (service "evctl"), flags applied */
    int quiet;               /* --quiet: no progress, no summaries */
    int progress;            /* progress lines: stderr is a TTY and not quiet */
    int timeout_ms;          /* --timeout: broker requests */
    const char *topics_file; /* --topics-file, may be NULL */
    lev_schemas_t *schemas;  /* loaded by evctl_load_schemas */
    lev_codec_t *codec;
    lev_registry_t *registry; /* LEV_SCHEMA_REGISTRY_URL or --registry; NULL: none */
};

/* Loads the schemas of conf.schema_dirs once, and notes (on stderr) the
 * older versions (history/) the current version of their name cannot read
 * by lev_schema_check_resolvable: the codec refuses their values.
 * Returns 0 or an exit code after printing the error. */
int evctl_load_schemas(evctl_ctx_t *ctx);

/* The schema registry (made by evctl_load_schemas): 0, or an exit code
 * after saying that none is configured. */
int evctl_need_registry(evctl_ctx_t *ctx);

/* For a dry run in the Confluent format (registry.c): 0 when `schema` is
 * registered under the subject of `topic`, or the registry says it would
 * accept it there; else the registry's error (LEV_ERR_RESOLVE with its
 * reasons when incompatible). Asks once per subject and schema. */
int evctl_registry_would_accept(evctl_ctx_t *ctx, const char *topic, const lev_schema_t *schema,
                                lev_error_t *err);

/* Called for each (current schema, subject) pair: `topic` is NULL with the
 * record strategy. Returns 0 to go on, or an exit code to stop. */
typedef int (*evctl_subject_fn)(evctl_ctx_t *ctx, void *opaque, const lev_schema_t *schema,
                                const char *subject, const char *topic);

/* Calls fn for every current schema and every subject it is written under
 * (registry.c): with the record strategy its full name; with topic and
 * topic_record, one subject per topic of the topics description whose
 * "types" patterns match the schema's name (a schema no topic takes is
 * noted on stderr and skipped). Needs ctx->registry. Returns 0, an exit code
 * after printing the error (loading the topics description), or fn's. */
int evctl_registry_foreach_subject(evctl_ctx_t *ctx, evctl_subject_fn fn, void *opaque);

/* Why `schema` may not be registered under `subject`, as a new JSON array
 * of strings: the registry's `reasons` ("; "-separated, as
 * lev_registry_check gives them), or when it gave none (Apicurio does not),
 * libevents' check against the subject's latest version in the
 * direction(s) of its compatibility level ("backward: field: reason").
 * NULL when out of memory. */
json_t *evctl_registry_problems(evctl_ctx_t *ctx, const char *subject, const lev_schema_t *schema,
                                const char *reasons);

/* Prints a registry error about `subject` and returns its exit code: 69
 * when the registry is unreachable or failing (or answered unexpectedly),
 * 70 when out of memory. */
int evctl_registry_fail(evctl_ctx_t *ctx, const char *subject, const lev_error_t *err);

/* ======================================================================
 * Output, errors, signals (util.c)
 * ====================================================================== */

/* Prints "evctl: <message>" on stderr and returns code. */
int evctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "evctl: <message>" on stderr (unless quiet). */
void evctl_note(const evctl_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes a JSON value as one compact line on stdout and flushes; steals
 * the reference. Returns 0, or -1 when stdout is gone (closed pipe). */
int evctl_out(json_t *j);

/* Writes a JSON value indented (for people) on stdout; steals the reference. */
int evctl_out_pretty(json_t *j);

/* Set by SIGINT/SIGTERM after evctl_signals_install. */
extern volatile sig_atomic_t evctl_stop;

/* SIGINT and SIGTERM set evctl_stop (a second one ends the process at
 * once); SIGPIPE is ignored so a closed stdout is an error we can handle. */
void evctl_signals_install(void);

/* Standard base64 of data into a new malloc'd string (NULL on ENOMEM). */
char *evctl_base64(const void *data, size_t len);

/* A JSON string of bytes: the text when it is valid UTF-8, otherwise
 * {"base64": "..."}; null for NULL data. */
json_t *evctl_json_bytes(const void *data, size_t len);

/* Parses a time: RFC 3339, "now", or "now-<duration>" (now-2h). */
int evctl_time_parse(const char *s, int64_t *ms);

/* Parses "N", "N/s", "N/m" or "N/h" into events per second (0: unlimited). */
int evctl_rate_parse(const char *s, double *per_sec);

/* Pacing: call before each send; waits until the next send is due, calling
 * poll(opaque, ms) while waiting (to serve delivery reports). Returns early
 * when evctl_stop is set. */
typedef struct evctl_rate_s {
    double per_sec;
    int64_t start_ms;
    uint64_t sent;
} evctl_rate_t;
void evctl_rate_init(evctl_rate_t *r, double per_sec);
void evctl_rate_wait(evctl_rate_t *r, void (*poll)(void *opaque, int ms), void *opaque);

/* Progress on stderr, at most a few times a second, only when enabled. */
typedef struct evctl_progress_s {
    int enabled;
    const char *what;
    int64_t start_ms, last_ms;
    int shown;
} evctl_progress_t;
void evctl_progress_init(evctl_progress_t *p, const evctl_ctx_t *ctx, const char *what);
/* remaining < 0: unknown. */
void evctl_progress_update(evctl_progress_t *p, uint64_t done, int64_t remaining);
void evctl_progress_end(evctl_progress_t *p);

/* ======================================================================
 * Spooling records to a temporary file (spool.c)
 * ====================================================================== */

/* Records appended to an unlinked file in $TMPDIR (else /tmp), then read
 * back in order; memory stays one buffer whatever the size. */
typedef struct evctl_spool_s {
    int fd;
    char *buf;         /* write buffer, then read buffer */
    size_t len;        /* bytes in buf not written yet */
    uint64_t flushed;  /* bytes in the file */
    uint64_t roff;     /* reading: file offset of the next buffer fill */
    size_t rpos, rlen; /* reading: position and bytes in buf */
    void *rec;         /* the record last read */
    uint32_t rec_cap;
} evctl_spool_t;

/* Returns 0, or prints the error and returns an exit code. */
int evctl_spool_open(evctl_spool_t *s);
void evctl_spool_close(evctl_spool_t *s);
/* Appends a record; *off is where it starts (for evctl_spool_get). */
int evctl_spool_put(evctl_spool_t *s, const void *rec, uint32_t len, uint64_t *off);
/* Reads the record at off (valid until the next get or next); 0 or -1. */
int evctl_spool_get(evctl_spool_t *s, uint64_t off, const void **rec, uint32_t *len);
/* Ends writing and starts reading from the first record. */
int evctl_spool_rewind(evctl_spool_t *s);
/* The next record: 0, 1 at the end, or an exit code (error printed). */
int evctl_spool_next(evctl_spool_t *s, const void **rec, uint32_t *len);

/* ======================================================================
 * An ordered pool of worker threads (pool.c)
 * ====================================================================== */

/* Jobs run on worker threads and come back in the order they were
 * submitted, so a caller can spread work over the cores and still commit
 * its results in input order. fn(arg, worker, job) runs on worker number
 * `worker` (0 .. workers-1): state indexed by it is that thread's alone. */
typedef struct evctl_pool_s evctl_pool_t;
typedef void (*evctl_pool_fn)(void *arg, int worker, void *job);

#define EVCTL_POOL_MAX_JOBS 64 /* submitted and not yet taken back */

/* NULL when a thread cannot be started (the caller then works alone). */
evctl_pool_t *evctl_pool_new(int workers, evctl_pool_fn fn, void *arg);
/* Queues a job: -1 when EVCTL_POOL_MAX_JOBS are out already. */
int evctl_pool_submit(evctl_pool_t *p, void *job);
/* The oldest job submitted, once done (waits for it); NULL when none is out. */
void *evctl_pool_next(evctl_pool_t *p);
/* Jobs submitted and not yet taken back by evctl_pool_next. */
size_t evctl_pool_out(const evctl_pool_t *p);
/* Lets the jobs being run finish, drops the others, joins the threads. */
void evctl_pool_destroy(evctl_pool_t *p);

/* ======================================================================
 * Kafka (kafka.c)
 * ====================================================================== */

/* A consumer that never joins a group (group NULL: "evctl-reader") for metadata, watermarks and
 * reading by assignment, or with `group` for committed offsets (never
 * subscribes, so it never joins the group). Checks the broker answers a
 * metadata request. On failure prints the error and returns NULL with
 * *code set (69 when the broker is unreachable). */
rd_kafka_t *evctl_consumer_new(evctl_ctx_t *ctx, const char *group, int *code);

/* Destroys a client made by evctl_consumer_new (closes the consumer). */
void evctl_consumer_destroy(rd_kafka_t *rk);

/* Partition count of a topic: > 0, 0 when the topic does not exist, -1
 * when the broker did not answer, EVCTL_TOPIC_DENIED when our principal may
 * not describe it (Kafka ACLs). */
#define EVCTL_TOPIC_DENIED (-2)
int evctl_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms);
/* Why evctl_topic_partitions answered < 0, for a message. */
const char *evctl_topic_partitions_why(int n);

/* A producer (lev_producer) with the context's configuration; prints and
 * returns NULL on error. */
lev_producer_t *evctl_producer_new(evctl_ctx_t *ctx);

/* Polls a producer (an evctl_rate_wait poll function). */
void evctl_producer_poll_cb(void *opaque, int ms);

/* A librdkafka message's headers as lev headers: fills out (up to max),
 * returns the count. Values are borrowed from the message. */
size_t evctl_headers_get(const rd_kafka_message_t *m, lev_header_t *out, size_t max);

/* The value of header `name` (last one wins) as a NUL-terminated copy in
 * buf; returns buf, or NULL when the header is absent or null. */
const char *evctl_header_str(const rd_kafka_message_t *m, const char *name, char *buf, size_t size);

/* ======================================================================
 * Reading partition ranges (scan.c)
 * ====================================================================== */

/* The part of one partition a scan reads: offsets [start, end). */
typedef struct evctl_range_s {
    int32_t partition;
    int64_t low, high; /* watermarks when the scan was planned */
    int64_t start, end;
    int64_t next; /* offset after the last record handled */
    int done;
} evctl_range_t;

typedef struct evctl_scan_s {
    rd_kafka_t *rk; /* borrowed */
    char topic[256];
    evctl_range_t *ranges;
    size_t n;
    int follow;
    int64_t since_ms, until_ms; /* time window (-1: none) */
    uint64_t read;              /* records fetched inside the ranges */
} evctl_scan_t;

/* Plans a scan of `topic`: partitions (NULL: every one, else a comma
 * list), start spec `from` and end spec `until` (see evctl_scan_specs_help),
 * follow (no end unless `until`). `def_from` is used when from is NULL.
 * A --partition list that names no partition, or none that a per-partition
 * `from` names, is a usage error. Prints errors naming the flag; returns 0
 * or an exit code. */
int evctl_scan_plan(evctl_scan_t *s, evctl_ctx_t *ctx, rd_kafka_t *rk, const char *topic,
                    const char *partitions, const char *from, const char *def_from,
                    const char *until, int follow);

/* Checks, before any broker is asked, that a --from/--until pair (named
 * from_flag and until_flag on the command line; either value may be NULL)
 * can select something: --until beginning never does, nor two offsets or
 * two times (or two `end`) where the first is not before the second, for
 * every partition or for a partition both name. Prints a usage error naming
 * both options and returns EVCTL_EXIT_USAGE, else 0. */
int evctl_range_check(const char *from_flag, const char *from, const char *until_flag,
                      const char *until);

/* Called for each record in range; returns 0 to go on, 1 to stop (done),
 * or an exit code > 1 to fail. */
typedef int (*evctl_scan_cb)(void *opaque, evctl_scan_t *s, const rd_kafka_message_t *m);

/* Reads the planned ranges, calling cb for each record in range (and in
 * the time window), until every range is done, cb stops, or evctl_stop.
 * Returns 0, EVCTL_EXIT_INTERRUPTED, or an exit code. `progress` may be
 * NULL; `done` counts the records the command handled. */
int evctl_scan_run(evctl_scan_t *s, evctl_scan_cb cb, void *opaque, evctl_progress_t *progress,
                   const uint64_t *done);

/* Records left in the planned ranges (-1 when following). */
int64_t evctl_scan_remaining(const evctl_scan_t *s);

/* "0:15,1:22,2:7": the next offset of every range, for --from to resume. */
void evctl_scan_resume_spec(const evctl_scan_t *s, const int64_t *next, char *out, size_t size);

void evctl_scan_clear(evctl_scan_t *s);

/* Help text of --from / --until values. */
extern const char evctl_scan_specs_help[];

/* ======================================================================
 * Records as JSON (record.c)
 * ====================================================================== */

/* Headers as a JSON object (a repeated name becomes an array of values). */
json_t *evctl_headers_json(const rd_kafka_message_t *m);

/* A record as JSON: topic, partition, offset, timestamp, key, headers,
 * type, value (decoded) -- or error {class, where, message} and raw
 * (base64) when the value does not decode. *type_out (may be NULL) gets the
 * event type (writer schema name, else the ce_type header, else NULL),
 * valid while the record and the codec live. Never fails on any bytes;
 * returns NULL only when out of memory. */
json_t *evctl_record_json(evctl_ctx_t *ctx, const rd_kafka_message_t *m, char *type_out,
                          size_t type_size);

/* The type of a record without building JSON (writer schema by fingerprint,
 * else ce_type). Fills out ("" when unknown). */
void evctl_record_type(evctl_ctx_t *ctx, const rd_kafka_message_t *m, char *out, size_t size);

/* Record filters shared by tail, replay and dlq redrive. */
typedef struct evctl_filter_s {
    const char *const *types;
    int ntypes;
    const char *const *keys;
    int nkeys;
} evctl_filter_t;

void evctl_filter_init(evctl_filter_t *f, const evctl_args_t *args);
/* 1 when the record passes (its type computed on demand into type/size). */
int evctl_filter_match(evctl_ctx_t *ctx, const evctl_filter_t *f, const rd_kafka_message_t *m,
                       char *type, size_t size);

/* ======================================================================
 * The topics description (topology.c)
 * ====================================================================== */

typedef struct evctl_topic_spec_s {
    char *name;
    int partitions;
    int replication;
    json_t *config;    /* object of string values, borrowed from the document */
    const char *kind;  /* "topic", "retry", "dlq" */
    const char *group; /* owning group for retry/dlq */
} evctl_topic_spec_t;

typedef struct evctl_topology_s {
    json_t *doc;
    char path[1024];
    evctl_topic_spec_t *topics;
    size_t ntopics;
} evctl_topology_t;

/* Loads the description (--topics-file, LEV_TOPICS_FILE, ./tools/topics.json,
 * the copy installed next to the program, the source tree's for the program
 * of the build tree, the configured prefix's) and expands it: the topics, then each group's retry
 * topics (levels from the group, the document, or LEV_RETRY_DELAYS) and its
 * dead-letter topic. Overrides < 0 keep the document's values. Returns 0 or
 * an exit code after printing the error. */
int evctl_topology_load(evctl_topology_t *t, evctl_ctx_t *ctx, int partitions, int replication,
                        int retry_levels);
void evctl_topology_clear(evctl_topology_t *t);

/* 1 when a description file is configured or found (evctl_topology_load
 * would not fail for want of one). */
int evctl_topology_available(const evctl_ctx_t *ctx);

/* The topic an event type goes to by the description's "types" patterns
 * (NULL when none matches). */
const char *evctl_topology_topic_for_type(const evctl_topology_t *t, const char *type);

/* The topics a group reads (its inputs, retry topics); NULL-ended array of
 * borrowed names in out (max entries). Returns the count, 0 for an unknown
 * group. */
size_t evctl_topology_group_topics(const evctl_topology_t *t, const char *group, const char **out,
                                   size_t max);

/* ======================================================================
 * Commands
 * ====================================================================== */

extern const evctl_cmd_t evctl_cmd_publish;
extern const evctl_cmd_t evctl_cmd_tail;
extern const evctl_cmd_t evctl_cmd_replay;
extern const evctl_cmd_t evctl_cmd_dlq_list;
extern const evctl_cmd_t evctl_cmd_dlq_show;
extern const evctl_cmd_t evctl_cmd_dlq_redrive;
extern const evctl_cmd_t evctl_cmd_lag;
extern const evctl_cmd_t evctl_cmd_topics;
extern const evctl_cmd_t evctl_cmd_acls;
extern const evctl_cmd_t evctl_cmd_schemas_list;
extern const evctl_cmd_t evctl_cmd_schemas_check;
extern const evctl_cmd_t evctl_cmd_schemas_register;

/* Shared by replay and dlq redrive: copies records to other topics with
 * provenance headers. */
typedef struct evctl_copy_s {
    const char *verb;           /* "replay" or "redrive": summary names */
    const char *from_header;    /* evctl_replay_from / evctl_redrive_from */
    const char *at_header;      /* evctl_replay_at / evctl_redrive_at */
    const char *to;             /* fixed destination, or NULL */
    int strip_dead_letter;      /* drop lev_* headers; destination from lev_original_topic */
    const char *const *classes; /* redrive: lev_error_class filter */
    int nclasses;
    int dry_run;
    double rate;
    long long max; /* stop after this many copies (0: no limit) */
} evctl_copy_t;

/* Runs a copy over a planned scan. Prints the summary line on stdout and
 * the resume point when interrupted. Returns an exit code. */
int evctl_copy_run(evctl_ctx_t *ctx, evctl_scan_t *scan, const evctl_filter_t *filter,
                   const evctl_copy_t *copy);

#endif
