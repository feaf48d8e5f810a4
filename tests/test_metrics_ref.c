/* test_metrics_ref.c — AUC, Precision, Recall, F-beta, MeanIoU, user metrics, weighted_metrics
 * and class_weight (issue 16 parts 2 and 3) against Keras's own test vectors and against
 * tests/reference/metrics_ref.txt (scikit-learn and NumPy; see tests/reference/metrics_ref.py). */
#include "check.h"
#include "fixture.h"
#include "core/model.h"
#include "ops/metrics.h"

#include <loom.h>
#include <math.h>
#include <string.h>

static fixture fx;

/* A metric resolved for predictions of width dim and targets of width target_dim. */
static loom_metric_impl metric(const char *spec, int dim, int target_dim) {
    loom_metric_impl m;
    loom_error err = {0};
    loom_status s = loom_metric_resolve(spec, NULL, dim, target_dim, &m, &err);
    if (s) fprintf(stderr, "resolve %s: %s\n", spec, err.msg);
    CHECK_STATUS(s, LOOM_OK);
    return m;
}

/* Feeds n rows in uneven batches (7, 13, 7, 13, ...), so the result is a running state. */
static void feed(loom_metric_impl *m, const float *y, const float *p, const float *w, size_t n, int dim,
                 int target_dim) {
    for (size_t r = 0, b = 7; r < n; r += b, b = b == 7 ? 13 : 7) {
        size_t k = r + b > n ? n - r : b;
        loom_metric_update(m, y + r * target_dim, p + r * dim, k, dim, target_dim, w ? w + r : NULL);
    }
}

static float *floats(const char *name, size_t n) {
    float *v = calloc(n, sizeof *v);
    fixture_floats(&fx, name, v, n);
    return v;
}

static double ref(const char *name) { return fixture_scalar(&fx, name); }

/* ---------------------------------------------------------------- Keras's published vectors */

static void test_keras_vectors(void) {
    /* confusion_metrics_test.py AUCTest: num_thresholds 3, y_pred [0, .5, .3, .9], y_true
     * [0, 0, 1, 1], sample weights [1, 2, 3, 4] */
    const float y[] = {0, 0, 1, 1}, p[] = {0, 0.5f, 0.3f, 0.9f}, w[] = {1, 2, 3, 4};
    struct { const char *spec; const float *w; double want; } auc[] = {
        {"auc(num_thresholds=3)", NULL, 0.75},
        {"auc(num_thresholds=3)", w, (1 + 4.0 / 7) / 2},                       /* roc interpolation */
        {"auc(num_thresholds=3, summation_method=majoring)", w, 1.0},
        {"auc(num_thresholds=3, summation_method=minoring)", w, 4.0 / 7},
        {"auc(num_thresholds=3, curve=PR, summation_method=majoring)", w, 1.0},
        {"auc(num_thresholds=3, curve=PR, summation_method=minoring)", w, 0.7 * 3.0 / 7},
        {"auc(num_thresholds=3, curve=PR)", w, 0.5 * (3 + 2 * log(2.5)) / 7 + 4.0 / 7}, /* interpolate_pr_auc */
    };
    for (size_t i = 0; i < sizeof auc / sizeof auc[0]; i++) {
        loom_metric_impl m = metric(auc[i].spec, 1, 1);
        loom_metric_update(&m, y, p, 4, 1, 1, auc[i].w);
        CHECK_CLOSE(loom_metric_result(&m), auc[i].want, 1e-6, 1e-6);
        loom_metric_release(&m);
    }
    /* explicit thresholds that are not evenly spaced: compared one by one; a prediction of 0 is
     * above the first threshold, -1e-7 (by hand: recall [1, 4/7, 0], FPR [1, 2/3, 0]) */
    loom_metric_impl mt = metric("auc(thresholds=[0.4])", 1, 1);
    CHECK(!mt.evenly && mt.n_thresholds == 3);
    loom_metric_update(&mt, y, p, 4, 1, 1, w);
    CHECK_CLOSE(loom_metric_result(&mt), 19.0 / 42, 1e-6, 0);
    loom_metric_release(&mt);
    mt = metric("auc(thresholds=[0.5])", 1, 1); /* 0, 0.5, 1: evenly spaced, Keras buckets them */
    CHECK(mt.evenly && mt.n_thresholds == 3);
    loom_metric_release(&mt);
    /* F-score with threshold None: a row's maximum entries are positive (ties all of them), an
     * all-zero row none; with a threshold, strictly above it */
    const float fy[] = {1, 0, 0, 1}, fp[] = {0, 0, 0.5f, 0.5f};
    mt = metric("f1_score", 2, 2);
    loom_metric_update(&mt, fy, fp, 2, 2, 2, NULL);
    float fv[2];
    loom_metric_results(&mt, fv);
    CHECK_CLOSE(fv[0], 0.0, 1e-6, 0);
    CHECK_CLOSE(fv[1], 1.0, 1e-6, 0);
    loom_metric_release(&mt);
    mt = metric("f1_score(threshold=0.5, average=micro)", 2, 2);
    loom_metric_update(&mt, fy, fp, 2, 2, 2, NULL);
    CHECK_CLOSE(loom_metric_result(&mt), 0.0, 1e-6, 0);
    loom_metric_release(&mt);
    /* all correct: 1 */
    loom_metric_impl m = metric("AUC", 1, 1);
    loom_metric_update(&m, y, y, 4, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 1.0, 1e-6, 0);
    CHECK(strcmp(m.log_name, "AUC") == 0); /* a string logs as written */
    loom_metric_release(&m);

    /* PrecisionTest / RecallTest: unweighted, top_k, class_id */
    const float py[] = {0, 1, 1, 0}, pp[] = {1, 0, 1, 0};
    m = metric("precision", 4, 4);
    loom_metric_update(&m, py, pp, 1, 4, 4, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);
    loom_metric_release(&m);
    m = metric("recall", 4, 4);
    loom_metric_update(&m, py, pp, 1, 4, 4, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);
    loom_metric_release(&m);
    const float ky[] = {0, 1, 1, 0, 0}, kp[] = {0.2f, 0.1f, 0.5f, 0, 0.2f};
    m = metric("precision(top_k=3)", 5, 5); /* keeps .5, .2 (index 0), .2 (index 4): 1 of 3 */
    loom_metric_update(&m, ky, kp, 1, 5, 5, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 1.0 / 3, 1e-7, 0);
    CHECK(strcmp(m.log_name, "precision") == 0); /* the object form logs Keras's object name */
    loom_metric_release(&m);
    const float cy[] = {0, 1, 1, 0, 0}, cp[] = {0.2f, 0.1f, 0.6f, 0, 0.2f};
    m = metric("precision(class_id=2)", 5, 5);
    loom_metric_update(&m, cy, cp, 1, 5, 5, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 1.0, 1e-7, 0);
    const float cp2[] = {0.2f, 0.1f, 0.6f, 0, 0.2f}, cy2[] = {0, 1, 0, 0, 0};
    loom_metric_update(&m, cy2, cp2, 1, 5, 5, NULL); /* a false positive of class 2 */
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);
    loom_metric_release(&m);

    /* iou_metrics_test.py MeanIoUTest: y_pred [0, 1, 0, 1], y_true [0, 0, 1, 1] */
    const float iy[] = {0, 0, 1, 1}, ip[] = {0, 1, 0, 1}, iw[] = {0.2f, 0.3f, 0.4f, 0.1f};
    m = metric("mean_iou(num_classes=2)", 1, 1);
    loom_metric_update(&m, iy, ip, 4, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 1.0 / 3, 1e-6, 0);
    CHECK(strcmp(m.log_name, "mean_io_u") == 0);
    loom_metric_reset(&m);
    loom_metric_update(&m, iy, ip, 4, 1, 1, iw);
    CHECK_CLOSE(loom_metric_result(&m), (0.2 / 0.9 + 0.1 / 0.8) / 2, 1e-6, 0);
    loom_metric_release(&m);
}

