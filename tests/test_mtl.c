/* test_mtl.c — the multi-task balancing core against every test vector of
 * multi-task-balancing.md sections 2-12, plus invariants on random problems. */
#include "check.h"
#include "mtl/mtl.h"

#include <math.h>
#include <string.h>

#define MAXK LOOM_MTL_MAX_TASKS

/* ---------------------------------------------------------------- helpers */

/* Gram matrix of K vectors of length P given in double (exact for the small spec vectors). */
static void gram_d(int K, int P, const double *G, double *M) {
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double s = 0;
            for (int p = 0; p < P; p++) s += G[i * P + p] * G[j * P + p];
            M[i * K + j] = s;
        }
}

/* d = sum_j c_j g_j in double */
static void combine_d(int K, int P, const double *G, const double *c, double *d) {
    for (int p = 0; p < P; p++) {
        d[p] = 0;
        for (int j = 0; j < K; j++) d[p] += c[j] * G[j * P + p];
    }
}

static double dot(int n, const double *a, const double *b) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* random float-representable gradients, so float and double paths see the same numbers */
static void random_vectors(uint64_t key, int K, int P, double *G, float *Gf) {
    for (int i = 0; i < K * P; i++) {
        float v = loom_normal(key, (uint64_t)i);
        if (Gf) Gf[i] = v;
        G[i] = v;
    }
}

/* ---------------------------------------------------------------- section 2: static weights */

static void test_static(void) {
    double L[2] = {2, 3}, w[2] = {1, 0.2};
    CHECK_CLOSE(loom_mtl_weighted_sum(2, w, L), 2.6, 1e-12, 0);
    /* scalar theta = 1: L1 = theta^2 -> g1 = 2, L2 = 3 theta -> g2 = 3 */
    float G[2] = {2, 3}, out[1];
    CHECK_STATUS(loom_mtl_combine(2, 1, G, w, out, NULL), LOOM_OK);
    CHECK_CLOSE(out[0], 2.6, 1e-6, 0);
}

/* ---------------------------------------------------------------- shared helpers */

static void test_gram_combine(void) {
    float G[3 * 4] = {1, 2, 3, 4, -1, 0, 2, 0.5f, 0, 0, 0, 0};
    double M[9];
    CHECK_STATUS(loom_mtl_gram(3, 4, G, M, NULL), LOOM_OK);
    CHECK_CLOSE(M[0], 30, 1e-12, 0);
    CHECK_CLOSE(M[1], 1 * -1 + 3 * 2 + 4 * 0.5, 1e-12, 0);
    CHECK_CLOSE(M[3], M[1], 0, 0);
    CHECK_CLOSE(M[4], 1 + 4 + 0.25, 1e-12, 0);
    CHECK_CLOSE(M[8], 0, 0, 0);
    double c[3] = {2, -1, 5};
    float out[4];
    CHECK_STATUS(loom_mtl_combine(3, 4, G, c, out, NULL), LOOM_OK);
    CHECK_CLOSE(out[0], 3, 1e-6, 0);
    CHECK_CLOSE(out[3], 7.5, 1e-6, 0);
    loom_error e = {0};
    CHECK_STATUS(loom_mtl_gram(0, 4, G, M, &e), LOOM_ERR_ARGUMENT);
    CHECK(strstr(e.msg, "tasks") != NULL);
    CHECK_STATUS(loom_mtl_gram(MAXK + 1, 4, G, M, NULL), LOOM_ERR_ARGUMENT);
    double bad[4] = {1, 0, 0, -1};
    CHECK_STATUS(loom_mtl_check_gram(2, bad, "test", &e), LOOM_ERR_DATA);
    CHECK(strstr(e.msg, "diagonal 1") != NULL);
    double nan_m[4] = {1, NAN, NAN, 1};
    CHECK_STATUS(loom_mtl_check_gram(2, nan_m, "test", NULL), LOOM_ERR_DATA);

    double z[2] = {0, 0}, sm[2];
    CHECK_STATUS(loom_mtl_softmax(2, z, 2, sm, NULL), LOOM_OK); /* LibMTL GradNorm logits (0, 0) */
    CHECK_CLOSE(sm[0], 1, 1e-15, 0);
    CHECK_CLOSE(sm[1], 1, 1e-15, 0);
    double big[2] = {1000, 0};
    CHECK_STATUS(loom_mtl_softmax(2, big, 1, sm, NULL), LOOM_OK);
    CHECK(sm[0] == 1 && sm[1] >= 0 && !isnan(sm[1]));
}

/* ---------------------------------------------------------------- section 3: schedules */

static void test_schedules(void) {
    loom_mtl_schedule s = loom_mtl_schedule_linear(0, 1, 10, 20);
    CHECK_STATUS(loom_mtl_schedule_check(&s, NULL), LOOM_OK);
    double tl[5] = {0, 10, 15, 20, 100}, wl[5] = {0, 0, 0.5, 1, 1};
    for (int i = 0; i < 5; i++) CHECK_CLOSE(loom_mtl_schedule_value(&s, tl[i]), wl[i], 1e-15, 0);

    s = loom_mtl_schedule_cosine(1, 0, 0, 10);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 0), 1, 1e-15, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 5), 0.5, 1e-15, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 10), 0, 1e-15, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 50), 0, 1e-15, 0);

    s = loom_mtl_schedule_rampup(1, 5);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 0), 0.006737947, 1e-9, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 2.5), 0.286504797, 1e-9, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 5), 1, 1e-15, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 9), 1, 1e-15, 0);
    s = loom_mtl_schedule_rampup(1, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 0), 1, 0, 0);

    double b[2] = {10, 20}, v[3] = {1, 0.5, 0.1};
    CHECK_STATUS(loom_mtl_schedule_piecewise(2, b, v, &s, NULL), LOOM_OK);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 0), 1, 0, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 10), 1, 0, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 11), 0.5, 0, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 20), 0.5, 0, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 21), 0.1, 0, 0);
    /* stateless: a copy (a resumed run) gives the same w(t) */
    loom_mtl_schedule resumed = s;
    CHECK(loom_mtl_schedule_value(&resumed, 15) == loom_mtl_schedule_value(&s, 15));
    double bad_b[2] = {20, 10};
    loom_error e = {0};
    CHECK_STATUS(loom_mtl_schedule_piecewise(2, bad_b, v, &s, &e), LOOM_ERR_ARGUMENT);
    CHECK(strstr(e.msg, "piecewise") != NULL);
    CHECK_STATUS(loom_mtl_schedule_piecewise(0, b, v, &s, NULL), LOOM_ERR_COUNT);

    s = loom_mtl_schedule_exponential(2, 0.5, 10, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 15), 2 * pow(0.5, 1.5), 1e-15, 0);
    s = loom_mtl_schedule_exponential(2, 0.5, 10, 1);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 15), 1, 1e-15, 0);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 20), 0.5, 1e-15, 0);
    s = loom_mtl_schedule_exponential(2, 0.5, 0, 1);
    CHECK_STATUS(loom_mtl_schedule_check(&s, NULL), LOOM_ERR_ARGUMENT);

    s = loom_mtl_schedule_constant(0.3);
    CHECK_CLOSE(loom_mtl_schedule_value(&s, 1e6), 0.3, 0, 0);
    s.kind = (loom_mtl_schedule_kind)42;
    CHECK_STATUS(loom_mtl_schedule_check(&s, NULL), LOOM_ERR_ARGUMENT);
}

