/*
 * Avro schemas as JSON: normalization (full names, checks), the Parsing
 * Canonical Form of the Avro specification and the CRC-64-AVRO (Rabin)
 * fingerprint.
 *
 * Canonical form rules applied (specification, "Parsing Canonical Form for
 * Schemas"):
 *   [PRIMITIVES] {"type":"int"} becomes "int";
 *   [FULLNAMES]  names become full names, using the "namespace" attribute or
 *                the namespace of the most tightly enclosing named type; a
 *                name containing a dot is already a full name; references
 *                to named types become full names too;
 *   [STRIP]      only type, name, fields, symbols, items, values and size
 *                are kept;
 *   [ORDER]      attributes are written in the order name, type, fields,
 *                symbols, items, values, size;
 *   [STRINGS]    strings are written with their UTF-8 characters as such:
 *                only '"', '\' and control characters are escaped;
 *   [INTEGERS]   sizes are written without leading zeros or signs;
 *   [WHITESPACE] none.
 * A named type is written in full where it is first defined and by its full
 * name after that. A short reference is resolved in the enclosing namespace
 * only (as avro-c and fastavro do: there is no fallback to the null
 * namespace).
 */
#include "codec_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * CRC-64-AVRO
 * ====================================================================== */

#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ULL

static uint64_t crc64_table[256];
static pthread_once_t crc64_once = PTHREAD_ONCE_INIT;

static void crc64_table_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (fp & 1)));
        crc64_table[i] = fp;
    }
}

uint64_t lev_avro_fingerprint64(const void *data, size_t len)
{
    pthread_once(&crc64_once, crc64_table_init);
    const uint8_t *p = data;
    uint64_t fp = CRC64_AVRO_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ======================================================================
 * Normalization
 * ====================================================================== */

static const char *const primitives[] = {"null",  "boolean", "int",    "long",
                                         "float", "double",  "string", "bytes"};

static int is_primitive(const char *s)
{
    /* Decoding asks this for every value: one strcmp at most. */
    const char *candidate;
    switch (s[0]) {
    case 'n':
        candidate = primitives[0];
        break;
    case 'b':
        candidate = s[1] == 'o' ? primitives[1] : primitives[7];
        break;
    case 'i':
        candidate = primitives[2];
        break;
    case 'l':
        candidate = primitives[3];
        break;
    case 'f':
        candidate = primitives[4];
        break;
    case 'd':
        candidate = primitives[5];
        break;
    case 's':
        candidate = primitives[6];
        break;
    default:
        return 0;
    }
    return strcmp(s, candidate) == 0;
}

/* [A-Za-z_][A-Za-z0-9_]* over s[0..len). */
static int is_ident(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Dot-separated identifiers (a full name or a non-empty namespace). */
static int is_dotted(const char *s)
{
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (!is_ident(start, (size_t)(p - start)))
                return 0;
            if (*p == '\0')
                return 1;
            start = p + 1;
        }
    }
}

typedef struct nctx_s {
    json_t *defined; /* full name -> the definition being built */
    lev_error_t *err;
    char path[200]; /* where in the schema, for error texts */
    size_t plen;
} nctx_t;

static int nfail(nctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int nfail(nctx_t *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->plen)
        return lev_error_set(c->err, LEV_ERR_SCHEMA, NULL, "%s (at %s)", msg, c->path);
    return lev_error_set(c->err, LEV_ERR_SCHEMA, NULL, "%s", msg);
}

/* Appends a path segment; returns the length to restore. */
static size_t path_push(nctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(nctx_t *c, const char *fmt, ...)
{
    size_t old = c->plen;
    if (c->plen < sizeof c->path - 1) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
        va_end(ap);
        if (n > 0)
            c->plen += (size_t)n;
        if (c->plen > sizeof c->path - 1)
            c->plen = sizeof c->path - 1;
    }
    return old;
}

