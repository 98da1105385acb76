/*
 * The handler context: what a handler may call while it runs. Outputs are
 * encoded into one buffer the context keeps from call to call, and sent
 * only when the handler returns LEV_RESULT_OK.
 */
#include "codec_internal.h"
#include "worker_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends s[0..len) and a NUL to the context's buffer; its offset in *at. */
static int ctx_append(lev_ctx_t *ctx, const char *s, size_t len, size_t *at)
{
    if (lev_grow(&ctx->buf, &ctx->cap, ctx->len + len + 1, 1, 1024) != 0)
        return LEV_ERR_NOMEM;
    *at = ctx->len;
    memcpy(ctx->buf + ctx->len, s, len);
    ctx->len += len;
    ctx->buf[ctx->len++] = '\0';
    return LEV_OK;
}

const char *lev_w_ctx_str(const lev_ctx_t *ctx, size_t off)
{
    return ctx->buf + off;
}

void lev_w_ctx_reset(lev_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nvalues; i++)
        avro_value_decref(&ctx->values[i]);
    ctx->nvalues = 0;
    ctx->nout = 0;
    ctx->len = 0;
    lev_w_ctx_state_clear(ctx);
    ctx->registry_wait = 0;
    ctx->error[0] = '\0';
    ctx->ev = NULL;
}

void lev_w_ctx_free(lev_ctx_t *ctx)
{
    lev_w_ctx_reset(ctx);
    free(ctx->state);
    free(ctx->commits);
    ctx->state = NULL;
    ctx->commits = NULL;
    ctx->capstate = ctx->capcommits = 0;
    for (size_t i = 0; i < ctx->capout; i++)
        free(ctx->out[i]);
    free(ctx->out);
    free(ctx->values);
    free(ctx->buf);
    ctx->out = NULL;
    ctx->values = NULL;
    ctx->buf = NULL;
    ctx->capout = ctx->capvalues = ctx->cap = 0;
}

int lev_ctx_new_value(lev_ctx_t *ctx, const char *type, avro_value_t *out)
{
    if (!ctx || !type || !out)
        return LEV_ERR_ARG;
    const lev_schema_t *s = lev_schemas_find(ctx->w->schemas, type);
    if (!s)
        return LEV_ERR_NOT_FOUND;
    if (ctx->nvalues == ctx->capvalues) {
        size_t cap = ctx->capvalues ? ctx->capvalues * 2 : 4;
        avro_value_t *nv = realloc(ctx->values, cap * sizeof *nv);
        if (!nv)
            return LEV_ERR_NOMEM;
        ctx->values = nv;
        ctx->capvalues = cap;
    }
    int rc = lev_codec_new_value(ctx->w->codec, s, out);
    if (rc == 0)
        ctx->values[ctx->nvalues++] = *out;
    return rc;
}

/* The next output slot (kept from call to call). */
static wout_t *ctx_next_out(lev_ctx_t *ctx)
{
    if (ctx->nout == ctx->capout) {
        size_t cap = ctx->capout ? ctx->capout * 2 : 4;
        wout_t **no = realloc(ctx->out, cap * sizeof *no);
        if (!no)
            return NULL;
        for (size_t i = ctx->capout; i < cap; i++)
            no[i] = NULL;
        ctx->out = no;
        ctx->capout = cap;
    }
    if (!ctx->out[ctx->nout] && !(ctx->out[ctx->nout] = malloc(sizeof(wout_t))))
        return NULL;
    return ctx->out[ctx->nout];
}

void lev_w_wout_copy(wout_t *dst, const wout_t *src)
{
    *dst = *src;
    const char *lo = (const char *)&src->eh, *hi = lo + sizeof src->eh;
    for (size_t i = 0; i < dst->eh.n; i++) {
        const char *v = dst->eh.h[i].value;
        if (v >= lo && v < hi) /* its headers point into itself: they move with it */
            dst->eh.h[i].value = (const char *)&dst->eh + (v - lo);
    }
}

