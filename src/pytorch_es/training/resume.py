"""Resuming a run: which settings define it, reading its checkpoint and config, and the
config of the continued run (only :data:`MUTABLE_KEYS` may change)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytorch_es.training.build import UNKILLABLE_BACKENDS
from pytorch_es.training.config import TrainConfig, flatten_config, legacy_to_nested, nest

__all__ = ["IDENTITY_KEYS", "MUTABLE_KEYS", "identity", "load_resume", "resume_paths", "saved_config"]

# Dotted keys that define a run: a checkpoint only continues a run made with the same ones
# (every key of [strategy] too, including a strategy's own options).
IDENTITY_KEYS = (
    "env_id",
    "seed",
    "test_every",
    "test_episodes",
    "policy.hidden",
    "policy.activation",
    "problem.episodes_per_member",
    "problem.max_steps",
    "problem.obs_norm",
    "problem.reward_shift",
)
# Dotted keys that a resumed run may change.
MUTABLE_KEYS = (
    "generations",
    "target",
    "checkpoint_every",
    "tensorboard",
    "problem.vector",
    "problem.device",
    "evaluation.backend",
    "evaluation.workers",
    "evaluation.ray_address",
    "evaluation.timeout",
)


def resume_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(run directory, checkpoint file) of a run directory or a checkpoint file."""
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME

    path = Path(path)
    if path.is_dir():
        return path, path / CHECKPOINT_NAME
    if path.is_file():
        return path.parent, path
    raise ValueError(f"--resume {str(path)!r}: no such run directory or checkpoint file")


def saved_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's or config.json's config, nested (release 0.2 wrote it flat)."""
    data = dict(data)
    if "strategy" not in data:
        data = legacy_to_nested(data)
    data.pop("versions", None)
    data.pop("command", None)
    return data


def _labelled(flat: Mapping[str, Any], label: Callable[[str], str]) -> dict[str, Any]:
    return {label(key): value for key, value in flat.items()}


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flat identity settings of a nested config (see :data:`IDENTITY_KEYS`)."""
    flat = flatten_config(config)
    return {k: v for k, v in flat.items() if k in IDENTITY_KEYS or k.startswith("strategy.")}


def load_resume(path: str | os.PathLike[str], overrides: Mapping[str, Any],
                labels: Callable[[str], str] | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """(merged config, trainer state) to continue the run at ``path``; ``overrides``
    (nested) may change :data:`MUTABLE_KEYS` only; ``labels`` names a dotted key in errors."""
    label = labels or (lambda key: key)
    from pytorch_es.io import read_json
    from pytorch_es.training.checkpoint import CheckpointError, config_differences, load_checkpoint
    from pytorch_es.training.rundir import CONFIG_NAME

    directory, checkpoint = resume_paths(path)
    try:
        payload = load_checkpoint(checkpoint)
    except CheckpointError as error:
        message = str(error)
        if error.previous is not None:
            message += (
                f"; the previous checkpoint {str(error.previous)!r} (generation {error.previous_generation}) "
                f"is intact: resume from it with: pytorch-es train --resume {error.previous}"
            )
        raise ValueError(message) from None
    if not payload["config"].get("env_id"):
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} was not written by pytorch-es train (no env_id in its config)"
        )
    saved = saved_config(payload["config"])
    config_path = directory / CONFIG_NAME
    if config_path.is_file():
        differences = config_differences(_labelled(identity(saved_config(read_json(config_path))), label),
                                         _labelled(identity(saved), label))
        if differences:
            raise ValueError(
                f"checkpoint {str(checkpoint)!r} is from another run than {str(config_path)!r}: "
                + "; ".join(
                    d.replace("checkpoint has", "config.json has").replace("this run has", "checkpoint has")
                    for d in differences
                )
            )
    flat_overrides = {k: v for k, v in flatten_config(overrides).items() if v is not None}
    differences = config_differences(
        _labelled(identity(saved), label),
        _labelled({**identity(saved), **{k: v for k, v in flat_overrides.items() if k not in MUTABLE_KEYS}}, label),
    )
    if differences:
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} was made with other settings than this command: "
            + "; ".join(differences)
            + " (a resumed run keeps its settings; only "
            + ", ".join(label(key) for key in MUTABLE_KEYS)
            + " may change)"
        )
    flat = flatten_config(saved)
    flat.update({k: v for k, v in flat_overrides.items() if k in MUTABLE_KEYS})
    # settings of the run that do not apply to the backend asked for now are dropped
    backend = flat_overrides.get("evaluation.backend")
    if backend in UNKILLABLE_BACKENDS and "evaluation.timeout" not in flat_overrides:
        flat["evaluation.timeout"] = None
    if backend == "serial" and "evaluation.workers" not in flat_overrides:
        flat["evaluation.workers"] = None
    if backend not in (None, "auto", "ray") and "evaluation.ray_address" not in flat_overrides:
        flat["evaluation.ray_address"] = None
    flat["out"] = str(directory)
    config = TrainConfig.from_dict(nest(flat), source=f"checkpoint {str(checkpoint)!r}")
    return config, payload["state"]
