#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *lev_test_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

void lev_test_unique(const char *prefix, char *out, size_t size)
{
    char u[LEV_UUID_STR_LEN];
    lev_uuid4(u);
    snprintf(out, size, "%s-%d-%.8s", prefix, (int)getpid(), u);
}

void lev_test_config(lev_config_t *conf, const char *service)
{
    lev_error_t err;
    if (lev_config_from_env(conf, service, &err) != 0) {
        char buf[600];
        fprintf(stderr, "config: %s\n", lev_error_format(&err, buf, sizeof buf));
        exit(2);
    }
    char group[128];
    lev_test_unique(service, group, sizeof group);
    lev_config_set_str(&conf->group_id, group);
    conf->shutdown_timeout_ms = 10000;
}

static void *run_main(void *arg)
{
    lev_test_run_t *r = arg;
    r->rc = lev_worker_run(r->w);
    atomic_store(&r->returned_ms, lev_mono_ms());
    return NULL;
}

int lev_test_run_start(lev_test_run_t *r, lev_worker_t *w)
{
    r->w = w;
    r->rc = -1;
    atomic_store(&r->returned_ms, 0);
    return pthread_create(&r->thread, NULL, run_main, r) == 0 ? 0 : -1;
}

int lev_test_run_join(lev_test_run_t *r)
{
    pthread_join(r->thread, NULL);
    return r->rc;
}

int lev_test_run_finish(lev_test_run_t *r, lev_worker_stats_t *stats)
{
    lev_worker_stop(r->w);
    lev_test_run_join(r);
    if (stats)
        lev_worker_stats(r->w, stats);
    lev_worker_destroy(r->w);
    r->w = NULL;
    return r->rc;
}

int lev_test_run_wait_finished(lev_test_run_t *r, uint64_t n, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    lev_worker_stats_t st = {0};
    while (lev_mono_ms() < deadline) {
        lev_worker_stats(r->w, &st);
        if (st.finished >= n)
            return 0;
        lev_test_sleep_ms(20);
    }
    fprintf(stderr, "the worker finished %llu of %llu records in %d ms\n",
            (unsigned long long)st.finished, (unsigned long long)n, timeout_ms);
    return -1;
}

void lev_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int lev_test_wait_for(int (*cond)(void *arg), void *arg, int poll_ms, int timeout_ms,
                      const char *what)
{
    int64_t t0 = lev_mono_ms(), deadline = t0 + timeout_ms;
    for (;;) {
        if (cond(arg))
            return 0;
        if (lev_mono_ms() >= deadline)
            break;
        lev_test_sleep_ms(poll_ms);
    }
    fprintf(stderr, "timed out after %lld ms waiting for %s\n", (long long)(lev_mono_ms() - t0),
            what);
    return -1;
}

/* ---- ports ---- */

/* The ports to choose from: [*lo, *hi). */
static int port_range(int *lo, int *hi)
{
    int start = 32768, end = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &start, &end) != 2)
            start = 32768, end = 60999;
        fclose(f);
    }
    *lo = 20000;
    *hi = start < 30000 ? start : 30000;
    if (*hi - *lo < 1000) { /* the ephemeral range starts low: above its end */
        *lo = end + 1;
        *hi = end + 10001 < 65536 ? end + 10001 : 65536;
    }
    if (*hi - *lo < 1000) {
        fprintf(stderr, "no room for test ports outside the ephemeral range %d-%d\n", start, end);
        return -1;
    }
    return 0;
}

/* Locks <dir>/<port>.lock; returns the descriptor (kept open: the lock),
 * -1 when another process holds it, -2 when no lock file can be made. */
