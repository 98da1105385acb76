/* Command-line parsing: `--name value`, `--name=value`, switches, `--`,
 * repeatable options (also comma-separated), and help generated from the
 * option tables. */
#include "evctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const evctl_opt_t evctl_common_opts[] = {
    {"bootstrap", "HOST:PORT", "Kafka bootstrap servers (overrides KAFKA_BOOTSTRAP)", 0},
    {"schemas", "DIRS", "colon-separated schema directories (overrides LEV_SCHEMA_DIRS)", 0},
    {"topics-file", "PATH",
     "the topics description (default: LEV_TOPICS_FILE, else searched: see evctl --help)", 0},
    {"timeout", "DURATION", "wait this long for the broker to answer (default 10s)", 0},
    {"registry", "URL",
     "schema registry for the Confluent wire format (overrides LEV_SCHEMA_REGISTRY_URL)", 0},
    {"wire", "soe|confluent",
     "framing of published events (overrides LEV_WIRE_FORMAT; both are always read)", 0},
    {"quiet", NULL, "no progress line and no summary on stderr", 0},
    {"verbose", NULL, "library and librdkafka logs on stderr (level from LEV_LOG_LEVEL)", 0},
    {"help", NULL, "show this help", 0},
    {NULL, NULL, NULL, 0},
};

static const evctl_opt_t *find_opt(const evctl_cmd_t *cmd, const char *name, size_t len)
{
    const evctl_opt_t *tables[2] = {cmd->opts, evctl_common_opts};
    for (int t = 0; t < 2; t++)
        for (const evctl_opt_t *o = tables[t]; o && o->name; o++)
            if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
                return o;
    return NULL;
}

/* The slot of option o in args, added when new; -1 when args is full. */
static int slot_of(evctl_args_t *args, const evctl_opt_t *o)
{
    for (int i = 0; i < args->nopts; i++)
        if (args->opts[i] == o)
            return i;
    if (args->nopts == EVCTL_MAX_OPTS)
        return -1;
    args->opts[args->nopts] = o;
    args->nvals[args->nopts] = 0;
    return args->nopts++;
}

/* Adds a value (split at commas for repeatable options) to an option. */
static int add_value(evctl_args_t *args, const evctl_cmd_t *cmd, const evctl_opt_t *o,
                     const char *value)
{
    int slot = slot_of(args, o);
    if (slot < 0)
        return evctl_fail(EVCTL_EXIT_USAGE, "%s: too many options", cmd->name);
    if (!o->repeat) {
        args->vals[slot][0] = value;
        args->nvals[slot] = 1;
        return 0;
    }
    char **owned = realloc(args->owned, (args->nowned + 1) * sizeof *owned);
    if (!owned)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    args->owned = owned;
    char *copy = strdup(value);
    if (!copy)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    owned[args->nowned++] = copy;
    for (char *piece = copy; piece;) {
        char *comma = strchr(piece, ',');
        if (comma)
            *comma = '\0';
        if (*piece) {
            if (args->nvals[slot] == EVCTL_MAX_REPEAT)
                return evctl_fail(EVCTL_EXIT_USAGE, "--%s: at most %d values", o->name,
                                  EVCTL_MAX_REPEAT);
            args->vals[slot][args->nvals[slot]++] = piece;
        }
        piece = comma ? comma + 1 : NULL;
    }
    return 0;
}

