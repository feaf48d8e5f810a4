/* mtl_common.c — the building blocks every multi-task method shares: argument checks, the Gram
 * matrix of the per-task gradients, the combined update, the weighted sum, a stable softmax and
 * the cosine of two gradients. Pure functions, no allocation. */
#include "mtl/mtl.h"

#include <math.h>

#define MAXK LOOM_MTL_MAX_TASKS

loom_status loom_mtl_check_tasks(int K, const char *who, loom_error *err) {
    if (K < 1 || K > MAXK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: %d tasks, expected 1..%d", who, K, MAXK);
    return LOOM_OK;
}

loom_status loom_mtl_check_finite(int K, const double *v, const char *who, const char *what,
                                   loom_error *err) {
    if (!v) return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: %s is NULL", who, what);
    for (int i = 0; i < K; i++)
        if (!isfinite(v[i]))
            return loom_set_error(err, LOOM_ERR_DATA, "%s: %s[%d] is not finite", who, what, i);
    return LOOM_OK;
}

loom_status loom_mtl_check_gram(int K, const double *M, const char *who, loom_error *err) {
    loom_status st = loom_mtl_check_tasks(K, who, err);
    if (st) return st;
    if (!M) return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: Gram matrix is NULL", who);
    for (int i = 0; i < K; i++) {
        for (int j = 0; j < K; j++)
            if (!isfinite(M[i * K + j]))
                return loom_set_error(err, LOOM_ERR_DATA, "%s: Gram entry (%d, %d) is not finite",
                                      who, i, j);
        if (M[i * K + i] < 0)
            return loom_set_error(err, LOOM_ERR_DATA,
                                  "%s: Gram diagonal %d is negative (%g): not a Gram matrix", who,
                                  i, M[i * K + i]);
    }
    return LOOM_OK;
}

double loom_mtl_weighted_sum(int K, const double *w, const double *L) {
    double total = 0;
    for (int i = 0; i < K; i++) total += w[i] * L[i];
    return total;
}

loom_status loom_mtl_softmax(int K, const double *z, double sum_to, double *out, loom_error *err) {
    loom_status st = loom_mtl_check_tasks(K, "softmax", err);
    if (!st) st = loom_mtl_check_finite(K, z, "softmax", "z", err);
    if (st) return st;
    if (!out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "softmax: output is NULL");
    double zmax = z[0];
    for (int i = 1; i < K; i++) zmax = z[i] > zmax ? z[i] : zmax;
    double e[MAXK], sum = 0;
    for (int i = 0; i < K; i++) {
        e[i] = exp(z[i] - zmax);
        sum += e[i];
    }
    for (int i = 0; i < K; i++) out[i] = sum_to * e[i] / sum;
    return LOOM_OK;
}

loom_status loom_mtl_gram(int K, size_t P, const float *G, double *M, loom_error *err) {
    if (K < 1 || K > MAXK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "Gram: %d tasks, expected 1..%d", K, MAXK);
    if (!G || !M) return loom_set_error(err, LOOM_ERR_ARGUMENT, "Gram: NULL gradients or output");
    for (int i = 0; i < K; i++) {
        for (int j = i; j < K; j++) {
            const float *gi = G + (size_t)i * P, *gj = G + (size_t)j * P;
            double s = 0;
            for (size_t p = 0; p < P; p++) s += (double)gi[p] * (double)gj[p];
            M[i * K + j] = M[j * K + i] = s;
        }
    }
    return LOOM_OK;
}

loom_status loom_mtl_combine(int K, size_t P, const float *G, const double *c, float *out,
                             loom_error *err) {
    if (K < 1 || K > MAXK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "combine: %d tasks, expected 1..%d", K, MAXK);
    if (!G || !c || !out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "combine: NULL argument");
    for (int j = 0; j < K; j++)
        if (!isfinite(c[j]))
            return loom_set_error(err, LOOM_ERR_DATA, "combine: coefficient %d is not finite", j);
    for (size_t p = 0; p < P; p++) {
        double s = 0;
        for (int j = 0; j < K; j++) s += c[j] * (double)G[(size_t)j * P + p];
        out[p] = (float)s;
    }
    return LOOM_OK;
}

double loom_mtl_cosine(double mii, double mij, double mjj, int *zero) {
    if (!(mii > 0) || !(mjj > 0)) {
        if (zero) *zero = 1;
        return 0;
    }
    if (zero) *zero = 0;
    double c = mij / sqrt(mii * mjj);
    /* rounding can push |cos| of parallel vectors just past 1 */
    return c > 1 ? 1 : (c < -1 ? -1 : c);
}

