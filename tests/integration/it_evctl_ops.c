/*
 * evctl lag and topics against a real broker: lag matches what a plain
 * librdkafka consumer committed; topic creation from a description is
 * idempotent and reports a partition-count mismatch.
 */
#include "it_evctl.h"

#include <limits.h>

/* Commits offsets for partitions 0..n-1 of topic as group (a plain
 * librdkafka consumer, synchronous commit). */
static int commit(const char *group, const char *topic, int n, const int64_t *offsets)
{
    char errstr[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", lev_test_env("KAFKA_BOOTSTRAP", "127.0.0.1:17092"),
                      errstr, sizeof errstr);
    rd_kafka_conf_set(c, "group.id", group, errstr, sizeof errstr);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof errstr);
    if (!rk)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        if (offsets[p] >= 0)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = offsets[p];
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return e ? -1 : 0;
}

static void lag_matches_what_the_group_committed(void)
{
    enum { N = 15 };
    static char ids[N][LEV_UUID_STR_LEN];
    char topic[96], other[128], group[128];
    lev_test_unique("it-evctl-lag", topic, sizeof topic);
    snprintf(other, sizeof other, "%s-b", topic);
    snprintf(group, sizeof group, "%s-group", topic);
    REQUIRE(lev_test_create_topic(topic, 3) == 0 && lev_test_create_topic(other, 1) == 0);
    REQUIRE(lev_test_publish_orders(topic, N, ids, NULL) == 0);
    lev_test_record_t *recs = NULL;
    size_t got = lev_test_read_topic(topic, N, 20000, &recs);
    REQUIRE(got == N);
    int64_t end[3] = {0, 0, 0};
    for (size_t i = 0; i < got; i++)
        end[recs[i].partition]++;
    lev_test_records_free(recs, got);
    /* partition 0: one read; 1: all read; 2: nothing committed */
    int64_t committed[3] = {end[0] > 0 ? 1 : 0, end[1], -1};
    REQUIRE(commit(group, topic, 3, committed) == 0);

    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "lag", group, NULL), ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    /* every partition of a topic the group committed on; partition 2 without a commit */
    CHECK_INT(json_array_size(lines), ==, 3 + 1);
    int64_t total = 0;
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        if (json_object_get(l, "total_lag")) {
            CHECK_INT(it_int(l, "total_lag"), ==, total);
            CHECK_INT(i, ==, 3);
            continue;
        }
        CHECK_STR(it_str(l, "topic"), topic);
        CHECK_STR(it_str(l, "group"), group);
        int p = (int)it_int(l, "partition");
        REQUIRE(p >= 0 && p < 3);
        CHECK_INT(p, ==, (int)i);
        if (p < 2)
            CHECK_INT(it_int(l, "committed"), ==, committed[p]);
        else
            CHECK(json_is_null(json_object_get(l, "committed")));
        CHECK_INT(it_int(l, "end"), ==, end[p]);
        CHECK_INT(it_int(l, "lag"), ==, end[p] - (p < 2 ? committed[p] : 0));
        total += it_int(l, "lag");
    }
    CHECK_INT(total, ==, end[0] - committed[0] + end[2]);
    json_decref(lines);

    /* --topic: only that topic */
    CHECK_INT(it_evctl(&out, NULL, NULL, "lag", group, "--topic", other, NULL), ==, 0);
    lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 2);
    CHECK_STR(it_str(json_array_get(lines, 0), "topic"), other);
    CHECK(json_is_null(json_object_get(json_array_get(lines, 0), "committed")));
    CHECK_INT(it_int(json_array_get(lines, 1), "total_lag"), ==, 0);
    json_decref(lines);

    CHECK_INT(it_evctl(&out, NULL, NULL, "lag", group, "--format", "table", NULL), ==, 0);
    CHECK(strstr(out, "TOTAL") && strstr(out, topic));
    free(out);
    char *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "lag", "it-evctl-nobody", NULL), ==, 65);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "lag", group, "--topic", "it-evctl-no-such", NULL), ==,
              65);
    free(err);
}

