/* model_file.c — one file holds a model: architecture (Keras to_json layout), weights, compile
 * settings with the optimizer state, and the training progress.
 *
 * Layout (all integers little-endian on every host):
 *   magic "\x89LOOM\r\n\x1a" (8 bytes), u32 format version, u32 section count,
 *   then per section: 4-byte tag, u64 payload length, payload, u32 CRC-32 of tag + payload.
 * Sections: ARCH (JSON), WGHT (u64 count + f32 values), COMP (JSON: compile settings and
 * progress; absent for an uncompiled model), OPTS (u64 count + f32 optimizer slots), HIST (JSON).
 *
 * Saving writes a temporary file in the same folder, flushes it to disk and renames it over the
 * old one, so a process killed at any moment leaves the previous file intact. Loading checks
 * every size against the bytes present and every CRC before building anything, and builds the
 * whole model before handing it out: it never half-loads. */
#define _DEFAULT_SOURCE /* realpath, flock, fchown beside POSIX */
#include "core/model.h"
#include "io/loaders.h"
#include "io/model_json.h"
#include "optim/optim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_VERSION 1u
#define MAX_FILE_BYTES ((size_t)1 << 34) /* 16 GiB */
static const unsigned char MAGIC[8] = {0x89, 'L', 'O', 'O', 'M', '\r', '\n', 0x1a};

/* ---------------------------------------------------------------- CRC-32 (IEEE, as zlib) */

static uint32_t crc_table[256];

static void crc_table_build(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t loom_crc32(uint32_t crc, const void *data, size_t n) {
    /* built once, before any thread reads it: two threads saving for the first time raced here */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_table_build);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---------------------------------------------------------------- byte buffer */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
    bool failed;
} bytes;

static void put(bytes *b, const void *data, size_t n) {
    if (b->failed) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v) {
    unsigned char s[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(b, s, 4);
}

static void put_u64(bytes *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_floats(bytes *b, const float *v, size_t n) {
    put_u64(b, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put_u32(b, u);
    }
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

/* Section = tag, u64 length, payload, CRC of tag + payload. */
static void put_section(bytes *b, const char tag[4], const void *payload, size_t n) {
    put(b, tag, 4);
    put_u64(b, n);
    put(b, payload, n);
    put_u32(b, loom_crc32(loom_crc32(0, tag, 4), payload, n));
}

/* ---------------------------------------------------------------- saving */

/* The process umask, read without changing it (umask() itself would set it, racing with other
 * threads that create files): Linux reports it in /proc/self/status; 022 otherwise. */
static mode_t current_umask(void) {
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return mask;
    char line[128];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            mask = (mode_t)strtol(line + 6, NULL, 8);
            break;
        }
    fclose(f);
    return mask;
}

/* Where a save really goes. A symbolic link is followed to the file it names (the link stays a
 * link); a link to nothing, and anything but a regular file (a device node, a folder, a FIFO), is
 * refused. *target is malloc'd; *existing tells whether it exists, with its status in *st. */
static loom_status resolve_target(loom_model *m, const char *path, char **target, bool *existing, struct stat *st) {
    *target = NULL;
    *existing = false;
    struct stat lst;
    if (lstat(path, &lst) != 0) {
        if (errno != ENOENT)
            return loom_set_error(&m->err, LOOM_ERR_IO, "save %s: %s", path, strerror(errno));
        *target = strdup(path);
        return *target ? LOOM_OK : loom_set_error(&m->err, LOOM_ERR_MEMORY, "save %s: out of memory", path);
    }
    if (S_ISLNK(lst.st_mode)) {
        char *real = realpath(path, NULL);
        if (!real)
            return loom_set_error(&m->err, LOOM_ERR_IO,
                                  "save %s: a symbolic link to a missing file (%s); save to the file itself",
                                  path, strerror(errno));
        *target = real;
        if (stat(real, st) != 0) {
            loom_status s = loom_set_error(&m->err, LOOM_ERR_IO, "save %s: %s: %s", path, real, strerror(errno));
            free(real);
            *target = NULL;
            return s;
        }
    } else {
        *st = lst;
        *target = strdup(path);
        if (!*target) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "save %s: out of memory", path);
    }
    if (!S_ISREG(st->st_mode)) {
        loom_status s = loom_set_error(&m->err, LOOM_ERR_IO, "save %s: not a regular file (%s); refusing to replace it",
                                       path, S_ISDIR(st->st_mode) ? "a folder" : S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)
                                                                                  ? "a device" : "a FIFO or socket");
        free(*target);
        *target = NULL;
        return s;
    }
    *existing = true;
    return LOOM_OK;
}

