"""The multilayer perceptron policy, the default of every Gymnasium problem.

:class:`MLPPolicy` stores its weights as one flat vector (for each layer ``W`` then
``b``, ``x @ W + b``); its batched forward over a population is
:class:`~pytorch_es.rl.kernels.BoundMLP`, its action head
:class:`~pytorch_es.rl.spaces.ActionHead`. :func:`make_policy` turns a user's policy
spec (a policy, MLP options, hidden sizes or ``None``) into a policy for an env.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.envs import check_spaces
from pytorch_es.rl.kernels import ACTIVATIONS, BoundMLP, layer_mode
from pytorch_es.rl.normalization import ObservationNormalizer
from pytorch_es.rl.policy import BoundPolicy, Policy, check_config_parameters, register_policy
from pytorch_es.rl.spaces import ActionHead, space_from_config, space_to_config

__all__ = ["MLPPolicy", "make_policy"]


def _is_binary(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Discrete) and int(space.n) == 2


class MLPPolicy(Policy):
    """A multilayer perceptron ``obs -> hidden... -> action``, weights stored as ``x @ W + b``.

    Args:
        observation_space: a ``Box`` (flattened to ``obs_dim`` inputs).
        action_space: ``Discrete(n)`` (``n`` logits, argmax) or ``Box`` (one output per
            dimension, squashed or clipped to the bounds).
        hidden: hidden layer sizes, e.g. ``(64,)`` or ``(64, 64)``; ``()`` is linear.
        activation: one of :data:`ACTIVATIONS`.
        action_mode: ``"squash"`` (tanh to the bounds) or ``"clip"`` for Box actions.
        init_scale: the output layer's initial weights are scaled by this (small
            outputs make the initial policy near-uniform / near the middle of the bounds).

    Flat layout: for each layer ``W`` (``in x out``, row-major) then ``b`` (``out``).
    """

    type_name = "mlp"

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Space,
        hidden: Sequence[int] = (64,),
        activation: str = "tanh",
        action_mode: str = "squash",
        init_scale: float = 0.1,
    ) -> None:
        check_spaces(observation_space, action_space, "the policy")
        if isinstance(hidden, int):
            hidden = (hidden,)
        hidden = tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive ints, got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if action_mode not in ("squash", "clip"):
            raise ValueError(f"action_mode must be 'squash' or 'clip', got {action_mode!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.action_mode = action_mode
        self.init_scale = float(init_scale)
        discrete = isinstance(action_space, spaces.Discrete)
        out = int(action_space.n) if discrete else int(np.prod(action_space.shape))
        sizes = (self.obs_dim, *self.hidden, out)
        self._layer_dims = list(itertools.pairwise(sizes))
        self._slices: list[tuple[int, int, int]] = []
        offset = 0
        for fan_in, fan_out in self._layer_dims:
            w_end = offset + fan_in * fan_out
            self._slices.append((offset, w_end, w_end + fan_out))
            offset = w_end + fan_out
        self._num_parameters = offset
        self._modes = [layer_mode(fan_in, fan_out) for fan_in, fan_out in self._layer_dims]
        self._binary_head = _is_binary(action_space)
        self._head = self._make_head()

    def _make_head(self) -> ActionHead:
        return ActionHead(self.action_space, self.action_mode)

    @property
    def num_parameters(self) -> int:
        return self._num_parameters

    def describe(self) -> str:
        arch = "-".join(str(s) for s in (self.obs_dim, *self.hidden, self._layer_dims[-1][1]))
        if not self.hidden:  # no hidden layer, so no activation to name
            return f"linear {arch} ({self.num_parameters} parameters)"
        return f"MLP {arch} ({self.activation}, {self.num_parameters} parameters)"

    def bind(self, members: torch.Tensor) -> BoundPolicy:
        return BoundMLP(self, self.check_members(members))

    def forward(self, members: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Actions of member ``i`` for observation ``i``: ``(n, P), (n, obs_dim) -> (n, ...)``."""
        members = self.check_members(members)
        if obs.shape[0] != members.shape[0]:
            raise ValueError(f"{members.shape[0]} members but {obs.shape[0]} observations")
        return BoundMLP(self, members)(obs)

    def initial_parameters(self, seed: int = 0) -> torch.Tensor:
        """PyTorch ``nn.Linear`` initialisation (``U(-1/sqrt(in), 1/sqrt(in))`` for weights
        and biases), output layer scaled by ``init_scale``."""
        generator = torch.Generator().manual_seed(int(seed))
        vector = torch.empty(self.num_parameters)
        last = len(self._slices) - 1
        for k, ((w0, _w1, b1), (fan_in, _)) in enumerate(zip(self._slices, self._layer_dims, strict=True)):
            bound = 1.0 / math.sqrt(fan_in)
            vector[w0:b1].uniform_(-bound, bound, generator=generator)
            if k == last:
                vector[w0:b1].mul_(self.init_scale)
        return vector

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for k, (fan_in, fan_out) in enumerate(self._layer_dims):
            shapes[f"layers.{k}.weight"] = (fan_in, fan_out)
            shapes[f"layers.{k}.bias"] = (fan_out,)
        return shapes

    def named_parameters(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        vector = self.check_vector(vector)
        out: dict[str, torch.Tensor] = {}
        for k, ((w0, w1, b1), dims) in enumerate(zip(self._slices, self._layer_dims, strict=True)):
            out[f"layers.{k}.weight"] = vector[w0:w1].reshape(dims).clone()
            out[f"layers.{k}.bias"] = vector[w1:b1].clone()
        return out

    def to_module(
        self, vector: torch.Tensor, normalizer: ObservationNormalizer | None = None, *, actions: bool = False
    ) -> torch.nn.Sequential:
        """An equivalent ``nn.Sequential`` of ``nn.Linear`` layers, for export.

        With ``normalizer`` (the run's observation statistics) it starts with a
        :class:`~pytorch_es.rl.normalization.NormalizeObservation`, so it takes raw env
        observations; without one it expects what the policy saw. It returns the raw
        outputs (logits / pre-squash values), or with ``actions=True`` the env actions
        (an :class:`ActionHead` at the end).
        """
        named = self.named_parameters(vector)
        layers: list[torch.nn.Module] = [] if normalizer is None else [normalizer.to_module()]
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid,
                      "elu": torch.nn.ELU, "selu": torch.nn.SELU, "gelu": torch.nn.GELU,
                      "silu": torch.nn.SiLU, "identity": torch.nn.Identity}[self.activation]
        for k, (fan_in, fan_out) in enumerate(self._layer_dims):
            linear = torch.nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                linear.weight.copy_(named[f"layers.{k}.weight"].T)
                linear.bias.copy_(named[f"layers.{k}.bias"])
            layers.append(linear)
            if k < len(self._layer_dims) - 1:
                layers.append(activation())
        if actions:
            layers.append(self._make_head())
        return torch.nn.Sequential(*layers)

    def config(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "observation_space": space_to_config(self.observation_space),
            "action_space": space_to_config(self.action_space),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "action_mode": self.action_mode,
            "init_scale": self.init_scale,
            "num_parameters": self.num_parameters,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MLPPolicy:
        try:
            policy = cls(
                space_from_config(config["observation_space"]),
                space_from_config(config["action_space"]),
                hidden=tuple(config.get("hidden", (64,))),
                activation=config.get("activation", "tanh"),
                action_mode=config.get("action_mode", "squash"),
                init_scale=config.get("init_scale", 0.1),
            )
        except KeyError as error:
            raise ValueError(f"policy config is missing {error}") from None
        return check_config_parameters(config, policy, "its architecture")

    def __repr__(self) -> str:
        return f"MLPPolicy({self.describe()}, action_space={self.action_space})"


register_policy("mlp", MLPPolicy.from_config)


def make_policy(
    spec: Policy | dict[str, Any] | Sequence[int] | None,
    observation_space: spaces.Box,
    action_space: spaces.Space,
) -> Policy:
    """A policy from a spec: a :class:`Policy` (checked against the spaces), ``None`` (the
    default MLP), a sequence of hidden sizes, or MLP keyword arguments
    ``{"hidden": (64, 64), "activation": "tanh", "action_mode": "squash"}``."""
    if isinstance(spec, Policy):
        if spec.observation_space.shape != observation_space.shape:
            raise ValueError(
                f"the policy expects observations of shape {spec.observation_space.shape}, "
                f"the env gives {observation_space.shape}"
            )
        if spec.action_space != action_space and not (
            isinstance(spec.action_space, spaces.Box) and isinstance(action_space, spaces.Box)
            and spec.action_space.shape == action_space.shape
        ):
            raise ValueError(f"the policy acts in {spec.action_space}, the env expects {action_space}")
        return spec
    if spec is None:
        return MLPPolicy(observation_space, action_space)
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        if spec.get("type", "mlp") != "mlp":
            raise ValueError(f"a dict policy spec builds an MLP; got type {spec['type']!r}")
        try:
            return MLPPolicy(observation_space, action_space, **kwargs)
        except TypeError as error:
            raise ValueError(f"invalid MLP policy spec {spec!r}: {error}") from None
    if isinstance(spec, (list, tuple)):
        return MLPPolicy(observation_space, action_space, hidden=tuple(spec))
    raise TypeError(
        f"policy must be a Policy, a dict of MLP options, a list of hidden sizes or None, "
        f"got {type(spec).__name__}"
    )
