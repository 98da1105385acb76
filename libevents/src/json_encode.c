/*
 * Avro JSON text straight to the Avro binary encoding, without a tree.
 *
 * lev_codec_encode_json is lev_codec_from_json followed by
 * lev_codec_encode, for text. Most values take the direct path here: a
 * plan compiled with the schema (lev_jplan_t) walks the text with the pull
 * reader and writes each value as it is read. Whatever the direct path
 * cannot decide for certain goes through the tree path instead (jansson,
 * lev_codec_from_json, lev_codec_encode), which also names every error:
 *   - anything wrong: bad JSON, a value of the wrong type, an unknown or
 *     duplicate member, a missing field without a default, a limit;
 *   - bytes and fixed values, "NaN" and the infinities, a union value given
 *     bare that fits more than one branch or is an object, a field default
 *     the plan could not encode at compile time, a map of more than
 *     MAP_KEYS_MAX entries;
 * so both paths accept the same texts and write the same bytes (the tests
 * compare them on every input they have).
 *
 * Record members may come in any order: in schema order (what encoders
 * write) they are encoded as they are read; at the first one out of order
 * the record starts again from the span of each member's text.
 */
#include "codec_internal.h"

#include <libevents/jsontext.h>

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLOW LEV_JSON_DIRECT_CANNOT /* the direct path cannot decide: the tree path must */
#define SPAN_FIELDS_MAX 64          /* records re-read from member spans: fields at most */
#define MAP_KEYS_MAX 64             /* map entries checked for duplicates */
#define NUMBER_TEXT_MAX 128         /* a float or double number's text, longest */

/* ======================================================================
 * Plans
 * ====================================================================== */

typedef enum fkind_e {
    FK_NULL,
    FK_BOOLEAN,
    FK_INT,
    FK_LONG,
    FK_FLOAT,
    FK_DOUBLE,
    FK_STRING,
    FK_BYTES,
    FK_FIXED,
    FK_ENUM,
    FK_RECORD,
    FK_ARRAY,
    FK_MAP,
    FK_UNION,
} fkind_t;

typedef struct fnode_s fnode_t;

typedef struct ffield_s {
    const char *name; /* borrowed from the normalized schema, as are all names */
    size_t nlen;
    fnode_t *type;
    const json_t *dflt; /* the schema's default, or NULL */
    char *dbytes;       /* the default encoded, when ready */
    size_t dlen;
    size_t ddepth;   /* how deep its containers nest */
    size_t ditems;   /* its array items and map entries */
    size_t dlongest; /* its longest string or map key */
    int dready;
} ffield_t;

struct fnode_s {
    fkind_t kind;
    const json_t *def; /* named types: the definition (nodes are shared by it) */
    size_t n;          /* record fields, enum symbols, union branches */
    ffield_t *fields;
    fnode_t **kids;     /* union branches */
    const char **names; /* enum symbols, union branch names */
    size_t *nlens;
    fnode_t *items;   /* array items, map values */
    long null_branch; /* union: the index of "null", or -1 */
};

struct lev_jplan_s {
    fnode_t **all;
    size_t nall, capall;
    fnode_t *root;
};

static fnode_t *plan_node(lev_jplan_t *pl, fkind_t kind, const json_t *def)
{
    if (pl->nall == pl->capall) {
        size_t cap = pl->capall ? pl->capall * 2 : 16;
        fnode_t **all = realloc(pl->all, cap * sizeof *all);
        if (!all)
            return NULL;
        pl->all = all;
        pl->capall = cap;
    }
    fnode_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->def = def;
    n->null_branch = -1;
    pl->all[pl->nall++] = n;
    return n;
}

