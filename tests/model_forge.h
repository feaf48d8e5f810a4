/* model_forge.h — model files made byte by byte for tests: any ARCH JSON with a WGHT section of
 * zero weights, with valid CRCs, so a test can hand loom_model_parse what a hostile or unusual
 * writer would. */
#ifndef LOOM_TEST_MODEL_FORGE_H
#define LOOM_TEST_MODEL_FORGE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A .loom file (format version 1) of an ARCH section with this JSON and a WGHT section of n_w
 * zero weights; *size gets its length. */
static unsigned char *loom_file(const char *arch, size_t n_w, size_t *size) {
    static const unsigned char magic[8] = {0x89, 'L', 'O', 'O', 'M', '\r', '\n', 0x1a};
    size_t na = strlen(arch), nw = 8 + 4 * n_w;
    *size = 16 + (16 + na) + (16 + nw);
    unsigned char *f = calloc(1, *size), *p = f;
    memcpy(p, magic, 8);
    put32(p + 8, 1);
    put32(p + 12, 2);
    p += 16;
    const char *tags[2] = {"ARCH", "WGHT"};
    size_t lens[2] = {na, nw};
    for (int s = 0; s < 2; s++) {
        memcpy(p, tags[s], 4);
        put32(p + 4, (uint32_t)lens[s]);
        put32(p + 8, (uint32_t)((uint64_t)lens[s] >> 32));
        unsigned char *payload = p + 12;
        if (s == 0) memcpy(payload, arch, na);
        else put32(payload, (uint32_t)n_w), put32(payload + 4, (uint32_t)((uint64_t)n_w >> 32));
        uLong c = crc32(0L, Z_NULL, 0);
        c = crc32(c, (const Bytef *)tags[s], 4);
        c = crc32(c, payload, (uInt)lens[s]);
        put32(payload + lens[s], (uint32_t)c);
        p += 16 + lens[s];
    }
    return f;
}

#endif