/* ---------------------------------------------------------------- against scikit-learn / NumPy */

static void test_auc_reference(void) {
    enum { N = 200 };
    float *y = floats("auc.y", N), *p = floats("auc.p", N), *w = floats("auc.w", N), *lg = floats("auc.logits", N);
    struct { const char *spec; const float *p, *w; const char *keras, *sklearn; } cases[] = {
        {"auc", p, NULL, "auc.keras.roc", "auc.sklearn.roc"},
        {"auc", p, w, "auc.keras.roc_w", "auc.sklearn.roc_w"},
        {"auc(curve=PR)", p, NULL, "auc.keras.pr", NULL},
        {"auc(curve=PR)", p, w, "auc.keras.pr_w", NULL},
        {"auc(num_thresholds=50, summation_method=minoring)", p, NULL, "auc.keras.roc_min50", NULL},
        {"auc(num_thresholds=50, summation_method=majoring)", p, NULL, "auc.keras.roc_maj50", NULL},
        {"auc(num_thresholds=50, curve=PR, summation_method=minoring)", p, NULL, "auc.keras.pr_min50", NULL},
        {"auc(num_thresholds=50, curve='PR', summation_method='majoring')", p, NULL, "auc.keras.pr_maj50", NULL},
        {"auc(thresholds=[0.8, 0.1, 0.35])", p, NULL, "auc.keras.roc_thr", NULL},
        {"auc(thresholds=[0.8, 0.1, 0.35], curve=PR)", p, NULL, "auc.keras.pr_thr", NULL},
        {"auc(from_logits=true)", lg, NULL, "auc.keras.roc_logits", "auc.sklearn.roc_logits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loom_metric_impl m = metric(cases[i].spec, 1, 1);
        feed(&m, y, cases[i].p, cases[i].w, N, 1, 1);
        double got = loom_metric_result(&m);
        /* the formula in NumPy: float rounding only */
        CHECK_CLOSE(got, ref(cases[i].keras), 2e-6, 2e-6);
        /* the exact area: Keras's 200 thresholds discretise it */
        if (cases[i].sklearn) CHECK_CLOSE(got, ref(cases[i].sklearn), 2e-3, 0);
        loom_metric_release(&m);
    }
    /* three classes, one curve over every entry (multi_label=False) */
    float *my = floats("auc_mc.y", 60 * 3), *mp = floats("auc_mc.p", 60 * 3);
    loom_metric_impl m = metric("auc", 3, 3);
    feed(&m, my, mp, NULL, 60, 3, 3);
    CHECK_CLOSE(loom_metric_result(&m), ref("auc_mc.keras.roc"), 2e-6, 2e-6);
    CHECK_CLOSE(loom_metric_result(&m), ref("auc_mc.sklearn.roc"), 2e-3, 0);
    loom_metric_release(&m);
    free(y), free(p), free(w), free(lg), free(my), free(mp);
}

static void test_precision_recall_reference(void) {
    enum { N = 60, D = 5 };
    float *y = floats("pr.y", N * D), *p = floats("pr.p", N * D), *w = floats("pr.w", N);
    struct { const char *suffix, *args; const float *w; } cases[] = {
        {"t0.5", "", NULL},
        {"t0.3", "(thresholds=0.3)", NULL},
        {"w", "(thresholds=0.5)", w},
        {"top2", "(top_k=2)", NULL},
        {"top2_t0.5", "(top_k=2, thresholds=0.5)", NULL},
        {"class3_w", "(class_id=3)", w},
        {"class1_top2", "(class_id=1, top_k=2)", NULL},
    };
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char spec[96], key[96];
            snprintf(spec, sizeof spec, "%s%s", kind ? "recall" : "precision", cases[i].args);
            snprintf(key, sizeof key, "pr.%s.%s", kind ? "recall" : "precision", cases[i].suffix);
            loom_metric_impl m = metric(spec, D, D);
            feed(&m, y, p, cases[i].w, N, D, D);
            CHECK_CLOSE(loom_metric_result(&m), ref(key), 1e-6, 1e-6);
            loom_metric_release(&m);
        }
    /* a list of thresholds: one value per threshold, in the order given */
    loom_metric_impl m = metric("precision(thresholds=[0.7, 0.3])", D, D);
    CHECK(m.n_values == 2);
    feed(&m, y, p, NULL, N, D, D);
    float v[2];
    loom_metric_results(&m, v);
    CHECK_CLOSE(v[0], ref("pr.precision.t0.7"), 1e-6, 1e-6);
    CHECK_CLOSE(v[1], ref("pr.precision.t0.3"), 1e-6, 1e-6);
    char suffix[16];
    loom_metric_value_suffix(&m, 0, suffix, sizeof suffix);
    CHECK(strcmp(suffix, "/0.7") == 0);
    loom_metric_release(&m);
    free(y), free(p), free(w);
}

