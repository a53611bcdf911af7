#include "core/threads.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/status.h"

struct sl_pool {
    int n;                 /* total threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    /* current job */
    sl_pool_fn fn;
    void *arg;
    int64_t total, chunk;
    int64_t next;          /* next chunk start, guarded by mu */
    int busy;              /* workers still running the current job */
    unsigned long gen;     /* job generation */
    int quit;
};

static __thread int t_in_worker;

int sl_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Take chunks until none are left. */
static void run_chunks(sl_pool *p, int tid) {
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int64_t b = p->next;
        if (b >= p->total) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
        p->next = b + p->chunk;
        pthread_mutex_unlock(&p->mu);
        int64_t e = b + p->chunk < p->total ? b + p->chunk : p->total;
        p->fn(p->arg, b, e, tid);
    }
}

typedef struct {
    sl_pool *p;
    int tid;
} worker_arg;

static void *worker(void *a_) {
    worker_arg *a = a_;
    sl_pool *p = a->p;
    int tid = a->tid;
    free(a);
    t_in_worker = 1;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->gen == seen) pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

sl_pool *sl_pool_create(int n_threads) {
    if (n_threads <= 0) n_threads = sl_cpu_count();
    sl_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->th = calloc((size_t)n_threads, sizeof *p->th);
    if (!p->th) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        SL_ASSERT(a);
        a->p = p;
        a->tid = i;
        if (pthread_create(&p->th[i], NULL, worker, a) != 0) {
            free(a);
            p->n = i; /* run with fewer threads */
            break;
        }
    }
    return p;
}

void sl_pool_free(sl_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->th);
    free(p);
}

int sl_pool_size(const sl_pool *p) { return p ? p->n : 1; }

void sl_pool_for(sl_pool *p, int64_t n, int64_t min_chunk, sl_pool_fn fn, void *arg) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    if (!p || p->n == 1 || t_in_worker || n <= min_chunk) {
        fn(arg, 0, n, 0);
        return;
    }
    /* about 4 chunks per thread for load balance, never below min_chunk */
    int64_t chunk = (n + (int64_t)p->n * 4 - 1) / ((int64_t)p->n * 4);
    if (chunk < min_chunk) chunk = min_chunk;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->chunk = chunk;
    p->next = 0;
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    t_in_worker = 1;
    run_chunks(p, 0);
    t_in_worker = 0;
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
