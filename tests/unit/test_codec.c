/*
 * Schema sets, encode/decode round trips of every schema (tests/data/avro,
 * and the directories of $LEV_SCHEMA_DIRS), schema evolution rules, encode
 * refusals and the field helpers.
 */
#include "check.h"

#include <dirent.h>
#include <libevents.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static const char *data_dir(void)
{
    const char *d = getenv("LEV_TEST_DATA");
    return d ? d : "tests/data";
}

static void data_path(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", data_dir(), rel);
}

static char tmpdir_path[256];

static const char *make_tmpdir(void)
{
    snprintf(tmpdir_path, sizeof tmpdir_path, "/tmp/lev-codec-XXXXXX");
    return mkdtemp(tmpdir_path);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return;
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Removes a directory tree of plain files and directories. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[1536];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

#define REC(name, fields) "{\"type\":\"record\",\"name\":\"" name "\",\"fields\":[" fields "]}"

static char *json_text(json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* Encodes JSON text as a value of `s`; returns the framed bytes. */
static void *encode_json(lev_codec_t *codec, const lev_schema_t *s, const char *text, size_t *len)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s\n", jerr.text);
        return NULL;
    }
    avro_value_t v;
    lev_error_t err;
    void *buf = NULL;
    if (lev_codec_from_json(codec, s, j, &v, &err) != 0) {
        fprintf(stderr, "from_json: %s: %s\n", err.where, err.text);
    } else {
        if (lev_codec_encode(codec, s, &v, &buf, len, &err) != 0)
            fprintf(stderr, "encode: %s\n", err.text);
        avro_value_decref(&v);
    }
    json_decref(j);
    return buf;
}

/* Decodes and returns the JSON text of the value (malloc'd), or NULL with
 * *rc set. */
static char *decode_json(lev_codec_t *codec, const void *buf, size_t len,
                         const lev_schema_t *reader, int *rc, lev_error_t *err)
{
    avro_value_t v;
    *rc = lev_codec_decode(codec, buf, len, reader, &v, NULL, err);
    if (*rc)
        return NULL;
    json_t *j = lev_codec_to_json(&v, err);
    char *t = json_text(j);
    json_decref(j);
    avro_value_decref(&v);
    return t;
}

/* ---- schema sets --------------------------------------------------------- */

