/* fuzz_csv.c — libFuzzer target for loom_csv_parse. The first byte picks header / no header and
 * the delimiter; the rest is the text. A parsed table is queried and every column selected. */
#include "loom.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char delims[4] = {0, ';', '\t', ' '};
    int has_header = data[0] & 1;
    char delim = delims[(data[0] >> 1) & 3];
    char err[256];
    loom_csv *c = loom_csv_parse((const char *)data + 1, size - 1, "fuzz.csv", has_header, delim, err, sizeof err);
    if (!c) return 0;
    size_t rows = loom_csv_rows(c);
    int cols = loom_csv_cols(c);
    if (cols < 1) abort();
    const char **names = malloc((size_t)cols * sizeof *names);
    float *out = malloc((rows ? rows : 1) * (size_t)cols * sizeof *out);
    for (int j = 0; j < cols; j++) {
        names[j] = loom_csv_column_name(c, j);
        if (!names[j]) abort();
        int k = loom_csv_column_index(c, names[j]);
        if (has_header && *names[j] && k != j) abort(); /* names are unique */
    }
    if (has_header) {
        loom_status s = loom_csv_select(c, cols, names, out, err, sizeof err);
        if (s == LOOM_OK)
            for (size_t i = 0; i < rows * (size_t)cols; i++)
                if (isnan(out[i])) abort(); /* missing values must have been reported */
    }
    free(out);
    free(names);
    loom_csv_free(c);
    return 0;
}