static int port_lock(int port)
{
    const char *dir = lev_test_env("LEV_TEST_PORT_LOCKS", "/tmp/lev-test-ports");
    char path[600];
    if (mkdir(dir, 01777) == 0)
        chmod(dir, 01777); /* shared by every user's test runs */
    snprintf(path, sizeof path, "%s/%d.lock", dir, port);
    mode_t old = umask(0);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    umask(old);
    if (fd < 0)
        return -2;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 when a TCP socket can bind 127.0.0.1:port (without SO_REUSEADDR, so a
 * port with connections still closing counts as taken too). */
static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int lev_test_reserve_ports(int count)
{
    static int warned;
    int lo, hi;
    if (count < 1 || count > 16 || port_range(&lo, &hi) != 0)
        return -1;
    unsigned int r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (unsigned int)getpid() ^ (unsigned int)lev_mono_ms();
    int span = hi - lo - count + 1;
    for (int i = 0; i < span; i++) {
        int port = lo + (int)((r + (unsigned int)i) % (unsigned int)span), fds[16], k, ok = 1;
        for (k = 0; k < count && ok; k++) {
            fds[k] = port_lock(port + k);
            if (fds[k] == -2 && !warned++)
                fprintf(stderr, "cannot make port locks in %s; choosing ports without them\n",
                        lev_test_env("LEV_TEST_PORT_LOCKS", "/tmp/lev-test-ports"));
            ok = fds[k] != -1 && port_free(port + k);
        }
        if (ok)
            return port; /* the locks stay held until the process exits */
        while (k-- > 0)
            if (fds[k] >= 0)
                close(fds[k]);
    }
    fprintf(stderr, "no %d free port(s) in %d-%d\n", count, lo, hi - 1);
    return -1;
}

int lev_test_refusing_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return -1;
    if (bind(*fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(*fd, (struct sockaddr *)&a, &alen) != 0) {
        close(*fd);
        *fd = -1;
        return -1;
    }
    return ntohs(a.sin_port);
}

char *lev_test_http_read_request(int fd, char *buf, size_t cap, size_t *len, size_t *body_len)
{
    size_t n = 0;
    ssize_t got;
    long want = -1;
    char *body = NULL;
    buf[0] = '\0';
    while (n < cap - 1 && (got = read(fd, buf + n, cap - 1 - n)) > 0) {
        n += (size_t)got;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && want < 0) {
            char *cl = strcasestr(buf, "Content-Length:");
            want = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
            body = end + 4;
        }
        if (want >= 0 && (long)(buf + n - body) >= want)
            break;
    }
    *len = n;
    if (body_len)
        *body_len =
            body ? ((long)(buf + n - body) < want ? (size_t)(buf + n - body) : (size_t)want) : 0;
    return body;
}

int lev_test_http(const char *method, int port, const char *path, int timeout_ms, char **body,
                  char **headers)
{
    if (body)
        *body = NULL;
    if (headers)
        *headers = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", method,
                     path, port);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0';
    int status = -1;
    char *end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !end) {
        free(buf);
        return -1;
    }
    *end = '\0';
    char *payload = end + 4;
    /* a chunked body: <hex size>[;ext]\r\n<bytes>\r\n ... 0\r\n\r\n, joined in place */
    for (char *h = buf; (h = strchr(h, '\n')) != NULL;) {
        h++;
        if (strncasecmp(h, "transfer-encoding:", 18) == 0 && strstr(h, "chunked")) {
            char *in = payload, *out = payload;
            for (;;) {
                char *eol = strstr(in, "\r\n");
                unsigned long size = strtoul(in, NULL, 16);
                if (!eol || size == 0 || size > (unsigned long)(buf + len - (eol + 2)))
                    break;
                memmove(out, eol + 2, size);
                out += size;
                in = eol + 2 + size + 2;
            }
            *out = '\0';
            break;
        }
    }
    if (headers)
        *headers = strdup(buf);
    if (body)
        *body = strdup(payload);
    free(buf);
    return status;
}

