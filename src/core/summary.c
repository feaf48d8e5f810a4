/* summary.c — a Keras-like model summary: layer (type), output shape, params, connected to. */
#include "core/model.h"

#include <string.h>

#define W_LAYER 34
#define W_SHAPE 20
#define W_PARAM 11
#define W_CONN 24

static void rule(FILE *out, const char *left, const char *fill, const char *mid, const char *right) {
    const int widths[4] = {W_LAYER, W_SHAPE, W_PARAM, W_CONN};
    fputs(left, out);
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < widths[c] + 2; i++) fputs(fill, out);
        fputs(c < 3 ? mid : right, out);
    }
    fputc('\n', out);
}

static void with_commas(size_t v, char *buf, size_t len) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%zu", v);
    size_t n = strlen(tmp), j = 0;
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        buf[j++] = tmp[i];
        if ((n - i - 1) % 3 == 0 && i + 1 < n) buf[j++] = ',';
    }
    buf[j] = '\0';
}

static void bytes_text(size_t params, char *buf, size_t len) {
    double b = (double)params * 4.0;
    if (b < 1024) snprintf(buf, len, "%.2f B", b);
    else if (b < 1024 * 1024) snprintf(buf, len, "%.2f KB", b / 1024);
    else snprintf(buf, len, "%.2f MB", b / (1024 * 1024));
}

/* Keras writes an inbound tensor as name[node][tensor]: the call index of the producing layer. */
static int call_index(const loom_model *m, const loom_node *n) {
    int idx = 0;
    for (int i = 0; i < m->n_order && m->order[i].node != n; i++) idx += m->order[i].node->layer == n->layer;
    return idx;
}

loom_status loom_summary(const loom_model *m, FILE *out) {
    if (!m || !out) return LOOM_ERR_ARGUMENT;
    fprintf(out, "Model: \"functional\"\n");
    rule(out, "┏", "━", "┳", "┓");
    fprintf(out, "┃ %-*s ┃ %-*s ┃ %*s ┃ %-*s ┃\n", W_LAYER, "Layer (type)", W_SHAPE, "Output Shape", W_PARAM,
            "Param #", W_CONN, "Connected to");
    rule(out, "┡", "━", "╇", "┩");
    for (int i = 0; i < m->n_order; i++) {
        const loom_node *n = m->order[i].node;
        const loom_layer *L = n->layer;
        char name[2 * LOOM_NAME_MAX + 4], shape[64], params[32], conn[256] = "-";
        snprintf(name, sizeof name, "%s (%s)", L->name, L->op->class_name);
        loom_shape_str(&n->out_shape, shape, sizeof shape);
        size_t count = 0;
        bool first_call = call_index(m, n) == 0;
        for (int w = 0; w < L->n_weights; w++) count += loom_shape_size(&L->weights[w].shape);
        with_commas(first_call ? count : 0, params, sizeof params); /* shared weights counted once */
        if (n->n_in) {
            conn[0] = '\0';
            for (int j = 0; j < n->n_in; j++) {
                size_t used = strlen(conn);
                snprintf(conn + used, sizeof conn - used, "%s%s[%d][0]", j ? ", " : "", n->in[j]->layer->name,
                         call_index(m, n->in[j]));
            }
        }
        fprintf(out, "│ %-*.*s │ %-*s │ %*s │ %-*.*s │\n", W_LAYER, W_LAYER, name, W_SHAPE, shape, W_PARAM, params,
                W_CONN, W_CONN, conn);
        if (i + 1 < m->n_order) rule(out, "├", "─", "┼", "┤");
    }
    rule(out, "└", "─", "┴", "┘");
    /* as Keras: the layers' trainable flags as they are now (a change trains at the next compile);
     * the total is this model's weights (the graph's buffer may hold other models' too) */
    size_t frozen = 0, total = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const loom_layer *L = m->tensors[t].layer;
        total += m->tensors[t].size;
        if (L->frozen || L->weights[m->tensors[t].index].non_trainable) frozen += m->tensors[t].size;
    }
    const size_t counts[3] = {total, total - frozen, frozen};
    const char *labels[3] = {"Total", "Trainable", "Non-trainable"};
    for (int i = 0; i < 3; i++) {
        char num[32], bytes[32];
        with_commas(counts[i], num, sizeof num);
        bytes_text(counts[i], bytes, sizeof bytes);
        fprintf(out, " %s params: %s (%s)\n", labels[i], num, bytes);
    }
    return LOOM_OK;
}
