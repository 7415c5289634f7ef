"""MountainCarContinuous-v0 as tensors: ``continuous_mountain_car.py`` of Gymnasium.

State ``(position, velocity)``; the action is a force in ``[-1, 1]`` (clipped), power
0.0015; velocity clipped to ``[-0.07, 0.07]``, position to ``[-1.2, 0.6]``. Terminates
at ``position >= 0.45`` (with ``velocity >= 0``); reward ``100 * terminated - 0.1 a^2``
of the unclipped action; 999-step ``TimeLimit``. Starts at ``(U(-0.6, -0.4), 0)``.

Gymnasium stores this env's state as **float32** after every step (its start is
float64) and mixes float32 (the action) with Python floats. With
``dtype=torch.float64`` this env follows the same roundings: each step's intermediate
values are rounded to float32 where Gymnasium's are float32 (NumPy 2 promotion: a
float32 value with a Python float stays float32).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.torch_envs.base import TorchEnv

__all__ = ["MountainCarContinuous"]

MIN_ACTION = -1.0
MAX_ACTION = 1.0
MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.45
GOAL_VELOCITY = 0
POWER = 0.0015
POWER32 = float(np.float32(POWER))  # what np.float32 * POWER multiplies by


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Round to float32 and back to ``x``'s dtype."""
    return x.to(torch.float32).to(x.dtype)


class MountainCarContinuous(TorchEnv):
    env_id = "MountainCarContinuous-v0"
    state_dim = 2
    spec_max_episode_steps = 999
    observation_space = spaces.Box(
        np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32),
        np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32),
        dtype=np.float32,
    )
    action_space = spaces.Box(low=MIN_ACTION, high=MAX_ACTION, shape=(1,), dtype=np.float32)

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(low=-0.6, high=-0.4), 0])

    def sample_starts(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        start = torch.zeros(num, 2, device=self.device, dtype=self.dtype)
        start[:, 0] = torch.rand(num, generator=generator, device=self.device, dtype=self.dtype) * 0.2 - 0.6
        return start

    def _after_reset(self) -> None:
        # Gymnasium's state is float64 until the first step, float32 from then on
        self.rounded = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _row_buffers(self) -> tuple[str, ...]:
        return ("rounded",)

    def observe(self) -> torch.Tensor:
        return self.state.to(torch.float32)

    def _dynamics(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = actions.reshape(-1).to(torch.float32)
        position, velocity = self.state.unbind(1)
        if self.dtype == torch.float32:
            force = a.clamp(MIN_ACTION, MAX_ACTION)
            velocity = velocity + (force * POWER - 0.0025 * torch.cos(3 * position))
            velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
            position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        else:
            position, velocity = self._float64_step(a, position, velocity)
        velocity = torch.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
        terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
        a64 = a.to(torch.float64)
        rewards = (torch.where(terminated, 100.0, 0.0).to(torch.float64) - a64 * a64 * 0.1).to(self.dtype)
        self.state = _f32(torch.stack((position, velocity), dim=1))
        self.rounded = torch.ones_like(self.rounded)
        return rewards, terminated

    def _float64_step(
        self, a: torch.Tensor, position: torch.Tensor, velocity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gymnasium's step with its float32 roundings (``rounded``: the state is float32)."""
        clipped = (a < MIN_ACTION) | (a > MAX_ACTION)
        force = a.clamp(MIN_ACTION, MAX_ACTION).to(torch.float64)
        rounded = self.rounded
        three_p = torch.where(rounded, _f32(3 * position), 3 * position)  # 3 * float32 is float32
        gravity = 0.0025 * torch.cos(three_p)  # math.cos: a Python float
        # force * power - gravity: float32 when the action was inside the bounds
        # (np.float32 * float), a Python float when clipped (min/max return the bound)
        rhs = torch.where(clipped, force * POWER - gravity, _f32(_f32(force * POWER32) - _f32(gravity)))
        velocity = torch.where(rounded, _f32(velocity + _f32(rhs)), velocity + rhs)
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)  # the bound is a Python float
        position = torch.where(rounded, _f32(position + _f32(velocity)), position + velocity)
        position = position.clamp(MIN_POSITION, MAX_POSITION)
        return position, velocity
