/* test_dense_grad.c — the Dense op (src/layers/layer_dense.c) on its own: forward against an
 * independent double-precision computation, backward against central differences (op_harness.h)
 * for every activation, with and without bias, on rank-1 and rank-3 inputs (Dense maps the last
 * axis), and the fused contract: with dout_is_preact the incoming gradient is already dL/dz, so
 * the activation's derivative must not be applied again. */
#include "op_harness.h"

#include <string.h>

/* ---------------------------------------------------------------- reference activations */

static double ref_sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* y = act(z) over one row of `dim`, in double. */
static void ref_act(loom_activation a, const double *z, double *y, int dim) {
    if (a == LOOM_SOFTMAX) {
        double mx = z[0], s = 0;
        for (int j = 1; j < dim; j++) mx = fmax(mx, z[j]);
        for (int j = 0; j < dim; j++) s += exp(z[j] - mx);
        for (int j = 0; j < dim; j++) y[j] = exp(z[j] - mx) / s;
        return;
    }
    for (int j = 0; j < dim; j++) {
        double v = z[j];
        switch (a) {
        case LOOM_LINEAR: y[j] = v; break;
        case LOOM_RELU: y[j] = v > 0 ? v : 0; break;
        case LOOM_SIGMOID: y[j] = ref_sigmoid(v); break;
        case LOOM_TANH: y[j] = tanh(v); break;
        case LOOM_GELU: y[j] = 0.5 * v * (1.0 + erf(v / sqrt(2.0))); break;
        case LOOM_ELU: y[j] = v > 0 ? v : exp(v) - 1.0; break;
        case LOOM_LEAKY_RELU: y[j] = v > 0 ? v : 0.2 * v; break;
        case LOOM_SOFTPLUS: y[j] = log1p(exp(v)); break;
        case LOOM_SWISH: y[j] = v * ref_sigmoid(v); break;
        case LOOM_HARD_SIGMOID: y[j] = fmin(fmax(v / 6.0 + 0.5, 0.0), 1.0); break;
        case LOOM_HARD_SIGMOID_KERAS2: y[j] = fmin(fmax(0.2 * v + 0.5, 0.0), 1.0); break;
        default: y[j] = NAN; break;
        }
    }
}

/* ---------------------------------------------------------------- helpers */

static loom_shape shape_of(int rank, const int *dims) {
    loom_shape s;
    memset(&s, 0, sizeof s);
    s.rank = rank;
    for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
    return s;
}

/* z = x . K + b for every row, in double, from the harness's (float) inputs and weights. */
static void ref_preact(const op_harness *H, int in_dim, int units, bool bias, double *z) {
    size_t rows = H->in_n[0] / (size_t)in_dim;
    const float *K = H->w, *b = bias ? H->w + (size_t)in_dim * units : NULL;
    for (size_t r = 0; r < rows; r++)
        for (int u = 0; u < units; u++) {
            double s = b ? b[u] : 0.0;
            for (int i = 0; i < in_dim; i++) s += (double)H->in[0][r * in_dim + i] * K[(size_t)i * units + u];
            z[r * units + u] = s;
        }
}

/* Keeps pre-activations away from the kinks of relu / leaky_relu, where a central difference
 * straddling 0 is meaningless: rows whose |z| is small get their input nudged until it is not. */
static void avoid_kinks(op_harness *H, int in_dim, int units, bool bias) {
    size_t rows = H->in_n[0] / (size_t)in_dim;
    double *z = malloc(rows * units * sizeof *z);
    if (!z) return;
    for (int pass = 0; pass < 50; pass++) {
        ref_preact(H, in_dim, units, bias, z);
        bool moved = false;
        for (size_t r = 0; r < rows; r++)
            for (int u = 0; u < units; u++)
                if (fabs(z[r * units + u]) < 0.05) {
                    float *x = H->in[0] + r * in_dim;
                    x[(u + pass) % in_dim] += 0.11f;
                    moved = true;
                }
        if (!moved) break;
    }
    free(z);
}

/* ---------------------------------------------------------------- one configuration */

