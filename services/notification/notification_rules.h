/*
 * notification-service business rules, as plain functions (no Kafka, no
 * network): which events notify, the notification's id and JSON body, the
 * webhook signature and the sink file line.
 *
 * The notification id is derived from the id of the event that caused it,
 * so a redelivered event yields the same id (X-Event-Id) and the same body,
 * and a receiver that remembers ids drops the copy.
 */
#ifndef NOTIFICATION_RULES_H
#define NOTIFICATION_RULES_H

#include <libevents.h>
#include <stddef.h>
#include <stdint.h>

#define NTF_T_REJECTED "shop.order.OrderRejected"
#define NTF_T_CONFIRMED "shop.order.OrderConfirmed"
#define NTF_T_CANCELLED "shop.order.OrderCancelled"
#define NTF_T_SENT "shop.notification.NotificationSent"

typedef enum ntf_kind_e {
    NTF_REJECTED = 0,
    NTF_CONFIRMED,
    NTF_CANCELLED,
} ntf_kind_t;

/* The kind of an event type name; LEV_ERR_ARG for types that do not notify. */
int ntf_kind_from_type(const char *type, ntf_kind_t *out);

/* "order.rejected", "order.confirmed", "order.cancelled". */
const char *ntf_kind_name(ntf_kind_t kind);

typedef struct ntf_reason_s {
    const char *code;
    const char *field;
    const char *message;
} ntf_reason_t;

/* The event that causes a notification. Strings are borrowed from the
 * decoded event; reasons is owned (ntf_trigger_clear). */
typedef struct ntf_trigger_s {
    ntf_kind_t kind;
    const char *order_id;
    const char *customer_id;
    const char *customer_email; /* NULL when unknown */
    int64_t occurred_at;        /* rejected_at / confirmed_at / cancelled_at */
    /* confirmed */
    const char *payment_id;
    const char *currency;
    int64_t total_minor;
    /* cancelled */
    const char *reason_code;
    const char *reason;
    /* rejected */
    ntf_reason_t *reasons;
    size_t nreasons;
} ntf_trigger_t;

/* Reads an OrderRejected, OrderConfirmed or OrderCancelled value. */
int ntf_trigger_from_value(ntf_kind_t kind, const avro_value_t *v, ntf_trigger_t *t,
                           lev_error_t *err);
void ntf_trigger_clear(ntf_trigger_t *t);

/* The notification id: lev_uuid_derive(trigger_event_id,
 * "shop.notification.Notification", 0). */
int ntf_notification_id(const char *trigger_event_id, char out[LEV_UUID_STR_LEN]);

/* The notification as compact JSON with sorted keys (malloc'd, caller
 * frees; NULL when out of memory):
 *   {"customer_id":..,"data":{..},"email":..|null,"notification_id":..,
 *    "occurred_at":"<RFC 3339>","order_id":..,"subject":..,"text":..,
 *    "trigger":{"id":..,"type":..},"type":"order.confirmed"}
 * data holds payment_id, total_minor and currency (confirmed), reason_code
 * and reason (cancelled) or reasons [{code, field, message}] (rejected).
 * The same inputs always give the same bytes. Invalid UTF-8 in the event's
 * strings is replaced by '?'. */
char *ntf_render(const ntf_trigger_t *t, const char *notification_id, const char *trigger_id,
                 const char *trigger_type);

/*
 * Webhook signatures. The X-Signature header is
 *
 *   t=<unix seconds>,v1=<hex>[,v1=<hex>]
 *
 * where each <hex> is the lower-case hex HMAC-SHA256, keyed with a secret,
 * of the bytes "<t>.<X-Event-Id>.<body>": the time of sending, the
 * notification's id and the exact body are all covered, so a captured
 * request can neither be replayed later nor passed off with another id.
 * There is one v1 per signing secret: two while a secret is rotated.
 *
 * A receiver accepts a request when t is within its tolerance of its own
 * clock (5 minutes by default) and some v1 equals, in constant time, the
 * signature it computes with one of its secrets (two while rotating).
 */
#define NTF_SIGNATURE_MAX 160

/* Signs with every secret (NULL-free array of NUL-terminated, non-empty
 * secrets) into out; 0, or LEV_ERR_ARG. */
int ntf_sign(const char *const *secrets, size_t nsecrets, int64_t t, const char *event_id,
             const void *body, size_t len, char *out, size_t size);

/* Verifies a header as a receiver does: 0 when valid, else LEV_ERR_ARG with
 * the reason in why (no signature, malformed, outside the tolerance, no
 * match). `now` and `tolerance_s` in seconds. */
int ntf_verify(const char *header, const char *const *secrets, size_t nsecrets,
               const char *event_id, const void *body, size_t len, int64_t now, int64_t tolerance_s,
               char *why, size_t why_size);

/* Appends line and a newline to the file at path (created 0644 if needed)
 * with one write(2) on a descriptor opened with O_APPEND, so concurrent
 * writers never interleave inside a line. Returns 0 or LEV_ERR_IO. */
int ntf_sink_append(const char *path, const char *line, size_t len, lev_error_t *err);

/* Fills an empty NotificationSent value. */
int ntf_sent_fill(avro_value_t *out, const ntf_trigger_t *t, const char *notification_id,
                  const char *trigger_id, const char *trigger_type, const char *channel,
                  int64_t sent_at);

#endif
