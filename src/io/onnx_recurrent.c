/* onnx_recurrent.c — SimpleRNN, LSTM, GRU and Bidirectional as ONNX (onnx_recurrent.h).
 *
 * ONNX's operators where they express the layer: LSTM's Keras gates i, f, c, o reordered to
 * ONNX's i, o, f, c; GRU's z, r, h are ONNX's order, reset_after is linear_before_reset = 1 (bias
 * rows: input, recurrent), reset_before a zero recurrent bias; go_backwards is direction
 * "reverse" (its sequence output reversed, as Keras returns it in processed order);
 * Bidirectional is direction "bidirectional" and its merge mode. Otherwise unrolled (below).
 *
 * Initial states (Keras's initial_state, inputs 1 and 2 of the call, (batch, units) each) are the
 * operators' initial_h / initial_c, or the unrolled loop's first state. return_state: loom's layer
 * output is (batch, rows, units), the output rows then the final h (and c), which RecurrentOutput
 * layers take apart (layer_rnn.c); the operators' Y_h / Y_c (or the loop's last states) are
 * concatenated after the output rows in that layout, and each RecurrentOutput is a Slice / Gather
 * on axis 1 counted from the end, so the time axis may stay symbolic. */
#ifdef LOOM_HAVE_ONNX
#include "io/onnx_recurrent.h"
#include "layers/rnn.h"

#include <stdlib.h>

static const char *rnn_activation(loom_activation a) {
    switch (a) {
    case LOOM_SIGMOID: return "Sigmoid";
    case LOOM_TANH: return "Tanh";
    case LOOM_RELU: return "Relu";
    case LOOM_SOFTPLUS: return "Softplus";
    case LOOM_HARD_SIGMOID:
    case LOOM_HARD_SIGMOID_KERAS2: return "HardSigmoid"; /* alpha: hard_sigmoid_alpha */
    default: return NULL; /* names that need other parameters or that ONNX's list lacks */
    }
}

/* HardSigmoid's alpha (beta 0.5) for a hard_sigmoid, else 0. */
static float hard_sigmoid_alpha(loom_activation a) {
    return a == LOOM_HARD_SIGMOID_KERAS2 ? 0.2f : a == LOOM_HARD_SIGMOID ? 1.0f / 6.0f : 0.0f;
}

/* The layer's activations on ONNX's operator: every one ONNX names, and at most one hard_sigmoid
 * dialect. Then activation_alpha / activation_beta can hold that one (alpha, beta) in every
 * entry, which reads the same whether a reader takes one entry per activation (the
 * specification's wording) or one per activation that has an alpha (ONNX Runtime). */
static bool onnx_activations(const loom_layer *L, bool gated, float *alpha) {
    loom_activation a = L->activation, r = (loom_activation)L->iarg[RNN_RACT];
    float fa = hard_sigmoid_alpha(a), fr = gated ? hard_sigmoid_alpha(r) : 0.0f;
    *alpha = fa > 0 ? fa : fr;
    return rnn_activation(a) && (!gated || rnn_activation(r)) && !(fa > 0 && fr > 0 && fa != fr);
}

/* Keras gate k of ONNX gate slot g: LSTM ONNX i, o, f, c = Keras 0, 3, 1, 2. */
static int keras_gate(const loom_layer *L, int g) {
    static const int lstm[4] = {0, 3, 1, 2};
    return L->op == &loom_op_lstm ? lstm[g] : g;
}

static int rnn_gate_count(const loom_layer *L) {
    return L->op == &loom_op_lstm ? 4 : L->op == &loom_op_gru ? 3 : 1;
}

/* One ONNX RNN / LSTM / GRU node over ndir directions (layers dirs[d] with weights at w[d]).
 * h0, c0: initial states (ndir, batch, units) or NULL (zeros). Writes Y (steps, ndir, batch,
 * units), Y_h (ndir, batch, units) and, when yc is not NULL, LSTM's Y_c under the given names. */
