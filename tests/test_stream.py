"""bpttbench.stream: online gradients carried across chunks of one sequence.

With the weights held fixed, streaming a sequence in chunks must give what the
one-shot call on the whole sequence gives: the chunks' losses and gradients
sum to it (for RTRL, to BPTT's exact gradient), and a stochastic rule draws
the same signs as its one-shot call with the same seed. New weights take
effect from the next chunk on, from the carried state; a stream refuses
chunks and weights that do not fit it.
"""

from __future__ import annotations

import sys

import bpttbench
import helpers
import naive_online
import numpy as np
import pytest
from helpers import DIFFERENT_AT_LEAST, assert_grads_close, assert_loss_close, max_grad_difference
from helpers import with_alpha as leaky

ONLINE = sys.modules["bpttbench._online"]

# The chunked and one-shot runs make the same operations but sum the gradient
# (and fold the blocked terms) in another order: ~1e-15 measured.
CHUNKED_RTOL = 1e-12
STOCHASTIC = ("uoro", "kf_rtrl", "r_kf")
ONE_SHOT = {
    "rtrl": bpttbench.rtrl,
    "uoro": bpttbench.uoro,
    "kf_rtrl": bpttbench.kf_rtrl,
    "r_kf": bpttbench.r_kf,
    "snap1": bpttbench.snap1,
    "snap2": bpttbench.snap2,
    "rflo": bpttbench.rflo,
}
LEAKY = list(ONE_SHOT)  # every rule runs the leaky cell
T = 12
CHUNKINGS = {
    "one-chunk": [12],
    "uneven": [5, 1, 4, 2],
    "single-steps": [1] * 12,
}


@pytest.fixture
def problem(rng):
    """(RNNParams, xs (12, 2, 3), ys (12, 2, 2)), n = 5."""
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 3, 5, 2))
    xs, ys = helpers.sequence(rng, T, 2, 3, 2)
    return p, xs, ys


def options(name, seed=0):
    return {"seed": seed} if name in STOCHASTIC else {}


def stream_in_chunks(name, params, xs, ys, lengths, **opts):
    """The summed losses and gradients of ``xs`` streamed in chunks of ``lengths``."""
    assert sum(lengths) == xs.shape[0]
    s = bpttbench.stream(name, params, B=1 if xs.ndim == 2 else xs.shape[1], **opts)
    total_loss, total = 0.0, None
    t = 0
    for length in lengths:
        loss, g = s.step(xs[t : t + length], ys[t : t + length])
        total_loss += loss
        total = g if total is None else type(g)(*map(np.add, total, g))
        t += length
    assert s.steps == xs.shape[0]
    return total_loss, total


@pytest.mark.parametrize("chunks", list(CHUNKINGS))
def test_rtrl_chunk_gradients_sum_to_bptt_of_the_whole_sequence(problem, chunks):
    p, xs, ys = problem
    loss, g = stream_in_chunks("rtrl", p, xs, ys, CHUNKINGS[chunks])
    loss_bptt, g_bptt = bpttbench.bptt(p, xs, ys)
    assert_loss_close(loss, loss_bptt, CHUNKED_RTOL, "streamed rtrl loss vs bptt")
    assert_grads_close(g, g_bptt, CHUNKED_RTOL, f"rtrl in chunks {CHUNKINGS[chunks]} vs bptt")


@pytest.mark.parametrize("chunks", list(CHUNKINGS))
@pytest.mark.parametrize(
    ("name", "alpha"),
    [(name, alpha) for name in ONE_SHOT for alpha in (1.0, 0.5) if name in LEAKY or alpha == 1],
    ids=lambda v: v if isinstance(v, str) else f"alpha={v}",
)
def test_streamed_rule_equals_its_one_shot_call(problem, monkeypatch, name, alpha, chunks):
    """Blocks of 3 steps, so that chunk ends and block ends fall apart."""
    monkeypatch.setattr(ONLINE, "STEPS_PER_BLOCK", 3)
    p, xs, ys = problem
    p = leaky(p, alpha)
    loss, g = stream_in_chunks(name, p, xs, ys, CHUNKINGS[chunks], **options(name, 4))
    loss1, g1 = ONE_SHOT[name](p, xs, ys, **options(name, 4))
    assert_loss_close(loss, loss1, CHUNKED_RTOL, f"{name} streamed loss")
    assert_grads_close(g, g1, CHUNKED_RTOL, f"{name} in chunks {CHUNKINGS[chunks]} vs one shot")


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_stream_depends_on_its_seed(problem, name):
    p, xs, ys = problem
    _, g4 = stream_in_chunks(name, p, xs, ys, [6, 6], seed=4)
    _, g5 = stream_in_chunks(name, p, xs, ys, [6, 6], seed=5)
    assert max_grad_difference(g4, g5) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("name", list(ONE_SHOT))
