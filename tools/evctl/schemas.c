/*
 * evctl schemas list | check.
 *
 * check: Avro schema resolution in both directions between the current
 * schemas and a previous version -- backward (the new reader reads events
 * written with the old schema) and forward (the old reader reads events
 * written with the new schema). The rules of the Avro specification
 * ("Schema Resolution") are applied to the schemas' JSON, because avro-c
 * 1.11.1 ignores field defaults (its resolver refuses any reader field the
 * writer lacks) and accepts writer enum symbols the reader lacks. avro-c's
 * resolver (avro_resolved_writer_new) is consulted as well, on the reader
 * without the fields the rules accepted through their defaults, and any
 * failure it finds is reported too. It runs in a child process: avro-c
 * 1.11.1 dereferences NULL when a resolution fails inside an array or a map
 * (array<long> read as array<int> is enough).
 */
#include "evctl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ======================================================================
 * schemas list
 * ====================================================================== */

static const evctl_opt_t list_opts[] = {
    {"format", "json|table", "JSON lines (default) or a table for people", 0},
    {NULL, NULL, NULL, 0},
};

/* The first 10 bytes of a value written with a schema of this fingerprint,
 * in hex: C3 01 and the fingerprint little-endian. */
static void wire_prefix(uint64_t fp, char out[21])
{
    snprintf(out, 21, "c301");
    for (int i = 0; i < 8; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", (unsigned)(fp >> (8 * i)) & 0xff);
}

/* evctl schemas list: returns an exit code. */
static int list_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    const char *format = evctl_opt(args, "format");
    int table = format && strcmp(format, "table") == 0, rc;
    if (format && !table && strcmp(format, "json") != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "--format: expected json or table, got \"%s\"", format);
    if ((rc = evctl_load_schemas(ctx)) != 0)
        return rc;
    if (table)
        printf("%-40s %-16s %-8s %s\n", "NAME", "FINGERPRINT", "CURRENT", "ORIGIN");
    for (size_t i = 0; i < lev_schemas_count(ctx->schemas); i++) {
        const lev_schema_t *s = lev_schemas_at(ctx->schemas, i);
        uint64_t fp = lev_schema_fingerprint(s);
        char hex[17], wire[21];
        snprintf(hex, sizeof hex, "%016" PRIx64, fp);
        wire_prefix(fp, wire);
        const char *origin = lev_schema_origin(s);
        if (table) {
            printf("%-40s %-16s %-8s %s\n", lev_schema_name(s), hex,
                   lev_schema_is_current(s) ? "yes" : "no", origin ? origin : "-");
            continue;
        }
        if (evctl_out(json_pack("{s:s,s:s,s:s,s:o,s:b}", "name", lev_schema_name(s), "fingerprint",
                                hex, "wire_prefix", wire, "origin",
                                origin ? evctl_json_bytes(origin, strlen(origin)) : json_null(),
                                "current", lev_schema_is_current(s))) != 0)
            break;
    }
    fflush(stdout);
    return 0;
}

const evctl_cmd_t evctl_cmd_schemas_list = {
    "schemas list",
    "[--format table]",
    "list the loaded schemas with their fingerprints",
    "Loads the schema directories (LEV_SCHEMA_DIRS or --schemas; each one's history/\n"
    "holds older versions, loaded as writers only) and prints one JSON line per schema:\n"
    "  {\"name\",\"fingerprint\" (CRC-64-AVRO of the Parsing Canonical Form, hex),\n"
    "   \"wire_prefix\" (the first 10 bytes of every value written with it, hex),\n"
    "   \"origin\" (file),\"current\" (false: an older version kept for decoding)}\n",
    list_opts,
    0,
    0,
    list_run,
};

/* ======================================================================
 * Compatibility rules over the schemas' JSON
 * ====================================================================== */

/* One schema document with its named types. */
typedef struct doc_s {
    json_t *root;
    json_t *names; /* full name -> {"node": json, "ns": namespace} */
} doc_t;

static const char *const primitives[] = {"null",  "boolean", "int",   "long",
                                         "float", "double",  "bytes", "string"};

/* 1 when s names an Avro primitive type. */
static int is_primitive(const char *s)
{
    for (size_t i = 0; i < sizeof primitives / sizeof primitives[0]; i++)
        if (strcmp(s, primitives[i]) == 0)
            return 1;
    return 0;
}

