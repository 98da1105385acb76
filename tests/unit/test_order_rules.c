/* order-service rules without Kafka: currencies, validation, the state
 * record and its transitions, and the event conversions over the real
 * schemas. */
#include "check.h"
#include "order_rules.h"
#include "svc.h"

#include <jansson.h>
#include <libevents.h>
#include <stdint.h>

#define ORDER_ID "3f1c2b9e-8d4a-4f6b-9c2e-1a2b3c4d5e6f"
#define EVENT_A "11111111-1111-4111-8111-111111111111"
#define EVENT_B "22222222-2222-4222-8222-222222222222"
#define PAY_1 "33333333-3333-4333-8333-333333333333"
#define PAY_2 "44444444-4444-4444-8444-444444444444"

/* A valid order of two lines: 2 x 1250 + 1 x 499 = 2999 EUR. */
static ord_item_t good_items[] = {{"sku-1", 2, 1250}, {"sku-2", 1, 499}};

static ord_order_t good_order(void)
{
    ord_order_t o = {.order_id = ORDER_ID,
                     .customer_id = "cust-7",
                     .customer_email = "ada@example.com",
                     .currency = "EUR",
                     .payment_token = "tok_visa",
                     .items = good_items,
                     .nitems = 2,
                     .total_minor = 2999,
                     .placed_at = 1790000000000};
    return o;
}

/* The index of the first reason with this code and field, or -1. */
static int find_reason(const ord_reasons_t *r, const char *code, const char *field)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->r[i].code, code) == 0 && strcmp(r->r[i].field, field) == 0)
            return (int)i;
    return -1;
}

/* ---- currencies ---- */

static void currency_list_is_sorted_unique_and_well_formed(void)
{
    size_t n = svc_currency_count();
    CHECK(n > 140);
    for (size_t i = 0; i < n; i++) {
        const svc_currency_t *c = svc_currency_at(i);
        CHECK_INT(strlen(c->code), ==, 3);
        for (int k = 0; k < 3; k++)
            CHECK(c->code[k] >= 'A' && c->code[k] <= 'Z');
        CHECK(c->minor_units >= 0 && c->minor_units <= 4);
        if (i > 0)
            CHECK(strcmp(svc_currency_at(i - 1)->code, c->code) < 0);
        CHECK(svc_currency_find(c->code) == c);
    }
    CHECK(svc_currency_at(n) == NULL);
}

static void currency_find_knows_iso_codes_and_rejects_others(void)
{
    CHECK_INT(svc_currency_find("EUR")->minor_units, ==, 2);
    CHECK_INT(svc_currency_find("JPY")->minor_units, ==, 0);
    CHECK_INT(svc_currency_find("KWD")->minor_units, ==, 3);
    CHECK(svc_currency_find("USD") != NULL);
    CHECK(svc_currency_find("CHF") != NULL);
    CHECK(svc_currency_find("eur") == NULL);
    CHECK(svc_currency_find("EURO") == NULL);
    CHECK(svc_currency_find("EU") == NULL);
    CHECK(svc_currency_find("") == NULL);
    CHECK(svc_currency_find(NULL) == NULL);
    CHECK(svc_currency_find("XXX") == NULL); /* "no currency" */
    CHECK(svc_currency_find("XTS") == NULL); /* testing code */
    CHECK(svc_currency_find("XAU") == NULL); /* gold */
    CHECK(svc_currency_find("DEM") == NULL); /* withdrawn */
}

static void amount_format_uses_minor_units(void)
{
    char buf[64];
    CHECK_STR(svc_amount_format(1234, "EUR", buf, sizeof buf), "12.34 EUR");
    CHECK_STR(svc_amount_format(5, "EUR", buf, sizeof buf), "0.05 EUR");
    CHECK_STR(svc_amount_format(-5, "EUR", buf, sizeof buf), "-0.05 EUR");
    CHECK_STR(svc_amount_format(1500, "JPY", buf, sizeof buf), "1500 JPY");
    CHECK_STR(svc_amount_format(1, "KWD", buf, sizeof buf), "0.001 KWD");
    CHECK_STR(svc_amount_format(INT64_MIN, "EUR", buf, sizeof buf), "-92233720368547758.08 EUR");
    CHECK_STR(svc_amount_format(100, "ZZZ", buf, sizeof buf), "1.00 ZZZ");
}

