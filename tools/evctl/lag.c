/* evctl lag: a consumer group's committed offsets, end offsets and lag,
 * which member holds each partition, and which partitions are stuck. */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const evctl_opt_t opts[] = {
    {"topic", "TOPIC",
     "only these topics (default: every topic the group committed on, plus "
     "its topics in the description)",
     1},
    {"format", "json|table", "JSON lines (default) or a table for people", 0},
    {"stuck-after", "DURATION",
     "read the committed offsets again after DURATION (5s, 1m) and flag the partitions "
     "with lag whose committed offset did not move",
     0},
    {NULL, NULL, NULL, 0},
};

/* Who holds a partition: the member's consumer id, client id and host. */
typedef struct owner_s {
    char *topic;
    int32_t partition;
    char *member, *client, *host;
} owner_t;

typedef struct owners_s {
    owner_t *o;
    size_t n;
    char state[32]; /* the group's state (Stable, Empty, ...) */
} owners_t;

static void owners_clear(owners_t *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->o[i].topic);
        free(w->o[i].member);
        free(w->o[i].client);
        free(w->o[i].host);
    }
    free(w->o);
    memset(w, 0, sizeof *w);
}

static const owner_t *owner_of(const owners_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->o[i].partition == partition && strcmp(w->o[i].topic, topic) == 0)
            return &w->o[i];
    return NULL;
}

/* The group's members and their assignments (DescribeConsumerGroups). */
static int describe_group(rd_kafka_t *rk, const char *group, int timeout_ms, owners_t *w)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    char errstr[512];
    int rc = 0;
    rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, errstr, sizeof errstr);
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    const rd_kafka_DescribeConsumerGroups_result_t *res =
        ev ? rd_kafka_event_DescribeConsumerGroups_result(ev) : NULL;
    size_t ng = 0;
    const rd_kafka_ConsumerGroupDescription_t **gd =
        res ? rd_kafka_DescribeConsumerGroups_result_groups(res, &ng) : NULL;
    if (!ev || rd_kafka_event_error(ev) || ng != 1) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "describing group %s: %s", group,
                        !ev  ? "timed out"
                        : ng ? rd_kafka_event_error_string(ev)
                             : "no answer");
        goto out;
    }
    const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(gd[0]);
    if (e) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "describing group %s: %s", group,
                        rd_kafka_error_string(e));
        goto out;
    }
    snprintf(w->state, sizeof w->state, "%s",
             rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(gd[0])));
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(gd[0]);
    for (size_t m = 0; m < nm; m++) {
        const rd_kafka_MemberDescription_t *md = rd_kafka_ConsumerGroupDescription_member(gd[0], m);
        const rd_kafka_MemberAssignment_t *ma = rd_kafka_MemberDescription_assignment(md);
        const rd_kafka_topic_partition_list_t *pl =
            ma ? rd_kafka_MemberAssignment_partitions(ma) : NULL;
        for (int i = 0; pl && i < pl->cnt; i++) {
            owner_t *no = realloc(w->o, (w->n + 1) * sizeof *no);
            if (!no) {
                rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
                goto out;
            }
            w->o = no;
            const char *mid = rd_kafka_MemberDescription_consumer_id(md);
            const char *cid = rd_kafka_MemberDescription_client_id(md);
            const char *host = rd_kafka_MemberDescription_host(md);
            owner_t *ow = &w->o[w->n++];
            ow->topic = strdup(pl->elems[i].topic);
            ow->partition = pl->elems[i].partition;
            ow->member = strdup(mid ? mid : "");
            ow->client = strdup(cid ? cid : "");
            ow->host = strdup(host ? host : "");
            if (!ow->topic || !ow->member || !ow->client || !ow->host) {
                rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
                goto out;
            }
        }
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Adds every partition of topic to l (0 partitions: the topic does not exist). */
static int add_topic(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, const char *topic,
                     int timeout_ms)
{
    for (int i = 0; i < l->cnt; i++)
        if (strcmp(l->elems[i].topic, topic) == 0)
            return 0;
    int n = evctl_topic_partitions(rk, topic, timeout_ms);
    if (n < 0)
        return evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: %s", topic, evctl_topic_partitions_why(n));
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
    const char *stuck_opt = evctl_opt(args, "stuck-after");
    int table = format && strcmp(format, "table") == 0, ntopics = 0, have_topo = 0, rc;
    int64_t stuck_ms = 0;
    owners_t owners;
    rd_kafka_topic_partition_list_t *before = NULL;
    memset(&owners, 0, sizeof owners);
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
    if (stuck_opt &&
        (lev_duration_parse(stuck_opt, &stuck_ms) != 0 || stuck_ms <= 0 || stuck_ms > 3600000)) {
        rc = evctl_fail(EVCTL_EXIT_USAGE,
                        "--stuck-after: expected a duration from 1ms to 1h (5s, 1m), got \"%s\"",
                        stuck_opt);
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
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && stuck_ms > 0) {
        /* a second reading later: what did not move */
        before = rd_kafka_topic_partition_list_copy(l);
        evctl_note(ctx, "reading the committed offsets again in %s", stuck_opt);
        int64_t until = lev_mono_ms() + stuck_ms;
        for (int64_t now = lev_mono_ms(); now < until && !evctl_stop; now = lev_mono_ms())
            usleep((useconds_t)(until - now < 100 ? until - now : 100) * 1000);
        if (evctl_stop) {
            rc = evctl_fail(EVCTL_EXIT_INTERRUPTED, "interrupted");
            goto out;
        }
        e = rd_kafka_committed(rk, l, ctx->timeout_ms);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "committed offsets of group %s: %s", group,
                        rd_kafka_err2str(e));
        goto out;
    }
    if ((rc = describe_group(rk, group, ctx->timeout_ms, &owners)) != 0)
        goto out;
    qsort(l->elems, (size_t)l->cnt, sizeof *l->elems, by_topic_partition);
    int64_t total = 0;
    int nstuck = 0;
    if (table)
        printf("%-40s %9s %12s %12s %10s %-6s %-40s %s\n", "TOPIC", "PARTITION", "COMMITTED", "END",
               "LAG", "STUCK", "CONSUMER-ID", "HOST");
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
        /* stuck: lag now, and the committed offset the same as a while ago */
        int stuck = 0;
        if (before) {
            rd_kafka_topic_partition_t *b =
                rd_kafka_topic_partition_list_find(before, tp->topic, tp->partition);
            stuck = lag > 0 && b && b->offset == tp->offset;
            nstuck += stuck;
        }
        const owner_t *ow = owner_of(&owners, tp->topic, tp->partition);
        if (table) {
            char c[32] = "-";
            if (committed)
                snprintf(c, sizeof c, "%lld", (long long)tp->offset);
            printf("%-40s %9d %12s %12lld %10lld %-6s %-40s %s\n", tp->topic, (int)tp->partition, c,
                   (long long)high, (long long)lag,
                   !before ? "-"
                   : stuck ? "yes"
                           : "no",
                   ow ? ow->member : "-", ow ? ow->host : "-");
        } else if (evctl_out(json_pack(
                       "{s:s,s:s,s:i,s:o,s:I,s:I,s:o,s:o,s:o,s:o}", "group", group, "topic",
                       tp->topic, "partition", (int)tp->partition, "committed",
                       committed ? json_integer(tp->offset) : json_null(), "end", (json_int_t)high,
                       "lag", (json_int_t)lag, "stuck", before ? json_boolean(stuck) : json_null(),
                       "member", ow ? json_string(ow->member) : json_null(), "client",
                       ow ? json_string(ow->client) : json_null(), "host",
                       ow ? json_string(ow->host) : json_null())) != 0) {
            break;
        }
    }
    if (table) {
        printf("%-40s %9s %12s %12s %10lld\n", "TOTAL", "", "", "", (long long)total);
        printf("group %s: %s, %zu partition%s assigned%s\n", group, owners.state, owners.n,
               owners.n == 1 ? "" : "s", before ? "" : " (--stuck-after to look for stuck ones)");
        if (before)
            printf("stuck partitions: %d\n", nstuck);
        fflush(stdout);
    } else {
        evctl_out(json_pack("{s:s,s:I,s:i,s:s,s:o}", "group", group, "total_lag", (json_int_t)total,
                            "partitions", l->cnt, "state", owners.state, "stuck_partitions",
                            before ? json_integer(nstuck) : json_null()));
    }
    rc = 0;
