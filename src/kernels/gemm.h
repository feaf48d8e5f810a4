/* gemm.h — matrix products and the bias passes around them (gemm.c; internal) */
#ifndef LOOM_GEMM_H
#define LOOM_GEMM_H

#include <stdbool.h>
#include <stddef.h>


/* C = alpha * op(A) . op(B) + beta * C, row-major; op(A) is M x K, op(B) is K x N. A large product
 * is cut into blocks of C chosen from its shape alone and shared out on loom's pool (gemm.c). */
void loom_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* z[r][0..n) = bias[0..n) (zeros when bias is NULL) for `rows` rows: the bias a product then
 * accumulates onto. Split over loom's threads by rows. */
void loom_fill_rows(float *z, const float *bias, size_t rows, int n);
/* z[r][:] += bias in place, or with relu z[r][:] = relu(z[r][:] + bias): a product's bias (and
 * ReLU) in one pass over its output. */
void loom_add_bias(float *z, const float *bias, size_t rows, int n, bool relu);
/* db[c] += sum over the rows of dz[r][c] (a bias's gradient), split over loom's threads by columns
 * (the same bits at any thread count). */
void loom_add_column_sums(float *db, const float *dz, size_t rows, int cols);
/* db[c] = (accumulate ? db[c] : 0) + scale * (the sum over rows of dz[r][c]) for a matrix whose
 * rows are `ld` floats apart; with relu_y (same layout) ReLU's backward first, in place in the same
 * pass: dz = 0 where relu_y <= 0. Split by columns, as loom_add_column_sums. */
void loom_column_sums(float *db, bool accumulate, float scale, float *dz, const float *relu_y, size_t rows, int cols,
                      int ld);
/* Plain loops with the same contract: the build without OpenBLAS, and the tests' reference. */
void loom_sgemm_portable(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