/* ---------------------------------------------------------------- section 4: UW */

/* gradient descent on s alone, L fixed */
static double uw_descend(double L, loom_mtl_uw_kind kind, double *total) {
    double s = 0, ds;
    for (int it = 0; it < 2000; it++) {
        loom_mtl_uw(1, &L, &s, &kind, total, &ds, NULL, NULL);
        s -= 0.1 * ds;
    }
    loom_mtl_uw(1, &L, &s, &kind, total, NULL, NULL, NULL);
    return s;
}

static void test_uw(void) {
    double L[2] = {4, 0.25}, s[2] = {0, 0}, total, ds[2], w[2];
    CHECK_STATUS(loom_mtl_uw(2, L, s, NULL, &total, ds, w, NULL), LOOM_OK);
    CHECK_CLOSE(total, 2.125, 1e-15, 0);
    CHECK_CLOSE(ds[0], -1.5, 1e-15, 0);
    CHECK_CLOSE(ds[1], 0.375, 1e-15, 0);
    CHECK_CLOSE(w[0], 0.5, 1e-15, 0); /* d total / d L_i */
    CHECK_CLOSE(w[1], 0.5, 1e-15, 0);

    double L4 = 4, sm = -0.5;
    CHECK_STATUS(loom_mtl_uw(1, &L4, &sm, NULL, &total, ds, w, NULL), LOOM_OK);
    CHECK_CLOSE(w[0], 0.824360635, 1e-9, 0);
    CHECK_CLOSE(ds[0], -2.797442541, 1e-9, 0);

    /* central difference of total in s and L */
    double h = 1e-6, Lp = 4, sp = 0.3, tp, tm, g[1], wl[1];
    loom_mtl_uw_kind cls = LOOM_MTL_UW_CLASSIFICATION;
    loom_mtl_uw(1, &Lp, &sp, &cls, &total, g, wl, NULL);
    double a = sp + h, b = sp - h;
    loom_mtl_uw(1, &Lp, &a, &cls, &tp, NULL, NULL, NULL);
    loom_mtl_uw(1, &Lp, &b, &cls, &tm, NULL, NULL, NULL);
    CHECK_CLOSE(g[0], (tp - tm) / (2 * h), 1e-7, 0);
    double La = Lp + h, Lb = Lp - h;
    loom_mtl_uw(1, &La, &sp, &cls, &tp, NULL, NULL, NULL);
    loom_mtl_uw(1, &Lb, &sp, &cls, &tm, NULL, NULL, NULL);
    CHECK_CLOSE(wl[0], (tp - tm) / (2 * h), 1e-7, 0);

    double s_opt = uw_descend(4, LOOM_MTL_UW_REGRESSION, &total);
    CHECK_CLOSE(s_opt, 1.386294361, 1e-8, 0);
    CHECK_CLOSE(total, 1.193147181, 1e-8, 0);
    s_opt = uw_descend(0.25, LOOM_MTL_UW_REGRESSION, &total);
    CHECK_CLOSE(s_opt, -1.386294361, 1e-8, 0);
    CHECK_CLOSE(total, -0.193147181, 1e-8, 0); /* a negative total is correct */
    s_opt = uw_descend(4, LOOM_MTL_UW_CLASSIFICATION, &total);
    CHECK_CLOSE(s_opt, 2.079441542, 1e-8, 0);

    loom_mtl_uw_kind badk = (loom_mtl_uw_kind)7;
    CHECK_STATUS(loom_mtl_uw(1, &L4, &sm, &badk, &total, NULL, NULL, NULL), LOOM_ERR_ARGUMENT);
}

/* ---------------------------------------------------------------- section 5: GradNorm */

static void test_gradnorm(void) {
    loom_mtl_gradnorm_info info;
    double w[2] = {1, 1}, n[2] = {1, 3}, L0[2] = {1, 1}, L[2] = {0.5, 1}, wn[2];
    CHECK_STATUS(loom_mtl_gradnorm_step(2, w, n, L0, L, 1.5, 0.1, 1e-8, wn, &info, NULL), LOOM_OK);
    CHECK_CLOSE(info.r[0], 2.0 / 3, 1e-12, 0);
    CHECK_CLOSE(info.r[1], 4.0 / 3, 1e-12, 0);
    CHECK_CLOSE(info.target[0], 1.088662108, 1e-9, 0);
    CHECK_CLOSE(info.target[1], 3.079201436, 1e-9, 0);
    CHECK_CLOSE(info.L_grad, 0.167863544, 1e-9, 0);
    CHECK_CLOSE(info.dw[0], -1, 0, 0);
    CHECK_CLOSE(info.dw[1], -3, 0, 0);
    CHECK_CLOSE(info.w_raw[0], 1.1, 1e-12, 0);
    CHECK_CLOSE(info.w_raw[1], 1.3, 1e-12, 0);
    CHECK_CLOSE(wn[0], 0.916666667, 1e-9, 0);
    CHECK_CLOSE(wn[1], 1.083333333, 1e-9, 0);

    double w3[3] = {1, 1, 1}, n3[3] = {2, 1, 0.5}, L03[3] = {2, 1, 4}, L3[3] = {1, 0.9, 2};
    CHECK_STATUS(loom_mtl_gradnorm_step(3, w3, n3, L03, L3, 0.12, 0.05, 1e-8, w3, &info, NULL),
                 LOOM_OK); /* in place */
    CHECK_CLOSE(info.r[0], 0.789473684, 1e-9, 0);
    CHECK_CLOSE(info.r[1], 1.421052632, 1e-9, 0);
    CHECK_CLOSE(info.r[2], 0.789473684, 1e-9, 0);
    CHECK_CLOSE(info.target[0], 1.134037220, 1e-9, 0);
    CHECK_CLOSE(info.target[1], 1.216914341, 1e-9, 0);
    CHECK_CLOSE(info.target[2], 1.134037220, 1e-9, 0);
    CHECK_CLOSE(info.L_grad, 1.716914341, 1e-9, 0);
    CHECK_CLOSE(info.dw[0], 2, 0, 0);
    CHECK_CLOSE(info.dw[1], -1, 0, 0);
    CHECK_CLOSE(info.dw[2], -0.5, 0, 0);
    CHECK_CLOSE(w3[0], 0.907563025, 1e-9, 0);
    CHECK_CLOSE(w3[1], 1.058823529, 1e-9, 0);
    CHECK_CLOSE(w3[2], 1.033613445, 1e-9, 0);

    /* alpha = 0, equal norms and weights: nothing to equalise */
    double we[3] = {1, 1, 1}, ne[3] = {0.7, 0.7, 0.7};
    CHECK_STATUS(loom_mtl_gradnorm_step(3, we, ne, L03, L3, 0, 0.1, 1e-8, we, NULL, NULL), LOOM_OK);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(we[i], 1, 1e-12, 0);

    /* sum w = K after every step of a long random run, with a large lr that hits the clamp */
    double wr[5] = {1, 1, 1, 1, 1}, L0r[5] = {1, 2, 3, 0.5, 1};
    int sums_ok = 1, positive = 1;
    for (int step = 0; step < 200; step++) {
        double nr[5], Lr[5];
        for (int i = 0; i < 5; i++) {
            nr[i] = fabs(loom_normal(11, (uint64_t)(step * 10 + i))) * 3;
            Lr[i] = L0r[i] * (0.2 + loom_uniform01(12, (uint64_t)(step * 10 + i)));
        }
        if (loom_mtl_gradnorm_step(5, wr, nr, L0r, Lr, 1.5, step % 2 ? 0.05 : 1.0, 1e-3, wr, NULL,
                                   NULL) != LOOM_OK)
            sums_ok = 0;
        double sum = 0;
        for (int i = 0; i < 5; i++) {
            sum += wr[i];
            positive &= wr[i] > 0;
        }
        if (fabs(sum - 5) > 1e-12) sums_ok = 0;
    }
    CHECK(sums_ok);
    CHECK(positive);

    double zero_L0[2] = {0, 1};
    loom_error e = {0};
    CHECK_STATUS(loom_mtl_gradnorm_step(2, w, n, zero_L0, L, 1.5, 0.1, 1e-8, wn, NULL, &e),
                 LOOM_ERR_DATA);
    CHECK(strstr(e.msg, "task 0") != NULL);
}

