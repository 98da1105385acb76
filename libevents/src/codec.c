/*
 * Encoding and decoding of single-object encoded Avro values, with bounded
 * validation before avro-c reads anything and schema resolution between
 * the writer and the reader versions of a schema.
 *
 * Resolution. Every writer and reader pair is first checked by
 * lev_compat_check (compat.c), once per pair and cached with its verdict:
 * avro-c 1.11.1's resolved writer (avro_resolved_writer_new) crashes when a
 * resolution fails inside an array or a map (it frees a NULL child
 * resolver), so avro-c only ever sees pairs the check accepts. avro-c's
 * resolver handles removed fields (skipped), promotions, union branch
 * selection and records matched by unqualified name. It does not handle:
 *   - a reader field the writer lacks, even with a default: creating the
 *     resolver fails with "Reader field x doesn't appear in writer";
 *   - enums whose symbols differ: it copies the ordinal unchanged, so a
 *     symbol added in the middle, reordered symbols or a writer symbol the
 *     reader lacks would silently give a wrong symbol (or an ordinal out of
 *     range of the reader's enum).
 * For those pairs the check also returns a "projection" of the reader
 * schema, which avro-c resolves the writer to instead: the reader with, in
 * every record, only the fields the writer also has and, in every enum, the
 * writer's symbols. avro-c reads into a value of the projection, then the
 * codec copies it into a value of the reader schema, field by field by name
 * and enum symbols by name, filling each missing field from its default in
 * the reader schema, and mapping a writer symbol unknown to the reader to
 * the reader enum's default (an error, LEV_ERR_RESOLVE, for that value when
 * it has none). Pairs without these differences take avro-c's resolver
 * alone, and values whose writer is the reader are read directly.
 *
 * Known limits of avro-c 1.11.1 that remain: string and bytes are not
 * promoted to each other (LEV_ERR_RESOLVE), aliases are not used, and a
 * generic array cannot hold items that take no memory (records without
 * fields): such an array with items decodes to LEV_ERR_DECODE ("Couldn't
 * expand array"). avro-c keeps the pointers of a resolved writer value at
 * 4-byte offsets, where LeakSanitizer does not see them: a codec alive at
 * exit is reported as leaking, so destroy codecs before exiting.
 */
#include "codec_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_VALUE_SIZE (1024u * 1024u)
#define DEFAULT_MAX_ITEMS 100000u
#define DEFAULT_MAX_DEPTH 64u

/* Single-object encoding: magic and fingerprint. Confluent: magic and id. */
#define FRAME_HEADER 10
#define CONFLUENT_HEADER 5
/* Most writer schemas a codec learns from a registry. */
#define MAX_LEARNED 1000

/* The value of a reader field's default, made once per pair. */
typedef struct field_default_s {
    const json_t *record; /* the reader's record definition */
    size_t field;         /* index of the field in it */
    avro_value_iface_t *iface;
    avro_value_t value;
} field_default_t;

typedef struct pair_s {
    const lev_schema_t *w, *r;
    int rc;         /* 0, or why the pair cannot be resolved */
    char *errwhere; /* when rc != 0: field path (or NULL) and reason */
    char *errtext;
    avro_value_iface_t *rw_iface;
    avro_value_t rw_value; /* resolved writer, its destination set per read */
    /* Projection (see the top of the file), or NULL. */
    avro_schema_t proj;
    avro_value_iface_t *proj_iface;
    avro_value_t proj_value; /* reused: reset before each read */
    field_default_t *defaults;
    size_t ndefaults;
} pair_t;

/* An id the codec knows: its schema's index in the set, plus one (0 is an
 * empty slot). */
typedef struct id_slot_s {
    int32_t id;
    size_t idx1;
} id_slot_t;

/* A schema this codec registered for a topic (under the subject the
 * strategy gives): looked up per emitted event, so by index and topic. */
typedef struct subject_reg_s {
    char *topic;
    size_t idx;
} subject_reg_t;

struct lev_codec_s {
    const lev_schemas_t *schemas;
    lev_codec_limits_t limits;
    lev_wire_format_t wire;
    lev_registry_t *registry;
    lev_schemas_t *learn; /* the set, writable, when a registry is attached */
    size_t learned;
    int64_t *enc_ids; /* by schema index: the id encode frames it with, or -1 */
    size_t nenc;
    id_slot_t *ids; /* id -> schema, open addressing */
    size_t nidslots, nids;
    subject_reg_t *regs;
    size_t nregs, capregs;
    struct bad_id_s { /* ids found unusable for good, most recent last */
        int32_t id;
        char text[200];
    } bad[16];
    size_t nbad;
    int reg_wait_ms;      /* -1: lookups block; else the most a lookup waits */
    int64_t reg_retry_at; /* after a registry failure: no new lookup before */
    int64_t reg_backoff;  /* ms, doubled per failure */
    char reg_why[sizeof(((lev_error_t *)0)->text)];
    avro_value_iface_t **ifaces; /* generic value classes, by schema index */
    size_t nifaces;
    pair_t **pairs;
    size_t npairs, cappairs;
    avro_reader_t reader;
    avro_writer_t writer;
    lev_scratch_t scratch; /* decode's NUL-terminated string copies */
};

/* ======================================================================
 * Codec
 * ====================================================================== */

void lev_codec_limits_default(lev_codec_limits_t *limits)
{
    if (!limits)
        return;
    limits->max_value_size = DEFAULT_MAX_VALUE_SIZE;
    limits->max_bytes_len = DEFAULT_MAX_VALUE_SIZE;
    limits->max_items = DEFAULT_MAX_ITEMS;
    limits->max_depth = DEFAULT_MAX_DEPTH;
}

const lev_codec_limits_t *lev_codec_limits(const lev_codec_t *codec)
{
    return &codec->limits;
}

static void pair_free(pair_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ndefaults; i++) {
        avro_value_decref(&p->defaults[i].value);
        avro_value_iface_decref(p->defaults[i].iface);
    }
    free(p->defaults);
    free(p->errwhere);
    free(p->errtext);
    if (p->rw_value.self)
        avro_value_decref(&p->rw_value);
    if (p->rw_iface)
        avro_value_iface_decref(p->rw_iface);
    if (p->proj_value.self)
        avro_value_decref(&p->proj_value);
    if (p->proj_iface)
        avro_value_iface_decref(p->proj_iface);
    if (p->proj)
        avro_schema_decref(p->proj);
    free(p);
}

