/* test_init.c — weight initialisers: Keras's bounds and variances, fans, determinism. */
#include "check.h"
#include "graph/graph.h"
#include "ops/activations.h"
#include "ops/losses.h"
#include "ops/metrics.h"
#include "ops/init.h"
#include "optim/optim.h"
#include "kernels/gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static loom_shape shape_of(int rank, const int *dims) {
    loom_shape s = {0};
    s.rank = rank;
    for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
    return s;
}

typedef struct stats {
    double mean, var, max_abs;
} stats;

static stats stats_of(const float *w, size_t n) {
    stats st = {0, 0, 0};
    for (size_t i = 0; i < n; i++) st.mean += w[i];
    st.mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = w[i] - st.mean;
        st.var += d * d;
        if (fabs(w[i]) > st.max_abs) st.max_abs = fabs(w[i]);
    }
    st.var /= (double)n;
    return st;
}

/* Fills a tensor and checks U(-L, L): inside the bounds, reaching close to them. */
static void check_uniform(loom_initializer init, int rank, const int *dims, double limit) {
    loom_shape s = shape_of(rank, dims);
    size_t n = loom_shape_size(&s);
    float *w = malloc(n * sizeof *w);
    loom_init_fill(init, &s, w, 1234);
    stats st = stats_of(w, n);
    CHECK(st.max_abs <= limit * (1 + 1e-6));
    CHECK(st.max_abs >= limit * 0.98); /* n >= 4000 draws: all below 0.98L has p < 1e-30 */
    free(w);
}

static void test_dense_glorot_uniform(void) {
    /* Dense 784 -> 10: L = sqrt(6/794) */
    const int dims[2] = {784, 10};
    const double L = 0.0869291;
    CHECK_CLOSE(sqrt(6.0 / 794.0), L, 0, 1e-6);
    loom_shape s = shape_of(2, dims);
    float *w = malloc(7840 * sizeof *w);
    loom_init_fill(LOOM_INIT_GLOROT_UNIFORM, &s, w, 42);
    stats st = stats_of(w, 7840);
    CHECK(st.max_abs <= L * (1 + 1e-6));
    CHECK(st.max_abs >= 0.99 * L);
    /* mean's stddev is L/sqrt(3*7840) = 5.7e-4 */
    CHECK(fabs(st.mean) < 5 * L / sqrt(3.0 * 7840));
    CHECK_CLOSE(st.var, L * L / 3, 0, 0.05);
    /* the Keras default kernel initialiser is glorot_uniform */
    float *d = malloc(7840 * sizeof *d);
    loom_init_fill(LOOM_INIT_DEFAULT, &s, d, 42);
    CHECK(memcmp(w, d, 7840 * sizeof *w) == 0);
    free(d);
    free(w);
}

static void test_uniform_moments_large(void) {
    /* 1000 x 1000 he_uniform: L = sqrt(6/1000); variance L^2/3 to about 0.1% */
    const int dims[2] = {1000, 1000};
    loom_shape s = shape_of(2, dims);
    size_t n = loom_shape_size(&s);
    float *w = malloc(n * sizeof *w);
    loom_init_fill(LOOM_INIT_HE_UNIFORM, &s, w, 7);
    double L = sqrt(6.0 / 1000);
    stats st = stats_of(w, n);
    CHECK(st.max_abs <= L * (1 + 1e-6));
    CHECK(fabs(st.mean) < 5 * L / sqrt(3.0 * (double)n));
    CHECK_CLOSE(st.var, L * L / 3, 0, 0.01);
    /* and evenly spread: a quarter of the draws in each quarter of [-L, L] */
    size_t q[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int k = (int)((w[i] + L) / (2 * L) * 4);
        q[k < 0 ? 0 : k > 3 ? 3 : k]++;
    }
    for (int k = 0; k < 4; k++) CHECK_CLOSE((double)q[k] / (double)n, 0.25, 0.005, 0);
    free(w);
}

