/* test_rnn_state.c — recurrent_dropout and stateful recurrent layers (issue 16 part 5;
 * src/layers/layer_rnn.c):
 *   - recurrent_dropout: central differences (op_harness.h) in training for every kind (GRU
 *     reset_after and reset_before), with initial states in and return_state out, with and
 *     without return_sequences and masks; the mask's effect seen from outside (each sample's
 *     output is the rate-0 layer's with its recurrent-kernel rows scaled by exactly one pattern in
 *     {0, 1/(1-rate)}^units, about `rate` of them dropped; inference drops nothing, bit for bit);
 *     a model file (same training gradients after loading) and a Keras .keras file keep the rate;
 *     Bidirectional's two directions draw different masks;
 *   - stateful: a sequence of 2T steps fed as two batches of T continues as one (= the plain layer on
 *     2T steps); reset_states starts again from zero; the second batch's gradients are the plain
 *     layer's started from the carried states; a .loom file and a .keras file (batch size in the
 *     Input's batch_shape) keep it; a larger batch, a wrapped stateful layer and TensorFlow.js
 *     export are refused. */
#include "check.h"
#include "op_harness.h"
#include "layers/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { T = 5, F = 3, U = 4 };

static loom_layer *make_rnn(loom_graph *g, const char *name, int kind, int units, const loom_rnn_options *o) {
    return kind == 1 ? loom_lstm(g, name, units, o) : kind == 2 ? loom_gru(g, name, units, o)
                                                     : loom_simple_rnn(g, name, units, o);
}

static void run_masked(op_harness *H, const float *mask, bool backward) {
    if (!backward)
        for (size_t i = 0; i < H->out_n; i++) H->out[i] = NAN;
    loom_op_ctx c = oph_ctx(H, H->din, backward && H->n_w ? H->dw : NULL);
    c.in_mask = mask;
    if (backward)
        H->L->op->backward(H->L, &c);
    else
        H->L->op->forward(H->L, &c);
}

/* Central differences of sum(dout * y) over every input and weight, with an optional mask. */
static int masked_grad_check(op_harness *H, const char *label, const float *mask) {
    run_masked(H, mask, false);
    for (int i = 0; i < H->n_in; i++) memset(H->din[i], 0, H->in_n[i] * sizeof(float));
    memset(H->dw, 0, H->n_w * sizeof(float));
    run_masked(H, mask, true);
    oph_tol tol = oph_default_tol();
    int bad = 0;
    for (int s = 0; s <= H->n_in; s++) {
        float *set = s < H->n_in ? H->in[s] : H->w, *grad = s < H->n_in ? H->din[s] : H->dw;
        size_t n = s < H->n_in ? H->in_n[s] : H->n_w;
        for (size_t j = 0; j < n; j++) {
            float v = set[j], vp = (float)(v + tol.h), vm = (float)(v - tol.h);
            set[j] = vp;
            run_masked(H, mask, false);
            double fp = oph_objective(H);
            set[j] = vm;
            run_masked(H, mask, false);
            double fm = oph_objective(H);
            set[j] = v;
            bad += oph_compare(label, s < H->n_in ? "din" : "dw", s, j, grad[j], (fp - fm) / ((double)vp - (double)vm),
                               &tol, bad);
        }
    }
    CHECK(bad == 0);
    return bad;
}

/* ---------------------------------------------------------------- recurrent_dropout */

/* In training the mask is keyed by the step's seed, so every forward of the differences draws the
 * same one; the gradients must follow it (h_prev * mask into the recurrent products). */
static void test_recurrent_dropout_gradients(void) {
    const float holes[3 * T] = {1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1};
    for (int kind = 0; kind < 4; kind++)
        for (int variant = 0; variant < 4; variant++) {
            int seq = variant & 1, masked = variant >> 1 & 1, k = kind == 3 ? 2 : kind;
            loom_graph *g = loom_graph_new(3);
            loom_rnn_options o = loom_rnn_defaults();
            o.return_sequences = seq;
            o.recurrent_dropout = 0.4f;
            o.reset_after = kind != 3;
            loom_layer *L = make_rnn(g, NULL, k, U, &o);
            L->iarg[RNN_STATE] = 1;
            int ns = k == 1 ? 2 : 1;
            loom_shape in[3] = {{2, {T, 2}}, {1, {U}}, {1, {U}}};
            char label[96];
            snprintf(label, sizeof label, "recurrent_dropout %s%s seq %d mask %d", L->op->class_name,
                     kind == 3 ? " reset_before" : "", seq, masked);
            op_harness H;
            bool ok = oph_init(&H, L, 1 + ns, in, 3, 1, 13) == LOOM_OK;
            CHECK(ok);
            if (ok) masked_grad_check(&H, label, masked ? holes : NULL);
            oph_free(&H);
            loom_graph_free(g);
        }
}

