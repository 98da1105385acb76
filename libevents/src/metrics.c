/*
 * The metrics registry and the Prometheus text exposition format, version
 * 0.0.4 (see metrics_internal.h for the threading rules).
 */
#include "codec_internal.h" /* lev_utf8_valid */
#include "metrics_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lev_mx_family_s {
    lev_mx_family_t *_Atomic next;
    lev_mx_t *mx;
    lev_mx_type_t type;
    char *name, *help;
    char *labels[LEV_MX_LABELS_MAX];
    size_t nlabels;
    double bounds[LEV_MX_BOUNDS_MAX];
    size_t nbounds;
    size_t max_series;
    lev_mx_series_t *_Atomic head; /* in the order made */
    lev_mx_series_t *tail;         /* under mx->mu */
    size_t nseries;                /* under mx->mu */
};

struct lev_mx_s {
    pthread_mutex_t mu; /* taken to add a family or a series, never to update one */
    lev_mx_family_t *_Atomic head;
    lev_mx_family_t *tail;
    _Atomic uint64_t dropped; /* label combinations not recorded (a family's bound) */
};

int64_t lev_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ======================================================================
 * The registry
 * ====================================================================== */

lev_mx_t *lev_mx_new(void)
{
    lev_mx_t *mx = calloc(1, sizeof *mx);
    if (!mx)
        return NULL;
    if (pthread_mutex_init(&mx->mu, NULL) != 0) {
        free(mx);
        return NULL;
    }
    return mx;
}

