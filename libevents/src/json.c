/*
 * The Avro JSON encoding of values (Avro specification, "JSON Encoding"):
 *   null, boolean, int, long, float, double as JSON literals and numbers;
 *   string as a JSON string; bytes and fixed as JSON strings whose code
 *   points 0-255 are the bytes (ISO-8859-1); records as objects; enums as
 *   their symbol; arrays as arrays; maps as objects; a union value as null
 *   or {"<branch>": value}, <branch> being the full name of a named type or
 *   the type name ("string", "array", "map" ...). Logical types are their
 *   underlying type (timestamp-millis is a number, uuid a string).
 *
 * Extensions, both directions agree on them:
 *   - a float or double that is NaN or infinite is the string "NaN",
 *     "Infinity" or "-Infinity" (JSON has no such numbers);
 *   - when reading, a union value may be given bare (without the
 *     {"<branch>": ...} wrapper) when it fits exactly one non-null branch.
 *
 * When reading, a record field missing from the JSON takes the schema's
 * default; a member the record does not have is an error.
 */
#include "codec_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Shared
 * ====================================================================== */

#define JSON_MISSING_MAX 8 /* missing fields named in one error */

typedef struct jctx_s {
    const json_t *names;
    lev_json_mode_t mode;
    size_t max_depth;
    lev_error_t *err;
    char path[sizeof(((lev_error_t *)0)->where)];
    size_t plen;
    /* record fields missing without a default: gathered, then reported
     * together once nothing else is wrong */
    char missing[JSON_MISSING_MAX][sizeof(((lev_error_t *)0)->where)];
    size_t nmissing;
} jctx_t;

