"""The budget table of the online algorithms: which algorithms, and how far n goes.

``budget_n`` on exact power laws (the answer in closed form), and the choice of
algorithms on the fake registry of ``tests/fakes.py``. The table and the chart
in a built report are checked in ``tests/test_report.py``.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from bpttbench import ALGORITHMS
from bpttbench.bench.fit import fit_window
from bpttbench.bench.grid import geometric
from bpttbench.bench.online_budget import budget_n, budget_rows, online_algorithms
from bpttbench.bench.slices import pick_sweep
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


class _NView:
    """The two things pick_sweep asks a View: the size variables, and what axis n moves."""

    sizes = ("T", "B", "n", "m", "p")

    def axis_vars(self, alg, axis):
        return ("n",)


def _cells(sizes, T):
    return [
        {"algorithm": "uoro", "axis": "n", "size": n, "T": T, "B": 1, "n": n, "m": 1, "p": 1,
         "created": "2026"}
        for n in sizes
    ]  # fmt: skip


def test_the_budget_reads_the_sweep_that_reaches_furthest_not_the_densest():
    """The n^2 rules fit time inside the cache on a dense sweep (12 sizes up to 728) while
    the budget must read the wide one (11 up to 2048), which crosses 1 ms a step."""
    wide = [64, 88, 128, 184, 256, 360, 512, 728, 1024, 1448, 2048]
    dense = [184, 208, 240, 264, 304, 344, 392, 440, 504, 568, 640, 728]
    ok = pd.DataFrame(_cells(wide, 16) + _cells(dense, 256))
    assert pick_sweep(ok, _NView(), "uoro", "n", widest=True)["size"].tolist() == wide
    assert pick_sweep(ok, _NView(), "uoro", "n")["size"].tolist() == dense


@pytest.mark.parametrize("name", ["uoro", "snap1", "rflo"])
def test_the_n2_rules_time_fit_takes_the_in_cache_sweep(name):
    """The full preset's in-cache n sweep has more sizes in its time window than the other
    n sweeps (the fit takes the sweep with the most) and stays within the last-level cache;
    the wide one reaches furthest with the most sizes (the budget table reads it)."""
    spec = ALGORITHMS[name]
    sweeps = [s for s in spec.presets["full"] if s.axis == "n"]
    counts = []
    for s in sweeps:
        values = geometric(*s.geometric, s.multiple)
        sizes = [{**spec.sizes, **s.fixed, "n": v} for v in values]
        window = sum(fit_window(spec, "n", "time", sizes, 8, 2.0))
        counts.append((window, max(values), len(values)))
    cache = max(counts, key=lambda c: c[0])
    wide = max(counts, key=lambda c: (c[1], c[2]))
    assert all(c[0] < cache[0] for c in counts if c is not cache)
    assert cache[1] <= 728 < wide[1]
    assert wide[2] > max((c[2] for c in counts if c is not wide and c[1] == wide[1]), default=0)


def test_a_time_budget_beyond_the_fitted_sweep_is_read_off_the_wide_one():
    """Where the sweep the fit takes (here: the one with the most sizes) never reaches the
    budget, n comes from the sweep that reaches furthest, not 'at least' its largest n."""
    wide = [64, 128, 256, 512, 1024, 2048]
    dense = [184, 208, 240, 264, 304, 344, 392, 440, 504, 568, 640, 728]
    rows = []
    for sizes, T in ((wide, 16), (dense, 256)):
        for cell in _cells(sizes, T):
            n = cell["n"]
            step = 4e-10 * n**2  # 1 ms a step at n = 1581
            rows.append({**cell, "algorithm": "fake_online", "median_s": step * T,
                         "peak_bytes": 8.0 * n**2})  # fmt: skip
    ok = pd.DataFrame(rows)
    (row,) = budget_rows(ok, {}, View.of(make_registry()))
    assert row["time"]["bound"] == "interpolated"
    assert row["time"]["n"] == pytest.approx(math.sqrt(1e-3 / 4e-10))
    assert row["time"]["measured"] == [64, 2048]
    assert row["memory"]["measured"] == [184, 728], "memory keeps the fitted sweep"
