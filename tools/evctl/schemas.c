/*
 * evctl schemas list | check.
 *
 * check: schema resolution in both directions between the current schemas
 * and a previous version -- backward (the new reader reads events written
 * with the old schema) and forward (the old reader reads events written
 * with the new schema) -- by libevents' lev_schema_check_resolvable_all:
 * the Avro specification's rules exactly as the services' decoder applies
 * them, so "compatible" here means the services will read the events.
 * With --registry URL, check compares with the schema registry instead:
 * each current schema against the latest version of its subjects, by the
 * registry's own compatibility check (registry.c names the subjects).
 */
#include "evctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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
 * Compatibility: libevents' check, in both directions
 * ====================================================================== */

typedef struct problems_s {
    const char *schema;
    const char *direction; /* backward: new reads old; forward: old reads new */
    json_t *list;          /* {schema, direction, field, message} */
} problems_t;

/* lev_schema_problem_fn: appends a problem to the list. */
static void add_problem(void *opaque, const char *where, const char *text)
{
    problems_t *p = opaque;
    json_array_append_new(p->list, json_pack("{s:s,s:s,s:s,s:s}", "schema", p->schema, "direction",
                                             p->direction, "field", *where ? where : "(top level)",
                                             "message", text));
}

/* One direction, reader reads writer: appends its problems. Returns 0 or
 * an exit code. */
static int check_direction(const char *schema, const char *direction, const lev_schema_t *writer,
                           const lev_schema_t *reader, json_t *list)
{
    problems_t p = {schema, direction, list};
    lev_error_t err;
    int rc = lev_schema_check_resolvable_all(writer, reader, add_problem, &p, &err);
    if (rc != 0 && rc != LEV_ERR_RESOLVE)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "%s: %s", schema, err.text);
    return 0;
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
    json_t *problems = json_array();
    const char *name = lev_schema_name(new_s);
    int rc = problems ? 0 : evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if (rc == 0)
        rc = check_direction(name, "backward", old_s, new_s, problems);
    if (rc == 0 && both)
        rc = check_direction(name, "forward", new_s, old_s, problems);
    if (rc != 0) {
        json_decref(problems);
        return rc;
    }
    *out =
        json_pack("{s:s,s:s,s:s,s:o}", "schema", name, "status",
                  json_array_size(problems) ? "incompatible" : "compatible", "against",
                  lev_schema_origin(old_s) ? lev_schema_origin(old_s) : "-", "problems", problems);
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

/* ======================================================================
 * schemas check --registry URL
 * ====================================================================== */

typedef struct reg_check_s {
    int checked, bad;
} reg_check_t;

/* evctl_subject_fn: compares one schema with the latest version of one
 * subject, prints its line. Returns 0 or an exit code. */
static int check_subject(evctl_ctx_t *ctx, void *opaque, const lev_schema_t *schema,
                         const char *subject, const char *topic)
{
    reg_check_t *r = opaque;
    const char *text = lev_schema_text(schema, NULL), *status;
    lev_error_t err;
    int32_t latest_id = -1, id = -1;
    int latest_version = -1, version = -1, compatible = 0;
    char *reasons = NULL;
    json_t *problems = NULL;
    memset(&err, 0, sizeof err);
    int rc = lev_registry_latest(ctx->registry, subject, NULL, &latest_id, &latest_version, &err);
    if (rc == LEV_ERR_NOT_FOUND) {
        status = "new subject";
    } else if (rc != 0) {
        return evctl_registry_fail(ctx, subject, &err);
    } else if ((rc = lev_registry_lookup(ctx->registry, subject, text, &id, &version, &err)) == 0) {
        status = "registered";
    } else if (rc != LEV_ERR_NOT_FOUND) {
        return evctl_registry_fail(ctx, subject, &err);
    } else if (lev_registry_check(ctx->registry, subject, text, &compatible, &reasons, &err) != 0) {
        return evctl_registry_fail(ctx, subject, &err);
    } else if (compatible) {
        status = "compatible";
    } else {
        status = "incompatible";
        problems = evctl_registry_problems(ctx, subject, schema, reasons);
    }
    free(reasons);
    if (!problems)
        problems = json_array();
    json_t *line = json_pack(
        "{s:s,s:s,s:o,s:s,s:o,s:o,s:o}", "schema", lev_schema_name(schema), "subject", subject,
        "topic", topic ? json_string(topic) : json_null(), "status", status, "latest_version",
        latest_version >= 0 ? json_integer(latest_version) : json_null(), "latest_id",
        latest_id >= 0 ? json_integer(latest_id) : json_null(), "problems", problems);
    if (line && version >= 0) {
        json_object_set_new(line, "id", json_integer(id));
        json_object_set_new(line, "version", json_integer(version));
    }
    if (strcmp(status, "incompatible") == 0) {
        size_t i;
        json_t *p;
        fprintf(stderr, "evctl: %s: %s: incompatible with version %d\n", lev_schema_name(schema),
                subject, latest_version);
        json_array_foreach(problems, i, p) fprintf(
            stderr, "evctl: %s: %s: %s\n", lev_schema_name(schema), subject, json_string_value(p));
        r->bad = 1;
    }
    r->checked++;
    evctl_out(line);
    return 0;
}

