/*
 * The two wire formats side by side, without a registry: framing of both,
 * hostile headers, ids bound by hand (as lev_codec_register binds them),
 * encode in the Confluent framing and decode of both framings through one
 * codec, and what a Confluent value with an id the codec does not know
 * gives when no registry is configured.
 */
#include "check.h"

#include <libevents.h>

#define V1                                                                                         \
    "{\"type\":\"record\",\"name\":\"W\",\"namespace\":\"t.wire\",\"doc\":\"kept\",\"fields\":["   \
    "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"int\"}]}"
#define V2                                                                                         \
    "{\"type\":\"record\",\"name\":\"W\",\"namespace\":\"t.wire\",\"fields\":["                    \
    "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"long\"},"                    \
    "{\"name\":\"extra\",\"type\":\"string\",\"default\":\"none\"}]}"

typedef struct fixture_s {
    lev_schemas_t *set;
    lev_codec_t *codec;
    const lev_schema_t *v1, *v2;
} fixture_t;

/* v1 writer-only, v2 current. */
static int fixture_open(fixture_t *f)
{
    lev_error_t err;
    memset(f, 0, sizeof *f);
    f->set = lev_schemas_new();
    if (!f->set ||
        lev_schemas_add(f->set, V1, strlen(V1), "v1", LEV_SCHEMA_WRITER_ONLY, &f->v1, &err) != 0 ||
        lev_schemas_add(f->set, V2, strlen(V2), "v2", 0, &f->v2, &err) != 0)
        return -1;
    f->codec = lev_codec_new(f->set, NULL);
    return f->codec ? 0 : -1;
}

static void fixture_close(fixture_t *f)
{
    lev_codec_destroy(f->codec);
    lev_schemas_destroy(f->set);
}

/* A value of v1 {"id": id, "n": n}, encoded with the codec's wire format. */
static int encode_v1(fixture_t *f, const char *id, int n, void **buf, size_t *len, lev_error_t *err)
{
    avro_value_t v;
    if (lev_codec_new_value(f->codec, f->v1, &v) != 0)
        return -1;
    lev_value_set_string(&v, "id", id);
    lev_value_set_int(&v, "n", n);
    int rc = lev_codec_encode(f->codec, f->v1, &v, buf, len, err);
    avro_value_decref(&v);
    return rc;
}

static void wire_format_names_parse_both_ways(void)
{
    lev_wire_format_t f = LEV_WIRE_CONFLUENT;
    CHECK_INT(lev_wire_format_parse("soe", &f), ==, 0);
    CHECK_INT(f, ==, LEV_WIRE_SOE);
    CHECK_INT(lev_wire_format_parse("single-object", &f), ==, 0);
    CHECK_INT(lev_wire_format_parse("confluent", &f), ==, 0);
    CHECK_INT(f, ==, LEV_WIRE_CONFLUENT);
    CHECK_INT(lev_wire_format_parse("Confluent!", &f), ==, LEV_ERR_CONFIG);
    CHECK_INT(lev_wire_format_parse("", &f), ==, LEV_ERR_CONFIG);
    CHECK_STR(lev_wire_format_name(LEV_WIRE_SOE), "soe");
    CHECK_STR(lev_wire_format_name(LEV_WIRE_CONFLUENT), "confluent");
}

static void peek_frame_tells_the_framings_apart_by_the_first_byte(void)
{
    lev_frame_t fr;
    lev_error_t err;
    const uint8_t soe[] = {0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x02};
    REQUIRE(lev_codec_peek_frame(soe, sizeof soe, &fr, &err) == 0);
    CHECK_INT(fr.format, ==, LEV_WIRE_SOE);
    CHECK(fr.fingerprint == 0x0807060504030201ull);
    CHECK_INT(fr.header, ==, 10);
    const uint8_t conf[] = {0x00, 0x00, 0x01, 0x02, 0x03, 0x02};
    REQUIRE(lev_codec_peek_frame(conf, sizeof conf, &fr, &err) == 0);
    CHECK_INT(fr.format, ==, LEV_WIRE_CONFLUENT);
    CHECK_INT(fr.schema_id, ==, 0x010203);
    CHECK_INT(fr.header, ==, 5);
    /* an empty body is a valid frame (a record without fields) */
    CHECK_INT(lev_codec_peek_frame(conf, 5, &fr, &err), ==, 0);
}

