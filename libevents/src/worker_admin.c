/*
 * Topics at start: the group's retry and dead-letter topics are created if
 * missing, the producer's message.max.bytes is aligned with the
 * max.message.bytes of every topic the worker writes to, and the metadata
 * of those topics is fetched before the first record, so the first event
 * after a start is not late.
 */
#include "worker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bound on the admin requests at start. They go out together, so a broker
 * that never answers them (an old one, a proxy) delays a start this long. */
#define ADMIN_TIMEOUT_MS 5000

/* Partition count of a topic, 0 when it does not exist (or no answer). */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = 0;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 5000) == 0) {
        if (md->topic_cnt == 1 && md->topics[0].err == 0)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

/* Serves the errors the consumer has queued before it subscribes (they
 * reach consumer_error_cb in worker.c): 1 when one says the broker refused
 * our credentials or our TLS handshake failed, which waiting does not mend. */
static int start_errors(lev_worker_t *w)
{
    for (int i = 0; i < 100; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 0);
        if (!m)
            break;
        rd_kafka_message_destroy(m);
    }
    return w->client_error_fatal;
}

/* Waits until the cluster answers a metadata request, saying so (and the
 * last reason librdkafka gave) every 10 s while it does not. 0 then, -1
 * when the worker is asked to stop meanwhile (a stop never waits for the
 * broker), LEV_ERR_KAFKA with err when the broker refused the credentials
 * or the TLS handshake failed. */
static int wait_for_broker(lev_worker_t *w, lev_error_t *err)
{
    int64_t since = lev_mono_ms(), next_log = since;
    int delay = 100, waited = 0;
    for (;;) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->rk, w->topics[0], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e =
            rkt ? rd_kafka_metadata(w->rk, 0, rkt, &md, 1000) : RD_KAFKA_RESP_ERR__NOENT;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (waited)
                lev_log(LEV_LOG_INFO, "the broker answers", NULL);
            return 0;
        }
        if (start_errors(w))
            return lev_error_set(err, LEV_ERR_KAFKA, NULL,
                                 "Kafka at %s refused the connection: %s (check "
                                 "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, "
                                 "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD[_FILE] and "
                                 "KAFKA_SSL_CA_LOCATION)",
                                 w->conf.bootstrap, w->client_error);
        if (lev_w_sleep(w, 0))
            return -1;
        int64_t now = lev_mono_ms();
        if (now >= next_log) {
            char s[32];
            snprintf(s, sizeof s, "%" PRId64, (now - since) / 1000);
            lev_log(LEV_LOG_WARN, "the broker does not answer; waiting for it", "error",
                    rd_kafka_err2str(e), "reason", w->client_error[0] ? w->client_error : NULL,
                    "waiting_s", s, NULL);
            next_log = now + 10000;
        }
        waited = 1;
        if (lev_w_sleep(w, delay))
            return -1;
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

static int failure_levels(const lev_worker_t *w)
{
    int levels = w->conf.retry.levels;
    for (size_t i = 0; i < w->nhandlers; i++)
        if (w->handlers[i].has_policy && w->handlers[i].policy.levels > levels)
            levels = w->handlers[i].policy.levels;
    return levels;
}

/* Asks for this group's retry and dead-letter topics to be created (those
 * that exist stay as they are), with as many partitions as the widest
 * subscribed topic and the cluster's default replication; the answer comes
 * on q. Subscribes to the retry topics. */