/* ---------------------------------------------------------------- section 6: DWA */

static void test_dwa(void) {
    double lam[3];
    double p2[2] = {1, 1}, p1[2] = {0.5, 1};
    CHECK_STATUS(loom_mtl_dwa(2, 2, p1, p2, 2.0, lam, NULL), LOOM_OK);
    CHECK_CLOSE(lam[0], 0.875646998, 1e-9, 0);
    CHECK_CLOSE(lam[1], 1.124353002, 1e-9, 0);
    double q2[3] = {1, 1, 1}, q1[3] = {0.8, 0.9, 1.2};
    CHECK_STATUS(loom_mtl_dwa(3, 7, q1, q2, 2.0, lam, NULL), LOOM_OK);
    CHECK_CLOSE(lam[0], 0.916681629, 1e-9, 0);
    CHECK_CLOSE(lam[1], 0.963680901, 1e-9, 0);
    CHECK_CLOSE(lam[2], 1.119637470, 1e-9, 0);
    CHECK_CLOSE(lam[0] + lam[1] + lam[2], 3, 1e-12, 0);
    double e2[3] = {2, 4, 6}, e1[3] = {1, 2, 3};
    CHECK_STATUS(loom_mtl_dwa(3, 5, e1, e2, 2.0, lam, NULL), LOOM_OK);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(lam[i], 1, 1e-12, 0);
    CHECK_STATUS(loom_mtl_dwa(3, 5, q1, q2, INFINITY, lam, NULL), LOOM_OK);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(lam[i], 1, 1e-12, 0);
    CHECK_STATUS(loom_mtl_dwa(3, 5, q1, q2, 1e9, lam, NULL), LOOM_OK);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(lam[i], 1, 1e-8, 0);
    for (int epoch = 0; epoch < 2; epoch++) {
        CHECK_STATUS(loom_mtl_dwa(3, epoch, NULL, NULL, 2.0, lam, NULL), LOOM_OK);
        for (int i = 0; i < 3; i++) CHECK_CLOSE(lam[i], 1, 0, 0);
    }
    double bad[3] = {1, 0, 1};
    CHECK_STATUS(loom_mtl_dwa(3, 5, q1, bad, 2.0, lam, NULL), LOOM_ERR_DATA);
    CHECK_STATUS(loom_mtl_dwa(3, 5, q1, q2, 0, lam, NULL), LOOM_ERR_ARGUMENT);
}

/* ---------------------------------------------------------------- section 7: RLW */

static void test_rlw(void) {
    double z[2] = {0, log(3.0)}, lam[MAXK];
    CHECK_STATUS(loom_mtl_softmax(2, z, 1, lam, NULL), LOOM_OK);
    CHECK_CLOSE(lam[0], 0.25, 1e-15, 0);
    CHECK_CLOSE(lam[1], 0.75, 1e-15, 0);

    enum { K = 4, N = 100000 };
    double mean[K] = {0};
    int ok = 1;
    for (int step = 0; step < N; step++) {
        ok &= loom_mtl_rlw(K, 1234, (uint64_t)step, 1.0, lam, NULL) == LOOM_OK;
        double sum = 0;
        for (int i = 0; i < K; i++) {
            ok &= lam[i] > 0;
            sum += lam[i];
            mean[i] += lam[i] / N;
        }
        ok &= fabs(sum - 1) < 1e-12;
        if (!ok) break;
    }
    CHECK(ok);
    for (int i = 0; i < K; i++) CHECK_CLOSE(mean[i], 1.0 / K, 0.005, 0);

    double a[K], b[K], c[K];
    loom_mtl_rlw_draw(K, 99, 17, a);
    loom_mtl_rlw_draw(K, 99, 17, b);
    loom_mtl_rlw_draw(K, 100, 17, c);
    int same = 1, differ = 0;
    for (int i = 0; i < K; i++) {
        same &= a[i] == b[i];
        differ |= a[i] != c[i];
    }
    CHECK(same);
    CHECK(differ);
    CHECK_STATUS(loom_mtl_rlw(K, 99, 17, K, lam, NULL), LOOM_OK); /* sum_to K */
    CHECK_CLOSE(lam[0] + lam[1] + lam[2] + lam[3], K, 1e-12, 0);
}

/* ---------------------------------------------------------------- section 8: PCGrad */

/* the algorithm as written, on vectors; projections use the original g_j */
static void pcgrad_vectors(int K, int P, const double *G, const int *perm, double *sum) {
    for (int p = 0; p < P; p++) sum[p] = 0;
    for (int i = 0; i < K; i++) {
        double g[64];
        memcpy(g, G + i * P, sizeof(double) * (size_t)P);
        for (int m = 0; m < K - 1; m++) {
            const double *gj = G + perm[i * (K - 1) + m] * P;
            double d = dot(P, g, gj);
            if (d < 0) {
                double f = d / (dot(P, gj, gj) + 1e-8);
                for (int p = 0; p < P; p++) g[p] -= f * gj[p];
            }
        }
        for (int p = 0; p < P; p++) sum[p] += g[p];
    }
}

