/*
 * The Redis store against a real redis-server (REDIS_URL), plus a small fake
 * server in a thread for the failures a real one does not produce on demand
 * (replies of the wrong type, silence, a closed connection, a password
 * echoed in an error).
 *
 * Every key starts with a prefix unique to this run, so runs sharing a
 * server do not see each other. The real server is shared with other tests:
 * connections are killed one by one (by the name the store gives its
 * connection), never all normal clients at once.
 */
#include "check.h"
#include "store_internal.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libevents.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS 2000

static const char *redis_url;
static char prefix[128];
static redisContext *raw_ctx; /* an independent client, to look and to meddle */

/* ======================================================================
 * Helpers
 * ====================================================================== */

/* A store on REDIS_URL; fails the case when it cannot connect. */
static lev_store_t *store_open(void)
{
    lev_error_t err = {0};
    lev_store_t *s = lev_store_new(redis_url, TIMEOUT_MS, &err);
    if (!s)
        fprintf(stderr, "  lev_store_new: %s: %s\n", err.where, err.text);
    CHECK(s != NULL);
    return s;
}

/* Fills keys[0..n) with "<prefix>:<tag>:<i>" (malloc'd). */
static void keys_make(char **keys, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(strlen(prefix) + strlen(tag) + 32);
        sprintf(keys[i], "%s:%s:%zu", prefix, tag, i);
    }
}

static void keys_free(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
}

/* Runs a command on the independent connection (reconnecting it if needed);
 * the caller frees the reply. */
static redisReply *raw(const char *fmt, ...)
{
    if (!raw_ctx || raw_ctx->err) {
        lev_store_url_t u;
        lev_error_t err;
        if (raw_ctx)
            redisFree(raw_ctx);
        raw_ctx = NULL;
        if (lev_store_url_parse(redis_url, &u, &err) != 0)
            return NULL;
        struct timeval tv = {2, 0};
        raw_ctx = u.is_unix ? redisConnectUnixWithTimeout(u.host, tv)
                            : redisConnectWithTimeout(u.host, u.port, tv);
        if (raw_ctx && !raw_ctx->err && u.password) {
            redisReply *r = u.user ? redisCommand(raw_ctx, "AUTH %s %s", u.user, u.password)
                                   : redisCommand(raw_ctx, "AUTH %s", u.password);
            if (r)
                freeReplyObject(r);
        }
        if (raw_ctx && !raw_ctx->err && u.db) {
            redisReply *r = redisCommand(raw_ctx, "SELECT %d", u.db);
            if (r)
                freeReplyObject(r);
        }
        lev_store_url_free(&u);
        if (!raw_ctx || raw_ctx->err)
            return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw_ctx, fmt, ap);
    va_end(ap);
    return r;
}

