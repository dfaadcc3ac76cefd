"""Optimizers for online learning: SGD and Adam, with optional gradient-norm clipping.

They update a parameter NamedTuple (any cell's) from a gradient of the same
type and return a new one (``params._replace``, so attributes such as the Elman
cell's leak carry over); the inputs are never modified. The updates follow
PyTorch's ``torch.optim.SGD`` (with momentum, dampening 0) and
``torch.optim.Adam`` (Kingma & Ba 2015, bias-corrected moments, eps added to
the square root), and clipping follows ``torch.nn.utils.clip_grad_norm_``: the
whole gradient is scaled by ``max_norm / (norm + 1e-6)`` when its 2-norm over
every array exceeds ``max_norm``.

    opt = Adam(lr=1e-3, clip=1.0)
    for chunk in ...:
        loss, grads = stream.step(xs_chunk, ys_chunk)
        stream.params = opt.step(stream.params, grads)
"""

from __future__ import annotations

import math

import numpy as np


def _positive(name, value, allow_zero=False):
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        want = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {want}, got {value!r}")
    return float(value)


def _fraction(name, value):
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def clip_grad_norm(grads, max_norm):
    """``(clipped grads, norm before clipping)``: scaled so the 2-norm over every array
    is at most ``max_norm`` (``torch.nn.utils.clip_grad_norm_``'s rule)."""
    max_norm = _positive("max_norm", max_norm)
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    scale = max_norm / (norm + 1e-6)
    if scale >= 1.0:
        return grads, norm
    return grads._replace(**{f: g * scale for f, g in zip(grads._fields, grads, strict=True)}), norm


class _Optimizer:
    def __init__(self, lr, clip):
        self.lr = _positive("lr", lr)
        self.clip = None if clip is None else _positive("clip", clip)
        self.t = 0  # steps taken
        self.last_norm = float("nan")  # gradient norm of the last step, before clipping

    def step(self, params, grads):
        """Return the parameters after one update with ``grads`` (same type as ``params``)."""
        if type(grads) is not type(params) or len(grads) != len(params):
            raise TypeError(
                f"grads must have the parameters' type {type(params).__name__}, "
                f"got {type(grads).__name__}"
            )
        for f, p, g in zip(params._fields, params, grads, strict=True):
            if np.shape(p) != np.shape(g):
                raise ValueError(f"grads.{f} has shape {np.shape(g)}, params.{f} {np.shape(p)}")
        if self.clip is not None:
            grads, self.last_norm = clip_grad_norm(grads, self.clip)
        else:
            self.last_norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        self.t += 1
        new = {
            f: self._update(i, p, g)
            for i, (f, p, g) in enumerate(zip(params._fields, params, grads, strict=True))
        }
        return params._replace(**new)


class SGD(_Optimizer):
    """p <- p - lr v,  v <- momentum v + g  (v = g without momentum)."""

    def __init__(self, lr=0.01, momentum=0.0, clip=None):
        super().__init__(lr, clip)
        self.momentum = _fraction("momentum", momentum)
        self._v: dict[int, np.ndarray] = {}

    def _update(self, i, p, g):
        if self.momentum:
            v = self._v.get(i)
            v = g.copy() if v is None else self.momentum * v + g
            self._v[i] = v
            g = v
        return (p - self.lr * g).astype(p.dtype, copy=False)


class Adam(_Optimizer):
    """Adam with bias-corrected moments, as ``torch.optim.Adam`` computes it."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip=None):
        super().__init__(lr, clip)
        self.beta1, self.beta2 = (_fraction(f"betas[{i}]", b) for i, b in enumerate(betas))
        self.eps = _positive("eps", eps)
        self._m: dict[int, np.ndarray] = {}
        self._v: dict[int, np.ndarray] = {}

    def _update(self, i, p, g):
        m = self._m.get(i, np.zeros_like(g))
        v = self._v.get(i, np.zeros_like(g))
        m = self.beta1 * m + (1.0 - self.beta1) * g
        v = self.beta2 * v + (1.0 - self.beta2) * g * g
        self._m[i], self._v[i] = m, v
        m_hat = m / (1.0 - self.beta1**self.t)
        v_hat = v / (1.0 - self.beta2**self.t)
        return (p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype, copy=False)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
