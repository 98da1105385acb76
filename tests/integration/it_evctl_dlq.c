/*
 * evctl dlq list / show / redrive against a real broker: grouping and
 * counts, one record in full, redrive with provenance and without the
 * dead-letter headers, dry runs, and dead letters of a real worker that,
 * once fixed, processes the redriven events.
 */
#include "it_evctl.h"

#include <pthread.h>
#include <stdatomic.h>

/* Writes a dead-letter record like the worker does (the lev_* headers). */
static int dead_letter(const char *dlq, int32_t partition, const char *orig, const char *key,
                       const void *value, size_t len, const char *cls, const char *msg,
                       const char *ce_id)
{
    const char *const h[] = {"ce_id",
                             ce_id,
                             "ce_type",
                             "shop.order.OrderPlaced",
                             "x-kept",
                             "yes",
                             LEV_H_DLQ_VERSION,
                             "1",
                             LEV_H_ORIG_TOPIC,
                             orig,
                             LEV_H_ORIG_PARTITION,
                             "0",
                             LEV_H_ORIG_OFFSET,
                             "7",
                             LEV_H_ORIG_TIMESTAMP,
                             "1795281000000",
                             LEV_H_GROUP,
                             "g",
                             LEV_H_SERVICE,
                             "svc",
                             LEV_H_ERROR_CLASS,
                             cls,
                             LEV_H_ERROR_MESSAGE,
                             msg,
                             LEV_H_ATTEMPTS,
                             "4",
                             LEV_H_FIRST_FAILURE,
                             "1795281000100",
                             LEV_H_LAST_FAILURE,
                             "1795281000200",
                             NULL};
    return it_produce_raw(dlq, partition, key, value, len, h);
}

/* An encoded OrderPlaced (framed) for the order id; malloc'd. */
static void *encoded_order(const char *id, size_t *len)
{
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    json_t *j = lev_test_order_json(id, 1);
    avro_value_t v;
    void *buf = NULL;
    if (codec && s && lev_codec_from_json(codec, s, j, &v, NULL) == 0) {
        if (lev_codec_encode(codec, s, &v, &buf, len, NULL) != 0)
            buf = NULL;
        avro_value_decref(&v);
    }
    json_decref(j);
    lev_codec_destroy(codec);
    return buf;
}

typedef struct fixture_s {
    char group[96], dlq[128], src[128];
    char ids[6][LEV_UUID_STR_LEN];
    void *values[6];
    size_t lens[6];
} fixture_t;

#define BOOM_0 "boom: order 6f1c2b1e-8a4d-4c3e-9b2a-1d2e3f4a5b6c took 1200 ms"
#define BOOM_2 "boom: order 0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D took 87.5 ms"
#define BOOM_5 "boom: order 11111111-2222-4333-8444-555555555555 took 5 ms"

/* Six dead letters: three "handler: boom ..." that differ in an id and a
 * number (one on partition 1), two "decode: bad bytes" (garbage values),
 * one "handler: other" that names a field by sha256 and a quoted value. */
static int fixture(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    lev_test_unique("it-evctl-g", f->group, sizeof f->group);
    lev_dlq_topic_name(f->group, f->dlq, sizeof f->dlq);
    snprintf(f->src, sizeof f->src, "%s-src", f->group);
    if (lev_test_create_topic(f->dlq, 2) != 0 || lev_test_create_topic(f->src, 2) != 0)
        return -1;
    static const struct {
        int partition;
        const char *cls, *msg;
        int garbage;
    } spec[6] = {{0, "handler", BOOM_0, 0},
                 {0, "decode", "bad bytes", 1},
                 {1, "handler", BOOM_2, 0},
                 {0, "handler", "other: sha256 of \"x-1\" is 9f86d081884c7d659a2feaa0c55ad015", 0},
                 {0, "decode", "bad bytes", 1},
                 {1, "handler", BOOM_5, 0}};
    for (int i = 0; i < 6; i++) {
        lev_uuid4(f->ids[i]);
        if (spec[i].garbage) {
            f->values[i] = strdup("\x01garbage");
            f->lens[i] = 8;
        } else {
            f->values[i] = encoded_order(f->ids[i], &f->lens[i]);
        }
        if (!f->values[i] || dead_letter(f->dlq, spec[i].partition, f->src, f->ids[i], f->values[i],
                                         f->lens[i], spec[i].cls, spec[i].msg, f->ids[i]) != 0)
            return -1;
    }
    return 0;
}

