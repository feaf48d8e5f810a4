/* mtl_gradient.c — gradient-combination methods as pure functions of the Gram matrix M:
 * PCGrad, MGDA (and MGDA-UB's Gram), CAGrad, Nash-MTL, and norm clipping. Each returns coefficients c with shared update sum_j c_j g_j.
 * Spec: multi-task-balancing.md sections 0 and 8-11. No allocation: K <= 16 lives on the stack. */
#include "mtl/mtl.h"

#include <math.h>
#include <string.h>

#define MAXK LOOM_MTL_MAX_TASKS

/* ---------------------------------------------------------------- small helpers */

static double quad(int K, const double *M, const double *x, const double *y) {
    double s = 0;
    for (int i = 0; i < K; i++) {
        double row = 0;
        for (int j = 0; j < K; j++) row += M[i * K + j] * y[j];
        s += x[i] * row;
    }
    return s;
}

static void matvec(int K, const double *M, const double *x, double *y) {
    for (int i = 0; i < K; i++) {
        double s = 0;
        for (int j = 0; j < K; j++) s += M[i * K + j] * x[j];
        y[i] = s;
    }
}

/* Euclidean projection onto the simplex by sorting (the official MGDA solver's
 * _projection2simplex): subtract the threshold at which the sorted prefix sums exceed 1. */
static void project_simplex(int K, const double *y, double *out) {
    double s[MAXK];
    memcpy(s, y, sizeof(double) * (size_t)K);
    for (int i = 1; i < K; i++) { /* insertion sort, descending */
        double v = s[i];
        int j = i - 1;
        while (j >= 0 && s[j] < v) {
            s[j + 1] = s[j];
            j--;
        }
        s[j + 1] = v;
    }
    double total = 0;
    for (int i = 0; i < K; i++) total += y[i];
    double theta = (total - 1.0) / K, prefix = 0;
    for (int i = 0; i < K - 1; i++) {
        prefix += s[i];
        double t = (prefix - 1.0) / (i + 1);
        if (t > s[i + 1]) {
            theta = t;
            break;
        }
    }
    for (int i = 0; i < K; i++) out[i] = y[i] - theta > 0 ? y[i] - theta : 0;
}

/* ---------------------------------------------------------------- PCGrad */

loom_status loom_mtl_pcgrad(int K, const double *M, const int *perm, loom_mtl_reduction red,
                            double *C, double *c, loom_error *err) {
    loom_status st = loom_mtl_check_gram(K, M, "PCGrad", err);
    if (st) return st;
    if (!c) return loom_set_error(err, LOOM_ERR_ARGUMENT, "PCGrad: output is NULL");
    if (red != LOOM_MTL_REDUCE_SUM && red != LOOM_MTL_REDUCE_MEAN)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "PCGrad: unknown reduction %d", (int)red);
    int order[MAXK * MAXK];
    for (int i = 0; i < K; i++) {
        int seen[MAXK] = {0};
        for (int m = 0, j = 0; m < K - 1; m++, j++) {
            if (!perm && j == i) j++;
            int o = perm ? perm[i * (K - 1) + m] : j;
            if (o < 0 || o >= K || o == i || seen[o])
                return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                      "PCGrad: order of task %d is not a permutation of the other "
                                      "tasks (entry %d is %d)", i, m, o);
            seen[o] = 1;
            order[i * (K - 1) + m] = o;
        }
    }
    double Cm[MAXK * MAXK] = {0};
    for (int i = 0; i < K; i++) Cm[i * K + i] = 1;
    for (int i = 0; i < K; i++) {
        for (int m = 0; m < K - 1; m++) {
            int j = order[i * (K - 1) + m];
            double d = 0; /* g_i^PC . g_j, with g_j the original gradient */
            for (int k = 0; k < K; k++) d += Cm[i * K + k] * M[k * K + j];
            if (d < 0) Cm[i * K + j] -= d / (M[j * K + j] + 1e-8);
        }
    }
    double scale = red == LOOM_MTL_REDUCE_MEAN ? 1.0 / K : 1.0;
    for (int j = 0; j < K; j++) {
        double s = 0;
        for (int i = 0; i < K; i++) s += Cm[i * K + j];
        c[j] = s * scale;
    }
    if (C) memcpy(C, Cm, sizeof(double) * (size_t)(K * K));
    return LOOM_OK;
}

