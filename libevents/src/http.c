/*
 * The worker's HTTP endpoint on libmicrohttpd: one internal thread polls
 * the listening socket and every connection, and calls the routes. Only
 * GET and HEAD of /metrics, /healthz and /readyz are answered; any other
 * path is 404, any other method 405 (with Allow).
 */
#include "http_internal.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HTTP_CONNECTIONS_MAX 32
#define HTTP_CONNECTION_TIMEOUT_S 10

struct lev_http_s {
    struct MHD_Daemon *d;
    lev_http_routes_t routes;
    int port;
    _Atomic int started;
    char start_error[256]; /* what libmicrohttpd said while starting */
};

int lev_http_addr_parse(const char *addr, char *host, size_t host_size, int *port, lev_error_t *err)
{
    const char *colon, *h = addr;
    size_t hlen;
    if (!addr || !*addr)
        return lev_error_set(err, LEV_ERR_CONFIG, "LEV_HTTP_ADDR", "empty address");
    if (addr[0] == '[') { /* [v6]:port */
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return lev_error_set(err, LEV_ERR_CONFIG, "LEV_HTTP_ADDR",
                                 "expected [address]:port, got \"%s\"", addr);
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || strchr(addr, ':') != colon)
            return lev_error_set(err, LEV_ERR_CONFIG, "LEV_HTTP_ADDR",
                                 "expected host:port (like 127.0.0.1:9100 or :9100), got \"%s\"",
                                 addr);
        hlen = (size_t)(colon - addr);
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
        return lev_error_set(err, LEV_ERR_CONFIG, "LEV_HTTP_ADDR",
                             "the port of \"%s\" is not a number from 0 to 65535", addr);
    if (hlen == 0) {
        h = "0.0.0.0";
        hlen = strlen(h);
    }
    if (hlen + 1 > host_size)
        return lev_error_set(err, LEV_ERR_CONFIG, "LEV_HTTP_ADDR", "the host of \"%s\" is too long",
                             addr);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return LEV_OK;
}

/* ======================================================================
 * Requests
 * ====================================================================== */

static enum MHD_Result respond(struct MHD_Connection *c, int status, lev_mx_buf_t *b,
                               const char *type, const char *allow)
{
    struct MHD_Response *r;
    if (b->failed) {
        lev_mx_buf_free(b);
        static const char oom[] = "out of memory\n";
        r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        type = "text/plain; charset=utf-8";
    } else {
        /* the buffer goes to libmicrohttpd, which frees it after sending */
        r = MHD_create_response_from_buffer(b->len, b->p,
                                            b->p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (r)
            memset(b, 0, sizeof *b);
        else
            lev_mx_buf_free(b);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **state)
{
    lev_http_t *h = cls;
    lev_mx_buf_t b = {0};
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)state;
    int (*route)(void *, lev_mx_buf_t *) = NULL;
    const char *type = "application/json";
    if (strcmp(url, "/metrics") == 0) {
        route = h->routes.metrics;
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/healthz") == 0) {
        route = h->routes.healthz;
    } else if (strcmp(url, "/readyz") == 0) {
        route = h->routes.readyz;
    }
    if (!route) {
        lev_mx_buf_printf(&b, "not found: try /metrics, /healthz or /readyz\n");
        return respond(c, MHD_HTTP_NOT_FOUND, &b, "text/plain; charset=utf-8", NULL);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        lev_mx_buf_printf(&b, "method not allowed: only GET and HEAD\n");
        return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, &b, "text/plain; charset=utf-8",
                       "GET, HEAD");
    }
    int status = route(h->routes.arg, &b);
    return respond(c, status, &b, type, NULL);
}

/* libmicrohttpd's messages: kept while starting (for the error), then
 * logged at debug level (a client that hung up, for example). */
static void on_log(void *cls, const char *fmt, va_list ap)
{
    lev_http_t *h = cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (!atomic_load(&h->started))
        snprintf(h->start_error, sizeof h->start_error, "%s", msg);
    else
        lev_log(LEV_LOG_DEBUG, "http endpoint", "error", msg, NULL);
}

/* ======================================================================
 * Lifecycle
 * ====================================================================== */

lev_http_t *lev_http_start(const char *addr, const lev_http_routes_t *routes, lev_error_t *err)
{
    char host[256], port_s[16];
    int port;
    if (lev_http_addr_parse(addr, host, sizeof host, &port, err) != 0)
        return NULL;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port_s, sizeof port_s, "%d", port);
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai != 0 || !ai) {
        lev_error_set(err, LEV_ERR_CONFIG, "LEV_HTTP_ADDR", "cannot resolve \"%s\": %s", host,
                      gai_strerror(gai));
        return NULL;
    }
    /* a name such as localhost: its IPv4 address when it has one, which is
     * what clients of 127.0.0.1 and the services' defaults expect */
    const struct addrinfo *use = ai;
    for (const struct addrinfo *a = ai; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            use = a;
            break;
        }
    }
    lev_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    h->routes = *routes;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (use->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the server's thread inherits this mask: signals are for the
     * application's threads (the worker's handler and pipe) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_log,
                            h, MHD_OPTION_SOCK_ADDR, use->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)HTTP_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    freeaddrinfo(ai);
    if (!h->d) {
        /* "Failed to bind to port 0: Address already in use": the reason
         * is after the last colon (the port it names is the option's) */
        const char *why = strrchr(h->start_error, ':');
        lev_error_set(err, LEV_ERR_IO, "LEV_HTTP_ADDR", "cannot serve HTTP on %s: %s", addr,
                      why && why[1] ? why + 2
                      : saved       ? strerror(saved)
                                    : "refused");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    atomic_store(&h->started, 1);
    return h;
}

int lev_http_port(const lev_http_t *h)
{
    return h ? h->port : 0;
}

void lev_http_stop(lev_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