static void fixture_clear(fixture_t *f)
{
    for (int i = 0; i < 6; i++)
        free(f->values[i]);
}

static void dlq_list_groups_by_class_and_reason_with_counts(void)
{
    fixture_t f;
    REQUIRE(fixture(&f) == 0);
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "dlq", "list", f.group, NULL), ==, 0);
    json_t *lines = it_lines(out);
    CHECK(strstr(err, "6 dead letters") != NULL);
    free(out);
    free(err);
    CHECK_INT(json_array_size(lines), ==, 3);
    json_t *a = json_array_get(lines, 0), *b = json_array_get(lines, 1),
           *c = json_array_get(lines, 2);
    /* records that differ only in ids and numbers group together */
    CHECK_STR(it_str(a, "class"), "handler");
    CHECK_STR(it_str(a, "reason"), "boom: order <uuid> took <n> ms");
    const char *example = it_str(a, "message"); /* the latest, as it is */
    CHECK(example &&
          (!strcmp(example, BOOM_0) || !strcmp(example, BOOM_2) || !strcmp(example, BOOM_5)));
    CHECK_INT(it_int(a, "count"), ==, 3);
    CHECK_STR(it_str(b, "class"), "decode");
    CHECK_STR(it_str(b, "reason"), "bad bytes");
    CHECK_INT(it_int(b, "count"), ==, 2);
    CHECK_STR(it_str(c, "reason"), "other: sha256 of \"<text>\" is <hex>");
    CHECK_INT(it_int(c, "count"), ==, 1);
    CHECK(it_str(a, "first") && it_str(a, "last") &&
          strcmp(it_str(a, "first"), it_str(a, "last")) <= 0);
    CHECK_INT(
        json_integer_value(json_object_get(json_object_get(a, "types"), "shop.order.OrderPlaced")),
        ==, 3);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(a, "original_topics"), f.src)), ==,
              3);
    json_decref(lines);

    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "list", f.group, "--format", "table", NULL), ==, 0);
    CHECK(strstr(out, "boom: order <uuid> took <n> ms") && strstr(out, "6 dead letters"));
    free(out);
    /* nothing dead-lettered after now */
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "list", f.group, "--since", "now", NULL), ==, 0);
    CHECK_STR(out, "");
    free(out);
    /* a group without a dead-letter topic */
    CHECK_INT(it_evctl(NULL, &err, NULL, "dlq", "list", "it-evctl-no-such-group", NULL), ==, 65);
    CHECK(strstr(err, "does not exist") != NULL);
    free(err);
    fixture_clear(&f);
}

static void dlq_show_prints_one_record_with_its_dead_letter_headers(void)
{
    fixture_t f;
    REQUIRE(fixture(&f) == 0);
    char *out = NULL;
    /* partition 1 holds records 2 and 5: offset 0 is record 2 */
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "show", f.group, "--partition", "1", "--offset",
                       "0", NULL),
              ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 1);
    json_t *r = json_array_get(lines, 0);
    CHECK_STR(it_str(r, "headers.ce_id"), f.ids[2]);
    CHECK_STR(it_str(r, "value.order_id"), f.ids[2]);
    CHECK_STR(it_str(r, "dead_letter.error_class"), "handler");
    CHECK_STR(it_str(r, "dead_letter.error_message"), BOOM_2);
    CHECK_STR(it_str(r, "dead_letter.original_topic"), f.src);
    CHECK_STR(it_str(r, "dead_letter.attempts"), "4");
    CHECK(it_str(r, "dead_letter.first_failure") != NULL);
    json_decref(lines);
    char *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "dlq", "show", f.group, "--partition", "1", "--offset",
                       "9", NULL),
              ==, 65);
    free(err);
    CHECK_INT(it_evctl(NULL, &err, NULL, "dlq", "show", f.group, NULL), ==, 64);
    free(err);
    fixture_clear(&f);
}

