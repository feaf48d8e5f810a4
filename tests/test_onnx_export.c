/* test_onnx_export.c — loom_model_export_onnx against ONNX Runtime.
 *
 * One deterministic model per layer family (fixed graph seed, then every parameter overwritten by
 * a fixed formula so the weights do not depend on the initialisers; BatchNormalization's moving
 * statistics made non-trivial) plus the README's seed model with both heads. Each is exported to
 * ONNX and loom's predictions on fixed inputs are compared with ONNX Runtime's outputs for the same
 * model and inputs, committed in tests/reference/onnx_ort.txt by tests/reference/onnx_ort.sh
 * (which runs this program with --write DIR, then onnx_ort.js in onnxruntime-node on DIR).
 * Agreement: |loom - ort| <= 1e-5 * max(|ort|, max |ort| of that output / 10).
 *
 * Also: the exported files' structure read back with protobuf-c (opset, names, symbolic batch and
 * time axes), the errors (a user C layer, a mask reaching a recurrent layer, an unwritable path,
 * a build without ONNX). The exported models stay in LOOM_ONNX_OUT_DIR for the ONNX checker test
 * (scripts/onnx_check.py, ctest onnx_checker). */
#include "check.h"
#include "fixture.h"
#include "loom.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef LOOM_HAVE_ONNX
#include "onnx.pb-c.h"
#endif

#ifndef LOOM_ONNX_OUT_DIR
#define LOOM_ONNX_OUT_DIR "onnx_models"
#endif

#define BATCH 3

/* ---------------------------------------------------------------- deterministic models */

/* Every parameter from a fixed formula (in (-0.6, 0.6)), then moving variances made positive. */
static void set_params(loom_model *m) {
    float *p = loom_params(m);
    size_t n = loom_param_count(m);
    for (size_t i = 0; i < n; i++) p[i] = 0.6f * (float)sin(0.7 * (double)i + 0.3) * (float)cos(0.013 * (double)i);
    for (int l = 0; l < loom_model_num_layers(m); l++) {
        loom_layer *L = loom_model_layer(m, l);
        for (int w = 0; w < loom_layer_num_weights(L); w++)
            if (strcmp(loom_layer_weight_name(L, w), "moving_variance") == 0) {
                float *v = p + loom_param_offset(m, loom_layer_name(L), w);
                for (size_t i = 0; i < loom_layer_weight_size(L, w); i++) v[i] = 0.4f + 0.5f * fabsf(v[i]);
            }
    }
}

/* The per-sample input shapes of the last model made (for the manifest). */
static int in_rank[8], in_dims[8][LOOM_MAX_RANK];

static loom_model *finish(loom_graph *g, int n_in, loom_tensor *const *in, int n_out, loom_tensor *const *out) {
    for (int i = 0; i < n_in && i < 8; i++) in_rank[i] = in[i] ? loom_tensor_shape(in[i], in_dims[i]) : 0;
    loom_model *m = loom_model_new(g, n_in, in, n_out, out);
    if (!m) {
        fprintf(stderr, "model: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    set_params(m);
    return m;
}

static loom_tensor *call(loom_layer *L, loom_tensor *x) { return loom_call(L, x); }

static loom_model *model_seed(void) { /* README.md and examples/seed_model.c */
    loom_graph *g = loom_graph_new(7);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){16});
    loom_tensor *a = call(loom_dense(g, "A", 32, LOOM_RELU, NULL), x);
    loom_tensor *b = call(loom_dense(g, "B", 32, LOOM_RELU, NULL), a);
    loom_tensor *c = call(loom_dense(g, "C", 4, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), b);
    return finish(g, 1, &x, 2, (loom_tensor *[]){c, d});
}

