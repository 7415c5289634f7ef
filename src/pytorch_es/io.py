"""Safe, atomic files: weights and state dicts, JSON and safetensors files on disk.

Everything is written to a temporary file in the target's directory, flushed and
``os.replace``-d into place, so a crash never leaves a half-written file. Loading
uses ``torch.load(weights_only=True)``: a file can hold tensors and plain
containers, and can never run code (pickle's arbitrary callables are refused).
"""

from __future__ import annotations

import json
import math
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
MAX_EXPANSION_RATIO = 100
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
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.filename is None:  # e.g. ENOSPC from write(): name the file being written
            raise OSError(error.errno, f"cannot write {str(target)!r}: {error.strerror or error}") from error
        raise
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


def _refusal_reason(error: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without its advice to retry with
    ``weights_only=False`` (which would run the file's code: never do that here)."""
    for line in str(error).splitlines():
        text = line.strip()
        lowered = text.lower()
        if text and "weights_only" not in lowered and "weights only" not in lowered and "documentation" not in lowered:
            return text
    return type(error).__name__


def _check_expansion(path: Path, max_bytes: int | None) -> None:
    """Refuse a file that would expand beyond :func:`pytorch_es.limits.max_load_bytes`:
    a torch zip's declared entry sizes (a deflated entry can be 1000x its file size),
    or the file's own size for anything else."""
    from pytorch_es.limits import LOAD_LIMIT_VARIABLE, format_bytes, max_load_bytes

    limit = max_load_bytes(max_bytes)
    size = path.stat().st_size
    expanded = size
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                expanded = max(size, sum(info.file_size for info in archive.infolist()))
    except Exception as error:  # zipfile raises NotImplementedError, ValueError, ... on damaged headers
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} is truncated or corrupted: {type(error).__name__}: {_first_line(error)}"
        ) from None
    if expanded > max(MAX_EXPANSION_RATIO * size, 64 << 20):  # torch.save stores entries, never deflates
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} would expand to {format_bytes(expanded)} in memory from {format_bytes(size)} on disk "
            f"(over {MAX_EXPANSION_RATIO}x: a compressed archive, which torch.save never writes); refused"
        )
    if expanded > limit:
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} would expand to {format_bytes(expanded)} in memory ({format_bytes(size)} on disk), "
            f"more than the {format_bytes(limit)} allowed (raise it with {LOAD_LIMIT_VARIABLE}=16G or max_bytes=)"
        )


def load_state(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *, max_bytes: int | None = None
) -> Any:
    """Load what :func:`save_state` wrote, refusing anything that would run code.

    Every failure is :class:`UnsafeOrCorruptFileError` (or ``FileNotFoundError`` /
    ``IsADirectoryError`` naming the path): a file carrying code, a truncated or
    corrupted one, and one that would expand beyond ``max_bytes`` in memory (default
    :func:`pytorch_es.limits.max_load_bytes`: 4 GiB, or ``PYTORCH_ES_MAX_LOAD_BYTES``).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    _check_expansion(path, max_bytes)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} was refused: it is not a plain tensor file "
            f"(it may carry code, or be corrupted): {_refusal_reason(error)}"
        ) from None
    except MemoryError:
        raise UnsafeOrCorruptFileError(f"{str(path)!r} does not fit in memory (corrupted sizes?)") from None
    except Exception as error:  # torch's readers raise anything on damaged bytes: KeyError, struct.error, ...
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r} is truncated or corrupted: {type(error).__name__}: {_first_line(error)}"
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


def load_weights(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> list[torch.Tensor]:
    """Load weights written by ``save_weights`` or ``EvolutionModule(save_path=...)``.

    Never executes code from the file. Copy them into a model with
    ``for p, w in zip(model.parameters(), weights): p.data.copy_(w)``.
    Raises :class:`UnsafeOrCorruptFileError` for anything but a list of tensors under
    ``"tensors"`` (``FileNotFoundError`` / ``IsADirectoryError`` for a wrong path).
    """
    payload = load_state(path, max_bytes=max_bytes)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise UnsafeOrCorruptFileError(f"{str(path)!r} is not a pytorch-es weights file")
    if "tensors" not in payload:
        raise UnsafeOrCorruptFileError(f"{str(path)!r} is an incomplete weights file (no 'tensors' entry)")
    tensors = payload["tensors"]
    if not isinstance(tensors, (list, tuple)):
        raise UnsafeOrCorruptFileError(
            f"{str(path)!r}: 'tensors' must be a list of tensors, got {type(tensors).__name__}"
        )
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, torch.Tensor):
            raise UnsafeOrCorruptFileError(
                f"{str(path)!r}: entry {index} of 'tensors' is a {type(tensor).__name__}, not a tensor"
            )
    return list(tensors)


# ---- JSON and safetensors files (run directories, policy artifacts) ----------------------


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
