/* Private helpers shared by the Kafka clients of libevents. */
#ifndef LEV_KAFKA_INTERNAL_H
#define LEV_KAFKA_INTERNAL_H

#include "internal.h"

#include <librdkafka/rdkafka.h>

/* A librdkafka configuration for a client of `type` with the properties
 * lev_config_kafka_apply gives it (bootstrap, client id, `defaults`, the
 * KAFKA_* passthrough for this kind of client, `extra`, the settings
 * at-least-once delivery depends on) and logging routed to lev_log.
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

#endif
