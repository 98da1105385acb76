/*
 * The worker's side of the idempotency store: the claim key of a record,
 * the lists of keys to claim, complete and release, and the round trip that
 * carries them. While one round trip is under way (begun before a batch is
 * handled, ended in the next step), what comes meanwhile collects in the
 * other set of lists.
 */
#include "worker_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys longer than this are hashed. */
#define CLAIM_KEY_READABLE_MAX 400

/* The claim key of a record. CloudEvents makes source and id together
 * unique, so both are in it: "<group>:<id>" for an event without a source,
 * else "<group>:<source length>:<source>:<id>" (the length makes it
 * unambiguous whatever the source holds); when that is longer than
 * CLAIM_KEY_READABLE_MAX, "<group>:sha256:<hex>" of the part after the
 * group. Never cut. */
static int claim_key(const lev_worker_t *w, const wrec_t *r, char *buf, size_t size)
{
    const whdr_t *src = &r->h[H_SOURCE];
    size_t gl = strlen(w->group), il = strlen(r->id);
    char small[CLAIM_KEY_READABLE_MAX + 64];
    size_t need = il + src->len + 32;
    char *tail = need <= sizeof small ? small : malloc(need);
    if (!tail)
        return -1;
    int tl;
    if (src->ptr && src->len) {
        tl = (int)lev_put_size(tail, src->len);
        tail[tl++] = ':';
        memcpy(tail + tl, src->ptr, src->len);
        tl += (int)src->len;
        tail[tl++] = ':';
    } else {
        tl = 0;
    }
    memcpy(tail + tl, r->id, il);
    tl += (int)il;
    int n = -1;
    if (gl + 1 + (size_t)tl <= CLAIM_KEY_READABLE_MAX && gl + 2 + (size_t)tl <= size) {
        memcpy(buf, w->group, gl);
        buf[gl] = ':';
        memcpy(buf + gl + 1, tail, (size_t)tl);
        buf[gl + 1 + (size_t)tl] = '\0';
        n = (int)(gl + 1 + (size_t)tl);
    } else if (gl + 8 + 64 + 1 <= size) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (EVP_Digest(tail, (size_t)tl, md, &mdlen, EVP_sha256(), NULL) == 1) {
            memcpy(buf, w->group, gl);
            memcpy(buf + gl, ":sha256:", 8);
            lev_hex(md, mdlen, buf + gl + 8);
            n = (int)(gl + 8 + 2 * mdlen);
        }
    }
    if (tail != small)
        free(tail);
    return n;
}

/* ======================================================================
 * Key lists
 * ====================================================================== */

static int wkeys_add(wkeys_t *k, const char *s, size_t len)
{
    if (lev_grow(&k->buf, &k->cap, k->len + len + 1, 1, 4096) != 0 ||
        lev_grow(&k->off, &k->capn, k->n + 1, sizeof *k->off, 64) != 0)
        return -1;
    k->off[k->n++] = k->len;
    memcpy(k->buf + k->len, s, len);
    k->len += len;
    k->buf[k->len++] = '\0';
    return 0;
}

/* The keys as an array of pointers (valid until the next add). */
static const char **wkeys_ptrs(wkeys_t *k)
{
    if (k->n > k->capp) {
        const char **np = realloc(k->ptrs, k->n * sizeof *np);
        if (!np)
            return NULL;
        k->ptrs = np;
        k->capp = k->n;
    }
    for (size_t i = 0; i < k->n; i++)
        k->ptrs[i] = k->buf + k->off[i];
    return k->ptrs;
}

static void wkeys_clear(wkeys_t *k)
{
    k->len = 0;
    k->n = 0;
}

int lev_w_pending_settles(const lev_worker_t *w)
{
    int a = w->acc;
    return w->done[a].n + w->rel[a].n + w->dead[a].n + w->renew[a].n > 0;
}

/* Provenance marks are cut here (a redrive's is "<topic>/<partition>/<offset>"). */
#define MARK_MAX 512

/* The mark r's dead-lettering leaves on its key: "X:" and the redrive it
 * came from ("" for a record not redriven). Returns its length. */
static size_t dead_mark(const wrec_t *r, char *buf)
{
    const whdr_t *h = &r->h[H_REDRIVE_FROM];
    size_t len = h->ptr && h->len < MARK_MAX ? h->len : h->ptr ? MARK_MAX : 0;
    memcpy(buf, "X:", 2);
    if (len)
        memcpy(buf + 2, h->ptr, len);
    buf[2 + len] = '\0';
    return 2 + len;
}

