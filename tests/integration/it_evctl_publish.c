/*
 * evctl publish and tail against a real broker: round trip, validation
 * before anything is sent, undecodable records, usage errors, exit codes.
 */
#include "it_evctl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

enum { N = 12 };

static void publish_then_tail_round_trip_equals_the_input(void)
{
    char topic[128], path[256];
    lev_test_unique("it-evctl-rt", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 3) == 0);

    /* lines with ids, some with their own key and extra headers */
    static char ids[N][LEV_UUID_STR_LEN];
    json_t *inputs = json_array();
    it_tmp_path("rt", path, sizeof path);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    for (int i = 0; i < N; i++) {
        lev_uuid4(ids[i]);
        json_t *value = lev_test_order_json(ids[i], i);
        if (i == 1)
            json_object_set_new(value, "customer_email",
                                json_pack("{s:s}", "string", "a@example.com"));
        json_t *line = json_pack("{s:s,s:s,s:O}", "type", "shop.order.OrderPlaced", "id", ids[i],
                                 "value", value);
        if (i % 4 == 0) {
            char key[64];
            /* one key with every byte publish's output line escapes, and
             * runs of plain bytes longer than a word around them */
            if (i == 8)
                snprintf(key, sizeof key, "%s",
                         "custom-8 \"quoted\" back\\slash \x01\x1f\x7f \xc3\xa9\tend");
            else
                snprintf(key, sizeof key, "custom-%d", i);
            json_object_set_new(line, "key", json_string(key));
        }
        if (i % 2 == 1)
            json_object_set_new(line, "headers", json_pack("{s:s}", "x-line", ids[i]));
        char *text = json_dumps(line, JSON_COMPACT);
        fprintf(f, "%s\n", text);
        if (i == 5)
            fprintf(f, "\n"); /* blank lines are skipped */
        free(text);
        json_array_append_new(inputs, line);
        json_decref(value);
    }
    fclose(f);

    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic, NULL), ==, 0);
    json_t *published = it_lines(out);
    CHECK_INT(json_array_size(published), ==, N);
    CHECK(strstr(err, "published 12") != NULL);
    free(out);
    free(err);

    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, NULL), ==, 0);
    json_t *tailed = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(tailed), ==, N);
    int matched = 0;
    size_t k;
    json_t *rec;
    json_array_foreach(tailed, k, rec)
    {
        int i = it_find_id(ids, N, it_str(rec, "headers.ce_id"));
        if (i < 0)
            continue;
        json_t *in = json_array_get(inputs, (size_t)i);
        int ok = json_equal(json_object_get(rec, "value"), json_object_get(in, "value"));
        ok &= it_str(rec, "type") && strcmp(it_str(rec, "type"), "shop.order.OrderPlaced") == 0;
        const char *want_key = it_str(in, "key") ? it_str(in, "key") : ids[i];
        ok &= it_str(rec, "key") && strcmp(it_str(rec, "key"), want_key) == 0;
        if (i % 2 == 1)
            ok &=
                it_str(rec, "headers.x-line") && strcmp(it_str(rec, "headers.x-line"), ids[i]) == 0;
        ok &= !json_object_get(rec, "error");
        /* where publish said it went */
        size_t j;
        json_t *p;
        int where = 0;
        json_array_foreach(published, j,
                           p) if (it_str(p, "id") && strcmp(it_str(p, "id"), ids[i]) == 0) where =
            it_int(p, "partition") == it_int(rec, "partition") &&
            it_int(p, "offset") == it_int(rec, "offset") && it_int(p, "line") >= 1 &&
            it_str(p, "key") && strcmp(it_str(p, "key"), want_key) == 0 && it_str(p, "type") &&
            strcmp(it_str(p, "type"), "shop.order.OrderPlaced") == 0;
        ok &= where;
        if (!ok) {
            char *s = json_dumps(rec, JSON_COMPACT);
            fprintf(stderr, "mismatch: %s\n", s);
            free(s);
        }
        matched += ok;
    }
    CHECK_INT(matched, ==, N);

    /* filters and limits */
    char key[32];
    snprintf(key, sizeof key, "custom-%d", 4);
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, "--key", key, NULL), ==, 0);
    json_t *one = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(one), ==, 1);
    CHECK(it_find_id(ids, N, it_str(json_array_get(one, 0), "headers.ce_id")) == 4);
    json_decref(one);
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, "--type", "OrderAccepted", NULL), ==, 0);
    CHECK_STR(out, "");
    free(out);
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, "--type", "shop.order.OrderPlaced", "--max",
                       "5", NULL),
              ==, 0);
    json_t *five = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(five), ==, 5);
    json_decref(five);
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, "--from", "end", NULL), ==, 0);
    CHECK_STR(out, "");
    free(out);
    CHECK_INT(
        it_evctl(&out, NULL, NULL, "tail", topic, "--from", "-1", "--partition", "0,1,2", NULL), ==,
        0);
    json_t *last = it_lines(out);
    free(out);
    CHECK(json_array_size(last) >= 1 && json_array_size(last) <= 3);
    json_decref(last);

    json_decref(published);
    json_decref(tailed);
    json_decref(inputs);
    unlink(path);
}

static void a_bad_line_publishes_nothing_and_names_the_line_and_field(void)
{
    char topic[128], path[256], good[256];
    lev_test_unique("it-evctl-bad", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    static char ids[6][LEV_UUID_STR_LEN];
    it_orders_file(6, ids, 0, good, sizeof good);
    /* line 4: a quantity that is not an int */
    char *text = it_slurp(good), *lines[6], *save = NULL;
    int n = 0;
    for (char *l = strtok_r(text, "\n", &save); l && n < 6; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    REQUIRE(n == 6);
    it_tmp_path("bad", path, sizeof path);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    for (int i = 0; i < 6; i++) {
        if (i == 3) {
            json_t *j = json_loads(lines[i], 0, NULL);
            json_t *item = json_array_get(json_object_get(json_object_get(j, "value"), "items"), 0);
            json_object_set_new(item, "quantity", json_string("three"));
            char *bad = json_dumps(j, JSON_COMPACT);
            fprintf(f, "%s\n", bad);
            free(bad);
            json_decref(j);
        } else {
            fprintf(f, "%s\n", lines[i]);
        }
    }
    fclose(f);
    free(text);

    char *out = NULL, *err = NULL, want[400];
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic, NULL), ==, 65);
    snprintf(want, sizeof want, "%s:4: value.items[0].quantity:", path);
    CHECK(strstr(err, want) != NULL);
    CHECK(strstr(err, "nothing published") != NULL);
    json_t *res = it_lines(out);
    CHECK_INT(json_array_size(res), ==, 1);
    CHECK_INT(it_int(json_array_get(res, 0), "line"), ==, 4);
    CHECK_STR(it_str(json_array_get(res, 0), "error.where"), "value.items[0].quantity");
    json_decref(res);
    free(out);
    free(err);
    lev_test_record_t *recs = NULL;
    CHECK_INT(lev_test_read_topic(topic, 0, 3000, &recs), ==, 0);
    lev_test_records_free(recs, 0);

    /* the same from stdin */
    CHECK_INT(it_evctl(NULL, &err, path, "publish", "--topic", topic, NULL), ==, 65);
    CHECK(strstr(err, "<stdin>:4: value.items[0].quantity") != NULL);
    free(err);

    /* a dry run of the good file sends nothing */
    CHECK_INT(it_evctl(&out, NULL, NULL, "publish", good, "--topic", topic, "--dry-run", NULL), ==,
              0);
    res = it_lines(out);
    CHECK_INT(json_array_size(res), ==, 6);
    json_decref(res);
    free(out);
    CHECK_INT(lev_test_read_topic(topic, 0, 3000, &recs), ==, 0);
    lev_test_records_free(recs, 0);

    /* --skip-bad publishes the five good lines, still exit 65 */
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic, "--skip-bad", NULL), ==,
              65);
    CHECK(strstr(err, "published 5, skipped 1") != NULL);
    free(out);
    free(err);
    size_t got = lev_test_read_topic(topic, 5, 15000, &recs);
    CHECK_INT(got, ==, 5);
    lev_test_records_free(recs, got);

    /* a missing topic is found before anything is sent */
    CHECK_INT(
        it_evctl(NULL, &err, NULL, "publish", good, "--topic", "it-evctl-no-such-topic", NULL), ==,
        65);
    CHECK(strstr(err, "does not exist") != NULL);
    free(err);
    unlink(path);
    unlink(good);
}

