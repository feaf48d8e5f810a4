/* gemm_dnnl.h — matrix products through oneDNN's matmul primitive (gemm_dnnl.c; internal).
 *
 * One loom_dnnl_matmul is one product of fixed shape and alpha, made at plan time:
 * C = alpha * op(A) . op(B) (+ C when made with accumulate), row-major, op(A) M x K and op(B) K x N.
 * (alpha is fixed because oneDNN 2.6 runs a runtime output scale on its older gemm path, which
 * allocates its own packing buffers; a fixed one keeps its brgemm kernels, whose every buffer is
 * the scratchpad.) In float32 the operands are read where they are; in bfloat16 they are
 * first rounded (to nearest even, the bits of loom_bf16_round) into the caller's workspace and the
 * products accumulate in float32. The primitive's scratchpad is the caller's workspace too, so a
 * call allocates no buffer of its own. oneDNN runs on its OpenMP threads, held to loom's thread
 * count (loom_set_num_threads) at every call: the same thread count gives the same bits.
 * Without oneDNN (LOOM_USE_DNNL off) every create returns NULL. */
#ifndef LOOM_GEMM_DNNL_H
#define LOOM_GEMM_DNNL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct loom_dnnl_matmul loom_dnnl_matmul;

/* true when loom was built with oneDNN */
bool loom_dnnl_built(void);
/* NULL when built without oneDNN, out of memory, or when oneDNN has no implementation of it (a
 * bfloat16 product on a CPU without AVX512-BF16 among them: loom never lets it emulate one). */
loom_dnnl_matmul *loom_dnnl_matmul_create(bool bf16, bool trans_a, bool trans_b, int M, int N, int K, int lda,
                                          int ldb, int ldc, float alpha, bool accumulate);
/* floats of workspace a call needs (the rounded operands and oneDNN's scratchpad) */
size_t loom_dnnl_matmul_workspace(const loom_dnnl_matmul *mm);
/* oneDNN's name for the implementation it chose ("brg:avx512_core_bf16", "gemm:jit"...) */
const char *loom_dnnl_matmul_impl(const loom_dnnl_matmul *mm);
/* workspace: loom_dnnl_matmul_workspace floats, 64-byte aligned */
void loom_dnnl_matmul_run(loom_dnnl_matmul *mm, const float *A, const float *B, float *C, float *workspace);
void loom_dnnl_matmul_free(loom_dnnl_matmul *mm);
/* calls of loom_dnnl_matmul_run so far (the tests see which products oneDNN made) */
extern unsigned long loom_dnnl_runs;

#endif
