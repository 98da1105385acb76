/*
 * Batched service state: keyed records in Redis a handler reads and
 * conditionally writes, with a constant number of round trips per poll
 * batch whatever its size.
 *
 *   read    Before a batch is handled, the state keys its records name
 *           ("<prefix><Kafka key>" for the types given a prefix with
 *           lev_worker_state_prefetch) are read in one MGET into a cache;
 *           lev_ctx_state_get serves from it (a key not prefetched is read
 *           on its own, once, and cached).
 *   write   lev_ctx_state_cas only queues the compare-and-set. A handler
 *           that returns OK with writes queued does not send its outputs:
 *           the record waits, as a deferred one does (later records of its
 *           key are parked behind it), with its outputs kept aside. Once
 *           the batch (or the resumes of a turn) is handled, every queued
 *           write goes to Redis in one pipelined round trip, in order; a
 *           record whose writes all swapped sends its outputs, one whose
 *           write lost (another writer was first, or Redis failed) sends
 *           nothing and is handled again, as a transient failure, reading
 *           the state afresh.
 * So the state is written before any output is sent, as with a direct
 * compare-and-set: a crash in between redelivers the input, whose handler
 * finds the state naming its own event.
 */
#include "worker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * The cache of one batch
 * ====================================================================== */

typedef struct scache_ent_s {
    char *key;   /* NULL: empty slot */
    char *value; /* NULL: absent in Redis */
    uint64_t hash;
} scache_ent_t;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static scache_ent_t *cache_find(lev_worker_t *w, const char *key, uint64_t h)
{
    if (!w->scache_cap)
        return NULL;
    for (size_t i = (size_t)h & (w->scache_cap - 1);; i = (i + 1) & (w->scache_cap - 1)) {
        scache_ent_t *e = &w->scache[i];
        if (!e->key || (e->hash == h && strcmp(e->key, key) == 0))
            return e;
    }
}

void lev_w_state_cache_clear(lev_worker_t *w)
{
    for (size_t i = 0; i < w->scache_cap && w->scache_n; i++) {
        scache_ent_t *e = &w->scache[i];
        if (e->key) {
            free(e->key);
            free(e->value);
            e->key = e->value = NULL;
            w->scache_n--;
        }
    }
    w->scache_n = 0;
}

/* Stores key -> value (a copy; value NULL: absent). 0, or -1 out of memory. */
static int cache_put(lev_worker_t *w, const char *key, const char *value)
{
    if ((w->scache_n + 1) * 2 > w->scache_cap) {
        size_t cap = w->scache_cap ? w->scache_cap * 2 : 256;
        scache_ent_t *old = w->scache, *nt = calloc(cap, sizeof *nt);
        size_t oldcap = w->scache_cap;
        if (!nt)
            return -1;
        w->scache = nt;
        w->scache_cap = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].key)
                *cache_find(w, old[i].key, old[i].hash) = old[i];
        free(old);
    }
    uint64_t h = str_hash(key);
    scache_ent_t *e = cache_find(w, key, h);
    char *v = value ? strdup(value) : NULL;
    if (value && !v)
        return -1;
    if (e->key) {
        free(e->value);
        e->value = v;
        return 0;
    }
    if (!(e->key = strdup(key))) {
        free(v);
        return -1;
    }
    e->value = v;
    e->hash = h;
    w->scache_n++;
    return 0;
}

/* Drops a key from the cache (read again next time). */
static void cache_forget(lev_worker_t *w, const char *key)
{
    scache_ent_t *e = cache_find(w, key, str_hash(key));
    if (!e || !e->key)
        return;
    /* open addressing: re-place the run after it */
    free(e->key);
    free(e->value);
    e->key = e->value = NULL;
    w->scache_n--;
    size_t i = (size_t)(e - w->scache);
    for (size_t j = (i + 1) & (w->scache_cap - 1); w->scache[j].key;
         j = (j + 1) & (w->scache_cap - 1)) {
        scache_ent_t moved = w->scache[j];
        w->scache[j].key = NULL;
        *cache_find(w, moved.key, moved.hash) = moved;
    }
}

void lev_w_state_free(lev_worker_t *w)
{
    lev_w_state_cache_clear(w);
    free(w->scache);
    w->scache = NULL;
    w->scache_cap = 0;
    free(w->spending);
    w->spending = NULL;
    w->nspending = w->capspending = 0;
}

/* ======================================================================
 * Prefetch
 * ====================================================================== */

