/*
 * The bounded validator: walks an Avro binary body against the writer
 * schema before avro-c reads it, because avro-c 1.11.1 trusts what the
 * bytes claim (lengths, counts, enum ordinals, union indexes).
 *
 * What is rejected, each as LEV_ERR_DECODE with the field path in
 * err->where and the offending byte offset in err->text:
 *   - truncation anywhere (varints, strings, bytes, fixed, float, double);
 *   - varints longer than 10 bytes (5 for int and enum), or whose value
 *     does not fit 64 bits (32 for int and enum);
 *   - negative lengths and negative block byte sizes;
 *   - strings and bytes longer than max_bytes_len or than what is left;
 *   - array and map blocks claiming more items than the bytes left could
 *     hold (each item's fewest possible bytes are counted; items that can
 *     take no bytes at all, like null, are bounded by max_items only);
 *   - more than max_items array items plus map entries in the value;
 *   - records, arrays, maps and unions nested deeper than max_depth;
 *   - enum ordinals and union indexes out of range;
 *   - booleans other than 0 and 1;
 *   - strings (and map keys) that are not well-formed UTF-8: the Avro
 *     specification defines strings as UTF-8, and a string that is not
 *     cannot be given to JSON or to most consumers. U+0000 is allowed;
 *   - a negative block count whose byte size does not match its items;
 *   - trailing bytes after the value.
 */
#include "codec_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Plans
 * ====================================================================== */

/* Scalars first: walk() tells them apart with kind <= VK_ENUM. */
typedef enum vkind_e {
    VK_NULL,
    VK_BOOL,
    VK_INT,
    VK_LONG,
    VK_FLOAT,
    VK_DOUBLE,
    VK_STRING,
    VK_BYTES,
    VK_FIXED,
    VK_ENUM,
    VK_RECORD,
    VK_ARRAY,
    VK_MAP,
    VK_UNION,
} vkind_t;

typedef struct vnode_s vnode_t;
struct vnode_s {
    vkind_t kind;
    int computing;     /* set while min_size is being computed */
    int computed;      /* min_size is final */
    size_t n;          /* fixed size, enum symbols, record fields, union branches */
    size_t min_size;   /* fewest bytes an encoded value can take */
    vnode_t **kids;    /* record fields, union branches, array items or map values */
    char **names;      /* record field names */
    avro_schema_t key; /* named types: the schema, to share nodes (recursion) */
};

struct lev_vplan_s {
    vnode_t *root;
    vnode_t **all;
    size_t nall, capall;
};

static vnode_t *plan_node(lev_vplan_t *plan, vkind_t kind)
{
    if (plan->nall == plan->capall) {
        size_t cap = plan->capall ? plan->capall * 2 : 16;
        vnode_t **all = realloc(plan->all, cap * sizeof *all);
        if (!all)
            return NULL;
        plan->all = all;
        plan->capall = cap;
    }
    vnode_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    plan->all[plan->nall++] = n;
    return n;
}

