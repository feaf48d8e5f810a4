/* fuzz_arch.c — structure-aware libFuzzer target for graph building through the C API: the input's
 * bytes choose the inputs' shapes (small ones and ones near the limits: 2^15, 46341, 2^29 +- 2^15
 * + 1, 2^31 - 1), a sequence of layer classes with extreme but finite options (kernels, strides,
 * dilations, paddings, sizes, heads, units up to 2^31 - 1) and which earlier tensors each layer is
 * called on. Every call must either give a tensor or fail with a message; a model that builds and
 * is small enough to run (at most RUN_FLOATS activation and parameter floats per sample) gets a
 * compile, a training step on one sample (forward and backward) and a prediction. A mutated byte
 * stream stays a valid program, so the fuzzer explores shapes rather than parse errors; the
 * model-file fuzzer (fuzz_model) never reached these. */
#include "loom.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TENSORS 24
#define RUN_FLOATS (1 << 17)
#define RUN_TENSOR_FLOATS (1 << 14) /* per tensor: pooling windows and convolutions cost more */
/* loom_model_new allocates and initialises the parameters: past this many (weights declared by
 * the calls, which checked their shapes), the graph alone is tested */
#define MODEL_FLOATS (1 << 22)

typedef struct bytes {
    const uint8_t *p;
    size_t n, at;
} bytes;

static unsigned byte(bytes *b) { return b->at < b->n ? b->p[b->at++] : 0; }

/* A dimension or option: mostly small, sometimes near a limit. */
static int pick_int(bytes *b) {
    static const int big[] = {0,          -1,         32768,      46341,      65536,     1 << 20,
                              536903681,  536838145,  1 << 30,    2147483647, 2147483646, 1000000000};
    unsigned v = byte(b);
    if (v < 200) return (int)(v % 9) + 1; /* 1..9 */
    return big[(v - 200) % (sizeof big / sizeof big[0])];
}

/* A small positive size (keeps most models runnable). */
static int small_int(bytes *b) { return (int)(byte(b) % 6) + 1; }

static int pick_dim(bytes *b) { return byte(b) < 224 ? small_int(b) : pick_int(b); }

static float pick_float(bytes *b) {
    static const float f[] = {0.0f, 0.5f, 0.9f, 1e-7f, 1.0f, -1.0f, 1e30f, -1e30f, 0.999999f, 2.0f};
    return f[byte(b) % (sizeof f / sizeof f[0])];
}

static loom_padding pick_pad(bytes *b) { return byte(b) & 1 ? LOOM_PADDING_SAME : LOOM_PADDING_VALID; }

