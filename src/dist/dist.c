/* dist.c — the MPI side of data-parallel training (dist.h). Built without MPI (LOOM_HAVE_MPI
 * undefined) the context cannot be made, so the reductions below are never reached with more
 * than one rank; they stay identity operations so the training loop needs no #ifdef. */
#include "dist/dist.h"

#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LOOM_HAVE_MPI
#include <mpi.h>
#if MPI_VERSION < 4 && defined(OPEN_MPI)
#include <mpi-ext.h> /* MPIX_Allreduce_init, OpenMPI's persistent collectives before MPI 4 */
#endif
#endif

#define BUCKET_DEFAULT ((size_t)4 << 20)
#define BUCKET_MIN ((size_t)256)
#define BUCKET_MAX ((size_t)1 << 30)

struct loom_dist {
    int rank, size;
    size_t bucket_bytes;
    long steps;    /* loom_dist_stats */
    double wait_s;
#ifdef LOOM_HAVE_MPI
    MPI_Comm comm;
    bool finalize; /* loom_dist_create initialised MPI */
#endif
};

int loom_dist_available(void) {
#ifdef LOOM_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

loom_dist *loom_dist_create(const void *comm, char *err, size_t errlen) {
#ifdef LOOM_HAVE_MPI
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
        if (err && errlen) snprintf(err, errlen, "loom_dist_create: MPI has already been finalised");
        return NULL;
    }
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        if (err && errlen) snprintf(err, errlen, "loom_dist_create: MPI_Init failed");
        return NULL;
    }
    loom_dist *d = calloc(1, sizeof *d);
    if (!d) {
        if (err && errlen) snprintf(err, errlen, "loom_dist_create: out of memory");
        return NULL;
    }
    d->finalize = !inited;
    d->bucket_bytes = BUCKET_DEFAULT;
    /* a duplicate: loom's collectives never mix with the program's own messages */
    if (MPI_Comm_dup(comm ? *(const MPI_Comm *)comm : MPI_COMM_WORLD, &d->comm) != MPI_SUCCESS) {
        if (err && errlen) snprintf(err, errlen, "loom_dist_create: MPI_Comm_dup failed");
        free(d);
        return NULL;
    }
    /* errors come back as codes (turned into loom messages), not MPI's abort */
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    if (err && errlen) err[0] = '\0';
    return d;
#else
    (void)comm;
    int launched = loom_dist_launcher_size();
    if (err && errlen)
        snprintf(err, errlen, "loom_dist_create: loom was built without MPI (configure with -DLOOM_USE_MPI=ON and an MPI "
                              "installed, e.g. Debian's openmpi-bin libopenmpi-dev)%s",
                 launched > 1 ? "; this process is one of several started by an MPI launcher, each of which would "
                                "train alone" : "");
    return NULL;
#endif
}

void loom_dist_free(loom_dist *d) {
    if (!d) return;
#ifdef LOOM_HAVE_MPI
    MPI_Comm_free(&d->comm);
    if (d->finalize) MPI_Finalize();
#endif
    free(d);
}

int loom_dist_rank(const loom_dist *d) { return d ? d->rank : 0; }
int loom_dist_size(const loom_dist *d) { return d ? d->size : 1; }

void loom_dist_set_bucket_bytes(loom_dist *d, size_t bytes) {
    if (!d) return;
    d->bucket_bytes = bytes < BUCKET_MIN ? BUCKET_MIN : bytes > BUCKET_MAX ? BUCKET_MAX : bytes;
}

void loom_dist_stats(const loom_dist *d, long *steps, double *wait_s) {
    if (steps) *steps = d ? d->steps : 0;
    if (wait_s) *wait_s = d ? d->wait_s : 0;
}

void loom_dist_shard(int rank, int size, int per_rank, size_t global, size_t *offset, int *count) {
    if (global >= (size_t)size * (size_t)per_rank) { /* a full global batch */
        *offset = (size_t)rank * (size_t)per_rank;
        *count = per_rank;
        return;
    }
    size_t q = global / (size_t)size, r = global % (size_t)size, k = (size_t)rank;
    *offset = k * q + (k < r ? k : r);
    *count = (int)(q + (k < r));
}

