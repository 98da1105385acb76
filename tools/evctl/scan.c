/*
 * Reading ranges of a topic's partitions without a consumer group: plan
 * [start, end) per partition from --from/--until positions (offsets, times
 * through rd_kafka_offsets_for_times, beginning/end), assign, read until
 * every range is done. The end of a range is the end of the partition when
 * the scan was planned, so copying records into the same topic never loops.
 */
#include "evctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char evctl_scan_specs_help[] =
    "Positions for --from and --until:\n"
    "  beginning | end          the oldest retained record | the end of the partition\n"
    "  N                        offset N\n"
    "  -N                       (--from only) N records before the end of each partition\n"
    "  2026-11-21T17:05:00Z     the first record at or after this time (RFC 3339)\n"
    "  now | now-2h             a time relative to now (ms, s, m, h, d)\n"
    "  P:POS,P:POS              per partition (for --from: only the partitions listed)\n"
    "--from is inclusive and --until exclusive. When a bound is a time, records whose\n"
    "timestamp lies outside [from, until) are skipped as well. A range that selects\n"
    "nothing (--from 10 --until 5, --until beginning) is a usage error (exit 64).\n";

typedef enum { POS_BEGIN, POS_END, POS_OFFSET, POS_RELATIVE, POS_TIME } pos_kind_t;

typedef struct pos_s {
    pos_kind_t kind;
    int64_t v; /* offset, count or time */
} pos_t;

/* Parses one position (not the per-partition form). */
static int pos_parse(const char *s, int allow_relative, pos_t *out)
{
    if (strcmp(s, "beginning") == 0 || strcmp(s, "earliest") == 0) {
        *out = (pos_t){POS_BEGIN, 0};
        return 0;
    }
    if (strcmp(s, "end") == 0 || strcmp(s, "latest") == 0) {
        *out = (pos_t){POS_END, 0};
        return 0;
    }
    const char *digits = s[0] == '-' ? s + 1 : s;
    if (*digits >= '0' && *digits <= '9' && strspn(digits, "0123456789") == strlen(digits)) {
        errno = 0;
        long long v = strtoll(digits, NULL, 10);
        if (errno || (s[0] == '-' && !allow_relative))
            return -1;
        *out = (pos_t){s[0] == '-' ? POS_RELATIVE : POS_OFFSET, (int64_t)v};
        return 0;
    }
    int64_t ms;
    if (evctl_time_parse(s, &ms) == 0) {
        *out = (pos_t){POS_TIME, ms};
        return 0;
    }
    return -1;
}

/* A --from/--until value: one position for all partitions, or per partition. */
typedef struct spec_s {
    int given;
    int per_partition;
    pos_t all;
    int npart;
    int32_t parts[256];
    pos_t pos[256];
} spec_t;

/* Parses a --from/--until value (one position, or P:POS,...) into out.
 * Returns 0 or EVCTL_EXIT_USAGE after printing an error naming the flag. */
static int spec_parse(const char *flag, const char *s, int allow_relative, spec_t *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return 0;
    out->given = 1;
    size_t lead = strspn(s, "0123456789");
    if (lead == 0 || s[lead] != ':') {
        if (pos_parse(s, allow_relative, &out->all) != 0)
            return evctl_fail(EVCTL_EXIT_USAGE,
                              "--%s: \"%s\" is not a position (beginning, end, an offset%s, an "
                              "RFC 3339 time, now-<duration>, or P:POS,...)",
                              flag, s, allow_relative ? ", -N" : "");
        return 0;
    }
    out->per_partition = 1;
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':'), *end;
        errno = 0;
        long p = colon ? strtol(item, &end, 10) : -1;
        if (!colon || errno || end != colon || p < 0 || p > INT32_MAX ||
            out->npart == (int)(sizeof out->parts / sizeof out->parts[0]) ||
            pos_parse(colon + 1, allow_relative, &out->pos[out->npart]) != 0) {
            rc = evctl_fail(EVCTL_EXIT_USAGE,
                            "--%s: \"%s\" is not PARTITION:POSITION (as in 0:15,1:beginning)", flag,
                            item);
            break;
        }
        out->parts[out->npart++] = (int32_t)p;
    }
    free(copy);
    return rc;
}

/* The position of a spec for partition p; NULL when the per-partition form
 * does not name p. */
static const pos_t *spec_for(const spec_t *s, int32_t p)
{
    if (!s->per_partition)
        return &s->all;
    for (int i = 0; i < s->npart; i++)
        if (s->parts[i] == p)
            return &s->pos[i];
    return NULL;
}

