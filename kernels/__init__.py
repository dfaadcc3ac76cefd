"""bpttbench: gradients of recurrent networks by the algorithm of your choice, and their costs.

    import bpttbench as bb
    p = bb.init_rnn(n_in, n_hidden, n_out, seed=0)
    loss, g = bb.bptt(p, xs, ys)                 # xs (T, B, m), ys (T, B, p)
    loss, g = bb.tbptt(p, xs, ys, k1, k2=None)   # Williams & Peng BPTT(k2; k1)
    loss, g = bb.rtrl(p, xs, ys)
    loss, g = bb.uoro(p, xs, ys, seed=0)         # also kf_rtrl, r_kf (seeded), snap1, snap2, rflo
    s = bb.stream("uoro", p, B=1, seed=0)        # online, chunk by chunk:
    loss, g = s.step(xs_chunk, ys_chunk)         #   carries the state across chunks
    q = bb.init_mlp([4, 16, 2])
    loss, g = bb.backprop(q, x, y)               # x (B, 4), y (B, 2)
    bb.ALGORITHMS                                # name -> AlgorithmSpec

This package is the ``kernels/`` folder of the repository: each algorithm lives
in its own module next to its equations (``bptt.py``, ``tbptt.py``, ``rtrl.py``,
``backprop.py``, and the online rules ``uoro.py``, ``kf_rtrl.py``, ``r_kf.py``,
``snap1.py``, ``snap2.py``, ``rflo.py``; ``stream.py`` runs them chunk by
chunk), and ``registry.py`` declares what the benchmark harness
(``bpttbench.bench``, the ``bench/`` folder) needs to know about each. The model,
the algorithms and their costs are in the repository's THEORY.md.
"""

from .backprop import backprop
from .bptt import bptt
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
    "MLPParams",
    "RNNParams",
    "Stream",
    "Term",
    "backprop",
    "bptt",
    "init_mlp",
    "init_rnn",
    "kf_rtrl",
    "r_kf",
    "rflo",
    "rtrl",
    "snap1",
    "snap2",
    "stream",
    "tbptt",
    "uoro",
]

# Last, once the names above are bound: a plugin's module may import bpttbench and build
# its spec from a built-in one (dataclasses.replace(bpttbench.ALGORITHMS["bptt"], ...)).
load_plugins(ALGORITHMS)