/* The full name of `name` in namespace ns (a dotted name is already full). */
static void full_name(const char *name, const char *ns, char *out, size_t size)
{
    if (strchr(name, '.') || !ns || !*ns)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "%s.%s", ns, name);
}

/* The part of a full name after its last dot. */
static const char *short_name(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

/* Registers the named types of a node (and below) under their full names. */
static void collect(doc_t *d, json_t *node, const char *ns, int depth)
{
    if (depth > 64)
        return;
    if (json_is_array(node)) {
        size_t i;
        json_t *b;
        json_array_foreach(node, i, b) collect(d, b, ns, depth + 1);
        return;
    }
    if (!json_is_object(node))
        return;
    json_t *type = json_object_get(node, "type");
    const char *t = json_string_value(type);
    if (!t) {
        collect(d, type, ns, depth + 1);
        return;
    }
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0 || strcmp(t, "enum") == 0 ||
        strcmp(t, "fixed") == 0) {
        const char *name = json_string_value(json_object_get(node, "name"));
        const char *own_ns = json_string_value(json_object_get(node, "namespace"));
        char full[512], inner[512];
        if (!name)
            return;
        full_name(name, own_ns ? own_ns : ns, full, sizeof full);
        snprintf(inner, sizeof inner, "%s", full);
        char *dot = strrchr(inner, '.');
        if (dot)
            *dot = '\0';
        else
            inner[0] = '\0';
        json_object_set_new(d->names, full, json_pack("{s:O,s:s}", "node", node, "ns", inner));
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(node, "fields"), i, f)
            collect(d, json_object_get(f, "type"), inner, depth + 1);
    } else if (strcmp(t, "array") == 0) {
        collect(d, json_object_get(node, "items"), ns, depth + 1);
    } else if (strcmp(t, "map") == 0) {
        collect(d, json_object_get(node, "values"), ns, depth + 1);
    }
}

/* A node with its namespace, after following references and wrappers like
 * {"type": "string", "logicalType": ...}. */
typedef struct ref_s {
    json_t *node;
    const char *ns;
    const char *kind; /* primitive name, record, enum, fixed, array, map, union, "?" */
    char name[512];   /* full name of a named type */
} ref_t;

/* Follows a schema node (reference, wrapper, union, named type) to what it
 * stands for; kind "?" when it cannot be resolved. Borrowed from d. */
static ref_t resolve(const doc_t *d, json_t *node, const char *ns, int depth)
{
    ref_t r = {node, ns, "?", ""};
    if (depth > 64 || !node)
        return r;
    if (json_is_array(node)) {
        r.kind = "union";
        return r;
    }
    if (json_is_string(node)) {
        const char *s = json_string_value(node);
        if (is_primitive(s)) {
            r.kind = s;
            return r;
        }
        char full[512];
        full_name(s, ns, full, sizeof full);
        json_t *e = json_object_get(d->names, full);
        if (!e)
            e = json_object_get(d->names, s);
        if (!e)
            return r;
        return resolve(d, json_object_get(e, "node"), json_string_value(json_object_get(e, "ns")),
                       depth + 1);
    }
    if (!json_is_object(node))
        return r;
    json_t *type = json_object_get(node, "type");
    const char *t = json_string_value(type);
    if (!t)
        return resolve(d, type, ns, depth + 1);
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0 || strcmp(t, "enum") == 0 ||
        strcmp(t, "fixed") == 0) {
        const char *name = json_string_value(json_object_get(node, "name"));
        const char *own = json_string_value(json_object_get(node, "namespace"));
        full_name(name ? name : "?", own ? own : ns, r.name, sizeof r.name);
        json_t *e = json_object_get(d->names, r.name);
        r.ns = e ? json_string_value(json_object_get(e, "ns")) : ns;
        r.kind = strcmp(t, "error") == 0 ? "record" : t;
        return r;
    }
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        r.kind = t;
        return r;
    }
    if (is_primitive(t)) {
        r.kind = t;
        return r;
    }
    return resolve(d, type, ns, depth + 1); /* a reference in "type" */
}

