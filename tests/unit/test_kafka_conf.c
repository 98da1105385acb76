/* The librdkafka configuration libevents builds: passthrough routing and the
 * settings at-least-once delivery rests on. No broker needed. */
#include "check.h"
#include "kafka_internal.h"
#include "producer_internal.h"

#include <stdio.h>
#include <stdlib.h>

static const char *get(rd_kafka_conf_t *kc, const char *name, char *buf, size_t size)
{
    size_t len = size;
    if (rd_kafka_conf_get(kc, name, buf, &len) != RD_KAFKA_CONF_OK)
        return "(unknown)";
    return buf;
}

static void passthrough_reaches_only_the_client_it_belongs_to(void)
{
    lev_config_t c;
    REQUIRE(lev_config_init(&c, "svc", NULL) == 0);
    lev_config_set_kafka(&c, "session.timeout.ms", "12345");
    lev_config_set_kafka(&c, "linger.ms", "77");
    lev_config_set_kafka(&c, "socket.keepalive.enable", "true");
    char b[64];
    rd_kafka_conf_t *p = lev_kafka_conf_new(&c, RD_KAFKA_PRODUCER, NULL, NULL, NULL);
    rd_kafka_conf_t *k = lev_kafka_conf_new(&c, RD_KAFKA_CONSUMER, NULL, NULL, NULL);
    REQUIRE(p && k);
    CHECK_STR(get(p, "linger.ms", b, sizeof b), "77");
    CHECK(strcmp(get(p, "session.timeout.ms", b, sizeof b), "12345") != 0);
    CHECK_STR(get(k, "session.timeout.ms", b, sizeof b), "12345");
    CHECK(strcmp(get(k, "linger.ms", b, sizeof b), "77") != 0);
    CHECK_STR(get(p, "socket.keepalive.enable", b, sizeof b), "true");
    CHECK_STR(get(k, "socket.keepalive.enable", b, sizeof b), "true");
    rd_kafka_conf_destroy(p);
    rd_kafka_conf_destroy(k);
    lev_config_clear(&c);
}

static void at_least_once_settings_cannot_be_overridden(void)
{
    lev_config_t c;
    REQUIRE(lev_config_init(&c, "svc", NULL) == 0);
    lev_config_set_kafka(&c, "acks", "1");
    lev_config_set_kafka(&c, "enable.idempotence", "false");
    lev_config_set_kafka(&c, "enable.auto.offset.store", "true");
    const lev_kv_t extra[] = {{"acks", "0"}, {NULL, NULL}};
    char b[64];
    rd_kafka_conf_t *p = lev_kafka_conf_new(&c, RD_KAFKA_PRODUCER, NULL, extra, NULL);
    rd_kafka_conf_t *k = lev_kafka_conf_new(&c, RD_KAFKA_CONSUMER, NULL, NULL, NULL);
    REQUIRE(p && k);
    CHECK_STR(get(p, "acks", b, sizeof b), "-1"); /* all */
    CHECK_STR(get(p, "enable.idempotence", b, sizeof b), "true");
    CHECK_STR(get(k, "enable.auto.offset.store", b, sizeof b), "false");
    rd_kafka_conf_destroy(p);
    rd_kafka_conf_destroy(k);
    lev_config_clear(&c);
}

static void a_rejected_property_names_its_variable(void)
{
    lev_config_t c;
    REQUIRE(lev_config_init(&c, "svc", NULL) == 0);
    lev_config_set_kafka(&c, "no.such.property", "1");
    lev_error_t err;
    rd_kafka_conf_t *p = lev_kafka_conf_new(&c, RD_KAFKA_PRODUCER, NULL, NULL, &err);
    CHECK(p == NULL);
    CHECK_STR(err.where, "KAFKA_NO_SUCH_PROPERTY");
    if (p)
        rd_kafka_conf_destroy(p);
    lev_config_clear(&c);
}

