/* Redis URL parsing of the store (no Redis needed). */
#include "check.h"
#include "store_internal.h"

#include <libevents.h>

/* Parses url, expecting success. */
static int parse_ok(const char *url, lev_store_url_t *u)
{
    lev_error_t err = {0};
    int rc = lev_store_url_parse(url, u, &err);
    if (rc != 0)
        fprintf(stderr, "  %s: %s\n", url, err.text);
    return rc;
}

/* Parses url, expecting LEV_ERR_CONFIG with nothing left in the output;
 * copies the error text to text. */
static int parse_fails(const char *url, char *text, size_t size)
{
    lev_error_t err = {0};
    lev_store_url_t u;
    int rc = lev_store_url_parse(url, &u, &err);
    snprintf(text, size, "%s", err.text);
    if (rc == 0) {
        fprintf(stderr, "  %s: accepted\n", url ? url : "(null)");
        lev_store_url_free(&u);
        return 0;
    }
    return rc == LEV_ERR_CONFIG && err.code == LEV_ERR_CONFIG && err.text[0] && !u.host &&
           !u.password && !u.user && !u.endpoint;
}

static void host_only_gets_default_port_and_db(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://localhost", &u) == 0);
    CHECK_STR(u.host, "localhost");
    CHECK_INT(u.port, ==, 6379);
    CHECK_INT(u.db, ==, 0);
    CHECK_INT(u.is_unix, ==, 0);
    CHECK(u.user == NULL);
    CHECK(u.password == NULL);
    CHECK_STR(u.endpoint, "redis://localhost:6379/0");
    lev_store_url_free(&u);
}

static void port_and_db_are_read(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://127.0.0.1:16379/3", &u) == 0);
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_INT(u.port, ==, 16379);
    CHECK_INT(u.db, ==, 3);
    lev_store_url_free(&u);

    REQUIRE(parse_ok("redis://h:1/", &u) == 0);
    CHECK_INT(u.port, ==, 1);
    CHECK_INT(u.db, ==, 0);
    lev_store_url_free(&u);

    REQUIRE(parse_ok("redis://h:65535/2147483647", &u) == 0);
    CHECK_INT(u.port, ==, 65535);
    CHECK_INT(u.db, ==, 2147483647);
    lev_store_url_free(&u);
}

static void password_without_user(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://:s3cret@cache.internal:6380/1", &u) == 0);
    CHECK(u.user == NULL);
    CHECK_STR(u.password, "s3cret");
    CHECK_STR(u.host, "cache.internal");
    CHECK_INT(u.port, ==, 6380);
    CHECK_INT(u.db, ==, 1);
    CHECK(strstr(u.endpoint, "s3cret") == NULL);
    lev_store_url_free(&u);
}

static void user_and_password(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://alice:s3cret@h", &u) == 0);
    CHECK_STR(u.user, "alice");
    CHECK_STR(u.password, "s3cret");
    CHECK_STR(u.endpoint, "redis://h:6379/0");
    lev_store_url_free(&u);

    /* a user with an empty password is kept (AUTH alice "") */
    REQUIRE(parse_ok("redis://alice:@h", &u) == 0);
    CHECK_STR(u.user, "alice");
    CHECK_STR(u.password, "");
    lev_store_url_free(&u);
}

static void empty_credentials_mean_no_auth(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://:@h", &u) == 0);
    CHECK(u.user == NULL);
    CHECK(u.password == NULL);
    lev_store_url_free(&u);
}

static void credentials_are_percent_decoded(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://b%6Fb:p%40ss%3Aw%2Frd@h/2", &u) == 0);
    CHECK_STR(u.user, "bob");
    CHECK_STR(u.password, "p@ss:w/rd");
    CHECK_STR(u.host, "h");
    CHECK_INT(u.db, ==, 2);
    lev_store_url_free(&u);
}

static void raw_at_sign_in_password_uses_the_last_at(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://:a@b@h:7000", &u) == 0);
    CHECK_STR(u.password, "a@b");
    CHECK_STR(u.host, "h");
    CHECK_INT(u.port, ==, 7000);
    lev_store_url_free(&u);
}

static void ipv6_in_brackets(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("redis://[::1]:6380/4", &u) == 0);
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, ==, 6380);
    CHECK_INT(u.db, ==, 4);
    CHECK_STR(u.endpoint, "redis://[::1]:6380/4");
    lev_store_url_free(&u);
}

