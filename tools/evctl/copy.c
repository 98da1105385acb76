/*
 * Copying records to other topics with provenance headers: the engine of
 * `replay` and `dlq redrive`. Keeps key, value and headers (redrive drops
 * the lev_* dead-letter headers), paces the sends, checks every delivery,
 * and on Ctrl-C or a failed delivery stops, flushes and prints where to
 * resume: per partition, the first offset not known to be copied.
 */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 256

typedef struct copy_state_s copy_state_t;

/* One record in flight: which range and offset it came from. */
typedef struct pending_s {
    copy_state_t *st;
    size_t range;
    int64_t offset;
} pending_t;

struct copy_state_s {
    evctl_ctx_t *ctx;
    evctl_scan_t *scan;
    const evctl_filter_t *filter;
    const evctl_copy_t *copy;
    lev_producer_t *p;
    evctl_rate_t pace;
    uint64_t copied, acked, failed, skipped, unroutable;
    int64_t *next;       /* per range: offset after the last record handed on or skipped */
    int64_t *min_failed; /* per range: lowest offset whose delivery failed, -1 none */
    int delivery_failed;
    char first_error[600];
    json_t *to_counts; /* destination topic -> records */
    json_t *dests;     /* destination topic -> its partition count (0: none such) */
    json_t *classes;   /* redrive: lev_error_class -> records read with it */
};

/* Index of the range reading `partition` into *out; -1 when none does. */
static int range_index(const evctl_scan_t *s, int32_t partition, size_t *out)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->ranges[i].partition == partition) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

/* Delivery report of one copy: counts it, remembers the lowest failed
 * offset of its source range, frees the pending record. */
static void on_delivery(void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset)
{
    pending_t *pd = opaque;
    copy_state_t *st = pd->st;
    (void)partition;
    (void)offset;
    if (err) {
        st->failed++;
        st->delivery_failed = 1;
        if (st->min_failed[pd->range] < 0 || pd->offset < st->min_failed[pd->range])
            st->min_failed[pd->range] = pd->offset;
        if (!st->first_error[0])
            snprintf(st->first_error, sizeof st->first_error, "%s", errstr ? errstr : "failed");
    } else {
        st->acked++;
    }
    free(pd);
}

/* Partitions of a destination topic, asked once per topic: > 0, 0 when it
 * does not exist, -1 when the broker did not answer. Dry runs ask too: a
 * dry run checks what the run checks. */
static int dest_partitions(copy_state_t *st, const char *topic)
{
    json_t *known = json_object_get(st->dests, topic);
    if (known)
        return (int)json_integer_value(known);
    int n = evctl_topic_partitions(st->scan->rk, topic, st->ctx->timeout_ms);
    if (n >= 0)
        json_object_set_new(st->dests, topic, json_integer(n));
    return n;
}

typedef struct class_count_s {
    const char *name;
    json_int_t count;
} class_count_t;

