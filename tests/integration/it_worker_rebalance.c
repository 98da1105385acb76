/*
 * Members joining and leaving a group while events flow, against a real
 * broker and Redis, with cooperative (incremental) and eager assignment:
 * nothing is missing, and no handler runs twice, so no side effect happens
 * twice. Prints the longest pause in handling while members came and went.
 */
#include "check.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

enum { N = 5000, WAVES = 10, PARTITIONS = 6 };

typedef struct {
    char in[96], out[128], group[128], effect[256];
    char e_in[160], e_out[160], e_group[160], e_effect[300], e_strategy[128];
    char (*ids)[LEV_UUID_STR_LEN];
    int publish_rc;
    _Atomic size_t published;
} flow_t;

/* Publishes N orders in WAVES waves a second apart. */
static void *publisher(void *arg)
{
    flow_t *f = arg;
    for (int w = 0; w < WAVES && f->publish_rc == 0; w++) {
        f->publish_rc = lev_test_publish_orders(f->in, N / WAVES, f->ids + w * (N / WAVES), NULL);
        f->published += N / WAVES;
        lev_test_sleep_ms(1000);
    }
    return NULL;
}

static pid_t member(flow_t *f, int n)
{
    char log[300];
    snprintf(log, sizeof log, "%s/%s-%d.log", lev_test_env("TMPDIR", "/tmp"), f->in, n);
    char *env[] = {f->e_in, f->e_out, f->e_group, f->e_effect, f->e_strategy, "HANDLE_DELAY_MS=1",
                   NULL};
    return lev_test_start_worker(env, log);
}

/* Sleeps ms while watching the effect log grow; *longest gets the longest
 * time it did not grow while published records were waiting. */
static void watch(flow_t *f, int ms, size_t *lines, int64_t *since, int64_t *longest)
{
    int64_t end = lev_mono_ms() + ms;
    while (lev_mono_ms() < end) {
        size_t n = lev_test_wait_lines(f->effect, *lines + 1, 20);
        int64_t now = lev_mono_ms();
        if (n > *lines || n >= f->published) {
            *lines = n;
            *since = now; /* handling, or nothing to handle */
        } else if (now - *since > *longest) {
            *longest = now - *since;
        }
    }
}

static void members_come_and_go(const char *strategy)
{
    flow_t f;
    memset(&f, 0, sizeof f);
    lev_test_unique("it-rebalance", f.in, sizeof f.in);
    snprintf(f.out, sizeof f.out, "%s-out", f.in);
    snprintf(f.group, sizeof f.group, "%s-group", f.in);
    snprintf(f.effect, sizeof f.effect, "%s/%s.effects", lev_test_env("TMPDIR", "/tmp"), f.in);
    snprintf(f.e_in, sizeof f.e_in, "IN_TOPIC=%s", f.in);
    snprintf(f.e_out, sizeof f.e_out, "OUT_TOPIC=%s", f.out);
    snprintf(f.e_group, sizeof f.e_group, "LEV_GROUP_ID=%s", f.group);
    snprintf(f.e_effect, sizeof f.e_effect, "EFFECT_LOG=%s", f.effect);
    snprintf(f.e_strategy, sizeof f.e_strategy, "KAFKA_PARTITION_ASSIGNMENT_STRATEGY=%s", strategy);
    unlink(f.effect);
    REQUIRE(lev_test_create_topic(f.in, PARTITIONS) == 0);
    REQUIRE(lev_test_create_topic(f.out, PARTITIONS) == 0);
    f.ids = calloc(N, sizeof *f.ids);

    pthread_t pub;
    pthread_create(&pub, NULL, publisher, &f);
    size_t lines = 0;
    int64_t since = lev_mono_ms(), longest = 0;
    pid_t a = member(&f, 1);
    watch(&f, 3000, &lines, &since, &longest);
    pid_t b = member(&f, 2); /* a second member joins */
    watch(&f, 3000, &lines, &since, &longest);
    pid_t c = member(&f, 3); /* and a third */
    watch(&f, 3000, &lines, &since, &longest);
    CHECK_INT(lev_test_stop_worker(b), ==, 0); /* the second leaves */
    watch(&f, 3000, &lines, &since, &longest);
    CHECK_INT(lev_test_stop_worker(c), ==, 0); /* the third leaves */
    pthread_join(pub, NULL);
    REQUIRE(f.publish_rc == 0);
    int64_t deadline = lev_mono_ms() + 120000;
    while (lines < N && lev_mono_ms() < deadline)
        watch(&f, 500, &lines, &since, &longest);
    CHECK_INT(lev_test_stop_worker(a), ==, 0);

    size_t nh, nout;
    char **handled = lev_test_effect_ids(f.effect, &nh);
    char **out = lev_test_read_order_ids(f.out, N, 60000, &nout);
    size_t distinct = lev_test_distinct(handled, nh);
    fprintf(stderr,
            "  %s: %zu handler runs for %d events (%zu distinct), %zu outputs; longest pause "
            "in handling while members came and went: %" PRId64 " ms\n",
            strategy, nh, N, distinct, nout, longest);
    CHECK_INT(lev_test_missing(f.ids, N, out, nout), ==, 0);
    CHECK_INT(distinct, ==, N); /* nothing missing */
    CHECK_INT(nh, ==, N);       /* and no handler ran twice: no side effect twice */
    lev_test_strings_free(handled, nh);
    lev_test_strings_free(out, nout);
    free(f.ids);
}

static void cooperative_members_joining_and_leaving_lose_nothing_and_repeat_nothing(void)
{
    members_come_and_go("cooperative-sticky");
}

static void eager_members_joining_and_leaving_lose_nothing_and_repeat_nothing(void)
{
    members_come_and_go("range");
}

CHECK_MAIN(CASE(cooperative_members_joining_and_leaving_lose_nothing_and_repeat_nothing),
           CASE(eager_members_joining_and_leaving_lose_nothing_and_repeat_nothing))
