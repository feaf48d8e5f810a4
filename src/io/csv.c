/* csv.c — CSV reader: numbers separated by a delimiter, an optional header row of column names,
 * RFC 4180 quoting ("a ""quoted"" field", newlines allowed inside quotes), \n or \r\n line ends.
 *
 * Conventions: spaces and tabs around a field are ignored; a completely empty line is skipped
 * (so a trailing newline, or several, changes nothing); empty fields, NA, NaN and nan are missing
 * values, kept as NaN and reported with their line when loom_csv_select needs them. Line numbers
 * in messages are 1-based lines of the file, counting lines inside quoted fields. */
#include "io/loaders.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loom_csv {
    char *what;
    int has_header;
    int cols;
    size_t rows;
    char **names;   /* cols names ("" without a header) */
    float *values;  /* rows x cols, row-major, NaN = missing */
    size_t *lines;  /* file line each row starts on */
    struct csv_name {
        const char *name;
        int col;
    } *by_name; /* header names sorted, for lookups in O(log cols) (NULL without a header) */
};

void loom_csv_free(loom_csv *csv) {
    if (!csv) return;
    if (csv->names)
        for (int c = 0; c < csv->cols; c++) free(csv->names[c]);
    free(csv->names);
    free(csv->values);
    free(csv->lines);
    free(csv->by_name);
    free(csv->what);
    free(csv);
}

size_t loom_csv_rows(const loom_csv *csv) { return csv ? csv->rows : 0; }
int loom_csv_cols(const loom_csv *csv) { return csv ? csv->cols : 0; }

const char *loom_csv_column_name(const loom_csv *csv, int col) {
    if (!csv || col < 0 || col >= csv->cols) return NULL;
    return csv->names[col];
}

