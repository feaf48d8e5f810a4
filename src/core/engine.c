/* engine.c — forward once, backward once in reverse, over the model's ordered nodes.
 *
 * Memory: one arena holds every node's value, gradient and scratch, and every output's target,
 * sample weights and loss gradient, planned for the largest batch; a step allocates nothing.
 * Backward always accumulates: a tensor read twice (a fork, a shared layer) receives the sum.
 * Each loss seeds its output's gradient with its weight, so the per-output losses are by-products
 * of the one pass; nodes that reach no active loss are skipped. */
#include "core/branches.h"
#include "core/model.h"
#include "kernels/parallel.h"
#include "kernels/vector_clones.h"
#include "layers/layers.h"
#include "layers/rnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the next n floats of the arena, the one after starting on a cache line */
static float *take(float **p, size_t n) {
    float *r = *p;
    *p += loom_align_floats(n);
    return r;
}

/* Gradient buffers. Backward runs the order in reverse; a node's gradient is first written by its
 * last consumer in the order (an output's by the loss seeds, before the loop) and last read by the
 * node's own backward: it lives over positions [node, grad_from]. Gradients whose lifetimes do
 * not overlap share memory: placed largest first, each at the lowest offset that no gradient
 * living at the same time uses (greedy by size). A chain of layers then needs about two
 * gradients at a time instead of one per node. Inputs get none (their gradient is never asked)
 * unless they are outputs themselves. */
typedef struct span {
    size_t at, size;
} span;

static int by_offset(const void *a, const void *b) {
    size_t x = ((const span *)a)->at, y = ((const span *)b)->at;
    return (x > y) - (x < y);
}

/* spans holding (position, size): larger first, then the earlier position */
static int by_size_then_position(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return (x->at > y->at) - (x->at < y->at);
}

/* The placed lifetimes [lo, hi] of c (lifetime() below) by the positions they cover: a segment tree whose node
 * for a range holds the placed nodes whose lifetime covers that range whole (each lifetime sits
 * in O(log n) nodes), so the lifetimes alive at one position are found in O(log n + found). */
typedef struct lifetimes {
    int **v;
    int *n, *cap;
    int size; /* positions 0..size-1 */
} lifetimes;

static bool lifetimes_add(lifetimes *t, int node, int lo, int hi, int a, int b, int c) {
    if (b < lo || hi < a) return true;
    if (a <= lo && hi <= b) {
        if (t->n[node] == t->cap[node]) {
            int cap = t->cap[node] ? 2 * t->cap[node] : 4;
            int *p = realloc(t->v[node], (size_t)cap * sizeof *p);
            if (!p) return false;
            t->v[node] = p, t->cap[node] = cap;
        }
        t->v[node][t->n[node]++] = c;
        return true;
    }
    int mid = lo + (hi - lo) / 2;
    return lifetimes_add(t, 2 * node, lo, mid, a, b, c) && lifetimes_add(t, 2 * node + 1, mid + 1, hi, a, b, c);
}

/* The positions over which node i's gradient lives: [i, grad_from], widened to the whole region
 * when i lies in one whose parts may run at the same time (core/branches.h): their backwards then
 * run in any order, so a gradient of one part may not reuse the memory of another's. */
static void lifetime(const loom_model *m, int i, int *lo, int *hi) {
    *lo = i, *hi = m->order[i].grad_from;
    int k = m->branches ? m->branches->region_of[i] : -1;
    if (k < 0) return;
    const loom_region *r = &m->branches->r[k];
    *lo = r->start;
    if (*hi < r->end - 1) *hi = r->end - 1;
}

/* offset[i]: where node i's gradient starts in the gradient region, in floats (SIZE_MAX: none);
 * busy: room for n_order spans. Returns the region's size, or SIZE_MAX when out of memory.
 * O(n log n) plus, per gradient, the gradients alive with it (a chain: two). */
static size_t plan_gradients(loom_model *m, int batch, size_t *offset, span *busy) {
    int n = m->n_order;
    loom_step_node *order = m->order;
    for (int i = 0; i < n; i++) order[i].grad_from = -1, offset[i] = SIZE_MAX;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < order[j].node->n_in; k++) {
            loom_step_node *src = &order[order[j].in_pos[k]];
            if (!src->is_input && src->grad_from < j) src->grad_from = j;
        }
    for (int k = 0; k < m->n_outputs; k++) order[m->outputs[k].pos].grad_from = n; /* the seeds */

    /* largest first, the earliest on ties; born_at[p]: the gradients whose lifetime starts at p,
     * chained by next_born */
    span *by_size = malloc((size_t)(n ? n : 1) * sizeof *by_size);
    int *born_at = malloc(((size_t)n + 1) * sizeof *born_at), *next_born = malloc(((size_t)n + 1) * sizeof *next_born);
    lifetimes t = {calloc(4 * (size_t)n + 4, sizeof(int *)), calloc(4 * (size_t)n + 4, sizeof(int)),
                   calloc(4 * (size_t)n + 4, sizeof(int)), n + 1};
    size_t total = 0;
    int n_sized = 0;
    if (!by_size || !born_at || !next_born || !t.v || !t.n || !t.cap) total = SIZE_MAX;
    for (int p = 0; p <= n && total != SIZE_MAX; p++) born_at[p] = -1;
    for (int c = n - 1; c >= 0 && total != SIZE_MAX; c--)
        if (order[c].grad_from >= 0) {
            int lo, hi;
            lifetime(m, c, &lo, &hi);
            next_born[c] = born_at[lo], born_at[lo] = c;
            by_size[n_sized++] = (span){(size_t)c, loom_align_floats((size_t)batch * order[c].size)};
        }
    if (total != SIZE_MAX) qsort(by_size, (size_t)n_sized, sizeof *by_size, by_size_then_position);
    for (int s = 0; s < n_sized && total != SIZE_MAX; s++) {
        int i = (int)by_size[s].at, lo, hi;
        size_t size = by_size[s].size;
        lifetime(m, i, &lo, &hi);
        int n_busy = 0; /* the placed ones alive at the same time, by offset: the first gap that fits */
        for (int p = lo + 1; p <= hi && p < n; p++) /* born while i lives */
            for (int c = born_at[p]; c >= 0; c = next_born[c])
                if (offset[c] != SIZE_MAX) busy[n_busy++] = (span){offset[c], loom_align_floats((size_t)batch * order[c].size)};
        for (int node = 1, a = 0, b = t.size - 1;;) { /* alive when i is born */
            for (int k = 0; k < t.n[node]; k++) {
                int c = t.v[node][k];
                busy[n_busy++] = (span){offset[c], loom_align_floats((size_t)batch * order[c].size)};
            }
            if (a == b) break;
            int mid = a + (b - a) / 2;
            if (lo <= mid) node = 2 * node, b = mid;
            else node = 2 * node + 1, a = mid + 1;
        }
        qsort(busy, (size_t)n_busy, sizeof *busy, by_offset);
        size_t at = 0;
        for (int k = 0; k < n_busy && busy[k].at < at + size; k++)
            if (busy[k].at + busy[k].size > at) at = busy[k].at + busy[k].size;
        offset[i] = at;
        if (at + size > total) total = at + size;
        if (!lifetimes_add(&t, 1, 0, t.size - 1, lo, hi, i)) total = SIZE_MAX;
    }
    if (t.v)
        for (int k = 0; k < 4 * n + 4; k++) free(t.v[k]);
    free(t.v), free(t.n), free(t.cap), free(by_size), free(born_at), free(next_born);
    return total;
}

