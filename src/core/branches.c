/* branches.c — finds the independent branches of a model's order and decides, by measuring,
 * whether running them at the same time beats running their ops one after another with every
 * thread each (core/branches.h).
 *
 * Why: a model of two small recurrent towers (the ticket model: a 128-unit LSTM over the title
 * and a 32-unit one over the body) gains nothing from a second thread inside its ops. A step's
 * products are a few microseconds and its gate work a few thousand values, below what pays for
 * waking a thread, 100 times per batch. The towers themselves are independent, so one thread can
 * run each. Which way is faster depends on the shapes and the machine, and both give the same
 * bits, so it is measured, not guessed: a region alternates between the two ways for its first
 * runs and then keeps the faster one. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include "core/branches.h"

#include "kernels/parallel.h"
#include "layers/layer_custom.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* runs of each way skipped (caches, first-touch pages, lazily started threads), then timed */
#define WARM_RUNS 2
#define TIMED_RUNS 6
/* concurrent must win by this much: the sequential way keeps every thread for the ops */
#define MARGIN 0.95
/* a call has at most 16 inputs (graph.c); with its layer's previous call site, 17 parts meet */
#define MAX_MEETING 17

static int find_root(int *parent, int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

/* A user's C layer may not be safe to call from two threads at once: its branch never runs beside
 * another. */
static bool is_custom(const loom_layer *L) {
    if (!L) return false;
    return L->op->forward == loom_op_custom.forward || is_custom(L->inner[0]) || is_custom(L->inner[1]);
}

static void region_release(loom_region *r) {
    free(r->part);
    free(r->part_nodes);
    free(r->lane);
}

/* Region [lo, p) with the parts given by their roots; false: out of memory. */
static bool add_region(loom_branches *b, int *cap, int lo, int p, const int *roots, int n_roots, int *parent,
                       const loom_model *m) {
    /* a region inside this one runs inside one of its parts: keep the outer one */
    while (b->n > 0 && b->r[b->n - 1].start >= lo) region_release(&b->r[--b->n]);
    if (b->n == *cap) {
        int c = *cap ? 2 * *cap : 4;
        loom_region *r = realloc(b->r, (size_t)c * sizeof *r);
        if (!r) return false;
        b->r = r, *cap = c;
    }
    loom_region *r = &b->r[b->n];
    memset(r, 0, sizeof *r);
    r->start = lo, r->end = p, r->n_parts = n_roots;
    r->part = malloc((size_t)(p - lo) * sizeof *r->part);
    r->part_nodes = calloc((size_t)n_roots, sizeof *r->part_nodes);
    r->lane = calloc((size_t)n_roots, sizeof *r->lane);
    if (!r->part || !r->part_nodes || !r->lane) {
        region_release(r);
        return false;
    }
    for (int q = lo; q < p; q++) {
        r->part[q - lo] = -1;
        if (m->order[q].is_input) continue;
        int root = find_root(parent, q);
        for (int k = 0; k < n_roots; k++)
            if (roots[k] == root) r->part[q - lo] = k, r->part_nodes[k]++;
    }
    for (int k = 0; k < 2; k++) r->timing[k].choice = -1;
    b->n++;
    return true;
}

/* Positions in order; each non-input node joins the parts of its inputs (graph inputs excepted:
 * reading one at the same time is safe and it takes no gradient) and of its layer's other call
 * sites. A node that joins two or more parts which fill the positions since the first of them
 * (inputs aside) ends a region there. */
bool loom_branches_find(loom_model *m) {
    int n = m->n_order, max_index = 0;
    for (int p = 0; p < n; p++)
        if (m->order[p].node->layer->index > max_index) max_index = m->order[p].node->layer->index;
    loom_branches *b = calloc(1, sizeof *b);
    int *parent = malloc((size_t)(n ? n : 1) * sizeof *parent), *count = calloc((size_t)n + 1, sizeof *count);
    int *first = malloc((size_t)(n ? n : 1) * sizeof *first), *work = calloc((size_t)n + 1, sizeof *work);
    int *custom = calloc((size_t)n + 1, sizeof *custom), *last_call = malloc(((size_t)max_index + 1) * sizeof *last_call);
    int *roots = malloc(MAX_MEETING * sizeof *roots);
    bool ok = b && parent && count && first && work && custom && last_call && roots;
    const char *env = getenv("LOOM_BRANCHES");
    if (b) b->force = env && env[0] == '0' && !env[1] ? 0 : env && env[0] == '1' && !env[1] ? 1 : -1;
    for (int i = 0; ok && i <= max_index; i++) last_call[i] = -1;
    int cap = 0;
    for (int p = 0; ok && p < n; p++) {
        const loom_step_node *sn = &m->order[p];
        work[p + 1] = work[p] + !sn->is_input; /* prefix counts */
        custom[p + 1] = custom[p] + (!sn->is_input && is_custom(sn->node->layer));
        if (sn->is_input) continue;
        parent[p] = p, count[p] = 1, first[p] = p;
        int n_roots = 0, idx = sn->node->layer->index;
        for (int j = 0; j <= sn->node->n_in && j < MAX_MEETING; j++) {
            int q = j < sn->node->n_in ? sn->in_pos[j] : last_call[idx];
            if (q < 0 || m->order[q].is_input) continue;
            int r = find_root(parent, q);
            bool seen = false;
            for (int k = 0; k < n_roots; k++) seen = seen || roots[k] == r;
            if (!seen) roots[n_roots++] = r;
        }
        last_call[idx] = p;
        if (n_roots >= 2) {
            int lo = p, total = 0;
            for (int k = 0; k < n_roots; k++) lo = first[roots[k]] < lo ? first[roots[k]] : lo, total += count[roots[k]];
            if (work[p] - work[lo] == total && custom[p] == custom[lo]) ok = add_region(b, &cap, lo, p, roots, n_roots, parent, m);
        }
        for (int k = 0; k < n_roots; k++) { /* p joins them */
            parent[roots[k]] = p;
            count[p] += count[roots[k]];
            if (first[roots[k]] < first[p]) first[p] = first[roots[k]];
        }
    }
    free(parent), free(count), free(first), free(work), free(custom), free(last_call), free(roots);
    if (ok) {
        b->region_at = malloc((size_t)(n ? n : 1) * sizeof *b->region_at);
        b->region_of = malloc((size_t)(n ? n : 1) * sizeof *b->region_of);
        ok = b->region_at && b->region_of;
    }
    if (!ok) {
        loom_branches_free(b);
        return false;
    }
    for (int p = 0; p < n; p++) b->region_at[p] = b->region_of[p] = -1;
    for (int k = 0; k < b->n; k++) {
        b->region_at[b->r[k].start] = k;
        for (int p = b->r[k].start; p < b->r[k].end; p++) b->region_of[p] = k;
    }
    loom_branches_free(m->branches);
    m->branches = b;
    return true;
}

void loom_branches_free(loom_branches *b) {
    if (!b) return;
    for (int k = 0; k < b->n; k++) region_release(&b->r[k]);
    free(b->r);
    free(b->region_at);
    free(b->region_of);
    free(b);
}

/* Parts to lanes, the next part to the lane with the fewest nodes so far (no allocation: it can
 * happen inside a step, when the thread count changed). */
static void assign_lanes(loom_region *r, int lanes) {
    int load[LOOM_MAX_LANES] = {0};
    for (int k = 0; k < r->n_parts; k++) {
        int best = 0;
        for (int l = 1; l < lanes; l++)
            if (load[l] < load[best]) best = l;
        r->lane[k] = best;
        load[best] += r->part_nodes[k];
    }
    r->lanes = lanes;
}

int loom_branches_lanes(loom_branches *b, loom_region *r, int dir, int max_lanes) {
    int threads = loom_parallel_num_threads();
    int lanes = threads < r->n_parts ? threads : r->n_parts;
    if (lanes > max_lanes) lanes = max_lanes;
    if (lanes > LOOM_MAX_LANES) lanes = LOOM_MAX_LANES;
    if (lanes < 2 || b->force == 0) return 0;
    if (r->lanes != lanes) assign_lanes(r, lanes);
    if (b->force == 1) return lanes;
    if (r->timing[dir].threads != threads) { /* measured again at a new thread count */
        memset(&r->timing[dir], 0, sizeof r->timing[dir]);
        r->timing[dir].threads = threads;
        r->timing[dir].choice = -1;
    }
    int choice = r->timing[dir].choice;
    if (choice < 0) choice = r->timing[dir].runs[0] > r->timing[dir].runs[1]; /* alternate */
    return choice ? lanes : 0;
}

void loom_branches_record(loom_region *r, int dir, int lanes, double seconds) {
    if (r->timing[dir].choice >= 0) return;
    int way = lanes > 0;
    if (++r->timing[dir].runs[way] > WARM_RUNS) r->timing[dir].seconds[way] += seconds;
    if (r->timing[dir].runs[0] >= WARM_RUNS + TIMED_RUNS && r->timing[dir].runs[1] >= WARM_RUNS + TIMED_RUNS)
        r->timing[dir].choice = r->timing[dir].seconds[1] < MARGIN * r->timing[dir].seconds[0];
}

double loom_branches_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
