"""``bpttbench peers --device cuda``: which peers may run on a GPU, and what a row records.

bpttbench's kernels run on the CPU only; a peer runs on the GPU when its
library sees one: PyTorch when ``torch.cuda.is_available()``, JAX when
``jax.devices("gpu")`` lists one. A peer that sees none is skipped with a
note; when no peer sees one, the command prints :func:`no_gpu_line` and exits
with ``NO_GPU_EXIT`` (1) before it opens the store, so nothing is written: a
script that asked for GPU rows learns that it got none.

Timing on the GPU is the peer modules' business (``torch_impl`` synchronizes
after each call, ``jax_impl`` blocks until the result is ready); this module
only chooses the peers and describes the device and the versions for a row.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping

NO_GPU_EXIT = 1
_CHECKS = {"pytorch": "torch.cuda.is_available() is False", "jax": "JAX sees no GPU"}


def before_import(device: str) -> None:
    """Environment the GPU libraries read when they are first imported.

    JAX takes 75% of the GPU's memory on its first use unless told otherwise;
    PyTorch shares the GPU in the same process, so JAX allocates as it goes.
    """
    if device != "cpu":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def select(modules: Mapping[str, object], device: str) -> tuple[dict[str, object], dict[str, str]]:
    """The peers that can run on ``device``, and why each other one cannot."""
    if device == "cpu":
        return dict(modules), {}
    kept, why = {}, {}
    for tool, mod in modules.items():
        check = getattr(mod, "gpu_available", None)
        if check is not None and check():
            kept[tool] = mod
        else:
            why[tool] = _CHECKS.get(tool, "it has no GPU support")
    return kept, why


def skip_notes(why: Mapping[str, str]) -> list[str]:
    """One note per peer that cannot run on the GPU while another can."""
    return [
        f"note: {tool} cannot run on the GPU ({reason}), skipping it"
        for tool, reason in why.items()
    ]


def no_gpu_line(why: Mapping[str, str]) -> str:
    """The one line printed when ``--device cuda`` finds no GPU."""
    why = "; ".join(why.values())
    return (
        "bpttbench peers: --device cuda needs a GPU and none is visible"
        + (f" ({why})" if why else "")
        + "; nothing was measured and the store was not written"
    )


def device_name(module, device: str) -> str:
    """The row's device: ``"cpu"`` or ``"cuda:0 NVIDIA H200"``."""
    named = getattr(module, "device_name", None)
    return named(device) if named is not None else "cpu"


def device_names(modules: Mapping[str, object], device: str) -> str:
    """Where the peers run, for the header line: ``"cpu"`` or each tool's GPU."""
    names = {tool: device_name(mod, device) for tool, mod in modules.items()}
    if len(set(names.values())) == 1:
        return next(iter(names.values()), "cpu")
    return ", ".join(f"{tool} {name}" for tool, name in names.items())


def versions_json(module, meta: Mapping, extra: Mapping | None = None) -> str:
    """The row's ``versions``: the tool's (and its CUDA's), Numba's, NumPy's and Python's,
    and ``extra``'s entries (the command's: ``affinity``, the CPUs the run's threads could
    use, ``"0"`` pinned to one core; ``openblas``, the kernels of bpttbench's BLAS)."""
    got = getattr(module, "versions", None)
    out = dict(got()) if got is not None else {"tool": module.version()}
    out.update({k: str(v) for k, v in (extra or {}).items() if v is not None})
    for key in ("numba", "numpy", "scipy", "python"):
        if meta.get(key):
            out[key] = str(meta[key])
    out.setdefault("python", platform.python_version())
    return json.dumps(out, sort_keys=True)


def error_reason(exc: BaseException) -> str:
    """A failed cell's reason: out of memory (CPU or GPU), or the error's first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if type(exc) is MemoryError:
        return "out of memory"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text}"[:300]


def merge(src, dst) -> int:
    """Copy every ``peers`` row of the results database ``src`` into ``dst``; return the count.

    A row with the same key (run, tool, algorithm, sizes, dtype, cell, device)
    is replaced, so merging twice changes nothing. ``reports/gpu/run.sh`` runs
    the CPU peers beside the GPU peers, each into its own file, and merges them.
    """
    from bpttbench.bench.peers import connect
    from bpttbench.bench.store import open_readonly

    open_readonly(src).close()  # a results database, or a BenchError naming it
    conn = connect(dst)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (str(src),))
        if not conn.execute(
            "SELECT count(*) FROM src.sqlite_master WHERE type = 'table' AND name = 'peers'"
        ).fetchone()[0]:
            return 0
        have = {r[1] for r in conn.execute("PRAGMA main.table_info(peers)")}
        cols = ", ".join(
            f'"{r[1]}"' for r in conn.execute("PRAGMA src.table_info(peers)") if r[1] in have
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = conn.execute(
                f"INSERT OR REPLACE INTO main.peers ({cols}) SELECT {cols} FROM src.peers"
            ).rowcount
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return n
    finally:
        conn.close()


def main(argv=None) -> int:
    """``python -m bpttbench.bench.peers.gpu merge SRC DST``: what run.sh needs beyond the CLI."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bpttbench.bench.peers.gpu")
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("merge", help="copy the peers rows of SRC into DST")
    m.add_argument("src")
    m.add_argument("dst")
    s = sub.add_parser("summary", help="rows per device, dtype and status, and the crossovers")
    s.add_argument("db")
    args = parser.parse_args(argv)
    if args.what == "merge":
        n = merge(args.src, args.dst)
        print(f"merged {n} peers rows from {args.src} into {args.dst}")
    else:
        print(summary(args.db))
    return 0


def summary(db) -> str:
    """Rows per (device, dtype, status), then where each GPU line crosses ratio 1."""
    from bpttbench.bench import report_gpu
    from bpttbench.bench.peers import load_peers

    df = load_peers(db)
    if df.empty:
        return f"{db}: no peers rows"
    out = [f"{db}: {len(df)} peers rows"]
    counts = df.groupby(["device", "dtype", "status"], dropna=False).size()
    out += [f"  {dev} {dt} {st}: {k}" for (dev, dt, st), k in counts.items()]
    for line in report_gpu.lines(df):
        n_x = line.crossover()
        where = (
            f"GPU faster from n ~ {n_x:.0f}"
            if n_x is not None
            else (
                "GPU faster at every n" if (line.ratio < 1).all() else "bpttbench faster at every n"
            )
        )
        out.append(f"  {line.label} B={line.B} {line.dtype}: {where}")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