static void test_fscore_reference(void) {
    enum { N = 80, D = 4 };
    float *y = floats("f.y", N * D), *p = floats("f.p", N * D), *w = floats("f.w", N), *ml = floats("f.ml_y", N * D);
    const char *avgs[] = {"none", "micro", "macro", "weighted"};
    for (int a = 0; a < 4; a++) {
        struct { const char *spec, *key; const float *y, *w; } cases[] = {
            {"f1_score(average=%s)", "f.f1.argmax.%s", y, NULL},
            {"F1Score(average=%s)", "f.f1.argmax_w.%s", y, w},
            {"fbeta_score(beta=2, threshold=0.3, average=%s)", "f.f2.t0.3.%s", ml, NULL},
            {"FBetaScore(beta=0.5, threshold=0.3, average='%s')", "f.f05.t0.3_w.%s", ml, w},
        };
        for (size_t i = 0; i < 4; i++) {
            char spec[96], key[64];
            snprintf(spec, sizeof spec, cases[i].spec, a == 0 ? "None" : avgs[a]);
            snprintf(key, sizeof key, cases[i].key, avgs[a]);
            loom_metric_impl m = metric(spec, D, D);
            CHECK(m.n_values == (a == 0 ? D : 1));
            feed(&m, cases[i].y, p, cases[i].w, N, D, D);
            float v[D];
            loom_metric_results(&m, v);
            const double *want = fixture_get(&fx, key, (size_t)m.n_values);
            for (int c = 0; want && c < m.n_values; c++) CHECK_CLOSE(v[c], want[c], 2e-6, 2e-6);
            loom_metric_release(&m);
        }
    }
    free(y), free(p), free(w), free(ml);
}

