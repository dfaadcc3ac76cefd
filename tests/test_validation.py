"""Bad inputs get a ValueError or TypeError whose message names the argument;
awkward but valid inputs (non-contiguous, reversed, Fortran-ordered) work.

TypeError: the wrong kind of thing (integer or mixed dtypes, a non-int size).
ValueError: the right kind with a wrong value (shapes that disagree, T = 0,
non-finite entries, sizes < 1, k1 < 1, k2 < k1).
"""

from __future__ import annotations

import bpttbench
import numpy as np
import pytest
from helpers import EXACT_RTOL, assert_grads_close, assert_loss_close

RNN_CALLS = {
    "bptt": bpttbench.bptt,
    "rtrl": bpttbench.rtrl,
    "tbptt": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 2, 3),
}

XS, YS, XS_OR_YS = r"\bxs\b", r"\bys\b", r"\b(xs|ys)\b"


def replace(params, **arrays):
    return params._replace(**arrays)


# id -> (mutation of (params, xs, ys), exception, regex the message must match)
RNN_BAD_INPUTS = {
    # shapes that do not agree
    "xs-features-differ-from-W_ih": (lambda p, x, y: (p, x[..., :2], y), ValueError, XS),
    "ys-outputs-differ-from-W_out": (lambda p, x, y: (p, x, y[..., :1]), ValueError, YS),
    "ys-shorter-than-xs": (lambda p, x, y: (p, x, y[:-1]), ValueError, XS_OR_YS),
    "ys-batch-differs-from-xs": (lambda p, x, y: (p, x, y[:, :1]), ValueError, XS_OR_YS),
    "T=0": (lambda p, x, y: (p, x[:0], y[:0]), ValueError, XS_OR_YS),
    "B=0": (lambda p, x, y: (p, x[:, :0], y[:, :0]), ValueError, XS_OR_YS),
    "xs-1d": (lambda p, x, y: (p, x[0, 0], y[0, 0]), ValueError, XS),
    "xs-4d": (lambda p, x, y: (p, x[None], y[None]), ValueError, XS),
    "xs-2d-ys-3d": (lambda p, x, y: (p, x[:, 0], y), ValueError, XS_OR_YS),
    "W_hh-not-square": (lambda p, x, y: (replace(p, W_hh=p.W_hh[:, :3]), x, y), ValueError, "W_hh"),
    "W_ih-rows-differ-from-W_hh": (
        lambda p, x, y: (replace(p, W_ih=p.W_ih[:3]), x, y),
        ValueError,
        "W_ih",
    ),
    "b_h-length": (lambda p, x, y: (replace(p, b_h=p.b_h[:3]), x, y), ValueError, "b_h"),
    "b_h-2d": (lambda p, x, y: (replace(p, b_h=p.b_h[None]), x, y), ValueError, "b_h"),
    "W_out-columns": (
        lambda p, x, y: (replace(p, W_out=p.W_out[:, :3]), x, y),
        ValueError,
        "W_out",
    ),
    "b_out-length": (lambda p, x, y: (replace(p, b_out=p.b_out[:1]), x, y), ValueError, "b_out"),
    "params-missing-a-field": (lambda p, x, y: (tuple(p)[:4], x, y), TypeError, "params"),
    "params-not-a-tuple": (lambda p, x, y: (None, x, y), TypeError, "params"),
    # mixed dtypes
    "xs-float32-params-float64": (lambda p, x, y: (p, x.astype(np.float32), y), TypeError, XS),
    "ys-float32-params-float64": (lambda p, x, y: (p, x, y.astype(np.float32)), TypeError, YS),
    "W_out-float32-others-float64": (
        lambda p, x, y: (replace(p, W_out=p.W_out.astype(np.float32)), x, y),
        TypeError,
        "W_out",
    ),
    "params-float32-data-float64": (
        lambda p, x, y: (p._make(a.astype(np.float32) for a in p), x, y),
        TypeError,
        XS,
    ),
    # integer and other non-float arrays
    "xs-int": (lambda p, x, y: (p, x.astype(np.int64), y), TypeError, XS),
    "ys-int": (lambda p, x, y: (p, x, y.astype(np.int32)), TypeError, YS),
    "xs-float16": (lambda p, x, y: (p, x.astype(np.float16), y), TypeError, XS),
    "W_ih-int": (
        lambda p, x, y: (replace(p, W_ih=p.W_ih.astype(np.int64)), x, y),
        TypeError,
        "W_ih",
    ),
    "params-all-int": (
        lambda p, x, y: (p._make(a.astype(np.int64) for a in p), x, y),
        TypeError,
        "params",
    ),
    # non-finite values
    "xs-nan": (lambda p, x, y: (p, poke(x, np.nan), y), ValueError, XS),
    "xs-inf": (lambda p, x, y: (p, poke(x, np.inf), y), ValueError, XS),
    "ys-nan": (lambda p, x, y: (p, x, poke(y, np.nan)), ValueError, YS),
    "ys-minus-inf": (lambda p, x, y: (p, x, poke(y, -np.inf)), ValueError, YS),
    "W_hh-nan": (lambda p, x, y: (replace(p, W_hh=poke(p.W_hh, np.nan)), x, y), ValueError, "W_hh"),
    "W_ih-inf": (lambda p, x, y: (replace(p, W_ih=poke(p.W_ih, np.inf)), x, y), ValueError, "W_ih"),
    "b_h-nan": (lambda p, x, y: (replace(p, b_h=poke(p.b_h, np.nan)), x, y), ValueError, "b_h"),
    "W_out-inf": (
        lambda p, x, y: (replace(p, W_out=poke(p.W_out, np.inf)), x, y),
        ValueError,
        "W_out",
    ),
    "b_out-nan": (
        lambda p, x, y: (replace(p, b_out=poke(p.b_out, np.nan)), x, y),
        ValueError,
        "b_out",
    ),
}


