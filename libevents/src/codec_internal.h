/*
 * Private interfaces between the codec files of libevents: canonical form
 * (canon.c), schema sets (schema.c), the bounded validator (validate.c), the
 * Avro JSON encoding (json.c), schema compatibility (compat.c) and
 * encode/decode (codec.c). Not installed.
 *
 * The "normalized schema" used throughout is a jansson tree produced by
 * lev_canon_normalize():
 *   - a primitive is the JSON string of its name ("int");
 *   - a named type is defined (as an object) at its first occurrence and
 *     referenced later by the JSON string of its full name;
 *   - a record is {"type":"record","name":<full name>,"fields":[{"name":..,
 *     "type":<normalized>[,"default":<json>]}...]};
 *   - an enum is {"type":"enum","name":..,"symbols":[..][,"default":".."]};
 *   - a fixed is {"type":"fixed","name":..,"size":n};
 *   - an array is {"type":"array","items":..}, a map {"type":"map","values":..};
 *   - a union is a JSON array of normalized schemas.
 * Every other attribute (doc, aliases, order, logicalType, namespace) is gone.
 */
#ifndef LEV_CODEC_INTERNAL_H
#define LEV_CODEC_INTERNAL_H

#include "internal.h"

#include <stdint.h>
#include <string.h>

/* ======================================================================
 * canon.c
 * ====================================================================== */

/* Normalizes a parsed schema (see above): resolves every name to its full
 * name, checks names, symbols, sizes, duplicate definitions, unknown type
 * references and union rules. Returns a new tree, or NULL with err filled
 * (LEV_ERR_SCHEMA). */
json_t *lev_canon_normalize(const json_t *schema, lev_error_t *err);

/* Writes the Parsing Canonical Form of a normalized schema. Returns a
 * malloc'd string, or NULL when out of memory. */
char *lev_canon_write(const json_t *norm);

/* The JSON text handed to avro-c for a normalized schema: every named type
 * defined with its unqualified name and an explicit "namespace" (so avro-c
 * needs no namespace inference), references by full name, defaults and
 * other attributes left out (avro-c does not use them). New reference. */
json_t *lev_canon_for_avro_c(const json_t *norm);

/* Adds every named definition of a normalized schema to `names` (an
 * object: full name -> definition, borrowed from `norm`). */
void lev_canon_index_names(json_t *norm, json_t *names);

/* The type name of a normalized node ("int", "record", "union", ...) after
 * following a named reference through `names`; *def receives the node that
 * defines it (the union array, the named definition, or the primitive
 * string). Returns NULL for a dangling reference. */
const char *lev_canon_kind(const json_t *node, const json_t *names, const json_t **def);

/* ======================================================================
 * validate.c: a compiled form of a writer schema for bounded validation
 * ====================================================================== */

typedef struct lev_vplan_s lev_vplan_t;

/* Compiles an avro-c schema (records, recursion through links included).
 * Returns NULL when out of memory or the schema has a type avro-c cannot
 * encode. */
lev_vplan_t *lev_vplan_new(avro_schema_t schema);
void lev_vplan_destroy(lev_vplan_t *plan);

/* Walks `body` against the plan with `limits`: 0, or LEV_ERR_DECODE with a
 * field path in err->where and what is wrong (and at which byte) in
 * err->text. Never reads outside body[0..len). */
int lev_vplan_validate(const lev_vplan_t *plan, const void *body, size_t len,
                       const lev_codec_limits_t *limits, lev_error_t *err);

/* A growable buffer for lev_vplan_fill's NUL-terminated copies. */
typedef struct lev_scratch_s {
    char *p;
    size_t cap;
} lev_scratch_t;

/* Fills `value` (a generic value of the plan's schema, reset or new) from a
 * body lev_vplan_validate accepted with the plan: the same value avro-c's
 * avro_value_read makes, with the same calls on it in the same order, but
 * strings and bytes are copied into the value's own buffers (kept across
 * resets) instead of each being read into a new allocation. 0, LEV_ERR_NOMEM,
 * or LEV_ERR_DECODE when avro-c refuses a call (never for a validated body). */
