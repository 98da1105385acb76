/*
 * libevents codec: Avro schemas, the two wire formats, schema resolution
 * and the Avro JSON encoding.
 *
 * Wire formats of a value, told apart by their first byte:
 *   Avro single-object encoding (LEV_WIRE_SOE, the default):
 *     C3 01 | CRC-64-AVRO fingerprint of the schema's Parsing Canonical
 *             Form, 8 bytes little-endian | Avro binary body
 *   Confluent (LEV_WIRE_CONFLUENT), as schema registry clients write it:
 *     00 | schema id in the registry, 4 bytes big-endian | Avro binary body
 * Decoding reads either. It finds the writer schema by fingerprint among the
 * loaded schemas, or by id among the ids it knows, asking the codec's schema
 * registry (lev_codec_set_registry) for an id it has not seen; it validates
 * the body against the writer with bounds (never trusting lengths, counts,
 * enum ordinals or union indexes), and resolves it to the reader schema.
 * Encoding writes the codec's wire format (lev_codec_set_wire_format); the
 * Confluent framing needs the schema's id, which lev_codec_register learns.
 */
#ifndef LIBEVENTS_CODEC_H
#define LIBEVENTS_CODEC_H

#include <avro.h>
#include <jansson.h>
#include <libevents/common.h>
#include <libevents/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Canonical form and fingerprint (pure functions)
 * ====================================================================== */

/* The Parsing Canonical Form of a schema given as JSON text, as defined by
 * the Avro specification. Returns a malloc'd string the caller frees, or
 * NULL with err filled. */
LEV_API char *lev_avro_canonical_form(const char *schema_json, size_t len, lev_error_t *err);

/* CRC-64-AVRO (Rabin) fingerprint of a byte string. */
LEV_API uint64_t lev_avro_fingerprint64(const void *data, size_t len);

/* ======================================================================
 * Schema sets
 * ====================================================================== */

typedef struct lev_schema_s lev_schema_t;
typedef struct lev_schemas_s lev_schemas_t;

/* Flag for loading: the schema is an older version, known as a writer (so
 * events written with it decode) but never the current (reader) version of
 * its name. */
#define LEV_SCHEMA_WRITER_ONLY 0x1

LEV_API lev_schemas_t *lev_schemas_new(void);
LEV_API void lev_schemas_destroy(lev_schemas_t *schemas);

/* Loads every *.avsc file of `dir` (not recursive), in name order. A
 * malformed schema fails the whole call with err->where naming the file.
 * Two current schemas with one full name are an error. */
LEV_API int lev_schemas_load_dir(lev_schemas_t *schemas, const char *dir, int flags,
                                 lev_error_t *err);

/* Loads one schema file. */
LEV_API int lev_schemas_load_file(lev_schemas_t *schemas, const char *path, int flags,
                                  lev_error_t *err);

/* Adds a schema from JSON text; `origin` names it in errors (may be NULL).
 * On success *out (if not NULL) points at the schema, owned by the set.
 * Adding a schema whose fingerprint is already loaded returns the existing one. */
LEV_API int lev_schemas_add(lev_schemas_t *schemas, const char *json, size_t len,
                            const char *origin, int flags, const lev_schema_t **out,
                            lev_error_t *err);

/* Loads a colon-separated list of directories (LEV_SCHEMA_DIRS), each as
 * current schemas, plus each one's `history/` subdirectory, if present, as
 * writer-only versions. */
LEV_API int lev_schemas_load_path(lev_schemas_t *schemas, const char *dirs, lev_error_t *err);

/* The current version of a full name ("shop.order.OrderPlaced"), or NULL. */
LEV_API const lev_schema_t *lev_schemas_find(const lev_schemas_t *schemas, const char *fullname);
/* Any loaded version by fingerprint, or NULL. */
LEV_API const lev_schema_t *lev_schemas_find_fingerprint(const lev_schemas_t *schemas,
                                                         uint64_t fingerprint);