def test_a_stream_of_2d_chunks_is_one_sequence(problem, monkeypatch, name):
    """One sequence (B = 1) in blocks of 3 steps: the one-shot UORO pairs pass 2 of each
    block with pass 1 of the next (sharing W_hh's reads), the chunks of 7 and 5 pair
    only within themselves; the results agree to rounding."""
    monkeypatch.setattr(ONLINE, "STEPS_PER_BLOCK", 3)
    p, xs, ys = problem
    loss, g = stream_in_chunks(name, p, xs[:, 0], ys[:, 0], [7, 5], **options(name))
    loss1, g1 = ONE_SHOT[name](p, xs[:, 0], ys[:, 0], **options(name))
    assert_loss_close(loss, loss1, CHUNKED_RTOL, name)
    assert_grads_close(g, g1, CHUNKED_RTOL, f"{name}, 2-D chunks")


def leaky_losses(params_per_chunk, xs, ys, lengths, alpha):
    """Loss of each chunk of the leaky cell run through with the weights of that chunk."""
    h = np.zeros((xs.shape[1], params_per_chunk[0].W_hh.shape[0]))
    out, t = [], 0
    for p, length in zip(params_per_chunk, lengths, strict=True):
        loss = 0.0
        for s in range(t, t + length):
            h = (1 - alpha) * h + alpha * np.tanh(xs[s] @ p.W_ih.T + h @ p.W_hh.T + p.b_h)
            loss += 0.5 * np.sum((h @ p.W_out.T + p.b_out - ys[s]) ** 2)
        out.append(loss)
        t += length
    return out


@pytest.mark.parametrize("name", list(ONE_SHOT))
def test_new_weights_take_effect_from_the_next_chunk_on_the_carried_state(problem, rng, name):
    p, xs, ys = problem
    alpha = 0.5
    q = bpttbench.RNNParams(*(a + rng.normal(0.0, 0.1, a.shape) for a in p))
    q = q._replace(W_hh=np.where(p.W_hh != 0, q.W_hh, 0.0))  # SnAp-2 keeps its pattern
    s = bpttbench.stream(name, leaky(p, alpha), B=2, **options(name))
    losses = [s.step(xs[:5], ys[:5])[0]]
    s.params = leaky(q, alpha)
    assert s.params.W_hh is not p.W_hh
    losses.append(s.step(xs[5:], ys[5:])[0])
    expected = leaky_losses([p, q], xs, ys, [5, 7], alpha)
    np.testing.assert_allclose(losses, expected, rtol=1e-12)


def test_rtrl_stream_with_new_weights_is_exact_for_the_second_chunk_from_its_state(problem, rng):
    """RTRL's carried influence J is dh/dtheta through the first chunk's weights; with the
    same weights again the second chunk's gradient is BPTT's of the whole sequence
    minus that of the first chunk."""
    p, xs, ys = problem
    s = bpttbench.stream("rtrl", p, B=2)
    _, g1 = s.step(xs[:5], ys[:5])
    s.params = bpttbench.RNNParams(*(a.copy() for a in p))
    _, g2 = s.step(xs[5:], ys[5:])
    _, whole = bpttbench.bptt(p, xs, ys)
    _, first = bpttbench.bptt(p, xs[:5], ys[:5])
    rest = bpttbench.RNNParams(*(a - b for a, b in zip(whole, first, strict=True)))
    assert_grads_close(g1, first, CHUNKED_RTOL, "first chunk")
    assert_grads_close(g2, rest, 1e-10, "second chunk")


# ---------------------------------------------------------------- what a stream refuses


@pytest.fixture
def started(problem):
    p, xs, ys = problem
    s = bpttbench.stream("uoro", p, B=2, seed=1)
    s.step(xs[:3], ys[:3])
    return s, p, xs, ys


