/* test_layers_misc.c — BatchNormalization, LayerNormalization, Embedding, Permute, RepeatVector
 * and loom_custom layers.
 *
 * Forward values against PyTorch (tests/reference/misc_ref.py -> misc_ref.txt) or by hand;
 * gradients of inputs and weights by central differences (tests/op_harness.h); BatchNormalization
 * moving statistics against their closed form and through fit (the optimizer never touches them);
 * Embedding's mask_zero through the public API (the loss covers the valid steps only); a custom
 * "scale and shift" layer gradient-checked through loom_gradients and trained by fit; argument
 * errors; model files. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "check.h"
#include "fixture.h"
#include "op_harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif

static loom_shape shp(int rank, int d0, int d1, int d2, int d3) {
    loom_shape s = {rank, {d0, d1, d2, d3}};
    return s;
}

/* max |a - b| / (1 + |b|) over n values */
static double worst_diff(const float *a, const double *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]) / (1 + fabs(b[i])));
    return w;
}

/* Runs the op's forward with c->state pointing at the weights (as the engine does). */
static void forward_with_state(op_harness *H) {
    loom_op_ctx c = oph_ctx(H, H->din, NULL);
    c.state = H->w;
    H->L->op->forward(H->L, &c);
}

/* ---------------------------------------------------------------- BatchNormalization */

static void bn_fixture_case(const fixture *fx, const char *id, int keras_axis) {
    char key[FIXTURE_NAME_MAX];
    snprintf(key, sizeof key, "%s.cfg", id);
    const double *cfg = fixture_get(fx, key, 5);
    snprintf(key, sizeof key, "%s.shape", id);
    const fixture_array *sa = NULL;
    for (int i = 0; i < fx->count; i++)
        if (strcmp(fx->arrays[i].name, key) == 0) sa = &fx->arrays[i];
    CHECK(cfg && sa);
    if (!cfg || !sa) return;
    loom_shape in = {(int)sa->n, {0}};
    for (size_t i = 0; i < sa->n; i++) in.dims[i] = (int)sa->v[i];
    int C = in.dims[(int)cfg[0]], steps = (int)cfg[3], batch = (int)cfg[4];

    loom_graph *g = loom_graph_new(1);
    loom_batchnorm_options o = loom_batchnorm_defaults();
    o.axis = keras_axis;
    o.momentum = (float)cfg[1];
    o.epsilon = (float)cfg[2];
    loom_layer *L = loom_batch_normalization(g, NULL, &o);
    CHECK(L != NULL);
    op_harness H;
    CHECK_STATUS(oph_init(&H, L, 1, &in, batch, 1, 5), LOOM_OK);
    CHECK(L->n_weights == 4);
    CHECK(strcmp(L->weights[0].name, "gamma") == 0 && strcmp(L->weights[3].name, "moving_variance") == 0);
    CHECK(!L->weights[0].non_trainable && !L->weights[1].non_trainable);
    CHECK(L->weights[2].non_trainable && L->weights[3].non_trainable);
    CHECK(L->weights[2].init == LOOM_INIT_ZEROS && L->weights[3].init == LOOM_INIT_ONES);
    snprintf(key, sizeof key, "%s.gamma", id);
    fixture_floats(fx, key, H.w, (size_t)C);
    snprintf(key, sizeof key, "%s.beta", id);
    fixture_floats(fx, key, H.w + C, (size_t)C);
    for (int i = 0; i < C; i++) H.w[2 * C + i] = 0.0f, H.w[3 * C + i] = 1.0f;
    for (int s = 0; s < steps; s++) {
        snprintf(key, sizeof key, "%s.x%d", id, s);
        fixture_floats(fx, key, H.in[0], H.in_n[0]);
        forward_with_state(&H);
        snprintf(key, sizeof key, "%s.y_train%d", id, s);
        const double *y = fixture_get(fx, key, H.out_n);
        if (y) CHECK(worst_diff(H.out, y, H.out_n) < 1e-5);
    }
    snprintf(key, sizeof key, "%s.moving_mean", id);
    const double *mm = fixture_get(fx, key, (size_t)C);
    snprintf(key, sizeof key, "%s.moving_var", id);
    const double *mv = fixture_get(fx, key, (size_t)C);
    if (mm && mv) {
        CHECK(worst_diff(H.w + 2 * C, mm, (size_t)C) < 1e-5);
        CHECK(worst_diff(H.w + 3 * C, mv, (size_t)C) < 1e-5);
    }
    /* inference: the moving statistics, which it leaves alone */
    H.training = 0;
    float keep[64];
    memcpy(keep, H.w, 4 * (size_t)C * sizeof *keep);
    forward_with_state(&H);
    CHECK(memcmp(keep, H.w, 4 * (size_t)C * sizeof *keep) == 0);
    snprintf(key, sizeof key, "%s.y_infer", id);
    const double *y = fixture_get(fx, key, H.out_n);
    if (y) CHECK(worst_diff(H.out, y, H.out_n) < 1e-5);
    oph_free(&H);
    loom_graph_free(g);
}