def poke(array, value):
    """A copy of ``array`` with its last entry set to ``value``."""
    out = array.copy()
    out.reshape(-1)[-1] = value
    return out


@pytest.mark.parametrize("case", list(RNN_BAD_INPUTS))
@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
def test_rnn_bad_input_is_refused_naming_the_argument(rnn_problem, algorithm, case):
    mutate, error, pattern = RNN_BAD_INPUTS[case]
    params, xs, ys = mutate(*rnn_problem)
    with pytest.raises(error, match=pattern):
        RNN_CALLS[algorithm](params, xs, ys)


BAD_TRUNCATIONS = [
    (0, None, ValueError, "k1"),
    (-1, 2, ValueError, "k1"),
    (3, 2, ValueError, "k2"),
    (2, 1, ValueError, "k2"),
    (1, 0, ValueError, "k2"),
    (2.5, None, TypeError, "k1"),
    (2.0, None, TypeError, "k1"),
    (None, None, TypeError, "k1"),
    (True, None, TypeError, "k1"),
    (2, 3.5, TypeError, "k2"),
    ("2", None, TypeError, "k1"),
]


@pytest.mark.parametrize(
    ("k1", "k2", "error", "pattern"),
    BAD_TRUNCATIONS,
    ids=[f"k1={k1!r}-k2={k2!r}" for k1, k2, _, _ in BAD_TRUNCATIONS],
)
def test_tbptt_bad_truncation_is_refused_naming_k1_or_k2(rnn_problem, k1, k2, error, pattern):
    params, xs, ys = rnn_problem
    with pytest.raises(error, match=pattern):
        bpttbench.tbptt(params, xs, ys, k1, k2)


def test_tbptt_accepts_numpy_integer_truncation(rnn_problem):
    params, xs, ys = rnn_problem
    _, expected = bpttbench.tbptt(params, xs, ys, 2, 3)
    _, got = bpttbench.tbptt(params, xs, ys, np.int64(2), np.int32(3))
    assert_grads_close(got, expected, EXACT_RTOL, "numpy-integer k1, k2")


