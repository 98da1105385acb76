/* notification-service rules without Kafka: kinds, ids, rendering, the
 * HMAC signature, the sink file under concurrent writers, and the event
 * conversions over the real schemas. */
#include "check.h"
#include "notification_rules.h"

#include <jansson.h>
#include <libevents.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ORDER_ID "3f1c2b9e-8d4a-4f6b-9c2e-1a2b3c4d5e6f"
#define TRIGGER_ID "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

static ntf_trigger_t confirmed(void)
{
    ntf_trigger_t t = {.kind = NTF_CONFIRMED,
                       .order_id = ORDER_ID,
                       .customer_id = "cust-7",
                       .customer_email = "ada@example.com",
                       .occurred_at = 1790000000123,
                       .payment_id = "0b0c0d0e-1111-5222-8333-444455556666",
                       .currency = "EUR",
                       .total_minor = 2999};
    return t;
}

static void kinds_map_the_terminal_events(void)
{
    ntf_kind_t k;
    CHECK(ntf_kind_from_type(NTF_T_REJECTED, &k) == 0 && k == NTF_REJECTED);
    CHECK(ntf_kind_from_type(NTF_T_CONFIRMED, &k) == 0 && k == NTF_CONFIRMED);
    CHECK(ntf_kind_from_type(NTF_T_CANCELLED, &k) == 0 && k == NTF_CANCELLED);
    CHECK(ntf_kind_from_type("shop.order.OrderAccepted", &k) != 0);
    CHECK(ntf_kind_from_type(NULL, &k) != 0);
    CHECK_STR(ntf_kind_name(NTF_CONFIRMED), "order.confirmed");
    CHECK_STR(ntf_kind_name((ntf_kind_t)7), "unknown");
}

static void notification_id_follows_the_trigger(void)
{
    char a[LEV_UUID_STR_LEN], b[LEV_UUID_STR_LEN], c[LEV_UUID_STR_LEN];
    REQUIRE(ntf_notification_id(TRIGGER_ID, a) == 0);
    REQUIRE(ntf_notification_id(TRIGGER_ID, b) == 0);
    REQUIRE(ntf_notification_id(ORDER_ID, c) == 0);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strcmp(a, TRIGGER_ID) != 0);
    CHECK(ntf_notification_id("", a) != 0);
}

/* Known answers computed independently (Python's hmac module):
 * HMAC-SHA256("Jefe", "1700000000.evt-1.what do ya want for nothing?"). */
#define SIG_JEFE "a1b7edcb7b5bcd938c695bdcfa4b1edeef89444d2b2a288ae26dee29e4ee2ab4"
#define SIG_OLD "169fe68101d43066dc3ba8608d3e9459c6ee344bc7b09c9d48857c76ea49bcd5"
#define BODY "what do ya want for nothing?"

