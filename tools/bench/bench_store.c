/*
 * bench_store: idempotency throughput of the Redis store. For batch sizes
 * 1, 16, 100 and 500 it claims a batch of new keys and completes it, over
 * and over for a few seconds, and prints keys per second (one claim plus
 * one complete per key) and round trips per batch.
 *
 *   REDIS_URL=redis://127.0.0.1:16379/0 bench_store [seconds-per-size]
 *
 * Keys are "bench-store:<pid>-<random>:<batch>:<n>", done with a 60 s TTL,
 * so they go away by themselves. Not a test: it checks only that every
 * claim was owned and every completion ok.
 */
#include <libevents.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_BATCH 500
#define BENCH_KEY_SIZE 128

/* Monotonic time in seconds. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Claims and completes batches of `batch` new keys for `seconds`; prints a
 * result line. Returns 0, or 1 when a call failed or a key was not owned. */
static int bench_batch(lev_store_t *store, const char *run, size_t batch, double seconds)
{
    static char storage[BENCH_MAX_BATCH][BENCH_KEY_SIZE];
    const char *keys[BENCH_MAX_BATCH];
    lev_claim_t out[BENCH_MAX_BATCH];
    int ok[BENCH_MAX_BATCH];
    lev_error_t err = {0};
    char msg[800];
    uint64_t n = 0, batches = 0, bad = 0;
    uint64_t rt0 = lev_store_round_trips(store);
    double t0 = now_s(), elapsed;

    for (size_t i = 0; i < batch; i++)
        keys[i] = storage[i];
    do {
        for (size_t i = 0; i < batch; i++)
            snprintf(storage[i], BENCH_KEY_SIZE, "bench-store:%s:%zu:%" PRIu64, run, batch, n + i);
        if (lev_store_claim(store, keys, batch, 30000, out, &err) != 0 ||
            lev_store_complete(store, keys, batch, 60000, ok, &err) != 0) {
            fprintf(stderr, "bench_store: %s\n", lev_error_format(&err, msg, sizeof msg));
            return 1;
        }
        for (size_t i = 0; i < batch; i++)
            bad += out[i] != LEV_CLAIM_OWNED || ok[i] != 1;
        n += batch;
        batches++;
        elapsed = now_s() - t0;
    } while (elapsed < seconds);

    printf("%5zu %10" PRIu64 " %8.2f %12.0f %10.1f %8.2f\n", batch, n, elapsed, (double)n / elapsed,
           elapsed / (double)batches * 1e6,
           (double)(lev_store_round_trips(store) - rt0) / (double)batches);
    if (bad)
        fprintf(stderr, "bench_store: %" PRIu64 " keys not owned or not completed\n", bad);
    return bad != 0;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {1, 16, 100, 500};
    const char *url = getenv("REDIS_URL");
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    lev_error_t err = {0};
    char run[64], msg[800], id[LEV_UUID_STR_LEN];
    int rc = 0;

    if (!url || !*url)
        url = "redis://127.0.0.1:16379/0";
    if (seconds <= 0) {
        fprintf(stderr,
                "usage: bench_store [seconds-per-size]   (REDIS_URL from the environment)\n");
        return 2;
    }
    lev_store_t *store = lev_store_new(url, 5000, &err);
    if (!store) {
        fprintf(stderr, "bench_store: %s\n", lev_error_format(&err, msg, sizeof msg));
        return 1;
    }
    lev_uuid4(id);
    snprintf(run, sizeof run, "%d-%.8s", (int)getpid(), id);

    printf("claim + complete of new keys, %.1f s per batch size\n", seconds);
    printf("%5s %10s %8s %12s %10s %8s\n", "batch", "keys", "seconds", "keys/s", "us/batch",
           "rt/batch");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && rc == 0; i++)
        rc = bench_batch(store, run, sizes[i], seconds);
    lev_store_destroy(store);
    return rc;
}
