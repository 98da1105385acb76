/*
 * Parsing Canonical Form and CRC-64-AVRO fingerprints: the vectors of
 * tests/data/canonical/vectors.jsonl (computed by fastavro, see
 * tests/tools/gen_canonical_vectors.py), the fingerprints published with the
 * Avro specification, and the schemas the canonical form must refuse.
 */
#include "check.h"

#include <libevents.h>

static char *data_path(const char *rel)
{
    const char *dir = getenv("LEV_TEST_DATA");
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "tests/data", rel);
    return buf;
}

static char *canon(const char *schema, lev_error_t *err)
{
    return lev_avro_canonical_form(schema, strlen(schema), err);
}

static uint64_t fp_of(const char *s)
{
    return lev_avro_fingerprint64(s, strlen(s));
}

static void canonical_vectors_match_fastavro(void)
{
    FILE *f = fopen(data_path("canonical/vectors.jsonl"), "r");
    REQUIRE(f != NULL);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *v = json_loads(line, 0, &jerr);
        CHECK(v != NULL);
        if (!v)
            continue;
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *input = json_string_value(json_object_get(v, "input"));
        const char *want = json_string_value(json_object_get(v, "canonical"));
        const char *hex = json_string_value(json_object_get(v, "fingerprint_hex"));
        const char *le = json_string_value(json_object_get(v, "fingerprint_le"));
        json_int_t signed_fp = json_integer_value(json_object_get(v, "fingerprint_signed"));
        lev_error_t err;
        memset(&err, 0, sizeof err);
        char *got = canon(input, &err);
        if (!got || strcmp(got, want) != 0)
            fprintf(stderr, "vector %s: got %s (%s), want %s\n", name, got ? got : "NULL", err.text,
                    want);
        CHECK_STR(got, want);
        uint64_t fp = got ? fp_of(got) : 0;
        char buf[32];
        snprintf(buf, sizeof buf, "%016" PRIx64, fp);
        CHECK_STR(buf, hex);
        CHECK_INT((int64_t)fp, ==, signed_fp);
        char lebuf[32];
        for (int i = 0; i < 8; i++)
            snprintf(lebuf + 2 * i, 3, "%02x", (unsigned)((fp >> (8 * i)) & 0xff));
        CHECK_STR(lebuf, le);
        free(got);
        json_decref(v);
        n++;
    }
    fclose(f);
    CHECK_INT(n, >=, 40);
}

static void fingerprint_of_nothing_is_the_empty_constant(void)
{
    CHECK(lev_avro_fingerprint64("", 0) == 0xc15d213aa4d7a795ULL);
}

/* Values printed by the Java implementation, from the specification's
 * share/test/data/schema-tests.txt. */
static void fingerprints_match_published_spec_values(void)
{
    CHECK_INT((int64_t)fp_of("\"null\""), ==, 7195948357588979594LL);
    CHECK_INT((int64_t)fp_of("\"boolean\""), ==, -6970731678124411036LL);
    CHECK_INT((int64_t)fp_of("\"int\""), ==, 8247732601305521295LL);
    CHECK_INT((int64_t)fp_of("\"long\""), ==, -3434872931120570953LL);
    CHECK_INT((int64_t)fp_of("\"float\""), ==, 5583340709985441680LL);
    CHECK_INT((int64_t)fp_of("\"double\""), ==, -8181574048448539266LL);
    CHECK_INT((int64_t)fp_of("\"bytes\""), ==, 5746618253357095269LL);
    CHECK_INT((int64_t)fp_of("\"string\""), ==, -8142146995180207161LL);
    CHECK_INT((int64_t)fp_of("[]"), ==, -1241056759729112623LL);
    CHECK_INT((int64_t)fp_of("{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}"), ==,
              -4824392279771201922LL);
    CHECK_INT((int64_t)fp_of("{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}"), ==,
              5916914534497305771LL);
}

static void canonical_form_is_stable_when_applied_twice(void)
{
    const char *s = "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a\",\"doc\":\"d\","
                    "\"fields\":[{\"name\":\"x\",\"type\":{\"type\":\"array\",\"items\":"
                    "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}}},"
                    "{\"name\":\"y\",\"type\":[\"null\",\"E\"]}]}";
    char *once = canon(s, NULL);
    REQUIRE(once != NULL);
    char *twice = canon(once, NULL);
    CHECK_STR(once, twice);
    CHECK_STR(once, "{\"name\":\"a.R\",\"type\":\"record\",\"fields\":[{\"name\":\"x\","
                    "\"type\":{\"type\":\"array\",\"items\":{\"name\":\"a.E\",\"type\":\"enum\","
                    "\"symbols\":[\"A\"]}}},{\"name\":\"y\",\"type\":[\"null\",\"a.E\"]}]}");
    free(once);
    free(twice);
}

/* Each of these must fail with LEV_ERR_SCHEMA and a text containing `what`. */
static void expect_refused(const char *schema, const char *what)
{
    lev_error_t err;
    memset(&err, 0, sizeof err);
    char *got = canon(schema, &err);
    if (got)
        fprintf(stderr, "accepted: %s -> %s\n", schema, got);
    CHECK(got == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_SCHEMA);
    if (!strstr(err.text, what))
        fprintf(stderr, "error text \"%s\" lacks \"%s\"\n", err.text, what);
    CHECK(strstr(err.text, what) != NULL);
    free(got);
}

