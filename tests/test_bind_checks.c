/* test_bind_checks.c — binding checks every array against what it is bound to (issue 14, section
 * 3): loom_array.count against the input's / target's / sample weights' shape, finite values,
 * Embedding ids, and arrays made from a loom_ndarray. Before these checks a (64, 6) buffer given
 * for an (8,) input made fit read past it and return OK. */
#include "check.h"
#include "loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N 16
static float xs[N * 8], yc[N * 3], yd[N * 2], yidx[N], sw[N];

static int contains(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

static void expect(loom_status got, loom_status want, loom_model *m, const char *const *parts, int line) {
    const char *msg = loom_model_error(m);
    int ok = got == want;
    for (int i = 0; parts && parts[i]; i++) ok = ok && contains(msg, parts[i]);
    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "test_bind_checks.c:%d: got %s \"%s\", wanted %s with every expected part\n", line,
                loom_status_name(got), msg, loom_status_name(want));
    }
}
#define EXPECT(call, want, ...) expect((call), (want), m, (const char *const[]){__VA_ARGS__, NULL}, __LINE__)

/* x (8,) -> A (relu 6) -> C (softmax 3), D (linear 2) */
static loom_model *two_heads(const char *c_loss) {
    loom_graph *g = loom_graph_new(3);
    int d8 = 8;
    loom_tensor *x = loom_input(g, "x", 1, &d8);
    loom_tensor *a = loom_call(loom_dense(g, "A", 6, LOOM_RELU, NULL), x);
    loom_tensor *outs[2] = {loom_call(loom_dense(g, "C", 3, LOOM_SOFTMAX, NULL), a),
                            loom_call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), a)};
    loom_model *m = loom_model_new(g, 1, &x, 2, outs);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss l[2] = {{.name = c_loss}, {.name = "mse"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void fill_data(void) {
    for (int i = 0; i < N * 8; i++) xs[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    memset(yc, 0, sizeof yc);
    for (int i = 0; i < N; i++) {
        yc[i * 3 + i % 3] = 1.0f;
        yidx[i] = (float)(i % 3);
        yd[2 * i] = 0.1f * (float)i;
        yd[2 * i + 1] = -0.2f;
        sw[i] = 1.0f + 0.1f * (float)i;
    }
}

static void test_counts(void) {
    loom_model *m = two_heads("categorical_crossentropy");
    if (!m) return;
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    loom_array y[2] = {{.name = "C", .data = yc, .n = N, .count = N * 3}, {.name = "D", .data = yd, .n = N, .count = N * 2}};
    loom_array x = {.name = "x", .data = xs, .n = N, .count = N * 8};
    loom_data d = {1, &x, 2, y, 0, NULL};
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);

    /* the case: a buffer of 8 x 6 floats given for 8 samples of (8,) */
    x = (loom_array){.name = "x", .data = xs, .n = 8, .count = 8 * 6};
    y[0].n = y[1].n = 8;
    y[0].count = 8 * 3;
    y[1].count = 8 * 2;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "fit", "input x", "(None, 8)", "(8, 6)");
    /* count 0: the field was forgotten */
    x.count = 0;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "input x", "count is 0", "64");
    /* not a whole number per sample */
    x.count = 8 * 8 + 1;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "input x", "65 floats for 8 samples");
    x.count = 8 * 8;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    CHECK(strcmp(loom_model_error(m), "") == 0);
    /* class indices given for the categorical crossentropy: Keras's hint */
    y[0] = (loom_array){.name = "C", .data = yidx, .n = 8, .count = 8};
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "the target of output C", "(None, 3)", "(8, 1)",
           "sparse_categorical_crossentropy");
    EXPECT(loom_evaluate(m, &d, 4, 0, NULL), LOOM_ERR_DATA, "evaluate", "sparse_categorical_crossentropy");
    y[0] = (loom_array){.name = "C", .data = yc, .n = 8, .count = 8 * 3};
    y[1].count = 8 * 3;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "the target of output D", "(None, 2)", "(8, 3)");
    y[1].count = 8 * 2;
    /* sample weights: one per sample */
    loom_array w = {.name = "C", .data = sw, .n = 8, .count = 16};
    d.n_sample_weights = 1;
    d.sample_weights = &w;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "sample weights of output C", "(8, 2)");
    w.name = NULL;
    w.count = 0;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "sample weights", "count is 0");
    w.count = 8;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    /* predict and train_on_batch check too */
    float pc[8 * 3], pd[8 * 2];
    x.count = 8 * 6;
    EXPECT(loom_predict(m, 1, &x, 4, (float *const[]){pc, pd}), LOOM_ERR_DATA, "predict", "input x", "(8, 6)");
    EXPECT(loom_train_on_batch(m, &d, NULL, 0, NULL), LOOM_ERR_DATA, "input x");
    x.count = 8 * 8;
    CHECK_STATUS(loom_predict(m, 1, &x, 4, (float *const[]){pc, pd}), LOOM_OK);
    loom_model_free(m);

    /* one-hot rows given for the sparse crossentropy: the other hint */
    m = two_heads("sparse_categorical_crossentropy");
    if (!m) return;
    CHECK(loom_model_target_size(m, 0) == 1);
    x = (loom_array){.name = "x", .data = xs, .n = N, .count = N * 8};
    y[0] = (loom_array){.name = "C", .data = yc, .n = N, .count = N * 3};
    y[1] = (loom_array){.name = "D", .data = yd, .n = N, .count = N * 2};
    d = (loom_data){1, &x, 2, y, 0, NULL};
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "the target of output C", "(None, 1)", "(16, 3)",
           "use categorical_crossentropy");
    y[0] = (loom_array){.name = "C", .data = yidx, .n = N, .count = N};
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    loom_model_free(m);
}