/* qsort order: most records first, then by name. */
static int by_count_desc(const void *a, const void *b)
{
    const class_count_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* "handler (4), decode (2)": the classes read, most frequent first. */
static void classes_text(json_t *classes, char *out, size_t size)
{
    size_t n = json_object_size(classes), k = 0, used = 0;
    class_count_t *all = calloc(n ? n : 1, sizeof *all);
    const char *name;
    json_t *v;
    snprintf(out, size, "none: the range read holds no dead letter");
    if (!all || n == 0) {
        free(all);
        return;
    }
    json_object_foreach(classes, name, v) all[k++] = (class_count_t){name, json_integer_value(v)};
    qsort(all, n, sizeof *all, by_count_desc);
    for (k = 0; k < n; k++) {
        int w = snprintf(out + used, size - used, "%s%s (%lld)", k ? ", " : "", all[k].name,
                         (long long)all[k].count);
        if (w < 0 || (size_t)w >= size - used)
            break;
        used += (size_t)w;
    }
    free(all);
}

/* After a redrive that read its whole range: every --class value that
 * matched no record is said so. A class libevents writes is merely absent
 * (a note); one it does not write and the range does not hold is taken for
 * a mistake: listed with the classes present and the known ones, and
 * EVCTL_EXIT_DATA is returned. */
static int check_classes(const copy_state_t *st)
{
    const evctl_copy_t *c = st->copy;
    const char *const *classes = lev_error_classes();
    int rc = 0;
    for (int i = 0; i < c->nclasses; i++) {
        if (json_object_get(st->classes, c->classes[i]))
            continue;
        int known = 0;
        for (size_t k = 0; classes[k] && !known; k++)
            known = strcmp(classes[k], c->classes[i]) == 0;
        if (known) {
            evctl_note(st->ctx, "--class %s: no dead letter of this class in the range read",
                       c->classes[i]);
            continue;
        }
        char present[1024], writes[512];
        size_t used = 0;
        writes[0] = '\0';
        for (size_t k = 0; classes[k]; k++) {
            int w =
                snprintf(writes + used, sizeof writes - used, "%s%s", k ? ", " : "", classes[k]);
            if (w < 0 || (size_t)w >= sizeof writes - used)
                break;
            used += (size_t)w;
        }
        classes_text(st->classes, present, sizeof present);
        rc = evctl_fail(EVCTL_EXIT_DATA,
                        "--class %s matches no dead letter: classes in the range read: %s; "
                        "classes libevents writes: %s",
                        c->classes[i], present, writes);
    }
    return rc;
}

/* Is this a header the copy drops from the original? */
static int dropped(const copy_state_t *st, const char *name)
{
    if (strcmp(name, st->copy->from_header) == 0 || strcmp(name, st->copy->at_header) == 0)
        return 1; /* provenance is replaced, never stacked */
    return st->copy->strip_dead_letter && strncmp(name, "lev_", 4) == 0;
}

/* Scan callback: filters one record, then prints it (dry run) or sends it
 * with its provenance headers, paced. Returns 0, or an exit code to stop. */
static int on_record(void *opaque, evctl_scan_t *s, const rd_kafka_message_t *m)
{
    copy_state_t *st = opaque;
    const evctl_copy_t *c = st->copy;
    size_t ri;
    char type[256], cls[128], dest[256];
    if (st->delivery_failed)
        return EVCTL_EXIT_UNAVAILABLE;
    if (range_index(s, m->partition, &ri) != 0)
        return 0;
    if (c->max > 0 && st->copied >= (uint64_t)c->max)
        return 1;
    const char *v =
        c->strip_dead_letter ? evctl_header_str(m, LEV_H_ERROR_CLASS, cls, sizeof cls) : NULL;
    if (c->strip_dead_letter) {
        json_t *seen = json_object_get(st->classes, v ? v : "(none)");
        json_object_set_new(st->classes, v ? v : "(none)",
                            json_integer(seen ? json_integer_value(seen) + 1 : 1));
    }
    int pass = evctl_filter_match(st->ctx, st->filter, m, type, sizeof type);
    if (pass && c->nclasses > 0) {
        pass = 0;
        for (int i = 0; v && !pass && i < c->nclasses; i++)
            pass = strcmp(v, c->classes[i]) == 0;
    }
    if (!pass) {
        st->skipped++;
        st->next[ri] = m->offset + 1;
        return 0;
    }
    const char *to = c->to;
    if (!to && c->strip_dead_letter) {
        to = evctl_header_str(m, LEV_H_ORIG_TOPIC, dest, sizeof dest);
        int parts = to && *to ? dest_partitions(st, to) : 0;
        if (parts < 0) {
            snprintf(st->first_error, sizeof st->first_error, "%s: %s", to,
                     evctl_topic_partitions_why(parts));
            return EVCTL_EXIT_UNAVAILABLE;
        }
        if (parts == 0) {
            /* never re-create a deleted topic by sending to it */
            st->unroutable++;
            st->next[ri] = m->offset + 1;
            if (!to || !*to)
                fprintf(stderr, "evctl: %s [%d] offset %lld has no %s header: not %s\n", s->topic,
                        (int)m->partition, (long long)m->offset, LEV_H_ORIG_TOPIC, c->verb);
            else
                fprintf(stderr,
                        "evctl: %s [%d] offset %lld: its %s %s does not exist: not %s (--to "
                        "sends elsewhere)\n",
                        s->topic, (int)m->partition, (long long)m->offset, LEV_H_ORIG_TOPIC, to,
                        c->verb);
            return 0;
        }
    }
    if (!to)
        to = s->topic;

    lev_header_t h[MAX_HEADERS + 2];
    size_t n = 0, got = evctl_headers_get(m, h, MAX_HEADERS);
    for (size_t i = 0; i < got; i++)
        if (!dropped(st, h[i].name))
            h[n++] = h[i];
    char from[320], at[32];
    snprintf(from, sizeof from, "%s/%d/%lld", s->topic, (int)m->partition, (long long)m->offset);
    lev_time_format(lev_now_ms(), at);
    h[n++] = (lev_header_t){c->from_header, from, strlen(from)};
    h[n++] = (lev_header_t){c->at_header, at, strlen(at)};

    json_t *cnt = json_object_get(st->to_counts, to);
    json_int_t to_count = cnt ? json_integer_value(cnt) + 1 : 1;
    if (c->dry_run) {
        json_t *j = evctl_record_json(st->ctx, m, NULL, 0);
        json_t *sh = json_object();
        for (size_t i = 0; i < n; i++)
            json_object_set_new(sh, h[i].name, evctl_json_bytes(h[i].value, h[i].size));
        json_object_set_new(j, "to", json_string(to));
        json_object_set_new(j, "send_headers", sh);
        json_object_set_new(j, "dry_run", json_true());
        evctl_out(j);
        json_object_set_new(st->to_counts, to, json_integer(to_count));
        st->copied++;
        st->next[ri] = m->offset + 1;
        return 0;
    }
    evctl_rate_wait(&st->pace, evctl_producer_poll_cb, st->p);
    if (evctl_stop)
        return EVCTL_EXIT_INTERRUPTED;
    pending_t *pd = malloc(sizeof *pd);
    if (!pd)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    *pd = (pending_t){st, ri, m->offset};
    lev_msg_t msg = {
        .topic = to,
        .partition = LEV_PARTITION_ANY,
        .key = m->key,
        .key_len = m->key ? m->key_len : 0,
        .value = m->payload,
        .value_len = m->payload ? m->len : 0,
        .headers = h,
        .nheaders = n,
    };
    lev_error_t err;
    if (lev_producer_send(st->p, &msg, on_delivery, pd, &err) != 0) {
        free(pd);
        st->failed++;
        if (st->min_failed[ri] < 0)
            st->min_failed[ri] = m->offset;
        st->delivery_failed = 1;
        snprintf(st->first_error, sizeof st->first_error, "%s", err.text);
        return EVCTL_EXIT_UNAVAILABLE;
    }
    json_object_set_new(st->to_counts, to, json_integer(to_count));
    st->copied++;
    st->next[ri] = m->offset + 1;
    lev_producer_poll(st->p, 0);
    return 0;
}

int evctl_copy_run(evctl_ctx_t *ctx, evctl_scan_t *scan, const evctl_filter_t *filter,
                   const evctl_copy_t *copy)
{
    copy_state_t st;
    evctl_progress_t prog;
    int rc;
    memset(&st, 0, sizeof st);
    st.ctx = ctx;
    st.scan = scan;
    st.filter = filter;
    st.copy = copy;
    st.next = calloc(scan->n ? scan->n : 1, sizeof *st.next);
    st.min_failed = calloc(scan->n ? scan->n : 1, sizeof *st.min_failed);
    st.to_counts = json_object();
    st.dests = json_object();
    st.classes = json_object();
    if (!st.next || !st.min_failed || !st.to_counts || !st.dests || !st.classes) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto out;
    }
    if (copy->to) { /* checked before anything is read, dry run or not */
        int parts = dest_partitions(&st, copy->to);
        if (parts <= 0) {
            rc = parts < 0 ? evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: %s", copy->to,
                                        evctl_topic_partitions_why(parts))
                           : evctl_fail(EVCTL_EXIT_DATA,
                                        "--to: topic %s does not exist (evctl topics creates the "
                                        "workflow's topics): nothing %s",
                                        copy->to, copy->dry_run ? "would be sent" : "sent");
            goto out;
        }
    }
    for (size_t i = 0; i < scan->n; i++) {
        st.next[i] = scan->ranges[i].start;
        st.min_failed[i] = -1;
    }
    if (!copy->dry_run && !(st.p = evctl_producer_new(ctx))) {
        rc = EVCTL_EXIT_INTERNAL;
        goto out;
    }
    evctl_rate_init(&st.pace, copy->rate);
    evctl_progress_init(&prog, ctx, copy->verb);
    rc = evctl_scan_run(scan, on_record, &st, &prog, &st.copied);
    if (st.p && lev_producer_flush(st.p, ctx->conf.delivery_timeout_ms + 5000) != 0) {
        /* unacknowledged: treat as failed from the lowest one on */
        evctl_note(ctx, "some deliveries were not acknowledged in time");
    }
    evctl_progress_end(&prog);
    lev_producer_destroy(st.p); /* reports anything still pending as failed */
    st.p = NULL;
    if (st.delivery_failed && (rc == 0 || rc == EVCTL_EXIT_INTERRUPTED))
        rc = EVCTL_EXIT_UNAVAILABLE;
    int unroutable = rc == 0 && st.unroutable > 0;
    if (unroutable)
        rc = EVCTL_EXIT_DATA; /* the others went; these did not */
    /* --class values that matched nothing, once the whole range was read */
    int bad_class = (rc == 0 || unroutable) && copy->nclasses > 0 &&
                    !(copy->max > 0 && st.copied >= (uint64_t)copy->max);

    /* where to resume: the first failed offset, else after the last handled one */
    json_t *parts = json_array();
    int incomplete = 0;
    char resume[4096], last[4096];
    size_t lused = 0;
    last[0] = '\0';
    for (size_t i = 0; i < scan->n; i++) {
        evctl_range_t *r = &scan->ranges[i];
        if (st.min_failed[i] >= 0 && st.min_failed[i] < st.next[i])
            st.next[i] = st.min_failed[i];
        if (!r->done || st.min_failed[i] >= 0)
            incomplete = 1;
        json_array_append_new(parts, json_pack("{s:i,s:I,s:I,s:I}", "partition", (int)r->partition,
                                               "start", (json_int_t)r->start, "end",
                                               (json_int_t)r->end, "next", (json_int_t)st.next[i]));
        char one[64];
        if (st.next[i] > r->start)
            snprintf(one, sizeof one, "%s%d:%lld", i ? " " : "", (int)r->partition,
                     (long long)st.next[i] - 1);
        else
            snprintf(one, sizeof one, "%s%d:none", i ? " " : "", (int)r->partition);
        if (lused + strlen(one) < sizeof last) {
            memcpy(last + lused, one, strlen(one) + 1);
            lused += strlen(one);
        }
    }
    evctl_scan_resume_spec(scan, st.next, resume, sizeof resume);
    json_t *sum = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:b,s:b,s:o,s:o}", "command", copy->verb,
                            "source", scan->topic, copy->dry_run ? "would_copy" : "copied",
                            (json_int_t)(copy->dry_run ? st.copied : st.acked), "failed",
                            (json_int_t)st.failed, "skipped", (json_int_t)st.skipped, "unroutable",
                            (json_int_t)st.unroutable, "read", (json_int_t)scan->read, "dry_run",
                            copy->dry_run, "interrupted", rc == EVCTL_EXIT_INTERRUPTED, "to",
                            st.to_counts, "partitions", parts);
    st.to_counts = NULL;
    if (sum && incomplete)
        json_object_set_new(sum, "resume", json_string(resume));
    if (sum && copy->strip_dead_letter)
        json_object_set(sum, "classes", st.classes);
    evctl_out(sum);
    if (rc == EVCTL_EXIT_INTERRUPTED || (rc != 0 && incomplete)) {
        evctl_fail(rc, "%s stopped%s%s: last copied offset per partition: %s", copy->verb,
                   st.delivery_failed  ? " after a failed delivery: "
                   : st.first_error[0] ? ": "
                                       : " (interrupted)",
                   st.first_error, last);
        evctl_fail(rc, "resume with --from %s", resume);
    } else if (unroutable) {
        evctl_fail(rc, "%s: %s %llu record%s from %s; %llu unroutable (see above) %s", copy->verb,
                   copy->dry_run ? "would copy" : "copied",
                   (unsigned long long)(copy->dry_run ? st.copied : st.acked),
                   (copy->dry_run ? st.copied : st.acked) == 1 ? "" : "s", scan->topic,
                   (unsigned long long)st.unroutable,
                   copy->dry_run ? "would not be sent" : "were not sent");
    }
    if (bad_class && check_classes(&st) != 0)
        rc = EVCTL_EXIT_DATA;
    else if (rc == 0)
        evctl_note(ctx, "%s: %s %llu record%s from %s, skipped %llu by filters", copy->verb,
                   copy->dry_run ? "would copy" : "copied",
                   (unsigned long long)(copy->dry_run ? st.copied : st.acked),
                   (copy->dry_run ? st.copied : st.acked) == 1 ? "" : "s", scan->topic,
                   (unsigned long long)st.skipped);
out:
    json_decref(st.to_counts);
    json_decref(st.dests);
    json_decref(st.classes);
    free(st.next);
    free(st.min_failed);
    return rc;
}