/* Writer primitive w can be read as reader primitive r (same, or promoted). */
static int promotable(const char *w, const char *r)
{
    if (strcmp(w, r) == 0)
        return 1;
    static const char *const ok[][2] = {
        {"int", "long"},    {"int", "float"},    {"int", "double"},   {"long", "float"},
        {"long", "double"}, {"float", "double"}, {"string", "bytes"}, {"bytes", "string"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(w, ok[i][0]) == 0 && strcmp(r, ok[i][1]) == 0)
            return 1;
    return 0;
}

/* The reader named type accepts the writer's name (same unqualified name,
 * or one of the reader's aliases). */
static int names_match(const ref_t *w, const ref_t *r)
{
    if (strcmp(short_name(w->name), short_name(r->name)) == 0)
        return 1;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(r->node, "aliases"), i, a)
    {
        const char *s = json_string_value(a);
        if (s && (strcmp(s, w->name) == 0 || strcmp(s, short_name(w->name)) == 0))
            return 1;
    }
    return 0;
}

/* Would the writer schema select this reader branch (same kind, name)? */
static int branch_matches(const ref_t *w, const ref_t *r)
{
    if (strcmp(w->kind, "record") == 0 || strcmp(w->kind, "enum") == 0 ||
        strcmp(w->kind, "fixed") == 0)
        return strcmp(w->kind, r->kind) == 0 && names_match(w, r);
    if (strcmp(w->kind, "array") == 0 || strcmp(w->kind, "map") == 0)
        return strcmp(w->kind, r->kind) == 0;
    return is_primitive(w->kind) && is_primitive(r->kind) && promotable(w->kind, r->kind);
}

typedef struct check_s {
    const doc_t *wd, *rd;
    const char *schema;
    const char *direction; /* backward: new reads old; forward: old reads new */
    json_t *problems;      /* array */
    json_t *visited;       /* "writer|reader" record pairs already compared */
    json_t *drop;          /* reader record full name -> {field: true} filled by defaults */
} check_t;

