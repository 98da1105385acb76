/* evctl acls: the Kafka ACLs of least privilege, derived from the topics
 * description and applied idempotently. */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const evctl_opt_t opts[] = {
    {"dry-run", NULL, "print the ACLs and whether each exists; change nothing", 0},
    {NULL, NULL, NULL, 0},
};

/* One ACL to hold: ALLOW from any host. */
typedef struct acl_s {
    char *principal;
    rd_kafka_ResourceType_t type;
    char *resource;
    rd_kafka_ResourcePatternType_t pattern;
    rd_kafka_AclOperation_t op;
    const char *why; /* what it is for, in the output */
    const char *status;
    char error[256];
} acl_t;

typedef struct acls_s {
    acl_t *v;
    size_t n, cap;
} acls_t;

static int add(acls_t *a, const char *principal, rd_kafka_ResourceType_t type, const char *resource,
               rd_kafka_ResourcePatternType_t pattern, rd_kafka_AclOperation_t op, const char *why)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        acl_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    acl_t *x = &a->v[a->n];
    memset(x, 0, sizeof *x);
    x->principal = strdup(principal);
    x->resource = strdup(resource);
    if (!x->principal || !x->resource) {
        free(x->principal);
        free(x->resource);
        return -1;
    }
    x->type = type;
    x->pattern = pattern;
    x->op = op;
    x->why = why;
    x->status = "would-create";
    a->n++;
    return 0;
}

static void acls_clear(acls_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].principal);
        free(a->v[i].resource);
    }
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* Every ACL the description calls for. */
static int derive(const evctl_topology_t *t, acls_t *a)
{
    static const rd_kafka_AclOperation_t own_ops[] = {
        RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE,
        RD_KAFKA_ACL_OPERATION_CREATE, RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS};
    size_t i, k;
    json_t *g, *x;
    const rd_kafka_ResourcePatternType_t LIT = RD_KAFKA_RESOURCE_PATTERN_LITERAL;
    json_array_foreach(json_object_get(t->doc, "groups"), i, g)
    {
        const char *name = json_string_value(json_object_get(g, "name"));
        const char *p = json_string_value(json_object_get(g, "principal"));
        char principal[300], prefix[256];
        if (!name)
            continue;
        snprintf(principal, sizeof principal, "%s", p ? p : "");
        if (!p)
            snprintf(principal, sizeof principal, "User:%s", name);
        if (add(a, principal, RD_KAFKA_RESOURCE_GROUP, name, LIT, RD_KAFKA_ACL_OPERATION_READ,
                "its consumer group") ||
            add(a, principal, RD_KAFKA_RESOURCE_GROUP, name, LIT, RD_KAFKA_ACL_OPERATION_DESCRIBE,
                "its consumer group"))
            return -1;
        json_array_foreach(json_object_get(g, "reads"), k, x)
        {
            const char *topic = json_string_value(x);
            if (add(a, principal, RD_KAFKA_RESOURCE_TOPIC, topic, LIT, RD_KAFKA_ACL_OPERATION_READ,
                    "reads") ||
                add(a, principal, RD_KAFKA_RESOURCE_TOPIC, topic, LIT,
                    RD_KAFKA_ACL_OPERATION_DESCRIBE, "reads"))
                return -1;
        }
        json_array_foreach(json_object_get(g, "writes"), k, x)
        {
            const char *topic = json_string_value(x);
            if (add(a, principal, RD_KAFKA_RESOURCE_TOPIC, topic, LIT, RD_KAFKA_ACL_OPERATION_WRITE,
                    "writes") ||
                add(a, principal, RD_KAFKA_RESOURCE_TOPIC, topic, LIT,
                    RD_KAFKA_ACL_OPERATION_DESCRIBE, "writes") ||
                add(a, principal, RD_KAFKA_RESOURCE_TOPIC, topic, LIT,
                    RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS, "writes (its record size limit)"))
                return -1;
        }
        /* <group>.retry.<n> and <group>.dlq: the worker creates, writes and
         * reads them */
        snprintf(prefix, sizeof prefix, "%s.", name);
        for (k = 0; k < sizeof own_ops / sizeof own_ops[0]; k++)
            if (add(a, principal, RD_KAFKA_RESOURCE_TOPIC, prefix,
                    RD_KAFKA_RESOURCE_PATTERN_PREFIXED, own_ops[k],
                    "its retry and dead-letter topics"))
                return -1;
    }
    static const rd_kafka_AclOperation_t op_topic[] = {
        RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE,
        RD_KAFKA_ACL_OPERATION_CREATE, RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS};
    json_array_foreach(json_object_get(t->doc, "operators"), i, x)
    {
        const char *principal = json_string_value(x);
        for (k = 0; k < sizeof op_topic / sizeof op_topic[0]; k++)
            if (add(a, principal, RD_KAFKA_RESOURCE_TOPIC, "*", LIT, op_topic[k],
                    "operator: every topic"))
                return -1;
        if (add(a, principal, RD_KAFKA_RESOURCE_GROUP, "*", LIT, RD_KAFKA_ACL_OPERATION_DESCRIBE,
                "operator: every group (lag)") ||
            add(a, principal, RD_KAFKA_RESOURCE_GROUP, "*", LIT, RD_KAFKA_ACL_OPERATION_READ,
                "operator: every group (reading by assignment)"))
            return -1;
    }
    return 0;
}

