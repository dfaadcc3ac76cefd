"""The results store's schema as data: its tables, the size columns the registry asks for,
the check every store passes before it is read or written, and the migrations from older schemas.

A table is a :class:`Table`: its columns with their SQL declarations, and the key an
upsert conflicts on. ``bpttbench.bench.store`` creates, checks and writes every table
from these definitions; nothing else spells out a ``CREATE TABLE`` or an upsert.

Size columns. The ``cells`` table has a column for every size variable of every
algorithm in the registry (the union of the specs' ``sizes``), typed from its default:
``INTEGER`` for an int, ``TEXT`` for a str (a categorical size such as the cell,
``"elman"``), ``REAL`` for a float. A registry that gains a size variable gets its
column on the next writable open (``ALTER TABLE ... ADD COLUMN``, inside the open's
transaction); older rows hold NULL there.

Checks (:func:`check`). A store is ours (``application_id``), of a version this
bpttbench knows, has every table and column with its declared type affinity and the
unique key its upserts need, and holds numbers in its numeric columns (SQLite keeps
whatever it is given, and reads a quoted unknown column name as a string). Anything
else is refused with one line naming what is wrong, before anything is read or written.

Versions. ``PRAGMA user_version`` holds the schema version. Schema 1 (bpttbench up
to issue 8) had ``runs``, ``cells`` and ``visits``, and ``peers`` once the peers had
run (a table that grew untyped columns). Schema 2 adds the ``lease`` table (one
writer at a time, ``bench.lease``) and always has ``peers``, typed. Schema 3 adds the
``quality`` table (``bpttbench quality``). Schema 4 adds the column ``runs.blas_kernels``
(the OpenBLAS kernels a run's GEMMs ran, :func:`bpttbench.bench.measure.blas_kernels`;
older runs hold NULL there: not recorded). A store of an older schema is read as it is
(a table it lacks reads as empty), and migrated to the current schema when opened for
writing (:func:`prepare`, in the open's transaction: the tables it lacks are created, the
columns it lacks added with ``ALTER TABLE ... ADD COLUMN``);
a newer schema is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bpttbench.bench import BenchError

APPLICATION_ID = 0x62707462  # "bptb"
SCHEMA_VERSION = 4
# The size columns of schema 1, in the order cell keys list them; every store has them.
LEGACY_SIZE_VARS = ("T", "n", "B", "m", "p", "k1", "k2", "depth", "width")
SQL_TYPES = {int: "INTEGER", str: "TEXT", float: "REAL"}


@dataclass(frozen=True)
class Table:
    """One table: ``columns`` are (name, SQL declaration) pairs, ``key`` the upsert's target."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    since: int = 1  # the schema version that introduced the table

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def type_of(self, column: str) -> str:
        return dict(self.columns)[column].split()[0]

    def default_of(self, column: str) -> str | None:
        """The column's DEFAULT as an SQL literal (what rows written before it existed hold)."""
        decl = dict(self.columns).get(column, "")
        return decl.split(" DEFAULT ", 1)[1].split()[0] if " DEFAULT " in decl else None

    def create_sql(self) -> str:
        parts = [f"{q(c)} {decl}" for c, decl in self.columns] + list(self.constraints)
        return f"CREATE TABLE IF NOT EXISTS {q(self.name)} (\n    " + ",\n    ".join(parts) + "\n)"

    def without(self, columns: set[str]) -> Table:
        """The table without ``columns`` (as an older schema had it)."""
        kept = tuple((c, d) for c, d in self.columns if c not in columns)
        return Table(self.name, kept, self.key, self.constraints, self.since)

    def with_columns(self, extra: Mapping[str, str], after: str) -> Table:
        """The table with columns ``extra`` (name -> SQL type) inserted after ``after``."""
        i = self.names.index(after) + 1
        new = tuple((c, t) for c, t in extra.items() if c not in self.names)
        return Table(self.name, self.columns[:i] + new + self.columns[i:], self.key,
                     self.constraints, self.since)  # fmt: skip


