/*
 * evctl and the schema registry: the subjects each current schema is
 * written under, `evctl schemas register`, the reasons behind an
 * incompatibility, and the dry-run check of `evctl publish --wire
 * confluent` (evctl_registry_would_accept).
 *
 * Subjects follow the registry's naming strategy
 * (LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY): with `record`, one subject per
 * schema (its full name); with `topic` or `topic_record`, one per topic of
 * the topics description whose "types" patterns match the schema's name.
 */
#include "evctl.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ======================================================================
 * Errors
 * ====================================================================== */

/* Fills err (may be NULL) and returns code. */
static int set_err(lev_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(lev_error_t *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->where[0] = '\0';
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return code;
}

int evctl_registry_fail(evctl_ctx_t *ctx, const char *subject, const lev_error_t *err)
{
    char buf[800];
    lev_error_format(err, buf, sizeof buf);
    if (err->code == LEV_ERR_NOMEM)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if (err->code == LEV_ERR_REGISTRY)
        return evctl_fail(EVCTL_EXIT_UNAVAILABLE, "schema registry %s unavailable: %s",
                          lev_registry_url(ctx->registry), buf);
    return evctl_fail(EVCTL_EXIT_UNAVAILABLE, "schema registry %s, subject %s: %s (%s)",
                      lev_registry_url(ctx->registry), subject, buf, lev_err_name(err->code));
}

/* ======================================================================
 * Subjects
 * ====================================================================== */

/* 1 when one of the "types" patterns of a topic entry matches `name`. */
static int topic_takes(json_t *topic, const char *name)
{
    size_t k;
    json_t *pat;
    json_array_foreach(json_object_get(topic, "types"), k, pat)
    {
        const char *p = json_string_value(pat);
        if (p && fnmatch(p, name, 0) == 0)
            return 1;
    }
    return 0;
}

/* Calls fn for one (schema, topic) pair. */
static int one_subject(evctl_ctx_t *ctx, const lev_schema_t *schema, const char *topic,
                       evctl_subject_fn fn, void *opaque)
{
    char subject[1024];
    if (lev_registry_subject(lev_registry_strategy(ctx->registry), topic, lev_schema_name(schema),
                             subject, sizeof subject) != 0)
        return evctl_fail(EVCTL_EXIT_DATA, "%s%s%s: no subject can be named (too long?)",
                          lev_schema_name(schema), topic ? " on " : "", topic ? topic : "");
    return fn(ctx, opaque, schema, subject, topic);
}

int evctl_registry_foreach_subject(evctl_ctx_t *ctx, evctl_subject_fn fn, void *opaque)
{
    int by_record = lev_registry_strategy(ctx->registry) == LEV_SUBJECT_RECORD, rc = 0;
    evctl_topology_t t;
    memset(&t, 0, sizeof t);
    if (!by_record && (rc = evctl_topology_load(&t, ctx, -1, -1, -1)) != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < lev_schemas_count(ctx->schemas); i++) {
        const lev_schema_t *s = lev_schemas_at(ctx->schemas, i);
        if (!lev_schema_is_current(s) || evctl_stop)
            continue;
        if (by_record) {
            rc = one_subject(ctx, s, NULL, fn, opaque);
            continue;
        }
        size_t k, found = 0;
        json_t *topic;
        json_array_foreach(json_object_get(t.doc, "topics"), k, topic)
        {
            if (rc != 0 || !topic_takes(topic, lev_schema_name(s)))
                continue;
            found++;
            rc = one_subject(ctx, s, json_string_value(json_object_get(topic, "name")), fn, opaque);
        }
        if (!found)
            evctl_note(ctx, "%s: no topic of %s takes this type (\"types\"): skipped",
                       lev_schema_name(s), t.path);
    }
    evctl_topology_clear(&t);
    if (rc == 0 && evctl_stop)
        rc = EVCTL_EXIT_INTERRUPTED;
    return rc;
}

/* ======================================================================
 * Why a schema is incompatible
 * ====================================================================== */

typedef struct explain_s {
    const char *direction;
    json_t *list;
} explain_t;

/* lev_schema_problem_fn: "backward: field: text" into the list. */
static void add_reason(void *opaque, const char *where, const char *text)
{
    explain_t *e = opaque;
    json_array_append_new(
        e->list, json_sprintf("%s: %s: %s", e->direction, *where ? where : "(top level)", text));
}

/* libevents' check of `schema` against the latest version of `subject`
 * in the direction(s) of the subject's compatibility level (BACKWARD*:
 * the new schema reads the latest; FORWARD*: the latest reads the new;
 * FULL*: both), its problems appended to list. Best effort: says nothing
 * when the registry does not answer or the latest version does not parse. */
static void explain(evctl_ctx_t *ctx, const char *subject, const lev_schema_t *schema, json_t *list)
{
    char level[64], *text = NULL;
    lev_error_t err;
    const lev_schema_t *old = NULL;
    lev_schemas_t *set = NULL;
    if (lev_registry_get_compatibility(ctx->registry, subject, level, sizeof level, &err) != 0 ||
        lev_registry_latest(ctx->registry, subject, &text, NULL, NULL, &err) != 0 ||
        !(set = lev_schemas_new()) ||
        lev_schemas_add(set, text, strlen(text), "registry", LEV_SCHEMA_WRITER_ONLY, &old, &err) !=
            0)
        goto out;
    int backward = strncasecmp(level, "BACKWARD", 8) == 0 || strncasecmp(level, "FULL", 4) == 0;
    int forward = strncasecmp(level, "FORWARD", 7) == 0 || strncasecmp(level, "FULL", 4) == 0;
    explain_t e = {"backward", list};
    if (backward)
        lev_schema_check_resolvable_all(old, schema, add_reason, &e, &err);
    e.direction = "forward";
    if (forward)
        lev_schema_check_resolvable_all(schema, old, add_reason, &e, &err);
out:
    lev_schemas_destroy(set);
    free(text);
}

json_t *evctl_registry_problems(evctl_ctx_t *ctx, const char *subject, const lev_schema_t *schema,
                                const char *reasons)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    for (const char *p = reasons; p && *p;) {
        const char *end = strstr(p, "; ");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len)
            json_array_append_new(list, json_stringn(p, len));
        p = end ? end + 2 : NULL;
    }
    if (json_array_size(list) == 0)
        explain(ctx, subject, schema, list);
    return list;
}

