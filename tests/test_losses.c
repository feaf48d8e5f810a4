/* test_losses.c — loss values against the spec and numpy, gradients against central differences. */
#include "check.h"
#include "graph/graph.h"
#include "ops/activations.h"
#include "ops/losses.h"
#include "ops/metrics.h"
#include "ops/init.h"
#include "optim/optim.h"
#include "kernels/gemm.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static loom_loss_impl resolve(loom_loss spec) {
    loom_loss_impl l;
    loom_error err = {0};
    loom_status s = loom_loss_resolve(&spec, &l, &err);
    CHECK_STATUS(s, LOOM_OK);
    if (s != LOOM_OK) fprintf(stderr, "  resolve: %s\n", err.msg);
    return l;
}

static loom_loss_impl named(const char *name) { return resolve((loom_loss){.name = name}); }

/* L for the given inputs; values (n_rows floats) are written to `values` when not NULL. */
static float loss_of(const loom_loss_impl *l, const float *t, const float *p, size_t n, int dim,
                     size_t rps, const float *sw, bool fused, float *values, float *grad) {
    float scratch[64], L = NAN;
    loom_error err = {0};
    CHECK_STATUS(loom_loss_compute(l, t, p, NULL, n, dim, rps, sw, fused, values ? values : scratch,
                                   grad, &L, &err),
                 LOOM_OK);
    return L;
}

/* Central differences of L over every prediction against the analytic gradient. The step is
 * what float32 actually moved by, so rounding of p +- h does not bias the quotient. */
static void grad_check(const char *what, const loom_loss_impl *l, const float *t, const float *p0,
                       size_t n, int dim, size_t rps, const float *sw, bool fused) {
    float p[64], g[64], values[16];
    size_t np = n * (size_t)dim;
    memcpy(p, p0, np * sizeof *p);
    float L = loss_of(l, t, p, n, dim, rps, sw, fused, values, g);

    /* L must be the documented reduction of the unweighted row values */
    double want = 0.0;
    for (size_t r = 0; r < n; r++) want += (double)values[r] * (sw ? sw[r / rps] : 1.0);
    CHECK_CLOSE(L, want / (double)n, 1e-6, 1e-6);

    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        const float h = 1e-3f;
        float keep = p[i];
        p[i] = keep + h;
        float up = p[i];
        float Lp = loss_of(l, t, p, n, dim, rps, sw, fused, NULL, NULL);
        p[i] = keep - h;
        float dn = p[i];
        float Lm = loss_of(l, t, p, n, dim, rps, sw, fused, NULL, NULL);
        p[i] = keep;
        double fd = ((double)Lp - Lm) / ((double)up - dn);
        check_count++;
        if (!(fabs(fd - g[i]) <= 2e-4 + 1e-2 * fabs(fd))) {
            check_failures++;
            bad++;
            fprintf(stderr, "grad_check %s [%s rps=%zu sw=%s fused=%d] d/dp[%zu]: analytic %.7g, "
                            "numeric %.7g\n",
                    what, l->name, rps, sw ? "yes" : "no", (int)fused, i, (double)g[i], fd);
        }
    }
    (void)bad;
}

/* Every gradient check runs without weights, with per-row weights (one of them 0) and with
 * two rows per sample. */
static void grad_check_all(const char *what, const loom_loss_impl *l, const float *t,
                           const float *p, bool fused) {
    static const float sw_rows[4] = {1.5f, 0.0f, 0.7f, 2.0f};
    static const float sw_samples[2] = {0.5f, 2.0f};
    grad_check(what, l, t, p, 4, 3, 1, NULL, fused);
    grad_check(what, l, t, p, 4, 3, 1, sw_rows, fused);
    grad_check(what, l, t, p, 4, 3, 2, sw_samples, fused);
}

/* ---------------------------------------------------------------- data (4 rows of 3) */

static const float T_REG[12] = {0.5f, -1.0f, 2.0f, 1.5f, 0.0f, -0.5f,
                                0.1f, 2.0f,  0.4f, 1.6f, -1.3f, 1.0f};
/* errors p - t stay away from 0 (MAE) and from the huber thresholds 1 and 0.4 */
static const float P_REG[12] = {0.2f, -0.4f, 3.5f, 1.0f, 0.3f,  -2.0f,
                                0.7f, 1.9f,  -0.8f, 2.2f, -1.1f, 0.05f};
