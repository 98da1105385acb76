/*
 * lev_canon: libevents' view of a schema file, for cross-checks with other
 * Avro implementations (tests/tools/fastavro_check.py).
 *
 *   lev_canon SCHEMA.avsc
 *       prints "<fingerprint> <parsing canonical form>", the fingerprint as
 *       16 hex digits of its 64-bit value (the single-object header holds
 *       the same value little-endian)
 *   lev_canon --decode SCHEMA.avsc < body
 *       reads an unframed Avro binary body written with the schema and
 *       prints the value in the Avro JSON encoding
 *   lev_canon --encode [--framed] SCHEMA.avsc < json
 *       reads a value in the Avro JSON encoding and writes its Avro binary
 *       body (with --framed: the single-object encoded value)
 *
 * Exit status: 0, or 1 with the error on stderr.
 */
#include <libevents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    *len = n;
    return buf;
}

static int fail(const lev_error_t *err)
{
    char msg[1024];
    fprintf(stderr, "lev_canon: %s\n", lev_error_format(err, msg, sizeof msg));
    return 1;
}

static int print_canonical(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t len;
    char *text = read_all(f, &len);
    fclose(f);
    if (!text)
        return 1;
    lev_error_t err;
    memset(&err, 0, sizeof err);
    char *canon = lev_avro_canonical_form(text, len, &err);
    free(text);
    if (!canon)
        return fail(&err);
    printf("%016llx %s\n", (unsigned long long)lev_avro_fingerprint64(canon, strlen(canon)), canon);
    free(canon);
    return 0;
}

static int transcode(const char *path, int encode, int framed)
{
    lev_error_t err;
    memset(&err, 0, sizeof err);
    lev_schemas_t *schemas = lev_schemas_new();
    lev_codec_t *codec = NULL;
    const lev_schema_t *schema = NULL;
    char *in = NULL;
    void *out = NULL;
    json_t *json = NULL;
    avro_value_t v = {NULL, NULL};
    int rc = 1;
    if (lev_schemas_load_file(schemas, path, 0, &err) != 0) {
        fail(&err);
        goto done;
    }
    schema = lev_schemas_at(schemas, 0);
    codec = lev_codec_new(schemas, NULL);
    size_t len;
    in = read_all(stdin, &len);
    if (!codec || !in)
        goto done;
    if (encode) {
        json_error_t jerr;
        json = json_loadb(in, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!json) {
            fprintf(stderr, "lev_canon: invalid JSON: %s\n", jerr.text);
            goto done;
        }
        size_t olen;
        if (lev_codec_from_json(codec, schema, json, &v, &err) != 0 ||
            lev_codec_encode(codec, schema, &v, &out, &olen, &err) != 0) {
            fail(&err);
            goto done;
        }
        size_t skip = framed ? 0 : 10;
        fwrite((char *)out + skip, 1, olen - skip, stdout);
    } else {
        size_t flen = len + 10;
        unsigned char *framed_in = malloc(flen);
        if (!framed_in)
            goto done;
        uint64_t fp = lev_schema_fingerprint(schema);
        framed_in[0] = 0xc3;
        framed_in[1] = 0x01;
        for (int i = 0; i < 8; i++)
            framed_in[2 + i] = (unsigned char)(fp >> (8 * i));
        memcpy(framed_in + 10, in, len);
        int drc = lev_codec_decode(codec, framed_in, flen, NULL, &v, NULL, &err);
        free(framed_in);
        if (drc != 0) {
            fail(&err);
            goto done;
        }
        json = lev_codec_to_json(&v, &err);
        if (!json) {
            fail(&err);
            goto done;
        }
        char *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        if (!s)
            goto done;
        printf("%s\n", s);
        free(s);
    }
    rc = 0;
done:
    if (v.self)
        avro_value_decref(&v);
    json_decref(json);
    free(out);
    free(in);
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && argv[1][0] != '-')
        return print_canonical(argv[1]);
    if (argc == 3 && strcmp(argv[1], "--decode") == 0)
        return transcode(argv[2], 0, 0);
    if (argc == 3 && strcmp(argv[1], "--encode") == 0)
        return transcode(argv[2], 1, 0);
    if (argc == 4 && strcmp(argv[1], "--encode") == 0 && strcmp(argv[2], "--framed") == 0)
        return transcode(argv[3], 1, 1);
    fprintf(stderr, "usage: lev_canon SCHEMA.avsc\n"
                    "       lev_canon --decode SCHEMA.avsc < body\n"
                    "       lev_canon --encode [--framed] SCHEMA.avsc < json\n");
    return 2;
}
