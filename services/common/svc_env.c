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

int svc_env_secret(const char *name, char **out, lev_error_t *err)
{
    char file_var[128];
    *out = NULL;
    const char *v = svc_env_str(name, NULL);
    if (v)
        return (*out = strdup(v)) ? LEV_OK : svc_error(err, LEV_ERR_NOMEM, name, "out of memory");
    snprintf(file_var, sizeof file_var, "%s_FILE", name);
    const char *path = svc_env_str(file_var, NULL);
    if (!path)
        return LEV_OK;
    FILE *f = fopen(path, "rb");
    if (!f)
        return svc_error(err, LEV_ERR_CONFIG, file_var, "cannot open %s: %s", path,
                         strerror(errno));
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return svc_error(err, LEV_ERR_CONFIG, file_var, "cannot read %s", path);
    if (n == sizeof buf)
        return svc_error(err, LEV_ERR_CONFIG, file_var, "%s is longer than 4096 bytes", path);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--; /* the line end an editor or echo adds */
    buf[n] = '\0';
    if (n == 0)
        return svc_error(err, LEV_ERR_CONFIG, file_var, "%s is empty", path);
    if (strlen(buf) != n)
        return svc_error(err, LEV_ERR_CONFIG, file_var, "%s holds a NUL byte", path);
    *out = strdup(buf);
    memset(buf, 0, sizeof buf);
    return *out ? LEV_OK : svc_error(err, LEV_ERR_NOMEM, file_var, "out of memory");
}

int svc_env_breaker(const char *prefix, lev_breaker_conf_t *conf, lev_error_t *err)
{
    char name[128];
    int64_t failures, open_ms, open_max_ms;
    int rc;
    snprintf(name, sizeof name, "%s_BREAKER_FAILURES", prefix);
    if ((rc = svc_env_int64(name, 5, 1, 1000000, &failures, err)) != 0)
        return rc;
    snprintf(name, sizeof name, "%s_BREAKER_OPEN_MS", prefix);
    if ((rc = svc_env_duration(name, 5000, &open_ms, err)) != 0)
        return rc;
    if (open_ms < 1)
        return svc_error(err, LEV_ERR_CONFIG, name, "must be positive");
    snprintf(name, sizeof name, "%s_BREAKER_OPEN_MAX_MS", prefix);
    if ((rc = svc_env_duration(name, 60000, &open_max_ms, err)) != 0)
        return rc;
    if (open_max_ms < open_ms)
        return svc_error(err, LEV_ERR_CONFIG, name, "must not be below %s_BREAKER_OPEN_MS", prefix);
    conf->failures = (int)failures;
    conf->open_ms = open_ms;
    conf->open_max_ms = open_max_ms;
    return LEV_OK;
}

void svc_help_breaker(FILE *out, const char *prefix, const char *what)
{
    char name[128], doc[200];
    snprintf(name, sizeof name, "%s_BREAKER_FAILURES", prefix);
    snprintf(doc, sizeof doc, "failures of the %s in a row that open its circuit breaker", what);
    svc_help_var(out, name, doc, "5");
    snprintf(name, sizeof name, "%s_BREAKER_OPEN_MS", prefix);
    svc_help_var(out, name, "time open before the first probe", "5s");
    snprintf(name, sizeof name, "%s_BREAKER_OPEN_MAX_MS", prefix);
    svc_help_var(out, name, "longest time open (doubles after each failed probe)", "60s");
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