/* The integer reply of a command, or LLONG_MIN. */
static long long raw_int(const char *cmd, const char *key)
{
    redisReply *r = raw("%s %s", cmd, key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : LLONG_MIN;
    if (r)
        freeReplyObject(r);
    return v;
}

/* GET key into buf ("(nil)" when absent). */
static const char *raw_get(const char *key, char *buf, size_t size)
{
    redisReply *r = raw("GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(buf, size, "%s", r->str);
    else
        snprintf(buf, size, "(nil)");
    if (r)
        freeReplyObject(r);
    return buf;
}

/* The id of the connection named "lev:<token>" in CLIENT LIST, or -1. */
static long long client_id_of(const lev_store_t *s)
{
    char needle[96];
    long long id = -1;
    snprintf(needle, sizeof needle, " name=lev:%s ", lev_store_token(s));
    redisReply *r = raw("CLIENT LIST");
    if (r && r->type == REDIS_REPLY_STRING) {
        for (char *line = r->str; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (strstr(line, needle))
                sscanf(line, "id=%lld", &id);
            line = nl ? nl + 1 : NULL;
        }
    }
    if (r)
        freeReplyObject(r);
    return id;
}

/* 1 when key no longer exists (Redis checks expiry on every access). */
static int key_gone(void *key)
{
    return raw_int("EXISTS", key) == 0;
}

/* Waits until Redis reports that key expired (10 s at most). */
static int wait_expired(const char *key)
{
    char what[300];
    snprintf(what, sizeof what, "%s to expire", key);
    return lev_test_wait_for(key_gone, (void *)key, 10, 10000, what);
}

/* The descriptor, in this process, of the connection Redis lists as
 * "addr=<ip>:<port>" for the store s; -1 when not found. */
static int store_fd(const lev_store_t *s)
{
    char needle[96], ip[64] = "";
    int port = -1;
    snprintf(needle, sizeof needle, " name=lev:%s ", lev_store_token(s));
    redisReply *r = raw("CLIENT LIST");
    if (r && r->type == REDIS_REPLY_STRING) {
        for (char *line = r->str; line && *line;) {
            char *nl = strchr(line, '\n'), *a;
            if (nl)
                *nl = '\0';
            if (strstr(line, needle) && (a = strstr(line, " addr=")) != NULL) {
                char *colon = strchr(a + 6, ' ');
                if (colon)
                    *colon = '\0';
                colon = strrchr(a + 6, ':'); /* the last one: IPv6 addresses have more */
                if (colon && (size_t)(colon - (a + 6)) < sizeof ip) {
                    memcpy(ip, a + 6, (size_t)(colon - (a + 6)));
                    ip[colon - (a + 6)] = '\0';
                    port = atoi(colon + 1);
                }
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    if (r)
        freeReplyObject(r);
    for (int fd = 0; port > 0 && fd < 1024; fd++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char got[64];
        if (raw_ctx && fd == raw_ctx->fd)
            continue;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
            continue;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            if (ntohs(in->sin_port) == port && inet_ntop(AF_INET, &in->sin_addr, got, sizeof got) &&
                strcmp(got, ip) == 0)
                return fd;
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
            if (ntohs(in6->sin6_port) == port &&
                inet_ntop(AF_INET6, &in6->sin6_addr, got, sizeof got) && strcmp(got, ip) == 0)
                return fd;
        }
    }
    return -1;
}

/* 1 when the connection fd has seen its peer close it (end of file to
 * read: Redis sends nothing unasked on an idle connection). */
static int peer_closed(void *fdp)
{
    struct pollfd pfd = {.fd = *(int *)fdp, .events = POLLIN};
    return poll(&pfd, 1, 0) > 0;
}

/* Kills the store's connection from the server side (CLIENT KILL) and
 * waits until the store's end of it has received the close: only then is
 * it there for the store to notice. Returns the killed client id. */
static long long kill_connection(const lev_store_t *s)
{
    long long id = client_id_of(s);
    int fd = -1;
    lev_store_url_t u;
    int is_unix = lev_store_url_parse(redis_url, &u, NULL) == 0 && u.is_unix;
    lev_store_url_free(&u);
    if (!is_unix && (fd = store_fd(s)) < 0) {
        fprintf(stderr, "  the store's connection (client id %lld) is not among our sockets\n", id);
        return -1;
    }
    redisReply *r = raw("CLIENT KILL ID %lld", id);
    int killed = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    if (!killed)
        return -1;
    /* the end of a unix socket sees the close at once, a TCP one when the
     * FIN arrives */
    if (fd >= 0 && lev_test_wait_for(peer_closed, &fd, 5, 10000,
                                     "the killed connection's close to arrive") != 0)
        return -1;
    return id;
}

/* ======================================================================
 * A fake Redis: answers the connection handshake like Redis and every
 * other command as its mode says.
 * ====================================================================== */

typedef enum fake_mode_e {
    FAKE_NIL,       /* $-1 to everything */
    FAKE_ARRAY,     /* an array where a scalar is expected */
    FAKE_SILENT,    /* no answer at all */
    FAKE_CLOSE,     /* closes the connection */
    FAKE_AUTH_ECHO, /* refuses AUTH quoting the password it was given */
} fake_mode_t;

typedef struct fake_s {
    int listen_fd;
    int port;
    fake_mode_t mode;
    int version; /* major version INFO reports: 6 (scripts) or 7 (plain SET ... GET) */
    atomic_int stop;
    atomic_int accepted;
    pthread_t thread;
} fake_t;

/* Parses one RESP command at buf[0..len): its first two arguments into
 * a0/a1 (truncated). Returns the bytes it takes, or 0 when incomplete. */
static size_t fake_parse(const char *buf, size_t len, char *a0, char *a1, size_t asize)
{
    const char *p = buf, *end = buf + len;
    char *eol;
    long n;
    a0[0] = a1[0] = '\0';
    if (len < 4 || *p != '*' || !(eol = memchr(p, '\n', len)))
        return 0;
    n = strtol(p + 1, NULL, 10);
    p = eol + 1;
    for (long i = 0; i < n; i++) {
        if (p >= end || *p != '$' || !(eol = memchr(p, '\n', (size_t)(end - p))))
            return 0;
        long alen = strtol(p + 1, NULL, 10);
        p = eol + 1;
        if (end - p < alen + 2)
            return 0;
        if (i < 2) {
            char *dst = i == 0 ? a0 : a1;
            size_t c = (size_t)alen < asize - 1 ? (size_t)alen : asize - 1;
            memcpy(dst, p, c);
            dst[c] = '\0';
        }
        p += alen + 2;
    }
    return (size_t)(p - buf);
}

/* Serves one connection until the peer closes it or the test stops. */
static void fake_serve(fake_t *f, int fd)
{
    static char buf[1 << 16];
    size_t len = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r <= 0)
            return;
        len += (size_t)r;
        for (;;) {
            char a0[64], a1[64], out[256];
            size_t used = fake_parse(buf, len, a0, a1, sizeof a0);
            if (used == 0)
                break;
            memmove(buf, buf + used, len - used);
            len -= used;
            const char *reply = NULL;
            if (strcasecmp(a0, "SCRIPT") == 0) {
                reply = "$40\r\n0123456789abcdef0123456789abcdef01234567\r\n";
            } else if (strcasecmp(a0, "INFO") == 0) {
                const char *info = f->version >= 7 ? "# Server\r\nredis_version:7.0.15\r\n"
                                                   : "# Server\r\nredis_version:6.2.14\r\n";
                snprintf(out, sizeof out, "$%zu\r\n%s\r\n", strlen(info), info);
                reply = out;
            } else if (strcasecmp(a0, "CLIENT") == 0 || strcasecmp(a0, "SELECT") == 0) {
                reply = "+OK\r\n";
            } else if (strcasecmp(a0, "AUTH") == 0) {
                if (f->mode == FAKE_AUTH_ECHO) {
                    snprintf(out, sizeof out, "-WRONGPASS password '%s' is wrong\r\n", a1);
                    reply = out;
                } else {
                    reply = "+OK\r\n";
                }
            } else if (f->mode == FAKE_NIL) {
                reply = "$-1\r\n";
            } else if (f->mode == FAKE_ARRAY) {
                reply = "*2\r\n:1\r\n$1\r\nD\r\n";
            } else if (f->mode == FAKE_CLOSE) {
                return;
            }
            if (reply && write(fd, reply, strlen(reply)) < 0)
                return;
        }
    }
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd = {f->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->accepted, 1);
        fake_serve(f, fd);
        close(fd);
    }
    return NULL;
}

/* Starts a fake server on a free port of 127.0.0.1. */
static int fake_start_version(fake_t *f, fake_mode_t mode, int version)
{
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof a;
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->version = version;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(f->listen_fd, 8) != 0 || getsockname(f->listen_fd, (struct sockaddr *)&a, &alen))
        return -1;
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->thread, NULL, fake_main, f);
}

static int fake_start(fake_t *f, fake_mode_t mode)
{
    return fake_start_version(f, mode, 6);
}

static void fake_stop(fake_t *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

/* ======================================================================
 * Leases
 * ====================================================================== */

static void claim_of_new_keys_is_owned(void)
{
    char *keys[3], buf[128], want[64];
    lev_claim_t out[3] = {LEV_CLAIM_BUSY, LEV_CLAIM_BUSY, LEV_CLAIM_BUSY};
    lev_error_t err = {0};
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, 3, "new");
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, 3, 30000, out, &err), ==, 0);
    snprintf(want, sizeof want, "P:%s", lev_store_token(s));
    CHECK_INT(strlen(lev_store_token(s)), ==, 32);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(out[i], ==, LEV_CLAIM_OWNED);
        CHECK_STR(raw_get(keys[i], buf, sizeof buf), want);
        long long pttl = raw_int("PTTL", keys[i]);
        CHECK(pttl > 25000 && pttl <= 30000);
    }
    keys_free(keys, 3);
    lev_store_destroy(s);
}

static void claim_of_completed_keys_is_done(void)
{
    char *keys[2];
    lev_claim_t out[2];
    int ok[2] = {0, 0};
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    keys_make(keys, 2, "done");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_complete(a, (const char *const *)keys, 2, 60000, ok, NULL), ==, 0);
    CHECK(ok[0] == 1 && ok[1] == 1);
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    CHECK(out[0] == LEV_CLAIM_DONE && out[1] == LEV_CLAIM_DONE);
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    CHECK(out[0] == LEV_CLAIM_DONE && out[1] == LEV_CLAIM_DONE);
    keys_free(keys, 2);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

