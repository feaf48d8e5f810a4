/* activations.h — element-wise and row-wise activations, forward and backward (activations.c; internal) */
#ifndef LOOM_ACTIVATIONS_H
#define LOOM_ACTIVATIONS_H

#include "loom.h"
#include <stdbool.h>
#include <stddef.h>


/* y = act(x) over rows of length `dim` (softmax needs the row). In place allowed (y == x). */
void loom_act_forward(loom_activation a, const float *x, float *y, size_t rows, int dim);
/* sigmoid / tanh of n values from element-wise IEEE operations only (no libm call per element), so
 * that the loop vectorises and every vector width gives the same bits; within a few ulp of
 * 1/(1+expf(-x)) and tanhf. The recurrent layers' gates, which run them at every step. x != y. */
void loom_sigmoid_vec(const float *x, float *y, size_t n);
void loom_tanh_vec(const float *x, float *y, size_t n);
/* dx += dy * act'(x) given x (pre-activation) and y (post-activation). */
void loom_act_backward(loom_activation a, const float *x, const float *y, const float *dy,
                       float *dx, size_t rows, int dim);
/* dy = dy * act'(x) in place (x may be NULL unless loom_act_needs_input): how Dense and the
 * convolutions turn their output gradient into the pre-activation's without another buffer. */
void loom_act_backward_in_place(loom_activation a, const float *x, const float *y, float *dy, size_t rows,
                                int dim);
/* Does the backward need x (pre-activation), or is y enough? */
bool loom_act_needs_input(loom_activation a);
/* Must a layer with this activation keep its pre-activation z after forward (never for linear)?
 * When the backward needs it, or when a fused loss may read it as logits (softmax, sigmoid). Otherwise z is written
 * into the output and activated in place: one buffer less per layer. */
bool loom_act_keeps_preact(loom_activation a);

#endif