static int jfail(jctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int jfail(jctx_t *c, const char *fmt, ...)
{
    if (c->err) {
        char text[sizeof c->err->text];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        lev_error_set(c->err, LEV_ERR_JSON, c->path, "%s", text);
    }
    return LEV_ERR_JSON;
}

/* Notes the field at the current path as missing. */
static void note_missing(jctx_t *c)
{
    if (c->nmissing < JSON_MISSING_MAX)
        snprintf(c->missing[c->nmissing], sizeof c->missing[0], "%s", c->path);
    c->nmissing++;
}

/* Reports the missing fields: one by its path, several together under the
 * object that holds them all ("items[0]: missing fields ...: sku,
 * quantity"; where "" when that is the top). */
static int missing_fail(jctx_t *c)
{
    size_t n = c->nmissing < JSON_MISSING_MAX ? c->nmissing : JSON_MISSING_MAX;
    if (c->nmissing == 1) {
        if (c->err)
            lev_error_set(c->err, LEV_ERR_JSON, c->missing[0], "missing field (it has no default)");
        return LEV_ERR_JSON;
    }
    const char *first = c->missing[0];
    size_t len = strlen(first);
    for (size_t i = 1; i < n; i++) {
        size_t k = 0;
        while (k < len && first[k] == c->missing[i][k])
            k++;
        len = k;
    }
    while (len > 0 && first[len] != '.' && first[len] != '[')
        len--; /* the parent ends where a path component starts */
    char parent[sizeof c->missing[0]], text[sizeof c->err->text];
    size_t used = 0;
    snprintf(parent, sizeof parent, "%.*s", (int)len, first);
    text[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *rel = c->missing[i] + len + (c->missing[i][len] == '.');
        int w = snprintf(text + used, sizeof text - used, "%s%s", i ? ", " : "", rel);
        if (w < 0 || (size_t)w >= sizeof text - used)
            break;
        used += (size_t)w;
    }
    char more[48] = "";
    if (c->nmissing > n)
        snprintf(more, sizeof more, " and %zu more", c->nmissing - n);
    if (c->err)
        lev_error_set(c->err, LEV_ERR_JSON, parent, "missing fields (they have no default): %s%s",
                      text, more);
    return LEV_ERR_JSON;
}

/* Appends p[0..n) to the path, cut at the end of the buffer. */
static void path_add(jctx_t *c, const char *p, size_t n)
{
    size_t room = sizeof c->path - 1 - c->plen;
    if (n > room)
        n = room;
    memcpy(c->path + c->plen, p, n);
    c->plen += n;
    c->path[c->plen] = '\0';
}

/* The push_ functions return the length to restore with pop(). */
static size_t push_field(jctx_t *c, const char *name)
{
    size_t old = c->plen;
    if (c->plen)
        path_add(c, ".", 1);
    path_add(c, name, strlen(name));
    return old;
}

static size_t push_index(jctx_t *c, size_t i)
{
    size_t old = c->plen;
    char buf[32];
    size_t n = sizeof buf;
    buf[--n] = ']';
    do {
        buf[--n] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    buf[--n] = '[';
    path_add(c, buf + n, sizeof buf - n);
    return old;
}

static size_t push_key(jctx_t *c, const char *key)
{
    size_t old = c->plen, len = strlen(key);
    path_add(c, "[\"", 2);
    path_add(c, key, len > 40 ? 40 : len);
    if (len > 40)
        path_add(c, "...", 3);
    path_add(c, "\"]", 2);
    return old;
}

static void pop(jctx_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* Schema kinds, from the type names of the normalized schema (whose first
 * letters tell them apart, with the second for boolean/bytes and
 * float/fixed). */
typedef enum jkind_e {
    JK_UNKNOWN,
    JK_NULL,
    JK_BOOLEAN,
    JK_INT,
    JK_LONG,
    JK_FLOAT,
    JK_DOUBLE,
    JK_STRING,
    JK_BYTES,
    JK_FIXED,
    JK_ENUM,
    JK_RECORD,
    JK_ARRAY,
    JK_MAP,
    JK_UNION,
} jkind_t;

static jkind_t kind_of(const jctx_t *c, const json_t *node, const json_t **def, const char **name)
{
    const char *k = lev_canon_kind(node, c->names, def);
    *name = k ? k : "?";
    if (!k)
        return JK_UNKNOWN;
    switch (k[0]) {
    case 'n':
        return JK_NULL;
    case 'b':
        return k[1] == 'o' ? JK_BOOLEAN : JK_BYTES;
    case 'i':
        return JK_INT;
    case 'l':
        return JK_LONG;
    case 'f':
        return k[1] == 'l' ? JK_FLOAT : JK_FIXED;
    case 'd':
        return JK_DOUBLE;
    case 's':
        return JK_STRING;
    case 'e':
        return JK_ENUM;
    case 'r':
        return JK_RECORD;
    case 'a':
        return JK_ARRAY;
    case 'm':
        return JK_MAP;
    case 'u':
        return JK_UNION;
    default:
        return JK_UNKNOWN;
    }
}

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* The name of a union branch in the JSON encoding. */
static const char *branch_name(const json_t *node, const json_t *names)
{
    const json_t *def;
    const char *kind = lev_canon_kind(node, names, &def);
    if (!kind)
        return "?";
    const char *name = json_is_object(def) ? json_string_value(json_object_get(def, "name")) : NULL;
    return name ? name : kind;
}

/* Decodes a JSON string of code points 0-255 into bytes (malloc'd). */
static int latin1_bytes(const json_t *j, uint8_t **out, size_t *outlen)
{
    const uint8_t *s = (const uint8_t *)json_string_value(j);
    size_t len = json_string_length(j);
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        return LEV_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x80) {
            b[n++] = s[i];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < len) {
            b[n++] = (uint8_t)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        } else {
            free(b);
            return LEV_ERR_JSON; /* a code point above U+00FF */
        }
    }
    *out = b;
    *outlen = n;
    return 0;
}

/* ======================================================================
 * JSON to value
 * ====================================================================== */

static int from(jctx_t *c, json_t *j, const json_t *node, avro_value_t *dst, size_t depth);

/* Whether j could be a value of node, judged shallowly (used to pick a
 * union branch for a bare value). */
static int fits(jctx_t *c, const json_t *j, const json_t *node)
{
    const json_t *def;
    const char *kname;
    switch (kind_of(c, node, &def, &kname)) {
    case JK_NULL:
        return json_is_null(j);
    case JK_BOOLEAN:
        return json_is_boolean(j);
    case JK_INT:
        return json_is_integer(j) && json_integer_value(j) >= INT32_MIN &&
               json_integer_value(j) <= INT32_MAX;
    case JK_LONG:
        return json_is_integer(j);
    case JK_FLOAT:
    case JK_DOUBLE:
        return json_is_number(j);
    case JK_STRING:
        return json_is_string(j);
    case JK_BYTES:
    case JK_FIXED: {
        uint8_t *b;
        size_t n;
        if (!json_is_string(j) || latin1_bytes(j, &b, &n) != 0)
            return 0;
        free(b);
        return kname[0] == 'b' || (json_int_t)n == json_integer_value(json_object_get(def, "size"));
    }
    case JK_ENUM: {
        size_t i;
        const json_t *sym;
        json_array_foreach(json_object_get(def, "symbols"), i, sym)
        {
            if (json_equal(sym, j))
                return 1;
        }
        return 0;
    }
    case JK_ARRAY:
        return json_is_array(j);
    case JK_MAP:
        return json_is_object(j);
    case JK_RECORD: {
        if (!json_is_object(j))
            return 0;
        size_t i, matched = 0;
        const json_t *f;
        json_array_foreach(json_object_get(def, "fields"), i, f)
        {
            const char *fname = json_string_value(json_object_get(f, "name"));
            if (json_object_get(j, fname))
                matched++;
            else if (!json_object_get(f, "default"))
                return 0;
        }
        return matched == json_object_size(j);
    }
    default:
        return 0;
    }
}

static int from_union(jctx_t *c, json_t *j, const json_t *branches, avro_value_t *dst, size_t depth)
{
    size_t n = json_array_size(branches), i;
    avro_value_t bv, *bp = dst ? &bv : NULL;
    const json_t *b;
    if (json_is_null(j)) {
        json_array_foreach(branches, i, b)
        {
            if (json_is_string(b) && strcmp(json_string_value(b), "null") == 0) {
                if (dst && avro_value_set_branch(dst, (int)i, &bv) != 0)
                    return jfail(c, "cannot select union branch: %s", avro_strerror());
                return 0;
            }
        }
        return jfail(c, "null is not allowed here (the union has no null branch)");
    }
    if (c->mode == LEV_JSON_AVRO && json_is_object(j) && json_object_size(j) == 1) {
        const char *key = json_object_iter_key(json_object_iter(j));
        json_array_foreach(branches, i, b)
        {
            if (strcmp(branch_name(b, c->names), key) == 0) {
                if (dst && avro_value_set_branch(dst, (int)i, &bv) != 0)
                    return jfail(c, "cannot select union branch: %s", avro_strerror());
                return from(c, json_object_iter_value(json_object_iter(j)), b, bp, depth);
            }
        }
    }
    /* A bare value: the first fitting branch for defaults; for Avro JSON
     * (an extension) the only fitting one. */
    size_t found = n, second = n;
    json_array_foreach(branches, i, b)
    {
        if (fits(c, j, b)) {
            if (found == n)
                found = i;
            else if (second == n)
                second = i;
        }
    }
    if (found == n) {
        char expected[200];
        size_t off = 0;
        expected[0] = '\0';
        json_array_foreach(branches, i, b)
        {
            int w = snprintf(expected + off, sizeof expected - off, "%s%s", i ? ", " : "",
                             branch_name(b, c->names));
            if (w < 0 || (size_t)w >= sizeof expected - off)
                break;
            off += (size_t)w;
        }
        return jfail(c, "expected a union of [%s], found %s", expected, json_kind(j));
    }
    if (c->mode == LEV_JSON_AVRO && second != n)
        return jfail(c,
                     "ambiguous union value: it fits both \"%s\" and \"%s\"; write it as "
                     "{\"%s\": ...}",
                     branch_name(json_array_get(branches, found), c->names),
                     branch_name(json_array_get(branches, second), c->names),
                     branch_name(json_array_get(branches, found), c->names));
    if (dst && avro_value_set_branch(dst, (int)found, &bv) != 0)
        return jfail(c, "cannot select union branch: %s", avro_strerror());
    return from(c, j, json_array_get(branches, found), bp, depth);
}

static int from_record(jctx_t *c, json_t *j, const json_t *def, avro_value_t *dst, size_t depth)
{
    if (!json_is_object(j))
        return jfail(c, "expected an object (record %s), found %s",
                     json_string_value(json_object_get(def, "name")), json_kind(j));
    const json_t *fields = json_object_get(def, "fields");
    size_t i, matched = 0;
    const json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        const json_t *ftype = json_object_get(f, "type");
        json_t *member = json_object_get(j, fname);
        avro_value_t fv, *fp = dst ? &fv : NULL;
        if (dst && avro_value_get_by_index(dst, i, &fv, NULL) != 0)
            return jfail(c, "no field %s in the value: %s", fname, avro_strerror());
        size_t mark = push_field(c, fname);
        int rc;
        if (member) {
            matched++;
            rc = from(c, member, ftype, fp, depth);
        } else {
            json_t *def_value = json_object_get(f, "default");
            if (!def_value) { /* reported with the others the value lacks */
                note_missing(c);
                pop(c, mark);
                continue;
            }
            lev_json_mode_t mode = c->mode;
            c->mode = LEV_JSON_DEFAULT;
            rc = from(c, def_value, ftype, fp, depth);
            c->mode = mode;
        }
        if (rc)
            return rc;
        pop(c, mark);
    }
    if (matched != json_object_size(j)) {
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v)
        {
            int known = 0;
            json_array_foreach(fields, i, f)
            {
                if (strcmp(json_string_value(json_object_get(f, "name")), key) == 0) {
                    known = 1;
                    break;
                }
            }
            if (!known)
                return jfail(c, "unknown field \"%s\" (record %s has no such field)", key,
                             json_string_value(json_object_get(def, "name")));
        }
    }
    return 0;
}

