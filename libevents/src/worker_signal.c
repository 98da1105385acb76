/*
 * SIGTERM and SIGINT for every worker of the process that asked for them.
 *
 * The handler touches no worker: it sets a flag and writes a byte to a pipe
 * that lives as long as the process. A worker that sees either (its loop
 * checks the flag and polls the pipe) stops every registered worker under
 * the registry's lock. A worker leaves the registry in lev_worker_destroy;
 * when the last one leaves, the handlers that were there before are put
 * back. So a signal after a worker is destroyed never reaches freed memory.
 */
#include "worker_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define MAX_REGISTERED 64

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static lev_worker_t *registered[MAX_REGISTERED];
static size_t nregistered;
static struct sigaction old_term, old_int;
static int installed;
static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_pending;

static void on_signal(int sig)
{
    int saved = errno;
    (void)sig;
    sig_pending = 1;
    if (sig_pipe[1] >= 0) {
        ssize_t n = write(sig_pipe[1], "s", 1);
        (void)n; /* a full pipe already wakes the reader */
    }
    errno = saved;
}

static int pipe_open(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

int lev_w_signals_add(lev_worker_t *w)
{
    int rc = LEV_OK;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nregistered; i++)
        if (registered[i] == w)
            goto out;
    if (nregistered == MAX_REGISTERED) {
        rc = LEV_ERR_ARG;
        goto out;
    }
    if (sig_pipe[0] < 0 && pipe_open(sig_pipe) != 0) {
        rc = LEV_ERR_IO;
        goto out;
    }
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, &old_term) != 0) {
            rc = LEV_ERR_IO;
            goto out;
        }
        if (sigaction(SIGINT, &sa, &old_int) != 0) {
            sigaction(SIGTERM, &old_term, NULL);
            rc = LEV_ERR_IO;
            goto out;
        }
        installed = 1;
    }
    registered[nregistered++] = w;
out:
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void lev_w_signals_remove(lev_worker_t *w)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nregistered; i++) {
        if (registered[i] == w) {
            registered[i] = registered[--nregistered];
            break;
        }
    }
    if (nregistered == 0 && installed) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
        installed = 0;
    }
    pthread_mutex_unlock(&reg_lock);
}

int lev_w_signals_pending(void)
{
    return sig_pending != 0;
}

int lev_w_signals_fd(void)
{
    return sig_pipe[0];
}

void lev_w_signals_dispatch(void)
{
    char buf[64];
    pthread_mutex_lock(&reg_lock);
    sig_pending = 0;
    while (sig_pipe[0] >= 0 && read(sig_pipe[0], buf, sizeof buf) > 0)
        ;
    for (size_t i = 0; i < nregistered; i++)
        lev_worker_stop(registered[i]);
    pthread_mutex_unlock(&reg_lock);
}