LEV_API size_t lev_schemas_count(const lev_schemas_t *schemas);
LEV_API const lev_schema_t *lev_schemas_at(const lev_schemas_t *schemas, size_t i);

LEV_API const char *lev_schema_name(const lev_schema_t *schema);      /* full name */
LEV_API const char *lev_schema_origin(const lev_schema_t *schema);    /* file or NULL */
LEV_API const char *lev_schema_canonical(const lev_schema_t *schema); /* parsing canonical form */
/* The JSON text the schema was loaded from (NUL-terminated; *len, if not
 * NULL, gets its length): what is registered in a schema registry, with
 * defaults and docs. */
LEV_API const char *lev_schema_text(const lev_schema_t *schema, size_t *len);
LEV_API uint64_t lev_schema_fingerprint(const lev_schema_t *schema);
LEV_API int lev_schema_is_current(const lev_schema_t *schema);
/* The avro-c schema; borrowed, owned by the set. */
LEV_API avro_schema_t lev_schema_avro(const lev_schema_t *schema);

/* ======================================================================
 * Schema compatibility (the Avro specification's resolution rules, as the
 * codec applies them)
 * ====================================================================== */

/* 0 when every value written with `writer` can be read with `reader`;
 * LEV_ERR_RESOLVE otherwise, with err->where the field path of the first
 * problem ("items[].quantity", "{}" for map values, "" for the top level)
 * and err->text the reason ("long cannot be read as int", "field x is
 * missing in the writer and has no default" ...). The two schemas may come
 * from different sets. The rules:
 *   - records and enums match by unqualified name, fixed types by full name
 *     and size; aliases are not used;
 *   - reader fields are matched with writer fields by name; a reader field
 *     the writer lacks needs a default; writer fields the reader lacks are
 *     skipped;
 *   - promotions: int to long, float or double; long to float or double;
 *     float to double. string and bytes are not promoted to each other;
 *   - every symbol of a writer enum must be in the reader enum, unless the
 *     reader enum has a default;
 *   - every branch of a writer union must be readable (even though the
 *     specification only fails the values that use such a branch); a
 *     non-union writer type is read into the first branch of a reader union
 *     that matches it (same kind and name, or a promotion), and must
 *     resolve to it;
 *   - arrays and maps resolve their items and values.
 * lev_codec_decode refuses (LEV_ERR_RESOLVE) every value of a pair this
 * check fails, except for enum symbols: there only the values that carry a
 * symbol the reader cannot read are refused. Recursive schemas are fine.
 * Errors besides LEV_ERR_RESOLVE: LEV_ERR_ARG, LEV_ERR_NOMEM. */
LEV_API int lev_schema_check_resolvable(const lev_schema_t *writer, const lev_schema_t *reader,
                                        lev_error_t *err);

/* Called once per problem: `where` is the field path, `text` the reason
 * (both as in lev_schema_check_resolvable, valid during the call). */
typedef void (*lev_schema_problem_fn)(void *opaque, const char *where, const char *text);

/* Like lev_schema_check_resolvable, but reports every problem found to
 * `report` (may be NULL); err receives the first one. */
LEV_API int lev_schema_check_resolvable_all(const lev_schema_t *writer, const lev_schema_t *reader,
                                            lev_schema_problem_fn report, void *opaque,
                                            lev_error_t *err);

/* ======================================================================
 * Codec: encode, decode, JSON. A codec caches value interfaces and schema
 * resolutions; it is not thread-safe (one per thread). It borrows the schema
 * set, which must outlive it.
 * ====================================================================== */

typedef struct lev_codec_s lev_codec_t;

/* Bounds applied to untrusted bytes before avro-c sees them. A field left
 * 0 takes its default. max_depth is capped at 1000 (the checks recurse). */
typedef struct lev_codec_limits_s {
    size_t max_value_size; /* whole framed value; default 1 MiB */
    size_t max_bytes_len;  /* one string/bytes; default: max_value_size */
    size_t max_items;      /* array items + map entries in one value; default 100000 */
    size_t max_depth;      /* nesting of records/arrays/maps/unions; default 64 */
} lev_codec_limits_t;

