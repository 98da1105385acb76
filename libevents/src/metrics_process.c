/*
 * The standard process_* metrics of the Prometheus client libraries, read
 * from /proc on each scrape: CPU time, memory, file descriptors, start
 * time. Where /proc is missing (not Linux) they are left out.
 */
#include "metrics_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Fields 14 (utime), 15 (stime), 22 (starttime, ticks after boot),
 * 23 (vsize, bytes) and 24 (rss, pages) of /proc/self/stat. */
typedef struct proc_stat_s {
    unsigned long long utime, stime, starttime, vsize;
    long long rss;
} proc_stat_t;

static int read_proc_stat(proc_stat_t *st)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name (field 2) is in parentheses and may hold spaces */
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": field 3 (state) onwards */
    int field = 3;
    unsigned long long v[25] = {0};
    for (p += 2; *p && field <= 24;) {
        const char *end = strchr(p, ' ');
        if (field >= 14)
            v[field] = strtoull(p, NULL, 10);
        if (field == 24)
            st->rss = strtoll(p, NULL, 10);
        if (!end)
            break;
        p = end + 1;
        field++;
    }
    if (field < 24)
        return -1;
    st->utime = v[14];
    st->stime = v[15];
    st->starttime = v[22];
    st->vsize = v[23];
    return 0;
}

/* The boot time (seconds since the epoch) from /proc/stat, 0 when unknown. */
static long long boot_time(void)
{
    char line[256];
    long long btime = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void gauge(lev_mx_buf_t *b, const char *name, const char *help, lev_mx_type_t type,
                  const char *value)
{
    lev_mx_write_header(b, name, help, type);
    lev_mx_write_sample(b, name, NULL, NULL, 0, value);
}

void lev_mx_render_process(lev_mx_buf_t *b)
{
    proc_stat_t st;
    char v[64];
    long ticks = sysconf(_SC_CLK_TCK);
    if (ticks <= 0 || read_proc_stat(&st) != 0)
        return;
    snprintf(v, sizeof v, "%.2f", (double)(st.utime + st.stime) / (double)ticks);
    gauge(b, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
          LEV_MX_COUNTER, v);
    long page = sysconf(_SC_PAGESIZE);
    snprintf(v, sizeof v, "%lld", st.rss * (page > 0 ? page : 4096));
    gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.", LEV_MX_GAUGE, v);
    snprintf(v, sizeof v, "%llu", st.vsize);
    gauge(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.", LEV_MX_GAUGE, v);
    long long btime = boot_time();
    if (btime > 0) {
        snprintf(v, sizeof v, "%.2f", (double)btime + (double)st.starttime / (double)ticks);
        gauge(b, "process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.", LEV_MX_GAUGE, v);
    }
    long fds = open_fds();
    if (fds >= 0) {
        snprintf(v, sizeof v, "%ld", fds);
        gauge(b, "process_open_fds", "Number of open file descriptors.", LEV_MX_GAUGE, v);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)rl.rlim_cur);
        gauge(b, "process_max_fds", "Maximum number of open file descriptors.", LEV_MX_GAUGE, v);
    }
}
