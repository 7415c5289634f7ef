"""The policy artifact: ``policy.json`` + ``policy.safetensors``, written and read back.

A trained policy is two files in a directory (a run directory of ``pytorch-es train``)::

    DIR/policy.json          {"format": "pytorch-es/policy", "version": 1, "env_id",
                              "policy": policy.config(), "parameter_shapes",
                              "obs_norm": normaliser statistics or None, **extra}
    DIR/policy.safetensors   policy.named_parameters(vector): named tensors

:func:`policy_config` builds the JSON, :func:`save_policy` writes both files (atomically),
:func:`from_config` rebuilds a :class:`LoadedPolicy` from the JSON and the tensors,
:func:`load_policy` reads a directory. ``policy.json`` names its policy kind
(``"type"``), rebuilt by :func:`pytorch_es.rl.policy.policy_from_config`, so a kind from
another package (the Keras policy) loads through its registration. Nothing here loads a
pickle; every failure to read is a ``ValueError`` naming the file
(:class:`~pytorch_es.io.RunDirectoryError` for the files of a directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pytorch_es.io import RunDirectoryError, atomic_write, load_safetensors, read_json, write_json
from pytorch_es.rl.envs import env_spaces
from pytorch_es.rl.normalization import ObservationNormalizer
from pytorch_es.rl.policy import Policy, policy_from_config
from pytorch_es.rl.rollout import run_episode
from pytorch_es.rl.spaces import space_differences

__all__ = [
    "POLICY_CONFIG_NAME",
    "POLICY_FORMAT",
    "POLICY_WEIGHTS_NAME",
    "LoadedPolicy",
    "check_run_directory",
    "from_config",
    "load_policy",
    "policy_config",
    "save_policy",
]

POLICY_FORMAT = "pytorch-es/policy"
POLICY_WEIGHTS_NAME = "policy.safetensors"
POLICY_CONFIG_NAME = "policy.json"


def policy_config(
    env_id: str, policy: Policy, normalizer: ObservationNormalizer | None = None, **extra: Any
) -> dict[str, Any]:
    """Everything needed to rebuild the policy, as JSON-able data (``policy.json``).

    ``{"format", "version", "env_id", "policy": policy.config(), "parameter_shapes",
    "obs_norm": normaliser statistics or None, **extra}``. The weights themselves go to
    ``policy.safetensors`` as ``policy.named_parameters(vector)``.
    """
    return {
        "format": POLICY_FORMAT,
        "version": 1,
        "env_id": env_id,
        "policy": policy.config(),
        "parameter_shapes": {k: list(v) for k, v in policy.parameter_shapes().items()},
        "obs_norm": None if normalizer is None else normalizer.to_config(),
        **extra,
    }


class LoadedPolicy:
    """A policy rebuilt by :func:`from_config`: env id, policy, normaliser and weights."""

    def __init__(self, env_id: str, policy: Policy, normalizer: ObservationNormalizer | None,
                 vector: torch.Tensor | None, config: dict[str, Any]) -> None:
        self.env_id = env_id
        self.policy = policy
        self.normalizer = normalizer
        self.vector = vector
        self.config = config

    def _vector(self) -> torch.Tensor:
        if self.vector is None:
            raise ValueError("this policy was loaded without weights")
        return self.vector

    def check_env(self, observation_space: Any = None, action_space: Any = None) -> None:
        """Raise ``ValueError`` naming each difference between the spaces the policy was
        trained for and those of ``env_id`` (e.g. a ``policy.json`` edited to another env)."""
        if observation_space is None or action_space is None:
            observation_space, action_space = env_spaces(self.env_id, self.config.get("env_kwargs") or None)
        differences = space_differences(self.policy, observation_space, action_space)
        if differences:
            raise ValueError(
                f"the policy does not fit {self.env_id}: " + "; ".join(differences)
                + " (was policy.json edited, or made for another env?)"
            )

    def evaluate(self, episodes: int = 100, seed: int = 1000, max_steps: int | None = None) -> torch.Tensor:
        """Greedy returns on env seeds ``seed .. seed + episodes - 1``."""
        from pytorch_es.rl.problem import evaluate_policy  # the problem module builds on this one

        self.check_env()
        return evaluate_policy(self.env_id, self.policy, self._vector(), normalizer=self.normalizer,
                               episodes=episodes, seed=seed, max_steps=max_steps,
                               env_kwargs=self.config.get("env_kwargs"))

    def to_module(self, actions: bool = True) -> torch.nn.Module:
        """The policy as a plain ``nn.Sequential`` that acts on raw env observations: the
        run's observation normalisation (if it had one), the layers, and (``actions=True``)
        the action head, so ``module(obs[None])[0]`` is the greedy action ``evaluate`` takes.
        ``actions=False`` returns the raw outputs (logits / pre-squash values)."""
        to_module = getattr(self.policy, "to_module", None)
        if to_module is None:
            hint = "; it exports its weights with policy.to_model(vector)" if hasattr(self.policy, "to_model") else ""
            raise TypeError(f"{type(self.policy).__name__} has no to_module(){hint}")
        return to_module(self._vector(), self.normalizer, actions=actions)

    def run_episode(self, env: Any, seed: int | None = None, **kwargs: Any) -> tuple[float, int]:
        """One episode in ``env`` (e.g. made with ``render_mode="rgb_array"``); see ``run_episode``."""
        self.check_env(env.observation_space, env.action_space)
        return run_episode(env, self.policy, self._vector(), seed=seed, normalizer=self.normalizer, **kwargs)


def from_config(
    config: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None, *, source: str = "weights"
) -> LoadedPolicy:
    """Rebuild what :func:`policy_config` described; ``tensors`` are the named weights.

    Raises ``ValueError`` for a config of another format, or for weights whose names or
    shapes differ from the architecture (the message shows both).
    """
    if not isinstance(config, dict) or config.get("format") != POLICY_FORMAT:
        raise ValueError(
            f"not a pytorch-es policy config (expected format {POLICY_FORMAT!r}, "
            f"got {config.get('format') if isinstance(config, dict) else type(config).__name__!r})"
        )
    try:
        env_id = config["env_id"]
        policy = policy_from_config(config["policy"])
    except KeyError as error:
        raise ValueError(f"policy config is missing {error}") from None
    normalizer = None
    if config.get("obs_norm") is not None:
        normalizer = ObservationNormalizer.from_config(config["obs_norm"])
        if normalizer.dim != policy.obs_dim:
            raise ValueError(
                f"observation statistics have shape {normalizer.shape}, the policy expects "
                f"{policy.observation_space.shape}"
            )
    vector = None if tensors is None else policy.vector_from_named(tensors, source=source)
    return LoadedPolicy(env_id, policy, normalizer, vector, config)


def save_policy(
    directory: str | os.PathLike[str],
    problem: Any,
    vector: torch.Tensor,
    problem_state: Any = None,
    **extra: Any,
) -> tuple[Path, Path]:
    """Write ``policy.safetensors`` (``policy.named_parameters(vector)``) and
    ``policy.json`` (``problem.policy_config``) for a Gymnasium problem, creating
    ``directory`` if needed.

    ``problem_state`` (from the trainer's best generation) supplies the
    observation-normalisation statistics that go with ``vector``.
    """
    from safetensors.torch import save as safetensors_save

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{str(directory)!r} exists and is not a directory (expected a run directory)")
    directory.mkdir(parents=True, exist_ok=True)
    normalizer = problem.normalizer
    if normalizer is not None and problem_state and problem_state.get("obs_norm") is not None:
        normalizer = normalizer.copy()
        normalizer.load_state_dict(problem_state["obs_norm"])
    tensors = {k: v.contiguous() for k, v in problem.policy.named_parameters(vector.detach().cpu()).items()}
    # One metadata key: safetensors stores metadata in a hash map, so several keys would be
    # written in a random order and equal weights would not give byte-identical files.
    data = safetensors_save(tensors, metadata={"format": POLICY_FORMAT})
    weights = atomic_write(directory / POLICY_WEIGHTS_NAME, lambda file: file.write(data))
    config = policy_config(problem.env_id, problem.policy, normalizer, env_kwargs=problem.env_kwargs, **extra)
    return weights, write_json(directory / POLICY_CONFIG_NAME, config)


def check_run_directory(directory: str | os.PathLike[str]) -> Path:
    """``directory`` as a Path if it exists and holds a policy, else a clear error."""
    path = Path(directory)
    if not path.exists():
        raise RunDirectoryError(f"run directory {str(directory)!r} does not exist")
    if not path.is_dir():
        raise RunDirectoryError(f"{str(directory)!r} is not a directory (expected a run directory)")
    missing = [name for name in (POLICY_CONFIG_NAME, POLICY_WEIGHTS_NAME) if not (path / name).is_file()]
    if missing:
        raise RunDirectoryError(
            f"{str(directory)!r} holds no trained policy (no {' or '.join(missing)}); "
            "train one with: pytorch-es train ENV_ID --out DIR"
        )
    return path


def load_policy(directory: str | os.PathLike[str]) -> Any:
    """Rebuild the trained policy of a run directory: a ``pytorch_es.rl.LoadedPolicy``
    (``.env_id``, ``.policy``, ``.normalizer``, ``.vector``, ``.evaluate()``)."""
    path = check_run_directory(directory)
    config = read_json(path / POLICY_CONFIG_NAME)
    tensors = load_safetensors(path / POLICY_WEIGHTS_NAME)
    weights = str(path / POLICY_WEIGHTS_NAME)
    try:
        return from_config(config, tensors, source=f"the weights in {weights!r}")
    except (ValueError, TypeError) as error:
        message = str(error).splitlines()[0]
        if weights not in message:
            message = f"{str(path / POLICY_CONFIG_NAME)!r}: {message}"
        raise RunDirectoryError(message) from None