double lev_test_metric(const char *text, const char *name, const char *labels)
{
    char want[1024];
    snprintf(want, sizeof want, "%s%s%s%s ", name, *labels ? "{" : "", labels, *labels ? "}" : "");
    size_t wl = strlen(want);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, want, wl) == 0)
            return strtod(line + wl, NULL);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", lev_test_env("KAFKA_BOOTSTRAP", "127.0.0.1:17092"),
                      errstr, sizeof errstr);
    if (group) {
        rd_kafka_conf_set(c, "group.id", group, errstr, sizeof errstr);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", errstr, sizeof errstr);
    }
    rd_kafka_conf_set(c, "enable.partition.eof", "true", errstr, sizeof errstr);
    rd_kafka_conf_set(c, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(type, c, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "rd_kafka_new: %s\n", errstr);
        exit(2);
    }
    return rk;
}

static int partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && md->topics[0].err == 0) {
            n = md->topics[0].partition_cnt;
            for (int i = 0; i < md->topics[0].partition_cnt; i++)
                if (md->topics[0].partitions[i].leader < 0)
                    n = -1;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

int lev_test_create_topic(const char *topic, int partitions)
{
    return lev_test_create_topic_with(topic, partitions, NULL);
}

int lev_test_create_topic_with(const char *topic, int partitions, const char *const *configs)
{
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    char errstr[512];
    /* the cluster's default replication factor (1 on the test broker) */
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, errstr, sizeof errstr);
    for (size_t i = 0; configs && configs[i]; i += 2)
        rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = -1;
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        if (cnt == 1 &&
            (rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR ||
             rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS))
            rc = 0;
        else if (cnt == 1)
            fprintf(stderr, "create topic %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(tr[0]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    for (int i = 0; rc == 0 && i < 100; i++) {
        if (partition_count(rk, topic) == partitions)
            break;
        lev_test_sleep_ms(100);
        if (i == 99)
            rc = -1;
    }
    rd_kafka_destroy(rk);
    return rc;
}

size_t lev_test_read_topic(const char *topic, size_t min, int timeout_ms, lev_test_record_t **out)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, "lev-test-reader");
    int np = -1;
    for (int i = 0; i < 50 && np < 0; i++) {
        np = partition_count(rk, topic);
        if (np < 0)
            lev_test_sleep_ms(100);
    }
    size_t n = 0, cap = 64;
    lev_test_record_t *recs = calloc(cap, sizeof *recs);
    if (np <= 0) {
        rd_kafka_destroy(rk);
        *out = recs;
        return 0;
    }
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(tl, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    int *eof = calloc((size_t)np, sizeof *eof);
    int64_t deadline = lev_mono_ms() + timeout_ms;
    while (lev_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            int all = 1;
            for (int p = 0; p < np; p++)
                all &= eof[p];
            if (all && n >= min)
                break;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof[m->partition] = 1;
        } else if (!m->err) {
            eof[m->partition] = 0;
            if (n == cap) {
                cap *= 2;
                recs = realloc(recs, cap * sizeof *recs);
            }
            lev_test_record_t *r = &recs[n++];
            memset(r, 0, sizeof *r);
            r->partition = m->partition;
            r->offset = m->offset;
            r->timestamp = rd_kafka_message_timestamp(m, NULL);
            r->key = strndup(m->key ? (const char *)m->key : "", m->key ? m->key_len : 0);
            r->value = malloc(m->len ? m->len : 1);
            if (m->len)
                memcpy(r->value, m->payload, m->len);
            r->value_len = m->len;
            rd_kafka_headers_t *h = NULL;
            if (rd_kafka_message_headers(m, &h) == 0 && h)
                r->headers = rd_kafka_headers_copy(h);
        }
        rd_kafka_message_destroy(m);
    }
    free(eof);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *out = recs;
    return n;
}

void lev_test_records_free(lev_test_record_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(recs[i].key);
        free(recs[i].value);
        if (recs[i].headers)
            rd_kafka_headers_destroy(recs[i].headers);
    }
    free(recs);
}

