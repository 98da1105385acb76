/* Helpers for the tests: unique names, topics, reading a topic whole,
 * child processes. Integration helpers talk to the real broker named by
 * KAFKA_BOOTSTRAP. */
#ifndef LEV_TESTUTIL_H
#define LEV_TESTUTIL_H

#include <jansson.h>
#include <libevents.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* A worker's lev_worker_run on a thread of its own. */
typedef struct lev_test_run_s {
    lev_worker_t *w;
    pthread_t thread;
    int rc;                      /* what lev_worker_run returned, once it did */
    _Atomic int64_t returned_ms; /* lev_mono_ms() when it returned; 0 until then */
} lev_test_run_t;

/* Runs w on a new thread: 0, or -1 when no thread could be made. */
int lev_test_run_start(lev_test_run_t *r, lev_worker_t *w);
/* Waits for the run to return (lev_worker_stop first); its result. */
int lev_test_run_join(lev_test_run_t *r);
/* Stops the worker, waits for its run to return, puts its stats in *stats
 * (may be NULL), destroys it (r->w becomes NULL) and returns what the run
 * returned. */
int lev_test_run_finish(lev_test_run_t *r, lev_worker_stats_t *stats);
/* Waits until the worker has finished n records in all (its stats'
 * `finished`): 0, or -1 (saying how many it finished) after timeout_ms. */
int lev_test_run_wait_finished(lev_test_run_t *r, uint64_t n, int timeout_ms);

/* getenv with a default. */
const char *lev_test_env(const char *name, const char *def);

/* "<prefix>-<pid>-<random hex>": names that no other test run uses. */
void lev_test_unique(const char *prefix, char *out, size_t size);

/* A configuration from the environment for `service`, with a unique group
 * id, fast batches and short timeouts; aborts the test on error. */
void lev_test_config(lev_config_t *conf, const char *service);

/* Creates a topic (error if it exists already unless it has the same
 * partition count). Waits until its metadata shows every partition led. */
int lev_test_create_topic(const char *topic, int partitions);
/* The same with topic configuration: name, value pairs ending with NULL. */
int lev_test_create_topic_with(const char *topic, int partitions, const char *const *configs);

/* One record read back from a topic. */
typedef struct lev_test_record_s {
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    char *key;
    void *value;
    size_t value_len;
    rd_kafka_headers_t *headers; /* owned copy, may be NULL */
} lev_test_record_t;

/* Reads every record of `topic` (all partitions, from the beginning, no
 * group) until at least `min` arrived and the end of every partition was
 * reached, or timeout_ms passed. Returns the count, records in *out (free
 * with lev_test_records_free). */
size_t lev_test_read_topic(const char *topic, size_t min, int timeout_ms, lev_test_record_t **out);
void lev_test_records_free(lev_test_record_t *recs, size_t n);

/* A header's value as a NUL-terminated string in buf ("" when absent). */
const char *lev_test_header(const lev_test_record_t *r, const char *name, char *buf, size_t size);

/* Committed offsets of `group` for partitions 0..n-1 of topic (-1 none). */
int lev_test_committed(const char *group, const char *topic, int n, int64_t *out);

/* Starts argv[0] with extra "NAME=value" environment entries (NULL-ended),
 * stdout/stderr appended to log_path (NULL: inherit). Returns the pid. */
pid_t lev_test_spawn(char *const argv[], char *const env[], const char *log_path);

/* Waits for a child up to timeout_ms; returns 0 with *status, or -1 on timeout. */
int lev_test_wait(pid_t pid, int timeout_ms, int *status);

/* Sleeps for ms milliseconds. Not a way to wait for something to happen:
 * wait for the thing itself with a deadline (lev_test_wait_for and the
 * lev_test_wait_* helpers), so a test goes on as soon as it holds, and a
 * slow or stalled machine makes it slower, not wrong. */
void lev_test_sleep_ms(int ms);

/* Polls cond(arg) every poll_ms until it returns nonzero (0) or timeout_ms
 * passed (-1, after printing "timed out after <n> ms waiting for <what>"). */
int lev_test_wait_for(int (*cond)(void *arg), void *arg, int poll_ms, int timeout_ms,
                      const char *what);

/* Path of a built program: $LEV_BINARY_DIR/<rel>. */
void lev_test_bin(const char *rel, char *out, size_t size);

/* ---- ports ----
 *
 * A server a test starts in another process (a Redis, a broker, an HTTP
 * fake) gets its port from lev_test_reserve_ports, never from a fixed or
 * pid-derived number, nor from bind-then-close in the kernel's ephemeral
 * range (/proc/sys/net/ipv4/ip_local_port_range), where any outgoing
 * connection on the machine may take the port before the server binds it.
 * A server in the test's own process may bind port 0 and keep its socket.
 * Shell scripts use tests/ports.sh, which follows the same scheme. */

