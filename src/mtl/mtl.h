/* mtl.h — the numerical core of multi-task loss balancing (spec: multi-task-balancing.md).
 *
 * Every method is a pure function of a few numbers: the Gram matrix M of the per-task shared
 * gradients (K x K, row-major, M_ij = g_i . g_j), the per-task losses and the method's state.
 * Gradient methods return a coefficient vector c so that the shared update is sum_j c_j g_j;
 * loom_mtl_combine() forms that update from stored vectors, or the engine backpropagates
 * sum_j c_j L_j once more on the same tape (equal by linearity).
 *
 * Conventions
 *   - K is 1..LOOM_MTL_MAX_TASKS. Work arrays live on the stack: nothing here allocates.
 *   - Doubles throughout; gradient vectors themselves are float32 (K x P, one task after another).
 *   - Functions that can fail return a loom_status and describe the fault in *err (err may be
 *     NULL). On failure the outputs are left untouched unless stated otherwise.
 *   - Output arrays may alias input arrays of the same length unless stated otherwise.
 *   - Task indices are 0-based.
 */
#ifndef LOOM_MTL_H
#define LOOM_MTL_H

#include "base/base.h"

#include <stddef.h>
#include <stdint.h>

#define LOOM_MTL_MAX_TASKS 16
#define LOOM_MTL_MAX_PIECES 16 /* boundaries of a piecewise schedule */

/* ================================================================ shared building blocks */

/* M = G G^T for K vectors of length P stored one after another in G (K x P floats); double
 * accumulation, M filled symmetrically. */
loom_status loom_mtl_gram(int K, size_t P, const float *G, double *M, loom_error *err);

/* out[p] = sum_j c_j G[j][p]: the shared update from stored vectors (double accumulation).
 * out must not overlap G. */
loom_status loom_mtl_combine(int K, size_t P, const float *G, const double *c, float *out,
                             loom_error *err);

/* Checks that M is a usable Gram matrix: K in range, entries finite, diagonal >= 0. The solvers
 * call it; exposed for callers that build M themselves. */
loom_status loom_mtl_check_gram(int K, const double *M, const char *who, loom_error *err);

/* K in 1..LOOM_MTL_MAX_TASKS, and the K values of v finite; messages name `who` and `what`. */
loom_status loom_mtl_check_tasks(int K, const char *who, loom_error *err);
loom_status loom_mtl_check_finite(int K, const double *v, const char *who, const char *what, loom_error *err);

/* sum_i w_i L_i: the static-weight total (spec section 2). */
double loom_mtl_weighted_sum(int K, const double *w, const double *L);

/* out = sum_to * softmax(z), computed after subtracting max(z) so no entry overflows.
 * RLW uses sum_to 1 (or K, decision D1); LibMTL's GradNorm uses K * softmax(logits). */
loom_status loom_mtl_softmax(int K, const double *z, double sum_to, double *out, loom_error *err);

/* ================================================================ weight schedules (section 3) */

typedef enum loom_mtl_schedule_kind {
    LOOM_MTL_SCHEDULE_CONSTANT = 0, /* w0 */
    LOOM_MTL_SCHEDULE_LINEAR,       /* w0 -> w1 over [t0, t1], clamped outside */
    LOOM_MTL_SCHEDULE_COSINE,       /* w0 -> w1 over [t0, t1] along half a cosine */
    LOOM_MTL_SCHEDULE_EXPONENTIAL,  /* w0 * rate^(t / decay_steps), floor() when staircase */
    LOOM_MTL_SCHEDULE_PIECEWISE,    /* values[i] while t <= boundaries[i] (Keras PiecewiseConstant) */
    LOOM_MTL_SCHEDULE_RAMPUP        /* w1 * exp(-5 (1 - clamp(t, 0, L)/L)^2); w1 when L = 0 */
} loom_mtl_schedule_kind;

/* A weight as a function of the global step (or epoch) t. Stateless: resuming at step t gives
 * the same w(t). Fill it with one of the constructors below. */
typedef struct loom_mtl_schedule {
    loom_mtl_schedule_kind kind;
    double w0, w1;          /* start and end weight (rampup: w1 is w_max) */
    double t0, t1;          /* linear/cosine window */
    double rate;            /* exponential: gamma */
    double decay_steps;     /* exponential: > 0 */
    int staircase;          /* exponential: floor the exponent */
    double length;          /* rampup: L >= 0 */
    int n_boundaries;       /* piecewise: 1..LOOM_MTL_MAX_PIECES, increasing */
    double boundaries[LOOM_MTL_MAX_PIECES];
    double values[LOOM_MTL_MAX_PIECES + 1];
} loom_mtl_schedule;