/* Queues what a record's claim becomes now that the record is finished or
 * given up: done when its handler succeeded and every output was
 * acknowledged; marked dead-lettered when its dead letter was, so that a
 * copy fetched again (after a seek back or a restart) is not handled a
 * second time while a redrive of it is; else released for whoever handles
 * it next. */
void lev_w_settle_rec(lev_worker_t *w, wrec_t *r)
{
    if (r->claim != CLAIM_OWNED)
        return;
    char key[W_NAME_MAX + CLAIM_KEY_READABLE_MAX + 16];
    int n = claim_key(w, r, key, sizeof key);
    if (n < 0)
        return;
    int a = w->acc, rc;
    if (r->state == REC_DONE && (r->route == ROUTE_DLQ || r->route == ROUTE_DLQ_BARE)) {
        char mark[MARK_MAX + 3];
        size_t ml = dead_mark(r, mark);
        rc = wkeys_add(&w->dead[a], key, (size_t)n);
        if (rc == 0 && (rc = wkeys_add(&w->deadmark[a], mark, ml)) != 0)
            w->dead[a].n--; /* the lists stay parallel */
    } else {
        int done = r->handled && r->route == ROUTE_OUTPUTS && r->state == REC_DONE;
        rc = wkeys_add(done ? &w->done[a] : &w->rel[a], key, (size_t)n);
    }
    if (rc != 0)
        lev_log(LEV_LOG_WARN, "out of memory queueing a claim settle; it expires with its lease",
                "event_id", r->id, NULL);
    r->claim = CLAIM_NONE;
}

/* Begins a round trip with the settles collected so far and the claims of
 * w->batch; the lists flip, so what comes meanwhile collects apart. */
int lev_w_exchange_begin(lev_worker_t *w, lev_error_t *err)
{
    int a = w->acc;
    const char **done = wkeys_ptrs(&w->done[a]);
    const char **rel = wkeys_ptrs(&w->rel[a]);
    const char **renew = wkeys_ptrs(&w->renew[a]);
    const char **claims = wkeys_ptrs(&w->claims[a]);
    const char **dead = wkeys_ptrs(&w->dead[a]);
    const char **deadmark = wkeys_ptrs(&w->deadmark[a]);
    const char **claimmark = wkeys_ptrs(&w->claimmark[a]);
    if ((!done && w->done[a].n) || (!rel && w->rel[a].n) || (!renew && w->renew[a].n) ||
        (!claims && w->claims[a].n) || (!dead && w->dead[a].n) || (!deadmark && w->deadmark[a].n) ||
        (!claimmark && w->claimmark[a].n))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    const lev_store_lists_t l = {
        .done = done,
        .ndone = w->done[a].n,
        .done_ttl_ms = w->conf.done_ttl_ms,
        .rel = rel,
        .nrel = w->rel[a].n,
        .dead = dead,
        .dead_mark = deadmark,
        .ndead = w->dead[a].n,
        .renew = renew,
        .nrenew = w->renew[a].n,
        .claim = claims,
        .nclaim = w->claims[a].n,
        .claim_mark = w->claimmark[a].n ? claimmark : NULL,
        .lease_ms = w->conf.lease_ms,
    };
    int rc = lev_store_exchange_begin(w->store, &l, err);
    if (rc != 0)
        return rc;
    w->exchanging = 1;
    w->acc = !a;
    wkeys_clear(&w->done[w->acc]);
    wkeys_clear(&w->rel[w->acc]);
    wkeys_clear(&w->dead[w->acc]);
    wkeys_clear(&w->deadmark[w->acc]);
    wkeys_clear(&w->renew[w->acc]);
    wkeys_clear(&w->claims[w->acc]);
    wkeys_clear(&w->claimmark[w->acc]);
    return LEV_OK;
}

/* Moves the keys of `from` to the end of `to` (settles sent again later). */
static void wkeys_merge(wkeys_t *to, wkeys_t *from)
{
    for (size_t i = 0; i < from->n; i++) {
        const char *k = from->buf + from->off[i];
        if (wkeys_add(to, k, strlen(k)) != 0)
            lev_log(LEV_LOG_WARN, "out of memory keeping a claim settle; it expires with its lease",
                    NULL);
    }
    wkeys_clear(from);
}

