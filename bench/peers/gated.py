"""The GRU and LSTM peer cells: their problems, and a clean skip where bpttbench lacks them.

The PyTorch side (``torch_impl``) builds ``nn.GRU`` / ``nn.LSTM`` from any
params object with the fields weight_ih, weight_hh, bias_ih, bias_hh, W_out,
b_out. The comparison needs bpttbench's own gated kernels:
``bpttbench.init_gru`` / ``init_lstm`` for the weights (torch's layout and
initialisation, THEORY.md "Gated cells") and ``bpttbench.bptt`` /
``bpttbench.tbptt`` on those params. A bpttbench without them (before the
cells land) skips the gated cells with one note instead of failing.
"""

from __future__ import annotations

GATED = ("gru", "lstm")


def available(cell: str) -> bool:
    """True when the installed bpttbench can build (and differentiate) this cell."""
    import bpttbench

    return cell == "elman" or hasattr(bpttbench, f"init_{cell}")


def drop_unavailable(cells: list) -> tuple[list, str | None]:
    """The planned cells without the gated ones bpttbench lacks, and a one-line note."""
    lacking = sorted({c.cell for c in cells if not available(c.cell)})
    if not lacking:
        return cells, None
    inits = " / ".join(f"init_{name}" for name in lacking)
    note = (
        f"note: skipping the {' and '.join(n.upper() for n in lacking)} peers: this bpttbench "
        f"has no {inits} (its gated-cell kernels), so there is nothing to compare them with"
    )
    return [c for c in cells if c.cell not in lacking], note


def gated_problem(cell, m: int, p: int, seed: int):
    """(kernel, args) for a GRU or LSTM cell: bpttbench's weights, the sweep's data recipe."""
    import bpttbench
    import numpy as np

    if cell.cell not in GATED:
        raise ValueError(f"not a gated cell: {cell.cell!r}")
    dtype = np.dtype(cell.dtype)
    params = getattr(bpttbench, f"init_{cell.cell}")(m, cell.n, p, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)  # as the registry's _rnn_data draws it
    xs = rng.standard_normal((cell.T, cell.B, m)).astype(dtype)
    ys = rng.standard_normal((cell.T, cell.B, p)).astype(dtype)
    if cell.algorithm == "bptt":
        return bpttbench.bptt, (params, xs, ys)
    if cell.algorithm == "tbptt":
        return bpttbench.tbptt, (params, xs, ys, cell.k, cell.k)
    raise ValueError(f"no gated peer for {cell.algorithm!r}")
