/*
 * bench_codec: encode and decode cost of a ~100-byte event, and what the
 * bounded validation adds, next to avro-c's bare read and write.
 *
 *   bench_codec [iterations]      (default 1000000)
 *
 * Prints ns/op for: avro-c write and read alone (no framing, no checks),
 * lev_codec_encode (framed and checked as the decoders check, in one walk),
 * lev_codec_validate_body, lev_codec_decode (writer is the
 * reader), decode through avro-c's resolver (int promoted to long), and
 * decode through a projection (a reader field the writer lacks, filled from
 * its default), and decode of the same value in the Confluent framing with
 * its schema id known (a registry cache hit: no request), next to
 * single-object encoding measured in the same rounds. Figures, not a test.
 */
#include <libevents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ORDER_V1                                                                                   \
    "{\"type\":\"record\",\"name\":\"bench.Order\",\"fields\":["                                   \
    "{\"name\":\"order_id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"             \
    "{\"name\":\"customer_id\",\"type\":\"string\"},"                                              \
    "{\"name\":\"email\",\"type\":[\"null\",\"string\"],\"default\":null},"                        \
    "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"    \
    "\"Item\",\"fields\":[{\"name\":\"sku\",\"type\":\"string\"},{\"name\":\"quantity\","          \
    "\"type\":\"int\"},{\"name\":\"unit_price_minor\",\"type\":\"long\"}]}}},"                     \
    "{\"name\":\"currency\",\"type\":\"string\"},"                                                 \
    "{\"name\":\"total_minor\",\"type\":\"long\"},"                                                \
    "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"Status\",\"symbols\":"            \
    "[\"NEW\",\"ACCEPTED\",\"REJECTED\"]}},"                                                       \
    "{\"name\":\"placed_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}"

/* v2 promotes quantity to long (avro-c's resolver alone); v3 also adds a
 * field with a default (a projection). */
static const char *v1 = ORDER_V1 "]}";
static const char *v2_promoted =
    "{\"type\":\"record\",\"name\":\"bench.Order\",\"fields\":["
    "{\"name\":\"order_id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"customer_id\",\"type\":\"string\"},"
    "{\"name\":\"email\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"
    "\"Item\",\"fields\":[{\"name\":\"sku\",\"type\":\"string\"},{\"name\":\"quantity\","
    "\"type\":\"long\"},{\"name\":\"unit_price_minor\",\"type\":\"long\"}]}}},"
    "{\"name\":\"currency\",\"type\":\"string\"},"
    "{\"name\":\"total_minor\",\"type\":\"long\"},"
    "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"Status\",\"symbols\":"
    "[\"NEW\",\"ACCEPTED\",\"REJECTED\"]}},"
    "{\"name\":\"placed_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}"
    "]}";
static const char *v3_added = ORDER_V1 ",{\"name\":\"channel\",\"type\":\"string\","
                                       "\"default\":\"web\"}]}";

static const char *sample =
    "{\"order_id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"customer_id\":\"cust-4711\","
    "\"email\":{\"string\":\"ann@example.com\"},"
    "\"items\":[{\"sku\":\"SKU-1\",\"quantity\":2,\"unit_price_minor\":1250},"
    "{\"sku\":\"SKU-22\",\"quantity\":1,\"unit_price_minor\":899}],"
    "\"currency\":\"EUR\",\"total_minor\":3399,\"status\":\"NEW\",\"placed_at\":1763744700123}";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const lev_error_t *err)
{
    char msg[1024];
    fprintf(stderr, "bench_codec: %s: %s\n", what,
            err ? lev_error_format(err, msg, sizeof msg) : "");
    exit(1);
}

static const lev_schema_t *add(lev_schemas_t *set, const char *text, int flags)
{
    const lev_schema_t *s = NULL;
    lev_error_t err;
    if (lev_schemas_add(set, text, strlen(text), NULL, flags, &s, &err) != 0)
        die("schema", &err);
    return s;
}

/* Framed bytes of the sample, written with `writer`. */
static void *encode_sample(lev_codec_t *codec, const lev_schema_t *writer, size_t *len)
{
    lev_error_t err;
    json_t *j = json_loads(sample, 0, NULL);
    avro_value_t v;
    void *buf;
    if (lev_codec_from_json(codec, writer, j, &v, &err) != 0 ||
        lev_codec_encode(codec, writer, &v, &buf, len, &err) != 0)
        die("sample", &err);
    avro_value_decref(&v);
    json_decref(j);
    return buf;
}

