/* billing-service rules: payment ids, declines, gateway answers, ledger records. */
#include "billing_rules.h"

#include "svc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bill_payment_id(const char *order_id, char out[LEV_UUID_STR_LEN])
{
    if (!order_id || !*order_id)
        return LEV_ERR_ARG;
    return lev_uuid_derive(order_id, "shop.billing.Payment", 0, out);
}

void bill_outcome_init(bill_outcome_t *out, const bill_charge_t *c, const char *payment_id)
{
    memset(out, 0, sizeof *out);
    snprintf(out->payment_id, sizeof out->payment_id, "%s", payment_id ? payment_id : "");
    out->amount_minor = c->amount_minor;
    snprintf(out->currency, sizeof out->currency, "%s", c->currency ? c->currency : "");
}

/* Marks out as declined with code and reason. */
static void decline(bill_outcome_t *out, const char *code, const char *reason)
{
    out->succeeded = 0;
    snprintf(out->code, sizeof out->code, "%s", code);
    snprintf(out->reason, sizeof out->reason, "%s", reason);
}

void bill_decide(const bill_charge_t *c, int64_t limit_minor, const char *payment_id,
                 bill_outcome_t *out)
{
    bill_outcome_init(out, c, payment_id);
    if (c->payment_token && strncmp(c->payment_token, BILL_DECLINE_TOKEN_PREFIX,
                                    strlen(BILL_DECLINE_TOKEN_PREFIX)) == 0) {
        decline(out, BILL_R_CARD_DECLINED, "the card was declined");
        return;
    }
    if (c->amount_minor < 0) {
        decline(out, BILL_R_BAD_AMOUNT, "the amount is negative");
        return;
    }
    if (c->amount_minor > limit_minor) {
        char amount[64], limit[64], reason[200];
        svc_amount_format(c->amount_minor, c->currency, amount, sizeof amount);
        svc_amount_format(limit_minor, c->currency, limit, sizeof limit);
        snprintf(reason, sizeof reason, "%s is above the limit of %s", amount, limit);
        decline(out, BILL_R_AMOUNT_LIMIT, reason);
        return;
    }
    out->succeeded = 1;
}

char *bill_gateway_request(const bill_charge_t *c, const char *payment_id)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "payment_id", payment_id, "order_id",
                          c->order_id ? c->order_id : "", "customer_id",
                          c->customer_id ? c->customer_id : "", "amount_minor",
                          (json_int_t)c->amount_minor, "currency", c->currency ? c->currency : "",
                          "payment_token", c->payment_token ? c->payment_token : "");
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* Copies the first string member of `names` found in the JSON object obj. */
static void copy_member(json_t *obj, const char *const *names, char *out, size_t size)
{
    for (size_t i = 0; names[i]; i++) {
        const char *s = json_string_value(json_object_get(obj, names[i]));
        if (s && *s) {
            snprintf(out, size, "%s", s);
            return;
        }
    }
}

bill_verdict_t bill_gateway_verdict(long status, const char *body, size_t len, bill_outcome_t *out,
                                    char *why, size_t why_size)
{
    static const char *const code_names[] = {"code", "decline_code", NULL};
    static const char *const text_names[] = {"message", "reason", NULL};
    json_t *obj = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *st = json_string_value(json_object_get(obj, "status"));
    bill_verdict_t v;

    if ((status >= 200 && status <= 299 && st && strcmp(st, "declined") == 0) || status == 402) {
        decline(out, BILL_R_CARD_DECLINED, "declined by the payment gateway");
        if (json_is_object(obj)) {
            copy_member(obj, code_names, out->code, sizeof out->code);
            copy_member(obj, text_names, out->reason, sizeof out->reason);
        }
        snprintf(why, why_size, "gateway declined (HTTP %ld, %s)", status, out->code);
        v = BILL_DECLINED;
    } else {
        switch (svc_http_classify(status)) {
        case SVC_HTTP_OK:
            out->succeeded = 1;
            snprintf(why, why_size, "gateway charged (HTTP %ld)", status);
            v = BILL_CHARGED;
            break;
        case SVC_HTTP_TRANSIENT:
            if (status)
                snprintf(why, why_size, "gateway answered HTTP %ld", status);
            else
                snprintf(why, why_size, "no answer from the gateway");
            v = BILL_TRANSIENT;
            break;
        default:
            snprintf(why, why_size, "gateway refused the request (HTTP %ld)", status);
            v = BILL_PERMANENT;
            break;
        }
    }
    json_decref(obj);
    return v;
}