int lev_w_ctx_restore(lev_ctx_t *ctx, const char *buf, size_t len, const wout_t *out, size_t nout)
{
    if (len > ctx->cap) {
        char *nb = realloc(ctx->buf, len);
        if (!nb)
            return LEV_ERR_NOMEM;
        ctx->buf = nb;
        ctx->cap = len;
    }
    if (len)
        memcpy(ctx->buf, buf, len);
    ctx->len = len;
    ctx->nout = 0;
    for (size_t i = 0; i < nout; i++) {
        wout_t *o = ctx_next_out(ctx);
        if (!o)
            return LEV_ERR_NOMEM;
        lev_w_wout_copy(o, &out[i]);
        ctx->nout++;
    }
    return LEV_OK;
}

int lev_ctx_emit(lev_ctx_t *ctx, const char *topic, const char *key, const avro_value_t *value,
                 lev_error_t *err)
{
    if (!ctx || !ctx->ev || !topic || !*topic || !value)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "topic and value are required");
    avro_schema_t as = avro_value_get_schema(value);
    const char *type = as ? avro_schema_type_name(as) : NULL;
    const char *ns = as ? avro_schema_namespace(as) : NULL;
    char fullname[256];
    size_t nl = ns ? strlen(ns) : 0, tl = type ? strlen(type) : 0;
    if (nl + tl + 2 > sizeof fullname)
        return lev_error_set(err, LEV_ERR_NOT_FOUND, type, "no schema of this type");
    if (nl) {
        memcpy(fullname, ns, nl);
        fullname[nl++] = '.';
    }
    if (tl)
        memcpy(fullname + nl, type, tl);
    fullname[nl + tl] = '\0';
    const lev_schema_t *s = lev_schemas_find(ctx->w->schemas, fullname);
    if (!s)
        return lev_error_set(err, LEV_ERR_NOT_FOUND, fullname, "no schema of this type");
    /* Confluent framing: the schema's id for this topic's subject (known
     * from the start for declared emits; else registered at the first emit,
     * on the registry's thread: the loop waits 100 ms at most for it) */
    int rc;
    if (lev_codec_wire_format(ctx->w->codec) == LEV_WIRE_CONFLUENT &&
        (rc = lev_codec_register(ctx->w->codec, topic, s, err)) != 0) {
        if (rc == LEV_ERR_REGISTRY) { /* not the event's fault: it waits (worker_pipeline.c) */
            ctx->registry_wait = 1;
            lev_w_registry_unavailable(ctx->w, err);
        }
        return rc;
    }
    wout_t *o = ctx_next_out(ctx);
    if (!o)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    size_t mark = ctx->len;
    if (!key)
        key = "";
    rc = ctx_append(ctx, topic, strlen(topic), &o->topic);
    if (rc == 0)
        rc = ctx_append(ctx, key, strlen(key), &o->key);
    if (rc != 0) {
        ctx->len = mark;
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    }
    o->key_len = strlen(key);
    o->value = ctx->len;
    if ((rc = lev_codec_encode_append(ctx->w->codec, s, value, &ctx->buf, &ctx->len, &ctx->cap,
                                      err)) != 0) {
        ctx->len = mark;
        return rc;
    }
    o->value_len = ctx->len - o->value;
    /* n-th output of this type for this input: deterministic ids */
    unsigned n = 0;
    for (size_t i = 0; i < ctx->nout; i++)
        n += strcmp(ctx->out[i]->eh.type, fullname) == 0;
    char id[LEV_UUID_STR_LEN], trace[64];
    lev_uuid_derive_event(ctx->ev->source, ctx->ev->id, fullname, n, id);
    if (lev_w_span_output(ctx->rec, topic, trace) != 0)
        lev_traceparent_new(ctx->ev->traceparent, trace);
    lev_event_meta_t meta = {.id = id,
                             .source = ctx->w->source,
                             .correlation_id = ctx->ev->correlation_id,
                             .traceparent = trace};
    lev_event_headers(&o->eh, fullname, &meta);
    ctx->nout++;
    return LEV_OK;
}

void lev_ctx_set_error(lev_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
}

lev_store_t *lev_ctx_store(lev_ctx_t *ctx)
{
    return ctx->w->app_store;
}

const char *lev_ctx_service(const lev_ctx_t *ctx)
{
    return ctx->w->service;
}

const char *lev_worker_service(const lev_worker_t *w)
{
    return w ? w->service : NULL;
}

lev_codec_t *lev_ctx_codec(lev_ctx_t *ctx)
{
    return ctx->w->codec;
}
