/* layer_rnn.c — SimpleRNN, LSTM and GRU with Keras 3's formulas, weights and masks.
 *
 * Input (steps, features) per sample. Weights, as Keras declares them (G gates):
 *   kernel (features, G*units), rec_kernel (units, G*units) [Keras: recurrent_kernel, too long
 *   for loom_weight.name], bias (G*units), or (2, 3*units) for GRU with reset_after (row 0 the
 *   input bias, row 1 the recurrent bias). Gate order: LSTM i, f, c, o; GRU z, r, h.
 *   SimpleRNN  h = act(x.W + b + h_prev.U)
 *   LSTM       i, f, o = ract(.), g = act(.), c = f*c_prev + i*g, h = o*act(c)
 *   GRU        z, r = ract(.), hh = act(x.W_h + b_h + r*(h_prev.U_h + b_rh))   (reset_after)
 *                              hh = act(x.W_h + b_h + (r*h_prev).U_h)          (reset_before)
 *              h = z*h_prev + (1-z)*hh
 * Initial states (Keras's initial_state): called with 1 + S inputs, (sequence, h0) or for LSTM
 * (sequence, h0, c0), each (units); without them the states start at 0. Their gradients are
 * dL/dh_0 and dL/dc_0.
 * go_backwards processes the steps last to first and, with return_sequences, returns the outputs
 * in that processed order (Keras). Masks: a padded step leaves the state (h, and c) unchanged and
 * outputs the carried h, or 0 with zero_output_for_mask (Bidirectional with return_sequences).
 *
 * Memory (scratch, planned for the batch): the input projection of every step at once (one
 * gemm over batch*steps rows), and per processed step s (row block [s][batch]) the gate
 * pre-activations z and activations a, the states h[0..T] and c[0..T], act(c) (LSTM) and the
 * recurrent candidate term (GRU). Backward runs through time from those; it reuses the input
 * projection buffer for the gate gradients on the input side (forward alone reads it), so the
 * weight and input gradients are again single gemms over all steps.
 * Under mixed_bfloat16 every product (input side, recurrent, and their gradients) takes bfloat16
 * inputs with float32 sums (loom_layer_product); the gates, states and their gradients stay
 * float32 (Keras computes them in bfloat16 too; float32 there costs little and loses nothing). */
#include "layers/rnn.h"
#include "ops/activations.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/parallel.h"
#include "layers/layers.h"
#include "ops/init.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_SIMPLE = 0, KIND_LSTM, KIND_GRU };

static int rnn_kind(const loom_layer *L) {
    return L->op == &loom_op_lstm ? KIND_LSTM : L->op == &loom_op_gru ? KIND_GRU : KIND_SIMPLE;
}
static int rnn_gates(const loom_layer *L) {
    int k = rnn_kind(L);
    return k == KIND_LSTM ? 4 : k == KIND_GRU ? 3 : 1;
}

bool loom_is_rnn_op(const loom_op *op) {
    return op == &loom_op_simple_rnn || op == &loom_op_lstm || op == &loom_op_gru;
}

/* ---------------------------------------------------------------- build */

/* How many initial states the layer takes (h, and c for LSTM). */
static int rnn_states(const loom_layer *L) { return rnn_kind(L) == KIND_LSTM ? 2 : 1; }
int loom_rnn_state_count(const loom_layer *L) { return rnn_states(L); }

/* Rows of one sample's output: the steps (or 1), then the final states with return_state. */
static int out_rows(const loom_layer *L, int T) {
    return (L->iarg[RNN_SEQ] ? T : 1) + (L->iarg[RNN_STATE] ? rnn_states(L) : 0);
}

static loom_status rnn_build_impl(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    const loom_shape *x = &in[0];
    if (x->rank != 2) {
        char a[64];
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (%s): expects inputs of shape (steps, features), got %s", L->name,
                              L->op->class_name, loom_shape_str(x, a, sizeof a));
    }
    int T = x->dims[0], F = x->dims[1], U = L->units, G = rnn_gates(L);
    if (n_in != 1 && n_in != 1 + rnn_states(L))
        return loom_set_error(err, LOOM_ERR_GRAPH, "%s (%s): takes a sequence and optionally %d initial state(s), got %d inputs",
                              L->name, L->op->class_name, rnn_states(L), n_in);
    for (int i = 1; i < n_in; i++)
        if (in[i].rank != 1 || in[i].dims[0] != U) {
            char a[64];
            return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): initial state %d must have shape (%d), got %s", L->name,
                                  L->op->class_name, i - 1, U, loom_shape_str(&in[i], a, sizeof a));
        }
    if (L->iarg[RNN_SEQ] || L->iarg[RNN_STATE]) {
        out->rank = 2;
        out->dims[0] = out_rows(L, T);
        out->dims[1] = U;
    } else {
        out->rank = 1;
        out->dims[0] = U;
    }
    if (!L->built) {
        loom_regularizer none = {0, 0};
        loom_shape k = {2, {F, G * U}}, r = {2, {U, G * U}};
        loom_layer_add_weight(L, "kernel", &k, LOOM_INIT_GLOROT_UNIFORM, none);
        loom_layer_add_weight(L, "rec_kernel", &r, LOOM_INIT_ORTHOGONAL, none);
        if (L->iarg[RNN_BIAS]) {
            bool two = rnn_kind(L) == KIND_GRU && L->iarg[RNN_RESET];
            loom_shape b = two ? (loom_shape){2, {2, G * U}} : (loom_shape){1, {G * U}};
            loom_initializer bi = LOOM_INIT_ZEROS;
            /* zeros with ones on the forget gate's quarter */
            if (rnn_kind(L) == KIND_LSTM && L->iarg[RNN_UFB]) bi = LOOM_INIT_UNIT_FORGET_BIAS;
            loom_layer_add_weight(L, "bias", &b, bi, none);
        }
    }
    return LOOM_OK;
}

static loom_status rnn_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    if (L->iarg[RNN_OWNED])
        return loom_set_error(err, LOOM_ERR_GRAPH,
                              "%s (%s): this layer belongs to a wrapper (Bidirectional, TimeDistributed) "
                              "and cannot be called by itself",
                              L->name, L->op->class_name);
    return rnn_build_impl(L, n_in, in, out, err);
}

