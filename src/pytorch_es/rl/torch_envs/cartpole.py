"""CartPole-v1 as tensors: ``gymnasium/envs/classic_control/cartpole.py``, Euler integrator.

Barto, Sutton and Anderson (1983), "Neuronlike adaptive elements that can solve
difficult learning control problems", with the equations of Florian (2007). State
``(x, x_dot, theta, theta_dot)``; action 0 pushes left, 1 right (force 10 N); the
episode terminates when ``|x| > 2.4`` or ``|theta| > 12 degrees``; reward 1 per step.
Starts uniform in ``[-0.05, 0.05]^4``. Gymnasium keeps the state in float64 and
observes it as float32; so does this env with ``dtype=torch.float64``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.torch_envs.base import TorchEnv

__all__ = ["CartPole"]

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


class CartPole(TorchEnv):
    env_id = "CartPole-v1"
    state_dim = 4
    spec_max_episode_steps = 500
    _high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
    observation_space = spaces.Box(-_high, _high, dtype=np.float32)
    action_space = spaces.Discrete(2)

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low=-0.05, high=0.05, size=(4,))

    def sample_starts(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        u = torch.rand(num, 4, generator=generator, device=self.device, dtype=self.dtype)
        return u.mul_(0.1).sub_(0.05)

    def observe(self) -> torch.Tensor:
        return self.state.to(torch.float32)

    def _dynamics(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = self.state.unbind(1)
        force = torch.where(actions == 1, FORCE_MAG, -FORCE_MAG).to(self.dtype)
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        temp = (force + POLEMASS_LENGTH * torch.square(theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * torch.square(costheta) / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        self.state = torch.stack((x, x_dot, theta, theta_dot), dim=1)
        terminated = (x < -X_THRESHOLD) | (x > X_THRESHOLD) | (theta < -THETA_THRESHOLD) | (theta > THETA_THRESHOLD)
        rewards = torch.ones_like(x)  # 1 per step, the terminating one included
        return rewards, terminated