static bool emit_rnn_node(onnx_exporter *e, const onnx_call *c, int ndir, const loom_layer *const *dirs,
                          const float *const *w, const char *direction, const char *x_tnf, const char *h0,
                          const char *c0, const char *y, const char *yh, const char *yc) {
    const loom_layer *L = dirs[0];
    int F = c->in_shape[0].dims[1], U = L->units, G = rnn_gate_count(L);
    size_t GU = (size_t)G * U;
    bool gru = L->op == &loom_op_gru, reset_after = gru && L->iarg[RNN_RESET];
    const char *acts[6];
    int n_acts = 0;
    for (int d = 0; d < ndir; d++) { /* f (recurrent), g, h per direction; can_use_onnx_rnn holds */
        const char *a = rnn_activation(dirs[d]->activation), *r = rnn_activation((loom_activation)dirs[d]->iarg[RNN_RACT]);
        if (G > 1) acts[n_acts++] = r;
        acts[n_acts++] = a;
        if (G == 4) acts[n_acts++] = a;
    }
    size_t nW = (size_t)ndir * GU * F, nR = (size_t)ndir * GU * U, nB = (size_t)ndir * 2 * GU;
    float *buf = calloc(nW + nR + nB, sizeof *buf);
    if (!buf) {
        e->x.failed = true;
        return true;
    }
    float *W = buf, *R = buf + nW, *B = buf + nW + nR;
    for (int d = 0; d < ndir; d++) {
        const float *k = w[d], *rk = k + (size_t)F * GU, *bias = rk + (size_t)U * GU;
        for (int g = 0; g < G; g++) {
            size_t kg = (size_t)keras_gate(L, g) * U;
            for (int u = 0; u < U; u++) {
                size_t row = (size_t)d * GU + (size_t)g * U + u;
                for (int f = 0; f < F; f++) W[row * F + f] = k[(size_t)f * GU + kg + u];
                for (int j = 0; j < U; j++) R[row * U + j] = rk[(size_t)j * GU + kg + u];
                if (dirs[d]->iarg[RNN_BIAS]) {
                    float *Bd = B + (size_t)d * 2 * GU;
                    Bd[(size_t)g * U + u] = bias[kg + u];
                    if (reset_after) Bd[GU + (size_t)g * U + u] = bias[GU + kg + u];
                }
            }
        }
    }
    int64_t nd = ndir, gu = (int64_t)GU;
    /* X, W, R, B, sequence_lens (omitted: "" ), initial_h, initial_c */
    const char *in[7] = {x_tnf, ox_weight(&e->x, loom_onnx_wname(e, c->L, "W"), 3, (int64_t[]){nd, gu, F}, W),
                         ox_weight(&e->x, loom_onnx_wname(e, c->L, "R"), 3, (int64_t[]){nd, gu, U}, R),
                         ox_weight(&e->x, loom_onnx_wname(e, c->L, "B"), 2, (int64_t[]){nd, 2 * gu}, B), "",
                         h0 ? h0 : "", c0 ? c0 : ""};
    free(buf);
    int n_in = c0 ? 7 : h0 ? 6 : 4;
    const char *outs[3] = {y, yh, yc};
    Onnx__NodeProto *n = ox_node(&e->x, G == 4 ? "LSTM" : gru ? "GRU" : "RNN", n_in, in, yc ? 3 : 2, outs);
    ox_attr_int(&e->x, n, "hidden_size", U);
    ox_attr_string(&e->x, n, "direction", direction);
    ox_attr_strings(&e->x, n, "activations", n_acts, acts);
    if (gru) ox_attr_int(&e->x, n, "linear_before_reset", reset_after);
    float alpha, alphas[6], betas[6];
    onnx_activations(L, G > 1, &alpha);
    if (alpha > 0) {
        for (int i = 0; i < n_acts; i++) alphas[i] = alpha, betas[i] = 0.5f;
        ox_attr_floats(&e->x, n, "activation_alpha", n_acts, alphas);
        ox_attr_floats(&e->x, n, "activation_beta", n_acts, betas);
    }
    return true;
}