void loom_mtl_pcgrad_permutations(int K, uint64_t key, uint64_t step, int *perm) {
    for (int i = 0; i < K; i++) {
        int *row = perm + i * (K - 1);
        for (int m = 0, j = 0; j < K; j++)
            if (j != i) row[m++] = j;
        for (int m = K - 2; m > 0; m--) { /* Fisher-Yates; the counter names (step, i, m) */
            uint64_t h = loom_hash64(key, (step * MAXK + (uint64_t)i) * MAXK + (uint64_t)m);
            int r = (int)(((h >> 32) * (uint64_t)(m + 1)) >> 32);
            int t = row[m];
            row[m] = row[r];
            row[r] = t;
        }
    }
}

loom_status loom_mtl_pcgrad_random(int K, const double *M, uint64_t key, uint64_t step,
                                   loom_mtl_reduction red, double *C, double *c, loom_error *err) {
    if (K < 1 || K > MAXK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "PCGrad: %d tasks, expected 1..%d", K, MAXK);
    int perm[MAXK * MAXK];
    loom_mtl_pcgrad_permutations(K, key, step, perm);
    return loom_mtl_pcgrad(K, M, perm, red, C, c, err);
}

/* ---------------------------------------------------------------- MGDA */

double loom_mtl_mgda_pair(double v11, double v12, double v22, double *cost) {
    double gamma, f;
    if (v12 >= v11) {
        gamma = 1, f = v11;
    } else if (v12 >= v22) {
        gamma = 0, f = v22;
    } else {
        gamma = (v22 - v12) / (v11 + v22 - 2 * v12);
        f = v22 + gamma * (v12 - v22);
    }
    if (cost) *cost = f;
    return gamma;
}

loom_status loom_mtl_mgda_normalize(int K, const double *M, const double *losses,
                                    loom_mtl_mgda_norm norm, double *Mn, double *scale,
                                    loom_error *err) {
    loom_status st = loom_mtl_check_gram(K, M, "MGDA normalisation", err);
    if (st) return st;
    if (!Mn) return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA normalisation: output is NULL");
    int need_loss = norm == LOOM_MTL_MGDA_NORM_LOSS || norm == LOOM_MTL_MGDA_NORM_LOSS_PLUS;
    if (norm < LOOM_MTL_MGDA_NORM_NONE || norm > LOOM_MTL_MGDA_NORM_LOSS_PLUS)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA normalisation: unknown kind %d", (int)norm);
    if (need_loss && !losses)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA normalisation: losses are NULL");
    double n[MAXK];
    for (int i = 0; i < K; i++) {
        double gn = sqrt(M[i * K + i]);
        switch (norm) {
        case LOOM_MTL_MGDA_NORM_NONE: n[i] = 1; break;
        case LOOM_MTL_MGDA_NORM_L2: n[i] = gn; break;
        case LOOM_MTL_MGDA_NORM_LOSS: n[i] = losses[i]; break;
        case LOOM_MTL_MGDA_NORM_LOSS_PLUS: n[i] = losses[i] * gn; break;
        }
        if (gn == 0) {
            n[i] = 1; /* a zero gradient stays zero whatever it is divided by */
        } else if (!(n[i] > 0) || !isfinite(n[i])) {
            return loom_set_error(err, LOOM_ERR_DATA,
                                  "MGDA normalisation: task %d has norm %g (loss %g), need > 0", i,
                                  n[i], losses ? losses[i] : 0.0);
        }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) Mn[i * K + j] = M[i * K + j] / (n[i] * n[j]);
    if (scale) memcpy(scale, n, sizeof(double) * (size_t)K);
    return LOOM_OK;
}

/* Solves the bordered system [A 1; 1^T 0][x; m] = [r; e] for an n x n A (row-major), by
 * Gaussian elimination with partial pivoting. 0 if (numerically) singular. */
