"""The run directory of ``pytorch-es train``: its files, and loading a trained policy.

::

    DIR/config.json          how the run was made (env id, hyperparameters, seed, versions)
    DIR/metrics.csv          one row per generation (see pytorch_es.training.metrics)
    DIR/policy.safetensors   weights of the best center (by greedy test), named tensors
    DIR/policy.json          env id, architecture, observation-normalisation statistics
    DIR/checkpoint.pt        everything to resume; DIR/checkpoint.prev.pt the one before
    DIR/tensorboard/         TensorBoard events (with --tensorboard)
    DIR/.lock                held (flock) by the one train or resume writing DIR; holds its PID

Every file is written atomically (temporary file + rename). Nothing here loads a
pickle: weights are safetensors, the policy description and config are JSON.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from pytorch_es.io import atomic_write
from pytorch_es.training.callbacks import Callback
from pytorch_es.training.loop import Trainer, TrainResult

CONFIG_NAME = "config.json"
POLICY_WEIGHTS_NAME = "policy.safetensors"
POLICY_CONFIG_NAME = "policy.json"
TENSORBOARD_DIR = "tensorboard"
LOCK_NAME = ".lock"


class RunDirectoryError(ValueError):
    """A run directory, or a file in it, cannot be used (the message names it)."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(_json_safe(data), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda file: file.write(text.encode()))


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object, or raise :class:`RunDirectoryError` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirectoryError(f"{str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirectoryError(f"{str(path)!r} is not valid JSON (truncated or corrupted?): {error}") from None
    except OSError as error:
        raise RunDirectoryError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    if not isinstance(data, dict):
        raise RunDirectoryError(f"{str(path)!r} does not hold a JSON object")
    return data


class RunDirectoryLock:
    """An exclusive ``fcntl.flock`` on ``DIR/.lock``, held while one run writes ``DIR``.

    The kernel drops the lock when its process exits, however it dies (SIGKILL
    included), so a stale lock file never blocks a resume; the PID written into the
    file is only there to name the holder in the error. Where ``fcntl`` does not exist
    (Windows) no lock is taken.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunDirectoryLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            reason = error.strerror or error
            raise RunDirectoryError(f"cannot create the lock file {str(self.path)!r}: {reason}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirectoryError(
                f"run directory {str(self.path.parent)!r} is in use by another pytorch-es run (pid {holder}); "
                "wait for it to end, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunDirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temporaries(directory: str | os.PathLike[str], older_than: float = 0.0) -> list[Path]:
    """Delete ``.NAME.*.tmp`` files that an atomic write killed midway (SIGKILL, power
    loss) left behind, if at least ``older_than`` seconds old.

    Call it holding the directory's :class:`RunDirectoryLock`: then no write to it is in
    flight, and every temporary file there is a dead writer's.
    """
    removed = []
    now = time.time()
    for path in Path(directory).glob(".*.tmp"):
        try:
            if path.is_file() and now - path.stat().st_mtime >= older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def remove_if_empty(directory: str | os.PathLike[str]) -> bool:
    """Remove a run directory that holds nothing but its lock file (a run that failed
    before writing anything); True if it was removed."""
    path = Path(directory)
    try:
        entries = [entry.name for entry in path.iterdir()]
        if any(name != LOCK_NAME for name in entries):
            return False
        (path / LOCK_NAME).unlink(missing_ok=True)
        path.rmdir()
    except OSError:
        return False
    return True


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

    from pytorch_es.rl import policy_config

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
    data = safetensors_save(tensors, metadata={"format": "pytorch-es/policy"})
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


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never runs code), or raise naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    from pytorch_es.limits import LOAD_LIMIT_VARIABLE, format_bytes, max_load_bytes

    path = Path(path)
    try:
        size, limit = path.stat().st_size, max_load_bytes()
        if size > limit:
            raise RunDirectoryError(
                f"{str(path)!r} is {format_bytes(size)}, more than the {format_bytes(limit)} allowed "
                f"(raise it with {LOAD_LIMIT_VARIABLE}=16G)"
            )
        data = path.read_bytes()
    except OSError as error:
        raise RunDirectoryError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunDirectoryError(f"{str(path)!r} is truncated, corrupted or not a safetensors file ({reason})") from None


def load_policy(directory: str | os.PathLike[str]) -> Any:
    """Rebuild the trained policy of a run directory: a ``pytorch_es.rl.LoadedPolicy``
    (``.env_id``, ``.policy``, ``.normalizer``, ``.vector``, ``.evaluate()``)."""
    from pytorch_es.rl import from_config

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


class PolicySaver(Callback):
    """Writes ``policy.safetensors`` and ``policy.json`` whenever the best test improves,
    and at the end of the run (the best center and its normalisation statistics)."""

    def __init__(self, directory: str | os.PathLike[str], problem: Any, **extra: Any) -> None:
        self.directory = Path(directory)
        self.problem = problem
        self.extra = extra
        self._written: int | None = None

    def save(self, trainer: Trainer) -> None:
        if trainer.best_center is None:
            return
        extra = dict(self.extra)
        extra.update(generation=trainer.best_generation, test_reward=trainer.best_test_reward)
        save_policy(self.directory, self.problem, trainer.best_center, trainer.best_problem_state, **extra)
        self._written = trainer.best_generation

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if trainer.best_generation == row["generation"] and row.get("test_reward") is not None:
            self.save(trainer)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if trainer.best_generation is not None and self._written != trainer.best_generation:
            self.save(trainer)
