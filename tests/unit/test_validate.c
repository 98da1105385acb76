/*
 * The bounded validator and the decode path on hostile bytes: every
 * malformed input gives its clean error code (never a crash, never a large
 * allocation), with the field path in err->where.
 */
#include "check.h"

#include "codec_internal.h"

#include <libevents.h>
#include <time.h>

/* ---- helpers ---------------------------------------------------------- */

static const lev_schema_t *add(lev_schemas_t *set, const char *json)
{
    lev_error_t err;
    memset(&err, 0, sizeof err);
    const lev_schema_t *s = NULL;
    if (lev_schemas_add(set, json, strlen(json), NULL, 0, &s, &err) != 0)
        fprintf(stderr, "schema refused: %s\n", err.text);
    return s;
}

/* Zig-zag varint of v into p; returns its length. */
static size_t put_long(uint8_t *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    return n;
}

/* A single-object framed copy of body for schema s (malloc'd). */
static uint8_t *frame(const lev_schema_t *s, const uint8_t *body, size_t len, size_t *out_len)
{
    uint8_t *b = malloc(len + 10);
    uint64_t fp = lev_schema_fingerprint(s);
    b[0] = 0xc3;
    b[1] = 0x01;
    for (int i = 0; i < 8; i++)
        b[2 + i] = (uint8_t)(fp >> (8 * i));
    if (len)
        memcpy(b + 10, body, len);
    *out_len = len + 10;
    return b;
}

