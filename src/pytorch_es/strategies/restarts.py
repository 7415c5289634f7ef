"""Restarts with growing (or alternating) populations: IPOP and BIPOP, for CMA-ES and CR-FM-NES.

IPOP: Auger and Hansen (2005), "A Restart CMA Evolution Strategy With Increasing
Population Size" (CEC). BIPOP: Hansen (2009), "Benchmarking a BI-Population CMA-ES on
the BBOB-2009 Function Testbed" (GECCO workshop). :class:`Restarts` wraps a strategy
class (``class IPOPCMAES(Restarts, CMAES)``). A run ends when one criterion of Hansen
(2009) holds (fitness ``f`` larger is better, the sign of ``maximize`` applied):

    TolFun        max - min of this generation's f and of the best f over the last
                  10 + ceil(30 n / lambda) generations < tol_fun
    TolX          every coordinate's standard deviation < tol_x, and sigma |p_c,i| < tol_x
    ConditionCov  the covariance's condition number > 1e14
    MaxIter       100 + 50 (n + 3)^2 / sqrt(lambda) generations in this run

(the strategy supplies TolX and ConditionCov, :meth:`Restarts._converged`), and the next run
restarts from the initial center with a fresh distribution:

    IPOP   lambda <- 2 lambda, sigma = sigma_0
    BIPOP  large regime: lambda_L = 2^k lambda_0, sigma = sigma_0 (k-th large run);
           small regime, chosen while its runs (the first run counts as small) have used
           fewer evaluations than the large runs:
           lambda_S = floor(lambda_0 (lambda_L / lambda_0)^(U_1^2)),  lambda_L the last large one,
           sigma = sigma_0 10^(-2 U_2),  at most E_L / (2 lambda_S) generations,
           E_L the large runs' evaluations, U_1, U_2 ~ U(0, 1) drawn from (seed, restart)

(BIPOP's budget rules as pycma 4.5's ``cma.fmin`` implements Hansen (2009): the first run on
the small budget, each small run capped at half the large budget.)

CMA-ES (:class:`IPOPCMAES`): the standard deviations are ``sigma sqrt(C_ii)``, the condition
number ``(max D / min D)^2``; a fresh run has ``C = I``. CR-FM-NES (:class:`IPOPCRFMNES`, with
Nomura and Ono (2022)'s covariance ``sigma^2 D (I + v v^T) D``): the standard deviations are
``sigma D_i sqrt(1 + v_i^2)``, the condition number is bounded by ``(max D / min D)^2 (1 + |v|^2)``;
a fresh run has ``D = 1`` and a new ``v ~ N(0, I/d)`` drawn from (seed, restart).

``population_size`` is the first run's lambda; ``strategy.population_size`` follows the
restarts (evaluators take any size). ``restarts`` counts them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pytorch_es.core.checks import check_population_size, check_positive
from pytorch_es.core.noise import mix_seed
from pytorch_es.core.population import Population
from pytorch_es.strategies.cma_es import CMAES, cma_parameters
from pytorch_es.strategies.cr_fm_nes import CRFMNES

MAX_CONDITION = 1e14


class Restarts:
    """IPOP / BIPOP restarts of the strategy class after it in the bases; ``tol_fun`` (1e-12)
    and ``tol_x`` (1e-12 * sigma) as above. The strategy provides ``sigma`` and

    * ``_set_population_size(lam)``: set ``population_size`` and what depends on it;
    * ``_fresh_distribution(restart)``: the covariance and paths of run ``restart``
      (``sigma`` and the center are set by :class:`Restarts`);
    * ``_converged()``: TolX or ConditionCov holds.
    """

    regime = "ipop"

    def __init__(self, center: Any, *, tol_fun: float = 1e-12, tol_x: float | None = None, **kwargs: Any) -> None:
        super().__init__(center, **kwargs)
        self.tol_fun = check_positive("tol_fun", tol_fun)
        self.tol_x = check_positive("tol_x", 1e-12 * self.sigma if tol_x is None else tol_x)
        self.sigma0, self.lambda0 = self.sigma, self.population_size
        self.center0 = self._center.detach().clone()
        self.restarts, self.run_generation, self.large_runs = 0, 0, 0
        self.evaluations = {"large": 0, "small": 0}
        self.regime_now = "small"  # BIPOP's budget accounting: the first run counts as small
        self.history: list[float] = []

    # ----------------------------------------------------------------- restarts

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        stats = super()._update(population, fitness)
        self.run_generation += 1
        self.evaluations[self.regime_now] += len(fitness)
        self.history.append(float(fitness.max()))
        if self._should_stop(fitness):
            self._restart()
        return {**stats, "restarts": float(self.restarts)}

    @property
    def run_limit(self) -> float:
        """The small regime's cap on this run's generations: half the large runs' evaluations
        (constant while a small run lasts, so derived, not stored); none for other runs."""
        if self.regime != "bipop" or self.regime_now != "small" or self.restarts == 0:
            return math.inf
        return 0.5 * self.evaluations["large"] / self.population_size

    def _should_stop(self, fitness: torch.Tensor) -> bool:
        n, lam = self.dim, self.population_size
        window = 10 + math.ceil(30 * n / lam)
        recent = self.history[-window:]
        if len(self.history) >= window and max(max(recent), float(fitness.max())) - min(
            min(recent), float(fitness.min())
        ) < self.tol_fun:
            return True
        if self._converged():
            return True
        return self.run_generation >= min(self.run_limit, 100 + 50 * (n + 3) ** 2 / math.sqrt(lam))

    def _restart(self) -> None:
        self.restarts += 1
        sigma = self.sigma0
        if self.regime == "ipop":
            lam = 2 * self.population_size
        elif self.evaluations["small"] >= max(1, self.evaluations["large"]):
            self.large_runs += 1
            lam, self.regime_now = self.lambda0 * 2**self.large_runs, "large"
        else:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, 0xB1909, self.restarts))
            u_size, u_sigma = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            lam = max(self.min_population, int(self.lambda0 * 2 ** (self.large_runs * u_size**2)))
            sigma, self.regime_now = self.sigma0 * 10 ** (-2 * u_sigma), "small"
        self._set_population_size(int(lam))
        self.sigma = float(sigma)
        with torch.no_grad():
            self._center.copy_(self.center0)
        self._fresh_distribution(self.restarts)
        self.run_generation, self.history = 0, []

    # ----------------------------------------------------------------- state

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "tol_fun": self.tol_fun, "tol_x": self.tol_x}

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "restart": {
            "sigma0": self.sigma0, "lambda0": self.lambda0, "center0": self.center0.clone(),
            "restarts": self.restarts, "run_generation": self.run_generation, "large_runs": self.large_runs,
            "evaluations": dict(self.evaluations), "regime_now": self.regime_now, "history": list(self.history)}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        r = state["restart"]
        self.sigma0, self.lambda0 = float(r["sigma0"]), int(r["lambda0"])
        self.center0 = r["center0"].to(self._center).clone()
        self.restarts, self.run_generation, self.large_runs = int(r["restarts"]), int(r["run_generation"]), int(
            r["large_runs"])
        self.evaluations = {k: int(v) for k, v in r["evaluations"].items()}
        self.regime_now, self.history = str(r["regime_now"]), [float(v) for v in r["history"]]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """As :meth:`Strategy.load_state_dict`; the state's population size may have grown
        by restarts, but its first run's must equal this strategy's."""
        first = state.get("restart", {}).get("lambda0") if isinstance(state, dict) else None
        if first is not None and first != self.lambda0:
            raise ValueError(f"state is for population_size {first}, this strategy has {self.lambda0}")
        previous = self.population_size
        if first is not None:
            check_population_size(state["population_size"], self.min_population)
            self._set_population_size(int(state["population_size"]))
        try:
            super().load_state_dict(state)
        except BaseException:
            self._set_population_size(previous)
            raise


class IPOPCMAES(Restarts, CMAES):
    """CMA-ES with IPOP restarts; arguments of :class:`CMAES` and ``tol_fun``, ``tol_x``."""

    name = "ipop-cma-es"

    def _set_population_size(self, lam: int) -> None:
        self.population_size = lam
        self.p = cma_parameters(self.dim, lam, separable=self.separable, csa=self.csa)

    def _fresh_distribution(self, restart: int) -> None:
        f64 = {"dtype": torch.float64, "device": self.device}
        self.p_s.zero_()
        self.p_c.zero_()
        self.C = torch.ones_like(self.C) if self.separable else torch.eye(self.dim, **f64)
        self.B = None if self.separable else torch.eye(self.dim, **f64)
        self.D = torch.ones_like(self.D)
        self.eigen_generation = self.generation + 1

    def _converged(self) -> bool:
        diagonal = self.C if self.separable else self.C.diagonal()
        if bool((self.sigma * diagonal.sqrt() < self.tol_x).all()) and bool(
            (self.sigma * self.p_c.abs() < self.tol_x).all()
        ):
            return True
        return float(self.D.max() / self.D.min()) ** 2 > MAX_CONDITION


class BIPOPCMAES(IPOPCMAES):
    """BIPOP-CMA-ES; arguments as :class:`IPOPCMAES`, but ``csa`` defaults to ``"pycma"``
    (pycma 4.5's larger step-size damping for large populations: on 40-D Rastrigin it
    matches pycma's BIPOP, where the tutorial's constants fall behind; docs/strategies.md)."""

    name = "bipop-cma-es"
    regime = "bipop"
    default_csa = "pycma"


class IPOPCRFMNES(Restarts, CRFMNES):
    """CR-FM-NES with IPOP restarts; arguments of :class:`CRFMNES` and ``tol_fun``, ``tol_x``."""

    name = "ipop-cr-fm-nes"

    def _converged(self) -> bool:
        std = self.sigma * self.D * (1 + self.v.square()).sqrt()
        if bool((std < self.tol_x).all()) and bool((self.sigma * self.p_c.abs() < self.tol_x).all()):
            return True
        return float(self.D.max() / self.D.min()) ** 2 * (1 + float(self.v @ self.v)) > MAX_CONDITION