static loom_model *model_activations(void) {
    loom_graph *g = loom_graph_new(1);
    loom_dense_options nob = loom_dense_defaults();
    nob.use_bias = 0;
    loom_tensor *x = loom_input(g, "x", 1, (int[]){6});
    loom_tensor *h = call(loom_dense(g, "gelu", 8, LOOM_GELU, NULL), x);
    h = call(loom_dropout(g, "drop", 0.5f), h);
    h = call(loom_dense(g, "elu", 8, LOOM_ELU, &nob), h);
    h = call(loom_activation_layer(g, "swish", LOOM_SWISH), h);
    h = call(loom_dense(g, "leaky", 8, LOOM_LEAKY_RELU, NULL), h);
    h = call(loom_activation_layer(g, "softplus", LOOM_SOFTPLUS), h);
    loom_tensor *s = call(loom_dense(g, "sig", 3, LOOM_SIGMOID, NULL), h);
    loom_tensor *t = call(loom_activation_layer(g, "tanh", LOOM_TANH), call(loom_dense(g, "lin", 5, LOOM_LINEAR, NULL), h));
    loom_tensor *r = call(loom_dropout(g, "drop_out", 0.2f), call(loom_dense(g, "relu", 4, LOOM_RELU, NULL), x));
    return finish(g, 1, &x, 3, (loom_tensor *[]){s, t, r});
}

static loom_model *model_conv1d(void) {
    loom_graph *g = loom_graph_new(2);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){11, 3});
    loom_tensor *h = call(loom_conv1d(g, "c1", 4, 3, 1, LOOM_PADDING_SAME, 2, LOOM_RELU, NULL), x);
    h = call(loom_max_pooling1d(g, "mp", 2, 0, LOOM_PADDING_VALID), h);
    loom_tensor *k = call(loom_conv1d(g, "c2", 5, 2, 2, LOOM_PADDING_SAME, 1, LOOM_TANH, NULL), h);
    loom_tensor *v = call(loom_conv1d(g, "c3", 3, 3, 1, LOOM_PADDING_VALID, 1, LOOM_LINEAR, NULL), h);
    loom_tensor *a = call(loom_average_pooling1d(g, "ap", 3, 2, LOOM_PADDING_SAME), k);
    loom_tensor *ga = call(loom_global_average_pooling1d(g, "gap"), a);
    loom_tensor *gm = call(loom_global_max_pooling1d(g, "gmp"), v);
    loom_tensor *o = loom_call_n(loom_concatenate(g, "cat", -1), 2, (loom_tensor *[]){ga, gm});
    return finish(g, 1, &x, 2, (loom_tensor *[]){o, a});
}

static loom_model *model_conv2d(void) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "img", 3, (int[]){7, 8, 2});
    loom_tensor *h = call(loom_conv2d(g, "c1", 3, 3, 3, 2, 1, LOOM_PADDING_SAME, 1, 1, LOOM_RELU, NULL), x);
    loom_tensor *d = call(loom_depthwise_conv2d(g, "dw", 2, 3, 1, 1, LOOM_PADDING_SAME, 2, LOOM_LINEAR, NULL), h);
    loom_tensor *dil = call(loom_conv2d(g, "dil", 2, 2, 2, 1, 1, LOOM_PADDING_VALID, 2, 1, LOOM_SIGMOID, NULL), d);
    loom_tensor *mp = call(loom_max_pooling2d(g, "mp", 2, 2, 0, 0, LOOM_PADDING_SAME), d);
    loom_tensor *ap = call(loom_average_pooling2d(g, "ap", 3, 2, 1, 2, LOOM_PADDING_SAME), d);
    loom_tensor *o1 = call(loom_global_max_pooling2d(g, "gmp"), mp);
    loom_tensor *o2 = call(loom_global_average_pooling2d(g, "gap"), ap);
    loom_tensor *o3 = call(loom_flatten(g, "flat"), dil);
    return finish(g, 1, &x, 3, (loom_tensor *[]){o1, o2, o3});
}

static loom_model *model_spatial(void) {
    loom_graph *g = loom_graph_new(4);
    loom_tensor *x = loom_input(g, "img", 3, (int[]){4, 5, 2});
    loom_tensor *t1 = call(loom_conv2d_transpose(g, "tsame", 3, 3, 4, 2, 1, LOOM_PADDING_SAME, LOOM_RELU, NULL), x);
    loom_tensor *t2 = call(loom_conv2d_transpose(g, "tvalid", 2, 2, 3, 1, 2, LOOM_PADDING_VALID, LOOM_LINEAR, NULL), x);
    loom_tensor *t3 = call(loom_conv2d_transpose(g, "twide", 2, 2, 2, 3, 3, LOOM_PADDING_VALID, LOOM_LINEAR, NULL), x);
    loom_tensor *u = call(loom_upsampling2d(g, "up", 2, 3), x);
    loom_tensor *p = call(loom_zero_padding2d(g, "pad", 1, 2, 0, 3), u);
    loom_tensor *c = call(loom_cropping2d(g, "crop", 2, 1, 3, 2), p);
    return finish(g, 1, &x, 4, (loom_tensor *[]){t1, t2, t3, c});
}