/* Decodes buf n times with `reader`; returns ns/op. */
static double bench_decode(lev_codec_t *codec, const void *buf, size_t len,
                           const lev_schema_t *reader, long n)
{
    lev_error_t err;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        avro_value_t out;
        if (lev_codec_decode(codec, buf, len, reader, &out, NULL, &err) != 0)
            die("decode", &err);
        avro_value_decref(&out);
    }
    return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0)
        n = 1000000;
    lev_error_t err;

    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s1 = add(set, v1, 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    size_t len;
    void *framed = encode_sample(codec, s1, &len);
    const char *body = (const char *)framed + 10;
    size_t blen = len - 10;

    avro_value_t v;
    json_t *j = json_loads(sample, 0, NULL);
    if (lev_codec_from_json(codec, s1, j, &v, &err) != 0)
        die("from_json", &err);
    json_decref(j);

    /* avro-c alone: write and read of the body. */
    char wbuf[1024];
    avro_writer_t w = avro_writer_memory(wbuf, sizeof wbuf);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        size_t size;
        avro_value_sizeof(&v, &size);
        avro_writer_reset(w);
        avro_value_write(w, &v);
    }
    double raw_write = (now_ns() - t0) / (double)n;
    avro_writer_free(w);

    avro_value_iface_t *iface = avro_generic_class_from_schema(lev_schema_avro(s1));
    avro_reader_t r = avro_reader_memory(body, (int64_t)blen);
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        avro_value_t out;
        avro_generic_value_new(iface, &out);
        avro_reader_memory_set_source(r, body, (int64_t)blen);
        avro_value_read(r, &out);
        avro_value_decref(&out);
    }
    double raw_read = (now_ns() - t0) / (double)n;
    avro_reader_free(r);
    avro_value_iface_decref(iface);

    /* libevents. */
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        void *buf;
        size_t blen2;
        if (lev_codec_encode(codec, s1, &v, &buf, &blen2, &err) != 0)
            die("encode", &err);
        free(buf);
    }
    double enc = (now_ns() - t0) / (double)n;

    t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (lev_codec_validate_body(codec, s1, body, blen, &err) != 0)
            die("validate", &err);
    double val = (now_ns() - t0) / (double)n;

    double dec = bench_decode(codec, framed, len, NULL, n);

    /* The Confluent framing, the id bound as lev_codec_register binds it
     * (what every value after the first costs when a registry is used):
     * alternating rounds, so both see the same machine. */
    void *cbuf = NULL;
    size_t clen = 0;
    lev_codec_bind_id(codec, s1, 100001);
    lev_codec_set_wire_format(codec, LEV_WIRE_CONFLUENT);
    if (lev_codec_encode(codec, s1, &v, &cbuf, &clen, &err) != 0)
        die("encode (confluent)", &err);
    lev_codec_set_wire_format(codec, LEV_WIRE_SOE);
    double dec_soe = 0, dec_conf = 0;
    for (int round = 0; round < 4; round++) {
        dec_soe += bench_decode(codec, framed, len, NULL, n / 4 + 1);
        dec_conf += bench_decode(codec, cbuf, clen, NULL, n / 4 + 1);
    }
    dec_soe /= 4;
    dec_conf /= 4;
    free(cbuf);
    avro_value_decref(&v);
    lev_codec_destroy(codec);
    lev_schemas_destroy(set);

    /* Resolution: v1 written, read as v2 (avro-c resolver) and v3 (projection). */
    double dec_res = 0, dec_proj = 0;
    for (int k = 0; k < 2; k++) {
        lev_schemas_t *rs = lev_schemas_new();
        const lev_schema_t *reader = add(rs, k == 0 ? v2_promoted : v3_added, 0);
        const lev_schema_t *writer = add(rs, v1, LEV_SCHEMA_WRITER_ONLY);
        lev_codec_t *rc = lev_codec_new(rs, NULL);
        size_t rlen;
        void *rbuf = encode_sample(rc, writer, &rlen);
        double ns = bench_decode(rc, rbuf, rlen, reader, n);
        if (k == 0)
            dec_res = ns;
        else
            dec_proj = ns;
        free(rbuf);
        lev_codec_destroy(rc);
        lev_schemas_destroy(rs);
    }

    printf("value: %zu bytes framed (%zu body), %ld iterations\n", len, blen, n);
    printf("avro-c write alone (sizeof + write)      %8.1f ns/op\n", raw_write);
    printf("avro-c read alone (new value + read)     %8.1f ns/op\n", raw_read);
    printf("lev_codec_encode                         %8.1f ns/op\n", enc);
    printf("lev_codec_validate_body                  %8.1f ns/op\n", val);
    printf("lev_codec_decode                         %8.1f ns/op\n", dec);
    printf("lev_codec_decode, int promoted to long   %8.1f ns/op\n", dec_res);
    printf("lev_codec_decode, field from default     %8.1f ns/op\n", dec_proj);
    /* encode applies the same checks as it writes, in its one walk */
    printf("validation share: %.0f%% of decode; encode %.2fx avro-c's sizeof + write\n",
           100.0 * val / dec, enc / raw_write);
    printf("decode, single-object framing (same rounds)%6.1f ns/op\n", dec_soe);
    printf("decode, Confluent framing, id known        %6.1f ns/op\n", dec_conf);
    printf("confluent_over_soe=%.3f\n", dec_conf / dec_soe);
    free(framed);
    return 0;
}