/* Fills the defaults above. */
LEV_API void lev_codec_limits_default(lev_codec_limits_t *limits);

/* limits may be NULL for the defaults. */
LEV_API lev_codec_t *lev_codec_new(const lev_schemas_t *schemas, const lev_codec_limits_t *limits);
LEV_API void lev_codec_destroy(lev_codec_t *codec);
LEV_API const lev_schemas_t *lev_codec_schemas(const lev_codec_t *codec);

/* A new empty generic value of `schema`. The caller releases it with
 * avro_value_decref(). */
LEV_API int lev_codec_new_value(lev_codec_t *codec, const lev_schema_t *schema, avro_value_t *out);

/* Encodes `value` (of `schema`) framed in the codec's wire format into a
 * malloc'd buffer the caller frees. The body is checked as decode checks
 * it, so a value decoders would refuse (an enum ordinal out of range, a
 * string that is not UTF-8, a limit exceeded) is LEV_ERR_ENCODE. In the
 * Confluent format a schema without an id (see lev_codec_register) is
 * LEV_ERR_STATE. */
LEV_API int lev_codec_encode(lev_codec_t *codec, const lev_schema_t *schema,
                             const avro_value_t *value, void **buf, size_t *len, lev_error_t *err);

/* Reads the fingerprint of a framed value: 0, or LEV_ERR_DECODE when the
 * buffer is not single-object encoded. */
LEV_API int lev_codec_peek_fingerprint(const void *buf, size_t len, uint64_t *fingerprint);

/* ======================================================================
 * Wire formats and the schema registry
 * ====================================================================== */

typedef enum lev_wire_format_e {
    LEV_WIRE_SOE = 0,       /* Avro single-object encoding (C3 01 + fingerprint) */
    LEV_WIRE_CONFLUENT = 1, /* Confluent (00 + 4-byte registry id) */
} lev_wire_format_t;

/* Parses "soe" (or "single-object") and "confluent". 0 or LEV_ERR_CONFIG. */
LEV_API int lev_wire_format_parse(const char *s, lev_wire_format_t *out);
LEV_API const char *lev_wire_format_name(lev_wire_format_t f);

/* The framing of a value, read from its first bytes. */
typedef struct lev_frame_s {
    lev_wire_format_t format;
    uint64_t fingerprint; /* LEV_WIRE_SOE */
    int32_t schema_id;    /* LEV_WIRE_CONFLUENT */
    size_t header;        /* bytes before the Avro body: 10 or 5 */
} lev_frame_t;

/* 0, or LEV_ERR_DECODE (with err saying what is wrong: "truncated
 * Confluent header (3 bytes)", "unknown magic byte 0x7b") when the buffer
 * is neither framing. */
LEV_API int lev_codec_peek_frame(const void *buf, size_t len, lev_frame_t *frame, lev_error_t *err);

/* Gives the codec a schema registry (borrowed; may be shared by codecs):
 * values framed with an id the codec does not know have their writer schema
 * fetched from it and added, as a writer-only version, to `schemas`, which
 * must be the set the codec was made with (it is changed from then on: only
 * this codec's thread may use it). After a registry failure the codec asks
 * again only after a short pause (one second, doubling up to 30 s, or to
 * 2 s with lev_codec_set_registry_wait); lookups
 * of unknown ids in between fail at once with LEV_ERR_REGISTRY, while known
 * ids keep working. At most 1000 schemas are learned. reg may be NULL to
 * detach. */
LEV_API int lev_codec_set_registry(lev_codec_t *codec, lev_schemas_t *schemas, lev_registry_t *reg);
LEV_API lev_registry_t *lev_codec_registry(const lev_codec_t *codec);

