/* Private helpers shared by the files of libevents (not installed). */
#ifndef LEV_INTERNAL_H
#define LEV_INTERNAL_H

#include <libevents.h>
#include <stdarg.h>

/* Fills err (if not NULL) and returns code, so callers can write
 * `return lev_error_set(err, LEV_ERR_ARG, NULL, "bad %s", x);`. */
int lev_error_set(lev_error_t *err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like lev_error_set but keeps err->where if `where` is NULL and prefixes
 * nothing; used to pass an error up unchanged except for its code. */
void lev_error_clear(lev_error_t *err);

/* Logging from inside the library with a va_list of key, value pairs. */
int lev_log_enabled(lev_log_level_t level);
void lev_logv(lev_log_level_t level, const char *msg, va_list ap);

/* Random bytes from the kernel (getrandom), never fails silently: aborts
 * only if the kernel has no entropy source at all. */
void lev_random_bytes(void *buf, size_t len);
/* Fast non-cryptographic random bytes (a per-thread xoshiro256** seeded
 * from the kernel): span ids, jitter. Never for secrets or tokens. */
void lev_fast_random_bytes(void *buf, size_t len);

/* A uniformly random integer in [0, bound) (fast generator: jitter). */
uint64_t lev_random_below(uint64_t bound);

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void lev_hex(const unsigned char *in, size_t n, char *out);

/* The value of one hex digit, or -1. */
int lev_hexval(int c);

/* Writes v in decimal at out (20 bytes at most, no NUL); its length. */
static inline size_t lev_put_size(char *out, size_t v)
{
    char d[20];
    size_t n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = d[n - 1 - i];
    return n;
}

/* strdup that returns NULL for NULL. */
char *lev_strdup(const char *s);

/*
 * Makes the array at *(T **)pp, of *cap elements of `size` bytes, hold at
 * least `need`: its capacity doubles, from `first` when it has none, until
 * it does. 0, or -1 (out of memory or too large) with the array and *cap
 * unchanged. Every growing buffer of the library goes through it:
 *     if (lev_grow(&b->p, &b->cap, b->len + n, 1, 256) != 0) ...
 */
int lev_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first);

/* An environment variable's value, NULL when unset or empty. */
const char *lev_env(const char *name);

/* A decimal integer variable in [min, max]; *out = def when unset. Else
 * LEV_ERR_CONFIG naming the variable. */
int lev_env_long(const char *name, long def, long min, long max, long *out, lev_error_t *err);

/* Reads a secret's file (a *_FILE variable `var`) into a malloc'd string
 * without its final line break (at most 64 KiB, no NUL). Errors name the
 * variable and the file, never the content. */
int lev_secret_read_file(const char *var, const char *path, char **out, lev_error_t *err);

/* Wipes and frees a secret (NULL is fine). */
void lev_secret_free(char *s);

#endif
