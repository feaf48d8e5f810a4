/* test_conv.c — convolution and spatial layers (src/layers/layer_conv.c, layer_pool.c, layer_spatial.c):
 *   - forward values against PyTorch (tests/reference/conv_ref.txt, written by conv_ref.py) for
 *     Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, every pooling, UpSampling2D,
 *     ZeroPadding2D and Cropping2D, valid and same, strides, dilation, activations;
 *   - central-difference checks of input and weight gradients for every class (op_harness.h);
 *   - hand-computed cases: max-pooling ties, average pooling over a padded border;
 *   - Keras's output-shape and weight-shape rules, names, bad-argument and bad-shape errors;
 *   - a small CNN through the public API that learns (loss goes down) and prints a summary. */
#include "fixture.h"
#include "op_harness.h"
#include "train_check.h"

#include <string.h>

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif

/* ---------------------------------------------------------------- layers from a config */

enum {
    C_CONV1D,
    C_CONV2D,
    C_CONVT,
    C_DEPTHWISE,
    C_MAX1D,
    C_AVG1D,
    C_MAX2D,
    C_AVG2D,
    C_GAP1D,
    C_GMP1D,
    C_GAP2D,
    C_GMP2D,
    C_UP,
    C_ZPAD,
    C_CROP,
    C_COUNT
};

static const char *const class_names[C_COUNT][2] = {
    {"Conv1D", "conv1d"},
    {"Conv2D", "conv2d"},
    {"Conv2DTranspose", "conv2d_transpose"},
    {"DepthwiseConv2D", "depthwise_conv2d"},
    {"MaxPooling1D", "max_pooling1d"},
    {"AveragePooling1D", "average_pooling1d"},
    {"MaxPooling2D", "max_pooling2d"},
    {"AveragePooling2D", "average_pooling2d"},
    {"GlobalAveragePooling1D", "global_average_pooling1d"},
    {"GlobalMaxPooling1D", "global_max_pooling1d"},
    {"GlobalAveragePooling2D", "global_average_pooling2d"},
    {"GlobalMaxPooling2D", "global_max_pooling2d"},
    {"UpSampling2D", "up_sampling2d"},
    {"ZeroPadding2D", "zero_padding2d"},
    {"Cropping2D", "cropping2d"},
};

/* The argument lists of conv_ref.py's CLASSES (a[] after the class code). */
static loom_layer *make_layer(loom_graph *g, int cls, const int *a) {
    loom_conv_options o = loom_conv_defaults();
    switch (cls) {
    case C_CONV1D:
        o.use_bias = a[5];
        return loom_conv1d(g, NULL, a[0], a[1], a[2], (loom_padding)a[3], a[4], (loom_activation)a[6], &o);
    case C_CONV2D:
        o.use_bias = a[8];
        return loom_conv2d(g, NULL, a[0], a[1], a[2], a[3], a[4], (loom_padding)a[5], a[6], a[7],
                           (loom_activation)a[9], &o);
    case C_CONVT:
        o.use_bias = a[6];
        return loom_conv2d_transpose(g, NULL, a[0], a[1], a[2], a[3], a[4], (loom_padding)a[5],
                                     (loom_activation)a[7], &o);
    case C_DEPTHWISE:
        o.use_bias = a[6];
        return loom_depthwise_conv2d(g, NULL, a[0], a[1], a[2], a[3], (loom_padding)a[4], a[5],
                                     (loom_activation)a[7], &o);
    case C_MAX1D: return loom_max_pooling1d(g, NULL, a[0], a[1], (loom_padding)a[2]);
    case C_AVG1D: return loom_average_pooling1d(g, NULL, a[0], a[1], (loom_padding)a[2]);
    case C_MAX2D: return loom_max_pooling2d(g, NULL, a[0], a[1], a[2], a[3], (loom_padding)a[4]);
    case C_AVG2D: return loom_average_pooling2d(g, NULL, a[0], a[1], a[2], a[3], (loom_padding)a[4]);
    case C_GAP1D: return loom_global_average_pooling1d(g, NULL);
    case C_GMP1D: return loom_global_max_pooling1d(g, NULL);
    case C_GAP2D: return loom_global_average_pooling2d(g, NULL);
    case C_GMP2D: return loom_global_max_pooling2d(g, NULL);
    case C_UP: return loom_upsampling2d(g, NULL, a[0], a[1]);
    case C_ZPAD: return loom_zero_padding2d(g, NULL, a[0], a[1], a[2], a[3]);
    case C_CROP: return loom_cropping2d(g, NULL, a[0], a[1], a[2], a[3]);
    default: return NULL;
    }
}

static loom_shape shape3(int rank, int d0, int d1, int d2) {
    loom_shape s = {rank, {d0, d1, d2, 0}};
    return s;
}

/* ---------------------------------------------------------------- forward against PyTorch */

