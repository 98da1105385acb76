/* order-service rules: Avro event values to and from the rule structs. */
#include "order_rules.h"

#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Field access
 * ====================================================================== */

/* Sets a ["null","string"] field to s, or to null when s is NULL. */
static int set_opt_str(avro_value_t *rec, const char *name, const char *s)
{
    return s ? lev_value_set_string(rec, name, s) : lev_value_set_null(rec, name);
}

/* ======================================================================
 * Inputs
 * ====================================================================== */

void ord_order_clear(ord_order_t *o)
{
    if (!o)
        return;
    free(o->items);
    memset(o, 0, sizeof *o);
}

int ord_order_from_value(const avro_value_t *v, ord_order_t *o, lev_error_t *err)
{
    int rc;
    avro_value_t arr;
    size_t n = 0;
    memset(o, 0, sizeof *o);
    if ((rc = svc_get_ident(v, "order_id", &o->order_id, err)) ||
        (rc = svc_get_ident(v, "customer_id", &o->customer_id, err)) ||
        (rc = svc_get_opt_ident(v, "customer_email", &o->customer_email, err)) ||
        (rc = svc_get_ident(v, "currency", &o->currency, err)) ||
        (rc = svc_get_long(v, "total_minor", &o->total_minor, err)) ||
        (rc = svc_get_ident(v, "payment_token", &o->payment_token, err)) ||
        (rc = svc_get_long(v, "placed_at", &o->placed_at, err)))
        goto fail;
    if (avro_value_get_by_name(v, "items", &arr, NULL) != 0 || avro_value_get_size(&arr, &n) != 0) {
        rc = svc_error(err, LEV_ERR_DECODE, "items", "missing or not an array");
        goto fail;
    }
    if (n > 0 && !(o->items = calloc(n, sizeof *o->items))) {
        rc = svc_error(err, LEV_ERR_NOMEM, "items", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        avro_value_t el;
        ord_item_t *it = &o->items[i];
        if (avro_value_get_by_index(&arr, i, &el, NULL) != 0 ||
            lev_value_get_int(&el, "quantity", &it->quantity) != 0 ||
            lev_value_get_long(&el, "unit_price_minor", &it->unit_price_minor) != 0) {
            rc = svc_error(err, LEV_ERR_DECODE, "items", "item %zu is not an Item record", i);
            goto fail;
        }
        if ((rc = svc_get_ident(&el, "sku", &it->sku, err)) != 0) {
            if (err)
                snprintf(err->where, sizeof err->where, "items[%zu].sku", i);
            goto fail;
        }
    }
    o->nitems = n;
    return LEV_OK;
fail:
    ord_order_clear(o);
    return rc;
}

int ord_payment_from_value(const avro_value_t *v, int succeeded, ord_payment_t *p, lev_error_t *err)
{
    int rc;
    memset(p, 0, sizeof *p);
    p->succeeded = succeeded;
    if ((rc = svc_get_ident(v, "order_id", &p->order_id, err)) ||
        (rc = svc_get_ident(v, "customer_id", &p->customer_id, err)) ||
        (rc = svc_get_ident(v, "currency", &p->currency, err)) ||
        (rc = svc_get_long(v, "amount_minor", &p->amount_minor, err)))
        return rc;
    if (succeeded)
        return svc_get_ident(v, "payment_id", &p->payment_id, err);
    if ((rc = svc_get_ident(v, "reason_code", &p->reason_code, err)) ||
        (rc = svc_get_str(v, "reason", &p->reason, err)))
        return rc;
    return LEV_OK;
}

/* ======================================================================
 * Outputs
 * ====================================================================== */

int ord_accepted_fill(avro_value_t *out, const ord_order_t *o, int64_t at)
{
    if (lev_value_set_string(out, "order_id", o->order_id) ||
        lev_value_set_string(out, "customer_id", o->customer_id) ||
        lev_value_set_string(out, "currency", o->currency) ||
        lev_value_set_long(out, "total_minor", o->total_minor) ||
        lev_value_set_string(out, "payment_token", o->payment_token) ||
        lev_value_set_long(out, "accepted_at", at))
        return LEV_ERR_ENCODE;
    return LEV_OK;
}

int ord_rejected_fill(avro_value_t *out, const ord_order_t *o, const ord_reasons_t *r, int64_t at)
{
    avro_value_t arr, el;
    if (lev_value_set_string(out, "order_id", o->order_id) ||
        lev_value_set_string(out, "customer_id", o->customer_id) ||
        set_opt_str(out, "customer_email", o->customer_email) ||
        lev_value_set_long(out, "rejected_at", at) ||
        avro_value_get_by_name(out, "reasons", &arr, NULL) != 0)
        return LEV_ERR_ENCODE;
    for (size_t i = 0; i < r->n; i++) {
        if (avro_value_append(&arr, &el, NULL) != 0 ||
            lev_value_set_string(&el, "code", r->r[i].code) ||
            lev_value_set_string(&el, "field", r->r[i].field) ||
            lev_value_set_string(&el, "message", r->r[i].message))
            return LEV_ERR_ENCODE;
    }
    return LEV_OK;
}

int ord_confirmed_fill(avro_value_t *out, const char *order_id, const ord_state_t *st,
                       const ord_payment_t *p)
{
    if (lev_value_set_string(out, "order_id", order_id) ||
        lev_value_set_string(out, "customer_id", st->customer_id) ||
        set_opt_str(out, "customer_email", st->customer_email) ||
        lev_value_set_string(out, "payment_id", p->payment_id) ||
        lev_value_set_string(out, "currency", p->currency) ||
        lev_value_set_long(out, "total_minor", p->amount_minor) ||
        lev_value_set_long(out, "confirmed_at", st->changed_at))
        return LEV_ERR_ENCODE;
    return LEV_OK;
}

int ord_cancelled_fill(avro_value_t *out, const char *order_id, const ord_state_t *st,
                       const ord_payment_t *p)
{
    if (lev_value_set_string(out, "order_id", order_id) ||
        lev_value_set_string(out, "customer_id", st->customer_id) ||
        set_opt_str(out, "customer_email", st->customer_email) ||
        lev_value_set_string(out, "reason_code", p->reason_code ? p->reason_code : "") ||
        lev_value_set_string(out, "reason", p->reason ? p->reason : "") ||
        lev_value_set_long(out, "cancelled_at", st->changed_at))
        return LEV_ERR_ENCODE;
    return LEV_OK;
}