/* The same batch N times: moving_mean = mean (1 - m^N), moving_var = m^N + var (1 - m^N). */
static void test_bn_closed_form(void) {
    loom_graph *g = loom_graph_new(1);
    loom_batchnorm_options o = loom_batchnorm_defaults(); /* momentum 0.99 */
    loom_layer *L = loom_batch_normalization(g, "bn", &o);
    loom_shape in = shp(1, 2, 0, 0, 0);
    op_harness H;
    CHECK_STATUS(oph_init(&H, L, 1, &in, 4, 1, 5), LOOM_OK);
    const float x[8] = {1, 10, 2, 20, 3, 30, 6, 40}; /* channel 0: mean 3, var 3.5; channel 1: 25, 125 */
    memcpy(H.in[0], x, sizeof x);
    for (int i = 0; i < 2; i++) H.w[i] = 1.0f, H.w[2 + i] = 0.0f, H.w[4 + i] = 0.0f, H.w[6 + i] = 1.0f;
    const int N = 25;
    for (int s = 0; s < N; s++) forward_with_state(&H);
    double f = pow(0.99, N);
    CHECK_CLOSE(H.w[4], 3.0 * (1 - f), 1e-5, 1e-5);
    CHECK_CLOSE(H.w[5], 25.0 * (1 - f), 1e-5, 1e-5);
    CHECK_CLOSE(H.w[6], f + 3.5 * (1 - f), 1e-5, 1e-5);
    CHECK_CLOSE(H.w[7], f + 125.0 * (1 - f), 1e-5, 1e-5);
    /* training output: (x - 3) / sqrt(3.5 + 1e-3) for channel 0 */
    CHECK_CLOSE(H.out[0], (1 - 3) / sqrt(3.5 + 1e-3), 1e-6, 1e-5);
    CHECK_CLOSE(H.out[7], (40 - 25) / sqrt(125 + 1e-3), 1e-6, 1e-5);
    oph_free(&H);
    loom_graph_free(g);
}

/* Input and trainable-weight gradients only (n_check weight floats), for BatchNormalization in
 * inference, whose moving statistics get no gradient (they are not trained). */
static void partial_grad_check(op_harness *H, const char *label, size_t n_check) {
    for (size_t j = 0; j < H->in_n[0]; j++) H->din[0][j] = 0;
    for (size_t j = 0; j < H->n_w; j++) H->dw[j] = oph_pattern(j);
    oph_forward(H);
    oph_backward(H);
    oph_tol t = oph_default_tol();
    int bad = 0;
    for (size_t j = 0; j < H->in_n[0]; j++) {
        double a = H->din[0][j];
        bad += oph_compare(label, "din", 0, j, a, oph_numeric(H, H->in[0], j, t.h), &t, bad);
    }
    for (size_t j = 0; j < H->n_w; j++) {
        double a = H->dw[j] - oph_pattern(j);
        if (j < n_check)
            bad += oph_compare(label, "dw", 0, j, a, oph_numeric(H, H->w, j, t.h), &t, bad);
        else
            CHECK(a == 0.0); /* moving statistics: nothing accumulated */
    }
    CHECK(bad == 0);
}

static void bn_grad_case(const char *label, int axis, int center, int scale, loom_shape in, int batch, int training) {
    loom_graph *g = loom_graph_new(1);
    loom_batchnorm_options o = loom_batchnorm_defaults();
    o.axis = axis;
    o.center = center;
    o.scale = scale;
    loom_layer *L = loom_batch_normalization(g, NULL, &o);
    op_harness H;
    CHECK_STATUS(oph_init(&H, L, 1, &in, batch, training, 5), LOOM_OK);
    CHECK(L->n_weights == 2 + center + scale);
    int C = L->weights[0].shape.dims[0];
    int aff = center + scale;
    /* positive moving variances for inference */
    for (int i = 0; i < C; i++) H.w[(size_t)(aff + 1) * C + i] = 0.5f + 0.25f * (float)(i % 3);
    if (training)
        oph_grad_check(&H, label, NULL);
    else
        partial_grad_check(&H, label, (size_t)aff * C);
    oph_free(&H);
    loom_graph_free(g);
}

static void test_bn_gradients(void) {
    bn_grad_case("bn train last", -1, 1, 1, shp(2, 3, 4, 0, 0), 3, 1);
    bn_grad_case("bn train axis1", 1, 1, 1, shp(3, 3, 2, 2, 0), 2, 1);
    bn_grad_case("bn train middle", 2, 1, 1, shp(3, 2, 3, 2, 0), 2, 1);
    bn_grad_case("bn train no affine", -1, 0, 0, shp(1, 5, 0, 0, 0), 6, 1);
    bn_grad_case("bn train scale only", -1, 0, 1, shp(1, 5, 0, 0, 0), 6, 1);
    bn_grad_case("bn infer last", -1, 1, 1, shp(2, 3, 4, 0, 0), 3, 0);
    bn_grad_case("bn infer axis1", 1, 1, 0, shp(3, 3, 2, 2, 0), 2, 0);
}

/* ---------------------------------------------------------------- LayerNormalization */

