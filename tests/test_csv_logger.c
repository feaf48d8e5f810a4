/* test_csv_logger.c — loom_csv_logger (Keras CSVLogger): header "epoch" + every log key sorted,
 * one row per epoch with the history's values (0-based epochs), truncation without append, no
 * second header and continuing epochs with append (a resumed run), another separator, refused
 * separators and an unwritable file stopping fit with LOOM_ERR_IO. */
#include "check.h"
#include "loom.h"

#include <stdlib.h>
#include <string.h>

/* in(3) -> Dense 4 relu -> {a: Dense 2 softmax (cce, accuracy), b: Dense 1 (mse)} */
static loom_model *tiny(void) {
    loom_graph *g = loom_graph_new(7);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *h = loom_call(loom_dense(g, "h", 4, LOOM_RELU, NULL), x);
    loom_tensor *a = loom_call(loom_dense(g, "a", 2, LOOM_SOFTMAX, NULL), h);
    loom_tensor *b = loom_call(loom_dense(g, "b", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){a, b});
    loom_loss losses[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    loom_metric_spec metrics[] = {{"a", "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_metrics = 1, .metrics = metrics,
                               .optimizer = loom_adam(0.01f)};
    if (!m || loom_compile(m, &cfg)) abort();
    return m;
}

static float X[40 * 3], YA[40 * 2], YB[40];

static loom_data data(void) {
    for (int i = 0; i < 40; i++) {
        for (int j = 0; j < 3; j++) X[i * 3 + j] = (float)((i * 7 + j * 3) % 11) / 11.0f;
        YA[i * 2 + (i % 2)] = 1.0f;
        YB[i] = X[i * 3] - X[i * 3 + 1];
    }
    static loom_array xs[1], ys[2];
    xs[0] = (loom_array){.name = "x", .data = X, .n = 40, .count = 120};
    ys[0] = (loom_array){.name = "a", .data = YA, .n = 40, .count = 80};
    ys[1] = (loom_array){.name = "b", .data = YB, .n = 40, .count = 40};
    return (loom_data){.n_x = 1, .x = xs, .n_y = 2, .y = ys};
}

static char *slurp(const char *path) {
    static char buf[16384];
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

static loom_status fit(loom_model *m, loom_callback *cb, int initial, int epochs, loom_history **h) {
    loom_data d = data();
    loom_fit_options o = loom_fit_defaults();
    o.batch_size = 8;
    o.epochs = epochs;
    o.initial_epoch = initial;
    o.validation_split = 0.25f;
    o.n_callbacks = 1;
    o.callbacks = &cb;
    return loom_fit(m, &d, &o, h);
}

static void test_rows_match_history(void) {
    loom_model *m = tiny();
    loom_callback *cb = loom_csv_logger("test_csv_logger.csv", 0, 0);
    CHECK(cb != NULL);
    loom_history *h = NULL;
    CHECK_STATUS(fit(m, cb, 0, 3, &h), LOOM_OK);
    char *s = slurp("test_csv_logger.csv");
    CHECK(s != NULL);
    if (!s) return;
    CHECK(strncmp(s, "epoch,a_accuracy,a_loss,b_loss,loss,val_a_accuracy,val_a_loss,val_b_loss,val_loss\n",
                  strlen("epoch,a_accuracy,a_loss,b_loss,loss,val_a_accuracy,val_a_loss,val_b_loss,val_loss\n")) == 0);
    CHECK(lines(s) == 4);
    /* every value as the history has it (printed with 9 digits: a float32 exactly) */
    const char *keys[] = {"a_accuracy", "a_loss", "b_loss", "loss", "val_a_accuracy", "val_a_loss", "val_b_loss", "val_loss"};
    char *line = strchr(s, '\n') + 1;
    for (int e = 0; e < 3; e++) {
        char *end;
        CHECK(strtol(line, &end, 10) == e);
        for (int k = 0; k < 8; k++) {
            CHECK(*end == ',');
            float v = strtof(end + 1, &end);
            CHECK(v == loom_history_get(h, keys[k], e));
        }
        CHECK(*end == '\n');
        line = end + 1;
    }
    loom_history_free(h);

    /* a second fit without append starts the file over */
    CHECK_STATUS(fit(m, cb, 0, 2, NULL), LOOM_OK);
    s = slurp("test_csv_logger.csv");
    CHECK(lines(s) == 3);

    /* with append (a resumed run): no second header, epochs go on */
    loom_callback *ap = loom_csv_logger("test_csv_logger.csv", 0, 1);
    CHECK_STATUS(fit(m, ap, 2, 4, NULL), LOOM_OK);
    s = slurp("test_csv_logger.csv");
    CHECK(lines(s) == 5);
    CHECK(s && strstr(s + 1, "epoch,") == NULL);
    CHECK(s && strstr(s, "\n2,") != NULL && strstr(s, "\n3,") != NULL);
    /* append to a file that does not exist yet writes the header */
    remove("test_csv_logger.csv");
    CHECK_STATUS(fit(m, ap, 0, 1, NULL), LOOM_OK);
    s = slurp("test_csv_logger.csv");
    CHECK(s && strncmp(s, "epoch,", 6) == 0 && lines(s) == 2);
    loom_callback_free(ap);
    loom_callback_free(cb);

    /* another separator */
    loom_callback *semi = loom_csv_logger("test_csv_logger.csv", ';', 0);
    CHECK_STATUS(fit(m, semi, 0, 1, NULL), LOOM_OK);
    s = slurp("test_csv_logger.csv");
    CHECK(s && strncmp(s, "epoch;a_accuracy;", 17) == 0 && strchr(s, ',') == NULL);
    loom_callback_free(semi);
    remove("test_csv_logger.csv");
    loom_model_free(m);
}

static void test_refusals(void) {
    CHECK(loom_csv_logger(NULL, 0, 0) == NULL);
    CHECK(loom_csv_logger("", 0, 0) == NULL);
    CHECK(loom_csv_logger("x.csv", '.', 0) == NULL);
    CHECK(loom_csv_logger("x.csv", '5', 0) == NULL);
    CHECK(loom_csv_logger("x.csv", '\n', 0) == NULL);
    CHECK(loom_csv_logger("x.csv", '"', 0) == NULL);
    loom_model *m = tiny();
    loom_callback *cb = loom_csv_logger("no_such_dir/log.csv", 0, 0);
    loom_history *h = NULL;
    CHECK_STATUS(fit(m, cb, 0, 3, &h), LOOM_ERR_IO);
    CHECK(strstr(loom_model_error(m), "no_such_dir/log.csv") != NULL);
    CHECK(loom_history_epochs(h) == 1); /* the first epoch trained, then the log stopped it */
    loom_history_free(h);
    loom_callback_free(cb);
    loom_model_free(m);
}

int main(void) {
    test_rows_match_history();
    test_refusals();
    return check_report("csv_logger");
}
