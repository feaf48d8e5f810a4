/* digits.c — reads data/digits.csv (scikit-learn's 8x8 digits: 64 pixels 0..16 and a label). */
#include "digits.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The digits file is 0.5 MB; a data file this tool reads is a regular file of at most this. */
#define DIGITS_MAX_BYTES ((long long)256 << 20)

int digits_load(const char *path, digits_set *d, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    /* /dev/zero would be read for ever (its lines are all empty), a FIFO could block the open */
    struct stat st;
    if (stat(path, &st) == 0 && (!S_ISREG(st.st_mode) || (long long)st.st_size > DIGITS_MAX_BYTES)) {
        snprintf(err, errlen, "%s: not a regular file of at most %lld MiB", path, DIGITS_MAX_BYTES >> 20);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (the file ships in the repository's data/ folder)", path);
        return -1;
    }
    size_t cap = 2048;
    d->pixels = malloc(cap * 64 * sizeof *d->pixels);
    d->labels = malloc(cap * sizeof *d->labels);
    char line[1024];
    int line_no = 0, rc = 0;
    while (d->pixels && d->labels && fgets(line, sizeof line, f)) {
        line_no++;
        if (line[0] == '\n' || line[0] == '\0') continue;
        if (d->n == cap) {
            cap *= 2;
            float *p = realloc(d->pixels, cap * 64 * sizeof *p);
            int *l = realloc(d->labels, cap * sizeof *l);
            if (p) d->pixels = p;
            if (l) d->labels = l;
            if (!p || !l) break;
        }
        char *s = line;
        for (int j = 0; j < 65; j++) {
            char *end;
            long v = strtol(s, &end, 10);
            bool sep_ok = j < 64 ? *end == ',' : (*end == '\n' || *end == '\r' || *end == '\0');
            if (end == s || !sep_ok || v < 0 || v > (j < 64 ? 16 : 9)) {
                snprintf(err, errlen, "%s:%d: field %d is not a valid %s", path, line_no, j + 1,
                         j < 64 ? "pixel (0..16)" : "label (0..9)");
                rc = -1;
                goto done;
            }
            if (j < 64) d->pixels[d->n * 64 + (size_t)j] = (float)v / 16.0f;
            else d->labels[d->n] = (int)v;
            s = end + 1;
        }
        d->n++;
    }
    if (!d->pixels || !d->labels) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -1;
    } else if (d->n == 0) {
        snprintf(err, errlen, "%s: no samples", path);
        rc = -1;
    }
done:
    fclose(f);
    if (rc) digits_free(d);
    return rc;
}

void digits_free(digits_set *d) {
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