/* ---------------------------------------------------------------- recurrent layers, unrolled
 *
 * What ONNX's RNN / LSTM / GRU cannot express — a Keras mask (a padded step carries the state
 * and outputs it, or 0 with zero_output_for_mask; padding may sit anywhere) and activations
 * their list lacks — is exported as the loop written out: one group of nodes per step, in loom's
 * order of operations (the input side of every step in one MatMul, then per step h.U, the gates,
 * the state; Where(mask) for padded steps). The graph then fixes the number of steps. */

static bool can_use_onnx_rnn(const loom_layer *L) {
    float alpha;
    return onnx_activations(L, rnn_gate_count(L) > 1, &alpha);
}

/* One direction of a recurrent layer over the steps of c's input, in its processing order, from
 * the initial states h0, c0 ((batch, units), NULL: zeros). step_out[s] receives the output of
 * processed step s, *last the final state h, *last_c (LSTM) the final c. */
static bool unroll_direction(onnx_exporter *e, const onnx_call *c, const loom_layer *L, const float *w, const char *mask3,
                             const char *tag, const char *h0, const char *c0, const char **step_out, const char **last,
                             const char **last_c) {
    ox *x = &e->x;
    const int T = c->in_shape[0].dims[0], F = c->in_shape[0].dims[1], U = L->units, G = rnn_gate_count(L);
    const int64_t GU = (int64_t)G * U;
    const bool lstm = L->op == &loom_op_lstm, gru = L->op == &loom_op_gru, reset_after = gru && L->iarg[RNN_RESET];
    const bool back = L->iarg[RNN_BACK], zero_out = L->iarg[RNN_ZERO] && mask3;
    const loom_activation act = L->activation, ract = (loom_activation)L->iarg[RNN_RACT];
    const float *K = w, *R = w + (size_t)F * GU, *bias = L->iarg[RNN_BIAS] ? R + (size_t)U * GU : NULL;
#define NAME(...) ox_str(x, __VA_ARGS__)
    /* the input side of every step at once: (batch, steps, G*units) */
    const char *xk = NAME("%s/xk", tag), *xp = bias ? NAME("%s/xp", tag) : xk;
    ox_op2(x, "MatMul", xk, c->in[0], ox_weight(x, loom_onnx_wname(e, L, "kernel"), 2, (int64_t[]){F, GU}, K));
    if (bias) ox_op2(x, "Add", xp, xk, ox_weight(x, loom_onnx_wname(e, L, "bias"), 1, &GU, bias));
    /* recurrent kernels: all gates, or for reset_before GRU the z, r columns and the candidate's */
    int64_t rcols = gru && !reset_after ? 2 * U : GU;
    float *rk = malloc((size_t)U * GU * sizeof *rk);
    if (!rk) {
        e->x.failed = true;
        return true;
    }
    for (int j = 0; j < U; j++)
        for (int64_t k = 0; k < rcols; k++) rk[j * rcols + k] = R[j * GU + k];
    const char *Rm = ox_weight(x, loom_onnx_wname(e, L, "rec_kernel"), 2, (int64_t[]){U, rcols}, rk);
    const char *Rh = NULL;
    if (gru && !reset_after) {
        for (int j = 0; j < U; j++)
            for (int k = 0; k < U; k++) rk[j * U + k] = R[j * GU + 2 * U + k];
        Rh = ox_weight(x, loom_onnx_wname(e, L, "rec_kernel_h"), 2, (int64_t[]){U, U}, rk);
    }
    free(rk);
    const char *rbias = reset_after && bias ? ox_weight(x, loom_onnx_wname(e, L, "rec_bias"), 1, &GU, bias + GU) : NULL;
    /* zeros (batch, units): a missing initial state, masked outputs with zero_output_for_mask */
    const char *zeros = NULL;
    if (!h0 || (lstm && !c0) || zero_out) {
        const char *shape = NAME("%s/x_shape", tag), *nb = NAME("%s/batch", tag), *hs = NAME("%s/state_shape", tag);
        zeros = NAME("%s/zeros", tag);
        ox_op1(x, "Shape", shape, c->in[0]);
        const char *sl[3] = {shape, ox_int64s(x, NAME("%s/b0", tag), 1, (int64_t[]){0}),
                             ox_int64s(x, NAME("%s/b1", tag), 1, (int64_t[]){1})};
        ox_node(x, "Slice", 3, sl, 1, &nb);
        const char *cat[2] = {nb, ox_int64s(x, NAME("%s/units", tag), 1, (int64_t[]){U})};
        ox_attr_int(x, ox_node(x, "Concat", 2, cat, 1, &hs), "axis", 0);
        ox_op1(x, "ConstantOfShape", zeros, hs); /* default value: float 0 */
    }
    const char *one = gru ? ox_scalar(x, NAME("%s/one", tag), 1.0f) : NULL;
    const char *split_n = G > 1 ? ox_int64s(x, NAME("%s/split", tag), G, (int64_t[]){U, U, U, U}) : NULL;
    const char *split_2 = gru && !reset_after ? ox_int64s(x, NAME("%s/split2", tag), 2, (int64_t[]){U, U}) : NULL;
    const char *h = h0 ? h0 : zeros, *cs = c0 ? c0 : zeros;
    for (int s = 0; s < T; s++) {
        const int t = back ? T - 1 - s : s;
        const char *p = NAME("%s/step%d", tag, s);
        const char *xt = ox_tmp(x, p, "x"), *rp = ox_tmp(x, p, "rec"), *hn = ox_tmp(x, p, "h_new"), *cn = NULL;
        const char *ti = ox_int64_scalar(x, ox_tmp(x, p, "t"), t);
        ox_attr_int(x, ox_op2(x, "Gather", xt, xp, ti), "axis", 1);
        const char *rp0 = rbias ? ox_tmp(x, p, "rec_nobias") : rp;
        ox_op2(x, "MatMul", rp0, h, Rm);
        if (rbias) ox_op2(x, "Add", rp, rp0, rbias);
        if (!lstm && !gru) {
            const char *z = ox_tmp(x, p, "z");
            ox_op2(x, "Add", z, xt, rp);
            if (!loom_onnx_activation(e, c, act, z, hn)) return false;
        } else if (lstm) {
            const char *z = ox_tmp(x, p, "z"), *zg[4], *ag[4];
            static const char *gate[4] = {"i", "f", "c", "o"};
            ox_op2(x, "Add", z, xt, rp);
            for (int g = 0; g < 4; g++) {
                zg[g] = ox_str(x, "%s/z_%s", p, gate[g]);
                ag[g] = ox_str(x, "%s/a_%s", p, gate[g]);
            }
            ox_attr_int(x, ox_node(x, "Split", 2, (const char *[]){z, split_n}, 4, zg), "axis", 1);
            for (int g = 0; g < 4; g++)
                if (!loom_onnx_activation(e, c, g == 2 ? act : ract, zg[g], ag[g])) return false;
            const char *fc = ox_tmp(x, p, "f_c"), *ig = ox_tmp(x, p, "i_g"), *ac = ox_tmp(x, p, "act_c");
            cn = ox_tmp(x, p, "c_new");
            ox_op2(x, "Mul", fc, ag[1], cs);
            ox_op2(x, "Mul", ig, ag[0], ag[2]);
            ox_op2(x, "Add", cn, fc, ig);
            if (!loom_onnx_activation(e, c, act, cn, ac)) return false;
            ox_op2(x, "Mul", hn, ag[3], ac);
        } else {
            const char *xg[3] = {ox_tmp(x, p, "x_z"), ox_tmp(x, p, "x_r"), ox_tmp(x, p, "x_h")};
            const char *rg[3] = {ox_tmp(x, p, "r_z"), ox_tmp(x, p, "r_r"), ox_tmp(x, p, "r_h")};
            ox_attr_int(x, ox_node(x, "Split", 2, (const char *[]){xt, split_n}, 3, xg), "axis", 1);
            ox_attr_int(x, ox_node(x, "Split", 2, (const char *[]){rp, reset_after ? split_n : split_2}, reset_after ? 3 : 2, rg),
                        "axis", 1);
            const char *zz = ox_tmp(x, p, "zz"), *zr = ox_tmp(x, p, "zr"), *az = ox_tmp(x, p, "a_z"),
                       *ar = ox_tmp(x, p, "a_r"), *cand = ox_tmp(x, p, "cand"), *hh = ox_tmp(x, p, "hh"),
                       *rterm = ox_tmp(x, p, "r_term");
            ox_op2(x, "Add", zz, xg[0], rg[0]);
            ox_op2(x, "Add", zr, xg[1], rg[1]);
            if (!loom_onnx_activation(e, c, ract, zz, az) || !loom_onnx_activation(e, c, ract, zr, ar)) return false;
            if (reset_after) {
                ox_op2(x, "Mul", rterm, ar, rg[2]);
            } else {
                const char *rh = ox_tmp(x, p, "r_h_prev");
                ox_op2(x, "Mul", rh, ar, h);
                ox_op2(x, "MatMul", rterm, rh, Rh);
            }
            ox_op2(x, "Add", cand, xg[2], rterm);
            if (!loom_onnx_activation(e, c, act, cand, hh)) return false;
            const char *zh = ox_tmp(x, p, "z_h"), *omz = ox_tmp(x, p, "one_minus_z"), *ohh = ox_tmp(x, p, "omz_hh");
            ox_op2(x, "Mul", zh, az, h);
            ox_op2(x, "Sub", omz, one, az);
            ox_op2(x, "Mul", ohh, omz, hh);
            ox_op2(x, "Add", hn, zh, ohh);
        }
        if (mask3) { /* a padded step carries the state */
            const char *mt = ox_tmp(x, p, "valid"), *hk = ox_tmp(x, p, "h");
            ox_attr_int(x, ox_op2(x, "Gather", mt, mask3, ti), "axis", 1);
            ox_node(x, "Where", 3, (const char *[]){mt, hn, h}, 1, &hk);
            if (cn) {
                const char *ck = ox_tmp(x, p, "c");
                ox_node(x, "Where", 3, (const char *[]){mt, cn, cs}, 1, &ck);
                cn = ck;
            }
            if (zero_out) {
                const char *o = ox_tmp(x, p, "out");
                ox_node(x, "Where", 3, (const char *[]){mt, hn, zeros}, 1, &o);
                step_out[s] = o;
            } else {
                step_out[s] = hk;
            }
            hn = hk;
        } else {
            step_out[s] = hn;
        }
        h = hn;
        if (cn) cs = cn;
    }
    *last = h;
    *last_c = lstm ? cs : NULL;
#undef NAME
    return true;
}

