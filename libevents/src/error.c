/* Error names and error detail formatting. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

const char *lev_err_name(int err)
{
    switch (err) {
    case LEV_OK:
        return "ok";
    case LEV_ERR_ARG:
        return "invalid-argument";
    case LEV_ERR_NOMEM:
        return "out-of-memory";
    case LEV_ERR_IO:
        return "io";
    case LEV_ERR_SCHEMA:
        return "schema";
    case LEV_ERR_DECODE:
        return "decode";
    case LEV_ERR_UNKNOWN_SCHEMA:
        return "unknown-schema";
    case LEV_ERR_RESOLVE:
        return "resolve";
    case LEV_ERR_ENCODE:
        return "encode";
    case LEV_ERR_JSON:
        return "json";
    case LEV_ERR_CONFIG:
        return "config";
    case LEV_ERR_KAFKA:
        return "kafka";
    case LEV_ERR_REDIS:
        return "redis";
    case LEV_ERR_TIMEOUT:
        return "timeout";
    case LEV_ERR_NOT_FOUND:
        return "not-found";
    case LEV_ERR_STATE:
        return "state";
    case LEV_ERR_TOO_LARGE:
        return "too-large";
    case LEV_ERR_REFUSED:
        return "refused";
    case LEV_ERR_REGISTRY:
        return "registry";
    default:
        return "unknown-error";
    }
}

static const char *const error_classes[] = {
    LEV_CLASS_HANDLER,
    LEV_CLASS_RETRIES_EXHAUSTED,
    LEV_CLASS_TOO_LARGE,
    LEV_CLASS_PRODUCE,
    LEV_CLASS_BAD_ID,
    "decode",
    "unknown-schema",
    "resolve",
    NULL,
};

const char *const *lev_error_classes(void)
{
    return error_classes;
}

int lev_error_set(lev_error_t *err, int code, const char *where, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    if (where)
        snprintf(err->where, sizeof err->where, "%s", where);
    else
        err->where[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return code;
}

void lev_error_clear(lev_error_t *err)
{
    if (!err)
        return;
    err->code = 0;
    err->where[0] = '\0';
    err->text[0] = '\0';
}

const char *lev_error_format(const lev_error_t *err, char *buf, size_t size)
{
    if (!buf || size == 0)
        return "";
    if (!err) {
        snprintf(buf, size, "unknown error");
    } else if (err->where[0]) {
        snprintf(buf, size, "%s: %s", err->where, err->text);
    } else {
        snprintf(buf, size, "%s", err->text[0] ? err->text : lev_err_name(err->code));
    }
    return buf;
}
