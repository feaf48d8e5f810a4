/* fixture.h — reads the plain-text reference fixtures written by the scripts in tests/reference/.
 *
 * Format: lines starting with '#' are comments; otherwise one block per array, a line
 * "name count" followed by count numbers separated by any whitespace. Values are kept as double
 * so a test can decide where float32 rounding enters.
 *
 * Problems (a missing file, a malformed block, an unknown name, a wrong count) are recorded as
 * test failures through check.h and never crash: fixture_get() then returns NULL and
 * fixture_floats() fills zeros, so the test goes on and reports everything at once. */
#ifndef LOOM_FIXTURE_H
#define LOOM_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define FIXTURE_NAME_MAX 96

typedef struct fixture_array {
    char name[FIXTURE_NAME_MAX];
    size_t n;
    double *v;
} fixture_array;

typedef struct fixture {
    int count;
    int cap;
    fixture_array *arrays;
} fixture;

static void fixture_fail(const char *what, const char *detail) {
    check_count++;
    check_failures++;
    fprintf(stderr, "fixture: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < f->count; i++) free(f->arrays[i].v);
    free(f->arrays);
    f->arrays = NULL;
    f->count = f->cap = 0;
}

/* Reads the next token that is not inside a '#' comment; 0 at end of file. */
static int fixture_token(FILE *fp, char *buf, size_t size) {
    int c;
    for (;;) {
        c = fgetc(fp);
        if (c == EOF) return 0;
        if (c == '#') {
            while (c != '\n' && c != EOF) c = fgetc(fp);
            continue;
        }
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    }
    size_t len = 0;
    while (c != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        if (len + 1 < size) buf[len++] = (char)c;
        c = fgetc(fp);
    }
    buf[len] = '\0';
    return 1;
}

/* Loads every block of a file. Returns 0 on success; on failure records a test failure, leaves
 * whatever was read before the fault in f, and returns -1. */
static int fixture_load(fixture *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fixture_fail("cannot open", path);
        return -1;
    }
    char tok[128];
    int status = 0;
    while (fixture_token(fp, tok, sizeof tok)) {
        fixture_array a;
        memset(&a, 0, sizeof a);
        if (strlen(tok) >= FIXTURE_NAME_MAX) {
            fixture_fail("array name too long", tok);
            status = -1;
            break;
        }
        strcpy(a.name, tok);
        char cnt[64], *end;
        if (!fixture_token(fp, cnt, sizeof cnt)) {
            fixture_fail("missing count after", a.name);
            status = -1;
            break;
        }
        long n = strtol(cnt, &end, 10);
        if (*end != '\0' || n < 0 || n > 100000000L) {
            fixture_fail("bad count for", a.name);
            status = -1;
            break;
        }
        a.n = (size_t)n;
        a.v = (double *)malloc((a.n ? a.n : 1) * sizeof(double));
        if (!a.v) {
            fixture_fail("out of memory reading", a.name);
            status = -1;
            break;
        }
        for (size_t i = 0; i < a.n; i++) {
            char num[64];
            if (!fixture_token(fp, num, sizeof num)) {
                fixture_fail("file ends inside", a.name);
                status = -1;
                break;
            }
            a.v[i] = strtod(num, &end);
            if (*end != '\0') {
                fixture_fail("not a number in", a.name);
                status = -1;
                break;
            }
        }
        if (status != 0) {
            free(a.v);
            break;
        }
        if (f->count == f->cap) {
            int cap = f->cap ? 2 * f->cap : 32;
            fixture_array *grown = (fixture_array *)realloc(f->arrays, (size_t)cap * sizeof *grown);
            if (!grown) {
                free(a.v);
                fixture_fail("out of memory reading", path);
                status = -1;
                break;
            }
            f->arrays = grown;
            f->cap = cap;
        }
        f->arrays[f->count++] = a;
    }
    fclose(fp);
    return status;
}

/* The values of a named array, or NULL (a recorded failure) when it is absent or, with
 * expected_n > 0, has another length. */
static const double *fixture_get(const fixture *f, const char *name, size_t expected_n) {
    for (int i = 0; i < f->count; i++) {
        if (strcmp(f->arrays[i].name, name) != 0) continue;
        if (expected_n > 0 && f->arrays[i].n != expected_n) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s has %zu values, expected %zu", name, f->arrays[i].n,
                     expected_n);
            fixture_fail("wrong length", msg);
            return NULL;
        }
        return f->arrays[i].v;
    }
    fixture_fail("no array named", name);
    return NULL;
}

/* Copies a named array of n values into out as float; zeros (and a recorded failure) when it is
 * missing. Returns 1 when found. */
static int fixture_floats(const fixture *f, const char *name, float *out, size_t n) {
    const double *v = fixture_get(f, name, n);
    for (size_t i = 0; i < n; i++) out[i] = v ? (float)v[i] : 0.0f;
    return v != NULL;
}

/* A single value, NaN (and a recorded failure) when missing. */
static inline double fixture_scalar(const fixture *f, const char *name) {
    const double *v = fixture_get(f, name, 1);
    return v ? v[0] : (double)NAN;
}

#endif
