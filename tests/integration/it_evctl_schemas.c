/*
 * evctl schemas list / check (no broker needed): fingerprints as libevents
 * computes them; compatibility in both directions by Avro's resolution
 * rules (libevents' lev_schema_check_resolvable_all), naming schema, field
 * and reason.
 */
#include "it_evctl.h"

#include <dirent.h>

/* A fresh directory under TMPDIR. */
static void tmp_dir(const char *what, char *out, size_t size)
{
    snprintf(out, size, "%s/evctl-%s-XXXXXX", lev_test_env("TMPDIR", "/tmp"), what);
    if (!mkdtemp(out))
        abort();
}

static void write_schema(const char *dir, const char *file, const char *json)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(json, f);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void schemas_list_prints_every_schema_with_its_fingerprint(void)
{
    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "schemas", "list", NULL), ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    const lev_schemas_t *set = lev_test_schemas();
    CHECK_INT(json_array_size(lines), ==, lev_schemas_count(set));
    size_t i, ok = 0;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        const lev_schema_t *s = lev_schemas_find(set, it_str(l, "name") ? it_str(l, "name") : "");
        char hex[17];
        if (!s)
            continue;
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)lev_schema_fingerprint(s));
        ok += it_str(l, "fingerprint") && strcmp(it_str(l, "fingerprint"), hex) == 0 &&
              it_str(l, "wire_prefix") && strncmp(it_str(l, "wire_prefix"), "c301", 4) == 0;
    }
    CHECK_INT(ok, ==, lev_schemas_count(set));
    json_decref(lines);
}

static const char old_order[] =
    "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\"},"
    "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"
    "\"Item\","
    "\"fields\":[{\"name\":\"qty\",\"type\":\"int\"}]}}},"
    "{\"name\":\"state\",\"type\":{\"type\":\"enum\",\"name\":\"State\",\"symbols\":[\"NEW\","
    "\"PAID\"]}},"
    "{\"name\":\"note\",\"type\":\"string\"}]}";

/* compatible both ways: fields added with defaults, one of them inside the
 * records of an array */
static const char new_order_ok[] =
    "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\"},"
    "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"
    "\"Item\","
    "\"fields\":[{\"name\":\"qty\",\"type\":\"int\"},{\"name\":\"sku\",\"type\":\"string\","
    "\"default\":\"\"}]}}},"
    "{\"name\":\"state\",\"type\":{\"type\":\"enum\",\"name\":\"State\",\"symbols\":[\"NEW\","
    "\"PAID\"]}},"
    "{\"name\":\"note\",\"type\":\"string\"},"
    "{\"name\":\"channel\",\"type\":\"string\",\"default\":\"web\"}]}";

/* incompatible: a field added without a default (backward), qty widened to
 * long (forward: old readers cannot read a long as int), a new enum symbol
 * (forward), note removed (forward: the old reader has no default for it) */
static const char new_order_bad[] =
    "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\"},"
    "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"
    "\"Item\","
    "\"fields\":[{\"name\":\"qty\",\"type\":\"long\"}]}}},"
    "{\"name\":\"state\",\"type\":{\"type\":\"enum\",\"name\":\"State\",\"symbols\":[\"NEW\","
    "\"PAID\","
    "\"REFUNDED\"]}},"
    "{\"name\":\"coupon\",\"type\":\"string\"}]}";

static const char other_schema[] = "{\"type\":\"record\",\"name\":\"Other\",\"namespace\":\"t\","
                                   "\"fields\":[{\"name\":\"x\",\"type\":\"long\"}]}";

/* Finds the problem with this direction and field (and, unless NULL, a
 * message containing `text`); 1 when present. */
static int has_problem_text(json_t *line, const char *direction, const char *field,
                            const char *text)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(line, "problems"), i, p)
    {
        if (strcmp(it_str(p, "direction") ? it_str(p, "direction") : "", direction) == 0 &&
            strcmp(it_str(p, "field") ? it_str(p, "field") : "", field) == 0 &&
            (!text || strstr(it_str(p, "message") ? it_str(p, "message") : "", text)))
            return 1;
    }
    return 0;
}

static int has_problem(json_t *line, const char *direction, const char *field)
{
    return has_problem_text(line, direction, field, NULL);
}

