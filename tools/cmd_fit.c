/* cmd_fit.c — `loom fit MODEL --data TRAIN.npz [options]`: trains a model file without writing C.
 *
 * Compile settings come from the model file; flags override them one by one (the rest is read back
 * from the model and the model recompiled). --resume instead continues a .loom checkpoint exactly:
 * no recompile, the saved optimizer state and epoch count, --epochs as the total (Keras's
 * initial_epoch).
 *
 * Under an MPI launcher (`mpirun -np N loom fit ...`) every process runs this same command and they
 * train one model together (loom.h, "distributed training"): --batch-size stays the global batch,
 * each rank taking batch/N of it, so N ranks train what one process trains. Every step that could
 * differ between ranks is kept the same on all of them: each loads the whole data set and makes
 * the same validation split (inside loom_fit), each holds the same callback list (the report hook
 * does nothing but on rank 0, whose files it writes; loom writes checkpoints and the CSV log from
 * rank 0), and a failure one rank meets before or after the fit (a file it cannot read or write) is
 * agreed on with loom_dist_any, so no rank is left waiting in a reduction for one that has gone. */
#include "commands.h"
#include "data_bind.h"
#include "model_io.h"
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct {
    const char *data, *val_data, *optimizer, *balance, *save, *checkpoint, *csv_log, *report;
    opt_list maps, losses, loss_weights, metrics;
    double val_split, lr, progress;
    long epochs, batch, threads, seed, diag_every, verbose;
    bool resume, no_shuffle, quiet;
} o;

static const opt_spec fit_opts[] = {
    {"--data", NULL, "TRAIN.npz", OPT_STRING, &o.data, NULL, 0, 0, "training arrays: .npz members, or .csv columns, named after the inputs and outputs (required)"},
    {"--validation-data", NULL, "VAL.npz", OPT_STRING, &o.val_data, NULL, 0, 0, "validation arrays, named likewise"},
    {"--validation-split", NULL, "F", OPT_NUMBER, &o.val_split, "0", 0, 0.99, "validate on the last fraction F of the training data"},
    {"--map", NULL, "NAME=MEMBER", OPT_LIST, &o.maps, NULL, 0, 0, "bind input or output NAME to another member (.csv: COL,COL,... or FIRST:LAST columns)"},
    {"--loss", NULL, "OUT=NAME", OPT_LIST, &o.losses, "the model file's", 0, 0, "the loss of output OUT (NAME alone: every output), e.g. C=categorical_crossentropy"},
    {"--loss-weight", NULL, "OUT=W", OPT_LIST, &o.loss_weights, "the model file's, else 1", 0, 0, "the weight of output OUT's loss"},
    {"--metric", NULL, "OUT=NAME", OPT_LIST, &o.metrics, "the model file's", 0, 0, "a metric on output OUT (replaces the file's metrics)"},
    {"--optimizer", NULL, "NAME", OPT_STRING, &o.optimizer, "the model file's, else adam", 0, 0, "sgd, adam, adamw, rmsprop or adagrad, with Keras's defaults"},
    {"--lr", NULL, "X", OPT_NUMBER, &o.lr, "the optimizer's", 0, 1e6, "learning rate"},
    {"--balance", NULL, "METHOD", OPT_STRING, &o.balance, "the model file's, else static", 0, 0, "static, uncertainty, gradnorm, dwa, rlw, pcgrad, mgda, cagrad or nash_mtl"},
    {"--diagnostics-every", NULL, "N", OPT_INT, &o.diag_every, "0 (off)", 0, 1 << 30, "log the gradient cosines between losses (grad_cos/...) every N steps"},
    {"--epochs", NULL, "N", OPT_INT, &o.epochs, "1", 0, 1 << 24, "epochs to train (with --resume: the total, counting those done)"},
    {"--batch-size", NULL, "B", OPT_INT, &o.batch, "32", 1, 1 << 20, "samples per step (under mpirun: the global batch, shared out among the ranks)"},
    {"--no-shuffle", NULL, NULL, OPT_FLAG, &o.no_shuffle, NULL, 0, 0, "keep the sample order (shuffled every epoch otherwise)"},
    {"--seed", NULL, "N", OPT_INT, &o.seed, "0", 0, 2147483647, "seed of the shuffling and dropout"},
    {"--threads", NULL, "N", OPT_INT, &o.threads, "loom's default (under mpirun: the cores shared out among a machine's ranks)", 1, 1024, "worker threads"},
    {"--save", NULL, "OUT.loom", OPT_STRING, &o.save, NULL, 0, 0, "save the trained model (format from the extension)"},
    {"--checkpoint", NULL, "PATTERN", OPT_STRING, &o.checkpoint, NULL, 0, 0, "save a .loom after every epoch; {epoch} in it becomes the epoch"},
    {"--resume", NULL, NULL, OPT_FLAG, &o.resume, NULL, 0, 0, "continue MODEL (a .loom checkpoint) exactly where it stopped"},
    {"--csv-log", NULL, "FILE", OPT_STRING, &o.csv_log, NULL, 0, 0, "one CSV row per epoch, every log key (appended to with --resume)"},
    {"--report", NULL, "FILE.html", OPT_STRING, &o.report, NULL, 0, 0, "a self-contained HTML report, rewritten after every epoch"},
    {"--verbose", NULL, "N", OPT_INT, &o.verbose, "1", 0, 2, "0 silent, 1 progress bar, 2 one line per epoch"},
    {"--quiet", NULL, NULL, OPT_FLAG, &o.quiet, NULL, 0, 0, "the same as --verbose 0"},
    {"--progress-seconds", NULL, "S", OPT_NUMBER, &o.progress, "30", 0, 1e9, "into a pipe or file: a progress line every S seconds inside an epoch (0: never)"},
};