static loom_model *model_norm(void) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){5, 4});
    loom_tensor *a = call(loom_batch_normalization(g, "bn_last", NULL), x);
    loom_batchnorm_options o = loom_batchnorm_defaults();
    o.axis = 1;
    o.center = 0;
    loom_tensor *b = call(loom_batch_normalization(g, "bn_steps", &o), a);
    loom_tensor *c = call(loom_layer_normalization(g, "ln", 0, 1, 1), b);
    loom_tensor *d = call(loom_layer_normalization(g, "ln_plain", 1e-5f, 0, 0), x);
    return finish(g, 1, &x, 2, (loom_tensor *[]){c, d});
}

static loom_model *model_embedding(void) {
    loom_graph *g = loom_graph_new(6);
    loom_tensor *ids = loom_input(g, "ids", 1, (int[]){6});
    loom_tensor *e = call(loom_embedding(g, "emb", 10, 4, 0), ids);
    loom_tensor *o = call(loom_dense(g, "head", 3, LOOM_SOFTMAX, NULL), call(loom_flatten(g, "flat"), e));
    return finish(g, 1, &ids, 2, (loom_tensor *[]){o, e});
}

static loom_model *model_merge(void) {
    loom_graph *g = loom_graph_new(8);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){5});
    loom_tensor *b = loom_input(g, "b", 1, (int[]){5});
    loom_tensor *c = call(loom_dense(g, "c", 5, LOOM_TANH, NULL), a);
    loom_tensor *sum = loom_call_n(loom_add(g, "sum"), 3, (loom_tensor *[]){a, b, c});
    loom_tensor *diff = loom_call_n(loom_subtract(g, "diff"), 2, (loom_tensor *[]){a, c});
    loom_tensor *prod = loom_call_n(loom_multiply(g, "prod"), 3, (loom_tensor *[]){b, c, sum});
    loom_tensor *cat = loom_call_n(loom_concatenate(g, "cat", 1), 3, (loom_tensor *[]){sum, diff, prod});
    return finish(g, 2, (loom_tensor *[]){a, b}, 2, (loom_tensor *[]){cat, diff});
}

static loom_model *model_shapes(void) {
    loom_graph *g = loom_graph_new(9);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){3, 4});
    loom_tensor *p = call(loom_permute(g, "perm", 2, (int[]){2, 1}), x);
    loom_tensor *r = call(loom_reshape(g, "resh", 3, (int[]){2, -1, 3}), p);
    loom_tensor *f = call(loom_flatten(g, "flat"), r);
    loom_tensor *d = call(loom_dense(g, "d", 3, LOOM_LINEAR, NULL), f);
    loom_tensor *rv = call(loom_repeat_vector(g, "rep", 4), d);
    return finish(g, 1, &x, 2, (loom_tensor *[]){rv, r});
}

static loom_model *model_recurrent(void) {
    loom_graph *g = loom_graph_new(10);
    loom_tensor *x = loom_input(g, "seq", 2, (int[]){5, 3});
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    loom_tensor *s = call(loom_simple_rnn(g, "srnn", 4, &o), x);
    o.go_backwards = 1;
    loom_tensor *l = call(loom_lstm(g, "lstm_back", 3, &o), s);
    loom_rnn_options last = loom_rnn_defaults();
    loom_tensor *gr = call(loom_gru(g, "gru", 4, &last), l);
    last.reset_after = 0;
    last.go_backwards = 1;
    loom_tensor *g0 = call(loom_gru(g, "gru_before", 2, &last), x);
    loom_rnn_options relu = loom_rnn_defaults();
    relu.activation = LOOM_RELU;
    relu.use_bias = 0;
    loom_tensor *lr = call(loom_lstm(g, "lstm_relu", 2, &relu), x);
    return finish(g, 1, &x, 4, (loom_tensor *[]){gr, g0, l, lr});
}

