"""SnAp-1 for the gated cells, GRU and LSTM (Menick et al. 2021, sec. 3 and 4).

SnAp-1 keeps, of the influence matrix J_t = d state_t / d theta, only the
entries that are non-zero one step after a parameter is used, and drops the
rest at every step. A parameter row k of any gate (row k of weight_ih and
weight_hh, entry k of bias_ih and bias_hh) feeds the pre-activation of unit
i = k mod n only, so after one step it has moved that unit's state only
(the GRU's h_i; the LSTM's pair (h_i, c_i)). SnAp-1 keeps those entries,

    GRU:   S[k, :]  = d h_i / d theta[k, :]                      (G n x r, G = 3)
    LSTM:  Sh[k, :] = d h_i / d theta[k, :], Sc[k, :] = d c_i / d theta[k, :]   (G = 4)

with r = n + m + 2 columns (the weight_hh row, the weight_ih row, bias_ih,
bias_hh; z_t = (h_{t-1}, x_t, 1, 1)), and runs RTRL's recursion restricted
to them: the state Jacobian A_t is replaced by its unit-diagonal part (the
diagonal of each gate's W_h*, and for the LSTM the 2 x 2 block of (h_i, c_i)).

GRU (gates r|z|n; notation of ``rtrl_gru.py``):

    beta = (1 - z)(1 - g^2), alpha_n = beta r, alpha_r = beta u r (1 - r),
    alpha_z = (h_{t-1} - g) z (1 - z)
    a_i  = z_i + alpha_r,i W_hr[i, i] + alpha_z,i W_hz[i, i] + alpha_n,i W_hn[i, i]
    S[k] <- a_i S[k] + M_t[k]
    M_t[k] = alpha_r,i z_t (r gate), alpha_z,i z_t (z gate),
             (alpha_n,i h_{t-1}, beta_i x_t, beta_i, alpha_n,i) (n gate)

LSTM (gates i|f|g|o, c_t = f c_{t-1} + i g, h_t = o tanh(c_t); primes are the
gates' derivatives in their pre-activations, tc = tanh(c_t)):

    dc/dh = c_{t-1} f' W_hf[i, i] + g i' W_hi[i, i] + i g' W_hg[i, i],   dc/dc = f
    dh/dh = o' tc W_ho[i, i] + o (1 - tc^2) dc/dh,                      dh/dc = o (1 - tc^2) f
    Sc[k] <- dc/dh Sh[k] + f Sc[k] + Mc[k]
    Sh[k] <- dh/dh Sh[k] + dh/dc Sc[k] + Mh[k]
    Mc[k] = (g i', c_{t-1} f', i g', 0)[gate] z_t,  Mh[k] = o (1 - tc^2) Mc[k] + [o gate] o' tc z_t

and for both dL/dtheta[k] += c_t,i S[k] (Sh[k]), c_t = W_out^T (yhat_t - y_t);
the readout's gradients are exact (e_t h_t^T, e_t).

Where every W_h* is diagonal, A_t has no other entries, so SnAp-1 is exact
RTRL; with weight_hh = 0 likewise; at T = 1 every rule is exact (J_0 = 0).

Costs per step and sequence: the forward step's G n (n + m) multiply-adds and
O(G n r) for the kept influence (a few passes over G n r numbers): time
Theta(n^2 B) per step like SnAp-1 on the Elman cell, with the constant of G
gates (and two traces for the LSTM); memory Theta(n^2 B) (Menick, Elsen, Evci,
Osindero, Simonyan & Graves 2021, "Practical Real Time Recurrent Learning with
a Sparse Approximation", ICLR, sec. 3; the counts follow the kernels below).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .costs import Term


@jit
def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


@jit
def _readout(hb, W_out, b_out, y, cvec, g_W_out, g_b_out):
    """Loss of one sequence at one step; c = W_out^T e into ``cvec``; readout gradients."""
    p, n = W_out.shape
    loss = 0.0
    cvec[:] = 0.0
    for q in range(p):
        e = b_out[q] - y[q]
        for j in range(n):
            e += W_out[q, j] * hb[j]
        loss += 0.5 * e * e
        g_b_out[q] += e
        for j in range(n):
            g_W_out[q, j] += e * hb[j]
            cvec[j] += W_out[q, j] * e
    return loss


@jit
def _fill_z(hb, x, zv):
    n, m = hb.shape[0], x.shape[0]
    zv[:n] = hb
    zv[n : n + m] = x
    zv[n + m] = 1.0
    zv[n + m + 1] = 1.0


@jit
def _gru(xs, ys, weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, h, S, G, g_W_out, g_b_out):
    T, B, m = xs.shape
    n = weight_hh.shape[1]
    r = n + m + 2
    pre_i = np.empty(3 * n, xs.dtype)
    pre_h = np.empty(3 * n, xs.dtype)
    zv = np.empty(r, xs.dtype)
    cvec = np.empty(n, xs.dtype)
    h_new = np.empty(n, xs.dtype)
    loss = 0.0
    for t in range(T):
        for b in range(B):
            hb = h[b]
            np.dot(weight_ih, xs[t, b], pre_i)
            np.dot(weight_hh, hb, pre_h)
            _fill_z(hb, xs[t, b], zv)
            Sb = S[b]
            for i in range(n):
                rr = _sig(pre_i[i] + bias_ih[i] + pre_h[i] + bias_hh[i])
                zz = _sig(pre_i[n + i] + bias_ih[n + i] + pre_h[n + i] + bias_hh[n + i])
                u = pre_h[2 * n + i] + bias_hh[2 * n + i]
                g = math.tanh(pre_i[2 * n + i] + bias_ih[2 * n + i] + rr * u)
                h_new[i] = (1.0 - zz) * g + zz * hb[i]
                beta = (1.0 - zz) * (1.0 - g * g)
                a_n = beta * rr
                a_r = beta * u * rr * (1.0 - rr)
                a_z = (hb[i] - g) * zz * (1.0 - zz)
                diag = (
                    zz
                    + a_r * weight_hh[i, i]
                    + a_z * weight_hh[n + i, i]
                    + a_n * weight_hh[2 * n + i, i]
                )
                for c in range(r):
                    Sb[i, c] = diag * Sb[i, c] + a_r * zv[c]
                    Sb[n + i, c] = diag * Sb[n + i, c] + a_z * zv[c]
                k = 2 * n + i
                for c in range(n):
                    Sb[k, c] = diag * Sb[k, c] + a_n * zv[c]
                for c in range(n, n + m + 1):
                    Sb[k, c] = diag * Sb[k, c] + beta * zv[c]
                Sb[k, r - 1] = diag * Sb[k, r - 1] + a_n
            hb[:] = h_new
            loss += _readout(hb, W_out, b_out, ys[t, b], cvec, g_W_out, g_b_out)
            for i in range(n):
                ci = cvec[i]
                for gate in range(3):
                    k = gate * n + i
                    for c in range(r):
                        G[k, c] += ci * Sb[k, c]
    return loss


@jit
def _lstm(
    xs, ys, weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, h, cs, Sh, Sc, G, g_W_out,
    g_b_out,
):  # fmt: skip
    T, B, m = xs.shape
    n = weight_hh.shape[1]
    r = n + m + 2
    pre = np.empty(4 * n, xs.dtype)
    pre_h = np.empty(4 * n, xs.dtype)
    zv = np.empty(r, xs.dtype)
    cvec = np.empty(n, xs.dtype)
    mc = np.empty(4, xs.dtype)
    loss = 0.0
    for t in range(T):
        for b in range(B):
            hb, cb = h[b], cs[b]
            np.dot(weight_ih, xs[t, b], pre)
            np.dot(weight_hh, hb, pre_h)
            _fill_z(hb, xs[t, b], zv)
            Shb, Scb = Sh[b], Sc[b]
            for i in range(n):
                ig = _sig(pre[i] + bias_ih[i] + pre_h[i] + bias_hh[i])
                fg = _sig(pre[n + i] + bias_ih[n + i] + pre_h[n + i] + bias_hh[n + i])
                k2 = 2 * n + i
                gg = math.tanh(pre[k2] + bias_ih[k2] + pre_h[k2] + bias_hh[k2])
                k3 = 3 * n + i
                og = _sig(pre[k3] + bias_ih[k3] + pre_h[k3] + bias_hh[k3])
                c_old = cb[i]
                c_new = fg * c_old + ig * gg
                tc = math.tanh(c_new)
                di, df, dg, do = ig * (1.0 - ig), fg * (1.0 - fg), 1.0 - gg * gg, og * (1.0 - og)
                otc = og * (1.0 - tc * tc)
                dc_dh = (
                    c_old * df * weight_hh[n + i, i]
                    + gg * di * weight_hh[i, i]
                    + ig * dg * weight_hh[k2, i]
                )
                dh_dh = do * tc * weight_hh[k3, i] + otc * dc_dh
                dh_dc = otc * fg
                mc[0], mc[1], mc[2], mc[3] = gg * di, c_old * df, ig * dg, 0.0
                for gate in range(4):
                    k = gate * n + i
                    mo = do * tc if gate == 3 else 0.0
                    for c in range(r):
                        sh, sc = Shb[k, c], Scb[k, c]
                        imm_c = mc[gate] * zv[c]
                        Scb[k, c] = dc_dh * sh + fg * sc + imm_c
                        Shb[k, c] = dh_dh * sh + dh_dc * sc + otc * imm_c + mo * zv[c]
                cb[i] = c_new
                pre[i] = og * tc  # h_t,i, kept apart until every unit has read h_{t-1}
            for i in range(n):
                hb[i] = pre[i]
            loss += _readout(hb, W_out, b_out, ys[t, b], cvec, g_W_out, g_b_out)
            for i in range(n):
                ci = cvec[i]
                for gate in range(4):
                    k = gate * n + i
                    for c in range(r):
                        G[k, c] += ci * Shb[k, c]
    return loss


def _split(G, n, m, W_out_g, b_out_g):
    """(g_weight_ih, g_weight_hh, g_bias_ih, g_bias_hh, g_W_out, g_b_out) from the G n x r rows."""
    return (
        G[:, n : n + m].copy(), G[:, :n].copy(), G[:, n + m].copy(), G[:, n + m + 1].copy(),
        W_out_g, b_out_g,
    )  # fmt: skip


def snap1_gru(weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, xs, ys):
    """Loss and SnAp-1's gradient estimate of a one-layer GRU (the arrays of ``rtrl_gru``)."""
    _, B, m = xs.shape
    n = weight_hh.shape[1]
    dt = weight_hh.dtype
    S = np.zeros((B, 3 * n, n + m + 2), dt)
    G = np.zeros((3 * n, n + m + 2), dt)
    g_out = (np.zeros_like(W_out), np.zeros_like(b_out))
    loss = _gru(xs, ys, weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out,
                np.zeros((B, n), dt), S, G, *g_out)  # fmt: skip
    del S  # freed before the gradients are copied out of G: they add nothing to the peak
    return float(loss), _split(G, n, m, *g_out)


