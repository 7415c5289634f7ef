"""CMA-ES: covariance matrix adaptation with rank-one and rank-mu updates and CSA.

Hansen (2016), "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772, table 1
and appendix A (defaults, negative weights included). With ``C = B D^2 B^T``, members
``x_i = m + sigma * B D z_i`` (the population's ``transform`` is ``A = B D``), the
``lambda`` members ranked best first, ``y_i = B D z_i`` and ``<y>_w = sum_{i<=mu} w_i y_i``:

    m     <- m + c_m sigma <y>_w
    p_s   <- (1 - c_s) p_s + sqrt(c_s (2 - c_s) mu_eff) B <z>_w
    sigma <- sigma exp(min(1, c_s / d_s (|p_s| / E|N(0, I)| - 1)))
    p_c   <- (1 - c_c) p_c + h_s sqrt(c_c (2 - c_c) mu_eff) <y>_w
    C     <- (1 + c_1 delta(h_s) - c_1 - c_mu sum_j w_j) C + c_1 p_c p_c^T
             + c_mu sum_i w_i^o y_i y_i^T,   w_i^o = w_i (w_i >= 0) or w_i n / |z_i|^2

``lambda = 4 + floor(3 ln n)``, ``mu = floor(lambda / 2)``, the weights and learning
rates of table 1 (:func:`cma_parameters`). ``csa`` picks the step-size constants:

    "tutorial" (default)  c_s = (mu_eff + 2) / (n + mu_eff + 5),
                          d_s = 1 + 2 max(0, sqrt((mu_eff - 1) / (n + 1)) - 1) + c_s
    "pycma"               pycma 4.5's: c_s = min(1/2, (mu_eff + 2) / (n + mu_eff + 3)),
                          d_s = 1 + 2 max(0, a sqrt((mu_eff - 1) / (n + 1)) - 1) + c_s,
                          a = max(1, 3 (1 - 2^(-n / 9)))

``c_s`` differs a little at every ``lambda``; ``d_s`` only in large populations (IPOP,
BIPOP), where pycma damps more (4.44 against 1.44 at ``lambda = 120``, ``n = 40``), so
``sigma`` falls more slowly. ``bipop-cma-es`` defaults to ``"pycma"`` (docs/strategies.md).

``B, D`` are refreshed from ``C`` when ``generation - last >= 1 / (10 n (c_1 + c_mu))``
(lazy eigendecomposition). The state is float64 whatever the center's dtype. ``lr`` is
``c_m`` (default 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pytorch_es.core.checks import check_positive
from pytorch_es.core.population import MAX_TRANSFORM_DIM, Population
from pytorch_es.strategies.base import Hyperparameters, Strategy

CSA_CONSTANTS = ("tutorial", "pycma")


def check_csa(csa: str) -> str:
    if csa not in CSA_CONSTANTS:
        raise ValueError(f"csa must be one of {list(CSA_CONSTANTS)}, got {csa!r}")
    return csa


def cma_parameters(n: int, lam: int, *, separable: bool = False, csa: str = "tutorial") -> dict[str, Any]:
    """Weights and learning rates of Hansen (2016), table 1 (``separable``: the
    sep-CMA-ES rates of Ros and Hansen (2008), in pycma's refined form), with the
    step-size constants ``csa`` (see the module docstring)."""
    mu = lam // 2
    raw = torch.tensor([math.log((lam + 1) / 2) - math.log(i) for i in range(1, lam + 1)], dtype=torch.float64)
    positive, negative = raw[:mu], raw[mu:]
    mu_eff = float(positive.sum() ** 2 / (positive**2).sum())
    mu_eff_neg = float(negative.sum() ** 2 / (negative**2).sum()) if len(negative) and negative.any() else 0.0
    if separable:
        c_1 = 1 / (n + 2 * math.sqrt(n) + mu_eff / n)
        c_mu = min(1 - c_1, (0.25 + mu_eff + 1 / mu_eff - 2) / (n + 4 * math.sqrt(n) + mu_eff / 2))
        c_c = (1 + 1 / n + mu_eff / n) / (math.sqrt(n) + 1 / n + 2 * mu_eff / n)
    else:
        c_1 = 2 / ((n + 1.3) ** 2 + mu_eff)
        c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
        c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    if check_csa(csa) == "pycma":
        c_s = min(0.5, (mu_eff + 2) / (n + mu_eff + 3))
        inner = max(1.0, 3 * (1 - 0.5 ** (n / 9)))
    else:
        c_s, inner = (mu_eff + 2) / (n + mu_eff + 5), 1.0
    d_s = 1 + 2 * max(0.0, inner * math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_s
    weights = torch.zeros(lam, dtype=torch.float64)
    weights[:mu] = positive / positive.sum()
    if mu_eff_neg > 0:
        alpha = min(1 + c_1 / c_mu, 1 + 2 * mu_eff_neg / (mu_eff + 2), (1 - c_1 - c_mu) / (n * c_mu))
        weights[mu:] = alpha * negative / negative.abs().sum()
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return {"mu": mu, "mu_eff": mu_eff, "weights": weights, "c_1": c_1, "c_mu": c_mu, "c_c": c_c,
            "c_s": c_s, "d_s": d_s, "chi_n": chi_n}


class CMAES(Strategy):
    """CMA-ES for small and medium dimensions (``dim <= MAX_TRANSFORM_DIM``).

    ``sigma``: initial step size; ``population_size``: default ``4 + floor(3 ln n)``
    (>= 4); ``lr``: ``c_m``; ``csa``: ``"tutorial"`` or ``"pycma"`` step-size constants
    (module docstring; default ``default_csa``). Rank-based: ``fitness_shaping`` is not
    used. Not mirrored by default (``antithetic=False``)."""

    name = "cma-es"
    min_population = 4
    separable = False
    default_csa = "tutorial"

    def __init__(self, center: Any, *, population_size: int | None = None, sigma: float = 0.5,
                 lr: float = 1.0, csa: str | None = None, antithetic: bool = False, **common: Any) -> None:
        dim = Strategy._dim_of(center)
        if not self.separable and dim > MAX_TRANSFORM_DIM:
            raise ValueError(
                f"CMA-ES keeps a full {dim} x {dim} covariance matrix, which it ships to every worker and "
                f"decomposes each update; it serves dim <= {MAX_TRANSFORM_DIM}. For this problem use "
                "sep-CMA-ES (--algo sep-cma-es), SNES or PGPE (diagonal, O(dim) per member)"
            )
        lam = 4 + int(3 * math.log(dim)) if population_size is None else population_size
        super().__init__(center, population_size=lam, antithetic=antithetic, **common)
        self.sigma = check_positive("sigma", sigma)
        self.optimizer = Hyperparameters(lr=check_positive("lr", lr))
        self.csa = check_csa(self.default_csa if csa is None else csa)
        self.p = cma_parameters(self.dim, self.population_size, separable=self.separable, csa=self.csa)
        n = self.dim
        f64 = {"dtype": torch.float64, "device": self.device}
        self.p_s = torch.zeros(n, **f64)
        self.p_c = torch.zeros(n, **f64)
        self.C = torch.ones(n, **f64) if self.separable else torch.eye(n, **f64)
        self.B = None if self.separable else torch.eye(n, **f64)
        self.D = torch.ones(n, **f64)
        self.eigen_generation = 0

    def _distribution(self) -> tuple[float, torch.Tensor | None]:
        if self.separable:
            return (self.sigma * self.D).to(self._center.dtype), None
        return self.sigma, (self.B * self.D).to(self._center.dtype)

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        p, n, mu = self.p, self.dim, self.p["mu"]
        order = torch.argsort(fitness, descending=True, stable=True)
        w = p["weights"]
        w_o = w.clone()  # by rank
        negative = w < 0
        if self.separable:  # noise-table reductions in one read: no (population x dim) matrix
            norms = torch.ones(self.population_size, dtype=torch.float64)  # |z_i|^2, needed where w_i < 0
            norms[negative] = population.square_norms(order[negative]).to("cpu", torch.float64)
            w_o[negative] *= n / norms[negative].clamp(min=1e-300)
            member_w = torch.zeros(self.population_size, dtype=torch.float64)
            member_w[order[:mu]] = w[:mu]
            square_w = torch.zeros(self.population_size, dtype=torch.float64)
            square_w[order] = w_o
            z_w, squared = population.linear_and_squared_sums(member_w, square_w)
            z_w = z_w.to(device=self.device, dtype=torch.float64)
        else:
            z = population.noise_matrix(order).to(torch.float64)  # ranked, best first
            z_w = w[:mu].to(self.device) @ z[:mu]
            w_o[negative] *= n / z[negative.to(z.device)].square().sum(1).cpu().clamp(min=1e-300)
        y_w = z_w * self.D if self.separable else self.B @ (self.D * z_w)
        c_s, c_c, c_1, c_mu = p["c_s"], p["c_c"], p["c_1"], p["c_mu"]
        with torch.no_grad():
            self._center.add_((self.lr * self.sigma * y_w).to(self._center.dtype))
        whitened = z_w if self.separable else self.B @ z_w
        self.p_s.mul_(1 - c_s).add_(whitened, alpha=math.sqrt(c_s * (2 - c_s) * p["mu_eff"]))
        norm = float(self.p_s.norm())
        g = self.generation + 1
        h_s = norm / math.sqrt(1 - (1 - c_s) ** (2 * g)) < (1.4 + 2 / (n + 1)) * p["chi_n"]
        self.p_c.mul_(1 - c_c)
        if h_s:
            self.p_c.add_(y_w, alpha=math.sqrt(c_c * (2 - c_c) * p["mu_eff"]))
        delta = 0.0 if h_s else c_c * (2 - c_c)
        decay = 1 + c_1 * delta - c_1 - c_mu * float(w.sum())
        if self.separable:  # sum_i w_o,i y_i^2 = D^2 (sum_i w_o,i (z_i^2 - 1) + sum_i w_o,i)
            rank_mu = (squared.to(device=self.device, dtype=torch.float64) + float(square_w.sum())) * self.C
            self.C.mul_(decay).add_(c_1 * self.p_c.square()).add_(c_mu * rank_mu)
            self.C.clamp_(min=1e-300)
            self.D = self.C.sqrt()
        else:
            self.C.mul_(decay).add_(torch.outer(self.p_c, self.p_c), alpha=c_1)
            self.C.add_(self._rank_mu(z, w_o.to(self.device)), alpha=c_mu)
            if g - self.eigen_generation >= 1 / (10 * n * (c_1 + c_mu)):
                self._decompose()
                self.eigen_generation = g
        self.sigma *= math.exp(min(1.0, c_s / p["d_s"] * (norm / p["chi_n"] - 1)))  # capped as in pycma
        return {"sigma": self.sigma}

    def _rank_mu(self, z: torch.Tensor, w_o: torch.Tensor) -> torch.Tensor:
        """``sum_i w_o,i y_i y_i^T`` with ``y_i = B D z_i``: from the ``y_i`` (``4 lambda n^2``
        flops), or above ``lambda = 4 n`` as ``(B D) (sum_i w_o,i z_i z_i^T) (B D)^T``
        (``2 lambda n^2 + 4 n^3``), which large IPOP/BIPOP populations take."""
        if self.population_size <= 4 * self.dim:
            y = (z * self.D) @ self.B.T
            return (y.T * w_o) @ y
        transform = self.B * self.D
        return transform @ ((z.T * w_o) @ z) @ transform.T

    def _decompose(self) -> None:
        self.C = (self.C + self.C.T) / 2
        eigenvalues, self.B = torch.linalg.eigh(self.C)
        self.D = eigenvalues.clamp(min=1e-300).sqrt()

    def hyperparameters(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "csa": self.csa}

    def _set_hyperparameters(self, values: dict[str, Any]) -> None:
        csa = check_csa(values.get("csa", "tutorial"))  # states from before the option: tutorial
        if csa != self.csa:
            self.csa, self.p = csa, cma_parameters(self.dim, self.population_size, separable=self.separable, csa=csa)

    def _extra_state(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "p_s": self.p_s.clone(), "p_c": self.p_c.clone(), "C": self.C.clone(),
                "B": None if self.B is None else self.B.clone(), "D": self.D.clone(),
                "eigen_generation": self.eigen_generation}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.sigma = check_positive("state sigma", state["sigma"])
        for key in ("p_s", "p_c", "C", "B", "D"):
            value = state[key]
            current = getattr(self, key)
            if (value is None) != (current is None) or (value is not None and value.shape != current.shape):
                raise ValueError(f"state {key} does not match this {type(self).__name__} of dim {self.dim}")
            setattr(self, key, None if value is None else value.to(device=self.device, dtype=torch.float64).clone())
        self.eigen_generation = int(state["eigen_generation"])