int loom_csv_column_index(const loom_csv *csv, const char *name) {
    if (!csv || !name || !*name || !csv->by_name) return -1;
    int lo = 0, hi = csv->cols; /* binary search: selecting 10^6 columns by name was quadratic */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(csv->by_name[mid].name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < csv->cols && strcmp(csv->by_name[lo].name, name) == 0 ? csv->by_name[lo].col : -1;
}

static int cmp_csv_names(const void *a, const void *b) {
    return strcmp(((const struct csv_name *)a)->name, ((const struct csv_name *)b)->name);
}

/* ---------------------------------------------------------------- parsing */

typedef struct csv_parser {
    const char *t;
    size_t len, pos;
    size_t line;
    char delim;
    const char *what;
    char *err;
    size_t errlen;
    char *buf; /* the current field, NUL-terminated */
    size_t buf_len, buf_cap;
} csv_parser;

enum { END_DELIM, END_LINE, END_FILE };

static int buf_push(csv_parser *p, char c) {
    if (p->buf_len + 1 >= p->buf_cap) {
        size_t ncap = p->buf_cap ? p->buf_cap * 2 : 64;
        char *nb = realloc(p->buf, ncap);
        if (!nb) return 0;
        p->buf = nb;
        p->buf_cap = ncap;
    }
    p->buf[p->buf_len++] = c;
    p->buf[p->buf_len] = '\0';
    return 1;
}

static int is_blank(const csv_parser *p, char c) { return (c == ' ' || c == '\t') && c != p->delim; }

/* Consumes a line end at pos (\n, \r\n or a lone \r); returns 0 if there is none. */
static int eat_eol(csv_parser *p) {
    if (p->pos >= p->len) return 0;
    if (p->t[p->pos] == '\n') {
        p->pos++;
    } else if (p->t[p->pos] == '\r') {
        p->pos++;
        if (p->pos < p->len && p->t[p->pos] == '\n') p->pos++;
    } else {
        return 0;
    }
    p->line++;
    return 1;
}

/* Reads one field into p->buf; *quoted says whether it was quoted, *end how it ended. */
static loom_status read_field(csv_parser *p, int *quoted, int *end) {
    p->buf_len = 0;
    if (!buf_push(p, 'x')) goto oom; /* makes sure buf exists */
    p->buf_len = 0;
    p->buf[0] = '\0';
    *quoted = 0;
    while (p->pos < p->len && is_blank(p, p->t[p->pos])) p->pos++;
    if (p->pos < p->len && p->t[p->pos] == '"') {
        *quoted = 1;
        size_t open_line = p->line;
        p->pos++;
        for (;;) {
            if (p->pos >= p->len)
                return loom_ld_fail(p->err, p->errlen, LOOM_ERR_DATA, "%s: line %zu: quoted field is never closed",
                                    p->what, open_line);
            char c = p->t[p->pos];
            if (c == '"') {
                if (p->pos + 1 < p->len && p->t[p->pos + 1] == '"') {
                    if (!buf_push(p, '"')) goto oom;
                    p->pos += 2;
                    continue;
                }
                p->pos++;
                break;
            }
            if (c == '\0') goto nul;
            if (c == '\n' || (c == '\r' && !(p->pos + 1 < p->len && p->t[p->pos + 1] == '\n'))) p->line++;
            if (!buf_push(p, c)) goto oom;
            p->pos++;
        }
        while (p->pos < p->len && is_blank(p, p->t[p->pos])) p->pos++;
        if (p->pos < p->len && p->t[p->pos] != p->delim && p->t[p->pos] != '\n' && p->t[p->pos] != '\r')
            return loom_ld_fail(p->err, p->errlen, LOOM_ERR_DATA,
                                "%s: line %zu: unexpected character '%c' after a closing quote", p->what, p->line,
                                (p->t[p->pos] >= 32 && p->t[p->pos] < 127) ? p->t[p->pos] : '?');
    } else {
        while (p->pos < p->len) {
            char c = p->t[p->pos];
            if (c == p->delim || c == '\n' || c == '\r') break;
            if (c == '\0') goto nul;
            if (c == '"')
                return loom_ld_fail(p->err, p->errlen, LOOM_ERR_DATA,
                                    "%s: line %zu: a quote inside an unquoted field", p->what, p->line);
            if (!buf_push(p, c)) goto oom;
            p->pos++;
        }
        while (p->buf_len > 0 && is_blank(p, p->buf[p->buf_len - 1])) p->buf[--p->buf_len] = '\0';
    }
    if (p->pos >= p->len) {
        *end = END_FILE;
    } else if (p->t[p->pos] == p->delim) {
        p->pos++;
        *end = END_DELIM;
    } else {
        eat_eol(p);
        *end = END_LINE;
    }
    return LOOM_OK;
nul:
    return loom_ld_fail(p->err, p->errlen, LOOM_ERR_DATA, "%s: line %zu: NUL byte in the text", p->what, p->line);
oom:
    return loom_ld_fail(p->err, p->errlen, LOOM_ERR_MEMORY, "%s: out of memory", p->what);
}

/* Is s a decimal number: [+-] (digits [. digits] | . digits) [e [+-] digits], or [+-]inf(inity)?
 * Checked before strtof, which would also take hex floats, "nan(...)" and leading garbage. */
static int is_number(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (strcmp(s, "inf") == 0 || strcmp(s, "Inf") == 0 || strcmp(s, "infinity") == 0 ||
        strcmp(s, "Infinity") == 0 || strcmp(s, "INF") == 0)
        return 1;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') s++, digits++;
    }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (*s < '0' || *s > '9') return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

static int is_missing(const char *s) {
    return *s == '\0' || strcmp(s, "NA") == 0 || strcmp(s, "NaN") == 0 || strcmp(s, "nan") == 0;
}

/* Field text for a message: printable, at most 40 characters. */
static void excerpt(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (; *s && k + 4 < cap; s++) out[k++] = (*s >= 32 && *s < 127) ? *s : '?';
    if (*s) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
}

loom_csv *loom_csv_parse(const char *text, size_t len, const char *what, int has_header, char delimiter,
                         char *err, size_t errlen) {
    if (!what) what = "<csv text>";
    if (err && errlen) err[0] = '\0';
    if (!text && len) {
        loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: text is NULL", what);
        return NULL;
    }
    if (delimiter == 0) delimiter = ',';
    if (delimiter == '"' || delimiter == '\n' || delimiter == '\r') {
        loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: delimiter cannot be a quote or a line end", what);
        return NULL;
    }
    if ((uint64_t)len > LOOM_LOAD_MAX_BYTES) {
        loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: text is over the size limit", what);
        return NULL;
    }
    loom_csv *csv = calloc(1, sizeof *csv);
    size_t wl = strlen(what);
    if (csv) csv->what = malloc(wl + 1);
    if (!csv || !csv->what) {
        loom_csv_free(csv);
        loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", what);
        return NULL;
    }
    memcpy(csv->what, what, wl + 1);
    csv->has_header = has_header != 0;

    csv_parser p = {text, len, 0, 1, delimiter, what, err, errlen, NULL, 0, 0};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3; /* UTF-8 byte-order mark */

    size_t name_cap = 0, val_cap = 0, line_cap = 0, nvals = 0;
    int header_pending = has_header, n_names = 0;
    loom_status s = LOOM_OK;
    while (p.pos < p.len) {
        if (eat_eol(&p)) continue; /* an empty line */
        size_t row_line = p.line;
        int nf = 0, quoted, end;
        do {
            if ((s = read_field(&p, &quoted, &end))) goto fail;
            if (nf == 0x7fffffff) {
                s = loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: line %zu: too many fields", what, row_line);
                goto fail;
            }
            if (csv->cols && nf >= csv->cols) {
                nf++; /* keep counting for the message */
                continue;
            }
            if (header_pending) {
                if ((size_t)nf == name_cap) {
                    size_t ncap = name_cap ? name_cap * 2 : 16;
                    char **nn = realloc(csv->names, ncap * sizeof *nn);
                    if (!nn) goto oom;
                    csv->names = nn;
                    name_cap = ncap;
                }
                csv->names[nf] = malloc(p.buf_len + 1);
                if (!csv->names[nf]) goto oom;
                n_names = nf + 1;
                memcpy(csv->names[nf], p.buf, p.buf_len + 1);
                nf++;
                continue;
            }
            float v;
            if (is_missing(p.buf)) {
                v = NAN;
            } else if (is_number(p.buf)) {
                /* "inf" and a number beyond float32 (1e999) both read as infinity, as every other
                 * reader has it; loom_csv_select refuses either in a column it copies. */
                v = strtof(p.buf, NULL);
            } else {
                char ex[48];
                excerpt(p.buf, ex, sizeof ex);
                const char *name = csv->names && nf < csv->cols ? csv->names[nf] : "";
                s = loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                                 "%s: line %zu, column %d%s%s%s: cannot read \"%s\" as a number", what, row_line,
                                 nf + 1, *name ? " ('" : "", name, *name ? "')" : "", ex);
                goto fail;
            }
            if (nvals == val_cap) {
                size_t ncap = val_cap ? val_cap * 2 : 256;
                /* A text of commas has about one field per byte: cap the table like a binary array. */
                if ((uint64_t)ncap * sizeof(float) > LOOM_LOAD_MAX_BYTES) {
                    s = loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: line %zu: the table exceeds %llu bytes",
                                     what, row_line, (unsigned long long)LOOM_LOAD_MAX_BYTES);
                    goto fail;
                }
                float *nv = realloc(csv->values, ncap * sizeof *nv);
                if (!nv) goto oom;
                csv->values = nv;
                val_cap = ncap;
            }
            csv->values[nvals++] = v;
            nf++;
        } while (end == END_DELIM);

        if (header_pending) {
            csv->cols = nf;
            header_pending = 0;
            /* Sorted names: lookups by name, and duplicates (which would make selection by name
             * ambiguous) side by side. */
            struct csv_name *sorted = malloc((size_t)nf * sizeof *sorted);
            if (!sorted) goto oom;
            for (int c = 0; c < nf; c++) sorted[c] = (struct csv_name){csv->names[c], c};
            qsort(sorted, (size_t)nf, sizeof *sorted, cmp_csv_names);
            csv->by_name = sorted;
            for (int c = 1; c < nf; c++) {
                if (*sorted[c].name && strcmp(sorted[c].name, sorted[c - 1].name) == 0) {
                    char ex[48];
                    excerpt(sorted[c].name, ex, sizeof ex);
                    s = loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: line %zu: column name '%s' appears twice",
                                     what, row_line, ex);
                    goto fail;
                }
            }
            continue;
        }
        if (csv->cols == 0) {
            /* No header: the first row sets the width, and the names are all "". */
            csv->cols = nf;
            csv->names = calloc((size_t)nf, sizeof *csv->names);
            if (!csv->names) goto oom;
            for (int c = 0; c < nf; c++) {
                csv->names[c] = calloc(1, 1);
                if (!csv->names[c]) goto oom;
            }
        }
        if (nf != csv->cols) {
            s = loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: line %zu has %d fields, expected %d (%s)", what,
                             row_line, nf, csv->cols, has_header ? "as in the header" : "as in the first row");
            goto fail;
        }
        if (csv->rows == line_cap) {
            size_t ncap = line_cap ? line_cap * 2 : 64;
            size_t *nl = realloc(csv->lines, ncap * sizeof *nl);
            if (!nl) goto oom;
            csv->lines = nl;
            line_cap = ncap;
        }
        csv->lines[csv->rows++] = row_line;
    }
    free(p.buf);
    if (csv->cols == 0) {
        loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: no %s", what, has_header ? "header row" : "rows");
        loom_csv_free(csv);
        return NULL;
    }
    return csv;
