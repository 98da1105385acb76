/* Process-wide logging through a callback, and a JSON-lines writer. */
#include "internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LEV_LOG_FIELDS_MAX 32

/* The sink is called from any thread (librdkafka logs from its own): the
 * settings are read under a lock, the level check is one atomic load. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static lev_log_cb log_cb = NULL;
static void *log_opaque = NULL;
static _Atomic int log_min = LEV_LOG_ERROR + 1; /* above every level: off */
static char log_service[128] = "";

void lev_log_set(lev_log_cb cb, void *opaque, lev_log_level_t min_level)
{
    pthread_mutex_lock(&log_lock);
    log_cb = cb;
    log_opaque = opaque;
    atomic_store(&log_min, cb ? (int)min_level : LEV_LOG_ERROR + 1);
    pthread_mutex_unlock(&log_lock);
}

void lev_log_set_service(const char *service)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_service, sizeof log_service, "%s", service ? service : "");
    pthread_mutex_unlock(&log_lock);
}

int lev_log_level_parse(const char *s, lev_log_level_t *out)
{
    static const struct {
        const char *name;
        lev_log_level_t level;
    } names[] = {{"debug", LEV_LOG_DEBUG},
                 {"info", LEV_LOG_INFO},
                 {"warn", LEV_LOG_WARN},
                 {"warning", LEV_LOG_WARN},
                 {"error", LEV_LOG_ERROR}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return LEV_OK;
        }
    }
    return LEV_ERR_CONFIG;
}

int lev_log_enabled(lev_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&log_min, memory_order_relaxed);
}

void lev_logv(lev_log_level_t level, const char *msg, va_list ap)
{
    if (!lev_log_enabled(level))
        return;
    lev_kv_t fields[LEV_LOG_FIELDS_MAX];
    size_t n = 0;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (v && n < LEV_LOG_FIELDS_MAX) {
            fields[n].key = k;
            fields[n].value = v;
            n++;
        }
    }
    pthread_mutex_lock(&log_lock);
    lev_log_cb cb = log_cb;
    void *opaque = log_opaque;
    pthread_mutex_unlock(&log_lock);
    if (cb)
        cb(opaque, level, msg, fields, n);
}

void lev_log(lev_log_level_t level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    lev_logv(level, msg, ap);
    va_end(ap);
}

static const char *level_name(lev_log_level_t level)
{
    switch (level) {
    case LEV_LOG_DEBUG:
        return "debug";
    case LEV_LOG_INFO:
        return "info";
    case LEV_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void lev_log_json(void *opaque, lev_log_level_t level, const char *msg, const lev_kv_t *fields,
                  size_t nfields)
{
    FILE *out = opaque ? (FILE *)opaque : stderr;
    char ts[32];
    lev_time_format(lev_now_ms(), ts);
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_name(level)));
    json_object_set_new(o, "msg", json_string(msg ? msg : ""));
    char service[sizeof log_service];
    pthread_mutex_lock(&log_lock);
    memcpy(service, log_service, sizeof service);
    pthread_mutex_unlock(&log_lock);
    if (service[0])
        json_object_set_new(o, "service", json_string(service));
    for (size_t i = 0; i < nfields; i++) {
        /* json_string rejects invalid UTF-8; keep the line rather than lose the field */
        json_t *v = json_string(fields[i].value);
        if (!v)
            v = json_string("<invalid utf-8>");
        json_object_set_new(o, fields[i].key, v);
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line)
        return;
    size_t len = strlen(line);
    line[len] = '\n'; /* replace the NUL: one write per line */
    fflush(out);
    ssize_t off = 0;
    while ((size_t)off < len + 1) {
        ssize_t w = write(fileno(out), line + off, len + 1 - (size_t)off);
        if (w <= 0)
            break;
        off += w;
    }
    free(line);
}