/* The problems as one text ("; "-separated) into buf. */
static void problems_text(json_t *list, char *buf, size_t size)
{
    size_t i, len = 0;
    json_t *p;
    buf[0] = '\0';
    json_array_foreach(list, i, p)
    {
        int n = snprintf(buf + len, size - len, "%s%s", len ? "; " : "", json_string_value(p));
        if (n < 0 || (size_t)n >= size - len)
            break;
        len += (size_t)n;
    }
}

/* ======================================================================
 * Dry run of publish --wire confluent
 * ====================================================================== */

/* An answer already had: asked once per subject and schema. */
typedef struct accepted_s {
    struct accepted_s *next;
    const lev_registry_t *reg;
    const lev_schema_t *schema;
    lev_error_t err; /* code 0: accepted */
    char subject[];
} accepted_t;

static accepted_t *accepted;

int evctl_registry_would_accept(evctl_ctx_t *ctx, const char *topic, const lev_schema_t *schema,
                                lev_error_t *err)
{
    char subject[1024];
    lev_error_t e;
    memset(&e, 0, sizeof e);
    if (err)
        memset(err, 0, sizeof *err);
    if (!ctx->registry)
        return set_err(err, LEV_ERR_STATE, "no schema registry configured");
    if (lev_registry_subject(lev_registry_strategy(ctx->registry), topic, lev_schema_name(schema),
                             subject, sizeof subject) != 0)
        return set_err(err, LEV_ERR_ARG, "no subject can be named for %s on %s",
                       lev_schema_name(schema), topic ? topic : "(no topic)");
    for (accepted_t *a = accepted; a; a = a->next) {
        if (a->reg == ctx->registry && a->schema == schema && strcmp(a->subject, subject) == 0) {
            if (err)
                *err = a->err;
            return a->err.code;
        }
    }
    const char *text = lev_schema_text(schema, NULL);
    int32_t id;
    int compatible = 0, rc = lev_registry_lookup(ctx->registry, subject, text, &id, NULL, &e);
    if (rc == 0) {
        lev_codec_bind_id(ctx->codec, schema, id);
    } else if (rc == LEV_ERR_NOT_FOUND) {
        char *reasons = NULL;
        memset(&e, 0, sizeof e);
        rc = lev_registry_check(ctx->registry, subject, text, &compatible, &reasons, &e);
        if (rc == 0 && !compatible) {
            json_t *list = evctl_registry_problems(ctx, subject, schema, reasons);
            char why[400];
            problems_text(list, why, sizeof why);
            json_decref(list);
            rc = set_err(&e, LEV_ERR_RESOLVE,
                         "the schema registry would refuse %s under subject %s: incompatible "
                         "with its latest version%s%s",
                         lev_schema_name(schema), subject, why[0] ? ": " : "", why);
        }
        free(reasons);
    }
    if (err)
        *err = e;
    if (rc != 0 && rc != LEV_ERR_RESOLVE)
        return rc; /* not remembered: may pass */
    accepted_t *a = calloc(1, sizeof *a + strlen(subject) + 1);
    if (a) {
        a->reg = ctx->registry;
        a->schema = schema;
        a->err = e;
        a->err.code = rc;
        memcpy(a->subject, subject, strlen(subject) + 1);
        a->next = accepted;
        accepted = a;
    }
    return rc;
}

