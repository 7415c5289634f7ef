"""OpenAI-ES: a Gaussian search distribution whose center follows an ES gradient estimate.

Salimans et al. (2017). With members ``theta_i = theta + sigma * eps_i`` and shaped
rewards ``u_i``, the gradient of the expected reward is estimated as

    g = 1 / (N * sigma) * sum_i u_i * eps_i

and handed to a ``torch.optim`` optimizer as ``theta.grad = -g`` (optimizers
minimise). Plain SGD with learning rate ``lr`` gives the original PyTorch-ES rule
``theta += lr / (N * sigma) * sum_i u_i * eps_i``; Adam, ClipUp or any other
optimizer (and its weight decay and ``lr_scheduler``) work the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.optim import Optimizer

from pytorch_es.core.noise import NoiseTable, default_table_size, num_pairs
from pytorch_es.core.parameters import ParametersLike, flatten
from pytorch_es.core.population import Population
from pytorch_es.core.shaping import FitnessShaping, get_fitness_shaping
from pytorch_es.strategies.base import Strategy, as_reward_tensor
from pytorch_es.strategies.clipup import ClipUp

OptimizerFactory = Callable[[list[torch.Tensor]], Optimizer]

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "clipup": ClipUp,
}


def make_optimizer(
    optimizer: str | OptimizerFactory, params: list[torch.Tensor], lr: float, kwargs: dict[str, Any]
) -> Optimizer:
    """Build the optimizer over ``params`` from a name in ``OPTIMIZERS`` or a factory."""
    # The first torch.optim optimizer of a process imports torch._dynamo (about 2 s here;
    # torch 2.13 does it in Optimizer.__init__, and its @_disable_dynamo methods do it on
    # first call). Importing it here, when the strategy is built, keeps that one-off cost
    # out of the first timed generation of a run, without charging it to `import
    # pytorch_es` or to commands that never build an optimizer (eval, play, plot, --help).
    import torch._dynamo  # noqa: F401
    if isinstance(optimizer, str):
        try:
            cls = OPTIMIZERS[optimizer.lower()]
        except KeyError:
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a callable "
                f"params -> torch.optim.Optimizer, got {optimizer!r}"
            ) from None
        return cls(params, lr=lr, **kwargs)
    if callable(optimizer):
        built = optimizer(params)
        if not isinstance(built, Optimizer):
            raise TypeError(
                f"optimizer factory must return a torch.optim.Optimizer, got {type(built).__name__}"
            )
        return built
    raise TypeError(f"optimizer must be a name or a callable, got {type(optimizer).__name__}")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def check_decay(name: str, value: float) -> float:
    """A multiplicative per-iteration decay must lie in (0, 1]."""
    value = check_positive(name, value)
    if value > 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


def check_population_size(population_size: int) -> int:
    if isinstance(population_size, bool) or not isinstance(population_size, int):
        raise TypeError(f"population_size must be an int, got {type(population_size).__name__}")
    if population_size < 2:
        raise ValueError(f"population_size must be >= 2, got {population_size}")
    return population_size


def new_seed() -> int:
    """A fresh random seed (recorded in the strategy's state so the run can be replayed)."""
    return int.from_bytes(os.urandom(8), "little") >> 1


class OpenAIES(Strategy):
    """OpenAI evolution strategy with antithetic sampling and a pluggable optimizer.

    Args:
        center: initial parameters: a 1-D tensor, an ``nn.Module`` or a list of tensors
            (flattened; the model itself is not modified, see ``write_back``).
        population_size: members per generation ``N`` (>= 2). With ``antithetic``,
            an odd ``N`` has one unpaired member.
        sigma: perturbation scale (> 0).
        lr: learning rate given to the optimizer.
        optimizer: ``"sgd"`` (default, the original rule), ``"adam"``, ``"adamw"``,
            ``"clipup"`` or a callable ``params -> torch.optim.Optimizer``.
        optimizer_kwargs: extra arguments for a named optimizer (e.g. weight_decay).
        fitness_shaping: ``"centered_ranks"`` (default), ``"z_score"``, ``"raw"`` or
            a callable ``rewards -> utilities``.
        antithetic: mirrored pairs ``+eps, -eps`` (default True).
        maximize: maximise rewards (default). ``False`` minimises them.
        sigma_decay, sigma_min: after each ``tell``, ``sigma = max(sigma * sigma_decay,
            sigma_min)``.
        seed: the run seed; ``None`` draws one (see ``strategy.seed``).
        noise_table_size: length of the shared noise table (default from ``dim``).
        device: where the center, noise and update live (default: the center's).
    """

    def __init__(
        self,
        center: torch.Tensor | ParametersLike,
        *,
        population_size: int = 50,
        sigma: float = 0.1,
        lr: float = 0.01,
        optimizer: str | OptimizerFactory = "sgd",
        optimizer_kwargs: dict[str, Any] | None = None,
        fitness_shaping: str | FitnessShaping = "centered_ranks",
        antithetic: bool = True,
        maximize: bool = True,
        sigma_decay: float = 1.0,
        sigma_min: float = 0.0,
        seed: int | None = None,
        noise_table_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(center, torch.Tensor) and center.dim() == 1:
            if not center.is_floating_point():
                raise TypeError(f"center has dtype {center.dtype}; expected a floating-point tensor")
            vector = center.detach().clone()
        else:
            vector = flatten(center)
        if vector.numel() == 0:
            raise ValueError("center is empty: expected at least one parameter")
        self.population_size = check_population_size(population_size)
        self.sigma = check_positive("sigma", sigma)
        check_positive("lr", lr, allow_zero=True)
        self.sigma_decay = check_decay("sigma_decay", sigma_decay)
        self.sigma_min = check_positive("sigma_min", sigma_min, allow_zero=True)
        self.fitness_shaping = get_fitness_shaping(fitness_shaping)
        self.antithetic = bool(antithetic)
        self.maximize = bool(maximize)
        self.seed = new_seed() if seed is None else int(seed)
        self.device = torch.device(device) if device is not None else vector.device
        self._center = vector.to(self.device)
        size = default_table_size(vector.numel()) if noise_table_size is None else noise_table_size
        if size <= vector.numel():
            raise ValueError(
                f"noise_table_size must exceed the number of parameters ({vector.numel()}), got {size}"
            )
        self.noise = NoiseTable(self.seed, size, device=self.device, dtype=self._center.dtype)
        self.optimizer = make_optimizer(optimizer, [self._center], lr, optimizer_kwargs or {})
        self.generation = 0

    @property
    def center(self) -> torch.Tensor:
        """The current mean of the search distribution (updated in place by ``tell``)."""
        return self._center

    @property
    def dim(self) -> int:
        return self._center.numel()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def ask(self) -> Population:
        """The population of the current generation (a description; no member matrix)."""
        return Population(
            center=self._center.detach().clone(),
            sigma=self.sigma,
            noise=self.noise,
            generation=self.generation,
            size=self.population_size,
            antithetic=self.antithetic,
        )

    def gradient(self, population: Population, rewards: torch.Tensor) -> torch.Tensor:
        """The ES estimate ``g = 1/(N sigma) sum_i u_i eps_i`` of the reward gradient."""
        utilities = self.fitness_shaping(rewards if self.maximize else -rewards).to(torch.float64)
        n = len(utilities)
        if self.antithetic:
            pairs = num_pairs(n, True)
            weights = torch.zeros(pairs, dtype=torch.float64)
            weights += utilities[0::2]
            weights[: n // 2] -= utilities[1::2]
        else:
            weights = utilities
        total = self.noise.weighted_sum(population.offsets, weights, self.dim)
        return total.div_(n * population.sigma).to(self._center.dtype)

    def tell(self, rewards: Sequence[float] | torch.Tensor) -> dict[str, float]:
        """Update the center from one reward per member of ``ask()``'s population.

        Returns statistics: ``grad_norm``, ``update_norm``, ``sigma``, ``lr``.
        """
        values = as_reward_tensor(rewards, self.population_size)
        population = self.ask()
        gradient = self.gradient(population, values)
        self._center.grad = gradient.neg_()
        self.optimizer.step()
        self._center.grad = None
        update_norm = float((self._center - population.center).norm())
        self.sigma = max(self.sigma * self.sigma_decay, self.sigma_min)
        self.generation += 1
        return {
            "grad_norm": float(gradient.norm()),
            "update_norm": update_norm,
            "sigma": self.sigma,
            "lr": self.lr,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "center": self._center.detach().clone(),
            "sigma": self.sigma,
            "generation": self.generation,
            "seed": self.seed,
            "noise_table_size": self.noise.size,
            "population_size": self.population_size,
            "antithetic": self.antithetic,
            "maximize": self.maximize,
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        center = state["center"]
        if center.shape != self._center.shape:
            raise ValueError(
                f"state has a center of shape {tuple(center.shape)}, this strategy has "
                f"{tuple(self._center.shape)}"
            )
        with torch.no_grad():
            self._center.copy_(center)
        self.sigma = float(state["sigma"])
        self.generation = int(state["generation"])
        self.seed = int(state["seed"])
        self.population_size = int(state["population_size"])
        self.antithetic = bool(state["antithetic"])
        self.maximize = bool(state["maximize"])
        self.noise = NoiseTable(
            self.seed, int(state["noise_table_size"]), device=self.device, dtype=self._center.dtype
        )
        self.optimizer.load_state_dict(state["optimizer"])