static void schemas_check_accepts_compatible_changes(void)
{
    char old_dir[256], new_dir[256];
    tmp_dir("old", old_dir, sizeof old_dir);
    tmp_dir("new", new_dir, sizeof new_dir);
    write_schema(old_dir, "order.avsc", old_order);
    write_schema(new_dir, "order.avsc", new_order_ok);
    write_schema(new_dir, "other.avsc", other_schema);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "schemas", "check", "--schemas", new_dir, "--against",
                       old_dir, NULL),
              ==, 0);
    json_t *lines = it_lines(out);
    CHECK_INT(json_array_size(lines), ==, 2);
    CHECK_STR(it_str(json_array_get(lines, 0), "schema"), "t.Order");
    CHECK_STR(it_str(json_array_get(lines, 0), "status"), "compatible");
    CHECK_STR(it_str(json_array_get(lines, 1), "status"), "added");
    json_decref(lines);
    free(out);
    free(err);
    remove_dir(old_dir);
    remove_dir(new_dir);
}

static void schemas_check_names_schema_and_field_of_each_incompatibility(void)
{
    char old_dir[256], new_dir[256];
    tmp_dir("old", old_dir, sizeof old_dir);
    tmp_dir("new", new_dir, sizeof new_dir);
    write_schema(old_dir, "order.avsc", old_order);
    write_schema(old_dir, "other.avsc", other_schema);
    write_schema(new_dir, "order.avsc", new_order_bad);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "schemas", "check", "--schemas", new_dir, "--against",
                       old_dir, NULL),
              ==, 65);
    json_t *lines = it_lines(out);
    json_t *order = NULL, *other = NULL;
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        if (strcmp(it_str(l, "schema") ? it_str(l, "schema") : "", "t.Order") == 0)
            order = l;
        if (strcmp(it_str(l, "schema") ? it_str(l, "schema") : "", "t.Other") == 0)
            other = l;
    }
    REQUIRE(order && other);
    CHECK_STR(it_str(order, "status"), "incompatible");
    CHECK(has_problem(order, "backward", "coupon"));
    CHECK(has_problem(order, "forward", "items[].qty"));
    CHECK(has_problem(order, "forward", "state"));
    CHECK(has_problem(order, "forward", "note"));
    CHECK(!has_problem(order, "backward", "items[].qty")); /* int is read as long */
    /* the reasons are libevents' (lev_schema_check_resolvable_all) */
    CHECK(has_problem_text(order, "backward", "coupon",
                           "field coupon is missing in the writer and has no default"));
    CHECK(has_problem_text(order, "forward", "items[].qty", "long cannot be read as int"));
    CHECK(has_problem_text(order, "forward", "state", "enum symbol REFUNDED of the writer"));
    CHECK(has_problem_text(order, "forward", "note", "field note is missing in the writer"));
    CHECK_STR(it_str(other, "status"), "removed");
    CHECK(strstr(err, "t.Order: backward: coupon:") != NULL);
    CHECK(strstr(err, "INCOMPATIBLE") != NULL);
    json_decref(lines);
    free(out);
    free(err);
    remove_dir(old_dir);
    remove_dir(new_dir);
}

static void schemas_check_of_the_repository_against_itself_passes(void)
{
    char *out = NULL, *err = NULL;
    const char *dirs = lev_test_env("LEV_SCHEMA_DIRS", "schemas");
    char first[512];
    snprintf(first, sizeof first, "%s", dirs);
    char *colon = strchr(first, ':');
    if (colon)
        *colon = '\0';
    CHECK_INT(it_evctl(&out, &err, NULL, "schemas", "check", "--against", first, NULL), ==, 0);
    json_t *lines = it_lines(out);
    CHECK_INT(json_array_size(lines), ==, lev_schemas_count(lev_test_schemas()));
    json_decref(lines);
    free(out);
    free(err);
}

CHECK_MAIN(CASE(schemas_list_prints_every_schema_with_its_fingerprint),
           CASE(schemas_check_accepts_compatible_changes),
           CASE(schemas_check_names_schema_and_field_of_each_incompatibility),
           CASE(schemas_check_of_the_repository_against_itself_passes))
