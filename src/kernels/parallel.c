/* parallel.c — a tiny persistent thread pool for loom's loops (element-wise maths, im2col, pooling,
 * the optimizer update) and for the blocks of large matrix products.
 *
 * Why it looks like this:
 * - Results must not depend on the thread count, so callers only split independent outputs: a job
 *   is a range [0, n) cut into fixed contiguous pieces (a few per thread), and which thread runs a
 *   piece never matters.
 * - It is the only pool: OpenBLAS runs on one thread and large matrix products come here cut into
 *   blocks (gemm.c). Two pools would fight: an idle OpenBLAS worker spins on sched_yield for ~0.1 s
 *   after each product, taking half a core from whatever loom runs next.
 * - Idle threads spin briefly, then block on a condition variable (see SPIN_ROUNDS).
 * - The threads take pieces in turn from a shared counter instead of owning one chunk each: the
 *   caller starts at once and takes whatever a late or slowed worker has not, which costs at most
 *   about the serial time, never a wait on top of it.
 * - Workers are created lazily, on the first job that wants them (normally the first training
 *   step), from static storage: a job allocates nothing.
 * - One job at a time: a second user thread (another model trained concurrently) or a nested call
 *   from inside a chunk finds the pool taken (trylock) and simply runs its range inline.
 * - At process exit the workers are detached threads spinning or blocked in pthread_cond_wait: nothing to
 *   join, nothing allocated by loom to free (an atexit join could deadlock when exit() is called
 *   while another user thread is inside a job). After fork() the child, which has no workers,
 *   starts from an empty pool.
 * - Workers block every signal, so process-directed signals (SIGINT...) reach the user's threads. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity: the cores this process may run on */
#endif
#include "kernels/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef void (*range_fn)(size_t begin, size_t end, void *ctx);

/* 0 until decided: by loom_parallel_set_num_threads, or at first use from the environment */
static atomic_int threads_wanted = 0;

static int clamp_threads(long n) {
    if (n < 1) return 1;
    return n > LOOM_PARALLEL_MAX_THREADS ? LOOM_PARALLEL_MAX_THREADS : (int)n;
}

/* LOOM_NUM_THREADS when it is a whole number 1..1024, else every core the process may use (its
 * affinity mask, so taskset and container CPU sets count), as PyTorch and TensorFlow do. */
