/* evctl topics: create the workflow's topics from the description,
 * idempotently. */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>

static const evctl_opt_t opts[] = {
    {"partitions", "N", "partitions of every topic (overrides the description)", 0},
    {"replication-factor", "N", "replication factor of every topic (overrides the description)", 0},
    {"retry-levels", "N",
     "retry topics per group (default: the description, else one per "
     "LEV_RETRY_DELAYS entry)",
     0},
    {"dry-run", NULL, "print what would be created; change nothing", 0},
    {NULL, NULL, NULL, 0},
};

typedef struct status_s {
    const char *status; /* created, exists, would-create, partition-mismatch, error */
    int actual;         /* partitions on the broker, 0 unknown */
    char error[256];
} status_t;

/* Classifies a CreateTopics error: bad request (65) or broker trouble (69). */
static int error_code(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
        return EVCTL_EXIT_DATA;
    default:
        return EVCTL_EXIT_UNAVAILABLE;
    }
}

/* Creates the topics marked would-create; fills their status. */
static int create(evctl_ctx_t *ctx, rd_kafka_t *rk, const evctl_topology_t *t, status_t *st)
{
    size_t n = 0;
    int rc = 0;
    char errstr[512];
    rd_kafka_NewTopic_t **nt = calloc(t->ntopics ? t->ntopics : 1, sizeof *nt);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;
    if (!nt) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->ntopics; i++) {
        if (strcmp(st[i].status, "would-create") != 0)
            continue;
        const evctl_topic_spec_t *s = &t->topics[i];
        nt[n] =
            rd_kafka_NewTopic_new(s->name, s->partitions, s->replication, errstr, sizeof errstr);
        if (!nt[n]) {
            rc = evctl_fail(EVCTL_EXIT_DATA, "%s: %s", s->name, errstr);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(s->config, k, v)
        {
            if (rd_kafka_NewTopic_set_config(nt[n], k, json_string_value(v)) != 0) {
                rc = evctl_fail(EVCTL_EXIT_DATA, "%s: config %s rejected", s->name, k);
                n++;
                goto out;
            }
        }
        n++;
    }
    if (n == 0)
        goto out;
    rd_kafka_AdminOptions_set_operation_timeout(o, ctx->timeout_ms, errstr, sizeof errstr);
    rd_kafka_AdminOptions_set_request_timeout(o, ctx->timeout_ms, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, nt, n, o, q);
    ev = rd_kafka_queue_poll(q, ctx->timeout_ms * 2 + 5000);
    if (!ev) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "creating topics timed out");
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "creating topics: %s",
                        rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t nres = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);
    for (size_t r = 0; r < nres; r++) {
        const char *name = rd_kafka_topic_result_name(res[r]);
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[r]);
        for (size_t i = 0; i < t->ntopics; i++) {
            if (strcmp(t->topics[i].name, name) != 0)
                continue;
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                st[i].status = "created";
            } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                st[i].status = "exists"; /* created meanwhile: checked below */
                st[i].actual = 0;
            } else {
                st[i].status = "error";
                snprintf(st[i].error, sizeof st[i].error, "%s",
                         rd_kafka_topic_result_error_string(res[r])
                             ? rd_kafka_topic_result_error_string(res[r])
                             : rd_kafka_err2str(e));
                if (!rc || error_code(e) == EVCTL_EXIT_UNAVAILABLE)
                    rc = error_code(e);
            }
        }
    }
