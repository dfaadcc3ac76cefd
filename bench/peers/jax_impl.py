"""The JAX peer: ``lax.scan`` + ``jax.grad`` for BPTT, forward-mode accumulation for RTRL.

- BPTT: the step function scanned over the sequence with ``lax.scan``, the
  loss differentiated by ``jax.value_and_grad`` (reverse mode), jit-compiled.
  For the Elman cell (``RNNParams``) and the GRU and LSTM cells (a params
  object with the fields weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out
  in torch's layout, told apart by weight_ih's 3n or 4n rows): their steps are
  written here from THEORY.md's "Gated cells" (PyTorch's equations; b_hn sits
  inside r * (W_hn h + b_hn); the LSTM carries (h, c)), nothing imported from
  bpttbench's cells code. The loss and readout are the Elman peer's.
- RTRL: the influence matrix J_t = dh_t/dtheta of the recurrent parameters
  theta = (W_ih, W_hh, b_h), kept as a pytree shaped like theta with a leading
  n axis, is carried through the scan and updated by forward-mode
  accumulation:

      J_t = d step/d theta (jacfwd, the immediate Jacobian M_t)
            + d step/d h_{t-1} (jvp along each column of J_{t-1})

  the readout gradients are accumulated directly and the recurrent gradient
  is sum_t (W_out^T e_t) J_t. A batch is vmapped over its sequences; jit.
  The Elman cell only (``GATED_ALGORITHMS``).

Both are compiled ahead of time (``jit(...).lower(...).compile()``); the
compile time is reported on its own and the timed call is the compiled one.
float64 is switched on (``jax_enable_x64``) when this module is imported,
which ``bpttbench.bench.peers`` does only when the JAX peer runs; float32
inputs stay float32. Matrix products run at ``"highest"`` precision: on a GPU
JAX's default lets float32 products use TF32 tensor cores (a 10-bit
mantissa), which would no longer compute the CPU kernels' gradient.

Devices: ``device="cuda"`` places the problem on the first GPU JAX sees
(``jax.devices("gpu")``) and compiles for it; a call returns once
``block_until_ready`` has waited for the result, so its time is the GPU's.

Only this module imports jax.
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

TOOL = "jax"
ALGORITHMS = ("bptt", "rtrl")
CELLS = ("elman", "gru", "lstm")
GATED_ALGORITHMS = ("bptt",)  # RTRL is the Elman cell's only
GATED_FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "W_out", "b_out")


def version() -> str:
    return jax.__version__


def versions() -> dict[str, str]:
    """jax and jaxlib, and the platform version of the GPU backend where there is one."""
    import jaxlib

    out = {"jax": jax.__version__, "jaxlib": getattr(jaxlib, "__version__", "?")}
    gpu = gpu_device()
    if gpu is not None:
        out["jax_gpu"] = str(getattr(gpu.client, "platform_version", "?"))
    return out


def gpu_device():
    """The first GPU JAX sees, or None (no GPU, or a CPU-only jaxlib)."""
    try:
        devices = jax.devices("gpu")
    except RuntimeError:  # "Unknown backend: 'gpu' requested, but no platforms ..."
        return None
    return devices[0] if devices else None


def gpu_available() -> bool:
    return gpu_device() is not None


def _device(device: str):
    if device == "cpu":
        return jax.devices("cpu")[0]
    if device.split(":")[0] != "cuda":
        raise ValueError(f"unknown device {device!r}: cpu or cuda")
    gpu = gpu_device()
    if gpu is None:
        raise RuntimeError("JAX sees no GPU")
    return gpu


def device_name(device: str = "cpu") -> str:
    """``"cpu"``, or ``"cuda:0 NVIDIA H200"``: the GPU's id and kind."""
    if device == "cpu":
        return "cpu"
    d = _device(device)
    return f"cuda:{d.id} {d.device_kind}"


def _step(theta, h, x):
    """h_t = tanh(W_ih x_t + W_hh h_{t-1} + b_h) for a batch of rows (or one row)."""
    W_ih, W_hh, b_h = theta
    return jnp.tanh(x @ W_ih.T + h @ W_hh.T + b_h)


