/* Ids, time, error names and the JSON-lines log writer. */
#include "check.h"
#include "internal.h"

#include <ctype.h>
#include <jansson.h>
#include <libevents.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void uuid4_is_random_version_4(void)
{
    char a[LEV_UUID_STR_LEN], b[LEV_UUID_STR_LEN];
    lev_uuid4(a);
    lev_uuid4(b);
    CHECK_INT(strlen(a), ==, 36);
    CHECK(a[14] == '4');
    CHECK(strchr("89ab", a[19]) != NULL);
    CHECK(strcmp(a, b) != 0);
}

/* Ids come from a per-thread pool of random bytes: a forked child must not
 * hand out what its parent hands out next, nor what another child does. */
static void forked_children_never_repeat_their_parents_ids(void)
{
    char before[LEV_UUID_STR_LEN], parent[LEV_UUID_STR_LEN];
    char child[2][LEV_UUID_STR_LEN] = {{0}};
    lev_uuid4(before); /* the pool is filled */
    for (int k = 0; k < 2; k++) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            char id[LEV_UUID_STR_LEN];
            lev_uuid4(id);
            _exit(write(fds[1], id, sizeof id) == (ssize_t)sizeof id ? 0 : 1);
        }
        close(fds[1]);
        CHECK_INT(read(fds[0], child[k], sizeof child[k]), ==, (ssize_t)sizeof child[k]);
        close(fds[0]);
        int st;
        CHECK_INT(waitpid(pid, &st, 0), ==, pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    lev_uuid4(parent);
    child[0][LEV_UUID_STR_LEN - 1] = child[1][LEV_UUID_STR_LEN - 1] = '\0';
    CHECK(strcmp(parent, child[0]) != 0);
    CHECK(strcmp(parent, child[1]) != 0);
    CHECK(strcmp(child[0], child[1]) != 0);
    CHECK(strcmp(before, parent) != 0);
}

