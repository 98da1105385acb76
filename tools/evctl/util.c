/* Output, errors, signals, base64, times, rates and progress. */
#include "evctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t evctl_stop = 0;

/* ---- errors and output ---- */

int evctl_fail(int code, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "evctl: %s\n", buf);
    return code;
}

void evctl_note(const evctl_ctx_t *ctx, const char *fmt, ...)
{
    if (ctx && ctx->quiet)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "evctl: %s\n", buf);
}

/* Dumps j with jansson flags as one write to stdout and flushes; steals j.
 * Returns 0 or -1 (no JSON, or stdout failed). */
static int out_flags(json_t *j, size_t flags)
{
    if (!j)
        return -1;
    char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
    json_decref(j);
    if (!s)
        return -1;
    int rc = 0;
    if (fputs(s, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
        rc = -1;
    free(s);
    return rc;
}

int evctl_out(json_t *j)
{
    return out_flags(j, JSON_COMPACT);
}

int evctl_out_pretty(json_t *j)
{
    return out_flags(j, JSON_INDENT(2));
}

/* ---- signals ---- */

static void on_signal(int sig)
{
    (void)sig;
    evctl_stop = 1;
}

void evctl_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second signal ends the process at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- bytes ---- */

char *evctl_base64(const void *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = tbl[v >> 6 & 63];
        *o++ = tbl[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

json_t *evctl_json_bytes(const void *data, size_t len)
{
    if (!data)
        return json_null();
    /* json_stringn refuses invalid UTF-8; NUL bytes are valid JSON escapes */
    json_t *s = json_stringn(data, len);
    if (s)
        return s;
    char *b64 = evctl_base64(data, len);
    json_t *o = b64 ? json_pack("{s:s}", "base64", b64) : NULL;
    free(b64);
    return o;
}

/* ---- times and rates ---- */

int evctl_time_parse(const char *s, int64_t *ms)
{
    if (!s)
        return -1;
    if (strncmp(s, "now", 3) == 0) {
        int64_t now = lev_now_ms(), d = 0;
        if (s[3] == '\0') {
            *ms = now;
            return 0;
        }
        if (s[3] != '-' || lev_duration_parse(s + 4, &d) != 0 || d > now)
            return -1;
        *ms = now - d;
        return 0;
    }
    return lev_time_parse(s, ms) == 0 ? 0 : -1;
}

int evctl_rate_parse(const char *s, double *per_sec)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || v > 1e9)
        return -1;
    if (*end == '\0' || strcmp(end, "/s") == 0)
        *per_sec = v;
    else if (strcmp(end, "/m") == 0)
        *per_sec = v / 60.0;
    else if (strcmp(end, "/h") == 0)
        *per_sec = v / 3600.0;
    else
        return -1;
    return 0;
}

void evctl_rate_init(evctl_rate_t *r, double per_sec)
{
    r->per_sec = per_sec;
    r->start_ms = lev_mono_ms();
    r->sent = 0;
}

void evctl_rate_wait(evctl_rate_t *r, void (*poll)(void *opaque, int ms), void *opaque)
{
    if (r->per_sec > 0) {
        int64_t due = r->start_ms + (int64_t)((double)r->sent * 1000.0 / r->per_sec);
        for (int64_t now = lev_mono_ms(); now < due && !evctl_stop; now = lev_mono_ms()) {
            int wait = (int)(due - now > 100 ? 100 : due - now);
            if (poll)
                poll(opaque, wait);
            else
                usleep((useconds_t)wait * 1000);
        }
    }
    r->sent++;
}

/* ---- progress ---- */

void evctl_progress_init(evctl_progress_t *p, const evctl_ctx_t *ctx, const char *what)
{
    memset(p, 0, sizeof *p);
    p->enabled = ctx->progress;
    p->what = what;
    p->start_ms = lev_mono_ms();
}

void evctl_progress_update(evctl_progress_t *p, uint64_t done, int64_t remaining)
{
    if (!p || !p->enabled)
        return;
    int64_t now = lev_mono_ms();
    if (p->shown && now - p->last_ms < 250)
        return;
    p->last_ms = now;
    double secs = (double)(now - p->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    char rem[64] = "";
    if (remaining >= 0)
        snprintf(rem, sizeof rem, ", %lld remaining", (long long)remaining);
    fprintf(stderr, "\r\033[K%s: %llu done, %.0f/s%s", p->what, (unsigned long long)done, rate,
            rem);
    fflush(stderr);
    p->shown = 1;
}

void evctl_progress_end(evctl_progress_t *p)
{
    if (p && p->enabled && p->shown) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        p->shown = 0;
    }
}
