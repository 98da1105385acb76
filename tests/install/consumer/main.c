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
    /* the CRC-64-AVRO fingerprint of the schema "null" (Avro specification) */
    const char *canon = "\"null\"";
    uint64_t fp = lev_avro_fingerprint64(canon, strlen(canon));
    char id[LEV_UUID_STR_LEN];
    lev_uuid4(id);
    printf("%016llx %s\n", (unsigned long long)fp, id);
    return fp == 0x63dd24e7cc258f8aULL && strlen(id) == 36 ? 0 : 1;
}
