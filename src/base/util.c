/* util.c — errors, shapes and their checked sizes, cache-line aligned float buffers, the
 * counter-based random numbers every other file uses, and the library's version. */
/* sysconf(_SC_PHYS_PAGES) is a common extension outside POSIX proper */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "base/base.h"

#include <stdarg.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

loom_status loom_set_error(loom_error *e, loom_status code, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void loom_clear_error(loom_error *e) {
    e->code = LOOM_OK;
    e->msg[0] = '\0';
}

const char *loom_status_name(loom_status s) {
    static const char *names[] = {"LOOM_OK",         "LOOM_ERR_ARGUMENT", "LOOM_ERR_SHAPE",
                                  "LOOM_ERR_GRAPH",  "LOOM_ERR_NAME",     "LOOM_ERR_COUNT",
                                  "LOOM_ERR_DATA",   "LOOM_ERR_NAN",      "LOOM_ERR_MEMORY",
                                  "LOOM_ERR_STATE",  "LOOM_ERR_CALLBACK", "LOOM_ERR_IO",
                                  "LOOM_ERR_DIST"};
    if ((int)s < 0 || (size_t)s >= sizeof names / sizeof names[0]) return "LOOM_ERR_UNKNOWN";
    return names[s];
}

size_t loom_shape_size(const loom_shape *s) {
    size_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= (size_t)s->dims[i];
    return n;
}

bool loom_shape_size_checked(const loom_shape *s, size_t *n) {
    uint64_t p = 1;
    *n = 0;
    if (s->rank < 0 || s->rank > LOOM_MAX_RANK) return false;
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 1) return false;
        p *= (uint64_t)s->dims[i]; /* both factors <= 2^31 - 1: no wrap in 64 bits */
        if (p > (uint64_t)LOOM_MAX_ELEMENTS) return false;
    }
    *n = (size_t)p;
    return true;
}

loom_status loom_shape_check(const loom_shape *s, const char *who, const char *what, loom_error *err) {
    char buf[96];
    if (s->rank < 1 || s->rank > LOOM_MAX_RANK)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s: %s has rank %d; it must be 1..%d", who, what, s->rank,
                              LOOM_MAX_RANK);
    uint64_t p = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 1)
            return loom_set_error(err, LOOM_ERR_SHAPE, "%s: %s %s: dimension %d is %d; it must be >= 1", who, what,
                                  loom_shape_str(s, buf, sizeof buf), i + 1, s->dims[i]);
        p *= (uint64_t)s->dims[i];
        if (p > (uint64_t)LOOM_MAX_ELEMENTS)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "%s: %s %s is too large: dimensions 1..%d already hold %llu elements per sample, "
                                  "more than the limit of 2^31 - 1",
                                  who, what, loom_shape_str(s, buf, sizeof buf), i + 1, (unsigned long long)p);
    }
    return LOOM_OK;
}

loom_status loom_dim_check(int64_t v, int *out, const char *who, const char *what, loom_error *err) {
    if (v < 1 || v > INT_MAX)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s: %s would be %lld; it must be 1..2^31 - 1", who, what,
                              (long long)v);
    *out = (int)v;
    return LOOM_OK;
}

size_t loom_memory_limit(void) {
    /* asked each time (a plan or a model build, never a step): no shared state between threads */
    size_t limit = SIZE_MAX / 2;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (uint64_t)pages <= (uint64_t)(SIZE_MAX / 2) / (uint64_t)page)
        limit = (size_t)pages * (size_t)page;
#endif
    return limit;
}

long loom_whole_number(double v, long lo, long hi, long bad) {
    if (!(v >= (double)lo && v <= (double)hi)) return bad; /* NaN fails too */
    long r = (long)v;
    return (double)r == v ? r : bad;
}

float loom_double_to_float(double d) {
    /* Halfway between FLT_MAX and the next (unrepresentable) power of two: from here on, round to
     * nearest gives infinity; below it, a finite float. */
    const double limit = 0x1.ffffffp127;
    if (d >= limit) return INFINITY;
    if (d <= -limit) return -INFINITY;
    return (float)d;
}

bool loom_shape_equal(const loom_shape *a, const loom_shape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

const char *loom_shape_str(const loom_shape *s, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "(None");
    for (int i = 0; i < s->rank && used < len; i++)
        used += s->dims[i] == LOOM_DIM_VARIABLE ? (size_t)snprintf(buf + used, len - used, ", None")
                                                : (size_t)snprintf(buf + used, len - used, ", %d", s->dims[i]);
    if (used < len) snprintf(buf + used, len - used, ")");
    return buf;
}

/* SplitMix64 finaliser over key and counter: cheap, well mixed, and stateless. */
uint64_t loom_hash64(uint64_t key, uint64_t counter) {
    uint64_t z = key ^ (counter * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    return z ^ (z >> 31);
}

float loom_uniform01(uint64_t key, uint64_t counter) {
    /* 24 random bits: every value is an exact float in [0, 1). */
    return (float)(loom_hash64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

float loom_normal(uint64_t key, uint64_t counter) {
    /* Box-Muller on two independent uniforms drawn from this counter. */
    uint64_t h = loom_hash64(key, counter);
    double u1 = ((double)(h >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(loom_hash64(key ^ 0xA5A5A5A5A5A5A5A5ULL, counter) >> 11) *
                (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

float *loom_floats_zeroed(size_t n) {
    const size_t line = LOOM_ALIGN_FLOATS * sizeof(float);
    size_t bytes = loom_align_floats(n ? n : 1) * sizeof(float);
    if (bytes / sizeof(float) < n || bytes > SIZE_MAX - line) return NULL; /* overflow */
    unsigned char *raw = calloc(bytes + line, 1);
    if (!raw) return NULL;
    /* the first line boundary after raw (1 to 64 bytes on); the distance sits in the byte before */
    unsigned char *p = raw + line - (size_t)((uintptr_t)raw % line);
    p[-1] = (unsigned char)(p - raw);
    return (float *)(void *)p;
}

void loom_floats_free(float *p) {
    if (p) free((unsigned char *)p - ((unsigned char *)p)[-1]);
}

/* LOOM_VERSION as compiled into the library, so a program can compare it with its header's. */
const char *loom_version(void) { return LOOM_VERSION; }
