"""W x for one vector, and W x, W y for two at once: the online rules' products at B = 1.

At B = 1 every online rule's step multiplies W_hh (and W_ih) by a vector, and
BLAS's GEMV is the wrong tool at the sizes they run: a call from a kernel costs
~0.15 us before it multiplies anything (half of the product at n = 64), and
UORO multiplies W_hh by two vectors a step (h_{t-1} and s~), which two GEMVs
read W_hh for twice. These loops take four rows of W at a time, so each x_j
(and y_j) loaded serves four rows, and sum each row in vector registers.

Measured on the reference machine (one thread, float64, per product, against
``np.dot`` in the same jitted loop): one vector 0.12 us against 0.28 at
n = 64, 4.2 against 5.2 at n = 256; two vectors 0.25 us against 0.56 at
n = 64 and 4.3 against 9.9 at n = 256, where W_hh (512 KiB) comes from L2
and its read is the product's cost.

They are compiled with reassociation (``jit(reassociate=True)``): each row's
sum is split over vector lanes, as BLAS splits it; the result differs from
the sequential sum by rounding only (a few ulp of the row's absolute sum).
"""

from __future__ import annotations

from ._jit import jit


@jit(reassociate=True)
def matvec(W, x, out):
    """out = W x for W (n, k), x (k,)."""
    n, k = W.shape
    i = 0
    while i + 4 <= n:
        w0, w1, w2, w3 = W[i], W[i + 1], W[i + 2], W[i + 3]
        a0 = a1 = a2 = a3 = 0.0
        for j in range(k):
            xj = x[j]
            a0 += w0[j] * xj
            a1 += w1[j] * xj
            a2 += w2[j] * xj
            a3 += w3[j] * xj
        out[i], out[i + 1], out[i + 2], out[i + 3] = a0, a1, a2, a3
        i += 4
    for row in range(i, n):
        w, a = W[row], 0.0
        for j in range(k):
            a += w[j] * x[j]
        out[row] = a


@jit(reassociate=True)
def matvec2(W, x, y, out_x, out_y):
    """out_x = W x and out_y = W y for W (n, k), reading W once."""
    n, k = W.shape
    i = 0
    while i + 4 <= n:
        w0, w1, w2, w3 = W[i], W[i + 1], W[i + 2], W[i + 3]
        a0 = a1 = a2 = a3 = 0.0
        b0 = b1 = b2 = b3 = 0.0
        for j in range(k):
            xj, yj = x[j], y[j]
            a0 += w0[j] * xj
            a1 += w1[j] * xj
            a2 += w2[j] * xj
            a3 += w3[j] * xj
            b0 += w0[j] * yj
            b1 += w1[j] * yj
            b2 += w2[j] * yj
            b3 += w3[j] * yj
        out_x[i], out_x[i + 1], out_x[i + 2], out_x[i + 3] = a0, a1, a2, a3
        out_y[i], out_y[i + 1], out_y[i + 2], out_y[i + 3] = b0, b1, b2, b3
        i += 4
    for row in range(i, n):
        w, a, b = W[row], 0.0, 0.0
        for j in range(k):
            a += w[j] * x[j]
            b += w[j] * y[j]
        out_x[row], out_y[row] = a, b


@jit(reassociate=True)
def dot(x, y):
    """x . y for two vectors: a loop over vector lanes (``np.dot`` on vectors calls BLAS's
    ddot, ~45 ns a call before the work, against ~12 ns for this whole sum at length 64)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * y[i]
    return s
