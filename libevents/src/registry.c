/*
 * The schema registry client (libevents/registry.h): the Confluent Schema
 * Registry REST API over one libcurl easy handle, answers read with
 * jansson.
 *
 * Locks: `http_mu` guards the curl handle (one request at a time, each try
 * of a request taken separately, so the backoff between tries holds no
 * lock); `cache_mu` guards the two caches; `async_mu` the lookups by id
 * that the registry's own thread makes (lev_registry_schema_by_id_wait).
 * No call holds two. The counters are atomics.
 *
 * Credentials live in `user` and `password` only, handed to curl as
 * CURLOPT_USERNAME / CURLOPT_PASSWORD: the URL curl is given, the URL
 * lev_registry_url() returns and every error text are free of them.
 */
#include "internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_RETRIES 2
#define DEFAULT_BACKOFF_MS 200
#define DEFAULT_CACHE_SIZE 1000
#define MAX_BACKOFF_MS 10000
#define MAX_ANSWER (16u << 20) /* bytes of one answer */
#define NEG_TTL_MS 30000       /* an id the registry does not have, remembered */
#define NEG_SLOTS 256          /* such ids remembered at most */

#define MEDIA_TYPE "application/vnd.schemaregistry.v1+json"

/* ======================================================================
 * The id -> schema cache: a hash table of chains and a recency list
 * ====================================================================== */

typedef struct centry_s {
    int32_t id;
    char *schema;
    struct centry_s *hnext;       /* chain of the bucket */
    struct centry_s *prev, *next; /* recency: head is the newest */
} centry_t;

typedef struct neg_s {
    int32_t id;
    int64_t until_ms; /* 0: a free slot */
} neg_t;

struct lev_registry_s {
    char *url; /* base, without credentials nor a final '/' */
    char *user, *password;
    lev_subject_strategy_t strategy;
    int retries, backoff_ms;

    pthread_mutex_t http_mu;
    CURL *curl;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];

    pthread_mutex_t cache_mu;
    centry_t **buckets;
    size_t nbuckets, cache_cap, cache_n;
    centry_t *newest, *oldest;
    neg_t neg[NEG_SLOTS];

    _Atomic uint64_t requests, hits, misses, failures;
    _Atomic int refused; /* 401 or 403 when the latest answer was one, else 0 */

    /* lookups by id and registrations made on the registry's own thread,
     * started on the first lev_registry_schema_by_id_wait or
     * lev_registry_register_wait: each id or (subject, schema) asked is one
     * entry, removed once a caller took its result */
    int async_ok; /* async_mu and async_cv made */
    pthread_mutex_t async_mu;
    pthread_cond_t async_cv; /* on CLOCK_MONOTONIC: an entry is done, or stop */
    pthread_t async_thread;
    int async_running;
    _Atomic int async_stop; /* also read by the transfer callback */
    struct pending_s {
        int32_t id;    /* the id a lookup asks, or the one a registration got */
        char *subject; /* a registration's subject and schema (owned); */
        char *schema;  /* NULL for a lookup */
        int state;     /* PENDING_QUEUED, PENDING_ASKING, PENDING_DONE */
        int rc;
        char text[sizeof(((lev_error_t *)0)->text)];
    } * pend;
    size_t npend;
};

#define PENDING_QUEUED 0
#define PENDING_ASKING 1
#define PENDING_DONE 2
#define PENDING_MAX 256

static size_t bucket_of(const lev_registry_t *reg, int32_t id)
{
    uint32_t h = (uint32_t)id * 2654435761u; /* Knuth's multiplicative hash */
    return (size_t)(h ^ (h >> 16)) & (reg->nbuckets - 1);
}

static void lru_unlink(lev_registry_t *reg, centry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        reg->newest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        reg->oldest = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(lev_registry_t *reg, centry_t *e)
{
    e->prev = NULL;
    e->next = reg->newest;
    if (reg->newest)
        reg->newest->prev = e;
    reg->newest = e;
    if (!reg->oldest)
        reg->oldest = e;
}

static centry_t *cache_find(lev_registry_t *reg, int32_t id)
{
    for (centry_t *e = reg->buckets[bucket_of(reg, id)]; e; e = e->hnext)
        if (e->id == id)
            return e;
    return NULL;
}

static void cache_evict_oldest(lev_registry_t *reg)
{
    centry_t *e = reg->oldest;
    if (!e)
        return;
    lru_unlink(reg, e);
    centry_t **pp = &reg->buckets[bucket_of(reg, e->id)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    free(e->schema);
    free(e);
    reg->cache_n--;
}

/* A malloc'd copy of the schema of id, or NULL (a miss, or no memory:
 * *nomem). Call with cache_mu held. */
static char *cache_get(lev_registry_t *reg, int32_t id, int *nomem)
{
    centry_t *e = cache_find(reg, id);
    if (!e)
        return NULL;
    lru_unlink(reg, e);
    lru_push(reg, e);
    char *copy = strdup(e->schema);
    *nomem = copy == NULL;
    return copy;
}

/* Remembers the schema of id (a copy); without memory, it is not kept. */
static void cache_put(lev_registry_t *reg, int32_t id, const char *schema)
{
    pthread_mutex_lock(&reg->cache_mu);
    for (size_t i = 0; i < NEG_SLOTS; i++)
        if (reg->neg[i].until_ms && reg->neg[i].id == id)
            reg->neg[i].until_ms = 0;
    centry_t *e = cache_find(reg, id);
    if (e) { /* ids are immutable: the text we hold serves as well */
        lru_unlink(reg, e);
        lru_push(reg, e);
        pthread_mutex_unlock(&reg->cache_mu);
        return;
    }
    e = calloc(1, sizeof *e);
    char *copy = strdup(schema);
    if (!e || !copy) {
        free(e);
        free(copy);
        pthread_mutex_unlock(&reg->cache_mu);
        return;
    }
    while (reg->cache_n >= reg->cache_cap)
        cache_evict_oldest(reg);
    e->id = id;
    e->schema = copy;
    size_t b = bucket_of(reg, id);
    e->hnext = reg->buckets[b];
    reg->buckets[b] = e;
    lru_push(reg, e);
    reg->cache_n++;
    pthread_mutex_unlock(&reg->cache_mu);
}

/* Whether the registry said lately that it has no schema `id`. Call with
 * cache_mu held. */
static int neg_has(lev_registry_t *reg, int32_t id, int64_t now)
{
    for (size_t i = 0; i < NEG_SLOTS; i++)
        if (reg->neg[i].until_ms > now && reg->neg[i].id == id)
            return 1;
    return 0;
}

/* Remembers that the registry has no schema `id`, in a free slot or the
 * one that expires first. */
static void neg_put(lev_registry_t *reg, int32_t id)
{
    int64_t now = lev_mono_ms();
    pthread_mutex_lock(&reg->cache_mu);
    size_t pick = 0;
    for (size_t i = 0; i < NEG_SLOTS; i++) {
        if (reg->neg[i].until_ms <= now || reg->neg[i].id == id) {
            pick = i;
            break;
        }
        if (reg->neg[i].until_ms < reg->neg[pick].until_ms)
            pick = i;
    }
    reg->neg[pick].id = id;
    reg->neg[pick].until_ms = now + NEG_TTL_MS;
    pthread_mutex_unlock(&reg->cache_mu);
}

/* ======================================================================
 * Subjects and strategies
 * ====================================================================== */

int lev_subject_strategy_parse(const char *s, lev_subject_strategy_t *out)
{
    static const struct {
        const char *name;
        lev_subject_strategy_t strategy;
    } names[] = {
        {"topic", LEV_SUBJECT_TOPIC},
        {"topic_name", LEV_SUBJECT_TOPIC},
        {"TopicNameStrategy", LEV_SUBJECT_TOPIC},
        {"record", LEV_SUBJECT_RECORD},
        {"record_name", LEV_SUBJECT_RECORD},
        {"RecordNameStrategy", LEV_SUBJECT_RECORD},
        {"topic_record", LEV_SUBJECT_TOPIC_RECORD},
        {"topic_record_name", LEV_SUBJECT_TOPIC_RECORD},
        {"TopicRecordNameStrategy", LEV_SUBJECT_TOPIC_RECORD},
    };
    if (!out)
        return LEV_ERR_ARG;
    if (!s)
        return LEV_ERR_CONFIG;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].strategy;
            return 0;
        }
    return LEV_ERR_CONFIG;
}