/* Truncated normal: within 2 stddev (of the widened stddev), variance scale/fan, and shaped like
 * a normal: P(|z| > 1 | |z| <= 2) = (0.9545 - 0.6827)/0.9545 = 0.2848. */
static void check_truncated(loom_initializer init, int rank, const int *dims, double variance,
                            uint64_t key) {
    loom_shape s = shape_of(rank, dims);
    size_t n = loom_shape_size(&s);
    float *w = malloc(n * sizeof *w);
    loom_init_fill(init, &s, w, key);
    double stddev = sqrt(variance) / 0.87962566103423978;
    stats st = stats_of(w, n);
    CHECK(st.max_abs <= 2 * stddev * (1 + 1e-6));
    CHECK(st.max_abs >= 1.99 * stddev);
    CHECK(fabs(st.mean) < 5 * sqrt(variance / (double)n));
    CHECK_CLOSE(st.var, variance, 0, 0.02);
    size_t beyond_one = 0;
    for (size_t i = 0; i < n; i++) beyond_one += fabs(w[i]) > stddev;
    double p_exact = (erf(2 / sqrt(2.0)) - erf(1 / sqrt(2.0))) / erf(2 / sqrt(2.0));
    CHECK_CLOSE((double)beyond_one / (double)n, p_exact, 0.01, 0);
    free(w);
}

static void test_truncated_normals(void) {
    const int d2[2] = {500, 300};
    check_truncated(LOOM_INIT_GLOROT_NORMAL, 2, d2, 2.0 / 800, 1);
    check_truncated(LOOM_INIT_HE_NORMAL, 2, d2, 2.0 / 500, 2);
    check_truncated(LOOM_INIT_LECUN_NORMAL, 2, d2, 1.0 / 500, 3);
    /* conv kernel (3, 3, 64, 128): receptive field 9, fan_in 576, fan_out 1152 */
    const int d4[4] = {3, 3, 64, 128};
    check_truncated(LOOM_INIT_GLOROT_NORMAL, 4, d4, 2.0 / (576 + 1152), 4);
    check_truncated(LOOM_INIT_HE_NORMAL, 4, d4, 2.0 / 576, 5);
}

static void test_fans(void) {
    /* rank 1: fan_in = fan_out = shape[0] */
    const int d1[1] = {5000};
    check_uniform(LOOM_INIT_GLOROT_UNIFORM, 1, d1, sqrt(6.0 / 10000));
    check_uniform(LOOM_INIT_HE_UNIFORM, 1, d1, sqrt(6.0 / 5000));
    check_uniform(LOOM_INIT_LECUN_UNIFORM, 1, d1, sqrt(3.0 / 5000));
    /* rank 2: (in, out) */
    const int d2[2] = {100, 60};
    check_uniform(LOOM_INIT_GLOROT_UNIFORM, 2, d2, sqrt(6.0 / 160));
    check_uniform(LOOM_INIT_HE_UNIFORM, 2, d2, sqrt(6.0 / 100));
    check_uniform(LOOM_INIT_LECUN_UNIFORM, 2, d2, sqrt(3.0 / 100));
    /* rank 4: receptive field 3*3, fan_in 9*16 = 144, fan_out 9*32 = 288 */
    const int d4[4] = {3, 3, 16, 32};
    check_uniform(LOOM_INIT_GLOROT_UNIFORM, 4, d4, sqrt(6.0 / 432));
    check_uniform(LOOM_INIT_HE_UNIFORM, 4, d4, sqrt(6.0 / 144));
    check_uniform(LOOM_INIT_LECUN_UNIFORM, 4, d4, sqrt(3.0 / 144));
    /* rank 3: receptive field 5, fan_in 5*40, fan_out 5*30 */
    const int d3[3] = {5, 40, 30};
    check_uniform(LOOM_INIT_GLOROT_UNIFORM, 3, d3, sqrt(6.0 / 350));
    /* rank 0 (a scalar): fans are 1, so glorot's L = sqrt(6/2) */
    loom_shape s0 = {0};
    float w0 = 0.0f;
    double worst = 0.0;
    for (uint64_t key = 0; key < 200; key++) {
        loom_init_fill(LOOM_INIT_GLOROT_UNIFORM, &s0, &w0, key);
        if (fabs(w0) > worst) worst = fabs(w0);
    }
    CHECK(worst <= sqrt(3.0) * (1 + 1e-6) && worst > 0.9 * sqrt(3.0));
}

