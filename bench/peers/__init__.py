"""``bpttbench peers``: the same model, weights and data through PyTorch and JAX.

For every cell of a grid (tool, algorithm, T, n, B, k), in one process:

1. The problem is made by the registry's ``make_problem`` (the weights and
   data a sweep uses) and handed, converted, to the peer.
2. Check: the peer's loss and gradients are compared with the bpttbench
   kernel's at the same dtype. ``max_rel_err`` is the largest, over the loss
   and the gradient arrays, of ``max|peer - kernel| / max|kernel|``. A peer
   that disagrees beyond ``TOLERANCES[dtype]`` (1e-8 in float64, 1e-3 in
   float32) is not timed (the row is stored with status ``mismatch`` and the
   reason printed).
3. Timing: ``bench.measure.time_interleaved``, the sweeps' timer with its
   rounds alternating peer and kernel (A, B, A, B, ...; each round long
   enough for the clock, the garbage collector off), until each has had
   ``--min-time`` seconds and ``--min-rounds`` rounds; single-threaded, a
   kernel round whose CPU time falls short of its wall time (the process was
   descheduled) is timed again. Medians and quartiles of the per-call times,
   and the ratio ``peer median / bpttbench median`` (above 1: bpttbench is
   faster). JAX compile time is excluded from the timing and reported on its own.

Cores: on the CPU the whole run is pinned to ``--threads`` cores (``affinity``),
peer and kernel alike, so a one-thread row compares one core with one core
(XLA's CPU pools ignore the thread flags: unpinned, two of its threads shared a
"one-thread" BPTT call). The row's ``cpus`` is the pinned core count and
its ``versions`` JSON names the cores (``"affinity": "0"``).

Peers: PyTorch (``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` + autograd for BPTT,
the chunked-detach idiom for truncated BPTT(k; k)) and JAX (``lax.scan`` +
``grad`` for BPTT of every cell, ``jacfwd`` / ``jvp`` forward-mode accumulation
for the Elman cell's RTRL);
see ``torch_impl`` and ``jax_impl``. They are the optional extra
``bpttbench[peers]``; without them the command says how to install them and
exits 0.

``--device cuda`` runs the peers that see a GPU there (PyTorch; JAX when
``jax.devices("gpu")`` has one); bpttbench's kernels always run on the CPU, so
a GPU row's ratio is peer GPU time / bpttbench CPU time. Without any GPU the
command says so in one line and exits 1, writing nothing (see ``gpu``).
``--grid gpu`` is the CPU/GPU crossover grid.

The command itself (options, the loop over the cells, the table) is
``bench.peers.command``; this package holds the grid, one cell's check and
timing, and the rows.

Results go to the table ``peers`` of the results database (its schema is
``bench.schema.PEERS``, written with the store's upsert), one row per (run, tool,
algorithm, cell, T, n, B, k, dtype, device); :func:`load_peers` reads it.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import bpttbench
from bpttbench.bench import DEFAULT_DB, schema, store
from bpttbench.bench.measure import TimingSettings, time_interleaved

INSTALL_HINT = "pip install 'bpttbench[peers]'"
TOLERANCE = 1e-8  # float64: largest relative disagreement a timed peer may have
# float32: two float32 computations of the same gradient differ by their rounding
# only. Measured on CPU over the gpu grid's Elman cells (T = 1000, B = 1, n = 16..1024;
# T = 100, B = 32, n = 64..1024; tbptt k = 32; JAX RTRL T = 50, n = 16..64), PyTorch
# and JAX against bpttbench's float32 kernels: at most 2.4e-6 relative, the size
# of bpttbench float32 against float64 (2.0e-6). 1e-3 leaves ~400x for a GPU's other
# summation orders, while a wrong term costs 1e-2 and more. TF32 (a 10-bit
# mantissa, ~1e-3 here) would sit at the limit: the peers switch it off instead.
TOLERANCES = {"float64": TOLERANCE, "float32": 1e-3}
DTYPE = "float64"
DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda")
CELLS = ("elman", "gru", "lstm")
TOOLS = ("pytorch", "jax")
_MODULES = {"pytorch": "bpttbench.bench.peers.torch_impl", "jax": "bpttbench.bench.peers.jax_impl"}
# Which algorithms each tool computes, from the registry (AlgorithmSpec.peers).
_TOOL_ALGORITHMS = {
    tool: tuple(name for name, spec in bpttbench.ALGORITHMS.items() if tool in spec.peers)
    for tool in TOOLS
}
# Which cells each tool runs (its module's CELLS), and which of its algorithms run the
# gated ones (JAX's RTRL is the Elman cell's only: jax_impl.GATED_ALGORITHMS).
_TOOL_CELLS = {"pytorch": ("elman", "gru", "lstm"), "jax": ("elman", "gru", "lstm")}
_TOOL_GATED_ALGORITHMS = {"pytorch": ("bptt", "tbptt"), "jax": ("bptt",)}
_TOOL_ALIASES = {"torch": "pytorch", "pytorch": "pytorch", "jax": "jax"}
ALGORITHMS = tuple(name for name, spec in bpttbench.ALGORITHMS.items() if spec.peers)

ROUND_TIME = 0.01  # seconds a timed round lasts at least
MAX_ROUNDS = 10_000
# The columns of a peers row (bench.schema.PEERS: created, checked and written by the store).
PEER_COLUMNS = tuple(c for c in schema.PEERS.names if c != "peer_key")


# --- the grid ----------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """Cells of one algorithm: every n at the given T, B and k, for the given tools."""

    algorithm: str
    T: int
    B: int
    ns: tuple[int, ...]
    k: int | None = None
    cells: tuple[str, ...] = ("elman",)


@dataclass(frozen=True)
class Cell:
    tool: str
    algorithm: str
    T: int
    n: int
    B: int
    k: int | None
    cell: str = "elman"
    dtype: str = DTYPE

    def label(self) -> str:
        k = f" k={self.k}" if self.k is not None else ""
        cell = f"{self.cell} " if self.cell != "elman" else ""
        dtype = f" {self.dtype}" if self.dtype != DTYPE else ""
        return f"{cell}T={self.T} n={self.n} B={self.B}{k}{dtype}"


# Issue 5's targets. BPTT at B = 32 runs T = 100 (not 1000) to keep the grid to
# minutes: the per-step cost does not depend on T, so the ratio does not either.
# Then issue 10's: the gated cells' BPTT against nn.GRU / nn.LSTM + autograd and
# JAX's lax.scan at B = 1, T = 1000 (n = 64 and 256) and B = 32, T = 100 (n = 64
# to 512), and PyTorch's detach idiom for truncation; each side's call takes 0.01
# to 0.3 s, so a cell (gradient check, calibration, 5 rounds of at least 1 s)
# costs a few seconds (JAX's adds its compile, a second or two).
DEFAULT_GRID = (
    Group("bptt", T=1000, B=1, ns=(16, 64, 256)),
    Group("bptt", T=100, B=32, ns=(64, 128, 256, 512)),
    Group("tbptt", T=1000, B=1, ns=(16, 64, 256), k=32),
    Group("rtrl", T=50, B=1, ns=(16, 32, 64)),
    Group("bptt", T=1000, B=1, ns=(64, 256), cells=("gru", "lstm")),
    Group("bptt", T=100, B=32, ns=(64, 256, 512), cells=("gru", "lstm")),
    Group("tbptt", T=1000, B=1, ns=(64, 256), k=32, cells=("gru", "lstm")),
)
QUICK_GRID = (
    Group("bptt", T=200, B=1, ns=(16, 64)),
    Group("bptt", T=50, B=32, ns=(64,)),
    Group("tbptt", T=200, B=1, ns=(16, 64), k=32),
    Group("rtrl", T=20, B=1, ns=(16, 32)),
)
# CPU/GPU crossover (issue 14): where does a peer on a GPU overtake bpttbench on
# one CPU core? n up to 1024 for the Elman cell, the gated cells (GRU 3-4x, LSTM
# 5-8x its cost a call, measured on the cells branch) to 256 at T = 1000 and 512 at
# B = 32. With GRID_TIMING["gpu"] a slow cell costs ~7 calls a side (check, 2
# warm-ups, calibration, 3 rounds), a fast one ~0.3 s. Estimated from bpttbench's
# one-thread times (n = 1024: 0.8 s a call at T = 1000, B = 1; ~0.6 s at T = 100,
# B = 32) and the peers' compile times: about 4 minutes for both dtypes on a
# 16-core host with one H200, two thirds of it bpttbench's CPU side and JAX's
# compiles.
GPU_NS = (16, 32, 64, 128, 256, 512, 1024)
GPU_GRID = (
    Group("bptt", T=1000, B=1, ns=GPU_NS),
    Group("bptt", T=100, B=32, ns=GPU_NS[2:]),
    Group("tbptt", T=1000, B=1, ns=GPU_NS, k=32),
    Group("rtrl", T=50, B=1, ns=(16, 32, 64)),
    Group("bptt", T=1000, B=1, ns=(64, 256), cells=("gru", "lstm")),
    Group("bptt", T=100, B=32, ns=(64, 256, 512), cells=("gru", "lstm")),
    Group("tbptt", T=1000, B=1, ns=(64, 256), k=32, cells=("gru", "lstm")),
)
GRIDS = {"default": DEFAULT_GRID, "quick": QUICK_GRID, "gpu": GPU_GRID}
# (min_time, min_rounds) where the options do not say: the GPU grid times each
# side for 0.1 s and 3 rounds (a 0.8 s kernel call gets its 3 rounds, 7 calls).
GRID_TIMING = {"default": (1.0, 5), "quick": (0.2, 5), "gpu": (0.1, 3)}
DEFAULT_K = 32


def plan(
    tools: Sequence[str],
    algorithms: Sequence[str] = ALGORITHMS,
    T: Sequence[int] | None = None,
    n: Sequence[int] | None = None,
    B: Sequence[int] | None = None,
    k: int | None = None,
    quick: bool = False,
    *,
    grid: str | None = None,
    dtypes: Sequence[str] = (DTYPE,),
    cells: Sequence[str] | None = None,
) -> list[Cell]:
    """The cells to measure: the named grid (default, quick or gpu), with any axis overridden.

    ``T``, ``n`` and ``B`` replace the grid's values for every algorithm (the
    cells are the product), ``k`` the truncation of tbptt, ``cells`` the
    recurrent cells (elman, gru, lstm) of every group. Every cell is planned
    once per dtype, dtype by dtype. Duplicates are dropped; the order is the
    grid's.
    """
    out: list[Cell] = []
    for dtype in dtypes:
        for g in GRIDS[grid or ("quick" if quick else "default")]:
            if g.algorithm not in algorithms:
                continue
            kk = (k if k is not None else g.k or DEFAULT_K) if g.algorithm == "tbptt" else None
            for rnn in cells or g.cells:
                for tool in tools:
                    if g.algorithm not in _TOOL_ALGORITHMS[tool] or rnn not in _TOOL_CELLS[tool]:
                        continue
                    if rnn != "elman" and g.algorithm not in _TOOL_GATED_ALGORITHMS[tool]:
                        continue
                    for TT in T or (g.T,):
                        for BB in B or (g.B,):
                            for nn in n or g.ns:
                                c = Cell(tool, g.algorithm, int(TT), int(nn), int(BB), kk)
                                c = replace(c, cell=rnn, dtype=dtype)
                                if c not in out:
                                    out.append(c)
    return out


# --- measuring ---------------------------------------------------------------------


def max_rel_err(loss, grads: Iterable, ref_loss, ref_grads: Iterable) -> float:
    """Largest ``max|x - ref| / max|ref|`` over the loss and each gradient array."""
    import numpy as np

    worst = 0.0
    pairs = [(np.asarray(loss), np.asarray(ref_loss))]
    pairs += [(np.asarray(g), np.asarray(r)) for g, r in zip(grads, ref_grads, strict=True)]
    for x, r in pairs:
        if x.shape != r.shape:
            return math.inf
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        diff = float(np.max(np.abs(x - r))) if r.size else 0.0
        if not math.isfinite(diff):
            return math.inf
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def load_tools(wanted: Sequence[str]) -> tuple[dict[str, object], list[str]]:
    """Import the peer modules of ``wanted``; return ({tool: module}, [missing tools])."""
    found, missing = {}, []
    for tool in wanted:
        try:
            found[tool] = importlib.import_module(_MODULES[tool])
        except ImportError:
            missing.append(tool)
    return found, missing


def _problem(cell: Cell, m: int, p: int, seed: int):
    """The registry's problem for the cell (the weights and data a sweep uses)."""
    import numpy as np

    if cell.cell != "elman":
        from bpttbench.bench.peers.gated import gated_problem

        return gated_problem(cell, m, p, seed)
    spec = bpttbench.ALGORITHMS[cell.algorithm]
    size = {"T": cell.T, "n": cell.n, "B": cell.B, "m": m, "p": p}
    if cell.k is not None:
        size.update(k1=cell.k, k2=cell.k)
    args = spec.make_problem(size, np.dtype(cell.dtype), seed)
    return spec.func, args


