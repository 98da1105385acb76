/*
 * The pull reader of JSON text (see libevents/jsontext.h). Its strictness
 * is jansson's with default flags, rule for rule, because its callers use
 * jansson for whatever it refuses: a text both accept must mean the same.
 */
#include "codec_internal.h"

#include <libevents/jsontext.h>

#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void lev_jreader_init(lev_jreader_t *r, const char *text, size_t len)
{
    r->p = text;
    r->end = text + len;
    r->scratch = NULL;
    r->scap = 0;
}

void lev_jreader_free(lev_jreader_t *r)
{
    if (!r)
        return;
    free(r->scratch);
    r->scratch = NULL;
    r->scap = 0;
}

static inline void skip_ws(lev_jreader_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

int lev_jreader_peek(lev_jreader_t *r)
{
    skip_ws(r);
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

int lev_jreader_eat(lev_jreader_t *r, int c)
{
    skip_ws(r);
    if (r->p < r->end && (unsigned char)*r->p == c) {
        r->p++;
        return 0;
    }
    return -1;
}

/* ======================================================================
 * Strings
 * ====================================================================== */

/* Four hex digits at p (p + 4 <= end): the value, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = lev_hexval((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escaped string body [p, q) into the scratch buffer. */
static int unescape(lev_jreader_t *r, const char *p, const char *q, const char **s, size_t *n)
{
    size_t need = (size_t)(q - p) + 1; /* decoding never grows the text */
    if (lev_grow(&r->scratch, &r->scap, need, 1, 256) != 0)
        return -1;
    char *o = r->scratch;
    while (p < q) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++; /* the body was checked: an escape is complete */
        switch (*p) {
        case '"':
        case '\\':
        case '/':
            *o++ = *p++;
            break;
        case 'b':
            *o++ = '\b', p++;
            break;
        case 'f':
            *o++ = '\f', p++;
            break;
        case 'n':
            *o++ = '\n', p++;
            break;
        case 'r':
            *o++ = '\r', p++;
            break;
        case 't':
            *o++ = '\t', p++;
            break;
        default: { /* 'u', surrogate pairs checked by the scan */
            unsigned long cp = (unsigned long)hex4(p + 1);
            p += 5;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned long lo = (unsigned long)hex4(p + 2);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            o += put_utf8(o, cp);
        }
        }
    }
    *s = r->scratch;
    *n = (size_t)(o - r->scratch);
    return 0;
}

/* Bytes a string holds as they are: ASCII but for controls, '"' and '\\'. */
static const unsigned char plain[256] = {
#define R4(c) [c] = 1, [c + 1] = 1, [c + 2] = 1, [c + 3] = 1
#define R16(c) R4(c), R4(c + 4), R4(c + 8), R4(c + 12)
    [0x20] = 1, [0x21] = 1, [0x23] = 1, R4(0x24),  R4(0x28),  R4(0x2c), /* not '"' (0x22) */
    R16(0x30),  R16(0x40),  R4(0x50),   R4(0x54),  R4(0x58),            /* not '\\' (0x5c) */
    [0x5d] = 1, [0x5e] = 1, [0x5f] = 1, R16(0x60), R16(0x70),
#undef R16
#undef R4
};

/* Whether the 8 bytes at p are all plain: the test of `plain`, a word at a
 * time. A byte is not plain when it is '"' or '\\' (a zero byte after the
 * xor), below 0x20, or 0x80 and above (its high bit); each test only says
 * whether some byte of the word fails it, which is all this needs. */
static int plain8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ull, highs = ones * 0x80;
    uint64_t w;
    memcpy(&w, p, sizeof w);
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t t = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w;
    return (t & highs) == 0;
}

#if defined(__SSE2__)
/* The index of the first byte of the 16 at p that is not plain, else 16:
 * '"', '\\', and (compared as signed bytes) below 0x20 or 0x80 and above. */
static inline unsigned plain16_count(const char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    unsigned m = (unsigned)_mm_movemask_epi8(hit);
    return m ? (unsigned)__builtin_ctz(m) : 16;
}
#endif

/* The first byte at or after p that is not plain (or end). */
static inline const char *skip_plain(const char *p, const char *end)
{
#if defined(__SSE2__)
    /* most strings end within the first 16 bytes: one look finds the quote */
    while (end - p >= 16) {
        unsigned n = plain16_count(p);
        p += n;
        if (n < 16)
            return p;
    }
#endif
    while (end - p >= 8 && plain8(p))
        p += 8;
    while (p < end && plain[(unsigned char)*p])
        p++;
    return p;
}

/* scan_string past its plain start: p is at an escape, a control byte or
 * a non-ASCII one (or at end). */
static int __attribute__((noinline))
scan_string_rest(const char *p, const char *end, const char **q, int *escaped)
{
    for (;; p = skip_plain(p, end)) {
        if (p >= end || (unsigned char)*p < 0x20)
            return -1;
        if (*p == '"') {
            *q = p;
            return 0;
        }
        if (*p == '\\') {
            *escaped = 1;
            if (end - p < 2)
                return -1;
            char c = p[1];
            if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
                c == 't') {
                p += 2;
                continue;
            }
            if (c != 'u' || end - p < 6)
                return -1;
            long cp = hex4(p + 2);
            if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                return -1; /* \u0000, a bad digit, a lone low surrogate */
            p += 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                    return -1;
                long lo = hex4(p + 2);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                p += 6;
            }
            continue;
        }
        /* a multi-byte UTF-8 sequence: as far as the next ASCII byte */
        const char *m = p;
        while (p < end && (unsigned char)*p >= 0x80)
            p++;
        if (!lev_utf8_valid((const uint8_t *)m, (size_t)(p - m), NULL))
            return -1;
    }
}

