/* Private parts of the Redis store, reachable to the project's own tests. */
#ifndef LEV_STORE_INTERNAL_H
#define LEV_STORE_INTERNAL_H

#include "metrics_internal.h"

#include <libevents/common.h>
#include <libevents/store.h>

/* A parsed Redis URL. Strings are malloc'd and owned by the struct. */
typedef struct lev_store_url_s {
    int is_unix;    /* 1 for unix:///path (path in `host`, port 0) */
    char *host;     /* host name or address (no brackets), or socket path */
    int port;       /* 1..65535, 6379 when absent; 0 for unix sockets */
    int db;         /* database number, 0 when absent */
    char *user;     /* ACL user name, NULL when none */
    char *password; /* NULL when none; never written to logs or errors */
    char *endpoint; /* "host:port" or the socket path, for messages */
} lev_store_url_t;

/*
 * Parses `redis://[[user]:password@]host[:port][/db]` or
 * `unix://[[user]:password@]/path[?db=N]`. Host may be an IPv6 address in
 * brackets; user and password may be percent-encoded. On success fills *out
 * (free it with lev_store_url_free) and returns 0; otherwise returns
 * LEV_ERR_CONFIG with a text that never contains the URL's credentials, and
 * *out is left empty.
 */
int lev_store_url_parse(const char *url, lev_store_url_t *out, lev_error_t *err);

/* Frees what lev_store_url_parse allocated and empties *u (NULL is fine). */
void lev_store_url_free(lev_store_url_t *u);

/* What one exchange carries, in the order it is sent; any list may be
 * empty. The arrays must stay valid until the exchange ends. */
typedef struct lev_store_lists_s {
    const char *const *done; /* our claims that become done, with done_ttl_ms */
    size_t ndone;
    int64_t done_ttl_ms;
    const char *const *rel; /* our claims to delete */
    size_t nrel;
    /* our claims on events dead-lettered: each becomes dead_mark[i]
     * ("X:<redrive provenance>", see LEV_CLAIM_DEAD) with done_ttl_ms */
    const char *const *dead, *const *dead_mark;
    size_t ndead;
    const char *const *renew; /* our claims to run for lease_ms again */
    size_t nrenew;
    const char *const *claim; /* keys to claim for lease_ms */
    size_t nclaim;
    /* NULL, or per claim "" or, for a redriven record, the mark its own
     * dead-lettering would leave: such a claim also takes a key another
     * copy of the event left dead-lettered */
    const char *const *claim_mark;
    int64_t lease_ms;
} lev_store_lists_t;

/* lev_store_settle_claim in two halves, so the caller can work while Redis
 * does: begin formats and sends every command, end reads and parses the
 * replies. In between, every other call on this store fails with
 * LEV_ERR_STATE. A begin that fails leaves nothing under way. end fills
 * done_ok (may be NULL) and out as lev_store_settle_claim does, and
 * renew_ok (may be NULL) as lev_store_renew. */
int lev_store_exchange_begin(lev_store_t *store, const lev_store_lists_t *l, lev_error_t *err);
int lev_store_exchange_end(lev_store_t *store, int *done_ok, int *renew_ok, lev_claim_t *out,
                           lev_error_t *err);
/* Gives up the exchange under way: the connection is dropped (made again
 * by the next call). */
void lev_store_exchange_abort(lev_store_t *store);
/* 1 while an exchange begun is not ended. */
int lev_store_exchange_pending(const lev_store_t *store);

/* Metrics of a store's connection (any may be NULL): round trips begun,
 * failures (connection lost, timeouts, error replies), and the time from
 * sending a round trip's commands to having read its last reply. Updated
 * by the thread using the store. */
typedef struct lev_store_obs_s {
    lev_mx_series_t *round_trips, *errors, *seconds;
} lev_store_obs_t;
void lev_store_observe(lev_store_t *s, const lev_store_obs_t *obs);

/* Makes the store use its Lua scripts for claims and completions even on a
 * server that takes SET with NX and GET together (for tests of the path
 * servers older than Redis 7.0 take). Until the next reconnect. */
void lev_store_use_scripts(lev_store_t *s);

#endif