static int bordered_solve(int n, const double *A, const double *r, double e, double *x) {
    double T[MAXK + 1][MAXK + 2];
    int N = n + 1;
    for (int a = 0; a < n; a++) {
        for (int b = 0; b < n; b++) T[a][b] = A[a * n + b];
        T[a][n] = 1;
        T[a][N] = r[a];
    }
    for (int b = 0; b < n; b++) T[n][b] = 1;
    T[n][n] = 0;
    T[n][N] = e;
    for (int col = 0; col < N; col++) {
        int piv = col;
        for (int row = col + 1; row < N; row++)
            if (fabs(T[row][col]) > fabs(T[piv][col])) piv = row;
        if (fabs(T[piv][col]) < 1e-12) return 0;
        if (piv != col)
            for (int k = 0; k <= N; k++) {
                double t = T[col][k];
                T[col][k] = T[piv][k];
                T[piv][k] = t;
            }
        for (int row = col + 1; row < N; row++) {
            double f = T[row][col] / T[col][col];
            for (int k = col; k <= N; k++) T[row][k] -= f * T[col][k];
        }
    }
    double sol[MAXK + 1];
    for (int row = N - 1; row >= 0; row--) {
        double v = T[row][N];
        for (int k = row + 1; k < N; k++) v -= T[row][k] * sol[k];
        sol[row] = v / T[row][row];
    }
    memcpy(x, sol, sizeof(double) * (size_t)n);
    return 1;
}

/* min a^T M a subject to sum a = 1 on the support S (M_SS a = mu 1), scattered into beta. */
static int solve_on_support(int K, const double *M, const int *S, int s, double *beta) {
    double A[MAXK * MAXK], zero[MAXK] = {0}, x[MAXK];
    for (int a = 0; a < s; a++)
        for (int b = 0; b < s; b++) A[a * s + b] = M[S[a] * K + S[b]];
    if (!bordered_solve(s, A, zero, 1, x)) return 0;
    for (int i = 0; i < K; i++) beta[i] = 0;
    for (int a = 0; a < s; a++) beta[S[a]] = x[a];
    return 1;
}

/* Exact refinement: Wolfe's (1976) min-norm-point algorithm in Gram form. The "corral" S stays
 * affinely independent (a task joins only when g_j . x < ||x||^2, so g_j is off aff(S)), which
 * keeps the bordered systems nonsingular even with more tasks than dimensions. M is scaled to max
 * diagonal 1 by the caller, so the tolerances are relative. Writes alpha only when the result
 * passes the KKT check (g_i . d >= ||d||^2 - tol for all i). */
static int mgda_polish(int K, const double *M, double *alpha) {
    const double tol = 1e-12;
    int in[MAXK] = {0}, S[MAXK], s;
    double lam[MAXK] = {0}, mu[MAXK], Ml[MAXK];
    int start = 0;
    for (int i = 1; i < K; i++)
        if (M[i * K + i] < M[start * K + start]) start = i;
    in[start] = 1;
    lam[start] = 1;
    for (int major = 0; major < 4 * K + 8; major++) {
        matvec(K, M, lam, Ml);
        double q = 0;
        for (int i = 0; i < K; i++) q += lam[i] * Ml[i];
        int j = 0;
        for (int i = 1; i < K; i++)
            if (Ml[i] < Ml[j]) j = i;
        if (Ml[j] >= q - tol) { /* KKT holds: lam is the minimum-norm point */
            memcpy(alpha, lam, sizeof(double) * (size_t)K);
            return 1;
        }
        if (in[j]) return 0; /* rounding: the best direction is already in the corral */
        in[j] = 1;
        for (int minor = 0; minor <= K; minor++) {
            s = 0;
            for (int i = 0; i < K; i++)
                if (in[i]) S[s++] = i;
            if (!solve_on_support(K, M, S, s, mu)) return 0;
            int all_pos = 1;
            for (int a = 0; a < s; a++) all_pos &= mu[S[a]] > 1e-15;
            if (all_pos) {
                memcpy(lam, mu, sizeof lam);
                break;
            }
            /* move from lam towards mu until the first weight hits zero, drop it */
            double theta = 1;
            for (int a = 0; a < s; a++) {
                int i = S[a];
                if (mu[i] <= 1e-15 && lam[i] - mu[i] > 0) {
                    double t = lam[i] / (lam[i] - mu[i]);
                    theta = t < theta ? t : theta;
                }
            }
            double sum = 0;
            for (int a = 0; a < s; a++) {
                int i = S[a];
                lam[i] += theta * (mu[i] - lam[i]);
                if (lam[i] <= 1e-15) lam[i] = 0, in[i] = 0;
                sum += lam[i];
            }
            if (!(sum > 0)) return 0;
            for (int i = 0; i < K; i++) lam[i] /= sum;
        }
    }
    return 0;
}