static int same(const acl_t *a, const rd_kafka_AclBinding_t *b)
{
    return rd_kafka_AclBinding_restype(b) == a->type &&
           rd_kafka_AclBinding_resource_pattern_type(b) == a->pattern &&
           rd_kafka_AclBinding_operation(b) == a->op &&
           rd_kafka_AclBinding_permission_type(b) == RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW &&
           strcmp(rd_kafka_AclBinding_host(b), "*") == 0 &&
           strcmp(rd_kafka_AclBinding_name(b), a->resource) == 0 &&
           strcmp(rd_kafka_AclBinding_principal(b), a->principal) == 0;
}

/* A refusal of the admin request itself: the broker has no authorizer, or
 * our principal may not read or change ACLs. */
static int admin_fail(const char *what, rd_kafka_resp_err_t e, const char *text)
{
    if (e == RD_KAFKA_RESP_ERR_SECURITY_DISABLED)
        return evctl_fail(EVCTL_EXIT_DATA,
                          "%s: the cluster has no authorizer (authorizer.class.name): ACLs are "
                          "not enforced there",
                          what);
    if (e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED)
        return evctl_fail(EVCTL_EXIT_DATA,
                          "%s: refused: the principal evctl connects as may not %s ACLs; run it "
                          "as the cluster's admin",
                          what, strcmp(what, "describing ACLs") == 0 ? "describe" : "create");
    return evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: %s", what, text ? text : rd_kafka_err2str(e));
}

/* One DescribeAcls for all: without `unseen`, marks the ACLs that exist;
 * with it, counts the ACLs marked created that the broker does not list
 * yet. */
static int describe(evctl_ctx_t *ctx, rd_kafka_t *rk, acls_t *a, size_t *unseen)
{
    char errstr[512];
    int rc = 0;
    rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
        RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
        RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBEACLS);
    rd_kafka_event_t *ev = NULL;
    if (!f || !q || !o) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "describing ACLs: %s", f ? "out of memory" : errstr);
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(o, ctx->timeout_ms, errstr, sizeof errstr);
    rd_kafka_DescribeAcls(rk, f, o, q);
    ev = rd_kafka_queue_poll(q, ctx->timeout_ms + 5000);
    if (!ev) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "describing ACLs timed out");
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        rc = admin_fail("describing ACLs", rd_kafka_event_error(ev),
                        rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t n = 0;
    const rd_kafka_AclBinding_t **b =
        rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
    if (unseen)
        *unseen = 0;
    for (size_t i = 0; i < a->n; i++) {
        int found = 0;
        for (size_t k = 0; k < n && !found; k++)
            found = same(&a->v[i], b[k]);
        if (!unseen && found)
            a->v[i].status = "exists";
        else if (unseen && !found && strcmp(a->v[i].status, "created") == 0)
            (*unseen)++;
    }
out:
    rd_kafka_event_destroy(ev);
    if (f)
        rd_kafka_AclBinding_destroy(f);
    if (o)
        rd_kafka_AdminOptions_destroy(o);
    if (q)
        rd_kafka_queue_destroy(q);
    return rc;
}

