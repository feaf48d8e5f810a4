/* data_bind.c — .npz members or CSV columns bound by input / output name (data_bind.h). */
#include "data_bind.h"

#include <stdlib.h>
#include <string.h>

/* The member for an input or output: the value of its --map pair, else its own name. */
static const char *member_for(const opt_list *maps, const char *name) {
    for (int i = 0; maps && i < maps->n; i++) {
        const char *eq = strchr(maps->v[i], '=');
        if (eq && (size_t)(eq - maps->v[i]) == strlen(name) && strncmp(maps->v[i], name, strlen(name)) == 0) return eq + 1;
    }
    return name;
}

size_t bind_step_size(const loom_model *m, int input) {
    for (int j = 0; j < loom_model_num_nodes(m); j++) {
        if (strcmp(loom_layer_name(loom_model_node_layer(m, j)), loom_model_input_name(m, input)) != 0) continue;
        int dims[16], rank = loom_model_node_shape(m, j, dims);
        size_t per = 1;
        for (int d = 1; d < rank; d++) per *= (size_t)dims[d];
        return per;
    }
    return 0;
}

static void names_of(loom_model *m, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < loom_model_num_inputs(m) + loom_model_num_outputs(m) && used < cap; i++) {
        int ni = loom_model_num_inputs(m);
        const char *n = i < ni ? loom_model_input_name(m, i) : loom_model_output_name(m, i - ni);
        used += (size_t)snprintf(buf + used, cap - used, "%s%s %s", i ? "," : "", i < ni ? " input" : " output", n);
    }
}