int lev_registry_subject(lev_subject_strategy_t strategy, const char *topic,
                         const char *record_fullname, char *out, size_t size)
{
    if (!out || size == 0)
        return LEV_ERR_ARG;
    out[0] = '\0';
    int n;
    switch (strategy) {
    case LEV_SUBJECT_TOPIC:
        if (!topic || !*topic)
            return LEV_ERR_ARG;
        n = snprintf(out, size, "%s-value", topic);
        break;
    case LEV_SUBJECT_RECORD:
        if (!record_fullname || !*record_fullname)
            return LEV_ERR_ARG;
        n = snprintf(out, size, "%s", record_fullname);
        break;
    case LEV_SUBJECT_TOPIC_RECORD:
        if (!topic || !*topic || !record_fullname || !*record_fullname)
            return LEV_ERR_ARG;
        n = snprintf(out, size, "%s-%s", topic, record_fullname);
        break;
    default:
        return LEV_ERR_ARG;
    }
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return LEV_ERR_ARG;
    }
    return 0;
}

/* ======================================================================
 * The client
 * ====================================================================== */

void lev_registry_destroy(lev_registry_t *reg)
{
    if (!reg)
        return;
    if (reg->async_ok) {
        pthread_mutex_lock(&reg->async_mu);
        reg->async_stop = 1;
        pthread_cond_broadcast(&reg->async_cv);
        int running = reg->async_running;
        pthread_mutex_unlock(&reg->async_mu);
        if (running)
            pthread_join(reg->async_thread, NULL);
        pthread_cond_destroy(&reg->async_cv);
        pthread_mutex_destroy(&reg->async_mu);
        for (size_t i = 0; i < reg->npend; i++) {
            free(reg->pend[i].subject);
            free(reg->pend[i].schema);
        }
        free(reg->pend);
    }
    if (reg->curl) {
        curl_easy_cleanup(reg->curl);
        pthread_mutex_destroy(&reg->http_mu);
        pthread_mutex_destroy(&reg->cache_mu);
    }
    curl_slist_free_all(reg->headers);
    while (reg->oldest)
        cache_evict_oldest(reg);
    free(reg->buckets);
    free(reg->url);
    lev_secret_free(reg->user);
    lev_secret_free(reg->password);
    free(reg);
}

/* Splits `url` into the base URL without credentials (reg->url) and the
 * user and password it may carry (reg->user, reg->password, decoded).
 * Errors never repeat the URL: it may hold a password. */
static int parse_url(lev_registry_t *reg, const char *url, lev_error_t *err)
{
    if (!url || !*url)
        return lev_error_set(err, LEV_ERR_CONFIG, "url", "the schema registry URL is missing");
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return lev_error_set(err, LEV_ERR_CONFIG, "url",
                             "the schema registry URL must start with http:// or https://");
    const char *authority = strstr(url, "://") + 3;
    if (*authority == '\0' || *authority == '/') /* curl reads "http:///x" as host x */
        return lev_error_set(err, LEV_ERR_CONFIG, "url", "the schema registry URL has no host");
    CURLU *u = curl_url();
    if (!u)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    int rc = 0;
    char *host = NULL, *query = NULL, *fragment = NULL, *base = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "url",
                           "the schema registry URL is not a valid http(s) URL");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK) {
        rc = lev_error_set(err, LEV_ERR_CONFIG, "url",
                           "the schema registry URL must not have a query or a fragment");
        goto done;
    }
    char *user = NULL, *password = NULL;
    if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) == CURLUE_OK && user) {
        reg->user = strdup(user);
        lev_secret_free(user);
        if (!reg->user)
            rc = LEV_ERR_NOMEM;
    }
    if (curl_url_get(u, CURLUPART_PASSWORD, &password, CURLU_URLDECODE) == CURLUE_OK && password) {
        reg->password = strdup(password);
        lev_secret_free(password);
        if (!reg->password)
            rc = LEV_ERR_NOMEM;
    }
    if (rc || curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &base, 0) != CURLUE_OK || !base ||
        !(reg->url = strdup(base))) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t n = strlen(reg->url); n > 0 && reg->url[n - 1] == '/'; n--)
        reg->url[n - 1] = '\0';
