/*
 * libFuzzer target over the whole decode path of libevents: both framings
 * (single-object and Confluent), the writer lookup by fingerprint or id,
 * bounded validation, avro-c's read with schema resolution (projections and
 * defaults included), then the JSON encoding and a re-encode/decode round
 * trip of what was accepted.
 *
 * Schemas: tests/data/avro (current), each tests/data/avro/evolution/<rule>
 * (new.avsc current, old.avsc writer-only), and schemas/ (with history/).
 * Each schema is bound to a registry id, the low 31 bits of its fingerprint
 * (as a registry would have given it; no registry is asked). An input that
 * starts with the single-object magic C3 01 or the Confluent byte 00 is
 * decoded as it is; any other is taken as <schema selector byte><body>, so
 * mutations reach every writer schema.
 *
 * Built by tests/cmake/fuzz.cmake when configured with -DLEV_FUZZ=ON (clang
 * required). The ctest test unit.fuzz_decode_short runs it for 30 s over
 * tests/fuzz/corpus. A long run, from the repository:
 *
 *   cmake -S . -B build-fuzz -DLEV_FUZZ=ON && cmake --build build-fuzz --target fuzz_decode
 *   mkdir -p build-fuzz/fuzz-long
 *   build-fuzz/tests/fuzz_decode -max_total_time=28800 -rss_limit_mb=512 -timeout=10 \
 *       -jobs=2 -workers=2 -artifact_prefix=build-fuzz/ build-fuzz/fuzz-long tests/fuzz/corpus
 *
 * Crashes land as build-fuzz/crash-*; replay one with
 * `build-fuzz/tests/fuzz_decode build-fuzz/crash-<id>`.
 */
#include "codec_internal.h"

#include <dirent.h>
#include <libevents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LEV_FUZZ_SOURCE_DIR
#define LEV_FUZZ_SOURCE_DIR "."
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lev_schemas_t *schemas;
static lev_codec_limits_t tight_limits; /* small limits, to reach the limit checks */

static void must(int rc, const lev_error_t *err)
{
    if (rc != 0) {
        char msg[1024];
        fprintf(stderr, "fuzz_decode: cannot load schemas: %s\n",
                lev_error_format(err, msg, sizeof msg));
        abort();
    }
}

static void load_evolution(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[2048];
        lev_error_t err;
        snprintf(path, sizeof path, "%s/%s/new.avsc", dir, de->d_name);
        must(lev_schemas_load_file(schemas, path, 0, &err), &err);
        snprintf(path, sizeof path, "%s/%s/old.avsc", dir, de->d_name);
        must(lev_schemas_load_file(schemas, path, LEV_SCHEMA_WRITER_ONLY, &err), &err);
    }
    closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lev_error_t err;
    schemas = lev_schemas_new();
    must(lev_schemas_load_dir(schemas, LEV_FUZZ_SOURCE_DIR "/tests/data/avro", 0, &err), &err);
    load_evolution(LEV_FUZZ_SOURCE_DIR "/tests/data/avro/evolution");
    must(lev_schemas_load_path(schemas, LEV_FUZZ_SOURCE_DIR "/schemas", &err), &err);
    tight_limits.max_value_size = 4096;
    tight_limits.max_bytes_len = 64;
    tight_limits.max_items = 50;
    tight_limits.max_depth = 8;
    return 0;
}

/* A value decoded without schema resolution is filled by lev_vplan_fill:
 * it must be the value avro-c's own reader makes of the same body, compared
 * through their encodings (a NaN is not equal to itself, its bytes are).
 * And lev_codec_encode, which writes values in one walk of its own, must
 * give the body avro-c's avro_value_write gives. */