/* One layer of a class chosen by the bytes (NULL when its constructor refuses the options). */
static loom_layer *make_layer(loom_graph *g, bytes *b, int *n_inputs) {
    *n_inputs = 1;
    loom_activation act = (loom_activation)(byte(b) % 4); /* linear, relu, sigmoid, tanh, ... */
    switch (byte(b) % 30) {
    case 0: return loom_dense(g, NULL, pick_int(b), act, NULL);
    case 1: return loom_activation_layer(g, NULL, act);
    case 2: return loom_dropout(g, NULL, pick_float(b));
    case 3: *n_inputs = 2; return loom_add(g, NULL);
    case 4: *n_inputs = 2; return loom_multiply(g, NULL);
    case 5: *n_inputs = 2 + (int)(byte(b) % 2); return loom_concatenate(g, NULL, (int)(byte(b) % 5) - 2);
    case 6: return loom_flatten(g, NULL);
    case 7: {
        int dims[4] = {pick_dim(b), pick_dim(b), pick_dim(b), pick_dim(b)};
        if (byte(b) & 1) dims[byte(b) % 4] = -1;
        return loom_reshape(g, NULL, (int)(byte(b) % 4) + 1, dims);
    }
    case 8: return loom_conv1d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_pad(b), pick_int(b), act, NULL);
    case 9: return loom_conv2d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b), pick_int(b), pick_pad(b),
                               pick_int(b), pick_int(b), act, NULL);
    case 10: return loom_conv2d_transpose(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b), pick_int(b),
                                          pick_pad(b), act, NULL);
    case 11: return loom_depthwise_conv2d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b), pick_pad(b),
                                          pick_int(b), act, NULL);
    case 12: return loom_max_pooling1d(g, NULL, pick_int(b), pick_int(b), pick_pad(b));
    case 13: return loom_average_pooling2d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b), pick_pad(b));
    case 14: return loom_max_pooling2d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b), pick_pad(b));
    case 15: return byte(b) & 1 ? loom_global_average_pooling1d(g, NULL) : loom_global_max_pooling2d(g, NULL);
    case 16: return loom_upsampling2d(g, NULL, pick_int(b), pick_int(b));
    case 17: return loom_zero_padding2d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b));
    case 18: return loom_cropping2d(g, NULL, pick_int(b), pick_int(b), pick_int(b), pick_int(b));
    case 19: {
        loom_batchnorm_options o = loom_batchnorm_defaults();
        o.axis = (int)(byte(b) % 5) - 2;
        o.momentum = pick_float(b);
        o.epsilon = pick_float(b);
        return loom_batch_normalization(g, NULL, &o);
    }
    case 20: return loom_layer_normalization(g, NULL, pick_float(b), byte(b) & 1, byte(b) & 1);
    case 21: return loom_embedding(g, NULL, pick_int(b), pick_int(b), byte(b) & 1);
    case 22: {
        loom_rnn_options o = loom_rnn_defaults();
        o.return_sequences = byte(b) & 1;
        o.go_backwards = byte(b) & 1;
        unsigned k = byte(b) % 3;
        int units = pick_int(b);
        return k == 0 ? loom_simple_rnn(g, NULL, units, &o) : k == 1 ? loom_lstm(g, NULL, units, &o)
                                                                      : loom_gru(g, NULL, units, &o);
    }
    case 23: {
        loom_rnn_options o = loom_rnn_defaults();
        o.return_sequences = byte(b) & 1;
        loom_layer *inner = byte(b) & 1 ? loom_gru(g, NULL, pick_int(b), &o) : loom_lstm(g, NULL, pick_int(b), &o);
        return inner ? loom_bidirectional(g, NULL, inner, (loom_merge_mode)(byte(b) % 4)) : NULL;
    }
    case 24: {
        loom_layer *inner = byte(b) & 1 ? loom_dense(g, NULL, pick_int(b), act, NULL)
                                        : loom_conv1d(g, NULL, pick_int(b), pick_int(b), 1, pick_pad(b), 1, act, NULL);
        return inner ? loom_time_distributed(g, NULL, inner) : NULL;
    }
    case 25: *n_inputs = 2 + (int)(byte(b) % 2);
        return loom_multi_head_attention(g, NULL, pick_int(b), pick_int(b), byte(b) & 1 ? 0 : pick_int(b), byte(b) & 1,
                                         byte(b) & 1);
    case 26: {
        int perm[4] = {1, 2, 3, 4};
        int rank = (int)(byte(b) % 4) + 1;
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)(byte(b) % (unsigned)(i + 1)), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        return loom_permute(g, NULL, rank, perm);
    }
    case 27: return loom_repeat_vector(g, NULL, pick_int(b));
    case 28: *n_inputs = 2; return loom_subtract(g, NULL);
    default: return loom_average_pooling1d(g, NULL, pick_int(b), pick_int(b), pick_pad(b));
    }
}

static size_t shape_floats(const loom_tensor *t) {
    int dims[LOOM_MAX_RANK];
    int rank = loom_tensor_shape(t, dims);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0 || n > SIZE_MAX / (size_t)dims[i]) return SIZE_MAX;
        n *= (size_t)dims[i];
    }
    return n;
}

