/* vector_clones.h — compiling hot element-wise loops for several instruction sets (internal). */
#ifndef LOOM_VECTOR_CLONES_H
#define LOOM_VECTOR_CLONES_H


/* Hot element-wise loops are compiled for AVX-512, AVX2 and the baseline, the best chosen at
 * run time (GCC function multi-versioning). Element-wise IEEE arithmetic gives the same bits in
 * every version (no contraction into FMA: the build is ISO C, -ffp-contract=off). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__) /* ifunc resolvers run before TSan is set up */
#define LOOM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LOOM_VECTOR_CLONES
#endif

#endif