/* ---- validation ---- */

static void valid_order_has_no_reasons(void)
{
    ord_order_t o = good_order();
    ord_reasons_t r;
    CHECK_INT(ord_validate(&o, &r), ==, 0);
    CHECK_INT(r.n, ==, 0);
    o.customer_email = NULL; /* optional */
    CHECK_INT(ord_validate(&o, &r), ==, 0);
    ord_item_t free_item[] = {{"gift", 1, 0}}; /* price 0 is allowed */
    o.items = free_item;
    o.nitems = 1;
    o.total_minor = 0;
    CHECK_INT(ord_validate(&o, &r), ==, 0);
}

static void every_problem_is_listed_with_its_field(void)
{
    ord_item_t items[] = {{"", 0, -1}, {"ok", 3, 10}, {"neg", -2, 5}};
    ord_order_t o = {.order_id = "not-a-uuid",
                     .customer_id = "  ",
                     .currency = "EURO",
                     .payment_token = "",
                     .items = items,
                     .nitems = 3,
                     .total_minor = 30};
    ord_reasons_t r;
    CHECK_INT(ord_validate(&o, &r), ==, 8);
    CHECK(find_reason(&r, ORD_R_BAD_ORDER_ID, "order_id") >= 0);
    CHECK(find_reason(&r, ORD_R_NO_CUSTOMER, "customer_id") >= 0);
    CHECK(find_reason(&r, ORD_R_BAD_SKU, "items[0].sku") >= 0);
    CHECK(find_reason(&r, ORD_R_BAD_QUANTITY, "items[0].quantity") >= 0);
    CHECK(find_reason(&r, ORD_R_BAD_PRICE, "items[0].unit_price_minor") >= 0);
    CHECK(find_reason(&r, ORD_R_BAD_QUANTITY, "items[2].quantity") >= 0);
    CHECK(find_reason(&r, ORD_R_UNKNOWN_CURRENCY, "currency") >= 0);
    CHECK(find_reason(&r, ORD_R_NO_PAYMENT_TOKEN, "payment_token") >= 0);
    /* bad lines make the sum meaningless: no TOTAL_MISMATCH on top */
    CHECK(find_reason(&r, ORD_R_TOTAL_MISMATCH, "total_minor") < 0);
    /* in field order */
    CHECK(find_reason(&r, ORD_R_BAD_ORDER_ID, "order_id") <
          find_reason(&r, ORD_R_UNKNOWN_CURRENCY, "currency"));
    int q = find_reason(&r, ORD_R_BAD_QUANTITY, "items[2].quantity");
    CHECK(q >= 0 && strstr(r.r[q].message, "-2") != NULL);
}

static void empty_order_is_rejected_as_no_items(void)
{
    ord_order_t o = good_order();
    ord_reasons_t r;
    o.items = NULL;
    o.nitems = 0;
    o.total_minor = 0;
    CHECK_INT(ord_validate(&o, &r), ==, 1);
    CHECK(find_reason(&r, ORD_R_NO_ITEMS, "items") == 0);
}

static void total_must_match_the_lines(void)
{
    ord_order_t o = good_order();
    ord_reasons_t r;
    o.total_minor = 3000;
    CHECK_INT(ord_validate(&o, &r), ==, 1);
    CHECK(find_reason(&r, ORD_R_TOTAL_MISMATCH, "total_minor") == 0);
    CHECK(strstr(r.r[0].message, "2999") != NULL);
    o.total_minor = -2999;
    CHECK_INT(ord_validate(&o, &r), ==, 1);
}

