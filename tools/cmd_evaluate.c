/* cmd_evaluate.c — `loom evaluate MODEL DATA.npz` and `loom predict MODEL DATA.npz -o PRED.npz`. */
#include "commands.h"
#include "data_bind.h"
#include "model_io.h"

#include <stdlib.h>
#include <string.h>

static opt_list eval_maps;
static long eval_batch = 32, eval_threads = 0;
static bool eval_quiet;
static const opt_spec eval_opts[] = {
    {"--map", NULL, "NAME=MEMBER", OPT_LIST, &eval_maps, NULL, 0, 0, "bind input or output NAME to another .npz member (.csv: COL,COL,... or FIRST:LAST)"},
    {"--batch-size", NULL, "B", OPT_INT, &eval_batch, "32", 1, 1 << 20, "samples per batch"},
    {"--threads", NULL, "N", OPT_INT, &eval_threads, "loom's default", 1, 1024, "worker threads"},
    {"--quiet", NULL, NULL, OPT_FLAG, &eval_quiet, NULL, 0, 0, "no progress bar"},
};

static loom_model *load_for(const command *c, const char *path, long threads) {
    char err[2048];
    if (threads > 0 && loom_set_num_threads((int)threads)) {
        tool_fail(c, "--threads %ld: cannot use that many threads", threads);
        return NULL;
    }
    loom_model *m = tool_model_load(path, err, sizeof err);
    if (!m) tool_fail(c, "%s", err);
    return m;
}