int lev_worker_state_prefetch(lev_worker_t *w, const char *type, const char *prefix,
                              lev_error_t *err)
{
    if (!w || !type || !prefix)
        return lev_error_set(err, LEV_ERR_ARG, type, "a type and a key prefix");
    if (w->running)
        return lev_error_set(err, LEV_ERR_STATE, type, "the worker is running");
    for (size_t i = 0; i < w->nhandlers; i++) {
        if (strcmp(w->handlers[i].type, type) == 0) {
            char *p = strdup(prefix);
            if (!p)
                return lev_error_set(err, LEV_ERR_NOMEM, type, "out of memory");
            free(w->handlers[i].state_prefix);
            w->handlers[i].state_prefix = p;
            w->has_state_prefix = 1;
            return LEV_OK;
        }
    }
    return lev_error_set(err, LEV_ERR_NOT_FOUND, type, "no handler for this type (lev_worker_on)");
}

/* The state key a record names: its handler's prefix and its Kafka key. */
static char *record_state_key(const wrec_t *r)
{
    const char *prefix = r->handler ? r->handler->state_prefix : NULL;
    const rd_kafka_message_t *m = r->m;
    if (!prefix || !m->key || m->key_len == 0 || memchr(m->key, '\0', m->key_len))
        return NULL;
    size_t pl = strlen(prefix);
    char *k = malloc(pl + m->key_len + 1);
    if (!k)
        return NULL;
    memcpy(k, prefix, pl);
    memcpy(k + pl, m->key, m->key_len);
    k[pl + m->key_len] = '\0';
    return k;
}

void lev_w_state_prefetch(lev_worker_t *w, wrec_t **recs, size_t n)
{
    if (!w->app_store)
        return;
    /* a batch reads afresh; this also bounds what keys read on demand
     * (without a prefetch prefix) keep in the cache */
    lev_w_state_cache_clear(w);
    if (!w->has_state_prefix)
        return;
    char **keys = malloc(n * sizeof *keys);
    char **values = malloc(n * sizeof *values);
    size_t k = 0;
    if (!keys || !values)
        goto out;
    for (size_t i = 0; i < n; i++) {
        wrec_t *r = recs[i];
        if (!r->part || r->state != REC_NEW || r->bad_id || r->frame_rc ||
            (r->claim != CLAIM_OWNED && r->claim != CLAIM_NONE))
            continue;
        char *key = record_state_key(r);
        if (!key)
            continue;
        int seen = 0;
        for (size_t j = 0; j < k && !seen; j++) /* keys of a batch repeat rarely */
            seen = strcmp(keys[j], key) == 0;
        if (seen)
            free(key);
        else
            keys[k++] = key;
    }
    if (k == 0)
        goto out;
    lev_error_t err;
    if (lev_store_get_many(w->app_store, (const char *const *)keys, k, values, &err) != 0) {
        /* the handlers read their keys themselves, and meet the failure there */
        lev_log(LEV_LOG_WARN, "cannot read the batch's state", "error", err.text, NULL);
        goto out;
    }
    for (size_t j = 0; j < k; j++) {
        if (cache_put(w, keys[j], values[j]) != 0)
            lev_w_state_cache_clear(w); /* out of memory: read one by one */
        free(values[j]);
    }
out:
    for (size_t j = 0; j < k; j++)
        free(keys[j]);
    free(keys);
    free(values);
}

/* ======================================================================
 * The handler's side
 * ====================================================================== */

int lev_ctx_state_get(lev_ctx_t *ctx, const char *key, char **value, lev_error_t *err)
{
    if (!ctx || !key || !value)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "a key and a place for its value");
    *value = NULL;
    lev_worker_t *w = ctx->w;
    if (!w->app_store)
        return lev_error_set(err, LEV_ERR_STATE, key, "no Redis (REDIS_URL) for the state");
    /* a write queued in this call is what this handler reads back */
    for (size_t i = ctx->nstate; i-- > 0;) {
        if (strcmp(ctx->state[i].key, key) == 0) {
            *value = strdup(ctx->state[i].value);
            return *value ? LEV_OK : lev_error_set(err, LEV_ERR_NOMEM, key, "out of memory");
        }
    }
    scache_ent_t *e = cache_find(w, key, str_hash(key));
    if (e && e->key) {
        if (e->value && !(*value = strdup(e->value)))
            return lev_error_set(err, LEV_ERR_NOMEM, key, "out of memory");
        return LEV_OK;
    }
    int rc = lev_store_get(w->app_store, key, value, err);
    if (rc == 0 && cache_put(w, key, *value) != 0)
        lev_w_state_cache_clear(w);
    return rc;
}