static void hostile_headers_are_decode_errors_that_say_why(void)
{
    lev_frame_t fr;
    lev_error_t err;
    const uint8_t trunc[] = {0x00, 0x00, 0x01};
    CHECK_INT(lev_codec_peek_frame(trunc, sizeof trunc, &fr, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "truncated Confluent header (3 bytes") != NULL);
    const uint8_t magic[] = {0x7b, 0x22, 0x61, 0x22, 0x7d}; /* {"a"} */
    CHECK_INT(lev_codec_peek_frame(magic, sizeof magic, &fr, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "0x7b") != NULL);
    const uint8_t soe_short[] = {0xc3, 0x01, 1, 2};
    CHECK_INT(lev_codec_peek_frame(soe_short, sizeof soe_short, &fr, &err), ==, LEV_ERR_DECODE);
    const uint8_t soe_bad[] = {0xc3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_INT(lev_codec_peek_frame(soe_bad, sizeof soe_bad, &fr, &err), ==, LEV_ERR_DECODE);
    CHECK_INT(lev_codec_peek_frame(NULL, 0, &fr, &err), ==, LEV_ERR_DECODE);
    CHECK(strstr(err.text, "empty") != NULL);
}

static void confluent_encode_needs_an_id_then_frames_with_it(void)
{
    fixture_t f;
    REQUIRE(fixture_open(&f) == 0);
    lev_error_t err;
    void *buf = NULL;
    size_t len = 0;
    lev_codec_set_wire_format(f.codec, LEV_WIRE_CONFLUENT);
    CHECK_INT(lev_codec_wire_format(f.codec), ==, LEV_WIRE_CONFLUENT);
    CHECK_INT(lev_codec_schema_id(f.codec, f.v1), ==, -1);
    CHECK_INT(encode_v1(&f, "a", 1, &buf, &len, &err), ==, LEV_ERR_STATE);
    CHECK(strstr(err.text, "registry id") != NULL);
    CHECK(buf == NULL);
    /* registering without a registry says what is missing */
    CHECK_INT(lev_codec_register(f.codec, "t", f.v1, &err), ==, LEV_ERR_STATE);
    CHECK(strstr(err.text, "LEV_SCHEMA_REGISTRY_URL") != NULL);

    REQUIRE(lev_codec_bind_id(f.codec, f.v1, 0x01020304) == 0);
    CHECK_INT(lev_codec_schema_id(f.codec, f.v1), ==, 0x01020304);
    REQUIRE(encode_v1(&f, "abc", -2, &buf, &len, &err) == 0);
    const uint8_t *b = buf;
    REQUIRE(len == 5 + 1 + 3 + 1);
    CHECK(b[0] == 0x00 && b[1] == 0x01 && b[2] == 0x02 && b[3] == 0x03 && b[4] == 0x04);
    CHECK(b[5] == 6 && memcmp(b + 6, "abc", 3) == 0 && b[9] == 3); /* zigzag -2 = 3 */

    /* decoded through the bound id, resolved to the current version */
    avro_value_t out;
    const lev_schema_t *writer = NULL;
    REQUIRE(lev_codec_decode(f.codec, buf, len, NULL, &out, &writer, &err) == 0);
    CHECK(writer == f.v1);
    CHECK(avro_value_get_schema(&out) == lev_schema_avro(f.v2));
    int64_t n = 0;
    const char *extra = NULL;
    size_t elen = 0;
    CHECK_INT(lev_value_get_long(&out, "n", &n), ==, 0);
    CHECK_INT(n, ==, -2);
    CHECK_INT(lev_value_get_string(&out, "extra", &extra, &elen), ==, 0);
    CHECK_STR(extra, "none");
    avro_value_decref(&out);
    free(buf);
    fixture_close(&f);
}

static void one_codec_reads_both_framings_of_the_same_value(void)
{
    fixture_t f;
    REQUIRE(fixture_open(&f) == 0);
    lev_error_t err;
    void *soe = NULL, *conf = NULL;
    size_t soe_len = 0, conf_len = 0;
    REQUIRE(encode_v1(&f, "x", 7, &soe, &soe_len, &err) == 0);
    REQUIRE(lev_codec_bind_id(f.codec, f.v1, 42) == 0);
    lev_codec_set_wire_format(f.codec, LEV_WIRE_CONFLUENT);
    REQUIRE(encode_v1(&f, "x", 7, &conf, &conf_len, &err) == 0);
    CHECK_INT(soe_len, ==, conf_len + 5); /* same body, headers of 10 and 5 bytes */
    CHECK(memcmp((uint8_t *)soe + 10, (uint8_t *)conf + 5, conf_len - 5) == 0);
    for (int i = 0; i < 2; i++) {
        avro_value_t out;
        const lev_schema_t *writer = NULL;
        size_t hdr = 0;
        const void *buf = i ? conf : soe;
        size_t len = i ? conf_len : soe_len;
        REQUIRE(lev_codec_writer(f.codec, buf, len, &writer, &hdr, &err) == 0);
        CHECK(writer == f.v1);
        CHECK_INT(hdr, ==, i ? 5 : 10);
        REQUIRE(lev_codec_decode(f.codec, buf, len, f.v2, &out, NULL, &err) == 0);
        int64_t n = 0;
        CHECK_INT(lev_value_get_long(&out, "n", &n), ==, 0);
        CHECK_INT(n, ==, 7);
        avro_value_decref(&out);
    }
    free(soe);
    free(conf);
    fixture_close(&f);
}

static void unknown_id_without_a_registry_is_an_unknown_schema(void)
{
    fixture_t f;
    REQUIRE(fixture_open(&f) == 0);
    lev_error_t err;
    const uint8_t v[] = {0x00, 0x00, 0x00, 0x00, 0x63, 0x02, 'a', 0x02};
    avro_value_t out;
    const lev_schema_t *writer = NULL;
    CHECK_INT(lev_codec_writer(f.codec, v, sizeof v, &writer, NULL, &err), ==,
              LEV_ERR_UNKNOWN_SCHEMA);
    CHECK(strstr(err.text, "schema id 99") != NULL);
    CHECK(strstr(err.text, "LEV_SCHEMA_REGISTRY_URL") != NULL);
    CHECK_INT(lev_codec_decode(f.codec, v, sizeof v, NULL, &out, NULL, &err), ==,
              LEV_ERR_UNKNOWN_SCHEMA);
    /* a body that does not match the writer its id names is a decode error */
    REQUIRE(lev_codec_bind_id(f.codec, f.v1, 99) == 0);
    const uint8_t bad[] = {0x00, 0x00, 0x00, 0x00, 0x63, 0x7f, 'a'};
    CHECK_INT(lev_codec_decode(f.codec, bad, sizeof bad, NULL, &out, NULL, &err), ==,
              LEV_ERR_DECODE);
    /* binding refuses a schema of another set */
    lev_schemas_t *other = lev_schemas_new();
    const lev_schema_t *o = NULL;
    REQUIRE(other && lev_schemas_add(other, V1, strlen(V1), NULL, 0, &o, &err) == 0);
    CHECK_INT(lev_codec_bind_id(f.codec, o, 5), ==, LEV_ERR_ARG);
    lev_schemas_destroy(other);
    fixture_close(&f);
}

static void schema_text_keeps_what_the_registry_needs(void)
{
    fixture_t f;
    REQUIRE(fixture_open(&f) == 0);
    size_t len = 0;
    const char *t = lev_schema_text(f.v1, &len);
    CHECK_STR(t, V1); /* docs and defaults kept, unlike the canonical form */
    CHECK_INT(len, ==, strlen(V1));
    CHECK(strstr(lev_schema_canonical(f.v1), "doc") == NULL);
    fixture_close(&f);
}

CHECK_MAIN(CASE(wire_format_names_parse_both_ways),
           CASE(peek_frame_tells_the_framings_apart_by_the_first_byte),
           CASE(hostile_headers_are_decode_errors_that_say_why),
           CASE(confluent_encode_needs_an_id_then_frames_with_it),
           CASE(one_codec_reads_both_framings_of_the_same_value),
           CASE(unknown_id_without_a_registry_is_an_unknown_schema),
           CASE(schema_text_keeps_what_the_registry_needs))