const char *lev_test_header(const lev_test_record_t *r, const char *name, char *buf, size_t size)
{
    const void *v;
    size_t len;
    buf[0] = '\0';
    if (r->headers && rd_kafka_header_get_last(r->headers, name, &v, &len) == 0 && v) {
        if (len >= size)
            len = size - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
    }
    return buf;
}

int lev_test_committed(const char *group, const char *topic, int n, int64_t *out)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, group);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(tl, topic, p);
    int rc = rd_kafka_committed(rk, tl, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
    for (int p = 0; p < n && rc == 0; p++)
        out[p] = tl->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(tl);
    rd_kafka_destroy(rk);
    return rc;
}

/* End offsets of partitions 0..n-1 of topic into hi[]; 0 or -1. */
static int end_offsets(rd_kafka_t *rk, const char *topic, int n, int64_t *hi)
{
    for (int p = 0; p < n; p++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], 5000) != 0)
            return -1;
    }
    return 0;
}

int64_t lev_test_topic_end(const char *topic)
{
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    int np = partition_count(rk, topic);
    int64_t sum = -1, hi[256];
    if (np > 0 && np <= 256 && end_offsets(rk, topic, np, hi) == 0) {
        sum = 0;
        for (int p = 0; p < np; p++)
            sum += hi[p];
    }
    rd_kafka_destroy(rk);
    return sum;
}

typedef struct {
    const char *topic;
    int64_t min;
} topic_end_t;

static int topic_end_reached(void *arg)
{
    const topic_end_t *t = arg;
    return lev_test_topic_end(t->topic) >= t->min;
}

int lev_test_wait_topic_end(const char *topic, int64_t min, int timeout_ms)
{
    topic_end_t t = {topic, min};
    char what[400];
    snprintf(what, sizeof what, "%lld record(s) in %s", (long long)min, topic);
    return lev_test_wait_for(topic_end_reached, &t, 20, timeout_ms, what);
}

int lev_test_wait_caught_up(const char *group, const char *topic, int timeout_ms)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, group);
    int64_t t0 = lev_mono_ms(), deadline = t0 + timeout_ms, hi[256], committed[256];
    int np = -1, ok = 0;
    for (int p = 0; p < 256; p++)
        hi[p] = committed[p] = -1;
    for (;;) {
        if (np < 0)
            np = partition_count(rk, topic);
        if (np > 256)
            break;
        if (np > 0 && end_offsets(rk, topic, np, hi) == 0) {
            rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np);
            for (int p = 0; p < np; p++)
                rd_kafka_topic_partition_list_add(tl, topic, p);
            if (rd_kafka_committed(rk, tl, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                ok = 1;
                for (int p = 0; p < np; p++) {
                    committed[p] = tl->elems[p].offset;
                    ok &= hi[p] == 0 || committed[p] >= hi[p];
                }
            }
            rd_kafka_topic_partition_list_destroy(tl);
        }
        if (ok || lev_mono_ms() >= deadline)
            break;
        lev_test_sleep_ms(100);
    }
    if (!ok) {
        fprintf(stderr, "timed out after %lld ms waiting for group %s to finish %s:",
                (long long)(lev_mono_ms() - t0), group, topic);
        for (int p = 0; p < np && p < 256; p++)
            fprintf(stderr, " [%d] committed %lld of %lld", p, (long long)committed[p],
                    (long long)hi[p]);
        fprintf(stderr, np > 0 ? "\n" : " no metadata\n");
    }
    rd_kafka_destroy(rk);
    return ok ? 0 : -1;
}

pid_t lev_test_spawn(char *const argv[], char *const env[], const char *log_path)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    for (size_t i = 0; env && env[i]; i++)
        putenv(env[i]);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    execv(argv[0], argv);
    _exit(127);
}

int lev_test_wait(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (lev_mono_ms() >= deadline)
            return -1;
        lev_test_sleep_ms(20);
    }
}