/* Appends a problem {schema, direction, field, message} to c->problems. */
static void problem(check_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(check_t *c, const char *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(c->problems, json_pack("{s:s,s:s,s:s,s:s}", "schema", c->schema,
                                                 "direction", c->direction, "field",
                                                 *path ? path : "(top level)", "message", msg));
}

/* A resolved type for messages: its full name, else its kind. */
static const char *describe(const ref_t *r)
{
    return r->name[0] ? r->name : r->kind;
}

/* Can data written as w be read as r? Appends one problem per reason it
 * cannot, naming the field path. */
static void compare(check_t *c, ref_t w, ref_t r, const char *path, int depth);

/* compare() of two nodes after resolving them in their documents. */
static void compare_node(check_t *c, json_t *wn, const char *wns, json_t *rn, const char *rns,
                         const char *path, int depth)
{
    compare(c, resolve(c->wd, wn, wns, 0), resolve(c->rd, rn, rns, 0), path, depth + 1);
}

/* Reader record fields against writer ones: matched by name or alias and
 * compared; a reader field the writer lacks needs a default (noted in
 * c->drop for the avro-c projection), else a problem. */
static void compare_record(check_t *c, const ref_t *w, const ref_t *r, const char *path, int depth)
{
    char key[1100];
    snprintf(key, sizeof key, "%s|%s|%s", w->name, r->name, path);
    if (json_object_get(c->visited, key))
        return; /* recursive type: compared already */
    json_object_set_new(c->visited, key, json_true());
    json_t *wf = json_object_get(w->node, "fields"), *rf = json_object_get(r->node, "fields");
    size_t i, k;
    json_t *f, *g;
    json_array_foreach(rf, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        char sub[1024];
        if (!name)
            continue;
        snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", name);
        json_t *match = NULL;
        json_array_foreach(wf, k, g)
        {
            const char *wname = json_string_value(json_object_get(g, "name"));
            if (wname && strcmp(wname, name) == 0)
                match = g;
        }
        size_t a;
        json_t *alias;
        json_array_foreach(json_object_get(f, "aliases"), a, alias)
        {
            json_array_foreach(wf, k, g)
            {
                const char *wname = json_string_value(json_object_get(g, "name"));
                if (!match && wname && json_is_string(alias) &&
                    strcmp(wname, json_string_value(alias)) == 0)
                    match = g;
            }
        }
        if (match) {
            compare_node(c, json_object_get(match, "type"), w->ns, json_object_get(f, "type"),
                         r->ns, sub, depth);
        } else if (json_object_get(f, "default")) {
            json_t *fields = json_object_get(c->drop, r->name);
            if (!fields) {
                fields = json_object();
                json_object_set_new(c->drop, r->name, fields);
            }
            json_object_set_new(fields, name, json_true());
        } else {
            if (strcmp(c->direction, "backward") == 0)
                problem(c, sub,
                        "the new schema adds this field without a default: events written "
                        "with the old schema cannot be read");
            else
                problem(c, sub,
                        "the new schema removes this field and the old schema gives it no "
                        "default: old readers cannot read new events");
        }
    }
}

static void compare(check_t *c, ref_t w, ref_t r, const char *path, int depth)
{
    if (depth > 64)
        return;
    if (strcmp(w.kind, "?") == 0 || strcmp(r.kind, "?") == 0) {
        problem(c, path, "cannot resolve the type (an unknown named type?)");
        return;
    }
    if (strcmp(w.kind, "union") == 0) {
        size_t i;
        json_t *b;
        json_array_foreach(w.node, i, b)
        {
            ref_t wb = resolve(c->wd, b, w.ns, 0);
            if (strcmp(r.kind, "union") == 0) {
                ref_t pick = {0};
                int found = 0;
                size_t k;
                json_t *rb;
                json_array_foreach(r.node, k, rb)
                {
                    ref_t cand = resolve(c->rd, rb, r.ns, 0);
                    if (!found && branch_matches(&wb, &cand)) {
                        pick = cand;
                        found = 1;
                    }
                }
                if (found)
                    compare(c, wb, pick, path, depth + 1);
                else
                    problem(c, path,
                            "the writer's union branch %s has no counterpart in the reader's union",
                            describe(&wb));
            } else if (branch_matches(&wb, &r)) {
                compare(c, wb, r, path, depth + 1);
            } else {
                problem(c, path, "the writer's union branch %s cannot be read as %s", describe(&wb),
                        describe(&r));
            }
        }
        return;
    }
    if (strcmp(r.kind, "union") == 0) {
        size_t k;
        json_t *rb;
        json_array_foreach(r.node, k, rb)
        {
            ref_t cand = resolve(c->rd, rb, r.ns, 0);
            if (branch_matches(&w, &cand)) {
                compare(c, w, cand, path, depth + 1);
                return;
            }
        }
        problem(c, path, "the writer's %s matches no branch of the reader's union", describe(&w));
        return;
    }
    if (!branch_matches(&w, &r)) {
        problem(c, path, "the writer's %s cannot be read as %s", describe(&w), describe(&r));
        return;
    }
    char sub[1024];
    if (strcmp(w.kind, "array") == 0) {
        snprintf(sub, sizeof sub, "%s[]", path);
        compare_node(c, json_object_get(w.node, "items"), w.ns, json_object_get(r.node, "items"),
                     r.ns, sub, depth);
    } else if (strcmp(w.kind, "map") == 0) {
        snprintf(sub, sizeof sub, "%s{}", path);
        compare_node(c, json_object_get(w.node, "values"), w.ns, json_object_get(r.node, "values"),
                     r.ns, sub, depth);
    } else if (strcmp(w.kind, "record") == 0) {
        compare_record(c, &w, &r, path, depth);
    } else if (strcmp(w.kind, "enum") == 0) {
        int has_default = json_object_get(r.node, "default") != NULL;
        size_t i, k;
        json_t *ws, *rs;
        json_array_foreach(json_object_get(w.node, "symbols"), i, ws)
        {
            int found = 0;
            json_array_foreach(json_object_get(r.node, "symbols"), k, rs) found |=
                json_equal(ws, rs);
            if (!found && !has_default)
                problem(
                    c, path,
                    "the writer's enum symbol %s is not in the reader's %s, which has no default",
                    json_string_value(ws) ? json_string_value(ws) : "?", describe(&r));
        }
    } else if (strcmp(w.kind, "fixed") == 0) {
        json_t *ws = json_object_get(w.node, "size"), *rs = json_object_get(r.node, "size");
        if (!json_equal(ws, rs))
            problem(c, path, "fixed %s has size %lld in the writer and %lld in the reader",
                    describe(&r), (long long)json_integer_value(ws),
                    (long long)json_integer_value(rs));
    }
}

/* Loads the JSON of a schema: its file when it has one (defaults and
 * aliases kept), else its canonical form. */
static int doc_load(const lev_schema_t *s, doc_t *d, int *from_canonical)
{
    const char *origin = lev_schema_origin(s);
    json_error_t jerr;
    d->root = origin ? json_load_file(origin, 0, &jerr) : NULL;
    *from_canonical = 0;
    if (d->root) {
        /* the file may hold another version than the one loaded: compare names */
        d->names = json_object();
        collect(d, d->root, NULL, 0);
        if (json_object_get(d->names, lev_schema_name(s)))
            return 0;
        json_decref(d->root);
        json_decref(d->names);
    }
    d->root = json_loads(lev_schema_canonical(s), 0, &jerr);
    *from_canonical = 1;
    if (!d->root)
        return -1;
    d->names = json_object();
    collect(d, d->root, NULL, 0);
    return 0;
}

/* Releases a document loaded by doc_load. */
static void doc_clear(doc_t *d)
{
    json_decref(d->root);
    json_decref(d->names);
    d->root = d->names = NULL;
}

/* Removes, in place, the fields listed in drop from the records of node. */
static void project(json_t *node, const char *ns, json_t *drop, int depth)
{
    if (depth > 64)
        return;
    if (json_is_array(node)) {
        size_t i;
        json_t *b;
        json_array_foreach(node, i, b) project(b, ns, drop, depth + 1);
        return;
    }
    if (!json_is_object(node))
        return;
    json_t *type = json_object_get(node, "type");
    const char *t = json_string_value(type);
    if (!t) {
        project(type, ns, drop, depth + 1);
    } else if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0) {
        const char *name = json_string_value(json_object_get(node, "name"));
        const char *own = json_string_value(json_object_get(node, "namespace"));
        char full[512], inner[512];
        full_name(name ? name : "?", own ? own : ns, full, sizeof full);
        snprintf(inner, sizeof inner, "%s", full);
        char *dot = strrchr(inner, '.');
        *(dot ? dot : inner) = '\0';
        json_t *gone = json_object_get(drop, full), *fields = json_object_get(node, "fields");
        for (size_t i = json_array_size(fields); i-- > 0;) {
            json_t *f = json_array_get(fields, i);
            const char *fname = json_string_value(json_object_get(f, "name"));
            if (fname && json_object_get(gone, fname))
                json_array_remove(fields, i);
            else
                project(json_object_get(f, "type"), inner, drop, depth + 1);
        }
    } else if (strcmp(t, "array") == 0) {
        project(json_object_get(node, "items"), ns, drop, depth + 1);
    } else if (strcmp(t, "map") == 0) {
        project(json_object_get(node, "values"), ns, drop, depth + 1);
    }
}

