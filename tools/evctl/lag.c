/* evctl lag: a consumer group's committed offsets, end offsets and lag. */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>

static const evctl_opt_t opts[] = {
    {"topic", "TOPIC",
     "only these topics (default: every topic the group committed on, plus "
     "its topics in the description)",
     1},
    {"format", "json|table", "JSON lines (default) or a table for people", 0},
    {NULL, NULL, NULL, 0},
};

/* Adds every partition of topic to l (0 partitions: the topic does not exist). */
static int add_topic(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, const char *topic,
                     int timeout_ms)
{
    for (int i = 0; i < l->cnt; i++)
        if (strcmp(l->elems[i].topic, topic) == 0)
            return 0;
    int n = evctl_topic_partitions(rk, topic, timeout_ms);
    if (n < 0)
        return evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: no metadata from Kafka", topic);
    if (n == 0)
        return -1;
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    return 0;
}

/* Topics the group has committed offsets on (ListConsumerGroupOffsets). */
static int committed_topics(rd_kafka_t *rk, const char *group, int timeout_ms,
                            rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_event_t *ev = NULL;
    char errstr[512];
    int rc = 0;
    rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, errstr, sizeof errstr);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "listing the offsets of group %s timed out", group);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "listing the offsets of group %s: %s", group,
                        rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_ListConsumerGroupOffsets_result_t *res =
        rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t ng = 0;
    const rd_kafka_group_result_t **groups =
        res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &ng) : NULL;
    for (size_t g = 0; g < ng; g++) {
        const rd_kafka_error_t *e = rd_kafka_group_result_error(groups[g]);
        if (e) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "listing the offsets of group %s: %s", group,
                            rd_kafka_error_string(e));
            goto out;
        }
        const rd_kafka_topic_partition_list_t *parts = rd_kafka_group_result_partitions(groups[g]);
        for (int i = 0; parts && i < parts->cnt; i++)
            if (parts->elems[i].offset >= 0 &&
                (rc = add_topic(rk, l, parts->elems[i].topic, timeout_ms)) > 0)
                goto out;
    }
    rc = 0;
out:
    rd_kafka_event_destroy(ev);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* qsort order of a partition list: by topic name, then partition. */
static int by_topic_partition(const void *a, const void *b)
{
    const rd_kafka_topic_partition_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* evctl lag GROUP: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    const char *group = args->pos[0], *format = evctl_opt(args, "format");
    int table = format && strcmp(format, "table") == 0, ntopics = 0, have_topo = 0, rc;
    const char *const *topics = evctl_opt_all(args, "topic", &ntopics);
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    evctl_topology_t topo;
    memset(&topo, 0, sizeof topo);
    if (format && !table && strcmp(format, "json") != 0) {
        rc = evctl_fail(EVCTL_EXIT_USAGE, "--format: expected json or table, got \"%s\"", format);
        goto out;
    }
    if (!*group) {
        rc = evctl_fail(EVCTL_EXIT_USAGE, "the group name is empty");
        goto out;
    }
    if (!(rk = evctl_consumer_new(ctx, group, &rc)))
        goto out;
    for (int i = 0; i < ntopics; i++) {
        if ((rc = add_topic(rk, l, topics[i], ctx->timeout_ms)) == -1)
            rc = evctl_fail(EVCTL_EXIT_DATA, "--topic: topic %s does not exist", topics[i]);
        if (rc)
            goto out;
    }
    if (ntopics == 0) {
        if ((rc = committed_topics(rk, group, ctx->timeout_ms, l)))
            goto out;
        /* the group's inputs and retry topics, when the description lists the group */
        if (evctl_topology_available(ctx)) {
            if ((rc = evctl_topology_load(&topo, ctx, -1, -1, -1)))
                goto out;
            have_topo = 1;
            const char *mine[64];
            size_t n = evctl_topology_group_topics(&topo, group, mine, 64);
            for (size_t i = 0; i < n; i++)
                if ((rc = add_topic(rk, l, mine[i], ctx->timeout_ms)) > 0)
                    goto out;
        }
        if (l->cnt == 0) {
            rc = evctl_fail(EVCTL_EXIT_DATA,
                            "group %s has no committed offsets and is not in the topics "
                            "description: name its topics with --topic",
                            group);
            goto out;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, ctx->timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "committed offsets of group %s: %s", group,
                        rd_kafka_err2str(e));
        goto out;
    }
    qsort(l->elems, (size_t)l->cnt, sizeof *l->elems, by_topic_partition);
    int64_t total = 0;
    if (table)
        printf("%-40s %9s %12s %12s %10s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t low = 0, high = 0, lag;
        e = rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &low, &high,
                                             ctx->timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s [%d]: watermarks: %s", tp->topic,
                            (int)tp->partition, rd_kafka_err2str(e));
            goto out;
        }
        int committed = tp->offset >= 0 && !tp->err;
        /* nothing committed: everything retained is still to be read */
        lag = committed ? (high > tp->offset ? high - tp->offset : 0) : high - low;
        total += lag;
        if (table) {
            char c[32] = "-";
            if (committed)
                snprintf(c, sizeof c, "%lld", (long long)tp->offset);
            printf("%-40s %9d %12s %12lld %10lld\n", tp->topic, (int)tp->partition, c,
                   (long long)high, (long long)lag);
        } else if (evctl_out(json_pack("{s:s,s:s,s:i,s:o,s:I,s:I}", "group", group, "topic",
                                       tp->topic, "partition", (int)tp->partition, "committed",
                                       committed ? json_integer(tp->offset) : json_null(), "end",
                                       (json_int_t)high, "lag", (json_int_t)lag)) != 0) {
            break;
        }
    }
    if (table) {
        printf("%-40s %9s %12s %12s %10lld\n", "TOTAL", "", "", "", (long long)total);
        fflush(stdout);
    } else {
        evctl_out(json_pack("{s:s,s:I,s:i}", "group", group, "total_lag", (json_int_t)total,
                            "partitions", l->cnt));
    }
    rc = 0;
out:
    if (have_topo)
        evctl_topology_clear(&topo);
    rd_kafka_topic_partition_list_destroy(l);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_lag = {
    "lag",
    "GROUP [--topic TOPIC] [--format table]",
    "a consumer group's committed offset, end offset and lag per partition",
    "For each partition: the group's committed offset (rd_kafka_committed), the end offset\n"
    "(high watermark) and the lag (end - committed; with nothing committed, every retained\n"
    "record: end - beginning). One JSON line per partition\n"
    "  {\"group\",\"topic\",\"partition\",\"committed\" (null: none),\"end\",\"lag\"}\n"
    "then {\"group\",\"total_lag\",\"partitions\"}; or a table with --format table.\n"
    "Without --topic: every topic the group has committed offsets on, plus its input and\n"
    "retry topics when the topics description lists the group.\n",
    opts,
    1,
    1,
    run,
};