RUNS = Table(
    "runs",
    (
        ("run_id", "INTEGER PRIMARY KEY AUTOINCREMENT"), ("started", "TEXT NOT NULL"),
        ("finished", "TEXT"), ("machine", "TEXT"), ("cpu", "TEXT"),
        ("numba_threads", "INTEGER"), ("blas_threads", "INTEGER"), ("python", "TEXT"),
        ("numba", "TEXT"), ("numpy", "TEXT"), ("scipy", "TEXT"), ("commit", "TEXT"),
        ("preset", "TEXT"), ("gemm_gflops", "REAL"), ("gemv_gflops", "REAL"), ("argv", "TEXT"),
        ("blas_kernels", "TEXT"),  # "SkylakeX", "Haswell (OPENBLAS_CORETYPE=Haswell)"
    ),
    key=("run_id",),
)  # fmt: skip

# The cells table without its size columns (they come from the registry, after "size").
CELLS = Table(
    "cells",
    (
        ("cell_key", "TEXT NOT NULL UNIQUE"),
        ("run_id", "INTEGER NOT NULL REFERENCES runs(run_id)"),
        ("algorithm", "TEXT NOT NULL"), ("axis", "TEXT NOT NULL"), ("size", "INTEGER NOT NULL"),
        ("dtype", "TEXT NOT NULL"), ("numba_threads", "INTEGER"), ("blas_threads", "INTEGER"),
        ("machine", "TEXT"),
        ("status", "TEXT NOT NULL CHECK (status IN ('ok', 'skipped', 'error'))"),
        ("reason", "TEXT"), ("first_call_s", "REAL"), ("compile_s", "REAL"),
        ("median_s", "REAL"), ("q25_s", "REAL"), ("q75_s", "REAL"), ("iqr_s", "REAL"),
        ("cv", "REAL"), ("rounds", "INTEGER"), ("calls_per_round", "INTEGER"),
        ("disturbed_rounds", "INTEGER"), ("visits", "INTEGER"), ("peak_bytes", "INTEGER"),
        ("model_bytes", "REAL"), ("flops", "REAL"), ("gflops", "REAL"), ("efficiency", "REAL"),
        ("created", "TEXT NOT NULL"),
    ),
    key=("cell_key",),
)  # fmt: skip

VISITS = Table(
    "visits",
    (
        ("cell_key", "TEXT NOT NULL"), ("visit", "INTEGER NOT NULL"),
        ("run_id", "INTEGER NOT NULL REFERENCES runs(run_id)"), ("samples", "TEXT NOT NULL"),
        ("first_call_s", "REAL"), ("calls_per_round", "INTEGER"),
        ("disturbed_rounds", "INTEGER"), ("peak_bytes", "INTEGER"), ("created", "TEXT NOT NULL"),
    ),
    key=("cell_key", "visit"),
    constraints=("PRIMARY KEY (cell_key, visit)",),
)  # fmt: skip

# `bpttbench peers` (bpttbench.bench.peers): one row per (run, tool, algorithm, sizes, dtype).
PEERS = Table(
    "peers",
    (
        ("peer_key", "TEXT NOT NULL UNIQUE"), ("run_ts", "TEXT NOT NULL"),
        ("tool", "TEXT NOT NULL"), ("algorithm", "TEXT NOT NULL"), ("T", "INTEGER NOT NULL"),
        ("n", "INTEGER NOT NULL"), ("B", "INTEGER NOT NULL"), ("k", "INTEGER"), ("m", "INTEGER"),
        ("p", "INTEGER"), ("dtype", "TEXT NOT NULL DEFAULT 'float64'"),
        ("status", "TEXT NOT NULL CHECK (status IN ('ok', 'mismatch', 'error'))"),
        ("reason", "TEXT"), ("median_s", "REAL"), ("q25_s", "REAL"), ("q75_s", "REAL"),
        ("bpttbench_median_s", "REAL"), ("bpttbench_q25_s", "REAL"), ("bpttbench_q75_s", "REAL"),
        ("ratio_vs_bpttbench", "REAL"), ("max_rel_err", "REAL"), ("compile_s", "REAL"),
        ("rounds", "INTEGER"), ("threads", "INTEGER"), ("numba_threads", "INTEGER"),
        ("blas_threads", "INTEGER"), ("tool_version", "TEXT"), ("machine", "TEXT"),
        ("cpu", "TEXT"), ("commit", "TEXT"),
        ("loadavg", "REAL"),  # 1-minute load average at the cell's start
        ("created", "TEXT NOT NULL"),
        ("cell", "TEXT NOT NULL DEFAULT 'elman'"),  # elman, gru, lstm
        ("device", "TEXT NOT NULL DEFAULT 'cpu'"),  # cpu, or the GPU: 'cuda:0 NVIDIA H200'
        ("cpus", "INTEGER"),  # CPUs this process could use (pinned: --threads of them)
        ("versions", "TEXT"),  # JSON: tool, CUDA, Numba, NumPy, Python versions; affinity
    ),
    key=("peer_key",),
)  # fmt: skip