static void topics_creates_everything_once_and_is_idempotent(void)
{
    char base[96], a[128], b[128], group[128], desc[1024], path[256];
    lev_test_unique("it-evctl-top", base, sizeof base);
    snprintf(a, sizeof a, "%s-a", base);
    snprintf(b, sizeof b, "%s-b", base);
    snprintf(group, sizeof group, "%s-g", base);
    snprintf(
        desc, sizeof desc,
        "{\"defaults\":{\"partitions\":2},\"topics\":[{\"name\":\"%s\",\"types\":[\"shop.*\"]},"
        "{\"name\":\"%s\",\"partitions\":4}],\"groups\":[{\"name\":\"%s\",\"reads\":[\"%s\","
        "\"%s\"]}]}",
        a, b, group, a, b);
    it_write_file("topics", desc, path, sizeof path);

    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "topics", "--topics-file", path, "--retry-levels", "2",
                       "--dry-run", NULL),
              ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 5);
    CHECK_STR(it_str(json_array_get(lines, 0), "status"), "would-create");
    json_decref(lines);
    char *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "tail", a, NULL), ==, 65); /* not created */
    free(err);

    CHECK_INT(
        it_evctl(&out, NULL, NULL, "topics", "--topics-file", path, "--retry-levels", "2", NULL),
        ==, 0);
    lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 5);
    static const char *const kinds[] = {"topic", "topic", "retry", "retry", "dlq"};
    static const int parts[] = {2, 4, 4, 4, 4};
    char names[5][160];
    snprintf(names[0], sizeof names[0], "%s", a);
    snprintf(names[1], sizeof names[1], "%s", b);
    lev_retry_topic_name(group, 1, names[2], sizeof names[2]);
    lev_retry_topic_name(group, 2, names[3], sizeof names[3]);
    lev_dlq_topic_name(group, names[4], sizeof names[4]);
    for (size_t i = 0; i < 5; i++) {
        json_t *l = json_array_get(lines, i);
        CHECK_STR(it_str(l, "topic"), names[i]);
        CHECK_STR(it_str(l, "kind"), kinds[i]);
        CHECK_STR(it_str(l, "status"), "created");
        CHECK_INT(it_int(l, "actual_partitions"), ==, parts[i]);
    }
    json_decref(lines);

    /* again: nothing to do */
    CHECK_INT(
        it_evctl(&out, NULL, NULL, "topics", "--topics-file", path, "--retry-levels", "2", NULL),
        ==, 0);
    lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 5);
    for (size_t i = 0; i < json_array_size(lines); i++)
        CHECK_STR(it_str(json_array_get(lines, i), "status"), "exists");
    json_decref(lines);

    /* a topic that exists with another partition count is reported, not changed */
    char c[160], desc2[512], path2[256];
    snprintf(c, sizeof c, "%s-c", base);
    REQUIRE(lev_test_create_topic(c, 1) == 0);
    snprintf(desc2, sizeof desc2,
             "{\"topics\":[{\"name\":\"%s\",\"partitions\":3},{\"name\":\"%s\"}]}", c, a);
    it_write_file("topics2", desc2, path2, sizeof path2);
    CHECK_INT(
        it_evctl(&out, &err, NULL, "topics", "--topics-file", path2, "--partitions", "2", NULL), ==,
        65);
    lines = it_lines(out);
    CHECK_STR(it_str(json_array_get(lines, 0), "status"), "partition-mismatch");
    CHECK_INT(it_int(json_array_get(lines, 0), "actual_partitions"), ==, 1);
    CHECK_STR(it_str(json_array_get(lines, 1), "status"), "exists");
    CHECK(strstr(err, "has 1 partitions") != NULL);
    json_decref(lines);
    free(out);
    free(err);

    /* a broken description names the place */
    char path3[256];
    it_write_file("topics3", "{\"topics\":[{\"name\":\"bad name!\"}]}", path3, sizeof path3);
    CHECK_INT(it_evctl(NULL, &err, NULL, "topics", "--topics-file", path3, NULL), ==, 65);
    CHECK(strstr(err, "topics[0].name") != NULL);
    free(err);
    /* what evctl acls grants is checked the same way */
    static const char *const broken[][2] = {
        {"{\"topics\":[{\"name\":\"a\"}],\"groups\":[{\"name\":\"g\",\"reads\":[\"a\"],"
         "\"writes\":[\"b\"]}]}",
         "groups[0].writes[0]: not a topic listed in topics"},
        {"{\"topics\":[{\"name\":\"a\"}],\"groups\":[{\"name\":\"g\",\"reads\":[\"a\"],"
         "\"principal\":\"g\"}]}",
         "groups[0].principal"},
        {"{\"topics\":[{\"name\":\"a\"}],\"operators\":[\"User:\"]}", "operators[0]"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        it_write_file("topics3", broken[i][0], path3, sizeof path3);
        CHECK_INT(it_evctl(NULL, &err, NULL, "acls", "--dry-run", "--topics-file", path3, NULL), ==,
                  65);
        CHECK(err && strstr(err, broken[i][1]) != NULL);
        free(err);
    }
    unlink(path);
    unlink(path2);
    unlink(path3);
}

