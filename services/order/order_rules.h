/*
 * order-service business rules: validation of a placed order and the
 * order's state machine, as plain functions over plain structs (no Kafka,
 * no Redis), plus the conversions between those structs and the Avro
 * events of schemas/ (order_events.c).
 *
 * State machine (one record per order, in Redis):
 *
 *   (none) --OrderPlaced valid-----> accepted --PaymentSucceeded--> confirmed
 *   (none) --OrderPlaced invalid---> rejected           \--PaymentFailed--> cancelled
 *
 * "placed" is the absence of a record: the decision on an OrderPlaced is
 * written together with the order's details in one compare-and-set from
 * "absent". Transitions only go forward; each record remembers the id of
 * the OrderPlaced that created it and of the event that made the latest
 * transition, which tells a redelivery of that same event (emit the same
 * output again, with the same derived id) from a duplicate or late event
 * (ignore).
 */
#ifndef ORDER_RULES_H
#define ORDER_RULES_H

#include <libevents.h>
#include <stddef.h>
#include <stdint.h>

/* ======================================================================
 * Orders and validation
 * ====================================================================== */

typedef struct ord_item_s {
    const char *sku;
    int32_t quantity;
    int64_t unit_price_minor;
} ord_item_t;

/* A placed order. Strings are borrowed (from the decoded event); items is
 * owned when filled by ord_order_from_value (release with ord_order_clear). */
typedef struct ord_order_s {
    const char *order_id;
    const char *customer_id;
    const char *customer_email; /* NULL when not given */
    const char *currency;
    const char *payment_token;
    ord_item_t *items;
    size_t nitems;
    int64_t total_minor;
    int64_t placed_at;
} ord_order_t;

/* Reason codes of a rejection (OrderRejected.reasons[].code). */
#define ORD_R_BAD_ORDER_ID "BAD_ORDER_ID"         /* order_id is not a UUID */
#define ORD_R_NO_CUSTOMER "NO_CUSTOMER"           /* customer_id empty */
#define ORD_R_NO_ITEMS "NO_ITEMS"                 /* items empty */
#define ORD_R_BAD_SKU "BAD_SKU"                   /* items[i].sku empty */
#define ORD_R_BAD_QUANTITY "BAD_QUANTITY"         /* items[i].quantity <= 0 */
#define ORD_R_BAD_PRICE "BAD_PRICE"               /* items[i].unit_price_minor < 0 */
#define ORD_R_UNKNOWN_CURRENCY "UNKNOWN_CURRENCY" /* not in the ISO 4217 list */
#define ORD_R_TOTAL_OVERFLOW "TOTAL_OVERFLOW"     /* sum of lines exceeds a 64-bit integer */
#define ORD_R_TOTAL_MISMATCH "TOTAL_MISMATCH"     /* total_minor != sum of quantity x price */
#define ORD_R_NO_PAYMENT_TOKEN "NO_PAYMENT_TOKEN" /* payment_token empty */
#define ORD_R_MORE "MORE_PROBLEMS"                /* the list was cut at ORD_REASONS_MAX */

/* At most this many reasons are listed; when an order has more problems,
 * the last entry is an ORD_R_MORE reason saying how many were left out. */
#define ORD_REASONS_MAX 32

typedef struct ord_reason_s {
    char code[32];
    char field[64];
    char message[192];
} ord_reason_t;

typedef struct ord_reasons_s {
    ord_reason_t r[ORD_REASONS_MAX];
    size_t n;
} ord_reasons_t;

/* Validates an order and lists every problem found in `out`, in field
 * order. The total is checked (TOTAL_MISMATCH) only when every line is
 * valid, since a bad line makes the sum meaningless; the sum is computed
 * with overflow checks (TOTAL_OVERFLOW). Returns the number of reasons:
 * 0 means the order is valid. */
size_t ord_validate(const ord_order_t *o, ord_reasons_t *out);

/* 1 when s is a UUID in canonical text form (8-4-4-4-12 hex digits). */
int ord_is_uuid(const char *s);

/* ======================================================================
 * State
 * ====================================================================== */

typedef enum ord_status_e {
    ORD_PLACED = 0, /* no record yet */
    ORD_ACCEPTED,
    ORD_REJECTED,
    ORD_CONFIRMED,
    ORD_CANCELLED,
} ord_status_t;

/* "placed", "accepted", ... */
const char *ord_status_name(ord_status_t s);

