/*
 * Helpers of the evctl integration tests: run the built evctl as a child
 * process with its stdout and stderr captured, parse its JSON lines, write
 * input files, produce raw records with headers.
 */
#ifndef IT_EVCTL_H
#define IT_EVCTL_H

#include "check.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EVCTL_MAX_ARGS 48

/* A started evctl: its pid and the files its output goes to. */
typedef struct evctl_proc_s {
    pid_t pid;
    char out_path[256], err_path[256];
} evctl_proc_t;

/* Path of a new temporary file named after `what` (created empty). */
static inline void it_tmp_path(const char *what, char *out, size_t size)
{
    snprintf(out, size, "%s/evctl-%s-XXXXXX", lev_test_env("TMPDIR", "/tmp"), what);
    int fd = mkstemp(out);
    if (fd >= 0)
        close(fd);
}

/* Reads a whole file into a malloc'd string ("" when missing). */
static inline char *it_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    while (f) {
        if (n + 4096 > cap) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown)
                abort();
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Writes text to a new temporary file; its path goes to out. */
static inline void it_write_file(const char *what, const char *text, char *out, size_t size)
{
    it_tmp_path(what, out, size);
    FILE *f = fopen(out, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

/* Starts the program `prog` (NULL: the built evctl) in directory `cwd`
 * (NULL: this one) with argv (NULL-ended, without the program), stdin from
 * `in` (NULL: /dev/null). */
static inline void it_evctl_startv_as(evctl_proc_t *p, const char *prog, const char *cwd,
                                      const char *in, const char *const *args)
{
    char bin[512];
    const char *argv[EVCTL_MAX_ARGS + 2];
    int n = 0;
    if (prog)
        snprintf(bin, sizeof bin, "%s", prog);
    else
        lev_test_bin("tools/evctl/evctl", bin, sizeof bin);
    argv[n++] = bin;
    for (; args && *args && n <= EVCTL_MAX_ARGS; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    it_tmp_path("out", p->out_path, sizeof p->out_path);
    it_tmp_path("err", p->err_path, sizeof p->err_path);
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        int fin = open(in ? in : "/dev/null", O_RDONLY);
        int fout = open(p->out_path, O_WRONLY | O_TRUNC);
        int ferr = open(p->err_path, O_WRONLY | O_TRUNC);
        if (fin < 0 || fout < 0 || ferr < 0 || (cwd && chdir(cwd) != 0))
            _exit(127);
        dup2(fin, 0);
        dup2(fout, 1);
        dup2(ferr, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
}

/* Starts the built evctl here with argv (NULL-ended, without the program),
 * stdin from `in` (NULL: /dev/null). */
static inline void it_evctl_startv(evctl_proc_t *p, const char *in, const char *const *args)
{
    it_evctl_startv_as(p, NULL, NULL, in, args);
}

/* Waits for a started evctl; returns its exit code (128 + signal when it
 * died of one, -1 on timeout, after killing it). Output in *out / *err
 * (malloc'd; either may be NULL); its peak resident memory in *rss_kib
 * (may be NULL). */
static inline int it_evctl_finish_rss(evctl_proc_t *p, int timeout_ms, long *rss_kib, char **out,
                                      char **err)
{
    int status = 0, rc = -1;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    int64_t deadline = lev_mono_ms() + timeout_ms;
    pid_t got;
    while ((got = wait4(p->pid, &status, WNOHANG, &ru)) == 0 && lev_mono_ms() < deadline)
        lev_test_sleep_ms(10);
    if (got != p->pid) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
    } else {
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (rss_kib)
        *rss_kib = ru.ru_maxrss;
    char *o = it_slurp(p->out_path), *e = it_slurp(p->err_path);
    if (rc != 0 && rc != 64 && rc != 65 && rc != 130)
        fprintf(stderr, "evctl exited %d; stderr:\n%s\n", rc, e);
    unlink(p->out_path);
    unlink(p->err_path);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

static inline int it_evctl_finish(evctl_proc_t *p, int timeout_ms, char **out, char **err)
{
    return it_evctl_finish_rss(p, timeout_ms, NULL, out, err);
}

/* Runs evctl to completion: it_evctl(&out, &err, stdin_path, "tail", topic, NULL). */
static inline int it_evctl(char **out, char **err, const char *in, ...)
{
    const char *args[EVCTL_MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, in);
    for (const char *a; n < EVCTL_MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    evctl_proc_t p;
    it_evctl_startv(&p, in, args);
    return it_evctl_finish(&p, 120000, out, err);
}

/* Runs `prog` (NULL: the built evctl) in `cwd` to completion, stdin from
 * /dev/null: it_evctl_as(&out, &err, prog, "/tmp", "topics", NULL). */
static inline int it_evctl_as(char **out, char **err, const char *prog, const char *cwd, ...)
{
    const char *args[EVCTL_MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, cwd);
    for (const char *a; n < EVCTL_MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    evctl_proc_t p;
    it_evctl_startv_as(&p, prog, cwd, NULL, args);
    return it_evctl_finish(&p, 120000, out, err);
}

/* Parses JSON lines into an array (bad lines become null). */
static inline json_t *it_lines(const char *text)
{
    json_t *arr = json_array();
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) {
            json_t *j = json_loadb(p, len, 0, NULL);
            json_array_append_new(arr, j ? j : json_null());
        }
        p = nl ? nl + 1 : NULL;
    }
    return arr;
}

/* The lines of an array that have member `name` (a new array). */
static inline json_t *it_with(json_t *lines, const char *name)
{
    json_t *out = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l) if (json_object_get(l, name)) json_array_append(out, l);
    return out;
}

/* A string member of a JSON object by path "a.b" (NULL when absent). */
static inline const char *it_str(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part && j; part = strtok_r(NULL, ".", &save))
        j = json_object_get(j, part);
    return json_string_value(j);
}

static inline json_int_t it_int(json_t *j, const char *name)
{
    return json_integer_value(json_object_get(j, name));
}

/* Produces one record with raw bytes and headers (name, value pairs ending
 * with NULL) to a partition; waits for the acknowledgement. */
static inline int it_produce_raw(const char *topic, int32_t partition, const char *key,
                                 const void *value, size_t len, const char *const *headers)
{
    char errstr[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", lev_test_env("KAFKA_BOOTSTRAP", "127.0.0.1:17092"),
                      errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
    if (!rk)
        return -1;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (; headers && headers[0]; headers += 2)
        rd_kafka_header_add(h, headers[0], -1, headers[1], -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e)
        rd_kafka_headers_destroy(h);
    int rc = e ? -1 : rd_kafka_flush(rk, 30000) ? -1 : 0;
    rd_kafka_destroy(rk);
    return rc;
}

/* An OrderPlaced as one `evctl publish` input line (malloc'd, no newline). */
static inline char *it_order_line(const char *id, int i, const char *time, const char *key)
{
    json_t *line = json_pack("{s:s,s:s,s:o}", "type", "shop.order.OrderPlaced", "id", id, "value",
                             lev_test_order_json(id, i));
    if (time)
        json_object_set_new(line, "time", json_string(time));
    if (key)
        json_object_set_new(line, "key", json_string(key));
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    return s;
}

/* Writes n OrderPlaced lines with fresh ids (into ids) to a temp file; times
 * base_ms + i seconds when base_ms > 0. */
static inline void it_orders_file(size_t n, char (*ids)[LEV_UUID_STR_LEN], int64_t base_ms,
                                  char *path, size_t size)
{
    it_tmp_path("in", path, size);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    for (size_t i = 0; i < n; i++) {
        char t[32];
        lev_uuid4(ids[i]);
        if (base_ms > 0)
            lev_time_format(base_ms + (int64_t)i * 1000, t);
        char *line = it_order_line(ids[i], (int)i, base_ms > 0 ? t : NULL, NULL);
        fprintf(f, "%s\n", line);
        free(line);
    }
    fclose(f);
}

/* Index of a ce_id among ids, or -1. */
static inline int it_find_id(char (*ids)[LEV_UUID_STR_LEN], size_t n, const char *id)
{
    for (size_t i = 0; id && i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return (int)i;
    return -1;
}

#endif