#define FIT_USAGE(...) opts_usage_error(&cmd_fit, __VA_ARGS__)

static int fit_rank; /* this process's rank in a distributed fit (0 alone): rank 0 prints and writes */

/* The settings the model is recompiled with, in memory of our own (compile frees the model's). */
typedef struct compile_plan {
    int n_out;
    loom_loss losses[LOOM_MAX_OUTPUTS];
    char loss_names[LOOM_MAX_OUTPUTS][256];
    const char *loss_outputs[LOOM_MAX_OUTPUTS];
    float weights[LOOM_MAX_OUTPUTS];
    int n_metrics;
    loom_metric_spec metrics[OPT_LIST_MAX + 64];
    char metric_out[OPT_LIST_MAX + 64][256], metric_name[OPT_LIST_MAX + 64][256];
    loom_optimizer opt;
    loom_balance balance;
    char gradnorm_layer[64];
} compile_plan;

static int output_of(loom_model *m, const char *flag, const char *pair, char *name, size_t cap, const char **value) {
    if (!opts_split_pair(pair, name, cap, value)) {
        FIT_USAGE("%s %s: give OUT=VALUE", flag, pair);
        return -2;
    }
    int k = loom_model_output_index(m, name);
    if (k < 0) tool_fail(&cmd_fit, "%s %s: the model has no output %s", flag, pair, name);
    return k;
}

static int optimizer_from_name(const char *name, loom_optimizer *opt) {
    if (strcmp(name, "sgd") == 0) *opt = loom_sgd(0.01f, 0, 0);
    else if (strcmp(name, "adam") == 0) *opt = loom_adam(0.001f);
    else if (strcmp(name, "adamw") == 0) *opt = loom_adamw(0.001f, 0.004f);
    else if (strcmp(name, "rmsprop") == 0) *opt = loom_rmsprop(0.001f);
    else if (strcmp(name, "adagrad") == 0) *opt = loom_adagrad(0.001f);
    else return -1;
    return 0;
}

