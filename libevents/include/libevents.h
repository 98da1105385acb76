/*
 * libevents: Kafka workers carrying Avro events, with at-least-once delivery,
 * retries, dead-letter topics and crash-safe idempotency in Redis.
 *
 * One umbrella header; each part lives in libevents/<part>.h.
 *
 * Naming: every public symbol starts with `lev_`, then the subsystem, then
 * the verb (lev_codec_decode, lev_worker_run). Handles are opaque, made by
 * _new and released by _destroy; every _destroy accepts NULL.
 *
 * Errors: functions that can fail return 0 (LEV_OK) or a negative lev_err_t,
 * and fill an optional lev_error_t with the place and the text.
 */
#ifndef LIBEVENTS_H
#define LIBEVENTS_H

#include <libevents/codec.h>
#include <libevents/common.h>
#include <libevents/config.h>
#include <libevents/producer.h>
#include <libevents/store.h>
#include <libevents/worker.h>

#endif