#ifdef LOOM_HAVE_MPI
static loom_status mpi_fail(loom_dist *d, int rc, const char *what, loom_error *err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return loom_set_error(err, LOOM_ERR_DIST, "rank %d of %d: %s failed: %s", d->rank, d->size, what, msg);
}
#endif

static loom_status reduce(loom_dist *d, void *v, int n, bool is_double, int op, loom_error *err) {
#ifdef LOOM_HAVE_MPI
    if (!d || d->size == 1) return LOOM_OK;
    MPI_Op ops[] = {MPI_SUM, MPI_MAX, MPI_LOR};
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, is_double ? MPI_DOUBLE : MPI_C_BOOL, ops[op], d->comm);
    return rc == MPI_SUCCESS ? LOOM_OK : mpi_fail(d, rc, "MPI_Allreduce", err);
#else
    (void)d, (void)v, (void)n, (void)is_double, (void)op, (void)err;
    return LOOM_OK;
#endif
}

loom_status loom_dist_sum(loom_dist *d, double *v, int n, loom_error *err) { return reduce(d, v, n, true, 0, err); }
loom_status loom_dist_max(loom_dist *d, double *v, int n, loom_error *err) { return reduce(d, v, n, true, 1, err); }
loom_status loom_dist_or(loom_dist *d, bool *flags, int n, loom_error *err) { return reduce(d, flags, n, false, 2, err); }