/* The official solver's _next_point: a projected-gradient step long enough to reach a face. */
static void mgda_next_point(int K, const double *cur, const double *grad, double *next) {
    double mean = 0;
    for (int i = 0; i < K; i++) mean += grad[i] / K;
    double pg[MAXK], t = 1;
    int have = 0;
    for (int i = 0; i < K; i++) {
        pg[i] = grad[i] - mean;
        double tm = pg[i] < 0 ? -cur[i] / pg[i] : (pg[i] > 0 ? (1.0 - cur[i]) / pg[i] : 0);
        if (pg[i] != 0 && tm > 1e-7) {
            t = have ? (tm < t ? tm : t) : tm;
            have = 1;
        }
    }
    double y[MAXK];
    for (int i = 0; i < K; i++) y[i] = cur[i] + t * pg[i];
    project_simplex(K, y, next);
}

loom_status loom_mtl_mgda(int K, const double *M, loom_mtl_mgda_solver solver, int max_iter,
                          double tol, double *alpha, loom_mtl_mgda_info *info, loom_error *err) {
    loom_status st = loom_mtl_check_gram(K, M, "MGDA", err);
    if (st) return st;
    if (!alpha) return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA: output is NULL");
    if (solver != LOOM_MTL_MGDA_PGD && solver != LOOM_MTL_MGDA_FRANK_WOLFE)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA: unknown solver %d", (int)solver);
    if (max_iter <= 0) max_iter = 250;
    if (!(tol > 0)) tol = 1e-5;

    /* alpha does not change when M is scaled; scaling to max diagonal 1 makes tolerances relative */
    double dmax = 0, Ms[MAXK * MAXK];
    for (int i = 0; i < K; i++) dmax = M[i * K + i] > dmax ? M[i * K + i] : dmax;
    double inv = dmax > 0 ? 1.0 / dmax : 1.0;
    for (int i = 0; i < K * K; i++) Ms[i] = M[i] * inv;

    double a[MAXK] = {0};
    int iters = 0, polished = 0;
    if (K == 1) {
        a[0] = 1;
    } else if (K == 2) {
        double g = loom_mtl_mgda_pair(Ms[0], Ms[1], Ms[3], NULL);
        a[0] = g, a[1] = 1 - g;
    } else {
        if (solver == LOOM_MTL_MGDA_PGD) {
            double best = INFINITY;
            for (int i = 0; i < K; i++)
                for (int j = i + 1; j < K; j++) {
                    double cost, g = loom_mtl_mgda_pair(Ms[i * K + i], Ms[i * K + j], Ms[j * K + j], &cost);
                    if (cost < best) {
                        best = cost;
                        memset(a, 0, sizeof a);
                        a[i] = g, a[j] = 1 - g;
                    }
                }
        } else {
            for (int i = 0; i < K; i++) a[i] = 1.0 / K;
        }
        for (iters = 0; iters < max_iter; iters++) {
            double Ma[MAXK] = {0}, next[MAXK];
            matvec(K, Ms, a, Ma);
            double v11 = 0;
            for (int i = 0; i < K; i++) v11 += a[i] * Ma[i];
            double v12, v22;
            if (solver == LOOM_MTL_MGDA_PGD) {
                double grad[MAXK];
                for (int i = 0; i < K; i++) grad[i] = -Ma[i];
                mgda_next_point(K, a, grad, next);
                v12 = quad(K, Ms, a, next);
                v22 = quad(K, Ms, next, next);
            } else {
                int t = 0;
                for (int i = 1; i < K; i++)
                    if (Ma[i] < Ma[t]) t = i;
                for (int i = 0; i < K; i++) next[i] = i == t;
                v12 = Ma[t];
                v22 = Ms[t * K + t];
            }
            double g = loom_mtl_mgda_pair(v11, v12, v22, NULL), change = 0, na[MAXK];
            for (int i = 0; i < K; i++) {
                na[i] = g * a[i] + (1 - g) * next[i];
                change += fabs(na[i] - a[i]);
            }
            if (change < tol) break;
            memcpy(a, na, sizeof a);
        }
        polished = mgda_polish(K, Ms, a);
    }
    for (int i = 0; i < K; i++) alpha[i] = a[i];
    if (info) {
        info->d2 = quad(K, M, a, a);
        if (info->d2 < 0) info->d2 = 0;
        info->iters = iters;
        info->polished = polished;
    }
    return LOOM_OK;
}

