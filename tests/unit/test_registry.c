/* The schema registry client without a registry: subject strategies and
 * names, URLs and settings refused at creation, credentials kept out of
 * the URL it reports, settings from the environment. No request is made. */
#include "check.h"

#include <libevents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const registry_vars[] = {
    "LEV_SCHEMA_REGISTRY_URL",
    "LEV_SCHEMA_REGISTRY_USER",
    "LEV_SCHEMA_REGISTRY_PASSWORD",
    "LEV_SCHEMA_REGISTRY_PASSWORD_FILE",
    "LEV_SCHEMA_REGISTRY_CA_LOCATION",
    "LEV_SCHEMA_REGISTRY_CERT_LOCATION",
    "LEV_SCHEMA_REGISTRY_KEY_LOCATION",
    "LEV_SCHEMA_REGISTRY_TIMEOUT_MS",
    "LEV_SCHEMA_REGISTRY_RETRIES",
    "LEV_SCHEMA_REGISTRY_CACHE_SIZE",
    "LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY",
};

static void registry_env_clear(void)
{
    for (size_t i = 0; i < sizeof registry_vars / sizeof registry_vars[0]; i++)
        unsetenv(registry_vars[i]);
}

static void strategies_parse_every_documented_spelling_and_refuse_others(void)
{
    static const struct {
        const char *s;
        lev_subject_strategy_t want;
    } ok[] = {
        {"topic", LEV_SUBJECT_TOPIC},
        {"topic_name", LEV_SUBJECT_TOPIC},
        {"TopicNameStrategy", LEV_SUBJECT_TOPIC},
        {"record", LEV_SUBJECT_RECORD},
        {"record_name", LEV_SUBJECT_RECORD},
        {"RecordNameStrategy", LEV_SUBJECT_RECORD},
        {"topic_record", LEV_SUBJECT_TOPIC_RECORD},
        {"topic_record_name", LEV_SUBJECT_TOPIC_RECORD},
        {"TopicRecordNameStrategy", LEV_SUBJECT_TOPIC_RECORD},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        lev_subject_strategy_t s = (lev_subject_strategy_t)-1;
        CHECK_INT(lev_subject_strategy_parse(ok[i].s, &s), ==, 0);
        CHECK_INT(s, ==, ok[i].want);
    }
    const char *bad[] = {"", "topics", "record-name", "TopicName", "value", " topic"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lev_subject_strategy_t s = LEV_SUBJECT_RECORD;
        CHECK_INT(lev_subject_strategy_parse(bad[i], &s), ==, LEV_ERR_CONFIG);
        CHECK_INT(s, ==, LEV_SUBJECT_RECORD); /* left alone */
    }
    lev_subject_strategy_t s;
    CHECK_INT(lev_subject_strategy_parse(NULL, &s), ==, LEV_ERR_CONFIG);
}

static void subjects_follow_the_three_strategies(void)
{
    char out[128];
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC, "orders", "shop.order.OrderPlaced", out,
                                   sizeof out),
              ==, 0);
    CHECK_STR(out, "orders-value");
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_RECORD, "orders", "shop.order.OrderPlaced", out,
                                   sizeof out),
              ==, 0);
    CHECK_STR(out, "shop.order.OrderPlaced");
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC_RECORD, "orders", "shop.order.OrderPlaced",
                                   out, sizeof out),
              ==, 0);
    CHECK_STR(out, "orders-shop.order.OrderPlaced");
    /* the record strategy does not need the topic */
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_RECORD, NULL, "a.B", out, sizeof out), ==, 0);
    CHECK_STR(out, "a.B");
}

static void subjects_that_do_not_fit_or_lack_a_part_are_refused(void)
{
    char out[13]; /* "orders-value" is 12 characters and the NUL */
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC, "orders", "x.Y", out, sizeof out), ==, 0);
    CHECK_STR(out, "orders-value");
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC, "orders2", "x.Y", out, sizeof out), ==,
              LEV_ERR_ARG);
    CHECK_STR(out, ""); /* never a cut subject */
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC_RECORD, "orders", "shop.order.OrderPlaced",
                                   out, sizeof out),
              ==, LEV_ERR_ARG);
    CHECK_INT(
        lev_registry_subject(LEV_SUBJECT_RECORD, "t", "a.VeryLongRecordName", out, sizeof out), ==,
        LEV_ERR_ARG);
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC, "t", "x.Y", out, 0), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC, NULL, "x.Y", out, sizeof out), ==,
              LEV_ERR_ARG);
    CHECK_INT(lev_registry_subject(LEV_SUBJECT_TOPIC_RECORD, "t", NULL, out, sizeof out), ==,
              LEV_ERR_ARG);
    CHECK_INT(lev_registry_subject((lev_subject_strategy_t)7, "t", "x.Y", out, sizeof out), ==,
              LEV_ERR_ARG);
}

