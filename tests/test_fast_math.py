"""The vectorisable tanh and sigmoid (kernels/_math.py) against NumPy's libm, in ulp.

The bound is what the kernels' tolerances rely on: an identity test at 1e-10 and
the autograd comparisons at 1e-9 need the nonlinearity within a few units in the
last place, and the memory and speed claims need it to hold on every input class
the kernels meet (0, subnormal, tiny, moderate, large, saturated, NaN).
"""

from __future__ import annotations

import numpy as np
import pytest
from bpttbench import _math
from bpttbench._jit import jit

MAX_ULP = 8  # measured worst case 5 ulp (tanh) over the inputs below


@jit
def _apply(kind, x, out):
    for i in range(x.shape[0]):
        out[i] = _math.tanh(x[i]) if kind == 0 else _math.sigmoid(x[i])


def _inputs():
    rng = np.random.default_rng(7)
    return np.concatenate(
        [
            [0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e-20, -1e-8, 0.5, -0.5, 1.0, 19.0, 22.0],
            [23.0, -40.0, 700.0, -744.0, -745.5, 1e300, -1e300, np.inf, -np.inf],
            rng.standard_normal(20000) * 3.0,
            rng.standard_normal(5000) * 1e-4,
            np.geomspace(1e-12, 800.0, 4000),
            -np.geomspace(1e-12, 800.0, 4000),
        ]
    )


def _ulp_error(got, want):
    return np.abs(got - want) / np.spacing(np.maximum(np.abs(want), np.finfo(float).tiny))


def _sigmoid_reference(x):
    # 1 / (1 + e^-x) without overflow: through exp of -|x|, then the two branches.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@pytest.mark.parametrize(
    ("kind", "reference"),
    [pytest.param(0, np.tanh, id="tanh"), pytest.param(1, _sigmoid_reference, id="sigmoid")],
)
def test_within_a_few_ulp_of_libm(kind, reference):
    x = _inputs()
    out = np.empty_like(x)
    _apply(kind, x, out)
    with np.errstate(over="ignore"):
        want = reference(x)
    if kind == 1:  # below -87 the sigmoid stays at sigmoid(-87): an absolute bound
        deep = x < -87.0
        assert np.all(np.abs(out[deep] - want[deep]) < 1.7e-38)
        x, out, want = x[~deep], out[~deep], want[~deep]
    err = _ulp_error(out, want)
    worst = int(np.argmax(err))
    assert err.max() <= MAX_ULP, f"x = {x[worst]!r}: {out[worst]!r} vs {want[worst]!r}"
    assert np.all(np.signbit(out[x == 0]) == np.signbit(want[x == 0])) or kind == 1


@pytest.mark.parametrize("kind", [0, 1], ids=["tanh", "sigmoid"])
def test_nan_propagates(kind):
    out = np.empty(1)
    _apply(kind, np.array([np.nan]), out)
    assert np.isnan(out[0])
