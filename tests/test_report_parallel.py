"""The report's parallel-efficiency chart on synthetic stores: with a threads axis and without."""

from __future__ import annotations

from pathlib import Path

import bpttbench
import numpy as np
import pytest
from bpttbench.bench import report_parallel, store
from bpttbench.bench.view import View

# Synthetic timings: RTRL speeds up 1.8x on 2 threads and 3.2x on 4, BPTT 1.25x on 2 only.
SPEEDUP = {"rtrl": {1: 1.0, 2: 1.8, 4: 3.2}, "bptt": {1: 1.0, 2: 1.25}}
GEMM = {1: 40.0, 2: 78.0, 4: 150.0}  # the runs' GEMM peak at each thread count
SIZES = {"rtrl": (32, 64), "bptt": (64, 256)}  # n; the largest is the one charted


def _flops(alg, n):
    return (2.0 * n**4 if alg == "rtrl" else 8.0 * n**2) * 100


def build_store(path: Path, counts=(1, 2, 4)) -> Path:
    """One run per thread count, each with its GEMM peak, and the same cells in every run."""
    conn = store.connect(path)
    for t in counts:
        run_id = store.begin_run(
            conn,
            {"started": f"2024-01-0{t}T00:00:00", "machine": "box", "cpu": "Synthetic 16",
             "numba_threads": t, "blas_threads": t, "preset": "quick", "gemm_gflops": GEMM[t],
             "gemv_gflops": 5.0},
        )  # fmt: skip
        for alg, ns in SIZES.items():
            if t not in SPEEDUP[alg]:
                continue
            for n in ns:
                size = {"T": 100, "n": n, "B": 1, "m": 8, "p": 8}
                flops = _flops(alg, n)
                median = flops / 4e9 / SPEEDUP[alg][t]
                store.write_cell(
                    conn,
                    {"cell_key": store.cell_key(alg, "n", size, "float64", t, t, "box"),
                     "run_id": run_id, "algorithm": alg, "axis": "n", "size": n, **size,
                     "dtype": "float64", "numba_threads": t, "blas_threads": t, "machine": "box",
                     "status": "ok", "created": f"2024-01-0{t}T00:01:00", "median_s": median,
                     "flops": flops, "gflops": flops / median / 1e9, "rounds": 10},
                )  # fmt: skip
    conn.close()
    return path


def _frames(path):
    return store.load_cells(path), store.load_runs(path)


def test_speedup_and_efficiency_of_the_largest_cell(tmp_path):
    cells, runs = _frames(build_store(tmp_path / "r.sqlite"))
    found = {x.algorithm: x for x in report_parallel.lines(cells, View.of(bpttbench.ALGORITHMS))}
    assert set(found) == {"rtrl", "bptt"}
    rtrl = found["rtrl"]
    assert list(rtrl.threads) == [1, 2, 4] and "n=64" in rtrl.sizes
    np.testing.assert_allclose(rtrl.speedup, [1.0, 1.8, 3.2])
    np.testing.assert_allclose(rtrl.efficiency, [1.0, 0.9, 0.8])
    assert "n=256" in found["bptt"].sizes
    np.testing.assert_allclose(found["bptt"].speedup, [1.0, 1.25])
    peaks = report_parallel.gemm_peaks(runs)
    assert peaks == {("box", 1): 40.0, ("box", 2): 78.0, ("box", 4): 150.0}
    assert report_parallel.all_core_peak(peaks, "box") == (4, 150.0)


def test_a_cell_without_a_one_thread_row_is_not_charted(tmp_path):
    cells, _ = _frames(build_store(tmp_path / "r.sqlite", counts=(2, 4)))
    assert report_parallel.lines(cells) == []


def test_chart_caption_and_table(tmp_path):
    cells, runs = _frames(build_store(tmp_path / "r.sqlite"))
    fig, caption, md = report_parallel.chart_parallel(cells, runs, View.of({}), "footer")
    assert "3.20x on 4 threads (80% efficient" in caption
    gflops = _flops("rtrl", 64) / (_flops("rtrl", 64) / 4e9 / 3.2) / 1e9
    assert f"{gflops / 150.0:.0%} of the 4-thread GEMM peak" in caption
    # The 2-thread row of RTRL: set against the 2-thread GEMM and the 4-thread (all-core) one.
    row = next(r for r in md.splitlines() if r.startswith("| RTRL") and "| 2 |" in r)
    g2 = 4e9 * 1.8 / 1e9
    assert f"| {g2 / 78.0:.0%} | {g2 / 150.0:.0%} |" in row and "| 90% |" in row
    assert len(fig.axes) == 3


def test_empty_state_without_a_threads_axis(tmp_path):
    cells, runs = _frames(build_store(tmp_path / "r.sqlite", counts=(1,)))
    fig, caption, md = report_parallel.chart_parallel(cells, runs)
    assert md == "" and caption.startswith("No cell measured at more than one thread count")
    texts = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "bpttbench sweep --threads 1,2" in texts


@pytest.mark.parametrize("counts", [(1, 2, 4), (1,)], ids=["threads-axis", "one-count"])
def test_in_the_report(tmp_path, counts):
    from bpttbench.bench.report import make_report

    db = build_store(tmp_path / "r.sqlite", counts)
    rep = make_report(db, [], tmp_path / "out")
    chart = next(c for c in rep.charts if c.name == report_parallel.NAME)
    assert not chart.skipped and (tmp_path / "out" / "charts" / "parallel.png").is_file()
    section = rep.path.read_text().split(f"### {report_parallel.TITLE}", 1)[1]
    if len(counts) > 1:
        assert "| RTRL | " in section and "3.20x on 4 threads" in section
    else:
        assert "No cell measured at more than one thread count" in section
