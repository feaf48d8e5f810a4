/* npz_write.c — writes NumPy .npz archives: one float32 .npy (format 1.0, little-endian, C order)
 * per member, deflated (numpy.savez_compressed) or stored (numpy.savez), in a plain ZIP archive
 * that numpy.load and loom_npz_load read. The archive is built in memory, then written to a
 * temporary file beside `path` and renamed over it, so a reader never sees half a file. ZIP64 is
 * not written: members and the archive stay under 4 GiB, checked before anything is allocated. */
#include "io/loaders.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define ZIP_LIMIT 0xFFFFFFF0u /* below the 32-bit sizes ZIP64 would take over from */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
    bool failed;
} bytes;

static unsigned char *reserve(bytes *b, size_t more) {
    if (b->failed) return NULL;
    if (more > SIZE_MAX - b->n) {
        b->failed = true;
        return NULL;
    }
    if (b->n + more > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + more) cap = cap > SIZE_MAX / 2 ? b->n + more : cap * 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    unsigned char *at = b->p + b->n;
    b->n += more;
    return at;
}

static void put(bytes *b, const void *src, size_t n) {
    unsigned char *at = reserve(b, n);
    if (at && n) memcpy(at, src, n);
}

static void put16(bytes *b, uint32_t v) { put(b, (unsigned char[]){(unsigned char)v, (unsigned char)(v >> 8)}, 2); }
static void put32(bytes *b, uint32_t v) {
    put16(b, v & 0xFFFFu);
    put16(b, v >> 16);
}

/* The .npy bytes of one float32 array: the header padded so the data start on a 64-byte boundary
 * (numpy's own layout), then the values little-endian. */
static bool npy_bytes(const loom_ndarray *a, bytes *out) {
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int d = 0; d < a->rank && len < (int)sizeof dict; d++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%zu%s", a->dims[d], a->rank == 1 ? "," : d + 1 < a->rank ? ", " : "");
    if (len < (int)sizeof dict) len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    if (len >= (int)sizeof dict - 80) return false;
    size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64;
    put(out, "\x93NUMPY\x01\x00", 8);
    put16(out, (uint32_t)((size_t)len + pad + 1));
    put(out, dict, (size_t)len);
    for (size_t i = 0; i < pad; i++) put(out, " ", 1);
    put(out, "\n", 1);
    unsigned char *at = reserve(out, a->size * 4);
    if (!at) return false;
    for (size_t i = 0; i < a->size; i++) {
        uint32_t u;
        memcpy(&u, &a->data[i], 4);
        at[4 * i] = (unsigned char)u;
        at[4 * i + 1] = (unsigned char)(u >> 8);
        at[4 * i + 2] = (unsigned char)(u >> 16);
        at[4 * i + 3] = (unsigned char)(u >> 24);
    }
    return !out->failed;
}

/* Raw deflate (no zlib header), as ZIP method 8 wants. */
static bool deflate_bytes(const bytes *in, bytes *out) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
    uLong bound = deflateBound(&zs, (uLong)in->n);
    unsigned char *at = reserve(out, bound);
    bool ok = false;
    if (at) {
        zs.next_in = in->p;
        zs.avail_in = (uInt)in->n;
        zs.next_out = at;
        zs.avail_out = (uInt)bound;
        ok = deflate(&zs, Z_FINISH) == Z_STREAM_END;
        out->n -= zs.avail_out;
    }
    deflateEnd(&zs);
    return ok;
}

typedef struct central_entry {
    uint32_t crc, csize, usize, offset, method;
} central_entry;

static loom_status write_file(const char *path, const bytes *b, char *err, size_t errlen) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(tmp);
        return loom_ld_fail(err, errlen, LOOM_ERR_IO, "%s: cannot create the file", path);
    }
    bool ok = fwrite(b->p, 1, b->n, f) == b->n;
    ok = (fflush(f) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return loom_ld_fail(err, errlen, LOOM_ERR_IO, "%s: writing failed (disk full or not writable?)", path);
    }
    free(tmp);
    return LOOM_OK;
}

