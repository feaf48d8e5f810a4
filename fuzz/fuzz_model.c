/* fuzz_model.c — libFuzzer target for loom_model_parse: any input must give either a usable model
 * or NULL with a message, and never a crash, leak or undefined behaviour.
 *
 * Every section of a model file carries a CRC-32, so almost every mutation of a seed stops at the
 * CRC check. To reach the JSON and float decoding behind it, each input is parsed twice: as it is,
 * and (when it starts with the magic number) with every section's CRC recomputed. */
#include "loom.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char MAGIC[8] = {0x89, 'L', 'O', 'O', 'M', '\r', '\n', 0x1a};

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recomputes the CRC of every section that lies wholly inside the buffer; returns how many changed. */
static int repair_crcs(unsigned char *d, size_t size) {
    if (size < 16) return 0;
    uint32_t count = rd32(d + 12);
    size_t at = 16;
    int changed = 0;
    for (uint32_t i = 0; i < count && i < 8; i++) {
        if (size - at < 16) break;
        uint64_t n = (uint64_t)rd32(d + at + 4) | (uint64_t)rd32(d + at + 8) << 32;
        if (n > size - at - 16) break;
        uLong c = crc32(crc32(0L, Z_NULL, 0), d + at, 4);
        c = crc32(c, d + at + 12, (uInt)n);
        unsigned char *crc = d + at + 12 + n;
        uint32_t v = (uint32_t)c;
        if (rd32(crc) != v) {
            for (int b = 0; b < 4; b++) crc[b] = (unsigned char)(v >> (8 * b));
            changed++;
        }
        at += 16 + (size_t)n;
    }
    return changed;
}

/* Uses what a loaded model offers, so a model that is wrong inside shows up under the sanitizers. */
static void exercise(loom_model *m) {
    int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m);
    if (ni < 1 || no < 1 || loom_model_num_layers(m) < ni) abort();
    const float *p = loom_params(m);
    for (size_t i = 0; i < loom_param_count(m); i++)
        if (!isfinite(p[i])) abort(); /* the loader refuses non-finite weights */
    for (int i = 0; i < loom_model_num_layers(m); i++) {
        loom_layer *L = loom_model_layer(m, i);
        if (!loom_layer_name(L) || !loom_layer_class(L)) abort();
        if (loom_model_find_layer(m, loom_layer_name(L)) != L) abort(); /* names are unique */
    }
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    if (sink) loom_summary(m, sink);
    const loom_history *h = loom_model_history(m);
    volatile float acc = 0;
    for (int k = 0; k < loom_history_num_keys(h); k++) {
        const float *v = loom_history_values(h, loom_history_key(h, k));
        for (int e = 0; v && e < loom_history_epochs(h); e++) acc += v[e];
    }
    acc += loom_get_learning_rate(m);
    /* One forward pass on zeros, when the model is small enough not to hit the memory limit. */
    size_t in_total = 0, out_total = 0;
    for (int i = 0; i < ni; i++) in_total += loom_model_input_size(m, i);
    for (int k = 0; k < no; k++) out_total += loom_model_output_size(m, k);
    if (in_total > (1u << 16) || out_total > (1u << 16) || loom_param_count(m) > (1u << 20)) return;
    enum { N = 2 };
    float *in = calloc(N * in_total + 1, sizeof *in), *out = calloc(N * out_total + 1, sizeof *out);
    loom_array xs[LOOM_MAX_OUTPUTS];
    float *outs[LOOM_MAX_OUTPUTS];
    if (in && out && ni <= LOOM_MAX_OUTPUTS && no <= LOOM_MAX_OUTPUTS) {
        size_t at = 0;
        for (int i = 0; i < ni; i++) {
            xs[i] = (loom_array){.data = in + at, .n = N, .count = N * loom_model_input_size(m, i)};
            at += N * loom_model_input_size(m, i);
        }
        at = 0;
        for (int k = 0; k < no; k++) {
            outs[k] = out + at;
            at += N * loom_model_output_size(m, k);
        }
        if (loom_predict(m, ni, xs, N, outs) == LOOM_OK)
            for (size_t i = 0; i < N * out_total; i++) acc += out[i];
    }
    free(in);
    free(out);
    (void)acc;
}

static void parse_once(const uint8_t *data, size_t size) {
    char err[256];
    err[0] = '\0';
    loom_model *m = loom_model_parse(data, size, "fuzz.loom", err, sizeof err);
    if (m) {
        exercise(m);
        loom_model_free(m);
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parse_once(data, size);
    if (size >= 16 && memcmp(data, MAGIC, 8) == 0) {
        unsigned char *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        if (repair_crcs(copy, size)) parse_once(copy, size);
        free(copy);
    }
    return 0;
}