loom_status loom_dist_sum_floats(loom_dist *d, float *v, size_t n, loom_error *err) {
#ifdef LOOM_HAVE_MPI
    if (!d || d->size == 1) return LOOM_OK;
    for (size_t done = 0; done < n;) { /* counts are ints */
        size_t part = n - done < (size_t)INT_MAX ? n - done : (size_t)INT_MAX;
        int rc = MPI_Allreduce(MPI_IN_PLACE, v + done, (int)part, MPI_FLOAT, MPI_SUM, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(d, rc, "MPI_Allreduce", err);
        done += part;
    }
    return LOOM_OK;
#else
    (void)d, (void)v, (void)n, (void)err;
    return LOOM_OK;
#endif
}

loom_status loom_dist_bcast(loom_dist *d, float *p, size_t n, loom_error *err) {
#ifdef LOOM_HAVE_MPI
    if (!d || d->size == 1) return LOOM_OK;
    for (size_t done = 0; done < n;) { /* counts are ints */
        size_t part = n - done < (size_t)INT_MAX ? n - done : (size_t)INT_MAX;
        int rc = MPI_Bcast(p + done, (int)part, MPI_FLOAT, 0, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(d, rc, "MPI_Bcast", err);
        done += part;
    }
    return LOOM_OK;
#else
    (void)d, (void)p, (void)n, (void)err;
    return LOOM_OK;
#endif
}

int loom_dist_any(loom_dist *d, int flag) {
    bool f = flag != 0;
    loom_error scratch = {0};
    return loom_dist_or(d, &f, 1, &scratch) ? -1 : f;
}

int loom_dist_launcher_size(void) {
    /* Open MPI, MPICH / Intel MPI (PMI), PMIx launchers, Slurm's srun */
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end == '\0' && n >= 1 && n <= INT_MAX) return (int)n;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- gradient buckets */

typedef struct bucket {
    size_t lo, hi;  /* floats [lo, hi) of the gradient buffer */
    int ready_pos;  /* complete once the backward has finished this position (-1: only after it) */
} bucket;

struct loom_dist_grads {
    loom_dist *d;
    loom_model *m;
    int n;          /* buckets, in the order they are started: highest offsets first */
    bucket *b;
    int next;       /* the next bucket to start this step */
    float scale;
    loom_status status;
#ifdef LOOM_HAVE_MPI
    MPI_Request *req;
    bool persistent; /* req[k] are persistent allreduces, made once and started every step */
    struct shm_reduce *shm; /* every rank on this machine: the reduction in shared memory */
#endif
};

#ifdef LOOM_HAVE_MPI
/* A persistent in-place allreduce of n floats at p, where the MPI library has one (MPI 4, or
 * OpenMPI's pcollreq extension). Why: OpenMPI's nonblocking allreduce copies an in-place buffer
 * into scratch it allocates at every call, so that every step of a large model faulted in fresh
 * pages for all its gradients (wide at 2 ranks: 40 % of the step in those copies and page faults,
 * docs/scaling.md); a persistent request allocates its scratch once. */
static int allreduce_init(float *p, int n, MPI_Comm comm, MPI_Request *req) {
#if MPI_VERSION >= 4
    return MPI_Allreduce_init(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm, MPI_INFO_NULL, req);
#elif defined(OMPI_HAVE_MPI_EXT_PCOLLREQ)
    return MPIX_Allreduce_init(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm, MPI_INFO_NULL, req);
#else
    (void)p, (void)n, (void)comm, (void)req;
    return MPI_ERR_UNSUPPORTED_OPERATION;
#endif
}

/* ---------------------------------------------------------------- one machine: shared memory
 *
 * When every rank runs on this machine, an allreduce through MPI is memory copies made by the
 * cores that also compute: OpenMPI's copies the bucket into its scratch, reads the peer's half
 * through the kernel, sums, and copies the result back (docs/scaling.md: ~20 % of wide's 2-rank
 * step). Here instead each rank's gradients live in an MPI shared-memory window, so the backward
 * writes them where every rank can read them, and a bucket is reduced in place: rank r sums slice
 * r of the bucket over all ranks (each rank's share of the batch as its scale, in rank order) and
 * writes the sum into every rank's copy. Per rank that is about half the bytes OpenMPI moves.
 *
 * Synchronisation is by counters in rank 0's segment that only grow: at step t (from 1), bucket k
 * is written by every rank when ready[k] reaches t * N, and reduced when done[k] does. A rank
 * reduces its slices in bucket order while the backward goes on (in the backward hook, whichever
 * buckets every rank has finished) and after it; it then waits for every done[k] before the
 * optimizer reads the sums. Slice r of any copy is touched only by rank r between the two, and
 * no rank writes the next step's gradients before every slice of this one is reduced, so nothing
 * else is needed. The same rank computes each sum in the same order every time: the weights stay
 * bit-identical on every rank and between runs. LOOM_DIST_NO_SHM=1 uses MPI's allreduce instead. */
typedef struct shm_reduce {
    MPI_Comm node;
    MPI_Win win;
    int rank, size;
    float **copy;            /* every rank's gradient copy, [size] */
    _Atomic uint64_t *ready; /* [n buckets], in rank 0's segment */
    _Atomic uint64_t *done;
    _Atomic uint64_t *scale; /* [size]: each rank's scale this step (float bits) */
    uint64_t step;
    int reduced;             /* buckets whose slice this rank has reduced this step */
    int signalled;           /* buckets this rank has written this step */
    float *own;              /* the model's own gradient buffer, put back at the end */
} shm_reduce;

#define SHM_ALIGN 4096

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* waiting for another rank: spinning would starve it where ranks outnumber the cores */
static void shm_wait(_Atomic uint64_t *c, uint64_t target) {
    while (atomic_load_explicit(c, memory_order_acquire) < target) sched_yield();
}

static void shm_free(loom_dist_grads *g) {
    shm_reduce *r = g->shm;
    if (!r) return;
    if (r->own) { /* the last reduced gradients stay the model's, as after MPI's allreduce */
        memcpy(r->own, g->m->grads, g->m->n_params * sizeof(float));
        g->m->grads = r->own;
    }
    if (r->win != MPI_WIN_NULL) MPI_Win_free(&r->win);
    if (r->node != MPI_COMM_NULL) MPI_Comm_free(&r->node);
    free(r->copy);
    free(r);
    g->shm = NULL;
}

/* The window, when every rank of the context is on this machine (else, or without memory, the
 * MPI path stays: a collective decision, the same on every rank). */
static void shm_make(loom_dist_grads *g) {
    loom_dist *d = g->d;
    if (!d || d->size < 2 || d->size > 64 || getenv("LOOM_DIST_NO_SHM")) return;
    MPI_Comm node = MPI_COMM_NULL;
    int node_size = 0;
    if (MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS)
        MPI_Comm_size(node, &node_size);
    shm_reduce *r = calloc(1, sizeof *r);
    float **copy = calloc((size_t)d->size, sizeof *copy);
    int ok = node_size == d->size && r && copy, all = 0; /* every rank answers, whatever failed */
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, d->comm);
    if (!all) {
        free(r), free(copy);
        if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
        return;
    }
    r->node = node;
    r->win = MPI_WIN_NULL;
    r->copy = copy;
    MPI_Comm_rank(node, &r->rank);
    MPI_Comm_size(node, &r->size);
    size_t ctrl = round_up((2 * (size_t)g->n + (size_t)r->size) * sizeof(uint64_t), SHM_ALIGN);
    size_t bytes = ctrl + round_up(g->m->n_params * sizeof(float), SHM_ALIGN);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base = NULL;
    int rc = bytes <= (size_t)INT64_MAX ? MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, node, &base, &r->win)
                                        : MPI_ERR_SIZE;
    MPI_Info_free(&info);
    ok = rc == MPI_SUCCESS;
    for (int j = 0; ok && j < r->size; j++) {
        MPI_Aint size;
        int unit;
        void *p;
        ok = MPI_Win_shared_query(r->win, j, &size, &unit, &p) == MPI_SUCCESS && (size_t)size >= bytes;
        if (ok) {
            copy[j] = (float *)((char *)p + ctrl);
            if (j == 0) {
                r->ready = p;
                r->done = r->ready + g->n;
                r->scale = r->done + g->n;
            }
        }
    }
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, d->comm);
    if (!all) {
        g->shm = r;
        shm_free(g);
        return;
    }
    /* this rank's copy starts as the model's buffer (zeros and the padding between tensors) */
    memcpy(copy[r->rank], g->m->grads, g->m->n_params * sizeof(float));
    if (r->rank == 0) {
        for (int k = 0; k < 2 * g->n; k++) atomic_init(&r->ready[k], 0);
        for (int j = 0; j < r->size; j++) atomic_init(&r->scale[j], 0);
    }
    MPI_Barrier(node); /* the counters are zero before anyone counts */
    r->own = g->m->grads;
    g->m->grads = copy[r->rank];
    g->shm = r;
}