static void test_iou_reference(void) {
    enum { N = 100, C = 5 };
    float *y = floats("iou.y", N), *p = floats("iou.p", N * C), *w = floats("iou.w", N);
    float *onehot = calloc(N * C, sizeof *onehot);
    for (int r = 0; r < N; r++) onehot[r * C + (int)y[r]] = 1;
    struct { const char *spec; const float *y; int tdim; const float *w; const char *key; } cases[] = {
        {"mean_iou(num_classes=5)", y, 1, NULL, "iou.mean"},
        {"MeanIoU(num_classes=5, sparse_y_true=true, sparse_y_pred=false)", y, 1, w, "iou.mean_w"},
        {"mean_iou(num_classes=5)", onehot, C, w, "iou.mean_w"}, /* one-hot targets: argmax */
        {"mean_iou(num_classes=5, ignore_class=0)", y, 1, NULL, "iou.mean_ignore0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loom_metric_impl m = metric(cases[i].spec, C, cases[i].tdim);
        feed(&m, cases[i].y, p, cases[i].w, N, C, cases[i].tdim);
        CHECK_CLOSE(loom_metric_result(&m), ref(cases[i].key), 2e-6, 2e-6);
        loom_metric_release(&m);
    }
    free(y), free(p), free(w), free(onehot);
}

/* ---------------------------------------------------------------- specs: errors and names */

static void expect_error(const char *spec, int dim, int target_dim, loom_status want, const char *words) {
    loom_metric_impl m;
    loom_error err = {0};
    loom_status s = loom_metric_resolve(spec, NULL, dim, target_dim, &m, &err);
    CHECK_STATUS(s, want);
    if (s == LOOM_OK) loom_metric_release(&m);
    else if (!strstr(err.msg, words)) {
        fprintf(stderr, "message for %s lacks \"%s\": %s\n", spec, words, err.msg);
        CHECK(0);
    }
}

static void test_spec_errors(void) {
    expect_error("auc(curve=ROCK)", 1, 1, LOOM_ERR_ARGUMENT, "curve must be one of ROC, PR");
    expect_error("auc(num_thresholds=1)", 1, 1, LOOM_ERR_ARGUMENT, "num_thresholds");
    expect_error("auc(num_thresholds=2.5)", 1, 1, LOOM_ERR_ARGUMENT, "whole number");
    expect_error("auc(multi_label=true)", 3, 3, LOOM_ERR_ARGUMENT, "multi_label");
    expect_error("auc(colour=red)", 1, 1, LOOM_ERR_ARGUMENT, "unknown argument 'colour'");
    expect_error("auc(curve=PR", 1, 1, LOOM_ERR_ARGUMENT, "final ')'");
    expect_error("auc(curve)", 1, 1, LOOM_ERR_ARGUMENT, "key=value");
    expect_error("auc(curve=PR, curve=ROC)", 1, 1, LOOM_ERR_ARGUMENT, "given twice");
    expect_error("auc", 3, 1, LOOM_ERR_SHAPE, "width 1 and predictions width 3");
    expect_error("precision(thresholds=[0.2, 1.5])", 2, 2, LOOM_ERR_ARGUMENT, "[0, 1]");
    expect_error("precision(thresholds=[0.2, x])", 2, 2, LOOM_ERR_ARGUMENT, "not a number");
    expect_error("recall(class_id=4)", 4, 4, LOOM_ERR_ARGUMENT, "class_id 4");
    expect_error("recall(top_k=5)", 4, 4, LOOM_ERR_ARGUMENT, "top_k 5");
    expect_error("f1_score(average=mean)", 3, 3, LOOM_ERR_ARGUMENT, "average must be one of");
    expect_error("f1_score(beta=2)", 3, 3, LOOM_ERR_ARGUMENT, "unknown argument 'beta'");
    expect_error("fbeta_score(beta=0)", 3, 3, LOOM_ERR_ARGUMENT, "beta");
    expect_error("fbeta_score(threshold=0)", 3, 3, LOOM_ERR_ARGUMENT, "(0, 1]");
    expect_error("mean_iou", 3, 1, LOOM_ERR_ARGUMENT, "num_classes");
    expect_error("mean_iou(num_classes=4)", 3, 1, LOOM_ERR_SHAPE, "width 3");
    expect_error("mean_iou(num_classes=3, sparse_y_pred=true)", 3, 1, LOOM_ERR_SHAPE, "sparse_y_pred=true");
    expect_error("accuracy(threshold=0.5)", 3, 3, LOOM_ERR_ARGUMENT, "unknown argument 'threshold'");
    expect_error("aucc", 1, 1, LOOM_ERR_NAME, "unknown metric 'aucc'");
    /* None is the default; name= sets the log name; the accuracy metrics take their arguments */
    loom_metric_impl m = metric("auc(thresholds=None, name=val_auc_pr, curve=PR)", 1, 1);
    CHECK(strcmp(m.log_name, "val_auc_pr") == 0 && m.n_thresholds == 200 && m.curve == AUC_PR);
    loom_metric_release(&m);
    m = metric("F1Score(average=micro)", 3, 3); /* Keras's object names */
    CHECK(strcmp(m.log_name, "f1_score") == 0 && m.beta == 1.0f && m.n_values == 1);
    loom_metric_release(&m);
    m = metric("FBetaScore(beta=2)", 3, 3);
    CHECK(strcmp(m.log_name, "fbeta_score") == 0 && m.beta == 2.0f && m.n_values == 3);
    loom_metric_release(&m);
    m = metric("top_k_categorical_accuracy(k=2)", 4, 4);
    CHECK(m.k == 2 && strcmp(m.log_name, "top_k_categorical_accuracy") == 0);
    loom_metric_release(&m);
    m = metric("binary_accuracy(threshold=0.7)", 1, 1);
    const float t[] = {1, 1}, p[] = {0.6f, 0.8f};
    loom_metric_update(&m, t, p, 2, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);
    loom_metric_release(&m);
    /* Keras's default AUC thresholds: -1e-7, 1/199, ..., 198/199, 1 + 1e-7 */
    m = metric("auc", 1, 1);
    CHECK(m.n_thresholds == 200 && m.thresholds[0] < 0 && m.thresholds[199] > 1.0f);
    CHECK_CLOSE(m.thresholds[1], 1.0 / 199, 1e-9, 0);
    loom_metric_release(&m);
}

/* ---------------------------------------------------------------- through a model */

/* A model whose output is its input (a linear Activation), so evaluate sees given predictions. */
static loom_model *identity_model(int dim) {
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){dim});
    loom_tensor *y = loom_call(loom_activation_layer(g, "out", LOOM_LINEAR), x);
    return loom_model_new(g, 1, &x, 1, &y);
}

