/* Private parts of the producer, for the worker and the project's own tests
 * and benchmarks. */
#ifndef LEV_PRODUCER_INTERNAL_H
#define LEV_PRODUCER_INTERNAL_H

#include "kafka_internal.h"

/* The librdkafka configuration lev_producer_new uses: the producer's
 * defaults (idempotence, acks=all, linger.ms=5, lz4, murmur2, the delivery
 * timeout), then `defaults` (NULL-ended, may be NULL) over them, then the
 * KAFKA_* passthrough, then `extra`, then what at-least-once rests on. The
 * delivery and error callbacks are those of lev_producer. */
rd_kafka_conf_t *lev_producer_conf_new(const lev_config_t *conf, const lev_kv_t *defaults,
                                       const lev_kv_t *extra, lev_error_t *err);

/* A producer whose clients are made from kc (taken, even on failure). */
lev_producer_t *lev_producer_new_from_conf(rd_kafka_conf_t *kc, int shutdown_timeout_ms,
                                           const char *source, lev_error_t *err);

/* The current librdkafka client (replaced after a fatal error). */
rd_kafka_t *lev_producer_client(lev_producer_t *p);

/* Tells the producer a topic's max.message.bytes: a record larger than that
 * (key, value, headers and the record's overhead) is refused by
 * lev_producer_send with LEV_ERR_TOO_LARGE, and a too-large answer of the
 * broker for a record within it is reported as LEV_ERR_KAFKA (its batch was
 * too large, not the record: sending it again can work). */
int lev_producer_set_topic_limit(lev_producer_t *p, const char *topic, size_t max_bytes);

/* Makes the client write a byte to fd whenever delivery reports wait to be
 * served by lev_producer_poll (also for clients recreated later). */
void lev_producer_set_wakeup_fd(lev_producer_t *p, int fd);

#endif
