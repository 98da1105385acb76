/*
 * evctl and the schema registry, against a real one (Apicurio Registry's
 * Confluent-compatible API, LEV_SCHEMA_REGISTRY_URL, from the `registry`
 * fixture): `evctl schemas register` (ids, the same ids again, a refusal
 * at a compatibility level, a new id for a compatible change, --dry-run
 * registering nothing), `evctl schemas check --registry` (incompatible with
 * the registry's or libevents' reasons, compatible, registered), `evctl
 * publish --dry-run --wire confluent` asking the registry, and the errors:
 * no registry configured, a registry that does not answer.
 *
 * Every case writes its own schemas, under a namespace unique to the run,
 * and a topics description of its own with topics named after it, so the
 * subjects are new each time and reruns against a live registry pass.
 */
#include "it_evctl.h"

#include <dirent.h>

/* ======================================================================
 * Helpers
 * ====================================================================== */

/* A case's world: schemas and topics description in a fresh directory,
 * all named after `ns`. */
typedef struct world_s {
    char ns[64];                     /* "itreg_<pid>_<hex>": the schemas' namespace prefix */
    char dir[256];                   /* the schema directory */
    char topics[512];                /* its topics description */
    char orders[128], payments[128]; /* topic names */
    char placed[128], paid[128];     /* schema full names */
    char orders_subject[192], payments_subject[192];
} world_t;

static const char *registry_url(void)
{
    return lev_test_env("LEV_SCHEMA_REGISTRY_URL", "");
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

/* The order schema: order_id, amount, then `extra` fields (JSON, may be ""). */
static void write_placed(world_t *w, const char *extra)
{
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/placed.avsc", w->dir);
    snprintf(text, sizeof text,
             "{\"type\":\"record\",\"name\":\"Placed\",\"namespace\":\"%s.order\","
             "\"doc\":\"an order\",\"fields\":["
             "{\"name\":\"order_id\",\"type\":\"string\"},"
             "{\"name\":\"amount\",\"type\":\"int\",\"default\":0,\"doc\":\"cents\"}%s]}",
             w->ns, extra);
    write_text(path, text);
}

static void world_new(world_t *w)
{
    char u[LEV_UUID_STR_LEN], path[512], text[1024];
    memset(w, 0, sizeof *w);
    lev_uuid4(u);
    snprintf(w->ns, sizeof w->ns, "itreg_%d_%.8s", (int)getpid(), u);
    snprintf(w->dir, sizeof w->dir, "%s/evctl-registry-XXXXXX", lev_test_env("TMPDIR", "/tmp"));
    if (!mkdtemp(w->dir))
        abort();
    snprintf(w->orders, sizeof w->orders, "%s-orders", w->ns);
    snprintf(w->payments, sizeof w->payments, "%s-payments", w->ns);
    snprintf(w->placed, sizeof w->placed, "%s.order.Placed", w->ns);
    snprintf(w->paid, sizeof w->paid, "%s.billing.Paid", w->ns);
    snprintf(w->orders_subject, sizeof w->orders_subject, "%s-value", w->orders);
    snprintf(w->payments_subject, sizeof w->payments_subject, "%s-value", w->payments);
    write_placed(w, "");
    snprintf(path, sizeof path, "%s/paid.avsc", w->dir);
    snprintf(text, sizeof text,
             "{\"type\":\"record\",\"name\":\"Paid\",\"namespace\":\"%s.billing\",\"fields\":["
             "{\"name\":\"order_id\",\"type\":\"string\"}]}",
             w->ns);
    write_text(path, text);
    /* a schema no topic takes: noted and skipped */
    snprintf(path, sizeof path, "%s/stray.avsc", w->dir);
    snprintf(text, sizeof text,
             "{\"type\":\"record\",\"name\":\"Stray\",\"namespace\":\"%s.stray\",\"fields\":["
             "{\"name\":\"x\",\"type\":\"long\"}]}",
             w->ns);
    write_text(path, text);
    snprintf(w->topics, sizeof w->topics, "%s/topics.json", w->dir);
    snprintf(text, sizeof text,
             "{\"version\":1,\"defaults\":{\"partitions\":1},\"topics\":["
             "{\"name\":\"%s\",\"types\":[\"%s.order.*\"]},"
             "{\"name\":\"%s\",\"types\":[\"%s.billing.*\"]}]}",
             w->orders, w->ns, w->payments, w->ns);
    write_text(w->topics, text);
}

static void world_free(world_t *w)
{
    DIR *d = opendir(w->dir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", w->dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(w->dir);
}

/* Runs `evctl <a> <b> [c] [d] [e]` on the world (--schemas, --topics-file
 * added); output lines into *lines (may be NULL), stderr into *err (may be
 * NULL). Returns the exit code. */
static int run(world_t *w, json_t **lines, char **err, const char *a, const char *b, const char *c,
               const char *d, const char *e)
{
    char *out = NULL;
    int rc = it_evctl(&out, err, NULL, a, b, "--schemas", w->dir, "--topics-file", w->topics, c, d,
                      e, NULL);
    if (lines)
        *lines = it_lines(out);
    free(out);
    return rc;
}

/* The line about `subject` (and schema `schema`), or NULL. */
static json_t *line_for(json_t *lines, const char *subject, const char *schema)
{
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        const char *s = it_str(l, "subject"), *n = it_str(l, "schema");
        if (s && n && strcmp(s, subject) == 0 && strcmp(n, schema) == 0)
            return l;
    }
    return NULL;
}

static json_int_t id_of(json_t *line)
{
    json_t *id = json_object_get(line, "id");
    return json_is_integer(id) ? json_integer_value(id) : -1;
}

/* 1 when one of the line's problems contains `text`. */
static int has_problem(json_t *line, const char *text)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(line, "problems"), i, p)
    {
        if (json_string_value(p) && strstr(json_string_value(p), text))
            return 1;
    }
    return 0;
}

