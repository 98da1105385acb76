/*
 * libevents store: idempotency keys and small per-service state in Redis.
 *
 * Idempotency uses a lease, never a bare "seen" flag:
 *   claim     SET <ns>:<event-id> P:<token> NX PX <lease>
 *             -> owned (we hold the lease), done ("D": finished before, skip),
 *                busy (another live owner holds it: retry later)
 *   complete  P:<token> -> D with a long TTL (compare-and-set, Lua)
 *   release   delete the key only if it still holds P:<token> (Lua)
 *   dead      P:<token> -> X:<redrive provenance> with the done TTL, when the
 *             event was dead-lettered: a copy fetched again is skipped, a
 *             redrive of it claims it anew (Lua)
 * Claims, completions and releases take a whole batch in one round trip
 * (pipelined), so Redis is not a per-message round trip.
 *
 * Threads: a store is one blocking connection; use it from one thread at a
 * time (a worker's store belongs to the thread running the worker).
 */
#ifndef LIBEVENTS_STORE_H
#define LIBEVENTS_STORE_H

#include <libevents/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lev_store_s lev_store_t;

typedef enum lev_claim_e {
    LEV_CLAIM_OWNED = 0, /* the lease is ours: handle the event */
    LEV_CLAIM_DONE = 1,  /* already handled: skip and finish */
    LEV_CLAIM_BUSY = 2,  /* another owner holds a live lease: do not finish, retry later */
    /* a worker dead-lettered the event ("X:<redrive provenance>"): skip and
     * finish; a redrive of it (evctl dlq redrive) claims it anew */
    LEV_CLAIM_DEAD = 3,
} lev_claim_t;

/* Connects to a redis:// URL (redis://[:password@]host[:port][/db]) with a
 * connect/command timeout. The lease token is random per store. */
LEV_API lev_store_t *lev_store_new(const char *url, int timeout_ms, lev_error_t *err);
LEV_API void lev_store_destroy(lev_store_t *store);

/* This store's lease token (random, per process). */
LEV_API const char *lev_store_token(const lev_store_t *store);

/* Reconnects if the connection was lost. 0 when connected. */
LEV_API int lev_store_ping(lev_store_t *store, lev_error_t *err);

/* Claims n keys in one round trip; out[i] says what each key is. A key
 * claimed twice in one call: the first is owned, the rest busy. On a Redis
 * error nothing is known: returns LEV_ERR_REDIS. */
LEV_API int lev_store_claim(lev_store_t *store, const char *const *keys, size_t n, int64_t lease_ms,
                            lev_claim_t *out, lev_error_t *err);

/* Turns our claims on n keys into done with a TTL, in one round trip.
 * ok[i] (may be NULL) is 1 when the key held our claim, 0 when it had been
 * lost (lease expired and taken, for example). */
LEV_API int lev_store_complete(lev_store_t *store, const char *const *keys, size_t n,
                               int64_t done_ttl_ms, int *ok, lev_error_t *err);

/* Deletes our claims on n keys (compare-and-delete), in one round trip. */
LEV_API int lev_store_release(lev_store_t *store, const char *const *keys, size_t n,
                              lev_error_t *err);

/* Extends our claims on n keys to lease_ms from now, in one round trip
 * (for work that outlives a lease). ok[i] (may be NULL) is 1 when the key
 * held our claim, 0 when it had been lost. */
LEV_API int lev_store_renew(lev_store_t *store, const char *const *keys, size_t n, int64_t lease_ms,
                            int *ok, lev_error_t *err);

/* One pipelined round trip for a whole poll batch: completes done[0..ndone)
 * (our claims become done with done_ttl_ms; done_ok[i], may be NULL, is 0
 * when the claim had been lost), releases rel[0..nrel), then claims
 * claim[0..nclaim) with lease_ms, in that order, so a key settled here and
 * claimed again in the same call is seen in its new state; out[i] says what
 * claim[i] is. Any of the three lists may be empty. On a Redis error nothing
 * is known of any part and LEV_ERR_REDIS is returned: settles can be sent
 * again later (they are compare-and-set, so repeating them is safe). */
LEV_API int lev_store_settle_claim(lev_store_t *store, const char *const *done, size_t ndone,
                                   int64_t done_ttl_ms, int *done_ok, const char *const *rel,
                                   size_t nrel, const char *const *claim, size_t nclaim,
                                   int64_t lease_ms, lev_claim_t *out, lev_error_t *err);

/* Round trips made so far (a pipeline of many commands counts once). */
LEV_API uint64_t lev_store_round_trips(const lev_store_t *store);

/* Handler side-effect keys: sets key to value only if absent, with a TTL
 * (0 = none). *created is 1 when this call set it. One round trip. */
LEV_API int lev_store_set_once(lev_store_t *store, const char *key, const char *value,
                               int64_t ttl_ms, int *created, lev_error_t *err);

/* Reads a string key into a malloc'd string (*value NULL when absent). */
LEV_API int lev_store_get(lev_store_t *store, const char *key, char **value, lev_error_t *err);

/* Sets a string key (ttl_ms 0 = no TTL). */
LEV_API int lev_store_set(lev_store_t *store, const char *key, const char *value, int64_t ttl_ms,
                          lev_error_t *err);

/* Compare-and-set: sets key to `value` only when its current value equals
 * `expect` (NULL expect: only when absent). *swapped is 1 when it did. */
LEV_API int lev_store_cas(lev_store_t *store, const char *key, const char *expect,
                          const char *value, int64_t ttl_ms, int *swapped, lev_error_t *err);

/* Reads n string keys in one round trip (MGET): values[i] is a malloc'd
 * string, or NULL when the key is absent (or not a string). */
LEV_API int lev_store_get_many(lev_store_t *store, const char *const *keys, size_t n, char **values,
                               lev_error_t *err);

/* n compare-and-sets (as lev_store_cas: expect[i] NULL means only when
 * absent, ttl_ms[i] 0 none), pipelined in one round trip and applied in
 * order; swapped[i] says which did. A later one may expect what an earlier
 * one writes. */
LEV_API int lev_store_cas_many(lev_store_t *store, const char *const *keys,
                               const char *const *expect, const char *const *values,
                               const int64_t *ttl_ms, size_t n, int *swapped, lev_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