/* Removes "<target>.tmpXXXXXX" files that killed saves left behind. A save holds an exclusive
 * lock on its temporary while it writes (released by the kernel when its process dies), so a
 * temporary that can be locked has no writer. */
static void remove_stale_temporaries(const char *target) {
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    size_t dir_len = slash ? (size_t)(slash - target) + 1 : 0, base_len = strlen(base);
    char *dir = malloc(dir_len + 3); /* room for "./" and the terminator when there is no folder */
    if (!dir) return;
    if (dir_len) memcpy(dir, target, dir_len);
    else dir[dir_len++] = '.', dir[dir_len++] = '/';
    dir[dir_len] = '\0';
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;
        if (strlen(n) != base_len + 10 || strncmp(n, base, base_len) != 0 || strncmp(n + base_len, ".tmp", 4) != 0)
            continue;
        bool random = true; /* mkstemp's six letters and digits */
        for (int i = 0; i < 6; i++) {
            char c = n[base_len + 4 + i];
            random = random && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
        }
        size_t full_len = dir_len + strlen(n) + 1;
        char *full = random ? malloc(full_len) : NULL;
        if (!full) continue;
        snprintf(full, full_len, "%s%s", dir, n);
        int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0) unlink(full);
        if (fd >= 0) close(fd);
        free(full);
    }
    closedir(d);
    free(dir);
}

