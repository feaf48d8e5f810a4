/* op_harness.h — runs one loom_op by hand (no graph, no model) and checks its backward against
 * central differences. Reusable for any layer class, with or without weights.
 *
 *   loom_layer L = {0};  L.op = &loom_op_xxx;  (config fields: activation, rate, axis, ...)
 *   op_harness H;
 *   if (oph_init(&H, &L, n_in, shapes, batch, training, rng_key) == LOOM_OK) {
 *       ... optionally overwrite H.in[i][...] or H.w[...] (random by default) ...
 *       oph_grad_check(&H, "label", NULL);     // NULL: default step and tolerances
 *   }
 *   oph_free(&H);
 *
 * oph_init runs op->build (which may declare weights through loom_layer_add_weight: link the
 * file that defines it), sizes the weights from L->weights and the scratch from op->scratch_size.
 * The scalar checked is f = sum(r * y) for a fixed random upstream gradient r (H.dout), computed
 * in double. oph_grad_check also checks that
 *   - forward writes every output (outputs are NaN-filled before the call) and leaves inputs alone,
 *   - backward ACCUMULATES into din and dw (they are pre-filled with a known pattern, which must
 *     still be there under the gradient), leaves inputs and outputs alone, and skips a NULL din /
 *     NULL dw without changing the other gradients.
 * Failures go through check.h (CHECK) with a line on stderr naming the label and the element. */
#ifndef LOOM_OP_HARNESS_H
#define LOOM_OP_HARNESS_H

#include "check.h"
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPH_MAX_IN 16

typedef struct op_harness {
    loom_layer *L;
    int n_in;
    loom_shape in_shape[OPH_MAX_IN];
    loom_shape out_shape;
    size_t in_n[OPH_MAX_IN]; /* batch * per-sample size */
    size_t out_n;
    int batch;
    int training;
    uint64_t rng_key;
    bool dout_is_preact; /* passed to backward by oph_backward; oph_grad_check forces false */
    float *in[OPH_MAX_IN];
    float *din[OPH_MAX_IN];
    float *out;
    float *dout; /* r, random in [-1, 1) */
    float *dout_work; /* what backward gets: a fresh copy of r each call (an op may overwrite it) */
    float *w, *dw;
    size_t n_w;
    float *scratch;
    size_t n_scratch;
    const float *mask;                    /* input 0's Keras mask, or NULL */
    const float *in_masks[LOOM_MASKED_INPUTS]; /* inputs 1..'s masks (entry 0 unused: mask) */
    loom_error err; /* build's message */
} op_harness;

typedef struct oph_tol {
    double h;    /* step on each input / weight */
    double rtol; /* |a - n| <= atol + rtol * max(|a|, |n|) */
    double atol;
} oph_tol;

static inline oph_tol oph_default_tol(void) { return (oph_tol){1e-3, 1e-2, 1e-3}; }

/* Accumulation pattern pre-filled into din / dw: never a plausible gradient. */
static inline float oph_pattern(size_t i) { return 0.375f - 0.0625f * (float)(i % 9); }

static inline void oph_fill_uniform(float *p, size_t n, float lo, float hi, uint64_t key) {
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * loom_uniform01(key, i);
}

static inline void oph_free(op_harness *H) {
    for (int i = 0; i < OPH_MAX_IN; i++) {
        free(H->in[i]);
        free(H->din[i]);
    }
    free(H->out);
    free(H->dout);
    free(H->dout_work);
    free(H->w);
    free(H->dw);
    free(H->scratch);
    memset(H, 0, sizeof *H);
}

/* Builds the layer and allocates everything; inputs get U[-1, 1), weights U[-0.5, 0.5), dout
 * U[-1, 1). Returns build's status (message in H->err) or LOOM_ERR_MEMORY. */
