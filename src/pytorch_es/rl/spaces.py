"""Observation and action spaces: their JSON form, fit checks, and the action head.

A policy acts in a Gymnasium ``Box`` observation space and a ``Discrete`` or ``Box``
action space (checked by :func:`pytorch_es.rl.envs.check_spaces`). This module holds
what every policy kind shares about those spaces:

- :func:`space_to_config` / :func:`space_from_config`: a space <-> JSON (``policy.json``);
- :func:`space_differences`: what differs between a policy's spaces and an env's;
- :class:`ActionHead`: policy outputs ``y`` -> env actions, the last step of every
  policy's forward pass (the MLP, the Keras policy and the torch rollout all use it).

Action heads: ``Discrete(n, start)`` -> ``argmax(y) + start`` of ``n`` outputs; ``Box`` ->
``"squash"`` (``low + (tanh(y) + 1) / 2 * (high - low)``, identity on unbounded
dimensions) or ``"clip"`` (``clamp(y, low, high)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

__all__ = [
    "ACTION_MODES",
    "ActionHead",
    "space_differences",
    "space_from_config",
    "space_to_config",
]

#: How a ``Box`` head maps outputs onto the bounds.
ACTION_MODES = ("squash", "clip")


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, np.float64).ravel()]


def space_to_config(space: spaces.Space) -> dict[str, Any]:
    """A JSON-able description of a Box or Discrete space (infinite bounds -> ``None``)."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": _finite_or_none(space.low),
            "high": _finite_or_none(space.high),
            "dtype": str(space.dtype),
        }
    raise ValueError(f"cannot describe a {type(space).__name__} space {space}")


def space_from_config(config: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_config`."""
    try:
        if config["type"] == "Discrete":
            return spaces.Discrete(int(config["n"]), start=int(config.get("start", 0)))
        if config["type"] == "Box":
            shape = tuple(int(s) for s in config["shape"])
            dtype = np.dtype(config.get("dtype", "float32"))
            low = np.array([-np.inf if v is None else v for v in config["low"]], dtype).reshape(shape)
            high = np.array([np.inf if v is None else v for v in config["high"]], dtype).reshape(shape)
            return spaces.Box(low, high, shape, dtype=dtype)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"invalid space description {config!r}: {error}") from None
    raise ValueError(f"unsupported space type {config.get('type')!r} in {config!r}")


def space_differences(policy: Any, observation_space: Any, action_space: Any) -> list[str]:
    """What differs between the spaces ``policy`` was made for and an env's (empty: it fits)."""
    differences = []
    if policy.observation_space.shape != observation_space.shape:
        differences.append(
            f"observations: the policy takes shape {policy.observation_space.shape}, the env gives "
            f"{observation_space.shape}"
        )
    mine, theirs = policy.action_space, action_space
    same_box = isinstance(mine, spaces.Box) and isinstance(theirs, spaces.Box) and mine.shape == theirs.shape
    if mine != theirs and not same_box:
        differences.append(f"actions: the policy acts in {mine}, the env expects {theirs}")
    return differences


class ActionHead(torch.nn.Module):
    """Policy outputs -> env actions, the last step of every forward pass.

    ``Discrete(n, start)``: ``argmax(y) + start``. ``Box`` with ``action_mode="squash"``:
    ``middle + tanh(y) * half`` on finite bounds (``middle = (low + high) / 2``,
    ``half = (high - low) / 2``), the identity on unbounded dimensions; ``"clip"``:
    ``clamp(y, low, high)`` (an unbounded side clamps to the float32 range, so actions
    stay finite). Outputs ``(n, out)`` become ``(n,)`` or ``(n, *shape)``; ``Box``
    outputs of another float dtype are cast to float32 first. Its buffers follow
    ``.to(device)``. The function is row-wise: a row's action depends on that row only.
    """

    def __init__(self, action_space: spaces.Space, action_mode: str = "squash") -> None:
        super().__init__()
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if isinstance(action_space, spaces.Discrete):
            self.kind, self.start, self.shape = "argmax", int(action_space.start), ()
            return
        self.start, self.shape = 0, tuple(action_space.shape)
        low = torch.as_tensor(np.asarray(action_space.low, np.float64).ravel(), dtype=torch.float32)
        high = torch.as_tensor(np.asarray(action_space.high, np.float64).ravel(), dtype=torch.float32)
        finite = torch.isfinite(low) & torch.isfinite(high)
        if action_mode == "clip":
            big = torch.finfo(torch.float32).max
            self.kind = "clip"
            self.register_buffer("low", torch.where(torch.isfinite(low), low, torch.full_like(low, -big)))
            self.register_buffer("high", torch.where(torch.isfinite(high), high, torch.full_like(high, big)))
            return
        self.kind = "squash" if bool(finite.all()) else "squash_partial"
        half = torch.where(finite, (high - low) / 2, torch.ones_like(low))
        self.register_buffer("half_width", half)
        self.register_buffer("midpoint", torch.where(finite, low + half, torch.zeros_like(low)))
        self.register_buffer("finite_mask", finite)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "argmax":
            actions = y.argmax(-1)
            return actions if self.start == 0 else actions.add_(self.start)
        if y.dtype != torch.float32:
            y = y.to(torch.float32)
        if self.kind == "clip":
            return torch.maximum(torch.minimum(y, self.high), self.low).reshape(-1, *self.shape)
        squashed = torch.addcmul(self.midpoint, torch.tanh(y), self.half_width)
        if self.kind == "squash_partial":
            squashed = torch.where(self.finite_mask, squashed, y)
        return squashed.reshape(-1, *self.shape)

    def extra_repr(self) -> str:
        return f"{self.kind}" + (f", start={self.start}" if self.start else "")
