/* evctl replay: copy a range of a topic to the same or another topic. */
#include "evctl.h"

#include <string.h>

static const evctl_opt_t opts[] = {
    {"from", "POS", "first record to copy (required: `beginning` copies everything)", 0},
    {"until", "POS", "stop before this position (default: the end when replay starts)", 0},
    {"to", "TOPIC", "destination topic (default: the same topic)", 0},
    {"partition", "P[,P...]", "only these partitions of the source", 0},
    {"type", "TYPE", "only events of this type", 1},
    {"key", "KEY", "only records with this key", 1},
    {"rate", "N/s", "at most N records per second (default 1000/s; 0: unlimited)", 0},
    {"max", "N", "copy at most N records", 0},
    {"dry-run", NULL, "print what would be sent (one JSON line per record); send nothing", 0},
    {NULL, NULL, NULL, 0},
};

/* evctl replay TOPIC: returns an exit code. */
static int run(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    evctl_copy_t copy = {
        .verb = "replay",
        .from_header = "evctl_replay_from",
        .at_header = "evctl_replay_at",
        .to = evctl_opt(args, "to"),
        .dry_run = evctl_flag(args, "dry-run"),
        .rate = 1000,
    };
    evctl_filter_t filter;
    evctl_scan_t scan;
    rd_kafka_t *rk = NULL;
    int rc;
    memset(&scan, 0, sizeof scan);
    if (!evctl_opt(args, "from"))
        return evctl_fail(EVCTL_EXIT_USAGE,
                          "replay: --from is required (an offset, a time, or `beginning`)");
    if (evctl_opt(args, "rate") && evctl_rate_parse(evctl_opt(args, "rate"), &copy.rate) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "--rate: expected N, N/s, N/m or N/h, got \"%s\"",
                          evctl_opt(args, "rate"));
    if ((rc = evctl_opt_long(args, "max", 1, INT64_MAX, 0, &copy.max)) != 0 ||
        (rc = evctl_range_check("from", evctl_opt(args, "from"), "until",
                                evctl_opt(args, "until"))) != 0)
        return rc;
    evctl_filter_init(&filter, args);
    if ((rc = evctl_load_schemas(ctx)) != 0)
        return rc;
    if (!(rk = evctl_consumer_new(ctx, NULL, &rc)))
        return rc;
    if ((rc = evctl_scan_plan(&scan, ctx, rk, args->pos[0], evctl_opt(args, "partition"),
                              evctl_opt(args, "from"), NULL, evctl_opt(args, "until"), 0)) != 0)
        goto out;
    rc = evctl_copy_run(ctx, &scan, &filter, &copy);
out:
    evctl_scan_clear(&scan);
    evctl_consumer_destroy(rk);
    return rc;
}

const evctl_cmd_t evctl_cmd_replay = {
    "replay",
    "TOPIC --from POS [--until POS] [--to TOPIC] [options]",
    "copy a range of a topic (by offsets or time) to the same or another topic",
    "Copies the records of TOPIC in [--from, --until) -- by default up to the end of each\n"
    "partition as it was when the replay started, so replaying into the same topic never\n"
    "loops -- to --to (default: TOPIC), keeping key, value and headers, and adding the\n"
    "provenance headers evctl_replay_from=<topic>/<partition>/<offset> and\n"
    "evctl_replay_at=<RFC 3339 time> (replacing earlier ones, never stacking them). The\n"
    "destination partition follows the key, as for any producer. --to must exist (exit 65):\n"
    "evctl never creates a topic by sending to it. --dry-run checks what the run checks\n"
    "(same exit codes), prints what would be sent, and sends nothing.\n"
    "\n"
    "Replayed events keep their ce_id. The services are idempotent per consumer group\n"
    "(an event id they handled is remembered in Redis, LEV_IDEMPOTENCY_TTL_MS, 7 days by\n"
    "default), so replaying events they already processed causes no second side effect:\n"
    "no second charge, no second notification. A new consumer group (or one whose memory\n"
    "of the ids has expired) processes them as new.\n"
    "\n"
    "At the end one JSON summary line is printed on stdout: copied, skipped (filters),\n"
    "failed, per partition start/end/next. Ctrl-C stops cleanly: sends in flight are\n"
    "flushed, and the last copied offset per partition and a ready --from value to resume\n"
    "with are printed (exit 130). A failed delivery stops the replay the same way (exit 69).\n",
    opts,
    1,
    1,
    run,
};
