/* optim.h — the optimizers' update rules over the flat parameter buffers (optimizer.c; internal) */
#ifndef LOOM_OPTIM_H
#define LOOM_OPTIM_H

#include "base/base.h"


/* Optimizer slots per parameter (m, v, vhat, ...): 0..3. */
int loom_optimizer_slots(const loom_optimizer *o);
/* Does slot j hold a quantity that is never negative (second moments, Adagrad's accumulator)?
 * A loaded state that breaks this is refused: sqrt of it would make NaN updates. */
bool loom_optimizer_slot_nonnegative(const loom_optimizer *o, int j);
/* One optimizer step over n_tensors weight tensors laid out in the flat buffers:
 * tensors [offset[i], offset[i]+size[i]) with active[i] false are skipped entirely (no gradient).
 * slots: loom_optimizer_slots(o) * n_params floats, slot j of parameter p at j*n_params + p.
 * iterations: steps done before this one; lr: the rate for this step. Applies clipping, weight
 * decay and the update rule exactly as Keras 3. grads may be modified (clipping). */
void loom_optimizer_apply(const loom_optimizer *o, float lr, long iterations, float *params,
                          float *grads, float *slots, size_t n_params, int n_tensors,
                          const size_t *offset, const size_t *size, const bool *active);
/* Validates an optimizer's fields (a message names the field). */
loom_status loom_optimizer_check(const loom_optimizer *o, loom_error *err);

#endif