static void webhook_signature_covers_time_event_id_and_body(void)
{
    const char *one[] = {"Jefe"}, *two[] = {"Jefe", "old-secret"};
    char sig[NTF_SIGNATURE_MAX], why[128];
    CHECK(ntf_sign(one, 1, 1700000000, "evt-1", BODY, 28, sig, sizeof sig) == 0);
    CHECK_STR(sig, "t=1700000000,v1=" SIG_JEFE);
    /* during a rotation: one v1 per secret, the signing secret first */
    CHECK(ntf_sign(two, 2, 1700000000, "evt-1", BODY, 28, sig, sizeof sig) == 0);
    CHECK_STR(sig, "t=1700000000,v1=" SIG_JEFE ",v1=" SIG_OLD);
    CHECK(ntf_sign(NULL, 0, 1, "e", "x", 1, sig, sizeof sig) != 0);
    const char *empty[] = {""};
    CHECK(ntf_sign(empty, 1, 1, "e", "x", 1, sig, sizeof sig) != 0);
    CHECK(ntf_sign(one, 1, 1, "e", "x", 1, sig, 20) != 0); /* no room: an error, not a cut */

    const char *hdr = "t=1700000000,v1=" SIG_JEFE;
    int64_t now = 1700000000 + 60;
    CHECK(ntf_verify(hdr, one, 1, "evt-1", BODY, 28, now, 300, why, sizeof why) == 0);
    /* a changed id, body or time does not verify */
    CHECK(ntf_verify(hdr, one, 1, "evt-2", BODY, 28, now, 300, why, sizeof why) != 0);
    CHECK_STR(why, "no signature matches");
    CHECK(ntf_verify(hdr, one, 1, "evt-1", BODY, 27, now, 300, why, sizeof why) != 0);
    CHECK(ntf_verify("t=1700000001,v1=" SIG_JEFE, one, 1, "evt-1", BODY, 28, now, 300, why,
                     sizeof why) != 0);
    /* a replay after the tolerance (or from the future) is refused */
    CHECK(ntf_verify(hdr, one, 1, "evt-1", BODY, 28, 1700000000 + 301, 300, why, sizeof why) != 0);
    CHECK(strstr(why, "outside the tolerance") != NULL);
    CHECK(ntf_verify(hdr, one, 1, "evt-1", BODY, 28, 1700000000 - 301, 300, why, sizeof why) != 0);
    /* a receiver holding either secret of a rotation verifies */
    const char *both = "t=1700000000,v1=" SIG_JEFE ",v1=" SIG_OLD;
    const char *old_only[] = {"old-secret"}, *new_and_old[] = {"other", "Jefe"};
    CHECK(ntf_verify(both, old_only, 1, "evt-1", BODY, 28, now, 300, why, sizeof why) == 0);
    CHECK(ntf_verify(hdr, new_and_old, 2, "evt-1", BODY, 28, now, 300, why, sizeof why) == 0);
    CHECK(ntf_verify(hdr, old_only, 1, "evt-1", BODY, 28, now, 300, why, sizeof why) != 0);
    /* malformed headers, the old body-only scheme included */
    const char *bad[] = {"",
                         "sha256=" SIG_JEFE,
                         "v1=" SIG_JEFE,
                         "t=1700000000",
                         "t=17x,v1=" SIG_JEFE,
                         "t=1700000000,t=1700000000,v1=" SIG_JEFE,
                         "t=1700000000,v1=" SIG_JEFE "00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(ntf_verify(bad[i], one, 1, "evt-1", BODY, 28, now, 300, why, sizeof why) != 0);
    CHECK(ntf_verify(NULL, one, 1, "evt-1", BODY, 28, now, 300, why, sizeof why) != 0);
    /* items of unknown schemes are skipped */
    CHECK(ntf_verify("t=1700000000,v0=abc,v1=" SIG_JEFE, one, 1, "evt-1", BODY, 28, now, 300, why,
                     sizeof why) == 0);
}

static void confirmed_renders_stable_json(void)
{
    ntf_trigger_t t = confirmed();
    char *a = ntf_render(&t, "nid-1", TRIGGER_ID, NTF_T_CONFIRMED);
    char *b = ntf_render(&t, "nid-1", TRIGGER_ID, NTF_T_CONFIRMED);
    REQUIRE(a && b);
    CHECK_STR(a, b); /* same bytes, same signature on every redelivery */
    CHECK(strchr(a, '\n') == NULL);
    json_t *j = json_loads(a, 0, NULL);
    REQUIRE(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "notification_id")), "nid-1");
    CHECK_STR(json_string_value(json_object_get(j, "type")), "order.confirmed");
    CHECK_STR(json_string_value(json_object_get(j, "order_id")), ORDER_ID);
    CHECK_STR(json_string_value(json_object_get(j, "customer_id")), "cust-7");
    CHECK_STR(json_string_value(json_object_get(j, "email")), "ada@example.com");
    CHECK_STR(json_string_value(json_object_get(j, "occurred_at")), "2026-09-21T14:13:20.123Z");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "trigger"), "id")), TRIGGER_ID);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "trigger"), "type")),
              NTF_T_CONFIRMED);
    json_t *d = json_object_get(j, "data");
    CHECK_INT(json_integer_value(json_object_get(d, "total_minor")), ==, 2999);
    CHECK_STR(json_string_value(json_object_get(d, "currency")), "EUR");
    CHECK(strstr(json_string_value(json_object_get(j, "text")), "29.99 EUR") != NULL);
    CHECK(json_string_value(json_object_get(j, "subject")) != NULL);
    json_decref(j);
    free(a);
    free(b);

    t.customer_email = NULL;
    a = ntf_render(&t, "nid-1", TRIGGER_ID, NTF_T_CONFIRMED);
    REQUIRE(a != NULL);
    j = json_loads(a, 0, NULL);
    CHECK(json_is_null(json_object_get(j, "email")));
    json_decref(j);
    free(a);
}

