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

Each ``step`` returns arrays the caller owns: fresh ones per chunk, shared with
nothing the stream keeps (SnAp-1, RFLO and UORO return views of the one fresh
array their kernel folded the gradient into, with no copy). The per-chunk work
outside the kernel is kept small, since a 32-step chunk of RFLO at n = 64 is
~42 us and the issue allows it 5%: a chunk that is a C-contiguous 3-D array of
the stream's dtype, B, m and p is checked by comparing those and one compiled
finiteness pass over xs and ys; any other chunk takes the full check
(``check_sequence``), which converts 2-D and strided chunks and names whatever
is wrong. The O(n^2) rules' kernels (SnAp-1, RFLO, UORO) take a handful of
arrays (Numba types and unboxes each argument at every call, ~0.05 us an array
and more in tuples): the state, one flat scratch array carved into views inside
the kernel and allocated once per stream, and one flat gradient array whose
views are returned (``_online.grad_views``). What remains per chunk, ~5 us at n = 64 on a loaded
2-core machine, is that dispatch, the checks and making the views; the O(n^3)
rules' chunks are long enough that their ~6 us is 1 to 2%.

Truncated BPTT, ``stream("tbptt", p, B, k1=, k2=None)``, takes chunks of a
multiple of k1 steps (each ends on an update, so no error is pending across
chunks) and carries the last min(k2 - k1, t) states and inputs that the next
window reaches back into (``_tbptt_stream.py``); the chunks' gradients sum to
the one-shot ``tbptt``. With k1 = k2 = the chunk length it is "BPTT over the
chunk": exact within each chunk, the state carried, no gradient across chunks.