/* Creates the ACLs marked would-create (one CreateAcls). */
static int create(evctl_ctx_t *ctx, rd_kafka_t *rk, acls_t *a)
{
    char errstr[512];
    int rc = 0, refused = 0;
    size_t n = 0, *idx = calloc(a->n ? a->n : 1, sizeof *idx);
    rd_kafka_AclBinding_t **nb = calloc(a->n ? a->n : 1, sizeof *nb);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATEACLS);
    rd_kafka_event_t *ev = NULL;
    if (!idx || !nb || !q || !o) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < a->n; i++) {
        acl_t *x = &a->v[i];
        if (strcmp(x->status, "would-create") != 0)
            continue;
        nb[n] = rd_kafka_AclBinding_new(x->type, x->resource, x->pattern, x->principal, "*", x->op,
                                        RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr, sizeof errstr);
        if (!nb[n]) {
            rc = evctl_fail(EVCTL_EXIT_DATA, "%s on %s: %s", x->principal, x->resource, errstr);
            goto out;
        }
        idx[n++] = i;
    }
    if (n == 0)
        goto out;
    rd_kafka_AdminOptions_set_request_timeout(o, ctx->timeout_ms, errstr, sizeof errstr);
    rd_kafka_CreateAcls(rk, nb, n, o, q);
    ev = rd_kafka_queue_poll(q, ctx->timeout_ms + 5000);
    if (!ev) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "creating ACLs timed out");
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        rc = admin_fail("creating ACLs", rd_kafka_event_error(ev), rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t nres = 0;
    const rd_kafka_acl_result_t **res =
        rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &nres);
    for (size_t r = 0; r < nres && r < n; r++) { /* results come in request order */
        acl_t *x = &a->v[idx[r]];
        const rd_kafka_error_t *e = rd_kafka_acl_result_error(res[r]);
        if (!e) {
            x->status = "created";
            continue;
        }
        x->status = "error";
        rd_kafka_resp_err_t code = rd_kafka_error_code(e);
        /* a refusal's own text is the broker's internal request dump */
        snprintf(x->error, sizeof x->error, "%s: %s", rd_kafka_err2name(code),
                 code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ? rd_kafka_err2str(code)
                                                                        : rd_kafka_error_string(e));
        if (code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
            code == RD_KAFKA_RESP_ERR_SECURITY_DISABLED)
            refused = code;
        else if (!rc)
            rc = EVCTL_EXIT_UNAVAILABLE;
    }
    if (refused)
        rc = admin_fail("creating ACLs", (rd_kafka_resp_err_t)refused, NULL);
out:
    rd_kafka_event_destroy(ev);
    for (size_t i = 0; nb && i < n; i++)
        rd_kafka_AclBinding_destroy(nb[i]);
    free(nb);
    free(idx);
    if (o)
        rd_kafka_AdminOptions_destroy(o);
    if (q)
        rd_kafka_queue_destroy(q);
    return rc;
}

static const char *op_name(rd_kafka_AclOperation_t op)
{
    switch (op) {
    case RD_KAFKA_ACL_OPERATION_READ:
        return "read";
    case RD_KAFKA_ACL_OPERATION_WRITE:
        return "write";
    case RD_KAFKA_ACL_OPERATION_CREATE:
        return "create";
    case RD_KAFKA_ACL_OPERATION_DESCRIBE:
        return "describe";
    case RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS:
        return "describe-configs";
    default:
        return rd_kafka_AclOperation_name(op);
    }
}

