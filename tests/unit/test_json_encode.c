/*
 * lev_codec_encode_json against its definition: json_loadb
 * (JSON_REJECT_DUPLICATES) + lev_codec_from_json + lev_codec_encode, the
 * tree path. For every text here, and for thousands derived from them
 * (every prefix, reordered members, escaped strings, numbers rewritten),
 *   - whatever the direct path accepts, the tree path accepts with the
 *     same bytes;
 *   - lev_codec_encode_json gives the tree path's answer: the same bytes,
 *     or the same error code, place and text;
 * and the texts marked "direct" really take the direct path, so the
 * comparison is not between the tree path and itself.
 * Also the pull reader (libevents/jsontext.h) on its own.
 */
#include "check.h"

#include "codec_internal.h"

#include <libevents.h>

static lev_schemas_t *set;
static lev_codec_t *codec;
static size_t compared, direct_taken;

static void teardown(void)
{
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void setup(void)
{
    if (set)
        return;
    set = lev_schemas_new();
    codec = lev_codec_new(set, NULL);
    atexit(teardown);
    const char *data = getenv("LEV_TEST_DATA"), *src = getenv("LEV_SOURCE_DIR");
    static const char *const files[] = {"all_types.avsc", "defaults.avsc", "nulls.avsc",
                                        "recursive.avsc", "namespaces.avsc"};
    char path[1024];
    lev_error_t err;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/avro/%s", data ? data : "tests/data", files[i]);
        if (lev_schemas_load_file(set, path, 0, &err) != 0)
            fprintf(stderr, "%s: %s\n", err.where, err.text);
    }
    snprintf(path, sizeof path, "%s/schemas", src ? src : ".");
    if (lev_schemas_load_dir(set, path, 0, &err) != 0)
        fprintf(stderr, "%s: %s\n", err.where, err.text);
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

static const lev_schema_t *find(const char *name)
{
    setup();
    const lev_schema_t *s = lev_schemas_find(set, name);
    if (!s)
        fprintf(stderr, "no schema %s\n", name);
    return s;
}

/* The definition: 0 with a malloc'd framed value, or the error. */
static int tree(const lev_schema_t *s, const char *text, size_t len, void **out, size_t *olen,
                lev_error_t *err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j)
        return LEV_ERR_JSON;
    avro_value_t v;
    int rc = lev_codec_from_json(codec, s, j, &v, err);
    json_decref(j);
    if (rc)
        return rc;
    rc = lev_codec_encode(codec, s, &v, out, olen, err);
    avro_value_decref(&v);
    return rc;
}

/* Compares the three ways on one text; want_direct: 1 must take the direct
 * path, 0 must not, -1 either. Returns whether the direct path took it. */
static int compare(const lev_schema_t *s, const char *text, size_t len, int want_direct)
{
    void *tbuf = NULL;
    size_t tlen = 0;
    lev_error_t terr, derr, aerr;
    memset(&terr, 0, sizeof terr);
    memset(&aerr, 0, sizeof aerr);
    int trc = tree(s, text, len, &tbuf, &tlen, &terr);

    char *dbuf = NULL;
    size_t dlen = 0, dcap = 0;
    int drc = lev_codec_encode_json_direct(codec, s, text, len, NULL, &dbuf, &dlen, &dcap, &derr);
    if (drc == 0) {
        direct_taken++;
        if (trc != 0 || dlen != tlen || memcmp(dbuf, tbuf, tlen) != 0) {
            fprintf(stderr, "direct path accepted, tree path %s: %.*s\n",
                    trc ? terr.text : "wrote other bytes", (int)(len > 300 ? 300 : len), text);
            CHECK(0);
        }
    } else {
        CHECK_INT(drc, ==, LEV_JSON_DIRECT_CANNOT);
        CHECK_INT(dlen, ==, 0);
    }
    if (want_direct >= 0 && (drc == 0) != want_direct) {
        fprintf(stderr, "expected the %s path: %.*s\n", want_direct ? "direct" : "tree",
                (int)(len > 300 ? 300 : len), text);
        CHECK(0);
    }

    /* the public call, appended after bytes already there */
    char *abuf = malloc(3);
    size_t alen = 3, acap = 3;
    memcpy(abuf, "xyz", 3);
    int arc = lev_codec_encode_json(codec, s, text, len, NULL, &abuf, &alen, &acap, &aerr);
    CHECK(memcmp(abuf, "xyz", 3) == 0);
    if (trc == 0) {
        CHECK_INT(arc, ==, 0);
        CHECK(alen == tlen + 3 && memcmp(abuf + 3, tbuf, tlen) == 0);
    } else {
        CHECK_INT(arc, ==, trc);
        CHECK_INT(alen, ==, 3);
        if (trc != LEV_ERR_JSON || terr.text[0]) { /* jansson's own text differs in form */
            CHECK_STR(aerr.where, terr.where);
            CHECK_STR(aerr.text, terr.text);
        }
    }
    compared++;
    free(abuf);
    free(dbuf);
    free(tbuf);
    return drc == 0;
}

