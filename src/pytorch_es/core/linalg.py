"""Small dense linear algebra the full-covariance strategies share.

``expm`` is the matrix exponential by scaling and squaring (Higham 2005, "The scaling and
squaring method for the matrix exponential revisited") with a truncated Taylor series
evaluated by Paterson and Stockmeyer's scheme (1973): with ``r = |X|_1`` scaled to at most
1 and ``T_k`` the degree-``k`` Taylor polynomial,

    |exp(X) - T_k(X)| / |exp(X)|  <=  r^(k+1) / (k+1)! * exp(2 r),

so ``k`` is the least degree that brings this below the dtype's unit roundoff, and
``T_k(X) = sum_j B_j(X) (X^s)^j`` with ``s ~ sqrt(k)`` takes ``s - 1 + floor(k / s)``
products. XNES's steps have ``r`` of 0.01 to 0.3 (degree 6 to 12, 4 to 6 products); at
100 x 100 in float64 this takes about 175 us where ``torch.linalg.matrix_exp`` takes 270 to 300
(one CPU core, docs/strategies.md).
"""

from __future__ import annotations

import math

import torch


def taylor_degree(norm: float, dtype: torch.dtype) -> int:
    """The least ``k`` with ``norm^(k+1) / (k+1)! * exp(2 norm)`` below ``dtype``'s unit
    roundoff (``norm <= 1``)."""
    roundoff = torch.finfo(dtype).eps / 2
    k, term = 0, math.exp(2 * norm)  # term = norm^(k+1) / (k+1)! * exp(2 norm), from k = 0
    term *= norm
    while term > roundoff:
        k += 1
        term *= norm / (k + 1)
    return max(k, 1)


def expm(matrix: torch.Tensor) -> torch.Tensor:
    """``exp(matrix)`` of a square floating-point matrix (module docstring); agrees with
    ``torch.linalg.matrix_exp`` to a few units of roundoff."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or not matrix.is_floating_point():
        raise ValueError(f"expm needs a square floating-point matrix, got {tuple(matrix.shape)} {matrix.dtype}")
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    norm = float(matrix.abs().sum(0).max()) if matrix.numel() else 0.0
    if not math.isfinite(norm):
        raise ValueError("expm needs a finite matrix")
    if norm == 0.0:
        return eye
    squarings = max(0, math.ceil(math.log2(norm)))
    x = matrix / 2.0**squarings if squarings else matrix
    degree = taylor_degree(norm / 2.0**squarings, matrix.dtype)
    step = max(1, round(math.sqrt(degree)))
    powers = [eye, x]
    for _ in range(step - 1):
        powers.append(powers[-1] @ x)

    def block(j: int) -> torch.Tensor:  # sum_{i < step} X^i / (j step + i)!, up to the degree
        total = eye / math.factorial(j * step)
        for i in range(1, min(step, degree - j * step + 1)):
            total = total.add(powers[i], alpha=1 / math.factorial(j * step + i))
        return total

    blocks = degree // step
    result = block(blocks)
    for j in range(blocks - 1, -1, -1):
        result = torch.addmm(block(j), result, powers[step])
    for _ in range(squarings):
        result = result @ result
    return result
