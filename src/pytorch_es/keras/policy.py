"""A Keras model as the policy of :class:`pytorch_es.rl.GymProblem`.

:class:`KerasPolicy` implements :class:`pytorch_es.rl.Policy` on top of
:class:`~pytorch_es.keras.adapter.KerasForward`: a generation's rollout binds the
``(n, d)`` member matrix once and every env step is one batched forward of all
running members (``baddbmm`` per Dense layer, or ``vmap(model.stateless_call)``).

Action heads, applied to the model's output ``y`` (one row per member):

- ``Discrete(n)``: the model outputs ``n`` values (logits or softmax probabilities);
  the action is ``argmax(y) + start`` (greedy, as the original Keras example did). A
  final softmax is skipped in the rollouts (``argmax(softmax(z)) == argmax(z)``).
- ``Box``: ``"clip"`` (default; give the model a ``tanh`` output for [-1, 1] bounds)
  clamps ``y`` to the bounds; ``"squash"`` maps ``y`` through ``tanh`` onto the finite
  bounds, ``low + (tanh(y) + 1) / 2 * (high - low)``, as ``MLPPolicy`` does.

The head is the one every policy uses, :class:`pytorch_es.rl.spaces.ActionHead`.
"""

from __future__ import annotations

import json
from typing import Any

import keras  # the real, top-level Keras 3
import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.keras.adapter import BoundForward, KerasForward, check_model, model_to_vector, vector_to_model
from pytorch_es.rl.envs import check_spaces, env_spaces
from pytorch_es.rl.policy import BoundPolicy, Policy, check_config_parameters, register_policy
from pytorch_es.rl.spaces import ACTION_MODES, ActionHead, space_from_config, space_to_config

__all__ = ["KerasPolicy", "keras_policy"]


class _BoundKeras(BoundPolicy):
    """Members fixed for a rollout: the bound forward plus the action head."""

    def __init__(self, policy: KerasPolicy, bound: BoundForward) -> None:
        self.policy = policy
        self.members = bound.members
        self.bound = bound

    def __len__(self) -> int:
        return len(self.bound)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        n = obs.shape[0]
        inputs = obs.reshape(n, 1, *self.policy.input_shape)
        outputs = self.bound(inputs).reshape(n, -1)
        return self.policy.head.forward(outputs)  # no nn.Module call overhead on every env step

    def select(self, rows: torch.Tensor) -> BoundPolicy:
        return _BoundKeras(self.policy, self.bound.select(rows))