static void malformed_urls_are_config_errors_that_name_the_url(void)
{
    const char *bad[] = {
        NULL,
        "",
        "localhost:8081",
        "ftp://registry:8081",
        "http://",
        "http:///path",
        "http://reg istry:8081",
        "http://registry:99999",
        "http://registry:8081/?x=1",
        "http://registry:8081/#top",
        "http://user:secret@",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lev_registry_conf_t conf = {.url = bad[i]};
        lev_error_t err = {0};
        lev_registry_t *reg = lev_registry_new(&conf, &err);
        if (reg)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(reg == NULL);
        CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
        CHECK_STR(err.where, "url");
        CHECK(strstr(err.text, "secret") == NULL);
        lev_registry_destroy(reg);
    }
    lev_error_t err = {0};
    CHECK(lev_registry_new(NULL, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
}

static void bad_settings_are_config_errors(void)
{
    lev_registry_conf_t conf = {.url = "http://registry:8081", .timeout_ms = -1};
    lev_error_t err = {0};
    CHECK(lev_registry_new(&conf, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    CHECK_STR(err.where, "timeout_ms");
    conf = (lev_registry_conf_t){.url = "http://registry:8081", .retries = -2};
    CHECK(lev_registry_new(&conf, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    conf =
        (lev_registry_conf_t){.url = "http://registry:8081", .strategy = (lev_subject_strategy_t)9};
    CHECK(lev_registry_new(&conf, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    conf = (lev_registry_conf_t){.url = "https://registry:8081", .key_location = "/k.pem"};
    CHECK(lev_registry_new(&conf, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
}

static void the_reported_url_has_no_credentials_nor_final_slash(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"http://registry:8081", "http://registry:8081"},
        {"http://registry:8081/", "http://registry:8081"},
        {"http://user:s3cret@registry:8081", "http://registry:8081"},
        {"https://us%40er:p%3Ass@registry.example/apis/ccompat/v7/",
         "https://registry.example/apis/ccompat/v7"},
        {"http://onlyuser@127.0.0.1:39081/apis/ccompat/v7",
         "http://127.0.0.1:39081/apis/ccompat/v7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lev_registry_conf_t conf = {.url = cases[i].in};
        lev_error_t err = {0};
        lev_registry_t *reg = lev_registry_new(&conf, &err);
        CHECK(reg != NULL);
        CHECK_INT(err.code, ==, 0);
        CHECK_STR(lev_registry_url(reg), cases[i].want);
        CHECK_INT(lev_registry_strategy(reg), ==, LEV_SUBJECT_TOPIC);
        lev_registry_destroy(reg);
    }
    /* user and password in the configuration: the URL stays as given */
    lev_registry_conf_t conf = {.url = "http://registry:8081",
                                .user = "u",
                                .password = "p",
                                .strategy = LEV_SUBJECT_TOPIC_RECORD};
    lev_registry_t *reg = lev_registry_new(&conf, NULL);
    CHECK(reg != NULL);
    CHECK_STR(lev_registry_url(reg), "http://registry:8081");
    CHECK_INT(lev_registry_strategy(reg), ==, LEV_SUBJECT_TOPIC_RECORD);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 0); /* creating asks nothing */
    lev_registry_destroy(reg);
    lev_registry_destroy(NULL);
}

static void calls_check_their_arguments(void)
{
    lev_registry_conf_t conf = {.url = "http://127.0.0.1:1"};
    lev_registry_t *reg = lev_registry_new(&conf, NULL);
    REQUIRE(reg != NULL);
    lev_error_t err = {0};
    int32_t id;
    char *s = NULL;
    CHECK_INT(lev_registry_schema_by_id(NULL, 1, &s, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_schema_by_id(reg, 1, NULL, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_register(reg, "", "\"int\"", &id, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_register(reg, "s", NULL, &id, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_lookup(reg, NULL, "\"int\"", &id, NULL, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_latest(reg, NULL, &s, &id, NULL, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_check(reg, "s", "\"int\"", NULL, NULL, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_set_compatibility(reg, "s", NULL, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_get_compatibility(reg, NULL, NULL, 0, &err), ==, LEV_ERR_ARG);
    /* a negative id is no registry id: refused without asking */
    CHECK_INT(lev_registry_schema_by_id(reg, -1, &s, &err), ==, LEV_ERR_UNKNOWN_SCHEMA);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 0);
    lev_registry_destroy(reg);
}

static void the_environment_configures_a_client_or_names_the_bad_variable(void)
{
    registry_env_clear();
    lev_error_t err = {.code = 99};
    CHECK(lev_registry_from_env(&err) == NULL); /* no URL: no registry, no error */
    CHECK_INT(err.code, ==, 0);
    setenv("LEV_SCHEMA_REGISTRY_URL", "", 1);
    CHECK(lev_registry_from_env(&err) == NULL);
    CHECK_INT(err.code, ==, 0);

    setenv("LEV_SCHEMA_REGISTRY_URL", "http://u:pw@registry:8081/", 1);
    setenv("LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY", "RecordNameStrategy", 1);
    setenv("LEV_SCHEMA_REGISTRY_RETRIES", "0", 1);
    lev_registry_t *reg = lev_registry_from_env(&err);
    CHECK(reg != NULL);
    CHECK_STR(lev_registry_url(reg), "http://registry:8081");
    CHECK_INT(lev_registry_strategy(reg), ==, LEV_SUBJECT_RECORD);
    lev_registry_destroy(reg);

    static const struct {
        const char *var, *value;
    } bad[] = {
        {"LEV_SCHEMA_REGISTRY_TIMEOUT_MS", "0"},
        {"LEV_SCHEMA_REGISTRY_TIMEOUT_MS", "5s"},
        {"LEV_SCHEMA_REGISTRY_RETRIES", "-1"},
        {"LEV_SCHEMA_REGISTRY_CACHE_SIZE", "0"},
        {"LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY", "by_topic"},
        {"LEV_SCHEMA_REGISTRY_PASSWORD_FILE", "/nonexistent/registry-password"},
        {"LEV_SCHEMA_REGISTRY_URL", "registry:8081"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        registry_env_clear();
        setenv("LEV_SCHEMA_REGISTRY_URL", "http://registry:8081", 1);
        setenv(bad[i].var, bad[i].value, 1);
        lev_error_t e = {0};
        lev_registry_t *r = lev_registry_from_env(&e);
        CHECK(r == NULL);
        CHECK_INT(e.code, ==, LEV_ERR_CONFIG);
        CHECK_STR(e.where, bad[i].var);
        lev_registry_destroy(r);
    }

    /* a password file: read, its final line break dropped, never shown */
    char path[] = "/tmp/lev-test-registry-pw-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "hunter2\n", 8) == 8);
    close(fd);
    registry_env_clear();
    setenv("LEV_SCHEMA_REGISTRY_URL", "http://registry:8081", 1);
    setenv("LEV_SCHEMA_REGISTRY_USER", "svc", 1);
    setenv("LEV_SCHEMA_REGISTRY_PASSWORD_FILE", path, 1);
    reg = lev_registry_from_env(&err);
    CHECK(reg != NULL);
    CHECK_STR(lev_registry_url(reg), "http://registry:8081");
    lev_registry_destroy(reg);
    /* both the password and its file: which one is meant? */
    setenv("LEV_SCHEMA_REGISTRY_PASSWORD", "other", 1);
    CHECK(lev_registry_from_env(&err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    CHECK(strstr(err.text, "hunter2") == NULL && strstr(err.text, "other") == NULL);
    unlink(path);
    registry_env_clear();
}

CHECK_MAIN(CASE(strategies_parse_every_documented_spelling_and_refuse_others),
           CASE(subjects_follow_the_three_strategies),
           CASE(subjects_that_do_not_fit_or_lack_a_part_are_refused),
           CASE(malformed_urls_are_config_errors_that_name_the_url),
           CASE(bad_settings_are_config_errors),
           CASE(the_reported_url_has_no_credentials_nor_final_slash),
           CASE(calls_check_their_arguments),
           CASE(the_environment_configures_a_client_or_names_the_bad_variable))
