/* rows16.h — row-wise work on narrow rows (at most 16 values: a softmax over 10 classes, its
 * crossentropy) done 16 rows at a time with AVX-512, one row per vector lane.
 *
 * Why: a row of 10 values fills 10 lanes of one vector, and every per-row step (the maximum, the
 * sum) is then a horizontal reduction, the slow direction; a scalar loop over the row is a chain of
 * dependent operations. Turned, column j of 16 rows is one vector, and the per-row maximum or sum
 * is dim - 1 plain vector operations with 16 rows in flight. The turning is a 16 x 16 transpose in
 * registers (64 shuffles), never through memory: a vector load of data that two narrower stores
 * have just written waits for them (a 32 x 10 softmax turned through the stack took 40 % longer).
 *
 * Lane i of every vector is row i, computed by exactly the operations the scalar path applies to
 * that row, so callers keep the same bits on both paths and at any split of the rows. */
#ifndef LOOM_ROWS16_H
#define LOOM_ROWS16_H

#include <stdbool.h>

/* Tests set it to run the scalar paths on a CPU that has AVX-512 (activations.c). */
extern bool loom_rows16_off;

#if defined(__x86_64__) && defined(__GNUC__)
#define LOOM_HAVE_ROWS16 1
#include <immintrin.h>
#include <stddef.h>

#define LOOM_ROWS16_TARGET __attribute__((target("avx512f")))

/* true when this CPU runs the 16-row paths */
static inline bool loom_rows16_supported(void) { return !loom_rows16_off && __builtin_cpu_supports("avx512f"); }

/* v[i] holds row i (lanes = columns) on entry and column i (lanes = rows) on exit. */
LOOM_ROWS16_TARGET static inline void loom_transpose16(__m512 v[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        v[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        v[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        v[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        v[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(v[i], v[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(v[i], v[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(v[i + 8], v[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(v[i + 8], v[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        v[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        v[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        v[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/* Columns [0, dim) of rows [0, n) of a (row stride ld), n <= 16, dim <= 16: col[j] lane i =
 * a[i][j]; lanes of missing rows and vectors of missing columns hold 0. */
LOOM_ROWS16_TARGET static inline void loom_rows16_load(const float *a, size_t ld, int dim, int n, __m512 col[16]) {
    __mmask16 m = (__mmask16)((1u << dim) - 1u);
    for (int i = 0; i < 16; i++) col[i] = i < n ? _mm512_maskz_loadu_ps(m, a + (size_t)i * ld) : _mm512_setzero_ps();
    loom_transpose16(col);
}

/* The reverse: a[i][j] = col[j] lane i for rows [0, n) and columns [0, dim); col is clobbered,
 * and its vectors from dim on are not stored, whatever they hold. */
LOOM_ROWS16_TARGET static inline void loom_rows16_store(__m512 col[16], int dim, int n, float *a, size_t ld) {
    __mmask16 m = (__mmask16)((1u << dim) - 1u);
    loom_transpose16(col);
    for (int i = 0; i < n; i++) _mm512_mask_storeu_ps(a + (size_t)i * ld, m, col[i]);
}
#endif

#endif
