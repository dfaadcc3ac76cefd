"""Results store: one SQLite file, a row per run and a row per measured cell.

Every cell is written in its own transaction, so a sweep killed at any moment
leaves whole rows only. A cell timed in several visits (spread over a sweep)
keeps each visit in the ``visits`` table as it is made; the cell row is written
with the last visit, in the same transaction, and a resumed sweep makes only the
visits still missing. A cell is identified by a unique key built from what
was measured (algorithm, axis, every size variable, dtype, thread counts and
machine); a rerun with the same arguments finds the finished cells by that key
and skips them, and a cell measured again (``--remeasure``, or a cell that was
skipped or failed before) replaces its row, so nothing is ever duplicated.

The file is marked as ours with SQLite's ``application_id``; a file that is
not SQLite, or a SQLite database of some other application, is refused with a
:class:`bench.BenchError` before anything is written to it.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from bpttbench.bench import BenchError

APPLICATION_ID = 0x62707462  # "bptb"
SCHEMA_VERSION = 1
SIZE_VARS = ("T", "n", "B", "m", "p", "k1", "k2", "depth", "width")

RUN_COLUMNS = (
    "run_id",
    "started",
    "machine",
    "cpu",
    "numba_threads",
    "blas_threads",
    "python",
    "numba",
    "numpy",
    "scipy",
    "commit",
    "preset",
    "gemm_gflops",
    "gemv_gflops",
)
CELL_COLUMNS = (
    "run_id",
    "algorithm",
    "axis",
    "size",
    *SIZE_VARS,
    "dtype",
    "status",
    "reason",
    "compile_s",
    "median_s",
    "q25_s",
    "q75_s",
    "iqr_s",
    "cv",
    "rounds",
    "peak_bytes",
    "model_bytes",
    "flops",
    "gflops",
    "efficiency",
    "created",
)
# Columns beyond the published ones: what the fit groups on, and how a cell was timed.
CELL_EXTRA = (
    "numba_threads",
    "blas_threads",
    "machine",
    "first_call_s",
    "calls_per_round",
    "disturbed_rounds",
    "visits",
)

_SCHEMA = f"""
CREATE TABLE runs (
    run_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    started       TEXT NOT NULL,
    finished      TEXT,
    machine       TEXT, cpu TEXT,
    numba_threads INTEGER, blas_threads INTEGER,
    python TEXT, numba TEXT, numpy TEXT, scipy TEXT, "commit" TEXT,
    preset        TEXT,
    gemm_gflops   REAL, gemv_gflops REAL,
    argv          TEXT
);
CREATE TABLE cells (
    cell_key      TEXT NOT NULL UNIQUE,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    algorithm     TEXT NOT NULL,
    axis          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    {", ".join(f'"{v}" INTEGER' for v in SIZE_VARS)},
    dtype         TEXT NOT NULL,
    numba_threads INTEGER, blas_threads INTEGER, machine TEXT,
    status        TEXT NOT NULL CHECK (status IN ('ok', 'skipped', 'error')),
    reason        TEXT,
    first_call_s REAL, compile_s REAL,
    median_s REAL, q25_s REAL, q75_s REAL, iqr_s REAL, cv REAL,
    rounds INTEGER, calls_per_round INTEGER, disturbed_rounds INTEGER, visits INTEGER,
    peak_bytes INTEGER, model_bytes REAL, flops REAL, gflops REAL, efficiency REAL,
    created       TEXT NOT NULL
);
CREATE TABLE visits (
    cell_key      TEXT NOT NULL,
    visit         INTEGER NOT NULL,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    samples       TEXT NOT NULL,
    first_call_s REAL, calls_per_round INTEGER, disturbed_rounds INTEGER, peak_bytes INTEGER,
    created       TEXT NOT NULL,
    PRIMARY KEY (cell_key, visit)
);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""


def cell_key(
    algorithm: str,
    axis: str,
    size: Mapping[str, int],
    dtype: str,
    numba_threads: int,
    blas_threads: int,
    machine: str,
) -> str:
    """The unique key of a cell: everything that decides what was measured."""
    sizes = ",".join(f"{v}={size[v]}" for v in SIZE_VARS if size.get(v) is not None)
    return f"{algorithm}|{axis}|{sizes}|{dtype}|nt={numba_threads}|bt={blas_threads}|{machine}"


def _check_file(path: Path) -> bool:
    """Raise BenchError if ``path`` cannot be our store; return whether it has content."""
    if path.is_dir():
        raise BenchError(f"{path} is a directory, not a results database")
    if not path.exists():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BenchError(f"cannot read results database {path}: {exc.strerror}") from None
    if not head:
        return False
    if head != b"SQLite format 3\x00":
        raise BenchError(f"{path} is not a SQLite database (not a bpttbench results file)")
    return True