BAD_RNN_SIZES = [
    ((0, 4, 2), ValueError, "n_in"),
    ((3, 0, 2), ValueError, "n_hidden"),
    ((3, 4, 0), ValueError, "n_out"),
    ((-1, 4, 2), ValueError, "n_in"),
    ((3, -4, 2), ValueError, "n_hidden"),
    ((3, 4, -2), ValueError, "n_out"),
    ((3, 4.5, 2), TypeError, "n_hidden"),
    ((3, "4", 2), TypeError, "n_hidden"),
]


@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    BAD_RNN_SIZES,
    ids=[
        f"{name}={args[('n_in', 'n_hidden', 'n_out').index(name)]!r}"
        for args, _, name in BAD_RNN_SIZES
    ],
)
def test_init_rnn_bad_size_is_refused_naming_it(args, error, pattern):
    with pytest.raises(error, match=pattern):
        bpttbench.init_rnn(*args)


@pytest.mark.parametrize(
    "dtype",
    [np.int64, np.float16, np.complex128, "not-a-dtype"],
    ids=lambda d: np.dtype(d).name if d != "not-a-dtype" else d,
)
def test_init_bad_dtype_is_refused(dtype):
    with pytest.raises(TypeError, match="dtype"):
        bpttbench.init_rnn(3, 4, 2, dtype=dtype)
    with pytest.raises(TypeError, match="dtype"):
        bpttbench.init_mlp([3, 4, 2], dtype=dtype)


@pytest.mark.parametrize(
    ("sizes", "error"),
    [
        ([3, 0, 2], ValueError),
        ([3, 4, -2], ValueError),
        ([0, 4], ValueError),
        ([3], ValueError),
        ([], ValueError),
        ([3, 4.5, 2], TypeError),
        (5, TypeError),
        (None, TypeError),
    ],
    ids=lambda v: f"sizes={v!r}" if not isinstance(v, type) else v.__name__,
)
def test_init_mlp_bad_sizes_are_refused_naming_sizes(sizes, error):
    with pytest.raises(error, match="sizes"):
        bpttbench.init_mlp(sizes)


def mlp_replace(q, kind, index, array):
    arrays = list(getattr(q, kind))
    arrays[index] = array
    return q._replace(**{kind: tuple(arrays)})


X, Y, X_OR_Y = r"\bx\b", r"\by\b", r"\b(x|y)\b"

MLP_BAD_INPUTS = {
    "x-features-differ-from-weights": (lambda q, x, y: (q, x[:, :2], y), ValueError, X),
    "y-outputs-differ-from-weights": (lambda q, x, y: (q, x, y[:, :1]), ValueError, Y),
    "y-batch-differs-from-x": (lambda q, x, y: (q, x, y[:-1]), ValueError, X_OR_Y),
    "B=0": (lambda q, x, y: (q, x[:0], y[:0]), ValueError, X),
    "x-1d": (lambda q, x, y: (q, x[0], y), ValueError, X),
    "y-3d": (lambda q, x, y: (q, x, y[None]), ValueError, Y),
    "x-float32-params-float64": (lambda q, x, y: (q, x.astype(np.float32), y), TypeError, X),
    "y-int": (lambda q, x, y: (q, x, y.astype(np.int64)), TypeError, Y),
    "x-nan": (lambda q, x, y: (q, poke(x, np.nan), y), ValueError, X),
    "y-inf": (lambda q, x, y: (q, x, poke(y, np.inf)), ValueError, Y),
    "weights[1]-nan": (
        lambda q, x, y: (mlp_replace(q, "weights", 1, poke(q.weights[1], np.nan)), x, y),
        ValueError,
        r"weights\[1\]",
    ),
    "biases[0]-inf": (
        lambda q, x, y: (mlp_replace(q, "biases", 0, poke(q.biases[0], np.inf)), x, y),
        ValueError,
        r"biases\[0\]",
    ),
    "weights[1]-float32": (
        lambda q, x, y: (mlp_replace(q, "weights", 1, q.weights[1].astype(np.float32)), x, y),
        TypeError,
        r"weights\[1\]",
    ),
    "weights[0]-int": (
        lambda q, x, y: (mlp_replace(q, "weights", 0, q.weights[0].astype(np.int64)), x, y),
        TypeError,
        r"weights\[0\]",
    ),
    "weights[1]-does-not-follow-weights[0]": (
        lambda q, x, y: (mlp_replace(q, "weights", 1, q.weights[1][:, :3]), x, y),
        ValueError,
        r"weights\[1\]",
    ),
    "biases[1]-length": (
        lambda q, x, y: (mlp_replace(q, "biases", 1, q.biases[1][:2]), x, y),
        ValueError,
        r"biases\[1\]",
    ),
    "fewer-biases-than-weights": (
        lambda q, x, y: (q._replace(biases=q.biases[:-1]), x, y),
        ValueError,
        "biases",
    ),
    "no-layers": (lambda q, x, y: (bpttbench.MLPParams((), ()), x, y), ValueError, "params"),
    "params-not-a-pair": (lambda q, x, y: (None, x, y), TypeError, "params"),
}


