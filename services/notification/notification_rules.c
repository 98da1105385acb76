/* notification-service rules: rendering, signing and the sink file. */
#include "notification_rules.h"

#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================
 * Kinds
 * ====================================================================== */

static const struct {
    const char *type;
    const char *name;
} kinds[] = {
    [NTF_REJECTED] = {NTF_T_REJECTED, "order.rejected"},
    [NTF_CONFIRMED] = {NTF_T_CONFIRMED, "order.confirmed"},
    [NTF_CANCELLED] = {NTF_T_CANCELLED, "order.cancelled"},
};

int ntf_kind_from_type(const char *type, ntf_kind_t *out)
{
    for (size_t i = 0; type && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(type, kinds[i].type) == 0) {
            *out = (ntf_kind_t)i;
            return LEV_OK;
        }
    }
    return LEV_ERR_ARG;
}

const char *ntf_kind_name(ntf_kind_t kind)
{
    return (unsigned)kind < sizeof kinds / sizeof kinds[0] ? kinds[kind].name : "unknown";
}

/* ======================================================================
 * Reading triggers
 * ====================================================================== */

void ntf_trigger_clear(ntf_trigger_t *t)
{
    if (!t)
        return;
    free(t->reasons);
    memset(t, 0, sizeof *t);
}

/* Reads OrderRejected.reasons into t->reasons. */
static int read_reasons(avro_value_t *v, ntf_trigger_t *t, lev_error_t *err)
{
    avro_value_t arr, el;
    size_t n = 0;
    if (avro_value_get_by_name(v, "reasons", &arr, NULL) != 0 || avro_value_get_size(&arr, &n) != 0)
        return svc_error(err, LEV_ERR_DECODE, "reasons", "missing or not an array");
    if (n > 0 && !(t->reasons = calloc(n, sizeof *t->reasons)))
        return svc_error(err, LEV_ERR_NOMEM, "reasons", "out of memory");
    for (size_t i = 0; i < n; i++) {
        ntf_reason_t *r = &t->reasons[i];
        if (avro_value_get_by_index(&arr, i, &el, NULL) != 0 ||
            svc_get_str(&el, "code", &r->code, err) || svc_get_str(&el, "field", &r->field, err) ||
            svc_get_str(&el, "message", &r->message, err))
            return svc_error(err, LEV_ERR_DECODE, "reasons", "reason %zu is not a Reason", i);
    }
    t->nreasons = n;
    return LEV_OK;
}

int ntf_trigger_from_value(ntf_kind_t kind, avro_value_t *v, ntf_trigger_t *t, lev_error_t *err)
{
    int rc;
    memset(t, 0, sizeof *t);
    t->kind = kind;
    if ((rc = svc_get_str(v, "order_id", &t->order_id, err)) ||
        (rc = svc_get_str(v, "customer_id", &t->customer_id, err)) ||
        (rc = svc_get_opt_str(v, "customer_email", &t->customer_email, err)))
        goto fail;
    switch (kind) {
    case NTF_REJECTED:
        if ((rc = svc_get_long(v, "rejected_at", &t->occurred_at, err)) ||
            (rc = read_reasons(v, t, err)))
            goto fail;
        break;
    case NTF_CONFIRMED:
        if ((rc = svc_get_long(v, "confirmed_at", &t->occurred_at, err)) ||
            (rc = svc_get_str(v, "payment_id", &t->payment_id, err)) ||
            (rc = svc_get_str(v, "currency", &t->currency, err)) ||
            (rc = svc_get_long(v, "total_minor", &t->total_minor, err)))
            goto fail;
        break;
    case NTF_CANCELLED:
        if ((rc = svc_get_long(v, "cancelled_at", &t->occurred_at, err)) ||
            (rc = svc_get_str(v, "reason_code", &t->reason_code, err)) ||
            (rc = svc_get_str(v, "reason", &t->reason, err)))
            goto fail;
        break;
    default:
        rc = svc_error(err, LEV_ERR_ARG, NULL, "not a notifying event");
        goto fail;
    }
    return LEV_OK;
fail:
    ntf_trigger_clear(t);
    return rc;
}

int ntf_notification_id(const char *trigger_event_id, char out[LEV_UUID_STR_LEN])
{
    if (!trigger_event_id || !*trigger_event_id)
        return LEV_ERR_ARG;
    return lev_uuid_derive(trigger_event_id, "shop.notification.Notification", 0, out);
}

/* ======================================================================
 * Rendering
 * ====================================================================== */

/* A JSON string of s (NULL gives JSON null); invalid UTF-8 bytes become '?'. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Sets obj[key] = value, consuming value; returns nonzero when either is NULL. */
static int set(json_t *obj, const char *key, json_t *value)
{
    return !obj || !value ? (json_decref(value), -1) : json_object_set_new(obj, key, value);
}