/* A client of the same registry, to see what evctl did. */
static lev_registry_t *registry(void)
{
    lev_error_t err;
    lev_registry_t *reg = lev_registry_from_env(&err);
    if (!reg)
        fprintf(stderr, "LEV_SCHEMA_REGISTRY_URL: %s (the `registry` fixture sets it)\n",
                err.code ? err.text : "not set");
    return reg;
}

/* The id of the latest version of a subject, or -1 when it has none. */
static int32_t latest_id(lev_registry_t *reg, const char *subject)
{
    int32_t id = -1;
    lev_error_t err;
    int rc = lev_registry_latest(reg, subject, NULL, &id, NULL, &err);
    if (rc != 0 && rc != LEV_ERR_NOT_FOUND)
        fprintf(stderr, "latest %s: %s\n", subject, err.text);
    return rc == 0 ? id : -1;
}

/* ======================================================================
 * schemas register
 * ====================================================================== */

static void register_prints_an_id_per_subject_and_the_same_ids_again(void)
{
    world_t w;
    json_t *lines = NULL, *again = NULL;
    char *err = NULL;
    lev_registry_t *reg = registry();
    REQUIRE(reg);
    world_new(&w);
    CHECK_INT(run(&w, &lines, &err, "schemas", "register", NULL, NULL, NULL), ==, 0);
    CHECK_INT(json_array_size(lines), ==, 2);
    json_t *placed = line_for(lines, w.orders_subject, w.placed);
    json_t *paid = line_for(lines, w.payments_subject, w.paid);
    REQUIRE(placed && paid);
    CHECK_STR(it_str(placed, "status"), "registered");
    CHECK_STR(it_str(placed, "topic"), w.orders);
    CHECK_STR(it_str(paid, "status"), "registered");
    CHECK(id_of(placed) >= 0);
    CHECK(id_of(paid) >= 0);
    CHECK(id_of(placed) != id_of(paid));
    /* the schema no topic takes is named, and skipped */
    CHECK(strstr(err, ".stray.Stray") && strstr(err, "skipped"));
    free(err);
    /* what the registry holds is what evctl said */
    CHECK_INT(latest_id(reg, w.orders_subject), ==, id_of(placed));
    CHECK_INT(latest_id(reg, w.payments_subject), ==, id_of(paid));
    /* registering again registers nothing new: the same ids */
    CHECK_INT(run(&w, &again, NULL, "schemas", "register", NULL, NULL, NULL), ==, 0);
    CHECK_INT(json_array_size(again), ==, 2);
    json_t *placed2 = line_for(again, w.orders_subject, w.placed);
    json_t *paid2 = line_for(again, w.payments_subject, w.paid);
    REQUIRE(placed2 && paid2);
    CHECK_STR(it_str(placed2, "status"), "registered");
    CHECK_INT(id_of(placed2), ==, id_of(placed));
    CHECK_INT(id_of(paid2), ==, id_of(paid));
    /* and a check finds them registered */
    json_t *checked = NULL;
    CHECK_INT(run(&w, &checked, NULL, "schemas", "check", "--registry", registry_url(), NULL), ==,
              0);
    json_t *c = line_for(checked, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "registered");
    CHECK_INT(it_int(c, "latest_id"), ==, id_of(placed));
    CHECK_INT(it_int(c, "latest_version"), ==, 1);
    json_decref(checked);
    json_decref(lines);
    json_decref(again);
    lev_registry_destroy(reg);
    world_free(&w);
}