static void dlq_redrive_sends_back_with_provenance_and_without_dead_letter_headers(void)
{
    fixture_t f;
    REQUIRE(fixture(&f) == 0);
    char *out = NULL;
    /* dry run: prints, sends nothing */
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "redrive", f.group, "--class", "handler",
                       "--dry-run", NULL),
              ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    json_t *would = it_with(lines, "send_headers");
    CHECK_INT(json_array_size(would), ==, 4);
    CHECK_INT(it_int(json_array_get(lines, json_array_size(lines) - 1), "would_copy"), ==, 4);
    json_decref(would);
    json_decref(lines);
    lev_test_record_t *recs = NULL;
    CHECK_INT(lev_test_read_topic(f.src, 0, 3000, &recs), ==, 0);
    lev_test_records_free(recs, 0);

    /* the handler failures only, type filter included */
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "redrive", f.group, "--class", "handler", "--type",
                       "shop.order.OrderPlaced", "--rate", "0", NULL),
              ==, 0);
    lines = it_lines(out);
    free(out);
    json_t *sum = json_array_get(lines, 0);
    CHECK_INT(it_int(sum, "copied"), ==, 4);
    CHECK_INT(it_int(sum, "skipped"), ==, 2);
    json_decref(lines);
    size_t got = lev_test_read_topic(f.src, 4, 20000, &recs);
    CHECK_INT(got, ==, 4);
    int good = 0;
    for (size_t r = 0; r < got; r++) {
        char id[64], from[256], at[64], kept[16];
        lev_test_header(&recs[r], "ce_id", id, sizeof id);
        lev_test_header(&recs[r], "evctl_redrive_from", from, sizeof from);
        lev_test_header(&recs[r], "evctl_redrive_at", at, sizeof at);
        lev_test_header(&recs[r], "x-kept", kept, sizeof kept);
        int i = it_find_id(f.ids, 6, id);
        int ok = i >= 0 && strcmp(recs[r].key, f.ids[i]) == 0 && recs[r].value_len == f.lens[i] &&
                 memcmp(recs[r].value, f.values[i], f.lens[i]) == 0 && strcmp(kept, "yes") == 0;
        ok &= strncmp(from, f.dlq, strlen(f.dlq)) == 0 && from[strlen(f.dlq)] == '/' && at[0];
        /* no lev_* header survives */
        const char *name;
        const void *v;
        size_t sz;
        for (size_t k = 0;
             recs[r].headers && rd_kafka_header_get_all(recs[r].headers, k, &name, &v, &sz) == 0;
             k++)
            ok &= strncmp(name, "lev_", 4) != 0;
        good += ok;
    }
    CHECK_INT(good, ==, 4);
    lev_test_records_free(recs, got);
    fixture_clear(&f);
}

/* ---- a real worker: dead letters while broken, processed once fixed ---- */

typedef struct svc_s {
    lev_test_run_t run; /* its worker, run.w */
    char (*ids)[LEV_UUID_STR_LEN];
    size_t n;
    atomic_int fixed;
    atomic_int handled[8]; /* successful handler calls per id */
    atomic_int failed[8];
} svc_t;

static int is_broken(size_t i)
{
    return i == 1 || i == 3 || i == 4;
}

static lev_result_t handle(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    svc_t *s = opaque;
    int i = it_find_id(s->ids, s->n, ev->id);
    if (i < 0)
        return LEV_RESULT_OK;
    if (is_broken((size_t)i) && !atomic_load(&s->fixed)) {
        atomic_fetch_add(&s->failed[i], 1);
        lev_ctx_set_error(ctx, "card processor refused the token");
        return LEV_RESULT_PERMANENT;
    }
    atomic_fetch_add(&s->handled[i], 1);
    return LEV_RESULT_OK;
}

static int count(svc_t *s, int what_handled)
{
    int n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += atomic_load(what_handled ? &s->handled[i] : &s->failed[i]) > 0;
    return n;
}

