/*
 * The schema registry client against a real registry (Apicurio Registry's
 * Confluent-compatible API, LEV_SCHEMA_REGISTRY_URL, from the `registry`
 * fixture), plus small servers of the test's own for what a real registry
 * does not do on demand: nothing listening, a listener that never answers,
 * answers that are HTML, that hold no schema, server errors, a refusal of
 * credentials.
 *
 * Every subject and record name carries a token unique to this run, so
 * runs against a live registry do not see each other. Apicurio's ids are
 * not sequential and its default compatibility is NONE: the test reads the
 * ids it gets and sets the level of its own subjects only.
 */
#define _GNU_SOURCE /* strcasestr */
#include "check.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <libevents.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *registry_url;
static char token[96]; /* "<pid>_<hex>": unique to this run, an Avro name part */

/* ======================================================================
 * Helpers
 * ====================================================================== */

static void show(const char *what, const lev_error_t *err)
{
    char buf[800];
    fprintf(stderr, "  %s: %s: %s\n", what, lev_err_name(err->code),
            lev_error_format(err, buf, sizeof buf));
}

/* A client of the real registry (from the environment, as services make
 * it); NULL fails the case. */
static lev_registry_t *real_registry(void)
{
    if (!registry_url) {
        fprintf(stderr, "LEV_SCHEMA_REGISTRY_URL is not set (the `registry` fixture sets it)\n");
        return NULL;
    }
    lev_error_t err;
    lev_registry_t *reg = lev_registry_from_env(&err);
    if (!reg)
        show("lev_registry_from_env", &err);
    return reg;
}

/* "<prefix>-<token>" */
static void subject_name(const char *prefix, char *out, size_t size)
{
    snprintf(out, size, "it-registry-%s-%s-value", prefix, token);
}

/* A record schema R_<suffix>_<token> in namespace it.registry with fields
 * a:int and, when extra is set, a field named extra with a type and
 * perhaps a default. */
static void record_schema(const char *suffix, const char *extra, char *out, size_t size)
{
    snprintf(out, size,
             "{\"type\":\"record\",\"name\":\"R_%s_%s\",\"namespace\":\"it.registry\","
             "\"fields\":[{\"name\":\"a\",\"type\":\"int\"}%s%s]}",
             suffix, token, extra ? "," : "", extra ? extra : "");
}

static int64_t elapsed_since(int64_t t0)
{
    return lev_mono_ms() - t0;
}

/* Registers a schema of another type (JSON Schema) with a raw POST, as
 * another client would: its id, or -1. */
static int32_t register_json_schema(const char *subject)
{
    char url[512], body[512];
    snprintf(url, sizeof url, "%s/subjects/%s/versions", registry_url, subject);
    snprintf(body, sizeof body,
             "{\"schemaType\":\"JSON\",\"schema\":\"{\\\"$schema\\\":\\\"http://json-schema.org/"
             "draft-07/schema#\\\",\\\"title\\\":\\\"T_%s\\\",\\\"type\\\":\\\"object\\\"}\"}",
             token);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char answer[256] = "";
    FILE *f = fmemopen(answer, sizeof answer - 1, "w");
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    fclose(f);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *doc = json_loads(answer, 0, NULL);
    json_t *id = json_object_get(doc, "id");
    int32_t out = rc == CURLE_OK && status == 200 && json_is_integer(id)
                      ? (int32_t)json_integer_value(id)
                      : -1;
    if (out < 0)
        fprintf(stderr, "  JSON schema registration: curl %d, HTTP %ld, %s\n", (int)rc, status,
                answer);
    json_decref(doc);
    return out;
}

/* ======================================================================
 * A fake server: answers every request with one status and body, and
 * keeps the last request it read (or never answers: `silent`).
 * ====================================================================== */

typedef struct fake_s {
    int fd, port;
    pthread_t thread;
    atomic_int stop, requests, accepted;
    atomic_int hold;     /* while set, a request read waits for its answer */
    atomic_int answered; /* answers written */
    int silent;
    int status;
    const char *content_type, *body;
    pthread_mutex_t mu;
    char last[8192]; /* head and body of the last request */
} fake_t;

static void fake_serve(fake_t *f, int fd)
{
    char buf[8192];
    size_t len = 0;
    lev_test_http_read_request(fd, buf, sizeof buf, &len, NULL);
    pthread_mutex_lock(&f->mu);
    memcpy(f->last, buf, len + 1);
    pthread_mutex_unlock(&f->mu);
    atomic_fetch_add(&f->requests, 1);
    while (atomic_load(&f->hold) && !atomic_load(&f->stop))
        lev_test_sleep_ms(10);
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d Whatever\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      f->status, f->content_type, strlen(f->body));
    if (write(fd, head, (size_t)hl) < 0 || write(fd, f->body, strlen(f->body)) < 0)
        perror("fake write");
    atomic_fetch_add(&f->answered, 1);
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        int fd = accept(f->fd, NULL, NULL);
        if (fd < 0)
            continue;
        fake_serve(f, fd);
        close(fd);
    }
    return NULL;
}

/* A server on 127.0.0.1 answering `status` with body; a silent one
 * (status 0) listens and never accepts. */
static int fake_start(fake_t *f, int status, const char *content_type, const char *body)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->status = status;
    f->silent = status == 0;
    f->content_type = content_type;
    f->body = body;
    f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->fd, 16) != 0 ||
        getsockname(f->fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    f->port = ntohs(a.sin_port);
    if (f->silent)
        return 0;
    return pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(fake_t *f)
{
    atomic_store(&f->stop, 1);
    shutdown(f->fd, SHUT_RDWR);
    close(f->fd);
    if (!f->silent)
        pthread_join(f->thread, NULL);
    pthread_mutex_destroy(&f->mu);
}

/* The last request the fake read (a copy). */
static void fake_last(fake_t *f, char *out, size_t size)
{
    pthread_mutex_lock(&f->mu);
    snprintf(out, size, "%s", f->last);
    pthread_mutex_unlock(&f->mu);
}

/* A client of http://127.0.0.1:<port>, fast to give up. */
static lev_registry_t *fake_registry(int port, int timeout_ms, int retries)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    lev_registry_conf_t conf = {
        .url = url, .timeout_ms = timeout_ms, .retries = retries, .retry_backoff_ms = 50};
    lev_error_t err;
    lev_registry_t *reg = lev_registry_new(&conf, &err);
    if (!reg)
        show("lev_registry_new", &err);
    return reg;
}