def snap1_lstm(weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, xs, ys):
    """Loss and SnAp-1's gradient estimate of a one-layer LSTM (the arrays of ``rtrl_lstm``)."""
    _, B, m = xs.shape
    n = weight_hh.shape[1]
    dt = weight_hh.dtype
    Sh = np.zeros((B, 4 * n, n + m + 2), dt)
    Sc = np.zeros_like(Sh)
    G = np.zeros((4 * n, n + m + 2), dt)
    g_out = (np.zeros_like(W_out), np.zeros_like(b_out))
    loss = _lstm(xs, ys, weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out,
                 np.zeros((B, n), dt), np.zeros((B, n), dt), Sh, Sc, G, *g_out)  # fmt: skip
    del Sh, Sc  # as in snap1_gru
    return float(loss), _split(G, n, m, *g_out)


KERNELS = {"gru": snap1_gru, "lstm": snap1_lstm}


# --- costs ---------------------------------------------------------------------------
# Per step and sequence, with G gates and r = n + m + 2: the two gate products
# 2 G n (n + m), the readout 4 p n + 3 p, the gates (GRU ~30 n, LSTM ~40 n, a sigmoid
# counting 3 and tanh 1), the kept influence 3 G n r (GRU: scale, add, immediate
# term) or 8 G n r (LSTM: two traces) and the gradient 2 G n r.