static void claim_of_key_held_by_another_store_is_busy(void)
{
    char *keys[1], buf[128], want[64];
    lev_claim_t out[1];
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    CHECK(strcmp(lev_store_token(a), lev_store_token(b)) != 0);
    keys_make(keys, 1, "held");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_BUSY);
    /* a second claim by the holder is a concurrent copy: busy as well */
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_BUSY);
    snprintf(want, sizeof want, "P:%s", lev_store_token(a));
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), want);
    keys_free(keys, 1);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

static void repeated_key_in_one_claim_first_owned_rest_busy(void)
{
    char *keys[3];
    lev_claim_t out[6];
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, 3, "dup");
    /* keys[2] is done before the batch */
    CHECK_INT(lev_store_claim(s, (const char *const *)keys + 2, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_complete(s, (const char *const *)keys + 2, 1, 60000, NULL, NULL), ==, 0);
    const char *batch[6] = {keys[0], keys[1], keys[0], keys[2], keys[0], keys[2]};
    uint64_t rt = lev_store_round_trips(s);
    CHECK_INT(lev_store_claim(s, batch, 6, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 1);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    CHECK_INT(out[1], ==, LEV_CLAIM_OWNED);
    CHECK_INT(out[2], ==, LEV_CLAIM_BUSY);
    CHECK_INT(out[3], ==, LEV_CLAIM_DONE);
    CHECK_INT(out[4], ==, LEV_CLAIM_BUSY);
    CHECK_INT(out[5], ==, LEV_CLAIM_DONE);
    keys_free(keys, 3);
    lev_store_destroy(s);
}

static void complete_turns_owned_into_done_with_ttl(void)
{
    char *keys[2], buf[128];
    lev_claim_t out[2];
    int ok[2] = {0, 0};
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, 2, "complete");
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_complete(s, (const char *const *)keys, 2, 600000, ok, NULL), ==, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(ok[i], ==, 1);
        CHECK_STR(raw_get(keys[i], buf, sizeof buf), "D");
        long long pttl = raw_int("PTTL", keys[i]);
        CHECK(pttl > 590000 && pttl <= 600000);
    }
    /* completing again: the key no longer holds our claim */
    CHECK_INT(lev_store_complete(s, (const char *const *)keys, 2, 600000, ok, NULL), ==, 0);
    CHECK(ok[0] == 0 && ok[1] == 0);
    /* ok may be NULL */
    CHECK_INT(lev_store_complete(s, (const char *const *)keys, 2, 600000, NULL, NULL), ==, 0);
    keys_free(keys, 2);
    lev_store_destroy(s);
}

/* Done is a fact about the event: an owner whose lease ran out and who
 * still finished the event marks it done (the other owner's completion or
 * release then finds done), and learns that its claim had been lost. */
static void complete_after_lease_lost_reports_not_ok_and_marks_the_event_done(void)
{
    char *keys[1], buf[128];
    lev_claim_t out[1];
    int ok[1] = {1};
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    keys_make(keys, 1, "lost");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 50, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    CHECK(wait_expired(keys[0]) == 0); /* a's lease ran out */
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    CHECK_INT(lev_store_complete(a, (const char *const *)keys, 1, 600000, ok, NULL), ==, 0);
    CHECK_INT(ok[0], ==, 0);
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), "D");
    long long pttl = raw_int("PTTL", keys[0]);
    CHECK(pttl > 590000 && pttl <= 600000);
    /* the other owner's release leaves done alone; its completion says lost */
    CHECK_INT(lev_store_release(b, (const char *const *)keys, 1, NULL), ==, 0);
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), "D");
    CHECK_INT(lev_store_complete(b, (const char *const *)keys, 1, 600000, ok, NULL), ==, 0);
    CHECK_INT(ok[0], ==, 0);
    keys_free(keys, 1);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

/* Calls of a command counted by INFO commandstats ("set", "evalsha"). */
static long long command_calls(const char *cmd)
{
    long long calls = 0;
    redisReply *r = raw("INFO commandstats");
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, needle) : NULL;
    if (p)
        calls = atoll(p + strlen(needle));
    if (r)
        freeReplyObject(r);
    return calls;
}

/* Redis 7 takes SET with NX and GET together: claims and completions then
 * run no script, which costs the server a fraction of a script call. */
static void claims_and_completions_are_plain_commands_on_redis_7(void)
{
    redisReply *r = raw("INFO server");
    const char *v = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "redis_version:") : NULL;
    int major = v ? atoi(v + 14) : 0;
    if (r)
        freeReplyObject(r);
    if (major < 7) {
        fprintf(stderr, "skipped: Redis %d answers claims with a script\n", major);
        return;
    }
    enum { N = 10 };
    char *keys[N];
    lev_claim_t out[N];
    int ok[N];
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, N, "plain");
    long long evalsha0 = command_calls("evalsha"), set0 = command_calls("set");
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, N, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_complete(s, (const char *const *)keys, N, 60000, ok, NULL), ==, 0);
    CHECK_INT(command_calls("evalsha") - evalsha0, ==, 0);
    CHECK_INT(command_calls("set") - set0, ==, 2 * N);
    for (int i = 0; i < N; i++)
        CHECK(out[i] == LEV_CLAIM_OWNED && ok[i] == 1);
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, N, 30000, out, NULL), ==, 0);
    for (int i = 0; i < N; i++)
        CHECK_INT(out[i], ==, LEV_CLAIM_DONE);
    keys_free(keys, N);
    lev_store_destroy(s);
}

/* Servers before Redis 7.0 get claims and completions as scripts: the same
 * answers as the plain commands give. */
static void script_path_for_older_servers_has_the_same_semantics(void)
{
    char *keys[3], buf[128], want[64];
    lev_claim_t out[3];
    int ok[3];
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    lev_store_use_scripts(a);
    lev_store_use_scripts(b);
    keys_make(keys, 3, "scripts");
    long long evalsha0 = command_calls("evalsha");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    CHECK(out[0] == LEV_CLAIM_OWNED && out[1] == LEV_CLAIM_OWNED);
    snprintf(want, sizeof want, "P:%s", lev_store_token(a));
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), want);
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 3, 30000, out, NULL), ==, 0);
    CHECK(out[0] == LEV_CLAIM_BUSY && out[1] == LEV_CLAIM_BUSY && out[2] == LEV_CLAIM_OWNED);
    CHECK_INT(lev_store_complete(a, (const char *const *)keys, 1, 60000, ok, NULL), ==, 0);
    CHECK_INT(ok[0], ==, 1);
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), "D");
    /* b completes a key a holds: done, and b learns it was not its claim */
    CHECK_INT(lev_store_complete(b, (const char *const *)keys + 1, 1, 60000, ok, NULL), ==, 0);
    CHECK_INT(ok[0], ==, 0);
    CHECK_STR(raw_get(keys[1], buf, sizeof buf), "D");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    CHECK(out[0] == LEV_CLAIM_DONE && out[1] == LEV_CLAIM_DONE);
    CHECK(command_calls("evalsha") - evalsha0 >= 6);
    keys_free(keys, 3);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