/* (batch, units) step outputs -> (batch, steps, units), in the order given (reversed: last first). */
static void stack_steps(onnx_exporter *e, const char *tag, int T, const char *const *steps, bool reversed, const char *out) {
    ox *x = &e->x;
    const char **u = malloc((size_t)T * sizeof *u);
    if (!u) {
        e->x.failed = true;
        return;
    }
    const char *axis = ox_int64s(x, ox_tmp(x, tag, "step_axis"), 1, (int64_t[]){1});
    for (int s = 0; s < T; s++) {
        u[s] = ox_str(x, "%s/stacked%d", tag, s);
        ox_op2(x, "Unsqueeze", u[s], steps[reversed ? T - 1 - s : s], axis);
    }
    ox_attr_int(x, ox_node(x, "Concat", T, u, 1, &out), "axis", 1);
    free(u);
}

/* return_state: c->out (batch, rows, units) from the output rows and the final states, each
 * (batch, rows, units) already. */
static void concat_states(onnx_exporter *e, const onnx_call *c, const char *rows, const char *h, const char *cs) {
    const char *parts[3] = {rows, h, cs};
    ox_attr_int(&e->x, ox_node(&e->x, "Concat", cs ? 3 : 2, parts, 1, &c->out), "axis", 1);
}

/* (batch, units) -> (batch, 1, units) */
static const char *one_row(onnx_exporter *e, const onnx_call *c, const char *in, const char *suffix) {
    const char *out = loom_onnx_tmp(e, c, suffix);
    ox_op2(&e->x, "Unsqueeze", out, in, loom_onnx_ints(e, c, ox_str(&e->x, "%s_axis", suffix), 1, (int64_t[]){1}));
    return out;
}