static void load_dir_loads_every_avsc_in_name_order(void)
{
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    write_file(dir, "b.avsc", REC("t.B", ""));
    write_file(dir, "a.avsc", REC("t.A", ""));
    write_file(dir, "c.json", REC("t.C", ""));
    write_file(dir, "notes.txt", "not a schema");
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    CHECK_INT(lev_schemas_load_dir(set, dir, 0, &err), ==, 0);
    CHECK_INT(lev_schemas_count(set), ==, 2);
    CHECK_STR(lev_schema_name(lev_schemas_at(set, 0)), "t.A");
    CHECK_STR(lev_schema_name(lev_schemas_at(set, 1)), "t.B");
    const lev_schema_t *a = lev_schemas_find(set, "t.A");
    CHECK(a != NULL && strstr(lev_schema_origin(a), "a.avsc") != NULL);
    CHECK(lev_schemas_find_fingerprint(set, lev_schema_fingerprint(a)) == a);
    CHECK_STR(lev_schema_canonical(a), "{\"name\":\"t.A\",\"type\":\"record\",\"fields\":[]}");
    CHECK(lev_schema_is_current(a));
    CHECK(lev_schema_avro(a) != NULL);
    CHECK(lev_schemas_find(set, "t.C") == NULL);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

static void malformed_json_error_names_the_file_line_and_column(void)
{
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    write_file(dir, "good.avsc", REC("t.Good", ""));
    write_file(dir, "zbad.avsc",
               "{\n  \"type\": \"record\",\n  \"name\": \"t.Bad\"\n  \"fields\": []\n}");
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    CHECK_INT(lev_schemas_load_dir(set, dir, 0, &err), ==, LEV_ERR_SCHEMA);
    CHECK(strstr(err.where, "zbad.avsc:4:") != NULL);
    CHECK(strstr(err.text, "invalid JSON") != NULL);
    /* The whole call failed: nothing from the directory stays loaded. */
    CHECK_INT(lev_schemas_count(set), ==, 0);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

static void schema_avro_c_refuses_is_an_error_naming_the_file(void)
{
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    write_file(dir, "empty_enum.avsc",
               REC("t.E", "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"None\","
                          "\"symbols\":[]}}"));
    char path[1024];
    snprintf(path, sizeof path, "%s/empty_enum.avsc", dir);
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    CHECK_INT(lev_schemas_load_file(set, path, 0, &err), ==, LEV_ERR_SCHEMA);
    CHECK_STR(err.where, path);
    CHECK(strstr(err.text, "avro-c") != NULL);
    CHECK(strstr(err.text, "at least one symbol") != NULL);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

static void schema_errors_name_the_file(void)
{
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    write_file(dir, "unknown.avsc", REC("t.U", "{\"name\":\"x\",\"type\":\"Nope\"}"));
    write_file(dir, "bad_default.avsc",
               REC("t.D", "{\"name\":\"x\",\"type\":\"int\","
                          "\"default\":\"seven\"}"));
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    char path[1024];
    snprintf(path, sizeof path, "%s/unknown.avsc", dir);
    CHECK_INT(lev_schemas_load_file(set, path, 0, &err), ==, LEV_ERR_SCHEMA);
    CHECK_STR(err.where, path);
    CHECK(strstr(err.text, "unknown type \"t.Nope\"") != NULL);
    snprintf(path, sizeof path, "%s/bad_default.avsc", dir);
    CHECK_INT(lev_schemas_load_file(set, path, 0, &err), ==, LEV_ERR_SCHEMA);
    CHECK_STR(err.where, path);
    CHECK(strstr(err.text, "default of field \"x\"") != NULL);
    snprintf(path, sizeof path, "%s/missing.avsc", dir);
    CHECK_INT(lev_schemas_load_file(set, path, 0, &err), ==, LEV_ERR_IO);
    CHECK_STR(err.where, path);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

static void top_level_schema_must_be_a_named_record(void)
{
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    const char *not_records[] = {"\"string\"", "[\"null\",\"int\"]",
                                 "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}",
                                 "{\"type\":\"array\",\"items\":\"int\"}"};
    for (size_t i = 0; i < 4; i++) {
        CHECK_INT(
            lev_schemas_add(set, not_records[i], strlen(not_records[i]), "x.avsc", 0, NULL, &err),
            ==, LEV_ERR_SCHEMA);
        CHECK(strstr(err.text, "must be a named record") != NULL);
        CHECK_STR(err.where, "x.avsc");
    }
    CHECK_INT(lev_schemas_count(set), ==, 0);
    lev_schemas_destroy(set);
}

static void duplicate_current_full_name_names_both_files(void)
{
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    write_file(dir, "a.avsc", REC("t.Same", "{\"name\":\"x\",\"type\":\"int\"}"));
    write_file(dir, "b.avsc", REC("t.Same", "{\"name\":\"x\",\"type\":\"long\"}"));
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    CHECK_INT(lev_schemas_load_dir(set, dir, 0, &err), ==, LEV_ERR_SCHEMA);
    CHECK(strstr(err.where, "b.avsc") != NULL);
    CHECK(strstr(err.text, "a.avsc") != NULL);
    CHECK_INT(lev_schemas_count(set), ==, 0);
    /* As writer-only versions both load. */
    CHECK_INT(lev_schemas_load_dir(set, dir, LEV_SCHEMA_WRITER_ONLY, &err), ==, 0);
    CHECK_INT(lev_schemas_count(set), ==, 2);
    CHECK(lev_schemas_find(set, "t.Same") == NULL);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

static void writer_only_versions_are_never_current(void)
{
    const char *old = REC("t.V", "{\"name\":\"x\",\"type\":\"int\"}");
    const char *cur = REC("t.V", "{\"name\":\"x\",\"type\":\"long\"}");
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    const lev_schema_t *o = NULL, *c = NULL, *again = NULL;
    CHECK_INT(lev_schemas_add(set, old, strlen(old), NULL, LEV_SCHEMA_WRITER_ONLY, &o, &err), ==,
              0);
    CHECK(lev_schemas_find(set, "t.V") == NULL);
    CHECK_INT(lev_schemas_add(set, cur, strlen(cur), NULL, 0, &c, &err), ==, 0);
    CHECK(lev_schemas_find(set, "t.V") == c);
    CHECK(!lev_schema_is_current(o));
    CHECK(lev_schemas_find_fingerprint(set, lev_schema_fingerprint(o)) == o);
    /* The same schema again (other spacing) is the one already loaded. */
    const char *cur2 =
        "{ \"type\" : \"record\", \"name\" : \"V\", \"namespace\" : \"t\", "
        "\"fields\" : [ { \"name\" : \"x\", \"type\" : \"long\", \"doc\": \"d\" } ] }";
    CHECK_INT(lev_schemas_add(set, cur2, strlen(cur2), NULL, 0, &again, &err), ==, 0);
    CHECK(again == c);
    CHECK_INT(lev_schemas_count(set), ==, 2);
    /* A writer-only version loaded again as current is promoted, unless the
     * name has a current version already. */
    CHECK_INT(lev_schemas_add(set, old, strlen(old), "old.avsc", 0, NULL, &err), ==,
              LEV_ERR_SCHEMA);
    CHECK(!lev_schema_is_current(o));
    lev_schemas_destroy(set);

    set = lev_schemas_new();
    CHECK_INT(lev_schemas_add(set, old, strlen(old), NULL, LEV_SCHEMA_WRITER_ONLY, &o, &err), ==,
              0);
    CHECK_INT(lev_schemas_add(set, old, strlen(old), NULL, 0, &again, &err), ==, 0);
    CHECK(again == o && lev_schema_is_current(o));
    lev_schemas_destroy(set);
}

static void load_path_skips_missing_dirs_and_loads_history_writer_only(void)
{
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    char hist[1024], path[2048];
    snprintf(hist, sizeof hist, "%s/history", dir);
    mkdir(hist, 0700);
    write_file(dir, "v.avsc", REC("t.V", "{\"name\":\"x\",\"type\":\"long\"}"));
    write_file(hist, "v1.avsc", REC("t.V", "{\"name\":\"x\",\"type\":\"int\"}"));
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    snprintf(path, sizeof path, "/nonexistent/lev-a:%s::/nonexistent/lev-b", dir);
    CHECK_INT(lev_schemas_load_path(set, path, &err), ==, 0);
    CHECK_INT(lev_schemas_count(set), ==, 2);
    const lev_schema_t *cur = lev_schemas_find(set, "t.V");
    REQUIRE(cur != NULL);
    CHECK(strstr(lev_schema_origin(cur), "history") == NULL);
    size_t writer_only = 0;
    for (size_t i = 0; i < lev_schemas_count(set); i++)
        writer_only += !lev_schema_is_current(lev_schemas_at(set, i));
    CHECK_INT(writer_only, ==, 1);
    lev_schemas_destroy(set);

    set = lev_schemas_new();
    CHECK_INT(lev_schemas_load_path(set, "/nonexistent/lev-a:/nonexistent/lev-b", &err), ==,
              LEV_ERR_IO);
    CHECK(strstr(err.text, "none of the schema directories") != NULL);
    CHECK_INT(lev_schemas_load_path(set, "", &err), ==, LEV_ERR_IO);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

static void schema_dirs_of_the_project_load(void)
{
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    if (!dirs || !*dirs) {
        fprintf(stderr, "LEV_SCHEMA_DIRS not set; nothing to check\n");
        return;
    }
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    int rc = lev_schemas_load_path(set, dirs, &err);
    if (rc) {
        char msg[1024];
        fprintf(stderr, "%s\n", lev_error_format(&err, msg, sizeof msg));
    }
    CHECK_INT(rc, ==, 0);
    lev_schemas_destroy(set);
}

/* ---- round trips --------------------------------------------------------- */

static const char *const sample_strings[] = {"",
                                             "a",
                                             "order-42",
                                             "caf\xc3\xa9",
                                             "\xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80",
                                             "quote \" backslash \\ newline \n"};

/* Fills a value with pseudo-random content; containers get shallower. */
static int fill(avro_value_t *v, int depth, unsigned *seed)
{
    avro_schema_t s = avro_value_get_schema(v);
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        return avro_value_set_null(v);
    case AVRO_BOOLEAN:
        return avro_value_set_boolean(v, rand_r(seed) & 1);
    case AVRO_INT32:
        return avro_value_set_int(v, (int32_t)(rand_r(seed) - RAND_MAX / 2));
    case AVRO_INT64:
        return avro_value_set_long(
            v, (int64_t)(((uint64_t)rand_r(seed) << 33) ^ (uint64_t)rand_r(seed)));
    case AVRO_FLOAT:
        return avro_value_set_float(v, (float)rand_r(seed) / 7.0f);
    case AVRO_DOUBLE:
        return avro_value_set_double(v, (double)rand_r(seed) / -3.0);
    case AVRO_STRING:
        return avro_value_set_string(
            v, sample_strings[rand_r(seed) % (sizeof sample_strings / sizeof *sample_strings)]);
    case AVRO_BYTES: {
        uint8_t b[8];
        size_t n = (size_t)rand_r(seed) % sizeof b;
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)rand_r(seed);
        return avro_value_set_bytes(v, b, n);
    }
    case AVRO_FIXED: {
        size_t n = (size_t)avro_schema_fixed_size(s);
        uint8_t *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)rand_r(seed);
        int rc = avro_value_set_fixed(v, b, n);
        free(b);
        return rc;
    }
    case AVRO_ENUM:
        return avro_value_set_enum(v, rand_r(seed) % avro_schema_enum_number_of_symbols(s));
    case AVRO_ARRAY:
    case AVRO_MAP: {
        int n = depth > 3 ? 0 : rand_r(seed) % 3;
        for (int i = 0; i < n; i++) {
            avro_value_t e;
            char key[16];
            snprintf(key, sizeof key, "k%d", i);
            int rc = avro_value_get_type(v) == AVRO_ARRAY ? avro_value_append(v, &e, NULL)
                                                          : avro_value_add(v, key, &e, NULL, NULL);
            if (rc || (rc = fill(&e, depth + 1, seed)) != 0)
                return rc;
        }
        return 0;
    }
    case AVRO_RECORD: {
        size_t n = 0;
        avro_value_get_size(v, &n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t f;
            int rc = avro_value_get_by_index(v, i, &f, NULL);
            if (rc || (rc = fill(&f, depth + 1, seed)) != 0)
                return rc;
        }
        return 0;
    }
    case AVRO_UNION: {
        int n = (int)avro_schema_union_size(s);
        int pick = rand_r(seed) % n;
        if (depth > 3) /* prefer null deep down (recursive types) */
            for (int i = 0; i < n; i++)
                if (is_avro_null(avro_schema_union_branch(s, i)))
                    pick = i;
        avro_value_t b;
        int rc = avro_value_set_branch(v, pick, &b);
        return rc ? rc : fill(&b, depth + 1, seed);
    }
    default:
        return -1;
    }
}

/* value -> bytes -> value, and value -> JSON -> value -> the same bytes. */
/* Whether buf (a framed value lev_codec_encode made) holds the body
 * avro-c's own writer makes of v: the encoder writes values in one walk of
 * its own, and must give avro_value_write's bytes. */
static int body_is_avro_cs(const void *buf, size_t len, avro_value_t *v)
{
    lev_frame_t f;
    lev_error_t err;
    size_t size = 0;
    if (lev_codec_peek_frame(buf, len, &f, &err) != 0 || avro_value_sizeof(v, &size) != 0 ||
        size != len - f.header)
        return 0;
    char *want = malloc(size ? size : 1);
    avro_writer_t w = avro_writer_memory(want, (int64_t)size);
    int same = want && w && avro_value_write(w, v) == 0 &&
               memcmp(want, (const char *)buf + f.header, size) == 0;
    if (w)
        avro_writer_free(w);
    free(want);
    return same;
}

static void round_trip_schema(lev_codec_t *codec, const lev_schema_t *s, int samples)
{
    for (int k = 0; k < samples; k++) {
        unsigned seed = (unsigned)(k * 7919 + 1);
        avro_value_t v;
        lev_error_t err;
        REQUIRE(lev_codec_new_value(codec, s, &v) == 0);
        REQUIRE(fill(&v, 0, &seed) == 0);
        void *buf = NULL, *buf2 = NULL;
        size_t len = 0, len2 = 0;
        int rc = lev_codec_encode(codec, s, &v, &buf, &len, &err);
        if (rc)
            fprintf(stderr, "%s: encode: %s %s\n", lev_schema_name(s), err.where, err.text);
        CHECK_INT(rc, ==, 0);
        CHECK(rc != 0 || body_is_avro_cs(buf, len, &v));
        json_t *want = lev_codec_to_json(&v, &err);
        CHECK(want != NULL);
        avro_value_t back;
        const lev_schema_t *writer = NULL;
        rc = lev_codec_decode(codec, buf, len, NULL, &back, &writer, &err);
        if (rc)
            fprintf(stderr, "%s: decode: %s %s\n", lev_schema_name(s), err.where, err.text);
        CHECK_INT(rc, ==, 0);
        if (rc == 0) {
            CHECK(writer == s);
            CHECK(avro_value_equal(&v, &back));
            json_t *got = lev_codec_to_json(&back, &err);
            CHECK(json_equal(want, got));
            json_decref(got);
            avro_value_decref(&back);
        }
        avro_value_t fromj;
        rc = lev_codec_from_json(codec, s, want, &fromj, &err);
        if (rc)
            fprintf(stderr, "%s: from_json: %s %s\n", lev_schema_name(s), err.where, err.text);
        CHECK_INT(rc, ==, 0);
        if (rc == 0) {
            CHECK_INT(lev_codec_encode(codec, s, &fromj, &buf2, &len2, &err), ==, 0);
            CHECK(len2 == len && buf2 && memcmp(buf, buf2, len) == 0);
            avro_value_decref(&fromj);
        }
        free(buf);
        free(buf2);
        json_decref(want);
        avro_value_decref(&v);
    }
}

static void round_trip_every_test_schema(void)
{
    char dir[1024];
    data_path(dir, sizeof dir, "avro");
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    REQUIRE(lev_schemas_load_dir(set, dir, 0, &err) == 0);
    CHECK_INT(lev_schemas_count(set), >=, 5);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    for (size_t i = 0; i < lev_schemas_count(set); i++)
        round_trip_schema(codec, lev_schemas_at(set, i), 20);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void round_trip_every_schema_of_schema_dirs(void)
{
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    if (!dirs || !*dirs)
        return;
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    if (lev_schemas_load_path(set, dirs, &err) != 0) {
        lev_schemas_destroy(set);
        return; /* schema_dirs_of_the_project_load reports it */
    }
    fprintf(stderr, "%zu schemas in %s\n", lev_schemas_count(set), dirs);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    for (size_t i = 0; i < lev_schemas_count(set); i++)
        round_trip_schema(codec, lev_schemas_at(set, i), 20);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void encoded_value_is_single_object_framed(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *text = REC("t.F", "{\"name\":\"a\",\"type\":\"int\"}");
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    size_t len = 0;
    uint8_t *buf = encode_json(codec, s, "{\"a\":-2}", &len);
    REQUIRE(buf != NULL);
    CHECK_INT(len, ==, 11);
    CHECK_INT(buf[0], ==, 0xc3);
    CHECK_INT(buf[1], ==, 0x01);
    uint64_t fp = lev_schema_fingerprint(s);
    for (int i = 0; i < 8; i++)
        CHECK_INT(buf[2 + i], ==, (fp >> (8 * i)) & 0xff);
    CHECK(fp == lev_avro_fingerprint64(lev_schema_canonical(s), strlen(lev_schema_canonical(s))));
    CHECK_INT(buf[10], ==, 0x03);
    free(buf);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* ---- encode refusals ------------------------------------------------------ */

static void encode_refuses_values_decoders_would_refuse(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *text =
        REC("t.Bad", "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":"
                     "[\"A\",\"B\"]}},{\"name\":\"s\",\"type\":\"string\"},"
                     "{\"name\":\"u\",\"type\":[\"null\",\"int\"]}");
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    avro_value_t v, f;
    void *buf = NULL;
    size_t len;
    REQUIRE(lev_codec_new_value(codec, s, &v) == 0);
    /* A union with no branch selected. */
    CHECK_INT(lev_codec_encode(codec, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK(buf == NULL);
    CHECK_INT(lev_value_set_null(&v, "u"), ==, 0);
    CHECK_INT(lev_codec_encode(codec, s, &v, &buf, &len, &err), ==, 0);
    free(buf);
    buf = NULL;
    /* An enum ordinal out of range (avro-c accepts setting it). */
    avro_value_get_by_name(&v, "e", &f, NULL);
    avro_value_set_enum(&f, 7);
    CHECK_INT(lev_codec_encode(codec, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK_STR(err.where, "e");
    avro_value_set_enum(&f, 1);
    /* A string that is not UTF-8. */
    CHECK_INT(lev_value_set_string(&v, "s", "bad \xff byte"), ==, 0);
    CHECK_INT(lev_codec_encode(codec, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK_STR(err.where, "s");
    CHECK(strstr(err.text, "UTF-8") != NULL);
    avro_value_decref(&v);
    /* A value of another schema. */
    const char *other = REC("t.Other", "{\"name\":\"x\",\"type\":\"int\"}");
    const lev_schema_t *o = NULL;
    REQUIRE(lev_schemas_add(set, other, strlen(other), NULL, 0, &o, &err) == 0);
    REQUIRE(lev_codec_new_value(codec, o, &v) == 0);
    CHECK_INT(lev_codec_encode(codec, s, &v, &buf, &len, &err), ==, LEV_ERR_ARG);
    avro_value_decref(&v);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* The encoder checks the codec's limits in the walk that writes the bytes;
 * past one, it refuses the value as the decoders would, naming the field. */
static void encode_refuses_values_past_the_codecs_limits(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *text = REC("t.Limited", "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":"
                                        "\"int\"}},{\"name\":\"s\",\"type\":\"string\"},"
                                        "{\"name\":\"next\",\"type\":[\"null\",\"t.Limited\"]}");
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) == 0);
    lev_codec_limits_t lim = {0};
    lim.max_items = 3;
    lim.max_bytes_len = 3;
    lev_codec_t *small = lev_codec_new(set, &lim), *dflt = lev_codec_new(set, NULL);
    avro_value_t v, a, item, next, node;
    void *buf = NULL;
    size_t len = 0;
    REQUIRE(lev_codec_new_value(small, s, &v) == 0);
    avro_value_get_by_name(&v, "a", &a, NULL);
    for (int i = 0; i < 3; i++) {
        avro_value_append(&a, &item, NULL);
        avro_value_set_int(&item, i);
    }
    CHECK_INT(lev_value_set_string(&v, "s", "abc"), ==, 0);
    CHECK_INT(lev_value_set_null(&v, "next"), ==, 0);
    CHECK_INT(lev_codec_encode(small, s, &v, &buf, &len, &err), ==, 0); /* at each limit */
    CHECK(buf && body_is_avro_cs(buf, len, &v));
    free(buf);
    buf = NULL;
    avro_value_append(&a, &item, NULL); /* a fourth item */
    avro_value_set_int(&item, 3);
    CHECK_INT(lev_codec_encode(small, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK(buf == NULL);
    CHECK_STR(err.where, "a");
    CHECK(strstr(err.text, "exceed the limit of 3") != NULL);
    CHECK_INT(lev_codec_encode(dflt, s, &v, &buf, &len, &err), ==, 0);
    free(buf);
    buf = NULL;
    avro_value_reset(&a);
    CHECK_INT(lev_value_set_string(&v, "s", "abcd"), ==, 0); /* a string one byte too long */
    CHECK_INT(lev_codec_encode(small, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK_STR(err.where, "s");
    CHECK(strstr(err.text, "exceeds the limit of 3") != NULL);
    CHECK_INT(lev_value_set_string(&v, "s", ""), ==, 0);
    /* 40 nodes, each a record in a union: 80 levels, past the default 64 */
    avro_value_t at = v;
    for (int i = 0; i < 40; i++) {
        avro_value_get_by_name(&at, "next", &next, NULL);
        avro_value_set_branch(&next, 1, &node);
        avro_value_get_by_name(&node, "s", &item, NULL);
        avro_value_set_string(&item, "");
        at = node;
    }
    avro_value_get_by_name(&at, "next", &next, NULL);
    avro_value_set_branch(&next, 0, &node);
    avro_value_set_null(&node);
    CHECK_INT(lev_codec_encode(dflt, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK(strstr(err.text, "deeper than 64") != NULL);
    avro_value_decref(&v);
    lev_codec_destroy(small);
    lev_codec_destroy(dflt);
    lev_schemas_destroy(set);
}

static void encode_refuses_values_over_the_size_limit(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *text = REC("t.Big", "{\"name\":\"b\",\"type\":\"bytes\"}");
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) == 0);
    lev_codec_limits_t lim;
    lev_codec_limits_default(&lim);
    CHECK_INT(lim.max_value_size, ==, 1024 * 1024);
    CHECK_INT(lim.max_bytes_len, ==, 1024 * 1024);
    CHECK_INT(lim.max_items, ==, 100000);
    CHECK_INT(lim.max_depth, ==, 64);
    lim.max_value_size = 100;
    lev_codec_t *codec = lev_codec_new(set, &lim);
    avro_value_t v, f;
    REQUIRE(lev_codec_new_value(codec, s, &v) == 0);
    avro_value_get_by_index(&v, 0, &f, NULL);
    char big[200] = {0};
    avro_value_set_bytes(&f, big, sizeof big);
    void *buf = NULL;
    size_t len;
    CHECK_INT(lev_codec_encode(codec, s, &v, &buf, &len, &err), ==, LEV_ERR_ENCODE);
    CHECK(strstr(err.text, "limit") != NULL);
    avro_value_decref(&v);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* ---- evolution ------------------------------------------------------------ */

/* A set with the reader version of an evolution case as the current one
 * and the writer version as writer-only. */
static lev_schemas_t *evolution_set(const char *rule, const char *writer_file,
                                    const char *reader_file, const lev_schema_t **w,
                                    const lev_schema_t **r)
{
    char path[1024];
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    snprintf(path, sizeof path, "%s/avro/evolution/%s/%s", data_dir(), rule, reader_file);
    if (lev_schemas_load_file(set, path, 0, &err) != 0)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
    snprintf(path, sizeof path, "%s/avro/evolution/%s/%s", data_dir(), rule, writer_file);
    if (lev_schemas_load_file(set, path, LEV_SCHEMA_WRITER_ONLY, &err) != 0)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
    *r = lev_schemas_at(set, 0);
    *w = lev_schemas_at(set, 1);
    return set;
}

/* Writes `in` with the writer version, reads it with the current version:
 * returns the JSON text, or NULL with *rc. */
static char *evolve(const char *rule, const char *writer_file, const char *reader_file,
                    const char *in, int *rc, lev_error_t *err)
{
    const lev_schema_t *w, *r;
    lev_schemas_t *set = evolution_set(rule, writer_file, reader_file, &w, &r);
    char *out = NULL;
    *rc = -100;
    if (w && r) {
        lev_codec_t *codec = lev_codec_new(set, NULL);
        size_t len;
        void *buf = encode_json(codec, w, in, &len);
        if (buf) {
            out = decode_json(codec, buf, len, NULL, rc, err);
            /* Again, through the codec's cached resolution. */
            int rc2;
            char *out2 = decode_json(codec, buf, len, r, &rc2, err);
            CHECK_INT(rc2, ==, *rc);
            CHECK(out == out2 || (out && out2 && strcmp(out, out2) == 0));
            free(out2);
        }
        free(buf);
        lev_codec_destroy(codec);
    }
    lev_schemas_destroy(set);
    return out;
}

static void evolution_added_field_takes_the_reader_default(void)
{
    int rc;
    lev_error_t err;
    char *out = evolve("added_field", "old.avsc", "new.avsc",
                       "{\"id\":\"o-1\",\"items\":[{\"sku\":\"a\"},{\"sku\":\"b\"}]}", &rc, &err);
    if (rc)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"id\":\"o-1\",\"note\":\"none\",\"items\":[{\"sku\":\"a\",\"quantity\":1},"
                   "{\"sku\":\"b\",\"quantity\":1}],\"email\":null,\"tags\":[\"new\"],"
                   "\"origin\":{\"system\":\"legacy\",\"version\":2}}");
    free(out);
}

static void evolution_removed_field_is_ignored(void)
{
    int rc;
    lev_error_t err;
    char *out = evolve("removed_field", "old.avsc", "new.avsc",
                       "{\"id\":\"o-2\",\"legacy\":{\"a\":[\"x\",\"y\"]},\"qty\":3,"
                       "\"gone\":{\"test.evo.Gone\":{\"x\":\"\\u00ff\"}}}",
                       &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"id\":\"o-2\",\"qty\":3}");
    free(out);
}

static void evolution_numbers_are_promoted(void)
{
    int rc;
    lev_error_t err;
    char *out = evolve("promotion", "old.avsc", "new.avsc",
                       "{\"count\":2147483647,\"ratio\":0.5,\"big\":9007199254740993,"
                       "\"small\":-3,\"maybe\":{\"int\":-7}}",
                       &rc, &err);
    if (rc)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"count\":2147483647,\"ratio\":0.5,\"big\":9007199254740992.0,"
                   "\"small\":-3.0,\"maybe\":{\"long\":-7}}");
    free(out);
}

static void evolution_enum_symbol_added_at_the_end_reads_old_values(void)
{
    int rc;
    lev_error_t err;
    char *out =
        evolve("enum_added_symbol", "old.avsc", "new.avsc", "{\"status\":\"PAID\"}", &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"status\":\"PAID\"}");
    free(out);
    /* New writer, old reader: known symbols read, the new one cannot. */
    out = evolve("enum_added_symbol", "new.avsc", "old.avsc", "{\"status\":\"NEW\"}", &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"status\":\"NEW\"}");
    free(out);
    out =
        evolve("enum_added_symbol", "new.avsc", "old.avsc", "{\"status\":\"SHIPPED\"}", &rc, &err);
    CHECK_INT(rc, ==, LEV_ERR_RESOLVE);
    CHECK(out == NULL);
    CHECK(strstr(err.text, "SHIPPED") != NULL);
    CHECK_STR(err.where, "status");
    free(out);
}

static void evolution_unknown_enum_symbol_takes_the_reader_enum_default(void)
{
    int rc;
    lev_error_t err;
    char *out =
        evolve("enum_default", "new.avsc", "old.avsc", "{\"state\":\"SHIPPED\"}", &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"state\":\"UNKNOWN\"}");
    free(out);
    out = evolve("enum_default", "new.avsc", "old.avsc", "{\"state\":\"PAID\"}", &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"state\":\"PAID\"}");
    free(out);
}

static void evolution_reordered_enum_symbols_map_by_name(void)
{
    const char *syms[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) {
        char in[64], want[64];
        snprintf(in, sizeof in, "{\"grade\":\"%s\"}", syms[i]);
        snprintf(want, sizeof want, "{\"grade\":\"%s\"}", syms[i]);
        int rc;
        lev_error_t err;
        char *out = evolve("enum_reordered", "old.avsc", "new.avsc", in, &rc, &err);
        CHECK_INT(rc, ==, 0);
        CHECK_STR(out, want);
        free(out);
        out = evolve("enum_reordered", "new.avsc", "old.avsc", in, &rc, &err);
        CHECK_INT(rc, ==, 0);
        CHECK_STR(out, want);
        free(out);
    }
}

static void evolution_incompatible_type_is_a_resolve_error(void)
{
    int rc;
    lev_error_t err;
    char *out = evolve("incompatible_type", "old.avsc", "new.avsc", "{\"id\":\"x\"}", &rc, &err);
    CHECK_INT(rc, ==, LEV_ERR_RESOLVE);
    CHECK(out == NULL);
    free(out);
}

static void evolution_reader_field_without_default_is_a_resolve_error(void)
{
    int rc;
    lev_error_t err;
    char *out =
        evolve("added_field_no_default", "old.avsc", "new.avsc", "{\"id\":\"x\"}", &rc, &err);
    CHECK_INT(rc, ==, LEV_ERR_RESOLVE);
    CHECK(strstr(err.text, "required") != NULL);
    free(out);
    /* The other way round the extra writer field is simply skipped. */
    out = evolve("added_field_no_default", "new.avsc", "old.avsc",
                 "{\"id\":\"x\",\"required\":\"r\"}", &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"id\":\"x\"}");
    free(out);
}

static void decode_with_an_unrelated_reader_is_a_resolve_error(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *a = REC("t.A", "{\"name\":\"x\",\"type\":\"int\"}");
    const char *b = REC("t.B", "{\"name\":\"x\",\"type\":\"int\"}");
    const lev_schema_t *sa = NULL, *sb = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, a, strlen(a), NULL, 0, &sa, &err) == 0);
    REQUIRE(lev_schemas_add(set, b, strlen(b), NULL, 0, &sb, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    size_t len;
    void *buf = encode_json(codec, sa, "{\"x\":1}", &len);
    int rc;
    char *out = decode_json(codec, buf, len, sb, &rc, &err);
    CHECK_INT(rc, ==, LEV_ERR_RESOLVE);
    CHECK(out == NULL);
    out = decode_json(codec, buf, len, sa, &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"x\":1}");
    free(out);
    free(buf);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* The history/ version of a schema whose array items cannot be read as the
 * current ones (q: long now int): avro-c 1.11.1's resolver crashes on such a
 * pair, so decode must refuse it, for every value, before avro-c sees it. */
static void decode_of_a_history_version_unresolvable_inside_an_array_is_a_resolve_error(void)
{
    static const char fmt[] =
        "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[{\"name\":\"items\","
        "\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"I\",\"fields\":["
        "{\"name\":\"q\",\"type\":\"%s\"}]}}}]}";
    char cur[512], old[512], hist[1024];
    snprintf(cur, sizeof cur, fmt, "int");
    snprintf(old, sizeof old, fmt, "long");
    const char *dir = make_tmpdir();
    REQUIRE(dir != NULL);
    snprintf(hist, sizeof hist, "%s/history", dir);
    mkdir(hist, 0700);
    write_file(dir, "r.avsc", cur);
    write_file(hist, "r1.avsc", old);
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    REQUIRE(lev_schemas_load_path(set, dir, &err) == 0);
    const lev_schema_t *w = NULL;
    for (size_t i = 0; i < lev_schemas_count(set); i++)
        if (!lev_schema_is_current(lev_schemas_at(set, i)))
            w = lev_schemas_at(set, i);
    REQUIRE(w != NULL);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    const char *values[] = {"{\"items\":[{\"q\":5}]}", "{\"items\":[]}"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        void *buf = encode_json(codec, w, values[i], &len);
        REQUIRE(buf != NULL);
        for (int pass = 0; pass < 2; pass++) { /* the verdict is cached */
            int rc;
            char *out = decode_json(codec, buf, len, NULL, &rc, &err);
            CHECK_INT(rc, ==, LEV_ERR_RESOLVE);
            CHECK(out == NULL);
            CHECK_STR(err.where, "items[].q");
            CHECK(strstr(err.text, "long cannot be read as int") != NULL);
            free(out);
        }
        free(buf);
    }
    /* the current version itself still decodes */
    size_t len;
    void *buf = encode_json(codec, lev_schemas_find(set, "t.R"), values[0], &len);
    int rc;
    char *out = decode_json(codec, buf, len, NULL, &rc, &err);
    CHECK_INT(rc, ==, 0);
    CHECK_STR(out, "{\"items\":[{\"q\":5}]}");
    free(out);
    free(buf);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
    remove_tree(dir);
}

/* ---- field helpers --------------------------------------------------------- */

/* The helpers find a field by its record schema and name, whatever other
 * schemas came before: the same names at other places in other records,
 * names that are prefixes of each other, more schemas than the helpers
 * remember, and schemas freed while others are made. Each value is read
 * back through avro-c's own lookup by name. */
static int int_by_avro_name(const avro_value_t *v, const char *name)
{
    avro_value_t f;
    int32_t x = -1;
    if (avro_value_get_by_name(v, name, &f, NULL) != 0 || avro_value_get_int(&f, &x) != 0)
        return -1;
    return x;
}

static void value_helpers_find_fields_of_many_schemas_in_turn(void)
{
    static const char *const names[] = {"a", "ab", "b", "abc"};
    enum { NAMES = 4, KEPT = 2, ROUNDS = 600 };
    lev_schemas_t *sets[KEPT] = {0};
    lev_codec_t *codecs[KEPT] = {0};
    avro_value_t vals[KEPT];
    int fails = 0;
    for (int k = 0; k < ROUNDS && fails == 0; k++) {
        int slot = k % KEPT;
        if (sets[slot]) { /* the oldest schema goes while the other stays */
            avro_value_decref(&vals[slot]);
            lev_codec_destroy(codecs[slot]);
            lev_schemas_destroy(sets[slot]);
        }
        /* a record of the four int fields, rotated by k */
        char text[512];
        int at =
            snprintf(text, sizeof text, "{\"type\":\"record\",\"name\":\"t.M%d\",\"fields\":[", k);
        for (int i = 0; i < NAMES; i++)
            at += snprintf(text + at, sizeof text - (size_t)at,
                           "%s{\"name\":\"%s\",\"type\":\"int\"}", i ? "," : "",
                           names[(i + k) % NAMES]);
        snprintf(text + at, sizeof text - (size_t)at, "]}");
        const lev_schema_t *s = NULL;
        lev_error_t err;
        sets[slot] = lev_schemas_new();
        REQUIRE(lev_schemas_add(sets[slot], text, strlen(text), NULL, 0, &s, &err) == 0);
        codecs[slot] = lev_codec_new(sets[slot], NULL);
        REQUIRE(lev_codec_new_value(codecs[slot], s, &vals[slot]) == 0);
        for (int i = 0; i < NAMES; i++)
            fails += lev_value_set_int(&vals[slot], names[i], k * 10 + i) != 0;
        /* both live values, read back both ways */
        for (int j = 0; j < KEPT && j <= k; j++) {
            int kj = k - ((slot - j + KEPT) % KEPT);
            for (int i = 0; i < NAMES; i++) {
                int32_t x = -1;
                fails += lev_value_get_int(&vals[j], names[i], &x) != 0 || x != kj * 10 + i;
                fails += int_by_avro_name(&vals[j], names[i]) != kj * 10 + i;
            }
            int32_t x;
            fails += lev_value_get_int(&vals[j], "abcd", &x) != LEV_ERR_NOT_FOUND;
            fails += lev_value_get_int(&vals[j], "A", &x) != LEV_ERR_NOT_FOUND;
            fails += lev_value_get_int(&vals[j], "a.b", &x) != LEV_ERR_ARG;
        }
        if (fails)
            fprintf(stderr, "    round %d: %d wrong answers\n", k, fails);
    }
    CHECK_INT(fails, ==, 0);
    for (int j = 0; j < KEPT; j++) {
        if (!sets[j])
            continue;
        avro_value_decref(&vals[j]);
        lev_codec_destroy(codecs[j]);
        lev_schemas_destroy(sets[j]);
    }
}

static void value_helpers_follow_paths_and_unions(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *text =
        REC("t.H", "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"int\"},"
                   "{\"name\":\"total\",\"type\":\"long\"},{\"name\":\"ok\",\"type\":\"boolean\"},"
                   "{\"name\":\"email\",\"type\":[\"null\",\"string\"]},"
                   "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"K\",\"symbols\":"
                   "[\"A\",\"B\"]}},"
                   "{\"name\":\"customer\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"C\","
                   "\"fields\":[{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"age\",\"type\":"
                   "[\"null\",\"int\"]}]}]}");
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    avro_value_t v;
    REQUIRE(lev_codec_new_value(codec, s, &v) == 0);
    CHECK_INT(lev_value_set_string(&v, "id", "o-9"), ==, 0);
    CHECK_INT(lev_value_set_int(&v, "n", 5), ==, 0);
    CHECK_INT(lev_value_set_long(&v, "total", 1LL << 40), ==, 0);
    CHECK_INT(lev_value_set_int(&v, "total", 12), ==, 0); /* int into long */
    CHECK_INT(lev_value_set_long(&v, "n", 1), ==, LEV_ERR_ARG);
    CHECK_INT(lev_value_set_enum(&v, "kind", "B"), ==, 0);
    CHECK_INT(lev_value_set_enum(&v, "kind", "Z"), ==, LEV_ERR_ARG);
    CHECK_INT(lev_value_set_null(&v, "email"), ==, 0);
    CHECK_INT(lev_value_set_string(&v, "customer.id", "c-1"), ==, 0);
    CHECK_INT(lev_value_set_null(&v, "customer.age"), ==, 0);
    CHECK_INT(lev_value_set_string(&v, "nope", "x"), ==, LEV_ERR_NOT_FOUND);
    CHECK_INT(lev_value_set_string(&v, "n", "x"), ==, LEV_ERR_ARG);
    CHECK_INT(lev_value_set_null(&v, "id"), ==, LEV_ERR_ARG);

    const char *str = NULL;
    size_t len = 0;
    int32_t i32 = 0;
    int64_t i64 = 0;
    int b = -1;
    CHECK_INT(lev_value_get_string(&v, "id", &str, &len), ==, 0);
    CHECK_STR(str, "o-9");
    CHECK_INT(len, ==, 3);
    CHECK_INT(lev_value_get_int(&v, "n", &i32), ==, 0);
    CHECK_INT(i32, ==, 5);
    CHECK_INT(lev_value_get_long(&v, "n", &i64), ==, 0); /* long reads int */
    CHECK_INT(i64, ==, 5);
    CHECK_INT(lev_value_get_long(&v, "total", &i64), ==, 0);
    CHECK_INT(i64, ==, 12);
    CHECK_INT(lev_value_get_int(&v, "total", &i32), ==, LEV_ERR_ARG);
    CHECK_INT(lev_value_get_bool(&v, "ok", &b), ==, 0);
    CHECK_INT(b, ==, 0);
    CHECK_INT(lev_value_get_string(&v, "email", &str, &len), ==, LEV_ERR_NOT_FOUND);
    CHECK_INT(lev_value_set_string(&v, "email", "a@b.c"), ==, 0);
    CHECK_INT(lev_value_get_string(&v, "email", &str, &len), ==, 0);
    CHECK_STR(str, "a@b.c");
    CHECK_INT(lev_value_get_string(&v, "customer.id", &str, &len), ==, 0);
    CHECK_STR(str, "c-1");
    CHECK_INT(lev_value_get_int(&v, "customer.age", &i32), ==, LEV_ERR_NOT_FOUND);
    CHECK_INT(lev_value_set_int(&v, "customer.age", 42), ==, 0);
    CHECK_INT(lev_value_get_int(&v, "customer.age", &i32), ==, 0);
    CHECK_INT(i32, ==, 42);
    avro_value_t field;
    CHECK_INT(lev_value_get_field(&v, "customer", &field), ==, 0);
    CHECK_INT(avro_value_get_type(&field), ==, AVRO_RECORD);
    CHECK_INT(lev_value_get_string(&v, "customer.nope", &str, &len), ==, LEV_ERR_NOT_FOUND);
    CHECK_INT(lev_value_get_string(&v, "id.deeper", &str, &len), ==, LEV_ERR_ARG);
    CHECK_INT(lev_value_get_string(&v, "", &str, &len), ==, LEV_ERR_ARG);
    CHECK_INT(lev_value_get_string(&v, "customer..id", &str, &len), ==, LEV_ERR_ARG);
    /* A null customer: paths through it are not found. */
    CHECK_INT(lev_value_set_null(&v, "customer"), ==, 0);
    CHECK_INT(lev_value_get_string(&v, "customer.id", &str, &len), ==, LEV_ERR_NOT_FOUND);
    CHECK_INT(lev_value_set_string(&v, "customer.id", "c-2"), ==, 0); /* switches it back */
    CHECK_INT(lev_value_get_string(&v, "customer.id", &str, &len), ==, 0);
    CHECK_STR(str, "c-2");
    avro_value_decref(&v);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* The calls that only read a value take it const, so a handler passes its
 * event's value (const lev_event_t *ev) as it is, without a cast. Checked
 * when this file compiles, whatever the warning flags: */
#define TAKES(fn, type) _Generic(&(fn), type : 1, default : 0)
_Static_assert(TAKES(lev_value_get_string,
                     int (*)(const avro_value_t *, const char *, const char **, size_t *)),
               "lev_value_get_string takes a const value");
_Static_assert(TAKES(lev_value_get_long, int (*)(const avro_value_t *, const char *, int64_t *)),
               "lev_value_get_long takes a const value");
_Static_assert(TAKES(lev_value_get_int, int (*)(const avro_value_t *, const char *, int32_t *)),
               "lev_value_get_int takes a const value");
_Static_assert(TAKES(lev_value_get_bool, int (*)(const avro_value_t *, const char *, int *)),
               "lev_value_get_bool takes a const value");
_Static_assert(TAKES(lev_value_get_field,
                     int (*)(const avro_value_t *, const char *, avro_value_t *)),
               "lev_value_get_field takes a const value");
_Static_assert(TAKES(lev_codec_to_json, json_t *(*)(const avro_value_t *, lev_error_t *)),
               "lev_codec_to_json takes a const value");
_Static_assert(TAKES(lev_codec_encode,
                     int (*)(lev_codec_t *, const lev_schema_t *, const avro_value_t *, void **,
                             size_t *, lev_error_t *)),
               "lev_codec_encode takes a const value");
_Static_assert(TAKES(lev_ctx_emit, int (*)(lev_ctx_t *, const char *, const char *,
                                           const avro_value_t *, lev_error_t *)),
               "lev_ctx_emit takes a const value");
_Static_assert(TAKES(lev_producer_send_event,
                     int (*)(lev_producer_t *, lev_codec_t *, const char *, const char *,
                             const lev_schema_t *, const avro_value_t *, const lev_event_meta_t *,
                             lev_delivery_cb, void *, lev_error_t *)),
               "lev_producer_send_event takes a const value");

/* ...and they read it as the non-const calls would. */
static void read_calls_take_a_handlers_event_value_as_it_is(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *text =
        REC("t.R", "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"int\"},"
                   "{\"name\":\"total\",\"type\":\"long\"},{\"name\":\"ok\",\"type\":\"boolean\"}");
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    avro_value_t v;
    REQUIRE(lev_codec_new_value(codec, s, &v) == 0);
    CHECK_INT(lev_value_set_string(&v, "id", "o-1"), ==, 0);
    CHECK_INT(lev_value_set_int(&v, "n", 7), ==, 0);
    CHECK_INT(lev_value_set_long(&v, "total", 1234), ==, 0);
    const lev_event_t event = {.type = "t.R", .value = v}, *ev = &event;

    const char *str = NULL;
    size_t len = 0;
    int32_t i32 = 0;
    int64_t i64 = 0;
    int b = -1;
    avro_value_t field;
    CHECK_INT(lev_value_get_string(&ev->value, "id", &str, &len), ==, 0);
    CHECK_STR(str, "o-1");
    CHECK_INT(lev_value_get_int(&ev->value, "n", &i32), ==, 0);
    CHECK_INT(i32, ==, 7);
    CHECK_INT(lev_value_get_long(&ev->value, "total", &i64), ==, 0);
    CHECK_INT(i64, ==, 1234);
    CHECK_INT(lev_value_get_bool(&ev->value, "ok", &b), ==, 0);
    CHECK_INT(b, ==, 0);
    CHECK_INT(lev_value_get_field(&ev->value, "id", &field), ==, 0);
    CHECK_INT(avro_value_get_type(&field), ==, AVRO_STRING);
    json_t *j = lev_codec_to_json(&ev->value, &err);
    char *dump = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    CHECK_STR(dump, "{\"id\":\"o-1\",\"n\":7,\"ok\":false,\"total\":1234}");
    free(dump);
    json_decref(j);
    void *buf = NULL;
    size_t blen = 0;
    CHECK_INT(lev_codec_encode(codec, s, &ev->value, &buf, &blen, &err), ==, 0);
    avro_value_t back;
    if (buf && lev_codec_decode(codec, buf, blen, NULL, &back, NULL, &err) == 0) {
        CHECK(avro_value_equal(&v, &back));
        avro_value_decref(&back);
    } else {
        CHECK(!"the encoded value decodes");
    }
    free(buf);
    avro_value_decref(&v);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

CHECK_MAIN(CASE(load_dir_loads_every_avsc_in_name_order),
           CASE(malformed_json_error_names_the_file_line_and_column),
           CASE(schema_avro_c_refuses_is_an_error_naming_the_file),
           CASE(schema_errors_name_the_file), CASE(top_level_schema_must_be_a_named_record),
           CASE(duplicate_current_full_name_names_both_files),
           CASE(writer_only_versions_are_never_current),
           CASE(load_path_skips_missing_dirs_and_loads_history_writer_only),
           CASE(schema_dirs_of_the_project_load), CASE(round_trip_every_test_schema),
           CASE(round_trip_every_schema_of_schema_dirs),
           CASE(encoded_value_is_single_object_framed),
           CASE(encode_refuses_values_decoders_would_refuse),
           CASE(encode_refuses_values_past_the_codecs_limits),
           CASE(encode_refuses_values_over_the_size_limit),
           CASE(evolution_added_field_takes_the_reader_default),
           CASE(evolution_removed_field_is_ignored), CASE(evolution_numbers_are_promoted),
           CASE(evolution_enum_symbol_added_at_the_end_reads_old_values),
           CASE(evolution_unknown_enum_symbol_takes_the_reader_enum_default),
           CASE(evolution_reordered_enum_symbols_map_by_name),
           CASE(evolution_incompatible_type_is_a_resolve_error),
           CASE(evolution_reader_field_without_default_is_a_resolve_error),
           CASE(decode_with_an_unrelated_reader_is_a_resolve_error),
           CASE(decode_of_a_history_version_unresolvable_inside_an_array_is_a_resolve_error),
           CASE(value_helpers_follow_paths_and_unions),
           CASE(value_helpers_find_fields_of_many_schemas_in_turn),
           CASE(read_calls_take_a_handlers_event_value_as_it_is))
