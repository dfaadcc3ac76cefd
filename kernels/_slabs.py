"""The shape of the RTRL kernels' work: slabs of influence blocks, passes of steps.

Exact RTRL stores the influence matrix as one block per parameter row (an
(S x r) matrix, S the state size) and updates K blocks side by side with one
GEMM per step. One block makes a GEMM too thin for BLAS to reach its peak; all
blocks at once would need a scratch as large as the influence matrix itself.
A slab of about ``cols`` columns is wide enough for the GEMM and small enough
to stay in cache for the fused pass that follows it.

A slab's update at step t needs only what the forward step computed (z_t,
the state's derivatives, the readout's error at the state, a gated cell's
Jacobian), never another slab. So the kernels work in passes of
``STEPS_PER_PASS`` steps: the forward steps of a pass run first and keep what
the slabs need, then each slab runs through all the pass's steps while it sits
in cache. The influence matrix (8 n^3 numbers per sequence for the LSTM, past
the last-level cache from n ~ 80) then crosses the memory bus once a pass, not
once a step: per step it is read and written at the memory's rate, ~0.7 ns a
number on the reference machine, which is what bent RTRL's time exponent along
n below 4 where it outgrew the cache.
"""

from __future__ import annotations

import numbers

# Steps per pass. The per-step keep is O(S n) numbers per sequence (a gated
# cell's Jacobian: 2 n^2 for the LSTM), so STEPS_PER_PASS of them stay small
# beside the influence matrix's O(S n^2); 16 passes cut its memory traffic
# 16-fold, to a few percent of the GEMMs' time.
STEPS_PER_PASS = 16


def blocks_per_slab(blocks: int, r: int, cols: int) -> int:
    """The largest divisor K of ``blocks`` with ``K r <= cols`` (at least 1)."""
    fits = [K for K in range(1, blocks + 1) if blocks % K == 0 and K * r <= cols]
    return max(fits, default=1)


def pass_length(T: int, steps_per_pass: int | None = None) -> int:
    """Steps of a kernel's pass over a sequence of ``T`` steps: never more than T (at least 1).

    ``steps_per_pass`` (default :data:`STEPS_PER_PASS`) must be a positive integer.
    """
    P = STEPS_PER_PASS if steps_per_pass is None else steps_per_pass
    if isinstance(P, bool) or not isinstance(P, numbers.Integral) or P < 1:
        raise ValueError(f"steps_per_pass must be a positive integer, got {steps_per_pass!r}")
    return max(1, min(int(P), T))
