"""The PyTorch peer: ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` + ``nn.Linear`` and autograd.

The model is THEORY.md's: a recurrent cell and a linear readout, loss
``0.5 * sum (W_out h_t + b_out - y_t)^2``, as framework code writes it.

- Elman (``RNNParams``): ``nn.RNN(tanh)``; it has two biases, so ``bias_ih``
  carries ``b_h`` and ``bias_hh`` is zero (both stay trainable, as in user
  code; their gradients are equal and ``b_h``'s gradient is read from
  ``bias_ih``).
- GRU and LSTM (a params object with the fields weight_ih, weight_hh,
  bias_ih, bias_hh, W_out, b_out, torch's layout: r|z|n and i|f|g|o rows):
  ``nn.GRU`` / ``nn.LSTM``, the arrays copied one to one. The cell is told by
  the shape: weight_ih has 3n rows for a GRU, 4n for an LSTM. Nothing from
  bpttbench's cells code is imported to build them.

Algorithms:

- BPTT: one forward over the whole sequence, ``loss.backward()``.
- Truncated BPTT(k; k): the chunked-detach idiom: run k steps from the
  detached state, back-propagate that chunk's loss, detach, and let the
  gradients accumulate. When k does not divide T, Williams & Peng's last
  update still reaches back k steps (THEORY.md, identity 3): the last full
  chunk is run in two calls split at step T - k (the gradient flows through
  the split, so it is the same chunk), and the short end is then run from the
  detached state at T - k with only its last ``T mod k`` steps in its loss, so
  the gradient is BPTT(k; k)'s exactly, for every cell (an LSTM's state is the
  pair (h, c), which the split gives without re-running anything).

Devices: ``device="cuda"`` (or ``"cuda:1"``) puts the model and the data on
that GPU. A timed call ends with ``torch.cuda.synchronize()``: ``backward()``
returns once its kernels are queued, and the loss is summed on the device, so
nothing else would wait for the GPU to finish. float32 runs in IEEE float32:
cuDNN's RNNs would otherwise use TF32 tensor cores (torch's default for
``torch.backends.cudnn.rnn``), a 10-bit mantissa that no longer computes the
gradient the CPU kernels compute.

Only this module imports torch; ``bpttbench.bench.peers`` imports it when the peer runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

TOOL = "pytorch"
ALGORITHMS = ("bptt", "tbptt")
CELLS = ("elman", "gru", "lstm")


def version() -> str:
    return torch.__version__


def versions() -> dict[str, str]:
    """torch and, where it has them, the CUDA and cuDNN it was built with."""
    out = {"torch": torch.__version__}
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if cudnn:
            out["cudnn"] = str(cudnn)
    return out


def set_threads(n: int) -> int:
    """Set torch's intra-op thread count; return the count in effect."""
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


def gpu_available() -> bool:
    """True when this torch was built with CUDA and sees a GPU."""
    return bool(torch.cuda.is_available())


