/* Randomness, ids and time. */
#include "internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void random_fill(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0)
            abort(); /* no entropy source at all: nothing sane to do */
        p += n;
        len -= (size_t)n;
    }
}

/* Small requests (event ids, tokens) are served from a per-thread pool of
 * the kernel's random bytes, refilled 4 KiB at a time: one system call per
 * 256 ids instead of one each. A forked child drops the pool it inherited,
 * so parent and child never hand out the same bytes. */
#define RANDOM_POOL 4096
static _Thread_local unsigned char random_pool[RANDOM_POOL];
static _Thread_local size_t random_left;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;

static void random_forget(void)
{
    explicit_bzero(random_pool, sizeof random_pool);
    random_left = 0;
}

static void random_once_init(void)
{
    pthread_atfork(NULL, NULL, random_forget);
}

void lev_random_bytes(void *buf, size_t len)
{
    if (len > 64) {
        random_fill(buf, len);
        return;
    }
    pthread_once(&random_once, random_once_init);
    if (random_left < len) {
        random_fill(random_pool, sizeof random_pool);
        random_left = sizeof random_pool;
    }
    unsigned char *from = random_pool + (sizeof random_pool - random_left);
    memcpy(buf, from, len);
    explicit_bzero(from, len); /* handed out once */
    random_left -= len;
}

/* xoshiro256** (Blackman and Vigna), one state per thread. */
static _Thread_local uint64_t fast_state[4];
static _Thread_local int fast_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t fast_next(void)
{
    if (!fast_seeded) {
        do
            lev_random_bytes(fast_state, sizeof fast_state);
        while (!(fast_state[0] | fast_state[1] | fast_state[2] | fast_state[3]));
        fast_seeded = 1;
    }
    uint64_t *s = fast_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void lev_fast_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        uint64_t r = fast_next();
        size_t n = len < sizeof r ? len : sizeof r;
        memcpy(p, &r, n);
        p += n;
        len -= n;
    }
}

uint64_t lev_random_below(uint64_t bound)
{
    if (bound <= 1)
        return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound, r;
    do {
        lev_fast_random_bytes(&r, sizeof r);
    } while (r >= limit);
    return r % bound;
}

char *lev_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int lev_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first ? first : 1;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return -1;
        n *= 2;
    }
    if (size && n > SIZE_MAX / size)
        return -1;
    void *old;
    memcpy(&old, pp, sizeof old); /* pp points to a T *, whatever T is */
    void *p = realloc(old, n * size);
    if (!p)
        return -1;
    memcpy(pp, &p, sizeof p);
    *cap = n;
    return 0;
}

static const char hexdigits[] = "0123456789abcdef";

void lev_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void uuid_format(const unsigned char u[16], char out[LEV_UUID_STR_LEN])
{
    /* 8-4-4-4-12 */
    static const int groups[] = {4, 2, 2, 2, 6};
    size_t o = 0, b = 0;
    for (int g = 0; g < 5; g++) {
        if (g)
            out[o++] = '-';
        lev_hex(u + b, (size_t)groups[g], out + o);
        o += 2 * (size_t)groups[g];
        b += (size_t)groups[g];
    }
    out[o] = '\0';
}

int lev_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One more than the value of each hex digit; 0 for any other byte. */
static const unsigned char hex_plus1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* Parses the 36 characters of a UUID, dashes at 8, 13, 18 and 23: a table
 * look-up per digit and one test at the end, no branch per character. */
static int uuid_parse(const char *s, unsigned char u[16])
{
    /* where each byte's two digits start */
    static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    if (!s || strnlen(s, 37) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return -1;
    unsigned bad = 0;
    for (int j = 0; j < 16; j++) {
        unsigned hi = hex_plus1[(unsigned char)s[at[j]]];
        unsigned lo = hex_plus1[(unsigned char)s[at[j] + 1]];
        bad |= (hi == 0) | (lo == 0);
        u[j] = (unsigned char)((hi - 1) << 4 | (lo - 1));
    }
    return bad ? -1 : 0;
}

void lev_uuid4(char out[LEV_UUID_STR_LEN])
{
    unsigned char u[16];
    lev_random_bytes(u, sizeof u);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    uuid_format(u, out);
}

/* SHA-1, fetched once (an implicit fetch per digest costs a lookup under a
 * lock in OpenSSL 3), with one digest context per thread. */
static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha1_key; /* the thread's EVP_MD_CTX, freed when it ends */

static void sha1_ctx_free(void *c)
{
    EVP_MD_CTX_free(c);
}

static void sha1_fetch(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
    pthread_key_create(&sha1_key, sha1_ctx_free);
}

/* A version 5 UUID of name in the namespace nsb (16 bytes). */
static int uuid5_raw(const unsigned char nsb[16], const char *name, size_t name_len,
                     char out[LEV_UUID_STR_LEN])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    pthread_once(&sha1_once, sha1_fetch);
    EVP_MD_CTX *c = pthread_getspecific(sha1_key);
    if (!c && (c = EVP_MD_CTX_new()) != NULL)
        pthread_setspecific(sha1_key, c);
    const EVP_MD *md = sha1_md ? sha1_md : EVP_sha1();
    if (!c || !EVP_DigestInit_ex(c, md, NULL) || !EVP_DigestUpdate(c, nsb, 16) ||
        !EVP_DigestUpdate(c, name, name_len) || !EVP_DigestFinal_ex(c, digest, NULL))
        return LEV_ERR_NOMEM;
    digest[6] = (unsigned char)((digest[6] & 0x0f) | 0x50);
    digest[8] = (unsigned char)((digest[8] & 0x3f) | 0x80);
    uuid_format(digest, out);
    return LEV_OK;
}