/* ======================================================================
 * Against the real registry
 * ====================================================================== */

static void register_gives_an_id_the_same_again_and_under_another_subject(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char s1[256], s2[256], schema[512];
    subject_name("same-a", s1, sizeof s1);
    subject_name("same-b", s2, sizeof s2);
    record_schema("Same", NULL, schema, sizeof schema);
    lev_error_t err;
    int32_t id1 = -1, id2 = -1, id3 = -1;
    CHECK_INT(lev_registry_register(reg, s1, schema, &id1, &err), ==, 0);
    CHECK_INT(id1, >=, 0);
    CHECK_INT(lev_registry_register(reg, s1, schema, &id2, &err), ==, 0);
    CHECK_INT(id2, ==, id1);
    CHECK_INT(lev_registry_register(reg, s2, schema, &id3, &err), ==, 0);
    CHECK_INT(id3, ==, id1);
    /* the registry knows it by that id */
    int32_t lid = -1;
    int version = -1;
    CHECK_INT(lev_registry_lookup(reg, s2, schema, &lid, &version, &err), ==, 0);
    CHECK_INT(lid, ==, id1);
    CHECK_INT(version, ==, 1);
    lev_registry_destroy(reg);
}

static void schema_by_id_asks_once_then_answers_from_the_cache(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char subject[256], schema[512];
    subject_name("by-id", subject, sizeof subject);
    record_schema("ById", NULL, schema, sizeof schema);
    lev_error_t err;
    int32_t id = -1;
    REQUIRE(lev_registry_register(reg, subject, schema, &id, &err) == 0);
    lev_registry_destroy(reg); /* a new client: its cache is empty */
    REQUIRE((reg = real_registry()));

    char *text = NULL;
    CHECK_INT(lev_registry_schema_by_id(reg, id, &text, &err), ==, 0);
    REQUIRE(text);
    json_t *got = json_loads(text, 0, NULL), *want = json_loads(schema, 0, NULL);
    CHECK(got && want && json_equal(got, want));
    json_decref(got);
    json_decref(want);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1);
    CHECK_INT(st.cache_misses, ==, 1);
    CHECK_INT(st.cache_hits, ==, 0);

    char *again = NULL;
    CHECK_INT(lev_registry_schema_by_id(reg, id, &again, &err), ==, 0);
    CHECK_STR(again, text);
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1); /* no new request */
    CHECK_INT(st.cache_hits, ==, 1);
    CHECK_INT(st.failures, ==, 0);
    free(text);
    free(again);
    lev_registry_destroy(reg);
}

static void an_unknown_id_is_an_unknown_schema_and_is_remembered(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    const int32_t id = 2000000000 + (int32_t)(getpid() % 100000);
    char *text = NULL;
    lev_error_t err;
    CHECK_INT(lev_registry_schema_by_id(reg, id, &text, &err), ==, LEV_ERR_UNKNOWN_SCHEMA);
    CHECK(text == NULL);
    show("unknown id", &err);
    char want[64];
    snprintf(want, sizeof want, "GET /schemas/ids/%d: ", (int)id);
    CHECK(strncmp(err.text, want, strlen(want)) == 0);
    CHECK(strstr(err.text, "40403") != NULL);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1);
    CHECK_INT(st.failures, ==, 0); /* an answer, not a failure */
    /* asked again soon: not sent to the registry */
    CHECK_INT(lev_registry_schema_by_id(reg, id, &text, &err), ==, LEV_ERR_UNKNOWN_SCHEMA);
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1);
    lev_registry_destroy(reg);
}

static void an_id_of_a_json_schema_is_an_unknown_schema_naming_its_type(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char subject[256];
    subject_name("json", subject, sizeof subject);
    int32_t id = register_json_schema(subject);
    REQUIRE(id >= 0);
    char *text = NULL;
    lev_error_t err;
    CHECK_INT(lev_registry_schema_by_id(reg, id, &text, &err), ==, LEV_ERR_UNKNOWN_SCHEMA);
    CHECK(text == NULL);
    show("JSON schema", &err);
    char want[96];
    snprintf(want, sizeof want, "schema id %d is a JSON schema, not Avro", (int)id);
    CHECK(strstr(err.text, want) != NULL);
    lev_registry_destroy(reg);
}

static void a_malformed_schema_is_a_schema_error(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char subject[256];
    subject_name("malformed", subject, sizeof subject);
    lev_error_t err;
    int32_t id = -1;
    /* a record without fields; then not JSON at all */
    CHECK_INT(
        lev_registry_register(reg, subject, "{\"type\":\"record\",\"name\":\"X\"}", &id, &err), ==,
        LEV_ERR_SCHEMA);
    show("malformed", &err);
    CHECK(strstr(err.text, "POST /subjects/") == err.text);
    CHECK_INT(lev_registry_register(reg, subject, "{nope", &id, &err), ==, LEV_ERR_SCHEMA);
    CHECK_INT(id, ==, -1);
    lev_registry_destroy(reg);
}

