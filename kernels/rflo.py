"""Random-feedback local online learning, RFLO (Murray 2019), with the true feedback.

RFLO keeps, for each recurrent parameter, an eligibility trace that follows
only the parameter's own unit through its leak, ignoring every recurrent
weight (notation of ``_online.py``):

    B   <- (1 - alpha) B + d_t z_t^T           B (n x r), row i the trace of row i's parameters
    dL/dtheta += c_t[:, None] * B

Murray's rule sends the error back through a fixed random matrix; here, as in
Marschall, Cho & Savin's framework, the feedback is the true c_t = W_out^T e_t,
so only the trace approximates. On this model (rate units, one leak, the
error read out linearly) e-prop for rate units (Bellec et al. 2020) is the
same rule: its eligibility trace also propagates through the unit's own leak
and ignores the recurrent weights, self-connection included. ``rflo`` is the
one implementation of both.

It is SnAp-1 (``snap1.py``) without the self-connection d_t * diag(W_hh) in
the decay of the trace, so it runs SnAp-1's kernel with the self-connections
set to zero; rflo == snap1 when diag(W_hh) = 0, and both are exact when
W_hh = 0.

Costs: time Theta(n r B) = Theta(n^2 B) per step, memory Theta(n r B) =
Theta(n^2 B) (Murray 2019, "Local online learning in recurrent networks with
random feedback", eLife 8:e43299, eqs. 12-14; Bellec et al. 2020, "A solution
to the learning dilemma for recurrent networks of spiking neurons", Nature
Communications 11:3625; Marschall, Cho & Savin 2020, JMLR 21(135), sec. 5.2).
"""

from __future__ import annotations

from . import _batch_parallel, _online
from ._batch_parallel import batch_parts
from ._validate import check_rnn_problem
from .costs import Term
from .snap1 import TraceState, trace_bytes, trace_flops
from .snap1 import advance as advance  # the state says which trace it runs


def start(arrays, B) -> TraceState:
    """RFLO's state at t = 0 for ``B`` sequences: zeros."""
    W_ih = arrays[0]
    return TraceState(B, W_ih.shape[0], W_ih.shape[1], arrays[3].shape[0], W_ih.dtype, False)


def rflo(params, xs, ys):
    """Loss and the RFLO (= e-prop for rate units) approximation of the gradient.

    Parameters
    ----------
    params : RNNParams
        Its ``alpha`` attribute, when present, is the leak (0 < alpha <= 1; 1 by default).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : RNNParams
        The sum over steps of RFLO's estimate with the true feedback W_out^T
        (readout gradients exact); the exact gradient when W_hh = 0.
    """
    arrays, xs, ys = check_rnn_problem(params, xs, ys)
    alpha = _online.leak(params)
    # threads > 1: batch blocks in parallel (kernels/_batch_parallel.py)
    _, B, m = xs.shape
    if (parts := batch_parts(B, arrays[1].shape[0], m, arrays[3].shape[0])) > 1:
        return _batch_parallel.online(parts, start, advance, arrays, alpha, xs, ys)
    return advance(start(arrays, xs.shape[1]), arrays, alpha, xs, ys)


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``rflo`` call: SnAp-1's kernel, the same count."""
    return trace_flops(*(size[k] for k in ("T", "B", "n", "m", "p")))


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``rflo`` call."""
    return trace_bytes(*(size[k] for k in ("T", "B", "n", "m", "p")), itemsize)