def flops(size) -> list[Term]:
    """FLOPs of one gated ``snap1`` call (size["cell"] is "gru" or "lstm")."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    G, per_unit, trace = (3, 30, 3) if size.get("cell") == "gru" else (4, 40, 8)
    TB = {"T": 1, "B": 1}
    kept = T * B * (trace + 2) * G * n  # per column of r = n + m + 2
    return [
        Term(T * B * 2 * G * n * n, {**TB, "n": 2}),  # weight_hh h
        Term(T * B * 2 * G * n * m, {**TB, "n": 1, "m": 1}),  # weight_ih x
        Term(T * B * per_unit * n, {**TB, "n": 1}),  # the gates and the new state
        Term(T * B * 4 * p * n, {**TB, "n": 1, "p": 1}),  # readout and c = W_out^T e
        Term(T * B * 3 * p, {**TB, "p": 1}),
        Term(kept * n, {**TB, "n": 2}),  # the kept influence and the gradient rows
        Term(kept * m, {**TB, "n": 1, "m": 1}),
        Term(kept * 2, {**TB, "n": 1}),
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one gated ``snap1`` call: the kept traces and the gradients."""
    B, n, m, p = (size[k] for k in ("B", "n", "m", "p"))
    G, traces = (3, 1) if size.get("cell") == "gru" else (4, 2)
    w = itemsize
    return [
        Term(traces * B * G * n * n * w, {"B": 1, "n": 2}),  # S (Sh, Sc): B G n r
        Term(traces * B * G * n * m * w, {"B": 1, "n": 1, "m": 1}),
        Term(traces * B * G * n * 2 * w, {"B": 1, "n": 1}),
        Term(G * n * n * w, {"n": 2}),  # the G n r gradient rows
        Term(G * n * m * w, {"n": 1, "m": 1}),
        Term(G * n * 2 * w, {"n": 1}),
        Term(p * n * w, {"n": 1, "p": 1}),  # g_W_out
        Term(p * w, {"p": 1}),  # g_b_out
        Term(2 * B * n * w, {"B": 1, "n": 1}),  # h (and the LSTM's c)
    ]


