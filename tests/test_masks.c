/* test_masks.c — layers that read Keras masks beyond the recurrent ones (issue 16 part 5's gaps):
 *   - BatchNormalization on (steps, channels) with a mask: training statistics over the valid
 *     steps only (Keras 3's masked moments): the outputs at valid steps equal BatchNormalization
 *     of the valid rows alone, padded steps are normalised with the same statistics, the moving
 *     statistics move towards the masked ones; central differences (op_harness.h) with the mask;
 *     inference ignores the mask;
 *   - LayerNormalization over several trailing axes (Keras axis=[1, 2]): = the last-axis layer on
 *     the flattened input bit for bit, central differences, gamma/beta of the axes' shape, .loom and
 *     .keras file round trips, non-trailing axes refused naming the layer. */
#include "op_harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_batchnorm_mask(void) {
    enum { B = 3, T = 5, C = 4 };
    const float mask[B * T] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0};
    int valid = 0;
    for (int i = 0; i < B * T; i++) valid += mask[i] != 0;
    loom_graph *g = loom_graph_new(2);
    loom_batchnorm_options bo = loom_batchnorm_defaults();
    loom_layer *L = loom_batch_normalization(g, NULL, &bo);
    loom_shape in = {2, {T, C}}, cut = {2, {valid, C}};
    op_harness H, Hc;
    bool ok = L && oph_init(&H, L, 1, &in, B, 1, 4) == LOOM_OK && oph_init(&Hc, L, 1, &cut, 1, 1, 4) == LOOM_OK;
    CHECK(ok);
    if (ok) {
        for (size_t i = 0; i < H.n_w; i++) H.w[i] = 0.5f + 0.25f * (float)(i % 3); /* gamma, beta, variance > 0 */
        memcpy(Hc.w, H.w, H.n_w * sizeof(float));
        for (int r = 0, k = 0; r < B * T; r++)
            if (mask[r] != 0) memcpy(Hc.in[0] + (size_t)k++ * C, H.in[0] + (size_t)r * C, C * sizeof(float));
        H.mask = mask;
        oph_forward(&H);
        oph_forward(&Hc);
        int bad = 0;
        for (int r = 0, k = 0; r < B * T; r++)
            if (mask[r] != 0) {
                for (int ch = 0; ch < C; ch++)
                    bad += fabsf(H.out[r * C + ch] - Hc.out[k * C + ch]) > 1e-5f * (1 + fabsf(Hc.out[k * C + ch]));
                k++;
            }
        if (bad) fprintf(stderr, "  masked BatchNormalization: %d valid outputs differ from the valid rows alone\n", bad);
        CHECK(bad == 0);
        /* padded steps use the same statistics: y = (x - mean) * gamma / std + beta, from a valid row */
        const float *gamma = H.w, *beta = H.w + C;
        int r0 = 0, rp = 3; /* valid row 0, padded row 3 */
        for (int ch = 0; ch < C; ch++) {
            float scale = (H.out[r0 * C + ch] - beta[ch]) / (H.in[0][r0 * C + ch] - H.scratch[1 + ch]);
            float expect = (H.in[0][rp * C + ch] - H.scratch[1 + ch]) * scale + beta[ch];
            CHECK(fabsf(H.out[rp * C + ch] - expect) < 1e-4f);
            (void)gamma;
        }
        oph_grad_check(&H, "masked BatchNormalization", NULL);
        /* inference: moving statistics, the mask changes nothing */
        H.training = 0;
        oph_forward(&H);
        float *with = malloc(H.out_n * sizeof(float));
        memcpy(with, H.out, H.out_n * sizeof(float));
        H.mask = NULL;
        oph_forward(&H);
        CHECK(memcmp(with, H.out, H.out_n * sizeof(float)) == 0);
        free(with);
    }
    if (ok) {
        oph_free(&H);
        oph_free(&Hc);
    }
    loom_graph_free(g);
}

