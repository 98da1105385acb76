/* Errors, environment variables and exit codes shared by the services. */
#include "svc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int svc_error(lev_error_t *err, int code, const char *where, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return code;
}

char *svc_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

const char *svc_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

int svc_env_duration(const char *name, int64_t def, int64_t *out, lev_error_t *err)
{
    const char *v = svc_env_str(name, NULL);
    if (!v) {
        *out = def;
        return LEV_OK;
    }
    if (lev_duration_parse(v, out) != 0)
        return svc_error(err, LEV_ERR_CONFIG, name,
                         "expected a duration like 500ms, 10s, 2m or 30d, got \"%s\"", v);
    return LEV_OK;
}

int svc_env_int64(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                  lev_error_t *err)
{
    const char *v = svc_env_str(name, NULL);
    if (!v) {
        *out = def;
        return LEV_OK;
    }
    errno = 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return svc_error(err, LEV_ERR_CONFIG, name,
                         "expected an integer from %lld to %lld, got \"%s\"", (long long)min,
                         (long long)max, v);
    *out = (int64_t)n;
    return LEV_OK;
}

void svc_help_var(FILE *out, const char *name, const char *doc, const char *def)
{
    if (def)
        fprintf(out, "  %-34s %s (default: %s)\n", name, doc, def);
    else
        fprintf(out, "  %-34s %s\n", name, doc);
}

int svc_exit_code_for(int err)
{
    switch (err) {
    case LEV_ERR_ARG:
    case LEV_ERR_CONFIG:
    case LEV_ERR_SCHEMA:
    case LEV_ERR_IO: /* schema files missing or unreadable */
        return SVC_EXIT_CONFIG;
    default:
        return SVC_EXIT_RUNTIME;
    }
}
