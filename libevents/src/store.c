/*
 * Redis store: idempotency leases and small string state over hiredis 0.14.
 *
 * One blocking connection per store, not shared between threads. Every
 * batch call appends all its commands to hiredis' output buffer and reads
 * the replies back in order: one write, one round trip, whatever the batch
 * size.
 *
 * Leases are Lua scripts, one call per key (EVALSHA <sha> 1 <key> ...),
 * pipelined. A claim runs `SET key P:<token> NX PX lease` and, when the key
 * exists, returns its value inside the same script, so one round trip tells
 * owned, done and busy apart. We send one call per key rather than one call
 * with every key of the batch because each command then touches a single key
 * (it works unchanged on a Redis Cluster, where a multi-key script must keep
 * all its keys in one slot), the server never runs one long script that
 * stalls every other client, and a NOSCRIPT answer (script cache emptied by a
 * restart or SCRIPT FLUSH) concerns exactly the calls that did not run, which
 * are then sent again with EVAL.
 *
 * A lost connection is dropped and made again at the start of the next call.
 * The password is never written to errors or logs.
 */
#include "internal.h"
#include "store_internal.h"

#include <errno.h>
#include <hiredis/hiredis.h>

#define LEV_STR_(x) #x
#define LEV_STR(x) LEV_STR_(x)
/* "0.14.1": the hiredis this build links */
#define LEV_HIREDIS_VERSION_TEXT                                                                   \
    LEV_STR(HIREDIS_MAJOR) "." LEV_STR(HIREDIS_MINOR) "." LEV_STR(HIREDIS_PATCH)
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* ======================================================================
 * URL parsing
 * ====================================================================== */

/* A malloc'd copy of s[0..len) with %XX escapes decoded, or NULL when an
 * escape is malformed or encodes a NUL (*bad set to 1) or memory ran out
 * (*bad left 0). */
static char *url_decode(const char *s, size_t len, int *bad)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = -1, lo = -1;
        if (i + 2 < len) {
            hi = lev_hexval((unsigned char)s[i + 1]);
            lo = lev_hexval((unsigned char)s[i + 2]);
        }
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            *bad = 1;
            return NULL;
        }
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* Parses the decimal number s[0..len) into *v when it lies in [min, max]. */
static int url_number(const char *s, size_t len, long min, long max, int *v)
{
    long acc = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        acc = acc * 10 + (s[i] - '0');
    }
    if (acc < min || acc > max)
        return -1;
    *v = (int)acc;
    return 0;
}

void lev_store_url_free(lev_store_url_t *u)
{
    if (!u)
        return;
    free(u->host);
    free(u->user);
    if (u->password) {
        /* do not leave the secret lying around in freed memory */
        volatile char *p = u->password;
        while (*p)
            *p++ = '\0';
        free(u->password);
    }
    free(u->endpoint);
    memset(u, 0, sizeof *u);
}

/* Frees *u and reports a malformed URL; the text names the part at fault
 * and never quotes the URL (it may hold a password). */
static int url_fail(lev_store_url_t *u, lev_error_t *err, const char *what)
{
    lev_store_url_free(u);
    return lev_error_set(err, LEV_ERR_CONFIG, "redis url", "%s", what);
}

/* Splits "[user]:password" (s[0..len)) into u->user and u->password. */
static int url_parse_userinfo(const char *s, size_t len, lev_store_url_t *u, lev_error_t *err)
{
    const char *colon = memchr(s, ':', len);
    int bad = 0;
    if (!colon)
        return url_fail(u, err, "credentials must be written [user]:password@");
    size_t ulen = (size_t)(colon - s), plen = len - ulen - 1;
    if (ulen > 0) {
        u->user = url_decode(s, ulen, &bad);
        if (!u->user)
            goto fail;
    }
    if (plen > 0 || u->user) {
        u->password = url_decode(colon + 1, plen, &bad);
        if (!u->password)
            goto fail;
    }
    return LEV_OK;
fail:
    if (!bad) {
        lev_store_url_free(u);
        return lev_error_set(err, LEV_ERR_NOMEM, "redis url", "out of memory");
    }
    return url_fail(u, err, "bad percent-escape in the credentials");
}

/* Parses "host[:port]" or "[v6addr][:port]" (s[0..len)) into u. */
static int url_parse_hostport(const char *s, size_t len, lev_store_url_t *u, lev_error_t *err)
{
    const char *host = s, *port = NULL, *end = s + len;
    size_t hlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return url_fail(u, err, "IPv6 address without closing ']'");
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < end) {
            if (close[1] != ':')
                return url_fail(u, err, "unexpected text after the IPv6 address");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        if (colon) {
            port = colon + 1;
            if (memchr(port, ':', (size_t)(end - port)))
                return url_fail(u, err, "IPv6 addresses must be written in brackets");
        }
    }
    if (hlen == 0)
        return url_fail(u, err, "no host");
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_' || (host != s && c == ':');
        if (!ok)
            return url_fail(u, err, "host contains a character not allowed in a host name");
    }
    u->port = 6379;
    if (port && url_number(port, (size_t)(end - port), 1, 65535, &u->port) != 0)
        return url_fail(u, err, "port must be a number from 1 to 65535");
    u->host = strndup(host, hlen);
    if (!u->host) {
        lev_store_url_free(u);
        return lev_error_set(err, LEV_ERR_NOMEM, "redis url", "out of memory");
    }
    return LEV_OK;
}

/* Builds u->endpoint, the URL without its credentials. */
static int url_make_endpoint(lev_store_url_t *u, lev_error_t *err)
{
    int brackets = strchr(u->host, ':') != NULL;
    size_t size = strlen(u->host) + 64;
    u->endpoint = malloc(size);
    if (!u->endpoint) {
        lev_store_url_free(u);
        return lev_error_set(err, LEV_ERR_NOMEM, "redis url", "out of memory");
    }
    if (u->is_unix)
        snprintf(u->endpoint, size, "unix://%s?db=%d", u->host, u->db);
    else
        snprintf(u->endpoint, size, "redis://%s%s%s:%d/%d", brackets ? "[" : "", u->host,
                 brackets ? "]" : "", u->port, u->db);
    return LEV_OK;
}