@pytest.mark.parametrize("case", list(MLP_BAD_INPUTS))
def test_backprop_bad_input_is_refused_naming_the_argument(mlp_problem, case):
    mutate, error, pattern = MLP_BAD_INPUTS[case]
    q, x, y = mutate(*mlp_problem)
    with pytest.raises(error, match=pattern):
        bpttbench.backprop(q, x, y)


def strided_copy(array, rng):
    """The same values as ``array`` in a non-contiguous view (every other row of a bigger one)."""
    big = rng.normal(size=(2 * array.shape[0], *array.shape[1:]))
    big[::2] = array
    view = big[::2]
    assert not view.flags.c_contiguous
    return view


def transposed_copy(array):
    """The same values in a view of a transposed copy: reversed strides (Fortran order)."""
    view = np.ascontiguousarray(array.T).T
    assert array.ndim < 2 or not view.flags.c_contiguous
    return view


@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
@pytest.mark.parametrize("layout", ["strided", "transposed", "reversed-time"])
def test_rnn_non_contiguous_inputs_give_contiguous_results(rnn_problem, rng, algorithm, layout):
    params, xs, ys = rnn_problem
    if layout == "strided":
        args = (
            params._make(strided_copy(a, rng) if a.ndim == 2 else a[::1] for a in params),
            strided_copy(xs, rng),
            strided_copy(ys, rng),
        )
    elif layout == "transposed":
        args = (
            params._make(transposed_copy(a) for a in params),
            transposed_copy(xs),
            transposed_copy(ys),
        )
    else:
        args = (params, xs[::-1], ys[::-1])
    contiguous = tuple(
        a._make(np.ascontiguousarray(v) for v in a)
        if isinstance(a, tuple)
        else np.ascontiguousarray(a)
        for a in args
    )
    call = RNN_CALLS[algorithm]
    loss, g = call(*args)
    ref_loss, ref = call(*contiguous)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{algorithm} {layout} loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"{algorithm} {layout} vs contiguous")
    assert all(a.flags.c_contiguous for a in g)


def test_backprop_non_contiguous_inputs_give_contiguous_results(mlp_problem, rng):
    q, x, y = mlp_problem
    odd = bpttbench.MLPParams(
        tuple(transposed_copy(w) for w in q.weights),
        tuple(strided_copy(b, rng) for b in q.biases),
    )
    loss, g = bpttbench.backprop(odd, transposed_copy(x), strided_copy(y, rng))
    ref_loss, ref = bpttbench.backprop(q, x, y)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, "backprop non-contiguous loss")
    assert_grads_close(g, ref, EXACT_RTOL, "backprop non-contiguous vs contiguous")


# --- issue 8: what finite inputs must never do silently --------------------------------