/* Plain SGD runs inside the backward only in the plain training step: not in a distributed fit
 * (the gradients are summed over the ranks before any step) nor under loss balancing, for which
 * train.c sets no_sgd_fusion before it plans. The dW
 * products are planned with the alpha the backward will pass, else every call misses its plan
 * (kernels/product.h) and runs on the default backend (wide at 2 ranks: oneDNN's dW products fell
 * back to OpenBLAS, 1.8x slower). */
static bool sgd_fused_steps(const loom_model *m) {
    return m->sgd_in_backward && !m->no_sgd_fusion;
}

/* The node's matrix products on their backends (kernels/product.h), made for this batch; the
 * workspace they need joins the shared one. false: out of memory. */
static bool plan_products(loom_model *m, loom_step_node *sn, const loom_shape *in, int batch, size_t *ws) {
    for (int k = 0; k < sn->n_products; k++) loom_product_release(&sn->products[k]);
    free(sn->products);
    sn->products = NULL;
    sn->n_products = 0;
    const loom_layer *L = sn->node->layer;
    if (!L->op->products) return true;
    loom_product_shape shapes[LOOM_OP_MAX_PRODUCTS];
    float dw_alpha = sn->sgd_update && sgd_fused_steps(m) ? -m->sgd_step_lr : 1.0f; /* the last step's rate */
    int n = L->op->products(L, sn->node->n_in, in, &sn->shape, batch, sn->bf16, dw_alpha, shapes);
    if (n <= 0) return true;
    if (!(sn->products = calloc((size_t)n, sizeof *sn->products))) return false;
    for (int k = 0; k < n; k++) {
        if (!loom_product_plan(&sn->products[k], &shapes[k])) return false;
        sn->n_products = k + 1;
        size_t w = loom_product_workspace(&sn->products[k]);
        if (w > *ws) *ws = w;
    }
    return true;
}

static bool input_variable(const loom_model *m, int i) { return loom_shape_is_variable(&m->order[m->input_pos[i]].node->out_shape); }

static bool steps_fit_plan(const loom_model *m) {
    for (int i = 0; m->variable && i < m->n_inputs; i++)
        if (input_variable(m, i) && (m->plan_steps[i] == 0 || m->max_steps[i] > m->plan_steps[i] ||
                                     m->want_steps[i] > m->plan_steps[i]))
            return false;
    return true;
}

static loom_status plan_shapes(loom_model *m, int batch);

/* With variable-length inputs the arena is planned at the planned steps (the longest reserved or
 * seen, at least the declared maximum; the current steps when nothing was), every size being
 * largest there, and the shapes are then set back to the current ones: a shorter batch uses the
 * front of each buffer. loom_engine_gather raises the planned steps for a longer batch. */
loom_status loom_engine_plan(loom_model *m, int batch) {
    for (int i = 0; i < m->n_order; i++) { /* stateful layers keep states for batch_size samples */
        const loom_layer *L = m->order[i].node->layer;
        int sb = loom_is_rnn_op(L->op) ? loom_rnn_stateful_batch(L) : 0;
        if (sb && batch > sb)
            return loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                                  "layer %s (%s) is stateful for batches of at most %d samples, got %d", L->name,
                                  L->op->class_name, sb, batch);
    }
    if (batch <= m->plan_batch && m->arena && steps_fit_plan(m) && m->plan_sgd_fused == sgd_fused_steps(m)) return LOOM_OK;
    if (batch < m->plan_batch) batch = m->plan_batch;
    if (!m->variable) return plan_shapes(m, batch);
    int cur[LOOM_MAX_PLAN_INPUTS], plan[LOOM_MAX_PLAN_INPUTS];
    if (m->n_inputs > LOOM_MAX_PLAN_INPUTS)
        return loom_set_error(&m->err, LOOM_ERR_COUNT, "a model with variable-length inputs takes at most %d inputs",
                              LOOM_MAX_PLAN_INPUTS);
    for (int i = 0; i < m->n_inputs; i++) {
        cur[i] = m->steps[i];
        plan[i] = m->plan_steps[i];
        if (!input_variable(m, i)) continue;
        if (m->want_steps[i] > plan[i]) plan[i] = m->want_steps[i];
        if (m->max_steps[i] > plan[i]) plan[i] = m->max_steps[i];
        if (plan[i] == 0) plan[i] = cur[i];
    }
    loom_status s = loom_engine_set_steps(m, plan);
    if (!s) s = plan_shapes(m, batch);
    if (!s) memcpy(m->plan_steps, plan, (size_t)m->n_inputs * sizeof *plan);
    loom_status back = loom_engine_set_steps(m, cur); /* known to build: it did before */
    return s ? s : back;
}