/* Nothing to publish is no crash: an empty file, empty stdin and blank lines
 * exit 0 saying so; --skip-bad when every line is bad exits 65. */
static void an_input_without_events_publishes_nothing_and_says_so(void)
{
    char empty[256], blank[256], allbad[256];
    it_write_file("empty", "", empty, sizeof empty);
    it_write_file("blank", "\n   \n\t\n\n", blank, sizeof blank);
    it_write_file("allbad", "{\"type\": \"shop.order.OrderPlaced\", \"value\": {}}\nnot json\n",
                  allbad, sizeof allbad);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", "--topic", "orders", empty, NULL), ==, 0);
    CHECK(err && strstr(err, "holds no event to publish") != NULL);
    free(out);
    free(err);
    CHECK_INT(it_evctl(&out, &err, empty, "publish", "--topic", "orders", NULL), ==, 0);
    CHECK(err && strstr(err, "<stdin> holds no event to publish") != NULL);
    free(out);
    free(err);
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", "--topic", "orders", blank, NULL), ==, 0);
    free(out);
    free(err);
    CHECK_INT(
        it_evctl(&out, &err, NULL, "publish", "--topic", "orders", "--skip-bad", allbad, NULL), ==,
        65);
    CHECK(err && strstr(err, "skipped 2 bad") != NULL);
    free(out);
    free(err);
    unlink(empty);
    unlink(blank);
    unlink(allbad);
}

static void tail_prints_undecodable_records_with_their_error_and_raw_bytes(void)
{
    char topic[128];
    lev_test_unique("it-evctl-garbage", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    REQUIRE(s);
    uint64_t fp = lev_schema_fingerprint(s);
    unsigned char frame[64] = {0xc3, 0x01};
    for (int i = 0; i < 8; i++)
        frame[2 + i] = (unsigned char)(fp >> (8 * i));
    /* a string length claiming ~1 GB, then nothing */
    unsigned char huge[16];
    memcpy(huge, frame, 10);
    memcpy(huge + 10, "\xfe\xff\xff\xff\x07", 5);
    unsigned char unknown[12] = {0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0};
    const char *const hdr[] = {"ce_type", "shop.order.OrderPlaced", NULL};
    REQUIRE(it_produce_raw(topic, 0, "k1", "garbage", 7, hdr) == 0);
    REQUIRE(it_produce_raw(topic, 0, "k2", huge, 15, NULL) == 0);
    REQUIRE(it_produce_raw(topic, 0, "k3", unknown, sizeof unknown, NULL) == 0);
    REQUIRE(it_produce_raw(topic, 0, "\xff\xfe", frame, 10, NULL) == 0);
    REQUIRE(it_produce_raw(topic, 0, "k5", NULL, 0, NULL) == 0);

    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, NULL), ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 5);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        CHECK(json_is_object(l));
        CHECK(json_object_get(l, "error") && it_str(l, "error.class"));
        CHECK(!json_object_get(l, "value"));
    }
    CHECK_STR(it_str(json_array_get(lines, 0), "raw"), "Z2FyYmFnZQ==");
    CHECK_STR(it_str(json_array_get(lines, 0), "type"), "shop.order.OrderPlaced");
    CHECK_STR(it_str(json_array_get(lines, 2), "error.class"), "unknown-schema");
    CHECK_STR(it_str(json_array_get(lines, 3), "key.base64"), "//4=");
    CHECK(json_is_null(json_object_get(json_array_get(lines, 4), "raw")));
    json_decref(lines);
}

/* A history/ version whose values the current schema cannot read (a long
 * inside an array's records now an int): avro-c 1.11.1's resolver would
 * crash on such pairs, so the codec refuses them (class resolve) and evctl
 * prints why. */
static void tail_refuses_values_of_an_unreadable_older_version_without_crashing(void)
{
    char dir[256], hist[300], path[400], topic[128];
    snprintf(dir, sizeof dir, "%s/evctl-hist-XXXXXX", lev_test_env("TMPDIR", "/tmp"));
    REQUIRE(mkdtemp(dir));
    snprintf(hist, sizeof hist, "%s/history", dir);
    REQUIRE(mkdir(hist, 0700) == 0);
    static const char fmt[] =
        "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[{"
        "\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":"
        "\"record\",\"name\":\"I\",\"fields\":[{\"name\":\"q\",\"type\":\"%s\"}]}}}]}";
    char json[512];
    snprintf(path, sizeof path, "%s/r.avsc", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, fmt, "int");
    fclose(f);
    snprintf(path, sizeof path, "%s/r.avsc", hist);
    f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, fmt, "long");
    fclose(f);
    snprintf(json, sizeof json, fmt, "long");

    /* a value written with the old version */
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *old = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, json, strlen(json), "old", LEV_SCHEMA_WRITER_ONLY, &old, &err) ==
            0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    json_t *v = json_loads("{\"items\":[{\"q\":5}]}", 0, NULL);
    avro_value_t av;
    void *buf = NULL;
    size_t len = 0;
    REQUIRE(lev_codec_from_json(codec, old, v, &av, &err) == 0);
    REQUIRE(lev_codec_encode(codec, old, &av, &buf, &len, &err) == 0);
    avro_value_decref(&av);
    json_decref(v);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
    lev_test_unique("it-evctl-hist", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    REQUIRE(it_produce_raw(topic, 0, "k", buf, len, NULL) == 0);
    free(buf);

    char *out = NULL, *errs = NULL;
    CHECK_INT(it_evctl(&out, &errs, NULL, "tail", topic, "--schemas", dir, NULL), ==, 0);
    json_t *lines = it_lines(out);
    CHECK_INT(json_array_size(lines), ==, 1);
    CHECK_STR(it_str(json_array_get(lines, 0), "error.class"), "resolve");
    CHECK_STR(it_str(json_array_get(lines, 0), "type"), "t.R");
    CHECK(strstr(errs, "cannot be read as the current t.R") != NULL);
    json_decref(lines);
    free(out);
    free(errs);
    /* and schemas check says so */
    CHECK_INT(it_evctl(&out, &errs, NULL, "schemas", "check", "--schemas", dir, NULL), ==, 65);
    CHECK(strstr(errs, "t.R: backward: items[].q:") != NULL);
    free(out);
    free(errs);
    unlink(path);
    rmdir(hist);
    snprintf(path, sizeof path, "%s/r.avsc", dir);
    unlink(path);
    rmdir(dir);
}

static void usage_errors_name_the_flag_and_exit_64(void)
{
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "tail", "t", "--bogus", NULL), ==, 64);
    CHECK(strstr(err, "--bogus") != NULL);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "tail", "t", "--max", "abc", NULL), ==, 64);
    CHECK(strstr(err, "--max") != NULL);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "replay", "t", "--from", "yesterday", NULL), ==, 64);
    CHECK(strstr(err, "--from") != NULL);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "publish", "--rate", "fast", NULL), ==, 64);
    CHECK(strstr(err, "--rate") != NULL);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "tail", NULL), ==, 64);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "frobnicate", NULL), ==, 64);
    CHECK(strstr(err, "frobnicate") != NULL);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "dlq", "purge", "g", NULL), ==, 64);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "--timeout", "soon", "lag", "g", NULL), ==, 64);
    CHECK(strstr(err, "--timeout") != NULL);
    free(err);
    /* help: every command, the exit codes */
    CHECK_INT(it_evctl(&out, NULL, NULL, "--help", NULL), ==, 0);
    CHECK(strstr(out, "Exit codes") && strstr(out, "dlq redrive") && strstr(out, "130"));
    free(out);
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", "--help", NULL), ==, 0);
    CHECK(strstr(out, "--follow") && strstr(out, "--from"));
    free(out);
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "--help", NULL), ==, 0);
    CHECK(strstr(out, "dlq redrive"));
    free(out);
}

