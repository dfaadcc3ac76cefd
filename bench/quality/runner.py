"""``bpttbench quality``: the presets' jobs, the store's ``quality`` table, the command.

A preset is a list of jobs of three kinds: ``learning`` (online training,
with fidelity at the trained weights), ``fidelity`` (a sweep over n, the
spectral radius of W_hh, the truncation length k and the task's lags, at
initial weights) and ``vanishing`` (the gradient norm against the lag). Each
job has a key, (kind, task, lags, algorithm, cell, setting, seed, machine),
the setting holding everything that decides the result (k1, k2, update, n,
rho, optimizer, lr, clip, steps, B); a row is written in its own transaction
as soon as its job ends, so a killed run resumes where it stopped and a rerun
skips the keys already stored. A run gets a row in ``runs`` (preset
``quality:NAME``) with the machine, versions and commit, and holds the store's
writer lease as a sweep does (``bench.lease``). The table is declared in
``bench.schema`` (``QUALITY``) and written with ``store.upsert``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bpttbench.bench import DEFAULT_DB, BenchError, store
from bpttbench.bench.schema import QUALITY

from . import fidelity as fid
from . import vanishing
from .learning import Training, train
from .settings import ONLINE, Setting, TaskSpec, bptt_chunk, delayed_add, network, online, tbptt

TABLE = QUALITY.name
KEY = QUALITY.key[0]
JSON_COLUMNS = ("setting", "baselines", "curve")
INT_COLUMNS = ("run_id", "k1", "k2", "seed", "n", "steps", "B", "steps_to_threshold", "peak_bytes")


@dataclass(frozen=True)
class Job:
    kind: str
    task: TaskSpec
    setting: Setting
    seed: int
    training: Training = field(default_factory=Training)
    window: int = 40  # fidelity and vanishing: steps of the trajectory
    fid_seeds: int = 8

    def setting_dict(self) -> dict:
        out = self.setting.as_dict()
        t = self.training
        out.update(n=t.n, rho=t.rho)
        if self.kind == "learning":
            out.update(optimizer=t.optimizer, lr=t.lr, clip=t.clip, steps=t.steps, B=t.B)
        else:
            out.update(window=self.window)
        return out

    def key(self, machine: str) -> str:
        lags = ",".join(map(str, self.task.lags()))
        setting = json.dumps(self.setting_dict(), sort_keys=True)
        return "|".join(
            [self.kind, self.task.label(), lags, self.setting.algorithm, self.training.cell,
             setting, str(self.seed), machine]
        )  # fmt: skip


# --- presets -----------------------------------------------------------------------
# Quick (issue 13's acceptance data, within ~2 minutes on 2 cores): delayed-add
# t1 = 5, t2 = 9, Elman n = 32, Adam. W_hh starts at spectral radius 0.3: at
# init_rnn's ~0.58 the untrained 32-unit reservoir already holds x_{t-9}
# well enough for the (exactly trained) readout to decode it, and truncation
# k = 2 then learns as well as RTRL (measured); at 0.3 the memory has to be
# learned through W_hh. 3000 steps of B = 4 streams, lr 3e-3, clip 1: RTRL
# and SnAp-2 (dense W_hh: RTRL's cost) take ~2 s a seed, the rest < 1 s.
QUICK_TRAINING = Training(steps=3000, B=4, n=32, optimizer="adam", lr=3e-3, clip=1.0, rho=0.3)
# Full: 10000 steps a run. Its learning jobs measured 290 s of process CPU time
# (1000 of each setting's 10000 steps timed, scaled by 10; one job per setting,
# times its job count) on a loaded 2-core machine; the fidelity and vanishing
# jobs take well under a second each (318 + 15 of them): ~5-6 minutes on a
# quiet 2-core machine, 10 at the most. The plan: the acceptance task with 5
# seeds and the truncation sweep of TRUNCATION_SWEEP (the final loss against k
# chart: where truncation stops learning each lag), the wide lags (3, 12) with
# 3 seeds, the adding and copy tasks with 2, SGD beside Adam, GRU and LSTM
# through the truncated-BPTT stream with 3 seeds.
FULL_TRAINING = replace(QUICK_TRAINING, steps=10000)
ACCEPTANCE_K = (2, 6, 12)
TRUNCATION_SWEEP = (2, 4, 6, 8, 10, 12, 16)
# The acceptance lags (5, 9) are close: the memory a window of k = 6 builds for
# t1 = 5 carries x_{t-9} most of the way, and the second lag gets learned anyway
# (THEORY.md, "Truncation and the lag"). Lags (3, 12) with k = 5 between them
# show the plateau at the 't1 only' baseline that truncation causes.
WIDE = (3, 12)
WIDE_K = (2, 5, 8, 13, 16)
GATED = ("gru", "lstm")
RHOS = (0.5, 0.75, 1.0, 1.25, 1.5)


# Adam's step for a rule whose estimate is noisy: UORO at 3e-3 ends above the
# 'nothing' baseline (0.091 after 20000 steps, seed 0, measured) and at 1e-3
# below it (0.064); the other rules keep 3e-3 (1e-2 made SnAp-1 and RFLO worse).
RULE_LR = {"uoro": 1e-3}


def _job(task: TaskSpec, s: Setting, seed: int, training: Training) -> Job:
    """A learning job, with the rule's own Adam step where RULE_LR names one."""
    if training.optimizer == "adam" and s.algorithm in RULE_LR:
        training = replace(training, lr=RULE_LR[s.algorithm])
    return Job("learning", task, s, seed, training)


