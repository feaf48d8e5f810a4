/* cmd_fashion.c — `loom fashion`: the Fashion-MNIST multi-task example (examples/fashion_multitask.c,
 * one program for both), a convolutional trunk with three heads against the same trunk with one
 * (docs/fashion.md). The shared parser checks the options and gives the help; the example then
 * reads them itself. */
#include "commands.h"

#define FASHION_NO_MAIN
#include "../examples/fashion_multitask.c"

static long f_epochs, f_train, f_seed, f_batch;
static const char *f_data, *f_dtype;
static bool f_quiet, f_heads_only;
static const opt_spec fashion_opts_table[] = {
    {"--epochs", NULL, "N", OPT_INT, &f_epochs, "15", 1, 100000, "epochs of each of the two models"},
    {"--train", NULL, "N", OPT_INT, &f_train, "20000", 1, 60000 - N_VALID, "training images"},
    {"--seed", NULL, "N", OPT_INT, &f_seed, "42", 0, 2147483647, "seed of the weights and the shuffling"},
    {"--batch", NULL, "N", OPT_INT, &f_batch, "64", 1, 1 << 20, "batch size"},
    {"--data", NULL, "DIR", OPT_STRING, &f_data, FASHION_DIR, 0, 0, "folder of the Fashion-MNIST IDX files"},
    {"--quiet", NULL, NULL, OPT_FLAG, &f_quiet, NULL, 0, 0, "no progress bar"},
    {"--dtype", NULL, "POLICY", OPT_STRING, &f_dtype, "float32", 0, 0, "float32 or mixed_bfloat16, for every layer"},
    {"--three-heads-only", NULL, NULL, OPT_FLAG, &f_heads_only, NULL, 0, 0,
     "the three-head model alone: no diagnostics, no item-alone model"},
};

static int fashion_run(int argc, char **argv) {
    const char *args[1];
    int n_args, rc = opts_parse(&cmd_fashion, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    return fashion_main(argc, argv);
}

const command cmd_fashion = {"fashion", "[options]",
                             "the Fashion-MNIST multi-task example: three heads on one trunk against one head",
                             "See docs/fashion.md. Needs the Fashion-MNIST IDX files (Debian: fashion-mnist).", 0, 0,
                             fashion_opts_table, (int)(sizeof fashion_opts_table / sizeof *fashion_opts_table),
                             fashion_run};