lev_codec_t *lev_codec_new(const lev_schemas_t *schemas, const lev_codec_limits_t *limits)
{
    static const char empty[1] = {0};
    if (!schemas)
        return NULL;
    lev_codec_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->schemas = schemas;
    lev_codec_limits_default(&c->limits);
    if (limits) {
        if (limits->max_value_size)
            c->limits.max_value_size = limits->max_value_size;
        c->limits.max_bytes_len =
            limits->max_bytes_len ? limits->max_bytes_len : c->limits.max_value_size;
        if (limits->max_items)
            c->limits.max_items = limits->max_items;
        if (limits->max_depth)
            c->limits.max_depth = limits->max_depth;
    }
    if (c->limits.max_depth > LEV_CODEC_MAX_DEPTH_CAP)
        c->limits.max_depth = LEV_CODEC_MAX_DEPTH_CAP;
    c->reg_wait_ms = -1;
    c->reader = avro_reader_memory(empty, 0);
    c->writer = avro_writer_memory(empty, 0);
    if (!c->reader || !c->writer) {
        lev_codec_destroy(c);
        return NULL;
    }
    return c;
}

void lev_codec_destroy(lev_codec_t *codec)
{
    if (!codec)
        return;
    for (size_t i = 0; i < codec->nifaces; i++)
        if (codec->ifaces[i])
            avro_value_iface_decref(codec->ifaces[i]);
    free(codec->ifaces);
    for (size_t i = 0; i < codec->npairs; i++)
        pair_free(codec->pairs[i]);
    free(codec->pairs);
    free(codec->enc_ids);
    free(codec->ids);
    for (size_t i = 0; i < codec->nregs; i++)
        free(codec->regs[i].topic);
    free(codec->regs);
    if (codec->reader)
        avro_reader_free(codec->reader);
    if (codec->writer)
        avro_writer_free(codec->writer);
    free(codec->scratch.p);
    free(codec);
}

const lev_schemas_t *lev_codec_schemas(const lev_codec_t *codec)
{
    return codec ? codec->schemas : NULL;
}

/* The generic value class of a schema of the set, made once. */
static avro_value_iface_t *schema_iface(lev_codec_t *codec, const lev_schema_t *schema)
{
    size_t i = lev_schema_index(schema);
    if (i >= codec->nifaces) {
        size_t n = codec->nifaces ? codec->nifaces : 16;
        while (n <= i)
            n *= 2;
        avro_value_iface_t **v = realloc(codec->ifaces, n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + codec->nifaces, 0, (n - codec->nifaces) * sizeof *v);
        codec->ifaces = v;
        codec->nifaces = n;
    }
    if (!codec->ifaces[i])
        codec->ifaces[i] = avro_generic_class_from_schema(lev_schema_avro(schema));
    return codec->ifaces[i];
}

int lev_codec_new_value(lev_codec_t *codec, const lev_schema_t *schema, avro_value_t *out)
{
    if (!codec || !schema || !out)
        return LEV_ERR_ARG;
    out->iface = NULL;
    out->self = NULL;
    if (lev_schemas_at(codec->schemas, lev_schema_index(schema)) != schema)
        return LEV_ERR_ARG; /* not a schema of this codec's set */
    avro_value_iface_t *iface = schema_iface(codec, schema);
    if (!iface || avro_generic_value_new(iface, out) != 0) {
        out->iface = NULL;
        out->self = NULL;
        return LEV_ERR_NOMEM;
    }
    return 0;
}

/* ======================================================================
 * Pairs
 * ====================================================================== */

static int pair_fail(pair_t *p, int code, const char *where, const char *text)
{
    p->rc = code;
    p->errwhere = lev_strdup(where);
    p->errtext = lev_strdup(text);
    return code;
}

/* Checks the pair (compat.c) before avro-c sees it: avro-c 1.11.1 crashes
 * when a resolution fails inside an array or a map. Then builds avro-c's
 * resolver, to the projection when the check says the reader needs one. */
static void pair_build(pair_t *p)
{
    lev_error_t e;
    char text[sizeof e.text + 200];
    json_t *proj = NULL;
    lev_error_clear(&e);
    if (lev_compat_check(p->w, p->r, LEV_COMPAT_ENUM_PER_VALUE, NULL, NULL, &proj, &e) != 0) {
        if (e.code == LEV_ERR_RESOLVE)
            snprintf(text, sizeof text, "cannot read %s (%016llx) as %s (%016llx): %s",
                     lev_schema_name(p->w), (unsigned long long)lev_schema_fingerprint(p->w),
                     lev_schema_name(p->r), (unsigned long long)lev_schema_fingerprint(p->r),
                     e.text);
        else
            snprintf(text, sizeof text, "%s", e.text);
        pair_fail(p, e.code, e.where, text);
        return;
    }
    avro_schema_t target = lev_schema_avro(p->r);
    if (proj) {
        json_t *aj = lev_canon_for_avro_c(proj);
        char *txt = aj ? json_dumps(aj, JSON_COMPACT) : NULL;
        json_decref(aj);
        json_decref(proj);
        if (!txt || avro_schema_from_json_length(txt, strlen(txt), &p->proj) != 0) {
            p->proj = NULL;
            snprintf(text, sizeof text, "cannot resolve %s to %s: %s", lev_schema_name(p->w),
                     lev_schema_name(p->r), txt ? avro_strerror() : "out of memory");
            free(txt);
            pair_fail(p, LEV_ERR_RESOLVE, NULL, text);
            return;
        }
        free(txt);
        p->proj_iface = avro_generic_class_from_schema(p->proj);
        if (!p->proj_iface || avro_generic_value_new(p->proj_iface, &p->proj_value) != 0) {
            p->proj_value.self = NULL;
            pair_fail(p, LEV_ERR_NOMEM, NULL, "out of memory");
            return;
        }
        target = p->proj;
    }
    p->rw_iface = avro_resolved_writer_new(lev_schema_avro(p->w), target);
    if (!p->rw_iface) {
        snprintf(text, sizeof text, "cannot resolve writer %s (%016llx) to reader %s (%016llx): %s",
                 lev_schema_name(p->w), (unsigned long long)lev_schema_fingerprint(p->w),
                 lev_schema_name(p->r), (unsigned long long)lev_schema_fingerprint(p->r),
                 avro_strerror());
        pair_fail(p, LEV_ERR_RESOLVE, NULL, text);
        return;
    }
    if (avro_resolved_writer_new_value(p->rw_iface, &p->rw_value) != 0) {
        p->rw_value.self = NULL;
        pair_fail(p, LEV_ERR_NOMEM, NULL, "out of memory");
    }
}

