/* Private helpers shared by the Kafka clients of libevents. */
#ifndef LEV_KAFKA_INTERNAL_H
#define LEV_KAFKA_INTERNAL_H

#include "internal.h"

#include <librdkafka/rdkafka.h>

/* A librdkafka configuration for a client of `type` with bootstrap, client
 * id, logging routed to lev_log, `defaults`, the KAFKA_* passthrough of conf
 * (without the properties that belong to the other kind of client, which
 * librdkafka would warn about), then `extra` (NULL-ended, may be NULL), then
 * the settings at-least-once delivery depends on (producers:
 * enable.idempotence=true, acks=all; consumers: enable.auto.offset.store=false).
 * Returns NULL with err filled when a property is rejected. */
rd_kafka_conf_t *lev_kafka_conf_new(const lev_config_t *conf, rd_kafka_type_t type,
                                    const lev_kv_t *defaults, const lev_kv_t *extra,
                                    lev_error_t *err);

/* Sets one property or fills err naming it. */
int lev_kafka_conf_set(rd_kafka_conf_t *kc, const char *name, const char *value, lev_error_t *err);

/* librdkafka's log lines, to lev_log. */
void lev_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* The lev error code of a produce error: LEV_ERR_TOO_LARGE (the record is
 * larger than the producer or the broker accepts), LEV_ERR_REFUSED (the
 * broker will never take it: authorization, policy, invalid record) or
 * LEV_ERR_KAFKA (worth another try: timeouts, connections, leaders). */
int lev_kafka_err_code(rd_kafka_resp_err_t err);

/* 1 when a client or broker error means the cluster refused the client's
 * credentials (SASL authentication failed, a mechanism the broker does not
 * enable): not a network problem, and waiting will not fix it. */
int lev_kafka_err_is_auth(rd_kafka_resp_err_t err);

#endif
