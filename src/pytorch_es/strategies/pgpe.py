"""PGPE: policy gradients with parameter-based exploration, symmetric sampling.

Sehnke et al. (2010), "Parameter-exploring policy gradients", section 2.3, with the
ranking and ClipUp optimizer of Toklu et al. (2020) as in EvoTorch. For each of
``n`` pairs ``x+- = mu +- sigma * z_k`` (per-parameter ``sigma``) with shaped
rewards ``u+-_k`` (zero-mean, so the baseline is 0):

    g_mu    = 1/n sum_k (u+_k - u-_k) / 2 * sigma z_k
    g_sigma = 1/n sum_k (u+_k + u-_k) / 2 * sigma (z_k**2 - 1)
    mu     <- optimizer step along g_mu            (ClipUp by default)
    sigma  <- clip(sigma + scale_lr * g_sigma, (1 - c) sigma, (1 + c) sigma)

with ``c = scale_max_change`` (EvoTorch's ``stdev_max_change``, default 0.2) and
``scale_lr`` (``stdev_learning_rate``, default 0.1). Both sums are noise-table
reductions in one read of the slices (:meth:`Population.linear_and_squared_sums`).
"""

from __future__ import annotations

from typing import Any

import torch

from pytorch_es.core.checks import check_fraction, check_positive
from pytorch_es.core.population import Population
from pytorch_es.strategies.base import Strategy, as_scale
from pytorch_es.strategies.openai_es import make_optimizer


class PGPE(Strategy):
    """PGPE. ``sigma``: initial scale (number or per-parameter tensor); ``lr``: the center
    optimizer's learning rate; ``optimizer``: ``"clipup"`` (default), ``"adam"``, ``"sgd"``,
    ``"adamw"`` or a factory; ``scale_lr``, ``scale_max_change``: the scale's update.
    ``scale_lr`` and ``scale_max_change`` live in ``param_groups[0]`` beside ``lr``."""

    name = "pgpe"

    def __init__(self, center: Any, *, population_size: int = 100, sigma: float | torch.Tensor = 0.1,
                 lr: float = 0.05, optimizer: Any = "clipup", optimizer_kwargs: dict | None = None,
                 scale_lr: float = 0.1, scale_max_change: float = 0.2, **common: Any) -> None:
        super().__init__(center, population_size=population_size, **common)
        self.scale = as_scale("sigma", sigma, self._center)
        check_positive("lr", lr)
        self.optimizer = make_optimizer(optimizer, [self._center], lr, optimizer_kwargs or {})
        self.optimizer.param_groups[0]["scale_lr"] = check_positive("scale_lr", scale_lr, allow_zero=True)
        self.optimizer.param_groups[0]["scale_max_change"] = check_fraction(
            "scale_max_change", scale_max_change, closed=False)

    def _distribution(self) -> tuple[torch.Tensor, None]:
        return self.scale, None

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        utilities = self.fitness_shaping(fitness).to(torch.float64)
        pairs = len(population.offsets)
        group = self.param_groups[0]
        linear, squared = population.linear_and_squared_sums(utilities)
        g_mu = linear.to(self._center).mul_(self.scale / (2 * pairs))
        g_sigma = squared.to(self._center).mul_(self.scale / (2 * pairs))
        self._center.grad = -g_mu
        self.optimizer.step()
        self._center.grad = None
        change = group["scale_max_change"]
        new = self.scale + group["scale_lr"] * g_sigma
        self.scale = torch.minimum(torch.maximum(new, self.scale * (1 - change)), self.scale * (1 + change))
        return {"grad_norm": float(torch.linalg.vector_norm(g_mu))}

    def _extra_state(self) -> dict[str, Any]:
        return {"scale": self.scale.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.scale = as_scale("state scale", state["scale"], self._center)
