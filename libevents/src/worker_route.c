/*
 * Failure routing: a record that failed goes to its group's next retry
 * topic or to the dead-letter topic, with its original key, value and
 * headers and a fresh set of lev_* headers that replaces any earlier one,
 * so headers never grow with the hops. A record too large to be sent again
 * is dead-lettered without its value; a header says so and gives its size.
 */
#include "worker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_MAX_HEADERS 64

int lev_w_fail(wrec_t *r, const char *error_class, const char *message, int attempts, int level,
               int64_t first_failure_ms, int64_t due_ms)
{
    wfail_t *f = r->fail;
    if (!f && !(f = calloc(1, sizeof *f)))
        return LEV_ERR_NOMEM;
    char *copy = strdup(message ? message : "");
    if (!copy) {
        if (!r->fail)
            free(f);
        return LEV_ERR_NOMEM;
    }
    free(f->message);
    f->message = copy;
    f->error_class = error_class;
    f->attempts = attempts;
    f->level = level;
    f->first_failure_ms = first_failure_ms;
    f->due_ms = due_ms;
    f->omitted_bytes = 0;
    r->fail = f;
    return LEV_OK;
}

/* The original coordinates of a record: its own, or those a retry topic
 * record carries (when they are well formed). */
static void original_of(const wrec_t *r, char topic[W_NAME_MAX], char part[16], char off[24],
                        char ts[24])
{
    const rd_kafka_message_t *m = r->m;
    int64_t mts = rd_kafka_message_timestamp(m, NULL);
    const char *t =
        r->part && r->part->level > 0 ? lev_w_header_str(r, H_ORIG_TOPIC, topic, W_NAME_MAX) : NULL;
    if (t && t[0]) {
        snprintf(part, 16, "%" PRId64,
                 lev_w_header_i64(r, H_ORIG_PARTITION, m->partition, 0, INT32_MAX));
        snprintf(off, 24, "%" PRId64, lev_w_header_i64(r, H_ORIG_OFFSET, m->offset, 0, INT64_MAX));
        snprintf(ts, 24, "%" PRId64, lev_w_header_i64(r, H_ORIG_TIMESTAMP, mts, -1, INT64_MAX));
        return;
    }
    snprintf(topic, W_NAME_MAX, "%s", rd_kafka_topic_name(m->rkt));
    snprintf(part, 16, "%" PRId32, m->partition);
    snprintf(off, 24, "%" PRId64, m->offset);
    snprintf(ts, 24, "%" PRId64, mts);
}

int lev_w_route(lev_worker_t *w, wrec_t *r)
{
    const wfail_t *f = r->fail;
    const rd_kafka_message_t *m = r->m;
    int bare = f->level == 0 && f->omitted_bytes > 0;
    char orig_topic[W_NAME_MAX], orig_part[16], orig_off[24], orig_ts[24];
    original_of(r, orig_topic, orig_part, orig_off, orig_ts);
    char att[16], first[24], last[24], due[24], omitted[24];
    snprintf(att, sizeof att, "%d", f->attempts);
    snprintf(first, sizeof first, "%" PRId64, f->first_failure_ms);
    snprintf(last, sizeof last, "%" PRId64, lev_now_ms());
    snprintf(due, sizeof due, "%" PRId64, f->due_ms);
    snprintf(omitted, sizeof omitted, "%zu", f->omitted_bytes);

    /* the original headers without our own, then ours */
    lev_header_t hs[ROUTE_MAX_HEADERS];
    size_t n = 0;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == 0 && h) {
        const char *name;
        const void *v;
        size_t len;
        for (size_t i = 0;
             n < ROUTE_MAX_HEADERS - 16 && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++)
            if (strncmp(name, "lev_", 4) != 0)
                hs[n++] = (lev_header_t){name, v, len};
    }
    const char *ours[][2] = {
        {LEV_H_DLQ_VERSION, "1"},          {LEV_H_ORIG_TOPIC, orig_topic},
        {LEV_H_ORIG_PARTITION, orig_part}, {LEV_H_ORIG_OFFSET, orig_off},
        {LEV_H_ORIG_TIMESTAMP, orig_ts},   {LEV_H_GROUP, w->group},
        {LEV_H_SERVICE, w->service},       {LEV_H_ERROR_CLASS, f->error_class},
        {LEV_H_ERROR_MESSAGE, f->message}, {LEV_H_ATTEMPTS, att},
        {LEV_H_FIRST_FAILURE, first},      {LEV_H_LAST_FAILURE, last},
    };
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        hs[n++] = (lev_header_t){ours[i][0], ours[i][1], strlen(ours[i][1])};
    if (f->level > 0)
        hs[n++] = (lev_header_t){LEV_H_DUE, due, strlen(due)};
    if (bare)
        hs[n++] = (lev_header_t){LEV_H_VALUE_OMITTED, omitted, strlen(omitted)};

    char dest[W_NAME_MAX + 16];
    if (f->level > 0)
        lev_retry_topic_name(w->group, f->level, dest, sizeof dest);
    else
        lev_dlq_topic_name(w->group, dest, sizeof dest);
    lev_msg_t msg = {.topic = dest,
                     .partition = LEV_PARTITION_ANY,
                     .key = m->key,
                     .key_len = m->key_len,
                     .value = bare ? NULL : m->payload,
                     .value_len = bare ? 0 : m->len,
                     .headers = hs,
                     .nheaders = n};
    lev_error_t err;
    r->route = f->level > 0 ? ROUTE_RETRY : bare ? ROUTE_DLQ_BARE : ROUTE_DLQ;
    r->outstanding++;
    if (lev_producer_send(w->producer, &msg, lev_w_delivery_cb, r, &err) != 0) {
        r->outstanding--;
        lev_log(LEV_LOG_ERROR, "cannot queue a failed record", "topic", dest, "error", err.text,
                "event_id", r->id, NULL);
        return err.code ? err.code : LEV_ERR_KAFKA;
    }
    r->state = REC_WAIT;
    char corr[128], trace[64];
    lev_log(f->level > 0 ? LEV_LOG_WARN : LEV_LOG_ERROR,
            f->level > 0 ? "moved to retry topic"
            : bare       ? "dead-lettered without its value"
                         : "dead-lettered",
            "topic", dest, "error_class", f->error_class, "error", f->message, "attempts", att,
            "event_id", r->id, "correlation_id",
            lev_w_header_str(r, H_CORRELATION, corr, sizeof corr), "traceparent",
            lev_w_header_str(r, H_TRACE, trace, sizeof trace), "from_topic",
            rd_kafka_topic_name(m->rkt), "from_offset", orig_off, NULL);
    return LEV_OK;
}