/* Checks the string starting at r->p (its opening quote): sets *q to its
 * closing quote and *escaped; -1 when it is not valid. The common string,
 * plain bytes to its quote, stays in this small function. */
static inline int scan_string(const lev_jreader_t *r, const char **q, int *escaped)
{
    const char *end = r->end, *p = skip_plain(r->p + 1, end);
    *escaped = 0;
    if (p < end && *p == '"') {
        *q = p;
        return 0;
    }
    return scan_string_rest(p, end, q, escaped);
}

int lev_jreader_string(lev_jreader_t *r, const char **s, size_t *n)
{
    skip_ws(r);
    const char *q;
    int escaped;
    if (r->p >= r->end || *r->p != '"' || scan_string(r, &q, &escaped) != 0)
        return -1;
    const char *body = r->p + 1;
    if (escaped) {
        if (unescape(r, body, q, s, n) != 0)
            return -1;
    } else {
        *s = body;
        *n = (size_t)(q - body);
    }
    r->p = q + 1;
    return 0;
}

/* ======================================================================
 * Numbers and literals
 * ====================================================================== */

static inline int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

int lev_jreader_number(lev_jreader_t *r, const char **s, size_t *n, int *integral)
{
    skip_ws(r);
    const char *p = r->p, *end = r->end;
    int whole = 1;
    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return -1;
    if (*p == '0') {
        p++;
        if (is_digit(p, end))
            return -1; /* a leading zero */
    } else {
        while (is_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        whole = 0;
        p++;
        if (!is_digit(p, end))
            return -1;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        whole = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return -1;
        while (is_digit(p, end))
            p++;
    }
    *s = r->p;
    *n = (size_t)(p - r->p);
    *integral = whole;
    r->p = p;
    return 0;
}

int lev_json_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = n > 0 && s[0] == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    i = (size_t)neg;
    if (i == n)
        return -1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int lev_jreader_literal(lev_jreader_t *r, int *which)
{
    skip_ws(r);
    size_t left = (size_t)(r->end - r->p);
    if (left >= 4 && memcmp(r->p, "null", 4) == 0)
        *which = 'n', r->p += 4;
    else if (left >= 4 && memcmp(r->p, "true", 4) == 0)
        *which = 't', r->p += 4;
    else if (left >= 5 && memcmp(r->p, "false", 5) == 0)
        *which = 'f', r->p += 5;
    else
        return -1;
    return 0;
}

/* ======================================================================
 * Containers
 * ====================================================================== */

/* The step both containers take before an item: 0 when `close` ends the
 * container (eaten), 1 when an item follows (its ',' eaten), -1. */
static int next_item(lev_jreader_t *r, int *first, char close)
{
    skip_ws(r);
    if (r->p >= r->end)
        return -1;
    if (*r->p == close) {
        r->p++;
        return 0;
    }
    if (!*first) {
        if (*r->p != ',')
            return -1;
        r->p++;
    }
    *first = 0;
    return 1;
}

int lev_jreader_member(lev_jreader_t *r, int *first, const char **key, size_t *klen)
{
    int rc = next_item(r, first, '}');
    if (rc != 1)
        return rc;
    if (lev_jreader_string(r, key, klen) != 0 || lev_jreader_eat(r, ':') != 0)
        return -1;
    return 1;
}

int lev_jreader_element(lev_jreader_t *r, int *first)
{
    return next_item(r, first, ']');
}

/* "{}" and "[]" right after their opening: a "{,}" or "[,]" is caught by
 * member/element, a trailing comma by the value that must follow it. */
static int skip_value(lev_jreader_t *r, size_t depth, size_t max_depth)
{
    int c = lev_jreader_peek(r), first = 1, rc;
    const char *s;
    size_t n;
    if (c == '"') {
        const char *q;
        if (scan_string(r, &q, &rc) != 0)
            return -1;
        r->p = q + 1;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return lev_jreader_number(r, &s, &n, &rc);
    if (c == '{' || c == '[') {
        if (depth >= max_depth)
            return -1;
        r->p++;
        while ((rc = c == '{' ? lev_jreader_member(r, &first, &s, &n)
                              : lev_jreader_element(r, &first)) == 1)
            if (skip_value(r, depth + 1, max_depth) != 0)
                return -1;
        return rc;
    }
    return lev_jreader_literal(r, &rc);
}

int lev_jreader_skip(lev_jreader_t *r, size_t max_depth, const char **s, size_t *n)
{
    skip_ws(r);
    const char *start = r->p;
    if (skip_value(r, 0, max_depth) != 0)
        return -1;
    if (s)
        *s = start;
    if (n)
        *n = (size_t)(r->p - start);
    return 0;
}