int lev_store_url_parse(const char *url, lev_store_url_t *out, lev_error_t *err)
{
    lev_store_url_t u = {0};
    const char *p;
    int rc;
    if (!out)
        return lev_error_set(err, LEV_ERR_ARG, "redis url", "no output given");
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return url_fail(&u, err, "empty URL");
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        u.is_unix = 1;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        return url_fail(&u, err,
                        "TLS (rediss://) is not supported: it needs hiredis 1.0 or newer, and this "
                        "build links hiredis " LEV_HIREDIS_VERSION_TEXT
                        " (Debian bookworm's); reach Redis over a TLS tunnel or a private network");
    } else {
        return url_fail(&u, err, "scheme must be redis:// or unix://");
    }

    /* authority: up to the first '/'; credentials end at its last '@' */
    const char *slash = strchr(p, '/');
    const char *auth_end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        if ((rc = url_parse_userinfo(p, (size_t)(at - p), &u, err)) != 0)
            return rc;
        p = at + 1;
    }

    if (u.is_unix) {
        if (p != auth_end)
            return url_fail(&u, err, "unix URLs take no host: unix:///path/to/socket");
        const char *q = strchr(p, '?');
        size_t plen = q ? (size_t)(q - p) : strlen(p);
        if (plen < 2)
            return url_fail(&u, err, "no socket path");
        if (q && (strncmp(q, "?db=", 4) != 0 ||
                  url_number(q + 4, strlen(q + 4), 0, INT_MAX, &u.db) != 0))
            return url_fail(&u, err, "the only query parameter is db=<number>");
        u.host = strndup(p, plen);
        if (!u.host) {
            lev_store_url_free(&u);
            return lev_error_set(err, LEV_ERR_NOMEM, "redis url", "out of memory");
        }
    } else {
        if ((rc = url_parse_hostport(p, (size_t)(auth_end - p), &u, err)) != 0)
            return rc;
        if (slash && slash[1] != '\0' &&
            url_number(slash + 1, strlen(slash + 1), 0, INT_MAX, &u.db) != 0)
            return url_fail(&u, err, "database must be a number after the last '/'");
    }
    if ((rc = url_make_endpoint(&u, err)) != 0)
        return rc;
    *out = u;
    return LEV_OK;
}

/* ======================================================================
 * The store and its connection
 * ====================================================================== */

enum {
    SCRIPT_CLAIM,
    SCRIPT_COMPLETE,
    SCRIPT_RELEASE,
    SCRIPT_CAS,
    SCRIPT_RENEW,
    SCRIPT_DEAD,
    SCRIPT_CLAIM_REDRIVE,
    SCRIPT_COUNT,
    CALL_SETNX, /* not a script: SET key value NX [PX ttl]; args value, ttl ("0": none) */
};

/* KEYS[1] the key; ARGV: see each script. */
static const char *const store_scripts[SCRIPT_COUNT] = {
    /* claim: ARGV[1] "P:<token>", ARGV[2] lease ms. 1 when set, else the
     * current value (read in the same atomic step). */
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "return redis.call('GET', KEYS[1])\n",
    /* complete: ARGV[1] "P:<token>", ARGV[2] done TTL ms. Done whatever the
     * key held (see lev_store_settle_claim); 1 when it was our claim. */
    "local old = redis.call('GET', KEYS[1])\n"
    "redis.call('SET', KEYS[1], 'D', 'PX', ARGV[2])\n"
    "if old == ARGV[1] then return 1 end\n"
    "return 0\n",
    /* release: ARGV[1] "P:<token>". 1 when it was ours and is gone. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n",
    /* compare-and-set: ARGV[1] expected, ARGV[2] new value, ARGV[3] TTL ms
     * ("0": none). 1 when it swapped. */
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])\n"
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end\n"
    "return 1\n",
    /* renew: ARGV[1] "P:<token>", ARGV[2] lease ms. 1 when it was ours and
     * runs for the lease again from now. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n",
    /* dead-lettered: ARGV[1] "P:<token>", ARGV[2] TTL ms, ARGV[3] the mark
     * ("X:<redrive provenance>"). 1 when it was our claim and is marked. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n",
    /* claim of a redriven record: ARGV[1] "P:<token>", ARGV[2] lease ms,
     * ARGV[3] the mark its own dead-lettering would leave. Takes a free key,
     * or one dead-lettered by another copy of the event; 1 when it did, else
     * the current value. */
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v or (string.sub(v, 1, 2) == 'X:' and v ~= ARGV[3]) then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return v\n",
};

/* An exchange begun (lev_store_exchange_begin) whose replies are not read
 * yet: the calls sent and what the replies are matched against. The key
 * arrays are the caller's. */
typedef struct store_pending_s {
    int active;
    struct store_call_s *calls;
    size_t ncalls, cap;
    size_t *first, *uniq, m;
    size_t *table, table_cap; /* the duplicate-key table, kept */
    redisReply **replies;     /* kept from call to call */
    size_t replies_cap;
    lev_store_lists_t l;
    char ttl[24], lease[24];
    const char *done_args[2], *rel_args[1], *claim_args[2];
    /* the RESP after the key of a plain claim ("P:<token>" NX PX <lease>
     * GET) and completion (D PX <ttl> GET), formatted once per exchange */
    char claim_tail[128], done_tail[96];
    size_t claim_tail_len, done_tail_len;
} store_pending_t;

#define STORE_TOKEN_BYTES 16
#define STORE_SHA_LEN 40

struct lev_store_s {
    lev_store_url_t url;
    struct timeval timeout; /* connect timeout and per socket read/write */
    int timeout_ms;
    redisContext *ctx; /* NULL while disconnected */
    int ever_connected;
    char token[STORE_TOKEN_BYTES * 2 + 1];
    char lease_value[STORE_TOKEN_BYTES * 2 + 3]; /* "P:" token */
    char sha[SCRIPT_COUNT][STORE_SHA_LEN + 1];
    int plain;                    /* the server takes SET with NX and GET together (Redis >= 7.0) */
    _Atomic uint64_t round_trips; /* one writer; lev_worker_stats reads it from any thread */
    lev_store_obs_t obs;
    int64_t sent_ns; /* when the round trip under way was sent */
    char *fmt;       /* RESP of the commands of one round trip */
    size_t fmt_len, fmt_cap;
    store_pending_t pending;
};

/* Overwrites every occurrence of the password in text with '*', in case a
 * server or library message ever echoes it. */
static void store_scrub(const lev_store_t *s, char *text)
{
    const char *pw = s->url.password;
    size_t len = pw ? strlen(pw) : 0;
    if (len == 0)
        return;
    for (char *p = strstr(text, pw); p; p = strstr(p + len, pw))
        memset(p, '*', len);
}

/* Fills err (if not NULL) with the store's credential-free URL as `where`
 * and the formatted text, scrubbed of the password; logs it at `level` when
 * level is not -1. Returns code. */