static void check_fixture_case(const fixture *fx, const char *id) {
    char key[FIXTURE_NAME_MAX + 16];
    snprintf(key, sizeof key, "%s.cfg", id);
    const double *cfg = fixture_get(fx, key, 0);
    if (!cfg) return;
    int cls = (int)cfg[0], a[12] = {0};
    size_t n_cfg = 0;
    for (int i = 0; i < fx->count; i++)
        if (strcmp(fx->arrays[i].name, key) == 0) n_cfg = fx->arrays[i].n;
    for (size_t i = 1; i < n_cfg && i <= 12; i++) a[i - 1] = (int)cfg[i];
    CHECK(cls >= 0 && cls < C_COUNT);
    if (cls < 0 || cls >= C_COUNT) return;

    snprintf(key, sizeof key, "%s.in_shape", id);
    const double *ins = fixture_get(fx, key, 0);
    snprintf(key, sizeof key, "%s.out_shape", id);
    const double *outs = fixture_get(fx, key, 0);
    if (!ins || !outs) return;
    int in_rank = (cls == C_CONV1D || cls == C_MAX1D || cls == C_AVG1D || cls == C_GAP1D || cls == C_GMP1D) ? 2 : 3;
    loom_shape in = shape3(in_rank, (int)ins[0], (int)ins[1], in_rank == 3 ? (int)ins[2] : 0);

    loom_graph *g = loom_graph_new(3);
    loom_layer *L = make_layer(g, cls, a);
    CHECK(L != NULL);
    if (!L) {
        fprintf(stderr, "  %s: %s\n", id, loom_graph_error(g));
        loom_graph_free(g);
        return;
    }
    CHECK(strcmp(loom_layer_class(L), class_names[cls][0]) == 0);
    CHECK(strcmp(loom_layer_name(L), class_names[cls][1]) == 0);

    op_harness H;
    loom_status s = oph_init(&H, L, 1, &in, 2, 1, 5);
    CHECK_STATUS(s, LOOM_OK);
    if (s == LOOM_OK) {
        int out_rank = H.out_shape.rank;
        bool shape_ok = true;
        for (int i = 0; i < out_rank; i++) shape_ok = shape_ok && H.out_shape.dims[i] == (int)outs[i];
        if (!shape_ok) fprintf(stderr, "  %s: output shape differs from the reference\n", id);
        CHECK(shape_ok);
        snprintf(key, sizeof key, "%s.x", id);
        fixture_floats(fx, key, H.in[0], H.in_n[0]);
        snprintf(key, sizeof key, "%s.w", id);
        if (H.n_w) fixture_floats(fx, key, H.w, H.n_w);
        else CHECK(fixture_get(fx, key, 0) != NULL);
        snprintf(key, sizeof key, "%s.y", id);
        const double *y = shape_ok ? fixture_get(fx, key, H.out_n) : NULL;
        if (y) {
            oph_forward(&H);
            int bad = 0;
            for (size_t i = 0; i < H.out_n; i++)
                if (!(fabs(H.out[i] - y[i]) <= 1e-5 + 1e-5 * fabs(y[i])) && bad++ < 3)
                    fprintf(stderr, "  %s: y[%zu] = %.8g, PyTorch %.8g\n", id, i, H.out[i], y[i]);
            CHECK(bad == 0);
        }
    } else {
        fprintf(stderr, "  %s: %s\n", id, H.err.msg);
    }
    oph_free(&H);
    loom_graph_free(g);
}

static void test_against_pytorch(void) {
    fixture fx;
    if (fixture_load(&fx, LOOM_TEST_DIR "/reference/conv_ref.txt") != 0) {
        fixture_free(&fx);
        return;
    }
    int cases = 0;
    bool seen[C_COUNT] = {false};
    for (int i = 0; i < fx.count; i++) {
        const char *name = fx.arrays[i].name;
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, ".cfg") != 0) continue;
        char id[FIXTURE_NAME_MAX];
        snprintf(id, sizeof id, "%.*s", (int)(len - 4), name);
        int cls = fx.arrays[i].n ? (int)fx.arrays[i].v[0] : -1;
        if (cls >= 0 && cls < C_COUNT) seen[cls] = true;
        check_fixture_case(&fx, id);
        cases++;
    }
    CHECK(cases >= 40);
    for (int c = 0; c < C_COUNT; c++) CHECK(seen[c]); /* every class has a reference */
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- gradients */

/* Distinct inputs at least 2/n apart in a scrambled order: max pooling's central differences
 * would be meaningless across a near-tie. */
static void spread_inputs(op_harness *H) {
    size_t n = H->in_n[0];
    for (size_t i = 0; i < n; i++) H->in[0][i] = (float)((i * 7919) % n) * 2.0f / (float)n - 1.0f;
}

static void grad_case(const char *label, int cls, const int *a, loom_shape in, int batch) {
    loom_graph *g = loom_graph_new(11);
    loom_layer *L = make_layer(g, cls, a);
    CHECK(L != NULL);
    if (!L) {
        fprintf(stderr, "  %s: %s\n", label, loom_graph_error(g));
        loom_graph_free(g);
        return;
    }
    op_harness H;
    loom_status s = oph_init(&H, L, 1, &in, batch, 1, 17);
    CHECK_STATUS(s, LOOM_OK);
    if (s == LOOM_OK) {
        if (cls == C_MAX1D || cls == C_MAX2D || cls == C_GMP1D || cls == C_GMP2D) spread_inputs(&H);
        oph_grad_check(&H, label, NULL);
    } else {
        fprintf(stderr, "  %s: %s\n", label, H.err.msg);
    }
    oph_free(&H);
    loom_graph_free(g);
}