done:
    curl_free(host);
    curl_free(query);
    curl_free(fragment);
    curl_free(base);
    curl_url_cleanup(u);
    return rc;
}

/* Ends a transfer once the registry is being destroyed, so a destroy does
 * not wait out a registry that does not answer. */
static int transfer_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                             curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&((lev_registry_t *)arg)->async_stop) ? 1 : 0;
}

/* The options every request shares. */
static int setup_curl(lev_registry_t *reg, const lev_registry_conf_t *conf, long timeout_ms,
                      lev_error_t *err)
{
    static const char *const lines[] = {
        "Content-Type: " MEDIA_TYPE,
        "Accept: " MEDIA_TYPE ", application/vnd.schemaregistry+json; q=0.9, "
        "application/json; q=0.5",
        "Expect:", /* no 100-continue round trip before a body */
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *l = curl_slist_append(reg->headers, lines[i]);
        if (!l)
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        reg->headers = l;
    }
    CURL *c = reg->curl;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, transfer_progress);
    SET(CURLOPT_XFERINFODATA, reg);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SET(CURLOPT_HTTPHEADER, reg->headers);
    SET(CURLOPT_ERRORBUFFER, reg->errbuf);
    SET(CURLOPT_USERAGENT, "libevents/" LEV_VERSION_STR);
    SET(CURLOPT_PATH_AS_IS, 1L); /* a subject ".." stays one */
    if (reg->user && *reg->user) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, reg->user);
        SET(CURLOPT_PASSWORD, reg->password ? reg->password : "");
    }
    if (conf->ca_location && *conf->ca_location)
        SET(CURLOPT_CAINFO, conf->ca_location);
    if (conf->cert_location && *conf->cert_location)
        SET(CURLOPT_SSLCERT, conf->cert_location);
    if (conf->key_location && *conf->key_location)
        SET(CURLOPT_SSLKEY, conf->key_location);
#undef SET
    if (rc != CURLE_OK)
        return lev_error_set(err, rc == CURLE_OUT_OF_MEMORY ? LEV_ERR_NOMEM : LEV_ERR_CONFIG, NULL,
                             "libcurl refuses a setting: %s", curl_easy_strerror(rc));
    return 0;
}

