/*
 * Deferred records and circuit breakers.
 *
 * A handler that defers its record (lev_ctx_defer) returns at once; the
 * record waits on its partition's waiting list, in offset order, until its
 * deferral is resumed from whatever thread did the work. Resumed deferrals
 * are queued under a mutex and the wake pipe is written, so the worker's
 * loop runs their resume functions on its own thread. A later record of
 * the same partition whose key matches a waiting record is parked on that
 * list too, and handled once no earlier record of its key waits.
 *
 * A breaker counts the failures its users report. Open, it keeps the
 * records of the event types that need it from their handlers: the
 * partition is seeked back to the first such record and paused until the
 * breaker half-opens or closes, so no attempt is spent during an outage.
 */
#include "worker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BREAKER_FAILURES 5
#define BREAKER_OPEN_MS 5000
#define BREAKER_OPEN_MAX_MS 60000

/* ======================================================================
 * Deferring and resuming
 * ====================================================================== */

lev_deferral_t *lev_ctx_defer(lev_ctx_t *ctx)
{
    if (!ctx)
        return NULL;
    if (!ctx->ev || !ctx->rec) {
        lev_ctx_set_error(ctx, "lev_ctx_defer outside a handler");
        return NULL;
    }
    if (ctx->deferral) {
        lev_ctx_set_error(ctx, "the record is deferred already");
        return NULL;
    }
    if (ctx->nout > 0 || ctx->nstate > 0) {
        lev_ctx_set_error(ctx, "events were emitted or state writes queued before deferring; "
                               "emit and write when resumed");
        return NULL;
    }
    lev_deferral_t *d = calloc(1, sizeof *d);
    if (!d) {
        lev_ctx_set_error(ctx, "out of memory deferring the record");
        return NULL;
    }
    d->w = ctx->w;
    d->r = ctx->rec;
    ctx->deferral = d;
    return d;
}

void lev_deferral_resume(lev_deferral_t *d, lev_resume_fn fn, void *arg)
{
    if (!d)
        return;
    lev_worker_t *w = d->w;
    d->fn = fn;
    d->arg = arg;
    d->next = NULL;
    pthread_mutex_lock(&w->defer_mu);
    if (w->resumed_tail)
        w->resumed_tail->next = d;
    else
        w->resumed = d;
    w->resumed_tail = d;
    pthread_mutex_unlock(&w->defer_mu);
    lev_w_wake(w);
}

/* Takes the resumed queue. */
static lev_deferral_t *take_resumed(lev_worker_t *w)
{
    if (!w->defer_mu_ok)
        return NULL;
    pthread_mutex_lock(&w->defer_mu);
    lev_deferral_t *d = w->resumed;
    w->resumed = w->resumed_tail = NULL;
    pthread_mutex_unlock(&w->defer_mu);
    return d;
}

int lev_w_defer_process(lev_worker_t *w)
{
    int n = 0;
    for (lev_deferral_t *d = take_resumed(w), *next; d; d = next) {
        next = d->next;
        lev_w_resume(w, d);
        n++;
    }
    return n;
}

void lev_w_defer_wait(lev_worker_t *w, wrec_t *r, lev_deferral_t *d)
{
    r->state = REC_DEFERRED;
    r->deferral = d;
    r->outstanding++; /* a given-up record lives until its resume */
    d->all_prev = NULL;
    d->all_next = w->deferrals;
    if (w->deferrals)
        w->deferrals->all_prev = d;
    w->deferrals = d;
    if (!d->internal) {
        w->ndeferred++;
        atomic_store_explicit(&w->stats.deferred, w->ndeferred, memory_order_relaxed);
        if (w->ndeferred > atomic_load_explicit(&w->stats.deferred_peak, memory_order_relaxed))
            atomic_store_explicit(&w->stats.deferred_peak, w->ndeferred, memory_order_relaxed);
    }
    if (!r->part || r->waiting)
        return;
    /* in offset order: a parked record deferred later keeps its place */
    wrec_t **at = &r->part->waiting;
    while (*at && (*at)->m->offset < r->m->offset)
        at = &(*at)->wait_next;
    r->wait_next = *at;
    *at = r;
    r->waiting = 1;
}