/* slice `rank` of bucket k: sum over the ranks' copies, scaled, written into every copy */
static void shm_reduce_bucket(const loom_dist_grads *g, int k) {
    const shm_reduce *r = g->shm;
    size_t lo = g->b[k].lo, len = g->b[k].hi - lo, per = round_up((len + (size_t)r->size - 1) / (size_t)r->size, 16);
    size_t a = lo + (size_t)r->rank * per, b = a + per;
    if (a > lo + len) a = lo + len;
    if (b > lo + len) b = lo + len;
    float sc[64];
    int n = r->size < 64 ? r->size : 64;
    for (int j = 0; j < n; j++) {
        uint32_t bits = (uint32_t)atomic_load_explicit(&r->scale[j], memory_order_relaxed);
        memcpy(&sc[j], &bits, sizeof bits);
    }
    if (n == 2) { /* the common case, in one pass the compiler vectorises */
        float *restrict x = r->copy[0], *restrict y = r->copy[1];
        for (size_t i = a; i < b; i++) {
            float v = sc[0] * x[i] + sc[1] * y[i];
            x[i] = v, y[i] = v;
        }
        return;
    }
    for (size_t i = a; i < b; i++) {
        float v = sc[0] * r->copy[0][i];
        for (int j = 1; j < n; j++) v += sc[j] * r->copy[j][i];
        for (int j = 0; j < n; j++) r->copy[j][i] = v;
    }
}

/* reduce, in bucket order, every bucket all ranks have written (all of them when `wait`) */
static void shm_progress(loom_dist_grads *g, bool wait) {
    shm_reduce *r = g->shm;
    uint64_t target = r->step * (uint64_t)r->size;
    while (r->reduced < g->n) {
        _Atomic uint64_t *c = &r->ready[r->reduced];
        if (wait) shm_wait(c, target);
        else if (atomic_load_explicit(c, memory_order_acquire) < target) return;
        shm_reduce_bucket(g, r->reduced);
        atomic_fetch_add_explicit(&r->done[r->reduced], 1, memory_order_release);
        r->reduced++;
    }
}

