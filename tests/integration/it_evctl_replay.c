/*
 * evctl replay against a real broker: offset ranges and time ranges copy
 * exactly that range with provenance headers; dry runs send nothing; an
 * interrupted replay says where to resume and resuming copies the rest
 * exactly once.
 */
#include "it_evctl.h"

/* Publishes the orders of a file with evctl; returns the result lines. */
static json_t *publish(const char *path, const char *topic)
{
    char *out = NULL;
    int rc = it_evctl(&out, NULL, NULL, "publish", path, "--topic", topic, "--quiet", NULL);
    json_t *lines = it_lines(out);
    free(out);
    if (rc != 0) {
        json_decref(lines);
        return NULL;
    }
    return lines;
}

/* Where publish put the order with this id: partition and offset. */
static int placed(json_t *published, const char *id, int *partition, int64_t *offset)
{
    size_t i;
    json_t *p;
    json_array_foreach(published, i, p)
    {
        if (it_str(p, "id") && strcmp(it_str(p, "id"), id) == 0) {
            *partition = (int)it_int(p, "partition");
            *offset = it_int(p, "offset");
            return 0;
        }
    }
    return -1;
}

/* Reads dest and checks it holds exactly the records of `want` (by ce_id,
 * want[i] != 0), each once, with the source's value bytes and a
 * evctl_replay_from header naming its source record. Returns matches. */
static size_t check_copies(const char *src, const char *dest, json_t *published,
                           char (*ids)[LEV_UUID_STR_LEN], size_t n, const int *want, size_t nwant)
{
    lev_test_record_t *recs = NULL, *orig = NULL;
    size_t got = lev_test_read_topic(dest, nwant, 20000, &recs);
    size_t norig = lev_test_read_topic(src, n, 20000, &orig);
    size_t good = 0;
    int *seen = calloc(n, sizeof *seen);
    CHECK_INT(got, ==, nwant);
    for (size_t r = 0; r < got; r++) {
        char id[64], from[256], at[64], expect[320];
        lev_test_header(&recs[r], "ce_id", id, sizeof id);
        lev_test_header(&recs[r], "evctl_replay_from", from, sizeof from);
        lev_test_header(&recs[r], "evctl_replay_at", at, sizeof at);
        int i = it_find_id(ids, n, id), p = -1;
        int64_t o = -1;
        if (i < 0 || !want[i] || seen[i] || placed(published, id, &p, &o) != 0) {
            fprintf(stderr, "unexpected copy of %s (from %s)\n", id, from);
            continue;
        }
        seen[i] = 1;
        snprintf(expect, sizeof expect, "%s/%d/%lld", src, p, (long long)o);
        int64_t t;
        int ok = strcmp(from, expect) == 0 && lev_time_parse(at, &t) == 0;
        for (size_t k = 0; k < norig; k++)
            if (orig[k].partition == p && orig[k].offset == o)
                ok &= orig[k].value_len == recs[r].value_len &&
                      memcmp(orig[k].value, recs[r].value, recs[r].value_len) == 0 &&
                      strcmp(orig[k].key, recs[r].key) == 0;
        good += ok;
    }
    lev_test_records_free(recs, got);
    lev_test_records_free(orig, norig);
    free(seen);
    return good;
}

static void replay_by_offset_range_copies_exactly_that_range(void)
{
    enum { N = 20 };
    static char ids[N][LEV_UUID_STR_LEN];
    char src[96], dest[128], dest2[128], path[256];
    lev_test_unique("it-evctl-roff", src, sizeof src);
    snprintf(dest, sizeof dest, "%s-to", src);
    snprintf(dest2, sizeof dest2, "%s-to2", src);
    REQUIRE(lev_test_create_topic(src, 2) == 0 && lev_test_create_topic(dest, 2) == 0 &&
            lev_test_create_topic(dest2, 3) == 0);
    it_orders_file(N, ids, 0, path, sizeof path);
    json_t *published = publish(path, src);
    REQUIRE(published && json_array_size(published) == N);

    /* per partition: [2, 5) of partition 0 and [1, 4) of partition 1 */
    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "replay", src, "--from", "0:2,1:1", "--until", "0:5,1:4",
                       "--to", dest, "--rate", "0", NULL),
              ==, 0);
    json_t *all = it_lines(out);
    json_t *sum = json_array_get(all, 0);
    free(out);
    int want[N] = {0};
    size_t nwant = 0;
    for (int i = 0; i < N; i++) {
        int p;
        int64_t o;
        REQUIRE(placed(published, ids[i], &p, &o) == 0);
        want[i] = (p == 0 && o >= 2 && o < 5) || (p == 1 && o >= 1 && o < 4);
        nwant += (size_t)want[i];
    }
    CHECK_INT(nwant, >, 0);
    CHECK_INT(it_int(sum, "copied"), ==, nwant);
    CHECK(!json_object_get(sum, "resume"));
    CHECK_INT(check_copies(src, dest, published, ids, N, want, nwant), ==, nwant);
    json_decref(all);

    /* one range for every partition: offsets [1, 3), into a topic with 3 partitions */
    CHECK_INT(it_evctl(NULL, NULL, NULL, "replay", src, "--from", "1", "--until", "3", "--to",
                       dest2, NULL),
              ==, 0);
    nwant = 0;
    for (int i = 0; i < N; i++) {
        int p;
        int64_t o;
        placed(published, ids[i], &p, &o);
        want[i] = o >= 1 && o < 3;
        nwant += (size_t)want[i];
    }
    CHECK_INT(nwant, ==, 4);
    CHECK_INT(check_copies(src, dest2, published, ids, N, want, nwant), ==, nwant);
    json_decref(published);
    unlink(path);
}