/* Moves the keys of `from` and their marks to the ends of `to` and
 * `tomark`, keeping them parallel. */
static void wkeys_merge_pairs(wkeys_t *to, wkeys_t *tomark, wkeys_t *from, wkeys_t *frommark)
{
    for (size_t i = 0; i < from->n && i < frommark->n; i++) {
        const char *k = from->buf + from->off[i], *m = frommark->buf + frommark->off[i];
        if (wkeys_add(to, k, strlen(k)) != 0) {
            lev_log(LEV_LOG_WARN, "out of memory keeping a claim settle; it expires with its lease",
                    NULL);
        } else if (wkeys_add(tomark, m, strlen(m)) != 0) {
            to->n--;
            lev_log(LEV_LOG_WARN, "out of memory keeping a claim settle; it expires with its lease",
                    NULL);
        }
    }
    wkeys_clear(from);
    wkeys_clear(frommark);
}

/* Reads the replies of the round trip under way: the claims of w->prev
 * (in order, into its records). On failure the settles it carried are
 * collected again, to go with the next one. */
int lev_w_exchange_end(lev_worker_t *w, lev_error_t *err)
{
    int f = !w->acc; /* the lists in flight */
    size_t n = w->claims[f].n;
    w->exchanging = 0;
    if (n > w->cap_res) {
        lev_claim_t *nr = realloc(w->claim_res, n * sizeof *nr);
        if (!nr) {
            lev_store_exchange_abort(w->store);
            lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
            goto fail;
        }
        w->claim_res = nr;
        w->cap_res = n;
    }
    size_t nrenew = w->renew[f].n;
    if (nrenew > w->cap_renew_ok) {
        int *no = realloc(w->renew_ok, nrenew * sizeof *no);
        if (!no) {
            lev_store_exchange_abort(w->store);
            lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
            goto fail;
        }
        w->renew_ok = no;
        w->cap_renew_ok = nrenew;
    }
    if (lev_store_exchange_end(w->store, NULL, w->renew_ok, w->claim_res, err) != 0)
        goto fail;
    for (size_t i = 0; i < nrenew; i++)
        if (!w->renew_ok[i])
            lev_log(LEV_LOG_WARN,
                    "an idempotency lease ran out before its record finished; "
                    "another consumer may handle the event too (raise LEV_IDEMPOTENCY_LEASE_MS)",
                    "key", w->renew[f].buf + w->renew[f].off[i], NULL);
    wkeys_clear(&w->done[f]);
    wkeys_clear(&w->rel[f]);
    wkeys_clear(&w->dead[f]);
    wkeys_clear(&w->deadmark[f]);
    wkeys_clear(&w->renew[f]);
    wkeys_clear(&w->claims[f]);
    wkeys_clear(&w->claimmark[f]);
    int64_t renew_at = lev_mono_ms() + w->conf.lease_ms / 3;
    size_t k = 0;
    for (size_t i = 0; i < w->nprev && k < n; i++) {
        wrec_t *r = w->prev[i];
        if (r->claim != CLAIM_NEEDED)
            continue;
        lev_claim_t c = w->claim_res[k++];
        if ((unsigned)c < W_CLAIM_RESULTS)
            lev_mx_add(w->obs.claims[c], 1);
        r->claim = c == LEV_CLAIM_OWNED  ? CLAIM_OWNED
                   : c == LEV_CLAIM_DONE ? CLAIM_DONE
                   : c == LEV_CLAIM_DEAD ? CLAIM_DEAD
                                         : CLAIM_BUSY;
        r->renew_at = renew_at;
        if (!r->part && r->claim == CLAIM_OWNED) /* given up meanwhile */
            lev_w_settle_rec(w, r);
    }
    return LEV_OK;
fail:
    wkeys_merge(&w->done[w->acc], &w->done[f]);
    wkeys_merge(&w->rel[w->acc], &w->rel[f]);
    wkeys_merge_pairs(&w->dead[w->acc], &w->deadmark[w->acc], &w->dead[f], &w->deadmark[f]);
    wkeys_clear(&w->renew[f]); /* the next sweeps queue them again */
    wkeys_clear(&w->claims[f]);
    wkeys_clear(&w->claimmark[f]);
    return LEV_ERR_REDIS;
}

