/* test_rnn_state.c — recurrent_dropout and stateful recurrent layers (issue 16 part 5;
 * src/layers/layer_rnn.c):
 *   - recurrent_dropout: central differences (op_harness.h) in training for every kind (GRU
 *     reset_after and reset_before), with initial states in and return_state out, with and
 *     without return_sequences and masks; the mask's effect seen from outside (each sample's
 *     output is the rate-0 layer's with its recurrent-kernel rows scaled by exactly one pattern in
 *     {0, 1/(1-rate)}^units, about `rate` of them dropped; inference drops nothing, bit for bit);
 *     a model file (same training gradients after loading) and a Keras .keras file keep the rate;
 *     Bidirectional's two directions draw different masks. */
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

int main(void) {
    test_recurrent_dropout_gradients();
    test_recurrent_dropout_mask();
    test_recurrent_dropout_files();
    test_bidirectional_masks();
    return check_report("test_rnn_state");
}
