"""What every cell shares: the one parameter layout the kernels see, and the cell ids.

The public parameter types differ per cell (``RNNParams``, ``GRUParams``,
``LSTMParams``), but a schedule (BPTT, truncated BPTT) is compiled once for all
of them, so each cell's ``check`` hands the kernels the same NamedTuple,
:class:`Weights`, with its gates stacked in rows as PyTorch stacks them:

    weight_ih (G n, m), weight_hh (G n, n), bias_ih (G n,), bias_hh (G n,),
    W_out (p, n), b_out (p,)

G is the number of gate blocks (Elman 1, GRU 3, LSTM 4). The Elman cell has
one bias, b_h: it is ``bias_ih`` and ``bias_hh`` is an empty array that no
kernel reads. Gradients come back from the kernels in the same layout, and the
cell turns them into its own parameter type.

The kernels tell the cells apart by an int, the cell id (ELMAN, LEAKY, GRU,
LSTM): a schedule branches on it, once per step, into the cell's jitted
pointwise functions. An int keeps one compiled kernel per dtype for every cell,
where a closure or a function argument per cell would defeat Numba's on-disk
cache. The leaky Elman cell (alpha < 1) has its own id because it stores one
more value per step and passes error to the previous state outside W_hh; the
plain cell (alpha = 1) keeps the original code path, bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Cell ids: compile-time constants inside the kernels.
ELMAN = 0  # h' = tanh(a)
LEAKY = 1  # h' = (1 - alpha) h + alpha tanh(a), 0 < alpha < 1
GRU = 2
LSTM = 3


class Weights(NamedTuple):
    """Parameters (or gradients) in the kernels' layout, G gate blocks stacked in rows."""

    weight_ih: np.ndarray  # (G n, m)
    weight_hh: np.ndarray  # (G n, n)
    bias_ih: np.ndarray  # (G n,)
    bias_hh: np.ndarray  # (G n,); Elman: empty, unused
    W_out: np.ndarray  # (p, n)
    b_out: np.ndarray  # (p,)


class Cell(NamedTuple):
    """A cell as the public wrappers see it, once the parameters are identified.

    ``gates`` is G; ``stored`` is how many n-wide values a step keeps beside
    h for its backward step (the per-step memory is (1 + stored) n B numbers);
    ``alpha`` is the Elman leak (1 for the gated cells).
    """

    name: str  # "elman", "gru", "lstm"
    id: int  # ELMAN, LEAKY, GRU or LSTM
    gates: int
    stored: int
    alpha: float