@pytest.mark.parametrize(
    ("mutate", "error", "pattern"),
    [
        (lambda xs, ys: (xs[:, :1], ys[:, :1]), ValueError, "batch"),
        (lambda xs, ys: (xs[:, 0], ys[:, 0]), ValueError, "batch"),  # 2-D: B = 1
        (lambda xs, ys: (xs[..., :2], ys), ValueError, r"\bxs\b"),
        (lambda xs, ys: (xs, ys[..., :1]), ValueError, r"\bys\b"),
        (lambda xs, ys: (xs[:0], ys[:0]), ValueError, r"\bxs\b"),
        (lambda xs, ys: (xs.astype(np.float32), ys), TypeError, r"\bxs\b"),
        (lambda xs, ys: (xs, np.where(ys > 0, np.nan, ys)), ValueError, r"\bys\b"),
        (lambda xs, ys: (np.where(xs > 0, np.inf, xs), ys), ValueError, r"\bxs\b"),
        (lambda xs, ys: (xs.tolist(), ys), TypeError, r"\bxs\b"),
        (lambda xs, ys: (xs, np.ma.masked_less(ys, 0.0)), TypeError, r"\bys\b"),
        (lambda xs, ys: (xs, ys[:-1]), ValueError, r"\bys\b"),
    ],
    ids=[
        "B-differs",
        "2d-chunk-for-B=2",
        "m-differs",
        "p-differs",
        "empty",
        "dtype",
        "nan",
        "inf-in-xs",
        "list",
        "masked",
        "T-differs",
    ],
)
def test_stream_rejects_a_chunk_that_does_not_fit(started, mutate, error, pattern):
    s, _, xs, ys = started
    with pytest.raises(error, match=pattern):
        s.step(*mutate(xs[3:], ys[3:]))
    assert s.steps == 3, "a refused chunk must not advance the stream"


# Each bad chunk above as a C-contiguous array of its own: Stream.step's fast check (shape,
# dtype, layout, finiteness) sees it, where a strided copy goes to check_sequence at once.
CONTIGUOUS_BAD = {
    "B-differs": lambda xs, ys: (xs[:, :1], ys[:, :1]),
    "B-differs-in-xs": lambda xs, ys: (xs[:, :1], ys),
    "B-differs-in-ys": lambda xs, ys: (xs, ys[:, :1]),
    "2d-chunk-for-B=2": lambda xs, ys: (xs[:, 0], ys[:, 0]),
    "m-differs": lambda xs, ys: (xs[..., :2], ys),
    "p-differs": lambda xs, ys: (xs, ys[..., :1]),
    "T-differs": lambda xs, ys: (xs, ys[:-1]),
    "empty": lambda xs, ys: (xs[:0], ys[:0]),
    "dtype-of-xs": lambda xs, ys: (xs.astype(np.float32), ys),
    "dtype-of-ys": lambda xs, ys: (xs, ys.astype(np.float32)),
    "nan-in-ys": lambda xs, ys: (xs, np.where(ys > 0, np.nan, ys)),
    "inf-in-xs": lambda xs, ys: (np.where(xs > 0, np.inf, xs), ys),
    "4-d": lambda xs, ys: (xs[..., None], ys),
}


def strided(a):
    """``a``'s values every other step of a buffer twice as long: not C-contiguous."""
    wide = np.zeros((2 * a.shape[0], *a.shape[1:]), a.dtype)
    wide[::2] = a
    return wide[::2]


@pytest.mark.parametrize("bad", list(CONTIGUOUS_BAD))
@pytest.mark.parametrize("name", [*ONE_SHOT, "tbptt"])
def test_the_fast_check_of_a_chunk_refuses_what_the_full_check_refuses(problem, name, bad):
    """A contiguous bad chunk is refused as its strided copy is, with the same error."""
    p, xs, ys = problem
    opts = {"k1": 1} if name == "tbptt" else options(name)
    s = bpttbench.stream(name, p, B=2, **opts)
    s.step(xs[:3], ys[:3])  # a good contiguous chunk: the fast check lets it through
    fast = [np.ascontiguousarray(a) for a in CONTIGUOUS_BAD[bad](xs[3:], ys[3:])]
    assert all(a.flags.c_contiguous and a.flags.aligned for a in fast)
    with pytest.raises((ValueError, TypeError)) as refused:
        s.step(*fast)
    slow = [strided(a) for a in fast]
    assert bad == "empty" or not all(a.flags.c_contiguous for a in slow)
    with pytest.raises(refused.type) as also:
        s.step(*slow)
    assert str(refused.value) == str(also.value)
    assert s.steps == 3, "a refused chunk must not advance the stream"


