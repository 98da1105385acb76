/* Private parts of the Redis store, reachable to the project's own tests. */
#ifndef LEV_STORE_INTERNAL_H
#define LEV_STORE_INTERNAL_H

#include <libevents/common.h>

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

#endif
