"""The ask/tell protocol and the base class every strategy inherits.

:class:`Strategy` owns what all strategies share: the center and the noise table,
reward validation, ``maximize``, fitness shaping, the generation counter,
best-so-far tracking, bounds, ask/tell pairing and a complete ``state_dict()``. A
strategy writes only

* ``_distribution()``: the scale (and transform) of the current generation, and
  ``_low_rank()`` for a low-rank + diagonal strategy (default ``None``);
* ``_update(population, fitness)``: the update from fitness values (larger is
  better, the sign of ``maximize`` already applied), returning statistics;
* ``_extra_state()`` / ``_load_extra_state(state)``: its own tensors, and
  ``hyperparameters()`` / ``_set_hyperparameters()``: its settings.

Hyperparameters that users tune during a run live in ``strategy.param_groups`` (the
``param_groups`` of ``strategy.optimizer``, a ``torch.optim.Optimizer``), so a
``torch.optim.lr_scheduler`` drives ``lr`` and a loop may set any other key, as with
torch optimizers.

Pairing rule: ``ask()`` is a pure function of the strategy's state (call it any
number of times per generation); ``tell(rewards)`` always refers to the current
generation, and learns from the population ``ask()`` returned (settings changed in
between apply from the next generation). Once ``ask()`` has been used, a second
``tell()`` without a new ``ask()`` is refused, and ``tell(rewards, population=p)``
checks that ``p`` is the current generation.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim import optimizer as torch_optimizer_module

from pytorch_es.core.checks import (  # noqa: F401 - check_decay, check_fraction: re-exported for older imports
    check_decay,
    check_device,
    check_fraction,
    check_population_size,
    check_positive,
    check_reward,
)
from pytorch_es.core.noise import NoiseTable, default_table_size
from pytorch_es.core.parameters import ParametersLike, flatten
from pytorch_es.core.population import Population, scale_stats
from pytorch_es.core.shaping import FITNESS_SHAPINGS, FitnessShaping, get_fitness_shaping

_CPU = torch.device("cpu")


def as_scale(name: str, value: float | torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """A positive finite per-parameter scale from a number or a tensor of the center's shape."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            value = float(value)
        elif value.shape != center.shape:
            raise ValueError(
                f"{name} must be a number or a tensor of shape {tuple(center.shape)}, got shape {tuple(value.shape)}"
            )
        else:
            tensor = value.detach().to(device=center.device, dtype=center.dtype).clone()
            if not bool((torch.isfinite(tensor) & (tensor > 0)).all()):
                raise ValueError(f"{name} must be finite and > 0 everywhere")
            return tensor
    check_positive(name, value)
    return torch.full_like(center, float(value))


def new_seed() -> int:
    """A fresh random seed (recorded in the strategy's state so the run can be replayed)."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def shaping_name(shaping: FitnessShaping) -> str | None:
    """The registered name of a shaping function, or None for a user's callable."""
    for name, function in FITNESS_SHAPINGS.items():
        if function is shaping:
            return name
    return None


def as_center(center: torch.Tensor | ParametersLike) -> torch.Tensor:
    """A private flat floating-point copy of ``center``; refuses empty or non-finite ones."""
    if isinstance(center, torch.Tensor) and center.dim() == 1:
        if not center.is_floating_point():
            raise TypeError(f"center has dtype {center.dtype}; expected a floating-point tensor")
        vector = center.detach().clone()
    else:
        vector = flatten(center)
    if vector.numel() == 0:
        raise ValueError("center is empty: expected at least one parameter")
    bad = (~torch.isfinite(vector)).nonzero()
    if len(bad):
        index = int(bad[0])
        raise ValueError(f"center[{index}] is {vector[index].item()}; the center must be finite")
    return vector


