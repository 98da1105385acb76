/* Kafka clients for evctl: a group-less consumer for metadata and reading
 * by assignment, the libevents producer, and header helpers. */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>

/* librdkafka's log lines, to the log evctl set up (as libevents' own
 * clients do). */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    lev_log_level_t l = level <= 3   ? LEV_LOG_ERROR
                        : level == 4 ? LEV_LOG_WARN
                        : level <= 6 ? LEV_LOG_INFO
                                     : LEV_LOG_DEBUG;
    lev_log(l, buf, "component", "librdkafka", "facility", fac, "client", rd_kafka_name(rk), NULL);
}

static int kafka_conf_set(void *kc, const char *name, const char *value, char *errstr,
                          size_t errstr_size)
{
    return rd_kafka_conf_set(kc, name, value, errstr, errstr_size) == RD_KAFKA_CONF_OK ? 0 : -1;
}

/* The first refusal (of our credentials or our TLS handshake) a client of
 * evctl reported, and the last error of any kind (evctl runs one client at
 * a time, on one thread): "" when none. */
static char auth_error[512], last_error[512];
static int auth_error_tls; /* auth_error is a failed TLS handshake */

/* librdkafka's error callback: keeps a refusal for the message, and the
 * last reason for "did not answer"; other errors (brokers down, retries)
 * are librdkafka's to handle. */
static void on_client_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    if ((lev_kafka_err_is_auth(err) || err == RD_KAFKA_RESP_ERR__SSL) && !auth_error[0]) {
        snprintf(auth_error, sizeof auth_error, "%s", reason && *reason ? reason : "refused");
        auth_error_tls = err == RD_KAFKA_RESP_ERR__SSL;
    }
    snprintf(last_error, sizeof last_error, "%s", reason && *reason ? reason : "");
}

/* Serves the errors librdkafka has queued (they reach on_client_error, or
 * come back as error messages before anything is assigned), waiting up to
 * wait_ms for the first. */
static void serve_errors(rd_kafka_t *rk, int wait_ms)
{
    for (int i = 0; i < 100; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, i == 0 ? wait_ms : 0);
        if (!m)
            break;
        if (m->err)
            on_client_error(rk, m->err, rd_kafka_message_errstr(m), NULL);
        rd_kafka_message_destroy(m);
    }
}

rd_kafka_t *evctl_consumer_new(evctl_ctx_t *ctx, const char *group, int *code)
{
    /* librdkafka's assign needs a group id even when nothing joins or commits */
    const char *group_id = group ? group : "evctl-reader";
    const lev_kv_t defaults[] = {
        {"enable.auto.commit", "false"},       {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},      {"auto.offset.reset", "earliest"},
        {"allow.auto.create.topics", "false"}, {NULL, NULL},
    };
    const lev_kv_t extra[] = {{"group.id", group_id}, {NULL, NULL}};
    lev_error_t err;
    char errstr[512], buf[800];
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (!kc) {
        *code = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(kc, kafka_log_cb);
    if (lev_config_kafka_apply(&ctx->conf, LEV_KAFKA_CONSUMER, defaults, extra, kafka_conf_set, kc,
                               &err) != 0) {
        rd_kafka_conf_destroy(kc);
        if (strcmp(err.where, "group.id") == 0)
            *code = evctl_fail(EVCTL_EXIT_USAGE, "group \"%s\": %s", group_id,
                               lev_error_format(&err, buf, sizeof buf));
        else
            *code = evctl_fail(EVCTL_EXIT_USAGE, "Kafka configuration: %s",
                               lev_error_format(&err, buf, sizeof buf));
        return NULL;
    }
    rd_kafka_conf_set_error_cb(kc, on_client_error);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(kc);
        *code = evctl_fail(EVCTL_EXIT_INTERNAL, "cannot create a Kafka client: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    /* Ask in short rounds: refused credentials end the wait at once (the
     * request itself only ever says "transport failure" or "timed out"). */
    auth_error[0] = last_error[0] = '\0';
    int64_t deadline = lev_mono_ms() + ctx->timeout_ms;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        int64_t left = deadline - lev_mono_ms();
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md,
                                                  (int)(left < 1     ? 1
                                                        : left > 500 ? 500
                                                                     : left));
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            break;
        }
        /* a request that failed at once (no connection) must not spin */
        left = deadline - lev_mono_ms();
        serve_errors(rk, (int)(left < 0 ? 0 : left > 100 ? 100 : left));
        if (auth_error[0]) {
            *code = evctl_fail(
                EVCTL_EXIT_UNAVAILABLE,
                "Kafka at %s: %s: %s (check "
                "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, "
                "KAFKA_SASL_PASSWORD[_FILE] and KAFKA_SSL_CA_LOCATION)",
                ctx->conf.bootstrap,
                auth_error_tls ? "TLS handshake failed" : "authentication failed", auth_error);
            rd_kafka_destroy(rk);
            return NULL;
        }
        if (lev_mono_ms() >= deadline) {
            *code = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "Kafka at %s did not answer: %s%s%s",
                               ctx->conf.bootstrap, rd_kafka_err2str(e), last_error[0] ? ": " : "",
                               last_error);
            rd_kafka_destroy(rk);
            return NULL;
        }
    }
    *code = 0;
    return rk;
}

