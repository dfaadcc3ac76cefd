"""The trade-off sweeps, chart and Gruslys comparison, on a synthetic store with known numbers.

Checkpointed BPTT is a stand-in spec here (BPTT's, with a slot count ``c`` as a
size and an axis, and a FLOP model of BPTT's plus the schedule's extra forward
steps), so the chart, the table and summary.json are checked before and
independently of the kernel.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import replace

import numpy as np
import pytest

T, N, B = 1000, 64, 8
BPTT = (0.020, 4_000_000)  # (median seconds, peak bytes)
CKPT = {  # c -> (median seconds, peak bytes)
    4: (0.040, 150_000),
    8: (0.028, 180_000),
    32: (0.024, 330_000),
    1000: (0.0205, 4_100_000),
}
TBPTT = {4: (0.021, 50_000), 16: (0.021, 100_000), 64: (0.022, 300_000)}
RTRL_SHORT = (16, 0.12, 17_000_000)  # T, seconds, bytes
VAR = {"k": "k1"}  # the size column a sweep's axis is recorded by


def _ckpt_flops(s):
    from bpttbench.bench.tradeoff import forward_steps
    from bpttbench.costs import Term
    from bpttbench.registry import ALGORITHMS

    extra = forward_steps(s["T"], s["c"], s["B"]) - s["T"]
    return [*ALGORITHMS["bptt"].flops(s), Term(2.0 * extra * s["B"] * s["n"] ** 2, {})]


def registry_with_checkpoints():
    """The registry plus a stand-in ``checkpointed_bptt`` with its slots as size and axis."""
    from bpttbench.registry import ALGORITHMS, RNN_AXES, RNN_SIZES
    from bpttbench.tradeoff import with_tradeoff

    ckpt = replace(
        ALGORITHMS["bptt"],
        name="checkpointed_bptt",
        title="Checkpointed BPTT",
        flops=_ckpt_flops,
        axis_vars={**RNN_AXES, "c": ("c",)},
        sizes={**RNN_SIZES, "c": 32},
        presets={},
        pairs=(),
        peers={},
    )
    return with_tradeoff({**ALGORITHMS, "checkpointed_bptt": ckpt})


def write_store(path, registry, cells):
    """A store of ``cells``: (algorithm, axis, sizes, seconds, bytes, created minute)."""
    from bpttbench.bench import store

    conn = store.connect(path, registry)
    run_id = store.begin_run(
        conn, {"started": "2024-01-01T00:00:00", "machine": "m", "numba_threads": 1,
               "blas_threads": 1, "gemm_gflops": 10.0, "gemv_gflops": 2.0},
    )  # fmt: skip
    for alg, axis, sizes, sec, nbytes, minute in cells:
        size = {"m": 1, "p": 1, **sizes}
        store.write_cell(
            conn,
            {
                "cell_key": store.cell_key(alg, axis, size, "float64", 1, 1, "m"),
                "run_id": run_id, "algorithm": alg, "axis": axis, "size": size[VAR.get(axis, axis)],
                **size, "dtype": "float64", "numba_threads": 1, "blas_threads": 1, "machine": "m",
                "status": "ok", "created": f"2024-01-01T00:{minute:02d}:00", "median_s": sec,
                "q25_s": sec, "q75_s": sec, "peak_bytes": nbytes, "flops": 1e6, "gflops": 1.0,
            },
        )  # fmt: skip
    conn.close()


def tradeoff_cells(rtrl_at_T=False):
    at = {"T": T, "n": N, "B": B}
    cells = [("bptt", "T", at, *BPTT, 1)]
    cells.append(("bptt", "T", {**at, "B": 16}, 9.0, 9, 2))  # other sizes: not on the chart
    cells.append(("bptt", "T", {**at, "m": 4}, 9.0, 9, 3))  # another input size: not either
    for i, (c, (sec, nb)) in enumerate(CKPT.items()):
        cells.append(("checkpointed_bptt", "c", {**at, "c": c}, sec, nb, 10 + i))
    # c = 8 measured earlier in another sweep, slower: the latest measurement is drawn
    cells.append(("checkpointed_bptt", "T", {**at, "c": 8}, 5.0, 9, 0))
    for i, (k, (sec, nb)) in enumerate(TBPTT.items()):
        cells.append(("tbptt", "k", {**at, "k1": k, "k2": k}, sec, nb, 20 + i))
    cells.append(("tbptt", "k", {**at, "k1": 8, "k2": 16}, 9.0, 9, 30))  # k1 != k2: left out
    short_T, sec, nb = RTRL_SHORT
    cells.append(("rtrl", "T", {**at, "T": short_T}, sec, nb, 40))
    cells.append(("rtrl", "T", {**at, "T": 8}, 1.0, nb, 41))  # shorter still: not the one used
    if rtrl_at_T:
        cells.append(("rtrl", "T", at, 7.0, nb + 100, 42))
    # the time target at other (n, cell): BPTT and a c sweep at n = 256 (Elman) and at
    # n = 64 for the GRU; a GRU c sweep without its BPTT (n = 512) gets no table
    for i, (where, base, times) in enumerate(WIDE):
        cells.append(("bptt", "T", where, base, 10**7, 50 + i))
        for j, (c, sec) in enumerate(times.items()):
            cells.append(("checkpointed_bptt", "c", {**where, "c": c}, sec, 10**6, 50 + i + j))
    cells.append(("checkpointed_bptt", "c", {**at, "n": 512, "cell": "gru", "c": 4}, 1.0, 9, 59))
    return cells


# (sizes, BPTT's seconds, c -> seconds): at n = 256 every c within 10% of the line through
# the others; the GRU's c = 4 far above it
WIDE = [
    ({"T": T, "n": 256, "B": B}, 0.100, {4: 0.300, 16: 0.200, 35: 0.180, 1000: 0.100}),
    ({"T": T, "n": N, "B": B, "cell": "gru"}, 0.060, {4: 0.400, 16: 0.110, 35: 0.100, 1000: 0.060}),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from bpttbench.bench.report import make_report

    root = tmp_path_factory.mktemp("tradeoff")
    registry = registry_with_checkpoints()
    db = root / "t.sqlite"
    write_store(db, registry, tradeoff_cells())
    rep = make_report(db, [], root / "out", registry=registry)
    summary = json.loads((root / "out" / "summary.json").read_text())
    return {"report": rep, "md": rep.path.read_text(), "summary": summary, "registry": registry}


def _table(md: str) -> dict[str, list[str]]:
    """The Gruslys table's rows by slot count."""
    part = md.split("| slots c |", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in part.splitlines()[2:]]
    return {r[0].strip().split()[0]: [x.strip() for x in r] for r in rows}


