/* cmd_plot.c — `loom plot MODEL -o model.svg|png|dot`. */
#include "commands.h"
#include "model_io.h"
#include "plot.h"

#include <stdlib.h>
#include <string.h>

static const char *plot_out, *plot_rankdir;
static bool plot_shapes, plot_dtype, plot_losses;
static double plot_dpi;
static const opt_spec plot_opts[] = {
    {"--output", "-o", "FILE", OPT_STRING, &plot_out, NULL, 0, 0, "model.svg, model.png or model.dot (required; the format from the extension)"},
    {"--show-shapes", NULL, NULL, OPT_FLAG, &plot_shapes, NULL, 0, 0, "each layer's input and output shapes"},
    {"--show-dtype", NULL, NULL, OPT_FLAG, &plot_dtype, NULL, 0, 0, "each layer's dtype"},
    {"--rankdir", NULL, "DIR", OPT_STRING, &plot_rankdir, "TB", 0, 0, "TB (top to bottom), LR, BT or RL"},
    {"--losses", NULL, NULL, OPT_FLAG, &plot_losses, NULL, 0, 0, "colour each layer by the losses that reach it; loss weights in the legend"},
    {"--dpi", NULL, "N", OPT_NUMBER, &plot_dpi, "96", 10, 1200, "resolution of a PNG"},
};

static const char *extension(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') ? dot + 1 : "";
}

static int plot_run(int argc, char **argv) {
    const char *args[1];
    int n_args, rc = opts_parse(&cmd_plot, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    if (!plot_out) return opts_usage_error(&cmd_plot, "-o FILE is required (.svg, .png or .dot)");
    const char *ext = extension(plot_out);
    if (strcmp(ext, "svg") && strcmp(ext, "png") && strcmp(ext, "dot") && strcmp(ext, "gv"))
        return opts_usage_error(&cmd_plot, "-o %s: the extension must be .svg, .png or .dot", plot_out);
    const char *dirs[] = {"TB", "LR", "BT", "RL"};
    bool dir_ok = !plot_rankdir;
    for (int i = 0; i < 4 && !dir_ok; i++) dir_ok = strcmp(plot_rankdir, dirs[i]) == 0;
    if (!dir_ok) return opts_usage_error(&cmd_plot, "--rankdir %s: give TB, LR, BT or RL", plot_rankdir);
    char err[2048];
    loom_model *m = tool_model_load(args[0], err, sizeof err);
    if (!m) return tool_fail(&cmd_plot, "%s", err);
    if (plot_losses && !loom_model_is_compiled(m)) {
        loom_model_free(m);
        return tool_fail(&cmd_plot, "--losses: %s has no compile settings, so no losses to colour by", args[0]);
    }
    plot_options po = {plot_shapes, plot_dtype, plot_losses, plot_rankdir, strcmp(ext, "png") == 0 ? plot_dpi : 0};
    char *dot = plot_dot(m, &po), *data = NULL;
    size_t len = 0;
    if (!dot) rc = tool_fail(&cmd_plot, "out of memory");
    else if (strcmp(ext, "dot") == 0 || strcmp(ext, "gv") == 0) data = dot, len = strlen(dot), dot = NULL;
    else if (plot_render(dot, ext, &data, &len, err, sizeof err)) rc = tool_fail(&cmd_plot, "%s: %s", plot_out, err);
    if (!rc) {
        FILE *f = fopen(plot_out, "wb");
        bool ok = f && fwrite(data, 1, len, f) == len;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) rc = tool_fail(&cmd_plot, "%s: cannot write the file", plot_out);
        else printf("%s -> %s\n", args[0], plot_out);
    }
    free(dot);
    free(data);
    loom_model_free(m);
    return rc;
}

const command cmd_plot = {
    "plot", "MODEL -o FILE [options]", "draw the model's graph (SVG, PNG or DOT), like Keras's plot_model",
    "One box per layer, an arrow per connection. A shared layer (called more than once) has a thick border\n"
    "and its call count. With --losses every layer is filled with the colour of each loss that reaches it\n"
    "(striped when several do), each loss hangs under its output, and the legend gives the loss weights.\n"
    "SVG and PNG are drawn by Graphviz's library in process; DOT needs no Graphviz.",
    1, 1, plot_opts, (int)(sizeof plot_opts / sizeof *plot_opts), plot_run};
