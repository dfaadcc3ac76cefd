"""The budget table of the online algorithms: which algorithms, and how far n goes.

``budget_n`` on exact power laws (the answer in closed form), and the choice of
algorithms on the fake registry of ``tests/fakes.py``. The table and the chart
in a built report are checked in ``tests/test_report.py``.
"""

from __future__ import annotations

import math

import pytest
from bpttbench.bench.online_budget import budget_n, online_algorithms
from bpttbench.bench.view import View
from fakes import make_registry

SIZES = [64, 128, 256, 512, 1024]


def _law(c, k):
    return [c * n**k for n in SIZES]


def test_budget_n_interpolates_on_the_fitted_power_law():
    # t = 1e-12 n^3: 1 ms at n = 1e3 exactly, between the measured 512 and 1024
    n, bound = budget_n(SIZES, _law(1e-12, 3), 3.0, 1e-3)
    assert bound == "interpolated" and n == pytest.approx(1000.0, rel=1e-9)


def test_budget_n_uses_the_fitted_slope_not_the_neighbours():
    # the last point within budget and the fitted slope decide: with slope 2 from
    # (512, 1.342e-4), n = 512 sqrt(1e-3 / 1.342e-4) ~ 1397, clipped to 1024
    values = _law(1e-12, 3)
    n, _ = budget_n(SIZES, values, 2.0, 1e-3)
    assert n == 1024
    n, _ = budget_n(SIZES, values, 6.0, 1e-3)
    assert n == pytest.approx(512 * (1e-3 / values[3]) ** (1 / 6), rel=1e-9)


def test_budget_n_falls_back_to_the_local_slope_without_a_fit():
    n, bound = budget_n(SIZES, _law(1e-12, 3), math.nan, 1e-3)
    assert bound == "interpolated" and n == pytest.approx(1000.0, rel=1e-9)


def test_budget_n_never_extrapolates():
    assert budget_n(SIZES, _law(1e-15, 3), 3.0, 1e-3) == (1024, "at_least")
    assert budget_n(SIZES, _law(1e-6, 3), 3.0, 1e-3) == (64, "below")
    # unsorted input, and a point at exactly the budget counts as within it
    values = _law(1e-12, 3)
    n, bound = budget_n(SIZES[::-1], values[::-1], 3.0, values[2])
    assert bound == "interpolated" and n == pytest.approx(256.0)


def test_online_algorithms_are_those_with_memory_flat_in_T():
    assert online_algorithms(View.of(make_registry())) == ["fake_online"]
    import bpttbench

    names = online_algorithms(View.of(bpttbench.ALGORITHMS))
    assert {"rtrl", "tbptt", "uoro", "kf_rtrl", "r_kf", "snap1", "snap2", "rflo"} <= set(names)
    assert "bptt" not in names and "backprop" not in names