static inline loom_status oph_init(op_harness *H, loom_layer *L, int n_in, const loom_shape *shapes,
                                   int batch, int training, uint64_t rng_key) {
    memset(H, 0, sizeof *H);
    H->L = L;
    H->n_in = n_in;
    H->batch = batch;
    H->training = training;
    H->rng_key = rng_key;
    if (n_in < 0 || n_in > OPH_MAX_IN)
        return loom_set_error(&H->err, LOOM_ERR_COUNT, "harness: %d inputs", n_in);
    for (int i = 0; i < n_in; i++) H->in_shape[i] = shapes[i];
    loom_status s = L->op->build(L, n_in, H->in_shape, &H->out_shape, &H->err);
    if (s != LOOM_OK) return s;
    L->built = true;
    L->built_n_in = n_in;
    for (int i = 0; i < n_in && i < 8; i++) L->built_in[i] = shapes[i];
    L->n_calls++;

    for (int k = 0; k < L->n_weights; k++) H->n_w += loom_shape_size(&L->weights[k].shape);
    if (L->op->scratch_size)
        H->n_scratch = L->op->scratch_size(L, n_in, H->in_shape, &H->out_shape, batch);
    H->out_n = (size_t)batch * loom_shape_size(&H->out_shape);

    bool ok = true;
    for (int i = 0; i < n_in; i++) {
        H->in_n[i] = (size_t)batch * loom_shape_size(&H->in_shape[i]);
        ok = ok && (H->in[i] = malloc(H->in_n[i] * sizeof(float) + 1)) &&
             (H->din[i] = malloc(H->in_n[i] * sizeof(float) + 1));
    }
    ok = ok && (H->out = malloc(H->out_n * sizeof(float) + 1)) &&
         (H->dout = malloc(H->out_n * sizeof(float) + 1)) &&
         (H->dout_work = malloc(H->out_n * sizeof(float) + 1)) &&
         (H->w = malloc(H->n_w * sizeof(float) + 1)) &&
         (H->dw = malloc(H->n_w * sizeof(float) + 1)) &&
         (H->scratch = malloc(H->n_scratch * sizeof(float) + 1));
    if (!ok) return loom_set_error(&H->err, LOOM_ERR_MEMORY, "harness: out of memory");

    for (int i = 0; i < n_in; i++) oph_fill_uniform(H->in[i], H->in_n[i], -1.0f, 1.0f, 1000 + i);
    oph_fill_uniform(H->w, H->n_w, -0.5f, 0.5f, 2000);
    oph_fill_uniform(H->dout, H->out_n, -1.0f, 1.0f, 3000);
    for (size_t i = 0; i < H->n_scratch; i++) H->scratch[i] = NAN; /* must be written before read */
    return LOOM_OK;
}

static inline loom_op_ctx oph_ctx(const op_harness *H, float *const *din, float *dw) {
    loom_op_ctx c = {0};
    c.batch = H->batch;
    c.n_in = H->n_in;
    c.in = (const float *const *)H->in;
    c.din = din;
    c.in_shape = H->in_shape;
    c.out = H->out;
    memcpy(H->dout_work, H->dout, H->out_n * sizeof(float));
    c.dout = H->dout_work;
    c.out_shape = H->out_shape;
    c.w = H->w;
    c.dw = dw;
    c.scratch = H->scratch;
    c.training = H->training;
    c.rng_seed = H->rng_key; /* the op keys its draws with loom_hash64(seed, counter) */
    c.rng_counter = 0;
    c.dout_is_preact = H->dout_is_preact;
    c.in_mask = H->mask;
    c.in_masks[0] = H->mask;
    for (int i = 1; i < LOOM_MASKED_INPUTS && i < H->n_in; i++) c.in_masks[i] = H->in_masks[i];
    return c;
}

/* Outputs are NaN-filled first, so an output the op forgets to write shows up. */
static inline void oph_forward(op_harness *H) {
    for (size_t i = 0; i < H->out_n; i++) H->out[i] = NAN;
    loom_op_ctx c = oph_ctx(H, H->din, NULL);
    H->L->op->forward(H->L, &c);
}

/* Calls backward on H->din / H->dw as they are (the caller chooses zero or a pattern). */
static inline void oph_backward(op_harness *H) {
    loom_op_ctx c = oph_ctx(H, H->din, H->n_w ? H->dw : NULL);
    H->L->op->backward(H->L, &c);
}

static inline double oph_objective(const op_harness *H) {
    double f = 0.0;
    for (size_t i = 0; i < H->out_n; i++) f += (double)H->dout[i] * H->out[i];
    return f;
}

/* d f / d p[j] by central differences; the step actually taken in float is the denominator. */
static inline double oph_numeric(op_harness *H, float *p, size_t j, double h) {
    float v = p[j];
    float vp = (float)(v + h), vm = (float)(v - h);
    p[j] = vp;
    oph_forward(H);
    double fp = oph_objective(H);
    p[j] = vm;
    oph_forward(H);
    double fm = oph_objective(H);
    p[j] = v;
    return (fp - fm) / ((double)vp - (double)vm);
}

static inline int oph_compare(const char *label, const char *what, int k, size_t j, double a,
                              double n, const oph_tol *t, int shown) {
    bool good = fabs(a - n) <= t->atol + t->rtol * fmax(fabs(a), fabs(n));
    if (!good && shown < 5)
        fprintf(stderr, "  %s: %s[%d][%zu] analytic %.7g, numeric %.7g\n", label, what, k, j, a, n);
    return good ? 0 : 1;
}

