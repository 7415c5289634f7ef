"""ARS: augmented random search, top-b directions and reward-std normalisation.

Mania, Guy and Recht (2018), "Simple random search of static linear policies is
competitive for reinforcement learning", algorithm 2. For ``n`` directions
``delta_k`` (mirrored pairs ``theta +- nu delta_k``, ``nu = sigma``) with rewards
``r+_k, r-_k``, the ``b`` directions of largest ``max(r+_k, r-_k)`` are kept and

    theta <- theta + lr / (b sigma_R) sum_{k in top b} (r+_k - r-_k) delta_k

with ``sigma_R`` the standard deviation of the ``2b`` rewards used (a zero
``sigma_R``, all rewards equal, gives a zero step). That is V1-t; V2-t is the same
update on normalised observations, which the RL layer provides (``obs_norm=True``,
``pytorch-es train --algo ars --obs-norm``). The sum is one noise-table reduction.
"""

from __future__ import annotations

from typing import Any

import torch

from pytorch_es.core.checks import check_positive
from pytorch_es.core.population import Population
from pytorch_es.strategies.base import Hyperparameters, Strategy


class ARS(Strategy):
    """ARS V1-t / V2-t. ``population_size`` even (``n = N/2`` directions);
    ``top_directions`` ``b`` (default ``n``); ``sigma`` is ``nu``; ``lr`` is ``alpha``.
    Raw rewards (``fitness_shaping`` unused); always mirrored."""

    name = "ars"

    def __init__(self, center: Any, *, population_size: int = 32, sigma: float = 0.03, lr: float = 0.02,
                 top_directions: int | None = None, **common: Any) -> None:
        common.pop("antithetic", None)
        super().__init__(center, population_size=population_size, antithetic=True, **common)
        if self.population_size % 2:
            raise ValueError(f"ARS needs an even population_size (pairs +-delta), got {self.population_size}")
        directions = self.population_size // 2
        top = directions if top_directions is None else top_directions
        expected = f"top_directions must be an int in [1, {directions}] (population_size / 2 directions)"
        if isinstance(top, bool) or not isinstance(top, int):
            raise TypeError(f"{expected}, got {type(top).__name__} ({top!r})")
        if not 1 <= top <= directions:
            fix = f": give population_size >= {2 * top} or a smaller top_directions" if top > directions else ""
            raise ValueError(f"{expected}, got {top!r}{fix}")
        self.top_directions = top
        self.sigma = check_positive("sigma", sigma)
        self.optimizer = Hyperparameters(lr=check_positive("lr", lr, allow_zero=True))

    def _distribution(self) -> tuple[float, None]:
        return self.sigma, None

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        plus, minus = fitness[0::2], fitness[1::2]
        top = torch.argsort(torch.maximum(plus, minus), descending=True, stable=True)[: self.top_directions]
        used = torch.cat([plus[top], minus[top]])
        std = float(used.std(unbiased=False))
        weights = torch.zeros(self.population_size, dtype=torch.float64)
        if std > 1e-12 * max(1.0, float(used.abs().max())):
            weights[2 * top] = plus[top] / std
            weights[2 * top + 1] = minus[top] / std
        step = population.linear_sum(weights).to(self._center.dtype)
        self._center.add_(step, alpha=self.lr / self.top_directions)
        return {"reward_std": std}

    def hyperparameters(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "top_directions": self.top_directions}

    def _set_hyperparameters(self, values: dict[str, Any]) -> None:
        self.sigma = check_positive("state sigma", values.get("sigma", self.sigma))
