"""The results store (bench.store): schema, refusals, upserts, DataFrames, CSV."""

from __future__ import annotations

import hashlib
import sqlite3

import pandas as pd
import pytest
from bpttbench.bench import BenchError, store

CELL_COLUMNS = [
    "run_id", "algorithm", "axis", "size", "T", "n", "B", "m", "p", "k1", "k2", "depth",
    "width", "dtype", "status", "reason", "compile_s", "median_s", "q25_s", "q75_s", "iqr_s",
    "cv", "rounds", "peak_bytes", "model_bytes", "flops", "gflops", "efficiency", "created",
]  # fmt: skip
RUN_COLUMNS = [
    "run_id", "started", "machine", "cpu", "numba_threads", "blas_threads", "python",
    "numba", "numpy", "scipy", "commit", "preset", "gemm_gflops", "gemv_gflops",
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
