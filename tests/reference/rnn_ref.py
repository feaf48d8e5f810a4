#!/usr/bin/python3
"""rnn_ref.py — writes tests/reference/rnn_ref.txt, the fixture of tests/test_rnn.c.

    cd /work/main && /usr/bin/python3 tests/reference/rnn_ref.py [output]

Forward values of Keras's SimpleRNN, LSTM, GRU and Bidirectional computed by PyTorch (float64)
with the Keras weights converted to PyTorch's layouts:
  * torch keeps (out, in) matrices: weight_ih = kernel^T, weight_hh = recurrent_kernel^T;
  * LSTM gate order is i, f, c(g), o in both;
  * GRU: torch's order is r, z, n against Keras's z, r, h; torch's update h' = (1-z)*n + z*h is
    Keras's h = z*h_prev + (1-z)*hh with the same z; torch's n = tanh(W_in x + b_in + r*(W_hn h
    + b_hn)) is Keras's reset_after=True, bias row 0 = b_i*, row 1 = b_h*. (Keras's reset_after
    False has no torch module: those cases use the torch cell formula written out below.)
  * go_backwards: torch runs on the flipped input, and its outputs are kept in that processed
    order, as Keras returns them;
  * Bidirectional concat = torch's bidirectional=True (backward outputs already in time order).
Masked cases loop over torch cells (nn.RNNCell/LSTMCell/GRUCell) with Keras's rule: a padded
step keeps the state and outputs the carried h (or 0 inside a Bidirectional with
return_sequences). The script first checks that the cell loop agrees with the full modules on
unmasked input, so the two paths confirm the weight conversion. Shares no code with loom.
Deterministic (torch.manual_seed(4321)); values are dyadic rationals, exact in float32.

Format (tests/fixture.h): per case <id>:
    <id>.cfg   kind (0 SimpleRNN, 1 LSTM, 2 GRU), units, return_sequences, go_backwards,
               reset_after, bidirectional (0/1, merge concat), masked (0/1)
    <id>.x     batch B of inputs (B, T, F)        <id>.mask  (B, T) when masked
    <id>.w     weights in Keras layout: kernel, recurrent_kernel, bias (forward then backward)
    <id>.y     expected outputs
"""
import sys

import torch

torch.manual_seed(4321)
torch.set_default_dtype(torch.float64)

B, T, F, U = 2, 5, 3, 4
GATES = {0: 1, 1: 4, 2: 3}


def dyadic(shape, scale):
    return torch.randint(-16, 17, shape).double() / scale


def keras_weights(kind, reset_after):
    g = GATES[kind]
    k = dyadic((F, g * U), 24)
    r = dyadic((U, g * U), 24)
    b = dyadic((2, g * U) if kind == 2 and reset_after else (g * U,), 32)
    return k, r, b


def gru_perm(m):
    """Keras z, r, h blocks along the last axis -> torch r, z, n."""
    z, r, h = m[..., :U], m[..., U:2 * U], m[..., 2 * U:]
    return torch.cat([r, z, h], dim=-1)


def to_torch(kind, k, r, b):
    """(weight_ih, weight_hh, bias_ih, bias_hh) in torch's layout."""
    if kind == 2:
        wi, wh = gru_perm(k).T, gru_perm(r).T
        return wi, wh, gru_perm(b[0]), gru_perm(b[1])
    return k.T, r.T, b.clone(), torch.zeros_like(b)


def load_module(mod, sets):
    with torch.no_grad():
        for suffix, (wi, wh, bi, bh) in sets:
            getattr(mod, "weight_ih_l0" + suffix).copy_(wi)
            getattr(mod, "weight_hh_l0" + suffix).copy_(wh)
            getattr(mod, "bias_ih_l0" + suffix).copy_(bi)
            getattr(mod, "bias_hh_l0" + suffix).copy_(bh)


def module(kind, bidir):
    cls = {0: torch.nn.RNN, 1: torch.nn.LSTM, 2: torch.nn.GRU}[kind]
    kw = {"nonlinearity": "tanh"} if kind == 0 else {}
    return cls(F, U, batch_first=True, bidirectional=bidir, **kw)


def run_module(kind, x, w, seq, back):
    """One direction with torch's full module: (B, T, U) outputs in processed order, or (B, U)."""
    m = module(kind, False)
    load_module(m, [("", to_torch(kind, *w))])
    xin = torch.flip(x, [1]) if back else x
    with torch.no_grad():
        y, _ = m(xin)
    return y if seq else y[:, -1]


def cell_step(kind, reset_after, w, x_t, state):
    """One Keras step. reset_after GRU, SimpleRNN and LSTM through torch cells; reset_before GRU
    written out (torch has no such cell)."""
    k, r, b = w
    if kind == 2 and not reset_after:
        h = state[0]
        xz, xr, xh = (x_t @ k + b).split(U, dim=-1)
        hz, hr = (h @ r[:, :2 * U]).split(U, dim=-1)
        z, rr = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
        hh = torch.tanh(xh + (rr * h) @ r[:, 2 * U:])
        return (z * h + (1 - z) * hh,)
    wi, wh, bi, bh = to_torch(kind, k, r, b)
    cell = {0: torch.nn.RNNCell, 1: torch.nn.LSTMCell, 2: torch.nn.GRUCell}[kind](F, U)
    with torch.no_grad():
        cell.weight_ih.copy_(wi)
        cell.weight_hh.copy_(wh)
        cell.bias_ih.copy_(bi)
        cell.bias_hh.copy_(bh)
        if kind == 1:
            return cell(x_t, state)
        return (cell(x_t, state[0]),)