static void redriven_dead_letters_are_processed_by_the_fixed_worker(void)
{
    enum { N = 6 };
    static char ids[N][LEV_UUID_STR_LEN];
    svc_t s = {.ids = ids, .n = N};
    char src[128], dlq[192];
    lev_config_t conf;
    lev_error_t err;
    lev_test_unique("it-evctl-fix", src, sizeof src);
    REQUIRE(lev_test_create_topic(src, 2) == 0);
    REQUIRE(lev_test_publish_orders(src, N, ids, NULL) == 0);
    lev_test_config(&conf, "it-evctl-fix");
    conf.retry.levels = 0; /* permanent failures go straight to the dead-letter topic */
    lev_dlq_topic_name(conf.group_id, dlq, sizeof dlq);
    s.run.w = lev_worker_new(&conf, &err);
    REQUIRE(s.run.w);
    CHECK(lev_worker_on(s.run.w, "shop.order.OrderPlaced", handle, &s, &err) == 0);
    CHECK(lev_worker_subscribe(s.run.w, src, &err) == 0);
    REQUIRE(lev_test_run_start(&s.run, s.run.w) == 0);

    /* broken: three handled, three dead-lettered */
    lev_test_record_t *recs = NULL;
    size_t got = lev_test_read_topic(dlq, 3, 60000, &recs);
    lev_test_records_free(recs, got);
    int64_t deadline = lev_mono_ms() + 30000;
    while (count(&s, 1) < 3 && lev_mono_ms() < deadline)
        lev_test_sleep_ms(50);
    CHECK_INT(got, ==, 3);
    CHECK_INT(count(&s, 1), ==, 3);
    CHECK_INT(count(&s, 0), ==, 3);

    char *out = NULL;
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "list", conf.group_id, NULL), ==, 0);
    json_t *lines = it_lines(out);
    free(out);
    CHECK_INT(json_array_size(lines), ==, 1);
    CHECK_INT(it_int(json_array_get(lines, 0), "count"), ==, 3);
    CHECK(strstr(it_str(json_array_get(lines, 0), "message")
                     ? it_str(json_array_get(lines, 0), "message")
                     : "",
                 "card processor refused") != NULL);
    json_decref(lines);

    /* fixed: redrive, and each is processed, once */
    atomic_store(&s.fixed, 1);
    CHECK_INT(it_evctl(&out, NULL, NULL, "dlq", "redrive", conf.group_id, NULL), ==, 0);
    lines = it_lines(out);
    free(out);
    CHECK_INT(it_int(json_array_get(lines, 0), "copied"), ==, 3);
    json_decref(lines);
    deadline = lev_mono_ms() + 60000;
    while (count(&s, 1) < N && lev_mono_ms() < deadline)
        lev_test_sleep_ms(50);
    /* every record of src finished: a second handling would have shown */
    CHECK(lev_test_wait_caught_up(conf.group_id, src, 60000) == 0);
    lev_worker_stop(s.run.w);
    CHECK_INT(lev_test_run_join(&s.run), ==, 0);
    for (size_t i = 0; i < N; i++) {
        CHECK_INT(atomic_load(&s.handled[i]), ==, 1);
        CHECK_INT(atomic_load(&s.failed[i]), ==, is_broken(i) ? 1 : 0);
    }
    lev_worker_destroy(s.run.w);
    lev_config_clear(&conf);
}

/* A redrive never sends to a topic that does not exist (a broker that
 * creates topics on demand would make one): with --to, nothing is read;
 * a dead letter whose original topic is gone is unroutable, named, not
 * sent, and makes the exit code 65, in the dry run exactly as in the run. */