static void total_overflow_is_detected_not_wrapped(void)
{
    ord_order_t o = good_order();
    ord_reasons_t r;
    /* one line overflowing on multiplication */
    ord_item_t big[] = {{"a", INT32_MAX, INT64_MAX / 2}};
    o.items = big;
    o.nitems = 1;
    o.total_minor = 0;
    CHECK_INT(ord_validate(&o, &r), ==, 1);
    CHECK(find_reason(&r, ORD_R_TOTAL_OVERFLOW, "items[0]") == 0);
    /* lines fitting alone, overflowing on the sum; the wrapped sum must not pass */
    ord_item_t sum[] = {{"a", 1, INT64_MAX}, {"b", 1, 1}};
    o.items = sum;
    o.nitems = 2;
    o.total_minor = INT64_MIN; /* what INT64_MAX + 1 wraps to */
    CHECK_INT(ord_validate(&o, &r), ==, 1);
    CHECK(find_reason(&r, ORD_R_TOTAL_OVERFLOW, "items[1]") == 0);
    /* the largest sum that fits is fine */
    ord_item_t edge[] = {{"a", 1, INT64_MAX - 1}, {"b", 1, 1}};
    o.items = edge;
    o.total_minor = INT64_MAX;
    CHECK_INT(ord_validate(&o, &r), ==, 0);
}

static void reasons_are_capped_with_a_summary(void)
{
    enum { N = 100 };
    static ord_item_t items[N];
    for (int i = 0; i < N; i++)
        items[i] = (ord_item_t){"x", 0, 1};
    ord_order_t o = good_order();
    o.items = items;
    o.nitems = N;
    ord_reasons_t r;
    CHECK_INT(ord_validate(&o, &r), ==, ORD_REASONS_MAX);
    CHECK_STR(r.r[ORD_REASONS_MAX - 1].code, ORD_R_MORE);
    CHECK(strstr(r.r[ORD_REASONS_MAX - 1].message, "69 more") != NULL);
    CHECK_STR(r.r[0].field, "items[0].quantity");
}

static void uuid_check(void)
{
    CHECK(ord_is_uuid(ORDER_ID));
    CHECK(ord_is_uuid("3F1C2B9E-8D4A-4F6B-9C2E-1A2B3C4D5E6F"));
    CHECK(!ord_is_uuid("3f1c2b9e8d4a4f6b9c2e1a2b3c4d5e6f"));
    CHECK(!ord_is_uuid("3f1c2b9e-8d4a-4f6b-9c2e-1a2b3c4d5e6g"));
    CHECK(!ord_is_uuid(""));
    CHECK(!ord_is_uuid(NULL));
}

/* ---- state record ---- */

static void state_round_trips_through_json(void)
{
    ord_state_t st = {.status = ORD_CONFIRMED,
                      .placed_event = EVENT_A,
                      .last_event = PAY_1,
                      .customer_id = "cust-\"7\"",
                      .customer_email = "ada@example.com",
                      .currency = "EUR",
                      .total_minor = 2999,
                      .changed_at = 1790000000123};
    char *text = ord_state_format(&st);
    REQUIRE(text != NULL);
    ord_state_t back;
    lev_error_t err;
    REQUIRE(ord_state_parse(text, &back, &err) == 0);
    CHECK_INT(back.status, ==, ORD_CONFIRMED);
    CHECK_STR(back.placed_event, EVENT_A);
    CHECK_STR(back.last_event, PAY_1);
    CHECK_STR(back.customer_id, "cust-\"7\"");
    CHECK_STR(back.customer_email, "ada@example.com");
    CHECK_STR(back.currency, "EUR");
    CHECK_INT(back.total_minor, ==, 2999);
    CHECK_INT(back.changed_at, ==, 1790000000123);
    char *again = ord_state_format(&back);
    CHECK_STR(again, text); /* stable text: compare-and-set compares it */
    free(again);
    ord_state_clear(&back);
    free(text);

    st.customer_email = NULL;
    text = ord_state_format(&st);
    REQUIRE(text && ord_state_parse(text, &back, &err) == 0);
    CHECK(back.customer_email == NULL);
    ord_state_clear(&back);
    free(text);
}

