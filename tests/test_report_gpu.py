"""The report's CPU/GPU crossover chart on synthetic peers tables, with GPU rows and without."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bpttbench.bench import charts as ch
from bpttbench.bench import peers, report_gpu
from bpttbench.bench.view import Context, View

GPU = "cuda:0 Fake H200"
NS = (16, 32, 64, 128, 256, 512, 1024)


def _row(tool, alg, T, n, B, dtype, ratio, device=GPU, cell="elman", k=None, **extra):
    ours = 1e-6 * T * B * n
    return {
        "run_ts": "2024-01-02T00:00:00", "tool": tool, "algorithm": alg, "cell": cell,
        "T": T, "n": n, "B": B, "k": k, "m": 8, "p": 8, "dtype": dtype, "device": device,
        "status": "ok", "median_s": ours * (ratio or 1), "bpttbench_median_s": ours,
        "ratio_vs_bpttbench": ratio, "max_rel_err": 1e-14 if dtype == "float64" else 2e-6,
        "tool_version": "9.9", "machine": "gpubox", "cpu": "Synthetic CPU 16",
        "numba_threads": 1, "blas_threads": 1, "created": "2024-01-02T00:00:00",
        "versions": '{"torch": "9.9", "cuda": "12.8"}', **extra,
    }  # fmt: skip


def _gpu_rows():
    """BPTT on the GPU: 64x slower at n = 16, falling 2x per doubling (crossing 1 at n = 1024)
    at B = 1; at B = 32 crossing at n = 128. The gated cells and truncation alongside."""
    rows = []
    for dtype in ("float64", "float32"):
        for n in NS:
            rows.append(_row("pytorch", "bptt", 1000, n, 1, dtype, 64 * 16 / n * 0.999))
            rows.append(_row("jax", "bptt", 1000, n, 1, dtype, 128 * 16 / n))
            rows.append(_row("pytorch", "tbptt", 1000, n, 1, dtype, 100 * 16 / n, k=32))
        for n in NS[2:]:
            rows.append(_row("pytorch", "bptt", 100, n, 32, dtype, 128 / n))
        for n in (64, 256, 512):
            rows.append(_row("pytorch", "bptt", 100, n, 32, dtype, 0.5, cell="gru"))
    rows.append(_row("jax", "rtrl", 50, 256, 1, "float64", None, status="mismatch"))
    return rows


def _cpu_rows():
    return [_row("pytorch", "bptt", 1000, n, 1, "float64", 5.0, device="cpu") for n in NS[:3]]


def _store(path: Path, rows) -> Path:
    conn = peers.connect(path)
    for r in rows:
        peers.write_peer(conn, r)
    conn.close()
    return path


def _ctx(registry=None) -> Context:
    """What the report hands a chart builder: the registry's view, no sweep store."""
    return Context(View.of(registry or {}), None)


def _texts(fig) -> str:
    found = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        found += [t.get_text() for t in ax.texts]
    return "\n".join(found)


def _assert_png(path: Path) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
    assert (img[..., :3].min(axis=2) < 0.9).mean() > 0.02, "nearly blank"


# --- the data -------------------------------------------------------------------------


def test_crossover_is_interpolated_on_log_log_axes():
    line = report_gpu.Line("t", "bptt", "elman", 10, None, 1, "float64",
                           np.array([64.0, 256.0]), np.array([2.0, 0.5]))  # fmt: skip
    assert line.crossover() == pytest.approx(128.0)
    never = report_gpu.Line("t", "bptt", "elman", 10, None, 1, "float64",
                            np.array([64.0, 256.0]), np.array([2.0, 1.5]))  # fmt: skip
    assert never.crossover() is None


def test_gpu_and_cpu_rows_are_told_apart():
    df = pd.DataFrame(_gpu_rows() + _cpu_rows())
    assert set(report_gpu.gpu_rows(df)["device"]) == {GPU}
    assert set(report_gpu.cpu_rows(df)["device"]) == {"cpu"}
    older = df.drop(columns="device")  # a table from before the device column
    assert len(report_gpu.cpu_rows(older)) == len(df) and report_gpu.gpu_rows(older).empty