/* Refused credentials are told apart from a broker that is merely away. */
static void refused_credentials_are_authentication_errors(void)
{
    CHECK(lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR__AUTHENTICATION));
    CHECK(lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED));
    CHECK(lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM));
    CHECK(!lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR__TRANSPORT));
    CHECK(!lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN));
    CHECK(!lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR__TIMED_OUT));
    /* not allowed to do something is authorization, not authentication */
    CHECK(!lev_kafka_err_is_auth(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
}

/* What lev_config_kafka_apply hands a program's own setter. */
typedef struct seen_s {
    char list[2048];    /* "name=value;" in order */
    const char *refuse; /* a name the setter refuses */
} seen_t;

static int record(void *opaque, const char *name, const char *value, char *errstr, size_t size)
{
    seen_t *s = opaque;
    if (s->refuse && strcmp(name, s->refuse) == 0) {
        snprintf(errstr, size, "not today");
        return -1;
    }
    size_t n = strlen(s->list);
    snprintf(s->list + n, sizeof s->list - n, "%s=%s;", name, value ? value : "(null)");
    return 0;
}

static void apply_hands_a_programs_setter_what_the_library_clients_get_in_order(void)
{
    lev_config_t c;
    REQUIRE(lev_config_init(&c, "svc", NULL) == 0);
    lev_config_set_str(&c.bootstrap, "k:9092");
    lev_config_set_str(&c.client_id, "cid");
    lev_config_set_kafka(&c, "session.timeout.ms", "12345");
    lev_config_set_kafka(&c, "linger.ms", "77");
    lev_config_set_kafka(&c, "enable.auto.offset.store", "true");
    const lev_kv_t defaults[] = {{"auto.offset.reset", "earliest"}, {NULL, NULL}};
    const lev_kv_t extra[] = {{"group.id", "g"}, {NULL, NULL}};
    seen_t k = {0}, p = {0};
    CHECK_INT(lev_config_kafka_apply(&c, LEV_KAFKA_CONSUMER, defaults, extra, record, &k, NULL), ==,
              0);
    CHECK_STR(k.list, "bootstrap.servers=k:9092;client.id=cid;auto.offset.reset=earliest;"
                      "session.timeout.ms=12345;enable.auto.offset.store=true;group.id=g;"
                      "enable.auto.offset.store=false;");
    CHECK_INT(lev_config_kafka_apply(&c, LEV_KAFKA_PRODUCER, NULL, NULL, record, &p, NULL), ==, 0);
    CHECK_STR(p.list, "bootstrap.servers=k:9092;client.id=cid;linger.ms=77;"
                      "enable.idempotence=true;acks=all;");
    lev_error_t err;
    CHECK_INT(lev_config_kafka_apply(&c, LEV_KAFKA_CONSUMER, NULL, NULL, NULL, NULL, &err), ==,
              LEV_ERR_ARG);
    lev_config_clear(&c);
}

static void apply_names_the_variable_or_property_a_setter_refuses(void)
{
    lev_config_t c;
    REQUIRE(lev_config_init(&c, "svc", NULL) == 0);
    lev_config_set_kafka(&c, "socket.timeout.ms", "1000");
    const lev_kv_t extra[] = {{"group.id", "g"}, {NULL, NULL}};
    lev_error_t err;
    seen_t s = {.refuse = "socket.timeout.ms"};
    CHECK_INT(lev_config_kafka_apply(&c, LEV_KAFKA_CONSUMER, NULL, extra, record, &s, &err), ==,
              LEV_ERR_CONFIG);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    CHECK_STR(err.where, "KAFKA_SOCKET_TIMEOUT_MS");
    CHECK_STR(err.text, "not today");
    seen_t g = {.refuse = "group.id"};
    CHECK_INT(lev_config_kafka_apply(&c, LEV_KAFKA_CONSUMER, NULL, extra, record, &g, &err), ==,
              LEV_ERR_CONFIG);
    CHECK_STR(err.where, "group.id");
    lev_config_clear(&c);
}

static void producer_defaults_replace_the_librarys_and_yield_to_the_passthrough(void)
{
    lev_config_t c;
    REQUIRE(lev_config_init(&c, "svc", NULL) == 0);
    const lev_kv_t defaults[] = {{"linger.ms", "20"}, {"compression.type", "zstd"}, {NULL, NULL}};
    char b[64];
    rd_kafka_conf_t *kc = lev_producer_conf_new(&c, defaults, NULL, NULL);
    REQUIRE(kc);
    CHECK_STR(get(kc, "linger.ms", b, sizeof b), "20");
    CHECK_STR(get(kc, "compression.type", b, sizeof b), "zstd");
    rd_kafka_conf_destroy(kc);
    lev_config_set_kafka(&c, "linger.ms", "7");
    kc = lev_producer_conf_new(&c, defaults, NULL, NULL);
    REQUIRE(kc);
    CHECK_STR(get(kc, "linger.ms", b, sizeof b), "7");
    rd_kafka_conf_destroy(kc);
    lev_config_clear(&c);
}

CHECK_MAIN(CASE(passthrough_reaches_only_the_client_it_belongs_to),
           CASE(at_least_once_settings_cannot_be_overridden),
           CASE(a_rejected_property_names_its_variable),
           CASE(refused_credentials_are_authentication_errors),
           CASE(apply_hands_a_programs_setter_what_the_library_clients_get_in_order),
           CASE(apply_names_the_variable_or_property_a_setter_refuses),
           CASE(producer_defaults_replace_the_librarys_and_yield_to_the_passthrough))
