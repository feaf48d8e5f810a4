/* test_settings.c — compile settings read back (loom_model_get_loss / _metric / _optimizer /
 * _balance) equal what compile was given, survive save and load, and recompiling a model with
 * them gives the same log keys; the layer calls (nodes) of a graph with a shared layer. */
#include "check.h"
#include "loom.h"

#include <stdlib.h>
#include <string.h>

static loom_model *three_heads(void) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){6});
    loom_tensor *t = loom_call(loom_dense(g, "trunk", 8, LOOM_RELU, NULL), x);
    loom_tensor *a = loom_call(loom_dense(g, "a", 3, LOOM_SOFTMAX, NULL), t);
    loom_tensor *b = loom_call(loom_dense(g, "b", 1, LOOM_LINEAR, NULL), t);
    loom_tensor *c = loom_call(loom_dense(g, "c", 2, LOOM_LINEAR, NULL), t);
    return loom_model_new(g, 1, &x, 3, (loom_tensor *[]){a, b, c});
}

static void check_settings(loom_model *m) {
    loom_loss l;
    CHECK_STATUS(loom_model_get_loss(m, 0, &l), LOOM_OK);
    CHECK(l.name && strcmp(l.name, "categorical_crossentropy") == 0);
    CHECK(l.label_smoothing == 0.1f && l.delta == 0 && !l.from_logits);
    CHECK_STATUS(loom_model_get_loss(m, 1, &l), LOOM_OK);
    CHECK(l.name && strcmp(l.name, "huber") == 0 && l.delta == 2.0f);
    CHECK_STATUS(loom_model_get_loss(m, 2, &l), LOOM_OK);
    CHECK(l.name == NULL); /* no loss on c */
    CHECK_STATUS(loom_model_get_loss(m, 3, &l), LOOM_ERR_ARGUMENT);
    CHECK(loom_get_loss_weight(m, "a") == 0.5f && loom_get_loss_weight(m, "b") == 2.0f);
    CHECK(loom_model_num_metrics(m) == 2);
    loom_metric_spec s;
    CHECK_STATUS(loom_model_get_metric(m, 1, &s), LOOM_OK);
    CHECK(strcmp(s.output, "b") == 0 && strcmp(s.name, "mae") == 0);
    CHECK_STATUS(loom_model_get_metric(m, 2, &s), LOOM_ERR_ARGUMENT);
    loom_optimizer o;
    CHECK_STATUS(loom_model_get_optimizer(m, &o), LOOM_OK);
    CHECK(o.kind == LOOM_RMSPROP && o.learning_rate == 0.002f && o.momentum == 0.5f && o.centered == 1);
    loom_balance b;
    CHECK_STATUS(loom_model_get_balance(m, &b), LOOM_OK);
    CHECK(b.kind == LOOM_BALANCE_GRADNORM && b.gradnorm_alpha == 0.75f && b.diagnostics_every == 3);
    CHECK(b.gradnorm_layer && strcmp(b.gradnorm_layer, "trunk") == 0);
}