static void test_pcgrad(void) {
    double G[6] = {1, 0, -1, 1}, M[9], C[9], c[3], d[2];
    gram_d(2, 2, G, M);
    CHECK_STATUS(loom_mtl_pcgrad(2, M, NULL, LOOM_MTL_REDUCE_SUM, C, c, NULL), LOOM_OK);
    double g1[2], g2[2];
    combine_d(2, 2, G, C, g1);
    combine_d(2, 2, G, C + 2, g2);
    CHECK_CLOSE(g1[0], 0.5, 1e-7, 0);
    CHECK_CLOSE(g1[1], 0.5, 1e-7, 0);
    CHECK_CLOSE(g2[0], 0, 1e-7, 0);
    CHECK_CLOSE(g2[1], 1, 1e-7, 0);
    combine_d(2, 2, G, c, d);
    CHECK_CLOSE(d[0], 0.5, 1e-7, 0); /* not (-0.5, 1.5): g2 is projected on the original g1 */
    CHECK_CLOSE(d[1], 1.5, 1e-7, 0);
    CHECK_CLOSE(c[0], 2, 1e-7, 0);
    CHECK_CLOSE(c[1], 1.5, 1e-7, 0);
    CHECK_STATUS(loom_mtl_pcgrad(2, M, NULL, LOOM_MTL_REDUCE_MEAN, NULL, c, NULL), LOOM_OK);
    combine_d(2, 2, G, c, d);
    CHECK_CLOSE(d[0], 0.25, 1e-7, 0);
    CHECK_CLOSE(d[1], 0.75, 1e-7, 0);

    double H[4] = {1, 0, 1, 1};
    gram_d(2, 2, H, M);
    CHECK_STATUS(loom_mtl_pcgrad(2, M, NULL, LOOM_MTL_REDUCE_SUM, NULL, c, NULL), LOOM_OK);
    CHECK_CLOSE(c[0], 1, 0, 0);
    CHECK_CLOSE(c[1], 1, 0, 0);
    combine_d(2, 2, H, c, d);
    CHECK_CLOSE(d[0], 2, 0, 0);
    CHECK_CLOSE(d[1], 1, 0, 0);

    /* K = 3, all pairs conflict: the orders matter, so they are injected */
    double T[6] = {1, 0, -1, 1, -0.5, -1};
    gram_d(3, 2, T, M);
    int pa[6] = {1, 2, 0, 2, 0, 1}, pb[6] = {2, 1, 2, 0, 1, 0};
    CHECK_STATUS(loom_mtl_pcgrad(3, M, pa, LOOM_MTL_REDUCE_SUM, NULL, c, NULL), LOOM_OK);
    combine_d(3, 2, T, c, d);
    CHECK_CLOSE(d[0], -0.7, 1e-7, 0);
    CHECK_CLOSE(d[1], -0.4, 1e-7, 0);
    CHECK_CLOSE(c[0], 2.5, 1e-7, 0);
    CHECK_CLOSE(c[1], 2, 1e-7, 0);
    CHECK_CLOSE(c[2], 2.4, 1e-7, 0);
    CHECK_STATUS(loom_mtl_pcgrad(3, M, NULL, LOOM_MTL_REDUCE_SUM, NULL, c, NULL), LOOM_OK);
    CHECK_CLOSE(c[0], 2.5, 1e-7, 0); /* NULL = ascending = pa */
    CHECK_STATUS(loom_mtl_pcgrad(3, M, pb, LOOM_MTL_REDUCE_SUM, NULL, c, NULL), LOOM_OK);
    combine_d(3, 2, T, c, d);
    CHECK_CLOSE(d[0], 0.2, 1e-7, 0);
    CHECK_CLOSE(d[1], 0.05, 1e-7, 0);
    CHECK_CLOSE(c[0], 2.95, 1e-7, 0);
    CHECK_CLOSE(c[1], 1.85, 1e-7, 0);
    CHECK_CLOSE(c[2], 1.8, 1e-7, 0);
    /* all 8 order combinations give different updates */
    double seen[8][2];
    int distinct = 1;
    for (int mask = 0; mask < 8; mask++) {
        int p[6];
        for (int i = 0; i < 3; i++) {
            int o0 = (i + 1) % 3, o1 = (i + 2) % 3, lo = o0 < o1 ? o0 : o1, hi = o0 < o1 ? o1 : o0;
            p[2 * i] = (mask >> i) & 1 ? hi : lo;
            p[2 * i + 1] = (mask >> i) & 1 ? lo : hi;
        }
        loom_mtl_pcgrad(3, M, p, LOOM_MTL_REDUCE_SUM, NULL, c, NULL);
        combine_d(3, 2, T, c, seen[mask]);
        for (int q = 0; q < mask; q++)
            if (fabs(seen[q][0] - seen[mask][0]) + fabs(seen[q][1] - seen[mask][1]) < 1e-9) distinct = 0;
    }
    CHECK(distinct);

    loom_error e = {0};
    int badp[6] = {1, 1, 0, 2, 0, 1};
    CHECK_STATUS(loom_mtl_pcgrad(3, M, badp, LOOM_MTL_REDUCE_SUM, NULL, c, &e), LOOM_ERR_ARGUMENT);
    CHECK(strstr(e.msg, "task 0") != NULL);

    /* K = 2 post-condition on random pairs: g_i^PC . g_j >= 0, ~0 for a conflicting pair */
    int post_ok = 1, conflicts = 0;
    for (int trial = 0; trial < 200; trial++) {
        double R[10];
        random_vectors(1000 + trial, 2, 5, R, NULL);
        gram_d(2, 5, R, M);
        loom_mtl_pcgrad(2, M, NULL, LOOM_MTL_REDUCE_SUM, C, c, NULL);
        for (int i = 0; i < 2; i++) {
            int j = 1 - i;
            double gi[5];
            combine_d(2, 5, R, C + 2 * i, gi);
            double pd = dot(5, gi, R + j * 5);
            double scale = sqrt(M[0] * M[3]);
            /* the 1e-8 in the denominator leaves g_i^PC . g_j = d 1e-8/(|g_j|^2 + 1e-8) < 0 */
            if (pd < -1e-7 * scale) post_ok = 0;
            if (M[1] < 0) {
                conflicts++;
                if (fabs(pd) > 1e-7 * scale) post_ok = 0;
            }
        }
    }
    CHECK(post_ok);
    CHECK(conflicts > 0);

    /* coefficient form = vector form to 1e-12 on random data, random orders */
    int same = 1;
    for (int trial = 0; trial < 100; trial++) {
        int K = 2 + trial % 7, P = 6;
        double R[8 * 6], Mr[64], cr[8], dv[6], dc[6];
        float Rf[8 * 6];
        random_vectors(5000 + trial, K, P, R, Rf);
        loom_mtl_gram(K, (size_t)P, Rf, Mr, NULL);
        int perm[8 * 7];
        loom_mtl_pcgrad_permutations(K, 77, (uint64_t)trial, perm);
        CHECK_STATUS(loom_mtl_pcgrad_random(K, Mr, 77, (uint64_t)trial, LOOM_MTL_REDUCE_SUM, NULL, cr,
                                            NULL), LOOM_OK);
        pcgrad_vectors(K, P, R, perm, dv);
        combine_d(K, P, R, cr, dc);
        for (int p = 0; p < P; p++)
            if (fabs(dv[p] - dc[p]) > 1e-12 * (1 + fabs(dv[p]))) same = 0;
    }
    CHECK(same);

    /* drawn orders: valid permutations, reproducible, and not all the same */
    int p1[16 * 15], p2[16 * 15], valid = 1, varied = 0;
    loom_mtl_pcgrad_permutations(16, 5, 3, p1);
    loom_mtl_pcgrad_permutations(16, 5, 3, p2);
    CHECK(memcmp(p1, p2, sizeof p1) == 0);
    for (int i = 0; i < 16; i++) {
        int seen_j[16] = {0};
        for (int m = 0; m < 15; m++) {
            int j = p1[i * 15 + m];
            if (j < 0 || j >= 16 || j == i || seen_j[j]) valid = 0;
            else seen_j[j] = 1;
        }
    }
    loom_mtl_pcgrad_permutations(16, 5, 4, p2);
    varied = memcmp(p1, p2, sizeof p1) != 0;
    CHECK(valid);
    CHECK(varied);
}

