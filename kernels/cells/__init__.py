"""Recurrent cells: one module per cell, one interface for every schedule.

Each cell module (``elman.py``, ``gru.py``, ``lstm.py``) holds, next to the
cell's equations and sources:

- its parameter type (a NamedTuple in PyTorch's layout) and ``init_*``;
- ``check(params) -> (Cell, Weights, dtype)``: validation, and the parameters
  in the one layout the kernels see (:class:`Weights`, gates stacked in rows);
- ``as_params(grads, cell)``: kernel gradients back into the parameter type;
- ``forward_step`` and ``backward_step``: the jitted pointwise halves of a
  step (the schedule does the GEMMs: the input projection x W_ih^T over a chunk
  of steps, the recurrent product h W_hh^T one step at a time). The forward
  step turns the pre-activations into the new state and the values the
  backward step needs; the backward step turns the error at the new state
  into the pre-activation errors and the error passed to the previous state
  outside W_hh. Each takes exactly the rows it reads (kernels/_sweeps.py
  slices them), since every array argument costs reference counting per step;
- the immediate-Jacobian structure that RTRL needs (module docstring);
- ``forward_flops`` and ``backward_flops``: the pointwise FLOPs, as terms.

The schedules (kernels/_sweeps.py: BPTT, truncated BPTT) are written once over
this interface, like Flax's ``RNNCellBase`` cells share ``__call__(carry, x)``
and PyTorch's ``torch.nn.RNNBase`` documents one layout per gate family. In the
jitted kernels a cell is an int id (see ``_common.py``); here it is the
:class:`Cell` record that :func:`identify` returns.
"""

from __future__ import annotations

from .. import _validate
from . import elman, gru, lstm
from ._common import ELMAN, GRU, LEAKY, LSTM, Cell, Weights
from .elman import RNNParams, init_rnn
from .gru import GRUParams, init_gru
from .lstm import LSTMParams, init_lstm

# Registry names of the cells, and their modules.
MODULES = {"elman": elman, "gru": gru, "lstm": lstm}
CELL_NAMES = tuple(MODULES)
INIT = {"elman": init_rnn, "gru": init_gru, "lstm": init_lstm}


def module_of(cell: Cell):
    return MODULES[cell.name]


def identify(params):
    """The cell of a parameter tuple, validated: ``(Cell, Weights, dtype)``.

    ``GRUParams`` and ``LSTMParams`` are the gated cells; anything else is
    taken for the Elman cell (an ``RNNParams``, or any five arrays in its
    order) and refused with a message if it is not one.
    """
    if isinstance(params, GRUParams):
        return gru.check(params)
    if isinstance(params, LSTMParams):
        return lstm.check(params)
    return elman.check(params)


def check_problem(params, xs, ys):
    """Check a gradient call: ``(Cell, Weights, xs, ys)`` with xs, ys (T, B, .) contiguous."""
    cell, weights, dtype = identify(params)
    xs, ys = _validate.check_sequence(
        xs, ys, weights.weight_ih.shape[1], weights.W_out.shape[0], dtype
    )
    return cell, weights, xs, ys


def as_params(grads: Weights, cell: Cell):
    """Gradients in the kernels' layout as the parameter type of ``cell``."""
    return module_of(cell).as_params(grads, cell)


def cell_named(name: str) -> Cell:
    """The registry's cell ``name`` (``"elman"``, ``"gru"``, ``"lstm"``), without a leak."""
    if name not in MODULES:
        raise ValueError(f"unknown cell {name!r}; cells are {', '.join(CELL_NAMES)}")
    module = MODULES[name]
    return module.cell() if name == "elman" else module.CELL


__all__ = [
    "CELL_NAMES",
    "ELMAN",
    "GRU",
    "LEAKY",
    "LSTM",
    "Cell",
    "GRUParams",
    "LSTMParams",
    "RNNParams",
    "Weights",
    "as_params",
    "cell_named",
    "check_problem",
    "identify",
    "init_gru",
    "init_lstm",
    "init_rnn",
]
