/* test_rnn.c — recurrent layers and wrappers (src/layers/layer_rnn.c, src/layers/layer_wrappers.c):
 *   - forward values against PyTorch (tests/reference/rnn_ref.txt, written by rnn_ref.py):
 *     SimpleRNN, LSTM, GRU (reset_after and before), return_sequences on and off, go_backwards,
 *     masks (carried state and outputs), Bidirectional concat with and without masks;
 *   - central-difference gradients through time for inputs and every weight (op_harness.h),
 *     every class and option, every merge mode, TimeDistributed, and with masks (padded inputs
 *     get exactly zero gradient);
 *   - masking: a padded sequence ends in the state of the shorter unpadded one;
 *   - Bidirectional = forward run and flipped go_backwards run; TimeDistributed(Dense) = Dense per
 *     step;
 *   - shapes, weight shapes, bad arguments (messages name the layer), a shared layer;
 *   - a two-head sequence model through the public API (sum: mse; sign: binary crossentropy,
 *     loss weights) that learns, whose loom_gradients match differences of loom_evaluate, and that
 *     survives loom_model_save / loom_model_load. */
#include "fixture.h"
#include "op_harness.h"
#include "layers/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif

static loom_layer *make_rnn(loom_graph *g, int kind, int units, const loom_rnn_options *o) {
    return kind == 1 ? loom_lstm(g, NULL, units, o) : kind == 2 ? loom_gru(g, NULL, units, o) : loom_simple_rnn(g, NULL, units, o);
}

/* Forward with an optional mask (the harness itself passes none). */
static void forward_masked(op_harness *H, const float *mask) {
    for (size_t i = 0; i < H->out_n; i++) H->out[i] = NAN;
    loom_op_ctx c = oph_ctx(H, H->din, NULL);
    c.in_mask = mask;
    H->L->op->forward(H->L, &c);
}

static void backward_masked(op_harness *H, const float *mask) {
    loom_op_ctx c = oph_ctx(H, H->din, H->n_w ? H->dw : NULL);
    c.in_mask = mask;
    H->L->op->backward(H->L, &c);
}

/* ---------------------------------------------------------------- PyTorch reference */

static const char *const CASES[] = {"simple_last",  "simple_seq_back",     "lstm_seq",           "lstm_last_back",
                                    "gru_seq",      "gru_last_back",       "gru_before_seq",     "lstm_mask_seq",
                                    "gru_mask_last_back", "simple_mask_seq_back", "bi_lstm_seq", "bi_gru_last",
                                    "bi_lstm_mask_seq"};