/* How long a lookup of an unknown id may block the caller: -1 (the
 * default) waits for the registry's answer, timeouts and retries included;
 * 0 or more waits that many milliseconds at most, the request going on on
 * the registry's own thread (lev_registry_schema_by_id_wait): a lookup not
 * answered in time is LEV_ERR_REGISTRY ("not answered yet"), and asking
 * again later gets the answer. A worker waits 100 ms, so a registry that
 * hangs never stalls the partitions whose ids are known. */
LEV_API void lev_codec_set_registry_wait(lev_codec_t *codec, int wait_ms);

/* The wire format encode writes (default LEV_WIRE_SOE). */
LEV_API void lev_codec_set_wire_format(lev_codec_t *codec, lev_wire_format_t f);
LEV_API lev_wire_format_t lev_codec_wire_format(const lev_codec_t *codec);

/* Registers `schema` (its text) in the codec's registry under the subject
 * the registry's naming strategy gives for `topic`, or finds it there, and
 * remembers its id for encoding. Done once per subject and schema: later
 * calls return at once. Errors: those of lev_registry_register, and
 * LEV_ERR_STATE without a registry. A codec with a registry wait
 * (lev_codec_set_registry_wait) registers on the registry's thread and
 * waits that long at most: not answered by then is LEV_ERR_REGISTRY ("not
 * answered yet"), and calling again later gets the id. */
LEV_API int lev_codec_register(lev_codec_t *codec, const char *topic, const lev_schema_t *schema,
                               lev_error_t *err);

/* Binds a registry id to a schema of the codec's set, as lev_codec_register
 * does (for ids learned elsewhere). */
LEV_API int lev_codec_bind_id(lev_codec_t *codec, const lev_schema_t *schema, int32_t id);

/* The id encode frames `schema` with, or -1 when it has none. */
LEV_API int32_t lev_codec_schema_id(const lev_codec_t *codec, const lev_schema_t *schema);

/* The writer schema of a framed value, by fingerprint or by id (fetching an
 * unknown id from the registry), and the length of its header. Errors:
 * LEV_ERR_DECODE (neither framing), LEV_ERR_UNKNOWN_SCHEMA (no such
 * fingerprint or id, an id of a schema that is not Avro, or none usable:
 * the record can never be decoded), LEV_ERR_REGISTRY (the registry cannot
 * be asked now: try again later). */
LEV_API int lev_codec_writer(lev_codec_t *codec, const void *buf, size_t len,
                             const lev_schema_t **writer, size_t *header, lev_error_t *err);

/* Decodes a value in either framing. `reader` is the schema the caller
 * expects; NULL means the current version of the writer's full name. On
 * success *out is a new value of the reader schema (release with
 * avro_value_decref) and *writer (if not NULL) the writer schema. Errors:
 * LEV_ERR_DECODE (bad framing or body), LEV_ERR_UNKNOWN_SCHEMA,
 * LEV_ERR_RESOLVE, LEV_ERR_REGISTRY (see lev_codec_writer). Never aborts,
 * whatever the bytes. Strings (and map keys) must be well-formed UTF-8, as
 * the Avro specification defines them: other bytes are LEV_ERR_DECODE. A
 * reader field the writer lacks takes its default; an enum symbol the
 * reader lacks takes the reader enum's default (else LEV_ERR_RESOLVE). A
 * writer and reader pair that lev_schema_check_resolvable refuses (other
 * than for enum symbols) is LEV_ERR_RESOLVE for every value, with
 * err->where and err->text saying why; the check runs once per pair. */
LEV_API int lev_codec_decode(lev_codec_t *codec, const void *buf, size_t len,
                             const lev_schema_t *reader, avro_value_t *out,
                             const lev_schema_t **writer, lev_error_t *err);

/* Checks an unframed Avro binary body against a writer schema with the
 * codec's limits, without decoding it (what decode does first). */
LEV_API int lev_codec_validate_body(lev_codec_t *codec, const lev_schema_t *writer,
                                    const void *body, size_t len, lev_error_t *err);

