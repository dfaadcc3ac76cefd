"""The report generator on a small synthetic results store and pytest-benchmark JSON.

The store is written through ``bench.store``'s own API, with cells whose
times and bytes follow the textbook power laws exactly (plus seeded noise of a
few percent), so every fit has a known answer.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# --- synthetic data -----------------------------------------------------------------

M = P = 8  # input and output sizes of every synthetic RNN cell
RATE = {"bptt": 4e9, "tbptt": 3.5e9, "rtrl": 6e9, "backprop": 8e9}  # FLOP/s
GEMM_GFLOPS, GEMV_GFLOPS = 40.0, 6.0


def _flops(alg: str, s: dict) -> float:
    T, B, n, L, w = s.get("T"), s.get("B", 1), s.get("n"), s.get("depth"), s.get("width")
    if alg == "bptt":
        return 6.0 * T * B * n * n + 6.0 * T * B * n * (M + P)
    if alg == "tbptt":
        return 2.0 * T * B * n * n * (1 + 2 * s["k2"] / s["k1"]) + 6.0 * T * B * n * (M + P)
    if alg == "rtrl":
        return 2.0 * T * B * n**3 * (n + M + 1) + 2.0 * T * B * n * (n + M)
    return 6.0 * L * w * w * B + 8.0 * L * w * B


def _model_bytes(alg: str, s: dict) -> float:
    T, B, n, L, w = s.get("T"), s.get("B", 1), s.get("n"), s.get("depth"), s.get("width")
    if alg == "bptt":
        return 8.0 * (T * B * n + 2 * n * (n + M + P))
    if alg == "tbptt":
        return 8.0 * (min(s["k2"], T) * B * n + 2 * n * (n + M + P))
    if alg == "rtrl":
        return 8.0 * (B * n * n * (n + M + 1) + 3 * n * (n + M + 1))
    return 8.0 * (2 * L * w * B + L * w * w)


SWEEPS = [  # (algorithm, axis, fixed sizes, swept values)
    ("bptt", "T", {"n": 32, "B": 1}, [16 * 2**i for i in range(8)]),
    ("bptt", "n", {"T": 64, "B": 1}, [8 * 2**i for i in range(8)]),
    ("tbptt", "T", {"n": 32, "B": 1, "k1": 16, "k2": 16}, [16 * 2**i for i in range(8)]),
    ("tbptt", "n", {"T": 64, "B": 1, "k1": 16, "k2": 16}, [8 * 2**i for i in range(8)]),
    ("rtrl", "T", {"n": 16, "B": 1}, [16 * 2**i for i in range(8)]),
    ("rtrl", "n", {"T": 32, "B": 1}, [4, 6, 8, 12, 16, 24, 32, 48, 64]),
    ("backprop", "width", {"depth": 4, "B": 16}, [16 * 2**i for i in range(8)]),
]
AXIS_VARS = {"k": ("k1", "k2")}


def build_store(path: Path, seed: int = 0, sweeps=None) -> None:
    """A results store with one run: power-law cells, one skipped and one failed cell."""
    from bpttbench.bench import store

    rng = np.random.default_rng(seed)
    conn = store.connect(path)
    meta = {
        "started": "2024-01-01T00:00:00",
        "finished": "2024-01-01T00:05:00",
        "machine": "testbox",
        "cpu": "Synthetic CPU 3000",
        "numba_threads": 2,
        "blas_threads": 1,
        "python": "3.11.7",
        "numba": "0.60.0",
        "numpy": "2.0.0",
        "scipy": "1.14.0",
        "commit": "0123456789abcdef",
        "preset": "quick",
        "gemm_gflops": GEMM_GFLOPS,
        "gemv_gflops": GEMV_GFLOPS,
    }
    run_id = store.begin_run(conn, meta)
    minute = 0
    for alg, axis, fixed, values in SWEEPS if sweeps is None else sweeps:
        for v in values:
            size = {"m": M, "p": P, **fixed}
            for var in AXIS_VARS.get(axis, (axis,)):
                size[var] = v
            if alg == "backprop":
                size.pop("m"), size.pop("p")
            flops = _flops(alg, size)
            median = (flops / RATE[alg] + 2e-6) * math.exp(rng.normal(0, 0.02))
            model = _model_bytes(alg, size)
            peak = int(model * 1.03 + 1024)
            status, reason = "ok", None
            if alg == "rtrl" and axis == "n" and v == 64:
                status, reason = "skipped", "predicted 95 s exceeds the cell budget of 60 s"
            row = {
                "cell_key": store.cell_key(alg, axis, size, "float64", 2, 1, "testbox"),
                "run_id": run_id,
                "algorithm": alg,
                "axis": axis,
                "size": v,
                **size,
                "dtype": "float64",
                "numba_threads": 2,
                "blas_threads": 1,
                "machine": "testbox",
                "status": status,
                "reason": reason,
                "created": f"2024-01-01T00:{minute:02d}:00",
            }
            if status == "ok":
                row.update(
                    compile_s=0.5,
                    median_s=median,
                    q25_s=median * 0.97,
                    q75_s=median * 1.04,
                    iqr_s=median * 0.07,
                    cv=0.03,
                    rounds=20,
                    peak_bytes=peak,
                    model_bytes=model,
                    flops=flops,
                    gflops=flops / median / 1e9,
                    efficiency=flops / median / 1e9 / GEMM_GFLOPS,
                )
            store.write_cell(conn, row)
            minute = (minute + 1) % 60
    store.write_cell(
        conn,
        {
            "cell_key": "bptt|B|broken",
            "run_id": run_id,
            "algorithm": "bptt",
            "axis": "B",
            "size": 4,
            "T": 64,
            "n": 32,
            "B": 4,
            "m": M,
            "p": P,
            "dtype": "float64",
            "status": "error",
            "reason": "MemoryError",
            "created": "2024-01-01T00:59:00",
        },
    )
    conn.close()


def add_peers(path: Path) -> None:
    """Peer rows as ``bpttbench peers`` writes them: two tools, one refused cell."""
    from bpttbench.bench import peers

    conn = peers.connect(path)
    for tool, alg, slow in (("pytorch", "bptt", 3.0), ("pytorch", "tbptt", 2.5),
                            ("jax", "bptt", 1.6), ("jax", "rtrl", 0.8)):  # fmt: skip
        for n in (16, 32, 64, 128):
            ours = 1e-4 * n
            row = {
                "run_ts": "2024-01-01T01:00:00",
                "tool": tool,
                "algorithm": alg,
                "T": 64,
                "n": n,
                "B": 1,
                "k": 16 if alg == "tbptt" else None,
                "m": M,
                "p": P,
                "dtype": "float64",
                "status": "ok",
                "median_s": ours * slow * (1 + 0.1 * n / 64),
                "bpttbench_median_s": ours,
                "ratio_vs_bpttbench": slow * (1 + 0.1 * n / 64),
                "max_rel_err": 1e-14,
                "tool_version": "9.9",
                "machine": "testbox",
                "created": "2024-01-01T01:00:00",
            }
            peers.write_peer(conn, row)
    peers.write_peer(conn, {
        "run_ts": "2024-01-01T01:00:00", "tool": "jax", "algorithm": "rtrl", "T": 64, "n": 256,
        "B": 1, "dtype": "float64", "status": "mismatch", "max_rel_err": 0.5,
        "reason": "jax rtrl disagrees with bpttbench", "created": "2024-01-01T01:00:00",
    })  # fmt: skip
    conn.close()


def benchmark_json(path: Path, slowdown: float = 1.0, seed: int = 1) -> Path:
    """A pytest-benchmark JSON file laid out as bpttbench's suite (bench/conftest.py) writes it."""
    rng = np.random.default_rng(seed)
    benches = []
    for alg, axis, fixed, values in SWEEPS[:6]:
        for v in values[:6]:
            size = {"m": M, "p": P, **fixed}
            for var in AXIS_VARS.get(axis, (axis,)):
                size[var] = v
            flops = _flops(alg, size)
            med = (flops / RATE[alg] + 2e-6) * slowdown * math.exp(rng.normal(0, 0.02))
            ident = f"{alg}-T={size['T']}-n={size['n']}"
            test = f"test_rnn_vs_{axis}"
            others = ", ".join(f"{k}={x}" for k, x in size.items() if k != axis)
            benches.append(
                {
                    "group": f"{alg} vs {axis} ({others})",
                    "name": f"{test}[{ident}]",
                    "fullname": f"bench/test_bench_rnn.py::{test}[{ident}]",
                    "params": {"name": alg, "T": size["T"], "n": size["n"]},
                    "param": ident,
                    "extra_info": {
                        "algorithm": alg,
                        "axis": axis,
                        "size": size,
                        "dtype": "float64",
                        "flops": flops,
                        "model_bytes": _model_bytes(alg, size),
                        "peak_bytes": int(_model_bytes(alg, size) * 1.03 + 1024),
                        "compile_s": 0.4,
                        "numba_threads": 1,
                        "blas_threads": 1,
                    },
                    "options": {
                        "disable_gc": False,
                        "timer": "perf_counter",
                        "min_rounds": 5,
                        "max_time": 1.0,
                        "min_time": 5e-06,
                        "warmup": False,
                    },
                    "stats": {
                        "min": med * 0.95,
                        "max": med * 1.2,
                        "mean": med * 1.01,
                        "stddev": med * 0.03,
                        "rounds": 25,
                        "median": med,
                        "iqr": med * 0.05,
                        "q1": med * 0.98,
                        "q3": med * 1.03,
                        "iqr_outliers": 1,
                        "stddev_outliers": 2,
                        "outliers": "2;1",
                        "ld15iqr": med * 0.95,
                        "hd15iqr": med * 1.1,
                        "ops": 1 / med,
                        "total": med * 25,
                        "iterations": 1,
                    },
                }
            )
    doc = {
        "machine_info": {
            "node": "testbox",
            "machine": "x86_64",
            "python_version": "3.11.7",
            "python_implementation": "CPython",
            "system": "Linux",
            "cpu": {"brand_raw": "Synthetic CPU 3000", "count": 2, "arch": "X86_64"},
        },
        "commit_info": {
            "id": "0123456789abcdef",
            "time": None,
            "dirty": False,
            "project": "bpttbench",
            "branch": "main",
        },
        "benchmarks": benches,
        "datetime": "2024-01-01T00:00:00+00:00",
        "version": "5.1.0",
    }
    path.write_text(json.dumps(doc))
    return path