static void rejected_and_cancelled_render_their_reasons(void)
{
    ntf_reason_t reasons[] = {{"BAD_QUANTITY", "items[0].quantity", "quantity must be positive"},
                              {"UNKNOWN_CURRENCY", "currency", "\"EURO\" is not known"}};
    ntf_trigger_t t = {.kind = NTF_REJECTED,
                       .order_id = ORDER_ID,
                       .customer_id = "c",
                       .reasons = reasons,
                       .nreasons = 2};
    char *a = ntf_render(&t, "nid", TRIGGER_ID, NTF_T_REJECTED);
    REQUIRE(a != NULL);
    json_t *j = json_loads(a, 0, NULL);
    REQUIRE(j != NULL);
    json_t *r = json_object_get(json_object_get(j, "data"), "reasons");
    CHECK_INT(json_array_size(r), ==, 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(r, 1), "field")), "currency");
    const char *text = json_string_value(json_object_get(j, "text"));
    CHECK(text && strstr(text, "quantity must be positive") && strstr(text, "is not known"));
    json_decref(j);
    free(a);

    ntf_trigger_t c = {.kind = NTF_CANCELLED,
                       .order_id = ORDER_ID,
                       .customer_id = "c",
                       .reason_code = "CARD_DECLINED",
                       .reason = "the card was declined"};
    a = ntf_render(&c, "nid", TRIGGER_ID, NTF_T_CANCELLED);
    REQUIRE(a != NULL);
    j = json_loads(a, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "data"), "reason_code")),
              "CARD_DECLINED");
    CHECK(strstr(json_string_value(json_object_get(j, "text")), "the card was declined") != NULL);
    json_decref(j);
    free(a);
}

static void invalid_utf8_is_replaced_not_fatal(void)
{
    ntf_trigger_t t = confirmed();
    t.customer_id = "cust-\xff\xfe";
    char *a = ntf_render(&t, "nid", TRIGGER_ID, NTF_T_CONFIRMED);
    REQUIRE(a != NULL);
    json_t *j = json_loads(a, 0, NULL);
    REQUIRE(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "customer_id")), "cust-??");
    json_decref(j);
    free(a);
}

/* ---- sink file ---- */