static loom_model *model_wrappers(void) {
    loom_graph *g = loom_graph_new(11);
    loom_tensor *x = loom_input(g, "seq", 2, (int[]){4, 3});
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    loom_tensor *b1 = call(loom_bidirectional(g, "bi_lstm", loom_lstm(g, "l", 3, &o), LOOM_MERGE_CONCAT), x);
    loom_tensor *td = call(loom_time_distributed(g, "td", loom_dense(g, "tdd", 2, LOOM_SWISH, NULL)), b1);
    loom_tensor *b2 = call(loom_bidirectional(g, "bi_gru", loom_gru(g, "gr", 2, NULL), LOOM_MERGE_SUM), td);
    loom_tensor *b3 = call(loom_bidirectional(g, "bi_rnn", loom_simple_rnn(g, "sr", 2, &o), LOOM_MERGE_AVE), x);
    loom_tensor *b4 = call(loom_bidirectional(g, "bi_mul", loom_gru(g, "gm", 2, NULL), LOOM_MERGE_MUL), x);
    loom_tensor *b5 = call(loom_bidirectional(g, "bi_last", loom_lstm(g, "ll", 2, NULL), LOOM_MERGE_CONCAT), x);
    return finish(g, 1, &x, 5, (loom_tensor *[]){b2, b3, b4, b5, td});
}

static loom_model *model_attention(void) {
    loom_graph *g = loom_graph_new(12);
    loom_tensor *q = loom_input(g, "q", 2, (int[]){4, 6});
    loom_tensor *v = loom_input(g, "v", 2, (int[]){5, 3});
    loom_tensor *self = loom_call_n(loom_multi_head_attention(g, "self", 2, 3, 0, 1, 0), 2, (loom_tensor *[]){q, q});
    loom_tensor *cross = loom_call_n(loom_multi_head_attention(g, "cross", 3, 2, 4, 0, 0), 3,
                                     (loom_tensor *[]){self, v, v});
    loom_tensor *causal = loom_call_n(loom_multi_head_attention(g, "causal", 1, 4, 0, 1, 1), 2,
                                      (loom_tensor *[]){q, q});
    return finish(g, 2, (loom_tensor *[]){q, v}, 2, (loom_tensor *[]){cross, causal});
}

/* Sequences without a causal mask: the time axis stays symbolic. */
static loom_model *model_sequence_dynamic(void) {
    loom_graph *g = loom_graph_new(13);
    loom_tensor *ids = loom_input(g, "tokens", 1, (int[]){6});
    loom_tensor *e = call(loom_embedding(g, "emb", 12, 4, 0), ids);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    loom_tensor *h = call(loom_gru(g, "gru", 3, &o), e);
    loom_tensor *a = loom_call_n(loom_multi_head_attention(g, "mha", 2, 2, 0, 1, 0), 2, (loom_tensor *[]){h, h});
    loom_tensor *n = call(loom_layer_normalization(g, "ln", 0, 1, 1), a);
    loom_tensor *per_step = call(loom_time_distributed(g, "td", loom_dense(g, "tdd", 2, LOOM_SOFTMAX, NULL)), n);
    loom_tensor *last = call(loom_lstm(g, "lstm", 2, NULL), n);
    return finish(g, 1, &ids, 2, (loom_tensor *[]){per_step, last});
}

typedef struct family {
    const char *name;
    loom_model *(*build)(void);
    int id_range; /* > 0: the inputs are integer ids below this */
} family;

static const family FAMILIES[] = {
    {"seed", model_seed, 0},           {"activations", model_activations, 0}, {"conv1d", model_conv1d, 0},
    {"conv2d", model_conv2d, 0},       {"spatial", model_spatial, 0},         {"norm", model_norm, 0},
    {"embedding", model_embedding, 10}, {"merge", model_merge, 0},            {"shapes", model_shapes, 0},
    {"recurrent", model_recurrent, 0}, {"wrappers", model_wrappers, 0},       {"attention", model_attention, 0},
    {"sequence_dynamic", model_sequence_dynamic, 12},
};
#define N_FAMILIES (int)(sizeof FAMILIES / sizeof FAMILIES[0])

/* The inputs: a fixed formula (ids: a fixed cycle through the table). */
static float *make_input(const family *f, int input, size_t n) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = f->id_range ? (float)((i * 7 + 3 + (size_t)input) % (size_t)f->id_range)
                           : (float)(1.5 * sin(1.3 * (double)i + 0.7 * input + 0.2));
    return x;
}

static char *path_in(const char *dir, const char *name, const char *ext) {
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 3;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s%s", dir, name, ext);
    return p;
}