static void ln_case(const char *label, int center, int scale, loom_shape in, const fixture *fx) {
    loom_graph *g = loom_graph_new(1);
    loom_layer *L = loom_layer_normalization(g, NULL, 0.0f, center, scale);
    CHECK(L && L->farg[1] == 1e-3f);
    op_harness H;
    CHECK_STATUS(oph_init(&H, L, 1, &in, 2, 1, 5), LOOM_OK);
    CHECK(L->n_weights == center + scale);
    CHECK(loom_shape_equal(&H.out_shape, &in));
    if (fx) {
        fixture_floats(fx, "ln.x", H.in[0], H.in_n[0]);
        fixture_floats(fx, "ln.gamma", H.w, 6);
        fixture_floats(fx, "ln.beta", H.w + 6, 6);
        oph_forward(&H);
        const double *y = fixture_get(fx, "ln.y", H.out_n);
        if (y) CHECK(worst_diff(H.out, y, H.out_n) < 1e-5);
    }
    oph_grad_check(&H, label, NULL);
    oph_free(&H);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- Embedding */

static void test_embedding(const fixture *fx) {
    loom_graph *g = loom_graph_new(1);
    loom_layer *L = loom_embedding(g, NULL, 10, 4, 0);
    loom_shape in = shp(1, 5, 0, 0, 0);
    op_harness H;
    CHECK_STATUS(oph_init(&H, L, 1, &in, 2, 1, 5), LOOM_OK);
    CHECK(loom_shape_equal(&H.out_shape, &(loom_shape){2, {5, 4}}));
    CHECK(L->n_weights == 1 && L->weights[0].init == LOOM_INIT_UNIFORM);
    CHECK(strcmp(L->weights[0].name, "embeddings") == 0);
    fixture_floats(fx, "emb.table", H.w, 40);
    fixture_floats(fx, "emb.ids", H.in[0], 10);
    oph_forward(&H);
    const double *y = fixture_get(fx, "emb.y", 40);
    if (y) CHECK(worst_diff(H.out, y, 40) < 1e-7);

    /* out of range ids (and NaN) give zero rows and take no gradient; ids truncate as Keras's cast */
    const float ids[10] = {-1.0f, 10.0f, 1e9f, NAN, 2.7f, -0.5f, 9.99f, 0.0f, -1e9f, 3.0f};
    memcpy(H.in[0], ids, sizeof ids);
    oph_forward(&H);
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 4; i++) CHECK(H.out[i * 4 + k] == 0.0f);
        CHECK(H.out[4 * 4 + k] == H.w[2 * 4 + k]);
        CHECK(H.out[5 * 4 + k] == H.w[0 * 4 + k]);
        CHECK(H.out[6 * 4 + k] == H.w[9 * 4 + k]);
        CHECK(H.out[8 * 4 + k] == 0.0f);
        CHECK(H.out[9 * 4 + k] == H.w[3 * 4 + k]);
    }
    for (size_t j = 0; j < 40; j++) H.dw[j] = 0;
    for (size_t j = 0; j < 10; j++) H.din[0][j] = 7.0f;
    for (size_t j = 0; j < 40; j++) H.dout[j] = 1.0f;
    oph_backward(&H);
    for (size_t j = 0; j < 10; j++) CHECK(H.din[0][j] == 7.0f); /* ids get no gradient */
    float rowsum[10] = {0};
    for (int r = 0; r < 10; r++) rowsum[r] = H.dw[r * 4];
    CHECK(rowsum[0] == 2.0f && rowsum[2] == 1.0f && rowsum[3] == 1.0f && rowsum[9] == 1.0f);
    CHECK(rowsum[1] == 0.0f && rowsum[4] == 0.0f);

    /* gradients of the table: ids at k + 0.5 stay in row k under the input perturbation, so
     * their numeric gradient is 0, as the analytic one (din untouched) */
    for (int i = 0; i < 10; i++) H.in[0][i] = (float)((i * 7) % 10) + 0.5f;
    oph_fill_uniform(H.dout, 40, -1, 1, 3);
    oph_grad_check(&H, "embedding", NULL);
    oph_free(&H);

    /* ids of rank 2: (3, 2) -> (3, 2, 4) */
    loom_layer *L2 = loom_embedding(g, NULL, 6, 4, 1);
    loom_shape in2 = shp(2, 3, 2, 0, 0);
    CHECK_STATUS(oph_init(&H, L2, 1, &in2, 2, 1, 5), LOOM_OK);
    CHECK(loom_shape_equal(&H.out_shape, &(loom_shape){3, {3, 2, 4}}));
    oph_free(&H);
    /* ids of rank 4 leave no room for the output axis */
    loom_shape in4 = shp(4, 2, 2, 2, 2);
    loom_error err = {0};
    loom_shape out;
    CHECK_STATUS(L2->op->build(L2, 1, &in4, &out, &err), LOOM_ERR_SHAPE);
    CHECK(strstr(err.msg, "Embedding") != NULL);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- Permute and RepeatVector */

static void test_permute_repeat(const fixture *fx) {
    loom_graph *g = loom_graph_new(1);
    const int d[3] = {3, 1, 2};
    loom_layer *P = loom_permute(g, NULL, 3, d);
    loom_shape in = shp(3, 2, 3, 4, 0);
    op_harness H;
    CHECK_STATUS(oph_init(&H, P, 1, &in, 2, 1, 5), LOOM_OK);
    CHECK(loom_shape_equal(&H.out_shape, &(loom_shape){3, {4, 2, 3}}));
    fixture_floats(fx, "perm.x", H.in[0], H.in_n[0]);
    oph_forward(&H);
    const double *y = fixture_get(fx, "perm.y", H.out_n);
    if (y) CHECK(worst_diff(H.out, y, H.out_n) == 0);
    oph_grad_check(&H, "permute 312", NULL);
    oph_free(&H);

    const int d2[2] = {2, 1}, d4[4] = {2, 4, 1, 3};
    loom_layer *T = loom_permute(g, NULL, 2, d2);
    in = shp(2, 3, 5, 0, 0);
    CHECK_STATUS(oph_init(&H, T, 1, &in, 2, 1, 5), LOOM_OK);
    oph_forward(&H);
    /* a transpose: out[b][j][i] = in[b][i][j] */
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) CHECK(H.out[b * 15 + j * 3 + i] == H.in[0][b * 15 + i * 5 + j]);
    oph_grad_check(&H, "permute 21", NULL);
    oph_free(&H);
    loom_layer *P4 = loom_permute(g, NULL, 4, d4);
    in = shp(4, 2, 3, 2, 2);
    CHECK_STATUS(oph_init(&H, P4, 1, &in, 2, 1, 5), LOOM_OK);
    CHECK(loom_shape_equal(&H.out_shape, &(loom_shape){4, {3, 2, 2, 2}}));
    oph_grad_check(&H, "permute 2413", NULL);
    oph_free(&H);

    loom_layer *R = loom_repeat_vector(g, NULL, 3);
    in = shp(1, 4, 0, 0, 0);
    CHECK_STATUS(oph_init(&H, R, 1, &in, 2, 1, 5), LOOM_OK);
    CHECK(loom_shape_equal(&H.out_shape, &(loom_shape){2, {3, 4}}));
    oph_forward(&H);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++)
            for (int f = 0; f < 4; f++) CHECK(H.out[(b * 3 + t) * 4 + f] == H.in[0][b * 4 + f]);
    oph_grad_check(&H, "repeat_vector", NULL);
    oph_free(&H);

    /* shape errors at the call */
    loom_error err = {0};
    loom_shape out, bad = shp(2, 2, 3, 0, 0);
    CHECK_STATUS(R->op->build(R, 1, &bad, &out, &err), LOOM_ERR_SHAPE);
    CHECK(strstr(err.msg, "RepeatVector") != NULL);
    CHECK_STATUS(P->op->build(P, 1, &bad, &out, &err), LOOM_ERR_SHAPE);
    CHECK(strstr(err.msg, "Permute") != NULL);
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