static void register_with_the_record_strategy_uses_one_subject_per_schema(void)
{
    world_t w;
    json_t *lines = NULL;
    world_new(&w);
    setenv("LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY", "record", 1);
    int rc = run(&w, &lines, NULL, "schemas", "register", NULL, NULL, NULL);
    unsetenv("LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY");
    CHECK_INT(rc, ==, 0);
    CHECK_INT(json_array_size(lines), ==, 3); /* every schema, topics or not */
    json_t *placed = line_for(lines, w.placed, w.placed);
    REQUIRE(placed);
    CHECK(json_is_null(json_object_get(placed, "topic")));
    CHECK_STR(it_str(placed, "status"), "registered");
    CHECK(id_of(placed) >= 0);
    json_decref(lines);
    world_free(&w);
}

static void register_dry_run_registers_nothing(void)
{
    world_t w;
    json_t *lines = NULL;
    char *err = NULL;
    lev_registry_t *reg = registry();
    REQUIRE(reg);
    world_new(&w);
    CHECK_INT(
        run(&w, &lines, &err, "schemas", "register", "--dry-run", "--compatibility", "BACKWARD"),
        ==, 0);
    CHECK_INT(json_array_size(lines), ==, 2);
    json_t *placed = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(placed);
    CHECK_STR(it_str(placed, "status"), "would register");
    CHECK(json_is_null(json_object_get(placed, "id")));
    CHECK(strstr(err, "nothing registered") != NULL);
    /* no subject was made */
    CHECK_INT(latest_id(reg, w.orders_subject), ==, -1);
    CHECK_INT(latest_id(reg, w.payments_subject), ==, -1);
    lev_error_t e;
    CHECK_INT(lev_registry_lookup(reg, w.orders_subject, "{\"type\":\"string\"}", NULL, NULL, &e),
              ==, LEV_ERR_NOT_FOUND);
    /* once registered, a dry run says so, with the id */
    json_t *reg_lines = NULL, *dry = NULL;
    CHECK_INT(run(&w, &reg_lines, NULL, "schemas", "register", NULL, NULL, NULL), ==, 0);
    CHECK_INT(run(&w, &dry, NULL, "schemas", "register", "--dry-run", NULL, NULL), ==, 0);
    json_t *d = line_for(dry, w.orders_subject, w.placed);
    REQUIRE(d);
    CHECK_STR(it_str(d, "status"), "registered");
    CHECK_INT(id_of(d), ==, id_of(line_for(reg_lines, w.orders_subject, w.placed)));
    json_decref(dry);
    json_decref(reg_lines);
    json_decref(lines);
    free(err);
    lev_registry_destroy(reg);
    world_free(&w);
}

/* ======================================================================
 * Compatibility: refused, checked, accepted
 * ====================================================================== */