int lev_ctx_state_cas(lev_ctx_t *ctx, const char *key, const char *expect, const char *value,
                      int64_t ttl_ms, lev_error_t *err)
{
    if (!ctx || !key || !value || ttl_ms < 0)
        return lev_error_set(err, LEV_ERR_ARG, key, "a key, a value and a TTL of 0 or more");
    if (!ctx->ev || !ctx->rec)
        return lev_error_set(err, LEV_ERR_STATE, key, "lev_ctx_state_cas outside a handler");
    if (ctx->deferral)
        return lev_error_set(err, LEV_ERR_STATE, key,
                             "the record is deferred: write the state when it is resumed");
    if (!ctx->w->app_store)
        return lev_error_set(err, LEV_ERR_STATE, key, "no Redis (REDIS_URL) for the state");
    if (ctx->nstate == ctx->capstate) {
        size_t cap = ctx->capstate ? ctx->capstate * 2 : 4;
        wstate_op_t *ns = realloc(ctx->state, cap * sizeof *ns);
        if (!ns)
            return lev_error_set(err, LEV_ERR_NOMEM, key, "out of memory");
        ctx->state = ns;
        ctx->capstate = cap;
    }
    wstate_op_t *op = &ctx->state[ctx->nstate];
    op->key = strdup(key);
    op->expect = expect ? strdup(expect) : NULL;
    op->value = strdup(value);
    op->ttl_ms = ttl_ms;
    if (!op->key || !op->value || (expect && !op->expect)) {
        free(op->key);
        free(op->expect);
        free(op->value);
        return lev_error_set(err, LEV_ERR_NOMEM, key, "out of memory");
    }
    ctx->nstate++;
    return LEV_OK;
}

int lev_ctx_on_commit(lev_ctx_t *ctx, lev_commit_fn fn, void *arg, lev_error_t *err)
{
    if (!ctx || !fn)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "a function to call");
    if (!ctx->ev || !ctx->rec || ctx->deferral)
        return lev_error_set(err, LEV_ERR_STATE, NULL,
                             "lev_ctx_on_commit outside a handler or in a call that deferred");
    if (ctx->ncommits == ctx->capcommits) {
        size_t cap = ctx->capcommits ? ctx->capcommits * 2 : 4;
        wcommit_t *nc = realloc(ctx->commits, cap * sizeof *nc);
        if (!nc)
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        ctx->commits = nc;
        ctx->capcommits = cap;
    }
    ctx->commits[ctx->ncommits++] = (wcommit_t){fn, arg};
    return LEV_OK;
}

void lev_w_ctx_commits_run(lev_ctx_t *ctx, int committed)
{
    size_t n = ctx->ncommits;
    ctx->ncommits = 0; /* a function registering again is not called twice */
    for (size_t i = 0; i < n; i++)
        ctx->commits[i].fn(committed, ctx->commits[i].arg);
}

static void commits_run(wcommit_t *c, size_t n, int committed)
{
    for (size_t i = 0; i < n; i++)
        c[i].fn(committed, c[i].arg);
}

void lev_w_ctx_state_clear(lev_ctx_t *ctx)
{
    lev_w_ctx_commits_run(ctx, 0);
    for (size_t i = 0; i < ctx->nstate; i++) {
        free(ctx->state[i].key);
        free(ctx->state[i].expect);
        free(ctx->state[i].value);
    }
    ctx->nstate = 0;
}

/* ======================================================================
 * Holding a record until its writes are in
 * ====================================================================== */

/* A record waiting for its writes: the writes, and its outputs kept aside
 * (the context's buffer and output slots, copied). */
typedef struct wstate_hold_s {
    lev_deferral_t *d;
    wstate_op_t *ops;
    size_t nops;
    int ok;        /* every write swapped */
    char why[600]; /* else what happened */
    char *buf;     /* the outputs' topics, keys and values */
    size_t len;
    wout_t *out;
    size_t nout;
    wcommit_t *commits; /* told once the writes are in, or not */
    size_t ncommits;
} wstate_hold_t;

static void hold_free(wstate_hold_t *h)
{
    for (size_t i = 0; i < h->nops; i++) {
        free(h->ops[i].key);
        free(h->ops[i].expect);
        free(h->ops[i].value);
    }
    free(h->ops);
    free(h->buf);
    free(h->out);
    free(h->commits);
    free(h);
}

/* The resume function of a held record: its outputs, or handled again. */
static lev_result_t state_resume(lev_ctx_t *ctx, const lev_event_t *ev, void *arg)
{
    wstate_hold_t *h = arg;
    (void)ev;
    lev_result_t res = LEV_RESULT_TRANSIENT;
    h->d->w->nheld_state--;
    if (!ctx) { /* the worker stopped: nothing goes out */
        commits_run(h->commits, h->ncommits, 0);
        hold_free(h);
        return res;
    }
    if (!h->ok) {
        lev_ctx_set_error(ctx, "%s", h->why);
    } else if (lev_w_ctx_restore(ctx, h->buf, h->len, h->out, h->nout) != 0) {
        /* the state is in: handled again, the handler finds it and emits */
        lev_ctx_set_error(ctx, "out of memory restoring the outputs");
    } else {
        res = LEV_RESULT_OK;
    }
    commits_run(h->commits, h->ncommits, h->ok);
    hold_free(h);
    return res;
}