static const float T_CNT[12] = {1, 2, 0, 0.5f, 3, 1, 0, 1, 2, 4, 0, 1};
static const float P_POS[12] = {0.8f, 2.5f, 0.1f, 0.6f, 1.5f,  2.0f,
                                1.2f, 0.3f, 0.9f, 3.0f, 0.05f, 1.1f};
static const float T_BIN[12] = {0, 1, 1, 1, 0, 0.3f, 1, 1, 0, 0, 1, 0.6f};
static const float P_PROB[12] = {0.1f, 0.8f, 0.6f,  0.95f, 0.2f, 0.5f,
                                 0.3f, 0.7f, 0.45f, 0.05f, 0.9f, 0.25f};
static const float T_DIST[12] = {0.2f, 0.3f, 0.5f, 0, 0.6f, 0.4f, 0.1f, 0.1f, 0.8f, 0.5f, 0.5f, 0};
static const float P_DIST[12] = {0.1f,  0.6f,  0.3f, 0.3f, 0.3f,  0.4f,
                                 0.25f, 0.25f, 0.5f, 0.4f, 0.35f, 0.25f};
static const float T_CCE[12] = {0, 1, 0, 0.2f, 0.3f, 0.5f, 1, 0, 0, 0, 0, 1};
/* rows deliberately not summing to 1: the renormalisation is part of the formula */
static const float P_CCE[12] = {0.2f, 0.5f,  0.3f, 0.2f, 1.2f, 0.6f,
                                0.9f, 0.05f, 0.3f, 0.4f, 0.4f, 0.2f};
static const float Z[12] = {1, 2, -1, 0.5f, -0.5f, 1.5f, -2, 0.3f, 0.8f, 3, -1, 0};
static const float Y_SPARSE[4] = {1, 2, 0, 2};
static const float T_H01[12] = {0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1};
static const float T_HPM[12] = {-1, 1, 1, 1, -1, -1, 1, 1, -1, -1, -1, 1};
static const float T_HMIX[12] = {0, 1, 1, 1, 0, 0.5f, 1, 1, 0, 0, 0, 1};
static const float P_H[12] = {0.3f,  0.8f, -0.5f, 2.0f,  0.1f, -1.5f,
                              -0.2f, 0.6f, 1.7f,  0.45f, -0.9f, 0.0f};

/* ---------------------------------------------------------------- spec section 2.4 */

static void test_spec_vectors(void) {
    const float t[6] = {.1f, .2f, .3f, .4f, .5f, .6f};
    const float p[6] = {.4f, .1f, .2f, .6f, .6f, .1f};
    float v[3];
    loom_loss_impl mse = named("mse"), mae = named("mae");

    CHECK_CLOSE(loss_of(&mse, t, p, 3, 2, 1, NULL, false, v, NULL), 0.068333, 1e-6, 0);
    CHECK_CLOSE(v[0], 0.05, 1e-7, 1e-5);
    CHECK_CLOSE(v[1], 0.025, 1e-7, 1e-5);
    CHECK_CLOSE(v[2], 0.13, 1e-7, 1e-5);

    /* "crossentropy" on these shapes is categorical; rows are renormalised */
    loom_loss_impl cce = named("categorical_crossentropy");
    CHECK_CLOSE(loss_of(&cce, t, p, 3, 2, 1, NULL, false, v, NULL), 0.706595, 1e-6, 0);
    CHECK_CLOSE(v[0], 0.344202, 1e-6, 0);
    CHECK_CLOSE(v[1], 0.530961, 1e-6, 0);
    CHECK_CLOSE(v[2], 1.244621, 1e-6, 0);

    const float t1[6] = {.1f, .2f, .3f, .4f, .5f, .6f}, p1[6] = {1.2f, 1.1f, 1.0f, .9f, .8f, .7f};
    const float t2[6] = {.7f, .8f, .9f, 1.0f, 1.1f, 1.2f}, p2[6] = {.6f, .5f, .4f, .3f, .2f, .1f};
    float La = loss_of(&mse, t1, p1, 3, 2, 1, NULL, false, NULL, NULL);
    float Lb = loss_of(&mse, t2, p2, 3, 2, 1, NULL, false, NULL, NULL);
    CHECK_CLOSE(La, 0.476667, 1e-6, 0);
    CHECK_CLOSE(La + Lb, 0.953333, 2e-6, 0);

    /* weights a=[1,2,3], b=[3,2,1]: (1.01+0.74+0.15)/3 each, divisor 3 not 6 */
    const float wa[3] = {1, 2, 3}, wb[3] = {3, 2, 1};
    La = loss_of(&mse, t1, p1, 3, 2, 1, wa, false, v, NULL);
    CHECK_CLOSE(v[0] * 1, 1.01, 1e-6, 1e-6);
    CHECK_CLOSE(v[1] * 2, 0.74, 1e-6, 1e-6);
    CHECK_CLOSE(v[2] * 3, 0.15, 1e-6, 1e-6);
    CHECK_CLOSE(La, (1.01 + 0.74 + 0.15) / 3, 1e-6, 0);
    Lb = loss_of(&mse, t2, p2, 3, 2, 1, wb, false, NULL, NULL);
    CHECK_CLOSE(La + Lb, 1.266667, 2e-6, 0);

    /* ["mse","mae"] on outputs b, a */
    CHECK_CLOSE(loss_of(&mae, t1, p1, 3, 2, 1, NULL, false, NULL, NULL), 0.6, 1e-6, 0);

    /* zero-weighted samples stay in the denominator */
    const float w0[3] = {1, 0, 0};
    CHECK_CLOSE(loss_of(&mse, t1, p1, 3, 2, 1, w0, false, NULL, NULL), 1.01 / 3, 1e-6, 0);

    const float ta[1] = {1}, pa[1] = {3};
    CHECK_CLOSE(loss_of(&mse, ta, pa, 1, 1, 1, NULL, false, NULL, NULL), 4.0, 0, 0);
}

