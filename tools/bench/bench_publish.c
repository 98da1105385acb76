/*
 * bench_publish: `evctl publish` against `kcat -P` sending the same encoded
 * records, in one run, against a real broker.
 *
 *   KAFKA_BOOTSTRAP=127.0.0.1:19092 LEV_SCHEMA_DIRS=schemas \
 *   bench_publish [lines [rounds]]
 *
 * Writes `lines` OrderPlaced JSON lines (default 200000) to a file, and the
 * same events Avro-encoded, with their keys, to a second file in kcat's
 * delimited form (delimiters of random bytes that no key or value holds).
 * Then, in each round (default 3), each to a fresh 3-partition topic:
 *   (a) kcat -P of the encoded file (on its standard input), with the eight
 *       CloudEvents headers evctl writes on every record (the same names,
 *       values of the same sizes): the same records, without the JSON,
 *       the validation and the delivery lines. The ceiling;
 *   (b) the same without the headers, printed for comparison;
 *   (c) evctl publish of the JSON file, its output lines to /dev/null.
 * (b) runs first; (a) and (c) follow in turns swapped every round, so that
 * neither always runs right after the other on a broker still busy with
 * its records.
 * Both kcat runs use the producer settings evctl uses (acks=all,
 * idempotence, linger.ms=5, lz4 compression, the murmur2_random
 * partitioner): the broker and the client do the same work per batch.
 * Each run's rate is lines / wall time of the process; evctl's peak RSS
 * comes from wait4. Every run must have written every record (counted from
 * the topic's watermarks) and exited 0. The last line is:
 *
 *   publish: lines=<n> evctl_eps=<n> kcat_eps=<n> ratio=<evctl/kcat> evctl_peak_rss_mib=<n>
 *
 * with medians over the rounds (the peak RSS is the largest). Not a test:
 * it prints figures.
 */
#define _GNU_SOURCE /* memmem */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PARTITIONS 3
#define DELIM_LEN 12

static int fail(const char *what, const lev_error_t *err)
{
    return bench_fail("bench_publish", what, err);
}

/* One child run: wall seconds, CPU seconds and peak RSS (KiB). */
typedef struct {
    double wall, cpu;
    long rss_kib;
    int status;
} run_t;

