/* digits.h — the demo's dataset reader. */
#ifndef LOOM_TOOLS_DIGITS_H
#define LOOM_TOOLS_DIGITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct digits_set {
    size_t n;
    float *pixels; /* n x 64, scaled to [0, 1] */
    int *labels;   /* n, 0..9 */
} digits_set;

/* Reads the CSV; returns 0, or -1 with a message naming the file and line. */
int digits_load(const char *path, digits_set *d, char *err, size_t errlen);
void digits_free(digits_set *d);

#endif
