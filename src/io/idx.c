/* idx.c — IDX reader (the MNIST family of files), plain or gzip-compressed.
 *
 * Layout: two zero bytes, a type code, a rank byte, then rank big-endian uint32 dimensions, then
 * the elements, big-endian, in C order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
 * int32, 0x0D float32, 0x0E float64.
 *
 * The files are usually distributed gzipped (train-images-idx3-ubyte.gz). A gzip stream says
 * nothing trustworthy about its decompressed size, so it is inflated in two steps: first just the
 * IDX header, which is checked like a plain one, then exactly the data bytes that header declares
 * (plus one, to notice a stream that goes on). A hostile stream therefore never makes us allocate
 * more than its own header asks for, and that is bounded by LOOM_LOAD_MAX_BYTES. */
#include "io/loaders.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Checks the header in b[0..len) and returns the header length and the data bytes it declares.
 * Everything but "are the data bytes all there" is decided here, for plain and gzipped files. */
static loom_status idx_header(const unsigned char *b, size_t len, const char *what, loom_ld_type *type, int *rank,
                              uint64_t *dims, size_t *header, uint64_t *data_bytes, char *err, size_t errlen) {
    if (len < 4) return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: too short for an IDX header", what);
    if (b[0] != 0 || b[1] != 0)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: not an IDX file (magic starts with %02x %02x, expected 00 00)", what, b[0], b[1]);
    switch (b[2]) {
    case 0x08: *type = LOOM_LD_U8; break;
    case 0x09: *type = LOOM_LD_I8; break;
    case 0x0B: *type = LOOM_LD_I16; break;
    case 0x0C: *type = LOOM_LD_I32; break;
    case 0x0D: *type = LOOM_LD_F32; break;
    case 0x0E: *type = LOOM_LD_F64; break;
    default:
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: unknown IDX type code 0x%02X", what, b[2]);
    }
    *rank = b[3];
    if (*rank < 1 || *rank > LOOM_NDARRAY_MAX_RANK)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: IDX rank %d is outside 1..%d", what, *rank,
                            LOOM_NDARRAY_MAX_RANK);
    *header = 4 + 4 * (size_t)*rank;
    if (len < *header)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: truncated IDX header: %zu bytes, %zu needed", what,
                            len, *header);
    uint64_t count = 1;
    int too_big = 0;
    for (int i = 0; i < *rank; i++) {
        const unsigned char *p = b + 4 + 4 * i;
        dims[i] = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        if (!loom_ld_mul(count, dims[i], &count)) too_big = 1;
    }
    if (too_big || !loom_ld_mul(count, loom_ld_type_size(*type), data_bytes))
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: IDX dimensions are too large (over %llu bytes)", what,
                            (unsigned long long)LOOM_LOAD_MAX_BYTES);
    return LOOM_OK;
}

/* ---------------------------------------------------------------- gzip */

/* An inflate in progress over one whole compressed buffer (gzip members one after another, as
 * `gunzip` accepts them). */
typedef struct gz_reader {
    z_stream zs;
    const unsigned char *in; /* compressed bytes not yet handed to zlib */
    size_t in_left;
    int ended;               /* the last member ended with nothing after it */
} gz_reader;

/* Inflates until dst[0..want) is full or the data end; *got counts the bytes in dst (it may
 * already hold some). Errors are corrupt or truncated gzip data. */
static loom_status gz_read(gz_reader *g, unsigned char *dst, size_t want, size_t *got, const char *what, char *err,
                           size_t errlen) {
    /* avail_in/avail_out are 32-bit, so the buffers are fed in pieces. */
    const size_t chunk = (size_t)1 << 30;
    while (*got < want && !g->ended) {
        if (g->zs.avail_in == 0 && g->in_left) {
            g->zs.next_in = (unsigned char *)g->in; /* zlib's API is not const-correct; it does not write here */
            g->zs.avail_in = (uInt)(g->in_left < chunk ? g->in_left : chunk);
            g->in += g->zs.avail_in;
            g->in_left -= g->zs.avail_in;
        }
        size_t room = want - *got;
        g->zs.next_out = dst + *got;
        g->zs.avail_out = (uInt)(room < chunk ? room : chunk);
        uInt had_out = g->zs.avail_out;
        int r = inflate(&g->zs, Z_NO_FLUSH);
        *got += had_out - g->zs.avail_out;
        if (r == Z_STREAM_END) {
            size_t rest = g->zs.avail_in + g->in_left;
            if (rest == 0) {
                g->ended = 1;
            } else {
                /* the unread bytes are contiguous: next_in, then the pieces not yet fed */
                const unsigned char *next = g->zs.next_in;
                if (rest < 2 || next[0] != 0x1f || next[1] != 0x8b)
                    return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                                        "%s: %zu bytes after the end of the gzip data that are not another gzip member",
                                        what, rest);
                if (inflateReset(&g->zs) != Z_OK)
                    return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: cannot restart zlib", what);
            }
        } else if (r == Z_OK || r == Z_BUF_ERROR) {
            /* room left in dst but no input: the stream stops before its end */
            if (g->zs.avail_out && g->zs.avail_in == 0 && g->in_left == 0)
                return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                                    "%s: the gzip data is truncated (it ends before its end-of-stream marker)", what);
        } else if (r == Z_MEM_ERROR) {
            return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory in zlib", what);
        } else {
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: corrupt gzip data (%s)", what,
                                g->zs.msg ? g->zs.msg : "zlib error");
        }
    }
    return LOOM_OK;
}