/* What the mask does, seen from outside: (h*m).R = h.(diag(m) R). */
static void test_recurrent_dropout_mask(void) {
    enum { NB = 32, UU = 3 };
    const float rate = 0.5f, keep = 1.0f / (1.0f - rate);
    for (int kind = 0; kind < 4; kind++) {
        int k = kind == 3 ? 2 : kind;
        loom_graph *g = loom_graph_new(4);
        loom_rnn_options o = loom_rnn_defaults();
        o.recurrent_dropout = rate;
        o.reset_after = kind != 3;
        loom_layer *L = make_rnn(g, NULL, k, UU, &o);
        o.recurrent_dropout = 0;
        loom_layer *P = make_rnn(g, NULL, k, UU, &o);
        loom_shape in = {2, {T, F}};
        op_harness H, Q, Q1;
        bool ok = oph_init(&H, L, 1, &in, NB, 1, 17) == LOOM_OK && oph_init(&Q, P, 1, &in, NB, 0, 17) == LOOM_OK &&
                  oph_init(&Q1, P, 1, &in, 1, 0, 17) == LOOM_OK;
        CHECK(ok);
        if (ok) {
            const int G = k == 1 ? 4 : k == 2 ? 3 : 1;
            const size_t kn = (size_t)F * G * UU;
            memcpy(Q.in[0], H.in[0], H.in_n[0] * sizeof(float));
            memcpy(Q.w, H.w, H.n_w * sizeof(float));
            H.training = 0; /* inference: the plain layer's outputs, bit for bit */
            oph_forward(&H);
            oph_forward(&Q);
            CHECK(memcmp(H.out, Q.out, H.out_n * sizeof(float)) == 0);
            H.training = 1;
            oph_forward(&H);
            int unique = 0, dropped = 0;
            for (int b = 0; b < NB; b++) {
                memcpy(Q1.in[0], H.in[0] + (size_t)b * T * F, (size_t)T * F * sizeof(float));
                int matches = 0, drop_b = 0;
                for (int pat = 0; pat < 1 << UU; pat++) {
                    memcpy(Q1.w, H.w, H.n_w * sizeof(float));
                    for (int u = 0; u < UU; u++)
                        for (int col = 0; col < G * UU; col++)
                            Q1.w[kn + (size_t)u * G * UU + col] *= (pat >> u & 1) ? keep : 0.0f;
                    oph_forward(&Q1);
                    bool same = true;
                    for (int u = 0; u < UU; u++) same = same && fabsf(Q1.out[u] - H.out[b * UU + u]) <= 1e-5f;
                    if (same) {
                        matches++;
                        drop_b = UU - __builtin_popcount((unsigned)pat);
                    }
                }
                unique += matches == 1;
                dropped += drop_b;
            }
            if (unique != NB) fprintf(stderr, "  recurrent_dropout %d: %d of %d samples match one mask\n", kind, unique, NB);
            CHECK(unique == NB);
            CHECK(dropped > NB * UU / 4 && dropped < NB * UU * 3 / 4);
        }
        oph_free(&H);
        oph_free(&Q);
        oph_free(&Q1);
        loom_graph_free(g);
    }
}

static float xs[8 * T * F], ys[8 * U];