/* Asks avro-c to resolve writer to reader (reader given as JSON text) in a
 * child process. Returns 0 when it can; otherwise fills msg. */
static int avro_c_resolves(avro_schema_t writer, const char *reader_json, char *msg, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(msg, size, "cannot run avro-c's resolver (pipe failed)");
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(msg, size, "cannot run avro-c's resolver (fork failed)");
        return -1;
    }
    if (pid == 0) {
        char out[1024] = "";
        avro_schema_t reader = NULL;
        close(fds[0]);
        if (avro_schema_from_json_length(reader_json, strlen(reader_json), &reader) != 0) {
            snprintf(out, sizeof out, "the reader does not parse: %s", avro_strerror());
        } else {
            avro_value_iface_t *iface = avro_resolved_writer_new(writer, reader);
            if (!iface)
                snprintf(out, sizeof out, "%s", avro_strerror());
        }
        ssize_t w = write(fds[1], out, strlen(out));
        (void)w;
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && (n = read(fds[0], msg + got, size - got - 1)) > 0)
        got += (size_t)n;
    msg[got] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFSIGNALED(status)) {
        snprintf(msg, size,
                 "avro-c's resolver crashed on this pair (signal %d): it cannot read "
                 "these events",
                 WTERMSIG(status));
        return -1;
    }
    return got > 0 ? -1 : 0;
}

