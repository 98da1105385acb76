/*
 * evctl: publish, tail, replay, dead-letter redrive, lag, topics and
 * schemas for the event stack. Dispatches to one file per command.
 */
#include "evctl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const evctl_cmd_t *const commands[] = {
    &evctl_cmd_publish,      &evctl_cmd_tail,          &evctl_cmd_replay,
    &evctl_cmd_dlq_list,     &evctl_cmd_dlq_show,      &evctl_cmd_dlq_redrive,
    &evctl_cmd_lag,          &evctl_cmd_topics,        &evctl_cmd_acls,
    &evctl_cmd_schemas_list, &evctl_cmd_schemas_check, &evctl_cmd_schemas_register,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* `evctl --help`: commands, common options, positions, exit codes, environment. */
static void print_help(FILE *out)
{
    fprintf(out, "Usage: evctl [common options] <command> [arguments] [options]\n"
                 "\n"
                 "The operator CLI of the event stack: Avro events on Kafka, their retry and\n"
                 "dead-letter topics, consumer lag. Machine output is JSON lines on stdout;\n"
                 "errors, summaries and (on a terminal) progress go to stderr.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-16s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\n`evctl <command> --help` describes a command and all its options.\n"
                 "\nCommon options (accepted by every command):\n");
    for (const evctl_opt_t *o = evctl_common_opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-26s %s\n", left, o->help);
    }
    fprintf(out, "\n%s", evctl_scan_specs_help);
    fprintf(out, "\nExit codes:\n"
                 "  0    success\n"
                 "  64   usage error (unknown command or option, bad option value)\n"
                 "  65   bad input data: an invalid input line, unknown schema or type, a missing\n"
                 "       topic, incompatible schemas, a cluster that disagrees with topics.json\n"
                 "  69   Kafka (or Redis, or the schema registry) unavailable, Kafka refused the\n"
                 "       credentials (the message says authentication failed), or a delivery to\n"
                 "       Kafka failed\n"
                 "  70   internal error\n"
                 "  130  interrupted by SIGINT or SIGTERM (after a clean stop: flushed, and for\n"
                 "       replay and redrive the resume point printed)\n"
                 "\n");
    lev_config_print_help(out);
    fprintf(out, "  %-26s %s\n%29s%s\n%29s%s\n", "LEV_TOPICS_FILE",
            "the topics description (default: ./tools/topics.json, else the copy installed", "",
            "next to evctl, <bin>/../share/libevents/topics.json, else the source tree's", "",
            "for the evctl of a build tree, else <install prefix>/share/libevents/topics.json)");
}

/* Finds a command from argv[0] (and argv[1] for "dlq" and "schemas").
 * *used gets how many words named it. */
static const evctl_cmd_t *find_command(int argc, char **argv, int *used)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *name = commands[i]->name, *space = strchr(name, ' ');
        if (!space) {
            if (strcmp(argv[0], name) == 0) {
                *used = 1;
                return commands[i];
            }
            continue;
        }
        size_t glen = (size_t)(space - name);
        if (strlen(argv[0]) == glen && strncmp(argv[0], name, glen) == 0 && argc > 1 &&
            strcmp(argv[1], space + 1) == 0) {
            *used = 2;
            return commands[i];
        }
    }
    return NULL;
}

/* `evctl dlq` or `evctl dlq --help`: the subcommands of a group. */
static int group_help(const char *group, FILE *out)
{
    int found = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *name = commands[i]->name, *space = strchr(name, ' ');
        if (space && (size_t)(space - name) == strlen(group) &&
            strncmp(name, group, strlen(group)) == 0) {
            if (!found)
                fprintf(out, "Usage: evctl %s <subcommand> [arguments] [options]\n\nSubcommands:\n",
                        group);
            fprintf(out, "  %-16s %s\n", name, commands[i]->summary);
            found = 1;
        }
    }
    if (found)
        fprintf(out, "\n`evctl %s <subcommand> --help` describes one.\n", group);
    return found;
}

/* Fills the context from the environment and the common options; installs
 * the log callback. Returns 0 or an exit code after printing the error. */
