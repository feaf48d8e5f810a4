/* test_hostile_shapes.c — shapes and sizes from hostile model files and C API calls: every one is
 * refused with a message naming the layer and the dimension, and none corrupts memory (run under
 * ASan/UBSan by scripts/test.sh). Before the checked-shape helpers of base.h these inputs wrapped
 * size_t products (an arena of 64 floats for 2^64 + 64), overflowed int geometry (dilated
 * kernels, transposed-convolution sizes, paddings of 2^31 - 1, heads x key_dim) and cast 1e300 to
 * int. */
#include "check.h"
#include "loom.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_forge.h"

/* {"class_name": "Functional", ...}: an Input of the given batch_shape, then layers given as
 * (class, config) pairs, each called on the previous one. */
static char *chain_arch(const char *shape, int n, const char *const *cls, const char *const *cfg) {
    size_t cap = 4096 + 512 * (size_t)n;
    char *s = malloc(cap);
    size_t at = (size_t)snprintf(s, cap,
                          "{\"class_name\": \"Functional\", \"config\": {\"layers\": [{\"class_name\": "
                          "\"InputLayer\", \"name\": \"x\", \"config\": {\"batch_shape\": %s}, \"inbound_nodes\": []}",
                          shape);
    for (int i = 0; i < n; i++) {
        char prev[16] = "x";
        if (i > 0) snprintf(prev, sizeof prev, "l%d", i - 1);
        at += (size_t)snprintf(s + at, cap - at,
                               ", {\"class_name\": \"%s\", \"name\": \"l%d\", \"config\": {%s}, \"inbound_nodes\": "
                               "[{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": {\"keras_history\": "
                               "[\"%s\", 0, 0]}}], \"kwargs\": {}}]}",
                               cls[i], i, cfg[i], prev);
    }
    char last[16] = "x";
    if (n > 0) snprintf(last, sizeof last, "l%d", n - 1);
    snprintf(s + at, cap - at, "], \"input_layers\": [[\"x\", 0, 0]], \"output_layers\": [[\"%s\", 0, 0]]}}", last);
    return s;
}

static bool has(const char *msg, const char *part) {
    bool ok = strstr(msg, part) != NULL;
    if (!ok) fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", msg, part);
    return ok;
}

/* Loads the chain; returns the model (NULL with the message in err). */
static loom_model *load_chain(const char *shape, int n, const char *const *cls, const char *const *cfg, size_t n_w,
                              char *err, size_t errlen) {
    char *arch = chain_arch(shape, n, cls, cfg);
    size_t size;
    unsigned char *f = loom_file(arch, n_w, &size);
    err[0] = '\0';
    loom_model *m = loom_model_parse(f, size, "hostile.loom", err, errlen);
    free(f);
    free(arch);
    return m;
}

static void test_file_shapes(void) {
    char err[512];
    /* (2^29 + 2^15 + 1) x (2^29 - 2^15 + 1) x 64 = 2^64 + 64: a wrapped product sized the arena for
     * 64 floats; the pooling loop and im2col then wrote past it */
    const char *wrap = "[null, 536903681, 536838145, 64]";
    const char *after[3][2] = {{"MaxPooling2D", "\"pool_size\": [2, 2], \"padding\": \"valid\""},
                               {"Conv2D", "\"filters\": 2, \"kernel_size\": [3, 3], \"activation\": \"linear\""},
                               {"BatchNormalization", "\"axis\": -1"}};
    for (int k = 0; k < 3; k++) {
        const char *cls[1] = {after[k][0]}, *cfg[1] = {after[k][1]};
        loom_model *m = load_chain(wrap, 1, cls, cfg, 0, err, sizeof err);
        CHECK(m == NULL && has(err, "Input x") && has(err, "2^31 - 1") && has(err, "dimensions 1..2"));
        loom_model_free(m);
    }
    /* 65536^4 wraps to 0: was accepted as (None, 0) before a Flatten */
    {
        const char *cls[1] = {"Flatten"}, *cfg[1] = {""};
        loom_model *m = load_chain("[null, 65536, 65536, 65536, 65536]", 1, cls, cfg, 0, err, sizeof err);
        CHECK(m == NULL && has(err, "Input x") && has(err, "too large"));
        loom_model_free(m);
    }
    /* a layer whose output passes the limit: 40000 x 40000 fits, upsampled twice does not */
    {
        const char *cls[1] = {"UpSampling2D"}, *cfg[1] = {"\"size\": [2, 2]"};
        loom_model *m = load_chain("[null, 40000, 40000, 1]", 1, cls, cfg, 0, err, sizeof err);
        CHECK(m == NULL && has(err, "l0 (UpSampling2D)") && has(err, "output shape"));
        loom_model_free(m);
    }
    /* a dilated kernel whose size passes INT_MAX: (4 - 1) * 10^9 + 1 */
    {
        const char *cls[1] = {"Conv2D"};
        const char *cfg[1] = {"\"filters\": 1, \"kernel_size\": [4, 4], \"dilation_rate\": [1000000000, 1], "
                              "\"padding\": \"same\", \"activation\": \"linear\""};
        loom_model *m = load_chain("[null, 8, 8, 1]", 1, cls, cfg, 0, err, sizeof err);
        CHECK(m == NULL && has(err, "l0 (Conv2D)") && has(err, "dilated kernel's rows"));
        loom_model_free(m);
    }
    /* JSON numbers out of every range: refused or clamped, never cast (UBSan checks the casts) */
    const char *bad_numbers[][2] = {
        {"Dense", "\"units\": 1e300, \"activation\": \"linear\""},
        {"Dense", "\"units\": -1e300, \"activation\": \"linear\""},
        {"Conv1D", "\"filters\": 1e300, \"kernel_size\": [3], \"activation\": \"linear\""},
        {"Conv1D", "\"filters\": 2, \"kernel_size\": 1e300, \"activation\": \"linear\""},
        {"Conv1D", "\"filters\": 2, \"kernel_size\": [3], \"strides\": [1e300], \"activation\": \"linear\""},
        {"MaxPooling1D", "\"pool_size\": 1e300"},
        {"Dropout", "\"rate\": 1e300"},
        {"Concatenate", "\"axis\": 1e300"},
        {"BatchNormalization", "\"axis\": -1, \"epsilon\": 1e300, \"momentum\": -1e300"},
        {"LayerNormalization", "\"axis\": -1, \"epsilon\": 1e300"},
        {"Reshape", "\"target_shape\": [1e300]"},
    };
    for (size_t k = 0; k < sizeof bad_numbers / sizeof bad_numbers[0]; k++) {
        const char *cls[1] = {bad_numbers[k][0]}, *cfg[1] = {bad_numbers[k][1]};
        loom_model *m = load_chain("[null, 6, 4]", 1, cls, cfg, 0, err, sizeof err);
        CHECK(m == NULL && err[0]);
        loom_model_free(m);
    }
    /* an Input dimension of 1e300 */
    {
        loom_model *m = load_chain("[null, 1e300]", 0, NULL, NULL, 0, err, sizeof err);
        CHECK(m == NULL && err[0]);
        loom_model_free(m);
    }
}

/* ---------------------------------------------------------------- through the C API */

/* Calls `layer` on an Input of the given shape; expects a refusal whose message has both parts. */
static void refused(loom_graph *g, loom_layer *layer, int rank, const int *dims, const char *part1, const char *part2) {
    loom_tensor *x = loom_input(g, NULL, rank, dims);
    CHECK(x != NULL);
    loom_tensor *y = loom_call(layer, x);
    CHECK(y == NULL && loom_graph_status(g) == LOOM_ERR_SHAPE);
    CHECK(has(loom_graph_error(g), part1) && has(loom_graph_error(g), part2));
}

static void test_api_geometry(void) {
    const int img[3] = {4, 4, 1};
    {   /* pads of 2^31 - 1 passed the >= 0 check; loom_predict then segfaulted */
        loom_graph *g = loom_graph_new(1);
        refused(g, loom_zero_padding2d(g, "pad", 2147483647, 2147483647, 0, 0), 3, img, "pad (ZeroPadding2D)", "output rows");
        loom_graph_free(g);
        g = loom_graph_new(1);
        refused(g, loom_zero_padding2d(g, "pad", 0, 0, 2147483647, 1), 3, img, "pad (ZeroPadding2D)", "output columns");
        loom_graph_free(g);
    }
    {   /* cropping sums overflowed int */
        loom_graph *g = loom_graph_new(1);
        refused(g, loom_cropping2d(g, "crop", 2147483647, 2147483647, 0, 0), 3, img, "crop (Cropping2D)", "leaves nothing");
        loom_graph_free(g);
    }
    {
        loom_graph *g = loom_graph_new(1);
        refused(g, loom_upsampling2d(g, "up", 1 << 30, 1), 3, img, "up (UpSampling2D)", "output rows");
        loom_graph_free(g);
        g = loom_graph_new(1);
        refused(g, loom_upsampling2d(g, "up", 1 << 15, 1 << 15), 3, img, "up (UpSampling2D)", "2^31 - 1");
        loom_graph_free(g);
    }
    {   /* dilation x kernel */
        loom_graph *g = loom_graph_new(1);
        refused(g, loom_conv2d(g, "conv", 1, 3, 3, 1, 1, LOOM_PADDING_SAME, 1 << 30, 1, LOOM_LINEAR, NULL), 3, img,
                "conv (Conv2D)", "dilated kernel's rows");
        loom_graph_free(g);
        const int seq[2] = {8, 1};
        g = loom_graph_new(1);
        refused(g, loom_conv1d(g, "c1", 1, 5, 1, LOOM_PADDING_VALID, 1 << 29, LOOM_LINEAR, NULL), 2, seq, "c1 (Conv1D)",
                "dilated kernel's steps");
        loom_graph_free(g);
    }
    {   /* Conv2DTranspose: rows x stride */
        loom_graph *g = loom_graph_new(1);
        const int tall[3] = {65536, 1, 1};
        refused(g, loom_conv2d_transpose(g, "up_conv", 1, 1, 1, 65536, 1, LOOM_PADDING_SAME, LOOM_LINEAR, NULL), 3, tall,
                "up_conv (Conv2DTranspose)", "output rows");
        loom_graph_free(g);
        g = loom_graph_new(1);
        refused(g, loom_conv2d_transpose(g, "up_conv", 1, 3, 3, 1 << 16, 1 << 16, LOOM_PADDING_VALID, LOOM_LINEAR, NULL),
                3, img, "up_conv (Conv2DTranspose)", "output");
        loom_graph_free(g);
    }
    {   /* depthwise channels x multiplier */
        loom_graph *g = loom_graph_new(1);
        const int wide[3] = {1, 1, 1 << 16};
        refused(g, loom_depthwise_conv2d(g, "dw", 1, 1, 1, 1, LOOM_PADDING_VALID, 1 << 16, LOOM_LINEAR, NULL), 3, wide,
                "dw (DepthwiseConv2D)", "output channels");
        loom_graph_free(g);
    }
    {   /* MultiHeadAttention heads x key_dim */
        loom_graph *g = loom_graph_new(1);
        const int seq[2] = {4, 8};
        loom_tensor *x = loom_input(g, "q", 2, seq);
        loom_layer *mha = loom_multi_head_attention(g, "att", 65536, 65536, 0, 1, 0);
        loom_tensor *xs[2] = {x, x};
        CHECK(loom_call_n(mha, 2, xs) == NULL && has(loom_graph_error(g), "att (MultiHeadAttention)") &&
              has(loom_graph_error(g), "num_heads x key_dim"));
        loom_graph_free(g);
        /* the scores (heads, steps, steps) past the limit */
        g = loom_graph_new(1);
        const int long_seq[2] = {65536, 1};
        x = loom_input(g, "q", 2, long_seq);
        mha = loom_multi_head_attention(g, "att", 2, 1, 0, 1, 0);
        xs[0] = xs[1] = x;
        CHECK(loom_call_n(mha, 2, xs) == NULL && has(loom_graph_error(g), "attention scores"));
        loom_graph_free(g);
    }
    {   /* Concatenate: the joined axis */
        loom_graph *g = loom_graph_new(1);
        const int big[1] = {(1 << 30) + 1};
        loom_tensor *a = loom_input(g, "a", 1, big), *b = loom_input(g, "b", 1, big);
        loom_tensor *xs[2] = {a, b};
        CHECK(loom_call_n(loom_concatenate(g, "cat", -1), 2, xs) == NULL &&
              has(loom_graph_error(g), "cat (Concatenate)") && has(loom_graph_error(g), "concatenated axis"));
        loom_graph_free(g);
    }
    {   /* weights: Dense kernel (2^10, 2^22) = 2^32 elements */
        loom_graph *g = loom_graph_new(1);
        const int f[1] = {1 << 10};
        refused(g, loom_dense(g, "wide", 1 << 22, LOOM_LINEAR, NULL), 1, f, "wide (Dense)", "weight kernel");
        loom_graph_free(g);
    }
    {   /* Inputs: a dimension of 0, a product past the limit */
        loom_graph *g = loom_graph_new(1);
        const int zero[2] = {4, 0}, big[2] = {65536, 32768};
        CHECK(loom_input(g, "z", 2, zero) == NULL && has(loom_graph_error(g), "dimension 2 is 0"));
        loom_graph_free(g);
        g = loom_graph_new(1);
        CHECK(loom_input(g, "b", 2, big) == NULL && has(loom_graph_error(g), "Input b") &&
              has(loom_graph_error(g), "2^31 - 1"));
        loom_graph_free(g);
        /* at the limit exactly: accepted (nothing is allocated before planning) */
        g = loom_graph_new(1);
        const int edge[1] = {2147483647};
        CHECK(loom_input(g, "e", 1, edge) != NULL);
        loom_graph_free(g);
    }
}

/* Runs a chain of `layers` ReLUs on an Input of `size` floats per sample with this batch; the plan
 * must be refused before anything is read (n and count are as declared, the data is tiny). */
static void refused_plan(int size, int layers, int batch, const char *part) {
    loom_graph *g = loom_graph_new(1);
    const int dims[1] = {size};
    loom_tensor *x = loom_input(g, "x", 1, dims), *y = x;
    for (int i = 0; i < layers; i++) y = loom_call(loom_activation_layer(g, NULL, LOOM_RELU), y);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) return;
    float tiny[16] = {0}, out[16];
    loom_array xa = {.name = "x", .data = tiny, .n = (size_t)batch, .count = (size_t)batch * (size_t)size};
    /* the data is declared, not there: the finite-value check must not read it */
    CHECK(loom_set_check_finite(m, 0) == LOOM_OK);
    float *outs[1] = {out};
    CHECK(loom_predict(m, 1, &xa, batch, outs) == LOOM_ERR_MEMORY);
    CHECK(has(loom_model_error(m), "planning batch size") && has(loom_model_error(m), part));
    loom_model_free(m);
}