static void backward_compatibility_refuses_an_incompatible_schema_and_takes_a_compatible_one(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char subject[256], v1[512], bad[512], v2[512];
    subject_name("compat", subject, sizeof subject);
    record_schema("Compat", NULL, v1, sizeof v1);
    record_schema("Compat", "{\"name\":\"b\",\"type\":\"string\"}", bad, sizeof bad);
    record_schema("Compat", "{\"name\":\"b\",\"type\":\"string\",\"default\":\"x\"}", v2,
                  sizeof v2);
    lev_error_t err;
    int32_t id1 = -1, id2 = -1, id = -1;
    REQUIRE(lev_registry_register(reg, subject, v1, &id1, &err) == 0);
    CHECK_INT(lev_registry_set_compatibility(reg, subject, "BACKWARD", &err), ==, 0);
    char level[32];
    CHECK_INT(lev_registry_get_compatibility(reg, subject, level, sizeof level, &err), ==, 0);
    CHECK_STR(level, "BACKWARD");

    /* a new field without a default: v1's records cannot be read */
    int compatible = -1;
    char *reasons = NULL;
    CHECK_INT(lev_registry_check(reg, subject, bad, &compatible, &reasons, &err), ==, 0);
    CHECK_INT(compatible, ==, 0);
    CHECK(reasons != NULL); /* Apicurio gives none: "" */
    fprintf(stderr, "  reasons: \"%s\"\n", reasons ? reasons : "(null)");
    free(reasons);
    CHECK_INT(lev_registry_register(reg, subject, bad, &id, &err), ==, LEV_ERR_RESOLVE);
    show("incompatible", &err);
    CHECK(strstr(err.text, "POST /subjects/") == err.text);
    CHECK(strstr(err.text, "HTTP 409") != NULL);
    CHECK(strcasestr(err.text, "incompatible") != NULL); /* the registry's reason */
    CHECK_INT(id, ==, -1);

    /* with a default it can: a new version with a new id */
    reasons = NULL;
    CHECK_INT(lev_registry_check(reg, subject, v2, &compatible, &reasons, &err), ==, 0);
    CHECK_INT(compatible, ==, 1);
    CHECK(reasons == NULL);
    CHECK_INT(lev_registry_register(reg, subject, v2, &id2, &err), ==, 0);
    CHECK_INT(id2, >=, 0);
    CHECK_INT(id2, !=, id1);

    /* latest: the newest version */
    char *text = NULL;
    int32_t lid = -1;
    int version = -1;
    CHECK_INT(lev_registry_latest(reg, subject, &text, &lid, &version, &err), ==, 0);
    CHECK_INT(lid, ==, id2);
    CHECK_INT(version, ==, 2);
    json_t *got = text ? json_loads(text, 0, NULL) : NULL, *want = json_loads(v2, 0, NULL);
    CHECK(got && want && json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(text);
    CHECK_INT(lev_registry_latest(reg, subject, NULL, NULL, NULL, &err), ==, 0);
    /* the first version is still found as version 1 */
    CHECK_INT(lev_registry_lookup(reg, subject, v1, &lid, &version, &err), ==, 0);
    CHECK_INT(lid, ==, id1);
    CHECK_INT(version, ==, 1);
    lev_registry_destroy(reg);
}

static void lookups_of_what_is_not_registered_are_not_found(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char subject[256], missing[256], known[512], other[512];
    subject_name("lookup", subject, sizeof subject);
    subject_name("never", missing, sizeof missing);
    record_schema("Lookup", NULL, known, sizeof known);
    record_schema("NeverRegistered", NULL, other, sizeof other);
    lev_error_t err;
    int32_t id = -1;
    REQUIRE(lev_registry_register(reg, subject, known, &id, &err) == 0);
    int32_t lid = -1;
    CHECK_INT(lev_registry_lookup(reg, subject, other, &lid, NULL, &err), ==, LEV_ERR_NOT_FOUND);
    show("schema not under subject", &err);
    CHECK_INT(lev_registry_lookup(reg, missing, known, &lid, NULL, &err), ==, LEV_ERR_NOT_FOUND);
    show("no such subject", &err);
    CHECK_INT(lid, ==, -1);
    CHECK_INT(lev_registry_latest(reg, missing, NULL, NULL, NULL, &err), ==, LEV_ERR_NOT_FOUND);
    /* a subject that does not exist takes anything */
    int compatible = -1;
    CHECK_INT(lev_registry_check(reg, missing, other, &compatible, NULL, &err), ==, 0);
    CHECK_INT(compatible, ==, 1);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.failures, ==, 0);
    lev_registry_destroy(reg);
}

static void compatibility_levels_are_read_and_set(void)
{
    lev_registry_t *reg = real_registry();
    REQUIRE(reg);
    char subject[256], schema[512];
    subject_name("levels", subject, sizeof subject);
    record_schema("Levels", NULL, schema, sizeof schema);
    lev_error_t err;
    int32_t id;
    REQUIRE(lev_registry_register(reg, subject, schema, &id, &err) == 0);
    char def[32] = "", level[32] = "";
    CHECK_INT(lev_registry_get_compatibility(reg, NULL, def, sizeof def, &err), ==, 0);
    CHECK(def[0] != '\0');
    fprintf(stderr, "  default level: %s\n", def);
    /* the default set to what it is: other tests share this registry */
    CHECK_INT(lev_registry_set_compatibility(reg, NULL, def, &err), ==, 0);
    CHECK_INT(lev_registry_set_compatibility(reg, subject, "FULL_TRANSITIVE", &err), ==, 0);
    CHECK_INT(lev_registry_get_compatibility(reg, subject, level, sizeof level, &err), ==, 0);
    CHECK_STR(level, "FULL_TRANSITIVE");
    CHECK_INT(lev_registry_get_compatibility(reg, subject, level, 4, &err), ==, LEV_ERR_ARG);
    CHECK_INT(lev_registry_set_compatibility(reg, subject, "SIDEWAYS", &err), ==, LEV_ERR_ARG);
    show("bad level", &err);
    CHECK_INT(lev_registry_set_compatibility(reg, subject, "NONE", &err), ==, 0);
    CHECK_INT(lev_registry_get_compatibility(reg, subject, level, sizeof level, &err), ==, 0);
    CHECK_STR(level, "NONE");
    lev_registry_destroy(reg);
}

/* ======================================================================
 * Against servers of the test's own
 * ====================================================================== */

static void nothing_listening_is_a_registry_failure_at_once(void)
{
    int fd;
    int port = lev_test_refusing_port(&fd);
    REQUIRE(port > 0);
    lev_registry_t *reg = fake_registry(port, 2000, 0); /* 2 retries, 50 then 100 ms */
    REQUIRE(reg);
    char *text = NULL;
    lev_error_t err;
    int64_t t0 = lev_mono_ms();
    CHECK_INT(lev_registry_schema_by_id(reg, 7, &text, &err), ==, LEV_ERR_REGISTRY);
    int64_t ms = elapsed_since(t0);
    show("nothing listening", &err);
    fprintf(stderr, "  after %lld ms\n", (long long)ms);
    CHECK_INT(ms, <, 2000);
    CHECK(strncmp(err.text, "GET /schemas/ids/7: ", 20) == 0);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 3);
    CHECK_INT(st.failures, ==, 1);
    /* a failure is not remembered as an unknown id */
    CHECK_INT(lev_registry_schema_by_id(reg, 7, &text, &err), ==, LEV_ERR_REGISTRY);
    lev_registry_destroy(reg);
    close(fd);
}