/* Queues r's lease extension when it is due. */
static void renew_rec(lev_worker_t *w, wrec_t *r, int64_t now)
{
    if (r->claim != CLAIM_OWNED || r->renew_at > now)
        return;
    char key[W_NAME_MAX + CLAIM_KEY_READABLE_MAX + 16];
    int n = claim_key(w, r, key, sizeof key);
    if (n > 0 && wkeys_add(&w->renew[w->acc], key, (size_t)n) == 0)
        r->renew_at = now + w->conf.lease_ms / 3;
}

int lev_w_renew_sweep(lev_worker_t *w)
{
    int64_t now = lev_mono_ms();
    if (!w->store || w->store_down)
        return INT32_MAX;
    if (now < w->renew_sweep_at)
        return (int)(w->renew_sweep_at - now);
    int64_t every = w->conf.lease_ms / 6 > 0 ? w->conf.lease_ms / 6 : 1;
    w->renew_sweep_at = now + every;
    for (size_t i = 0; i < w->nbuckets; i++)
        for (wpart_t *p = w->buckets[i]; p; p = p->hnext)
            for (wrec_t *r = p->head; r; r = r->next)
                renew_rec(w, r, now);
    /* deferred records given up by their partition still do their work */
    for (lev_deferral_t *d = w->deferrals; d; d = d->all_next)
        if (d->r)
            renew_rec(w, d->r, now);
    return (int)every;
}

/* Redis stopped answering: every partition waits until it is back. */
void lev_w_store_lost(lev_worker_t *w, const lev_error_t *err)
{
    if (!w->store_down)
        lev_log(LEV_LOG_WARN, "idempotency store unavailable; pausing", "error", err->text, NULL);
    w->store_down = 1;
    w->store_delay_ms = 100;
    w->store_retry_at = lev_mono_ms() + w->store_delay_ms;
    lev_w_pause_all(w, PAUSE_STORE);
}

/* Holds every record of `recs` that waits for its claim: without Redis it
 * cannot go on, it is fetched again later. */
void lev_w_hold_unclaimed(lev_worker_t *w, wrec_t **recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (recs[i]->part && recs[i]->claim == CLAIM_NEEDED)
            lev_w_hold(w, recs[i], lev_mono_ms());
}

int lev_w_settle(lev_worker_t *w)
{
    if (!w->store)
        return 0;
    lev_error_t err;
    if (w->exchanging && lev_w_exchange_end(w, &err) != 0) {
        lev_w_hold_unclaimed(w, w->prev, w->nprev);
        lev_w_store_lost(w, &err);
        return -1;
    }
    if (!lev_w_pending_settles(w))
        return 0;
    /* claims are only collected and sent within a pipeline step: settles only */
    if (lev_w_exchange_begin(w, &err) == 0 && lev_w_exchange_end(w, &err) == 0)
        return 0;
    lev_w_store_lost(w, &err);
    return -1;
}

int lev_w_claim_queue(lev_worker_t *w, wrec_t *r)
{
    char key[W_NAME_MAX + CLAIM_KEY_READABLE_MAX + 16];
    int n = claim_key(w, r, key, sizeof key);
    wkeys_t *claims = &w->claims[w->acc], *marks = &w->claimmark[w->acc];
    if (n <= 0 || wkeys_add(claims, key, (size_t)n) != 0)
        return -1;
    /* marks are kept only once a redriven record is among the claims */
    if (!r->h[H_REDRIVE_FROM].ptr && marks->n == 0)
        return 0;
    while (marks->n + 1 < claims->n)
        if (wkeys_add(marks, "", 0) != 0)
            goto fail;
    char mark[MARK_MAX + 3];
    size_t ml = r->h[H_REDRIVE_FROM].ptr ? dead_mark(r, mark) : 0;
    if (wkeys_add(marks, mark, ml) == 0)
        return 0;
fail:
    claims->n--;
    while (marks->n >= claims->n && marks->n > 0)
        marks->n--;
    return -1;
}

size_t lev_w_claims_queued(const lev_worker_t *w)
{
    return w->claims[w->acc].n;
}

void lev_w_claims_drop(lev_worker_t *w)
{
    wkeys_clear(&w->claims[w->acc]);
    wkeys_clear(&w->claimmark[w->acc]);
}

void lev_w_keys_free(wkeys_t *k)
{
    free(k->buf);
    free(k->off);
    free(k->ptrs);
    memset(k, 0, sizeof *k);
}