static void incompatible_change_is_refused_and_checked_compatible_one_gets_a_new_id(void)
{
    world_t w;
    json_t *lines = NULL;
    char *err = NULL;
    lev_registry_t *reg = registry();
    REQUIRE(reg);
    world_new(&w);
    CHECK_INT(run(&w, &lines, NULL, "schemas", "register", "--compatibility", "BACKWARD", NULL), ==,
              0);
    json_int_t first = id_of(line_for(lines, w.orders_subject, w.placed));
    CHECK(first >= 0);
    json_decref(lines);
    char level[64];
    lev_error_t e;
    CHECK_INT(lev_registry_get_compatibility(reg, w.orders_subject, level, sizeof level, &e), ==,
              0);
    CHECK_STR(level, "BACKWARD");

    /* a new field without a default: the new schema cannot read old events */
    write_placed(&w, ",{\"name\":\"coupon\",\"type\":\"string\"}");
    CHECK_INT(run(&w, &lines, &err, "schemas", "check", "--registry", registry_url(), NULL), ==,
              65);
    json_t *c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "incompatible");
    CHECK_INT(it_int(c, "latest_id"), ==, first);
    CHECK_INT(it_int(c, "latest_version"), ==, 1);
    CHECK(json_array_size(json_object_get(c, "problems")) > 0);
    CHECK(has_problem(c, "coupon"));
    CHECK_STR(it_str(line_for(lines, w.payments_subject, w.paid), "status"), "registered");
    CHECK(strstr(err, "INCOMPATIBLE") != NULL);
    json_decref(lines);
    free(err);

    CHECK_INT(run(&w, &lines, &err, "schemas", "register", "--dry-run", NULL, NULL), ==, 65);
    c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "incompatible");
    CHECK(it_str(c, "message") && strstr(it_str(c, "message"), "coupon"));
    json_decref(lines);
    free(err);

    CHECK_INT(run(&w, &lines, &err, "schemas", "register", NULL, NULL, NULL), ==, 65);
    c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "refused");
    CHECK(json_is_null(json_object_get(c, "id")));
    /* the registry's reason names the field */
    CHECK(it_str(c, "message") && strstr(it_str(c, "message"), "coupon"));
    CHECK(strstr(err, "refused") != NULL);
    /* the other subjects were still done */
    CHECK_STR(it_str(line_for(lines, w.payments_subject, w.paid), "status"), "registered");
    CHECK_INT(latest_id(reg, w.orders_subject), ==, first);
    json_decref(lines);
    free(err);

    /* the same field with a default: compatible, registered as a new version */
    write_placed(&w, ",{\"name\":\"coupon\",\"type\":\"string\",\"default\":\"\"}");
    CHECK_INT(run(&w, &lines, NULL, "schemas", "check", "--registry", registry_url(), NULL), ==, 0);
    c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "compatible");
    CHECK_INT(json_array_size(json_object_get(c, "problems")), ==, 0);
    json_decref(lines);
    CHECK_INT(run(&w, &lines, NULL, "schemas", "register", NULL, NULL, NULL), ==, 0);
    c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "registered");
    CHECK(id_of(c) >= 0 && id_of(c) != first);
    CHECK_INT(latest_id(reg, w.orders_subject), ==, id_of(c));
    json_decref(lines);
    CHECK_INT(run(&w, &lines, NULL, "schemas", "check", "--registry", registry_url(), NULL), ==, 0);
    c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "registered");
    CHECK_INT(it_int(c, "latest_version"), ==, 2);
    json_decref(lines);
    lev_registry_destroy(reg);
    world_free(&w);
}

static void check_reports_a_subject_not_registered_yet_as_new(void)
{
    world_t w;
    json_t *lines = NULL;
    world_new(&w);
    CHECK_INT(run(&w, &lines, NULL, "schemas", "check", "--registry", registry_url(), NULL), ==, 0);
    CHECK_INT(json_array_size(lines), ==, 2);
    json_t *c = line_for(lines, w.orders_subject, w.placed);
    REQUIRE(c);
    CHECK_STR(it_str(c, "status"), "new subject");
    CHECK(json_is_null(json_object_get(c, "latest_version")));
    CHECK(json_is_null(json_object_get(c, "latest_id")));
    json_decref(lines);
    world_free(&w);
}

/* ======================================================================
 * publish --dry-run --wire confluent
 * ====================================================================== */

