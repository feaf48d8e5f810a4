/* gemm_dnnl.c — oneDNN matmul primitives for loom's products (see gemm_dnnl.h). */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "kernels/gemm_dnnl.h"
#include "kernels/gemm_bf16.h"
#include "kernels/parallel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

unsigned long loom_dnnl_runs;

#ifdef LOOM_HAVE_DNNL
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

struct loom_dnnl_matmul {
    bool bf16, ta, tb;
    int M, N, K, lda, ldb, ldc;
    dnnl_primitive_t prim;
    dnnl_stream_t stream; /* its own: a oneDNN stream is not for two threads at once */
    dnnl_memory_t src, wei, dst, scratch;
    size_t a_halves, b_halves; /* bfloat16 copies of the operands (0 in float32) */
    size_t scratch_bytes;
    char impl[48];
};

/* One engine for the process (oneDNN's CPU engine is thread-safe); a stream per primitive. */
static dnnl_engine_t engine;
static void (*set_omp_threads)(int);
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void start(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
    /* libgomp comes with libdnnl; found at run time so that loom's link needs nothing more */
    void *f = dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    set_omp_threads = (void (*)(int))(uintptr_t)f;
}

bool loom_dnnl_built(void) { return true; }

static bool md(dnnl_memory_desc_t *d, int rows, int cols, bool transposed, int ld, dnnl_data_type_t t) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return dnnl_memory_desc_init_by_strides(d, 2, dims, t, strides) == dnnl_success;
}

static bool memory(dnnl_memory_t *m, const dnnl_memory_desc_t *d) {
    return dnnl_memory_create(m, d, engine, DNNL_MEMORY_NONE) == dnnl_success;
}

loom_dnnl_matmul *loom_dnnl_matmul_create(bool bf16, bool trans_a, bool trans_b, int M, int N, int K, int lda,
                                          int ldb, int ldc, float alpha, bool accumulate) {
    if (M <= 0 || N <= 0 || K <= 0) return NULL;
    if (bf16 && !loom_bf16_hw()) return NULL; /* oneDNN would emulate it, with other numbers */
    pthread_once(&once, start);
    if (!engine) return NULL;
    loom_dnnl_matmul *mm = calloc(1, sizeof *mm);
    if (!mm) return NULL;
    mm->bf16 = bf16, mm->ta = trans_a, mm->tb = trans_b, mm->M = M, mm->N = N, mm->K = K;
    mm->lda = lda, mm->ldb = ldb, mm->ldc = ldc;
    /* bfloat16: the rounded copies are dense, in the operands' own orientation */
    dnnl_data_type_t in_t = bf16 ? dnnl_bf16 : dnnl_f32;
    int a_ld = bf16 ? (trans_a ? M : K) : lda, b_ld = bf16 ? (trans_b ? K : N) : ldb;
    if (bf16) mm->a_halves = (size_t)M * K, mm->b_halves = (size_t)K * N;
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = md(&a_md, M, K, trans_a, a_ld, in_t) && md(&b_md, K, N, trans_b, b_ld, in_t) &&
              md(&c_md, M, N, false, ldc, dnnl_f32) &&
              dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success &&
              dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
              (alpha == 1.0f || dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) == dnnl_success);
    if (ok && accumulate)
        ok = dnnl_post_ops_create(&post) == dnnl_success && dnnl_post_ops_append_sum(post, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, post) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success;
    if (ok) {
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        snprintf(mm->impl, sizeof mm->impl, "%s", impl ? impl : "?");
        const dnnl_memory_desc_t *scr = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        mm->scratch_bytes = scr ? dnnl_memory_desc_get_size(scr) : 0;
        ok = dnnl_primitive_create(&mm->prim, pd) == dnnl_success &&
             dnnl_stream_create(&mm->stream, engine, dnnl_stream_default_flags) == dnnl_success &&
             memory(&mm->src, &a_md) &&
             memory(&mm->wei, &b_md) && memory(&mm->dst, &c_md) &&
             (!scr || mm->scratch_bytes == 0 || memory(&mm->scratch, scr));
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (post) dnnl_post_ops_destroy(post);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        loom_dnnl_matmul_free(mm);
        return NULL;
    }
    return mm;
}

static size_t floats_of_halves(size_t h) { return (h + 31) / 32 * 16; } /* 64-byte blocks */

