"""The report's Quality section, from the store's ``quality`` table (``bpttbench quality``).

Four charts, each a builder returning ``(figure, caption, markdown)`` or raising
:class:`~bpttbench.bench.view.Skip` (an empty state when the store has no
quality rows):

- the cost-quality frontier: final loss relative to the task's 'nothing'
  baseline against time per step, and against peak memory, one marker per
  (algorithm, setting) (mean over seeds), the Pareto front drawn;
- final loss against the truncation length k at the fixed lag, with the
  task's baselines as horizontal lines and the exact algorithms for reference;
- gradient fidelity: cosine against the spectral radius per algorithm, and the
  table, with sketched-rtrl's published Table 3 cosines beside ours where the
  task matches (labelled as theirs);
- vanishing and exploding gradients: norm(dL_T/dh_t) against the lag per
  spectral radius, the fitted per-step rate against the linearised prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import BenchError, fmt
from bpttbench.bench import charts as ch
from bpttbench.bench.markdown import Chart
from bpttbench.bench.quality.runner import load_rows
from bpttbench.bench.view import Skip
from matplotlib.lines import Line2D

SECTION = "Quality"
NAMES = ("quality_frontier", "quality_truncation", "quality_fidelity", "quality_vanishing")
EMPTY = "the store has no quality rows (run `bpttbench quality`)"
# sketched-rtrl (THEORY.md, "Online approximations"), Table 3: mean cosine to the exact
# RTRL gradient over the last 20% of 20k online steps, n = 64, 5 seeds. Their RFLO is a
# fixed-decay heuristic, not Murray's rule.
PUBLISHED = {
    "copy": {"snap1": 0.70, "kf_rtrl": 0.50, "rflo": 0.34, "uoro": 0.04},
    "adding": {"snap1": 0.61, "kf_rtrl": 0.50, "rflo": 0.58, "uoro": 0.11},
}


def plan(db_path) -> list:
    """(Chart, builder) pairs of the section, in report order."""
    rows = _Rows(db_path)
    titles = (
        "Cost against quality: the frontier",
        "Final loss against the truncation length",
        "Gradient fidelity against the exact gradient",
        "Vanishing and exploding gradients",
    )
    builders = (rows.frontier, rows.truncation, rows.fidelity, rows.vanishing)
    return [
        (Chart(name, title, SECTION), build)
        for name, title, build in zip(NAMES, titles, builders, strict=True)
    ]


class _Rows:
    """The quality rows, read once on first use."""

    def __init__(self, db_path):
        self.db_path = db_path
        self._df: pd.DataFrame | None = None

    def kind(self, kind: str) -> pd.DataFrame:
        if self._df is None:
            try:
                exists = Path(self.db_path).exists()
                self._df = pd.DataFrame(load_rows(self.db_path) if exists else [])
            except BenchError:
                self._df = pd.DataFrame()
        if self._df.empty:
            raise Skip(EMPTY)
        df = self._df[self._df["kind"] == kind].copy()
        if df.empty:
            raise Skip(f"the store has no {kind} rows in its quality table")
        # A gated cell's rows are named by it: "gru tbptt k=6" beside Elman's "tbptt k=6".
        cell = df["cell"].fillna("elman") if "cell" in df else pd.Series("elman", df.index)
        df["cell"] = cell
        df["label"] = [
            lab if c == "elman" else f"{c} {lab}" for c, lab in zip(cell, df["label"], strict=True)
        ]
        df["lagstr"] = [",".join(map(str, v)) for v in df["lags"]]
        return df

    def frontier(self):
        df = self.kind("learning")
        ok = df[~df["diverged"].astype(bool)].copy()
        if ok.empty:
            raise Skip("every learning run diverged")
        ok["rel"] = [r["final_loss"] / r["baselines"]["nothing"] for _, r in ok.iterrows()]
        ok, times_note = one_machine_times(ok)
        g = ok.groupby(["task", "label"], sort=False).agg(
            rel=("rel", "mean"), tps=("time_per_step_s", "mean"), mem=("peak_bytes", "mean"),
            seeds=("seed", "nunique"),
        ).reset_index()  # fmt: skip
        # One colour per setting, one marker per task: the legends stay as long as the
        # settings list (a full run has ~25), not settings x tasks.
        labels = list(dict.fromkeys(g["label"]))
        tasks = list(dict.fromkeys(g["task"]))
        height = max(4.4, 0.13 * (len(labels) + len(tasks)) + 1.0)
        fig, axes = ch.new_figure(11, height, _footer(ok), ncols=2)
        markers = "osD^v<>Px*"
        for ax, col, label in ((axes[0, 0], "tps", "time per step (s)"),
                               (axes[0, 1], "mem", "peak memory of a step (bytes)")):  # fmt: skip
            for _, r in g.iterrows():
                colour = ch.default_style(labels.index(r["label"])).colour
                marker = markers[tasks.index(r["task"]) % len(markers)]
                ax.plot(r[col], r["rel"], marker, color=colour, ms=6)
            for _task, t in g.groupby("task"):
                t = t[np.isfinite(t[col].to_numpy(dtype=float))]  # no time off its machine
                front = pareto(t[col].to_numpy(), t["rel"].to_numpy())
                pts = t.iloc[front].sort_values(col)
                ax.step(pts[col], pts["rel"], where="post", color="0.3", lw=1, ls="--")
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("final loss / 'nothing' baseline")
            ax.axhline(1.0, color="0.6", lw=0.8)
        handles = [
            Line2D([], [], color=ch.default_style(i).colour, marker="o", ls="", label=lab)
            for i, lab in enumerate(labels)
        ] + [
            Line2D([], [], color="0.3", marker=markers[i % len(markers)], ls="", label=t)
            for i, t in enumerate(tasks)
        ]
        axes[0, 1].legend(handles=handles, fontsize=6, loc="center left",
                          bbox_to_anchor=(1.0, 0.5))  # fmt: skip
        caption = (
            "Final scored MSE over the last 20% of online steps, relative to predicting the "
            "mean (1 = nothing learned), against the cost of a step; mean over seeds; dashed: "
            "the Pareto front (no setting is both cheaper and better)." + times_note
        )
        return fig, caption, _learning_table(ok)

    def truncation(self):
        df = self.kind("learning")
        df = df[~df["diverged"].astype(bool)]
        tb = df[df["algorithm"].eq("tbptt") & df["label"].str.contains("tbptt k=")]
        if tb.empty:
            raise Skip("no truncated-BPTT learning rows")
        task = tb["task"].iloc[0]
        tb, df = tb[tb["task"] == task], df[df["task"] == task]
        fig, axes = ch.new_figure(6.5, 4.2, _footer(df))
        ax = axes[0, 0]
        # One line per (lags, cell, optimizer): the acceptance lags and any other pair.
        groups = tb.groupby(["lagstr", "cell", "optimizer"], sort=False)
        for i, ((lagstr, cell, opt), g) in enumerate(groups):
            colour = f"C{i}"
            name = f"lags {lagstr}, {cell}, {opt}"
            ax.plot(g["k2"], g["final_loss"], "o", color=colour, alpha=0.35, ms=4)
            mean = g.groupby("k2")["final_loss"].mean()
            ax.plot(mean.index, mean.values, "-", color=colour, label=f"tbptt, {name} (mean)")
            same = df[(df["lagstr"] == lagstr) & (df["cell"] == cell) & (df["optimizer"] == opt)]
            for exact, ls in (("rtrl", ":"), ("bptt-chunk 16", "-.")):
                v = same.loc[same["algorithm"].eq(exact) | same["label"].str.endswith(exact),
                             "final_loss"]  # fmt: skip
                if len(v):
                    ax.axhline(v.mean(), color=colour, ls=ls, lw=0.9, label=f"{exact}, {name}")
            for lag in g["lags"].iloc[0]:
                ax.axvline(lag, color=colour, lw=0.6, alpha=0.4)
        for bname, value in df["baselines"].iloc[0].items():
            ax.axhline(value, color="0.5", lw=0.8, ls="--")
            ax.text(ax.get_xlim()[0], value, f" {bname}", fontsize=7, va="bottom", color="0.4")
        ax.set_xlabel("truncation length k (k2)")
        ax.set_ylabel("final scored MSE")
        ax.legend(fontsize=6)
        caption = (
            f"{task}: final loss against k, mean over seeds (dots: each seed); faint verticals: "
            "the lags t1, t2 of each line; dashed: the task's baselines. A window of k steps "
            "sees lags below k: below t1 nothing is learned; between t1 and t2 the second lag "
            "is learned only as far as the memory built for the first one carries it "
            "(THEORY.md, 'Truncation and the lag')."
        )
        return fig, caption, _truncation_table(tb)

    def fidelity(self):
        df = self.kind("fidelity")
        fig, axes = ch.new_figure(6.5, 4.2, _footer(df))
        ax = axes[0, 0]
        for i, (label, g) in enumerate(df.groupby("label", sort=False)):
            m = g.groupby("rho")["cosine"].mean()
            style = ch.default_style(i)
            ax.plot(m.index, m.values, "-" + style.marker, color=style.colour, label=label)
        ax.set_xlabel("spectral radius of W_hh")
        ax.set_ylabel("cosine to the exact gradient")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        caption = (
            "Cosine of each algorithm's gradient to BPTT's on the same weights and window "
            "(mean over n and lags); the table has the relative error, norm ratio and, for "
            "the stochastic rules, the bias (mean over seeds) apart from the spread."
        )
        learning = self._df[self._df["kind"] == "learning"]
        return fig, caption, fidelity_table(df, learning)

    def vanishing(self):
        df = self.kind("vanishing")
        cellnames = [c for c in ("elman", "gru", "lstm") if c in set(df["cell"])]
        fig, axes = ch.new_figure(4.0 * len(cellnames), 4.0, _footer(df), ncols=len(cellnames))
        lines = [
            "| cell | rho | fitted rate per step | linearised: carry + gain x rho |",
            "|---|---|---|---|",
        ]
        for j, cell in enumerate(cellnames):
            ax = axes[0, j]
            for i, (_, r) in enumerate(df[df["cell"] == cell].sort_values("rho").iterrows()):
                curve = np.asarray(r["curve"], float)
                ax.semilogy(
                    np.arange(len(curve)), curve, color=f"C{i}", label=f"rho = {r['rho']:g}"
                )
                lines.append(
                    f"| {cell} | {r['rho']:g} | {fmt.cell(r['fitted_rate'])} | "
                    f"{fmt.cell(r['predicted_rate'])} |"
                )
            ax.set_title(cell, fontsize=9)
            ax.set_xlabel("lag T - t")
            ax.set_ylabel("norm(dL_T / ds_t)" if j == 0 else "")
            ax.legend(fontsize=6)
        caption = (
            "Norm of the gradient of the last step's loss with respect to earlier states (the "
            "LSTM's state is the pair (h, c)), per cell, the recurrent weights rescaled to each "
            "spectral radius (Elman: W_hh; GRU, LSTM: each gate's block of weight_hh); the table "
            "compares the fitted per-step rate with the linearised prediction carry + gain x rho "
            "(Elman: rho x mean tanh'; GRU: carry mean z; LSTM: carry mean f)."
        )
        return fig, caption, "\n".join(lines)


def pareto(cost: np.ndarray, loss: np.ndarray) -> list[int]:
    """Indices of the points no other point beats in both cost and loss."""
    out = []
    for i in range(len(cost)):
        dominated = any(
            cost[j] <= cost[i] and loss[j] <= loss[i] and (cost[j] < cost[i] or loss[j] < loss[i])
            for j in range(len(cost))
        )
        if not dominated:
            out.append(i)
    return out


def one_machine_times(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``df`` with the times per step of one machine only, and a sentence saying so.

    Rows run on several machines (a quality run on a cluster) agree in their losses
    and cosines but not in their times: times are kept from the machine with the most
    rows (by name on a tie) and blanked on the others, never averaged across them.
    """
    if "machine" not in df.columns or df["machine"].astype(str).nunique() <= 1:
        return df, ""
    counts = df["machine"].astype(str).value_counts()
    keep = min(counts.index, key=lambda m: (-counts[m], m))
    out = df.copy()
    others = out["machine"].astype(str) != keep
    out.loc[others, "time_per_step_s"] = np.nan
    names = ", ".join(sorted(counts.index.drop(keep)))
    note = (
        f" Rows from {counts.size} machines: times per step are those measured on {keep} "
        f"only; the {int(others.sum())} rows run on {names} count for loss and memory."
    )
    return out, note