/* float32 BCE from probabilities, spec section 3, K3 column */
static void test_bce_table(void) {
    loom_loss_impl bce = named("binary_crossentropy");
    const float one = 1, zero = 0, half = 0.5f;
    CHECK_CLOSE(loss_of(&bce, &one, &one, 1, 1, 1, NULL, false, NULL, NULL), 1.192093e-07, 0, 1e-6);
    CHECK_CLOSE(loss_of(&bce, &zero, &one, 1, 1, 1, NULL, false, NULL, NULL), 15.94238, 0, 1e-6);
    CHECK_CLOSE(loss_of(&bce, &one, &zero, 1, 1, 1, NULL, false, NULL, NULL), 16.1181, 0, 1e-5);
    CHECK_CLOSE(loss_of(&bce, &one, &half, 1, 1, 1, NULL, false, NULL, NULL), 0.6931472, 0, 1e-7);

    /* clipped predictions get no gradient, as autodiff of clip gives */
    float g = 123;
    loss_of(&bce, &zero, &one, 1, 1, 1, NULL, false, NULL, &g);
    CHECK(g == 0.0f);
    g = 123;
    loss_of(&bce, &one, &zero, 1, 1, 1, NULL, false, NULL, &g);
    CHECK(g == 0.0f);
}

/* ---------------------------------------------------------------- independent values */

/* Row values and L on the first two rows of the data above, from numpy (float64) with the
 * Keras 3 formulas of spec section 3; the script is /tmp/ref.py in the session that wrote this:
 *   e = p - t; mse = (e**2).mean(-1); huber = where(|e|<=d, .5e², d|e| - .5d²).mean(-1);
 *   log_cosh = log(cosh(e)).mean(-1); poisson = (p - t*log(p+1e-7)).mean(-1);
 *   kld = (tc*log(tc/pc)).sum(-1) with tc, pc = clip(., float32(1e-7), 1);
 *   cosine = -(n(t)*n(p)).sum(-1), n(x) = x / max(|x|, 1e-7);
 *   bce = mean(-(t log pc + (1-t) log(1-pc))), pc clipped to float32 [1e-7, 1-1e-7];
 *   bce logits = mean(-(t log sigmoid(z) + (1-t) log(1 - sigmoid(z))));
 *   cce = -(t*log(clip(p/p.sum(-1)))).sum(-1); cce logits = -(t*log_softmax(z)).sum(-1). */
static void check_rows(const char *what, const loom_loss_impl *l, const float *t, const float *p,
                       bool fused, double v0, double v1, double L) {
    float v[2];
    float got = loss_of(l, t, p, 2, 3, 1, NULL, fused, v, NULL);
    check_count++;
    if (!(fabs(v[0] - v0) <= 1e-6 + 1e-6 * fabs(v0) && fabs(v[1] - v1) <= 1e-6 + 1e-6 * fabs(v1) &&
          fabs(got - L) <= 1e-6 + 1e-6 * fabs(L))) {
        check_failures++;
        fprintf(stderr, "values %s: got [%.9g, %.9g] L=%.9g, want [%.9g, %.9g] L=%.9g\n", what,
                (double)v[0], (double)v[1], (double)got, v0, v1, L);
    }
}

