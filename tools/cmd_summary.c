/* cmd_summary.c — `loom summary [MODEL]` (the layer table) and `loom diagnose MODEL DATA.npz`
 * (how the losses of a model share it, measured on a batch of data). */
#include "commands.h"
#include "data_bind.h"
#include "model_io.h"

#include <string.h>

static int summary_run(int argc, char **argv) {
    const char *args[1];
    int n_args, rc = opts_parse(&cmd_summary, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    char err[1024];
    loom_model *m = n_args ? tool_model_load(args[0], err, sizeof err) : demo_seed_model(0);
    if (!m) return n_args ? tool_fail(&cmd_summary, "%s", err) : 1;
    loom_summary(m, stdout);
    loom_model_free(m);
    return 0;
}

const command cmd_summary = {"summary", "[MODEL]", "print a model's layers, shapes and parameter counts",
                             "Without MODEL: the seed model of `loom demo`.", 0, 1, NULL, 0, summary_run};

static opt_list diag_maps;
static long diag_samples = 256;
static const opt_spec diag_opts[] = {
    {"--map", NULL, "NAME=MEMBER", OPT_LIST, &diag_maps, NULL, 0, 0, "bind input or output NAME to another .npz member"},
    {"--samples", NULL, "N", OPT_INT, &diag_samples, "256", 1, 1 << 20, "measure on the first N samples"},
};

static int diagnose_run(int argc, char **argv) {
    const char *args[2];
    int n_args, rc = opts_parse(&cmd_diagnose, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    char err[2048];
    loom_model *m = tool_model_load(args[0], err, sizeof err);
    if (!m) return tool_fail(&cmd_diagnose, "%s", err);
    if (!loom_model_is_compiled(m)) {
        loom_model_free(m);
        return tool_fail(&cmd_diagnose, "%s has no compile settings (losses): nothing to diagnose", args[0]);
    }
    bound_data b;
    if (bind_data_file(m, args[1], &diag_maps, BIND_TARGETS_OPTIONAL, &b, err, sizeof err)) {
        loom_model_free(m);
        return tool_fail(&cmd_diagnose, "%s", err);
    }
    size_t n = b.n < (size_t)diag_samples ? b.n : (size_t)diag_samples;
    for (int i = 0; i < b.data.n_x; i++) b.x[i].n = n, b.x[i].count = n * loom_model_input_size(m, i);
    for (int i = 0; i < b.data.n_y; i++) b.y[i].n = n, b.y[i].count = b.y[i].count / b.n * n;
    loom_diagnostics *d = loom_diagnose(m, &b.data);
    rc = 0;
    if (!d) {
        rc = tool_fail(&cmd_diagnose, "%s", loom_model_error(m));
    } else {
        printf("%s on %s (%zu samples)\n\n", args[0], args[1], n);
        loom_diag_print(d, stdout);
        loom_diagnostics_free(d);
    }
    bind_free(&b);
    loom_model_free(m);
    return rc;
}

const command cmd_diagnose = {
    "diagnose", "MODEL DATA.npz [options]", "how the losses share the model: per-layer gradient norms, cosines",
    "One forward pass and one backward pass per loss on the first samples of DATA.npz (members named after\n"
    "the model's inputs and outputs; outputs without a member are left out).",
    2, 2, diag_opts, (int)(sizeof diag_opts / sizeof *diag_opts), diagnose_run};

static int convert_run(int argc, char **argv) {
    const char *args[2];
    int n_args, rc = opts_parse(&cmd_convert, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    if (!tool_model_can_save(args[1]))
        return opts_usage_error(&cmd_convert, "%s: cannot write this format (by its extension) in this build", args[1]);
    char err[2048];
    loom_model *m = tool_model_load(args[0], err, sizeof err);
    if (!m) return tool_fail(&cmd_convert, "%s", err);
    rc = tool_model_save(m, args[1], err, sizeof err) ? tool_fail(&cmd_convert, "%s", err) : 0;
    if (!rc) printf("%s -> %s\n", args[0], args[1]);
    loom_model_free(m);
    return rc;
}

const command cmd_convert = {"convert", "IN OUT", "convert a model file to another format (from OUT's extension)",
                             "Reads any model file loom reads and writes OUT in the format its extension names:\n"
                             ".loom (architecture, weights, compile settings, optimizer state, history).",
                             2, 2, NULL, 0, convert_run};
