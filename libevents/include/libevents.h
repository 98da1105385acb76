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
 *
 * ABI. Versions are major.minor.patch (libevents/version.h, lev_version).
 * The shared library's SONAME is libevents.so.<major>; before 1.0 every
 * minor release may break the ABI, so it is libevents.so.0.<minor>. Within
 * one SONAME a program built against older headers runs with a newer
 * library:
 *   - functions are added, never removed, and keep their signatures, except
 *     that a pointer parameter may become a pointer to const (the same ABI;
 *     every call still compiles);
 *   - the public structs a program allocates, fills or reads by value
 *     (lev_config_t, lev_error_t, lev_retry_policy_t, lev_codec_limits_t,
 *     lev_kv_t, lev_header_t, lev_msg_t, lev_event_meta_t,
 *     lev_event_headers_t, lev_worker_stats_t, lev_jreader_t) keep their
 *     size and layout,
 *     fixed arrays included (lev_error_t's where and text,
 *     LEV_RETRY_LEVELS_MAX, LEV_EVENT_HEADERS_MAX): a field added, removed,
 *     moved or resized takes a new SONAME;
 *   - lev_event_t, which only the library allocates and handlers read
 *     through a pointer, may gain fields at its end;
 *   - enum constants keep their values; new ones may be added.
 * So that a rebuild against newer headers picks up new fields with their
 * defaults: fill a lev_config_t only through lev_config_init or
 * lev_config_from_env (then change what you need) and release it with
 * lev_config_clear, never from a zeroed struct; size copies of lev_error_t's
 * arrays with sizeof, never with their current lengths; never copy a
 * lev_event_t.
 */
#ifndef LIBEVENTS_H
#define LIBEVENTS_H

#include <libevents/codec.h>
#include <libevents/common.h>
#include <libevents/config.h>
#include <libevents/jsontext.h>
#include <libevents/metrics.h>
#include <libevents/producer.h>
#include <libevents/registry.h>
#include <libevents/store.h>
#include <libevents/worker.h>

#endif