typedef struct row_count {
    int calls;
} row_count;

/* A user metric: the weighted share of rows whose prediction is within 0.25 of the target. */
static void close_update(double *st, const float *yt, const float *yp, const float *w, size_t n, int dim, int tdim,
                         void *user) {
    (void)tdim;
    ((row_count *)user)->calls++;
    for (size_t r = 0; r < n; r++) {
        double wr = w ? w[r] : 1.0;
        st[0] += wr * (fabsf(yp[r * dim] - yt[r * dim]) < 0.25f);
        st[1] += wr;
    }
}
/* st[2] is set by reset only, so a result without a reset is 0 */
static double close_result(const double *st, void *user) {
    (void)user;
    return st[1] > 0 ? st[2] * st[0] / st[1] : 0.0;
}
static void close_reset(double *st, void *user) {
    (void)user;
    st[0] = 0;
    st[1] = 0;
    st[2] = 1;
}

static void test_model_metrics(void) {
    enum { N = 200 };
    float *y = floats("auc.y", N), *p = floats("auc.p", N), *w = floats("auc.w", N);
    row_count rc = {0};
    loom_custom_metric def = {.name = "close", .n_state = 3, .reset = close_reset, .update = close_update,
                              .result = close_result, .user = &rc};
    char err[256];
    CHECK_STATUS(loom_register_metric(&def, err, sizeof err), LOOM_OK);
    CHECK_STATUS(loom_register_metric(&(loom_custom_metric){.name = "auc", .update = close_update,
                                                            .result = close_result}, err, sizeof err),
                 LOOM_ERR_NAME);
    CHECK(strstr(err, "built-in") != NULL);
    CHECK_STATUS(loom_register_metric(&(loom_custom_metric){.name = "mean_iou", .update = close_update,
                                                            .result = close_result}, err, sizeof err),
                 LOOM_ERR_NAME);
    CHECK_STATUS(loom_register_metric(&(loom_custom_metric){.name = "bad(", .update = close_update,
                                                            .result = close_result}, err, sizeof err),
                 LOOM_ERR_NAME);

    loom_model *m = identity_model(1);
    loom_metric_spec ms[] = {{NULL, "auc"}, {NULL, "AUC(curve=PR)"}, {NULL, "close"}, {NULL, "precision(thresholds=[0.3, 0.7])"}};
    loom_metric_spec wms[] = {{NULL, "auc"}, {NULL, "close"}};
    loom_compile_config cfg = {.n_losses = 1, .losses = &(loom_loss){.name = "mse"}, .n_metrics = 4, .metrics = ms,
                               .n_weighted_metrics = 2, .weighted_metrics = wms, .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    loom_array xa = {.name = "x", .data = p, .n = N, .count = N}, ya = {.name = "out", .data = y, .n = N, .count = N};
    loom_array swa = {.name = NULL, .data = w, .n = N, .count = N};
    loom_data data = {1, &xa, 1, &ya, 1, &swa};
    /* expected: the NumPy / sklearn values, the user metric by hand */
    double close_u = 0, close_w = 0, wsum = 0;
    for (int i = 0; i < N; i++) {
        bool c = fabsf(p[i] - y[i]) < 0.25f;
        close_u += c;
        close_w += w[i] * c;
        wsum += w[i];
    }
    for (int round = 0; round < 2; round++) {
        loom_history *h = NULL;
        CHECK_STATUS(loom_evaluate(m, &data, 32, 0, &h), LOOM_OK);
        const char *keys[] = {"loss", "auc", "auc_1", "close", "precision/0.3", "precision/0.7", "auc_2", "close_1"};
        CHECK(loom_history_num_keys(h) == 8);
        for (int i = 0; i < 8 && i < loom_history_num_keys(h); i++)
            if (strcmp(loom_history_key(h, i), keys[i]) != 0) {
                fprintf(stderr, "key %d: %s, want %s\n", i, loom_history_key(h, i), keys[i]);
                CHECK(0);
            }
        /* metrics= ignore the sample weights, weighted_metrics= use them (Keras 3) */
        CHECK_CLOSE(loom_history_get(h, "auc", 0), ref("auc.keras.roc"), 2e-6, 2e-6);
        CHECK_CLOSE(loom_history_get(h, "auc_1", 0), ref("auc.keras.pr"), 2e-6, 2e-6);
        CHECK_CLOSE(loom_history_get(h, "auc_2", 0), ref("auc.keras.roc_w"), 2e-6, 2e-6);
        CHECK_CLOSE(loom_history_get(h, "close", 0), close_u / N, 1e-6, 0);
        CHECK_CLOSE(loom_history_get(h, "close_1", 0), close_w / wsum, 1e-6, 0);
        loom_history_free(h);
        if (round == 0) {
            /* save and load: the specs (weighted or not) come back; the user metric by name */
            const char *path = "test_metrics_ref.loom";
            CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
            loom_model_free(m);
            char lerr[512] = "";
            m = loom_model_load(path, lerr, sizeof lerr);
            if (!m) fprintf(stderr, "load: %s\n", lerr);
            CHECK(m != NULL);
            remove(path);
            if (!m) break;
        }
    }
    CHECK(rc.calls >= 2 * 2 * 7); /* two uses, 7 batches, two evaluations */
    loom_model_free(m);

    /* errors at compile name the output and the list */
    m = identity_model(3);
    cfg.n_metrics = 0;
    cfg.n_weighted_metrics = 1;
    cfg.weighted_metrics = (const loom_metric_spec[]){{NULL, "mean_iou(num_classes=4)"}};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_ERR_SHAPE);
    CHECK(strstr(loom_model_error(m), "output out") != NULL);
    cfg.weighted_metrics = (const loom_metric_spec[]){{"nope", "auc"}};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_ERR_NAME);
    CHECK(strstr(loom_model_error(m), "weighted metric") != NULL);
    /* per-class F1 logs one key per class */
    cfg.weighted_metrics = (const loom_metric_spec[]){{NULL, "f1_score"}};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    float fy[] = {1, 0, 0, 0, 1, 0}, fp[] = {0.7f, 0.2f, 0.1f, 0.6f, 0.3f, 0.1f};
    loom_array fxa = {.name = "x", .data = fp, .n = 2, .count = 6}, fya = {.name = "out", .data = fy, .n = 2, .count = 6};
    loom_history *h = NULL;
    CHECK_STATUS(loom_evaluate(m, &(loom_data){1, &fxa, 1, &fya, 0, NULL}, 2, 0, &h), LOOM_OK);
    CHECK(loom_history_num_keys(h) == 4 && strcmp(loom_history_key(h, 3), "f1_score/2") == 0);
    CHECK_CLOSE(loom_history_get(h, "f1_score/0", 0), 2.0 / 3, 1e-6, 0); /* tp 1, fp 1, fn 0 */
    CHECK_CLOSE(loom_history_get(h, "f1_score/1", 0), 0.0, 1e-6, 0);
    loom_history_free(h);
    loom_model_free(m);
    free(y), free(p), free(w);
}