static void test_read_back(void) {
    loom_model *m = three_heads();
    CHECK(!loom_model_is_compiled(m));
    loom_loss l;
    loom_optimizer o;
    CHECK_STATUS(loom_model_get_loss(m, 0, &l), LOOM_ERR_STATE);
    CHECK_STATUS(loom_model_get_optimizer(m, &o), LOOM_ERR_STATE);
    CHECK(loom_model_num_metrics(m) == 0);

    loom_loss losses[] = {{.name = "cce", .label_smoothing = 0.1f}, {.name = "huber", .delta = 2.0f}};
    const char *outs[] = {"a", "b"};
    float w[] = {0.5f, 2.0f};
    loom_metric_spec metrics[] = {{"a", "accuracy"}, {"b", "mae"}};
    loom_optimizer opt = loom_rmsprop(0.002f);
    opt.momentum = 0.5f;
    opt.centered = 1;
    loom_balance bal = loom_balance_defaults(LOOM_BALANCE_GRADNORM);
    bal.gradnorm_alpha = 0.75f;
    bal.diagnostics_every = 3;
    char layer[] = "trunk"; /* the caller's memory: the read-back name must be the model's */
    bal.gradnorm_layer = layer;
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .loss_outputs = outs, .n_loss_weights = 2,
                               .loss_weights = w, .loss_weight_outputs = outs, .n_metrics = 2, .metrics = metrics,
                               .optimizer = opt, .balance = bal};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    memset(layer, 'x', 5);
    CHECK(loom_model_is_compiled(m));
    check_settings(m);

    /* after save and load */
    CHECK_STATUS(loom_model_save(m, "test_settings.loom"), LOOM_OK);
    char err[512];
    loom_model *m2 = loom_model_load("test_settings.loom", err, sizeof err);
    CHECK(m2 != NULL);
    if (m2) check_settings(m2);
    remove("test_settings.loom");

    /* recompiling with what was read back (copied first: compile replaces the model's strings) */
    loom_loss back[3];
    char names[3][64];
    const char *outputs[3] = {"a", "b", "c"};
    float weights[3];
    for (int k = 0; k < 3; k++) {
        loom_model_get_loss(m, k, &back[k]);
        snprintf(names[k], sizeof names[k], "%s", back[k].name ? back[k].name : "");
        back[k].name = back[k].name ? names[k] : NULL;
        weights[k] = loom_get_loss_weight(m, outputs[k]);
    }
    char mo[2][64], mn[2][64];
    loom_metric_spec ms[2];
    for (int i = 0; i < 2; i++) {
        loom_model_get_metric(m, i, &ms[i]);
        snprintf(mo[i], 64, "%s", ms[i].output);
        snprintf(mn[i], 64, "%s", ms[i].name);
        ms[i] = (loom_metric_spec){mo[i], mn[i]};
    }
    loom_compile_config again = {.n_losses = 3, .losses = back, .loss_outputs = outputs, .n_loss_weights = 3,
                                 .loss_weights = weights, .loss_weight_outputs = outputs, .n_metrics = 2, .metrics = ms};
    loom_model_get_optimizer(m, &again.optimizer);
    loom_model_get_balance(m, &again.balance);
    char gl[64];
    snprintf(gl, sizeof gl, "%s", again.balance.gradnorm_layer);
    again.balance.gradnorm_layer = gl;
    CHECK_STATUS(loom_compile(m, &again), LOOM_OK);
    check_settings(m);
    loom_model_free(m2);
    loom_model_free(m);
}

static void test_nodes(void) {
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x1 = loom_input(g, "left", 1, (int[]){3});
    loom_tensor *x2 = loom_input(g, "right", 1, (int[]){3});
    loom_layer *tower = loom_dense(g, "tower", 5, LOOM_RELU, NULL);
    loom_tensor *h1 = loom_call(tower, x1), *h2 = loom_call(tower, x2);
    loom_tensor *s = loom_call_n(loom_concatenate(g, "cat", -1), 2, (loom_tensor *[]){h1, h2});
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, NULL), s);
    loom_model *m = loom_model_new(g, 2, (loom_tensor *[]){x1, x2}, 1, &y);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(loom_model_num_nodes(m) == 6); /* 2 inputs, 2 tower calls, cat, y */
    int tower_calls = 0, dims[8];
    for (int i = 0; i < loom_model_num_nodes(m); i++) {
        loom_layer *L = loom_model_node_layer(m, i);
        if (L == tower) {
            tower_calls++;
            CHECK(loom_model_node_num_inputs(m, i) == 1);
            int src = loom_model_node_input(m, i, 0);
            CHECK(src >= 0 && src < i && strcmp(loom_layer_class(loom_model_node_layer(m, src)), "InputLayer") == 0);
            CHECK(loom_model_node_shape(m, i, dims) == 1 && dims[0] == 5);
        }
        if (strcmp(loom_layer_name(L), "cat") == 0) {
            CHECK(loom_model_node_num_inputs(m, i) == 2);
            CHECK(loom_model_node_layer(m, loom_model_node_input(m, i, 0)) == tower);
            CHECK(loom_model_node_layer(m, loom_model_node_input(m, i, 1)) == tower);
            CHECK(loom_model_node_shape(m, i, dims) == 1 && dims[0] == 10);
        }
        if (strcmp(loom_layer_class(L), "InputLayer") == 0) CHECK(loom_model_node_num_inputs(m, i) == 0);
    }
    CHECK(tower_calls == 2);
    CHECK(loom_model_node_layer(m, loom_model_output_node(m, 0)) == loom_model_find_layer(m, "y"));
    CHECK(loom_model_node_layer(m, 99) == NULL && loom_model_node_input(m, 5, 3) == -1);
    CHECK(loom_model_node_shape(m, -1, dims) == -1 && loom_model_output_node(m, 1) == -1);
    loom_model_free(m);
}

int main(void) {
    test_read_back();
    test_nodes();
    return check_report("settings");
}