/* The planner: every node within the per-sample limit, but batch x size past what the kernels
 * count in ints, or the sum of all nodes past what the machine holds (past 2^64 floats the sum
 * wrapped to a small arena, and the gather wrote past it). */
static void test_planner(void) {
    refused_plan(2147483647, 9, 1 << 30, "more than 2^31 - 1 per batch");
    refused_plan(1 << 20, 1, 4096, "layer x (InputLayer) would hold 4294967296 floats");
    refused_plan(1 << 27, 64, 15, "GiB of activations, more than this machine's"); /* 64 x 7.5 GiB */
}

/* A small file declaring a huge architecture with an empty weight section: refused before the
 * model allocates (or initialises) its parameters. */
static void test_declared_weights(void) {
    char err[512];
    const char *cls[2] = {"Dense", "Dense"};
    const char *cfg[2] = {"\"units\": 16777216, \"activation\": \"linear\"", "\"units\": 60, \"activation\": \"linear\""};
    clock_t t0 = clock();
    loom_model *m = load_chain("[null, 60]", 2, cls, cfg, 0, err, sizeof err);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(m == NULL && has(err, "declares 2030043196 parameters") && has(err, "hold only 0"));
    CHECK(secs < 0.5); /* allocating and initialising 2 x 8 GB took seconds */
    loom_model_free(m);
    /* one value short */
    const char *cls1[1] = {"Dense"}, *cfg1[1] = {"\"units\": 3, \"activation\": \"linear\""};
    m = load_chain("[null, 4]", 1, cls1, cfg1, 14, err, sizeof err);
    CHECK(m == NULL && has(err, "declares 15 parameters"));
    loom_model_free(m);
    m = load_chain("[null, 4]", 1, cls1, cfg1, 15, err, sizeof err);
    CHECK(m != NULL);
    loom_model_free(m);
}

int main(void) {
    test_file_shapes();
    test_api_geometry();
    test_planner();
    test_declared_weights();
    return check_report("test_hostile_shapes");
}