static pair_t *get_pair(lev_codec_t *codec, const lev_schema_t *w, const lev_schema_t *r)
{
    for (size_t i = 0; i < codec->npairs; i++)
        if (codec->pairs[i]->w == w && codec->pairs[i]->r == r)
            return codec->pairs[i];
    if (codec->npairs == codec->cappairs) {
        size_t cap = codec->cappairs ? codec->cappairs * 2 : 8;
        pair_t **v = realloc(codec->pairs, cap * sizeof *v);
        if (!v)
            return NULL;
        codec->pairs = v;
        codec->cappairs = cap;
    }
    pair_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->w = w;
    p->r = r;
    pair_build(p);
    codec->pairs[codec->npairs++] = p;
    return p;
}

/* ======================================================================
 * Copying a projection value into a reader value
 * ====================================================================== */

typedef struct copy_ctx_s {
    const lev_schema_t *r;
    pair_t *pair;
    const json_t *names;
    lev_error_t *err;
    /* The field path of an error, built back to front as it unwinds. */
    char path[sizeof(((lev_error_t *)0)->where)];
    size_t ppos;
} copy_ctx_t;

static int copy_fail(copy_ctx_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int copy_fail(copy_ctx_t *c, int code, const char *fmt, ...)
{
    if (c->err) {
        char text[sizeof c->err->text];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        lev_error_set(c->err, code, NULL, "%s", text);
    }
    return code;
}

/* Prepends a path segment while an error unwinds: ".name", "[i]" or
 * "[\"key\"]". */
static void copy_prepend(copy_ctx_t *c, const char *name, size_t index, int key)
{
    char seg[96];
    int n = !name ? snprintf(seg, sizeof seg, "[%zu]", index)
            : key ? snprintf(seg, sizeof seg, "[\"%.40s\"]", name)
                  : snprintf(seg, sizeof seg, ".%.80s", name);
    if (n <= 0 || (size_t)n >= c->ppos)
        return;
    c->ppos -= (size_t)n;
    memcpy(c->path + c->ppos, seg, (size_t)n);
}

static int copy_primitive(copy_ctx_t *c, avro_value_t *dst, avro_value_t *src)
{
    int rc;
    switch (avro_value_get_type(src)) {
    case AVRO_NULL:
        rc = avro_value_set_null(dst);
        break;
    case AVRO_BOOLEAN: {
        int b = 0;
        avro_value_get_boolean(src, &b);
        rc = avro_value_set_boolean(dst, b);
        break;
    }
    case AVRO_INT32: {
        int32_t v = 0;
        avro_value_get_int(src, &v);
        rc = avro_value_set_int(dst, v);
        break;
    }
    case AVRO_INT64: {
        int64_t v = 0;
        avro_value_get_long(src, &v);
        rc = avro_value_set_long(dst, v);
        break;
    }
    case AVRO_FLOAT: {
        float v = 0;
        avro_value_get_float(src, &v);
        rc = avro_value_set_float(dst, v);
        break;
    }
    case AVRO_DOUBLE: {
        double v = 0;
        avro_value_get_double(src, &v);
        rc = avro_value_set_double(dst, v);
        break;
    }
    case AVRO_STRING: {
        const char *str = NULL;
        size_t size = 0;
        avro_value_get_string(src, &str, &size);
        rc = avro_value_set_string_len(dst, str ? str : "", str ? size : 1);
        break;
    }
    case AVRO_BYTES: {
        const void *b = NULL;
        size_t size = 0;
        avro_value_get_bytes(src, &b, &size);
        rc = avro_value_set_bytes(dst, (void *)(b ? b : ""), size);
        break;
    }
    case AVRO_FIXED: {
        const void *b = NULL;
        size_t size = 0;
        avro_value_get_fixed(src, &b, &size);
        rc = avro_value_set_fixed(dst, (void *)(b ? b : ""), size);
        break;
    }
    default:
        return copy_fail(c, LEV_ERR_RESOLVE, "unexpected type in the projection");
    }
    return rc ? copy_fail(c, LEV_ERR_RESOLVE, "%s", avro_strerror()) : 0;
}

static int copy_value(copy_ctx_t *c, avro_value_t *dst, avro_value_t *src, const json_t *rnode);

/* Sets `dst` (field `i` of reader record `def`) to the field's default,
 * converted from JSON the first time and copied after that. */
static int copy_default(copy_ctx_t *c, avro_value_t *dst, const json_t *def, size_t i,
                        const json_t *f)
{
    pair_t *p = c->pair;
    field_default_t *d = NULL;
    for (size_t k = 0; k < p->ndefaults; k++)
        if (p->defaults[k].record == def && p->defaults[k].field == i)
            d = &p->defaults[k];
    if (!d) {
        field_default_t nd = {def, i, NULL, {NULL, NULL}};
        field_default_t *v = realloc(p->defaults, (p->ndefaults + 1) * sizeof *v);
        if (!v)
            return copy_fail(c, LEV_ERR_NOMEM, "out of memory");
        p->defaults = v;
        nd.iface = avro_generic_class_from_schema(avro_value_get_schema(dst));
        if (!nd.iface || avro_generic_value_new(nd.iface, &nd.value) != 0) {
            if (nd.iface)
                avro_value_iface_decref(nd.iface);
            return copy_fail(c, LEV_ERR_NOMEM, "out of memory");
        }
        if (lev_json_to_value(json_object_get(f, "default"), json_object_get(f, "type"), c->names,
                              &nd.value, LEV_JSON_DEFAULT, LEV_CODEC_MAX_DEPTH_CAP, "",
                              NULL) != 0) {
            avro_value_decref(&nd.value);
            avro_value_iface_decref(nd.iface);
            return copy_fail(c, LEV_ERR_RESOLVE, "the default of %s.%s cannot be applied",
                             json_string_value(json_object_get(def, "name")),
                             json_string_value(json_object_get(f, "name")));
        }
        p->defaults[p->ndefaults] = nd;
        d = &p->defaults[p->ndefaults++];
    }
    return avro_value_copy_fast(dst, &d->value) == 0
               ? 0
               : copy_fail(c, LEV_ERR_RESOLVE, "%s", avro_strerror());
}

/* The projection keeps the reader's fields in their order, minus those the
 * writer lacks: both records are walked side by side (a lookup by name of a
 * missing field would have avro-c format an error message). */
static int copy_record(copy_ctx_t *c, avro_value_t *dst, avro_value_t *src, const json_t *def)
{
    size_t i, next = 0, nsrc = 0;
    const json_t *f;
    avro_value_get_size(src, &nsrc);
    json_array_foreach(json_object_get(def, "fields"), i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        const json_t *ftype = json_object_get(f, "type");
        const char *sname = NULL;
        avro_value_t df, sf;
        int rc;
        if (next < nsrc && avro_value_get_by_index(src, next, &sf, &sname) == 0 && sname &&
            strcmp(sname, fname) == 0)
            next++;
        else
            sname = NULL;
        if (avro_value_get_by_index(dst, i, &df, NULL) != 0)
            rc = copy_fail(c, LEV_ERR_RESOLVE, "%s", avro_strerror());
        else if (sname)
            rc = copy_value(c, &df, &sf, ftype);
        else
            rc = copy_default(c, &df, def, i, f);
        if (rc) {
            copy_prepend(c, fname, 0, 0);
            return rc;
        }
    }
    return 0;
}

static int copy_enum(copy_ctx_t *c, avro_value_t *dst, avro_value_t *src, const json_t *def)
{
    int e = -1;
    avro_value_get_enum(src, &e);
    const char *sym = avro_schema_enum_get(avro_value_get_schema(src), e);
    const char *dflt = json_string_value(json_object_get(def, "default"));
    const json_t *syms = json_object_get(def, "symbols");
    for (int pass = 0; pass < 2; pass++) {
        const char *want = pass == 0 ? sym : dflt;
        for (size_t i = 0; want && i < json_array_size(syms); i++) {
            if (strcmp(json_string_value(json_array_get(syms, i)), want) == 0) {
                if (avro_value_set_enum(dst, (int)i) != 0)
                    return copy_fail(c, LEV_ERR_RESOLVE, "%s", avro_strerror());
                return 0;
            }
        }
    }
    return copy_fail(c, LEV_ERR_RESOLVE,
                     "symbol \"%s\" of the writer is not in reader enum %s, which has no default",
                     sym ? sym : "?", json_string_value(json_object_get(def, "name")));
}

/* Copies a value of the projection into a value of the reader schema
 * (`rnode` in the reader's normalized schema). */
static int copy_value(copy_ctx_t *c, avro_value_t *dst, avro_value_t *src, const json_t *rnode)
{
    const json_t *def;
    const char *kind = lev_canon_kind(rnode, c->names, &def);
    if (!kind)
        return copy_fail(c, LEV_ERR_RESOLVE, "reader schema refers to an unknown type");
    if (json_is_string(def)) /* a primitive */
        return copy_primitive(c, dst, src);
    if (json_is_array(def)) { /* a union: the projection has the same branches */
        int d = -1;
        avro_value_t db, sb;
        if (avro_value_get_discriminant(src, &d) != 0 || d < 0 ||
            avro_value_get_current_branch(src, &sb) != 0 || avro_value_set_branch(dst, d, &db) != 0)
            return copy_fail(c, LEV_ERR_RESOLVE, "union without a branch");
        return copy_value(c, &db, &sb, json_array_get(def, (size_t)d));
    }
    switch (kind[0]) {
    case 'r':
        return copy_record(c, dst, src, def);
    case 'e':
        return copy_enum(c, dst, src, def);
    case 'a':
    case 'm': {
        int arr = kind[0] == 'a';
        const json_t *sub = json_object_get(def, arr ? "items" : "values");
        size_t n = 0;
        avro_value_get_size(src, &n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t se, de;
            const char *key = NULL;
            int rc = avro_value_get_by_index(src, i, &se, &key);
            if (rc == 0)
                rc = arr ? avro_value_append(dst, &de, NULL)
                         : avro_value_add(dst, key, &de, NULL, NULL);
            rc = rc ? copy_fail(c, LEV_ERR_RESOLVE, "%s", avro_strerror())
                    : copy_value(c, &de, &se, sub);
            if (rc) {
                copy_prepend(c, arr ? NULL : key, i, 1);
                return rc;
            }
        }
        return 0;
    }
    default: /* fixed */
        return copy_primitive(c, dst, src);
    }
}

/* ======================================================================
 * Encode and decode
 * ====================================================================== */

int lev_codec_peek_fingerprint(const void *buf, size_t len, uint64_t *fingerprint)
{
    const uint8_t *b = buf;
    if (!b || len < FRAME_HEADER || b[0] != 0xc3 || b[1] != 0x01)
        return LEV_ERR_DECODE;
    uint64_t fp = 0;
    for (int i = 7; i >= 0; i--)
        fp = (fp << 8) | b[2 + i];
    if (fingerprint)
        *fingerprint = fp;
    return 0;
}

int lev_wire_format_parse(const char *s, lev_wire_format_t *out)
{
    if (!s || !out)
        return LEV_ERR_CONFIG;
    if (strcmp(s, "soe") == 0 || strcmp(s, "single-object") == 0) {
        *out = LEV_WIRE_SOE;
        return 0;
    }
    if (strcmp(s, "confluent") == 0) {
        *out = LEV_WIRE_CONFLUENT;
        return 0;
    }
    return LEV_ERR_CONFIG;
}

const char *lev_wire_format_name(lev_wire_format_t f)
{
    return f == LEV_WIRE_CONFLUENT ? "confluent" : "soe";
}

int lev_codec_peek_frame(const void *buf, size_t len, lev_frame_t *frame, lev_error_t *err)
{
    const uint8_t *b = buf;
    lev_frame_t f = {0};
    if (!b || len == 0)
        return lev_error_set(err, LEV_ERR_DECODE, NULL, "empty value: no wire format header");
    if (b[0] == 0xc3) {
        if (len < FRAME_HEADER || b[1] != 0x01)
            return lev_error_set(err, LEV_ERR_DECODE, NULL,
                                 "not a single-object encoded Avro value (%zu bytes)", len);
        f.format = LEV_WIRE_SOE;
        for (int i = 7; i >= 0; i--)
            f.fingerprint = (f.fingerprint << 8) | b[2 + i];
        f.header = FRAME_HEADER;
    } else if (b[0] == 0x00) {
        if (len < CONFLUENT_HEADER)
            return lev_error_set(err, LEV_ERR_DECODE, NULL,
                                 "truncated Confluent header (%zu bytes, 5 needed)", len);
        uint32_t id = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
        f.format = LEV_WIRE_CONFLUENT;
        f.schema_id = (int32_t)id;
        f.header = CONFLUENT_HEADER;
    } else {
        return lev_error_set(err, LEV_ERR_DECODE, NULL,
                             "unknown wire format: first byte 0x%02x is neither 0xc3 "
                             "(single-object encoding) nor 0x00 (Confluent)",
                             b[0]);
    }
    if (frame)
        *frame = f;
    return 0;
}

/* Grows the by-index id table to hold index i. */
static int enc_ids_reserve(lev_codec_t *codec, size_t i)
{
    if (i < codec->nenc)
        return 0;
    size_t n = codec->nenc ? codec->nenc : 16;
    while (n <= i)
        n *= 2;
    int64_t *v = realloc(codec->enc_ids, n * sizeof *v);
    if (!v)
        return LEV_ERR_NOMEM;
    for (size_t k = codec->nenc; k < n; k++)
        v[k] = -1;
    codec->enc_ids = v;
    codec->nenc = n;
    return 0;
}

static size_t id_hash(int32_t id, size_t nslots)
{
    uint32_t h = (uint32_t)id * 2654435761u;
    return (size_t)(h ^ (h >> 16)) & (nslots - 1);
}

static const lev_schema_t *id_find(const lev_codec_t *codec, int32_t id)
{
    if (!codec->nidslots)
        return NULL;
    for (size_t i = id_hash(id, codec->nidslots);; i = (i + 1) & (codec->nidslots - 1)) {
        const id_slot_t *e = &codec->ids[i];
        if (!e->idx1)
            return NULL;
        if (e->id == id)
            return lev_schemas_at(codec->schemas, e->idx1 - 1);
    }
}

static void id_put_slot(id_slot_t *slots, size_t nslots, int32_t id, size_t idx1)
{
    size_t i = id_hash(id, nslots);
    while (slots[i].idx1 && slots[i].id != id)
        i = (i + 1) & (nslots - 1);
    slots[i].id = id;
    slots[i].idx1 = idx1;
}

/* Remembers that `id` names `schema` (for decoding). */
static int id_put(lev_codec_t *codec, int32_t id, const lev_schema_t *schema)
{
    if (id_find(codec, id) == schema)
        return 0;
    if (2 * (codec->nids + 1) >= codec->nidslots) {
        size_t n = codec->nidslots ? codec->nidslots * 2 : 32;
        id_slot_t *slots = calloc(n, sizeof *slots);
        if (!slots)
            return LEV_ERR_NOMEM;
        for (size_t i = 0; i < codec->nidslots; i++)
            if (codec->ids[i].idx1)
                id_put_slot(slots, n, codec->ids[i].id, codec->ids[i].idx1);
        free(codec->ids);
        codec->ids = slots;
        codec->nidslots = n;
    }
    codec->nids++;
    id_put_slot(codec->ids, codec->nidslots, id, lev_schema_index(schema) + 1);
    return 0;
}

int lev_codec_set_registry(lev_codec_t *codec, lev_schemas_t *schemas, lev_registry_t *reg)
{
    if (!codec || (reg && schemas != codec->schemas))
        return LEV_ERR_ARG;
    codec->registry = reg;
    codec->learn = reg ? schemas : NULL;
    codec->reg_retry_at = 0;
    codec->reg_backoff = 0;
    return 0;
}

void lev_codec_set_registry_wait(lev_codec_t *codec, int wait_ms)
{
    if (codec)
        codec->reg_wait_ms = wait_ms < 0 ? -1 : wait_ms;
}

lev_registry_t *lev_codec_registry(const lev_codec_t *codec)
{
    return codec ? codec->registry : NULL;
}

void lev_codec_set_wire_format(lev_codec_t *codec, lev_wire_format_t f)
{
    if (codec)
        codec->wire = f;
}

lev_wire_format_t lev_codec_wire_format(const lev_codec_t *codec)
{
    return codec ? codec->wire : LEV_WIRE_SOE;
}

int lev_codec_bind_id(lev_codec_t *codec, const lev_schema_t *schema, int32_t id)
{
    if (!codec || !schema || lev_schemas_at(codec->schemas, lev_schema_index(schema)) != schema)
        return LEV_ERR_ARG;
    size_t i = lev_schema_index(schema);
    if (enc_ids_reserve(codec, i) != 0 || id_put(codec, id, schema) != 0)
        return LEV_ERR_NOMEM;
    codec->enc_ids[i] = id;
    return 0;
}

int32_t lev_codec_schema_id(const lev_codec_t *codec, const lev_schema_t *schema)
{
    if (!codec || !schema)
        return -1;
    size_t i = lev_schema_index(schema);
    return i < codec->nenc && codec->enc_ids[i] >= 0 ? (int32_t)codec->enc_ids[i] : -1;
}

int lev_codec_register(lev_codec_t *codec, const char *topic, const lev_schema_t *schema,
                       lev_error_t *err)
{
    if (!codec || !topic || !schema ||
        lev_schemas_at(codec->schemas, lev_schema_index(schema)) != schema)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec, topic or schema");
    if (!codec->registry)
        return lev_error_set(err, LEV_ERR_STATE, NULL,
                             "no schema registry is configured (LEV_SCHEMA_REGISTRY_URL)");
    size_t idx = lev_schema_index(schema);
    for (size_t i = 0; i < codec->nregs; i++)
        if (codec->regs[i].idx == idx && strcmp(codec->regs[i].topic, topic) == 0)
            return 0;
    char subject[512];
    if (lev_registry_subject(lev_registry_strategy(codec->registry), topic, lev_schema_name(schema),
                             subject, sizeof subject) != 0)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "subject name too long for topic %s", topic);
    if (lev_grow(&codec->regs, &codec->capregs, codec->nregs + 1, sizeof *codec->regs, 8) != 0)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    int32_t id = -1;
    const char *text = lev_schema_text(schema, NULL);
    int rc = codec->reg_wait_ms < 0
                 ? lev_registry_register(codec->registry, subject, text, &id, err)
                 : lev_registry_register_wait(codec->registry, subject, text, codec->reg_wait_ms,
                                              &id, err);
    if (rc == LEV_ERR_TIMEOUT) { /* still registering, on the registry's thread */
        if (err)
            err->code = LEV_ERR_REGISTRY; /* its text says so */
        return LEV_ERR_REGISTRY;
    }
    if (rc)
        return rc;
    char *copy = lev_strdup(topic);
    if (!copy || lev_codec_bind_id(codec, schema, id) != 0) {
        free(copy);
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    }
    codec->regs[codec->nregs].topic = copy;
    codec->regs[codec->nregs].idx = idx;
    codec->nregs++;
    return 0;
}