static void unix_socket_path_and_db(void)
{
    lev_store_url_t u;
    REQUIRE(parse_ok("unix:///run/redis/redis.sock", &u) == 0);
    CHECK_INT(u.is_unix, ==, 1);
    CHECK_STR(u.host, "/run/redis/redis.sock");
    CHECK_INT(u.db, ==, 0);
    CHECK_STR(u.endpoint, "unix:///run/redis/redis.sock?db=0");
    lev_store_url_free(&u);

    REQUIRE(parse_ok("unix://:pw@/tmp/r.sock?db=5", &u) == 0);
    CHECK_STR(u.host, "/tmp/r.sock");
    CHECK_STR(u.password, "pw");
    CHECK_INT(u.db, ==, 5);
    lev_store_url_free(&u);
}

static void malformed_urls_are_config_errors(void)
{
    static const char *const bad[] = {
        "",
        "localhost:6379",
        "http://h",
        "redis:/h",
        "redis://",
        "redis:///0",
        "redis://h:",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:63a9",
        "redis://h:-1",
        "redis://h/x",
        "redis://h/-1",
        "redis://h/1/2",
        "redis://h/2147483648",
        "redis://h?db=1",
        "redis://h h",
        "redis://::1",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[fe80::1%25eth0]",
        "redis://[]:6379",
        "redis://user@h",
        "redis://:p%zzw@h",
        "redis://:p%0@h",
        "redis://:p%00w@h",
        "unix://",
        "unix:///",
        "unix://host/path",
        "unix:///tmp/r.sock?timeout=1",
        "unix:///tmp/r.sock?db=x",
    };
    char text[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rejected = parse_fails(bad[i], text, sizeof text);
        if (!rejected)
            fprintf(stderr, "  not rejected properly: \"%s\"\n", bad[i]);
        CHECK(rejected);
    }
    CHECK(parse_fails(NULL, text, sizeof text));
}

static void tls_scheme_is_refused_with_a_reason(void)
{
    char text[512];
    CHECK(parse_fails("rediss://h:6380", text, sizeof text));
    CHECK(strstr(text, "TLS") != NULL);
    CHECK(strstr(text, "hiredis 1.0") != NULL); /* what it would take */
}

static void password_never_appears_in_error_text(void)
{
    static const char *const bad[] = {
        "redis://:hunter2secret@h:notaport/0",
        "redis://:hunter2secret@h/notadb",
        "redis://:hunter2secret@",
        "redis://:hunter2secret@[::1",
        "redis://alice:hunter2secret@h h",
        "unix://:hunter2secret@/tmp/r.sock?db=oops",
        "rediss://:hunter2secret@h",
        "redis://:hunter2secret%zz@h",
        "ftp://:hunter2secret@h",
    };
    char text[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lev_error_t err = {0};
        lev_store_url_t u;
        CHECK_INT(lev_store_url_parse(bad[i], &u, &err), ==, LEV_ERR_CONFIG);
        lev_error_format(&err, text, sizeof text);
        if (strstr(text, "hunter2") != NULL)
            fprintf(stderr, "  leaked: %s\n", text);
        CHECK(strstr(text, "hunter2") == NULL);
    }
}

static void free_accepts_null_and_empty(void)
{
    lev_store_url_t u = {0};
    lev_store_url_free(NULL);
    lev_store_url_free(&u);
    lev_store_url_free(&u);
    CHECK(u.host == NULL);
}

static void store_new_rejects_bad_url_without_connecting(void)
{
    lev_error_t err = {0};
    lev_store_t *s = lev_store_new("redis://:hunter2secret@h:99999/0", 1000, &err);
    CHECK(s == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_CONFIG);
    CHECK(strstr(err.text, "hunter2") == NULL);
    CHECK(strstr(err.where, "hunter2") == NULL);
    lev_store_destroy(s);

    s = lev_store_new("redis://h", 0, &err);
    CHECK(s == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_ARG);
}

CHECK_MAIN(CASE(host_only_gets_default_port_and_db), CASE(port_and_db_are_read),
           CASE(password_without_user), CASE(user_and_password),
           CASE(empty_credentials_mean_no_auth), CASE(credentials_are_percent_decoded),
           CASE(raw_at_sign_in_password_uses_the_last_at), CASE(ipv6_in_brackets),
           CASE(unix_socket_path_and_db), CASE(malformed_urls_are_config_errors),
           CASE(tls_scheme_is_refused_with_a_reason), CASE(password_never_appears_in_error_text),
           CASE(free_accepts_null_and_empty), CASE(store_new_rejects_bad_url_without_connecting))