static int kind_from_name(const char *k, fkind_t *out)
{
    static const struct {
        const char *name;
        fkind_t kind;
    } kinds[] = {
        {"null", FK_NULL},   {"boolean", FK_BOOLEAN}, {"int", FK_INT},       {"long", FK_LONG},
        {"float", FK_FLOAT}, {"double", FK_DOUBLE},   {"string", FK_STRING}, {"bytes", FK_BYTES},
        {"fixed", FK_FIXED}, {"enum", FK_ENUM},       {"record", FK_RECORD}, {"array", FK_ARRAY},
        {"map", FK_MAP},     {"union", FK_UNION},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(k, kinds[i].name) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    }
    return -1;
}

static fnode_t *compile(lev_jplan_t *pl, const json_t *node, const json_t *names)
{
    const json_t *def;
    const char *k = lev_canon_kind(node, names, &def);
    fkind_t kind;
    if (!k || kind_from_name(k, &kind) != 0)
        return NULL;
    int named = kind == FK_RECORD || kind == FK_ENUM || kind == FK_FIXED;
    if (named) {
        for (size_t i = 0; i < pl->nall; i++)
            if (pl->all[i]->def == def)
                return pl->all[i];
    }
    fnode_t *n = plan_node(pl, kind, named ? def : NULL);
    if (!n)
        return NULL;
    if (kind == FK_RECORD) {
        const json_t *fields = json_object_get(def, "fields");
        n->n = json_array_size(fields);
        if (n->n && !(n->fields = calloc(n->n, sizeof *n->fields)))
            return NULL;
        for (size_t i = 0; i < n->n; i++) {
            const json_t *f = json_array_get(fields, i);
            ffield_t *ff = &n->fields[i];
            ff->name = json_string_value(json_object_get(f, "name"));
            ff->nlen = ff->name ? strlen(ff->name) : 0;
            ff->dflt = json_object_get(f, "default");
            if (!ff->name || !(ff->type = compile(pl, json_object_get(f, "type"), names)))
                return NULL;
        }
    } else if (kind == FK_ENUM || kind == FK_UNION) {
        const json_t *list = kind == FK_ENUM ? json_object_get(def, "symbols") : def;
        n->n = json_array_size(list);
        if (n->n && (!(n->names = calloc(n->n, sizeof *n->names)) ||
                     !(n->nlens = calloc(n->n, sizeof *n->nlens)) ||
                     (kind == FK_UNION && !(n->kids = calloc(n->n, sizeof *n->kids)))))
            return NULL;
        for (size_t i = 0; i < n->n; i++) {
            const json_t *e = json_array_get(list, i);
            if (kind == FK_ENUM) {
                n->names[i] = json_string_value(e);
            } else {
                /* a branch's name in the JSON encoding: a named type's full
                 * name, else the type's name */
                const json_t *bdef;
                const char *bk = lev_canon_kind(e, names, &bdef);
                const char *bname =
                    json_is_object(bdef) ? json_string_value(json_object_get(bdef, "name")) : NULL;
                n->names[i] = bname ? bname : bk;
                if (!(n->kids[i] = compile(pl, e, names)))
                    return NULL;
                if (n->kids[i]->kind == FK_NULL && n->null_branch < 0)
                    n->null_branch = (long)i;
            }
            if (!n->names[i])
                return NULL;
            n->nlens[i] = strlen(n->names[i]);
        }
    } else if (kind == FK_ARRAY || kind == FK_MAP) {
        const json_t *sub = json_object_get(def, kind == FK_ARRAY ? "items" : "values");
        if (!(n->items = compile(pl, sub, names)))
            return NULL;
    } else if (kind == FK_FIXED) {
        n->n = (size_t)json_integer_value(json_object_get(def, "size"));
    }
    return n;
}

void lev_jplan_destroy(lev_jplan_t *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < pl->nall; i++) {
        fnode_t *n = pl->all[i];
        for (size_t f = 0; n->fields && f < n->n; f++)
            free(n->fields[f].dbytes);
        free(n->fields);
        free(n->kids);
        free(n->names);
        free(n->nlens);
        free(n);
    }
    free(pl->all);
    free(pl);
}