static void an_unreachable_broker_exits_69(void)
{
    char *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "--bootstrap", "127.0.0.1:1", "--timeout", "1s", "tail",
                       "orders", NULL),
              ==, 69);
    CHECK(strstr(err, "did not answer") != NULL);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "lag", "g", "--bootstrap", "127.0.0.1:1", "--timeout",
                       "1s", NULL),
              ==, 69);
    free(err);
}

/* One OrderPlaced line for `id`, changed by `edit` (a JSON object merged in
 * at the top; "value" members replace the value's); malloc'd. */
static char *order_line_with(const char *id, const char *edit)
{
    json_t *line = json_pack("{s:s,s:s,s:o}", "type", "shop.order.OrderPlaced", "id", id, "value",
                             lev_test_order_json(id, 1));
    json_t *e = edit ? json_loads(edit, 0, NULL) : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(e, k, v)
    {
        if (strcmp(k, "value") == 0)
            json_object_update(json_object_get(line, "value"), v);
        else
            json_object_set(line, k, v);
    }
    json_decref(e);
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    return s;
}

/* publish refuses, naming file, line and field: an empty key (given, or
 * defaulted from an empty value.order_id), a ce_id (with its ce_source)
 * that an earlier line of the input already has (naming both lines), lev_*
 * headers unless --allow-lev-headers; and it names every missing field of
 * a line in one message. */
static void publish_refuses_empty_keys_duplicate_ids_and_lev_headers(void)
{
    char topic[128], path[256], a[LEV_UUID_STR_LEN], b[LEV_UUID_STR_LEN], c[LEV_UUID_STR_LEN];
    lev_test_unique("it-evctl-rules", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    lev_uuid4(a);
    lev_uuid4(b);
    lev_uuid4(c);
    char *lines[] = {
        order_line_with(a, NULL),
        order_line_with(a, "{\"value\":{\"order_id\":\"another\"}}"),
        order_line_with(b, "{\"key\":\"\"}"),
        order_line_with(c, "{\"value\":{\"order_id\":\"\"}}"),
        order_line_with(b, "{\"id\":\"x-5\",\"headers\":{\"lev_error_class\":\"handler\"}}"),
        strdup("{\"type\":\"shop.order.OrderPlaced\",\"value\":{\"order_id\":\"o\","
               "\"customer_email\":null,\"items\":[{\"sku\":\"s\"}],\"payment_token\":\"t\","
               "\"placed_at\":1}}"),
        strdup("{\"id\":\"x-7\",\"key\":\"k\"}"),
        /* the same id from another source is another event */
        order_line_with(a, "{\"headers\":{\"ce_source\":\"/elsewhere\"}}"),
    };
    enum { NL = sizeof lines / sizeof lines[0] };
    it_tmp_path("rules", path, sizeof path);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    for (int i = 0; i < NL; i++) {
        fprintf(f, "%s\n", lines[i]);
        free(lines[i]);
    }
    fclose(f);

    static const char *const want[] = {
        ":2: id: \"%s\" is also the id of line 1",
        ":3: key: empty",
        ":4: value.order_id: empty, and the key defaults to it",
        ":5: headers.lev_error_class: lev_* headers are reserved",
        ":6: value: missing fields (they have no default): customer_id, items[0].quantity, "
        "items[0].unit_price_minor, currency, total_minor",
        ":7: missing fields: type (",
    };
    for (int dry = 1; dry >= 0; dry--) {
        char *out = NULL, *err = NULL;
        CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic,
                           dry ? "--dry-run" : NULL, NULL),
                  ==, 65);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            char line[512], full[800];
            snprintf(line, sizeof line, want[i], a);
            snprintf(full, sizeof full, "%s%s", path, line);
            if (!err || !strstr(err, full))
                fprintf(stderr, "expected \"%s\" in:\n%s\n", full, err ? err : "");
            CHECK(err && strstr(err, full));
        }
        CHECK(err && strstr(err, "value (the event"));
        json_t *res = it_lines(out);
        CHECK_INT(json_array_size(res), ==, 6); /* one error line per bad line */
        CHECK_STR(it_str(json_array_get(res, 0), "error.class"), "duplicate-id");
        CHECK_STR(it_str(json_array_get(res, 3), "error.class"), "reserved-header");
        json_decref(res);
        free(out);
        free(err);
    }
    lev_test_record_t *recs = NULL;
    CHECK_INT(lev_test_read_topic(topic, 0, 3000, &recs), ==, 0);
    lev_test_records_free(recs, 0);

    /* --skip-bad: lines 1 and 8 go (the same id, two sources), the rest do not */
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic, "--skip-bad", NULL), ==,
              65);
    CHECK(err && strstr(err, "published 2, skipped 6 bad"));
    free(out);
    free(err);
    size_t got = lev_test_read_topic(topic, 2, 15000, &recs);
    CHECK_INT(got, ==, 2);
    lev_test_records_free(recs, got);

    /* lev_* headers on purpose (a test of redrive, say) */
    char one[256];
    char *line = order_line_with(c, "{\"headers\":{\"lev_error_class\":\"handler\"}}");
    it_write_file("lev", line, one, sizeof one);
    free(line);
    CHECK_INT(
        it_evctl(&out, &err, NULL, "publish", one, "--topic", topic, "--allow-lev-headers", NULL),
        ==, 0);
    free(out);
    free(err);
    got = lev_test_read_topic(topic, 3, 15000, &recs);
    CHECK_INT(got, ==, 3);
    char cls[32] = "";
    if (got == 3)
        lev_test_header(&recs[2], "lev_error_class", cls, sizeof cls);
    CHECK_STR(cls, "handler");
    lev_test_records_free(recs, got);
    unlink(one);
    unlink(path);
}

/* A range that can select nothing is a usage error naming its options, not
 * an empty output with exit 0: a reversed --from/--until (offsets, times,
 * per partition), --until beginning, the same for --since/--until, and a
 * --partition that selects no partition. */
/* Writes n OrderPlaced lines quickly (one template, the order id and ce_id
 * made from the index); returns the file's size, -1 when it cannot. */
static long big_orders_file(const char *path, long n, const char *tag)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (long i = 0; i < n; i++)
        fprintf(f,
                "{\"type\":\"shop.order.OrderPlaced\",\"id\":\"%s-%ld\",\"value\":{\"order_id\":"
                "\"%s-order-%ld\",\"customer_id\":\"cust-%ld\",\"customer_email\":{\"string\":"
                "\"c%ld@example.com\"},\"items\":[{\"sku\":\"BOOK-42\",\"quantity\":2,"
                "\"unit_price_minor\":1999},{\"sku\":\"MUG-7\",\"quantity\":1,"
                "\"unit_price_minor\":1250}],\"currency\":\"USD\",\"total_minor\":5248,"
                "\"payment_token\":\"tok_visa_4242\",\"placed_at\":1763740800000}}\n",
                tag, i, tag, i, i % 977, i);
    long size = ftell(f);
    return fclose(f) == 0 ? size : -1;
}

/* Lines of text starting with '{' (evctl's output lines). */
static long json_lines(const char *text)
{
    long n = 0;
    for (const char *p = text; p && *p; p++)
        if (*p == '{' && (p == text || p[-1] == '\n'))
            n++;
    return n;
}

/* evctl publish holds neither the input nor what it encoded in memory: a
 * file of 200,000 lines (about 90 MB) is validated, then sent, in a
 * resident set far below its size, read from a file and from a pipe (no
 * seeking back: it spools what it validated). Every line is published
 * once and acknowledged on stdout. */
