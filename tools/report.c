/* report.c — the training report (report.h): settings, per-output loss curves (train and
 * validation), metrics, effective loss weights and gradient cosines over the epochs, and the model
 * picture with reach colours (Graphviz SVG when the build has it). Every chart is an inline SVG
 * drawn here; each curve is one <path class="curve"> with one point per epoch (a gap where a value
 * is not finite), which the tests count after Chromium has rendered the page. */
#include "report.h"
#include "plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const CURVE_COLOURS[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* Text into HTML: <, >, & and quotes escaped (names come from model files). */
static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

typedef struct series {
    const char *key;
    const float *v;
} series;

/* A line chart of up to 16 series over n epochs, first_epoch the number of the first one. */
static void chart(FILE *f, const char *title, const series *s, int ns, int n, const char *id) {
    const double W = 520, H = 240, L = 58, R = 12, T = 28, B = 36;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int e = 0; e < n; e++)
            if (isfinite(s[i].v[e])) {
                if (s[i].v[e] < lo) lo = s[i].v[e];
                if (s[i].v[e] > hi) hi = s[i].v[e];
            }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * (fabs(hi) + 1)) lo -= 0.5 * (fabs(lo) + 1e-3), hi += 0.5 * (fabs(hi) + 1e-3);
    double pad = 0.05 * (hi - lo);
    lo -= pad, hi += pad;
    fprintf(f, "<figure class=\"chart\" id=\"%s\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
            id, W, H + 18.0 * ((ns + 2) / 3), W, H + 18.0 * ((ns + 2) / 3));
    fprintf(f, "<text x=\"%.0f\" y=\"18\" class=\"title\">", L);
    esc(f, title);
    fprintf(f, "</text>\n<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" class=\"plot\"/>\n", L, T, W - L - R, H - T - B);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4, y = H - B - (H - T - B) * t / 4;
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/><text x=\"%.0f\" y=\"%.1f\" class=\"tick\" "
                   "text-anchor=\"end\">%.4g</text>\n",
                L, W - R, y, y, L - 5, y + 4, v);
    }
    int step = n > 10 ? (n + 9) / 10 : 1;
    for (int e = 0; e < n; e += step) {
        double x = n > 1 ? L + (W - L - R) * e / (n - 1) : L + (W - L - R) / 2;
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" class=\"tick\" text-anchor=\"middle\">%d</text>\n", x, H - B + 16, e + 1);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" class=\"tick\" text-anchor=\"middle\">epoch</text>\n", L + (W - L - R) / 2, H - 4);
    for (int i = 0; i < ns; i++) {
        const char *colour = CURVE_COLOURS[i % 10];
        fprintf(f, "<path class=\"curve\" data-key=\"");
        esc(f, s[i].key);
        fprintf(f, "\" stroke=\"%s\" d=\"", colour);
        bool pen = false;
        for (int e = 0; e < n; e++) {
            double x = n > 1 ? L + (W - L - R) * e / (n - 1) : L + (W - L - R) / 2;
            if (!isfinite(s[i].v[e])) {
                pen = false;
                continue;
            }
            double y = H - B - (H - T - B) * (s[i].v[e] - lo) / (hi - lo);
            fprintf(f, "%s%.1f,%.1f", pen ? " L" : (e ? " M" : "M"), x, y);
            pen = true;
        }
        fprintf(f, "\"/>\n");
        for (int e = 0; e < n; e++) {
            if (!isfinite(s[i].v[e])) continue;
            double x = n > 1 ? L + (W - L - R) * e / (n - 1) : L + (W - L - R) / 2;
            double y = H - B - (H - T - B) * (s[i].v[e] - lo) / (hi - lo);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>", x, y, colour);
            esc(f, s[i].key);
            fprintf(f, " epoch %d: %.6g</title></circle>\n", e + 1, (double)s[i].v[e]);
        }
        double lx = L + (i % 3) * 160, ly = H + 14 + 18 * (i / 3);
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%.0f\" y=\"%.0f\" "
                   "class=\"legend\">",
                lx, lx + 18, ly - 4, ly - 4, colour, lx + 24, ly);
        esc(f, s[i].key);
        fprintf(f, " %.4g</text>\n", n ? (double)s[i].v[n - 1] : NAN);
    }
    fprintf(f, "</svg></figure>\n");
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

typedef enum { K_TOTAL, K_OUTPUT_LOSS, K_WEIGHT, K_COSINE, K_METRIC } key_kind;

