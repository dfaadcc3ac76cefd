"""Truncated backpropagation through time, BPTT(k2; k1) (Williams & Peng 1990).

Run forward; at every t that is a multiple of k1, and at t = T, back-propagate
the readout errors of the steps since the previous update (t - k1 < s <= t)
through the states h_t .. h_{t-k2+1}, treating h_{t-k2} as a constant (h_0 when
t <= k2). With the weights held fixed, the gradient returned is the sum of
these updates over the sequence; the loss returned is the full loss.

    window at t:  dh_s = [s > t_prev] W_out^T (yhat_s - y_s) + W_hh^T da_{s+1},
                  da_s = dh_s * (1 - h_s^2),   t - k2 < s <= t

(Elman cell; a gated cell back-propagates its own step, kernels/cells/, and
its whole state at the window's start, h and the LSTM's c, is the constant.)
k1 = k2 = k is the "detach the hidden state every k steps" idiom of framework
code. BPTT(k2 >= T; 1) and BPTT(T; T) equal full BPTT.

Costs: time Theta(T n^2 B k2 / k1); memory Theta(k2 n B + P): only the last
k2 + 1 states are kept, however long the sequence, for every cell (Williams & Peng 1990,
"An efficient gradient-based algorithm for on-line training of recurrent
network trajectories"; Williams & Zipser 1995).
"""

from __future__ import annotations

import math

from . import _batch_parallel, cells
from ._batch_parallel import batch_parts
from ._jit import jit
from ._sweeps import (
    Buffers,
    backward_flops,
    backward_sweep,
    chunk_bytes,
    chunk_powers,
    chunk_steps,
    forward_flops,
    forward_sweep,
    gradient_bytes,
    make_buffers,
    state_bytes,
    zero_grads,
)
from ._validate import all_finite, check_result, check_size
from .cells import Weights
from .costs import Term


@jit
def _tbptt(cell, alpha, xs, ys, k1, k2, w, buf, g):
    w, buf, g = Weights(*w), Buffers(*buf), Weights(*g)  # named again (see _sweeps.py)
    T = xs.shape[0]
    H = buf.H
    X = buf.X
    # H holds the states h_base .. h_base + len(H) - 1 (X what the cell stored
    # with them); it never holds more than k2 + 1 of them, which is what makes
    # the memory independent of T.
    base = 0
    H[0] = 0.0
    X[0] = 0.0
    loss = 0.0
    t = 0  # steps run so far; their errors have all been injected
    while t < T:
        t_next = min(t + k1, T)
        # Slide the buffer so that it holds h_{t_next - k2} .. h_{t_next}.
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
    return loss, all_finite(g)


def _truncation(k1, k2):
    k1 = check_size("k1", k1)
    k2 = k1 if k2 is None else check_size("k2", k2)
    if k2 < k1:
        raise ValueError(f"k2 must be >= k1 (got k1={k1}, k2={k2}): BPTT(k2; k1) needs k2 >= k1")
    return k1, k2


def tbptt(params, xs, ys, k1, k2=None):
    """Loss and truncated gradient BPTT(k2; k1).

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        The cell is the parameters' type (an RNNParams's ``alpha`` is its leak).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)
    k1 : int
        Update every k1 steps (and at the end of the sequence), k1 >= 1; any
        k1 >= T means one update at t = T.
    k2 : int, optional
        Back-propagate through at most k2 steps, k2 >= k1; defaults to k1; any
        k2 >= T means no truncation.

    Returns
    -------
    loss : float
        The full loss 1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2.
    grads : the type of ``params``
        The sum of the truncated updates, same shapes and dtype as ``params``.
    """
    k1, k2 = _truncation(k1, k2)
    cell, w, xs, ys = cells.check_problem(params, xs, ys)
    T, B, m = xs.shape
    p, n = w.W_out.shape
    dt = w.W_out.dtype
    # Beyond T a truncation length changes nothing (one update at t = T, windows
    # reaching back to h_0); clamping keeps any Python int inside the kernel's int64.
    k1, k2 = min(k1, T), min(k2, T)
    # threads > 1: batch blocks in parallel (kernels/_batch_parallel.py)
    if (parts := batch_parts(B, w.W_out.shape[1], m, w.W_out.shape[0])) > 1:
        return _batch_parallel.tbptt(parts, cell, w, xs, ys, k1, k2)
    # At most k2 + 1 states: Theta(k2 n B).
    buf = make_buffers(cell, k2 + 1, B, n, m, p, chunk_steps(B, k2), dt)
    g = zero_grads(w)
    loss, finite = _tbptt(cell.id, cell.alpha, xs, ys, k1, k2, tuple(w), tuple(buf), tuple(g))
    grads = cells.as_params(g, cell)
    if not (finite and math.isfinite(loss)):
        check_result("tbptt", loss, grads, dt)  # raises, naming what overflowed
    return float(loss), grads


def _windows(T, k1, k2):
    """(window length, error steps) of every update, in order."""
    t = 0
    while t < T:
        t_next = min(t + k1, T)
        yield t_next - max(0, t_next - k2), t_next - t
        t = t_next


def _cell(size) -> cells.Cell:
    return cells.cell_named(size.get("cell", "elman"))


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``tbptt`` call: the forward sweep plus one backward sweep per update."""
    T, B, n, m, p, k1, k2 = (size[k] for k in ("T", "B", "n", "m", "p", "k1", "k2"))
    cell = _cell(size)
    C = chunk_steps(B, min(k2, T))
    # Updates with the same (length, error steps) cost the same; count them once.
    counts: dict[tuple[int, int], int] = {}
    for w in _windows(T, k1, k2):
        counts[w] = counts.get(w, 0) + 1
    terms = [t.substitute("steps", {"T": 1}) for t in forward_flops(cell, T, B, n, m)]
    for (length, err), count in counts.items():
        for term in backward_flops(cell, length, err, B, n, m, p, C):
            # T / k1 updates, each through a window of k2 steps; every error once.
            term = term.substitute("steps", {"T": 1, "k1": -1, "k2": 1}, times=count)
            term = term.substitute("sweeps", {"T": 1, "k1": -1})  # once per update
            terms.append(term.substitute("err_steps", {"T": 1}))
    terms.append(Term(sum(counts.values()), {"T": 1, "k1": -1}))  # loss += window's loss
    return terms


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``tbptt`` call: at most k2 + 1 states, chunk scratch, gradients."""
    T, B, n, m, p, k2 = (size[k] for k in ("T", "B", "n", "m", "p", "k2"))
    cell = _cell(size)
    window = min(k2, T)
    # A window longer than the sequence holds the sequence: then it grows with T.
    powers = {"k2": 1} if k2 <= T else {"T": 1}
    per_state = state_bytes(cell, B, n, itemsize)
    C = chunk_steps(B, window)
    return [
        Term(window * per_state, {**powers, "B": 1, "n": 1}),  # h_{t-k2+1} .. h_t, cell values
        Term(per_state, {"B": 1, "n": 1}),  # h_{t-k2} (c_{t-k2})
        *chunk_bytes(cell, B, n, m, p, C, chunk_powers(B, window, powers), itemsize),
        *gradient_bytes(cell, n, m, p, itemsize),
    ]