void evctl_consumer_destroy(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

int evctl_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    /* a freshly created topic can answer "leader not available" for a moment */
    int64_t deadline = lev_mono_ms() + timeout_ms;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        rd_kafka_resp_err_t te = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__FAIL;
        if (te == RD_KAFKA_RESP_ERR_NO_ERROR) {
            n = md->topics[0].partition_cnt;
        } else if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                   te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
            n = 0;
        } else if (te == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            n = EVCTL_TOPIC_DENIED;
        } else if (te == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE && lev_mono_ms() < deadline) {
            rd_kafka_metadata_destroy(md);
            md = NULL;
            rd_kafka_poll(rk, 200);
            continue;
        }
        break;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

const char *evctl_topic_partitions_why(int n)
{
    return n == EVCTL_TOPIC_DENIED ? "not authorized: Kafka's ACLs do not let evctl's principal "
                                     "describe this topic"
                                   : "no metadata from Kafka";
}

lev_producer_t *evctl_producer_new(evctl_ctx_t *ctx)
{
    /* the library's 5 ms: a publish keeps at most 10,000 records in flight, a
     * window that fills in well under 20 ms at full speed, so a longer linger
     * only makes the sender wait for acknowledgements (600,000 lines: 2.1 s
     * at 5 ms, 2.6 s at 20). KAFKA_LINGER_MS still overrides it */
    const lev_kv_t defaults[] = {{"linger.ms", "5"}, {NULL, NULL}};
    lev_error_t err;
    char buf[800];
    lev_producer_t *p = lev_producer_new_with(&ctx->conf, defaults, NULL, &err);
    if (!p)
        evctl_fail(err.code == LEV_ERR_CONFIG ? EVCTL_EXIT_USAGE : EVCTL_EXIT_INTERNAL,
                   "cannot create a producer: %s", lev_error_format(&err, buf, sizeof buf));
    return p;
}

void evctl_producer_poll_cb(void *opaque, int ms)
{
    lev_producer_poll(opaque, ms);
}

size_t evctl_headers_get(const rd_kafka_message_t *m, lev_header_t *out, size_t max)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs)
        return 0;
    size_t n = 0;
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; n < max && rd_kafka_header_get_all(hdrs, i, &name, &value, &size) ==
                                      RD_KAFKA_RESP_ERR_NO_ERROR;
         i++)
        out[n++] = (lev_header_t){name, value, value ? size : 0};
    return n;
}

const char *evctl_header_str(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *value = NULL;
    size_t len = 0;
    if (size == 0 || rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs ||
        rd_kafka_header_get_last(hdrs, name, &value, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !value)
        return NULL;
    if (len >= size)
        len = size - 1;
    memcpy(buf, value, len);
    buf[len] = '\0';
    /* a header holding a NUL byte is cut there: names and numbers never hold one */
    return buf;
}