out:
    rd_kafka_event_destroy(ev);
    if (nt) {
        rd_kafka_NewTopic_destroy_array(nt, n);
        free(nt);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* evctl topics: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    long long parts, repl, levels;
    int dry = evctl_flag(args, "dry-run"), rc;
    evctl_topology_t t;
    status_t *st = NULL;
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    memset(&t, 0, sizeof t);
    if ((rc = evctl_opt_long(args, "partitions", 1, 100000, -1, &parts)) ||
        (rc = evctl_opt_long(args, "replication-factor", 1, 32767, -1, &repl)) ||
        (rc = evctl_opt_long(args, "retry-levels", 0, LEV_RETRY_LEVELS_MAX, -1, &levels)))
        return rc;
    if ((rc = evctl_topology_load(&t, ctx, (int)parts, (int)repl, (int)levels)))
        return rc;
    if (!(st = calloc(t.ntopics ? t.ntopics : 1, sizeof *st))) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        goto out;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, ctx->timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "metadata: %s", rd_kafka_err2str(e));
        goto out;
    }
    for (size_t i = 0; i < t.ntopics; i++) {
        st[i].status = "would-create";
        for (int k = 0; k < md->topic_cnt; k++) {
            if (strcmp(md->topics[k].topic, t.topics[i].name) == 0 && !md->topics[k].err) {
                st[i].status = "exists";
                st[i].actual = md->topics[k].partition_cnt;
            }
        }
    }
    if (!dry)
        rc = create(ctx, rk, &t, st);
    int created = 0, existed = 0, mismatched = 0, failed = 0, planned = 0;
    for (size_t i = 0; i < t.ntopics; i++) {
        const evctl_topic_spec_t *s = &t.topics[i];
        if (strcmp(st[i].status, "exists") == 0 && st[i].actual == 0)
            st[i].actual = evctl_topic_partitions(rk, s->name, ctx->timeout_ms);
        if (strcmp(st[i].status, "created") == 0) {
            /* wait until it is usable: the broker's metadata knows it (a
             * topic just created can still be unknown there for a moment)
             * and every partition has a leader */
            int64_t deadline = lev_mono_ms() + ctx->timeout_ms;
            while ((st[i].actual = evctl_topic_partitions(rk, s->name, ctx->timeout_ms)) == 0 &&
                   lev_mono_ms() < deadline)
                rd_kafka_poll(rk, 100);
            created++;
        } else if (strcmp(st[i].status, "exists") == 0) {
            if (st[i].actual != s->partitions) {
                st[i].status = "partition-mismatch";
                mismatched++;
                fprintf(stderr, "evctl: %s has %d partitions, the description says %d\n", s->name,
                        st[i].actual, s->partitions);
            } else {
                existed++;
            }
        } else if (strcmp(st[i].status, "error") == 0) {
            failed++;
            fprintf(stderr, "evctl: %s: %s\n", s->name, st[i].error);
        } else {
            planned++;
        }
        json_t *j = json_pack("{s:s,s:s,s:i,s:o,s:s}", "topic", s->name, "kind", s->kind,
                              "partitions", s->partitions, "replication_factor",
                              s->replication > 0 ? json_integer(s->replication)
                                                 : json_string("cluster default"),
                              "status", st[i].status);
        if (s->group)
            json_object_set_new(j, "group", json_string(s->group));
        if (st[i].actual > 0)
            json_object_set_new(j, "actual_partitions", json_integer(st[i].actual));
        if (st[i].error[0])
            json_object_set_new(j, "error", json_string(st[i].error));
        evctl_out(j);
    }
    if (dry)
        evctl_note(ctx, "dry run (%s): %d to create, %d exist, %d with another partition count",
                   t.path, planned, existed, mismatched);
    else
        evctl_note(ctx, "%s: %d created, %d existed, %d with another partition count, %d failed",
                   t.path, created, existed, mismatched, failed);
    if (!rc && mismatched)
        rc = EVCTL_EXIT_DATA;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    evctl_consumer_destroy(rk);
    evctl_topology_clear(&t);
    free(st);
    return rc;
}

const evctl_cmd_t evctl_cmd_topics = {
    "topics",
    "[options]",
    "create the workflow's topics, retry and dead-letter topics, idempotently",
    "Reads the topics description (tools/topics.json: the topics with partitions,\n"
    "replication and config, and the consumer groups with the topics they read) and\n"
    "creates every topic plus, for each group, <group>.retry.1..N and <group>.dlq (with\n"
    "as many partitions as the widest topic the group reads). Topics that exist are left\n"
    "alone; one whose partition count differs from the description is reported\n"
    "(\"partition-mismatch\", exit 65) and never changed. Running it again is harmless.\n"
    "One JSON line per topic: {\"topic\",\"kind\" (topic, retry, dlq),\"group\",\n"
    "\"partitions\",\"replication_factor\" (a number, or \"cluster default\": the\n"
    "broker's default.replication.factor when the description gives none),\"status\"\n"
    "(created, exists, would-create,\n"
    "partition-mismatch, error),\"actual_partitions\"}.\n",
    opts,
    0,
    0,
    run,
};
