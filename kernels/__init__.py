"""bpttbench: gradients of recurrent networks by the algorithm of your choice, and their costs.

    import bpttbench as bb
    p = bb.init_rnn(n_in, n_hidden, n_out, seed=0)   # Elman; alpha=0.5 for a leak
    g = bb.init_gru(n_in, n_hidden, n_out, seed=0)   # torch.nn.GRU's layout, gates r|z|n
    l = bb.init_lstm(n_in, n_hidden, n_out, seed=0)  # torch.nn.LSTM's layout, gates i|f|g|o
    loss, grads = bb.bptt(p, xs, ys)             # any cell; xs (T, B, m), ys (T, B, p)
    loss, grads = bb.tbptt(g, xs, ys, k1, k2=None)   # Williams & Peng BPTT(k2; k1)
    loss, grads = bb.checkpointed_bptt(l, xs, ys, slots=None)  # exact, <= slots states
    loss, grads = bb.rtrl(p, xs, ys)             # the Elman cell, leaky or not
    loss, grads = bb.uoro(p, xs, ys, seed=0)     # also kf_rtrl, r_kf (seeded), snap1, snap2, rflo
    s = bb.stream("uoro", p, B=1, seed=0)        # online, chunk by chunk:
    loss, grads = s.step(xs_chunk, ys_chunk)     #   carries the state across chunks
    q = bb.init_mlp([4, 16, 2])
    loss, grads = bb.backprop(q, x, y)           # x (B, 4), y (B, 2)
    bb.ALGORITHMS                                # name -> AlgorithmSpec

This package is the ``kernels/`` folder of the repository: each cell lives in
its own module next to its equations (``cells/elman.py``, ``cells/gru.py``,
``cells/lstm.py``), each algorithm in its own module (``bptt.py``, ``tbptt.py``
and ``rtrl.py``, schedules over the cells; ``backprop.py``; the online rules
``uoro.py``, ``kf_rtrl.py``, ``r_kf.py``, ``snap1.py``, ``snap2.py``,
``rflo.py``, which ``stream.py`` runs chunk by chunk), and ``registry.py``
declares what the benchmark harness (``bpttbench.bench``, the ``bench/``
folder) needs to know about each, from the entries in ``specs/`` (one module a
family). The models, the algorithms and their costs are in the repository's
THEORY.md.
"""

from . import checkpoint_schedule, optim, tasks
from .backprop import backprop
from .bptt import bptt
from .cells import GRUParams, LSTMParams, init_gru, init_lstm
from .checkpointed_bptt import checkpoint_forward_steps, checkpointed_bptt
from .costs import AlgorithmSpec, Exponent, Term
from .kf_rtrl import kf_rtrl
from .model import MLPParams, RNNParams, init_mlp, init_rnn
from .r_kf import r_kf
from .registry import ALGORITHMS, load_plugins
from .rflo import rflo
from .rtrl import rtrl
from .snap1 import snap1
from .snap2 import snap2
from .stream import Stream, stream
from .tbptt import tbptt
from .uoro import uoro

__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "Exponent",
    "GRUParams",
    "LSTMParams",
    "MLPParams",
    "RNNParams",
    "Stream",
    "Term",
    "backprop",
    "bptt",
    "checkpoint_forward_steps",
    "checkpoint_schedule",
    "checkpointed_bptt",
    "init_gru",
    "init_lstm",
    "init_mlp",
    "init_rnn",
    "kf_rtrl",
    "optim",
    "r_kf",
    "rflo",
    "rtrl",
    "snap1",
    "snap2",
    "stream",
    "tasks",
    "tbptt",
    "uoro",
]

# Last, once the names above are bound: a plugin's module may import bpttbench and build
# its spec from a built-in one (dataclasses.replace(bpttbench.ALGORITHMS["bptt"], ...)).
load_plugins(ALGORITHMS)
