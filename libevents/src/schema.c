/*
 * Schema sets: Avro schemas loaded from files or text, known by full name
 * (current versions) and by fingerprint (every version, writer-only ones
 * included). A set is filled once and then only read, so any number of
 * threads may read it, unless a codec learns writer schemas into it from a
 * schema registry (lev_codec_set_registry): then only that codec's thread
 * may use it.
 */
#include "codec_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Schema files larger than this are refused. */
#define SCHEMA_FILE_MAX (16u * 1024 * 1024)

/* FNV-1a of a full name. */
static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

struct lev_schema_s {
    char *name;         /* full name */
    uint32_t name_hash; /* of name: lev_schemas_find compares it first */
    char *origin;       /* file or NULL */
    char *canonical;    /* parsing canonical form */
    char *text;         /* the text it was loaded from */
    size_t text_len;
    uint64_t fingerprint;
    int current;
    unsigned promoted_batch; /* batch that made it current (for rollback), or 0 */
    size_t index;
    avro_schema_t avro;
    json_t *norm;  /* normalized schema, defaults kept */
    json_t *names; /* full name -> definition in norm */
    lev_vplan_t *plan;
    lev_jplan_t *jplan;                  /* NULL: encode_json always takes its tree path */
    const lev_schema_t *current_version; /* of the same full name, or NULL */
};

struct lev_schemas_s {
    lev_schema_t **v;
    size_t n, cap;
    size_t *slots; /* fingerprint hash: index + 1, or 0 when empty */
    size_t nslots; /* a power of two, at least twice n */
    unsigned batch;
};

/* ======================================================================
 * Schemas
 * ====================================================================== */

static void schema_free(lev_schema_t *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->origin);
    free(s->canonical);
    free(s->text);
    if (s->avro)
        avro_schema_decref(s->avro);
    json_decref(s->names);
    json_decref(s->norm);
    lev_vplan_destroy(s->plan);
    lev_jplan_destroy(s->jplan);
    free(s);
}

const char *lev_schema_name(const lev_schema_t *schema)
{
    return schema ? schema->name : NULL;
}

const char *lev_schema_origin(const lev_schema_t *schema)
{
    return schema ? schema->origin : NULL;
}

const char *lev_schema_canonical(const lev_schema_t *schema)
{
    return schema ? schema->canonical : NULL;
}

const char *lev_schema_text(const lev_schema_t *schema, size_t *len)
{
    if (len)
        *len = schema ? schema->text_len : 0;
    return schema ? schema->text : NULL;
}

uint64_t lev_schema_fingerprint(const lev_schema_t *schema)
{
    return schema ? schema->fingerprint : 0;
}

int lev_schema_is_current(const lev_schema_t *schema)
{
    return schema ? schema->current : 0;
}

avro_schema_t lev_schema_avro(const lev_schema_t *schema)
{
    return schema ? schema->avro : NULL;
}

const json_t *lev_schema_norm(const lev_schema_t *schema)
{
    return schema->norm;
}

const json_t *lev_schema_names(const lev_schema_t *schema)
{
    return schema->names;
}

const lev_vplan_t *lev_schema_plan(const lev_schema_t *schema)
{
    return schema->plan;
}

const lev_jplan_t *lev_schema_jplan(const lev_schema_t *schema)
{
    return schema->jplan;
}

size_t lev_schema_index(const lev_schema_t *schema)
{
    return schema->index;
}

const lev_schema_t *lev_schema_current_version(const lev_schema_t *schema)
{
    return schema->current_version;
}

/* ======================================================================
 * Sets
 * ====================================================================== */

lev_schemas_t *lev_schemas_new(void)
{
    return calloc(1, sizeof(lev_schemas_t));
}

void lev_schemas_destroy(lev_schemas_t *schemas)
{
    if (!schemas)
        return;
    for (size_t i = 0; i < schemas->n; i++)
        schema_free(schemas->v[i]);
    free(schemas->v);
    free(schemas->slots);
    free(schemas);
}

