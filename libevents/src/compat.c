/*
 * Schema compatibility: can values written with one version of a schema be
 * read with another? The Avro specification's resolution rules ("Schema
 * Resolution"), exactly as libevents' codec applies them on top of avro-c
 * 1.11.1's resolver:
 *
 *   - records match by unqualified name; reader fields are matched with
 *     writer fields by name (aliases are not used); a reader field the
 *     writer lacks needs a default; writer fields the reader lacks are
 *     skipped;
 *   - primitives match when equal or promoted: int to long, float or
 *     double; long to float or double; float to double. string and bytes
 *     are not promoted to each other (avro-c does not);
 *   - enums match by unqualified name; a writer symbol the reader lacks
 *     takes the reader enum's default, else it cannot be read;
 *   - fixed types match by full name and size;
 *   - arrays and maps match when their items or values do;
 *   - a writer union: every branch must be readable. The specification
 *     only fails a value that uses a branch the reader cannot read, but
 *     avro-c builds the resolver of every branch up front, and a failure
 *     inside an array or a map crashes it (it frees a NULL child resolver);
 *   - a reader union: the first branch that matches the writer's type is
 *     read (promotions count as a match, as in avro-c), and must resolve.
 *
 * The walk follows avro-c's search: every (writer, reader) pair avro-c
 * tries is walked here first, so a pair that passes never makes avro-c
 * fail (or crash) while it builds its resolver. Recursive types end the
 * walk at a record pair already seen.
 *
 * The walk also builds the "projection" the codec hands to avro-c instead
 * of the reader schema when they differ (see codec.c): the reader with, in
 * every record, only the fields the writer also has and, in every enum, the
 * writer's symbols. Each reader named type has one projection, so a reader
 * type read from two writer types that would need two different
 * projections is refused.
 */
#include "codec_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Field paths longer than this are cut (err->where is shorter anyway). */
#define COMPAT_PATH_SIZE 1024

typedef struct walk_s {
    const json_t *wnames, *rnames;
    int flags;
    lev_schema_problem_fn report;
    void *opaque;
    size_t problems;
    int oom;
    lev_error_t first; /* the first problem found */
    json_t *visited;   /* "<writer def>|<reader def>" of the record pairs walked */
    /* Reader named type -> {"writer": full name, "keep": [field names]}
     * (records) or {"writer": ..., "symbols": [writer symbols] or null}
     * (enums; null when the reader's symbols do). */
    json_t *pairs;
    int changed; /* the projection differs from the reader schema */
    char path[COMPAT_PATH_SIZE];
    size_t plen;
} walk_t;

/* ======================================================================
 * Helpers
 * ====================================================================== */