static int store_fail(const lev_store_t *s, lev_error_t *err, int code, int level, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static int store_fail(const lev_store_t *s, lev_error_t *err, int code, int level, const char *fmt,
                      ...)
{
    lev_error_t e;
    char text[sizeof e.text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    lev_error_set(&e, code, s->url.endpoint, "%s", text);
    store_scrub(s, e.text);
    if (code == LEV_ERR_REDIS)
        lev_mx_add(s->obs.errors, 1);
    if (level >= 0)
        lev_log((lev_log_level_t)level, e.text, "redis", s->url.endpoint, NULL);
    if (err)
        *err = e;
    return code;
}

/* Closes the connection; the next call connects again. */
static void store_disconnect(lev_store_t *s)
{
    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
}

/* Frees replies[0..n) and sets them to NULL. */
static void replies_free(redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

/* SIGPIPE guard: a write to a connection the server has closed must not
 * kill the process, and a library must not change the process' signal
 * dispositions. SIGPIPE is blocked in this thread for the exchange and a
 * SIGPIPE the exchange raised is consumed before the old mask returns. */
typedef struct sigpipe_guard_s {
    sigset_t old_mask;
    int was_pending;
} sigpipe_guard_t;

/* Blocks SIGPIPE in the calling thread, remembering whether one was pending. */
static void sigpipe_block(sigpipe_guard_t *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old_mask);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

/* Consumes a SIGPIPE raised since sigpipe_block and restores the mask. */
static void sigpipe_restore(sigpipe_guard_t *g)
{
    int saved_errno = errno;
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
    errno = saved_errno;
}

/* Writes what the connection's output buffer holds, without reading: one
 * round trip begins. On failure the connection is dropped. */
static int store_send(lev_store_t *s, lev_error_t *err)
{
    sigpipe_guard_t guard;
    int rc = LEV_OK, done = 0;
    atomic_store_explicit(&s->round_trips,
                          atomic_load_explicit(&s->round_trips, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    lev_mx_add(s->obs.round_trips, 1);
    if (s->obs.seconds)
        s->sent_ns = lev_mono_ns();
    sigpipe_block(&guard);
    while (!done) {
        errno = 0;
        if (redisBufferWrite(s->ctx, &done) != REDIS_OK) {
            int timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            rc = store_fail(s, err, LEV_ERR_REDIS, LEV_LOG_WARN,
                            timed_out ? "cannot send within %d ms; connection dropped"
                                      : "connection lost while sending (%d ms timeout)",
                            s->timeout_ms);
            store_disconnect(s);
            break;
        }
    }
    sigpipe_restore(&guard);
    return rc;
}

/*
 * Reads n replies into replies[] in order (sending first whatever is still
 * unsent). On success every replies[i] is set (error replies included) and
 * owned by the caller. When the connection fails (I/O error, timeout,
 * closed by the server) it is dropped, nothing is left in replies[] and
 * LEV_ERR_REDIS is returned.
 */
static int store_receive(lev_store_t *s, redisReply **replies, size_t n, lev_error_t *err)
{
    sigpipe_guard_t guard;
    int rc = LEV_OK;
    sigpipe_block(&guard);
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        errno = 0;
        if (redisGetReply(s->ctx, &r) != REDIS_OK || !r) {
            int timed_out =
                s->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
            if (r)
                freeReplyObject(r);
            if (timed_out)
                rc = store_fail(s, err, LEV_ERR_REDIS, LEV_LOG_WARN,
                                "no answer within %d ms; connection dropped", s->timeout_ms);
            else
                rc = store_fail(s, err, LEV_ERR_REDIS, LEV_LOG_WARN, "connection lost: %s",
                                s->ctx->err ? s->ctx->errstr : "no reply");
            replies_free(replies, i);
            store_disconnect(s);
            break;
        }
        replies[i] = r;
    }
    sigpipe_restore(&guard);
    if (rc == LEV_OK && n > 0 && s->obs.seconds)
        lev_mx_observe(s->obs.seconds, (double)(lev_mono_ns() - s->sent_ns) / 1e9);
    return rc;
}

/* Sends the commands appended to the connection and reads their n replies:
 * one round trip (see store_receive). */
static int store_exchange(lev_store_t *s, redisReply **replies, size_t n, lev_error_t *err)
{
    if (n == 0)
        return LEV_OK;
    int rc = store_send(s, err);
    return rc ? rc : store_receive(s, replies, n, err);
}

/* Appends one command to the output buffer; on failure (no memory) drops
 * the connection, whose buffer may now hold half a command. */
static int store_append(lev_store_t *s, int argc, const char **argv, lev_error_t *err)
{
    size_t lens[8];
    if (argc > 8) {
        store_disconnect(s);
        return store_fail(s, err, LEV_ERR_ARG, -1, "too many command arguments");
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redisAppendCommandArgv(s->ctx, argc, argv, lens) != REDIS_OK) {
        store_disconnect(s);
        return store_fail(s, err, LEV_ERR_NOMEM, -1, "out of memory queueing a command");
    }
    return LEV_OK;
}

/* 1 when a status or string reply says exactly `text`. */
static int reply_is(const redisReply *r, const char *text)
{
    return r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
           r->len == strlen(text) && memcmp(r->str, text, r->len) == 0;
}

/* The text of an error reply, for messages. */
static const char *reply_error_text(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply";
}

/*
 * Connects, authenticates, selects the database, names the connection
 * "lev:<token>" (so operators can tell stores apart in CLIENT LIST) and
 * loads the scripts, all the commands in one round trip. 0 when s->ctx is
 * ready; otherwise s->ctx stays NULL and LEV_ERR_REDIS is returned.
 */
static int store_connect(lev_store_t *s, lev_error_t *err)
{
    enum { MAX_CMDS = 5 + SCRIPT_COUNT };
    redisReply *replies[MAX_CMDS] = {0};
    char db[16], name[sizeof s->token + 8];
    size_t n = 0, at_auth = SIZE_MAX, at_select = SIZE_MAX, at_script, at_info;
    int rc = LEV_OK;

    if (s->url.is_unix)
        s->ctx = redisConnectUnixWithTimeout(s->url.host, s->timeout);
    else
        s->ctx = redisConnectWithTimeout(s->url.host, s->url.port, s->timeout);
    if (!s->ctx)
        return store_fail(s, err, LEV_ERR_NOMEM, -1, "out of memory creating a connection");
    if (s->ctx->err) {
        rc = store_fail(s, err, LEV_ERR_REDIS, -1, "cannot connect: %s", s->ctx->errstr);
        goto done;
    }
    if (redisSetTimeout(s->ctx, s->timeout) != REDIS_OK) {
        rc =
            store_fail(s, err, LEV_ERR_REDIS, -1, "cannot set socket timeouts: %s", s->ctx->errstr);
        goto done;
    }

    if (s->url.password) {
        /* AUTH [user] password */
        const char *argv[3] = {"AUTH"};
        int argc = 1;
        if (s->url.user)
            argv[argc++] = s->url.user;
        argv[argc++] = s->url.password;
        at_auth = n++;
        if ((rc = store_append(s, argc, argv, err)) != 0)
            goto done;
    }
    if (s->url.db != 0) {
        snprintf(db, sizeof db, "%d", s->url.db);
        at_select = n++;
        if ((rc = store_append(s, 2, (const char *[]){"SELECT", db}, err)) != 0)
            goto done;
    }
    snprintf(name, sizeof name, "lev:%s", s->token);
    n++; /* a refused name (ACL) is not fatal: its reply is not looked at */
    if ((rc = store_append(s, 3, (const char *[]){"CLIENT", "SETNAME", name}, err)) != 0)
        goto done;
    at_info = n++;
    if ((rc = store_append(s, 2, (const char *[]){"INFO", "server"}, err)) != 0)
        goto done;
    at_script = n;
    for (int i = 0; i < SCRIPT_COUNT; i++, n++)
        if ((rc = store_append(s, 3, (const char *[]){"SCRIPT", "LOAD", store_scripts[i]}, err)) !=
            0)
            goto done;

    if ((rc = store_exchange(s, replies, n, err)) != 0)
        goto done;
    if (at_auth != SIZE_MAX && !reply_is(replies[at_auth], "OK")) {
        rc = store_fail(s, err, LEV_ERR_REDIS, -1, "AUTH failed: %s",
                        reply_error_text(replies[at_auth]));
        goto done;
    }
    if (at_select != SIZE_MAX && !reply_is(replies[at_select], "OK")) {
        rc = store_fail(s, err, LEV_ERR_REDIS, -1, "SELECT %d failed: %s", s->url.db,
                        reply_error_text(replies[at_select]));
        goto done;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const redisReply *r = replies[at_script + (size_t)i];
        if (!r || r->type != REDIS_REPLY_STRING || r->len != STORE_SHA_LEN) {
            rc = store_fail(s, err, LEV_ERR_REDIS, -1, "SCRIPT LOAD failed: %s",
                            reply_error_text(r));
            goto done;
        }
        memcpy(s->sha[i], r->str, STORE_SHA_LEN);
        s->sha[i][STORE_SHA_LEN] = '\0';
    }
    /* SET with NX and GET together (7.0): claims and completions are one
     * plain command each instead of a script call */
    s->plain = 0;
    const redisReply *info = replies[at_info];
    const char *v = info && info->type == REDIS_REPLY_STRING && info->str
                        ? strstr(info->str, "redis_version:")
                        : NULL;
    if (v)
        s->plain = atoi(v + 14) >= 7;
    if (s->ever_connected)
        lev_log(LEV_LOG_INFO, "redis reconnected", "redis", s->url.endpoint, NULL);
    s->ever_connected = 1;

done:
    replies_free(replies, MAX_CMDS);
    if (rc)
        store_disconnect(s);
    return rc;
}

/* 1 when the idle connection still looks usable: no error recorded, and
 * the server has neither closed it nor sent anything unasked (a peek that
 * does not block and does not consume). */
static int store_conn_alive(const lev_store_t *s)
{
    char b;
    if (s->ctx->err)
        return 0;
    ssize_t r = recv(s->ctx->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

/* Makes sure there is a usable connection before commands are appended:
 * a connection the server closed while idle (restart, CLIENT KILL, idle
 * timeout) is replaced here, before anything was sent on it. */
static int store_ready(lev_store_t *s, lev_error_t *err)
{
    if (s->pending.active) /* its replies are still to be read: not ours to mix with */
        return lev_error_set(err, LEV_ERR_STATE, s->url.endpoint,
                             "an exchange is under way on this connection");
    if (s->ctx && !store_conn_alive(s)) {
        lev_log(LEV_LOG_WARN, "redis connection closed while idle; reconnecting", "redis",
                s->url.endpoint, NULL);
        store_disconnect(s);
    }
    if (s->ctx)
        return LEV_OK;
    return store_connect(s, err);
}

/* 1 for the error reply of an EVALSHA whose script is not in the cache. */
static int reply_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* One call of a pipeline: script sc on one key with nargs arguments. */
typedef struct store_call_s {
    int sc;
    const char *key;
    const char *const *args;
    int nargs;
    const char *extra; /* NULL, or one more argument after args */
} store_call_t;

/* Writes at p, in RESP, the bulk string a[0..len) ("$<len>\r\n<bytes>\r\n")
 * or, when a is NULL, the header of an array of len items ("*<len>\r\n"):
 * at most len + 25 bytes. Returns the end. */
static char *resp_put(char *p, const char *a, size_t len)
{
    *p++ = a ? '$' : '*';
    p += lev_put_size(p, len);
    *p++ = '\r';
    *p++ = '\n';
    if (a) {
        memcpy(p, a, len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return p;
}

/* Appends one argument (or an array header, a NULL) in RESP to s->fmt. */
static int fmt_add(lev_store_t *s, const char *a, size_t len)
{
    if (lev_grow(&s->fmt, &s->fmt_cap, s->fmt_len + len + 32, 1, 4096) != 0)
        return -1;
    s->fmt_len = (size_t)(resp_put(s->fmt + s->fmt_len, a, len) - s->fmt);
    return 0;
}

static int fmt_str(lev_store_t *s, const char *a)
{
    return fmt_add(s, a, strlen(a));
}

/* Appends bytes already in RESP to s->fmt. */
static int fmt_raw(lev_store_t *s, const char *a, size_t len)
{
    if (lev_grow(&s->fmt, &s->fmt_cap, s->fmt_len + len, 1, 4096) != 0)
        return -1;
    memcpy(s->fmt + s->fmt_len, a, len);
    s->fmt_len += len;
    return 0;
}

/* Appends the head of a SET of `count` ("*7") arguments, up to its key. */
static int fmt_set_key(lev_store_t *s, const char *count, const char *key)
{
    static const char set[] = "\r\n$3\r\nSET\r\n";
    return fmt_raw(s, count, 2) | fmt_raw(s, set, sizeof set - 1) | fmt_str(s, key);
}

/* RESP of the arguments args[0..n) into out (size bytes): their length,
 * or 0 when they do not fit. */
static size_t resp_args(char *out, size_t size, const char *const *args, int n)
{
    char *p = out;
    for (int i = 0; i < n; i++) {
        size_t al = strlen(args[i]);
        if (al + 25 > size - (size_t)(p - out))
            return 0;
        p = resp_put(p, args[i], al);
    }
    return (size_t)(p - out);
}

/* Formats a call into s->fmt: EVALSHA (or, when eval is 1, EVAL with the
 * script's text). Where the server takes SET with NX and GET together
 * (Redis 7.0), a claim and a completion are one plain command instead:
 *   claim     SET key P:<token> NX PX <lease> GET  (nil: set, ours)
 *   complete  SET key D PX <ttl> GET               (returns what it replaced) */
static int store_format_call(lev_store_t *s, const store_call_t *c, int eval)
{
    int rc = 0;
    if (c->sc == CALL_SETNX) {
        int px = strcmp(c->args[1], "0") != 0;
        rc |= fmt_add(s, NULL, px ? 6 : 4) | fmt_str(s, "SET") | fmt_str(s, c->key) |
              fmt_str(s, c->args[0]) | fmt_str(s, "NX");
        if (px)
            rc |= fmt_str(s, "PX") | fmt_str(s, c->args[1]);
    } else if (s->plain && c->sc == SCRIPT_CLAIM && !c->extra) { /* args: P:<token>, lease */
        if (c->args == s->pending.claim_args && s->pending.claim_tail_len)
            rc |= fmt_set_key(s, "*7", c->key) |
                  fmt_raw(s, s->pending.claim_tail, s->pending.claim_tail_len);
        else
            rc |= fmt_add(s, NULL, 7) | fmt_str(s, "SET") | fmt_str(s, c->key) |
                  fmt_str(s, c->args[0]) | fmt_str(s, "NX") | fmt_str(s, "PX") |
                  fmt_str(s, c->args[1]) | fmt_str(s, "GET");
    } else if (s->plain && c->sc == SCRIPT_COMPLETE) { /* args: P:<token>, ttl */
        if (c->args == s->pending.done_args && s->pending.done_tail_len)
            rc |= fmt_set_key(s, "*6", c->key) |
                  fmt_raw(s, s->pending.done_tail, s->pending.done_tail_len);
        else
            rc |= fmt_add(s, NULL, 6) | fmt_str(s, "SET") | fmt_str(s, c->key) | fmt_str(s, "D") |
                  fmt_str(s, "PX") | fmt_str(s, c->args[1]) | fmt_str(s, "GET");
    } else {
        rc |= fmt_add(s, NULL, (size_t)(4 + c->nargs + (c->extra != NULL))) |
              fmt_str(s, eval ? "EVAL" : "EVALSHA") |
              fmt_str(s, eval ? store_scripts[c->sc] : s->sha[c->sc]) | fmt_str(s, "1") |
              fmt_str(s, c->key);
        for (int i = 0; i < c->nargs; i++)
            rc |= fmt_str(s, c->args[i]);
        if (c->extra)
            rc |= fmt_str(s, c->extra);
    }
    return rc;
}

/* Hands the formatted commands to the connection's output buffer. */
static int store_flush_fmt(lev_store_t *s, lev_error_t *err)
{
    int rc = LEV_OK;
    if (redisAppendFormattedCommand(s->ctx, s->fmt, s->fmt_len) != REDIS_OK) {
        store_disconnect(s);
        rc = store_fail(s, err, LEV_ERR_NOMEM, -1, "out of memory queueing commands");
    }
    s->fmt_len = 0;
    return rc;
}

/* Formats m calls and sends them: a round trip begins. */
static int store_calls_send(lev_store_t *s, const store_call_t *calls, size_t m, lev_error_t *err)
{
    int rc;
    if ((rc = store_ready(s, err)) != 0)
        return rc;
    s->fmt_len = 0;
    for (size_t j = 0; j < m; j++) {
        if (store_format_call(s, &calls[j], 0) != 0) {
            s->fmt_len = 0;
            return store_fail(s, err, LEV_ERR_NOMEM, -1, "out of memory formatting commands");
        }
    }
    if ((rc = store_flush_fmt(s, err)) != 0)
        return rc;
    return store_send(s, err);
}

/*
 * Reads the replies of m calls sent by store_calls_send. Script calls
 * answered NOSCRIPT did not run; they are sent again with EVAL in a second
 * round trip (EVAL also puts the script back in the cache). On success
 * replies[0..m) are set and owned by the caller; on failure none are.
 */
static int store_calls_receive(lev_store_t *s, const store_call_t *calls, size_t m,
                               redisReply **replies, lev_error_t *err)
{
    redisReply **again = NULL;
    size_t nagain = 0, k = 0;
    int rc;

    if ((rc = store_receive(s, replies, m, err)) != 0)
        return rc;
    for (size_t j = 0; j < m; j++)
        nagain += reply_is_noscript(replies[j]);
    if (nagain == 0)
        return LEV_OK;
    lev_log(LEV_LOG_INFO, "redis script cache was emptied; sending the scripts again", "redis",
            s->url.endpoint, NULL);
    again = calloc(nagain, sizeof *again);
    if (!again) {
        rc = store_fail(s, err, LEV_ERR_NOMEM, -1, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < m; j++) {
        if (reply_is_noscript(replies[j]) && store_format_call(s, &calls[j], 1) != 0) {
            s->fmt_len = 0;
            rc = store_fail(s, err, LEV_ERR_NOMEM, -1, "out of memory formatting commands");
            goto done;
        }
    }
    if ((rc = store_flush_fmt(s, err)) != 0)
        goto done;
    if ((rc = store_exchange(s, again, nagain, err)) != 0)
        goto done;
    for (size_t j = 0; j < m; j++) {
        if (reply_is_noscript(replies[j])) {
            freeReplyObject(replies[j]);
            replies[j] = again[k];
            again[k++] = NULL;
        }
    }

done:
    if (again) {
        replies_free(again, nagain);
        free(again);
    }
    if (rc)
        replies_free(replies, m);
    return rc;
}

/* Runs m calls pipelined in one round trip, in order (see above). */
static int store_run_calls(lev_store_t *s, const store_call_t *calls, size_t m,
                           redisReply **replies, lev_error_t *err)
{
    int rc = store_calls_send(s, calls, m, err);
    return rc ? rc : store_calls_receive(s, calls, m, replies, err);
}

/* Sends one command and returns its reply (not an error reply) in *out,
 * which the caller frees. An error reply gives LEV_ERR_REDIS with the
 * server's text; the connection stays up. */
static int store_command(lev_store_t *s, int argc, const char **argv, redisReply **out,
                         lev_error_t *err)
{
    redisReply *r = NULL;
    int rc;
    *out = NULL;
    if ((rc = store_ready(s, err)) != 0)
        return rc;
    if ((rc = store_append(s, argc, argv, err)) != 0)
        return rc;
    if ((rc = store_exchange(s, &r, 1, err)) != 0)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = store_fail(s, err, LEV_ERR_REDIS, -1, "%s: %s", argv[0], reply_error_text(r));
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return LEV_OK;
}

/* Reports a reply of a type the command cannot answer with. The stream may
 * be out of step, so the connection is dropped. */
static int store_unexpected(lev_store_t *s, const char *what, const redisReply *r, lev_error_t *err)
{
    store_disconnect(s);
    return store_fail(s, err, LEV_ERR_REDIS, LEV_LOG_WARN,
                      "unexpected reply (type %d) to %s; connection dropped", r ? r->type : -1,
                      what);
}

/* ======================================================================
 * Public API
 * ====================================================================== */

lev_store_t *lev_store_new(const char *url, int timeout_ms, lev_error_t *err)
{
    unsigned char raw[STORE_TOKEN_BYTES];
    lev_store_t *s;
    if (timeout_ms <= 0) {
        lev_error_set(err, LEV_ERR_ARG, "redis", "timeout_ms must be positive");
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
        return NULL;
    }
    if (lev_store_url_parse(url, &s->url, err) != 0) {
        free(s);
        return NULL;
    }
    s->timeout_ms = timeout_ms;
    s->timeout.tv_sec = timeout_ms / 1000;
    s->timeout.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
    lev_random_bytes(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
    snprintf(s->lease_value, sizeof s->lease_value, "P:%s", s->token);
    if (store_connect(s, err) != 0) {
        lev_store_destroy(s);
        return NULL;
    }
    return s;
}

void lev_store_destroy(lev_store_t *store)
{
    if (!store)
        return;
    store_disconnect(store);
    lev_store_url_free(&store->url);
    free(store->fmt);
    free(store->pending.calls);
    free(store->pending.first);
    free(store->pending.uniq);
    free(store->pending.table);
    free(store->pending.replies);
    free(store);
}

void lev_store_use_scripts(lev_store_t *s)
{
    s->plain = 0;
}

const char *lev_store_token(const lev_store_t *store)
{
    return store ? store->token : NULL;
}

uint64_t lev_store_round_trips(const lev_store_t *store)
{
    return store ? atomic_load_explicit(&store->round_trips, memory_order_relaxed) : 0;
}

void lev_store_observe(lev_store_t *s, const lev_store_obs_t *obs)
{
    if (s)
        s->obs = *obs;
}

int lev_store_ping(lev_store_t *store, lev_error_t *err)
{
    redisReply *r = NULL;
    int rc;
    if (!store)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "no store");
    if ((rc = store_command(store, 1, (const char *[]){"PING"}, &r, err)) != 0)
        return rc;
    if (!reply_is(r, "PONG"))
        rc = store_unexpected(store, "PING", r, err);
    freeReplyObject(r);
    return rc;
}

/* FNV-1a of a string, for the duplicate-key table. */
static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

/* For every i sets first[i] to the smallest j with keys[j] equal to keys[i],
 * and lists those first indices, in order, in uniq[0..*m). Returns 0, or
 * LEV_ERR_NOMEM. */
static int keys_dedup(const char *const *keys, size_t n, size_t *first, size_t *uniq, size_t *m,
                      size_t **tablep, size_t *tcap)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (lev_grow(tablep, tcap, cap, sizeof **tablep, 16) != 0)
        return LEV_ERR_NOMEM;
    size_t *table = *tablep;
    for (size_t i = 0; i < cap; i++)
        table[i] = SIZE_MAX;
    *m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t slot = (size_t)key_hash(keys[i]) & (cap - 1);
        while (table[slot] != SIZE_MAX && strcmp(keys[table[slot]], keys[i]) != 0)
            slot = (slot + 1) & (cap - 1);
        if (table[slot] == SIZE_MAX) {
            table[slot] = i;
            uniq[(*m)++] = i;
        }
        first[i] = table[slot];
    }
    return LEV_OK;
}

/* Checks the arguments common to the batch calls. */
static int check_batch(const lev_store_t *s, const char *const *keys, size_t n, lev_error_t *err)
{
    if (!s || (n > 0 && !keys))
        return lev_error_set(err, LEV_ERR_ARG, "redis", "no store or no keys");
    for (size_t i = 0; i < n; i++)
        if (!keys[i])
            return lev_error_set(err, LEV_ERR_ARG, "redis", "key %zu is NULL", i);
    return LEV_OK;
}

/* Reads the reply of a claim into *out. Returns 0, or an error (the
 * connection is dropped when the reply makes no sense). */
static int claim_reply(lev_store_t *store, const redisReply *r, int script, const char *key,
                       lev_claim_t *out, lev_error_t *err)
{
    /* the scripts answer 1 when they set the key; SET NX GET answers nil */
    if ((script && r->type == REDIS_REPLY_INTEGER && r->integer == 1) ||
        (!script && r->type == REDIS_REPLY_NIL)) {
        *out = LEV_CLAIM_OWNED;
    } else if (r->type == REDIS_REPLY_STRING) {
        if (r->len == 1 && r->str[0] == 'D') {
            *out = LEV_CLAIM_DONE;
        } else if (r->len >= 2 && memcmp(r->str, "X:", 2) == 0) {
            *out = LEV_CLAIM_DEAD;
        } else {
            /* "P:<token>": a live lease, another store's or a concurrent
             * copy of ours. Anything else is not ours to take either. */
            *out = LEV_CLAIM_BUSY;
            if (r->len < 2 || memcmp(r->str, "P:", 2) != 0)
                lev_log(LEV_LOG_WARN, "idempotency key holds a foreign value; left alone", "redis",
                        store->url.endpoint, "key", key, NULL);
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        return store_fail(store, err, LEV_ERR_REDIS, -1, "claim %s: %s", key, reply_error_text(r));
    } else {
        return store_unexpected(store, "a claim", r, err);
    }
    return LEV_OK;
}

/* Reads the reply of a completion or release into *ok (may be NULL): the
 * integer of a compare script, or the old value SET ... GET returns. */
static int compare_reply(lev_store_t *store, const redisReply *r, int plain, const char *what,
                         const char *key, int *ok, lev_error_t *err)
{
    if (plain && (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING)) {
        if (ok)
            *ok = r->type == REDIS_REPLY_STRING && r->len == strlen(store->lease_value) &&
                  memcmp(r->str, store->lease_value, r->len) == 0;
        return LEV_OK;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        if (ok)
            *ok = r->integer != 0;
        return LEV_OK;
    }
    if (r->type == REDIS_REPLY_ERROR)
        return store_fail(store, err, LEV_ERR_REDIS, -1, "%s %s: %s", what, key,
                          reply_error_text(r));
    return store_unexpected(store, what, r, err);
}

/* Frees what an exchange begun holds. */
static void pending_clear(store_pending_t *p)
{
    p->active = 0;
    p->ncalls = 0;
}

int lev_store_exchange_begin(lev_store_t *store, const lev_store_lists_t *l, lev_error_t *err)
{
    int rc;
    if (!store || !l)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "no store or no lists");
    store_pending_t *p = &store->pending;
    if ((rc = check_batch(store, l->done, l->ndone, err)) != 0 ||
        (rc = check_batch(store, l->rel, l->nrel, err)) != 0 ||
        (rc = check_batch(store, l->dead, l->ndead, err)) != 0 ||
        (rc = check_batch(store, l->dead_mark, l->ndead, err)) != 0 ||
        (rc = check_batch(store, l->renew, l->nrenew, err)) != 0 ||
        (rc = check_batch(store, l->claim, l->nclaim, err)) != 0)
        return rc;
    if (p->active)
        return lev_error_set(err, LEV_ERR_STATE, "redis", "an exchange is under way already");
    if (((l->ndone > 0 || l->ndead > 0) && l->done_ttl_ms <= 0) ||
        ((l->nclaim > 0 || l->nrenew > 0) && l->lease_ms <= 0))
        return lev_error_set(err, LEV_ERR_ARG, "redis", "done TTL and lease must be positive");
    size_t total = l->ndone + l->nrel + l->ndead + l->nrenew + l->nclaim;
    if (total > p->cap) {
        store_call_t *nc = realloc(p->calls, total * sizeof *nc);
        size_t *nf = realloc(p->first, total * sizeof *nf);
        if (nc)
            p->calls = nc;
        if (nf)
            p->first = nf;
        size_t *nu = realloc(p->uniq, total * sizeof *nu);
        if (nu)
            p->uniq = nu;
        if (!nc || !nf || !nu)
            return lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
        p->cap = total;
    }
    p->m = 0;
    if (l->nclaim > 0 &&
        keys_dedup(l->claim, l->nclaim, p->first, p->uniq, &p->m, &p->table, &p->table_cap) != 0)
        return lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
    snprintf(p->ttl, sizeof p->ttl, "%" PRId64, l->done_ttl_ms);
    snprintf(p->lease, sizeof p->lease, "%" PRId64, l->lease_ms);
    p->done_args[0] = p->rel_args[0] = p->claim_args[0] = store->lease_value;
    p->done_args[1] = p->ttl;
    p->claim_args[1] = p->lease;
    p->claim_tail_len =
        resp_args(p->claim_tail, sizeof p->claim_tail,
                  (const char *const[]){store->lease_value, "NX", "PX", p->lease, "GET"}, 5);
    p->done_tail_len = resp_args(p->done_tail, sizeof p->done_tail,
                                 (const char *const[]){"D", "PX", p->ttl, "GET"}, 4);
    p->l = *l;
    /* settles first: a key completed or released here and claimed again
     * below is seen in its new state. Done is a fact about the event (it was
     * handled, its outputs acknowledged), so a completion needs no
     * compare-and-set: it sets done and tells whether our claim was still
     * there. A release or a dead-letter mark must never replace someone
     * else's claim: they stay compare-and-set scripts. */
    p->ncalls = 0;
    for (size_t i = 0; i < l->ndone; i++)
        p->calls[p->ncalls++] = (store_call_t){SCRIPT_COMPLETE, l->done[i], p->done_args, 2, NULL};
    for (size_t i = 0; i < l->nrel; i++)
        p->calls[p->ncalls++] = (store_call_t){SCRIPT_RELEASE, l->rel[i], p->rel_args, 1, NULL};
    for (size_t i = 0; i < l->ndead; i++)
        p->calls[p->ncalls++] =
            (store_call_t){SCRIPT_DEAD, l->dead[i], p->done_args, 2, l->dead_mark[i]};
    for (size_t i = 0; i < l->nrenew; i++)
        p->calls[p->ncalls++] = (store_call_t){SCRIPT_RENEW, l->renew[i], p->claim_args, 2, NULL};
    for (size_t j = 0; j < p->m; j++) {
        size_t i = p->uniq[j];
        const char *mark =
            l->claim_mark && l->claim_mark[i] && l->claim_mark[i][0] ? l->claim_mark[i] : NULL;
        p->calls[p->ncalls++] = (store_call_t){mark ? SCRIPT_CLAIM_REDRIVE : SCRIPT_CLAIM,
                                               l->claim[i], p->claim_args, 2, mark};
    }
    if (p->ncalls == 0)
        return LEV_OK;
    if ((rc = store_calls_send(store, p->calls, p->ncalls, err)) != 0)
        return rc;
    p->active = 1;
    return LEV_OK;
}

int lev_store_exchange_end(lev_store_t *store, int *done_ok, int *renew_ok, lev_claim_t *out,
                           lev_error_t *err)
{
    if (!store)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "no store");
    store_pending_t *p = &store->pending;
    const lev_store_lists_t *l = &p->l;
    if (p->active && l->nclaim > 0 && !out) {
        lev_store_exchange_abort(store);
        return lev_error_set(err, LEV_ERR_ARG, "redis", "no place for the claim results");
    }
    if (!p->active) {
        if (p->ncalls == 0) /* nothing was to be sent */
            return LEV_OK;
        return lev_error_set(err, LEV_ERR_STATE, "redis", "no exchange under way");
    }
    int rc;
    if (p->ncalls > p->replies_cap) {
        redisReply **nr = realloc(p->replies, p->ncalls * sizeof *nr);
        if (nr) {
            p->replies = nr;
            p->replies_cap = p->ncalls;
        }
    }
    redisReply **replies = p->ncalls <= p->replies_cap ? p->replies : NULL;
    if (!replies) {
        /* the replies are still coming: the stream is out of step */
        store_disconnect(store);
        pending_clear(p);
        return lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
    }
    if ((rc = store_calls_receive(store, p->calls, p->ncalls, replies, err)) != 0)
        goto done;
    size_t at = 0;
    for (size_t i = 0; i < l->ndone && rc == 0; i++, at++)
        rc = compare_reply(store, replies[at], store->plain, "complete", l->done[i],
                           done_ok ? &done_ok[i] : NULL, err);
    for (size_t i = 0; i < l->nrel && rc == 0; i++, at++)
        rc = compare_reply(store, replies[at], 0, "release", l->rel[i], NULL, err);
    for (size_t i = 0; i < l->ndead && rc == 0; i++, at++)
        rc = compare_reply(store, replies[at], 0, "dead-letter mark", l->dead[i], NULL, err);
    for (size_t i = 0; i < l->nrenew && rc == 0; i++, at++)
        rc = compare_reply(store, replies[at], 0, "renew", l->renew[i],
                           renew_ok ? &renew_ok[i] : NULL, err);
    for (size_t j = 0; j < p->m && rc == 0; j++, at++) {
        const store_call_t *c = &p->calls[at];
        int script = c->sc != SCRIPT_CLAIM || !store->plain;
        rc = claim_reply(store, replies[at], script, c->key, &out[p->uniq[j]], err);
    }
    /* a key claimed twice in one call: the first is owned, the rest busy */
    for (size_t i = 0; i < l->nclaim && rc == 0; i++)
        if (p->first[i] != i)
            out[i] = out[p->first[i]] == LEV_CLAIM_OWNED ? LEV_CLAIM_BUSY : out[p->first[i]];
    replies_free(replies, p->ncalls);
done:
    pending_clear(p);
    return rc;
}

void lev_store_exchange_abort(lev_store_t *store)
{
    if (!store || !store->pending.active)
        return;
    store_disconnect(store); /* the replies still coming would put the stream out of step */
    pending_clear(&store->pending);
}

int lev_store_exchange_pending(const lev_store_t *store)
{
    return store && store->pending.active;
}

int lev_store_settle_claim(lev_store_t *store, const char *const *done, size_t ndone,
                           int64_t done_ttl_ms, int *done_ok, const char *const *rel, size_t nrel,
                           const char *const *claim, size_t nclaim, int64_t lease_ms,
                           lev_claim_t *out, lev_error_t *err)
{
    if (nclaim > 0 && !out)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "no place for the claim results");
    const lev_store_lists_t l = {.done = done,
                                 .ndone = ndone,
                                 .done_ttl_ms = done_ttl_ms,
                                 .rel = rel,
                                 .nrel = nrel,
                                 .claim = claim,
                                 .nclaim = nclaim,
                                 .lease_ms = lease_ms};
    int rc = lev_store_exchange_begin(store, &l, err);
    return rc ? rc : lev_store_exchange_end(store, done_ok, NULL, out, err);
}

int lev_store_renew(lev_store_t *store, const char *const *keys, size_t n, int64_t lease_ms,
                    int *ok, lev_error_t *err)
{
    if (lease_ms <= 0)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "lease must be positive");
    const lev_store_lists_t l = {.renew = keys, .nrenew = n, .lease_ms = lease_ms};
    int rc = lev_store_exchange_begin(store, &l, err);
    return rc ? rc : lev_store_exchange_end(store, NULL, ok, NULL, err);
}

int lev_store_claim(lev_store_t *store, const char *const *keys, size_t n, int64_t lease_ms,
                    lev_claim_t *out, lev_error_t *err)
{
    if (lease_ms <= 0 || (n > 0 && !out))
        return lev_error_set(err, LEV_ERR_ARG, "redis", "lease must be positive, out given");
    return lev_store_settle_claim(store, NULL, 0, 0, NULL, NULL, 0, keys, n, lease_ms, out, err);
}

int lev_store_complete(lev_store_t *store, const char *const *keys, size_t n, int64_t done_ttl_ms,
                       int *ok, lev_error_t *err)
{
    if (done_ttl_ms <= 0)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "done TTL must be positive");
    return lev_store_settle_claim(store, keys, n, done_ttl_ms, ok, NULL, 0, NULL, 0, 0, NULL, err);
}

int lev_store_release(lev_store_t *store, const char *const *keys, size_t n, lev_error_t *err)
{
    return lev_store_settle_claim(store, NULL, 0, 0, NULL, keys, n, NULL, 0, 0, NULL, err);
}

int lev_store_set_once(lev_store_t *store, const char *key, const char *value, int64_t ttl_ms,
                       int *created, lev_error_t *err)
{
    redisReply *r = NULL;
    char ttl[24];
    int rc;
    if (!store || !key || !value || ttl_ms < 0)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "set_once: bad arguments");
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    const char *argv[] = {"SET", key, value, "NX", "PX", ttl};
    if ((rc = store_command(store, ttl_ms > 0 ? 6 : 4, argv, &r, err)) != 0)
        return rc;
    if (reply_is(r, "OK") || r->type == REDIS_REPLY_NIL) {
        if (created)
            *created = r->type != REDIS_REPLY_NIL;
    } else {
        rc = store_unexpected(store, "SET NX", r, err);
    }
    freeReplyObject(r);
    return rc;
}

int lev_store_get(lev_store_t *store, const char *key, char **value, lev_error_t *err)
{
    redisReply *r = NULL;
    int rc;
    if (!store || !key || !value)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "get: bad arguments");
    *value = NULL;
    if ((rc = store_command(store, 2, (const char *[]){"GET", key}, &r, err)) != 0)
        return rc;
    if (r->type == REDIS_REPLY_STRING) {
        *value = malloc(r->len + 1);
        if (*value) {
            memcpy(*value, r->str, r->len);
            (*value)[r->len] = '\0';
        } else {
            rc = lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
        }
    } else if (r->type != REDIS_REPLY_NIL) {
        rc = store_unexpected(store, "GET", r, err);
    }
    freeReplyObject(r);
    return rc;
}

int lev_store_set(lev_store_t *store, const char *key, const char *value, int64_t ttl_ms,
                  lev_error_t *err)
{
    redisReply *r = NULL;
    char ttl[24];
    int rc;
    if (!store || !key || !value || ttl_ms < 0)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "set: bad arguments");
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    const char *argv[] = {"SET", key, value, "PX", ttl};
    if ((rc = store_command(store, ttl_ms > 0 ? 5 : 3, argv, &r, err)) != 0)
        return rc;
    if (!reply_is(r, "OK"))
        rc = store_unexpected(store, "SET", r, err);
    freeReplyObject(r);
    return rc;
}

