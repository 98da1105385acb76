/*
 * A small asynchronous HTTP client over libcurl's multi interface for the
 * services that call out (payment gateway, webhooks). A thread of the
 * client runs the transfers, at most max_in_flight at once; the rest wait
 * in submission order and their timeouts start when they do. Connections
 * are kept alive in the multi handle's cache. Each request's completion
 * function runs on the client's thread.
 */
#include "svc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct svc_req_s {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    svc_http_response_t resp;
    char errbuf[CURL_ERROR_SIZE];
    svc_http_done_fn done;
    void *arg;
    struct svc_req_s *next; /* the queue, then the running list */
} svc_req_t;

struct svc_http_s {
    long connect_timeout_ms;
    long timeout_ms;
    int max_in_flight;
    CURLM *multi;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    svc_req_t *queue, *queue_tail; /* submitted, not started (under mu) */
    int stop;                      /* under mu */
    svc_req_t *active;             /* transfers in the multi handle (client thread) */
    int running;                   /* their count */
};

int svc_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? LEV_OK : LEV_ERR_NOMEM;
}

/* Clamps a millisecond count to what CURLOPT_*_MS takes (a long, > 0). */
static long clamp_ms(int64_t ms)
{
    if (ms < 1)
        return 1;
    if (ms > 86400000)
        return 86400000;
    return (long)ms;
}

/* Frees a request, wiping its headers (they may carry credentials). */
static void req_free(svc_req_t *q)
{
    if (!q)
        return;
    if (q->easy)
        curl_easy_cleanup(q->easy);
    for (struct curl_slist *l = q->headers; l; l = l->next)
        memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(q->headers);
    free(q->body);
    svc_http_response_clear(&q->resp);
    free(q);
}

/* Calls the request's completion function and frees it. */
static void req_complete(svc_req_t *q)
{
    q->done(&q->resp, q->arg);
    req_free(q);
}

/* Completes a request that never ran. */
static void req_cancel(svc_req_t *q, const char *why)
{
    q->resp.status = 0;
    snprintf(q->resp.error, sizeof q->resp.error, "%s", why);
    req_complete(q);
}

static void *client_main(void *arg)
{
    svc_http_t *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        int stop = h->stop;
        while (!stop && h->queue && h->running < h->max_in_flight) {
            svc_req_t *q = h->queue;
            h->queue = q->next;
            if (!h->queue)
                h->queue_tail = NULL;
            q->next = NULL;
            if (curl_multi_add_handle(h->multi, q->easy) != CURLM_OK) {
                pthread_mutex_unlock(&h->mu);
                req_cancel(q, "cannot start the request");
                pthread_mutex_lock(&h->mu);
                continue;
            }
            q->next = h->active;
            h->active = q;
            h->running++;
        }
        pthread_mutex_unlock(&h->mu);
        if (stop)
            break;
        int still = 0;
        curl_multi_perform(h->multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(h->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            svc_req_t *q = NULL;
            CURL *e = msg->easy_handle;
            CURLcode cc = msg->data.result;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
            curl_multi_remove_handle(h->multi, e);
            for (svc_req_t **at = &h->active; *at; at = &(*at)->next) {
                if (*at == q) {
                    *at = q->next;
                    break;
                }
            }
            h->running--;
            if (cc == CURLE_OK) {
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &q->resp.status);
            } else {
                q->resp.status = 0;
                q->resp.timed_out = cc == CURLE_OPERATION_TIMEDOUT;
                snprintf(q->resp.error, sizeof q->resp.error, "%s%s%.200s", curl_easy_strerror(cc),
                         q->errbuf[0] ? ": " : "", q->errbuf);
            }
            req_complete(q);
        }
        curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
    }
    /* stopping: what runs and what waits completes as not answered */
    for (svc_req_t *q = h->active, *next; q; q = next) {
        next = q->next;
        curl_multi_remove_handle(h->multi, q->easy);
        req_cancel(q, "the service is stopping");
    }
    h->active = NULL;
    h->running = 0;
    pthread_mutex_lock(&h->mu);
    svc_req_t *q = h->queue;
    h->queue = h->queue_tail = NULL;
    pthread_mutex_unlock(&h->mu);
    for (svc_req_t *next; q; q = next) {
        next = q->next;
        req_cancel(q, "the service is stopping");
    }
    return NULL;
}