/* A `topics --dry-run --retry-levels 1` answer for tools/topics.json: a line
 * per topic it declares (orders first) and per retry and dead-letter topic
 * of its three groups, an exit code that agrees with the statuses (the
 * broker may hold these topics already, even with other partition counts),
 * and the file it read named on stderr. */
static void check_workflow_dry_run(int rc, const char *out, const char *err, const char *path)
{
    json_t *lines = it_lines(out);
    CHECK_INT(json_array_size(lines), ==, 3 + 3 * 2);
    CHECK_STR(it_str(json_array_get(lines, 0), "topic"), "orders");
    int mismatched = 0;
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        const char *st = it_str(l, "status");
        CHECK(st && (strcmp(st, "would-create") == 0 || strcmp(st, "exists") == 0 ||
                     strcmp(st, "partition-mismatch") == 0));
        mismatched |= st && strcmp(st, "partition-mismatch") == 0;
    }
    CHECK_INT(rc, ==, mismatched ? 65 : 0);
    char want[PATH_MAX + 16];
    snprintf(want, sizeof want, "dry run (%s)", path);
    CHECK(err && strstr(err, want) != NULL);
    if (!err || !strstr(err, want))
        fprintf(stderr, "expected \"%s\" in:\n%s\n", want, err ? err : "");
    json_decref(lines);
}

/* Without --topics-file and LEV_TOPICS_FILE, evctl finds topics.json from
 * any working directory: the build tree's evctl the source tree's, an
 * installed evctl the copy installed next to it, wherever the prefix is. */
static void topics_json_is_found_from_any_working_directory(void)
{
    char src[PATH_MAX], path[PATH_MAX + 64], prefix[PATH_MAX], prog[PATH_MAX + 16],
        cmd[2 * PATH_MAX + 64];
    unsetenv("LEV_TOPICS_FILE");
    snprintf(path, sizeof path, "%s/tools/topics.json", lev_test_env("LEV_SOURCE_DIR", "."));
    REQUIRE(realpath(path, src));
    const char *tmp = lev_test_env("TMPDIR", "/tmp");

    /* the build tree's evctl, run elsewhere */
    char *out = NULL, *err = NULL;
    int rc = it_evctl_as(&out, &err, NULL, tmp, "topics", "--dry-run", "--retry-levels", "1", NULL);
    check_workflow_dry_run(rc, out, err, src);
    free(out);
    free(err);

    /* an installed evctl under a prefix other than the configured one */
    char made[256];
    snprintf(made, sizeof made, "%s/evctl-prefix-XXXXXX", tmp);
    REQUIRE(mkdtemp(made) && realpath(made, prefix));
    snprintf(cmd, sizeof cmd, "cmake --install '%s' --prefix '%s' >/dev/null",
             lev_test_env("LEV_BINARY_DIR", "build"), prefix);
    CHECK_INT(system(cmd), ==, 0);
    snprintf(prog, sizeof prog, "%s/bin/evctl", prefix);
    snprintf(path, sizeof path, "%s/share/libevents/topics.json", prefix);
    char installed[PATH_MAX];
    CHECK(realpath(path, installed) != NULL); /* the install rule */
    if (access(prog, X_OK) == 0 && access(installed, R_OK) == 0) {
        rc = it_evctl_as(&out, &err, prog, "/", "topics", "--dry-run", "--retry-levels", "1", NULL);
        check_workflow_dry_run(rc, out, err, installed);
        free(out);
        free(err);
        /* nowhere to be found: the message lists where it looked */
        CHECK_INT(unlink(installed), ==, 0);
        rc = it_evctl_as(&out, &err, prog, "/", "topics", "--dry-run", NULL);
        CHECK_INT(rc, ==, 65);
        CHECK(err && strstr(err, "no topics description found") && strstr(err, path) &&
              strstr(err, "--topics-file"));
        free(out);
        free(err);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", prefix);
    CHECK_INT(system(cmd), ==, 0);
}

/* A member of group subscribed to topic (no auto-commit), polled until it
 * holds n partitions; NULL when it does not in time. */
static rd_kafka_t *member_of(const char *group, const char *topic, const char *client, int n)
{
    char errstr[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", lev_test_env("KAFKA_BOOTSTRAP", "127.0.0.1:17092"),
                      errstr, sizeof errstr);
    rd_kafka_conf_set(c, "group.id", group, errstr, sizeof errstr);
    rd_kafka_conf_set(c, "client.id", client, errstr, sizeof errstr);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof errstr);
    if (!rk)
        return NULL;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    int64_t deadline = lev_mono_ms() + 30000;
    while (lev_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
        rd_kafka_topic_partition_list_t *a = NULL;
        int have = rd_kafka_assignment(rk, &a) == 0 && a ? a->cnt : 0;
        if (a)
            rd_kafka_topic_partition_list_destroy(a);
        if (have == n)
            return rk;
    }
    rd_kafka_destroy(rk);
    return NULL;
}

