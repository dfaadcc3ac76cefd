"""Backpropagation through a feed-forward tanh network (Rumelhart, Hinton & Williams 1986).

Forward, storing every layer's activation:

    A_0 = x,   A_{l+1} = tanh(A_l W_l^T + b_l)   (no tanh on the last layer)
    L   = 1/2 sum_b || A_L - y ||^2

Backward, layer by layer, by the chain rule:

    D_L = A_L - y
    dL/dW_l = D_{l+1}^T A_l,   dL/db_l = sum_b D_{l+1}
    D_l = (D_{l+1} W_l) * (1 - A_l^2)

Every product is a GEMM over the batch, so BLAS does the work.
Costs: time Theta(L w^2 B); memory Theta(L w B + L w^2): the activations
and the gradients.
"""

from __future__ import annotations

import math

import numpy as np
from numba.typed import List

from ._jit import jit
from ._validate import check_array, check_result, check_shape
from .costs import Term
from .model import MLPParams


@jit
def _backprop(x, y, weights, biases, acts, D_buf, g_weights, g_biases):
    B = x.shape[0]
    L = len(weights)
    # Forward: acts[l] holds A_{l+1}.
    A = x
    for l in range(L):
        Z = acts[l]
        np.dot(A, weights[l].T, Z)
        b = biases[l]
        hidden = l < L - 1
        for r in range(B):
            for j in range(Z.shape[1]):
                v = Z[r, j] + b[j]
                Z[r, j] = math.tanh(v) if hidden else v
        A = Z
    # Loss and the output error D_L = A_L - y.
    w_out = y.shape[1]
    cur = 0
    D = D_buf[cur][: B * w_out].reshape(B, w_out)
    loss = 0.0
    for r in range(B):
        for j in range(w_out):
            e = A[r, j] - y[r, j]
            D[r, j] = e
            loss += e * e
    # Backward: two buffers take turns holding D_{l+1} and D_l.
    for l in range(L - 1, -1, -1):
        A_in = x if l == 0 else acts[l - 1]
        np.dot(D.T, A_in, g_weights[l])
        g_b = g_biases[l]
        g_b[:] = 0.0
        for r in range(B):
            for j in range(D.shape[1]):
                g_b[j] += D[r, j]
        if l > 0:
            w_in = A_in.shape[1]
            cur = 1 - cur
            D_next = D_buf[cur][: B * w_in].reshape(B, w_in)
            np.dot(D, weights[l], D_next)
            for r in range(B):
                for j in range(w_in):
                    D_next[r, j] *= 1.0 - A_in[r, j] * A_in[r, j]
            D = D_next
    return 0.5 * loss


def _check_mlp_params(params):
    try:
        weights, biases = params
        weights, biases = tuple(weights), tuple(biases)
    except (TypeError, ValueError):
        raise TypeError(
            f"params must be kernels.MLPParams(weights, biases), got {type(params).__name__}"
        ) from None
    if not weights or len(weights) != len(biases):
        raise ValueError(
            f"params must hold as many biases as weights (>= 1), "
            f"got {len(weights)} weights and {len(biases)} biases"
        )
    W0 = check_array("params.weights[0]", weights[0], 2)
    dtype = W0.dtype
    ws, bs = [], []
    fan_in = W0.shape[1]
    for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
        W = check_array(f"params.weights[{l}]", W, 2, dtype)
        b = check_array(f"params.biases[{l}]", b, 1, dtype)
        if W.shape[1] != fan_in or W.shape[0] < 1:
            raise ValueError(
                f"params.weights[{l}] must have shape (w_{l + 1}, {fan_in}) to follow the "
                f"previous layer, got {W.shape}"
            )
        check_shape(f"params.biases[{l}]", b, (W.shape[0],))
        ws.append(W)
        bs.append(b)
        fan_in = W.shape[0]
    if W0.shape[1] < 1:
        raise ValueError(f"params.weights[0] must have at least one input, got {W0.shape}")
    return ws, bs, dtype


def backprop(params, x, y):
    """Loss and exact gradient of the MLP by backpropagation.

    Parameters
    ----------
    params : MLPParams
    x : array (B, sizes[0])
    y : array (B, sizes[-1])

    Returns
    -------
    loss : float
        1/2 sum_b ||yhat_b - y_b||^2
    grads : MLPParams
        Same shapes and dtype as ``params``.
    """
    ws, bs, dtype = _check_mlp_params(params)
    x = check_array("x", x, 2, dtype)
    y = check_array("y", y, 2, dtype)
    B = x.shape[0]
    if B < 1:
        raise ValueError(f"x must hold at least one example, got shape {x.shape}")
    check_shape("x", x, (B, ws[0].shape[1]))
    check_shape("y", y, (B, ws[-1].shape[0]))
    widths = [W.shape[0] for W in ws]
    acts = List([np.empty((B, w), dtype) for w in widths])
    D_buf = List([np.empty(B * max([*widths, ws[0].shape[1]]), dtype) for _ in range(2)])
    g_weights = List([np.empty_like(W) for W in ws])
    g_biases = List([np.empty_like(b) for b in bs])
    loss = _backprop(x, y, List(ws), List(bs), acts, D_buf, g_weights, g_biases)
    named = [(f"weights[{l}]", w) for l, w in enumerate(g_weights)]
    named += [(f"biases[{l}]", b) for l, b in enumerate(g_biases)]
    check_result("backprop", loss, named, dtype)
    return float(loss), MLPParams(tuple(g_weights), tuple(g_biases))


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``backprop`` call on ``sizes = [width] * (depth + 1)``.

    The first layer passes no error down (no D_0) and the last applies no tanh:
    those are the depth^1 terms less a negative depth^0 one, so that every term
    is a monomial in depth, width and B.
    """
    L, w, B = size["depth"], size["width"], size["B"]
    per = {"depth": 1, "B": 1}
    return [
        Term(L * 2 * B * w * w, {**per, "width": 2}),  # forward GEMMs
        Term(2 * L * B * w, {**per, "width": 1}),  # bias, tanh
        Term(-B * w, {"B": 1, "width": 1}),  # ... no tanh at the output
        Term(3 * B * w, {"B": 1, "width": 1}),  # e = yhat - y, e^2, sum
        Term(1),  # loss * 0.5
        Term(L * 2 * B * w * w, {**per, "width": 2}),  # dL/dW GEMMs
        Term(L * B * w, {**per, "width": 1}),  # dL/db
        Term(L * 2 * B * w * w, {**per, "width": 2}),  # D_l = W_l^T D_{l+1}
        Term(L * 3 * B * w, {**per, "width": 1}),  # ... times 1 - A_l^2
        Term(-2 * B * w * w, {"B": 1, "width": 2}),  # ... none for the input layer
        Term(-3 * B * w, {"B": 1, "width": 1}),
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``backprop`` call: activations, error buffers, gradients."""
    L, w, B = size["depth"], size["width"], size["B"]
    return [
        Term(L * B * w * itemsize, {"depth": 1, "B": 1, "width": 1}),  # A_1 .. A_L
        Term(2 * B * w * itemsize, {"B": 1, "width": 1}),  # D buffers
        Term(L * w * w * itemsize, {"depth": 1, "width": 2}),  # weight gradients
        Term(L * w * itemsize, {"depth": 1, "width": 1}),  # bias gradients
    ]