static loom_status plan_shapes(loom_model *m, int batch) {
    /* The kernels count a batch's rows and elements of one tensor in ints: at most 2^31 - 1
     * floats per tensor and batch (checked here, once per plan, not per step). */
    for (int i = 0; i < m->n_order; i++)
        if ((uint64_t)batch * m->order[i].size > (uint64_t)LOOM_MAX_ELEMENTS) {
            const loom_node *n = m->order[i].node;
            char a[96];
            return loom_set_error(&m->err, LOOM_ERR_MEMORY,
                                  "planning batch size %d: the output %s of layer %s (%s) would hold %llu floats, more "
                                  "than 2^31 - 1 per batch; use a smaller batch",
                                  batch, loom_shape_str(&m->order[i].shape, a, sizeof a), n->layer->name,
                                  n->layer->op->class_name, (unsigned long long)batch * m->order[i].size);
        }
    if (!m->branches && !loom_branches_find(m))
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory planning the model's branches");
    /* every region starts on a cache line (loom_align_floats) */
    size_t *grad_offset = malloc((size_t)m->n_order * sizeof *grad_offset);
    span *busy = malloc((size_t)m->n_order * sizeof *busy);
    if (!grad_offset || !busy) {
        free(grad_offset), free(busy);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory planning gradients");
    }
    const size_t grad_total = plan_gradients(m, batch, grad_offset, busy);
    free(busy);
    if (grad_total == SIZE_MAX) {
        free(grad_offset);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory planning gradients");
    }
    /* Every node's size is within the limits of base.h (loom_call checked it), so batch x size
     * cannot wrap; the sum of all regions is added with checks and held to the machine's memory. */
    size_t total = grad_total, biggest = 0;
    bool fits = true;
    int biggest_at = 0;
    size_t bf16_floats = 0; /* one workspace serves every bfloat16 node: they run one at a time */
    for (int i = 0; i < m->n_order; i++) {
        loom_step_node *sn = &m->order[i];
        loom_node *n = sn->node;
        loom_shape in[16];
        for (int j = 0; j < n->n_in; j++) in[j] = m->order[sn->in_pos[j]].shape;
        sn->scratch = n->layer->op->scratch_size
                          ? n->layer->op->scratch_size(n->layer, n->n_in, in, &sn->shape, batch)
                          : 0;
        size_t node = loom_align_floats((size_t)batch * sn->size), scr = sn->scratch;
        fits = fits && scr < SIZE_MAX / 2 && loom_size_add(node, loom_align_floats(scr), &node) &&
               loom_size_add(total, node, &total);
        if (node > biggest) biggest = node, biggest_at = i;
        if (sn->bf16) {
            size_t w = n->layer->op->bf16_workspace(n->layer, n->n_in, in, &sn->shape, batch);
            if (w > bf16_floats) bf16_floats = w;
        }
        if (!plan_products(m, sn, in, batch, &bf16_floats)) fits = false;
        /* Keras masks: made by an op, or kept from input 0 while the steps axis survives */
        const loom_op *op = n->layer->op;
        sn->makes_mask = op->mask_mode == LOOM_MASK_MAKE && n->out_shape.rank >= 2;
        if (sn->makes_mask) total += loom_align_floats((size_t)batch * (size_t)sn->shape.dims[0]);
    }
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        size_t b = (size_t)batch;
        fits = fits && loom_size_add(total, loom_align_floats(b * o->target_size) + loom_align_floats(b) +
                                                loom_align_floats(b * o->size) + 3 * loom_align_floats(b * o->rows_per_sample),
                                     &total);
    }
    if (!fits || total > loom_memory_limit() / sizeof(float)) {
        const loom_node *n = m->order[biggest_at].node;
        char a[96];
        free(grad_offset);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY,
                              "planning batch size %d needs %s%.3g GiB of activations, more than this machine's %.3g GiB; "
                              "the largest is layer %s (%s) with output %s and %.3g GiB",
                              batch, fits ? "" : "over ", fits ? (double)total * sizeof(float) / 1073741824.0 : 6.4e10,
                              (double)loom_memory_limit() / 1073741824.0, n->layer->name, n->layer->op->class_name,
                              loom_shape_str(&m->order[biggest_at].shape, a, sizeof a), (double)biggest * sizeof(float) / 1073741824.0);
    }
    /* one workspace per lane of concurrent branches (core/branches.h), for today's thread count */
    int lanes = loom_parallel_num_threads();
    if (lanes > LOOM_MAX_LANES) lanes = LOOM_MAX_LANES;
    if (!m->branches->n || lanes < 1) lanes = 1;
    bf16_floats = loom_align_floats(bf16_floats);
    if (bf16_floats > SIZE_MAX / sizeof(float) / LOOM_MAX_LANES) fits = false;
    float *arena = fits ? loom_floats_zeroed(total) : NULL;
    loom_floats_free(m->bf16_ws);
    m->bf16_ws = bf16_floats && fits ? loom_floats_zeroed(bf16_floats * (size_t)lanes) : NULL;
    m->bf16_ws_floats = m->bf16_ws ? bf16_floats : 0;
    m->ws_lanes = lanes;
    if (!arena || (bf16_floats && !m->bf16_ws)) {
        loom_floats_free(arena);
        free(grad_offset);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY,
                              "out of memory planning activations for batch size %d (%zu floats)", batch, total);
    }
    loom_floats_free(m->arena);
    m->arena = arena;
    m->plan_batch = batch;
    m->plan_sgd_fused = sgd_fused_steps(m);
    float *p = arena + grad_total;
    for (int i = 0; i < m->n_order; i++) {
        loom_step_node *sn = &m->order[i];
        loom_node *n = sn->node;
        sn->cap_size = sn->size;
        sn->cap_scratch = sn->scratch;
        sn->val = take(&p, (size_t)batch * sn->size);
        sn->grad = grad_offset[i] == SIZE_MAX ? NULL : arena + grad_offset[i];
        sn->scr = take(&p, sn->scratch);
        sn->mask = NULL;
        if (sn->makes_mask) {
            sn->mask = take(&p, (size_t)batch * (size_t)sn->shape.dims[0]);
        } else if (n->layer->op->mask_mode == LOOM_MASK_KEEP && n->n_in > 0) {
            const loom_step_node *src = &m->order[sn->in_pos[0]];
            const loom_shape *a = &src->shape, *b = &sn->shape; /* at the planned steps */
            if (src->mask && a->rank >= 2 && b->rank >= 2 && a->dims[0] == b->dims[0]) sn->mask = src->mask;
        }
    }
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        o->target = take(&p, (size_t)batch * o->target_size);
        o->sw = take(&p, (size_t)batch);
        o->lgrad = take(&p, (size_t)batch * o->size);
        o->values = take(&p, (size_t)batch * o->rows_per_sample);
        o->row_w = take(&p, (size_t)batch * o->rows_per_sample);
        o->metric_w = take(&p, (size_t)batch * o->rows_per_sample);
        /* Fused outputs read the logits: a Dense keeps them first in its scratch, an Activation
         * layer's input is the logits. */
        loom_step_node *sn = &m->order[o->pos];
        o->logits = NULL;
        if (o->fused)
            o->logits = sn->node->layer->op == &loom_op_dense ? sn->scr : m->order[sn->in_pos[0]].val;
        o->softmax = o->fused && sn->node->layer->activation == LOOM_SOFTMAX ? sn->val : NULL;
    }
    free(grad_offset);
    return LOOM_OK;
}