static void state_parse_rejects_what_it_did_not_write(void)
{
    ord_state_t st;
    lev_error_t err;
    const char *bad[] = {
        NULL,
        "",
        "not json",
        "[]",
        "{}",
        "{\"v\":2,\"status\":\"accepted\"}",
        "{\"v\":1,\"status\":\"placed\",\"placed_event\":\"a\",\"last_event\":\"a\","
        "\"customer_id\":\"c\",\"currency\":\"EUR\",\"total_minor\":1,\"changed_at\":1}",
        "{\"v\":1,\"status\":\"weird\",\"placed_event\":\"a\",\"last_event\":\"a\","
        "\"customer_id\":\"c\",\"currency\":\"EUR\",\"total_minor\":1,\"changed_at\":1}",
        "{\"v\":1,\"status\":\"accepted\",\"placed_event\":\"a\",\"last_event\":\"a\","
        "\"customer_id\":\"c\",\"currency\":\"EUR\",\"total_minor\":\"1\",\"changed_at\":1}",
        "{\"v\":1,\"status\":\"accepted\",\"last_event\":\"a\","
        "\"customer_id\":\"c\",\"currency\":\"EUR\",\"total_minor\":1,\"changed_at\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(ord_state_parse(bad[i], &st, &err), ==, LEV_ERR_JSON);
        CHECK(st.placed_event == NULL);
    }
}

/* ---- transitions ---- */

static void placed_decides_once(void)
{
    ord_order_t o = good_order();
    ord_state_t next;
    const char *why = NULL;
    CHECK_INT(ord_on_placed(NULL, EVENT_A, &o, 1, 42, &next, &why), ==, ORD_ACT_WRITE);
    CHECK_INT(next.status, ==, ORD_ACCEPTED);
    CHECK_STR(next.placed_event, EVENT_A);
    CHECK_STR(next.last_event, EVENT_A);
    CHECK_STR(next.customer_email, "ada@example.com");
    CHECK_INT(next.total_minor, ==, 2999);
    CHECK_INT(next.changed_at, ==, 42);
    CHECK(why != NULL);

    ord_state_t again;
    /* the same event again (crash before its output was acknowledged): re-emit */
    CHECK_INT(ord_on_placed(&next, EVENT_A, &o, 1, 43, &again, NULL), ==, ORD_ACT_REEMIT);
    /* a second OrderPlaced for the same order id: nothing, even if its verdict differs */
    CHECK_INT(ord_on_placed(&next, EVENT_B, &o, 1, 43, &again, NULL), ==, ORD_ACT_IGNORE);
    CHECK_INT(ord_on_placed(&next, EVENT_B, &o, 0, 43, &again, NULL), ==, ORD_ACT_IGNORE);
    ord_state_clear(&again);
    ord_state_clear(&next);

    CHECK_INT(ord_on_placed(NULL, EVENT_A, &o, 0, 42, &next, NULL), ==, ORD_ACT_WRITE);
    CHECK_INT(next.status, ==, ORD_REJECTED);
    CHECK_INT(ord_on_placed(&next, EVENT_A, &o, 0, 43, &again, NULL), ==, ORD_ACT_REEMIT);
    ord_state_clear(&next);
}

static void placed_after_settlement_changes_nothing(void)
{
    ord_state_t st = {.status = ORD_CONFIRMED,
                      .placed_event = EVENT_A,
                      .last_event = PAY_1,
                      .customer_id = "c",
                      .currency = "EUR"};
    ord_order_t o = good_order();
    ord_state_t next;
    CHECK_INT(ord_on_placed(&st, EVENT_A, &o, 1, 1, &next, NULL), ==, ORD_ACT_IGNORE);
    CHECK_INT(ord_on_placed(&st, EVENT_B, &o, 1, 1, &next, NULL), ==, ORD_ACT_IGNORE);
    st.status = ORD_CANCELLED;
    CHECK_INT(ord_on_placed(&st, EVENT_A, &o, 1, 1, &next, NULL), ==, ORD_ACT_IGNORE);
}