def _learning_table(df: pd.DataFrame) -> str:
    lines = [
        "| task | setting | seeds | final MSE (mean) | baselines | cosine | time/step | peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, label), g in df.groupby(["task", "label"], sort=False):
        base = ", ".join(f"{k} {v:.4g}" for k, v in g["baselines"].iloc[0].items())
        lines.append(
            f"| {task} | {label} | {g['seed'].nunique()} | {g['final_loss'].mean():.4f} | "
            f"{base} | {fmt.cell(g['cosine'].mean())} | "
            f"{fmt.seconds(g['time_per_step_s'].mean())} | {fmt.cell(g['peak_bytes'].mean())} B |"
        )
    return "\n".join(lines)


def fidelity_table(df: pd.DataFrame, learning: pd.DataFrame) -> str:
    lines = [
        "| algorithm | n | rho | lags | cosine | rel. error | norm ratio | bias cosine | "
        "bias rel. error | spread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.sort_values(["label", "n", "rho"]).iterrows():
        lines.append(
            f"| {r['label']} | {r['n']} | {r['rho']:g} | {r['lags']} | {fmt.cell(r['cosine'])} | "
            f"{fmt.cell(r['rel_err'])} | {fmt.cell(r['norm_ratio'])} | "
            f"{fmt.cell(r['bias_cosine'])} | {fmt.cell(r['bias_rel_err'])} | "
            f"{fmt.cell(r['spread'])} |"
        )
    lines += ["", "Cosine at the trained weights, beside sketched-rtrl's Table 3 (theirs: "
              "n = 64, 20k online steps, 5 seeds) where the task matches:", "",
              "| task | algorithm | ours (mean over seeds) | theirs (sketched-rtrl) |",
              "|---|---|---|---|"]  # fmt: skip
    if not learning.empty:
        for (task, label), g in learning.groupby(["task", "label"], sort=False):
            theirs = PUBLISHED.get(task, {}).get(label)
            lines.append(
                f"| {task} | {label} | {fmt.cell(g['cosine'].mean())} | "
                f"{'—' if theirs is None else f'{theirs:.2f} (theirs)'} |"
            )
    return "\n".join(lines)


def _truncation_table(tb: pd.DataFrame) -> str:
    lines = ["| lags | cell | optimizer | k | seeds | final MSE (mean) | min | max |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (lagstr, cell, opt, k), g in tb.groupby(["lagstr", "cell", "optimizer", "k2"]):
        v = g["final_loss"]
        lines.append(f"| {lagstr} | {cell} | {opt} | {int(k)} | {len(v)} | {v.mean():.4f} | "
                     f"{v.min():.4f} | {v.max():.4f} |")  # fmt: skip
    return "\n".join(lines)


def _footer(df: pd.DataFrame) -> str:
    machines = ", ".join(sorted({str(m) for m in df.get("machine", [])}))
    return f"bpttbench quality: {len(df)} rows; machine {machines}"