@pytest.mark.parametrize(
    ("mutate", "error", "pattern"),
    [
        (lambda p: p._replace(W_hh=np.zeros((4, 4))), ValueError, "W_hh"),
        (lambda p: p._replace(W_ih=np.zeros((5, 2))), ValueError, "W_ih"),
        (lambda p: p._replace(W_out=np.zeros((3, 5)), b_out=np.zeros(3)), ValueError, "W_out"),
        (lambda p: bpttbench.RNNParams(*(a.astype(np.float32) for a in p)), TypeError, "dtype"),
        (lambda p: leaky(p, 0.5), ValueError, "alpha"),
        (lambda p: p._replace(b_h=np.full(5, np.nan)), ValueError, "b_h"),
        (lambda p: tuple(p)[:4], TypeError, "params"),
    ],
    ids=["W_hh-shape", "W_ih-shape", "W_out-shape", "dtype", "alpha", "nan", "four-fields"],
)
def test_stream_rejects_weights_that_do_not_fit(started, mutate, error, pattern):
    s, p, _, _ = started
    with pytest.raises(error, match=pattern):
        s.params = mutate(p)
    assert s.params is p, "refused weights must not replace the stream's"


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("chunks", ["uneven", "single-steps"])
def test_snap2_streamed_on_a_sparse_W_hh_equals_its_one_shot_call(problem, rng, chunks, B):
    """The gathered blocks, and chunks of odd lengths: a step writes each block where the
    next step reads it (the blocks move between two places), so the stream carries which."""
    p, xs, ys = problem
    W = helpers.rnn_arrays(rng, 3, 5, 2)[1] * (rng.random((5, 5)) < 0.4)
    np.fill_diagonal(W, 1.0)
    p = leaky(p._replace(W_hh=W), 0.5)
    xs, ys = xs[:, :B], ys[:, :B]
    loss, g = stream_in_chunks("snap2", p, xs, ys, CHUNKINGS[chunks])
    loss1, g1 = bpttbench.snap2(p, xs, ys)
    assert_loss_close(loss, loss1, CHUNKED_RTOL, "snap2 streamed loss")
    assert_grads_close(g, g1, CHUNKED_RTOL, f"snap2 in chunks {CHUNKINGS[chunks]} vs one shot")


def test_snap2_stream_rejects_weights_outside_its_pattern(problem, rng):
    p, xs, ys = problem
    W = helpers.rnn_arrays(rng, 3, 5, 2)[1] * (rng.random((5, 5)) < 0.4)
    np.fill_diagonal(W, 1.0)
    p = p._replace(W_hh=W)
    s = bpttbench.stream("snap2", p, B=2)
    s.step(xs[:4], ys[:4])
    s.params = p._replace(W_hh=W * 0.5)  # inside the pattern (a subset is fine too)
    zero = np.argwhere(W == 0)[0]
    outside = W.copy()
    outside[tuple(zero)] = 0.3
    with pytest.raises(ValueError, match="pattern"):
        s.params = p._replace(W_hh=outside)


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "pattern"),
    [
        ("bptt", {}, ValueError, "online"),
        ("nonsense", {}, ValueError, "online"),
        ("tbptt", {}, TypeError, "k1"),
        ("snap1", {"seed": 0}, TypeError, "seed"),
        ("uoro", {"seed": -1}, ValueError, "seed"),
        ("uoro", {"sead": 0}, TypeError, "sead"),
        ("uoro", {"B": 0}, ValueError, r"\bB\b"),
        ("uoro", {"B": 2.0}, TypeError, r"\bB\b"),
    ],
    ids=["bptt", "unknown", "tbptt", "seed-for-snap1", "bad-seed", "unknown-option", "B=0",
         "B-float"],
)  # fmt: skip
def test_stream_refuses_what_it_cannot_run(problem, name, kwargs, error, pattern):
    p, _, _ = problem
    with pytest.raises(error, match=pattern):
        bpttbench.stream(name, p, **kwargs)