static int evaluate_run(int argc, char **argv) {
    const char *args[2];
    int n_args, rc = opts_parse(&cmd_evaluate, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    loom_model *m = load_for(&cmd_evaluate, args[0], eval_threads);
    if (!m) return 1;
    char err[2048];
    bound_data b;
    if (!loom_model_is_compiled(m)) {
        loom_model_free(m);
        return tool_fail(&cmd_evaluate, "%s has no compile settings (losses, metrics): nothing to evaluate", args[0]);
    }
    if (bind_data_file(m, args[1], &eval_maps, BIND_TARGETS_REQUIRED, &b, err, sizeof err)) {
        loom_model_free(m);
        return tool_fail(&cmd_evaluate, "%s", err);
    }
    loom_history *h = NULL;
    if (loom_evaluate(m, &b.data, (int)eval_batch, eval_quiet ? 0 : 1, &h)) {
        rc = tool_fail(&cmd_evaluate, "%s: %s", args[1], loom_model_error(m));
    } else {
        printf("%s on %s (%zu samples):\n", args[0], args[1], b.n);
        for (int i = 0; i < loom_history_num_keys(h); i++)
            printf("  %-28s %.6g\n", loom_history_key(h, i), (double)loom_history_get(h, loom_history_key(h, i), 0));
    }
    loom_history_free(h);
    bind_free(&b);
    loom_model_free(m);
    return rc;
}

const command cmd_evaluate = {
    "evaluate", "MODEL DATA.npz [options]", "the losses and metrics of a model on data",
    "Members of DATA.npz (or columns of a DATA.csv with a header, see loom help fit) are bound by the\n"
    "names of the model's inputs and outputs (--map for others);\n"
    "every output with a loss needs its targets. Prints each log key (loss, <output>_loss, metrics).",
    2, 2, eval_opts, (int)(sizeof eval_opts / sizeof *eval_opts), evaluate_run};

static opt_list pred_maps;
static long pred_batch = 32, pred_threads = 0;
static const char *pred_out;
static bool pred_stored;
static const opt_spec pred_opts[] = {
    {"--output", "-o", "PRED.npz", OPT_STRING, &pred_out, NULL, 0, 0, "where to write the predictions (required)"},
    {"--map", NULL, "NAME=MEMBER", OPT_LIST, &pred_maps, NULL, 0, 0, "bind input NAME to another .npz member (.csv: COL,COL,... or FIRST:LAST)"},
    {"--batch-size", NULL, "B", OPT_INT, &pred_batch, "32", 1, 1 << 20, "samples per batch"},
    {"--threads", NULL, "N", OPT_INT, &pred_threads, "loom's default", 1, 1024, "worker threads"},
    {"--no-compress", NULL, NULL, OPT_FLAG, &pred_stored, NULL, 0, 0, "store the members (numpy.savez) instead of deflating them"},
};

static int predict_run(int argc, char **argv) {
    const char *args[2];
    int n_args, rc = opts_parse(&cmd_predict, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    if (!pred_out) return opts_usage_error(&cmd_predict, "-o PRED.npz is required");
    loom_model *m = load_for(&cmd_predict, args[0], pred_threads);
    if (!m) return 1;
    char err[2048];
    bound_data b;
    if (bind_data_file(m, args[1], &pred_maps, BIND_NO_TARGETS, &b, err, sizeof err)) {
        loom_model_free(m);
        return tool_fail(&cmd_predict, "%s", err);
    }
    int no = loom_model_num_outputs(m);
    loom_ndarray out[LOOM_MAX_OUTPUTS];
    float *bufs[LOOM_MAX_OUTPUTS];
    const char *names[LOOM_MAX_OUTPUTS];
    memset(out, 0, sizeof out);
    /* variable-length inputs: the outputs take their length from the members' steps */
    int steps[64] = {0};
    for (int i = 0; i < b.data.n_x && i < 64; i++) {
        int k = b.x[i].name ? loom_model_input_index(m, b.x[i].name) : i;
        size_t step = k >= 0 ? bind_step_size(m, k) : 0;
        if (k >= 0 && k < 64 && loom_model_input_variable(m, k) && step && b.x[i].n)
            steps[k] = (int)(b.x[i].count / b.x[i].n / step);
    }
    for (int k = 0; k < no && !rc; k++) {
        int dims[LOOM_NDARRAY_MAX_RANK];
        int rank = loom_model_node_shape(m, loom_model_output_node(m, k), dims);
        names[k] = loom_model_output_name(m, k);
        size_t per = loom_model_output_size_at(m, k, steps);
        if (rank > 0 && dims[0] == LOOM_DIM_VARIABLE) { /* the steps axis from the size */
            size_t rest = 1;
            for (int d = 1; d < rank; d++) rest *= (size_t)dims[d];
            dims[0] = rest ? (int)(per / rest) : 0;
        }
        if (per == 0) {
            rc = tool_fail(&cmd_predict, "output %s: %s", names[k], loom_model_error(m));
            break;
        }
        if (rank < 0 || rank + 1 > LOOM_NDARRAY_MAX_RANK || (per && b.n > SIZE_MAX / sizeof(float) / per)) {
            rc = tool_fail(&cmd_predict, "output %s: its shape cannot be written", names[k]);
            break;
        }
        out[k].rank = rank + 1;
        out[k].dims[0] = b.n;
        for (int d = 0; d < rank; d++) out[k].dims[d + 1] = (size_t)dims[d];
        out[k].size = b.n * per;
        out[k].data = bufs[k] = malloc((out[k].size ? out[k].size : 1) * sizeof(float));
        if (!bufs[k]) rc = tool_fail(&cmd_predict, "out of memory for output %s", names[k]);
    }
    if (!rc && loom_predict(m, b.data.n_x, b.x, (int)pred_batch, bufs))
        rc = tool_fail(&cmd_predict, "%s: %s", args[1], loom_model_error(m));
    if (!rc && loom_npz_save(pred_out, no, names, out, !pred_stored, err, sizeof err)) rc = tool_fail(&cmd_predict, "%s", err);
    if (!rc) {
        printf("%zu samples -> %s:", b.n, pred_out);
        for (int k = 0; k < no; k++) printf("%s%s", k ? ", " : " ", names[k]);
        printf("\n");
    }
    for (int k = 0; k < no; k++) free(out[k].data);
    bind_free(&b);
    loom_model_free(m);
    return rc;
}

const command cmd_predict = {
    "predict", "MODEL DATA.npz -o PRED.npz [options]", "predictions of a model on data, into an .npz file",
    "Members of DATA.npz (or columns of a DATA.csv, see loom help fit) are bound by the names of the\n"
    "model's inputs (--map for others). PRED.npz gets one\n"
    "float32 member per output, named after it, shaped (samples, output shape...).",
    2, 2, pred_opts, (int)(sizeof pred_opts / sizeof *pred_opts), predict_run};