static void uuid5_matches_the_rfc_4122_example(void)
{
    /* uuid5(NAMESPACE_DNS, "python.org"), as Python's uuid module computes it */
    char out[LEV_UUID_STR_LEN];
    CHECK(lev_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org", 10, out) == 0);
    CHECK_STR(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    CHECK(lev_uuid5("not-a-uuid", "x", 1, out) == LEV_ERR_ARG);
}

/* The namespace is read in either case, and any byte that is not a hex
 * digit where one belongs, or not a dash where one belongs, is refused. */
static void uuid5_reads_its_namespace_strictly(void)
{
    static const char ns[] = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    char out[LEV_UUID_STR_LEN], upper[sizeof ns], bad[sizeof ns];
    for (size_t i = 0; i < sizeof ns; i++)
        upper[i] = (char)toupper((unsigned char)ns[i]);
    CHECK(lev_uuid5(upper, "python.org", 10, out) == 0);
    CHECK_STR(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    for (size_t at = 0; at < sizeof ns - 1; at++) {
        int dash = at == 8 || at == 13 || at == 18 || at == 23;
        for (int c = 1; c < 256; c++) {
            int ok = dash ? c == '-' : isxdigit(c) != 0;
            memcpy(bad, ns, sizeof ns);
            bad[at] = (char)c;
            if ((lev_uuid5(bad, "x", 1, out) == 0) != ok) {
                fprintf(stderr, "    byte 0x%02x at %zu: %s\n", (unsigned)c, at,
                        ok ? "refused" : "accepted");
                CHECK(0);
                return;
            }
        }
    }
    CHECK(lev_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c", "x", 1, out) == LEV_ERR_ARG);
    CHECK(lev_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8a", "x", 1, out) == LEV_ERR_ARG);
}

static void derived_ids_are_deterministic_and_distinct_per_type_and_index(void)
{
    char a[LEV_UUID_STR_LEN], b[LEV_UUID_STR_LEN], c[LEV_UUID_STR_LEN], d[LEV_UUID_STR_LEN];
    const char *in = "0b6f1a52-8d8e-4d4c-9b43-1a2b3c4d5e6f";
    CHECK(lev_uuid_derive(in, "shop.order.OrderAccepted", 0, a) == 0);
    CHECK(lev_uuid_derive(in, "shop.order.OrderAccepted", 0, b) == 0);
    CHECK(lev_uuid_derive(in, "shop.order.OrderRejected", 0, c) == 0);
    CHECK(lev_uuid_derive(in, "shop.order.OrderAccepted", 1, d) == 0);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strcmp(a, d) != 0);
    CHECK(a[14] == '5');
    /* inputs whose id is not a UUID still derive stable ids */
    CHECK(lev_uuid_derive("orders/2/17", "x.Y", 0, a) == 0);
    CHECK(lev_uuid_derive("orders/2/17", "x.Y", 0, b) == 0);
    CHECK_STR(a, b);
    /* ... in libevents' own namespace, under the name input/type/index */
    CHECK(lev_uuid5("6f0d3b8e-2c1a-5e7b-9a44-1c0e8f3d2b71", "orders/2/17/x.Y/0", 17, c) == 0);
    CHECK_STR(a, c);
    /* the value before the source was part of it: unchanged for ids derived
     * without one (business ids of the services) */
    CHECK(lev_uuid_derive(in, "shop.order.OrderAccepted", 0, a) == 0);
    CHECK_STR(a, "44212a8d-538f-5a3f-8167-b6a0909de6ba");
}

static void derived_ids_of_events_depend_on_their_source_too(void)
{
    char a[LEV_UUID_STR_LEN], b[LEV_UUID_STR_LEN], c[LEV_UUID_STR_LEN], d[LEV_UUID_STR_LEN];
    const char *in = "0b6f1a52-8d8e-4d4c-9b43-1a2b3c4d5e6f";
    CHECK(lev_uuid_derive_event("/shop-a", in, "shop.order.OrderAccepted", 0, a) == 0);
    CHECK(lev_uuid_derive_event("/shop-b", in, "shop.order.OrderAccepted", 0, b) == 0);
    CHECK(lev_uuid_derive_event("/shop-a", in, "shop.order.OrderAccepted", 0, c) == 0);
    CHECK(strcmp(a, b) != 0); /* two sources sharing an id do not collide */
    CHECK_STR(a, c);
    CHECK(lev_uuid_derive_event(NULL, in, "shop.order.OrderAccepted", 0, c) == 0);
    CHECK(lev_uuid_derive_event("", in, "shop.order.OrderAccepted", 0, d) == 0);
    CHECK(lev_uuid_derive(in, "shop.order.OrderAccepted", 0, a) == 0);
    CHECK_STR(c, a);
    CHECK_STR(d, a);
}

static void time_formats_and_parses_rfc3339(void)
{
    char s[32];
    lev_time_format(1700000000123LL, s);
    CHECK_STR(s, "2023-11-14T22:13:20.123Z");
    int64_t ms;
    CHECK(lev_time_parse("2023-11-14T22:13:20.123Z", &ms) == 0 && ms == 1700000000123LL);
    CHECK(lev_time_parse("2023-11-14T23:13:20.123+01:00", &ms) == 0 && ms == 1700000000123LL);
    CHECK(lev_time_parse("2023-11-14T22:13:20Z", &ms) == 0 && ms == 1700000000000LL);
    CHECK(lev_time_parse("1970-01-01T00:00:00.5Z", &ms) == 0 && ms == 500);
    CHECK(lev_time_parse("2023-11-14 22:13:20Z", &ms) != 0);
    CHECK(lev_time_parse("2023-13-14T22:13:20Z", &ms) != 0);
    CHECK(lev_time_parse("2023-11-14T22:13:20", &ms) != 0);
    CHECK(lev_time_parse("2023-11-14T22:13:20Zjunk", &ms) != 0);
}

static void error_names_are_stable_classes(void)
{
    CHECK_STR(lev_err_name(LEV_ERR_DECODE), "decode");
    CHECK_STR(lev_err_name(LEV_ERR_UNKNOWN_SCHEMA), "unknown-schema");
    CHECK_STR(lev_err_name(LEV_ERR_RESOLVE), "resolve");
    CHECK_STR(lev_err_name(12345), "unknown-error");
    lev_error_t e = {.code = LEV_ERR_JSON};
    snprintf(e.where, sizeof e.where, "orders.jsonl:3");
    snprintf(e.text, sizeof e.text, "items[0].quantity: expected int");
    char buf[600];
    CHECK_STR(lev_error_format(&e, buf, sizeof buf),
              "orders.jsonl:3: items[0].quantity: expected int");
}

/* lev_error_classes names every class a worker writes, the decoding ones
 * included (they are lev_err_name() of the codec's errors). */
static void error_classes_list_every_dead_letter_class(void)
{
    const char *const want[] = {lev_err_name(LEV_ERR_DECODE),
                                lev_err_name(LEV_ERR_UNKNOWN_SCHEMA),
                                lev_err_name(LEV_ERR_RESOLVE),
                                LEV_CLASS_HANDLER,
                                LEV_CLASS_RETRIES_EXHAUSTED,
                                LEV_CLASS_TOO_LARGE,
                                LEV_CLASS_PRODUCE,
                                LEV_CLASS_BAD_ID};
    size_t n = 0;
    const char *const *classes = lev_error_classes();
    while (classes[n])
        n++;
    CHECK_INT(n, ==, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int found = 0;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(classes[k], want[i]) == 0;
        CHECK(found);
    }
}

static void json_log_writes_one_object_per_line(void)
{
    char path[] = "/tmp/lev-log-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    lev_log_set_service("unit");
    lev_log_set(lev_log_json, f, LEV_LOG_INFO);
    lev_log(LEV_LOG_DEBUG, "hidden", "k", "v", NULL);
    lev_log(LEV_LOG_WARN, "hello \"world\"\n", "event_id", "e-1", "skipped", NULL, "n", "2", NULL);
    lev_log(LEV_LOG_ERROR, "bad utf8", "value", "\xff\xfe", NULL);
    lev_log_set(NULL, NULL, LEV_LOG_INFO);
    fclose(f);
    FILE *in = fopen(path, "r");
    char line[1024];
    int lines = 0;
    while (in && fgets(line, sizeof line, in)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        CHECK(j != NULL);
        if (!j)
            continue;
        CHECK_STR(json_string_value(json_object_get(j, "service")), "unit");
        CHECK(json_string_value(json_object_get(j, "ts")) != NULL);
        if (lines == 0) {
            CHECK_STR(json_string_value(json_object_get(j, "level")), "warn");
            CHECK_STR(json_string_value(json_object_get(j, "msg")), "hello \"world\"\n");
            CHECK_STR(json_string_value(json_object_get(j, "event_id")), "e-1");
            CHECK_STR(json_string_value(json_object_get(j, "n")), "2");
            CHECK(json_object_get(j, "skipped") == NULL);
        }
        json_decref(j);
        lines++;
    }
    if (in)
        fclose(in);
    CHECK_INT(lines, ==, 2);
    unlink(path);
}

static void grow_doubles_keeps_contents_and_refuses_overflow(void)
{
    char *p = NULL;
    size_t cap = 0;
    CHECK(lev_grow(&p, &cap, 0, 1, 16) == 0); /* nothing needed: nothing made */
    CHECK(p == NULL && cap == 0);
    CHECK(lev_grow(&p, &cap, 1, 1, 16) == 0);
    CHECK(p != NULL && cap == 16);
    memcpy(p, "0123456789abcde", 16);
    CHECK(lev_grow(&p, &cap, 16, 1, 16) == 0 && cap == 16); /* room enough */
    CHECK(lev_grow(&p, &cap, 100, 1, 16) == 0 && cap == 128);
    CHECK_STR(p, "0123456789abcde");
    /* elements of another size: the count doubles, the bytes follow */
    uint64_t *v = NULL;
    size_t n = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        CHECK(lev_grow(&v, &n, i + 1, sizeof *v, 4) == 0);
        v[i] = i * i;
    }
    CHECK(n == 1024 && v[999] == 999u * 999u && v[3] == 9);
    /* too large: refused, the array and its capacity unchanged */
    char *before = p;
    CHECK(lev_grow(&p, &cap, SIZE_MAX, 1, 16) == -1);
    CHECK(p == before && cap == 128);
    CHECK(lev_grow(&v, &n, SIZE_MAX / 4, sizeof *v, 4) == -1);
    CHECK(n == 1024 && v[999] == 999u * 999u);
    free(p);
    free(v);
}

CHECK_MAIN(CASE(error_classes_list_every_dead_letter_class),
           CASE(derived_ids_of_events_depend_on_their_source_too), CASE(uuid4_is_random_version_4),
           CASE(forked_children_never_repeat_their_parents_ids),
           CASE(uuid5_matches_the_rfc_4122_example), CASE(uuid5_reads_its_namespace_strictly),
           CASE(derived_ids_are_deterministic_and_distinct_per_type_and_index),
           CASE(time_formats_and_parses_rfc3339), CASE(error_names_are_stable_classes),
           CASE(json_log_writes_one_object_per_line),
           CASE(grow_doubles_keeps_contents_and_refuses_overflow))
