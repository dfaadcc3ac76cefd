"""Client-side store writes of a cluster sweep: the client is the store's one writer.

Owns how results become rows: one transaction per visit as results arrive
(:meth:`StoreWrites.record`, the cell's row written with its last visit),
skipped and failed cells (:meth:`StoreWrites.drop`), and the run rows, one per
machine fingerprint met during the sweep, the first with that machine's peaks
(:meth:`StoreWrites.run_for`). A cell's key is built from the fingerprint of
the worker that measured it (machine name and thread counts), so every row
names its machine. Workers never touch the store, so it stays the single,
atomic, resumable record a local sweep writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

from .pool import host_of
from .worker import FINGERPRINT_KEYS


def _fp_id(fp: Mapping) -> tuple[str, int, int]:
    """What a cell key takes from a worker's fingerprint: machine and thread counts."""
    return (fp["machine"], int(fp["numba_threads"]), int(fp["blas_threads"]))


def _label(c) -> tuple:
    """A cell apart from the machine (a plan may sweep one axis at two fixed sizes)."""
    return (c.algorithm, c.axis, tuple(sorted(c.size.items())), c.dtype)


class StoreWrites:
    """The store-writing half of :class:`sweep._ClusterSweep` (its state: ``conn``,
    ``plan``, ``registry``, ``runs``, ``home``, ``made``, ...)."""

    def key(self, c, fp: tuple) -> str:
        from bpttbench.bench import store

        m, nt, bt = fp
        return store.cell_key(c.algorithm, c.axis, c.size, c.dtype, nt, bt, m)

    def record(self, p: int, c, result: Mapping) -> None:
        """Store one visit and, with the cell's last, its row from the stored visits:
        one transaction."""
        from bpttbench.bench import store, sweep
        from bpttbench.bench.budget import reference

        lab = _label(c)
        fp = _fp_id(result["worker"])
        run = self.run_for(result)
        self.home[lab] = fp
        self.fps.add(fp)  # a worker that joined later: its cells predict times too
        if result["worker"].get("address"):
            self.hosts_of.setdefault(fp[0], set()).add(host_of(result["worker"]["address"]))
        visit = result["visit"]
        self.made.setdefault(lab, {})[p] = visit
        self.refs.append(reference(self.registry[c.algorithm], c, visit["samples"]))
        row = self.base_row(c, fp, run["run_id"])
        written = store.write_visit(
            self.conn,
            {
                "cell_key": row["cell_key"],
                "visit": p,
                "run_id": run["run_id"],
                **visit,
                "created": sweep.now(),
            },
            finish=lambda visits: self.cell_row(c, row, run["gemm"], visits),
            fresh=self._first_write(lab),
        )
        if written is not None:
            self.summary.measured += 1

    def cell_row(self, c, row: Mapping, gemm: float | None, visits: Mapping[int, Mapping]):
        """The finished cell's row from its stored visits, or None while some are missing."""
        from bpttbench.bench import sweep
        from bpttbench.bench.measure import combine

        numbers = range(1, self.plan.visits + 1)
        if not all(i in visits for i in numbers):
            return None
        spec = self.registry[c.algorithm]
        res = combine([visits[i] for i in numbers], spec, c.size, c.dtype)
        res.pop("samples", None)
        return {
            **row,
            **res,
            "status": "ok",
            "reason": None,
            "efficiency": res["gflops"] / gemm if gemm else None,
            "created": sweep.now(),
        }

    def _first_write(self, lab: tuple) -> bool:
        """Whether this is the first write of a remeasured cell (its old visits go)."""
        if lab in self.fresh:
            self.fresh.discard(lab)
            return True
        return False

    def base_row(self, c, fp: tuple, run_id: int) -> dict:

        m, nt, bt = fp
        return {
            "cell_key": self.key(c, fp),
            "run_id": run_id,
            "algorithm": c.algorithm,
            "axis": c.axis,
            "size": c.value,
            **{v: c.size.get(v) for v in self.conn.sizes},
            "dtype": c.dtype,
            "numba_threads": nt,
            "blas_threads": bt,
            "machine": m,
        }

    def drop(self, c, fp: tuple, status: str, reason: str, run_id: int | None = None) -> None:
        """Store the cell as skipped or error, under machine ``fp``; it gets no more visits."""
        from bpttbench.bench import store, sweep

        if run_id is None:  # no result of its own: the run row of that machine's workers
            run_id = self.run_for({"worker": self.worker_of[fp]})["run_id"]
        row = {**self.base_row(c, fp, run_id), "status": status, "reason": reason}
        store.write_cell(
            self.conn, {**row, "created": sweep.now()}, fresh=self._first_write(_label(c))
        )
        self.dropped.add(_label(c))

    def run_for(self, result: Mapping) -> dict:
        """The run row of the worker that sent ``result``: one per fingerprint, made with
        its first result (the peaks job's, which brings the peaks)."""
        from bpttbench.bench import store

        fp = result["worker"]
        self.worker_of[_fp_id(fp)] = fp
        full = tuple(fp.get(k) for k in FINGERPRINT_KEYS)
        gemm, gemv = result.get("gemm"), result.get("gemv")
        run = self.runs.get(full)
        if run is None:  # its peaks come with the first result: the peaks job's
            argv = self.argv if self.argv is not None else sys.argv[1:]
            run_id = store.begin_run(
                self.conn,
                {
                    "started": self.started,
                    **{k: fp.get(k) for k in FINGERPRINT_KEYS},
                    "preset": self.plan.name,
                    "gemm_gflops": gemm,
                    "gemv_gflops": gemv,
                    "argv": json.dumps(list(argv)),
                },
            )
            run = self.runs[full] = {"run_id": run_id, "gemm": gemm}
            self.summary.run_ids.append(run_id)
        return run

    def finish(self) -> None:
        from bpttbench.bench import store, sweep

        self.bar.close()
        for run in self.runs.values():
            store.finish_run(self.conn, run["run_id"], sweep.now())
