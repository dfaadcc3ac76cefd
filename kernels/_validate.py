"""Input checks shared by the public wrappers.

Every check raises ``TypeError`` (wrong kind of thing: not an array, a masked
array, integer or mixed dtypes) or ``ValueError`` (right kind, wrong value:
shapes that disagree, non-finite entries, sizes < 1), and the message names the
argument and says what was expected. Arrays that pass come back C-contiguous in
one float dtype, because the kernels are compiled for contiguous float32/float64
buffers.

Results are checked too: finite inputs can still overflow (weights of 1e300, a
target of 1e160 whose square is past float64's range). A kernel's loss or
gradient that is not finite raises ``FloatingPointError`` naming what
overflowed (:func:`check_result`), rather than coming back as inf or NaN.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import literal_unroll

from ._jit import jit

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@jit
def _all_finite(flat):
    # A loop, not np.isfinite(a).all(): that builds a temporary as long as the
    # data, which would give truncated BPTT and RTRL a memory term in T.
    for v in flat:
        if not math.isfinite(v):
            return False
    return True


@jit
def all_finite(arrays):
    """All entries of every (contiguous) array of a tuple finite. A kernel calls it on
    its gradients before it returns, which saves the wrapper a dispatch per call."""
    ok = True
    for a in literal_unroll(arrays):
        ok = ok and _all_finite(a.reshape(-1))
    return ok


@jit
def finite_pair(xs, ys):
    """All entries of two contiguous arrays finite: a stream's chunk in one dispatch."""
    return _all_finite(xs.reshape(-1)) and _all_finite(ys.reshape(-1))


def check_size(name, value) -> int:
    """A positive int (bools are refused: ``True`` is not a size)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_alpha(value) -> float:
    """The Elman leak: a real number in (0, 1] (NaN, bools and non-numbers refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"alpha (the leak) must be a real number in (0, 1], got {value!r}")
    alpha = float(value)
    if not 0.0 < alpha <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"alpha (the leak) must be in (0, 1], got {value!r}")
    return alpha


