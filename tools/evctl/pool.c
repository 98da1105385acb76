/*
 * An ordered pool: jobs handed to worker threads and taken back in the
 * order they were submitted (a ring of EVCTL_POOL_MAX_JOBS slots: [head,
 * take) are being run or done, [take, tail) wait for a worker).
 */
#include "evctl.h"

#include <pthread.h>
#include <stdlib.h>

#define RING EVCTL_POOL_MAX_JOBS

typedef struct pool_thread_s {
    evctl_pool_t *pool;
    int index;
    pthread_t tid;
} pool_thread_t;

struct evctl_pool_s {
    evctl_pool_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a job was finished */
    void *job[RING];
    int finished[RING];
    size_t head, take, tail; /* counters; slot = counter % RING */
    int stop;
    int nthreads;
    pool_thread_t *threads;
};

static void *pool_main(void *p_)
{
    pool_thread_t *t = p_;
    evctl_pool_t *p = t->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->take == p->tail)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        size_t slot = p->take++ % RING;
        void *job = p->job[slot];
        pthread_mutex_unlock(&p->mu);
        p->fn(p->arg, t->index, job);
        pthread_mutex_lock(&p->mu);
        p->finished[slot] = 1;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

evctl_pool_t *evctl_pool_new(int workers, evctl_pool_fn fn, void *arg)
{
    if (workers < 1 || !fn)
        return NULL;
    evctl_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->fn = fn;
    p->arg = arg;
    p->threads = calloc((size_t)workers, sizeof *p->threads);
    if (!p->threads || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->threads);
        free(p);
        return NULL;
    }
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < workers; i++) {
        p->threads[i] = (pool_thread_t){p, i, 0};
        if (pthread_create(&p->threads[i].tid, NULL, pool_main, &p->threads[i]) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads < workers) {
        evctl_pool_destroy(p);
        return NULL;
    }
    return p;
}

int evctl_pool_submit(evctl_pool_t *p, void *job)
{
    pthread_mutex_lock(&p->mu);
    int full = p->tail - p->head >= RING;
    if (!full) {
        size_t slot = p->tail++ % RING;
        p->job[slot] = job;
        p->finished[slot] = 0;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    return full ? -1 : 0;
}

void *evctl_pool_next(evctl_pool_t *p)
{
    void *job = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->head < p->tail) {
        size_t slot = p->head % RING;
        while (!p->finished[slot])
            pthread_cond_wait(&p->done, &p->mu);
        job = p->job[slot];
        p->head++;
    }
    pthread_mutex_unlock(&p->mu);
    return job;
}

size_t evctl_pool_out(const evctl_pool_t *p)
{
    return p->tail - p->head; /* only the submitting thread changes head and tail */
}

void evctl_pool_destroy(evctl_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i].tid, NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
