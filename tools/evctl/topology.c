/*
 * The declarative description of the workflow's topics (tools/topics.json):
 * loading, checking and expanding it into the full list of topics, retry
 * and dead-letter topics included.
 */
#include "evctl.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPICS_PATH_MAX 1024 /* as evctl_topology_t.path */

/* Set by CMake (tools/evctl/CMakeLists.txt) from the install directories. */
#ifndef EVCTL_TOPICS_INSTALL_PATH
#define EVCTL_TOPICS_INSTALL_PATH "/usr/local/share/libevents/topics.json"
#endif
#ifndef EVCTL_TOPICS_FROM_BINDIR
#define EVCTL_TOPICS_FROM_BINDIR "../share/libevents/topics.json"
#endif

/* Kafka's rule: 1..249 characters of [a-zA-Z0-9._-]. */
static int topic_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 249 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n &&
           strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The directory of the running program (symbolic links resolved) into
 * out; -1 when /proc does not say. */
static int program_dir(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0 || (size_t)n >= size - 1)
        return -1;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return 0;
}

/* 1 when two paths name the same existing directory. */
static int same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Where the description is looked for without --topics-file and
 * LEV_TOPICS_FILE, in order; fills up to 4 candidates (those that apply)
 * into paths and returns their count:
 *   ./tools/topics.json                       a checkout of the repository
 *   <program dir>/../share/libevents/...      next to an installed evctl,
 *                                             wherever its prefix was moved
 *   <source dir>/tools/topics.json            the evctl of the build tree
 *   <configured prefix>/share/libevents/...   an evctl copied elsewhere */
static size_t topics_candidates(char paths[4][TOPICS_PATH_MAX])
{
    size_t n = 0;
    char dir[TOPICS_PATH_MAX];
    snprintf(paths[n++], TOPICS_PATH_MAX, "./tools/topics.json");
    if (program_dir(dir, sizeof dir) == 0) {
        if (strlen(dir) + strlen(EVCTL_TOPICS_FROM_BINDIR) + 2 <= TOPICS_PATH_MAX) {
            /* <dir>/../share/libevents/topics.json, said without the ".." */
            char *p = paths[n++], *slash, *real;
            snprintf(p, TOPICS_PATH_MAX, "%s/%s", dir, EVCTL_TOPICS_FROM_BINDIR);
            if ((slash = strrchr(p, '/')) != NULL) {
                *slash = '\0';
                real = realpath(p, NULL);
                *slash = '/';
                if (real && strlen(real) + strlen(slash) < TOPICS_PATH_MAX) {
                    memmove(p + strlen(real), slash, strlen(slash) + 1);
                    memcpy(p, real, strlen(real));
                }
                free(real);
            }
        }
#ifdef EVCTL_BUILD_DIR
        if (same_dir(dir, EVCTL_BUILD_DIR))
            snprintf(paths[n++], TOPICS_PATH_MAX, "%s", EVCTL_SOURCE_TOPICS_PATH);
#endif
    }
    snprintf(paths[n++], TOPICS_PATH_MAX, "%s", EVCTL_TOPICS_INSTALL_PATH);
    return n;
}

/* Picks the file: --topics-file, LEV_TOPICS_FILE, else the first readable
 * candidate, its path made absolute so that messages name the file used.
 * NULL when there is none. The result is valid until the next call. */
static const char *topics_path(const evctl_ctx_t *ctx)
{
    static char found[TOPICS_PATH_MAX];
    if (ctx->topics_file)
        return ctx->topics_file;
    const char *env = getenv("LEV_TOPICS_FILE");
    if (env && *env)
        return env;
    char paths[4][TOPICS_PATH_MAX];
    size_t n = topics_candidates(paths);
    for (size_t i = 0; i < n; i++) {
        if (access(paths[i], R_OK) != 0)
            continue;
        char *real = realpath(paths[i], NULL);
        snprintf(found, sizeof found, "%s", real ? real : paths[i]);
        free(real);
        return found;
    }
    return NULL;
}

