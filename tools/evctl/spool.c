/*
 * A spool: records written once to an unlinked temporary file and read back
 * in order, or one at a time by offset. It lets `evctl publish` validate a
 * whole input before sending any of it without holding the input in
 * memory: the page cache holds what fits, the process only a buffer.
 */
#include "evctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_BUF (1u << 20)

int evctl_spool_open(evctl_spool_t *s)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/evctl-spool-XXXXXX", dir && *dir ? dir : "/tmp");
    s->fd = mkstemp(path);
    if (s->fd < 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "cannot create a temporary file in %s: %s",
                          dir && *dir ? dir : "/tmp", strerror(errno));
    unlink(path); /* gone with the process, whatever happens */
    s->buf = malloc(SPOOL_BUF);
    if (!s->buf) {
        evctl_spool_close(s);
        return evctl_fail(EVCTL_EXIT_INTERNAL, "out of memory");
    }
    return 0;
}

void evctl_spool_close(evctl_spool_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    free(s->rec);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

static int spool_write_all(evctl_spool_t *s, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return evctl_fail(EVCTL_EXIT_INTERNAL, "cannot write the temporary file: %s",
                              w < 0 ? strerror(errno) : "no space");
        p += w;
        n -= (size_t)w;
        s->flushed += (uint64_t)w;
    }
    return 0;
}

int evctl_spool_put(evctl_spool_t *s, const void *rec, uint32_t len, uint64_t *off)
{
    *off = s->flushed + s->len;
    const char *parts[2] = {(const char *)&len, rec};
    size_t sizes[2] = {sizeof len, len};
    for (int i = 0; i < 2; i++) {
        if (s->len + sizes[i] > SPOOL_BUF) {
            int rc = spool_write_all(s, s->buf, s->len);
            s->len = 0;
            if (rc)
                return rc;
        }
        if (sizes[i] > SPOOL_BUF) { /* larger than the buffer: straight through */
            int rc = spool_write_all(s, parts[i], sizes[i]);
            if (rc)
                return rc;
            continue;
        }
        memcpy(s->buf + s->len, parts[i], sizes[i]);
        s->len += sizes[i];
    }
    return 0;
}

/* Reads n bytes at off, from the file or the buffer not written yet. */
static int spool_pread(evctl_spool_t *s, uint64_t off, void *out, size_t n)
{
    char *o = out;
    while (n > 0 && off < s->flushed) {
        size_t want = s->flushed - off < n ? (size_t)(s->flushed - off) : n;
        ssize_t r = pread(s->fd, o, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        o += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    if (n > 0) {
        if (off + n > s->flushed + s->len)
            return -1;
        memcpy(o, s->buf + (off - s->flushed), n);
    }
    return 0;
}

/* Makes room for a record of len bytes in s->rec. */
static int spool_room(evctl_spool_t *s, uint32_t len)
{
    if (len <= s->rec_cap)
        return 0;
    void *nr = realloc(s->rec, len);
    if (!nr)
        return -1;
    s->rec = nr;
    s->rec_cap = len;
    return 0;
}

int evctl_spool_get(evctl_spool_t *s, uint64_t off, const void **rec, uint32_t *len)
{
    uint32_t n;
    if (spool_pread(s, off, &n, sizeof n) != 0 || spool_room(s, n) != 0 ||
        spool_pread(s, off + sizeof n, s->rec, n) != 0)
        return -1;
    *rec = s->rec;
    *len = n;
    return 0;
}

int evctl_spool_rewind(evctl_spool_t *s)
{
    int rc = spool_write_all(s, s->buf, s->len);
    s->len = 0;
    s->rpos = 0;
    s->rlen = 0;
    s->roff = 0;
    return rc;
}

/* Reads the next n bytes of the file into out, through s->buf. */
static int spool_read_seq(evctl_spool_t *s, void *out, size_t n)
{
    char *o = out;
    while (n > 0) {
        if (s->rpos == s->rlen) {
            if (s->roff >= s->flushed)
                return -1;
            ssize_t r = pread(s->fd, s->buf, SPOOL_BUF, (off_t)s->roff);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return -1;
            s->roff += (uint64_t)r;
            s->rpos = 0;
            s->rlen = (size_t)r;
        }
        size_t k = s->rlen - s->rpos < n ? s->rlen - s->rpos : n;
        memcpy(o, s->buf + s->rpos, k);
        s->rpos += k;
        o += k;
        n -= k;
    }
    return 0;
}

int evctl_spool_next(evctl_spool_t *s, const void **rec, uint32_t *len)
{
    uint32_t n;
    if (s->roff >= s->flushed && s->rpos == s->rlen)
        return 1; /* the end */
    if (spool_read_seq(s, &n, sizeof n) != 0 || spool_room(s, n) != 0 ||
        spool_read_seq(s, s->rec, n) != 0)
        return evctl_fail(EVCTL_EXIT_INTERNAL, "cannot read the temporary file back");
    *rec = s->rec;
    *len = n;
    return 0;
}