def measure(
    cell: Cell,
    module,
    m: int = 8,
    p: int = 8,
    seed: int = 0,
    min_time: float = 1.0,
    min_rounds: int = 5,
    tolerance: float | None = None,
    device: str = "cpu",
    check_cpu: bool = False,
) -> dict:
    """Check and time one cell; returns the fields of a ``peers`` row (no run metadata).

    The peer runs on ``device`` (cpu, cuda), bpttbench on the CPU; ``tolerance``
    defaults to ``TOLERANCES[cell.dtype]``. ``check_cpu`` (single-threaded runs):
    retime a kernel round that was descheduled; the peer's rounds are not checked,
    as JAX and a GPU compute in threads of their own.
    """
    if tolerance is None:
        tolerance = TOLERANCES[cell.dtype]
    func, args = _problem(cell, m, p, seed)
    params, xs, ys = args[:3]
    named = getattr(module, "device_name", None)
    row: dict = {
        "tool": cell.tool, "algorithm": cell.algorithm, "T": cell.T, "n": cell.n, "B": cell.B,
        "k": cell.k, "m": m, "p": p, "dtype": cell.dtype, "tool_version": module.version(),
        "cell": cell.cell, "device": named(device) if named else "cpu",
    }  # fmt: skip
    ref_loss, ref_grads = func(*args)  # also compiles the kernel on a cold cache

    def kernel():
        return func(*args)

    spec = bpttbench.ALGORITHMS.get(cell.algorithm)
    implementation = spec.peers.get(cell.tool, cell.algorithm) if spec else cell.algorithm
    if device == "cpu":
        peer = module.make(implementation, params, xs, ys, cell.k)
    else:
        peer = module.make(implementation, params, xs, ys, cell.k, device=device)
    row["compile_s"] = peer.compile_s
    loss, grads = peer.check()
    err = max_rel_err(loss, grads, ref_loss, ref_grads)
    row["max_rel_err"] = err
    if not err <= tolerance:
        row["status"] = "mismatch"
        row["reason"] = (
            f"{cell.tool} {cell.algorithm} disagrees with bpttbench: max relative error "
            f"{err:.3g} > {tolerance:g}; not timed"
        )
        return row
    settings = TimingSettings(
        min_time=min_time, round_time=ROUND_TIME, min_rounds=min_rounds, max_rounds=MAX_ROUNDS
    )
    a, b = time_interleaved(peer.run, kernel, settings, check_cpu=(False, check_cpu))
    row.update(status="ok", median_s=a.median_s, q25_s=a.q25_s, q75_s=a.q75_s, rounds=a.rounds)
    row.update(bpttbench_median_s=b.median_s, bpttbench_q25_s=b.q25_s, bpttbench_q75_s=b.q75_s)
    row["ratio_vs_bpttbench"] = a.median_s / b.median_s if b.median_s > 0 else None
    return row