loom_status loom_wrapped_build(loom_layer *inner, int n_in, const loom_shape *in, loom_shape *out,
                               loom_error *err) {
    if (loom_is_rnn_op(inner->op)) return rnn_build_impl(inner, n_in, in, out, err);
    return inner->op->build(inner, n_in, in, out, err);
}

/* ---------------------------------------------------------------- scratch */

typedef struct rnn_buf {
    float *xp;  /* [b][t] rows of G*U: x.kernel + input bias; backward: dL/dz on the input side */
    float *z;   /* [s][b] rows of G*U: gate pre-activations */
    float *a;   /* [s][b] rows of G*U: gate activations */
    float *h;   /* [s][b] rows of U, s = 0..T (h[0] = 0) */
    float *c;   /* LSTM: cell states, as h */
    float *ac;  /* LSTM: [s][b] act(c_s+1) */
    float *rh;  /* GRU: [s][b] h_prev.U_h + b_rh (reset_after), or r*h_prev (reset_before) */
    float *rp;  /* [b] rows of G*U: recurrent product of one step */
    float *dzh; /* [s][b] rows of G*U: dL/d(recurrent product) */
    float *da;  /* [b] rows of G*U: dL/d(gate activations) of one step */
    float *dh, *dc, *dhp, *t1, *t2; /* [b] rows of U */
    float *rm;  /* recurrent_dropout: [b] rows of U, the mask (0 or 1/(1-rate)) of this batch */
    float *hm;  /* recurrent_dropout: [s][b] rows of U, h_prev * mask (what the recurrent products
                   read); NULL when not training, the products then read h */
} rnn_buf;

/* recurrent_dropout's rate (farg slot 0) */
static float rdrop_rate(const loom_layer *L) { return L->farg[0]; }

static size_t rnn_layout(const loom_layer *L, int B, int T, float *base, rnn_buf *p) {
    size_t U = (size_t)L->units, GU = (size_t)rnn_gates(L) * U, n = (size_t)T * B * GU;
    size_t bu = (size_t)B * U, hs = ((size_t)T + 1) * bu;
    int kind = rnn_kind(L);
    const bool rd = rdrop_rate(L) > 0.0f;
    size_t sizes[17] = {n, n, n, hs, kind == KIND_LSTM ? hs : 0, kind == KIND_LSTM ? (size_t)T * bu : 0,
                        kind == KIND_GRU ? (size_t)T * bu : 0, (size_t)B * GU, n, (size_t)B * GU,
                        bu, bu, bu, bu, bu, rd ? bu : 0, rd ? (size_t)T * bu : 0};
    float **slot[17] = {&p->xp, &p->z, &p->a, &p->h, &p->c, &p->ac, &p->rh, &p->rp, &p->dzh, &p->da,
                        &p->dh, &p->dc, &p->dhp, &p->t1, &p->t2, &p->rm, &p->hm};
    size_t total = 0;
    for (int i = 0; i < 17; i++) {
        if (p) *slot[i] = sizes[i] && base ? base + total : NULL;
        total += sizes[i];
    }
    return total;
}

static size_t rnn_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    (void)out;
    rnn_buf p;
    return rnn_layout(L, batch, in[0].dims[0], NULL, &p);
}

/* ---------------------------------------------------------------- forward */

static inline bool step_valid(const float *mask, int b, int T, int t) {
    return !mask || mask[(size_t)b * T + t] != 0.0f;
}

/* The per-sample work of one step (the gates, the state update and their gradients) is independent
 * between the samples of the batch, so it is split over the batch between loom's threads
 * (kernels/parallel.h); every row is computed by the same operations in any piece, so the bits do
 * not depend on the thread count. The products over the whole batch stay whole (their blocks
 * depend on their shape only). A step's share is worth a thread at a few rows: the gates are
 * transcendental maths, and the workers are hot between the steps of one layer. */
typedef struct rnn_step {
    const loom_layer *L;
    const loom_op_ctx *c;
    rnn_buf p;
    int B, T, U, GU, kind, s, t;
    int Ro;                 /* rows of one sample's output: steps (or 1), then the final states */
    bool seq, zero_out, reset_after;
    loom_activation act, ract;
    const float *hp;        /* h of the step before, [b] rows */
    const float *hr;        /* what the recurrent products read: hp, or hp * mask (recurrent_dropout) */
    float *hn, *zs, *as;    /* this step's h, gate pre-activations and activations */
    float *dzhs;            /* backward: this step's recurrent gradients */
} rnn_step;

static size_t rnn_rows_per_thread(int GU) {
    size_t per_row = (size_t)GU * 8; /* transcendental maths: ~8 floats of memory traffic each */
    size_t rows = (LOOM_PARALLEL_MIN_FLOATS / 8) / per_row;
    return rows ? rows : 1;
}

static void rnn_split(const rnn_step *j, void (*fn)(size_t, size_t, void *)) {
    loom_parallel_for((size_t)j->B, rnn_rows_per_thread(j->GU), fn, (void *)j);
}

/* a gate's activation on n values: Keras's defaults (sigmoid, tanh) vectorised (ops/activations.h) */
static void gate_act(loom_activation a, const float *x, float *y, int n) {
    if (a == LOOM_SIGMOID)
        loom_sigmoid_vec(x, y, (size_t)n);
    else if (a == LOOM_TANH)
        loom_tanh_vec(x, y, (size_t)n);
    else
        loom_act_forward(a, x, y, 1, n);
}

/* forward, rows [b0, b1): the gates of every kind (for GRU only z and r: the candidate needs the
 * reset gate's product over the whole batch first when reset_before) */