static void redrive_to_a_missing_topic_fails_alike_in_dry_run_and_run(void)
{
    fixture_t f;
    REQUIRE(fixture(&f) == 0);
    char gone[192];
    snprintf(gone, sizeof gone, "%s-gone", f.src);
    char id[LEV_UUID_STR_LEN];
    lev_uuid4(id);
    size_t len = 0;
    void *value = encoded_order(id, &len);
    REQUIRE(value);
    REQUIRE(dead_letter(f.dlq, 1, gone, id, value, len, "handler", "boom", id) == 0);
    free(value);

    for (int dry = 1; dry >= 0; dry--) {
        char *out = NULL, *err = NULL;
        CHECK_INT(it_evctl(&out, &err, NULL, "dlq", "redrive", f.group, "--to", gone, "--rate", "0",
                           dry ? "--dry-run" : NULL, NULL),
                  ==, 65);
        CHECK(err && strstr(err, "--to: topic") && strstr(err, "does not exist"));
        CHECK_STR(out, "");
        free(out);
        free(err);

        CHECK_INT(it_evctl(&out, &err, NULL, "dlq", "redrive", f.group, "--class", "handler",
                           "--rate", "0", dry ? "--dry-run" : NULL, NULL),
                  ==, 65);
        json_t *lines = it_lines(out);
        json_t *sum = json_array_get(lines, json_array_size(lines) - 1);
        CHECK_INT(it_int(sum, dry ? "would_copy" : "copied"), ==, 4);
        CHECK_INT(it_int(sum, "unroutable"), ==, 1);
        CHECK(err && strstr(err, gone) && strstr(err, "does not exist") &&
              strstr(err, "1 unroutable"));
        json_decref(lines);
        free(out);
        free(err);
    }
    lev_test_record_t *recs = NULL;
    size_t got = lev_test_read_topic(f.src, 4, 20000, &recs);
    CHECK_INT(got, ==, 4); /* the four of the existing topic, once */
    lev_test_records_free(recs, got);
    char *err = NULL;
    CHECK_INT(it_evctl(NULL, &err, NULL, "tail", gone, NULL), ==, 65); /* not created */
    free(err);
    fixture_clear(&f);
}

/* --class with a value no dead letter has: a class libevents never writes
 * is taken for a mistake (exit 65, the classes present and the known ones
 * listed, nothing sent for it); one it writes is merely absent (a note,
 * exit 0), so a scheduled redrive of a class does not fail for want of
 * failures. */
static void redrive_of_a_class_that_matches_nothing_says_so(void)
{
    fixture_t f;
    REQUIRE(fixture(&f) == 0);
    for (int dry = 1; dry >= 0; dry--) {
        char *out = NULL, *err = NULL;
        CHECK_INT(it_evctl(&out, &err, NULL, "dlq", "redrive", f.group, "--class", "nosuch",
                           "--rate", "0", dry ? "--dry-run" : NULL, NULL),
                  ==, 65);
        CHECK(err && strstr(err, "--class nosuch matches no dead letter"));
        CHECK(err && strstr(err, "handler (4), decode (2)"));
        CHECK(err && strstr(err, "retries-exhausted") && strstr(err, "bad-id"));
        json_t *lines = it_lines(out);
        json_t *sum = json_array_get(lines, json_array_size(lines) - 1);
        CHECK_INT(json_array_size(lines), ==, 1);
        CHECK_INT(it_int(sum, dry ? "would_copy" : "copied"), ==, 0);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(sum, "classes"), "handler")),
                  ==, 4);
        json_decref(lines);
        free(out);
        free(err);
    }
    lev_test_record_t *recs = NULL;
    CHECK_INT(lev_test_read_topic(f.src, 0, 3000, &recs), ==, 0); /* nothing sent */
    lev_test_records_free(recs, 0);

    /* a class libevents writes, absent here: said, not an error */
    char *out = NULL, *err = NULL;
    CHECK_INT(it_evctl(&out, &err, NULL, "dlq", "redrive", f.group, "--class", "too-large",
                       "--dry-run", NULL),
              ==, 0);
    CHECK(err && strstr(err, "--class too-large: no dead letter of this class"));
    free(out);
    free(err);
    /* one good, one mistaken: the good one is redriven, the mistake reported */
    CHECK_INT(it_evctl(&out, &err, NULL, "dlq", "redrive", f.group, "--class", "handler,nosuch",
                       "--dry-run", NULL),
              ==, 65);
    json_t *lines = it_lines(out);
    CHECK_INT(it_int(json_array_get(lines, json_array_size(lines) - 1), "would_copy"), ==, 4);
    CHECK(err && strstr(err, "--class nosuch matches no dead letter"));
    json_decref(lines);
    free(out);
    free(err);
    fixture_clear(&f);
}

CHECK_MAIN(CASE(dlq_list_groups_by_class_and_reason_with_counts),
           CASE(dlq_show_prints_one_record_with_its_dead_letter_headers),
           CASE(dlq_redrive_sends_back_with_provenance_and_without_dead_letter_headers),
           CASE(redriven_dead_letters_are_processed_by_the_fixed_worker),
           CASE(redrive_to_a_missing_topic_fails_alike_in_dry_run_and_run),
           CASE(redrive_of_a_class_that_matches_nothing_says_so))