void lev_w_defer_untrack(lev_worker_t *w, lev_deferral_t *d)
{
    wrec_t *r = d->r;
    if (d->all_prev)
        d->all_prev->all_next = d->all_next;
    else if (w->deferrals == d)
        w->deferrals = d->all_next;
    if (d->all_next)
        d->all_next->all_prev = d->all_prev;
    d->all_prev = d->all_next = NULL;
    r->deferral = NULL;
    r->state = REC_NEW;
    r->outstanding--;
    if (!d->internal) {
        w->ndeferred--;
        atomic_store_explicit(&w->stats.deferred, w->ndeferred, memory_order_relaxed);
    }
}

void lev_w_defer_let_go(lev_worker_t *w, wrec_t *r)
{
    if (r->part)
        lev_w_abandon_from(w, r->part, r); /* frees r unless something else holds it */
    else if (r->outstanding == 0)
        lev_w_ready_push(w, r); /* given up before: the ready list frees it */
}

void lev_w_park(wrec_t *r)
{
    r->state = REC_PARKED;
    if (r->waiting)
        return;
    wrec_t **at = &r->part->waiting;
    while (*at)
        at = &(*at)->wait_next;
    r->wait_next = NULL;
    *at = r;
    r->waiting = 1;
}

static int same_key(const wrec_t *a, const wrec_t *b)
{
    return a->m->key_len == b->m->key_len && memcmp(a->m->key, b->m->key, a->m->key_len) == 0;
}

int lev_w_key_waits(const wrec_t *r)
{
    if (!r->part || !r->m->key || r->m->key_len == 0)
        return 0; /* no key, no order to keep */
    for (const wrec_t *q = r->part->waiting; q && q->m->offset < r->m->offset; q = q->wait_next)
        if (same_key(q, r))
            return 1;
    return 0;
}

void lev_w_waiting_remove(wpart_t *p, wrec_t *r)
{
    if (!r->waiting)
        return;
    for (wrec_t **at = &p->waiting; *at; at = &(*at)->wait_next) {
        if (*at == r) {
            *at = r->wait_next;
            break;
        }
    }
    r->wait_next = NULL;
    r->waiting = 0;
}

void lev_w_waiting_cut(wpart_t *p, int64_t from)
{
    wrec_t **at = &p->waiting;
    while (*at && (*at)->m->offset < from)
        at = &(*at)->wait_next;
    for (wrec_t *r = *at, *next; r; r = next) {
        next = r->wait_next;
        r->wait_next = NULL;
        r->waiting = 0;
    }
    *at = NULL;
}

void lev_w_defer_shutdown(lev_worker_t *w)
{
    /* resumed after the worker stopped: fn only releases its argument */
    for (lev_deferral_t *d = take_resumed(w), *next; d; d = next) {
        next = d->next;
        lev_w_resume(w, d);
    }
    /* never resumed: the application broke the contract; let the records
     * go (the deferrals stay the application's) */
    size_t lost = 0;
    while (w->deferrals) {
        lev_deferral_t *d = w->deferrals;
        wrec_t *r = d->r;
        lev_w_defer_untrack(w, d);
        d->r = NULL;
        lev_w_defer_let_go(w, r);
        lost++;
    }
    if (lost) {
        char n[24];
        snprintf(n, sizeof n, "%zu", lost);
        lev_log(LEV_LOG_ERROR, "worker destroyed with deferred records never resumed", "count", n,
                NULL);
    }
}

/* ======================================================================
 * Circuit breakers
 * ====================================================================== */