static key_kind kind_of(const char *key) {
    if (strcmp(key, "loss") == 0) return K_TOTAL;
    if (strncmp(key, "grad_cos/", 9) == 0) return K_COSINE;
    if (ends_with(key, "_loss")) return K_OUTPUT_LOSS;
    if (ends_with(key, "_weight")) return K_WEIGHT;
    return K_METRIC;
}

/* One chart per training key of `kind` with its val_ twin (per_key), or one for all of them. */
static void charts_of(FILE *f, const loom_history *h, key_kind kind, bool per_key, const char *title, int *id) {
    int nk = loom_history_num_keys(h), n = loom_history_epochs(h);
    series s[16];
    int ns = 0;
    for (int i = 0; i < nk; i++) {
        const char *key = loom_history_key(h, i);
        if (strncmp(key, "val_", 4) == 0 || kind_of(key) != kind) continue;
        char val[300], cid[32], t[400];
        snprintf(val, sizeof val, "val_%s", key);
        if (per_key) ns = 0;
        if (ns < 16) s[ns++] = (series){key, loom_history_values(h, key)};
        const float *vv = loom_history_values(h, val);
        if (vv && ns < 16) {
            /* the key string must outlive the chart: find it in the history */
            for (int j = 0; j < nk; j++)
                if (strcmp(loom_history_key(h, j), val) == 0) s[ns++] = (series){loom_history_key(h, j), vv};
        }
        if (per_key) {
            snprintf(cid, sizeof cid, "chart%d", (*id)++);
            snprintf(t, sizeof t, "%s%s", key, vv ? " (train and validation)" : "");
            chart(f, t, s, ns, n, cid);
        }
    }
    if (!per_key && ns) {
        char cid[32];
        snprintf(cid, sizeof cid, "chart%d", (*id)++);
        chart(f, title, s, ns, n, cid);
    }
}

