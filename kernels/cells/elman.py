"""The Elman cell (``torch.nn.RNN`` with tanh), with an optional leak.

    a_t = W_ih x_t + W_hh h_{t-1} + b_h                  h_0 = 0
    h_t = (1 - alpha) h_{t-1} + alpha tanh(a_t)          0 < alpha <= 1

alpha = 1 is the plain cell, h_t = tanh(a_t), that is ``torch.nn.RNN(
nonlinearity="tanh")`` with its two biases summed into b_h (Elman 1990). The
leaky cell is the model of Murray 2019 and of Marschall, Cho & Savin 2020
(THEORY.md, "A leak"): it keeps apart the online rules that coincide on the
plain cell. The leak is the model's, not a parameter that learns: it rides on
:class:`RNNParams` as the attribute ``alpha``, beside the five arrays.

Forward step (G = 1 gate block): the schedule hands the cell the input
projection ``a = W_ih x`` and the recurrent product ``r = W_hh h`` (two GEMMs),
and the cell finishes the step pointwise:

    u    = tanh(r + a + b_h)
    h'   = u                              (plain)
    h'   = (1 - alpha) h + alpha u        (leaky; u is stored for the backward step)

Backward step, from the error ``dh`` at h' (readout plus the future):

    da   = dh * (1 - h'^2)                (plain: u = h')
    da   = dh * alpha (1 - u^2)           (leaky)
    error at h = W_hh^T da  [+ (1 - alpha) dh, the leak's direct path]

Per-step storage: h (plain); h and u = tanh(a) (leaky). Recovering u from h
and h_{t-1} would divide by alpha and lose digits for a small leak.

RTRL (the immediate Jacobian): a_t,i depends on row i of (W_hh | W_ih | b_h)
only, through z_t = (h_{t-1}, x_t, 1), so M_t = dh_t/dtheta (immediate) has
one non-zero row per parameter row: M_t[i, (k, c)] = delta_ik alpha
phi'(a_t,i) z_t,c; the state Jacobian is dh_t/dh_{t-1} = (1 - alpha) I +
alpha diag(phi'(a_t)) W_hh. Hence (kernels/rtrl.py)

    J_t = ((1 - alpha) I + alpha D_t W_hh) J_{t-1} + alpha D_t M_t,   D_t = diag(1 - u_t^2)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from .._math import tanh
from .._validate import check_alpha, check_dtype, check_rnn_params, check_size
from ..costs import Term
from ._common import ELMAN, LEAKY, Cell, Weights

NAME = "elman"
GATES = 1


class _RNNArrays(NamedTuple):
    W_ih: np.ndarray  # (n, m) input to hidden
    W_hh: np.ndarray  # (n, n) hidden to hidden
    b_h: np.ndarray  # (n,)   hidden bias
    W_out: np.ndarray  # (p, n) hidden to output
    b_out: np.ndarray  # (p,)   output bias


class RNNParams(_RNNArrays):
    """Parameters of the Elman RNN; gradients come back in the same type.

    Five array fields, ``(W_ih, W_hh, b_h, W_out, b_out)``: construction,
    iteration, unpacking and ``_fields`` see exactly these. The leak ``alpha``
    in (0, 1] is an attribute beside them, not a field (default 1, the plain
    cell): ``RNNParams(*arrays, alpha=0.5)``, ``p.alpha``. ``_replace`` keeps
    it (and takes ``alpha=`` to change it), pickling and copying keep it,
    ``_make`` gives the default 1. Gradients carry the alpha of the parameters
    they were computed for: it describes the model, it is not a gradient.
    """

    # No __slots__: the instance dict holds the leak when it is not 1.

    def __new__(cls, W_ih, W_hh, b_h, W_out, b_out, alpha=1.0):
        self = super().__new__(cls, W_ih, W_hh, b_h, W_out, b_out)
        alpha = check_alpha(alpha)
        if alpha != 1.0:
            self.__dict__["_alpha"] = alpha
        return self

    @property
    def alpha(self) -> float:
        """The leak: h_t = (1 - alpha) h_{t-1} + alpha tanh(a_t); 1 is the plain cell."""
        return self.__dict__.get("_alpha", 1.0)

    def _replace(self, /, **changes):
        alpha = changes.pop("alpha", self.alpha)
        return type(self)(*super()._replace(**changes), alpha=alpha)

    def __reduce__(self):
        return (_rebuild, (type(self), tuple(self), self.alpha))

    def __repr__(self):
        text = super().__repr__()
        return text if self.alpha == 1.0 else f"{text[:-1]}, alpha={self.alpha!r})"


def _rebuild(cls, arrays, alpha):
    """Unpickle an RNNParams with its leak."""
    return cls(*arrays, alpha=alpha)


def init_rnn(n_in, n_hidden, n_out, seed=0, dtype=np.float64, alpha=1.0) -> RNNParams:
    """Random Elman parameters, uniform in +-1/sqrt(n_hidden) as ``torch.nn.RNN`` draws them.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Input size m, state size n and output size p; each must be >= 1.
    seed : int
        Seed of the ``numpy.random.default_rng`` stream.
    dtype : float32 or float64
    alpha : float
        The leak in (0, 1]; 1 (the default) is the plain cell.
    """
    m = check_size("n_in", n_in)
    n = check_size("n_hidden", n_hidden)
    p = check_size("n_out", n_out)
    dtype = check_dtype("dtype", dtype)
    alpha = check_alpha(alpha)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(n)

    def draw(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    return RNNParams(draw(n, m), draw(n, n), draw(n), draw(p, n), draw(p), alpha=alpha)


PLAIN = Cell(NAME, ELMAN, GATES, 0, 1.0)


def cell(alpha: float = 1.0) -> Cell:
    """The cell description the wrappers use: the plain cell for alpha = 1, else the leaky one."""
    return PLAIN if alpha == 1.0 else Cell(NAME, LEAKY, GATES, 1, alpha)


# The Elman cell's bias_hh in the kernels' layout: empty, never read (one per dtype).
_NO_BIAS = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}


def check(params):
    """Validate Elman parameters; return ``(Cell, Weights, dtype)``.

    Anything with exactly the five arrays in order is accepted (an
    ``RNNParams``, or a plain tuple); its ``alpha`` attribute, if any, is the leak.
    """
    (W_ih, W_hh, b_h, W_out, b_out), dtype = check_rnn_params(params)
    alpha = check_alpha(getattr(params, "alpha", 1.0))
    # b_h is the input-side bias; the Elman cell has no second one.
    weights = Weights(W_ih, W_hh, b_h, _NO_BIAS[dtype], W_out, b_out)
    return cell(alpha), weights, dtype


def as_params(g: Weights, cell: Cell) -> RNNParams:
    """Gradients from the kernels' layout, carrying the leak of the parameters."""
    arrays = (g.weight_ih, g.weight_hh, g.bias_ih, g.W_out, g.b_out)
    if cell.alpha == 1.0:
        return RNNParams._make(arrays)  # the leak was checked with the parameters
    return RNNParams(*arrays, alpha=cell.alpha)


