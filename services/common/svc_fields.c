/* Reading fields of decoded events, with errors that name the field.
 *
 * Strings are checked at this boundary: a NUL byte inside a string would
 * silently cut it short in C, so no string field may hold one; identifiers
 * (ids, skus, currencies, tokens, e-mail addresses) may hold no control
 * character at all (below 0x20, or 0x7f), so none reaches a header, a log
 * line, a Redis key or a mail unchecked. */
#include "svc.h"

#include <stdio.h>
#include <string.h>

/* Checks s[0..len) (len from Avro, without the terminating NUL). */
static int check_text(const char *name, const char *s, size_t len, int ident, lev_error_t *err)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            return svc_error(err, LEV_ERR_DECODE, name, "holds a NUL byte (at byte %zu)", i);
        if (ident && (c < 0x20 || c == 0x7f))
            return svc_error(err, LEV_ERR_DECODE, name,
                             "holds a control character (0x%02x at byte %zu)", c, i);
    }
    return LEV_OK;
}

static int get_str(const avro_value_t *rec, const char *name, const char **out, int ident,
                   lev_error_t *err)
{
    size_t len;
    if (lev_value_get_string(rec, name, out, &len) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "missing or not a string");
    return check_text(name, *out, len, ident, err);
}

int svc_get_str(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err)
{
    return get_str(rec, name, out, 0, err);
}

int svc_get_ident(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err)
{
    return get_str(rec, name, out, 1, err);
}

int svc_get_long(const avro_value_t *rec, const char *name, int64_t *out, lev_error_t *err)
{
    if (lev_value_get_long(rec, name, out) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "missing or not a long");
    return LEV_OK;
}

static int get_opt_str(const avro_value_t *rec, const char *name, const char **out, int ident,
                       lev_error_t *err)
{
    avro_value_t u, branch;
    size_t size;
    *out = NULL;
    if (avro_value_get_by_name(rec, name, &u, NULL) != 0 ||
        avro_value_get_current_branch(&u, &branch) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "missing or not a union");
    if (avro_value_get_type(&branch) == AVRO_NULL)
        return LEV_OK;
    if (avro_value_get_string(&branch, out, &size) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "not a string");
    if (!*out) {
        *out = "";
        return LEV_OK;
    }
    return check_text(name, *out, size ? size - 1 : 0, ident, err);
}

int svc_get_opt_str(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err)
{
    return get_opt_str(rec, name, out, 0, err);
}

int svc_get_opt_ident(const avro_value_t *rec, const char *name, const char **out, lev_error_t *err)
{
    return get_opt_str(rec, name, out, 1, err);
}