loom_status loom_mtl_mgda_ub_gram(int K, int B, int d, const float *U, int per_sample, double *M,
                                  loom_error *err) {
    if (B < 1 || d < 1)
        return loom_set_error(err, LOOM_ERR_SHAPE, "MGDA-UB: representation is %d x %d", B, d);
    if (per_sample) return loom_mtl_gram(K, (size_t)B * (size_t)d, U, M, err);
    if (K < 1 || K > MAXK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA-UB: %d tasks, expected 1..%d", K, MAXK);
    if (!U || !M) return loom_set_error(err, LOOM_ERR_ARGUMENT, "MGDA-UB: NULL argument");
    /* rep_grad mode: inner products of the batch sums, accumulated without a sum buffer */
    for (int i = 0; i < K; i++) {
        for (int j = i; j < K; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) {
                double si = 0, sj = 0;
                for (int b = 0; b < B; b++) {
                    si += U[((size_t)i * B + b) * d + k];
                    sj += U[((size_t)j * B + b) * d + k];
                }
                s += si * sj;
            }
            M[i * K + j] = M[j * K + i] = s;
        }
    }
    return LOOM_OK;
}

/* ---------------------------------------------------------------- CAGrad */

/* F(w) = w^T b + cc sqrt(w^T M w + 1e-8), b = M 1/K */
static double cagrad_F(int K, const double *M, const double *b, double cc, const double *w) {
    double lin = 0;
    for (int i = 0; i < K; i++) lin += w[i] * b[i];
    double q = quad(K, M, w, w);
    return lin + cc * sqrt((q > 0 ? q : 0) + 1e-8);
}

/* F and its gradient b + cc M w / sqrt(w^T M w + 1e-8) */
static double cagrad_grad(int K, const double *M, const double *b, double cc, const double *w,
                          double *grad) {
    double Mw[MAXK], q = 0, lin = 0;
    matvec(K, M, w, Mw);
    for (int i = 0; i < K; i++) {
        q += w[i] * Mw[i];
        lin += w[i] * b[i];
    }
    double root = sqrt((q > 0 ? q : 0) + 1e-8);
    for (int i = 0; i < K; i++) grad[i] = b[i] + cc * Mw[i] / root;
    return lin + cc * root;
}

/* Frank-Wolfe gap grad.w - min_i grad_i: an upper bound on F(w) - F* */
static double cagrad_gap(int K, const double *M, const double *b, double cc, const double *w) {
    double g[MAXK], gap = 0, gmin;
    cagrad_grad(K, M, b, cc, w, g);
    gmin = g[0];
    for (int i = 0; i < K; i++) {
        gap += g[i] * w[i];
        gmin = g[i] < gmin ? g[i] : gmin;
    }
    return gap - gmin;
}

/* First-order methods crawl inside the optimal face when sqrt(w^T M w) is small; once FISTA has
 * found the support, equality-constrained Newton steps on that face (Hessian
 * cc (M/r - M w w^T M / r^3), r = sqrt(w^T M w + 1e-8)) finish the job. A step is kept only if
 * it stays on the simplex and shrinks the Frank-Wolfe gap. */
static void cagrad_newton(int K, const double *M, const double *b, double cc, double *w) {
    double gap = cagrad_gap(K, M, b, cc, w);
    for (int it = 0; it < 30 && gap > 0; it++) {
        int S[MAXK], s = 0;
        for (int i = 0; i < K; i++)
            if (w[i] > 0) S[s++] = i;
        if (s < 2) return;
        double g[MAXK], Mw[MAXK], q = 0;
        cagrad_grad(K, M, b, cc, w, g);
        matvec(K, M, w, Mw);
        for (int i = 0; i < K; i++) q += w[i] * Mw[i];
        double r = sqrt((q > 0 ? q : 0) + 1e-8), H[MAXK * MAXK], rhs[MAXK], step[MAXK];
        for (int a = 0; a < s; a++) {
            for (int c = 0; c < s; c++)
                H[a * s + c] = cc * (M[S[a] * K + S[c]] / r - Mw[S[a]] * Mw[S[c]] / (r * r * r));
            rhs[a] = -g[S[a]];
        }
        if (!bordered_solve(s, H, rhs, 0, step)) return;
        /* a weight that would go negative leaves the face: stop there and drop it */
        double theta = 1, wn[MAXK];
        int drop = -1;
        for (int a = 0; a < s; a++)
            if (step[a] < 0 && w[S[a]] + step[a] < 0 && -w[S[a]] / step[a] < theta)
                theta = -w[S[a]] / step[a], drop = S[a];
        memcpy(wn, w, sizeof wn);
        for (int a = 0; a < s; a++) wn[S[a]] += theta * step[a];
        if (drop >= 0) wn[drop] = 0;
        double sum = 0;
        for (int i = 0; i < K; i++) sum += wn[i] = wn[i] > 0 ? wn[i] : 0;
        for (int i = 0; i < K; i++) wn[i] /= sum;
        double gn = cagrad_gap(K, M, b, cc, wn);
        if (!(gn < gap) && !(drop >= 0 && cagrad_F(K, M, b, cc, wn) <= cagrad_F(K, M, b, cc, w)))
            return;
        memcpy(w, wn, sizeof(double) * (size_t)K);
        gap = gn;
    }
}