static void create_failure_topics(lev_worker_t *w, rd_kafka_queue_t *q,
                                  rd_kafka_AdminOptions_t *opts)
{
    int partitions = 0, unknown = 0;
    for (size_t i = 0; i < w->ntopics; i++) {
        int n = topic_partitions(w->rk, w->topics[i]);
        if (n == 0)
            unknown++;
        if (n > partitions)
            partitions = n;
    }
    if (partitions == 0 || unknown) {
        lev_log(LEV_LOG_WARN,
                "an input topic does not exist yet; failure topics get the broker's "
                "default partition count if they are created now",
                NULL);
        if (partitions == 0)
            partitions = -1;
    }
    int levels = failure_levels(w);
    rd_kafka_NewTopic_t *nt[LEV_RETRY_LEVELS_MAX + 1];
    int n = 0;
    char name[W_NAME_MAX + 16], errstr[256];
    lev_dlq_topic_name(w->group, name, sizeof name);
    nt[n++] = rd_kafka_NewTopic_new(name, partitions, -1, errstr, sizeof errstr);
    for (int l = 1; l <= levels; l++) {
        lev_retry_topic_name(w->group, l, name, sizeof name);
        nt[n++] = rd_kafka_NewTopic_new(name, partitions, -1, errstr, sizeof errstr);
    }
    rd_kafka_CreateTopics(w->rk, nt, (size_t)n, opts, q);
    for (int i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    /* the retry topics are consumed by the same group */
    for (int l = 1; l <= levels && w->ntopics < W_MAX_TOPICS; l++) {
        lev_retry_topic_name(w->group, l, name, sizeof name);
        int dup = 0;
        for (size_t i = 0; i < w->ntopics; i++)
            dup |= strcmp(w->topics[i], name) == 0;
        if (!dup && (w->topics[w->ntopics] = strdup(name)))
            w->ntopics++;
    }
}

static void created_failure_topics(rd_kafka_event_t *ev)
{
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    for (size_t i = 0; res && i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            lev_log(LEV_LOG_WARN, "cannot create a failure topic", "topic",
                    rd_kafka_topic_result_name(res[i]), "error",
                    rd_kafka_topic_result_error_string(res[i]), NULL);
    }
}

/* The topics this worker writes to: its dead-letter topic, its retry
 * topics and the declared outputs. Names are malloc'd into out[]. */
static size_t destination_topics(const lev_worker_t *w, char **out, size_t max)
{
    char name[W_NAME_MAX + 16];
    size_t n = 0;
    lev_dlq_topic_name(w->group, name, sizeof name);
    out[n++] = strdup(name);
    for (int l = 1; l <= failure_levels(w) && n < max; l++) {
        lev_retry_topic_name(w->group, l, name, sizeof name);
        out[n++] = strdup(name);
    }
    for (size_t i = 0; i < w->noutputs && n < max; i++)
        out[n++] = strdup(w->outputs[i]);
    return n;
}

/* Asks for the configuration of the topics; the answer comes on q. */
static void describe_topics(rd_kafka_t *rk, char **topics, size_t n, rd_kafka_queue_t *q,
                            rd_kafka_AdminOptions_t *opts)
{
    rd_kafka_ConfigResource_t *res[W_MAX_OUTPUTS + LEV_RETRY_LEVELS_MAX + 1];
    size_t nres = 0;
    for (size_t i = 0; i < n; i++)
        if (topics[i])
            res[nres++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topics[i]);
    rd_kafka_DescribeConfigs(rk, res, nres, opts, q);
    for (size_t i = 0; i < nres; i++)
        rd_kafka_ConfigResource_destroy(res[i]);
}

/* The max.message.bytes of each topic of a DescribeConfigs answer (given to
 * the producer once it exists) and the largest of them, 0 if none. */
typedef struct limits_s {
    char *topic[W_MAX_OUTPUTS + LEV_RETRY_LEVELS_MAX + 1];
    int64_t bytes[W_MAX_OUTPUTS + LEV_RETRY_LEVELS_MAX + 1];
    size_t n;
} limits_t;

#define PRODUCER_DEFAULT_MAX_BYTES 1000000 /* librdkafka's message.max.bytes */

static int64_t largest_record_limit(rd_kafka_event_t *ev, limits_t *lim)
{
    int64_t best = 0;
    size_t cnt = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (rd_kafka_ConfigResource_error(rs[i])) {
            /* a topic not created yet (a failure topic created by the same
             * start, its creation not seen by the broker describing it): it
             * takes the broker's default, so its records must not be held
             * to a smaller output topic's limit. librdkafka's own default,
             * which is below the broker's, stays the floor. */
            if (best < PRODUCER_DEFAULT_MAX_BYTES)
                best = PRODUCER_DEFAULT_MAX_BYTES;
            continue;
        }
        size_t ne = 0;
        const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rs[i], &ne);
        for (size_t j = 0; j < ne; j++) {
            const char *v = rd_kafka_ConfigEntry_value(es[j]);
            if (v && strcmp(rd_kafka_ConfigEntry_name(es[j]), "max.message.bytes") == 0) {
                int64_t x = strtoll(v, NULL, 10);
                if (x > best)
                    best = x;
                if (x > 0 && lim->n < sizeof lim->topic / sizeof lim->topic[0] &&
                    (lim->topic[lim->n] = strdup(rd_kafka_ConfigResource_name(rs[i]))))
                    lim->bytes[lim->n++] = x;
            }
        }
    }
    return best;
}