int evctl_topology_available(const evctl_ctx_t *ctx)
{
    return topics_path(ctx) != NULL;
}

/* obj[key] as an integer in 1..100000 into *out (def when absent); -1 when
 * present but not such an integer. */
static int positive(json_t *obj, const char *key, int def, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000)
        return -1;
    *out = (int)json_integer_value(v);
    return 0;
}

/* 1 when a topic config is absent or an object of strings. */
static int config_ok(json_t *config)
{
    if (!config)
        return 1;
    if (!json_is_object(config))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(config, k, v) if (!json_is_string(v)) return 0;
    return 1;
}

/* Appends a topic to the expansion (once per name); -1 when out of memory. */
static int add_topic(evctl_topology_t *t, const char *name, int partitions, int replication,
                     json_t *config, const char *kind, const char *group)
{
    for (size_t i = 0; i < t->ntopics; i++)
        if (strcmp(t->topics[i].name, name) == 0)
            return 0; /* listed twice (a group reading its own retry topic, say) */
    evctl_topic_spec_t *n = realloc(t->topics, (t->ntopics + 1) * sizeof *n);
    if (!n)
        return -1;
    t->topics = n;
    char *copy = strdup(name);
    if (!copy)
        return -1;
    t->topics[t->ntopics++] =
        (evctl_topic_spec_t){copy, partitions, replication, config, kind, group};
    return 0;
}

/* A Kafka principal as ACLs name it: "User:<name>", the name non-empty,
 * without control characters. */
static int principal_ok(const char *p)
{
    if (!p || strncmp(p, "User:", 5) != 0 || !p[5] || strlen(p) > 250)
        return 0;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0;
    return 1;
}