/* ======================================================================
 * Output
 * ====================================================================== */

/* An array or map block of `count` items written from `mark` on: the
 * count goes in front of them and the end marker after. */
static int ob_block(lev_obuf_t *o, size_t mark, size_t count)
{
    if (count) {
        uint8_t b[10];
        size_t n = lev_varint((int64_t)count, b);
        if (lev_ob_reserve(o, n) != 0)
            return LEV_ERR_NOMEM;
        memmove(o->p + mark + n, o->p + mark, o->len - mark);
        memcpy(o->p + mark, b, n);
        o->len += n;
    }
    return lev_ob_long(o, 0);
}

/* ======================================================================
 * Text to bytes
 * ====================================================================== */

/* The limits lev_vplan_validate applies to a body are applied here as it
 * is written, so the direct path need not walk its own output again: the
 * depth, the items (array items plus map entries, defaults' included) and
 * the length of each string and map key. Going past one is SLOW: the tree
 * path then gives the error. */
typedef struct enc_s {
    lev_jreader_t *r;
    lev_obuf_t *o;
    size_t max_depth;
    int dflt;       /* a schema default: a bare union value takes the first branch it fits */
    size_t deepest; /* the deepest container met */
    size_t items, max_items;
    size_t longest, max_bytes; /* the longest string or map key met */
} enc_t;

/* Counts a string or map key of len bytes; 0 or SLOW. */
static int enc_str_len(enc_t *e, size_t len)
{
    if (len > e->longest)
        e->longest = len;
    return len > e->max_bytes ? SLOW : 0;
}

/* Counts one more array item or map entry; 0 or SLOW. */
static int enc_item(enc_t *e)
{
    return ++e->items > e->max_items ? SLOW : 0;
}

static int enc(enc_t *e, const fnode_t *n, size_t depth);

static long find_name(const char *const *names, const size_t *nlens, size_t count, const char *s,
                      size_t len)
{
    for (size_t i = 0; i < count; i++)
        if (nlens[i] == len && memcmp(names[i], s, len) == 0)
            return (long)i;
    return -1;
}

static long find_field(const fnode_t *n, const char *key, size_t klen, size_t hint)
{
    if (hint < n->n && n->fields[hint].nlen == klen && memcmp(n->fields[hint].name, key, klen) == 0)
        return (long)hint;
    for (size_t i = 0; i < n->n; i++)
        if (n->fields[i].nlen == klen && memcmp(n->fields[i].name, key, klen) == 0)
            return (long)i;
    return -1;
}

/* A missing field's default, its value at `depth` (nested as the tree
 * path would nest it). */
static int put_default(enc_t *e, const ffield_t *f, size_t depth)
{
    if (!f->dready || depth + f->ddepth > e->max_depth || f->ditems > e->max_items - e->items ||
        enc_str_len(e, f->dlongest) != 0)
        return SLOW;
    if (depth + f->ddepth > e->deepest)
        e->deepest = depth + f->ddepth;
    e->items += f->ditems;
    return lev_ob_put(e->o, f->dbytes, f->dlen);
}

/* A record, its members in any order: re-read from each member's span. */
static int enc_record_spans(enc_t *e, const fnode_t *n, size_t depth)
{
    const char *span[SPAN_FIELDS_MAX];
    size_t slen[SPAN_FIELDS_MAX], klen;
    const char *key;
    int first = 1, rc;
    if (n->n > SPAN_FIELDS_MAX || lev_jreader_eat(e->r, '{') != 0)
        return SLOW;
    memset(span, 0, n->n * sizeof span[0]);
    while ((rc = lev_jreader_member(e->r, &first, &key, &klen)) == 1) {
        long i = find_field(n, key, klen, 0);
        if (i < 0 || span[i]) /* unknown, or a duplicate */
            return SLOW;
        if (lev_jreader_skip(e->r, e->max_depth, &span[i], &slen[i]) != 0)
            return SLOW;
    }
    if (rc != 0)
        return SLOW;
    lev_jreader_t *main = e->r, outer = *main;
    for (size_t i = 0; i < n->n; i++) {
        if (!span[i]) {
            if ((rc = put_default(e, &n->fields[i], depth)) != 0)
                break;
            continue;
        }
        lev_jreader_t sub = outer;
        sub.p = span[i];
        sub.end = span[i] + slen[i];
        e->r = &sub;
        rc = enc(e, n->fields[i].type, depth);
        outer.scratch = sub.scratch; /* the scratch may have grown */
        outer.scap = sub.scap;
        if (rc)
            break;
    }
    e->r = main;
    *main = outer;
    return rc;
}