def _bptt_loss(params, xs, ys):
    W_ih, W_hh, b_h, W_out, b_out = params

    def body(h, xy):
        x, y = xy
        h = _step((W_ih, W_hh, b_h), h, x)
        e = h @ W_out.T + b_out - y
        return h, 0.5 * jnp.sum(e * e)

    h0 = jnp.zeros((xs.shape[1], W_hh.shape[0]), W_hh.dtype)
    _, losses = lax.scan(body, h0, (xs, ys))
    return jnp.sum(losses)


_bptt = jax.value_and_grad(_bptt_loss)


# --- the gated cells (THEORY.md, "Gated cells": torch.nn.GRU / torch.nn.LSTM) ----------


def _gru_step(theta, state, x):
    """h' = (1 - z) * g + z * h; rows of weight_ih / weight_hh stacked r|z|n."""
    w_ih, w_hh, b_ih, b_hh = theta
    (h,) = state
    n = w_hh.shape[1]
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh  # carries b_hn, so that r multiplies (W_hn h + b_hn)
    r = jax.nn.sigmoid(gi[:, :n] + gh[:, :n])
    z = jax.nn.sigmoid(gi[:, n : 2 * n] + gh[:, n : 2 * n])
    g = jnp.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :])
    return ((1 - z) * g + z * h,)


def _lstm_step(theta, state, x):
    """c' = f * c + i * g, h' = o * tanh(c'); rows stacked i|f|g|o."""
    w_ih, w_hh, b_ih, b_hh = theta
    h, c = state
    n = w_hh.shape[1]
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i = jax.nn.sigmoid(a[:, :n])
    f = jax.nn.sigmoid(a[:, n : 2 * n])
    g = jnp.tanh(a[:, 2 * n : 3 * n])
    o = jax.nn.sigmoid(a[:, 3 * n :])
    c = f * c + i * g
    return o * jnp.tanh(c), c


def _gated_loss(step, parts):
    """The Elman peer's loss over a gated cell's scan: ``parts`` arrays of zero state."""

    def loss(params, xs, ys):
        w_ih, w_hh, b_ih, b_hh, W_out, b_out = params

        def body(state, xy):
            x, y = xy
            state = step((w_ih, w_hh, b_ih, b_hh), state, x)
            e = state[0] @ W_out.T + b_out - y
            return state, 0.5 * jnp.sum(e * e)

        h0 = jnp.zeros((xs.shape[1], w_hh.shape[1]), w_hh.dtype)
        _, losses = lax.scan(body, (h0,) * parts, (xs, ys))
        return jnp.sum(losses)

    return loss


_GATED_BPTT = {
    "gru": jax.value_and_grad(_gated_loss(_gru_step, 1)),
    "lstm": jax.value_and_grad(_gated_loss(_lstm_step, 2)),
}


def cell_of(params) -> str:
    """``"elman"``, ``"gru"`` or ``"lstm"``, from the params' fields and shapes."""
    if not hasattr(params, "weight_ih"):
        return "elman"
    rows, n = np.shape(params.weight_ih)[0], np.shape(params.weight_hh)[1]
    if rows == 3 * n:
        return "gru"
    if rows == 4 * n:
        return "lstm"
    raise ValueError(
        f"params.weight_ih has {rows} rows for n = {n}: expected 3n (GRU) or 4n (LSTM)"
    )


