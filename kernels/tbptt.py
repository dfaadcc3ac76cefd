"""Truncated backpropagation through time, BPTT(k2; k1) (Williams & Peng 1990).

Run forward; at every t that is a multiple of k1, and at t = T, back-propagate
the readout errors of the steps since the previous update (t - k1 < s <= t)
through the states h_t .. h_{t-k2+1}, treating h_{t-k2} as a constant (h_0 when
t <= k2). With the weights held fixed, the gradient returned is the sum of
these updates over the sequence; the loss returned is the full loss.

    window at t:  dh_s = [s > t_prev] W_out^T (yhat_s - y_s) + W_hh^T da_{s+1},
                  da_s = dh_s * (1 - h_s^2),   t - k2 < s <= t

k1 = k2 = k is the "detach the hidden state every k steps" idiom of framework
code. BPTT(k2 >= T; 1) and BPTT(T; T) equal full BPTT.

Costs: time Theta(T n^2 B k2 / k1); memory Theta(k2 n B + P): only the last
k2 + 1 states are kept, however long the sequence (Williams & Peng 1990,
"An efficient gradient-based algorithm for on-line training of recurrent
network trajectories"; Williams & Zipser 1995).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from ._sweeps import backward_flops, backward_sweep, chunk_steps, forward_flops, forward_sweep
from ._validate import check_result, check_rnn_problem, check_size
from .costs import Term
from .model import RNNParams


@jit
def _tbptt(
    xs, ys, k1, k2, W_ih, W_hh, b_h, W_out, b_out, H, D, E, delta, tmp_nn, tmp_nm, tmp_pn, grads,
):  # fmt: skip
    T = xs.shape[0]
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out = grads
    # H holds the states h_base .. h_base + len(H) - 1; it never holds more
    # than k2 + 1 of them, which is what makes the memory independent of T.
    base = 0
    H[0] = 0.0
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
            base = new_base
        forward_sweep(xs, W_ih, W_hh, b_h, H, base, t, t_next, D)
        loss += backward_sweep(
            xs, ys, W_hh, W_out, b_out, H, base, max(0, t_next - k2), t_next, t,
            g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out, D, E, delta, tmp_nn, tmp_nm, tmp_pn,
        )  # fmt: skip
        t = t_next
    return loss


def _truncation(k1, k2):
    k1 = check_size("k1", k1)
    k2 = k1 if k2 is None else check_size("k2", k2)
    if k2 < k1:
        raise ValueError(f"k2 must be >= k1 (got k1={k1}, k2={k2}): BPTT(k2; k1) needs k2 >= k1")
    return k1, k2


def tbptt(params, xs, ys, k1, k2=None):
    """Loss and truncated gradient BPTT(k2; k1) of the Elman RNN.

    Parameters
    ----------
    params : RNNParams
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
    grads : RNNParams
        The sum of the truncated updates, same shapes and dtype as ``params``.
    """
    k1, k2 = _truncation(k1, k2)
    (W_ih, W_hh, b_h, W_out, b_out), xs, ys = check_rnn_problem(params, xs, ys)
    T, B, m = xs.shape
    # Beyond T a truncation length changes nothing (one update at t = T, windows
    # reaching back to h_0); clamping keeps any Python int inside the kernel's int64.
    k1, k2 = min(k1, T), min(k2, T)
    n, p = W_hh.shape[0], W_out.shape[0]
    dt = W_hh.dtype
    window = min(k2, T)
    C = chunk_steps(B, window)
    grads = tuple(np.zeros_like(a) for a in (W_ih, W_hh, b_h, W_out, b_out))
    H = np.empty((window + 1, B, n), dt)  # at most k2 + 1 states: Theta(k2 n B)
    loss = _tbptt(
        xs, ys, k1, k2, W_ih, W_hh, b_h, W_out, b_out, H,
        np.empty((C, B, n), dt), np.empty((C, B, p), dt), np.empty((B, n), dt),
        np.empty((n, n), dt), np.empty((n, m), dt), np.empty((p, n), dt), grads,
    )  # fmt: skip
    g = RNNParams(*grads)
    check_result("tbptt", loss, zip(g._fields, g, strict=True), dt)
    return float(loss), g


def _windows(T, k1, k2):
    """(window length, error steps) of every update, in order."""
    t = 0
    while t < T:
        t_next = min(t + k1, T)
        yield t_next - max(0, t_next - k2), t_next - t
        t = t_next


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``tbptt`` call: the forward sweep plus one backward sweep per update."""
    T, B, n, m, p, k1, k2 = (size[k] for k in ("T", "B", "n", "m", "p", "k1", "k2"))
    C = chunk_steps(B, min(k2, T))
    # Updates with the same (length, error steps) cost the same; count them once.
    counts: dict[tuple[int, int], int] = {}
    for w in _windows(T, k1, k2):
        counts[w] = counts.get(w, 0) + 1
    terms = [t.substitute("steps", {"T": 1}) for t in forward_flops(T, B, n, m)]
    for (length, err), count in counts.items():
        for term in backward_flops(length, err, B, n, m, p, C):
            # T / k1 updates, each through a window of k2 steps; every error once.
            term = term.substitute("steps", {"T": 1, "k1": -1, "k2": 1}, times=count)
            terms.append(term.substitute("err_steps", {"T": 1}))
    terms.append(Term(sum(counts.values()), {"T": 1, "k1": -1}))  # loss += window's loss
    return terms


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``tbptt`` call: at most k2 + 1 states, chunk scratch, gradients."""
    T, B, n, m, p, k2 = (size[k] for k in ("T", "B", "n", "m", "p", "k2"))
    window = min(k2, T)
    C = chunk_steps(B, window)
    return [
        Term(window * B * n * itemsize, {"k2": 1, "B": 1, "n": 1}),  # h_{t-k2+1} .. h_t
        Term(B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-k2}
        Term(C * B * (n + p) * itemsize + B * n * itemsize, {"B": 1, "n": 1}),  # D, E, delta
        Term(2 * (n * n + n * m + n * p) * itemsize, {"n": 2}),  # gradients and GEMM scratch
        Term((n + p) * itemsize, {"n": 1}),  # bias gradients
    ]