OVERFLOWS = {
    # yhat = W_out h ~ 1e300: e^2 overflows the loss, and inf - inf makes NaN gradients
    "W_out-times-1e300": lambda p, x, y: (replace(p, W_out=p.W_out * 1e300), x, y),
    # e ~ 1e160: e^2 ~ 1e320 is past float64's largest number
    "ys-of-1e160": lambda p, x, y: (p, x, np.full_like(y, 1e160)),
}


@pytest.mark.parametrize("case", list(OVERFLOWS))
@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
def test_rnn_overflow_from_finite_inputs_raises(rnn_problem, algorithm, case):
    params, xs, ys = OVERFLOWS[case](*rnn_problem)
    with pytest.raises(FloatingPointError, match=r"overflow.*\bloss\b|\bloss\b.*overflow"):
        RNN_CALLS[algorithm](params, xs, ys)


def test_rnn_overflow_message_names_the_gradients_that_overflowed(rnn_problem):
    params, xs, ys = OVERFLOWS["W_out-times-1e300"](*rnn_problem)
    with pytest.raises(FloatingPointError, match=r"W_hh"):
        bpttbench.bptt(params, xs, ys)


def test_backprop_overflow_from_finite_inputs_raises(mlp_problem):
    q, x, y = mlp_problem
    with pytest.raises(FloatingPointError, match=r"\bloss\b"):
        bpttbench.backprop(q, x, np.full_like(y, 1e160))


@pytest.mark.parametrize(
    ("k1", "k2"),
    [(10**30, None), (10**30, 10**31), (2, 10**30), (np.uint64(2**64 - 1), None)],
    ids=["k1=1e30", "k1=1e30-k2=1e31", "k1=2-k2=1e30", "k1=uint64-max"],
)
def test_tbptt_truncation_beyond_int64_acts_as_T(rnn_problem, k1, k2):
    params, xs, ys = rnn_problem
    T = xs.shape[0]
    loss, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    expected_k1 = T if int(k1) > T else int(k1)
    ref_loss, ref = bpttbench.tbptt(params, xs, ys, expected_k1, T)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, "huge k loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"tbptt(k1={k1}, k2={k2}) vs k1, k2 clamped to T")


def test_tbptt_huge_k1_above_k2_is_still_refused(rnn_problem):
    with pytest.raises(ValueError, match="k2"):
        bpttbench.tbptt(*rnn_problem, 10**30, 5)


def masked(array):
    """``array`` as a numpy.ma masked array with its first entry masked."""
    mask = np.zeros(array.shape, dtype=bool)
    mask.reshape(-1)[0] = True
    return np.ma.masked_array(array, mask=mask)


MASKED_INPUTS = {
    "xs": (lambda p, x, y: (p, masked(x), y), XS),
    "ys": (lambda p, x, y: (p, x, masked(y)), YS),
    "W_hh": (lambda p, x, y: (replace(p, W_hh=masked(p.W_hh)), x, y), "W_hh"),
    "xs-nothing-masked": (lambda p, x, y: (p, np.ma.masked_array(x), y), XS),
}


@pytest.mark.parametrize("case", list(MASKED_INPUTS))
@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
def test_rnn_masked_arrays_are_refused(rnn_problem, algorithm, case):
    mutate, name = MASKED_INPUTS[case]
    params, xs, ys = mutate(*rnn_problem)
    with pytest.raises(TypeError, match=rf"(?s){name}.*mask"):
        RNN_CALLS[algorithm](params, xs, ys)


def test_backprop_masked_array_is_refused(mlp_problem):
    q, x, y = mlp_problem
    with pytest.raises(TypeError, match=r"(?s)\bx\b.*mask"):
        bpttbench.backprop(q, masked(x), y)


# --- the cells: gated parameters, mixed cells, the leak ----------------------------------