static void same_as_avro_reader(lev_codec_t *c, const uint8_t *buf, size_t len,
                                const lev_schema_t *writer, const avro_value_t *v)
{
    lev_frame_t f;
    lev_error_t err;
    avro_value_t ref;
    if (lev_codec_peek_frame(buf, len, &f, &err) != 0 || lev_codec_new_value(c, writer, &ref) != 0)
        abort();
    avro_reader_t r = avro_reader_memory((const char *)buf + f.header, (int64_t)(len - f.header));
    if (!r || avro_value_read(r, &ref) != 0)
        abort();
    void *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    int arc = lev_codec_encode(c, writer, v, &a, &alen, &err);
    int brc = lev_codec_encode(c, writer, &ref, &b, &blen, &err);
    if (arc != brc || alen != blen || (alen && memcmp(a, b, alen) != 0))
        abort();
    if (arc == 0) {
        size_t size = 0;
        lev_frame_t af; /* the codec's own framing, not necessarily the input's */
        if (lev_codec_peek_frame(a, alen, &af, &err) != 0 || avro_value_sizeof(&ref, &size) != 0 ||
            size != alen - af.header)
            abort();
        char *body = malloc(size ? size : 1);
        avro_writer_t w = avro_writer_memory(body, (int64_t)size);
        if (!body || !w || avro_value_write(w, &ref) != 0 ||
            memcmp(body, (char *)a + af.header, size) != 0)
            abort();
        avro_writer_free(w);
        free(body);
    }
    free(a);
    free(b);
    avro_reader_free(r);
    avro_value_decref(&ref);
}

/* Decodes, and checks that whatever is accepted converts to JSON and
 * survives encode + decode unchanged. */
static void decode_one(lev_codec_t *c, const uint8_t *buf, size_t len, const lev_schema_t *reader)
{
    avro_value_t v;
    const lev_schema_t *writer = NULL;
    lev_error_t err;
    int rc = lev_codec_decode(c, buf, len, reader, &v, &writer, &err);
    if (rc != 0) {
        if (rc != LEV_ERR_DECODE && rc != LEV_ERR_UNKNOWN_SCHEMA && rc != LEV_ERR_RESOLVE)
            abort();
        return;
    }
    const lev_schema_t *used = reader ? reader : lev_schema_current_version(writer);
    if (!used || used == writer)
        same_as_avro_reader(c, buf, len, writer, &v);
    json_t *j = lev_codec_to_json(&v, &err);
    if (!j)
        abort(); /* validated strings are UTF-8, ordinals in range */
    const lev_schema_t *rs = reader ? reader : lev_schemas_find(schemas, lev_schema_name(writer));
    if (!rs)
        rs = writer;
    void *out = NULL;
    size_t olen = 0;
    if (lev_codec_encode(c, rs, &v, &out, &olen, &err) == 0) {
        avro_value_t again;
        if (lev_codec_decode(c, out, olen, rs, &again, NULL, &err) != 0)
            abort();
        json_t *j2 = lev_codec_to_json(&again, &err);
        if (!j2 || !json_equal(j, j2))
            abort();
        json_decref(j2);
        avro_value_decref(&again);
        free(out);
    }
    json_decref(j);
    avro_value_decref(&v);
}

/* The codecs live for one input: avro-c keeps the pointers of a resolved
 * writer value at 4-byte offsets, where LeakSanitizer does not see them, so
 * a codec kept across inputs would be reported as leaking. */
static void bind_ids(lev_codec_t *c)
{
    for (size_t i = 0; i < lev_schemas_count(schemas); i++) {
        const lev_schema_t *s = lev_schemas_at(schemas, i);
        if (lev_codec_bind_id(c, s, (int32_t)(lev_schema_fingerprint(s) & 0x7fffffff)) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = lev_schemas_count(schemas);
    lev_codec_t *codec = lev_codec_new(schemas, NULL);
    lev_codec_t *tight = lev_codec_new(schemas, &tight_limits);
    if (!codec || !tight)
        abort();
    bind_ids(codec);
    bind_ids(tight);
    const uint8_t *buf = data;
    size_t len = size;
    uint8_t *framed = NULL;
    if (size >= 1 && data[0] != 0x00 && !(size >= 2 && data[0] == 0xc3 && data[1] == 0x01)) {
        const lev_schema_t *w = lev_schemas_at(schemas, data[0] % n);
        framed = malloc(size + 9);
        if (!framed)
            abort();
        uint64_t fp = lev_schema_fingerprint(w);
        framed[0] = 0xc3;
        framed[1] = 0x01;
        for (int i = 0; i < 8; i++)
            framed[2 + i] = (uint8_t)(fp >> (8 * i));
        memcpy(framed + 10, data + 1, size - 1);
        buf = framed;
        len = size + 9;
    }
    decode_one(codec, buf, len, NULL);
    decode_one(tight, buf, len, NULL);
    /* The same bytes read as another (possibly unrelated) schema. */
    if (size > 0)
        decode_one(codec, buf, len, lev_schemas_at(schemas, data[size - 1] % n));
    free(framed);
    lev_codec_destroy(tight);
    lev_codec_destroy(codec);
    return 0;
}