static void series_free(lev_mx_series_t *s, size_t nlabels)
{
    for (size_t i = 0; s->values && i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free((void *)s->buckets);
    free(s);
}

void lev_mx_destroy(lev_mx_t *mx)
{
    if (!mx)
        return;
    lev_mx_family_t *f = atomic_load(&mx->head);
    while (f) {
        lev_mx_family_t *fn = atomic_load(&f->next);
        lev_mx_series_t *s = atomic_load(&f->head);
        while (s) {
            lev_mx_series_t *sn = atomic_load(&s->next);
            series_free(s, f->nlabels);
            s = sn;
        }
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&mx->mu);
    free(mx);
}

int lev_mx_name_valid(const char *name, int is_label)
{
    if (!name || !*name)
        return 0;
    for (const char *c = name; *c; c++) {
        int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                    (!is_label && *c == ':');
        int digit = *c >= '0' && *c <= '9';
        if (!alpha && !(digit && c != name))
            return 0;
    }
    /* label names starting with __ are reserved for Prometheus itself */
    return !(is_label && name[0] == '_' && name[1] == '_');
}

/* Called with mx->mu held. */
static lev_mx_family_t *family_find(lev_mx_t *mx, const char *name)
{
    for (lev_mx_family_t *f = atomic_load_explicit(&mx->head, memory_order_acquire); f;
         f = atomic_load_explicit(&f->next, memory_order_acquire))
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

lev_mx_family_t *lev_mx_family_new(lev_mx_t *mx, lev_mx_type_t type, const char *name,
                                   const char *help, const char *const *labels,
                                   const double *bounds, size_t nbounds, size_t max_series,
                                   lev_error_t *err)
{
    size_t nlabels = 0;
    if (!mx || !lev_mx_name_valid(name, 0)) {
        lev_error_set(err, LEV_ERR_ARG, name, "not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
        return NULL;
    }
    for (; labels && labels[nlabels]; nlabels++) {
        if (nlabels == LEV_MX_LABELS_MAX) {
            lev_error_set(err, LEV_ERR_ARG, name, "more than %d labels", LEV_MX_LABELS_MAX);
            return NULL;
        }
        if (!lev_mx_name_valid(labels[nlabels], 1) || strcmp(labels[nlabels], "le") == 0 ||
            strcmp(labels[nlabels], "quantile") == 0) {
            lev_error_set(err, LEV_ERR_ARG, name, "\"%s\" is not a label name a metric may have",
                          labels[nlabels]);
            return NULL;
        }
        for (size_t j = 0; j < nlabels; j++) {
            if (strcmp(labels[j], labels[nlabels]) == 0) {
                lev_error_set(err, LEV_ERR_ARG, name, "label \"%s\" named twice", labels[j]);
                return NULL;
            }
        }
    }
    if (type == LEV_MX_HISTOGRAM) {
        if (nbounds == 0 || nbounds > LEV_MX_BOUNDS_MAX) {
            lev_error_set(err, LEV_ERR_ARG, name, "a histogram has 1 to %d bounds",
                          LEV_MX_BOUNDS_MAX);
            return NULL;
        }
        for (size_t i = 1; i < nbounds; i++) {
            if (!(bounds[i] > bounds[i - 1])) {
                lev_error_set(err, LEV_ERR_ARG, name, "histogram bounds must increase");
                return NULL;
            }
        }
    }
    lev_mx_family_t *f = calloc(1, sizeof *f);
    if (!f) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    f->mx = mx;
    f->type = type;
    f->max_series = max_series;
    f->name = strdup(name);
    f->help = strdup(help && *help ? help : name);
    int oom = !f->name || !f->help;
    for (size_t i = 0; i < nlabels; i++)
        oom |= !(f->labels[i] = strdup(labels[i]));
    f->nlabels = nlabels;
    if (type == LEV_MX_HISTOGRAM) {
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    if (oom) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    pthread_mutex_lock(&mx->mu);
    if (family_find(mx, name)) {
        pthread_mutex_unlock(&mx->mu);
        lev_error_set(err, LEV_ERR_ARG, name, "a metric of this name exists already");
        goto fail;
    }
    if (mx->tail)
        atomic_store_explicit(&mx->tail->next, f, memory_order_release);
    else
        atomic_store_explicit(&mx->head, f, memory_order_release);
    mx->tail = f;
    pthread_mutex_unlock(&mx->mu);
    return f;
fail:
    for (size_t i = 0; i < nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f);
    return NULL;
}

size_t lev_mx_family_labels(const lev_mx_family_t *f)
{
    return f ? f->nlabels : 0;
}

static uint64_t values_hash(const char *const *values, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        for (const char *c = values[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* "a","bc" differs from "ab","c" */
    }
    return h;
}

static lev_mx_series_t *series_find(lev_mx_family_t *f, const char *const *values, uint64_t h)
{
    for (lev_mx_series_t *s = atomic_load_explicit(&f->head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (s->hash != h)
            continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

lev_mx_series_t *lev_mx_series(lev_mx_family_t *f, const char *const *values)
{
    static const char *const none[1] = {""};
    if (!f)
        return NULL;
    if (f->nlabels == 0)
        values = none;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values || !values[i])
            return NULL;
    uint64_t h = values_hash(values, f->nlabels);
    lev_mx_series_t *s = series_find(f, values, h);
    if (s)
        return s;
    lev_mx_t *mx = f->mx;
    pthread_mutex_lock(&mx->mu);
    if ((s = series_find(f, values, h)) != NULL) /* made meanwhile */
        goto out;
    int utf8 = 1;
    for (size_t i = 0; i < f->nlabels; i++)
        utf8 &= lev_utf8_valid((const uint8_t *)values[i], strlen(values[i]), NULL);
    if (!utf8 || (f->max_series && f->nseries >= f->max_series)) {
        atomic_fetch_add_explicit(&mx->dropped, 1, memory_order_relaxed);
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->family = f;
    s->hash = h;
    int oom = !(s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *s->values));
    for (size_t i = 0; !oom && i < f->nlabels; i++)
        oom = !(s->values[i] = strdup(values[i]));
    if (!oom && f->type == LEV_MX_HISTOGRAM)
        oom = !(s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets));
    if (oom) {
        series_free(s, f->nlabels);
        s = NULL;
        goto out;
    }
    if (f->tail)
        atomic_store_explicit(&f->tail->next, s, memory_order_release);
    else
        atomic_store_explicit(&f->head, s, memory_order_release);
    f->tail = s;
    f->nseries++;
out:
    pthread_mutex_unlock(&mx->mu);
    return s;
}

lev_mx_series_t *lev_mx_series1(lev_mx_family_t *f, const char *value)
{
    const char *v[1] = {value};
    return lev_mx_series(f, value ? v : NULL);
}

void lev_mx_observe(lev_mx_series_t *s, double v)
{
    if (!s)
        return;
    const lev_mx_family_t *f = s->family;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_store_explicit(&s->buckets[i],
                          atomic_load_explicit(&s->buckets[i], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->sum, atomic_load_explicit(&s->sum, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* ======================================================================
 * Exposition
 * ====================================================================== */

void lev_mx_buf_free(lev_mx_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int buf_reserve(lev_mx_buf_t *b, size_t more)
{
    if (b->failed)
        return -1;
    if (lev_grow(&b->p, &b->cap, b->len + more + 1, 1, 8192) != 0) {
        b->failed = 1;
        return -1;
    }
    return 0;
}

void lev_mx_buf_append(lev_mx_buf_t *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void lev_mx_buf_printf(lev_mx_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Appends s with \ and newline escaped, and " too in label values. */
static void buf_escaped(lev_mx_buf_t *b, const char *s, int quotes)
{
    const char *run = s;
    for (const char *c = s;; c++) {
        const char *esc = NULL;
        if (*c == '\\')
            esc = "\\\\";
        else if (*c == '\n')
            esc = "\\n";
        else if (*c == '"' && quotes)
            esc = "\\\"";
        if (!esc && *c)
            continue;
        lev_mx_buf_append(b, run, (size_t)(c - run));
        if (!*c)
            return;
        lev_mx_buf_append(b, esc, strlen(esc));
        run = c + 1;
    }
}

void lev_mx_write_header(lev_mx_buf_t *b, const char *name, const char *help, lev_mx_type_t type)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    lev_mx_buf_printf(b, "# HELP %s ", name);
    buf_escaped(b, help, 0);
    lev_mx_buf_printf(b, "\n# TYPE %s %s\n", name, types[type]);
}

void lev_mx_write_sample(lev_mx_buf_t *b, const char *name, const char *const *names,
                         const char *const *values, size_t n, const char *value)
{
    lev_mx_buf_append(b, name, strlen(name));
    for (size_t i = 0; i < n; i++) {
        lev_mx_buf_printf(b, "%s%s=\"", i ? "," : "{", names[i]);
        buf_escaped(b, values[i], 1);
        lev_mx_buf_append(b, "\"", 1);
    }
    if (n)
        lev_mx_buf_append(b, "}", 1);
    lev_mx_buf_printf(b, " %s\n", value);
}

/* A float as the exposition format writes it. */
static void format_double(double v, char *out, size_t size)
{
    if (v != v)
        snprintf(out, size, "NaN");
    else if (v > 1e308)
        snprintf(out, size, "+Inf");
    else if (v < -1e308)
        snprintf(out, size, "-Inf");
    else
        snprintf(out, size, "%.12g", v);
}

static void render_histogram(lev_mx_buf_t *b, const lev_mx_family_t *f, const lev_mx_series_t *s)
{
    const char *names[LEV_MX_LABELS_MAX + 1], *values[LEV_MX_LABELS_MAX + 1];
    char name[300], le[40], num[40];
    size_t n = f->nlabels;
    for (size_t i = 0; i < n; i++) {
        names[i] = f->labels[i];
        values[i] = s->values[i];
    }
    names[n] = "le";
    values[n] = le;
    uint64_t cum = 0;
    snprintf(name, sizeof name, "%s_bucket", f->name);
    for (size_t i = 0; i <= f->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < f->nbounds)
            format_double(f->bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
        lev_mx_write_sample(b, name, names, values, n + 1, num);
    }
    snprintf(name, sizeof name, "%s_sum", f->name);
    format_double(atomic_load_explicit(&s->sum, memory_order_relaxed), num, sizeof num);
    lev_mx_write_sample(b, name, names, values, n, num);
    snprintf(name, sizeof name, "%s_count", f->name);
    snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
    lev_mx_write_sample(b, name, names, values, n, num);
}

void lev_mx_render(lev_mx_t *mx, lev_mx_buf_t *b)
{
    char num[40];
    for (lev_mx_family_t *f = atomic_load_explicit(&mx->head, memory_order_acquire); f;
         f = atomic_load_explicit(&f->next, memory_order_acquire)) {
        lev_mx_series_t *s = atomic_load_explicit(&f->head, memory_order_acquire);
        if (!s) /* nothing to say yet; a family without samples is left out */
            continue;
        lev_mx_write_header(b, f->name, f->help, f->type);
        for (; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
            if (f->type == LEV_MX_HISTOGRAM) {
                render_histogram(b, f, s);
                continue;
            }
            if (f->type == LEV_MX_COUNTER)
                snprintf(num, sizeof num, "%llu",
                         (unsigned long long)atomic_load_explicit(&s->count, memory_order_relaxed));
            else
                snprintf(num, sizeof num, "%lld",
                         (long long)atomic_load_explicit(&s->gauge, memory_order_relaxed));
            lev_mx_write_sample(b, f->name, (const char *const *)f->labels,
                                (const char *const *)s->values, f->nlabels, num);
        }
    }
    lev_mx_write_header(b, "lev_metrics_series_dropped_total",
                        "Label combinations not recorded: their metric had as many as it may "
                        "have, or a value was not UTF-8",
                        LEV_MX_COUNTER);
    snprintf(num, sizeof num, "%llu",
             (unsigned long long)atomic_load_explicit(&mx->dropped, memory_order_relaxed));
    lev_mx_write_sample(b, "lev_metrics_series_dropped_total", NULL, NULL, 0, num);
}