oom:
    s = loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", what);
fail:
    (void)s;
    /* While the header is read, cols is still 0: tell loom_csv_free how many names exist. */
    if (header_pending) csv->cols = n_names;
    free(p.buf);
    loom_csv_free(csv);
    return NULL;
}

loom_csv *loom_csv_read(const char *path, int has_header, char delimiter, char *err, size_t errlen) {
    unsigned char *buf;
    size_t len;
    if (loom_ld_read_file(path, LOOM_LOAD_MAX_BYTES, &buf, &len, err, errlen)) return NULL;
    loom_csv *csv = loom_csv_parse((const char *)buf, len, path, has_header, delimiter, err, errlen);
    free(buf);
    return csv;
}

loom_status loom_csv_select(const loom_csv *csv, int n, const char *const *columns, float *out, char *err,
                            size_t errlen) {
    if (err && errlen) err[0] = '\0'; /* a call that succeeds leaves no old message */
    if (!csv) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "CSV table is NULL");
    if (n <= 0 || !columns || (!out && csv->rows))
        return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: select needs n > 0 column names and an output",
                            csv->what);
    int stack_idx[32];
    int *idx = n <= 32 ? stack_idx : malloc((size_t)n * sizeof *idx);
    if (!idx) return loom_ld_fail(err, errlen, LOOM_ERR_MEMORY, "%s: out of memory", csv->what);
    loom_status s = LOOM_OK;
    for (int j = 0; j < n && !s; j++) {
        idx[j] = loom_csv_column_index(csv, columns[j]);
        if (idx[j] >= 0) continue;
        char known[256] = "";
        size_t k = 0;
        for (int c = 0; c < csv->cols; c++) {
            int w = snprintf(known + k, sizeof known - k, "%s'%s'", c ? ", " : "", csv->names[c]);
            if (w < 0 || (size_t)w >= sizeof known - k) {
                known[k] = '\0';
                strcpy(known + (k + 4 <= sizeof known ? k : sizeof known - 4), "...");
                break;
            }
            k += (size_t)w;
        }
        int headerless = !csv->has_header;
        s = loom_ld_fail(err, errlen, LOOM_ERR_NAME, "%s: unknown column '%s' (%s%s)", csv->what,
                         columns[j] ? columns[j] : "(null)", headerless ? "the file has no header row" : "columns: ",
                         headerless ? "" : known);
    }
    /* Look for missing and infinite values before writing anything, so out is never half filled
     * on error. */
    for (size_t r = 0; r < csv->rows && !s; r++)
        for (int j = 0; j < n && !s; j++) {
            float v = csv->values[r * (size_t)csv->cols + (size_t)idx[j]];
            if (isnan(v))
                s = loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: line %zu, column '%s': missing value", csv->what,
                                 csv->lines[r], columns[j]);
            else if (isinf(v))
                s = loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                                 "%s: line %zu, column '%s': %s is not a finite float32 (inf, or beyond +-3.4e38)",
                                 csv->what, csv->lines[r], columns[j], v > 0 ? "+inf" : "-inf");
        }
    for (size_t r = 0; r < csv->rows && !s; r++)
        for (int j = 0; j < n; j++) out[r * (size_t)n + (size_t)j] = csv->values[r * (size_t)csv->cols + (size_t)idx[j]];
    if (idx != stack_idx) free(idx);
    return s;
}