def _validate(conn: sqlite3.Connection, path: Path) -> bool:
    """Check an open database is ours; return False if it is empty (no tables yet)."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        n_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BenchError(f"{path} is unreadable or corrupt: {exc}") from None
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise BenchError(
                f"{path} has results schema {version}; this bpttbench reads up to {SCHEMA_VERSION}"
            )
        try:
            for table in ("cells", "runs", "visits"):
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BenchError(f"{path} is a damaged bpttbench database: {exc}") from None
        return True
    if n_tables == 0 and app_id == 0:
        return False
    raise BenchError(f"{path} is a SQLite database of another application, not bpttbench results")


def connect(path: str | os.PathLike = "bpttbench.sqlite") -> sqlite3.Connection:
    """Open (creating if needed) the results database and check it is ours.

    Raises :class:`bench.BenchError` for a file that is not SQLite, a SQLite
    file of another application, or a corrupt file; such a file is not
    modified. The connection is in autocommit mode: writers open their own
    transactions (see :func:`write_cell`).
    """
    path = Path(path)
    _check_file(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    except sqlite3.Error as exc:
        raise BenchError(f"cannot open results database {path}: {exc}") from None
    try:
        if not _validate(conn, path):
            conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """Open an existing results database for reading; never creates a file."""
    path = Path(path)
    if not _check_file(path):
        raise BenchError(f"no results database at {path} (run `bpttbench sweep` first)")
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise BenchError(f"cannot open results database {path}: {exc}") from None
    try:
        if not _validate(conn, path):
            raise BenchError(f"{path} is an empty database with no bpttbench results")
    except BaseException:
        conn.close()
        raise
    return conn


def begin_run(conn: sqlite3.Connection, meta: Mapping[str, object]) -> int:
    """Insert a run row (one transaction) and return its run_id."""
    cols = [c for c in meta if c != "run_id"]
    sql = (
        f"INSERT INTO runs ({', '.join(_q(c) for c in cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)})"
    )
    with _transaction(conn):
        cur = conn.execute(sql, [meta[c] for c in cols])
    return int(cur.lastrowid)


def finish_run(conn: sqlite3.Connection, run_id: int, finished: str) -> None:
    with _transaction(conn):
        conn.execute("UPDATE runs SET finished = ? WHERE run_id = ?", (finished, run_id))


def write_cell(conn: sqlite3.Connection, row: Mapping[str, object]) -> None:
    """Insert or replace one cell row, by its ``cell_key``, in one transaction."""
    with _transaction(conn):
        _upsert_cell(conn, row)


def _upsert_cell(conn: sqlite3.Connection, row: Mapping[str, object]) -> None:
    cols = list(row)
    updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in cols if c != "cell_key")
    sql = (
        f"INSERT INTO cells ({', '.join(_q(c) for c in cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT(cell_key) DO UPDATE SET {updates}"
    )
    conn.execute(sql, [_clean(row[c]) for c in cols])


def write_visit(
    conn: sqlite3.Connection, visit: Mapping[str, object], cell: Mapping[str, object] | None = None
) -> None:
    """Store one visit to a cell and, when it is the cell's last, the cell row: one transaction.

    ``visit`` holds cell_key, visit (1-based), run_id, samples (a list of
    seconds), first_call_s, calls_per_round, disturbed_rounds, peak_bytes, created.
    """
    row = dict(visit)
    row["samples"] = json.dumps([float(x) for x in row["samples"]])
    cols = list(row)
    sql = (
        f"INSERT OR REPLACE INTO visits ({', '.join(_q(c) for c in cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)})"
    )
    with _transaction(conn):
        conn.execute(sql, [_clean(row[c]) for c in cols])
        if cell is not None:
            _upsert_cell(conn, cell)


def load_visits(conn: sqlite3.Connection, keys: set[str] | None = None) -> dict[str, dict]:
    """Stored visits by cell key: ``{key: {visit_number: visit dict}}``."""
    cur = conn.execute(
        "SELECT cell_key, visit, samples, first_call_s, calls_per_round, disturbed_rounds, "
        "peak_bytes FROM visits"
    )
    out: dict[str, dict] = {}
    for key, number, samples, first, cpr, dist, peak in cur:
        if keys is not None and key not in keys:
            continue
        out.setdefault(key, {})[int(number)] = {
            "samples": json.loads(samples),
            "first_call_s": first,
            "calls_per_round": cpr,
            "disturbed_rounds": dist,
            "peak_bytes": peak,
        }
    return out


def finished_keys(conn: sqlite3.Connection) -> set[str]:
    """Keys of the cells measured successfully; a resumed sweep skips these."""
    return {k for (k,) in conn.execute("SELECT cell_key FROM cells WHERE status = 'ok'")}


def ok_cells(conn: sqlite3.Connection) -> list[dict]:
    """Measured cells as dicts (for the budget guard's time prediction)."""
    cur = conn.execute(
        "SELECT algorithm, axis, dtype, numba_threads, blas_threads, machine, flops, median_s "
        "FROM cells WHERE status = 'ok' AND median_s > 0 AND flops > 0"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def load_cells(path: str | os.PathLike = "bpttbench.sqlite") -> pd.DataFrame:
    """All cells as a DataFrame, one row per cell (columns: see ``CELL_COLUMNS``)."""
    with _closing(open_readonly(path)) as conn:
        cols = ", ".join(_q(c) for c in (*CELL_COLUMNS, *CELL_EXTRA))
        df = pd.read_sql_query(f"SELECT {cols} FROM cells ORDER BY run_id, created", conn)
    return df


def load_runs(path: str | os.PathLike = "bpttbench.sqlite") -> pd.DataFrame:
    """All runs as a DataFrame, one row per sweep invocation."""
    with _closing(open_readonly(path)) as conn:
        cols = ", ".join(_q(c) for c in (*RUN_COLUMNS, "finished", "argv"))
        df = pd.read_sql_query(f"SELECT {cols} FROM runs ORDER BY run_id", conn)
    return df


def export_csv(path: str | os.PathLike, out: str | os.PathLike, table: str = "cells") -> Path:
    """Write the cells (or runs) table to a CSV file and return its path."""
    if table not in ("cells", "runs"):
        raise BenchError(f"unknown table {table!r}: choose cells or runs")
    df = load_cells(path) if table == "cells" else load_runs(path)
    out = Path(out)
    df.to_csv(out, index=False)
    return out


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (including Ctrl-C)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False


class _closing:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()
        return False


def _q(col: str) -> str:
    return f'"{col}"'


def _clean(v: object) -> object:
    """NaN and infinities go to NULL; NumPy scalars to Python numbers."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