static loom_status write_atomically(loom_model *m, const char *path, const bytes *b) {
    char *target;
    bool existing;
    struct stat st;
    loom_status s = resolve_target(m, path, &target, &existing, &st);
    if (s) return s;
    remove_stale_temporaries(target);
    size_t len = strlen(target);
    char *tmp = malloc(len + 16);
    if (!tmp) {
        free(target);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "save %s: out of memory", path);
    }
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        snprintf(tmp, len + 16, "%s.tmpXXXXXX", target);
        fd = mkstemp(tmp);
        if (fd < 0) break;
        /* lock it before writing; another save's cleanup may have removed it in between. A file
         * system without locks (flock fails) gets no cleanup either: an unlockable temporary is
         * never removed. */
        struct stat own;
        (void)flock(fd, LOCK_EX);
        if (fstat(fd, &own) != 0 || own.st_nlink == 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        s = loom_set_error(&m->err, LOOM_ERR_IO, "save %s: cannot create a temporary file beside it: %s", path,
                           strerror(errno));
        free(tmp);
        free(target);
        return s;
    }
    size_t done = 0;
    while (done < b->n) {
        ssize_t w = write(fd, b->p + done, b->n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    /* mkstemp makes the file 0600: a file saved over keeps its mode (and, where allowed, its
     * owner); a new one gets the usual 0666 less the umask */
    if (existing) {
        fchmod(fd, st.st_mode & 07777);
        if (fchown(fd, st.st_uid, st.st_gid) != 0) { /* only root may give a file away: keep ours */ }
    } else {
        fchmod(fd, 0666 & ~current_umask());
    }
    int sync_err = done == b->n ? fsync(fd) : -1;
    int renamed = done == b->n && !sync_err ? rename(tmp, target) : -1;
    int err_no = errno;
    close(fd); /* after the rename: the lock covers the temporary's whole life */
    if (renamed != 0) {
        s = loom_set_error(&m->err, LOOM_ERR_IO, "save %s: writing failed (%s); the previous file is untouched", path,
                           strerror(err_no));
        unlink(tmp);
        free(tmp);
        free(target);
        return s;
    }
    free(tmp);
    /* make the rename itself durable */
    char *slash = strrchr(target, '/');
    if (slash) *(slash == target ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? target : ".", O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(target);
    return LOOM_OK;
}

static loom_status add_json_section(bytes *b, const char tag[4], cJSON *json) {
    if (!json) return LOOM_ERR_MEMORY;
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    if (!text) return LOOM_ERR_MEMORY;
    put_section(b, tag, text, strlen(text));
    free(text);
    return LOOM_OK;
}

static void floats_section(bytes *b, const char tag[4], const float *v, size_t n) {
    bytes tmp = {0};
    put_floats(&tmp, v, n);
    if (tmp.failed) b->failed = true;
    else put_section(b, tag, tmp.p, tmp.n);
    free(tmp.p);
}

/* A model over a graph shared with other models may have their weights between its own: files hold
 * the model's tensors only, packed in tensor order (slot by slot for the optimizer state), which is
 * the layout of the model a load makes. NULL when out of memory. */
static float *packed_copy(const loom_model *m, const float *buf, int n_slots, size_t *n) {
    size_t per = 0;
    for (int t = 0; t < m->n_tensors; t++) per += m->t_size[t];
    *n = per * (size_t)n_slots;
    float *p = malloc((*n ? *n : 1) * sizeof *p), *q = p;
    if (!p) return NULL;
    for (int j = 0; j < n_slots; j++)
        for (int t = 0; t < m->n_tensors; t++, q += m->t_size[t - 1])
            memcpy(q, buf + (size_t)j * m->n_params + m->t_offset[t], m->t_size[t] * sizeof *q);
    return p;
}

static void weights_section(bytes *b, const char tag[4], const loom_model *m, const float *buf, int n_slots) {
    if (m->dense_params) {
        floats_section(b, tag, buf, (size_t)n_slots * m->n_params);
        return;
    }
    size_t n;
    float *p = packed_copy(m, buf, n_slots, &n);
    if (!p) b->failed = true;
    else floats_section(b, tag, p, n);
    free(p);
}

loom_status loom_model_save(loom_model *m, const char *path) {
    if (!m) return LOOM_ERR_ARGUMENT;
    if (!path || !path[0]) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "save: no path given");
    bytes b = {0};
    put(&b, MAGIC, 8);
    put_u32(&b, FILE_VERSION);
    uint32_t n_sections = 2 + (m->compiled ? 2 : 0) + (m->log ? 1 : 0);
    put_u32(&b, n_sections);
    loom_error e = {0};
    cJSON *arch = loom_arch_to_json(m, &e);
    if (!arch) {
        free(b.p);
        return loom_set_error(&m->err, e.code ? e.code : LOOM_ERR_MEMORY, "save %s: %s", path, e.msg);
    }
    loom_status s = add_json_section(&b, "ARCH", arch);
    weights_section(&b, "WGHT", m, m->params, 1);
    if (!s && m->compiled) {
        cJSON *comp = loom_compile_to_json(m, &e);
        if (!comp) s = e.code ? e.code : LOOM_ERR_MEMORY;
        else s = add_json_section(&b, "COMP", comp);
        weights_section(&b, "OPTS", m, m->slots, loom_optimizer_slots(&m->opt));
    }
    if (!s && m->log) s = add_json_section(&b, "HIST", loom_history_to_json(m->log));
    if (s || b.failed) {
        free(b.p);
        return loom_set_error(&m->err, s ? s : LOOM_ERR_MEMORY, "save %s: %s", path, e.msg[0] ? e.msg : "out of memory");
    }
    s = write_atomically(m, path, &b);
    free(b.p);
    if (!s) loom_clear_error(&m->err);
    return s;
}

/* ---------------------------------------------------------------- reading */

typedef struct section {
    char tag[5];
    const unsigned char *p;
    size_t n;
} section;

typedef struct parsed_file {
    unsigned char *data;
    size_t size;
    int n;
    section s[8];
} parsed_file;

/* The data readers' bounded read (regular files only, size checked before reading); the Keras
 * importer reads model files through it too. */
loom_status loom_read_file(const char *path, unsigned char **out, size_t *size, loom_error *err) {
    char msg[LOOM_ERR_MAX];
    loom_status s = loom_ld_read_file(path, MAX_FILE_BYTES, out, size, msg, sizeof msg);
    if (s) loom_set_error(err, s, "%s", msg);
    return s;
}

loom_status loom_parse_model_file(const unsigned char *data, size_t size, const char *what, parsed_file *pf,
                                  loom_error *err);

loom_status loom_parse_model_file(const unsigned char *data, size_t size, const char *what, parsed_file *pf,
                                  loom_error *err) {
    pf->n = 0;
    if (size < 16 || memcmp(data, MAGIC, 8) != 0)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: not a loom model file (bad magic number)", what);
    uint32_t version = get_u32(data + 8), count = get_u32(data + 12);
    if (version != FILE_VERSION)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: format version %u; this loom reads version %u", what, version,
                              FILE_VERSION);
    if (count < 2 || count > 8)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: %u sections; a model file has 2 to 8", what, count);
    size_t at = 16;
    for (uint32_t i = 0; i < count; i++) {
        if (size - at < 12)
            return loom_set_error(err, LOOM_ERR_DATA, "%s: truncated in the header of section %u (at byte %zu)", what, i + 1, at);
        section *s = &pf->s[pf->n];
        memcpy(s->tag, data + at, 4);
        s->tag[4] = '\0';
        for (int c = 0; c < 4; c++)
            if (s->tag[c] < 'A' || s->tag[c] > 'Z')
                return loom_set_error(err, LOOM_ERR_DATA, "%s: section %u has a corrupted tag (at byte %zu)", what, i + 1, at);
        uint64_t n = get_u64(data + at + 4);
        if (n > size - at - 12 || size - at - 12 - n < 4)
            return loom_set_error(err, LOOM_ERR_DATA, "%s: section %s is truncated: %llu bytes declared, %zu present", what,
                                  s->tag, (unsigned long long)n, size - at - 12 < 4 ? 0 : size - at - 16);
        s->p = data + at + 12;
        s->n = (size_t)n;
        uint32_t stored = get_u32(s->p + s->n);
        uint32_t crc = loom_crc32(loom_crc32(0, s->tag, 4), s->p, s->n);
        if (crc != stored)
            return loom_set_error(err, LOOM_ERR_DATA, "%s: section %s is corrupted (CRC-32 %08x, expected %08x)", what, s->tag,
                                  crc, stored);
        for (int j = 0; j < pf->n; j++)
            if (strcmp(pf->s[j].tag, s->tag) == 0)
                return loom_set_error(err, LOOM_ERR_DATA, "%s: section %s appears twice", what, s->tag);
        pf->n++;
        at += 16 + s->n;
    }
    if (at != size) return loom_set_error(err, LOOM_ERR_DATA, "%s: %zu unexpected bytes after the last section", what, size - at);
    return LOOM_OK;
}