/* A recurrent layer (ndir 1, with its initial states and return_state) or a Bidirectional one
 * (ndir 2) unrolled. */
static bool emit_unrolled(onnx_exporter *e, const onnx_call *c, int ndir, const loom_layer *const *dirs, const float *const *w,
                          int merge_mode) {
    ox *x = &e->x;
    const int T = c->in_shape[0].dims[0];
    const bool seq = dirs[0]->iarg[RNN_SEQ], state = ndir == 1 && dirs[0]->iarg[RNN_STATE];
    const char *h0 = ndir == 1 && c->n_in > 1 ? c->in[1] : NULL, *c0 = ndir == 1 && c->n_in > 2 ? c->in[2] : NULL;
    if (T == LOOM_DIM_VARIABLE)
        return loom_onnx_fail(e, c->L, "%s",
                              "a Keras mask or an activation ONNX's recurrent operators lack needs the steps unrolled, "
                              "which needs a fixed number of steps");
    e->steps_baked = true;
    const char *mask3 = NULL;
    if (c->mask) {
        mask3 = loom_onnx_tmp(e, c, "mask3");
        ox_op2(x, "Unsqueeze", mask3, c->mask, loom_onnx_ints(e, c, "mask_axis", 1, (int64_t[]){2}));
    }
    const char **steps = calloc((size_t)2 * T, sizeof *steps);
    if (!steps) {
        e->x.failed = true;
        return true;
    }
    const char *last[2], *last_c[2], *res[2];
    bool ok = true;
    for (int d = 0; d < ndir && ok; d++) {
        const char *tag = ndir == 1 ? c->out : loom_onnx_tmp(e, c, d ? "backward" : "forward");
        ok = unroll_direction(e, c, dirs[d], w[d], mask3, tag, h0, c0, steps + (size_t)d * T, &last[d], &last_c[d]);
        if (!ok) break;
        if (seq) {
            /* one layer returns its processed order (Keras); Bidirectional puts the backward one
             * back in time order */
            res[d] = ndir == 1 && !state ? c->out : ox_tmp(x, tag, "sequence");
            stack_steps(e, tag, T, steps + (size_t)d * T, ndir == 2 && d == 1, res[d]);
        } else {
            res[d] = last[d];
        }
    }
    free(steps);
    if (!ok) return false;
    if (state) {
        concat_states(e, c, seq ? res[0] : one_row(e, c, res[0], "last_row"), one_row(e, c, last[0], "h_row"),
                      last_c[0] ? one_row(e, c, last_c[0], "c_row") : NULL);
        return true;
    }
    if (ndir == 1) {
        if (!seq) ox_op1(x, "Identity", c->out, res[0]);
        return true;
    }
    if (merge_mode == LOOM_MERGE_CONCAT)
        ox_attr_int(x, ox_node(x, "Concat", 2, res, 1, &c->out), "axis", -1);
    else if (merge_mode == LOOM_MERGE_SUM)
        ox_op2(x, "Add", c->out, res[0], res[1]);
    else if (merge_mode == LOOM_MERGE_MUL)
        ox_op2(x, "Mul", c->out, res[0], res[1]);
    else {
        const char *sum = loom_onnx_tmp(e, c, "sum");
        ox_op2(x, "Add", sum, res[0], res[1]);
        ox_op2(x, "Mul", c->out, ox_scalar(x, loom_onnx_tmp(e, c, "half"), 0.5f), sum);
    }
    return true;
}