def run_cells(kind, reset_after, x, w, seq, back, mask, zero_out):
    """Keras's loop with masks, on torch cells."""
    state = tuple(torch.zeros(B, U) for _ in range(2 if kind == 1 else 1))
    outs = []
    order = range(T - 1, -1, -1) if back else range(T)
    for t in order:
        with torch.no_grad():
            new = cell_step(kind, reset_after, w, x[:, t], state)
        m = (mask[:, t] != 0).unsqueeze(1)
        state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
        outs.append(torch.where(m, state[0], torch.zeros_like(state[0])) if zero_out else state[0])
    y = torch.stack(outs, dim=1)
    return y if seq else y[:, -1]


def fmt(name, vals):
    vals = [float(v) for v in torch.as_tensor(vals).reshape(-1)]
    lines = ["%s %d" % (name, len(vals))]
    for i in range(0, len(vals), 8):
        lines.append(" ".join("%.9e" % v for v in vals[i:i + 8]))
    return "\n".join(lines)


def flat(ws):
    return torch.cat([t.reshape(-1) for w in ws for t in w])


CASES = [
    # id, kind, seq, back, reset_after, bidir, masked
    ("simple_last", 0, 0, 0, 0, 0, 0),
    ("simple_seq_back", 0, 1, 1, 0, 0, 0),
    ("lstm_seq", 1, 1, 0, 0, 0, 0),
    ("lstm_last_back", 1, 0, 1, 0, 0, 0),
    ("gru_seq", 2, 1, 0, 1, 0, 0),
    ("gru_last_back", 2, 0, 1, 1, 0, 0),
    ("gru_before_seq", 2, 1, 0, 0, 0, 0),
    ("lstm_mask_seq", 1, 1, 0, 0, 0, 1),
    ("gru_mask_last_back", 2, 0, 1, 1, 0, 1),
    ("simple_mask_seq_back", 0, 1, 1, 0, 0, 1),
    ("bi_lstm_seq", 1, 1, 0, 0, 1, 0),
    ("bi_gru_last", 2, 0, 0, 1, 1, 0),
    ("bi_lstm_mask_seq", 1, 1, 0, 0, 1, 1),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/rnn_ref.txt"
    blocks = []
    for cid, kind, seq, back, ra, bidir, masked in CASES:
        x = dyadic((B, T, F), 16)
        mask = torch.ones(B, T)
        if masked:  # sample 0 right-padded, sample 1 with a hole and left padding
            mask[0, 3:] = 0
            mask[1, 0] = 0
            mask[1, 2] = 0
        ws = [keras_weights(kind, ra) for _ in range(2 if bidir else 1)]
        if not bidir:
            y = run_cells(kind, ra, x, ws[0], seq, back, mask, False)
            if not masked and ra == (1 if kind == 2 else 0) and not (kind == 2 and not ra):
                ym = run_module(kind, x, ws[0], seq, back)
                assert torch.allclose(y, ym, atol=1e-12), cid
        else:
            yf = run_cells(kind, ra, x, ws[0], seq, False, mask, bool(seq))
            yb = run_cells(kind, ra, x, ws[1], seq, True, mask, bool(seq))
            if seq:
                yb = torch.flip(yb, [1])
            y = torch.cat([yf, yb], dim=-1)
            if not masked:  # torch's own bidirectional module
                m = module(kind, True)
                load_module(m, [("", to_torch(kind, *ws[0])), ("_reverse", to_torch(kind, *ws[1]))])
                with torch.no_grad():
                    ym, hn = m(x)
                if not seq:
                    hn = hn[0] if kind == 1 else hn
                    ym = torch.cat([hn[0], hn[1]], dim=-1)
                assert torch.allclose(y, ym, atol=1e-12), cid
        cfg = [kind, U, seq, back, ra, bidir, masked]
        blocks.append(fmt(cid + ".cfg", cfg))
        blocks.append(fmt(cid + ".x", x))
        if masked:
            blocks.append(fmt(cid + ".mask", mask))
        blocks.append(fmt(cid + ".w", flat(ws)))
        blocks.append(fmt(cid + ".y", y))
    with open(out, "w") as fp:
        fp.write("# loom recurrent-layer reference, generated by tests/reference/rnn_ref.py (do not edit).\n")
        fp.write("# PyTorch %s, float64, seed 4321, batch %d, steps %d, features %d, units %d\n"
                 % (torch.__version__, B, T, F, U))
        fp.write("\n".join(blocks) + "\n")


if __name__ == "__main__":
    main()