static void test_reference(void) {
    fixture fx = {0};
    if (fixture_load(&fx, LOOM_TEST_DIR "/reference/rnn_ref.txt") != 0) return;
    enum { B = 2, T = 5, F = 3 };
    for (size_t k = 0; k < sizeof CASES / sizeof *CASES; k++) {
        char key[96];
        float cfg[7];
        snprintf(key, sizeof key, "%s.cfg", CASES[k]);
        fixture_floats(&fx, key, cfg, 7);
        int kind = (int)cfg[0], units = (int)cfg[1];
        loom_rnn_options o = loom_rnn_defaults();
        o.return_sequences = (int)cfg[2];
        o.go_backwards = (int)cfg[3];
        o.reset_after = (int)cfg[4];
        bool bidir = cfg[5] != 0, masked = cfg[6] != 0;
        loom_graph *g = loom_graph_new(1);
        loom_layer *L = make_rnn(g, kind, units, &o);
        if (bidir) L = loom_bidirectional(g, NULL, L, LOOM_MERGE_CONCAT);
        CHECK(L != NULL);
        op_harness H;
        loom_shape in = {2, {T, F}};
        if (L && oph_init(&H, L, 1, &in, B, 0, 7) == LOOM_OK) {
            snprintf(key, sizeof key, "%s.x", CASES[k]);
            fixture_floats(&fx, key, H.in[0], H.in_n[0]);
            snprintf(key, sizeof key, "%s.w", CASES[k]);
            fixture_floats(&fx, key, H.w, H.n_w);
            float mask[B * T];
            if (masked) {
                snprintf(key, sizeof key, "%s.mask", CASES[k]);
                fixture_floats(&fx, key, mask, B * T);
            }
            forward_masked(&H, masked ? mask : NULL);
            snprintf(key, sizeof key, "%s.y", CASES[k]);
            const double *y = fixture_get(&fx, key, H.out_n);
            int bad = 0;
            for (size_t i = 0; y && i < H.out_n; i++)
                if (!(fabs(H.out[i] - y[i]) <= 1e-5 + 1e-5 * fabs(y[i]))) {
                    if (bad++ < 3) fprintf(stderr, "  %s: y[%zu] = %.7g, PyTorch %.7g\n", CASES[k], i, H.out[i], y[i]);
                }
            CHECK(bad == 0);
        }
        oph_free(&H);
        loom_graph_free(g);
    }
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- gradients */

static void grad_case(int kind, int seq, int back, int reset_after, int use_bias, loom_activation act) {
    loom_graph *g = loom_graph_new(2);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = seq;
    o.go_backwards = back;
    o.reset_after = reset_after;
    o.use_bias = use_bias;
    o.activation = act;
    loom_layer *L = make_rnn(g, kind, 3, &o);
    op_harness H;
    loom_shape in = {2, {4, 2}};
    char label[96];
    snprintf(label, sizeof label, "%s seq %d back %d reset_after %d bias %d act %d", L->op->class_name, seq, back,
             reset_after, use_bias, act);
    if (oph_init(&H, L, 1, &in, 2, 1, 9) == LOOM_OK) oph_grad_check(&H, label, NULL);
    oph_free(&H);
    loom_graph_free(g);
}

/* Initial states (Keras's initial_state): gradients reach h0 (and c0), and the states change the
 * output. */
static void initial_state_case(int kind, int seq, int back) {
    loom_graph *g = loom_graph_new(2);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = seq;
    o.go_backwards = back;
    loom_layer *L = make_rnn(g, kind, 3, &o);
    int n_in = kind == 1 ? 3 : 2; /* LSTM: h0 and c0 */
    loom_shape in[3] = {{2, {4, 2}}, {1, {3}}, {1, {3}}};
    op_harness H;
    char label[96];
    snprintf(label, sizeof label, "%s with initial states, seq %d back %d", L->op->class_name, seq, back);
    if (oph_init(&H, L, n_in, in, 2, 1, 9) == LOOM_OK) {
        oph_grad_check(&H, label, NULL);
        /* zero states give the output of the layer called on the sequence alone */
        float *keep = malloc(H.out_n * sizeof(float));
        for (int i = 1; i < n_in; i++) memset(H.in[i], 0, H.in_n[i] * sizeof(float));
        oph_forward(&H);
        memcpy(keep, H.out, H.out_n * sizeof(float));
        op_harness S;
        if (oph_init(&S, L, 1, in, 2, 1, 9) == LOOM_OK) {
            memcpy(S.in[0], H.in[0], H.in_n[0] * sizeof(float));
            memcpy(S.w, H.w, H.n_w * sizeof(float));
            oph_forward(&S);
            CHECK(memcmp(S.out, keep, H.out_n * sizeof(float)) == 0);
            oph_free(&S);
        }
        free(keep);
    }
    oph_free(&H);
    loom_graph_free(g);
}

/* return_state: the final states after the output rows, their gradients by finite differences,
 * and RecurrentOutput taking them apart (each piece equal to the layer without return_state). */
static void return_state_case(int kind, int seq) {
    loom_graph *g = loom_graph_new(2);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = seq;
    loom_layer *L = make_rnn(g, kind, 3, &o);
    L->iarg[RNN_STATE] = 1;
    loom_shape in = {2, {4, 2}};
    op_harness H;
    char label[96];
    snprintf(label, sizeof label, "%s return_state seq %d", L->op->class_name, seq);
    int S = loom_rnn_state_count(L);
    if (oph_init(&H, L, 1, &in, 2, 1, 9) == LOOM_OK) {
        CHECK(H.out_shape.rank == 2 && H.out_shape.dims[0] == (seq ? 4 : 1) + S);
        oph_grad_check(&H, label, NULL);
        /* the plain layer's output is the first rows; the state h is the last output */
        loom_layer *P = make_rnn(g, kind, 3, &o);
        op_harness Q;
        if (oph_init(&Q, P, 1, &in, 2, 1, 9) == LOOM_OK) {
            memcpy(Q.in[0], H.in[0], H.in_n[0] * sizeof(float));
            memcpy(Q.w, H.w, H.n_w * sizeof(float));
            oph_forward(&H);
            oph_forward(&Q);
            int rows = H.out_shape.dims[0], steps = seq ? 4 : 1;
            for (int b = 0; b < 2; b++) {
                CHECK(memcmp(H.out + (size_t)b * rows * 3, Q.out + (size_t)b * steps * 3, (size_t)steps * 3 * sizeof(float)) == 0);
                CHECK(memcmp(H.out + ((size_t)b * rows + steps) * 3, Q.out + ((size_t)b * steps + steps - 1) * 3, 3 * sizeof(float)) == 0);
            }
            oph_free(&Q);
        }
        for (int k = 0; k <= S; k++) {
            loom_layer *R = loom_recurrent_output(g, NULL, k, S, seq);
            op_harness T;
            snprintf(label, sizeof label, "RecurrentOutput %d of %s seq %d", k, L->op->class_name, seq);
            if (R && oph_init(&T, R, 1, &H.out_shape, 2, 1, 9) == LOOM_OK) {
                CHECK(T.out_shape.rank == (k == 0 && seq ? 2 : 1));
                oph_grad_check(&T, label, NULL);
                oph_free(&T);
            }
        }
    }
    oph_free(&H);
    loom_graph_free(g);
}

static void test_gradients(void) {
    for (int kind = 0; kind < 3; kind++)
        for (int seq = 0; seq < 2; seq++) return_state_case(kind, seq);
    for (int kind = 0; kind < 3; kind++)
        for (int seq = 0; seq < 2; seq++)
            for (int back = 0; back < 2; back++) initial_state_case(kind, seq, back);
    for (int kind = 0; kind < 3; kind++)
        for (int seq = 0; seq < 2; seq++)
            for (int back = 0; back < 2; back++) {
                grad_case(kind, seq, back, 1, 1, LOOM_TANH);
                if (kind == 2) grad_case(kind, seq, back, 0, 1, LOOM_TANH);
            }
    /* no bias; other activations (pre-activation needed: softplus, gelu) */
    for (int kind = 0; kind < 3; kind++) {
        grad_case(kind, 1, 0, 1, 0, LOOM_TANH);
        grad_case(kind, 0, 0, 1, 1, LOOM_SOFTPLUS);
    }
    grad_case(2, 1, 1, 0, 0, LOOM_GELU);
}

/* Masked gradients: central differences of f = sum(r*y) with the mask in place, and exactly zero
 * gradient for padded inputs. */
static void masked_grad_case(int kind, int seq, int back, int zero_out) {
    enum { B = 3, T = 5, F = 2 };
    float mask[B * T] = {1, 1, 1, 0, 0, /* right padding */ 0, 1, 0, 1, 1, /* holes */ 1, 1, 1, 1, 1};
    loom_graph *g = loom_graph_new(3);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = seq;
    o.go_backwards = back;
    loom_layer *L = make_rnn(g, kind, 3, &o);
    L->iarg[RNN_ZERO] = zero_out;
    op_harness H;
    loom_shape in = {2, {T, F}};
    char label[96];
    snprintf(label, sizeof label, "masked %s seq %d back %d zero %d", L->op->class_name, seq, back, zero_out);
    if (oph_init(&H, L, 1, &in, B, 1, 9) == LOOM_OK) {
        forward_masked(&H, mask);
        memset(H.din[0], 0, H.in_n[0] * sizeof(float));
        memset(H.dw, 0, H.n_w * sizeof(float));
        backward_masked(&H, mask);
        int bad = 0, nonzero = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int f = 0; f < F; f++)
                    if (mask[b * T + t] == 0) nonzero += H.din[0][(b * T + t) * F + f] != 0.0f;
        if (nonzero) fprintf(stderr, "  %s: %d gradients on padded inputs\n", label, nonzero);
        CHECK(nonzero == 0);
        oph_tol tol = oph_default_tol();
        float *sets[2] = {H.in[0], H.w};
        float *grads[2] = {H.din[0], H.dw};
        size_t ns[2] = {H.in_n[0], H.n_w};
        for (int s = 0; s < 2; s++)
            for (size_t j = 0; j < ns[s]; j++) {
                float v = sets[s][j], vp = (float)(v + tol.h), vm = (float)(v - tol.h);
                sets[s][j] = vp;
                forward_masked(&H, mask);
                double fp = oph_objective(&H);
                sets[s][j] = vm;
                forward_masked(&H, mask);
                double fm = oph_objective(&H);
                sets[s][j] = v;
                double n = (fp - fm) / ((double)vp - (double)vm);
                bad += oph_compare(label, s ? "dw" : "din", 0, j, grads[s][j], n, &tol, bad);
            }
        CHECK(bad == 0);
    }
    oph_free(&H);
    loom_graph_free(g);
}

