/* test_plot.c — the loom program's model picture and training report (tools/plot.c and
 * tools/report.c, compiled in here): the DOT text of the issue's graph in -> A -> B -> {C, D}
 * with reach colours (A and B both losses', C only the first's, D only the second's), a shared
 * layer's call count, frozen layers greyed; the report's curves with one point per epoch, a gap for a
 * value that is not finite, names escaped, written atomically. */
#include "check.h"
#include "loom.h"

#include "../tools/plot.c"
#include "../tools/report.c"

static loom_model *issue_graph(void) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "in", 1, (int[]){4});
    loom_tensor *a = loom_call(loom_dense(g, "A", 8, LOOM_RELU, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 8, LOOM_RELU, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 3, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss losses[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {0.5f, 0.3f};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = loom_adam(0.01f)};
    if (!m || loom_compile(m, &cfg)) abort();
    return m;
}

/* The fillcolor of the node whose label starts with `name`. */
static const char *fill_of(const char *dot, const char *name, char *out, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, "[label=\"%s\\n", name);
    const char *p = strstr(dot, key);
    const char *f = p ? strstr(p, "fillcolor=\"") : NULL;
    const char *nl = p ? strchr(p, '\n') : NULL;
    out[0] = '\0';
    if (!f || (nl && f > nl)) return out;
    f += 11;
    size_t n = strcspn(f, "\"");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), f);
    return out;
}

static void test_reach_colours(void) {
    loom_model *m = issue_graph();
    plot_options o = {.show_shapes = true, .losses = true};
    char *dot = plot_dot(m, &o);
    CHECK(dot != NULL);
    if (!dot) return;
    char a[64], b[64], c[64], d[64], in[64], both[160];
    snprintf(both, sizeof both, "%s:%s", plot_loss_colour(0), plot_loss_colour(1));
    CHECK(strcmp(fill_of(dot, "A", a, sizeof a), both) == 0);
    CHECK(strcmp(fill_of(dot, "B", b, sizeof b), both) == 0);
    CHECK(strcmp(fill_of(dot, "in", in, sizeof in), both) == 0);
    CHECK(strcmp(fill_of(dot, "C", c, sizeof c), plot_loss_colour(0)) == 0);
    CHECK(strcmp(fill_of(dot, "D", d, sizeof d), plot_loss_colour(1)) == 0);
    CHECK(strstr(dot, "C_loss: weight 0.5") != NULL);
    CHECK(strstr(dot, "D_loss: weight 0.3") != NULL);
    CHECK(strstr(dot, "output: (None, 3)") != NULL);
    CHECK(strstr(dot, "input: (None, 8)") != NULL);
    CHECK(strstr(dot, "L2 -> L3;") != NULL && strstr(dot, "L2 -> L4;") != NULL);
    CHECK(strstr(dot, "shared") == NULL);
    free(dot);
    /* without --losses: no colours, no legend */
    plot_options plain = {0};
    dot = plot_dot(m, &plain);
    CHECK(dot && strstr(dot, "legend") == NULL && strstr(dot, "striped") == NULL && strstr(dot, "rankdir=TB"));
    free(dot);
    loom_model_free(m);
}

static void test_shared(void) {
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x1 = loom_input(g, "left", 1, (int[]){3});
    loom_tensor *x2 = loom_input(g, "right", 1, (int[]){3});
    loom_layer *tower = loom_dense(g, "tower", 5, LOOM_RELU, NULL);
    loom_tensor *h1 = loom_call(tower, x1), *h2 = loom_call(tower, x2);
    loom_tensor *s = loom_call_n(loom_add(g, "sum"), 2, (loom_tensor *[]){h1, h2});
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, NULL), s);
    loom_model *m = loom_model_new(g, 2, (loom_tensor *[]){x1, x2}, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        return;
    }
    plot_options o = {.rankdir = "LR"};
    char *dot = plot_dot(m, &o);
    CHECK(dot && strstr(dot, "tower\\nDense  (shared: 2 calls)") != NULL);
    CHECK(dot && strstr(dot, "penwidth=2.2") != NULL);
    CHECK(dot && strstr(dot, "rankdir=LR") != NULL);
    /* the two calls of the tower feed one Add: one edge tower -> sum, not two */
    int edges = 0;
    for (const char *p = dot ? strstr(dot, " -> ") : NULL; p; p = strstr(p + 1, " -> ")) edges++;
    CHECK(edges == 4); /* left -> tower, right -> tower, tower -> sum, sum -> y */
    free(dot);
    loom_model_free(m);
}