static vnode_t *compile(lev_vplan_t *plan, avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    if (is_avro_named_type(s)) {
        for (size_t i = 0; i < plan->nall; i++)
            if (plan->all[i]->key == s)
                return plan->all[i];
    }
    vnode_t *n;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return plan_node(plan, VK_NULL);
    case AVRO_BOOLEAN:
        return plan_node(plan, VK_BOOL);
    case AVRO_INT32:
        return plan_node(plan, VK_INT);
    case AVRO_INT64:
        return plan_node(plan, VK_LONG);
    case AVRO_FLOAT:
        return plan_node(plan, VK_FLOAT);
    case AVRO_DOUBLE:
        return plan_node(plan, VK_DOUBLE);
    case AVRO_STRING:
        return plan_node(plan, VK_STRING);
    case AVRO_BYTES:
        return plan_node(plan, VK_BYTES);
    case AVRO_FIXED: {
        int64_t size = avro_schema_fixed_size(s);
        if (size < 0)
            return NULL;
        n = plan_node(plan, VK_FIXED);
        if (n) {
            n->key = s;
            n->n = (size_t)size;
        }
        return n;
    }
    case AVRO_ENUM: {
        int count = avro_schema_enum_number_of_symbols(s);
        if (count < 0)
            return NULL;
        n = plan_node(plan, VK_ENUM);
        if (n) {
            n->key = s;
            n->n = (size_t)count;
        }
        return n;
    }
    case AVRO_RECORD: {
        n = plan_node(plan, VK_RECORD);
        if (!n)
            return NULL;
        n->key = s; /* registered before the fields: recursion finds it */
        n->n = avro_schema_record_size(s);
        n->kids = calloc(n->n ? n->n : 1, sizeof *n->kids);
        n->names = calloc(n->n ? n->n : 1, sizeof *n->names);
        if (!n->kids || !n->names)
            return NULL;
        for (size_t i = 0; i < n->n; i++) {
            const char *fname = avro_schema_record_field_name(s, (int)i);
            n->names[i] = lev_strdup(fname ? fname : "?");
            n->kids[i] = compile(plan, avro_schema_record_field_get_by_index(s, (int)i));
            if (!n->names[i] || !n->kids[i])
                return NULL;
        }
        return n;
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        int arr = avro_typeof(s) == AVRO_ARRAY;
        n = plan_node(plan, arr ? VK_ARRAY : VK_MAP);
        if (!n)
            return NULL;
        n->n = 1;
        n->kids = calloc(1, sizeof *n->kids);
        if (!n->kids)
            return NULL;
        n->kids[0] = compile(plan, arr ? avro_schema_array_items(s) : avro_schema_map_values(s));
        return n->kids[0] ? n : NULL;
    }
    case AVRO_UNION: {
        n = plan_node(plan, VK_UNION);
        if (!n)
            return NULL;
        n->n = avro_schema_union_size(s);
        n->kids = calloc(n->n ? n->n : 1, sizeof *n->kids);
        if (!n->kids)
            return NULL;
        for (size_t i = 0; i < n->n; i++) {
            n->kids[i] = compile(plan, avro_schema_union_branch(s, (int)i));
            if (!n->kids[i])
                return NULL;
        }
        return n;
    }
    default:
        return NULL;
    }
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* Fewest bytes a value of the node can take. A type met again while its
 * own size is being computed (recursion) counts as 0: a lower bound. */
static size_t min_size(vnode_t *n)
{
    if (n->computed)
        return n->min_size;
    if (n->computing)
        return 0;
    size_t m = 0;
    switch (n->kind) {
    case VK_NULL:
        m = 0;
        break;
    case VK_FLOAT:
        m = 4;
        break;
    case VK_DOUBLE:
        m = 8;
        break;
    case VK_FIXED:
        m = n->n;
        break;
    case VK_RECORD:
        n->computing = 1;
        for (size_t i = 0; i < n->n; i++)
            m = sat_add(m, min_size(n->kids[i]));
        n->computing = 0;
        break;
    case VK_ARRAY:
    case VK_MAP:
    case VK_UNION:
        /* A block count or a branch index, at least; visit the children
         * so that they are computed too. */
        n->computing = 1;
        for (size_t i = 0; i < n->n; i++)
            (void)min_size(n->kids[i]);
        n->computing = 0;
        m = 1;
        break;
    default:
        m = 1; /* boolean, int, long, string/bytes length, enum */
        break;
    }
    n->min_size = m;
    n->computed = 1;
    return m;
}

void lev_vplan_destroy(lev_vplan_t *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->nall; i++) {
        vnode_t *n = plan->all[i];
        if (n->names)
            for (size_t k = 0; k < n->n; k++)
                free(n->names[k]);
        free(n->names);
        free(n->kids);
        free(n);
    }
    free(plan->all);
    free(plan);
}