@pytest.mark.parametrize("chunks", list(CHUNKINGS))
def test_leaky_rtrl_chunk_gradients_sum_to_bptt_of_the_leaky_cell(problem, chunks):
    p, xs, ys = problem
    p = leaky(p, 0.5)
    loss, g = stream_in_chunks("rtrl", p, xs, ys, CHUNKINGS[chunks])
    loss_bptt, g_bptt = bpttbench.bptt(p, xs, ys)
    assert_loss_close(loss, loss_bptt, CHUNKED_RTOL, "streamed leaky rtrl loss vs bptt")
    assert_grads_close(g, g_bptt, CHUNKED_RTOL, f"leaky rtrl in chunks {CHUNKINGS[chunks]}")


# --- truncated BPTT as a stream ---------------------------------------------------------

TBPTT_CHUNKINGS = {  # (k1, k2): chunk lengths, each a multiple of k1, over T = 12
    (1, 1): [3, 1, 8],
    (2, 5): [2, 4, 6],
    (3, 3): [3, 9],
    (3, 7): [6, 3, 3],
    (4, 12): [4, 4, 4],
    (2, 20): [12],
}


@pytest.mark.parametrize(("k", "lengths"), list(TBPTT_CHUNKINGS.items()), ids=str)
def test_tbptt_stream_in_chunks_equals_the_one_shot_tbptt(problem, k, lengths):
    p, xs, ys = problem
    k1, k2 = k
    loss, g = stream_in_chunks("tbptt", p, xs, ys, lengths, k1=k1, k2=k2)
    want_loss, want = bpttbench.tbptt(p, xs, ys, k1, k2)
    assert_loss_close(loss, want_loss, rtol=CHUNKED_RTOL)
    assert_grads_close(g, want, rtol=CHUNKED_RTOL)


def test_tbptt_stream_over_whole_chunks_is_bptt_within_each_chunk(problem):
    """k1 = k2 = chunk length: exact BPTT inside each chunk, from the carried state."""
    p, xs, ys = problem
    s = bpttbench.stream("tbptt", p, B=2, k1=4)
    loss, g = s.step(xs[:4], ys[:4])
    want_loss, want = bpttbench.bptt(p, xs[:4], ys[:4])
    assert_loss_close(loss, want_loss, rtol=CHUNKED_RTOL)
    assert_grads_close(g, want, rtol=CHUNKED_RTOL)


def test_tbptt_stream_refuses_a_chunk_that_is_not_a_multiple_of_k1(problem):
    p, xs, ys = problem
    s = bpttbench.stream("tbptt", p, B=2, k1=4, k2=6)
    with pytest.raises(ValueError, match="multiple of k1 = 4"):
        s.step(xs[:6], ys[:6])
    with pytest.raises(ValueError, match="k2 must be >= k1"):
        bpttbench.stream("tbptt", p, B=2, k1=4, k2=2)


@pytest.mark.parametrize(("k", "lengths"), [((2, 5), [2, 4, 6]), ((3, 7), [6, 3, 3])], ids=str)
def test_leaky_tbptt_stream_in_chunks_equals_the_one_shot_tbptt(problem, k, lengths):
    p, xs, ys = problem
    p = leaky(p, 0.5)
    k1, k2 = k
    loss, g = stream_in_chunks("tbptt", p, xs, ys, lengths, k1=k1, k2=k2)
    want_loss, want = bpttbench.tbptt(p, xs, ys, k1, k2)
    assert_loss_close(loss, want_loss, rtol=CHUNKED_RTOL)
    assert_grads_close(g, want, rtol=CHUNKED_RTOL)


@pytest.mark.parametrize("name", ["rtrl", "uoro"])
def test_online_streams_refuse_the_gated_cells(name):
    gru = bpttbench.init_gru(3, 4, 2)
    with pytest.raises(NotImplementedError, match=r"Elman cell only.*tbptt"):
        bpttbench.stream(name, gru, B=2, **options(name))