def gated(kind, n=4, m=3, p=2, rows=None, rng_seed=0):
    """GRUParams (kind "gru") or LSTMParams ("lstm") of n units; ``rows`` overrides the
    gate rows of weight_ih, weight_hh and both biases (to build another cell's shapes)."""
    rng = np.random.default_rng(rng_seed)
    G = {"gru": 3, "lstm": 4}[kind]
    R = G * n if rows is None else rows
    shapes = [(R, m), (R, n), (R,), (R,), (p, n), (p,)]
    params_type = {"gru": bpttbench.GRUParams, "lstm": bpttbench.LSTMParams}[kind]
    return params_type(*(rng.normal(0.0, 0.5, s) for s in shapes))


GRU_ROWS = r"params\.weight_hh must have shape \(3n, n\)"
LSTM_ROWS = r"params\.weight_hh must have shape \(4n, n\)"

# id -> (params, exception, regex the message must match); data from the default problem
GATED_BAD_PARAMS = {
    "gru-holding-lstm-shapes": (lambda: gated("gru", rows=16), ValueError, rf"{GRU_ROWS}.*LSTM"),
    "lstm-holding-gru-shapes": (lambda: gated("lstm", rows=12), ValueError, rf"{LSTM_ROWS}.*GRU"),
    "gru-gate-rows-not-a-multiple-of-3": (lambda: gated("gru", rows=10), ValueError, GRU_ROWS),
    "lstm-gate-rows-not-a-multiple-of-4": (lambda: gated("lstm", rows=14), ValueError, LSTM_ROWS),
    "gru-weight_ih-rows": (
        lambda: gated("gru")._replace(weight_ih=np.zeros((11, 3))),
        ValueError,
        "weight_ih",
    ),
    "lstm-bias_ih-length": (
        lambda: gated("lstm")._replace(bias_ih=np.zeros(12)),
        ValueError,
        "bias_ih",
    ),
    "gru-bias_hh-length": (
        lambda: gated("gru")._replace(bias_hh=np.zeros(13)),
        ValueError,
        "bias_hh",
    ),
    "lstm-W_out-columns": (
        lambda: gated("lstm")._replace(W_out=np.zeros((2, 3))),
        ValueError,
        "W_out",
    ),
    "gru-b_out-length": (lambda: gated("gru")._replace(b_out=np.zeros(3)), ValueError, "b_out"),
    "gru-bias_hh-2d": (
        lambda: gated("gru")._replace(bias_hh=np.zeros((1, 12))),
        ValueError,
        "bias_hh",
    ),
    "lstm-weight_hh-nan": (
        lambda: gated("lstm")._replace(weight_hh=poke(gated("lstm").weight_hh, np.nan)),
        ValueError,
        "weight_hh",
    ),
    "gru-bias_ih-inf": (
        lambda: gated("gru")._replace(bias_ih=poke(gated("gru").bias_ih, np.inf)),
        ValueError,
        "bias_ih",
    ),
    "gru-weight_ih-int": (
        lambda: gated("gru")._replace(weight_ih=np.zeros((12, 3), dtype=np.int64)),
        TypeError,
        "weight_ih",
    ),
    "lstm-bias_hh-float32": (
        lambda: gated("lstm")._replace(bias_hh=np.zeros(16, dtype=np.float32)),
        TypeError,
        "bias_hh",
    ),
    "lstm-weight_hh-masked": (
        lambda: gated("lstm")._replace(weight_hh=masked(gated("lstm").weight_hh)),
        TypeError,
        r"weight_hh.*mask",
    ),
    "elman-holding-gru-shapes": (
        lambda: bpttbench.RNNParams(
            np.zeros((4, 3)), np.zeros((12, 4)), np.zeros(4), np.zeros((2, 4)), np.zeros(2)
        ),
        ValueError,
        r"W_hh.*GRU",
    ),
    "six-arrays-in-a-plain-tuple": (lambda: tuple(gated("gru")), TypeError, r"GRUParams"),
}