static void test_masked_gradients(void) {
    for (int kind = 0; kind < 3; kind++)
        for (int seq = 0; seq < 2; seq++)
            for (int back = 0; back < 2; back++) masked_grad_case(kind, seq, back, 0);
    masked_grad_case(1, 1, 0, 1);
    masked_grad_case(2, 1, 1, 1);
}

/* A padded sequence ends in the state of the shorter one; padded outputs repeat the carried one. */
static void test_mask_carries_state(void) {
    for (int kind = 0; kind < 3; kind++)
        for (int back = 0; back < 2; back++) {
            loom_graph *g = loom_graph_new(4);
            loom_rnn_options o = loom_rnn_defaults();
            o.go_backwards = back;
            loom_layer *L5 = make_rnn(g, kind, 3, &o), *L3 = make_rnn(g, kind, 3, &o);
            o.return_sequences = 1;
            loom_layer *S5 = make_rnn(g, kind, 3, &o);
            op_harness H5, H3, S;
            loom_shape i5 = {2, {5, 2}}, i3 = {2, {3, 2}};
            if (oph_init(&H5, L5, 1, &i5, 1, 0, 1) == LOOM_OK && oph_init(&H3, L3, 1, &i3, 1, 0, 1) == LOOM_OK &&
                oph_init(&S, S5, 1, &i5, 1, 0, 1) == LOOM_OK) {
                /* the short sequence sits at steps 1..3 of the long one, steps 0 and 4 padded */
                float mask[5] = {0, 1, 1, 1, 0};
                memcpy(H3.in[0], H5.in[0] + 2, 6 * sizeof(float));
                memcpy(H3.w, H5.w, H5.n_w * sizeof(float));
                memcpy(S.in[0], H5.in[0], 10 * sizeof(float));
                memcpy(S.w, H5.w, H5.n_w * sizeof(float));
                forward_masked(&H5, mask);
                oph_forward(&H3);
                forward_masked(&S, mask);
                for (int j = 0; j < 3; j++) CHECK_CLOSE(H5.out[j], H3.out[j], 1e-6, 1e-6);
                /* outputs in processed order (steps 0 and 4 are padded either way round): a padded
                 * step outputs the state carried into it, 0 before any valid step */
                for (int j = 0; j < 3; j++) {
                    CHECK(S.out[j] == 0.0f);
                    CHECK(S.out[4 * 3 + j] == S.out[3 * 3 + j]);
                    CHECK(S.out[4 * 3 + j] == H5.out[j]);
                }
            } else {
                CHECK(0);
            }
            oph_free(&H5);
            oph_free(&H3);
            oph_free(&S);
            loom_graph_free(g);
        }
}