static int learn_id(lev_codec_t *codec, int32_t id, const lev_schema_t **out, lev_error_t *err);

/* The writer schema of registry id `id`: known, or fetched and learned. */
static int writer_by_id(lev_codec_t *codec, int32_t id, const lev_schema_t **out, lev_error_t *err)
{
    const lev_schema_t *w = id_find(codec, id);
    if (w) {
        *out = w;
        return 0;
    }
    if (!codec->registry)
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "schema id %" PRId32
                             " is unknown and no schema registry is configured "
                             "(LEV_SCHEMA_REGISTRY_URL)",
                             id);
    size_t nb = codec->nbad < 16 ? codec->nbad : 16;
    for (size_t i = 0; i < nb; i++)
        if (codec->bad[i].id == id)
            return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL, "%s", codec->bad[i].text);
    lev_error_t e;
    lev_error_clear(&e);
    int rc = learn_id(codec, id, out, &e);
    if (rc == LEV_ERR_UNKNOWN_SCHEMA) { /* ids are immutable: remember the verdict */
        struct bad_id_s *b = &codec->bad[codec->nbad++ % 16];
        b->id = id;
        snprintf(b->text, sizeof b->text, "%.*s", (int)sizeof b->text - 1, e.text);
    }
    if (rc && err)
        *err = e;
    return rc;
}