def device_name(device: str = "cpu") -> str:
    """``"cpu"``, or ``"cuda:0 NVIDIA H200"``: the index and the GPU's name."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return "cpu"
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def _ieee_float32() -> None:
    """No TF32 in cuDNN's RNNs or in matmuls: float32 means float32 (see the docstring)."""
    cudnn_rnn = getattr(torch.backends.cudnn, "rnn", None)
    if cudnn_rnn is not None and hasattr(cudnn_rnn, "fp32_precision"):  # torch >= 2.9
        cudnn_rnn.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:  # older torch: the flags it had then
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def cell_of(params) -> str:
    """``"elman"``, ``"gru"`` or ``"lstm"``, from the params' fields and shapes."""
    if hasattr(params, "weight_ih"):
        rows, n = np.shape(params.weight_ih)[0], np.shape(params.weight_hh)[1]
        if rows == 3 * n:
            return "gru"
        if rows == 4 * n:
            return "lstm"
        raise ValueError(f"weight_ih has {rows} rows for n = {n}: neither a GRU (3n) nor an LSTM")
    return "elman"


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class TorchNet:
    """A torch recurrent layer + ``nn.Linear`` holding a copy of the given params, and the data."""

    def __init__(self, params, xs: np.ndarray, ys: np.ndarray, device: str = "cpu"):
        self.cell = cell_of(params)
        arrays = [np.asarray(a) for a in params]
        dt = arrays[1].dtype
        dtype = _torch_dtype(dt)
        self.device = torch.device(device)
        if self.device.type == "cuda":
            _ieee_float32()
        if self.cell == "elman":
            W_ih, W_hh, b_h, W_out, b_out = arrays
            n, m = W_ih.shape
            self.rnn = nn.RNN(m, n, nonlinearity="tanh", bias=True, dtype=dtype)
            b_zero = np.zeros_like(b_h)
            copies = ((self.rnn.weight_ih_l0, W_ih), (self.rnn.weight_hh_l0, W_hh),
                      (self.rnn.bias_ih_l0, b_h), (self.rnn.bias_hh_l0, b_zero))  # fmt: skip
        else:
            w_ih, w_hh, b_ih, b_hh, W_out, b_out = (
                np.asarray(getattr(params, f))
                for f in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "W_out", "b_out")
            )
            n, m = w_hh.shape[1], w_ih.shape[1]
            layer = nn.GRU if self.cell == "gru" else nn.LSTM
            self.rnn = layer(m, n, bias=True, dtype=dtype)
            copies = ((self.rnn.weight_ih_l0, w_ih), (self.rnn.weight_hh_l0, w_hh),
                      (self.rnn.bias_ih_l0, b_ih), (self.rnn.bias_hh_l0, b_hh))  # fmt: skip
        p = W_out.shape[0]
        self.out = nn.Linear(n, p, dtype=dtype)
        copies += ((self.out.weight, W_out), (self.out.bias, b_out))
        with torch.no_grad():
            for q, a in copies:
                q.copy_(torch.from_numpy(np.ascontiguousarray(a, dtype=dt)))
        self.rnn.to(self.device)
        self.out.to(self.device)
        if xs.ndim == 2:  # (T, m) means B = 1
            xs, ys = xs[:, None, :], ys[:, None, :]
        self.xs = torch.from_numpy(np.ascontiguousarray(xs, dtype=dt)).to(self.device)
        self.ys = torch.from_numpy(np.ascontiguousarray(ys, dtype=dt)).to(self.device)
        self.n = n
        # The order of the params' fields: for Elman, b_h's gradient is bias_ih's.
        self.order = [q for q, _ in copies if q is not self.rnn.bias_hh_l0 or self.cell != "elman"]
        self.parameters = [*self.rnn.parameters(), *self.out.parameters()]

    def zero_grad(self) -> None:
        for q in self.parameters:
            q.grad = None

    def _zero_state(self, B: int):
        h = torch.zeros(1, B, self.n, dtype=self.xs.dtype, device=self.device)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def _loss(self, hs, ys):
        return 0.5 * (self.out(hs) - ys).pow(2).sum()

    def bptt(self):
        """Loss over the whole sequence (a 0-d tensor) and its gradient in ``.grad``."""
        self.zero_grad()
        hs, _ = self.rnn(self.xs)
        loss = self._loss(hs, self.ys)
        loss.backward()
        return loss.detach()

    def tbptt(self, k: int):
        """The chunked-detach idiom, BPTT(k; k); returns the full loss (a 0-d tensor)."""
        self.zero_grad()
        T, B = self.xs.shape[0], self.xs.shape[1]
        state = self._zero_state(B)
        total = torch.zeros((), dtype=self.xs.dtype, device=self.device)
        full = T - T % k
        r = T - full
        start = T - k  # where the last update of BPTT(k; k) reaches back to when r > 0
        at_start = state
        for s in range(0, full, k):
            h0 = _detach(state)
            if r and s + k == full:  # the last full chunk, split at T - k (no detach there)
                hs_a, mid = self.rnn(self.xs[s:start], h0)
                hs_b, state = self.rnn(self.xs[start:full], mid)
                loss = self._loss(torch.cat((hs_a, hs_b)), self.ys[s:full])
                at_start = mid
            else:
                hs, state = self.rnn(self.xs[s : s + k], h0)
                loss = self._loss(hs, self.ys[s : s + k])
            loss.backward()
            total = total + loss.detach()
        if r:
            # The last update reaches back k steps: restart from the detached state
            # at T - k (the zero state when T < k), with only the last r steps in the loss.
            hs, _ = self.rnn(self.xs[max(0, start) :], _detach(at_start))
            loss = self._loss(hs[-r:], self.ys[full:])
            loss.backward()
            total = total + loss.detach()
        return total

    def grads(self) -> tuple[np.ndarray, ...]:
        """The gradient as NumPy arrays in the order of the params' fields."""
        return tuple(q.grad.detach().cpu().numpy().copy() for q in self.order)


# Kept for callers of the Elman-only name.
TorchRNN = TorchNet


class Peer:
    """One algorithm on one problem: ``run()`` is what is timed, ``check()`` gives the result."""

    compile_s = None  # eager: nothing to compile

    def __init__(self, algorithm: str, params, xs, ys, k: int | None = None, device="cpu"):
        self.model = TorchNet(params, xs, ys, device=device)
        if algorithm == "bptt":
            call = self.model.bptt
        elif algorithm == "tbptt":
            if k is None:
                raise ValueError("tbptt needs k")
            kk = int(k)

            def call():
                return self.model.tbptt(kk)
        else:
            raise ValueError(
                f"the PyTorch peer has no {algorithm!r} (it has {', '.join(ALGORITHMS)})"
            )
        self.run = synced(call, self.model.device)

    def check(self):
        """One call: (loss, gradient arrays in the params' field order) as NumPy."""
        loss = self.run()
        return float(loss.item()), self.model.grads()


def synced(call, device: torch.device):
    """``call``, and on a GPU a wait for all its work: what a timed call must include.

    ``backward()`` returns once the GPU's kernels are queued and the loss stays
    on the device, so without the synchronize a call would time the launches only.
    """
    if device.type != "cuda":
        return call

    def run():
        loss = call()
        torch.cuda.synchronize(device)
        return loss

    return run


def make(algorithm: str, params, xs, ys, k: int | None = None, device: str = "cpu") -> Peer:
    return Peer(algorithm, params, xs, ys, k, device=device)


def loss_and_grads(algorithm: str, params, xs, ys, k: int | None = None, device: str = "cpu"):
    """One call: (loss, gradient arrays in the params' field order) as NumPy."""
    return Peer(algorithm, params, xs, ys, k, device=device).check()


def _torch_dtype(dt) -> torch.dtype:
    dt = np.dtype(dt)
    if dt == np.float64:
        return torch.float64
    if dt == np.float32:
        return torch.float32
    raise ValueError(f"unsupported dtype {dt}")