static void payment_moves_accepted_forward_once(void)
{
    ord_state_t acc = {.status = ORD_ACCEPTED,
                       .placed_event = EVENT_A,
                       .last_event = EVENT_A,
                       .customer_id = "c",
                       .customer_email = "e@x",
                       .currency = "EUR",
                       .total_minor = 10,
                       .changed_at = 1};
    ord_state_t next, again;
    CHECK_INT(ord_on_payment(&acc, PAY_1, 1, 99, &next, NULL), ==, ORD_ACT_WRITE);
    CHECK_INT(next.status, ==, ORD_CONFIRMED);
    CHECK_STR(next.last_event, PAY_1);
    CHECK_STR(next.placed_event, EVENT_A);
    CHECK_STR(next.customer_email, "e@x");
    CHECK_INT(next.changed_at, ==, 99);
    /* redelivery of the settling event: re-emit; any other result: nothing */
    CHECK_INT(ord_on_payment(&next, PAY_1, 1, 100, &again, NULL), ==, ORD_ACT_REEMIT);
    CHECK_INT(ord_on_payment(&next, PAY_2, 1, 100, &again, NULL), ==, ORD_ACT_IGNORE);
    CHECK_INT(ord_on_payment(&next, PAY_2, 0, 100, &again, NULL), ==, ORD_ACT_IGNORE);
    ord_state_clear(&next);

    CHECK_INT(ord_on_payment(&acc, PAY_1, 0, 99, &next, NULL), ==, ORD_ACT_WRITE);
    CHECK_INT(next.status, ==, ORD_CANCELLED);
    /* a late success cannot revive a cancelled order */
    CHECK_INT(ord_on_payment(&next, PAY_2, 1, 100, &again, NULL), ==, ORD_ACT_IGNORE);
    ord_state_clear(&next);
}

static void payment_for_unknown_or_rejected_order(void)
{
    ord_state_t next;
    CHECK_INT(ord_on_payment(NULL, PAY_1, 1, 1, &next, NULL), ==, ORD_ACT_UNKNOWN);
    ord_state_t rej = {.status = ORD_REJECTED, .placed_event = EVENT_A, .last_event = EVENT_A};
    CHECK_INT(ord_on_payment(&rej, PAY_1, 1, 1, &next, NULL), ==, ORD_ACT_IGNORE);
}

static void status_names(void)
{
    CHECK_STR(ord_status_name(ORD_ACCEPTED), "accepted");
    CHECK_STR(ord_status_name(ORD_CANCELLED), "cancelled");
    CHECK_STR(ord_status_name((ord_status_t)99), "unknown");
}

/* ---- events over the real schemas ---- */

static lev_schemas_t *schemas;
static lev_codec_t *codec;

/* Releases the codec at exit (leak checkers see a clean run). */
static void codec_release(void)
{
    lev_codec_destroy(codec);
    lev_schemas_destroy(schemas);
}

/* Loads schemas/ once (LEV_SCHEMA_DIRS, set by ctest). */
static int codec_ready(void)
{
    if (codec)
        return 1;
    lev_error_t err;
    schemas = lev_schemas_new();
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    if (!schemas || lev_schemas_load_path(schemas, dirs ? dirs : "schemas", &err) != 0) {
        char buf[800];
        fprintf(stderr, "schemas: %s\n", lev_error_format(&err, buf, sizeof buf));
        return 0;
    }
    codec = lev_codec_new(schemas, NULL);
    atexit(codec_release);
    return codec != NULL;
}

/* A value of type from JSON text (Avro JSON encoding). */
static int value_from_json(const char *type, const char *text, avro_value_t *out)
{
    lev_error_t err;
    json_t *j = json_loads(text, 0, NULL);
    const lev_schema_t *s = lev_schemas_find(schemas, type);
    int rc = j && s ? lev_codec_from_json(codec, s, j, out, &err) : -1;
    if (rc != 0 && j && s) {
        char buf[800];
        fprintf(stderr, "from_json: %s\n", lev_error_format(&err, buf, sizeof buf));
    }
    json_decref(j);
    return rc;
}

/* Encodes and decodes v (of type) through the wire format into *back. */
static int round_trip(const char *type, const avro_value_t *v, avro_value_t *back)
{
    void *buf = NULL;
    size_t len = 0;
    const lev_schema_t *s = lev_schemas_find(schemas, type);
    int rc = lev_codec_encode(codec, s, v, &buf, &len, NULL);
    if (rc == 0)
        rc = lev_codec_decode(codec, buf, len, NULL, back, NULL, NULL);
    free(buf);
    return rc;
}