static void check_dense(loom_activation act, bool bias, int rank, const int *in_dims, int units, int batch) {
    char label[96];
    snprintf(label, sizeof label, "Dense(%d, %s, %s) on rank %d", units, loom_activation_name(act),
             bias ? "bias" : "no bias", rank);
    loom_graph *g = loom_graph_new(7);
    loom_dense_options opt = loom_dense_defaults();
    opt.use_bias = bias;
    loom_layer *L = loom_dense(g, "dense_under_test", units, act, &opt);
    CHECK(L != NULL);
    if (!L) {
        loom_graph_free(g);
        return;
    }
    loom_shape in = shape_of(rank, in_dims);
    op_harness H;
    loom_status s = oph_init(&H, L, 1, &in, batch, 1, 99);
    CHECK_STATUS(s, LOOM_OK);
    if (s != LOOM_OK) {
        fprintf(stderr, "  %s: %s\n", label, H.err.msg);
        oph_free(&H);
        loom_graph_free(g);
        return;
    }
    int in_dim = in_dims[rank - 1];

    /* declared weights and output shape */
    CHECK(L->n_weights == (bias ? 2 : 1));
    CHECK(H.n_w == (size_t)in_dim * units + (bias ? (size_t)units : 0));
    CHECK(H.out_shape.rank == rank);
    for (int i = 0; i < rank - 1; i++) CHECK(H.out_shape.dims[i] == in_dims[i]);
    CHECK(H.out_shape.dims[rank - 1] == units);

    if (act == LOOM_RELU || act == LOOM_LEAKY_RELU) avoid_kinks(&H, in_dim, units, bias);

    /* forward against double */
    size_t rows = H.in_n[0] / (size_t)in_dim;
    double *z = malloc(rows * units * sizeof *z), *y = malloc(rows * units * sizeof *y);
    if (z && y) {
        ref_preact(&H, in_dim, units, bias, z);
        for (size_t r = 0; r < rows; r++) ref_act(act, z + r * units, y + r * units, units);
        oph_forward(&H);
        int bad = 0;
        for (size_t i = 0; i < rows * units; i++)
            if (!(fabs(H.out[i] - y[i]) <= 1e-5 + 1e-5 * fabs(y[i]))) {
                if (bad++ < 3) fprintf(stderr, "  %s: out[%zu] = %.8g, expected %.8g\n", label, i, H.out[i], y[i]);
            }
        CHECK(bad == 0);
    }

    /* backward against central differences, inputs and weights */
    oph_grad_check(&H, label, NULL);

    /* Fused contract: dout is dL/dz. The gradients must be those of the linear map z = xK + b
     * with upstream dout, whatever the activation. */
    if (z && (act == LOOM_SOFTMAX || act == LOOM_SIGMOID)) {
        char flabel[128];
        snprintf(flabel, sizeof flabel, "%s, dout_is_preact", label);
        /* pre-filled with the pattern: the fused backward must accumulate too */
        oph_forward(&H);
        for (size_t j = 0; j < H.in_n[0]; j++) H.din[0][j] = oph_pattern(j);
        for (size_t j = 0; j < H.n_w; j++) H.dw[j] = oph_pattern(j + 5);
        H.dout_is_preact = true;
        oph_backward(&H);
        H.dout_is_preact = false;
        for (size_t j = 0; j < H.in_n[0]; j++) H.din[0][j] -= oph_pattern(j);
        for (size_t j = 0; j < H.n_w; j++) H.dw[j] -= oph_pattern(j + 5);
        const float *K = H.w, *r = H.dout;
        int bad = 0;
        for (size_t row = 0; row < rows; row++)
            for (int i = 0; i < in_dim; i++) {
                double e = 0;
                for (int u = 0; u < units; u++) e += (double)r[row * units + u] * K[(size_t)i * units + u];
                double a = H.din[0][row * in_dim + i];
                if (!(fabs(a - e) <= 1e-5 + 1e-4 * fabs(e)) && bad++ < 3)
                    fprintf(stderr, "  %s: din[%zu] = %.8g, expected %.8g\n", flabel, row * in_dim + i, a, e);
            }
        for (int i = 0; i < in_dim; i++)
            for (int u = 0; u < units; u++) {
                double e = 0;
                for (size_t row = 0; row < rows; row++) e += (double)H.in[0][row * in_dim + i] * r[row * units + u];
                double a = H.dw[(size_t)i * units + u];
                if (!(fabs(a - e) <= 1e-5 + 1e-4 * fabs(e)) && bad++ < 3)
                    fprintf(stderr, "  %s: dkernel[%d][%d] = %.8g, expected %.8g\n", flabel, i, u, a, e);
            }
        if (bias)
            for (int u = 0; u < units; u++) {
                double e = 0;
                for (size_t row = 0; row < rows; row++) e += r[row * units + u];
                double a = H.dw[(size_t)in_dim * units + u];
                if (!(fabs(a - e) <= 1e-5 + 1e-4 * fabs(e)) && bad++ < 3)
                    fprintf(stderr, "  %s: dbias[%d] = %.8g, expected %.8g\n", flabel, u, a, e);
            }
        CHECK(bad == 0);
    }
    free(z);
    free(y);
    oph_free(&H);
    loom_graph_free(g);
}

int main(void) {
    const int d1[1] = {5};
    const int d3[3] = {2, 3, 4};
    for (int a = 0; a < LOOM_ACTIVATION_COUNT; a++)
        for (int bias = 0; bias <= 1; bias++) {
            check_dense((loom_activation)a, bias, 1, d1, 4, 3);
            check_dense((loom_activation)a, bias, 3, d3, 3, 2);
        }
    /* a single unit (softmax of one logit is constant 1: its gradient must vanish) */
    check_dense(LOOM_SOFTMAX, true, 1, d1, 1, 3);
    check_dense(LOOM_SIGMOID, true, 1, d1, 1, 3);
    return check_report("test_dense_grad");
}