/* Reads the model's settings, applies the flags. 0, 1 (run-time error) or 2 (usage). */
static int plan_compile(loom_model *m, compile_plan *p) {
    memset(p, 0, sizeof *p);
    p->n_out = loom_model_num_outputs(m);
    bool compiled = loom_model_is_compiled(m);
    int with_loss = 0;
    for (int k = 0; k < p->n_out; k++) {
        loom_loss l = {0};
        if (compiled) loom_model_get_loss(m, k, &l);
        if (l.fn) return tool_fail(&cmd_fit, "output %s has a C loss function, which a model file cannot hold", loom_model_output_name(m, k));
        p->losses[k] = l;
        if (l.name) snprintf(p->loss_names[k], sizeof p->loss_names[k], "%s", l.name);
        p->loss_outputs[k] = loom_model_output_name(m, k);
        float w = compiled ? loom_get_loss_weight(m, p->loss_outputs[k]) : 1.0f;
        p->weights[k] = isnan(w) ? 1.0f : w;
    }
    for (int i = 0; i < o.losses.n; i++) {
        char name[256];
        const char *value;
        if (!strchr(o.losses.v[i], '=')) {
            if (!loom_loss_known(o.losses.v[i])) return FIT_USAGE("--loss %s: no such loss", o.losses.v[i]);
            for (int k = 0; k < p->n_out; k++) {
                memset(&p->losses[k], 0, sizeof p->losses[k]);
                snprintf(p->loss_names[k], sizeof p->loss_names[k], "%s", o.losses.v[i]);
            }
            continue;
        }
        int k = output_of(m, "--loss", o.losses.v[i], name, sizeof name, &value);
        if (k < 0) return k == -2 ? 2 : 1;
        if (!loom_loss_known(value)) return FIT_USAGE("--loss %s: no such loss", o.losses.v[i]);
        memset(&p->losses[k], 0, sizeof p->losses[k]);
        snprintf(p->loss_names[k], sizeof p->loss_names[k], "%s", value);
    }
    for (int k = 0; k < p->n_out; k++) {
        p->losses[k].name = p->loss_names[k][0] ? p->loss_names[k] : NULL;
        with_loss += p->losses[k].name != NULL;
    }
    if (!with_loss)
        return tool_fail(&cmd_fit, "the model file has no compile settings: give a loss, e.g. --loss %s=mse",
                         loom_model_output_name(m, 0));
    for (int i = 0; i < o.loss_weights.n; i++) {
        char name[256];
        const char *value;
        double w;
        int k = output_of(m, "--loss-weight", o.loss_weights.v[i], name, sizeof name, &value);
        if (k < 0) return k == -2 ? 2 : 1;
        if (!opts_parse_number(value, &w)) return FIT_USAGE("--loss-weight %s: '%s' is not a number", o.loss_weights.v[i], value);
        p->weights[k] = (float)w;
    }
    /* metrics: the file's, unless flags name others */
    if (o.metrics.n) {
        for (int i = 0; i < o.metrics.n; i++) {
            char name[256];
            const char *value;
            int k = output_of(m, "--metric", o.metrics.v[i], name, sizeof name, &value);
            if (k < 0) return k == -2 ? 2 : 1;
            snprintf(p->metric_out[i], sizeof p->metric_out[i], "%s", name);
            snprintf(p->metric_name[i], sizeof p->metric_name[i], "%s", value);
        }
        p->n_metrics = o.metrics.n;
    } else {
        for (int i = 0; i < loom_model_num_metrics(m) && i < OPT_LIST_MAX + 64; i++) {
            loom_metric_spec s;
            loom_model_get_metric(m, i, &s);
            snprintf(p->metric_out[i], sizeof p->metric_out[i], "%s", s.output);
            snprintf(p->metric_name[i], sizeof p->metric_name[i], "%s", s.name);
            p->n_metrics++;
        }
    }
    for (int i = 0; i < p->n_metrics; i++) p->metrics[i] = (loom_metric_spec){p->metric_out[i], p->metric_name[i]};
    if (!compiled || loom_model_get_optimizer(m, &p->opt)) p->opt = loom_adam(0.001f);
    if (o.optimizer && optimizer_from_name(o.optimizer, &p->opt))
        return FIT_USAGE("--optimizer %s: not one of sgd, adam, adamw, rmsprop, adagrad", o.optimizer);
    if (!isnan(o.lr)) {
        p->opt.learning_rate = (float)o.lr;
        p->opt.schedule.kind = LOOM_SCHEDULE_CONSTANT;
    }
    if (compiled) loom_model_get_balance(m, &p->balance);
    if (p->balance.gradnorm_layer) {
        snprintf(p->gradnorm_layer, sizeof p->gradnorm_layer, "%s", p->balance.gradnorm_layer);
        p->balance.gradnorm_layer = p->gradnorm_layer;
    }
    if (o.balance) {
        int kind = loom_balance_from_name(o.balance);
        if (kind < 0) return FIT_USAGE("--balance %s: not one of static, uncertainty, gradnorm, dwa, rlw, pcgrad, mgda, cagrad, nash_mtl", o.balance);
        p->balance = loom_balance_defaults((loom_balance_kind)kind);
    }
    if (o.diag_every >= 0) p->balance.diagnostics_every = (int)o.diag_every;
    return 0;
}

