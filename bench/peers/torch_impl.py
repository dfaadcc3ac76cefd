"""The PyTorch peer: ``nn.RNN(tanh)`` + ``nn.Linear`` and autograd, as framework code does it.

The model is THEORY.md's Elman RNN: ``nn.RNN`` has two biases, so ``bias_ih``
carries ``b_h`` and ``bias_hh`` is zero (both stay trainable, as in user code;
their gradients are equal and ``b_h``'s gradient is read from ``bias_ih``).

- BPTT: one forward over the whole sequence, ``loss.backward()``.
- Truncated BPTT(k; k): the chunked-detach idiom: run k steps from the
  detached hidden state, back-propagate that chunk's loss, detach, and let the
  gradients accumulate. When k does not divide T, Williams & Peng's last
  update still reaches back k steps (THEORY.md, identity 3); the idiom's
  last, short chunk is then run from the detached state k steps before the
  end, with only the last ``T mod k`` steps in its loss, so the gradient is
  BPTT(k; k)'s exactly.

Only this module imports torch; ``bpttbench.bench.peers`` imports it when the peer runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

TOOL = "pytorch"
ALGORITHMS = ("bptt", "tbptt")


def version() -> str:
    return torch.__version__


def set_threads(n: int) -> int:
    """Set torch's intra-op thread count; return the count in effect."""
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


class TorchRNN:
    """``nn.RNN`` + ``nn.Linear`` holding a copy of the given RNNParams, and the data."""

    def __init__(self, params, xs: np.ndarray, ys: np.ndarray):
        W_ih, W_hh, b_h, W_out, b_out = (np.asarray(a) for a in params)
        dtype = _torch_dtype(W_hh.dtype)
        n, m = W_ih.shape
        p = W_out.shape[0]
        self.rnn = nn.RNN(m, n, nonlinearity="tanh", bias=True, dtype=dtype)
        self.out = nn.Linear(n, p, dtype=dtype)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(W_ih))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(W_hh))
            self.rnn.bias_ih_l0.copy_(torch.from_numpy(b_h))
            self.rnn.bias_hh_l0.zero_()
            self.out.weight.copy_(torch.from_numpy(W_out))
            self.out.bias.copy_(torch.from_numpy(b_out))
        if xs.ndim == 2:  # (T, m) means B = 1
            xs, ys = xs[:, None, :], ys[:, None, :]
        self.xs = torch.from_numpy(np.ascontiguousarray(xs, dtype=W_hh.dtype))
        self.ys = torch.from_numpy(np.ascontiguousarray(ys, dtype=W_hh.dtype))
        self.n = n
        self.parameters = [*self.rnn.parameters(), *self.out.parameters()]

    def zero_grad(self) -> None:
        for q in self.parameters:
            q.grad = None

    def _chunk_loss(self, xs, ys, h0):
        hs, h_last = self.rnn(xs, h0)  # hs: (k, B, n), h_last: (1, B, n)
        return 0.5 * (self.out(hs) - ys).pow(2).sum(), hs, h_last

    def bptt(self) -> float:
        """Loss over the whole sequence and its gradient in ``.grad``."""
        self.zero_grad()
        loss, _, _ = self._chunk_loss(self.xs, self.ys, None)
        loss.backward()
        return loss.item()

    def tbptt(self, k: int) -> float:
        """The chunked-detach idiom, BPTT(k; k); returns the full loss."""
        self.zero_grad()
        T, B = self.xs.shape[0], self.xs.shape[1]
        h = torch.zeros(1, B, self.n, dtype=self.xs.dtype)
        total = 0.0
        full = T - T % k
        hs = None
        for s in range(0, full, k):
            loss, hs, h = self._chunk_loss(self.xs[s : s + k], self.ys[s : s + k], h.detach())
            loss.backward()
            total += loss.item()
        r = T - full
        if r:
            # The last update of BPTT(k; k) reaches back k steps: restart from
            # h_{T-k}, detached, and put only the last r steps in the loss.
            start = max(0, T - k)
            if start == 0:
                h0 = torch.zeros(1, B, self.n, dtype=self.xs.dtype)
            else:  # h_{T-k} is output (start - 1) - (full - k) of the previous chunk
                h0 = hs[start - 1 - (full - k)].detach().unsqueeze(0)
            outs, _ = self.rnn(self.xs[start:], h0)
            loss = 0.5 * (self.out(outs[-r:]) - self.ys[full:]).pow(2).sum()
            loss.backward()
            total += loss.item()
        return total

    def grads(self) -> tuple[np.ndarray, ...]:
        """The gradient as (W_ih, W_hh, b_h, W_out, b_out) NumPy arrays."""
        r, o = self.rnn, self.out
        return tuple(
            q.grad.detach().numpy().copy()
            for q in (r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, o.weight, o.bias)
        )


class Peer:
    """One algorithm on one problem: ``run()`` is what is timed, ``check()`` gives the result."""

    compile_s = None  # eager: nothing to compile

    def __init__(self, algorithm: str, params, xs, ys, k: int | None = None):
        self.model = TorchRNN(params, xs, ys)
        if algorithm == "bptt":
            self.run = self.model.bptt
        elif algorithm == "tbptt":
            if k is None:
                raise ValueError("tbptt needs k")
            kk = int(k)
            self.run = lambda: self.model.tbptt(kk)
        else:
            raise ValueError(
                f"the PyTorch peer has no {algorithm!r} (it has {', '.join(ALGORITHMS)})"
            )

    def check(self):
        """One call: (loss, (g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out)) as NumPy."""
        loss = self.run()
        return float(loss), self.model.grads()


def make(algorithm: str, params, xs, ys, k: int | None = None) -> Peer:
    return Peer(algorithm, params, xs, ys, k)


def loss_and_grads(algorithm: str, params, xs, ys, k: int | None = None):
    """One call: (loss, (g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out)) as NumPy."""
    return Peer(algorithm, params, xs, ys, k).check()


def _torch_dtype(dt) -> torch.dtype:
    dt = np.dtype(dt)
    if dt == np.float64:
        return torch.float64
    if dt == np.float32:
        return torch.float32
    raise ValueError(f"unsupported dtype {dt}")