static void fwd_gates(size_t b0, size_t b1, void *ctx) {
    const rnn_step *j = ctx;
    const rnn_buf *p = &j->p;
    const int U = j->U, GU = j->GU, T = j->T, B = j->B, s = j->s, t = j->t;
    for (size_t b = b0; b < b1; b++) {
        const float *x = p->xp + ((size_t)b * T + t) * GU, *rp = p->rp + b * GU;
        float *z = j->zs + b * GU, *a = j->as + b * GU;
        float *hnb = j->hn + b * U;
        if (j->kind == KIND_SIMPLE) {
            for (int i = 0; i < U; i++) z[i] = x[i] + rp[i];
            gate_act(j->act, z, a, U);
            memcpy(hnb, a, (size_t)U * sizeof(float));
        } else if (j->kind == KIND_LSTM) {
            for (int i = 0; i < GU; i++) z[i] = x[i] + rp[i];
            gate_act(j->ract, z, a, 2 * U);              /* i, f */
            gate_act(j->act, z + 2 * U, a + 2 * U, U);   /* c candidate */
            gate_act(j->ract, z + 3 * U, a + 3 * U, U);  /* o */
            const float *cp = p->c + (size_t)s * B * U + b * U;
            float *cn = p->c + (size_t)(s + 1) * B * U + b * U;
            float *ac = p->ac + (size_t)s * B * U + b * U;
            for (int i = 0; i < U; i++) cn[i] = a[U + i] * cp[i] + a[i] * a[2 * U + i];
            gate_act(j->act, cn, ac, U);
            for (int i = 0; i < U; i++) hnb[i] = a[3 * U + i] * ac[i];
        } else { /* GRU, first the gates z and r */
            for (int i = 0; i < 2 * U; i++) z[i] = x[i] + rp[i];
            gate_act(j->ract, z, a, 2 * U); /* z, r */
            float *rh = p->rh + (size_t)s * B * U + b * U;
            const float *hrb = j->hr + b * U;
            for (int i = 0; i < U; i++) rh[i] = j->reset_after ? rp[2 * U + i] : a[U + i] * hrb[i];
        }
    }
}

/* forward, GRU rows [b0, b1): the candidate and the new state */
static void fwd_gru_candidate(size_t b0, size_t b1, void *ctx) {
    const rnn_step *j = ctx;
    const rnn_buf *p = &j->p;
    const int U = j->U, GU = j->GU, T = j->T, B = j->B, t = j->t;
    const float *rhs = p->rh + (size_t)j->s * B * U;
    for (size_t b = b0; b < b1; b++) {
        const float *x = p->xp + ((size_t)b * T + t) * GU, *rp = p->rp + b * GU;
        const float *rh = rhs + b * U, *hpb = j->hp + b * U;
        float *z = j->zs + b * GU, *a = j->as + b * GU, *hnb = j->hn + b * U;
        for (int i = 0; i < U; i++) z[2 * U + i] = x[2 * U + i] + (j->reset_after ? a[U + i] * rh[i] : rp[2 * U + i]);
        gate_act(j->act, z + 2 * U, a + 2 * U, U);
        for (int i = 0; i < U; i++) hnb[i] = a[i] * hpb[i] + (1.0f - a[i]) * a[2 * U + i];
    }
}

/* mixed_bfloat16: the workspace of the largest of the layer's products (one at a time) */
static size_t rnn_bf16_workspace(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out,
                                 int batch) {
    (void)n_in, (void)out;
    const int B = batch, T = in[0].dims[0], F = in[0].dims[1], U = L->units, GU = rnn_gates(L) * U;
    const int shapes[][3] = {{B * T, GU, F}, {B, GU, U}, {B, U, U},      {U, U, B},
                             {B, U, GU},     {F, GU, B * T}, {U, GU, B * T}, {B * T, F, GU}};
    size_t w = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t k = loom_gemm_bf16_workspace(shapes[i][0], shapes[i][1], shapes[i][2]);
        if (k > w) w = k;
    }
    return w;
}

/* The products over all steps at once, planned on their backends: the input projection, the two
 * weight gradients and the input's; the per-step recurrent products (batch rows) stay on the
 * default backend (RNN_STEP). */
enum { RNN_IN, RNN_DW_IN, RNN_DW_REC, RNN_DX, RNN_STEP = LOOM_OP_MAX_PRODUCTS };
static int rnn_products(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch,
                        bool bf16, float dw_alpha, loom_product_shape *s) {
    (void)n_in, (void)out, (void)dw_alpha;
    const int BT = batch * in[0].dims[0], F = in[0].dims[1], U = L->units, GU = rnn_gates(L) * U;
    s[RNN_IN] = (loom_product_shape){bf16, false, false, BT, GU, F, F, GU, GU, 1.0f, -1, false};
    s[RNN_DW_IN] = (loom_product_shape){bf16, true, false, F, GU, BT, F, GU, GU, 1.0f, 1, false};
    s[RNN_DW_REC] = (loom_product_shape){bf16, true, false, U, GU, BT, U, GU, GU, 1.0f, 1, false};
    s[RNN_DX] = (loom_product_shape){bf16, false, true, BT, F, GU, GU, GU, F, 1.0f, 1, false};
    return 4;
}