/* writer_by_id for an id neither known nor known to be bad. */
static int learn_id(lev_codec_t *codec, int32_t id, const lev_schema_t **out, lev_error_t *err)
{
    const lev_schema_t *w = NULL;
    int64_t now = lev_mono_ms();
    if (now < codec->reg_retry_at)
        return lev_error_set(err, LEV_ERR_REGISTRY, NULL,
                             "schema id %" PRId32 ": the registry failed %lld ms ago (%s)", id,
                             (long long)(now - (codec->reg_retry_at - codec->reg_backoff)),
                             codec->reg_why);
    char *text = NULL;
    lev_error_t e;
    lev_error_clear(&e);
    int rc = codec->reg_wait_ms < 0 ? lev_registry_schema_by_id(codec->registry, id, &text, &e)
                                    : lev_registry_schema_by_id_wait(codec->registry, id,
                                                                     codec->reg_wait_ms, &text, &e);
    if (rc == LEV_ERR_TIMEOUT) /* still asking, on the registry's thread */
        return lev_error_set(err, LEV_ERR_REGISTRY, NULL, "%s", e.text);
    if (rc == LEV_ERR_REGISTRY) {
        /* a codec that may not block asks on the registry's thread, which
         * costs its caller nothing: it may ask again sooner */
        int64_t cap = codec->reg_wait_ms >= 0 ? 2000 : 30000;
        codec->reg_backoff = codec->reg_backoff ? codec->reg_backoff * 2 : 1000;
        if (codec->reg_backoff > cap)
            codec->reg_backoff = cap;
        codec->reg_retry_at = now + codec->reg_backoff;
        snprintf(codec->reg_why, sizeof codec->reg_why, "%s", e.text);
    } else {
        codec->reg_backoff = 0;
        codec->reg_retry_at = 0;
    }
    if (rc) {
        if (err)
            *err = e;
        return rc;
    }
    if (codec->learned >= MAX_LEARNED) {
        free(text);
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "schema id %" PRId32 ": already %d schemas learned from the registry",
                             id, MAX_LEARNED);
    }
    char origin[64];
    snprintf(origin, sizeof origin, "registry id %" PRId32, id);
    size_t n0 = lev_schemas_count(codec->schemas);
    lev_error_clear(&e);
    rc = lev_schemas_add(codec->learn, text, strlen(text), origin, LEV_SCHEMA_WRITER_ONLY, &w, &e);
    free(text);
    if (rc == LEV_ERR_NOMEM)
        return lev_error_set(err, rc, NULL, "out of memory");
    if (rc)
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "schema id %" PRId32 " is not a usable Avro schema: %s", id, e.text);
    if (lev_schemas_count(codec->schemas) > n0)
        codec->learned++;
    if (id_put(codec, id, w) != 0)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    *out = w;
    return 0;
}