def test_the_gruslys_table_has_the_measured_ratios(built):
    rows = _table(built["md"])
    assert set(rows) == {"4", "8", "32", "1000"}
    # c = 8: 1 - 180k / 4M of memory saved, 0.028 / 0.020 - 1 more time
    assert rows["8"][3:5] == ["95.5%", "40.0%"]
    assert rows["4"][3:5] == ["96.2%", "100.0%"]
    assert rows["32"][3:5] == ["91.8%", "20.0%"]
    # the schedule: 3144 cell evaluations with 8 slots (revolve over 63 segments of 16
    # steps: 16 x 134 advanced, then each step once more) against BPTT's 1000
    assert rows["8"][5] == "214.4% (3144 against 1000)"
    assert rows["32"][5] == "147.2% (2472 against 1000)"
    assert rows["1000"][5] == "0.0% (1000 against 1000)" and "every state" in rows["1000"][0]
    # the prediction: BPTT's time plus the extra evaluations times tau, the slope of the
    # least-squares line time = a + tau E through the *other* slot counts
    from bpttbench.bench.tradeoff import forward_steps

    E = {c: forward_steps(T, c, B) for c in CKPT}
    for c in CKPT:
        others = [k for k in CKPT if k != c]
        tau = np.polyfit([E[k] for k in others], [CKPT[k][0] for k in others], 1)[0]
        predicted = BPTT[0] + (E[c] - T) * tau
        ratio = CKPT[c][0] / predicted
        assert rows[str(c)][6] == f"{100 * (predicted / BPTT[0] - 1):.1f}%", c
        assert rows[str(c)][7] == f"{ratio:.2f}", c
        assert rows[str(c)][8] == ("yes" if ratio <= 1.1 else "NO"), c
    assert {r[8] for r in rows.values()} == {"yes", "NO"}  # the stand-ins meet it and fail
    assert "leave-one-out" in built["md"] and "residuals at most" in built["md"]
    # the sentence beside Gruslys: the cheapest slot count that saves >= 95%
    assert "c = 8 slots save 95.5% of BPTT's peak memory for 40.0% more time" in built["md"]
    assert "95.0% of memory saved for 33.3% more time at T = 1000" in built["md"]


