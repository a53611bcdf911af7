/* core/threads.h — a fixed pool of worker threads for data-parallel loops.
 *
 * sl_pool_for splits [0, n) into contiguous chunks and runs fn on them from the pool's workers
 * and the calling thread; it returns when every chunk is done. Calls from inside a worker run
 * serially on that worker (no nested parallelism, no deadlock). One thread at a time may call
 * sl_pool_for on a given pool (the thread that owns the backend). */
#ifndef SL_CORE_THREADS_H
#define SL_CORE_THREADS_H

#include <stdint.h>

typedef struct sl_pool sl_pool;

/* fn(arg, begin, end, thread_index); thread_index < sl_pool_size(). */
typedef void (*sl_pool_fn)(void *arg, int64_t begin, int64_t end, int tid);

/* n_threads <= 0 picks the number of online CPUs. Returns NULL only on allocation failure. */
sl_pool *sl_pool_create(int n_threads);
void sl_pool_free(sl_pool *p); /* NULL is fine */
int sl_pool_size(const sl_pool *p);
/* min_chunk: the smallest chunk worth a thread (>= 1). p == NULL runs serially. */
void sl_pool_for(sl_pool *p, int64_t n, int64_t min_chunk, sl_pool_fn fn, void *arg);

/* Number of online CPUs (>= 1). */
int sl_cpu_count(void);

#endif