/* ---------------------------------------------------------------- section 9: MGDA */

static void mgda_case(int K, int P, const double *G, const double *want_alpha, double want_d2,
                      double atol) {
    double M[MAXK * MAXK], a[MAXK];
    gram_d(K, P, G, M);
    for (int s = 0; s < 2; s++) {
        loom_mtl_mgda_info info;
        CHECK_STATUS(loom_mtl_mgda(K, M, (loom_mtl_mgda_solver)s, 0, 0, a, &info, NULL), LOOM_OK);
        for (int i = 0; i < K; i++) CHECK_CLOSE(a[i], want_alpha[i], atol, 0);
        CHECK_CLOSE(info.d2, want_d2, 1e-6, 0);
    }
}

/* KKT of min a^T M a on the simplex: (M a)_i >= a^T M a, equality where a_i > 0 */
static int mgda_kkt(int K, const double *M, const double *a, double tol) {
    double sum = 0, Ma[MAXK], q = 0;
    for (int i = 0; i < K; i++) {
        if (a[i] < 0) return 0;
        sum += a[i];
        Ma[i] = 0;
        for (int j = 0; j < K; j++) Ma[i] += M[i * K + j] * a[j];
    }
    for (int i = 0; i < K; i++) q += a[i] * Ma[i];
    if (fabs(sum - 1) > 1e-12) return 0;
    for (int i = 0; i < K; i++) {
        if (Ma[i] < q - tol) return 0;
        if (a[i] > 1e-9 && Ma[i] > q + tol) return 0;
    }
    return 1;
}