static void expect_error(loom_graph *g, const void *L, loom_status want, const char *needle) {
    CHECK(L == NULL);
    CHECK_STATUS(loom_graph_status(g), want);
    if (!strstr(loom_graph_error(g), needle)) fprintf(stderr, "  message lacks \"%s\": %s\n", needle, loom_graph_error(g));
    CHECK(strstr(loom_graph_error(g), needle) != NULL);
    loom_graph_free(g);
}

static int same_shape(int n_in, const int *in_rank, const int (*in_dims)[LOOM_MAX_RANK], int *out_dims, void *user) {
    (void)n_in;
    (void)user;
    memcpy(out_dims, in_dims[0], sizeof(int) * LOOM_MAX_RANK);
    return in_rank[0];
}
static int refuse_shape(int n_in, const int *in_rank, const int (*in_dims)[LOOM_MAX_RANK], int *out_dims, void *user) {
    (void)n_in, (void)in_rank, (void)in_dims, (void)out_dims, (void)user;
    return 0;
}
static void nop_cb(const loom_custom_ctx *c, void *user) { (void)c, (void)user; }

static loom_custom_layer valid_def(void) {
    loom_custom_layer d;
    memset(&d, 0, sizeof d);
    d.class_name = "Thing";
    d.min_inputs = d.max_inputs = 1;
    d.n_weights = 1;
    d.weight_names[0] = "w";
    d.weight_ranks[0] = 1;
    d.weight_dims[0][0] = 3;
    d.output_shape = same_shape;
    d.forward = nop_cb;
    d.backward = nop_cb;
    return d;
}

static void test_errors(void) {
    loom_batchnorm_options o = loom_batchnorm_defaults();
    o.axis = 0;
    expect_error(loom_graph_new(0), loom_batch_normalization(NULL, NULL, &o), LOOM_OK, ""); /* NULL graph: NULL */
    loom_graph *g = loom_graph_new(0);
    expect_error(g, loom_batch_normalization(g, "bn", &o), LOOM_ERR_ARGUMENT, "bn (BatchNormalization): axis 0");
    o = loom_batchnorm_defaults();
    o.momentum = 1.5f;
    g = loom_graph_new(0);
    expect_error(g, loom_batch_normalization(g, NULL, &o), LOOM_ERR_ARGUMENT, "momentum");
    o = loom_batchnorm_defaults();
    o.epsilon = -1;
    g = loom_graph_new(0);
    expect_error(g, loom_batch_normalization(g, NULL, &o), LOOM_ERR_ARGUMENT, "batch_normalization (BatchNormalization): epsilon");
    o = loom_batchnorm_defaults();
    o.axis = 3; /* exists as an option, not in a rank-2 input */
    g = loom_graph_new(0);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){3, 4});
    expect_error(g, loom_call(loom_batch_normalization(g, "bn3", &o), x), LOOM_ERR_SHAPE, "bn3 (BatchNormalization): axis 3");
    g = loom_graph_new(0);
    expect_error(g, loom_layer_normalization(g, "ln", -1.0f, 1, 1), LOOM_ERR_ARGUMENT, "ln (LayerNormalization): epsilon");
    g = loom_graph_new(0);
    expect_error(g, loom_layer_normalization(g, "ln", NAN, 1, 1), LOOM_ERR_ARGUMENT, "LayerNormalization");
    g = loom_graph_new(0);
    expect_error(g, loom_embedding(g, "e", 0, 4, 0), LOOM_ERR_ARGUMENT, "e (Embedding): input_dim");
    g = loom_graph_new(0);
    expect_error(g, loom_embedding(g, NULL, 5, -4, 0), LOOM_ERR_ARGUMENT, "embedding (Embedding)");
    g = loom_graph_new(0);
    expect_error(g, loom_embedding(g, NULL, 1 << 20, 1 << 20, 0), LOOM_ERR_ARGUMENT, "too large");
    g = loom_graph_new(0);
    expect_error(g, loom_permute(g, "p", 2, (int[]){1, 1}), LOOM_ERR_ARGUMENT, "p (Permute): dims must be a permutation");
    g = loom_graph_new(0);
    expect_error(g, loom_permute(g, "p", 2, (int[]){0, 1}), LOOM_ERR_ARGUMENT, "dims[0] = 0");
    g = loom_graph_new(0);
    expect_error(g, loom_permute(g, "p", 5, (int[]){1, 2, 3, 4, 5}), LOOM_ERR_ARGUMENT, "rank");
    g = loom_graph_new(0);
    expect_error(g, loom_permute(g, "p", 2, NULL), LOOM_ERR_ARGUMENT, "NULL");
    g = loom_graph_new(0);
    x = loom_input(g, "x", 2, (int[]){3, 4});
    expect_error(g, loom_call(loom_permute(g, "p3", 3, (int[]){3, 1, 2}), x), LOOM_ERR_SHAPE, "p3 (Permute)");
    g = loom_graph_new(0);
    expect_error(g, loom_repeat_vector(g, "r", 0), LOOM_ERR_ARGUMENT, "r (RepeatVector): n must be > 0");
    g = loom_graph_new(0);
    x = loom_input(g, "x", 2, (int[]){3, 4});
    expect_error(g, loom_call(loom_repeat_vector(g, "r", 2), x), LOOM_ERR_SHAPE, "r (RepeatVector)");

    /* custom layers */
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", NULL), LOOM_ERR_ARGUMENT, "c (custom layer): the definition is NULL");
    loom_custom_layer d = valid_def();
    d.class_name = "bad name";
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "class_name");
    d = valid_def();
    d.class_name = NULL;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "class_name");
    d = valid_def();
    d.forward = NULL;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "c (Thing): the forward callback is NULL");
    d = valid_def();
    d.backward = NULL;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "backward");
    d = valid_def();
    d.output_shape = NULL;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "output_shape");
    d = valid_def();
    d.min_inputs = 0;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "min_inputs");
    d = valid_def();
    d.max_inputs = 17;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "max_inputs");
    d = valid_def();
    d.n_weights = 5;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "n_weights");
    d = valid_def();
    d.weight_names[0] = "a_name_far_too_long";
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "weight 0 needs a name");
    d = valid_def();
    d.n_weights = 2;
    d.weight_names[1] = "w";
    d.weight_ranks[1] = 1;
    d.weight_dims[1][0] = 1;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "two weights are named \"w\"");
    d = valid_def();
    d.weight_ranks[0] = 0;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "weight w has rank 0");
    d = valid_def();
    d.weight_dims[0][0] = -2;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "dimension 1 = -2");
    d = valid_def();
    d.weight_inits[0] = (loom_initializer)99;
    g = loom_graph_new(0);
    expect_error(g, loom_custom(g, "c", &d), LOOM_ERR_ARGUMENT, "unknown initializer");
    d = valid_def();
    d.output_shape = refuse_shape;
    g = loom_graph_new(0);
    x = loom_input(g, "x", 1, (int[]){3});
    expect_error(g, loom_call(loom_custom(g, "c", &d), x), LOOM_ERR_SHAPE, "c (Thing): its output_shape refused");
    d = valid_def();
    g = loom_graph_new(0);
    x = loom_input(g, "x", 1, (int[]){3});
    loom_layer *c = loom_custom(g, NULL, &d);
    CHECK(c && strcmp(loom_layer_name(c), "thing") == 0 && strcmp(loom_layer_class(c), "Thing") == 0);
    expect_error(g, loom_call_n(c, 2, (loom_tensor *[]){x, x}), LOOM_ERR_COUNT, "thing (Thing): takes 1 input(s), got 2");
}