static void rnn_forward(const loom_layer *L, const loom_op_ctx *c) {
    const int B = c->batch, T = c->in_shape[0].dims[0], F = c->in_shape[0].dims[1], U = L->units;
    const int G = rnn_gates(L), GU = G * U, kind = rnn_kind(L);
    const bool seq = L->iarg[RNN_SEQ], back = L->iarg[RNN_BACK], zero_out = L->iarg[RNN_ZERO];
    const bool reset_after = L->iarg[RNN_RESET];
    const float *K = c->w, *R = c->w + (size_t)F * GU;
    const float *bias = L->iarg[RNN_BIAS] ? R + (size_t)U * GU : NULL;
    const float *rbias = bias && kind == KIND_GRU && reset_after ? bias + GU : NULL;
    const int Ro = out_rows(L, T);
    rnn_step j = {.L = L, .c = c, .B = B, .T = T, .U = U, .GU = GU, .Ro = Ro, .kind = kind, .seq = seq,
                  .zero_out = zero_out, .reset_after = reset_after, .act = L->activation,
                  .ract = (loom_activation)L->iarg[RNN_RACT]};
    rnn_buf *p = &j.p;
    rnn_layout(L, B, T, c->scratch, p);

    /* the input side of every step in one product */
    size_t rows = (size_t)B * T;
    if (bias)
        for (size_t r = 0; r < rows; r++) memcpy(p->xp + r * GU, bias, (size_t)GU * sizeof(float));
    loom_layer_product(c, RNN_IN, false, false, (int)rows, GU, F, 1.0f, c->in[0], F, K, GU, bias ? 1.0f : 0.0f, p->xp, GU);

    /* recurrent_dropout (Keras 3): one mask per sample and unit for the whole sequence, on h_prev
     * where it enters the recurrent products (the carried state itself is not dropped) */
    const bool rdrop = c->training && p->rm;
    if (rdrop) {
        const float rate = rdrop_rate(L), scale = 1.0f / (1.0f - rate);
        uint64_t key = loom_hash64(c->rng_seed, c->rng_counter ^ 0x5EC0ULL);
        for (size_t i = 0; i < (size_t)B * U; i++) p->rm[i] = loom_uniform01(key, i) >= rate ? scale : 0.0f;
    }
    /* h_0 (and c_0): initial_state, or a stateful layer's carried states (the first B of its
     * batch-size rows: sample b continues sample b of the batch before), or zeros */
    float *carry = L->iarg[RNN_STATEFUL] ? L->user : NULL;
    const size_t bu = (size_t)B * U, carry_c = (size_t)L->iarg[RNN_SBATCH] * U;
    const float *h0 = c->n_in > 1 ? c->in[1] : carry;
    const float *c0 = c->n_in > 2 ? c->in[2] : carry ? carry + carry_c : NULL;
    if (h0)
        memcpy(p->h, h0, bu * sizeof(float));
    else
        memset(p->h, 0, bu * sizeof(float));
    if (p->c && c0)
        memcpy(p->c, c0, bu * sizeof(float));
    else if (p->c)
        memset(p->c, 0, bu * sizeof(float));
    for (int s = 0; s < T; s++) {
        const int t = back ? T - 1 - s : s;
        j.s = s;
        j.t = t;
        j.hp = p->h + (size_t)s * B * U;
        j.hn = p->h + (size_t)(s + 1) * B * U;
        j.zs = p->z + (size_t)s * B * GU;
        j.as = p->a + (size_t)s * B * GU;
        j.hr = j.hp;
        if (rdrop) {
            float *hm = p->hm + (size_t)s * B * U;
            for (size_t i = 0; i < (size_t)B * U; i++) hm[i] = j.hp[i] * p->rm[i];
            j.hr = hm;
        }
        /* recurrent product h_prev.U (the candidate's columns come later for reset_before GRU) */
        int rcols = kind == KIND_GRU && !reset_after ? 2 * U : GU;
        loom_layer_product(c, RNN_STEP, false, false, B, rcols, U, 1.0f, j.hr, U, R, GU, 0.0f, p->rp, GU);
        if (rbias)
            for (int b = 0; b < B; b++)
                for (int i = 0; i < GU; i++) p->rp[(size_t)b * GU + i] += rbias[i];
        rnn_split(&j, fwd_gates);
        if (kind == KIND_GRU) {
            if (!reset_after) /* (r*h_prev).U_h */
                loom_layer_product(c, RNN_STEP, false, false, B, U, U, 1.0f, p->rh + (size_t)s * B * U, U, R + 2 * U, GU, 0.0f, p->rp + 2 * U, GU);
            rnn_split(&j, fwd_gru_candidate);
        }
        /* padded steps carry the state; outputs */
        for (int b = 0; b < B; b++) {
            bool valid = step_valid(c->in_mask, b, T, t);
            float *hnb = j.hn + (size_t)b * U;
            if (!valid) {
                memcpy(hnb, j.hp + (size_t)b * U, (size_t)U * sizeof(float));
                if (p->c)
                    memcpy(p->c + (size_t)(s + 1) * B * U + (size_t)b * U, p->c + (size_t)s * B * U + (size_t)b * U,
                           (size_t)U * sizeof(float));
            }
            if (seq) {
                float *o = c->out + ((size_t)b * Ro + s) * U;
                if (valid || !zero_out)
                    memcpy(o, hnb, (size_t)U * sizeof(float));
                else
                    memset(o, 0, (size_t)U * sizeof(float));
            }
        }
    }
    const float *hT = p->h + (size_t)T * B * U, *cT = p->c ? p->c + (size_t)T * B * U : NULL;
    if (!seq && Ro == 1) memcpy(c->out, hT, (size_t)B * U * sizeof(float));
    else if (!seq || L->iarg[RNN_STATE])
        for (int b = 0; b < B; b++) { /* the last output, then the final states */
            float *o = c->out + (size_t)b * Ro * U + (size_t)(seq ? T : 0) * U;
            const size_t u = (size_t)U * sizeof(float);
            if (!seq) {
                memcpy(o, hT + (size_t)b * U, u);
                o += U;
            }
            memcpy(o, hT + (size_t)b * U, u);
            if (cT) memcpy(o + U, cT + (size_t)b * U, u);
        }
    /* stateful: kept for the next batch (no gradient flows back into it, as in Keras) */
    if (carry) {
        memcpy(carry, p->h + (size_t)T * bu, bu * sizeof(float));
        if (p->c) memcpy(carry + carry_c, p->c + (size_t)T * bu, bu * sizeof(float));
    }
}

loom_status loom_layer_reset_states(loom_layer *L) {
    if (!L) return LOOM_ERR_ARGUMENT;
    if (!loom_is_rnn_op(L->op) || !L->iarg[RNN_STATEFUL])
        return loom_set_error(&L->graph->err, LOOM_ERR_ARGUMENT, "%s (%s): reset_states needs a stateful recurrent layer",
                              L->name, L->op->class_name);
    memset(L->user, 0, (size_t)rnn_states(L) * (size_t)L->iarg[RNN_SBATCH] * (size_t)L->units * sizeof(float));
    loom_clear_error(&L->graph->err);
    return LOOM_OK;
}

/* ---------------------------------------------------------------- backward */

/* backward, rows [b0, b1): the output gradient of the step joins dh, then through the gates
 * (for GRU: the candidate; its gates follow in bwd_gru_gates) */