static void row(FILE *f, const char *k, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void row(FILE *f, const char *k, const char *fmt, ...) {
    char v[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    fprintf(f, "<tr><th>");
    esc(f, k);
    fprintf(f, "</th><td>");
    esc(f, v);
    fprintf(f, "</td></tr>\n");
}

static const char *const OPT_NAMES[] = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"};

static void settings_table(FILE *f, loom_model *m, const report_settings *s) {
    fprintf(f, "<table class=\"settings\">\n");
    row(f, "model", "%s", s->model_path ? s->model_path : "");
    row(f, "training data", "%s", s->data_path ? s->data_path : "");
    if (s->val_path) row(f, "validation data", "%s", s->val_path);
    else if (s->val_split > 0) row(f, "validation", "the last %.3g of the training data", s->val_split);
    else row(f, "validation", "none");
    row(f, "epochs", "%d%s", s->epochs, s->resume ? " (resumed: the total)" : "");
    row(f, "batch size", "%d", s->batch_size);
    row(f, "seed", "%ld", s->seed);
    row(f, "threads", "%d", s->threads);
    loom_optimizer opt;
    if (loom_model_get_optimizer(m, &opt) == LOOM_OK)
        row(f, "optimizer", "%s, learning rate %g%s", (unsigned)opt.kind < 5 ? OPT_NAMES[opt.kind] : "?", (double)opt.learning_rate,
            opt.schedule.kind != LOOM_SCHEDULE_CONSTANT ? " (with a schedule)" : "");
    loom_balance b;
    if (loom_model_get_balance(m, &b) == LOOM_OK)
        row(f, "loss balancing", "%s%s", loom_balance_name(b.kind), b.diagnostics_every ? ", diagnostics on" : "");
    for (int k = 0; k < loom_model_num_outputs(m); k++) {
        loom_loss l;
        const char *out = loom_model_output_name(m, k);
        char key[300];
        snprintf(key, sizeof key, "output %s", out);
        if (loom_model_get_loss(m, k, &l) == LOOM_OK && l.name)
            row(f, key, "%s, weight %g", l.name, (double)loom_get_loss_weight(m, out));
        else
            row(f, key, "no loss");
    }
    for (int i = 0; i < loom_model_num_metrics(m); i++) {
        loom_metric_spec ms;
        loom_model_get_metric(m, i, &ms);
        row(f, "metric", "%s on %s", ms.name, ms.output);
    }
    fprintf(f, "</table>\n");
}

static void model_picture(FILE *f, loom_model *m) {
    plot_options po = {.show_shapes = true, .losses = true, .rankdir = "TB"};
    char *dot = plot_dot(m, &po), *svg = NULL, err[512];
    size_t len;
    if (dot && plot_render(dot, "svg", &svg, &len, err, sizeof err) == 0) {
        /* drop the XML prolog and doctype: the <svg> element goes inline */
        char *start = strstr(svg, "<svg");
        fprintf(f, "<div class=\"model\">%s</div>\n", start ? start : svg);
    } else {
        fprintf(f, "<p class=\"note\">No picture: ");
        esc(f, dot ? err : "out of memory");
        fprintf(f, " (<code>loom plot MODEL -o model.dot</code> writes the graph as text).</p>\n");
    }
    free(dot);
    free(svg);
}

int report_write(const char *path, loom_model *m, const report_settings *s, char *err, size_t errlen) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write the report here", path);
        free(tmp);
        return -1;
    }
    const loom_history *h = loom_model_history(m);
    int n = h ? loom_history_epochs(h) : 0;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    if (!s->finished) fprintf(f, "<meta http-equiv=\"refresh\" content=\"15\">\n");
    fprintf(f, "<title>loom fit: ");
    esc(f, s->model_path);
    fprintf(f, "</title>\n<style>\n"
               "body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}\n"
               "h1{font-size:20px} h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}\n"
               ".charts{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0}\n"
               ".plot{fill:#fafafa;stroke:#bbb} .grid{stroke:#e4e4e4} .tick,.legend{font-size:11px;fill:#444}\n"
               ".title{font-size:13px;font-weight:bold;fill:#222} .curve{fill:none;stroke-width:2}\n"
               "table.settings{border-collapse:collapse} .settings th{text-align:left;padding:2px 14px 2px 0;color:#555}\n"
               ".note{color:#666} .model svg{max-width:100%%;height:auto}\n"
               "</style></head><body>\n<h1>loom fit: ");
    esc(f, s->model_path);
    fprintf(f, "</h1>\n<p id=\"status\" data-epochs=\"%d\">%s: %d of %d epochs, %s</p>\n", n,
            s->finished ? "Finished" : "Training", n, s->epochs, when);
    fprintf(f, "<h2>Losses</h2>\n<div class=\"charts\">\n");
    int id = 0;
    if (n > 0) {
        charts_of(f, h, K_TOTAL, true, NULL, &id);
        charts_of(f, h, K_OUTPUT_LOSS, true, NULL, &id);
    } else {
        fprintf(f, "<p class=\"note\">Waiting for the first epoch.</p>\n");
    }
    fprintf(f, "</div>\n<h2>Metrics</h2>\n<div class=\"charts\">\n");
    int before = id;
    if (n > 0) charts_of(f, h, K_METRIC, true, NULL, &id);
    if (id == before) fprintf(f, "<p class=\"note\">No metrics compiled.</p>\n");
    fprintf(f, "</div>\n<h2>Effective loss weights</h2>\n<div class=\"charts\">\n");
    before = id;
    if (n > 0) charts_of(f, h, K_WEIGHT, false, "effective loss weight per output", &id);
    if (id == before) {
        fprintf(f, "<p class=\"note\">Static weights:");
        for (int k = 0; k < loom_model_num_outputs(m); k++) {
            fprintf(f, " ");
            esc(f, loom_model_output_name(m, k));
            fprintf(f, " %g", (double)loom_get_loss_weight(m, loom_model_output_name(m, k)));
        }
        fprintf(f, " (a balancing method, --balance, logs them per epoch).</p>\n");
    }
    fprintf(f, "</div>\n<h2>Gradient cosines between losses (shared layers)</h2>\n<div class=\"charts\">\n");
    before = id;
    if (n > 0) charts_of(f, h, K_COSINE, false, "cosine of the loss gradients on the shared layers (< 0: conflict)", &id);
    if (id == before) fprintf(f, "<p class=\"note\">Not measured (fit with --diagnostics-every N).</p>\n");
    fprintf(f, "</div>\n<h2>Model</h2>\n");
    model_picture(f, m);
    fprintf(f, "<h2>Settings</h2>\n");
    settings_table(f, m, s);
    fprintf(f, "</body></html>\n");
    bool ok = !ferror(f);
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        snprintf(err, errlen, "%s: writing the report failed", path);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}