void lev_test_bin(const char *rel, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", lev_test_env("LEV_BINARY_DIR", "."), rel);
}

/* ---- orders ---- */

const lev_schemas_t *lev_test_schemas(void)
{
    static lev_schemas_t *schemas;
    if (!schemas) {
        lev_error_t err;
        char buf[800];
        schemas = lev_schemas_new();
        if (lev_schemas_load_path(schemas, lev_test_env("LEV_SCHEMA_DIRS", "schemas"), &err)) {
            fprintf(stderr, "schemas: %s\n", lev_error_format(&err, buf, sizeof buf));
            exit(2);
        }
    }
    return schemas;
}

json_t *lev_test_order_json(const char *order_id, int i)
{
    return json_pack("{s:s, s:s, s:n, s:[{s:s, s:i, s:I}], s:s, s:I, s:s, s:I}", "order_id",
                     order_id, "customer_id", "customer-1", "customer_email", "items", "sku",
                     "sku-plain", "quantity", 1 + i % 3, "unit_price_minor", (json_int_t)250,
                     "currency", "EUR", "total_minor", (json_int_t)(250 * (1 + i % 3)),
                     "payment_token", "tok_visa", "placed_at", (json_int_t)lev_now_ms());
}

static void count_ack(void *opaque, int err, const char *errstr, int32_t p, int64_t o)
{
    (void)errstr;
    (void)p;
    (void)o;
    if (err)
        (*(int *)opaque)++;
}

int lev_test_publish_orders(const char *topic, size_t n, char (*ids)[LEV_UUID_STR_LEN],
                            const char *(*sku_of)(size_t i))
{
    lev_config_t conf;
    lev_error_t err;
    char buf[800];
    lev_test_config(&conf, "test-publisher");
    const lev_kv_t extra[] = {{"linger.ms", "20"}, {NULL, NULL}};
    lev_producer_t *p = lev_producer_new(&conf, extra, &err);
    lev_config_clear(&conf);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    if (!p || !codec || !s) {
        fprintf(stderr, "publisher: %s\n", lev_error_format(&err, buf, sizeof buf));
        exit(2);
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        lev_uuid4(ids[i]);
        json_t *j = lev_test_order_json(ids[i], (int)i);
        if (sku_of) {
            json_t *item = json_array_get(json_object_get(j, "items"), 0);
            json_object_set_new(item, "sku", json_string(sku_of(i)));
        }
        avro_value_t v;
        if (lev_codec_from_json(codec, s, j, &v, &err) != 0) {
            fprintf(stderr, "order json: %s\n", lev_error_format(&err, buf, sizeof buf));
            exit(2);
        }
        lev_event_meta_t meta = {.id = ids[i], .source = "/tests"};
        if (lev_producer_send_event(p, codec, topic, ids[i], s, &v, &meta, count_ack, &failed,
                                    &err) != 0) {
            fprintf(stderr, "send: %s\n", lev_error_format(&err, buf, sizeof buf));
            exit(2);
        }
        avro_value_decref(&v);
        json_decref(j);
        if (i % 1000 == 999)
            lev_producer_poll(p, 0);
    }
    int rc = lev_producer_flush(p, 30000) == 0 && failed == 0 ? 0 : -1;
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    return rc;
}

char **lev_test_read_order_ids(const char *topic, size_t min, int timeout_ms, size_t *n)
{
    lev_test_record_t *recs;
    size_t nr = lev_test_read_topic(topic, min, timeout_ms, &recs);
    char **out = calloc(nr ? nr : 1, sizeof *out);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    size_t k = 0;
    for (size_t i = 0; i < nr; i++) {
        avro_value_t v;
        const char *id;
        if (lev_codec_decode(codec, recs[i].value, recs[i].value_len, NULL, &v, NULL, NULL) != 0)
            continue;
        if (lev_value_get_string(&v, "order_id", &id, NULL) == 0)
            out[k++] = strdup(id);
        avro_value_decref(&v);
    }
    lev_codec_destroy(codec);
    lev_test_records_free(recs, nr);
    *n = k;
    return out;
}

