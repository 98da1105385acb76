/* Configuration from environment variables, with defaults for the local stack. */
#include "http_internal.h"
#include "internal.h"

#include <librdkafka/rdkafka.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_BOOTSTRAP "127.0.0.1:19092"
#define DEFAULT_REDIS_URL "redis://127.0.0.1:16379/0"
#define DEFAULT_RETRY_DELAYS "5s,30s,5m"

int lev_config_set_str(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return LEV_ERR_NOMEM;
    free(*field);
    *field = copy;
    return LEV_OK;
}

int lev_duration_parse(const char *s, int64_t *ms)
{
    if (!s || !*s)
        return LEV_ERR_CONFIG;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return LEV_ERR_CONFIG;
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v > INT64_MAX / units[i].mult)
                return LEV_ERR_CONFIG;
            *ms = (int64_t)v * units[i].mult;
            return LEV_OK;
        }
    }
    return LEV_ERR_CONFIG;
}

int lev_retry_delays_parse(const char *s, lev_retry_policy_t *policy, lev_error_t *err)
{
    int levels = 0;
    int64_t delays[LEV_RETRY_LEVELS_MAX];
    const char *p = s ? s : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        if (len == 0 || len >= sizeof item)
            return lev_error_set(err, LEV_ERR_CONFIG, "LEV_RETRY_DELAYS",
                                 "expected durations separated by commas, got \"%s\"", s);
        memcpy(item, p, len);
        item[len] = '\0';
        if (levels == LEV_RETRY_LEVELS_MAX)
            return lev_error_set(err, LEV_ERR_CONFIG, "LEV_RETRY_DELAYS", "at most %d retry levels",
                                 LEV_RETRY_LEVELS_MAX);
        if (lev_duration_parse(item, &delays[levels]) != 0)
            return lev_error_set(err, LEV_ERR_CONFIG, "LEV_RETRY_DELAYS",
                                 "\"%s\" is not a duration (like 500ms, 5s, 2m)", item);
        levels++;
        p += len;
        if (*p == ',')
            p++;
    }
    policy->levels = levels;
    memcpy(policy->delays_ms, delays, sizeof(int64_t) * (size_t)levels);
    return LEV_OK;
}

int lev_config_set_kafka(lev_config_t *conf, const char *name, const char *value)
{
    for (size_t i = 0; i < conf->nkafka; i++) {
        if (strcmp(conf->kafka[i].key, name) == 0) {
            char *v = strdup(value);
            if (!v)
                return LEV_ERR_NOMEM;
            free((char *)conf->kafka[i].value);
            conf->kafka[i].value = v;
            return LEV_OK;
        }
    }
    lev_kv_t *kv = realloc(conf->kafka, (conf->nkafka + 1) * sizeof *kv);
    if (!kv)
        return LEV_ERR_NOMEM;
    conf->kafka = kv;
    char *k = strdup(name), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return LEV_ERR_NOMEM;
    }
    kv[conf->nkafka].key = k;
    kv[conf->nkafka].value = v;
    conf->nkafka++;
    return LEV_OK;
}

void lev_config_clear(lev_config_t *conf)
{
    if (!conf)
        return;
    free(conf->service);
    free(conf->bootstrap);
    free(conf->group_id);
    free(conf->client_id);
    free(conf->redis_url);
    free(conf->schema_dirs);
    free(conf->source);
    free(conf->http_addr);
    for (size_t i = 0; i < conf->nkafka; i++) {
        free((char *)conf->kafka[i].key);
        free((char *)conf->kafka[i].value);
    }
    free(conf->kafka);
    memset(conf, 0, sizeof *conf);
}