lev_vplan_t *lev_vplan_new(avro_schema_t schema)
{
    lev_vplan_t *plan = calloc(1, sizeof *plan);
    if (!plan)
        return NULL;
    plan->root = compile(plan, schema);
    if (!plan->root) {
        lev_vplan_destroy(plan);
        return NULL;
    }
    for (size_t i = 0; i < plan->nall; i++)
        (void)min_size(plan->all[i]);
    return plan;
}

/* ======================================================================
 * UTF-8
 * ====================================================================== */

int lev_utf8_valid(const uint8_t *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        for (uint64_t w; len - i >= 8; i += 8) { /* ASCII, 8 bytes at a time */
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
        }
        while (i < len && s[i] < 0x80)
            i++;
        if (i == len)
            break;
        uint8_t c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            goto invalid;
        }
        if (len - i - 1 < need)
            goto invalid;
        for (size_t k = 1; k <= need; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                goto invalid;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto invalid;
        i += need + 1;
    }
    return 1;
invalid:
    if (bad)
        *bad = i;
    return 0;
}

/* ======================================================================
 * Walking a body
 * ====================================================================== */

typedef struct vstate_s {
    const uint8_t *p, *start, *end;
    size_t items, max_items, max_bytes, max_depth;
    lev_error_t *err;
    /* The path is built back to front while an error unwinds. */
    char path[sizeof(((lev_error_t *)0)->where)];
    size_t ppos;
    int ptrunc;
} vstate_t;

static int vfail(vstate_t *s, const uint8_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int vfail(vstate_t *s, const uint8_t *at, const char *fmt, ...)
{
    if (s->err) {
        char msg[sizeof s->err->text - 32];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        lev_error_set(s->err, LEV_ERR_DECODE, NULL, "%s (body byte %zu)", msg,
                      (size_t)(at - s->start));
    }
    return LEV_ERR_DECODE;
}

static void prepend(vstate_t *s, const char *seg, size_t n)
{
    if (s->ptrunc)
        return;
    if (n + 3 > s->ppos) {
        memcpy(s->path + s->ppos - 3, "...", 3);
        s->ppos -= 3;
        s->ptrunc = 1;
        return;
    }
    s->ppos -= n;
    memcpy(s->path + s->ppos, seg, n);
}

static void prepend_field(vstate_t *s, const char *name)
{
    prepend(s, name, strlen(name));
    prepend(s, ".", 1);
}

static void prepend_index(vstate_t *s, uint64_t i)
{
    char seg[32];
    int n = snprintf(seg, sizeof seg, "[%llu]", (unsigned long long)i);
    prepend(s, seg, (size_t)n);
}

/* ["key"], with the key cut short (at a character boundary) if long. */
static void prepend_key(vstate_t *s, const uint8_t *key, size_t len)
{
    char seg[64];
    size_t max = sizeof seg - 8, n = len;
    if (n > max) {
        n = max;
        while (n > 0 && (key[n] & 0xc0) == 0x80)
            n--;
    }
    int w =
        snprintf(seg, sizeof seg, "[\"%.*s%s\"]", (int)n, (const char *)key, n < len ? "..." : "");
    prepend(s, seg, (size_t)w);
}

static size_t left(const vstate_t *s)
{
    return (size_t)(s->end - s->p);
}

/* A zig-zag varint of at most max_bytes bytes. For max_bytes 5 the value
 * must fit 32 bits, for 10 it must fit 64 bits. */
static int read_varint_slow(vstate_t *s, int max_bytes, const char *what, int64_t *out)
{
    const uint8_t *at = s->p;
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (s->p >= s->end)
            return vfail(s, at, "truncated %s", what);
        uint8_t b = *s->p++;
        if (i == max_bytes - 1) {
            if (b & 0x80)
                return vfail(s, at, "%s varint longer than %d bytes", what, max_bytes);
            /* Last byte: the bits past 32 (or 64) must be clear. */
            uint8_t spare = max_bytes == 5 ? 0x70 : 0x7e;
            if (b & spare)
                return vfail(s, at, "%s out of range", what);
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
            return 0;
        }
    }
    return vfail(s, at, "%s varint longer than %d bytes", what, max_bytes); /* not reached */
}