/* ---------------------------------------------------------------- class weights */

enum { CN = 12, CI = 4, CK = 3 };

/* Dense softmax (or sigmoid) model with the fixture's weights. */
static loom_model *dense_model(int units, loom_activation act, const char *loss, const float *K, const float *b,
                               const char *metric, const char *wmetric) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){CI});
    loom_dense_options o = loom_dense_defaults();
    o.use_bias = b != NULL;
    loom_tensor *y = loom_call(loom_dense(g, "head", units, act, &o), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    loom_compile_config cfg = {.n_losses = 1, .losses = &(loom_loss){.name = loss}, .optimizer = loom_sgd(1.0f, 0, 0)};
    loom_metric_spec ms = {NULL, metric}, wms = {NULL, wmetric};
    if (metric) cfg.n_metrics = 1, cfg.metrics = &ms;
    if (wmetric) cfg.n_weighted_metrics = 1, cfg.weighted_metrics = &wms;
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    CHECK_STATUS(loom_set_weights(m, "head", 0, K, (size_t)CI * units), LOOM_OK);
    if (b) CHECK_STATUS(loom_set_weights(m, "head", 1, b, (size_t)units), LOOM_OK);
    return m;
}

/* One fit step over the whole batch with SGD lr 1: the weights move by minus the gradient, and
 * the history's loss is the loss before the step. */
static void fit_one_step(loom_model *m, const float *x, const float *y, size_t ysz, const float *sw,
                         const loom_class_weight *cw, loom_history **h) {
    loom_array xa = {.name = "x", .data = x, .n = CN, .count = CN * CI};
    loom_array ya = {.name = "head", .data = y, .n = CN, .count = CN * ysz};
    loom_array swa = {.name = NULL, .data = sw, .n = CN, .count = CN};
    loom_data d = {1, &xa, 1, &ya, sw ? 1 : 0, sw ? &swa : NULL};
    loom_fit_options o = loom_fit_defaults();
    o.batch_size = CN;
    o.shuffle = 0;
    o.n_class_weights = cw ? 1 : 0;
    o.class_weights = cw;
    CHECK_STATUS(loom_fit(m, &d, &o, h), LOOM_OK);
}

static void check_step(loom_model *m, const float *K0, const float *b0, int units, const char *tag, loom_history *h) {
    char key[64];
    snprintf(key, sizeof key, "cw.%s.loss", tag);
    CHECK_CLOSE(loom_history_get(h, "loss", 0), ref(key), 1e-5, 1e-5);
    float K[CI * CK], b[CK];
    CHECK_STATUS(loom_get_weights(m, "head", 0, K, (size_t)CI * units), LOOM_OK);
    snprintf(key, sizeof key, "cw.%s.gK", tag);
    const double *gK = fixture_get(&fx, key, (size_t)CI * units);
    for (int i = 0; gK && i < CI * units; i++) CHECK_CLOSE(K0[i] - K[i], gK[i], 1e-5, 1e-4);
    if (b0) {
        CHECK_STATUS(loom_get_weights(m, "head", 1, b, (size_t)units), LOOM_OK);
        snprintf(key, sizeof key, "cw.%s.gb", tag);
        const double *gb = fixture_get(&fx, key, (size_t)units);
        for (int i = 0; gb && i < units; i++) CHECK_CLOSE(b0[i] - b[i], gb[i], 1e-5, 1e-4);
    }
}