/* Rows are copied by a loop, not memcpy: a row is often a few dozen floats (a target is often one),
 * where the call costs more than the copy. Shuffled rows are scattered over the data set, so the
 * start of a row a few ahead is fetched while this one is copied. */
#define GATHER_AHEAD 8
/* sz floats of each sample, whose rows lie `stride` floats apart in src (a sequence padded past the
 * batch's steps: its first steps) */
LOOM_VECTOR_CLONES static void gather_rows(float *restrict dst, const float *restrict src, size_t sz, size_t stride,
                                           const size_t *idx, size_t first, int batch) {
    for (int b = 0; b < batch; b++) {
#if defined(__GNUC__)
        if (idx && b + GATHER_AHEAD < batch) {
            const char *ahead = (const char *)(src + idx[b + GATHER_AHEAD] * stride);
            __builtin_prefetch(ahead);
            if (sz > 16) __builtin_prefetch(ahead + 64);
        }
#endif
        const float *row = src + (idx ? idx[b] : first + (size_t)b) * stride;
        float *out = dst + (size_t)b * sz;
        for (size_t j = 0; j < sz; j++) out[j] = row[j];
    }
}

/* floats between two samples of input i in the bound array */
static size_t input_stride(const loom_model *m, const loom_bound_data *d, int i) {
    const loom_step_node *sn = &m->order[m->input_pos[i]];
    if (!d->x_steps || !d->x_steps[i] || !m->steps[i]) return sn->size;
    return sn->size / (size_t)m->steps[i] * (size_t)d->x_steps[i];
}

/* "title 7, body 19" */
static const char *steps_str(const loom_model *m, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < m->n_inputs && used < len; i++)
        if (loom_shape_is_variable(&m->order[m->input_pos[i]].node->out_shape))
            used += (size_t)snprintf(buf + used, len - used, "%s%s %d", used ? ", " : "",
                                     m->order[m->input_pos[i]].node->layer->name, m->steps[i]);
    return buf;
}

typedef struct gather_job {
    loom_model *m;
    const loom_bound_data *d;
    const size_t *idx;
    size_t first;
} gather_job;

/* samples [b0, b1) of every input and target: threads split the batch (copies, so any split gives
 * the same bytes) */
static void gather_range(size_t b0, size_t b1, void *p) {
    const gather_job *j = p;
    loom_model *m = j->m;
    const loom_bound_data *d = j->d;
    const size_t *idx = j->idx ? j->idx + b0 : NULL;
    size_t first = j->first + b0;
    int n = (int)(b1 - b0);
    for (int i = 0; i < m->n_inputs; i++) {
        loom_step_node *sn = &m->order[m->input_pos[i]];
        gather_rows(sn->val + b0 * sn->size, d->x[i], sn->size, input_stride(m, d, i), idx, first, n);
    }
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        if (!d->y || !d->y[k]) continue;
        size_t stride = d->y_per && d->y_per[k] ? d->y_per[k] : o->target_size;
        gather_rows(o->target + b0 * o->target_size, d->y[k], o->target_size, stride, idx, first, n);
        if (o->has_sw) gather_rows(o->sw + b0, d->sw[k], 1, 1, idx, first, n);
    }
}

/* The steps of samples idx[0..batch) (or first..) per input: the longest length, else the array's */
static void batch_steps(const loom_model *m, const loom_bound_data *d, const size_t *idx, size_t first, int batch,
                        int *steps) {
    for (int i = 0; i < m->n_inputs; i++) {
        steps[i] = d->x_steps ? d->x_steps[i] : 0;
        if (!steps[i] || !d->lengths || !d->lengths[i]) continue;
        int longest = 1;
        for (int b = 0; b < batch; b++) {
            int t = d->lengths[i][idx ? idx[b] : first + (size_t)b];
            if (t > longest) longest = t;
        }
        steps[i] = longest;
    }
}

void loom_engine_reserve_steps(loom_model *m, const loom_bound_data *d) {
    if (!m->variable) return;
    for (int i = 0; i < m->n_inputs; i++) {
        int t = d->x_steps[i];
        if (t && d->lengths[i]) { /* the longest sample, not the padding */
            t = 1;
            for (size_t j = 0; j < d->n; j++)
                if (d->lengths[i][j] > t) t = d->lengths[i][j];
        }
        if (t > m->want_steps[i]) m->want_steps[i] = t;
    }
}

