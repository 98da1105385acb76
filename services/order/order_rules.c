/* order-service rules: validation and the order state machine. */
#include "order_rules.h"

#include "svc.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Validation
 * ====================================================================== */

/* Collects reasons, counting those that do not fit. */
typedef struct {
    ord_reasons_t *out;
    size_t total;
} reasons_acc_t;

/* Adds one reason (or only counts it when the list is full). */
static void reason_add(reasons_acc_t *acc, const char *code, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void reason_add(reasons_acc_t *acc, const char *code, const char *field, const char *fmt,
                       ...)
{
    acc->total++;
    if (acc->out->n >= ORD_REASONS_MAX)
        return;
    ord_reason_t *r = &acc->out->r[acc->out->n++];
    snprintf(r->code, sizeof r->code, "%s", code);
    snprintf(r->field, sizeof r->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

/* 1 when s is NULL, empty or only white space. */
static int blank(const char *s)
{
    if (!s)
        return 1;
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

int ord_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

size_t ord_validate(const ord_order_t *o, ord_reasons_t *out)
{
    reasons_acc_t acc = {out, 0};
    char field[64];
    out->n = 0;

    if (!ord_is_uuid(o->order_id))
        reason_add(&acc, ORD_R_BAD_ORDER_ID, "order_id", "order_id must be a UUID");
    if (blank(o->customer_id))
        reason_add(&acc, ORD_R_NO_CUSTOMER, "customer_id", "the order names no customer");
    if (o->nitems == 0)
        reason_add(&acc, ORD_R_NO_ITEMS, "items", "the order has no items");

    int lines_ok = o->nitems > 0;
    for (size_t i = 0; i < o->nitems; i++) {
        const ord_item_t *it = &o->items[i];
        if (blank(it->sku)) {
            snprintf(field, sizeof field, "items[%zu].sku", i);
            reason_add(&acc, ORD_R_BAD_SKU, field, "the item has no sku");
            lines_ok = 0;
        }
        if (it->quantity <= 0) {
            snprintf(field, sizeof field, "items[%zu].quantity", i);
            reason_add(&acc, ORD_R_BAD_QUANTITY, field, "quantity must be positive, got %d",
                       (int)it->quantity);
            lines_ok = 0;
        }
        if (it->unit_price_minor < 0) {
            snprintf(field, sizeof field, "items[%zu].unit_price_minor", i);
            reason_add(&acc, ORD_R_BAD_PRICE, field, "unit price must not be negative, got %lld",
                       (long long)it->unit_price_minor);
            lines_ok = 0;
        }
    }

    if (!svc_currency_find(o->currency))
        reason_add(&acc, ORD_R_UNKNOWN_CURRENCY, "currency",
                   "\"%.16s\" is not a known ISO 4217 currency code",
                   o->currency ? o->currency : "");

    if (lines_ok) {
        int64_t sum = 0;
        int overflow = 0;
        for (size_t i = 0; i < o->nitems && !overflow; i++) {
            int64_t q = o->items[i].quantity, p = o->items[i].unit_price_minor;
            /* q > 0 and p >= 0 here */
            if (p > 0 && q > INT64_MAX / p)
                overflow = 1;
            else if (sum > INT64_MAX - q * p)
                overflow = 1;
            else
                sum += q * p;
            if (overflow) {
                snprintf(field, sizeof field, "items[%zu]", i);
                reason_add(&acc, ORD_R_TOTAL_OVERFLOW, field,
                           "the order total does not fit in a 64-bit integer");
            }
        }
        if (!overflow && sum != o->total_minor)
            reason_add(&acc, ORD_R_TOTAL_MISMATCH, "total_minor",
                       "total_minor is %lld but the items sum to %lld", (long long)o->total_minor,
                       (long long)sum);
    }

    if (blank(o->payment_token))
        reason_add(&acc, ORD_R_NO_PAYMENT_TOKEN, "payment_token", "the order has no payment token");

    if (acc.total > ORD_REASONS_MAX) {
        ord_reason_t *last = &out->r[ORD_REASONS_MAX - 1];
        snprintf(last->code, sizeof last->code, "%s", ORD_R_MORE);
        last->field[0] = '\0';
        snprintf(last->message, sizeof last->message, "%zu more problems not listed",
                 acc.total - (ORD_REASONS_MAX - 1));
    }
    return out->n;
}

/* ======================================================================
 * State records
 * ====================================================================== */

static const char *const status_names[] = {"placed", "accepted", "rejected", "confirmed",
                                           "cancelled"};

const char *ord_status_name(ord_status_t s)
{
    if ((unsigned)s < sizeof status_names / sizeof status_names[0])
        return status_names[s];
    return "unknown";
}

void ord_state_clear(ord_state_t *st)
{
    if (!st)
        return;
    free(st->placed_event);
    free(st->last_event);
    free(st->customer_id);
    free(st->customer_email);
    free(st->currency);
    memset(st, 0, sizeof *st);
}

/* Copies src's strings into dst (cleared first on failure). */
static int state_copy(ord_state_t *dst, const ord_state_t *src)
{
    memset(dst, 0, sizeof *dst);
    dst->status = src->status;
    dst->total_minor = src->total_minor;
    dst->changed_at = src->changed_at;
    dst->placed_event = svc_strdup(src->placed_event);
    dst->last_event = svc_strdup(src->last_event);
    dst->customer_id = svc_strdup(src->customer_id);
    dst->customer_email = svc_strdup(src->customer_email);
    dst->currency = svc_strdup(src->currency);
    if ((src->placed_event && !dst->placed_event) || (src->last_event && !dst->last_event) ||
        (src->customer_id && !dst->customer_id) || (src->customer_email && !dst->customer_email) ||
        (src->currency && !dst->currency)) {
        ord_state_clear(dst);
        return LEV_ERR_NOMEM;
    }
    return LEV_OK;
}

char *ord_state_format(const ord_state_t *st)
{
    char *text = NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad =
        json_object_set_new(o, "v", json_integer(1)) ||
        json_object_set_new(o, "status", json_string(ord_status_name(st->status))) ||
        json_object_set_new(o, "placed_event",
                            json_string(st->placed_event ? st->placed_event : "")) ||
        json_object_set_new(o, "last_event", json_string(st->last_event ? st->last_event : "")) ||
        json_object_set_new(o, "customer_id", json_string(st->customer_id ? st->customer_id : ""));
    if (!bad && st->customer_email)
        bad = json_object_set_new(o, "customer_email", json_string(st->customer_email));
    if (!bad)
        bad = json_object_set_new(o, "currency", json_string(st->currency ? st->currency : "")) ||
              json_object_set_new(o, "total_minor", json_integer(st->total_minor)) ||
              json_object_set_new(o, "changed_at", json_integer(st->changed_at));
    if (!bad)
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* A malloc'd copy of the string member `name` of o, or NULL (with *bad set)
 * when it is missing or not a string. */
static char *json_str_dup(json_t *o, const char *name, int *bad)
{
    json_t *v = json_object_get(o, name);
    char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    if (!s)
        *bad = 1;
    return s;
}

int ord_state_parse(const char *text, ord_state_t *out, lev_error_t *err)
{
    int rc = LEV_OK, bad = 0;
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    json_t *o = text ? json_loads(text, 0, &jerr) : NULL;
    if (!json_is_object(o)) {
        rc = svc_error(err, LEV_ERR_JSON, "order state", "not a JSON object");
        goto done;
    }
    json_t *v = json_object_get(o, "v");
    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        rc = svc_error(err, LEV_ERR_JSON, "order state", "unknown record version");
        goto done;
    }
    const char *status = json_string_value(json_object_get(o, "status"));
    out->status = ORD_PLACED;
    for (size_t i = ORD_ACCEPTED; status && i < sizeof status_names / sizeof status_names[0]; i++)
        if (strcmp(status, status_names[i]) == 0)
            out->status = (ord_status_t)i;
    if (out->status == ORD_PLACED) {
        rc = svc_error(err, LEV_ERR_JSON, "order state.status", "unknown status");
        goto done;
    }
    out->placed_event = json_str_dup(o, "placed_event", &bad);
    out->last_event = json_str_dup(o, "last_event", &bad);
    out->customer_id = json_str_dup(o, "customer_id", &bad);
    out->currency = json_str_dup(o, "currency", &bad);
    json_t *email = json_object_get(o, "customer_email");
    if (json_is_string(email) && !(out->customer_email = strdup(json_string_value(email))))
        bad = 1;
    json_t *total = json_object_get(o, "total_minor"), *at = json_object_get(o, "changed_at");
    if (!json_is_integer(total) || !json_is_integer(at))
        bad = 1;
    else {
        out->total_minor = json_integer_value(total);
        out->changed_at = json_integer_value(at);
    }
    if (bad)
        rc = svc_error(err, LEV_ERR_JSON, "order state",
                       "a member is missing or has the wrong type");
done:
    json_decref(o);
    if (rc != LEV_OK)
        ord_state_clear(out);
    return rc;
}

/* ======================================================================
 * Transitions
 * ====================================================================== */

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

int ord_on_placed(const ord_state_t *cur, const char *event_id, const ord_order_t *o, int valid,
                  int64_t now, ord_state_t *next, const char **why)
{
    memset(next, 0, sizeof *next);
    if (cur) {
        if (cur->placed_event && strcmp(cur->placed_event, event_id) == 0 &&
            (cur->status == ORD_ACCEPTED || cur->status == ORD_REJECTED)) {
            set_why(why, "redelivery of the OrderPlaced that decided this order");
            return ORD_ACT_REEMIT;
        }
        if (cur->placed_event && strcmp(cur->placed_event, event_id) == 0) {
            set_why(why, "redelivery of an OrderPlaced whose order has moved on");
            return ORD_ACT_IGNORE;
        }
        set_why(why, "duplicate OrderPlaced: the order exists (placed by another event)");
        return ORD_ACT_IGNORE;
    }
    next->status = valid ? ORD_ACCEPTED : ORD_REJECTED;
    next->placed_event = svc_strdup(event_id);
    next->last_event = svc_strdup(event_id);
    next->customer_id = svc_strdup(o->customer_id ? o->customer_id : "");
    next->customer_email = svc_strdup(o->customer_email);
    next->currency = svc_strdup(o->currency ? o->currency : "");
    next->total_minor = o->total_minor;
    next->changed_at = now;
    if (!next->placed_event || !next->last_event || !next->customer_id || !next->currency ||
        (o->customer_email && !next->customer_email)) {
        ord_state_clear(next);
        return LEV_ERR_NOMEM;
    }
    set_why(why, valid ? "new valid order" : "new invalid order");
    return ORD_ACT_WRITE;
}

int ord_on_payment(const ord_state_t *cur, const char *event_id, int succeeded, int64_t now,
                   ord_state_t *next, const char **why)
{
    memset(next, 0, sizeof *next);
    if (!cur) {
        set_why(why, "payment result for an order without a record");
        return ORD_ACT_UNKNOWN;
    }
    switch (cur->status) {
    case ORD_ACCEPTED:
        if (state_copy(next, cur) != LEV_OK)
            return LEV_ERR_NOMEM;
        free(next->last_event);
        if (!(next->last_event = svc_strdup(event_id))) {
            ord_state_clear(next);
            return LEV_ERR_NOMEM;
        }
        next->status = succeeded ? ORD_CONFIRMED : ORD_CANCELLED;
        next->changed_at = now;
        set_why(why, succeeded ? "payment succeeded" : "payment failed");
        return ORD_ACT_WRITE;
    case ORD_CONFIRMED:
    case ORD_CANCELLED:
        if (cur->last_event && strcmp(cur->last_event, event_id) == 0) {
            set_why(why, "redelivery of the payment result that settled this order");
            return ORD_ACT_REEMIT;
        }
        set_why(why, "late or duplicate payment result: the order is already settled");
        return ORD_ACT_IGNORE;
    case ORD_REJECTED:
        set_why(why, "payment result for a rejected order");
        return ORD_ACT_IGNORE;
    default:
        set_why(why, "payment result for an order in an unexpected state");
        return ORD_ACT_IGNORE;
    }
}