@pytest.mark.parametrize("case", list(GATED_BAD_PARAMS))
@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
def test_gated_bad_parameters_are_refused_naming_the_field(rnn_problem, algorithm, case):
    make, error, pattern = GATED_BAD_PARAMS[case]
    _, xs, ys = rnn_problem
    with pytest.raises(error, match=pattern):
        RNN_CALLS[algorithm](make(), xs, ys)


# The data checks do not depend on the cell: every one the Elman cell makes, on gated params.
DATA_CASES = [c for c in RNN_BAD_INPUTS if c.split("-")[0] in ("xs", "ys", "T=0", "B=0")]


@pytest.mark.parametrize("case", DATA_CASES)
@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("algorithm", ["bptt", "tbptt"])
def test_gated_bad_data_is_refused_naming_the_argument(rnn_problem, algorithm, kind, case):
    mutate, error, pattern = RNN_BAD_INPUTS[case]
    params, xs, ys = rnn_problem
    _, xs, ys = mutate(params, xs, ys)
    with pytest.raises(error, match=pattern):
        RNN_CALLS[algorithm](gated(kind), xs, ys)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gated_float32_params_with_float64_data_are_refused(rnn_problem, kind):
    _, xs, ys = rnn_problem
    params = gated(kind)
    params = params._make(a.astype(np.float32) for a in params)
    with pytest.raises(TypeError, match=XS):
        bpttbench.bptt(params, xs, ys)


BAD_ALPHAS = [
    (0.0, ValueError),
    (-0.5, ValueError),
    (1.5, ValueError),
    (1.0000001, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    ("0.5", TypeError),
    (None, TypeError),
    (True, TypeError),
    (0.5 + 0j, TypeError),
    (np.array([0.5]), TypeError),
]
ALPHA_IDS = [f"alpha={a!r}" for a, _ in BAD_ALPHAS]


@pytest.mark.parametrize(("alpha", "error"), BAD_ALPHAS, ids=ALPHA_IDS)
def test_leak_outside_0_1_is_refused_at_construction(rnn_problem, alpha, error):
    params, _, _ = rnn_problem
    with pytest.raises(error, match="alpha"):
        bpttbench.RNNParams(*params, alpha=alpha)
    with pytest.raises(error, match="alpha"):
        bpttbench.init_rnn(3, 4, 2, alpha=alpha)
    with pytest.raises(error, match="alpha"):
        params._replace(alpha=alpha)


class DuckParams:
    """Five arrays and a leak attribute, as a caller's own type might carry them."""

    def __init__(self, arrays, alpha):
        self.arrays, self.alpha = tuple(arrays), alpha

    def __iter__(self):
        return iter(self.arrays)


@pytest.mark.parametrize(("alpha", "error"), BAD_ALPHAS, ids=ALPHA_IDS)
@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
def test_leak_outside_0_1_is_refused_by_every_algorithm(rnn_problem, algorithm, alpha, error):
    params, xs, ys = rnn_problem
    with pytest.raises(error, match="alpha"):
        RNN_CALLS[algorithm](DuckParams(params, alpha), xs, ys)


@pytest.mark.parametrize("alpha", [1e-6, 0.5, 1, np.float32(0.25)], ids=repr)
def test_leak_inside_0_1_is_accepted(rnn_problem, alpha):
    params, xs, ys = rnn_problem
    loss, g = bpttbench.bptt(bpttbench.RNNParams(*params, alpha=alpha), xs, ys)
    assert np.isfinite(loss) and g.alpha == float(alpha)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        ((0, 4, 2), ValueError, "n_in"),
        ((3, 4.5, 2), TypeError, "n_hidden"),
        ((3, 4, -1), ValueError, "n_out"),
    ],
    ids=["n_in=0", "n_hidden=4.5", "n_out=-1"],
)
def test_init_gated_bad_size_is_refused_naming_it(kind, args, error, pattern):
    with pytest.raises(error, match=pattern):
        getattr(bpttbench, f"init_{kind}")(*args)
    with pytest.raises(TypeError, match="dtype"):
        getattr(bpttbench, f"init_{kind}")(3, 4, 2, dtype=np.int32)