static void test_values(void) {
    loom_loss_impl l;
    l = named("mse");
    check_rows("mse", &l, T_REG, P_REG, false, 0.9, 0.863333333, 0.881666667);
    l = named("mean_absolute_error");
    check_rows("mae", &l, T_REG, P_REG, false, 0.8, 0.766666667, 0.783333333);
    l = named("huber");
    check_rows("huber", &l, T_REG, P_REG, false, 0.408333333, 0.39, 0.399166667);
    l = resolve((loom_loss){.name = "huber_loss", .delta = 0.5f});
    check_rows("huber 0.5", &l, T_REG, P_REG, false, 0.281666667, 0.265, 0.273333333);
    l = named("logcosh");
    check_rows("log_cosh", &l, T_REG, P_REG, false, 0.356638743, 0.339965149, 0.348301946);
    l = named("poisson");
    check_rows("poisson", &l, T_CNT, P_POS, false, 0.596853961, 0.815289991, 0.706071976);
    l = named("kld");
    check_rows("kld", &l, T_DIST, P_DIST, false, 0.186098094, 0.415886817, 0.300992455);
    l = named("cosine_similarity");
    /* numpy inputs t=[[1,2,3],[0,-1,.5]], p=[[.5,.5,-1],[1,-2,.25]] */
    const float tc[6] = {1, 2, 3, 0, -1, 0.5f}, pc[6] = {0.5f, 0.5f, -1, 1, -2, 0.25f};
    check_rows("cosine", &l, tc, pc, false, 0.327326835, -0.844736791, -0.258704978);

    /* hinge: a 0/1 batch is converted to -1/+1, a batch with 0.5 in it is not */
    const float ph[6] = {0.3f, 0.8f, -0.5f, 2.0f, 0.1f, -1.5f};
    l = named("hinge");
    check_rows("hinge 0/1", &l, T_H01, ph, false, 1.0, 0.366666667, 0.683333333);
    check_rows("hinge -1/1", &l, T_HPM, ph, false, 1.0, 0.366666667, 0.683333333);
    check_rows("hinge mixed", &l, T_HMIX, ph, false, 0.9, 0.916666667, 0.908333333);

    const float zb[6] = {-1.5f, 2.0f, 0.3f, 3.0f, -0.7f, 0.1f};
    l = named("bce");
    check_rows("bce", &l, T_BIN, P_PROB, false, 0.279776564, 0.322528009, 0.301152286);
    l = resolve((loom_loss){.name = "bce", .label_smoothing = 0.2f});
    check_rows("bce ls", &l, T_BIN, P_PROB, false, 0.412742698, 0.466885787, 0.439814243);
    check_rows("bce ls fused", &l, T_BIN, zb, true, 0.420898844, 0.510723354, 0.465811099);
    l = resolve((loom_loss){.name = "bce", .from_logits = 1});
    check_rows("bce logits", &l, T_BIN, zb, false, 0.294232178, 0.388723354, 0.341477766);

    l = named("cce");
    check_rows("cce", &l, T_CCE, P_CCE, false, 0.693147181, 1.215751108, 0.954449144);
    check_rows("cce fused", &l, T_CCE, Z, true, 0.349012217, 1.207605964, 0.778309091);
    l = resolve((loom_loss){.name = "cce", .label_smoothing = 0.1f});
    check_rows("cce ls", &l, T_CCE, P_CCE, false, 0.740717726, 1.228088781, 0.984403253);
    l = resolve((loom_loss){.name = "cce", .label_smoothing = 0.1f, .from_logits = 1});
    check_rows("cce ls logits", &l, T_CCE, Z, false, 0.48234555, 1.227605964, 0.854975757);

    l = named("scce");
    float v[2];
    float L = loss_of(&l, Y_SPARSE, P_CCE, 2, 3, 1, NULL, false, v, NULL);
    CHECK_CLOSE(v[0], 0.693147181, 1e-6, 0);
    CHECK_CLOSE(v[1], 1.203972804, 1e-6, 0);
    CHECK_CLOSE(L, 0.948559992, 1e-6, 0);
    L = loss_of(&l, Y_SPARSE, Z, 2, 3, 1, NULL, true, v, NULL);
    CHECK_CLOSE(v[0], 0.349012217, 1e-6, 0);
    CHECK_CLOSE(v[1], 0.407605964, 1e-6, 0);
    CHECK_CLOSE(L, 0.378309091, 1e-6, 0);

    /* sparse labels give the one-hot numbers on every path */
    const float onehot[6] = {0, 1, 0, 0, 0, 1};
    loom_loss_impl cce = named("cce");
    CHECK_CLOSE(loss_of(&l, Y_SPARSE, P_CCE, 2, 3, 1, NULL, false, NULL, NULL),
                loss_of(&cce, onehot, P_CCE, 2, 3, 1, NULL, false, NULL, NULL), 1e-7, 1e-6);
}

