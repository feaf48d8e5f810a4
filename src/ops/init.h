/* init.h — weight initialisers (init.c; internal) */
#ifndef LOOM_INIT_H
#define LOOM_INIT_H

#include "base/base.h"

/* Internal initialiser: an LSTM bias with Keras's unit_forget_bias (ones on the forget gate). */
#define LOOM_INIT_UNIT_FORGET_BIAS ((loom_initializer)100)


/* Fills w (shape s) with initialiser `init` (LOOM_INIT_DEFAULT must be resolved by the caller). */
void loom_init_fill(loom_initializer init, const loom_shape *s, float *w, uint64_t key);

#endif