int lev_codec_writer(lev_codec_t *codec, const void *buf, size_t len, const lev_schema_t **writer,
                     size_t *header, lev_error_t *err)
{
    if (!codec || !writer)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec or output");
    *writer = NULL;
    lev_frame_t f;
    int rc = lev_codec_peek_frame(buf, len, &f, err);
    if (rc)
        return rc;
    if (header)
        *header = f.header;
    if (f.format == LEV_WIRE_CONFLUENT)
        return writer_by_id(codec, f.schema_id, writer, err);
    *writer = lev_schemas_find_fingerprint(codec->schemas, f.fingerprint);
    if (!*writer)
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "no loaded schema has fingerprint %016llx",
                             (unsigned long long)f.fingerprint);
    return 0;
}

int lev_codec_validate_body(lev_codec_t *codec, const lev_schema_t *writer, const void *body,
                            size_t len, lev_error_t *err)
{
    if (!codec || !writer || (!body && len))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec, schema or body");
    if (len > codec->limits.max_value_size)
        return lev_error_set(err, LEV_ERR_DECODE, NULL,
                             "body of %zu bytes exceeds the limit of %zu", len,
                             codec->limits.max_value_size);
    return lev_vplan_validate(lev_schema_plan(writer), body, len, &codec->limits, err);
}

