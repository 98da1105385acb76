/*
 * The Avro JSON encoding: JSON to value and back, defaults for missing
 * fields, errors that name the field path and say what was expected and
 * found, unions, bytes and fixed as ISO-8859-1 strings, logical types.
 */
#include "check.h"

#include <libevents.h>

static lev_schemas_t *set;
static lev_codec_t *codec;

static void teardown(void)
{
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
    codec = NULL;
    set = NULL;
}

static void setup(void)
{
    if (!set) {
        set = lev_schemas_new();
        codec = lev_codec_new(set, NULL);
        atexit(teardown);
    }
}

/* Loads a file of tests/data (once) and returns its schema `name`. */
static const lev_schema_t *load(const char *rel, const char *name)
{
    setup();
    const char *dir = getenv("LEV_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", rel);
    lev_error_t err;
    if (lev_schemas_load_file(set, path, 0, &err) != 0) {
        fprintf(stderr, "%s: %s\n", err.where, err.text);
        return NULL;
    }
    return lev_schemas_find(set, name);
}

static const lev_schema_t *add(const char *text)
{
    setup();
    const lev_schema_t *s = NULL;
    lev_error_t err;
    if (lev_schemas_add(set, text, strlen(text), NULL, 0, &s, &err) != 0)
        fprintf(stderr, "schema: %s\n", err.text);
    return s;
}

/* JSON text -> value -> JSON text; NULL with err on failure. */
static char *through(const lev_schema_t *s, const char *in, lev_error_t *err)
{
    json_error_t jerr;
    json_t *j = json_loads(in, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s\n", jerr.text);
        return NULL;
    }
    memset(err, 0, sizeof *err);
    avro_value_t v;
    char *out = NULL;
    if (lev_codec_from_json(codec, s, j, &v, err) == 0) {
        json_t *back = lev_codec_to_json(&v, err);
        if (back)
            out = json_dumps(back, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(back);
        avro_value_decref(&v);
    }
    json_decref(j);
    return out;
}

/* Expects from_json to fail with LEV_ERR_JSON at `where`, with `text` in
 * the message. */
static void expect_error(const lev_schema_t *s, const char *in, const char *where, const char *text)
{
    lev_error_t err;
    char *out = through(s, in, &err);
    if (out)
        fprintf(stderr, "accepted %s -> %s\n", in, out);
    CHECK(out == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_JSON);
    CHECK_STR(err.where, where);
    if (!strstr(err.text, text))
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err.text, text);
    CHECK(strstr(err.text, text) != NULL);
    free(out);
}