static int enc_record(enc_t *e, const fnode_t *n, size_t depth)
{
    lev_jreader_t *r = e->r;
    (void)lev_jreader_peek(r);
    const char *start = r->p;
    size_t mark = e->o->len, items = e->items, next = 0, klen;
    const char *key;
    int first = 1, rc;
    if (lev_jreader_eat(r, '{') != 0)
        return SLOW;
    while ((rc = lev_jreader_member(r, &first, &key, &klen)) == 1) {
        long i = find_field(n, key, klen, next);
        if (i < 0)
            return SLOW;
        /* fields skipped take their defaults, unless they come later:
         * out of schema order, start again from spans */
        int later = (size_t)i < next;
        for (; !later && next < (size_t)i; next++) {
            if ((rc = put_default(e, &n->fields[next], depth)) == SLOW)
                later = 1;
            else if (rc)
                return rc;
        }
        if (later) {
            e->o->len = mark;
            e->items = items;
            r->p = start;
            return enc_record_spans(e, n, depth);
        }
        if ((rc = enc(e, n->fields[i].type, depth)) != 0)
            return rc;
        next = (size_t)i + 1;
    }
    if (rc != 0)
        return SLOW;
    for (; next < n->n; next++)
        if ((rc = put_default(e, &n->fields[next], depth)) != 0)
            return rc;
    return 0;
}

/* A number's value as a double: jansson's, which is strtod's for a real
 * and the integer's for an integral one. */
static int number_double(const char *s, size_t len, int integral, double *out)
{
    if (integral) {
        int64_t v;
        if (lev_json_int64(s, len, &v) != 0)
            return SLOW;
        *out = (double)v;
        return 0;
    }
    char buf[NUMBER_TEXT_MAX];
    if (len >= sizeof buf || localeconv()->decimal_point[0] != '.')
        return SLOW; /* jansson reads numbers in the C locale whatever the program's */
    memcpy(buf, s, len);
    buf[len] = '\0';
    double d = strtod(buf, NULL);
    if (isinf(d))
        return SLOW; /* jansson refuses an overflow */
    *out = d;
    return 0;
}

