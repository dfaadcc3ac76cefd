"""Sweeps on a Dask cluster: timed cell visits run on workers, one at a time per worker.

The modules, by what each owns:

- :mod:`.connect`: the optional ``distributed`` import with its install hint,
  the worker resource ``timing``, and the client (to a scheduler, or to a
  ``LocalCluster`` of its own).
- :mod:`.pool`: submission and scheduling of picklable jobs,
  :class:`OneAtATime`, at most one job per worker, outcomes streamed back as
  they complete; jobs may be pinned to the hosts of one machine.
- :mod:`.faults`: what became of a job (:class:`Outcome`): its value, or why
  not (the worker died past Dask's retries, the job raised, it was cancelled).
- :mod:`.worker`: what runs on a worker: the machine fingerprint, one visit of
  one cell with the threads pinned as a local sweep pins them, the peaks.
- :mod:`.memprobe`: each worker's helper process of one thread, where its
  memory passes and quality jobs run (tracemalloc counts every thread of a
  process, and a worker's event loop and profiler allocate), so a worker
  measures the peak bytes a local sweep measures.
- :mod:`.sweep`: :func:`run_cluster_sweep`, the sweep loop: the resume rule,
  handing out visits, and what to do with each outcome.
- :mod:`.writes`: the client's store writes, one transaction per visit, the
  run row of each machine fingerprint.
- :mod:`.quality`: ``bpttbench quality`` on the workers, one job per worker at a
  time, rows keyed by the machine that ran them.
- :mod:`.cli`: ``--scheduler ADDRESS | --local-cluster N`` on ``bpttbench sweep``
  and ``bpttbench quality``.
- :mod:`.agree`: whether two stores' fitted exponents agree (the acceptance
  check of ``reports/cluster/run.sh``: a local run against a cluster run).

Before the first visit, each machine measures its GEMM/GEMV peaks
(:func:`machine_peaks`) on one of its workers, a job like a visit, while the
cluster's other workers wait: peaks measured beside another worker's timing
would be those of half a machine. Only the client writes the store, one
transaction per visit as results arrive, so the store stays the single atomic,
resumable record.

Machines. A cell's key names the machine that measured it: the key written is
built from the *worker's* fingerprint (its machine name and its thread counts
in effect), and the run row the cell points to describes that machine (one run
row per fingerprint met during the sweep, with that machine's peaks; a machine
that joins mid-sweep gets a run row without peaks). All visits of one cell are
made on one machine: visit 2 and later are pinned to the hosts of the machine
that made visit 1.

Resume rule. When the sweep starts, every worker reports its fingerprint; the
cluster's machines are those fingerprints (machine name, Numba and BLAS thread
counts). A cell is done when the store holds a finished row for it from any
machine of the cluster: the sweep asks for each cell once, on whichever worker
takes it, so a rerun through the same cluster (or any cluster containing the
machine that measured it) skips it whichever worker measured it. Cells measured
on machines outside the cluster do not count; a cluster of other machines
measures them again, under their own keys. Visits of an unfinished cell made on
a machine of the cluster are kept and the cell is finished there.

Faults. A worker that dies mid-visit (killed, out of memory) loses only that
visit: the scheduler runs it again on another worker (of the same machine, for a
pinned visit), up to its ``distributed.scheduler.allowed-failures`` (3 by
default); past that the cell is stored as an ``error`` row with the reason. A
visit that raises on the worker is an ``error`` row, as in a local sweep, and so
is one whose memory pass ends the worker's helper process (:mod:`.memprobe`,
killed or out of memory): the reason names the helper and its exit status, and
the helper is started again for the next visit. A pinned visit whose machine has
no worker left for ``STRANDED_AFTER`` seconds is given up and its cell left
unfinished (its visits are kept for a later run). A client killed mid-sweep
loses only the visits in flight; rerunning the same command resumes.
"""

from .cli import add_arguments, quality_command, sweep_command, wanted
from .connect import INSTALL_HINT, RESOURCE, connect, require_distributed
from .faults import Outcome, one_line
from .pool import STRANDED_AFTER, Job, OneAtATime, host_of
from .quality import run_cluster_quality, run_quality_job
from .sweep import ClusterSummary, probe, run_cluster_sweep
from .worker import FINGERPRINT_KEYS, VisitTask, fingerprint, machine_peaks, run_visit

__all__ = [
    "FINGERPRINT_KEYS",
    "INSTALL_HINT",
    "RESOURCE",
    "STRANDED_AFTER",
    "ClusterSummary",
    "Job",
    "OneAtATime",
    "Outcome",
    "VisitTask",
    "add_arguments",
    "connect",
    "fingerprint",
    "host_of",
    "machine_peaks",
    "one_line",
    "probe",
    "quality_command",
    "require_distributed",
    "run_cluster_quality",
    "run_cluster_sweep",
    "run_quality_job",
    "run_visit",
    "sweep_command",
    "wanted",
]