static void problem(walk_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records a problem at the current path: counted, kept when it is the
 * first, and passed to the report callback. */
static void problem(walk_t *c, const char *fmt, ...)
{
    char text[sizeof c->first.text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (c->problems++ == 0)
        lev_error_set(&c->first, LEV_ERR_RESOLVE, c->path, "%s", text);
    if (c->report)
        c->report(c->opaque, c->path, text);
}

/* Appends a segment to the path; returns the length to restore. */
static size_t path_push(walk_t *c, const char *sep, const char *seg)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%s", c->plen ? sep : "", seg);
    if (n > 0)
        c->plen += (size_t)n < sizeof c->path - c->plen ? (size_t)n : sizeof c->path - c->plen - 1;
    return old;
}

static void path_pop(walk_t *c, size_t len)
{
    c->plen = len;
    c->path[len] = '\0';
}

static const char *short_name(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

static const char *def_name(const json_t *def)
{
    return json_string_value(json_object_get(def, "name"));
}

/* Writer primitive w can be read as reader primitive r. */
static int promotable(const char *w, const char *r)
{
    if (strcmp(w, r) == 0)
        return 1;
    if (strcmp(w, "int") == 0)
        return strcmp(r, "long") == 0 || strcmp(r, "float") == 0 || strcmp(r, "double") == 0;
    if (strcmp(w, "long") == 0)
        return strcmp(r, "float") == 0 || strcmp(r, "double") == 0;
    if (strcmp(w, "float") == 0)
        return strcmp(r, "double") == 0;
    return 0;
}

/* A type for messages: "long", "record t.Item", "array", "union [null, string]". */
static const char *describe(const json_t *def, const char *kind, const json_t *names, char *buf,
                            size_t size)
{
    if (json_is_string(def) || strcmp(kind, "array") == 0 || strcmp(kind, "map") == 0) {
        snprintf(buf, size, "%s", kind);
    } else if (strcmp(kind, "union") == 0) {
        size_t len = (size_t)snprintf(buf, size, "union [");
        size_t i;
        const json_t *b;
        json_array_foreach(def, i, b)
        {
            const json_t *bd;
            const char *bk = lev_canon_kind(b, names, &bd);
            const char *s = !bk ? "?" : json_is_string(bd) || !def_name(bd) ? bk : def_name(bd);
            if (len < size)
                len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", s);
        }
        if (len < size)
            snprintf(buf + len, size - len, "]");
    } else {
        snprintf(buf, size, "%s %s", kind, def_name(def) ? def_name(def) : "?");
    }
    return buf;
}

static const json_t *field_named(const json_t *rec, const char *name)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(rec, "fields"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
            return f;
    }
    return NULL;
}

/* Notes which projection reader type `rdef` needs when read from writer
 * type `wdef` (`key` is "keep" or "symbols"; value is stolen). A reader type
 * needing two different projections is a problem. */
static void pair_note(walk_t *c, const json_t *rdef, const json_t *wdef, const char *key,
                      json_t *value)
{
    const char *rname = def_name(rdef), *wname = def_name(wdef);
    if (!value) {
        c->oom = 1;
        return;
    }
    json_t *prev = json_object_get(c->pairs, rname);
    if (!prev) {
        json_t *entry = json_pack("{s:s,s:o}", "writer", wname, key, value);
        if (!entry || json_object_set_new(c->pairs, rname, entry) != 0)
            c->oom = 1;
        return;
    }
    if (!json_equal(json_object_get(prev, key), value))
        problem(c,
                "reader type %s is read from two writer types that differ (%s and %s): "
                "the codec cannot resolve both",
                rname, json_string_value(json_object_get(prev, "writer")), wname);
    json_decref(value);
}

/* ======================================================================
 * The walk
 * ====================================================================== */

static void walk(walk_t *c, const json_t *wn, const json_t *rn, int depth);

static void walk_record(walk_t *c, const json_t *wd, const json_t *rd, int depth)
{
    char key[64];
    snprintf(key, sizeof key, "%p|%p", (const void *)wd, (const void *)rd);
    if (json_object_get(c->visited, key))
        return; /* a recursive type: walked already, or being walked */
    if (json_object_set_new(c->visited, key, json_true()) != 0) {
        c->oom = 1;
        return;
    }
    const json_t *rfields = json_object_get(rd, "fields");
    json_t *keep = json_array();
    size_t i;
    const json_t *f;
    json_array_foreach(rfields, i, f)
    {
        const json_t *fname = json_object_get(f, "name");
        if (keep && field_named(wd, json_string_value(fname)) &&
            json_array_append(keep, (json_t *)fname) != 0)
            c->oom = 1;
    }
    if (keep && json_array_size(keep) < json_array_size(rfields))
        c->changed = 1;
    pair_note(c, rd, wd, "keep", keep);
    json_array_foreach(rfields, i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        const json_t *wf = field_named(wd, fname);
        size_t old = path_push(c, ".", fname);
        if (wf)
            walk(c, json_object_get(wf, "type"), json_object_get(f, "type"), depth + 1);
        else if (!json_object_get(f, "default"))
            problem(c, "field %s is missing in the writer and has no default", fname);
        path_pop(c, old);
    }
}

static void walk_enum(walk_t *c, const json_t *wd, const json_t *rd)
{
    const json_t *wsyms = json_object_get(wd, "symbols"), *rsyms = json_object_get(rd, "symbols");
    /* avro-c copies ordinals: the reader's symbols do while the writer's
     * are their first ones, in order. */
    int prefix = json_array_size(wsyms) <= json_array_size(rsyms);
    for (size_t i = 0; prefix && i < json_array_size(wsyms); i++)
        prefix = json_equal(json_array_get(wsyms, i), json_array_get(rsyms, i));
    if (!prefix)
        c->changed = 1;
    pair_note(c, rd, wd, "symbols", prefix ? json_null() : json_deep_copy(wsyms));
    if ((c->flags & LEV_COMPAT_ENUM_PER_VALUE) || json_object_get(rd, "default"))
        return;
    size_t i, k;
    const json_t *ws, *rs;
    json_array_foreach(wsyms, i, ws)
    {
        int found = 0;
        json_array_foreach(rsyms, k, rs) found |= json_equal(ws, rs);
        if (!found)
            problem(c,
                    "enum symbol %s of the writer is unknown to reader enum %s, which has no "
                    "default",
                    json_string_value(ws), def_name(rd));
    }
}

/* The reader union branch avro-c selects for a non-union writer type: the
 * first one of the same kind and name (fixed: full name and size; a
 * primitive: the first it can be promoted to). -1 when none. */
static int select_branch(walk_t *c, const json_t *wd, const char *wk, const json_t *rd)
{
    size_t i;
    const json_t *b;
    json_array_foreach(rd, i, b)
    {
        const json_t *bd;
        const char *bk = lev_canon_kind(b, c->rnames, &bd);
        if (!bk)
            continue;
        if (json_is_string(wd)) {
            if (json_is_string(bd) && promotable(wk, bk))
                return (int)i;
            continue;
        }
        if (strcmp(wk, bk) != 0)
            continue;
        if (strcmp(wk, "record") == 0 || strcmp(wk, "enum") == 0) {
            if (strcmp(short_name(def_name(wd)), short_name(def_name(bd))) == 0)
                return (int)i;
        } else if (strcmp(wk, "fixed") == 0) {
            if (strcmp(def_name(wd), def_name(bd)) == 0 &&
                json_equal(json_object_get(wd, "size"), json_object_get(bd, "size")))
                return (int)i;
        } else {
            return (int)i; /* array, map */
        }
    }
    return -1;
}

/* A non-union writer type against a reader type. `branch` is 1 when the
 * writer type is a branch of a writer union (for messages). */
static void walk_one(walk_t *c, const json_t *wn, const json_t *rn, int depth, int branch)
{
    const json_t *wd, *rd;
    const char *wk = lev_canon_kind(wn, c->wnames, &wd), *rk = lev_canon_kind(rn, c->rnames, &rd);
    char wdesc[160], rdesc[400];
    const char *ctx = branch ? "the writer's union branch " : "";
    if (!wk || !rk) {
        problem(c, "the %s schema refers to an unknown named type", !wk ? "writer" : "reader");
        return;
    }
    describe(wd, wk, c->wnames, wdesc, sizeof wdesc);
    if (strcmp(rk, "union") == 0) {
        int sel = select_branch(c, wd, wk, rd);
        if (sel < 0) {
            problem(c, "%s%s matches no branch of the reader's %s", ctx, wdesc,
                    describe(rd, rk, c->rnames, rdesc, sizeof rdesc));
            return;
        }
        rn = json_array_get(rd, (size_t)sel);
        rk = lev_canon_kind(rn, c->rnames, &rd);
    }
    describe(rd, rk, c->rnames, rdesc, sizeof rdesc);
    if (json_is_string(wd) || json_is_string(rd)) {
        if (!json_is_string(wd) || !json_is_string(rd) || !promotable(wk, rk))
            problem(c, "%s%s cannot be read as %s", ctx, wdesc, rdesc);
        return;
    }
    if (strcmp(wk, rk) != 0) {
        problem(c, "%s%s cannot be read as %s", ctx, wdesc, rdesc);
        return;
    }
    if (strcmp(wk, "record") == 0 || strcmp(wk, "enum") == 0) {
        if (strcmp(short_name(def_name(wd)), short_name(def_name(rd))) != 0) {
            problem(c, "%s%s cannot be read as %s: the names differ", ctx, wdesc, rdesc);
            return;
        }
        if (wk[0] == 'r')
            walk_record(c, wd, rd, depth);
        else
            walk_enum(c, wd, rd);
    } else if (strcmp(wk, "fixed") == 0) {
        json_int_t ws = json_integer_value(json_object_get(wd, "size"));
        json_int_t rs = json_integer_value(json_object_get(rd, "size"));
        if (strcmp(def_name(wd), def_name(rd)) != 0)
            problem(c, "%s%s cannot be read as %s: the full names differ", ctx, wdesc, rdesc);
        else if (ws != rs)
            problem(c, "%s%s has size %lld in the writer and %lld in the reader", ctx, wdesc,
                    (long long)ws, (long long)rs);
    } else {
        int arr = strcmp(wk, "array") == 0;
        const char *key = arr ? "items" : "values";
        size_t old = path_push(c, "", arr ? "[]" : "{}");
        walk(c, json_object_get(wd, key), json_object_get(rd, key), depth + 1);
        path_pop(c, old);
    }
}

static void walk(walk_t *c, const json_t *wn, const json_t *rn, int depth)
{
    if (c->oom)
        return;
    if (depth > LEV_CODEC_MAX_DEPTH_CAP) {
        problem(c, "the schemas nest deeper than %d levels", LEV_CODEC_MAX_DEPTH_CAP);
        return;
    }
    const json_t *wd, *rd;
    const char *wk = lev_canon_kind(wn, c->wnames, &wd), *rk = lev_canon_kind(rn, c->rnames, &rd);
    if (!wk || !rk) {
        problem(c, "the %s schema refers to an unknown named type", !wk ? "writer" : "reader");
        return;
    }
    if (strcmp(wk, "union") != 0) {
        walk_one(c, wn, rn, depth, 0);
        return;
    }
    size_t i;
    const json_t *b;
    json_array_foreach(wd, i, b) walk_one(c, b, rn, depth + 1, 1);
}

/* ======================================================================
 * The projection
 * ====================================================================== */

typedef struct proj_s {
    const json_t *names, *pairs;
    json_t *emitted; /* named types defined in the output so far */
    int fail;
} proj_t;

/* The projection of a normalized reader node. Named types are defined at
 * their first occurrence in the output: a reference whose definition was
 * left out with a dropped field is replaced by the definition. */
static json_t *project(proj_t *p, const json_t *n, int depth)
{
    if (p->fail || depth > LEV_CODEC_MAX_DEPTH_CAP) {
        p->fail = 1;
        return NULL;
    }
    if (json_is_string(n)) {
        const char *s = json_string_value(n);
        const json_t *def = json_object_get(p->names, s);
        if (def && !json_object_get(p->emitted, s))
            return project(p, def, depth + 1);
        return json_string(s);
    }
    if (json_is_array(n)) {
        json_t *out = json_array();
        size_t i;
        const json_t *b;
        json_array_foreach(n, i, b)
        {
            if (!out || json_array_append_new(out, project(p, b, depth + 1)) != 0)
                p->fail = 1;
        }
        return out;
    }
    const char *type = json_string_value(json_object_get(n, "type"));
    const char *name = def_name(n);
    if (name) {
        if (json_object_get(p->emitted, name))
            return json_string(name);
        if (json_object_set_new(p->emitted, name, json_true()) != 0)
            p->fail = 1;
    }
    json_t *out = json_object();
    if (!out) {
        p->fail = 1;
        return NULL;
    }
    json_object_set_new(out, "type", json_string(type));
    if (name)
        json_object_set_new(out, "name", json_string(name));
    const json_t *pair = name ? json_object_get(p->pairs, name) : NULL;
    if (strcmp(type, "record") == 0) {
        const json_t *keep = json_object_get(pair, "keep");
        json_t *fields = json_array();
        if (!fields || json_object_set_new(out, "fields", fields) != 0)
            p->fail = 1;
        size_t i, k;
        const json_t *f, *kf;
        json_array_foreach(json_object_get(n, "fields"), i, f)
        {
            const json_t *fname = json_object_get(f, "name");
            int kept = !keep;
            json_array_foreach(keep, k, kf) kept |= json_equal(kf, fname);
            if (!kept)
                continue;
            json_t *pf = json_pack("{s:O,s:o}", "name", fname, "type",
                                   project(p, json_object_get(f, "type"), depth + 1));
            if (!pf || !fields || json_array_append_new(fields, pf) != 0)
                p->fail = 1;
        }
    } else if (strcmp(type, "enum") == 0) {
        const json_t *syms = json_object_get(pair, "symbols");
        if (!json_is_array(syms))
            syms = json_object_get(n, "symbols");
        json_object_set_new(out, "symbols", json_deep_copy(syms));
    } else if (strcmp(type, "fixed") == 0) {
        json_object_set(out, "size", json_object_get(n, "size"));
    } else {
        const char *key = strcmp(type, "array") == 0 ? "items" : "values";
        if (json_object_set_new(out, key, project(p, json_object_get(n, key), depth + 1)) != 0)
            p->fail = 1;
    }
    return out;
}

/* ======================================================================
 * Entry points
 * ====================================================================== */

int lev_compat_check(const lev_schema_t *writer, const lev_schema_t *reader, int flags,
                     lev_schema_problem_fn report, void *opaque, json_t **proj, lev_error_t *err)
{
    if (proj)
        *proj = NULL;
    if (!writer || !reader)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing writer or reader schema");
    walk_t *c = calloc(1, sizeof *c);
    if (!c)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    c->wnames = lev_schema_names(writer);
    c->rnames = lev_schema_names(reader);
    c->flags = flags;
    c->report = report;
    c->opaque = opaque;
    c->visited = json_object();
    c->pairs = json_object();
    int rc = 0;
    if (!c->visited || !c->pairs)
        c->oom = 1;
    else
        walk(c, lev_schema_norm(writer), lev_schema_norm(reader), 0);
    if (c->oom) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    } else if (c->problems) {
        rc = lev_error_set(err, LEV_ERR_RESOLVE, c->first.where, "%s", c->first.text);
    } else if (proj && c->changed) {
        proj_t p = {lev_schema_names(reader), c->pairs, json_object(), 0};
        json_t *out = p.emitted ? project(&p, lev_schema_norm(reader), 0) : NULL;
        if (!out || p.fail) {
            json_decref(out);
            rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "cannot build the projection of %s",
                               lev_schema_name(reader));
        } else {
            *proj = out;
        }
        json_decref(p.emitted);
    }
    json_decref(c->visited);
    json_decref(c->pairs);
    free(c);
    return rc;
}

int lev_schema_check_resolvable(const lev_schema_t *writer, const lev_schema_t *reader,
                                lev_error_t *err)
{
    return lev_compat_check(writer, reader, 0, NULL, NULL, NULL, err);
}

int lev_schema_check_resolvable_all(const lev_schema_t *writer, const lev_schema_t *reader,
                                    lev_schema_problem_fn report, void *opaque, lev_error_t *err)
{
    return lev_compat_check(writer, reader, 0, report, opaque, NULL, err);
}
