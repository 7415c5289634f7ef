"""XNES: exponential natural evolution strategy, full covariance, for small dims.

Glasmachers, Schaul, Sun, Wierstra and Schmidhuber (2010), "Exponential Natural
Evolution Strategies" (GECCO), algorithm 1. Members ``x_i = mu + sigma B z_i`` with
``det B = 1`` (the population's ``transform`` is ``B``, its ``scale`` ``sigma``); with
NES utilities ``u_i`` (zero-sum):

    G_delta = sum_i u_i z_i
    G_M     = sum_i u_i (z_i z_i^T - I),   G_sigma = tr(G_M) / d,   G_B = G_M - G_sigma I
    mu     <- mu + eta_mu sigma B G_delta
    sigma  <- sigma exp(eta_sigma / 2 G_sigma)
    B      <- B expm(eta_B / 2 G_B)

Defaults: ``N = 4 + floor(3 ln d)``, ``eta_mu = 1``,
``eta_sigma = eta_B = 3 (3 + ln d) / (5 d sqrt d)``. ``lr`` is ``eta_mu``; ``scale_lr``
(``eta_sigma``) and ``transform_lr`` (``eta_B``) are in ``param_groups[0]``. ``expm`` is
``core.linalg.expm`` (Taylor with scaling and squaring).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pytorch_es.core.checks import check_positive
from pytorch_es.core.linalg import expm
from pytorch_es.core.population import MAX_TRANSFORM_DIM, Population
from pytorch_es.strategies.base import Hyperparameters, Strategy


class XNES(Strategy):
    """XNES for ``dim <= MAX_TRANSFORM_DIM`` (a full ``d x d`` transform)."""

    name = "xnes"
    min_population = 4

    def __init__(self, center: Any, *, population_size: int | None = None, sigma: float = 0.5, lr: float = 1.0,
                 scale_lr: float | None = None, transform_lr: float | None = None,
                 fitness_shaping: Any = "nes", antithetic: bool = False, **common: Any) -> None:
        d = Strategy._dim_of(center)
        if d > MAX_TRANSFORM_DIM:
            raise ValueError(
                f"XNES keeps a full {d} x {d} transform; it serves dim <= {MAX_TRANSFORM_DIM}. "
                "Use SNES or sep-CMA-ES (--algo snes / sep-cma-es) for this problem"
            )
        size = 4 + int(3 * math.log(d)) if population_size is None else population_size
        super().__init__(center, population_size=size, fitness_shaping=fitness_shaping, antithetic=antithetic,
                         **common)
        default = 3 * (3 + math.log(d)) / (5 * d * math.sqrt(d))
        self.sigma = check_positive("sigma", sigma)
        self.B = torch.eye(d, dtype=torch.float64, device=self.device)
        self.optimizer = Hyperparameters(
            lr=check_positive("lr", lr, allow_zero=True),
            scale_lr=check_positive("scale_lr", default if scale_lr is None else scale_lr, allow_zero=True),
            transform_lr=check_positive("transform_lr", default if transform_lr is None else transform_lr,
                                        allow_zero=True))

    def _distribution(self) -> tuple[float, torch.Tensor]:
        return self.sigma, self.B.to(self._center.dtype)

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        u = self.fitness_shaping(fitness).to(torch.float64).to(self.device)
        z = population.noise_matrix().to(torch.float64)
        d = self.dim
        g_delta = u @ z
        g_m = (z.T * u) @ z
        g_m.diagonal().sub_(float(u.sum()))  # - sum(u) I
        g_sigma = float(torch.trace(g_m)) / d
        g_b = g_m
        g_b.diagonal().sub_(g_sigma)  # - g_sigma I
        group = self.param_groups[0]
        self._center.add_((group["lr"] * self.sigma * (self.B @ g_delta)).to(self._center.dtype))
        self.sigma *= math.exp(0.5 * group["scale_lr"] * g_sigma)
        self.B = self.B @ expm(0.5 * group["transform_lr"] * g_b)
        return {"sigma": self.sigma}

    def hyperparameters(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

    def _extra_state(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "B": self.B.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.sigma = check_positive("state sigma", state["sigma"])
        if state["B"].shape != self.B.shape:
            raise ValueError(f"state B has shape {tuple(state['B'].shape)}, expected {tuple(self.B.shape)}")
        self.B = state["B"].to(device=self.device, dtype=torch.float64).clone()