/* 1 when [f, u) holds nothing whatever the partition holds: --until
 * beginning, or two positions of the same kind in the wrong order (an
 * offset and a time, or anything and `end`, cannot be compared here). */
static int surely_empty(const pos_t *f, const pos_t *u)
{
    if (u->kind == POS_BEGIN)
        return 1;
    if (!f || f->kind != u->kind)
        return 0;
    if (f->kind == POS_OFFSET || f->kind == POS_TIME)
        return f->v >= u->v;
    return f->kind == POS_END; /* end .. end */
}

int evctl_range_check(const char *from_flag, const char *from, const char *until_flag,
                      const char *until)
{
    spec_t *fs = calloc(2, sizeof *fs), *us = fs ? fs + 1 : NULL;
    int rc = 0;
    if (!fs)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if ((rc = spec_parse(from_flag, from, 1, fs)) || (rc = spec_parse(until_flag, until, 0, us)) ||
        !us->given)
        goto done;
    /* the partitions either names (all of them when neither is per partition) */
    int32_t parts[512];
    int n = 0;
    if (!fs->per_partition && !us->per_partition)
        parts[n++] = -1;
    for (int i = 0; fs->per_partition && i < fs->npart; i++)
        parts[n++] = fs->parts[i];
    for (int i = 0; us->per_partition && i < us->npart; i++)
        parts[n++] = us->parts[i];
    for (int i = 0; i < n; i++) {
        const pos_t *f = fs->given ? spec_for(fs, parts[i]) : NULL, *u = spec_for(us, parts[i]);
        if (!u || !surely_empty(f, u))
            continue;
        if (u->kind == POS_BEGIN) {
            rc = evctl_fail(EVCTL_EXIT_USAGE,
                            "--%s %s selects nothing: the range ends before the oldest record "
                            "(--%s is exclusive)",
                            until_flag, until, until_flag);
            break;
        }
        char where[48] = "";
        if (parts[i] >= 0)
            snprintf(where, sizeof where, " in partition %d", (int)parts[i]);
        rc = evctl_fail(EVCTL_EXIT_USAGE,
                        "--%s %s and --%s %s select nothing%s: --%s (inclusive) must come "
                        "before --%s (exclusive)",
                        from_flag, from, until_flag, until, where, from_flag, until_flag);
        break;
    }
done:
    free(fs);
    return rc;
}

/* Offsets for the times of a spec (one rd_kafka_offsets_for_times call);
 * out[i] is the offset for ranges[i] (-1: no record at or after the time). */
