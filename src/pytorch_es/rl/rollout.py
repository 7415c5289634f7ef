"""Rollouts: many members through one batch of sub-envs, or one member through one env.

:func:`rollout_batch` is the vectorised path. Each step it makes one batched
forward over the members still running, hands the actions to the batch, adds each
running sub-env's reward to its return, and drops a sub-env from its first
``terminated or truncated`` on (Gymnasium's next-step autoreset then resets it; that
reset step is never read). It stops when every sub-env is done or after
``max_steps``. When half the bound rows have finished, the bound policy is shrunk to
the running ones, so finished members cost no forward work.

:func:`run_episode` is the reference: the same member in a single ``gym.make`` env.
Both sum rewards in float64 in time order, so a member's return in the batch is
*exactly* its single-env return on the same seed (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.envs import Batch
from pytorch_es.rl.normalization import ObservationNormalizer, ObservationStats
from pytorch_es.rl.policy import BoundPolicy, Policy

__all__ = ["RolloutResult", "rollout_batch", "run_episode"]


class RolloutResult:
    """Returns (float64, one per sub-env), episode lengths and the total env steps."""

    def __init__(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        self.returns = returns
        self.lengths = lengths

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())


def _obs_tensor(obs: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(obs)
    if tensor.dim() != 2:
        tensor = tensor.reshape(tensor.shape[0], -1)
    return tensor if tensor.dtype == torch.float32 else tensor.to(torch.float32)


def _action_converter(action_space: spaces.Space) -> Callable[[torch.Tensor], np.ndarray]:
    if isinstance(action_space, spaces.Discrete):
        return lambda a: a.numpy()
    dtype = np.dtype(action_space.dtype)
    if dtype == np.float32:
        return lambda a: a.numpy()
    return lambda a: a.numpy().astype(dtype)


def _actor(bound: BoundPolicy, to_numpy: Callable[[torch.Tensor], np.ndarray]
           ) -> Callable[[np.ndarray | torch.Tensor], np.ndarray]:
    """``obs -> actions`` (arrays) of ``bound``: through ``bound.call_numpy`` (the same
    kernel as ``bound(obs)``, without the tensor round trips) where it has one."""
    call_numpy = getattr(bound, "call_numpy", None)
    if call_numpy is None:
        return lambda obs: to_numpy(bound(obs if isinstance(obs, torch.Tensor) else _obs_tensor(obs)))

    def act(obs: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(obs, torch.Tensor):
            obs = obs.numpy()
        elif obs.ndim != 2 or obs.dtype != np.float32:
            obs = obs.reshape(obs.shape[0], -1).astype(np.float32, copy=False)
        actions = call_numpy(obs)
        return actions if isinstance(actions, np.ndarray) else to_numpy(actions)

    return act


def rollout_batch(
    batch: Batch,
    bound: BoundPolicy,
    seeds: Sequence[int],
    *,
    max_steps: int,
    action_space: spaces.Space,
    normalizer: ObservationNormalizer | None = None,
    stats: ObservationStats | None = None,
    compact: bool = True,
) -> RolloutResult:
    """Run one episode in every sub-env of ``batch``; row ``j`` of ``bound`` acts in sub-env ``j``.

    Args:
        batch: ``num_envs`` sub-envs; sub-env ``j`` is reset with ``seeds[j]``.
        bound: the bound policy, one row per sub-env.
        max_steps: step limit per episode.
        action_space: the single env's action space (for the action dtype).
        normalizer: applied to observations before the policy (frozen here).
        stats: if given, every observation a running sub-env acts on is added to row ``j``.
        compact: shrink the bound policy to the running rows once half have finished.
    """
    m = batch.num_envs
    if len(bound) != m or len(seeds) != m:
        raise ValueError(f"{len(bound)} policy rows and {len(seeds)} seeds for {m} sub-envs")
    to_numpy = _action_converter(action_space)
    returns = np.zeros(m, dtype=np.float64)
    lengths = np.full(m, -1, dtype=np.int64)  # set when a sub-env finishes
    active = np.ones(m, dtype=bool)
    rows: np.ndarray | None = None  # sub-env of each bound row once compacted; None = identity
    full_actions: np.ndarray | None = None
    n_active = m
    step = 0
    act = _actor(bound, to_numpy)
    obs = batch.reset(seeds)
    while step < max_steps:
        o = obs if rows is None else obs[rows]
        if stats is not None or normalizer is not None:
            o = _obs_tensor(o)
            if stats is not None:
                if n_active == m:
                    stats.add(o, count=False)
                else:
                    running = np.flatnonzero(active)
                    stats.add(_obs_tensor(obs[running]), torch.from_numpy(running), count=False)
            if normalizer is not None:
                o = normalizer.normalize(o)
        actions = act(o)
        if rows is not None:
            full_actions[rows] = actions
            actions = full_actions
        obs, rewards, done = batch.step(actions, active)
        step += 1
        if n_active == m:
            returns += rewards
        else:
            np.add(returns, rewards, out=returns, where=active)
        if not done.any():
            continue
        finished = done & active
        if not finished.any():
            continue
        lengths[finished] = step
        active &= ~finished
        n_active = int(np.count_nonzero(active))
        if n_active == 0:
            break
        if compact and n_active * 2 <= len(bound):
            running = np.flatnonzero(active)
            keep = running if rows is None else np.flatnonzero(active[rows])
            bound = bound.select(torch.from_numpy(keep))
            act = _actor(bound, to_numpy)
            if full_actions is None:
                full_actions = np.zeros((m, *np.shape(actions)[1:]), dtype=actions.dtype)
            rows = running
    lengths[active] = step
    if stats is not None:
        stats.counts = torch.from_numpy(lengths.astype(np.float64))
    return RolloutResult(returns, lengths)


def run_episode(
    env: gym.Env,
    policy: Policy,
    vector: torch.Tensor,
    *,
    seed: int | None,
    normalizer: ObservationNormalizer | None = None,
    max_steps: int | None = None,
    on_step: Callable[[gym.Env, Any, float], None] | None = None,
) -> tuple[float, int]:
    """One episode of one parameter vector in a single (non-vector) env.

    Returns ``(return, steps)``. ``on_step(env, obs, reward)`` is called after every
    step (e.g. to collect ``env.render()`` frames).
    """
    vector = policy.check_vector(vector)
    with torch.inference_mode():
        bound = policy.bind(vector.unsqueeze(0))
        to_numpy = _action_converter(env.action_space)
        obs, _ = env.reset(seed=seed)
        total, steps = 0.0, 0
        while max_steps is None or steps < max_steps:
            o = _obs_tensor(np.asarray(obs)[None])
            if normalizer is not None:
                o = normalizer.normalize(o)
            action = to_numpy(bound(o))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            if on_step is not None:
                on_step(env, obs, float(reward))
            if terminated or truncated:
                break
    return total, steps
