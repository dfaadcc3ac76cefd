#!/bin/sh
# The reference run, as it was made: one fresh store, on a quiet machine, each step
# resumable (run the script again to resume). Then the report.
#
# The measuring commands run with OpenBLAS's own choice of kernels: some machines
# (this project's 2-core reference VM among them) set OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE for old OpenBLAS builds, which forces the Haswell kernels and a
# one-core DGEMM of about 62 GFLOP/s where OpenBLAS's own SkylakeX kernels reach about
# 100. The store records the kernels of every run (runs.blas_kernels). Where the
# variables are not set, `env -u` changes nothing.
set -e
DB=reports/reference/reference.sqlite
M="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
# The learning and fidelity runs (no timings)
$M bpttbench quality --preset full --db "$DB"
# Every algorithm's and cell's sweeps of the full preset, one thread
$M bpttbench sweep --preset full --min-time 1.5 --db "$DB"
# The peers (PyTorch and JAX; Elman, GRU and LSTM), pinned to one core, both dtypes.
# This first pass was stopped (SIGTERM) at JAX's RTRL at n = 64, which had run 12 minutes
# pinned to one core without finishing (2.5 s a call unpinned, in an earlier run); its
# finished rows stay. The rest of the grid, less JAX's RTRL, followed:
$M bpttbench peers --db "$DB" --dtype float64 float32
$M bpttbench peers --db "$DB" --dtype float64 --cells gru lstm
$M bpttbench peers --db "$DB" --dtype float32 --cells elman gru lstm --algorithms bptt tbptt
# Issue 14's threads measurement: a subset of the full preset's cells at 1 and 2
# threads (the one-thread cells are the sweeps' own, resumed)
$M bpttbench sweep --grid reports/reference/threads.toml --min-time 1.5 --db "$DB"
# The online rules' performance targets, stored beside the store for the report
$M python -m bpttbench.bench.online_efficiency --targets --n 64,256 --T 200 --rounds 9 \
    --json reports/reference/online_targets.json
# After the gated cells' truncated BPTT time sweep took every size of BPTT's (the new
# cells only)
$M bpttbench sweep --preset full --min-time 1.5 --algorithms tbptt --db "$DB"
# Later kernel changes, their cells measured again (the rest of the store stands):
# UORO's lazy theta~ kernel and the flat-argument calls of SnAp-1 and RFLO, with the
# n^2 rules' in-L3 B sweep (new cells); SnAp-2's fused kernel and its new density, n
# and B sweeps (the old kernel's SnAp-2 cells deleted first, as their keys would be
# reused); the online targets again; RTRL's T and B sweeps after parallel kernels
# stopped launching the thread pool for whole-array statements (kernels/_jit.py)
$M bpttbench sweep --preset full --algorithms uoro snap1 rflo --remeasure --min-time 1.5 --db "$DB"
sqlite3 "$DB" "delete from visits where cell_key in (select cell_key from cells where algorithm='snap2'); delete from cells where algorithm='snap2';"
$M bpttbench sweep --preset full --algorithms snap2 --min-time 1.5 --db "$DB"
$M python -m bpttbench.bench.online_efficiency --targets --n 64,256 --T 200 --rounds 9 \
    --json reports/reference/online_targets.json
$M bpttbench sweep --preset full --algorithms rtrl --axes T B --remeasure --min-time 1.5 --db "$DB"
# Exact RTRL (every cell) and SnAp-2 in passes (blocks) of steps, each slab or row
# through a pass's steps while it is in cache; RTRL's n sweeps at the gated cells'
# sizes moved from T = 1 to T = 4 (their T = 1 cells deleted first) and stop at 384
# (GRU) and 352 (LSTM), where the next sizes would be skipped at 3 minutes a cell; the
# online targets again
sqlite3 "$DB" "delete from visits where cell_key in (select cell_key from cells where algorithm='rtrl' and axis='n' and T=1 and B=1); delete from cells where algorithm='rtrl' and axis='n' and T=1 and B=1;"
$M bpttbench sweep --preset full --algorithms rtrl --remeasure --min-time 1.5 --db "$DB"
$M bpttbench sweep --grid reports/reference/threads.toml --algorithms rtrl --remeasure --db "$DB"
$M bpttbench sweep --preset full --algorithms snap2 --remeasure --min-time 1.5 --db "$DB"
# SnAp-2's n sweep widened to 256..704 (its old cells deleted first)
sqlite3 "$DB" "delete from visits where cell_key in (select cell_key from cells where algorithm='snap2' and axis='n'); delete from cells where algorithm='snap2' and axis='n';"
$M bpttbench sweep --preset full --algorithms snap2 --axes n --min-time 1.5 --db "$DB"
$M python -m bpttbench.bench.online_efficiency --targets --n 64,256 --T 200 --rounds 9 \
    --json reports/reference/online_targets.json
# The online rules' W x products written by hand at B = 1 (kernels/_matvec.py), UORO's
# passes of consecutive blocks sharing each read of W_hh, signs from the bits of raw
# PCG64 outputs: the O(n^2) rules measured again (KF-RTRL, R-KF and SnAp-2, whose steps
# are n^3 GEMMs, left as they were); the online targets from warm calls of T = 2000
$M bpttbench sweep --preset full --algorithms uoro snap1 rflo --remeasure --min-time 1.5 --db "$DB"
$M python -m bpttbench.bench.online_efficiency --targets --n 64,256 --rounds 9 \
    --json reports/reference/online_targets.json
# UORO again after it kept a second block of records at B = 1 only, and after its fold
# took theta~ in panels of rows (measured twice more: a test run overlapped the first
# pass, and the panels were evened out after the second); the n^2 rules' denser memory
# sweep, n = 1024..2048 at T = 8 (new cells; first tries at T = 16 and T = 8 up to
# n = 4096 were deleted, as the time fit or the budget table would have taken them);
# the online targets again
$M bpttbench sweep --preset full --algorithms uoro --remeasure --min-time 1.5 --db "$DB"
sqlite3 "$DB" "delete from visits where cell_key in (select cell_key from cells where algorithm in ('uoro','snap1','rflo') and axis='n' and n in (2896, 4096)); delete from cells where algorithm in ('uoro','snap1','rflo') and axis='n' and n in (2896, 4096);"
$M bpttbench sweep --preset full --algorithms uoro snap1 rflo --min-time 1.5 --db "$DB"
$M python -m bpttbench.bench.online_efficiency --targets --n 64,256 --rounds 9 \
    --json reports/reference/online_targets.json
# The quality jobs of the online rules whose draws (the new sign protocol) or rounding
# (the new products) changed, run again: their rows deleted first, the rest resumed
sqlite3 "$DB" "delete from quality where algorithm in ('uoro','kf_rtrl','r_kf','snap1','snap2','rflo');"
$M bpttbench quality --preset full --db "$DB"
bpttbench report --db "$DB" --benchmark-json reports/reference/benchmark-reference.json \
    --out reports/reference