loom_status loom_mtl_cagrad(int K, const double *M, double calpha, int rescale, double *c,
                            loom_mtl_cagrad_info *info, loom_error *err) {
    loom_status st = loom_mtl_check_gram(K, M, "CAGrad", err);
    if (st) return st;
    if (!c) return loom_set_error(err, LOOM_ERR_ARGUMENT, "CAGrad: output is NULL");
    if (!(calpha >= 0 && calpha < 1))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "CAGrad: c must be in [0, 1) (got %g)", calpha);
    if (rescale < 0 || rescale > 2)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "CAGrad: rescale must be 0, 1 or 2 (got %d)",
                              rescale);
    double mean = 0, b[MAXK];
    for (int i = 0; i < K; i++) {
        b[i] = 0;
        for (int j = 0; j < K; j++) b[i] += M[i * K + j] / K;
        mean += b[i] / K;
    }
    loom_mtl_cagrad_info loc;
    memset(&loc, 0, sizeof loc);
    loc.g0_norm = sqrt((mean > 0 ? mean : 0) + 1e-8);
    double cc = calpha * loc.g0_norm + 1e-8;
    double *w = loc.w;

    if (K == 1) {
        w[0] = 1;
    } else if (K == 2) {
        /* golden-section on w_0 in [0, 1]: F is convex along the segment */
        const double r = 0.6180339887498949;
        double lo = 0, hi = 1, x1 = hi - r * (hi - lo), x2 = lo + r * (hi - lo);
        double p1[2] = {x1, 1 - x1}, p2[2] = {x2, 1 - x2};
        double f1 = cagrad_F(K, M, b, cc, p1), f2 = cagrad_F(K, M, b, cc, p2);
        while (hi - lo > 1e-12 && loc.iters < 200) {
            loc.iters++;
            if (f1 <= f2) {
                hi = x2, x2 = x1, f2 = f1;
                x1 = hi - r * (hi - lo);
                p1[0] = x1, p1[1] = 1 - x1;
                f1 = cagrad_F(K, M, b, cc, p1);
            } else {
                lo = x1, x1 = x2, f1 = f2;
                x2 = lo + r * (hi - lo);
                p2[0] = x2, p2[1] = 1 - x2;
                f2 = cagrad_F(K, M, b, cc, p2);
            }
        }
        w[0] = 0.5 * (lo + hi), w[1] = 1 - w[0];
        /* the minimum may sit on an end point; the bracket only gets within 1e-12 of it */
        double e0[2] = {0, 1}, e1[2] = {1, 0}, fw = cagrad_F(K, M, b, cc, w);
        if (cagrad_F(K, M, b, cc, e0) <= fw) w[0] = 0, w[1] = 1;
        else if (cagrad_F(K, M, b, cc, e1) <= fw) w[0] = 1, w[1] = 0;
    } else {
        /* accelerated projected gradient (FISTA) with backtracking and a restart whenever F
         * would rise; stops on the Frank-Wolfe gap grad.w - min_i grad_i, which bounds F(w) - F* */
        double x[MAXK] = {0}, yv[MAXK] = {0}, gx[MAXK], t = 1, step = 1.0, fx;
        for (int i = 0; i < K; i++) x[i] = yv[i] = 1.0 / K;
        fx = cagrad_grad(K, M, b, cc, x, gx);
        for (loc.iters = 0; loc.iters < 20000; loc.iters++) {
            double gap = 0, gmin = gx[0];
            for (int i = 0; i < K; i++) {
                gap += gx[i] * x[i];
                gmin = gx[i] < gmin ? gx[i] : gmin;
            }
            if (gap - gmin <= 1e-14 * (1 + fabs(fx))) break;
            if (loc.iters % 100 == 99) { /* try to finish on the current face */
                double trial[MAXK];
                memcpy(trial, x, sizeof trial);
                cagrad_newton(K, M, b, cc, trial);
                if (cagrad_gap(K, M, b, cc, trial) <= 1e-14 * (1 + fabs(fx))) {
                    memcpy(x, trial, sizeof trial);
                    break;
                }
            }
            double gy[MAXK], xn[MAXK], z[MAXK], fy = cagrad_grad(K, M, b, cc, yv, gy), fn = fy;
            int ok = 0;
            for (int bt = 0; bt < 80 && !ok; bt++) {
                for (int i = 0; i < K; i++) z[i] = yv[i] - step * gy[i];
                project_simplex(K, z, xn);
                double lin = 0, sq = 0;
                for (int i = 0; i < K; i++) {
                    lin += gy[i] * (xn[i] - yv[i]);
                    sq += (xn[i] - yv[i]) * (xn[i] - yv[i]);
                }
                fn = cagrad_F(K, M, b, cc, xn);
                ok = fn <= fy + lin + sq / (2 * step) + 1e-15 * fabs(fy);
                if (!ok) step *= 0.5;
            }
            if (!ok) break;
            if (fn > fx) { /* momentum overshot: restart from x */
                if (t == 1) break; /* a plain gradient step from x no longer descends */
                t = 1;
                memcpy(yv, x, sizeof yv);
                continue;
            }
            double tn = 0.5 * (1 + sqrt(1 + 4 * t * t));
            for (int i = 0; i < K; i++) {
                yv[i] = xn[i] + (t - 1) / tn * (xn[i] - x[i]);
                x[i] = xn[i];
            }
            t = tn;
            fx = cagrad_grad(K, M, b, cc, x, gx);
            step *= 1.1;
        }
        cagrad_newton(K, M, b, cc, x);
        memcpy(w, x, sizeof(double) * (size_t)K);
    }
    double gw2 = quad(K, M, w, w);
    loc.F = cagrad_F(K, M, b, cc, w);
    loc.lambda = cc / (sqrt(gw2 > 0 ? gw2 : 0) + 1e-8);
    double div = rescale == 0 ? 1 : (rescale == 1 ? 1 + calpha * calpha : 1 + calpha);
    for (int j = 0; j < K; j++) c[j] = (1.0 / K + loc.lambda * w[j]) / div;
    if (info) *info = loc;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- Nash-MTL */

