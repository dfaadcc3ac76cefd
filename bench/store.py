"""Results store: one SQLite file, a row per run and a row per measured cell.

Every cell is written in its own transaction, so a sweep killed at any moment
leaves whole rows only. A cell timed in several visits (spread over a sweep)
keeps each visit in the ``visits`` table as it is made; the cell row is written
with the last visit, in the same transaction, from the visits as stored, so a
cell always agrees with its visits. A resumed sweep makes only the visits still
missing. A cell is identified by a unique key built from what was measured
(algorithm, axis, every size variable, dtype, thread counts and machine); a
rerun with the same arguments finds the finished cells by that key and skips
them, and a cell measured again (``--remeasure``, or a cell that was skipped or
failed before) replaces its row, so nothing is ever duplicated.

Opening checks before anything is written: the path is a regular file
(``bench.paths``), the file is SQLite marked as ours with ``application_id``,
and its schema (tables, columns, their types, unique keys; ``bench.schema``)
and version are ones this bpttbench knows; numbers are read only from numeric
columns that hold numbers. Anything else is refused with one line
(:class:`bench.BenchError`). Opening for writing happens inside ``BEGIN
IMMEDIATE``: two processes that create one new store at the same moment both
succeed, and a schema-1 store is migrated in the same transaction.

Writers. One sweep writes a store at a time: a sweep takes the store's lease
(a row in ``lease``: owner, host, pid) before its run row and gives it back at
the end; a second sweep on the same store is refused with a line naming the
holder. Every write transaction checks the lease, so no one writes cells while
a live sweep holds it. A lease whose holder is gone (killed: its pid is dead on
this host, or silent for ``LEASE_STALE_S`` on another host) is taken over, so a
killed sweep resumes by running the same command again.

Locks. SQLite waits ``LOCK_TIMEOUT_S`` for a lock another program holds; past
that the store is reported as locked (not corrupt), with nothing written.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd
from bpttbench.bench import BenchError, lease, paths, schema
from bpttbench.bench.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Table,
    key_order,
    q,
    size_columns,
    tables,
)

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "size_columns"]

LOCK_TIMEOUT_S = 30.0  # how long SQLite waits for a lock held by another program

RUN_COLUMNS = (
    "run_id", "started", "machine", "cpu", "numba_threads", "blas_threads", "python", "numba",
    "numpy", "scipy", "commit", "preset", "gemm_gflops", "gemv_gflops", "blas_kernels",
)  # fmt: skip
# The published columns of a cell, around its size columns (see cell_columns).
CELL_HEAD = ("run_id", "algorithm", "axis", "size")
CELL_TAIL = (
    "dtype", "status", "reason", "compile_s", "median_s", "q25_s", "q75_s", "iqr_s", "cv",
    "rounds", "peak_bytes", "model_bytes", "flops", "gflops", "efficiency", "created",
)  # fmt: skip
# Columns beyond the published ones: what the fit groups on, and how a cell was timed.
CELL_EXTRA = (
    "numba_threads", "blas_threads", "machine", "first_call_s", "calls_per_round",
    "disturbed_rounds", "visits",
)  # fmt: skip
# First lines of the CSV files `export` writes: a file that starts so is ours to replace.
EXPORT_HEADERS = (",".join(CELL_HEAD) + ",", ",".join(RUN_COLUMNS[:2]) + ",")


class StoreConnection(sqlite3.Connection):
    """A connection that knows its file, its size columns and the lease it holds."""

    path: Path
    sizes: dict[str, str]
    lease: str | None = None


def cell_columns(registry: Mapping | None = None) -> tuple[str, ...]:
    """The published columns of a cell: run, algorithm, axis, size, every size variable, ..."""
    return (*CELL_HEAD, *size_columns(registry), *CELL_TAIL)


def cell_key(
    algorithm: str,
    axis: str,
    size: Mapping[str, object],
    dtype: str,
    numba_threads: int,
    blas_threads: int,
    machine: str,
) -> str:
    """The unique key of a cell: everything that decides what was measured.

    Every size variable present (not None) is listed, schema 1's nine in their
    order, then any other by name, so the keys of existing stores do not change
    when the registry gains a size variable.
    """
    present = {v: x for v, x in size.items() if x is not None}
    sizes = ",".join(f"{v}={present[v]}" for v in key_order(present))
    return f"{algorithm}|{axis}|{sizes}|{dtype}|nt={numba_threads}|bt={blas_threads}|{machine}"


# --- opening -------------------------------------------------------------------------


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """SQLite's errors on opening, as one line each: locked, read-only, or damaged."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise _as_bench_error(exc, path) from None
    except sqlite3.DatabaseError as exc:
        raise BenchError(f"{path} is unreadable or corrupt: {exc}") from None