static void bwd_gates(size_t b0, size_t b1, void *ctx) {
    const rnn_step *j = ctx;
    const rnn_buf *p = &j->p;
    const loom_op_ctx *c = j->c;
    const int U = j->U, GU = j->GU, T = j->T, B = j->B, s = j->s, t = j->t, kind = j->kind;
    const size_t bu = (size_t)B * U;
    float *dzx = p->xp;
    for (size_t b = b0; b < b1; b++) {
        if (j->seq && (step_valid(c->in_mask, (int)b, T, t) || !j->zero_out)) {
            const float *d = c->dout + ((size_t)b * j->Ro + s) * U;
            for (int i = 0; i < U; i++) p->dh[b * U + i] += d[i];
        }
        if (!step_valid(c->in_mask, (int)b, T, t)) continue; /* gradients pass through unchanged */
        const float *z = j->zs + b * GU, *a = j->as + b * GU;
        const float *dh = p->dh + b * U, *hpb = j->hp + b * U;
        float *da = p->da + b * GU, *dzr = dzx + ((size_t)b * T + t) * GU;
        if (kind == KIND_SIMPLE) {
            loom_act_backward(j->act, z, a, dh, dzr, 1, U);
        } else if (kind == KIND_LSTM) {
            const float *cp = p->c + (size_t)s * bu + b * U;
            const float *cn = p->c + (size_t)(s + 1) * bu + b * U;
            const float *ac = p->ac + (size_t)s * bu + b * U;
            float *dac = p->t1 + b * U, *dct = p->t2 + b * U, *dc = p->dc + b * U;
            for (int i = 0; i < U; i++) {
                dac[i] = dh[i] * a[3 * U + i];
                dct[i] = dc[i];
            }
            loom_act_backward(j->act, cn, ac, dac, dct, 1, U); /* dL/dc_t in all */
            for (int i = 0; i < U; i++) {
                da[i] = dct[i] * a[2 * U + i];
                da[U + i] = dct[i] * cp[i];
                da[2 * U + i] = dct[i] * a[i];
                da[3 * U + i] = dh[i] * ac[i];
                dc[i] = dct[i] * a[U + i]; /* to c_prev */
            }
            loom_act_backward(j->ract, z, a, da, dzr, 1, U);
            loom_act_backward(j->ract, z + U, a + U, da + U, dzr + U, 1, U);
            loom_act_backward(j->act, z + 2 * U, a + 2 * U, da + 2 * U, dzr + 2 * U, 1, U);
            loom_act_backward(j->ract, z + 3 * U, a + 3 * U, da + 3 * U, dzr + 3 * U, 1, U);
        } else { /* GRU: the candidate first; the gates need its recurrent gradient */
            for (int i = 0; i < U; i++) {
                da[i] = dh[i] * (hpb[i] - a[2 * U + i]);
                da[2 * U + i] = dh[i] * (1.0f - a[i]);
            }
            loom_act_backward(j->act, z + 2 * U, a + 2 * U, da + 2 * U, dzr + 2 * U, 1, U);
        }
        if (kind != KIND_GRU) memcpy(j->dzhs + b * GU, dzr, (size_t)GU * sizeof(float));
    }
}

/* backward, GRU rows [b0, b1): the gates z and r */
static void bwd_gru_gates(size_t b0, size_t b1, void *ctx) {
    const rnn_step *j = ctx;
    const rnn_buf *p = &j->p;
    const int U = j->U, GU = j->GU, T = j->T, t = j->t;
    const float *rhs = p->rh + (size_t)j->s * j->B * U, *drh = p->t1;
    float *dzx = p->xp;
    for (size_t b = b0; b < b1; b++) {
        if (!step_valid(j->c->in_mask, (int)b, T, t)) continue;
        const float *z = j->zs + b * GU, *a = j->as + b * GU;
        const float *rh = rhs + b * U;
        float *da = p->da + b * GU, *dzr = dzx + ((size_t)b * T + t) * GU;
        float *dzh = j->dzhs + b * GU;
        for (int i = 0; i < U; i++) {
            if (j->reset_after) {
                da[U + i] = dzr[2 * U + i] * rh[i];
                dzh[2 * U + i] = dzr[2 * U + i] * a[U + i];
            } else {
                da[U + i] = drh[b * U + i] * j->hr[b * U + i];
            }
        }
        loom_act_backward(j->ract, z, a, da, dzr, 1, U);
        loom_act_backward(j->ract, z + U, a + U, da + U, dzr + U, 1, U);
        memcpy(dzh, dzr, 2 * (size_t)U * sizeof(float));
    }
}

