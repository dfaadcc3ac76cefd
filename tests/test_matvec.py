"""The hand-written products of kernels/_matvec.py against NumPy, at every remainder.

matvec and matvec2 take four rows at a time and then the rows left over; dot sums
over vector lanes. Each is checked for row counts from 1 (no block of four at all)
through every remainder and past 128, and k other than n, to within rounding of each
row's absolute sum (they reorder the sums, as BLAS does).
"""

from __future__ import annotations

import numpy as np
import pytest
from bpttbench import _matvec

SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 130]


def _close(got, W, x):
    bound = 8 * np.finfo(float).eps * (np.abs(W) @ np.abs(x)) + 1e-300
    assert np.all(np.abs(got - W @ x) <= bound)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", [1, 3, 70])
def test_matvec_and_matvec2_equal_numpys_product(rng, n, k):
    W = rng.standard_normal((n, k))
    x, y = rng.standard_normal(k), rng.standard_normal(k)
    out, out_x, out_y = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    _matvec.matvec(W, x, out)
    _close(out, W, x)
    _matvec.matvec2(W, x, y, out_x, out_y)
    _close(out_x, W, x)
    _close(out_y, W, y)


@pytest.mark.parametrize("k", [0, 1, 5, 64, 131])
def test_dot_equals_numpys(rng, k):
    x, y = rng.standard_normal(k), rng.standard_normal(k)
    got = _matvec.dot(x, y)
    assert abs(got - x @ y) <= 8 * np.finfo(float).eps * (np.abs(x) @ np.abs(y))