static int count_points(const char *d) {
    int n = 0;
    for (; *d; d++) n += *d == 'M' || *d == 'L';
    return n;
}

static void test_report(void) {
    loom_model *m = issue_graph();
    float X[64 * 4], YC[64 * 3] = {0}, YD[64 * 2];
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 4; j++) X[i * 4 + j] = (float)((i * 5 + j) % 7) / 7.0f;
        YC[i * 3 + i % 3] = 1;
        YD[i * 2] = X[i * 4];
        YD[i * 2 + 1] = -X[i * 4 + 1];
    }
    loom_array xs = {.name = "in", .data = X, .n = 64, .count = 256};
    loom_array ys[] = {{.name = "C", .data = YC, .n = 64, .count = 192}, {.name = "D", .data = YD, .n = 64, .count = 128}};
    loom_data data = {.n_x = 1, .x = &xs, .n_y = 2, .y = ys};
    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = 4;
    fo.validation_split = 0.25f;
    CHECK_STATUS(loom_fit(m, &data, &fo, NULL), LOOM_OK);
    report_settings rs = {.path = "test_plot_report.html", .model_path = "<model>.loom", .data_path = "d.npz",
                          .epochs = 4, .batch_size = 32, .finished = true};
    char err[512];
    CHECK(report_write(rs.path, m, &rs, err, sizeof err) == 0);
    FILE *f = fopen(rs.path, "r");
    static char html[1 << 20];
    size_t n = f ? fread(html, 1, sizeof html - 1, f) : 0;
    html[n] = '\0';
    if (f) fclose(f);
    CHECK(strstr(html, "&lt;model&gt;.loom") != NULL && strstr(html, "<model>") == NULL);
    CHECK(strstr(html, "data-epochs=\"4\"") != NULL);
    CHECK(strstr(html, "http-equiv=\"refresh\"") == NULL); /* finished: no more reloading */
    const char *want[] = {"loss", "val_loss", "C_loss", "val_C_loss", "D_loss", "val_D_loss"};
    for (int k = 0; k < 6; k++) {
        char key[64];
        snprintf(key, sizeof key, "data-key=\"%s\"", want[k]);
        const char *p = strstr(html, key);
        CHECK(p != NULL);
        const char *d = p ? strstr(p, " d=\"") : NULL;
        if (!d) continue;
        char path[4096];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(d + 4, "\""), d + 4);
        CHECK(count_points(path) == 4);
    }
    /* a value that is not finite leaves a gap: fewer points, a new M after it */
    series s = {"x", (const float[]){1, NAN, 2, 3}};
    FILE *g = tmpfile();
    chart(g, "t", &s, 1, 4, "c");
    rewind(g);
    n = fread(html, 1, sizeof html - 1, g);
    html[n] = '\0';
    fclose(g);
    const char *d = strstr(html, " d=\"");
    CHECK(d && strncmp(d + 4, "M", 1) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%.*s", d ? (int)strcspn(d + 4, "\"") : 0, d ? d + 4 : "");
    CHECK(count_points(path) == 3);
    CHECK(strchr(path + 1, 'M') != NULL);
    /* an unwritable place is an error naming it */
    rs.path = "no_such_dir/r.html";
    CHECK(report_write(rs.path, m, &rs, err, sizeof err) == -1);
    CHECK(strstr(err, "no_such_dir/r.html") != NULL);
    remove("test_plot_report.html");
    loom_model_free(m);
}

/* A frozen layer says so and is greyed; a trainable one is not. */
static void test_frozen(void) {
    loom_model *m = issue_graph();
    CHECK(loom_layer_set_trainable(loom_model_find_layer(m, "A"), 0) == LOOM_OK);
    plot_options o = {.losses = true};
    char *dot = plot_dot(m, &o);
    CHECK(dot && strstr(dot, "A\\nDense  (frozen)") != NULL);
    CHECK(dot && strstr(dot, "B\\nDense  (frozen)") == NULL);
    const char *a = dot ? strstr(dot, "[label=\"A\\n") : NULL, *nl = a ? strchr(a, '\n') : NULL;
    const char *grey = a ? strstr(a, "fontcolor=\"#888888\"") : NULL;
    CHECK(grey && (!nl || grey < nl));
    free(dot);
    loom_model_free(m);
}

int main(void) {
    test_reach_colours();
    test_frozen();
    test_shared();
    test_report();
    return check_report("plot");
}