/* Reverses axis 1 (time) of a (batch, steps, ...) tensor. */
static void reverse_time(onnx_exporter *e, const onnx_call *c, const char *out, const char *in) {
    const char *s[5] = {in, loom_onnx_ints(e, c, "rev_starts", 1, (int64_t[]){-1}),
                        loom_onnx_ints(e, c, "rev_ends", 1, (int64_t[]){INT64_MIN}), loom_onnx_ints(e, c, "rev_axes", 1, (int64_t[]){1}),
                        loom_onnx_ints(e, c, "rev_steps", 1, (int64_t[]){-1})};
    ox_node(&e->x, "Slice", 5, s, 1, &out);
}

bool loom_onnx_recurrent(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L;
    if (L->iarg[RNN_STATEFUL]) /* an ONNX graph keeps nothing from one run to the next */
        return loom_onnx_fail(e, L, "%s", "stateful: ONNX cannot carry the states from one batch to the next");
    if (c->mask || !can_use_onnx_rnn(L)) return emit_unrolled(e, c, 1, &L, &c->w, 0);
    bool seq = L->iarg[RNN_SEQ], state = L->iarg[RNN_STATE], lstm = L->op == &loom_op_lstm;
    const char *xt = loom_onnx_tmp(e, c, "time_major"), *y = loom_onnx_tmp(e, c, "Y"), *yh = loom_onnx_tmp(e, c, "Y_h");
    const char *yc = state && lstm ? loom_onnx_tmp(e, c, "Y_c") : NULL;
    loom_onnx_transpose(e, xt, c->in[0], 3, (int64_t[]){1, 0, 2});
    /* initial states: (batch, units) -> (1 direction, batch, units) */
    const char *init[2] = {NULL, NULL}, *state_axis = c->n_in > 1 ? loom_onnx_ints(e, c, "state_axis", 1, (int64_t[]){0}) : NULL;
    for (int i = 0; i + 1 < c->n_in && i < 2; i++) {
        init[i] = loom_onnx_tmp(e, c, i ? "initial_c" : "initial_h");
        ox_op2(&e->x, "Unsqueeze", init[i], c->in[1 + i], state_axis);
    }
    if (!emit_rnn_node(e, c, 1, &L, &c->w, L->iarg[RNN_BACK] ? "reverse" : "forward", xt, init[0], init[1], y, yh, yc))
        return false;
    /* return_state: the final states as rows (1, batch, units) -> (batch, 1, units) */
    const char *h_row = state ? loom_onnx_tmp(e, c, "h_row") : NULL, *c_row = yc ? loom_onnx_tmp(e, c, "c_row") : NULL;
    if (h_row) loom_onnx_transpose(e, h_row, yh, 3, (int64_t[]){1, 0, 2});
    if (c_row) loom_onnx_transpose(e, c_row, yc, 3, (int64_t[]){1, 0, 2});
    if (!seq) {
        if (state) concat_states(e, c, h_row, h_row, c_row); /* the output is h_T too */
        else ox_op2(&e->x, "Squeeze", c->out, yh, loom_onnx_ints(e, c, "dir_axis", 1, (int64_t[]){0}));
        return true;
    }
    const char *rows = state ? loom_onnx_tmp(e, c, "sequence") : c->out;
    const char *sq = loom_onnx_tmp(e, c, "Y_squeezed"), *bt = L->iarg[RNN_BACK] ? loom_onnx_tmp(e, c, "Y_time_order") : rows;
    ox_op2(&e->x, "Squeeze", sq, y, loom_onnx_ints(e, c, "dir_axis", 1, (int64_t[]){1}));
    loom_onnx_transpose(e, bt, sq, 3, (int64_t[]){1, 0, 2});
    /* Keras returns a backwards layer's outputs in the order it processed them */
    if (L->iarg[RNN_BACK]) reverse_time(e, c, rows, bt);
    if (state) concat_states(e, c, rows, h_row, c_row);
    return true;
}

