"""How many influence blocks one GEMM updates: the slab width shared by the RTRL kernels.

Exact RTRL stores the influence matrix as one block per parameter row (an
(S x r) matrix, S the state size) and updates K blocks side by side with one
GEMM per step. One block makes a GEMM too thin for BLAS to reach its peak; all
blocks at once would need a scratch as large as the influence matrix itself.
A slab of about ``cols`` columns is wide enough for the GEMM and small enough
to stay in cache for the fused pass that follows it.
"""

from __future__ import annotations


def blocks_per_slab(blocks: int, r: int, cols: int) -> int:
    """The largest divisor K of ``blocks`` with ``K r <= cols`` (at least 1)."""
    fits = [K for K in range(1, blocks + 1) if blocks % K == 0 and K * r <= cols]
    return max(fits, default=1)