static void publish_of_200k_lines_stays_under_a_fixed_memory_bound_from_a_file_and_a_pipe(void)
{
#if defined(__SANITIZE_ADDRESS__)
    enum { LINES = 20000 }; /* the sanitizer's own memory makes RSS meaningless */
#else
    enum { LINES = 200000 };
#endif
    char path[256], fifo[256];
    it_tmp_path("big", path, sizeof path);
    char tag[64];
    lev_test_unique("big", tag, sizeof tag);
    long size = big_orders_file(path, LINES, tag);
    CHECK(size > (long)LINES * 300);
    for (int pipe_in = 0; pipe_in < 2; pipe_in++) {
        char topic[128];
        lev_test_unique(pipe_in ? "it-evctl-big-pipe" : "it-evctl-big-file", topic, sizeof topic);
        REQUIRE(lev_test_create_topic(topic, 3) == 0);
        evctl_proc_t p;
        long rss = 0;
        char *out = NULL, *err = NULL;
        if (pipe_in) {
            it_tmp_path("fifo", fifo, sizeof fifo);
            unlink(fifo);
            REQUIRE(mkfifo(fifo, 0600) == 0);
            const char *args[] = {"publish", "-", "--topic", topic, NULL};
            it_evctl_startv(&p, fifo, args);
            /* feed the pipe from here while evctl reads it */
            int w = open(fifo, O_WRONLY);
            REQUIRE(w >= 0);
            FILE *f = fopen(path, "r");
            REQUIRE(f);
            char buf[65536];
            size_t k;
            while ((k = fread(buf, 1, sizeof buf, f)) > 0)
                REQUIRE(write(w, buf, k) == (ssize_t)k);
            fclose(f);
            close(w);
            unlink(fifo);
        } else {
            const char *args[] = {"publish", path, "--topic", topic, NULL};
            it_evctl_startv(&p, NULL, args);
        }
        CHECK_INT(it_evctl_finish_rss(&p, 600000, &rss, &out, &err), ==, 0);
        CHECK_INT(json_lines(out), ==, LINES);
        CHECK_INT(lev_test_topic_records(topic), ==, LINES);
        char summary[64];
        snprintf(summary, sizeof summary, "published %d, skipped 0 bad, failed 0", (int)LINES);
        CHECK(strstr(err, summary) != NULL);
        fprintf(stderr, "%s: %ld lines, %ld bytes, peak RSS %ld KiB\n", pipe_in ? "pipe" : "file",
                (long)LINES, size, rss);
#if !defined(__SANITIZE_ADDRESS__)
        /* the bound, and well under the input's size: up to 16 MiB of
         * records in flight come on top of a fixed base, more when the
         * broker is slow to acknowledge (40 MiB seen on a loaded machine) */
        CHECK_INT(rss, <, 64L * 1024);          /* KiB */
        CHECK_INT(rss * 1024, <, size / 4 * 3); /* not the input's size */
#endif
        free(out);
        free(err);
    }
    unlink(path);
}

/* A duplicate id is found however far from its first line it is (the table
 * of ids seen holds a hash tag and where the first one was spooled, and
 * reads it back), both lines are named, and nothing is sent; ids that only
 * share a hash tag are not duplicates. */
static void a_duplicate_id_far_from_its_first_line_names_both_lines(void)
{
    enum { LINES = 30000 };
    char path[256], tag[64];
    it_tmp_path("far", path, sizeof path);
    lev_test_unique("far", tag, sizeof tag);
    REQUIRE(big_orders_file(path, LINES, tag) > 0);
    FILE *f = fopen(path, "a");
    REQUIRE(f);
    /* line LINES + 1 repeats the id of line 3 */
    fprintf(f,
            "{\"type\":\"shop.order.OrderPlaced\",\"id\":\"%s-2\",\"value\":{\"order_id\":"
            "\"again\",\"customer_id\":\"c\",\"customer_email\":null,\"items\":[],"
            "\"currency\":\"USD\",\"total_minor\":0,\"payment_token\":\"t\",\"placed_at\":1}}\n",
            tag);
    fclose(f);
    char topic[128];
    lev_test_unique("it-evctl-far", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic, NULL), ==, 65);
    char want[256];
    snprintf(want, sizeof want, ":%d: id: \"%s-2\" is also the id of line 3 (same ce_source)",
             LINES + 1, tag);
    CHECK(strstr(err, want) != NULL);
    CHECK(strstr(err, "1 bad line") != NULL);
    CHECK_INT(lev_test_topic_records(topic), ==, 0);
    free(out);
    free(err);
    unlink(path);
}

/* A record the producer refuses while the others are sent (1,020,000
 * bytes: under the codec's limit, over librdkafka's message.max.bytes) is
 * reported by its line; the rest are published and the exit code is 69. */