static void test_gradients(void) {
    /* conv arguments as conv_ref.py; act 0 linear, 3 tanh (relu's kink would defeat differences) */
    grad_case("Conv1D same s2", C_CONV1D, (int[]){3, 3, 2, 1, 1, 1, 0}, shape3(2, 9, 2, 0), 2);
    grad_case("Conv1D same d2 tanh", C_CONV1D, (int[]){2, 3, 1, 1, 2, 1, 3}, shape3(2, 8, 3, 0), 2);
    grad_case("Conv1D valid no bias", C_CONV1D, (int[]){2, 4, 1, 0, 1, 0, 0}, shape3(2, 7, 2, 0), 3);
    grad_case("Conv2D valid", C_CONV2D, (int[]){3, 3, 2, 1, 1, 0, 1, 1, 1, 0}, shape3(3, 5, 6, 2), 2);
    grad_case("Conv2D same s2", C_CONV2D, (int[]){2, 3, 3, 2, 2, 1, 1, 1, 1, 0}, shape3(3, 7, 6, 2), 2);
    grad_case("Conv2D same k4 s(2,3)", C_CONV2D, (int[]){2, 4, 4, 2, 3, 1, 1, 1, 1, 0}, shape3(3, 6, 7, 2), 2);
    grad_case("Conv2D same d2 tanh", C_CONV2D, (int[]){2, 3, 3, 1, 1, 1, 2, 2, 1, 3}, shape3(3, 6, 5, 2), 2);
    grad_case("Conv2D valid d(2,1) no bias", C_CONV2D, (int[]){2, 2, 3, 1, 1, 0, 2, 1, 0, 0},
              shape3(3, 5, 5, 3), 2);
    grad_case("Conv2D softmax", C_CONV2D, (int[]){3, 2, 2, 1, 1, 1, 1, 1, 1, 4}, shape3(3, 3, 4, 2), 2);
    grad_case("Conv2DTranspose valid s2", C_CONVT, (int[]){3, 3, 3, 2, 2, 0, 1, 0}, shape3(3, 3, 4, 2), 2);
    grad_case("Conv2DTranspose same s2", C_CONVT, (int[]){2, 3, 3, 2, 2, 1, 1, 0}, shape3(3, 3, 3, 2), 2);
    grad_case("Conv2DTranspose same k4 s2 tanh", C_CONVT, (int[]){2, 4, 4, 2, 2, 1, 1, 3},
              shape3(3, 3, 2, 3), 2);
    grad_case("Conv2DTranspose valid k2 s3", C_CONVT, (int[]){2, 2, 2, 3, 3, 0, 0, 0}, shape3(3, 2, 3, 2), 2);
    grad_case("DepthwiseConv2D m2 valid", C_DEPTHWISE, (int[]){3, 3, 1, 1, 0, 2, 1, 0}, shape3(3, 5, 5, 3), 2);
    grad_case("DepthwiseConv2D m2 same s2 tanh", C_DEPTHWISE, (int[]){3, 2, 2, 2, 1, 2, 1, 3},
              shape3(3, 5, 6, 2), 2);
    grad_case("DepthwiseConv2D m1 same no bias", C_DEPTHWISE, (int[]){2, 2, 1, 1, 1, 1, 0, 0},
              shape3(3, 4, 4, 3), 2);
    grad_case("MaxPooling1D same 3 s2", C_MAX1D, (int[]){3, 2, 1}, shape3(2, 8, 2, 0), 2);
    grad_case("MaxPooling1D valid overlap", C_MAX1D, (int[]){3, 1, 0}, shape3(2, 7, 2, 0), 2);
    grad_case("AveragePooling1D same 3 s2", C_AVG1D, (int[]){3, 2, 1}, shape3(2, 7, 3, 0), 2);
    grad_case("MaxPooling2D valid", C_MAX2D, (int[]){2, 2, 2, 2, 0}, shape3(3, 4, 6, 2), 2);
    grad_case("MaxPooling2D same 3 s2", C_MAX2D, (int[]){3, 3, 2, 2, 1}, shape3(3, 5, 6, 2), 2);
    grad_case("AveragePooling2D same 3 s2", C_AVG2D, (int[]){3, 3, 2, 2, 1}, shape3(3, 5, 6, 2), 2);
    grad_case("AveragePooling2D valid 2x3 s(1,2)", C_AVG2D, (int[]){2, 3, 1, 2, 0}, shape3(3, 4, 6, 2), 2);
    grad_case("GlobalAveragePooling1D", C_GAP1D, NULL, shape3(2, 5, 3, 0), 2);
    grad_case("GlobalMaxPooling1D", C_GMP1D, NULL, shape3(2, 5, 3, 0), 2);
    grad_case("GlobalAveragePooling2D", C_GAP2D, NULL, shape3(3, 3, 4, 2), 2);
    grad_case("GlobalMaxPooling2D", C_GMP2D, NULL, shape3(3, 3, 4, 2), 2);
    grad_case("UpSampling2D (2,3)", C_UP, (int[]){2, 3}, shape3(3, 2, 3, 2), 2);
    grad_case("ZeroPadding2D", C_ZPAD, (int[]){1, 2, 0, 3}, shape3(3, 3, 2, 2), 2);
    grad_case("Cropping2D", C_CROP, (int[]){1, 0, 2, 1}, shape3(3, 5, 6, 2), 2);
}

/* ---------------------------------------------------------------- large batches */

/* At these sizes the column buffer no longer holds the whole batch (13 samples: chunks of 12 and
 * 1). Conv2DTranspose T (filters F, input C channels) and Conv2D D (filters C, input F channels)
 * with the same stride and padding share one kernel array, (kh, kw, F, C), and are adjoint:
 *   <D(z), x> = <z, T(x)>,  dT/dx applied to z = D(z),  dD/dz applied to x = T(x),
 *   and both kernel gradients equal. Every chunked path is checked against another one, and D's
 * batch result against D run one sample at a time. */
static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static int count_far(const float *a, const float *b, size_t n, double tol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(fabs((double)a[i] - b[i]) <= tol * (1.0 + fabs((double)b[i])));
    return bad;
}