def _rtrl_one(params, xs, ys):
    """RTRL for one sequence: xs (T, m), ys (T, p) -> (loss, grads)."""
    W_ih, W_hh, b_h, W_out, b_out = params
    theta = (W_ih, W_hh, b_h)
    n = W_hh.shape[0]
    dt = W_hh.dtype

    def body(carry, xy):
        h, J, g_theta, g_W_out, g_b_out, loss = carry
        x, y = xy
        # Forward-mode accumulation of J_t = dh_t/dtheta.
        M = jax.jacfwd(_step, argnums=0)(theta, h, x)  # immediate Jacobian, leaves (n, *leaf)

        def push(J_leaf):  # d step/d h_{t-1} applied to each column of J_{t-1}
            cols = J_leaf.reshape(n, -1).T  # (P_leaf, n)
            tang = jax.vmap(lambda dh: jax.jvp(lambda hh: _step(theta, hh, x), (h,), (dh,))[1])(
                cols
            )
            return tang.T.reshape(J_leaf.shape)

        J = jax.tree_util.tree_map(lambda Mi, Ji: Mi + push(Ji), M, J)
        h = _step(theta, h, x)
        e = W_out @ h + b_out - y
        c = W_out.T @ e  # dL_t/dh_t
        g_theta = jax.tree_util.tree_map(lambda g, Ji: g + jnp.tensordot(c, Ji, axes=1), g_theta, J)
        return (h, J, g_theta, g_W_out + jnp.outer(e, h), g_b_out + e, loss + 0.5 * e @ e), None

    zeros = lambda a: jnp.zeros_like(a)  # noqa: E731
    J0 = jax.tree_util.tree_map(lambda a: jnp.zeros((n, *a.shape), dt), theta)
    carry0 = (
        jnp.zeros(n, dt), J0, jax.tree_util.tree_map(zeros, theta),
        zeros(W_out), zeros(b_out), jnp.zeros((), dt),
    )  # fmt: skip
    (_, _, g_theta, g_W_out, g_b_out, loss), _ = lax.scan(body, carry0, (xs, ys))
    return loss, (*g_theta, g_W_out, g_b_out)


def _rtrl(params, xs, ys):
    """RTRL for a batch: xs (T, B, m), ys (T, B, p); the batch is vmapped, then summed."""
    losses, grads = jax.vmap(_rtrl_one, in_axes=(None, 1, 1))(params, xs, ys)
    return jnp.sum(losses), tuple(jnp.sum(g, axis=0) for g in grads)


_FUNCS = {"bptt": _bptt, "rtrl": _rtrl}


class Compiled:
    """One algorithm compiled for one problem; call ``run()`` to compute (loss, grads)."""

    def __init__(self, algorithm: str, params, xs: np.ndarray, ys: np.ndarray, device="cpu"):
        if algorithm not in _FUNCS:
            raise ValueError(f"the JAX peer has no {algorithm!r} (it has {', '.join(ALGORITHMS)})")
        self.cell = cell_of(params)
        if self.cell == "elman":
            func = _FUNCS[algorithm]
        elif algorithm in GATED_ALGORITHMS:
            func = _GATED_BPTT[self.cell]
            params = tuple(getattr(params, f) for f in GATED_FIELDS)
        else:
            raise ValueError(
                f"the JAX peer runs {algorithm!r} on the Elman cell only, not the "
                f"{self.cell.upper()} (it has {', '.join(GATED_ALGORITHMS)} for gated cells)"
            )
        if np.asarray(xs).ndim == 2:  # (T, m) means B = 1
            xs, ys = np.asarray(xs)[:, None, :], np.asarray(ys)[:, None, :]
        dev = _device(device)
        self.params = tuple(jax.device_put(np.asarray(a), dev) for a in params)
        self.xs, self.ys = jax.device_put(np.asarray(xs), dev), jax.device_put(np.asarray(ys), dev)
        t0 = time.perf_counter()
        self.fn = jax.jit(func).lower(self.params, self.xs, self.ys).compile()
        self.compile_s = time.perf_counter() - t0

    def run(self):
        return jax.block_until_ready(self.fn(self.params, self.xs, self.ys))

    def check(self):
        loss, grads = self.run()
        return float(loss), tuple(np.asarray(g) for g in grads)


def make(algorithm: str, params, xs, ys, k: int | None = None, device: str = "cpu") -> Compiled:
    """The compiled peer: ``run()`` is what is timed, ``check()`` gives the result."""
    return Compiled(algorithm, params, xs, ys, device=device)


def loss_and_grads(algorithm: str, params, xs, ys, k: int | None = None, device: str = "cpu"):
    """One call: (loss, gradient arrays in the params' field order) as NumPy."""
    return Compiled(algorithm, params, xs, ys, device=device).check()