static void a_registry_that_never_answers_is_a_registry_failure_within_the_timeouts(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 0, NULL, NULL) == 0);
    lev_registry_t *reg = fake_registry(f.port, 300, 1);
    REQUIRE(reg);
    char *text = NULL;
    lev_error_t err;
    int64_t t0 = lev_mono_ms();
    CHECK_INT(lev_registry_schema_by_id(reg, 7, &text, &err), ==, LEV_ERR_REGISTRY);
    int64_t ms = elapsed_since(t0);
    show("silent", &err);
    fprintf(stderr, "  after %lld ms\n", (long long)ms);
    CHECK_INT(ms, >=, 500); /* two tries of 300 ms and 50 ms between */
    CHECK_INT(ms, <, 5000);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 2);
    CHECK_INT(st.failures, ==, 1);
    lev_registry_destroy(reg);
    fake_stop(&f);
}

/* A lookup that may not block: it gives up waiting, the request goes on
 * on the registry's thread, and a later call gets what it found. */
static void a_waiting_lookup_returns_in_time_and_its_answer_comes_later(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 0, NULL, NULL) == 0); /* never answers */
    lev_registry_t *reg = fake_registry(f.port, 400, -1);
    REQUIRE(reg);
    char *text = NULL;
    lev_error_t err;
    int64_t t0 = lev_mono_ms();
    CHECK_INT(lev_registry_schema_by_id_wait(reg, 7, 50, &text, &err), ==, LEV_ERR_TIMEOUT);
    int64_t ms = elapsed_since(t0);
    show("waiting", &err);
    CHECK_INT(ms, <, 300); /* not the 400 ms the request takes */
    CHECK(strstr(err.text, "not answered yet") != NULL);
    /* the same id again while it is asked: no second request, and no
     * second wait (records asking again cost the loop nothing) */
    t0 = lev_mono_ms();
    CHECK_INT(lev_registry_schema_by_id_wait(reg, 7, 250, &text, &err), ==, LEV_ERR_TIMEOUT);
    CHECK_INT(elapsed_since(t0), <, 100);
    /* then the request's own end: its failure, handed to one caller */
    int rc = LEV_ERR_TIMEOUT;
    for (int i = 0; i < 100 && rc == LEV_ERR_TIMEOUT; i++)
        if ((rc = lev_registry_schema_by_id_wait(reg, 7, 50, &text, &err)) == LEV_ERR_TIMEOUT)
            lev_test_sleep_ms(50); /* under way: the call did not wait */
    CHECK_INT(rc, ==, LEV_ERR_REGISTRY);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1);
    /* destroying a client whose thread waits on a silent registry is prompt */
    CHECK_INT(lev_registry_schema_by_id_wait(reg, 8, 0, &text, &err), ==, LEV_ERR_TIMEOUT);
    t0 = lev_mono_ms();
    lev_registry_destroy(reg);
    CHECK_INT(elapsed_since(t0), <, 1000);
    fake_stop(&f);

    /* against the real registry: found within the wait, then a cache hit */
    REQUIRE((reg = real_registry()));
    char subject[256], schema[512];
    subject_name("wait", subject, sizeof subject);
    record_schema("Wait", NULL, schema, sizeof schema);
    int32_t id = -1;
    REQUIRE(lev_registry_register(reg, subject, schema, &id, &err) == 0);
    lev_registry_destroy(reg);
    REQUIRE((reg = real_registry()));
    CHECK_INT(lev_registry_schema_by_id_wait(reg, id, 5000, &text, &err), ==, 0);
    REQUIRE(text);
    free(text);
    text = NULL;
    CHECK_INT(lev_registry_schema_by_id_wait(reg, id, 0, &text, &err), ==, 0);
    free(text);
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1);
    lev_registry_destroy(reg);
}

/* A registration made on the registry's thread: the caller waits at most
 * its wait, asking again neither sends a second request nor blocks, and
 * the answer (an id, or the failure) comes to a later call. */