/* JSON (Avro JSON encoding: unions as {"type": value} or null, bytes and
 * fixed as ISO-8859-1 strings) to a new value of `schema` (release with
 * avro_value_decref). Record fields missing from the JSON take the schema
 * default (else "missing field"); unknown members are an error. Errors
 * (LEV_ERR_JSON) name the field path in err->where ("items[2].quantity")
 * and what was expected and found in err->text. When nothing else is wrong,
 * every field missing without a default is named in one error: one by its
 * path, several under the object holding them all (where "items[0]", text
 * "missing fields (they have no default): sku, quantity"; where "" for the
 * top level). Extensions: a union value
 * may be given bare when it fits exactly one branch; NaN and infinities
 * are the strings "NaN", "Infinity", "-Infinity" (both directions). Bytes
 * holding 0 are "\u0000" in JSON: parse such text with JSON_ALLOW_NUL. */
LEV_API int lev_codec_from_json(lev_codec_t *codec, const lev_schema_t *schema, json_t *json,
                                avro_value_t *out, lev_error_t *err);

/* Avro JSON text of a value of `schema` (what lev_codec_from_json reads,
 * as text) encoded as lev_codec_encode would encode it, framed in the
 * codec's wire format and appended to *buf (*blen bytes used of *bcap;
 * grown with realloc, yours to free, also after an error). The same
 * texts are accepted, the same bytes written and the same errors given as
 * by json_loadb (JSON_REJECT_DUPLICATES) + lev_codec_from_json +
 * lev_codec_encode; a syntax error is LEV_ERR_JSON ("invalid JSON at
 * column N: ..."). Most values are encoded as the text is read, without
 * building a tree or an avro-c value, several times faster. With `used`
 * NULL the text must hold the value alone (whitespace around it aside);
 * else it may go on after the value and *used receives the bytes read. */
LEV_API int lev_codec_encode_json(lev_codec_t *codec, const lev_schema_t *schema, const char *text,
                                  size_t len, size_t *used, char **buf, size_t *blen, size_t *bcap,
                                  lev_error_t *err);

/* A value to JSON (Avro JSON encoding). Returns a new reference or NULL. */
LEV_API json_t *lev_codec_to_json(const avro_value_t *value, lev_error_t *err);

/* Field helpers for handlers: look a record field up by name (dotted paths
 * such as "customer.id" go through nested records; a union holding a
 * non-null branch is entered). Return 0, LEV_ERR_NOT_FOUND, or LEV_ERR_ARG on
 * a type mismatch. Strings are borrowed from the value. The getters only
 * read, so they take a handler's event value as it is (&ev->value), as do
 * lev_codec_to_json and lev_codec_encode. lev_value_get_field's *out is a
 * view of the field inside `rec` (avro-c has no read-only value handle):
 * only read through it unless the record is yours to change. */
LEV_API int lev_value_get_string(const avro_value_t *rec, const char *path, const char **out,
                                 size_t *len);
LEV_API int lev_value_get_long(const avro_value_t *rec, const char *path, int64_t *out);
LEV_API int lev_value_get_int(const avro_value_t *rec, const char *path, int32_t *out);
LEV_API int lev_value_get_bool(const avro_value_t *rec, const char *path, int *out);
LEV_API int lev_value_get_field(const avro_value_t *rec, const char *path, avro_value_t *out);
LEV_API int lev_value_set_string(avro_value_t *rec, const char *path, const char *s);
LEV_API int lev_value_set_long(avro_value_t *rec, const char *path, int64_t v);
LEV_API int lev_value_set_int(avro_value_t *rec, const char *path, int32_t v);
LEV_API int lev_value_set_enum(avro_value_t *rec, const char *path, const char *symbol);
/* Sets a union field to its null branch. Setters select the union branch of
 * the type they set; on the way to a nested field a union holding null is
 * switched to its record branch. get_long also reads int fields and
 * set_int also writes long fields. */
LEV_API int lev_value_set_null(avro_value_t *rec, const char *path);

#ifdef __cplusplus
}
#endif
#endif