loom_status loom_npz_save(const char *path, int n, const char *const *names, const loom_ndarray *arrays,
                          int compress, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!path || !path[0]) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "npz save: no path given");
    if (n < 1 || n > 65535 || !names || !arrays)
        return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: %d members (1 to 65535, with names and arrays)", path, n);
    /* check every member before building anything */
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const loom_ndarray *a = &arrays[i];
        if (!names[i] || !names[i][0] || strlen(names[i]) > 200 || strchr(names[i], '/'))
            return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: member %d has no usable name (1 to 200 characters, no '/')",
                                path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: member name %s given twice", path, names[i]);
        if (a->rank < 0 || a->rank > LOOM_NDARRAY_MAX_RANK)
            return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: member %s has rank %d (0 to %d)", path, names[i], a->rank,
                                LOOM_NDARRAY_MAX_RANK);
        uint64_t count = 1;
        for (int d = 0; d < a->rank; d++)
            if (!loom_ld_mul(count, a->dims[d], &count))
                return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: member %s is too large", path, names[i]);
        if (count != a->size || (count && !a->data))
            return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT,
                                "%s: member %s: size %zu does not match its dims (%llu values) or data is NULL", path,
                                names[i], a->size, (unsigned long long)count);
        total += count * 4 + 512;
        if (total > ZIP_LIMIT)
            return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: the archive would exceed 4 GiB (ZIP64 is not written)",
                                path);
    }
    bytes zip = {0}, npy = {0}, packed = {0};
    central_entry *cd = calloc((size_t)n, sizeof *cd);
    loom_status s = LOOM_OK;
    if (!cd) s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < n && !s; i++) {
        npy.n = packed.n = 0;
        if (!npy_bytes(&arrays[i], &npy) || (compress && !deflate_bytes(&npy, &packed))) {
            s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory for member %s", path, names[i]);
            break;
        }
        const bytes *data = compress ? &packed : &npy;
        char member[216];
        snprintf(member, sizeof member, "%s.npy", names[i]);
        size_t nlen = strlen(member);
        central_entry *c = &cd[i];
        c->crc = (uint32_t)crc32(0L, npy.p, (uInt)npy.n);
        c->csize = (uint32_t)data->n;
        c->usize = (uint32_t)npy.n;
        c->offset = (uint32_t)zip.n;
        c->method = compress ? 8 : 0;
        put32(&zip, 0x04034b50u);
        put16(&zip, 20);
        put16(&zip, 0);
        put16(&zip, c->method);
        put16(&zip, 0);            /* time 00:00:00 */
        put16(&zip, (1 << 5) | 1); /* date 1980-01-01, numpy's own */
        put32(&zip, c->crc);
        put32(&zip, c->csize);
        put32(&zip, c->usize);
        put16(&zip, (uint32_t)nlen);
        put16(&zip, 0);
        put(&zip, member, nlen);
        put(&zip, data->p, data->n);
        if (zip.failed || zip.n > ZIP_LIMIT) s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", path);
    }
    if (!s) {
        size_t cd_off = zip.n;
        for (int i = 0; i < n; i++) {
            char member[216];
            snprintf(member, sizeof member, "%s.npy", names[i]);
            size_t nlen = strlen(member);
            put32(&zip, 0x02014b50u);
            put16(&zip, 20);
            put16(&zip, 20);
            put16(&zip, 0);
            put16(&zip, cd[i].method);
            put16(&zip, 0);
            put16(&zip, (1 << 5) | 1);
            put32(&zip, cd[i].crc);
            put32(&zip, cd[i].csize);
            put32(&zip, cd[i].usize);
            put16(&zip, (uint32_t)nlen);
            put16(&zip, 0); /* extra */
            put16(&zip, 0); /* comment */
            put16(&zip, 0); /* disk */
            put16(&zip, 0); /* internal attributes */
            put32(&zip, 0); /* external attributes */
            put32(&zip, cd[i].offset);
            put(&zip, member, nlen);
        }
        size_t cd_size = zip.n - cd_off;
        put32(&zip, 0x06054b50u);
        put16(&zip, 0);
        put16(&zip, 0);
        put16(&zip, (uint32_t)n);
        put16(&zip, (uint32_t)n);
        put32(&zip, (uint32_t)cd_size);
        put32(&zip, (uint32_t)cd_off);
        put16(&zip, 0);
        if (zip.failed || zip.n > ZIP_LIMIT) s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", path);
    }
    if (!s) s = write_file(path, &zip, err, errlen);
    free(cd);
    free(zip.p);
    free(npy.p);
    free(packed.p);
    return s;
}