def check_dtype(name, dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def check_array(name, value, ndim, dtype=None) -> np.ndarray:
    """A finite float array with ``ndim`` dimensions (an int or a tuple of allowed ints).

    When ``dtype`` is given the array must already have it: the kernels never
    cast silently, so mixing float32 data with float64 parameters is an error.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(value).__name__}")
    if isinstance(value, np.ma.MaskedArray):
        # The kernels read the data buffer: the mask would be ignored, silently.
        raise TypeError(
            f"{name} is a numpy.ma masked array, and the kernels would ignore its mask; "
            f"pass a plain array (e.g. {name}.filled(0.0), or drop the masked steps)"
        )
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but the parameters are {dtype}; cast them to one dtype"
        )
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if value.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must be {want}, got shape {value.shape}")
    value = np.ascontiguousarray(value)
    if not _all_finite(value.reshape(-1)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


def check_shape(name, array, expected) -> None:
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")


ELMAN_FIELDS = ("W_ih", "W_hh", "b_h", "W_out", "b_out")
GATED_LAYOUTS = {3: "GRU (3n rows r|z|n)", 4: "LSTM (4n rows i|f|g|o)"}


def check_rnn_params(params):
    """The five Elman arrays, checked against each other; returns (arrays, dtype).

    The Elman cell (kernels/cells/elman.py) builds its check on this; the online
    rules, which run the Elman cell only, call it directly.
    """
    try:
        arrays = tuple(params)
    except TypeError:
        raise TypeError(
            f"params must be bpttbench.RNNParams, GRUParams or LSTMParams, "
            f"got {type(params).__name__}"
        ) from None
    if len(arrays) != len(ELMAN_FIELDS):
        raise TypeError(
            f"params must be bpttbench.RNNParams {ELMAN_FIELDS}, got {len(arrays)} items"
            + ("; a gated cell takes bpttbench.GRUParams or LSTMParams" if len(arrays) == 6 else "")
        )
    W_hh = check_array("params.W_hh", arrays[1], 2)
    dtype = W_hh.dtype
    W_ih, _, b_h, W_out, b_out = (
        check_array(f"params.{f}", a, 1 if f.startswith("b") else 2, dtype)
        for f, a in zip(ELMAN_FIELDS, arrays, strict=True)
    )
    n = W_hh.shape[1]
    if W_hh.shape[0] != n:
        gated = next((v for G, v in GATED_LAYOUTS.items() if W_hh.shape[0] == G * n), None)
        hint = f"; {W_hh.shape[0]} x {n} is the {gated} layout: use its type" if gated else ""
        raise ValueError(f"params.W_hh must have shape (n, n), got {W_hh.shape}{hint}")
    if W_ih.shape[0] != n:
        raise ValueError(f"params.W_ih must have shape ({n}, m) to match W_hh, got {W_ih.shape}")
    check_shape("params.b_h", b_h, (n,))
    if W_out.shape[1] != n:
        raise ValueError(f"params.W_out must have shape (p, {n}) to match W_hh, got {W_out.shape}")
    check_shape("params.b_out", b_out, (W_out.shape[0],))
    if min(W_ih.shape + W_out.shape) < 1:
        raise ValueError("params must have at least one input, hidden and output unit")
    return (W_ih, W_hh, b_h, W_out, b_out), dtype


def check_sequence(xs, ys, m, p, dtype):
    """xs (T, B, m) and ys (T, B, p), or (T, m) and (T, p) meaning B = 1."""
    xs = check_array("xs", xs, (2, 3), dtype)
    ys = check_array("ys", ys, (2, 3), dtype)
    if xs.ndim != ys.ndim:
        raise ValueError(f"xs and ys must both be 2-D or both 3-D, got {xs.shape} and {ys.shape}")
    if xs.ndim == 2:
        xs, ys = xs[:, None, :], ys[:, None, :]
    T, B, m_x = xs.shape
    if T < 1:
        raise ValueError(f"xs must hold at least one time step, got shape {xs.shape}")
    if B < 1:
        raise ValueError(f"xs must hold at least one sequence in the batch, got shape {xs.shape}")
    if m_x != m:
        raise ValueError(f"xs must have {m} features per step to match params.W_ih, got {m_x}")
    check_shape("ys", ys, (T, B, p))
    return xs, ys


def check_rnn_problem(params, xs, ys):
    """Check an Elman gradient call; returns ((W_ih, W_hh, b_h, W_out, b_out), xs, ys),
    contiguous."""
    arrays, dtype = check_rnn_params(params)
    W_ih, _, _, W_out, _ = arrays
    xs, ys = check_sequence(xs, ys, W_ih.shape[1], W_out.shape[0], dtype)
    return arrays, xs, ys


def check_result(algorithm: str, loss: float, grads, dtype) -> None:
    """Raise ``FloatingPointError`` if the loss or a gradient of finite inputs is not finite.

    ``grads`` is a parameter NamedTuple of contiguous arrays (its fields name
    them), or an iterable of ``(name, array)``. The arrays are checked by
    jitted loops (no temporary as large as the data); the message names the
    loss and every gradient that overflowed.
    """
    if hasattr(grads, "_fields"):
        if math.isfinite(loss) and all_finite(tuple(grads)):
            return
        grads = zip(grads._fields, grads, strict=True)
    bad = [f for f, a in grads if not _all_finite(np.ascontiguousarray(a).reshape(-1))]
    if math.isfinite(loss) and not bad:
        return
    what = []
    if not math.isfinite(loss):
        what.append(f"the loss is {loss}")
    if bad:
        several = len(bad) > 1
        what.append(
            f"the gradient{'s' if several else ''} of {', '.join(bad)} "
            f"{'are' if several else 'is'} not finite (NaN or inf)"
        )
    raise FloatingPointError(
        f"{algorithm} overflowed: {' and '.join(what)}, although every input is finite; "
        f"the parameters or the data are too large for {np.dtype(dtype).name} "
        f"(scale them down)"
    )
