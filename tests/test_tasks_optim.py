"""Tasks (kernels/tasks.py) against their stated baselines; optimizers against a
hand-worked step and PyTorch's."""

from __future__ import annotations

import bpttbench
import numpy as np
import pytest
from bpttbench import optim, tasks
from helpers import reference

# --- tasks -----------------------------------------------------------------------------


def test_delayed_add_baselines_hold_on_generated_data():
    t = tasks.delayed_add(T=20000, B=8, t1=5, t2=9, seed=3)
    x, y, s = t.xs[:, :, 0], t.ys[:, :, 0], t.scored
    assert s.sum() == 20000 - 9
    # The best predictors knowing nothing, or x_{t-t1} only: E[y] = 5/8, and
    # E[y | x_{t-t1}] = 3/8 + x_{t-t1} / 2 (predicting 1/2 would add (1/8)^2).
    nothing = np.mean((y[s] - 0.625) ** 2)
    t1_only = np.mean((y[s] - (0.375 + 0.5 * x[:-5][s[5:]])) ** 2)
    both = np.mean((y[s] - (0.5 + 0.5 * x[:-5][s[5:]] - 0.25 * x[:-9])) ** 2)
    # Sampling error of a mean of 160k squared errors: about 3e-4 relative to 0.078.
    assert nothing == pytest.approx(t.baselines["nothing"], rel=0.02)
    assert t1_only == pytest.approx(t.baselines["t1 only"], rel=0.02)
    assert both == 0.0


def test_adding_baseline_and_markers():
    t = tasks.adding(T=20 * 4000, B=4, length=20, seed=1)
    values, marks = t.xs[..., 0], t.xs[..., 1]
    episodes = values.reshape(4000, 20, 4), marks.reshape(4000, 20, 4)
    assert np.all(episodes[1][:, :10].sum(axis=1) == 1) and np.all(episodes[1][:, 10:].sum(1) == 1)
    last = t.ys[t.scored, :, 0]
    assert np.mean((last - 1.0) ** 2) == pytest.approx(t.baselines["nothing"], rel=0.03)
    assert np.allclose(last, (episodes[0] * episodes[1]).sum(axis=1))
    assert np.all(t.ys[~t.scored] == 1.0)


def test_copy_task_layout_baseline_and_accuracy():
    t = tasks.copy_task(T=1000, B=3, length=4, delay=6, symbols=5, seed=2)
    episode = 2 * 4 + 6 + 1
    assert t.xs.shape == (1000 // episode * episode, 3, 7) and t.lags == (11,)
    # The recall targets are the symbols shown one lag earlier.
    recall = np.flatnonzero(t.scored)
    assert np.array_equal(t.ys[recall], t.xs[recall - 11])
    uniform = np.where(np.arange(7) < 5, 1 / 5, 0.0)
    yhat = np.where(t.scored[:, None, None], uniform, t.ys)
    assert tasks.scored_mse(t, yhat) == pytest.approx(t.baselines["nothing"], rel=1e-12)
    assert tasks.copy_accuracy(t, t.ys) == 1.0


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (tasks.delayed_add, {"T": 10, "t1": 5, "t2": 5}, "t2 must be > t1"),
        (tasks.delayed_add, {"T": 0}, "T must be >= 1"),
        (tasks.adding, {"T": 10, "length": 20}, "shorter than one episode"),
        (tasks.copy_task, {"T": 100, "symbols": 1}, "symbols must be >= 2"),
        (tasks.copy_task, {"T": 100, "delay": -1}, "delay must be"),
    ],
    ids=["lags", "T", "adding-short", "copy-symbols", "copy-delay"],
)
def test_tasks_reject_bad_knobs(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


# --- optimizers ------------------------------------------------------------------------


def _problem(rng):
    p = bpttbench.init_rnn(2, 3, 1, seed=4)
    g = bpttbench.RNNParams(*(rng.normal(size=a.shape) for a in p))
    return p, g


def test_adam_first_step_by_hand(rng):
    p, g = _problem(rng)
    new = optim.Adam(lr=0.1).step(p, g)
    # Step 1: m_hat = g, v_hat = g^2, so p - lr g / (|g| + eps).
    for a, b, d in zip(new, p, g, strict=True):
        np.testing.assert_allclose(a, b - 0.1 * d / (np.abs(d) + 1e-8), rtol=1e-13)


def test_sgd_momentum_by_hand(rng):
    p, g = _problem(rng)
    opt = optim.SGD(lr=0.5, momentum=0.9)
    p1 = opt.step(p, g)
    p2 = opt.step(p1, g)
    for a, b, d in zip(p2, p, g, strict=True):  # v1 = g, v2 = 1.9 g
        np.testing.assert_allclose(a, b - 0.5 * d - 0.5 * 1.9 * d, rtol=1e-13)


def test_clipping_scales_the_whole_gradient(rng):
    _, g = _problem(rng)
    norm = np.sqrt(sum(np.sum(a * a) for a in g))
    clipped, before = optim.clip_grad_norm(g, norm / 4)
    assert before == pytest.approx(norm)
    assert np.sqrt(sum(np.sum(a * a) for a in clipped)) == pytest.approx(norm / 4, rel=1e-5)
    same, _ = optim.clip_grad_norm(g, norm * 2)
    assert same is g


@pytest.mark.parametrize("clip", [None, 0.5], ids=["no-clip", "clip=0.5"])
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_optimizers_match_pytorch(rng, kind, clip):
    torch = reference("torch")
    p, _ = _problem(rng)
    steps = [bpttbench.RNNParams(*(rng.normal(size=a.shape) for a in p)) for _ in range(5)]
    tensors = [torch.tensor(a, requires_grad=True) for a in p]
    if kind == "adam":
        ours, theirs = optim.Adam(lr=0.05, clip=clip), torch.optim.Adam(tensors, lr=0.05)
    else:
        ours = optim.SGD(lr=0.05, momentum=0.9, clip=clip)
        theirs = torch.optim.SGD(tensors, lr=0.05, momentum=0.9)
    for g in steps:
        p = ours.step(p, g)
        for t, a in zip(tensors, g, strict=True):
            t.grad = torch.tensor(a)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(tensors, clip)
        theirs.step()
    for a, t in zip(p, tensors, strict=True):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_optimizer_rejects_bad_settings_and_mismatched_grads(rng):
    p, g = _problem(rng)
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ValueError, match="lr"):
            optim.Adam(lr=bad)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(betas=(1.0, 0.9))
    with pytest.raises(ValueError, match=r"grads\.W_hh"):
        optim.SGD().step(p, g._replace(W_hh=np.zeros((2, 2))))
    with pytest.raises(TypeError, match="parameters' type"):
        optim.SGD().step(p, tuple(g))