static void replay_by_time_range_copies_exactly_that_range(void)
{
    enum { N = 10 };
    static char ids[N][LEV_UUID_STR_LEN];
    char src[96], dest[128], path[256], from[32], until[32];
    lev_test_unique("it-evctl-rtime", src, sizeof src);
    snprintf(dest, sizeof dest, "%s-to", src);
    REQUIRE(lev_test_create_topic(src, 2) == 0 && lev_test_create_topic(dest, 2) == 0);
    /* one event a second, ten minutes ago */
    int64_t base = (lev_now_ms() - 600000) / 1000 * 1000;
    it_orders_file(N, ids, base, path, sizeof path);
    json_t *published = publish(path, src);
    REQUIRE(published && json_array_size(published) == N);
    lev_time_format(base + 3000, from);
    lev_time_format(base + 7000, until);

    /* a dry run first: prints the four, sends nothing */
    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "replay", src, "--from", from, "--until", until, "--to",
                       dest, "--dry-run", NULL),
              ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    json_t *records = it_with(lines, "send_headers");
    CHECK_INT(json_array_size(records), ==, 4);
    json_t *sum = json_array_get(lines, json_array_size(lines) - 1);
    CHECK_INT(it_int(sum, "would_copy"), ==, 4);
    json_decref(records);
    json_decref(lines);
    lev_test_record_t *recs = NULL;
    CHECK_INT(lev_test_read_topic(dest, 0, 3000, &recs), ==, 0);
    lev_test_records_free(recs, 0);

    CHECK_INT(it_evctl(NULL, NULL, NULL, "replay", src, "--from", from, "--until", until, "--to",
                       dest, NULL),
              ==, 0);
    int want[N] = {0};
    for (int i = 3; i < 7; i++)
        want[i] = 1;
    CHECK_INT(check_copies(src, dest, published, ids, N, want, 4), ==, 4);
    json_decref(published);
    unlink(path);
}

static void interrupted_replay_prints_resume_point_and_resuming_copies_the_rest_once(void)
{
    enum { N = 30 };
    static char ids[N][LEV_UUID_STR_LEN];
    char src[96], dest[128], path[256];
    lev_test_unique("it-evctl-rint", src, sizeof src);
    snprintf(dest, sizeof dest, "%s-to", src);
    REQUIRE(lev_test_create_topic(src, 2) == 0 && lev_test_create_topic(dest, 2) == 0);
    it_orders_file(N, ids, 0, path, sizeof path);
    json_t *published = publish(path, src);
    REQUIRE(published && json_array_size(published) == N);

    /* 10 a second: Ctrl-C once the first copy has arrived */
    const char *args[] = {"replay", src,      "--from", "beginning", "--to",
                          dest,     "--rate", "10/s",   NULL};
    evctl_proc_t proc;
    it_evctl_startv(&proc, NULL, args);
    CHECK(lev_test_wait_topic_end(dest, 1, 60000) == 0);
    kill(proc.pid, SIGINT);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl_finish(&proc, 60000, &out, &err), ==, 130);
    json_t *lines = it_lines(out);
    json_t *sum = json_array_get(lines, json_array_size(lines) - 1);
    CHECK(json_is_true(json_object_get(sum, "interrupted")));
    const char *resume = it_str(sum, "resume");
    CHECK(resume != NULL);
    CHECK(strstr(err, "resume with --from ") != NULL);
    json_int_t first = it_int(sum, "copied");
    CHECK(first > 0 && first < N);
    free(out);
    free(err);

    CHECK_INT(it_evctl(&out, NULL, NULL, "replay", src, "--from", resume ? resume : "beginning",
                       "--to", dest, "--rate", "0", NULL),
              ==, 0);
    json_t *lines2 = it_lines(out);
    free(out);
    CHECK_INT(first + it_int(json_array_get(lines2, 0), "copied"), ==, N);
    int want[N];
    for (int i = 0; i < N; i++)
        want[i] = 1;
    CHECK_INT(check_copies(src, dest, published, ids, N, want, N), ==, N);
    json_decref(lines);
    json_decref(lines2);
    json_decref(published);
    unlink(path);
}