/* The fused path uses the logits formula: no clipping once probabilities saturate. */
static void test_fused_saturation(void) {
    loom_loss_impl bce = named("bce"), cce = named("cce"), scce = named("scce");
    const float z = 50, t0 = 0;
    float g;
    CHECK_CLOSE(loss_of(&bce, &t0, &z, 1, 1, 1, NULL, true, NULL, &g), 50.0, 0, 1e-6);
    CHECK_CLOSE(g, 1.0, 0, 1e-6); /* sigmoid(50) - 0 */

    const float zc[2] = {1000, 0}, tc[2] = {0, 1}, y1 = 1;
    float gc[2];
    CHECK_CLOSE(loss_of(&cce, tc, zc, 1, 2, 1, NULL, true, NULL, gc), 1000.0, 0, 1e-6);
    CHECK_CLOSE(gc[0], 1.0, 1e-7, 0);
    CHECK_CLOSE(gc[1], -1.0, 1e-7, 0);
    CHECK_CLOSE(loss_of(&scce, &y1, zc, 1, 2, 1, NULL, true, NULL, gc), 1000.0, 0, 1e-6);

    /* closed form: dL/dz = (softmax(z) - t) * s / n */
    const float sw[2] = {2, 0.5f};
    float gz[12];
    loss_of(&cce, T_CCE, Z, 2, 3, 1, sw, true, NULL, gz);
    for (int r = 0; r < 2; r++) {
        double m = 0, e[3];
        for (int j = 0; j < 3; j++) m += (e[j] = exp(Z[r * 3 + j]));
        for (int j = 0; j < 3; j++)
            CHECK_CLOSE(gz[r * 3 + j], (e[j] / m - T_CCE[r * 3 + j]) * sw[r] / 2, 1e-7, 1e-6);
    }
    /* fused and from_logits are the same numbers */
    loom_loss_impl cl = resolve((loom_loss){.name = "cce", .from_logits = 1});
    float gl[12];
    CHECK_CLOSE(loss_of(&cl, T_CCE, Z, 2, 3, 1, sw, false, NULL, gl),
                loss_of(&cce, T_CCE, Z, 2, 3, 1, sw, true, NULL, gz), 0, 0);
    CHECK(memcmp(gl, gz, 6 * sizeof(float)) == 0);
}

/* Fused after a softmax, the loss reads that softmax's output instead of computing exponentials:
 * the same values and gradients as the logits form, saturated rows and label smoothing included. */
static void test_fused_with_softmax_output(void) {
    const float z[4 * 3] = {0.2f, -1.0f, 3.0f, 1000.0f, 0.0f, -3.0f, -80.0f, 30.0f, 29.5f, 2.0f, 2.0f, -1.0f};
    const float t[4 * 3] = {0, 0, 1, 0, 1, 0, 0.3f, 0.2f, 0.5f, 1, 0, 0}, y[4] = {2, 1, 0, 1};
    const float sw[4] = {1, 2, 0.5f, 1};
    float p[12];
    loom_act_forward(LOOM_SOFTMAX, z, p, 4, 3);
    const loom_loss cfgs[] = {{.name = "cce"}, {.name = "cce", .label_smoothing = 0.1f}, {.name = "scce"}};
    /* with sample weights, and without: then one-hot and probability rows take the flat gradient
     * pass (every row's targets sum to 1) */
    for (size_t c = 0; c < 2 * sizeof cfgs / sizeof cfgs[0]; c++) {
        loom_loss_impl l = resolve(cfgs[c / 2]);
        const float *target = l.kind == LOSS_SCCE ? y : t, *w = c % 2 ? sw : NULL;
        float v1[4], v2[4], g1[12], g2[12], L1, L2;
        loom_error err = {0};
        CHECK_STATUS(loom_loss_compute(&l, target, z, NULL, 4, 3, 1, w, true, v1, g1, &L1, &err), LOOM_OK);
        CHECK_STATUS(loom_loss_compute(&l, target, z, p, 4, 3, 1, w, true, v2, g2, &L2, &err), LOOM_OK);
        CHECK_CLOSE(L2, L1, 1e-7, 1e-6);
        for (int r = 0; r < 4; r++) CHECK_CLOSE(v2[r], v1[r], 1e-7, 1e-6);
        for (int i = 0; i < 12; i++) CHECK_CLOSE(g2[i], g1[i], 1e-7, 1e-6);
    }
}