static int compare_str(const lev_schema_t *s, const char *text, int want_direct)
{
    return compare(s, text, strlen(text), want_direct);
}

/* Every prefix of the text, every text with one byte removed or changed
 * to a character that matters to JSON. */
static void mutate(const lev_schema_t *s, const char *text)
{
    size_t n = strlen(text);
    char *b = malloc(n + 2);
    static const char subst[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '0', '-', 'e', ' ', 'n'};
    for (size_t i = 0; i <= n; i++)
        compare(s, text, i, -1);
    for (size_t i = 0; i < n; i++) {
        memcpy(b, text, i);
        memcpy(b + i, text + i + 1, n - i - 1);
        compare(s, b, n - 1, -1);
        for (size_t k = 0; k < sizeof subst; k++) {
            memcpy(b, text, n);
            b[i] = subst[k];
            compare(s, b, n, -1);
        }
    }
    free(b);
}

/* ======================================================================
 * The reader
 * ====================================================================== */

static void test_reader_strings(void)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: refused */
        size_t outlen;
    } cases[] = {
        {"\"plain\"", "plain", 5},
        {"  \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t", 12},
        {"\"caf\\u00e9 \\u20AC\"", "caf\xc3\xa9 \xe2\x82\xac", 9},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4},
        {"\"caf\xc3\xa9\"", "caf\xc3\xa9", 5},
        {"\"\x7f\"", "\x7f", 1},
        {"\"\\u0000\"", NULL, 0},        /* jansson refuses NUL by default */
        {"\"\\ud83d\"", NULL, 0},        /* a lone high surrogate */
        {"\"\\ude00\"", NULL, 0},        /* a lone low surrogate */
        {"\"\\ud83d\\u0041\"", NULL, 0}, /* a high surrogate and no low one */
        {"\"\\x41\"", NULL, 0},
        {"\"\\u12G4\"", NULL, 0},
        {"\"tab\there\"", NULL, 0},    /* a raw control character */
        {"\"\xc3\"", NULL, 0},         /* truncated UTF-8 */
        {"\"\xc0\xaf\"", NULL, 0},     /* overlong */
        {"\"\xed\xa0\x80\"", NULL, 0}, /* an encoded surrogate */
        {"\"open", NULL, 0},
        {"'single'", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lev_jreader_t r;
        const char *s;
        size_t n;
        lev_jreader_init(&r, cases[i].in, strlen(cases[i].in));
        int rc = lev_jreader_string(&r, &s, &n);
        json_error_t je;
        json_t *j = json_loads(cases[i].in, JSON_DECODE_ANY, &je);
        if (cases[i].out) {
            CHECK_INT(rc, ==, 0);
            CHECK(rc == 0 && n == cases[i].outlen && memcmp(s, cases[i].out, n) == 0);
            CHECK(j != NULL); /* jansson agrees */
        } else {
            CHECK_INT(rc, ==, -1);
            CHECK(j == NULL);
        }
        json_decref(j);
        lev_jreader_free(&r);
    }
}

/* Every byte value at every offset of a string longer than the reader's
 * word of 8 bytes, whatever the word's alignment: plain bytes are taken
 * as they are, '"' ends the string there, and the rest (controls, '\\'
 * before a letter that starts no escape, a lone byte of 0x80 and above) is
 * refused, as jansson refuses it. */