/* ======================================================================
 * schemas register
 * ====================================================================== */

static const char *const levels[] = {
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL",     "FULL_TRANSITIVE",     "NONE",    NULL,
};

typedef struct reg_run_s {
    const char *level; /* --compatibility, upper case; NULL: leave it */
    int dry;
    size_t subjects, registered, refused, would;
} reg_run_t;

/* A result line {"subject","schema","topic","id","status"}. */
static json_t *reg_line(const lev_schema_t *schema, const char *subject, const char *topic,
                        int32_t id, const char *status)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:s}", "subject", subject, "schema", lev_schema_name(schema),
                     "topic", topic ? json_string(topic) : json_null(), "id",
                     id >= 0 ? json_integer(id) : json_null(), "status", status);
}

/* --dry-run of one subject: looked up, else checked. */
static int dry_one(evctl_ctx_t *ctx, reg_run_t *r, const lev_schema_t *schema, const char *subject,
                   const char *topic)
{
    const char *text = lev_schema_text(schema, NULL);
    lev_error_t err;
    char level[64];
    int32_t id = -1;
    int compatible = 0, rc;
    memset(&err, 0, sizeof err);
    if (r->level) {
        rc = lev_registry_get_compatibility(ctx->registry, subject, level, sizeof level, &err);
        if (rc == LEV_ERR_REGISTRY)
            return evctl_registry_fail(ctx, subject, &err);
        if (rc == 0 && strcasecmp(level, r->level) != 0)
            evctl_note(ctx,
                       "%s: dry run: the compatibility level stays %s (not set to %s), and the "
                       "check below is against it",
                       subject, level, r->level);
    }
    rc = lev_registry_lookup(ctx->registry, subject, text, &id, NULL, &err);
    if (rc == 0) {
        r->registered++;
        evctl_out(reg_line(schema, subject, topic, id, "registered"));
        return 0;
    }
    if (rc != LEV_ERR_NOT_FOUND)
        return evctl_registry_fail(ctx, subject, &err);
    char *reasons = NULL;
    if ((rc = lev_registry_check(ctx->registry, subject, text, &compatible, &reasons, &err)) != 0)
        return evctl_registry_fail(ctx, subject, &err);
    json_t *line =
        reg_line(schema, subject, topic, -1, compatible ? "would register" : "incompatible");
    if (!compatible) {
        json_t *problems = evctl_registry_problems(ctx, subject, schema, reasons);
        char why[400];
        problems_text(problems, why, sizeof why);
        json_object_set_new(
            line, "message",
            json_string(why[0] ? why : "incompatible with the subject's latest version"));
        json_decref(problems);
        fprintf(stderr, "evctl: %s: %s would be refused: %s\n", subject, lev_schema_name(schema),
                why[0] ? why : "incompatible with the latest version");
        r->refused++;
    } else {
        r->would++;
    }
    free(reasons);
    evctl_out(line);
    return 0;
}