/* Sizes only grow with the steps for every layer loom has, so a plan at the longest steps holds
 * every shorter batch; checked per batch all the same (no layer may write past its buffers). */
static loom_status check_fits_plan(loom_model *m, int batch) {
    for (int i = 0; i < m->n_order; i++) {
        loom_step_node *sn = &m->order[i];
        if (!sn->reshape) continue;
        const loom_node *n = sn->node;
        loom_shape in[16];
        for (int j = 0; j < n->n_in; j++) in[j] = m->order[sn->in_pos[j]].shape;
        size_t scr = n->layer->op->scratch_size ? n->layer->op->scratch_size(n->layer, n->n_in, in, &sn->shape, batch) : 0;
        if (sn->size > sn->cap_size || scr > sn->cap_scratch) {
            char a[96];
            return loom_set_error(&m->err, LOOM_ERR_SHAPE,
                                  "layer %s (%s) needs more memory at input steps %s than at the longer steps the arena "
                                  "was planned for; declare them with loom_model_set_max_steps",
                                  n->layer->name, n->layer->op->class_name, steps_str(m, a, sizeof a));
        }
    }
    return LOOM_OK;
}

loom_status loom_engine_gather(loom_model *m, const loom_bound_data *d, const size_t *idx, size_t first,
                               int batch) {
    if (m->variable) {
        int steps[LOOM_MAX_PLAN_INPUTS];
        if (m->n_inputs > LOOM_MAX_PLAN_INPUTS)
            return loom_set_error(&m->err, LOOM_ERR_COUNT, "a model with variable-length inputs takes at most %d inputs",
                                  LOOM_MAX_PLAN_INPUTS);
        batch_steps(m, d, idx, first, batch, steps);
        loom_status s = loom_engine_set_steps(m, steps);
        for (int i = 0; i < m->n_inputs; i++) /* longer than planned: the arena grows (the only allocation here) */
            if (input_variable(m, i) && steps[i] > m->want_steps[i]) m->want_steps[i] = steps[i];
        if (!s) s = loom_engine_plan(m, batch); /* a no-op unless these steps are the longest yet */
        if (s || (s = check_fits_plan(m, batch))) return s;
    }
    size_t per_sample = 0;
    for (int i = 0; i < m->n_inputs; i++) per_sample += m->order[m->input_pos[i]].size;
    for (int k = 0; k < m->n_outputs; k++) {
        m->outputs[k].has_sw = d->sw && d->sw[k];
        if (d->y && d->y[k]) per_sample += m->outputs[k].target_size + m->outputs[k].has_sw;
    }
    gather_job j = {m, d, idx, first};
    loom_parallel_for((size_t)batch, loom_parallel_min_units(per_sample), gather_range, &j);
    return LOOM_OK;
}

/* ---------------------------------------------------------------- variable time axes */

loom_status loom_engine_set_steps(loom_model *m, const int *steps) {
    if (!m->variable) return LOOM_OK;
    bool same = true; /* a node of size 0 was never built at these steps, or failed to */
    for (int p = 0; p < m->n_order && same; p++) same = !(m->order[p].reshape && m->order[p].size == 0);
    for (int i = 0; i < m->n_inputs && same; i++)
        same = !loom_shape_is_variable(&m->order[m->input_pos[i]].node->out_shape) || m->steps[i] == steps[i];
    if (same) return LOOM_OK;
    for (int i = 0; i < m->n_inputs; i++) {
        const loom_step_node *sn = &m->order[m->input_pos[i]];
        if (!loom_shape_is_variable(&sn->node->out_shape)) continue;
        loom_shape t = sn->node->out_shape;
        t.dims[0] = steps[i];
        size_t n;
        if (!loom_shape_size_checked(&t, &n))
            return loom_set_error(&m->err, LOOM_ERR_SHAPE, "input %s: %d steps is out of range", sn->node->layer->name,
                                  steps[i]);
    }
    for (int i = 0; i < m->n_inputs; i++) {
        loom_step_node *sn = &m->order[m->input_pos[i]];
        if (!loom_shape_is_variable(&sn->node->out_shape)) continue;
        sn->shape = sn->node->out_shape;
        sn->shape.dims[0] = steps[i];
        m->steps[i] = steps[i];
    }
    for (int p = 0; p < m->n_order; p++) {
        loom_step_node *sn = &m->order[p];
        if (!sn->reshape) continue;
        loom_layer *L = sn->node->layer;
        if (!sn->is_input) {
            loom_shape in[16], out;
            for (int j = 0; j < sn->node->n_in; j++) in[j] = m->order[sn->in_pos[j]].shape;
            int before = L->n_weights; /* a built layer declares none; kept as it was whatever happens */
            loom_error e = {0};
            loom_status s = L->op->build(L, sn->node->n_in, in, &out, &e);
            L->n_weights = before;
            char who[LOOM_NAME_MAX + 40];
            snprintf(who, sizeof who, "%s (%s)", L->name, L->op->class_name);
            if (!s) s = loom_shape_check(&out, who, "output shape", &e);
            if (s) {
                sn->size = 0; /* the next call builds again */
                char a[96];
                return loom_set_error(&m->err, s, "with input steps %s: %.400s", steps_str(m, a, sizeof a), e.msg);
            }
            sn->shape = out;
        }
        sn->size = loom_shape_size(&sn->shape);
    }
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        o->size = m->order[o->pos].size;
        o->rows_per_sample = o->size / (size_t)o->dim;
        o->target_size = o->loss.kind == LOSS_NONE ? o->size : o->rows_per_sample * (size_t)o->target_dim;
    }
    return LOOM_OK;
}