def _as_bench_error(exc: sqlite3.OperationalError, path: Path) -> BenchError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return BenchError(
            f"{path} is locked by another program (waited {LOCK_TIMEOUT_S:g} s); "
            "try again when it has finished"
        )
    if "readonly" in text or "read-only" in text:
        return BenchError(f"results database {path} is read-only")
    return BenchError(f"{path} is unreadable or corrupt: {text}")


def _check_header(path: Path) -> bool:
    """Raise BenchError if the file is not SQLite; return whether it has content."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BenchError(f"cannot read results database {path}: {exc.strerror}") from None
    if not head:
        return False
    if head != b"SQLite format 3\x00":
        raise BenchError(f"{path} is not a SQLite database (not a bpttbench results file)")
    return True


def connect(
    path: str | os.PathLike = "bpttbench.sqlite", registry: Mapping | None = None
) -> StoreConnection:
    """Open (creating if needed) the results database for writing, and check it is ours.

    Raises :class:`bench.BenchError` for a path that is not a regular file, a
    read-only store, a file that is not SQLite, a SQLite file of another
    application, a damaged or edited schema, or a store locked by another
    program; such a file is not modified. The connection is in autocommit mode:
    writers open their own transactions (:func:`transaction`).
    """
    path = Path(path)
    paths.check_store(path, write=True)
    _check_header(path)
    sizes = size_columns(registry)
    with _sqlite_errors(path):
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=LOCK_TIMEOUT_S, factory=StoreConnection
        )
    conn.path, conn.sizes = path, sizes
    try:
        with _sqlite_errors(path):
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                schema.prepare(conn, path, sizes)
                _before_commit(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: str | os.PathLike) -> StoreConnection:
    """Open an existing results database for reading; never creates or changes a file.

    (After a killed write the store may keep a hot journal; where the file is
    writable it is opened read-write so that SQLite can roll the journal back,
    and ``query_only`` keeps this connection from writing anything else.)
    """
    path = Path(path)
    paths.check_store(path, write=False)
    if not _check_header(path):
        raise BenchError(f"{path} is an empty database with no bpttbench results")
    journal = Path(f"{path}-journal")
    mode = "ro"
    if journal.exists() and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        mode = "rw"
    uri = path.resolve().as_uri() + f"?mode={mode}"
    with _sqlite_errors(path):
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=LOCK_TIMEOUT_S, factory=StoreConnection
        )
    conn.path = path
    try:
        with _sqlite_errors(path):
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
            try:
                found = schema.check(conn, path)
            finally:
                conn.execute("COMMIT")
        if found is None:
            raise BenchError(f"{path} is an empty database with no bpttbench results")
        fixed = set(tables({})["cells"].names)
        conn.sizes = {c: t for c, t in found[1]["cells"][0].items() if c not in fixed}
    except BaseException:
        conn.close()
        raise
    return conn


# --- writing -------------------------------------------------------------------------


def _before_commit(conn: sqlite3.Connection) -> None:
    """Called inside every write transaction just before COMMIT (a seam for the kill tests)."""


@contextmanager
def transaction(conn: StoreConnection, guard: bool = True) -> Iterator[StoreConnection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (including Ctrl-C).

    With ``guard``, the writer's lease is checked first (module docstring).
    """
    path = getattr(conn, "path", Path("?"))
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _as_bench_error(exc, path) from None
    try:
        if guard:
            lease.check(conn, getattr(conn, "lease", None), path)
        yield conn
        _before_commit(conn)
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "locked" in str(exc) or "readonly" in str(exc):
            raise _as_bench_error(exc, path) from None
        raise
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def upsert(conn: sqlite3.Connection, table: Table | str, row: Mapping[str, object]) -> None:
    """Insert ``row``, or update the row with the same key (``table.key``); no transaction."""
    if isinstance(table, str):
        table = tables({})[table]
    cols = list(row)
    updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in cols if c not in table.key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    sql = (
        f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT({', '.join(q(c) for c in table.key)}) {action}"
    )
    conn.execute(sql, [_clean(row[c]) for c in cols])


