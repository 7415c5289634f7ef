"""Pendulum-v1 as tensors: ``gymnasium/envs/classic_control/pendulum.py``.

The inverted pendulum swing-up. State ``(theta, theta_dot)``; the action is a torque
in ``[-2, 2]`` (clipped); ``theta_dot`` is clipped to ``[-8, 8]``. Cost
``angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2``, reward its negative; never
terminates (200-step ``TimeLimit``). Starts uniform in ``[-pi, pi] x [-1, 1]``.

Gymnasium computes the torque terms in float32 (the action's dtype: NumPy 2 keeps a
float32 array float32 when multiplied by a Python float) and the rest in float64;
with ``dtype=torch.float64`` this env does the same.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.torch_envs.base import TorchEnv

__all__ = ["Pendulum"]

MAX_SPEED = 8
MAX_TORQUE = 2.0
DT = 0.05
G = 10.0
M = 1.0
L = 1.0
# NumPy multiplies a float32 array by 0.001 as float32 times float32(0.001); torch's
# CPU kernel would use the double 0.001 and round once, which differs in the last bit
_F32_MILLI = torch.tensor(0.001, dtype=torch.float32)


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    return ((x + np.pi) % (2 * np.pi)) - np.pi


class Pendulum(TorchEnv):
    env_id = "Pendulum-v1"
    state_dim = 2
    spec_max_episode_steps = 200
    _high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
    observation_space = spaces.Box(low=-_high, high=_high, dtype=np.float32)
    action_space = spaces.Box(low=-MAX_TORQUE, high=MAX_TORQUE, shape=(1,), dtype=np.float32)

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        high = np.array([np.pi, 1.0])
        return rng.uniform(low=-high, high=high)

    def sample_starts(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        u = torch.rand(num, 2, generator=generator, device=self.device, dtype=self.dtype)
        high = torch.tensor([np.pi, 1.0], dtype=self.dtype, device=self.device)
        return u.mul_(2 * high).sub_(high)

    def _after_reset(self) -> None:
        self._milli = _F32_MILLI.to(self.device)

    def observe(self) -> torch.Tensor:
        theta, thetadot = self.state.unbind(1)
        return torch.stack((torch.cos(theta), torch.sin(theta), thetadot), dim=1).to(torch.float32)

    def _dynamics(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        th, thdot = self.state.unbind(1)
        u = actions.reshape(-1).to(torch.float32).clamp(-MAX_TORQUE, MAX_TORQUE)  # float32, as in Gymnasium
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + (self._milli * (u**2)).to(self.dtype)
        newthdot = thdot + (3 * G / (2 * L) * torch.sin(th) + (3.0 / (M * L**2) * u).to(self.dtype)) * DT
        newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED)
        newth = th + newthdot * DT
        self.state = torch.stack((newth, newthdot), dim=1)
        return -costs, torch.zeros_like(th, dtype=torch.bool)