# The writer's lease: at most one row, the sweep that may write cells now.
LEASE = Table(
    "lease",
    (
        ("id", "INTEGER PRIMARY KEY CHECK (id = 1)"), ("owner", "TEXT NOT NULL"),
        ("host", "TEXT NOT NULL"), ("pid", "INTEGER NOT NULL"), ("pid_started", "TEXT"),
        ("started", "TEXT NOT NULL"), ("beat", "REAL NOT NULL"),
    ),
    key=("id",),
    since=2,
)  # fmt: skip

# `bpttbench quality` (bpttbench.bench.quality): one row per job key (kind, task, lags,
# algorithm, cell, setting, seed, machine); the setting as JSON, its parts in columns too.
QUALITY = Table(
    "quality",
    (
        ("quality_key", "TEXT NOT NULL UNIQUE"),
        ("run_id", "INTEGER REFERENCES runs(run_id)"),
        ("kind", "TEXT NOT NULL CHECK (kind IN ('learning', 'fidelity', 'vanishing'))"),
        ("task", "TEXT NOT NULL"), ("lags", "TEXT NOT NULL"), ("algorithm", "TEXT NOT NULL"),
        ("cell", "TEXT NOT NULL"), ("label", "TEXT NOT NULL"),
        ("setting", "TEXT NOT NULL"),  # JSON: everything that decides the result
        ("k1", "INTEGER"), ("k2", "INTEGER"), ("seed", "INTEGER"), ("n", "INTEGER"),
        ("rho", "REAL"), ("optimizer", "TEXT"), ("lr", "REAL"), ("clip", "REAL"),
        ("steps", "INTEGER"), ("B", "INTEGER"),
        ("final_loss", "REAL"), ("baselines", "TEXT"),  # JSON: the task's baseline losses
        ("threshold", "REAL"), ("steps_to_threshold", "INTEGER"),
        ("cosine", "REAL"), ("rel_err", "REAL"), ("norm_ratio", "REAL"),
        ("bias_cosine", "REAL"), ("bias_rel_err", "REAL"), ("spread", "REAL"),
        ("time_per_step_s", "REAL"), ("peak_bytes", "INTEGER"),
        ("diverged", "INTEGER NOT NULL DEFAULT 0"), ("reason", "TEXT"),
        ("curve", "TEXT"),  # JSON: the gradient norm against the lag (vanishing)
        ("fitted_rate", "REAL"), ("predicted_rate", "REAL"),
        ("machine", "TEXT"), ("created", "TEXT NOT NULL"),
    ),
    key=("quality_key",),
    since=3,
)  # fmt: skip

TABLES = (RUNS, CELLS, VISITS, PEERS, LEASE, QUALITY)
# Columns added to a table after the table itself: (table, column) -> the schema version
# that added them. An older store lacks them; the migration adds them (NULL in old rows).
COLUMNS_SINCE = {("runs", "blas_kernels"): 4}
# Tables a schema-1 store may lack (peers appeared with the first `bpttbench peers`).
OPTIONAL_IN_V1 = ("peers",)


def q(name: str) -> str:
    """A quoted SQL identifier (never a string literal, whatever the name)."""
    return '"' + name.replace('"', '""') + '"'


def _key_rank(var: str) -> tuple[int, str]:
    return (LEGACY_SIZE_VARS.index(var), "") if var in LEGACY_SIZE_VARS else (99, var)


