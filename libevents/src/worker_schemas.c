/*
 * The worker and the schema registry: the registry client made from the
 * environment (LEV_SCHEMA_REGISTRY_*), the wire format of what the worker
 * emits (LEV_WIRE_FORMAT), and the schemas its handlers declared they emit,
 * registered (or looked up) at start so no event waits on the registry for
 * its id, and so an incompatible schema stops the start with the registry's
 * reason instead of failing events later.
 */
#include "worker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest a lookup of an unseen writer id holds the worker's loop. */
#define W_REGISTRY_WAIT_MS 100

int lev_w_registry_init(lev_worker_t *w, lev_error_t *err)
{
    lev_error_t e;
    lev_error_clear(&e);
    w->registry = lev_registry_from_env(&e);
    if (!w->registry && e.code) {
        if (err)
            *err = e;
        return e.code;
    }
    if (w->conf.wire_format == LEV_WIRE_CONFLUENT && !w->registry)
        return lev_error_set(err, LEV_ERR_CONFIG, "LEV_WIRE_FORMAT",
                             "confluent needs a schema registry (LEV_SCHEMA_REGISTRY_URL)");
    if (w->registry) {
        lev_codec_set_registry(w->codec, w->schemas, w->registry);
        /* the loop never waits long on the registry: a lookup not answered
         * within this goes on on the registry's thread, its record waits */
        lev_codec_set_registry_wait(w->codec, W_REGISTRY_WAIT_MS);
        lev_log(LEV_LOG_INFO, "schema registry", "url", lev_registry_url(w->registry),
                "wire_format", lev_wire_format_name(w->conf.wire_format), NULL);
    }
    lev_codec_set_wire_format(w->codec, w->conf.wire_format);
    return 0;
}

void lev_w_registry_free(lev_worker_t *w)
{
    for (size_t i = 0; i < w->nemits; i++)
        free(w->emits[i].topic);
    free(w->emits);
    w->emits = NULL;
    w->nemits = w->capemits = 0;
    lev_registry_destroy(w->registry);
    w->registry = NULL;
}

int lev_worker_declare_emits(lev_worker_t *w, const char *topic, const char *type, lev_error_t *err)
{
    if (!w || !type)
        return lev_error_set(err, LEV_ERR_ARG, topic, "no worker or type");
    int rc = lev_worker_declare_output(w, topic, err);
    if (rc)
        return rc;
    const lev_schema_t *s = lev_schemas_find(w->schemas, type);
    if (!s)
        return lev_error_set(err, LEV_ERR_NOT_FOUND, type, "no schema is loaded for %s", type);
    for (size_t i = 0; i < w->nemits; i++)
        if (w->emits[i].schema == s && strcmp(w->emits[i].topic, topic) == 0)
            return 0;
    if (w->nemits == w->capemits) {
        size_t cap = w->capemits ? 2 * w->capemits : 8;
        struct w_emit_s *v = realloc(w->emits, cap * sizeof *v);
        if (!v)
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        w->emits = v;
        w->capemits = cap;
    }
    if (!(w->emits[w->nemits].topic = strdup(topic)))
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    w->emits[w->nemits++].schema = s;
    return 0;
}

int lev_w_registry_start(lev_worker_t *w, lev_error_t *err)
{
    if (!w->registry || w->conf.wire_format != LEV_WIRE_CONFLUENT)
        return 0;
    int64_t since = lev_mono_ms(), next_log = since;
    int delay = 200;
    for (size_t i = 0; i < w->nemits;) {
        lev_error_t e;
        lev_error_clear(&e);
        int rc = lev_codec_register(w->codec, w->emits[i].topic, w->emits[i].schema, &e);
        if (rc == 0) {
            char id[16];
            snprintf(id, sizeof id, "%" PRId32, lev_codec_schema_id(w->codec, w->emits[i].schema));
            lev_log(LEV_LOG_INFO, "schema registered", "topic", w->emits[i].topic, "type",
                    lev_schema_name(w->emits[i].schema), "schema_id", id, NULL);
            i++;
            continue;
        }
        if (rc != LEV_ERR_REGISTRY)
            return lev_error_set(err, rc, lev_schema_name(w->emits[i].schema),
                                 "cannot register %s for topic %s: %s",
                                 lev_schema_name(w->emits[i].schema), w->emits[i].topic, e.text);
        if (lev_registry_refused(w->registry)) /* waiting would not change it */
            return lev_error_set(err, LEV_ERR_CONFIG, "LEV_SCHEMA_REGISTRY_USER",
                                 "cannot register %s for topic %s: %s (check "
                                 "LEV_SCHEMA_REGISTRY_USER, LEV_SCHEMA_REGISTRY_PASSWORD[_FILE] "
                                 "and the registry's permissions)",
                                 lev_schema_name(w->emits[i].schema), w->emits[i].topic, e.text);
        int64_t now = lev_mono_ms();
        if (now >= next_log) {
            char s[32];
            snprintf(s, sizeof s, "%" PRId64, (now - since) / 1000);
            lev_log(LEV_LOG_WARN, "the schema registry does not answer; waiting for it", "error",
                    e.text, "waiting_s", s, NULL);
            next_log = now + 10000;
        }
        if (lev_w_sleep(w, delay))
            return LEV_W_STOPPED;
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
    return 0;
}

void lev_w_registry_unavailable(lev_worker_t *w, const lev_error_t *err)
{
    int64_t now = lev_mono_ms();
    if (now < w->registry_warn_at)
        return;
    w->registry_warn_at = now + 10000;
    lev_log(LEV_LOG_WARN, "the schema registry cannot be asked; records wait", "error",
            err ? err->text : NULL, NULL);
}
