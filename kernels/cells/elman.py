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

import math
from typing import NamedTuple

import numpy as np

from .._jit import jit
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
    return RNNParams(g.weight_ih, g.weight_hh, g.bias_ih, g.W_out, g.b_out, alpha=cell.alpha)


# --- pointwise steps (called by the schedules in kernels/_sweeps.py) ---------------------
# One signature for every cell; a cell ignores what it does not need. The schedule
# passes the buffers and step indices, plus the rows it has sliced for its own GEMMs;
# a cell slices what else it reads. (Each row view costs reference counting at every
# step, about 5% of the plain cell's time at n = 16: so no view is made twice, and
# none that a cell does not read.)
#   forward_step(A, j, R, w, h_prev, h_new, X, i, alpha)
#     A[j] (B, G n) input projection W_ih x;  R (B, G n) recurrent product W_hh h_prev
#     (the Elman schedule writes W_hh h_prev into h_new itself, and R is unused);
#     w: Weights (the biases are read);  h_prev = H[i];  h_new = H[i + 1], written;
#     X[i] the values stored with h_prev;  X[i + 1] written


@jit(inline=True)
def forward_step(A, j, R, w, h_prev, h_new, X, i, alpha):
    """h' = tanh(W_hh h + a + b_h), W_hh h already in h_new."""
    b_h = w.bias_ih
    a = A[j]
    B, n = h_new.shape
    for b in range(B):
        for k in range(n):
            h_new[b, k] = math.tanh(h_new[b, k] + a[b, k] + b_h[k])


@jit
def forward_step_leaky(A, j, R, w, h_prev, h_new, X, i, alpha):
    """u = tanh(W_hh h + a + b_h) (stored), h' = (1 - alpha) h + alpha u."""
    b_h = w.bias_ih
    a = A[j]
    u_new = X[i + 1]
    B, n = h_new.shape
    beta = 1.0 - alpha
    for b in range(B):
        for k in range(n):
            u = math.tanh(h_new[b, k] + a[b, k] + b_h[k])
            u_new[b, k] = u
            h_new[b, k] = beta * h_prev[b, k] + alpha * u


#   backward_step(DH, d, DX, j, delta, delta_c, carry, w, H, X, i, alpha)
#     DH[j] (B, n) readout error at h' = H[i + 1] (for the Elman cells DH is D: d holds it)
#     d = D[j] (B, G n) written: pre-activation errors on the hidden side (W_hh, b_hh)
#     DX[j] (B, G n) written: on the input side (W_ih, b_ih); D itself unless a cell's differ
#     delta (B, n) error at h' from the future
#     delta_c (B, n) LSTM only: error at c' from the future, replaced by the error at c
#     carry (B, n) written: error at h = H[i] that does not pass through W_hh
#     H[i], H[i + 1], X[i], X[i + 1]: the step's states and stored values


@jit(inline=True)
def backward_step(DH, d, DX, j, delta, delta_c, carry, w, H, X, i, alpha):
    """da = (dh + delta) * (1 - h'^2), in place in d (which holds dh)."""
    h = H[i + 1]
    B, n = h.shape
    for b in range(B):
        for k in range(n):
            d[b, k] = (d[b, k] + delta[b, k]) * (1.0 - h[b, k] * h[b, k])


@jit
def backward_step_leaky(DH, d, DX, j, delta, delta_c, carry, w, H, X, i, alpha):
    """e = dh + delta; da = e alpha (1 - u^2), in place in d (which holds dh);
    carry = (1 - alpha) e."""
    u_new = X[i + 1]
    B, n = delta.shape
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