def size_columns(registry: Mapping | None = None) -> dict[str, str]:
    """Size columns of the store: every size variable of the registry -> its SQL type.

    The union of every spec's ``sizes`` (the nine of schema 1 always included), in
    the order cell keys list them: schema 1's order, then new variables by name.
    A variable declared with two types (an int in one spec, a str in another) is
    refused. ``registry`` defaults to ``bpttbench.ALGORITHMS``.
    """
    if registry is None:
        import bpttbench

        registry = bpttbench.ALGORITHMS
    found: dict[str, str] = dict.fromkeys(LEGACY_SIZE_VARS, "INTEGER")
    origin: dict[str, str] = {}
    for name, spec in registry.items():
        for var, default in spec.sizes.items():
            kind = "INTEGER" if isinstance(default, bool) else SQL_TYPES.get(type(default))
            if kind is None:
                raise BenchError(
                    f"{name}: size {var} has a default of type {type(default).__name__}; "
                    "sizes are int, str or float"
                )
            if var in origin and found[var] != kind:
                raise BenchError(
                    f"size {var} is {found[var]} in {origin[var]} but {kind} in {name}"
                )
            found[var] = kind
            origin.setdefault(var, name)
    return {v: found[v] for v in sorted(found, key=_key_rank)}


def key_order(size: Mapping[str, object]) -> list[str]:
    """The size variables of ``size`` in the order a cell key lists them."""
    return sorted(size, key=_key_rank)


def tables(sizes: Mapping[str, str]) -> dict[str, Table]:
    """Every table of the current schema, the cells table with the size columns ``sizes``."""
    out = {t.name: t for t in TABLES}
    out["cells"] = CELLS.with_columns(sizes, after="size")
    return out


def schema_tables(version: int) -> list[tuple[Table, bool, bool]]:
    """The tables of schema ``version`` as (table, required, lenient) with the columns every
    store of that version has. A lenient table may lack columns or have untyped ones
    (schema 1's peers table grew by ``ALTER TABLE ADD COLUMN`` without types)."""
    out = []
    for table in tables(dict.fromkeys(LEGACY_SIZE_VARS, "INTEGER")).values():
        if table.since > version:
            continue
        old = version == 1 and table.name in OPTIONAL_IN_V1
        later = {c for (t, c), v in COLUMNS_SINCE.items() if t == table.name and v > version}
        out.append((table.without(later), not old, old))
    return out


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (section 3.1 of its datatype page)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def check_table(
    table: Table,
    have: Mapping[str, str],
    unique: list[tuple[str, ...]],
    where: str,
    lenient: bool = False,
) -> None:
    """Raise BenchError unless the store's table (``have``: column -> declared type, and its
    unique keys) has every column of ``table`` with the right type, and its key is unique.
    ``lenient``: columns may be missing or untyped, except the key."""
    for col, _decl in table.columns:
        want = affinity(table.type_of(col))
        if lenient and col not in table.key and (col not in have or not have[col]):
            continue
        if col not in have:
            raise BenchError(
                f"{where}: table {table.name} has no column {col} ({want}); the store is "
                "damaged or was edited, and is not read or written"
            )
        got = affinity(have[col])
        if got != want:
            raise BenchError(
                f"{where}: column {table.name}.{col} is declared {have[col] or 'untyped'}, "
                f"not {want}; the store is damaged or was edited, and is not read or written"
            )
    if tuple(table.key) not in unique:
        raise BenchError(
            f"{where}: table {table.name} has no unique key on ({', '.join(table.key)}); "
            "the store is damaged or was edited, and is not read or written"
        )


def conforms(table: Table, have: Mapping[str, str], unique: list[tuple[str, ...]]) -> bool:
    """Whether a store's table matches ``table`` exactly (every column, typed as declared)."""
    try:
        check_table(table, have, unique, "")
    except BenchError:
        return False
    return True


# --- a store on an open connection ----------------------------------------------------


