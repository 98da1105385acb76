/* Configuration from the environment: defaults, parsing, errors that name
 * the variable, librdkafka passthrough. */
#include "check.h"

#include <libevents.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void clear_env(void)
{
    const char *vars[] = {"LEV_SERVICE",      "KAFKA_BOOTSTRAP",         "LEV_GROUP_ID",
                          "REDIS_URL",        "LEV_LOG_LEVEL",           "LEV_BATCH_SIZE",
                          "LEV_RETRY_DELAYS", "LEV_RETRY_ATTEMPTS",      "LEV_IDEMPOTENCY_LEASE_MS",
                          "LEV_MAX_ITEMS",    "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME",
                          "LEV_HTTP_ADDR",    "LEV_HEALTH_STALL_MS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void defaults_work_against_the_local_stack(void)
{
    clear_env();
    lev_config_t c;
    REQUIRE(lev_config_from_env(&c, "order-service", NULL) == 0);
    CHECK_STR(c.service, "order-service");
    CHECK_STR(c.group_id, "order-service");
    CHECK_STR(c.bootstrap, "127.0.0.1:19092");
    CHECK_STR(c.redis_url, "redis://127.0.0.1:16379/0");
    CHECK_STR(c.source, "/order-service");
    CHECK_INT(c.log_level, ==, LEV_LOG_INFO);
    CHECK_INT(c.batch_size, ==, 500);
    CHECK_INT(c.retry.attempts, ==, 3);
    CHECK_INT(c.retry.levels, ==, 3);
    CHECK_INT(c.retry.delays_ms[0], ==, 5000);
    CHECK_INT(c.retry.delays_ms[1], ==, 30000);
    CHECK_INT(c.retry.delays_ms[2], ==, 300000);
    CHECK_INT(c.lease_ms, ==, 60000);
    CHECK_INT(c.done_ttl_ms, ==, 7LL * 86400000);
    CHECK_INT(c.nkafka, ==, 0);
    CHECK(c.http_addr == NULL); /* no endpoint unless asked for */
    CHECK_INT(c.health_stall_ms, ==, 30000);
    lev_config_clear(&c);
}

static void default_schema_dirs_are_the_working_directory_and_the_installed_ones(void)
{
    lev_config_t c; /* the defaults, whatever LEV_SCHEMA_DIRS the tests run with */
    REQUIRE(lev_config_init(&c, "order-service", NULL) == 0);
    /* in the build tree nothing is installed next to the program: the
     * directory chosen at build time */
    const char *data = lev_install_data_dir();
    REQUIRE(data != NULL && data[0] == '/');
    CHECK_STR(data, LEV_TEST_INSTALL_DATADIR);
    char want[4200], *help = NULL;
    snprintf(want, sizeof want, "schemas:%s/schemas", data);
    CHECK_STR(c.schema_dirs, want);
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    lev_config_print_help(f);
    fclose(f);
    CHECK(strstr(help, want) != NULL);
    free(help);
    lev_config_clear(&c);
}

static void environment_overrides_defaults(void)
{
    clear_env();
    setenv("KAFKA_BOOTSTRAP", "broker:9092", 1);
    setenv("LEV_GROUP_ID", "g1", 1);
    setenv("LEV_LOG_LEVEL", "debug", 1);
    setenv("LEV_BATCH_SIZE", "64", 1);
    setenv("LEV_RETRY_DELAYS", "250ms,2m", 1);
    setenv("LEV_IDEMPOTENCY_LEASE_MS", "15s", 1);
    setenv("REDIS_URL", "", 1);
    lev_config_t c;
    REQUIRE(lev_config_from_env(&c, "svc", NULL) == 0);
    CHECK_STR(c.bootstrap, "broker:9092");
    CHECK_STR(c.group_id, "g1");
    CHECK_INT(c.log_level, ==, LEV_LOG_DEBUG);
    CHECK_INT(c.batch_size, ==, 64);
    CHECK_INT(c.retry.levels, ==, 2);
    CHECK_INT(c.retry.delays_ms[0], ==, 250);
    CHECK_INT(c.retry.delays_ms[1], ==, 120000);
    CHECK_INT(c.lease_ms, ==, 15000);
    CHECK_STR(c.redis_url, ""); /* empty: idempotency off */
    lev_config_clear(&c);
    setenv("LEV_RETRY_DELAYS", "", 1);
    REQUIRE(lev_config_from_env(&c, "svc", NULL) == 0);
    CHECK_INT(c.retry.levels, ==, 0);
    lev_config_clear(&c);
    clear_env();
}

static void bad_values_fail_naming_the_variable(void)
{
    struct {
        const char *var, *value;
    } bad[] = {{"LEV_BATCH_SIZE", "many"},        {"LEV_BATCH_SIZE", "0"},
               {"LEV_LOG_LEVEL", "loud"},         {"LEV_RETRY_DELAYS", "5s,,1m"},
               {"LEV_RETRY_DELAYS", "5 parsecs"}, {"LEV_IDEMPOTENCY_LEASE_MS", "-1s"},
               {"LEV_RETRY_ATTEMPTS", "0"},       {"LEV_MAX_ITEMS", "0"},
               {"LEV_HTTP_ADDR", "9100"},         {"LEV_HTTP_ADDR", "host:"},
               {"LEV_HTTP_ADDR", "host:70000"},   {"LEV_HTTP_ADDR", "::1:9100"},
               {"LEV_HTTP_ADDR", "[::1]9100"},    {"LEV_HEALTH_STALL_MS", "0"},
               {"LEV_HEALTH_STALL_MS", "soon"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_env();
        setenv(bad[i].var, bad[i].value, 1);
        lev_config_t c;
        lev_error_t err;
        int rc = lev_config_from_env(&c, "svc", &err);
        CHECK_INT(rc, ==, LEV_ERR_CONFIG);
        if (rc == LEV_ERR_CONFIG)
            CHECK_STR(err.where, bad[i].var);
        else
            lev_config_clear(&c);
    }
    clear_env();
}

static void the_endpoint_address_takes_host_port_forms(void)
{
    const char *good[] = {"127.0.0.1:9100", ":9100", "0.0.0.0:0", "[::1]:9100", "localhost:19101"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        clear_env();
        setenv("LEV_HTTP_ADDR", good[i], 1);
        setenv("LEV_HEALTH_STALL_MS", "2m", 1);
        lev_config_t c;
        lev_error_t err = {0};
        CHECK_INT(lev_config_from_env(&c, "svc", &err), ==, 0);
        if (err.code)
            fprintf(stderr, "  %s: %s\n", good[i], err.text);
        else {
            CHECK_STR(c.http_addr, good[i]);
            CHECK_INT(c.health_stall_ms, ==, 120000);
            lev_config_clear(&c);
        }
    }
    clear_env();
}

static void kafka_variables_pass_through_as_librdkafka_properties(void)
{
    clear_env();
    setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL", 1);
    setenv("KAFKA_SASL_USERNAME", "app", 1);
    setenv("KAFKA_BOOTSTRAP", "b:1", 1);
    lev_config_t c;
    REQUIRE(lev_config_from_env(&c, "svc", NULL) == 0);
    int proto = 0, user = 0, boot = 0;
    for (size_t i = 0; i < c.nkafka; i++) {
        proto +=
            !strcmp(c.kafka[i].key, "security.protocol") && !strcmp(c.kafka[i].value, "SASL_SSL");
        user += !strcmp(c.kafka[i].key, "sasl.username") && !strcmp(c.kafka[i].value, "app");
        boot += !strcmp(c.kafka[i].key, "bootstrap");
    }
    CHECK_INT(proto, ==, 1);
    CHECK_INT(user, ==, 1);
    CHECK_INT(boot, ==, 0); /* KAFKA_BOOTSTRAP is ours, not a librdkafka property */
    CHECK(lev_config_set_kafka(&c, "security.protocol", "SSL") == 0);
    size_t n = c.nkafka;
    CHECK(lev_config_set_kafka(&c, "security.protocol", "PLAINTEXT") == 0);
    CHECK_INT(c.nkafka, ==, n); /* replaced, not added */
    lev_config_clear(&c);
    clear_env();
}

/* Kubernetes injects <SERVICE>_SERVICE_HOST, _SERVICE_PORT[_<name>], _PORT
 * and _PORT_<n>_<proto>[_...] for each Service: for one named "kafka" or
 * "kafka-broker" they all start with KAFKA_. They are not librdkafka
 * properties and must never stop a start; a misspelt property still does,
 * naming the variable. */
static void kubernetes_service_variables_never_stop_a_start_and_a_misspelt_property_does(void)
{
    static const char *k8s[][2] = {
        {"KAFKA_PORT", "tcp://10.96.0.12:9092"},
        {"KAFKA_PORT_9092_TCP", "tcp://10.96.0.12:9092"},
        {"KAFKA_PORT_9092_TCP_PROTO", "tcp"},
        {"KAFKA_PORT_9092_TCP_PORT", "9092"},
        {"KAFKA_PORT_9092_TCP_ADDR", "10.96.0.12"},
        {"KAFKA_SERVICE_HOST", "10.96.0.12"},
        {"KAFKA_SERVICE_PORT", "9092"},
        {"KAFKA_SERVICE_PORT_CLIENT", "9092"},
        {"KAFKA_BROKER_SERVICE_HOST", "10.96.0.13"},
        {"KAFKA_BROKER_SERVICE_PORT", "9092"},
        {"KAFKA_BROKER_PORT", "tcp://10.96.0.13:9092"},
        {"KAFKA_BROKER_PORT_9093_UDP_ADDR", "10.96.0.13"},
    };
    clear_env();
    for (size_t i = 0; i < sizeof k8s / sizeof k8s[0]; i++)
        setenv(k8s[i][0], k8s[i][1], 1);
    setenv("KAFKA_LINGER_MS", "7", 1);
    lev_config_t c;
    lev_error_t err;
    REQUIRE(lev_config_from_env(&c, "svc", &err) == 0);
    CHECK_INT(c.nkafka, ==, 1); /* linger.ms, and nothing of Kubernetes' */
    CHECK_STR(c.kafka[0].key, "linger.ms");
    lev_config_clear(&c);

    setenv("KAFKA_LINGER_MSS", "7", 1); /* misspelt */
    CHECK_INT(lev_config_from_env(&c, "svc", &err), ==, LEV_ERR_CONFIG);
    CHECK_STR(err.where, "KAFKA_LINGER_MSS");
    CHECK(strstr(err.text, "linger.mss is not a librdkafka property") != NULL);
    unsetenv("KAFKA_LINGER_MSS");
    unsetenv("KAFKA_LINGER_MS");
    for (size_t i = 0; i < sizeof k8s / sizeof k8s[0]; i++)
        unsetenv(k8s[i][0]);
}

/* KAFKA_<NAME>_FILE: the property's value from a file, its final line
 * break dropped; errors name the variable and the file, never the value. */
static void a_kafka_property_can_come_from_a_file_and_its_errors_never_show_it(void)
{
    clear_env();
    char dir[] = "/tmp/lev-test-config-XXXXXX", path[64], missing[80];
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/pw", dir);
    snprintf(missing, sizeof missing, "%s/absent", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("s3cret-Passw0rd\n", f);
    fclose(f);
    setenv("KAFKA_SASL_PASSWORD_FILE", path, 1);
    lev_config_t c;
    lev_error_t err;
    REQUIRE(lev_config_from_env(&c, "svc", &err) == 0);
    int found = 0;
    for (size_t i = 0; i < c.nkafka; i++)
        found += !strcmp(c.kafka[i].key, "sasl.password") &&
                 !strcmp(c.kafka[i].value, "s3cret-Passw0rd");
    CHECK_INT(found, ==, 1); /* sasl.password, without the line break */
    lev_config_clear(&c);

    setenv("KAFKA_SASL_PASSWORD_FILE", missing, 1);
    CHECK_INT(lev_config_from_env(&c, "svc", &err), ==, LEV_ERR_CONFIG);
    CHECK_STR(err.where, "KAFKA_SASL_PASSWORD_FILE");
    CHECK(strstr(err.text, missing) != NULL);

    /* a file for a property librdkafka does not have, and a value it refuses */
    unsetenv("KAFKA_SASL_PASSWORD_FILE");
    setenv("KAFKA_SASL_PASSWORDS_FILE", path, 1);
    CHECK_INT(lev_config_from_env(&c, "svc", &err), ==, LEV_ERR_CONFIG);
    CHECK_STR(err.where, "KAFKA_SASL_PASSWORDS_FILE");
    CHECK(strstr(err.text, "sasl.passwords is not a librdkafka property") != NULL);
    CHECK(strstr(err.text, "s3cret") == NULL);
    unsetenv("KAFKA_SASL_PASSWORDS_FILE");
    setenv("KAFKA_LINGER_MS_FILE", path, 1);
    CHECK_INT(lev_config_from_env(&c, "svc", &err), ==, LEV_ERR_CONFIG);
    CHECK_STR(err.where, "KAFKA_LINGER_MS_FILE");
    CHECK(strstr(err.text, "is not a valid linger.ms") != NULL);
    CHECK(strstr(err.text, "s3cret") == NULL);
    unsetenv("KAFKA_LINGER_MS_FILE");
    remove(path);
    rmdir(dir);
}

static void durations_parse_with_units(void)
{
    int64_t ms;
    CHECK(lev_duration_parse("250", &ms) == 0 && ms == 250);
    CHECK(lev_duration_parse("250ms", &ms) == 0 && ms == 250);
    CHECK(lev_duration_parse("5s", &ms) == 0 && ms == 5000);
    CHECK(lev_duration_parse("2m", &ms) == 0 && ms == 120000);
    CHECK(lev_duration_parse("1h", &ms) == 0 && ms == 3600000);
    CHECK(lev_duration_parse("7d", &ms) == 0 && ms == 604800000);
    CHECK(lev_duration_parse("", &ms) != 0);
    CHECK(lev_duration_parse("s", &ms) != 0);
    CHECK(lev_duration_parse("5x", &ms) != 0);
    CHECK(lev_duration_parse("-5s", &ms) != 0);
    CHECK(lev_duration_parse("99999999999999999999d", &ms) != 0);
}

static void help_lists_every_variable(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lev_config_print_help(f);
    fclose(f);
    const char *vars[] = {
        "KAFKA_BOOTSTRAP",          "REDIS_URL",    "LEV_GROUP_ID",  "LEV_RETRY_DELAYS",
        "LEV_IDEMPOTENCY_LEASE_MS", "KAFKA_<NAME>", "LEV_HTTP_ADDR", "LEV_HEALTH_STALL_MS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        CHECK(strstr(buf, vars[i]) != NULL);
    free(buf);
}

CHECK_MAIN(CASE(kubernetes_service_variables_never_stop_a_start_and_a_misspelt_property_does),
           CASE(defaults_work_against_the_local_stack),
           CASE(default_schema_dirs_are_the_working_directory_and_the_installed_ones),
           CASE(environment_overrides_defaults), CASE(bad_values_fail_naming_the_variable),
           CASE(kafka_variables_pass_through_as_librdkafka_properties),
           CASE(a_kafka_property_can_come_from_a_file_and_its_errors_never_show_it),
           CASE(durations_parse_with_units), CASE(help_lists_every_variable),
           CASE(the_endpoint_address_takes_host_port_forms))