/* Commits offset on one partition as the member rk. */
static int member_commit(rd_kafka_t *rk, const char *topic, int partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? -1 : 0;
}

/* evctl lag names the member holding each partition (consumer id, client
 * id, host) and the group's state; with --stuck-after it reads the commits
 * twice and flags the partition with lag whose commit did not move, not
 * the one whose commit moved meanwhile. */
static void lag_names_each_partitions_member_and_flags_stuck_partitions(void)
{
    enum { N = 40 };
    static char ids[N][LEV_UUID_STR_LEN];
    char topic[96], group[128], client[128];
    lev_test_unique("it-evctl-stuck", topic, sizeof topic);
    snprintf(group, sizeof group, "%s-group", topic);
    snprintf(client, sizeof client, "%s-member", topic);
    REQUIRE(lev_test_create_topic(topic, 2) == 0);
    REQUIRE(lev_test_publish_orders(topic, N, ids, NULL) == 0);
    rd_kafka_t *rk = member_of(group, topic, client, 2);
    REQUIRE(rk);
    char *memberid = rd_kafka_memberid(rk);
    REQUIRE(memberid);
    /* both partitions read to offset 1: lag on each */
    REQUIRE(member_commit(rk, topic, 0, 1) == 0 && member_commit(rk, topic, 1, 1) == 0);

    evctl_proc_t p;
    const char *args[] = {"lag", group, "--stuck-after", "3s", NULL};
    it_evctl_startv(&p, NULL, args);
    /* meanwhile partition 1 moves on; the member keeps polling */
    int64_t until = lev_mono_ms() + 4000;
    for (int64_t off = 2; lev_mono_ms() < until; off++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m)
            rd_kafka_message_destroy(m);
        member_commit(rk, topic, 1, off < N / 4 ? off : N / 4);
    }
    char *out = NULL;
    CHECK_INT(it_evctl_finish(&p, 60000, &out, NULL), ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 3);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        if (json_object_get(l, "total_lag")) {
            CHECK_STR(it_str(l, "state"), "Stable");
            CHECK_INT(it_int(l, "stuck_partitions"), ==, 1);
            continue;
        }
        int part = (int)it_int(l, "partition");
        CHECK_STR(it_str(l, "member"), memberid);
        CHECK_STR(it_str(l, "client"), client);
        CHECK(it_str(l, "host") && strstr(it_str(l, "host"), "127.0.0.1"));
        CHECK(it_int(l, "lag") > 0);
        CHECK(json_is_true(json_object_get(l, "stuck")) == (part == 0));
    }
    json_decref(lines);

    /* without --stuck-after: not known; a partition no member holds: null member */
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    CHECK_INT(it_evctl(&out, NULL, NULL, "lag", group, NULL), ==, 0);
    lines = it_lines(out);
    free(out);
    json_array_foreach(lines, i, l)
    {
        if (json_object_get(l, "total_lag")) {
            CHECK(json_is_null(json_object_get(l, "stuck_partitions")));
            continue;
        }
        CHECK(json_is_null(json_object_get(l, "stuck")));
        CHECK(json_is_null(json_object_get(l, "member")));
    }
    json_decref(lines);
    CHECK_INT(it_evctl(&out, NULL, NULL, "lag", group, "--stuck-after", "0s", NULL), ==, 64);
    free(out);
    rd_kafka_mem_free(NULL, memberid);
}

CHECK_MAIN(CASE(lag_matches_what_the_group_committed),
           CASE(lag_names_each_partitions_member_and_flags_stuck_partitions),
           CASE(topics_creates_everything_once_and_is_idempotent),
           CASE(topics_json_is_found_from_any_working_directory))
