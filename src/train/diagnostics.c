/* diagnostics.c — how the losses share the network, measured on one batch: the gradient norm each
 * loss gives every layer (0 exactly where it does not reach), and over the shared parameters the
 * pairwise cosines, magnitude ratios and conflicts (cosine < 0). */
#include "mtl/mtl.h"
#include "core/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct loom_diagnostics {
    const loom_model *m;      /* for layer names; the model must outlive the diagnostics */
    int K;
    int out_of[LOOM_MAX_OUTPUTS];
    float loss[LOOM_MAX_OUTPUTS];
    double *layer_norm;       /* K x n_layers */
    double *M;                /* K x K Gram over the shared parameters */
    size_t n_shared;
};

void loom_diagnostics_free(loom_diagnostics *d) {
    if (!d) return;
    free(d->layer_norm);
    free(d->M);
    free(d);
}

loom_diagnostics *loom_diagnose(loom_model *m, const loom_data *batch) {
    if (!m) return NULL;
    loom_clear_error(&m->err);
    if (!m->compiled) {
        loom_set_error(&m->err, LOOM_ERR_STATE, "diagnose: the model must be compiled first");
        return NULL;
    }
    loom_diagnostics *d = calloc(1, sizeof *d);
    float *G = NULL;
    float *grads[LOOM_MAX_OUTPUTS] = {0};
    if (!d) goto oom;
    d->m = m;
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].loss.kind != LOSS_NONE) d->out_of[d->K++] = k;
    if (d->K == 0) {
        loom_set_error(&m->err, LOOM_ERR_STATE, "diagnose: no output has a loss");
        goto fail;
    }
    size_t P = m->n_params ? m->n_params : 1;
    G = malloc((size_t)d->K * P * sizeof *G);
    d->layer_norm = calloc((size_t)d->K * (size_t)(m->n_layers ? m->n_layers : 1), sizeof *d->layer_norm);
    d->M = calloc((size_t)d->K * d->K, sizeof *d->M);
    if (!G || !d->layer_norm || !d->M) goto oom;
    for (int i = 0; i < d->K; i++) grads[d->out_of[i]] = G + (size_t)i * P;
    float losses[LOOM_MAX_OUTPUTS];
    if (loom_loss_gradients(m, batch, 0, grads, losses)) goto fail;
    for (int i = 0; i < d->K; i++) d->loss[i] = losses[d->out_of[i]];
    /* per layer norms */
    for (int l = 0; l < m->n_layers; l++) {
        const loom_layer *L = m->layers[l];
        for (int i = 0; i < d->K; i++) {
            double s = 0;
            const float *g = G + (size_t)i * P;
            for (int w = 0; w < L->n_weights; w++) {
                size_t off = L->weights[w].offset, n = loom_shape_size(&L->weights[w].shape);
                for (size_t p = 0; p < n; p++) s += (double)g[off + p] * g[off + p];
            }
            d->layer_norm[(size_t)i * m->n_layers + l] = sqrt(s);
        }
    }
    /* shared = a weight tensor whose layer two or more losses reach */
    for (int t = 0; t < m->n_tensors; t++) {
        uint64_t reach = 0;
        for (int p = 0; p < m->n_order; p++)
            if (m->order[p].node->layer == m->tensors[t].layer) reach |= m->order[p].reach;
        int count = 0;
        for (int i = 0; i < d->K; i++) count += (int)(reach >> d->out_of[i] & 1);
        if (count < 2) continue;
        size_t off = m->t_offset[t], n = m->t_size[t];
        d->n_shared += n;
        for (int i = 0; i < d->K; i++)
            for (int j = i; j < d->K; j++) {
                const float *gi = G + (size_t)i * P + off, *gj = G + (size_t)j * P + off;
                double s = 0;
                for (size_t p = 0; p < n; p++) s += (double)gi[p] * gj[p];
                d->M[i * d->K + j] += s;
            }
    }
    for (int i = 0; i < d->K; i++)
        for (int j = 0; j < i; j++) d->M[i * d->K + j] = d->M[j * d->K + i];
    free(G);
    return d;
oom:
    loom_set_error(&m->err, LOOM_ERR_MEMORY, "diagnose: out of memory");