int lev_config_init(lev_config_t *conf, const char *service, lev_error_t *err)
{
    memset(conf, 0, sizeof *conf);
    if (!service || !*service)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "a service name is required");
    char host[64] = "localhost", client_id[256], source[256], schema_dirs[PATH_MAX + 32];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(client_id, sizeof client_id, "%s-%s-%d", service, host, (int)getpid());
    snprintf(source, sizeof source, "/%s", service);
    snprintf(schema_dirs, sizeof schema_dirs, "schemas:%s/schemas", lev_install_data_dir());
    int rc = lev_config_set_str(&conf->service, service) |
             lev_config_set_str(&conf->bootstrap, DEFAULT_BOOTSTRAP) |
             lev_config_set_str(&conf->group_id, service) |
             lev_config_set_str(&conf->client_id, client_id) |
             lev_config_set_str(&conf->redis_url, DEFAULT_REDIS_URL) |
             lev_config_set_str(&conf->schema_dirs, schema_dirs) |
             lev_config_set_str(&conf->source, source);
    if (rc) {
        lev_config_clear(conf);
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    }
    conf->log_level = LEV_LOG_INFO;
    conf->batch_size = 500;
    conf->max_in_flight = 10000;
    conf->max_in_flight_bytes = 64u << 20;
    conf->max_deferred = 128;
    conf->delivery_timeout_ms = 30000;
    conf->shutdown_timeout_ms = 15000;
    conf->lease_ms = 60000;
    conf->done_ttl_ms = 7LL * 86400000;
    conf->retry.attempts = 3;
    conf->retry.backoff_ms = 200;
    conf->retry.backoff_max_ms = 5000;
    lev_retry_delays_parse(DEFAULT_RETRY_DELAYS, &conf->retry, NULL);
    lev_codec_limits_default(&conf->limits);
    conf->health_stall_ms = 30000;
    return LEV_OK;
}

/* ---- environment ---- */

/* T_DOC: read elsewhere (lev_registry_from_env), listed for the help only. */
typedef enum { T_STR, T_INT, T_DURATION, T_SIZE, T_LEVEL, T_DELAYS, T_WIRE, T_DOC } var_type_t;

typedef struct {
    const char *name;
    var_type_t type;
    size_t offset;
    const char *def;
    const char *doc;
} var_t;

#define OFF(f) offsetof(lev_config_t, f)