static void a_waiting_registration_returns_in_time_and_its_id_comes_later(void)
{
    char subject[256], schema[512];
    subject_name("regwait", subject, sizeof subject);
    record_schema("RegWait", NULL, schema, sizeof schema);
    fake_t f;
    REQUIRE(fake_start(&f, 0, NULL, NULL) == 0); /* never answers */
    lev_registry_t *reg = fake_registry(f.port, 400, -1);
    REQUIRE(reg);
    lev_error_t err;
    int32_t id = -1;
    int64_t t0 = lev_mono_ms();
    CHECK_INT(lev_registry_register_wait(reg, subject, schema, 50, &id, &err), ==, LEV_ERR_TIMEOUT);
    CHECK_INT(elapsed_since(t0), <, 300); /* not the 400 ms the request takes */
    show("waiting", &err);
    CHECK(strstr(err.text, "not answered yet") != NULL && strstr(err.text, subject) != NULL);
    CHECK_INT(lev_registry_register_wait(reg, subject, schema, 0, &id, &err), ==, LEV_ERR_TIMEOUT);
    int rc = LEV_ERR_TIMEOUT;
    for (int i = 0; i < 100 && rc == LEV_ERR_TIMEOUT; i++)
        if ((rc = lev_registry_register_wait(reg, subject, schema, 50, &id, &err)) ==
            LEV_ERR_TIMEOUT)
            lev_test_sleep_ms(50);
    CHECK_INT(rc, ==, LEV_ERR_REGISTRY); /* the request's own failure */
    CHECK_INT(id, ==, -1);
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.requests, ==, 1);
    /* a lookup of an id and a registration wait side by side */
    char *text = NULL;
    CHECK_INT(lev_registry_schema_by_id_wait(reg, 9, 0, &text, &err), ==, LEV_ERR_TIMEOUT);
    CHECK_INT(lev_registry_register_wait(reg, subject, schema, 0, &id, &err), ==, LEV_ERR_TIMEOUT);
    t0 = lev_mono_ms();
    lev_registry_destroy(reg); /* prompt, with both still asked */
    CHECK_INT(elapsed_since(t0), <, 1000);
    fake_stop(&f);

    /* a codec that may not block: the same, through lev_codec_register */
    REQUIRE(fake_start(&f, 0, NULL, NULL) == 0);
    REQUIRE((reg = fake_registry(f.port, 2000, 2)));
    lev_schemas_t *set = lev_schemas_new();
    const lev_schema_t *s = NULL;
    REQUIRE(set && lev_schemas_add(set, schema, strlen(schema), NULL, 0, &s, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    REQUIRE(codec);
    lev_codec_set_registry(codec, set, reg);
    lev_codec_set_registry_wait(codec, 100);
    t0 = lev_mono_ms();
    CHECK_INT(lev_codec_register(codec, "regwait-topic", s, &err), ==, LEV_ERR_REGISTRY);
    CHECK_INT(elapsed_since(t0), <, 1000); /* not the 6 s of three tries */
    CHECK(strstr(err.text, "not answered yet") != NULL);
    CHECK_INT(lev_codec_schema_id(codec, s), ==, -1);
    lev_codec_destroy(codec);
    lev_registry_destroy(reg);
    fake_stop(&f);

    /* against the real registry: the id, the same lev_registry_register gives */
    REQUIRE((reg = real_registry()));
    rc = LEV_ERR_TIMEOUT;
    for (int i = 0; i < 200 && rc == LEV_ERR_TIMEOUT; i++)
        if ((rc = lev_registry_register_wait(reg, subject, schema, 50, &id, &err)) ==
            LEV_ERR_TIMEOUT)
            lev_test_sleep_ms(50);
    CHECK_INT(rc, ==, 0);
    int32_t again = -1;
    CHECK_INT(lev_registry_register(reg, subject, schema, &again, &err), ==, 0);
    CHECK(id >= 0 && id == again);
    lev_registry_destroy(reg);
    lev_schemas_destroy(set);
}

/* A codec that may not block on the registry: an unseen id fails at once
 * while the registry hangs, and ids it knows keep decoding. */
static void a_codec_that_may_not_block_keeps_decoding_known_ids(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 0, NULL, NULL) == 0);
    lev_registry_t *reg = fake_registry(f.port, 2000, 2);
    REQUIRE(reg);
    lev_schemas_t *set = lev_schemas_new();
    char schema[512];
    record_schema("Codec", NULL, schema, sizeof schema);
    const lev_schema_t *s = NULL;
    lev_error_t err;
    REQUIRE(set && lev_schemas_add(set, schema, strlen(schema), NULL, 0, &s, &err) == 0);
    lev_codec_t *codec = lev_codec_new(set, NULL);
    REQUIRE(codec);
    lev_codec_set_registry(codec, set, reg);
    lev_codec_set_registry_wait(codec, 100);
    REQUIRE(lev_codec_bind_id(codec, s, 41) == 0);
    const uint8_t known[] = {0, 0, 0, 0, 41, 0x02}, unseen[] = {0, 0, 0, 0, 42, 0x02};
    const lev_schema_t *w = NULL;
    int64_t t0 = lev_mono_ms();
    CHECK_INT(lev_codec_writer(codec, unseen, sizeof unseen, &w, NULL, &err), ==, LEV_ERR_REGISTRY);
    CHECK_INT(elapsed_since(t0), <, 1000); /* not the 6 s of three tries */
    t0 = lev_mono_ms();
    for (int i = 0; i < 1000; i++) {
        avro_value_t v;
        CHECK_INT(lev_codec_decode(codec, known, sizeof known, NULL, &v, NULL, &err), ==, 0);
        avro_value_decref(&v);
    }
    CHECK_INT(elapsed_since(t0), <, 1000);
    CHECK_INT(lev_codec_writer(codec, unseen, sizeof unseen, &w, NULL, &err), ==, LEV_ERR_REGISTRY);
    lev_codec_destroy(codec);
    lev_registry_destroy(reg);
    lev_schemas_destroy(set);
    fake_stop(&f);
}

static void an_html_answer_is_a_registry_failure(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 200, "text/html", "<html><body>proxy</body></html>") == 0);
    lev_registry_t *reg = fake_registry(f.port, 2000, 1);
    REQUIRE(reg);
    char *text = NULL;
    lev_error_t err;
    CHECK_INT(lev_registry_schema_by_id(reg, 7, &text, &err), ==, LEV_ERR_REGISTRY);
    show("HTML", &err);
    CHECK(strstr(err.text, "not JSON") != NULL);
    CHECK_INT(atomic_load(&f.requests), ==, 2); /* tried again: a proxy may pass */
    lev_registry_destroy(reg);
    fake_stop(&f);
}

static void an_answer_without_a_schema_is_an_unknown_schema(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 200, "application/json", "{\"foo\":1}") == 0);
    lev_registry_t *reg = fake_registry(f.port, 2000, 1);
    REQUIRE(reg);
    char *text = NULL;
    lev_error_t err;
    CHECK_INT(lev_registry_schema_by_id(reg, 7, &text, &err), ==, LEV_ERR_UNKNOWN_SCHEMA);
    show("no schema", &err);
    CHECK(strstr(err.text, "the registry's answer for id 7 holds no schema") != NULL);
    CHECK_INT(atomic_load(&f.requests), ==, 1);
    lev_registry_destroy(reg);
    fake_stop(&f);
}

static void server_errors_are_tried_again_then_reported_with_the_registrys_message(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 503, "application/json",
                       "{\"error_code\":50302,\"message\":\"store unavailable\"}") == 0);
    lev_registry_t *reg = fake_registry(f.port, 2000, 2);
    REQUIRE(reg);
    lev_error_t err;
    int32_t id = -1;
    CHECK_INT(lev_registry_register(reg, "orders-value", "\"int\"", &id, &err), ==,
              LEV_ERR_REGISTRY);
    show("503", &err);
    CHECK(strstr(err.text, "POST /subjects/orders-value/versions: ") == err.text);
    CHECK(strstr(err.text, "store unavailable") != NULL);
    CHECK_INT(atomic_load(&f.requests), ==, 3);
    lev_registry_destroy(reg);
    fake_stop(&f);
}