static void test_reader_strings_every_byte_at_every_offset(void)
{
    char text[64], want[32];
    for (int lead = 0; lead < 8; lead++) {
        for (int k = 0; k < 20; k++) {
            for (int b = 1; b < 256; b++) {
                size_t len = 0;
                for (int i = 0; i < lead; i++)
                    text[len++] = ' ';
                text[len++] = '"';
                for (int i = 0; i < 24; i++)
                    want[i] = text[len++] = i == k ? (char)b : (char)('g' + i % 7);
                text[len++] = '"';
                lev_jreader_t r;
                const char *s = NULL;
                size_t n = 0;
                lev_jreader_init(&r, text, len);
                int rc = lev_jreader_string(&r, &s, &n);
                if (b == '"') {
                    CHECK(rc == 0 && n == (size_t)k && memcmp(s, want, n) == 0);
                } else if (b >= 0x20 && b < 0x80 && b != '\\') {
                    CHECK(rc == 0 && n == 24 && memcmp(s, want, n) == 0);
                    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, NULL);
                    CHECK(j != NULL);
                    json_decref(j);
                } else {
                    CHECK_INT(rc, ==, -1);
                    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, NULL);
                    CHECK(j == NULL);
                    json_decref(j);
                }
                lev_jreader_free(&r);
            }
        }
    }
}