/* The people-facing subject and text of a notification into subject/text. */
static void describe(const ntf_trigger_t *t, char *subject, size_t ssize, char *text, size_t tsize)
{
    char amount[64];
    switch (t->kind) {
    case NTF_CONFIRMED:
        snprintf(subject, ssize, "Your order is confirmed");
        snprintf(text, tsize, "We received your payment of %s. Order %s is confirmed.",
                 svc_amount_format(t->total_minor, t->currency, amount, sizeof amount),
                 t->order_id);
        break;
    case NTF_CANCELLED:
        snprintf(subject, ssize, "Your order was cancelled");
        snprintf(text, tsize, "Order %s was cancelled: %s.", t->order_id,
                 t->reason && *t->reason ? t->reason : "the payment failed");
        break;
    default: {
        snprintf(subject, ssize, "Your order could not be accepted");
        int used = snprintf(text, tsize, "Order %s could not be accepted:", t->order_id);
        for (size_t i = 0; i < t->nreasons && used > 0 && (size_t)used < tsize; i++)
            used += snprintf(text + used, tsize - (size_t)used, "%s %s", i ? ";" : "",
                             t->reasons[i].message);
        if (used > 0 && (size_t)used < tsize)
            snprintf(text + used, tsize - (size_t)used, ".");
        break;
    }
    }
}

/* The kind-specific "data" member. */
static json_t *render_data(const ntf_trigger_t *t)
{
    json_t *d = json_object();
    int bad = 0;
    if (!d)
        return NULL;
    switch (t->kind) {
    case NTF_CONFIRMED:
        bad = set(d, "payment_id", jstr(t->payment_id)) ||
              set(d, "total_minor", json_integer(t->total_minor)) ||
              set(d, "currency", jstr(t->currency));
        break;
    case NTF_CANCELLED:
        bad = set(d, "reason_code", jstr(t->reason_code)) || set(d, "reason", jstr(t->reason));
        break;
    default: {
        json_t *arr = json_array();
        bad = set(d, "reasons", arr);
        for (size_t i = 0; !bad && i < t->nreasons; i++) {
            json_t *r = json_object();
            if (set(r, "code", jstr(t->reasons[i].code)) ||
                set(r, "field", jstr(t->reasons[i].field)) ||
                set(r, "message", jstr(t->reasons[i].message))) {
                json_decref(r);
                bad = 1;
            } else {
                bad = json_array_append_new(arr, r) != 0; /* steals r either way */
            }
        }
        break;
    }
    }
    if (bad) {
        json_decref(d);
        return NULL;
    }
    return d;
}

char *ntf_render(const ntf_trigger_t *t, const char *notification_id, const char *trigger_id,
                 const char *trigger_type)
{
    char subject[128], text[1024], when[32];
    char *out = NULL;
    describe(t, subject, sizeof subject, text, sizeof text);
    lev_time_format(t->occurred_at, when);
    json_t *o = json_object(), *trigger = json_object();
    /* the trigger object goes into o first, so o owns it whatever fails next */
    int bad = set(o, "trigger", trigger) || set(trigger, "id", jstr(trigger_id)) ||
              set(trigger, "type", jstr(trigger_type));
    bad = bad || set(o, "notification_id", jstr(notification_id)) ||
          set(o, "type", jstr(ntf_kind_name(t->kind))) || set(o, "order_id", jstr(t->order_id)) ||
          set(o, "customer_id", jstr(t->customer_id)) || set(o, "email", jstr(t->customer_email)) ||
          set(o, "subject", jstr(subject)) || set(o, "text", jstr(text)) ||
          set(o, "occurred_at", jstr(when)) || set(o, "data", render_data(t));
    if (!bad)
        out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return out;
}

/* ======================================================================
 * Signature and sink
 * ====================================================================== */

int ntf_signature(const void *key, size_t key_len, const void *body, size_t len,
                  char out[NTF_SIGNATURE_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (!key || key_len > INT_MAX || (!body && len))
        return LEV_ERR_ARG;
    if (!HMAC(EVP_sha256(), key, (int)key_len, body ? body : (const void *)"", len, md, &mdlen) ||
        mdlen != 32)
        return LEV_ERR_ARG;
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < mdlen; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 2 * mdlen] = '\0';
    return LEV_OK;
}

int ntf_sink_append(const char *path, const char *line, size_t len, lev_error_t *err)
{
    int rc = LEV_OK, fd = -1;
    char *buf = malloc(len + 1);
    if (!buf)
        return svc_error(err, LEV_ERR_NOMEM, path, "out of memory");
    memcpy(buf, line, len);
    buf[len] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = svc_error(err, LEV_ERR_IO, path, "cannot open: %s", strerror(errno));
        goto done;
    }
    ssize_t w;
    do {
        w = write(fd, buf, len + 1);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        rc = svc_error(err, LEV_ERR_IO, path, "cannot write: %s", strerror(errno));
    else if ((size_t)w != len + 1)
        rc = svc_error(err, LEV_ERR_IO, path, "short write (%zd of %zu bytes)", w, len + 1);
done:
    if (fd >= 0 && close(fd) != 0 && rc == LEV_OK)
        rc = svc_error(err, LEV_ERR_IO, path, "cannot close: %s", strerror(errno));
    free(buf);
    return rc;
}

int ntf_sent_fill(avro_value_t *out, const ntf_trigger_t *t, const char *notification_id,
                  const char *trigger_id, const char *trigger_type, const char *channel,
                  int64_t sent_at)
{
    if (lev_value_set_string(out, "order_id", t->order_id) ||
        lev_value_set_string(out, "customer_id", t->customer_id) ||
        lev_value_set_string(out, "notification_id", notification_id) ||
        lev_value_set_string(out, "trigger_event_id", trigger_id) ||
        lev_value_set_string(out, "trigger_type", trigger_type) ||
        lev_value_set_string(out, "channel", channel) ||
        lev_value_set_long(out, "sent_at", sent_at))
        return LEV_ERR_ENCODE;
    return LEV_OK;
}