static void requests_are_json_with_the_subject_escaped(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 200, "application/vnd.schemaregistry.v1+json", "{\"id\":42}") == 0);
    lev_registry_t *reg = fake_registry(f.port, 2000, 0);
    REQUIRE(reg);
    lev_error_t err;
    int32_t id = -1;
    CHECK_INT(lev_registry_register(reg, "a b/c..", "\"int\"", &id, &err), ==, 0);
    CHECK_INT(id, ==, 42);
    char req[8192];
    fake_last(&f, req, sizeof req);
    CHECK(strncmp(req, "POST /subjects/a%20b%2Fc../versions HTTP/1.1\r\n", 46) == 0);
    CHECK(strcasestr(req, "\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n") != NULL);
    CHECK(strcasestr(req, "\r\nAccept: application/vnd.schemaregistry.v1+json") != NULL);
    CHECK(strstr(req, "\r\n\r\n{\"schema\":\"\\\"int\\\"\"}") != NULL);
    /* the registered schema is cached under its id */
    char *text = NULL;
    CHECK_INT(lev_registry_schema_by_id(reg, 42, &text, &err), ==, 0);
    CHECK_STR(text, "\"int\"");
    free(text);
    CHECK_INT(atomic_load(&f.requests), ==, 1);
    lev_registry_destroy(reg);
    fake_stop(&f);
}

static void credentials_are_sent_but_never_in_error_texts(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 401, "application/json",
                       "{\"error_code\":40101,\"message\":\"Unauthorized\"}") == 0);
    char url[160];
    snprintf(url, sizeof url, "http://alice:s3cr3t-pw@127.0.0.1:%d", f.port);
    lev_registry_conf_t conf = {.url = url, .timeout_ms = 2000, .retry_backoff_ms = 50};
    lev_error_t err;
    lev_registry_t *reg = lev_registry_new(&conf, &err);
    REQUIRE(reg);
    CHECK(strstr(lev_registry_url(reg), "s3cr3t") == NULL);
    CHECK(strstr(lev_registry_url(reg), "alice") == NULL);
    char *text = NULL;
    CHECK_INT(lev_registry_schema_by_id(reg, 7, &text, &err), ==, LEV_ERR_REGISTRY);
    show("401", &err);
    CHECK(strstr(err.text, "s3cr3t") == NULL && strstr(err.where, "s3cr3t") == NULL);
    CHECK_INT(atomic_load(&f.requests), ==, 1); /* not worth another try */
    char req[8192];
    fake_last(&f, req, sizeof req);
    CHECK(strstr(req, "\r\nAuthorization: Basic YWxpY2U6czNjcjN0LXB3\r\n") != NULL);
    CHECK(strstr(req, "GET /schemas/ids/7 ") == req);
    int32_t id;
    CHECK_INT(lev_registry_register(reg, "s", "\"int\"", &id, &err), ==, LEV_ERR_REGISTRY);
    CHECK(strstr(err.text, "s3cr3t") == NULL);
    lev_registry_destroy(reg);

    /* the same with nothing listening */
    int fd;
    int port = lev_test_refusing_port(&fd);
    REQUIRE(port > 0);
    snprintf(url, sizeof url, "http://alice:s3cr3t-pw@127.0.0.1:%d/apis/ccompat/v7", port);
    conf.retries = -1;
    REQUIRE((reg = lev_registry_new(&conf, &err)));
    CHECK_INT(lev_registry_lookup(reg, "s", "\"int\"", &id, NULL, &err), ==, LEV_ERR_REGISTRY);
    show("refused", &err);
    CHECK(strstr(err.text, "s3cr3t") == NULL);
    lev_registry_destroy(reg);
    close(fd);

    /* a password from a file, through the environment */
    char path[] = "/tmp/it-registry-pw-XXXXXX";
    int pfd = mkstemp(path);
    REQUIRE(pfd >= 0);
    REQUIRE(write(pfd, "hunter2\n", 8) == 8);
    close(pfd);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", registry_url ? registry_url : "");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", f.port);
    setenv("LEV_SCHEMA_REGISTRY_URL", url, 1);
    setenv("LEV_SCHEMA_REGISTRY_USER", "svc", 1);
    setenv("LEV_SCHEMA_REGISTRY_PASSWORD_FILE", path, 1);
    reg = lev_registry_from_env(&err);
    if (saved[0])
        setenv("LEV_SCHEMA_REGISTRY_URL", saved, 1);
    else
        unsetenv("LEV_SCHEMA_REGISTRY_URL");
    unsetenv("LEV_SCHEMA_REGISTRY_USER");
    unsetenv("LEV_SCHEMA_REGISTRY_PASSWORD_FILE");
    unlink(path);
    REQUIRE(reg);
    CHECK_INT(lev_registry_schema_by_id(reg, 8, &text, &err), ==, LEV_ERR_REGISTRY);
    CHECK(strstr(err.text, "hunter2") == NULL);
    fake_last(&f, req, sizeof req);
    CHECK(strstr(req, "\r\nAuthorization: Basic c3ZjOmh1bnRlcjI=\r\n") != NULL);
    lev_registry_destroy(reg);
    fake_stop(&f);
}

static void the_cache_keeps_the_most_recently_used_ids(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 200, "application/json", "{\"schema\":\"\\\"int\\\"\"}") == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", f.port);
    lev_registry_conf_t conf = {.url = url, .timeout_ms = 2000, .cache_size = 2};
    lev_error_t err;
    lev_registry_t *reg = lev_registry_new(&conf, &err);
    REQUIRE(reg);
    /* 1 2 1 3: 3 pushes out 2, the least recently used; then 1 is a hit */
    const int32_t order[] = {1, 2, 1, 3, 1, 2};
    const int hit[] = {0, 0, 1, 0, 1, 0};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        lev_registry_stats_t before, after;
        lev_registry_stats(reg, &before);
        char *text = NULL;
        CHECK_INT(lev_registry_schema_by_id(reg, order[i], &text, &err), ==, 0);
        CHECK_STR(text, "\"int\"");
        free(text);
        lev_registry_stats(reg, &after);
        CHECK_INT(after.cache_hits - before.cache_hits, ==, hit[i]);
        CHECK_INT(after.requests - before.requests, ==, !hit[i]);
    }
    lev_registry_destroy(reg);
    fake_stop(&f);
}

typedef struct hammer_s {
    lev_registry_t *reg;
    int base, failed;
    pthread_t thread;
} hammer_t;