svc_http_t *svc_http_new(int64_t connect_timeout_ms, int64_t timeout_ms, int max_in_flight)
{
    svc_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->connect_timeout_ms = clamp_ms(connect_timeout_ms);
    h->timeout_ms = clamp_ms(timeout_ms);
    h->max_in_flight = max_in_flight > 0 ? max_in_flight : 1;
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        free(h);
        return NULL;
    }
    if (!(h->multi = curl_multi_init())) {
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->max_in_flight);
    if (pthread_create(&h->thread, NULL, client_main, h) != 0) {
        curl_multi_cleanup(h->multi);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    h->started = 1;
    return h;
}

void svc_http_destroy(svc_http_t *http)
{
    if (!http)
        return;
    if (http->started) {
        pthread_mutex_lock(&http->mu);
        http->stop = 1;
        pthread_mutex_unlock(&http->mu);
        curl_multi_wakeup(http->multi);
        pthread_join(http->thread, NULL);
    }
    curl_multi_cleanup(http->multi);
    pthread_mutex_destroy(&http->mu);
    free(http);
}

void svc_http_response_clear(svc_http_response_t *resp)
{
    if (!resp)
        return;
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

/* CURLOPT_WRITEFUNCTION: keeps the first SVC_HTTP_BODY_MAX bytes of the
 * body, NUL-terminated; drops the rest without failing the transfer. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
    svc_http_response_t *resp = opaque;
    size_t n = size * nmemb;
    size_t room = SVC_HTTP_BODY_MAX - resp->body_len;
    size_t take = n < room ? n : room;
    if (take > 0) {
        char *b = realloc(resp->body, resp->body_len + take + 1);
        if (!b)
            return 0; /* makes curl fail the transfer with a write error */
        memcpy(b + resp->body_len, data, take);
        resp->body_len += take;
        b[resp->body_len] = '\0';
        resp->body = b;
    }
    return n;
}

int svc_http_post_async(svc_http_t *http, const char *url, const char *body, size_t len,
                        const char *const *headers, svc_http_done_fn done, void *arg)
{
    if (!http || !url || (!body && len) || !done)
        return LEV_ERR_ARG;
    svc_req_t *q = calloc(1, sizeof *q);
    if (!q)
        return LEV_ERR_NOMEM;
    q->done = done;
    q->arg = arg;
    struct curl_slist *tmp;
    const char *fixed[] = {"Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (!(tmp = curl_slist_append(q->headers, fixed[i])))
            goto nomem;
        q->headers = tmp;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (!(tmp = curl_slist_append(q->headers, headers[i])))
            goto nomem;
        q->headers = tmp;
    }
    if (!(q->body = malloc(len + 1)) || !(q->easy = curl_easy_init()))
        goto nomem;
    if (len)
        memcpy(q->body, body, len);
    q->body[len] = '\0';

    CURL *c = q->easy;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, http->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, http->timeout_ms);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, q->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &q->resp);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, q->errbuf);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)q);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "libevents-services/" LEV_VERSION_STR);

    pthread_mutex_lock(&http->mu);
    int stopping = http->stop;
    if (!stopping) {
        if (http->queue_tail)
            http->queue_tail->next = q;
        else
            http->queue = q;
        http->queue_tail = q;
    }
    pthread_mutex_unlock(&http->mu);
    if (stopping) {
        req_free(q);
        return LEV_ERR_STATE;
    }
    curl_multi_wakeup(http->multi);
    return LEV_OK;
nomem:
    req_free(q);
    return LEV_ERR_NOMEM;
}

svc_http_class_t svc_http_classify(long status)
{
    if (status >= 200 && status <= 299)
        return SVC_HTTP_OK;
    if (status == 0 || status == 408 || status == 429 || (status >= 500 && status <= 599))
        return SVC_HTTP_TRANSIENT;
    return SVC_HTTP_PERMANENT;
}

int svc_url_host(const char *url, char *out, size_t size)
{
    int rc = LEV_ERR_ARG;
    char *scheme = NULL, *host = NULL;
    CURLU *u = curl_url();
    if (!u)
        return LEV_ERR_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
        goto done;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        goto done;
    snprintf(out, size, "%s", host);
    rc = LEV_OK;
done:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

void svc_http_response_move(svc_http_response_t *to, svc_http_response_t *from)
{
    *to = *from;
    memset(from, 0, sizeof *from);
}