static const char placed_json[] =
    "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"cust-7\","
    "\"customer_email\":{\"string\":\"ada@example.com\"},"
    "\"items\":[{\"sku\":\"sku-1\",\"quantity\":2,\"unit_price_minor\":1250},"
    "{\"sku\":\"sku-2\",\"quantity\":1,\"unit_price_minor\":499}],"
    "\"currency\":\"EUR\",\"total_minor\":2999,\"payment_token\":\"tok_visa\","
    "\"placed_at\":1790000000000}";

static void order_placed_value_is_read_whole(void)
{
    REQUIRE(codec_ready());
    avro_value_t v;
    REQUIRE(value_from_json(ORD_T_PLACED, placed_json, &v) == 0);
    ord_order_t o;
    lev_error_t err;
    REQUIRE(ord_order_from_value(&v, &o, &err) == 0);
    CHECK_STR(o.order_id, ORDER_ID);
    CHECK_STR(o.customer_id, "cust-7");
    CHECK_STR(o.customer_email, "ada@example.com");
    CHECK_STR(o.currency, "EUR");
    CHECK_STR(o.payment_token, "tok_visa");
    CHECK_INT(o.total_minor, ==, 2999);
    CHECK_INT(o.placed_at, ==, 1790000000000);
    REQUIRE(o.nitems == 2);
    CHECK_STR(o.items[1].sku, "sku-2");
    CHECK_INT(o.items[0].quantity, ==, 2);
    CHECK_INT(o.items[0].unit_price_minor, ==, 1250);
    ord_reasons_t r;
    CHECK_INT(ord_validate(&o, &r), ==, 0);
    ord_order_clear(&o);
    avro_value_decref(&v);

    /* no e-mail */
    char *nomail = strdup(placed_json);
    char *at = strstr(nomail, "{\"string\":\"ada@example.com\"}");
    REQUIRE(at != NULL);
    memcpy(at, "null", 4);
    memmove(at + 4, at + strlen("{\"string\":\"ada@example.com\"}"),
            strlen(at + strlen("{\"string\":\"ada@example.com\"}")) + 1);
    REQUIRE(value_from_json(ORD_T_PLACED, nomail, &v) == 0);
    REQUIRE(ord_order_from_value(&v, &o, &err) == 0);
    CHECK(o.customer_email == NULL);
    ord_order_clear(&o);
    avro_value_decref(&v);
    free(nomail);
}

/* Sets a string field of rec to the len bytes at s (NULs included). */
static int set_raw(avro_value_t *rec, const char *name, const char *s, size_t len)
{
    avro_value_t f, branch;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0)
        return -1;
    if (avro_value_get_type(&f) == AVRO_UNION) { /* ["null","string"]: the string */
        if (avro_value_set_branch(&f, 1, &branch) != 0)
            return -1;
        f = branch;
    }
    char *copy = malloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    int rc = avro_value_set_string_len(&f, copy, len + 1);
    free(copy);
    return rc;
}

