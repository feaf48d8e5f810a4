/* test_varlen.c — variable-length sequences (issue 16 part 4): Input(shape=(None,)).
 *  - The same model built with a variable time axis and with a fixed one (19 steps) over the same
 *    padded data: batches trimmed to their longest sample (7, 19 and 3 steps) give the fixed
 *    model's losses, masked per-step losses and gradients to float32 rounding, per batch and
 *    through fit (weights after training), and per-batch arrays of their own length too.
 *  - predict on a length never seen in training (25 steps) gives the fixed model's outputs on the
 *    same sequences padded to 19.
 *  - Central differences on a variable-length Conv1D model at two lengths.
 *  - Build errors name the layer (Flatten of the steps, a Dense over them, a variable axis that is
 *    not the first); binding errors name the input; the same seed gives the same bits whether the
 *    arena is planned ahead (loom_model_set_max_steps) or grows. */
#include "check.h"

#include <loom.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 12
#define TMAX 19
#define VOCAB 20
#define BATCH 4

static float ids[N * TMAX], tags[N * TMAX], prio[N];
static int lengths[N];

/* batches of 4 whose longest samples are 7, 19 and 3 steps */
static void make_data(void) {
    static const int longest[3] = {7, 19, 3};
    srand(11);
    for (int i = 0; i < N; i++) {
        int top = longest[i / BATCH];
        int len = i % BATCH == 0 ? top : 1 + rand() % top;
        lengths[i] = len;
        int s = 0;
        for (int t = 0; t < TMAX; t++) {
            int id = t < len ? 1 + rand() % (VOCAB - 1) : 0; /* 0 pads, masked by the Embedding */
            ids[i * TMAX + t] = (float)id;
            tags[i * TMAX + t] = (float)(id % 3); /* a per-step class; padded steps are masked */
            s += id;
        }
        prio[i] = (float)(s % 2);
    }
}

/* ids (T) -> Embedding(mask_zero) -> LSTM(return_sequences) -> Dense(3, softmax) per step ("tags")
 *                                  \-> GRU -> Dense(1, sigmoid) ("prio") */
static loom_model *make_model(int steps, loom_optimizer opt) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "ids", 1, (int[]){steps});
    loom_tensor *e = loom_call(loom_embedding(g, "embed", VOCAB, 6, 1), x);
    loom_rnn_options seq = loom_rnn_defaults();
    seq.return_sequences = 1;
    loom_tensor *h = loom_call(loom_lstm(g, "lstm", 5, &seq), e);
    loom_tensor *t = loom_call(loom_dense(g, "tags", 3, LOOM_SOFTMAX, NULL), h);
    loom_rnn_options last = loom_rnn_defaults();
    loom_tensor *r = loom_call(loom_gru(g, "gru", 4, &last), h);
    loom_tensor *p = loom_call(loom_dense(g, "prio", 1, LOOM_SIGMOID, NULL), r);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){t, p});
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss l[] = {{.name = "sparse_categorical_crossentropy"}, {.name = "binary_crossentropy"}};
    float w[] = {0.2f, 1.0f};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w, .optimizer = opt};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

/* samples [first, first + n) padded to TMAX (with lengths when lens) */
static loom_data batch_of(int first, int n, loom_array *x, loom_array *y, const int *lens) {
    *x = (loom_array){.name = "ids", .data = ids + first * TMAX, .n = (size_t)n, .count = (size_t)n * TMAX, .lengths = lens};
    y[0] = (loom_array){.name = "tags", .data = tags + first * TMAX, .n = (size_t)n, .count = (size_t)n * TMAX};
    y[1] = (loom_array){.name = "prio", .data = prio + first, .n = (size_t)n, .count = (size_t)n};
    return (loom_data){1, x, 2, y, 0, NULL};
}

static int close_arrays(const float *a, const float *b, size_t n, double atol, double rtol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= atol + rtol * fabs((double)b[i]))) {
            if (bad < 5) fprintf(stderr, "  [%zu] %.9g vs %.9g\n", i, (double)a[i], (double)b[i]);
            bad++;
        }
    return bad == 0;
}

