/* Helpers for the tests: unique names, topics, reading a topic whole,
 * child processes. Integration helpers talk to the real broker named by
 * KAFKA_BOOTSTRAP. */
#ifndef LEV_TESTUTIL_H
#define LEV_TESTUTIL_H

#include <libevents.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <sys/types.h>

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

/* Sleeps for ms milliseconds. */
void lev_test_sleep_ms(int ms);

/* Path of a built program: $LEV_BINARY_DIR/<rel>. */
void lev_test_bin(const char *rel, char *out, size_t size);

#endif