static int run_child(char *const argv[], const char *in_path, const char *out_path,
                     const char *err_path, run_t *r)
{
    int64_t t0 = bench_now_us();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int i = open(in_path ? in_path : "/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || i < 0)
            _exit(127);
        dup2(i, 0);
        dup2(o, 1);
        dup2(e, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    struct rusage ru;
    int st = 0;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            return -1;
    r->wall = (double)(bench_now_us() - t0) / 1e6;
    r->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    r->rss_kib = ru.ru_maxrss;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

/* Records written to a fresh topic: the sum of its high watermarks. */
static long topic_count(const lev_config_t *conf, const char *topic)
{
    return bench_topic_count(conf, topic, PARTITIONS);
}

static void random_fill(unsigned char d[DELIM_LEN])
{
    if (getrandom(d, DELIM_LEN, 0) != DELIM_LEN)
        abort();
    for (int i = 0; i < DELIM_LEN; i++) /* kcat's unescaping stops at a NUL */
        d[i] = (unsigned char)(1 + d[i] % 0x7f);
}

/* Delimiter bytes as kcat takes them: \xNN each. */
static void delim_arg(const unsigned char *d, char *out)
{
    for (int i = 0; i < DELIM_LEN; i++)
        sprintf(out + 4 * i, "\\x%02x", d[i]);
}

/* Writes the JSON lines and the kcat file; 0 or an exit code. */
static int make_inputs(const lev_config_t *conf, long n, const char *json_path,
                       const char *kcat_path, unsigned char kd[DELIM_LEN],
                       unsigned char vd[DELIM_LEN])
{
    lev_error_t err;
    lev_schemas_t *schemas = lev_schemas_new();
    if (lev_schemas_load_path(schemas, conf->schema_dirs, &err))
        return fail("schemas", &err);
    lev_codec_t *codec = lev_codec_new(schemas, NULL);
    const lev_schema_t *s = lev_schemas_find(schemas, "shop.order.OrderPlaced");
    FILE *jf = fopen(json_path, "w"), *kf = fopen(kcat_path, "w");
    if (!codec || !s || !jf || !kf)
        return fail("inputs", NULL);
    for (;;) { /* delimiters no key or value holds (checked below) */
        random_fill(kd);
        random_fill(vd);
        if (memcmp(kd, vd, DELIM_LEN) != 0)
            break;
    }
    for (long i = 0; i < n; i++) {
        char id[LEV_UUID_STR_LEN];
        lev_uuid4(id);
        json_t *v =
            json_pack("{s:s,s:s,s:{s:s},s:[{s:s,s:i,s:I}],s:s,s:I,s:s,s:I}", "order_id", id,
                      "customer_id", "cust-1", "customer_email", "string", "a@example.com", "items",
                      "sku", "BOOK-42", "quantity", 2, "unit_price_minor", (json_int_t)1999,
                      "currency", "USD", "total_minor", (json_int_t)3998, "payment_token",
                      "tok_visa_4242", "placed_at", (json_int_t)1763740800000);
        json_t *line = json_pack("{s:s,s:O}", "type", "shop.order.OrderPlaced", "value", v);
        char *text = json_dumps(line, JSON_COMPACT);
        avro_value_t av;
        void *buf = NULL;
        size_t len = 0;
        if (!text || lev_codec_from_json(codec, s, v, &av, &err) ||
            lev_codec_encode(codec, s, &av, &buf, &len, &err))
            return fail("encode", &err);
        avro_value_decref(&av);
        if (memmem(buf, len, vd, DELIM_LEN) || memmem(buf, len, kd, DELIM_LEN) ||
            memmem(id, strlen(id), kd, DELIM_LEN))
            return fail("a record holds a delimiter; run again", NULL);
        fprintf(jf, "%s\n", text);
        fwrite(id, 1, strlen(id), kf);
        fwrite(kd, 1, DELIM_LEN, kf);
        fwrite(buf, 1, len, kf);
        fwrite(vd, 1, DELIM_LEN, kf);
        free(buf);
        free(text);
        json_decref(line);
        json_decref(v);
    }
    int bad = fclose(jf) != 0;
    bad |= fclose(kf) != 0;
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
    return bad ? fail("writing the inputs", NULL) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (n <= 0 || rounds <= 0 || rounds > 20) {
        fprintf(stderr, "usage: bench_publish [lines [rounds (1-20)]]\n");
        return 64;
    }
    const char *evctl = getenv("EVCTL") ? getenv("EVCTL") : EVCTL_PATH;
    const char *kcat = getenv("KCAT") ? getenv("KCAT") : "kcat";
    lev_config_t conf;
    lev_error_t err;
    if (lev_config_from_env(&conf, "bench-publish", &err) != 0)
        return fail("configuration", &err);
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char json_path[512], kcat_path[512], log_path[512];
    snprintf(json_path, sizeof json_path, "%s/bench-publish-%d.jsonl", tmp, (int)getpid());
    snprintf(kcat_path, sizeof kcat_path, "%s/bench-publish-%d.kcat", tmp, (int)getpid());
    snprintf(log_path, sizeof log_path, "%s/bench-publish-%d.log", tmp, (int)getpid());
    unsigned char kd[DELIM_LEN], vd[DELIM_LEN];
    int64_t t0 = bench_now_us();
    if (make_inputs(&conf, n, json_path, kcat_path, kd, vd) != 0)
        return 1;
    printf("bench_publish: %ld OrderPlaced lines, %d rounds, %d partitions; inputs written in "
           "%.1f s\n",
           n, rounds, PARTITIONS, (double)(bench_now_us() - t0) / 1e6);
    char kdarg[4 * DELIM_LEN + 1], vdarg[4 * DELIM_LEN + 1];
    delim_arg(kd, kdarg);
    delim_arg(vd, vdarg);
    double evctl_eps[20], kcat_eps[20], bare_eps[20];
    /* the CloudEvents headers evctl writes on every record, as kcat -H
     * arguments: the same names and value sizes (values vary per record
     * in evctl, not in size) */
    lev_event_headers_t eh;
    lev_event_meta_t meta = {.source = conf.source};
    lev_event_headers(&eh, "shop.order.OrderPlaced", &meta);
    char hdr_args[LEV_EVENT_HEADERS_MAX][512];
    int nhdr = 0;
    for (size_t i = 0; i < eh.n && i < LEV_EVENT_HEADERS_MAX; i++, nhdr++)
        snprintf(hdr_args[i], sizeof hdr_args[i], "%s=%.*s", eh.h[i].name, (int)eh.h[i].size,
                 eh.h[i].value ? (const char *)eh.h[i].value : "");
    long peak_kib = 0;
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        char topics[3][128];
        char *names[3] = {topics[0], topics[1], topics[2]};
        snprintf(topics[0], sizeof topics[0], "bench-publish-%d-%d-kcat", (int)getpid(), r);
        snprintf(topics[1], sizeof topics[1], "bench-publish-%d-%d-evctl", (int)getpid(), r);
        snprintf(topics[2], sizeof topics[2], "bench-publish-%d-%d-kcat-bare", (int)getpid(), r);
        if (bench_admin_topics(&conf, names, 3, 1, PARTITIONS) != 0)
            return 1;
        char *kcat_argv[24 + 2 * LEV_EVENT_HEADERS_MAX + 1] = {
            (char *)kcat, "-P",  "-b", conf.bootstrap, "-t", topics[0],
            "-K",         kdarg, "-D", vdarg,          "-X", "acks=all"};
        int ka = 12;
        const char *more[] = {"-X", "enable.idempotence=true", "-X", "linger.ms=5",
                              "-X", "compression.type=lz4",    "-X", "partitioner=murmur2_random"};
        for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
            kcat_argv[ka++] = (char *)more[i];
        int bare_end = ka; /* the ceiling without headers ends here */
        for (int h = 0; h < nhdr; h++) {
            kcat_argv[ka++] = "-H";
            kcat_argv[ka++] = hdr_args[h];
        }
        kcat_argv[ka] = NULL;
        char *evctl_argv[] = {(char *)evctl, "publish", json_path, "--topic", topics[1], NULL};
        run_t kr, br, er;
        /* the bare run first (it is only printed); then kcat and evctl in
         * turns swapped every round, so that neither always runs right
         * after the other, on a broker still busy with its records */
        kcat_argv[bare_end] = NULL;
        kcat_argv[5] = topics[2];
        if (run_child(kcat_argv, kcat_path, "/dev/null", log_path, &br) != 0 || br.status != 0) {
            fprintf(stderr, "bench_publish: kcat failed (exit %d), see %s\n", br.status, log_path);
            rc = 1;
            break;
        }
        kcat_argv[bare_end] = "-H";
        kcat_argv[5] = topics[0];
        for (int k = 0; k < 2 && rc == 0; k++) {
            if ((k == 0) == (r % 2 == 0)) {
                if (run_child(kcat_argv, kcat_path, "/dev/null", log_path, &kr) != 0 ||
                    kr.status != 0) {
                    fprintf(stderr, "bench_publish: kcat failed (exit %d), see %s\n", kr.status,
                            log_path);
                    rc = 1;
                }
            } else if (run_child(evctl_argv, NULL, "/dev/null", log_path, &er) != 0 ||
                       er.status != 0) {
                fprintf(stderr, "bench_publish: evctl publish failed (exit %d), see %s\n",
                        er.status, log_path);
                rc = 1;
            }
        }
        if (rc != 0)
            break;
        long kn = topic_count(&conf, topics[0]), en = topic_count(&conf, topics[1]);
        long bn = topic_count(&conf, topics[2]);
        if (kn != n || en != n || bn != n) {
            fprintf(stderr,
                    "bench_publish: records written: kcat %ld, kcat without headers %ld, evctl "
                    "%ld, of %ld\n",
                    kn, bn, en, n);
            rc = 1;
        }
        kcat_eps[r] = (double)n / kr.wall;
        bare_eps[r] = (double)n / br.wall;
        evctl_eps[r] = (double)n / er.wall;
        if (er.rss_kib > peak_kib)
            peak_kib = er.rss_kib;
        printf("round %d  kcat %9.0f lines/s (%.1f us CPU each; without headers %.0f/s, %.1f us)  "
               "evctl %9.0f lines/s (%.1f us CPU each, peak RSS %.1f MiB)  ratio %.2f (%.2f)\n",
               r + 1, kcat_eps[r], kr.cpu * 1e6 / (double)n, bare_eps[r], br.cpu * 1e6 / (double)n,
               evctl_eps[r], er.cpu * 1e6 / (double)n, (double)er.rss_kib / 1024,
               evctl_eps[r] / kcat_eps[r], evctl_eps[r] / bare_eps[r]);
        fflush(stdout);
        bench_admin_topics(&conf, names, 3, 0, PARTITIONS);
    }
    unlink(json_path);
    unlink(kcat_path);
    if (rc == 0) {
        unlink(log_path);
        double ee = median(evctl_eps, rounds), ke = median(kcat_eps, rounds);
        double be = median(bare_eps, rounds);
        printf("kcat without the headers: %.0f lines/s, evctl %.2fx that\n", be, ee / be);
        printf("publish: lines=%ld evctl_eps=%.0f kcat_eps=%.0f ratio=%.2f "
               "evctl_peak_rss_mib=%.1f\n",
               n, ee, ke, ee / ke, (double)peak_kib / 1024);
    }
    lev_config_clear(&conf);
    return rc;
}