/* lane: which of the products' workspaces the node uses (concurrent branches: one per lane) */
static void fill_ctx(loom_model *m, int pos, int batch, bool training, loom_op_ctx *c, loom_shape *in_shapes, int lane) {
    loom_step_node *sn = &m->order[pos];
    loom_node *n = sn->node;
    loom_layer *L = n->layer;
    for (int j = 0; j < n->n_in; j++) {
        sn->in[j] = m->order[sn->in_pos[j]].val;
        in_shapes[j] = m->order[sn->in_pos[j]].shape;
    }
    memset(c, 0, sizeof *c);
    c->batch = batch;
    c->n_in = n->n_in;
    c->in = sn->in;
    c->din = sn->din;
    c->in_shape = in_shapes;
    c->out = sn->val;
    c->dout = sn->grad;
    c->out_shape = sn->shape;
    c->w = L->n_weights ? m->params + L->weights[0].offset : NULL;
    c->state = L->n_weights && !m->freeze_state ? m->params + L->weights[0].offset : NULL;
    c->scratch = sn->scr;
    float *ws = m->bf16_ws ? m->bf16_ws + (size_t)lane * m->bf16_ws_floats : NULL;
    c->bf16_ws = sn->bf16 ? ws : NULL;
    c->products = sn->products;
    c->n_products = sn->n_products;
    c->product_ws = ws;
    /* Keras 3: a frozen BatchNormalization runs in inference mode, in training too */
    c->training = training && !(sn->frozen && L->op == &loom_op_batch_normalization);
    /* keyed by the node's position in the model, which a saved and reloaded model keeps */
    c->rng_seed = m->g->seed ^ 0xD50F00DULL ^ (m->rng_salt * 0x9E3779B97F4A7C15ULL);
    c->rng_counter = (m->rng_step << 20) ^ (uint64_t)pos;
    c->in_mask = n->n_in > 0 ? m->order[sn->in_pos[0]].mask : NULL;
    c->sync_sum = m->sync_sum;
    c->sync_user = m->sync_user;
    c->sync_share = m->sync_share;
    for (int j = 0; j < n->n_in && j < LOOM_MASKED_INPUTS; j++) c->in_masks[j] = m->order[sn->in_pos[j]].mask;
}

static float regularization(const loom_model *m, float *dw) {
    double total = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const loom_weight *w = &m->tensors[t].layer->weights[m->tensors[t].index];
        if (w->reg.l1 == 0 && w->reg.l2 == 0) continue;
        const float *p = m->params + m->t_offset[t];
        float *g = dw && !m->t_frozen[t] ? dw + m->t_offset[t] : NULL; /* the penalty still counts */
        double s1 = 0, s2 = 0;
        for (size_t i = 0; i < m->t_size[t]; i++) {
            s1 += fabsf(p[i]);
            s2 += (double)p[i] * p[i];
            if (g) g[i] += w->reg.l1 * (float)((p[i] > 0) - (p[i] < 0)) + 2.0f * w->reg.l2 * p[i];
        }
        total += w->reg.l1 * s1 + w->reg.l2 * s2;
    }
    return (float)total;
}

float loom_engine_add_regularization(const loom_model *m, float *dw) {
    float r = regularization(m, dw);
    for (int t = 0; t < m->n_tensors; t++) {
        const loom_weight *w = &m->tensors[t].layer->weights[m->tensors[t].index];
        if ((w->reg.l1 != 0 || w->reg.l2 != 0) && !w->non_trainable && !m->t_frozen[t]) m->t_active[t] = true;
    }
    return r;
}

/* node i's forward; an input check that fails writes err (a lane's own when branches run at once) */
static loom_status forward_node(loom_model *m, int i, int batch, bool training, int lane, loom_error *err) {
    loom_step_node *sn = &m->order[i];
    if (sn->is_input) return LOOM_OK;
    loom_op_ctx c;
    loom_shape in_shapes[16];
    fill_ctx(m, i, batch, training, &c, in_shapes, lane);
    const loom_layer *L = sn->node->layer;
    if (L->op->check_input)
        for (int j = 0; j < c.n_in; j++) {
            loom_status s = L->op->check_input(L, j, c.in[j], (size_t)batch, &in_shapes[j], err);
            if (s) return s;
        }
    L->op->forward(L, &c);
    if (sn->makes_mask && !L->op->make_mask(L, &c, sn->mask))
        for (size_t j = 0, n = (size_t)batch * (size_t)sn->shape.dims[0]; j < n; j++) sn->mask[j] = 1.0f;
    return LOOM_OK;
}

static void backward_node(loom_model *m, int i, int batch, uint64_t mask, bool sgd, float *dw, int lane);

/* ---------------------------------------------------------------- concurrent branches */

/* One run of a region's parts on lanes (core/branches.h): lane l runs the nodes of its parts in
 * order (forward) or in reverse (backward), each op on that one thread. */
typedef struct lanes_job {
    loom_model *m;
    const loom_region *r;
    int batch;
    bool backward, training;
    uint64_t mask;
    bool sgd;
    float *dw;
    loom_status status[LOOM_MAX_LANES];
    int failed_at[LOOM_MAX_LANES];
    loom_error err[LOOM_MAX_LANES];
} lanes_job;

static bool on_lane(const loom_region *r, int i, int lane) {
    int part = r->part[i - r->start];
    return part >= 0 && r->lane[part] == lane;
}

static void run_lanes(size_t l0, size_t l1, void *p) {
    lanes_job *j = p;
    const loom_region *r = j->r;
    for (int l = (int)l0; l < (int)l1; l++) {
        if (j->backward) {
            for (int i = r->end - 1; i >= r->start; i--)
                if (on_lane(r, i, l)) backward_node(j->m, i, j->batch, j->mask, j->sgd, j->dw, l);
            continue;
        }
        for (int i = r->start; i < r->end && !j->status[l]; i++)
            if (on_lane(r, i, l)) {
                j->status[l] = forward_node(j->m, i, j->batch, j->training, l, &j->err[l]);
                j->failed_at[l] = i;
            }
    }
}

/* Region r, one way or the other as loom_branches_lanes says, timed for its choice. A
 * distributed fit's synchronised ops reduce over the ranks in node order: never concurrent. */
