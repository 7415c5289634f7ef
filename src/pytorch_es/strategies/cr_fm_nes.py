"""CR-FM-NES: fast moving NES with a low-rank + diagonal covariance, O(dim) per member.

Nomura and Ono (2022), "Fast Moving Natural Evolution Strategy for High-Dimensional
Problems" (IEEE CEC), algorithm 1. Covariance ``sigma^2 D (I + v v^T) D``; with
``gamma = 1 + |v|^2``, ``vb = v / |v|``, members ``x_i = m + sigma D y_i``,
``y_i = z_i + (sqrt(gamma) - 1) (vb . z_i) vb`` (mirrored ``z_i``): the population's
``scale`` is ``sigma D`` and its ``low_rank`` U = ``sqrt(sqrt(gamma) - 1) vb``. Ranked best
first, ``w^r_i = max(0, ln(N/2 + 1) - ln i) / sum - 1/N``:

    p_s   <- (1 - c_s) p_s + sqrt(c_s (2 - c_s) mu_eff) sum_i w^r_i z_i
    w     =  w^d (distance weights ~ w^r_hat_i exp(alpha |z_i|), normalised, - 1/N) if |p_s| >= E|N(0,I)|
             else w^r
    eta_s =  1 (moving) | tanh((0.024 N + 0.7 d + 20) / (d + 12)) (|p_s| >= 0.1 chi_d, stagnating)
             | 2 tanh((0.025 N + 0.75 d + 10) / (d + 4)) (converging)
    p_c   <- (1 - c_c) p_c + sqrt(c_c (2 - c_c) mu_eff) D sum_i w_i y_i
    m     <- m + eta_m sigma D sum_i w_i y_i
    sigma <- sigma exp(eta_s / 2 * sum_i w_i (|z_i|^2 - d) / d)

and ``v``, ``D`` by the natural gradient, over the columns ``y_i`` (weight ``eta_B w_i``) and
``p_c / D`` (weight ``c_1``), each with ``a = vb . y``:

    t = a y - (a^2 + gamma) / 2 vb,   s = y^2 - |v|^2 / gamma a (y * vb) - 1
    s <- s - al / gamma ((2 + |v|^2) (t * vb) - |v|^2 (vb . t) vb^2)
    s <- s / H - b / (1 + b vb^2 . (vb^2 / H)) (vb^2 / H) ((vb^2 / H) . s),   H = 2 - (b + 2 al^2) vb^2
    t <- t - al ((2 + |v|^2) (s * vb) - (vb^2 . s) vb)
    v <- v + sum_c w_c t_c / |v|,   D <- D + (sum_c w_c s_c) * D,   D <- D / det(A)^(1/d)

``al = min(1, sqrt(|v|^4 + (2 gamma - sqrt(gamma)) / max vb^2) / (2 + |v|^2))``,
``b = -(1 - al^2) |v|^4 / gamma + 2 al^2``, ``det(A)^(1/d) = exp(mean(ln D) + ln(1 + |v_new|^2) / (2 d))``.
A step that would make ``D`` non-positive or ``v``, ``D`` non-finite is skipped (not in the paper).

Defaults of the paper: ``eta_m = 1`` (``lr``), ``c_1 = (d - 5) / 6 * 2 / ((d + 1.3)^2 + mu_eff)``,
``eta_B = tanh((min(0.02 N, 3 ln d) + 5) / (0.23 d + 25))``, ``alpha = h^-1(d) min(1, sqrt(N/d))``
(``(1 + h^2) e^{h^2/2} / 0.24 = d + 10``), ``v_0 ~ N(0, I/d)`` from the seed, ``D_0 = 1``; CMA-ES's
``c_s``, ``c_c``. Every sum over members is linear in ``z_i``, ``z_i^2`` and the scalars
``vb . z_i`` (:meth:`Population.projections`), so the update reads the noise table a few
times and builds no (population x dim) matrix.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pytorch_es.core.checks import check_positive
from pytorch_es.core.noise import mix_seed
from pytorch_es.core.population import Population
from pytorch_es.strategies.base import Hyperparameters, Strategy


def h_inverse(d: int) -> float:
    """Solve ``(1 + h^2) exp(h^2 / 2) / 0.24 = d + 10`` (Newton, half steps, as the reference)."""
    h = 6.0
    for _ in range(1000):
        f = (1 + h * h) * math.exp(h * h / 2) / 0.24 - 10 - d
        if abs(f) <= 1e-10:
            break
        step = 0.5 * f / ((1 / 0.24) * h * math.exp(h * h / 2) * (3 + h * h))
        h -= step
        if abs(step) < 1e-16:
            break
    return h


class CRFMNES(Strategy):
    """CR-FM-NES. ``sigma``: initial step size; ``population_size``: default ``4 + floor(3 ln d)``
    rounded up to even; ``lr``: ``eta_m`` (default 1). Rank-based: ``fitness_shaping`` is not used."""

    name = "cr-fm-nes"
    min_population = 4

    def __init__(self, center: Any, *, population_size: int | None = None, sigma: float = 0.5,
                 lr: float = 1.0, antithetic: bool = True, **common: Any) -> None:
        d = Strategy._dim_of(center)
        lam = 2 * math.ceil((4 + int(3 * math.log(d))) / 2) if population_size is None else population_size
        super().__init__(center, population_size=lam, antithetic=antithetic, **common)
        self.sigma = check_positive("sigma", sigma)
        self.optimizer = Hyperparameters(lr=check_positive("lr", lr, allow_zero=True))
        self._set_population_size(self.population_size)
        self._fresh_distribution()

    def _set_population_size(self, lam: int) -> None:
        """``population_size`` and what depends on it: the weights and the rates above."""
        d = self.dim
        self.population_size = lam
        hat = (math.log(lam / 2 + 1) - torch.log(torch.arange(1, lam + 1, dtype=torch.float64))).clamp(min=0)
        self.w_hat, self.w_rank = hat, hat / hat.sum() - 1 / lam
        mu_eff = float(1 / ((self.w_rank + 1 / lam) ** 2).sum())
        c1_cma = 2 / ((d + 1.3) ** 2 + mu_eff)
        self.p = {"mu_eff": mu_eff, "c_s": (mu_eff + 2) / (d + mu_eff + 5),
                  "c_c": (4 + mu_eff / d) / (d + 4 + 2 * mu_eff / d), "c_1": c1_cma * (d - 5) / 6,
                  "chi_d": math.sqrt(d) * (1 - 1 / (4 * d) + 1 / (21 * d * d)),
                  "alpha": h_inverse(d) * min(1.0, math.sqrt(lam / d)),
                  "eta_stag": math.tanh((0.024 * lam + 0.7 * d + 20) / (d + 12)),
                  "eta_conv": 2 * math.tanh((0.025 * lam + 0.75 * d + 10) / (d + 4)),
                  "eta_B": math.tanh((min(0.02 * lam, 3 * math.log(d)) + 5) / (0.23 * d + 25))}

    def _fresh_distribution(self, restart: int = 0) -> None:
        """``v ~ N(0, I/d)`` drawn from the seed (and ``restart``, for restarts), ``D = 1``, zero
        paths (``sigma`` is left as it is)."""
        d, f64 = self.dim, {"dtype": torch.float64, "device": self.device}
        seed = mix_seed(self.seed, 0xC0F) if restart == 0 else mix_seed(self.seed, 0xC0F, restart)
        generator = torch.Generator().manual_seed(seed)
        self.v = (torch.randn(d, generator=generator, dtype=torch.float64) / math.sqrt(d)).to(self.device)
        self.D = torch.ones(d, **f64)
        self.p_s, self.p_c = torch.zeros(d, **f64), torch.zeros(d, **f64)

    def _distribution(self) -> tuple[torch.Tensor, None]:
        return (self.sigma * self.D).to(self._center.dtype), None

    def _low_rank(self) -> torch.Tensor:
        norm2 = float(self.v @ self.v)
        return (math.sqrt(math.sqrt(1 + norm2) - 1) * self.v / math.sqrt(norm2)).unsqueeze(0).to(self._center.dtype)

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        p, d, lam, dev = self.p, self.dim, self.population_size, self.device
        order = torch.argsort(fitness, descending=True, stable=True)

        def by_member(by_rank: torch.Tensor) -> torch.Tensor:
            out = torch.empty(lam, dtype=torch.float64)
            out[order] = by_rank
            return out

        def lin(weights: torch.Tensor) -> torch.Tensor:
            return population.linear_sum(weights).to(device=dev, dtype=torch.float64)

        n2 = float(self.v @ self.v)
        gamma, norm_v = 1 + n2, math.sqrt(n2)
        vb, c = self.v / norm_v, math.sqrt(1 + n2) - 1
        a = population.projections(vb.unsqueeze(0))[:, 0].to("cpu", torch.float64)  # vb . z_i
        norms = population.square_norms().to("cpu", torch.float64)  # |z_i|^2
        c_s, c_c = p["c_s"], p["c_c"]
        w_rank = by_member(self.w_rank)
        g_rank = lin(w_rank)
        self.p_s.mul_(1 - c_s).add_(g_rank, alpha=math.sqrt(c_s * (2 - c_s) * p["mu_eff"]))
        ps_norm = float(self.p_s.norm())
        if ps_norm >= p["chi_d"]:  # moving: distance weights favour far, good samples
            hat = by_member(self.w_hat)
            radius = norms.sqrt()
            hat = hat * torch.exp(p["alpha"] * (radius - radius[hat > 0].max()))
            w, eta_sigma = hat / hat.sum() - 1 / lam, 1.0
            g_w = lin(w)
        else:
            w, g_w = w_rank, g_rank
            eta_sigma = p["eta_stag"] if ps_norm >= 0.1 * p["chi_d"] else p["eta_conv"]
        wy = g_w + c * float(w @ a) * vb  # sum_i w_i y_i
        self.p_c.mul_(1 - c_c).add_(self.D * wy, alpha=math.sqrt(c_c * (2 - c_c) * p["mu_eff"]))
        with torch.no_grad():
            self._center.add_((self.lr * self.sigma * self.D * wy).to(self._center.dtype))
        # sums over the columns y_i (weight eta_B w_i) and p_c / D (weight c_1) of y a, y^2, 1, a^2
        omega = p["eta_B"] * w
        l_az, s_aa = lin(omega * a), float((omega * a * a).sum())
        e = self.p_c / self.D
        a_e = float(vb @ e)
        P = math.sqrt(gamma) * (l_az + c * s_aa * vb) + p["c_1"] * a_e * e
        Q = (population.squared_sum(omega).to(device=dev, dtype=torch.float64) + float(omega.sum())
             + 2 * c * vb * l_az + c * c * s_aa * vb.square() + p["c_1"] * e.square())
        W, R = float(omega.sum()) + p["c_1"], gamma * s_aa + p["c_1"] * a_e * a_e
        vv = vb.square()
        al = min(1.0, math.sqrt(n2 * n2 + (2 * gamma - math.sqrt(gamma)) / float(vv.max())) / (2 + n2))
        b = -(1 - al * al) * n2 * n2 / gamma + 2 * al * al
        h = 2 - (b + 2 * al * al) * vv
        inv_h_vv = vv / h
        T = P - vb * (R + gamma * W) / 2
        S = Q - n2 / gamma * vb * P - W
        S = S - al / gamma * ((2 + n2) * T * vb - n2 * vv * (R - gamma * W) / 2)
        denominator = 1 + b * float(vv @ inv_h_vv)
        S = S / h - (b / denominator if denominator else math.inf) * inv_h_vv * float(inv_h_vv @ S)
        T = T - al * ((2 + n2) * S * vb - vb * float(vv @ S))
        v, D = self.v + T / norm_v, self.D + S * self.D
        # not in the paper: a step that would make D non-positive or anything non-finite is
        # rejected (the reference then yields NaN, e.g. on a rotated ill-conditioned ellipsoid)
        accepted = bool(torch.isfinite(v).all() and torch.isfinite(D).all() and (D > 0).all())
        if accepted:
            D = D / math.exp(float(D.log().mean()) + math.log(1 + float(v @ v)) / (2 * d))
            accepted = bool(torch.isfinite(D).all() and (D > 0).all())
        if accepted:
            self.v, self.D = v, D
        self.sigma *= math.exp(eta_sigma / 2 * float(w @ (norms - d)) / d)
        return {"sigma": self.sigma, "ps_norm": ps_norm, "shape_step_rejected": float(not accepted)}

    def hyperparameters(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

    def _extra_state(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "v": self.v.clone(), "D": self.D.clone(), "p_s": self.p_s.clone(),
                "p_c": self.p_c.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.sigma = check_positive("state sigma", state["sigma"])
        for key in ("v", "D", "p_s", "p_c"):
            value = state[key]
            if not isinstance(value, torch.Tensor) or value.shape != (self.dim,):
                raise ValueError(f"state {key} does not match this {type(self).__name__} of dim {self.dim}")
            setattr(self, key, value.to(device=self.device, dtype=torch.float64).clone())