static void shm_signal(loom_dist_grads *g, int upto) {
    shm_reduce *r = g->shm;
    for (; r->signalled < upto; r->signalled++)
        atomic_fetch_add_explicit(&r->ready[r->signalled], 1, memory_order_release);
}

/* persistent requests for every bucket, or none (then each step uses MPI_Iallreduce) */
static void make_persistent(loom_dist_grads *g) {
    if (!g->d || g->d->size < 2 || g->shm || getenv("LOOM_DIST_NO_PERSISTENT")) return;
    for (int k = 0; k < g->n; k++) {
        g->req[k] = MPI_REQUEST_NULL;
        if (allreduce_init(g->m->grads + g->b[k].lo, (int)(g->b[k].hi - g->b[k].lo), g->d->comm, &g->req[k]) !=
            MPI_SUCCESS) {
            for (int i = 0; i < k; i++) MPI_Request_free(&g->req[i]);
            return;
        }
    }
    g->persistent = true;
}
#endif


/* The earliest position in the order of a node whose layer owns tensor t: its gradient is final
 * once the backward has passed it. -1 (final only after the backward) when the regularisation
 * gradient, added after the loop, touches it. */
static int tensor_ready_pos(const loom_model *m, int t) {
    const loom_layer *L = m->tensors[t].layer;
    const loom_weight *w = &L->weights[m->tensors[t].index];
    if (w->reg.l1 != 0 || w->reg.l2 != 0) return -1;
    for (int i = 0; i < m->n_order; i++)
        if (m->order[i].node->layer == L) return i;
    return m->n_order; /* written by nobody: zeroed before the loop */
}

typedef struct by_offset {
    size_t offset;
    int t;
} by_offset;

static int cmp_offset(const void *a, const void *b) {
    size_t x = ((const by_offset *)a)->offset, y = ((const by_offset *)b)->offset;
    return (x > y) - (x < y);
}

loom_dist_grads *loom_dist_grads_new(loom_dist *d, loom_model *m, loom_error *err) {
    loom_dist_grads *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->d = d;
    g->m = m;
    g->b = calloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), sizeof *g->b);
#ifdef LOOM_HAVE_MPI
    g->req = calloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), sizeof *g->req);
    if (!g->req) goto oom;
#endif
    if (!g->b) goto oom;
    size_t cap = (d ? d->bucket_bytes : BUCKET_DEFAULT) / sizeof(float);
    /* Tensors from the last (in the flat buffer) to the first, which is the order the backward
     * finishes them; a bucket closes once it holds cap floats. Buckets tile [0, n_params), the
     * alignment padding between tensors (zero on every rank) included. */
    by_offset *sorted = malloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1) * sizeof *sorted);
    if (!sorted) goto oom;
    for (int t = 0; t < m->n_tensors; t++) sorted[t] = (by_offset){m->t_offset[t], t};
    qsort(sorted, (size_t)m->n_tensors, sizeof *sorted, cmp_offset);
    size_t top = m->n_params;
    int ready = m->n_order;
    for (int j = m->n_tensors - 1; j >= 0; j--) {
        int r = tensor_ready_pos(m, sorted[j].t);
        if (r < ready) ready = r;
        if (j == 0 || top - sorted[j].offset >= cap) {
            size_t lo = j == 0 ? 0 : sorted[j].offset;
            if (top - lo > (size_t)INT_MAX) {
                free(sorted);
                loom_dist_grads_free(g);
                loom_set_error(err, LOOM_ERR_DIST, "distributed fit: a weight tensor of %zu floats is larger than one "
                               "MPI message can be", top - lo);
                return NULL;
            }
            g->b[g->n++] = (bucket){lo, top, ready};
            top = lo;
            ready = m->n_order;
        }
    }
    free(sorted);
#ifdef LOOM_HAVE_MPI
    shm_make(g);
    make_persistent(g);