/* Per batch: losses and gradients of the trimmed batch equal the fixed model's on the padding. */
static void gradients_match_fixed(void) {
    loom_model *fixed = make_model(TMAX, loom_sgd(0.1f, 0, 0)), *var = make_model(LOOM_DIM_VARIABLE, loom_sgd(0.1f, 0, 0));
    if (!fixed || !var) return;
    CHECK(loom_model_input_variable(var, 0) == 1 && loom_model_input_variable(fixed, 0) == 0);
    size_t n = loom_param_count(fixed);
    CHECK(n == loom_param_count(var));
    CHECK(memcmp(loom_params(fixed), loom_params(var), n * sizeof(float)) == 0);
    float *gf = malloc(n * sizeof *gf), *gv = malloc(n * sizeof *gv);
    for (int b = 0; b < 3; b++) {
        loom_array xf, yf[2], xv, yv[2];
        loom_data df = batch_of(b * BATCH, BATCH, &xf, yf, NULL);
        loom_data dv = batch_of(b * BATCH, BATCH, &xv, yv, lengths + b * BATCH);
        float lf[2], lv[2];
        CHECK_STATUS(loom_gradients(fixed, &df, 0, NULL, gf, lf), LOOM_OK);
        CHECK_STATUS(loom_gradients(var, &dv, 0, NULL, gv, lv), LOOM_OK);
        if (loom_model_status(var)) fprintf(stderr, "var: %s\n", loom_model_error(var));
        /* the masked per-step loss (normalised by the valid steps) and the final-state head */
        CHECK_CLOSE(lv[0], lf[0], 1e-6, 1e-5);
        CHECK_CLOSE(lv[1], lf[1], 1e-6, 1e-5);
        CHECK(close_arrays(gv, gf, n, 1e-6, 1e-4));
        /* a per-batch array of exactly the batch's longest length, no lengths: the same */
        static const int longest[3] = {7, 19, 3};
        int T = longest[b];
        float *xi = malloc((size_t)BATCH * T * sizeof *xi), *ti = malloc((size_t)BATCH * T * sizeof *ti);
        for (int i = 0; i < BATCH; i++)
            for (int t = 0; t < T; t++) {
                xi[i * T + t] = ids[(b * BATCH + i) * TMAX + t];
                ti[i * T + t] = tags[(b * BATCH + i) * TMAX + t];
            }
        loom_array xo = {.name = "ids", .data = xi, .n = BATCH, .count = (size_t)BATCH * T};
        loom_array yo[2] = {{.name = "tags", .data = ti, .n = BATCH, .count = (size_t)BATCH * T}, yv[1]};
        loom_data d_own = {1, &xo, 2, yo, 0, NULL};
        float lo[2];
        float *go = malloc(n * sizeof *go);
        CHECK_STATUS(loom_gradients(var, &d_own, 0, NULL, go, lo), LOOM_OK);
        CHECK(memcmp(go, gv, n * sizeof *go) == 0); /* the same computation, to the bit */
        CHECK(lo[0] == lv[0] && lo[1] == lv[1]);
        /* the output sizes follow the batch: 7 steps x 3 classes */
        CHECK(loom_model_output_size(var, 0) == (size_t)T * 3);
        free(go);
        free(xi);
        free(ti);
    }
    free(gf);
    free(gv);
    loom_model_free(fixed);
    loom_model_free(var);
}

/* fit over the 12 samples in batches of 4 (7, 19, 3 steps after trimming): the weights follow
 * the fixed model's; predict on 25 steps (never seen) gives the fixed model's outputs at 19. */
