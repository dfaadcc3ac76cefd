"""Plain-NumPy replicas of the kernels' operation sequences that count their FLOPs.

Each function here performs, in NumPy, the same sequence of matrix products
and elementwise operations as one kernel (the same chunks, the same slabs, the
same steps skipped), and counts every operation as it performs it, from the
sizes of the arrays it really operates on, never from a formula. Its gradient
must equal the kernel's (so the replica is shown to do the same computation)
and its count must equal the kernel's analytic model ``spec.flop_count``.

Convention (kernels/costs.py): one add, multiply, subtract or tanh is one FLOP;
a fused multiply-add is two. So a product of an (a x b) and a (b x c) matrix is
2 a b c, an elementwise operation is one FLOP per output entry, and adding k
terms into an accumulator (``acc += ...``, which the kernels do entry by entry,
starting from what the accumulator holds) is k FLOPs. Copies, zero fills and
slicing are free.

Only the chunk and slab sizes are taken from the kernel modules (they are the
schedule being counted); everything else is written from the kernels' source.
"""

from __future__ import annotations

import naive
import numpy as np


class Counter:
    """Arithmetic that counts its FLOPs in ``flops``."""

    def __init__(self):
        self.flops = 0

    def dot(self, a, b):
        """a @ b for 2-D a (x, y) and b (y, z): x z dot products of y multiply-adds."""
        assert a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0]
        self.flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        return a @ b

    def _elementwise(self, result):
        result = np.asarray(result)
        self.flops += result.size
        return result

    def add(self, a, b):
        return self._elementwise(np.add(a, b))

    def sub(self, a, b):
        return self._elementwise(np.subtract(a, b))

    def mul(self, a, b):
        return self._elementwise(np.multiply(a, b))

    def tanh(self, a):
        return self._elementwise(np.tanh(a))

    def accumulate(self, acc, terms, axis=None):
        """``acc`` plus the sum of ``terms`` over ``axis``: one add per term."""
        terms = np.asarray(terms)
        self.flops += terms.size
        return acc + terms.sum(axis=axis)


def _rnn_arrays(params):
    return tuple(np.asarray(a, dtype=np.float64) for a in params)


def _zero_grads(W_ih, W_hh, b_h, W_out, b_out):
    return {
        "W_ih": np.zeros_like(W_ih),
        "W_hh": np.zeros_like(W_hh),
        "b_h": np.zeros_like(b_h),
        "W_out": np.zeros_like(W_out),
        "b_out": np.zeros_like(b_out),
    }


def _as_params(g):
    return naive.RNNParams(g["W_ih"], g["W_hh"], g["b_h"], g["W_out"], g["b_out"])


def forward_sweep(fc, xs, W_ih, W_hh, b_h, H, s0, s1, chunk):
    """_sweeps.forward_sweep: H[s + 1] = tanh(W_hh H[s] + A[s] + b_h), A by chunk GEMMs."""
    _, B, m = xs.shape
    n = W_hh.shape[0]
    for c0 in range(s0, s1, chunk):
        c = min(chunk, s1 - c0)
        A = fc.dot(xs[c0 : c0 + c].reshape(c * B, m), W_ih.T).reshape(c, B, n)
        for j in range(c):
            s = c0 + j
            recurrent = fc.dot(H[s], W_hh.T)  # runs at s = 0 too, on h_0 = 0
            H[s + 1] = fc.tanh(fc.add(fc.add(recurrent, A[j]), b_h))


def backward_sweep(fc, xs, ys, W_hh, W_out, b_out, H, s_lo, s_hi, s_err, g, chunk):
    """_sweeps.backward_sweep over steps s_hi-1 .. s_lo, errors injected at s >= s_err.

    Chunks are cut from the top; ``delta`` carries W_hh^T da across chunks.
    Returns the half loss of the injected steps (the final ``0.5 *`` counted).
    """
    delta = np.zeros((xs.shape[1], W_hh.shape[0]))
    loss, _ = backward_steps(
        fc, xs, ys, W_hh, W_out, b_out, H, s_lo, s_hi, s_err, g, chunk, delta, 0.0
    )
    return fc.mul(0.5, loss)