# --- helpers ------------------------------------------------------------------------

STORE_CHARTS = [
    "time_vs_T",
    "time_vs_n",
    "memory_vs_T",
    "memory_vs_n",
    "exponents",
    "cost_grid_tbptt_vs_bptt",
    "memory_boundary_tbptt_vs_bptt",
    "cost_grid_rtrl_vs_bptt",
    "memory_boundary_rtrl_vs_bptt",
    "efficiency",
    "parallel",
    "other_axes",
    "online_budget",
    "peers",
    "peers_gpu",
]
JSON_CHARTS = ["bench_time_vs_T", "bench_time_vs_n", "bench_compare"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path: Path) -> None:
    """A PNG by its signature, that decodes to an image with real content."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path.name
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200, path.name
    pixels = img[..., :3].reshape(-1, 3)
    assert np.ptp(pixels, axis=0).max() > 0.5, f"{path.name} is (nearly) one colour"
    # Lines, text and markers: many distinct colours, and ink on a fair share of the canvas.
    rgb = np.round(pixels * 255).astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    assert len(np.unique(packed)) > 50, path.name
    assert (pixels.min(axis=1) < 0.9).mean() > 0.02, f"{path.name} is nearly blank"


def table_rows(md: str, which: int = 0) -> list[list[str]]:
    """Cells of the body rows of an exponent table in report.md (0: measured, 1: FLOP model)."""
    lines = md.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("| algorithm | axis |")]
    rows = []
    for line in lines[starts[which] + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store, two saved runs and the report built from them (once for the module)."""
    from bpttbench.bench import report

    root = tmp_path_factory.mktemp("report")
    db = root / "results.sqlite"
    build_store(db)
    add_peers(db)
    first = benchmark_json(root / "0001_base.json")
    second = benchmark_json(root / "0002_new.json", slowdown=1.25, seed=2)
    lines: list[str] = []
    rep = report.make_report(db, [first, second], root / "out", echo=lines.append)
    return {"db": db, "report": rep, "out": root / "out", "lines": lines, "root": root}


