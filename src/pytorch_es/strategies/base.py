"""The ask/tell protocol shared by every strategy."""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from pytorch_es.core.population import Population


class Strategy(ABC):
    """An evolution strategy over a flat parameter vector.

    ``ask()`` returns the population of the current generation; ``tell(rewards)``
    updates the search distribution from one reward per member and advances the
    generation. ``state_dict()``/``load_state_dict()`` save and restore everything
    needed to continue bit-identically.
    """

    maximize: bool = True

    @abstractmethod
    def ask(self) -> Population: ...

    @abstractmethod
    def tell(self, rewards: Sequence[float] | torch.Tensor) -> dict[str, float]: ...

    @property
    @abstractmethod
    def center(self) -> torch.Tensor: ...

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def check_reward(value: object, member: int | str) -> float:
    """Return ``value`` as a finite float, or raise naming the member (an index or a label)."""
    who = f"member {member}" if isinstance(member, int) else member
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"reward of {who} is a tensor of shape {tuple(value.shape)}; "
                "expected a single number"
            )
        value = value.item()
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"reward of {who} must be a real number, got {type(value).__name__} "
            f"({value!r})"
        )
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"reward of {who} is {value}; rewards must be finite")
    return value


def as_reward_tensor(rewards: Sequence[float] | torch.Tensor, population_size: int) -> torch.Tensor:
    """Validate one reward per member and return them as a float64 CPU tensor."""
    if isinstance(rewards, torch.Tensor):
        if rewards.dim() != 1:
            raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
        values = rewards.detach().to("cpu", torch.float64)
        if len(values) == population_size:
            bad = (~torch.isfinite(values)).nonzero()
            if len(bad):
                member = int(bad[0])
                raise ValueError(
                    f"reward of member {member} is {values[member].item()}; rewards must be finite"
                )
            return values
    else:
        values = torch.tensor([check_reward(r, i) for i, r in enumerate(rewards)], dtype=torch.float64)
    if len(values) != population_size:
        raise ValueError(f"expected {population_size} rewards (one per member), got {len(values)}")
    return values
