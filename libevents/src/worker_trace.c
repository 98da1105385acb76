/*
 * The worker's spans (see trace.c): one "<topic> process" span (kind
 * CONSUMER) per record handled, parented by the record's traceparent, from
 * its handler's first call to its finish (outputs acknowledged, or its
 * retry or dead-letter record); one "<topic> publish" span (kind PRODUCER)
 * per output, child of the process span, whose context the output carries
 * in its traceparent, so the next service's span is its child. A record
 * fetched again (after a hold) makes a span of its own. Finished spans
 * collect in the worker and go to the exporter once per turn.
 */
#include "trace_internal.h"
#include "worker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPAN_OUTPUTS_MAX 8 /* publish spans per record; more outputs still carry the trace */

typedef struct wprod_s {
    uint8_t span_id[8];
    char topic[160];
    int64_t start_ns;
} wprod_t;

struct wspan_s {
    lev_trace_ctx_t ctx; /* the trace, this record's span id, sampled or not */
    uint8_t parent[8];   /* zero: a root span */
    int64_t start_ns;
    int attempt;
    wprod_t prod[SPAN_OUTPUTS_MAX];
    int nprod;
};

static int64_t unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void lev_w_span_start(lev_worker_t *w, wrec_t *r, int attempt)
{
    if (!w->tracer || r->span)
        return;
    wspan_t *s = calloc(1, sizeof *s);
    if (!s)
        return; /* no span: the outputs get a context of their own */
    lev_trace_ctx_t parent;
    const whdr_t *h = &r->h[H_TRACE];
    int has_parent = h->ptr && lev_trace_parse(h->ptr, h->len, &parent) == 0;
    s->ctx.sampled = lev_tracer_sample(w->tracer, has_parent ? &parent : NULL, s->ctx.trace_id);
    if (has_parent)
        memcpy(s->parent, parent.span_id, 8);
    lev_trace_new_span_id(s->ctx.span_id);
    s->start_ns = unix_ns();
    s->attempt = attempt;
    r->span = s;
}

int lev_w_span_output(const wrec_t *r, const char *topic, char traceparent[64])
{
    wspan_t *s = r ? r->span : NULL;
    if (!s)
        return -1;
    lev_trace_ctx_t out = s->ctx;
    lev_trace_new_span_id(out.span_id);
    if (s->ctx.sampled && s->nprod < SPAN_OUTPUTS_MAX) {
        wprod_t *p = &s->prod[s->nprod++];
        memcpy(p->span_id, out.span_id, 8);
        snprintf(p->topic, sizeof p->topic, "%s", topic);
        p->start_ns = unix_ns();
    } else if (s->ctx.sampled) { /* no publish span: the output's parent is the process span */
        memcpy(out.span_id, s->ctx.span_id, 8);
    }
    lev_trace_format(&out, traceparent);
    return 0;
}

/* Makes room for n more spans in the worker's list. */
static lev_span_t *spans_room(lev_worker_t *w, size_t n)
{
    if (lev_grow(&w->spans, &w->capspans, w->nspans + n, sizeof *w->spans, 256) != 0)
        return NULL;
    return &w->spans[w->nspans];
}

void lev_w_span_end(lev_worker_t *w, wrec_t *r)
{
    wspan_t *s = r->span;
    if (!s)
        return;
    r->span = NULL;
    lev_span_t *out = s->ctx.sampled ? spans_room(w, 1 + (size_t)s->nprod) : NULL;
    if (!out) {
        free(s);
        return;
    }
    int64_t now = unix_ns();
    const rd_kafka_message_t *m = r->m;
    int finished = r->state == REC_DONE;
    int ok = finished && r->route == ROUTE_OUTPUTS && r->handled;
    lev_span_t *c = &out[0];
    memset(c, 0, sizeof *c);
    memcpy(c->trace_id, s->ctx.trace_id, 16);
    memcpy(c->span_id, s->ctx.span_id, 8);
    memcpy(c->parent_id, s->parent, 8);
    c->kind = LEV_SPAN_CONSUMER;
    c->start_ns = s->start_ns;
    c->end_ns = now > s->start_ns ? now : s->start_ns;
    const char *topic = m ? rd_kafka_topic_name(m->rkt) : "";
    snprintf(c->name, sizeof c->name, "%.80s process", topic);
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->partition = m ? m->partition : -1;
    c->offset = m ? m->offset : -1;
    snprintf(c->event_id, sizeof c->event_id, "%s", r->id);
    snprintf(c->event_type, sizeof c->event_type, "%s",
             r->handler  ? r->handler->type
             : r->writer ? lev_schema_name(r->writer)
                         : "");
    c->attempt = s->attempt;
    if (ok) {
        c->status = LEV_SPAN_OK;
    } else {
        c->status = LEV_SPAN_ERROR;
        snprintf(c->message, sizeof c->message, "%s",
                 !finished                   ? "not finished here: fetched again"
                 : r->fail                   ? r->fail->message
                 : r->route == ROUTE_OUTPUTS ? "handled without success"
                                             : "routed to a retry or dead-letter topic");
    }
    for (int i = 0; i < s->nprod; i++) {
        lev_span_t *p = &out[1 + i];
        memset(p, 0, sizeof *p);
        memcpy(p->trace_id, s->ctx.trace_id, 16);
        memcpy(p->span_id, s->prod[i].span_id, 8);
        memcpy(p->parent_id, s->ctx.span_id, 8);
        p->kind = LEV_SPAN_PRODUCER;
        p->start_ns = s->prod[i].start_ns;
        p->end_ns = now > p->start_ns ? now : p->start_ns;
        snprintf(p->name, sizeof p->name, "%.80s publish", s->prod[i].topic);
        snprintf(p->topic, sizeof p->topic, "%s", s->prod[i].topic);
        p->partition = -1;
        p->offset = -1;
        p->status = ok ? LEV_SPAN_OK : LEV_SPAN_ERROR;
        if (!ok)
            snprintf(p->message, sizeof p->message, "not acknowledged");
    }
    w->nspans += 1 + (size_t)s->nprod;
    free(s);
}

void lev_w_spans_flush(lev_worker_t *w)
{
    if (w->nspans == 0)
        return;
    lev_tracer_submit(w->tracer, w->spans, w->nspans);
    w->nspans = 0;
}