def backward_steps(
    fc, xs, ys, W_hh, W_out, b_out, H, s_lo, s_hi, s_err, g, chunk, delta, loss, s_stop=None
):
    """_sweeps.backward_steps: (``loss`` plus the squared errors, error at h_{s_lo}) from
    the error ``delta`` at h_{s_hi}; W_hh^T da only at steps s > s_stop (default s_lo)."""
    _, B, m = xs.shape
    n, p = W_hh.shape[0], W_out.shape[0]
    s_stop = s_lo if s_stop is None else s_stop
    c1 = s_hi
    while c1 > s_lo:
        c0 = max(s_lo, c1 - chunk)
        c = c1 - c0
        D = np.zeros((c, B, n))
        e0 = max(c0, s_err)
        ne = c1 - e0
        if ne > 0:
            H_out = H[e0 + 1 : c1 + 1].reshape(ne * B, n)
            Y = ys[e0:c1].reshape(ne * B, p)
            E = fc.sub(fc.add(fc.dot(H_out, W_out.T), b_out), Y)  # e = yhat + b - y
            loss = fc.accumulate(loss, fc.mul(E, E))
            g["b_out"] = fc.accumulate(g["b_out"], E, axis=0)
            g["W_out"] = fc.add(g["W_out"], fc.dot(E.T, H_out))  # GEMM, then += chunk
            D[e0 - c0 :] = fc.dot(E, W_out).reshape(ne, B, n)
        for s in range(c1 - 1, c0 - 1, -1):
            h = H[s + 1]
            D[s - c0] = fc.mul(fc.add(D[s - c0], delta), fc.sub(1.0, fc.mul(h, h)))
            if s > s_stop:  # no product below the window's first step
                delta = fc.dot(D[s - c0], W_hh)
        D_c = D.reshape(c * B, n)
        g["W_hh"] = fc.add(g["W_hh"], fc.dot(D_c.T, H[c0:c1].reshape(c * B, n)))
        g["W_ih"] = fc.add(g["W_ih"], fc.dot(D_c.T, xs[c0:c1].reshape(c * B, m)))
        g["b_h"] = fc.accumulate(g["b_h"], D_c, axis=0)
        c1 = c0
    return loss, delta


def bptt(params, xs, ys, chunk):
    """(loss, gradient, FLOPs) of bptt: one forward sweep, one backward sweep."""
    W_ih, W_hh, b_h, W_out, b_out = _rnn_arrays(params)
    T, B, _ = xs.shape
    fc = Counter()
    H = np.zeros((T + 1, B, W_hh.shape[0]))
    forward_sweep(fc, xs, W_ih, W_hh, b_h, H, 0, T, chunk)
    g = _zero_grads(W_ih, W_hh, b_h, W_out, b_out)
    loss = backward_sweep(fc, xs, ys, W_hh, W_out, b_out, H, 0, T, 0, g, chunk)
    return float(loss), _as_params(g), fc.flops


def tbptt(params, xs, ys, k1, k2, chunk):
    """(loss, gradient, FLOPs) of tbptt: forward k1 steps, then one backward sweep
    through the last k2 states, until t = T; ``loss +=`` each sweep's loss."""
    W_ih, W_hh, b_h, W_out, b_out = _rnn_arrays(params)
    T, B, _ = xs.shape
    fc = Counter()
    H = np.zeros((T + 1, B, W_hh.shape[0]))  # all states; the kernel keeps a window of them
    g = _zero_grads(W_ih, W_hh, b_h, W_out, b_out)
    loss = 0.0
    t = 0
    while t < T:
        t_next = min(t + k1, T)
        forward_sweep(fc, xs, W_ih, W_hh, b_h, H, t, t_next, chunk)
        window_loss = backward_sweep(
            fc, xs, ys, W_hh, W_out, b_out, H, max(0, t_next - k2), t_next, t, g, chunk
        )
        loss = fc.add(loss, window_loss)
        t = t_next
    return float(loss), _as_params(g), fc.flops