/* Compiles, takes one training step on one sample and predicts it. */
static void run_one_sample(loom_model *m, bytes *b) {
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_sgd(0.01f, 0, 0)};
    if (loom_compile(m, &cfg) != LOOM_OK) return;
    int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m);
    loom_array xs[4], ys[LOOM_MAX_OUTPUTS];
    float *buffers[4 + LOOM_MAX_OUTPUTS] = {0};
    float *outs[LOOM_MAX_OUTPUTS] = {0};
    int nb = 0;
    for (int i = 0; i < ni; i++) {
        size_t n = loom_model_input_size(m, i);
        float *x = buffers[nb++] = malloc(n * sizeof *x);
        if (!x) goto done;
        for (size_t j = 0; j < n; j++) x[j] = (float)(byte(b) % 8) - 1.0f; /* ids for an Embedding, too */
        xs[i] = (loom_array){.name = loom_model_input_name(m, i), .data = x, .n = 1, .count = n};
    }
    for (int k = 0; k < no; k++) {
        size_t n = loom_model_target_size(m, k);
        float *y = buffers[nb++] = calloc(n, sizeof *y);
        outs[k] = malloc(loom_model_output_size(m, k) * sizeof(float));
        if (!y || !outs[k]) goto done;
        ys[k] = (loom_array){.name = loom_model_output_name(m, k), .data = y, .n = 1, .count = n};
    }
    loom_data d = {ni, xs, no, ys, 0, NULL};
    float logs[8];
    int n_logs;
    loom_train_on_batch(m, &d, logs, 8, &n_logs);
    loom_predict(m, ni, xs, 1, outs);
done:
    for (int i = 0; i < nb; i++) free(buffers[i]);
    for (int k = 0; k < no; k++) free(outs[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bytes b = {data, size, 0};
    loom_graph *g = loom_graph_new(byte(&b));
    if (!g) return 0;
    loom_tensor *t[MAX_TENSORS];
    int nt = 0, n_inputs = 1 + (int)(byte(&b) % 2);
    loom_tensor *inputs[2];
    for (int i = 0; i < n_inputs; i++) {
        int rank = (int)(byte(&b) % 4) + 1, dims[4];
        for (int d = 0; d < rank; d++) dims[d] = pick_dim(&b);
        if (!(inputs[i] = loom_input(g, NULL, rank, dims))) goto out;
        t[nt++] = inputs[i];
    }
    int n_layers = (int)(byte(&b) % 10) + 1;
    size_t weights = 0;
    for (int l = 0; l < n_layers && nt < MAX_TENSORS; l++) {
        int n_in;
        loom_layer *L = make_layer(g, &b, &n_in);
        if (!L) goto out; /* refused with a message: the graph keeps it */
        loom_tensor *xs[3];
        for (int i = 0; i < n_in; i++) xs[i] = t[nt - 1 - (int)(byte(&b) % (unsigned)nt)];
        loom_tensor *y = loom_call_n(L, n_in, xs);
        if (!y) goto out;
        t[nt++] = y;
        for (int w = 0; w < loom_layer_num_weights(L); w++) weights += loom_layer_weight_size(L, w);
    }
    if (weights > MODEL_FLOATS) goto out;
    {
        /* outputs: the last tensor, sometimes another one too */
        loom_tensor *outputs[2] = {t[nt - 1], t[(int)(byte(&b) % (unsigned)nt)]};
        int n_out = outputs[1] != outputs[0] && !(byte(&b) & 1) ? 2 : 1;
        loom_model *m = loom_model_new(g, n_inputs, inputs, n_out, outputs);
        if (!m) goto out;
        size_t floats = loom_param_count(m);
        for (int i = 0; i < nt; i++) {
            size_t s = shape_floats(t[i]);
            floats = s > RUN_TENSOR_FLOATS || floats > RUN_FLOATS ? SIZE_MAX : floats + s;
        }
#ifdef FUZZ_ARCH_PRINT /* a driver's build that shows what an input makes */
        loom_summary(m, stderr);
#endif
        if (floats <= RUN_FLOATS) run_one_sample(m, &b);
        loom_model_free(m); /* frees the graph too */
        return 0;
    }
out:
    if (loom_graph_status(g) != LOOM_OK && !loom_graph_error(g)[0]) {
        fprintf(stderr, "a refused call left no message\n");
        abort();
    }
    loom_graph_free(g);
    return 0;
}