/* One call completes, releases and claims in one round trip, settles first:
 * a key completed in the call is claimed as done, one released as owned. */
static void settles_and_claims_share_one_round_trip_in_order(void)
{
    char *keys[3], buf[128];
    lev_claim_t out[3];
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, 3, "exchange");
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, 2, 30000, out, NULL), ==, 0);
    uint64_t trips = lev_store_round_trips(s);
    const char *done[] = {keys[0]}, *rel[] = {keys[1]};
    int ok[1] = {0};
    CHECK_INT(lev_store_settle_claim(s, done, 1, 60000, ok, rel, 1, (const char *const *)keys, 3,
                                     30000, out, NULL),
              ==, 0);
    CHECK_INT(lev_store_round_trips(s) - trips, ==, 1);
    CHECK_INT(ok[0], ==, 1);
    CHECK_INT(out[0], ==, LEV_CLAIM_DONE);
    CHECK_INT(out[1], ==, LEV_CLAIM_OWNED);
    CHECK_INT(out[2], ==, LEV_CLAIM_OWNED);
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), "D");
    keys_free(keys, 3);
    lev_store_destroy(s);
}

static void release_deletes_only_our_claim(void)
{
    char *keys[3], buf[128], want[64];
    lev_claim_t out[1];
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    keys_make(keys, 3, "release");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_claim(b, (const char *const *)keys + 1, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_claim(a, (const char *const *)keys + 2, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_complete(a, (const char *const *)keys + 2, 1, 60000, NULL, NULL), ==, 0);

    CHECK_INT(lev_store_release(a, (const char *const *)keys, 3, NULL), ==, 0);
    CHECK_INT(raw_int("EXISTS", keys[0]), ==, 0);
    snprintf(want, sizeof want, "P:%s", lev_store_token(b));
    CHECK_STR(raw_get(keys[1], buf, sizeof buf), want);
    CHECK_STR(raw_get(keys[2], buf, sizeof buf), "D");
    /* released: free to claim again */
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    keys_free(keys, 3);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

/* A live lease keeps another owner out; once it ran out, another owner
 * claims the key. When it ran out is asked of Redis, not guessed with a
 * sleep, and "busy" is proven with a lease no scheduler stall outlasts. */
static void lease_expiry_lets_another_owner_claim(void)
{
    enum { SHORT_MS = 300 };
    char *keys[2];
    lev_claim_t out[1];
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    keys_make(keys, 2, "expiry");
    /* a 30 s lease: busy for anyone else */
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_BUSY);

    /* a short lease: busy while it runs (when the claim came in time to
     * tell), then expired in Redis, then b's */
    int64_t t0 = lev_mono_ms();
    CHECK_INT(lev_store_claim(a, (const char *const *)keys + 1, 1, SHORT_MS, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    long long pttl = raw_int("PTTL", keys[1]);
    CHECK(pttl <= SHORT_MS && pttl != -1); /* -2: gone already */
    CHECK_INT(lev_store_claim(b, (const char *const *)keys + 1, 1, 30000, out, NULL), ==, 0);
    int64_t took = lev_mono_ms() - t0;
    if (out[0] == LEV_CLAIM_OWNED && took >= SHORT_MS) {
        /* stalled past the lease: owned is right, and busy cannot be told */
        fprintf(stderr, "  %lld ms went by: the short lease's busy claim not checked\n",
                (long long)took);
    } else {
        CHECK_INT(out[0], ==, LEV_CLAIM_BUSY);
        CHECK(wait_expired(keys[1]) == 0);
        CHECK_INT(lev_store_claim(b, (const char *const *)keys + 1, 1, 30000, out, NULL), ==, 0);
        CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
    }
    keys_free(keys, 2);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

/* A renewal extends only our own live claims, all in one round trip. */
static void renew_extends_only_our_claims(void)
{
    char *keys[4];
    lev_claim_t out[1];
    int ok[4] = {-1, -1, -1, -1};
    lev_store_t *a = store_open(), *b = store_open();
    REQUIRE(a && b);
    keys_make(keys, 4, "renew");
    CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 300, out, NULL), ==, 0);
    CHECK_INT(lev_store_claim(b, (const char *const *)keys + 1, 1, 300, out, NULL), ==, 0);
    CHECK_INT(lev_store_claim(a, (const char *const *)keys + 2, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_complete(a, (const char *const *)keys + 2, 1, 60000, NULL, NULL), ==, 0);
    uint64_t trips = lev_store_round_trips(a);
    /* ours, another store's, done, absent */
    CHECK_INT(lev_store_renew(a, (const char *const *)keys, 4, 30000, ok, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(a) - trips, ==, 1);
    CHECK(ok[0] == 1 && ok[1] == 0 && ok[2] == 0 && ok[3] == 0);
    CHECK_INT(raw_int("PTTL", keys[0]), >, 10000);
    CHECK_INT(raw_int("PTTL", keys[1]), <=, 300); /* left alone */
    CHECK_INT(raw_int("EXISTS", keys[3]), ==, 0);
    lev_test_sleep_ms(400); /* past the first lease: still ours */
    CHECK_INT(lev_store_claim(b, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
    CHECK_INT(out[0], ==, LEV_CLAIM_BUSY);
    CHECK_INT(lev_store_renew(a, (const char *const *)keys, 1, 0, ok, NULL), ==, LEV_ERR_ARG);
    keys_free(keys, 4);
    lev_store_destroy(a);
    lev_store_destroy(b);
}

/* Exchanges the lists l on s in one round trip; out may be NULL. */
static int exchange(lev_store_t *s, const lev_store_lists_t *l, lev_claim_t *out)
{
    int rc = lev_store_exchange_begin(s, l, NULL);
    return rc ? rc : lev_store_exchange_end(s, NULL, NULL, out, NULL);
}

/* A dead-letter mark replaces only our claim and keeps the done TTL; a
 * plain claim of a marked key says dead-lettered; a redrive's claim takes a
 * key marked by another copy of the event but not its own mark; on both
 * the plain-command and the script path. */
static void dead_letter_marks_are_skipped_and_taken_only_by_another_copy(void)
{
    for (int scripts = 0; scripts < 2; scripts++) {
        char *keys[2], buf[128], want[64];
        lev_claim_t out[2];
        lev_store_t *a = store_open(), *b = store_open();
        REQUIRE(a && b);
        if (scripts) {
            lev_store_use_scripts(a);
            lev_store_use_scripts(b);
        }
        keys_make(keys, 2, scripts ? "dead-scripts" : "dead-plain");
        CHECK_INT(lev_store_claim(a, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
        CHECK_INT(lev_store_claim(b, (const char *const *)keys + 1, 1, 30000, out, NULL), ==, 0);
        /* a marks both: its own claim, and b's (left alone) */
        const char *marks[2] = {"X:", "X:"};
        lev_store_lists_t mark = {.dead = (const char *const *)keys,
                                  .dead_mark = marks,
                                  .ndead = 2,
                                  .done_ttl_ms = 60000};
        CHECK_INT(exchange(a, &mark, NULL), ==, 0);
        CHECK_STR(raw_get(keys[0], buf, sizeof buf), "X:");
        CHECK_INT(raw_int("PTTL", keys[0]), >, 30000);
        snprintf(want, sizeof want, "P:%s", lev_store_token(b));
        CHECK_STR(raw_get(keys[1], buf, sizeof buf), want);
        /* the same record again: dead-lettered, untouched */
        CHECK_INT(lev_store_claim(b, (const char *const *)keys, 1, 30000, out, NULL), ==, 0);
        CHECK_INT(out[0], ==, LEV_CLAIM_DEAD);
        CHECK_STR(raw_get(keys[0], buf, sizeof buf), "X:");
        /* a redrive: its own mark would differ, so it takes the key */
        const char *redrive[1] = {"X:t.dlq/0/7"};
        lev_store_lists_t claim = {.claim = (const char *const *)keys,
                                   .nclaim = 1,
                                   .claim_mark = redrive,
                                   .lease_ms = 30000};
        CHECK_INT(exchange(b, &claim, out), ==, 0);
        CHECK_INT(out[0], ==, LEV_CLAIM_OWNED);
        CHECK_STR(raw_get(keys[0], buf, sizeof buf), want);
        /* it is dead-lettered again; the same redriven record fetched again
         * finds its own mark */
        mark = (lev_store_lists_t){.dead = (const char *const *)keys,
                                   .dead_mark = redrive,
                                   .ndead = 1,
                                   .done_ttl_ms = 60000};
        CHECK_INT(exchange(b, &mark, NULL), ==, 0);
        CHECK_STR(raw_get(keys[0], buf, sizeof buf), "X:t.dlq/0/7");
        CHECK_INT(exchange(a, &claim, out), ==, 0);
        CHECK_INT(out[0], ==, LEV_CLAIM_DEAD);
        /* a redrive never takes a live claim or a done key */
        CHECK_INT(lev_store_complete(b, (const char *const *)keys + 1, 1, 60000, NULL, NULL), ==,
                  0);
        claim.claim = (const char *const *)keys + 1;
        CHECK_INT(exchange(a, &claim, out), ==, 0);
        CHECK_INT(out[0], ==, LEV_CLAIM_DONE);
        keys_free(keys, 2);
        lev_store_destroy(a);
        lev_store_destroy(b);
    }
}

/* Many reads in one MGET, many compare-and-sets in one pipeline, applied
 * in order (a later one may expect what an earlier one wrote). */
static void get_many_and_cas_many_are_one_round_trip_each(void)
{
    enum { N = 300 };
    char *keys[N], *values[N], buf[64];
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, N, "many");
    for (int i = 0; i < N; i += 2) {
        snprintf(buf, sizeof buf, "v%d", i);
        REQUIRE(lev_store_set(s, keys[i], buf, 0, NULL) == 0);
    }
    redisReply *r = raw("LPUSH %s x", keys[1]); /* not a string */
    if (r)
        freeReplyObject(r);
    uint64_t trips = lev_store_round_trips(s);
    CHECK_INT(lev_store_get_many(s, (const char *const *)keys, N, values, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - trips, ==, 1);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        wrong += i % 2 ? values[i] != NULL : !values[i] || strcmp(values[i], buf) != 0;
        free(values[i]);
    }
    CHECK_INT(wrong, ==, 0);
    /* k0: v0 -> a -> b (chained); k2: wrong expectation; k3: absent -> c
     * with a TTL; k4: "only if absent" but present */
    const char *ck[] = {keys[0], keys[0], keys[2], keys[3], keys[4]};
    const char *ce[] = {"v0", "a", "nope", NULL, NULL};
    const char *cv[] = {"a", "b", "x", "c", "y"};
    const int64_t ttl[] = {0, 0, 0, 60000, 0};
    int swapped[5] = {-1, -1, -1, -1, -1};
    trips = lev_store_round_trips(s);
    CHECK_INT(lev_store_cas_many(s, ck, ce, cv, ttl, 5, swapped, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - trips, ==, 1);
    CHECK(swapped[0] == 1 && swapped[1] == 1 && swapped[2] == 0 && swapped[3] == 1 &&
          swapped[4] == 0);
    CHECK_STR(raw_get(keys[0], buf, sizeof buf), "b");
    CHECK_STR(raw_get(keys[2], buf, sizeof buf), "v2");
    CHECK_STR(raw_get(keys[3], buf, sizeof buf), "c");
    CHECK_INT(raw_int("PTTL", keys[3]), >, 30000);
    CHECK_STR(raw_get(keys[4], buf, sizeof buf), "v4");
    /* a compare-and-set on a key of another type is an error, named */
    lev_error_t err;
    const char *bk[] = {keys[1]}, *be[] = {"x"}, *bv[] = {"y"};
    const int64_t bt[] = {0};
    CHECK_INT(lev_store_cas_many(s, bk, be, bv, bt, 1, swapped, &err), ==, LEV_ERR_REDIS);
    CHECK(strstr(err.text, "WRONGTYPE") != NULL);
    CHECK_INT(lev_store_get_many(s, (const char *const *)keys, 1, values, NULL), ==, 0);
    free(values[0]);
    keys_free(keys, N);
    lev_store_destroy(s);
}

static void batch_of_500_costs_one_round_trip_per_call(void)
{
    enum { N = 500 };
    char *done[N], *dropped[N];
    lev_claim_t out[N];
    int ok[N];
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(done, N, "b500done");
    keys_make(dropped, N, "b500drop");
    uint64_t rt = lev_store_round_trips(s);

    CHECK_INT(lev_store_claim(s, (const char *const *)done, N, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 1);
    CHECK_INT(lev_store_complete(s, (const char *const *)done, N, 60000, ok, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 2);
    CHECK_INT(lev_store_claim(s, (const char *const *)dropped, N, 30000, out, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 3);
    CHECK_INT(lev_store_release(s, (const char *const *)dropped, N, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 4);

    int owned = 0, oks = 0, gone = 0;
    for (int i = 0; i < N; i++) {
        owned += out[i] == LEV_CLAIM_OWNED;
        oks += ok[i] == 1;
        gone += raw_int("EXISTS", dropped[i]) == 0;
    }
    CHECK_INT(owned, ==, N);
    CHECK_INT(oks, ==, N);
    CHECK_INT(gone, ==, N);
    CHECK_INT(lev_store_claim(s, (const char *const *)done, N, 30000, out, NULL), ==, 0);
    int dones = 0;
    for (int i = 0; i < N; i++)
        dones += out[i] == LEV_CLAIM_DONE;
    CHECK_INT(dones, ==, N);
    keys_free(done, N);
    keys_free(dropped, N);
    lev_store_destroy(s);
}

static void empty_batches_cost_nothing(void)
{
    lev_store_t *s = store_open();
    REQUIRE(s);
    uint64_t rt = lev_store_round_trips(s);
    CHECK_INT(lev_store_claim(s, NULL, 0, 1000, NULL, NULL), ==, 0);
    CHECK_INT(lev_store_complete(s, NULL, 0, 1000, NULL, NULL), ==, 0);
    CHECK_INT(lev_store_release(s, NULL, 0, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s), ==, rt);
    lev_store_destroy(s);
}

static void bad_arguments_are_refused(void)
{
    const char *keys[2] = {"k", NULL};
    lev_claim_t out[2];
    lev_store_t *s = store_open();
    REQUIRE(s);
    CHECK_INT(lev_store_claim(s, keys, 2, 1000, out, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_claim(s, keys, 1, 0, out, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_claim(s, keys, 1, 1000, NULL, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_claim(NULL, keys, 1, 1000, out, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_complete(s, keys, 1, 0, NULL, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_release(s, NULL, 1, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_set(s, "k", NULL, 0, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_set(s, "k", "v", -1, NULL), ==, LEV_ERR_ARG);
    CHECK_INT(lev_store_ping(NULL, NULL), ==, LEV_ERR_ARG);
    CHECK(lev_store_token(NULL) == NULL);
    CHECK_INT(lev_store_round_trips(NULL), ==, 0);
    lev_store_destroy(NULL);
    lev_store_destroy(s);
}

/* ======================================================================
 * Plain keys
 * ====================================================================== */

static void set_once_get_set_cas_semantics(void)
{
    char key[256], other[256];
    char *v = NULL;
    int flag = -1;
    lev_store_t *s = store_open();
    REQUIRE(s);
    snprintf(key, sizeof key, "%s:kv", prefix);
    snprintf(other, sizeof other, "%s:kv-absent", prefix);

    CHECK_INT(lev_store_get(s, key, &v, NULL), ==, 0);
    CHECK(v == NULL);
    CHECK_INT(lev_store_set_once(s, key, "first", 0, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 1);
    CHECK_INT(raw_int("PTTL", key), ==, -1);
    CHECK_INT(lev_store_set_once(s, key, "second", 0, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 0);
    CHECK_INT(lev_store_get(s, key, &v, NULL), ==, 0);
    CHECK_STR(v, "first");
    free(v);

    CHECK_INT(lev_store_set(s, key, "third", 60000, NULL), ==, 0);
    CHECK_INT(lev_store_get(s, key, &v, NULL), ==, 0);
    CHECK_STR(v, "third");
    free(v);
    long long pttl = raw_int("PTTL", key);
    CHECK(pttl > 50000 && pttl <= 60000);
    CHECK_INT(lev_store_set(s, key, "fourth", 0, NULL), ==, 0);
    CHECK_INT(raw_int("PTTL", key), ==, -1);

    CHECK_INT(lev_store_cas(s, key, "wrong", "fifth", 0, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 0);
    CHECK_INT(lev_store_cas(s, key, "fourth", "fifth", 30000, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 1);
    CHECK_INT(lev_store_get(s, key, &v, NULL), ==, 0);
    CHECK_STR(v, "fifth");
    free(v);
    pttl = raw_int("PTTL", key);
    CHECK(pttl > 20000 && pttl <= 30000);
    CHECK_INT(lev_store_cas(s, key, "fifth", "sixth", 0, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 1);
    CHECK_INT(raw_int("PTTL", key), ==, -1);
    /* NULL expect: only when absent */
    CHECK_INT(lev_store_cas(s, key, NULL, "seventh", 0, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 0);
    CHECK_INT(lev_store_cas(s, other, NULL, "new", 5000, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 1);
    pttl = raw_int("PTTL", other);
    CHECK(pttl > 0 && pttl <= 5000);
    /* an expected value on an absent key does not create it */
    raw_int("DEL", other);
    CHECK_INT(lev_store_cas(s, other, "x", "y", 0, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 0);
    CHECK_INT(raw_int("EXISTS", other), ==, 0);

    /* set_once with a TTL */
    CHECK_INT(lev_store_set_once(s, other, "ttl", 5000, &flag, NULL), ==, 0);
    CHECK_INT(flag, ==, 1);
    pttl = raw_int("PTTL", other);
    CHECK(pttl > 0 && pttl <= 5000);
    lev_store_destroy(s);
}

static void wrong_type_key_is_a_redis_error_and_store_stays_usable(void)
{
    char key[256];
    char *v = NULL;
    lev_claim_t out[1];
    lev_error_t err = {0};
    lev_store_t *s = store_open();
    REQUIRE(s);
    snprintf(key, sizeof key, "%s:list", prefix);
    redisReply *r = raw("RPUSH %s x", key);
    if (r)
        freeReplyObject(r);
    const char *keys[] = {key};
    CHECK_INT(lev_store_claim(s, keys, 1, 1000, out, &err), ==, LEV_ERR_REDIS);
    CHECK(strstr(err.text, "WRONGTYPE") != NULL);
    CHECK_INT(lev_store_get(s, key, &v, &err), ==, LEV_ERR_REDIS);
    CHECK(v == NULL);
    CHECK_INT(lev_store_ping(s, NULL), ==, 0);
    raw_int("DEL", key);
    lev_store_destroy(s);
}

/* ======================================================================
 * Connection loss, script cache loss, errors
 * ====================================================================== */

static void reconnects_after_connection_killed(void)
{
    char *keys[4];
    lev_claim_t out[4];
    lev_error_t err = {0};
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, 4, "kill");

    long long id = kill_connection(s);
    REQUIRE(id > 0);
    /* the closed connection is noticed before anything is sent on it */
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, 2, 30000, out, &err), ==, 0);
    CHECK(out[0] == LEV_CLAIM_OWNED && out[1] == LEV_CLAIM_OWNED);
    long long id2 = client_id_of(s);
    CHECK(id2 > 0 && id2 != id);

    /* ping reconnects as well */
    CHECK(kill_connection(s) == id2);
    CHECK_INT(lev_store_ping(s, &err), ==, 0);
    CHECK(client_id_of(s) > id2);

    /* the claims made before survive reconnection: same token */
    CHECK_INT(lev_store_complete(s, (const char *const *)keys, 2, 60000, (int[2]){0}, NULL), ==, 0);
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, 4, 30000, out, NULL), ==, 0);
    CHECK(out[0] == LEV_CLAIM_DONE && out[1] == LEV_CLAIM_DONE && out[2] == LEV_CLAIM_OWNED &&
          out[3] == LEV_CLAIM_OWNED);
    keys_free(keys, 4);
    lev_store_destroy(s);
}

/* SCRIPT FLUSH (or a restart) empties the script cache: the calls answered
 * NOSCRIPT go again with EVAL in a second round trip, which also puts the
 * script back. Releases and compare-and-set are scripts on every version;
 * claims and completions are scripts before Redis 7. */
static void noscript_after_script_flush_falls_back_to_eval(void)
{
    char *keys[10];
    lev_claim_t out[10];
    int ok[10];
    lev_error_t err = {0};
    lev_store_t *s = store_open();
    REQUIRE(s);
    keys_make(keys, 10, "noscript");
    CHECK_INT(lev_store_claim(s, (const char *const *)keys, 10, 30000, out, &err), ==, 0);
    for (int i = 0; i < 10; i++)
        CHECK_INT(out[i], ==, LEV_CLAIM_OWNED);
    redisReply *r = raw("SCRIPT FLUSH");
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    if (r)
        freeReplyObject(r);

    uint64_t rt = lev_store_round_trips(s);
    CHECK_INT(lev_store_release(s, (const char *const *)keys + 5, 5, &err), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 2); /* EVALSHA, then EVAL */
    char buf[64];
    for (int i = 5; i < 10; i++)
        CHECK_STR(raw_get(keys[i], buf, sizeof buf), "(nil)");
    /* EVAL put the script back: the next call needs one round trip */
    rt = lev_store_round_trips(s);
    CHECK_INT(lev_store_release(s, (const char *const *)keys + 5, 5, &err), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 1);

    r = raw("SCRIPT FLUSH");
    if (r)
        freeReplyObject(r);
    CHECK_INT(lev_store_complete(s, (const char *const *)keys, 5, 60000, ok, NULL), ==, 0);
    for (int i = 0; i < 5; i++)
        CHECK_INT(ok[i], ==, 1);
    r = raw("SCRIPT FLUSH");
    if (r)
        freeReplyObject(r);
    int swapped = 0;
    rt = lev_store_round_trips(s);
    CHECK_INT(lev_store_cas(s, keys[0], "D", "x", 0, &swapped, NULL), ==, 0);
    CHECK_INT(lev_store_round_trips(s) - rt, ==, 2);
    CHECK_INT(swapped, ==, 1);
    keys_free(keys, 10);
    lev_store_destroy(s);
}

/* "redis://[:password@]127.0.0.1:<a port that refuses>/0" into url; the
 * socket that holds the port into *fd. */
static int refusing_url(char *url, size_t size, const char *password, int *fd)
{
    int port = lev_test_refusing_port(fd);
    snprintf(url, size, "redis://%s%s127.0.0.1:%d/0", password ? ":" : "", password ? password : "",
             port);
    return port;
}

static void unreachable_server_and_bad_url_errors(void)
{
    lev_error_t err = {0};
    char url[128], where[64];
    int fd, port = refusing_url(url, sizeof url, NULL, &fd);
    REQUIRE(port > 0);
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    CHECK(lev_store_new(url, 500, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_REDIS);
    CHECK(strstr(err.where, where) != NULL);
    close(fd);
    CHECK(lev_store_new("nope://h", 500, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    CHECK(lev_store_new(NULL, 500, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    CHECK(lev_store_new("unix:///nonexistent/redis.sock", 500, &err) == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_REDIS);
}

static void password_not_in_error_text(void)
{
    lev_store_url_t u;
    lev_error_t err = {0};
    char url[512], text[1024];
    REQUIRE(lev_store_url_parse(redis_url, &u, NULL) == 0);
    /* the real server refuses this password (it has none, or another one) */
    snprintf(url, sizeof url, "redis://:hunter2pw@%s%s%s:%d/0", strchr(u.host, ':') ? "[" : "",
             u.host, strchr(u.host, ':') ? "]" : "", u.port);
    if (!u.is_unix) {
        CHECK(lev_store_new(url, TIMEOUT_MS, &err) == NULL);
        CHECK_INT(err.code, ==, LEV_ERR_REDIS);
        lev_error_format(&err, text, sizeof text);
        fprintf(stderr, "  %s\n", text);
        CHECK(strstr(text, "hunter2pw") == NULL);
        CHECK(strstr(text, "AUTH") != NULL);
        snprintf(url, sizeof url, "redis://bob:hunter2pw@%s%s%s:%d/0",
                 strchr(u.host, ':') ? "[" : "", u.host, strchr(u.host, ':') ? "]" : "", u.port);
        CHECK(lev_store_new(url, TIMEOUT_MS, &err) == NULL);
        lev_error_format(&err, text, sizeof text);
        CHECK(strstr(text, "hunter2pw") == NULL);
    }
    lev_store_url_free(&u);

    /* unreachable */
    int fd;
    REQUIRE(refusing_url(url, sizeof url, "hunter2pw", &fd) > 0);
    CHECK(lev_store_new(url, 500, &err) == NULL);
    lev_error_format(&err, text, sizeof text);
    CHECK(strstr(text, "hunter2pw") == NULL);
    close(fd);

    /* a server that quotes the password back */
    fake_t f;
    REQUIRE(fake_start(&f, FAKE_AUTH_ECHO) == 0);
    snprintf(url, sizeof url, "redis://:hunter2pw@127.0.0.1:%d/0", f.port);
    CHECK(lev_store_new(url, TIMEOUT_MS, &err) == NULL);
    lev_error_format(&err, text, sizeof text);
    fprintf(stderr, "  %s\n", text);
    CHECK(strstr(text, "WRONGPASS") != NULL);
    CHECK(strstr(text, "hunter2pw") == NULL);
    fake_stop(&f);
}

/* Every call on a store whose server answers in the wrong shape fails with
 * LEV_ERR_REDIS, and the store connects again for the next call. A nil is
 * a valid answer to GET (absent) and SET NX (not set), and on Redis 7 to the
 * plain SET ... GET of claims (set: ours) and completions (nothing was
 * there), nowhere else. */
static void replies_of_unexpected_type_are_errors(fake_mode_t mode, int version)
{
    int nil = mode == FAKE_NIL, plain_nil = nil && version >= 7;
    fake_t f;
    char url[128], *v = NULL;
    const char *keys[2] = {"a", "b"};
    lev_claim_t out[2];
    int ok[2], flag;
    lev_error_t err = {0};
    REQUIRE(fake_start_version(&f, mode, version) == 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", f.port);
    lev_store_t *s = lev_store_new(url, TIMEOUT_MS, &err);
    CHECK(s != NULL);
    if (s) {
        CHECK_INT(lev_store_claim(s, keys, 2, 1000, out, &err), ==, plain_nil ? 0 : LEV_ERR_REDIS);
        if (plain_nil)
            CHECK(out[0] == LEV_CLAIM_OWNED && out[1] == LEV_CLAIM_OWNED);
        CHECK_INT(lev_store_complete(s, keys, 2, 1000, ok, &err), ==,
                  plain_nil ? 0 : LEV_ERR_REDIS);
        if (plain_nil)
            CHECK(ok[0] == 0 && ok[1] == 0);
        CHECK_INT(lev_store_release(s, keys, 2, &err), ==, LEV_ERR_REDIS);
        CHECK_INT(lev_store_ping(s, &err), ==, LEV_ERR_REDIS);
        CHECK_INT(lev_store_get(s, "k", &v, &err), ==, nil ? 0 : LEV_ERR_REDIS);
        CHECK(v == NULL);
        CHECK_INT(lev_store_set(s, "k", "v", 0, &err), ==, LEV_ERR_REDIS);
        flag = -1;
        CHECK_INT(lev_store_set_once(s, "k", "v", 0, &flag, &err), ==, nil ? 0 : LEV_ERR_REDIS);
        if (nil)
            CHECK_INT(flag, ==, 0);
        CHECK_INT(lev_store_cas(s, "k", "a", "b", 0, &flag, &err), ==, LEV_ERR_REDIS);
        CHECK(atomic_load(&f.accepted) >= 2); /* dropped and made again */
    }
    lev_store_destroy(s);
    fake_stop(&f);
}

static void nil_replies_are_errors_not_crashes(void)
{
    replies_of_unexpected_type_are_errors(FAKE_NIL, 6);
    replies_of_unexpected_type_are_errors(FAKE_NIL, 7);
}

static void array_replies_are_errors_not_crashes(void)
{
    replies_of_unexpected_type_are_errors(FAKE_ARRAY, 6);
    replies_of_unexpected_type_are_errors(FAKE_ARRAY, 7);
}

static void silent_server_times_out(void)
{
    fake_t f;
    char url[128];
    const char *keys[1] = {"a"};
    lev_claim_t out[1];
    lev_error_t err = {0};
    REQUIRE(fake_start(&f, FAKE_SILENT) == 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", f.port);
    lev_store_t *s = lev_store_new(url, 300, &err);
    CHECK(s != NULL);
    if (s) {
        int64_t t0 = lev_mono_ms();
        CHECK_INT(lev_store_claim(s, keys, 1, 1000, out, &err), ==, LEV_ERR_REDIS);
        int64_t took = lev_mono_ms() - t0;
        CHECK(took >= 250 && took < 2000);
        CHECK(strstr(err.text, "300 ms") != NULL);
        t0 = lev_mono_ms();
        CHECK_INT(lev_store_ping(s, &err), ==, LEV_ERR_REDIS);
        CHECK(lev_mono_ms() - t0 < 2000);
    }
    lev_store_destroy(s);
    fake_stop(&f);
}

static void server_closing_mid_call_is_an_error_then_reconnects(void)
{
    fake_t f;
    char url[128];
    const char *keys[3] = {"a", "b", "c"};
    lev_claim_t out[3];
    lev_error_t err = {0};
    REQUIRE(fake_start(&f, FAKE_CLOSE) == 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", f.port);
    lev_store_t *s = lev_store_new(url, TIMEOUT_MS, &err);
    CHECK(s != NULL);
    if (s) {
        for (int i = 0; i < 3; i++)
            CHECK_INT(lev_store_claim(s, keys, 3, 1000, out, &err), ==, LEV_ERR_REDIS);
        CHECK(atomic_load(&f.accepted) >= 3);

        /* a pipeline too big for one write: the server resets the
         * connection while we still write, and SIGPIPE must not kill us */
        enum { BIG = 20000 };
        char **big = malloc(BIG * sizeof *big);
        lev_claim_t *bout = malloc(BIG * sizeof *bout);
        REQUIRE(big && bout);
        for (int i = 0; i < BIG; i++) {
            big[i] = malloc(200);
            snprintf(big[i], 200, "%0180d", i);
        }
        CHECK_INT(lev_store_claim(s, (const char *const *)big, BIG, 1000, bout, &err), ==,
                  LEV_ERR_REDIS);
        for (int i = 0; i < BIG; i++)
            free(big[i]);
        free(big);
        free(bout);
    }
    lev_store_destroy(s);
    fake_stop(&f);
}

static void cleanup_keys(void)
{
    /* everything this run wrote carries the prefix */
    char pattern[160];
    snprintf(pattern, sizeof pattern, "%s:*", prefix);
    redisReply *r = raw("KEYS %s", pattern);
    if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            raw_int("DEL", r->element[i]->str);
    if (r)
        freeReplyObject(r);
    CHECK(1);
}

int main(int argc, char **argv)
{
    static const check_case_t cases[] = {
        CASE(claim_of_new_keys_is_owned),
        CASE(claim_of_completed_keys_is_done),
        CASE(claim_of_key_held_by_another_store_is_busy),
        CASE(repeated_key_in_one_claim_first_owned_rest_busy),
        CASE(complete_turns_owned_into_done_with_ttl),
        CASE(complete_after_lease_lost_reports_not_ok_and_marks_the_event_done),
        CASE(claims_and_completions_are_plain_commands_on_redis_7),
        CASE(settles_and_claims_share_one_round_trip_in_order),
        CASE(script_path_for_older_servers_has_the_same_semantics),
        CASE(release_deletes_only_our_claim),
        CASE(lease_expiry_lets_another_owner_claim),
        CASE(renew_extends_only_our_claims),
        CASE(dead_letter_marks_are_skipped_and_taken_only_by_another_copy),
        CASE(get_many_and_cas_many_are_one_round_trip_each),
        CASE(batch_of_500_costs_one_round_trip_per_call),
        CASE(empty_batches_cost_nothing),
        CASE(bad_arguments_are_refused),
        CASE(set_once_get_set_cas_semantics),
        CASE(wrong_type_key_is_a_redis_error_and_store_stays_usable),
        CASE(reconnects_after_connection_killed),
        CASE(noscript_after_script_flush_falls_back_to_eval),
        CASE(unreachable_server_and_bad_url_errors),
        CASE(password_not_in_error_text),
        CASE(nil_replies_are_errors_not_crashes),
        CASE(array_replies_are_errors_not_crashes),
        CASE(silent_server_times_out),
        CASE(server_closing_mid_call_is_an_error_then_reconnects),
        CASE(cleanup_keys),
    };
    redis_url = lev_test_env("REDIS_URL", "redis://127.0.0.1:17379/0");
    lev_test_unique("it-store", prefix, sizeof prefix);
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    if (raw_ctx)
        redisFree(raw_ctx);
    return rc;
}
