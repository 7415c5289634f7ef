"""SNES: separable natural evolution strategy (a diagonal Gaussian).

Schaul, Glasmachers and Schmidhuber (2011), "High Dimensions and Heavy Tails for
Natural Evolution Strategies", algorithm 2. Members ``x_i = mu + sigma * z_i`` with
``z_i ~ N(0, I)`` and per-parameter ``sigma``; with rank utilities ``u_i`` (``"nes"``,
zero-sum):

    g_mu    = sum_i u_i z_i
    g_sigma = sum_i u_i (z_i**2 - 1)
    mu     <- mu + eta_mu * sigma * g_mu
    sigma  <- sigma * exp(eta_sigma / 2 * g_sigma)

Defaults of the paper: ``N = 4 + floor(3 ln d)``, ``eta_mu = 1``,
``eta_sigma = (3 + ln d) / (5 sqrt d)``. ``lr`` is ``eta_mu`` and ``scale_lr`` is
``eta_sigma``, both in ``param_groups``. Both sums come from the noise table
in one read of the slices (:meth:`Population.linear_and_squared_sums`), O(dim) memory.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pytorch_es.core.checks import check_positive
from pytorch_es.core.population import Population
from pytorch_es.strategies.base import Hyperparameters, Strategy, as_scale


def snes_population_size(dim: int) -> int:
    return 4 + int(3 * math.log(dim))


class SNES(Strategy):
    """Separable NES. ``sigma``: initial scale (a number or a per-parameter tensor);
    ``lr``: ``eta_mu`` (default 1); ``scale_lr``: ``eta_sigma`` (default from ``dim``);
    ``population_size`` default ``4 + floor(3 ln d)``. Other arguments: see
    :class:`~pytorch_es.strategies.base.Strategy` (default shaping ``"nes"``, no mirroring)."""

    name = "snes"

    def __init__(self, center: Any, *, population_size: int | None = None, sigma: float | torch.Tensor = 0.1,
                 lr: float = 1.0, scale_lr: float | None = None, fitness_shaping: Any = "nes",
                 antithetic: bool = False, **common: Any) -> None:
        dim = Strategy._dim_of(center)
        size = snes_population_size(dim) if population_size is None else population_size
        super().__init__(center, population_size=size, fitness_shaping=fitness_shaping, antithetic=antithetic,
                         **common)
        self.scale = as_scale("sigma", sigma, self._center)
        scale_lr = (3 + math.log(self.dim)) / (5 * math.sqrt(self.dim)) if scale_lr is None else scale_lr
        self.optimizer = Hyperparameters(lr=check_positive("lr", lr, allow_zero=True),
                                         scale_lr=check_positive("scale_lr", scale_lr, allow_zero=True))

    def _distribution(self) -> tuple[torch.Tensor, None]:
        return self.scale, None

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        utilities = self.fitness_shaping(fitness).to(torch.float64)
        group = self.param_groups[0]
        linear, squared = population.linear_and_squared_sums(utilities)
        g_mu, g_sigma = linear.to(self._center), squared.to(self._center)
        self._center.add_(group["lr"] * self.scale * g_mu)
        self.scale.mul_(torch.exp(0.5 * group["scale_lr"] * g_sigma))
        return {"grad_norm": float(torch.linalg.vector_norm(g_mu))}

    def _extra_state(self) -> dict[str, Any]:
        return {"scale": self.scale.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.scale = as_scale("state scale", state["scale"], self._center)