out:
    owners_clear(&owners);
    if (before)
        rd_kafka_topic_partition_list_destroy(before);
    if (have_topo)
        evctl_topology_clear(&topo);
    rd_kafka_topic_partition_list_destroy(l);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_lag = {
    "lag",
    "GROUP [--topic TOPIC] [--format table] [--stuck-after DURATION]",
    "a consumer group's committed offset, end offset and lag per partition",
    "For each partition: the group's committed offset (rd_kafka_committed), the end offset\n"
    "(high watermark) and the lag (end - committed; with nothing committed, every retained\n"
    "record: end - beginning). One JSON line per partition\n"
    "  {\"group\",\"topic\",\"partition\",\"committed\" (null: none),\"end\",\"lag\"}\n"
    "then {\"group\",\"total_lag\",\"partitions\",\"state\",\"stuck_partitions\"}; or a table\n"
    "with --format table. Each partition line also names the member holding it, as\n"
    "kafka-consumer-groups.sh does: \"member\" (consumer id), \"client\" and \"host\" (null when\n"
    "no member holds it), and \"stuck\": with --stuck-after DURATION the committed offsets are\n"
    "read twice, DURATION apart, and a partition with lag whose committed offset did not move\n"
    "is stuck (true); without it, null. \"state\" is the group's (Stable, Empty, ...).\n"
    "Without --topic: every topic the group has committed offsets on, plus its input and\n"
    "retry topics when the topics description lists the group.\n",
    opts,
    1,
    1,
    run,
};
