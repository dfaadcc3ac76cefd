"""The online rules' performance targets, read off a stored measurement (not typed in).

Two targets of the online rules (THEORY.md, "Online approximations"; the issue
that added them):

- UORO and SnAp-1 cost at most ``FORWARD_TARGET`` (3) times one forward step of
  the cell per step (B = 1, float64, one thread), judged on the steady state (a
  call timed right after the same call); the first call after the other rules
  ("cold") is shown beside it;
- streaming (``bpttbench.stream``, chunks of 32 steps or more) adds at most
  ``STREAM_TARGET`` (5%) to the one-shot call over the same steps.

``python -m bpttbench.bench.online_efficiency --targets --json FILE`` measures
both (interleaved rounds, CPU-clock medians) and stores them in ``FILE``; the
report reads :data:`FILE_NAME` beside the results store (``reports/reference/``)
and draws this section from it. Without the file the section says how to make it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import bpttbench
from bpttbench.bench.view import NoSource
from matplotlib.figure import Figure

NAME = "online_targets"
TITLE = "Online rules: cost against one forward step, and streaming overhead"
FILE_NAME = "online_targets.json"
FORWARD_TARGET = 3.0  # x one forward step of the cell, per step
FORWARD_RULES = ("uoro", "snap1")  # the rules the forward-step target names
STREAM_TARGET = 0.05  # streamed over one-shot, less 1
STREAM_MIN_CHUNK = 32
HOW = "python -m bpttbench.bench.online_efficiency --targets --json {path}"


def targets_path(db_path) -> Path:
    """Where the stored figures sit: beside the results store."""
    return Path(db_path).resolve().parent / FILE_NAME


def load(db_path) -> dict:
    """The stored figures, or NoSource saying how to measure them."""
    path = targets_path(db_path)
    if not path.is_file():
        where = f"<the store's folder>/{FILE_NAME}"
        raise NoSource(f"no {FILE_NAME} beside the store: run `{HOW.format(path=where)}`")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NoSource(f"{path.name} could not be read: {exc}") from None


def _title(name: str) -> str:
    spec = bpttbench.ALGORITHMS.get(name)
    return spec.title if spec is not None else name


def _mark(ok: bool) -> str:
    return "meets" if ok else "**misses**"


def forward_rows(data: Mapping) -> list[dict]:
    """One row per (n, rule): seconds per step, the ratio to the forward step, the verdict."""
    rows = []
    for n, figures in sorted(data.get("per_step", {}).items(), key=lambda kv: int(kv[0])):
        for rule, f in figures.get("rules", {}).items():
            target = rule in FORWARD_RULES
            rows.append(
                {
                    "n": int(n),
                    "rule": rule,
                    "s_per_step": float(f["s_per_step"]),
                    "forward_s_per_step": float(figures["forward_s_per_step"]),
                    "x_forward": float(f["x_forward"]),
                    "cold_x_forward": f.get("cold_x_forward"),  # absent in older files
                    "target": target,
                    "ok": (float(f["x_forward"]) <= FORWARD_TARGET) if target else None,
                }
            )
    return rows


def stream_rows(data: Mapping) -> list[dict]:
    """One row per (n, rule): the streamed excess per chunk and whether chunks >= 32 meet 5%."""
    rows = []
    for n, rules in sorted(data.get("stream", {}).items(), key=lambda kv: int(kv[0])):
        for rule, excess in rules.items():
            by_chunk = {int(c): float(x) for c, x in excess.items()}
            judged = [x for c, x in by_chunk.items() if c >= STREAM_MIN_CHUNK]
            rows.append(
                {
                    "n": int(n),
                    "rule": rule,
                    "excess": dict(sorted(by_chunk.items())),
                    "ok": all(x <= STREAM_TARGET for x in judged) if judged else None,
                }
            )
    return rows


def table(data: Mapping) -> str:
    """Both targets as Markdown tables, with each figure from the stored file."""
    parts = []
    fwd = forward_rows(data)
    if fwd:
        lines = [
            f"| rule | n | time per step | x one forward step | x, first call (cold) | "
            f"target <= {FORWARD_TARGET:g}x |",
            "|---|---|---|---|---|---|",
        ]
        for r in fwd:
            verdict = _mark(r["ok"]) if r["target"] else "-"
            cold = "-" if r["cold_x_forward"] is None else f"{r['cold_x_forward']:.2f}"
            lines.append(
                f"| {_title(r['rule'])} | {r['n']} | {r['s_per_step'] * 1e6:.2f} us | "
                f"{r['x_forward']:.2f} | {cold} | {verdict} |"
            )
        parts.append("\n".join(lines))
    st = stream_rows(data)
    if st:
        chunks = sorted({c for r in st for c in r["excess"]})
        head = " | ".join(f"chunks of {c}" for c in chunks)
        lines = [
            f"| rule | n | {head} | target <= {STREAM_TARGET:.0%} (chunks >= {STREAM_MIN_CHUNK}) |",
            "|---|---|" + "---|" * len(chunks) + "---|",
        ]
        for r in st:
            cells = " | ".join(
                f"{100 * r['excess'][c]:+.1f}%" if c in r["excess"] else "-" for c in chunks
            )
            verdict = "-" if r["ok"] is None else _mark(r["ok"])
            lines.append(f"| {_title(r['rule'])} | {r['n']} | {cells} | {verdict} |")
        parts.append("\n".join(lines))
    if not parts:
        raise NoSource(f"{FILE_NAME} holds neither per-step nor streaming figures")
    return "\n\n".join(parts)


def figure(data: Mapping, footer: str = ""):
    """Two panels: each rule's time per step over the forward step, and the streamed excess."""
    fwd, st = forward_rows(data), stream_rows(data)
    fig = Figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    ns = sorted({r["n"] for r in fwd})
    rules = list(dict.fromkeys(r["rule"] for r in fwd))
    width = 0.8 / max(1, len(ns))
    for i, n in enumerate(ns):
        vals = {r["rule"]: r["x_forward"] for r in fwd if r["n"] == n}
        xs = [k + i * width for k in range(len(rules))]
        ax1.bar(xs, [vals.get(rule, 0.0) for rule in rules], width, label=f"n = {n}")
    ax1.axhline(FORWARD_TARGET, color="0.3", linestyle=":", linewidth=1.0)
    ax1.set_xticks([k + width * (len(ns) - 1) / 2 for k in range(len(rules))])
    ax1.set_xticklabels([_title(r) for r in rules], rotation=30, ha="right")
    ax1.set_yscale("log")
    ax1.set_ylabel("time per step / one forward step")
    ax1.set_title(f"per step (dotted: {FORWARD_TARGET:g}x)")
    if ns:
        ax1.legend(fontsize=8)
    labels = [f"{_title(r['rule'])}, n = {r['n']}" for r in st]
    chunks = sorted({c for r in st for c in r["excess"]})
    width = 0.8 / max(1, len(chunks))
    for i, c in enumerate(chunks):
        xs = [k + i * width for k in range(len(st))]
        ax2.bar(xs, [100 * r["excess"].get(c, 0.0) for r in st], width, label=f"chunks of {c}")
    ax2.axhline(100 * STREAM_TARGET, color="0.3", linestyle=":", linewidth=1.0)
    ax2.axhline(0.0, color="0.6", linewidth=0.8)
    ax2.set_xticks([k + width * (len(chunks) - 1) / 2 for k in range(len(st))])
    ax2.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("streamed time over one-shot - 1 (%)")
    ax2.set_title(f"streaming (dotted: +{STREAM_TARGET:.0%})")
    if chunks:
        ax2.legend(fontsize=8)
    fig.suptitle(TITLE)
    if footer:
        fig.text(0.01, 0.005, footer, fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def caption(data: Mapping) -> str:
    fwd, st = forward_rows(data), stream_rows(data)
    judged = [r for r in fwd if r["target"]]
    met_f = sum(bool(r["ok"]) for r in judged)
    met_s = sum(bool(r["ok"]) for r in st if r["ok"] is not None)
    n_s = sum(r["ok"] is not None for r in st)
    return (
        f"From {FILE_NAME} (`{HOW.format(path=FILE_NAME)}`; B = {data.get('B', 1)}, "
        f"{data.get('dtype', 'float64')}, one thread, T = {data.get('T')}, medians of "
        f"{data.get('rounds')} interleaved rounds on the {data.get('clock', 'cpu')} clock, "
        f"machine {data.get('machine', '?')}). Targets: UORO and SnAp-1 within "
        f"{FORWARD_TARGET:g}x of one forward step of the cell, met {met_f} of {len(judged)}; "
        f"streaming in chunks of {STREAM_MIN_CHUNK} steps or more at most "
        f"{STREAM_TARGET:.0%} over the one-shot call, met {met_s} of {n_s}. UORO's one-shot "
        "call pairs each block's second pass with the next block's first (one read of W_hh "
        "for two products), which a stream does only within a chunk."
    )


def chart(ctx, db_path):
    """The report's builder: (figure, caption, markdown) from the stored file."""
    data = load(db_path)
    md = table(data)
    footer = ctx.store.footer if ctx.store is not None else ""
    return figure(data, footer), caption(data), md