static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    for (int i = 0; i < 40; i++) {
        char *text = NULL;
        lev_error_t err;
        if (lev_registry_schema_by_id(h->reg, h->base + i % 6, &text, &err) != 0 || !text ||
            strcmp(text, "\"int\"") != 0)
            h->failed++;
        free(text);
    }
    return NULL;
}

static void threads_share_one_client(void)
{
    fake_t f;
    REQUIRE(fake_start(&f, 200, "application/json", "{\"schema\":\"\\\"int\\\"\"}") == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", f.port);
    lev_registry_conf_t conf = {.url = url, .timeout_ms = 5000, .cache_size = 8};
    lev_error_t err;
    lev_registry_t *reg = lev_registry_new(&conf, &err);
    REQUIRE(reg);
    hammer_t h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){.reg = reg, .base = 1 + 3 * i};
        REQUIRE(pthread_create(&h[i].thread, NULL, hammer_main, &h[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(h[i].thread, NULL);
        CHECK_INT(h[i].failed, ==, 0);
    }
    lev_registry_stats_t st;
    lev_registry_stats(reg, &st);
    CHECK_INT(st.cache_hits + st.cache_misses, ==, 160);
    CHECK_INT(st.requests, ==, st.cache_misses);
    CHECK_INT(st.failures, ==, 0);
    lev_registry_destroy(reg);
    fake_stop(&f);
}

static lev_result_t never_called(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    (void)ctx;
    (void)ev;
    (void)opaque;
    return LEV_RESULT_OK;
}

/* A worker whose registry refuses its credentials (401) or its access (403)
 * stops its start with the registry's answer (LEV_ERR_CONFIG): waiting
 * would not change it, where a registry that does not answer is waited
 * for (tests/stack/registry_test.sh). The broker is librdkafka's mock
 * cluster: this test runs without Kafka. */
static void a_worker_the_registry_refuses_stops_its_start(void)
{
    static const struct {
        int status;
        const char *body, *says;
    } cases[] = {
        {401, "{\"error_code\":40101,\"message\":\"Unauthorized\"}", "Unauthorized"},
        {403, "{\"error_code\":40301,\"message\":\"User cannot access the resource.\"}",
         "cannot access"},
    };
    char errstr[256];
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof errstr);
    REQUIRE(host);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
    REQUIRE(mc);
    REQUIRE(rd_kafka_mock_topic_create(mc, "refused-in", 1, 1) == 0);
    REQUIRE(rd_kafka_mock_topic_create(mc, "refused-out", 1, 1) == 0);
    char *bootstrap = getenv("KAFKA_BOOTSTRAP") ? strdup(getenv("KAFKA_BOOTSTRAP")) : NULL;
    setenv("KAFKA_BOOTSTRAP", rd_kafka_mock_cluster_bootstraps(mc), 1);
    setenv("LEV_WIRE_FORMAT", "confluent", 1);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fake_t f;
        REQUIRE(fake_start(&f, cases[k].status, "application/json", cases[k].body) == 0);
        char url[160];
        snprintf(url, sizeof url, "http://alice:wrong@127.0.0.1:%d", f.port);
        setenv("LEV_SCHEMA_REGISTRY_URL", url, 1);
        lev_config_t conf;
        lev_test_config(&conf, "it-registry-refused");
        REQUIRE(lev_config_set_str(&conf.redis_url, "") == 0); /* no idempotency: no Redis */
        lev_error_t err;
        lev_worker_t *w = lev_worker_new(&conf, &err);
        REQUIRE(w);
        REQUIRE(lev_worker_on(w, "shop.order.OrderPlaced", never_called, NULL, &err) == 0 &&
                lev_worker_subscribe(w, "refused-in", &err) == 0 &&
                lev_worker_declare_emits(w, "refused-out", "shop.order.OrderAccepted", &err) == 0);
        lev_test_run_t r;
        REQUIRE(lev_test_run_start(&r, w) == 0);
        for (int waited = 0; !atomic_load(&r.returned_ms) && waited < 20000; waited += 50)
            lev_test_sleep_ms(50);
        CHECK(atomic_load(&r.returned_ms)); /* not still waiting after 20 s */
        lev_worker_stop(w);
        CHECK_INT(lev_test_run_join(&r), ==, LEV_ERR_CONFIG);
        CHECK_INT(atomic_load(&f.requests), >=, 1);
        CHECK_INT(atomic_load(&f.requests), <=, 2); /* asked, not waited on */
        char req[8192];
        fake_last(&f, req, sizeof req);
        CHECK(strstr(req, "/subjects/refused-out-value") != NULL);
        lev_worker_destroy(w);
        lev_config_clear(&conf);
        fake_stop(&f);
    }
    unsetenv("LEV_WIRE_FORMAT");
    if (registry_url)
        setenv("LEV_SCHEMA_REGISTRY_URL", registry_url, 1);
    else
        unsetenv("LEV_SCHEMA_REGISTRY_URL");
    if (bootstrap)
        setenv("KAFKA_BOOTSTRAP", bootstrap, 1);
    else
        unsetenv("KAFKA_BOOTSTRAP");
    free(bootstrap);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
}

/* A worker in the Confluent format whose handler emits a type it did not
 * declare: the schema is registered at the first emit, on the registry's
 * thread. While the registry holds its answer the loop goes on (the
 * records of another topic are handled), the waiting records use no
 * attempt and none is dead-lettered; once it answers each is handled and
 * its output framed with the id, the registration asked once. */
typedef struct undeclared_s {
    char in_a[128], in_b[128], out[128];
    atomic_int a_calls, b_calls;
} undeclared_t;

static lev_result_t emit_undeclared(lev_ctx_t *ctx, const lev_event_t *ev, void *opaque)
{
    undeclared_t *u = opaque;
    if (strcmp(ev->topic, u->in_b) == 0) {
        atomic_fetch_add(&u->b_calls, 1);
        return LEV_RESULT_OK;
    }
    atomic_fetch_add(&u->a_calls, 1);
    return lev_test_emit_accepted(ctx, ev, u->out, NULL) == 0 ? LEV_RESULT_OK
                                                              : LEV_RESULT_PERMANENT;
}