static void test_constants(void) {
    const int dims[2] = {3, 7};
    loom_shape s = shape_of(2, dims);
    float w[21];
    for (int i = 0; i < 21; i++) w[i] = 5.0f;
    loom_init_fill(LOOM_INIT_ZEROS, &s, w, 9);
    for (int i = 0; i < 21; i++) CHECK(w[i] == 0.0f);
    loom_init_fill(LOOM_INIT_ONES, &s, w, 9);
    for (int i = 0; i < 21; i++) CHECK(w[i] == 1.0f);
}

static void test_determinism(void) {
    const int dims[2] = {64, 32};
    loom_shape s = shape_of(2, dims);
    const loom_initializer inits[6] = {LOOM_INIT_GLOROT_UNIFORM, LOOM_INIT_GLOROT_NORMAL,
                                       LOOM_INIT_HE_UNIFORM,     LOOM_INIT_HE_NORMAL,
                                       LOOM_INIT_LECUN_UNIFORM,  LOOM_INIT_LECUN_NORMAL};
    float a[2048], b[2048], c[2048];
    for (int k = 0; k < 6; k++) {
        loom_init_fill(inits[k], &s, a, 99);
        loom_init_fill(inits[k], &s, b, 99);
        loom_init_fill(inits[k], &s, c, 100);
        CHECK(memcmp(a, b, sizeof a) == 0);
        int differ = 0;
        for (int i = 0; i < 2048; i++) differ += a[i] != c[i];
        CHECK(differ > 2000);
        /* no two neighbours equal: each element has its own draw */
        int same = 0;
        for (int i = 1; i < 2048; i++) same += a[i] == a[i - 1];
        CHECK(same < 3);
    }
    /* Element i depends only on (key, i) and the limit: glorot on (64, 32) and on (32, 64) has
     * the same fan_in + fan_out, hence the same values. */
    const int t[2] = {32, 64};
    loom_shape st = shape_of(2, t);
    loom_init_fill(LOOM_INIT_GLOROT_UNIFORM, &s, a, 5);
    loom_init_fill(LOOM_INIT_GLOROT_UNIFORM, &st, b, 5);
    CHECK(memcmp(a, b, sizeof a) == 0);
}

/* Orthogonal: with A the normal matrix the initialiser draws (element (i, j) of the (max, min)
 * matrix from counter i*min + j), Q must have orthonormal columns and Q^T A must be upper
 * triangular with a positive diagonal: the unique QR with Keras's sign correction. */
static void check_orthogonal(int rank, const int *dims, uint64_t key) {
    loom_shape s = shape_of(rank, dims);
    size_t rows = 1, cols = (size_t)dims[rank - 1];
    for (int i = 0; i + 1 < rank; i++) rows *= (size_t)dims[i];
    size_t m = rows >= cols ? rows : cols, n = rows >= cols ? cols : rows;
    float *w = malloc(rows * cols * sizeof *w);
    loom_init_fill(LOOM_INIT_ORTHOGONAL, &s, w, key);
    /* q[i][j] of the tall (m, n) factor: w itself, or w transposed when rows < cols */
#define Q(i, j) (rows >= cols ? w[(i) * cols + (j)] : w[(j) * cols + (i)])
    double worst_gram = 0, worst_lower = 0, min_diag = 1e9;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            double dot = 0, r = 0;
            for (size_t i = 0; i < m; i++) {
                dot += (double)Q(i, a) * Q(i, b);
                r += (double)Q(i, a) * loom_normal(key, i * n + b); /* R[a][b] = q_a . A[:, b] */
            }
            worst_gram = fmax(worst_gram, fabs(dot - (a == b)));
            if (a > b) worst_lower = fmax(worst_lower, fabs(r));
            if (a == b) min_diag = fmin(min_diag, r);
        }