int lev_uuid5(const char *ns, const char *name, size_t name_len, char out[LEV_UUID_STR_LEN])
{
    unsigned char nsb[16];
    if (uuid_parse(ns, nsb) != 0 || (!name && name_len))
        return LEV_ERR_ARG;
    return uuid5_raw(nsb, name, name_len, out);
}

/* Namespace for ids derived from inputs whose id is not itself a UUID. */
static const char lev_uuid_ns[] = "6f0d3b8e-2c1a-5e7b-9a44-1c0e8f3d2b71";

int lev_uuid_derive_event(const char *source, const char *input_id, const char *output_type,
                          unsigned n, char out[LEV_UUID_STR_LEN])
{
    if (!input_id || !output_type)
        return LEV_ERR_ARG;
    /* "<input_id>/<output_type>/<n>", then "\n<source>" when there is one
     * (a valid id or source holds no control character: unambiguous) */
    char name[2048], digits[20];
    size_t il = strlen(input_id), tl = strlen(output_type), dl = lev_put_size(digits, n);
    size_t sl = source ? strlen(source) : 0;
    if (il + tl + dl + sl + 3 >= sizeof name)
        return LEV_ERR_ARG;
    char *p = name;
    memcpy(p, input_id, il);
    p += il;
    *p++ = '/';
    memcpy(p, output_type, tl);
    p += tl;
    *p++ = '/';
    memcpy(p, digits, dl);
    p += dl;
    if (sl) {
        *p++ = '\n';
        memcpy(p, source, sl);
        p += sl;
    }
    unsigned char nsb[16];
    if (uuid_parse(input_id, nsb) != 0)
        uuid_parse(lev_uuid_ns, nsb);
    return uuid5_raw(nsb, name, (size_t)(p - name), out);
}

int lev_uuid_derive(const char *input_id, const char *output_type, unsigned n,
                    char out[LEV_UUID_STR_LEN])
{
    return lev_uuid_derive_event(NULL, input_id, output_type, n, out);
}

int64_t lev_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lev_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lev_time_format(int64_t ms, char out[32])
{
    /* the part up to the seconds is formatted once per second per thread */
    static _Thread_local int64_t cached_secs = INT64_MIN;
    static _Thread_local char cached[24];
    int64_t secs = ms / 1000;
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    if (secs != cached_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        if (strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            cached[0] = '\0';
        cached_secs = secs;
    }
    size_t n = strlen(cached);
    memcpy(out, cached, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + frac / 100);
    out[n + 2] = (char)('0' + frac / 10 % 10);
    out[n + 3] = (char)('0' + frac % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int lev_time_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19)
        return LEV_ERR_ARG;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return LEV_ERR_ARG;
    const char *p = s + n;
    int64_t frac_ms = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return LEV_ERR_ARG;
        for (int i = digits; i < 3; i++)
            frac_ms *= 10;
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5)
            return LEV_ERR_ARG;
        offset_min = (int64_t)oh * 60 + om;
        if (*p == '-')
            offset_min = -offset_min;
        p += 6;
    } else {
        return LEV_ERR_ARG;
    }
    if (*p != '\0')
        return LEV_ERR_ARG;
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + frac_ms;
    return LEV_OK;
}

/* ======================================================================
 * Environment and secrets
 * ====================================================================== */

const char *lev_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int lev_env_long(const char *name, long def, long min, long max, long *out, lev_error_t *err)
{
    const char *v = lev_env(name);
    *out = def;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max)
        return lev_error_set(err, LEV_ERR_CONFIG, name,
                             "expected a whole number from %ld to %ld, got \"%s\"", min, max, v);
    *out = n;
    return 0;
}

int lev_secret_read_file(const char *var, const char *path, char **out, lev_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lev_error_set(err, LEV_ERR_CONFIG, var, "cannot read %s: %s", path, strerror(errno));
    enum { MAX_SECRET = 64 * 1024 };
    char *buf = malloc(MAX_SECRET + 1);
    size_t n = buf ? fread(buf, 1, MAX_SECRET + 1, f) : 0;
    int bad = buf && ferror(f);
    fclose(f);
    if (!buf)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if (bad || n > MAX_SECRET) {
        explicit_bzero(buf, n > MAX_SECRET ? MAX_SECRET + 1 : n);
        free(buf);
        return lev_error_set(err, LEV_ERR_CONFIG, var,
                             bad ? "cannot read %s" : "%s is larger than 64 KiB", path);
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        explicit_bzero(buf, n);
        free(buf);
        return lev_error_set(err, LEV_ERR_CONFIG, var, "%s holds a NUL byte", path);
    }
    *out = buf;
    return 0;
}

void lev_secret_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}
