"""Truncated BPTT, BPTT(k2; k1), as a stream: ``bpttbench.stream("tbptt", p, B, k1=, k2=)``.

A chunk of a multiple of k1 steps ends on an update, so no readout error is
pending at its end; what the next chunk's first window reaches back into is
the last ``L = min(k2 - k1, t)`` steps before it (t: steps streamed so far).
The state carries exactly that: the states h_{t-L} .. h_t (with what the cell
stored beside them, kernels/_sweeps.py's ``X``) and the inputs x_{t-L} ..
x_{t-1}. A chunk then runs the schedule of ``tbptt.py`` over [carried steps +
chunk] from the carried states, with the carried steps' errors excluded (they
were injected by the update that ended the previous chunk), so the streamed
gradients sum to the one-shot ``tbptt`` of the whole sequence (to summation
order).

The Elman cell, plain or leaky (``params.alpha``), or a gated cell: the
stream then hands ``advance`` the checked GRUParams or LSTMParams, the cell
comes from their type, and X carries the LSTM's c with its h.

Memory: the window of k2 + 1 states and L inputs, Theta(k2 (n + m) B), as in
the one-shot kernel; the chunk itself (with the L carried inputs prepended) is
input-sized.
"""

from __future__ import annotations

import numpy as np

from . import cells
from ._jit import jit
from ._sweeps import Buffers, backward_sweep, chunk_steps, forward_sweep, make_buffers, zero_grads
from ._validate import check_size
from .cells import Weights, elman


class TBPTTState:
    """What a truncated-BPTT stream carries: the last L + 1 states and L inputs.

    The sweep buffers (``buf``: the states ``buf.H``, the cell's stored values
    ``buf.X``) are made by the first chunk, which knows the cell's leak.
    """

    def __init__(self, arrays, B, k1=None, k2=None):
        if k1 is None:
            raise TypeError("stream('tbptt') needs k1= (update every k1 steps; k2 defaults to k1)")
        self.k1 = check_size("k1", k1)
        self.k2 = self.k1 if k2 is None else check_size("k2", k2)
        if self.k2 < self.k1:
            raise ValueError(f"k2 must be >= k1 (got k1={self.k1}, k2={self.k2})")
        W_ih, W_hh = arrays[0], arrays[1]
        m, dt = W_ih.shape[1], W_hh.dtype
        self.B = B
        self.buf: Buffers | None = None  # H[0 .. L] = h_{t-L} .. h_t, X beside them
        self.inputs = np.zeros((self.k2, B, m), dt)  # inputs[0 .. L-1] = x_{t-L} .. x_{t-1}
        self.L = 0
        self.t = 0
        # the kernels' view of the weights, laid out when a chunk first runs with them
        self.weights_of = None
        self.weights = None


def start(arrays, B, k1=None, k2=None) -> TBPTTState:
    """The state at t = 0: h_0 = 0, nothing carried."""
    return TBPTTState(arrays, B, k1, k2)


@jit
def _run(cell, alpha, xs, ys, L, k1, k2, w, buf, g):
    # Steps 0 .. L-1 of xs are the carried ones: their states are already in
    # H[0 .. L] (X beside them) and their errors already injected. Same
    # schedule as tbptt._tbptt.
    w, buf, g = Weights(*w), Buffers(*buf), Weights(*g)  # named again (see _sweeps.py)
    T = xs.shape[0]
    H = buf.H
    X = buf.X
    base = 0
    loss = 0.0
    t = L
    while t < T:
        t_next = min(t + k1, T)
        new_base = max(0, t_next - k2)
        if new_base > base:
            keep = t - new_base + 1
            for i in range(keep):  # ascending copy: safe for an overlapping left shift
                H[i] = H[i + new_base - base]
                X[i] = X[i + new_base - base]
            base = new_base
        forward_sweep(cell, alpha, xs, w, buf, base, t, t_next)
        loss += backward_sweep(cell, alpha, xs, ys, w, buf, g, base, max(0, t_next - k2), t_next, t)
        t = t_next
    return loss, base


def advance(state: TBPTTState, arrays, alpha, xs, ys):
    """Run the chunk ``xs``, ``ys`` (a multiple of k1 steps) from ``state``; (loss, grads)."""
    k1, k2, L = state.k1, state.k2, state.L
    Tc = xs.shape[0]
    if Tc % k1:
        raise ValueError(
            f"stream('tbptt') takes chunks of a multiple of k1 = {k1} steps, got {Tc}: a "
            f"chunk must end on an update so that no error is left pending across chunks"
        )
    if state.weights_of is not arrays:  # new weights (the stream checked them): relaid once
        if isinstance(arrays, (cells.GRUParams, cells.LSTMParams)):
            cell, w, dt = cells.identify(arrays)
        else:
            _, w, dt = elman.check(arrays)  # the kernels' layout (a plain tuple carries no leak)
            cell = elman.cell(alpha)  # so the cell is the stream's: plain, or leaky for alpha < 1
        state.weights_of, state.weights = arrays, (cell, w, dt)
    cell, w, dt = state.weights
    B, m = xs.shape[1], xs.shape[2]
    p, n = w.W_out.shape
    if state.buf is None:
        state.buf = make_buffers(cell, k2 + 1, B, n, m, p, chunk_steps(B, k2), dt)
        state.buf.H[0] = 0.0
        state.buf.X[0] = 0.0
    buf = state.buf
    if L:
        xs_all = np.concatenate([state.inputs[:L], xs])
        ys_all = np.concatenate([np.zeros((L, B, p), dt), ys])  # never read: errors excluded
    else:
        xs_all, ys_all = xs, ys
    T = L + Tc
    g = zero_grads(w)
    loss, base = _run(
        cell.id, cell.alpha, xs_all, ys_all, L, k1, k2, tuple(w), tuple(buf), tuple(g)
    )
    # Carry h_{T-L'} .. h_T (X beside them) and x_{T-L'} .. x_{T-1} (local steps).
    state.t += Tc
    L_new = min(k2 - k1, state.t)
    lo = T - L_new - base  # index of h_{T-L'} in H (the buffer holds h_base .. h_T)
    buf.H[: L_new + 1] = buf.H[lo : lo + L_new + 1].copy()
    buf.X[: L_new + 1] = buf.X[lo : lo + L_new + 1].copy()
    state.inputs[:L_new] = xs_all[T - L_new : T]
    state.L = L_new
    return float(loss), cells.as_params(g, cell)
