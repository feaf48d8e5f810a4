/* npz.c — NumPy .npz reader: a ZIP archive of .npy members, stored or deflated.
 *
 * The archive is read from its end: the end-of-central-directory record (EOCD) locates the
 * central directory, whose entries give each member's name, method, CRC-32, sizes and the offset
 * of its local header; the data follow the local header's name and extra field. Sizes are taken
 * from the central directory, because numpy.savez writes ZIP64 local headers whose 32-bit size
 * fields are 0xFFFFFFFF. ZIP64 extra fields in central entries are understood; a ZIP64 EOCD
 * (over 65535 members or 4 GiB, beyond loom's limits anyway) is refused. */
#include "io/loaders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64_LOCATOR 0x07064b50u

/* Deflate cannot expand data by more than about 1032:1, so a member that claims more is lying;
 * refusing it up front keeps a tiny hostile archive from making us allocate gigabytes. */
#define DEFLATE_MAX_RATIO LOOM_LD_MAX_RATIO

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

typedef struct zip_entry {
    const unsigned char *name; /* not NUL-terminated */
    size_t name_len;
    uint32_t method, flags, crc;
    uint64_t csize, usize, offset;
} zip_entry;

typedef struct zip_archive {
    const unsigned char *b;
    size_t len;
    size_t count;
    zip_entry *entries;
} zip_archive;

/* Parses the EOCD and every central-directory entry; on success a->entries is malloc'd. */
static loom_status zip_open(zip_archive *a, const unsigned char *b, size_t len, const char *what, char *err,
                            size_t errlen) {
    memset(a, 0, sizeof *a);
    a->b = b;
    a->len = len;
    if (len < 22) return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: not a ZIP archive (too short)", what);
    /* The EOCD is the last 22 bytes plus an optional comment of at most 65535 bytes; take the
     * last signature whose comment length reaches exactly to the end of the file. */
    size_t eocd = SIZE_MAX;
    size_t lowest = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lowest;) {
        if (rd32(b + i) == SIG_EOCD && i + 22 + rd16(b + i + 20) == len) {
            eocd = i;
            break;
        }
    }
    if (eocd == SIZE_MAX)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: not a ZIP archive or truncated (no end-of-central-directory record)", what);
    const unsigned char *e = b + eocd;
    uint32_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (n == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu ||
        (eocd >= 20 && rd32(b + eocd - 20) == SIG_EOCD64_LOCATOR))
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: ZIP64 end-of-central-directory records are not supported", what);
    if (disk != 0 || cd_disk != 0 || n_disk != n)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: multi-part ZIP archives are not supported", what);
    if (cd_off > eocd || cd_size > eocd - cd_off)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: central directory (offset %llu, %llu bytes) lies outside the archive", what,
                            (unsigned long long)cd_off, (unsigned long long)cd_size);
    if (n > cd_size / 46)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: %u members cannot fit a %llu-byte central directory", what, (unsigned)n,
                            (unsigned long long)cd_size);
    a->entries = calloc(n ? n : 1, sizeof *a->entries);
    if (!a->entries) return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", what);

    const unsigned char *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint32_t i = 0; i < n; i++) {
        zip_entry *z = &a->entries[i];
        if (end - p < 46 || rd32(p) != SIG_CENTRAL) goto bad_cd;
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen) goto bad_cd;
        z->flags = rd16(p + 8);
        z->method = rd16(p + 10);
        z->crc = rd32(p + 16);
        z->csize = rd32(p + 20);
        z->usize = rd32(p + 24);
        z->offset = rd32(p + 42);
        z->name = p + 46;
        z->name_len = nlen;
        /* ZIP64 extra field (id 1): 64-bit values, present only for the fields saturated above,
         * in the order usize, csize, offset. */
        const unsigned char *x = p + 46 + nlen, *xend = x + xlen;
        while (xend - x >= 4) {
            uint32_t id = rd16(x), sz = rd16(x + 2);
            if ((size_t)(xend - x) - 4 < sz) goto bad_cd;
            if (id == 1) {
                const unsigned char *q = x + 4, *qend = q + sz;
                uint64_t *fields[3] = {&z->usize, &z->csize, &z->offset};
                for (int f = 0; f < 3; f++) {
                    if (*fields[f] != 0xFFFFFFFFu) continue;
                    if (qend - q < 8) goto bad_cd;
                    *fields[f] = rd64(q);
                    q += 8;
                }
            }
            x += 4 + sz;
        }
        p += 46 + nlen + xlen + clen;
    }
    a->count = n;
    return LOOM_OK;