def as_bounds(
    bounds: tuple[Any, Any] | None, center: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` (scalars or tensors of the center's shape) as two tensors."""
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (low, high) of numbers or tensors, got {bounds!r}")
    out = []
    for name, value in zip(("low", "high"), bounds):
        tensor = torch.as_tensor(value, dtype=center.dtype).to(center.device)
        if tensor.dim() == 0:
            tensor = tensor.expand(center.shape).clone()
        if tensor.shape != center.shape:
            raise ValueError(
                f"bounds {name} must be a number or have shape {tuple(center.shape)}, got {tuple(tensor.shape)}"
            )
        if torch.isnan(tensor).any():
            raise ValueError(f"bounds {name} contains NaN")
        out.append(tensor)
    low, high = out
    if not bool((low < high).all()):
        index = int((low >= high).nonzero()[0])
        raise ValueError(
            f"bounds need low < high; at index {index} low={low[index].item()} >= high={high[index].item()}"
        )
    outside = ((center < low) | (center > high)).nonzero()
    if len(outside):
        index = int(outside[0])
        raise ValueError(
            f"center[{index}] = {center[index].item()} lies outside bounds [{low[index].item()}, {high[index].item()}]"
        )
    return low, high


class Hyperparameters(Optimizer):
    """A ``torch.optim.Optimizer`` that only holds ``param_groups`` (its ``step`` does
    nothing), so schedulers can drive a strategy's ``lr`` and other settings."""

    def __init__(self, **settings: float) -> None:
        super().__init__([torch.zeros(1, requires_grad=True)], dict(settings))

    def step(self, closure: Any = None) -> None:
        return None


def step_is_watched(optimizer: Optimizer) -> bool:
    """Whether anything observes ``optimizer.step()``: an lr scheduler wraps it (torch.optim
    sets the instance's ``step``), or step hooks are registered on it or globally. A strategy
    whose update needs no optimizer arithmetic skips the call when nothing watches it: torch's
    step wrapper (profiler record, hook loops, grad mode) costs 15 to 30 us a generation, a
    fifth of ask + tell at dim 100."""
    if "step" in optimizer.__dict__ or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
        return True
    # torch's registries of global hooks (private names; if a release renames them, assume watched)
    return bool(getattr(torch_optimizer_module, "_global_optimizer_pre_hooks", True)
                or getattr(torch_optimizer_module, "_global_optimizer_post_hooks", True))


class Strategy(ABC):
    """An evolution strategy over a flat parameter vector (see the module docstring).

    Common arguments of every strategy:
        center: initial parameters (1-D tensor, ``nn.Module`` or list of tensors).
        population_size: members per generation (at least ``min_population``).
        fitness_shaping: ``"centered_ranks"``, ``"z_score"``, ``"raw"``, ``"nes"`` or a
            callable ``rewards -> utilities`` (rank-based strategies ignore it).
        maximize: maximise rewards (default); ``False`` minimises them.
        antithetic: mirrored pairs ``+z, -z``.
        bounds: ``None`` or ``(low, high)``, numbers or tensors of the center's shape:
            every member is clipped into the box before it is evaluated (the strategy
            learns from the unclipped sample) and the center is kept inside it.
        seed: the run seed (``None`` draws one; see ``strategy.seed``).
        noise_table_size: length of the shared noise table (default from ``dim``).
        device: where the center, noise and update live (default: the center's).
    """

    name: str = "strategy"
    min_population: int = 2

    def __init__(
        self,
        center: torch.Tensor | ParametersLike,
        *,
        population_size: int,
        fitness_shaping: str | FitnessShaping = "centered_ranks",
        maximize: bool = True,
        antithetic: bool = True,
        bounds: tuple[Any, Any] | None = None,
        seed: int | None = None,
        noise_table_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        vector = as_center(center)
        self.population_size = check_population_size(population_size, self.min_population)
        self.fitness_shaping = get_fitness_shaping(fitness_shaping)
        self.antithetic = bool(antithetic)
        self.maximize = bool(maximize)
        self.seed = new_seed() if seed is None else int(seed)
        self.device = check_device(device) if device is not None else vector.device
        self._center = vector.to(self.device)
        self.bounds = as_bounds(bounds, self._center)
        size = default_table_size(vector.numel()) if noise_table_size is None else noise_table_size
        if size <= vector.numel():
            raise ValueError(
                f"noise_table_size must exceed the number of parameters ({vector.numel()}), got {size}"
            )
        self.noise = NoiseTable(self.seed, size, device=self.device, dtype=self._center.dtype)
        self.generation = 0
        self.best_fitness: float | None = None  # best of maximize-signed rewards so far
        self._best_member: torch.Tensor | None = None
        self._best_source: tuple[Population, int] | None = None  # built on first read of best_member
        self._asked_generation: int | None = None
        self._asked_population: Population | None = None

    @staticmethod
    def _dim_of(center: Any) -> int:
        """The dimension of ``center`` before the base has checked it (for size defaults)."""
        return as_center(center).numel()

    # ----------------------------------------------------------------- what subclasses write

    @abstractmethod
    def _distribution(self) -> tuple[float | torch.Tensor, torch.Tensor | None]:
        """``(scale, transform)`` of the current generation (transform may be None)."""

    @abstractmethod
    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        """Update from float64 ``fitness`` (larger is better); return statistics."""

    def _low_rank(self) -> torch.Tensor | None:
        """``None``, or the ``(k, dim)`` factor U of members ``center + scale * (z + U^T U z)``."""
        return None

    def hyperparameters(self) -> dict[str, Any]:
        """The strategy's settings, saved in ``state_dict()`` (numbers, strings, bools)."""
        return {}

    def _set_hyperparameters(self, values: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore (and check) what :meth:`hyperparameters` returned."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    # ----------------------------------------------------------------- the protocol

    @property
    def center(self) -> torch.Tensor:
        """The current mean of the search distribution (updated in place by ``tell``)."""
        return self._center

    @property
    def dim(self) -> int:
        return self._center.numel()

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The tunable settings (``lr`` and the strategy's own), as in torch.optim."""
        return self.optimizer.param_groups

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    @property
    def best_member(self) -> torch.Tensor | None:
        """The best member seen so far (parameters), ``None`` before any tell; built from its
        population's description when first read (a huge scale gives inf, not an error)."""
        if self._best_source is not None:
            population, index = self._best_source
            self._best_member, self._best_source = population.members([index])[0], None
        return self._best_member

    @best_member.setter
    def best_member(self, value: torch.Tensor | None) -> None:
        self._best_member, self._best_source = value, None

    @property
    def best_reward(self) -> float | None:
        """The best reward seen so far (in the caller's sign), ``None`` before any tell."""
        if self.best_fitness is None:
            return None
        return self.best_fitness if self.maximize else -self.best_fitness

    def _population(self) -> Population:
        scale, transform = self._distribution()
        low_rank = self._low_rank()
        if isinstance(scale, torch.Tensor):
            scale = scale.detach().clone()
        low, high = self.bounds if self.bounds is not None else (None, None)
        return Population(
            center=self._center.detach().clone(),
            scale=scale,
            noise=self.noise,
            generation=self.generation,
            size=self.population_size,
            antithetic=self.antithetic,
            seed=self.seed,
            transform=None if transform is None else transform.detach().clone(),
            low_rank=None if low_rank is None else low_rank.detach().clone(),
            low=low,
            high=high,
        )

    def ask(self) -> Population:
        """The population of the current generation (a description; no member matrix)."""
        self._asked_generation = self.generation
        self._asked_population = self._population()
        return self._asked_population

    def tell(
        self, rewards: Sequence[float] | torch.Tensor, population: Population | None = None
    ) -> dict[str, float]:
        """Update from one reward per member of the current generation's population.

        Returns statistics: ``update_norm``, ``lr``, the scale's ``scale_mean``,
        ``scale_min``, ``scale_max`` and the strategy's own.
        """
        values = as_reward_tensor(rewards, self.population_size)
        if population is not None and (population.generation != self.generation or population.seed != self.seed):
            raise ValueError(
                f"tell() got the population of generation {population.generation} (seed {population.seed}), "
                f"but this strategy is at generation {self.generation} (seed {self.seed}): ask() again"
            )
        if self._asked_generation is not None and self._asked_generation != self.generation:
            raise ValueError(
                f"tell() for generation {self.generation} without a matching ask(): the last ask() was for "
                f"generation {self._asked_generation}; call ask() before each tell()"
            )
        asked = self._asked_population
        current = asked if asked is not None and asked.generation == self.generation else self._population()
        self._asked_population = None
        fitness = values if self.maximize else -values
        best_value, best_index = torch.max(fitness, 0)  # the first of equal maxima, as argmax
        if self.best_fitness is None or float(best_value) > self.best_fitness:
            self.best_fitness = float(best_value)
            self._best_source = (current, int(best_index))
        stats = self._update(current, fitness)
        if isinstance(self.optimizer, Hyperparameters) and step_is_watched(self.optimizer):
            self.optimizer.step()  # a no-op that tells lr schedulers (and hooks) a step happened
        if self.bounds is not None:
            with torch.no_grad():
                self._center.copy_(torch.minimum(torch.maximum(self._center, self.bounds[0]), self.bounds[1]))
        self.generation += 1
        if "update_norm" not in stats:
            stats["update_norm"] = float(torch.linalg.vector_norm(self._center - current.center))
        stats.setdefault("lr", self.lr)
        stats.update(scale_stats(*self._distribution(), self._low_rank()))
        return stats

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically, hyperparameters included."""
        return {
            "strategy": self.name,
            "center": self._center.detach().clone(),
            "generation": self.generation,
            "seed": self.seed,
            "noise_table_size": self.noise.size,
            "population_size": self.population_size,
            "antithetic": self.antithetic,
            "maximize": self.maximize,
            "fitness_shaping": shaping_name(self.fitness_shaping),
            "bounds": None if self.bounds is None else [b.clone() for b in self.bounds],
            "hyperparameters": self.hyperparameters(),
            "best_fitness": self.best_fitness,
            "best_member": None if self.best_member is None else self.best_member.clone(),
            "optimizer": self.optimizer.state_dict(),
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; refuses a state of another strategy, dimension,
        population size, or optimizer, naming what differs (and then changes nothing)."""
        backup = self.state_dict()
        try:
            self._load_state(state)
        except BaseException:
            self._load_state(backup)
            raise

    def _load_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        missing = [k for k in ("center", "generation", "seed", "noise_table_size", "population_size", "optimizer")
                   if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}: not a state_dict() of a {type(self).__name__}")
        kind = state.get("strategy", "openai-es")
        if kind != self.name:
            raise ValueError(f"state is of strategy {kind!r}, this strategy is {self.name!r}")
        center = state["center"]
        if not isinstance(center, torch.Tensor) or center.shape != self._center.shape:
            shape = tuple(center.shape) if isinstance(center, torch.Tensor) else type(center).__name__
            raise ValueError(f"state has a center of shape {shape}, this strategy has {tuple(self._center.shape)}")
        if not bool(torch.isfinite(center).all()):
            raise ValueError("state has a non-finite center")
        size = state["population_size"]
        check_population_size(size, self.min_population)
        if size != self.population_size:
            raise ValueError(f"state is for population_size {size}, this strategy has {self.population_size}")
        check_optimizer_state(self.optimizer, state["optimizer"])
        hyper = state.get("hyperparameters")
        if hyper is not None:
            self._set_hyperparameters(dict(hyper))
        self._load_extra_state(state)
        with torch.no_grad():
            self._center.copy_(center)
        self.generation = int(state["generation"])
        self.seed = int(state["seed"])
        self.antithetic = bool(state.get("antithetic", self.antithetic))
        self.maximize = bool(state.get("maximize", self.maximize))
        if state.get("fitness_shaping") is not None:
            self.fitness_shaping = get_fitness_shaping(state["fitness_shaping"])
        if state.get("bounds") is not None:
            self.bounds = as_bounds(tuple(state["bounds"]), self._center)
        self.best_fitness = state.get("best_fitness")
        best = state.get("best_member")
        self.best_member = None if best is None else best.to(self._center).clone()
        self.noise = NoiseTable(
            self.seed, int(state["noise_table_size"]), device=self.device, dtype=self._center.dtype
        )
        self.optimizer.load_state_dict(state["optimizer"])
        self._asked_generation, self._asked_population = None, None


def check_optimizer_state(optimizer: Optimizer, state: Any) -> None:
    """Refuse the state of another kind of optimizer before torch fails on it later."""
    groups = state.get("param_groups") if isinstance(state, Mapping) else None
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ValueError(f"optimizer state does not match this {type(optimizer).__name__} (param_groups differ)")
    for saved, current in zip(groups, optimizer.param_groups):
        ours = set(current) - {"params"}
        theirs = set(saved) - {"params"}
        # torch adds keys over versions (e.g. "decoupled_weight_decay"): compare the core ones
        lacking = sorted(k for k in ours - theirs if k in ("lr", "betas", "momentum", "max_speed", "eps", "dampening"))
        if lacking:
            raise ValueError(
                f"optimizer state is not for this {type(optimizer).__name__}: it lacks {lacking} "
                "(was it saved with another optimizer?)"
            )


def as_reward_tensor(rewards: Sequence[float] | torch.Tensor, population_size: int) -> torch.Tensor:
    """Validate one reward per member and return them as a float64 CPU tensor."""
    if isinstance(rewards, torch.Tensor):
        if rewards.dim() != 1:
            raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
        values = rewards.detach().to(_CPU, torch.float64)
        if values.shape[0] == population_size:
            if not bool(torch.isfinite(values).all()):
                member = int((~torch.isfinite(values)).nonzero()[0])
                raise ValueError(
                    f"reward of member {member} is {values[member].item()}; rewards must be finite"
                )
            return values
    elif isinstance(rewards, (Mapping, set, frozenset, str, bytes)):
        raise TypeError(
            f"rewards must be a sequence or 1-D tensor with one reward per member in member order, "
            f"got a {type(rewards).__name__}"
        )
    else:
        values = torch.tensor([check_reward(r, i) for i, r in enumerate(rewards)], dtype=torch.float64)
    if values.shape[0] != population_size:
        raise ValueError(f"expected {population_size} rewards (one per member), got {values.shape[0]}")
    return values
