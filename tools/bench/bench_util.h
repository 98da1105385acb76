/* What the benchmark programs share: timing, CPU accounting, topics. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <libevents.h>
#include <stddef.h>
#include <stdint.h>

/* Prints "<prog>: <what>: <error>" on stderr; returns 1 (an exit code). */
int bench_fail(const char *prog, const char *what, const lev_error_t *err);
/* CPU seconds of this process (all its threads). */
double bench_cpu_seconds(void);
/* CPU seconds of the whole machine (every process: broker and Redis too),
 * from /proc/stat; 0 where there is none. */
double bench_machine_cpu_seconds(void);
/* A connection to the Redis server at `url`, authenticated and on its
 * database; NULL when there is none. */
struct redisContext *bench_redis_connect(const char *url);
/* CPU seconds the Redis server at `url` has used (its INFO's used_cpu_user
 * plus used_cpu_sys); -1 when it cannot be asked. */
double bench_redis_cpu_seconds(const char *url);
/* Deletes the keys matching `pattern` (a SCAN pattern) from the Redis
 * server at `url`: how many, or -1 on an error. */
long bench_redis_unlink(const char *url, const char *pattern);
/* Monotonic microseconds. */
int64_t bench_now_us(void);
/* Records written to a fresh topic of `partitions` partitions: the sum of
 * its high watermarks. */
long bench_topic_count(const lev_config_t *conf, const char *topic, int partitions);
/* Creates (create 1) topics of `partitions` partitions, or deletes them. */
int bench_admin_topics(const lev_config_t *conf, char **names, size_t n, int create,
                       int partitions);

#endif