/* --write: the manifest onnx_ort.js reads (model, inputs with shapes and values, outputs). */
static void write_manifest(FILE *mf, const family *f, loom_model *m, float *const *x) {
    fprintf(mf, "model %s %s.onnx\n", f->name, f->name);
    for (int i = 0; i < loom_model_num_inputs(m); i++) {
        size_t n = BATCH * loom_model_input_size(m, i);
        fprintf(mf, "input %s %s %d %d", f->name, loom_model_input_name(m, i), BATCH, in_rank[i]);
        for (int d = 0; d < in_rank[i]; d++) fprintf(mf, " %d", in_dims[i][d]);
        for (size_t j = 0; j < n; j++) fprintf(mf, " %.9g", x[i][j]);
        fprintf(mf, "\n");
    }
    for (int k = 0; k < loom_model_num_outputs(m); k++) fprintf(mf, "output %s %s\n", f->name, loom_model_output_name(m, k));
}

/* |a - b| <= 1e-5 * max(|b|, scale / 10), scale the largest |b| of the output. */
static void compare(const char *what, const float *loom_y, const double *ort_y, size_t n) {
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ort_y[i]));
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)loom_y[i] - ort_y[i]), tol = 1e-5 * fmax(fabs(ort_y[i]), scale / 10);
        if (!(err <= tol)) {
            if (bad++ < 3)
                fprintf(stderr, "%s[%zu]: loom %.9g, ONNX Runtime %.9g\n", what, i, (double)loom_y[i], ort_y[i]);
        }
        worst = fmax(worst, scale > 0 ? err / scale : err);
    }
    /* an output that does not vary (a dead relu) would check nothing */
    double lo = n ? ort_y[0] : 0, hi = lo;
    for (size_t i = 0; i < n; i++) lo = fmin(lo, ort_y[i]), hi = fmax(hi, ort_y[i]);
    if (!(hi - lo > 1e-3 * scale && scale > 0)) {
        check_count++, check_failures++;
        fprintf(stderr, "%s: the reference output is constant: the model checks nothing there\n", what);
    }
    check_count++;
    if (bad) {
        check_failures++;
        fprintf(stderr, "%s: %zu of %zu values differ from ONNX Runtime's\n", what, bad, n);
    }
    printf("  %-34s %4zu values, max |loom - ort| / max |ort| = %.2e\n", what, n, worst);
}

static void test_families(const char *write_dir, const char *fixture_path) {
    fixture fx = {0};
    bool have_fixture = write_dir == NULL;
    if (have_fixture) fixture_load(&fx, fixture_path);
    const char *dir = write_dir ? write_dir : LOOM_ONNX_OUT_DIR;
    mkdir(dir, 0777);
    FILE *mf = NULL;
    if (write_dir) {
        char *mp = path_in(dir, "manifest", ".txt");
        mf = fopen(mp, "w");
        free(mp);
        CHECK(mf != NULL);
        if (!mf) return;
    }
    for (int fi = 0; fi < N_FAMILIES; fi++) {
        const family *f = &FAMILIES[fi];
        loom_model *m = f->build();
        CHECK(m != NULL);
        if (!m) continue;
        char *path = path_in(dir, f->name, ".onnx");
        loom_status s = loom_model_export_onnx(m, path);
#ifdef LOOM_HAVE_ONNX
        CHECK_STATUS(s, LOOM_OK);
        if (s) fprintf(stderr, "%s: %s\n", f->name, loom_model_error(m));
#else
        CHECK_STATUS(s, LOOM_ERR_STATE);
#endif
        free(path);
        int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m);
        float *x[8] = {0};
        loom_array xa[8];
        for (int i = 0; i < ni; i++) {
            size_t n = BATCH * loom_model_input_size(m, i);
            x[i] = make_input(f, i, n);
            xa[i] = (loom_array){.name = loom_model_input_name(m, i), .data = x[i], .n = BATCH, .count = n};
            if (have_fixture) {
                /* the committed inputs are the ones this formula makes */
                char key[FIXTURE_NAME_MAX];
                snprintf(key, sizeof key, "%s/in/%s", f->name, loom_model_input_name(m, i));
                const double *v = fixture_get(&fx, key, n);
                size_t diff = 0;
                for (size_t j = 0; v && j < n; j++) diff += (float)v[j] != x[i][j];
                CHECK(v && diff == 0);
            }
        }
        if (mf) write_manifest(mf, f, m, x);
        float *y[LOOM_MAX_OUTPUTS] = {0};
        for (int k = 0; k < no; k++) y[k] = malloc(BATCH * loom_model_output_size(m, k) * sizeof *y[k]);
        CHECK_STATUS(loom_predict(m, ni, xa, BATCH, y), LOOM_OK);
        if (have_fixture) {
            for (int k = 0; k < no; k++) {
                char key[FIXTURE_NAME_MAX];
                size_t n = BATCH * loom_model_output_size(m, k);
                snprintf(key, sizeof key, "%s/out/%s", f->name, loom_model_output_name(m, k));
                const double *v = fixture_get(&fx, key, n);
                if (v) compare(key, y[k], v, n);
            }
        }
        for (int k = 0; k < no; k++) free(y[k]);
        for (int i = 0; i < ni; i++) free(x[i]);
        loom_model_free(m);
    }
    if (mf) fclose(mf);
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- errors */