/* The record kept per order. Strings are owned (ord_state_clear). */
typedef struct ord_state_s {
    ord_status_t status;
    char *placed_event; /* ce_id of the OrderPlaced that created the record */
    char *last_event;   /* ce_id of the event that made the latest transition */
    char *customer_id;
    char *customer_email; /* NULL when unknown */
    char *currency;
    int64_t total_minor;
    int64_t changed_at; /* time of the latest transition, ms since the epoch */
} ord_state_t;

void ord_state_clear(ord_state_t *st);

/* The record as compact JSON (malloc'd, caller frees), e.g.
 * {"v":1,"status":"accepted","placed_event":"...","last_event":"...",
 *  "customer_id":"c-1","customer_email":"a@b.c","currency":"EUR",
 *  "total_minor":1234,"changed_at":1790000000000}. NULL when out of memory. */
char *ord_state_format(const ord_state_t *st);

/* Parses a record written by ord_state_format. Returns 0, or LEV_ERR_JSON
 * with err filled when the text is not such a record. */
int ord_state_parse(const char *text, ord_state_t *out, lev_error_t *err);

/* What a handler does with an event, given the current record. */
typedef enum ord_action_e {
    ORD_ACT_WRITE = 0, /* compare-and-set the record to *next, then emit the output */
    ORD_ACT_REEMIT,    /* this same event made the current state: emit its output again */
    ORD_ACT_IGNORE,    /* duplicate, late or out-of-place event: change nothing, emit nothing */
    ORD_ACT_UNKNOWN,   /* a payment result for an order without a record */
} ord_action_t;

/* Decides on an OrderPlaced with ce_id event_id. cur is the current record
 * or NULL when there is none. `valid` is the validation verdict. On
 * ORD_ACT_WRITE, *next is the new record (accepted or rejected) with the
 * order's details and changed_at = now; the caller clears it. `why` (may
 * be NULL) receives a static explanation for logs. Returns the action, or
 * LEV_ERR_NOMEM. */
int ord_on_placed(const ord_state_t *cur, const char *event_id, const ord_order_t *o, int valid,
                  int64_t now, ord_state_t *next, const char **why);

/* Decides on a payment result (succeeded or not) with ce_id event_id: an
 * accepted order moves to confirmed or cancelled; a redelivery of the
 * event that made the current state re-emits; anything else is ignored,
 * and a missing record is ORD_ACT_UNKNOWN. */
int ord_on_payment(const ord_state_t *cur, const char *event_id, int succeeded, int64_t now,
                   ord_state_t *next, const char **why);

/* ======================================================================
 * Events (order_events.c): Avro values <-> structs
 * ====================================================================== */

#define ORD_T_PLACED "shop.order.OrderPlaced"
#define ORD_T_ACCEPTED "shop.order.OrderAccepted"
#define ORD_T_REJECTED "shop.order.OrderRejected"
#define ORD_T_CONFIRMED "shop.order.OrderConfirmed"
#define ORD_T_CANCELLED "shop.order.OrderCancelled"
#define ORD_T_PAYMENT_SUCCEEDED "shop.billing.PaymentSucceeded"
#define ORD_T_PAYMENT_FAILED "shop.billing.PaymentFailed"

/* A payment result; strings borrowed from the decoded event. */
typedef struct ord_payment_s {
    int succeeded;
    const char *order_id;
    const char *customer_id;
    const char *payment_id; /* PaymentSucceeded only, else NULL */
    const char *currency;
    int64_t amount_minor;
    const char *reason_code; /* PaymentFailed only, else NULL */
    const char *reason;      /* PaymentFailed only, else NULL */
} ord_payment_t;

/* Reads an OrderPlaced value. Strings are borrowed from v; items are
 * allocated (ord_order_clear). Returns 0, or an error naming the field. */
int ord_order_from_value(const avro_value_t *v, ord_order_t *o, lev_error_t *err);
void ord_order_clear(ord_order_t *o);

/* Reads a PaymentSucceeded (succeeded = 1) or PaymentFailed value. */
int ord_payment_from_value(const avro_value_t *v, int succeeded, ord_payment_t *p,
                           lev_error_t *err);

/* Fill empty values (of the named schemas) for the outputs. */
int ord_accepted_fill(avro_value_t *out, const ord_order_t *o, int64_t at);
int ord_rejected_fill(avro_value_t *out, const ord_order_t *o, const ord_reasons_t *r, int64_t at);
int ord_confirmed_fill(avro_value_t *out, const char *order_id, const ord_state_t *st,
                       const ord_payment_t *p);
int ord_cancelled_fill(avro_value_t *out, const char *order_id, const ord_state_t *st,
                       const ord_payment_t *p);

#endif
