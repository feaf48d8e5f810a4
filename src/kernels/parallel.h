/* parallel.h — loom's own thread pool (internal): splits a range of independent elements or
 * samples into contiguous pieces shared between threads. Results never depend on the thread
 * count, because a caller only splits work whose every output is computed by the same operations
 * whichever piece it falls in (see src/parallel.c). */
#ifndef LOOM_PARALLEL_H
#define LOOM_PARALLEL_H

#include <stddef.h>

/* Threads for loom's own loops, 1..LOOM_PARALLEL_MAX_THREADS (larger counts are capped); 1 never
 * starts a thread. loom_set_num_threads calls it. Until it is called the count is decided at the
 * first use: loom_parallel_default_threads(). */
#define LOOM_PARALLEL_MAX_THREADS 64
void loom_parallel_set_num_threads(int n);
int loom_parallel_num_threads(void);
/* LOOM_NUM_THREADS (a whole number 1..1024) or else the cores the process may run on, capped. */
int loom_parallel_default_threads(void);

/* Runs fn(begin, end, ctx) over [0, n) in contiguous pieces, on the calling thread and up to
 * min(threads, n / min_per_thread) - 1 workers of the pool; returns when all are done. Below
 * 2 * min_per_thread elements, with one thread, from inside fn, or while another thread is using
 * the pool, it is simply fn(0, n, ctx) on the calling thread, without locking anything. Otherwise
 * each piece holds at least min_per_thread / 8 elements (and at least 1). */
void loom_parallel_for(size_t n, size_t min_per_thread, void (*fn)(size_t begin, size_t end, void *ctx),
                       void *ctx);

/* A thread's share must be worth waking it for: about LOOM_PARALLEL_MIN_FLOATS floats of work.
 * Units of per_unit floats each (more for costlier work) that make such a share; no work is never
 * worth a thread. The min_per_thread of loom_parallel_for for loops over rows, samples, columns. */
#define LOOM_PARALLEL_MIN_FLOATS ((size_t)1 << 16)
static inline size_t loom_parallel_min_units(size_t per_unit) {
    if (per_unit == 0) return LOOM_PARALLEL_MIN_FLOATS;
    return per_unit >= LOOM_PARALLEL_MIN_FLOATS ? 1 : LOOM_PARALLEL_MIN_FLOATS / per_unit;
}

#endif