static int same_shape(int n_in, const int *in_rank, const int (*in_dims)[LOOM_MAX_RANK], int *out_dims, void *user) {
    (void)n_in, (void)user;
    for (int i = 0; i < in_rank[0]; i++) out_dims[i] = in_dims[0][i];
    return in_rank[0];
}
static void copy_forward(const loom_custom_ctx *c, void *user) {
    (void)user;
    memcpy(c->out, c->in[0], (size_t)c->batch * (size_t)c->out_dims[0] * sizeof *c->out);
}
static void nop_backward(const loom_custom_ctx *c, void *user) { (void)c, (void)user; }

static bool message_has(loom_model *m, const char *what) {
    bool ok = strstr(loom_model_error(m), what) != NULL;
    if (!ok) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", loom_model_error(m), what);
    return ok;
}

static void test_errors(void) {
    const char *path = LOOM_ONNX_OUT_DIR "/refused.onnx";
    mkdir(LOOM_ONNX_OUT_DIR, 0777);
    loom_custom_layer def;
    memset(&def, 0, sizeof def);
    def.class_name = "MyLayer";
    def.min_inputs = def.max_inputs = 1;
    def.output_shape = same_shape;
    def.forward = copy_forward;
    def.backward = nop_backward;
    loom_graph *g = loom_graph_new(0);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *y = call(loom_custom(g, "mine", &def), call(loom_dense(g, "d", 3, LOOM_RELU, NULL), x));
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
#ifdef LOOM_HAVE_ONNX
    CHECK_STATUS(loom_model_export_onnx(m, path), LOOM_ERR_ARGUMENT);
    CHECK(message_has(m, "mine (MyLayer)"));
    /* an unwritable place, then a success that clears the message */
    loom_model_free(m);
    m = model_seed();
    CHECK_STATUS(loom_model_export_onnx(m, "/nonexistent-dir/x.onnx"), LOOM_ERR_IO);
    CHECK(message_has(m, "/nonexistent-dir/x.onnx"));
    CHECK_STATUS(loom_model_export_onnx(m, path), LOOM_OK);
    CHECK(strcmp(loom_model_error(m), "") == 0);
    CHECK_STATUS(loom_model_export_onnx(m, NULL), LOOM_ERR_ARGUMENT);
    loom_model_free(m);
    /* a mask reaching a recurrent layer */
    g = loom_graph_new(0);
    x = loom_input(g, "ids", 1, (int[]){4});
    y = call(loom_lstm(g, "masked_lstm", 2, NULL), call(loom_embedding(g, "emb", 5, 3, 1), x));
    m = loom_model_new(g, 1, &x, 1, &y);
    CHECK_STATUS(loom_model_export_onnx(m, path), LOOM_ERR_ARGUMENT);
    CHECK(message_has(m, "masked_lstm (LSTM)") && message_has(m, "mask"));
    loom_model_free(m);
    /* a recurrent activation ONNX cannot name */
    g = loom_graph_new(0);
    x = loom_input(g, "s", 2, (int[]){4, 2});
    loom_rnn_options o = loom_rnn_defaults();
    o.activation = LOOM_GELU;
    y = call(loom_gru(g, "gelu_gru", 2, &o), x);
    m = loom_model_new(g, 1, &x, 1, &y);
    CHECK_STATUS(loom_model_export_onnx(m, path), LOOM_ERR_ARGUMENT);
    CHECK(message_has(m, "gelu_gru (GRU)") && message_has(m, "gelu"));
#else
    CHECK_STATUS(loom_model_export_onnx(m, path), LOOM_ERR_STATE);
    CHECK(message_has(m, "without ONNX"));
#endif
    loom_model_free(m);
    CHECK_STATUS(loom_model_export_onnx(NULL, path), LOOM_ERR_ARGUMENT);
}