/* evctl acls: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    int dry = evctl_flag(args, "dry-run"), rc;
    evctl_topology_t t;
    acls_t a = {NULL, 0, 0};
    rd_kafka_t *rk = NULL;
    memset(&t, 0, sizeof t);
    if ((rc = evctl_topology_load(&t, ctx, -1, -1, -1)))
        return rc;
    if (derive(&t, &a) != 0) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        goto out;
    if ((rc = describe(ctx, rk, &a, NULL)) != 0)
        goto out;
    if (!dry)
        rc = create(ctx, rk, &a);
    /* the broker applies new ACLs from its metadata log a little later: say
     * they are created once it lists them (and so enforces them), so the
     * next command (evctl topics as the operator) finds them in force */
    int64_t deadline = lev_mono_ms() + ctx->timeout_ms;
    while (!dry && rc == 0) {
        size_t unseen = 0;
        if ((rc = describe(ctx, rk, &a, &unseen)) != 0 || unseen == 0)
            break;
        if (lev_mono_ms() >= deadline) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE,
                            "%zu created ACLs are not listed by the broker after %d ms", unseen,
                            ctx->timeout_ms);
            break;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int created = 0, existed = 0, planned = 0, failed = 0;
    for (size_t i = 0; i < a.n; i++) {
        const acl_t *x = &a.v[i];
        created += strcmp(x->status, "created") == 0;
        existed += strcmp(x->status, "exists") == 0;
        planned += strcmp(x->status, "would-create") == 0;
        failed += strcmp(x->status, "error") == 0;
        json_t *j = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "principal", x->principal, "resource_type",
            x->type == RD_KAFKA_RESOURCE_TOPIC ? "topic" : "group", "resource", x->resource,
            "pattern", x->pattern == RD_KAFKA_RESOURCE_PATTERN_PREFIXED ? "prefixed" : "literal",
            "operation", op_name(x->op), "permission", "allow", "for", x->why, "status", x->status);
        if (j && x->error[0])
            json_object_set_new(j, "error", json_string(x->error));
        evctl_out(j);
    }
    if (dry)
        evctl_note(ctx, "dry run (%s): %d ACLs to create, %d exist", t.path, planned, existed);
    else
        evctl_note(ctx, "%s: %d ACLs created, %d existed, %d failed", t.path, created, existed,
                   failed);
out:
    evctl_consumer_destroy(rk);
    evctl_topology_clear(&t);
    acls_clear(&a);
    return rc;
}

const evctl_cmd_t evctl_cmd_acls = {
    "acls",
    "[options]",
    "give each service and operator the Kafka ACLs it needs, and no more, idempotently",
    "Derives ACLs of least privilege from the topics description (tools/topics.json)\n"
    "and creates the missing ones (ALLOW, from any host). For each group, its\n"
    "principal (\"principal\", default User:<group>) may: read and describe the topics\n"
    "it \"reads\"; write, describe and read the configuration of those it \"writes\";\n"
    "read, write, describe, create and describe the configuration of the topics\n"
    "prefixed <group>. (its retry and dead-letter topics); read and describe its\n"
    "consumer group. Each of \"operators\" may read, write, describe, create and\n"
    "describe the configuration of every topic, and read and describe every group.\n"
    "Nothing else is granted, and ACLs that exist are left alone (none is deleted).\n"
    "The broker must enforce ACLs (an authorizer) and evctl must connect as a\n"
    "principal that may change them (the cluster's admin). One JSON line per ACL:\n"
    "{\"principal\",\"resource_type\" (topic, group),\"resource\",\"pattern\" (literal,\n"
    "prefixed),\"operation\",\"permission\",\"for\",\"status\" (created, exists,\n"
    "would-create, error),\"error\"}. It returns once the broker lists the ACLs it\n"
    "created (a broker applies new ACLs a moment after taking them), so a command run\n"
    "next finds them in force; exit 69 if they are not listed within --timeout.\n"
    "Running it again is harmless.\n",
    opts,
    0,
    0,
    run,
};
