"""The base of the torch-native batched envs: N copies of one env as a few tensors.

A :class:`TorchEnv` holds the state of ``num_envs`` sub-envs as one ``(num_envs,
state_dim)`` tensor on one device and steps all of them with the same handful of
tensor operations, so a population rollout never leaves the device. The equations
are Gymnasium 1.4's (``gymnasium/envs/classic_control``), written in the same order
so that in float64 the arithmetic is the same operations on the same values; only
the transcendental functions (``sin``, ``cos``) come from torch's math library, not
the platform's ``libm`` or numpy's, and may differ in the last bit (see the tests
for which envs are bit-exact here).

Differences from a Gymnasium vector env, by design:

* no autoreset: a finished sub-env keeps stepping (its values are meaningless) until
  :meth:`TorchEnv.reset`; the rollout masks it from its first ``terminated or
  truncated`` on, as :func:`pytorch_es.rl.rollout.rollout_batch` does;
* the step limit of Gymnasium's ``TimeLimit`` (``max_episode_steps``, the spec's by
  default) is counted per sub-env and reported as ``truncated``;
* observations are float32 (the observation space's dtype), rewards and the state
  are in ``dtype`` (float32 by default, float64 for checks against Gymnasium).

Start states: ``reset(seeds=...)`` gives sub-env ``j`` *exactly* the start of
``gym.make(env_id).reset(seed=seeds[j])``: the start is drawn on the host with
Gymnasium's own generator (``gymnasium.utils.seeding.np_random``) once per distinct
seed (a population shares its few episode seeds, so this is a handful of draws), then
broadcast on the device. ``reset(generator=g)`` draws every start on the device from
the same ranges with a ``torch.Generator`` (distinct starts for millions of sub-envs,
not Gymnasium's numbers); ``reset(state=s)`` injects given start states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from gymnasium import spaces

__all__ = ["TorchEnv"]


def _check_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


class TorchEnv:
    """``num_envs`` sub-envs of ``env_id`` stepped together on ``device``.

    Args:
        num_envs: how many sub-envs.
        device: where every tensor lives.
        dtype: the dtype of the state and rewards (observations are float32).
        max_episode_steps: the ``TimeLimit`` (default: the Gymnasium spec's).

    Attributes:
        state: ``(num_envs, state_dim)`` tensor in ``dtype``.
        steps: ``(num_envs,)`` int64 steps since the last reset.
    """

    env_id: ClassVar[str]
    state_dim: ClassVar[int]
    spec_max_episode_steps: ClassVar[int]
    observation_space: spaces.Box
    action_space: spaces.Space

    def __init__(
        self,
        num_envs: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is None:
            max_episode_steps = self.spec_max_episode_steps
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be an int >= 1, got {max_episode_steps!r}")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.dtype = _check_dtype(dtype)
        self.max_episode_steps = int(max_episode_steps)
        self.state = torch.zeros(self.num_envs, self.state_dim, dtype=self.dtype, device=self.device)
        self.steps = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._after_reset()

    # ---- start states -------------------------------------------------------------------

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        """One start state drawn exactly as the Gymnasium env's ``reset`` draws it."""
        raise NotImplementedError

    def sample_starts(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        """``num`` start states drawn on the device from the same ranges."""
        raise NotImplementedError

    def start_states(self, seeds: Sequence[int]) -> torch.Tensor:
        """The Gymnasium start of each seed, ``(len(seeds), state_dim)`` in ``dtype``."""
        from gymnasium.utils import seeding

        seeds = [int(s) for s in seeds]
        distinct = list(dict.fromkeys(seeds))
        table = np.stack([np.asarray(self.sample_start(seeding.np_random(s)[0]), np.float64) for s in distinct])
        values = torch.from_numpy(table).to(device=self.device, dtype=self.dtype)
        if len(distinct) == len(seeds):
            return values
        where = {s: k for k, s in enumerate(distinct)}
        index = torch.tensor([where[s] for s in seeds], dtype=torch.int64, device=self.device)
        return values.index_select(0, index)

    def reset(
        self,
        seeds: Sequence[int] | None = None,
        *,
        state: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Start every sub-env; returns the float32 ``(num_envs, obs_dim)`` observations.

        Exactly one of ``seeds`` (Gymnasium's start for each seed), ``state`` (given
        start states, ``(num_envs, state_dim)``) or ``generator`` (device draws; the
        default when nothing is given, from torch's default generator).
        """
        given = sum(x is not None for x in (seeds, state, generator))
        if given > 1:
            raise ValueError("reset takes one of seeds, state or generator")
        if seeds is not None:
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
            start = self.start_states(seeds)
        elif state is not None:
            if tuple(state.shape) != (self.num_envs, self.state_dim):
                raise ValueError(
                    f"state has shape {tuple(state.shape)}, expected ({self.num_envs}, {self.state_dim})"
                )
            start = state.to(device=self.device, dtype=self.dtype)
        else:
            start = self.sample_starts(self.num_envs, generator)
        self.state = start.clone()
        self.steps = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._after_reset()
        return self.observe()

    def _after_reset(self) -> None:
        """Per-env bookkeeping reset (e.g. MountainCarContinuous's float32 state flag)."""

    # ---- stepping ---------------------------------------------------------------------------

    def observe(self) -> torch.Tensor:
        """The float32 observations of the current state."""
        raise NotImplementedError

    def _dynamics(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance ``self.state``; return ``(rewards, terminated)``."""
        raise NotImplementedError

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of every sub-env: ``(obs, rewards, terminated, truncated)``.

        ``actions``: int64 ``(num_envs,)`` for a Discrete action space, float32
        ``(num_envs, *shape)`` for a Box. ``truncated`` is the ``TimeLimit``.
        """
        rewards, terminated = self._dynamics(actions)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        return self.observe(), rewards, terminated, truncated

    def select(self, rows: torch.Tensor) -> None:
        """Keep only sub-envs ``rows`` (int64 on the device), in that order."""
        self.state = self.state.index_select(0, rows)
        self.steps = self.steps.index_select(0, rows)
        self.num_envs = int(rows.numel())
        for name in self._row_buffers():
            setattr(self, name, getattr(self, name).index_select(0, rows))

    def _row_buffers(self) -> tuple[str, ...]:
        return ()

    def state_bytes_per_env(self) -> int:
        """Device bytes one sub-env needs (state, observation, step counter, buffers)."""
        size = torch.finfo(self.dtype).bits // 8
        return self.state_dim * size * 4 + int(np.prod(self.observation_space.shape)) * 4 * 2 + 8 + size * 2

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.env_id!r}, num_envs={self.num_envs}, device={self.device}, "
            f"dtype={self.dtype}, max_episode_steps={self.max_episode_steps})"
        )