static void a_failed_delivery_is_named_by_its_line_and_the_rest_are_sent(void)
{
    char topic[128], path[256];
    lev_test_unique("it-evctl-refused", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    it_tmp_path("refused", path, sizeof path);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    for (int i = 0; i < 5; i++) {
        fprintf(f,
                "{\"type\":\"shop.order.OrderPlaced\",\"value\":{\"order_id\":\"o-%d\","
                "\"customer_id\":\"",
                i);
        for (int k = 0; k < (i == 2 ? 1020000 : 1); k++)
            fputc('c', f);
        fputs("\",\"customer_email\":null,\"items\":[],\"currency\":\"USD\",\"total_minor\":0,"
              "\"payment_token\":\"t\",\"placed_at\":1}}\n",
              f);
    }
    REQUIRE(fclose(f) == 0);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", topic, NULL), ==, 69);
    json_t *lines = it_lines(out);
    size_t i;
    json_t *l;
    int ok = 0, failed = 0;
    json_array_foreach(lines, i, l)
    {
        if (json_object_get(l, "offset"))
            ok++;
        if (json_object_get(l, "error")) {
            failed++;
            CHECK_INT(it_int(l, "line"), ==, 3);
            CHECK_STR(it_str(l, "error.class"), "kafka");
        }
    }
    CHECK_INT(ok, ==, 4);
    CHECK_INT(failed, ==, 1);
    CHECK(strstr(err, ":3: delivery to ") != NULL);
    CHECK(strstr(err, "published 4, skipped 0 bad, failed 1") != NULL);
    CHECK_INT(lev_test_topic_records(topic), ==, 4);
    json_decref(lines);
    free(out);
    free(err);
    unlink(path);
}

static void empty_or_reversed_ranges_are_usage_errors(void)
{
    char topic[128], path[256];
    static char ids[4][LEV_UUID_STR_LEN];
    lev_test_unique("it-evctl-range", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 2) == 0);
    it_orders_file(4, ids, 0, path, sizeof path);
    char *out = NULL, *err = NULL;
    REQUIRE(it_evctl(NULL, NULL, NULL, "publish", path, "--topic", topic, "--quiet", NULL) == 0);
    unlink(path);

    static const struct {
        const char *args[8];
        const char *says[3];
    } bad[] = {
        {{"tail", "T", "--from", "10", "--until", "5"}, {"--from 10", "--until 5"}},
        {{"tail", "T", "--from", "2", "--until", "2"}, {"--from 2", "--until 2"}},
        {{"tail", "T", "--from", "2026-11-21T10:00:00Z", "--until", "2026-11-21T09:00:00Z"},
         {"--from 2026-11-21T10:00:00Z", "--until 2026-11-21T09:00:00Z"}},
        {{"tail", "T", "--from", "now-1h", "--until", "now-2h"}, {"--from now-1h", "--until"}},
        {{"tail", "T", "--from", "0:3,1:0", "--until", "0:1"}, {"--from 0:3,1:0", "partition 0"}},
        {{"tail", "T", "--until", "beginning"}, {"--until beginning", "selects nothing"}},
        {{"tail", "T", "--partition", ","}, {"--partition", "names no partition"}},
        {{"tail", "T", "--from", "0:1", "--partition", "1"}, {"--partition 1", "--from 0:1"}},
        {{"replay", "T", "--from", "3", "--until", "1", "--dry-run"}, {"--from 3", "--until 1"}},
        {{"dlq", "list", "G", "--since", "now-1h", "--until", "now-2h"},
         {"--since now-1h", "--until now-2h"}},
        {{"dlq", "redrive", "G", "--from", "5", "--until", "2", "--dry-run"},
         {"--from 5", "--until 2"}},
        {{"dlq", "redrive", "G", "--since", "now", "--until", "now-1d", "--dry-run"},
         {"--since now", "--until now-1d"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[10];
        size_t n = 0;
        for (; n < 8 && bad[i].args[n]; n++)
            args[n] = strcmp(bad[i].args[n], "T") == 0 || strcmp(bad[i].args[n], "G") == 0
                          ? topic /* for dlq: the group whose dlq does not even exist */
                          : bad[i].args[n];
        args[n] = NULL;
        evctl_proc_t p;
        it_evctl_startv(&p, NULL, args);
        int rc = it_evctl_finish(&p, 60000, &out, &err);
        int said = 1;
        for (int k = 0; k < 3 && bad[i].says[k]; k++)
            said &= err && strstr(err, bad[i].says[k]) != NULL;
        if (rc != 64 || !said || out[0])
            fprintf(stderr, "case %zu (%s %s ...): exit %d, stderr: %s", i, args[0], args[2], rc,
                    err);
        CHECK_INT(rc, ==, 64);
        CHECK(said);
        CHECK_STR(out, "");
        free(out);
        free(err);
    }
    /* the same options in the right order read what they select */
    CHECK_INT(
        it_evctl(&out, NULL, NULL, "tail", topic, "--from", "0:0,1:0", "--until", "0:1,1:1", NULL),
        ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), >=, 1);
    CHECK_INT(json_array_size(lines), <=, 2);
    json_decref(lines);
}

/* ---- a listener that refuses SASL credentials the way a broker does ----
 *
 * The test brokers have no SASL listener, so this speaks just enough of the
 * Kafka protocol for librdkafka to get to authentication: ApiVersions (v3,
 * or v0 after a downgrade), SaslHandshake (PLAIN), then SaslAuthenticate
 * answered with SASL_AUTHENTICATION_FAILED (58) and Kafka's own message. */

typedef struct sasl_refuser_s {
    int fd, port;
    atomic_int stop, refused;
    pthread_t th;
} sasl_refuser_t;

typedef struct wbuf_s {
    unsigned char b[512];
    size_t n;
} wbuf_t;

static void put16(wbuf_t *w, int v)
{
    w->b[w->n++] = (unsigned char)(v >> 8);
    w->b[w->n++] = (unsigned char)v;
}

static void put32(wbuf_t *w, int32_t v)
{
    put16(w, (int)((uint32_t)v >> 16));
    put16(w, v & 0xffff);
}

static void put_str(wbuf_t *w, const char *s)
{
    put16(w, (int)strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

/* Reads exactly n bytes; 0 or -1. */
static int read_full(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Answers one request; -1 when the connection is done. */
static int sasl_refuser_serve(sasl_refuser_t *r, int fd)
{
    unsigned char hdr[4], req[4096];
    if (read_full(fd, hdr, 4) != 0)
        return -1;
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len < 8 || len > sizeof req || read_full(fd, req, len) != 0)
        return -1;
    int key = req[0] << 8 | req[1], version = req[2] << 8 | req[3];
    wbuf_t w = {.n = 4};
    memcpy(w.b + 4, req + 4, 4); /* correlation id */
    w.n = 8;
    static const int apis[][3] = {{18, 0, 3}, {17, 0, 1}, {36, 0, 1}, {3, 0, 4}};
    if (key == 18 && version >= 3) { /* ApiVersions, flexible body */
        put16(&w, 0);
        w.b[w.n++] = 4 + 1; /* compact array: count + 1 */
        for (int i = 0; i < 4; i++) {
            put16(&w, apis[i][0]);
            put16(&w, apis[i][1]);
            put16(&w, apis[i][2]);
            w.b[w.n++] = 0; /* tagged fields */
        }
        put32(&w, 0);
        w.b[w.n++] = 0;
    } else if (key == 18) {
        put16(&w, 0);
        put32(&w, 4);
        for (int i = 0; i < 4; i++) {
            put16(&w, apis[i][0]);
            put16(&w, apis[i][1]);
            put16(&w, apis[i][2]);
        }
        if (version >= 1)
            put32(&w, 0);
    } else if (key == 17) { /* SaslHandshake */
        put16(&w, 0);
        put32(&w, 1);
        put_str(&w, "PLAIN");
    } else if (key == 36) { /* SaslAuthenticate */
        put16(&w, 58);
        put_str(&w, "Authentication failed: Invalid username or password");
        put32(&w, 0);
        if (version >= 1) {
            put32(&w, 0);
            put32(&w, 0);
        }
        atomic_fetch_add(&r->refused, 1);
    } else {
        return -1; /* nothing else is served before authentication */
    }
    uint32_t size = (uint32_t)(w.n - 4);
    w.b[0] = (unsigned char)(size >> 24);
    w.b[1] = (unsigned char)(size >> 16);
    w.b[2] = (unsigned char)(size >> 8);
    w.b[3] = (unsigned char)size;
    return write(fd, w.b, w.n) == (ssize_t)w.n ? 0 : -1;
}

static void *sasl_refuser_run(void *arg)
{
    sasl_refuser_t *r = arg;
    struct pollfd fds[9];
    int n = 1;
    fds[0] = (struct pollfd){.fd = r->fd, .events = POLLIN};
    while (!atomic_load(&r->stop)) {
        if (poll(fds, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = n - 1; i >= 1; i--) {
            if (fds[i].revents && sasl_refuser_serve(r, fds[i].fd) != 0) {
                close(fds[i].fd);
                fds[i] = fds[--n];
            }
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(r->fd, NULL, NULL);
            if (c >= 0 && n < 9)
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            else if (c >= 0)
                close(c);
        }
    }
    for (int i = 1; i < n; i++)
        close(fds[i].fd);
    return NULL;
}

static int sasl_refuser_start(sasl_refuser_t *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->fd, 8) != 0 ||
        getsockname(r->fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    r->port = ntohs(a.sin_port);
    return pthread_create(&r->th, NULL, sasl_refuser_run, r) == 0 ? 0 : -1;
}

static void sasl_refuser_stop(sasl_refuser_t *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    close(r->fd);
}

/* A wrong SASL password is said to be one, at once: not "did not answer"
 * or "Broker transport failure" after the whole --timeout. */
static void a_refused_sasl_password_says_authentication_failed(void)
{
    sasl_refuser_t r;
    REQUIRE(sasl_refuser_start(&r) == 0);
    char bootstrap[64];
    snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", r.port);
    setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT", 1);
    setenv("KAFKA_SASL_MECHANISM", "PLAIN", 1);
    setenv("KAFKA_SASL_USERNAME", "evctl", 1);
    setenv("KAFKA_SASL_PASSWORD", "not-the-password", 1);
    char *err = NULL;
    int64_t t0 = lev_mono_ms();
    int rc = it_evctl(NULL, &err, NULL, "--bootstrap", bootstrap, "--timeout", "20s", "tail",
                      "orders", NULL);
    int64_t took = lev_mono_ms() - t0;
    unsetenv("KAFKA_SECURITY_PROTOCOL");
    unsetenv("KAFKA_SASL_MECHANISM");
    unsetenv("KAFKA_SASL_USERNAME");
    unsetenv("KAFKA_SASL_PASSWORD");
    sasl_refuser_stop(&r);
    CHECK_INT(atomic_load(&r.refused), >=, 1);
    CHECK_INT(rc, ==, 69);
    CHECK(err && strstr(err, "authentication failed") != NULL);
    CHECK(err && strstr(err, "Invalid username or password") != NULL);
    CHECK(err && strstr(err, "transport failure") == NULL);
    CHECK(err && strstr(err, "not-the-password") == NULL); /* never the secret */
    CHECK_INT(took, <, 15000);
    if (err)
        fprintf(stderr, "evctl said: %s", err);
    free(err);
}

/* The lines publish reads without a JSON tree and the ones jansson reads
 * (EVCTL_PUBLISH_TREE=1) give the same records and the same errors. */
static void publish_reads_every_line_the_same_with_or_without_a_json_tree(void)
{
    static const char *const lines[] = {
        /* read without a tree */
        "{\"type\":\"shop.order.OrderPlaced\",\"headers\":{\"x-line\":\"1\"},\"value\":{\"order_"
        "id\":"
        "\"o-1\",\"customer_id\":\"c\",\"customer_email\":{\"string\":\"a@example.com\"},\"items\":"
        "[{\"sku\":\"s\",\"quantity\":2,\"unit_price_minor\":5}],\"currency\":\"USD\","
        "\"total_minor\":10,\"payment_token\":\"t\",\"placed_at\":1763740800000}}",
        "{\"value\":{\"placed_at\":1,\"payment_token\":\"t\",\"total_minor\":0,\"currency\":"
        "\"EUR\","
        "\"items\":[],\"customer_email\":\"b@example.com\",\"customer_id\":\"c\\u00e9\",\"order_"
        "id\":"
        "\"o-2\\ud83d\\ude00\"}, \"type\" : \"shop.order.OrderPlaced\" "
        ",\"headers\":{\"x-line\":\"2\"}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"key\":null,\"id\":\"id-3\",\"time\":"
        "\"2026-11-21T17:05:00Z\",\"headers\":{\"x-line\":\"3\",\"traceparent\":"
        "\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\",\"correlation_id\":\"corr-3\","
        "\"ce_source\":\"/"
        "elsewhere\",\"x-null\":null},\"value\":{\"order_id\":\"o-3\",\"customer_id\":"
        "\"c\",\"customer_email\":null,\"items\":[],\"currency\":\"USD\",\"total_minor\":0,"
        "\"payment_token\":\"t\",\"placed_at\":3}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"key\":\"k-4\",\"headers\":{\"x-line\":\"4\"},"
        "\"value\":"
        "{\"order_id\":\"o-4\",\"customer_id\":\"c\\n\\t\\\"q\\\"\",\"customer_email\":null,"
        "\"items\":"
        "[{\"sku\":\"\\u20ac\",\"quantity\":-1,\"unit_price_minor\":9223372036854775807}],"
        "\"currency\":\"USD\",\"total_minor\":-9223372036854775808,\"payment_token\":\"t\","
        "\"placed_at\":4}}",
        /* through jansson: escapes in the envelope, a bare union that is an object */
        "{\"type\":\"shop.order.Order\\u0050laced\",\"key\":\"k\\u00e9\",\"headers\":{\"x-line\":"
        "\"5\","
        "\"x-esc\":\"a\\\\b\"},\"value\":{\"order_id\":\"o-5\",\"customer_id\":\"c\","
        "\"customer_email\":null,\"items\":[],\"currency\":\"USD\",\"total_minor\":0,"
        "\"payment_token\":\"t\",\"placed_at\":5}}",
        /* bad, each for its own reason */
        "{\"type\":\"shop.order.OrderPlaced\",\"value\":{\"order_id\":\"o\"},\"extra\":1}",
        "{\"type\":\"shop.order.OrderPlaced\",\"type\":\"shop.order.OrderPlaced\",\"value\":{}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"value\":[]}",
        "{\"type\":\"shop.order.OrderPlaced\",\"headers\":{\"x\":1},\"value\":{\"order_id\":\"o\"}"
        "}",
        "{\"type\":\"shop.order.OrderPlaced\",\"headers\":{\"x\":\"1\",\"x\":\"2\"},\"value\":{}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"value\":{\"order_id\":\"o\"}} trailing",
        "{\"type\":\"shop.order.OrderPlaced\",\"time\":\"yesterday\",\"value\":{\"order_id\":\"o\"}"
        "}",
        "{\"type\":\"shop.order.OrderPlaced\",\"id\":\"\",\"value\":{\"order_id\":\"o\"}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"value\":{\"order_id\":\"o\",\"customer_id\":7}}",
        "{\"type\":\"shop.order.Nope\",\"value\":{}}",
        "{\"value\":{\"order_id\":\"\",\"customer_id\":\"c\",\"customer_email\":null,\"items\":[],"
        "\"currency\":\"USD\",\"total_minor\":0,\"payment_token\":\"t\",\"placed_at\":5},"
        "\"type\":\"shop.order.OrderPlaced\"}",
        "{\"type\":\"shop.order.OrderPlaced\",\"headers\":{\"ce_id\":\"x\"},\"value\":{}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"headers\":{\"lev_attempt\":\"1\"},\"value\":{}}",
        "{\"type\":\"shop.order.OrderPlaced\",\"value\":{\"order_id\":\"o\"}",
    };
    enum { NL = sizeof lines / sizeof lines[0], NGOOD = 5 };
    char path[256], topic[2][128];
    it_tmp_path("both", path, sizeof path);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    for (size_t i = 0; i < NL; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
    char *out[2], *err[2];
    json_t *errors[2], *records[2];
    for (int t = 0; t < 2; t++) {
        lev_test_unique(t ? "it-evctl-tree" : "it-evctl-direct", topic[t], sizeof topic[t]);
        REQUIRE(lev_test_create_topic(topic[t], 1) == 0);
        if (t)
            setenv("EVCTL_PUBLISH_TREE", "1", 1);
        CHECK_INT(it_evctl(&out[t], &err[t], NULL, "publish", path, "--topic", topic[t],
                           "--skip-bad", NULL),
                  ==, 65);
        unsetenv("EVCTL_PUBLISH_TREE");
        /* the error lines, without the delivery lines (their topics differ) */
        json_t *all = it_lines(out[t]);
        errors[t] = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(all, i, l)
        {
            if (json_object_get(l, "error"))
                json_array_append(errors[t], l);
        }
        json_decref(all);
        char *tail = NULL;
        CHECK_INT(it_evctl(&tail, NULL, NULL, "tail", topic[t], NULL), ==, 0);
        records[t] = it_lines(tail);
        free(tail);
    }
    CHECK_STR(err[0], err[1]);
    CHECK(json_equal(errors[0], errors[1]));
    CHECK_INT(json_array_size(errors[0]), ==, NL - NGOOD);
    CHECK_INT(json_array_size(records[0]), ==, NGOOD);
    CHECK_INT(json_array_size(records[1]), ==, NGOOD);
    /* the same records, in the same order (one partition); generated
     * header values (ce_id, ce_time, traceparent, correlation_id) aside
     * when the line did not give them */
    for (size_t i = 0; i < NGOOD; i++) {
        json_t *a = json_array_get(records[0], i), *b = json_array_get(records[1], i);
        REQUIRE(a && b);
        CHECK(json_equal(json_object_get(a, "value"), json_object_get(b, "value")));
        CHECK(json_equal(json_object_get(a, "key"), json_object_get(b, "key")));
        CHECK_STR(it_str(a, "type"), it_str(b, "type"));
        json_t *ha = json_object_get(a, "headers"), *hb = json_object_get(b, "headers");
        CHECK_INT(json_object_size(ha), ==, json_object_size(hb));
        const char *k;
        json_t *v;
        int given = i == 2; /* line 3 gives them all */
        json_object_foreach(ha, k, v)
        {
            int generated = strcmp(k, "ce_id") == 0 || strcmp(k, "ce_time") == 0 ||
                            strcmp(k, "traceparent") == 0 || strcmp(k, "correlation_id") == 0;
            if (!generated || given)
                CHECK(json_equal(v, json_object_get(hb, k)));
            else
                CHECK(json_object_get(hb, k) != NULL);
        }
        if (given) {
            CHECK_STR(it_str(a, "headers.ce_id"), "id-3");
            CHECK_STR(it_str(a, "headers.ce_source"), "/elsewhere");
            CHECK_STR(it_str(a, "headers.correlation_id"), "corr-3");
            CHECK(json_is_null(json_object_get(a, "key")));
            CHECK(
                json_equal(json_object_get(a, "timestamp_ms"), json_object_get(b, "timestamp_ms")));
        }
    }
    for (int t = 0; t < 2; t++) {
        json_decref(errors[t]);
        json_decref(records[t]);
        free(out[t]);
        free(err[t]);
    }
    unlink(path);
}

/* text with every occurrence of `from` replaced by `to` (new string) */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = text; (p = strstr(p, from)) != NULL; p += fl)
        n++;
    char *out = malloc(strlen(text) + n * tl + 1), *o = out;
    if (!out)
        abort();
    for (const char *p = text, *q; *p; p = q + fl) {
        if (!(q = strstr(p, from))) {
            strcpy(o, p);
            return out;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
    }
    *o = '\0';
    return out;
}

/* The first pass spread over worker threads (several chunks of lines,
 * EVCTL_PUBLISH_THREADS=3) gives exactly what the main thread alone gives
 * (EVCTL_PUBLISH_THREADS=0): the same errors for the same lines, duplicate
 * ids found across chunks, a line too long for the workers, lines only
 * jansson reads, and the same records in the same order. */
static void publish_on_worker_threads_gives_what_one_thread_gives(void)
{
    enum { LINES = 5000, LONG_LINE = 2601, DUP_LINE = 4100, FIRST = 18 };
    char path[256], tag[64], topic[2][128];
    it_tmp_path("threads", path, sizeof path);
    lev_test_unique("thr", tag, sizeof tag);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    int nbad = 0, long_at = -1;                    /* the long line's record */
    int dup_at = DUP_LINE + (DUP_LINE - 1) / 1000; /* with the blank lines before it */
    for (int i = 1; i <= LINES; i++) {
        if (i % 1000 == 1 && i > 1)
            fputs("\n", f); /* blank */
        /* ids, times and trace headers given: nothing generated differs */
        char head[512];
        snprintf(head, sizeof head,
                 "{\"type\":\"shop.order.%s\",\"id\":\"%s-%d\",\"time\":\"2026-11-21T17:05:00Z\","
                 "\"headers\":{\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-"
                 "b7ad6b7169203331-01\",\"correlation_id\":\"c-%d\"},",
                 i % 11 == 5 ? "Order\\u0050laced" : "OrderPlaced", tag, i == DUP_LINE ? FIRST : i,
                 i);
        if (i % 7 == 3) {
            nbad++;
            fprintf(f, "%s%s\n", head,
                    i % 3 == 0   ? "\"value\":{\"order_id\":\"o\",\"customer_id\":7}}"
                    : i % 3 == 1 ? "\"value\":{\"order_id\":\"o\"},\"extra\":1}"
                                 : "\"value\":{\"order_id\":\"o\"}");
            continue;
        }
        if (i == DUP_LINE)
            nbad++;
        if (i == LONG_LINE)
            long_at = i - 1 - nbad;
        fprintf(f, "%s\"value\":{\"order_id\":\"o-%d\",\"customer_id\":\"", head, i);
        for (int k = 0; k < (i == LONG_LINE ? 300000 : 1); k++)
            fputc('c', f);
        fprintf(f,
                "\",\"customer_email\":null,\"items\":[{\"sku\":\"s\",\"quantity\":%d,"
                "\"unit_price_minor\":5}],\"currency\":\"USD\",\"total_minor\":%d,"
                "\"payment_token\":\"t\",\"placed_at\":%d}}\n",
                i, 5 * i, i);
    }
    REQUIRE(fclose(f) == 0);
    char *out[2], *err[2], *tail[2];
    for (int t = 0; t < 2; t++) {
        lev_test_unique(t ? "it-evctl-thr3" : "it-evctl-thr0", topic[t], sizeof topic[t]);
        REQUIRE(lev_test_create_topic(topic[t], 1) == 0);
        setenv("EVCTL_PUBLISH_THREADS", t ? "3" : "0", 1);
        CHECK_INT(it_evctl(&out[t], &err[t], NULL, "publish", path, "--topic", topic[t],
                           "--skip-bad", NULL),
                  ==, 65);
        unsetenv("EVCTL_PUBLISH_THREADS");
        CHECK_INT(it_evctl(&tail[t], NULL, NULL, "tail", topic[t], NULL), ==, 0);
        /* the same text whatever the topic's name */
        char *o = replace_all(out[t], topic[t], "T"), *l = replace_all(tail[t], topic[t], "T");
        free(out[t]);
        free(tail[t]);
        out[t] = o;
        tail[t] = l;
    }
    CHECK_STR(err[0], err[1]);
    CHECK_STR(out[0], out[1]);
    CHECK_STR(tail[0], tail[1]);
    json_t *lines = it_lines(out[1]), *records = it_lines(tail[1]);
    CHECK_INT(json_array_size(lines), ==, LINES);
    CHECK_INT(json_array_size(records), ==, LINES - nbad);
    char want[256];
    snprintf(want, sizeof want, ":%d: id: \"%s-%d\" is also the id of line %d", dup_at, tag, FIRST,
             FIRST);
    CHECK(strstr(err[1], want) != NULL);
    snprintf(want, sizeof want, "published %d, skipped %d bad", LINES - nbad, nbad);
    CHECK(strstr(err[1], want) != NULL);
    json_t *r = json_array_get(records, (size_t)long_at);
    CHECK_INT(strlen(it_str(r, "value.customer_id")), ==, 300000);
    json_decref(lines);
    json_decref(records);
    for (int t = 0; t < 2; t++) {
        free(out[t]);
        free(err[t]);
        free(tail[t]);
    }
    unlink(path);
}

/* Headers of every kind arrive as the line wrote them, in a dry run's
 * printout and on the topic: null and empty values, values equal to a
 * generated header's or to each other, values equal to the constant ones
 * (specversion, content-type) under other names, and a long name. The
 * spool stores such headers by reference (publish.c); this is what
 * proves the references come back as the values. Then keys and ids that
 * need escaping, at every offset of an 8-byte word: every acknowledgement
 * line must be JSON that gives them back. */
static void headers_of_every_kind_arrive_as_written(void)
{
    char topic[128], path[256], id[LEV_UUID_STR_LEN], longname[201];
    lev_test_unique("it-evctl-hdr", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    lev_uuid4(id);
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    json_t *value = lev_test_order_json(id, 1);
    json_t *headers =
        json_pack("{s:s,s:n,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "x-id", id, "x-null", "x-empty", "",
                  "x-ver", "1.0", "x-ct", "application/avro", "x-a", "same-value-twice", "x-b",
                  "same-value-twice", longname, "v", "correlation_id", "corr-0123456789");
    json_t *line =
        json_pack("{s:s,s:s,s:s,s:O,s:o}", "type", "shop.order.OrderPlaced", "id", id, "time",
                  "2026-11-21T17:05:00.123Z", "value", value, "headers", json_deep_copy(headers));
    char *text = json_dumps(line, JSON_COMPACT);
    it_write_file("hdr", text, path, sizeof path);
    free(text);

    char *out = NULL;
    json_t *seen[2];
    CHECK_INT(it_evctl(&out, NULL, NULL, "publish", path, "--topic", topic, "--dry-run", NULL), ==,
              0);
    seen[0] = it_lines(out);
    free(out);
    CHECK_INT(it_evctl(&out, NULL, NULL, "publish", path, "--topic", topic, NULL), ==, 0);
    free(out);
    CHECK_INT(it_evctl(&out, NULL, NULL, "tail", topic, NULL), ==, 0);
    seen[1] = it_lines(out);
    free(out);
    for (int k = 0; k < 2; k++) {
        CHECK_INT(json_array_size(seen[k]), ==, 1);
        json_t *got = json_object_get(json_array_get(seen[k], 0), "headers");
        const char *key;
        json_t *want;
        json_object_foreach(headers, key, want)
        {
            json_t *h = json_object_get(got, key);
            if (!json_equal(h, want)) {
                char *g = h ? json_dumps(h, JSON_ENCODE_ANY) : NULL;
                fprintf(stderr, "%s: header %.40s is %s\n", k ? "tail" : "dry run", key,
                        g ? g : "missing");
                free(g);
                CHECK(0);
            }
        }
        CHECK_STR(it_str(got, "ce_id"), id);
        CHECK_STR(it_str(got, "ce_specversion"), "1.0");
        CHECK_STR(it_str(got, "content-type"), "application/avro");
        CHECK_STR(it_str(got, "ce_type"), "shop.order.OrderPlaced");
        CHECK_STR(it_str(got, "ce_time"), "2026-11-21T17:05:00.123Z");
        CHECK_INT(json_object_size(got), ==, json_object_size(headers) + 7);
        json_decref(seen[k]);
    }
    json_decref(line);
    json_decref(headers);
    json_decref(value);
    unlink(path);

    /* the acknowledgement lines: keys and ids that need escaping, at every
     * position of an 8-byte word, and long plain ones */
    const char *odd[] = {"q\"uote",
                         "back\\slash",
                         "tab\there",
                         "del\x7f",
                         "nl\n",
                         "\x01",
                         "caf\xc3\xa9-\xe2\x82\xac",
                         "plain-key-of-thirty-two-bytes-xx"};
    enum { NODD = sizeof odd / sizeof odd[0] };
    char ids[NODD * 9][256], keys[NODD * 9][64];
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    int n = 0;
    for (int i = 0; i < NODD; i++)
        for (int shift = 0; shift < 9; shift++, n++) {
            snprintf(keys[n], sizeof keys[n], "%.*s%s", shift, "abcdefghi", odd[i]);
            snprintf(ids[n], sizeof ids[n], "%s-%.128s-%d", odd[(i + 1) % NODD], topic, n);
            json_t *v = lev_test_order_json(id, n);
            json_t *l = json_pack("{s:s,s:s,s:s,s:o}", "type", "shop.order.OrderPlaced", "id",
                                  ids[n], "key", keys[n], "value", v);
            char *t = json_dumps(l, JSON_COMPACT);
            fprintf(f, "%s\n", t);
            free(t);
            json_decref(l);
        }
    fclose(f);
    CHECK_INT(it_evctl(&out, NULL, NULL, "publish", path, "--topic", topic, NULL), ==, 0);
    json_t *acks = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(acks), ==, n);
    int good = 0;
    size_t i;
    json_t *a;
    json_array_foreach(acks, i, a)
    {
        json_int_t no = it_int(a, "line");
        if (no < 1 || no > n) {
            char *t = json_dumps(a, JSON_ENCODE_ANY);
            fprintf(stderr, "not an acknowledgement line: %s\n", t ? t : "?");
            free(t);
            continue;
        }
        good += it_str(a, "key") && strcmp(it_str(a, "key"), keys[no - 1]) == 0 &&
                it_str(a, "id") && strcmp(it_str(a, "id"), ids[no - 1]) == 0 &&
                it_str(a, "topic") && strcmp(it_str(a, "topic"), topic) == 0 && it_str(a, "type") &&
                strcmp(it_str(a, "type"), "shop.order.OrderPlaced") == 0;
    }
    CHECK_INT(good, ==, n);
    json_decref(acks);
    unlink(path);
}

/* Routing by type: a known type the topics description routes nowhere is
 * named with the file; the types it routes go to their topic, on worker
 * threads as on the main one (the routes are matched once per schema). */
static void a_type_the_topics_description_routes_nowhere_is_named(void)
{
    char topics[256], path[256], tp[512], id[LEV_UUID_STR_LEN], topic[128], desc[512];
    lev_uuid4(id);
    lev_test_unique("it-evctl-route", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    snprintf(desc, sizeof desc,
             "{\"version\":1,\"topics\":[{\"name\":\"%s\",\"types\":[\"shop.order.OrderPl*\"]}],"
             "\"groups\":[]}",
             topic);
    it_write_file("topics", desc, topics, sizeof topics);
    json_t *value = lev_test_order_json(id, 1);
    char *v = json_dumps(value, JSON_COMPACT);
    FILE *f = NULL;
    it_tmp_path("route", path, sizeof path);
    REQUIRE((f = fopen(path, "w")) != NULL);
    for (int i = 1; i <= 3000; i++)
        fprintf(f, "{\"type\":\"shop.order.%s\",\"value\":%s}\n",
                i == 2500 ? "OrderAccepted" : "OrderPlaced", v);
    fclose(f);
    free(v);
    json_decref(value);
    for (int threads = 0; threads <= 2; threads += 2) {
        char env[64], *out = NULL, *err = NULL;
        snprintf(env, sizeof env, "%d", threads);
        setenv("EVCTL_PUBLISH_THREADS", env, 1);
        CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topics-file", topics, "--dry-run",
                           "--skip-bad", NULL),
                  ==, 65);
        snprintf(tp, sizeof tp,
                 ":2500: topic: no topic: give \"topic\" or --topic (no \"types\" pattern in %s "
                 "matches shop.order.OrderAccepted)",
                 topics);
        CHECK(err && strstr(err, tp) != NULL);
        CHECK(err && strstr(err, "2999 events valid, 1 bad") != NULL);
        json_t *lines = it_lines(out), *l;
        size_t i;
        int routed = 0;
        json_array_foreach(lines, i, l) routed +=
            it_str(l, "topic") && strcmp(it_str(l, "topic"), topic) == 0;
        CHECK_INT(routed, ==, 2999);
        json_decref(lines);
        free(out);
        free(err);
    }
    unsetenv("EVCTL_PUBLISH_THREADS");
    unlink(path);
    unlink(topics);
}

/* Output lines are written in large blocks for speed, but a paced run
 * (--rate) writes each line as its record is acknowledged: its reader sees
 * them while evctl still sends, not all at the end. */
static void a_paced_publish_writes_each_line_as_it_is_acknowledged(void)
{
    enum { LINES = 1000 };
    char topic[128], path[256];
    lev_test_unique("it-evctl-paced", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 1) == 0);
    it_tmp_path("paced", path, sizeof path);
    REQUIRE(big_orders_file(path, LINES, topic) > 0);
    const char *args[] = {"publish", path, "--topic", topic, "--rate", "5/s", NULL};
    evctl_proc_t p;
    it_evctl_startv(&p, NULL, args);
    /* 1,000 lines at 5 a second take 200 s to send, and block writes would
     * hold the first line for over a minute (64 KiB of lines). However late
     * the first acknowledgement on a loaded machine, within 45 s its line
     * must show while evctl still runs; the run is then interrupted. */
    long seen = 0;
    int running = 1;
    for (int64_t deadline = lev_mono_ms() + 45000; lev_mono_ms() < deadline && seen == 0;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)p.pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid != 0) {
            running = 0; /* exited (not reaped: it_evctl_finish does that) */
            break;
        }
        char *o = it_slurp(p.out_path);
        for (const char *c = o; c && *c; c++)
            seen += *c == '\n';
        free(o);
        if (seen == 0)
            lev_test_sleep_ms(20);
    }
    CHECK(running);
    CHECK(seen >= 1 && seen < LINES);
    kill(p.pid, SIGINT);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl_finish(&p, 60000, &out, &err), ==, 130);
    json_t *lines = it_lines(out);
    size_t n = json_array_size(lines);
    CHECK(n >= (size_t)seen && n < LINES);
    for (size_t i = 0; i < n; i++) { /* one line per acknowledged record, in order */
        json_t *l = json_array_get(lines, i);
        CHECK_STR(it_str(l, "topic"), topic);
        CHECK_INT(it_int(l, "offset"), ==, (json_int_t)i);
        CHECK_INT(it_int(l, "line"), ==, (json_int_t)i + 1);
    }
    CHECK(err && strstr(err, "interrupted: lines from") != NULL);
    json_decref(lines);
    free(out);
    free(err);
    unlink(path);
}