static void every_type_round_trips_through_json(void)
{
    const lev_schema_t *s = load("avro/all_types.avsc", "test.types.AllTypes");
    REQUIRE(s != NULL);
    const char *in =
        "{\"n\":null,\"b\":true,\"i\":-2147483648,\"l\":9223372036854775807,\"f\":1.5,"
        "\"d\":-0.001,\"s\":\"caf\\u00e9 \\u6f22 "
        "\\ud83d\\ude00\",\"by\":\"\\u0000\\u00ff\\u0080A\","
        "\"color\":\"BLUE\",\"hash\":\"\\u00de\\u00ad\\u00be\\u00ef\",\"ints\":[1,-2,3],"
        "\"labels\":{\"a\":\"x\",\"b\":\"y\"},\"maybe\":{\"string\":\"m\"},"
        "\"choice\":{\"test.types.Color\":\"RED\"},\"inner\":{\"x\":7,\"tags\":[\"t\"]},"
        "\"maybe_inner\":{\"test.types.Inner\":{\"x\":8,\"tags\":[]}},"
        "\"inners\":{\"k\":[{\"x\":9,\"tags\":[\"u\",\"v\"]}]},\"at\":1700000000123,"
        "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"other_hash\":\"abcd\"}";
    lev_error_t err;
    char *out = through(s, in, &err);
    if (!out)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
    REQUIRE(out != NULL);
    json_t *a = json_loads(in, JSON_ALLOW_NUL, NULL), *b = json_loads(out, JSON_ALLOW_NUL, NULL);
    CHECK(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    free(out);
}

static void union_branches_by_name_and_bare_values(void)
{
    const lev_schema_t *s = load("avro/all_types.avsc", "test.types.AllTypes");
    REQUIRE(s != NULL);
    const char *base = "{\"n\":null,\"b\":false,\"i\":0,\"l\":0,\"f\":0,\"d\":0,\"s\":\"\","
                       "\"by\":\"\",\"color\":\"RED\",\"hash\":\"abcd\",\"ints\":[],"
                       "\"labels\":{},\"inner\":{\"x\":0,\"tags\":[]},\"maybe_inner\":null,"
                       "\"inners\":{},\"at\":0,\"id\":\"x\",\"other_hash\":\"abcd\",";
    char in[2048];
    lev_error_t err;
    /* choice is ["int","string","Color",array<long>]. */
    static const struct {
        const char *choice, *want;
    } cases[] = {
        {"{\"int\":5}", "{\"int\":5}"},
        {"{\"string\":\"RED\"}", "{\"string\":\"RED\"}"},
        {"{\"test.types.Color\":\"GREEN\"}", "{\"test.types.Color\":\"GREEN\"}"},
        {"{\"array\":[1,2]}", "{\"array\":[1,2]}"},
        {"[1,2]", "{\"array\":[1,2]}"}, /* bare: only the array fits */
        {"7", "{\"int\":7}"},           /* bare: only int fits */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(in, sizeof in, "%s\"maybe\":null,\"choice\":%s}", base, cases[i].choice);
        char *out = through(s, in, &err);
        if (!out)
            fprintf(stderr, "%s: %s: %s\n", cases[i].choice, err.where, err.text);
        CHECK(out != NULL);
        char want[256];
        snprintf(want, sizeof want, "\"choice\":%s", cases[i].want);
        CHECK(out && strstr(out, want) != NULL);
        free(out);
    }
    /* A bare string fits both string and Color: ambiguous. */
    snprintf(in, sizeof in, "%s\"maybe\":null,\"choice\":\"RED\"}", base);
    expect_error(s, in, "choice", "ambiguous");
    /* A bare string for ["null","string"] is fine, null is null. */
    snprintf(in, sizeof in, "%s\"maybe\":\"bare\",\"choice\":1}", base);
    char *out = through(s, in, &err);
    CHECK(out && strstr(out, "\"maybe\":{\"string\":\"bare\"}") != NULL);
    free(out);
    /* A branch name the union does not have, and a value no branch takes. */
    snprintf(in, sizeof in, "%s\"maybe\":{\"long\":1},\"choice\":1}", base);
    expect_error(s, in, "maybe", "expected a union of [null, string], found object");
    snprintf(in, sizeof in, "%s\"maybe\":null,\"choice\":true}", base);
    expect_error(s, in, "choice", "found boolean");
}

static void missing_fields_take_schema_defaults(void)
{
    const lev_schema_t *s = load("avro/defaults.avsc", "test.defaults.Defaults");
    REQUIRE(s != NULL);
    lev_error_t err;
    char *out = through(s, "{\"id\":\"x\"}", &err);
    if (!out)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
    CHECK_STR(out, "{\"id\":\"x\",\"count\":1,\"total\":-5000000000,\"ratio\":0.5,\"score\":2.5,"
                   "\"active\":true,\"name\":\"caf\\u00E9\",\"raw\":\"\\u0000\\u00FF\","
                   "\"kind\":\"B\",\"tag\":\"ab\",\"list\":[1,2],\"attrs\":{\"k\":\"v\"},"
                   "\"note\":null,\"level\":{\"int\":3},\"sub\":{\"a\":7,\"b\":\"bee\"}}");
    free(out);
    /* Given values win over defaults. */
    out = through(s, "{\"id\":\"y\",\"count\":2,\"note\":{\"string\":\"n\"},\"sub\":{\"a\":1}}",
                  &err);
    CHECK(out && strstr(out, "\"count\":2") && strstr(out, "\"note\":{\"string\":\"n\"}") &&
          strstr(out, "\"sub\":{\"a\":1,\"b\":\"bee\"}"));
    free(out);
}

static void missing_field_without_default_names_it(void)
{
    const lev_schema_t *s = load("avro/defaults.avsc", "test.defaults.Defaults");
    REQUIRE(s != NULL);
    expect_error(s, "{\"count\":3}", "id", "missing field");
    expect_error(s, "{\"id\":\"x\",\"sub\":{\"b\":\"c\"}}", "sub.a", "missing field");
    /* every missing field of a value in one error, under the object holding them */
    expect_error(s, "{\"count\":3,\"sub\":{\"b\":\"c\"}}", "",
                 "missing fields (they have no default): id, sub.a");
}

static void every_missing_field_is_named_in_one_error(void)
{
    static const char schema[] =
        "{\"type\":\"record\",\"name\":\"t.R\",\"fields\":["
        "{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"int\"},"
        "{\"name\":\"c\",\"type\":\"int\",\"default\":1},"
        "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
        "\"name\":\"I\",\"fields\":[{\"name\":\"sku\",\"type\":\"string\"},"
        "{\"name\":\"qty\",\"type\":\"int\"}]}}}]}";
    const lev_schema_t *s = add(schema);
    REQUIRE(s != NULL);
    expect_error(s, "{\"items\":[]}", "", "missing fields (they have no default): a, b");
    expect_error(s, "{\"a\":\"x\",\"b\":1,\"items\":[{}]}", "items[0]",
                 "missing fields (they have no default): sku, qty");
    expect_error(s, "{\"a\":\"x\",\"b\":1,\"items\":[{\"sku\":\"s\"},{\"qty\":1}]}", "items",
                 "missing fields (they have no default): [0].qty, [1].sku");
    expect_error(s, "{\"b\":1,\"items\":[{\"qty\":2}]}", "",
                 "missing fields (they have no default): a, items[0].sku");
    /* a wrong type is still reported where it is */
    expect_error(s, "{\"b\":\"one\",\"items\":[]}", "b", "expected int");
}

static void unknown_members_are_errors(void)
{
    const lev_schema_t *s = load("avro/defaults.avsc", "test.defaults.Defaults");
    REQUIRE(s != NULL);
    expect_error(s, "{\"id\":\"x\",\"colour\":\"red\"}", "", "unknown field \"colour\"");
    expect_error(s, "{\"id\":\"x\",\"sub\":{\"a\":1,\"zz\":0}}", "sub", "unknown field \"zz\"");
}

static const char *order_schema =
    "{\"type\":\"record\",\"name\":\"shop.Order\",\"fields\":["
    "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "\"name\":\"Item\",\"fields\":[{\"name\":\"sku\",\"type\":\"string\"},"
    "{\"name\":\"quantity\",\"type\":\"int\"}]}}},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
    "{\"name\":\"state\",\"type\":{\"type\":\"enum\",\"name\":\"State\",\"symbols\":"
    "[\"NEW\",\"PAID\"]}},"
    "{\"name\":\"digest\",\"type\":{\"type\":\"fixed\",\"name\":\"D\",\"size\":2}},"
    "{\"name\":\"raw\",\"type\":\"bytes\"},{\"name\":\"ratio\",\"type\":\"double\"}]}";

static void wrong_types_name_the_path_and_what_was_expected(void)
{
    const lev_schema_t *s = add(order_schema);
    REQUIRE(s != NULL);
    const char *tail =
        ",\"attrs\":{},\"state\":\"NEW\",\"digest\":\"ab\",\"raw\":\"\",\"ratio\":1}";
    char in[1024];
    snprintf(in, sizeof in,
             "{\"items\":[{\"sku\":\"a\",\"quantity\":1},{\"sku\":\"b\",\"quantity\":2},"
             "{\"sku\":\"c\",\"quantity\":\"three\"}]%s",
             tail);
    expect_error(s, in, "items[2].quantity", "expected int, found string");
    snprintf(in, sizeof in, "{\"items\":[{\"sku\":7,\"quantity\":1}]%s", tail);
    expect_error(s, in, "items[0].sku", "expected string, found integer");
    snprintf(in, sizeof in, "{\"items\":{}%s", tail);
    expect_error(s, in, "items", "expected array, found object");
    expect_error(s,
                 "{\"items\":[],\"attrs\":{\"k\":1.5},\"state\":\"NEW\",\"digest\":\"ab\","
                 "\"raw\":\"\",\"ratio\":1}",
                 "attrs[\"k\"]", "expected long, found number");
    expect_error(s, "[1]", "", "expected an object");
}

static void ints_are_range_checked(void)
{
    const lev_schema_t *s = add(order_schema);
    REQUIRE(s != NULL);
    const char *tail =
        ",\"attrs\":{},\"state\":\"NEW\",\"digest\":\"ab\",\"raw\":\"\",\"ratio\":1}";
    char in[512];
    snprintf(in, sizeof in, "{\"items\":[{\"sku\":\"a\",\"quantity\":2147483648}]%s", tail);
    expect_error(s, in, "items[0].quantity", "int out of range");
    snprintf(in, sizeof in, "{\"items\":[{\"sku\":\"a\",\"quantity\":-2147483649}]%s", tail);
    expect_error(s, in, "items[0].quantity", "int out of range");
    snprintf(in, sizeof in, "{\"items\":[{\"sku\":\"a\",\"quantity\":2147483647}]%s", tail);
    lev_error_t err;
    char *out = through(s, in, &err);
    CHECK(out != NULL);
    free(out);
}

static void enum_symbols_fixed_sizes_and_bytes_are_checked(void)
{
    const lev_schema_t *s = add(order_schema);
    REQUIRE(s != NULL);
    expect_error(s,
                 "{\"items\":[],\"attrs\":{},\"state\":\"LOST\",\"digest\":\"ab\",\"raw\":\"\","
                 "\"ratio\":1}",
                 "state", "\"LOST\" is not a symbol of enum shop.State");
    expect_error(s,
                 "{\"items\":[],\"attrs\":{},\"state\":\"NEW\",\"digest\":\"abc\",\"raw\":\"\","
                 "\"ratio\":1}",
                 "digest", "needs 2 bytes, found 3");
    expect_error(s,
                 "{\"items\":[],\"attrs\":{},\"state\":\"NEW\",\"digest\":\"ab\","
                 "\"raw\":\"\\u0100\",\"ratio\":1}",
                 "raw", "above U+00FF");
}

static void bytes_are_iso_8859_1_code_points(void)
{
    const lev_schema_t *s = add(order_schema);
    REQUIRE(s != NULL);
    lev_error_t err;
    json_t *j = json_loads("{\"items\":[],\"attrs\":{},\"state\":\"PAID\","
                           "\"digest\":\"\\u0000\\u00ff\",\"raw\":\"A\\u00e9\\u0080\",\"ratio\":1}",
                           JSON_ALLOW_NUL, NULL);
    avro_value_t v, f;
    REQUIRE(lev_codec_from_json(codec, s, j, &v, &err) == 0);
    const void *b;
    size_t n;
    avro_value_get_by_name(&v, "raw", &f, NULL);
    avro_value_get_bytes(&f, &b, &n);
    CHECK_INT(n, ==, 3);
    CHECK(memcmp(b, "A\xe9\x80", 3) == 0);
    avro_value_get_by_name(&v, "digest", &f, NULL);
    avro_value_get_fixed(&f, &b, &n);
    CHECK_INT(n, ==, 2);
    CHECK(memcmp(b, "\x00\xff", 2) == 0);
    avro_value_decref(&v);
    json_decref(j);
}

static void nan_and_infinities_are_strings(void)
{
    const lev_schema_t *s = add(order_schema);
    REQUIRE(s != NULL);
    const char *head =
        "{\"items\":[],\"attrs\":{},\"state\":\"NEW\",\"digest\":\"ab\",\"raw\":\"\","
        "\"ratio\":";
    const char *vals[] = {"\"NaN\"", "\"Infinity\"", "\"-Infinity\""};
    for (int i = 0; i < 3; i++) {
        char in[512];
        snprintf(in, sizeof in, "%s%s}", head, vals[i]);
        lev_error_t err;
        char *out = through(s, in, &err);
        char want[64];
        snprintf(want, sizeof want, "\"ratio\":%s", vals[i]);
        CHECK(out && strstr(out, want) != NULL);
        free(out);
    }
    char in[512];
    snprintf(in, sizeof in, "%s\"fast\"}", head);
    expect_error(s, in, "ratio", "expected double, found string");
}

static void logical_types_keep_their_underlying_json(void)
{
    const lev_schema_t *s =
        add("{\"type\":\"record\",\"name\":\"t.Logical\",\"fields\":["
            "{\"name\":\"at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
            "{\"name\":\"id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
            "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}}]}");
    REQUIRE(s != NULL);
    lev_error_t err;
    const char *in =
        "{\"at\":1700000000123,\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"day\":19000}";
    char *out = through(s, in, &err);
    CHECK_STR(out, in);
    free(out);
    expect_error(s, "{\"at\":\"2023-11-14T22:13:20Z\",\"id\":\"x\",\"day\":1}", "at",
                 "expected long, found string");
}

static void to_json_refuses_strings_that_are_not_utf8(void)
{
    const lev_schema_t *s = add("{\"type\":\"record\",\"name\":\"t.S\",\"fields\":[{\"name\":"
                                "\"s\",\"type\":\"string\"},{\"name\":\"e\",\"type\":{\"type\":"
                                "\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}}]}");
    REQUIRE(s != NULL);
    avro_value_t v, f;
    REQUIRE(lev_codec_new_value(codec, s, &v) == 0);
    lev_error_t err;
    CHECK_INT(lev_value_set_string(&v, "s", "bad \xc3"), ==, 0);
    json_t *j = lev_codec_to_json(&v, &err);
    CHECK(j == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_JSON);
    CHECK_STR(err.where, "s");
    CHECK_INT(lev_value_set_string(&v, "s", "good"), ==, 0);
    avro_value_get_by_name(&v, "e", &f, NULL);
    avro_value_set_enum(&f, 3);
    j = lev_codec_to_json(&v, &err);
    CHECK(j == NULL);
    CHECK_STR(err.where, "e");
    avro_value_decref(&v);
    CHECK(lev_codec_to_json(NULL, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_ARG);
}

static void every_project_schema_accepts_its_own_json(void)
{
    /* For each schema in $LEV_SCHEMA_DIRS: a value made from JSON (all
     * fields given by a generic sample) converts back to equal JSON. The
     * round trips of random values live in test_codec. */
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    if (!dirs || !*dirs)
        return;
    lev_schemas_t *ps = lev_schemas_new();
    lev_error_t err;
    if (lev_schemas_load_path(ps, dirs, &err) != 0) {
        lev_schemas_destroy(ps);
        return;
    }
    lev_codec_t *pc = lev_codec_new(ps, NULL);
    for (size_t i = 0; i < lev_schemas_count(ps); i++) {
        const lev_schema_t *s = lev_schemas_at(ps, i);
        avro_value_t v;
        REQUIRE(lev_codec_new_value(pc, s, &v) == 0);
        /* Unions start without a branch: take null where there is one. */
        size_t n = 0;
        avro_value_get_size(&v, &n);
        for (size_t k = 0; k < n; k++) {
            avro_value_t f, b;
            avro_value_get_by_index(&v, k, &f, NULL);
            if (avro_value_get_type(&f) == AVRO_UNION)
                avro_value_set_branch(&f, 0, &b);
        }
        json_t *j = lev_codec_to_json(&v, &err);
        CHECK(j != NULL);
        avro_value_t again;
        CHECK_INT(lev_codec_from_json(pc, s, j, &again, &err), ==, 0);
        if (j)
            CHECK(avro_value_equal(&v, &again));
        avro_value_decref(&again);
        json_decref(j);
        avro_value_decref(&v);
    }
    lev_codec_destroy(pc);
    lev_schemas_destroy(ps);
}

CHECK_MAIN(CASE(every_type_round_trips_through_json), CASE(union_branches_by_name_and_bare_values),
           CASE(missing_fields_take_schema_defaults), CASE(missing_field_without_default_names_it),
           CASE(every_missing_field_is_named_in_one_error), CASE(unknown_members_are_errors),
           CASE(wrong_types_name_the_path_and_what_was_expected), CASE(ints_are_range_checked),
           CASE(enum_symbols_fixed_sizes_and_bytes_are_checked),
           CASE(bytes_are_iso_8859_1_code_points), CASE(nan_and_infinities_are_strings),
           CASE(logical_types_keep_their_underlying_json),
           CASE(to_json_refuses_strings_that_are_not_utf8),
           CASE(every_project_schema_accepts_its_own_json))