static int from_number(jctx_t *c, json_t *j, const char *kind, double *out)
{
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return 0;
    }
    const char *s = json_string_value(j);
    if (s && strcmp(s, "NaN") == 0)
        *out = NAN;
    else if (s && strcmp(s, "Infinity") == 0)
        *out = INFINITY;
    else if (s && strcmp(s, "-Infinity") == 0)
        *out = -INFINITY;
    else
        return jfail(c, "expected %s, found %s", kind, json_kind(j));
    return 0;
}

static int from(jctx_t *c, json_t *j, const json_t *node, avro_value_t *dst, size_t depth)
{
    const json_t *def;
    const char *kind;
    jkind_t k = kind_of(c, node, &def, &kind);
    int rc = 0;
    if (k == JK_UNKNOWN)
        return jfail(c, "schema refers to an unknown type");

    if (k == JK_NULL) {
        if (!json_is_null(j))
            return jfail(c, "expected null, found %s", json_kind(j));
        if (dst)
            rc = avro_value_set_null(dst);
    } else if (k == JK_BOOLEAN) {
        if (!json_is_boolean(j))
            return jfail(c, "expected boolean, found %s", json_kind(j));
        if (dst)
            rc = avro_value_set_boolean(dst, json_is_true(j));
    } else if (k == JK_INT) {
        if (!json_is_integer(j))
            return jfail(c, "expected int, found %s", json_kind(j));
        json_int_t v = json_integer_value(j);
        if (v < INT32_MIN || v > INT32_MAX)
            return jfail(c, "int out of range: %lld", (long long)v);
        if (dst)
            rc = avro_value_set_int(dst, (int32_t)v);
    } else if (k == JK_LONG) {
        if (!json_is_integer(j))
            return jfail(c, "expected long, found %s", json_kind(j));
        if (dst)
            rc = avro_value_set_long(dst, (int64_t)json_integer_value(j));
    } else if (k == JK_FLOAT || k == JK_DOUBLE) {
        double d;
        if (from_number(c, j, kind, &d) != 0)
            return LEV_ERR_JSON;
        if (dst)
            rc =
                k == JK_FLOAT ? avro_value_set_float(dst, (float)d) : avro_value_set_double(dst, d);
    } else if (k == JK_STRING) {
        if (!json_is_string(j))
            return jfail(c, "expected string, found %s", json_kind(j));
        if (dst)
            rc = avro_value_set_string_len(dst, json_string_value(j), json_string_length(j) + 1);
    } else if (k == JK_BYTES || k == JK_FIXED) {
        uint8_t *b;
        size_t n;
        if (!json_is_string(j))
            return jfail(c, "expected %s (a string), found %s", kind, json_kind(j));
        int brc = latin1_bytes(j, &b, &n);
        if (brc == LEV_ERR_NOMEM)
            return lev_error_set(c->err, LEV_ERR_NOMEM, c->path, "out of memory");
        if (brc)
            return jfail(c, "%s string has a character above U+00FF", kind);
        if (k == JK_FIXED) {
            json_int_t size = json_integer_value(json_object_get(def, "size"));
            if ((json_int_t)n != size) {
                free(b);
                return jfail(c, "fixed %s needs %lld bytes, found %zu",
                             json_string_value(json_object_get(def, "name")), (long long)size, n);
            }
            if (dst)
                rc = avro_value_set_fixed(dst, b, n);
        } else if (dst) {
            rc = avro_value_set_bytes(dst, b, n);
        }
        free(b);
    } else if (k == JK_ENUM) {
        if (!json_is_string(j))
            return jfail(c, "expected an enum symbol (%s), found %s",
                         json_string_value(json_object_get(def, "name")), json_kind(j));
        size_t i;
        const json_t *sym;
        int found = -1;
        json_array_foreach(json_object_get(def, "symbols"), i, sym)
        {
            if (json_equal(sym, j)) {
                found = (int)i;
                break;
            }
        }
        if (found < 0)
            return jfail(c, "\"%s\" is not a symbol of enum %s", json_string_value(j),
                         json_string_value(json_object_get(def, "name")));
        if (dst)
            rc = avro_value_set_enum(dst, found);
    } else {
        /* Containers. */
        if (depth + 1 > c->max_depth)
            return jfail(c, "nested deeper than %zu", c->max_depth);
        if (k == JK_UNION)
            return from_union(c, j, def, dst, depth + 1);
        if (k == JK_RECORD)
            return from_record(c, j, def, dst, depth + 1);
        if (k == JK_ARRAY) {
            if (!json_is_array(j))
                return jfail(c, "expected array, found %s", json_kind(j));
            const json_t *items = json_object_get(def, "items");
            size_t i;
            json_t *e;
            json_array_foreach(j, i, e)
            {
                avro_value_t ev;
                if (dst && avro_value_append(dst, &ev, NULL) != 0)
                    return jfail(c, "cannot append: %s", avro_strerror());
                size_t mark = push_index(c, i);
                rc = from(c, e, items, dst ? &ev : NULL, depth + 1);
                if (rc)
                    return rc;
                pop(c, mark);
            }
            return 0;
        }
        if (k == JK_MAP) {
            if (!json_is_object(j))
                return jfail(c, "expected map (an object), found %s", json_kind(j));
            const json_t *values = json_object_get(def, "values");
            const char *key;
            json_t *e;
            json_object_foreach(j, key, e)
            {
                avro_value_t ev;
                if (dst && avro_value_add(dst, key, &ev, NULL, NULL) != 0)
                    return jfail(c, "cannot add map entry: %s", avro_strerror());
                size_t mark = push_key(c, key);
                rc = from(c, e, values, dst ? &ev : NULL, depth + 1);
                if (rc)
                    return rc;
                pop(c, mark);
            }
            return 0;
        }
        return jfail(c, "unsupported schema type %s", kind);
    }
    if (rc)
        return jfail(c, "cannot set %s: %s", kind, avro_strerror());
    return 0;
}