static void fit_and_predict_match_fixed(void) {
    loom_model *fixed = make_model(TMAX, loom_adam(0.01f)), *var = make_model(LOOM_DIM_VARIABLE, loom_adam(0.01f));
    if (!fixed || !var) return;
    loom_array xf, yf[2], xv, yv[2];
    loom_data df = batch_of(0, N, &xf, yf, NULL), dv = batch_of(0, N, &xv, yv, lengths);
    loom_fit_options o = loom_fit_defaults();
    o.batch_size = BATCH;
    o.epochs = 3;
    o.shuffle = 0;
    CHECK_STATUS(loom_fit(fixed, &df, &o, NULL), LOOM_OK);
    CHECK_STATUS(loom_fit(var, &dv, &o, NULL), LOOM_OK);
    size_t n = loom_param_count(fixed);
    CHECK(close_arrays(loom_params(var), loom_params(fixed), n, 1e-5, 1e-4));

    /* the same sequences padded to 25 steps (a length no batch had) */
    enum { T25 = 25 };
    float *x25 = calloc((size_t)N * T25, sizeof *x25);
    for (int i = 0; i < N; i++) memcpy(x25 + i * T25, ids + i * TMAX, TMAX * sizeof *x25);
    loom_array a25 = {.name = "ids", .data = x25, .n = N, .count = (size_t)N * T25};
    CHECK(loom_model_output_size_at(var, 0, (int[]){T25}) == (size_t)T25 * 3);
    float *tv = malloc((size_t)N * T25 * 3 * sizeof *tv), pv[N], *tf = malloc((size_t)N * TMAX * 3 * sizeof *tf), pf[N];
    CHECK_STATUS(loom_predict(var, 1, &a25, 5, (float *[]){tv, pv}), LOOM_OK);
    CHECK_STATUS(loom_predict(fixed, 1, &xf, 5, (float *[]){tf, pf}), LOOM_OK);
    CHECK(close_arrays(pv, pf, N, 1e-6, 1e-5));
    int bad = 0; /* the per-step head at the valid steps */
    for (int i = 0; i < N; i++)
        for (int t = 0; t < lengths[i]; t++)
            for (int c = 0; c < 3; c++)
                bad += !(fabsf(tv[(i * T25 + t) * 3 + c] - tf[(i * TMAX + t) * 3 + c]) <= 1e-5f);
    CHECK(bad == 0);
    /* predict with lengths: each batch trimmed, the steps past it zero */
    float *tl = malloc((size_t)N * TMAX * 3 * sizeof *tl), pl[N];
    CHECK_STATUS(loom_predict(var, 1, &xv, BATCH, (float *[]){tl, pl}), LOOM_OK);
    CHECK(close_arrays(pl, pf, N, 1e-6, 1e-5));
    CHECK(tl[(0 * TMAX + 7) * 3] == 0.0f && tl[(0 * TMAX + 6) * 3] != 0.0f); /* batch 0 is 7 steps long */
    CHECK(loom_model_output_size(var, 0) == (size_t)TMAX * 3);                /* the arrays' steps again */
    free(x25);
    free(tv);
    free(tf);
    free(tl);
    loom_model_free(fixed);
    loom_model_free(var);
}

/* The same seed gives the same bits whether the arena is planned for 19 steps ahead or grows from
 * 7 steps to 19 (train_on_batch on per-batch data). */
static void plan_does_not_change_bits(void) {
    float *after[2];
    size_t n = 0;
    for (int ahead = 0; ahead < 2; ahead++) {
        loom_model *m = make_model(LOOM_DIM_VARIABLE, loom_adam(0.01f));
        if (!m) return;
        if (ahead) CHECK_STATUS(loom_model_set_max_steps(m, NULL, TMAX), LOOM_OK);
        for (int b = 0; b < 3; b++) {
            loom_array x, y[2];
            loom_data d = batch_of(b * BATCH, BATCH, &x, y, lengths + b * BATCH);
            CHECK_STATUS(loom_train_on_batch(m, &d, NULL, 0, NULL), LOOM_OK);
        }
        n = loom_param_count(m);
        after[ahead] = malloc(n * sizeof(float));
        memcpy(after[ahead], loom_params(m), n * sizeof(float));
        loom_model_free(m);
    }
    CHECK(memcmp(after[0], after[1], n * sizeof(float)) == 0);
    free(after[0]);
    free(after[1]);
}

/* x (None, 3) -> Conv1D(4, kernel 3, valid, tanh) -> GlobalAveragePooling1D -> Dense(2) (mse):
 * the output of the convolution is 2 steps shorter at every length. */
