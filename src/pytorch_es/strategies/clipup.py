"""ClipUp: normalised-gradient momentum with a speed limit.

Toklu et al. (2020), "ClipUp: A Simple and Powerful Optimizer for
Distribution-based Policy Evolution":

    v <- momentum * v + lr * g / ||g||
    v <- v * min(1, max_speed / ||v||)
    theta <- theta - v

(``g`` is the gradient of the loss, so ``theta`` moves against it, as with every
``torch.optim`` optimizer.) Suggested: ``max_speed`` about ``2 * lr``, momentum 0.9.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer


class ClipUp(Optimizer):
    """ClipUp as a ``torch.optim`` optimizer."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 0.01,
        momentum: float = 0.9,
        max_speed: float | None = None,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        max_speed = 2.0 * lr if max_speed is None else max_speed
        if max_speed <= 0:
            raise ValueError(f"max_speed must be > 0, got {max_speed}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "max_speed": max_speed})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                velocity = state.get("velocity")
                if velocity is None:
                    velocity = state["velocity"] = torch.zeros_like(param)
                norm = grad.norm()
                velocity.mul_(group["momentum"])
                if norm > 0:
                    velocity.add_(grad, alpha=group["lr"] / float(norm))
                speed = float(velocity.norm())
                if speed > group["max_speed"]:
                    velocity.mul_(group["max_speed"] / speed)
                param.sub_(velocity)
        return loss