static void path_pop(nctx_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static json_t *normalize(nctx_t *c, const json_t *node, const char *ns);

/* Computes the full name of a named type definition and its namespace
 * (for the types nested in it). Returns 0 or LEV_ERR_SCHEMA. */
static int named_fullname(nctx_t *c, const json_t *obj, const char *ns, char **full, char **own_ns)
{
    const char *name = json_string_value(json_object_get(obj, "name"));
    if (!name)
        return nfail(c, "a named type needs a \"name\" string");
    const char *dot = strrchr(name, '.');
    if (dot) {
        if (!is_dotted(name))
            return nfail(c, "invalid name \"%s\"", name);
        *full = strdup(name);
        *own_ns = strndup(name, (size_t)(dot - name));
    } else {
        if (!is_ident(name, strlen(name)))
            return nfail(c, "invalid name \"%s\"", name);
        json_t *jns = json_object_get(obj, "namespace");
        const char *space = ns;
        if (jns) {
            if (json_is_null(jns))
                space = "";
            else if (!json_is_string(jns))
                return nfail(c, "\"namespace\" of \"%s\" must be a string", name);
            else
                space = json_string_value(jns);
            if (space[0] && !is_dotted(space))
                return nfail(c, "invalid namespace \"%s\"", space);
        }
        if (space[0]) {
            size_t n = strlen(space) + 1 + strlen(name) + 1;
            *full = malloc(n);
            if (*full)
                snprintf(*full, n, "%s.%s", space, name);
        } else {
            *full = strdup(name);
        }
        *own_ns = strdup(space);
    }
    if (!*full || !*own_ns) {
        free(*full);
        free(*own_ns);
        *full = *own_ns = NULL;
        return lev_error_set(c->err, LEV_ERR_NOMEM, NULL, "out of memory");
    }
    const char *last = strrchr(*full, '.');
    if (is_primitive(last ? last + 1 : *full)) {
        int rc = nfail(c, "a primitive type name cannot name a type: \"%s\"", *full);
        free(*full);
        free(*own_ns);
        *full = *own_ns = NULL;
        return rc;
    }
    if (json_object_get(c->defined, *full)) {
        int rc = nfail(c, "named type \"%s\" is defined twice", *full);
        free(*full);
        free(*own_ns);
        *full = *own_ns = NULL;
        return rc;
    }
    return 0;
}

static json_t *normalize_record(nctx_t *c, const json_t *obj, const char *ns)
{
    char *full = NULL, *own_ns = NULL;
    json_t *out = NULL, *fields = NULL, *seen = NULL;
    if (named_fullname(c, obj, ns, &full, &own_ns) != 0)
        return NULL;
    const json_t *jfields = json_object_get(obj, "fields");
    if (!json_is_array(jfields)) {
        nfail(c, "record \"%s\" needs a \"fields\" array", full);
        goto fail;
    }
    out = json_object();
    fields = json_array();
    seen = json_object();
    if (!out || !fields || !seen)
        goto nomem;
    json_object_set_new(out, "type", json_string("record"));
    json_object_set_new(out, "name", json_string(full));
    /* The name is visible to the fields (recursive types). */
    json_object_set(c->defined, full, out);
    size_t i;
    const json_t *jf;
    json_array_foreach(jfields, i, jf)
    {
        size_t mark = path_push(c, "%sfields[%zu]", c->plen ? "." : "", i);
        const char *fname = json_string_value(json_object_get(jf, "name"));
        if (!json_is_object(jf) || !fname) {
            nfail(c, "a field needs a \"name\" string");
            goto fail;
        }
        if (!is_ident(fname, strlen(fname))) {
            nfail(c, "invalid field name \"%s\"", fname);
            goto fail;
        }
        if (json_object_get(seen, fname)) {
            nfail(c, "record \"%s\" has two fields named \"%s\"", full, fname);
            goto fail;
        }
        json_object_set_new(seen, fname, json_true());
        const json_t *jtype = json_object_get(jf, "type");
        if (!jtype) {
            nfail(c, "field \"%s\" needs a \"type\"", fname);
            goto fail;
        }
        size_t mark2 = path_push(c, ".type");
        json_t *t = normalize(c, jtype, own_ns);
        path_pop(c, mark2);
        if (!t)
            goto fail;
        json_t *f = json_object();
        if (!f) {
            json_decref(t);
            goto nomem;
        }
        json_object_set_new(f, "name", json_string(fname));
        json_object_set_new(f, "type", t);
        const json_t *def = json_object_get(jf, "default");
        if (def)
            json_object_set_new(f, "default", json_deep_copy(def));
        json_array_append_new(fields, f);
        path_pop(c, mark);
    }
    json_object_set(out, "fields", fields);
    json_decref(fields);
    json_decref(seen);
    free(full);
    free(own_ns);
    return out;

nomem:
    lev_error_set(c->err, LEV_ERR_NOMEM, NULL, "out of memory");
fail:
    json_decref(out);
    json_decref(fields);
    json_decref(seen);
    free(full);
    free(own_ns);
    return NULL;
}

static json_t *normalize_enum(nctx_t *c, const json_t *obj, const char *ns)
{
    char *full = NULL, *own_ns = NULL;
    json_t *out = NULL, *symbols = NULL, *seen = NULL;
    if (named_fullname(c, obj, ns, &full, &own_ns) != 0)
        return NULL;
    const json_t *jsyms = json_object_get(obj, "symbols");
    if (!json_is_array(jsyms)) {
        nfail(c, "enum \"%s\" needs a \"symbols\" array", full);
        goto fail;
    }
    out = json_object();
    symbols = json_array();
    seen = json_object();
    if (!out || !symbols || !seen) {
        lev_error_set(c->err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    size_t i;
    const json_t *js;
    json_array_foreach(jsyms, i, js)
    {
        const char *s = json_string_value(js);
        if (!s || !is_ident(s, strlen(s))) {
            nfail(c, "enum \"%s\": symbol %zu is not a valid name", full, i);
            goto fail;
        }
        if (json_object_get(seen, s)) {
            nfail(c, "enum \"%s\": symbol \"%s\" appears twice", full, s);
            goto fail;
        }
        json_object_set_new(seen, s, json_true());
        json_array_append_new(symbols, json_string(s));
    }
    json_object_set_new(out, "type", json_string("enum"));
    json_object_set_new(out, "name", json_string(full));
    json_object_set(out, "symbols", symbols);
    const json_t *def = json_object_get(obj, "default");
    if (def) {
        const char *d = json_string_value(def);
        if (!d || !json_object_get(seen, d)) {
            nfail(c, "enum \"%s\": the default is not one of its symbols", full);
            goto fail;
        }
        json_object_set_new(out, "default", json_string(d));
    }
    json_object_set(c->defined, full, out);
    json_decref(symbols);
    json_decref(seen);
    free(full);
    free(own_ns);
    return out;

fail:
    json_decref(out);
    json_decref(symbols);
    json_decref(seen);
    free(full);
    free(own_ns);
    return NULL;
}

static json_t *normalize_fixed(nctx_t *c, const json_t *obj, const char *ns)
{
    char *full = NULL, *own_ns = NULL;
    if (named_fullname(c, obj, ns, &full, &own_ns) != 0)
        return NULL;
    json_t *out = NULL;
    const json_t *jsize = json_object_get(obj, "size");
    if (!json_is_integer(jsize) || json_integer_value(jsize) < 0 ||
        json_integer_value(jsize) > INT32_MAX) {
        nfail(c, "fixed \"%s\" needs a \"size\" integer from 0 to 2^31-1", full);
        goto done;
    }
    out = json_object();
    if (!out) {
        lev_error_set(c->err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    json_object_set_new(out, "type", json_string("fixed"));
    json_object_set_new(out, "name", json_string(full));
    json_object_set_new(out, "size", json_integer(json_integer_value(jsize)));
    json_object_set(c->defined, full, out);
done:
    free(full);
    free(own_ns);
    return out;
}

/* The kind of a normalized node for union checks: a primitive or "array"
 * / "map" (at most one each), or the full name of a named type. */
static const char *union_key(const json_t *n)
{
    if (json_is_string(n))
        return json_string_value(n);
    const char *name = json_string_value(json_object_get(n, "name"));
    return name ? name : json_string_value(json_object_get(n, "type"));
}

static json_t *normalize_union(nctx_t *c, const json_t *arr, const char *ns)
{
    json_t *out = json_array(), *seen = json_object();
    if (!out || !seen) {
        lev_error_set(c->err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    size_t i;
    const json_t *jb;
    json_array_foreach(arr, i, jb)
    {
        size_t mark = path_push(c, "[%zu]", i);
        if (json_is_array(jb)) {
            nfail(c, "a union cannot contain a union directly");
            goto fail;
        }
        json_t *b = normalize(c, jb, ns);
        if (!b)
            goto fail;
        const char *key = union_key(b);
        if (json_object_get(seen, key)) {
            nfail(c, "a union cannot contain \"%s\" twice", key);
            json_decref(b);
            goto fail;
        }
        json_object_set_new(seen, key, json_true());
        json_array_append_new(out, b);
        path_pop(c, mark);
    }
    json_decref(seen);
    return out;
fail:
    json_decref(out);
    json_decref(seen);
    return NULL;
}

static json_t *normalize(nctx_t *c, const json_t *node, const char *ns)
{
    if (json_is_string(node)) {
        const char *s = json_string_value(node);
        if (is_primitive(s))
            return json_string(s);
        char full[512];
        if (strchr(s, '.') || !ns[0])
            snprintf(full, sizeof full, "%s", s);
        else
            snprintf(full, sizeof full, "%s.%s", ns, s);
        if (!json_object_get(c->defined, full)) {
            nfail(c, "unknown type \"%s\"", full);
            return NULL;
        }
        return json_string(full);
    }
    if (json_is_array(node))
        return normalize_union(c, node, ns);
    if (!json_is_object(node)) {
        nfail(c, "a schema must be a string, an object or an array");
        return NULL;
    }
    const char *type = json_string_value(json_object_get(node, "type"));
    if (!type) {
        nfail(c, "a schema object needs a \"type\" string");
        return NULL;
    }
    if (is_primitive(type))
        return json_string(type);
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0)
        return normalize_record(c, node, ns);
    if (strcmp(type, "enum") == 0)
        return normalize_enum(c, node, ns);
    if (strcmp(type, "fixed") == 0)
        return normalize_fixed(c, node, ns);
    if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
        int arr = type[0] == 'a';
        const char *key = arr ? "items" : "values";
        const json_t *sub = json_object_get(node, key);
        if (!sub) {
            nfail(c, "%s needs \"%s\"", type, key);
            return NULL;
        }
        size_t mark = path_push(c, "%s%s", c->plen ? "." : "", key);
        json_t *n = normalize(c, sub, ns);
        path_pop(c, mark);
        if (!n)
            return NULL;
        json_t *out = json_object();
        if (!out) {
            json_decref(n);
            lev_error_set(c->err, LEV_ERR_NOMEM, NULL, "out of memory");
            return NULL;
        }
        json_object_set_new(out, "type", json_string(type));
        json_object_set_new(out, key, n);
        return out;
    }
    nfail(c, "unknown type \"%s\"", type);
    return NULL;
}

json_t *lev_canon_normalize(const json_t *schema, lev_error_t *err)
{
    nctx_t c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.defined = json_object();
    if (!c.defined) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    json_t *out = normalize(&c, schema, "");
    /* `defined` refers to nodes of `out`, which never refer back. */
    json_decref(c.defined);
    return out;
}

/* ======================================================================
 * Names
 * ====================================================================== */

void lev_canon_index_names(json_t *norm, json_t *names)
{
    if (json_is_array(norm)) {
        size_t i;
        json_t *b;
        json_array_foreach(norm, i, b) lev_canon_index_names(b, names);
        return;
    }
    if (!json_is_object(norm))
        return;
    const char *type = json_string_value(json_object_get(norm, "type"));
    const char *name = json_string_value(json_object_get(norm, "name"));
    if (name)
        json_object_set(names, name, norm);
    if (strcmp(type, "record") == 0) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(norm, "fields"), i, f)
            lev_canon_index_names(json_object_get(f, "type"), names);
    } else if (strcmp(type, "array") == 0) {
        lev_canon_index_names(json_object_get(norm, "items"), names);
    } else if (strcmp(type, "map") == 0) {
        lev_canon_index_names(json_object_get(norm, "values"), names);
    }
}

const char *lev_canon_kind(const json_t *node, const json_t *names, const json_t **def)
{
    if (json_is_array(node)) {
        *def = node;
        return "union";
    }
    if (json_is_string(node)) {
        const char *s = json_string_value(node);
        if (is_primitive(s)) {
            *def = node;
            return s;
        }
        node = json_object_get(names, s);
        if (!node) {
            *def = NULL;
            return NULL;
        }
    }
    *def = node;
    return json_string_value(json_object_get(node, "type"));
}

/* ======================================================================
 * The schema text given to avro-c
 * ====================================================================== */

/* A normalized schema as avro-c parses it: every named type with its
 * unqualified name and an explicit namespace. */
json_t *lev_canon_for_avro_c(const json_t *n)
{
    if (json_is_string(n))
        return json_string(json_string_value(n));
    if (json_is_array(n)) {
        json_t *out = json_array();
        size_t i;
        const json_t *b;
        json_array_foreach(n, i, b) json_array_append_new(out, lev_canon_for_avro_c(b));
        return out;
    }
    json_t *out = json_object();
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)n, key, v)
    {
        if (strcmp(key, "name") == 0) {
            const char *full = json_string_value(v);
            const char *dot = strrchr(full, '.');
            const char *sn = dot ? dot + 1 : full;
            json_object_set_new(out, "name", json_string(sn));
            json_object_set_new(out, "namespace",
                                json_stringn(full, sn == full ? 0 : (size_t)(sn - full - 1)));
        } else if (strcmp(key, "items") == 0 || strcmp(key, "values") == 0) {
            json_object_set_new(out, key, lev_canon_for_avro_c(v));
        } else if (strcmp(key, "fields") == 0) {
            json_t *fields = json_array();
            size_t i;
            const json_t *f;
            json_array_foreach(v, i, f)
            {
                json_t *nf = json_object();
                json_object_set(nf, "name", json_object_get(f, "name"));
                json_object_set_new(nf, "type", lev_canon_for_avro_c(json_object_get(f, "type")));
                json_array_append_new(fields, nf);
            }
            json_object_set_new(out, "fields", fields);
        } else {
            json_object_set_new(out, key, json_deep_copy(v));
        }
    }
    return out;
}

/* ======================================================================
 * Writing the canonical form
 * ====================================================================== */

typedef struct sbuf_s {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (lev_grow(&b->p, &b->cap, b->len + n + 1, 1, 256) != 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A JSON string: UTF-8 as is; '"', '\' and control characters escaped. */
static void sb_string(sbuf_t *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_put(b, e, 2);
        } else if (ch < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", ch);
            sb_puts(b, e);
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void write_node(sbuf_t *b, const json_t *n)
{
    if (json_is_string(n)) {
        sb_string(b, json_string_value(n));
        return;
    }
    if (json_is_array(n)) {
        sb_put(b, "[", 1);
        size_t i;
        const json_t *e;
        json_array_foreach(n, i, e)
        {
            if (i)
                sb_put(b, ",", 1);
            write_node(b, e);
        }
        sb_put(b, "]", 1);
        return;
    }
    const char *type = json_string_value(json_object_get(n, "type"));
    const char *name = json_string_value(json_object_get(n, "name"));
    sb_put(b, "{", 1);
    if (name) {
        sb_puts(b, "\"name\":");
        sb_string(b, name);
        sb_put(b, ",", 1);
    }
    sb_puts(b, "\"type\":");
    sb_string(b, type);
    if (strcmp(type, "record") == 0) {
        sb_puts(b, ",\"fields\":[");
        size_t i;
        const json_t *f;
        json_array_foreach(json_object_get(n, "fields"), i, f)
        {
            if (i)
                sb_put(b, ",", 1);
            sb_puts(b, "{\"name\":");
            sb_string(b, json_string_value(json_object_get(f, "name")));
            sb_puts(b, ",\"type\":");
            write_node(b, json_object_get(f, "type"));
            sb_put(b, "}", 1);
        }
        sb_put(b, "]", 1);
    } else if (strcmp(type, "enum") == 0) {
        sb_puts(b, ",\"symbols\":");
        write_node(b, json_object_get(n, "symbols"));
    } else if (strcmp(type, "array") == 0) {
        sb_puts(b, ",\"items\":");
        write_node(b, json_object_get(n, "items"));
    } else if (strcmp(type, "map") == 0) {
        sb_puts(b, ",\"values\":");
        write_node(b, json_object_get(n, "values"));
    } else if (strcmp(type, "fixed") == 0) {
        char num[32];
        snprintf(num, sizeof num, ",\"size\":%lld",
                 (long long)json_integer_value(json_object_get(n, "size")));
        sb_puts(b, num);
    }
    sb_put(b, "}", 1);
}

char *lev_canon_write(const json_t *norm)
{
    sbuf_t b = {0};
    write_node(&b, norm);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *lev_avro_canonical_form(const char *schema_json, size_t len, lev_error_t *err)
{
    if (!schema_json) {
        lev_error_set(err, LEV_ERR_ARG, NULL, "no schema text");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(schema_json, len,
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        lev_error_set(err, LEV_ERR_SCHEMA, NULL, "invalid JSON at line %d, column %d: %s",
                      jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    json_t *norm = lev_canon_normalize(root, err);
    json_decref(root);
    if (!norm)
        return NULL;
    char *out = lev_canon_write(norm);
    json_decref(norm);
    if (!out)
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    return out;
}