/* ---------------------------------------------------------------- gradients */

static int cubic_loss(const float *t, const float *p, size_t n, int dim, float *values,
                      float *grad, void *user) {
    /* v = sum (p - t)^4 / 4 * k, dv/dp = k (p - t)^3 */
    float k = *(const float *)user;
    for (size_t r = 0; r < n; r++) {
        double v = 0;
        for (int j = 0; j < dim; j++) {
            double e = (double)p[r * dim + j] - t[r * dim + j];
            v += e * e * e * e / 4;
            if (grad) grad[r * dim + j] = (float)(k * e * e * e);
        }
        values[r] = (float)(k * v);
    }
    return 0;
}

static int failing_loss(const float *t, const float *p, size_t n, int dim, float *values,
                        float *grad, void *user) {
    (void)t, (void)p, (void)n, (void)dim, (void)values, (void)grad, (void)user;
    return 7;
}

static void test_gradients(void) {
    loom_loss_impl l;
    l = named("mse");
    grad_check_all("mse", &l, T_REG, P_REG, false);
    l = named("mae");
    grad_check_all("mae", &l, T_REG, P_REG, false);
    l = named("huber"); /* |e| both below and above 1 */
    grad_check_all("huber 1", &l, T_REG, P_REG, false);
    l = resolve((loom_loss){.name = "huber", .delta = 0.4f});
    grad_check_all("huber 0.4", &l, T_REG, P_REG, false);
    l = named("log_cosh");
    grad_check_all("log_cosh", &l, T_REG, P_REG, false);
    l = named("poisson");
    grad_check_all("poisson", &l, T_CNT, P_POS, false);
    l = named("kl_divergence");
    grad_check_all("kld", &l, T_DIST, P_DIST, false);
    l = named("cosine_similarity");
    grad_check_all("cosine", &l, T_REG, P_REG, false);
    l = named("hinge");
    grad_check_all("hinge 0/1", &l, T_H01, P_H, false);
    grad_check_all("hinge -1/1", &l, T_HPM, P_H, false);
    grad_check_all("hinge mixed", &l, T_HMIX, P_H, false);

    l = named("bce");
    grad_check_all("bce", &l, T_BIN, P_PROB, false);
    grad_check_all("bce fused", &l, T_BIN, Z, true);
    l = resolve((loom_loss){.name = "bce", .label_smoothing = 0.2f});
    grad_check_all("bce ls", &l, T_BIN, P_PROB, false);
    grad_check_all("bce ls fused", &l, T_BIN, Z, true);
    l = resolve((loom_loss){.name = "bce", .from_logits = 1, .label_smoothing = 0.1f});
    grad_check_all("bce logits", &l, T_BIN, Z, false);

    l = named("cce");
    grad_check_all("cce", &l, T_CCE, P_CCE, false);
    grad_check_all("cce fused", &l, T_CCE, Z, true);
    l = resolve((loom_loss){.name = "cce", .label_smoothing = 0.3f});
    grad_check_all("cce ls", &l, T_CCE, P_CCE, false);
    grad_check_all("cce ls fused", &l, T_CCE, Z, true);
    l = resolve((loom_loss){.name = "cce", .from_logits = 1});
    grad_check_all("cce logits", &l, T_CCE, Z, false);

    l = named("sparse_categorical_crossentropy");
    /* the sparse target is one float per row */
    grad_check("scce", &l, Y_SPARSE, P_CCE, 4, 3, 1, NULL, false);
    grad_check("scce", &l, Y_SPARSE, P_CCE, 4, 3, 2, (const float[]){0.5f, 2.0f}, false);
    grad_check("scce fused", &l, Y_SPARSE, Z, 4, 3, 1, (const float[]){1, 0, 3, 0.5f}, true);
    grad_check("scce fused", &l, Y_SPARSE, Z, 4, 3, 2, (const float[]){0.5f, 2.0f}, true);
    l = resolve((loom_loss){.name = "scce", .from_logits = 1});
    grad_check("scce logits", &l, Y_SPARSE, Z, 4, 3, 1, NULL, false);
    grad_check("scce logits", &l, Y_SPARSE, Z, 4, 3, 2, (const float[]){0.5f, 2.0f}, false);

    float k = 0.5f;
    l = resolve((loom_loss){.fn = cubic_loss, .user = &k});
    CHECK(l.kind == LOSS_CUSTOM);
    CHECK(strcmp(l.name, "custom") == 0);
    grad_check_all("custom", &l, T_REG, P_REG, false);
    /* loom applies weights and 1/n: row 0 of T_REG/P_REG gives 0.5*(.3^4+.6^4+1.5^4)/4 */
    const float sw1[1] = {3};
    CHECK_CLOSE(loss_of(&l, T_REG, P_REG, 1, 3, 1, sw1, false, NULL, NULL),
                3 * 0.5 * (0.0081 + 0.1296 + 5.0625) / 4, 1e-6, 1e-5);
}

