/*
 * Private parts of the metrics: a registry of metric families (counters,
 * gauges, histograms), each with a fixed list of label names and the
 * series of the label values seen, and the Prometheus text exposition of
 * all of them.
 *
 * Threads. Families and series are only ever added, never removed, until
 * the registry is destroyed: adding takes the registry's lock (once per
 * label combination, never per event), and readers walk the lists without
 * one, through pointers published with release stores. Updating a series
 * takes no lock: a series written by one thread only (the worker's own
 * instruments) is updated with a relaxed load and store (lev_mx_add,
 * lev_mx_observe); one that several threads write (the application's
 * counters) with an atomic add (lev_mx_add_shared). A scrape reads each
 * value whole; a histogram's count is the sum of its buckets as read, so
 * its +Inf bucket always equals its count.
 */
#ifndef LEV_METRICS_INTERNAL_H
#define LEV_METRICS_INTERNAL_H

#include "internal.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lev_mx_type_e {
    LEV_MX_COUNTER = 0,
    LEV_MX_GAUGE = 1,
    LEV_MX_HISTOGRAM = 2,
} lev_mx_type_t;

#define LEV_MX_LABELS_MAX 8
#define LEV_MX_BOUNDS_MAX 24

typedef struct lev_mx_s lev_mx_t;
typedef struct lev_mx_family_s lev_mx_family_t;
typedef struct lev_mx_series_s lev_mx_series_t;

struct lev_mx_series_s {
    lev_mx_series_t *_Atomic next;
    lev_mx_family_t *family;
    uint64_t hash;             /* of the label values */
    char **values;             /* one per label name */
    _Atomic uint64_t count;    /* counter */
    _Atomic int64_t gauge;     /* gauge */
    _Atomic double sum;        /* histogram: sum of the observations */
    _Atomic uint64_t *buckets; /* histogram: per bucket (not cumulative), +Inf last */
};

/* ---- the registry ---- */

lev_mx_t *lev_mx_new(void);
void lev_mx_destroy(lev_mx_t *mx);

/* A new family. `labels` (NULL-ended, may be NULL) are copied; histograms
 * take `bounds` (nbounds increasing upper bounds, +Inf implied, copied).
 * At most max_series label combinations (0: no bound); beyond that new
 * combinations are not recorded but counted in
 * lev_metrics_series_dropped_total. Names and labels are checked against
 * the exposition format's rules; a name taken already fails. */
lev_mx_family_t *lev_mx_family_new(lev_mx_t *mx, lev_mx_type_t type, const char *name,
                                   const char *help, const char *const *labels,
                                   const double *bounds, size_t nbounds, size_t max_series,
                                   lev_error_t *err);

/* The series of these label values (one per label name; NULL when the
 * family has no labels), made on first use. NULL when the family is at its
 * bound of series or a value is not UTF-8 (both counted in
 * lev_metrics_series_dropped_total), or memory ran out. */
lev_mx_series_t *lev_mx_series(lev_mx_family_t *f, const char *const *values);

/* The same for one label value (or none: NULL). */
lev_mx_series_t *lev_mx_series1(lev_mx_family_t *f, const char *value);

size_t lev_mx_family_labels(const lev_mx_family_t *f);

/* ---- updates (NULL series: nothing) ---- */

/* Single writer: adds n to a counter. */
static inline void lev_mx_add(lev_mx_series_t *s, uint64_t n)
{
    if (s)
        atomic_store_explicit(&s->count, atomic_load_explicit(&s->count, memory_order_relaxed) + n,
                              memory_order_relaxed);
}

/* Any number of writers: adds n to a counter. */
static inline void lev_mx_add_shared(lev_mx_series_t *s, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

/* Sets a gauge (any thread; the last store wins). */
static inline void lev_mx_set(lev_mx_series_t *s, int64_t v)
{
    if (s)
        atomic_store_explicit(&s->gauge, v, memory_order_relaxed);
}

/* Single writer: one observation of a histogram. */
void lev_mx_observe(lev_mx_series_t *s, double v);

/* ---- exposition ---- */

/* A growing text buffer; `failed` is set when memory ran out (the text is
 * then incomplete and must not be served). */
typedef struct lev_mx_buf_s {
    char *p;
    size_t len, cap;
    int failed;
} lev_mx_buf_t;

void lev_mx_buf_free(lev_mx_buf_t *b);
void lev_mx_buf_append(lev_mx_buf_t *b, const char *s, size_t n);
void lev_mx_buf_printf(lev_mx_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "# HELP" and "# TYPE" lines of a family. */
void lev_mx_write_header(lev_mx_buf_t *b, const char *name, const char *help, lev_mx_type_t type);

/* One sample line: name, labels (n names and values, escaped) and a value
 * already formatted. */
void lev_mx_write_sample(lev_mx_buf_t *b, const char *name, const char *const *names,
                         const char *const *values, size_t n, const char *value);

/* Appends the exposition of every family of the registry. */
void lev_mx_render(lev_mx_t *mx, lev_mx_buf_t *b);

/* Appends the standard process_* metrics of this process (from /proc). */
void lev_mx_render_process(lev_mx_buf_t *b);

/* 1 when name is a valid metric name, label name (is_label), as the
 * exposition format defines them. */
int lev_mx_name_valid(const char *name, int is_label);

/* ---- time ---- */

/* Monotonic nanoseconds. */
int64_t lev_mono_ns(void);

#endif
