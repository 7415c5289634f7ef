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

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from pytorch_es.core.checks import check_decay, check_population_size, check_positive  # noqa: F401 - re-exported
from pytorch_es.core.parameters import ParametersLike
from pytorch_es.core.population import Population
from pytorch_es.core.shaping import FitnessShaping
from pytorch_es.strategies.base import (  # noqa: F401 - as_reward_tensor, new_seed: re-exported
    Strategy,
    as_reward_tensor,
    new_seed,
    step_is_watched,
)
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


def plain_sgd_lr(optimizer: Optimizer, center: torch.Tensor) -> float | None:
    """The learning rate when ``optimizer`` is a plain ``torch.optim.SGD`` over a CPU ``center``
    (no momentum, weight decay, maximize or fused kernel, a float lr) whose step nothing
    watches (:func:`step_is_watched`), else ``None``. Its step is then ``theta -= lr grad``,
    which the strategy applies itself without torch.optim's per-step overhead."""
    if type(optimizer) is not torch.optim.SGD or center.device.type != "cpu" or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    lr = group["lr"]
    if (type(lr) is not float or group["momentum"] != 0 or group["weight_decay"] != 0 or group["maximize"]
            or group.get("fused") or group.get("differentiable") or step_is_watched(optimizer)):
        return None
    return lr


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
        bounds: ``None`` or ``(low, high)``: members are clipped into the box (see
            :class:`~pytorch_es.strategies.base.Strategy`).
        seed: the run seed; ``None`` draws one (see ``strategy.seed``).
        noise_table_size: length of the shared noise table (default from ``dim``).
        device: where the center, noise and update live (default: the center's).
    """

    name = "openai-es"

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
        bounds: tuple[Any, Any] | None = None,
        seed: int | None = None,
        noise_table_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            center, population_size=population_size, fitness_shaping=fitness_shaping, maximize=maximize,
            antithetic=antithetic, bounds=bounds, seed=seed, noise_table_size=noise_table_size, device=device,
        )
        self.sigma = check_positive("sigma", sigma)
        check_positive("lr", lr, allow_zero=True)
        self.sigma_decay = check_decay("sigma_decay", sigma_decay)
        self.sigma_min = check_positive("sigma_min", sigma_min, allow_zero=True)
        self.optimizer = make_optimizer(optimizer, [self._center], lr, optimizer_kwargs or {})

    def _distribution(self) -> tuple[float, None]:
        return self.sigma, None

    def gradient(self, population: Population, rewards: torch.Tensor) -> torch.Tensor:
        """The ES estimate ``g = 1/(N sigma) sum_i u_i eps_i`` of the reward gradient
        (``rewards`` in the caller's sign; ``maximize`` is applied here)."""
        return self._gradient(population, rewards if self.maximize else -rewards)

    def _gradient(self, population: Population, fitness: torch.Tensor) -> torch.Tensor:
        utilities = self.fitness_shaping(fitness).to(torch.float64)
        total = population.linear_sum(utilities)
        return total.div_(utilities.shape[0] * population.sigma).to(self._center.dtype)

    def _update(self, population: Population, fitness: torch.Tensor) -> dict[str, float]:
        gradient = self._gradient(population, fitness)
        lr = plain_sgd_lr(self.optimizer, self._center)
        if lr is not None:  # theta += lr g: what SGD's step computes from grad -g, bit for bit
            self._center.add_(gradient, alpha=lr)
        else:
            self._center.grad = gradient.neg()
            self.optimizer.step()
            self._center.grad = None
        update_norm = float(torch.linalg.vector_norm(self._center - population.center))
        self.sigma = max(self.sigma * self.sigma_decay, self.sigma_min)
        return {"grad_norm": float(torch.linalg.vector_norm(gradient)), "update_norm": update_norm,
                "sigma": self.sigma, "lr": self.lr}

    def hyperparameters(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "sigma_decay": self.sigma_decay, "sigma_min": self.sigma_min}

    def _set_hyperparameters(self, values: dict[str, Any]) -> None:
        self.sigma_decay = check_decay("state sigma_decay", values.get("sigma_decay", self.sigma_decay))
        self.sigma_min = check_positive("state sigma_min", values.get("sigma_min", self.sigma_min), allow_zero=True)

    def _extra_state(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.sigma = check_positive("state sigma", state.get("sigma", self.sigma))
