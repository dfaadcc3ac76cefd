"""Truncated BPTT, BPTT(k2; k1), as a stream: ``bpttbench.stream("tbptt", p, B, k1=, k2=)``.

A chunk of a multiple of k1 steps ends on an update, so no readout error is
pending at its end; what the next chunk's first window reaches back into is
the last ``L = min(k2 - k1, t)`` steps before it (t: steps streamed so far).
The state carries exactly that: the states h_{t-L} .. h_t and the inputs
x_{t-L} .. x_{t-1}. A chunk then runs the schedule of ``tbptt.py`` over
[carried steps + chunk] from the carried states, with the carried steps'
errors excluded (they were injected by the update that ended the previous
chunk), so the streamed gradients sum to the one-shot ``tbptt`` of the whole
sequence (to summation order).

Memory: the window H of k2 + 1 states and L inputs, Theta(k2 (n + m) B), as in
the one-shot kernel; the chunk itself (with the L carried inputs prepended) is
input-sized. The Elman cell without a leak only, like ``tbptt.py``.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from ._sweeps import backward_sweep, chunk_steps, forward_sweep
from ._validate import check_size
from .model import RNNParams


class TBPTTState:
    """What a truncated-BPTT stream carries: the last L + 1 states and L inputs."""

    def __init__(self, arrays, B, k1=None, k2=None):
        if k1 is None:
            raise TypeError("stream('tbptt') needs k1= (update every k1 steps; k2 defaults to k1)")
        self.k1 = check_size("k1", k1)
        self.k2 = self.k1 if k2 is None else check_size("k2", k2)
        if self.k2 < self.k1:
            raise ValueError(f"k2 must be >= k1 (got k1={self.k1}, k2={self.k2})")
        W_ih, W_hh = arrays[0], arrays[1]
        n, m, dt = W_hh.shape[0], W_ih.shape[1], W_hh.dtype
        self.B = B
        self.H = np.zeros((self.k2 + 1, B, n), dt)  # H[0 .. L] = h_{t-L} .. h_t
        self.X = np.zeros((self.k2, B, m), dt)  # X[0 .. L-1] = x_{t-L} .. x_{t-1}
        self.L = 0
        self.t = 0


def start(arrays, B, k1=None, k2=None) -> TBPTTState:
    """The state at t = 0: h_0 = 0, nothing carried."""
    return TBPTTState(arrays, B, k1, k2)


@jit
def _run(
    xs, ys, L, k1, k2, W_ih, W_hh, b_h, W_out, b_out, H, D, E, delta, tmp_nn, tmp_nm, tmp_pn,
    grads,
):  # fmt: skip
    # Steps 0 .. L-1 of xs are the carried ones: their states are already in
    # H[0 .. L] and their errors already injected. Same schedule as tbptt._tbptt.
    T = xs.shape[0]
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out = grads
    base = 0
    loss = 0.0
    t = L
    while t < T:
        t_next = min(t + k1, T)
        new_base = max(0, t_next - k2)
        if new_base > base:
            keep = t - new_base + 1
            for i in range(keep):
                H[i] = H[i + new_base - base]
            base = new_base
        forward_sweep(xs, W_ih, W_hh, b_h, H, base, t, t_next, D)
        loss += backward_sweep(
            xs, ys, W_hh, W_out, b_out, H, base, max(0, t_next - k2), t_next, t,
            g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out, D, E, delta, tmp_nn, tmp_nm, tmp_pn,
        )  # fmt: skip
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
    W_ih, W_hh, b_h, W_out, b_out = arrays
    B, m = xs.shape[1], xs.shape[2]
    n, p, dt = W_hh.shape[0], W_out.shape[0], W_hh.dtype
    if L:
        xs_all = np.concatenate([state.X[:L], xs])
        ys_all = np.concatenate([np.zeros((L, B, p), dt), ys])  # never read: errors excluded
    else:
        xs_all, ys_all = xs, ys
    T = L + Tc
    C = chunk_steps(B, min(k2, T))
    grads = tuple(np.zeros_like(a) for a in arrays)
    loss, base = _run(
        xs_all, ys_all, L, k1, k2, W_ih, W_hh, b_h, W_out, b_out, state.H,
        np.empty((C, B, n), dt), np.empty((C, B, p), dt), np.empty((B, n), dt),
        np.empty((n, n), dt), np.empty((n, m), dt), np.empty((p, n), dt), grads,
    )  # fmt: skip
    # Carry h_{T-L'} .. h_T and x_{T-L'} .. x_{T-1} (local steps) for the next chunk.
    state.t += Tc
    L_new = min(k2 - k1, state.t)
    lo = T - L_new - base  # index of h_{T-L'} in H (the buffer holds h_base .. h_T)
    state.H[: L_new + 1] = state.H[lo : lo + L_new + 1].copy()
    state.X[:L_new] = xs_all[T - L_new : T]
    state.L = L_new
    return float(loss), RNNParams(*grads)
