"""A population described by (center, sigma, noise table, generation), not by members.

``Population`` is what ``Strategy.ask()`` returns and what evaluators ship to
workers: the center travels once, every member ``theta_i = center + sigma * s_i *
eps_{k(i)}`` is rebuilt where it is evaluated. No (population x dim) matrix exists
unless :meth:`Population.members` is called for a batched evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from pytorch_es.core.noise import NoiseTable, num_pairs, pair_index


@dataclass
class Population:
    """The members of one generation, implicitly.

    Attributes:
        center: the mean of the search distribution, a 1-D tensor of length ``dim``.
        sigma: the perturbation scale.
        noise: the shared noise table.
        generation: the generation counter (selects the slice offsets).
        size: number of members ``N``.
        antithetic: whether members come in mirrored pairs.
    """

    center: torch.Tensor
    sigma: float
    noise: NoiseTable
    generation: int
    size: int
    antithetic: bool = True
    _offsets: torch.Tensor | None = field(default=None, repr=False)
    _offset_list: list[int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.size

    @property
    def dim(self) -> int:
        return self.center.numel()

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

    def epsilon(self, index: int) -> torch.Tensor:
        """The signed unit perturbation ``s_i * eps_{k(i)}`` of member ``index``."""
        eps, sign = self._slice(index)
        return eps if sign > 0 else -eps

    def member(self, index: int) -> torch.Tensor:
        """Member ``index`` as a new flat parameter vector."""
        eps, sign = self._slice(index)
        return self.center.add(eps.to(self.center.dtype), alpha=sign * self.sigma)

    def members(self, indices: Sequence[int] | None = None) -> torch.Tensor:
        """Members ``indices`` (default all) stacked into a ``(n, dim)`` matrix.

        This is the one place a population matrix is built; call it only for a
        batched forward pass over a chunk of members.
        """
        indices = list(range(self.size)) if indices is None else [self._check(i) for i in indices]
        if not indices:
            return self.center.new_zeros((0, self.dim))
        pairs, signs = zip(*(pair_index(i, self.antithetic) for i in indices))
        slices = self.noise.gather(self.offsets[list(pairs)], self.dim).to(self.center.dtype)
        scale = torch.tensor(signs, dtype=self.center.dtype, device=self.center.device)
        return torch.addcmul(self.center.unsqueeze(0), slices, scale.unsqueeze(1) * self.sigma)