/* Reserves `count` consecutive TCP ports of 127.0.0.1 below the ephemeral
 * range (from 20000 up to its start, at most 29999; above its end when it
 * starts too low) that nothing is bound to, and that no other test holds:
 * each is locked (flock) in /tmp/lev-test-ports/<port>.lock, or
 * $LEV_TEST_PORT_LOCKS/<port>.lock, until the process exits. A port that
 * is taken in between is skipped. Returns the first port, or -1 with a
 * message. A server may still find its port taken by a process that binds
 * it by number: the caller then reserves another one and tries again. */
int lev_test_reserve_ports(int count);

/* A port of 127.0.0.1 that refuses connections while *fd stays open: a
 * socket is bound to it and does not listen, so no one else can take it
 * meanwhile. Returns the port, or -1. For "nothing listens there", rather
 * than a port just closed or one assumed unused. */
int lev_test_refusing_port(int *fd);

/* ---- HTTP ---- */

/* One HTTP/1.1 request to 127.0.0.1:port (Connection: close, no body),
 * waiting at most timeout_ms. Returns the status code, or -1 when nothing
 * answered; the body (NUL-terminated, malloc'd) goes to *body when body is
 * not NULL, and the response's headers to *headers likewise. */
int lev_test_http(const char *method, int port, const char *path, int timeout_ms, char **body,
                  char **headers);

/* Reads one HTTP/1.1 request (its head, then as much body as its
 * Content-Length says) from fd into buf (cap bytes, NUL-terminated; *len
 * the bytes read). Returns the body inside buf, *body_len its length, or
 * NULL when the head never ended. For the tests' own small HTTP servers. */
char *lev_test_http_read_request(int fd, char *buf, size_t cap, size_t *len, size_t *body_len);

/* The value of the sample `name{labels}` (labels exactly as written, ""
 * for none) in a Prometheus text exposition, or -1 when it is absent. */
double lev_test_metric(const char *text, const char *name, const char *labels);

/* ---- offsets ---- */

/* The sum of the end offsets (high watermarks) of every partition of
 * topic, or -1 when the broker does not tell. */
int64_t lev_test_topic_end(const char *topic);

/* Waits until topic holds at least min records (end offsets summed). */
int lev_test_wait_topic_end(const char *topic, int64_t min, int timeout_ms);

/* Waits until `group` has committed every partition of `topic` up to its
 * end: every record in the topic is finished. 0, or -1 at the deadline
 * (saying which partitions lag). */
int lev_test_wait_caught_up(const char *group, const char *topic, int timeout_ms);

#endif

/* ---- orders for the runtime tests ---- */

/* An OrderPlaced as Avro JSON with the given order id; sku "sku-<i>". */
json_t *lev_test_order_json(const char *order_id, int i);

/* In a handler of OrderPlaced: emits the OrderAccepted of ev's order to
 * topic, keyed by key (NULL: the order id). 0, or -1 when the event lacks a
 * field or the emit fails. */
int lev_test_emit_accepted(lev_ctx_t *ctx, const lev_event_t *ev, const char *topic,
                           const char *key);

/* Records written to a topic: the sum of its partitions' high watermarks
 * (-1 when the broker does not answer). */
long lev_test_topic_records(const char *topic);

/* Publishes n OrderPlaced events to topic, keyed by fresh order ids that
 * are written to ids[i] (and ce_id = order id). Waits for every ack.
 * `sku_of` (may be NULL) picks the sku of the i-th order. Returns 0. */
int lev_test_publish_orders(const char *topic, size_t n, char (*ids)[LEV_UUID_STR_LEN],
                            const char *(*sku_of)(size_t i));

/* Reads `topic` and collects the order_id of each decoded record into a
 * malloc'd array of strings (count in *n). */
char **lev_test_read_order_ids(const char *topic, size_t min, int timeout_ms, size_t *n);
void lev_test_strings_free(char **s, size_t n);

/* How many of `want` ids are missing from `have`. */
size_t lev_test_missing(char (*want)[LEV_UUID_STR_LEN], size_t nwant, char **have, size_t nhave);

/* The schema set of LEV_SCHEMA_DIRS (loaded once, never freed). */
const lev_schemas_t *lev_test_schemas(void);

/* ---- child workers ---- */

/* Starts tests' lev_test_worker with extra environment entries (NULL-ended)
 * and its log at log_path. */
pid_t lev_test_start_worker(char *const env[], const char *log_path);

/* SIGTERM, then the exit code within 30 s (-1 after a SIGKILL when it took
 * longer, or when it did not exit normally). */
int lev_test_stop_worker(pid_t pid);

/* Lines of an effect log (see tests/tools/test_worker.c): the first word of
 * each line in a malloc'd array (count in *n). Missing file: 0 lines. */
char **lev_test_effect_ids(const char *path, size_t *n);

/* Counts distinct strings in a (sorted in place) array. */
size_t lev_test_distinct(char **s, size_t n);

/* Waits until `path` has at least `lines` lines or timeout; returns the count. */
size_t lev_test_wait_lines(const char *path, size_t lines, int timeout_ms);