static int setup(evctl_ctx_t *ctx, const evctl_args_t *args)
{
    lev_error_t err;
    char buf[800];
    if (lev_config_from_env(&ctx->conf, "evctl", &err) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "configuration: %s",
                          lev_error_format(&err, buf, sizeof buf));
    const char *v;
    if ((v = evctl_opt(args, "bootstrap")) && lev_config_set_str(&ctx->conf.bootstrap, v) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if ((v = evctl_opt(args, "schemas")) && lev_config_set_str(&ctx->conf.schema_dirs, v) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    ctx->timeout_ms = 10000;
    if ((v = evctl_opt(args, "timeout"))) {
        int64_t ms;
        if (lev_duration_parse(v, &ms) != 0 || ms < 1 || ms > 3600000)
            return evctl_fail(
                EVCTL_EXIT_USAGE,
                "--timeout: expected a duration from 1ms to 1h (like 500ms, 30s), got \"%s\"", v);
        ctx->timeout_ms = (int)ms;
    }
    if ((v = evctl_opt(args, "wire")) && lev_wire_format_parse(v, &ctx->conf.wire_format) != 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "--wire: expected soe or confluent, got \"%s\"", v);
    if ((v = evctl_opt(args, "registry")) && setenv("LEV_SCHEMA_REGISTRY_URL", v, 1) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    ctx->topics_file = evctl_opt(args, "topics-file");
    ctx->quiet = evctl_flag(args, "quiet");
    ctx->progress = !ctx->quiet && isatty(STDERR_FILENO);
    if (evctl_flag(args, "verbose"))
        lev_log_set(lev_log_json, NULL, ctx->conf.log_level);
    else
        lev_log_set(NULL, NULL, LEV_LOG_ERROR);
    return 0;
}

int evctl_load_schemas(evctl_ctx_t *ctx)
{
    if (ctx->codec)
        return 0;
    lev_error_t err;
    char buf[800];
    if (!(ctx->schemas = lev_schemas_new()))
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    if (lev_schemas_load_path(ctx->schemas, ctx->conf.schema_dirs, &err) != 0)
        return evctl_fail(EVCTL_EXIT_DATA, "schemas (%s): %s", ctx->conf.schema_dirs,
                          lev_error_format(&err, buf, sizeof buf));
    if (lev_schemas_count(ctx->schemas) == 0)
        return evctl_fail(EVCTL_EXIT_DATA,
                          "no schemas found in %s (set --schemas or LEV_SCHEMA_DIRS)",
                          ctx->conf.schema_dirs);
    if (!(ctx->codec = lev_codec_new(ctx->schemas, &ctx->conf.limits)))
        return evctl_fail(EVCTL_EXIT_INTERNAL, "cannot create the codec");
    /* the schema registry: values framed with a registry id are decoded
     * through it, and --wire confluent frames published ones with ids */
    memset(&err, 0, sizeof err);
    ctx->registry = lev_registry_from_env(&err);
    if (!ctx->registry && err.code)
        return evctl_fail(EVCTL_EXIT_USAGE, "schema registry: %s",
                          lev_error_format(&err, buf, sizeof buf));
    if (ctx->registry)
        lev_codec_set_registry(ctx->codec, ctx->schemas, ctx->registry);
    if (ctx->conf.wire_format == LEV_WIRE_CONFLUENT && !ctx->registry)
        return evctl_fail(EVCTL_EXIT_USAGE,
                          "the Confluent wire format needs a schema registry: give --registry "
                          "URL or set LEV_SCHEMA_REGISTRY_URL");
    lev_codec_set_wire_format(ctx->codec, ctx->conf.wire_format);
    /* Older versions (history/) the current one cannot read: the codec
     * refuses their values (LEV_ERR_RESOLVE, never a crash); say so now. */
    for (size_t i = 0; i < lev_schemas_count(ctx->schemas); i++) {
        const lev_schema_t *old = lev_schemas_at(ctx->schemas, i), *cur;
        if (lev_schema_is_current(old) ||
            !(cur = lev_schemas_find(ctx->schemas, lev_schema_name(old))) ||
            lev_schema_check_resolvable(old, cur, &err) == 0)
            continue;
        evctl_note(ctx,
                   "%s (%s) cannot be read as the current %s: %s%s%s; decoding refuses the "
                   "events it cannot read (see evctl schemas check)",
                   lev_schema_origin(old) ? lev_schema_origin(old) : "an older version",
                   lev_schema_name(old), lev_schema_name(cur), err.where, err.where[0] ? ": " : "",
                   err.text);
    }
    return 0;
}

int evctl_need_registry(evctl_ctx_t *ctx)
{
    int rc = evctl_load_schemas(ctx);
    if (rc)
        return rc;
    if (!ctx->registry)
        return evctl_fail(EVCTL_EXIT_USAGE,
                          "no schema registry: give --registry URL or set LEV_SCHEMA_REGISTRY_URL");
    return 0;
}

int main(int argc, char **argv)
{
    /* common options may come before the command: move them after it */
    char **av = calloc((size_t)argc + 1, sizeof *av);
    evctl_ctx_t ctx;
    evctl_args_t args;
    int rc = 0, lead = 0, n = 0;
    memset(&ctx, 0, sizeof ctx);
    memset(&args, 0, sizeof args);
    if (!av)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    for (int i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(stdout);
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("evctl %s\n", LEV_VERSION_STR);
            goto out;
        }
        const evctl_opt_t *o = NULL;
        const char *name = argv[i] + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (const evctl_opt_t *c = evctl_common_opts; argv[i][1] == '-' && c->name; c++)
            if (strlen(c->name) == len && strncmp(c->name, name, len) == 0)
                o = c;
        if (!o) {
            rc = evctl_fail(EVCTL_EXIT_USAGE,
                            "unknown option %s before the command (see evctl --help)", argv[i]);
            goto out;
        }
        lead++;
        if (o->arg && !eq) {
            if (i + 1 >= argc) {
                rc = evctl_fail(EVCTL_EXIT_USAGE, "--%s needs a value (%s)", o->name, o->arg);
                goto out;
            }
            i++;
            lead++;
        }
    }
    if (1 + lead >= argc) {
        print_help(stderr);
        rc = EVCTL_EXIT_USAGE;
        goto out;
    }
    int used = 0;
    const evctl_cmd_t *cmd = find_command(argc - 1 - lead, argv + 1 + lead, &used);
    if (!cmd) {
        const char *word = argv[1 + lead];
        int sub = 2 + lead < argc ? 2 + lead : -1;
        if (sub < 0 || strcmp(argv[sub], "--help") == 0 || strcmp(argv[sub], "-h") == 0) {
            if (group_help(word, sub < 0 ? stderr : stdout)) {
                rc = sub < 0 ? EVCTL_EXIT_USAGE : 0;
                goto out;
            }
        } else if (group_help(word, stderr)) {
            rc = evctl_fail(EVCTL_EXIT_USAGE, "%s: unknown subcommand \"%s\"", word, argv[sub]);
            goto out;
        }
        rc = evctl_fail(EVCTL_EXIT_USAGE, "unknown command \"%s\" (see evctl --help)", word);
        goto out;
    }
    for (int i = 1 + lead + used; i < argc; i++)
        av[n++] = argv[i];
    for (int i = 1; i <= lead; i++)
        av[n++] = argv[i];
    rc = evctl_args_parse(&args, cmd, n, av);
    if (rc == -1) {
        rc = 0; /* --help */
        goto out;
    }
    if (rc != 0)
        goto out;
    if ((rc = setup(&ctx, &args)) != 0)
        goto out;
    evctl_signals_install();
    rc = cmd->run(&ctx, &args);
out:
    evctl_args_clear(&args);
    lev_codec_destroy(ctx.codec);
    lev_registry_destroy(ctx.registry); /* after the codec, which borrows it */
    lev_schemas_destroy(ctx.schemas);
    lev_config_clear(&ctx.conf);
    free(av);
    return rc;
}