/* ---------------------------------------------------------------- models */

static loom_data data_of(const loom_array *x, int nx, const loom_array *y, int ny) {
    loom_data d = {.n_x = nx, .x = x, .n_y = ny, .y = y};
    return d;
}

/* Input(3) -> Dense(4) "h" -> BatchNormalization -> Dense(1) "out"; outputs h (no loss) and out. */
static void test_bn_model(void) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *h = loom_call(loom_dense(g, "h", 4, LOOM_LINEAR, NULL), x);
    loom_tensor *b = loom_call(loom_batch_normalization(g, "bn", NULL), h);
    loom_tensor *y = loom_call(loom_dense(g, "out", 1, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){h, y});
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return;
    }
    loom_loss mse = {.name = "mse"};
    const char *on[1] = {"out"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .loss_outputs = on, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { N = 8 };
    float xs[N * 3], ts[N];
    for (int i = 0; i < N * 3; i++) xs[i] = sinf(0.7f * (float)i) * 2.0f + 0.5f;
    for (int i = 0; i < N; i++) ts[i] = cosf((float)i);
    loom_array xa = {.name = "x", .data = xs, .n = N, .count = N * 3}, ya = {.name = "out", .data = ts, .n = N, .count = N};
    loom_data d = data_of(&xa, 1, &ya, 1);

    /* the batch statistics of h, from predict (h does not depend on the BN layer) */
    float hv[N * 4], outv[N];
    CHECK_STATUS(loom_predict(m, 1, &xa, N, (float *const[]){hv, outv}), LOOM_OK);
    float before[16], after[16];
    for (int i = 0; i < 4; i++) CHECK_STATUS(loom_get_weights(m, "bn", i, before + 4 * i, 4), LOOM_OK);
    CHECK_STATUS(loom_train_on_batch(m, &d, NULL, 0, NULL), LOOM_OK);
    for (int i = 0; i < 4; i++) CHECK_STATUS(loom_get_weights(m, "bn", i, after + 4 * i, 4), LOOM_OK);
    for (int ch = 0; ch < 4; ch++) {
        double mu = 0, var = 0;
        for (int s = 0; s < N; s++) mu += hv[s * 4 + ch];
        mu /= N;
        for (int s = 0; s < N; s++) var += (hv[s * 4 + ch] - mu) * (hv[s * 4 + ch] - mu);
        var /= N;
        /* moving statistics: the forward's update only (the optimizer adds nothing) */
        CHECK_CLOSE(after[8 + ch], 0.99 * before[8 + ch] + 0.01 * mu, 1e-6, 1e-5);
        CHECK_CLOSE(after[12 + ch], 0.99 * before[12 + ch] + 0.01 * var, 1e-6, 1e-5);
        /* gamma and beta moved through the optimizer */
        CHECK(after[ch] != before[ch] && after[4 + ch] != before[4 + ch]);
    }
    /* loom_gradients gives the non-trainable statistics nothing, and leaves them where they are:
     * a gradient query changes no part of the model */
    size_t np = loom_param_count(m), off = loom_param_offset(m, "bn", 2);
    float *grad = malloc(np * sizeof *grad), *params_before = malloc(np * sizeof *params_before);
    memcpy(params_before, loom_params(m), np * sizeof *params_before);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    for (size_t i = 0; i < 8; i++) CHECK(grad[off + i] == 0.0f);
    CHECK(memcmp(params_before, loom_params(m), np * sizeof *params_before) == 0);
    free(grad);
    free(params_before);
    /* fit: moving statistics approach the data's, by forwards alone */
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = N;
    fo.epochs = 300;
    fo.shuffle = 0;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    float mm[4], hv2[N * 4];
    CHECK_STATUS(loom_get_weights(m, "bn", 2, mm, 4), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, &xa, N, (float *const[]){hv2, NULL}), LOOM_OK);
    for (int ch = 0; ch < 4; ch++) {
        double mu = 0;
        for (int s = 0; s < N; s++) mu += hv2[s * 4 + ch];
        mu /= N;
        CHECK_CLOSE(mm[ch], mu, 0.05, 0.05);
    }
    /* the summary counts the statistics as non-trainable: 2 x 4 */
    char buf[8192] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    CHECK_STATUS(loom_summary(m, f), LOOM_OK);
    fclose(f);
    CHECK(strstr(buf, "Non-trainable params: 8 ") != NULL);
    CHECK(strstr(buf, "bn (BatchNormalization)") != NULL);
    loom_model_free(m);
}