static const var_t vars[] = {
    {"LEV_SERVICE", T_STR, OFF(service), "<program name>",
     "service name in logs, ce_source, DLQ headers"},
    {"KAFKA_BOOTSTRAP", T_STR, OFF(bootstrap), DEFAULT_BOOTSTRAP, "Kafka bootstrap servers"},
    {"LEV_GROUP_ID", T_STR, OFF(group_id), "<service>", "consumer group id"},
    {"LEV_CLIENT_ID", T_STR, OFF(client_id), "<service>-<host>-<pid>", "Kafka client id"},
    {"REDIS_URL", T_STR, OFF(redis_url), DEFAULT_REDIS_URL,
     "Redis for idempotency keys; empty turns idempotency off"},
    {"LEV_SCHEMA_DIRS", T_STR, OFF(schema_dirs), NULL, /* schemas:<lev_install_data_dir>/schemas */
     "colon-separated schema directories (each one's history/ holds older versions)"},
    {"LEV_SOURCE", T_STR, OFF(source), "/<service>", "ce_source of emitted events"},
    {"LEV_LOG_LEVEL", T_LEVEL, OFF(log_level), "info", "debug, info, warn or error"},
    {"LEV_BATCH_SIZE", T_INT, OFF(batch_size), "500", "max messages handled per batch"},
    {"LEV_MAX_IN_FLIGHT", T_INT, OFF(max_in_flight), "10000",
     "most records held at once (polled, not yet finished); at the bound fetching pauses"},
    {"LEV_MAX_IN_FLIGHT_BYTES", T_SIZE, OFF(max_in_flight_bytes), "67108864",
     "most bytes of records and their outputs held at once"},
    {"LEV_MAX_DEFERRED", T_INT, OFF(max_deferred), "128",
     "most records waiting on handlers' asynchronous calls (HTTP) at once; at the bound "
     "fetching pauses"},
    {"LEV_DELIVERY_TIMEOUT_MS", T_INT, OFF(delivery_timeout_ms), "30000",
     "deadline for the broker to acknowledge a produced event (ms)"},
    {"LEV_SHUTDOWN_TIMEOUT_MS", T_INT, OFF(shutdown_timeout_ms), "15000",
     "bound on a graceful stop (ms)"},
    {"LEV_IDEMPOTENCY_LEASE_MS", T_DURATION, OFF(lease_ms), "60s", "lease of an idempotency claim"},
    {"LEV_IDEMPOTENCY_TTL_MS", T_DURATION, OFF(done_ttl_ms), "7d",
     "how long a handled event id is remembered"},
    {"LEV_RETRY_ATTEMPTS", T_INT, OFF(retry.attempts), "3",
     "in-process attempts of a transient failure, the first included"},
    {"LEV_RETRY_BACKOFF_MS", T_INT, OFF(retry.backoff_ms), "200",
     "first in-process backoff (ms), doubled each attempt, full jitter"},
    {"LEV_RETRY_BACKOFF_MAX_MS", T_INT, OFF(retry.backoff_max_ms), "5000",
     "cap of the in-process backoff (ms)"},
    {"LEV_RETRY_DELAYS", T_DELAYS, 0, DEFAULT_RETRY_DELAYS,
     "delay of each retry topic <group>.retry.<n>; empty: straight to the DLQ"},
    {"LEV_MAX_VALUE_BYTES", T_SIZE, OFF(limits.max_value_size), "1048576",
     "largest event value accepted"},
    {"LEV_MAX_ITEMS", T_SIZE, OFF(limits.max_items), "100000",
     "most array items and map entries in one event"},
    {"LEV_HTTP_ADDR", T_STR, OFF(http_addr), "off",
     "host:port serving /metrics (Prometheus), /healthz and /readyz; empty: no endpoint"},
    {"LEV_HEALTH_STALL_MS", T_DURATION, OFF(health_stall_ms), "30s",
     "/healthz answers 503 when the worker's loop has not turned for this long"},
    {"LEV_WIRE_FORMAT", T_WIRE, OFF(wire_format), "soe",
     "framing of emitted events: soe (Avro single-object) or confluent (needs a registry); "
     "both are read"},
    {"LEV_SCHEMA_REGISTRY_URL", T_DOC, 0, "none",
     "schema registry (Confluent API), e.g. http://registry:8080/apis/ccompat/v7"},
    {"LEV_SCHEMA_REGISTRY_USER", T_DOC, 0, "none",
     "basic auth user; LEV_SCHEMA_REGISTRY_PASSWORD or _PASSWORD_FILE its password"},
    {"LEV_SCHEMA_REGISTRY_CA_LOCATION", T_DOC, 0, "system CAs",
     "CA bundle for an https registry (also _CERT_LOCATION, _KEY_LOCATION)"},
    {"LEV_SCHEMA_REGISTRY_TIMEOUT_MS", T_DOC, 0, "5000", "bound on each registry request"},
    {"LEV_SCHEMA_REGISTRY_RETRIES", T_DOC, 0, "2", "further tries of a failed request"},
    {"LEV_SCHEMA_REGISTRY_CACHE_SIZE", T_DOC, 0, "1000", "schemas kept by id"},
    {"LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY", T_DOC, 0, "topic",
     "subject names: topic (<topic>-value), record (<full name>) or topic_record"},
};