# --- the report from a store and two saved runs ---------------------------------------


def test_every_expected_file_exists(built):
    out = built["out"]
    assert built["report"].path == out / "report.md"
    assert (out / "report.md").is_file()
    for name in STORE_CHARTS + JSON_CHARTS:
        for ext in ("png", "svg"):
            assert (out / "charts" / f"{name}.{ext}").is_file(), f"{name}.{ext}"


def test_images_are_real_pngs_and_svgs(built):
    charts = built["out"] / "charts"
    for name in STORE_CHARTS + JSON_CHARTS:
        assert_real_png(charts / f"{name}.png")
        svg = (charts / f"{name}.svg").read_text()
        assert "<svg" in svg and "</svg>" in svg


def test_pngs_are_small(built):
    """Committed artefacts stay small: a modest DPI, no chart over 400 kB."""
    for png in (built["out"] / "charts").glob("*.png"):
        assert png.stat().st_size < 400_000, png.name


def test_exponent_table_holds_the_fits_from_the_store(built):
    import bpttbench
    from bpttbench.bench.fit import fit_table
    from bpttbench.bench.store import load_cells

    md = built["report"].path.read_text()
    measured, checks = table_rows(md, 0), table_rows(md, 1)
    assert {r[2] for r in measured} == {"time", "memory"} and {r[2] for r in checks} == {"flops"}
    rows = {(r[0], r[1], r[2]): r for r in measured + checks}
    fits = fit_table(load_cells(built["db"]))
    assert fits, "the synthetic store should give fits"
    assert len(rows) == len(measured) + len(checks) == len(fits)
    fitted = 0
    for f in fits:
        row = rows[(bpttbench.ALGORITHMS[f.algorithm].title, f.axis, f.metric)]
        assert row[3].startswith(f"{f.theory:g}")
        assert row[6] == f"**{f.verdict}**"
        if math.isfinite(f.slope):
            fitted += 1
            assert row[4] == f"{f.slope:.3f}"
            assert row[5] == f"[{f.ci_low:.3f}, {f.ci_high:.3f}]"
            assert row[7] == f"{min(f.window)}-{max(f.window)}"
    assert fitted >= 6
    # The synthetic times follow T^1 exactly (2% noise): those fits must pass.
    for alg in ("BPTT", "RTRL", "Truncated BPTT"):
        assert rows[(alg, "T", "time")][6] == "**PASS**"