size_t loom_dnnl_matmul_workspace(const loom_dnnl_matmul *mm) {
    return floats_of_halves(mm->a_halves) + floats_of_halves(mm->b_halves) + (mm->scratch_bytes + 63) / 64 * 16;
}

const char *loom_dnnl_matmul_impl(const loom_dnnl_matmul *mm) { return mm->impl; }

typedef struct {
    const float *src;
    int cols, ld;
    uint16_t *dst;
} round_job;

static void round_rows(size_t begin, size_t end, void *ctx) {
    const round_job *j = ctx;
    for (size_t r = begin; r < end; r++)
        loom_bf16_round_row(j->src + r * (size_t)j->ld, j->cols, j->dst + r * (size_t)j->cols);
}

/* rows x cols of src (rows ld apart) -> dense bfloat16 */
static void round_matrix(const float *src, int rows, int cols, int ld, uint16_t *dst) {
    round_job j = {src, cols, ld, dst};
    loom_parallel_for((size_t)rows, loom_parallel_min_units((size_t)cols), round_rows, &j);
}

void loom_dnnl_matmul_run(loom_dnnl_matmul *mm, const float *A, const float *B, float *C,
                          float *workspace) {
    loom_dnnl_runs++;
    const void *a = A, *b = B;
    float *scratch = workspace;
    if (mm->bf16) {
        uint16_t *ha = (uint16_t *)(void *)workspace;
        uint16_t *hb = (uint16_t *)(void *)(workspace + floats_of_halves(mm->a_halves));
        scratch = workspace + floats_of_halves(mm->a_halves) + floats_of_halves(mm->b_halves);
        if (mm->ta) round_matrix(A, mm->K, mm->M, mm->lda, ha);
        else round_matrix(A, mm->M, mm->K, mm->lda, ha);
        if (mm->tb) round_matrix(B, mm->N, mm->K, mm->ldb, hb);
        else round_matrix(B, mm->K, mm->N, mm->ldb, hb);
        a = ha, b = hb;
    }
    dnnl_memory_set_data_handle(mm->src, (void *)(uintptr_t)a);
    dnnl_memory_set_data_handle(mm->wei, (void *)(uintptr_t)b);
    dnnl_memory_set_data_handle(mm->dst, C);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mm->src}, {DNNL_ARG_WEIGHTS, mm->wei}, {DNNL_ARG_DST, mm->dst},
                               {DNNL_ARG_SCRATCHPAD, mm->scratch}};
    int nargs = 3;
    if (mm->scratch) {
        dnnl_memory_set_data_handle(mm->scratch, scratch);
        nargs = 4;
    }
    if (set_omp_threads) set_omp_threads(1);
    dnnl_primitive_execute(mm->prim, mm->stream, nargs, args);
    dnnl_stream_wait(mm->stream);
}

void loom_dnnl_matmul_free(loom_dnnl_matmul *mm) {
    if (!mm) return;
    if (mm->prim) dnnl_primitive_destroy(mm->prim);
    if (mm->stream) dnnl_stream_destroy(mm->stream);
    dnnl_memory_t mems[4] = {mm->src, mm->wei, mm->dst, mm->scratch};
    for (int i = 0; i < 4; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(mm);
}

#else /* built without oneDNN */

bool loom_dnnl_built(void) { return false; }
loom_dnnl_matmul *loom_dnnl_matmul_create(bool bf16, bool trans_a, bool trans_b, int M, int N, int K, int lda,
                                          int ldb, int ldc, float alpha, bool accumulate) {
    (void)alpha, (void)bf16, (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)lda, (void)ldb, (void)ldc,
        (void)accumulate;
    return NULL;
}
size_t loom_dnnl_matmul_workspace(const loom_dnnl_matmul *mm) { (void)mm; return 0; }
const char *loom_dnnl_matmul_impl(const loom_dnnl_matmul *mm) { (void)mm; return "none"; }
void loom_dnnl_matmul_run(loom_dnnl_matmul *mm, const float *A, const float *B, float *C,
                          float *workspace) {
    (void)mm, (void)A, (void)B, (void)C, (void)workspace;
}
void loom_dnnl_matmul_free(loom_dnnl_matmul *mm) { (void)mm; }
#endif