const char *lev_breaker_state_name(lev_breaker_state_t s)
{
    switch (s) {
    case LEV_BREAKER_CLOSED:
        return "closed";
    case LEV_BREAKER_OPEN:
        return "open";
    case LEV_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}

lev_breaker_t *lev_worker_breaker(lev_worker_t *w, const char *name, const lev_breaker_conf_t *conf,
                                  lev_error_t *err)
{
    if (!w || !name || !*name) {
        lev_error_set(err, LEV_ERR_ARG, NULL, "a breaker needs a worker and a name");
        return NULL;
    }
    if (w->running) {
        lev_error_set(err, LEV_ERR_STATE, name, "the worker is running");
        return NULL;
    }
    for (lev_breaker_t *b = w->breakers; b; b = b->next) {
        if (strcmp(b->name, name) == 0) {
            lev_error_set(err, LEV_ERR_ARG, name, "a breaker of this name exists");
            return NULL;
        }
    }
    lev_breaker_conf_t c = conf ? *conf : (lev_breaker_conf_t){0};
    if (c.failures < 0 || c.open_ms < 0 || c.open_max_ms < 0) {
        lev_error_set(err, LEV_ERR_ARG, name, "breaker settings must not be negative");
        return NULL;
    }
    if (c.failures == 0)
        c.failures = BREAKER_FAILURES;
    if (c.open_ms == 0)
        c.open_ms = BREAKER_OPEN_MS;
    if (c.open_max_ms == 0)
        c.open_max_ms = c.open_ms > BREAKER_OPEN_MAX_MS ? c.open_ms : BREAKER_OPEN_MAX_MS;
    if (c.open_max_ms < c.open_ms)
        c.open_max_ms = c.open_ms;
    lev_breaker_t *b = calloc(1, sizeof *b);
    if (!b || !(b->name = strdup(name))) {
        free(b);
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    b->w = w;
    b->conf = c;
    b->next = w->breakers;
    w->breakers = b;
    return b;
}

void lev_w_breakers_free(lev_worker_t *w)
{
    for (lev_breaker_t *b = w->breakers, *next; b; b = next) {
        next = b->next;
        free(b->name);
        free(b);
    }
    w->breakers = NULL;
}

static lev_breaker_state_t state_of(const lev_breaker_t *b)
{
    return (lev_breaker_state_t)atomic_load_explicit(&b->state, memory_order_relaxed);
}

lev_breaker_state_t lev_breaker_state(const lev_breaker_t *b)
{
    return b ? state_of(b) : LEV_BREAKER_CLOSED;
}

uint64_t lev_breaker_opened(const lev_breaker_t *b)
{
    return b ? atomic_load_explicit(&b->opened, memory_order_relaxed) : 0;
}

/* Lets every partition waiting for b fetch again. */
static void release_waiters(lev_breaker_t *b)
{
    lev_worker_t *w = b->w;
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (wpart_t *p = w->buckets[i]; p; p = p->hnext) {
            if ((p->pause & PAUSE_BREAKER) && p->breaker == b) {
                p->breaker = NULL;
                lev_w_unpause(w, p, PAUSE_BREAKER);
            }
        }
    }
}

static void set_state(lev_breaker_t *b, lev_breaker_state_t s)
{
    atomic_store_explicit(&b->state, (int)s, memory_order_relaxed);
}

static void breaker_open(lev_breaker_t *b, int64_t for_ms, const char *why)
{
    int was = state_of(b);
    b->open_for_ms = for_ms;
    b->probe_at = lev_mono_ms() + for_ms;
    b->probe = NULL;
    set_state(b, LEV_BREAKER_OPEN);
    atomic_fetch_add_explicit(&b->opened, 1, memory_order_relaxed);
    char fails[16], ms[24];
    snprintf(fails, sizeof fails, "%d", b->fails);
    snprintf(ms, sizeof ms, "%" PRId64, for_ms);
    lev_log(LEV_LOG_WARN,
            was == LEV_BREAKER_HALF_OPEN ? "circuit breaker probe failed; open again"
                                         : "circuit breaker opened",
            "breaker", b->name, "state", "open", "failures", fails, "probe_in_ms", ms, "error", why,
            NULL);
}

void lev_breaker_failure(lev_breaker_t *b, const char *why)
{
    if (!b)
        return;
    if (b->fails < INT32_MAX)
        b->fails++;
    switch (state_of(b)) {
    case LEV_BREAKER_CLOSED:
        if (b->fails >= b->conf.failures)
            breaker_open(b, b->conf.open_ms, why);
        break;
    case LEV_BREAKER_HALF_OPEN: {
        int64_t next = b->open_for_ms * 2;
        breaker_open(b, next > b->conf.open_max_ms ? b->conf.open_max_ms : next, why);
        break;
    }
    case LEV_BREAKER_OPEN: /* a call made before it opened */
        break;
    }
}

void lev_breaker_success(lev_breaker_t *b)
{
    if (!b)
        return;
    b->fails = 0;
    if (state_of(b) == LEV_BREAKER_CLOSED)
        return;
    set_state(b, LEV_BREAKER_CLOSED);
    b->probe = NULL;
    lev_log(LEV_LOG_INFO, "circuit breaker closed", "breaker", b->name, "state", "closed", NULL);
    release_waiters(b);
}

static void half_open(lev_breaker_t *b)
{
    set_state(b, LEV_BREAKER_HALF_OPEN);
    b->probe = NULL;
    lev_log(LEV_LOG_INFO, "circuit breaker half-open; probing", "breaker", b->name, "state",
            "half-open", NULL);
    release_waiters(b);
}

int lev_w_breakers_tick(lev_worker_t *w, int cap_ms)
{
    int64_t now = lev_mono_ms(), next = now + cap_ms;
    for (lev_breaker_t *b = w->breakers; b; b = b->next) {
        lev_breaker_state_t s = state_of(b);
        if (s == LEV_BREAKER_OPEN) {
            if (b->probe_at <= now)
                half_open(b);
            else if (b->probe_at < next)
                next = b->probe_at;
        } else if (s == LEV_BREAKER_HALF_OPEN && b->probe) {
            /* a probe that never reports (its record was given up before it
             * ran, say) must not keep the breaker half-open for good */
            int64_t until = b->probe_since + b->conf.open_max_ms;
            if (until <= now)
                half_open(b);
            else if (until < next)
                next = until;
        }
    }
    return (int)(next - now);
}

int lev_w_breaker_admit(lev_worker_t *w, wrec_t *r)
{
    lev_breaker_t *b = r->handler ? r->handler->breaker : NULL;
    if (!b)
        return 1;
    if (state_of(b) == LEV_BREAKER_OPEN && b->probe_at <= lev_mono_ms())
        half_open(b);
    switch (state_of(b)) {
    case LEV_BREAKER_CLOSED:
        return 1;
    case LEV_BREAKER_HALF_OPEN:
        if (!b->probe || b->probe == r) {
            b->probe = r;
            b->probe_since = lev_mono_ms();
            return 1;
        }
        break;
    case LEV_BREAKER_OPEN:
        break;
    }
    lev_w_breaker_hold(w, r);
    return 0;
}

int lev_w_breaker_blocks(const wrec_t *r)
{
    lev_breaker_t *b = r->handler ? r->handler->breaker : NULL;
    return b && state_of(b) != LEV_BREAKER_CLOSED;
}

void lev_w_breaker_hold(lev_worker_t *w, wrec_t *r)
{
    wpart_t *p = r->part;
    lev_breaker_t *b = r->handler->breaker;
    if (!p)
        return;
    int64_t offset = r->m->offset;
    W_STAT_ADD(w, breaker_waits, 1);
    lev_w_abandon_from(w, p, r);
    p->next_offset = offset;
    p->breaker = b;
    lev_w_pause(w, p, PAUSE_BREAKER);
    lev_w_seek(w, p, offset);
}

void lev_w_breaker_done(wrec_t *r)
{
    lev_breaker_t *b = r->handler ? r->handler->breaker : NULL;
    if (b && state_of(b) == LEV_BREAKER_HALF_OPEN && b->probe == r)
        b->probe = NULL;
}

int lev_worker_needs(lev_worker_t *w, const char *type, lev_breaker_t *b, lev_error_t *err)
{
    if (!w || !type || !b || b->w != w)
        return lev_error_set(err, LEV_ERR_ARG, type, "a type and a breaker of this worker");
    if (w->running)
        return lev_error_set(err, LEV_ERR_STATE, type, "the worker is running");
    for (size_t i = 0; i < w->nhandlers; i++) {
        if (strcmp(w->handlers[i].type, type) == 0) {
            w->handlers[i].breaker = b;
            return LEV_OK;
        }
    }
    return lev_error_set(err, LEV_ERR_NOT_FOUND, type, "no handler for this type (lev_worker_on)");
}