def test_lines_one_per_tool_cell_algorithm_and_sizes():
    found = report_gpu.lines(pd.DataFrame(_gpu_rows()))
    keys = {(x.tool, x.cell, x.algorithm, x.B, x.dtype) for x in found}
    assert len(found) == len(keys) == 2 * 5  # the mismatch row has no ratio
    b32 = next(x for x in found if (x.cell, x.B, x.dtype) == ("elman", 32, "float32"))
    assert list(b32.n) == [64, 128, 256, 512, 1024]
    assert b32.crossover() == pytest.approx(128.0)
    gru = next(x for x in found if x.cell == "gru")
    assert gru.label == "pytorch: GRU BPTT (T=100)"


# --- the chart with GPU rows ------------------------------------------------------------


def test_chart_with_gpu_rows(tmp_path):
    db = _store(tmp_path / "r.sqlite", _gpu_rows() + _cpu_rows())
    import bpttbench

    fig, caption, md = report_gpu.chart(_ctx(bpttbench.ALGORITHMS), db)
    files = ch.save(fig, tmp_path, report_gpu.NAME)
    _assert_png(files[0])
    titles = sorted(ax.get_title(loc="left") for ax in fig.axes)
    assert titles == ["B = 1, float32", "B = 1, float64", "B = 32, float32", "B = 32, float64"]
    assert "GPU takes over" in caption and "from n ≈ 128" in caption
    assert "\n" not in caption
    # JAX and truncated BPTT stay above 1 (both dtypes); the GRU is below 1 throughout.
    assert "4 line(s) stay above 1" in caption and "2 line(s) are below 1" in caption
    assert report_gpu.EMPTY not in _texts(fig)
    assert "| pytorch | gru | BPTT | 100 | 512 | 32 | - | float64 | cuda:0 Fake H200 | ok |" in md
    assert "| mismatch |" in md and "| cpu |" not in md  # GPU rows only
    assert "Fake H200" in _texts(fig) and "cuda 12.8" in _texts(fig)  # the footer


# --- the empty state -------------------------------------------------------------------


def test_chart_without_gpu_rows_draws_the_empty_state(tmp_path):
    db = _store(tmp_path / "r.sqlite", _cpu_rows())
    fig, caption, md = report_gpu.chart(_ctx(), db)
    files = ch.save(fig, tmp_path, report_gpu.NAME)
    _assert_png(files[0])
    assert caption.startswith(
        "No GPU rows measured: run `bpttbench peers --device cuda` on a machine with a GPU."
    )
    assert "\n" not in caption and md == ""
    assert _texts(fig).count("no GPU rows measured") == 4  # every panel says it
    assert len(fig.axes) == 4


def test_empty_state_without_any_peers_table(tmp_path):
    from bpttbench.bench.store import connect

    db = tmp_path / "r.sqlite"
    connect(db).close()
    _, caption, _ = report_gpu.chart(_ctx(), db)
    assert caption.startswith("No GPU rows measured")


def test_gpu_rows_none_timed_say_so(tmp_path):
    rows = [_row("pytorch", "bptt", 10, 4, 1, "float32", None, status="mismatch")]
    _, caption, md = report_gpu.chart(_ctx(), _store(tmp_path / "r.sqlite", rows))
    assert caption.startswith("No GPU row has a time ratio (1 mismatch)")
    assert "| mismatch |" in md


def test_an_unreadable_database_is_a_skip(tmp_path):
    from bpttbench.bench.view import NoSource

    with pytest.raises(NoSource, match="could not be read"):
        report_gpu.chart(_ctx(), tmp_path / "missing.sqlite")


# --- in the report ------------------------------------------------------------------------


def _report(tmp_path, rows):
    from bpttbench.bench.report import make_report

    db = _store(tmp_path / "r.sqlite", rows)
    rep = make_report(db, [], tmp_path / "out")
    return rep, rep.path.read_text()


def test_report_has_the_crossover_section_with_gpu_rows(tmp_path):
    rep, md = _report(tmp_path, _gpu_rows())
    chart = next(c for c in rep.charts if c.name == report_gpu.NAME)
    assert not chart.skipped and (tmp_path / "out" / "charts" / "peers_gpu.png").is_file()
    section = md.split(f"### {report_gpu.TITLE}", 1)[1]
    assert "GPU takes over" in section and "| cuda:0 Fake H200 |" in section


def test_report_says_how_to_get_gpu_rows_when_there_are_none(tmp_path):
    rep, md = _report(tmp_path, _cpu_rows())
    assert report_gpu.NAME in {c.name for c in rep.drawn}
    section = md.split(f"### {report_gpu.TITLE}", 1)[1]
    assert "No GPU rows measured: run `bpttbench peers --device cuda` on a machine" in section