/* CCE on probabilities: clipped entries give no gradient through q, but the renormalisation
 * still reaches every p. */
static void test_cce_clipped_gradient(void) {
    loom_loss_impl cce = named("cce");
    const float t[3] = {0.5f, 0.5f, 0}, p[3] = {0.5f, 0.5f, 1e-9f};
    float g[3];
    loss_of(&cce, t, p, 1, 3, 1, NULL, false, NULL, g);
    /* S = 1 + 1e-9, q = p/S; unclipped sum of t is 1: dv/dp_k = (-t_k/q_k + 1)/S */
    double S = 1.0 + 1e-9;
    CHECK_CLOSE(g[0], (-0.5 / (0.5 / S) + 1) / S, 1e-6, 1e-5);
    CHECK_CLOSE(g[2], 1 / S, 1e-6, 1e-5);
}

/* ---------------------------------------------------------------- resolve and errors */

static void test_resolve(void) {
    struct {
        const char *alias, *canonical;
        loom_loss_kind kind;
    } cases[] = {
        {"mse", "mean_squared_error", LOSS_MSE},
        {"mean_squared_error", "mean_squared_error", LOSS_MSE},
        {"mae", "mean_absolute_error", LOSS_MAE},
        {"bce", "binary_crossentropy", LOSS_BCE},
        {"cce", "categorical_crossentropy", LOSS_CCE},
        {"scce", "sparse_categorical_crossentropy", LOSS_SCCE},
        {"huber_loss", "huber", LOSS_HUBER},
        {"kld", "kl_divergence", LOSS_KLD},
        {"kullback_leibler_divergence", "kl_divergence", LOSS_KLD},
        {"cosine_similarity", "cosine_similarity", LOSS_COSINE},
        {"hinge", "hinge", LOSS_HINGE},
        {"logcosh", "log_cosh", LOSS_LOG_COSH},
        {"poisson", "poisson", LOSS_POISSON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loom_loss_impl l = named(cases[i].alias);
        CHECK(l.kind == cases[i].kind);
        CHECK(strcmp(l.name, cases[i].canonical) == 0);
        CHECK(loom_loss_known(cases[i].alias) == 1);
    }
    CHECK(loom_loss_known("nope") == 0);
    CHECK(loom_loss_known(NULL) == 0);

    loom_loss_impl l = resolve((loom_loss){0});
    CHECK(l.kind == LOSS_NONE);
    l = named("huber");
    CHECK(l.delta == 1.0f);
    l = resolve((loom_loss){.name = "my_loss", .fn = cubic_loss});
    CHECK(l.kind == LOSS_CUSTOM && strcmp(l.name, "my_loss") == 0);

    loom_loss_impl scce = named("scce"), cce = named("cce"), bce = named("bce"), mse = named("mse");
    CHECK(loom_loss_target_dim(&scce, 5) == 1);
    CHECK(loom_loss_target_dim(&cce, 5) == 5);
    CHECK(loom_loss_can_fuse(&cce, LOOM_SOFTMAX));
    CHECK(loom_loss_can_fuse(&scce, LOOM_SOFTMAX));
    CHECK(loom_loss_can_fuse(&bce, LOOM_SIGMOID));
    CHECK(!loom_loss_can_fuse(&bce, LOOM_SOFTMAX));
    CHECK(!loom_loss_can_fuse(&cce, LOOM_SIGMOID));
    CHECK(!loom_loss_can_fuse(&mse, LOOM_SIGMOID));
    loom_loss_impl cl = resolve((loom_loss){.name = "cce", .from_logits = 1});
    CHECK(!loom_loss_can_fuse(&cl, LOOM_SOFTMAX));

    /* no loss: nothing added, no gradient */
    loom_loss_impl none = resolve((loom_loss){0});
    float g[12];
    memset(g, 0xff, sizeof g);
    CHECK(loss_of(&none, T_REG, P_REG, 4, 3, 1, NULL, false, NULL, g) == 0.0f);
    CHECK(g[0] == 0.0f && g[11] == 0.0f);
}

static void test_errors(void) {
    loom_loss_impl l;
    loom_error err = {0};

    CHECK_STATUS(loom_loss_resolve(&(loom_loss){.name = "mean_sqared_error"}, &l, &err),
                 LOOM_ERR_NAME);
    CHECK(strstr(err.msg, "mean_sqared_error") != NULL);
    CHECK(strstr(err.msg, "mean_squared_error") != NULL);
    CHECK(strstr(err.msg, "sparse_categorical_crossentropy") != NULL);
    CHECK(strstr(err.msg, "poisson") != NULL);

    CHECK_STATUS(loom_loss_resolve(&(loom_loss){.name = "huber", .delta = -1}, &l, &err),
                 LOOM_ERR_ARGUMENT);
    CHECK(strstr(err.msg, "delta") != NULL);
    CHECK_STATUS(loom_loss_resolve(&(loom_loss){.name = "bce", .label_smoothing = 1.5f}, &l, &err),
                 LOOM_ERR_ARGUMENT);
    CHECK(strstr(err.msg, "label_smoothing") != NULL);
    CHECK_STATUS(loom_loss_resolve(&(loom_loss){.name = "cce", .label_smoothing = -0.1f}, &l, &err),
                 LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_loss_resolve(NULL, &l, &err), LOOM_ERR_ARGUMENT);

    /* SCCE labels: not an integer, negative, too large, NaN */
    loom_loss_impl scce = named("scce");
    float values[4], L, g[12];
    const float bad_labels[4][4] = {{1, 2, 1.5f, 0}, {1, 2, -1, 0}, {1, 2, 3, 0}, {1, 2, NAN, 0}};
    for (int i = 0; i < 4; i++) {
        CHECK_STATUS(loom_loss_compute(&scce, bad_labels[i], P_CCE, NULL, 4, 3, 1, NULL, false, values, g,
                                       &L, &err),
                     LOOM_ERR_DATA);
        CHECK(strstr(err.msg, "row 2") != NULL);
    }
    CHECK(strstr(err.msg, "nan") != NULL);
    loom_loss_compute(&scce, bad_labels[0], P_CCE, NULL, 4, 3, 1, NULL, false, values, g, &L, &err);
    CHECK(strstr(err.msg, "1.5") != NULL);

    /* a user loss that fails */
    loom_loss_impl bad = resolve((loom_loss){.name = "my_bad_loss", .fn = failing_loss});
    CHECK_STATUS(loom_loss_compute(&bad, T_REG, P_REG, NULL, 4, 3, 1, NULL, false, values, g, &L, &err),
                 LOOM_ERR_CALLBACK);
    CHECK(strstr(err.msg, "my_bad_loss") != NULL);

    /* fusing a loss that has no logits form */
    loom_loss_impl mse = named("mse");
    CHECK_STATUS(loom_loss_compute(&mse, T_REG, P_REG, NULL, 4, 3, 1, NULL, true, values, g, &L, &err),
                 LOOM_ERR_ARGUMENT);
}

int main(void) {
    test_spec_vectors();
    test_bce_table();
    test_values();
    test_fused_saturation();
    test_fused_with_softmax_output();
    test_gradients();
    test_cce_clipped_gradient();
    test_resolve();
    test_errors();
    return check_report("losses");
}
