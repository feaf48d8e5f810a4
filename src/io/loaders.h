/* loaders.h — helpers shared by the data-file readers (npy.c, npz.c, idx.c, csv.c, ndarray.c).
 * Not installed, not public. */
#ifndef LOOM_LOADERS_H
#define LOOM_LOADERS_H

#include "loom.h"

#include <stdint.h>

/* The largest file, member or array (in bytes, after conversion to float32) a reader accepts.
 * Sizes are checked against this before anything is allocated, so a hostile header that claims
 * petabytes costs nothing. */
#define LOOM_LOAD_MAX_BYTES ((uint64_t)4 << 30)

/* Writes a printf-formatted message into err (errlen bytes, may be 0 / NULL); returns code. */
loom_status loom_ld_fail(char *err, size_t errlen, loom_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Reads a whole file (at most max bytes) into a malloc'd buffer; *buf is NULL on error. */
/* The *_load functions: read the whole file (bounded), then parse it; `member` is passed through
 * for .npz and ignored by the single-array formats. */
typedef loom_status (*loom_ld_parser)(const void *buf, size_t len, const char *what, const char *member,
                                      loom_ndarray *out, char *err, size_t errlen);
loom_status loom_ld_load(const char *path, loom_ld_parser parse, const char *member, loom_ndarray *out, char *err,
                         size_t errlen);

loom_status loom_ld_read_file(const char *path, uint64_t max, unsigned char **buf, size_t *len, char *err,
                              size_t errlen);

/* a * b into *out; 0 on overflow of size_t or of LOOM_LOAD_MAX_BYTES. */
int loom_ld_mul(uint64_t a, uint64_t b, uint64_t *out);

/* Sets rank and dims, checks that the float32 array fits LOOM_LOAD_MAX_BYTES and allocates data
 * (at least one byte, so a zero-size array still has a non-NULL pointer). */
loom_status loom_ld_ndarray_alloc(loom_ndarray *a, int rank, const uint64_t *dims, const char *what, char *err,
                                  size_t errlen);

/* Element types the binary readers convert from. */
typedef enum loom_ld_type {
    LOOM_LD_F32, LOOM_LD_F64,
    LOOM_LD_I8, LOOM_LD_I16, LOOM_LD_I32, LOOM_LD_I64,
    LOOM_LD_U8, LOOM_LD_U16, LOOM_LD_U32, LOOM_LD_U64,
    LOOM_LD_BOOL
} loom_ld_type;

/* Deflate cannot expand data by more than about 1032:1. An .npz member may not grow past this
 * ratio from its compressed bytes to the float32 array loom makes of it either (uint8 zeros
 * would otherwise grow 4128 times): a 261 KB archive must not become 1.3 GB. */
#define LOOM_LD_MAX_RATIO 1032u

/* loom_npy_parse of an inflated .npz member that took `compressed` bytes in the archive:
 * refuses (before allocating the array) a float32 result over LOOM_LD_MAX_RATIO times that. */
loom_status loom_npy_parse_member(const void *buf, size_t len, const char *what, uint64_t compressed, loom_ndarray *out,
                                  char *err, size_t errlen);

/* Bytes per element of t. */
size_t loom_ld_type_size(loom_ld_type t);

/* Converts n elements of type t (big_endian or little) from src (any alignment) to float32. */
void loom_ld_convert(float *dst, const unsigned char *src, size_t n, loom_ld_type t, int big_endian);

/* double -> float32 the way IEEE rounding does it (overflow gives +-inf), without the undefined
 * behaviour C attaches to out-of-range conversions. */
float loom_ld_f64_to_f32(double d);

#endif
