/* dist.h — data-parallel training over MPI: the communicator, how a global batch is shared out,
 * the reductions of logs and flags, and the bucketed gradient allreduce (internal; the public
 * side is loom_dist_* in loom.h). Built without MPI, every call works for one rank only and
 * loom_dist_create says why it cannot make a context. */
#ifndef LOOM_DIST_H
#define LOOM_DIST_H

#include "core/model.h"

/* Rank `rank` of `size`'s part of a global batch of `global` samples whose full size is
 * size * per_rank: *offset within the global batch and *count (0 possible when global < size). */
void loom_dist_shard(int rank, int size, int per_rank, size_t global, size_t *offset, int *count);

/* Sums v[0..n) over the ranks, in place (blocking). */
loom_status loom_dist_sum(loom_dist *d, double *v, int n, loom_error *err);
/* Sums the floats v[0..n) over the ranks, in place (blocking; every rank gets the same bits, as
 * the gradient buckets do): the multi-task methods' per-loss gradients. */
loom_status loom_dist_sum_floats(loom_dist *d, float *v, size_t n, loom_error *err);
/* Maximum of v[0..n) over the ranks, in place (blocking). */
loom_status loom_dist_max(loom_dist *d, double *v, int n, loom_error *err);
/* Rank 0's n floats at p to every rank (blocking). */
loom_status loom_dist_bcast(loom_dist *d, float *p, size_t n, loom_error *err);
/* Logical or of flags[0..n) over the ranks, in place (blocking). */
loom_status loom_dist_or(loom_dist *d, bool *flags, int n, loom_error *err);

/* The gradient reducer of one fit: buckets of m->grads laid out once (allocation here, never in
 * a step). Per step: begin (installs the backward hook), the backward, finish (starts what the
 * hook has not started and waits for every bucket). */
typedef struct loom_dist_grads loom_dist_grads;
loom_dist_grads *loom_dist_grads_new(loom_dist *d, loom_model *m, loom_error *err);
void loom_dist_grads_free(loom_dist_grads *g);
/* Every rank scales its gradient by `scale` (its share of the global batch) before the sum. */
void loom_dist_grads_begin(loom_dist_grads *g, float scale);
/* Also counts the step and the time it waited in the context's stats (loom_dist_stats). */
loom_status loom_dist_grads_finish(loom_dist_grads *g);

#endif