static void strings_with_nul_or_control_characters_are_bad_input(void)
{
    REQUIRE(codec_ready());
    static const struct {
        const char *field; /* "sku": the first item's */
        const char *bytes;
        size_t len;
        const char *where, *what;
    } cases[] = {
        {"customer_id", "cust\0-7", 7, "customer_id", "NUL byte (at byte 4)"},
        {"order_id", "\0" ORDER_ID, 37, "order_id", "NUL byte (at byte 0)"},
        {"customer_email", "ada@example.com\r\nBcc: eve@example.com", 38, "customer_email",
         "control character (0x0d at byte 15)"},
        {"currency", "EU\tR", 4, "currency", "control character (0x09 at byte 2)"},
        {"payment_token", "tok\x7f", 4, "payment_token", "control character (0x7f at byte 3)"},
        {"sku", "\0sku-1", 6, "items[0].sku", "NUL byte (at byte 0)"},
        {"sku", "sku\n1", 5, "items[0].sku", "control character (0x0a at byte 3)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        avro_value_t v, items, item;
        REQUIRE(value_from_json(ORD_T_PLACED, placed_json, &v) == 0);
        avro_value_t *target = &v;
        if (strcmp(cases[i].field, "sku") == 0) {
            REQUIRE(avro_value_get_by_name(&v, "items", &items, NULL) == 0);
            REQUIRE(avro_value_get_by_index(&items, 0, &item, NULL) == 0);
            target = &item;
        }
        REQUIRE(set_raw(target, cases[i].field, cases[i].bytes, cases[i].len) == 0);
        ord_order_t o;
        lev_error_t err = {0};
        CHECK_INT(ord_order_from_value(&v, &o, &err), ==, LEV_ERR_DECODE);
        CHECK_STR(err.where, cases[i].where);
        if (!strstr(err.text, cases[i].what))
            fprintf(stderr, "  case %zu: \"%s\" lacks \"%s\"\n", i, err.text, cases[i].what);
        CHECK(strstr(err.text, cases[i].what) != NULL);
        avro_value_decref(&v);
    }
    /* free text may hold line ends (a decline reason), never a NUL */
    avro_value_t v;
    ord_payment_t p;
    REQUIRE(value_from_json(ORD_T_PAYMENT_FAILED,
                            "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
                            "\"amount_minor\":5,\"currency\":\"EUR\",\"reason_code\":\"X\","
                            "\"reason\":\"line one\\nline two\",\"failed_at\":1}",
                            &v) == 0);
    CHECK(ord_payment_from_value(&v, 0, &p, NULL) == 0);
    REQUIRE(set_raw(&v, "reason", "cut\0here", 8) == 0);
    lev_error_t err = {0};
    CHECK(ord_payment_from_value(&v, 0, &p, &err) != 0);
    CHECK_STR(err.where, "reason");
    REQUIRE(set_raw(&v, "reason", "fine", 4) == 0);
    REQUIRE(set_raw(&v, "reason_code", "X\r\nY", 4) == 0);
    CHECK(ord_payment_from_value(&v, 0, &p, &err) != 0);
    CHECK_STR(err.where, "reason_code");
    avro_value_decref(&v);
}

static void outputs_encode_and_carry_the_order(void)
{
    REQUIRE(codec_ready());
    avro_value_t in, out, back;
    ord_order_t o;
    REQUIRE(value_from_json(ORD_T_PLACED, placed_json, &in) == 0);
    REQUIRE(ord_order_from_value(&in, &o, NULL) == 0);

    /* accepted */
    REQUIRE(lev_codec_new_value(codec, lev_schemas_find(schemas, ORD_T_ACCEPTED), &out) == 0);
    CHECK(ord_accepted_fill(&out, &o, 77) == 0);
    REQUIRE(round_trip(ORD_T_ACCEPTED, &out, &back) == 0);
    const char *s;
    int64_t n;
    CHECK(lev_value_get_string(&back, "payment_token", &s, NULL) == 0 && !strcmp(s, "tok_visa"));
    CHECK(lev_value_get_long(&back, "total_minor", &n) == 0 && n == 2999);
    CHECK(lev_value_get_long(&back, "accepted_at", &n) == 0 && n == 77);
    avro_value_decref(&back);
    avro_value_decref(&out);

    /* rejected with reasons */
    ord_reasons_t r = {0};
    o.total_minor = 1;
    REQUIRE(ord_validate(&o, &r) == 1);
    REQUIRE(lev_codec_new_value(codec, lev_schemas_find(schemas, ORD_T_REJECTED), &out) == 0);
    CHECK(ord_rejected_fill(&out, &o, &r, 78) == 0);
    REQUIRE(round_trip(ORD_T_REJECTED, &out, &back) == 0);
    json_t *j = lev_codec_to_json(&back, NULL);
    REQUIRE(j != NULL);
    json_t *reasons = json_object_get(j, "reasons");
    CHECK_INT(json_array_size(reasons), ==, 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(reasons, 0), "code")),
              ORD_R_TOTAL_MISMATCH);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "customer_email"), "string")),
              "ada@example.com");
    json_decref(j);
    avro_value_decref(&back);
    avro_value_decref(&out);

    /* confirmed and cancelled from a state and a payment */
    ord_state_t st = {.status = ORD_CONFIRMED,
                      .customer_id = "cust-7",
                      .customer_email = NULL,
                      .currency = "EUR",
                      .total_minor = 2999,
                      .changed_at = 79};
    ord_payment_t p = {.succeeded = 1,
                       .order_id = ORDER_ID,
                       .customer_id = "cust-7",
                       .payment_id = PAY_1,
                       .currency = "EUR",
                       .amount_minor = 2999};
    REQUIRE(lev_codec_new_value(codec, lev_schemas_find(schemas, ORD_T_CONFIRMED), &out) == 0);
    CHECK(ord_confirmed_fill(&out, ORDER_ID, &st, &p) == 0);
    REQUIRE(round_trip(ORD_T_CONFIRMED, &out, &back) == 0);
    CHECK(lev_value_get_string(&back, "payment_id", &s, NULL) == 0 && !strcmp(s, PAY_1));
    CHECK(lev_value_get_long(&back, "confirmed_at", &n) == 0 && n == 79);
    avro_value_decref(&back);
    avro_value_decref(&out);

    p = (ord_payment_t){.order_id = ORDER_ID,
                        .customer_id = "cust-7",
                        .currency = "EUR",
                        .amount_minor = 2999,
                        .reason_code = "CARD_DECLINED",
                        .reason = "declined"};
    st.status = ORD_CANCELLED;
    REQUIRE(lev_codec_new_value(codec, lev_schemas_find(schemas, ORD_T_CANCELLED), &out) == 0);
    CHECK(ord_cancelled_fill(&out, ORDER_ID, &st, &p) == 0);
    REQUIRE(round_trip(ORD_T_CANCELLED, &out, &back) == 0);
    CHECK(lev_value_get_string(&back, "reason_code", &s, NULL) == 0 && !strcmp(s, "CARD_DECLINED"));
    avro_value_decref(&back);
    avro_value_decref(&out);

    ord_order_clear(&o);
    avro_value_decref(&in);
}