def test_report_md_links_images_relatively_and_explains_itself(built):
    md = built["report"].path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(STORE_CHARTS + JSON_CHARTS)
    for link in links:
        assert not Path(link).is_absolute() and ".." not in link
        assert (built["report"].path.parent / link).is_file()
    intro = md.split("\n## ", 1)[0]
    assert "testbox" in intro and "Synthetic CPU 3000" in intro
    assert "2 Numba thread(s)" in intro and "float64" in intro
    for chart in built["report"].drawn:
        assert chart.caption and "\n" not in chart.caption
        assert f"*{chart.caption}*" in md
    assert str(built["root"]) not in md  # no machine-specific paths


def test_failed_and_skipped_cells_are_listed(built):
    md = built["report"].path.read_text()
    data = md.split("## About the data", 1)[1]
    assert "MemoryError" in data and "exceeds the cell budget" in data
    # Every chart could be drawn but the Quality section's, whose empty state (the
    # store has no quality rows) is listed under Skipped, those of checkpointed BPTT,
    # which this store never measured (its c axis and its pair with BPTT), and the
    # trade-off chart (no cells at T=1000, n=64, B=8), and the online targets' (no
    # online_targets.json beside this store: online_efficiency --targets measures it).
    skipped = [c for c in built["report"].charts if c.skipped]
    unmeasured = ("along c", "checkpointed_bptt")
    assert all(
        (c.section == "Quality" and "no quality rows" in c.skipped)
        or any(u in c.skipped for u in unmeasured)
        or (c.name == "tradeoff" and "fewer than 2 measured cells at T=1000" in c.skipped)
        or (c.name == "online_targets" and "no online_targets.json" in c.skipped)
        for c in skipped
    ), [(c.section, c.skipped) for c in skipped]


