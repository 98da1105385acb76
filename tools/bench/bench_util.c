/* What the benchmark programs share: timing, CPU accounting, topics. */
#include "bench_util.h"
#include "kafka_internal.h"
#include "store_internal.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int bench_fail(const char *prog, const char *what, const lev_error_t *err)
{
    char buf[800];
    fprintf(stderr, "%s: %s: %s\n", prog, what,
            err ? lev_error_format(err, buf, sizeof buf) : "failed");
    return 1;
}

double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double bench_machine_cpu_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (!f)
        return 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return 0;
    /* user nice system [idle iowait] irq softirq steal */
    double ticks = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
    return ticks / (double)sysconf(_SC_CLK_TCK);
}

/* One line "<name>:<seconds>" of an INFO reply, or 0 (none). */
static double info_field(const char *info, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return strtod(p + n + 1, NULL);
    return 0;
}

redisContext *bench_redis_connect(const char *url)
{
    lev_store_url_t u;
    if (!url || !*url || lev_store_url_parse(url, &u, NULL) != 0)
        return NULL;
    struct timeval tv = {2, 0};
    redisContext *c = u.is_unix ? redisConnectUnixWithTimeout(u.host, tv)
                                : redisConnectWithTimeout(u.host, u.port, tv);
    redisReply *r = NULL;
    if (c && !c->err && u.password)
        r = u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                   : redisCommand(c, "AUTH %s", u.password);
    if (r)
        freeReplyObject(r);
    if (c && !c->err && u.db != 0 && (r = redisCommand(c, "SELECT %d", u.db)) != NULL)
        freeReplyObject(r);
    lev_store_url_free(&u);
    if (c && c->err) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

double bench_redis_cpu_seconds(const char *url)
{
    redisContext *c = bench_redis_connect(url);
    double s = -1;
    redisReply *r;
    if (c && (r = redisCommand(c, "INFO cpu")) != NULL) {
        if (r->type == REDIS_REPLY_STRING)
            s = info_field(r->str, "used_cpu_user") + info_field(r->str, "used_cpu_sys");
        freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return s;
}

long bench_redis_unlink(const char *url, const char *pattern)
{
    redisContext *c = bench_redis_connect(url);
    if (!c)
        return -1;
    long removed = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 10000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            removed = -1;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        if (keys->elements > 0) {
            const char **argv = malloc((keys->elements + 1) * sizeof *argv);
            size_t *lens = malloc((keys->elements + 1) * sizeof *lens);
            redisReply *u = NULL;
            if (argv && lens) {
                argv[0] = "UNLINK";
                lens[0] = 6;
                for (size_t i = 0; i < keys->elements; i++) {
                    argv[i + 1] = keys->element[i]->str;
                    lens[i + 1] = keys->element[i]->len;
                }
                u = redisCommandArgv(c, (int)keys->elements + 1, argv, lens);
            }
            if (u && u->type == REDIS_REPLY_INTEGER)
                removed += (long)u->integer;
            else
                removed = -1;
            if (u)
                freeReplyObject(u);
            free(argv);
            free(lens);
        }
        freeReplyObject(r);
    } while (removed >= 0 && strcmp(cursor, "0") != 0);
    redisFree(c);
    return removed;
}

int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int bench_admin_topics(const lev_config_t *conf, char **names, size_t n, int create, int partitions)
{
    lev_error_t err;
    rd_kafka_conf_t *kc = lev_kafka_conf_new(conf, RD_KAFKA_PRODUCER, NULL, NULL, &err);
    char errstr[256];
    rd_kafka_t *rk = kc ? rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof errstr) : NULL;
    rd_kafka_NewTopic_t **nt = create ? calloc(n + 1, sizeof *nt) : NULL;
    rd_kafka_DeleteTopic_t **dt = create ? NULL : calloc(n + 1, sizeof *dt);
    if (!rk || (!nt && !dt)) {
        free(nt);
        free(dt);
        if (rk)
            rd_kafka_destroy(rk);
        return bench_fail("bench", "admin client", NULL);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    if (create) {
        for (size_t i = 0; i < n; i++)
            nt[i] = rd_kafka_NewTopic_new(names[i], partitions, -1, errstr, sizeof errstr);
        rd_kafka_CreateTopics(rk, nt, n, NULL, q);
        for (size_t i = 0; i < n; i++)
            rd_kafka_NewTopic_destroy(nt[i]);
    } else {
        for (size_t i = 0; i < n; i++)
            dt[i] = rd_kafka_DeleteTopic_new(names[i]);
        rd_kafka_DeleteTopics(rk, dt, n, NULL, q);
        for (size_t i = 0; i < n; i++)
            rd_kafka_DeleteTopic_destroy(dt[i]);
    }
    free(nt);
    free(dt);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return 0;
}

long bench_topic_count(const lev_config_t *conf, const char *topic, int partitions)
{
    lev_error_t err;
    char errstr[256];
    rd_kafka_conf_t *kc = lev_kafka_conf_new(conf, RD_KAFKA_PRODUCER, NULL, NULL, &err);
    rd_kafka_t *rk = kc ? rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof errstr) : NULL;
    long sum = 0;
    for (int p = 0; rk && p < partitions; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) == 0)
            sum += (long)hi;
    }
    if (rk)
        rd_kafka_destroy(rk);
    return sum;
}