static int resolve_times(evctl_scan_t *s, const spec_t *spec, int timeout_ms, int64_t *out)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n);
    int any = 0, rc = 0;
    for (size_t i = 0; i < s->n; i++) {
        out[i] = -1;
        const pos_t *pos = spec_for(spec, s->ranges[i].partition);
        if (pos && pos->kind == POS_TIME) {
            rd_kafka_topic_partition_list_add(l, s->topic, s->ranges[i].partition)->offset = pos->v;
            any = 1;
        }
    }
    if (any) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(s->rk, l, timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: looking up offsets by time: %s", s->topic,
                            rd_kafka_err2str(e));
        } else {
            for (int j = 0; j < l->cnt; j++) {
                rd_kafka_topic_partition_t *tp = &l->elems[j];
                if (tp->err) {
                    rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE,
                                    "%s [%d]: looking up offsets by time: %s", s->topic,
                                    (int)tp->partition, rd_kafka_err2str(tp->err));
                    break;
                }
                for (size_t i = 0; i < s->n; i++)
                    if (s->ranges[i].partition == tp->partition)
                        out[i] = tp->offset;
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* v limited to [lo, hi]. */
static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int evctl_scan_plan(evctl_scan_t *s, evctl_ctx_t *ctx, rd_kafka_t *rk, const char *topic,
                    const char *partitions, const char *from, const char *def_from,
                    const char *until, int follow)
{
    spec_t *fs = calloc(2, sizeof *fs), *us = fs ? fs + 1 : NULL;
    int64_t *times = NULL;
    int rc = 0;
    memset(s, 0, sizeof *s);
    s->rk = rk;
    s->follow = follow;
    s->since_ms = s->until_ms = -1;
    if (!fs) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto done;
    }
    if (strlen(topic) >= sizeof s->topic || !*topic) {
        rc = evctl_fail(EVCTL_EXIT_USAGE, "\"%s\" is not a topic name", topic);
        goto done;
    }
    snprintf(s->topic, sizeof s->topic, "%s", topic);
    if ((rc = spec_parse(from ? "from" : "from (default)", from ? from : def_from, 1, fs)) ||
        (rc = spec_parse("until", until, 0, us)))
        goto done;
    if (!fs->per_partition && fs->all.kind == POS_TIME)
        s->since_ms = fs->all.v;
    if (us->given && !us->per_partition && us->all.kind == POS_TIME)
        s->until_ms = us->all.v;

    int n = evctl_topic_partitions(rk, topic, ctx->timeout_ms);
    if (n < 0) {
        rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: %s", topic, evctl_topic_partitions_why(n));
        goto done;
    }
    if (n == 0) {
        rc = evctl_fail(EVCTL_EXIT_DATA, "topic %s does not exist", topic);
        goto done;
    }
    /* which partitions: --partition, else the ones --from names, else all */
    if (!(s->ranges = calloc((size_t)n, sizeof *s->ranges))) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto done;
    }
    char *want = calloc((size_t)n, 1);
    if (!want) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto done;
    }
    if (partitions) {
        char *copy = strdup(partitions), *save = NULL;
        int listed = 0;
        for (char *it = copy ? strtok_r(copy, ",", &save) : NULL; it;
             it = strtok_r(NULL, ",", &save), listed++) {
            char *end;
            errno = 0;
            long p = strtol(it, &end, 10);
            if (errno || end == it || *end || p < 0 || p >= n) {
                rc = evctl_fail(EVCTL_EXIT_USAGE,
                                "--partition: \"%s\" is not a partition of %s (0..%d)", it, topic,
                                n - 1);
                break;
            }
            want[p] = 1;
        }
        free(copy);
        if (!rc && listed == 0)
            rc = evctl_fail(EVCTL_EXIT_USAGE,
                            "--partition: \"%s\" names no partition (expected P or P,P,... of "
                            "%s: 0..%d)",
                            partitions, topic, n - 1);
    } else {
        memset(want, 1, (size_t)n);
    }
    for (int i = 0; !rc && fs->per_partition && i < fs->npart; i++)
        if (fs->parts[i] >= n)
            rc = evctl_fail(EVCTL_EXIT_USAGE, "--from: %s has no partition %d (0..%d)", topic,
                            (int)fs->parts[i], n - 1);
    for (int p = 0; !rc && p < n; p++)
        if (want[p] && spec_for(fs, p))
            s->ranges[s->n++].partition = p;
    free(want);
    if (!rc && s->n == 0) /* --partition and a per-partition --from disagree */
        rc = evctl_fail(EVCTL_EXIT_USAGE,
                        "--partition %s and --from %s have no partition in common: nothing to read",
                        partitions, from);
    if (rc)
        goto done;

    for (size_t i = 0; i < s->n; i++) {
        evctl_range_t *r = &s->ranges[i];
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, r->partition, &r->low,
                                                                 &r->high, ctx->timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s [%d]: watermarks: %s", topic,
                            (int)r->partition, rd_kafka_err2str(e));
            goto done;
        }
    }
    if (!(times = calloc(s->n ? s->n * 2 : 1, sizeof *times))) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
        goto done;
    }
    if ((rc = resolve_times(s, fs, ctx->timeout_ms, times)) ||
        (rc = resolve_times(s, us, ctx->timeout_ms, times + s->n)))
        goto done;
    for (size_t i = 0; i < s->n; i++) {
        evctl_range_t *r = &s->ranges[i];
        const pos_t *f = spec_for(fs, r->partition);
        switch (f->kind) {
        case POS_BEGIN:
            r->start = r->low;
            break;
        case POS_END:
            r->start = r->high;
            break;
        case POS_OFFSET:
            r->start = clamp64(f->v, r->low, r->high);
            break;
        case POS_RELATIVE:
            r->start = r->high - f->v > r->low ? r->high - f->v : r->low;
            break;
        case POS_TIME:
            r->start = times[i] >= 0 ? clamp64(times[i], r->low, r->high) : r->high;
            break;
        }
        const pos_t *u = us->given ? spec_for(us, r->partition) : NULL;
        int64_t open_end = follow ? INT64_MAX : r->high;
        if (!u) {
            r->end = open_end;
        } else if (u->kind == POS_BEGIN) {
            r->end = r->low;
        } else if (u->kind == POS_END) {
            r->end = r->high;
        } else if (u->kind == POS_OFFSET) {
            r->end = follow ? u->v : clamp64(u->v, 0, r->high);
        } else { /* POS_TIME */
            r->end = times[s->n + i] >= 0 ? clamp64(times[s->n + i], 0, r->high) : open_end;
        }
        r->next = r->start;
        r->done = r->start >= r->end;
    }