lev_registry_t *lev_registry_new(const lev_registry_conf_t *conf, lev_error_t *err)
{
    if (!conf) {
        lev_error_set(err, LEV_ERR_CONFIG, "url", "the schema registry URL is missing");
        return NULL;
    }
    if (conf->timeout_ms < 0) {
        lev_error_set(err, LEV_ERR_CONFIG, "timeout_ms", "expected 0 or more, got %d",
                      conf->timeout_ms);
        return NULL;
    }
    if (conf->retries < -1 || conf->retry_backoff_ms < 0) {
        lev_error_set(err, LEV_ERR_CONFIG, conf->retries < -1 ? "retries" : "retry_backoff_ms",
                      "expected %s, got %d", conf->retries < -1 ? "-1 or more" : "0 or more",
                      conf->retries < -1 ? conf->retries : conf->retry_backoff_ms);
        return NULL;
    }
    if (conf->strategy != LEV_SUBJECT_TOPIC && conf->strategy != LEV_SUBJECT_RECORD &&
        conf->strategy != LEV_SUBJECT_TOPIC_RECORD) {
        lev_error_set(err, LEV_ERR_CONFIG, "strategy", "unknown subject strategy %d",
                      (int)conf->strategy);
        return NULL;
    }
    if (conf->key_location && *conf->key_location &&
        !(conf->cert_location && *conf->cert_location)) {
        lev_error_set(err, LEV_ERR_CONFIG, "key_location",
                      "a private key is given without its certificate (cert_location)");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "libcurl does not start");
        return NULL;
    }
    lev_registry_t *reg = calloc(1, sizeof *reg);
    if (!reg) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    if (parse_url(reg, conf->url, err) != 0)
        goto fail;
    if (conf->user && *conf->user) { /* the configured user overrides the URL's */
        lev_secret_free(reg->user);
        lev_secret_free(reg->password);
        reg->user = strdup(conf->user);
        reg->password = strdup(conf->password ? conf->password : "");
        if (!reg->user || !reg->password) {
            lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
            goto fail;
        }
    }
    reg->strategy = conf->strategy;
    reg->retries = conf->retries == 0 ? DEFAULT_RETRIES : conf->retries < 0 ? 0 : conf->retries;
    reg->backoff_ms = conf->retry_backoff_ms ? conf->retry_backoff_ms : DEFAULT_BACKOFF_MS;
    reg->cache_cap = conf->cache_size ? conf->cache_size : DEFAULT_CACHE_SIZE;
    reg->nbuckets = 16;
    while (reg->nbuckets < reg->cache_cap && reg->nbuckets < (1u << 16))
        reg->nbuckets <<= 1;
    if (!(reg->buckets = calloc(reg->nbuckets, sizeof *reg->buckets))) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (!(reg->curl = curl_easy_init())) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "libcurl cannot make a handle");
        goto fail;
    }
    if (pthread_mutex_init(&reg->http_mu, NULL) != 0) {
        curl_easy_cleanup(reg->curl);
        reg->curl = NULL;
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (pthread_mutex_init(&reg->cache_mu, NULL) != 0) {
        pthread_mutex_destroy(&reg->http_mu);
        curl_easy_cleanup(reg->curl);
        reg->curl = NULL;
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (setup_curl(reg, conf, conf->timeout_ms ? conf->timeout_ms : DEFAULT_TIMEOUT_MS, err) != 0)
        goto fail;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int crc = pthread_cond_init(&reg->async_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (crc != 0) {
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (pthread_mutex_init(&reg->async_mu, NULL) != 0) {
        pthread_cond_destroy(&reg->async_cv);
        lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    reg->async_ok = 1;
    if (err)
        lev_error_clear(err);
    return reg;
fail:
    lev_registry_destroy(reg);
    return NULL;
}

/* ---- from the environment ---- */

lev_registry_t *lev_registry_from_env(lev_error_t *err)
{
    if (err)
        lev_error_clear(err);
    const char *url = lev_env("LEV_SCHEMA_REGISTRY_URL");
    if (!url)
        return NULL;
    lev_registry_conf_t conf = {.url = url};
    conf.user = lev_env("LEV_SCHEMA_REGISTRY_USER");
    conf.password = lev_env("LEV_SCHEMA_REGISTRY_PASSWORD");
    conf.ca_location = lev_env("LEV_SCHEMA_REGISTRY_CA_LOCATION");
    conf.cert_location = lev_env("LEV_SCHEMA_REGISTRY_CERT_LOCATION");
    conf.key_location = lev_env("LEV_SCHEMA_REGISTRY_KEY_LOCATION");
    char *password = NULL;
    const char *pw_file = lev_env("LEV_SCHEMA_REGISTRY_PASSWORD_FILE");
    if (pw_file && conf.password) {
        lev_error_set(err, LEV_ERR_CONFIG, "LEV_SCHEMA_REGISTRY_PASSWORD_FILE",
                      "set LEV_SCHEMA_REGISTRY_PASSWORD or LEV_SCHEMA_REGISTRY_PASSWORD_FILE, "
                      "not both");
        return NULL;
    }
    long timeout, retries, cache;
    if (lev_env_long("LEV_SCHEMA_REGISTRY_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, 1, 600000, &timeout,
                     err) ||
        lev_env_long("LEV_SCHEMA_REGISTRY_RETRIES", DEFAULT_RETRIES, 0, 100, &retries, err) ||
        lev_env_long("LEV_SCHEMA_REGISTRY_CACHE_SIZE", DEFAULT_CACHE_SIZE, 1, 10000000, &cache,
                     err))
        return NULL;
    conf.timeout_ms = (int)timeout;
    conf.retries = retries == 0 ? -1 : (int)retries; /* in the struct, 0 is the default */
    conf.cache_size = (size_t)cache;
    const char *strategy = lev_env("LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY");
    if (strategy && lev_subject_strategy_parse(strategy, &conf.strategy) != 0) {
        lev_error_set(err, LEV_ERR_CONFIG, "LEV_SCHEMA_REGISTRY_SUBJECT_STRATEGY",
                      "expected topic, record or topic_record, got \"%s\"", strategy);
        return NULL;
    }
    if (pw_file) {
        if (lev_secret_read_file("LEV_SCHEMA_REGISTRY_PASSWORD_FILE", pw_file, &password, err) != 0)
            return NULL;
        conf.password = password;
    }
    lev_registry_t *reg = lev_registry_new(&conf, err);
    lev_secret_free(password);
    if (!reg && err && err->code == LEV_ERR_CONFIG) { /* name the variable, not the field */
        static const struct {
            const char *field, *var;
        } vars[] = {
            {"url", "LEV_SCHEMA_REGISTRY_URL"},
            {"key_location", "LEV_SCHEMA_REGISTRY_KEY_LOCATION"},
            {"timeout_ms", "LEV_SCHEMA_REGISTRY_TIMEOUT_MS"},
        };
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
            if (strcmp(err->where, vars[i].field) == 0)
                snprintf(err->where, sizeof err->where, "%s", vars[i].var);
    }
    return reg;
}

const char *lev_registry_url(const lev_registry_t *reg)
{
    return reg ? reg->url : NULL;
}

lev_subject_strategy_t lev_registry_strategy(const lev_registry_t *reg)
{
    return reg ? reg->strategy : LEV_SUBJECT_TOPIC;
}

int lev_registry_refused(const lev_registry_t *reg)
{
    return reg ? atomic_load(&((lev_registry_t *)reg)->refused) : 0;
}

void lev_registry_stats(lev_registry_t *reg, lev_registry_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!reg)
        return;
    out->requests = atomic_load(&reg->requests);
    out->cache_hits = atomic_load(&reg->hits);
    out->cache_misses = atomic_load(&reg->misses);
    out->failures = atomic_load(&reg->failures);
}

/* ======================================================================
 * Requests
 * ====================================================================== */

/* What one request brought back. */
typedef struct answer_s {
    long status;
    json_t *json;     /* the body, when it is JSON */
    long error_code;  /* the Confluent error body's error_code, else 0 */
    const char *text; /* its message (borrowed from json), else NULL */
} answer_t;

typedef struct body_s {
    char *p;
    size_t len, cap;
    int too_large;
} body_t;

static size_t body_write(char *data, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t add = size * n;
    if (add > MAX_ANSWER - b->len) {
        b->too_large = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (lev_grow(&b->p, &b->cap, b->len + add + 1, 1, 4096) != 0)
        return 0;
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static void answer_clear(answer_t *a)
{
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

/* Curl failures that another try will not mend. */
static int curl_permanent(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_WRITE_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_LOGIN_DENIED:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_ABORTED_BY_CALLBACK: /* the registry is being destroyed */
        return 1;
    default:
        return 0;
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One try: fills *a, or returns a curl code with its message in why. */
static CURLcode try_once(lev_registry_t *reg, const char *method, const char *url,
                         const char *payload, answer_t *a, char *why, size_t why_size)
{
    body_t body = {0};
    pthread_mutex_lock(&reg->http_mu);
    CURL *c = reg->curl;
    reg->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (payload) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    }
    atomic_fetch_add(&reg->requests, 1);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        snprintf(why, why_size, "%s",
                 body.too_large   ? "the answer is larger than 16 MiB"
                 : reg->errbuf[0] ? reg->errbuf
                                  : curl_easy_strerror(rc));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    pthread_mutex_unlock(&reg->http_mu);
    if (rc == CURLE_OK) {
        a->status = status;
        atomic_store(&reg->refused, status == 401 || status == 403 ? (int)status : 0);
        a->json = body.p ? json_loadb(body.p, body.len, 0, NULL) : NULL;
        if (json_is_object(a->json)) {
            json_t *code = json_object_get(a->json, "error_code");
            a->error_code = json_is_integer(code) ? (long)json_integer_value(code) : 0;
            a->text = json_string_value(json_object_get(a->json, "message"));
        }
    }
    free(body.p);
    return rc;
}

static int retriable_status(long status)
{
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/* `method` `path` (relative to the base URL, escaped) with `payload` (a
 * JSON text, or NULL), tried again while it fails in a way that may pass.
 * 0 with *a (a 2xx with a JSON body, or a final error status the caller
 * maps), or LEV_ERR_REGISTRY / LEV_ERR_NOMEM with err filled. */
static int request(lev_registry_t *reg, const char *method, const char *path, const char *payload,
                   answer_t *a, lev_error_t *err)
{
    memset(a, 0, sizeof *a);
    size_t ul = strlen(reg->url) + strlen(path) + 1;
    char *url = malloc(ul);
    if (!url)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    snprintf(url, ul, "%s%s", reg->url, path);
    char why[CURL_ERROR_SIZE + 64] = "";
    long backoff = reg->backoff_ms;
    int tries = 0, rc = 0;
    for (;;) {
        tries++;
        answer_clear(a);
        CURLcode cc = try_once(reg, method, url, payload, a, why, sizeof why);
        int again;
        if (cc != CURLE_OK) {
            again = !curl_permanent(cc);
            if (cc == CURLE_OUT_OF_MEMORY) {
                rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "%s %s: out of memory", method, path);
                break;
            }
        } else if (retriable_status(a->status)) {
            again = 1;
            snprintf(why, sizeof why, "HTTP %ld%s%s", a->status, a->text ? ": " : "",
                     a->text ? a->text : "");
        } else if (a->status >= 200 && a->status < 300 && a->status != 204 && !a->json) {
            again = 1;
            snprintf(why, sizeof why, "HTTP %ld with an answer that is not JSON", a->status);
        } else {
            break; /* an answer to give the caller */
        }
        if (!again || tries > reg->retries) {
            rc = lev_error_set(err, LEV_ERR_REGISTRY, NULL, "%s %s: %s", method, path, why);
            if (tries > 1) {
                size_t l = strlen(err ? err->text : "");
                if (err && l < sizeof err->text - 1)
                    snprintf(err->text + l, sizeof err->text - l, " (%d tries)", tries);
            }
            break;
        }
        if (lev_log_enabled(LEV_LOG_DEBUG)) {
            char n[16], ms[24];
            snprintf(n, sizeof n, "%d", tries);
            snprintf(ms, sizeof ms, "%ld", backoff);
            lev_log(LEV_LOG_DEBUG, "schema registry request failed; trying again", "url", reg->url,
                    "request", path, "method", method, "error", why, "try", n, "backoff_ms", ms,
                    NULL);
        }
        sleep_ms(backoff);
        backoff = backoff * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : backoff * 2;
    }
    free(url);
    if (rc) {
        answer_clear(a);
        if (rc == LEV_ERR_REGISTRY)
            atomic_fetch_add(&reg->failures, 1);
    }
    return rc;
}

/* What the calls expect of a 404. */
typedef enum kind_e {
    KIND_SUBJECT,   /* no such subject or version: LEV_ERR_NOT_FOUND */
    KIND_SCHEMA_ID, /* no such id: LEV_ERR_UNKNOWN_SCHEMA */
} kind_t;

/* The error of a final answer that is not a 2xx. */
static int answer_error(lev_registry_t *reg, kind_t kind, const char *method, const char *path,
                        const answer_t *a, lev_error_t *err)
{
    char detail[64];
    if (a->error_code)
        snprintf(detail, sizeof detail, "HTTP %ld, error %ld", a->status, a->error_code);
    else
        snprintf(detail, sizeof detail, "HTTP %ld", a->status);
    const char *msg = a->text && *a->text ? a->text : NULL;
    int code;
    const char *what = NULL; /* said when the registry gave no message */
    /* a registry's own 404 carries a Confluent error code; one without it
     * is a path the server does not serve: not a registry's base URL */
    int registry_404 = a->status == 404 &&
                       (a->error_code == 404 || (a->error_code >= 40400 && a->error_code <= 40499));
    if (registry_404) {
        code = kind == KIND_SCHEMA_ID ? LEV_ERR_UNKNOWN_SCHEMA : LEV_ERR_NOT_FOUND;
        what = kind == KIND_SCHEMA_ID ? "no schema has this id" : "not found";
    } else if (a->status == 404) {
        code = LEV_ERR_REGISTRY;
        what = "not found; is the URL the registry's base URL?";
    } else if (a->status == 409) {
        code = LEV_ERR_RESOLVE;
        what = "the schema is incompatible with the subject's earlier versions";
    } else if (a->status == 422) {
        /* 42201: invalid schema; 42202 version, 42203 compatibility level... */
        code = a->error_code == 0 || a->error_code == 42201 || a->error_code == 422 ? LEV_ERR_SCHEMA
                                                                                    : LEV_ERR_ARG;
        what = code == LEV_ERR_SCHEMA ? "the registry refused the schema" : "invalid request";
    } else if (a->status == 401 || a->status == 403) {
        code = LEV_ERR_REGISTRY;
        what = a->status == 401 ? "unauthorized (check the registry's user and password)"
                                : "forbidden";
    } else {
        code = LEV_ERR_REGISTRY;
        what =
            a->status >= 300 && a->status < 400 ? "redirected (not followed)" : "unexpected answer";
    }
    if (code == LEV_ERR_REGISTRY)
        atomic_fetch_add(&reg->failures, 1);
    return lev_error_set(err, code, NULL, "%s %s: %s (%s)", method, path, msg ? msg : what, detail);
}

/* "/<prefix>/<escaped subject><suffix>" into a malloc'd string. */
static char *subject_path(lev_registry_t *reg, const char *prefix, const char *subject,
                          const char *suffix)
{
    pthread_mutex_lock(&reg->http_mu);
    char *esc = curl_easy_escape(reg->curl, subject, 0);
    pthread_mutex_unlock(&reg->http_mu);
    if (!esc)
        return NULL;
    size_t n = strlen(prefix) + strlen(esc) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", prefix, esc, suffix);
    curl_free(esc);
    return p;
}

/* {"schema": schema_json} as text. */
static char *schema_payload(const char *schema_json)
{
    json_t *doc = json_pack("{s:s}", "schema", schema_json);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return s;
}

/* An int member of an answer as int32; 0 when it is one. */
static int get_int32(const json_t *obj, const char *key, int32_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
        json_integer_value(v) > INT32_MAX)
        return -1;
    *out = (int32_t)json_integer_value(v);
    return 0;
}

/* Fails a 2xx answer that lacks what it should hold. */
static int bad_answer(lev_registry_t *reg, const char *method, const char *path, const char *what,
                      lev_error_t *err)
{
    atomic_fetch_add(&reg->failures, 1);
    return lev_error_set(err, LEV_ERR_REGISTRY, NULL, "%s %s: the answer holds no %s", method, path,
                         what);
}

/* Whether a schemaType member says something other than Avro; its name in
 * *type. */
static int not_avro(const json_t *answer, const char **type)
{
    json_t *t = json_object_get(answer, "schemaType");
    if (!t || json_is_null(t))
        return 0;
    *type = json_string_value(t);
    if (!*type)
        *type = "non-Avro";
    return strcasecmp(*type, "AVRO") != 0;
}

/* ======================================================================
 * The calls
 * ====================================================================== */

/* The Avro schema text of an answer about id `id` (borrowed from the
 * answer): LEV_ERR_UNKNOWN_SCHEMA when it names another schema type or
 * holds no schema. */
static int avro_schema_of(const answer_t *a, const char *method, const char *path, int32_t id,
                          const char **text, lev_error_t *err)
{
    const char *type = NULL;
    if (not_avro(a->json, &type))
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "%s %s: schema id %" PRId32 " is a %s schema, not Avro", method, path,
                             id, type);
    if (!(*text = json_string_value(json_object_get(a->json, "schema"))))
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "%s %s: the registry's answer for id %" PRId32 " holds no schema",
                             method, path, id);
    return 0;
}

int lev_registry_schema_by_id(lev_registry_t *reg, int32_t id, char **schema_json, lev_error_t *err)
{
    if (!reg || !schema_json)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry or output");
    *schema_json = NULL;
    char path[48];
    snprintf(path, sizeof path, "/schemas/ids/%" PRId32, id);
    if (id < 0)
        return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                             "GET %s: schema ids are not negative", path);
    int nomem = 0, known_missing;
    pthread_mutex_lock(&reg->cache_mu);
    char *hit = cache_get(reg, id, &nomem);
    known_missing = !hit && !nomem && neg_has(reg, id, lev_mono_ms());
    pthread_mutex_unlock(&reg->cache_mu);
    if (nomem)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if (hit || known_missing) {
        atomic_fetch_add(&reg->hits, 1);
        if (known_missing)
            return lev_error_set(err, LEV_ERR_UNKNOWN_SCHEMA, NULL,
                                 "GET %s: no schema has this id (the registry said so less than "
                                 "%d s ago)",
                                 path, NEG_TTL_MS / 1000);
        *schema_json = hit;
        return 0;
    }
    atomic_fetch_add(&reg->misses, 1);
    answer_t a;
    int rc = request(reg, "GET", path, NULL, &a, err);
    if (rc)
        return rc;
    if (a.status < 200 || a.status >= 300) {
        rc = answer_error(reg, KIND_SCHEMA_ID, "GET", path, &a, err);
        if (rc == LEV_ERR_UNKNOWN_SCHEMA && (a.error_code == 40403 || a.error_code == 404))
            neg_put(reg, id);
        answer_clear(&a);
        return rc;
    }
    const char *text = NULL;
    if ((rc = avro_schema_of(&a, "GET", path, id, &text, err)) != 0)
        ;
    else if (!(*schema_json = strdup(text)))
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    else
        cache_put(reg, id, text);
    answer_clear(&a);
    return rc;
}

int lev_registry_register(lev_registry_t *reg, const char *subject, const char *schema_json,
                          int32_t *id, lev_error_t *err)
{
    if (!reg || !subject || !*subject || !schema_json || !id)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry, subject, schema or id");
    char *path = subject_path(reg, "/subjects/", subject, "/versions");
    char *payload = schema_payload(schema_json);
    int rc = 0;
    answer_t a = {0};
    if (!path || !payload)
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    else if ((rc = request(reg, "POST", path, payload, &a, err)) != 0)
        ;
    else if (a.status < 200 || a.status >= 300)
        rc = answer_error(reg, KIND_SUBJECT, "POST", path, &a, err);
    else if (get_int32(a.json, "id", id) != 0)
        rc = bad_answer(reg, "POST", path, "id", err);
    else
        cache_put(reg, *id, schema_json);
    answer_clear(&a);
    free(path);
    free(payload);
    return rc;
}

int lev_registry_lookup(lev_registry_t *reg, const char *subject, const char *schema_json,
                        int32_t *id, int *version, lev_error_t *err)
{
    if (!reg || !subject || !*subject || !schema_json)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry, subject or schema");
    char *path = subject_path(reg, "/subjects/", subject, "");
    char *payload = schema_payload(schema_json);
    int rc = 0;
    int32_t got_id = 0, got_version = 0;
    answer_t a = {0};
    if (!path || !payload)
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    else if ((rc = request(reg, "POST", path, payload, &a, err)) != 0)
        ;
    else if (a.status < 200 || a.status >= 300)
        rc = answer_error(reg, KIND_SUBJECT, "POST", path, &a, err);
    else if (get_int32(a.json, "id", &got_id) != 0)
        rc = bad_answer(reg, "POST", path, "id", err);
    else if (get_int32(a.json, "version", &got_version) != 0)
        rc = bad_answer(reg, "POST", path, "version", err);
    if (rc == 0) {
        if (id)
            *id = got_id;
        if (version)
            *version = (int)got_version;
        cache_put(reg, got_id, schema_json);
    }
    answer_clear(&a);
    free(path);
    free(payload);
    return rc;
}

int lev_registry_latest(lev_registry_t *reg, const char *subject, char **schema_json, int32_t *id,
                        int *version, lev_error_t *err)
{
    if (schema_json)
        *schema_json = NULL;
    if (!reg || !subject || !*subject)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry or subject");
    char *path = subject_path(reg, "/subjects/", subject, "/versions/latest");
    if (!path)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    answer_t a = {0};
    int32_t got_id = 0, got_version = 0;
    const char *text = NULL;
    int rc = request(reg, "GET", path, NULL, &a, err);
    if (rc)
        ;
    else if (a.status < 200 || a.status >= 300)
        rc = answer_error(reg, KIND_SUBJECT, "GET", path, &a, err);
    else if (get_int32(a.json, "id", &got_id) != 0)
        rc = bad_answer(reg, "GET", path, "id", err);
    else if (get_int32(a.json, "version", &got_version) != 0)
        rc = bad_answer(reg, "GET", path, "version", err);
    else if ((rc = avro_schema_of(&a, "GET", path, got_id, &text, err)) != 0)
        ;
    else if (schema_json && !(*schema_json = strdup(text)))
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    if (rc == 0) {
        cache_put(reg, got_id, text);
        if (id)
            *id = got_id;
        if (version)
            *version = (int)got_version;
    }
    answer_clear(&a);
    free(path);
    return rc;
}

/* The registry's reasons ("messages": a list of texts, or one text) joined
 * by "; " into a malloc'd string ("" when it gave none). */
static char *join_reasons(const json_t *answer)
{
    json_t *m = json_object_get(answer, "messages");
    if (json_is_string(m))
        return strdup(json_string_value(m));
    size_t n = 1, i;
    json_t *item;
    json_array_foreach(m, i, item)
    {
        const char *s = json_is_string(item) ? json_string_value(item) : NULL;
        n += s ? strlen(s) + 2 : 0;
    }
    char *out = malloc(n);
    if (!out)
        return NULL;
    out[0] = '\0';
    size_t len = 0;
    json_array_foreach(m, i, item)
    {
        const char *s = json_is_string(item) ? json_string_value(item) : NULL;
        if (!s)
            continue;
        len += (size_t)snprintf(out + len, n - len, "%s%s", len ? "; " : "", s);
    }
    return out;
}

int lev_registry_check(lev_registry_t *reg, const char *subject, const char *schema_json,
                       int *compatible, char **reasons, lev_error_t *err)
{
    if (reasons)
        *reasons = NULL;
    if (!reg || !subject || !*subject || !schema_json || !compatible)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry, subject, schema or output");
    char *path =
        subject_path(reg, "/compatibility/subjects/", subject, "/versions/latest?verbose=true");
    char *payload = schema_payload(schema_json);
    int rc = 0;
    answer_t a = {0};
    if (!path || !payload) {
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    } else if ((rc = request(reg, "POST", path, payload, &a, err)) != 0) {
        ;
    } else if (a.status == 404 && (a.error_code == 40401 || a.error_code == 40402)) {
        *compatible = 1; /* no subject or no version yet: anything goes */
    } else if (a.status < 200 || a.status >= 300) {
        rc = answer_error(reg, KIND_SUBJECT, "POST", path, &a, err);
    } else {
        json_t *v = json_object_get(a.json, "is_compatible");
        if (!json_is_boolean(v)) {
            rc = bad_answer(reg, "POST", path, "is_compatible", err);
        } else {
            *compatible = json_is_true(v);
            if (!*compatible && reasons && !(*reasons = join_reasons(a.json)))
                rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        }
    }
    answer_clear(&a);
    free(path);
    free(payload);
    return rc;
}

int lev_registry_set_compatibility(lev_registry_t *reg, const char *subject, const char *level,
                                   lev_error_t *err)
{
    if (!reg || !level || !*level || (subject && !*subject))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry or level");
    char *path = subject ? subject_path(reg, "/config/", subject, "") : strdup("/config");
    json_t *doc = json_pack("{s:s}", "compatibility", level);
    char *payload = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    int rc = 0;
    answer_t a = {0};
    if (!path || !payload)
        rc = lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    else if ((rc = request(reg, "PUT", path, payload, &a, err)) != 0)
        ;
    else if (a.status < 200 || a.status >= 300)
        rc = answer_error(reg, KIND_SUBJECT, "PUT", path, &a, err);
    answer_clear(&a);
    free(path);
    free(payload);
    return rc;
}

int lev_registry_get_compatibility(lev_registry_t *reg, const char *subject, char *out, size_t size,
                                   lev_error_t *err)
{
    if (!reg || !out || size == 0 || (subject && !*subject))
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry or output");
    out[0] = '\0';
    /* a subject without a level of its own has the default's */
    char *path = subject ? subject_path(reg, "/config/", subject, "?defaultToGlobal=true")
                         : strdup("/config");
    if (!path)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    answer_t a = {0};
    int rc = request(reg, "GET", path, NULL, &a, err);
    if (rc == 0) {
        const char *level = a.status >= 200 && a.status < 300
                                ? json_string_value(json_object_get(a.json, "compatibilityLevel"))
                                : NULL;
        if (!level && a.status >= 200 && a.status < 300)
            level = json_string_value(json_object_get(a.json, "compatibility"));
        if (a.status < 200 || a.status >= 300)
            rc = answer_error(reg, KIND_SUBJECT, "GET", path, &a, err);
        else if (!level)
            rc = bad_answer(reg, "GET", path, "compatibility level", err);
        else if (strlen(level) >= size)
            rc = lev_error_set(err, LEV_ERR_ARG, NULL, "GET %s: the level %s does not fit in %zu",
                               path, level, size);
        else
            memcpy(out, level, strlen(level) + 1);
    }
    answer_clear(&a);
    free(path);
    return rc;
}

/* ======================================================================
 * Lookups by id and registrations on the registry's own thread
 * ====================================================================== */

/* The entry of the lookup of `id` (subject NULL) or of the registration of
 * `schema` under `subject`. */
static struct pending_s *pending_find(lev_registry_t *reg, int32_t id, const char *subject,
                                      const char *schema)
{
    for (size_t i = 0; i < reg->npend; i++) {
        struct pending_s *p = &reg->pend[i];
        if (subject
                ? p->subject && strcmp(p->subject, subject) == 0 && strcmp(p->schema, schema) == 0
                : !p->subject && p->id == id)
            return p;
    }
    return NULL;
}

static void pending_remove(lev_registry_t *reg, struct pending_s *p)
{
    free(p->subject);
    free(p->schema);
    *p = reg->pend[--reg->npend];
}

static void *async_main(void *arg)
{
    lev_registry_t *reg = arg;
    pthread_mutex_lock(&reg->async_mu);
    while (!reg->async_stop) {
        struct pending_s *p = NULL;
        for (size_t i = 0; i < reg->npend && !p; i++)
            if (reg->pend[i].state == PENDING_QUEUED)
                p = &reg->pend[i];
        if (!p) {
            pthread_cond_wait(&reg->async_cv, &reg->async_mu);
            continue;
        }
        /* an entry being asked is never removed (callers take only done
         * ones), so its strings stay while the lock is let go */
        int32_t id = p->id;
        const char *subject = p->subject, *schema = p->schema;
        p->state = PENDING_ASKING;
        pthread_mutex_unlock(&reg->async_mu);
        lev_error_t e;
        lev_error_clear(&e);
        int rc;
        if (subject) {
            rc = lev_registry_register(reg, subject, schema, &id, &e);
        } else {
            char *text = NULL;
            rc = lev_registry_schema_by_id(reg, id, &text, &e); /* cached when found */
            free(text);
        }
        pthread_mutex_lock(&reg->async_mu);
        if ((p = pending_find(reg, id, subject, schema)) != NULL) {
            p->state = PENDING_DONE;
            p->rc = rc;
            p->id = id;
            snprintf(p->text, sizeof p->text, "%s", e.text);
        }
        pthread_cond_broadcast(&reg->async_cv);
    }
    pthread_mutex_unlock(&reg->async_mu);
    return NULL;
}

/* Finds the entry of a lookup of `id` (subject NULL) or of a registration
 * of `schema` under `subject`, queuing one for the registry's thread when
 * there is none, and then waits at most wait_ms for it to be done. A call
 * for a request already under way does not wait: each request costs its
 * callers one wait, however many records ask again meanwhile. Done: the
 * request's result (0, *got the id; or its error), and the entry is
 * removed, so that result goes to one caller. Else LEV_ERR_TIMEOUT, `what`
 * naming it, and the request goes on. */
static int pending_wait(lev_registry_t *reg, int32_t id, const char *subject, const char *schema,
                        int wait_ms, const char *what, int32_t *got, lev_error_t *err)
{
    pthread_mutex_lock(&reg->async_mu);
    struct pending_s *p = pending_find(reg, id, subject, schema);
    if (p && p->state != PENDING_DONE)
        wait_ms = 0; /* asked before: someone waited for it already */
    if (!p) {
        if (!reg->async_running) {
            if (pthread_create(&reg->async_thread, NULL, async_main, reg) != 0) {
                pthread_mutex_unlock(&reg->async_mu);
                return lev_error_set(err, LEV_ERR_NOMEM, NULL,
                                     "cannot start the registry's request thread");
            }
            reg->async_running = 1;
        }
        if (reg->npend == PENDING_MAX) {
            pthread_mutex_unlock(&reg->async_mu);
            return lev_error_set(err, LEV_ERR_TIMEOUT, NULL,
                                 "%s: %d requests already wait for the registry", what,
                                 PENDING_MAX);
        }
        if (!reg->pend && !(reg->pend = calloc(PENDING_MAX, sizeof *reg->pend))) {
            pthread_mutex_unlock(&reg->async_mu);
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        }
        p = &reg->pend[reg->npend];
        memset(p, 0, sizeof *p);
        p->id = id;
        if (subject && (!(p->subject = strdup(subject)) || !(p->schema = strdup(schema)))) {
            free(p->subject);
            pthread_mutex_unlock(&reg->async_mu);
            return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
        }
        p->state = PENDING_QUEUED;
        reg->npend++;
        pthread_cond_broadcast(&reg->async_cv);
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while ((p = pending_find(reg, id, subject, schema)) != NULL && p->state != PENDING_DONE &&
           pthread_cond_timedwait(&reg->async_cv, &reg->async_mu, &until) == 0)
        ;
    if (!p || p->state != PENDING_DONE) {
        pthread_mutex_unlock(&reg->async_mu);
        return lev_error_set(err, LEV_ERR_TIMEOUT, NULL, "%s: the registry has not answered yet",
                             what);
    }
    int rc = p->rc;
    if (rc)
        lev_error_set(err, rc, NULL, "%s", p->text);
    else if (got)
        *got = p->id;
    pending_remove(reg, p);
    pthread_mutex_unlock(&reg->async_mu);
    return rc;
}

int lev_registry_schema_by_id_wait(lev_registry_t *reg, int32_t id, int wait_ms, char **schema_json,
                                   lev_error_t *err)
{
    if (!reg || !schema_json || wait_ms < 0)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry or output");
    *schema_json = NULL;
    int nomem = 0;
    pthread_mutex_lock(&reg->cache_mu);
    char *hit = cache_get(reg, id, &nomem);
    pthread_mutex_unlock(&reg->cache_mu);
    if (hit) {
        atomic_fetch_add(&reg->hits, 1);
        *schema_json = hit;
        return 0;
    }
    if (nomem)
        return lev_error_set(err, LEV_ERR_NOMEM, NULL, "out of memory");
    char what[48];
    snprintf(what, sizeof what, "schema id %" PRId32, id);
    int rc = pending_wait(reg, id, NULL, NULL, wait_ms, what, NULL, err);
    if (rc)
        return rc;
    /* found: in the cache now (unless a cache of one evicted it meanwhile) */
    return lev_registry_schema_by_id(reg, id, schema_json, err);
}

int lev_registry_register_wait(lev_registry_t *reg, const char *subject, const char *schema_json,
                               int wait_ms, int32_t *id, lev_error_t *err)
{
    if (!reg || !subject || !*subject || !schema_json || !id || wait_ms < 0)
        return lev_error_set(err, LEV_ERR_ARG, NULL, "missing registry, subject, schema or id");
    char what[300];
    snprintf(what, sizeof what, "subject %.256s", subject);
    return pending_wait(reg, -1, subject, schema_json, wait_ms, what, id, err);
}
