/* data_bind.c — .npz members bound by input / output name (data_bind.h). */
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

int bind_npz(loom_model *m, const char *path, const opt_list *maps, bind_targets targets, bound_data *b, char *err,
             size_t errlen) {
    memset(b, 0, sizeof *b);
    if (bind_check_maps(m, maps, err, errlen)) return -1;
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
        if (loom_npz_load(path, member, a, e, sizeof e)) {
            if (!is_input && targets == BIND_TARGETS_OPTIONAL) continue;
            snprintf(err, errlen, "%s %s: %s (bind another member with --map %s=MEMBER)", is_input ? "input" : "output",
                     name, e, name);
            bind_free(b);
            return -1;
        }
        b->n_arrays++;
        size_t per = a->rank > 0 && a->dims[0] ? a->size / a->dims[0] : 0;
        if (a->rank < 1 || per != want) {
            snprintf(err, errlen, "%s: member %s holds %zu values per sample, %s %s needs %zu", path, member, per,
                     is_input ? "input" : "output", name, want);
            bind_free(b);
            return -1;
        }
        if (b->n_arrays > 1 && a->dims[0] != b->n) {
            snprintf(err, errlen, "%s: member %s has %zu samples, the members before it %zu", path, member, a->dims[0], b->n);
            bind_free(b);
            return -1;
        }
        b->n = a->dims[0];
        loom_array arr = {.name = name, .data = a->data, .n = a->dims[0], .count = a->size};
        if (is_input) b->x[i] = arr;
        else b->y[n_y++] = arr;
    }
    b->data = (loom_data){.n_x = ni, .x = b->x, .n_y = n_y, .y = b->y};
    return 0;
}

void bind_free(bound_data *b) {
    for (int i = 0; i < b->n_arrays; i++) loom_ndarray_free(&b->arrays[i]);
    memset(b, 0, sizeof *b);
}