def inspect(conn: sqlite3.Connection) -> dict[str, tuple[dict[str, str], list[tuple[str, ...]]]]:
    """Each table of the open database: {column: declared type} and its unique keys."""
    out = {}
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in names:
        info = conn.execute(f"PRAGMA table_info({q(name)})").fetchall()
        cols = {r[1]: r[2] for r in info}
        unique = []
        pk = tuple(r[1] for r in sorted(info, key=lambda r: r[5]) if r[5])
        if pk:
            unique.append(pk)
        for idx in conn.execute(f"PRAGMA index_list({q(name)})").fetchall():
            if idx[2]:  # unique
                unique.append(
                    tuple(r[2] for r in conn.execute(f"PRAGMA index_info({q(idx[1])})").fetchall())
                )
        out[name] = (cols, unique)
    return out


def check(conn: sqlite3.Connection, path: Path) -> tuple[int, dict] | None:
    """Check the open database is a bpttbench store this version reads.

    Returns (schema version, layout), or None for an empty database (no tables yet).
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    layout = inspect(conn)
    if app_id != APPLICATION_ID:
        if app_id == 0 and not layout:
            return None
        raise BenchError(
            f"{path} is a SQLite database of another application, not bpttbench results"
        )
    if version > SCHEMA_VERSION:
        raise BenchError(
            f"{path} has results schema {version}; this bpttbench reads up to {SCHEMA_VERSION}"
        )
    if version < 1:
        raise BenchError(f"{path} is a bpttbench database with no schema version; damaged")
    for table, required, lenient in schema_tables(version):
        if table.name not in layout:
            if not required:
                continue
            raise BenchError(
                f"{path}: table {table.name} is missing; the store is damaged or was edited, "
                "and is not read or written"
            )
        check_table(table, *layout[table.name], where=str(path), lenient=lenient)
    _check_values(conn, path, layout)
    return version, layout


def _check_values(conn: sqlite3.Connection, path: Path, layout: Mapping) -> None:
    """Refuse a store whose numeric columns hold text (SQLite keeps what it is given)."""
    for name in tables({}):
        if name not in layout:
            continue
        cols = [c for c, decl in layout[name][0].items() if affinity(decl) in ("INTEGER", "REAL")]
        if not cols:
            continue
        tests = [f"typeof({q(c)}) NOT IN ('integer', 'real', 'null')" for c in cols]
        counts = conn.execute(
            f"SELECT {', '.join(f'count(*) FILTER (WHERE {t})' for t in tests)} FROM {q(name)}"
        ).fetchone()
        for col, bad in zip(cols, counts, strict=True):
            if bad:
                raise BenchError(
                    f"{path}: column {name}.{col} holds text in {bad} row(s) where numbers "
                    "belong; the store was edited, and is not read"
                )


def prepare(conn: sqlite3.Connection, path: Path, sizes: Mapping[str, str]) -> None:
    """Inside the open's transaction: create a new store, or check, migrate and extend one."""
    found = check(conn, path)
    want = tables(sizes)
    if found is None:
        for table in want.values():
            conn.execute(table.create_sql())
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    version, layout = found
    added = False
    for (name, col), _since in COLUMNS_SINCE.items():  # columns newer than the store
        if name in layout and col not in layout[name][0]:
            conn.execute(
                f"ALTER TABLE {q(name)} ADD COLUMN {q(col)} {dict(want[name].columns)[col]}"
            )
            added = True
    if added:
        layout = inspect(conn)
    for name, table in want.items():  # older schemas: lease, quality, peers where missing
        if name not in layout:
            conn.execute(table.create_sql())
        elif name != "cells" and not conforms(table, *layout[name]):
            _rebuild(conn, table, layout[name][0])  # schema 1's peers grew untyped columns
    have = layout["cells"][0]
    for col, kind in sizes.items():  # size variables new to this store
        if col not in have:
            conn.execute(f"ALTER TABLE cells ADD COLUMN {q(col)} {kind}")
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _rebuild(conn: sqlite3.Connection, table: Table, have: Mapping[str, str]) -> None:
    """Recreate ``table`` with its declared columns and types, keeping its rows."""
    old = f"{table.name}_schema1"
    conn.execute(f"ALTER TABLE {q(table.name)} RENAME TO {q(old)}")
    conn.execute(table.create_sql())
    cols = ", ".join(q(c) for c in table.names if c in have)
    conn.execute(f"INSERT INTO {q(table.name)} ({cols}) SELECT {cols} FROM {q(old)}")
    conn.execute(f"DROP TABLE {q(old)}")
