"""The results store (bench.store): schema, refusals, upserts, DataFrames, CSV."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from bpttbench.bench import BenchError, store

# The documented columns: the nine size columns of schema 1 come first among the sizes,
# then any size variable the registry adds (snap2's density, say).
SIZES = ["T", "n", "B", "m", "p", "k1", "k2", "depth", "width"]
CELL_COLUMNS = [
    "run_id", "algorithm", "axis", "size", *SIZES,
    *[v for v in store.size_columns() if v not in SIZES],
    "dtype", "status", "reason", "compile_s", "median_s", "q25_s", "q75_s", "iqr_s",
    "cv", "rounds", "peak_bytes", "model_bytes", "flops", "gflops", "efficiency", "created",
]  # fmt: skip
RUN_COLUMNS = [
    "run_id", "started", "machine", "cpu", "numba_threads", "blas_threads", "python",
    "numba", "numpy", "scipy", "commit", "preset", "gemm_gflops", "gemv_gflops", "blas_kernels",
]  # fmt: skip


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def a_run(conn) -> int:
    return store.begin_run(
        conn,
        {"started": "2024-01-01T00:00:00+00:00", "machine": "m", "cpu": "c",
         "numba_threads": 1, "blas_threads": 1, "python": "3", "numba": "0", "numpy": "2",
         "scipy": "1", "commit": None, "preset": "test", "gemm_gflops": 10.0,
         "gemv_gflops": 1.0, "argv": "[]"},
    )  # fmt: skip


def a_cell(run_id: int, T: int, median: float = 1e-3, status: str = "ok") -> dict:
    size = {"T": T, "n": 8, "B": 1, "m": 1, "p": 1}
    return {
        "cell_key": store.cell_key("bptt", "T", size, "float64", 1, 1, "m"),
        "run_id": run_id, "algorithm": "bptt", "axis": "T", "size": T, **size,
        "dtype": "float64", "numba_threads": 1, "blas_threads": 1, "machine": "m",
        "status": status, "reason": None if status == "ok" else "why",
        "median_s": median if status == "ok" else None, "flops": 100.0 * T,
        "created": "2024-01-01T00:00:01+00:00",
    }  # fmt: skip


def test_new_database_has_the_documented_columns(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    run = a_run(conn)
    store.write_cell(conn, a_cell(run, 16))
    conn.close()
    cells = store.load_cells(db)
    runs = store.load_runs(db)
    assert list(cells.columns[: len(CELL_COLUMNS)]) == CELL_COLUMNS
    assert list(runs.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert len(cells) == 1 and len(runs) == 1
    assert cells.loc[0, "T"] == 16 and pd.isna(cells.loc[0, "depth"])


def test_reopening_keeps_the_data(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    store.write_cell(conn, a_cell(a_run(conn), 16))
    conn.close()
    store.connect(db).close()
    assert len(store.load_cells(db)) == 1


def test_same_key_is_replaced_not_duplicated(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    run = a_run(conn)
    store.write_cell(conn, a_cell(run, 16, status="skipped"))
    store.write_cell(conn, a_cell(run, 16, median=2e-3))
    store.write_cell(conn, a_cell(run, 32))
    assert store.finished_keys(conn) == {a_cell(run, 16)["cell_key"], a_cell(run, 32)["cell_key"]}
    conn.close()
    cells = store.load_cells(db)
    assert len(cells) == 2
    assert cells.set_index("size").loc[16, "median_s"] == pytest.approx(2e-3)


def test_visits_and_their_cell_are_one_transaction(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    run = a_run(conn)
    cell = a_cell(run, 16)
    visit = {"cell_key": cell["cell_key"], "visit": 1, "run_id": run, "samples": [1e-3, 2e-3],
             "first_call_s": 0.5, "calls_per_round": 3, "disturbed_rounds": 0,
             "peak_bytes": 1024, "created": "x"}  # fmt: skip
    store.write_visit(conn, visit)
    assert store.load_visits(conn)[cell["cell_key"]][1]["samples"] == [1e-3, 2e-3]
    assert store.finished_keys(conn) == set()
    bad_cell = {**cell, "status": "nonsense"}  # violates the CHECK constraint
    with pytest.raises(sqlite3.IntegrityError):
        store.write_visit(conn, {**visit, "visit": 2}, bad_cell)
    assert set(store.load_visits(conn)[cell["cell_key"]]) == {1}  # visit 2 rolled back too
    store.write_visit(conn, {**visit, "visit": 2}, cell)
    assert store.finished_keys(conn) == {cell["cell_key"]}
    conn.close()


def test_a_failed_write_leaves_nothing(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    run = a_run(conn)
    with pytest.raises(sqlite3.Error):
        store.write_cell(conn, {**a_cell(run, 16), "no_such_column": 1})
    conn.close()
    assert len(store.load_cells(db)) == 0


def test_a_text_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    before = digest(path)
    with pytest.raises(BenchError, match="not a SQLite database"):
        store.connect(path)
    with pytest.raises(BenchError):
        store.load_cells(path)
    assert digest(path) == before


def test_another_applications_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(BenchError, match="another application"):
        store.connect(path)
    with pytest.raises(BenchError, match="another application"):
        store.load_runs(path)
    assert digest(path) == before


def test_a_corrupt_database_is_refused(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    with pytest.raises(BenchError, match="corrupt"):
        store.connect(path)


def test_reading_a_missing_database_does_not_create_it(tmp_path):
    path = tmp_path / "missing.sqlite"
    with pytest.raises(BenchError, match="no results database"):
        store.load_cells(path)
    assert not path.exists()


def test_export_csv(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    run = a_run(conn)
    for T in (16, 32, 64):
        store.write_cell(conn, a_cell(run, T))
    conn.close()
    out = store.export_csv(db, tmp_path / "cells.csv")
    back = pd.read_csv(out)
    assert sorted(back["size"]) == [16, 32, 64]
    assert list(back.columns[: len(CELL_COLUMNS)]) == CELL_COLUMNS
    runs = pd.read_csv(store.export_csv(db, tmp_path / "runs.csv", table="runs"))
    assert list(runs["preset"]) == ["test"]
    with pytest.raises(BenchError):
        store.export_csv(db, tmp_path / "x.csv", table="nope")


def test_cell_key_names_what_was_measured():
    size = {"T": 16, "n": 8, "B": 1, "m": 1, "p": 1, "k1": None}
    key = store.cell_key("bptt", "T", size, "float32", 2, 1, "host")
    assert key == "bptt|T|T=16,n=8,B=1,m=1,p=1|float32|nt=2|bt=1|host"


# --- the schema is checked on open (issue 8) -----------------------------------------


@pytest.fixture
def swept(tmp_path):
    """A store holding a finished sweep of the fake registry (8 cells, 2 visits each)."""
    from fakes import make_store

    path = tmp_path / "s.sqlite"
    make_store(path)
    return path


def tamper(path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def sweep_it(path):
    from bpttbench.bench import sweep
    from fakes import make_registry, tiny_grid

    reg = make_registry()
    plan = sweep.parse_grid(tiny_grid(values=(4, 8, 16, 64)), reg, "test")
    return sweep.run_sweep(plan, path, reg, measure_peak=False, progress=False)


@pytest.mark.parametrize("column", ["cv", "median_s", "T"])
def test_a_store_missing_a_column_is_refused_before_anything_is_read_or_written(swept, column):
    tamper(swept, f'ALTER TABLE cells DROP COLUMN "{column}"')
    before = digest(swept)
    for read in (store.load_cells, store.load_runs, store.connect):
        with pytest.raises(BenchError, match=f"cells.*{column}"):
            read(swept)
    with pytest.raises(BenchError, match=column):
        sweep_it(swept)
    assert digest(swept) == before


def test_a_column_of_the_wrong_type_is_refused(swept, tmp_path):
    conn = sqlite3.connect(swept)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'cells'").fetchone()
    conn.close()
    typed_text = re.sub(r'("?median_s"?) REAL', r"\1 TEXT", sql)
    assert typed_text != sql
    tamper(
        swept,
        "ALTER TABLE cells RENAME TO old_cells",
        typed_text,
        "INSERT INTO cells SELECT * FROM old_cells",
        "DROP TABLE old_cells",
    )
    with pytest.raises(BenchError, match="median_s"):
        store.load_cells(swept)


def test_text_in_a_numeric_column_is_refused_on_reading(swept):
    tamper(swept, "UPDATE cells SET median_s = 'fast' WHERE rowid = 2")
    with pytest.raises(BenchError, match="median_s"):
        store.load_cells(swept)


@pytest.mark.parametrize("table", ["visits", "quality"])
def test_a_missing_table_is_refused(swept, table):
    tamper(swept, f"DROP TABLE {table}")
    before = digest(swept)
    with pytest.raises(BenchError, match=table):
        store.connect(swept)
    assert digest(swept) == before


def test_a_schema_2_store_is_read_without_quality_and_gets_it_when_opened_for_writing(tmp_path):
    from bpttbench.bench.schema import QUALITY

    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    a_run(conn)
    conn.close()
    tamper(db, "DROP TABLE quality", "PRAGMA user_version = 2")  # as main's schema 2 left it
    before = digest(db)
    rows = store.load_table(db, "quality", QUALITY.names, "rowid")
    assert rows.empty and list(rows.columns) == list(QUALITY.names)
    assert digest(db) == before  # reading does not migrate
    store.connect(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 4
    cols = [r[1] for r in conn.execute("PRAGMA table_info(quality)")]
    conn.close()
    assert cols == list(QUALITY.names)
    assert len(store.load_runs(db)) == 1


def test_a_schema_3_store_reads_without_blas_kernels_and_gets_the_column_on_writing(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = store.connect(db)
    a_run(conn)
    conn.close()
    tamper(db, "ALTER TABLE runs DROP COLUMN blas_kernels", "PRAGMA user_version = 3")
    before = digest(db)
    runs = store.load_runs(db)
    assert runs["blas_kernels"].isna().all() and len(runs) == 1  # not recorded then
    assert digest(db) == before  # reading does not migrate
    conn = store.connect(db)
    store.begin_run(conn, {"started": "2024-01-02T00:00:00+00:00", "blas_kernels": "SkylakeX"})
    conn.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 4
    conn.close()
    after = store.load_runs(db)
    assert after["blas_kernels"].isna().tolist() == [True, False]
    assert after["blas_kernels"].iloc[1] == "SkylakeX"


def test_a_schema_4_store_without_blas_kernels_is_refused(tmp_path):
    db = tmp_path / "r.sqlite"
    store.connect(db).close()
    tamper(db, "ALTER TABLE runs DROP COLUMN blas_kernels")
    with pytest.raises(BenchError, match="runs has no column blas_kernels"):
        store.load_runs(db)


def test_the_committed_reference_store_migrates(tmp_path):
    committed = Path(__file__).resolve().parents[1] / "reports" / "reference" / "reference.sqlite"
    copy = tmp_path / "reference.sqlite"
    shutil.copy(committed, copy)
    cells, runs = store.load_cells(copy), store.load_runs(copy)
    store.connect(copy).close()
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    pd.testing.assert_frame_equal(store.load_cells(copy), cells)
    pd.testing.assert_frame_equal(store.load_runs(copy), runs)


# --- two processes, one store (issue 8) -----------------------------------------------


def in_processes(target, args_per_process):
    """Run ``target(*args, barrier, results)`` in real processes that start together."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args_per_process))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, results)) for a in args_per_process]
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


