"""The threads axis of a sweep: ``--threads 1,2`` or ``threads = [1, 2]`` in a grid.

The plan is swept once per thread count, each a run of its own with its own GEMM
peak measured at that count, so that the store holds the same cells at every
count (keyed nt= / bt=) for the report's parallel-efficiency chart.
"""

from __future__ import annotations

import sqlite3

import pytest
from bpttbench.bench import BenchError, cli, grid, measure, store
from fakes import make_registry

FAST = {"min_time": 1e-3, "round_time": 1e-4, "min_rounds": 2, "visits": 1}
SWEEP = [{"algorithm": "fake_rnn", "axis": "T", "values": [4, 8, 16, 32]}]


def _plan(**settings):
    return grid.parse_grid({"settings": {**FAST, **settings}, "sweep": SWEEP}, make_registry(), "g")


@pytest.mark.parametrize(
    ("value", "want"), [(None, (1,)), (2, (2,)), ([2, 1, 2], (1, 2)), ("1, 2", (1, 2))]
)
def test_grid_threads_setting(value, want):
    plan = _plan() if value is None else _plan(threads=value)
    assert plan.threads == want


@pytest.mark.parametrize("value", [0, [], [1, 0], "1,x", 1.5, True, [1, "2"]])
def test_bad_thread_counts_name_the_setting(value):
    with pytest.raises(BenchError, match="threads"):
        _plan(threads=value)


def test_dump_and_describe_carry_the_threads_axis():
    reg = make_registry()
    plan = _plan(threads=[1, 2])
    again = grid.parse_grid(__import__("tomllib").loads(grid.to_toml(plan, reg)), reg, "dump")
    assert again.threads == (1, 2)
    text = grid.describe(plan, reg)
    assert "threads [1, 2]" in text and "8 cells (4 at each of 2 thread counts" in text


def _grid_file(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        "[settings]\n"
        + "".join(f"{k} = {v!r}\n" for k, v in FAST.items())
        + '[[sweep]]\nalgorithm = "fake_rnn"\naxis = "T"\nvalues = [4, 8, 16, 32]\n'
    )
    return path


@pytest.fixture
def fake_cli(monkeypatch):
    """The command line with the fake registry, its GEMM peak a function of the thread count."""
    reg = make_registry()
    monkeypatch.setattr(cli, "_registry", lambda: reg)
    monkeypatch.setattr(measure, "available_cpus", lambda: 2)
    peaks = []

    def peak(*args, **kwargs):
        import numba

        peaks.append(numba.get_num_threads())
        return 10.0 * numba.get_num_threads(), 1.0

    monkeypatch.setattr(measure, "machine_peak", peak)
    monkeypatch.setattr(measure, "git_commit", lambda: None)
    before = measure.set_threads  # restore the process's counts after the test
    yield peaks
    before(1)


@pytest.mark.skipif(
    __import__("numba").config.NUMBA_NUM_THREADS < 2, reason="Numba's pool has one thread"
)
def test_sweep_runs_once_per_thread_count_with_its_own_peak(fake_cli, tmp_path, capsys):
    db = tmp_path / "t.sqlite"
    argv = ["sweep", "--grid", str(_grid_file(tmp_path)), "--db", str(db), "--quiet"]
    assert cli.main([*argv, "--threads", "2,1"]) == 0
    out = capsys.readouterr().out
    assert "on 1 thread(s)" in out and "on 2 thread(s)" in out
    assert fake_cli == [1, 2]  # a peak per count, measured at that count
    with sqlite3.connect(db) as conn:
        runs = conn.execute(
            "SELECT numba_threads, gemm_gflops FROM runs ORDER BY run_id"
        ).fetchall()
        keys = [k for (k,) in conn.execute("SELECT cell_key FROM cells WHERE status = 'ok'")]
    assert runs == [(1, 10.0), (2, 20.0)]
    assert sorted(k.split("|")[4] for k in keys) == ["nt=1"] * 4 + ["nt=2"] * 4
    cells = store.load_cells(db)
    assert sorted(cells["numba_threads"]) == [1] * 4 + [2] * 4


@pytest.mark.skipif(
    __import__("numba").config.NUMBA_NUM_THREADS < 2, reason="Numba's pool has one thread"
)
def test_a_threads_sweep_after_a_one_thread_sweep_measures_only_the_new_count(
    fake_cli, tmp_path, capsys
):
    # the reference run: the one-thread sweep first, then --threads 1,2 over the same cells
    db = tmp_path / "t.sqlite"
    argv = ["sweep", "--grid", str(_grid_file(tmp_path)), "--db", str(db), "--quiet"]
    assert cli.main(argv) == 0
    with sqlite3.connect(db) as conn:
        first = conn.execute("SELECT cell_key, created FROM cells ORDER BY cell_key").fetchall()
    capsys.readouterr()
    assert cli.main([*argv, "--threads", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "0 cells measured, 4 already stored" in out  # the one-thread pass
    assert "4 cells measured, 0 already stored" in out  # the two-thread pass
    with sqlite3.connect(db) as conn:
        again = conn.execute(
            "SELECT cell_key, created FROM cells WHERE cell_key LIKE '%nt=1|%' ORDER BY cell_key"
        ).fetchall()
    assert again == first  # not measured twice


def test_more_threads_than_cpus_is_refused_for_any_count(fake_cli, tmp_path, capsys):
    db = tmp_path / "t.sqlite"
    argv = ["sweep", "--grid", str(_grid_file(tmp_path)), "--db", str(db), "--threads", "1,3"]
    assert cli.main(argv) == 2
    assert "--threads 3" in capsys.readouterr().err and not db.exists()