# --- pointwise steps (called by the schedules in kernels/_sweeps.py) ---------------------
# The schedule computes a = W_ih x (chunk GEMM) and r = W_hh h (a GEMM per step) and
# slices the rows a step reads; each cell's steps take exactly what they read. (Every
# array argument costs reference counting at every step once the step is inlined: a
# signature shared by all cells, with the buffers the plain cell does not read, made
# its BPTT 2% slower at n = 16, B = 1.)


@jit(inline=True)
def forward_step(a, b_h, h_new):
    """h' = tanh(W_hh h + a + b_h); h_new holds W_hh h on entry (the schedule's GEMM)."""
    B, n = h_new.shape
    for b in range(B):
        for k in range(n):
            h_new[b, k] = tanh(h_new[b, k] + a[b, k] + b_h[k])


@jit
def forward_step_leaky(a, b_h, h_prev, h_new, u_new, alpha):
    """u = tanh(W_hh h + a + b_h) (stored in u_new), h' = (1 - alpha) h + alpha u;
    h_new holds W_hh h on entry."""
    B, n = h_new.shape
    beta = 1.0 - alpha
    for b in range(B):
        for k in range(n):
            u = tanh(h_new[b, k] + a[b, k] + b_h[k])
            u_new[b, k] = u
            h_new[b, k] = beta * h_prev[b, k] + alpha * u


@jit(inline=True)
def backward_step(d, delta, h_new):
    """da = (dh + delta) (1 - h'^2), in place: d holds the readout error dh at h' on entry.

    delta is the error at h' from the future; the schedule then passes W_hh^T da
    to the previous state.
    """
    B, n = d.shape
    for b in range(B):
        for k in range(n):
            d[b, k] = (d[b, k] + delta[b, k]) * (1.0 - h_new[b, k] * h_new[b, k])


@jit
def backward_step_leaky(d, delta, u_new, carry, alpha):
    """e = dh + delta; da = e alpha (1 - u^2), in place in d (which holds dh on entry);
    carry = (1 - alpha) e, the error at h that bypasses W_hh."""
    B, n = d.shape
    beta = 1.0 - alpha
    for b in range(B):
        for k in range(n):
            e = d[b, k] + delta[b, k]
            u = u_new[b, k]
            carry[b, k] = beta * e
            d[b, k] = e * alpha * (1.0 - u * u)


# --- costs (powers in the pseudo-variable "steps", as kernels/_sweeps.py counts) ---------


def forward_flops(cell: Cell, steps: int, B: int, n: int) -> list[Term]:
    """FLOPs of ``steps`` pointwise forward steps."""
    if cell.id == ELMAN:
        return [Term(3 * steps * B * n, {"steps": 1, "B": 1, "n": 1})]  # two adds, tanh
    return [
        Term(6 * steps * B * n, {"steps": 1, "B": 1, "n": 1}),  # two adds, tanh; 2 mul, add
        Term(steps, {"steps": 1}),  # 1 - alpha
    ]


def backward_flops(cell: Cell, steps: int, B: int, n: int) -> list[Term]:
    """FLOPs of ``steps`` pointwise backward steps."""
    if cell.id == ELMAN:
        return [Term(4 * steps * B * n, {"steps": 1, "B": 1, "n": 1})]  # (d + delta)(1 - h^2)
    return [
        Term(6 * steps * B * n, {"steps": 1, "B": 1, "n": 1}),  # g, carry, g alpha (1 - u^2)
        Term(steps, {"steps": 1}),  # 1 - alpha
    ]
