/* plot.c — the model as a graph (plot.h): DOT text written here, rendered to SVG or PNG by
 * Graphviz's library in process (gvc + cgraph) when the build has it (LOOM_USE_GRAPHVIZ). */
#include "plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LOOM_HAVE_GRAPHVIZ
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#endif

/* Loss colours: distinct, readable under black text, and the legend's order. */
static const char *const LOSS_COLOURS[] = {"#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3",
                                           "#b3de69", "#fccde5", "#ffffb3", "#bc80bd", "#ccebc5"};
#define N_COLOURS (int)(sizeof LOSS_COLOURS / sizeof *LOSS_COLOURS)

const char *plot_loss_colour(int i) { return LOSS_COLOURS[i % N_COLOURS]; }

typedef struct text {
    char *p;
    size_t n, cap;
    bool failed;
} text;

static void add(text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void add(text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->p && t->n + (size_t)n < t->cap) {
            t->n += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* A DOT string: quotes and backslashes escaped (layer names come from model files). */
static void add_quoted(text *t, const char *s) {
    add(t, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') add(t, "\\%c", *s);
        else if (*s == '\n') add(t, "\\n");
        else if ((unsigned char)*s >= 32) add(t, "%c", *s);
    }
    add(t, "\"");
}

static void shape_text(char *buf, size_t cap, int rank, const int *dims) {
    size_t used = (size_t)snprintf(buf, cap, "(None");
    for (int d = 0; d < rank && used < cap; d++) used += (size_t)snprintf(buf + used, cap - used, ", %d", dims[d]);
    if (used < cap) snprintf(buf + used, cap - used, ")");
}

char *plot_dot(loom_model *m, const plot_options *o) {
    text t = {0};
    int nn = loom_model_num_nodes(m), no = loom_model_num_outputs(m), nl = loom_model_num_layers(m);
    add(&t, "digraph model {\n  graph [rankdir=%s, fontname=\"Helvetica\", bgcolor=\"white\", nodesep=0.35, ranksep=0.45",
        o->rankdir ? o->rankdir : "TB");
    if (o->dpi > 0) add(&t, ", dpi=%g", o->dpi);
    add(&t, "];\n  node [shape=box, fontname=\"Helvetica\", fontsize=11, style=\"%s\", fillcolor=\"#ffffff\"];\n"
            "  edge [color=\"#555555\", arrowsize=0.7];\n",
        o->losses ? "filled" : "rounded,filled");
    /* the outputs with a loss, in output order: their colours */
    int loss_out[LOOM_MAX_OUTPUTS], n_loss = 0;
    for (int k = 0; k < no; k++) {
        loom_loss l;
        if (loom_model_get_loss(m, k, &l) == LOOM_OK && (l.name || l.fn)) loss_out[n_loss++] = k;
    }
    for (int li = 0; li < nl; li++) {
        loom_layer *L = loom_model_layer(m, li);
        const char *name = loom_layer_name(L);
        int calls = 0, first = -1;
        for (int i = 0; i < nn; i++)
            if (loom_model_node_layer(m, i) == L) {
                if (first < 0) first = i;
                calls++;
            }
        add(&t, "  L%d [label=", li);
        char label[1024];
        size_t used = (size_t)snprintf(label, sizeof label, "%s\n%s", name, loom_layer_class(L));
        if (calls > 1) used += (size_t)snprintf(label + used, sizeof label - used, "  (shared: %d calls)", calls);
        if (o->show_shapes && first >= 0 && used < sizeof label) {
            int dims[16], in_dims[16];
            char out_s[160], in_s[480] = "";
            int rank = loom_model_node_shape(m, first, dims);
            shape_text(out_s, sizeof out_s, rank, dims);
            size_t iu = 0;
            for (int j = 0; j < loom_model_node_num_inputs(m, first) && iu < sizeof in_s; j++) {
                char one[160];
                int r = loom_model_node_shape(m, loom_model_node_input(m, first, j), in_dims);
                shape_text(one, sizeof one, r, in_dims);
                iu += (size_t)snprintf(in_s + iu, sizeof in_s - iu, "%s%s", j ? ", " : "", one);
            }
            if (in_s[0]) used += (size_t)snprintf(label + used, sizeof label - used, "\ninput: %s", in_s);
            if (used < sizeof label) used += (size_t)snprintf(label + used, sizeof label - used, "\noutput: %s", out_s);
        }
        /* a frozen layer (loom_layer_set_trainable 0, read at compile) says so and is greyed */
        bool frozen = loom_layer_num_weights(L) > 0 && !loom_layer_trainable(L);
        if (frozen && used < sizeof label) used += (size_t)snprintf(label + used, sizeof label - used, "  (frozen)");
        if (o->show_dtype && used < sizeof label) /* Keras's plot shows the layer's policy name */
            snprintf(label + used, sizeof label - used, "\ndtype: %s",
                     loom_model_layer_policy(m, L) == LOOM_POLICY_MIXED_BFLOAT16 ? "mixed_bfloat16" : "float32");
        add_quoted(&t, label);
        if (o->losses) {
            /* every loss reaching the layer gets a stripe of its colour */
            char colours[256] = "";
            int n_reach = 0;
            for (int i = 0; i < n_loss; i++) {
                if (loom_loss_reaches(m, loom_model_output_name(m, loss_out[i]), name) != 1) continue;
                size_t cu = strlen(colours);
                snprintf(colours + cu, sizeof colours - cu, "%s%s", n_reach ? ":" : "", plot_loss_colour(i));
                n_reach++;
            }
            if (n_reach > 1) add(&t, ", style=\"striped\", fillcolor=\"%s\"", colours);
            else if (n_reach == 1) add(&t, ", fillcolor=\"%s\"", colours);
            else add(&t, ", fillcolor=\"#eeeeee\", fontcolor=\"#777777\"");
        }
        if (frozen) add(&t, ", color=\"#aaaaaa\", fontcolor=\"#888888\"");
        if (calls > 1) add(&t, ", penwidth=2.2");
        add(&t, "];\n");
    }
    /* edges layer -> layer, one per distinct pair */
    for (int i = 0; i < nn; i++) {
        loom_layer *to = loom_model_node_layer(m, i);
        for (int j = 0; j < loom_model_node_num_inputs(m, i); j++) {
            int src = loom_model_node_input(m, i, j);
            loom_layer *from = loom_model_node_layer(m, src);
            bool seen = false;
            for (int i2 = 0; i2 <= i && !seen; i2++)
                for (int j2 = 0; j2 < loom_model_node_num_inputs(m, i2) && !seen; j2++) {
                    if (i2 == i && j2 >= j) break;
                    seen = loom_model_node_layer(m, i2) == to && loom_model_node_layer(m, loom_model_node_input(m, i2, j2)) == from;
                }
            if (seen) continue;
            int a = -1, b = -1;
            for (int li = 0; li < nl; li++) {
                if (loom_model_layer(m, li) == from) a = li;
                if (loom_model_layer(m, li) == to) b = li;
            }
            if (a >= 0 && b >= 0) add(&t, "  L%d -> L%d;\n", a, b);
        }
    }
    if (o->losses && n_loss) {
        /* a node per loss under its output, and the legend with the loss weights */
        for (int i = 0; i < n_loss; i++) {
            int k = loss_out[i];
            loom_loss l;
            loom_model_get_loss(m, k, &l);
            loom_layer *L = loom_model_node_layer(m, loom_model_output_node(m, k));
            int li = -1;
            for (int j = 0; j < nl; j++)
                if (loom_model_layer(m, j) == L) li = j;
            char label[256];
            snprintf(label, sizeof label, "%s_loss\n%s", loom_model_output_name(m, k), l.name ? l.name : "custom");
            add(&t, "  loss%d [shape=note, style=\"filled\", fillcolor=\"%s\", label=", i, plot_loss_colour(i));
            add_quoted(&t, label);
            add(&t, "];\n  L%d -> loss%d [style=dashed];\n", li, i);
        }
        add(&t, "  subgraph cluster_legend {\n    label=\"losses (weight)\"; fontname=\"Helvetica\"; fontsize=11; "
                "style=\"rounded\"; color=\"#999999\";\n");
        for (int i = 0; i < n_loss; i++) {
            const char *out = loom_model_output_name(m, loss_out[i]);
            char label[256];
            snprintf(label, sizeof label, "%s_loss: weight %g", out, (double)loom_get_loss_weight(m, out));
            add(&t, "    legend%d [shape=box, style=\"filled\", fillcolor=\"%s\", fontsize=10, label=", i, plot_loss_colour(i));
            add_quoted(&t, label);
            add(&t, "];\n");
        }
        for (int i = 0; i + 1 < n_loss; i++) add(&t, "    legend%d -> legend%d [style=invis];\n", i, i + 1);
        add(&t, "  }\n");
    }
    add(&t, "}\n");
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

#ifdef LOOM_HAVE_GRAPHVIZ

/* One Graphviz context for the whole process: Graphviz 2.42's pango plugin keeps pointers into a
 * freed context's font tables, so a second gvContext after gvFreeContext reads freed memory (the
 * report renders the model after every epoch). The context lives until the process ends. */
static GVC_t *context(void) {
    static GVC_t *gvc;
    if (!gvc) gvc = gvContext();
    return gvc;
}

int plot_render(const char *dot, const char *format, char **out, size_t *len, char *err, size_t errlen) {
    *out = NULL;
    *len = 0;
    GVC_t *gvc = context();
    if (!gvc) {
        snprintf(err, errlen, "Graphviz: cannot start its context");
        return -1;
    }
    Agraph_t *g = agmemread(dot);
    int rc = -1;
    if (!g) {
        snprintf(err, errlen, "Graphviz could not read the graph loom wrote (a bug: please report it)");
    } else if (gvLayout(gvc, g, "dot") != 0) {
        snprintf(err, errlen, "Graphviz: the dot layout failed");
    } else {
        char *data = NULL;
        unsigned int n = 0;
        if (gvRenderData(gvc, g, format, &data, &n) != 0 || !data) {
            snprintf(err, errlen, "Graphviz cannot render %s here (is its %s plugin installed?)", format, format);
        } else if ((*out = malloc(n + 1))) {
            memcpy(*out, data, n);
            (*out)[n] = '\0';
            *len = n;
            rc = 0;
        } else {
            snprintf(err, errlen, "out of memory");
        }
        if (data) gvFreeRenderData(data);
        gvFreeLayout(gvc, g);
    }
    if (g) agclose(g);
    return rc;
}
#else

int plot_render(const char *dot, const char *format, char **out, size_t *len, char *err, size_t errlen) {
    (void)dot;
    *out = NULL;
    *len = 0;
    snprintf(err, errlen,
             "this loom was built without Graphviz (LOOM_USE_GRAPHVIZ=OFF or libgraphviz-dev missing), so it cannot "
             "draw %s; .dot files it writes without it",
             format);
    return -1;
}
#endif