static loom_status run_region(loom_model *m, loom_region *r, lanes_job *j) {
    int dir = j->backward ? LOOM_BRANCH_BACKWARD : LOOM_BRANCH_FORWARD;
    int lanes = m->sync_sum ? 0 : loom_branches_lanes(m->branches, r, dir, m->ws_lanes);
    double t0 = loom_branches_now();
    loom_status s = LOOM_OK;
    if (lanes) {
        j->r = r;
        for (int l = 0; l < lanes; l++) j->status[l] = LOOM_OK;
        loom_parallel_for((size_t)lanes, 1, run_lanes, j);
        int first = -1; /* the error the order would have met first */
        for (int l = 0; l < lanes; l++)
            if (j->status[l] && (first < 0 || j->failed_at[l] < j->failed_at[first])) first = l;
        if (first >= 0) {
            m->err = j->err[first];
            return j->status[first];
        }
    } else if (j->backward) {
        for (int i = r->end - 1; i >= r->start; i--) backward_node(m, i, j->batch, j->mask, j->sgd, j->dw, 0);
    } else {
        for (int i = r->start; i < r->end && !s; i++) s = forward_node(m, i, j->batch, j->training, 0, &m->err);
    }
    if (!s) loom_branches_record(r, dir, lanes, loom_branches_now() - t0);
    return s;
}

/* the region that starts at position i going forward (ends there going backward), or NULL */
static loom_region *region_at(const loom_model *m, int i, bool backward) {
    const loom_branches *b = m->branches;
    if (!b || !b->n) return NULL;
    int k = b->region_of[i];
    if (k < 0 || (backward ? b->r[k].end - 1 : b->r[k].start) != i) return NULL;
    return &b->r[k];
}

/* ---------------------------------------------------------------- forward and backward */

loom_status loom_engine_forward(loom_model *m, int batch, bool training, bool losses,
                                uint64_t grad_mask, float *reg) {
    lanes_job j = {.m = m, .batch = batch, .training = training};
    for (int i = 0; i < m->n_order;) {
        loom_region *r = region_at(m, i, false);
        loom_status s = r ? run_region(m, r, &j) : forward_node(m, i, batch, training, 0, &m->err);
        if (s) return s;
        i = r ? r->end : i + 1;
    }
    for (int k = 0; k < m->n_outputs && losses; k++) {
        loom_output *o = &m->outputs[k];
        if (o->loss.kind == LOSS_NONE) {
            o->loss_value = NAN;
            continue;
        }
        const float *pred = o->fused ? o->logits : m->order[o->pos].val;
        size_t rows = (size_t)batch * o->rows_per_sample, rps = o->rows_per_sample;
        const float *sw = o->has_sw ? o->sw : NULL;
        const float *mask = m->order[o->pos].mask;
        bool class_w = m->class_weights_on && o->class_w;
        if (mask && rps == (size_t)m->order[o->pos].shape.dims[0]) {
            /* Keras: masked entries weigh 0, valid ones rows/valid, times the sample weight (and
             * the class weight: fit turns class_weight into sample weights) */
            double valid = 0;
            for (size_t r = 0; r < rows; r++) valid += mask[r];
            o->mask_valid = valid;
            float scale = valid > 0 ? (float)((double)rows / valid) : 0.0f;
            for (size_t r = 0; r < rows; r++)
                o->row_w[r] = mask[r] * scale * (sw ? sw[r / rps] : 1.0f) *
                              (class_w ? loom_class_weight_of(o, o->target + r * (size_t)o->target_dim) : 1.0f);
            sw = o->row_w;
            rps = 1;
        } else if (class_w) {
            for (size_t r = 0; r < rows; r++)
                o->row_w[r] = (sw ? sw[r / rps] : 1.0f) * loom_class_weight_of(o, o->target + r * (size_t)o->target_dim);
            sw = o->row_w;
            rps = 1;
        }
        loom_status s = loom_loss_compute(&o->loss, o->target, pred, o->softmax, rows, o->dim, rps, sw, o->fused, o->values,
                                          (grad_mask >> k & 1) ? o->lgrad : NULL, &o->loss_value, &m->err);
        if (s) {
            /* prefix the output's name to the loss's own message */
            char msg[LOOM_ERR_MAX];
            snprintf(msg, sizeof msg, "output %s (%s): %.360s", o->name, o->loss.name, m->err.msg);
            return loom_set_error(&m->err, s, "%s", msg);
        }
    }
    if (reg) *reg = regularization(m, NULL);
    return LOOM_OK;
}

void loom_engine_sync_idle(loom_model *m, bool backward, uint64_t mask) {
    if (!m->sync_sum) return;
    loom_op_ctx c;
    loom_shape in_shapes[16];
    /* the nodes in the order (and with the conditions) their forward or backward runs */
    for (int k = 0; k < m->n_order; k++) {
        int i = backward ? m->n_order - 1 - k : k;
        loom_step_node *sn = &m->order[i];
        const loom_layer *L = sn->node->layer;
        if (sn->is_input || !L->op->sync_idle) continue;
        if (backward && !((sn->reach & mask) && sn->needs_grad)) continue;
        fill_ctx(m, i, 0, true, &c, in_shapes, 0);
        L->op->sync_idle(L, &c, backward);
    }
}

uint64_t loom_engine_active_mask(const loom_model *m) {
    uint64_t mask = 0;
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].loss.kind != LOSS_NONE && m->outputs[k].weight != 0.0f) mask |= 1ULL << k;
    return mask;
}

static void zero_grad(loom_step_node *sn, int batch) {
    memset(sn->grad, 0, (size_t)batch * sn->size * sizeof(float));
}