loom_mtl_schedule loom_mtl_schedule_constant(double w0);
/* t1 == t0 makes a step: w0 before t0, w1 from t0 on. */
loom_mtl_schedule loom_mtl_schedule_linear(double w0, double w1, double t0, double t1);
loom_mtl_schedule loom_mtl_schedule_cosine(double w0, double w1, double t0, double t1);
loom_mtl_schedule loom_mtl_schedule_exponential(double w0, double rate, double decay_steps,
                                                int staircase);
/* n boundaries, n + 1 values. Fails (and fills nothing) on a bad count or unsorted boundaries. */
loom_status loom_mtl_schedule_piecewise(int n, const double *boundaries, const double *values,
                                        loom_mtl_schedule *out, loom_error *err);
/* Laine & Aila's sigmoid ramp-up to w_max over L steps. */
loom_mtl_schedule loom_mtl_schedule_rampup(double w_max, double length);

/* Validates parameters a hand-filled struct might get wrong (unknown kind, decay_steps <= 0,
 * L < 0, non-finite numbers, unsorted boundaries). */
loom_status loom_mtl_schedule_check(const loom_mtl_schedule *s, loom_error *err);
/* w(t). Defined for every struct that passes loom_mtl_schedule_check(). */
double loom_mtl_schedule_value(const loom_mtl_schedule *s, double t);

/* ================================================================ uncertainty weighting (section 4) */

typedef enum loom_mtl_uw_kind {
    LOOM_MTL_UW_REGRESSION = 0, /* 1/2 e^{-s} L + s/2 */
    LOOM_MTL_UW_CLASSIFICATION  /*     e^{-s} L + s/2 */
} loom_mtl_uw_kind;

/* total = sum_i (a_i exp(-s_i) L_i + s_i/2), a_i = 1/2 (regression) or 1 (classification).
 * kind NULL means regression for every task (what LibMTL, MTAN and nash-mtl ship).
 * dtotal_ds[i] = 1/2 - a_i exp(-s_i) L_i; weight[i] = a_i exp(-s_i) = d total / d L_i, the
 * effective loss weight. Both optional (NULL). A negative total is correct: s is not clamped. */
loom_status loom_mtl_uw(int K, const double *L, const double *s, const loom_mtl_uw_kind *kind,
                        double *total, double *dtotal_ds, double *weight, loom_error *err);

/* ================================================================ GradNorm (section 5) */

/* Intermediate values of one GradNorm step, for logging and tests. */
typedef struct loom_mtl_gradnorm_info {
    double r[LOOM_MTL_MAX_TASKS];      /* relative inverse training rates */
    double target[LOOM_MTL_MAX_TASKS]; /* Gbar * r_i^alpha, held constant */
    double dw[LOOM_MTL_MAX_TASKS];     /* d L_grad / d w_i = n_i sign(G_i - target_i) */
    double w_raw[LOOM_MTL_MAX_TASKS];  /* w - lr dw, before clamping and renormalising */
    double L_grad;                     /* sum_i |G_i - target_i| */
} loom_mtl_gradnorm_info;

/* One SGD step of GradNorm on the task weights. w: current weights; n_i = ||grad_W L_i||;
 * L0: losses at the first step (> 0); L: current losses (>= 0). Writes the new weights to w_out
 * (may alias w): w - lr dw, clamped at eps (> 0), scaled so that sum w = K. info optional. */
loom_status loom_mtl_gradnorm_step(int K, const double *w, const double *n, const double *L0,
                                   const double *L, double alpha, double lr, double eps,
                                   double *w_out, loom_mtl_gradnorm_info *info, loom_error *err);

/* ================================================================ DWA (section 6) */

/* lambda_k = K softmax(r / T)_k, r_k = L_prev1[k] / L_prev2[k], from the epoch-mean unweighted
 * losses of epochs e-1 (L_prev1) and e-2 (L_prev2). epoch 0 and 1: lambda = 1 (the loss arrays
 * are then not read and may be NULL). T > 0; T = INFINITY gives 1. nash-mtl's step variant is
 * the same call with window means in place of epoch means. */
loom_status loom_mtl_dwa(int K, int epoch, const double *L_prev1, const double *L_prev2, double T,
                         double *lambda, loom_error *err);

/* ================================================================ RLW (section 7) */

/* z_i ~ N(0, 1) from loom's counter RNG: z_i = loom_normal(key, step * MAX_TASKS + i), so the
 * draw depends only on (key, step) and is reproducible after a resume. */
void loom_mtl_rlw_draw(int K, uint64_t key, uint64_t step, double *z);
/* lambda = sum_to * softmax(z) for z drawn as above (sum_to 1 as in the references, or K). */
loom_status loom_mtl_rlw(int K, uint64_t key, uint64_t step, double sum_to, double *lambda,
                         loom_error *err);

/* ================================================================ PCGrad (section 8) */