char *bill_record_format(const bill_outcome_t *o)
{
    json_t *r =
        json_pack("{s:i, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I}", "v", 1, "result",
                  o->succeeded ? "succeeded" : "failed", "payment_id", o->payment_id,
                  "amount_minor", (json_int_t)o->amount_minor, "currency", o->currency, "code",
                  o->code, "reason", o->reason, "gateway", o->gateway, "at", (json_int_t)o->at);
    if (!r)
        return NULL;
    char *text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(r);
    return text;
}

int bill_record_parse(const char *text, bill_outcome_t *out, lev_error_t *err)
{
    json_error_t jerr;
    int v = 0;
    json_int_t amount = 0, at = 0;
    const char *result = NULL, *payment_id = NULL, *currency = NULL, *code = NULL, *reason = NULL,
               *gateway = NULL;
    memset(out, 0, sizeof *out);
    json_t *r = text ? json_loads(text, 0, &jerr) : NULL;
    int bad = !r || json_unpack_ex(r, &jerr, 0, "{s:i, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I}",
                                   "v", &v, "result", &result, "payment_id", &payment_id,
                                   "amount_minor", &amount, "currency", &currency, "code", &code,
                                   "reason", &reason, "gateway", &gateway, "at", &at) != 0;
    if (!bad && (v != 1 || (strcmp(result, "succeeded") != 0 && strcmp(result, "failed") != 0)))
        bad = 1;
    if (!bad) {
        out->succeeded = strcmp(result, "succeeded") == 0;
        snprintf(out->payment_id, sizeof out->payment_id, "%s", payment_id);
        out->amount_minor = amount;
        snprintf(out->currency, sizeof out->currency, "%s", currency);
        snprintf(out->code, sizeof out->code, "%s", code);
        snprintf(out->reason, sizeof out->reason, "%s", reason);
        snprintf(out->gateway, sizeof out->gateway, "%s", gateway);
        out->at = at;
    }
    json_decref(r);
    if (bad)
        return svc_error(err, LEV_ERR_JSON, "ledger record", "not a charge record");
    return LEV_OK;
}

int bill_charge_from_value(const avro_value_t *v, bill_charge_t *c, lev_error_t *err)
{
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = svc_get_ident(v, "order_id", &c->order_id, err)) ||
        (rc = svc_get_ident(v, "customer_id", &c->customer_id, err)) ||
        (rc = svc_get_ident(v, "currency", &c->currency, err)) ||
        (rc = svc_get_long(v, "total_minor", &c->amount_minor, err)) ||
        (rc = svc_get_ident(v, "payment_token", &c->payment_token, err)))
        return rc;
    return LEV_OK;
}

int bill_payment_fill(avro_value_t *out, const bill_charge_t *c, const bill_outcome_t *o)
{
    if (lev_value_set_string(out, "order_id", c->order_id) ||
        lev_value_set_string(out, "customer_id", c->customer_id) ||
        lev_value_set_long(out, "amount_minor", o->amount_minor) ||
        lev_value_set_string(out, "currency", o->currency))
        return LEV_ERR_ENCODE;
    if (o->succeeded) {
        if (lev_value_set_string(out, "payment_id", o->payment_id) ||
            lev_value_set_string(out, "gateway", o->gateway) ||
            lev_value_set_long(out, "charged_at", o->at))
            return LEV_ERR_ENCODE;
    } else {
        if (lev_value_set_string(out, "reason_code", o->code) ||
            lev_value_set_string(out, "reason", o->reason) ||
            lev_value_set_long(out, "failed_at", o->at))
            return LEV_ERR_ENCODE;
    }
    return LEV_OK;
}

int bill_source_trusted(const char *source, const char *list)
{
    if (!source || !*source || !list)
        return 0;
    size_t slen = strlen(source);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && last[-1] == ' ')
            last--;
        if ((size_t)(last - p) == slen && memcmp(p, source, slen) == 0)
            return 1;
        p = end;
    }
    return 0;
}