#undef Q
    CHECK(worst_gram < 1e-5);
    CHECK(worst_lower < 1e-4 * sqrt((double)m));
    CHECK(min_diag > 0);
    /* gain 1: every entry of an orthogonal matrix is at most 1 in magnitude */
    stats st = stats_of(w, rows * cols);
    CHECK(st.max_abs <= 1.0 + 1e-6);
    free(w);
}

static void test_orthogonal(void) {
    const int tall[2] = {50, 20}, wide[2] = {20, 50}, square[2] = {16, 16}, r3[3] = {3, 4, 5}, r4[4] = {2, 2, 3, 8};
    check_orthogonal(2, tall, 1);
    check_orthogonal(2, wide, 2);
    check_orthogonal(2, square, 3);
    check_orthogonal(3, r3, 4); /* (12, 5): leading dims flattened into rows */
    check_orthogonal(4, r4, 5); /* (12, 8) */
    /* a square orthogonal matrix also has orthonormal rows: Q Q^T = I */
    loom_shape s = shape_of(2, square);
    float w[256], w2[256];
    loom_init_fill(LOOM_INIT_ORTHOGONAL, &s, w, 77);
    double worst = 0;
    for (int a = 0; a < 16; a++)
        for (int b = 0; b < 16; b++) {
            double dot = 0;
            for (int j = 0; j < 16; j++) dot += (double)w[a * 16 + j] * w[b * 16 + j];
            worst = fmax(worst, fabs(dot - (a == b)));
        }
    CHECK(worst < 1e-5);
    /* deterministic per key */
    loom_init_fill(LOOM_INIT_ORTHOGONAL, &s, w2, 77);
    CHECK(memcmp(w, w2, sizeof w) == 0);
    loom_init_fill(LOOM_INIT_ORTHOGONAL, &s, w2, 78);
    CHECK(memcmp(w, w2, sizeof w) != 0);
    /* rank 1 (Keras refuses it): a unit vector */
    const int d1[1] = {10};
    loom_shape s1 = shape_of(1, d1);
    float v[10];
    loom_init_fill(LOOM_INIT_ORTHOGONAL, &s1, v, 3);
    double norm = 0;
    for (int i = 0; i < 10; i++) norm += (double)v[i] * v[i];
    CHECK_CLOSE(norm, 1.0, 1e-6, 0);
}

static void test_random_uniform(void) {
    /* RandomUniform(-0.05, 0.05), whatever the shape: variance 0.1^2 / 12 */
    const int dims[2] = {1000, 100};
    check_uniform(LOOM_INIT_UNIFORM, 2, dims, 0.05);
    loom_shape s = shape_of(2, dims);
    size_t n = loom_shape_size(&s);
    float *w = malloc(n * sizeof *w);
    loom_init_fill(LOOM_INIT_UNIFORM, &s, w, 11);
    stats st = stats_of(w, n);
    CHECK(st.max_abs < 0.05);
    CHECK(fabs(st.mean) < 5 * 0.05 / sqrt(3.0 * (double)n));
    CHECK_CLOSE(st.var, 0.01 / 12, 0, 0.01);
    /* no fan scaling: a (3, 3, 64, 128) shape has the same bound */
    const int d4[4] = {3, 3, 64, 128};
    check_uniform(LOOM_INIT_UNIFORM, 4, d4, 0.05);
    free(w);
}

int main(void) {
    test_orthogonal();
    test_random_uniform();
    test_dense_glorot_uniform();
    test_uniform_moments_large();
    test_truncated_normals();
    test_fans();
    test_constants();
    test_determinism();
    return check_report("init");
}