int evctl_topology_load(evctl_topology_t *t, evctl_ctx_t *ctx, int partitions, int replication,
                        int retry_levels)
{
    memset(t, 0, sizeof *t);
    const char *path = topics_path(ctx);
    if (!path) {
        char paths[4][TOPICS_PATH_MAX], list[4 * TOPICS_PATH_MAX] = "";
        size_t n = topics_candidates(paths), used = 0;
        for (size_t i = 0; i < n; i++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", paths[i]);
            if (w < 0 || (size_t)w >= sizeof list - used)
                break;
            used += (size_t)w;
        }
        return evctl_fail(EVCTL_EXIT_DATA,
                          "no topics description found (looked for %s): give --topics-file PATH "
                          "or set LEV_TOPICS_FILE",
                          list);
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    json_error_t jerr;
    t->doc = json_load_file(t->path, JSON_REJECT_DUPLICATES, &jerr);
    if (!t->doc)
        return evctl_fail(EVCTL_EXIT_DATA, "%s:%d: %s", t->path, jerr.line, jerr.text);
    int rc = 0, def_parts, def_repl;
    char where[128] = "";
    json_t *defaults = json_object_get(t->doc, "defaults");
    json_t *topics = json_object_get(t->doc, "topics");
    json_t *groups = json_object_get(t->doc, "groups");
    json_t *retry = json_object_get(t->doc, "retry_topics");
    json_t *dlq = json_object_get(t->doc, "dlq_topics");
    json_t *retry_conf = retry ? json_object_get(retry, "config") : NULL;
    json_t *dlq_conf = dlq ? json_object_get(dlq, "config") : NULL;
    if (!json_is_object(t->doc)) {
        snprintf(where, sizeof where, "(document): expected an object");
        goto bad;
    }
    if (positive(defaults, "partitions", 3, &def_parts) != 0) {
        snprintf(where, sizeof where, "defaults.partitions: expected a positive integer");
        goto bad;
    }
    /* without one, the cluster's default.replication.factor (-1 asks the
     * broker for it) */
    if (positive(defaults, "replication_factor", -1, &def_repl) != 0) {
        snprintf(where, sizeof where, "defaults.replication_factor: expected a positive integer");
        goto bad;
    }
    int doc_levels = -1;
    if (json_object_get(t->doc, "retry_levels") &&
        positive(t->doc, "retry_levels", 0, &doc_levels) != 0) {
        snprintf(where, sizeof where, "retry_levels: expected a positive integer");
        goto bad;
    }
    if (!config_ok(retry_conf) || !config_ok(dlq_conf)) {
        snprintf(where, sizeof where,
                 "retry_topics/dlq_topics.config: expected an object of strings");
        goto bad;
    }
    json_t *operators = json_object_get(t->doc, "operators");
    if (operators && !json_is_array(operators)) {
        snprintf(where, sizeof where, "operators: expected an array of principals");
        goto bad;
    }
    {
        size_t oi;
        json_t *op;
        json_array_foreach(operators, oi, op)
        {
            if (!principal_ok(json_string_value(op))) {
                snprintf(where, sizeof where,
                         "operators[%zu]: expected \"User:<name>\" (a Kafka principal)", oi);
                goto bad;
            }
        }
    }
    if (!json_is_array(topics) || json_array_size(topics) == 0) {
        snprintf(where, sizeof where, "topics: expected a non-empty array");
        goto bad;
    }
    size_t i;
    json_t *it;
    json_array_foreach(topics, i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        int parts, repl;
        json_t *types = json_object_get(it, "types");
        if (!name || !topic_name_ok(name)) {
            snprintf(where, sizeof where, "topics[%zu].name: expected a topic name", i);
            goto bad;
        }
        if (positive(it, "partitions", def_parts, &parts) ||
            positive(it, "replication_factor", def_repl, &repl)) {
            snprintf(where, sizeof where,
                     "topics[%zu]: partitions and replication_factor must be positive integers", i);
            goto bad;
        }
        if (!config_ok(json_object_get(it, "config"))) {
            snprintf(where, sizeof where, "topics[%zu].config: expected an object of strings", i);
            goto bad;
        }
        if (types && !json_is_array(types)) {
            snprintf(where, sizeof where, "topics[%zu].types: expected an array of patterns", i);
            goto bad;
        }
        if (add_topic(t, name, partitions > 0 ? partitions : parts,
                      replication > 0 ? replication : repl, json_object_get(it, "config"), "topic",
                      NULL) != 0)
            goto nomem;
    }
    if (groups && !json_is_array(groups)) {
        snprintf(where, sizeof where, "groups: expected an array");
        goto bad;
    }
    json_array_foreach(groups, i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        json_t *reads = json_object_get(it, "reads");
        int levels = retry_levels >= 0 ? retry_levels
                     : doc_levels >= 0 ? doc_levels
                                       : ctx->conf.retry.levels;
        if (!name || !*name || strlen(name) > 200 || !topic_name_ok(name)) {
            snprintf(where, sizeof where,
                     "groups[%zu].name: expected a group name usable in topic names", i);
            goto bad;
        }
        if (retry_levels < 0 && json_object_get(it, "retry_levels") &&
            positive(it, "retry_levels", 0, &levels) != 0) {
            snprintf(where, sizeof where, "groups[%zu].retry_levels: expected a positive integer",
                     i);
            goto bad;
        }
        if (levels > LEV_RETRY_LEVELS_MAX) {
            snprintf(where, sizeof where, "groups[%zu]: at most %d retry levels", i,
                     LEV_RETRY_LEVELS_MAX);
            goto bad;
        }
        /* retry and dead-letter topics get as many partitions as the widest input */
        int parts = 0, repl = def_repl;
        size_t k;
        json_t *r;
        if (!json_is_array(reads)) {
            snprintf(where, sizeof where, "groups[%zu].reads: expected an array of topic names", i);
            goto bad;
        }
        json_array_foreach(reads, k, r)
        {
            const char *rn = json_string_value(r);
            size_t j;
            for (j = 0; rn && j < t->ntopics; j++)
                if (strcmp(t->topics[j].name, rn) == 0)
                    break;
            if (!rn || j == t->ntopics) {
                snprintf(where, sizeof where,
                         "groups[%zu].reads[%zu]: not a topic listed in topics", i, k);
                goto bad;
            }
            if (t->topics[j].partitions > parts)
                parts = t->topics[j].partitions;
            repl = t->topics[j].replication;
        }
        json_t *writes = json_object_get(it, "writes");
        if (writes && !json_is_array(writes)) {
            snprintf(where, sizeof where, "groups[%zu].writes: expected an array of topic names",
                     i);
            goto bad;
        }
        json_array_foreach(writes, k, r)
        {
            const char *wn = json_string_value(r);
            size_t j;
            for (j = 0; wn && j < t->ntopics; j++)
                if (strcmp(t->topics[j].name, wn) == 0)
                    break;
            if (!wn || j == t->ntopics) {
                snprintf(where, sizeof where,
                         "groups[%zu].writes[%zu]: not a topic listed in topics", i, k);
                goto bad;
            }
        }
        json_t *principal = json_object_get(it, "principal");
        if (principal && !principal_ok(json_string_value(principal))) {
            snprintf(where, sizeof where,
                     "groups[%zu].principal: expected \"User:<name>\" (a Kafka principal)", i);
            goto bad;
        }
        if (parts == 0)
            parts = partitions > 0 ? partitions : def_parts;
        char topic[256];
        for (int level = 1; level <= levels; level++) {
            lev_retry_topic_name(name, level, topic, sizeof topic);
            if (add_topic(t, topic, parts, repl, retry_conf, "retry", name) != 0)
                goto nomem;
        }
        lev_dlq_topic_name(name, topic, sizeof topic);
        if (add_topic(t, topic, parts, repl, dlq_conf, "dlq", name) != 0)
            goto nomem;
    }
    return 0;
nomem:
    rc = evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    evctl_topology_clear(t);
    return rc;
bad:
    rc = evctl_fail(EVCTL_EXIT_DATA, "%s: %s", t->path, where);
    evctl_topology_clear(t);
    return rc;
}

void evctl_topology_clear(evctl_topology_t *t)
{
    for (size_t i = 0; i < t->ntopics; i++)
        free(t->topics[i].name);
    free(t->topics);
    json_decref(t->doc);
    t->topics = NULL;
    t->ntopics = 0;
    t->doc = NULL;
}

const char *evctl_topology_topic_for_type(const evctl_topology_t *t, const char *type)
{
    size_t i, k;
    json_t *it, *pat;
    json_array_foreach(json_object_get(t->doc, "topics"), i, it)
    {
        json_array_foreach(json_object_get(it, "types"), k, pat)
        {
            const char *p = json_string_value(pat);
            if (p && fnmatch(p, type, 0) == 0)
                return json_string_value(json_object_get(it, "name"));
        }
    }
    return NULL;
}

size_t evctl_topology_group_topics(const evctl_topology_t *t, const char *group, const char **out,
                                   size_t max)
{
    size_t n = 0, i, k;
    json_t *it, *r;
    json_array_foreach(json_object_get(t->doc, "groups"), i, it)
    {
        if (!json_is_string(json_object_get(it, "name")) ||
            strcmp(json_string_value(json_object_get(it, "name")), group) != 0)
            continue;
        json_array_foreach(json_object_get(it, "reads"), k, r) if (n < max && json_is_string(r))
            out[n++] = json_string_value(r);
    }
    if (n == 0)
        return 0;
    for (i = 0; i < t->ntopics && n < max; i++)
        if (t->topics[i].group && strcmp(t->topics[i].group, group) == 0 &&
            strcmp(t->topics[i].kind, "retry") == 0)
            out[n++] = t->topics[i].name;
    return n;
}