static loom_model *conv_model(void) {
    loom_graph *g = loom_graph_new(9);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){LOOM_DIM_VARIABLE, 3});
    loom_tensor *c = loom_call(loom_conv1d(g, "conv", 4, 3, 1, LOOM_PADDING_VALID, 1, LOOM_TANH, NULL), x);
    loom_tensor *p = loom_call(loom_global_average_pooling1d(g, "pool"), c);
    loom_tensor *y = loom_call(loom_dense(g, "out", 2, LOOM_LINEAR, NULL), p);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss l = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void finite_differences(void) {
    loom_model *m = conv_model();
    if (!m) return;
    size_t n = loom_param_count(m);
    float *g = malloc(n * sizeof *g);
    for (int T = 4; T <= 9; T += 5) {
        enum { B = 3 };
        float *x = malloc((size_t)B * T * 3 * sizeof *x), y[B * 2];
        for (int i = 0; i < B * T * 3; i++) x[i] = (float)((i * 37 % 23) - 11) / 9.0f;
        for (int i = 0; i < B * 2; i++) y[i] = (float)(i % 3) - 1.0f;
        loom_array xa = {.name = "x", .data = x, .n = B, .count = (size_t)B * T * 3};
        loom_array ya = {.name = "out", .data = y, .n = B, .count = B * 2};
        loom_data d = {1, &xa, 1, &ya, 0, NULL};
        float loss;
        CHECK_STATUS(loom_gradients(m, &d, 0, NULL, g, &loss), LOOM_OK);
        float *p = loom_params(m);
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            float keep = p[i];
            double h = 1e-2, lp, lm;
            p[i] = keep + (float)h;
            loom_history *r = NULL;
            CHECK_STATUS(loom_evaluate(m, &d, B, 0, &r), LOOM_OK);
            lp = loom_history_get(r, "loss", 0);
            loom_history_free(r);
            p[i] = keep - (float)h;
            CHECK_STATUS(loom_evaluate(m, &d, B, 0, &r), LOOM_OK);
            lm = loom_history_get(r, "loss", 0);
            loom_history_free(r);
            p[i] = keep;
            double num = (lp - lm) / (2 * h);
            if (!(fabs(num - g[i]) <= 2e-3 + 2e-2 * fabs(num))) {
                if (bad < 5) fprintf(stderr, "  T=%d param %zu: analytic %.6g numeric %.6g\n", T, i, (double)g[i], num);
                bad++;
            }
        }
        CHECK(bad == 0);
        CHECK(loom_model_output_size(m, 0) == 2);
        free(x);
    }
    /* too short for the kernel: an error naming the convolution, and the model still works */
    float x2[2 * 3] = {0}, y2[2] = {0};
    loom_array xa = {.name = "x", .data = x2, .n = 1, .count = 6};
    loom_array ya = {.name = "out", .data = y2, .n = 1, .count = 2};
    loom_data d = {1, &xa, 1, &ya, 0, NULL};
    CHECK_STATUS(loom_train_on_batch(m, &d, NULL, 0, NULL), LOOM_ERR_SHAPE);
    CHECK(strstr(loom_model_error(m), "conv") != NULL);
    free(g);
    loom_model_free(m);
}

static void build_errors(void) {
    loom_graph *g = loom_graph_new(1);
    CHECK(loom_input(g, "seq", 2, (int[]){4, LOOM_DIM_VARIABLE}) == NULL);
    CHECK(strstr(loom_graph_error(g), "seq") != NULL);
    loom_graph_free(g);

    g = loom_graph_new(1);
    loom_tensor *x = loom_input(g, "seq", 2, (int[]){LOOM_DIM_VARIABLE, 4});
    CHECK(loom_call(loom_flatten(g, "flat"), x) == NULL);
    CHECK(loom_graph_status(g) == LOOM_ERR_SHAPE && strstr(loom_graph_error(g), "flat") != NULL);
    loom_graph_free(g);

    g = loom_graph_new(1);
    x = loom_input(g, "ids", 1, (int[]){LOOM_DIM_VARIABLE});
    CHECK(loom_call(loom_dense(g, "over_steps", 3, LOOM_LINEAR, NULL), x) == NULL);
    CHECK(loom_graph_status(g) == LOOM_ERR_SHAPE && strstr(loom_graph_error(g), "over_steps") != NULL);
    loom_graph_free(g);

    /* a shared layer: built on a variable axis it takes any length; built on a fixed length it
     * refuses a variable one when it has weights (they might be sized by the steps) */
    g = loom_graph_new(1);
    loom_tensor *v = loom_input(g, "v", 2, (int[]){LOOM_DIM_VARIABLE, 4});
    loom_tensor *f10 = loom_input(g, "f10", 2, (int[]){10, 4});
    loom_layer *shared = loom_dense(g, "shared", 3, LOOM_LINEAR, NULL);
    CHECK(loom_call(shared, v) != NULL && loom_call(shared, f10) != NULL);
    loom_tensor *flat = loom_input(g, "flat10", 1, (int[]){40});
    loom_tensor *flatv = loom_input(g, "flatv", 1, (int[]){LOOM_DIM_VARIABLE});
    loom_layer *over = loom_dense(g, "over", 3, LOOM_LINEAR, NULL);
    CHECK(loom_call(over, flat) != NULL);
    CHECK(loom_call(over, flatv) == NULL && strstr(loom_graph_error(g), "over") != NULL);
    loom_graph_free(g);

    /* binding: a count that is no whole number of steps, lengths beyond the array, lengths on a
     * fixed input */
    loom_model *m = make_model(LOOM_DIM_VARIABLE, loom_sgd(0.1f, 0, 0)), *f = make_model(TMAX, loom_sgd(0.1f, 0, 0));
    if (!m || !f) return;
    float out[N * TMAX * 3], pout[N];
    loom_array bad = {.name = "ids", .data = ids, .n = 2, .count = 5};
    CHECK_STATUS(loom_predict(m, 1, &bad, 4, (float *[]){out, pout}), LOOM_ERR_DATA);
    CHECK(strstr(loom_model_error(m), "ids") != NULL);
    int too_long[2] = {3, TMAX + 1};
    loom_array lens = {.name = "ids", .data = ids, .n = 2, .count = 2 * TMAX, .lengths = too_long};
    CHECK_STATUS(loom_predict(m, 1, &lens, 4, (float *[]){out, pout}), LOOM_ERR_DATA);
    CHECK(strstr(loom_model_error(m), "sample 1") != NULL);
    CHECK_STATUS(loom_predict(f, 1, &lens, 4, (float *[]){out, pout}), LOOM_ERR_DATA);
    CHECK_STATUS(loom_model_set_max_steps(f, "ids", 10), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_model_set_max_steps(m, "nope", 10), LOOM_ERR_NAME);
    CHECK_STATUS(loom_model_set_max_steps(m, "ids", 0), LOOM_ERR_ARGUMENT);
    loom_model_free(m);
    loom_model_free(f);
}