static void test_class_weights(void) {
    float *x = floats("cw.x", CN * CI), *K = floats("cw.K", CI * CK), *b = floats("cw.b", CK), *y = floats("cw.y", CN * CK);
    float *cls = floats("cw.cls", CN), *sw = floats("cw.sw", CN), *map = floats("cw.map", CK);
    loom_class_weight cw = {.output = "head", .n_classes = CK, .weights = map};
    loom_history *h = NULL;

    /* one-hot targets: the class is the argmax; with and without sample weights (a product) */
    loom_model *m = dense_model(CK, LOOM_SOFTMAX, "categorical_crossentropy", K, b, "categorical_accuracy",
                                "categorical_accuracy");
    fit_one_step(m, x, y, CK, NULL, &cw, &h);
    check_step(m, K, b, CK, "cce", h);
    /* the weighted metric sees the class weights, the plain one does not */
    double acc = 0, wacc = 0, wsum = 0;
    for (int r = 0; r < CN; r++) {
        double z[CK];
        int best = 0;
        for (int k = 0; k < CK; k++) {
            z[k] = b[k];
            for (int i = 0; i < CI; i++) z[k] += (double)x[r * CI + i] * K[i * CK + k];
            if (z[k] > z[best]) best = k;
        }
        double hit = best == (int)cls[r], wr = map[(int)cls[r]];
        acc += hit, wacc += wr * hit, wsum += wr;
    }
    CHECK_CLOSE(loom_history_get(h, "categorical_accuracy", 0), acc / CN, 1e-6, 0);
    CHECK_CLOSE(loom_history_get(h, "categorical_accuracy_1", 0), wacc / wsum, 1e-6, 0);
    loom_history_free(h);
    loom_model_free(m);

    m = dense_model(CK, LOOM_SOFTMAX, "categorical_crossentropy", K, b, NULL, NULL);
    fit_one_step(m, x, y, CK, sw, &(loom_class_weight){.output = NULL, .n_classes = CK, .weights = map}, &h);
    check_step(m, K, b, CK, "cce_sw", h);
    loom_history_free(h);
    /* fit leaves no class weights behind: a second fit without them is the plain loss */
    loom_history *h2 = NULL;
    fit_one_step(m, x, y, CK, NULL, NULL, &h2);
    loom_history_free(h2);
    CHECK(!m->has_class_weights && !m->outputs[0].class_w);
    loom_model_free(m);

    /* sparse labels: the class is the label itself */
    m = dense_model(CK, LOOM_SOFTMAX, "sparse_categorical_crossentropy", K, b, NULL, NULL);
    fit_one_step(m, x, cls, 1, sw, &cw, &h);
    check_step(m, K, b, CK, "cce_sw", h);
    loom_history_free(h);
    loom_model_free(m);

    /* binary crossentropy on one sigmoid unit: the class is the rounded label */
    float *by = floats("cw.by", CN), *bK = floats("cw.bK", CI);
    m = dense_model(1, LOOM_SIGMOID, "binary_crossentropy", bK, NULL, NULL, NULL);
    fit_one_step(m, x, by, 1, NULL, &(loom_class_weight){.output = "head", .n_classes = 2, .weights = (float[]){0.25f, 4}},
                 &h);
    check_step(m, bK, NULL, 1, "bce", h);
    loom_history_free(h);
    /* a partial map: classes past n_classes weigh 1 (Keras's dict.get(c, 1.0)) */
    loom_model_free(m);

    /* refusals name the output */
    struct { const char *loss; int units; loom_activation act; loom_class_weight cw; const char *words; } bad[] = {
        {"mse", CK, LOOM_LINEAR, {"head", CK, map}, "output head: its loss is mean_squared_error"},
        {"binary_crossentropy", CK, LOOM_SIGMOID, {"head", 2, map}, "multi-label"},
        {"categorical_crossentropy", CK, LOOM_SOFTMAX, {"head", CK + 1, map}, "4 weights, but the output has 3 classes"},
        {"categorical_crossentropy", CK, LOOM_SOFTMAX, {"head", 2, (float[]){1, -1}}, "class 1 is -1"},
        {"categorical_crossentropy", CK, LOOM_SOFTMAX, {"tail", 2, map}, "class_weight"},
        {"categorical_crossentropy", CK, LOOM_SOFTMAX, {"head", 2, NULL}, "weights is NULL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float Kb[CI * CK] = {0};
        m = dense_model(bad[i].units, bad[i].act, bad[i].loss, Kb, NULL, NULL, NULL);
        loom_array xa = {.name = "x", .data = x, .n = CN, .count = CN * CI};
        loom_array ya = {.name = "head", .data = y, .n = CN, .count = CN * CK};
        loom_fit_options o = loom_fit_defaults();
        o.n_class_weights = 1;
        o.class_weights = &bad[i].cw;
        loom_status s = loom_fit(m, &(loom_data){1, &xa, 1, &ya, 0, NULL}, &o, NULL);
        CHECK(s == LOOM_ERR_ARGUMENT || s == LOOM_ERR_NAME);
        if (!strstr(loom_model_error(m), bad[i].words)) {
            fprintf(stderr, "class_weight case %zu: \"%s\" lacks \"%s\"\n", i, loom_model_error(m), bad[i].words);
            CHECK(0);
        }
        loom_model_free(m);
    }
    m = dense_model(CK, LOOM_SOFTMAX, "categorical_crossentropy", K, b, NULL, NULL);
    loom_array xa = {.name = "x", .data = x, .n = CN, .count = CN * CI};
    loom_array ya = {.name = "head", .data = y, .n = CN, .count = CN * CK};
    loom_fit_options o = loom_fit_defaults();
    o.n_class_weights = 2;
    o.class_weights = (loom_class_weight[]){cw, cw};
    CHECK_STATUS(loom_fit(m, &(loom_data){1, &xa, 1, &ya, 0, NULL}, &o, NULL), LOOM_ERR_ARGUMENT);
    CHECK(strstr(loom_model_error(m), "names output head twice") != NULL);
    loom_model_free(m);
    free(x), free(K), free(b), free(y), free(cls), free(sw), free(map), free(by), free(bK);
}

/* A masked sequence output: every step has its own class. When all steps of a sample share one
 * class, class weights must equal sample weights of that class's weight (Keras turns class_weight
 * into sample weights), through the mask's rows/valid scaling. */
static loom_model *sequence_model(void) {
    loom_graph *g = loom_graph_new(11);
    loom_tensor *x = loom_input(g, "ids", 1, (int[]){5});
    loom_tensor *e = loom_call(loom_embedding(g, "emb", 10, 4, 1), x);
    loom_rnn_options ro = loom_rnn_defaults();
    ro.return_sequences = 1;
    loom_tensor *h = loom_call(loom_lstm(g, "lstm", 3, &ro), e);
    loom_tensor *y = loom_call(loom_dense(g, "tag", 3, LOOM_SOFTMAX, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    loom_compile_config cfg = {.n_losses = 1, .losses = &(loom_loss){.name = "sparse_categorical_crossentropy"},
                               .optimizer = loom_sgd(0.5f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void test_class_weights_sequence(void) {
    enum { S = 6, T = 5 };
    float ids[S * T], lab[S * T], sw[S];
    const float map[3] = {0.5f, 2.0f, 3.5f};
    for (int i = 0; i < S; i++) {
        int len = 2 + i % 4; /* padded with id 0 after len steps */
        for (int t = 0; t < T; t++) {
            ids[i * T + t] = t < len ? (float)(1 + (i * 3 + t) % 9) : 0;
            lab[i * T + t] = (float)(i % 3);
        }
        sw[i] = map[i % 3];
    }
    loom_model *a = sequence_model(), *b = sequence_model();
    loom_array xa = {.name = "ids", .data = ids, .n = S, .count = S * T};
    loom_array ya = {.name = "tag", .data = lab, .n = S, .count = S * T};
    loom_array swa = {.name = NULL, .data = sw, .n = S, .count = S};
    loom_fit_options o = loom_fit_defaults();
    o.batch_size = S;
    o.shuffle = 0;
    o.epochs = 2;
    o.n_class_weights = 1;
    o.class_weights = &(loom_class_weight){.output = "tag", .n_classes = 3, .weights = map};
    loom_history *ha = NULL, *hb = NULL;
    CHECK_STATUS(loom_fit(a, &(loom_data){1, &xa, 1, &ya, 0, NULL}, &o, &ha), LOOM_OK);
    o.n_class_weights = 0;
    CHECK_STATUS(loom_fit(b, &(loom_data){1, &xa, 1, &ya, 1, &swa}, &o, &hb), LOOM_OK);
    for (int ep = 0; ep < 2; ep++) CHECK_CLOSE(loom_history_get(ha, "loss", ep), loom_history_get(hb, "loss", ep), 1e-6, 1e-6);
    const float *pa = loom_params(a), *pb = loom_params(b);
    double diff = 0;
    for (size_t i = 0; i < loom_param_count(a); i++) diff = fmax(diff, fabs((double)pa[i] - pb[i]));
    CHECK(diff < 1e-6);
    /* and the class weights did something: without them the loss differs */
    loom_model *c = sequence_model();
    loom_history *hc = NULL;
    CHECK_STATUS(loom_fit(c, &(loom_data){1, &xa, 1, &ya, 0, NULL}, &o, &hc), LOOM_OK);
    CHECK(fabs(loom_history_get(hc, "loss", 0) - loom_history_get(ha, "loss", 0)) > 1e-3);
    loom_history_free(ha), loom_history_free(hb), loom_history_free(hc);
    loom_model_free(a), loom_model_free(b), loom_model_free(c);
}

int main(void) {
    if (fixture_load(&fx, LOOM_TEST_DIR "/reference/metrics_ref.txt") != 0) return check_report("metrics_ref");
    test_keras_vectors();
    test_auc_reference();
    test_precision_recall_reference();
    test_fscore_reference();
    test_iou_reference();
    test_spec_errors();
    test_model_metrics();
    test_class_weights();
    test_class_weights_sequence();
    fixture_free(&fx);
    return check_report("metrics_ref");
}