@pytest.mark.parametrize("init", [bpttbench.init_gru, bpttbench.init_lstm], ids=["gru", "lstm"])
@pytest.mark.parametrize(("k", "lengths"), [((2, 5), [2, 4, 6]), ((3, 3), [6, 3, 3])], ids=str)
def test_gated_tbptt_stream_in_chunks_equals_the_one_shot_tbptt(rng, init, k, lengths):
    # The carried window must hold the LSTM's c beside h (the cell's stored values).
    p = init(3, 4, 2, seed=1)
    xs, ys = helpers.sequence(rng, T, 2, 3, 2)
    k1, k2 = k
    loss, g = stream_in_chunks("tbptt", p, xs, ys, lengths, k1=k1, k2=k2)
    want_loss, want = bpttbench.tbptt(p, xs, ys, k1, k2)
    assert type(g) is type(p)
    assert_loss_close(loss, want_loss, rtol=CHUNKED_RTOL)
    assert_grads_close(g, want, rtol=CHUNKED_RTOL)


def test_a_gated_stream_keeps_its_cell(rng):
    s = bpttbench.stream("tbptt", bpttbench.init_gru(3, 4, 2), B=2, k1=2)
    with pytest.raises(TypeError, match="stream runs GRUParams"):
        s.params = bpttbench.init_lstm(3, 4, 2)
    with pytest.raises(ValueError, match="weight_ih has shape"):
        s.params = bpttbench.init_gru(3, 5, 2)


@pytest.mark.parametrize("name", ["uoro", "snap1", "rflo", "rtrl"])
def test_a_strided_chunk_gives_what_its_contiguous_copy_gives(problem, name):
    """A chunk that is not C-contiguous (or is 2-D) skips the fast check and is copied."""
    p, xs, ys = problem
    wide = np.repeat(xs, 2, axis=2)[:, :, ::2]  # the values of xs, strided
    assert not wide.flags.c_contiguous and np.array_equal(wide, xs)
    a = bpttbench.stream(name, p, B=2, **options(name))
    b = bpttbench.stream(name, p, B=2, **options(name))
    for t in (0, 5):
        loss_a, g_a = a.step(wide[t : t + 5], ys[t : t + 5])
        loss_b, g_b = b.step(np.ascontiguousarray(xs[t : t + 5]), ys[t : t + 5])
        assert loss_a == loss_b
        for u, v in zip(g_a, g_b, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("name", ["uoro", "snap1", "rflo"])
def test_each_chunk_returns_gradients_the_caller_owns(problem, name):
    """The blocked kernels return the arrays they folded into: fresh ones every chunk,
    shared with nothing the stream keeps (a later chunk must not overwrite them)."""
    p, xs, ys = problem
    s = bpttbench.stream(name, p, B=2, **options(name))
    _, first = s.step(xs[:6], ys[:6])
    kept = [a.copy() for a in first]
    _, second = s.step(xs[6:], ys[6:])
    for a, b, k in zip(first, second, kept, strict=True):
        np.testing.assert_array_equal(a, k)
        assert not np.shares_memory(a, b)
        assert a.flags.c_contiguous
    state = [v for v in vars(s.state).values() if isinstance(v, np.ndarray)]
    assert not any(np.shares_memory(a, v) for a in second for v in state)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345, 2**40 + 7])
def test_the_kernels_pcg64_draws_what_numpys_generator_draws(seed):
    """The stochastic rules draw in their kernels from four uint64 words (no Generator to
    unbox per call): the same outputs as numpy's PCG64(seed).random_raw(), bit for bit."""
    words = ONLINE.pcg_words(seed)
    ours = np.array([ONLINE.pcg_next(words) for _ in range(3000)], np.uint64)
    np.testing.assert_array_equal(ours, np.random.PCG64(seed).random_raw(3000))


@pytest.mark.parametrize("k", [1, 2, 63, 64, 65, 200])
def test_the_kernels_signs_are_the_protocols_bits(k):
    """draw_signs: k signs from ceil(k / 64) raw outputs, bit i mod 64 of output i // 64,
    least significant first, set -> +1; a second call starts on a fresh output."""
    words = ONLINE.pcg_words(3)
    ours = np.empty((2, k))
    for row in ours:
        ONLINE.draw_signs(words, row)
    raw = np.random.PCG64(3).random_raw(2 * -(-k // 64)).reshape(2, -1)
    np.testing.assert_array_equal(ours, naive_online.bits_to_signs(raw, k))