def rtrl(params, xs, ys, K):
    """(loss, gradient, FLOPs) of rtrl with slabs of K influence blocks.

    J[b, g] is an (n, K, r) slab: J[b, g][i, kk, col] = dh_i / dtheta[g K + kk, col].
    """
    W_ih, W_hh, b_h, W_out, b_out = _rnn_arrays(params)
    T, B, m = xs.shape
    n, p = W_hh.shape[0], W_out.shape[0]
    r = n + m + 1
    fc = Counter()
    J = np.zeros((B, n // K, n, K, r))
    G = np.zeros((n, r))
    g_W_out, g_b_out = np.zeros((p, n)), np.zeros(p)
    loss = 0.0
    h_prev = np.zeros((B, n))
    for s in range(T):
        h = fc.tanh(fc.add(fc.add(fc.dot(xs[s], W_ih.T), fc.dot(h_prev, W_hh.T)), b_h))
        for b in range(B):
            # yhat_q = b_out_q + sum_j W_out[q, j] h_j: one multiply-add per (q, j)
            yhat = fc.accumulate(b_out, fc.mul(W_out, h[b]), axis=1)
            e = fc.sub(yhat, ys[s, b])
            loss = fc.accumulate(loss, fc.mul(e, e))
            g_b_out = fc.add(g_b_out, e)
            g_W_out = fc.add(g_W_out, fc.mul(e[:, None], h[b][None, :]))
            c = fc.accumulate(np.zeros(n), fc.mul(e[:, None], W_out), axis=0)  # W_out^T e
            z = np.concatenate([h_prev[b], xs[s, b], [1.0]])
            d = fc.sub(1.0, fc.mul(h[b], h[b]))
            for grp in range(n // K):
                scratch = fc.dot(W_hh, J[b, grp].reshape(n, K * r)).reshape(n, K, r)
                for kk in range(K):
                    k = grp * K + kk
                    scratch[k, kk] = fc.add(scratch[k, kk], z)  # + M_t: row k of block k
                v = fc.mul(d[:, None, None], scratch)
                J[b, grp] = v
                rows = slice(grp * K, (grp + 1) * K)
                G[rows] = fc.accumulate(G[rows], fc.mul(c[:, None, None], v), axis=0)
        h_prev = h
    loss = fc.mul(0.5, loss)
    grads = naive.RNNParams(
        W_ih=G[:, n : n + m], W_hh=G[:, :n], b_h=G[:, n + m], W_out=g_W_out, b_out=g_b_out
    )
    return float(loss), grads, fc.flops


def backprop(params, x, y):
    """(loss, gradient, FLOPs) of backprop through the tanh MLP."""
    weights = [np.asarray(W, dtype=np.float64) for W in params.weights]
    biases = [np.asarray(b, dtype=np.float64) for b in params.biases]
    L = len(weights)
    fc = Counter()
    acts = []
    A = np.asarray(x, dtype=np.float64)
    for l in range(L):
        Z = fc.add(fc.dot(A, weights[l].T), biases[l])
        A = fc.tanh(Z) if l < L - 1 else Z  # no tanh on the output layer
        acts.append(A)
    D = fc.sub(A, y)
    loss = fc.accumulate(0.0, fc.mul(D, D))
    g_w, g_b = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        A_in = np.asarray(x, dtype=np.float64) if l == 0 else acts[l - 1]
        g_w[l] = fc.dot(D.T, A_in)
        g_b[l] = fc.accumulate(np.zeros(D.shape[1]), D, axis=0)  # zero-filled, then +=
        if l > 0:
            D = fc.mul(fc.dot(D, weights[l]), fc.sub(1.0, fc.mul(A_in, A_in)))
    loss = fc.mul(0.5, loss)
    return float(loss), naive.MLPParams(tuple(g_w), tuple(g_b)), fc.flops


# --- the gated cells: the same schedule, G gate blocks, each cell's pointwise step ------
# kernels/_sweeps.py with kernels/cells/gru.py and lstm.py, counted. A sigmoid, like a
# tanh, is one FLOP. Parameters are any object with the fields weight_ih, weight_hh,
# bias_ih, bias_hh, W_out, b_out (gates stacked in rows, GRU r|z|n, LSTM i|f|g|o).


def _sigmoid(fc, a):
    return fc._elementwise(1.0 / (1.0 + np.exp(-np.asarray(a))))


def _gated_forward(fc, kind, xs, P, H, X, s0, s1, chunk):
    """_sweeps.forward_sweep for a gated cell: H holds h, X the cell's stored values."""
    _, B, m = xs.shape
    n = P.weight_hh.shape[1]
    Gn = P.weight_hh.shape[0]
    bi, bh = P.bias_ih, P.bias_hh

    def gate(a, R, q):
        block = slice(q * n, (q + 1) * n)
        return fc.add(fc.add(fc.add(a[:, block], bi[block]), R[:, block]), bh[block])

    for c0 in range(s0, s1, chunk):
        c = min(chunk, s1 - c0)
        A = fc.dot(xs[c0 : c0 + c].reshape(c * B, m), P.weight_ih.T).reshape(c, B, Gn)
        for j in range(c):
            s = c0 + j
            R = fc.dot(H[s], P.weight_hh.T)  # (B, G n)
            a = A[j]
            if kind == "gru":
                r = _sigmoid(fc, gate(a, R, 0))
                z = _sigmoid(fc, gate(a, R, 1))
                hn = fc.add(R[:, 2 * n :], bh[2 * n :])
                g = fc.tanh(fc.add(fc.add(a[:, 2 * n :], bi[2 * n :]), fc.mul(r, hn)))
                H[s + 1] = fc.add(g, fc.mul(z, fc.sub(H[s], g)))
                X[s + 1] = (r, z, g, hn)
            else:
                i = _sigmoid(fc, gate(a, R, 0))
                f = _sigmoid(fc, gate(a, R, 1))
                g = fc.tanh(gate(a, R, 2))
                o = _sigmoid(fc, gate(a, R, 3))
                c_new = fc.add(fc.mul(f, X[s][0]), fc.mul(i, g))
                H[s + 1] = fc.mul(o, fc.tanh(c_new))
                X[s + 1] = (c_new, i, f, g, o)


def _gated_backward(fc, kind, xs, ys, P, H, X, s_lo, s_hi, s_err, g, chunk):
    """_sweeps.backward_sweep for a gated cell (the readout as for the Elman cell)."""
    _, B, m = xs.shape
    n, p = P.weight_hh.shape[1], P.W_out.shape[0]
    Gn = P.weight_hh.shape[0]
    loss = 0.0
    delta = np.zeros((B, n))
    delta_c = np.zeros((B, n))
    c1 = s_hi
    while c1 > s_lo:
        c0 = max(s_lo, c1 - chunk)
        c = c1 - c0
        DH = np.zeros((c, B, n))
        D = np.zeros((c, B, Gn))
        DX = np.zeros((c, B, Gn))
        e0 = max(c0, s_err)
        ne = c1 - e0
        if ne > 0:
            H_out = H[e0 + 1 : c1 + 1].reshape(ne * B, n)
            Y = ys[e0:c1].reshape(ne * B, p)
            E = fc.sub(fc.add(fc.dot(H_out, P.W_out.T), P.b_out), Y)
            loss = fc.accumulate(loss, fc.mul(E, E))
            g["b_out"] = fc.accumulate(g["b_out"], E, axis=0)
            g["W_out"] = fc.add(g["W_out"], fc.dot(E.T, H_out))
            DH[e0 - c0 :] = fc.dot(E, P.W_out).reshape(ne, B, n)
        for s in range(c1 - 1, c0 - 1, -1):
            j = s - c0
            e = fc.add(DH[j], delta)
            if kind == "gru":
                r, z, gg, hn = X[s + 1]
                da_n = fc.mul(fc.mul(e, fc.sub(1.0, z)), fc.sub(1.0, fc.mul(gg, gg)))
                da_r = fc.mul(fc.mul(fc.mul(da_n, hn), r), fc.sub(1.0, r))
                da_z = fc.mul(fc.mul(fc.mul(e, fc.sub(H[s], gg)), z), fc.sub(1.0, z))
                D[j] = np.concatenate([da_r, da_z, fc.mul(da_n, r)], axis=1)
                DX[j] = np.concatenate([da_r, da_z, da_n], axis=1)
                carry = fc.mul(z, e)
            else:
                c_new, i, f, gg, o = X[s + 1]
                tc = fc.tanh(c_new)
                dc = fc.add(fc.mul(fc.mul(e, o), fc.sub(1.0, fc.mul(tc, tc))), delta_c)
                delta_c = fc.mul(dc, f)
                D[j] = np.concatenate(
                    [
                        fc.mul(fc.mul(fc.mul(dc, gg), i), fc.sub(1.0, i)),
                        fc.mul(fc.mul(fc.mul(dc, X[s][0]), f), fc.sub(1.0, f)),
                        fc.mul(fc.mul(dc, i), fc.sub(1.0, fc.mul(gg, gg))),
                        fc.mul(fc.mul(fc.mul(e, tc), o), fc.sub(1.0, o)),
                    ],
                    axis=1,
                )
                DX[j] = D[j]
            if s > s_lo:
                delta = fc.dot(D[j], P.weight_hh)
                if kind == "gru":
                    delta = fc.add(delta, carry)
        D_c, DX_c = D.reshape(c * B, Gn), DX.reshape(c * B, Gn)
        g["weight_hh"] = fc.add(g["weight_hh"], fc.dot(D_c.T, H[c0:c1].reshape(c * B, n)))
        g["weight_ih"] = fc.add(g["weight_ih"], fc.dot(DX_c.T, xs[c0:c1].reshape(c * B, m)))
        g["bias_ih"] = fc.accumulate(g["bias_ih"], DX_c, axis=0)
        if kind == "gru":
            g["bias_hh"] = fc.accumulate(g["bias_hh"], D_c, axis=0)
        c1 = c0
    return fc.mul(0.5, loss)


def _gated_setup(kind, params, xs):
    P = type(params)(*(np.asarray(a, dtype=np.float64) for a in params))
    T, B, _ = xs.shape
    n = P.weight_hh.shape[1]
    H = np.zeros((T + 1, B, n))
    zero = np.zeros((B, n))
    X = [(zero,) * (4 if kind == "gru" else 5)] * (T + 1)  # X[0]: c_0 = 0
    g = {f: np.zeros_like(getattr(P, f)) for f in P._fields}
    return P, H, X, g


def _gated_result(kind, P, g, loss, fc):
    if kind == "lstm":
        g["bias_hh"] = g["bias_ih"].copy()  # the kernel copies the one it accumulates
    return float(loss), type(P)(**g), fc.flops


def bptt_gated(kind, params, xs, ys, chunk):
    """(loss, gradient, FLOPs) of bptt on the GRU (kind "gru") or LSTM ("lstm") cell."""
    P, H, X, g = _gated_setup(kind, params, xs)
    fc = Counter()
    T = xs.shape[0]
    _gated_forward(fc, kind, xs, P, H, X, 0, T, chunk)
    loss = _gated_backward(fc, kind, xs, ys, P, H, X, 0, T, 0, g, chunk)
    return _gated_result(kind, P, g, loss, fc)


def tbptt_gated(kind, params, xs, ys, k1, k2, chunk):
    """(loss, gradient, FLOPs) of tbptt on a gated cell (windows as for the Elman cell)."""
    P, H, X, g = _gated_setup(kind, params, xs)
    fc = Counter()
    T = xs.shape[0]
    loss = 0.0
    t = 0
    while t < T:
        t_next = min(t + k1, T)
        _gated_forward(fc, kind, xs, P, H, X, t, t_next, chunk)
        window_loss = _gated_backward(
            fc, kind, xs, ys, P, H, X, max(0, t_next - k2), t_next, t, g, chunk
        )
        loss = fc.add(loss, window_loss)
        t = t_next
    return _gated_result(kind, P, g, loss, fc)


def checkpointed_bptt(params, xs, ys, schedule, L, chunk):
    """(loss, gradient, FLOPs) of checkpointed_bptt on the plain Elman cell.

    Runs the schedule's rows over segments of L steps as the kernel does: ADVANCE
    evaluates whole segments (forward sweeps), STORE and RESTORE copy, REVERSE runs
    BPTT on one segment (a forward sweep storing its states, then the backward steps
    from the error the segment above left, chunks of ``chunk`` steps); the loss is
    halved once at the end.
    """
    W_ih, W_hh, b_h, W_out, b_out = _rnn_arrays(params)
    T, B, _ = xs.shape
    n = W_hh.shape[0]
    fc = Counter()
    g = _zero_grads(W_ih, W_hh, b_h, W_out, b_out)
    slots = {}
    H = np.zeros((T + 1, B, n))  # every state, for indexing; the kernel keeps L + 1
    cur = 0  # the step index of the current state
    delta = np.zeros((B, n))
    loss = 0.0
    rows = np.asarray(schedule).tolist()
    last = next(i for op, i, _ in rows if op == 3)  # the top segment runs to T (a kept tail)
    for op, i, k in rows:
        if op == 0:  # ADVANCE segments i .. k-1
            forward_sweep(fc, xs, W_ih, W_hh, b_h, H, i * L, k * L, chunk)
            cur = k * L
        elif op == 1:  # STORE
            slots[k] = cur
        elif op == 2:  # RESTORE
            cur = slots[k]
        else:  # REVERSE segment i
            a = i * L
            assert cur == a or (k != -1 and slots[k] == a)
            b = T if i == last else a + L
            forward_sweep(fc, xs, W_ih, W_hh, b_h, H, a, b, chunk)
            loss, delta = backward_steps(
                fc, xs, ys, W_hh, W_out, b_out, H, a, b, a, g, chunk, delta, loss, s_stop=0
            )
    return float(fc.mul(0.5, loss)), _as_params(g), fc.flops