/* Asks the producer for the metadata of each topic, so its first record
 * there does not wait for a metadata round trip. */
static void warm_metadata(rd_kafka_t *prk, char **topics, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!topics[i])
            continue;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(prk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rkt && rd_kafka_metadata(prk, 0, rkt, &md, 5000) == 0)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
}

int lev_w_prepare_topics(lev_worker_t *w, lev_error_t *err)
{
    int wrc = wait_for_broker(w, err);
    if (wrc == -1)
        return LEV_W_STOPPED;
    if (wrc != 0)
        return wrc;
    char *dest[W_MAX_OUTPUTS + LEV_RETRY_LEVELS_MAX + 1];
    size_t ndest = destination_topics(w, dest, sizeof dest / sizeof dest[0]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(w->rk, RD_KAFKA_ADMIN_OP_ANY);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(opts, ADMIN_TIMEOUT_MS, errstr, sizeof errstr);

    /* both requests at once: the failure topics are created, and the
     * topics we write to say how large a record they take */
    create_failure_topics(w, q, opts);
    describe_topics(w->rk, dest, ndest, q, opts);
    int waiting = 2;
    int64_t best = 0, deadline = lev_mono_ms() + ADMIN_TIMEOUT_MS + 1000;
    limits_t lim = {.n = 0};
    while (waiting > 0) {
        int64_t left = deadline - lev_mono_ms();
        rd_kafka_event_t *ev = left > 0 ? rd_kafka_queue_poll(q, (int)left) : NULL;
        if (!ev) {
            lev_log(LEV_LOG_WARN, "no answer from the broker to admin requests at start", NULL);
            break;
        }
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT) {
            if (rd_kafka_event_error(ev))
                lev_log(LEV_LOG_WARN, "cannot create the failure topics", "error",
                        rd_kafka_event_error_string(ev), NULL);
            else
                created_failure_topics(ev);
            waiting--;
        } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT) {
            if (rd_kafka_event_error(ev))
                lev_log(LEV_LOG_WARN, "cannot read the topics' max.message.bytes", "error",
                        rd_kafka_event_error_string(ev), NULL);
            else
                best = largest_record_limit(ev, &lim);
            waiting--;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);

    /* a record the topics accept must be one our producer can send again
     * (to a retry or dead-letter topic): the producer's limit follows the
     * largest topic limit, unless KAFKA_MESSAGE_MAX_BYTES says otherwise */
    char limit[32] = "";
    if (!w->user_max_message_bytes && best >= 1000 && best <= 1000000000) {
        snprintf(limit, sizeof limit, "%" PRId64, best);
        lev_log(LEV_LOG_INFO, "producer message.max.bytes follows the topics' limit",
                "message_max_bytes", limit, NULL);
    }
    int rc = LEV_OK;
    if (!w->producer) {
        rd_kafka_conf_t *kc = rd_kafka_conf_dup(w->producer_conf);
        if (limit[0] && lev_kafka_conf_set(kc, "message.max.bytes", limit, err) != 0) {
            rd_kafka_conf_destroy(kc);
            rc = LEV_ERR_CONFIG;
            goto out;
        }
        w->producer = lev_producer_new_from_conf(kc, w->conf.shutdown_timeout_ms, w->source, err);
        if (!w->producer) {
            rc = err ? err->code : LEV_ERR_KAFKA;
            goto out;
        }
    }
    for (size_t i = 0; i < lim.n; i++)
        lev_producer_set_topic_limit(w->producer, lim.topic[i], (size_t)lim.bytes[i]);
    warm_metadata(lev_producer_client(w->producer), dest, ndest);
out:
    for (size_t i = 0; i < lim.n; i++)
        free(lim.topic[i]);
    for (size_t i = 0; i < ndest; i++)
        free(dest[i]);
    return rc;
}
