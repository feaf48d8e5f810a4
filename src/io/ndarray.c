/* ndarray.c — loom_ndarray and the helpers every data-file reader shares: messages, whole-file
 * reads with a size limit, overflow-checked sizes and conversion of binary elements to float32. */
#include "io/loaders.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void loom_ndarray_free(loom_ndarray *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

loom_array loom_array_from_ndarray(const char *name, const loom_ndarray *a) {
    loom_array r = {.name = name};
    if (!a || !a->data || a->rank < 1) return r; /* no samples: binding says so */
    r.data = a->data;
    r.n = a->dims[0];
    r.count = a->size;
    return r;
}

loom_status loom_ld_fail(char *err, size_t errlen, loom_status code, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

loom_status loom_ld_read_file(const char *path, uint64_t max, unsigned char **buf, size_t *len, char *err,
                              size_t errlen) {
    *buf = NULL;
    *len = 0;
    if (!path) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "file path is NULL");
    /* Regular files only: /dev/zero or /dev/urandom would be read up to the limit, a FIFO or a
     * terminal could block for ever. O_NONBLOCK keeps the open itself from waiting on a FIFO. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return loom_ld_fail(err, errlen, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return loom_ld_fail(err, errlen, LOOM_ERR_IO, "%s: not a regular file (a device, directory or pipe); loom reads "
                            "data from regular files only", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: file of %llu bytes is larger than the %llu-byte limit", path,
                            (unsigned long long)st.st_size, (unsigned long long)max);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return loom_ld_fail(err, errlen, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    /* Read in growing chunks rather than trusting the size, so a file that grows while we read
     * it still stops at max. */
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    if (!b) {
        fclose(f);
        return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2;
            if ((uint64_t)ncap > max + 1) ncap = (size_t)(max + 1);
            unsigned char *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                fclose(f);
                return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory reading %zu bytes", path,
                                    ncap);
            }
            b = nb;
            cap = ncap;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if ((uint64_t)n > max) {
            free(b);
            fclose(f);
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: file is larger than the %llu-byte limit", path,
                                (unsigned long long)max);
        }
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return loom_ld_fail(err, errlen, LOOM_ERR_IO, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return LOOM_OK;
}

int loom_ld_mul(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > LOOM_LOAD_MAX_BYTES / a) return 0;
    *out = a * b;
    return 1;
}

loom_status loom_ld_ndarray_alloc(loom_ndarray *a, int rank, const uint64_t *dims, const char *what, char *err,
                                  size_t errlen) {
    memset(a, 0, sizeof *a);
    if (rank < 0 || rank > LOOM_NDARRAY_MAX_RANK)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: rank %d is over the limit of %d", what, rank,
                            LOOM_NDARRAY_MAX_RANK);
    /* A zero dimension makes the product 0 whatever follows, but each dimension alone must still
     * be sane: (0, 2^62) is a hostile header, not an empty array. */
    uint64_t size = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > LOOM_LOAD_MAX_BYTES / sizeof(float))
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: dimension %d is %llu, over the limit", what, i,
                                (unsigned long long)dims[i]);
        if (!loom_ld_mul(size, dims[i], &size))
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: the shape has more elements than the limit",
                                what);
    }
    uint64_t bytes;
    if (!loom_ld_mul(size, sizeof(float), &bytes))
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: %llu elements need more than the %llu-byte limit as float32", what,
                            (unsigned long long)size, (unsigned long long)LOOM_LOAD_MAX_BYTES);
    if (bytes > SIZE_MAX) return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: array too large", what);
    float *data = malloc(bytes ? (size_t)bytes : 1);
    if (!data)
        return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory for %llu bytes", what,
                            (unsigned long long)bytes);
    a->rank = rank;
    for (int i = 0; i < rank; i++) a->dims[i] = (size_t)dims[i];
    a->size = (size_t)size;
    a->data = data;
    return LOOM_OK;
}

size_t loom_ld_type_size(loom_ld_type t) {
    switch (t) {
    case LOOM_LD_I8: case LOOM_LD_U8: case LOOM_LD_BOOL: return 1;
    case LOOM_LD_I16: case LOOM_LD_U16: return 2;
    case LOOM_LD_F32: case LOOM_LD_I32: case LOOM_LD_U32: return 4;
    case LOOM_LD_F64: case LOOM_LD_I64: case LOOM_LD_U64: return 8;
    }
    return 0;
}

float loom_ld_f64_to_f32(double d) {
    /* Halfway between FLT_MAX and the next (unrepresentable) power of two: from here on, round to
     * nearest gives infinity; below it, a finite float. */
    const double limit = 0x1.ffffffp127;
    if (d >= limit) return INFINITY;
    if (d <= -limit) return -INFINITY;
    return (float)d;
}

/* Reads an unsigned integer of k bytes in the given byte order; memcpy-free and alignment-free. */
static uint64_t load_uint(const unsigned char *p, size_t k, int big_endian) {
    uint64_t v = 0;
    if (big_endian)
        for (size_t i = 0; i < k; i++) v = (v << 8) | p[i];
    else
        for (size_t i = k; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

void loom_ld_convert(float *dst, const unsigned char *src, size_t n, loom_ld_type t, int big_endian) {
    size_t k = loom_ld_type_size(t);
    for (size_t i = 0; i < n; i++) {
        uint64_t u = load_uint(src + i * k, k, big_endian);
        float v = 0.0f;
        switch (t) {
        case LOOM_LD_F32: {
            uint32_t b = (uint32_t)u;
            memcpy(&v, &b, 4);
            break;
        }
        case LOOM_LD_F64: {
            double d;
            memcpy(&d, &u, 8);
            v = loom_ld_f64_to_f32(d);
            break;
        }
        /* Two's complement by hand: converting an out-of-range unsigned value to a signed type is
         * implementation-defined in C. */
        case LOOM_LD_I8: v = (float)(u < 0x80u ? (int64_t)u : (int64_t)u - 0x100); break;
        case LOOM_LD_I16: v = (float)(u < 0x8000u ? (int64_t)u : (int64_t)u - 0x10000); break;
        case LOOM_LD_I32: v = (float)(u < 0x80000000u ? (int64_t)u : (int64_t)u - 0x100000000LL); break;
        case LOOM_LD_I64:
            v = u < 0x8000000000000000ull ? (float)(int64_t)u : -(float)(0u - u);
            break;
        case LOOM_LD_U8: case LOOM_LD_U16: case LOOM_LD_U32: case LOOM_LD_U64: v = (float)u; break;
        case LOOM_LD_BOOL: v = u ? 1.0f : 0.0f; break;
        }
        dst[i] = v;
    }
}

loom_status loom_ld_load(const char *path, loom_ld_parser parse, const char *member, loom_ndarray *out, char *err,
                         size_t errlen) {
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "output array is NULL");
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t len;
    loom_status s = loom_ld_read_file(path, LOOM_LOAD_MAX_BYTES, &buf, &len, err, errlen);
    if (s) return s;
    s = parse(buf, len, path, member, out, err, errlen);
    free(buf);
    return s;
}
