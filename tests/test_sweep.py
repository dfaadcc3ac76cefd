"""Sweep planning, resume after a kill, the budget guard, the CLI's bad-input exits,
and a tiny end-to-end sweep -> fit with the real kernels (bench.sweep, bench.cli).

No assertion here depends on how fast anything ran.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from bpttbench.bench import BenchError, budget, cli, fit, store, sweep
from bpttbench.bench import grid as grid_module
from fakes import make_registry

REG = make_registry()
FAST = {"min_time": 1e-3, "round_time": 1e-4, "min_rounds": 2}


def grid(visits: int = 1, **extra) -> dict:
    return {
        "settings": {**FAST, "visits": visits, **extra},
        "sweep": [
            {"algorithm": "fake_rnn", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 8}},
            {"algorithm": "fake_mlp", "axis": "width", "geometric": [4, 32, 4]},
        ],
    }


def run(plan, db, registry=REG, **kw):
    return sweep.run_sweep(plan, db, registry, measure_peak=False, progress=False, **kw)


# --- planning ------------------------------------------------------------------------


def test_plan_cells_are_all_there_and_shuffled_with_the_seed():
    plan = sweep.parse_grid(grid(), REG, "test")
    cells = plan.cells(REG)
    assert len(cells) == 8
    assert sorted(c.value for c in cells if c.algorithm == "fake_rnn") == [4, 8, 16, 32]
    assert [c.size["n"] for c in cells if c.algorithm == "fake_rnn"] == [8] * 4
    assert [c.label() for c in plan.cells(REG)] == [c.label() for c in cells]
    other = sweep.apply_settings(plan, {"seed": 1}, "test").cells(REG)
    assert sorted(c.label() for c in other) == sorted(c.label() for c in cells)


def test_geometric_grids():
    assert sweep.geometric(16, 2048, 8) == [16, 32, 64, 128, 256, 512, 1024, 2048]
    assert sweep.geometric(40, 320, 4, multiple=8) == [40, 80, 160, 320]
    assert sweep.geometric(1, 4, 10) == [1, 2, 3, 4]  # duplicates dropped


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"sweep": []}, "no \\[\\[sweep\\]\\]"),
        ({"settings": {"min_time": 1}}, "no \\[\\[sweep\\]\\]"),
        ({"sweep": [{"algorithm": "nope", "axis": "T", "values": [1, 2, 3, 4]}]},
         "unknown algorithm"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "depth", "values": [1, 2, 3, 4]}]},
         "no axis"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": []}]}, "non-empty"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [8]}]}, "at least 4"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [8, 8, 8, 8]}]},
         "at least 4"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [0, 1, 2, 3]}]},
         "positive integer"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [1.5, 2, 3, 4]}]},
         "positive integer"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "geometric": [64, 8, 4]}]},
         "bad geometric"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [1, 2, 3, 4],
                     "geometric": [1, 8, 4]}]}, "exactly one"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [1, 2, 3, 4],
                     "fixed": {"width": 4}}]}, "unknown key"),
        ({"sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [1, 2, 3, 4],
                     "colour": "red"}]}, "unknown key"),
        ({"settings": {"min_time": -1}, "sweep": grid()["sweep"]}, "positive number"),
        ({"settings": {"dtype": "float16"}, "sweep": grid()["sweep"]}, "dtype"),
        ({"settings": {"speed": 1}, "sweep": grid()["sweep"]}, "unknown key"),
    ],
)  # fmt: skip
def test_malformed_grids_are_refused(bad, message):
    with pytest.raises(BenchError, match=message):
        sweep.parse_grid(bad, REG, "test")


def test_toml_grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        '[settings]\nmin_time = 0.01\nvisits = 2\n\n[[sweep]]\nalgorithm = "fake_rnn"\n'
        'axis = "n"\ngeometric = [8, 64, 4]\nfixed = { T = 4 }\n'
    )
    plan = sweep.load_grid_file(path, REG)
    assert plan.name == "grid:grid.toml" and plan.visits == 2
    assert plan.sweeps[0].values == (8, 16, 32, 64)
    path.write_text("[[sweep]\nalgorithm = ")
    with pytest.raises(BenchError, match="TOML error"):
        sweep.load_grid_file(path, REG)
    with pytest.raises(BenchError, match="cannot read"):
        sweep.load_grid_file(tmp_path / "missing.toml", REG)


def test_a_dumped_grid_loads_back_as_the_same_plan(tmp_path):
    plan = sweep.apply_settings(
        sweep.parse_grid(grid(visits=2), REG, "test"), {"dtype": "float32", "seed": 5}, "test"
    )
    path = tmp_path / "g.toml"
    path.write_text(sweep.to_toml(plan, REG))
    back = sweep.load_grid_file(path, REG)
    assert back.timing == plan.timing
    assert (back.dtype, back.seed, back.visits) == ("float32", 5, 2)
    assert [c.label() for c in back.cells(REG)] == [c.label() for c in plan.cells(REG)]


def test_command_line_overrides():
    plan = sweep.parse_grid(grid(), REG, "test")
    only = sweep.restrict(plan, REG, algorithms=["fake_rnn"], points={"T": [2, 4, 6, 8, 10]},
                          fixed={"n": 16})  # fmt: skip
    assert [s.algorithm for s in only.sweeps] == ["fake_rnn"]
    assert only.sweeps[0].values == (2, 4, 6, 8, 10)
    assert only.sweeps[0].fixed["n"] == 16
    with pytest.raises(BenchError, match="unknown algorithm"):
        sweep.restrict(plan, REG, algorithms=["nope"])
    with pytest.raises(BenchError, match="unknown axis"):
        sweep.restrict(plan, REG, axes=["Q"])
    with pytest.raises(BenchError, match="no sweep left"):
        sweep.restrict(plan, REG, algorithms=["fake_online"])
    with pytest.raises(BenchError, match="at least 4"):
        sweep.restrict(plan, REG, points={"T": [8]})
    assert sweep.parse_points("T=16:128:4") == ("T", [16, 32, 64, 128])
    assert sweep.parse_points("n=8,4,16,4") == ("n", [4, 8, 16])
    for bad in ("T", "T=", "T=a,b", "T=0,1", "T=1:2"):
        with pytest.raises(BenchError):
            sweep.parse_points(bad)


def test_parse_bytes():
    assert sweep.parse_bytes("4GiB") == 4 * 2**30
    assert sweep.parse_bytes("4G") == 4 * 2**30
    assert sweep.parse_bytes("2.5GB") == 2_500_000_000
    assert sweep.parse_bytes("512k") == 512 * 1024
    assert sweep.parse_bytes("1e9") == 10**9
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(BenchError):
            sweep.parse_bytes(bad)


# --- the sweep loop: resume, budget --------------------------------------------------


def rows_by_key(db) -> dict:
    df = store.load_cells(db)
    assert not df.duplicated(["algorithm", "axis", "size"]).any()
    return {
        (r.algorithm, r.axis, r.size): (r.run_id, r.created, r.median_s) for r in df.itertuples()
    }


# Visits are made in passes over all 8 cells: with 3 visits, 19 visits made means two
# whole passes and 3 cells of the third, so 3 cells finished.
@pytest.mark.parametrize(("visits", "kill_at", "finished"), [(1, 5, 5), (3, 19, 3)])
def test_a_killed_sweep_resumes_without_losing_or_duplicating_rows(
    tmp_path, visits, kill_at, finished
):
    db = tmp_path / "r.sqlite"
    plan = sweep.parse_grid(grid(visits=visits), REG, "test")
    n_cells = len(plan.cells(REG))
    # The (kill_at + 1)-th problem built raises KeyboardInterrupt, as Ctrl-C would.
    with pytest.raises(KeyboardInterrupt):
        run(plan, db, make_registry(fail_after=kill_at))
    conn = store.connect(db)
    visits_made = sum(len(v) for v in store.load_visits(conn).values())
    conn.close()
    assert visits_made == kill_at
    before = rows_by_key(db)
    assert len(before) == finished  # only cells whose every visit was made
    assert all(v[2] > 0 for v in before.values())

    counter = [0]
    summary = run(plan, db, make_registry(counter=counter))
    assert counter[0] == n_cells * visits - kill_at  # only the missing visits were made
    assert summary.resumed == len(before)
    after = rows_by_key(db)
    assert len(after) == n_cells
    assert {k: after[k] for k in before} == before  # finished rows untouched

    counter[0] = 0
    again = run(plan, db, make_registry(counter=counter))
    assert counter[0] == 0 and again.resumed == n_cells
    assert rows_by_key(db) == after
    assert len(store.load_runs(db)) == 3


def test_remeasure_replaces_rows(tmp_path):
    db = tmp_path / "r.sqlite"
    plan = sweep.parse_grid(grid(), REG, "test")
    run(plan, db)
    first = rows_by_key(db)
    run(plan, db, remeasure=True)
    second = rows_by_key(db)
    assert set(first) == set(second)
    assert all(second[k][0] == 2 for k in second)  # every row now from run 2


def test_cells_over_the_memory_budget_are_skipped_and_recorded(tmp_path):
    db = tmp_path / "r.sqlite"
    plan = sweep.parse_grid(grid(), REG, "test")
    # Beyond the runtime's allowance, fake_rnn at n = 8 needs 16 T * 8 bytes (its buffer,
    # drawn in float64 and copied, or held with the kernel's copy), so T = 16 and 32 are
    # over 1500 bytes; so is every fake_mlp cell (16 x 4 layers x width x 16 bytes).
    spec = REG["fake_rnn"]
    limit = budget.RUNTIME_BYTES + 1500
    err = io.StringIO()
    summary = sweep.run_sweep(plan, db, REG, max_memory=limit, measure_peak=False,
                              progress=True, stream=err)  # fmt: skip
    df = store.load_cells(db)
    skipped = df[df.status == "skipped"]
    expected = {
        (c.algorithm, c.value) for c in plan.cells(REG)
        if budget.cell_bytes(REG[c.algorithm], c.size, "float64") > limit
    }  # fmt: skip
    assert {(r.algorithm, r.size) for r in skipped.itertuples()} == expected
    assert (spec.name, 32) in expected and (spec.name, 4) not in expected
    assert all("predicted memory" in r and "--max-memory" in r for r in skipped.reason)
    assert skipped.median_s.isna().all()
    assert summary.skipped == len(expected)
    assert err.getvalue().count("skip ") == len(expected)
    # Skipped cells are not fitted, and a later run with room measures them.
    run(plan, db)
    assert (store.load_cells(db).status == "ok").all()


def test_time_budget_from_measured_cells():
    spec = REG["fake_rnn"]
    cell = sweep.Cell("fake_rnn", "T", 1024, {"T": 1024, "n": 64, "B": 1, "m": 1, "p": 1},
                      "float64")  # fmt: skip
    small = {"T": 16, "n": 64, "B": 1, "m": 1, "p": 1}
    refs = [{"algorithm": "fake_rnn", "flops": spec.flop_count(small), "median_s": 0.1}]
    timing = sweep.TimingSettings(min_time=1.0, min_rounds=3)
    # 64x the FLOPs of a 0.1 s cell: 6.4 s a call, far over 10 s a cell.
    reason = sweep.budget_check(spec, cell, refs, 1e12, 10.0, timing)
    assert reason is not None and "--max-cell-seconds" in reason
    assert sweep.budget_check(spec, cell, refs, 1e12, 1e4, timing) is None
    assert sweep.budget_check(spec, cell, [], 1e12, 10.0, timing) is None  # nothing to go on


# --- the command line ----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "--algorithms", "nope"],
        ["sweep", "--preset", "huge"],
        ["sweep", "--axes", "Q"],
        ["sweep", "--points", "T=64"],
        ["sweep", "--points", "T=8,16,0,32"],
        ["sweep", "--fixed", "n=0"],
        ["sweep", "--max-memory", "lots"],
        ["sweep", "--threads", "0"],
        ["sweep", "--preset", "quick", "--grid", "g.toml"],
        ["sweep", "--grid", "missing.toml"],
        ["run", "--preset", "huge"],
        ["fit"],
        ["export"],
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv):
    db = tmp_path / "r.sqlite"
    assert cli.main([*argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bpttbench: error: ")
    assert not db.exists()


@pytest.mark.parametrize("content", [b"hello\n", b"SQLite format 3\x00" + b"\x01" * 300])
def test_a_foreign_or_corrupt_database_exits_2_untouched(tmp_path, capsys, content):
    db = tmp_path / "r.sqlite"
    db.write_bytes(content)
    argv = ["sweep", "--algorithms", "bptt", "--axes", "T", "--db", str(db)]
    assert cli.main(argv) == 2
    assert cli.main(["fit", "--db", str(db)]) == 2
    assert db.read_bytes() == content
    assert capsys.readouterr().err.count("bpttbench: error: ") == 2


def test_bad_toml_grid_exits_2(tmp_path, capsys):
    path = tmp_path / "g.toml"
    path.write_text("[[sweep]\n")
    assert cli.main(["sweep", "--grid", str(path), "--db", str(tmp_path / "r.sqlite")]) == 2
    assert "TOML error" in capsys.readouterr().err
    assert not (tmp_path / "r.sqlite").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert cli.main(["sweep", "--preset", "quick", "--dry-run", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "plan quick" in out and "rtrl" in out
    grid_file = tmp_path / "quick.toml"
    assert cli.main(["sweep", "--preset", "full", "--dump-grid", "--db", str(db)]) == 0
    grid_file.write_text(capsys.readouterr().out)
    assert cli.main(["sweep", "--grid", str(grid_file), "--dry-run", "--db", str(db)]) == 0
    # 186 + the memory-along-n sweeps of BPTT and truncated BPTT (2 x 11) and backprop's
    # memory-along-B sweep (8) + the RTRL/BPTT pair sweep (2 x 6) + the six online
    # rules' 169 (SnAp-2's density sweep among them) + the in-cache n sweeps of UORO,
    # SnAp-1 and RFLO (3 x 12) + checkpointed BPTT's 74 (c 14 + 9,
    # T 11, n 9 + 8, B 9 + 8, the pair sweep 6) + the trade-off sweeps at T=1000,
    # n=64, B=8 (BPTT 4, truncated BPTT 8, RTRL 4; checkpointed BPTT's own c sweep is
    # already there) + the memory-along-B sweeps of BPTT and truncated BPTT (2 x 9) +
    # the gated cells' (GRU and LSTM: BPTT 51, truncated BPTT 51, checkpointed BPTT 16
    # each; RTRL 41 GRU, 40 LSTM) + the Elman cell's RTRL n sweep at the gated cells'
    # sizes (18) + BPTT's small-n sweep at B = 1, T = 1000 (5, issue 14) + issue 12's
    # time target at n = 256 and 512 (BPTT 2 x 4, checkpointed BPTT 2 x 6) + BPTT's
    # trade-off T sweep at 7 points, not 4 (3), and the gated cells' the same (2 x 7)
    # and their memory-along-c sweeps (2 x 9) + the in-L3 B sweeps of UORO, SnAp-1 and
    # RFLO (3 x 10)
    assert "981 cells" in capsys.readouterr().out
    assert not db.exists()


# --- end to end with the real kernels ------------------------------------------------


def test_run_sweeps_fits_and_resumes(tmp_path, capsys, monkeypatch):
    tiny = {
        "settings": {**FAST, "visits": 1},
        "sweep": [{"algorithm": "bptt", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 4}}],
    }
    monkeypatch.setattr(grid_module, "preset_grid", lambda name, registry: tiny)
    db = tmp_path / "r.sqlite"
    argv = ["run", "--db", str(db), "--no-report", "--quiet", "--no-quality"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 cells measured" in out and "bptt       T      time" in out
    assert cli.main(argv) == 0  # everything is stored: nothing measured again
    assert "0 cells measured, 4 already stored" in capsys.readouterr().out
    assert cli.main([*argv, "--remeasure"]) == 0
    assert "4 cells measured" in capsys.readouterr().out
    assert len(store.load_cells(db)) == 4


def test_tiny_sweep_then_fit_with_the_real_kernels(tmp_path, capsys):
    import bpttbench

    db = tmp_path / "r.sqlite"
    tiny = {
        "settings": {**FAST, "visits": 2},
        "sweep": [
            {"algorithm": "bptt", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 4}},
            {"algorithm": "tbptt", "axis": "k", "values": [2, 4, 8, 16],
             "fixed": {"T": 16, "n": 4}},
            {"algorithm": "rtrl", "axis": "n", "values": [2, 3, 4, 6], "fixed": {"T": 2}},
            {"algorithm": "backprop", "axis": "depth", "values": [1, 2, 3, 4],
             "fixed": {"width": 4, "B": 2}},
        ],
    }  # fmt: skip
    plan = sweep.parse_grid(tiny, bpttbench.ALGORITHMS, "tiny")
    summary = sweep.run_sweep(plan, db, bpttbench.ALGORITHMS, progress=False)
    assert (summary.measured, summary.skipped, summary.errors) == (16, 0, 0)
    cells = store.load_cells(db)
    assert (cells.status == "ok").all() and (cells.median_s > 0).all()
    assert (cells.peak_bytes > 0).all() and (cells.visits == 2).all()
    runs = store.load_runs(db)
    assert runs.loc[0, "gemm_gflops"] > 0 and runs.loc[0, "numba_threads"] == 1

    results = fit.fit_table(cells, bpttbench.ALGORITHMS)
    found = {(r.algorithm, r.axis, r.metric) for r in results}
    assert {("bptt", "T", "time"), ("tbptt", "k", "memory"), ("rtrl", "n", "time"),
            ("backprop", "depth", "memory")} <= found  # fmt: skip
    flops = {(r.algorithm, r.axis): r for r in results if r.metric == "flops"}
    # The FLOP counts are exact, so their slope is a property of the model alone.
    assert flops[("bptt", "T")].slope == pytest.approx(1.0, abs=0.05)
    assert flops[("bptt", "T")].verdict == "PASS"
    assert all(r.verdict in {"PASS", "INCONCLUSIVE", "FAIL"} for r in results)

    assert cli.main(["fit", "--db", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {d["algorithm"] for d in out} == {"bptt", "tbptt", "rtrl", "backprop"}
    csv = tmp_path / "cells.csv"
    assert cli.main(["export", "--db", str(db), "-o", str(csv)]) == 0
    assert csv.read_text().count("\n") == 17


# --- measurement statistics (synthetic clocks: no wall-clock assertions) --------------


def scripted_rounds(monkeypatch, rounds):
    """Make bench.measure._run return the scripted (wall, cpu) pairs, one per round."""
    from bpttbench.bench import measure

    script = iter(rounds)
    monkeypatch.setattr(measure, "_run", lambda fn, number: next(script))


def test_descheduled_rounds_are_timed_again(monkeypatch):
    from bpttbench.bench import measure

    settings = measure.TimingSettings(min_time=0.5, round_time=0.1, min_rounds=3)
    # Calibration call fills a round (0.2 s), then: a descheduled round (cpu 50% of wall),
    # two good ones, another descheduled one, and a good one.
    scripted_rounds(
        monkeypatch, [(0.2, 0.2), (0.9, 0.45), (0.21, 0.21), (0.19, 0.19), (1.0, 0.5), (0.2, 0.2)]
    )
    t = measure.time_call(lambda: None, settings, check_cpu=True)
    assert t.samples == [0.2, 0.21, 0.19]  # 0.6 s kept >= min_time after the third good one
    assert t.disturbed_rounds == 1
    assert t.median_s == pytest.approx(0.2)
    assert t.calls_per_round == 1


def test_disturbed_rounds_are_kept_when_the_retries_run_out(monkeypatch):
    from bpttbench.bench import measure

    settings = measure.TimingSettings(min_time=0.1, round_time=0.1, min_rounds=2, max_retries=1)
    scripted_rounds(monkeypatch, [(1.0, 0.5), (1.0, 0.5), (1.0, 0.5)])
    t = measure.time_call(lambda: None, settings, check_cpu=True)
    assert t.disturbed_rounds == 1  # the calibration round; budget (0.4 s) and retries spent
    assert t.samples == [1.0, 1.0]


def test_without_the_cpu_check_every_round_counts(monkeypatch):
    from bpttbench.bench import measure

    settings = measure.TimingSettings(min_time=0.3, round_time=0.1, min_rounds=3)
    scripted_rounds(monkeypatch, [(0.2, 0.1), (0.2, 0.1), (0.2, 0.1)])
    t = measure.time_call(lambda: None, settings, check_cpu=False)
    assert (t.rounds, t.disturbed_rounds) == (3, 0)


def test_statistics_over_the_rounds_of_all_visits():
    from bpttbench.bench import measure

    spec = REG["fake_rnn"]
    size = {"T": 4, "n": 8, "B": 1, "m": 1, "p": 1}
    visits = [
        {"samples": [1.0, 2.0], "first_call_s": 9.0, "calls_per_round": 1,
         "disturbed_rounds": 1, "peak_bytes": 100},
        {"samples": [3.0, 4.0, 5.0], "first_call_s": 3.0, "calls_per_round": 2,
         "disturbed_rounds": 0, "peak_bytes": None},
    ]  # fmt: skip
    out = measure.combine(visits, spec, size, "float64")
    assert out["median_s"] == 3.0 and (out["q25_s"], out["q75_s"]) == (2.0, 4.0)
    assert out["iqr_s"] == 2.0 and out["rounds"] == 5 and out["visits"] == 2
    assert out["cv"] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1) / 3.0)
    assert out["compile_s"] == 6.0  # the first visit's first call minus the median
    assert out["disturbed_rounds"] == 1 and out["peak_bytes"] == 100
    assert out["flops"] == spec.flop_count(size)
    assert out["gflops"] == pytest.approx(spec.flop_count(size) / 3.0 / 1e9)
    assert out["model_bytes"] == spec.memory_bytes(size, 8)


def test_the_memory_pass_counts_what_a_call_allocates():
    from bpttbench.bench import measure

    n = 1 << 20
    peak = measure.peak_memory(lambda: np.ones(n))
    assert n * 8 <= peak < n * 8 + 64 * 1024
