/*
 * libevents producer: an idempotent Kafka producer (enable.idempotence,
 * acks=all) with checked delivery reports. After a fatal producer error it
 * recreates the underlying client and re-sends every message not yet
 * acknowledged, so nothing handed to it is dropped silently: each message
 * ends in exactly one delivery callback, success or error.
 */
#ifndef LIBEVENTS_PRODUCER_H
#define LIBEVENTS_PRODUCER_H

#include <libevents/codec.h>
#include <libevents/common.h>
#include <libevents/config.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Header names (CloudEvents Kafka binding, binary mode, plus tracing). */
#define LEV_H_CE_SPECVERSION "ce_specversion"
#define LEV_H_CE_ID "ce_id"
#define LEV_H_CE_SOURCE "ce_source"
#define LEV_H_CE_TYPE "ce_type"
#define LEV_H_CE_TIME "ce_time"
#define LEV_H_CONTENT_TYPE "content-type"
#define LEV_H_TRACEPARENT "traceparent"
#define LEV_H_CORRELATION_ID "correlation_id"
#define LEV_CONTENT_TYPE_AVRO "application/avro"

#define LEV_PARTITION_ANY (-1)

typedef struct lev_producer_s lev_producer_t;

typedef struct lev_header_s {
    const char *name;
    const void *value; /* NULL for a null header value */
    size_t size;
} lev_header_t;

/* A record to produce. Everything is copied by lev_producer_send. */
typedef struct lev_msg_s {
    const char *topic;
    int32_t partition; /* LEV_PARTITION_ANY: by key (murmur2, as Java clients) */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const lev_header_t *headers;
    size_t nheaders;
    int64_t timestamp_ms; /* 0: now */
} lev_msg_t;

/* Called once per message from lev_producer_poll/flush: err is 0 and
 * partition/offset are set on acknowledgement, or err < 0 with errstr. */
typedef void (*lev_delivery_cb)(void *opaque, int err, const char *errstr, int32_t partition,
                                int64_t offset);

/* Creates a producer from the configuration (bootstrap, client id, KAFKA_*
 * passthrough). `extra` (may be NULL, ends with {NULL, NULL}) adds librdkafka
 * properties, for example linger.ms. */
LEV_API lev_producer_t *lev_producer_new(const lev_config_t *conf, const lev_kv_t *extra,
                                         lev_error_t *err);

/* lev_producer_new with a program's own `defaults` (may be NULL, ends with
 * {NULL, NULL}) for librdkafka properties: they replace the producer's
 * defaults (linger.ms=5, lz4 compression, ...) and yield to the KAFKA_*
 * passthrough, so an operator can still change them, where `extra`
 * overrides the passthrough. For example a bulk loader's
 * {"linger.ms", "20"}, which KAFKA_LINGER_MS may set otherwise.
 * Idempotence and acks=all cannot be changed by either. */
LEV_API lev_producer_t *lev_producer_new_with(const lev_config_t *conf, const lev_kv_t *defaults,
                                              const lev_kv_t *extra, lev_error_t *err);

/* Flushes for up to the configured shutdown timeout, then destroys. Messages
 * still unacknowledged get an error delivery callback. */
LEV_API void lev_producer_destroy(lev_producer_t *p);

/* Queues a record. On error the callback is never called. */
LEV_API int lev_producer_send(lev_producer_t *p, const lev_msg_t *msg, lev_delivery_cb cb,
                              void *opaque, lev_error_t *err);

/* Serves delivery callbacks, waiting up to timeout_ms. Returns the number served. */
LEV_API int lev_producer_poll(lev_producer_t *p, int timeout_ms);

/* Waits until every queued message has its callback; LEV_ERR_TIMEOUT if not
 * all were served in time. */
LEV_API int lev_producer_flush(lev_producer_t *p, int timeout_ms);

/* Messages queued whose callback has not run yet. */
LEV_API size_t lev_producer_outstanding(const lev_producer_t *p);

/* How many times the client was recreated after a fatal error. */
LEV_API unsigned lev_producer_recreations(const lev_producer_t *p);

/* Metadata of an event for lev_event_headers / lev_producer_send_event.
 * NULL or 0 members get defaults: a random id, the configured source, id as
 * correlation id, a new traceparent, now. */
typedef struct lev_event_meta_s {
    const char *id;
    const char *source;
    const char *correlation_id;
    const char *traceparent;
    int64_t time_ms;
} lev_event_meta_t;

#define LEV_EVENT_HEADERS_MAX 8

/* Storage for the CloudEvents headers of one event. */
typedef struct lev_event_headers_s {
    lev_header_t h[LEV_EVENT_HEADERS_MAX];
    size_t n;
    char id[64], time[32], traceparent[64], correlation_id[128], source[128], type[128];
} lev_event_headers_t;

/* Fills `out` with the headers of an event of `type`: ce_specversion 1.0,
 * ce_id, ce_source, ce_type, ce_time, content-type application/avro,
 * traceparent, correlation_id. Defaults as for lev_event_meta_t (source
 * default: "/libevents"). */
LEV_API int lev_event_headers(lev_event_headers_t *out, const char *type,
                              const lev_event_meta_t *meta);

/* A fresh W3C traceparent ("00-<32 hex>-<16 hex>-01"); with a parent, keeps
 * its trace id and makes a new span id. */
LEV_API void lev_traceparent_new(const char *parent, char out[64]);

/* Encodes `value` of `schema` and sends it to `topic` keyed by `key`, with
 * CloudEvents headers. meta may be NULL. In the codec's wire format: with
 * LEV_WIRE_CONFLUENT the schema is registered for the topic's subject first
 * (one registry call per subject, then none). */
LEV_API int lev_producer_send_event(lev_producer_t *p, lev_codec_t *codec, const char *topic,
                                    const char *key, const lev_schema_t *schema,
                                    const avro_value_t *value, const lev_event_meta_t *meta,
                                    lev_delivery_cb cb, void *opaque, lev_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
