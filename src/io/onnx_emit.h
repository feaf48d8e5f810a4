/* onnx_emit.h — what the ONNX exporter's emitters share (onnx_emit.c; internal to io/, only built
 * with LOOM_HAVE_ONNX): the export in progress, one layer call to translate, and the helpers every
 * layer class uses. onnx_export.c walks the model and translates most layer classes,
 * onnx_recurrent.c the recurrent ones. */
#ifndef LOOM_ONNX_EMIT_H
#define LOOM_ONNX_EMIT_H

#include "core/model.h"
#include "io/onnx_graph.h"

/* A per-sample dimension of variable length (the agreed representation of variable-length
 * sequences, in loom_input and loom_shape; loom.h defines it once they are supported). */
#ifndef LOOM_DIM_VARIABLE
#define LOOM_DIM_VARIABLE (-1)
#endif

typedef struct onnx_exporter {
    ox x;
    loom_model *m;
    bool steps_baked; /* a layer put the length of the time axis into a constant */
} onnx_exporter;

/* One layer call to export: what the emitters of the layer classes receive. */
typedef struct onnx_call {
    const loom_layer *L;
    const float *w;                /* the layer's weights, contiguous in layer weight order */
    int n_in;
    const char *const *in;         /* ONNX names of the inputs */
    const loom_shape *in_shape;    /* per-sample shapes */
    loom_shape out_shape;
    const char *out;               /* the name the last node must write */
    const char *mask;              /* input 0's Keras mask: bool (batch, steps), or NULL */
    const char *value_mask;        /* MultiHeadAttention: the value's mask and the key's own (a key */
    const char *key_mask;          /* tensor other than the value), or NULL: key steps they mark
                                      padded are not seen (layer_attention.c) */
} onnx_call;

/* Sets the model's error "ONNX export: layer NAME (Class): <fmt with detail>"; returns false. */
bool loom_onnx_fail(onnx_exporter *e, const loom_layer *L, const char *fmt, const char *detail);
/* "<call output>/<suffix>": the call's intermediate values and constants. */
const char *loom_onnx_tmp(onnx_exporter *e, const onnx_call *c, const char *suffix);
/* "<layer>/<suffix>": a constant made from a layer's weights, one per layer however often it is
 * called (ox_weight keeps the first tensor of a name). */
const char *loom_onnx_wname(onnx_exporter *e, const loom_layer *L, const char *suffix);
/* A 1-D int64 constant named loom_onnx_tmp(suffix). */
const char *loom_onnx_ints(onnx_exporter *e, const onnx_call *c, const char *suffix, int n, const int64_t *v);
void loom_onnx_transpose(onnx_exporter *e, const char *out, const char *in, int n, const int64_t *perm);
/* out = a(in), as ops/activations.c computes it (linear: an Identity). */
bool loom_onnx_activation(onnx_exporter *e, const onnx_call *c, loom_activation a, const char *in, const char *out);

#endif