/* Makes a fresh temporary directory path for the sink tests. */
static void temp_dir(char *out, size_t size)
{
    snprintf(out, size, "%s/ntf-sink-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(out))
        out[0] = '\0';
}

static void sink_appends_whole_lines_under_concurrent_writers(void)
{
    enum { WRITERS = 4, LINES = 200, PAD = 3000 };
    char dir[256], path[300];
    temp_dir(dir, sizeof dir);
    REQUIRE(dir[0] != '\0');
    snprintf(path, sizeof path, "%s/notifications.jsonl", dir);

    static char line[PAD + 64];
    for (int wr = 0; wr < WRITERS; wr++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            for (int i = 0; i < LINES; i++) {
                int n = snprintf(line, sizeof line, "{\"w\":%d,\"i\":%d,\"pad\":\"", wr, i);
                memset(line + n, 'a' + wr, PAD);
                n += PAD;
                n += snprintf(line + n, sizeof line - (size_t)n, "\"}");
                if (ntf_sink_append(path, line, (size_t)n, NULL) != 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int wr = 0; wr < WRITERS; wr++) {
        int status = 0;
        wait(&status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    static char buf[PAD + 256];
    int count[WRITERS] = {0}, lines = 0, bad = 0;
    while (fgets(buf, sizeof buf, f)) {
        json_t *j = json_loads(buf, 0, NULL);
        int w = (int)json_integer_value(json_object_get(j, "w"));
        const char *pad = json_string_value(json_object_get(j, "pad"));
        if (!j || w < 0 || w >= WRITERS || !pad || strlen(pad) != PAD || pad[0] != 'a' + w ||
            pad[PAD - 1] != 'a' + w)
            bad++;
        else
            count[w]++;
        json_decref(j);
        lines++;
    }
    fclose(f);
    CHECK_INT(bad, ==, 0);
    CHECK_INT(lines, ==, WRITERS * LINES);
    for (int wr = 0; wr < WRITERS; wr++)
        CHECK_INT(count[wr], ==, LINES);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);
    unlink(path);
    rmdir(dir);
}

static void sink_reports_io_errors(void)
{
    char dir[256];
    lev_error_t err;
    temp_dir(dir, sizeof dir);
    REQUIRE(dir[0] != '\0');
    CHECK_INT(ntf_sink_append(dir, "{}", 2, &err), ==, LEV_ERR_IO); /* a directory */
    CHECK_STR(err.where, dir);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/file", dir);
    CHECK_INT(ntf_sink_append(missing, "{}", 2, &err), ==, LEV_ERR_IO);
    rmdir(dir);
}

/* ---- events over the real schemas ---- */

static lev_schemas_t *schemas;
static lev_codec_t *codec;

static void codec_release(void)
{
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
}

static int codec_ready(void)
{
    if (codec)
        return 1;
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    schemas = lev_schemas_new();
    if (!schemas || lev_schemas_load_path(schemas, dirs ? dirs : "schemas", NULL) != 0)
        return 0;
    codec = lev_codec_new(schemas, NULL);
    atexit(codec_release);
    return codec != NULL;
}

/* Reads a trigger of `type` from JSON text into *t (value in *v). */
static int trigger_from_json(const char *type, const char *text, avro_value_t *v, ntf_trigger_t *t)
{
    ntf_kind_t k;
    json_t *j = json_loads(text, 0, NULL);
    int rc = j ? lev_codec_from_json(codec, lev_schemas_find(schemas, type), j, v, NULL) : -1;
    json_decref(j);
    if (rc == 0 && (rc = ntf_kind_from_type(type, &k)) == 0 &&
        (rc = ntf_trigger_from_value(k, v, t, NULL)) != 0)
        avro_value_decref(v);
    return rc;
}

static void triggers_with_control_characters_are_bad_input(void)
{
    REQUIRE(codec_ready());
    static const char *const bad[][2] = {
        {"{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
         "\"customer_email\":{\"string\":\"e@x\\r\\nBcc: eve@example.com\"},\"reasons\":[],"
         "\"rejected_at\":7}",
         "customer_email"},
        {"{\"order_id\":\"" ORDER_ID "\\u0007\",\"customer_id\":\"c\","
         "\"customer_email\":null,\"reasons\":[],\"rejected_at\":7}",
         "order_id"},
        {"{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\",\"customer_email\":null,"
         "\"reasons\":[{\"code\":\"NO\\tITEMS\",\"field\":\"items\",\"message\":\"m\"}],"
         "\"rejected_at\":7}",
         "reasons[0].code"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i][0], 0, NULL);
        avro_value_t v;
        REQUIRE(j != NULL);
        REQUIRE(lev_codec_from_json(codec, lev_schemas_find(schemas, NTF_T_REJECTED), j, &v,
                                    NULL) == 0);
        json_decref(j);
        ntf_trigger_t t;
        lev_error_t err = {0};
        CHECK(ntf_trigger_from_value(NTF_REJECTED, &v, &t, &err) != 0);
        CHECK_STR(err.where, bad[i][1]);
        CHECK(strstr(err.text, "control character") != NULL);
        avro_value_decref(&v);
    }
}

static void triggers_are_read_from_events(void)
{
    REQUIRE(codec_ready());
    avro_value_t v;
    ntf_trigger_t t;
    REQUIRE(trigger_from_json(NTF_T_REJECTED,
                              "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
                              "\"customer_email\":{\"string\":\"e@x\"},\"reasons\":["
                              "{\"code\":\"NO_ITEMS\",\"field\":\"items\",\"message\":\"none\"}],"
                              "\"rejected_at\":7}",
                              &v, &t) == 0);
    CHECK_INT(t.kind, ==, NTF_REJECTED);
    CHECK_STR(t.customer_email, "e@x");
    CHECK_INT(t.occurred_at, ==, 7);
    REQUIRE(t.nreasons == 1);
    CHECK_STR(t.reasons[0].code, "NO_ITEMS");
    ntf_trigger_clear(&t);
    avro_value_decref(&v);

    REQUIRE(trigger_from_json(NTF_T_CONFIRMED,
                              "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
                              "\"customer_email\":null,\"payment_id\":\"p\",\"currency\":\"JPY\","
                              "\"total_minor\":1500,\"confirmed_at\":8}",
                              &v, &t) == 0);
    CHECK(t.customer_email == NULL);
    CHECK_STR(t.currency, "JPY");
    CHECK_INT(t.total_minor, ==, 1500);

    /* NotificationSent from it */
    const lev_schema_t *s = lev_schemas_find(schemas, NTF_T_SENT);
    avro_value_t out, back;
    REQUIRE(lev_codec_new_value(codec, s, &out) == 0);
    CHECK(ntf_sent_fill(&out, &t, "nid", TRIGGER_ID, NTF_T_CONFIRMED, "sink", 9) == 0);
    void *buf = NULL;
    size_t len = 0;
    REQUIRE(lev_codec_encode(codec, s, &out, &buf, &len, NULL) == 0);
    REQUIRE(lev_codec_decode(codec, buf, len, NULL, &back, NULL, NULL) == 0);
    json_t *j = lev_codec_to_json(&back, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "trigger_event_id")), TRIGGER_ID);
    CHECK_STR(json_string_value(json_object_get(j, "channel")), "sink");
    CHECK_INT(json_integer_value(json_object_get(j, "sent_at")), ==, 9);
    json_decref(j);
    free(buf);
    avro_value_decref(&back);
    avro_value_decref(&out);
    ntf_trigger_clear(&t);
    avro_value_decref(&v);

    REQUIRE(trigger_from_json(NTF_T_CANCELLED,
                              "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
                              "\"customer_email\":null,\"reason_code\":\"AMOUNT_LIMIT\","
                              "\"reason\":\"too much\",\"cancelled_at\":9}",
                              &v, &t) == 0);
    CHECK_STR(t.reason_code, "AMOUNT_LIMIT");
    ntf_trigger_clear(&t);
    avro_value_decref(&v);
}

CHECK_MAIN(CASE(kinds_map_the_terminal_events), CASE(notification_id_follows_the_trigger),
           CASE(webhook_signature_covers_time_event_id_and_body),
           CASE(confirmed_renders_stable_json), CASE(rejected_and_cancelled_render_their_reasons),
           CASE(invalid_utf8_is_replaced_not_fatal),
           CASE(sink_appends_whole_lines_under_concurrent_writers), CASE(sink_reports_io_errors),
           CASE(triggers_are_read_from_events),
           CASE(triggers_with_control_characters_are_bad_input))