/* evctl_subject_fn: registers one schema under one subject. */
static int register_one(evctl_ctx_t *ctx, void *opaque, const lev_schema_t *schema,
                        const char *subject, const char *topic)
{
    reg_run_t *r = opaque;
    lev_error_t err;
    int32_t id = -1;
    int rc;
    memset(&err, 0, sizeof err);
    r->subjects++;
    if (r->dry)
        return dry_one(ctx, r, schema, subject, topic);
    if (r->level &&
        (rc = lev_registry_set_compatibility(ctx->registry, subject, r->level, &err)) != 0)
        return evctl_registry_fail(ctx, subject, &err);
    rc = lev_registry_register(ctx->registry, subject, lev_schema_text(schema, NULL), &id, &err);
    if (rc == LEV_ERR_RESOLVE || rc == LEV_ERR_SCHEMA) {
        json_t *line = reg_line(schema, subject, topic, -1, "refused");
        json_object_set_new(line, "message", json_string(err.text));
        fprintf(stderr, "evctl: %s: %s refused: %s\n", subject, lev_schema_name(schema), err.text);
        r->refused++;
        evctl_out(line);
        return 0;
    }
    if (rc != 0)
        return evctl_registry_fail(ctx, subject, &err);
    r->registered++;
    evctl_out(reg_line(schema, subject, topic, id, "registered"));
    return 0;
}

static const evctl_opt_t register_opts[] = {
    {"compatibility", "LEVEL",
     "set each subject's compatibility level first: BACKWARD, BACKWARD_TRANSITIVE, FORWARD, "
     "FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or NONE",
     0},
    {"dry-run", NULL, "register nothing: say what is registered already and what would be refused",
     0},
    {NULL, NULL, NULL, 0},
};

/* evctl schemas register: returns an exit code. */
static int register_run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    reg_run_t r;
    memset(&r, 0, sizeof r);
    r.dry = evctl_flag(args, "dry-run");
    const char *level = evctl_opt(args, "compatibility");
    if (level) {
        for (size_t i = 0; levels[i] && !r.level; i++)
            if (strcasecmp(level, levels[i]) == 0)
                r.level = levels[i];
        if (!r.level)
            return evctl_fail(EVCTL_EXIT_USAGE,
                              "--compatibility: expected BACKWARD, BACKWARD_TRANSITIVE, FORWARD, "
                              "FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or NONE, got \"%s\"",
                              level);
    }
    int rc = evctl_need_registry(ctx);
    if (rc != 0)
        return rc;
    rc = evctl_registry_foreach_subject(ctx, register_one, &r);
    if (rc != 0)
        return rc;
    if (r.dry)
        evctl_note(ctx,
                   "dry run: %zu subject%s: %zu registered already, %zu would be, %zu would "
                   "be refused; nothing registered",
                   r.subjects, r.subjects == 1 ? "" : "s", r.registered, r.would, r.refused);
    else
        evctl_note(ctx, "%zu subject%s: %zu registered, %zu refused%s", r.subjects,
                   r.subjects == 1 ? "" : "s", r.registered, r.refused,
                   r.refused ? " (see above)" : "");
    return r.refused ? EVCTL_EXIT_DATA : 0;
}

const evctl_cmd_t evctl_cmd_schemas_register = {
    "schemas register",
    "[--compatibility LEVEL] [--dry-run]",
    "register the current schemas in the schema registry",
    "Registers every current schema (not the older versions of history/) in the schema\n"
    "registry (--registry URL or LEV_SCHEMA_REGISTRY_URL) under each subject it is written\n"
    "under, as producers with --wire confluent do: its JSON text, defaults and docs included.\n"
    "Subjects follow LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY: `topic` (the default) gives\n"
    "<topic>-value and `topic_record` <topic>-<full name>, for every topic of the topics\n"
    "description whose \"types\" patterns match the schema's full name (a schema no topic\n"
    "takes is noted on stderr and skipped); `record` gives one subject per schema, its\n"
    "full name. Registering a schema that is registered already gives its id again.\n"
    "With --compatibility, each subject's compatibility level is set first (registries\n"
    "differ in their default: Confluent's is BACKWARD, Apicurio's NONE); the registry then\n"
    "refuses a schema that breaks it.\n"
    "One JSON line per subject: {\"subject\",\"schema\",\"topic\" (null with the record\n"
    "strategy),\"id\" (null unless registered),\"status\" (registered, refused),\"message\"\n"
    "(the registry's reason, when refused)}. A refused schema does not stop the others;\n"
    "the exit code is then 65.\n"
    "--dry-run changes nothing (not even the compatibility level: the check uses the\n"
    "subject's current one): status registered (with its id), would register, or\n"
    "incompatible (exit 65), with the reasons in \"message\" -- the registry's, or when it\n"
    "gives none (Apicurio), libevents' check against the latest version in the\n"
    "direction(s) of the subject's level.\n"
    "No registry configured: exit 64. The registry unreachable or failing: exit 69.\n",
    register_opts,
    0,
    0,
    register_run,
};