static loom_model *dropout_model(float rate, bool bidirectional) {
    loom_graph *g = loom_graph_new(9);
    int shape[2] = {T, F};
    loom_tensor *x = loom_input(g, "x", 2, shape);
    loom_rnn_options o = loom_rnn_defaults();
    o.recurrent_dropout = rate;
    loom_layer *r = loom_gru(g, "y", bidirectional ? U / 2 : U, &o);
    loom_tensor *y = loom_call(bidirectional ? loom_bidirectional(g, "bi", r, LOOM_MERGE_CONCAT) : r, x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    loom_loss l = {.name = "mse"};
    loom_compile_config cc = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK(m && loom_compile(m, &cc) == LOOM_OK);
    return m;
}

/* The rate survives a model file and a Keras file: the loaded .loom model's training gradients
 * (same seed, same node positions, so the same masks) are the saved one's; both differ from rate
 * 0's. */
static void test_recurrent_dropout_files(void) {
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) xs[i] = loom_uniform01(3, i) - 0.5f;
    for (size_t i = 0; i < sizeof ys / sizeof *ys; i++) ys[i] = loom_uniform01(4, i) - 0.5f;
    loom_array xa = {.name = "x", .data = xs, .n = 8, .count = 8 * T * F}, ya = {.name = "y", .data = ys, .n = 8, .count = 8 * U};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    const char *exts[2] = {".loom", ".keras"};
    for (int e = 0; e < 2; e++) {
        loom_model *m = dropout_model(0.3f, false), *z = dropout_model(0.0f, false);
        if (!m || !z) {
            loom_model_free(m);
            loom_model_free(z);
            continue;
        }
        char path[64];
        snprintf(path, sizeof path, "/tmp/loom_rdrop_%d%s", (int)getpid(), exts[e]);
        size_t n = loom_param_count(m);
        memcpy(loom_params(z), loom_params(m), n * sizeof(float));
        CHECK_STATUS(loom_model_export(m, path), LOOM_OK);
        char err[256] = "";
        loom_model *r = loom_model_import(path, err, sizeof err);
        if (!r) fprintf(stderr, "  import %s: %s\n", path, err);
        CHECK(r != NULL);
        float *gr[3];
        for (int i = 0; i < 3; i++) gr[i] = calloc(n, sizeof(float));
        if (r) {
            loom_loss l = {.name = "mse"};
            loom_compile_config cc = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.01f, 0, 0)};
            CHECK_STATUS(loom_compile(r, &cc), LOOM_OK);
            CHECK(loom_param_count(r) == n);
            memcpy(loom_params(r), loom_params(m), n * sizeof(float));
            CHECK_STATUS(loom_gradients(r, &d, 0, NULL, gr[2], NULL), LOOM_OK);
            loom_layer *ry = loom_model_find_layer(r, "y");
            CHECK(ry && ry->farg[0] == 0.3f);
        }
        CHECK_STATUS(loom_gradients(m, &d, 0, NULL, gr[0], NULL), LOOM_OK);
        CHECK_STATUS(loom_gradients(z, &d, 0, NULL, gr[1], NULL), LOOM_OK);
        /* a .keras file keeps no graph seed (the masks then differ): the rate shows in the
         * gradients differing from rate 0's at the same weights */
        if (e == 0) CHECK(r && memcmp(gr[0], gr[2], n * sizeof(float)) == 0);
        else CHECK(r && memcmp(gr[2], gr[1], n * sizeof(float)) != 0);
        CHECK(memcmp(gr[0], gr[1], n * sizeof(float)) != 0);
        for (int i = 0; i < 3; i++) free(gr[i]);
        loom_model_free(r);
        loom_model_free(m);
        loom_model_free(z);
        unlink(path);
    }
    /* out of range: refused, naming the layer */
    loom_graph *g = loom_graph_new(1);
    loom_rnn_options o = loom_rnn_defaults();
    o.recurrent_dropout = 1.0f;
    CHECK(loom_lstm(g, "bad", U, &o) == NULL);
    CHECK(strstr(loom_graph_error(g), "bad") && strstr(loom_graph_error(g), "recurrent_dropout"));
    loom_graph_free(g);
}

/* Bidirectional: the two directions draw their own masks. Both directions with the same weights
 * on a palindrome sequence give equal halves in inference; in training they differ (the same mask
 * would keep them equal). Central differences through both directions in training. */