/* f(a) = 1/2 a^T M a - sum log a_i; +inf outside a > 0 */
static double nash_f(int K, const double *M, const double *a) {
    double s = 0.5 * quad(K, M, a, a);
    for (int i = 0; i < K; i++) {
        if (!(a[i] > 0)) return INFINITY;
        s -= log(a[i]);
    }
    return s;
}

static double nash_residual(int K, const double *M, const double *a) {
    double Ma[MAXK], r = 0;
    matvec(K, M, a, Ma);
    for (int i = 0; i < K; i++) r += (a[i] * Ma[i] - 1) * (a[i] * Ma[i] - 1);
    return sqrt(r);
}

/* Cholesky solve of H x = rhs for symmetric positive-definite H; 0 if H is not. */
static int cholesky_solve(int K, const double *H, const double *rhs, double *x) {
    double Lc[MAXK * MAXK] = {0};
    for (int i = 0; i < K; i++) {
        for (int j = 0; j <= i; j++) {
            double s = H[i * K + j];
            for (int k = 0; k < j; k++) s -= Lc[i * K + k] * Lc[j * K + k];
            if (i == j) {
                if (!(s > 0)) return 0;
                Lc[i * K + i] = sqrt(s);
            } else {
                Lc[i * K + j] = s / Lc[j * K + j];
            }
        }
    }
    double y[MAXK];
    for (int i = 0; i < K; i++) {
        double s = rhs[i];
        for (int k = 0; k < i; k++) s -= Lc[i * K + k] * y[k];
        y[i] = s / Lc[i * K + i];
    }
    for (int i = K - 1; i >= 0; i--) {
        double s = y[i];
        for (int k = i + 1; k < K; k++) s -= Lc[k * K + i] * x[k];
        x[i] = s / Lc[i * K + i];
    }
    return 1;
}