int loom_parallel_default_threads(void) {
    const char *env = getenv("LOOM_NUM_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 1024) return clamp_threads(n);
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return clamp_threads(CPU_COUNT(&set));
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return clamp_threads(n > 0 ? n : 1);
}

void loom_parallel_set_num_threads(int n) { atomic_store(&threads_wanted, clamp_threads(n)); }

int loom_parallel_num_threads(void) {
    int n = atomic_load_explicit(&threads_wanted, memory_order_relaxed);
    if (n > 0) return n;
    int expected = 0; /* the first user decides; a concurrent set_num_threads wins */
    atomic_compare_exchange_strong(&threads_wanted, &expected, loom_parallel_default_threads());
    return atomic_load(&threads_wanted);
}

/* Held by the thread whose job is in the pool (and while workers are being created). */
static pthread_mutex_t pool_owner = PTHREAD_MUTEX_INITIALIZER;

/* The job: [0, n) cut into `pieces` fixed contiguous pieces, handed out in order by `next`. */
static struct {
    pthread_mutex_t lock; /* guards the fields up to `active`; the job's fields are written under it */
    pthread_cond_t start; /* workers wait here for a new generation */
    pthread_cond_t done;  /* the owner waits here for active == 0 */
    int n_workers;        /* started so far; they never exit */
    atomic_ulong generation; /* written under the lock; read without it while spinning */
    bool open;            /* the current job still takes workers */
    atomic_int active;    /* workers taking pieces of the current job (written under the lock) */
    int max_active;       /* the job's thread count less the owner */
    atomic_size_t next;   /* the next piece nobody has taken */
    size_t pieces, n;
    range_fn fn;
    void *ctx;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .start = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Piece i of n cut into `pieces` nearly equal contiguous parts (the first n % pieces one longer). */
static size_t piece_begin(size_t n, size_t pieces, size_t i) {
    size_t q = n / pieces, r = n % pieces;
    return q * i + (i < r ? i : r);
}

/* Takes and runs pieces until none is left. Pieces, not one chunk per thread: a worker that gets
 * its core late (or shares it with OpenBLAS's spinning thread) simply takes fewer of them. */
static void take_pieces(void) {
    for (;;) {
        size_t i = atomic_fetch_add(&pool.next, 1);
        if (i >= pool.pieces) return;
        pool.fn(piece_begin(pool.n, pool.pieces, i), piece_begin(pool.n, pool.pieces, i + 1), pool.ctx);
    }
}

/* Spin-then-block. A training step posts a job every few microseconds to milliseconds, and waking a
 * blocked thread takes tens of microseconds, which on a product of a few hundred microseconds costs
 * more than the second core gains. So a waiting thread first spins (a pause loop, no system call)
 * for about SPIN_ROUNDS pauses (a fraction of a millisecond), and only then blocks: between steps of
 * a training loop the cores stay hot, outside training they are free again at once. */
#define SPIN_ROUNDS 40000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    /* A job posted before this line is simply missed: its owner runs the pieces itself. */
    unsigned long seen = atomic_load(&pool.generation);
    for (;;) {
        if (atomic_load(&pool.generation) == seen) {
            pthread_mutex_unlock(&pool.lock);
            for (int i = 0; i < SPIN_ROUNDS && atomic_load_explicit(&pool.generation, memory_order_acquire) == seen; i++)
                cpu_relax();
            pthread_mutex_lock(&pool.lock);
        }
        while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.start, &pool.lock);
        seen = pool.generation;
        /* woke after its owner had finished it, or more workers than the job's thread count */
        if (!pool.open || pool.active >= pool.max_active) continue;
        pool.active++;            /* the owner now waits for this worker before returning */
        pthread_mutex_unlock(&pool.lock);
        take_pieces();
        pthread_mutex_lock(&pool.lock);
        if (--pool.active == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void reset_after_fork(void) {
    pthread_mutex_init(&pool_owner, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.start, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.n_workers = 0;
    pool.open = false;
    pool.active = 0;
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void register_fork_handler(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

/* Starts workers up to `want` (called by the owner, no job in flight); returns how many exist,
 * fewer than asked if the system refuses a thread. */
static int ensure_workers(int want) {
    if (pool.n_workers >= want) return pool.n_workers;
    pthread_once(&fork_once, register_fork_handler);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return pool.n_workers;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the new threads */
    while (pool.n_workers < want) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker_main, NULL) != 0) break;
        pool.n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return pool.n_workers;
}

/* Pieces per thread: enough for the caller to make up for a late or slowed worker, few enough
 * that each piece is still worth an atomic increment. */
#define PIECES_PER_THREAD 8

void loom_parallel_for(size_t n, size_t min_per_thread, range_fn fn, void *ctx) {
    if (min_per_thread < 1) min_per_thread = 1;
    size_t threads = n / min_per_thread;
    size_t wanted = (size_t)loom_parallel_num_threads();
    if (threads > wanted) threads = wanted;
    if (threads < 2 || pthread_mutex_trylock(&pool_owner) != 0) {
        fn(0, n, ctx);
        return;
    }
    int workers = ensure_workers((int)threads - 1);
    if (workers < 1) {
        pthread_mutex_unlock(&pool_owner);
        fn(0, n, ctx);
        return;
    }
    if ((size_t)workers + 1 < threads) threads = (size_t)workers + 1;
    size_t min_piece = min_per_thread / PIECES_PER_THREAD ? min_per_thread / PIECES_PER_THREAD : 1;
    size_t pieces = threads * PIECES_PER_THREAD;
    if (pieces > n / min_piece) pieces = n / min_piece;

    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.pieces = pieces;
    pool.max_active = (int)threads - 1;
    atomic_store(&pool.next, 0);
    pool.open = true;
    pool.generation++;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);

    take_pieces();

    pthread_mutex_lock(&pool.lock);
    pool.open = false;
    if (atomic_load(&pool.active) > 0) { /* a worker is finishing its last piece: usually microseconds */
        pthread_mutex_unlock(&pool.lock);
        for (int i = 0; i < SPIN_ROUNDS && atomic_load_explicit(&pool.active, memory_order_acquire) > 0; i++)
            cpu_relax();
        pthread_mutex_lock(&pool.lock);
    }
    while (atomic_load(&pool.active) > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool_owner);
}