fail:
    free(G);
    loom_diagnostics_free(d);
    return NULL;
}

static bool valid(const loom_diagnostics *d, int i) { return d && i >= 0 && i < d->K; }

int loom_diag_num_losses(const loom_diagnostics *d) { return d ? d->K : 0; }
const char *loom_diag_loss_output(const loom_diagnostics *d, int i) {
    return valid(d, i) ? d->m->outputs[d->out_of[i]].name : NULL;
}
float loom_diag_loss_value(const loom_diagnostics *d, int i) { return valid(d, i) ? d->loss[i] : NAN; }

double loom_diag_layer_norm(const loom_diagnostics *d, int i, const char *layer) {
    if (!valid(d, i) || !layer) return NAN;
    for (int l = 0; l < d->m->n_layers; l++)
        if (strcmp(d->m->layers[l]->name, layer) == 0) return d->layer_norm[(size_t)i * d->m->n_layers + l];
    return NAN;
}

double loom_diag_shared_norm(const loom_diagnostics *d, int i) { return valid(d, i) ? sqrt(d->M[i * d->K + i]) : NAN; }

double loom_diag_cosine(const loom_diagnostics *d, int i, int j) {
    if (!valid(d, i) || !valid(d, j)) return NAN;
    int zero = 0;
    return loom_mtl_cosine(d->M[i * d->K + i], d->M[i * d->K + j], d->M[j * d->K + j], &zero);
}

double loom_diag_magnitude_ratio(const loom_diagnostics *d, int i, int j) {
    if (!valid(d, i) || !valid(d, j)) return NAN;
    double a = sqrt(d->M[i * d->K + i]), b = sqrt(d->M[j * d->K + j]);
    return b > 0 ? a / b : (a > 0 ? INFINITY : 1.0);
}

int loom_diag_conflict(const loom_diagnostics *d, int i, int j) {
    return valid(d, i) && valid(d, j) && i != j && loom_diag_cosine(d, i, j) < 0;
}

size_t loom_diag_shared_params(const loom_diagnostics *d) { return d ? d->n_shared : 0; }

loom_status loom_diag_print(const loom_diagnostics *d, FILE *out) {
    if (!d || !out) return LOOM_ERR_ARGUMENT;
    const loom_model *m = d->m;
    fprintf(out, "Gradient norm of each (unweighted) loss per layer; \"-\": the loss does not reach the layer.\n\n");
    fprintf(out, "  %-24s", "layer");
    for (int i = 0; i < d->K; i++) {
        char h[LOOM_NAME_MAX + 8];
        snprintf(h, sizeof h, "%s_loss", m->outputs[d->out_of[i]].name);
        fprintf(out, " %16s", h);
    }
    fprintf(out, "\n");
    for (int l = 0; l < m->n_layers; l++) {
        const loom_layer *L = m->layers[l];
        if (!L->n_weights) continue;
        fprintf(out, "  %-24s", L->name);
        for (int i = 0; i < d->K; i++) {
            bool reached = false;
            for (int p = 0; p < m->n_order && !reached; p++)
                reached = m->order[p].node->layer == L && (m->order[p].reach >> d->out_of[i] & 1);
            char cell[32];
            snprintf(cell, sizeof cell, "%s%.4e", reached ? "" : "- ", d->layer_norm[(size_t)i * m->n_layers + l]);
            fprintf(out, " %16s", cell);
        }
        fprintf(out, "\n");
    }
    fprintf(out, "\nOver the %zu shared parameters (reached by two or more losses):\n\n", d->n_shared);
    fprintf(out, "  %-32s %10s %12s %s\n", "pair", "cosine", "|gi|/|gj|", "conflict");
    for (int i = 0; i < d->K; i++)
        for (int j = i + 1; j < d->K; j++) {
            char pair[2 * LOOM_NAME_MAX + 4];
            snprintf(pair, sizeof pair, "%s~%s", m->outputs[d->out_of[i]].name, m->outputs[d->out_of[j]].name);
            fprintf(out, "  %-32s %10.4f %12.4g %s\n", pair, loom_diag_cosine(d, i, j), loom_diag_magnitude_ratio(d, i, j),
                    loom_diag_conflict(d, i, j) ? "yes" : "no");
        }
    return LOOM_OK;
}
