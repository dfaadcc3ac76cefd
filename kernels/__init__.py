"""Exact gradients of an Elman RNN and an MLP, by the algorithm of your choice.

    import kernels
    p = kernels.init_rnn(n_in, n_hidden, n_out, seed=0)
    loss, g = kernels.bptt(p, xs, ys)                 # xs (T, B, m), ys (T, B, p)
    loss, g = kernels.tbptt(p, xs, ys, k1, k2=None)   # Williams & Peng BPTT(k2; k1)
    loss, g = kernels.rtrl(p, xs, ys)
    q = kernels.init_mlp([4, 16, 2])
    loss, g = kernels.backprop(q, x, y)               # x (B, 4), y (B, 2)
    kernels.ALGORITHMS                                # name -> AlgorithmSpec

Each algorithm lives in its own module next to its equations (``bptt.py``,
``tbptt.py``, ``rtrl.py``, ``backprop.py``); ``registry.py`` declares their
costs for the benchmark harness.
"""

from .backprop import backprop
from .bptt import bptt
from .costs import AlgorithmSpec, Exponent, Term
from .model import MLPParams, RNNParams, init_mlp, init_rnn
from .registry import ALGORITHMS
from .rtrl import rtrl
from .tbptt import tbptt

__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "Exponent",
    "MLPParams",
    "RNNParams",
    "Term",
    "backprop",
    "bptt",
    "init_mlp",
    "init_rnn",
    "rtrl",
    "tbptt",
]