int bind_check_maps(loom_model *m, const opt_list *maps, char *err, size_t errlen) {
    for (int i = 0; maps && i < maps->n; i++) {
        char name[256];
        const char *member;
        if (!opts_split_pair(maps->v[i], name, sizeof name, &member)) {
            snprintf(err, errlen, "--map %s: give NAME=MEMBER", maps->v[i]);
            return -1;
        }
        if (loom_model_input_index(m, name) < 0 && loom_model_output_index(m, name) < 0) {
            char names[1024];
            names_of(m, names, sizeof names);
            snprintf(err, errlen, "--map %s: the model has no input or output %s (it has:%s)", maps->v[i], name, names);
            return -1;
        }
    }
    return 0;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The columns of a CSV file for an input or output of `want` values per sample, by header name:
 *   --map NAME=COL1,COL2,...   those columns;   --map NAME=FIRST:LAST   that range (inclusive);
 *   otherwise column NAME (one value) or NAME_0 ... NAME_{want-1}.
 * Fills a (want values per row) or returns -1 with a message; *absent when no column matched and
 * no --map named it (an output's targets may be left out). */
static int csv_columns(const loom_csv *csv, const char *path, const opt_list *maps, const char *name, size_t want,
                       loom_ndarray *a, bool *absent, char *err, size_t errlen) {
    *absent = false;
    if (want == 0 || want > 100000) {
        snprintf(err, errlen, "%s: %s needs %zu values per sample, too many for CSV columns", path, name, want);
        return -1;
    }
    const char **cols = calloc(want, sizeof *cols);
    char **owned = calloc(want, sizeof *owned);
    char buf[64];
    int rc = -1;
    if (!cols || !owned) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    const char *spec = member_for(maps, name);
    bool mapped = spec != name;
    size_t n = 0;
    if (mapped && strchr(spec, ':') && !strchr(spec, ',')) {
        char first[256];
        const char *colon = strchr(spec, ':');
        snprintf(first, sizeof first, "%.*s", (int)(colon - spec), spec);
        int lo = loom_csv_column_index(csv, first), hi = loom_csv_column_index(csv, colon + 1);
        if (lo < 0 || hi < lo) {
            snprintf(err, errlen, "%s: --map %s=%s: no such column range", path, name, spec);
            goto out;
        }
        for (int c = lo; c <= hi && n < want + 1; c++) cols[n < want ? n : want - 1] = loom_csv_column_name(csv, c), n++;
    } else if (mapped) {
        for (const char *p = spec; *p && n <= want;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (n < want && !(owned[n] = strndup(p, len))) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            if (n < want) cols[n] = owned[n];
            n++;
            p += len + (comma ? 1 : 0);
        }
    } else if (want == 1 && loom_csv_column_index(csv, name) >= 0) {
        cols[n++] = name;
    } else {
        for (size_t i = 0; i < want; i++) {
            snprintf(buf, sizeof buf, "%.40s_%zu", name, i);
            int c = loom_csv_column_index(csv, buf);
            if (c < 0) {
                if (i == 0) {
                    *absent = true;
                    snprintf(err, errlen, "%s: no column %s%s (bind others with --map %s=COL,COL,... or FIRST:LAST)", path,
                             want == 1 ? name : buf, want == 1 ? "" : " ...", name);
                } else {
                    snprintf(err, errlen, "%s: no column %s: %s needs %zu columns %s_0 ... %s_%zu", path, buf, name, want, name,
                             name, want - 1);
                }
                goto out;
            }
            cols[n++] = loom_csv_column_name(csv, c);
        }
    }
    if (n != want) {
        snprintf(err, errlen, "%s: --map %s=%s names %zu columns, %s needs %zu", path, name, spec, n, name, want);
        goto out;
    }
    size_t rows = loom_csv_rows(csv);
    if (rows > SIZE_MAX / sizeof(float) / want) {
        snprintf(err, errlen, "%s: too many rows", path);
        goto out;
    }
    a->rank = 2;
    a->dims[0] = rows;
    a->dims[1] = want;
    a->size = rows * want;
    a->data = malloc((a->size ? a->size : 1) * sizeof(float));
    if (!a->data) {
        snprintf(err, errlen, "out of memory for %s", path);
        goto out;
    }
    if (loom_csv_select(csv, (int)want, cols, a->data, err, errlen)) {
        loom_ndarray_free(a);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; owned && i < want; i++) free(owned[i]);
    free(owned);
    free(cols);
    return rc;
}

/* The optional member `<member>_lengths` of a variable input: n whole numbers in 1..steps, as ints.
 * 0 (with *out NULL when the file has no such member) or -1 with a message. */
static int npz_lengths(const char *path, const char *member, size_t n, size_t steps, int **out, char *err,
                       size_t errlen) {
    *out = NULL;
    char name[300];
    if ((size_t)snprintf(name, sizeof name, "%s_lengths", member) >= sizeof name) return 0;
    loom_ndarray a;
    char e[512];
    loom_status s = loom_npz_load(path, name, &a, e, sizeof e);
    if (s == LOOM_ERR_NAME) return 0;
    if (s != LOOM_OK) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    int rc = -1;
    if (a.size != n || a.rank < 1 || a.dims[0] != n) {
        snprintf(err, errlen, "%s: member %s holds %zu values, one length per sample of %s (%zu) expected", path, name,
                 a.size, member, n);
        goto out;
    }
    int *len = malloc((n ? n : 1) * sizeof *len);
    if (!len) {
        snprintf(err, errlen, "out of memory for %s", name);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        float v = a.data[i];
        if (!(v >= 1 && v <= (float)steps) || v != (float)(int)v) {
            snprintf(err, errlen, "%s: member %s: sample %zu has length %g; lengths are whole numbers in 1..%zu (%s's steps)",
                     path, name, i, (double)v, steps, member);
            free(len);
            goto out;
        }
        len[i] = (int)v;
    }
    *out = len;
    rc = 0;
out:
    loom_ndarray_free(&a);
    return rc;
}

int bind_data_file(loom_model *m, const char *path, const opt_list *maps, bind_targets targets, bound_data *b, char *err,
             size_t errlen) {
    memset(b, 0, sizeof *b);
    if (bind_check_maps(m, maps, err, errlen)) return -1;
    loom_csv *csv = NULL;
    if (ends_with(path, ".csv")) {
        char e[512];
        if (!(csv = loom_csv_read(path, 1, 0, e, sizeof e))) {
            snprintf(err, errlen, "%s", e);
            return -1;
        }
    }
    int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m), n_y = 0;
    for (int i = 0; i < ni + (targets == BIND_NO_TARGETS ? 0 : no); i++) {
        bool is_input = i < ni;
        int k = i - ni;
        const char *name = is_input ? loom_model_input_name(m, i) : loom_model_output_name(m, k);
        loom_loss loss = {0};
        if (!is_input) {
            loom_model_get_loss(m, k, &loss);
            if (!loss.name && !loss.fn) continue; /* no loss: no targets needed */
        }
        const char *member = member_for(maps, name);
        size_t want = is_input ? loom_model_input_size(m, i) : loom_model_target_size(m, k);
        loom_ndarray *a = &b->arrays[b->n_arrays];
        char e[512];
        bool absent = false;
        if (csv ? csv_columns(csv, path, maps, name, want, a, &absent, e, sizeof e) != 0
                : loom_npz_load(path, member, a, e, sizeof e) != LOOM_OK) {
            if (!is_input && targets == BIND_TARGETS_OPTIONAL && (absent || !csv)) continue;
            if (csv) snprintf(err, errlen, "%s %s: %s", is_input ? "input" : "output", name, e);
            else
                snprintf(err, errlen, "%s %s: %s (bind another member with --map %s=MEMBER)", is_input ? "input" : "output",
                         name, e, name);
            bind_free(b);
            loom_csv_free(csv);
            return -1;
        }
        b->n_arrays++;
        size_t per = a->rank > 0 && a->dims[0] ? a->size / a->dims[0] : 0;
        if (is_input && loom_model_input_variable(m, i) && a->rank >= 2) /* any whole number of steps */
            want = per && per % bind_step_size(m, i) == 0 ? per : bind_step_size(m, i);
        if (a->rank < 1 || per != want) {
            snprintf(err, errlen, "%s: member %s holds %zu values per sample, %s %s needs %zu", path, member, per,
                     is_input ? "input" : "output", name, want);
            bind_free(b);
            loom_csv_free(csv);
            return -1;
        }
        if (b->n_arrays > 1 && a->dims[0] != b->n) {
            snprintf(err, errlen, "%s: member %s has %zu samples, the members before it %zu", path, member, a->dims[0], b->n);
            bind_free(b);
            loom_csv_free(csv);
            return -1;
        }
        b->n = a->dims[0];
        loom_array arr = {.name = name, .data = a->data, .n = a->dims[0], .count = a->size};
        if (is_input && !csv && loom_model_input_variable(m, i) && a->rank >= 2 && per) {
            if (npz_lengths(path, member, b->n, per / bind_step_size(m, i), &b->lengths[i], err, errlen)) {
                bind_free(b);
                return -1;
            }
            arr.lengths = b->lengths[i];
        }
        if (is_input) b->x[i] = arr;
        else b->y[n_y++] = arr;
    }
    b->data = (loom_data){.n_x = ni, .x = b->x, .n_y = n_y, .y = b->y};
    loom_csv_free(csv);
    return 0;
}

void bind_free(bound_data *b) {
    for (int i = 0; i < b->n_arrays; i++) loom_ndarray_free(&b->arrays[i]);
    for (int i = 0; i < LOOM_MAX_OUTPUTS; i++) free(b->lengths[i]);
    memset(b, 0, sizeof *b);
}