size_t lev_schemas_count(const lev_schemas_t *schemas)
{
    return schemas ? schemas->n : 0;
}

const lev_schema_t *lev_schemas_at(const lev_schemas_t *schemas, size_t i)
{
    return schemas && i < schemas->n ? schemas->v[i] : NULL;
}

const lev_schema_t *lev_schemas_find(const lev_schemas_t *schemas, const char *fullname)
{
    if (!schemas || !fullname)
        return NULL;
    uint32_t h = name_hash(fullname);
    for (size_t i = 0; i < schemas->n; i++)
        if (schemas->v[i]->name_hash == h && schemas->v[i]->current &&
            strcmp(schemas->v[i]->name, fullname) == 0)
            return schemas->v[i];
    return NULL;
}

static size_t fp_slot(uint64_t fp, size_t nslots)
{
    /* Fingerprints are well mixed already. */
    return (size_t)(fp ^ (fp >> 32)) & (nslots - 1);
}

const lev_schema_t *lev_schemas_find_fingerprint(const lev_schemas_t *schemas, uint64_t fingerprint)
{
    if (!schemas || !schemas->nslots)
        return NULL;
    for (size_t i = fp_slot(fingerprint, schemas->nslots);; i = (i + 1) & (schemas->nslots - 1)) {
        size_t e = schemas->slots[i];
        if (e == 0)
            return NULL;
        if (schemas->v[e - 1]->fingerprint == fingerprint)
            return schemas->v[e - 1];
    }
}

/* Rebuilds the fingerprint hash for the first n schemas. */
static int rehash(lev_schemas_t *schemas, size_t n)
{
    size_t nslots = 16;
    while (nslots < 2 * n + 2)
        nslots *= 2;
    size_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return LEV_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        size_t i = fp_slot(schemas->v[k]->fingerprint, nslots);
        while (slots[i])
            i = (i + 1) & (nslots - 1);
        slots[i] = k + 1;
    }
    free(schemas->slots);
    schemas->slots = slots;
    schemas->nslots = nslots;
    return 0;
}

static int append(lev_schemas_t *schemas, lev_schema_t *s)
{
    if (lev_grow(&schemas->v, &schemas->cap, schemas->n + 1, sizeof *schemas->v, 16) != 0)
        return LEV_ERR_NOMEM;
    s->index = schemas->n;
    schemas->v[schemas->n] = s;
    if (rehash(schemas, schemas->n + 1) != 0)
        return LEV_ERR_NOMEM;
    schemas->n++;
    return 0;
}

/* Points every schema at the current version of its name. */
static void relink(lev_schemas_t *schemas)
{
    for (size_t i = 0; i < schemas->n; i++)
        schemas->v[i]->current_version = lev_schemas_find(schemas, schemas->v[i]->name);
}

/* Undoes what the current batch added or promoted. */
static void rollback(lev_schemas_t *schemas, size_t n0)
{
    for (size_t i = n0; i < schemas->n; i++)
        schema_free(schemas->v[i]);
    schemas->n = n0;
    for (size_t i = 0; i < n0; i++) {
        if (schemas->v[i]->promoted_batch == schemas->batch) {
            schemas->v[i]->current = 0;
            schemas->v[i]->promoted_batch = 0;
        }
    }
    rehash(schemas, n0);
}