static void rnn_backward(const loom_layer *L, const loom_op_ctx *c) {
    const int B = c->batch, T = c->in_shape[0].dims[0], F = c->in_shape[0].dims[1], U = L->units;
    const int G = rnn_gates(L), GU = G * U, kind = rnn_kind(L);
    const bool seq = L->iarg[RNN_SEQ], back = L->iarg[RNN_BACK], zero_out = L->iarg[RNN_ZERO];
    const bool reset_after = L->iarg[RNN_RESET], has_bias = L->iarg[RNN_BIAS];
    const float *K = c->w, *R = c->w + (size_t)F * GU;
    const int Ro = out_rows(L, T);
    rnn_step j = {.L = L, .c = c, .B = B, .T = T, .U = U, .GU = GU, .Ro = Ro, .kind = kind, .seq = seq,
                  .zero_out = zero_out, .reset_after = reset_after, .act = L->activation,
                  .ract = (loom_activation)L->iarg[RNN_RACT]};
    rnn_buf *p = &j.p;
    rnn_layout(L, B, T, c->scratch, p);
    float *dzx = p->xp; /* the input projection is not needed any more */
    const size_t bu = (size_t)B * U;
    const bool rdrop = c->training && p->rm; /* the forward's mask is still in the scratch */

    memset(dzx, 0, (size_t)B * T * GU * sizeof(float));
    memset(p->dzh, 0, (size_t)B * T * GU * sizeof(float));
    if (seq && !L->iarg[RNN_STATE])
        memset(p->dh, 0, bu * sizeof(float));
    else if (!seq && Ro == 1)
        memcpy(p->dh, c->dout, bu * sizeof(float));
    memset(p->dc, 0, bu * sizeof(float));
    if (Ro > 1 && (L->iarg[RNN_STATE] || !seq))
        for (int b = 0; b < B; b++) { /* the final h (twice without sequences) and c */
            const float *d = c->dout + (size_t)b * Ro * U + (size_t)(seq ? T : 0) * U;
            float *dh = p->dh + (size_t)b * U, *dc = p->dc + (size_t)b * U;
            for (int i = 0; i < U; i++) dh[i] = seq ? d[i] : d[i] + d[U + i];
            if (kind == KIND_LSTM)
                for (int i = 0; i < U; i++) dc[i] = d[(seq ? 1 : 2) * U + i];
        }
    float *dKr = c->dw ? c->dw + (size_t)F * GU : NULL;

    for (int s = T - 1; s >= 0; s--) {
        const int t = back ? T - 1 - s : s;
        j.s = s;
        j.t = t;
        j.hp = p->h + (size_t)s * bu;
        j.zs = p->z + (size_t)s * B * GU;
        j.as = p->a + (size_t)s * B * GU;
        j.dzhs = p->dzh + (size_t)s * B * GU;
        j.hr = rdrop ? p->hm + (size_t)s * bu : j.hp;
        rnn_split(&j, bwd_gates);

        if (kind == KIND_GRU) {
            const float *rhs = p->rh + (size_t)s * bu;
            float *drh = p->t1; /* reset_before: dL/d(r*h_prev) = dz_h . U_h^T */
            if (!reset_after) {
                loom_layer_product(c, RNN_STEP, false, true, B, U, U, 1.0f, dzx + (size_t)t * GU + 2 * U, T * GU, R + 2 * U, GU, 0.0f,
                           drh, U);
                if (dKr) /* dU_h += (r*h_prev)^T dz_h; masked rows of dz_h are 0 */
                    loom_layer_product(c, RNN_STEP, true, false, U, U, B, 1.0f, rhs, U, dzx + (size_t)t * GU + 2 * U, T * GU, 1.0f,
                               dKr + 2 * U, GU);
            }
            rnn_split(&j, bwd_gru_gates);
        }

        /* to h_prev: through the recurrent product, plus the direct paths */
        loom_layer_product(c, RNN_STEP, false, true, B, U, GU, 1.0f, j.dzhs, GU, R, GU, 0.0f, p->dhp, U);
        for (int b = 0; b < B; b++) {
            if (!step_valid(c->in_mask, b, T, t)) continue;
            float *dh = p->dh + (size_t)b * U;
            const float *dhp = p->dhp + (size_t)b * U, *a = j.as + (size_t)b * GU;
            /* the recurrent products read h_prev * mask: their gradients pass the mask back */
            const float *rm = rdrop ? p->rm + (size_t)b * U : NULL;
            if (kind == KIND_GRU) {
                const float *drh = p->t1 + (size_t)b * U;
                for (int i = 0; i < U; i++) {
                    float through = dhp[i] + (reset_after ? 0.0f : drh[i] * a[U + i]);
                    dh[i] = (rm ? through * rm[i] : through) + dh[i] * a[i];
                }
            } else if (rm) {
                for (int i = 0; i < U; i++) dh[i] = dhp[i] * rm[i];
            } else {
                memcpy(dh, dhp, (size_t)U * sizeof(float));
            }
        }
    }
    if (c->dw) {
        size_t rows = (size_t)B * T;
        loom_layer_product(c, RNN_DW_IN, true, false, F, GU, (int)rows, 1.0f, c->in[0], F, dzx, GU, 1.0f, c->dw, GU);
        /* h_prev of every step, [s][b] rows, against the recurrent gradients */
        loom_layer_product(c, RNN_DW_REC, true, false, U, GU, (int)rows, 1.0f, rdrop ? p->hm : p->h, U, p->dzh, GU, 1.0f, dKr, GU);
        if (has_bias) {
            float *db = dKr + (size_t)U * GU;
            for (size_t r = 0; r < rows; r++)
                for (int i = 0; i < GU; i++) db[i] += dzx[r * GU + i];
            if (kind == KIND_GRU && reset_after)
                for (size_t r = 0; r < rows; r++)
                    for (int i = 0; i < GU; i++) db[GU + i] += p->dzh[r * GU + i];
        }
    }
    if (c->din[0])
        loom_layer_product(c, RNN_DX, false, true, B * T, F, GU, 1.0f, dzx, GU, K, GU, 1.0f, c->din[0], F);
    /* after the first step's backward, dh and dc hold dL/dh_0 and dL/dc_0 */
    if (c->n_in > 1 && c->din[1])
        for (size_t i = 0; i < bu; i++) c->din[1][i] += p->dh[i];
    if (c->n_in > 2 && c->din[2])
        for (size_t i = 0; i < bu; i++) c->din[2][i] += p->dc[i];
}

/* ---------------------------------------------------------------- model files */

static cJSON *init_obj(const char *cls, bool seeded, bool gain) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "module", "keras.initializers");
    cJSON_AddStringToObject(o, "class_name", cls);
    cJSON *cfg = cJSON_AddObjectToObject(o, "config");
    if (gain) cJSON_AddNumberToObject(cfg, "gain", 1.0);
    if (seeded) cJSON_AddNullToObject(cfg, "seed");
    cJSON_AddNullToObject(o, "registered_name");
    return o;
}

/* Keras's get_config fields (RNN, and the cell's). */
static bool rnn_save_config(const loom_layer *L, void *obj) {
    cJSON *c = obj;
    int kind = rnn_kind(L);
    cJSON_AddBoolToObject(c, "return_sequences", L->iarg[RNN_SEQ] != 0);
    cJSON_AddBoolToObject(c, "return_state", L->iarg[RNN_STATE] != 0);
    cJSON_AddBoolToObject(c, "go_backwards", L->iarg[RNN_BACK] != 0);
    cJSON_AddBoolToObject(c, "stateful", L->iarg[RNN_STATEFUL] != 0);
    /* Keras keeps the batch size in the Input's batch_shape; loom's Inputs have none */
    if (L->iarg[RNN_STATEFUL]) cJSON_AddNumberToObject(c, "loom_stateful_batch", L->iarg[RNN_SBATCH]);
    cJSON_AddBoolToObject(c, "unroll", false);
    cJSON_AddBoolToObject(c, "zero_output_for_mask", L->iarg[RNN_ZERO] != 0);
    cJSON_AddNumberToObject(c, "units", L->units);
    cJSON_AddStringToObject(c, "activation", loom_activation_name(L->activation));
    if (kind != KIND_SIMPLE)
        cJSON_AddStringToObject(c, "recurrent_activation", loom_activation_name((loom_activation)L->iarg[RNN_RACT]));
    cJSON_AddBoolToObject(c, "use_bias", L->iarg[RNN_BIAS] != 0);
    cJSON_AddItemToObject(c, "kernel_initializer", init_obj("GlorotUniform", true, false));
    cJSON_AddItemToObject(c, "recurrent_initializer", init_obj("Orthogonal", true, true));
    cJSON_AddItemToObject(c, "bias_initializer", init_obj("Zeros", false, false));
    if (kind == KIND_LSTM) cJSON_AddBoolToObject(c, "unit_forget_bias", L->iarg[RNN_UFB] != 0);
    const char *nulls[] = {"kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                           "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                           "bias_constraint", "seed"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++) cJSON_AddNullToObject(c, nulls[i]);
    cJSON_AddNumberToObject(c, "dropout", 0.0);
    cJSON_AddNumberToObject(c, "recurrent_dropout", rdrop_rate(L));
    if (kind == KIND_GRU) cJSON_AddBoolToObject(c, "reset_after", L->iarg[RNN_RESET] != 0);
    /* a cJSON allocation failure leaves a field out: check the last one */
    return cJSON_GetObjectItemCaseSensitive(c, kind == KIND_GRU ? "reset_after" : "recurrent_dropout") != NULL;
}

