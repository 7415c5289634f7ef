"""Checkpoints: atomic, safe to load, with the previous good one kept.

A checkpoint is one ``torch.save`` file of plain containers and tensors::

    {"format": "pytorch-es/checkpoint", "version": 1,
     "config": {...},            # what the run was made with (env id, hyperparameters)
     "state": trainer.state_dict()}  # strategy, optimizer, noise seed, generation,
                                     # problem state (obs-norm), best center, metrics, RNGs

It is written to a temporary file and renamed into place (``pytorch_es.io``); before
that, the current checkpoint is hard-linked (or copied) to ``checkpoint.prev.pt``, so a
crash at any moment leaves at least one complete checkpoint. Loading uses
``torch.load(weights_only=True)``: a file carrying code is refused, never run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_es.io import UnsafeOrCorruptFileError, load_state, save_state
from pytorch_es.training.callbacks import Callback
from pytorch_es.training.loop import Trainer, TrainResult

CHECKPOINT_FORMAT = "pytorch-es/checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"


class CheckpointError(ValueError):
    """A checkpoint cannot be used: corrupted, unsafe, or made for another run.

    ``previous`` is a complete older checkpoint to fall back to, when there is one, and
    ``previous_generation`` its generation.
    """

    def __init__(self, message: str, previous: Path | None = None, previous_generation: int | None = None) -> None:
        super().__init__(message)
        self.previous = previous
        self.previous_generation = previous_generation


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where the previous good checkpoint of ``path`` is kept."""
    path = Path(path)
    if path.name == CHECKPOINT_NAME:
        return path.with_name(PREVIOUS_NAME)
    return path.with_name(path.stem + ".prev" + path.suffix)


def keep_previous_copy(path: str | os.PathLike[str]) -> None:
    """Atomically make ``previous_path(path)`` a copy of the current ``path`` (if any)."""
    path = Path(path)
    if not path.is_file():
        return
    target = previous_path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        os.unlink(temporary)
        try:
            os.link(path, temporary)  # no copy: the old inode lives on under the new name
        except OSError:
            shutil.copyfile(path, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def checkpoint_payload(state: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict ``{"format", "version", "config", "state"}`` that
    :func:`save_checkpoint` writes (``EvolutionModule`` stores it inside its weights file)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": dict(config or {}),
        "state": dict(state),
    }


def save_checkpoint(
    path: str | os.PathLike[str],
    state: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    *,
    keep_previous: bool = True,
) -> Path:
    """Write a checkpoint atomically; the checkpoint it replaces becomes ``*.prev.pt``."""
    path = Path(path)
    payload = checkpoint_payload(state, config)
    if keep_previous:
        keep_previous_copy(path)
    return save_state(path, payload)


def _read(path: Path, key: str | None = None) -> dict[str, Any]:
    payload = load_state(path)
    if key is not None and isinstance(payload, dict):
        payload = payload.get(key)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UnsafeOrCorruptFileError(f"{str(path)!r} is not a pytorch-es checkpoint")
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} is a checkpoint of version {version!r}; this pytorch-es reads "
            f"version {CHECKPOINT_VERSION} and older"
        )
    if not isinstance(payload.get("state"), dict) or not isinstance(payload.get("config"), dict):
        raise UnsafeOrCorruptFileError(f"{str(path)!r} is an incomplete checkpoint (no state or config)")
    return payload


