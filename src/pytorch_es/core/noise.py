"""Reproducible perturbations from a shared noise table.

Following Salimans et al. (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", every process holds the same block of standard normal
noise, generated from the run seed. A perturbation ``eps_i`` is a slice of that
table at an offset drawn from ``(seed, generation, pair)``, so member ``i`` of
generation ``g`` can be rebuilt anywhere from those integers alone, and workers
exchange only seeds and scalars.

With antithetic (mirrored) sampling, members ``2k`` and ``2k + 1`` share the slice
``eps_k`` with signs ``+1`` and ``-1``; an odd population's last member is unpaired.
"""

from __future__ import annotations

import threading

import torch

_MASK64 = (1 << 64) - 1
_TABLE_CACHE: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}
_TABLE_LOCK = threading.Lock()


def mix_seed(*values: int) -> int:
    """Hash integers into one 63-bit seed (splitmix64 finaliser, chained)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state & ((1 << 63) - 1)


def default_table_size(dim: int) -> int:
    """Table length for a ``dim``-dimensional search: at least 2**20 and ``2 * dim``,
    and 32 * dim up to 2**25 floats (128 MB in float32)."""
    return max(1 << 20, 2 * dim, min(32 * dim, 1 << 25))


class NoiseTable:
    """A block of ``size`` i.i.d. N(0, 1) values generated on the CPU from ``seed``.

    The block is generated once per process (and cached), on the CPU so it is
    bit-identical on every machine, then moved to ``device``. Pickling a table sends
    only its description, never its values.
    """

    def __init__(
        self,
        seed: int,
        size: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if size < 2:
            raise ValueError(f"noise table size must be >= 2, got {size}")
        self.seed = int(seed)
        self.size = int(size)
        self.device = torch.device(device)
        self.dtype = dtype
        self._values: torch.Tensor | None = None
        self._last_offsets: tuple[tuple[int, int, int], torch.Tensor] | None = None
        self._windows: tuple[int, torch.Tensor] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_values"] = None
        state["_last_offsets"] = None
        state["_windows"] = None
        return state

    @property
    def values(self) -> torch.Tensor:
        """The table itself, generated on first use."""
        if self._values is None:
            key = (self.seed, self.size, str(self.device), self.dtype)
            with _TABLE_LOCK:
                values = _TABLE_CACHE.get(key)
                if values is None:
                    generator = torch.Generator().manual_seed(mix_seed(self.seed, 0x7AB1E))
                    values = torch.randn(self.size, generator=generator, dtype=torch.float32)
                    values = values.to(device=self.device, dtype=self.dtype)
                    _TABLE_CACHE.clear()  # one table per process is the common case
                    _TABLE_CACHE[key] = values
            self._values = values
        return self._values

    def offsets(self, generation: int, count: int, dim: int) -> torch.Tensor:
        """The ``count`` slice offsets of ``generation``: int64 on the CPU (the last one drawn is
        kept and returned again: do not modify it)."""
        if dim > self.size:
            raise ValueError(f"noise table of size {self.size} is smaller than dim {dim}")
        key = (generation, count, dim)
        last = getattr(self, "_last_offsets", None)  # (tables pickled before it existed lack it)
        if last is not None and last[0] == key:  # ask() and tell() of one generation: drawn once
            return last[1]
        generator = torch.Generator().manual_seed(mix_seed(self.seed, generation))
        offsets = torch.randint(0, self.size - dim + 1, (count,), generator=generator)
        self._last_offsets = (key, offsets)
        return offsets

    def slice(self, offset: int, dim: int) -> torch.Tensor:
        """The perturbation starting at ``offset`` (a view, no copy)."""
        return self.values[offset : offset + dim]

    def gather(self, offsets: torch.Tensor, dim: int) -> torch.Tensor:
        """Stack the slices at ``offsets`` into a ``(len(offsets), dim)`` matrix."""
        windows = getattr(self, "_windows", None)  # (tables pickled before it existed lack it)
        if windows is None or windows[0] != dim:
            windows = self._windows = (dim, self.values.unfold(0, dim, 1))  # (size - dim + 1, dim) view
        if offsets.device != self.device:
            offsets = offsets.to(self.device)
        return windows[1].index_select(0, offsets)

    def weighted_sum(self, offsets: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
        """``sum_k weights[k] * slice(offsets[k])`` without materialising the matrix.

        Small problems use one gather and ``mv``; large ones accumulate slice by slice
        (:meth:`_accumulate`), so memory stays O(dim) and time is bound by reading the
        slices once (on a CUDA device, in gathers of 2**24 values: one kernel launch per
        slice would dominate).
        """
        weights = weights.to(device=self.device, dtype=self.dtype)
        if offsets.shape[0] * dim <= 1 << 22:
            return self.gather(offsets, dim).T.mv(weights)
        if self.device.type != "cpu":  # on an accelerator: gathers of 2**24 values, no per-slice launch
            rows = max(1, (1 << 24) // dim)
            total = self.values.new_zeros(dim)
            for start in range(0, len(offsets), rows):
                total += self.gather(offsets[start : start + rows], dim).T.mv(weights[start : start + rows])
            return total
        return self._accumulate(offsets, dim, weights, None)[0]

    def weighted_square_sum(self, offsets: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
        """``sum_k weights[k] * slice(offsets[k])**2``, in the same O(dim) memory as
        :meth:`weighted_sum` (diagonal NES and PGPE adapt their scales with it)."""
        weights = weights.to(device=self.device, dtype=self.dtype)
        if offsets.shape[0] * dim <= 1 << 22:
            slices = self.gather(offsets, dim)
            return slices.square().T.mv(weights)
        return self._accumulate(offsets, dim, None, weights)[1]

    def weighted_sums(
        self, offsets: torch.Tensor, weights: torch.Tensor, square_weights: torch.Tensor, dim: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`weighted_sum` with ``weights`` and :meth:`weighted_square_sum` with
        ``square_weights`` in one read of the slices, bit for bit the two calls' results."""
        if self.device.type != "cpu" and offsets.shape[0] * dim > 1 << 22:
            return self.weighted_sum(offsets, weights, dim), self.weighted_square_sum(offsets, square_weights, dim)
        weights = weights.to(device=self.device, dtype=self.dtype)
        square_weights = square_weights.to(device=self.device, dtype=self.dtype)
        if offsets.shape[0] * dim <= 1 << 22:
            slices = self.gather(offsets, dim)
            return slices.T.mv(weights), slices.square().T.mv(square_weights)
        return self._accumulate(offsets, dim, weights, square_weights)

    def _accumulate(
        self, offsets: torch.Tensor, dim: int, weights: torch.Tensor | None, square_weights: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``sum_k weights[k] slice_k`` and ``sum_k square_weights[k] slice_k**2`` (either may
        be None), slice by slice in the order of ``offsets``. On the CPU the vector is cut into
        blocks of 512 KiB, so the sums being built stay in cache while each slice streams past:
        1.35x faster at dim 1e6, and bit for bit the same (each element sees the same
        operations in the same order)."""
        count = len(offsets)
        linear = [0.0] * count if weights is None else weights.tolist()
        square = [0.0] * count if square_weights is None else square_weights.tolist()
        terms = [(offset, a, b) for offset, a, b in zip(offsets.tolist(), linear, square) if a != 0.0 or b != 0.0]
        total = None if weights is None else self.values.new_zeros(dim)
        square_total = None if square_weights is None else self.values.new_zeros(dim)
        block = max(1, (1 << 19) // self.values.element_size()) if self.device.type == "cpu" else dim
        values = self.values
        for start in range(0, dim, block):
            stop = min(dim, start + block)
            part = None if total is None else total[start:stop]
            square_part = None if square_total is None else square_total[start:stop]
            for offset, weight, square_weight in terms:
                eps = values[offset + start : offset + stop]
                if weight != 0.0:
                    part.add_(eps, alpha=weight)
                if square_weight != 0.0:
                    square_part.addcmul_(eps, eps, value=square_weight)
        return total, square_total

    def projections(self, offsets: torch.Tensor, vectors: torch.Tensor, dim: int) -> torch.Tensor:
        """``slice(offsets[k]) . vectors[j]`` as a ``(len(offsets), len(vectors))`` matrix, gathering
        at most 2**22 values at a time (low-rank strategies need ``U eps_k`` per slice)."""
        vectors = vectors.to(device=self.device, dtype=self.dtype)
        rows = max(1, (1 << 22) // dim)
        parts = [self.gather(offsets[i : i + rows], dim) @ vectors.T for i in range(0, len(offsets), rows)]
        return torch.cat(parts) if parts else self.values.new_zeros((0, len(vectors)))

    def square_norms(self, offsets: torch.Tensor, dim: int) -> torch.Tensor:
        """``|slice(offsets[k])|^2`` for every offset, gathering at most 2**22 values at a time;
        slices of ``2**14`` values or more take one BLAS dot each on the slice itself (no gathered
        copy, no squared temporary: 8x faster at dim 1e6)."""
        if dim >= 1 << 14:
            norms = [torch.dot(eps, eps) for eps in (self.slice(offset, dim) for offset in offsets.tolist())]
            return torch.stack(norms) if norms else self.values.new_zeros(0)
        rows = max(1, (1 << 22) // dim)
        parts = [self.gather(offsets[i : i + rows], dim).square().sum(1) for i in range(0, len(offsets), rows)]
        return torch.cat(parts) if parts else self.values.new_zeros(0)


def pair_index(member: int, antithetic: bool) -> tuple[int, float]:
    """The noise slice (pair) of ``member`` and its sign."""
    if antithetic:
        return member // 2, (1.0 if member % 2 == 0 else -1.0)
    return member, 1.0


def num_pairs(population_size: int, antithetic: bool) -> int:
    """How many noise slices a population of ``population_size`` uses."""
    return (population_size + 1) // 2 if antithetic else population_size