bad_cd:
    free(a->entries);
    a->entries = NULL;
    return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: corrupt or truncated ZIP central directory", what);
}

static int name_is(const zip_entry *z, const char *member) {
    size_t m = strlen(member);
    if (z->name_len == m && memcmp(z->name, member, m) == 0) return 1;
    return z->name_len == m + 4 && memcmp(z->name, member, m) == 0 && memcmp(z->name + m, ".npy", 4) == 0;
}

/* The member's name for messages: printable ASCII only, at most 63 characters. */
static void printable_name(const zip_entry *z, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < z->name_len && k + 1 < cap; i++)
        out[k++] = (z->name[i] >= 32 && z->name[i] < 127) ? (char)z->name[i] : '?';
    out[k] = '\0';
}

/* Inflates raw deflate data into exactly usize bytes; more or less is an error. */
static loom_status inflate_exact(const unsigned char *src, uint64_t csize, unsigned char *dst, uint64_t usize,
                                 const char *what, char *err, size_t errlen) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK)
        return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: cannot initialise zlib", what);
    uint64_t in_left = csize, out_left = usize;
    zs.next_in = (unsigned char *)src; /* zlib's API is not const-correct; it does not write here */
    zs.next_out = dst;
    int r = Z_OK;
    /* avail_in/avail_out are 32-bit, so feed the buffers in pieces. */
    const uint64_t chunk = 1u << 30;
    while (r == Z_OK) {
        if (zs.avail_in == 0 && in_left) {
            zs.avail_in = (uInt)(in_left < chunk ? in_left : chunk);
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.avail_out = (uInt)(out_left < chunk ? out_left : chunk);
            out_left -= zs.avail_out;
        }
        uInt had_in = zs.avail_in, had_out = zs.avail_out;
        r = inflate(&zs, Z_NO_FLUSH);
        /* No progress possible: the output is full while the stream goes on, or the input ran
         * out before the stream ended. */
        if (r == Z_BUF_ERROR || (r == Z_OK && zs.avail_in == had_in && zs.avail_out == had_out)) break;
    }
    uint64_t produced = zs.total_out;
    const char *zmsg = zs.msg; /* zlib's messages are static strings, still valid after inflateEnd */
    inflateEnd(&zs);
    if (r == Z_STREAM_END) {
        if (produced != usize || zs.avail_out != 0 || out_left != 0)
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: inflates to %llu bytes, %llu declared", what,
                                (unsigned long long)produced, (unsigned long long)usize);
        return LOOM_OK;
    }
    if (r == Z_OK || r == Z_BUF_ERROR) {
        if (zs.avail_out == 0 && out_left == 0)
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: inflates to more than the %llu bytes declared",
                                what, (unsigned long long)usize);
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: deflate stream is truncated", what);
    }
    return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: corrupt deflate stream (%s)", what,
                        zmsg ? zmsg : "zlib error");
}

/* Checks and extracts entry z into a malloc'd buffer of z->usize bytes. */
static loom_status zip_extract(const zip_archive *a, const zip_entry *z, const char *what, unsigned char **data,
                               char *err, size_t errlen) {
    *data = NULL;
    if (z->flags & 1) return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: member is encrypted", what);
    if (z->method != 0 && z->method != 8) {
        const char *name = z->method == 12 ? "bzip2" : z->method == 14 ? "LZMA" : z->method == 93 ? "zstd"
                           : z->method == 9 ? "deflate64" : "unknown";
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: compression method %u (%s) is not supported (stored and deflated are)", what,
                            (unsigned)z->method, name);
    }
    if (z->usize > LOOM_LOAD_MAX_BYTES || z->usize > SIZE_MAX)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: member of %llu bytes is over the limit", what,
                            (unsigned long long)z->usize);
    if (z->offset > a->len || a->len - z->offset < 30 || rd32(a->b + z->offset) != SIG_LOCAL)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: local header missing at offset %llu", what,
                            (unsigned long long)z->offset);
    const unsigned char *lh = a->b + z->offset;
    size_t nlen = rd16(lh + 26), xlen = rd16(lh + 28);
    uint64_t start = z->offset + 30 + nlen + xlen;
    if (start > a->len || a->len - start < z->csize)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: member data run past the end of the archive", what);
    if (nlen != z->name_len || memcmp(lh + 30, z->name, nlen) != 0 || rd16(lh + 8) != z->method)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: local header disagrees with the central directory",
                            what);
    const unsigned char *src = a->b + start;
    if (z->method == 0 && z->csize != z->usize)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: stored member has sizes %llu and %llu", what,
                            (unsigned long long)z->csize, (unsigned long long)z->usize);
    if (z->method == 8 && z->usize / DEFLATE_MAX_RATIO > z->csize + 1)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: %llu compressed bytes cannot inflate to the %llu declared", what,
                            (unsigned long long)z->csize, (unsigned long long)z->usize);

    unsigned char *out = malloc(z->usize ? (size_t)z->usize : 1);
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", what);
    if (z->method == 0) {
        if (z->usize) memcpy(out, src, (size_t)z->usize);
    } else {
        loom_status s = inflate_exact(src, z->csize, out, z->usize, what, err, errlen);
        if (s) {
            free(out);
            return s;
        }
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < z->usize;) {
        uint64_t k = z->usize - done < (1u << 30) ? z->usize - done : (1u << 30);
        crc = crc32(crc, out + done, (uInt)k);
        done += k;
    }
    if ((uint32_t)crc != z->crc) {
        free(out);
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: CRC-32 mismatch (stored %08x, computed %08x)", what,
                            (unsigned)z->crc, (unsigned)(uint32_t)crc);
    }
    *data = out;
    return LOOM_OK;
}