int lev_json_to_value(json_t *json, const json_t *node, const json_t *names, avro_value_t *dst,
                      lev_json_mode_t mode, size_t max_depth, const char *path, lev_error_t *err)
{
    jctx_t c;
    c.names = names;
    c.mode = mode;
    c.max_depth = max_depth < LEV_CODEC_MAX_DEPTH_CAP ? max_depth : LEV_CODEC_MAX_DEPTH_CAP;
    c.err = err;
    c.plen = 0;
    c.path[0] = '\0';
    if (path && *path)
        path_add(&c, path, strlen(path));
    c.nmissing = 0;
    if (!json)
        return jfail(&c, "no JSON value");
    int rc = from(&c, json, node, dst, 0);
    return rc == 0 && c.nmissing > 0 ? missing_fail(&c) : rc;
}

int lev_codec_from_json(lev_codec_t *codec, const lev_schema_t *schema, json_t *json,
                        avro_value_t *out, lev_error_t *err)
{
    if (!codec || !schema || !json || !out)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing codec, schema, JSON or output");
    out->iface = NULL;
    out->self = NULL;
    avro_value_t v;
    int rc = lev_codec_new_value(codec, schema, &v);
    if (rc)
        return lev_error_set(err, rc, NULL, "cannot create a value of %s", lev_schema_name(schema));
    rc = lev_json_to_value(json, lev_schema_norm(schema), lev_schema_names(schema), &v,
                           LEV_JSON_AVRO, lev_codec_limits(codec)->max_depth, "", err);
    if (rc) {
        avro_value_decref(&v);
        return rc;
    }
    *out = v;
    return 0;
}

