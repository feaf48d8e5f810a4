/* peak_bench.c — the arithmetic peak of one core: a loop of independent VFMADD231PS (float32,
 * 16 lanes x 2 flops) and one of VDPBF16PS (bfloat16 pairs with float32 sums, 16 lanes x 2 pairs
 * x 2 flops), on registers only, so nothing but the execution units limits it.
 *   peak_bench REPEATS
 * Prints: float32_gflops bfloat16_gflops, the best of REPEATS ("nan" for an instruction set the
 * CPU lacks): a neighbour on the core can only slow a loop down, so the fastest is the core's.
 * One thread: bench/run.py multiplies by the thread count for a cell's peak. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 24 /* independent accumulators, more than latency x issue width; 24 of the 32 registers */
#define ITERS 10000000L /* about 0.1 s a loop on a quiet core */

/* The thread's own CPU time, not the wall clock: on a shared machine the thread is descheduled for
 * long stretches, and the peak is what the core does while it runs the loop. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The sum of the lanes is printed to stderr by the caller's check, so the loop cannot be dropped. */
__attribute__((target("avx512f"))) static double fma_loop(float *sink) {
    __m512 acc[CHAINS], x = _mm512_set1_ps(1.0f - 1e-7f), y = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    double t0 = now();
    for (long i = 0; i < ITERS; i++) {
#pragma GCC unroll 24
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
    }
    double s = now() - t0;
    for (int c = 1; c < CHAINS; c++) acc[0] = _mm512_add_ps(acc[0], acc[c]);
    *sink += _mm512_reduce_add_ps(acc[0]);
    return (double)ITERS * CHAINS * 16 * 2 / s / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_loop(float *sink) {
    __m512 acc[CHAINS];
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
    __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    double t0 = now();
    for (long i = 0; i < ITERS; i++) {
#pragma GCC unroll 24
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    }
    double s = now() - t0;
    for (int c = 1; c < CHAINS; c++) acc[0] = _mm512_add_ps(acc[0], acc[c]);
    *sink += _mm512_reduce_add_ps(acc[0]);
    return (double)ITERS * CHAINS * 16 * 2 * 2 / s / 1e9;
}
#endif

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 0;
    if (repeats < 1 || repeats > 100) {
        fprintf(stderr, "usage: peak_bench REPEATS\n");
        return 2;
    }
    double f32[100], bf16[100];
    float sink = 0;
    int has_f32 = 0, has_bf16 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    has_f32 = __builtin_cpu_supports("avx512f");
    has_bf16 = has_f32 && __builtin_cpu_supports("avx512bf16");
#endif
    for (int r = -1; r < repeats; r++) { /* r = -1: warm-up (clock ramps up) */
        double a = NAN, b = NAN;
#if defined(__x86_64__) && defined(__GNUC__)
        if (has_f32) a = fma_loop(&sink);
        if (has_bf16) b = dpbf16_loop(&sink);
#endif
        if (r >= 0) f32[r] = a, bf16[r] = b;
    }
    qsort(f32, (size_t)repeats, sizeof f32[0], cmp_double);
    qsort(bf16, (size_t)repeats, sizeof bf16[0], cmp_double);
    printf("%.1f %.1f\n", has_f32 ? f32[repeats - 1] : NAN, has_bf16 ? bf16[repeats - 1] : NAN);
    fprintf(stderr, "peak_bench: checksum %g\n", (double)sink);
    return 0;
}