static int parse_int(const char *s, long long min, long long max, long long *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int apply_var(lev_config_t *conf, const var_t *v, const char *val, lev_error_t *err)
{
    char *base = (char *)conf;
    long long n;
    int64_t ms;
    switch (v->type) {
    case T_STR:
        return lev_config_set_str((char **)(void *)(base + v->offset), val);
    case T_INT:
        if (parse_int(val, 0, INT32_MAX, &n) != 0)
            return lev_error_set(err, LEV_ERR_CONFIG, v->name,
                                 "expected a non-negative integer, got \"%s\"", val);
        *(int *)(void *)(base + v->offset) = (int)n;
        return LEV_OK;
    case T_SIZE:
        if (parse_int(val, 1, INT64_MAX, &n) != 0)
            return lev_error_set(err, LEV_ERR_CONFIG, v->name,
                                 "expected a positive integer, got \"%s\"", val);
        *(size_t *)(void *)(base + v->offset) = (size_t)n;
        return LEV_OK;
    case T_DURATION:
        if (lev_duration_parse(val, &ms) != 0)
            return lev_error_set(err, LEV_ERR_CONFIG, v->name,
                                 "expected a duration like 500ms, 30s, 7d, got \"%s\"", val);
        *(int64_t *)(void *)(base + v->offset) = ms;
        return LEV_OK;
    case T_LEVEL:
        if (lev_log_level_parse(val, &conf->log_level) != 0)
            return lev_error_set(err, LEV_ERR_CONFIG, v->name,
                                 "expected debug, info, warn or error, got \"%s\"", val);
        return LEV_OK;
    case T_DELAYS:
        return lev_retry_delays_parse(val, &conf->retry, err);
    case T_WIRE:
        if (lev_wire_format_parse(val, &conf->wire_format) != 0)
            return lev_error_set(err, LEV_ERR_CONFIG, v->name,
                                 "expected soe or confluent, got \"%s\"", val);
        return LEV_OK;
    case T_DOC:
        return LEV_OK;
    }
    return LEV_ERR_CONFIG;
}

/* 1 when `name` (after KAFKA_) is one of the variables Kubernetes sets for a
 * Service whose name starts with "kafka" (docs: "Environment variables" of
 * a Service): <S>_SERVICE_HOST, <S>_SERVICE_PORT[_<PORT NAME>], <S>_PORT and
 * <S>_PORT_<n>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]. */
static int kubernetes_service_variable(const char *name, size_t len)
{
    char n[160];
    if (len >= sizeof n)
        return 0;
    memcpy(n, name, len);
    n[len] = '\0';
    if (strcmp(n, "PORT") == 0 || strcmp(n, "SERVICE_HOST") == 0 ||
        strcmp(n, "SERVICE_PORT") == 0 || strncmp(n, "SERVICE_PORT_", 13) == 0)
        return 1;
    const char *p = strstr(n, "PORT_");
    if (p && (p == n || p[-1] == '_')) { /* [<S>_]PORT_<n>_<proto>[_<what>] */
        p += 5;
        const char *d = p;
        while (*d >= '0' && *d <= '9')
            d++;
        if (d > p && *d == '_' &&
            (strncmp(d + 1, "TCP", 3) == 0 || strncmp(d + 1, "UDP", 3) == 0 ||
             strncmp(d + 1, "SCTP", 4) == 0))
            return 1;
    }
    size_t l = strlen(n);
    return (l > 13 && strcmp(n + l - 13, "_SERVICE_HOST") == 0) || strstr(n, "_SERVICE_PORT") ||
           (l > 5 && strcmp(n + l - 5, "_PORT") == 0);
}

/* KAFKA_SECURITY_PROTOCOL -> security.protocol; KAFKA_BOOTSTRAP is ours.
 * The rule: a KAFKA_<NAME> variable is passed on when librdkafka knows the
 * property; one it does not know is skipped when it is a variable
 * Kubernetes sets for a Service named kafka..., and otherwise stops the
 * start, naming the variable (a misspelt property must not go unnoticed). */
static int apply_kafka_passthrough(lev_config_t *conf, rd_kafka_conf_t *probe, const char *entry,
                                   lev_error_t *err)
{
    const char *eq = strchr(entry, '=');
    if (!eq || strncmp(entry, "KAFKA_", 6) != 0)
        return LEV_OK;
    size_t nlen = (size_t)(eq - entry) - 6;
    if (nlen == 0 || nlen >= 128 || strncmp(entry, "KAFKA_BOOTSTRAP=", 16) == 0)
        return LEV_OK;
    char name[128], errstr[256];
    for (size_t i = 0; i < nlen; i++) {
        char c = entry[6 + i];
        name[i] = c == '_' ? '.' : (char)tolower((unsigned char)c);
    }
    name[nlen] = '\0';
    if (probe &&
        rd_kafka_conf_set(probe, name, eq + 1, errstr, sizeof errstr) == RD_KAFKA_CONF_UNKNOWN) {
        char var[140];
        snprintf(var, sizeof var, "%.*s", (int)(nlen + 6), entry);
        /* KAFKA_<NAME>_FILE: the property's value is the file's content
         * (a secret kept out of the environment: KAFKA_SASL_PASSWORD_FILE) */
        if (nlen > 5 && strcmp(name + nlen - 5, ".file") == 0) {
            name[nlen - 5] = '\0';
            char *secret = NULL;
            int rc = lev_secret_read_file(var, eq + 1, &secret, err);
            if (rc)
                return rc;
            rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, name, secret, errstr, sizeof errstr);
            if (res == RD_KAFKA_CONF_OK)
                rc = lev_config_set_kafka(conf, name, secret) != 0
                         ? lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory")
                         : LEV_OK;
            else if (res == RD_KAFKA_CONF_INVALID)
                rc = lev_error_set(err, LEV_ERR_CONFIG, var, "the content of %s is not a valid %s",
                                   eq + 1, name);
            else
                rc = lev_error_set(err, LEV_ERR_CONFIG, var,
                                   "%s is not a librdkafka property (KAFKA_<NAME>_FILE sets "
                                   "property name.lower from a file)",
                                   name);
            lev_secret_free(secret);
            return rc;
        }
        if (kubernetes_service_variable(entry + 6, nlen)) {
            lev_log(LEV_LOG_DEBUG, "ignoring a Kubernetes service variable", "variable", var, NULL);
            return LEV_OK;
        }
        return lev_error_set(err, LEV_ERR_CONFIG, var,
                             "%s is not a librdkafka property (KAFKA_<NAME> sets property "
                             "name.lower; see librdkafka's CONFIGURATION.md)",
                             name);
    }
    if (lev_config_set_kafka(conf, name, eq + 1) != 0)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    return LEV_OK;
}

