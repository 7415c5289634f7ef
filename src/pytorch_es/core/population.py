"""A Gaussian generation described by its distribution, not by its members.

``Population`` is what ``Strategy.ask()`` returns and what evaluators ship to
workers. Member ``i`` of generation ``g`` is

    z_i     = s_i * eps_{k(i)}                      (a noise-table slice, sign s_i = +-1)
    theta_i = center + scale * z_i                  (scalar or per-parameter scale)
    theta_i = center + scale * (transform @ z_i)    (full-covariance strategies)
    theta_i = center + scale * (z_i + U^T U z_i)    (a low-rank form: ``low_rank`` U, k x dim)

clipped into ``[low, high]`` when the strategy has bounds. ``k(i)`` and ``s_i`` come
from ``(noise seed, generation, i)``; with ``antithetic`` members ``2k`` and ``2k + 1``
share ``eps_k`` with opposite signs. The distribution's tensors (center, scale,
transform or low-rank factor, bounds) travel once per generation; every member is
rebuilt where it is evaluated. No (population x dim) matrix exists unless :meth:`Population.members` is
called for a batched evaluation.

The reductions :meth:`Population.linear_sum` (``sum_i w_i z_i``) and
:meth:`Population.squared_sum` (``sum_i w_i (z_i**2 - 1)``) are what strategies
build their updates from, with :meth:`Population.square_norms` (``|z_i|^2``) and
:meth:`Population.projections` (``U z_i``, for a low-rank form); each reads each noise
slice once and never builds the member matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from pytorch_es.core.noise import NoiseTable, num_pairs, pair_index

# A transform is a (dim, dim) matrix shipped to every worker each generation and
# eigen-decomposed by the strategy: above this dim (64 MiB in float32, and an O(dim^3)
# decomposition per update) full-covariance strategies refuse to start.
MAX_TRANSFORM_DIM = 4096


def scale_stats(
    scale: float | torch.Tensor, transform: torch.Tensor | None = None, low_rank: torch.Tensor | None = None
) -> dict[str, float]:
    """``scale_mean``, ``scale_min``, ``scale_max`` of a scalar or per-parameter scale; with
    a ``transform`` A, of the per-coordinate standard deviations ``scale * |A_i|``; with a
    ``low_rank`` U, of ``scale * |(I + U^T U)_i|``."""
    if transform is not None:
        scale = scale * transform.double().norm(dim=1)
    if low_rank is not None:
        u = low_rank.double()
        # row i of I + U^T U is e_i + U^T U[:, i]: |.|^2 = 1 + 2 |U_:i|^2 + |U^T U_:i|^2
        columns = u.square().sum(0)
        scale = scale * (1 + 2 * columns + (u.T @ (u @ u.T)).mul(u.T).sum(1)).sqrt()
    if isinstance(scale, torch.Tensor):
        scale = scale.double()
        low, high = torch.aminmax(scale)
        return {"scale_mean": float(scale.mean()), "scale_min": float(low), "scale_max": float(high)}
    scale = float(scale)
    return {"scale_mean": scale, "scale_min": scale, "scale_max": scale}


@dataclass
class Population:
    """The members of one generation, implicitly.

    Attributes:
        center: the mean of the search distribution, a 1-D tensor of length ``dim``.
        scale: the perturbation scale: a float (OpenAI-ES's ``sigma``, CMA-ES's step
            size) or a 1-D tensor of length ``dim`` (diagonal strategies).
        noise: the shared noise table.
        generation: the generation counter (selects the slice offsets).
        size: number of members ``N``.
        antithetic: whether members come in mirrored pairs.
        seed: the run seed (problems derive their env seeds from it); default
            ``noise.seed``.
        transform: ``None`` or a ``(dim, dim)`` matrix ``A`` (members
            ``center + scale * A z``), for full-covariance strategies.
        low_rank: ``None`` or a ``(k, dim)`` matrix ``U`` (members
            ``center + scale * (z + U^T U z)``), for low-rank + diagonal strategies
            (CR-FM-NES, k = 1); O(k dim) to ship. Not combined with ``transform``.
        low, high: ``None`` or 1-D tensors: members are clipped into ``[low, high]``.
    """

    center: torch.Tensor
    scale: float | torch.Tensor
    noise: NoiseTable
    generation: int
    size: int
    antithetic: bool = True
    seed: int | None = None
    transform: torch.Tensor | None = None
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None
    low_rank: torch.Tensor | None = None
    _offsets: torch.Tensor | None = field(default=None, repr=False)
    _offset_list: list[int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = self.noise.seed
        if isinstance(self.scale, torch.Tensor):
            if self.scale.shape != self.center.shape:
                raise ValueError(
                    f"scale must be a float or a tensor of shape {tuple(self.center.shape)}, "
                    f"got shape {tuple(self.scale.shape)}"
                )
        else:
            self.scale = float(self.scale)
        if self.transform is not None:
            if self.transform.shape != (self.dim, self.dim):
                raise ValueError(
                    f"transform must have shape ({self.dim}, {self.dim}), got {tuple(self.transform.shape)}"
                )
            # row-major everywhere: a worker's copy is, and mv's rounding depends on the layout
            self.transform = self.transform.contiguous()
        if self.low_rank is not None:
            if self.transform is not None:
                raise ValueError("a Population takes a transform or a low_rank factor, not both")
            if self.low_rank.dim() != 2 or self.low_rank.shape[1] != self.dim:
                raise ValueError(f"low_rank must have shape (k, {self.dim}), got {tuple(self.low_rank.shape)}")
            self.low_rank = self.low_rank.contiguous()

    def __len__(self) -> int:
        return self.size

    @property
    def dim(self) -> int:
        return self.center.numel()

    @property
    def sigma(self) -> float:
        """Read-only alias: the scalar scale, or the mean of a per-parameter scale (with a
        ``low_rank`` factor: of the per-coordinate standard deviations, as ``scale_stats``)."""
        if isinstance(self.scale, torch.Tensor) or self.low_rank is not None:
            return scale_stats(self.scale, None, self.low_rank)["scale_mean"]
        return self.scale

    def scale_stats(self) -> dict[str, float]:
        """``scale_mean``, ``scale_min``, ``scale_max`` of the (per-parameter) scale."""
        return scale_stats(self.scale, self.transform, self.low_rank)

    @property
    def offsets(self) -> torch.Tensor:
        """Offsets of the noise slices, one per pair (or per member without mirroring)."""
        if self._offsets is None:
            count = num_pairs(self.size, self.antithetic)
            self._offsets = self.noise.offsets(self.generation, count, self.dim)
        return self._offsets

    def _slice(self, index: int) -> tuple[torch.Tensor, float]:
        """The unsigned noise slice of member ``index`` and its sign."""
        if self._offset_list is None:
            self._offset_list = self.offsets.tolist()
        pair, sign = pair_index(self._check(index), self.antithetic)
        return self.noise.slice(self._offset_list[pair], self.dim), sign

    def _check(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(f"member index {index} out of range for a population of {self.size}")
        return int(index)

    def _clip(self, members: torch.Tensor) -> torch.Tensor:
        if self.low is not None:
            members = torch.maximum(members, self.low)
        if self.high is not None:
            members = torch.minimum(members, self.high)
        return members

    def epsilon(self, index: int) -> torch.Tensor:
        """The signed unit perturbation ``z_i = s_i * eps_{k(i)}`` of member ``index``."""
        eps, sign = self._slice(index)
        return eps if sign > 0 else -eps

    def member(self, index: int) -> torch.Tensor:
        """Member ``index`` as a new flat parameter vector."""
        eps, sign = self._slice(index)
        if self.transform is None and self.low_rank is None and not isinstance(self.scale, torch.Tensor):
            member = self.center.add(eps.to(self.center.dtype), alpha=sign * self.scale)
        else:
            member = self.center + self._step((eps * sign).to(self.center.dtype).unsqueeze(0))[0]
        return self._clip(member)

    def _step(self, z: torch.Tensor) -> torch.Tensor:
        """``scale * (A z)`` or ``scale * (z + U^T U z)`` for rows ``z``. One ``mv`` per row,
        not one matmul: a member's bits must not depend on how many are built with it
        (BLAS picks other kernels for other shapes), so every backend and chunking agrees."""
        if self.transform is not None:
            z = torch.stack([torch.mv(self.transform, row) for row in z])
        if self.low_rank is not None:
            u = self.low_rank.to(z.dtype)
            z = torch.stack([row + torch.mv(u.T, torch.mv(u, row)) for row in z])
        return z * self.scale

    def _slices_and_signs(self, indices: Sequence[int] | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The unsigned noise slices of members ``indices`` (default all) as rows, and their
        signs (a column of +-1 in the center's dtype). A tensor of indices (or all members)
        takes tensor ops, a short list of a few members plain Python."""
        if indices is None or isinstance(indices, torch.Tensor):
            members = torch.arange(self.size) if indices is None else self._member_tensor(indices)
            pairs = members // 2 if self.antithetic else members
            signs = (1 - 2 * (members % 2)) if self.antithetic else torch.ones(len(members), dtype=torch.int64)
        else:
            pairs_signs = [pair_index(self._check(i), self.antithetic) for i in indices]
            pairs = [pair for pair, _ in pairs_signs]
            signs = torch.tensor([sign for _, sign in pairs_signs], dtype=self.center.dtype)
        slices = self.noise.gather(self.offsets[pairs], self.dim).to(self.center.dtype)
        return slices, signs.to(device=slices.device, dtype=self.center.dtype).reshape(-1, 1)

    def _member_tensor(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices`` as a flat int64 CPU tensor, every one checked to be a member."""
        members = indices.reshape(-1).to("cpu", torch.int64)
        if len(members):
            low, high = torch.aminmax(members)
            if int(low) < 0 or int(high) >= self.size:
                self._check(int(low) if int(low) < 0 else int(high))  # raises IndexError naming it
        return members

    def noise_matrix(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """The signed perturbations ``z_i`` of members ``indices`` (default all) as rows."""
        slices, signs = self._slices_and_signs(indices)
        return slices * signs

    def members(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Members ``indices`` (default all) stacked into a ``(n, dim)`` matrix.

        This is the one place a population matrix is built; call it only for a
        batched forward pass over a chunk of members.
        """
        if self.transform is not None or self.low_rank is not None or isinstance(self.scale, torch.Tensor):
            return self._clip(self.center.unsqueeze(0) + self._step(self.noise_matrix(indices)))
        slices, signs = self._slices_and_signs(indices)
        members = torch.addcmul(self.center.unsqueeze(0), slices, signs * self.scale)
        return self._clip(members)

    # ----------------------------------------------------------------- reductions

    def slice_weights(self, weights: torch.Tensor, *, signed: bool) -> torch.Tensor:
        """Member weights folded onto the noise slices: ``w_2k - w_2k+1`` per mirrored
        pair when ``signed`` (for ``sum_i w_i z_i``), ``w_2k + w_2k+1`` otherwise (for
        even functions of ``z_i`` such as ``z_i**2``)."""
        weights = weights.to(torch.float64)
        if weights.shape[0] != self.size:
            raise ValueError(f"expected {self.size} weights (one per member), got {weights.shape[0]}")
        if not self.antithetic:
            return weights
        n = self.size
        if n % 2 == 0:  # every member has its mirror
            return weights[0::2] - weights[1::2] if signed else weights[0::2] + weights[1::2]
        folded = torch.zeros(num_pairs(n, True), dtype=torch.float64)
        folded += weights[0::2]
        if signed:
            folded[: n // 2] -= weights[1::2]
        else:
            folded[: n // 2] += weights[1::2]
        return folded

    def linear_sum(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i z_i`` over the members (a ``dim`` vector in the noise dtype)."""
        return self.noise.weighted_sum(self.offsets, self.slice_weights(weights, signed=True), self.dim)

    def square_norms(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """``|z_i|^2`` of every member, or of members ``indices`` (mirrored members share
        theirs), without the matrix."""
        if indices is not None:
            members = self._member_tensor(indices)
            return self.noise.square_norms(self.offsets[members // 2 if self.antithetic else members], self.dim)
        norms = self.noise.square_norms(self.offsets, self.dim)
        if not self.antithetic:
            return norms
        return norms.repeat_interleave(2)[: self.size]

    def projections(self, vectors: torch.Tensor) -> torch.Tensor:
        """``vectors[j] . z_i`` as a ``(size, k)`` matrix (``U z_i`` for a ``(k, dim)`` U), without
        the member matrix: what a low-rank strategy needs per member (O(size k) memory)."""
        if vectors.dim() != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (k, {self.dim}), got {tuple(vectors.shape)}")
        values = self.noise.projections(self.offsets, vectors, self.dim)
        if not self.antithetic:
            return values
        signs = torch.ones(self.size, dtype=values.dtype, device=values.device)
        signs[1::2] = -1
        return values.repeat_interleave(2, dim=0)[: self.size] * signs.unsqueeze(1)

    def squared_sum(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i (z_i**2 - 1)`` over the members (a ``dim`` vector)."""
        folded = self.slice_weights(weights, signed=False)
        total = self.noise.weighted_square_sum(self.offsets, folded, self.dim)
        return total.sub_(float(folded.sum()))

    def linear_and_squared_sums(
        self, weights: torch.Tensor, square_weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(linear_sum(weights), squared_sum(square_weights))`` (default: the same weights)
        in one read of the noise slices, bit for bit the two reductions (SNES, PGPE, CEM and
        sep-CMA-ES need both)."""
        folded = self.slice_weights(weights if square_weights is None else square_weights, signed=False)
        linear, square = self.noise.weighted_sums(
            self.offsets, self.slice_weights(weights, signed=True), folded, self.dim)
        return linear, square.sub_(float(folded.sum()))