/* node i's backward (nothing when it reaches no loss in mask or has no trainable weight behind it) */
static void backward_node(loom_model *m, int i, int batch, uint64_t mask, bool sgd, float *dw, int lane) {
    loom_step_node *sn = &m->order[i];
    /* A gradient whose lifetime starts here is zeroed first, unless this node is a Dense layer
     * (one input), whose product then overwrites it instead of adding to it. */
    bool runs = !sn->is_input && (sn->reach & mask) && sn->needs_grad, overwrite = false;
    for (int j = 0; j < sn->node->n_in; j++)
        if (m->order[sn->in_pos[j]].grad_from == i && m->order[sn->in_pos[j]].needs_grad) { /* else unread */
            if (runs && sn->node->layer->op == &loom_op_dense)
                overwrite = true;
            else
                zero_grad(&m->order[sn->in_pos[j]], batch);
        }
    if (!runs) return;
    loom_node *n = sn->node;
    loom_layer *L = n->layer;
    loom_op_ctx c;
    loom_shape in_shapes[16];
    fill_ctx(m, i, batch, true, &c, in_shapes, lane);
    c.din_overwrite = overwrite;
    for (int j = 0; j < n->n_in; j++) {
        loom_step_node *src = &m->order[sn->in_pos[j]];
        sn->din[j] = src->is_input || !src->needs_grad ? NULL : src->grad; /* frozen up to there */
    }
    c.dw = L->n_weights && !sn->frozen ? dw + L->weights[0].offset : NULL;
    c.dw_overwrite = sn->dw_sole;
    if (sgd && sn->sgd_update) { /* the optimizer leaves its tensors alone: not marked active */
        c.dw = NULL;
        c.sgd_w = m->params + L->weights[0].offset;
        c.sgd_lr = m->sgd_step_lr;
    }
    /* a fused output's seed is already dL/dz; only possible when nothing else reads it */
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].pos == i && m->outputs[k].fused && (mask >> k & 1)) c.dout_is_preact = true;
    L->op->backward(L, &c);
    for (int t = 0; t < m->n_tensors && c.dw; t++) /* the tensors of its layer alone: no other lane writes them */
        if (m->tensors[t].layer == L && !L->weights[m->tensors[t].index].non_trainable) m->t_active[t] = true;
}

void loom_engine_backward(loom_model *m, int batch, uint64_t mask, bool with_reg, const float *seed_weights,
                          float *dw) {
    const bool sgd = m->sgd_step && dw == m->grads;
    /* a weight gradient is zeroed unless its layer's backward runs and writes it whole (dw_sole),
     * or updates the weights instead (sgd_update) */
    for (int t = 0; t < m->n_tensors; t++) {
        int at = m->t_sole_pos[t];
        bool written = at >= 0 && (m->order[at].reach & mask);
        if (!written && !(sgd && m->t_sgd_update[t])) memset(dw + m->t_offset[t], 0, m->t_size[t] * sizeof *dw);
    }
    for (int t = 0; t < m->n_tensors; t++) m->t_active[t] = false;
    /* a gradient is zeroed where its lifetime starts (plan_gradients): the outputs' here, before
     * the seeds, every other one just before its last consumer's backward */
    for (int i = 0; i < m->n_order; i++)
        if (m->order[i].grad_from == m->n_order) zero_grad(&m->order[i], batch);
    for (int k = 0; k < m->n_outputs; k++) {
        if (!(mask >> k & 1) || m->outputs[k].loss.kind == LOSS_NONE) continue;
        loom_output *o = &m->outputs[k];
        float *g = m->order[o->pos].grad;
        size_t n = (size_t)batch * o->size;
        float w = seed_weights ? seed_weights[k] : o->weight;
        for (size_t i = 0; i < n; i++) g[i] += w * o->lgrad[i];
    }
    lanes_job j = {.m = m, .batch = batch, .backward = true, .mask = mask, .sgd = sgd, .dw = dw};
    for (int i = m->n_order - 1; i >= 0;) {
        loom_region *r = region_at(m, i, true);
        if (r) run_region(m, r, &j);
        else backward_node(m, i, batch, mask, sgd, dw, 0);
        for (int p = i; p >= (r ? r->start : i); p--) /* the hook: in order, after the region */
            if (m->backward_hook) m->backward_hook(m->backward_hook_user, p);
        i = r ? r->start - 1 : i - 1;
    }
    if (with_reg) {
        regularization(m, dw);
        for (int t = 0; t < m->n_tensors; t++) {
            const loom_weight *w = &m->tensors[t].layer->weights[m->tensors[t].index];
            if ((w->reg.l1 != 0 || w->reg.l2 != 0) && !w->non_trainable && !m->t_frozen[t]) m->t_active[t] = true;
        }
    }
}

/* ---------------------------------------------------------------- public: variable steps */

int loom_model_input_variable(const loom_model *m, int i) {
    return m && i >= 0 && i < m->n_inputs && input_variable(m, i);
}

loom_status loom_model_set_max_steps(loom_model *m, const char *input, int max_steps) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    int k = -1;
    if (input && (k = loom_model_input_index(m, input)) < 0) return LOOM_ERR_NAME;
    if (k >= 0 && !input_variable(m, k))
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "set_max_steps: input %s has no variable time axis", input);
    if (!m->variable) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "set_max_steps: the model has no variable input");
    for (int i = 0; i < m->n_inputs; i++) {
        if (!input_variable(m, i) || (k >= 0 && i != k)) continue;
        loom_shape t = m->order[m->input_pos[i]].node->out_shape;
        t.dims[0] = max_steps;
        size_t n;
        if (max_steps < 1 || !loom_shape_size_checked(&t, &n))
            return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "set_max_steps: %d steps for input %s is out of range", max_steps,
                                  m->order[m->input_pos[i]].node->layer->name);
    }
    for (int i = 0; i < m->n_inputs; i++)
        if (input_variable(m, i) && (k < 0 || i == k)) m->max_steps[i] = max_steps;
    return LOOM_OK;
}

size_t loom_model_output_size_at(loom_model *m, int k, const int *steps) {
    if (!m || k < 0 || k >= m->n_outputs || !steps) return 0;
    if (!m->variable) return m->outputs[k].size;
    int cur[LOOM_MAX_PLAN_INPUTS];
    if (m->n_inputs > LOOM_MAX_PLAN_INPUTS) return 0;
    memcpy(cur, m->steps, (size_t)m->n_inputs * sizeof *cur);
    size_t size = loom_engine_set_steps(m, steps) ? 0 : m->outputs[k].size;
    loom_error keep = m->err;
    loom_engine_set_steps(m, cur);
    m->err = keep;
    return size;
}