static void an_undeclared_emit_waits_for_its_registration_without_blocking_the_loop(void)
{
    enum { NA = 6, NB = 6 };
    static undeclared_t u;
    memset(&u, 0, sizeof u);
    lev_test_unique("it-registry-undeclared-a", u.in_a, sizeof u.in_a);
    lev_test_unique("it-registry-undeclared-b", u.in_b, sizeof u.in_b);
    lev_test_unique("it-registry-undeclared-out", u.out, sizeof u.out);
    REQUIRE(lev_test_create_topic(u.in_a, 1) == 0 && lev_test_create_topic(u.in_b, 1) == 0 &&
            lev_test_create_topic(u.out, 1) == 0);
    char ids[NA + NB][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(u.in_a, NA, ids, NULL) == 0);
    fake_t f;
    REQUIRE(fake_start(&f, 200, "application/vnd.schemaregistry.v1+json", "{\"id\":4242}") == 0);
    atomic_store(&f.hold, 1);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", f.port);
    setenv("LEV_SCHEMA_REGISTRY_URL", url, 1);
    setenv("LEV_SCHEMA_REGISTRY_TIMEOUT_MS", "60000", 1); /* the held request never times out */
    setenv("LEV_WIRE_FORMAT", "confluent", 1);
    lev_config_t conf;
    lev_test_config(&conf, "it-registry-undeclared");
    lev_error_t err;
    lev_worker_t *w = lev_worker_new(&conf, &err);
    REQUIRE(w);
    REQUIRE(lev_worker_on(w, "shop.order.OrderPlaced", emit_undeclared, &u, &err) == 0 &&
            lev_worker_subscribe(w, u.in_a, &err) == 0 &&
            lev_worker_subscribe(w, u.in_b, &err) == 0 &&
            lev_worker_declare_output(w, u.out, &err) == 0);
    lev_test_run_t r;
    REQUIRE(lev_test_run_start(&r, w) == 0);
    /* the first emit asks the registry, which holds its answer; then the
     * other topic's records come, and are handled while it waits */
    for (int waited = 0; atomic_load(&f.requests) < 1 && waited < 60000; waited += 20)
        lev_test_sleep_ms(20);
    REQUIRE(atomic_load(&f.requests) == 1);
    REQUIRE(lev_test_publish_orders(u.in_b, NB, ids + NA, NULL) == 0);
    for (int waited = 0; atomic_load(&u.b_calls) < NB && waited < 60000; waited += 20)
        lev_test_sleep_ms(20);
    CHECK_INT(atomic_load(&u.b_calls), ==, NB);
    CHECK_INT(atomic_load(&f.requests), ==, 1);
    CHECK_INT(atomic_load(&f.answered), ==, 0);
    CHECK_INT(atomic_load(&u.a_calls), >=, 1);
    CHECK_INT(lev_test_topic_records(u.out), ==, 0);
    atomic_store(&f.hold, 0);
    CHECK_INT(lev_test_run_wait_finished(&r, NA + NB, 60000), ==, 0);
    lev_worker_stats_t st;
    lev_worker_stats(w, &st);
    CHECK_INT(st.dead_lettered, ==, 0);
    CHECK_INT(st.retried_inprocess, ==, 0); /* waiting used no attempt */
    lev_worker_stop(w);
    CHECK_INT(lev_test_run_join(&r), ==, 0);
    lev_test_record_t *recs = NULL;
    size_t n = lev_test_read_topic(u.out, NA, 10000, &recs);
    CHECK_INT(n, ==, NA);
    for (size_t i = 0; i < n; i++) /* Confluent-framed with the registry's id */
        CHECK(recs[i].value_len > 5 && memcmp(recs[i].value, "\0\0\0\x10\x92", 5) == 0);
    lev_test_records_free(recs, n);
    CHECK_INT(atomic_load(&f.requests), ==, 1); /* registered once, not per emit */
    lev_worker_destroy(w);
    lev_config_clear(&conf);
    fake_stop(&f);
    unsetenv("LEV_WIRE_FORMAT");
    unsetenv("LEV_SCHEMA_REGISTRY_TIMEOUT_MS");
    if (registry_url)
        setenv("LEV_SCHEMA_REGISTRY_URL", registry_url, 1);
    else
        unsetenv("LEV_SCHEMA_REGISTRY_URL");
}

int main(int argc, char **argv)
{
    const char *u = getenv("LEV_SCHEMA_REGISTRY_URL");
    registry_url = u && *u ? u : NULL;
    char unique[96];
    lev_test_unique("x", unique, sizeof unique);
    snprintf(token, sizeof token, "%s", unique + 2); /* "<pid>-<hex>" */
    for (char *p = token; *p; p++)
        if (*p == '-')
            *p = '_';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static const check_case_t cases[] = {
        CASE(register_gives_an_id_the_same_again_and_under_another_subject),
        CASE(schema_by_id_asks_once_then_answers_from_the_cache),
        CASE(an_unknown_id_is_an_unknown_schema_and_is_remembered),
        CASE(an_id_of_a_json_schema_is_an_unknown_schema_naming_its_type),
        CASE(a_malformed_schema_is_a_schema_error),
        CASE(backward_compatibility_refuses_an_incompatible_schema_and_takes_a_compatible_one),
        CASE(lookups_of_what_is_not_registered_are_not_found),
        CASE(compatibility_levels_are_read_and_set),
        CASE(nothing_listening_is_a_registry_failure_at_once),
        CASE(a_registry_that_never_answers_is_a_registry_failure_within_the_timeouts),
        CASE(a_waiting_lookup_returns_in_time_and_its_answer_comes_later),
        CASE(a_waiting_registration_returns_in_time_and_its_id_comes_later),
        CASE(a_codec_that_may_not_block_keeps_decoding_known_ids),
        CASE(an_html_answer_is_a_registry_failure),
        CASE(an_answer_without_a_schema_is_an_unknown_schema),
        CASE(server_errors_are_tried_again_then_reported_with_the_registrys_message),
        CASE(requests_are_json_with_the_subject_escaped),
        CASE(credentials_are_sent_but_never_in_error_texts),
        CASE(a_worker_the_registry_refuses_stops_its_start),
        CASE(an_undeclared_emit_waits_for_its_registration_without_blocking_the_loop),
        CASE(the_cache_keeps_the_most_recently_used_ids),
        CASE(threads_share_one_client),
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    curl_global_cleanup();
    return rc;
}
