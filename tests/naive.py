"""Plain-NumPy reference implementations, written from THEORY.md alone.

Nothing here imports ``kernels``: these functions are the independent side of
every comparison in the test suite. They favour the definition over speed:

- ``bptt``: epochwise BPTT, one forward pass storing every h_t, one backward pass.
- ``tbptt``: Williams & Peng BPTT(k2; k1), recomputing each window from its
  constant starting state h_{t-k2}.
- ``detach_every_k``: the framework idiom "run k steps, back-propagate, detach
  the hidden state, continue", carrying the state from chunk to chunk.
- ``checkpointed_bptt``: BPTT run by a checkpoint schedule (an int array of
  actions, see below), holding at most ``slots`` states; it checks every
  action against the state it is handed and counts what it evaluates.
- ``rtrl``: forward-mode accumulation of the full influence matrix
  J_t = dh_t/dtheta with an explicitly built immediate Jacobian M_t.
- ``backprop``: the feed-forward tanh MLP, layer by layer.
- ``finite_difference``: central differences of any loss, entry by entry.

The model (THEORY.md):

    a_t    = W_ih x_t + W_hh h_{t-1} + b_h        h_0 = 0
    h_t    = tanh(a_t)
    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

Arrays are (T, B, m) inputs and (T, B, p) targets; a 2-D (T, m) sequence means
B = 1. Parameters are any object with the five attributes ``W_ih, W_hh, b_h,
W_out, b_out`` (RNN) or ``weights, biases`` (MLP); gradients come back as the
NamedTuples below, whose fields have the same names.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RNNParams(NamedTuple):
    W_ih: np.ndarray  # (n, m)
    W_hh: np.ndarray  # (n, n)
    b_h: np.ndarray  # (n,)
    W_out: np.ndarray  # (p, n)
    b_out: np.ndarray  # (p,)


class MLPParams(NamedTuple):
    weights: tuple  # weights[l] is (w_{l+1}, w_l)
    biases: tuple  # biases[l] is (w_{l+1},)


RNN_FIELDS = RNNParams._fields


def _as_batched(xs, ys):
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    if xs.ndim == 2:
        xs, ys = xs[:, None, :], ys[:, None, :]
    return xs, ys


def _as_float64(p) -> RNNParams:
    return RNNParams(*(np.asarray(getattr(p, f), dtype=np.float64) for f in RNN_FIELDS))


def _zeros_like(p: RNNParams) -> RNNParams:
    return RNNParams(*(np.zeros_like(a) for a in p))


def _add(a: RNNParams, b: RNNParams) -> RNNParams:
    return RNNParams(*(x + y for x, y in zip(a, b, strict=True)))


def forward(p, xs, h0=None):
    """States h_1..h_T and outputs yhat_1..yhat_T from h_0 (zero unless given).

    Returns ``hs`` of shape (T + 1, B, n) with ``hs[0] = h_0`` and ``yhat`` of
    shape (T, B, p).
    """
    p = _as_float64(p)
    xs = np.asarray(xs, dtype=np.float64)
    T, B, _ = xs.shape
    n = p.W_hh.shape[0]
    hs = np.zeros((T + 1, B, n))
    if h0 is not None:
        hs[0] = h0
    for t in range(1, T + 1):
        a_t = xs[t - 1] @ p.W_ih.T + hs[t - 1] @ p.W_hh.T + p.b_h
        hs[t] = np.tanh(a_t)
    yhat = hs[1:] @ p.W_out.T + p.b_out
    return hs, yhat


def loss(p, xs, ys) -> float:
    """The full loss 1/2 sum_t sum_b ||yhat - y||^2."""
    xs, ys = _as_batched(xs, ys)
    _, yhat = forward(p, xs)
    return 0.5 * float(np.sum((yhat - ys) ** 2))


def bptt_segment(p: RNNParams, xs, ys, h0, weights):
    """Gradient of 1/2 sum_s weights[s] ||yhat_s - y_s||^2 over one segment.

    The segment starts from the constant state ``h0`` (no gradient flows into
    it); ``weights`` (one 0/1 per step) picks which steps' errors are injected.
    This is epochwise BPTT on the segment: the error at the copy node of h_s is
    the error from y_s plus the error from h_{s+1}.
    """
    hs, yhat = forward(p, xs, h0)
    S = xs.shape[0]
    g = _zeros_like(p)
    e = (yhat - ys) * np.asarray(weights, dtype=np.float64)[:, None, None]  # dL/dyhat_s
    delta_next = np.zeros_like(hs[0])  # dL/da_{s+1}
    for s in range(S, 0, -1):
        e_s = e[s - 1]
        g.W_out[...] += e_s.T @ hs[s]
        g.b_out[...] += e_s.sum(axis=0)
        dh = e_s @ p.W_out + delta_next @ p.W_hh  # dL/dh_s (from y_s and from h_{s+1})
        delta = dh * (1.0 - hs[s] ** 2)  # dL/da_s
        g.W_ih[...] += delta.T @ xs[s - 1]
        g.W_hh[...] += delta.T @ hs[s - 1]
        g.b_h[...] += delta.sum(axis=0)
        delta_next = delta
    return g


def bptt(p, xs, ys):
    """Epochwise BPTT: (loss, gradient) of the full loss."""
    p = _as_float64(p)
    xs, ys = _as_batched(xs, ys)
    T, B, _ = xs.shape
    h0 = np.zeros((B, p.W_hh.shape[0]))
    g = bptt_segment(p, xs, ys, h0, np.ones(T))
    return loss(p, xs, ys), g


# Action codes of a checkpoint schedule, rows (op, i, j), as documented in
# kernels/checkpoint_schedule.py (a test checks that the two agree):
# (ADVANCE, a, b) current h_a -> h_b; (STORE, i, k) current h_i -> slot k;
# (RESTORE, i, k) slot k holding h_i -> current; (REVERSE, s, k) back-propagate
# step s with h_s from slot k, or from the current state when k == CURRENT.
ADVANCE, STORE, RESTORE, REVERSE, CURRENT = 0, 1, 2, 3, -1


class ScheduleRun(NamedTuple):
    loss: float
    grads: RNNParams
    advances: np.ndarray  # (T,) times each step was evaluated by ADVANCE rows
    turns: int  # steps evaluated inside REVERSE rows (h_T for the first one)
    max_held: int  # most slots occupied at once


def checkpointed_bptt(p, xs, ys, schedule, slots) -> ScheduleRun:
    """Run a checkpoint schedule on the Elman RNN: BPTT holding at most ``slots`` states.

    The executor holds the current state (h_0 at the start) and ``slots``
    slots. Every row is checked against what the executor holds: an ADVANCE
    must start from the current state, a STORE must name the current state and
    a slot in range, a RESTORE and a slot REVERSE must name the state their
    slot holds, REVERSE rows must come s = T-1 down to 0. Reverse step s needs
    h_s and h_{s+1}: h_{s+1} is the state the previous REVERSE read, kept in a
    buffer; the first REVERSE (s = T-1) evaluates step T-1 to get h_T (a turn).
    A slot stays occupied from its first STORE on; ``max_held`` counts them.
    """
    p = _as_float64(p)
    xs, ys = _as_batched(xs, ys)
    schedule = np.asarray(schedule)
    T, B, _ = xs.shape
    n = p.W_hh.shape[0]

    def step(s, h):  # h_{s+1} from h_s
        return np.tanh(xs[s] @ p.W_ih.T + h @ p.W_hh.T + p.b_h)

    held = {}  # slot -> (state index, array)
    cur_i, cur = 0, np.zeros((B, n))
    advances = np.zeros(T, dtype=np.int64)
    turns, max_held = 0, 0
    next_s = T - 1  # the next step to reverse
    h_next = None  # h_{next_s + 1}, read by the previous REVERSE
    delta_next = np.zeros((B, n))  # dL/da_{next_s + 1}
    g = _zeros_like(p)
    total = 0.0
    for row, (op, i, j) in enumerate(schedule.tolist()):
        where = f"row {row} {(op, i, j)}"
        if op == ADVANCE:
            assert i == cur_i and i < j <= T - 1, f"{where}: current state is h_{cur_i}"
            for s in range(i, j):
                cur = step(s, cur)
                advances[s] += 1
            cur_i = j
        elif op == STORE:
            assert i == cur_i, f"{where}: current state is h_{cur_i}"
            assert 0 <= j < slots, f"{where}: slot out of range 0..{slots - 1}"
            held[j] = (i, cur.copy())
            max_held = max(max_held, len(held))
        elif op == RESTORE:
            assert held.get(j, (None,))[0] == i, f"{where}: slot {j} holds {held.get(j)}"
            cur_i, cur = i, held[j][1].copy()
        elif op == REVERSE:
            assert i == next_s, f"{where}: expected to reverse step {next_s}"
            if j == CURRENT:
                assert cur_i == i, f"{where}: current state is h_{cur_i}"
                h_s = cur
            else:
                assert held.get(j, (None,))[0] == i, f"{where}: slot {j} holds {held.get(j)}"
                h_s = held[j][1]
            if i == T - 1:
                h_s1 = step(i, h_s)
                turns += 1
            else:
                h_s1 = h_next
            # The step's local rules, as in bptt_segment.
            e = h_s1 @ p.W_out.T + p.b_out - ys[i]  # dL/dyhat_s
            total += 0.5 * float(np.sum(e**2))
            g.W_out[...] += e.T @ h_s1
            g.b_out[...] += e.sum(axis=0)
            dh = e @ p.W_out + delta_next @ p.W_hh  # dL/dh_{s+1}
            delta = dh * (1.0 - h_s1**2)  # dL/da
            g.W_ih[...] += delta.T @ xs[i]
            g.W_hh[...] += delta.T @ h_s
            g.b_h[...] += delta.sum(axis=0)
            delta_next, h_next = delta, h_s.copy()
            next_s -= 1
        else:
            raise AssertionError(f"{where}: unknown action {op}")
    assert next_s == -1, f"the schedule stopped before reversing step {next_s}"
    return ScheduleRun(total, g, advances, turns, max_held)


def update_times(T: int, k1: int) -> list[int]:
    """The t at which BPTT(k2; k1) updates: every multiple of k1, and t = T."""
    times = list(range(k1, T + 1, k1))
    if not times or times[-1] != T:
        times.append(T)
    return times


def tbptt(p, xs, ys, k1, k2=None):
    """Williams & Peng BPTT(k2; k1), each window recomputed from its start state.

    At every t that is a multiple of k1, and at t = T, the errors of the steps
    since the previous update are back-propagated through h_t .. h_{t-k2+1};
    h_{t-k2} (h_0 when t <= k2) is a constant taken from the forward pass with
    the weights held fixed. The gradient is the sum of these updates; the loss
    is the full loss.
    """
    if k2 is None:
        k2 = k1
    p = _as_float64(p)
    xs, ys = _as_batched(xs, ys)
    T = xs.shape[0]
    hs, _ = forward(p, xs)  # only the window start states are read from this pass
    g = _zeros_like(p)
    previous = 0
    for t in update_times(T, k1):
        start = max(t - k2, 0)  # h_start is the constant state; the window is h_{start+1}..h_t
        weights = np.zeros(t - start)
        weights[previous - start :] = 1.0  # the steps previous+1 .. t (all inside: k1 <= k2)
        g = _add(g, bptt_segment(p, xs[start:t], ys[start:t], hs[start], weights))
        previous = t
    return loss(p, xs, ys), g


def detach_every_k(p, xs, ys, k):
    """The framework idiom: run k steps, back-propagate their loss, detach the state.

    The hidden state is carried from one chunk into the next as a constant, so a
    chunk's gradient never reaches back past the chunk's first step. A short
    last chunk (k not dividing T) reaches back only to its own start; BPTT(k; k)
    differs there (its last update reaches back k steps).
    """
    p = _as_float64(p)
    xs, ys = _as_batched(xs, ys)
    T, B, _ = xs.shape
    h = np.zeros((B, p.W_hh.shape[0]))
    g = _zeros_like(p)
    for start in range(0, T, k):
        stop = min(start + k, T)
        g = _add(g, bptt_segment(p, xs[start:stop], ys[start:stop], h, np.ones(stop - start)))
        hs, _ = forward(p, xs[start:stop], h)
        h = hs[-1]  # detach: the next chunk sees this state as a constant
    return loss(p, xs, ys), g


def immediate_jacobian(x_t, h_prev, n):
    """M_t = da_t/dtheta for one sequence, theta = (vec W_ih, vec W_hh, b_h), row-major.

    da_i/dW_ih[j, k] = [i == j] x_k, da_i/dW_hh[j, k] = [i == j] h_{t-1,k},
    da_i/db_h[j] = [i == j].
    """
    m = x_t.shape[0]
    P = n * m + n * n + n
    M = np.zeros((n, P))
    for i in range(n):
        M[i, i * m : (i + 1) * m] = x_t
        M[i, n * m + i * n : n * m + (i + 1) * n] = h_prev
        M[i, n * m + n * n + i] = 1.0
    return M


def rtrl(p, xs, ys):
    """RTRL: J_t = diag(1 - h_t^2) (W_hh J_{t-1} + M_t), gradient sum_t (dL_t/dh_t) J_t.

    One full influence matrix J (n x P) per sequence in the batch; nothing from
    earlier steps is stored except J and h_{t-1}. The readout gradients are
    local in time and accumulated directly.
    """
    p = _as_float64(p)
    xs, ys = _as_batched(xs, ys)
    T, B, m = xs.shape
    n = p.W_hh.shape[0]
    P = n * m + n * n + n
    g_theta = np.zeros(P)
    g_W_out = np.zeros_like(p.W_out)
    g_b_out = np.zeros_like(p.b_out)
    total = 0.0
    for b in range(B):
        J = np.zeros((n, P))  # J_0 = dh_0/dtheta = 0
        h_prev = np.zeros(n)
        for t in range(T):
            M = immediate_jacobian(xs[t, b], h_prev, n)
            h = np.tanh(p.W_ih @ xs[t, b] + p.W_hh @ h_prev + p.b_h)
            J = (1.0 - h**2)[:, None] * (p.W_hh @ J + M)
            e = p.W_out @ h + p.b_out - ys[t, b]  # dL_t/dyhat_t
            total += 0.5 * float(e @ e)
            g_theta += (e @ p.W_out) @ J  # (dL_t/dh_t) J_t
            g_W_out += np.outer(e, h)
            g_b_out += e
            h_prev = h
    g = RNNParams(
        W_ih=g_theta[: n * m].reshape(n, m),
        W_hh=g_theta[n * m : n * m + n * n].reshape(n, n),
        b_h=g_theta[n * m + n * n :].copy(),
        W_out=g_W_out,
        b_out=g_b_out,
    )
    return total, g


def mlp_forward(q, x):
    """Activations z_0 = x, z_l = tanh(W_l z_{l-1} + b_l) on hidden layers, linear output."""
    weights = [np.asarray(w, dtype=np.float64) for w in q.weights]
    biases = [np.asarray(b, dtype=np.float64) for b in q.biases]
    zs = [np.asarray(x, dtype=np.float64)]
    for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
        a = zs[-1] @ W.T + b
        zs.append(a if l == len(weights) - 1 else np.tanh(a))
    return zs


def mlp_loss(q, x, y) -> float:
    zs = mlp_forward(q, x)
    return 0.5 * float(np.sum((zs[-1] - np.asarray(y, dtype=np.float64)) ** 2))


def backprop(q, x, y):
    """Backprop through the tanh MLP: (loss, MLPParams of gradients)."""
    weights = [np.asarray(w, dtype=np.float64) for w in q.weights]
    zs = mlp_forward(q, x)
    L = len(weights)
    delta = zs[-1] - np.asarray(y, dtype=np.float64)  # dL/da_L (linear output)
    g_w, g_b = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        g_w[l] = delta.T @ zs[l]
        g_b[l] = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l]) * (1.0 - zs[l] ** 2)  # through tanh of layer l
    return mlp_loss(q, x, y), MLPParams(tuple(g_w), tuple(g_b))


def flat_arrays(params) -> list[tuple[str, np.ndarray]]:
    """(name, array) for every parameter array of an RNN or MLP parameter tuple."""
    out = []
    for field in params._fields:
        value = getattr(params, field)
        if isinstance(value, tuple):
            out.extend((f"{field}[{i}]", a) for i, a in enumerate(value))
        else:
            out.append((field, value))
    return out


def finite_difference(loss_fn, params, step=1e-6):
    """Central differences of ``loss_fn(params)`` for every entry of every array.

    ``params`` is an RNN or MLP parameter NamedTuple of float64 arrays; it is
    copied, never modified. Returns ``{name: gradient array}`` keyed as
    :func:`flat_arrays` names them.
    """
    work = _deep_copy(params)
    grads = {}
    for name, array in flat_arrays(work):
        g = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            saved = array[idx]
            array[idx] = saved + step
            up = loss_fn(work)
            array[idx] = saved - step
            down = loss_fn(work)
            array[idx] = saved
            g[idx] = (up - down) / (2.0 * step)
        grads[name] = g
    return grads


def _deep_copy(params):
    values = []
    for field in params._fields:
        value = getattr(params, field)
        if isinstance(value, tuple):
            values.append(tuple(np.array(a, dtype=np.float64) for a in value))
        else:
            values.append(np.array(value, dtype=np.float64))
    return type(params)(*values)


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected| over one array (inf-norm relative error).

    Used for every comparison: entries near zero by cancellation do not blow it
    up, but a wrong entry anywhere shows at the scale of the whole array.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    diff = np.max(np.abs(actual - expected)) if expected.size else 0.0
    if scale == 0.0:
        return float(diff)
    return float(diff / scale)