/* One-byte varints (most lengths, counts, indexes and small numbers)
 * without a call. */
static inline int read_varint(vstate_t *s, int max_bytes, const char *what, int64_t *out)
{
    if (s->p < s->end && *s->p < 0x80) {
        uint64_t v = *s->p++;
        *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
        return 0;
    }
    return read_varint_slow(s, max_bytes, what, out);
}

static inline int read_long(vstate_t *s, const char *what, int64_t *out)
{
    return read_varint(s, 10, what, out);
}

static inline int read_int(vstate_t *s, const char *what, int64_t *out)
{
    return read_varint(s, 5, what, out);
}

/* A length prefix and the bytes it covers; *data and *len receive them. */
static inline int read_len_bytes(vstate_t *s, const char *what, const uint8_t **data, size_t *len)
{
    const uint8_t *at = s->p;
    int64_t n;
    int rc = read_long(s, "length", &n);
    if (rc)
        return rc;
    if (n < 0)
        return vfail(s, at, "negative %s length %lld", what, (long long)n);
    if ((uint64_t)n > s->max_bytes)
        return vfail(s, at, "%s of %lld bytes exceeds the limit of %zu", what, (long long)n,
                     s->max_bytes);
    if ((uint64_t)n > left(s))
        return vfail(s, at, "truncated %s: %lld bytes claimed, %zu left", what, (long long)n,
                     left(s));
    *data = s->p;
    *len = (size_t)n;
    s->p += n;
    return 0;
}

static inline int read_string(vstate_t *s, const char *what, const uint8_t **data, size_t *len)
{
    int rc = read_len_bytes(s, what, data, len);
    if (rc)
        return rc;
    size_t bad = 0;
    if (!lev_utf8_valid(*data, *len, &bad))
        return vfail(s, *data + bad, "%s is not valid UTF-8", what);
    return 0;
}

static inline int need(vstate_t *s, size_t n, const char *what)
{
    if (left(s) < n)
        return vfail(s, s->p, "truncated %s: %zu bytes needed, %zu left", what, n, left(s));
    s->p += n;
    return 0;
}

static inline int walk(vstate_t *s, const vnode_t *n, size_t depth);

/* Array items or map entries, in blocks. */
static int walk_blocks(vstate_t *s, const vnode_t *n, size_t depth)
{
    int map = n->kind == VK_MAP;
    const vnode_t *item = n->kids[0];
    size_t per_item = map ? sat_add(1, item->min_size) : item->min_size;
    uint64_t index = 0;
    for (;;) {
        const uint8_t *at = s->p;
        int64_t count;
        int rc = read_long(s, "block count", &count);
        if (rc)
            return rc;
        if (count == 0)
            return 0;
        const uint8_t *block_end = NULL;
        if (count < 0) {
            if (count == INT64_MIN)
                return vfail(s, at, "invalid block count");
            count = -count;
            const uint8_t *at2 = s->p;
            int64_t bytes;
            rc = read_long(s, "block size", &bytes);
            if (rc)
                return rc;
            if (bytes < 0)
                return vfail(s, at2, "negative block size %lld", (long long)bytes);
            if ((uint64_t)bytes > left(s))
                return vfail(s, at2, "truncated block: %lld bytes claimed, %zu left",
                             (long long)bytes, left(s));
            block_end = s->p + bytes;
        }
        if ((uint64_t)count > s->max_items - s->items)
            return vfail(s, at, "%lld more items would exceed the limit of %zu per value",
                         (long long)count, s->max_items);
        if (per_item > 0 && (uint64_t)count > left(s) / per_item)
            return vfail(s, at, "block of %lld items cannot fit in the %zu bytes left",
                         (long long)count, left(s));
        s->items += (size_t)count;
        for (int64_t k = 0; k < count; k++, index++) {
            const uint8_t *key = NULL;
            size_t klen = 0;
            if (map) {
                rc = read_string(s, "map key", &key, &klen);
                if (rc) {
                    prepend_index(s, index);
                    return rc;
                }
            }
            rc = walk(s, item, depth);
            if (rc) {
                if (map)
                    prepend_key(s, key, klen);
                else
                    prepend_index(s, index);
                return rc;
            }
        }
        if (block_end && s->p != block_end)
            return vfail(s, at, "block byte size does not match its items");
    }
}