def learning_settings(update: int = 1, ks=ACCEPTANCE_K) -> list[Setting]:
    return [
        *(tbptt(k, update) for k in ks),
        bptt_chunk(16),
        *(online(name, update) for name in ONLINE),
    ]


def gated_learning_settings(update: int = 1) -> list[Setting]:
    """What a gated cell trains with: the truncated-BPTT stream (the online rules are Elman's)."""
    return [*(tbptt(k, update) for k in ACCEPTANCE_K), bptt_chunk(16)]


def fidelity_settings(cell: str = "elman") -> list[Setting]:
    truncated = [tbptt(k, 1) for k in ACCEPTANCE_K]
    if cell != "elman":  # exact RTRL (rtrl_gru, rtrl_lstm) beside truncation
        return [*truncated, online("rtrl", 1)]
    return [*truncated, *(online(name, 1) for name in ONLINE)]


def preset_jobs(name: str) -> list[Job]:
    if name not in ("quick", "full"):
        raise BenchError(f"unknown quality preset {name!r}: choose quick or full")
    quick = name == "quick"
    training = QUICK_TRAINING if quick else FULL_TRAINING
    acceptance = delayed_add(5, 9)
    seeds = (0, 1) if quick else (0, 1, 2, 3, 4)
    jobs = [
        _job(acceptance, s, seed, training)
        for seed in seeds
        for s in learning_settings(ks=ACCEPTANCE_K if quick else TRUNCATION_SWEEP)
    ]
    if not quick:
        for task in (
            TaskSpec("adding", (("length", 10),)),
            TaskSpec("copy", (("length", 3), ("delay", 5), ("symbols", 4))),
        ):
            jobs += [_job(task, s, seed, training) for seed in (0, 1)
                     for s in learning_settings()]  # fmt: skip
        wide = [*(tbptt(k, 1) for k in WIDE_K), bptt_chunk(16), online("rtrl", 1)]
        jobs += [Job("learning", delayed_add(*WIDE), s, seed, training) for seed in (0, 1, 2)
                 for s in wide]  # fmt: skip
        sgd = replace(training, optimizer="sgd", lr=0.05)  # SGD beside Adam, acceptance task
        jobs += [Job("learning", acceptance, s, 0, sgd) for s in learning_settings()]
        for cell in GATED:
            gated = replace(training, cell=cell)
            jobs += [Job("learning", acceptance, s, seed, gated) for seed in (0, 1, 2)
                     for s in gated_learning_settings()]  # fmt: skip
    fid_lags = [(5, 9)] if quick else [(2, 4), (5, 9), (10, 18)]
    for n in (16, 32) if quick else (16, 32, 64):
        for rho in (0.5, 1.0, 1.5):
            for t1, t2 in fid_lags:
                at = Training(n=n, rho=rho)
                jobs += [
                    Job("fidelity", delayed_add(t1, t2), s, 0, at) for s in fidelity_settings()
                ]
    if not quick:  # the gated cells: truncation against exact RTRL
        for cell in GATED:
            for n in (16, 32):
                for rho in (0.5, 1.0, 1.5):
                    at = Training(n=n, rho=rho, cell=cell)
                    jobs += [Job("fidelity", acceptance, s, 0, at) for s in fidelity_settings(cell)]
    for cell in ("elman", *GATED):  # NumPy only: cheap enough for the quick pass too
        for rho in RHOS:
            at = Training(n=32, rho=rho, B=8, cell=cell)
            jobs.append(Job("vanishing", acceptance, Setting("bptt"), 0, at, window=60))
    return jobs


