/*
 * The error classes of libevents' retry and dead-letter records: the values
 * of the lev_error_class header (README, "Dead-letter headers"). Private:
 * the worker writes them, evctl reads them (dlq redrive --class).
 */
#ifndef LEV_ERROR_CLASSES_H
#define LEV_ERROR_CLASSES_H

/* A handler failed (LEV_RESULT_PERMANENT, or TRANSIENT with a retry level
 * left: the record goes to a retry topic). */
#define LEV_CLASS_HANDLER "handler"
/* A handler kept failing transiently through the last retry level. */
#define LEV_CLASS_RETRIES_EXHAUSTED "retries-exhausted"
/* An output larger than its topic takes. */
#define LEV_CLASS_TOO_LARGE "too-large"
/* An output the broker refused for good. */
#define LEV_CLASS_PRODUCE "produce"
/* A ce_id or ce_source that cannot key the event. */
#define LEV_CLASS_BAD_ID "bad-id"
/* A record that does not decode is classed by lev_err_name() of the codec's
 * error: "decode", "unknown-schema", "resolve". */

/* Every class above and the codec's, NULL-ended. */
extern const char *const lev_error_classes[];

#endif