/* Error where: the origin, with a line and column for JSON errors. */
static int schema_error(lev_error_t *err, int code, const char *origin, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int schema_error(lev_error_t *err, int code, const char *origin, const char *fmt, ...)
{
    if (!err)
        return code;
    char text[sizeof err->text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return lev_error_set(err, code, origin, "%s", text);
}

/* Checks every field default of a normalized schema (a dry run of the
 * JSON decoder in default mode). */
static int check_defaults(const json_t *node, const json_t *names, json_t *visited,
                          lev_error_t *err)
{
    if (json_is_array(node)) {
        size_t i;
        const json_t *b;
        json_array_foreach(node, i, b)
        {
            int rc = check_defaults(b, names, visited, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(node))
        return 0;
    const char *type = json_string_value(json_object_get(node, "type"));
    if (strcmp(type, "array") == 0)
        return check_defaults(json_object_get(node, "items"), names, visited, err);
    if (strcmp(type, "map") == 0)
        return check_defaults(json_object_get(node, "values"), names, visited, err);
    if (strcmp(type, "record") != 0)
        return 0;
    const char *rname = json_string_value(json_object_get(node, "name"));
    if (json_object_get(visited, rname))
        return 0;
    json_object_set_new(visited, rname, json_true());
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(node, "fields"), i, f)
    {
        const json_t *type_node = json_object_get(f, "type");
        json_t *def = json_object_get(f, "default");
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (def) {
            lev_error_t e;
            lev_error_clear(&e);
            if (lev_json_to_value(def, type_node, names, NULL, LEV_JSON_DEFAULT,
                                  LEV_CODEC_MAX_DEPTH_CAP, "", &e) != 0)
                return lev_error_set(err, LEV_ERR_SCHEMA, NULL,
                                     "default of field \"%s\" of \"%s\" does not match its type: "
                                     "%s%s%s",
                                     fname, rname, e.where, e.where[0] ? ": " : "", e.text);
        }
        int rc = check_defaults(type_node, names, visited, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Builds a schema from text: parses, checks and normalizes it, computes its
 * canonical form and fingerprint, checks its defaults, has avro-c parse it
 * and compiles its validation plan. *out receives the new schema (not yet
 * in any set). */
static int schema_build(const char *json, size_t len, const char *origin, lev_schema_t **out,
                        lev_error_t *err)
{
    json_error_t jerr;
    lev_error_t e;
    lev_schema_t *s = NULL;
    json_t *root = NULL, *visited = NULL, *for_avro = NULL;
    char *avro_text = NULL;
    int rc;
    *out = NULL;

    root = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        if (origin) {
            char where[sizeof err->where];
            snprintf(where, sizeof where, "%s:%d:%d", origin, jerr.line, jerr.column);
            return lev_error_set(err, LEV_ERR_SCHEMA, where, "invalid JSON: %s", jerr.text);
        }
        return lev_error_set(err, LEV_ERR_SCHEMA, NULL, "invalid JSON at line %d, column %d: %s",
                             jerr.line, jerr.column, jerr.text);
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!json_is_object(root) || !type || strcmp(type, "record") != 0 ||
        !json_is_string(json_object_get(root, "name"))) {
        const char *found = json_is_object(root)   ? (type ? type : "an object without a type")
                            : json_is_array(root)  ? "a union"
                            : json_is_string(root) ? json_string_value(root)
                                                   : "not a schema";
        rc = schema_error(err, LEV_ERR_SCHEMA, origin,
                          "a top-level schema must be a named record, found %s", found);
        goto fail;
    }

    s = calloc(1, sizeof *s);
    if (!s) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, origin, "out of memory");
        goto fail;
    }
    lev_error_clear(&e);
    s->norm = lev_canon_normalize(root, &e);
    if (!s->norm) {
        rc = schema_error(err, e.code, origin, "%s", e.text);
        goto fail;
    }
    s->names = json_object();
    s->canonical = lev_canon_write(s->norm);
    s->name = lev_strdup(json_string_value(json_object_get(s->norm, "name")));
    s->name_hash = s->name ? name_hash(s->name) : 0;
    s->origin = lev_strdup(origin);
    s->text = malloc(len + 1);
    if (s->text) {
        memcpy(s->text, json, len);
        s->text[len] = '\0';
        s->text_len = len;
    }
    visited = json_object();
    if (!s->names || !s->canonical || !s->name || (origin && !s->origin) || !s->text || !visited) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, origin, "out of memory");
        goto fail;
    }
    lev_canon_index_names(s->norm, s->names);
    s->fingerprint = lev_avro_fingerprint64(s->canonical, strlen(s->canonical));

    lev_error_clear(&e);
    if (check_defaults(s->norm, s->names, visited, &e) != 0) {
        rc = schema_error(err, LEV_ERR_SCHEMA, origin, "%s", e.text);
        goto fail;
    }

    /* avro-c gets the schema with every name spelled out (and no
     * defaults, which it ignores anyway and whose NULs it refuses). */
    for_avro = lev_canon_for_avro_c(s->norm);
    avro_text = for_avro ? json_dumps(for_avro, JSON_COMPACT) : NULL;
    json_decref(for_avro);
    if (!avro_text) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, origin, "out of memory");
        goto fail;
    }
    if (avro_schema_from_json_length(avro_text, strlen(avro_text), &s->avro) != 0) {
        s->avro = NULL;
        free(avro_text);
        rc = schema_error(err, LEV_ERR_SCHEMA, origin, "avro-c rejects the schema: %s",
                          avro_strerror());
        goto fail;
    }
    free(avro_text);
    /* avro-c resolves namespaces on its own; it must agree with us. */
    const char *an = avro_schema_name(s->avro), *ans = avro_schema_namespace(s->avro);
    char afull[512];
    snprintf(afull, sizeof afull, "%s%s%s", ans && ans[0] ? ans : "", ans && ans[0] ? "." : "",
             an ? an : "");
    if (strcmp(afull, s->name) != 0) {
        rc = schema_error(err, LEV_ERR_SCHEMA, origin,
                          "avro-c reads the full name as \"%s\", not \"%s\"", afull, s->name);
        goto fail;
    }
    s->plan = lev_vplan_new(s->avro);
    if (!s->plan) {
        rc = schema_error(err, LEV_ERR_SCHEMA, origin, "schema \"%s\" cannot be compiled", s->name);
        goto fail;
    }
    s->jplan = lev_jplan_new(s->norm, s->names);
    json_decref(visited);
    json_decref(root);
    *out = s;
    return 0;

