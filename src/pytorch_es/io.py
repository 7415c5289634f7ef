"""Safe, atomic files: weights and state dicts on disk.

Everything is written to a temporary file in the target's directory, flushed and
``os.replace``-d into place, so a crash never leaves a half-written file. Loading
uses ``torch.load(weights_only=True)``: a file can hold tensors and plain
containers, and can never run code (pickle's arbitrary callables are refused).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

WEIGHTS_FORMAT = "pytorch-es/weights"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class UnsafeOrCorruptFileError(ValueError):
    """A file could not be loaded: truncated, corrupted, or carrying code."""


def check_output_path(path: str | os.PathLike[str], name: str = "path") -> Path:
    """Return ``path`` as a Path whose directory exists, or raise naming ``name``."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(path).__name__}")
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"{name} {str(path)!r}: directory {str(parent)!r} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"{name} {str(path)!r} is a directory; expected a file path")
    return target


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it onto ``path``."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual mode
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def save_state(path: str | os.PathLike[str], state: Any) -> Path:
    """Atomically ``torch.save`` a state dict (tensors and plain containers only)."""
    return atomic_write(path, lambda file: torch.save(state, file))


def _first_line(error: BaseException) -> str:
    """The first line of an error message, or its type for an empty one (e.g. ``EOFError()``)."""
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__


def load_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Load what :func:`save_state` wrote, refusing anything that would run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} was refused: it is not a plain tensor file "
            f"(it may carry code, or be corrupted): {_first_line(error)}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} is truncated or corrupted: {_first_line(error)}"
        ) from None


def save_weights(path: str | os.PathLike[str], weights: Sequence[torch.Tensor] | nn.Module) -> Path:
    """Save a list of weight tensors (or a module's parameters) atomically.

    Load them back with :func:`load_weights`.
    """
    target = check_output_path(path, "path")
    tensors = list(weights.parameters()) if isinstance(weights, nn.Module) else list(weights)
    payload = {
        "format": WEIGHTS_FORMAT,
        "tensors": [torch.as_tensor(t).detach().cpu().clone() for t in tensors],
    }
    return save_state(target, payload)


def load_weights(path: str | os.PathLike[str]) -> list[torch.Tensor]:
    """Load weights written by ``save_weights`` or ``EvolutionModule(save_path=...)``.

    Never executes code from the file. Copy them into a model with
    ``for p, w in zip(model.parameters(), weights): p.data.copy_(w)``.
    """
    payload = load_state(path)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise UnsafeOrCorruptFileError(f"{str(path)!r} is not a pytorch-es weights file")
    return list(payload["tensors"])
