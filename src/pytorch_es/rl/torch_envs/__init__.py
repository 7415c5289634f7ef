"""Torch-native batched versions of Gymnasium's classic-control envs.

``make_torch_env(env_id, num_envs, device=..., dtype=...)`` builds ``num_envs``
sub-envs whose state is one tensor on one device (see :class:`TorchEnv` for the
semantics: no autoreset, exact Gymnasium starts from seeds, float32 observations).
The equations are Gymnasium 1.4's; ``tests/test_torch_envs.py`` drives both with the
same actions from the same starts.
"""

from __future__ import annotations

import torch

from pytorch_es.rl.torch_envs.acrobot import Acrobot
from pytorch_es.rl.torch_envs.base import TorchEnv
from pytorch_es.rl.torch_envs.cartpole import CartPole
from pytorch_es.rl.torch_envs.continuous_mountain_car import MountainCarContinuous
from pytorch_es.rl.torch_envs.mountain_car import MountainCar
from pytorch_es.rl.torch_envs.pendulum import Pendulum

__all__ = [
    "TORCH_ENVS",
    "Acrobot",
    "CartPole",
    "MountainCar",
    "MountainCarContinuous",
    "Pendulum",
    "TorchEnv",
    "check_torch_env_id",
    "make_torch_env",
]

TORCH_ENVS: dict[str, type[TorchEnv]] = {
    cls.env_id: cls for cls in (CartPole, Acrobot, Pendulum, MountainCar, MountainCarContinuous)
}


def check_torch_env_id(env_id: str) -> str:
    """``env_id`` if it has a torch-native version, else ``ValueError`` listing those that do."""
    if env_id not in TORCH_ENVS:
        raise ValueError(
            f"{env_id!r} has no torch-native env (vector='torch'); those with one: {', '.join(TORCH_ENVS)}"
        )
    return env_id


def make_torch_env(
    env_id: str,
    num_envs: int,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    max_episode_steps: int | None = None,
) -> TorchEnv:
    """``num_envs`` sub-envs of ``env_id`` on ``device`` (see :data:`TORCH_ENVS`)."""
    cls = TORCH_ENVS[check_torch_env_id(env_id)]
    return cls(num_envs, device=device, dtype=dtype, max_episode_steps=max_episode_steps)