static inline bool oph_same(const float *a, const float *b, size_t n) {
    return n == 0 || memcmp(a, b, n * sizeof *a) == 0;
}

/* The full check described at the top. Returns the number of mismatching elements. */
static inline int oph_grad_check(op_harness *H, const char *label, const oph_tol *tol) {
    oph_tol t = tol ? *tol : oph_default_tol();
    H->dout_is_preact = false;
    int bad = 0;

    float *in_copy[OPH_MAX_IN] = {0}, *grad[OPH_MAX_IN] = {0};
    for (int i = 0; i < H->n_in; i++) {
        in_copy[i] = malloc(H->in_n[i] * sizeof(float) + 1);
        grad[i] = malloc(H->in_n[i] * sizeof(float) + 1);
        if (in_copy[i]) memcpy(in_copy[i], H->in[i], H->in_n[i] * sizeof(float));
    }
    float *gw = malloc(H->n_w * sizeof(float) + 1);
    float *out_copy = malloc(H->out_n * sizeof(float) + 1);

    /* forward writes every output and no input */
    oph_forward(H);
    size_t not_finite = 0;
    for (size_t j = 0; j < H->out_n; j++) not_finite += !isfinite(H->out[j]);
    if (not_finite) fprintf(stderr, "  %s: %zu outputs not written or not finite\n", label, not_finite);
    CHECK(not_finite == 0);
    for (int i = 0; i < H->n_in; i++) CHECK(oph_same(in_copy[i], H->in[i], H->in_n[i]));
    memcpy(out_copy, H->out, H->out_n * sizeof(float));

    /* backward accumulates onto a pattern */
    for (int i = 0; i < H->n_in; i++)
        for (size_t j = 0; j < H->in_n[i]; j++) H->din[i][j] = oph_pattern(j);
    for (size_t j = 0; j < H->n_w; j++) H->dw[j] = oph_pattern(j + 5);
    oph_backward(H);
    for (int i = 0; i < H->n_in; i++)
        for (size_t j = 0; j < H->in_n[i]; j++) grad[i][j] = H->din[i][j] - oph_pattern(j);
    for (size_t j = 0; j < H->n_w; j++) gw[j] = H->dw[j] - oph_pattern(j + 5);
    for (int i = 0; i < H->n_in; i++) CHECK(oph_same(in_copy[i], H->in[i], H->in_n[i]));
    CHECK(oph_same(out_copy, H->out, H->out_n));

    /* a NULL din[0] and a NULL dw are skipped, the other gradients are unchanged */
    if (H->n_in > 0) {
        float *keep0 = H->din[0];
        for (int i = 1; i < H->n_in; i++)
            for (size_t j = 0; j < H->in_n[i]; j++) H->din[i][j] = oph_pattern(j);
        H->din[0] = NULL;
        loom_op_ctx c = oph_ctx(H, H->din, NULL);
        H->L->op->backward(H->L, &c);
        H->din[0] = keep0;
        int differ = 0;
        for (int i = 1; i < H->n_in; i++)
            for (size_t j = 0; j < H->in_n[i]; j++)
                differ += fabsf(H->din[i][j] - oph_pattern(j) - grad[i][j]) >
                          1e-6f * (1.0f + fabsf(grad[i][j]));
        if (differ) fprintf(stderr, "  %s: %d gradients change when din[0] is NULL\n", label, differ);
        CHECK(differ == 0);
    }

    /* central differences */
    int shown = 0;
    for (int i = 0; i < H->n_in; i++)
        for (size_t j = 0; j < H->in_n[i]; j++) {
            double n = oph_numeric(H, H->in[i], j, t.h);
            int b = oph_compare(label, "din", i, j, grad[i][j], n, &t, shown);
            bad += b;
            shown += b;
        }
    for (size_t j = 0; j < H->n_w; j++) {
        double n = oph_numeric(H, H->w, j, t.h);
        int b = oph_compare(label, "dw", 0, j, gw[j], n, &t, shown);
        bad += b;
        shown += b;
    }
    if (bad) fprintf(stderr, "  %s: %d gradient mismatches\n", label, bad);
    CHECK(bad == 0);

    /* leave H as after a plain forward + backward from zero */
    oph_forward(H);
    for (int i = 0; i < H->n_in; i++) memcpy(H->din[i], grad[i], H->in_n[i] * sizeof(float));
    if (H->n_w) memcpy(H->dw, gw, H->n_w * sizeof(float));

    for (int i = 0; i < H->n_in; i++) {
        free(in_copy[i]);
        free(grad[i]);
    }
    free(gw);
    free(out_copy);
    return bad;
}

#endif