int lev_store_cas(lev_store_t *store, const char *key, const char *expect, const char *value,
                  int64_t ttl_ms, int *swapped, lev_error_t *err)
{
    redisReply *r = NULL;
    char ttl[24];
    int rc;
    if (!store || !key || !value || ttl_ms < 0)
        return lev_error_set(err, LEV_ERR_ARG, "redis", "cas: bad arguments");
    if (!expect)
        return lev_store_set_once(store, key, value, ttl_ms, swapped, err);
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    const char *args[] = {expect, value, ttl};
    const store_call_t call = {SCRIPT_CAS, key, args, 3, NULL};
    if ((rc = store_run_calls(store, &call, 1, &r, err)) != 0)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER) {
        if (swapped)
            *swapped = r->integer != 0;
    } else if (r->type == REDIS_REPLY_ERROR) {
        rc = store_fail(store, err, LEV_ERR_REDIS, -1, "cas %s: %s", key, reply_error_text(r));
    } else {
        rc = store_unexpected(store, "cas", r, err);
    }
    freeReplyObject(r);
    return rc;
}

int lev_store_get_many(lev_store_t *store, const char *const *keys, size_t n, char **values,
                       lev_error_t *err)
{
    int rc;
    if (!store || (n > 0 && (!keys || !values)))
        return lev_error_set(err, LEV_ERR_ARG, "redis", "get_many: bad arguments");
    for (size_t i = 0; i < n; i++)
        values[i] = NULL;
    if (n == 0)
        return LEV_OK;
    for (size_t i = 0; i < n; i++)
        if (!keys[i])
            return lev_error_set(err, LEV_ERR_ARG, "redis", "key %zu is NULL", i);
    if ((rc = store_ready(store, err)) != 0)
        return rc;
    /* one MGET of n keys, formatted here (store_command takes a few) */
    store->fmt_len = 0;
    int frc = fmt_add(store, NULL, n + 1) | fmt_str(store, "MGET");
    for (size_t i = 0; i < n; i++)
        frc |= fmt_str(store, keys[i]);
    if (frc != 0) {
        store->fmt_len = 0;
        return store_fail(store, err, LEV_ERR_NOMEM, -1, "out of memory formatting MGET");
    }
    redisReply *r = NULL;
    if ((rc = store_flush_fmt(store, err)) != 0 || (rc = store_send(store, err)) != 0 ||
        (rc = store_receive(store, &r, 1, err)) != 0)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = store_fail(store, err, LEV_ERR_REDIS, -1, "MGET: %s", reply_error_text(r));
        freeReplyObject(r);
        return rc;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        rc = store_unexpected(store, "MGET", r, err);
        freeReplyObject(r);
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            if (!(values[i] = malloc(e->len + 1))) {
                rc = lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
                break;
            }
            memcpy(values[i], e->str, e->len);
            values[i][e->len] = '\0';
        } /* nil, or a key of another type: absent as a string */
    }
    freeReplyObject(r);
    if (rc != 0)
        for (size_t i = 0; i < n; i++) {
            free(values[i]);
            values[i] = NULL;
        }
    return rc;
}