/* ---------------------------------------------------------------- structure */

#ifdef LOOM_HAVE_ONNX
static Onnx__ModelProto *read_model(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    Onnx__ModelProto *mp = got == (size_t)n ? onnx__model_proto__unpack(NULL, got, buf) : NULL;
    free(buf);
    return mp;
}

static const char *dim_param(const Onnx__ValueInfoProto *v, size_t d) {
    const Onnx__TensorShapeProto *s = v->type->tensor_type->shape;
    if (d >= s->n_dim || s->dim[d]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) return "";
    return s->dim[d]->dim_param;
}

static void test_structure(void) {
    Onnx__ModelProto *mp = read_model(LOOM_ONNX_OUT_DIR "/seed.onnx");
    CHECK(mp != NULL);
    if (mp) {
        CHECK(mp->n_opset_import == 1 && mp->opset_import[0]->version == 17);
        CHECK(mp->graph->n_input == 1 && strcmp(mp->graph->input[0]->name, "x") == 0);
        CHECK(strcmp(dim_param(mp->graph->input[0], 0), "batch") == 0);
        CHECK(mp->graph->n_output == 2 && strcmp(mp->graph->output[0]->name, "C") == 0 &&
              strcmp(mp->graph->output[1]->name, "D") == 0);
        onnx__model_proto__free_unpacked(mp, NULL);
    }
    /* no Dropout in the inference graph */
    mp = read_model(LOOM_ONNX_OUT_DIR "/activations.onnx");
    CHECK(mp != NULL);
    if (mp) {
        int dropouts = 0;
        for (size_t i = 0; i < mp->graph->n_node; i++) dropouts += strcmp(mp->graph->node[i]->op_type, "Dropout") == 0;
        CHECK(dropouts == 0);
        onnx__model_proto__free_unpacked(mp, NULL);
    }
    /* a symbolic time axis where nothing fixes it, a fixed one under a causal mask */
    mp = read_model(LOOM_ONNX_OUT_DIR "/sequence_dynamic.onnx");
    CHECK(mp != NULL);
    if (mp) {
        CHECK(strcmp(dim_param(mp->graph->input[0], 1), "tokens_steps") == 0);
        CHECK(strcmp(dim_param(mp->graph->output[0], 1), "tokens_steps") == 0);
        CHECK(strcmp(dim_param(mp->graph->output[1], 1), "") == 0);
        onnx__model_proto__free_unpacked(mp, NULL);
    }
    mp = read_model(LOOM_ONNX_OUT_DIR "/attention.onnx");
    CHECK(mp != NULL);
    if (mp) {
        CHECK(strcmp(dim_param(mp->graph->input[0], 1), "") == 0);
        onnx__model_proto__free_unpacked(mp, NULL);
    }
    mp = read_model(LOOM_ONNX_OUT_DIR "/recurrent.onnx");
    CHECK(mp != NULL);
    if (mp) {
        CHECK(strcmp(dim_param(mp->graph->input[0], 1), "seq_steps") == 0);
        onnx__model_proto__free_unpacked(mp, NULL);
    }
}
#endif

int main(int argc, char **argv) {
    /* --write DIR: export the models and their inputs for onnx_ort.js; --fixture FILE: compare
     * with ONNX Runtime outputs other than the committed ones (onnx_ort.sh --check) */
    if (argc == 3 && strcmp(argv[1], "--write") == 0) {
        test_families(argv[2], NULL);
        return check_report("onnx_export");
    }
    const char *fixture_path = LOOM_TEST_DIR "/reference/onnx_ort.txt";
    if (argc == 3 && strcmp(argv[1], "--fixture") == 0) fixture_path = argv[2];
    test_families(NULL, fixture_path);
    test_errors();
#ifdef LOOM_HAVE_ONNX
    test_structure();
#else
    printf("built without ONNX: only the error path is tested\n");
#endif
    return check_report("onnx_export");
}