/* Checks an encode's arguments and sizes the framed value into *total. */
int lev_codec_frame_header(lev_codec_t *codec, const lev_schema_t *schema,
                           uint8_t hdr[LEV_FRAME_HEADER_MAX], size_t *hlen, lev_error_t *err)
{
    if (codec->wire == LEV_WIRE_CONFLUENT) {
        int32_t id = lev_codec_schema_id(codec, schema);
        if (id < 0)
            return lev_error_set(err, LEV_ERR_STATE, NULL,
                                 "%s has no schema registry id: register it for its topic first",
                                 lev_schema_name(schema));
        hdr[0] = 0x00;
        for (int i = 0; i < 4; i++)
            hdr[1 + i] = (uint8_t)((uint32_t)id >> (24 - 8 * i));
        *hlen = CONFLUENT_HEADER;
        return 0;
    }
    uint64_t fp = lev_schema_fingerprint(schema);
    hdr[0] = 0xc3;
    hdr[1] = 0x01;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)(fp >> (8 * i));
    *hlen = FRAME_HEADER;
    return 0;
}

static int encode_size(lev_codec_t *codec, const lev_schema_t *schema, const avro_value_t *value,
                       size_t *total, lev_error_t *err)
{
    if (!codec || !schema || !value || !value->iface)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec, schema, value or output");
    avro_schema_t vs = avro_value_get_schema(value);
    if (vs != lev_schema_avro(schema) && !avro_schema_equal(vs, lev_schema_avro(schema)))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "the value is not of schema %s",
                             lev_schema_name(schema));
    /* avro-c's sizeof and write take a non-const handle but only read
     * through it; a copy of the handle ({iface, self}) views the same value. */
    uint8_t h[LEV_FRAME_HEADER_MAX];
    size_t hdr;
    int rc = lev_codec_frame_header(codec, schema, h, &hdr, err);
    if (rc)
        return rc;
    avro_value_t v = *value;
    size_t size = 0;
    if (avro_value_sizeof(&v, &size) != 0)
        return lev_error_set(err, LEV_ERR_ENCODE, NULL, "cannot encode %s: %s",
                             lev_schema_name(schema), avro_strerror());
    if (size > codec->limits.max_value_size - hdr || codec->limits.max_value_size < hdr)
        return lev_error_set(err, LEV_ERR_ENCODE, NULL,
                             "encoded %s of %zu bytes exceeds the limit of %zu",
                             lev_schema_name(schema), size + hdr, codec->limits.max_value_size);
    *total = hdr + size;
    return 0;
}

/* Writes the framed value of `total` bytes (from encode_size) to p. */
static int encode_at(lev_codec_t *codec, const lev_schema_t *schema, const avro_value_t *value,
                     uint8_t *p, size_t total, lev_error_t *err)
{
    size_t hdr;
    int rc = lev_codec_frame_header(codec, schema, p, &hdr, err);
    if (rc)
        return rc;
    size_t size = total - hdr;
    avro_writer_memory_set_dest(codec->writer, (const char *)p + hdr, (int64_t)size);
    avro_value_t v = *value; /* as in encode_size */
    if (avro_value_write(codec->writer, &v) != 0)
        return lev_error_set(err, LEV_ERR_ENCODE, NULL, "cannot encode %s: %s",
                             lev_schema_name(schema), avro_strerror());
    /* What we send must be what we accept (enum ordinals set out of range,
     * strings that are not UTF-8, limits). */
    lev_error_t verr;
    lev_error_clear(&verr);
    if (lev_vplan_validate(lev_schema_plan(schema), p + hdr, size, &codec->limits, &verr) != 0)
        return lev_error_set(err, LEV_ERR_ENCODE, verr.where, "invalid %s value: %s",
                             lev_schema_name(schema), verr.text);
    return 0;
}

/* The one-walk path (lev_vplan_write): appends the framed value to *buf
 * and returns 0; or an error (the frame header's, or LEV_ERR_NOMEM), set
 * in err; or LEV_VPLAN_WRITE_CANNOT, *len unchanged, when encode_size and
 * encode_at must decide (and name the error). Only for a value made from
 * this very schema. */
static int encode_fast(lev_codec_t *codec, const lev_schema_t *schema, const avro_value_t *value,
                       char **buf, size_t *len, size_t *cap, lev_error_t *err)
{
    if (!codec || !schema || !value || !value->iface || !buf || !len || !cap ||
        avro_value_get_schema(value) != lev_schema_avro(schema))
        return LEV_VPLAN_WRITE_CANNOT;
    uint8_t h[LEV_FRAME_HEADER_MAX];
    size_t hdr, mark = *len;
    int rc = lev_codec_frame_header(codec, schema, h, &hdr, err);
    if (rc)
        return rc;
    if (lev_grow(buf, cap, mark + hdr, 1, 1024) != 0)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    memcpy(*buf + mark, h, hdr);
    *len = mark + hdr;
    rc = lev_vplan_write(lev_schema_plan(schema), value, &codec->limits, buf, len, cap);
    if (rc == 0 && *len - mark > codec->limits.max_value_size)
        rc = LEV_VPLAN_WRITE_CANNOT; /* encode_size names the limit */
    if (rc)
        *len = mark;
    return rc == LEV_ERR_NOMEM ? lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory") : rc;
}