static int json_flag(const cJSON *c, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static int json_act(const cJSON *c, const char *key, loom_activation fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!v || cJSON_IsNull(v)) return fallback;
    return cJSON_IsString(v) ? loom_activation_from_name(v->valuestring) : -1;
}

static loom_layer *rnn_load(loom_graph *g, const char *name, const cJSON *c, int kind) {
    if (!g || g->err.code) return NULL;
    const char *cls = kind == KIND_LSTM ? "LSTM" : kind == KIND_GRU ? "GRU" : "SimpleRNN";
    const char *shown = name ? name : cls;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "dropout");
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(c, "recurrent_dropout");
    if (cJSON_IsNumber(d) && d->valuedouble != 0.0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): dropout (on the inputs) is not supported", shown, cls);
        return NULL;
    }
    long sbatch = 0;
    if (json_flag(c, "stateful", 0)) {
        const cJSON *sb = cJSON_GetObjectItemCaseSensitive(c, "loom_stateful_batch");
        sbatch = cJSON_IsNumber(sb) && sb->valuedouble >= 1 && sb->valuedouble <= (1 << 24) &&
                         sb->valuedouble == floor(sb->valuedouble)
                     ? (long)sb->valuedouble
                     : -1;
        if (sbatch < 0) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                           "%s (%s): stateful needs its batch size (loom_stateful_batch, a whole number in 1..%d)",
                           shown, cls, 1 << 24);
            return NULL;
        }
    }
    if (rd && !cJSON_IsNull(rd) && !(cJSON_IsNumber(rd) && rd->valuedouble >= 0.0 && rd->valuedouble < 1.0)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): recurrent_dropout must be a number in [0, 1)", shown, cls);
        return NULL;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(c, "units");
    int units = cJSON_IsNumber(u) && u->valuedouble >= 1 && u->valuedouble <= (1 << 24) &&
                        u->valuedouble == floor(u->valuedouble)
                    ? (int)u->valuedouble
                    : -1;
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = json_flag(c, "return_sequences", 0);
    o.go_backwards = json_flag(c, "go_backwards", 0);
    o.use_bias = json_flag(c, "use_bias", 1);
    o.activation = (loom_activation)json_act(c, "activation", LOOM_TANH);
    o.recurrent_activation = (loom_activation)json_act(c, "recurrent_activation", LOOM_SIGMOID);
    o.unit_forget_bias = json_flag(c, "unit_forget_bias", 1);
    o.reset_after = json_flag(c, "reset_after", 1);
    o.recurrent_dropout = cJSON_IsNumber(rd) ? (float)rd->valuedouble : 0.0f;
    o.stateful = sbatch > 0;
    o.batch_size = (int)sbatch;
    loom_layer *L = kind == KIND_LSTM  ? loom_lstm(g, name, units, &o)
                    : kind == KIND_GRU ? loom_gru(g, name, units, &o)
                                       : loom_simple_rnn(g, name, units, &o);
    if (L) L->iarg[RNN_ZERO] = json_flag(c, "zero_output_for_mask", 0);
    if (L) L->iarg[RNN_STATE] = json_flag(c, "return_state", 0);
    return L;
}

static loom_layer *simple_rnn_load(loom_graph *g, const char *name, const void *c) { return rnn_load(g, name, c, KIND_SIMPLE); }
static loom_layer *lstm_load(loom_graph *g, const char *name, const void *c) { return rnn_load(g, name, c, KIND_LSTM); }
static loom_layer *gru_load(loom_graph *g, const char *name, const void *c) { return rnn_load(g, name, c, KIND_GRU); }

/* ---------------------------------------------------------------- op tables and constructors */

#define RNN_OP(cls, base, loader)                                                                  \
    {.class_name = cls,                                                                            \
     .base_name = base,                                                                            \
     .min_inputs = 1,                                                                              \
     .max_inputs = 3,                                                                              \
     .build = rnn_build,                                                                           \
     .scratch_size = rnn_scratch,                                                                  \
     .forward = rnn_forward,                                                                       \
     .bf16_workspace = rnn_bf16_workspace,                                                         \
     .products = rnn_products,                                                                     \
     .backward = rnn_backward,                                                                     \
     .mask_mode = LOOM_MASK_KEEP,                                                                  \
     .make_mask = NULL,                                                                            \
     .save_config = rnn_save_config,                                                               \
     .load_config = loader}

const loom_op loom_op_simple_rnn = RNN_OP("SimpleRNN", "simple_rnn", simple_rnn_load);
const loom_op loom_op_lstm = RNN_OP("LSTM", "lstm", lstm_load);
const loom_op loom_op_gru = RNN_OP("GRU", "gru", gru_load);

loom_rnn_options loom_rnn_defaults(void) {
    loom_rnn_options o;
    memset(&o, 0, sizeof o);
    o.use_bias = 1;
    o.activation = LOOM_TANH;
    o.recurrent_activation = LOOM_SIGMOID;
    o.unit_forget_bias = 1;
    o.reset_after = 1;
    return o;
}