/* Input(5) ids -> Embedding(10, 4, mask_zero) -> Dense(1) per step -> (5, 1), mse: the loss is
 * the mean over the non-padded steps. */
static void test_embedding_mask(void) {
    loom_graph *g = loom_graph_new(4);
    loom_tensor *x = loom_input(g, "ids", 1, (int[]){5});
    loom_tensor *e = loom_call(loom_embedding(g, "emb", 10, 4, 1), x);
    loom_tensor *y = loom_call(loom_dense(g, "out", 1, LOOM_LINEAR, NULL), e);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return;
    }
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    const float ids[3 * 5] = {3, 1, 4, 0, 0, /* */ 5, 9, 2, 6, 0, /* */ 7, 0, 0, 0, 0};
    float t[15];
    for (int i = 0; i < 15; i++) t[i] = 0.3f * (float)(i % 4) - 0.4f;
    loom_array xa = {.name = "ids", .data = ids, .n = 3, .count = 3 * 5}, ta = {.name = "out", .data = t, .n = 3, .count = 3 * 5};
    loom_data d = data_of(&xa, 1, &ta, 1);
    float p[15];
    CHECK_STATUS(loom_predict(m, 1, &xa, 3, (float *const[]){p}), LOOM_OK);
    double sum = 0, all = 0;
    int valid = 0;
    for (int i = 0; i < 15; i++) {
        double e2 = (p[i] - t[i]) * (p[i] - t[i]);
        all += e2;
        if (ids[i] != 0) sum += e2, valid++;
    }
    CHECK(valid == 8);
    loom_history *h = NULL;
    CHECK_STATUS(loom_evaluate(m, &d, 3, 0, &h), LOOM_OK);
    float loss = loom_history_get(h, "loss", 0);
    CHECK_CLOSE(loss, sum / valid, 1e-7, 1e-5);
    CHECK(fabs(loss - all / 15) > 1e-4); /* not the unmasked mean */
    loom_history_free(h);
    /* the padded steps' rows are the same row 0 as id 0 elsewhere: the gradient of the table's
     * row 0 comes from padded steps only, so it is zero */
    float *grad = malloc(loom_param_count(m) * sizeof *grad);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    size_t off = loom_param_offset(m, "emb", 0);
    for (int k = 0; k < 4; k++) CHECK(grad[off + k] == 0.0f);
    double row3 = 0;
    for (int k = 0; k < 4; k++) row3 += fabs(grad[off + 3 * 4 + k]);
    CHECK(row3 > 0);
    free(grad);
    loom_model_free(m);
}

/* A user layer: y = x * scale + shift over the last axis (weights (features) each). */
typedef struct ss_user {
    int forwards, backwards;
} ss_user;

static int ss_shape(int n_in, const int *in_rank, const int (*in_dims)[LOOM_MAX_RANK], int *out_dims, void *user) {
    (void)user;
    if (n_in != 1 || in_rank[0] != 1 || in_dims[0][0] != 3) return 0;
    out_dims[0] = 3;
    return 1;
}

static void ss_forward(const loom_custom_ctx *c, void *user) {
    ((ss_user *)user)->forwards++;
    for (int b = 0; b < c->batch; b++)
        for (int f = 0; f < 3; f++) {
            c->out[b * 3 + f] = c->in[0][b * 3 + f] * c->w[0][f] + c->w[1][f];
            c->scratch[b] = 1.0f; /* scratch_per_sample 1: written, kept */
        }
}

static void ss_backward(const loom_custom_ctx *c, void *user) {
    ((ss_user *)user)->backwards++;
    for (int b = 0; b < c->batch; b++)
        for (int f = 0; f < 3; f++) {
            float dy = c->dout[b * 3 + f] * c->scratch[b];
            if (c->din[0]) c->din[0][b * 3 + f] += dy * c->w[0][f];
            if (c->dw) {
                c->dw[0][f] += dy * c->in[0][b * 3 + f];
                c->dw[1][f] += dy;
            }
        }
}

static loom_custom_layer ss_def(ss_user *u) {
    loom_custom_layer d;
    memset(&d, 0, sizeof d);
    d.class_name = "ScaleShift";
    d.min_inputs = d.max_inputs = 1;
    d.n_weights = 2;
    d.weight_names[0] = "scale";
    d.weight_names[1] = "shift";
    d.weight_ranks[0] = d.weight_ranks[1] = 1;
    d.weight_dims[0][0] = d.weight_dims[1][0] = 3;
    d.weight_inits[0] = LOOM_INIT_ONES;
    d.weight_inits[1] = LOOM_INIT_ZEROS;
    d.scratch_per_sample = 1;
    d.output_shape = ss_shape;
    d.forward = ss_forward;
    d.backward = ss_backward;
    d.user = u;
    return d;
}