static void canonical_refuses_unknown_type_references(void)
{
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                   "\"type\":\"Nope\"}]}",
                   "unknown type \"Nope\"");
    expect_refused("{\"type\":\"strin\"}", "unknown type");
    expect_refused("\"Nope\"", "unknown type");
}

static void canonical_refuses_use_before_definition(void)
{
    expect_refused(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
        "{\"name\":\"a\",\"type\":\"E\"},"
        "{\"name\":\"b\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}}]}",
        "unknown type \"E\"");
}

static void canonical_short_reference_stays_in_its_namespace(void)
{
    /* "F" inside x.y means x.y.F; the null-namespace F is not found (as in
     * avro-c and fastavro). */
    expect_refused("{\"type\":\"record\",\"name\":\"Outer\",\"namespace\":\"x.y\",\"fields\":["
                   "{\"name\":\"a\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"namespace\":\"\","
                   "\"size\":2}},{\"name\":\"b\",\"type\":\"F\"}]}",
                   "unknown type \"x.y.F\"");
}

static void canonical_refuses_redefined_names(void)
{
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                   "{\"name\":\"a\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":1}},"
                   "{\"name\":\"b\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":1}}]}",
                   "defined twice");
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                   "{\"name\":\"a\",\"type\":{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}}]}",
                   "defined twice");
}

static void canonical_refuses_invalid_names_and_symbols(void)
{
    expect_refused("{\"type\":\"record\",\"name\":\"1R\",\"fields\":[]}", "invalid name");
    expect_refused("{\"type\":\"record\",\"name\":\"a..R\",\"fields\":[]}", "invalid name");
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a-b\",\"fields\":[]}",
                   "invalid namespace");
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a b\","
                   "\"type\":\"int\"}]}",
                   "invalid field name");
    expect_refused("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"-\"]}",
                   "not a valid name");
    expect_refused("{\"type\":\"record\",\"name\":\"int\",\"fields\":[]}", "primitive type name");
}

static void canonical_refuses_duplicates(void)
{
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                   "\"type\":\"int\"},{\"name\":\"a\",\"type\":\"long\"}]}",
                   "two fields named \"a\"");
    expect_refused("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}", "twice");
    expect_refused("[\"int\",\"int\"]", "twice");
    expect_refused(
        "[{\"type\":\"array\",\"items\":\"int\"},{\"type\":\"array\",\"items\":\"long\"}]",
        "twice");
    /* Duplicate JSON keys are refused by the parser. */
    expect_refused("{\"type\":\"record\",\"name\":\"R\",\"name\":\"S\",\"fields\":[]}",
                   "invalid JSON");
}

static void canonical_refuses_malformed_structure(void)
{
    expect_refused("[[\"int\"]]", "union cannot contain a union");
    expect_refused("{\"type\":\"record\",\"name\":\"R\"}", "\"fields\"");
    expect_refused("{\"type\":\"record\",\"fields\":[]}", "\"name\"");
    expect_refused("{\"type\":\"fixed\",\"name\":\"F\"}", "\"size\"");
    expect_refused("{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "\"size\"");
    expect_refused("{\"type\":\"array\"}", "\"items\"");
    expect_refused("{\"type\":\"map\",\"items\":\"int\"}", "\"values\"");
    expect_refused("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],\"default\":\"B\"}",
                   "default");
    expect_refused("42", "must be a string, an object or an array");
    expect_refused("{\"name\":\"R\"}", "\"type\"");
}

static void canonical_reports_json_line_and_column(void)
{
    lev_error_t err;
    memset(&err, 0, sizeof err);
    char *got = canon("{\n  \"type\": \"record\",\n  oops\n}", &err);
    CHECK(got == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_SCHEMA);
    CHECK(strstr(err.text, "line 3") != NULL);
    free(got);
}

static void canonical_error_says_where_in_the_schema(void)
{
    lev_error_t err;
    memset(&err, 0, sizeof err);
    char *got = canon("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                      "\"type\":\"int\"},{\"name\":\"b\",\"type\":{\"type\":\"array\","
                      "\"items\":\"Nope\"}}]}",
                      &err);
    CHECK(got == NULL);
    CHECK(strstr(err.text, "fields[1].type.items") != NULL);
    free(got);
}

CHECK_MAIN(
    CASE(canonical_vectors_match_fastavro), CASE(fingerprint_of_nothing_is_the_empty_constant),
    CASE(fingerprints_match_published_spec_values),
    CASE(canonical_form_is_stable_when_applied_twice),
    CASE(canonical_refuses_unknown_type_references), CASE(canonical_refuses_use_before_definition),
    CASE(canonical_short_reference_stays_in_its_namespace), CASE(canonical_refuses_redefined_names),
    CASE(canonical_refuses_invalid_names_and_symbols), CASE(canonical_refuses_duplicates),
    CASE(canonical_refuses_malformed_structure), CASE(canonical_reports_json_line_and_column),
    CASE(canonical_error_says_where_in_the_schema))