/* ---------------------------------------------------------------- wrappers */

static void test_bidirectional(void) {
    enum { B = 2, T = 4, F = 2, U = 3 };
    const loom_merge_mode modes[4] = {LOOM_MERGE_CONCAT, LOOM_MERGE_SUM, LOOM_MERGE_MUL, LOOM_MERGE_AVE};
    for (int seq = 0; seq < 2; seq++)
        for (int m = 0; m < 4; m++) {
            loom_graph *g = loom_graph_new(5);
            loom_rnn_options o = loom_rnn_defaults();
            o.return_sequences = seq;
            loom_layer *bi = loom_bidirectional(g, NULL, loom_gru(g, NULL, U, &o), modes[m]);
            loom_layer *fw = loom_gru(g, NULL, U, &o);
            o.go_backwards = 1;
            loom_layer *bw = loom_gru(g, NULL, U, &o);
            op_harness H, HF, HB;
            loom_shape in = {2, {T, F}};
            char label[64];
            snprintf(label, sizeof label, "Bidirectional seq %d mode %d", seq, m);
            if (oph_init(&H, bi, 1, &in, B, 0, 1) == LOOM_OK && oph_init(&HF, fw, 1, &in, B, 0, 1) == LOOM_OK &&
                oph_init(&HB, bw, 1, &in, B, 0, 1) == LOOM_OK) {
                CHECK(H.out_shape.rank == (seq ? 2 : 1));
                CHECK(H.out_shape.dims[H.out_shape.rank - 1] == (m == 0 ? 2 * U : U));
                CHECK(bi->n_weights == 6 && strcmp(bi->weights[1].name, "fw_rec_kernel") == 0 &&
                      strcmp(bi->weights[5].name, "bw_bias") == 0);
                memcpy(HF.in[0], H.in[0], H.in_n[0] * sizeof(float));
                memcpy(HB.in[0], H.in[0], H.in_n[0] * sizeof(float));
                memcpy(HF.w, H.w, HF.n_w * sizeof(float));
                memcpy(HB.w, H.w + HF.n_w, HB.n_w * sizeof(float));
                oph_forward(&H);
                oph_forward(&HF);
                oph_forward(&HB);
                int R = seq ? T : 1, bad = 0;
                for (int b = 0; b < B; b++)
                    for (int r = 0; r < R; r++)
                        for (int j = 0; j < U; j++) {
                            float f = HF.out[(b * R + r) * U + j], k = HB.out[(b * R + R - 1 - r) * U + j];
                            float want[4] = {f, f + k, f * k, 0.5f * (f + k)};
                            const float *row = H.out + (size_t)(b * R + r) * U * (m == 0 ? 2 : 1);
                            bad += fabsf(row[j] - want[m]) > 1e-6f;
                            if (m == 0) bad += fabsf(row[U + j] - k) > 1e-6f;
                        }
                CHECK(bad == 0);
                oph_grad_check(&H, label, NULL);
            } else {
                CHECK(0);
            }
            oph_free(&H);
            oph_free(&HF);
            oph_free(&HB);
            loom_graph_free(g);
        }
    /* masked, with the wrapper's zero outputs */
    loom_graph *g = loom_graph_new(6);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    loom_layer *bi = loom_bidirectional(g, "bi", loom_lstm(g, "inner", U, &o), LOOM_MERGE_MUL);
    CHECK(strcmp(bi->inner[1]->name, "backward_inner") == 0);
    op_harness H;
    loom_shape in = {2, {T, F}};
    if (oph_init(&H, bi, 1, &in, B, 1, 1) == LOOM_OK) {
        float mask[B * T] = {1, 1, 0, 0, 0, 1, 1, 1};
        forward_masked(&H, mask);
        for (int j = 0; j < U; j++) CHECK(H.out[2 * U + j] == 0.0f && H.out[4 * U + j] == 0.0f);
        memset(H.din[0], 0, H.in_n[0] * sizeof(float));
        memset(H.dw, 0, H.n_w * sizeof(float));
        backward_masked(&H, mask);
        oph_tol tol = oph_default_tol();
        int bad = 0;
        for (size_t j = 0; j < H.n_w; j++) {
            float v = H.w[j];
            H.w[j] = v + (float)tol.h;
            forward_masked(&H, mask);
            double fp = oph_objective(&H);
            H.w[j] = v - (float)tol.h;
            forward_masked(&H, mask);
            double fm = oph_objective(&H);
            H.w[j] = v;
            bad += oph_compare("masked Bidirectional", "dw", 0, j, H.dw[j], (fp - fm) / (2 * tol.h), &tol, bad);
        }
        CHECK(bad == 0);
    }
    oph_free(&H);
    loom_graph_free(g);
}