/* Decodes body framed for s; returns the code, fills err. */
static int decode_body(lev_codec_t *codec, const lev_schema_t *s, const uint8_t *body, size_t len,
                       lev_error_t *err)
{
    size_t flen;
    uint8_t *f = frame(s, body, len, &flen);
    avro_value_t v;
    memset(err, 0, sizeof *err);
    int rc = lev_codec_decode(codec, f, flen, NULL, &v, NULL, err);
    if (rc == 0)
        avro_value_decref(&v);
    free(f);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define REC(fields) "{\"type\":\"record\",\"name\":\"t.R\",\"fields\":[" fields "]}"

/* ---- framing ---------------------------------------------------------- */

static void decode_rejects_garbage(void)
{
    lev_schemas_t *set = lev_schemas_new();
    add(set, REC("{\"name\":\"a\",\"type\":\"int\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    lev_error_t err;
    avro_value_t v;
    const char *garbage = "hello, this is not Avro at all";
    CHECK_INT(lev_codec_decode(codec, garbage, strlen(garbage), NULL, &v, NULL, &err), ==,
              LEV_ERR_DECODE);
    CHECK(v.self == NULL);
    CHECK_INT(lev_codec_decode(codec, NULL, 0, NULL, &v, NULL, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void decode_rejects_bad_framing(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"a\",\"type\":\"int\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[] = {0x02};
    size_t flen;
    uint8_t *f = frame(s, body, 1, &flen);
    lev_error_t err;
    avro_value_t v;
    /* Good framing decodes. */
    CHECK_INT(lev_codec_decode(codec, f, flen, NULL, &v, NULL, &err), ==, 0);
    avro_value_decref(&v);
    /* Wrong magic, wrong version, and too short for the header. */
    f[0] = 0xc4;
    CHECK_INT(lev_codec_decode(codec, f, flen, NULL, &v, NULL, &err), ==, LEV_ERR_DECODE);
    f[0] = 0xc3;
    f[1] = 0x02;
    CHECK_INT(lev_codec_decode(codec, f, flen, NULL, &v, NULL, &err), ==, LEV_ERR_DECODE);
    f[1] = 0x01;
    for (size_t n = 0; n < 10; n++)
        CHECK_INT(lev_codec_decode(codec, f, n, NULL, &v, NULL, &err), ==, LEV_ERR_DECODE);
    /* Confluent framing is read too: an id no registry can name is an
     * unknown schema (tests/unit/test_wire.c has the rest). */
    uint8_t confluent[] = {0x00, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 0};
    CHECK_INT(lev_codec_decode(codec, confluent, sizeof confluent, NULL, &v, NULL, &err), ==,
              LEV_ERR_UNKNOWN_SCHEMA);
    uint64_t fp = 0;
    CHECK_INT(lev_codec_peek_fingerprint(f, flen, &fp), ==, 0);
    CHECK(fp == lev_schema_fingerprint(s));
    CHECK_INT(lev_codec_peek_fingerprint(confluent, sizeof confluent, &fp), ==, LEV_ERR_DECODE);
    free(f);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void decode_rejects_unknown_fingerprint_naming_it(void)
{
    lev_schemas_t *set = lev_schemas_new();
    add(set, REC("{\"name\":\"a\",\"type\":\"int\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t buf[] = {0xc3, 0x01, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0x02};
    lev_error_t err;
    avro_value_t v;
    CHECK_INT(lev_codec_decode(codec, buf, sizeof buf, NULL, &v, NULL, &err), ==,
              LEV_ERR_UNKNOWN_SCHEMA);
    CHECK(strstr(err.text, "0123456789abcdef") != NULL);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* ---- the body ---------------------------------------------------------- */

static void every_truncation_of_a_valid_body_is_a_decode_error(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, REC("{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"d\",\"type\":\"double\"},"
                     "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"
                     "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"float\"}},"
                     "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}},"
                     "{\"name\":\"u\",\"type\":[\"null\",\"long\"]}"));
    REQUIRE(s != NULL);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[128];
    size_t n = 0;
    n += put_long(body + n, 3);
    memcpy(body + n, "abc", 3);
    n += 3;
    memset(body + n, 0x11, 8);
    n += 8;
    n += put_long(body + n, 2);
    n += put_long(body + n, 300);
    n += put_long(body + n, -70000);
    n += put_long(body + n, 0);
    n += put_long(body + n, 1);
    n += put_long(body + n, 1);
    body[n++] = 'k';
    memset(body + n, 0x22, 4);
    n += 4;
    n += put_long(body + n, 0);
    memcpy(body + n, "xyz", 3);
    n += 3;
    n += put_long(body + n, 1);
    n += put_long(body + n, 1234567890123LL);
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, 0);
    for (size_t cut = 0; cut < n; cut++) {
        int rc = decode_body(codec, s, body, cut, &err);
        if (rc != LEV_ERR_DECODE)
            fprintf(stderr, "cut at %zu: %d\n", cut, rc);
        CHECK_INT(rc, ==, LEV_ERR_DECODE);
    }
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void array_of_200_million_nulls_fails_fast(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"a\",\"type\":{\"type\":\"array\","
                                         "\"items\":\"null\"}}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[16];
    size_t n = put_long(body, 200000000);
    body[n++] = 0x00; /* end of the array */
    CHECK_INT(n, ==, 6);
    lev_error_t err;
    double t0 = now_s();
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    double took = now_s() - t0;
    CHECK(took < 0.05);
    CHECK_STR(err.where, "a");
    CHECK(strstr(err.text, "limit") != NULL);
    /* The same value with a negative count and a byte size. */
    n = put_long(body, -200000000);
    n += put_long(body + n, 0);
    body[n++] = 0x00;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    /* Within the item limit, nulls are fine. */
    n = put_long(body, 1000);
    body[n++] = 0x00;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, 0);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void max_items_counts_every_array_and_map_of_the_value(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, REC("{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
                     "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"null\"}}"));
    lev_codec_limits_t lim = {0};
    lim.max_items = 5;
    lev_codec_t *codec = lev_codec_new(set, &lim);
    uint8_t body[64];
    size_t n = put_long(body, 3);
    n += put_long(body + n, 1);
    n += put_long(body + n, 2);
    n += put_long(body + n, 3);
    body[n++] = 0;
    size_t keep = n;
    n += put_long(body + n, 2);
    n += put_long(body + n, 1);
    body[n++] = 'a';
    n += put_long(body + n, 1);
    body[n++] = 'b';
    body[n++] = 0;
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, 0); /* 5 items */
    n = keep;
    n += put_long(body + n, 3);
    for (int i = 0; i < 3; i++) {
        n += put_long(body + n, 1);
        body[n++] = (uint8_t)('a' + i);
    }
    body[n++] = 0;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE); /* 6 items */
    CHECK_STR(err.where, "m");
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void block_count_beyond_the_bytes_left_is_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, REC("{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"double\"}}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[64] = {0};
    size_t n = put_long(body, 3); /* 3 doubles need 24 bytes; 17 are there */
    n += 17;
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "cannot fit") != NULL);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void huge_bytes_length_prefix_is_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, REC("{\"name\":\"b\",\"type\":\"bytes\"},{\"name\":\"s\",\"type\":\"string\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[32];
    size_t n = put_long(body, 1500000000LL);
    memcpy(body + n, "abcd", 4);
    n += 4;
    lev_error_t err;
    double t0 = now_s();
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK(now_s() - t0 < 0.05);
    CHECK_STR(err.where, "b");
    /* Longer than max_bytes_len but present in full. */
    lev_codec_limits_t lim = {0};
    lim.max_bytes_len = 3;
    lev_codec_t *small = lev_codec_new(set, &lim);
    n = put_long(body, 2);
    memcpy(body + n, "ab", 2);
    n += 2;
    n += put_long(body + n, 4);
    memcpy(body + n, "abcd", 4);
    n += 4;
    CHECK_INT(decode_body(small, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "s");
    CHECK(strstr(err.text, "limit of 3") != NULL);
    lev_codec_destroy(small);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void negative_lengths_are_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"s\",\"type\":\"string\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[16];
    size_t n = put_long(body, -1);
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "negative") != NULL);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void enum_ordinal_out_of_range_is_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":"
                                         "\"E\",\"symbols\":[\"A\",\"B\"]}}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[16];
    lev_error_t err;
    size_t n = put_long(body, 1);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, 0);
    n = put_long(body, 5);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "e");
    CHECK(strstr(err.text, "enum ordinal 5") != NULL);
    n = put_long(body, -1);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void union_index_out_of_range_is_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"u\",\"type\":[\"null\",\"string\"]}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[16];
    lev_error_t err;
    size_t n = put_long(body, 2);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "u");
    CHECK(strstr(err.text, "union index 2") != NULL);
    n = put_long(body, -1);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void trailing_bytes_are_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"a\",\"type\":\"int\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[] = {0x02, 0xff, 0x00};
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, 1, &err), ==, 0);
    CHECK_INT(decode_body(codec, s, body, 3, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "2 trailing bytes") != NULL);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void overlong_and_overflowing_varints_are_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *sl = add(set, REC("{\"name\":\"l\",\"type\":\"long\"}"));
    const lev_schema_t *si =
        add(set, "{\"type\":\"record\",\"name\":\"t.I\",\"fields\":[{\"name\":\"i\",\"type\":"
                 "\"int\"}]}");
    lev_codec_t *codec = lev_codec_new(set, NULL);
    lev_error_t err;
    uint8_t eleven[11];
    memset(eleven, 0x80, 10);
    eleven[10] = 0x01;
    CHECK_INT(decode_body(codec, sl, eleven, 11, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "longer than 10") != NULL);
    uint8_t max[10];
    size_t n = put_long(max, INT64_MIN);
    CHECK_INT(n, ==, 10);
    CHECK_INT(decode_body(codec, sl, max, n, &err), ==, 0);
    max[9] = 0x03; /* a 65th bit */
    CHECK_INT(decode_body(codec, sl, max, n, &err), ==, LEV_ERR_DECODE);
    /* int: at most 5 bytes and 32 bits. */
    n = put_long(max, INT32_MIN);
    CHECK_INT(decode_body(codec, si, max, n, &err), ==, 0);
    n = put_long(max, (int64_t)INT32_MAX + 1);
    CHECK_INT(decode_body(codec, si, max, n, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "int out of range") != NULL);
    uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    CHECK_INT(decode_body(codec, si, six, 6, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void negative_block_count_with_byte_size_decodes(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, REC("{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"
                     "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[64];
    size_t n = put_long(body, -2);
    n += put_long(body + n, 3); /* two longs: 1 byte + 2 bytes */
    n += put_long(body + n, 5);
    n += put_long(body + n, 1000);
    n += put_long(body + n, 1); /* then a positive block of one */
    n += put_long(body + n, 7);
    body[n++] = 0;
    n += put_long(body + n, -1);
    n += put_long(body + n, 3); /* key "k" (2 bytes) + int (1) */
    n += put_long(body + n, 1);
    body[n++] = 'k';
    n += put_long(body + n, 9);
    body[n++] = 0;
    size_t flen;
    uint8_t *f = frame(s, body, n, &flen);
    avro_value_t v;
    lev_error_t err;
    REQUIRE(lev_codec_decode(codec, f, flen, NULL, &v, NULL, &err) == 0);
    json_t *j = lev_codec_to_json(&v, &err);
    char *txt = json_dumps(j, JSON_COMPACT);
    CHECK_STR(txt, "{\"a\":[5,1000,7],\"m\":{\"k\":9}}");
    free(txt);
    json_decref(j);
    avro_value_decref(&v);
    free(f);
    /* A byte size that does not match the items. */
    n = put_long(body, -2);
    n += put_long(body + n, 4);
    n += put_long(body + n, 5);
    n += put_long(body + n, 1000);
    body[n++] = 0;
    body[n++] = 0;
    body[n++] = 0;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "does not match") != NULL);
    /* A byte size beyond the end, and a negative one. */
    n = put_long(body, -1);
    n += put_long(body + n, 100);
    n += put_long(body + n, 5);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    n = put_long(body, -1);
    n += put_long(body + n, -3);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void invalid_utf8_strings_are_refused(void)
{
    static const struct {
        const char *bytes;
        int valid;
    } cases[] = {
        {"plain ascii", 1},
        {"caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80", 1},
        {"nul\0inside", 1},
        {"\xc3", 0},             /* cut short */
        {"\xc0\xaf", 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 0},     /* overlong */
        {"\xed\xa0\x80", 0},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
        {"\xff", 0},
        {"\x80", 0}, /* lone continuation */
        {"8 plain bytes, then \xe6\xbc\xa2 and more plain ones", 1},
        {"8 plain bytes, then a cut \xe6\xbc", 0},
    };
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"s\",\"type\":\"string\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].bytes);
        if (i == 2)
            len = 11;
        CHECK_INT(lev_utf8_valid((const uint8_t *)cases[i].bytes, len, NULL), ==, cases[i].valid);
        uint8_t body[64];
        size_t n = put_long(body, (int64_t)len);
        memcpy(body + n, cases[i].bytes, len);
        n += len;
        lev_error_t err;
        int rc = decode_body(codec, s, body, n, &err);
        CHECK_INT(rc, ==, cases[i].valid ? 0 : LEV_ERR_DECODE);
        if (!cases[i].valid)
            CHECK(strstr(err.text, "UTF-8") != NULL);
    }
    /* a bad byte at every offset of a run of ASCII, read 8 bytes at a
     * time: refused, at its offset */
    for (size_t k = 0; k < 24; k++) {
        uint8_t text[24];
        memset(text, 'a', sizeof text);
        text[k] = 0xff;
        size_t bad = 99;
        CHECK_INT(lev_utf8_valid(text, sizeof text, &bad), ==, 0);
        CHECK_INT(bad, ==, k);
        text[k] = 'a';
        CHECK_INT(lev_utf8_valid(text, sizeof text, NULL), ==, 1);
    }
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void booleans_other_than_0_and_1_are_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"b\",\"type\":\"boolean\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    lev_error_t err;
    uint8_t b[] = {0x00, 0x01, 0x02};
    CHECK_INT(decode_body(codec, s, b, 1, &err), ==, 0);
    CHECK_INT(decode_body(codec, s, b + 1, 1, &err), ==, 0);
    CHECK_INT(decode_body(codec, s, b + 2, 1, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void fixed_float_and_double_truncation_is_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *sf = add(set, REC("{\"name\":\"f\",\"type\":{\"type\":\"fixed\","
                                          "\"name\":\"F\",\"size\":16}}"));
    const lev_schema_t *sd = add(set, "{\"type\":\"record\",\"name\":\"t.D\",\"fields\":[{\"name\":"
                                      "\"x\",\"type\":\"float\"},{\"name\":\"y\",\"type\":"
                                      "\"double\"}]}");
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t zeros[16] = {0};
    lev_error_t err;
    CHECK_INT(decode_body(codec, sf, zeros, 16, &err), ==, 0);
    CHECK_INT(decode_body(codec, sf, zeros, 15, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "f");
    CHECK_INT(decode_body(codec, sd, zeros, 12, &err), ==, 0);
    CHECK_INT(decode_body(codec, sd, zeros, 3, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "x");
    CHECK_INT(decode_body(codec, sd, zeros, 11, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "y");
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void error_path_names_the_nested_field(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, REC("{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":"
                     "\"record\",\"name\":\"Item\",\"fields\":[{\"name\":\"sku\",\"type\":"
                     "\"string\"},{\"name\":\"quantity\",\"type\":\"int\"}]}}},"
                     "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":[\"null\","
                     "\"Item\"]}}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t body[128];
    size_t n = put_long(body, 3);
    for (int i = 0; i < 3; i++) {
        n += put_long(body + n, 1);
        body[n++] = 'x';
        if (i < 2)
            n += put_long(body + n, 1);
    }
    memset(body + n, 0x80, 6); /* items[2].quantity: an int varint that never ends */
    n += 6;
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "items[2].quantity");
    /* In a map value inside a union. */
    n = put_long(body, 0);
    n += put_long(body + n, 1);
    n += put_long(body + n, 5);
    memcpy(body + n, "color", 5);
    n += 5;
    n += put_long(body + n, 1); /* the Item branch */
    n += put_long(body + n, -4);
    CHECK_INT(decode_body(codec, s, body, n, &err), ==, LEV_ERR_DECODE);
    CHECK_STR(err.where, "attrs[\"color\"].sku");
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void recursive_schema_nesting_is_bounded_by_max_depth(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s =
        add(set, "{\"type\":\"record\",\"name\":\"t.Node\",\"fields\":[{\"name\":\"next\","
                 "\"type\":[\"null\",\"t.Node\"]}]}");
    REQUIRE(s != NULL);
    lev_codec_t *codec = lev_codec_new(set, NULL); /* max_depth 64 */
    lev_codec_limits_t lim = {0};
    lim.max_depth = 500;
    lev_codec_t *deep = lev_codec_new(set, &lim);
    uint8_t body[200];
    for (int levels = 1; levels <= 100; levels += 99) {
        /* levels nested nodes: index 1 (Node) levels-1 times, then 0 (null). */
        size_t n = 0;
        for (int i = 0; i < levels - 1; i++)
            body[n++] = 0x02;
        body[n++] = 0x00;
        lev_error_t err;
        /* Each node is a record and a union: two levels of nesting. */
        int want = 2 * levels <= 64 ? 0 : LEV_ERR_DECODE;
        CHECK_INT(decode_body(codec, s, body, n, &err), ==, want);
        if (want)
            CHECK(strstr(err.text, "deeper than 64") != NULL);
        CHECK_INT(decode_body(deep, s, body, n, &err), ==, 0);
    }
    lev_codec_destroy(deep);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void value_larger_than_max_value_size_is_refused(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"b\",\"type\":\"bytes\"}"));
    lev_codec_limits_t lim = {0};
    lim.max_value_size = 64;
    lev_codec_t *codec = lev_codec_new(set, &lim);
    uint8_t body[100] = {0};
    size_t n = put_long(body, 60);
    lev_error_t err;
    CHECK_INT(decode_body(codec, s, body, n + 60, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "exceeds the limit of 64") != NULL);
    CHECK_INT(lev_codec_validate_body(codec, s, body, n + 60, &err), ==, 0 + 0);
    CHECK_INT(lev_codec_validate_body(codec, s, body, 99, &err), ==, LEV_ERR_DECODE);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

static void validate_body_checks_without_decoding(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = add(set, REC("{\"name\":\"a\",\"type\":\"int\"}"));
    lev_codec_t *codec = lev_codec_new(set, NULL);
    uint8_t ok[] = {0x54};
    uint8_t bad[] = {0x80};
    lev_error_t err;
    CHECK_INT(lev_codec_validate_body(codec, s, ok, 1, &err), ==, 0);
    CHECK_INT(lev_codec_validate_body(codec, s, bad, 1, &err), ==, LEV_ERR_DECODE);
    CHECK_INT(lev_codec_validate_body(codec, s, NULL, 0, &err), ==, LEV_ERR_DECODE);
    CHECK_INT(lev_codec_validate_body(NULL, s, ok, 1, &err), ==, LEV_ERR_ARG);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* Random corruptions of a valid value: each must decode or be refused
 * cleanly (the sanitizer builds check for the rest). */
static void random_corruptions_never_crash(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *dir = getenv("LEV_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/avro/all_types.avsc", dir ? dir : "tests/data");
    lev_error_t err;
    REQUIRE(lev_schemas_load_file(set, path, 0, &err) == 0);
    const lev_schema_t *s = lev_schemas_at(set, 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    const char *sample =
        "{\"n\":null,\"b\":true,\"i\":-7,\"l\":1234567890123,\"f\":1.5,\"d\":-2.25,"
        "\"s\":\"caf\\u00e9\",\"by\":\"\\u00ff\\u0001\",\"color\":\"GREEN\",\"hash\":\"abcd\","
        "\"ints\":[1,2,3],\"labels\":{\"k\":\"v\",\"k2\":\"w\"},\"maybe\":{\"string\":\"x\"},"
        "\"choice\":{\"array\":[1,2]},\"inner\":{\"x\":1,\"tags\":[\"a\",\"b\"]},"
        "\"maybe_inner\":{\"test.types.Inner\":{\"x\":2,\"tags\":[]}},"
        "\"inners\":{\"q\":[{\"x\":3,\"tags\":[\"z\"]}]},\"at\":1700000000000,"
        "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"other_hash\":\"wxyz\"}";
    json_t *j = json_loads(sample, 0, NULL);
    avro_value_t v;
    REQUIRE(lev_codec_from_json(codec, s, j, &v, &err) == 0);
    void *buf;
    size_t len;
    REQUIRE(lev_codec_encode(codec, s, &v, &buf, &len, &err) == 0);
    avro_value_decref(&v);
    json_decref(j);
    uint8_t *copy = malloc(len);
    unsigned seed = 12345;
    int ok = 0, refused = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, buf, len);
        int flips = 1 + (int)(rand_r(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = 10 + (size_t)rand_r(&seed) % (len - 10);
            copy[at] = (uint8_t)rand_r(&seed);
        }
        size_t use = (rand_r(&seed) % 8 == 0) ? 10 + (size_t)rand_r(&seed) % (len - 10) : len;
        avro_value_t out;
        int rc = lev_codec_decode(codec, copy, use, NULL, &out, NULL, &err);
        if (rc == 0) {
            ok++;
            json_t *back = lev_codec_to_json(&out, &err);
            CHECK(back != NULL); /* what decodes can be shown as JSON */
            json_decref(back);
            avro_value_decref(&out);
        } else {
            refused++;
            CHECK_INT(rc, ==, LEV_ERR_DECODE);
        }
    }
    fprintf(stderr, "%d decoded, %d refused\n", ok, refused);
    CHECK(refused > 0);
    free(copy);
    free(buf);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

/* ---- filling a value without avro-c's reader -------------------------- */

typedef struct gen_s {
    uint64_t rng;
    uint8_t *buf;
    size_t len, cap;
} gen_t;

static uint32_t gen_rand(gen_t *g)
{
    g->rng = g->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g->rng >> 33);
}

static void gen_bytes(gen_t *g, const void *p, size_t n)
{
    if (g->len + n > g->cap) {
        g->cap = (g->len + n) * 2 + 64;
        g->buf = realloc(g->buf, g->cap);
    }
    memcpy(g->buf + g->len, p, n);
    g->len += n;
}

static void gen_long(gen_t *g, int64_t v)
{
    uint8_t b[10];
    gen_bytes(g, b, put_long(b, v));
}

/* A random value of s, encoded (finite floats only: NaN is not equal to
 * itself, which would make equal values compare unequal). */
static void gen_value(gen_t *g, avro_schema_t s, int depth)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    static const char *const pieces[] = {
        "a", "b", "k", "", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
    };
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        break;
    case AVRO_BOOLEAN: {
        uint8_t b = (uint8_t)(gen_rand(g) & 1);
        gen_bytes(g, &b, 1);
        break;
    }
    case AVRO_INT32:
        gen_long(g, (int32_t)gen_rand(g) >> (gen_rand(g) % 32));
        break;
    case AVRO_INT64:
        gen_long(g, (int64_t)(((uint64_t)gen_rand(g) << 32) | gen_rand(g)) >> (gen_rand(g) % 64));
        break;
    case AVRO_FLOAT: {
        float f = (float)((int32_t)gen_rand(g)) / 1024.0f;
        gen_bytes(g, &f, 4);
        break;
    }
    case AVRO_DOUBLE: {
        double d = (double)(int32_t)gen_rand(g) / 3.0;
        gen_bytes(g, &d, 8);
        break;
    }
    case AVRO_STRING: { /* few distinct strings: map keys repeat */
        char text[64] = "";
        size_t n = gen_rand(g) % 5;
        for (size_t i = 0; i < n; i++)
            strcat(text, pieces[gen_rand(g) % 7]);
        gen_long(g, (int64_t)strlen(text));
        gen_bytes(g, text, strlen(text));
        break;
    }
    case AVRO_BYTES: {
        uint8_t b[40];
        size_t n = gen_rand(g) % sizeof b;
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)gen_rand(g);
        gen_long(g, (int64_t)n);
        gen_bytes(g, b, n);
        break;
    }
    case AVRO_FIXED:
        for (int64_t i = 0; i < avro_schema_fixed_size(s); i++) {
            uint8_t b = (uint8_t)gen_rand(g);
            gen_bytes(g, &b, 1);
        }
        break;
    case AVRO_ENUM:
        gen_long(g, gen_rand(g) % (uint32_t)avro_schema_enum_number_of_symbols(s));
        break;
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            gen_value(g, avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        break;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        int map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t item = map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        size_t blocks = depth > 4 ? 0 : gen_rand(g) % 3;
        for (size_t b = 0; b < blocks; b++) {
            int64_t count = 1 + gen_rand(g) % 4;
            gen_t inner = {.rng = g->rng};
            for (int64_t k = 0; k < count; k++) {
                if (map) /* a key of one to three letters: duplicates happen */
                    gen_value(&inner, avro_schema_string(), depth + 1);
                gen_value(&inner, item, depth + 1);
            }
            g->rng = inner.rng;
            if (gen_rand(g) & 1) { /* the form with the block's byte size */
                gen_long(g, -count);
                gen_long(g, (int64_t)inner.len);
            } else {
                gen_long(g, count);
            }
            gen_bytes(g, inner.buf, inner.len);
            free(inner.buf);
        }
        gen_long(g, 0);
        break;
    }
    case AVRO_UNION: {
        size_t n = avro_schema_union_size(s), pick = gen_rand(g) % n;
        if (depth > 4) /* deep: the first branch that does not recurse, if any */
            for (size_t i = 0; i < n; i++)
                if (!is_avro_named_type(avro_schema_union_branch(s, (int)i)) &&
                    !is_avro_link(avro_schema_union_branch(s, (int)i))) {
                    pick = i;
                    break;
                }
        gen_long(g, (int64_t)pick);
        gen_value(g, avro_schema_union_branch(s, (int)pick), depth + 1);
        break;
    }
    default:
        break;
    }
}

/* What lev_vplan_fill makes is what avro-c's reader makes, for random
 * values of every type (blocks with and without byte sizes, repeated map
 * keys, recursion), into a value reused across them as the worker does. */
static void fill_matches_avro_c_reader(void)
{
    lev_schemas_t *set = lev_schemas_new();
    const char *schemas[] = {
        "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"t\",\"fields\":["
        "{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"b\",\"type\":\"boolean\"},"
        "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
        "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
        "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"y\",\"type\":\"bytes\"},"
        "{\"name\":\"x\",\"type\":{\"type\":\"fixed\",\"name\":\"F3\",\"size\":3}},"
        "{\"name\":\"e\",\"type\":"
        "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}},"
        "{\"name\":\"a\",\"type\":"
        "{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"It\","
        "\"fields\":[{\"name\":\"k\",\"type\":\"string\"},{\"name\":\"q\",\"type\":\"int\"}]}}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"string\",\"long\","
        "{\"type\":\"array\",\"items\":\"string\"}]}},"
        "{\"name\":\"u\",\"type\":[\"null\",\"F3\",\"E\",\"bytes\",{\"type\":\"map\","
        "\"values\":\"double\"}]}]}",
        "{\"type\":\"record\",\"name\":\"Node\",\"namespace\":\"t\",\"fields\":["
        "{\"name\":\"label\",\"type\":\"string\"},"
        "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]},"
        "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Node\"}}]}",
        "{\"type\":\"record\",\"name\":\"Few\",\"namespace\":\"t\",\"fields\":["
        "{\"name\":\"v\",\"type\":{\"type\":\"array\",\"items\":[\"null\",\"string\"]}},"
        "{\"name\":\"w\",\"type\":{\"type\":\"map\",\"values\":\"Few\"}}]}",
        "{\"type\":\"record\",\"name\":\"Empty\",\"namespace\":\"t\",\"fields\":[]}",
    };
    size_t nschemas = sizeof schemas / sizeof schemas[0];
    const lev_schema_t *ss[8];
    for (size_t i = 0; i < nschemas; i++)
        REQUIRE((ss[i] = add(set, schemas[i])) != NULL);
    lev_error_t err;
    lev_codec_t *codec = lev_codec_new(set, NULL);
    REQUIRE(codec != NULL);
    lev_codec_limits_t limits = *lev_codec_limits(codec);
    avro_reader_t reader = avro_reader_memory("", 0);
    lev_scratch_t scratch = {0};
    int compared = 0, mismatched = 0;
    for (size_t k = 0; k < nschemas; k++) {
        avro_value_t reused;
        REQUIRE(lev_codec_new_value(codec, ss[k], &reused) == 0);
        gen_t g = {.rng = 12345 + k};
        for (int round = 0; round < 3000; round++) {
            g.len = 0;
            gen_value(&g, lev_schema_avro(ss[k]), 0);
            if (lev_vplan_validate(lev_schema_plan(ss[k]), g.buf, g.len, &limits, &err) != 0)
                continue; /* deeper than the limit, say: not a fill's input */
            avro_value_t want;
            REQUIRE(lev_codec_new_value(codec, ss[k], &want) == 0);
            avro_reader_memory_set_source(reader, (const char *)g.buf, (int64_t)g.len);
            CHECK(avro_value_read(reader, &want) == 0);
            avro_value_reset(&reused);
            CHECK_INT(lev_vplan_fill(lev_schema_plan(ss[k]), g.buf, g.len, &reused, &scratch), ==,
                      0);
            if (!avro_value_equal(&want, &reused))
                mismatched++;
            compared++;
            avro_value_decref(&want);
        }
        avro_value_decref(&reused);
        free(g.buf);
    }
    fprintf(stderr, "%d values compared\n", compared);
    CHECK_INT(mismatched, ==, 0);
    CHECK(compared > 10000);
    free(scratch.p);
    avro_reader_free(reader);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);
}

CHECK_MAIN(CASE(decode_rejects_garbage), CASE(decode_rejects_bad_framing),
           CASE(decode_rejects_unknown_fingerprint_naming_it),
           CASE(every_truncation_of_a_valid_body_is_a_decode_error),
           CASE(array_of_200_million_nulls_fails_fast),
           CASE(max_items_counts_every_array_and_map_of_the_value),
           CASE(block_count_beyond_the_bytes_left_is_refused),
           CASE(huge_bytes_length_prefix_is_refused), CASE(negative_lengths_are_refused),
           CASE(enum_ordinal_out_of_range_is_refused), CASE(union_index_out_of_range_is_refused),
           CASE(trailing_bytes_are_refused), CASE(overlong_and_overflowing_varints_are_refused),
           CASE(negative_block_count_with_byte_size_decodes),
           CASE(invalid_utf8_strings_are_refused), CASE(booleans_other_than_0_and_1_are_refused),
           CASE(fixed_float_and_double_truncation_is_refused),
           CASE(error_path_names_the_nested_field),
           CASE(recursive_schema_nesting_is_bounded_by_max_depth),
           CASE(value_larger_than_max_value_size_is_refused),
           CASE(validate_body_checks_without_decoding), CASE(random_corruptions_never_crash),
           CASE(fill_matches_avro_c_reader))
