/*
 * A small HTTP client over libcurl for the services that call out (payment
 * gateway, webhooks). One easy handle per client keeps connections alive
 * between requests; options are set again for every request.
 */
#include "svc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct svc_http_s {
    CURL *curl;
    long connect_timeout_ms;
    long timeout_ms;
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

svc_http_t *svc_http_new(int64_t connect_timeout_ms, int64_t timeout_ms)
{
    svc_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return NULL;
    }
    h->connect_timeout_ms = clamp_ms(connect_timeout_ms);
    h->timeout_ms = clamp_ms(timeout_ms);
    return h;
}

void svc_http_destroy(svc_http_t *http)
{
    if (!http)
        return;
    curl_easy_cleanup(http->curl);
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

int svc_http_post(svc_http_t *http, const char *url, const char *body, size_t len,
                  const char *const *headers, svc_http_response_t *resp)
{
    int rc = LEV_OK;
    struct curl_slist *list = NULL, *tmp;
    char errbuf[CURL_ERROR_SIZE] = "";
    memset(resp, 0, sizeof *resp);
    if (!http || !url || (!body && len))
        return LEV_ERR_ARG;

    const char *fixed[] = {"Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (!(tmp = curl_slist_append(list, fixed[i]))) {
            rc = LEV_ERR_NOMEM;
            goto done;
        }
        list = tmp;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (!(tmp = curl_slist_append(list, headers[i]))) {
            rc = LEV_ERR_NOMEM;
            goto done;
        }
        list = tmp;
    }

    CURL *c = http->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, http->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, http->timeout_ms);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "libevents-services/" LEV_VERSION_STR);

    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    } else {
        resp->status = 0;
        resp->timed_out = cc == CURLE_OPERATION_TIMEDOUT;
        snprintf(resp->error, sizeof resp->error, "%s%s%s", curl_easy_strerror(cc),
                 errbuf[0] ? ": " : "", errbuf);
    }
    /* the handle must not keep pointers to our stack or list */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
done:
    curl_slist_free_all(list);
    return rc;
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