static void replay_into_the_same_topic_stops_at_the_end_it_started_with(void)
{
    enum { N = 6 };
    static char ids[N][LEV_UUID_STR_LEN];
    char src[128], path[256];
    lev_test_unique("it-evctl-rsame", src, sizeof src);
    REQUIRE(lev_test_create_topic(src, 1) == 0);
    it_orders_file(N, ids, 0, path, sizeof path);
    json_t *published = publish(path, src);
    REQUIRE(published);
    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "replay", src, "--from", "beginning", "--key", ids[2],
                       "--rate", "0", NULL),
              ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(it_int(json_array_get(lines, 0), "copied"), ==, 1);
    CHECK_INT(it_int(json_array_get(lines, 0), "skipped"), ==, N - 1);
    lev_test_record_t *recs = NULL;
    size_t got = lev_test_read_topic(src, N + 1, 15000, &recs);
    CHECK_INT(got, ==, N + 1);
    char from[256];
    lev_test_header(&recs[N], "evctl_replay_from", from, sizeof from);
    char want[256];
    snprintf(want, sizeof want, "%s/0/2", src);
    CHECK_STR(from, want);
    /* replaying the copy replaces the provenance headers, never stacks them */
    CHECK_INT(it_evctl(NULL, NULL, NULL, "replay", src, "--from", "6", NULL), ==, 0);
    lev_test_records_free(recs, got);
    got = lev_test_read_topic(src, N + 2, 15000, &recs);
    CHECK_INT(got, ==, N + 2);
    int count = 0;
    if (got == N + 2 && recs[N + 1].headers) {
        const void *v;
        size_t sz;
        for (size_t k = 0;
             rd_kafka_header_get(recs[N + 1].headers, k, "evctl_replay_from", &v, &sz) == 0; k++)
            count++;
    }
    CHECK_INT(count, ==, 1);
    lev_test_records_free(recs, got);
    json_decref(lines);
    json_decref(published);
    unlink(path);
}

/* A dry run checks what the run checks: a destination topic that does not
 * exist fails both the same way (exit 65, nothing sent), never only the
 * real run. */
static void a_dry_run_fails_where_the_run_fails(void)
{
    enum { N = 3 };
    static char ids[N][LEV_UUID_STR_LEN];
    char src[96], missing[128], path[256];
    lev_test_unique("it-evctl-rdry", src, sizeof src);
    snprintf(missing, sizeof missing, "%s-missing", src);
    REQUIRE(lev_test_create_topic(src, 1) == 0);
    it_orders_file(N, ids, 0, path, sizeof path);
    json_t *published = publish(path, src);
    REQUIRE(published && json_array_size(published) == N);
    json_decref(published);

    for (int dry = 1; dry >= 0; dry--) {
        char *out = NULL, *err = NULL;
        CHECK_INT(it_evctl(&out, &err, NULL, "replay", src, "--from", "beginning", "--to", missing,
                           dry ? "--dry-run" : NULL, NULL),
                  ==, 65);
        CHECK(err && strstr(err, "--to: topic") && strstr(err, missing) &&
              strstr(err, "does not exist"));
        CHECK_STR(out, ""); /* no record, no summary: nothing was read */
        free(out);
        free(err);
        CHECK_INT(it_evctl(&out, &err, NULL, "publish", path, "--topic", missing,
                           dry ? "--dry-run" : NULL, NULL),
                  ==, 65);
        CHECK(err && strstr(err, missing) && strstr(err, "does not exist"));
        CHECK_STR(out, "");
        free(out);
        free(err);
    }
    /* and neither created it */
    char *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "tail", missing, NULL), ==, 65);
    free(err);
    unlink(path);
}

CHECK_MAIN(CASE(replay_by_offset_range_copies_exactly_that_range),
           CASE(replay_by_time_range_copies_exactly_that_range),
           CASE(interrupted_replay_prints_resume_point_and_resuming_copies_the_rest_once),
           CASE(replay_into_the_same_topic_stops_at_the_end_it_started_with),
           CASE(a_dry_run_fails_where_the_run_fails))
