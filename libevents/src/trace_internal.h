/*
 * Traces: a span per handled record and per output it sends, exported with
 * OTLP over HTTP (JSON encoding) from a background thread. Configured by the
 * OpenTelemetry environment variables; off when no endpoint is set.
 */
#ifndef LEV_TRACE_INTERNAL_H
#define LEV_TRACE_INTERNAL_H

#include "internal.h"

#include <stdint.h>

typedef struct lev_tracer_s lev_tracer_t;

enum { LEV_SPAN_CONSUMER = 5, LEV_SPAN_PRODUCER = 4 };            /* OTLP SpanKind */
enum { LEV_SPAN_UNSET = 0, LEV_SPAN_OK = 1, LEV_SPAN_ERROR = 2 }; /* OTLP StatusCode */

/* A W3C trace context: 16-byte trace id, 8-byte span id, sampled flag. */
typedef struct lev_trace_ctx_s {
    uint8_t trace_id[16], span_id[8];
    int sampled;
} lev_trace_ctx_t;

/* A finished span, as queued for export. */
typedef struct lev_span_s {
    uint8_t trace_id[16], span_id[8], parent_id[8]; /* parent all zero: a root span */
    int kind, status;
    int64_t start_ns, end_ns; /* unix nanoseconds */
    char name[96];
    char topic[160];
    int32_t partition;
    int64_t offset; /* -1: none */
    char event_id[LEV_EVENT_ID_MAX + 1], event_type[128];
    int attempt;
    char message[200]; /* status message when an error */
} lev_span_t;

/* Reads the OTEL_* variables (OTEL_SDK_DISABLED, OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
 * OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
 * OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY,
 * OTEL_BSP_MAX_EXPORT_BATCH_SIZE) and starts the exporter thread. *out is
 * NULL when tracing is off. A bad value is LEV_ERR_CONFIG naming it. */
int lev_tracer_new(const char *service, lev_tracer_t **out, lev_error_t *err);
/* Exports what is queued (up to timeout_ms), stops the thread, frees. */
void lev_tracer_destroy(lev_tracer_t *t, int timeout_ms);

/* Parses a traceparent header ("00-<32 hex>-<16 hex>-<2 hex>"). 0, or -1
 * when it is not one (all-zero ids are not). */
int lev_trace_parse(const char *traceparent, size_t len, lev_trace_ctx_t *out);
/* Formats a context as a traceparent (55 characters and a NUL). */
void lev_trace_format(const lev_trace_ctx_t *ctx, char out[64]);
/* A fresh span id (never all zero). */
void lev_trace_new_span_id(uint8_t out[8]);
/* Should a span with this parent (NULL: a root) be recorded? Root spans
 * get a fresh trace id in *trace_id. */
int lev_tracer_sample(const lev_tracer_t *t, const lev_trace_ctx_t *parent, uint8_t trace_id[16]);

/* Queues n finished spans for export (one lock for all of them). Spans
 * that do not fit in the queue are dropped and counted. */
void lev_tracer_submit(lev_tracer_t *t, const lev_span_t *spans, size_t n);

/* Counters: spans exported, dropped (queue full or export failed), export
 * requests that failed. */
typedef struct lev_tracer_stats_s {
    uint64_t exported, dropped, failed_requests;
} lev_tracer_stats_t;
void lev_tracer_stats(const lev_tracer_t *t, lev_tracer_stats_t *out);

#endif
