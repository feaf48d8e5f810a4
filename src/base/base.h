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