int lev_config_from_env(lev_config_t *conf, const char *service, lev_error_t *err)
{
    const char *svc = getenv("LEV_SERVICE");
    int rc = lev_config_init(conf, svc && *svc ? svc : service, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *val = getenv(vars[i].name);
        if (!val || i == 0) /* LEV_SERVICE was read above */
            continue;
        /* An empty REDIS_URL means "no Redis"; other empty values keep defaults. */
        if (!*val && strcmp(vars[i].name, "REDIS_URL") != 0 &&
            strcmp(vars[i].name, "LEV_RETRY_DELAYS") != 0)
            continue;
        if ((rc = apply_var(conf, &vars[i], val, err)) != 0)
            goto fail;
    }
    if (conf->batch_size < 1) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "LEV_BATCH_SIZE", "must be at least 1");
        goto fail;
    }
    if (conf->max_in_flight < 1) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "LEV_MAX_IN_FLIGHT", "must be at least 1");
        goto fail;
    }
    if (conf->max_deferred < 1) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "LEV_MAX_DEFERRED", "must be at least 1");
        goto fail;
    }
    if (conf->retry.attempts < 1) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "LEV_RETRY_ATTEMPTS", "must be at least 1");
        goto fail;
    }
    if (conf->health_stall_ms < 1) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "LEV_HEALTH_STALL_MS", "must be at least 1ms");
        goto fail;
    }
    if (conf->http_addr && *conf->http_addr) {
        char host[256];
        int port;
        if ((rc = lev_http_addr_parse(conf->http_addr, host, sizeof host, &port, err)) != 0)
            goto fail;
    }
    rd_kafka_conf_t *probe = rd_kafka_conf_new(); /* tells known properties from others */
    for (char **e = environ; e && *e && rc == 0; e++)
        rc = apply_kafka_passthrough(conf, probe, *e, err);
    if (probe)
        rd_kafka_conf_destroy(probe);
    if (rc)
        goto fail;
    return LEV_OK;
fail:
    lev_config_clear(conf);
    return rc;
}

void lev_config_print_help(FILE *out)
{
    fprintf(out, "Environment:\n");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (vars[i].def)
            fprintf(out, "  %-26s %s (default: %s)\n", vars[i].name, vars[i].doc, vars[i].def);
        else /* the schema directories: where this installation keeps them */
            fprintf(out, "  %-26s %s (default: schemas:%s/schemas)\n", vars[i].name, vars[i].doc,
                    lev_install_data_dir());
    fprintf(out, "  %-26s %s\n", "KAFKA_<NAME>",
            "any librdkafka property, e.g. KAFKA_SECURITY_PROTOCOL=ssl -> security.protocol;");
    fprintf(out, "  %-26s %s\n", "KAFKA_<NAME>_FILE",
            "the property's value read from a file (KAFKA_SASL_PASSWORD_FILE=/run/secrets/pw)");
    fprintf(out, "  %-26s %s\n", "",
            "an unknown name stops the start, except Kubernetes' KAFKA_*SERVICE_HOST/PORT...");
}