static int enc_union(enc_t *e, const fnode_t *n, size_t depth)
{
    lev_jreader_t *r = e->r;
    int c = lev_jreader_peek(r), which, rc;
    const char *s, *key;
    size_t len;
    if (c == 'n') {
        if (lev_jreader_literal(r, &which) != 0 || n->null_branch < 0)
            return SLOW;
        return lev_ob_long(e->o, n->null_branch);
    }
    if (c == '{') { /* {"<branch>": value}, one member */
        int first = 1;
        if (e->dflt || lev_jreader_eat(r, '{') != 0 ||
            lev_jreader_member(r, &first, &key, &len) != 1)
            return SLOW;
        long i = find_name(n->names, n->nlens, n->n, key, len);
        if (i < 0)
            return SLOW;
        if ((rc = lev_ob_long(e->o, i)) != 0 || (rc = enc(e, n->kids[i], depth)) != 0)
            return rc;
        return lev_jreader_member(r, &first, &key, &len) == 0 ? 0 : SLOW;
    }
    /* a bare value: the branch it fits (the first for a default, else the
     * only one) */
    const char *start = r->p;
    int integral = 0;
    int64_t iv = 0;
    if (c == 't' || c == 'f') {
        if (lev_jreader_literal(r, &which) != 0)
            return SLOW;
    } else if (c == '"') {
        if (lev_jreader_string(r, &s, &len) != 0)
            return SLOW;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (lev_jreader_number(r, &s, &len, &integral) != 0 ||
            (integral && lev_json_int64(s, len, &iv) != 0))
            return SLOW;
    } else if (c != '[') {
        return SLOW;
    }
    long found = -1, fits = 0;
    for (size_t i = 0; i < n->n; i++) {
        const fnode_t *b = n->kids[i];
        int fit = 0;
        if (c == 't' || c == 'f')
            fit = b->kind == FK_BOOLEAN;
        else if (c == '[')
            fit = b->kind == FK_ARRAY;
        else if (c == '"') {
            if (b->kind == FK_BYTES || b->kind == FK_FIXED)
                return SLOW;
            fit = b->kind == FK_STRING ||
                  (b->kind == FK_ENUM && find_name(b->names, b->nlens, b->n, s, len) >= 0);
        } else {
            fit = b->kind == FK_FLOAT || b->kind == FK_DOUBLE ||
                  (integral && (b->kind == FK_LONG ||
                                (b->kind == FK_INT && iv >= INT32_MIN && iv <= INT32_MAX)));
        }
        if (fit && found < 0)
            found = (long)i;
        fits += fit;
    }
    if (found < 0 || (!e->dflt && fits != 1))
        return SLOW;
    r->p = start;
    if ((rc = lev_ob_long(e->o, found)) != 0)
        return rc;
    return enc(e, n->kids[found], depth);
}

static int enc_container(enc_t *e, const fnode_t *n, size_t depth)
{
    lev_jreader_t *r = e->r;
    lev_obuf_t *o = e->o;
    size_t mark = o->len, count = 0, len;
    size_t koff[MAP_KEYS_MAX], klen[MAP_KEYS_MAX];
    const char *key;
    int first = 1, rc;
    if (n->kind == FK_ARRAY) {
        if (lev_jreader_eat(r, '[') != 0)
            return SLOW;
        while ((rc = lev_jreader_element(r, &first)) == 1) {
            if ((rc = enc_item(e)) != 0 || (rc = enc(e, n->items, depth)) != 0)
                return rc;
            count++;
        }
    } else {
        if (lev_jreader_eat(r, '{') != 0)
            return SLOW;
        while ((rc = lev_jreader_member(r, &first, &key, &len)) == 1) {
            if (count == MAP_KEYS_MAX || enc_item(e) != 0 || enc_str_len(e, len) != 0)
                return SLOW;
            for (size_t i = 0; i < count; i++)
                if (klen[i] == len && memcmp(o->p + koff[i], key, len) == 0)
                    return SLOW; /* a duplicate key */
            if ((rc = lev_ob_long(o, (int64_t)len)) != 0)
                return rc;
            koff[count] = o->len;
            klen[count] = len;
            if ((rc = lev_ob_put(o, key, len)) != 0 || (rc = enc(e, n->items, depth)) != 0)
                return rc;
            count++;
        }
    }
    if (rc != 0)
        return SLOW;
    return ob_block(o, mark, count);
}