static void test_time_distributed(void) {
    enum { B = 2, T = 3, F = 4, U = 5 };
    loom_graph *g = loom_graph_new(7);
    loom_layer *td = loom_time_distributed(g, NULL, loom_dense(g, "d", U, LOOM_TANH, NULL));
    loom_layer *plain = loom_dense(g, NULL, U, LOOM_TANH, NULL);
    op_harness H, D;
    loom_shape in = {2, {T, F}}, one = {1, {F}};
    if (oph_init(&H, td, 1, &in, B, 0, 1) == LOOM_OK && oph_init(&D, plain, 1, &one, B * T, 0, 1) == LOOM_OK) {
        CHECK(H.out_shape.rank == 2 && H.out_shape.dims[0] == T && H.out_shape.dims[1] == U);
        CHECK(td->n_weights == 2 && strcmp(td->weights[0].name, "kernel") == 0);
        memcpy(D.in[0], H.in[0], H.in_n[0] * sizeof(float));
        memcpy(D.w, H.w, H.n_w * sizeof(float));
        oph_forward(&H);
        oph_forward(&D);
        int bad = 0;
        for (size_t i = 0; i < H.out_n; i++) bad += H.out[i] != D.out[i];
        CHECK(bad == 0);
        oph_grad_check(&H, "TimeDistributed(Dense)", NULL);
    } else {
        CHECK(0);
    }
    oph_free(&H);
    oph_free(&D);
    /* over a recurrent layer: (T, steps, features) */
    loom_layer *tr = loom_time_distributed(g, NULL, loom_simple_rnn(g, NULL, 2, NULL));
    loom_shape in3 = {3, {2, 3, 2}};
    if (oph_init(&H, tr, 1, &in3, 2, 0, 1) == LOOM_OK) {
        CHECK(H.out_shape.rank == 2 && H.out_shape.dims[0] == 2 && H.out_shape.dims[1] == 2);
        oph_grad_check(&H, "TimeDistributed(SimpleRNN)", NULL);
    } else {
        CHECK(0);
    }
    oph_free(&H);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- shapes and errors */

static void expect_error(loom_graph *g, loom_status code, const char *needle) {
    CHECK(loom_graph_status(g) == code);
    if (!strstr(loom_graph_error(g), needle)) fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", loom_graph_error(g), needle);
    CHECK(strstr(loom_graph_error(g), needle) != NULL);
}

static void test_shapes_and_errors(void) {
    loom_graph *g = loom_graph_new(8);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){6, 3});
    loom_rnn_options seq = loom_rnn_defaults();
    seq.return_sequences = 1;
    int d[4];
    loom_layer *lstm = loom_lstm(g, NULL, 5, NULL);
    CHECK(loom_tensor_shape(loom_call(lstm, x), d) == 1 && d[0] == 5);
    CHECK(strcmp(loom_layer_name(lstm), "lstm") == 0 && strcmp(loom_layer_class(lstm), "LSTM") == 0);
    int dims[4];
    CHECK(loom_layer_num_weights(lstm) == 3);
    CHECK(loom_layer_weight_shape(lstm, 0, dims) == 2 && dims[0] == 3 && dims[1] == 20);
    CHECK(loom_layer_weight_shape(lstm, 1, dims) == 2 && dims[0] == 5 && dims[1] == 20);
    CHECK(loom_layer_weight_shape(lstm, 2, dims) == 1 && dims[0] == 20);
    loom_layer *gru = loom_gru(g, NULL, 4, &seq);
    CHECK(loom_tensor_shape(loom_call(gru, x), d) == 2 && d[0] == 6 && d[1] == 4);
    CHECK(loom_layer_weight_shape(gru, 2, dims) == 2 && dims[0] == 2 && dims[1] == 12);
    loom_rnn_options before = seq;
    before.reset_after = 0;
    loom_layer *gru0 = loom_gru(g, NULL, 4, &before);
    loom_call(gru0, x);
    CHECK(loom_layer_weight_shape(gru0, 2, dims) == 1 && dims[0] == 12);
    loom_layer *s = loom_simple_rnn(g, NULL, 2, &seq);
    loom_call(s, x);
    CHECK(loom_layer_weight_shape(s, 1, dims) == 2 && dims[0] == 2 && dims[1] == 2);
    loom_layer *bi = loom_bidirectional(g, NULL, loom_lstm(g, NULL, 3, &seq), LOOM_MERGE_CONCAT);
    CHECK(loom_tensor_shape(loom_call(bi, x), d) == 2 && d[0] == 6 && d[1] == 6);
    loom_layer *td = loom_time_distributed(g, NULL, loom_dense(g, NULL, 7, LOOM_LINEAR, NULL));
    CHECK(loom_tensor_shape(loom_call(td, x), d) == 2 && d[0] == 6 && d[1] == 7);
    CHECK(loom_graph_status(g) == LOOM_OK);
    loom_graph_free(g);

    g = loom_graph_new(8);
    CHECK(loom_lstm(g, "L0", 0, NULL) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "L0 (LSTM): units");
    loom_graph_free(g);
    g = loom_graph_new(8);
    loom_rnn_options bad = loom_rnn_defaults();
    bad.recurrent_activation = (loom_activation)99;
    CHECK(loom_gru(g, "G0", 2, &bad) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "G0 (GRU): unknown recurrent_activation");
    loom_graph_free(g);
    g = loom_graph_new(8);
    x = loom_input(g, "x", 1, (int[]){6});
    CHECK(loom_call(loom_simple_rnn(g, "flat", 2, NULL), x) == NULL);
    expect_error(g, LOOM_ERR_SHAPE, "flat (SimpleRNN): expects inputs of shape (steps, features)");
    loom_graph_free(g);
    g = loom_graph_new(8);
    CHECK(loom_bidirectional(g, "B0", loom_dense(g, NULL, 2, LOOM_LINEAR, NULL), LOOM_MERGE_SUM) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "B0 (Bidirectional): the wrapped layer must be");
    loom_graph_free(g);
    g = loom_graph_new(8);
    loom_rnn_options back = loom_rnn_defaults();
    back.go_backwards = 1;
    CHECK(loom_bidirectional(g, "B1", loom_gru(g, NULL, 2, &back), LOOM_MERGE_SUM) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "B1 (Bidirectional): the wrapped layer has go_backwards");
    loom_graph_free(g);
    g = loom_graph_new(8);
    CHECK(loom_bidirectional(g, "B2", loom_gru(g, NULL, 2, NULL), (loom_merge_mode)7) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "B2 (Bidirectional): merge mode");
    loom_graph_free(g);
    g = loom_graph_new(8);
    x = loom_input(g, "x", 2, (int[]){4, 2});
    loom_layer *used = loom_lstm(g, NULL, 2, NULL);
    loom_call(used, x);
    CHECK(loom_bidirectional(g, "B3", used, LOOM_MERGE_CONCAT) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "B3 (Bidirectional): the wrapped layer has already been called");
    loom_graph_free(g);
    g = loom_graph_new(8);
    x = loom_input(g, "x", 2, (int[]){4, 2});
    loom_layer *owned = loom_lstm(g, "owned", 2, NULL);
    loom_bidirectional(g, NULL, owned, LOOM_MERGE_CONCAT);
    CHECK(loom_call(owned, x) == NULL);
    expect_error(g, LOOM_ERR_GRAPH, "owned (LSTM): this layer belongs to a wrapper");
    loom_graph_free(g);
    g = loom_graph_new(8);
    loom_layer *d2 = loom_dense(g, NULL, 2, LOOM_LINEAR, NULL);
    loom_time_distributed(g, NULL, d2);
    CHECK(loom_time_distributed(g, "T1", d2) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "T1 (TimeDistributed): the wrapped layer already belongs");
    loom_graph_free(g);
    g = loom_graph_new(8);
    x = loom_input(g, "x", 1, (int[]){4});
    CHECK(loom_call(loom_time_distributed(g, "T2", loom_dense(g, NULL, 2, LOOM_LINEAR, NULL)), x) == NULL);
    expect_error(g, LOOM_ERR_SHAPE, "T2 (TimeDistributed)");
    loom_graph_free(g);
    g = loom_graph_new(8);
    CHECK(loom_time_distributed(g, "T3", loom_add(g, NULL)) == NULL);
    expect_error(g, LOOM_ERR_ARGUMENT, "T3 (TimeDistributed): the wrapped layer must take a single input");
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- models */