static void payment_values_are_read(void)
{
    REQUIRE(codec_ready());
    avro_value_t v;
    ord_payment_t p;
    REQUIRE(value_from_json(ORD_T_PAYMENT_SUCCEEDED,
                            "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
                            "\"payment_id\":\"" PAY_1 "\",\"amount_minor\":5,\"currency\":\"EUR\","
                            "\"gateway\":\"ledger\",\"charged_at\":1}",
                            &v) == 0);
    REQUIRE(ord_payment_from_value(&v, 1, &p, NULL) == 0);
    CHECK_STR(p.payment_id, PAY_1);
    CHECK_INT(p.amount_minor, ==, 5);
    CHECK(p.reason_code == NULL);
    avro_value_decref(&v);
    REQUIRE(value_from_json(ORD_T_PAYMENT_FAILED,
                            "{\"order_id\":\"" ORDER_ID "\",\"customer_id\":\"c\","
                            "\"amount_minor\":5,\"currency\":\"EUR\",\"reason_code\":\"X\","
                            "\"reason\":\"y\",\"failed_at\":1}",
                            &v) == 0);
    REQUIRE(ord_payment_from_value(&v, 0, &p, NULL) == 0);
    CHECK_STR(p.reason_code, "X");
    CHECK(p.payment_id == NULL);
    avro_value_decref(&v);
}

CHECK_MAIN(CASE(currency_list_is_sorted_unique_and_well_formed),
           CASE(currency_find_knows_iso_codes_and_rejects_others),
           CASE(amount_format_uses_minor_units), CASE(valid_order_has_no_reasons),
           CASE(every_problem_is_listed_with_its_field), CASE(empty_order_is_rejected_as_no_items),
           CASE(total_must_match_the_lines), CASE(total_overflow_is_detected_not_wrapped),
           CASE(reasons_are_capped_with_a_summary), CASE(uuid_check),
           CASE(state_round_trips_through_json), CASE(state_parse_rejects_what_it_did_not_write),
           CASE(placed_decides_once), CASE(placed_after_settlement_changes_nothing),
           CASE(payment_moves_accepted_forward_once), CASE(payment_for_unknown_or_rejected_order),
           CASE(status_names), CASE(order_placed_value_is_read_whole),
           CASE(outputs_encode_and_carry_the_order), CASE(payment_values_are_read),
           CASE(strings_with_nul_or_control_characters_are_bad_input))
