"""The report's cell comparison (bench/cells_compare.py) from a synthetic store.

The store holds BPTT and RTRL sweeps of the Elman, GRU and LSTM cells whose
times are the registry's exact FLOP counts over a rate per cell, so every
ratio and slope the report gives is known in closed form: the GRU runs at
1/1.25 and the LSTM at 1/1.5 of the Elman cell's FLOP rate, so their measured
time ratios are 1.25 and 1.5 times the FLOP models' ratios.
"""

from __future__ import annotations

import json
import math

import bpttbench
import pytest

RATE = 4e9  # the Elman cell's FLOP/s
SLOWER = {"elman": 1.0, "gru": 1.25, "lstm": 1.5}  # FLOP rate of the Elman cell / the cell's
GEMM = 40.0
SWEEPS = [  # (algorithm, axis, fixed sizes, values, cells)
    ("bptt", "T", {"n": 32, "B": 4}, [32 * 2**i for i in range(8)], ("elman", "gru", "lstm")),
    ("bptt", "n", {"T": 8, "B": 4}, [64, 96, 128, 192, 256, 384, 512], ("elman", "gru", "lstm")),
    ("rtrl", "n", {"T": 2, "B": 2}, [48, 56, 64, 80, 104, 136], ("elman", "gru", "lstm")),
    ("bptt", "T", {"n": 48, "B": 4}, [64, 128, 256, 512], ("gru",)),  # no Elman peer: no ratio
]


def _size(alg, axis, fixed, v, cell):
    spec = bpttbench.ALGORITHMS[alg]
    size = {**spec.sizes, **fixed, "cell": cell}
    for var in spec.axis_vars[axis]:
        size[var] = v
    return size


def build_store(path, sweeps=SWEEPS):
    from bpttbench.bench import store

    conn = store.connect(path)
    run_id = store.begin_run(
        conn,
        {"started": "2024-01-01T00:00:00", "finished": "2024-01-01T00:10:00",
         "machine": "testbox", "cpu": "Synthetic CPU", "numba_threads": 1, "blas_threads": 1,
         "python": "3.11", "numba": "0.60", "numpy": "2.0", "scipy": "1.14",
         "commit": "0123456789", "preset": "quick", "gemm_gflops": GEMM, "gemv_gflops": 6.0},
    )  # fmt: skip
    minute = 0
    for alg, axis, fixed, values, cells in sweeps:
        spec = bpttbench.ALGORITHMS[alg]
        for cell in cells:
            for v in values:
                size = _size(alg, axis, fixed, v, cell)
                flops = spec.flop_count(size)
                median = flops / RATE * SLOWER[cell]
                model = spec.memory_bytes(size, 8)
                store.write_cell(
                    conn,
                    {"cell_key": store.cell_key(alg, axis, size, "float64", 1, 1, "testbox"),
                     "run_id": run_id, "algorithm": alg, "axis": axis, "size": v, **size,
                     "dtype": "float64", "numba_threads": 1, "blas_threads": 1,
                     "machine": "testbox", "status": "ok",
                     "created": f"2024-01-01T00:{minute:02d}:00", "compile_s": 0.1,
                     "median_s": median, "q25_s": median, "q75_s": median, "iqr_s": 0.0,
                     "cv": 0.0, "rounds": 10, "peak_bytes": int(model * 1.02),
                     "model_bytes": model, "flops": flops, "gflops": flops / median / 1e9,
                     "efficiency": flops / median / 1e9 / GEMM},
                )  # fmt: skip
                minute = (minute + 1) % 60
    conn.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from bpttbench.bench import report

    root = tmp_path_factory.mktemp("cells")
    db = root / "cells.sqlite"
    build_store(db)
    rep = report.make_report(db, [], root / "out", echo=lambda _line: None)
    return {"db": db, "report": rep, "out": root / "out"}


def _ctx(db):
    from bpttbench.bench.slices import load_store
    from bpttbench.bench.view import Context, View

    view = View.of(bpttbench.ALGORITHMS)
    return Context(view, load_store(db, view))


