/* test_masks.c — layers that read Keras masks beyond the recurrent ones (issue 16 part 5's gaps):
 *   - BatchNormalization on (steps, channels) with a mask: training statistics over the valid
 *     steps only (Keras 3's masked moments): the outputs at valid steps equal BatchNormalization
 *     of the valid rows alone, padded steps are normalised with the same statistics, the moving
 *     statistics move towards the masked ones; central differences (op_harness.h) with the mask;
 *     inference ignores the mask. */
#include "op_harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

int main(void) {
    test_batchnorm_mask();
    return check_report("test_masks");
}
