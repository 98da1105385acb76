/*
 * libevents metrics and probes: every worker can serve, on an HTTP
 * endpoint of its own (LEV_HTTP_ADDR, off when empty),
 *
 *   GET /metrics   Prometheus text exposition format 0.0.4: the worker's
 *                  own metrics (records, results, retries, dead letters,
 *                  latencies, lag, Redis, rebalances, ...), the process_*
 *                  metrics, and the application's counters made below;
 *   GET /healthz   liveness: 200 while the worker's loop turns, 503 when it
 *                  has not turned for LEV_HEALTH_STALL_MS;
 *   GET /readyz    readiness: 200 when the consumer group is joined (with
 *                  or without partitions), a broker is up and Redis
 *                  answers; 503 with a JSON reason otherwise.
 *
 * The README lists every metric. The endpoint runs on a thread of its own
 * and never waits for the worker's thread; the worker's instruments take
 * no lock per event.
 *
 * Threads: lev_metrics_counter_new and the lev_counter_* calls may be made
 * from any thread, at any time between lev_worker_new and
 * lev_worker_destroy (a counter belongs to its worker and goes with it).
 */
#ifndef LIBEVENTS_METRICS_H
#define LIBEVENTS_METRICS_H

#include <libevents/common.h>
#include <libevents/worker.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most label names of a counter, and most label combinations (series) one
 * counter records: later combinations are not recorded, and counted in
 * lev_metrics_series_dropped_total. Label values are meant to come from a
 * small fixed set (an outcome, a channel, an event type), never ids. */
#define LEV_COUNTER_LABELS_MAX 8
#define LEV_COUNTER_SERIES_MAX 1000

typedef struct lev_counter_s lev_counter_t;

/*
 * A counter of the application's own, served on the worker's /metrics
 * (and counted whether or not the endpoint is on). `name` follows
 * Prometheus' conventions: [a-zA-Z_:][a-zA-Z0-9_:]*, ending in "_total",
 * not starting with "lev_" or "process_" (the worker's own); `help` says
 * what it counts (NULL: the name); `label_names` (NULL-ended, or NULL for
 * none) are [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not "le". The
 * worker owns the counter. Returns NULL with err (LEV_ERR_ARG: a bad or
 * taken name) on failure.
 */
LEV_API lev_counter_t *lev_metrics_counter_new(lev_worker_t *w, const char *name, const char *help,
                                               const char *const *label_names, lev_error_t *err);

/* Adds n to the series of these label values: one value per label name,
 * in order (NULL for a counter without labels). Values must be UTF-8;
 * anything else is not recorded. Any thread; no lock once a combination
 * was seen. */
LEV_API void lev_counter_add(lev_counter_t *c, const char *const *label_values, uint64_t n);

/* lev_counter_add(c, label_values, 1). */
LEV_API void lev_counter_inc(lev_counter_t *c, const char *const *label_values);

/* The TCP port the worker's endpoint listens on (the one the system chose
 * for port 0), or 0 when it is off. */
LEV_API int lev_worker_http_port(const lev_worker_t *w);

#ifdef __cplusplus
}
#endif
#endif