/* Inflates a gzipped IDX file into *out (a malloc'd buffer of exactly the plain file's bytes). */
static loom_status idx_gunzip(const unsigned char *src, size_t len, const char *what, unsigned char **out,
                              size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    *out_len = 0;
    gz_reader g;
    memset(&g, 0, sizeof g);
    g.in = src;
    g.in_left = len;
    if (inflateInit2(&g.zs, 15 + 16) != Z_OK) /* 15 + 16: a gzip header and trailer (CRC-32, size) */
        return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: cannot initialise zlib", what);

    /* 1. The four magic bytes, then the rest of the header as the rank byte says. */
    unsigned char head[4 + 4 * 255];
    size_t got = 0, header = 0;
    loom_ld_type type;
    int rank;
    uint64_t dims[LOOM_NDARRAY_MAX_RANK], data_bytes = 0;
    loom_status s = gz_read(&g, head, 4, &got, what, err, errlen);
    if (!s && got == 4 && head[0] == 0 && head[1] == 0 && head[3] >= 1 && head[3] <= LOOM_NDARRAY_MAX_RANK)
        s = gz_read(&g, head, 4 + 4 * (size_t)head[3], &got, what, err, errlen);
    if (!s) s = idx_header(head, got, what, &type, &rank, dims, &header, &data_bytes, err, errlen);

    /* 2. The declared data bytes, plus one to notice a stream that goes on. The buffer grows with
     * what the stream really produces, so a tiny file that declares gigabytes costs little. */
    size_t total = header + (size_t)data_bytes, cap = header;
    unsigned char *buf = NULL;
    if (!s) {
        buf = malloc(cap);
        if (!buf) s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", what);
        else memcpy(buf, head, header);
    }
    while (!s && got < total + 1 && !g.ended) {
        if (got == cap) {
            size_t ncap = cap < ((size_t)1 << 20) ? (size_t)1 << 20 : cap * 2;
            if (ncap > total + 1) ncap = total + 1;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory for %zu bytes", what, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        s = gz_read(&g, buf, cap, &got, what, err, errlen);
    }
    if (!s && got > total)
        s = loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                         "%s: trailing bytes after the IDX data: the dimensions need %llu data bytes, the gzip data "
                         "holds more", what, (unsigned long long)data_bytes);
    else if (!s && got < total)
        s = loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                         "%s: truncated IDX data: the dimensions need %llu data bytes, the gzip data holds %zu", what,
                         (unsigned long long)data_bytes, got - header);
    inflateEnd(&g.zs);
    if (s) {
        free(buf);
        return s;
    }
    *out = buf;
    *out_len = total;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- parse and load */

loom_status loom_idx_parse(const void *buf, size_t len, const char *what, loom_ndarray *out, char *err,
                           size_t errlen) {
    if (!what) what = "<idx buffer>";
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: output array is NULL", what);
    memset(out, 0, sizeof *out);
    if (!buf && len) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: buffer is NULL", what);
    if (err && errlen) err[0] = '\0';
    const unsigned char *b = buf;
    if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        unsigned char *plain;
        size_t plain_len;
        loom_status s = idx_gunzip(b, len, what, &plain, &plain_len, err, errlen);
        if (s) return s;
        /* a plain buffer that starts with 00 00 cannot come back here */
        s = loom_idx_parse(plain, plain_len, what, out, err, errlen);
        free(plain);
        return s;
    }
    loom_ld_type type;
    int rank;
    uint64_t dims[LOOM_NDARRAY_MAX_RANK], expected;
    size_t header;
    loom_status s = idx_header(b, len, what, &type, &rank, dims, &header, &expected, err, errlen);
    if (s) return s;
    size_t actual = len - header;
    if (expected != actual)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: %s: the dimensions need %llu data bytes, the file has %zu",
                            what, actual < expected ? "truncated IDX data" : "trailing bytes after the IDX data",
                            (unsigned long long)expected, actual);
    s = loom_ld_ndarray_alloc(out, rank, dims, what, err, errlen);
    if (s) return s;
    loom_ld_convert(out->data, b + header, out->size, type, 1);
    return LOOM_OK;
}

static loom_status parse_file(const void *buf, size_t len, const char *what, const char *member, loom_ndarray *out,
                              char *err, size_t errlen) {
    (void)member;
    return loom_idx_parse(buf, len, what, out, err, errlen);
}

loom_status loom_idx_load(const char *path, loom_ndarray *out, char *err, size_t errlen) {
    return loom_ld_load(path, parse_file, NULL, out, err, errlen);
}
