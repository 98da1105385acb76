/* Shared librdkafka setup: configuration, log routing, headers. */
#include "kafka_internal.h"

#include <stdio.h>
#include <string.h>

int lev_kafka_conf_set(rd_kafka_conf_t *kc, const char *name, const char *value, lev_error_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(kc, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return lev_error_set(err, LEV_ERR_CONFIG, name, "%s", errstr);
    return LEV_OK;
}

void lev_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    lev_log_level_t l = level <= 3   ? LEV_LOG_ERROR
                        : level == 4 ? LEV_LOG_WARN
                        : level <= 6 ? LEV_LOG_INFO
                                     : LEV_LOG_DEBUG;
    lev_log(l, buf, "component", "librdkafka", "facility", fac, "client", rd_kafka_name(rk), NULL);
}

/* Sets one property through `set`, or fills err naming `where` (the
 * property when NULL). */
static int set_one(lev_kafka_set_fn set, void *opaque, const char *name, const char *value,
                   const char *where, lev_error_t *err)
{
    char errstr[512] = "";
    if (set(opaque, name, value, errstr, sizeof errstr) == 0)
        return LEV_OK;
    return lev_error_set(err, LEV_ERR_CONFIG, where ? where : name, "%s",
                         errstr[0] ? errstr : "refused");
}

static int apply(lev_kafka_set_fn set, void *opaque, const lev_kv_t *kv, lev_error_t *err)
{
    for (; kv && kv->key; kv++)
        if (set_one(set, opaque, kv->key, kv->value, NULL, err) != 0)
            return LEV_ERR_CONFIG;
    return LEV_OK;
}

/* Properties only producers use, and only consumers use (librdkafka's
 * CONFIGURATION.md, "P" and "C"); any other name goes to both. */
static const char *const producer_only[] = {"transactional.id",
                                            "transaction.timeout.ms",
                                            "enable.idempotence",
                                            "enable.gapless.guarantee",
                                            "queue.buffering.max.messages",
                                            "queue.buffering.max.kbytes",
                                            "queue.buffering.max.ms",
                                            "linger.ms",
                                            "message.send.max.retries",
                                            "retries",
                                            "queue.buffering.backpressure.threshold",
                                            "compression.codec",
                                            "compression.type",
                                            "compression.level",
                                            "batch.num.messages",
                                            "batch.size",
                                            "delivery.report.only.error",
                                            "sticky.partitioning.linger.ms",
                                            "request.required.acks",
                                            "acks",
                                            "request.timeout.ms",
                                            "message.timeout.ms",
                                            "delivery.timeout.ms",
                                            "partitioner",
                                            "queuing.strategy",
                                            NULL};
static const char *const consumer_only[] = {"group.id",
                                            "group.instance.id",
                                            "partition.assignment.strategy",
                                            "session.timeout.ms",
                                            "heartbeat.interval.ms",
                                            "group.protocol.type",
                                            "coordinator.query.interval.ms",
                                            "max.poll.interval.ms",
                                            "enable.auto.commit",
                                            "auto.commit.interval.ms",
                                            "enable.auto.offset.store",
                                            "queued.min.messages",
                                            "queued.max.messages.kbytes",
                                            "fetch.wait.max.ms",
                                            "fetch.message.max.bytes",
                                            "max.partition.fetch.bytes",
                                            "fetch.max.bytes",
                                            "fetch.min.bytes",
                                            "fetch.error.backoff.ms",
                                            "isolation.level",
                                            "enable.partition.eof",
                                            "check.crcs",
                                            "allow.auto.create.topics",
                                            "auto.offset.reset",
                                            "consume.callback.max.messages",
                                            NULL};

static int listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

int lev_config_kafka_apply(const lev_config_t *conf, lev_kafka_client_t kind,
                           const lev_kv_t *defaults, const lev_kv_t *extra, lev_kafka_set_fn set,
                           void *opaque, lev_error_t *err)
{
    if (!conf || !set || (kind != LEV_KAFKA_PRODUCER && kind != LEV_KAFKA_CONSUMER))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "a configuration, a client kind and a setter");
    const char *const *other = kind == LEV_KAFKA_PRODUCER ? consumer_only : producer_only;
    if (set_one(set, opaque, "bootstrap.servers", conf->bootstrap, NULL, err) ||
        (conf->client_id && set_one(set, opaque, "client.id", conf->client_id, NULL, err)) ||
        apply(set, opaque, defaults, err))
        return LEV_ERR_CONFIG;
    for (size_t i = 0; i < conf->nkafka; i++) {
        if (listed(other, conf->kafka[i].key))
            continue;
        /* name the environment variable the operator set */
        char var[160];
        snprintf(var, sizeof var, "KAFKA_%s", conf->kafka[i].key);
        for (char *c = var; *c; c++)
            *c = *c == '.' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        if (set_one(set, opaque, conf->kafka[i].key, conf->kafka[i].value, var, err) != 0)
            return LEV_ERR_CONFIG;
    }
    if (apply(set, opaque, extra, err))
        return LEV_ERR_CONFIG;
    /* what at-least-once delivery rests on is not negotiable */
    static const lev_kv_t producer_fixed[] = {
        {"enable.idempotence", "true"}, {"acks", "all"}, {NULL, NULL}};
    static const lev_kv_t consumer_fixed[] = {{"enable.auto.offset.store", "false"}, {NULL, NULL}};
    return apply(set, opaque, kind == LEV_KAFKA_PRODUCER ? producer_fixed : consumer_fixed, err);
}

static int conf_set(void *opaque, const char *name, const char *value, char *errstr,
                    size_t errstr_size)
{
    return rd_kafka_conf_set(opaque, name, value, errstr, errstr_size) == RD_KAFKA_CONF_OK ? 0 : -1;
}

rd_kafka_conf_t *lev_kafka_conf_new(const lev_config_t *conf, rd_kafka_type_t type,
                                    const lev_kv_t *defaults, const lev_kv_t *extra,
                                    lev_error_t *err)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (!kc) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(kc, lev_kafka_log_cb);
    if (lev_config_kafka_apply(conf,
                               type == RD_KAFKA_PRODUCER ? LEV_KAFKA_PRODUCER : LEV_KAFKA_CONSUMER,
                               defaults, extra, conf_set, kc, err) != 0) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    return kc;
}

int lev_kafka_err_code(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return LEV_OK;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: /* local check, or the broker's MESSAGE_TOO_LARGE */
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: /* the broker's batch limit */
        return LEV_ERR_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return LEV_ERR_REFUSED;
    default: /* timeouts, connections, leaders, replicas, unknown topics: may pass later */
        return LEV_ERR_KAFKA;
    }
}

int lev_kafka_err_is_auth(int err)
{
    switch ((rd_kafka_resp_err_t)err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION: /* librdkafka: the SASL exchange failed */
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
        return 1;
    default:
        return 0;
    }
}