/* Sequences of T values in [-1, 1); targets: the sum and whether it is positive. */
enum { NS = 64, TS = 6 };
static float seq_x[NS * TS], seq_sum[NS], seq_sign[NS];

static void make_sequences(void) {
    for (int i = 0; i < NS; i++) {
        double s = 0;
        for (int t = 0; t < TS; t++) {
            seq_x[i * TS + t] = 2.0f * loom_uniform01(77, (uint64_t)(i * TS + t)) - 1.0f;
            s += seq_x[i * TS + t];
        }
        seq_sum[i] = (float)s;
        seq_sign[i] = s > 0 ? 1.0f : 0.0f;
    }
}

static loom_model *sequence_model(int bidirectional) {
    loom_graph *g = loom_graph_new(11);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){TS, 1});
    loom_layer *rnn = loom_lstm(g, "encoder", 8, NULL);
    loom_tensor *h = bidirectional ? loom_call(loom_bidirectional(g, "bi", rnn, LOOM_MERGE_CONCAT), x) : loom_call(rnn, x);
    loom_tensor *outs[2] = {loom_call(loom_dense(g, "sum", 1, LOOM_LINEAR, NULL), h),
                            loom_call(loom_dense(g, "sign", 1, LOOM_SIGMOID, NULL), h)};
    loom_model *m = loom_model_new(g, 1, &x, 2, outs);
    if (!m) {
        fprintf(stderr, "  model: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss losses[2] = {{.name = "mse"}, {.name = "binary_crossentropy"}};
    float weights[2] = {0.5f, 2.0f};
    loom_compile_config cc = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = weights,
                              .optimizer = loom_adam(0.01f)};
    if (loom_compile(m, &cc) != LOOM_OK) {
        fprintf(stderr, "  compile: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

static float total_loss(loom_model *m, const loom_data *d) {
    loom_history *h = NULL;
    if (loom_evaluate(m, d, NS, 0, &h) != LOOM_OK) return NAN;
    float v = loom_history_get(h, "loss", 0);
    loom_history_free(h);
    return v;
}

static void test_sequence_model(void) {
    make_sequences();
    loom_array xa = {.name = "x", .data = seq_x, .n = NS, .count = NS * TS}, ya[2] = {{.name = "sum", .data = seq_sum, .n = NS, .count = NS}, {.name = "sign", .data = seq_sign, .n = NS, .count = NS}};
    loom_data data = {.n_x = 1, .x = &xa, .n_y = 2, .y = ya};
    for (int bidir = 0; bidir < 2; bidir++) {
        loom_model *m = sequence_model(bidir);
        CHECK(m != NULL);
        if (!m) continue;

        /* whole-model gradient: loom_gradients against differences of loom_evaluate (the loss of
         * the full batch, float32; h 1e-2 keeps the rounding noise small against the change) */
        size_t n = loom_param_count(m);
        float *grad = malloc(n * sizeof *grad), *p = loom_params(m);
        CHECK_STATUS(loom_gradients(m, &data, 0, NULL, grad, NULL), LOOM_OK);
        int bad = 0, checked = 0;
        for (size_t j = 0; j < n; j += 1 + n / 60) {
            float v = p[j];
            double h = 1e-2;
            p[j] = v + (float)h;
            double fp = total_loss(m, &data);
            p[j] = v - (float)h;
            double fm = total_loss(m, &data);
            p[j] = v;
            double num = (fp - fm) / (2 * h);
            checked++;
            if (fabs(num - grad[j]) > 2e-3 + 3e-2 * fmax(fabs(num), fabs(grad[j]))) {
                if (bad++ < 5) fprintf(stderr, "  model (bidir %d): param %zu analytic %g numeric %g\n", bidir, j, grad[j], num);
            }
        }
        CHECK(checked > 30 && bad == 0);
        free(grad);

        /* learns both heads */
        float before = total_loss(m, &data);
        loom_fit_options fo = loom_fit_defaults();
        fo.epochs = 30;
        fo.batch_size = 16;
        loom_history *hist = NULL;
        CHECK_STATUS(loom_fit(m, &data, &fo, &hist), LOOM_OK);
        float after = total_loss(m, &data);
        if (!(after < 0.5f * before)) fprintf(stderr, "  model (bidir %d): loss %g -> %g\n", bidir, before, after);
        CHECK(after < 0.5f * before);
        CHECK(loom_history_get(hist, "sum_loss", 29) < loom_history_get(hist, "sum_loss", 0));
        CHECK(loom_history_get(hist, "sign_loss", 29) < loom_history_get(hist, "sign_loss", 0));
        loom_history_free(hist);

        /* a model file round trip (needs the recurrent op tables in model_json.c's registry) */
        char path[] = "/tmp/loom_rnn_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd >= 0) close(fd);
        loom_status s = loom_model_save(m, path);
        if (s != LOOM_OK) fprintf(stderr, "  save: %s\n", loom_model_error(m));
        CHECK_STATUS(s, LOOM_OK);
        char err[512] = "";
        loom_model *r = s == LOOM_OK ? loom_model_load(path, err, sizeof err) : NULL;
        if (s == LOOM_OK && !r) fprintf(stderr, "  load: %s\n", err);
        CHECK(r != NULL);
        if (r) {
            float *a[2], *b[2];
            for (int k = 0; k < 2; k++) {
                a[k] = malloc(NS * sizeof(float));
                b[k] = malloc(NS * sizeof(float));
            }
            CHECK_STATUS(loom_predict(m, 1, &xa, 16, a), LOOM_OK);
            CHECK_STATUS(loom_predict(r, 1, &xa, 16, b), LOOM_OK);
            int differ = 0;
            for (int k = 0; k < 2; k++)
                for (int i = 0; i < NS; i++) differ += a[k][i] != b[k][i];
            CHECK(differ == 0);
            CHECK(loom_model_find_layer(r, bidir ? "bi" : "encoder") != NULL);
            for (int k = 0; k < 2; k++) {
                free(a[k]);
                free(b[k]);
            }
            loom_model_free(r);
        }
        unlink(path);
        loom_model_free(m);
    }
}

/* One GRU called on two inputs: one set of weights, gradients summed over both calls. */
static void test_shared_layer(void) {
    loom_graph *g = loom_graph_new(12);
    loom_tensor *a = loom_input(g, "a", 2, (int[]){4, 2}), *b = loom_input(g, "b", 2, (int[]){4, 2});
    loom_layer *gru = loom_gru(g, "shared", 3, NULL);
    loom_tensor *ab[2] = {loom_call(gru, a), loom_call(gru, b)};
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, NULL), loom_call_n(loom_add(g, NULL), 2, ab));
    loom_tensor *xs[2] = {a, b};
    loom_model *m = loom_model_new(g, 2, xs, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        loom_graph_free(g);
        return;
    }
    loom_loss l = {.name = "mse"};
    loom_compile_config cc = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cc), LOOM_OK);
    CHECK(loom_param_count(m) == (size_t)(2 * 9 + 3 * 9 + 2 * 9) + 3 + 1);
    enum { N = 5 };
    float xa[N * 8], xb[N * 8], t[N];
    for (int i = 0; i < N * 8; i++) xa[i] = loom_uniform01(1, i) - 0.5f, xb[i] = loom_uniform01(2, i) - 0.5f;
    for (int i = 0; i < N; i++) t[i] = loom_uniform01(3, i);
    loom_array xarr[2] = {{.name = "a", .data = xa, .n = N, .count = N * 8}, {.name = "b", .data = xb, .n = N, .count = N * 8}}, yarr = {.name = "y", .data = t, .n = N, .count = N};
    loom_data d = {.n_x = 2, .x = xarr, .n_y = 1, .y = &yarr};
    size_t n = loom_param_count(m);
    float *grad = malloc(n * sizeof *grad), *p = loom_params(m);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    int bad = 0;
    for (size_t j = 0; j < n; j++) {
        float v = p[j];
        p[j] = v + 1e-2f;
        double fp = total_loss(m, &d);
        p[j] = v - 1e-2f;
        double fm = total_loss(m, &d);
        p[j] = v;
        double num = (fp - fm) / 2e-2;
        if (fabs(num - grad[j]) > 2e-3 + 3e-2 * fmax(fabs(num), fabs(grad[j]))) {
            if (bad++ < 5) fprintf(stderr, "  shared GRU: param %zu analytic %g numeric %g\n", j, grad[j], num);
        }
    }
    CHECK(bad == 0);
    free(grad);
    loom_model_free(m);
}