/* Values without children: never recurse. */
static inline int walk_scalar(vstate_t *s, const vnode_t *n)
{
    int64_t v;
    int rc;
    const uint8_t *at = s->p, *data = NULL;
    size_t len = 0;
    switch (n->kind) {
    case VK_NULL:
        return 0;
    case VK_BOOL:
        if (s->p >= s->end)
            return vfail(s, at, "truncated boolean");
        if (*s->p > 1)
            return vfail(s, at, "boolean byte 0x%02x is neither 0 nor 1", *s->p);
        s->p++;
        return 0;
    case VK_INT:
        return read_int(s, "int", &v);
    case VK_LONG:
        return read_long(s, "long", &v);
    case VK_FLOAT:
        return need(s, 4, "float");
    case VK_DOUBLE:
        return need(s, 8, "double");
    case VK_STRING:
        return read_string(s, "string", &data, &len);
    case VK_BYTES:
        return read_len_bytes(s, "bytes", &data, &len);
    case VK_FIXED:
        return need(s, n->n, "fixed");
    case VK_ENUM:
        rc = read_int(s, "enum ordinal", &v);
        if (rc)
            return rc;
        if (v < 0 || (uint64_t)v >= n->n)
            return vfail(s, at, "enum ordinal %lld out of range (%zu symbols)", (long long)v, n->n);
        return 0;
    default:
        return vfail(s, at, "unsupported type");
    }
}

static int walk_container(vstate_t *s, const vnode_t *n, size_t depth);

/* Any value; `depth` is the nesting of the containers around it. */
static inline int walk(vstate_t *s, const vnode_t *n, size_t depth)
{
    return n->kind <= VK_ENUM ? walk_scalar(s, n) : walk_container(s, n, depth);
}

static int walk_container(vstate_t *s, const vnode_t *n, size_t depth)
{
    const uint8_t *at = s->p;
    int64_t v;
    int rc;
    if (depth + 1 > s->max_depth)
        return vfail(s, at, "nested deeper than %zu", s->max_depth);
    switch (n->kind) {
    case VK_RECORD:
        for (size_t i = 0; i < n->n; i++) {
            rc = walk(s, n->kids[i], depth + 1);
            if (rc) {
                prepend_field(s, n->names[i]);
                return rc;
            }
        }
        return 0;
    case VK_ARRAY:
    case VK_MAP:
        return walk_blocks(s, n, depth + 1);
    case VK_UNION:
        rc = read_long(s, "union index", &v);
        if (rc)
            return rc;
        if (v < 0 || (uint64_t)v >= n->n)
            return vfail(s, at, "union index %lld out of range (%zu branches)", (long long)v, n->n);
        return walk(s, n->kids[v], depth + 1);
    default:
        return vfail(s, at, "unsupported type");
    }
}

int lev_vplan_validate(const lev_vplan_t *plan, const void *body, size_t len,
                       const lev_codec_limits_t *limits, lev_error_t *err)
{
    if (!plan || (!body && len))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "no schema plan or no body");
    vstate_t s;
    s.start = s.p = body ? body : (const void *)"";
    s.end = s.p + len;
    s.items = 0;
    s.max_items = limits->max_items;
    s.max_bytes = limits->max_bytes_len;
    s.max_depth =
        limits->max_depth < LEV_CODEC_MAX_DEPTH_CAP ? limits->max_depth : LEV_CODEC_MAX_DEPTH_CAP;
    s.err = err;
    s.ppos = sizeof s.path - 1;
    s.path[s.ppos] = '\0';
    s.ptrunc = 0;
    int rc = walk(&s, plan->root, 0);
    if (rc == 0 && s.p != s.end)
        rc = vfail(&s, s.p, "%zu trailing bytes after the value", left(&s));
    if (rc && err) {
        const char *p = s.path + s.ppos;
        if (*p == '.')
            p++;
        snprintf(err->where, sizeof err->where, "%s", p);
    }
    return rc;
}

