/* fuzz_keras.c — libFuzzer target for the Keras importer (loom_model_import_memory): any input
 * must give either a usable model or NULL with a message, and never a crash, leak or undefined
 * behaviour.
 *
 * Two routes, picked by the first byte:
 *   even: the input is a Keras config (Model.to_json(), Keras 2 or 3 dialect, a compile_config
 *         included), read through keras_config.c and model_json.c;
 *   odd:  the rest is a zip archive (a .keras): libzip's reader, the member size checks and then
 *         the config inside. A weights member that is a well-formed HDF5 file reaches HDF5's own
 *         parser, which loom does not claim to harden (see include/loom.h).
 * A model that comes back is used: its summary is written and it predicts one sample. */
#include "loom.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(loom_model *m) {
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        loom_summary(m, devnull);
        fclose(devnull);
    }
    int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m);
    loom_array x[LOOM_MAX_OUTPUTS];
    float *in[LOOM_MAX_OUTPUTS] = {0}, *out[LOOM_MAX_OUTPUTS] = {0};
    size_t total = 0;
    for (int i = 0; i < ni; i++) total += loom_model_input_size(m, i);
    for (int k = 0; k < no; k++) total += loom_model_output_size(m, k);
    if (total > (1u << 20)) return; /* a huge but valid model: nothing more to learn */
    for (int i = 0; i < ni; i++) {
        size_t n = loom_model_input_size(m, i);
        in[i] = calloc(n ? n : 1, sizeof(float)); /* zeros are valid token ids too */
        x[i] = (loom_array){.name = NULL, .data = in[i], .n = 1, .count = n};
    }
    for (int k = 0; k < no; k++) out[k] = calloc(loom_model_output_size(m, k) + 1, sizeof(float));
    loom_predict(m, ni, x, 1, out);
    for (int i = 0; i < ni; i++) free(in[i]);
    for (int k = 0; k < no; k++) free(out[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char err[1024];
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    loom_model *m;
    if ((data[0] & 1) == 0) {
        /* the JSON route: never let the bytes pass for a zip or an HDF5 file */
        if (n >= 2 && (body[0] == 'P' || body[0] == 0x89)) return 0;
        m = loom_model_import_memory(body, n, "fuzz.json", err, sizeof err);
    } else {
        if (n < 4 || memcmp(body, "PK\3\4", 4) != 0) return 0;
        m = loom_model_import_memory(body, n, "fuzz.keras", err, sizeof err);
    }
    if (!m) {
        if (!err[0]) abort(); /* a refusal must say why */
        return 0;
    }
    exercise(m);
    loom_model_free(m);
    return 0;
}