static int enc(enc_t *e, const fnode_t *n, size_t depth)
{
    lev_jreader_t *r = e->r;
    const char *s;
    size_t len;
    int which, integral;
    int64_t v;
    double d;
    switch (n->kind) {
    case FK_NULL:
        return lev_jreader_literal(r, &which) == 0 && which == 'n' ? 0 : SLOW;
    case FK_BOOLEAN: {
        if (lev_jreader_literal(r, &which) != 0 || which == 'n')
            return SLOW;
        uint8_t b = which == 't';
        return lev_ob_put(e->o, &b, 1);
    }
    case FK_INT:
    case FK_LONG:
        if (lev_jreader_number(r, &s, &len, &integral) != 0 || !integral ||
            lev_json_int64(s, len, &v) != 0)
            return SLOW;
        if (n->kind == FK_INT && (v < INT32_MIN || v > INT32_MAX))
            return SLOW;
        return lev_ob_long(e->o, v);
    case FK_FLOAT:
    case FK_DOUBLE:
        if (lev_jreader_number(r, &s, &len, &integral) != 0 ||
            number_double(s, len, integral, &d) != 0)
            return SLOW;
        if (n->kind == FK_FLOAT) {
            float f = (float)d;
            return lev_ob_put(e->o, &f, sizeof f); /* little-endian hosts only, as avro-c */
        }
        return lev_ob_put(e->o, &d, sizeof d);
    case FK_STRING: {
        int rc;
        if (lev_jreader_string(r, &s, &len) != 0 || enc_str_len(e, len) != 0)
            return SLOW;
        if ((rc = lev_ob_long(e->o, (int64_t)len)) != 0)
            return rc;
        return lev_ob_put(e->o, s, len);
    }
    case FK_ENUM: {
        if (lev_jreader_string(r, &s, &len) != 0)
            return SLOW;
        long i = find_name(n->names, n->nlens, n->n, s, len);
        return i < 0 ? SLOW : lev_ob_long(e->o, i);
    }
    case FK_BYTES:
    case FK_FIXED:
        return SLOW;
    case FK_RECORD:
    case FK_ARRAY:
    case FK_MAP:
    case FK_UNION:
        if (depth + 1 > e->max_depth)
            return SLOW;
        if (depth + 1 > e->deepest)
            e->deepest = depth + 1;
        if (n->kind == FK_RECORD)
            return enc_record(e, n, depth + 1);
        if (n->kind == FK_UNION)
            return enc_union(e, n, depth + 1);
        return enc_container(e, n, depth + 1);
    }
    return SLOW;
}

/* Encodes every field default the direct path can: a default may hold a
 * record whose missing fields take their own defaults, so this goes round
 * until a round adds none. */
static int compile_defaults(lev_jplan_t *pl)
{
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t i = 0; i < pl->nall; i++) {
            fnode_t *n = pl->all[i];
            for (size_t f = 0; n->kind == FK_RECORD && f < n->n; f++) {
                ffield_t *ff = &n->fields[f];
                if (!ff->dflt || ff->dready)
                    continue;
                char *text = json_dumps(ff->dflt, JSON_ENCODE_ANY | JSON_COMPACT);
                if (!text)
                    return LEV_ERR_NOMEM;
                lev_jreader_t r;
                lev_obuf_t o = {NULL, 0, 0};
                enc_t e = {.r = &r,
                           .o = &o,
                           .max_depth = LEV_CODEC_MAX_DEPTH_CAP,
                           .dflt = 1,
                           .max_items = SIZE_MAX,
                           .max_bytes = SIZE_MAX};
                lev_jreader_init(&r, text, strlen(text));
                int rc = enc(&e, ff->type, 0);
                if (rc == 0 && lev_jreader_peek(&r) == -1) {
                    ff->dbytes = o.p;
                    ff->dlen = o.len;
                    ff->ddepth = e.deepest;
                    ff->ditems = e.items;
                    ff->dlongest = e.longest;
                    ff->dready = 1;
                    progress = 1;
                } else {
                    free(o.p);
                }
                lev_jreader_free(&r);
                free(text);
                if (rc == LEV_ERR_NOMEM)
                    return rc;
            }
        }
    }
    return 0;
}

lev_jplan_t *lev_jplan_new(const json_t *norm, const json_t *names)
{
    lev_jplan_t *pl = calloc(1, sizeof *pl);
    if (!pl)
        return NULL;
    if (!(pl->root = compile(pl, norm, names)) || compile_defaults(pl) != 0) {
        lev_jplan_destroy(pl);
        return NULL;
    }
    return pl;
}