fail:
    json_decref(visited);
    json_decref(root);
    schema_free(s);
    return rc;
}

/* 0 when `s` may be a current version: no other current version of its
 * full name is loaded. Else LEV_ERR_SCHEMA naming both origins. */
static int check_current_name(const lev_schemas_t *schemas, const lev_schema_t *s,
                              const char *origin, lev_error_t *err)
{
    const lev_schema_t *other = lev_schemas_find(schemas, s->name);
    if (other && other != s)
        return lev_error_set(err, LEV_ERR_SCHEMA, origin,
                             "schema \"%s\" is already loaded as a current version from %s",
                             s->name, other->origin ? other->origin : "(text)");
    return 0;
}

static int add_one(lev_schemas_t *schemas, const char *json, size_t len, const char *origin,
                   int flags, const lev_schema_t **out, lev_error_t *err)
{
    lev_schema_t *s = NULL;
    int rc = schema_build(json, len, origin, &s, err);
    if (rc)
        return rc;
    int current = !(flags & LEV_SCHEMA_WRITER_ONLY);
    lev_schema_t *existing = (lev_schema_t *)lev_schemas_find_fingerprint(schemas, s->fingerprint);
    if (existing) {
        schema_free(s);
        if (current && !existing->current) {
            rc = check_current_name(schemas, existing, origin, err);
            if (rc)
                return rc;
            existing->current = 1;
            existing->promoted_batch = schemas->batch;
        }
        if (out)
            *out = existing;
        return 0;
    }
    if (current) {
        rc = check_current_name(schemas, s, origin, err);
        if (rc) {
            schema_free(s);
            return rc;
        }
    }
    s->current = current;
    if (append(schemas, s) != 0) {
        schema_free(s);
        return lev_error_set(err, LEV_ERR_NOMEM, origin, "out of memory");
    }
    if (out)
        *out = s;
    return 0;
}

int lev_schemas_add(lev_schemas_t *schemas, const char *json, size_t len, const char *origin,
                    int flags, const lev_schema_t **out, lev_error_t *err)
{
    if (!schemas || !json)
        return lev_error_set(err, LEV_ERR_ARG, origin, "no schema set or no text");
    schemas->batch++;
    size_t n0 = schemas->n;
    int rc = add_one(schemas, json, len, origin, flags, out, err);
    if (rc)
        rollback(schemas, n0);
    relink(schemas);
    return rc;
}