/* ======================================================================
 * Filling a value from a validated body
 * ====================================================================== */

/* Everything below trusts the body: lev_vplan_validate accepted it with the
 * same plan, so varints are well formed, lengths and counts fit what is
 * left, indexes are in range and nesting is bounded by the codec's depth
 * limit. */

typedef struct fstate_s {
    const uint8_t *p;
    lev_scratch_t *scratch;
} fstate_t;

static int64_t fill_varint(fstate_t *f)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        uint8_t b = *f->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return (int64_t)((v >> 1) ^ (0 - (v & 1)));
    }
}

/* The next length-prefixed run of bytes. */
static const uint8_t *fill_run(fstate_t *f, size_t *len)
{
    *len = (size_t)fill_varint(f);
    const uint8_t *at = f->p;
    f->p += *len;
    return at;
}

/* A NUL-terminated copy of data[0..len), in the scratch buffer. */
static const char *fill_cstr(fstate_t *f, const uint8_t *data, size_t len)
{
    lev_scratch_t *s = f->scratch;
    if (lev_grow(&s->p, &s->cap, len + 1, 1, 256) != 0)
        return NULL;
    if (len)
        memcpy(s->p, data, len);
    s->p[len] = '\0';
    return s->p;
}

static int fill(fstate_t *f, const vnode_t *n, avro_value_t *v);

/* Array items or map entries, block by block, as avro-c reads them. */
static int fill_blocks(fstate_t *f, const vnode_t *n, avro_value_t *v)
{
    for (;;) {
        int64_t count = fill_varint(f);
        if (count == 0)
            return 0;
        if (count < 0) {
            count = -count;
            (void)fill_varint(f); /* the block's byte size */
        }
        for (int64_t k = 0; k < count; k++) {
            avro_value_t item;
            if (n->kind == VK_MAP) {
                size_t klen;
                const uint8_t *key = fill_run(f, &klen);
                const char *ckey = fill_cstr(f, key, klen);
                if (!ckey)
                    return LEV_ERR_NOMEM;
                if (avro_value_add(v, ckey, &item, NULL, NULL) != 0)
                    return LEV_ERR_DECODE;
            } else if (avro_value_append(v, &item, NULL) != 0) {
                return LEV_ERR_DECODE;
            }
            int rc = fill(f, n->kids[0], &item);
            if (rc)
                return rc;
        }
    }
}

