/*
 * kill -9 a worker in the middle of a run: after a restart every event is
 * handled at least once and none is skipped.
 */
#include "check.h"
#include "testutil.h"

#include <signal.h>
#include <sys/wait.h>

static void kill9_mid_run_then_restart_handles_every_event_at_least_once(void)
{
    enum { N = 2000 };
    char in[96], out[128], group[128], effect[256], log[256];
    lev_test_unique("it-crash", in, sizeof in);
    snprintf(out, sizeof out, "%s-out", in);
    snprintf(group, sizeof group, "%s-group", in);
    snprintf(effect, sizeof effect, "%s/%s.effects", lev_test_env("TMPDIR", "/tmp"), in);
    snprintf(log, sizeof log, "%s/%s.log", lev_test_env("TMPDIR", "/tmp"), in);
    REQUIRE(lev_test_create_topic(in, 3) == 0);
    REQUIRE(lev_test_create_topic(out, 3) == 0);
    static char ids[N][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(in, N, ids, NULL) == 0);

    char e_in[160], e_out[160], e_group[160], e_effect[300];
    snprintf(e_in, sizeof e_in, "IN_TOPIC=%s", in);
    snprintf(e_out, sizeof e_out, "OUT_TOPIC=%s", out);
    snprintf(e_group, sizeof e_group, "LEV_GROUP_ID=%s", group);
    snprintf(e_effect, sizeof e_effect, "EFFECT_LOG=%s", effect);
    /* a short lease: the claims the killed worker held expire soon */
    char *env[] = {
        e_in, e_out, e_group, e_effect, "HANDLE_DELAY_MS=2", "LEV_IDEMPOTENCY_LEASE_MS=2s", NULL};

    for (int round = 0; round < 2; round++) {
        pid_t a = lev_test_start_worker(env, log);
        size_t target = (size_t)(300 + round * 500);
        CHECK(lev_test_wait_lines(effect, target, 60000) >= target);
        kill(a, SIGKILL);
        int status;
        CHECK(lev_test_wait(a, 10000, &status) == 0);
        CHECK(WIFSIGNALED(status));
    }
    pid_t b = lev_test_start_worker(env, log);
    size_t nout = 0;
    char **got = NULL;
    int64_t deadline = lev_mono_ms() + 120000;
    size_t missing = N;
    while (missing > 0 && lev_mono_ms() < deadline) {
        lev_test_sleep_ms(1000);
        if (got)
            lev_test_strings_free(got, nout);
        got = lev_test_read_order_ids(out, 0, 30000, &nout);
        missing = lev_test_missing(ids, N, got, nout);
    }
    CHECK_INT(missing, ==, 0);
    size_t nh;
    char **handled = lev_test_effect_ids(effect, &nh);
    CHECK_INT(lev_test_distinct(handled, nh), ==, N);
    fprintf(stderr, "handler runs: %zu for %d events (%zu repeated after the kills)\n", nh, N,
            nh - N);
    lev_test_strings_free(handled, nh);
    lev_test_strings_free(got, nout);
    kill(b, SIGTERM);
    int status;
    CHECK(lev_test_wait(b, 30000, &status) == 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

CHECK_MAIN(CASE(kill9_mid_run_then_restart_handles_every_event_at_least_once))