static int compile_with(loom_model *m, compile_plan *p) {
    loom_compile_config cfg = {
        .n_losses = p->n_out,
        .losses = p->losses,
        .loss_outputs = p->loss_outputs,
        .n_loss_weights = p->n_out,
        .loss_weights = p->weights,
        .loss_weight_outputs = p->loss_outputs,
        .n_metrics = p->n_metrics,
        .metrics = p->metrics,
        .optimizer = p->opt,
        .balance = p->balance,
    };
    if (loom_compile(m, &cfg)) return tool_fail(&cmd_fit, "compile: %s", loom_model_error(m));
    return 0;
}

/* After every epoch: the report again, with that epoch in it. */
static int report_hook(loom_model *m, int epoch, int batch, const loom_logs *logs, void *user) {
    (void)epoch, (void)batch, (void)logs;
    const report_settings *rs = user;
    if (fit_rank != 0) return 0; /* every rank holds this hook (the callback lists must match), one writes */
    char err[1024];
    if (report_write(rs->path, m, rs, err, sizeof err)) {
        fprintf(stderr, "loom fit: %s\n", err);
        return 2; /* stop with an error: a report that cannot be written is a broken run */
    }
    return 0;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Under an MPI launcher: the distributed context (*dist), or why there is none. Without one,
 * *dist stays NULL and this returns 0. Every rank decides the same here (same argv, same
 * environment), so an early return leaves no rank waiting. */
static int fit_dist_start(loom_dist **dist, char *err, size_t errlen) {
    int launched = loom_dist_launcher_size();
    if (launched <= 1) return 0;
    if (!loom_dist_available())
        return tool_fail(&cmd_fit, "this process is one of %d started by an MPI launcher (mpirun, mpiexec or srun), but this "
                         "loom was built without MPI, so each would train its own copy of the model: rebuild loom with "
                         "-DLOOM_USE_MPI=ON and an MPI installed (Debian: openmpi-bin libopenmpi-dev), or run loom fit "
                         "without the launcher", launched);
    if (!(*dist = loom_dist_create(NULL, err, errlen))) return tool_fail(&cmd_fit, "%s", err);
    int ranks = loom_dist_size(*dist), rc = 0;
    fit_rank = loom_dist_rank(*dist);
    if (ranks != launched)
        rc = tool_fail(&cmd_fit, "the launcher's environment says %d processes but MPI counts %d: is loom linked with "
                       "the MPI of that launcher (or is a Slurm allocation's SLURM_NTASKS set outside srun)?", launched, ranks);
    else if (o.batch % ranks) /* the same on every rank: one says it */
        rc = fit_rank == 0 ? FIT_USAGE("--batch-size %ld is the global batch, shared out among the %d ranks: give a "
                                       "multiple of %d", o.batch, ranks, ranks) : 2;
    if (rc) {
        loom_dist_free(*dist);
        *dist = NULL;
        return rc;
    }
    /* one process per core share: N ranks on one machine would otherwise each start a thread
     * per core and compete for them */
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = getenv("MPI_LOCALNRANKS");
    long per_node = local ? strtol(local, NULL, 10) : 0;
    if (o.threads == 0 && per_node > 1) {
        int t = loom_get_num_threads() / (int)(per_node < 1024 ? per_node : 1024);
        loom_set_num_threads(t > 0 ? t : 1);
    }
    return 0;
}

static int fit_run(int argc, char **argv) {
    memset(&o, 0, sizeof o);
    o.lr = NAN;
    o.epochs = 1;
    o.batch = 32;
    o.verbose = 1;
    o.diag_every = -1;
    o.progress = 30;
    const char *args[1];
    int n_args, rc = opts_parse(&cmd_fit, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    if (!o.data) return FIT_USAGE("--data TRAIN.npz is required");
    if (o.val_data && o.val_split > 0) return FIT_USAGE("give --validation-data or --validation-split, not both");
    if (o.resume && (o.losses.n || o.metrics.n || o.optimizer || !isnan(o.lr) || o.balance || o.diag_every >= 0))
        return FIT_USAGE("--resume continues the saved compile settings and optimizer state; --loss, --metric, "
                         "--optimizer, --lr, --balance and --diagnostics-every would recompile and reset them");
    if (o.save && !tool_model_can_save(o.save)) return FIT_USAGE("--save %s: cannot write this format (by its extension)", o.save);
    if (o.checkpoint && !ends_with(o.checkpoint, ".loom")) return FIT_USAGE("--checkpoint %s: checkpoints are .loom files", o.checkpoint);
    if (o.report && !ends_with(o.report, ".html")) return FIT_USAGE("--report %s: the report is an .html file", o.report);
    if (o.threads > 0 && loom_set_num_threads((int)o.threads)) return tool_fail(&cmd_fit, "--threads %ld: refused", o.threads);

    char err[2048];
    loom_dist *dist = NULL;
    fit_rank = 0;
    if ((rc = fit_dist_start(&dist, err, sizeof err))) return rc;
    int ranks = loom_dist_size(dist);
    bool agreed = dist == NULL; /* the ranks have told each other whether their setup succeeded */
    loom_model *m = tool_model_load(args[0], err, sizeof err);
    if (!m) {
        rc = tool_fail(&cmd_fit, "%s", err);
        if (dist) loom_dist_any(dist, 1), loom_dist_free(dist);
        return rc;
    }
    bound_data train, val;
    memset(&val, 0, sizeof val);
    memset(&train, 0, sizeof train);
    loom_callback *cbs[4];
    int n_cbs = 0;
    report_settings rs = {0};
    loom_history *h = NULL;
    int initial_epoch = 0;
    if (o.resume) {
        if (!loom_model_is_compiled(m)) {
            rc = tool_fail(&cmd_fit, "--resume: %s holds no compile settings or training state to resume", args[0]);
            goto done;
        }
        initial_epoch = loom_model_epochs_done(m);
        for (int i = 0; i < o.loss_weights.n; i++) {
            char name[256];
            const char *value;
            double w;
            int k = output_of(m, "--loss-weight", o.loss_weights.v[i], name, sizeof name, &value);
            if (k < 0) {
                rc = k == -2 ? 2 : 1;
                goto done;
            }
            if (!opts_parse_number(value, &w)) {
                rc = FIT_USAGE("--loss-weight %s: '%s' is not a number", o.loss_weights.v[i], value);
                goto done;
            }
            loom_set_loss_weight(m, name, (float)w);
        }
        if (initial_epoch >= o.epochs && fit_rank == 0) {
            printf("%s has trained %d epochs already; --epochs %ld is the total with --resume: nothing to do\n", args[0],
                   initial_epoch, o.epochs);
        }
    } else {
        compile_plan *plan = malloc(sizeof *plan);
        if (!plan) {
            rc = tool_fail(&cmd_fit, "out of memory");
            goto done;
        }
        rc = plan_compile(m, plan);
        if (!rc) rc = compile_with(m, plan);
        free(plan);
        if (rc) goto done;
    }
    if (bind_data_file(m, o.data, &o.maps, BIND_TARGETS_REQUIRED, &train, err, sizeof err) ||
        (o.val_data && bind_data_file(m, o.val_data, &o.maps, BIND_TARGETS_REQUIRED, &val, err, sizeof err))) {
        rc = tool_fail(&cmd_fit, "%s", err);
        goto done;
    }
    if (o.checkpoint && !(cbs[n_cbs++] = loom_model_checkpoint(o.checkpoint, NULL, LOOM_MODE_AUTO, 0, 0))) {
        rc = tool_fail(&cmd_fit, "--checkpoint %s: refused", o.checkpoint);
        goto done;
    }
    if (o.csv_log && !(cbs[n_cbs++] = loom_csv_logger(o.csv_log, ',', o.resume))) {
        rc = tool_fail(&cmd_fit, "--csv-log %s: refused", o.csv_log);
        goto done;
    }
    if (o.report) {
        rs = (report_settings){.path = o.report, .model_path = args[0], .data_path = o.data,
                                    .val_path = o.val_data, .val_split = o.val_split, .epochs = (int)o.epochs,
                                    .batch_size = (int)o.batch, .seed = o.seed, .resume = o.resume,
                                    .threads = loom_get_num_threads()};
        if (fit_rank == 0 && report_write(o.report, m, &rs, err, sizeof err)) {
            rc = tool_fail(&cmd_fit, "%s", err);
            goto done;
        }
        if (!(cbs[n_cbs++] = loom_hook_callback(NULL, report_hook, &rs))) {
            rc = tool_fail(&cmd_fit, "out of memory");
            goto done;
        }
    }
    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = (int)o.epochs;
    fo.initial_epoch = initial_epoch < o.epochs ? initial_epoch : (int)o.epochs;
    fo.batch_size = (int)o.batch / ranks; /* fit_dist_start checked that the ranks divide it */
    fo.dist = dist;
    fo.shuffle = !o.no_shuffle;
    fo.seed = (uint64_t)o.seed;
    fo.validation_split = (float)o.val_split;
    fo.validation_data = o.val_data ? &val.data : NULL;
    fo.verbose = o.quiet ? 0 : (int)o.verbose;
    fo.progress_seconds = o.progress > 0 ? o.progress : -1;
    fo.n_callbacks = n_cbs;
    fo.callbacks = cbs;
    agreed = true;
    if (dist && loom_dist_any(dist, 0)) { /* another rank could not get this far */
        rc = tool_fail(&cmd_fit, "rank %d of %d stops: another rank could not start (its message says why)", fit_rank, ranks);
        goto done;
    }
    if (fo.verbose && fit_rank == 0) {
        printf("Training %s on %s: %zu samples, epochs %d to %d", args[0], o.data, train.n, fo.initial_epoch + 1, fo.epochs);
        if (dist) printf(", on %d ranks with %d samples each of the global batch of %ld", ranks, fo.batch_size, o.batch);
        printf("\n");
    }
    loom_status fit_status = loom_fit(m, &train.data, &fo, &h);
    if (o.report && fit_rank == 0) {
        rs.finished = true;
        if (report_write(o.report, m, &rs, err, sizeof err)) fprintf(stderr, "loom fit: %s\n", err);
    }
    if (fit_status) rc = tool_fail(&cmd_fit, "%s", loom_model_error(m));
    else if (o.save && fit_rank == 0) {
        if (tool_model_save(m, o.save, err, sizeof err)) rc = tool_fail(&cmd_fit, "%s", err);
        else printf("Saved %s (%d epochs trained)\n", o.save, loom_model_epochs_done(m));
    }
    /* a fit fails on every rank alike; the save is rank 0's alone: every rank ends with its status */
    if (dist && loom_dist_any(dist, rc != 0) && !rc)
        rc = tool_fail(&cmd_fit, "rank %d of %d: rank 0 could not save %s (its message says why)", fit_rank, ranks,
                       o.save ? o.save : "the model");
done:
    if (!agreed) loom_dist_any(dist, 1); /* this rank failed before the others' check above */
    loom_history_free(h);
    for (int i = 0; i < n_cbs; i++) loom_callback_free(cbs[i]);
    bind_free(&train);
    bind_free(&val);
    loom_model_free(m);
    loom_dist_free(dist);
    return rc;
}

const command cmd_fit = {
    "fit", "MODEL --data TRAIN.npz [options]", "train a model file on arrays of an .npz file",
    "Members of TRAIN.npz (and VAL.npz) are bound by the names of the model's inputs and outputs; --map\n"
    "NAME=MEMBER binds others. A .csv file with a header works too: column NAME holds a one-value input or\n"
    "output, NAME_0 ... NAME_{n-1} one of n values; --map NAME=COL,COL,... or NAME=FIRST:LAST picks others. Compile settings (losses, loss weights, metrics, optimizer, balancing) come\n"
    "from MODEL where it has them; each flag overrides one, and the model is compiled afresh (optimizer\n"
    "state and epoch count start over). --resume instead continues a .loom checkpoint exactly, with its\n"
    "optimizer state, its epochs done and --epochs counting the total.\n\n"
    "Under mpirun (-np N) the N processes train one model together, data-parallel: --batch-size is the\n"
    "global batch (each rank takes 1/N of it), so they train what one process trains; rank 0 prints and\n"
    "writes the files (--save, --checkpoint, --csv-log, --report).\n\n"
    "Example:\n"
    "  loom demo --epochs 0 --save digits.loom\n"
    "  loom fit digits.loom --data " LOOM_DATA_DIR "/digits.npz --validation-split 0.2 --epochs 5 \\\n"
    "      --loss-weight D=0.1 --save trained.loom --csv-log log.csv --report run.html",
    1, 1, fit_opts, (int)(sizeof fit_opts / sizeof *fit_opts), fit_run};
