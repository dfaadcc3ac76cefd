"""The report's table of issue 14's targets (bench.report_targets) and the BLAS kernels notes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bpttbench.bench import report_targets as rt
from bpttbench.bench import store
from bpttbench.bench.peers import load_peers
from bpttbench.bench.slices import kernels_notes

COMMITTED = Path(__file__).resolve().parents[1] / "reports" / "reference" / "reference.sqlite"


def cell(alg, threads, median, run_id, gflops=None, **size):
    return {"algorithm": alg, "axis": "n", "status": "ok", "dtype": "float64", "median_s": median,
            "numba_threads": threads, "blas_threads": threads, "machine": "m", "run_id": run_id,
            "gflops": gflops, "flops": 1.0, "created": f"2026-01-0{threads}", "cell": "elman",
            "size": size.get("n"), **size}  # fmt: skip


def fake_store():
    cells = pd.DataFrame(
        [
            cell("rtrl", 1, 2.0, 1, gflops=40.0, T=2, n=256, B=2),
            cell("rtrl", 2, 1.0, 2, gflops=80.0, T=2, n=256, B=2),
            cell("rtrl", 2, 1.0, 2, gflops=50.0, T=2, n=64, B=2),  # n < 128: not counted
            cell("bptt", 1, 1.8, 1, T=64, n=256, B=64),
            cell("bptt", 2, 1.0, 2, T=64, n=256, B=64),
            cell("bptt", 2, 0.1, 2, T=64, n=256, B=8),  # B < 32: not counted
            cell("bptt", 1, 0.25e-3, 1, T=1000, n=16, B=1),
            cell("bptt", 1, 2.3e-3, 1, T=1000, n=64, B=1),
        ]
    )
    runs = pd.DataFrame(
        {"run_id": [1, 2], "machine": ["m", "m"], "numba_threads": [1, 1],
         "blas_threads": [1, 2], "gemm_gflops": [50.0, 100.0]}
    )  # fmt: skip
    peers = pd.DataFrame(
        [
            {"tool": t, "algorithm": "bptt", "T": 100, "B": 32, "n": n, "dtype": d,
             "status": "ok", "ratio_vs_bpttbench": r, "numba_threads": 1, "cpus": 1,
             "cell": "elman", "device": "cpu", "created": "x"}
            for t, d, n, r in [("jax", "float64", 64, 1.5), ("jax", "float64", 512, 1.2),
                               ("pytorch", "float64", 64, 3.0), ("jax", "float32", 64, 0.9)]
        ]
    )  # fmt: skip
    return cells, runs, peers


def by_target(found):
    return {r.target.split(":")[0]: r for r in found}  # the peers' rows: see the tests


def test_the_targets_are_computed_from_the_cells_runs_and_peers():
    found = by_target(rt.rows(*fake_store()))
    rtrl = found["Exact RTRL, n >= 128, 2 threads"]
    assert rtrl.ratio == pytest.approx(0.80 / 0.70) and rtrl.met == "yes"  # 80 of the 2-thread 100
    assert "80%" in rtrl.measured
    amdahl = found["Exact RTRL, B >= 16 or n >= 128, 16 cores"]  # 2x on 2: no serial share
    assert amdahl.ratio == pytest.approx(1.6) and "prediction" in amdahl.note
    assert amdahl.met == "predicted only"  # a model's figure is neither met nor missed
    bptt = found["BPTT, B >= 32, n >= 256"]
    assert bptt.ratio == pytest.approx(1.8 / 1.7) and "1 cells" in bptt.measured
    assert found["Truncated BPTT, B >= 32, n >= 256"].measured == rt.NOT_MEASURED
    assert found["BPTT, B = 1, T = 1000, n = 16, 1 thread"].ratio == pytest.approx(2.0 / 1.4)
    assert found["BPTT, B = 1, T = 1000, n = 64, 1 thread"].met == "no"
    assert found["BPTT, B = 1, T = 1000, n = 32, 1 thread"].measured == rt.NOT_MEASURED
    jax = [
        r
        for r in rt.rows(*fake_store())
        if r.target.endswith("float64: >= 1.2x JAX lax.scan + grad")
    ]
    assert jax[0].ratio == pytest.approx(1.0) and "n = 512" in jax[0].measured  # the worst
    md = rt.table(rt.rows(*fake_store()))
    assert md.count("\n") == 2 + 12 - 1 and "no GPU rows in this store" in md


def test_an_empty_store_gives_every_row_not_measured():
    found = rt.rows(None, pd.DataFrame(), pd.DataFrame())
    assert len(found) == 12
    assert all(r.measured == rt.NOT_MEASURED for r in found[:-1])
    assert "no GPU" in found[-1].measured and found[-1].met == "-"
    assert "0 met, 0 missed, 11 not measured" in rt.caption(found)


def test_the_committed_store_renders_its_targets():
    cells, runs = store.load_cells(COMMITTED), store.load_runs(COMMITTED)
    found = rt.rows(cells, runs, load_peers(COMMITTED))
    md = rt.table(found)
    assert len(found) == 12 and rt.NOT_MEASURED in md
    jax = [r for r in found if r.target.endswith("float64: >= 1.2x JAX lax.scan + grad")]
    assert jax[0].measured != rt.NOT_MEASURED and jax[0].ratio is not None


def test_the_kernels_notes_name_each_runs_kernels_and_warn_when_they_differ():
    forced = "Haswell (OPENBLAS_CORETYPE=Haswell)"
    runs = pd.DataFrame({"run_id": [1, 2, 3, 4], "blas_kernels": [None, forced, *["SkylakeX"] * 2]})
    notes = kernels_notes(runs)
    assert notes[0] == (
        "BLAS kernels per run: not recorded: run 1; Haswell (OPENBLAS_CORETYPE=Haswell): run 2; "
        "SkylakeX: runs 3-4."
    )
    assert "Warning" in notes[1] and "OPENBLAS_CORETYPE forced" in notes[2]
    same = kernels_notes(runs[runs["run_id"] > 2])
    assert same == ["BLAS kernels per run: SkylakeX: runs 3-4."]


def test_the_threads_grid_reuses_the_full_presets_cells_and_covers_the_targets():
    import bpttbench
    from bpttbench.bench import grid

    reg = bpttbench.ALGORITHMS
    plan = grid.load_grid_file(COMMITTED.parent / "threads.toml", reg)
    assert plan.threads == (1, 2) and plan.timing.min_time == 1.5

    def key(c):
        return store.cell_key(c.algorithm, c.axis, c.size, c.dtype, 1, 1, "m")

    full = {key(c) for c in grid.preset_plan("full", reg).cells(reg)}
    cells = plan.cells(reg)
    assert {key(c) for c in cells} <= full  # the one-thread pass resumes them all
    sizes = [(c.algorithm, c.size) for c in cells]
    assert any(a == "rtrl" and s["n"] >= 128 for a, s in sizes)
    for alg in ("bptt", "tbptt"):
        assert any(a == alg and s["n"] >= 256 and s["B"] >= 32 for a, s in sizes)
    every = [(c.algorithm, c.size) for c in grid.preset_plan("full", reg).cells(reg)]
    small = {s["n"] for a, s in every if a == "bptt" and s["T"] == 1000 and s["B"] == 1}
    assert {16, 32, 64} <= small