loom_status loom_mtl_nash(int K, const double *M, int max_iter, double tol, double *alpha,
                          loom_mtl_nash_info *info, loom_error *err) {
    loom_status st = loom_mtl_check_gram(K, M, "Nash-MTL", err);
    if (st) return st;
    if (!alpha) return loom_set_error(err, LOOM_ERR_ARGUMENT, "Nash-MTL: output is NULL");
    if (max_iter <= 0) max_iter = 100;
    if (!(tol > 0)) tol = 1e-10;
    if (info) info->iters = 0, info->residual = INFINITY;
    for (int i = 0; i < K; i++)
        if (!(M[i * K + i] > 0))
            return loom_set_error(err, LOOM_ERR_DATA,
                                  "Nash-MTL: gradient of task %d is zero, so 0 is in the convex hull "
                                  "of the task gradients and no bargaining solution exists", i);

    /* Solve on M / max(diag) and scale back: alpha(sM) = alpha(M)/sqrt(s), better conditioned */
    double dmax = 0, Ms[MAXK * MAXK];
    for (int i = 0; i < K; i++) dmax = M[i * K + i] > dmax ? M[i * K + i] : dmax;
    for (int i = 0; i < K * K; i++) Ms[i] = M[i] / dmax;

    double a[MAXK], res = INFINITY;
    for (int i = 0; i < K; i++) a[i] = 1.0 / sqrt(Ms[i * K + i]);
    int it = 0, ok = 0;
    for (;; it++) {
        res = nash_residual(K, Ms, a);
        if (res < tol) {
            ok = 1;
            break;
        }
        if (it >= max_iter || !isfinite(res)) break;
        double Ma[MAXK], grad[MAXK], H[MAXK * MAXK], p[MAXK], neg[MAXK];
        matvec(K, Ms, a, Ma);
        for (int i = 0; i < K; i++) {
            grad[i] = Ma[i] - 1.0 / a[i];
            neg[i] = -grad[i];
            for (int j = 0; j < K; j++) H[i * K + j] = Ms[i * K + j] + (i == j ? 1.0 / (a[i] * a[i]) : 0);
        }
        if (!cholesky_solve(K, H, neg, p)) break;
        double slope = 0;
        for (int i = 0; i < K; i++) slope += grad[i] * p[i];
        /* f is self-concordant: with Newton decrement sqrt(-slope) < 0.25 the full step stays
         * positive and converges quadratically, while Armijo's test would drown in the rounding
         * of f, so it is only applied outside that region */
        int quadratic = -slope < 0.0625;
        double f = nash_f(K, Ms, a), t = 1, an[MAXK];
        int accepted = 0;
        for (int bt = 0; bt < 60; bt++, t *= 0.5) {
            int positive = 1;
            for (int i = 0; i < K; i++) {
                an[i] = a[i] + t * p[i];
                positive &= an[i] > 0;
            }
            if (positive && (quadratic || nash_f(K, Ms, an) <= f + 1e-4 * t * slope)) {
                accepted = 1;
                break;
            }
        }
        if (!accepted) break;
        int finite = 1;
        for (int i = 0; i < K; i++) finite &= isfinite(an[i]) && an[i] < 1e150;
        if (!finite) break; /* f unbounded below: a runs off to infinity when 0 is in the hull */
        memcpy(a, an, sizeof a);
    }
    if (info) info->iters = it, info->residual = isfinite(res) ? res : INFINITY;
    if (!ok)
        return loom_set_error(err, LOOM_ERR_DATA,
                              "Nash-MTL: no solution after %d Newton steps (residual %g): 0 is in "
                              "or near the convex hull of the task gradients", it, res);
    double s = 1.0 / sqrt(dmax);
    for (int i = 0; i < K; i++) alpha[i] = a[i] * s;
    return LOOM_OK;
}

double loom_mtl_clip_norm(float *g, size_t n, double max_norm) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    double norm = sqrt(s);
    if (norm > max_norm && norm > 0) {
        double scale = max_norm / norm;
        for (size_t i = 0; i < n; i++) g[i] = (float)(g[i] * scale);
    }
    return norm;
}

double loom_mtl_clip_coeffs(int K, const double *M, double *c, double max_norm) {
    double q = quad(K, M, c, c);
    double norm = sqrt(q > 0 ? q : 0);
    if (norm > max_norm && norm > 0)
        for (int j = 0; j < K; j++) c[j] *= max_norm / norm;
    return norm;
}