int evctl_args_parse(evctl_args_t *args, const evctl_cmd_t *cmd, int argc, char **argv)
{
    memset(args, 0, sizeof *args);
    args->cmd = cmd;
    int only_pos = 0, rc;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const evctl_opt_t *o = find_opt(cmd, name, len);
            if (!o)
                return evctl_fail(EVCTL_EXIT_USAGE,
                                  "%s: unknown option --%.*s (see evctl %s --help)", cmd->name,
                                  (int)len, name, cmd->name);
            if (strcmp(o->name, "help") == 0) {
                evctl_cmd_help(cmd, stdout);
                return -1;
            }
            const char *value = NULL;
            if (o->arg) {
                if (eq)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return evctl_fail(EVCTL_EXIT_USAGE, "%s: --%s needs a value (%s)", cmd->name,
                                      o->name, o->arg);
            } else if (eq) {
                return evctl_fail(EVCTL_EXIT_USAGE, "%s: --%s takes no value", cmd->name, o->name);
            } else {
                value = "1";
            }
            if ((rc = add_value(args, cmd, o, value)) != 0)
                return rc;
            continue;
        }
        if (!only_pos && strcmp(a, "-h") == 0) {
            evctl_cmd_help(cmd, stdout);
            return -1;
        }
        if (args->npos == EVCTL_MAX_POS || args->npos >= cmd->max_pos)
            return evctl_fail(EVCTL_EXIT_USAGE,
                              "%s: unexpected argument \"%s\" (usage: evctl %s %s)", cmd->name, a,
                              cmd->name, cmd->usage);
        args->pos[args->npos++] = a;
    }
    if (args->npos < cmd->min_pos)
        return evctl_fail(EVCTL_EXIT_USAGE, "%s: missing argument (usage: evctl %s %s)", cmd->name,
                          cmd->name, cmd->usage);
    return 0;
}

void evctl_args_clear(evctl_args_t *args)
{
    for (size_t i = 0; i < args->nowned; i++)
        free(args->owned[i]);
    free(args->owned);
    args->owned = NULL;
    args->nowned = 0;
}

/* The slot of the option named `name`, or -1 when it was not given. */
static int find_slot(const evctl_args_t *args, const char *name)
{
    for (int i = 0; i < args->nopts; i++)
        if (strcmp(args->opts[i]->name, name) == 0)
            return i;
    return -1;
}

const char *evctl_opt(const evctl_args_t *args, const char *name)
{
    int i = find_slot(args, name);
    return i >= 0 && args->nvals[i] > 0 ? args->vals[i][args->nvals[i] - 1] : NULL;
}

int evctl_flag(const evctl_args_t *args, const char *name)
{
    return find_slot(args, name) >= 0;
}

const char *const *evctl_opt_all(const evctl_args_t *args, const char *name, int *n)
{
    int i = find_slot(args, name);
    *n = i >= 0 ? args->nvals[i] : 0;
    return i >= 0 ? args->vals[i] : NULL;
}

int evctl_opt_long(const evctl_args_t *args, const char *name, long long min, long long max,
                   long long def, long long *out)
{
    const char *v = evctl_opt(args, name);
    if (!v) {
        *out = def;
        return 0;
    }
    errno = 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return evctl_fail(EVCTL_EXIT_USAGE,
                          "--%s: expected an integer from %lld to %lld, got \"%s\"", name, min, max,
                          v);
    *out = n;
    return 0;
}

/* Prints an option table, one aligned line per option. */
static void print_opts(const evctl_opt_t *opts, FILE *out)
{
    for (const evctl_opt_t *o = opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-26s %s%s\n", left, o->help, o->repeat ? " (repeatable, or a,b,c)" : "");
    }
}

void evctl_cmd_help(const evctl_cmd_t *cmd, FILE *out)
{
    fprintf(out, "Usage: evctl %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->help && *cmd->help)
        fprintf(out, "\n%s", cmd->help);
    int positions = 0;
    for (const evctl_opt_t *o = cmd->opts; o && o->name; o++)
        positions |= strcmp(o->name, "from") == 0;
    if (positions)
        fprintf(out, "\n%s", evctl_scan_specs_help);
    if (cmd->opts && cmd->opts->name) {
        fprintf(out, "\nOptions:\n");
        print_opts(cmd->opts, out);
    }
    fprintf(out, "\nCommon options:\n");
    print_opts(evctl_common_opts, out);
    fprintf(out, "\nExit codes: 0 ok, 64 usage, 65 bad input data, 69 broker unavailable or "
                 "delivery failed,\n70 internal error, 130 interrupted (see evctl --help).\n");
}