static const section *find_section(const parsed_file *pf, const char *tag) {
    for (int i = 0; i < pf->n; i++)
        if (strcmp(pf->s[i].tag, tag) == 0) return &pf->s[i];
    return NULL;
}

/* A float section: u64 count then count f32. */
static loom_status section_floats(const section *s, const char *what, size_t expected, float *out, loom_error *err) {
    if (s->n < 8) return loom_set_error(err, LOOM_ERR_DATA, "%s: section %s is too short", what, s->tag);
    uint64_t n = get_u64(s->p);
    if (n != expected)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: section %s holds %llu values; the model needs %zu", what, s->tag,
                              (unsigned long long)n, expected);
    if ((s->n - 8) / 4 != n || (s->n - 8) % 4)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: section %s declares %llu values but has %zu bytes", what, s->tag,
                              (unsigned long long)n, s->n - 8);
    for (size_t i = 0; i < expected; i++) {
        uint32_t u = get_u32(s->p + 8 + 4 * i);
        memcpy(&out[i], &u, 4);
    }
    return LOOM_OK;
}

static cJSON *section_json(const section *s, const char *what, loom_error *err) {
    cJSON *j = cJSON_ParseWithLength((const char *)s->p, s->n);
    if (!j) loom_set_error(err, LOOM_ERR_DATA, "%s: section %s is not valid JSON", what, s->tag);
    return j;
}