# --- running a job -----------------------------------------------------------------


def run_job(job: Job) -> dict:
    """The measurements of one job (no store)."""
    t = job.training
    if job.kind == "learning":
        return train(job.setting, job.task, t, job.seed)
    if job.kind == "fidelity":
        data = job.task.make(job.window, 1, job.seed)
        params = network(t.n, data.xs.shape[2], data.ys.shape[2], job.seed, t.rho, cell=t.cell)
        return fid.fidelity(job.setting, params, data.xs, data.ys, job.fid_seeds)
    data = job.task.make(job.window, t.B, job.seed)
    return vanishing.measure(t.rho, t.n, job.window, data, job.seed, t.cell)


def row_of(job: Job, result: dict, run_id: int, machine: str) -> dict:
    t = job.training
    row = {
        KEY: job.key(machine),
        "run_id": run_id,
        "kind": job.kind,
        "task": job.task.name,
        "lags": ",".join(map(str, job.task.lags())),
        "algorithm": job.setting.algorithm,
        "cell": t.cell,
        "label": job.setting.name,
        "setting": json.dumps(job.setting_dict(), sort_keys=True),
        "k1": job.setting.k1,
        "k2": job.setting.k2,
        "seed": job.seed,
        "n": t.n,
        "rho": t.rho,
        "machine": machine,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if job.kind == "learning":
        row.update(optimizer=t.optimizer, lr=t.lr, clip=t.clip, steps=t.steps, B=t.B)
    for col in ("final_loss", "threshold", "steps_to_threshold", "cosine", "rel_err",
                "norm_ratio", "bias_cosine", "bias_rel_err", "spread", "time_per_step_s",
                "peak_bytes", "reason", "fitted_rate", "predicted_rate"):  # fmt: skip
        if col in result:
            row[col] = result[col]
    row["diverged"] = int(bool(result.get("diverged", False)))
    for col in ("baselines", "curve"):
        if col in result:
            row[col] = json.dumps(result[col])
    return row


def run_quality(
    jobs: list[Job],
    db_path=DEFAULT_DB,
    preset: str = "custom",
    argv=None,
    say: Callable[[str], None] | None = None,
    runner: Callable[[Job], dict] = run_job,
) -> list[dict]:
    """Run the jobs not yet stored, one transaction per row; return the plan's rows."""
    from bpttbench.bench.measure import run_metadata, set_threads

    say = say or (lambda _line: None)
    conn = store.connect(db_path)
    try:
        store.acquire_lease(conn)
        try:
            numba_threads, blas_threads = set_threads(1)
            meta = run_metadata()
            machine = meta["machine"]
            keys = [j.key(machine) for j in jobs]
            done = set(store.load_table(db_path, TABLE, (KEY,), "rowid")[KEY])
            todo = [j for j, k in zip(jobs, keys, strict=True) if k not in done]
            say(f"quality: {len(jobs) - len(todo)} of {len(jobs)} rows already stored")
            run_id = store.begin_run(
                conn,
                {
                    "started": _now(),
                    **meta,
                    "numba_threads": numba_threads,
                    "blas_threads": blas_threads,
                    "preset": f"quality:{preset}",
                    "argv": json.dumps(list(argv) if argv is not None else sys.argv[1:]),
                },
            )
            for i, job in enumerate(todo, 1):
                t0 = time.perf_counter()
                result = runner(job)
                with store.transaction(conn):
                    store.upsert(conn, QUALITY, row_of(job, result, run_id, machine))
                flag = " DIVERGED" if result.get("diverged") else ""
                say(
                    f"[{i}/{len(todo)}] {job.kind} {job.task.label()} {job.setting.name} "
                    f"seed {job.seed}: {time.perf_counter() - t0:.1f} s{flag}"
                )
            store.finish_run(conn, run_id, _now())
        finally:
            store.release_lease(conn)
    finally:
        conn.close()
    wanted = set(keys)
    return [r for r in load_rows(db_path) if r[KEY] in wanted]


def load_rows(db_path) -> list[dict]:
    """The quality table as a list of dicts, JSON columns decoded, diverged a bool."""
    df = store.load_table(db_path, TABLE, QUALITY.names, "rowid")
    rows = []
    for rec in df.to_dict("records"):
        for col in JSON_COLUMNS:
            if isinstance(rec.get(col), str):
                rec[col] = json.loads(rec[col])
        rec["diverged"] = bool(rec.get("diverged"))
        rec["lags"] = [int(v) for v in str(rec["lags"]).split(",") if v]
        rec = {k: (None if _isnan(v) else v) for k, v in rec.items()}
        for col in INT_COLUMNS:  # pandas reads an int column with NULLs as floats
            if rec.get(col) is not None:
                rec[col] = int(rec[col])
        rows.append(rec)
    return rows


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- the command -------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", choices=("quick", "full"))
    p.add_argument("--task", default=None, help="only this task (delayed_add, adding, copy)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def select(jobs: list[Job], task: str | None) -> list[Job]:
    if task is None:
        return jobs
    names = {j.task.name for j in jobs}
    if task not in names:
        raise BenchError(f"no task {task!r} in this preset: choose from {', '.join(sorted(names))}")
    return [j for j in jobs if j.task.name == task]


def quality_pass(db, preset="quick", task=None, quiet=False, argv=None) -> list[dict]:
    jobs = select(preset_jobs(preset), task)
    say = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    return run_quality(jobs, db, preset, argv, say)


def command(args: argparse.Namespace, argv=None, run_pass: Callable = quality_pass) -> int:
    """Run the pass (``run_pass``: here, or on a cluster's workers), print the rows."""
    t0 = time.perf_counter()
    rows = run_pass(args.db, args.preset, args.task, args.quiet or args.json, argv)
    if args.json:
        print(json.dumps([public(r) for r in rows], indent=2, default=str))
    else:
        print(summary_table(rows))
        print(f"quality: {len(rows)} rows in {time.perf_counter() - t0:.0f} s -> {args.db}")
    return 0


def public(row: dict) -> dict:
    """A row as ``--json`` prints it (the store's columns, the setting as an object)."""
    return {k: v for k, v in row.items() if k != KEY}


def summary_table(rows: list[dict]) -> str:
    """Learning rows: mean final loss over seeds per (task, lags, cell, setting, optimizer)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["kind"] == "learning":
            task = f"{r['task']} {','.join(map(str, r['lags']))}"
            label = r["label"] if r["cell"] == "elman" else f"{r['cell']} {r['label']}"
            groups.setdefault((task, label, r.get("optimizer")), []).append(r)
    lines = [f"{'task':16s} {'setting':20s} {'opt':5s} {'final MSE':>10s} {'cos':>6s} "
             f"{'us/step':>8s} {'diverged':>8s}"]  # fmt: skip
    for (task, label, opt), rs in groups.items():
        losses = [r["final_loss"] for r in rs if r["final_loss"] is not None]
        cos = [r["cosine"] for r in rs if r.get("cosine") is not None]
        mean = sum(losses) / len(losses) if losses else float("nan")
        c = sum(cos) / len(cos) if cos else float("nan")
        tps = sum((r["time_per_step_s"] or 0) for r in rs) / len(rs) * 1e6
        div = sum(r["diverged"] for r in rs)
        lines.append(
            f"{task:16s} {label:20s} {opt or '':5s} {mean:10.4f} {c:6.3f} {tps:8.0f} {div:8d}"
        )
    return "\n".join(lines)