static void test_bidirectional_masks(void) {
    enum { NB = 4, UB = 3 };
    loom_graph *g = loom_graph_new(5);
    loom_rnn_options o = loom_rnn_defaults();
    o.recurrent_dropout = 0.5f;
    loom_layer *bi = loom_bidirectional(g, "bi", loom_lstm(g, NULL, UB, &o), LOOM_MERGE_CONCAT);
    CHECK(bi && bi->inner[1] && bi->inner[1]->farg[0] == 0.5f);
    loom_shape in = {2, {T, F}};
    op_harness H;
    if (bi && oph_init(&H, bi, 1, &in, NB, 1, 21) == LOOM_OK) {
        size_t half = H.n_w / 2;
        memcpy(H.w + half, H.w, half * sizeof(float));
        for (int b = 0; b < NB; b++)
            for (int t = 0; t < T; t++)
                memcpy(H.in[0] + ((size_t)b * T + t) * F, H.in[0] + ((size_t)b * T + (T - 1 - t < t ? T - 1 - t : t)) * F,
                       F * sizeof(float));
        H.training = 0;
        oph_forward(&H);
        int same = 0;
        for (int b = 0; b < NB; b++) same += memcmp(H.out + b * 2 * UB, H.out + b * 2 * UB + UB, UB * sizeof(float)) == 0;
        CHECK(same == NB);
        H.training = 1;
        oph_forward(&H);
        same = 0;
        for (int b = 0; b < NB; b++) same += memcmp(H.out + b * 2 * UB, H.out + b * 2 * UB + UB, UB * sizeof(float)) == 0;
        CHECK(same < NB);
        masked_grad_check(&H, "Bidirectional(LSTM) recurrent_dropout", NULL);
    }
    oph_free(&H);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- stateful */

/* stateful through the public API: a sequence of 2T steps fed as two batches of T continues as one
 * sequence (= the plain layer on 2T steps); reset_states starts again from zero; a model file
 * keeps stateful and its batch size; a larger batch is refused naming the layer. */
static void test_stateful_model(void) {
    enum { SB = 6 };
    static float full[SB * 2 * T * F], half[2][SB * T * F];
    for (size_t i = 0; i < sizeof full / sizeof *full; i++) full[i] = 2.0f * loom_uniform01(41, i) - 1.0f;
    for (int b = 0; b < SB; b++)
        for (int h = 0; h < 2; h++)
            memcpy(half[h] + (size_t)b * T * F, full + ((size_t)b * 2 * T + (size_t)h * T) * F, (size_t)T * F * sizeof(float));
    for (int kind = 0; kind < 3; kind++) {
        loom_graph *g = loom_graph_new(12);
        int sh[2] = {T, F}, lh[2] = {2 * T, F};
        loom_rnn_options o = loom_rnn_defaults();
        o.stateful = 1;
        o.batch_size = SB;
        o.return_sequences = 1;
        loom_tensor *x = loom_input(g, "x", 2, sh), *xl = loom_input(g, "xl", 2, lh);
        loom_layer *S = make_rnn(g, "s", kind, U, &o);
        o.stateful = 0;
        loom_layer *P = make_rnn(g, "p", kind, U, &o);
        loom_tensor *ys = loom_call(S, x), *yp = loom_call(P, xl);
        loom_model *ms = loom_model_new(g, 1, &x, 1, &ys), *mp = loom_model_new(g, 1, &xl, 1, &yp);
        CHECK(ms && mp);
        if (!ms || !mp) {
            fprintf(stderr, "  stateful: %s\n", loom_graph_error(g));
            loom_model_free(ms);
            loom_model_free(mp);
            continue;
        }
        for (int w = 0; w < loom_layer_num_weights(S); w++) {
            size_t n = loom_layer_weight_size(S, w);
            CHECK_STATUS(loom_set_weights(mp, "p", w, loom_params(ms) + loom_param_offset(ms, "s", w), n), LOOM_OK);
        }
        static float ylong[SB * 2 * T * U], y1[SB * T * U], y2[SB * T * U], again[SB * T * U];
        float *py;
        loom_array al = {.name = "xl", .data = full, .n = SB, .count = SB * 2 * T * F};
        loom_array a1 = {.name = "x", .data = half[0], .n = SB, .count = SB * T * F};
        loom_array a2 = {.name = "x", .data = half[1], .n = SB, .count = SB * T * F};
        py = ylong;
        CHECK_STATUS(loom_predict(mp, 1, &al, SB, &py), LOOM_OK);
        py = y1;
        CHECK_STATUS(loom_predict(ms, 1, &a1, SB, &py), LOOM_OK);
        py = y2;
        CHECK_STATUS(loom_predict(ms, 1, &a2, SB, &py), LOOM_OK);
        int bad = 0;
        for (int b = 0; b < SB; b++)
            for (int t = 0; t < T; t++)
                for (int u = 0; u < U; u++) {
                    float l1 = ylong[((size_t)b * 2 * T + t) * U + u], l2 = ylong[((size_t)b * 2 * T + T + t) * U + u];
                    bad += fabsf(l1 - y1[((size_t)b * T + t) * U + u]) > 1e-6f;
                    bad += fabsf(l2 - y2[((size_t)b * T + t) * U + u]) > 1e-6f;
                }
        if (bad) fprintf(stderr, "  stateful kind %d: %d outputs differ from the 2T-step run\n", kind, bad);
        CHECK(bad == 0);
        /* reset_states: the first half again gives the first outputs, bit for bit */
        CHECK_STATUS(loom_model_reset_states(ms), LOOM_OK);
        py = again;
        CHECK_STATUS(loom_predict(ms, 1, &a1, SB, &py), LOOM_OK);
        CHECK(memcmp(again, y1, sizeof y1) == 0);
        CHECK_STATUS(loom_layer_reset_states(S), LOOM_OK);
        CHECK(loom_layer_reset_states(P) != LOOM_OK);
        /* too large a batch */
        float *big = calloc((size_t)(SB + 1) * T * F, sizeof(float)), *by = calloc((size_t)(SB + 1) * T * U, sizeof(float));
        loom_array ab = {.name = "x", .data = big, .n = SB + 1, .count = (size_t)(SB + 1) * T * F};
        CHECK(loom_predict(ms, 1, &ab, SB + 1, &by) != LOOM_OK);
        CHECK(strstr(loom_model_error(ms), "s (") != NULL && strstr(loom_model_error(ms), "stateful") != NULL);
        /* the model file keeps stateful and the batch size */
        char path[] = "/tmp/loom_stateful_XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) close(fd);
        loom_loss l = {.name = "mse"};
        loom_compile_config cc = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(ms, &cc), LOOM_OK);
        CHECK_STATUS(loom_model_save(ms, path), LOOM_OK);
        char err[256] = "";
        loom_model *r = loom_model_load(path, err, sizeof err);
        if (!r) fprintf(stderr, "  stateful load: %s\n", err);
        CHECK(r != NULL);
        if (r) {
            py = again;
            CHECK_STATUS(loom_predict(r, 1, &a1, SB, &py), LOOM_OK);
            CHECK(memcmp(again, y1, sizeof y1) == 0);
            CHECK_STATUS(loom_predict(r, 1, &a2, SB, &py), LOOM_OK);
            CHECK(memcmp(again, y2, sizeof y2) == 0);
            CHECK(loom_predict(r, 1, &ab, SB + 1, &by) != LOOM_OK);
            loom_model_free(r);
        }
        unlink(path);
        free(big);
        free(by);
        /* a Keras file: stateful, its batch in the Input's batch_shape */
        char kpath[64];
        snprintf(kpath, sizeof kpath, "/tmp/loom_stateful_%d.keras", (int)getpid());
        CHECK_STATUS(loom_model_reset_states(ms), LOOM_OK);
        if (loom_model_export(ms, kpath) != LOOM_OK) fprintf(stderr, "  stateful .keras export: %s\n", loom_model_error(ms));
        r = loom_model_import(kpath, err, sizeof err);
        if (!r) fprintf(stderr, "  stateful .keras import: %s\n", err);
        CHECK(r != NULL);
        if (r) {
            loom_layer *rs = loom_model_find_layer(r, "s");
            CHECK(rs && rs->iarg[RNN_STATEFUL] == 1 && rs->iarg[RNN_SBATCH] == SB);
            py = again;
            CHECK_STATUS(loom_predict(r, 1, &a1, SB, &py), LOOM_OK);
            CHECK(memcmp(again, y1, sizeof y1) == 0);
            CHECK_STATUS(loom_predict(r, 1, &a2, SB, &py), LOOM_OK);
            CHECK(memcmp(again, y2, sizeof y2) == 0);
            loom_model_free(r);
        }
        unlink(kpath);
        /* TensorFlow.js: refused, naming the layer */
        char tpath[64];
        snprintf(tpath, sizeof tpath, "/tmp/loom_stateful_%d_model.json", (int)getpid());
        CHECK(loom_model_export(ms, tpath) != LOOM_OK);
        /* (a GRU is refused first for its reset_after) */
        const char *why = kind == 2 ? "layer s is a GRU" : "layer s is stateful";
        if (!strstr(loom_model_error(ms), why)) fprintf(stderr, "  tfjs: %s\n", loom_model_error(ms));
        CHECK(strstr(loom_model_error(ms), why) != NULL);
        unlink(tpath);
        loom_model_free(ms);
        loom_model_free(mp);
    }
}