static void test_finite(void) {
    loom_model *m = two_heads("categorical_crossentropy");
    if (!m) return;
    static float bx[N * 8], by[N * 2], bw[N];
    memcpy(bx, xs, sizeof bx);
    memcpy(by, yd, sizeof by);
    memcpy(bw, sw, sizeof bw);
    loom_array x = {.name = "x", .data = bx, .n = N, .count = N * 8};
    loom_array y[2] = {{.name = "C", .data = yc, .n = N, .count = N * 3}, {.name = "D", .data = by, .n = N, .count = N * 2}};
    loom_array w = {.data = bw, .n = N, .count = N};
    loom_data d = {1, &x, 2, y, 1, &w};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    bx[2 * 8 + 3] = NAN;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "input x", "sample 2, position 3", "nan");
    float p[N * 3], q[N * 2];
    EXPECT(loom_predict(m, 1, &x, 4, (float *const[]){p, q}), LOOM_ERR_DATA, "predict", "input x", "sample 2, position 3");
    bx[2 * 8 + 3] = 0;
    by[5 * 2 + 1] = -INFINITY;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "the target of output D", "sample 5, position 1", "-inf");
    by[5 * 2 + 1] = 0;
    bw[7] = NAN;
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "sample weights", "sample 7, position 0");
    EXPECT(loom_evaluate(m, &d, 4, 0, NULL), LOOM_ERR_DATA, "sample weights", "sample 7");
    bw[7] = 1;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    /* the option turns the check off: predict then computes with the NaN */
    bx[0] = NAN;
    CHECK_STATUS(loom_set_check_finite(m, 0), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, &x, 4, (float *const[]){p, q}), LOOM_OK);
    CHECK(isnan(q[0]) && !isnan(q[2]));
    CHECK_STATUS(loom_set_check_finite(m, 1), LOOM_OK);
    EXPECT(loom_predict(m, 1, &x, 4, (float *const[]){p, q}), LOOM_ERR_DATA, "sample 0, position 0");
    CHECK_STATUS(loom_set_check_finite(NULL, 0), LOOM_ERR_ARGUMENT);
    loom_model_free(m);
}

/* ids (5,) -> Embedding(10, 3) -> Flatten -> Dense 1; optionally through a linear Activation
 * first, so the ids reach the layer from another layer and only the engine can check them. */
