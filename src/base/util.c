/* util.c — errors, shapes, cache-line aligned float buffers and the counter-based random numbers every
 * other file uses. */
#include "base/base.h"

#include <stdarg.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool loom_shape_equal(const loom_shape *a, const loom_shape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

const char *loom_shape_str(const loom_shape *s, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "(None");
    for (int i = 0; i < s->rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, ", %d", s->dims[i]);
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
