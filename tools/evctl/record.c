/* Kafka records as JSON lines, and the type/key filters. */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>

json_t *evctl_headers_json(const rd_kafka_message_t *m)
{
    json_t *obj = json_object();
    lev_header_t h[256];
    size_t n = evctl_headers_get(m, h, sizeof h / sizeof h[0]);
    for (size_t i = 0; obj && i < n; i++) {
        json_t *v = evctl_json_bytes(h[i].value, h[i].size);
        if (!v)
            continue;
        json_t *prev = json_object_get(obj, h[i].name);
        if (!prev) {
            json_object_set_new(obj, h[i].name, v);
        } else if (json_is_array(prev)) {
            json_array_append_new(prev, v);
        } else {
            json_t *arr = json_array();
            json_array_append(arr, prev);
            json_array_append_new(arr, v);
            json_object_set_new(obj, h[i].name, arr);
        }
    }
    return obj;
}

void evctl_record_type(evctl_ctx_t *ctx, const rd_kafka_message_t *m, char *out, size_t size)
{
    const lev_schema_t *s = NULL;
    out[0] = '\0';
    if (ctx->codec && m->payload &&
        lev_codec_writer(ctx->codec, m->payload, m->len, &s, NULL, NULL) == 0 && s) {
        snprintf(out, size, "%s", lev_schema_name(s));
        return;
    }
    if (!evctl_header_str(m, LEV_H_CE_TYPE, out, size))
        out[0] = '\0';
}

json_t *evctl_record_json(evctl_ctx_t *ctx, const rd_kafka_message_t *m, char *type_out,
                          size_t type_size)
{
    char type[256] = "", ts_text[32];
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    json_t *j = json_object();
    if (!j)
        return NULL;
    json_object_set_new(j, "topic", json_string(rd_kafka_topic_name(m->rkt)));
    json_object_set_new(j, "partition", json_integer(m->partition));
    json_object_set_new(j, "offset", json_integer(m->offset));
    if (ts >= 0) {
        lev_time_format(ts, ts_text);
        json_object_set_new(j, "timestamp", json_string(ts_text));
        json_object_set_new(j, "timestamp_ms", json_integer(ts));
    } else {
        json_object_set_new(j, "timestamp", json_null());
    }
    json_object_set_new(j, "key", evctl_json_bytes(m->key, m->key_len));
    json_object_set_new(j, "headers", evctl_headers_json(m));
    lev_frame_t frame;
    if (m->payload && lev_codec_peek_frame(m->payload, m->len, &frame, NULL) == 0) {
        json_object_set_new(j, "wire", json_string(lev_wire_format_name(frame.format)));
        if (frame.format == LEV_WIRE_CONFLUENT)
            json_object_set_new(j, "schema_id", json_integer(frame.schema_id));
    }

    lev_error_t err;
    memset(&err, 0, sizeof err);
    avro_value_t value;
    const lev_schema_t *writer = NULL;
    json_t *decoded = NULL;
    int rc = LEV_ERR_DECODE;
    if (!m->payload) {
        snprintf(err.text, sizeof err.text, "the record has no value (tombstone)");
    } else if (!ctx->codec) {
        snprintf(err.text, sizeof err.text, "no schemas loaded");
    } else {
        rc = lev_codec_decode(ctx->codec, m->payload, m->len, NULL, &value, &writer, &err);
        if (rc == 0) {
            decoded = lev_codec_to_json(&value, &err);
            avro_value_decref(&value);
            if (!decoded)
                rc = err.code ? err.code : LEV_ERR_DECODE;
        }
    }
    if (writer)
        snprintf(type, sizeof type, "%s", lev_schema_name(writer));
    else
        evctl_record_type(ctx, m, type, sizeof type); /* by fingerprint, else ce_type */
    json_object_set_new(j, "type", type[0] ? json_string(type) : json_null());
    if (type[0] && !json_object_get(j, "type")) /* not UTF-8 */
        json_object_set_new(j, "type", evctl_json_bytes(type, strlen(type)));
    if (decoded) {
        json_object_set_new(j, "value", decoded);
    } else {
        json_t *e = json_pack("{s:s}", "class", lev_err_name(rc));
        if (e && err.where[0])
            json_object_set_new(e, "where", evctl_json_bytes(err.where, strlen(err.where)));
        if (e)
            json_object_set_new(e, "message", evctl_json_bytes(err.text, strlen(err.text)));
        json_object_set_new(j, "error", e);
        char *b64 = m->payload ? evctl_base64(m->payload, m->len) : NULL;
        json_object_set_new(j, "raw", b64 ? json_string(b64) : json_null());
        free(b64);
    }
    if (type_out && type_size)
        snprintf(type_out, type_size, "%s", type);
    return j;
}

void evctl_filter_init(evctl_filter_t *f, const evctl_args_t *args)
{
    f->types = evctl_opt_all(args, "type", &f->ntypes);
    f->keys = evctl_opt_all(args, "key", &f->nkeys);
}

int evctl_filter_match(evctl_ctx_t *ctx, const evctl_filter_t *f, const rd_kafka_message_t *m,
                       char *type, size_t size)
{
    if (size)
        type[0] = '\0';
    if (f->nkeys > 0) {
        int hit = 0;
        for (int i = 0; !hit && i < f->nkeys; i++)
            hit = m->key && m->key_len == strlen(f->keys[i]) &&
                  memcmp(m->key, f->keys[i], m->key_len) == 0;
        if (!hit)
            return 0;
    }
    if (f->ntypes > 0) {
        evctl_record_type(ctx, m, type, size);
        int hit = 0;
        for (int i = 0; !hit && i < f->ntypes; i++) {
            const char *want = f->types[i];
            /* a bare name matches the last part of the full name */
            const char *dot = strrchr(type, '.');
            hit = strcmp(type, want) == 0 ||
                  (dot && !strchr(want, '.') && strcmp(dot + 1, want) == 0);
        }
        if (!hit)
            return 0;
    }
    return 1;
}