static void test_chunked_batches(void) {
    enum { B = 13, C = 8, F = 64 };
    loom_graph *g = loom_graph_new(1);
    loom_conv_options nb = loom_conv_defaults();
    nb.use_bias = 0;
    loom_layer *T = loom_conv2d_transpose(g, NULL, F, 3, 3, 2, 2, LOOM_PADDING_SAME, LOOM_LINEAR, &nb);
    loom_layer *D = loom_conv2d(g, NULL, C, 3, 3, 2, 2, LOOM_PADDING_SAME, 1, 1, LOOM_LINEAR, &nb);
    loom_shape xs = shape3(3, 24, 24, C), zs = shape3(3, 48, 48, F);
    op_harness HT, HD;
    loom_status st = oph_init(&HT, T, 1, &xs, B, 0, 1), sd = oph_init(&HD, D, 1, &zs, B, 0, 2);
    CHECK_STATUS(st, LOOM_OK);
    CHECK_STATUS(sd, LOOM_OK);
    if (st == LOOM_OK && sd == LOOM_OK) {
        CHECK(HT.n_w == HD.n_w && HT.out_n == HD.in_n[0] && HD.out_n == HT.in_n[0]);
        /* the column buffer holds fewer samples than the batch */
        CHECK(HD.n_scratch < (size_t)B * 24 * 24 * 9 * F);
        memcpy(HD.w, HT.w, HT.n_w * sizeof(float));
        /* T: input x, upstream z; D: input z, upstream x */
        memcpy(HD.in[0], HT.dout, HT.out_n * sizeof(float));
        memcpy(HD.dout, HT.in[0], HT.in_n[0] * sizeof(float));
        oph_forward(&HT);
        oph_forward(&HD);
        memset(HT.din[0], 0, HT.in_n[0] * sizeof(float));
        memset(HD.din[0], 0, HD.in_n[0] * sizeof(float));
        memset(HT.dw, 0, HT.n_w * sizeof(float));
        memset(HD.dw, 0, HD.n_w * sizeof(float));
        oph_backward(&HT);
        oph_backward(&HD);
        double lhs = dot(HD.out, HT.in[0], HT.in_n[0]), rhs = dot(HT.dout, HT.out, HT.out_n);
        CHECK_CLOSE(lhs, rhs, 1e-3, 1e-4);
        CHECK(count_far(HT.din[0], HD.out, HD.out_n, 1e-4) == 0);
        CHECK(count_far(HD.din[0], HT.out, HT.out_n, 1e-4) == 0);
        CHECK(count_far(HT.dw, HD.dw, HD.n_w, 1e-4) == 0);

        /* D one sample at a time (chunks of 1) gives the batch's outputs and gradients */
        float *y1 = malloc(HD.out_n * sizeof(float)), *dx1 = calloc(HD.in_n[0], sizeof(float)),
              *dw1 = calloc(HD.n_w, sizeof(float));
        if (y1 && dx1 && dw1) {
            size_t in1 = HD.in_n[0] / B, out1 = HD.out_n / B;
            for (int b = 0; b < B; b++) {
                const float *xb[1] = {HD.in[0] + b * in1};
                float *dxb[1] = {dx1 + b * in1};
                loom_op_ctx c = oph_ctx(&HD, dxb, dw1);
                c.batch = 1;
                c.in = xb;
                c.out = y1 + b * out1;
                c.dout = HD.dout_work + b * out1; /* oph_ctx refreshed it from r */
                D->op->forward(D, &c);
                D->op->backward(D, &c);
            }
            CHECK(count_far(y1, HD.out, HD.out_n, 1e-5) == 0);
            CHECK(count_far(dx1, HD.din[0], HD.in_n[0], 1e-5) == 0);
            CHECK(count_far(dw1, HD.dw, HD.n_w, 1e-4) == 0);
        }
        free(y1);
        free(dx1);
        free(dw1);
    }
    oph_free(&HT);
    oph_free(&HD);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- hand-computed cases */

/* Runs a weightless layer on given inputs: forward into y, backward of dy from zero into dx. */
static void run_hand(loom_layer *L, loom_shape in, int batch, const float *x, const float *dy,
                     float *y, float *dx) {
    op_harness H;
    loom_status s = oph_init(&H, L, 1, &in, batch, 0, 1);
    CHECK_STATUS(s, LOOM_OK);
    if (s == LOOM_OK) {
        memcpy(H.in[0], x, H.in_n[0] * sizeof(float));
        oph_forward(&H);
        memcpy(y, H.out, H.out_n * sizeof(float));
        if (dy) {
            memcpy(H.dout, dy, H.out_n * sizeof(float));
            memset(H.din[0], 0, H.in_n[0] * sizeof(float));
            oph_backward(&H);
            memcpy(dx, H.din[0], H.in_n[0] * sizeof(float));
        }
    }
    oph_free(&H);
}

static void test_hand_cases(void) {
    loom_graph *g = loom_graph_new(1);
    float y[16], dx[32];

    /* ties: the whole gradient goes to the first maximal entry of the window */
    const float x1[4] = {1, 3, 3, 2}, d1[1] = {5};
    run_hand(loom_max_pooling1d(g, NULL, 4, 0, LOOM_PADDING_VALID), shape3(2, 4, 1, 0), 1, x1, d1, y, dx);
    CHECK_CLOSE(y[0], 3, 0, 0);
    CHECK(dx[0] == 0 && dx[1] == 5 && dx[2] == 0 && dx[3] == 0);

    /* 2x2 window [[5, 7], [7, 1]]: first in row-major order is (0, 1) */
    const float x2[4] = {5, 7, 7, 1}, d2[1] = {2};
    run_hand(loom_max_pooling2d(g, NULL, 2, 2, 0, 0, LOOM_PADDING_VALID), shape3(3, 2, 2, 1), 1, x2, d2, y, dx);
    CHECK_CLOSE(y[0], 7, 0, 0);
    CHECK(dx[0] == 0 && dx[1] == 2 && dx[2] == 0 && dx[3] == 0);

    /* overlapping windows (pool 2, stride 1) over [4, 4, 4]: each window's first entry */
    const float x3[3] = {4, 4, 4}, d3[2] = {1, 10};
    run_hand(loom_max_pooling1d(g, NULL, 2, 1, LOOM_PADDING_VALID), shape3(2, 3, 1, 0), 1, x3, d3, y, dx);
    CHECK(dx[0] == 1 && dx[1] == 10 && dx[2] == 0);

    /* global max over positions, per channel: channel 0 [2, 5, 5] -> position 1 */
    const float x4[6] = {2, 0, 5, -1, 5, -1}, d4[2] = {3, 4};
    run_hand(loom_global_max_pooling1d(g, NULL), shape3(2, 3, 2, 0), 1, x4, d4, y, dx);
    CHECK(y[0] == 5 && y[1] == 0);
    CHECK(dx[0] == 0 && dx[2] == 3 && dx[4] == 0 && dx[1] == 4 && dx[3] == 0 && dx[5] == 0);

    /* average pooling, same: [1, 2, 3] pool 2 stride 1 -> (1+2)/2, (2+3)/2, 3/1 (the padded
     * entry is not counted) */
    const float x5[3] = {1, 2, 3}, d5[3] = {1, 1, 1};
    run_hand(loom_average_pooling1d(g, NULL, 2, 1, LOOM_PADDING_SAME), shape3(2, 3, 1, 0), 1, x5, d5, y, dx);
    CHECK_CLOSE(y[0], 1.5, 1e-6, 0);
    CHECK_CLOSE(y[1], 2.5, 1e-6, 0);
    CHECK_CLOSE(y[2], 3.0, 1e-6, 0);
    CHECK_CLOSE(dx[0], 0.5, 1e-6, 0);
    CHECK_CLOSE(dx[1], 1.0, 1e-6, 0);
    CHECK_CLOSE(dx[2], 1.5, 1e-6, 0);

    /* 2-D same, 3x3 window stride 1 on a 2x2 image: every window holds the 4 real entries */
    const float x6[4] = {1, 2, 3, 6};
    run_hand(loom_average_pooling2d(g, NULL, 3, 3, 1, 1, LOOM_PADDING_SAME), shape3(3, 2, 2, 1), 1, x6, NULL, y, dx);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(y[i], 3.0, 1e-6, 0);

    /* max pooling, same: the padding never wins, even over negative inputs */
    const float x7[3] = {-3, -2, -5};
    run_hand(loom_max_pooling1d(g, NULL, 2, 2, LOOM_PADDING_SAME), shape3(2, 3, 1, 0), 1, x7, NULL, y, dx);
    CHECK(y[0] == -2 && y[1] == -5);
    CHECK(loom_graph_status(g) == LOOM_OK);
    loom_graph_free(g);

    /* Conv2D 1x1 kernel through the whole batch equals a per-pixel matrix product, and the
     * transposed convolution with stride 1, kernel 1 is the same map (kernel (1,1,F,C)). */
    g = loom_graph_new(1);
    loom_conv_options nb = loom_conv_defaults();
    nb.use_bias = 0;
    loom_layer *L = loom_conv2d_transpose(g, NULL, 2, 1, 1, 1, 1, LOOM_PADDING_VALID, LOOM_LINEAR, &nb);
    op_harness H;
    loom_shape in = shape3(3, 1, 2, 3);
    if (oph_init(&H, L, 1, &in, 1, 0, 1) == LOOM_OK) {
        const float xv[6] = {1, 2, 3, 4, 5, 6};
        const float wv[6] = {1, 0, -1, /* filter 0 */ 2, 1, 0 /* filter 1 */}; /* (1,1,F=2,C=3) */
        memcpy(H.in[0], xv, sizeof xv);
        memcpy(H.w, wv, sizeof wv);
        oph_forward(&H);
        CHECK_CLOSE(H.out[0], 1 - 3, 1e-6, 0);
        CHECK_CLOSE(H.out[1], 2 + 2, 1e-6, 0);
        CHECK_CLOSE(H.out[2], 4 - 6, 1e-6, 0);
        CHECK_CLOSE(H.out[3], 8 + 5, 1e-6, 0);
    }
    oph_free(&H);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- shapes and weights */

/* Calls a layer on an Input of the given shape; returns the output rank (dims into out), or -1
 * with the graph's error left in place. */
static int out_shape_of(loom_graph *g, loom_layer *L, int rank, const int *dims, int *out) {
    loom_tensor *x = loom_input(g, NULL, rank, dims);
    loom_tensor *y = L ? loom_call(L, x) : NULL;
    if (!y) return -1;
    return loom_tensor_shape(y, out);
}

static void expect_shape(loom_layer *(*mk)(loom_graph *), int rank, const int *dims, int want_rank,
                         const int *want, const char *what) {
    loom_graph *g = loom_graph_new(1);
    int out[LOOM_MAX_RANK] = {0};
    int r = out_shape_of(g, mk(g), rank, dims, out);
    bool ok = r == want_rank;
    for (int i = 0; ok && i < r; i++) ok = out[i] == want[i];
    if (!ok)
        fprintf(stderr, "  shape %s: got rank %d (%d, %d, %d) %s\n", what, r, out[0], out[1], out[2],
                loom_graph_error(g));
    CHECK(ok);
    loom_graph_free(g);
}

static loom_layer *mk_c2_same_s2(loom_graph *g) {
    return loom_conv2d(g, NULL, 5, 3, 3, 2, 2, LOOM_PADDING_SAME, 0, 0, LOOM_LINEAR, NULL);
}
static loom_layer *mk_c2_valid_s2(loom_graph *g) {
    return loom_conv2d(g, NULL, 5, 3, 2, 2, 3, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL);
}
static loom_layer *mk_c2_valid_d3(loom_graph *g) {
    return loom_conv2d(g, NULL, 1, 3, 3, 1, 1, LOOM_PADDING_VALID, 3, 2, LOOM_LINEAR, NULL);
}
static loom_layer *mk_c1_valid_d2(loom_graph *g) {
    return loom_conv1d(g, NULL, 4, 3, 0, LOOM_PADDING_VALID, 2, LOOM_RELU, NULL);
}
static loom_layer *mk_c1_same_s3(loom_graph *g) {
    return loom_conv1d(g, NULL, 4, 5, 3, LOOM_PADDING_SAME, 1, LOOM_RELU, NULL);
}
static loom_layer *mk_ct_valid_k3s2(loom_graph *g) {
    return loom_conv2d_transpose(g, NULL, 6, 3, 3, 2, 2, LOOM_PADDING_VALID, LOOM_LINEAR, NULL);
}
static loom_layer *mk_ct_valid_k2s3(loom_graph *g) {
    return loom_conv2d_transpose(g, NULL, 6, 2, 2, 3, 3, LOOM_PADDING_VALID, LOOM_LINEAR, NULL);
}
static loom_layer *mk_ct_same_s2(loom_graph *g) {
    return loom_conv2d_transpose(g, NULL, 6, 3, 5, 2, 3, LOOM_PADDING_SAME, LOOM_LINEAR, NULL);
}
static loom_layer *mk_dw_m3(loom_graph *g) {
    return loom_depthwise_conv2d(g, NULL, 3, 3, 1, 1, LOOM_PADDING_VALID, 3, LOOM_LINEAR, NULL);
}
static loom_layer *mk_mp_default(loom_graph *g) {
    return loom_max_pooling2d(g, NULL, 0, 0, 0, 0, LOOM_PADDING_VALID);
}
static loom_layer *mk_ap_same(loom_graph *g) {
    return loom_average_pooling2d(g, NULL, 3, 3, 2, 2, LOOM_PADDING_SAME);
}
static loom_layer *mk_mp1_default(loom_graph *g) {
    return loom_max_pooling1d(g, NULL, 0, 0, LOOM_PADDING_VALID);
}
static loom_layer *mk_gap2(loom_graph *g) { return loom_global_average_pooling2d(g, NULL); }
static loom_layer *mk_gmp1(loom_graph *g) { return loom_global_max_pooling1d(g, NULL); }
static loom_layer *mk_up(loom_graph *g) { return loom_upsampling2d(g, NULL, 2, 3); }
static loom_layer *mk_pad(loom_graph *g) { return loom_zero_padding2d(g, NULL, 1, 2, 3, 4); }
static loom_layer *mk_crop(loom_graph *g) { return loom_cropping2d(g, NULL, 1, 2, 3, 0); }

static void test_shapes(void) {
    const int img[3] = {7, 8, 3}, seq[2] = {11, 2}, small[3] = {3, 4, 2};
    expect_shape(mk_c2_same_s2, 3, img, 3, (int[]){4, 4, 5}, "Conv2D same s2");   /* ceil(7/2), ceil(8/2) */
    expect_shape(mk_c2_valid_s2, 3, img, 3, (int[]){3, 3, 5}, "Conv2D valid s(2,3)"); /* (7-3)/2+1, (8-2)/3+1 */
    expect_shape(mk_c2_valid_d3, 3, img, 3, (int[]){1, 4, 1}, "Conv2D valid d(3,2)"); /* 7-7+1, 8-5+1 */
    expect_shape(mk_c1_valid_d2, 2, seq, 2, (int[]){7, 4}, "Conv1D valid d2");     /* 11-5+1 */
    expect_shape(mk_c1_same_s3, 2, seq, 2, (int[]){4, 4}, "Conv1D same s3");       /* ceil(11/3) */
    expect_shape(mk_ct_valid_k3s2, 3, small, 3, (int[]){7, 9, 6}, "Conv2DTranspose valid k3 s2");
    /* stride > kernel: Keras's (in-1)*s + max(k, s) = in*s */
    expect_shape(mk_ct_valid_k2s3, 3, small, 3, (int[]){9, 12, 6}, "Conv2DTranspose valid k2 s3");
    expect_shape(mk_ct_same_s2, 3, small, 3, (int[]){6, 12, 6}, "Conv2DTranspose same s(2,3)");
    expect_shape(mk_dw_m3, 3, img, 3, (int[]){5, 6, 9}, "DepthwiseConv2D m3");
    expect_shape(mk_mp_default, 3, img, 3, (int[]){3, 4, 3}, "MaxPooling2D defaults");
    expect_shape(mk_ap_same, 3, img, 3, (int[]){4, 4, 3}, "AveragePooling2D same s2");
    expect_shape(mk_mp1_default, 2, seq, 2, (int[]){5, 2}, "MaxPooling1D defaults");
    expect_shape(mk_gap2, 3, img, 1, (int[]){3}, "GlobalAveragePooling2D");
    expect_shape(mk_gmp1, 2, seq, 1, (int[]){2}, "GlobalMaxPooling1D");
    expect_shape(mk_up, 3, small, 3, (int[]){6, 12, 2}, "UpSampling2D");
    expect_shape(mk_pad, 3, small, 3, (int[]){6, 11, 2}, "ZeroPadding2D");
    expect_shape(mk_crop, 3, img, 3, (int[]){4, 5, 3}, "Cropping2D");
}

/* Keras weight layouts: kernel and bias shapes of each convolution. */
static void expect_weights(loom_layer *(*mk)(loom_graph *), int rank, const int *dims, int kr,
                           const int *kdims, int bias_n) {
    loom_graph *g = loom_graph_new(1);
    loom_layer *L = mk(g);
    int out[LOOM_MAX_RANK];
    CHECK(out_shape_of(g, L, rank, dims, out) > 0);
    if (L && loom_graph_status(g) == LOOM_OK) {
        CHECK(loom_layer_num_weights(L) == 2);
        CHECK(strcmp(loom_layer_weight_name(L, 0), "kernel") == 0);
        int d[LOOM_MAX_RANK] = {0};
        CHECK(loom_layer_weight_shape(L, 0, d) == kr);
        for (int i = 0; i < kr; i++) CHECK(d[i] == kdims[i]);
        CHECK(strcmp(loom_layer_weight_name(L, 1), "bias") == 0);
        CHECK(loom_layer_weight_size(L, 1) == (size_t)bias_n);
    }
    loom_graph_free(g);
}

static void test_weight_layouts(void) {
    const int img[3] = {7, 8, 3}, seq[2] = {11, 2}, small[3] = {3, 4, 2};
    expect_weights(mk_c2_same_s2, 3, img, 4, (int[]){3, 3, 3, 5}, 5);
    expect_weights(mk_c1_valid_d2, 2, seq, 3, (int[]){3, 2, 4}, 4);
    expect_weights(mk_ct_same_s2, 3, small, 4, (int[]){3, 5, 6, 2}, 6);
    expect_weights(mk_dw_m3, 3, img, 4, (int[]){3, 3, 3, 3}, 9);

    /* no bias; kernel default glorot_uniform over fans (9*3, 9*5); regularizers declared */
    loom_graph *g = loom_graph_new(1);
    loom_conv_options o = loom_conv_defaults();
    o.use_bias = 0;
    o.kernel_regularizer.l2 = 0.01f;
    loom_layer *L = loom_conv2d(g, NULL, 5, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_LINEAR, &o);
    int out[LOOM_MAX_RANK];
    CHECK(out_shape_of(g, L, 3, img, out) == 3);
    if (L && loom_graph_status(g) == LOOM_OK) {
        CHECK(loom_layer_num_weights(L) == 1);
        CHECK(L->weights[0].init == LOOM_INIT_GLOROT_UNIFORM);
        CHECK(L->weights[0].reg.l2 == 0.01f);
    }
    /* a second call must see the same input shape */
    loom_tensor *x2 = loom_input(g, "other", 3, (int[]){7, 8, 4});
    CHECK(loom_call(L, x2) == NULL);
    CHECK(loom_graph_status(g) != LOOM_OK);
    loom_graph_free(g);

    /* the default bias initialiser is zeros; options are honoured */
    g = loom_graph_new(1);
    o = loom_conv_defaults();
    o.kernel_initializer = LOOM_INIT_HE_NORMAL;
    o.bias_initializer = LOOM_INIT_ONES;
    L = loom_depthwise_conv2d(g, NULL, 2, 2, 1, 1, LOOM_PADDING_VALID, 1, LOOM_LINEAR, &o);
    CHECK(out_shape_of(g, L, 3, img, out) == 3);
    if (L && loom_graph_status(g) == LOOM_OK) {
        CHECK(L->weights[0].init == LOOM_INIT_HE_NORMAL);
        CHECK(L->weights[1].init == LOOM_INIT_ONES);
    }
    loom_graph_free(g);
    g = loom_graph_new(1);
    L = loom_conv1d(g, NULL, 2, 2, 1, LOOM_PADDING_VALID, 1, LOOM_LINEAR, NULL);
    CHECK(out_shape_of(g, L, 2, seq, out) == 2);
    if (L && loom_graph_status(g) == LOOM_OK) CHECK(L->weights[1].init == LOOM_INIT_ZEROS);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

/* A constructor that must fail: NULL, the status, the layer's name in the message; and the
 * failure is sticky (a later, valid constructor returns NULL too). */
static void expect_ctor_error(loom_layer *L, loom_graph *g, loom_status want, const char *name) {
    CHECK(L == NULL);
    CHECK_STATUS(loom_graph_status(g), want);
    if (!strstr(loom_graph_error(g), name))
        fprintf(stderr, "  message without '%s': %s\n", name, loom_graph_error(g));
    CHECK(strstr(loom_graph_error(g), name) != NULL);
    CHECK(loom_max_pooling2d(g, NULL, 2, 2, 0, 0, LOOM_PADDING_VALID) == NULL);
    CHECK(loom_conv2d(g, NULL, 1, 1, 1, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL) == NULL);
}

#define CTOR_ERR(expr, want, name)                                                                  \
    do {                                                                                            \
        loom_graph *g = loom_graph_new(1);                                                          \
        expect_ctor_error(expr, g, want, name);                                                     \
        loom_graph_free(g);                                                                         \
    } while (0)

/* A layer that builds fine but cannot take this input: loom_call fails with the status and a
 * message naming the layer. */
static void expect_call_error(loom_layer *(*mk)(loom_graph *), int rank, const int *dims,
                              loom_status want, const char *name) {
    loom_graph *g = loom_graph_new(1);
    int out[LOOM_MAX_RANK];
    CHECK(out_shape_of(g, mk(g), rank, dims, out) == -1);
    CHECK_STATUS(loom_graph_status(g), want);
    if (!strstr(loom_graph_error(g), name))
        fprintf(stderr, "  message without '%s': %s\n", name, loom_graph_error(g));
    CHECK(strstr(loom_graph_error(g), name) != NULL);
    loom_graph_free(g);
}

static loom_layer *mk_c2_valid_k5(loom_graph *g) {
    return loom_conv2d(g, "big_kernel", 2, 5, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL);
}
static loom_layer *mk_c1_valid_dil(loom_graph *g) {
    return loom_conv1d(g, "dilated", 2, 3, 1, LOOM_PADDING_VALID, 3, LOOM_LINEAR, NULL); /* spans 7 */
}
static loom_layer *mk_crop_all(loom_graph *g) { return loom_cropping2d(g, "crop_all", 2, 2, 0, 0); }
static loom_layer *mk_crop_cols(loom_graph *g) { return loom_cropping2d(g, "crop_cols", 0, 0, 3, 1); }
static loom_layer *mk_mp_big(loom_graph *g) {
    return loom_max_pooling2d(g, "big_pool", 5, 2, 0, 0, LOOM_PADDING_VALID);
}
static loom_layer *mk_named_conv2d(loom_graph *g) {
    return loom_conv2d(g, "c2", 2, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_LINEAR, NULL);
}
static loom_layer *mk_named_conv1d(loom_graph *g) {
    return loom_conv1d(g, "c1", 2, 3, 1, LOOM_PADDING_SAME, 1, LOOM_LINEAR, NULL);
}
static loom_layer *mk_named_gap1d(loom_graph *g) { return loom_global_average_pooling1d(g, "gap"); }
static loom_layer *mk_named_up(loom_graph *g) { return loom_upsampling2d(g, "up", 2, 2); }
static loom_layer *mk_named_ct(loom_graph *g) {
    return loom_conv2d_transpose(g, "ct", 2, 3, 3, 2, 2, LOOM_PADDING_SAME, LOOM_LINEAR, NULL);
}

static void test_errors(void) {
    /* constructor arguments */
    CTOR_ERR(loom_conv2d(g, "c", 0, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "c (Conv2D)");
    CTOR_ERR(loom_conv2d(g, NULL, 2, 0, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "conv2d (Conv2D): kernel_size");
    CTOR_ERR(loom_conv2d(g, "c", 2, 3, 3, -1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "strides");
    CTOR_ERR(loom_conv2d(g, "c", 2, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, -2, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "dilation_rate");
    CTOR_ERR(loom_conv2d(g, "sd", 2, 3, 3, 2, 1, LOOM_PADDING_SAME, 1, 2, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "sd (Conv2D)"); /* strides > 1 with dilation > 1: Keras refuses */
    CTOR_ERR(loom_conv1d(g, "sd1", 2, 3, 2, LOOM_PADDING_SAME, 2, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "sd1 (Conv1D)");
    CTOR_ERR(loom_conv2d(g, "c", 2, 3, 3, 1, 1, (loom_padding)7, 1, 1, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "padding");
    CTOR_ERR(loom_conv1d(g, "c", 2, 3, 1, LOOM_PADDING_VALID, 1, (loom_activation)99, NULL),
             LOOM_ERR_ARGUMENT, "activation");
    CTOR_ERR(loom_conv1d(g, NULL, -1, 3, 1, LOOM_PADDING_VALID, 1, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "conv1d (Conv1D): filters");
    CTOR_ERR(loom_conv1d(g, NULL, 2, 0, 1, LOOM_PADDING_VALID, 1, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "kernel_size");
    CTOR_ERR(loom_conv2d_transpose(g, NULL, 0, 3, 3, 2, 2, LOOM_PADDING_VALID, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "conv2d_transpose (Conv2DTranspose)");
    CTOR_ERR(loom_depthwise_conv2d(g, NULL, 3, 3, 1, 1, LOOM_PADDING_VALID, 0, LOOM_LINEAR, NULL),
             LOOM_ERR_ARGUMENT, "depth_multiplier");
    loom_conv_options bad = loom_conv_defaults();
    bad.kernel_regularizer.l1 = -1;
    CTOR_ERR(loom_conv2d(g, "r", 2, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, &bad),
             LOOM_ERR_ARGUMENT, "regularizer");
    bad = loom_conv_defaults();
    bad.bias_initializer = (loom_initializer)42;
    CTOR_ERR(loom_conv2d(g, "i", 2, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, &bad),
             LOOM_ERR_ARGUMENT, "initializer");
    CTOR_ERR(loom_max_pooling2d(g, "p", -2, 2, 0, 0, LOOM_PADDING_VALID), LOOM_ERR_ARGUMENT,
             "p (MaxPooling2D): pool_size");
    CTOR_ERR(loom_average_pooling1d(g, NULL, 2, -1, LOOM_PADDING_VALID), LOOM_ERR_ARGUMENT,
             "average_pooling1d (AveragePooling1D): strides");
    CTOR_ERR(loom_max_pooling1d(g, NULL, 2, 1, (loom_padding)-1), LOOM_ERR_ARGUMENT, "padding");
    CTOR_ERR(loom_upsampling2d(g, NULL, 0, 2), LOOM_ERR_ARGUMENT, "up_sampling2d (UpSampling2D)");
    CTOR_ERR(loom_zero_padding2d(g, "zp", 1, -1, 0, 0), LOOM_ERR_ARGUMENT, "zp (ZeroPadding2D)");
    CTOR_ERR(loom_cropping2d(g, NULL, 0, 0, -3, 0), LOOM_ERR_ARGUMENT, "cropping2d (Cropping2D)");

    /* shapes met at the call */
    const int img[3] = {4, 3, 2}, seq[2] = {6, 2}, flat[1] = {12}, vol[4] = {2, 3, 4, 2};
    expect_call_error(mk_c2_valid_k5, 3, img, LOOM_ERR_SHAPE, "big_kernel (Conv2D)");
    expect_call_error(mk_c1_valid_dil, 2, seq, LOOM_ERR_SHAPE, "dilated (Conv1D)");
    expect_call_error(mk_crop_all, 3, img, LOOM_ERR_SHAPE, "crop_all (Cropping2D)");
    expect_call_error(mk_crop_cols, 3, img, LOOM_ERR_SHAPE, "crop_cols");
    expect_call_error(mk_mp_big, 3, img, LOOM_ERR_SHAPE, "big_pool (MaxPooling2D)");
    expect_call_error(mk_named_conv2d, 2, seq, LOOM_ERR_SHAPE, "c2 (Conv2D)");
    expect_call_error(mk_named_conv2d, 4, vol, LOOM_ERR_SHAPE, "(rows, cols, channels)");
    expect_call_error(mk_named_conv1d, 3, img, LOOM_ERR_SHAPE, "c1 (Conv1D)");
    expect_call_error(mk_named_gap1d, 1, flat, LOOM_ERR_SHAPE, "gap (GlobalAveragePooling1D)");
    expect_call_error(mk_named_up, 2, seq, LOOM_ERR_SHAPE, "up (UpSampling2D)");
    expect_call_error(mk_named_ct, 1, flat, LOOM_ERR_SHAPE, "ct (Conv2DTranspose)");
    /* same padding takes a kernel larger than the input */
    loom_graph *g = loom_graph_new(1);
    int out[LOOM_MAX_RANK];
    loom_layer *L = loom_conv2d(g, NULL, 2, 5, 5, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_LINEAR, NULL);
    CHECK(out_shape_of(g, L, 3, img, out) == 3 && out[0] == 4 && out[1] == 3);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- end to end */

static void test_small_cnn(void) {
    enum { N = 64, CLASSES = 2 };
    loom_graph *g = loom_graph_new(2024);
    loom_tensor *x = loom_input(g, "image", 3, (int[]){8, 8, 1});
    loom_tensor *t = loom_call(loom_conv2d(g, NULL, 4, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_RELU, NULL), x);
    t = loom_call(loom_max_pooling2d(g, NULL, 2, 2, 0, 0, LOOM_PADDING_VALID), t);
    t = loom_call(loom_flatten(g, NULL), t);
    loom_tensor *y = loom_call(loom_dense(g, "probs", CLASSES, LOOM_SOFTMAX, NULL), t);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  small CNN: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return;
    }
    /* 3*3*1*4 + 4 and 4*4*4*2 + 2 */
    CHECK(loom_param_count(m) == 40 + 130);

    /* class 0: a bright bar in the top half, class 1: in the bottom half, plus noise */
    static float images[N * 64], labels[N * CLASSES];
    for (int n = 0; n < N; n++) {
        int cls = n % 2;
        for (int p = 0; p < 64; p++) images[n * 64 + p] = 0.3f * (loom_uniform01(77, (uint64_t)(n * 64 + p)) - 0.5f);
        int row = (cls ? 4 : 0) + (int)(loom_uniform01(78, (uint64_t)n) * 4);
        for (int c = 0; c < 8; c++) images[n * 64 + row * 8 + c] += 1.0f;
        labels[n * CLASSES + 0] = cls == 0;
        labels[n * CLASSES + 1] = cls == 1;
    }
    loom_loss loss = {.name = "categorical_crossentropy"};
    loom_metric_spec acc = {NULL, "accuracy"};
    loom_compile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_losses = 1;
    cfg.losses = &loss;
    cfg.n_metrics = 1;
    cfg.metrics = &acc;
    cfg.optimizer = loom_adam(0.02f);
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);

    loom_array xa = {.name = "image", .data = images, .n = N, .count = N * 64}, ya = {.name = "probs", .data = labels, .n = N, .count = N * CLASSES};
    loom_data data = {1, &xa, 1, &ya, 0, NULL};
    loom_history *after = check_fit_lowers_loss(m, &data, 16, 8, 5, "small CNN");
    CHECK(loom_history_get(after, "accuracy", 0) >= 0.9f);

    CHECK(loom_model_output_size(m, 0) == CLASSES);

    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        CHECK_STATUS(loom_summary(m, f), LOOM_OK);
        long size = ftell(f);
        char text[8192] = {0};
        rewind(f);
        size_t got = fread(text, 1, sizeof text - 1, f);
        CHECK(size > 0 && got > 0);
        CHECK(strstr(text, "Conv2D") != NULL);
        CHECK(strstr(text, "MaxPooling2D") != NULL);
        CHECK(strstr(text, "(None, 8, 8, 4)") != NULL);
        CHECK(strstr(text, "(None, 4, 4, 4)") != NULL);
        fclose(f);
    }
    loom_history_free(after);
    loom_model_free(m);
}

int main(void) {
    test_against_pytorch();
    test_gradients();
    test_chunked_batches();
    test_hand_cases();
    test_shapes();
    test_weight_layouts();
    test_errors();
    test_small_cnn();
    (void)fixture_scalar; /* fixture.h helper this test does not need */
    return check_report("test_conv");
}