void lev_test_strings_free(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t lev_test_missing(char (*want)[LEV_UUID_STR_LEN], size_t nwant, char **have, size_t nhave)
{
    qsort(have, nhave, sizeof *have, cmp_str);
    size_t missing = 0;
    for (size_t i = 0; i < nwant; i++) {
        const char *key = want[i];
        if (!bsearch(&key, have, nhave, sizeof *have, cmp_str))
            missing++;
    }
    return missing;
}

/* ---- child workers ---- */

pid_t lev_test_start_worker(char *const env[], const char *log_path)
{
    char bin[512];
    lev_test_bin("tests/lev_test_worker", bin, sizeof bin);
    char *argv[] = {bin, NULL};
    return lev_test_spawn(argv, env, log_path);
}

int lev_test_stop_worker(pid_t pid)
{
    int status = -1;
    kill(pid, SIGTERM);
    if (lev_test_wait(pid, 30000, &status) != 0) {
        kill(pid, SIGKILL);
        lev_test_wait(pid, 5000, &status);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char **lev_test_effect_ids(const char *path, size_t *n)
{
    size_t cap = 256, k = 0;
    char **out = malloc(cap * sizeof *out);
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        if (k == cap) {
            cap *= 2;
            out = realloc(out, cap * sizeof *out);
        }
        out[k++] = strdup(line);
    }
    if (f)
        fclose(f);
    *n = k;
    return out;
}

size_t lev_test_distinct(char **s, size_t n)
{
    qsort(s, n, sizeof *s, cmp_str);
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(s[i], s[i - 1]) != 0)
            d++;
    return d;
}

size_t lev_test_wait_lines(const char *path, size_t lines, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    size_t n = 0;
    for (;;) {
        n = 0;
        FILE *f = fopen(path, "r");
        int c;
        while (f && (c = fgetc(f)) != EOF)
            n += c == '\n';
        if (f)
            fclose(f);
        if (n >= lines || lev_mono_ms() >= deadline)
            return n;
        lev_test_sleep_ms(50);
    }
}

int lev_test_emit_accepted(lev_ctx_t *ctx, const lev_event_t *ev, const char *topic,
                           const char *key)
{
    const char *order_id, *customer, *currency, *token;
    int64_t total;
    avro_value_t out;
    if (lev_value_get_string(&ev->value, "order_id", &order_id, NULL) ||
        lev_value_get_string(&ev->value, "customer_id", &customer, NULL) ||
        lev_value_get_string(&ev->value, "currency", &currency, NULL) ||
        lev_value_get_string(&ev->value, "payment_token", &token, NULL) ||
        lev_value_get_long(&ev->value, "total_minor", &total) ||
        lev_ctx_new_value(ctx, "shop.order.OrderAccepted", &out) ||
        lev_value_set_string(&out, "order_id", order_id) ||
        lev_value_set_string(&out, "customer_id", customer) ||
        lev_value_set_string(&out, "currency", currency) ||
        lev_value_set_long(&out, "total_minor", total) ||
        lev_value_set_string(&out, "payment_token", token) ||
        lev_value_set_long(&out, "accepted_at", lev_now_ms()) ||
        lev_ctx_emit(ctx, topic, key ? key : order_id, &out, NULL))
        return -1;
    return 0;
}

long lev_test_topic_records(const char *topic)
{
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", lev_test_env("KAFKA_BOOTSTRAP", "127.0.0.1:17092"),
                      errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof errstr);
    if (!rk)
        return -1;
    long sum = -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1 &&
        !md->topics[0].err) {
        sum = 0;
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) != 0) {
                sum = -1;
                break;
            }
            sum += (long)hi;
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return sum;
}
