/*
 * Records: the headers the worker reads (once per record, as pointers into
 * the message), allocating and freeing records, and giving them up: a
 * record given up leaves its partition's queue; the partition is held at it
 * (seeked back and paused) when it must wait.
 */
#include "worker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Records
 * ====================================================================== */

wrec_t *lev_w_rec_alloc(lev_worker_t *w)
{
    wrec_t *r = w->free_recs;
    if (r) {
        w->free_recs = r->next;
        memset(r, 0, sizeof *r);
        return r;
    }
    return calloc(1, sizeof *r);
}

void lev_w_rec_free(lev_worker_t *w, wrec_t *r)
{
    lev_w_span_end(w, r); /* a span not ended yet: the record did not finish here */
    w->inflight--;
    w->inflight_bytes -= r->bytes;
    rd_kafka_message_destroy(r->m);
    free(r->fail_text);
    if (r->fail) {
        free(r->fail->message);
        free(r->fail);
    }
    r->m = NULL;
    r->fail = NULL;
    r->fail_text = NULL;
    r->next = w->free_recs;
    w->free_recs = r;
}

/* Reads the headers the worker uses, once per record: pointers into the
 * message, valid while it lives; a repeated header counts by its last value. */
void lev_w_scan_headers(wrec_t *r)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(r->m, &h) != 0 || !h)
        return;
    /* names with their lengths: most headers are told apart by length */
    static const struct {
        const char *name;
        size_t len;
        int which;
    } known[] = {
        {LEV_H_CE_ID, sizeof LEV_H_CE_ID - 1, H_ID},
        {LEV_H_CE_SOURCE, sizeof LEV_H_CE_SOURCE - 1, H_SOURCE},
        {LEV_H_CORRELATION_ID, sizeof LEV_H_CORRELATION_ID - 1, H_CORRELATION},
        {LEV_H_TRACEPARENT, sizeof LEV_H_TRACEPARENT - 1, H_TRACE},
        {LEV_H_ORIG_TOPIC, sizeof LEV_H_ORIG_TOPIC - 1, H_ORIG_TOPIC},
        {LEV_H_ORIG_PARTITION, sizeof LEV_H_ORIG_PARTITION - 1, H_ORIG_PARTITION},
        {LEV_H_ORIG_OFFSET, sizeof LEV_H_ORIG_OFFSET - 1, H_ORIG_OFFSET},
        {LEV_H_ORIG_TIMESTAMP, sizeof LEV_H_ORIG_TIMESTAMP - 1, H_ORIG_TIMESTAMP},
        {LEV_H_ATTEMPTS, sizeof LEV_H_ATTEMPTS - 1, H_ATTEMPTS},
        {LEV_H_FIRST_FAILURE, sizeof LEV_H_FIRST_FAILURE - 1, H_FIRST_FAILURE},
        {LEV_H_DUE, sizeof LEV_H_DUE - 1, H_DUE},
        {LEV_H_REDRIVE_FROM, sizeof LEV_H_REDRIVE_FROM - 1, H_REDRIVE_FROM},
    };
    const char *name;
    const void *v;
    size_t len;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
        if (name[0] != 'c' && name[0] != 't' && name[0] != 'l' && name[0] != 'e')
            continue;
        size_t nl = strlen(name);
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (known[k].len == nl && memcmp(name, known[k].name, nl) == 0) {
                r->h[known[k].which] = (whdr_t){v, v ? len : 0};
                break;
            }
        }
    }
}

/* What is wrong with a header as an identifier: NULL, or the reason. */
static const char *ident_problem(const whdr_t *h, const char *name, size_t max, char *buf,
                                 size_t size)
{
    if (h->len == 0) {
        snprintf(buf, size, "%s is empty", name);
        return buf;
    }
    if (h->len > max) {
        snprintf(buf, size, "%s is %zu bytes long, more than %zu", name, h->len, max);
        return buf;
    }
    for (size_t i = 0; i < h->len; i++) {
        unsigned char c = (unsigned char)h->ptr[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(buf, size, "%s holds the control character 0x%02x at byte %zu", name, c, i);
            return buf;
        }
    }
    return NULL;
}

const char *lev_w_id_problem(const wrec_t *r, char *buf, size_t size)
{
    if (r->h[H_ID].ptr) {
        const char *p = ident_problem(&r->h[H_ID], "ce_id", LEV_EVENT_ID_MAX, buf, size);
        if (p)
            return p;
    }
    if (r->h[H_SOURCE].ptr)
        return ident_problem(&r->h[H_SOURCE], "ce_source", LEV_EVENT_SOURCE_MAX, buf, size);
    return NULL;
}

const char *lev_w_header_str(const wrec_t *r, int which, char *buf, size_t size)
{
    const whdr_t *h = &r->h[which];
    if (!h->ptr)
        return NULL;
    size_t len = h->len < size - 1 ? h->len : size - 1;
    memcpy(buf, h->ptr, len);
    buf[len] = '\0';
    return buf;
}

/* A decimal integer header within [min, max]; `def` when it is absent or
 * anything else (never trusted: a value out of range is not used). */
int64_t lev_w_header_i64(const wrec_t *r, int which, int64_t def, int64_t min, int64_t max)
{
    char buf[32];
    const whdr_t *h = &r->h[which];
    if (!h->ptr || h->len == 0 || h->len >= sizeof buf)
        return def;
    memcpy(buf, h->ptr, h->len);
    buf[h->len] = '\0';
    const char *p = buf;
    int neg = *p == '-';
    if (neg)
        p++;
    if (!*p)
        return def;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return def;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return def;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    return x < min || x > max ? def : x;
}

/* ======================================================================
 * Giving records up, holding partitions
 * ====================================================================== */

void lev_w_abandon_from(lev_worker_t *w, wpart_t *p, wrec_t *from)
{
    if (!from)
        return;
    wrec_t *prev = NULL;
    for (wrec_t *r = p->head; r && r != from; r = r->next)
        prev = r;
    if (prev)
        prev->next = NULL;
    else
        p->head = NULL;
    p->tail = prev;
    lev_w_waiting_cut(p, from->m->offset);
    for (wrec_t *r = from, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        r->part = NULL;
        if (r->outstanding > 0)
            W_STAT_ADD(w, given_up_waiting, 1);
        /* still referenced by the batch being handled, or by reports to
         * come: freed then */
        if (r->outstanding == 0 && !r->ready && !r->in_batch) {
            lev_w_settle_rec(w, r);
            lev_w_rec_free(w, r);
        }
    }
}

void lev_w_hold(lev_worker_t *w, wrec_t *r, int64_t resume_at)
{
    wpart_t *p = r->part;
    if (!p)
        return;
    int64_t offset = r->m->offset;
    lev_w_abandon_from(w, p, r);
    p->next_offset = offset;
    if (!(p->pause & PAUSE_HOLD) || resume_at > p->resume_at)
        p->resume_at = resume_at;
    lev_w_pause(w, p, PAUSE_HOLD);
    lev_w_seek(w, p, offset);
}