Every stream runs the Elman cell, plain or leaky (``params.alpha``). Truncated
BPTT also runs the gated cells (``GRUParams``, ``LSTMParams``): its schedule is
the cells' shared sweep (kernels/_sweeps.py), so carrying the window's states
and what the cell stored beside them (the LSTM's c) is all a gated stream
needs. SnAp-1 runs them too (``snap1_gated.py`` carries h, the LSTM's c and the
kept traces). The other online rules refuse the gated cells with
NotImplementedError: their kernels are the Elman cell's (the gated RTRL kernels
start from h_0 = 0 and carry no state out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Names, not modules: the package re-exports each function under its module's name.
from . import _online, _tbptt_stream, cells, snap1_gated
from ._validate import check_rnn_params, check_sequence, check_size, finite_pair
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


def _snap1_start(arrays, B):
    if _is_gated(arrays):
        cell, weights, _ = cells.identify(arrays)
        return snap1_gated.start(cell.name, weights, B)
    return snap1_start(arrays, B)


def _snap1_gated_advance(state, arrays, alpha, xs, ys):
    loss, grads = snap1_gated.advance(state, cells.Weights(*arrays), xs, ys)
    return loss, cells.as_params(cells.Weights(*grads), cells.cell_named(state.cell))


def _is_gated(params) -> bool:
    return isinstance(params, (GRUParams, LSTMParams))


def _refuse_gated(name, params):
    if _is_gated(params) and not RULES[name].gated:
        gated = ", ".join(sorted(k for k, r in RULES.items() if r.gated))
        raise NotImplementedError(
            f"stream({name!r}) runs the Elman cell only (RNNParams, with or without the "
            f"leak alpha); got {type(params).__name__}: of the streams only {gated} runs "
            f"the gated cells"
        )


def _checked(params):
    """(arrays, dtype, alpha): the Elman cell's five arrays, or a gated cell's checked params."""
    if _is_gated(params):
        _, w, dtype = cells.identify(params)
        return type(params)(*w), dtype, 1.0
    arrays, dtype = check_rnn_params(params)
    return arrays, dtype, _online.leak(params)


@dataclass(frozen=True)
class _Rule:
    """How a stream runs one algorithm: its state at t = 0, a chunk from a state, its options."""

    start: Callable  # start(arrays, B, **options) -> state
    advance: Callable  # advance(state, arrays, alpha, xs, ys) -> (loss, grads)
    options: tuple[str, ...] = ()
    leaky: bool = True  # runs the leaky cell (0 < alpha <= 1), not only alpha = 1
    gated: bool = False  # runs GRUParams and LSTMParams too (then advance gets the params)
    gated_advance: Callable | None = None  # advance for the gated cells, where it differs

    def advance_for(self, params) -> Callable:
        """The advance of ``params``'s cell (chosen once: a stream keeps its cell)."""
        return self.gated_advance if _is_gated(params) and self.gated_advance else self.advance


RULES: dict[str, _Rule] = {
    "rtrl": _Rule(rtrl_start, _rtrl_advance),
    "uoro": _Rule(uoro_start, uoro_advance, ("seed",)),
    "kf_rtrl": _Rule(kf_rtrl_start, kf_rtrl_advance, ("seed",)),
    "r_kf": _Rule(r_kf_start, r_kf_advance, ("seed",)),
    "snap1": _Rule(_snap1_start, snap1_advance, gated=True, gated_advance=_snap1_gated_advance),
    "snap2": _Rule(snap2_start, snap2_advance),
    "rflo": _Rule(rflo_start, rflo_advance),
    "tbptt": _Rule(_tbptt_start, _tbptt_stream.advance, ("k1", "k2"), gated=True),
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
        arrays, self._dtype, self._alpha = _checked(params)
        if not rule.leaky and self._alpha != 1.0:
            raise NotImplementedError(
                f"the {name} kernel has no leak yet: stream({name!r}) needs params.alpha = 1, "
                f"got {self._alpha}"
            )
        self._params, self._arrays = params, arrays
        self._rule = rule
        self._advance = rule.advance_for(params)
        # what the fast check of a chunk compares against (the dtype object itself:
        # np.dtype instances of the builtin floats are singletons)
        self._dtype = np.dtype(self._dtype)
        self._xs_tail = (self.B, arrays[0].shape[1])
        self._ys_tail = (self.B, arrays[-2].shape[0])
        self.state = rule.start(arrays, self.B, **options)
        self.steps = 0

    @property
    def params(self):
        """The weights the next chunk runs with."""
        return self._params

    @params.setter
    def params(self, new):
        _refuse_gated(self.name, new)
        if type(new) is not type(self._params) and (_is_gated(new) or _is_gated(self._params)):
            raise TypeError(
                f"params are {type(new).__name__} but the stream runs "
                f"{type(self._params).__name__}: a stream keeps its cell"
            )
        arrays, dtype, alpha = _checked(new)
        if dtype != self._dtype:
            raise TypeError(f"params have dtype {dtype} but the stream's are {self._dtype}")
        fields = arrays._fields if _is_gated(new) else _FIELDS
        for name, old, a in zip(fields, self._arrays, arrays, strict=True):
            if a.shape != old.shape:
                raise ValueError(
                    f"params.{name} has shape {a.shape} but the stream's has {old.shape}"
                )
        if alpha != self._alpha:
            raise ValueError(f"params.alpha is {alpha} but the stream's is {self._alpha}")
        check_weights = getattr(self.state, "check_weights", None)  # SnAp-2's fixed pattern
        if check_weights is not None:
            check_weights(arrays[1])
        self._params, self._arrays = new, arrays

    def _checked_chunk(self, xs, ys):
        W_ih, W_out = self._arrays[0], self._arrays[-2]
        xs, ys = check_sequence(xs, ys, W_ih.shape[1], W_out.shape[0], self._dtype)
        if xs.shape[1] != self.B:
            raise ValueError(
                f"xs holds a batch of {xs.shape[1]} but the stream carries B = {self.B} sequences"
            )
        return xs, ys

    def step(self, xs, ys):
        """Run the chunk ``xs`` (T_c, B, m), ``ys`` (T_c, B, p) from the carried state.

        Returns the chunk's loss and its gradient (estimate), in the parameters' type;
        the state afterwards is the one at the chunk's last step.
        """
        # The common chunk (3-D, C-contiguous, the stream's dtype, B, m and p) is checked
        # here at the cost of a few attribute reads and one compiled pass for finiteness;
        # anything else (2-D chunks, other layouts, and every error) goes through
        # check_sequence, which converts or names what is wrong.
        dtype = self._dtype
        if not (
            type(xs) is np.ndarray
            and type(ys) is np.ndarray
            and xs.dtype is dtype
            and ys.dtype is dtype
            and xs.shape[1:] == self._xs_tail
            and ys.shape[1:] == self._ys_tail
            and xs.shape[0] == ys.shape[0] > 0
            and xs.flags.c_contiguous
            and ys.flags.c_contiguous
            and finite_pair(xs, ys)
        ):
            xs, ys = self._checked_chunk(xs, ys)
        out = self._advance(self.state, self._arrays, self._alpha, xs, ys)
        self.steps += xs.shape[0]
        return out


def stream(name, params, B=1, **options) -> Stream:
    """A :class:`Stream` of the online algorithm ``name`` for ``B`` sequences.

    Parameters
    ----------
    name : str
        ``"rtrl"``, ``"uoro"``, ``"kf_rtrl"``, ``"r_kf"``, ``"snap1"``, ``"snap2"``,
        ``"rflo"`` or ``"tbptt"``.
    params : RNNParams (GRUParams, LSTMParams for ``"tbptt"`` and ``"snap1"``)
        The first weights (with ``alpha``, the leak, when present).
    B : int
        Sequences in the batch; every chunk must hold this many.
    **options
        ``seed`` (int, default 0) for the stochastic rules; ``k1`` (required) and
        ``k2`` (default k1) for ``"tbptt"``.
    """
    return Stream(name, params, B, **options)