static int fill(fstate_t *f, const vnode_t *n, avro_value_t *v)
{
    size_t len;
    const uint8_t *data;
    int64_t x;
    int rc = 0;
    switch (n->kind) {
    case VK_NULL:
        rc = avro_value_set_null(v);
        break;
    case VK_BOOL:
        rc = avro_value_set_boolean(v, *f->p++);
        break;
    case VK_INT:
        rc = avro_value_set_int(v, (int32_t)fill_varint(f));
        break;
    case VK_LONG:
        rc = avro_value_set_long(v, fill_varint(f));
        break;
    case VK_FLOAT: {
        float fl;
        memcpy(&fl, f->p, 4); /* little-endian, like every target avro-c supports here */
        f->p += 4;
        rc = avro_value_set_float(v, fl);
        break;
    }
    case VK_DOUBLE: {
        double d;
        memcpy(&d, f->p, 8);
        f->p += 8;
        rc = avro_value_set_double(v, d);
        break;
    }
    case VK_STRING: {
        data = fill_run(f, &len);
        const char *c = fill_cstr(f, data, len);
        if (!c)
            return LEV_ERR_NOMEM;
        rc = avro_value_set_string_len(v, c, len + 1); /* the NUL included, as avro-c reads */
        break;
    }
    case VK_BYTES:
        data = fill_run(f, &len);
        rc = avro_value_set_bytes(v, (void *)data, len);
        break;
    case VK_FIXED:
        rc = avro_value_set_fixed(v, (void *)f->p, n->n);
        f->p += n->n;
        break;
    case VK_ENUM:
        rc = avro_value_set_enum(v, (int)fill_varint(f));
        break;
    case VK_RECORD:
        for (size_t i = 0; i < n->n; i++) {
            avro_value_t field;
            if (avro_value_get_by_index(v, i, &field, NULL) != 0)
                return LEV_ERR_DECODE;
            if ((rc = fill(f, n->kids[i], &field)) != 0)
                return rc;
        }
        return 0;
    case VK_ARRAY:
    case VK_MAP:
        return fill_blocks(f, n, v);
    case VK_UNION: {
        x = fill_varint(f);
        avro_value_t branch;
        if (avro_value_set_branch(v, (int)x, &branch) != 0)
            return LEV_ERR_DECODE;
        return fill(f, n->kids[x], &branch);
    }
    }
    return rc ? (rc == ENOMEM ? LEV_ERR_NOMEM : LEV_ERR_DECODE) : 0;
}

int lev_vplan_fill(const lev_vplan_t *plan, const void *body, size_t len, avro_value_t *value,
                   lev_scratch_t *scratch)
{
    if (!plan || !value || !scratch || (!body && len))
        return LEV_ERR_ARG;
    fstate_t f = {.p = body ? body : (const void *)"", .scratch = scratch};
    return fill(&f, plan->root, value);
}

/* ======================================================================
 * Writing a value by the plan
 * ====================================================================== */

#define CANNOT LEV_VPLAN_WRITE_CANNOT

typedef struct wstate_s {
    lev_obuf_t o;
    size_t items, max_items, max_bytes, max_depth;
} wstate_t;

/* A string or bytes: its length, then its bytes. */
static int w_run(wstate_t *w, const void *p, size_t n)
{
    if (n > w->max_bytes)
        return CANNOT;
    int rc = lev_ob_long(&w->o, (int64_t)n);
    return rc ? rc : lev_ob_put(&w->o, p, n);
}

static int w_value(wstate_t *w, const vnode_t *n, const avro_value_t *cv, size_t depth);

/* Array items or map entries: one block, as avro-c writes them. */
static int w_blocks(wstate_t *w, const vnode_t *n, avro_value_t *v, size_t depth)
{
    size_t count;
    int rc;
    if (avro_value_get_size(v, &count) != 0 || count > w->max_items - w->items)
        return CANNOT;
    w->items += count;
    if (count > 0 && (rc = lev_ob_long(&w->o, (int64_t)count)) != 0)
        return rc;
    for (size_t i = 0; i < count; i++) {
        avro_value_t item;
        const char *key = NULL;
        if (avro_value_get_by_index(v, i, &item, n->kind == VK_MAP ? &key : NULL) != 0 ||
            (n->kind == VK_MAP && !key))
            return CANNOT;
        if (n->kind == VK_MAP) {
            size_t klen = strlen(key);
            if (!lev_utf8_valid((const uint8_t *)key, klen, NULL))
                return CANNOT;
            if ((rc = w_run(w, key, klen)) != 0)
                return rc;
        }
        if ((rc = w_value(w, n->kids[0], &item, depth)) != 0)
            return rc;
    }
    return lev_ob_long(&w->o, 0);
}