static void test_mgda(void) {
    double cost;
    /* two vectors, paper convention: exactly 1 / 0 */
    CHECK_CLOSE(loom_mtl_mgda_pair(1, 3, 10, &cost), 1, 0, 0);
    CHECK_CLOSE(cost, 1, 0, 0);
    CHECK_CLOSE(loom_mtl_mgda_pair(10, 3, 1, &cost), 0, 0, 0);
    CHECK_CLOSE(cost, 1, 0, 0);

    double A[4] = {1, 0, 0, 1}, wa[2] = {0.5, 0.5};
    mgda_case(2, 2, A, wa, 0.5, 1e-12);
    double B[4] = {2, 0, 0, 1}, wb[2] = {0.2, 0.8};
    mgda_case(2, 2, B, wb, 0.8, 1e-12);
    {
        double M[4], a[2], d[2];
        gram_d(2, 2, B, M);
        loom_mtl_mgda(2, M, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL);
        combine_d(2, 2, B, a, d);
        CHECK_CLOSE(d[0], 0.4, 1e-12, 0);
        CHECK_CLOSE(d[1], 0.8, 1e-12, 0);
        CHECK_CLOSE(dot(2, B, d), 0.8, 1e-12, 0);
        CHECK_CLOSE(dot(2, B + 2, d), 0.8, 1e-12, 0);
    }
    double Cv[4] = {1, 0, -1, 1}, wc[2] = {0.6, 0.4};
    mgda_case(2, 2, Cv, wc, 0.2, 1e-12);
    double D[4] = {1, 0, 3, 1}, wd[2] = {1, 0}; /* dominated: gamma = 1 exactly */
    mgda_case(2, 2, D, wd, 1, 0);

    double E[9] = {1, 0, 0, 0, 2, 0, 0, 0, 3};
    double we[3] = {0.734693878, 0.183673469, 0.081632653};
    mgda_case(3, 3, E, we, 0.734693878, 1e-4);
    double F[6] = {1, 0, 0, 1, 1, 1}, wf[3] = {0.5, 0.5, 0};
    mgda_case(3, 2, F, wf, 0.5, 1e-4);
    {
        double M[9], a[3];
        gram_d(3, 2, F, M);
        loom_mtl_mgda(3, M, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL);
        CHECK(a[0] == 0.5 && a[1] == 0.5 && a[2] == 0); /* exact from the best-pair start */
    }
    double Gz[6] = {1, 0, 0, 1, -1, -1}, wg[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    mgda_case(3, 2, Gz, wg, 0, 1e-4);
    double Hz[6] = {1, 0, -1, 1, -0.5, -1}, wh[3] = {3.0 / 7, 2.0 / 7, 2.0 / 7};
    mgda_case(3, 2, Hz, wh, 0, 1e-4);

    /* MGDA-UB: per-sample Gram vs LibMTL's batch-summed rep_grad mode */
    float U[8] = {1, 0, 0, 1, /* u1 */ 0, 1, 1, 0 /* u2 */};
    double M[4], a[2];
    CHECK_STATUS(loom_mtl_mgda_ub_gram(2, 2, 2, U, 1, M, NULL), LOOM_OK);
    CHECK(M[0] == 2 && M[1] == 0 && M[2] == 0 && M[3] == 2);
    loom_mtl_mgda(2, M, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL);
    CHECK_CLOSE(a[0], 0.5, 1e-12, 0);
    CHECK_CLOSE(a[1], 0.5, 1e-12, 0);
    CHECK_STATUS(loom_mtl_mgda_ub_gram(2, 2, 2, U, 0, M, NULL), LOOM_OK);
    CHECK(M[0] == 2 && M[1] == 2 && M[3] == 2);
    loom_mtl_mgda(2, M, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL);
    CHECK(a[0] == 1 && a[1] == 0);

    /* normalisations */
    double Mb[4], Mn[4], n[2], L[2] = {2, 4};
    gram_d(2, 2, B, Mb);
    CHECK_STATUS(loom_mtl_mgda_normalize(2, Mb, NULL, LOOM_MTL_MGDA_NORM_L2, Mn, n, NULL), LOOM_OK);
    CHECK_CLOSE(n[0], 2, 1e-15, 0);
    loom_mtl_mgda(2, Mn, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL);
    CHECK_CLOSE(a[0], 0.5, 1e-12, 0); /* unit vectors: the plain average direction */
    CHECK_STATUS(loom_mtl_mgda_normalize(2, Mb, L, LOOM_MTL_MGDA_NORM_LOSS, Mn, n, NULL), LOOM_OK);
    CHECK_CLOSE(Mn[0], 1, 1e-15, 0);
    CHECK_CLOSE(Mn[3], 1.0 / 16, 1e-15, 0);
    CHECK_STATUS(loom_mtl_mgda_normalize(2, Mb, L, LOOM_MTL_MGDA_NORM_LOSS_PLUS, Mn, n, NULL), LOOM_OK);
    CHECK_CLOSE(n[0], 4, 1e-15, 0);
    CHECK_CLOSE(n[1], 4, 1e-15, 0);
    CHECK_CLOSE(Mn[0], 0.25, 1e-15, 0);
    CHECK_STATUS(loom_mtl_mgda_normalize(2, Mb, NULL, LOOM_MTL_MGDA_NORM_NONE, Mn, n, NULL), LOOM_OK);
    CHECK(memcmp(Mn, Mb, sizeof Mn) == 0);
    double Lz[2] = {0, 1};
    loom_error e = {0};
    CHECK_STATUS(loom_mtl_mgda_normalize(2, Mb, Lz, LOOM_MTL_MGDA_NORM_LOSS, Mn, n, &e), LOOM_ERR_DATA);
    CHECK(strstr(e.msg, "task 0") != NULL);

    /* KKT and the simplex on random 3-8 task problems, both solvers; also more tasks than
     * dimensions, where d is often 0 */
    int kkt_ok = 1, polished = 0, total = 0;
    for (int trial = 0; trial < 300; trial++) {
        int K = 3 + trial % 6, P = trial % 3 == 2 ? 2 : K + 3;
        double R[8 * 11], Mr[64], ar[8];
        random_vectors(9000 + trial, K, P, R, NULL);
        if (trial % 5 == 0)
            for (int p = 0; p < P; p++) R[p] *= 30; /* unbalanced scales */
        gram_d(K, P, R, Mr);
        for (int s = 0; s < 2; s++) {
            loom_mtl_mgda_info info;
            if (loom_mtl_mgda(K, Mr, (loom_mtl_mgda_solver)s, 0, 0, ar, &info, NULL) != LOOM_OK) kkt_ok = 0;
            if (!mgda_kkt(K, Mr, ar, 1e-6)) {
                kkt_ok = 0;
                fprintf(stderr, "MGDA KKT fails: trial %d K %d P %d solver %d\n", trial, K, P, s);
            }
            polished += info.polished;
            total++;
        }
    }
    CHECK(kkt_ok);
    CHECK(polished > total / 2);

    double bad[4] = {1, 0, 0, -1};
    CHECK_STATUS(loom_mtl_mgda(2, bad, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL), LOOM_ERR_DATA);
}

/* ---------------------------------------------------------------- section 10: CAGrad */

static void cagrad_update(int K, int P, const double *G, double calpha, int rescale, double *g,
                          loom_mtl_cagrad_info *info) {
    double M[MAXK * MAXK], c[MAXK];
    gram_d(K, P, G, M);
    CHECK_STATUS(loom_mtl_cagrad(K, M, calpha, rescale, c, info, NULL), LOOM_OK);
    combine_d(K, P, G, c, g);
}

static void test_cagrad(void) {
    loom_mtl_cagrad_info info;
    double g[4];
    double R[6] = {0.3, -2, 1, 4, 0.5, 0.5};
    cagrad_update(3, 2, R, 0, 1, g, &info); /* c = 0: plain averaging */
    CHECK_CLOSE(g[0], 0.6, 1e-7, 0);
    CHECK_CLOSE(g[1], 2.5 / 3, 1e-7, 0);

    double A[4] = {1, 0, 0, 1};
    cagrad_update(2, 2, A, 0.5, 1, g, &info);
    CHECK_CLOSE(info.w[0], 0.5, 1e-6, 0);
    CHECK_CLOSE(info.lambda, 0.5, 1e-6, 0);
    CHECK_CLOSE(g[0], 0.6, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.6, 1e-6, 0);
    CHECK_CLOSE(2 * g[0], 1.2, 2e-6, 0); /* x K as official NYUv2 / nash-mtl */
    cagrad_update(2, 2, A, 0.4, 1, g, &info);
    CHECK_CLOSE(g[0], 0.603448276, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.603448276, 1e-6, 0);
    double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    double g3[3];
    cagrad_update(3, 3, I3, 0.5, 1, g3, &info);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(g3[i], 0.4, 1e-6, 0);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(info.w[i], 1.0 / 3, 1e-6, 0);

    double B[4] = {1, 0, -0.2, 1};
    cagrad_update(2, 2, B, 0.5, 0, g, &info);
    CHECK_CLOSE(info.w[0], 0.524600, 1e-6, 0);
    CHECK_CLOSE(info.w[1], 0.475400, 1e-6, 0);
    CHECK_CLOSE(info.lambda, 0.499700, 1e-6, 0);
    CHECK_CLOSE(g[0], 0.614631, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.737557, 1e-6, 0);
    cagrad_update(2, 2, B, 0.5, 1, g, &info);
    CHECK_CLOSE(g[0], 0.491705, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.590046, 1e-6, 0);
    cagrad_update(2, 2, B, 0.5, 2, g, &info);
    CHECK_CLOSE(g[0], 0.614631 / 1.5, 1e-6, 0);

    double Cv[4] = {2, 0, 0, 1};
    cagrad_update(2, 2, Cv, 0.5, 1, g, &info);
    CHECK_CLOSE(info.w[0], 0, 1e-6, 0);
    CHECK_CLOSE(info.lambda, 0.559017, 1e-6, 0);
    CHECK_CLOSE(g[0], 0.8, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.847214, 1e-6, 0);
    double D[4] = {1, 0, -1, 1};
    cagrad_update(2, 2, D, 0.5, 1, g, &info);
    CHECK_CLOSE(info.w[0], 1, 1e-6, 0);
    CHECK_CLOSE(info.lambda, 0.25, 1e-6, 0);
    CHECK_CLOSE(g[0], 0.2, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.4, 1e-6, 0);

    /* random K = 2..8: rescale 0 gives ||g - g0|| = c ||g0||; w is optimal (first-order
     * conditions of F on the simplex); no random simplex point does better */
    int ball_ok = 1, opt_ok = 1;
    for (int trial = 0; trial < 120; trial++) {
        int K = 2 + trial % 7, P = trial % 2 ? K + 2 : 3;
        double Rr[8 * 10], M[64], c[8], gr[10], g0[10], calpha = 0.1 + 0.8 * ((trial * 37) % 10) / 10.0;
        random_vectors(20000 + trial, K, P, Rr, NULL);
        gram_d(K, P, Rr, M);
        CHECK_STATUS(loom_mtl_cagrad(K, M, calpha, 0, c, &info, NULL), LOOM_OK);
        combine_d(K, P, Rr, c, gr);
        double ones[8];
        for (int j = 0; j < K; j++) ones[j] = 1.0 / K;
        combine_d(K, P, Rr, ones, g0);
        double diff2 = 0, n02 = 0;
        for (int p = 0; p < P; p++) {
            diff2 += (gr[p] - g0[p]) * (gr[p] - g0[p]);
            n02 += g0[p] * g0[p];
        }
        if (info.lambda > 0 && fabs(sqrt(diff2) - calpha * sqrt(n02)) > 1e-6 * (1 + sqrt(n02))) ball_ok = 0;

        double b[8], Mw[8], q = 0, cc = calpha * info.g0_norm + 1e-8, grad[8], mu = INFINITY;
        for (int i = 0; i < K; i++) {
            b[i] = Mw[i] = 0;
            for (int j = 0; j < K; j++) {
                b[i] += M[i * K + j] / K;
                Mw[i] += M[i * K + j] * info.w[j];
            }
            q += info.w[i] * Mw[i];
        }
        for (int i = 0; i < K; i++) {
            grad[i] = b[i] + cc * Mw[i] / sqrt(q + 1e-8);
            if (grad[i] < mu) mu = grad[i];
        }
        double scale = M[0] + 1;
        for (int i = 0; i < K; i++)
            if (info.w[i] > 0 && grad[i] > mu + (K == 2 ? 1e-7 : 1e-9) * scale) {
                opt_ok = 0;
                fprintf(stderr, "CAGrad optimality: trial %d K %d w %g excess %g\n", trial, K, info.w[i], grad[i] - mu);
            }
        for (int r = 0; r < 200; r++) {
            double v[8], s = 0;
            for (int i = 0; i < K; i++) s += v[i] = -log(1e-12 + loom_uniform01(31 + trial, (uint64_t)(r * 8 + i)));
            double lin = 0, qv = 0;
            for (int i = 0; i < K; i++) v[i] /= s;
            for (int i = 0; i < K; i++) {
                lin += v[i] * b[i];
                for (int j = 0; j < K; j++) qv += v[i] * M[i * K + j] * v[j];
            }
            if (lin + cc * sqrt(qv + 1e-8) < info.F - 1e-10 * (1 + fabs(info.F))) opt_ok = 0;
        }
    }
    CHECK(ball_ok);
    CHECK(opt_ok);

    double M[4] = {1, 0, 0, 1}, c[2];
    CHECK_STATUS(loom_mtl_cagrad(2, M, 1.0, 1, c, NULL, NULL), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_mtl_cagrad(2, M, 0.5, 3, c, NULL, NULL), LOOM_ERR_ARGUMENT);
}

/* ---------------------------------------------------------------- section 11: Nash-MTL */

static void nash_case(int K, int P, const double *G, const double *want_alpha, const double *want_d,
                      double atol) {
    double M[MAXK * MAXK], a[MAXK], d[8];
    gram_d(K, P, G, M);
    CHECK_STATUS(loom_mtl_nash(K, M, 0, 0, a, NULL, NULL), LOOM_OK);
    for (int i = 0; i < K; i++) CHECK_CLOSE(a[i], want_alpha[i], atol, 0);
    combine_d(K, P, G, a, d);
    if (want_d)
        for (int p = 0; p < P; p++) CHECK_CLOSE(d[p], want_d[p], atol, 0);
    CHECK_CLOSE(dot(P, d, d), K, 1e-9, 0);
}

static void test_nash(void) {
    double A[4] = {2, 0, 0, 1}, wa[2] = {0.5, 1}, da[2] = {1, 1};
    nash_case(2, 2, A, wa, da, 1e-12);
    double A2[4] = {20, 0, 0, 1}, wa2[2] = {0.05, 1};
    nash_case(2, 2, A2, wa2, da, 1e-12); /* scaled g1: alpha_1 / 10, same d */
    double B[4] = {1, 0, 1, 1}, wb[2] = {0.765366865, 0.541196100}, db[2] = {1.306562965, 0.541196100};
    nash_case(2, 2, B, wb, db, 1e-9);
    /* the spec prints alpha_2 = d_2 = 1.203001906; the root of alpha o (M alpha) = 1 is
     * 1.2030019100151 (mpmath, 30 digits), so the spec's last digits are off by 4e-9 */
    double Cv[4] = {1, 0, -0.5, 1}, wc[2] = {1.344997024, 1.203001906}, dc[2] = {0.743496069, 1.203001906};
    nash_case(2, 2, Cv, wc, dc, 5e-9);
    double wc_exact[2] = {1.3449970239279147, 1.2030019100150913};
    double dc_exact[2] = {0.7434960689203690, 1.2030019100150913};
    nash_case(2, 2, Cv, wc_exact, dc_exact, 1e-12);
    double D[9] = {1, 0, 0, 0, 2, 0, 1, 1, 1}, wd[3] = {0.834999618, 0.417499809, 0.362605720};
    nash_case(3, 3, D, wd, NULL, 1e-9);
    double Lin[4] = {1, 0, 2, 0}; /* linearly dependent is fine */
    double M[MAXK * MAXK], a[MAXK];
    gram_d(2, 2, Lin, M);
    CHECK_STATUS(loom_mtl_nash(2, M, 0, 0, a, NULL, NULL), LOOM_OK);
    CHECK_CLOSE(a[0] * (M[0] * a[0] + M[1] * a[1]), 1, 1e-9, 0);

    /* random problems: alpha_i (g_i . d) = 1 and invariance to scaling each g_i */
    int eq_ok = 1, scale_ok = 1, solved = 0;
    for (int trial = 0; trial < 100; trial++) {
        int K = 2 + trial % 7, P = K + 2;
        double R[8 * 10], Rs[8 * 10], Mr[64], ar[8], as[8], d[10], ds[10], sc[8];
        random_vectors(30000 + trial, K, P, R, NULL);
        for (int p = 0; p < P; p++) R[p] = fabs(R[p]) + 0.3; /* keep 0 out of the hull */
        for (int i = 1; i < K; i++) R[i * P] += 2;
        gram_d(K, P, R, Mr);
        if (loom_mtl_nash(K, Mr, 0, 0, ar, NULL, NULL) != LOOM_OK) {
            eq_ok = 0;
            continue;
        }
        solved++;
        combine_d(K, P, R, ar, d);
        for (int i = 0; i < K; i++)
            if (fabs(ar[i] * dot(P, R + i * P, d) - 1) > 1e-8) eq_ok = 0;
        for (int i = 0; i < K; i++) {
            sc[i] = 0.01 + 20 * loom_uniform01(41, (uint64_t)(trial * 8 + i));
            for (int p = 0; p < P; p++) Rs[i * P + p] = R[i * P + p] * sc[i];
        }
        gram_d(K, P, Rs, Mr);
        if (loom_mtl_nash(K, Mr, 0, 0, as, NULL, NULL) != LOOM_OK) {
            scale_ok = 0;
            continue;
        }
        combine_d(K, P, Rs, as, ds);
        for (int i = 0; i < K; i++)
            if (fabs(as[i] * sc[i] - ar[i]) > 1e-8 * ar[i]) scale_ok = 0;
        for (int p = 0; p < P; p++)
            if (fabs(ds[p] - d[p]) > 1e-8 * (1 + fabs(d[p]))) scale_ok = 0;
    }
    CHECK(eq_ok);
    CHECK(scale_ok);
    CHECK(solved == 100);

    /* clipping at max_norm 1: ||d|| = sqrt(K) >= 1, so the clipped update has norm 1 */
    gram_d(3, 3, D, M);
    loom_mtl_nash(3, M, 0, 0, a, NULL, NULL);
    float Gf[9], upd[3];
    for (int i = 0; i < 9; i++) Gf[i] = (float)D[i];
    loom_mtl_combine(3, 3, Gf, a, upd, NULL);
    double before = loom_mtl_clip_norm(upd, 3, 1.0);
    CHECK_CLOSE(before, sqrt(3.0), 1e-6, 0);
    CHECK_CLOSE(sqrt((double)upd[0] * upd[0] + (double)upd[1] * upd[1] + (double)upd[2] * upd[2]), 1,
                1e-6, 0);
    double cl[3] = {a[0], a[1], a[2]};
    CHECK_CLOSE(loom_mtl_clip_coeffs(3, M, cl, 1.0), sqrt(3.0), 1e-9, 0);
    double dcl[3];
    combine_d(3, 3, D, cl, dcl);
    CHECK_CLOSE(sqrt(dot(3, dcl, dcl)), 1, 1e-12, 0);
    float small[2] = {0.3f, 0.4f};
    loom_mtl_clip_norm(small, 2, 1.0);
    CHECK(small[0] == 0.3f && small[1] == 0.4f);

    /* g2 = -g1: 0 is in the hull, no solution; failure is reported, alpha untouched, no NaN */
    double Opp[4] = {1, 2, -1, -2};
    gram_d(2, 2, Opp, M);
    double keep[2] = {0.7, 0.9};
    loom_mtl_nash_info info;
    loom_error e = {0};
    CHECK_STATUS(loom_mtl_nash(2, M, 0, 0, keep, &info, &e), LOOM_ERR_DATA);
    CHECK(keep[0] == 0.7 && keep[1] == 0.9);
    CHECK(!isnan(info.residual));
    CHECK(strstr(e.msg, "convex hull") != NULL);
    double Z[4] = {1, 0, 0, 0};
    gram_d(2, 2, Z, M);
    CHECK_STATUS(loom_mtl_nash(2, M, 0, 0, keep, &info, NULL), LOOM_ERR_DATA); /* zero gradient */
    double T3[6] = {1, 0, -1, 1, -0.5, -1}; /* 0 inside the hull of three */
    gram_d(3, 2, T3, M);
    double keep3[3] = {1, 1, 1};
    CHECK_STATUS(loom_mtl_nash(3, M, 0, 0, keep3, &info, NULL), LOOM_ERR_DATA);
    CHECK(!isnan(keep3[0]) && keep3[0] == 1);
}

/* ---------------------------------------------------------------- section 12: diagnostics */

static void test_diagnostics(void) {
    loom_mtl_diag dg;
    double A[4] = {1, 0, -1, 1}, M[16];
    gram_d(2, 2, A, M);
    CHECK_STATUS(loom_mtl_diagnostics(2, M, 1, &dg, NULL), LOOM_OK);
    CHECK_CLOSE(dg.cos[1], -0.707106781, 1e-9, 0);
    CHECK_CLOSE(dg.gms[1], 0.942809042, 1e-9, 0);
    CHECK(dg.conflict[1] && dg.conflict[2] && !dg.conflict[0]);
    CHECK_CLOSE(dg.conflict_share, 1, 0, 0);
    CHECK_CLOSE(dg.min_cos, -0.707106781, 1e-9, 0);
    CHECK_CLOSE(dg.norm_ratio, sqrt(2.0), 1e-12, 0);
    CHECK_CLOSE(dg.mgda_d2, 0.2, 1e-12, 0);

    double B[4] = {3, 4, 4, 3};
    gram_d(2, 2, B, M);
    CHECK_STATUS(loom_mtl_diagnostics(2, M, 0, &dg, NULL), LOOM_OK);
    CHECK_CLOSE(dg.cos[1], 0.96, 1e-12, 0);
    CHECK_CLOSE(dg.gms[1], 1.0, 1e-12, 0);
    CHECK_CLOSE(dg.conflict_share, 0, 0, 0);

    /* cos(g, g) = 1, cos(g, -g) = -1, invariant to positive rescaling; a zero vector: 0 + flag */
    double C[8] = {0.3, -1.2, 0.6, -2.4, -3, 12, 0, 0};
    gram_d(4, 2, C, M);
    CHECK_STATUS(loom_mtl_diagnostics(4, M, 0, &dg, NULL), LOOM_OK);
    CHECK_CLOSE(dg.cos[0 * 4 + 1], 1, 1e-15, 0);
    CHECK_CLOSE(dg.cos[0 * 4 + 0], 1, 1e-15, 0);
    CHECK_CLOSE(dg.cos[0 * 4 + 2], -1, 1e-15, 0);
    CHECK_CLOSE(dg.cos[1 * 4 + 2], -1, 1e-15, 0);
    CHECK(dg.any_zero && dg.zero[3] && !dg.zero[0]);
    int finite = 1;
    for (int i = 0; i < 16; i++) finite &= isfinite(dg.cos[i]) && isfinite(dg.gms[i]);
    CHECK(finite);
    CHECK(dg.cos[0 * 4 + 3] == 0 && dg.cos[3 * 4 + 3] == 0 && dg.gms[3 * 4 + 3] == 0);
    CHECK(dg.gms[0 * 4 + 3] == 0);
    CHECK(dg.norm_ratio == 0);
    CHECK_CLOSE(dg.min_cos, -1, 1e-15, 0);
    CHECK_CLOSE(dg.conflict_share, 2.0 / 6, 1e-15, 0);
    int zero = 0;
    CHECK(loom_mtl_cosine(0, 0, 4, &zero) == 0 && zero == 1);
    CHECK_CLOSE(loom_mtl_cosine(4, -2, 1, &zero), -1, 1e-15, 0);
    CHECK(zero == 0);
}

/* one task: every method degenerates to the plain gradient */
static void test_single_task(void) {
    double M[1] = {4}, c[1], C[1], a[1];
    CHECK_STATUS(loom_mtl_pcgrad(1, M, NULL, LOOM_MTL_REDUCE_SUM, C, c, NULL), LOOM_OK);
    CHECK(c[0] == 1 && C[0] == 1);
    CHECK_STATUS(loom_mtl_mgda(1, M, LOOM_MTL_MGDA_PGD, 0, 0, a, NULL, NULL), LOOM_OK);
    CHECK(a[0] == 1);
    loom_mtl_cagrad_info info;
    CHECK_STATUS(loom_mtl_cagrad(1, M, 0.5, 0, c, &info, NULL), LOOM_OK);
    CHECK_CLOSE(c[0], 1 + 0.5 * 2 / 2, 1e-7, 0); /* g = g0 + c|g0| g/|g| = 1.5 g */
    CHECK_STATUS(loom_mtl_nash(1, M, 0, 0, a, NULL, NULL), LOOM_OK);
    CHECK_CLOSE(a[0], 0.5, 1e-12, 0); /* alpha (M alpha) = 1 */
    loom_mtl_diag dg;
    CHECK_STATUS(loom_mtl_diagnostics(1, M, 1, &dg, NULL), LOOM_OK);
    CHECK(dg.conflict_share == 0 && dg.norm_ratio == 1 && dg.mgda_d2 == 4);
}

int main(void) {
    test_single_task();
    test_static();
    test_gram_combine();
    test_schedules();
    test_uw();
    test_gradnorm();
    test_dwa();
    test_rlw();
    test_pcgrad();
    test_mgda();
    test_cagrad();
    test_nash();
    test_diagnostics();
    return check_report("mtl");
}
