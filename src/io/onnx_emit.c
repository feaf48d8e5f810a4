/* onnx_emit.c — the helpers the ONNX exporter's emitters share (onnx_emit.h). */
#ifdef LOOM_HAVE_ONNX
#include "io/onnx_emit.h"

#include <stdio.h>

bool loom_onnx_fail(onnx_exporter *e, const loom_layer *L, const char *fmt, const char *detail) {
    char what[256];
    snprintf(what, sizeof what, fmt, detail);
    loom_set_error(&e->m->err, LOOM_ERR_ARGUMENT, "ONNX export: layer %s (%s): %s", L->name, L->op->class_name,
                   what);
    return false;
}

const char *loom_onnx_tmp(onnx_exporter *e, const onnx_call *c, const char *suffix) { return ox_tmp(&e->x, c->out, suffix); }

const char *loom_onnx_wname(onnx_exporter *e, const loom_layer *L, const char *suffix) { return ox_tmp(&e->x, L->name, suffix); }

const char *loom_onnx_ints(onnx_exporter *e, const onnx_call *c, const char *suffix, int n, const int64_t *v) {
    return ox_int64s(&e->x, loom_onnx_tmp(e, c, suffix), n, v);
}

void loom_onnx_transpose(onnx_exporter *e, const char *out, const char *in, int n, const int64_t *perm) {
    ox_attr_ints(&e->x, ox_op1(&e->x, "Transpose", out, in), "perm", n, perm);
}

bool loom_onnx_activation(onnx_exporter *e, const onnx_call *c, loom_activation a, const char *in, const char *out) {
    ox *x = &e->x;
    switch (a) {
    case LOOM_LINEAR: ox_op1(x, "Identity", out, in); return true;
    case LOOM_RELU: ox_op1(x, "Relu", out, in); return true;
    case LOOM_SIGMOID: ox_op1(x, "Sigmoid", out, in); return true;
    case LOOM_TANH: ox_op1(x, "Tanh", out, in); return true;
    case LOOM_SOFTMAX: ox_attr_int(x, ox_op1(x, "Softmax", out, in), "axis", -1); return true;
    case LOOM_ELU: ox_attr_float(x, ox_op1(x, "Elu", out, in), "alpha", 1.0f); return true;
    case LOOM_LEAKY_RELU: ox_attr_float(x, ox_op1(x, "LeakyRelu", out, in), "alpha", 0.2f); return true;
    case LOOM_SOFTPLUS: ox_op1(x, "Softplus", out, in); return true;
    case LOOM_SWISH: {
        const char *s = ox_tmp(x, out, "sigmoid");
        ox_op1(x, "Sigmoid", s, in);
        ox_op2(x, "Mul", out, in, s);
        return true;
    }
    case LOOM_GELU: {
        /* 0.5 x (1 + erf(x / sqrt 2)), in loom's order of operations */
        const char *xs = ox_tmp(x, out, "gelu_scaled"), *er = ox_tmp(x, out, "gelu_erf"),
                   *one = ox_tmp(x, out, "gelu_1p"), *half = ox_tmp(x, out, "gelu_half");
        ox_op2(x, "Mul", xs, in, ox_scalar(x, ox_tmp(x, out, "sqrt1_2"), 0.70710678118654752440f));
        ox_op1(x, "Erf", er, xs);
        ox_op2(x, "Add", one, er, ox_scalar(x, ox_tmp(x, out, "one"), 1.0f));
        ox_op2(x, "Mul", half, in, ox_scalar(x, ox_tmp(x, out, "half"), 0.5f));
        ox_op2(x, "Mul", out, half, one);
        return true;
    }
    case LOOM_HARD_SIGMOID: {
        /* clip(x / 6 + 0.5, 0, 1) in loom's operations (HardSigmoid's alpha * x would round 1/6) */
        const char *d = ox_tmp(x, out, "hs_div"), *s = ox_tmp(x, out, "hs_shift");
        ox_op2(x, "Div", d, in, ox_scalar(x, ox_tmp(x, out, "six"), 6.0f));
        ox_op2(x, "Add", s, d, ox_scalar(x, ox_tmp(x, out, "half"), 0.5f));
        ox_node(x, "Clip", 3, (const char *[]){s, ox_scalar(x, ox_tmp(x, out, "zero"), 0.0f), ox_scalar(x, ox_tmp(x, out, "one"), 1.0f)},
                1, &out);
        return true;
    }
    case LOOM_HARD_SIGMOID_KERAS2: { /* clip(0.2 x + 0.5, 0, 1): ONNX's HardSigmoid exactly */
        Onnx__NodeProto *n = ox_op1(x, "HardSigmoid", out, in);
        ox_attr_float(x, n, "alpha", 0.2f);
        ox_attr_float(x, n, "beta", 0.5f);
        return true;
    }
    default: return loom_onnx_fail(e, c->L, "activation %s cannot be exported", loom_activation_name(a));
    }
}

#else
typedef int loom_onnx_emit_unused; /* ISO C wants a translation unit to declare something */
#endif