/* Builds a complete model (architecture, weights, compile settings, state) from file bytes. */
static loom_model *model_from_bytes(const unsigned char *data, size_t size, const char *what, bool weights_only,
                                    loom_error *err) {
    parsed_file pf;
    if (loom_parse_model_file(data, size, what, &pf, err)) return NULL;
    const section *arch_s = find_section(&pf, "ARCH"), *w_s = find_section(&pf, "WGHT");
    if (!arch_s || !w_s) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: the %s section is missing", what, arch_s ? "WGHT" : "ARCH");
        return NULL;
    }
    cJSON *arch = section_json(arch_s, what, err);
    if (!arch) return NULL;
    /* the weight section bounds the parameters the architecture may declare: checked before the
     * model allocates (and initialises) them */
    size_t present = w_s->n >= 8 ? (w_s->n - 8) / 4 : 0;
    loom_model *m = loom_arch_from_json_limited(arch, what, weights_only, present, err);
    cJSON_Delete(arch);
    if (!m) return NULL;
    if (section_floats(w_s, what, m->n_params, m->params, err)) goto fail;
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->params[i])) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: weight %zu is not finite", what, i);
            goto fail;
        }
    if (loom_check_weight_values(m, what, err)) goto fail;
    const section *comp_s = find_section(&pf, "COMP");
    if (comp_s) {
        cJSON *comp = section_json(comp_s, what, err);
        if (!comp) goto fail;
        loom_status s = loom_compile_from_json(m, comp, what, err);
        cJSON_Delete(comp);
        if (s) goto fail;
        const section *o_s = find_section(&pf, "OPTS");
        if (!o_s) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: the OPTS section (optimizer state) is missing", what);
            goto fail;
        }
        size_t n_slots = (size_t)loom_optimizer_slots(&m->opt) * m->n_params;
        if (section_floats(o_s, what, n_slots, m->slots, err)) goto fail;
        for (size_t i = 0; i < n_slots; i++) {
            if (!isfinite(m->slots[i])) {
                loom_set_error(err, LOOM_ERR_DATA, "%s: optimizer state value %zu is not finite", what, i);
                goto fail;
            }
            int slot = (int)(i / m->n_params);
            if (m->slots[i] < 0 && loom_optimizer_slot_nonnegative(&m->opt, slot)) {
                loom_set_error(err, LOOM_ERR_DATA,
                               "%s: optimizer state value %zu (slot %d, a second moment or accumulator) is %g; it is "
                               "never negative", what, i, slot, (double)m->slots[i]);
                goto fail;
            }
        }
    }
    const section *h_s = find_section(&pf, "HIST");
    if (h_s && m->compiled) {
        cJSON *hist = section_json(h_s, what, err);
        if (!hist) goto fail;
        loom_history *h = loom_history_from_json(hist, what, err);
        cJSON_Delete(hist);
        if (!h) goto fail;
        loom_history_free(m->log);
        m->log = h;
    }
    return m;