/* ======================================================================
 * Value to JSON
 * ====================================================================== */

/* The JSON encoding's name of a union branch schema. */
static const char *avro_branch_name(avro_schema_t s, char *buf, size_t size)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    if (is_avro_named_type(s)) {
        const char *ns = avro_schema_namespace(s);
        snprintf(buf, size, "%s%s%s", ns && ns[0] ? ns : "", ns && ns[0] ? "." : "",
                 avro_schema_name(s));
        return buf;
    }
    return avro_schema_type_name(s);
}

static json_t *latin1_string(const uint8_t *b, size_t n)
{
    char *u = malloc(2 * n + 1);
    if (!u)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0x80) {
            u[k++] = (char)b[i];
        } else {
            u[k++] = (char)(0xc0 | (b[i] >> 6));
            u[k++] = (char)(0x80 | (b[i] & 0x3f));
        }
    }
    json_t *j = json_stringn(u, k);
    free(u);
    return j;
}

static json_t *real_json(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *to(jctx_t *c, const avro_value_t *v, size_t depth);

static json_t *to_container(jctx_t *c, const avro_value_t *v, avro_type_t type, size_t depth)
{
    size_t n = 0, i;
    json_t *out = NULL;
    if (depth + 1 > c->max_depth) {
        jfail(c, "nested deeper than %zu", c->max_depth);
        return NULL;
    }
    if (type == AVRO_UNION) {
        int d = -1;
        avro_value_t b;
        if (avro_value_get_discriminant(v, &d) != 0 || d < 0 ||
            avro_value_get_current_branch(v, &b) != 0) {
            jfail(c, "union has no branch selected");
            return NULL;
        }
        if (avro_value_get_type(&b) == AVRO_NULL)
            return json_null();
        char name[512];
        const char *bn = avro_branch_name(avro_schema_union_branch(avro_value_get_schema(v), d),
                                          name, sizeof name);
        json_t *inner = to(c, &b, depth + 1);
        if (!inner)
            return NULL;
        out = json_object();
        if (!out || json_object_set_new(out, bn, inner) != 0) {
            json_decref(out);
            jfail(c, "out of memory");
            return NULL;
        }
        return out;
    }
    if (avro_value_get_size(v, &n) != 0) {
        jfail(c, "cannot read the value: %s", avro_strerror());
        return NULL;
    }
    out = type == AVRO_ARRAY ? json_array() : json_object();
    if (!out) {
        jfail(c, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        avro_value_t e;
        const char *key = NULL;
        if (avro_value_get_by_index(v, i, &e, &key) != 0) {
            jfail(c, "cannot read item %zu: %s", i, avro_strerror());
            goto fail;
        }
        size_t mark = type == AVRO_ARRAY    ? push_index(c, i)
                      : type == AVRO_RECORD ? push_field(c, key ? key : "?")
                                            : push_key(c, key ? key : "?");
        json_t *je = to(c, &e, depth + 1);
        if (!je)
            goto fail;
        int rc = type == AVRO_ARRAY ? json_array_append_new(out, je)
                                    : json_object_set_new(out, key ? key : "", je);
        if (rc != 0) {
            jfail(c, "%s", type == AVRO_MAP ? "map key is not valid UTF-8" : "out of memory");
            goto fail;
        }
        pop(c, mark);
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *to(jctx_t *c, const avro_value_t *v, size_t depth)
{
    avro_type_t type = avro_value_get_type(v);
    json_t *j = NULL;
    switch (type) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN: {
        int b = 0;
        avro_value_get_boolean(v, &b);
        return json_boolean(b);
    }
    case AVRO_INT32: {
        int32_t i = 0;
        avro_value_get_int(v, &i);
        j = json_integer(i);
        break;
    }
    case AVRO_INT64: {
        int64_t l = 0;
        avro_value_get_long(v, &l);
        j = json_integer((json_int_t)l);
        break;
    }
    case AVRO_FLOAT: {
        float f = 0;
        avro_value_get_float(v, &f);
        j = real_json(f);
        break;
    }
    case AVRO_DOUBLE: {
        double d = 0;
        avro_value_get_double(v, &d);
        j = real_json(d);
        break;
    }
    case AVRO_STRING: {
        const char *s = NULL;
        size_t size = 0;
        avro_value_get_string(v, &s, &size);
        j = json_stringn(s ? s : "", size ? size - 1 : 0);
        if (!j) {
            jfail(c, "string is not valid UTF-8");
            return NULL;
        }
        return j;
    }
    case AVRO_BYTES:
    case AVRO_FIXED: {
        const void *b = NULL;
        size_t size = 0;
        if (type == AVRO_BYTES)
            avro_value_get_bytes(v, &b, &size);
        else
            avro_value_get_fixed(v, &b, &size);
        j = latin1_string(b, size);
        break;
    }
    case AVRO_ENUM: {
        int e = -1;
        avro_value_get_enum(v, &e);
        avro_schema_t s = avro_value_get_schema(v);
        const char *sym =
            e >= 0 && e < avro_schema_enum_number_of_symbols(s) ? avro_schema_enum_get(s, e) : NULL;
        if (!sym) {
            jfail(c, "enum ordinal %d out of range", e);
            return NULL;
        }
        j = json_string(sym);
        break;
    }
    case AVRO_RECORD:
    case AVRO_ARRAY:
    case AVRO_MAP:
    case AVRO_UNION:
        return to_container(c, v, type, depth);
    default:
        jfail(c, "unsupported value type");
        return NULL;
    }
    if (!j)
        jfail(c, "out of memory");
    return j;
}

json_t *lev_codec_to_json(const avro_value_t *value, lev_error_t *err)
{
    jctx_t c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.max_depth = LEV_CODEC_MAX_DEPTH_CAP;
    if (!value || !value->iface) {
        lev_error_set(err, LEV_ERR_ARG, NULL, "no value");
        return NULL;
    }
    return to(&c, value, 0);
}