def test_the_time_target_is_judged_at_the_other_measured_sizes(built):
    from bpttbench.bench.tradeoff import forward_steps

    md, s = built["md"], built["summary"]["tradeoff"]["time_overhead"]
    assert set(s) == {"T=1000, n=256, B=8, elman", "T=1000, n=64, B=8, gru"}
    for where, base, times in WIDE:
        label = next(k for k in s if f"n={where['n']}," in k and where.get("cell", "elman") in k)
        assert f"Time overhead at {label}" in md
        rows = s[label]
        assert set(rows) == {f"c={c}" for c in times}
        E = {c: forward_steps(T, c, B) for c in times}
        for c in times:
            others = [k for k in times if k != c]
            tau = np.polyfit([E[k] for k in others], [times[k] for k in others], 1)[0]
            ratio = times[c] / (base + (E[c] - T) * tau)
            assert rows[f"c={c}"]["time_ratio"] == pytest.approx(ratio, abs=1e-4), (label, c)
            assert rows[f"c={c}"]["meets_time_target"] == (ratio <= 1.1)
    assert not s["T=1000, n=64, B=8, gru"]["c=4"]["meets_time_target"]


def test_summary_json_holds_the_comparison(built):
    s = built["summary"]["tradeoff"]
    assert s["size"] == {"T": T, "n": N, "B": B}
    assert s["bptt"] == {"time_s": BPTT[0], "peak_bytes": BPTT[1]}
    assert set(s["checkpointed_bptt"]) == {"c=4", "c=8", "c=32", "c=1000"}
    assert s["checkpointed_bptt"]["c=8"] == {"time_s": 0.028, "peak_bytes": 180_000}
    assert set(s["tbptt"]) == {"k=4", "k=16", "k=64"}  # k1 != k2 left out
    g = s["gruslys"]
    assert g["reported"] == {
        "source": "Gruslys et al. 2016 (abstract)", "T": 1000, "memory_saved": 0.95,
        "time_paid": 0.333333,
    }  # fmt: skip
    assert g["slots"]["c=8"]["memory_saved"] == pytest.approx(0.955)
    assert g["slots"]["c=8"]["time_paid"] == pytest.approx(0.4)
    assert g["slots"]["c=8"]["forward_steps"] == 3144
    assert g["at_95"]["c"] == 8 and g["at_95"]["time_paid"] == pytest.approx(0.4)
    # RTRL timed at T = 16 only: its time scaled by 1000 / 16 and said so
    assert s["rtrl"] == {"time_s": 7.5, "peak_bytes": 17_000_000, "time_scaled_from_T": 16}


def test_the_chart_is_drawn_in_the_cost_section(built):
    from test_report import assert_real_png

    chart = next(c for c in built["report"].charts if c.name == "tradeoff")
    assert not chart.skipped
    assert_real_png(chart.files[0])
    assert "RTRL was timed at T = 16 only" in chart.caption
    assert "### Time against memory at equal sizes" in built["md"]


def test_rtrl_measured_at_T_is_taken_as_measured(tmp_path):
    from bpttbench.bench.tradeoff import tradeoff_points
    from bpttbench.bench.view import View

    registry = registry_with_checkpoints()
    db = tmp_path / "t.sqlite"
    write_store(db, registry, tradeoff_cells(rtrl_at_T=True))
    from bpttbench.bench.store import load_cells

    tr = tradeoff_points(load_cells(db), View.of(registry))
    assert (tr.rtrl.time_s, tr.rtrl.scaled_from) == (7.0, None)
    assert [p.setting for p in tr.checkpointed] == [4, 8, 32, 1000]
    assert [p.setting for p in tr.tbptt] == [4, 16, 64]