class KerasPolicy(Policy):
    """A built Keras 3 model (torch backend) acting in a Gymnasium env.

    Args:
        model: maps a batch of observations ``(B, *obs_shape)`` to ``(B, outputs)``:
            ``n`` outputs for ``Discrete(n)`` actions, ``prod(shape)`` for ``Box`` ones.
            Its current weights are the initial center; training never modifies it
            (call :meth:`to_model` to write a trained vector into it).
        observation_space, action_space: the env's spaces (or use :func:`keras_policy`).
        action_mode: ``"clip"`` (default) or ``"squash"`` for Box actions.
        mode: ``"auto"``, ``"dense"`` or ``"stateless"``; see ``KerasForward``.

    The flat vector is ``model.trainable_weights`` concatenated (Keras order).
    """

    type_name = "keras"

    def __init__(
        self,
        model: keras.Model,
        observation_space: spaces.Box,
        action_space: spaces.Space,
        *,
        action_mode: str = "clip",
        mode: str = "auto",
    ) -> None:
        check_spaces(observation_space, action_space, "the policy")
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        self.model = check_model(model)
        self.observation_space = observation_space
        self.action_space = action_space
        self.action_mode = action_mode
        self.keras_forward = KerasForward(model, mode=mode)
        self.mode = self.keras_forward.mode
        self.input_shape = tuple(observation_space.shape) if self.mode == "stateless" else (self.obs_dim,)
        if isinstance(action_space, spaces.Discrete):
            self.num_outputs = int(action_space.n)
        else:
            self.num_outputs = int(np.prod(action_space.shape))
        self.head = ActionHead(action_space, action_mode)
        self._check_output_shape()

    # ---- construction helpers -------------------------------------------------------

    def _check_output_shape(self) -> None:
        probe = torch.zeros(1, 1, *self.input_shape)
        try:
            outputs = self.keras_forward.batched(model_to_vector(self.model).unsqueeze(0), probe)
        except Exception as error:
            raise ValueError(
                f"the Keras model {self.model.name!r} cannot take observations of shape "
                f"{tuple(self.observation_space.shape)}: {type(error).__name__}: {error}"
            ) from error
        got = int(outputs[0].numel())
        if got != self.num_outputs:
            raise ValueError(
                f"the Keras model {self.model.name!r} has {got} outputs per observation, but the action "
                f"space {self.action_space} needs {self.num_outputs}"
            )

    # ---- the Policy protocol ----------------------------------------------------------

    @property
    def num_parameters(self) -> int:
        return self.keras_forward.dim

    def bind(self, members: torch.Tensor) -> BoundPolicy:
        discrete = isinstance(self.action_space, spaces.Discrete)
        return _BoundKeras(self, self.keras_forward.bind(self.check_members(members), logits=discrete))

    def forward(self, members: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Actions of member ``i`` for observation ``i``: ``(n, P), (n, obs_dim) -> (n, ...)``."""
        members = self.check_members(members)
        if obs.shape[0] != members.shape[0]:
            raise ValueError(f"{members.shape[0]} members but {obs.shape[0]} observations")
        return self.bind(members)(obs)

    def initial_parameters(self, seed: int = 0) -> torch.Tensor:
        """The model's current weights (Keras's own initialisation; ``seed`` is unused: call
        ``keras.utils.set_random_seed`` before building the model)."""
        return model_to_vector(self.model).to(torch.float32)

    def describe(self) -> str:
        return f"Keras model {self.model.name!r} ({self.mode} forward, {self.num_parameters} parameters)"

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of ``trainable_weights.{i}.{variable name}`` in Keras order (indices, not
        layer names: Keras numbers layer names per process, ``dense``, ``dense_1``, ...)."""
        return {
            f"trainable_weights.{i}.{v.name}": tuple(int(s) for s in v.shape)
            for i, v in enumerate(self.model.trainable_weights)
        }

    def named_parameters(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        vector = self.check_vector(vector)
        named, offset = {}, 0
        for name, shape in self.parameter_shapes().items():
            size = int(np.prod(shape))
            named[name] = vector[offset : offset + size].reshape(shape).clone()
            offset += size
        return named

    def to_model(self, vector: torch.Tensor) -> keras.Model:
        """Write ``vector`` into the Keras model (``variable.assign``) and return it, e.g. to
        ``model.save("policy.keras")``."""
        vector_to_model(self.check_vector(vector), self.model)
        return self.model

    def config(self) -> dict[str, Any]:
        """JSON: the spaces, the action mode and the model's architecture (``model.to_json()``)."""
        return {
            "type": self.type_name,
            "observation_space": space_to_config(self.observation_space),
            "action_space": space_to_config(self.action_space),
            "action_mode": self.action_mode,
            "mode": self.mode,
            "model": json.loads(self.model.to_json()),
            "num_parameters": self.num_parameters,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasPolicy:
        """Rebuild from :meth:`config` (the architecture only; weights come separately).
        Keras deserialises in safe mode: a config with ``Lambda`` code is refused."""
        try:
            model = keras.models.model_from_json(json.dumps(config["model"]))
            policy = cls(
                model,
                space_from_config(config["observation_space"]),
                space_from_config(config["action_space"]),
                action_mode=config.get("action_mode", "clip"),
                mode=config.get("mode", "auto"),
            )
        except KeyError as error:
            raise ValueError(f"Keras policy config is missing {error}") from None
        return check_config_parameters(config, policy, "the Keras model")

    # Pickled for process / Ray workers: Keras pickles the model itself (.keras format).
    def __getstate__(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "action_mode": self.action_mode,
            "mode": self.mode,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(
            state["model"], state["observation_space"], state["action_space"],
            action_mode=state["action_mode"], mode=state["mode"],
        )

    def __repr__(self) -> str:
        return f"KerasPolicy({self.describe()}, action_space={self.action_space})"


register_policy(KerasPolicy.type_name, KerasPolicy.from_config)


def keras_policy(
    model: keras.Model,
    env_id: str,
    *,
    action_mode: str = "clip",
    mode: str = "auto",
    env_kwargs: dict[str, Any] | None = None,
) -> KerasPolicy:
    """A :class:`KerasPolicy` for ``env_id``'s spaces:
    ``GymProblem(env_id, policy=keras_policy(model, env_id))``."""
    observation_space, action_space = env_spaces(env_id, env_kwargs)
    return KerasPolicy(model, observation_space, action_space, action_mode=action_mode, mode=mode)