static int load_file(lev_schemas_t *schemas, const char *path, int flags, lev_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lev_error_set(err, LEV_ERR_IO, path, "cannot open: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > SCHEMA_FILE_MAX + 1)
                cap = SCHEMA_FILE_MAX + 1;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = lev_error_set(err, LEV_ERR_NOMEM, path, "out of memory");
                goto done;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
        if (len > SCHEMA_FILE_MAX) {
            rc = lev_error_set(err, LEV_ERR_SCHEMA, path, "file larger than %u bytes",
                               SCHEMA_FILE_MAX);
            goto done;
        }
    }
    if (ferror(f)) {
        rc = lev_error_set(err, LEV_ERR_IO, path, "read error: %s", strerror(errno));
        goto done;
    }
    rc = add_one(schemas, buf ? buf : "", len, path, flags, NULL, err);
done:
    free(buf);
    fclose(f);
    return rc;
}

int lev_schemas_load_file(lev_schemas_t *schemas, const char *path, int flags, lev_error_t *err)
{
    if (!schemas || !path)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "no schema set or no path");
    schemas->batch++;
    size_t n0 = schemas->n;
    int rc = load_file(schemas, path, flags, err);
    if (rc)
        rollback(schemas, n0);
    relink(schemas);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_avsc_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".avsc") == 0;
}

static int load_dir(lev_schemas_t *schemas, const char *dir, int flags, lev_error_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return lev_error_set(err, LEV_ERR_IO, dir, "cannot open directory: %s", strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !has_avsc_suffix(de->d_name))
            continue;
        if (lev_grow(&names, &cap, n + 1, sizeof *names, 32) != 0) {
            rc = lev_error_set(err, LEV_ERR_NOMEM, dir, "out of memory");
            goto done;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            rc = lev_error_set(err, LEV_ERR_NOMEM, dir, "out of memory");
            goto done;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t plen = strlen(dir) + 1 + strlen(names[i]) + 1;
        char *path = malloc(plen);
        if (!path) {
            rc = lev_error_set(err, LEV_ERR_NOMEM, dir, "out of memory");
            break;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = load_file(schemas, path, flags, err);
        free(path);
    }
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int lev_schemas_load_dir(lev_schemas_t *schemas, const char *dir, int flags, lev_error_t *err)
{
    if (!schemas || !dir)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "no schema set or no directory");
    schemas->batch++;
    size_t n0 = schemas->n;
    int rc = load_dir(schemas, dir, flags, err);
    if (rc)
        rollback(schemas, n0);
    relink(schemas);
    return rc;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int lev_schemas_load_path(lev_schemas_t *schemas, const char *dirs, lev_error_t *err)
{
    if (!schemas || !dirs)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "no schema set or no directory list");
    schemas->batch++;
    size_t n0 = schemas->n;
    int rc = 0, loaded = 0;
    char *copy = strdup(dirs);
    if (!copy)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && rc == 0; dir = strtok_r(NULL, ":", &save)) {
        struct stat st;
        if (stat(dir, &st) != 0 && errno == ENOENT)
            continue; /* skipped, as long as another one loads */
        rc = load_dir(schemas, dir, 0, err);
        if (rc)
            break;
        loaded++;
        size_t hlen = strlen(dir) + sizeof "/history";
        char *hist = malloc(hlen);
        if (!hist) {
            rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        snprintf(hist, hlen, "%s/history", dir);
        if (is_dir(hist))
            rc = load_dir(schemas, hist, LEV_SCHEMA_WRITER_ONLY, err);
        free(hist);
    }
    free(copy);
    if (rc == 0 && loaded == 0)
        rc = lev_error_set(err, LEV_ERR_IO, dirs, "none of the schema directories exists");
    if (rc)
        rollback(schemas, n0);
    relink(schemas);
    return rc;
}