# --- the store ---------------------------------------------------------------------


def connect(db_path):
    """Open the results database for writing (``bench.store``: checked, ``peers`` included)."""
    return store.connect(db_path)


def peer_key(row: dict) -> str:
    k = row.get("k")
    # Elman rows on the CPU keep the key they had before cells and devices were columns.
    extra = "".join(
        f"|{row[c]}" for c, default in _DEFAULT_VALUE.items() if row.get(c, default) != default
    )
    return (
        f"{row['run_ts']}|{row['tool']}|{row['algorithm']}|T={row['T']}|n={row['n']}"
        f"|B={row['B']}|k={'' if k is None else k}|{row['dtype']}{extra}"
    )


_DEFAULT_VALUE = {"cell": "elman", "device": "cpu"}


def write_peer(conn, row: dict) -> None:
    """Insert or replace one row (by its run, tool, algorithm, sizes, dtype, cell and device).

    Peers write their own table only, so a sweep's writer lease does not stop them.
    """
    with store.transaction(conn, guard=False):
        store.upsert(conn, schema.PEERS, {"peer_key": peer_key(row), **row})


def load_peers(db_path: str | os.PathLike = DEFAULT_DB):
    """The ``peers`` table as a DataFrame, one row per measured (or refused) peer cell.

    Columns: ``PEER_COLUMNS`` (tool, algorithm, T, n, B, k, dtype, status,
    median_s, ratio_vs_bpttbench, max_rel_err, ...). Only rows with status
    ``ok`` carry timings; ``mismatch`` rows were refused by the gradient check.
    Empty (with those columns) when no peers were run. Never creates a file.
    """
    return store.load_table(db_path, "peers", PEER_COLUMNS, "run_ts, created")


# --- the command ---------------------------------------------------------------------
# bench.peers.command imports the names above, so it comes last.

from bpttbench.bench.peers.command import add_arguments, command, format_table  # noqa: E402

__all__ = ["add_arguments", "command", "format_table"]