/* ======================================================================
 * lev_codec_encode_json
 * ====================================================================== */

/* The direct path: 0 with the body appended to o, SLOW, or LEV_ERR_NOMEM. */
static int encode_direct(lev_codec_t *codec, const lev_schema_t *schema, const char *text,
                         size_t len, size_t hlen, size_t *used, lev_obuf_t *o)
{
    const lev_jplan_t *pl = lev_schema_jplan(schema);
    if (!pl)
        return SLOW;
    const lev_codec_limits_t *lim = lev_codec_limits(codec);
    lev_jreader_t r;
    lev_jreader_init(&r, text, len);
    enc_t e = {.r = &r,
               .o = o,
               .max_depth = lim->max_depth < LEV_CODEC_MAX_DEPTH_CAP ? lim->max_depth
                                                                     : LEV_CODEC_MAX_DEPTH_CAP,
               .max_items = lim->max_items,
               .max_bytes = lim->max_bytes_len};
    size_t body = o->len;
    int rc = enc(&e, pl->root, 0);
    if (rc == 0 && !used && lev_jreader_peek(&r) != -1)
        rc = SLOW; /* text after the value */
    if (rc == 0 && used)
        *used = (size_t)(r.p - text);
    lev_jreader_free(&r);
    if (rc)
        return rc;
    /* what the tree path would refuse at encoding; the rest of what
     * lev_vplan_validate checks was checked by enc as it wrote */
    if (lim->max_value_size < hlen || o->len - body > lim->max_value_size - hlen)
        return SLOW;
    return 0;
}

int lev_codec_encode_json_direct(lev_codec_t *codec, const lev_schema_t *schema, const char *text,
                                 size_t len, size_t *used, char **buf, size_t *blen, size_t *bcap,
                                 lev_error_t *err)
{
    uint8_t hdr[LEV_FRAME_HEADER_MAX];
    size_t hlen;
    int rc = lev_codec_frame_header(codec, schema, hdr, &hlen, err);
    if (rc)
        return rc;
    lev_obuf_t o = {*buf, *blen, *bcap};
    size_t mark = o.len;
    if ((rc = lev_ob_put(&o, hdr, hlen)) == 0)
        rc = encode_direct(codec, schema, text ? text : "", len, hlen, used, &o);
    *buf = o.p;
    *bcap = o.cap;
    *blen = rc == 0 ? o.len : mark;
    if (rc == LEV_ERR_NOMEM)
        return lev_error_set(err, rc, NULL, "out of memory");
    return rc;
}

int lev_codec_encode_json(lev_codec_t *codec, const lev_schema_t *schema, const char *text,
                          size_t len, size_t *used, char **buf, size_t *blen, size_t *bcap,
                          lev_error_t *err)
{
    if (!codec || !schema || (!text && len) || !buf || !blen || !bcap || *blen > *bcap)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec, schema, text or output");
    int rc = lev_codec_encode_json_direct(codec, schema, text, len, used, buf, blen, bcap, err);
    if (rc != LEV_JSON_DIRECT_CANNOT)
        return rc;
    /* the tree path: the same result, or what is wrong */
    json_error_t je;
    size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | (used ? JSON_DISABLE_EOF_CHECK : 0);
    json_t *j = json_loadb(text ? text : "", len, flags, &je);
    if (!j)
        return lev_error_set(err, LEV_ERR_JSON, NULL, "invalid JSON at column %d: %s", je.column,
                             je.text);
    avro_value_t v;
    rc = lev_codec_from_json(codec, schema, j, &v, err);
    json_decref(j);
    if (rc)
        return rc;
    rc = lev_codec_encode_append(codec, schema, &v, buf, blen, bcap, err);
    avro_value_decref(&v);
    if (rc == 0 && used)
        *used = (size_t)je.position;
    return rc;
}