/* A stateful layer's gradients on its second batch are those of the plain layer started from the
 * carried states as initial_state (whose gradients the central differences above check), and no
 * gradient goes into the carried states. */
static void test_stateful_gradients(void) {
    for (int kind = 0; kind < 3; kind++) {
        loom_graph *g = loom_graph_new(5);
        loom_rnn_options o = loom_rnn_defaults();
        o.stateful = 1;
        o.batch_size = 3;
        loom_layer *S = make_rnn(g, NULL, kind, 3, &o);
        o.stateful = 0;
        loom_layer *P = make_rnn(g, NULL, kind, 3, &o);
        int ns = kind == 1 ? 2 : 1;
        loom_shape in[3] = {{2, {T, 2}}, {1, {3}}, {1, {3}}};
        op_harness Hs, Hp;
        bool ok = oph_init(&Hs, S, 1, in, 3, 1, 19) == LOOM_OK && oph_init(&Hp, P, 1 + ns, in, 3, 1, 19) == LOOM_OK;
        CHECK(ok);
        if (ok) {
            memcpy(Hp.w, Hs.w, Hs.n_w * sizeof(float));
            memcpy(Hp.dout, Hs.dout, Hs.out_n * sizeof(float));
            oph_forward(&Hs); /* batch 1: its final states are carried */
            const float *carry = S->user;
            memcpy(Hp.in[1], carry, Hp.in_n[1] * sizeof(float));
            if (ns == 2) memcpy(Hp.in[2], carry + 9, Hp.in_n[2] * sizeof(float));
            for (size_t i = 0; i < Hs.in_n[0]; i++) Hs.in[0][i] = Hp.in[0][i] = 0.5f - loom_uniform01(23, i);
            oph_forward(&Hs);
            oph_forward(&Hp);
            CHECK(memcmp(Hs.out, Hp.out, Hs.out_n * sizeof(float)) == 0);
            memset(Hs.din[0], 0, Hs.in_n[0] * sizeof(float));
            memset(Hp.din[0], 0, Hp.in_n[0] * sizeof(float));
            memset(Hs.dw, 0, Hs.n_w * sizeof(float));
            memset(Hp.dw, 0, Hp.n_w * sizeof(float));
            oph_backward(&Hs);
            oph_backward(&Hp);
            CHECK(memcmp(Hs.din[0], Hp.din[0], Hs.in_n[0] * sizeof(float)) == 0);
            CHECK(memcmp(Hs.dw, Hp.dw, Hs.n_w * sizeof(float)) == 0);
            bool any = false;
            for (size_t i = 0; i < Hs.n_w; i++) any = any || Hs.dw[i] != 0.0f;
            CHECK(any);
        }
        oph_free(&Hs);
        oph_free(&Hp);
        loom_graph_free(g);
    }
}


static void test_stateful_errors(void) {
    /* stateful needs a batch size; it cannot be wrapped */
    loom_rnn_options so = loom_rnn_defaults();
    loom_graph *g;
    so.stateful = 1;
    g = loom_graph_new(1);
    CHECK(loom_lstm(g, "st", U, &so) == NULL && strstr(loom_graph_error(g), "st (LSTM)") &&
          strstr(loom_graph_error(g), "batch_size"));
    loom_graph_free(g);
    so.batch_size = 4;
    g = loom_graph_new(1);
    CHECK(loom_bidirectional(g, "bi", loom_gru(g, "st", U, &so), LOOM_MERGE_CONCAT) == NULL);
    CHECK(strstr(loom_graph_error(g), "stateful") != NULL);
    loom_graph_free(g);
}

int main(void) {
    test_recurrent_dropout_gradients();
    test_recurrent_dropout_mask();
    test_recurrent_dropout_files();
    test_bidirectional_masks();
    test_stateful_model();
    test_stateful_gradients();
    test_stateful_errors();
    return check_report("test_rnn_state");
}