loom_status loom_npz_parse(const void *buf, size_t len, const char *what, const char *member, loom_ndarray *out,
                           char *err, size_t errlen) {
    if (!what) what = "<npz buffer>";
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: output array is NULL", what);
    memset(out, 0, sizeof *out);
    if (!member) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: member name is NULL", what);
    if (!buf && len) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: buffer is NULL", what);
    if (err && errlen) err[0] = '\0';
    zip_archive a;
    loom_status s = zip_open(&a, buf, len, what, err, errlen);
    if (s) return s;
    const zip_entry *z = NULL;
    for (size_t i = 0; i < a.count && !z; i++)
        if (name_is(&a.entries[i], member)) z = &a.entries[i];
    if (!z) {
        /* List what is there, as far as the message buffer goes. */
        char known[256] = "";
        size_t k = 0;
        for (size_t i = 0; i < a.count && k + 8 < sizeof known; i++) {
            char nm[64];
            printable_name(&a.entries[i], nm, sizeof nm);
            size_t l = strlen(nm);
            if (l >= 4 && strcmp(nm + l - 4, ".npy") == 0) nm[l - 4] = '\0';
            int w = snprintf(known + k, sizeof known - k, "%s'%s'", i ? ", " : "", nm);
            if (w < 0 || (size_t)w >= sizeof known - k) break;
            k += (size_t)w;
        }
        free(a.entries);
        return loom_ld_fail(err, errlen, LOOM_ERR_NAME, "%s: no member '%s' (members: %s)", what, member,
                            a.count ? known : "none");
    }
    char mwhat[320];
    char nm[64];
    printable_name(z, nm, sizeof nm);
    snprintf(mwhat, sizeof mwhat, "%s:%s", what, nm);
    unsigned char *data;
    s = zip_extract(&a, z, mwhat, &data, err, errlen);
    size_t usize = (size_t)z->usize;
    uint64_t compressed = z->method == 8 ? z->csize : 0;
    free(a.entries);
    if (s) return s;
    s = loom_npy_parse_member(data, usize, mwhat, compressed, out, err, errlen);
    free(data);
    return s;
}

loom_status loom_npz_load(const char *path, const char *member, loom_ndarray *out, char *err, size_t errlen) {
    return loom_ld_load(path, loom_npz_parse, member, out, err, errlen);
}

int loom_npz_members(const char *path, char **names, int max, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0'; /* a call that succeeds leaves no old message */
    if (max < 0 || (max > 0 && !names)) {
        loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: names is NULL or max is negative", path ? path : "?");
        return -1;
    }
    unsigned char *buf;
    size_t len;
    if (loom_ld_read_file(path, LOOM_LOAD_MAX_BYTES, &buf, &len, err, errlen)) return -1;
    zip_archive a;
    if (zip_open(&a, buf, len, path, err, errlen)) {
        free(buf);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < a.count && n < max; i++, n++) {
        const zip_entry *z = &a.entries[i];
        size_t l = z->name_len;
        if (l >= 4 && memcmp(z->name + l - 4, ".npy", 4) == 0) l -= 4;
        names[n] = malloc(l + 1);
        if (!names[n]) {
            for (int j = 0; j < n; j++) {
                free(names[j]);
                names[j] = NULL;
            }
            free(a.entries);
            free(buf);
            loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", path);
            return -1;
        }
        memcpy(names[n], z->name, l);
        names[n][l] = '\0';
    }
    free(a.entries);
    free(buf);
    return n;
}
