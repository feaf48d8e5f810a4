/* fuzz_npz.c — libFuzzer target for loom_npz_parse: looks up a few member names, as a caller
 * would, in any input; each must give a well-formed array or an error with an empty output. */
#include "loom.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *members[] = {"x", "y.npy", "arr_0"};
    for (size_t m = 0; m < sizeof members / sizeof members[0]; m++) {
        char err[256];
        loom_ndarray a;
        loom_status s = loom_npz_parse(data, size, "fuzz.npz", members[m], &a, err, sizeof err);
        if (s == LOOM_OK) {
            size_t n = 1;
            for (int i = 0; i < a.rank; i++) n *= a.dims[i];
            if (n != a.size || !a.data) abort();
            volatile float sink = 0;
            for (size_t i = 0; i < a.size; i++) sink += a.data[i];
            (void)sink;
        } else if (a.data || a.size || a.rank) {
            abort();
        }
        loom_ndarray_free(&a);
    }
    return 0;
}
