/* notification-service rules: rendering, signing and the sink file. */
#include "notification_rules.h"

#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
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
static int read_reasons(const avro_value_t *v, ntf_trigger_t *t, lev_error_t *err)
{
    avro_value_t arr, el;
    size_t n = 0;
    if (avro_value_get_by_name(v, "reasons", &arr, NULL) != 0 || avro_value_get_size(&arr, &n) != 0)
        return svc_error(err, LEV_ERR_DECODE, "reasons", "missing or not an array");
    if (n > 0 && !(t->reasons = calloc(n, sizeof *t->reasons)))
        return svc_error(err, LEV_ERR_NOMEM, "reasons", "out of memory");
    for (size_t i = 0; i < n; i++) {
        ntf_reason_t *r = &t->reasons[i];
        if (avro_value_get_by_index(&arr, i, &el, NULL) != 0)
            return svc_error(err, LEV_ERR_DECODE, "reasons", "reason %zu is not a Reason", i);
        const char *field = "code";
        int rc = svc_get_ident(&el, "code", &r->code, err);
        if (!rc && (rc = svc_get_str(&el, "field", &r->field, err)) != 0)
            field = "field";
        if (!rc && (rc = svc_get_str(&el, "message", &r->message, err)) != 0)
            field = "message";
        if (rc) {
            if (err)
                snprintf(err->where, sizeof err->where, "reasons[%zu].%s", i, field);
            return rc;
        }
    }
    t->nreasons = n;
    return LEV_OK;
}

int ntf_trigger_from_value(ntf_kind_t kind, const avro_value_t *v, ntf_trigger_t *t,
                           lev_error_t *err)
{
    int rc;
    memset(t, 0, sizeof *t);
    t->kind = kind;
    if ((rc = svc_get_ident(v, "order_id", &t->order_id, err)) ||
        (rc = svc_get_ident(v, "customer_id", &t->customer_id, err)) ||
        (rc = svc_get_opt_ident(v, "customer_email", &t->customer_email, err)))
        goto fail;
    switch (kind) {
    case NTF_REJECTED:
        if ((rc = svc_get_long(v, "rejected_at", &t->occurred_at, err)) ||
            (rc = read_reasons(v, t, err)))
            goto fail;
        break;
    case NTF_CONFIRMED:
        if ((rc = svc_get_long(v, "confirmed_at", &t->occurred_at, err)) ||
            (rc = svc_get_ident(v, "payment_id", &t->payment_id, err)) ||
            (rc = svc_get_ident(v, "currency", &t->currency, err)) ||
            (rc = svc_get_long(v, "total_minor", &t->total_minor, err)))
            goto fail;
        break;
    case NTF_CANCELLED:
        if ((rc = svc_get_long(v, "cancelled_at", &t->occurred_at, err)) ||
            (rc = svc_get_ident(v, "reason_code", &t->reason_code, err)) ||
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

static const char hexdig[] = "0123456789abcdef";

/* HMAC-SHA256(secret, "<t>.<event_id>.<body>") as 64 lower-case hex
 * digits and a NUL. */
static int sign_one(const char *secret, int64_t t, const char *event_id, const void *body,
                    size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t slen = strlen(secret), idlen = strlen(event_id);
    if (slen == 0 || slen > INT_MAX || len > SIZE_MAX - idlen - 32)
        return LEV_ERR_ARG;
    char *msg = malloc(32 + idlen + len);
    if (!msg)
        return LEV_ERR_NOMEM;
    size_t n = (size_t)snprintf(msg, 32, "%" PRId64 ".", t);
    memcpy(msg + n, event_id, idlen);
    msg[n + idlen] = '.';
    if (len)
        memcpy(msg + n + idlen + 1, body, len);
    int ok = HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)msg, n + idlen + 1 + len,
                  md, &mdlen) != NULL &&
             mdlen == 32;
    free(msg);
    if (!ok)
        return LEV_ERR_ARG;
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = hexdig[md[i] >> 4];
        out[2 * i + 1] = hexdig[md[i] & 15];
    }
    out[64] = '\0';
    return LEV_OK;
}

int ntf_sign(const char *const *secrets, size_t nsecrets, int64_t t, const char *event_id,
             const void *body, size_t len, char *out, size_t size)
{
    if (!secrets || nsecrets == 0 || !event_id || (!body && len) || t < 0 || !out)
        return LEV_ERR_ARG;
    size_t used = (size_t)snprintf(out, size, "t=%" PRId64, t);
    for (size_t i = 0; i < nsecrets; i++) {
        char hex[65];
        if (!secrets[i] || sign_one(secrets[i], t, event_id, body, len, hex) != 0)
            return LEV_ERR_ARG;
        if (used >= size)
            return LEV_ERR_ARG;
        used += (size_t)snprintf(out + used, size - used, ",v1=%s", hex);
    }
    return used < size ? LEV_OK : LEV_ERR_ARG;
}

int ntf_verify(const char *header, const char *const *secrets, size_t nsecrets,
               const char *event_id, const void *body, size_t len, int64_t now, int64_t tolerance_s,
               char *why, size_t why_size)
{
    int64_t t = -1;
    const char *sigs[8];
    size_t nsigs = 0;
    if (!header || !*header) {
        snprintf(why, why_size, "no signature");
        return LEV_ERR_ARG;
    }
    /* "t=<digits>" and "v1=<64 hex>" items, comma-separated, any order;
     * items of other schemes are skipped */
    for (const char *p = header; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 2 && p[0] == 't' && p[1] == '=') {
            int64_t v = 0;
            size_t i = 2;
            for (; i < n && p[i] >= '0' && p[i] <= '9' && v < INT64_MAX / 10 - 10; i++)
                v = v * 10 + (p[i] - '0');
            if (i != n || t >= 0) {
                snprintf(why, why_size, "malformed signature timestamp");
                return LEV_ERR_ARG;
            }
            t = v;
        } else if (n == 67 && strncmp(p, "v1=", 3) == 0 && nsigs < 8) {
            sigs[nsigs++] = p + 3;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (t < 0 || nsigs == 0) {
        snprintf(why, why_size, "malformed signature (want t=<unix seconds>,v1=<hex>)");
        return LEV_ERR_ARG;
    }
    if (t < now - tolerance_s || t > now + tolerance_s) {
        snprintf(why, why_size, "signature timestamp %" PRId64 " is outside the tolerance", t);
        return LEV_ERR_ARG;
    }
    int match = 0;
    for (size_t k = 0; k < nsecrets; k++) {
        char want[65];
        if (!secrets[k] || sign_one(secrets[k], t, event_id ? event_id : "", body, len, want) != 0)
            continue;
        for (size_t i = 0; i < nsigs; i++) /* constant time, every pair compared */
            match |= CRYPTO_memcmp(want, sigs[i], 64) == 0;
    }
    if (!match) {
        snprintf(why, why_size, "no signature matches");
        return LEV_ERR_ARG;
    }
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