int lev_codec_encode(lev_codec_t *codec, const lev_schema_t *schema, const avro_value_t *value,
                     void **buf, size_t *len, lev_error_t *err)
{
    if (!buf || !len)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec, schema, value or output");
    *buf = NULL;
    *len = 0;
    char *fb = NULL;
    size_t flen = 0, fcap = 0;
    int frc = encode_fast(codec, schema, value, &fb, &flen, &fcap, err);
    if (frc == 0) {
        *buf = fb;
        *len = flen;
        return 0;
    }
    free(fb);
    if (frc != LEV_VPLAN_WRITE_CANNOT)
        return frc;
    size_t total = 0;
    int rc = encode_size(codec, schema, value, &total, err);
    if (rc)
        return rc;
    uint8_t *p = malloc(total);
    if (!p)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if ((rc = encode_at(codec, schema, value, p, total, err)) != 0) {
        free(p);
        return rc;
    }
    *buf = p;
    *len = total;
    return 0;
}

int lev_codec_encode_append(lev_codec_t *codec, const lev_schema_t *schema,
                            const avro_value_t *value, char **buf, size_t *len, size_t *cap,
                            lev_error_t *err)
{
    int frc = encode_fast(codec, schema, value, buf, len, cap, err);
    if (frc != LEV_VPLAN_WRITE_CANNOT)
        return frc;
    size_t total = 0;
    int rc = encode_size(codec, schema, value, &total, err);
    if (rc)
        return rc;
    if (lev_grow(buf, cap, *len + total, 1, 1024) != 0)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if ((rc = encode_at(codec, schema, value, (uint8_t *)*buf + *len, total, err)) != 0)
        return rc;
    *len += total;
    return 0;
}

/* Decodes into *out: a new value when reuse is 0, else the value *out
 * already holds (of the reader schema), reset first. */
static int decode(lev_codec_t *codec, const void *buf, size_t len, const lev_schema_t *reader,
                  avro_value_t *out, int reuse, const lev_schema_t **writer, lev_error_t *err)
{
    if (!codec || !out)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec or output");
    if (!reuse) {
        out->iface = NULL;
        out->self = NULL;
    }
    if (writer)
        *writer = NULL;
    lev_frame_t f;
    int rc = lev_codec_peek_frame(buf, len, &f, err);
    if (rc)
        return rc;
    if (len > codec->limits.max_value_size)
        return lev_error_set(err, LEV_ERR_DECODE, NULL,
                             "value of %zu bytes exceeds the limit of %zu", len,
                             codec->limits.max_value_size);
    const lev_schema_t *w = NULL;
    if ((rc = lev_codec_writer(codec, buf, len, &w, NULL, err)) != 0)
        return rc;
    const lev_schema_t *r = reader;
    if (!r) {
        r = lev_schema_current_version(w);
        if (!r)
            r = w;
    } else if (lev_schemas_at(codec->schemas, lev_schema_index(r)) != r) {
        return lev_error_set(err, LEV_ERR_ARG, NULL, "reader schema is not of this codec's set");
    }
    const uint8_t *body = (const uint8_t *)buf + f.header;
    size_t blen = len - f.header;
    rc = lev_vplan_validate(lev_schema_plan(w), body, blen, &codec->limits, err);
    if (rc)
        return rc;

    pair_t *pair = NULL;
    if (r != w) {
        pair = get_pair(codec, w, r);
        if (!pair)
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        if (pair->rc)
            return lev_error_set(err, pair->rc, pair->errwhere, "%s",
                                 pair->errtext ? pair->errtext : "cannot resolve");
    }
    avro_value_t v;
    if (reuse) {
        if (avro_value_get_schema(out) != lev_schema_avro(r))
            return lev_error_set(err, LEV_ERR_ARG, NULL, "the value to fill is not of schema %s",
                                 lev_schema_name(r));
        v = *out;
        avro_value_reset(&v);
    } else if ((rc = lev_codec_new_value(codec, r, &v)) != 0) {
        return lev_error_set(err, rc, NULL, "cannot create a value of %s", lev_schema_name(r));
    }
    if (!pair) {
        /* the body is validated: filled without avro-c's reader, which
         * allocates every string it reads */
        if ((rc = lev_vplan_fill(lev_schema_plan(w), body, blen, &v, &codec->scratch)) != 0) {
            rc = lev_error_set(err, rc, NULL, "cannot decode %s: %s", lev_schema_name(w),
                               rc == LEV_ERR_NOMEM ? "out of memory" : avro_strerror());
            goto fail;
        }
    } else {
        avro_reader_memory_set_source(codec->reader, (const char *)body, (int64_t)blen);
        avro_value_t *dest = pair->proj ? &pair->proj_value : &v;
        if (pair->proj)
            avro_value_reset(dest);
        avro_resolved_writer_set_dest(&pair->rw_value, dest);
        int rrc = avro_value_read(codec->reader, &pair->rw_value);
        avro_resolved_writer_clear_dest(&pair->rw_value);
        if (rrc != 0) {
            rc = lev_error_set(err, LEV_ERR_RESOLVE, NULL, "cannot read %s as %s: %s",
                               lev_schema_name(w), lev_schema_name(r), avro_strerror());
            goto fail;
        }
        if (pair->proj) {
            copy_ctx_t cc;
            cc.r = r;
            cc.pair = pair;
            cc.names = lev_schema_names(r);
            cc.err = err;
            cc.ppos = sizeof cc.path - 1;
            cc.path[cc.ppos] = '\0';
            rc = copy_value(&cc, &v, &pair->proj_value, lev_schema_norm(r));
            avro_value_reset(&pair->proj_value);
            if (rc) {
                if (err) {
                    const char *p = cc.path + cc.ppos;
                    snprintf(err->where, sizeof err->where, "%s", *p == '.' ? p + 1 : p);
                }
                goto fail;
            }
        }
    }
    *out = v;
    if (writer)
        *writer = w;
    return 0;
fail:
    if (!reuse)
        avro_value_decref(&v);
    return rc;
}

int lev_codec_decode(lev_codec_t *codec, const void *buf, size_t len, const lev_schema_t *reader,
                     avro_value_t *out, const lev_schema_t **writer, lev_error_t *err)
{
    return decode(codec, buf, len, reader, out, 0, writer, err);
}

int lev_codec_decode_into(lev_codec_t *codec, const void *buf, size_t len,
                          const lev_schema_t *reader, avro_value_t *dst,
                          const lev_schema_t **writer, lev_error_t *err)
{
    if (!dst || !dst->iface)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "no value to decode into");
    return decode(codec, buf, len, reader, dst, 1, writer, err);
}