/* schemas check --registry URL: returns an exit code. */
static int check_registry(evctl_ctx_t *ctx)
{
    reg_check_t r = {0, 0};
    int rc = evctl_need_registry(ctx);
    if (rc == 0)
        rc = evctl_registry_foreach_subject(ctx, check_subject, &r);
    if (rc != 0)
        return rc;
    evctl_note(ctx, "%d subject%s checked against the schema registry: %s", r.checked,
               r.checked == 1 ? "" : "s", r.bad ? "INCOMPATIBLE (see above)" : "compatible");
    return r.bad ? EVCTL_EXIT_DATA : 0;
}

/* evctl schemas check: returns an exit code. */
static int check_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    const char *against = evctl_opt(args, "against");
    lev_schemas_t *old = NULL;
    lev_error_t err;
    char buf[800];
    int rc, bad = 0, checked = 0;
    if (evctl_opt(args, "registry")) {
        if (against)
            return evctl_fail(EVCTL_EXIT_USAGE,
                              "--against and --registry: check against one or the other");
        return check_registry(ctx);
    }
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
    "[--against DIR | --registry URL]",
    "check the current schemas against a previous version or the registry",
    "For every schema of DIR (the previous version), the current schema of the same name\n"
    "must read its events (backward: new reader, old writer) and the old schema must read\n"
    "events written with the current one (forward: old reader, new writer), by Avro's\n"
    "resolution rules as the services' decoder applies them: records and enums matched by\n"
    "unqualified name, fixed by full name and size, fields by name (aliases are not used);\n"
    "a reader field the writer lacks needs a default; types equal or promoted\n"
    "(int->long->float->double; string and bytes are not promoted); every writer enum\n"
    "symbol known to the reader unless the reader enum has a default; every branch of a\n"
    "writer union readable. A schema of DIR with no current version is incompatible\n"
    "(removed).\n"
    "Without --against, the older versions in the schema directories' history/ are\n"
    "checked, backward only (the current schema must read them).\n"
    "One JSON line per schema: {\"schema\",\"status\" (compatible, incompatible, removed,\n"
    "added),\"problems\":[{\"direction\",\"field\",\"message\"}]}; problems also go to stderr.\n"
    "Exit 65 when anything is incompatible.\n"
    "\n"
    "With --registry URL (the common option: the schema registry; not with --against),\n"
    "each current schema is compared with the latest version of every subject it is\n"
    "written under (as `evctl schemas register` names them, by\n"
    "LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY and the topics description), by the registry's\n"
    "own compatibility check at the subject's level. Nothing is registered. One JSON line\n"
    "per subject: {\"schema\",\"subject\",\"topic\",\"status\" (registered: identical to a\n"
    "registered version, also giving its \"id\" and \"version\"; compatible; incompatible;\n"
    "new subject),\"latest_version\",\"latest_id\",\"problems\":[reasons]}: the registry's\n"
    "reasons, or when it gives none (Apicurio), libevents' check against the latest\n"
    "version in the direction(s) of the subject's level (\"backward: field: reason\").\n"
    "Exit 65 when a subject is incompatible, 69 when the registry is unreachable.\n",
    check_opts,
    0,
    0,
    check_run,
};
