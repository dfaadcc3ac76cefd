"""Online gradients of one long sequence, chunk by chunk: ``bpttbench.stream``.

    s = bpttbench.stream("uoro", params, B=4, seed=0)
    for xs, ys in chunks:                    # xs (T_c, 4, m), ys (T_c, 4, p)
        loss, grads = s.step(xs, ys)         # the chunk's loss and gradient (estimate)
        s.params = update(s.params, grads)   # new weights from the next chunk on

A stream carries what its algorithm needs from one step to the next across
chunks: the hidden state h_t of each of the B sequences, the influence matrix
(RTRL) or its approximation (UORO's s~ and theta~, KF-RTRL's u and K, R-KF's a
and K, SnAp's kept entries, RFLO's trace) and, for a stochastic rule, its
random generator. Each chunk runs the same kernel as the one-shot function,
from the carried state, so with the weights held fixed:

- the losses and gradients of the chunks sum to those of one call on the
  whole sequence (to summation order), for every rule, and for RTRL to BPTT's
  exact gradient;
- a stochastic rule draws the same signs in the same order as its one-shot
  call with the same seed (the draws of step t do not depend on what follows).

``s.params = new`` changes the weights between chunks; the new parameters must
have the shapes, dtype and leak ``alpha`` of the first ones (SnAp-2 also keeps
the first W_hh's sparsity pattern). The stream reads the arrays it was given,
so an in-place edit of them is seen too, unchecked. Chunks must keep the
stream's batch size B and the parameters' input and output sizes.

Truncated BPTT, ``stream("tbptt", p, B, k1=, k2=None)``, takes chunks of a
multiple of k1 steps (each ends on an update, so no error is pending across
chunks) and carries the last min(k2 - k1, t) states and inputs that the next
window reaches back into (``_tbptt_stream.py``); the chunks' gradients sum to
the one-shot ``tbptt``. With k1 = k2 = the chunk length it is "BPTT over the
chunk": exact within each chunk, the state carried, no gradient across chunks.

Every stream runs the Elman cell, plain or leaky (``params.alpha``); of the gated
cells (``GRUParams``, ``LSTMParams``) only SnAp-1 streams (``snap1_gated.py``:
h, the LSTM's c and the kept traces carried), the others refuse them with
NotImplementedError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Names, not modules: the package re-exports each function under its module's name.
from . import _online, _tbptt_stream, cells, snap1_gated
from ._validate import check_rnn_params, check_sequence, check_size
from .cells import GRUParams, LSTMParams
from .kf_rtrl import advance as kf_rtrl_advance
from .kf_rtrl import start as kf_rtrl_start
from .r_kf import advance as r_kf_advance
from .r_kf import start as r_kf_start
from .rflo import advance as rflo_advance
from .rflo import start as rflo_start
from .rtrl import advance as rtrl_advance
from .rtrl import start as rtrl_start
from .snap1 import advance as snap1_advance
from .snap1 import start as snap1_start
from .snap2 import advance as snap2_advance
from .snap2 import start as snap2_start
from .uoro import advance as uoro_advance
from .uoro import start as uoro_start


def _tbptt_start(arrays, B, k1=None, k2=None):
    return _tbptt_stream.start(arrays, B, k1, k2)


def _rtrl_advance(state, arrays, alpha, xs, ys):
    return rtrl_advance(state, arrays, xs, ys, alpha)


GATED = ("snap1",)  # the rules whose streams take the gated cells


def _refuse_gated(name, params):
    if isinstance(params, (GRUParams, LSTMParams)) and name not in GATED:
        raise NotImplementedError(
            f"stream({name!r}) runs the Elman cell only (RNNParams, with or without the "
            f"leak alpha); got {type(params).__name__}: the gated cells have no stream yet"
        )


@dataclass(frozen=True)
class _Rule:
    """How a stream runs one algorithm: its state at t = 0, a chunk from a state, its options."""

    start: Callable  # start(arrays, B, **options) -> state
    advance: Callable  # advance(state, arrays, alpha, xs, ys) -> (loss, grads)
    options: tuple[str, ...] = ()
    leaky: bool = True  # runs the leaky cell (0 < alpha <= 1), not only alpha = 1


RULES: dict[str, _Rule] = {
    "rtrl": _Rule(rtrl_start, _rtrl_advance),
    "uoro": _Rule(uoro_start, uoro_advance, ("seed",)),
    "kf_rtrl": _Rule(kf_rtrl_start, kf_rtrl_advance, ("seed",)),
    "r_kf": _Rule(r_kf_start, r_kf_advance, ("seed",)),
    "snap1": _Rule(snap1_start, snap1_advance),
    "snap2": _Rule(snap2_start, snap2_advance),
    "rflo": _Rule(rflo_start, rflo_advance),
    "tbptt": _Rule(_tbptt_start, _tbptt_stream.advance, ("k1", "k2")),
}

_FIELDS = ("W_ih", "W_hh", "b_h", "W_out", "b_out")


class Stream:
    """One online gradient computation over a sequence that arrives in chunks.

    Build it with :func:`stream`. Attributes: ``name`` (the algorithm), ``B``
    (sequences in the batch), ``options`` (e.g. the seed), ``steps`` (time
    steps run so far), ``state`` (the algorithm's carried state, to inspect).
    """

    def __init__(self, name, params, B=1, **options):
        if name not in RULES:
            raise ValueError(
                f"no stream for {name!r}: the online algorithms are {', '.join(sorted(RULES))}"
            )
        rule = RULES[name]
        unknown = sorted(set(options) - set(rule.options))
        if unknown:
            takes = ", ".join(rule.options) if rule.options else "no options"
            raise TypeError(
                f"stream({name!r}) got unexpected option(s) {unknown}; it takes {takes}"
            )
        self.name = name
        self.B = check_size("B", B)
        self.options = dict(options)
        _refuse_gated(name, params)
        self._cell = None
        if isinstance(params, (GRUParams, LSTMParams)):
            self._cell, weights, self._dtype = cells.identify(params)
            self._params, self._arrays, self._rule = params, weights, rule
            self.state = snap1_gated.start(self._cell.name, weights, self.B)
            self.steps = 0
            return
        arrays, self._dtype = check_rnn_params(params)
        self._alpha = _online.leak(params)
        if not rule.leaky and self._alpha != 1.0:
            raise NotImplementedError(
                f"the {name} kernel has no leak yet: stream({name!r}) needs params.alpha = 1, "
                f"got {self._alpha}"
            )
        self._params, self._arrays = params, arrays
        self._rule = rule
        self.state = rule.start(arrays, self.B, **options)
        self.steps = 0

    @property
    def params(self):
        """The weights the next chunk runs with."""
        return self._params

    @params.setter
    def params(self, new):
        _refuse_gated(self.name, new)
        if self._cell is not None or isinstance(new, (GRUParams, LSTMParams)):
            self._set_gated(new)
            return
        arrays, dtype = check_rnn_params(new)
        if dtype != self._dtype:
            raise TypeError(f"params have dtype {dtype} but the stream's are {self._dtype}")
        for name, old, a in zip(_FIELDS, self._arrays, arrays, strict=True):
            if a.shape != old.shape:
                raise ValueError(
                    f"params.{name} has shape {a.shape} but the stream's has {old.shape}"
                )
        alpha = _online.leak(new)
        if alpha != self._alpha:
            raise ValueError(f"params.alpha is {alpha} but the stream's is {self._alpha}")
        check_weights = getattr(self.state, "check_weights", None)  # SnAp-2's fixed pattern
        if check_weights is not None:
            check_weights(arrays[1])
        self._params, self._arrays = new, arrays

    def _set_gated(self, new):
        have, got = type(self._params).__name__, type(new).__name__
        if got != have:
            raise TypeError(f"params are {got} but the stream's are {have}")
        _cell, weights, dtype = cells.identify(new)
        if dtype != self._dtype:
            raise TypeError(f"params have dtype {dtype} but the stream's are {self._dtype}")
        for name, old, a in zip(weights._fields, self._arrays, weights, strict=True):
            if a.shape != old.shape:
                raise ValueError(
                    f"params.{name} has shape {a.shape} but the stream's has {old.shape}"
                )
        self._params, self._arrays = new, weights

    def step(self, xs, ys):
        """Run the chunk ``xs`` (T_c, B, m), ``ys`` (T_c, B, p) from the carried state.

        Returns the chunk's loss and its gradient (estimate), an RNNParams;
        the state afterwards is the one at the chunk's last step.
        """
        W_ih = self._arrays[0]
        W_out = self._arrays.W_out if self._cell is not None else self._arrays[3]
        xs, ys = check_sequence(xs, ys, W_ih.shape[1], W_out.shape[0], self._dtype)
        if xs.shape[1] != self.B:
            raise ValueError(
                f"xs holds a batch of {xs.shape[1]} but the stream carries B = {self.B} sequences"
            )
        if self._cell is not None:
            loss, grads = snap1_gated.advance(self.state, self._arrays, xs, ys)
            self.steps += xs.shape[0]
            return loss, cells.as_params(cells.Weights(*grads), self._cell)
        loss, grads = self._rule.advance(self.state, self._arrays, self._alpha, xs, ys)
        self.steps += xs.shape[0]
        return loss, grads


def stream(name, params, B=1, **options) -> Stream:
    """A :class:`Stream` of the online algorithm ``name`` for ``B`` sequences.

    Parameters
    ----------
    name : str
        ``"rtrl"``, ``"uoro"``, ``"kf_rtrl"``, ``"r_kf"``, ``"snap1"``, ``"snap2"``,
        ``"rflo"`` or ``"tbptt"``.
    params : RNNParams
        The first weights (with ``alpha``, the leak, when present).
    B : int
        Sequences in the batch; every chunk must hold this many.
    **options
        ``seed`` (int, default 0) for the stochastic rules; ``k1`` (required) and
        ``k2`` (default k1) for ``"tbptt"``.
    """
    return Stream(name, params, B, **options)