#endif
    return g;
oom:
    loom_dist_grads_free(g);
    loom_set_error(err, LOOM_ERR_MEMORY, "distributed fit: out of memory for the gradient buckets");
    return NULL;
}

void loom_dist_grads_free(loom_dist_grads *g) {
    if (!g) return;
    if (g->m && g->m->backward_hook_user == g) g->m->backward_hook = NULL, g->m->backward_hook_user = NULL;
    free(g->b);
#ifdef LOOM_HAVE_MPI
    shm_free(g);
    if (g->persistent) /* inactive: every step ends in MPI_Waitall */
        for (int k = 0; k < g->n; k++) MPI_Request_free(&g->req[k]);
    free(g->req);
#endif
    free(g);
}

static void start_bucket(loom_dist_grads *g, int k) {
#ifdef LOOM_HAVE_MPI
    if (g->shm) { /* the scale joins the sum */
        if (!g->status) shm_signal(g, k + 1);
        return;
    }
#endif
    float *p = g->m->grads + g->b[k].lo;
    size_t n = g->b[k].hi - g->b[k].lo;
    if (g->scale != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= g->scale;
#ifdef LOOM_HAVE_MPI
    if (g->persistent) { /* an unstarted persistent request is inactive: MPI_Waitall passes it */
        if (!g->status) {
            int rc = MPI_Start(&g->req[k]);
            if (rc != MPI_SUCCESS) g->status = mpi_fail(g->d, rc, "MPI_Start (allreduce)", &g->m->err);
        }
        return;
    }
    g->req[k] = MPI_REQUEST_NULL;
    if (g->d && g->d->size > 1 && !g->status) {
        int rc = MPI_Iallreduce(MPI_IN_PLACE, p, (int)n, MPI_FLOAT, MPI_SUM, g->d->comm, &g->req[k]);
        if (rc != MPI_SUCCESS) g->status = mpi_fail(g->d, rc, "MPI_Iallreduce", &g->m->err);
    }
#endif
}

static void on_backward(void *user, int pos) {
    loom_dist_grads *g = user;
    while (g->next < g->n && g->b[g->next].ready_pos >= pos) start_bucket(g, g->next++);
#ifdef LOOM_HAVE_MPI
    if (g->shm) {
        shm_progress(g, false);
        return;
    }
    /* let the started reductions progress while the backward goes on */
    if (g->next > 0 && g->d && g->d->size > 1) {
        int flag;
        MPI_Testall(g->next, g->req, &flag, MPI_STATUSES_IGNORE);
    }
#endif
}

void loom_dist_grads_begin(loom_dist_grads *g, float scale) {
    g->scale = scale;
    g->next = 0;
    g->status = LOOM_OK;
#ifdef LOOM_HAVE_MPI
    if (g->shm) {
        shm_reduce *r = g->shm;
        uint32_t bits;
        memcpy(&bits, &scale, sizeof bits);
        atomic_store_explicit(&r->scale[r->rank], bits, memory_order_relaxed); /* published by the ready counts */
        r->step++;
        r->reduced = r->signalled = 0;
    }
#endif
    g->m->backward_hook = on_backward;
    g->m->backward_hook_user = g;
}

loom_status loom_dist_grads_finish(loom_dist_grads *g) {
    g->m->backward_hook = NULL;
    g->m->backward_hook_user = NULL;
    while (g->next < g->n) start_bucket(g, g->next++);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
#ifdef LOOM_HAVE_MPI
    if (g->shm) { /* every rank counts every bucket, even after an error, so no rank waits forever */
        shm_signal(g, g->n);
        shm_progress(g, true);
        uint64_t target = g->shm->step * (uint64_t)g->shm->size;
        for (int k = 0; k < g->n; k++) shm_wait(&g->shm->done[k], target);
    } else if (g->d && g->d->size > 1 && g->n) {
        int rc = MPI_Waitall(g->n, g->req, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS && !g->status) g->status = mpi_fail(g->d, rc, "MPI_Waitall", &g->m->err);
    }
#endif
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (g->d) g->d->wait_s += waited, g->d->steps++;
    return g->status;
}
