/* gemm_bf16.h — the bfloat16 matrix product of the mixed_bfloat16 policy (gemm_bf16.c; internal).
 *
 * C = alpha * op(A) . op(B) + beta * C with A and B given in float32 and rounded to bfloat16
 * (round to nearest even, as VCVTNE2PS2BF16), products accumulated in float32. On a CPU with
 * AVX512-BF16 the products run on VDPBF16PS; elsewhere plain loops do the same operations in the
 * same order on the same bfloat16 values (a product of two bfloat16 numbers is exact in float32, so
 * only the order of the float32 additions could differ, and it does not). beta == 0 does not read
 * C. The operands are packed to bfloat16 into a caller's workspace, so the product allocates
 * nothing. Every element of C is made by one thread in a fixed order: the same bits at any
 * thread count. */
#ifndef LOOM_GEMM_BF16_H
#define LOOM_GEMM_BF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tests set it to run the portable loops on a CPU that has AVX512-BF16. */
extern bool loom_bf16_off;
/* true when loom is told to ignore AVX512-BF16: loom_bf16_off, or LOOM_IGNORE_AVX512BF16 set in
 * the environment (the build switch of the same name starts loom_bf16_off true) */
bool loom_bf16_ignored(void);
/* true when this CPU runs the bfloat16 instructions and loom is not told to ignore them */
bool loom_bf16_hw(void);
/* true when the CPU has AVX512-BF16, whatever loom_bf16_off says */
bool loom_bf16_cpu(void);

/* float32 -> bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
uint16_t loom_bf16_round(float x);
static inline float loom_bf16_float(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}

/* dst[0..n) = loom_bf16_round(src[0..n)), on the CPU's conversion where it has one (same bits). */
void loom_bf16_round_row(const float *src, int n, uint16_t *dst);

/* Floats of workspace loom_gemm_bf16 needs for an M x N x K product (0 for an empty one). */
size_t loom_gemm_bf16_workspace(int M, int N, int K);
void loom_gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, float *workspace);

#endif
