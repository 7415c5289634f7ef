"""Running observation normalisation, ``(obs - mean) / sqrt(var + eps)`` clipped to ``±clip``.

Salimans et al. (2017) normalise observations with statistics gathered from the
rollouts themselves. The statistics are *frozen during a generation* (every member
sees the same normaliser, whichever worker runs it) and updated afterwards from
per-member sums merged in member-index order, so results do not depend on how the
population was split across workers.

Statistics are kept as ``(count, mean, M2)`` in float64 (Welford). Two sets merge with
the parallel formula of Chan, Golub and LeVeque (1979):

    n = n_a + n_b,  delta = mean_b - mean_a,
    mean = mean_a + delta * n_b / n,  M2 = M2_a + M2_b + delta^2 * n_a * n_b / n.

Rollouts accumulate *shifted* sums ``sum(x - s)`` and ``sum((x - s)^2)`` with ``s`` the
current mean, which keeps ``M2 = sum((x-s)^2) - n (mean_b - s)^2`` well conditioned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["NormalizeObservation", "ObservationNormalizer", "ObservationStats"]


class ObservationStats:
    """Per-row shifted sums of observations gathered by one rollout batch.

    ``counts[i]`` observations of row ``i`` (a member) with ``sums[i] = sum(x - shift)``
    and ``squares[i] = sum((x - shift)^2)``, all float64.
    """

    def __init__(self, rows: int, shape: Sequence[int], shift: torch.Tensor) -> None:
        self.shift = shift.to(torch.float64).reshape(-1)
        dim = self.shift.numel()
        if int(torch.tensor(list(shape)).prod()) != dim:
            raise ValueError(f"shift has {dim} values for observations of shape {tuple(shape)}")
        self.counts = torch.zeros(rows, dtype=torch.float64)
        self.sums = torch.zeros(rows, dim, dtype=torch.float64)
        self.squares = torch.zeros(rows, dim, dtype=torch.float64)

    def add(self, obs: torch.Tensor, rows: torch.Tensor | None = None, count: bool = True) -> None:
        """Add one observation per row (``rows``: which rows ``obs`` belongs to; default all).

        ``count=False`` leaves ``counts`` alone (the rollout sets it to the episode
        lengths afterwards, one observation per step taken: one operation less per step).
        """
        x = torch.sub(obs.reshape(obs.shape[0], -1), self.shift)  # float64 by promotion
        if rows is None:
            if count:
                self.counts += 1.0
            self.sums += x
            # x * x, not addcmul_: a fused multiply-add rounds differently from the
            # index_add_ branch, and which branch a member's step takes depends on the
            # batch it runs in (serial vs worker chunks); both must round alike.
            self.squares += x * x
        else:
            if count:
                self.counts.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64))
            self.sums.index_add_(0, rows, x)
            self.squares.index_add_(0, rows, x * x)

    def payload(self) -> dict[str, torch.Tensor]:
        return {"shift": self.shift, "counts": self.counts, "sums": self.sums, "squares": self.squares}


class NormalizeObservation(torch.nn.Module):
    """``clip((obs - mean) * inv_std)`` in float32 for observations of ``shape``, the
    exported form of :meth:`ObservationNormalizer.normalize`.

    Takes ``(..., *shape)`` and returns ``(..., prod(shape))``; ``mean`` and ``inv_std``
    are buffers, so the module saves, loads and moves like any other.
    """

    def __init__(self, shape: Sequence[int], mean: torch.Tensor, inv_std: torch.Tensor, clip: float) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.clip = float(clip)
        self.register_buffer("mean", mean.detach().to(torch.float32).reshape(-1).clone())
        self.register_buffer("inv_std", inv_std.detach().to(torch.float32).reshape(-1).clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[: obs.dim() - len(self.shape)]
        x = torch.as_tensor(obs).reshape(*batch, -1).to(torch.float32)
        return x.sub(self.mean).mul_(self.inv_std).clamp_(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, clip={self.clip:g}"


class ObservationNormalizer:
    """Running mean and variance of observations, applied as a clipped z-score.

    Args:
        shape: the observation shape.
        clip: normalised values are clipped to ``[-clip, clip]``.
        epsilon: added to the variance before the square root.

    Before any update the normaliser is the identity (mean 0, variance 1), clipped.
    """

    def __init__(self, shape: Sequence[int] | int, clip: float = 5.0, epsilon: float = 1e-8) -> None:
        self.shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if not self.shape or any(s < 1 for s in self.shape):
            raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape!r}")
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        dim = 1
        for s in self.shape:
            dim *= s
        self.dim = dim
        self.count = 0.0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dtype=torch.float64)
        self._refresh()

    @property
    def var(self) -> torch.Tensor:
        """Population variance ``M2 / n`` (1 before any observation)."""
        if self.count <= 0:
            return torch.ones(self.dim, dtype=torch.float64)
        return self.m2 / self.count

    @property
    def std(self) -> torch.Tensor:
        return torch.sqrt(self.var + self.epsilon)

    def _refresh(self) -> None:
        self._mean32 = self.mean.to(torch.float32)
        self._inv_std32 = (1.0 / self.std).to(torch.float32)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``clip((obs - mean) / std)`` in float32 for a ``(n, *shape)`` batch -> ``(n, dim)``."""
        x = obs.reshape(obs.shape[0], -1).to(torch.float32)
        return x.sub(self._mean32).mul_(self._inv_std32).clamp_(-self.clip, self.clip)

    def to_module(self) -> NormalizeObservation:
        """This normalisation, frozen at the current statistics, as an ``nn.Module``."""
        return NormalizeObservation(self.shape, self._mean32, self._inv_std32, self.clip)

    def stats(self, rows: int) -> ObservationStats:
        """A fresh accumulator for ``rows`` rows, shifted by the current mean."""
        return ObservationStats(rows, self.shape, self.mean)

    def merge_moments(self, count: float, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Fold a batch's ``(count, mean, M2)`` into the running statistics (Chan et al.)."""
        count = float(count)
        if count <= 0:
            return
        mean = mean.to(torch.float64).reshape(-1)
        m2 = m2.to(torch.float64).reshape(-1)
        if mean.numel() != self.dim:
            raise ValueError(f"statistics of {mean.numel()} values for observations of size {self.dim}")
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / total)
        self.count = total
        self._refresh()

    def update(self, obs: torch.Tensor) -> None:
        """Add a ``(n, *shape)`` batch of observations."""
        x = obs.reshape(obs.shape[0], -1).to(torch.float64)
        if len(x) == 0:
            return
        mean = x.mean(0)
        self.merge_moments(len(x), mean, ((x - mean) ** 2).sum(0))

    def merge_payloads(self, payloads: Sequence[dict[str, torch.Tensor]]) -> None:
        """Fold :meth:`ObservationStats.payload` dicts, already sorted by member index.

        The rows are concatenated first and reduced in one call, so the result is the
        same however the members were split into payloads.
        """
        payloads = [p for p in payloads if p is not None and len(p["counts"])]
        if not payloads:
            return
        shift = payloads[0]["shift"]
        counts = torch.cat([p["counts"] for p in payloads])
        sums = torch.cat([p["sums"] for p in payloads])
        squares = torch.cat([p["squares"] for p in payloads])
        n = float(counts.sum())
        if n <= 0:
            return
        shifted_mean = sums.sum(0) / n
        m2 = (squares.sum(0) - n * shifted_mean * shifted_mean).clamp_(min=0.0)
        self.merge_moments(n, shift + shifted_mean, m2)

    # ---- saving ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (safetensors / ``torch.load(weights_only=True)`` friendly)."""
        return {
            "count": torch.tensor(self.count, dtype=torch.float64),
            "mean": self.mean.clone(),
            "m2": self.m2.clone(),
            "clip": torch.tensor(self.clip, dtype=torch.float64),
            "epsilon": torch.tensor(self.epsilon, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = torch.as_tensor(state["mean"], dtype=torch.float64).reshape(-1)
        if mean.numel() != self.dim:
            raise ValueError(
                f"observation statistics have {mean.numel()} values, observations have shape {self.shape}"
            )
        self.count = float(state["count"])
        self.mean = mean.clone()
        self.m2 = torch.as_tensor(state["m2"], dtype=torch.float64).reshape(-1).clone()
        if "clip" in state:
            self.clip = float(state["clip"])
        if "epsilon" in state:
            self.epsilon = float(state["epsilon"])
        self._refresh()

    def to_config(self) -> dict[str, Any]:
        """JSON-able statistics (``policy.json``): exact float64 values as Python floats."""
        return {
            "shape": list(self.shape),
            "count": self.count,
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "m2": self.m2.tolist(),
            "clip": self.clip,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ObservationNormalizer:
        try:
            normalizer = cls(
                config["shape"], clip=config.get("clip", 5.0), epsilon=config.get("epsilon", 1e-8)
            )
            normalizer.load_state_dict(
                {"count": config["count"], "mean": config["mean"], "m2": config["m2"]}
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"invalid observation-normalisation config: {error!r}") from None
        return normalizer

    def copy(self) -> ObservationNormalizer:
        other = ObservationNormalizer(self.shape, self.clip, self.epsilon)
        other.load_state_dict(self.state_dict())
        return other

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_mean32", None)
        state.pop("_inv_std32", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._refresh()

    def __repr__(self) -> str:
        return f"ObservationNormalizer(shape={self.shape}, count={self.count:g}, clip={self.clip})"