static void test_layernorm_axes(void) {
    enum { B = 3, T = 3, C = 4 };
    loom_graph *g = loom_graph_new(3);
    const int axes[2] = {1, -1};
    loom_layer *L = loom_layer_normalization_axes(g, NULL, 2, axes, 0, 1, 1);
    loom_layer *F = loom_layer_normalization(g, NULL, 0, 1, 1);
    loom_shape in = {2, {T, C}}, flat = {1, {T * C}};
    op_harness H, Hf;
    bool ok = L && F && oph_init(&H, L, 1, &in, B, 1, 5) == LOOM_OK && oph_init(&Hf, F, 1, &flat, B, 1, 5) == LOOM_OK;
    CHECK(ok);
    if (ok) {
        CHECK(L->weights[0].shape.rank == 2 && L->weights[0].shape.dims[0] == T && L->weights[0].shape.dims[1] == C);
        memcpy(Hf.w, H.w, H.n_w * sizeof(float));
        memcpy(Hf.in[0], H.in[0], H.in_n[0] * sizeof(float));
        oph_forward(&H);
        oph_forward(&Hf);
        CHECK(memcmp(H.out, Hf.out, H.out_n * sizeof(float)) == 0);
        oph_grad_check(&H, "LayerNormalization axes [1, -1]", NULL);
        oph_free(&H);
        oph_free(&Hf);
    }
    /* a model file keeps the axes */
    int shape[2] = {T, C};
    loom_tensor *x = loom_input(g, "x", 2, shape);
    loom_tensor *y = loom_call(loom_layer_normalization_axes(g, "ln", 2, (const int[]){-2, -1}, 0, 1, 1), x);
    loom_model *m = y ? loom_model_new(g, 1, &x, 1, &y) : NULL;
    CHECK(m != NULL);
    if (m) {
        for (size_t i = 0; i < loom_param_count(m); i++) loom_params(m)[i] = 0.5f + 0.125f * (float)(i % 5);
        char path[] = "/tmp/loom_ln_axes_XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) close(fd);
        loom_loss l = {.name = "mse"};
        loom_compile_config cc = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(m, &cc), LOOM_OK);
        CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
        char err[256] = "";
        loom_model *r = loom_model_load(path, err, sizeof err);
        if (!r) fprintf(stderr, "  load: %s\n", err);
        CHECK(r != NULL);
        if (r) {
            float xs[2 * T * C], a[2 * T * C], b[2 * T * C], *pa = a, *pb = b;
            for (int i = 0; i < 2 * T * C; i++) xs[i] = loom_uniform01(8, (uint64_t)i) - 0.5f;
            loom_array xa = {.name = "x", .data = xs, .n = 2, .count = 2 * T * C};
            CHECK_STATUS(loom_predict(m, 1, &xa, 2, &pa), LOOM_OK);
            CHECK_STATUS(loom_predict(r, 1, &xa, 2, &pb), LOOM_OK);
            CHECK(memcmp(a, b, sizeof a) == 0);
            loom_model_free(r);
            /* and a Keras file (axis list, gamma and beta of shape (T, C)) */
            char kpath[64];
            snprintf(kpath, sizeof kpath, "/tmp/loom_ln_axes_%d.keras", (int)getpid());
            CHECK_STATUS(loom_model_export(m, kpath), LOOM_OK);
            r = loom_model_import(kpath, err, sizeof err);
            if (!r) fprintf(stderr, "  import: %s\n", err);
            CHECK(r != NULL);
            if (r) {
                CHECK_STATUS(loom_predict(r, 1, &xa, 2, &pb), LOOM_OK);
                CHECK(memcmp(a, b, sizeof a) == 0);
                loom_model_free(r);
            }
            unlink(kpath);
        }
        unlink(path);
        loom_model_free(m);
    } else {
        loom_graph_free(g);
    }
    /* axis 1 alone on (T, C) is not the trailing axis */
    g = loom_graph_new(1);
    x = loom_input(g, "x", 2, shape);
    CHECK(loom_call(loom_layer_normalization_axes(g, "bad_ln", 1, (const int[]){1}, 0, 1, 1), x) == NULL);
    CHECK(strstr(loom_graph_error(g), "bad_ln (LayerNormalization)") != NULL);
    loom_graph_free(g);
}

int main(void) {
    test_batchnorm_mask();
    test_layernorm_axes();
    return check_report("test_masks");
}