/* Input(3) -> Dense(3) -> ScaleShift -> Dense(1): the custom layer inside a network. */
static loom_model *ss_model(ss_user *u, loom_layer **out_layer) {
    loom_graph *g = loom_graph_new(9);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *h = loom_call(loom_dense(g, "h", 3, LOOM_TANH, NULL), x);
    loom_custom_layer d = ss_def(u);
    char cls[16] = "ScaleShift", w0[8] = "scale";
    d.class_name = cls;
    d.weight_names[0] = w0;
    loom_layer *c = loom_custom(g, NULL, &d);
    /* the layer holds its own copy of the definition and of its strings */
    memset(&d, 0, sizeof d);
    memset(cls, 'X', sizeof cls - 1);
    memset(w0, 'Y', sizeof w0 - 1);
    loom_tensor *s = loom_call(c, h);
    loom_tensor *y = loom_call(loom_dense(g, "out", 1, LOOM_LINEAR, NULL), s);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) {
        fprintf(stderr, "  %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    if (out_layer) *out_layer = c;
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_adam(0.02f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void test_custom(void) {
    ss_user u = {0, 0};
    loom_layer *c = NULL;
    loom_model *m = ss_model(&u, &c);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(strcmp(loom_layer_class(c), "ScaleShift") == 0);
    CHECK(strcmp(loom_layer_name(c), "scale_shift") == 0);
    CHECK(loom_layer_num_weights(c) == 2 && strcmp(loom_layer_weight_name(c, 1), "shift") == 0);
    float sc[3], sh[3];
    CHECK_STATUS(loom_get_weights(m, "scale_shift", 0, sc, 3), LOOM_OK);
    CHECK_STATUS(loom_get_weights(m, "scale_shift", 1, sh, 3), LOOM_OK);
    CHECK(sc[0] == 1 && sc[2] == 1 && sh[0] == 0 && sh[1] == 0); /* ones, zeros */
    /* non-trivial weights for the check */
    const float sc0[3] = {1.5f, -0.7f, 0.9f}, sh0[3] = {0.2f, -0.1f, 0.3f};
    CHECK_STATUS(loom_set_weights(m, "scale_shift", 0, sc0, 3), LOOM_OK);
    CHECK_STATUS(loom_set_weights(m, "scale_shift", 1, sh0, 3), LOOM_OK);

    enum { N = 16 };
    float xs[N * 3], ts[N];
    for (int i = 0; i < N; i++) {
        float a = sinf((float)i), b = cosf(1.3f * (float)i), cc = sinf(0.4f * (float)i + 1);
        xs[i * 3] = a, xs[i * 3 + 1] = b, xs[i * 3 + 2] = cc;
        ts[i] = 0.8f * a - 0.5f * b * cc + 0.3f;
    }
    loom_array xa = {.name = "x", .data = xs, .n = N, .count = N * 3}, ta = {.name = NULL, .data = ts, .n = N, .count = N};
    loom_data d = data_of(&xa, 1, &ta, 1);
    size_t np = loom_param_count(m);
    float *grad = malloc(np * sizeof *grad);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    CHECK(u.forwards > 0 && u.backwards > 0);
    /* central differences of the evaluated loss, over every parameter */
    float *p = loom_params(m);
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        float v = p[i];
        double h = 1e-2;
        loom_history *r = NULL;
        p[i] = (float)(v + h);
        loom_evaluate(m, &d, N, 0, &r);
        double fp = loom_history_get(r, "loss", 0);
        loom_history_free(r);
        p[i] = (float)(v - h);
        loom_evaluate(m, &d, N, 0, &r);
        double fm = loom_history_get(r, "loss", 0);
        loom_history_free(r);
        p[i] = v;
        double num = (fp - fm) / ((double)(float)(v + h) - (double)(float)(v - h));
        if (!(fabs(num - grad[i]) <= 2e-4 + 1e-2 * fabs(num))) {
            if (bad++ < 5) fprintf(stderr, "  custom: param %zu analytic %.6g numeric %.6g\n", i, grad[i], num);
        }
    }
    CHECK(bad == 0);
    free(grad);

    /* trained by fit */
    loom_history *h0 = NULL, *h1 = NULL;
    loom_evaluate(m, &d, N, 0, &h0);
    float sc_before[3];
    loom_get_weights(m, "scale_shift", 0, sc_before, 3);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 8;
    fo.epochs = 100;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    loom_evaluate(m, &d, N, 0, &h1);
    float l0 = loom_history_get(h0, "loss", 0), l1 = loom_history_get(h1, "loss", 0);
    CHECK(l1 < 0.2f * l0);
    loom_get_weights(m, "scale_shift", 0, sc, 3);
    CHECK(memcmp(sc, sc_before, sizeof sc) != 0);
    loom_history_free(h0);
    loom_history_free(h1);

    /* model files: the weights are saved; loading the architecture is refused with directions;
     * a model rebuilt in code takes the weights with loom_load_weights */
    char path[] = "/tmp/loom_custom_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    char err[512] = "";
    loom_model *bad_load = loom_model_load(path, err, sizeof err);
    CHECK(bad_load == NULL);
    loom_model_free(bad_load);
    if (!strstr(err, "loom_load_weights")) fprintf(stderr, "  custom load message: %s\n", err);
    CHECK(strstr(err, "loom_load_weights") != NULL);
    ss_user u2 = {0, 0};
    loom_model *m2 = ss_model(&u2, NULL);
    if (m2) {
        loom_status s = loom_load_weights(m2, path);
        CHECK_STATUS(s, LOOM_OK);
        if (s) fprintf(stderr, "  %s\n", loom_model_error(m2));
        CHECK(memcmp(loom_params(m2), loom_params(m), np * sizeof(float)) == 0);
        loom_model_free(m2);
    }
    unlink(path);
    loom_model_free(m);
}

/* Shared layers and model files for the built-in classes:
 *   ids (5) -> Embedding(10, 4, mask_zero) ----------------\
 *   v (4) -> RepeatVector(5) -> (5, 4) -> [shared LN] -------> Concatenate -> BN -> Permute(2, 1)
 *   ids branch also through the shared LN                        -> Flatten -> Dense(2) */
static loom_model *zoo_model(uint64_t seed) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *ids = loom_input(g, "ids", 1, (int[]){5});
    loom_tensor *v = loom_input(g, "v", 1, (int[]){4});
    loom_tensor *e = loom_call(loom_embedding(g, "emb", 10, 4, 1), ids);
    loom_tensor *r = loom_call(loom_repeat_vector(g, "rep", 5), v);
    loom_layer *ln = loom_layer_normalization(g, "ln", 0.0f, 1, 1);
    loom_tensor *a = loom_call(ln, e), *b = loom_call(ln, r);
    loom_tensor *cat = loom_call_n(loom_concatenate(g, "cat", -1), 2, (loom_tensor *[]){a, b});
    loom_batchnorm_options o = loom_batchnorm_defaults();
    o.momentum = 0.5f;
    loom_tensor *bn = loom_call(loom_batch_normalization(g, "bn", &o), cat);
    loom_tensor *p = loom_call(loom_permute(g, "perm", 2, (int[]){2, 1}), bn);
    loom_tensor *f = loom_call(loom_flatten(g, "flat"), p);
    loom_tensor *y = loom_call(loom_dense(g, "out", 2, LOOM_LINEAR, NULL), f);
    loom_model *m = loom_model_new(g, 2, (loom_tensor *[]){ids, v}, 1, &y);
    if (!m) {
        fprintf(stderr, "  zoo: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void test_shared_and_files(void) {
    loom_model *m = zoo_model(21);
    CHECK(m != NULL);
    if (!m) return;
    enum { N = 6 };
    float ids[N * 5], v[N * 4], t[N * 2];
    for (int i = 0; i < N * 5; i++) ids[i] = (float)((i * 7) % 10);
    for (int i = 0; i < N * 4; i++) v[i] = sinf((float)i);
    for (int i = 0; i < N * 2; i++) t[i] = cosf((float)i);
    loom_array xa[2] = {{.name = "ids", .data = ids, .n = N, .count = N * 5}, {.name = "v", .data = v, .n = N, .count = N * 4}}, ta = {.name = NULL, .data = t, .n = N, .count = N * 2};
    loom_data d = data_of(xa, 2, &ta, 1);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 3;
    fo.epochs = 3;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    /* the shared LayerNormalization has one pair of weights, both calls train it */
    loom_layer *ln = loom_model_find_layer(m, "ln");
    CHECK(ln && loom_layer_num_weights(ln) == 2);
    float gamma[4];
    CHECK_STATUS(loom_get_weights(m, "ln", 0, gamma, 4), LOOM_OK);
    CHECK(gamma[0] != 1.0f);

    float before[N * 2], after[N * 2];
    CHECK_STATUS(loom_predict(m, 2, xa, N, (float *const[]){before}), LOOM_OK);
    char path[] = "/tmp/loom_misc_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    char err[512] = "";
    loom_model *r = loom_model_load(path, err, sizeof err);
    if (!r) fprintf(stderr, "  round trip (needs the ops registered in model_json.c): %s\n", err);
    CHECK(r != NULL);
    if (r) {
        CHECK(loom_param_count(r) == loom_param_count(m));
        CHECK(memcmp(loom_params(r), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
        CHECK_STATUS(loom_predict(r, 2, xa, N, (float *const[]){after}), LOOM_OK);
        CHECK(memcmp(before, after, sizeof before) == 0);
        const char *cls[5] = {"Embedding", "RepeatVector", "LayerNormalization", "BatchNormalization", "Permute"};
        const char *names[5] = {"emb", "rep", "ln", "bn", "perm"};
        for (int i = 0; i < 5; i++) {
            loom_layer *L = loom_model_find_layer(r, names[i]);
            CHECK(L && strcmp(loom_layer_class(L), cls[i]) == 0);
        }
        loom_layer *bn = loom_model_find_layer(r, "bn");
        CHECK(bn && bn->farg[0] == 0.5f && bn->weights[2].non_trainable);
        loom_layer *e = loom_model_find_layer(r, "emb");
        CHECK(e && e->iarg[2] == 1);
        /* training goes on identically */
        CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
        CHECK_STATUS(loom_fit(r, &d, &fo, NULL), LOOM_OK);
        CHECK(memcmp(loom_params(r), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
        loom_model_free(r);
    }
    unlink(path);
    loom_model_free(m);
}

int main(void) {
    (void)fixture_scalar;
    fixture fx;
    bool have_fx = fixture_load(&fx, LOOM_TEST_DIR "/reference/misc_ref.txt") == 0;
    if (have_fx) {
        bn_fixture_case(&fx, "bn_last", -1);
        bn_fixture_case(&fx, "bn_first", 1);
    }
    test_bn_closed_form();
    test_bn_gradients();
    ln_case("ln", 1, 1, shp(2, 3, 6, 0, 0), have_fx ? &fx : NULL);
    ln_case("ln no beta", 0, 1, shp(1, 7, 0, 0, 0), NULL);
    ln_case("ln no gamma", 1, 0, shp(3, 2, 2, 3, 0), NULL);
    ln_case("ln plain", 0, 0, shp(1, 5, 0, 0, 0), NULL);
    if (have_fx) {
        test_embedding(&fx);
        test_permute_repeat(&fx);
    }
    fixture_free(&fx);
    test_errors();
    test_bn_model();
    test_embedding_mask();
    test_custom();
    test_shared_and_files();
    return check_report("layers_misc");
}