def test_peers_table_has_the_refused_cell(built):
    md = built["report"].path.read_text()
    section = md.split("### Peer implementations", 1)[1].split("\n## ", 1)[0]
    assert "| mismatch |" in section and "| jax | Elman | RTRL | 64 | 256 |" in section
    assert "above the line at 1 bpttbench is faster" in section


def test_peer_rows_of_the_gated_cells_say_their_cell(built, monkeypatch):
    """A GRU or LSTM row has an Elman row's algorithm and sizes: the table's cell column
    and the chart's line labels and markers are what tell them apart."""
    import bpttbench
    from bpttbench.bench import charts_compare as cc
    from bpttbench.bench import peers, sections
    from bpttbench.bench.view import Context, View

    db = built["root"] / "gated_peers.sqlite"
    conn = peers.connect(db)
    for cell in ("elman", "gru", "lstm"):
        for n in (64, 256):
            peers.write_peer(conn, {
                "run_ts": "2024-01-01T01:00:00", "tool": "pytorch", "algorithm": "bptt",
                "cell": cell, "T": 100, "n": n, "B": 32, "dtype": "float64", "status": "ok",
                "median_s": 2e-3, "bpttbench_median_s": 1e-3, "ratio_vs_bpttbench": 2.0,
                "max_rel_err": 1e-14, "tool_version": "9.9", "created": "2024-01-01T01:00:00",
            })  # fmt: skip
    conn.close()
    view = View.of(bpttbench.ALGORITHMS)
    table = sections.peers_table(peers.load_peers(db), view)
    body = [line for line in table.splitlines() if line.startswith("| pytorch 9.9 |")]
    cells = sorted({line.split("|")[2].strip() for line in body})
    assert cells == ["Elman", "GRU", "LSTM"] and len(body) == 6
    assert table.splitlines()[0].startswith("| tool | cell | algorithm |")
    drawn = []
    monkeypatch.setattr(cc, "peers_chart", lambda series, *a: drawn.extend(series) or None)
    sections.chart_peers(Context(view, SimpleNamespace(footer="")), db)
    labels = {line.cell: line.label for line in drawn}
    assert sorted(labels) == ["Elman", "GRU", "LSTM"]
    assert all(f"({cell})" in label for cell, label in labels.items())
    markers = {line.cell: line.style.marker for line in drawn}
    assert len(set(markers.values())) == 3  # one algorithm, three cells, three markers


def test_comparison_of_two_saved_runs(built):
    md = built["report"].path.read_text()
    section = md.split("### pytest-benchmark: saved runs compared", 1)[1]
    m = re.search(r"geometric mean ratio ([0-9.]+)", section)
    assert m and 1.2 < float(m.group(1)) < 1.3  # the second run is 1.25x slower


# --- bad input ------------------------------------------------------------------------


def test_missing_database_without_json_writes_a_report_and_exits_2(tmp_path, capsys):
    from bpttbench.bench.cli import main

    code = main(["report", "--db", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path / "o")])
    assert code == 2
    out, err = capsys.readouterr()
    assert out.strip().endswith("report.md")
    assert "no results database" in err
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## Skipped" in md and "no results database" in md
    assert not (tmp_path / "nope.sqlite").exists()  # reading never creates a store


def test_empty_database_file_is_a_clear_line(tmp_path):
    from bpttbench.bench.report import make_report

    db = tmp_path / "empty.sqlite"
    db.write_bytes(b"")
    lines: list[str] = []
    rep = make_report(db, [], tmp_path / "o", echo=lines.append)
    assert not rep.drawn
    assert any("empty.sqlite" in line or "no results database" in line for line in lines)


def test_json_that_is_not_pytest_benchmark_is_skipped_and_the_rest_drawn(built, tmp_path):
    from bpttbench.bench.report import make_report

    not_json = tmp_path / "notes.json"
    not_json.write_text("this is not JSON")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": [1, 2, 3]}))
    lines: list[str] = []
    rep = make_report(built["db"], [not_json, other], tmp_path / "o", echo=lines.append)
    assert {c.name for c in rep.drawn} >= set(STORE_CHARTS)
    assert any("notes.json is not JSON" in line for line in lines)
    assert any("other.json is not pytest-benchmark output" in line for line in lines)
    md = rep.path.read_text()
    assert "notes.json is not JSON" in md and "other.json is not pytest-benchmark" in md