static void publish_dry_run_in_the_confluent_format_asks_the_registry(void)
{
    world_t w;
    json_t *lines = NULL;
    char *err = NULL, in[256], text[512];
    world_new(&w);
    /* the topics must exist for publish, dry or not */
    CHECK_INT(it_evctl(NULL, NULL, NULL, "topics", "--topics-file", w.topics, NULL), ==, 0);
    CHECK_INT(run(&w, NULL, NULL, "schemas", "register", "--compatibility", "BACKWARD", NULL), ==,
              0);
    snprintf(text, sizeof text, "{\"type\":\"%s\",\"value\":{\"order_id\":\"o-1\",\"amount\":5}}\n",
             w.placed);
    it_write_file("in", text, in, sizeof in);
    /* registered: accepted */
    char *out = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", in, "--dry-run", "--wire", "confluent",
                       "--schemas", w.dir, "--topics-file", w.topics, NULL),
              ==, 0);
    lines = it_lines(out);
    CHECK_INT(json_array_size(lines), ==, 1);
    CHECK_STR(it_str(json_array_get(lines, 0), "topic"), w.orders);
    json_decref(lines);
    free(out);
    free(err);
    /* a compatible change, not registered: the registry would accept it */
    write_placed(&w, ",{\"name\":\"coupon\",\"type\":\"string\",\"default\":\"\"}");
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", in, "--dry-run", "--wire", "confluent",
                       "--schemas", w.dir, "--topics-file", w.topics, NULL),
              ==, 0);
    free(out);
    free(err);
    /* an incompatible one: refused, naming the subject */
    write_placed(&w, ",{\"name\":\"coupon\",\"type\":\"string\"}");
    snprintf(text, sizeof text,
             "{\"type\":\"%s\",\"value\":{\"order_id\":\"o-1\",\"amount\":5,\"coupon\":\"c\"}}\n",
             w.placed);
    unlink(in);
    it_write_file("in", text, in, sizeof in);
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", in, "--dry-run", "--wire", "confluent",
                       "--schemas", w.dir, "--topics-file", w.topics, NULL),
              ==, 65);
    CHECK(strstr(err, w.orders_subject) != NULL);
    CHECK(strstr(err, "incompatible") != NULL);
    free(out);
    free(err);
    unlink(in);
    world_free(&w);
}

/* ======================================================================
 * Errors
 * ====================================================================== */

static void without_a_registry_register_is_a_usage_error(void)
{
    world_t w;
    char *err = NULL, saved[512];
    world_new(&w);
    snprintf(saved, sizeof saved, "%s", registry_url());
    unsetenv("LEV_SCHEMA_REGISTRY_URL");
    CHECK_INT(run(&w, NULL, &err, "schemas", "register", NULL, NULL, NULL), ==, 64);
    CHECK(strstr(err, "LEV_SCHEMA_REGISTRY_URL") != NULL);
    free(err);
    setenv("LEV_SCHEMA_REGISTRY_URL", saved, 1);
    /* and a level that does not exist */
    CHECK_INT(run(&w, NULL, &err, "schemas", "register", "--compatibility", "SOMETIMES", NULL), ==,
              64);
    CHECK(strstr(err, "--compatibility") != NULL);
    free(err);
    world_free(&w);
}

static void an_unreachable_registry_is_reported_as_unavailable(void)
{
    world_t w;
    char *err = NULL, url[128];
    int fd = -1, port = lev_test_refusing_port(&fd);
    REQUIRE(port > 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    world_new(&w);
    CHECK_INT(run(&w, NULL, &err, "schemas", "register", "--registry", url, NULL), ==, 69);
    CHECK(strstr(err, "unavailable") != NULL);
    CHECK(strstr(err, url) != NULL);
    free(err);
    CHECK_INT(run(&w, NULL, &err, "schemas", "check", "--registry", url, NULL), ==, 69);
    CHECK(strstr(err, "unavailable") != NULL);
    free(err);
    close(fd);
    world_free(&w);
}

CHECK_MAIN(CASE(register_prints_an_id_per_subject_and_the_same_ids_again),
           CASE(register_with_the_record_strategy_uses_one_subject_per_schema),
           CASE(register_dry_run_registers_nothing),
           CASE(incompatible_change_is_refused_and_checked_compatible_one_gets_a_new_id),
           CASE(check_reports_a_subject_not_registered_yet_as_new),
           CASE(publish_dry_run_in_the_confluent_format_asks_the_registry),
           CASE(without_a_registry_register_is_a_usage_error),
           CASE(an_unreachable_registry_is_reported_as_unavailable))