/* `depth` is the nesting of the containers around the value, as in walk. */
static int w_value(wstate_t *w, const vnode_t *n, const avro_value_t *cv, size_t depth)
{
    /* avro-c's getters take a non-const handle but only read through it */
    avro_value_t v = *cv;
    int rc;
    switch (n->kind) {
    case VK_NULL:
        return avro_value_get_null(&v) == 0 ? 0 : CANNOT;
    case VK_BOOL: {
        int b;
        if (avro_value_get_boolean(&v, &b) != 0 || (b != 0 && b != 1))
            return CANNOT;
        char c = (char)b;
        return lev_ob_put(&w->o, &c, 1);
    }
    case VK_INT: {
        int32_t x;
        return avro_value_get_int(&v, &x) == 0 ? lev_ob_long(&w->o, x) : CANNOT;
    }
    case VK_LONG: {
        int64_t x;
        return avro_value_get_long(&v, &x) == 0 ? lev_ob_long(&w->o, x) : CANNOT;
    }
    case VK_FLOAT: {
        float x;
        /* little-endian, like every target avro-c supports here */
        return avro_value_get_float(&v, &x) == 0 ? lev_ob_put(&w->o, &x, 4) : CANNOT;
    }
    case VK_DOUBLE: {
        double x;
        return avro_value_get_double(&v, &x) == 0 ? lev_ob_put(&w->o, &x, 8) : CANNOT;
    }
    case VK_STRING: {
        const char *s;
        size_t size; /* the NUL included */
        if (avro_value_get_string(&v, &s, &size) != 0 || size == 0 ||
            !lev_utf8_valid((const uint8_t *)s, size - 1, NULL))
            return CANNOT;
        return w_run(w, s, size - 1);
    }
    case VK_BYTES: {
        const void *p;
        size_t size;
        return avro_value_get_bytes(&v, &p, &size) == 0 ? w_run(w, p, size) : CANNOT;
    }
    case VK_FIXED: {
        const void *p;
        size_t size;
        if (avro_value_get_fixed(&v, &p, &size) != 0 || size != n->n)
            return CANNOT;
        return lev_ob_put(&w->o, p, size);
    }
    case VK_ENUM: {
        int x;
        if (avro_value_get_enum(&v, &x) != 0 || x < 0 || (size_t)x >= n->n)
            return CANNOT;
        return lev_ob_long(&w->o, x);
    }
    case VK_RECORD:
    case VK_ARRAY:
    case VK_MAP:
    case VK_UNION:
        break;
    }
    if (depth + 1 > w->max_depth)
        return CANNOT;
    if (n->kind == VK_ARRAY || n->kind == VK_MAP)
        return w_blocks(w, n, &v, depth + 1);
    if (n->kind == VK_UNION) {
        int d;
        avro_value_t branch;
        if (avro_value_get_discriminant(&v, &d) != 0 || d < 0 || (size_t)d >= n->n ||
            avro_value_get_current_branch(&v, &branch) != 0)
            return CANNOT;
        if ((rc = lev_ob_long(&w->o, d)) != 0)
            return rc;
        return w_value(w, n->kids[d], &branch, depth + 1);
    }
    size_t fields;
    if (avro_value_get_size(&v, &fields) != 0 || fields != n->n)
        return CANNOT;
    for (size_t i = 0; i < n->n; i++) {
        avro_value_t field;
        if (avro_value_get_by_index(&v, i, &field, NULL) != 0)
            return CANNOT;
        if ((rc = w_value(w, n->kids[i], &field, depth + 1)) != 0)
            return rc;
    }
    return 0;
}

int lev_vplan_write(const lev_vplan_t *plan, const avro_value_t *value,
                    const lev_codec_limits_t *limits, char **buf, size_t *len, size_t *cap)
{
    if (!plan || !value || !value->iface || !limits || !buf || !len || !cap)
        return CANNOT;
    wstate_t w = {{*buf, *len, *cap},
                  0,
                  limits->max_items,
                  limits->max_bytes_len,
                  limits->max_depth < LEV_CODEC_MAX_DEPTH_CAP ? limits->max_depth
                                                              : LEV_CODEC_MAX_DEPTH_CAP};
    int rc = w_value(&w, plan->root, value, 0);
    *buf = w.o.p; /* it may have grown, whatever the outcome */
    *cap = w.o.cap;
    if (rc == 0)
        *len = w.o.len;
    return rc;
}
