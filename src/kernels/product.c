/* product.c — planned products and the backend table (see product.h). */
#include "kernels/product.h"
#include "kernels/gemm.h"
#include "loom.h" /* loom_get_num_threads */
#include "kernels/gemm_bf16.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* LOOM_GEMM_BACKEND: -1 unset (the table decides), else the backend it forces */
static int forced = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void read_env(void) {
    const char *v = getenv("LOOM_GEMM_BACKEND");
    if (!v || !*v) return;
    if (strcmp(v, "dnnl") == 0) forced = LOOM_BACKEND_DNNL;
    else if (strcmp(v, "blas") == 0 || strcmp(v, "loom") == 0) forced = LOOM_BACKEND_DEFAULT;
}

void loom_product_force_backend(int backend) {
    pthread_once(&once, read_env);
    forced = backend;
}

/* The table (docs/gemm_backends.md has the measurements, scripts/gemm_backends.c makes them):
 * oneDNN pays a fixed cost per call (its argument map, waking its OpenMP threads: 1-2 GFLOP/s on
 * tiny's 32x64 products at 2 threads) that loom's own kernels do not, and its kernels lose on thin
 * products (N = 10), so it is chosen only for products big and square enough to repay it; there it
 * ran 1.3-2x OpenBLAS in float32 and 1.2-1.7x loom's kernel in bfloat16 (mnist-mlp's shapes). */
loom_backend loom_product_choose(const loom_product_shape *s) {
    pthread_once(&once, read_env);
    if (forced >= 0) return (loom_backend)forced;
    if (!loom_dnnl_built()) return LOOM_BACKEND_DEFAULT;
    if (s->bf16 && !loom_bf16_hw()) return LOOM_BACKEND_DEFAULT; /* oneDNN would emulate it */
    /* oneDNN runs on the calling thread (its own team fought loom's pool); in float32 OpenBLAS on
     * loom's threads is faster from 2 threads on (bench/README.md: wide 164 ms a step on oneDNN at
     * 2 threads against sgemm's 2-thread 337 GFLOP/s), so there oneDNN takes 1-thread plans only */
    if (!s->bf16 && loom_get_num_threads() > 1) return LOOM_BACKEND_DEFAULT;
    double flops = 2.0 * s->M * s->N * s->K;
    bool big = s->M >= LOOM_DNNL_MIN_SIDE && s->N >= LOOM_DNNL_MIN_SIDE && s->K >= LOOM_DNNL_MIN_SIDE &&
               flops >= LOOM_DNNL_MIN_FLOPS;
    return big ? LOOM_BACKEND_DNNL : LOOM_BACKEND_DEFAULT;
}

bool loom_product_plan(loom_product *p, const loom_product_shape *s) {
    memset(p, 0, sizeof *p);
    p->s = *s;
    p->backend = loom_product_choose(s);
    if (p->backend != LOOM_BACKEND_DNNL) return true;
    for (int acc = 0; acc < 2; acc++) {
        if (s->beta >= 0 && s->beta != acc) continue;
        p->mm[acc] = loom_dnnl_matmul_create(s->bf16, s->ta, s->tb, s->M, s->N, s->K, s->lda, s->ldb, s->ldc, s->alpha, acc);
        if (!p->mm[acc]) { /* no oneDNN implementation (or no memory): the default backend */
            loom_product_release(p);
            p->s = *s;
            return true;
        }
    }
    return true;
}

size_t loom_product_workspace(const loom_product *p) {
    size_t w = 0;
    for (int acc = 0; acc < 2; acc++)
        if (p->mm[acc]) {
            size_t a = loom_dnnl_matmul_workspace(p->mm[acc]);
            if (a > w) w = a;
        }
    if (p->s.bf16 && !p->s.bf16_blocked) {
        size_t b = loom_gemm_bf16_workspace(p->s.M, p->s.N, p->s.K);
        if (b > w) w = b;
    }
    return w;
}

void loom_product_release(loom_product *p) {
    for (int acc = 0; acc < 2; acc++) loom_dnnl_matmul_free(p->mm[acc]);
    memset(p, 0, sizeof *p);
}

bool loom_product_planned_call(const loom_product *p, bool bf16, bool ta, bool tb, int M, int N, int K, float alpha,
                               int lda, int ldb, float beta, int ldc) {
    return p && p->backend == LOOM_BACKEND_DNNL && (beta == 0.0f || beta == 1.0f) && p->mm[beta == 1.0f] &&
           p->s.bf16 == bf16 && p->s.ta == ta && p->s.tb == tb && p->s.M == M && p->s.N == N && p->s.K == K &&
           p->s.lda == lda && p->s.ldb == ldb && p->s.ldc == ldc && p->s.alpha == alpha;
}

void loom_product_run(const loom_product *p, bool bf16, bool ta, bool tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                      float *workspace) {
    if (loom_product_planned_call(p, bf16, ta, tb, M, N, K, alpha, lda, ldb, beta, ldc)) {
        loom_dnnl_matmul_run(p->mm[beta == 1.0f], A, B, C, workspace);
        return;
    }
    if (bf16)
        loom_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, workspace);
    else
        loom_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *loom_product_backend_name(const loom_product *p) {
    if (p->backend == LOOM_BACKEND_DNNL && (p->mm[0] || p->mm[1])) return "dnnl";
    return p->s.bf16 ? "loom" : "blas";
}