/* Every layer family that takes sequences, built once with a variable time axis and once per
 * length with a fixed one (the same seed: the same weights): the predictions and the gradients
 * agree at each length, and lengths may go up and down (the arena is planned for the longest). */
static loom_model *zoo(int steps) {
    loom_graph *g = loom_graph_new(21);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){steps, 6});
    loom_tensor *c = loom_call(loom_conv1d(g, "conv", 8, 3, 1, LOOM_PADDING_SAME, 1, LOOM_RELU, NULL), x);
    loom_tensor *p = loom_call(loom_max_pooling1d(g, "pool", 2, 2, LOOM_PADDING_VALID), c);
    loom_tensor *n = loom_call(loom_layer_normalization(g, "norm", 1e-3f, 1, 1), p);
    loom_rnn_options seq = loom_rnn_defaults();
    seq.return_sequences = 1;
    loom_tensor *b = loom_call(loom_bidirectional(g, "bi", loom_gru(g, "gru", 4, &seq), LOOM_MERGE_CONCAT), n);
    loom_tensor *t = loom_call(loom_time_distributed(g, "td", loom_dense(g, "step_dense", 8, LOOM_TANH, NULL)), b);
    loom_tensor *a = loom_call_n(loom_multi_head_attention(g, "mha", 2, 4, 0, 1, 0), 2, (loom_tensor *[]){t, t});
    loom_tensor *s = loom_call_n(loom_add(g, "add"), 2, (loom_tensor *[]){t, a});
    loom_tensor *k = loom_call_n(loom_concatenate(g, "cat", -1), 2, (loom_tensor *[]){s, b});
    loom_tensor *d = loom_call(loom_dense(g, "per_step", 3, LOOM_LINEAR, NULL), k);
    loom_tensor *gp = loom_call(loom_global_average_pooling1d(g, "gap"), d);
    loom_rnn_options last = loom_rnn_defaults();
    loom_tensor *l = loom_call(loom_lstm(g, "lstm", 3, &last), k);
    loom_tensor *o = loom_call_n(loom_concatenate(g, "head_in", -1), 2, (loom_tensor *[]){gp, l});
    loom_tensor *y = loom_call(loom_dense(g, "out", 2, LOOM_LINEAR, NULL), o);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){y, d});
    if (!m) {
        fprintf(stderr, "zoo: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss l2[] = {{.name = "mse"}, {.name = "mse"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l2, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void layer_families(void) {
    loom_model *var = zoo(LOOM_DIM_VARIABLE);
    if (!var) return;
    size_t n = loom_param_count(var);
    float *gv = malloc(n * sizeof *gv), *gf = malloc(n * sizeof *gf);
    static const int lengths_seen[4] = {12, 6, 20, 8};
    for (int r = 0; r < 4; r++) {
        int T = lengths_seen[r], P = T / 2;
        loom_model *fixed = zoo(T);
        if (!fixed) break;
        CHECK(n == loom_param_count(fixed) && memcmp(loom_params(var), loom_params(fixed), n * sizeof(float)) == 0);
        enum { B = 3 };
        float *x = malloc((size_t)B * T * 6 * sizeof *x), *yd = calloc((size_t)B * P * 3, sizeof *yd), y[B * 2] = {0};
        for (int i = 0; i < B * T * 6; i++) x[i] = (float)((i * 29 % 31) - 15) / 10.0f;
        for (int i = 0; i < B * P * 3; i++) yd[i] = (float)(i % 5) / 5.0f;
        loom_array xa = {.name = "x", .data = x, .n = B, .count = (size_t)B * T * 6};
        loom_array ya[2] = {{.name = "out", .data = y, .n = B, .count = B * 2},
                            {.name = "per_step", .data = yd, .n = B, .count = (size_t)B * P * 3}};
        loom_data d = {1, &xa, 2, ya, 0, NULL};
        float lv[2], lf[2];
        CHECK_STATUS(loom_gradients(var, &d, 0, NULL, gv, lv), LOOM_OK);
        CHECK_STATUS(loom_gradients(fixed, &d, 0, NULL, gf, lf), LOOM_OK);
        CHECK(lv[0] == lf[0] && lv[1] == lf[1]); /* the same computation at the same shapes */
        CHECK(memcmp(gv, gf, n * sizeof *gv) == 0);
        CHECK(loom_model_output_size(var, 1) == (size_t)P * 3);
        free(x);
        free(yd);
        loom_model_free(fixed);
    }
    free(gv);
    free(gf);
    loom_model_free(var);
}

/* Keras files: a null time axis (Keras 3 batch_shape, Keras 2 batch_input_shape) is a variable
 * one, and loom writes it back as null (.loom and .keras read back variable). */
static void keras_files(void) {
    char err[512] = "";
    const char *k3 = "{\"class_name\": \"Functional\", \"config\": {\"name\": \"f\", \"layers\": ["
                     "{\"class_name\": \"InputLayer\", \"name\": \"seq\", \"config\": {\"name\": \"seq\", "
                     "\"batch_shape\": [null, null, 16]}, \"inbound_nodes\": []},"
                     "{\"class_name\": \"LSTM\", \"name\": \"l\", \"config\": {\"name\": \"l\", \"units\": 3}, "
                     "\"inbound_nodes\": [{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": "
                     "{\"shape\": [null, null, 16], \"keras_history\": [\"seq\", 0, 0]}}], \"kwargs\": {}}]}],"
                     "\"input_layers\": [[\"seq\", 0, 0]], \"output_layers\": [[\"l\", 0, 0]]}}";
    const char *k2 = "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                     "{\"class_name\": \"GRU\", \"config\": {\"name\": \"g\", \"units\": 2, \"batch_input_shape\": [null, null, 5]}},"
                     "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 1}}]}}";
    const char *texts[2] = {k3, k2};
    for (int f = 0; f < 2; f++) {
        loom_model *m = loom_model_import_memory(texts[f], strlen(texts[f]), "test.json", err, sizeof err);
        CHECK(m != NULL);
        if (!m) {
            fprintf(stderr, "import %d: %s\n", f, err);
            continue;
        }
        CHECK(loom_model_input_variable(m, 0) == 1);
        CHECK(loom_model_input_size(m, 0) == (f ? 5u : 16u)); /* one step until data says more */
        const char *exts[2] = {"loom", "keras"};
        for (int e = 0; e < 2; e++) {
            char path[128];
            snprintf(path, sizeof path, "/tmp/loom_varlen_%d_%d.%s", (int)getpid(), f, exts[e]);
            loom_status st = loom_model_export(m, path);
            if (st != LOOM_OK && e == 1) {
                printf("SKIP .keras export: %s\n", loom_model_error(m));
                continue;
            }
            CHECK_STATUS(st, LOOM_OK);
            loom_model *back = loom_model_import(path, err, sizeof err);
            CHECK(back != NULL && loom_model_input_variable(back, 0) == 1);
            if (!back) fprintf(stderr, "%s: %s\n", path, err);
            loom_model_free(back);
            remove(path);
        }
        loom_model_free(m);
    }
    /* a None beyond the time axis is still refused, naming the input */
    const char *bad = "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 1, \"batch_input_shape\": [null, 4, null]}}]}}";
    loom_model *m = loom_model_import_memory(bad, strlen(bad), "test.json", err, sizeof err);
    CHECK(m == NULL && strstr(err, "unknown dimension") != NULL);
    loom_model_free(m);
}

int main(void) {
    make_data();
    gradients_match_fixed();
    fit_and_predict_match_fixed();
    plan_does_not_change_bits();
    finite_differences();
    build_errors();
    keras_files();
    layer_families();
    return check_report("test_varlen");
}
