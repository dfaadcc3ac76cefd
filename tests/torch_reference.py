"""PyTorch autograd references for the Elman RNN, importable by any test module.

``torch`` is imported inside each function through ``helpers.reference``, so a
module that imports this one still runs its other tests where PyTorch is
missing (outside CI); only the tests that call in here are skipped.

The model is ``torch.nn.RNN(nonlinearity="tanh")`` followed by
``torch.nn.Linear``; PyTorch's two biases sum to b_h, so b_ih = b_h, b_hh = 0.

:func:`truncated_gradient` builds BPTT(k2; k1) from THEORY.md's definition
alone, one autograd call per update; it shares no code with the kernel or with
``naive.tbptt`` (neither their update-time loop nor their window bounds).
"""

from __future__ import annotations

import functools

import bpttbench
import numpy as np
from helpers import reference


def _torch():
    return reference("torch")


def single_threaded(func):
    """Run ``func`` with one intra-op torch thread, then restore the setting.

    These graphs are small (B x n of a few dozen), so autograd's time is per-op
    overhead; extra threads only contend with each other and with the test
    run (on a loaded 2-core machine a 260-step truncation went from 0.15 s to
    3.8 s with two threads). The values do not depend on the thread count.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        torch = _torch()
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return func(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def as_tensor(a):
    torch = _torch()
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def torch_rnn(params):
    """(rnn, readout) torch modules, float64, holding ``params``."""
    torch = _torch()
    W_ih, W_hh, b_h, W_out, b_out = params
    n, m = W_ih.shape
    rnn = torch.nn.RNN(m, n, nonlinearity="tanh", batch_first=False, dtype=torch.float64)
    readout = torch.nn.Linear(n, W_out.shape[0], dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(as_tensor(W_ih))
        rnn.weight_hh_l0.copy_(as_tensor(W_hh))
        rnn.bias_ih_l0.copy_(as_tensor(b_h))
        rnn.bias_hh_l0.zero_()
        readout.weight.copy_(as_tensor(W_out))
        readout.bias.copy_(as_tensor(b_out))
    return rnn, readout


def _gradients(rnn, readout):
    """The accumulated ``.grad`` of the modules as bpttbench.RNNParams (b_h from b_ih)."""
    return bpttbench.RNNParams(
        rnn.weight_ih_l0.grad.numpy().copy(),
        rnn.weight_hh_l0.grad.numpy().copy(),
        rnn.bias_ih_l0.grad.numpy().copy(),
        readout.weight.grad.numpy().copy(),
        readout.bias.grad.numpy().copy(),
    )


def half_squared_error(yhat, y):
    return 0.5 * ((yhat - y) ** 2).sum()


@single_threaded
def rnn_gradient(params, xs, ys):
    """(loss, gradient) of the full loss by autograd through the whole sequence."""
    rnn, readout = torch_rnn(params)
    x, y = as_tensor(xs), as_tensor(ys)
    out, _ = rnn(x)
    loss = half_squared_error(readout(out), y)
    loss.backward()
    return loss.item(), _gradients(rnn, readout)


@single_threaded
def detach_every_k_gradient(params, xs, ys, k):
    """(loss, gradient) of the framework idiom: run k steps, back-propagate, detach h."""
    rnn, readout = torch_rnn(params)
    x, y = as_tensor(xs), as_tensor(ys)
    h = None
    loss = 0.0
    for start in range(0, x.shape[0], k):
        out, h = rnn(x[start : start + k], h)
        chunk_loss = half_squared_error(readout(out), y[start : start + k])
        chunk_loss.backward()
        loss += chunk_loss.item()
        h = h.detach()
    return loss, _gradients(rnn, readout)


def update_times(T, k1):
    """THEORY.md: an update at every t that is a multiple of k1, and at t = T."""
    return [t for t in range(1, T + 1) if t % k1 == 0 or t == T]


@single_threaded
def truncated_gradient(params, xs, ys, k1, k2):
    """(full loss, BPTT(k2; k1) gradient) by autograd, one backward call per update.

    THEORY.md: at every update time t (multiples of k1, and T), the errors of
    the steps since the previous update (t_prev < s <= t) are back-propagated
    through h_t .. h_{t-k2+1}; h_{t-k2} is a constant (h_0 when t <= k2). The
    gradient is the sum of the updates with the weights held fixed.

    Each window is its own graph: it starts from h_{t-k2} taken, detached, from
    a no-grad forward pass over the whole sequence, runs torch.nn.RNN over
    steps t-k2+1 .. t, and back-propagates the loss of steps t_prev+1 .. t.
    ``.grad`` accumulates over the backward calls, which is the sum.
    """
    torch = _torch()
    if k2 < k1:
        raise ValueError(f"BPTT(k2; k1) needs k2 >= k1, got k1={k1}, k2={k2}")
    rnn, readout = torch_rnn(params)
    x, y = as_tensor(xs), as_tensor(ys)
    T, B, _ = x.shape
    n = params[1].shape[0]
    with torch.no_grad():
        states, _ = rnn(x)  # states[s - 1] = h_s for s = 1 .. T
        full_loss = half_squared_error(readout(states), y).item()
    t_prev = 0
    for t in update_times(T, k1):
        first = max(t - k2, 0)  # h_first is the constant the window starts from
        if first == 0:
            h_first = torch.zeros((1, B, n), dtype=torch.float64)
        else:
            h_first = states[first - 1].detach().clone().unsqueeze(0)
        # x[first : t] are the inputs of steps first+1 .. t; out[j] = h_{first + 1 + j}.
        out, _ = rnn(x[first:t], h_first)
        # The steps since the previous update, t_prev+1 .. t, are out[t_prev - first :].
        assert t_prev >= first, "with k1 <= k2 the new errors lie inside the window"
        window_loss = half_squared_error(readout(out[t_prev - first :]), y[t_prev:t])
        window_loss.backward()
        t_prev = t
    return full_loss, _gradients(rnn, readout)
