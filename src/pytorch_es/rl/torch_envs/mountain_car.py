"""MountainCar-v0 as tensors: ``gymnasium/envs/classic_control/mountain_car.py``.

Moore (1990), "Efficient Memory-based Learning for Robot Control". State
``(position, velocity)``; actions 0, 1, 2 accelerate left, not at all, right
(force 0.001, gravity 0.0025); velocity clipped to ``[-0.07, 0.07]``, position to
``[-1.2, 0.6]`` (hitting the left wall stops the car). Terminates at ``position >= 0.5``
(with ``velocity >= 0``); reward -1 per step; 200-step ``TimeLimit``. Starts at
``(U(-0.6, -0.4), 0)``. Gymnasium's state is float64.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.torch_envs.base import TorchEnv

__all__ = ["MountainCar"]

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.5
GOAL_VELOCITY = 0
FORCE = 0.001
GRAVITY = 0.0025


class MountainCar(TorchEnv):
    env_id = "MountainCar-v0"
    state_dim = 2
    spec_max_episode_steps = 200
    observation_space = spaces.Box(
        np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32),
        np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32),
        dtype=np.float32,
    )
    action_space = spaces.Discrete(3)

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(low=-0.6, high=-0.4), 0])

    def sample_starts(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        start = torch.zeros(num, 2, device=self.device, dtype=self.dtype)
        start[:, 0] = torch.rand(num, generator=generator, device=self.device, dtype=self.dtype) * 0.2 - 0.6
        return start

    def observe(self) -> torch.Tensor:
        return self.state.to(torch.float32)

    def _dynamics(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        position, velocity = self.state.unbind(1)
        velocity = velocity + ((actions - 1).to(self.dtype) * FORCE + torch.cos(3 * position) * (-GRAVITY))
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
        position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        velocity = torch.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
        terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
        self.state = torch.stack((position, velocity), dim=1)
        return torch.full_like(position, -1.0), terminated