def begin_run(conn: StoreConnection, meta: Mapping[str, object]) -> int:
    """Insert a run row (one transaction) and return its run_id."""
    cols = [c for c in meta if c != "run_id"]
    sql = (
        f"INSERT INTO runs ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
    )
    with transaction(conn):
        cur = conn.execute(sql, [_clean(meta[c]) for c in cols])
    return int(cur.lastrowid)


def finish_run(conn: StoreConnection, run_id: int, finished: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE runs SET finished = ? WHERE run_id = ?", (finished, run_id))


def write_cell(conn: StoreConnection, row: Mapping[str, object], fresh: bool = False) -> None:
    """Insert or replace one cell row, by its ``cell_key``, in one transaction.

    With ``fresh`` (the cell is measured anew) its earlier visits are deleted too.
    """
    with transaction(conn):
        if fresh:
            _forget(conn, str(row["cell_key"]))
        upsert(conn, "cells", row)


def _forget(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM visits WHERE cell_key = ?", (key,))
    conn.execute("DELETE FROM cells WHERE cell_key = ?", (key,))


def write_visit(
    conn: StoreConnection,
    visit: Mapping[str, object],
    cell: Mapping[str, object] | None = None,
    *,
    finish: Callable[[dict[int, dict]], Mapping[str, object] | None] | None = None,
    fresh: bool = False,
) -> Mapping[str, object] | None:
    """Store one visit to a cell and, when it is the cell's last, the cell row: one transaction.

    ``visit`` holds cell_key, visit (1-based), run_id, samples (a list of
    seconds), first_call_s, calls_per_round, disturbed_rounds, peak_bytes, created.
    ``finish(stored)`` is called inside the transaction with the cell's visits as
    stored (``{number: visit}``, this one included) and returns the cell row to
    write, or None while visits are missing: the row is computed from what the
    store holds, never from a copy that may differ. ``cell`` writes a given row
    instead. With ``fresh`` (the cell is measured anew) the cell's earlier visits
    and row are deleted first, in the same transaction. Returns the cell row
    written, or None.
    """
    row = dict(visit)
    row["samples"] = json.dumps([float(x) for x in row["samples"]])
    key = row["cell_key"]
    with transaction(conn):
        if fresh:
            _forget(conn, key)
        upsert(conn, "visits", row)
        if finish is not None:
            cell = finish(_visits_of(conn, key))
        if cell is not None:
            upsert(conn, "cells", cell)
    return cell


_VISIT_FIELDS = ("samples", "first_call_s", "calls_per_round", "disturbed_rounds", "peak_bytes")


def _visit_rows(conn: sqlite3.Connection, where: str = "", args=()) -> Iterator[tuple]:
    cols = ", ".join(("cell_key", "visit", *_VISIT_FIELDS))
    yield from conn.execute(f"SELECT {cols} FROM visits {where} ORDER BY cell_key, visit", args)


def _as_visit(row: tuple) -> dict:
    out = dict(zip(_VISIT_FIELDS, row[2:], strict=True))
    out["samples"] = json.loads(out["samples"])
    return out


def _visits_of(conn: sqlite3.Connection, key: str) -> dict[int, dict]:
    return {int(r[1]): _as_visit(r) for r in _visit_rows(conn, "WHERE cell_key = ?", (key,))}


def load_visits(conn: sqlite3.Connection, keys: set[str] | None = None) -> dict[str, dict]:
    """Stored visits by cell key: ``{key: {visit_number: visit dict}}``."""
    out: dict[str, dict] = {}
    for r in _visit_rows(conn):
        if keys is None or r[0] in keys:
            out.setdefault(r[0], {})[int(r[1])] = _as_visit(r)
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


# --- the writer's lease (bench.lease) ------------------------------------------------


def acquire_lease(conn: StoreConnection) -> str:
    """Take the store's writer lease for this connection, or refuse if a live sweep holds it."""
    with transaction(conn, guard=False):
        current = lease.holder(conn)
        if current is not None and lease.alive(current):
            raise lease.busy(conn.path, current)
        row = lease.new_lease()
        upsert(conn, "lease", row)
    conn.lease = row["owner"]
    return conn.lease


def release_lease(conn: StoreConnection) -> None:
    """Give the lease back (a no-op if this connection does not hold it)."""
    token, conn.lease = conn.lease, None
    if token is None:
        return
    try:
        with transaction(conn, guard=False):
            conn.execute("DELETE FROM lease WHERE owner = ?", (token,))
    except (BenchError, sqlite3.Error):
        pass  # a lease left behind is stale once this process has ended


# --- reading -------------------------------------------------------------------------


def load_table(
    path: str | os.PathLike,
    table: str,
    columns: tuple[str, ...] | Callable[[StoreConnection], tuple[str, ...]],
    order: str,
) -> pd.DataFrame:
    """``columns`` of ``table`` as a DataFrame; empty (with those columns) if the store lacks
    the table (a schema-1 store without peers, a store older than schema 3 without quality).
    A column the store lacks (a size variable new to the registry, a peers column newer
    than the store) reads as its DEFAULT, or NULL, as the migration would fill it.
    ``columns`` may be a function of the open connection. Never creates or changes a file."""
    with closing(open_readonly(path)) as conn:
        if callable(columns):
            columns = columns(conn)
        with _sqlite_errors(Path(path)):
            layout = schema.inspect(conn)
            if table not in layout:
                return pd.DataFrame(columns=list(columns))
            have = layout[table][0]
            known = tables({}).get(table)
            missing = {c: (known.default_of(c) if known else None) or "NULL" for c in columns}
            cols = ", ".join(q(c) if c in have else f"{missing[c]} AS {q(c)}" for c in columns)
            conn.execute("BEGIN")
            try:
                return pd.read_sql_query(f"SELECT {cols} FROM {q(table)} ORDER BY {order}", conn)
            finally:
                conn.execute("COMMIT")


def load_cells(path: str | os.PathLike = "bpttbench.sqlite", registry=None) -> pd.DataFrame:
    """All cells as a DataFrame, one row per cell.

    Columns: ``cell_columns(registry)`` (the store's own size columns too, should
    it have more), then ``CELL_EXTRA``.
    """
    registered = size_columns(registry)

    def names(conn: StoreConnection) -> tuple[str, ...]:
        sizes = key_order({**conn.sizes, **registered})
        return (*CELL_HEAD, *sizes, *CELL_TAIL, *CELL_EXTRA)

    return load_table(path, "cells", names, "run_id, created")


def load_runs(path: str | os.PathLike = "bpttbench.sqlite") -> pd.DataFrame:
    """All runs as a DataFrame, one row per sweep invocation."""
    return load_table(path, "runs", (*RUN_COLUMNS, "finished", "argv"), "run_id")


def read_table(
    path: str | os.PathLike = "bpttbench.sqlite", table: str = "cells", registry=None
) -> pd.DataFrame:
    """The cells or the runs table (``export``)."""
    if table not in ("cells", "runs"):
        raise BenchError(f"unknown table {table!r}: choose cells or runs")
    return load_cells(path, registry) if table == "cells" else load_runs(path)


def export_csv(
    path: str | os.PathLike, out: str | os.PathLike, table: str = "cells", force: bool = False
) -> Path:
    """Write the cells (or runs) table to a CSV file, whole or not at all; return its path.

    ``out`` may not be the store, nor an existing file that is not an earlier
    export, unless ``force`` (``bench.paths``).
    """
    ours = paths.starts_with(EXPORT_HEADERS)
    out = paths.check_output_file(out, store=path, ours=ours, force=force, what="output")
    df = read_table(path, table)
    return paths.write_atomically(out, lambda fh: df.to_csv(fh, index=False))


def _clean(v: object) -> object:
    """NaN and infinities go to NULL; NumPy scalars to Python numbers."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