typedef enum loom_mtl_reduction {
    LOOM_MTL_REDUCE_SUM = 0, /* the paper, official code, LibMTL, nash-mtl */
    LOOM_MTL_REDUCE_MEAN     /* Pytorch-PCGrad */
} loom_mtl_reduction;

/* PCGrad in coefficient form on M. perm: K rows of K-1 task indices, row i the order in which
 * g_i is projected against the other tasks (each j != i exactly once); NULL means ascending
 * order (the official TF code, whose shuffle is discarded). Projection always uses the ORIGINAL
 * g_j, with eps 1e-8 in the denominator. C (K x K, optional) gets row i = the coefficients of
 * the projected g_i, so g_i^PC = sum_k C_ik g_k; c_j = sum_i C_ij (divided by K for mean). */
loom_status loom_mtl_pcgrad(int K, const double *M, const int *perm, loom_mtl_reduction red,
                            double *C, double *c, loom_error *err);
/* Per-task random orders (Fisher-Yates on loom_hash64(key, ...)), K rows of K-1, depending only
 * on (key, step). */
void loom_mtl_pcgrad_permutations(int K, uint64_t key, uint64_t step, int *perm);
/* loom_mtl_pcgrad with the orders drawn by loom_mtl_pcgrad_permutations(key, step). */
loom_status loom_mtl_pcgrad_random(int K, const double *M, uint64_t key, uint64_t step,
                                   loom_mtl_reduction red, double *C, double *c, loom_error *err);

/* ================================================================ MGDA (section 9) */

typedef enum loom_mtl_mgda_norm {
    LOOM_MTL_MGDA_NORM_NONE = 0, /* n_i = 1 (LibMTL default) */
    LOOM_MTL_MGDA_NORM_L2,       /* n_i = ||g_i|| */
    LOOM_MTL_MGDA_NORM_LOSS,     /* n_i = L_i */
    LOOM_MTL_MGDA_NORM_LOSS_PLUS /* n_i = L_i ||g_i|| (official CelebA config) */
} loom_mtl_mgda_norm;

typedef enum loom_mtl_mgda_solver {
    LOOM_MTL_MGDA_PGD = 0,     /* official: best pair, then projected gradient + line search */
    LOOM_MTL_MGDA_FRANK_WOLFE  /* from uniform, Frank-Wolfe with exact line search */
} loom_mtl_mgda_solver;

/* The 2-vector min-norm problem: returns gamma, the weight on g1 of min ||gamma g1 + (1-gamma) g2||,
 * and writes the squared norm to *cost (optional). Paper convention: exactly 1 when
 * v12 >= v11 and exactly 0 when v12 >= v22 (the official code uses 0.999 / 0.001). */
double loom_mtl_mgda_pair(double v11, double v12, double v22, double *cost);

/* Mn_ij = M_ij / (n_i n_j) with n as chosen (losses needed for LOSS and LOSS_PLUS, else may be
 * NULL); scale (optional) gets n. A task with a zero gradient keeps n_i = 1 (its row is zero
 * anyway); a zero or negative loss with a non-zero gradient is an error.
 * To write LibMTL's normalised update sum_i alpha_i g_i/n_i use c_i = alpha_i / n_i; the official
 * code backpropagates sum_i alpha_i L_i (c = alpha). */
loom_status loom_mtl_mgda_normalize(int K, const double *M, const double *losses,
                                    loom_mtl_mgda_norm norm, double *Mn, double *scale,
                                    loom_error *err);

typedef struct loom_mtl_mgda_info {
    double d2;     /* ||d||^2 = alpha^T M alpha; ~0 means Pareto-stationary */
    int iters;     /* iterations of the iterative solver (0 for K <= 2) */
    int polished;  /* 1 when the exact refinement verified the KKT conditions */
} loom_mtl_mgda_info;

/* alpha = argmin over the simplex of alpha^T M alpha. K = 1: 1. K = 2: closed form
 * (loom_mtl_mgda_pair). K >= 3: the chosen iterative solver (max_iter <= 0: 250; tol <= 0: 1e-5,
 * on the L1 change of alpha), then an exact refinement: Wolfe's min-norm-point algorithm (a
 * finite active-set method on M) replaces the iterate when its result passes the KKT check
 * g_i . d >= ||d||^2 (relative 1e-12); otherwise the iterate is kept (info->polished = 0).
 * alpha is always on the simplex. info optional. */
loom_status loom_mtl_mgda(int K, const double *M, loom_mtl_mgda_solver solver, int max_iter,
                          double tol, double *alpha, loom_mtl_mgda_info *info, loom_error *err);

/* MGDA-UB: the Gram of u_i = dL_i/dz, U holds K blocks of B x d floats. per_sample 1: the whole
 * B x d tensor is the vector (the paper's bound); 0: each u_i is summed over the batch first
 * (LibMTL's rep_grad mode, a different problem). */
