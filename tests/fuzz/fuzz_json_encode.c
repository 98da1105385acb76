/*
 * libFuzzer target over lev_codec_encode_json: Avro JSON text to framed
 * bytes, its direct path held to its definition (json_loadb with
 * JSON_REJECT_DUPLICATES, lev_codec_from_json, lev_codec_encode):
 *   - what the direct path accepts, the tree path accepts with the same
 *     bytes;
 *   - lev_codec_encode_json gives the tree path's answer, bytes or error;
 *   - nothing crashes, leaks or reads out of bounds (ASan, UBSan).
 * The input is <schema selector byte><JSON text>; the schemas are the
 * current ones of tests/data/avro and schemas/, sorted by full name (6 is
 * shop.order.OrderPlaced, 12 test.types.AllTypes), and each text runs with
 * the default limits and with small ones.
 *
 * Built by tests/cmake/fuzz.cmake with -DLEV_FUZZ=ON; unit.fuzz_json_encode_short
 * runs it for 20 s over tests/fuzz/corpus_json.
 */
#include <libevents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"

#ifndef LEV_FUZZ_SOURCE_DIR
#define LEV_FUZZ_SOURCE_DIR "."
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lev_schemas_t *schemas;
static lev_codec_t *codecs[2]; /* default limits, small ones */
static const lev_schema_t *current[64];
static size_t ncurrent;

static int by_name(const void *a, const void *b)
{
    return strcmp(lev_schema_name(*(const lev_schema_t *const *)a),
                  lev_schema_name(*(const lev_schema_t *const *)b));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lev_error_t err;
    schemas = lev_schemas_new();
    if (lev_schemas_load_dir(schemas, LEV_FUZZ_SOURCE_DIR "/tests/data/avro", 0, &err) != 0 ||
        lev_schemas_load_dir(schemas, LEV_FUZZ_SOURCE_DIR "/schemas", 0, &err) != 0) {
        fprintf(stderr, "fuzz_json_encode: cannot load schemas: %s %s\n", err.where, err.text);
        abort();
    }
    for (size_t i = 0; i < lev_schemas_count(schemas) && ncurrent < 64; i++)
        if (lev_schema_is_current(lev_schemas_at(schemas, i)))
            current[ncurrent++] = lev_schemas_at(schemas, i);
    qsort(current, ncurrent, sizeof current[0], by_name); /* selectors stay put */
    lev_codec_limits_t tight;
    lev_codec_limits_default(&tight);
    tight.max_value_size = 256;
    tight.max_bytes_len = 16;
    tight.max_items = 8;
    tight.max_depth = 4;
    codecs[0] = lev_codec_new(schemas, NULL);
    codecs[1] = lev_codec_new(schemas, &tight);
    return 0;
}

static void one(lev_codec_t *c, const lev_schema_t *s, const char *text, size_t len)
{
    lev_error_t terr, aerr, derr;
    memset(&terr, 0, sizeof terr);
    void *tbuf = NULL;
    size_t tlen = 0;
    int trc;
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j) {
        trc = LEV_ERR_JSON;
    } else {
        avro_value_t v;
        trc = lev_codec_from_json(c, s, j, &v, &terr);
        json_decref(j);
        if (trc == 0) {
            trc = lev_codec_encode(c, s, &v, &tbuf, &tlen, &terr);
            avro_value_decref(&v);
        }
    }
    char *dbuf = NULL;
    size_t dlen = 0, dcap = 0;
    int drc = lev_codec_encode_json_direct(c, s, text, len, NULL, &dbuf, &dlen, &dcap, &derr);
    if (drc == 0 && (trc != 0 || dlen != tlen || memcmp(dbuf, tbuf, tlen) != 0))
        abort(); /* the direct path accepted what the tree path refuses or writes otherwise */
    if (drc != 0 && (drc != LEV_JSON_DIRECT_CANNOT || dlen != 0))
        abort();
    char *abuf = NULL;
    size_t alen = 0, acap = 0;
    int arc = lev_codec_encode_json(c, s, text, len, NULL, &abuf, &alen, &acap, &aerr);
    if (arc != trc || (trc == 0 && (alen != tlen || memcmp(abuf, tbuf, tlen) != 0)))
        abort();
    if (trc != 0 && trc != LEV_ERR_JSON && strcmp(aerr.text, terr.text) != 0)
        abort();
    free(abuf);
    free(dbuf);
    free(tbuf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || ncurrent == 0)
        return 0;
    const lev_schema_t *s = current[data[0] % ncurrent];
    for (int i = 0; i < 2; i++)
        one(codecs[i], s, (const char *)data + 1, size - 1);
    return 0;
}
