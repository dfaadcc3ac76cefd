"""Gradients against PyTorch autograd (float64): an independent implementation.

The RNN is ``torch.nn.RNN(nonlinearity="tanh", batch_first=False)`` followed by
``torch.nn.Linear``; PyTorch's two biases sum to b_h, so b_ih = b_h and
b_hh = 0. The MLP is a stack of ``torch.nn.Linear`` with ``tanh`` between them.
Skipped when PyTorch is not installed, except in CI (see ``helpers.reference``).
"""

from __future__ import annotations

import bpttbench
import naive
import numpy as np
import pytest
from helpers import EXACT_RTOL, assert_grads_close, assert_loss_close, reference

torch = reference("torch")


def as_tensor(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def torch_rnn(params):
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


def torch_rnn_gradient(params, xs, ys, detach_every=None):
    """Loss and gradient by autograd; with ``detach_every = k`` the framework idiom
    "run k steps, detach the hidden state" (chunks of k steps, a short last one)."""
    rnn, readout = torch_rnn(params)
    x, y = as_tensor(xs), as_tensor(ys)
    T = x.shape[0]
    k = detach_every or T
    h = None
    loss = torch.zeros((), dtype=torch.float64)
    for start in range(0, T, k):
        out, h = rnn(x[start : start + k], h)
        loss = loss + 0.5 * ((readout(out) - y[start : start + k]) ** 2).sum()
        h = h.detach()
    loss.backward()
    # Both biases enter a_t the same way, so their gradients agree (up to rounding).
    b_ih_grad, b_hh_grad = rnn.bias_ih_l0.grad.numpy(), rnn.bias_hh_l0.grad.numpy()
    assert naive.relative_error(b_hh_grad, b_ih_grad) <= EXACT_RTOL
    g = bpttbench.RNNParams(
        rnn.weight_ih_l0.grad.numpy(),
        rnn.weight_hh_l0.grad.numpy(),
        rnn.bias_ih_l0.grad.numpy(),
        readout.weight.grad.numpy(),
        readout.bias.grad.numpy(),
    )
    return loss.detach().item(), g


@pytest.mark.parametrize("algorithm", ["bptt", "rtrl"])
def test_rnn_gradient_equals_torch_autograd(make_rnn_problem, algorithm):
    params, xs, ys = make_rnn_problem(T=12)
    loss, g = getattr(bpttbench, algorithm)(params, xs, ys)
    ref_loss, ref = torch_rnn_gradient(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{algorithm} loss vs torch")
    assert_grads_close(g, ref, EXACT_RTOL, f"{algorithm} vs torch autograd")


@pytest.mark.parametrize("k", [1, 3, 4, 12], ids=lambda k: f"k={k}")
def test_tbptt_k_k_equals_torch_detach_every_k(make_rnn_problem, k):
    params, xs, ys = make_rnn_problem(T=12)
    loss, g = bpttbench.tbptt(params, xs, ys, k)
    ref_loss, ref = torch_rnn_gradient(params, xs, ys, detach_every=k)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"tbptt({k}) loss vs torch")
    assert_grads_close(g, ref, EXACT_RTOL, f"tbptt({k}, {k}) vs torch detach every {k}")


def torch_mlp_gradient(params, x, y):
    layers = []
    for W, b in zip(params.weights, params.biases, strict=True):
        layer = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(as_tensor(W))
            layer.bias.copy_(as_tensor(b))
        layers.append(layer)
    a = as_tensor(x)
    for i, layer in enumerate(layers):
        a = layer(a)
        if i < len(layers) - 1:
            a = torch.tanh(a)
    loss = 0.5 * ((a - as_tensor(y)) ** 2).sum()
    loss.backward()
    g = bpttbench.MLPParams(
        tuple(layer.weight.grad.numpy() for layer in layers),
        tuple(layer.bias.grad.numpy() for layer in layers),
    )
    return loss.detach().item(), g


@pytest.mark.parametrize(
    "sizes", [[3, 2], [3, 5, 4, 2], [6, 8, 8, 8, 1]], ids=lambda s: "sizes=" + "-".join(map(str, s))
)
def test_backprop_equals_torch_autograd(make_mlp_problem, sizes):
    params, x, y = make_mlp_problem(sizes=sizes, B=5)
    loss, g = bpttbench.backprop(params, x, y)
    ref_loss, ref = torch_mlp_gradient(params, x, y)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, "backprop loss vs torch")
    assert_grads_close(g, ref, EXACT_RTOL, f"backprop {sizes} vs torch autograd")
