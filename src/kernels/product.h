/* product.h — a matrix product planned once for its shape, on the backend chosen for that shape
 * (product.c; internal).
 *
 * Backends: float32 on loom_sgemm (OpenBLAS, or the portable loops) or on oneDNN's matmul;
 * bfloat16 (mixed_bfloat16) on loom's own AVX512-BF16 kernel (gemm_bf16.c) or on oneDNN's bf16
 * matmul. The choice is a table of shapes (loom_product_choose; docs/gemm_backends.md gives the
 * measurements behind it), so it never depends on a timing and a run repeats its bits; the
 * environment variable LOOM_GEMM_BACKEND (blas, dnnl or loom, read once) forces one. A call whose
 * shape is not the planned one (the last, smaller batch) runs on the default backend of its
 * dtype: loom_sgemm in float32, loom's kernel in bfloat16. */
#ifndef LOOM_PRODUCT_H
#define LOOM_PRODUCT_H

/* The table (docs/gemm_backends.md): oneDNN for a product whose every side is at least
 * LOOM_DNNL_MIN_SIDE and which makes at least LOOM_DNNL_MIN_FLOPS operations, in both dtypes. It
 * never depends on the thread count, so that any thread count gives the same bits. */
#define LOOM_DNNL_MIN_SIDE 64
#define LOOM_DNNL_MIN_FLOPS 1.6e7

#include "kernels/gemm_dnnl.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    LOOM_BACKEND_DEFAULT = 0, /* loom_sgemm in float32, loom_gemm_bf16 in bfloat16 */
    LOOM_BACKEND_DNNL = 1,
} loom_backend;

/* A product as a layer declares it at plan time, alpha included (a call with another alpha runs on
 * the default backend). beta: 0 (C is overwritten), 1 (C accumulates) or
 * -1 (either, decided per call: both are planned). */
typedef struct loom_product_shape {
    bool bf16, ta, tb;
    int M, N, K, lda, ldb, ldc;
    float alpha;
    int beta;
    bool bf16_blocked; /* the layer runs the calls oneDNN does not take in blocks of its own, with
                          their own workspace (Dense), so the product needs no whole-product one */
} loom_product_shape;

typedef struct loom_product {
    loom_product_shape s;
    loom_backend backend;
    loom_dnnl_matmul *mm[2]; /* oneDNN: [0] overwrites C, [1] accumulates */
} loom_product;

/* The backend the table gives this shape (LOOM_GEMM_BACKEND first). */
loom_backend loom_product_choose(const loom_product_shape *s);
/* Tests: force a backend for the products planned from now on (-1: back to the table). */
void loom_product_force_backend(int backend);
/* Plans p for s (the chosen backend's primitives made now). When oneDNN cannot make it, p falls
 * back to the default backend; false only when out of memory. */
bool loom_product_plan(loom_product *p, const loom_product_shape *s);
/* floats of workspace the planned product needs at a call */
size_t loom_product_workspace(const loom_product *p);
void loom_product_release(loom_product *p);
/* Whether a call of this shape runs on oneDNN's primitives planned in p (p may be NULL). */
bool loom_product_planned_call(const loom_product *p, bool bf16, bool ta, bool tb, int M, int N, int K, float alpha,
                               int lda, int ldb, float beta, int ldc);
/* C = alpha op(A) op(B) + beta C, on p's backend when the call is p's shape (p may be NULL);
 * workspace: at least loom_product_workspace(p), and, in bfloat16, loom_gemm_bf16_workspace of
 * the call's shape. */
void loom_product_run(const loom_product *p, bool bf16, bool ta, bool tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                      float *workspace);
/* "blas", "dnnl" or "loom" (the bfloat16 kernel): what runs a planned product */
const char *loom_product_backend_name(const loom_product *p);

#endif