int lev_vplan_fill(const lev_vplan_t *plan, const void *body, size_t len, avro_value_t *value,
                   lev_scratch_t *scratch);

/* A growable buffer the encoders append Avro binary to (json_encode.c's
 * direct path, lev_vplan_write). */
typedef struct lev_obuf_s {
    char *p;
    size_t len, cap;
} lev_obuf_t;

static inline int lev_ob_reserve(lev_obuf_t *o, size_t n)
{
    if (n > SIZE_MAX - o->len)
        return LEV_ERR_NOMEM;
    return lev_grow(&o->p, &o->cap, o->len + n, 1, 256) == 0 ? 0 : LEV_ERR_NOMEM;
}

static inline int lev_ob_put(lev_obuf_t *o, const void *src, size_t n)
{
    if (n == 0)
        return 0; /* src may be NULL: a null default takes no bytes */
    if (lev_ob_reserve(o, n) != 0)
        return LEV_ERR_NOMEM;
    memcpy(o->p + o->len, src, n);
    o->len += n;
    return 0;
}

/* The zig-zag varint of v (an Avro int or long) into b: its length. */
static inline size_t lev_varint(int64_t v, uint8_t b[10])
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) {
        b[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    b[n++] = (uint8_t)z;
    return n;
}

static inline int lev_ob_long(lev_obuf_t *o, int64_t v)
{
    uint8_t b[10];
    return lev_ob_put(o, b, lev_varint(v, b));
}

/* Appends the Avro binary body of `value` (a generic value of the plan's
 * schema) to *buf (*len bytes used of *cap, grown with lev_grow), in one
 * walk that also applies what lev_vplan_validate checks: the same bytes
 * avro-c's avro_value_write gives, for a value lev_vplan_validate would
 * accept in that form. 0; LEV_ERR_NOMEM; or LEV_VPLAN_WRITE_CANNOT, *len
 * unchanged, for anything else (a limit passed, a string that is not
 * UTF-8, an enum ordinal or union branch out of range, a value avro-c
 * refuses to read): avro_value_write and lev_vplan_validate then give the
 * answer, and the error. */
#define LEV_VPLAN_WRITE_CANNOT 1
int lev_vplan_write(const lev_vplan_t *plan, const avro_value_t *value,
                    const lev_codec_limits_t *limits, char **buf, size_t *len, size_t *cap);

/* ======================================================================
 * json_encode.c: Avro JSON text to the binary encoding, without a tree
 * ====================================================================== */

typedef struct lev_jplan_s lev_jplan_t;

/* Compiles a normalized schema and its name index (both borrowed: they
 * must outlive the plan). NULL when out of memory. */
lev_jplan_t *lev_jplan_new(const json_t *norm, const json_t *names);
void lev_jplan_destroy(lev_jplan_t *plan);

/* lev_codec_encode_json's direct path alone: 0 (the value appended to
 * *buf as lev_codec_encode_json would), LEV_JSON_DIRECT_CANNOT when only
 * the tree path can decide (nothing appended), or an error. */
#define LEV_JSON_DIRECT_CANNOT 1
int lev_codec_encode_json_direct(lev_codec_t *codec, const lev_schema_t *schema, const char *text,
                                 size_t len, size_t *used, char **buf, size_t *blen, size_t *bcap,
                                 lev_error_t *err);

/* The depth limit is applied on the C stack: values above this are
 * treated as this. */
#define LEV_CODEC_MAX_DEPTH_CAP 1000

/* ======================================================================
 * schema.c: what a loaded schema carries besides the public accessors
 * ====================================================================== */

/* The normalized schema and its name index (object: full name -> def). */
const json_t *lev_schema_norm(const lev_schema_t *schema);
const json_t *lev_schema_names(const lev_schema_t *schema);
/* The validation plan of the schema. */
const lev_vplan_t *lev_schema_plan(const lev_schema_t *schema);
/* The plan that encodes the schema's values from JSON text, or NULL when
 * it could not be compiled (lev_codec_encode_json then takes its tree
 * path every time). */
const struct lev_jplan_s *lev_schema_jplan(const lev_schema_t *schema);
/* Position of the schema in its set (stable, dense from 0). */
size_t lev_schema_index(const lev_schema_t *schema);
/* The current version of the schema's full name (itself when current), or
 * NULL when only writer-only versions of the name are loaded. */
const lev_schema_t *lev_schema_current_version(const lev_schema_t *schema);

/* ======================================================================
 * compat.c: schema compatibility and the projection avro-c reads into
 * ====================================================================== */

/* Flag for lev_compat_check: a writer enum symbol the reader lacks (and
 * the reader enum has no default) is not a problem of the pair; decode
 * refuses the values that carry it. */
#define LEV_COMPAT_ENUM_PER_VALUE 0x1

/* The check of lev_schema_check_resolvable (see codec.h) with `flags`;
 * every problem goes to `report` (may be NULL). Returns 0, LEV_ERR_RESOLVE
 * (err: the first problem), LEV_ERR_ARG or LEV_ERR_NOMEM. When it returns
 * 0 and proj is not NULL, *proj is NULL if avro-c can read the writer into
 * the reader schema itself, else a new normalized schema to give avro-c
 * instead: the reader with, in every record, only the fields the writer
 * also has and, in every enum, the writer's symbols (in their order).
 * avro-c's resolver never fails on a pair that passes, with the projection
 * as its reader. */
int lev_compat_check(const lev_schema_t *writer, const lev_schema_t *reader, int flags,
                     lev_schema_problem_fn report, void *opaque, json_t **proj, lev_error_t *err);

/* ======================================================================
 * codec.c
 * ====================================================================== */

/* The frame header the codec writes in front of a value of `schema`
 * (single-object: C3 01 + fingerprint; Confluent: 00 + id): 0 with its
 * bytes in hdr and its length in *hlen, or LEV_ERR_STATE when the
 * Confluent format has no id for the schema. */
#define LEV_FRAME_HEADER_MAX 10
int lev_codec_frame_header(lev_codec_t *codec, const lev_schema_t *schema,
                           uint8_t hdr[LEV_FRAME_HEADER_MAX], size_t *hlen, lev_error_t *err);

/* The codec's limits, with defaults filled in. */
const lev_codec_limits_t *lev_codec_limits(const lev_codec_t *codec);

/* lev_codec_decode into dst, an existing value of the reader schema (from
 * lev_codec_new_value), which is reset and filled, so a caller decoding
 * many values of one schema allocates nothing per value. On failure dst
 * is left reset or partly filled, still valid. */
int lev_codec_decode_into(lev_codec_t *codec, const void *buf, size_t len,
                          const lev_schema_t *reader, avro_value_t *dst,
                          const lev_schema_t **writer, lev_error_t *err);

/* lev_codec_encode appending the framed value to a growable buffer
 * (*buf of *cap bytes, *len used; realloc'd as needed). */
int lev_codec_encode_append(lev_codec_t *codec, const lev_schema_t *schema,
                            const avro_value_t *value, char **buf, size_t *len, size_t *cap,
                            lev_error_t *err);

/* ======================================================================
 * json.c
 * ====================================================================== */

/* How lev_json_to_value reads unions. */
typedef enum lev_json_mode_e {
    LEV_JSON_AVRO = 0,    /* Avro JSON encoding: null or {"<branch>": value};
                             a bare value that fits exactly one branch too */
    LEV_JSON_DEFAULT = 1, /* a schema default: unions take a bare value,
                             first fitting branch (the first branch per spec) */
} lev_json_mode_t;

/* Fills `dst` (a value of the schema `node` describes; NULL for a dry run
 * that only checks) from `json`. `names` indexes the named types of the
 * schema. `path` is the field path of `dst` for errors ("" at the top).
 * Returns 0, or LEV_ERR_JSON with err->where the path of the fault. */
int lev_json_to_value(json_t *json, const json_t *node, const json_t *names, avro_value_t *dst,
                      lev_json_mode_t mode, size_t max_depth, const char *path, lev_error_t *err);

/* ======================================================================
 * UTF-8
 * ====================================================================== */

/* 1 if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), else 0; *bad gets the offset of the
 * first bad byte. U+0000 is allowed. */
int lev_utf8_valid(const uint8_t *s, size_t len, size_t *bad);

#endif