CHECK_MAIN(CASE(publish_then_tail_round_trip_equals_the_input),
           CASE(a_paced_publish_writes_each_line_as_it_is_acknowledged),
           CASE(a_type_the_topics_description_routes_nowhere_is_named),
           CASE(headers_of_every_kind_arrive_as_written),
           CASE(a_bad_line_publishes_nothing_and_names_the_line_and_field),
           CASE(an_input_without_events_publishes_nothing_and_says_so),
           CASE(tail_prints_undecodable_records_with_their_error_and_raw_bytes),
           CASE(tail_refuses_values_of_an_unreadable_older_version_without_crashing),
           CASE(usage_errors_name_the_flag_and_exit_64),
           CASE(empty_or_reversed_ranges_are_usage_errors),
           CASE(publish_refuses_empty_keys_duplicate_ids_and_lev_headers),
           CASE(publish_reads_every_line_the_same_with_or_without_a_json_tree),
           CASE(publish_on_worker_threads_gives_what_one_thread_gives),
           CASE(publish_of_200k_lines_stays_under_a_fixed_memory_bound_from_a_file_and_a_pipe),
           CASE(a_duplicate_id_far_from_its_first_line_names_both_lines),
           CASE(a_failed_delivery_is_named_by_its_line_and_the_rest_are_sent),
           CASE(an_unreachable_broker_exits_69),
           CASE(a_refused_sasl_password_says_authentication_failed))
