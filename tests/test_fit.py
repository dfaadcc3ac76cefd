"""Exponent fits and verdicts on synthetic cells with known exponents (bench.fit)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from bpttbench.bench import fit
from fakes import LOWER, make_registry
from scipy import stats

REG = make_registry()


def cells(
    axis: str,
    sizes,
    time,
    memory=None,
    fixed=None,
    algorithm: str = "fake_rnn",
    created: str = "2024-01-01T00:00:00+00:00",
) -> pd.DataFrame:
    """Cells of one sweep of a fake algorithm, with the given time and memory values."""
    spec = REG[algorithm]
    base = {"T": 64, "n": 256, "B": 1, "m": 1, "p": 1}
    if spec.family == "mlp":
        base = {"depth": 4, "width": 128, "B": 16}
    base.update(fixed or {})
    rows = []
    for i, s in enumerate(sizes):
        size = {**base, **{v: s for v in spec.axis_vars[axis]}}
        rows.append(
            {
                "run_id": 1, "algorithm": algorithm, "axis": axis, "size": s, **size,
                "dtype": "float64", "numba_threads": 1, "blas_threads": 1, "machine": "test",
                "status": "ok", "median_s": time[i],
                "peak_bytes": memory[i] if memory is not None else 1000,
                "flops": spec.flop_count(size), "created": created,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def result(results, axis, metric, algorithm="fake_rnn"):
    (r,) = [r for r in results if (r.algorithm, r.axis, r.metric) == (algorithm, axis, metric)]
    return r


# A decade in T where every T is in the window (all FLOP terms are linear in T).
T_SIZES = [16, 23, 32, 45, 64, 91, 128, 181]


def test_exact_power_law_passes_with_a_zero_width_interval():
    t = [1e-6 * s for s in T_SIZES]
    r = result(fit.fit_table(cells("T", T_SIZES, t), REG), "T", "time")
    assert r.slope == pytest.approx(1.0)
    assert r.ci_low == pytest.approx(1.0) and r.ci_high == pytest.approx(1.0)
    assert r.verdict == "PASS"
    assert r.window == T_SIZES and r.n_points == len(T_SIZES)


def test_noisy_power_law_passes():
    rng = np.random.default_rng(7)
    t = [1e-6 * s * math.exp(rng.normal(0, 0.03)) for s in T_SIZES]
    r = result(fit.fit_table(cells("T", T_SIZES, t), REG), "T", "time")
    assert r.verdict == "PASS"
    assert r.ci_low < r.slope < r.ci_high
    assert 1 - 0.15 <= r.ci_low and r.ci_high <= 1 + 0.15


def test_wrong_exponent_fails():
    t = [1e-9 * s**1.5 for s in T_SIZES]  # theory says 1
    r = result(fit.fit_table(cells("T", T_SIZES, t), REG), "T", "time")
    assert r.slope == pytest.approx(1.5)
    assert r.verdict == "FAIL"


def test_right_slope_with_a_wide_interval_is_inconclusive():
    # Slope 1 on average, but +-40% alternating scatter: the interval is wider than +-0.15.
    t = [1e-6 * s * (1.4 if i % 2 else 1 / 1.4) for i, s in enumerate(T_SIZES)]
    r = result(fit.fit_table(cells("T", T_SIZES, t), REG), "T", "time")
    assert abs(r.slope - 1) <= 0.15
    assert r.ci_low < 1 - 0.15 or r.ci_high > 1 + 0.15
    assert r.verdict == "INCONCLUSIVE"


def test_flat_memory_has_slope_zero_and_passes():
    # Exponent 0 (memory independent of T, as for RTRL): log of a flat line is flat.
    t = [1e-6 * s for s in T_SIZES]
    mem = [524_288 + (16 if i % 3 == 0 else 0) for i in range(len(T_SIZES))]  # a few bytes jitter
    df = cells("T", T_SIZES, t, memory=mem, algorithm="fake_online")
    r = result(fit.fit_table(df, REG), "T", "memory", "fake_online")
    assert r.theory == 0
    assert r.slope == pytest.approx(0.0, abs=1e-3)
    assert r.verdict == "PASS"
    assert r.window == T_SIZES


def test_verdict_boundaries():
    assert fit.verdict(0.9, 1.0, 1.1, 1.0, 0.15) == "PASS"
    assert fit.verdict(0.85, 1.0, 1.15, 1.0, 0.15) == "PASS"  # the edges are inside
    assert fit.verdict(0.8, 1.0, 1.2, 1.0, 0.15) == "INCONCLUSIVE"
    assert fit.verdict(1.1, 1.2, 1.3, 1.0, 0.15) == "FAIL"
    assert fit.verdict(-0.05, 0.0, 0.05, 0.0, 0.1) == "PASS"


def test_interval_matches_scipy_linregress():
    rng = np.random.default_rng(3)
    x = np.log(T_SIZES)
    y = 2.0 * x + rng.normal(0, 0.1, len(x))
    slope, intercept, lo, hi = fit.ols_slope(x, y)
    ref = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(x) - 2) * ref.stderr
    assert slope == pytest.approx(ref.slope)
    assert intercept == pytest.approx(ref.intercept)
    assert (lo, hi) == pytest.approx((ref.slope - half, ref.slope + half))


def test_window_is_where_the_leading_term_carries_90_percent():
    # fake_rnn FLOPs: 2 T n^2 B + LOWER T n B, so the n^2 share is 2n / (2n + LOWER),
    # at least 0.9 from n = 9 LOWER / 2 = 180 on.
    sizes = [32, 64, 128, 179, 181, 256, 512, 1024, 2048]
    spec = REG["fake_rnn"]
    inside = fit.fit_window(
        spec, "n", "time", [{"T": 8, "n": s, "B": 1, "m": 1, "p": 1} for s in sizes], 8, 2.0
    )
    assert [s for s, w in zip(sizes, inside, strict=True) if w] == [
        s for s in sizes if s >= 9 * LOWER / 2
    ]
    t = [1e-9 * (2 * s * s + LOWER * s) for s in sizes]
    r = result(fit.fit_table(cells("n", sizes, t), REG), "n", "time")
    assert r.window == [181, 256, 512, 1024, 2048]
    assert r.sizes == sizes
    # In the window the lower-order term still bends the slope a little, within the margin.
    assert r.verdict == "PASS"


def test_too_few_points_in_the_window_gives_no_fit():
    sizes = [16, 32, 64, 128, 256, 512]  # only 256 and 512 are >= 180
    t = [1e-9 * s * s for s in sizes]
    r = result(fit.fit_table(cells("n", sizes, t), REG), "n", "time")
    assert math.isnan(r.slope)
    assert r.verdict == "INCONCLUSIVE"
    assert r.n_points == 2 and r.window == [256, 512]
    assert r.note.startswith("no fit")


def test_local_slopes_of_a_power_law_are_its_exponent():
    sizes = [10, 20, 40, 80]
    pairs = fit.local_slopes(sizes, [s**3 for s in sizes])
    assert [m for m, _ in pairs] == pytest.approx([math.sqrt(200), math.sqrt(800), math.sqrt(3200)])
    assert [s for _, s in pairs] == pytest.approx([3.0, 3.0, 3.0])


def test_flops_metric_is_a_control_on_the_exact_count():
    t = [1e-6 * s for s in T_SIZES]
    r = result(fit.fit_table(cells("T", T_SIZES, t), REG), "T", "flops")
    assert r.slope == pytest.approx(1.0)
    assert r.verdict == "PASS"


def test_the_sweep_with_most_sizes_is_fitted():
    big = cells("T", T_SIZES, [1e-6 * s for s in T_SIZES], fixed={"n": 256})
    small = cells("T", T_SIZES[:4], [1e-9 * s**3 for s in T_SIZES[:4]], fixed={"n": 512},
                  created="2030-01-01T00:00:00+00:00")  # fmt: skip
    r = result(fit.fit_table(pd.concat([small, big]), REG), "T", "time")
    assert r.fixed["n"] == 256
    assert r.verdict == "PASS"


def test_skipped_and_failed_cells_are_ignored():
    df = cells("T", T_SIZES, [1e-6 * s for s in T_SIZES])
    df.loc[0, "status"] = "skipped"
    df.loc[0, "median_s"] = float("nan")
    r = result(fit.fit_table(df, REG), "T", "time")
    assert r.window == T_SIZES[1:]


def test_results_serialise_to_json_with_the_documented_keys():
    sizes = [16, 32, 64, 128, 256, 512]
    df = pd.concat(
        [
            cells("T", T_SIZES, [1e-6 * s for s in T_SIZES]),
            cells("n", sizes, [1e-9 * s * s for s in sizes]),  # no fit: NaN slope
        ]
    )
    out = json.loads(json.dumps([r.as_dict() for r in fit.fit_table(df, REG)]))
    keys = {"algorithm", "axis", "metric", "slope", "ci_low", "ci_high", "theory", "verdict",
            "window"}  # fmt: skip
    assert all(keys <= set(d) for d in out)
    assert {d["verdict"] for d in out} <= {"PASS", "INCONCLUSIVE", "FAIL"}
    assert any(d["slope"] is None for d in out)
    assert fit.format_table(fit.fit_table(df, REG)).count("\n") >= 3


def test_mlp_axes():
    depths = [2, 3, 4, 6, 8, 11, 16, 23, 32]
    t = [1e-5 * d for d in depths]
    mem = [1000 * d for d in depths]
    df = cells("depth", depths, t, memory=mem, algorithm="fake_mlp")
    res = fit.fit_table(df, REG)
    assert result(res, "depth", "time", "fake_mlp").verdict == "PASS"
    assert result(res, "depth", "memory", "fake_mlp").slope == pytest.approx(1.0)


def test_size_columns_are_the_union_of_the_specs_sizes_in_registry_order():
    import bpttbench

    assert fit.size_columns(REG) == ("T", "n", "B", "m", "p", "depth", "width")
    assert fit.size_columns(bpttbench.ALGORITHMS) == (
        "T", "n", "B", "m", "p", "cell", "k1", "k2", "depth", "width", "c", "density",
    )  # fmt: skip


def test_a_fit_records_its_sweep_and_the_cells_it_used():
    sizes = [32, 64, 128, 179, 181, 256, 512, 1024, 2048]
    t = [1e-9 * (2 * s * s + LOWER * s) for s in sizes]
    other = cells("n", sizes, [2 * x for x in t], fixed={"T": 8})  # another sweep, not fitted
    df = pd.concat([cells("n", sizes, t), other.iloc[:3]])
    r = result(fit.fit_table(df, REG), "n", "time")
    assert (r.machine, r.numba_threads, r.blas_threads) == ("test", 1, 1)
    assert [c["n"] for c in r.cells] == r.window == [181, 256, 512, 1024, 2048]
    assert all(c["T"] == 64 and c["B"] == 1 for c in r.cells)
    rows = fit.sweep_rows(df, r)  # what the report charts: every size of that sweep
    assert rows["size"].tolist() == sizes and set(rows["T"]) == {64}
    df["T"] = df["T"].astype(float)  # as a store with NaN in the column reads it
    assert fit.sweep_rows(df, r)["size"].tolist() == sizes


def test_two_points_give_a_slope_without_an_interval():
    slope, intercept, lo, hi = fit.ols_slope([0.0, 1.0], [1.0, 3.0])
    assert (slope, intercept) == (2.0, 1.0)
    assert math.isnan(lo) and math.isnan(hi)


def test_headline_counts_measured_exponents_apart_from_the_flop_model():
    t = [1e-6 * s for s in T_SIZES]
    mem = [1000 * s for s in T_SIZES]
    wrong = [1e-9 * s**1.5 for s in T_SIZES]  # fake_online's time: theory 1, so FAIL
    df = pd.concat(
        [cells("T", T_SIZES, t, memory=mem), cells("T", T_SIZES, wrong, algorithm="fake_online")]
    )
    res = fit.fit_table(df, REG)
    assert fit.verdict_counts(res) == {"PASS": 3, "INCONCLUSIVE": 0, "FAIL": 1, "total": 4}
    assert fit.verdict_counts(res, measured=False) == {
        "PASS": 2, "INCONCLUSIVE": 0, "FAIL": 0, "total": 2,
    }  # fmt: skip
    assert fit.headline(res) == (
        "3 of 4 measured time and memory exponents PASS (0 INCONCLUSIVE, 1 FAIL); "
        "model check, FLOP counts: 2 of 2 PASS"
    )
    measured, checks = fit.format_table(res).split("model check")
    assert " flops " not in measured and checks.count(" flops ") == 2


# --- time along B: the time model's weight reads (bench.fit.time_terms) ------------------


def real_cells(name, axis, sizes, time, fixed, run_id=1):
    """Cells of a registered algorithm's sweep, with the given times (memory unused)."""
    import bpttbench

    spec = bpttbench.ALGORITHMS[name]
    rows = []
    for s, t in zip(sizes, time, strict=True):
        size = {**spec.sizes, **fixed, **{v: s for v in spec.axis_vars[axis]}}
        rows.append(
            {
                "run_id": run_id, "algorithm": name, "axis": axis, "size": s, **size,
                "dtype": "float64", "numba_threads": 1, "blas_threads": 1, "machine": "test",
                "status": "ok", "median_s": t, "peak_bytes": 1000, "flops": spec.flop_count(size),
                "created": "2024-01-01T00:00:00+00:00",
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


B_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def B_window(name, fixed, balance):
    import bpttbench

    spec = bpttbench.ALGORITHMS[name]
    sizes = [{**spec.sizes, **fixed, "B": b} for b in B_SIZES]
    inside = fit.fit_window(spec, "B", "time", sizes, 8, 1.0, balance=balance)
    return [b for b, i in zip(B_SIZES, inside, strict=True) if i]


def test_time_along_B_leaves_out_the_batches_whose_weight_reads_lead():
    # BPTT: 6 n^2 FLOPs a row and step against 2 n^2 reads at 2 x 2.8 FLOPs each: the
    # rows carry 90% from B = 9 x 2.8 x 2 / 3 ~ 17
    assert B_window("bptt", {"T": 64, "n": 256}, 2.8) == B_SIZES[5:]
    # the FLOP model alone (no reads) would fit every batch
    assert B_window("bptt", {"T": 64, "n": 256}, 0.0) == B_SIZES
    # RTRL's product has n P rows per sequence: its one read of W_hh a step never leads
    assert B_window("rtrl", {"T": 4, "n": 64}, 2.8) == B_SIZES
    # a slower GEMV moves the window up
    assert (
        B_window("uoro", {"T": 16, "n": 128}, 10.0)[0]
        > B_window("uoro", {"T": 16, "n": 128}, 2.8)[0]
    )


def test_time_along_B_can_still_fail_where_the_rows_lead():
    sizes = [8, 16, 32, 64, 128, 256, 512, 1024]
    fixed = {"T": 16, "n": 128}
    # a per-call term the size of the weight reads, and B rows: PASS
    linear = [2e-4 + 1e-4 * b for b in sizes]
    r = result(fit.fit_table(real_cells("uoro", "B", sizes, linear, fixed)), "B", "time", "uoro")
    assert r.verdict == "PASS" and min(r.window) <= 16
    # a kernel that really grows like B^0.8 where the rows lead: FAIL, not fitted away
    sub = [1e-4 * b**0.8 for b in sizes]
    r = result(fit.fit_table(real_cells("uoro", "B", sizes, sub, fixed)), "B", "time", "uoro")
    assert r.verdict == "FAIL" and r.slope == pytest.approx(0.8)


def test_the_runs_measured_peaks_set_the_balance():
    sizes = [8, 16, 32, 64, 128, 256, 512, 1024]
    df = real_cells("bptt", "B", sizes, [1e-4 * b for b in sizes], {"T": 64, "n": 256})
    runs = pd.DataFrame({"run_id": [1], "gemm_gflops": [60.0], "gemv_gflops": [20.0]})
    assert fit.sweep_balance(fit.with_peaks(df, runs)) == pytest.approx(3.0)
    assert fit.sweep_balance(df) == fit.DEFAULT_BALANCE
    slow = runs.assign(gemv_gflops=[0.6])  # GEMM 100x the GEMV: reads lead up to B ~ 600
    (r,) = [x for x in fit.fit_table(df, None, slow) if (x.axis, x.metric) == ("B", "time")]
    (q,) = [x for x in fit.fit_table(df, None, runs) if (x.axis, x.metric) == ("B", "time")]
    assert min(r.window) > min(q.window) and r.n_points < q.n_points