/* One direction: reader reads writer. Appends problems. */
static void check_direction(const char *schema, const char *direction, const lev_schema_t *ws,
                            const doc_t *wd, const doc_t *rd, json_t *problems)
{
    check_t c = {wd, rd, schema, direction, json_array(), json_object(), json_object()};
    json_t *wtop = json_object_get(json_object_get(wd->names, schema), "node");
    json_t *rtop = json_object_get(json_object_get(rd->names, schema), "node");
    compare(&c, resolve(wd, wtop ? wtop : wd->root, NULL, 0),
            resolve(rd, rtop ? rtop : rd->root, NULL, 0), "", 0);
    if (json_array_size(c.problems) == 0) {
        /* avro-c's resolver, on the reader without the fields defaults fill */
        json_t *reader = json_deep_copy(rd->root);
        project(reader, NULL, c.drop, 0);
        char *text = reader ? json_dumps(reader, JSON_COMPACT) : NULL;
        char msg[1024];
        if (text && avro_c_resolves(lev_schema_avro(ws), text, msg, sizeof msg) != 0)
            problem(&c, "", "avro-c cannot resolve: %s", msg);
        free(text);
        json_decref(reader);
    }
    json_array_extend(problems, c.problems);
    json_decref(c.problems);
    json_decref(c.visited);
    json_decref(c.drop);
}

int evctl_schema_readable(const lev_schema_t *writer, const lev_schema_t *reader)
{
    doc_t wd = {0}, rd = {0};
    int wc, rc_, ok = 0;
    json_t *problems = json_array();
    if (problems && doc_load(writer, &wd, &wc) == 0 && doc_load(reader, &rd, &rc_) == 0) {
        check_direction(lev_schema_name(reader), "backward", writer, &wd, &rd, problems);
        ok = json_array_size(problems) == 0;
    }
    doc_clear(&wd);
    doc_clear(&rd);
    json_decref(problems);
    return ok;
}

/* ======================================================================
 * schemas check
 * ====================================================================== */

static const evctl_opt_t check_opts[] = {
    {"against", "DIR",
     "the previous version: a directory of *.avsc (default: each schema "
     "directory's history/, backward only)",
     0},
    {NULL, NULL, NULL, 0},
};

/* Compares an old and a new version (backward, and forward when `both`)
 * into a new JSON result line in *out. Returns 0 or an exit code. */
static int check_pair(const lev_schema_t *old_s, const lev_schema_t *new_s, int both, json_t **out)
{
    doc_t od = {0}, nd = {0};
    int oc = 0, nc = 0;
    json_t *problems = json_array();
    const char *name = lev_schema_name(new_s);
    if (doc_load(old_s, &od, &oc) != 0 || doc_load(new_s, &nd, &nc) != 0) {
        doc_clear(&od);
        doc_clear(&nd);
        json_decref(problems);
        return evctl_fail(EVCTL_EXIT_INTERNAL, "%s: cannot read the schema JSON", name);
    }
    check_direction(name, "backward", old_s, &od, &nd, problems);
    if (both)
        check_direction(name, "forward", new_s, &nd, &od, problems);
    *out =
        json_pack("{s:s,s:s,s:s,s:o}", "schema", name, "status",
                  json_array_size(problems) ? "incompatible" : "compatible", "against",
                  lev_schema_origin(old_s) ? lev_schema_origin(old_s) : "-", "problems", problems);
    if (oc || nc)
        json_object_set_new(*out, "note",
                            json_string("schema file not found: compared canonical forms, which "
                                        "carry no defaults or aliases"));
    doc_clear(&od);
    doc_clear(&nd);
    return 0;
}

/* Prints a result line on stdout and its problems on stderr; sets *bad when
 * it has any (or the schema was removed). Steals the line. */