fail:
    loom_model_free(m);
    return NULL;
}

loom_model *loom_model_load(const char *path, char *errbuf, size_t errlen) {
    loom_error err = {0};
    unsigned char *data = NULL;
    size_t size = 0;
    loom_model *m = NULL;
    if (!path) loom_set_error(&err, LOOM_ERR_ARGUMENT, "load: no path given");
    else if (!loom_read_file(path, &data, &size, &err)) m = model_from_bytes(data, size, path, false, &err);
    free(data);
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", m ? "" : err.msg); /* success: no old message */
    return m;
}

loom_model *loom_model_parse(const void *data, size_t size, const char *what, char *errbuf, size_t errlen) {
    loom_error err = {0};
    loom_model *m = data ? model_from_bytes(data, size, what ? what : "(memory)", false, &err) : NULL;
    if (!data) loom_set_error(&err, LOOM_ERR_ARGUMENT, "parse: no data");
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", m ? "" : err.msg); /* success: no old message */
    return m;
}

/* ---------------------------------------------------------------- load_weights */

loom_status loom_load_weights_loom(loom_model *m, const char *path) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    loom_error err = {0};
    unsigned char *data = NULL;
    size_t size = 0;
    if (!path) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "load_weights: no path given");
    if (loom_read_file(path, &data, &size, &err)) {
        free(data);
        return loom_set_error(&m->err, err.code, "%s", err.msg);
    }
    /* Build the file's own model (all checks included), then copy layer by layer by name into a
     * scratch copy of the parameters: either every layer matches and the copy is committed, or
     * nothing changes. */
    loom_model *src = model_from_bytes(data, size, path, true, &err);
    free(data);
    if (!src) return loom_set_error(&m->err, err.code, "%s", err.msg);
    float *next = malloc((m->n_params ? m->n_params : 1) * sizeof *next);
    if (!next) {
        loom_model_free(src);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "load_weights: out of memory");
    }
    memcpy(next, m->params, m->n_params * sizeof *next);
    char problems[LOOM_ERR_MAX] = "";
    int n_bad = 0;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        if (!L->n_weights) continue;
        loom_layer *S = loom_model_find_layer(src, L->name);
        const char *why = NULL;
        char buf[160];
        if (!S) why = "not in the file";
        else if (S->n_weights != L->n_weights) {
            snprintf(buf, sizeof buf, "%d weights in the file, %d in the model", S->n_weights, L->n_weights);
            why = buf;
        } else {
            for (int w = 0; w < L->n_weights && !why; w++)
                if (!loom_shape_equal(&S->weights[w].shape, &L->weights[w].shape)) {
                    char a[64], b[64];
                    snprintf(buf, sizeof buf, "%s has shape %s in the file, %s in the model", L->weights[w].name,
                             loom_shape_str(&S->weights[w].shape, a, sizeof a), loom_shape_str(&L->weights[w].shape, b, sizeof b));
                    why = buf;
                }
        }
        if (why) {
            size_t used = strlen(problems);
            snprintf(problems + used, sizeof problems - used, "%slayer %s: %s", n_bad ? "; " : "", L->name, why);
            n_bad++;
            continue;
        }
        for (int w = 0; w < L->n_weights; w++)
            memcpy(next + L->weights[w].offset, src->params + S->weights[w].offset,
                   loom_shape_size(&L->weights[w].shape) * sizeof(float));
    }
    loom_model_free(src);
    if (n_bad) {
        free(next);
        return loom_set_error(&m->err, LOOM_ERR_SHAPE, "load_weights %s: %d layer(s) do not match, nothing was loaded: %s", path,
                              n_bad, problems);
    }
    memcpy(m->params, next, m->n_params * sizeof *next);
    free(next);
    return LOOM_OK;
}
