/*
 * Partition state: the table of partitions this worker holds records of,
 * the reasons each is paused, seeking back, storing offsets, and the
 * rebalance callback for both eager and cooperative assignment.
 */
#include "worker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * The table
 * ====================================================================== */

static size_t part_hash(const char *topic, int32_t partition)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = topic; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    h = (h ^ (uint32_t)partition) * 1099511628211ULL;
    return (size_t)h;
}

wpart_t *lev_w_part_find(lev_worker_t *w, const char *topic, int32_t partition)
{
    if (!w->nbuckets)
        return NULL;
    for (wpart_t *p = w->buckets[part_hash(topic, partition) & (w->nbuckets - 1)]; p; p = p->hnext)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    return NULL;
}

static int table_grow(lev_worker_t *w)
{
    size_t n = w->nbuckets ? w->nbuckets * 2 : 64;
    wpart_t **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (wpart_t *p = w->buckets[i], *next; p; p = next) {
            next = p->hnext;
            size_t at = part_hash(p->topic, p->partition) & (n - 1);
            p->hnext = b[at];
            b[at] = p;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = n;
    return 0;
}

wpart_t *lev_w_part_get(lev_worker_t *w, const char *topic, int32_t partition)
{
    wpart_t *p = lev_w_part_find(w, topic, partition);
    if (p)
        return p;
    if ((w->nparts + 1 > w->nbuckets / 2 && table_grow(w) != 0) || !(p = calloc(1, sizeof *p)))
        return NULL;
    if (!(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->level = lev_w_retry_level(w, topic);
    p->next_offset = -1;
    p->retry_offset = -1;
    size_t at = part_hash(topic, partition) & (w->nbuckets - 1);
    p->hnext = w->buckets[at];
    w->buckets[at] = p;
    w->nparts++;
    return p;
}

void lev_w_parts_free(lev_worker_t *w)
{
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (wpart_t *p = w->buckets[i], *next; p; p = next) {
            next = p->hnext;
            free(p->topic);
            free(p);
        }
    }
    free(w->buckets);
    w->buckets = NULL;
    w->nbuckets = w->nparts = 0;
    w->dirty = NULL;
}

/* ======================================================================
 * Pausing, seeking, offsets
 * ====================================================================== */

static void pause_one(lev_worker_t *w, wpart_t *p, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    if (pause)
        rd_kafka_pause_partitions(w->rk, l);
    else
        rd_kafka_resume_partitions(w->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* librdkafka discards what it fetched ahead for a paused partition and
 * fetches again from the last record handed out when it is resumed. */
void lev_w_pause(lev_worker_t *w, wpart_t *p, unsigned why)
{
    unsigned before = p->pause;
    p->pause |= why;
    if (!before && p->assigned)
        pause_one(w, p, 1);
}

void lev_w_unpause(lev_worker_t *w, wpart_t *p, unsigned why)
{
    if (!(p->pause & why))
        return;
    p->pause &= ~why;
    if (!p->pause && p->assigned)
        pause_one(w, p, 0);
}

/* Applies one reason to every assigned partition, with one call into
 * librdkafka for those whose state changes. */
static void pause_all(lev_worker_t *w, unsigned why, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (wpart_t *p = w->buckets[i]; p; p = p->hnext) {
            if (!p->assigned)
                continue;
            unsigned before = p->pause;
            if (pause)
                p->pause |= why;
            else
                p->pause &= ~why;
            if ((before == 0) != (p->pause == 0))
                rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        }
    }
    if (l->cnt > 0) {
        if (pause)
            rd_kafka_pause_partitions(w->rk, l);
        else
            rd_kafka_resume_partitions(w->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void lev_w_pause_all(lev_worker_t *w, unsigned why)
{
    pause_all(w, why, 1);
}

void lev_w_unpause_all(lev_worker_t *w, unsigned why)
{
    pause_all(w, why, 0);
}

int lev_w_resume_due(lev_worker_t *w, int cap_ms)
{
    int64_t now = lev_mono_ms(), next = now + cap_ms;
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (wpart_t *p = w->buckets[i]; p; p = p->hnext) {
            if (!(p->pause & PAUSE_HOLD))
                continue;
            if (p->resume_at <= now)
                lev_w_unpause(w, p, PAUSE_HOLD);
            else if (p->resume_at < next)
                next = p->resume_at;
        }
    }
    return (int)(next - now);
}

/* Waits for the fetcher to take the new position: no record fetched from
 * the old position is handed out after this returns. */
void lev_w_seek(lev_worker_t *w, wpart_t *p, int64_t offset)
{
    if (!p->assigned)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(w->rk, l, 5000);
    if (e) {
        lev_log(LEV_LOG_ERROR, "seek failed", "topic", p->topic, "error", rd_kafka_error_string(e),
                NULL);
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void lev_w_mark_dirty(lev_worker_t *w, wpart_t *p)
{
    if (p->dirty)
        return;
    p->dirty = 1;
    p->dnext = w->dirty;
    w->dirty = p;
}

/* ======================================================================
 * Rebalances
 * ====================================================================== */

static void log_parts(const char *msg, const rd_kafka_topic_partition_list_t *parts,
                      const char *protocol)
{
    char count[16];
    snprintf(count, sizeof count, "%d", parts->cnt);
    lev_log(LEV_LOG_INFO, msg, "count", count, "protocol", protocol, NULL);
}

/* 1 while a record of a revoked partition still waits for reports or for
 * its deferral. */
static int revoked_waiting(lev_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        wpart_t *p = lev_w_part_find(w, parts->elems[i].topic, parts->elems[i].partition);
        for (wrec_t *r = p ? p->head : NULL; r; r = r->next)
            if (r->state == REC_WAIT || r->state == REC_DEFERRED)
                return 1;
    }
    return 0;
}

/* Gives partitions up: lets their waiting records finish for a short while
 * (so their offsets can be committed), commits what is stored, abandons the
 * rest without storing past it, and forgets their state. */
static void revoke(lev_worker_t *w, rd_kafka_topic_partition_list_t *parts, int lost)
{
    if (!lost) {
        int grace = w->conf.shutdown_timeout_ms < 5000 ? w->conf.shutdown_timeout_ms : 5000;
        int64_t deadline = lev_mono_ms() + grace;
        while (revoked_waiting(w, parts) && lev_mono_ms() < deadline) {
            lev_producer_poll(w->producer, 10);
            lev_w_defer_process(w);
            lev_w_process_ready(w);
            lev_w_advance(w);
        }
        lev_w_advance(w); /* stores the offsets of what finished */
        rd_kafka_resp_err_t cerr = rd_kafka_commit(w->rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            lev_log(LEV_LOG_WARN, "commit on revoke failed", "error", rd_kafka_err2str(cerr), NULL);
    }
    for (int i = 0; i < parts->cnt; i++) {
        wpart_t *p = lev_w_part_find(w, parts->elems[i].topic, parts->elems[i].partition);
        if (!p)
            continue;
        lev_w_abandon_from(w, p, p->head);
        p->assigned = 0;
        p->pause = 0;
        p->next_offset = -1;
        p->retry_offset = -1;
    }
    /* librdkafka keeps a partition's pause flag across unassign and assign:
     * resume what we give up, or it could come back paused for good */
    rd_kafka_resume_partitions(w->rk, parts);
}

static void assign(lev_worker_t *w, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *paused = rd_kafka_topic_partition_list_new(parts->cnt + 1);
    for (int i = 0; i < parts->cnt; i++) {
        wpart_t *p = lev_w_part_get(w, parts->elems[i].topic, parts->elems[i].partition);
        if (!p)
            continue;
        lev_w_abandon_from(w, p, p->head); /* left from an earlier assignment, if any */
        p->assigned = 1;
        lev_w_obs_part(w, p);
        p->pause = (w->store_down ? PAUSE_STORE : 0u) | (w->full ? PAUSE_FULL : 0u) |
                   (w->stop ? PAUSE_STOP : 0u);
        p->next_offset = -1;
        p->retry_offset = -1;
        p->produce_failures = 0;
        if (p->pause)
            rd_kafka_topic_partition_list_add(paused, p->topic, p->partition);
    }
    if (paused->cnt > 0)
        rd_kafka_pause_partitions(w->rk, paused);
    rd_kafka_topic_partition_list_destroy(paused);
}

void lev_w_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    lev_worker_t *w = opaque;
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    W_STAT_ADD(w, rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        lev_mx_add(w->obs.rebalances[0], 1);
        atomic_store(&w->obs.joined, 1);
        w->obs.tick_at = 0; /* the gauges follow at the next turn */
        log_parts("partitions assigned", parts, cooperative ? "cooperative" : "eager");
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                lev_log(LEV_LOG_ERROR, "incremental assign failed", "error",
                        rd_kafka_error_string(e), NULL);
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        assign(w, parts);
        return;
    }
    int lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
    lev_mx_add(w->obs.rebalances[lost ? 2 : 1], 1);
    if (lost) /* out of the group until the next assignment */
        atomic_store(&w->obs.joined, 0);
    w->obs.tick_at = 0;
    log_parts(lost ? "partitions lost" : "partitions revoked", parts,
              cooperative ? "cooperative" : "eager");
    revoke(w, parts, lost);
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) {
            lev_log(LEV_LOG_ERROR, "incremental unassign failed", "error", rd_kafka_error_string(e),
                    NULL);
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}
