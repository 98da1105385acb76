/*
 * A pull reader of JSON text (RFC 8259) for paths that cannot afford a
 * tree: nothing is allocated except a scratch buffer for strings that hold
 * escapes. It accepts exactly what jansson's parser accepts with its
 * default flags: UTF-8 only, no control characters in strings, no "\u0000",
 * no lone surrogates, the JSON number grammar. Any other input is -1, and
 * the caller decides what to do with it (lev_codec_encode_json hands such
 * text to jansson, which says what is wrong and where).
 *
 *   lev_jreader_t r;
 *   lev_jreader_init(&r, text, len);
 *   int first = 1, rc;
 *   const char *k, *s;
 *   size_t kn, sn;
 *   if (lev_jreader_eat(&r, '{') != 0) ...
 *   while ((rc = lev_jreader_member(&r, &first, &k, &kn)) == 1)
 *       if (lev_jreader_string(&r, &s, &sn) != 0) ...   (a member's value)
 *   if (rc < 0) ...                                     (bad text)
 *   lev_jreader_free(&r);
 *
 * Views returned (*s, *key) point into the text when it holds no escape,
 * else into the reader's scratch: valid until the reader's next call.
 */
#ifndef LIBEVENTS_JSONTEXT_H
#define LIBEVENTS_JSONTEXT_H

#include <libevents/common.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lev_jreader_s {
    const char *p, *end; /* what is left to read */
    char *scratch;       /* strings with escapes, decoded (lev_jreader_free) */
    size_t scap;
} lev_jreader_t;

LEV_API void lev_jreader_init(lev_jreader_t *r, const char *text, size_t len);
LEV_API void lev_jreader_free(lev_jreader_t *r);

/* The next byte after whitespace, not consumed ('{', '[', '"', 't', 'f',
 * 'n', '-', a digit, or punctuation), or -1 at the end of the text. */
LEV_API int lev_jreader_peek(lev_jreader_t *r);

/* Consumes c after whitespace: 0, or -1 (nothing consumed) when the next
 * byte is not c. */
LEV_API int lev_jreader_eat(lev_jreader_t *r, int c);

/* Reads a string: 0 with its decoded bytes in *s, *n; -1 when the next
 * value is not a valid string. */
LEV_API int lev_jreader_string(lev_jreader_t *r, const char **s, size_t *n);

/* Reads a number: 0 with its text in *s, *n and *integral set when it has
 * neither fraction nor exponent; -1 when the next value is not a number. */
LEV_API int lev_jreader_number(lev_jreader_t *r, const char **s, size_t *n, int *integral);

/* Reads true, false or null: 0 with *which 't', 'f' or 'n'; else -1. */
LEV_API int lev_jreader_literal(lev_jreader_t *r, int *which);

/* Steps through an object whose '{' was eaten, *first set to 1 before the
 * first call: 1 with the next member's key in *key, *klen (its ':' eaten,
 * its value next), 0 when the object ended ('}' eaten), -1 on bad text. */
LEV_API int lev_jreader_member(lev_jreader_t *r, int *first, const char **key, size_t *klen);

/* The same for an array whose '[' was eaten: 1 when an element is next,
 * 0 when the array ended (']' eaten), -1 on bad text. */
LEV_API int lev_jreader_element(lev_jreader_t *r, int *first);

/* Skips one value, checked as strictly as the calls above, nested at most
 * max_depth objects and arrays deep: 0 with its text in *s, *n (either may
 * be NULL), or -1. */
LEV_API int lev_jreader_skip(lev_jreader_t *r, size_t max_depth, const char **s, size_t *n);

/* Parses an integral number's text as lev_jreader_number gives it: 0, or
 * -1 when it does not fit 64 bits (jansson refuses those too). */
LEV_API int lev_json_int64(const char *s, size_t n, int64_t *out);

#ifdef __cplusplus
}
#endif

#endif