loom_status loom_mtl_mgda_ub_gram(int K, int B, int d, const float *U, int per_sample, double *M,
                                  loom_error *err);

/* ================================================================ CAGrad (section 10) */

typedef struct loom_mtl_cagrad_info {
    double w[LOOM_MTL_MAX_TASKS]; /* dual weights on the simplex */
    double lambda;                /* cc / (||g_w|| + 1e-8) */
    double g0_norm;               /* sqrt(mean(M) + 1e-8) */
    double F;                     /* dual objective at w */
    int iters;
} loom_mtl_cagrad_info;

/* CAGrad coefficients: w = argmin over the simplex of w^T M 1/K + cc sqrt(w^T M w + 1e-8),
 * cc = calpha g0_norm + 1e-8. K = 2: golden-section to 1e-12 in w_0. K > 2: accelerated projected
 * gradient (FISTA, backtracking, restart) finished by Newton steps on the optimal face, until the
 * Frank-Wolfe gap (a bound on F(w) - F*) is below 1e-14 (1 + |F|) — far tighter than the
 * reference SLSQP (ftol 1e-6); at most 20000 iterations. lambda = cc/(||g_w|| + 1e-8),
 * c_j = (1/K + lambda w_j) / r with r = 1, 1 + calpha^2, 1 + calpha for rescale 0, 1, 2.
 * calpha in [0, 1). The official NYUv2 code and nash-mtl multiply c by K; LibMTL does not. */
loom_status loom_mtl_cagrad(int K, const double *M, double calpha, int rescale, double *c,
                            loom_mtl_cagrad_info *info, loom_error *err);

/* ================================================================ Nash-MTL (section 11) */

typedef struct loom_mtl_nash_info {
    int iters;       /* Newton iterations taken */
    double residual; /* ||alpha o (M alpha) - 1||_2 at the end */
} loom_mtl_nash_info;

/* Nash bargaining weights: alpha > 0 with alpha_i (M alpha)_i = 1, the minimiser of
 * f(a) = 1/2 a^T M a - sum log a_i, by damped Newton from a_i = 1/sqrt(M_ii) with backtracking
 * that keeps a > 0 (max_iter <= 0: 100; tol <= 0: 1e-10 on the residual). The solution exists
 * iff 0 is not in the convex hull of the g_i; when it does not (e.g. g2 = -g1, or a zero
 * gradient) or the residual check fails, returns LOOM_ERR_DATA and leaves alpha untouched, so the
 * caller keeps its previous alpha. Never writes NaN. info optional (filled on failure too). */
loom_status loom_mtl_nash(int K, const double *M, int max_iter, double tol, double *alpha,
                          loom_mtl_nash_info *info, loom_error *err);

/* Gradient-norm clipping (torch clip_grad_norm_ without its 1e-6): if ||g|| > max_norm, scale g
 * to norm max_norm. Returns the norm before clipping. */
double loom_mtl_clip_norm(float *g, size_t n, double max_norm);
/* The same on coefficients: ||sum c_j g_j||^2 = c^T M c; scales c in place. Returns the norm
 * before clipping. */
double loom_mtl_clip_coeffs(int K, const double *M, double *c, double max_norm);

/* ================================================================ diagnostics (section 12) */

typedef struct loom_mtl_diag {
    int K;
    double norm[LOOM_MTL_MAX_TASKS];                       /* ||g_i|| */
    unsigned char zero[LOOM_MTL_MAX_TASKS];                /* 1: g_i is the zero vector */
    double cos[LOOM_MTL_MAX_TASKS * LOOM_MTL_MAX_TASKS];   /* 0 where either vector is zero */
    double gms[LOOM_MTL_MAX_TASKS * LOOM_MTL_MAX_TASKS];   /* 2|gi||gj|/(|gi|^2+|gj|^2); 0 if both zero */
    unsigned char conflict[LOOM_MTL_MAX_TASKS * LOOM_MTL_MAX_TASKS]; /* cos_ij < 0 */
    double conflict_share; /* conflicting pairs / (K(K-1)/2); 0 when K = 1 */
    double min_cos;        /* over pairs i < j of non-zero vectors; 1 when there are none */
    double norm_ratio;     /* max/min ||g_i||; 0 when some g_i is zero */
    int any_zero;          /* some g_i is zero: its cosines are 0, not NaN */
    double mgda_d2;        /* MGDA ||d||^2 when asked for, else 0 */
} loom_mtl_diag;

/* Cosine of a pair from Gram entries; 0 and *zero = 1 when either norm is zero. */
double loom_mtl_cosine(double mii, double mij, double mjj, int *zero);

/* Every diagnostic of section 12 from M; with_mgda also solves MGDA for ||d||^2. */
loom_status loom_mtl_diagnostics(int K, const double *M, int with_mgda, loom_mtl_diag *out,
                                 loom_error *err);

#endif