static loom_model *embedding_model(int indirect) {
    loom_graph *g = loom_graph_new(5);
    int d5 = 5;
    loom_tensor *ids = loom_input(g, "ids", 1, &d5), *t = ids;
    if (indirect) t = loom_call(loom_activation_layer(g, "pass", LOOM_LINEAR), t);
    t = loom_call(loom_embedding(g, "emb", 10, 3, 0), t);
    t = loom_call(loom_flatten(g, NULL), t);
    t = loom_call(loom_dense(g, "out", 1, LOOM_LINEAR, NULL), t);
    loom_model *m = loom_model_new(g, 1, &ids, 1, &t);
    CHECK(m != NULL);
    if (!m) {
        loom_graph_free(g);
        return NULL;
    }
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void test_embedding_ids(void) {
    float ids[6 * 5], t[6], p[6];
    for (int i = 0; i < 6 * 5; i++) ids[i] = (float)(i % 10);
    for (int i = 0; i < 6; i++) t[i] = 0.5f;
    loom_array x = {.name = "ids", .data = ids, .n = 6, .count = 6 * 5};
    loom_array y = {.data = t, .n = 6, .count = 6};
    loom_data d = {1, &x, 1, &y, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 2;
    for (int indirect = 0; indirect <= 1; indirect++) {
        loom_model *m = embedding_model(indirect);
        if (!m) continue;
        CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
        ids[3 * 5 + 2] = 10;
        /* from the data: the sample's index in the data; through another layer: in the batch
         * (which, shuffled, depends on the permutation) */
        EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "emb (Embedding)", ",2] = 10 is not in [0, 10)",
               indirect ? "indices[" : "fit: input ids: emb (Embedding): indices[3,2]");
        EXPECT(loom_predict(m, 1, &x, 2, (float *const[]){p}), LOOM_ERR_DATA,
               indirect ? "indices[1,2] = 10" : "indices[3,2] = 10");
        ids[3 * 5 + 2] = -1;
        EXPECT(loom_evaluate(m, &d, 6, 0, NULL), LOOM_ERR_DATA, "emb", "indices[3,2] = -1 is not in [0, 10)");
        ids[3 * 5 + 2] = -0.5f; /* truncation would give 0: still a negative id */
        EXPECT(loom_train_on_batch(m, &d, NULL, 0, NULL), LOOM_ERR_DATA, "indices[3,2] = -0.5");
        ids[3 * 5 + 2] = 9.9f; /* truncated to 9, as Keras's cast */
        CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
        /* NaN ids are refused even with the finite check off */
        CHECK_STATUS(loom_set_check_finite(m, 0), LOOM_OK);
        ids[0] = NAN;
        EXPECT(loom_predict(m, 1, &x, 2, (float *const[]){p}), LOOM_ERR_DATA, "indices[0,0] = nan");
        ids[0] = 0;
        ids[3 * 5 + 2] = 2;
        loom_model_free(m);
    }
}

/* A little-endian float32 .npy of shape (rows, cols) in memory. */
static size_t npy_bytes(unsigned char *buf, size_t rows, size_t cols, const float *v) {
    char header[128];
    int h = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
    size_t hl = (size_t)h + 1;
    while ((10 + hl) % 64) hl++;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    memset(buf + 10, ' ', hl);
    memcpy(buf + 10, header, (size_t)h);
    buf[10 + hl - 1] = '\n';
    memcpy(buf + 10 + hl, v, rows * cols * sizeof *v);
    return 10 + hl + rows * cols * sizeof *v;
}

static void test_from_ndarray(void) {
    loom_model *m = two_heads("categorical_crossentropy");
    if (!m) return;
    static unsigned char buf[4096];
    char err[256];
    loom_ndarray ax = {0}, ac = {0}, ad = {0}, bad = {0};
    CHECK_STATUS(loom_npy_parse(buf, npy_bytes(buf, N, 8, xs), "x.npy", &ax, err, sizeof err), LOOM_OK);
    CHECK_STATUS(loom_npy_parse(buf, npy_bytes(buf, N, 3, yc), "c.npy", &ac, err, sizeof err), LOOM_OK);
    CHECK_STATUS(loom_npy_parse(buf, npy_bytes(buf, N, 2, yd), "d.npy", &ad, err, sizeof err), LOOM_OK);
    CHECK_STATUS(loom_npy_parse(buf, npy_bytes(buf, N, 6, xs), "bad.npy", &bad, err, sizeof err), LOOM_OK);
    loom_array x = loom_array_from_ndarray("x", &ax);
    CHECK(x.n == N && x.count == N * 8 && x.data == ax.data && strcmp(x.name, "x") == 0);
    loom_array y[2] = {loom_array_from_ndarray("C", &ac), loom_array_from_ndarray("D", &ad)};
    loom_data d = {1, &x, 2, y, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    x = loom_array_from_ndarray("x", &bad);
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "input x", "(None, 8)", "(16, 6)");
    loom_ndarray scalar = {.rank = 0, .size = 1, .data = xs};
    x = loom_array_from_ndarray("x", &scalar);
    CHECK(x.n == 0 && x.data == NULL);
    EXPECT(loom_fit(m, &d, &fo, NULL), LOOM_ERR_DATA, "input x");
    x = loom_array_from_ndarray(NULL, NULL);
    CHECK(x.n == 0 && x.name == NULL);
    loom_ndarray_free(&ax);
    loom_ndarray_free(&ac);
    loom_ndarray_free(&ad);
    loom_ndarray_free(&bad);
    loom_model_free(m);
}

int main(void) {
    fill_data();
    test_counts();
    test_finite();
    test_embedding_ids();
    test_from_ndarray();
    return check_report("test_bind_checks");
}