def test_too_few_points_skips_those_charts_with_the_reason(tmp_path):
    from bpttbench.bench import store
    from bpttbench.bench.report import make_report

    db = tmp_path / "tiny.sqlite"
    conn = store.connect(db)
    run_id = store.begin_run(
        conn,
        {
            "started": "2024-01-01T00:00:00",
            "machine": "m",
            "numba_threads": 1,
            "blas_threads": 1,
            "gemm_gflops": 10.0,
            "gemv_gflops": 2.0,
        },
    )
    size = {"T": 32, "n": 16, "B": 1, "m": M, "p": P}
    for alg in ("bptt", "rtrl"):
        store.write_cell(
            conn,
            {
                "cell_key": alg,
                "run_id": run_id,
                "algorithm": alg,
                "axis": "T",
                "size": 32,
                **size,
                "dtype": "float64",
                "numba_threads": 1,
                "blas_threads": 1,
                "machine": "m",
                "status": "ok",
                "created": "2024-01-01T00:00:01",
                "median_s": 1e-3,
                "q25_s": 9e-4,
                "q75_s": 1.1e-3,
                "peak_bytes": 5000,
                "model_bytes": 4800.0,
                "flops": 1e6,
                "gflops": 1.0,
                "efficiency": 0.1,
            },
        )
    conn.close()
    rep = make_report(db, [], tmp_path / "o")
    skipped = {c.name: c.skipped for c in rep.charts if c.skipped}
    assert "fewer than 2 measured sizes along T" in skipped["time_vs_T"]
    assert "no peer measurements" in skipped["peers"]
    assert "time_vs_n" in skipped and "efficiency" in skipped
    md = rep.path.read_text()
    assert "fewer than 2 measured sizes along T" in md
    assert "### Performance targets (issue 14)" in md  # a table even from two cells
    assert "| not measured |" in md and "no GPU rows in this store" in md
    for chart in rep.drawn:  # whatever could be drawn from two cells was drawn
        if chart.name == "targets":  # the targets are a table without a figure
            assert not chart.files and chart.markdown
            continue
        assert_real_png(chart.files[0])


def test_stale_charts_are_removed_on_rebuild(built, tmp_path):
    import shutil

    from bpttbench.bench.report import make_report

    out = tmp_path / "o"
    shutil.copytree(built["out"], out)
    (out / "charts" / "unrelated.png").write_bytes(b"keep me")
    make_report(built["db"], [], out)
    assert not (out / "charts" / "bench_compare.png").exists()
    assert (out / "charts" / "time_vs_T.png").exists()
    assert (out / "charts" / "unrelated.png").exists()  # not ours: left alone


# --- pieces -------------------------------------------------------------------------------


def test_reads_group_style_benchmarks_without_extra_info(tmp_path):
    """Other suites: group 'bptt-T', sizes in params or the test id."""
    import bpttbench
    from bpttbench.bench.benchjson import read_benchmark_json
    from bpttbench.bench.view import View

    stats = {"median": 1e-3, "q1": 9e-4, "q3": 1.1e-3}
    doc = {
        "machine_info": {"node": "x"},
        "benchmarks": [
            {"group": "bptt-T", "name": "test_a[T=64-n=8]", "params": {"T": 64}, "stats": stats},
            {"group": "rtrl-n", "name": "test_b[T=64-n=8]", "params": {}, "stats": stats},
            {"group": None, "name": "test_c", "params": None, "stats": stats},
        ],
    }
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    cells = read_benchmark_json(path, View.of(bpttbench.ALGORITHMS)).cells.set_index("name")
    assert cells.loc["test_a[T=64-n=8]", ["algorithm", "axis", "size", "n"]].tolist() == [
        "bptt",
        "T",
        64,
        8,
    ]
    assert cells.loc["test_b[T=64-n=8]", ["algorithm", "axis", "size"]].tolist() == ["rtrl", "n", 8]
    assert cells.loc["test_c", "status"] == "unplaced"