static void report(json_t *line, int *bad)
{
    json_t *problems = json_object_get(line, "problems");
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p)
    {
        fprintf(stderr, "evctl: %s: %s: %s: %s\n", json_string_value(json_object_get(p, "schema")),
                json_string_value(json_object_get(p, "direction")),
                json_string_value(json_object_get(p, "field")),
                json_string_value(json_object_get(p, "message")));
        *bad = 1;
    }
    const char *status = json_string_value(json_object_get(line, "status"));
    if (status && strcmp(status, "removed") == 0)
        *bad = 1;
    evctl_out(line);
}

/* evctl schemas check: returns an exit code. */
static int check_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    const char *against = evctl_opt(args, "against");
    lev_schemas_t *old = NULL;
    lev_error_t err;
    char buf[800];
    int rc, bad = 0, checked = 0;
    if ((rc = evctl_load_schemas(ctx)) != 0)
        return rc;
    if (against) {
        if (!(old = lev_schemas_new()))
            return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        if (lev_schemas_load_dir(old, against, 0, &err) != 0) {
            rc = evctl_fail(EVCTL_EXIT_DATA, "--against %s: %s", against,
                            lev_error_format(&err, buf, sizeof buf));
            goto out;
        }
        for (size_t i = 0; i < lev_schemas_count(old); i++) {
            const lev_schema_t *o = lev_schemas_at(old, i);
            const lev_schema_t *n = lev_schemas_find(ctx->schemas, lev_schema_name(o));
            json_t *line = NULL;
            if (!n) {
                line = json_pack("{s:s,s:s,s:[{s:s,s:s,s:s,s:s}]}", "schema", lev_schema_name(o),
                                 "status", "removed", "problems", "schema", lev_schema_name(o),
                                 "direction", "backward", "field", "(top level)", "message",
                                 "no current schema has this name: its events cannot be read");
            } else if ((rc = check_pair(o, n, 1, &line)) != 0) {
                goto out;
            }
            report(line, &bad);
            checked++;
        }
        for (size_t i = 0; i < lev_schemas_count(ctx->schemas); i++) {
            const lev_schema_t *n = lev_schemas_at(ctx->schemas, i);
            if (lev_schema_is_current(n) && !lev_schemas_find(old, lev_schema_name(n)))
                evctl_out(json_pack("{s:s,s:s,s:[]}", "schema", lev_schema_name(n), "status",
                                    "added", "problems"));
        }
    } else {
        /* every older version kept in history/ must stay readable */
        for (size_t i = 0; i < lev_schemas_count(ctx->schemas); i++) {
            const lev_schema_t *o = lev_schemas_at(ctx->schemas, i);
            if (lev_schema_is_current(o))
                continue;
            const lev_schema_t *n = lev_schemas_find(ctx->schemas, lev_schema_name(o));
            json_t *line = NULL;
            if (!n)
                continue;
            if ((rc = check_pair(o, n, 0, &line)) != 0)
                goto out;
            report(line, &bad);
            checked++;
        }
    }
    evctl_note(ctx, "%d schema%s checked: %s", checked, checked == 1 ? "" : "s",
               bad ? "INCOMPATIBLE (see above)" : "compatible");
    rc = bad ? EVCTL_EXIT_DATA : 0;
out:
    lev_schemas_destroy(old);
    return rc;
}

const evctl_cmd_t evctl_cmd_schemas_check = {
    "schemas check",
    "[--against DIR]",
    "check the current schemas against a previous version",
    "For every schema of DIR (the previous version), the current schema of the same name\n"
    "must read its events (backward: new reader, old writer) and the old schema must read\n"
    "events written with the current one (forward: old reader, new writer), by Avro's\n"
    "resolution rules: fields matched by name (or reader alias); a reader field the\n"
    "writer lacks needs a default; types equal or promotable (int->long->float->double,\n"
    "string<->bytes); every writer enum symbol known to the reader unless the reader enum\n"
    "has a default; union branches matched by kind and name; fixed sizes equal. A schema\n"
    "of DIR with no current version is incompatible (removed).\n"
    "Without --against, the older versions in the schema directories' history/ are\n"
    "checked, backward only (the current schema must read them).\n"
    "One JSON line per schema: {\"schema\",\"status\" (compatible, incompatible, removed,\n"
    "added),\"problems\":[{\"direction\",\"field\",\"message\"}]}; problems also go to stderr.\n"
    "Exit 65 when anything is incompatible.\n",
    check_opts,
    0,
    0,
    check_run,
};
