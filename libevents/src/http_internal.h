/*
 * The embedded HTTP server of a worker (libmicrohttpd): GET /metrics,
 * /healthz and /readyz on one thread of its own. Requests are answered by
 * the route functions below, on that thread; they must not touch what
 * belongs to the worker's thread.
 */
#ifndef LEV_HTTP_INTERNAL_H
#define LEV_HTTP_INTERNAL_H

#include "metrics_internal.h"

typedef struct lev_http_s lev_http_t;

/* Each route fills b with the response body and returns the HTTP status;
 * `metrics` answers in the Prometheus text format, the probes in JSON. */
typedef struct lev_http_routes_s {
    int (*metrics)(void *arg, lev_mx_buf_t *b);
    int (*healthz)(void *arg, lev_mx_buf_t *b);
    int (*readyz)(void *arg, lev_mx_buf_t *b);
    void *arg;
} lev_http_routes_t;

/* Parses "host:port", "[v6 address]:port" or ":port" (every IPv4
 * interface); port 0 lets the system pick one. host gets the host part
 * ("0.0.0.0" for none). LEV_ERR_CONFIG naming LEV_HTTP_ADDR otherwise. */
int lev_http_addr_parse(const char *addr, char *host, size_t host_size, int *port,
                        lev_error_t *err);

/* Listens on addr and serves the routes until lev_http_stop. NULL with
 * err (LEV_ERR_CONFIG, LEV_ERR_IO naming LEV_HTTP_ADDR) when it cannot. */
lev_http_t *lev_http_start(const char *addr, const lev_http_routes_t *routes, lev_error_t *err);

/* The port it listens on. */
int lev_http_port(const lev_http_t *h);

/* Stops serving (requests under way are finished first) and frees. NULL
 * is fine. */
void lev_http_stop(lev_http_t *h);

#endif