def test_without_the_cells_the_chart_is_skipped_and_summary_has_no_tradeoff(tmp_path):
    from bpttbench.bench.report import make_report

    registry = registry_with_checkpoints()
    db = tmp_path / "t.sqlite"
    cells = [("bptt", "T", {"T": t, "n": 32, "B": 1}, 1e-3 * t, 1000 * t, i)
             for i, t in enumerate((64, 128, 256, 512))]  # fmt: skip
    write_store(db, registry, cells)
    rep = make_report(db, [], tmp_path / "out", registry=registry)
    chart = next(c for c in rep.charts if c.name == "tradeoff")
    assert "fewer than 2 measured cells at T=1000, n=64, B=8" in chart.skipped
    assert "**Time against memory at equal sizes**" in rep.path.read_text()  # under Skipped
    assert "tradeoff" not in json.loads((tmp_path / "out" / "summary.json").read_text())


def test_without_checkpoints_the_table_says_so(tmp_path):
    from bpttbench.bench.report import make_report
    from bpttbench.registry import ALGORITHMS

    db = tmp_path / "t.sqlite"
    write_store(db, ALGORITHMS, [c for c in tradeoff_cells() if c[0] != "checkpointed_bptt"])
    rep = make_report(db, [], tmp_path / "out")
    chart = next(c for c in rep.charts if c.name == "tradeoff")
    assert not chart.skipped
    assert "were not both measured here" in chart.markdown
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["tradeoff"]
    assert s["gruslys"]["slots"] == {} and s["gruslys"]["at_95"] is None


# --- the sweeps -------------------------------------------------------------------------


def test_tradeoff_sweeps_join_the_presets_of_registered_algorithms():
    from bpttbench.registry import ALGORITHMS, check_spec
    from bpttbench.tradeoff import SWEEPS, with_tradeoff

    registry = registry_with_checkpoints()
    for name, by_preset in SWEEPS.items():
        check_spec(registry[name])
        for preset, sweeps in by_preset.items():
            for s in sweeps:
                assert registry[name].presets[preset].count(s) == 1
    # applied twice, nothing is added twice; the built-in registry has them already
    again = with_tradeoff(registry)
    assert again["tbptt"].presets == registry["tbptt"].presets
    assert ALGORITHMS["tbptt"].presets["quick"][-1] == SWEEPS["tbptt"]["quick"][0]
    assert "checkpointed_bptt" not in with_tradeoff({"bptt": ALGORITHMS["bptt"]})


def test_every_tradeoff_sweep_ends_at_the_charted_sizes():
    """At SIZE, or at SIZE with a wider state (the time target's n = 256 and 512)."""
    from bpttbench.tradeoff import SIZE, SWEEPS, WIDE_N

    for name, by_preset in SWEEPS.items():
        for preset, sweeps in by_preset.items():
            for s in sweeps:
                moved = ("k1", "k2") if s.axis == "k" else (s.axis,)
                cells = [{**s.fixed, **dict.fromkeys(moved, x)} for x in s.values]
                size = {**SIZE, "n": s.fixed["n"]} if s.fixed.get("n") in WIDE_N else SIZE
                at = [c for c in cells if all(c.get(k) == v for k, v in size.items())]
                if (name, preset) == ("rtrl", "quick"):  # short runs only, scaled by steps
                    assert not at and all(
                        c["n"] == SIZE["n"] and c["B"] == SIZE["B"] for c in cells
                    )
                else:
                    assert at, (name, preset)


def test_the_schedule_counts_used_by_the_table():
    """The kernel's cell evaluations (THEORY.md, "Checkpointed BPTT"), counted by the
    kernel itself in tests/test_checkpointed_bptt.py."""
    from bpttbench.bench.tradeoff import forward_steps

    ck = importlib.import_module("bpttbench.checkpointed_bptt")
    assert forward_steps(1000, 8, 8) == 3144  # 16 F(63, 8) + 1000
    assert forward_steps(1000, 32, 8) == 2472
    assert forward_steps(1000, 1000, 8) == 1000  # slots >= T: plain BPTT
    for T, c, B in [(1, 1, 1), (77, 3, 16), (1000, 64, 8), (2048, 100, 64), (500, 499, 2)]:
        assert forward_steps(T, c, B) == ck.evaluations(T, c, B), (T, c, B)