def test_two_processes_creating_one_new_store_at_once_both_succeed(tmp_path):
    from fakes import create_store_worker

    paths = [tmp_path / f"new{i}.sqlite" for i in range(40)]
    failures = in_processes(create_store_worker, [(paths,), (paths,)])
    assert failures == [[], []]
    for path in paths:
        assert store.load_cells(path).empty


def test_two_sweeps_on_one_store_one_refused_and_the_cells_agree_with_their_visits(tmp_path):
    from fakes import assert_consistent, sweep_worker

    db = tmp_path / "s.sqlite"
    store.connect(db).close()
    outcomes = sorted(in_processes(sweep_worker, [(db, 2), (db, 2)]))
    assert [o[0] for o in outcomes] == ["refused", "swept"], outcomes
    assert "is being written by" in outcomes[0][1] and "pid" in outcomes[0][1]
    assert outcomes[1][1] == 8
    assert assert_consistent(db) == 8


@pytest.fixture
def short_lock_wait(monkeypatch):
    """SQLite waits 0.2 s (not the store's 30 s) for a lock held by another program."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        kwargs["timeout"] = 0.2
        return real(*args, **kwargs)

    monkeypatch.setattr(store.sqlite3, "connect", connect)


def hold_lock(path):
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    return other


def test_a_store_locked_by_another_program_is_refused_with_one_line(swept, short_lock_wait):
    other = hold_lock(swept)
    try:
        for read in (store.load_cells, store.connect):
            with pytest.raises(BenchError, match="locked by another program") as info:
                read(swept)
            assert "corrupt" not in str(info.value)
        with pytest.raises(BenchError, match="locked"):
            sweep_it(swept)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(store.load_runs(swept)) == 1


def test_the_command_line_on_a_locked_store(swept, short_lock_wait, capsys, tmp_path):
    from bpttbench.bench import cli

    other = hold_lock(swept)
    try:
        assert cli.main(["fit", "--db", str(swept)]) == 2
        assert cli.main(["export", "--db", str(swept), "-o", str(tmp_path / "c.csv")]) == 2
    finally:
        other.execute("ROLLBACK")
        other.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("locked by another program" in line for line in err)


# --- size columns from the registry, and the migration from schema 1 (issue 9) ----------


def registry_with_cells():
    """The fake registry whose recurrent spec also takes a categorical size, the cell."""
    import dataclasses

    from fakes import make_registry

    reg = make_registry()
    rnn = reg["fake_rnn"]
    reg["fake_rnn"] = dataclasses.replace(rnn, sizes={**rnn.sizes, "cell": "elman"})
    return reg


def test_size_columns_are_the_union_of_the_specs_sizes_typed_by_their_defaults():
    import bpttbench
    from bpttbench.bench.schema import LEGACY_SIZE_VARS

    registered = {v for spec in bpttbench.ALGORITHMS.values() for v in spec.sizes}
    cols = store.size_columns(bpttbench.ALGORITHMS)
    assert tuple(cols)[:9] == LEGACY_SIZE_VARS
    assert list(cols)[9:] == sorted(registered - set(LEGACY_SIZE_VARS))
    cols = store.size_columns(registry_with_cells())
    assert list(cols) == [*LEGACY_SIZE_VARS, "cell"]
    assert cols["cell"] == "TEXT" and cols["T"] == "INTEGER"
    bad = registry_with_cells()
    import dataclasses

    mlp = bad["fake_mlp"]
    bad["fake_mlp"] = dataclasses.replace(mlp, sizes={**mlp.sizes, "cell": 3})
    with pytest.raises(BenchError, match="cell is TEXT in fake_rnn but INTEGER in fake_mlp"):
        store.size_columns(bad)


def test_a_new_size_variable_gets_its_column_and_joins_the_key(swept):
    from bpttbench.bench import sweep
    from fakes import tiny_grid

    before = store.load_cells(swept)
    reg = registry_with_cells()
    plan = sweep.parse_grid(tiny_grid(2), reg, "test")
    plan = sweep.restrict(plan, reg, fixed={"cell": "gru"}, algorithms=["fake_rnn"])
    summary = sweep.run_sweep(plan, swept, reg, measure_peak=False, progress=False)
    assert summary.measured == 4 and summary.resumed == 0  # cell=gru: new cells
    conn = sqlite3.connect(swept)
    types = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(cells)")}
    keys = [k for (k,) in conn.execute("SELECT cell_key FROM cells WHERE cell = 'gru'")]
    conn.close()
    assert types["cell"] == "TEXT"
    assert len(keys) == 4 and all(",cell=gru|" in k for k in keys)
    after = store.load_cells(swept, reg)
    assert after["cell"].isna().sum() == len(before) and (after["cell"] == "gru").sum() == 4
    # The store's own size columns are read even by a registry that lacks them.
    assert "cell" in store.load_cells(swept).columns
    from fakes import assert_consistent

    assert assert_consistent(swept, reg) == 12


def test_cell_keys_list_the_sizes_in_a_fixed_order():
    size = {"cell": "gru", "n": 8, "T": 16, "alpha": 2, "k1": None}
    key = store.cell_key("bptt", "T", size, "float64", 1, 1, "host")
    assert key == "bptt|T|T=16,n=8,alpha=2,cell=gru|float64|nt=1|bt=1|host"


# The reference store as the first full run wrote it (schema 1), kept for the migration tests:
# reports/reference/reference.sqlite itself has been migrated and extended since.
REFERENCE = Path(__file__).resolve().parent / "data" / "schema1-reference.sqlite"


def test_the_reference_store_of_schema_1_reads_the_same_after_migration(tmp_path):
    from bpttbench.bench import peers

    committed = digest(REFERENCE)
    copy = tmp_path / "reference.sqlite"
    shutil.copy(REFERENCE, copy)
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    cells, runs, peer_rows = store.load_cells(copy), store.load_runs(copy), peers.load_peers(copy)
    assert len(cells) == 186 and len(peer_rows) == 20
    assert digest(copy) == committed  # reading a schema-1 store does not migrate it
    store.connect(copy).close()
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM quality").fetchone()[0] == 0  # created, empty
    conn.close()
    pd.testing.assert_frame_equal(store.load_cells(copy), cells)
    pd.testing.assert_frame_equal(store.load_runs(copy), runs)
    pd.testing.assert_frame_equal(peers.load_peers(copy), peer_rows)
    assert digest(REFERENCE) == committed


def test_a_schema_1_peers_table_with_untyped_columns_is_rebuilt(tmp_path):
    from bpttbench.bench import peers

    copy = tmp_path / "reference.sqlite"
    shutil.copy(REFERENCE, copy)
    tamper(  # as an older `bpttbench peers` left it: loadavg added later, without a type
        copy,
        "ALTER TABLE peers DROP COLUMN loadavg",
        'ALTER TABLE peers ADD COLUMN "loadavg"',
        "UPDATE peers SET loadavg = 0.5",
    )
    before = peers.load_peers(copy)
    store.connect(copy).close()
    conn = sqlite3.connect(copy)
    types = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(peers)")}
    conn.close()
    assert types["loadavg"] == "REAL"
    pd.testing.assert_frame_equal(peers.load_peers(copy), before)


def test_runs_record_the_blas_kernels_and_a_forced_core_type(monkeypatch, tmp_path):
    from bpttbench.bench import measure

    monkeypatch.setattr(measure, "openblas_kernels", lambda: "Haswell")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert measure.blas_kernels() == "Haswell (OPENBLAS_CORETYPE=Haswell)"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert measure.blas_kernels() == "Haswell"
    monkeypatch.setattr(measure, "openblas_kernels", lambda: "SkylakeX")
    db = tmp_path / "r.sqlite"
    sweep_it(db)
    assert set(store.load_runs(db)["blas_kernels"]) == {"SkylakeX"}