/* The other configurations through a model file: SimpleRNN go_backwards, GRU reset_before without
 * bias, Bidirectional(SimpleRNN) ave, TimeDistributed(Dense) (needs the registration too). */
static void test_file_round_trip(void) {
    loom_graph *g = loom_graph_new(13);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){5, 2});
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    o.go_backwards = 1;
    loom_tensor *h1 = loom_call(loom_simple_rnn(g, "s", 3, &o), x);
    o.go_backwards = 0;
    o.reset_after = 0;
    o.use_bias = 0;
    o.activation = LOOM_SOFTPLUS;
    loom_tensor *h2 = loom_call(loom_gru(g, "g", 3, &o), h1);
    loom_tensor *h3 = loom_call(loom_bidirectional(g, "b", loom_simple_rnn(g, NULL, 2, &o), LOOM_MERGE_AVE), h2);
    loom_dense_options dopt = loom_dense_defaults();
    dopt.kernel_regularizer.l2 = 0.01f;
    loom_tensor *y = loom_call(loom_time_distributed(g, "td", loom_dense(g, "inner", 2, LOOM_TANH, &dopt)), h3);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        loom_graph_free(g);
        return;
    }
    char path[] = "/tmp/loom_rnn_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    char err[512] = "";
    loom_model *r = loom_model_load(path, err, sizeof err);
    if (!r) fprintf(stderr, "  load: %s\n", err);
    CHECK(r != NULL);
    if (r) {
        float xs[4 * 10], a[4 * 10], b[4 * 10];
        for (int i = 0; i < 40; i++) xs[i] = loom_uniform01(5, i) - 0.5f;
        loom_array xa = {.name = "x", .data = xs, .n = 4, .count = 4 * 10};
        float *pa = a, *pb = b;
        CHECK_STATUS(loom_predict(m, 1, &xa, 4, &pa), LOOM_OK);
        CHECK_STATUS(loom_predict(r, 1, &xa, 4, &pb), LOOM_OK);
        CHECK(memcmp(a, b, sizeof a) == 0);
        loom_layer *td = loom_model_find_layer(r, "td"), *bl = loom_model_find_layer(r, "b");
        CHECK(td && td->inner[0] && td->inner[0]->dense.kernel_regularizer.l2 == 0.01f);
        CHECK(bl && bl->iarg[0] == LOOM_MERGE_AVE && bl->inner[1]->iarg[RNN_BACK] == 1);
        loom_layer *gl = loom_model_find_layer(r, "g");
        CHECK(gl && gl->iarg[RNN_RESET] == 0 && gl->iarg[RNN_BIAS] == 0 && gl->activation == LOOM_SOFTPLUS);
        loom_model_free(r);
    }
    unlink(path);
    loom_model_free(m);
}

int main(void) {
    test_reference();
    test_gradients();
    test_masked_gradients();
    test_mask_carries_state();
    test_bidirectional();
    test_time_distributed();
    test_shapes_and_errors();
    test_shared_layer();
    test_sequence_model();
    test_file_round_trip();
    return check_report("test_rnn");
}