def test_sizes_text_and_ratio_format():
    import bpttbench
    from bpttbench.bench.charts_compare import format_ratio
    from bpttbench.bench.view import View

    sizes_text = View.of(bpttbench.ALGORITHMS).sizes_text
    assert sizes_text({"n": 32, "B": 1, "m": 8, "p": 8}) == "n=32, B=1, m=p=8"
    assert sizes_text({"T": 64, "k1": 16, "k2": 8}) == "T=64, k1=16, k2=8"
    assert sizes_text({"T": 16, "n": 16, "m": 1, "p": 1, "k1": 8, "k2": 8}) == (
        "T=16, n=16, m=p=1, k1=k2=8"
    )  # variables an axis moves on its own are never merged
    assert [format_ratio(r) for r in (2e-6, 0.031, 0.5, 1.0, 3.24, 48, 100, 1000, 1234, 3.5e7)] == [
        "2e-6",
        "0.031",
        "0.5",
        "1",
        "3.2",
        "48",
        "100",
        "1k",
        "1.2k",
        "35M",
    ]


def test_memory_crossover_grows_like_n_squared():
    import bpttbench
    from bpttbench.bench.pairs import memory_crossover

    reg = bpttbench.ALGORITHMS
    t = [
        memory_crossover(reg["rtrl"], reg["bptt"], {"n": n, "B": 1, "m": 8, "p": 8}, ["T"], 8)
        for n in (32, 64, 128)
    ]
    assert all(math.isfinite(x) for x in t)
    slopes = [math.log2(b / a) for a, b in itertools.pairwise(t)]
    assert all(1.6 < s < 2.4 for s in slopes), slopes


# --- what the report derives: pairs, summary, fits handed in ------------------------------


def _caption(rep, name: str) -> str:
    (chart,) = [c for c in rep.charts if c.name == name]
    assert not chart.skipped, chart.skipped
    return chart.caption


def test_pair_charts_compare_measured_with_measured(built):
    """Markers only where both algorithms were measured at the same size, and say so."""
    rep = built["report"]
    caption = _caption(rep, "memory_boundary_tbptt_vs_bptt")
    n = len({(T, 32) for T in SWEEPS[0][3]} | {(64, n) for n in SWEEPS[1][3]})  # both sweeps
    assert f"the {n} sizes where both were measured" in caption
    assert f"{n} of {n} fall on the side the models predict" in caption
    assert "the 2 sizes where both" in _caption(rep, "memory_boundary_rtrl_vs_bptt")


def test_no_common_cells_is_said_plainly(tmp_path):
    from bpttbench.bench.report import make_report

    db = tmp_path / "apart.sqlite"
    build_store(
        db,
        sweeps=[
            ("bptt", "T", {"n": 32, "B": 1}, [16 * 2**i for i in range(6)]),
            ("rtrl", "n", {"T": 24, "B": 1}, [4, 6, 8, 12, 16, 24]),
        ],
    )
    rep = make_report(db, [], tmp_path / "o")
    caption = _caption(rep, "memory_boundary_rtrl_vs_bptt")
    assert "No common cells: no size was measured for both RTRL and BPTT" in caption
    assert "fall on the side" not in caption
    assert rep.summary["pairs"]["rtrl_vs_bptt"]["common_cells"] == 0


def test_summary_json_holds_the_figures_apart_from_the_model_check(built):
    from bpttbench.bench.fit import fit_table, verdict_counts
    from bpttbench.bench.store import load_cells

    summary = json.loads((built["out"] / "summary.json").read_text())
    assert summary == json.loads(json.dumps(built["report"].summary))
    fits = fit_table(load_cells(built["db"]))
    assert summary["exponents"]["measured"] == verdict_counts(fits)
    assert summary["exponents"]["model_check"] == verdict_counts(fits, measured=False)
    slope = summary["slopes"]["bptt"]["T"]["time"]
    assert slope["verdict"] == "PASS" and slope["ci_low"] < slope["slope"] < slope["ci_high"]
    assert summary["efficiency"]["gemm_gflops"] == GEMM_GFLOPS
    rtrl = summary["efficiency"]["algorithms"]["rtrl"]
    assert 0 < rtrl["min"] <= rtrl["max"] and set(rtrl["min_at"]) >= {"T", "n", "B"}
    assert set(summary["pairs"]) == {"tbptt_vs_bptt", "rtrl_vs_bptt"}
    assert summary["pairs"]["tbptt_vs_bptt"]["time_ratio_median"] == pytest.approx(
        RATE["bptt"] / RATE["tbptt"] * 1.0, rel=0.6
    )
    bptt = summary["peers"]["groups"]["pytorch"]["bptt"]["T=64,B=1"]
    assert bptt["n_min"] == 16 and bptt["n_max"] == 128 and bptt["min"] == pytest.approx(3.075)
    assert summary["peers"]["tools"]["jax"] == {"version": "9.9", "release": "9.9"}


