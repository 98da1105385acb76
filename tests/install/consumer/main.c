/* A program outside the tree that uses an installed libevents.
 * With --schemas it loads the schemas of the default configuration (no
 * LEV_SCHEMA_DIRS) and prints where they came from. */
#include <libevents.h>
#include <stdio.h>
#include <string.h>

static int load_default_schemas(void)
{
    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    if (lev_config_init(&conf, "consumer", &err) != 0) {
        fprintf(stderr, "config: %s\n", lev_error_format(&err, buf, sizeof buf));
        return 1;
    }
    printf("data %s\nschema_dirs %s\n", lev_install_data_dir(), conf.schema_dirs);
    lev_schemas_t *schemas = lev_schemas_new();
    int rc = schemas ? lev_schemas_load_path(schemas, conf.schema_dirs, &err) : LEV_ERR_NOMEM;
    if (rc != 0)
        fprintf(stderr, "schemas: %s\n", lev_error_format(&err, buf, sizeof buf));
    else if (!lev_schemas_find(schemas, "shop.order.OrderPlaced"))
        rc = fprintf(stderr, "schemas: no shop.order.OrderPlaced among them\n");
    else
        printf("loaded %zu schemas\n", lev_schemas_count(schemas));
    lev_schemas_destroy(schemas);
    lev_config_clear(&conf);
    return rc != 0;
}

/* Collects the librdkafka properties libevents would give a consumer. */
typedef struct props_s {
    int n;
    char first[64], last[64], last_value[16];
} props_t;

static int collect(void *opaque, const char *name, const char *value, char *errstr, size_t size)
{
    props_t *p = opaque;
    if (p->n++ == 0)
        snprintf(p->first, sizeof p->first, "%s", name);
    snprintf(p->last, sizeof p->last, "%s", name);
    snprintf(p->last_value, sizeof p->last_value, "%s", value ? value : "");
    return 0;
}

/* A program with librdkafka clients of its own configures them as
 * libevents does, through headers that do not name librdkafka. */
static int kafka_properties(void)
{
    lev_config_t conf;
    props_t p = {0};
    if (lev_config_init(&conf, "consumer", NULL) != 0)
        return 1;
    int rc = lev_config_kafka_apply(&conf, LEV_KAFKA_CONSUMER, NULL, NULL, collect, &p, NULL);
    lev_config_clear(&conf);
    printf("kafka %d properties, %s first, %s=%s last\n", p.n, p.first, p.last, p.last_value);
    /* linked: a producer with defaults of the program's own */
    lev_producer_t *(*with)(const lev_config_t *, const lev_kv_t *, const lev_kv_t *,
                            lev_error_t *) = lev_producer_new_with;
    return rc != 0 || !with || strcmp(p.first, "bootstrap.servers") != 0 ||
           strcmp(p.last, "enable.auto.offset.store") != 0 || strcmp(p.last_value, "false") != 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--schemas") == 0)
        return load_default_schemas();
    /* the library it runs with is the one whose headers it was built with */
    printf("version %s\n", lev_version());
    if (strcmp(lev_version(), LEV_VERSION_STR) != 0 || lev_version_number() != LEV_VERSION_NUMBER) {
        fprintf(stderr, "runtime version %s, headers %s\n", lev_version(), LEV_VERSION_STR);
        return 1;
    }
    if (kafka_properties() != 0)
        return 1;
    /* the CRC-64-AVRO fingerprint of the schema "null" (Avro specification) */
    const char *canon = "\"null\"";
    uint64_t fp = lev_avro_fingerprint64(canon, strlen(canon));
    char id[LEV_UUID_STR_LEN];
    lev_uuid4(id);
    printf("%016llx %s\n", (unsigned long long)fp, id);
    return fp == 0x63dd24e7cc258f8aULL && strlen(id) == 36 ? 0 : 1;
}
