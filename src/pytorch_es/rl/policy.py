"""The policy interface: what a Gymnasium problem needs from a policy, and the registry
of policy kinds that rebuilds one from its JSON ``config()``.

A :class:`Policy` maps a flat parameter vector and an observation to an action. Its
key method is *batched over members*: ``forward(members, obs)`` takes a ``(n, P)``
matrix whose row ``i`` is member ``i``'s parameters and a ``(n, obs_dim)`` batch whose
row ``i`` is member ``i``'s observation, and returns one action per row.
:meth:`Policy.bind` lays the weights out once per generation (a :class:`BoundPolicy`).

Policy kinds: :func:`register_policy` maps a config ``"type"`` to a builder;
:func:`policy_from_config` rebuilds a policy from ``policy.json``. A kind defined by an
optional package (the Keras policy) registers itself when that package is imported;
:mod:`pytorch_es.plugins` declares which module to import for a kind not registered yet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es import plugins

__all__ = [
    "BoundPolicy",
    "Policy",
    "check_config_parameters",
    "policy_from_config",
    "policy_kinds",
    "register_policy",
]


class BoundPolicy:
    """A policy with its members fixed: ``bound(obs) -> actions`` for those rows.

    ``select(rows)`` keeps only some rows (used when finished members drop out of a
    rollout). The default calls ``policy.forward`` each step; subclasses precompute.
    """

    def __init__(self, policy: Policy, members: torch.Tensor) -> None:
        self.policy = policy
        self.members = members

    def __len__(self) -> int:
        return self.members.shape[0]

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.forward(self.members, obs)

    def select(self, rows: torch.Tensor) -> BoundPolicy:
        return self.policy.bind(self.members.index_select(0, rows))


class Policy(ABC):
    """What a Gymnasium problem needs from a policy.

    * ``num_parameters``: the length ``P`` of a member's flat parameter vector;
    * ``forward(members, obs) -> actions``: batched over members, ``members`` is
      ``(n, P)`` and ``obs`` is ``(n, obs_dim)`` float32 (already normalised); returns
      int64 ``(n,)`` for ``Discrete`` actions (indices from 0) or float ``(n, *shape)``
      for ``Box`` actions, within the bounds;
    * ``initial_parameters(seed) -> (P,)`` tensor: the starting center;
    * ``config() -> dict``: JSON-able architecture (with ``"type"``), so
      :func:`policy_from_config` rebuilds it;
    * optional ``bind(members)`` (precompute per-generation views),
      ``named_parameters(vector)`` / ``vector_from_named(tensors)`` (weights on disk).

    An MLP is one implementation; a Keras model wrapper is another.
    """

    observation_space: spaces.Box
    action_space: spaces.Space
    type_name: str = "policy"

    @property
    @abstractmethod
    def num_parameters(self) -> int: ...

    @abstractmethod
    def forward(self, members: torch.Tensor, obs: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def initial_parameters(self, seed: int = 0) -> torch.Tensor: ...

    @abstractmethod
    def config(self) -> dict[str, Any]: ...

    def bind(self, members: torch.Tensor) -> BoundPolicy:
        return BoundPolicy(self, members)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observation_space.shape))

    def describe(self) -> str:
        return f"{self.type_name} policy with {self.num_parameters} parameters"

    def check_vector(self, vector: torch.Tensor, name: str = "parameters") -> torch.Tensor:
        """``vector`` as a float (P,) CPU tensor, or ``ValueError`` showing both shapes."""
        if not isinstance(vector, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(vector).__name__}")
        if vector.dim() != 1 or vector.numel() != self.num_parameters:
            raise ValueError(
                f"{name} has shape {tuple(vector.shape)}, but the {self.describe()} expects "
                f"({self.num_parameters},)"
            )
        if not vector.is_floating_point():
            raise TypeError(f"{name} has dtype {vector.dtype}; expected floating point")
        return vector.detach().to("cpu", torch.float32)

    def check_members(self, members: torch.Tensor) -> torch.Tensor:
        if members.dim() != 2 or members.shape[1] != self.num_parameters:
            raise ValueError(
                f"members have shape {tuple(members.shape)}, but the {self.describe()} expects "
                f"(n, {self.num_parameters})"
            )
        return members.detach().to("cpu", torch.float32)

    def named_parameters(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named tensors of ``vector`` (for ``policy.safetensors``)."""
        return {"parameters": self.check_vector(vector).clone()}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"parameters": (self.num_parameters,)}

    def vector_from_named(self, tensors: dict[str, torch.Tensor], source: str = "weights") -> torch.Tensor:
        """Inverse of :meth:`named_parameters`; ``ValueError`` showing both shapes on mismatch."""
        expected = self.parameter_shapes()
        got = {k: tuple(v.shape) for k, v in tensors.items()}
        if got != expected:
            raise ValueError(
                f"{source} do not match the {self.describe()}: {source} have "
                f"{_shapes_text(got)}, the policy expects {_shapes_text(expected)}"
            )
        return torch.cat([tensors[k].detach().reshape(-1).to(torch.float32) for k in expected])

    def act(self, vector: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The action of one parameter vector for one (normalised) observation."""
        return self.forward(vector.unsqueeze(0), obs.reshape(1, -1))[0]


def check_config_parameters(config: dict[str, Any], policy: Policy, rebuilt: str) -> Policy:
    """Return ``policy`` if its size matches the ``num_parameters`` its config recorded."""
    expected = config.get("num_parameters")
    if expected is not None and int(expected) != policy.num_parameters:
        raise ValueError(f"policy config says {expected} parameters but {rebuilt} has {policy.num_parameters}")
    return policy


def _shapes_text(shapes: dict[str, tuple[int, ...]]) -> str:
    return "{" + ", ".join(f"{k}: {tuple(v)}" for k, v in shapes.items()) + "}"


_POLICY_TYPES: dict[str, Callable[..., Policy]] = {}


def register_policy(type_name: str, from_config: Callable[[dict[str, Any]], Policy]) -> None:
    """Make ``policy_from_config`` rebuild configs whose ``"type"`` is ``type_name``.

    ``from_config(config) -> Policy`` gets the whole ``config()`` dict; registering a
    name again replaces its builder.
    """
    if not isinstance(type_name, str) or not type_name:
        raise TypeError(f"type_name must be a non-empty str, got {type_name!r}")
    if not callable(from_config):
        raise TypeError(f"from_config must be callable, got {type(from_config).__name__}")
    _POLICY_TYPES[type_name] = from_config


def policy_kinds() -> list[str]:
    """The policy kinds :func:`policy_from_config` can rebuild now or on first use (declared)."""
    return sorted({*_POLICY_TYPES, *plugins.declared("policy_kinds")})


def policy_from_config(config: dict[str, Any]) -> Policy:
    """Rebuild a policy from its ``config()`` (e.g. read from ``policy.json``)."""
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"a policy config must be a dict with a 'type', got {config!r}")
    kind = config["type"]
    if isinstance(kind, str) and kind not in _POLICY_TYPES:
        plugins.load("policy_kinds", kind)  # registers the kind (or explains what is missing)
    try:
        build = _POLICY_TYPES[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown policy type {kind!r}; known: {policy_kinds()}") from None
    return build(config)