int lev_store_cas_many(lev_store_t *store, const char *const *keys, const char *const *expect,
                       const char *const *values, const int64_t *ttl_ms, size_t n, int *swapped,
                       lev_error_t *err)
{
    int rc;
    if (!store || (n > 0 && (!keys || !expect || !values || !ttl_ms || !swapped)))
        return lev_error_set(err, LEV_ERR_ARG, "redis", "cas_many: bad arguments");
    if (n == 0)
        return LEV_OK;
    for (size_t i = 0; i < n; i++)
        if (!keys[i] || !values[i] || ttl_ms[i] < 0)
            return lev_error_set(err, LEV_ERR_ARG, "redis",
                                 "cas_many: key, value or TTL %zu is missing", i);
    store_call_t *calls = malloc(n * sizeof *calls);
    const char **args = malloc(3 * n * sizeof *args);
    char(*ttl)[24] = malloc(n * sizeof *ttl);
    redisReply **replies = calloc(n, sizeof *replies);
    if (!calls || !args || !ttl || !replies) {
        free(calls);
        free(args);
        free(ttl);
        free(replies);
        return lev_error_set(err, LEV_ERR_NOMEM, "redis", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const char **a = &args[3 * i];
        snprintf(ttl[i], sizeof ttl[i], "%" PRId64, ttl_ms[i]);
        if (expect[i]) {
            a[0] = expect[i], a[1] = values[i], a[2] = ttl[i];
            calls[i] = (store_call_t){SCRIPT_CAS, keys[i], a, 3, NULL};
        } else {
            a[0] = values[i], a[1] = ttl[i];
            calls[i] = (store_call_t){CALL_SETNX, keys[i], a, 2, NULL};
        }
    }
    rc = store_run_calls(store, calls, n, replies, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const redisReply *r = replies[i];
        if (calls[i].sc == CALL_SETNX && (reply_is(r, "OK") || r->type == REDIS_REPLY_NIL))
            swapped[i] = r->type != REDIS_REPLY_NIL;
        else if (calls[i].sc == SCRIPT_CAS && r->type == REDIS_REPLY_INTEGER)
            swapped[i] = r->integer != 0;
        else if (r->type == REDIS_REPLY_ERROR)
            rc = store_fail(store, err, LEV_ERR_REDIS, -1, "cas %s: %s", keys[i],
                            reply_error_text(r));
        else
            rc = store_unexpected(store, "cas", r, err);
    }
    replies_free(replies, n);
    free(replies);
    free(ttl);
    free(args);
    free(calls);
    return rc;
}