int lev_w_state_hold(lev_worker_t *w, wrec_t *r, lev_ctx_t *ctx)
{
    wstate_hold_t *h = calloc(1, sizeof *h);
    lev_deferral_t *d = calloc(1, sizeof *d);
    if (!h || !d || (w->nspending == w->capspending && lev_w_grow_pending(w) != 0))
        goto nomem;
    h->ops = malloc(ctx->nstate * sizeof *h->ops);
    h->buf = ctx->len ? malloc(ctx->len) : NULL;
    h->out = ctx->nout ? malloc(ctx->nout * sizeof *h->out) : NULL;
    h->commits = ctx->ncommits ? malloc(ctx->ncommits * sizeof *h->commits) : NULL;
    if (!h->ops || (ctx->len && !h->buf) || (ctx->nout && !h->out) ||
        (ctx->ncommits && !h->commits))
        goto nomem;
    memcpy(h->commits, ctx->commits, ctx->ncommits * sizeof *h->commits);
    h->ncommits = ctx->ncommits;
    ctx->ncommits = 0; /* the hold's now */
    memcpy(h->ops, ctx->state, ctx->nstate * sizeof *h->ops);
    h->nops = ctx->nstate;
    ctx->nstate = 0; /* the strings are the hold's now */
    if (ctx->len)
        memcpy(h->buf, ctx->buf, ctx->len);
    h->len = ctx->len;
    for (size_t i = 0; i < ctx->nout; i++)
        lev_w_wout_copy(&h->out[i], ctx->out[i]);
    h->nout = ctx->nout;
    d->w = w;
    d->r = r;
    d->internal = 1;
    h->d = d;
    lev_w_defer_wait(w, r, d);
    w->spending[w->nspending++] = h;
    w->nheld_state++;
    return 0;
nomem:
    if (h) {
        free(h->ops);
        free(h->buf);
        free(h->out);
        free(h->commits);
    }
    free(h);
    free(d);
    return -1;
}

int lev_w_grow_pending(lev_worker_t *w)
{
    size_t cap = w->capspending ? w->capspending * 2 : 64;
    void **np = realloc(w->spending, cap * sizeof *np);
    if (!np)
        return -1;
    w->spending = np;
    w->capspending = cap;
    return 0;
}

void lev_w_state_flush(lev_worker_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nspending; i++)
        n += ((wstate_hold_t *)w->spending[i])->nops;
    if (n == 0 && w->nspending == 0)
        return;
    const char **keys = malloc(n * sizeof *keys), **expect = malloc(n * sizeof *expect);
    const char **values = malloc(n * sizeof *values);
    int64_t *ttl = malloc(n * sizeof *ttl);
    int *swapped = calloc(n, sizeof *swapped);
    lev_error_t err = {0};
    int rc = keys && expect && values && ttl && swapped
                 ? 0
                 : lev_error_set(&err, LEV_ERR_NOMEM, NULL, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < w->nspending && rc == 0; i++) {
        wstate_hold_t *h = w->spending[i];
        for (size_t j = 0; j < h->nops; j++, k++) {
            keys[k] = h->ops[j].key;
            expect[k] = h->ops[j].expect;
            values[k] = h->ops[j].value;
            ttl[k] = h->ops[j].ttl_ms;
        }
    }
    if (rc == 0)
        rc = lev_store_cas_many(w->app_store, keys, expect, values, ttl, n, swapped, &err);
    k = 0;
    for (size_t i = 0; i < w->nspending; i++) {
        wstate_hold_t *h = w->spending[i];
        h->ok = rc == 0;
        if (rc != 0)
            snprintf(h->why, sizeof h->why, "cannot write the state: %s", err.text);
        for (size_t j = 0; j < h->nops; j++, k++) {
            if (rc == 0 && !swapped[k] && h->ok) {
                h->ok = 0;
                W_STAT_ADD(w, state_conflicts, 1);
                snprintf(h->why, sizeof h->why,
                         "the state at %.200s changed meanwhile (compare-and-set lost); the event "
                         "is handled again",
                         h->ops[j].key);
            }
            /* what is in Redis now: ours when it swapped, else unknown */
            if (rc == 0 && swapped[k] && cache_put(w, h->ops[j].key, h->ops[j].value) == 0)
                continue;
            cache_forget(w, h->ops[j].key);
        }
        lev_deferral_resume(h->d, state_resume, h);
    }
    w->nspending = 0;
    free(keys);
    free(expect);
    free(values);
    free(ttl);
    free(swapped);
}