def test_the_report_draws_the_fits_it_is_given_and_fits_once(built, tmp_path, monkeypatch):
    from bpttbench.bench import slices
    from bpttbench.bench.fit import fit_table
    from bpttbench.bench.report import make_report
    from bpttbench.bench.store import load_cells

    fits = fit_table(load_cells(built["db"]))

    def refit(*args, **kwargs):
        raise AssertionError("the report fitted again")

    monkeypatch.setattr(slices, "fit_table", refit)
    rep = make_report(built["db"], [], tmp_path / "given", fits=fits)

    def section(md: str) -> str:
        return md.split("## Exponents")[1].split("\n## ")[0]

    assert section(rep.path.read_text()) == section(built["report"].path.read_text())
    calls = []
    monkeypatch.setattr(slices, "fit_table", lambda *a, **k: calls.append(1) or fit_table(*a, **k))
    make_report(built["db"], [], tmp_path / "own")
    assert calls == [1]


def test_online_budget_table_reads_the_measured_sweeps(built):
    from bpttbench.bench.fit import fit_table
    from bpttbench.bench.online_budget import TIME_BUDGET
    from bpttbench.bench.store import load_cells

    md = (built["out"] / "report.md").read_text()
    assert "## Online algorithms" in md and "charts/online_budget.png" in md
    summary = json.loads((built["out"] / "summary.json").read_text())["online_budget"]
    assert summary["time_per_step_s"] == TIME_BUDGET and summary["memory_bytes"] == 2**30
    algs = summary["algorithms"]
    assert set(algs) == {"tbptt", "rtrl"}  # memory flat in T; BPTT and backprop are not
    # RTRL's time per step (median / (T B), T = 32) crosses 1 ms between the measured
    # n = 32 and 48 (n = 64 was skipped). Its n sweep has no fit window (m = p = 8 keep
    # the n^4 terms under 90%), so the local slope between the two carries n from 32.
    cells = load_cells(built["db"])
    ok = cells[(cells["status"] == "ok") & (cells["algorithm"] == "rtrl") & (cells["axis"] == "n")]
    at32, at48 = (float(ok.loc[ok["n"] == v, "median_s"].iloc[0]) / 32 for v in (32, 48))
    fit = next(f for f in fit_table(cells) if f.algorithm == "rtrl" and f.axis == "n"
               and f.metric == "time")  # fmt: skip
    assert math.isnan(fit.slope) and algs["rtrl"]["time"]["slope"] is None  # JSON: null
    slope = math.log(at48 / at32) / math.log(48 / 32)
    rtrl = algs["rtrl"]["time"]
    assert rtrl["bound"] == "interpolated" and rtrl["measured"] == [4, 48]
    assert rtrl["n"] == pytest.approx(32 * (TIME_BUDGET / at32) ** (1 / slope), rel=1e-5)
    assert 32 < rtrl["n"] < 48
    # RTRL's memory stays far below 1 GiB: at least the largest n, not extrapolated
    assert algs["rtrl"]["memory"]["bound"] == "at_least" and algs["rtrl"]["memory"]["n"] == 48
    # truncated BPTT at T = 64: 1 ms per step between n = 512 and 1024
    assert algs["tbptt"]["time"]["bound"] == "interpolated"
    assert 512 < algs["tbptt"]["time"]["n"] < 1024
    lines = md.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| algorithm | time per step"))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[head + 2 : head + 4]]
    row = next(r for r in rows if r[0] == "RTRL")
    assert row[2] == f"{rtrl['n']:.0f}" and row[4].startswith(">= 48")
