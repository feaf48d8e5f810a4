/* mtl_diagnostics.c — how the tasks' gradients relate: norms, cosines, conflicts, gradient
 * magnitude similarity and the MGDA distance (multi-task-balancing.md section 12). Pure
 * functions, no allocation. */
#include "mtl/mtl.h"

#include <math.h>
#include <string.h>

#define MAXK LOOM_MTL_MAX_TASKS

loom_status loom_mtl_diagnostics(int K, const double *M, int with_mgda, loom_mtl_diag *out,
                                 loom_error *err) {
    loom_status st = loom_mtl_check_gram(K, M, "diagnostics", err);
    if (st) return st;
    if (!out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "diagnostics: output is NULL");
    loom_mtl_diag d;
    memset(&d, 0, sizeof d);
    d.K = K;
    double nmax = 0, nmin = INFINITY;
    for (int i = 0; i < K; i++) {
        d.norm[i] = sqrt(M[i * K + i]);
        d.zero[i] = !(d.norm[i] > 0);
        if (d.zero[i]) d.any_zero = 1;
        nmax = d.norm[i] > nmax ? d.norm[i] : nmax;
        nmin = d.norm[i] < nmin ? d.norm[i] : nmin;
    }
    d.norm_ratio = d.any_zero ? 0 : nmax / nmin;
    d.min_cos = 1;
    int pairs = 0, conflicts = 0;
    for (int i = 0; i < K; i++) {
        for (int j = 0; j < K; j++) {
            int zero = 0;
            double c = loom_mtl_cosine(M[i * K + i], M[i * K + j], M[j * K + j], &zero);
            double ss = M[i * K + i] + M[j * K + j];
            d.cos[i * K + j] = c;
            d.gms[i * K + j] = ss > 0 ? 2 * d.norm[i] * d.norm[j] / ss : 0;
            d.conflict[i * K + j] = c < 0;
            if (i < j) {
                pairs++;
                conflicts += c < 0;
                if (!zero && c < d.min_cos) d.min_cos = c;
            }
        }
    }
    d.conflict_share = pairs ? (double)conflicts / pairs : 0;
    if (with_mgda) {
        double alpha[MAXK];
        loom_mtl_mgda_info info;
        st = loom_mtl_mgda(K, M, LOOM_MTL_MGDA_PGD, 0, 0, alpha, &info, err);
        if (st) return st;
        d.mgda_d2 = info.d2;
    }
    *out = d;
    return LOOM_OK;
}