/* RecurrentOutput k of a return_state layer with S states (layer_rnn.c): k 0 with sequences the
 * rows [0, rows - S), else one row, counted from the end for a state, as (batch, units). */
bool loom_onnx_recurrent_output(onnx_exporter *e, const onnx_call *c) {
    int k = c->L->iarg[0], S = c->L->iarg[1];
    if (k == 0 && c->L->iarg[2]) {
        const char *in[4] = {c->in[0], loom_onnx_ints(e, c, "starts", 1, (int64_t[]){0}),
                             loom_onnx_ints(e, c, "ends", 1, (int64_t[]){-S}), loom_onnx_ints(e, c, "axes", 1, (int64_t[]){1})};
        ox_node(&e->x, "Slice", 4, in, 1, &c->out);
    } else {
        const char *row = ox_int64_scalar(&e->x, loom_onnx_tmp(e, c, "row"), k == 0 ? 0 : k - 1 - S);
        ox_attr_int(&e->x, ox_op2(&e->x, "Gather", c->out, c->in[0], row), "axis", 1);
    }
    return true;
}

bool loom_onnx_bidirectional(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L, *fw = L->inner[0], *bw = L->inner[1];
    bool seq = fw->iarg[RNN_SEQ];
    int mode = L->iarg[0];
    size_t fw_size = 0;
    for (int i = 0; i < L->n_weights / 2; i++) fw_size += loom_shape_size(&L->weights[i].shape);
    const loom_layer *dirs[2] = {fw, bw};
    const float *w[2] = {c->w, c->w + fw_size};
    if (c->mask || !can_use_onnx_rnn(fw)) return emit_unrolled(e, c, 2, dirs, w, mode);
    const char *xt = loom_onnx_tmp(e, c, "time_major"), *y = loom_onnx_tmp(e, c, "Y"), *yh = loom_onnx_tmp(e, c, "Y_h");
    loom_onnx_transpose(e, xt, c->in[0], 3, (int64_t[]){1, 0, 2});
    if (!emit_rnn_node(e, c, 2, dirs, w, "bidirectional", xt, NULL, NULL, y, yh, NULL)) return false;
    /* batch-major with the direction axis just before the units: (batch, [steps,] 2, units) */
    const char *bm = loom_onnx_tmp(e, c, "batch_major");
    if (seq) loom_onnx_transpose(e, bm, y, 4, (int64_t[]){2, 0, 1, 3});
    else loom_onnx_transpose(e, bm, yh, 3, (int64_t[]){1, 0, 2});
    int64_t dir_axis = seq ? 2 : 1;
    if (mode == LOOM_MERGE_CONCAT) {
        int64_t shape[3] = {0, seq ? 0 : -1, -1};
        ox_op2(&e->x, "Reshape", c->out, bm, loom_onnx_ints(e, c, "concat_shape", seq ? 3 : 2, shape));
    } else if (mode == LOOM_MERGE_SUM) {
        Onnx__NodeProto *n = ox_op2(&e->x, "ReduceSum", c->out, bm, loom_onnx_ints(e, c, "dir_axes", 1, &dir_axis));
        ox_attr_int(&e->x, n, "keepdims", 0);
    } else {
        Onnx__NodeProto *n = ox_op1(&e->x, mode == LOOM_MERGE_MUL ? "ReduceProd" : "ReduceMean", c->out, bm);
        ox_attr_ints(&e->x, n, "axes", 1, &dir_axis);
        ox_attr_int(&e->x, n, "keepdims", 0);
    }
    return true;
}

#else
typedef int loom_onnx_recurrent_unused; /* ISO C wants a translation unit to declare something */
#endif