def load_checkpoint(path: str | os.PathLike[str], *, key: str | None = None) -> dict[str, Any]:
    """Read a checkpoint (``{"format", "version", "config", "state"}``); never runs code
    from the file. ``key``: the checkpoint is stored under this key of the file (as in
    ``EvolutionModule``'s ``save_path`` files).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated,
    corrupted or unsafe; ``error.previous`` then names the previous good checkpoint
    if there is one that loads.
    """
    path = Path(path)
    try:
        return _read(path, key)
    except (UnsafeOrCorruptFileError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        message = str(error)
        if isinstance(error, FileNotFoundError):
            message = f"checkpoint {str(path)!r} does not exist"
        previous = previous_path(path)
        if previous != path and previous.is_file():
            try:
                payload = _read(previous, key)
            except (UnsafeOrCorruptFileError, OSError):
                pass
            else:
                generation = payload["state"].get("generation", payload["state"].get("iteration"))
                raise CheckpointError(message, previous=previous, previous_generation=generation) from None
        raise CheckpointError(message) from None


def checkpoint_generation(path: str | os.PathLike[str]) -> int | None:
    """The generation stored in a checkpoint, or ``None`` if it does not load."""
    try:
        return int(load_checkpoint(path)["state"]["generation"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str] | None = None
) -> list[str]:
    """Human-readable differences ``"key: checkpoint X, now Y"`` over ``keys``
    (default: every key of either mapping)."""
    names = sorted(set(saved) | set(current)) if keys is None else list(keys)
    missing = object()
    lines = []
    for name in names:
        old, new = saved.get(name, missing), current.get(name, missing)
        if old is missing and new is missing:
            continue
        if _normalise(old) != _normalise(new):
            show_old = "(absent)" if old is missing else repr(old)
            show_new = "(absent)" if new is missing else repr(new)
            lines.append(f"{name}: checkpoint has {show_old}, this run has {show_new}")
    return lines


def shape_mismatches(state: Mapping[str, Any], num_parameters: int) -> list[str]:
    """Where a trainer state's parameter-sized tensors do not have ``num_parameters``
    entries (the center, the best center, the optimizer's per-parameter state): checked
    against the run's configuration before any of it is loaded into the run."""
    import torch

    found = []

    def check(name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.numel() != num_parameters:
            found.append(f"{name} has {value.numel()} entries (shape {tuple(value.shape)})")

    strategy = state.get("strategy") if isinstance(state, Mapping) else None
    if isinstance(strategy, Mapping):
        check("the center", strategy.get("center"))
        optimizer = strategy.get("optimizer")
        per_parameter = optimizer.get("state") if isinstance(optimizer, Mapping) else None
        if isinstance(per_parameter, Mapping):
            for slots in per_parameter.values():
                if isinstance(slots, Mapping):
                    for key, value in slots.items():
                        check(f"the optimizer's {key!r}", value)
    best = state.get("best") if isinstance(state, Mapping) else None
    if isinstance(best, Mapping):
        check("the best center", best.get("center"))
    return [f"{line}, the run's policy has {num_parameters} parameters" for line in found]


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class CheckpointCallback(Callback):
    """Writes ``directory/checkpoint.pt`` every ``every`` generations and when the run
    stops (budget, target, Ctrl-C, or an error between generations).

    Args:
        directory: the run directory (must exist).
        config: saved with each checkpoint (plain JSON-like values), checked on resume.
        every: period in generations; ``0`` writes only at the end.
        keep_previous: keep the replaced checkpoint as ``checkpoint.prev.pt``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        config: Mapping[str, Any] | None = None,
        every: int = 10,
        keep_previous: bool = True,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"every (checkpoint period) must be an int >= 0, got {every!r}")
        self.path = Path(directory) / CHECKPOINT_NAME
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"checkpoint directory {str(self.path.parent)!r} does not exist")
        self.config = dict(config or {})
        self.every = every
        self.keep_previous = keep_previous
        self.saved_generation: int | None = None

    def save(self, trainer: Trainer) -> Path:
        """Write the checkpoint of ``trainer`` now."""
        keep = self.keep_previous
        if keep and self.saved_generation is None and self.path.exists():
            # A checkpoint this process did not write (e.g. a damaged one, when resuming from
            # checkpoint.prev.pt) must not replace the good previous one.
            try:
                _read(self.path)
            except (UnsafeOrCorruptFileError, OSError):
                keep = False
        path = save_checkpoint(self.path, trainer.state_dict(), self.config, keep_previous=keep)
        self.saved_generation = trainer.generation
        return path

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.every and trainer.generation % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if trainer.consistent and self.saved_generation != trainer.generation:
            self.save(trainer)
