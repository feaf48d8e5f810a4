/* base.h — what every part of loom shares: error records, shapes, cache-aligned float buffers and
 * counter-based random numbers (util.c). Depends on the public header alone. Not installed */
#ifndef LOOM_BASE_H
#define LOOM_BASE_H

#include "loom.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOOM_NAME_MAX 64
#define LOOM_ERR_MAX 512

/* ---------------------------------------------------------------- errors */

typedef struct loom_error {
    loom_status code;
    char msg[LOOM_ERR_MAX];
} loom_error;

/* Sets code and a printf-formatted message; returns code so callers can `return set_error(...)`. */
loom_status loom_set_error(loom_error *e, loom_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void loom_clear_error(loom_error *e);

/* ---------------------------------------------------------------- shapes */

typedef struct loom_shape {
    int rank;
    int dims[LOOM_MAX_RANK];
} loom_shape;

size_t loom_shape_size(const loom_shape *s);
bool loom_shape_equal(const loom_shape *a, const loom_shape *b);
/* "(None, 4, 8)" into buf. */
const char *loom_shape_str(const loom_shape *s, char *buf, size_t len);

/* ---------------------------------------------------------------- checked sizes
 * The limits every shape from a file, a JSON number or a caller is held to, so that no size
 * computed later can wrap: a tensor holds at most LOOM_MAX_ELEMENTS (2^31 - 1) floats per sample
 * (every dimension is an int, every product of dimensions then fits an int, and batch x sample
 * fits a size_t), a weight at most as many, and an arena at most what loom_memory_limit() says
 * the machine can hold. Layers compute output dimensions in 64 bits and pass them through
 * loom_dim_check; loom_call and loom_input check every shape with loom_shape_check; the planner and
 * the parameter buffers add their sizes with loom_size_add / loom_size_mul. */
#define LOOM_MAX_ELEMENTS 2147483647L

/* The product of the dimensions, or false when a dimension is < 1 or the product exceeds
 * LOOM_MAX_ELEMENTS (*n is then 0). */
bool loom_shape_size_checked(const loom_shape *s, size_t *n);
/* LOOM_OK, or LOOM_ERR_SHAPE with a message "<who>: <what> <shape>: dimension i ..." naming the
 * dimension that is < 1 or that takes the product past LOOM_MAX_ELEMENTS. */
loom_status loom_shape_check(const loom_shape *s, const char *who, const char *what, loom_error *err);
/* A dimension computed in 64 bits: stored in *out when it is in [1, INT_MAX], else LOOM_ERR_SHAPE
 * naming who and the dimension (what: "output rows"). */
loom_status loom_dim_check(int64_t v, int *out, const char *who, const char *what, loom_error *err);
/* a + b and a * b, false when they wrap */
static inline bool loom_size_add(size_t a, size_t b, size_t *r) { *r = a + b; return *r >= a; }
static inline bool loom_size_mul(size_t a, size_t b, size_t *r) {
    if (a && b > SIZE_MAX / a) return false;
    *r = a * b;
    return true;
}
/* Bytes one allocation may take: the machine's physical memory (SIZE_MAX / 2 when unknown). */
size_t loom_memory_limit(void);
/* A double (a JSON number) as an integer: `bad` unless it is a whole number in [lo, hi] (casting
 * an out-of-range double is undefined behaviour, so the range is checked first). */
long loom_whole_number(double v, long lo, long hi, long bad);
/* A double as the nearest float, +-infinity past the float range (where a cast is undefined). */
float loom_double_to_float(double d);

/* ---------------------------------------------------------------- big float buffers */

/* n zeroed floats starting on a cache line (LOOM_ALIGN_FLOATS floats, 64 bytes), freed with
 * loom_floats_free. Parameters, gradients, optimizer state and the activation arena live in these: a
 * 512-bit load from a row that starts mid-line touches two lines. They come from calloc, whose
 * large blocks are the system's untouched zero pages: a buffer that is never written (the gradients
 * of layers plain SGD updates in the backward) takes no memory. NULL when out of memory. */
#define LOOM_ALIGN_FLOATS 16
float *loom_floats_zeroed(size_t n);
void loom_floats_free(float *p);
/* n rounded up to whole cache lines */
static inline size_t loom_align_floats(size_t n) { return (n + LOOM_ALIGN_FLOATS - 1) / LOOM_ALIGN_FLOATS * LOOM_ALIGN_FLOATS; }

/* ---------------------------------------------------------------- random numbers */

/* Counter-based: the value depends only on (key, counter), so results never depend on threads or
 * on the order of calls. */
uint64_t loom_hash64(uint64_t key, uint64_t counter);
float loom_uniform01(uint64_t key, uint64_t counter); /* in [0, 1) */
float loom_normal(uint64_t key, uint64_t counter);    /* N(0, 1) */

#endif
