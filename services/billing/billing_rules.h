/*
 * billing-service business rules, as plain functions (no Kafka, no Redis,
 * no network): the payment id of an order, the built-in decline rules, the
 * gateway request and how its answer is read, and the ledger record that
 * makes the charge of an order happen once.
 *
 * A charge is idempotent by construction: its payment id is a name-based
 * UUID of the order id, sent to a gateway as the Idempotency-Key and used
 * as the ledger key's identity, so a redelivered or replayed OrderAccepted
 * can never become a second charge.
 */
#ifndef BILLING_RULES_H
#define BILLING_RULES_H

#include <libevents.h>
#include <stddef.h>
#include <stdint.h>

#define BILL_T_ACCEPTED "shop.order.OrderAccepted"
#define BILL_T_SUCCEEDED "shop.billing.PaymentSucceeded"
#define BILL_T_FAILED "shop.billing.PaymentFailed"

/* Decline codes (PaymentFailed.reason_code) of the built-in rules. */
#define BILL_R_CARD_DECLINED "CARD_DECLINED" /* payment_token starts with "tok_decline" */
#define BILL_R_AMOUNT_LIMIT "AMOUNT_LIMIT"   /* amount above BILLING_AMOUNT_LIMIT_MINOR */
#define BILL_R_BAD_AMOUNT "BAD_AMOUNT"       /* negative amount */

/* The token prefix the built-in rules decline. */
#define BILL_DECLINE_TOKEN_PREFIX "tok_decline"

/* What to charge, read from an OrderAccepted (strings borrowed). */
typedef struct bill_charge_s {
    const char *order_id;
    const char *customer_id;
    const char *currency;
    int64_t amount_minor;
    const char *payment_token;
} bill_charge_t;

/* The outcome of a charge, as recorded in the ledger and emitted. */
typedef struct bill_outcome_s {
    int succeeded;
    char payment_id[LEV_UUID_STR_LEN];
    int64_t amount_minor;
    char currency[8];
    char code[48];     /* decline code when !succeeded */
    char reason[256];  /* decline text when !succeeded */
    char gateway[128]; /* "ledger" or the gateway's host */
    int64_t at;        /* when charged or declined, ms since the epoch */
} bill_outcome_t;

/* The payment id of an order: a version 5 UUID derived from the order id
 * (lev_uuid_derive(order_id, "shop.billing.Payment", 0)). Returns 0 or
 * LEV_ERR_ARG. */
int bill_payment_id(const char *order_id, char out[LEV_UUID_STR_LEN]);

/* Starts an outcome for charge c: payment id, amount and currency set,
 * not succeeded, everything else empty. */
void bill_outcome_init(bill_outcome_t *out, const bill_charge_t *c, const char *payment_id);

/* The built-in rules, used without a gateway: a token starting with
 * "tok_decline" is declined (CARD_DECLINED); an amount above limit_minor
 * is declined (AMOUNT_LIMIT); a negative amount is declined (BAD_AMOUNT);
 * anything else is charged. Fills out (payment_id, amount, currency, code,
 * reason, succeeded); gateway and at are set by the caller. */
void bill_decide(const bill_charge_t *c, int64_t limit_minor, const char *payment_id,
                 bill_outcome_t *out);

/* The JSON body POSTed to a gateway (malloc'd, caller frees):
 * {"payment_id":..,"order_id":..,"customer_id":..,"amount_minor":..,
 *  "currency":..,"payment_token":..}. NULL when out of memory. */
char *bill_gateway_request(const bill_charge_t *c, const char *payment_id);

/* How a gateway answer is treated. */
typedef enum bill_verdict_e {
    BILL_CHARGED = 0, /* 2xx without a decline: PaymentSucceeded */
    BILL_DECLINED,    /* 402, or 2xx whose body says "status":"declined": PaymentFailed */
    BILL_TRANSIENT,   /* no answer, timeout, 5xx, 408, 429: retry */
    BILL_PERMANENT,   /* any other status: dead-letter */
} bill_verdict_t;

/* Reads a gateway answer into out (started with bill_outcome_init; only
 * succeeded, code and reason are changed). status 0 means no answer. On
 * BILL_DECLINED, out's
 * code and reason come from the body's "code" (or "decline_code") and
 * "message" members when present, else CARD_DECLINED and a generic text.
 * out->succeeded is set to 1 for BILL_CHARGED only. `why` receives a short text for
 * logs and dead-letter headers. */
bill_verdict_t bill_gateway_verdict(long status, const char *body, size_t len, bill_outcome_t *out,
                                    char *why, size_t why_size);

/* The ledger record of an outcome (compact JSON, malloc'd; NULL when out of
 * memory) and its parser (0, or LEV_ERR_JSON). */
char *bill_record_format(const bill_outcome_t *o);
int bill_record_parse(const char *text, bill_outcome_t *out, lev_error_t *err);

/* 1 when `source` (an event's ce_source, may be NULL) is one of the
 * comma-separated sources of `list` (exact matches, spaces around commas
 * ignored), else 0. */
int bill_source_trusted(const char *source, const char *list);

/* Reads an OrderAccepted value (strings borrowed from v). */
int bill_charge_from_value(const avro_value_t *v, bill_charge_t *c, lev_error_t *err);

/* Fills an empty PaymentSucceeded (o->succeeded) or PaymentFailed value. */
int bill_payment_fill(avro_value_t *out, const bill_charge_t *c, const bill_outcome_t *o);

#endif