done:
    free(times);
    free(fs);
    if (rc)
        evctl_scan_clear(s);
    return rc;
}

void evctl_scan_clear(evctl_scan_t *s)
{
    free(s->ranges);
    s->ranges = NULL;
    s->n = 0;
}

int64_t evctl_scan_remaining(const evctl_scan_t *s)
{
    if (s->follow)
        return -1;
    int64_t left = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!s->ranges[i].done && s->ranges[i].end > s->ranges[i].next)
            left += s->ranges[i].end - s->ranges[i].next;
    return left;
}

void evctl_scan_resume_spec(const evctl_scan_t *s, const int64_t *next, char *out, size_t size)
{
    size_t used = 0;
    if (size)
        out[0] = '\0';
    for (size_t i = 0; i < s->n && used < size; i++) {
        int w =
            snprintf(out + used, size - used, "%s%d:%lld", i ? "," : "",
                     (int)s->ranges[i].partition, (long long)(next ? next[i] : s->ranges[i].next));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The range reading `partition`, or NULL. */
static evctl_range_t *range_of(evctl_scan_t *s, int32_t partition)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->ranges[i].partition == partition)
            return &s->ranges[i];
    return NULL;
}

/* Marks a range done and stops fetching its partition. */
static void range_done(evctl_scan_t *s, evctl_range_t *r)
{
    if (r->done)
        return;
    r->done = 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, r->partition);
    rd_kafka_pause_partitions(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* How many ranges are not done yet. */
static size_t ranges_left(const evctl_scan_t *s)
{
    size_t left = 0;
    for (size_t i = 0; i < s->n; i++)
        left += !s->ranges[i].done;
    return left;
}

int evctl_scan_run(evctl_scan_t *s, evctl_scan_cb cb, void *opaque, evctl_progress_t *progress,
                   const uint64_t *done)
{
    int rc = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n);
    for (size_t i = 0; i < s->n; i++)
        if (!s->ranges[i].done)
            rd_kafka_topic_partition_list_add(l, s->topic, s->ranges[i].partition)->offset =
                s->ranges[i].start;
    if (l->cnt == 0)
        goto out;
    rd_kafka_resp_err_t e = rd_kafka_assign(s->rk, l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = evctl_fail(EVCTL_EXIT_INTERNAL, "%s: assign: %s", s->topic, rd_kafka_err2str(e));
        goto out;
    }
    while (!rc && ranges_left(s) > 0) {
        if (evctl_stop) {
            rc = EVCTL_EXIT_INTERRUPTED;
            break;
        }
        evctl_progress_update(progress, done ? *done : s->read, evctl_scan_remaining(s));
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 100);
        if (!m)
            continue;
        evctl_range_t *r = m->rkt && strcmp(rd_kafka_topic_name(m->rkt), s->topic) == 0
                               ? range_of(s, m->partition)
                               : NULL;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (r && !s->follow)
                range_done(s, r);
        } else if (m->err) {
            switch (m->err) {
            case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
            case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
            case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
                rc = evctl_fail(EVCTL_EXIT_DATA, "%s: %s", s->topic, rd_kafka_message_errstr(m));
                break;
            case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
            case RD_KAFKA_RESP_ERR__FATAL:
                rc = evctl_fail(EVCTL_EXIT_UNAVAILABLE, "%s: %s", s->topic,
                                rd_kafka_message_errstr(m));
                break;
            default: /* transient: librdkafka reconnects by itself */
                break;
            }
        } else if (r && !r->done) {
            if (m->offset >= r->end) {
                range_done(s, r);
            } else if (m->offset >= r->next) {
                rd_kafka_timestamp_type_t tt;
                int64_t ts = rd_kafka_message_timestamp(m, &tt);
                int in_window =
                    (s->since_ms < 0 || ts >= s->since_ms) && (s->until_ms < 0 || ts < s->until_ms);
                if (in_window) {
                    s->read++;
                    int crc = cb(opaque, s, m);
                    if (crc == 1)
                        rc = -1; /* stop: done */
                    else if (crc > 1)
                        rc = crc;
                } else if (s->follow && s->until_ms >= 0 && ts >= s->until_ms) {
                    range_done(s, r);
                }
                r->next = m->offset + 1;
                if (r->next >= r->end)
                    range_done(s, r);
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (rc == -1)
        rc = 0;
out:
    evctl_progress_update(progress, done ? *done : s->read, evctl_scan_remaining(s));
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}