# --- streams: the state carried from one chunk to the next ------------------------------


class GatedState:
    """What gated SnAp-1 carries across chunks: h (and the LSTM's c) and the kept traces."""

    def __init__(self, cell: str, B: int, n: int, m: int, dtype):
        G = 3 if cell == "gru" else 4
        self.cell = cell
        self.h = np.zeros((B, n), dtype)
        self.c = np.zeros((B, n), dtype)
        self.traces = [np.zeros((B, G * n, n + m + 2), dtype) for _ in range(1 if G == 3 else 2)]


def start(cell: str, weights, B: int) -> GatedState:
    """The state at t = 0 of ``B`` sequences: h_0 = c_0 = 0 and empty traces."""
    n, m = weights.weight_hh.shape[1], weights.weight_ih.shape[1]
    return GatedState(cell, B, n, m, weights.weight_hh.dtype)


def advance(state: GatedState, weights, xs, ys):
    """Run the checked chunk ``xs``, ``ys`` from ``state`` (updated in place); (loss, grads)."""
    n, m = weights.weight_hh.shape[1], weights.weight_ih.shape[1]
    G = np.zeros((weights.weight_hh.shape[0], n + m + 2), weights.weight_hh.dtype)
    g_out = (np.zeros_like(weights.W_out), np.zeros_like(weights.b_out))
    if state.cell == "gru":
        loss = _gru(xs, ys, *weights, state.h, state.traces[0], G, *g_out)
    else:
        loss = _lstm(xs, ys, *weights, state.h, state.c, *state.traces, G, *g_out)
    return float(loss), _split(G, n, m, *g_out)