static void test_reader_numbers_and_structure(void)
{
    static const struct {
        const char *in;
        int ok, integral;
    } nums[] = {
        {"0", 1, 1},    {"-0", 1, 1},     {"12", 1, 1}, {"-7.25", 1, 0}, {"1e3", 1, 0},
        {"1E+3", 1, 0}, {"2.5e-3", 1, 0}, {"01", 0, 0}, {"-", 0, 0},     {"1.", 0, 0},
        {".5", 0, 0},   {"1e", 0, 0},     {"+1", 0, 0}, {"-a", 0, 0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        lev_jreader_t r;
        const char *s;
        size_t n;
        int integral = -1;
        lev_jreader_init(&r, nums[i].in, strlen(nums[i].in));
        int rc = lev_jreader_number(&r, &s, &n, &integral);
        int whole = rc == 0 && lev_jreader_peek(&r) == -1;
        CHECK_INT(whole, ==, nums[i].ok);
        if (nums[i].ok)
            CHECK_INT(integral, ==, nums[i].integral);
    }
    int64_t v;
    CHECK(lev_json_int64("9223372036854775807", 19, &v) == 0 && v == INT64_MAX);
    CHECK(lev_json_int64("-9223372036854775808", 20, &v) == 0 && v == INT64_MIN);
    CHECK_INT(lev_json_int64("9223372036854775808", 19, &v), ==, -1);
    CHECK_INT(lev_json_int64("-9223372036854775809", 20, &v), ==, -1);

    /* skip: what jansson accepts as one value, exactly */
    static const char *const texts[] = {
        "{}",
        "[]",
        "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}",
        "[true,false,null,-1.5e3]",
        "{\"a\":1,}",
        "[1,]",
        "[,]",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "[1 2]",
        "nul",
        "tru",
        "{\"a\":1",
        "[[[[[[[[[[1]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        lev_jreader_t r;
        const char *s;
        size_t n;
        lev_jreader_init(&r, texts[i], strlen(texts[i]));
        int ours = lev_jreader_skip(&r, 64, &s, &n) == 0 && lev_jreader_peek(&r) == -1;
        json_error_t je;
        json_t *j = json_loads(texts[i], JSON_DECODE_ANY, &je);
        CHECK_INT(ours, ==, j != NULL);
        if (ours)
            CHECK_INT(n, ==, strlen(texts[i]));
        json_decref(j);
    }
    lev_jreader_t r;
    lev_jreader_init(&r, "[[[1]]]", 7);
    CHECK_INT(lev_jreader_skip(&r, 2, NULL, NULL), ==, -1); /* deeper than allowed */
}

/* ======================================================================
 * Encoding: the direct path against the tree path
 * ====================================================================== */

static const char order[] =
    "{\"order_id\":\"3f0e8a52-6c1d-4b8e-9a57-2d1c3b4a5e6f\",\"customer_id\":\"cust-1\","
    "\"customer_email\":{\"string\":\"a@example.com\"},\"items\":[{\"sku\":\"BOOK-42\","
    "\"quantity\":2,\"unit_price_minor\":1999}],\"currency\":\"USD\",\"total_minor\":3998,"
    "\"payment_token\":\"tok_visa_4242\",\"placed_at\":1763740800000}";

static void test_order_placed(void)
{
    const lev_schema_t *s = find("shop.order.OrderPlaced");
    REQUIRE(s);
    CHECK(compare_str(s, order, 1));
    /* members in another order, whitespace, escapes, a bare union value */
    CHECK(compare_str(s,
                      "{ \"placed_at\" : 1763740800000 , \"payment_token\":\"tok\\u005fvisa\","
                      "\"total_minor\":3998,\"currency\":\"USD\",\"items\":[],"
                      "\"customer_email\":\"a@example.com\",\"customer_id\":\"c\\\"1\","
                      "\"order_id\":\"o-\\u00e9\\ud83d\\ude00\"}\n",
                      1));
    CHECK(compare_str(s,
                      "{\"order_id\":\"o\",\"customer_id\":\"c\",\"customer_email\":null,"
                      "\"items\":[],\"currency\":\"USD\",\"total_minor\":0,"
                      "\"payment_token\":\"t\",\"placed_at\":0}",
                      1));
    /* wrong: each one goes to the tree path, which names it */
    compare_str(s, "{\"order_id\":\"o\"}", 0);                    /* missing fields */
    compare_str(s, "{\"order_id\":1}", 0);                        /* a wrong type */
    compare_str(s, "[1]", 0);                                     /* not an object */
    compare_str(s, "{\"order_id\":\"a\",\"order_id\":\"b\"}", 0); /* a duplicate */
    compare_str(s, "{\"nope\":1}", 0);                            /* unknown member */
    mutate(s, order);
}

static void test_all_types(void)
{
    const lev_schema_t *s = find("test.types.AllTypes");
    REQUIRE(s);
    const char *base =
        "{\"n\":null,\"b\":true,\"i\":-2147483648,\"l\":9223372036854775807,\"f\":1.5,"
        "\"d\":-2.25e-3,\"s\":\"s\\n\",\"by\":\"\\u00ff\\u0001\",\"color\":\"GREEN\","
        "\"hash\":\"abcd\",\"ints\":[1,2,3],\"labels\":{\"a\":\"x\",\"b\":\"y\"},"
        "\"maybe\":{\"string\":\"m\"},\"choice\":{\"Color\":\"RED\"},"
        "\"inner\":{\"x\":1,\"tags\":[\"t\"]},\"maybe_inner\":{\"test.types.Inner\":{\"x\":2,"
        "\"tags\":[]}},\"inners\":{\"k\":[{\"x\":3,\"tags\":[\"u\",\"v\"]}]},\"at\":5,"
        "\"id\":\"3f0e8a52-6c1d-4b8e-9a57-2d1c3b4a5e6f\",\"other_hash\":\"wxyz\"}";
    /* bytes and fixed are the tree path's */
    compare_str(s, base, 0);
    mutate(s, base);
}

static void test_unions_numbers_maps(void)
{
    const lev_schema_t *s =
        add("{\"type\":\"record\",\"name\":\"U\",\"namespace\":\"t.je\",\"fields\":["
            "{\"name\":\"a\",\"type\":[\"null\",\"int\",\"string\"]},"
            "{\"name\":\"b\",\"type\":[\"int\",\"long\"],\"default\":1},"
            "{\"name\":\"c\",\"type\":[\"null\",\"double\",{\"type\":\"array\",\"items\":\"int\"}],"
            "\"default\":null},"
            "{\"name\":\"f\",\"type\":\"float\",\"default\":0.1},"
            "{\"name\":\"d\",\"type\":\"double\",\"default\":1e300},"
            "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"boolean\"]},"
            "\"default\":{}},"
            "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\"]},"
            "\"default\":\"Y\"}]}");
    REQUIRE(s);
    static const struct {
        const char *text;
        int direct;
    } cases[] = {
        {"{\"a\":null}", 1},
        {"{\"a\":5}", 1},     /* bare: fits int only */
        {"{\"a\":\"x\"}", 1}, /* bare: fits string only */
        {"{\"a\":{\"int\":5}}", 1},
        {"{\"a\":{\"string\":\"x\"}}", 1},
        {"{\"a\":{\"long\":5}}", 0}, /* no such branch */
        {"{\"a\":{\"int\":5,\"string\":\"x\"}}", 0},
        {"{\"a\":{}}", 0},
        {"{\"a\":1.5}", 0},
        {"{\"a\":2147483648}", 0},
        {"{\"a\":null,\"b\":7}", 0}, /* bare 7 fits int and long */
        {"{\"a\":null,\"b\":{\"long\":7}}", 1},
        {"{\"a\":null,\"c\":2}", 1}, /* an integer fits double */
        {"{\"a\":null,\"c\":[1,2]}", 1},
        {"{\"a\":null,\"c\":{\"double\":\"NaN\"}}", 0},
        {"{\"a\":null,\"f\":3}", 1},
        {"{\"a\":null,\"f\":3.4028235e38}", 1},
        {"{\"a\":null,\"f\":1e39}", 1},     /* a float of infinity, as avro-c writes it */
        {"{\"a\":null,\"d\":1e309}", 0},    /* jansson refuses the overflow */
        {"{\"a\":null,\"d\":4.9e-325}", 1}, /* an underflow is 0 for both */
        {"{\"a\":null,\"d\":0.1000000000000000055511151231257827021181583404541015625}", 1},
        {"{\"a\":null,\"d\":-0}", 1},
        {"{\"a\":null,\"d\":-0.0}", 1},
        {"{\"a\":null,\"d\":123456789012345678901234567890}", 0}, /* too big an integer */
        {"{\"a\":null,\"m\":{\"x\":true,\"y\":null,\"\\u00e9\":{\"boolean\":false}}}", 1},
        {"{\"a\":null,\"m\":{\"x\":true,\"x\":null}}", 0},
        {"{\"a\":null,\"e\":\"X\"}", 1},
        {"{\"a\":null,\"e\":\"Z\"}", 0},
        {"{\"e\":\"X\",\"a\":null,\"b\":{\"int\":1}}", 1}, /* out of schema order */
        {"{\"e\":\"X\",\"a\":null,\"e\":\"Y\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        compare_str(s, cases[i].text, cases[i].direct);
    /* a map with more entries than the direct path checks for duplicates */
    char big[4096] = "{\"a\":null,\"m\":{";
    for (int i = 0; i < 70; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"k%d\":true", i ? "," : "", i);
    strcat(big, "}}");
    compare_str(s, big, 0);
}

static void test_defaults_and_depth(void)
{
    const lev_schema_t *s = find("test.defaults.Defaults");
    REQUIRE(s);
    /* "raw" (bytes) and "tag" (fixed) have defaults only the tree path
     * writes; given, the others' defaults are the direct path's */
    compare_str(s, "{\"id\":\"x\"}", 0);
    compare_str(s, "{\"id\":\"x\",\"raw\":\"\",\"tag\":\"zz\"}", 0);
    const lev_schema_t *d = add(
        "{\"type\":\"record\",\"name\":\"D\",\"namespace\":\"t.je\",\"fields\":["
        "{\"name\":\"id\",\"type\":\"string\"},"
        "{\"name\":\"n\",\"type\":\"int\",\"default\":1},"
        "{\"name\":\"l\",\"type\":[\"int\",\"null\"],\"default\":3},"
        "{\"name\":\"s\",\"type\":{\"type\":\"record\",\"name\":\"S\",\"fields\":["
        "{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"string\",\"default\":\"bee\"}"
        "]},\"default\":{\"a\":7}},"
        "{\"name\":\"z\",\"type\":\"null\",\"default\":null},"
        "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"S\"},"
        "\"default\":[{\"a\":1},{\"a\":2,\"b\":\"c\"}]}]}");
    REQUIRE(d);
    compare_str(d, "{\"id\":\"x\"}", 1);
    compare_str(d, "{\"s\":{\"a\":1},\"id\":\"x\"}", 1);
    compare_str(d, "{\"id\":\"x\",\"s\":{}}", 0); /* S.a has no default */
    compare_str(d, "{\"s\":{\"a\":1}}", 0);       /* nor has id: never given */
    compare_str(d, "{\"n\":2,\"s\":{\"a\":1}}", 0);
    mutate(d, "{\"id\":\"x\",\"l\":null,\"arr\":[{\"a\":9}]}");

    /* nesting against the codec's depth limit, defaults' depth included */
    const lev_schema_t *t = find("test.tree.Node");
    REQUIRE(t);
    char deep[8192] = "", tail[8192] = "";
    for (int i = 0; i < 40; i++) {
        strcat(deep, "{\"value\":1,\"children\":[");
        strcat(tail, "]}");
    }
    char text[16384];
    snprintf(text, sizeof text, "%s{\"value\":2,\"children\":[]}%s", deep, tail);
    compare_str(t, text, 0); /* 81 levels: over the default limit of 64 */
    compare_str(t,
                "{\"value\":1,\"children\":[{\"value\":2,\"children\":[]}],"
                "\"next\":{\"test.tree.Node\":{\"value\":3,\"children\":[]}}}",
                1);
}

static void test_every_schema_round_trip(void)
{
    /* every current schema of the set, with the value of its own JSON:
     * each value the tree path writes, read back and written as JSON,
     * goes through both again */
    setup();
    size_t before = direct_taken;
    for (size_t i = 0; i < lev_schemas_count(set); i++) {
        const lev_schema_t *s = lev_schemas_at(set, i);
        if (!lev_schema_is_current(s))
            continue;
        avro_value_t v;
        if (lev_codec_new_value(codec, s, &v) != 0)
            continue;
        json_t *j = lev_codec_to_json(&v, NULL); /* the empty value: zeros, empty strings */
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (text)
            compare_str(s, text, -1);
        free(text);
        json_decref(j);
        avro_value_decref(&v);
    }
    CHECK(direct_taken > before);
}

static void test_used_and_arguments(void)
{
    const lev_schema_t *s = find("shop.order.OrderPlaced");
    REQUIRE(s);
    char text[1024];
    snprintf(text, sizeof text, "%s , \"next\": 1}", order);
    char *buf = NULL;
    size_t blen = 0, bcap = 0, used = 0;
    lev_error_t err;
    CHECK_INT(lev_codec_encode_json(codec, s, text, strlen(text), &used, &buf, &blen, &bcap, &err),
              ==, 0);
    CHECK_INT(used, ==, strlen(order));
    /* the same through the tree path (a duplicate member forces it) */
    size_t used2 = 0, blen2 = 0;
    const char *dup = "{\"order_id\":\"a\",\"order_id\":\"b\"} tail";
    CHECK(lev_codec_encode_json(codec, s, dup, strlen(dup), &used2, &buf, &blen2, &bcap, &err) ==
          LEV_ERR_JSON);
    CHECK_INT(blen2, ==, 0);
    CHECK_INT(lev_codec_encode_json(codec, s, "{", 1, NULL, &buf, &blen, &bcap, &err), ==,
              LEV_ERR_JSON);
    CHECK(strstr(err.text, "invalid JSON at column") != NULL);
    CHECK_INT(lev_codec_encode_json(NULL, s, "{}", 2, NULL, &buf, &blen, &bcap, &err), ==,
              LEV_ERR_ARG);
    free(buf);
    fprintf(stderr, "%zu texts compared, %zu on the direct path\n", compared, direct_taken);
}

CHECK_MAIN(CASE(test_reader_strings), CASE(test_reader_strings_every_byte_at_every_offset),
           CASE(test_reader_numbers_and_structure), CASE(test_order_placed), CASE(test_all_types),
           CASE(test_unions_numbers_maps), CASE(test_defaults_and_depth),
           CASE(test_every_schema_round_trip), CASE(test_used_and_arguments))
