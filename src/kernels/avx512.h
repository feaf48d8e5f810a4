/* avx512.h — AVX-512 helpers for the loops that the compiler's vectoriser does badly: work along
 * narrow rows (a softmax over 10 classes, its crossentropy), turning matrices, sums down columns.
 *
 * Work along a row of 10 values fills 10 lanes of one vector, and every per-row step (the maximum,
 * the sum) is then a horizontal reduction, the slow direction; a scalar loop over the row is a
 * chain of dependent operations. Turned, column j of 16 rows is one vector, and the per-row
 * maximum or sum is dim - 1 plain vector operations with 16 rows in flight. The turning is a
 * 16 x 16 transpose in registers (64 shuffles), never through memory: a vector load of data that
 * two narrower stores have just written waits for them (a 32 x 10 softmax turned through the stack
 * took 40 % longer).
 *
 * Every path here applies to each element exactly the operations of the scalar path it replaces,
 * in the same order, so results keep their bits on CPUs with and without AVX-512 and at any split
 * of the work. */
#ifndef LOOM_AVX512_H
#define LOOM_AVX512_H

#include <stdbool.h>

/* Tests set it to run the scalar paths on a CPU that has AVX-512 (defined in activations.c). */
extern bool loom_avx512_off;

#if defined(__x86_64__) && defined(__GNUC__)
#define LOOM_HAVE_AVX512 1
#include <immintrin.h>
#include <stddef.h>

#define LOOM_AVX512_TARGET __attribute__((target("avx512f")))

/* true when this CPU runs the AVX-512 paths */
static inline bool loom_avx512_on(void) { return !loom_avx512_off && __builtin_cpu_supports("avx512f"); }

/* lanes [0, n) of a vector, 0 <= n <= 16 */
static inline __mmask16 loom_lanes(int n) { return (__mmask16)((1u << n) - 1u); }

/* v[i] holds row i (lanes = columns) on entry and column i (lanes = rows) on exit. */
LOOM_AVX512_TARGET static inline void loom_transpose16(__m512 v[16]) {
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
LOOM_AVX512_TARGET static inline void loom_rows16_load(const float *a, size_t ld, int dim, int n, __m512 col[16]) {
    __mmask16 m = loom_lanes(dim);
    for (int i = 0; i < 16; i++) col[i] = i < n ? _mm512_maskz_loadu_ps(m, a + (size_t)i * ld) : _mm512_setzero_ps();
    loom_transpose16(col);
}

/* The reverse: a[i][j] = col[j] lane i for rows [0, n) and columns [0, dim); col is clobbered,
 * and its vectors from dim on are not stored, whatever they hold. */
LOOM_AVX512_TARGET static inline void loom_rows16_store(__m512 col[16], int dim, int n, float *a, size_t ld) {
    __mmask16 m = loom_lanes(dim);
    loom_transpose16(col);
    for (int i = 0; i < n; i++) _mm512_mask_storeu_ps(a + (size_t)i * ld, m, col[i]);
}
#endif

#endif