static loom_layer *rnn_new(loom_graph *g, const loom_op *op, const char *name, int units, const loom_rnn_options *opt) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : op->base_name;
    if (units <= 0 || units > (1 << 20)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): units must be in 1..%d, got %d", shown, op->class_name,
                       1 << 20, units);
        return NULL;
    }
    loom_rnn_options o = opt ? *opt : loom_rnn_defaults();
    if ((int)o.activation < 0 || o.activation >= LOOM_ACTIVATION_COUNT) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): unknown activation %d", shown, op->class_name,
                       (int)o.activation);
        return NULL;
    }
    if (op != &loom_op_simple_rnn &&
        ((int)o.recurrent_activation < 0 || o.recurrent_activation >= LOOM_ACTIVATION_COUNT)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): unknown recurrent_activation %d", shown,
                       op->class_name, (int)o.recurrent_activation);
        return NULL;
    }
    if (!(o.recurrent_dropout >= 0.0f && o.recurrent_dropout < 1.0f)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): recurrent_dropout must be in [0, 1), got %g", shown,
                       op->class_name, (double)o.recurrent_dropout);
        return NULL;
    }
    if (o.stateful && (o.batch_size < 1 || o.batch_size > (1 << 24) ||
                       (size_t)o.batch_size * (size_t)units > ((size_t)1 << 30))) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): stateful needs batch_size in 1..%d (with batch_size * units <= 2^30), got %d", shown,
                       op->class_name, 1 << 24, o.batch_size);
        return NULL;
    }
    float *carry = NULL;
    if (o.stateful) {
        size_t n = (op == &loom_op_lstm ? 2 : 1) * (size_t)o.batch_size * (size_t)units;
        if (!(carry = calloc(n, sizeof *carry))) {
            loom_set_error(&g->err, LOOM_ERR_MEMORY, "%s (%s): out of memory for the stateful states", shown,
                           op->class_name);
            return NULL;
        }
    }
    loom_layer *L = loom_graph_new_layer(g, op, name);
    if (!L) {
        free(carry);
        return NULL;
    }
    L->units = units;
    L->farg[0] = o.recurrent_dropout;
    L->user = carry;
    L->iarg[RNN_STATEFUL] = carry != NULL;
    L->iarg[RNN_SBATCH] = carry ? o.batch_size : 0;
    L->activation = o.activation;
    L->iarg[RNN_SEQ] = o.return_sequences != 0;
    L->iarg[RNN_BACK] = o.go_backwards != 0;
    L->iarg[RNN_BIAS] = o.use_bias != 0;
    L->iarg[RNN_RACT] = op == &loom_op_simple_rnn ? LOOM_SIGMOID : (int)o.recurrent_activation;
    L->iarg[RNN_UFB] = op == &loom_op_lstm && o.unit_forget_bias != 0;
    L->iarg[RNN_RESET] = op == &loom_op_gru && o.reset_after != 0;
    return L;
}

loom_layer *loom_simple_rnn(loom_graph *g, const char *name, int units, const loom_rnn_options *opt) {
    return rnn_new(g, &loom_op_simple_rnn, name, units, opt);
}
loom_layer *loom_lstm(loom_graph *g, const char *name, int units, const loom_rnn_options *opt) {
    return rnn_new(g, &loom_op_lstm, name, units, opt);
}
loom_layer *loom_gru(loom_graph *g, const char *name, int units, const loom_rnn_options *opt) {
    return rnn_new(g, &loom_op_gru, name, units, opt);
}

/* ---------------------------------------------------------------- RecurrentOutput
 * iarg[0] k (0: the output, 1..S: a final state), iarg[1] S, iarg[2] seq. From the recurrent
 * layer's (rows, units) it takes rows [0, rows - S) (k 0 with sequences: (steps, units)) or the
 * one row 0 (k 0 without) or rows - S + k - 1 (a state), the last two as (units). */

static void ro_rows(const loom_layer *L, int rows, int *first, int *n) {
    int k = L->iarg[0], S = L->iarg[1];
    *first = k == 0 ? 0 : rows - S + k - 1;
    *n = k == 0 && L->iarg[2] ? rows - S : 1;
}

static loom_status ro_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    int first, n;
    ro_rows(L, in[0].rank == 2 ? in[0].dims[0] : 0, &first, &n);
    if (in[0].rank != 2 || first < 0 || n < 1 || first + n > in[0].dims[0]) {
        char a[64];
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (RecurrentOutput): %s is not the output of a return_state layer with %d state(s)",
                              L->name, loom_shape_str(&in[0], a, sizeof a), L->iarg[1]);
    }
    bool rows = L->iarg[0] == 0 && L->iarg[2];
    *out = rows ? (loom_shape){2, {n, in[0].dims[1]}} : (loom_shape){1, {in[0].dims[1]}};
    return LOOM_OK;
}

static void ro_forward(const loom_layer *L, const loom_op_ctx *c) {
    int R = c->in_shape[0].dims[0], U = c->in_shape[0].dims[1], first, n;
    ro_rows(L, R, &first, &n);
    for (int b = 0; b < c->batch; b++)
        memcpy(c->out + (size_t)b * n * U, c->in[0] + ((size_t)b * R + first) * U, (size_t)n * U * sizeof(float));
}

static void ro_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (!c->din[0]) return;
    int R = c->in_shape[0].dims[0], U = c->in_shape[0].dims[1], first, n;
    ro_rows(L, R, &first, &n);
    for (int b = 0; b < c->batch; b++) {
        float *dx = c->din[0] + ((size_t)b * R + first) * U;
        const float *dy = c->dout + (size_t)b * n * U;
        for (size_t i = 0; i < (size_t)n * U; i++) dx[i] += dy[i];
    }
}

static bool ro_save(const loom_layer *L, void *obj) {
    return cJSON_AddNumberToObject(obj, "output", L->iarg[0]) && cJSON_AddNumberToObject(obj, "states", L->iarg[1]) &&
           cJSON_AddBoolToObject(obj, "sequences", L->iarg[2] != 0);
}

static loom_layer *ro_load(loom_graph *g, const char *name, const void *config) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(config, "output"), *s = cJSON_GetObjectItemCaseSensitive(config, "states");
    int kk = cJSON_IsNumber(k) && k->valuedouble >= 0 && k->valuedouble <= 2 ? (int)k->valuedouble : -1;
    int ss = cJSON_IsNumber(s) && s->valuedouble >= 1 && s->valuedouble <= 2 ? (int)s->valuedouble : -1;
    return loom_recurrent_output(g, name, kk, ss, json_flag(config, "sequences", 0));
}

const loom_op loom_op_recurrent_output = {
    .class_name = "RecurrentOutput",
    .base_name = "recurrent_output",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = ro_build,
    .forward = ro_forward,
    .backward = ro_backward,
    .mask_mode = LOOM_MASK_DROP,
    .save_config = ro_save,
    .load_config = ro_load,
};

loom_layer *loom_recurrent_output(loom_graph *g, const char *name, int k, int states, int seq) {
    if (!g || g->err.code) return NULL;
    if (states < 1 || states > 2 || k < 0 || k > states) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (RecurrentOutput): output %d of %d state(s) does not exist",
                       name ? name : "recurrent_output", k, states);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_recurrent_output, name);
    if (!L) return NULL;
    L->iarg[0] = k;
    L->iarg[1] = states;
    L->iarg[2] = seq != 0;
    return L;
}
