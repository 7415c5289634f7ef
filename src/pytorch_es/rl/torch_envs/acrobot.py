"""Acrobot-v1 as tensors: ``gymnasium/envs/classic_control/acrobot.py`` (the "book" dynamics).

Sutton (1996), "Generalization in Reinforcement Learning: Successful Examples Using
Sparse Coarse Coding", and Sutton and Barto (2018). State ``(theta1, theta2, dtheta1,
dtheta2)``; actions 0, 1, 2 apply torque -1, 0, +1 at the joint; one RK4 step of
``dt = 0.2`` per action, angles wrapped to ``[-pi, pi]``, velocities bounded by
``4 pi`` and ``9 pi``. Terminates when ``-cos(theta1) - cos(theta1 + theta2) > 1``;
reward -1 per step (0 on the terminating one). Starts uniform in ``[-0.1, 0.1]^4``,
rounded to float32 as Gymnasium does; afterwards the state is float64 there.
"""

from __future__ import annotations

from math import pi

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.torch_envs.base import TorchEnv

__all__ = ["Acrobot"]

DT = 0.2
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
MAX_VEL_1 = 4 * pi
MAX_VEL_2 = 9 * pi
# one step moves an angle by at most (4 pi + 9 pi) * dt plus the RK4 curvature: three
# wraps by 2 pi cover it (Gymnasium loops ``while x > M``)
_WRAPS = 3


def _wrap(x: torch.Tensor, m: float, big_m: float) -> torch.Tensor:
    diff = big_m - m
    for _ in range(_WRAPS):
        x = torch.where(x > big_m, x - diff, x)
    for _ in range(_WRAPS):
        x = torch.where(x < m, x + diff, x)
    return x


def _dsdt(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The time derivative of ``s`` (``(n, 4)``) under torque ``a`` (Gymnasium's ``_dsdt``)."""
    m1, m2, l1 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1
    lc1, lc2 = LINK_COM_POS_1, LINK_COM_POS_2
    i1 = i2 = LINK_MOI
    g = 9.8
    theta1, theta2, dtheta1, dtheta2 = s.unbind(1)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + i2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - pi / 2)
        + phi2
    )
    ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2) / (
        m2 * lc2**2 + i2 - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=1)


class Acrobot(TorchEnv):
    env_id = "Acrobot-v1"
    state_dim = 4
    spec_max_episode_steps = 500
    _high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
    observation_space = spaces.Box(low=-_high, high=_high, dtype=np.float32)
    action_space = spaces.Discrete(3)

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)

    def sample_starts(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        u = torch.rand(num, 4, generator=generator, device=self.device, dtype=torch.float64)
        return u.mul_(0.2).sub_(0.1).to(torch.float32).to(self.dtype)

    def observe(self) -> torch.Tensor:
        s = self.state
        return torch.stack(
            (torch.cos(s[:, 0]), torch.sin(s[:, 0]), torch.cos(s[:, 1]), torch.sin(s[:, 1]), s[:, 2], s[:, 3]),
            dim=1,
        ).to(torch.float32)

    def _dynamics(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        torque = (actions - 1).to(self.dtype)  # AVAIL_TORQUE = [-1, 0, +1]
        y0 = self.state
        dt = DT - 0
        dt2 = dt / 2.0
        k1 = _dsdt(y0, torque)
        k2 = _dsdt(y0 + dt2 * k1, torque)
        k3 = _dsdt(y0 + dt2 * k2, torque)
        k4 = _dsdt(y0 + dt * k3, torque)
        ns = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        theta1 = _wrap(ns[:, 0], -pi, pi)
        theta2 = _wrap(ns[:, 1], -pi, pi)
        dtheta1 = ns[:, 2].clamp(-MAX_VEL_1, MAX_VEL_1)
        dtheta2 = ns[:, 3].clamp(-MAX_VEL_2, MAX_VEL_2)
        self.state = torch.stack((theta1, theta2, dtheta1, dtheta2), dim=1)
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        rewards = torch.where(terminated, 0.0, -1.0).to(self.dtype)
        return rewards, terminated