def test_ratios_are_the_measured_times_over_the_elman_ones_beside_the_flop_models(built):
    from bpttbench.bench.cells_compare import cell_ratios

    ctx = _ctx(built["db"])
    ratios = cell_ratios(ctx.store.ok, ctx.view)
    # 8 + 7 points of BPTT and 6 of RTRL per gated cell; the GRU's n = 48 sweep has no peer
    counts = ratios.groupby(["algorithm", "cell"]).size().to_dict()
    assert counts == {("bptt", "gru"): 15, ("bptt", "lstm"): 15,
                      ("rtrl", "gru"): 6, ("rtrl", "lstm"): 6}  # fmt: skip
    assert not ((ratios["algorithm"] == "bptt") & (ratios["n"] == 48)).any()
    for r in ratios.to_dict("records"):
        spec = bpttbench.ALGORITHMS[r["algorithm"]]
        size = {v: r[v] for v in ("T", "n", "B", "m", "p")}
        predicted = spec.flop_count({**size, "cell": r["cell"]}) / spec.flop_count(
            {**size, "cell": "elman"}
        )
        assert r["flop_ratio"] == pytest.approx(predicted, rel=1e-12)
        assert r["time_ratio"] == pytest.approx(SLOWER[r["cell"]] * predicted, rel=1e-9)
        assert r["memory_ratio"] == pytest.approx(r["model_memory_ratio"], rel=1e-3)
    # the gated cells cost more than the Elman cell by the models: 3 and 4 gate blocks
    bptt = ratios[(ratios["algorithm"] == "bptt") & (ratios["n"] == 512)]
    assert sorted(bptt["flop_ratio"].round(1)) == [3.0, 4.0]


def test_each_cell_is_fitted_apart_and_the_elman_fits_keep_their_keys(built):
    ctx = _ctx(built["db"])
    store = ctx.store
    assert ("bptt", "T", "time") in store.fits and store.fits["bptt", "T", "time"].cell == "elman"
    for cell in ("gru", "lstm"):
        for axis in ("T", "n"):
            f = store.cell_fits["bptt", cell, axis, "time"]
            elman = store.fits["bptt", axis, "time"]
            # the times are FLOPs over a constant rate: the slope is the FLOP count's
            assert f.slope == pytest.approx(store.cell_fits["bptt", cell, axis, "flops"].slope)
            assert f.fixed["cell"] == cell and f.label == f"bptt[{cell}]"
            assert abs(f.slope - elman.slope) < 0.1
        assert store.cell_fits["rtrl", cell, "n", "time"].theory == 4
    # the n = 48 GRU T sweep (4 points) loses to the one with 8: one fit per cell and axis
    assert store.cell_fits["bptt", "gru", "T", "time"].fixed["n"] == 32


def test_the_report_has_the_cell_section_and_summary(built):
    md = (built["out"] / "report.md").read_text()
    assert "## Cells" in md and "charts/cells.png" in md
    assert (built["out"] / "charts" / "cells.png").exists()
    section = md.split("## Cells", 1)[1].split("\n## ", 1)[0]
    assert "| BPTT (GRU) | T=32, n=32, B=4, m=p=1 |" in section
    assert "| RTRL (LSTM) | n | time |" in section  # the exponent table, beside the Elman one
    summary = json.loads((built["out"] / "summary.json").read_text())
    cells = summary["cells"]
    for alg in ("bptt", "rtrl"):
        for cell in ("gru", "lstm"):
            e = cells["ratios"][alg][cell]
            measured, predicted = e["time_ratio"]["median"], e["flop_ratio"]["median"]
            assert measured == pytest.approx(SLOWER[cell] * predicted, rel=1e-4)
    lstm_n = cells["exponents"]["rtrl"]["lstm"]["n"]["time"]
    assert lstm_n["theory"] == 4 and math.isfinite(lstm_n["slope"])
    assert lstm_n["elman_slope"] == pytest.approx(summary["slopes"]["rtrl"]["n"]["time"]["slope"])
    # the gated cells' slopes and efficiency sit under their own names
    assert "bptt[gru]" in summary["slopes"] and "bptt" in summary["slopes"]
    eff = summary["efficiency"]["algorithms"]
    gemm_share = RATE / 1e9 / GEMM
    assert eff["bptt"]["max"] == pytest.approx(gemm_share, rel=1e-4)
    assert eff["bptt[lstm]"]["max"] == pytest.approx(gemm_share / SLOWER["lstm"], rel=1e-4)


def test_the_efficiency_chart_draws_the_gated_cells(built):
    md = (built["out"] / "report.md").read_text()
    caption = md.split("charts/efficiency.png", 1)[1].split("\n\n", 2)[1]
    assert "BPTT (GRU)" in caption and "RTRL (LSTM)" in caption


def test_a_store_without_gated_cells_has_no_cell_section(tmp_path):
    from bpttbench.bench import report

    db = tmp_path / "elman.sqlite"
    build_store(db, [(a, x, f, v, ("elman",)) for a, x, f, v, _ in SWEEPS[:3]])
    report.make_report(db, [], tmp_path / "out", echo=lambda _line: None)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Cells" not in md and "Gated cells" not in md
    assert "cells" not in json.loads((tmp_path / "out" / "summary.json").read_text())
