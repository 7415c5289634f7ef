"""Bounds on what untrusted arguments and files may cost, checked before allocating.

- :func:`check_memory`: an estimate of the bytes a step will allocate against the memory
  this machine has available (``/proc/meminfo`` ``MemAvailable``, else the physical
  memory), or ``PYTORCH_ES_MEMORY_LIMIT``; over it, :class:`ResourceLimitError` with the
  size asked for and the estimate, before anything is allocated.
- :func:`max_load_bytes`: how much a checkpoint or weights file may expand to in memory
  (default 4 GiB; ``PYTORCH_ES_MAX_LOAD_BYTES``, or ``max_bytes=`` of the loaders).

Sizes in the environment variables are bytes, or a number with a K/M/G/T suffix
(powers of 1024), e.g. ``PYTORCH_ES_MAX_LOAD_BYTES=16G``.
"""

from __future__ import annotations

import os

MEMORY_LIMIT_VARIABLE = "PYTORCH_ES_MEMORY_LIMIT"
LOAD_LIMIT_VARIABLE = "PYTORCH_ES_MAX_LOAD_BYTES"
DEFAULT_MAX_LOAD_BYTES = 4 << 30
# Lower bounds per sub-env beyond its member's parameters: observation, action, reward
# and done buffers, the policy's activations, and the env's own state (a vector env's
# slot is under a kilobyte; a Python env object is more). A lower bound: an estimate
# over the limit is certainly too much; one under it may still be.
BYTES_PER_SUB_ENV = 1024
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ResourceLimitError(ValueError):
    """An argument or a file would cost more memory than this machine (or the limit) allows."""


def parse_size(text: str, name: str) -> int:
    """``"512M"``, ``"16G"``, ``"1000000"`` -> bytes (K/M/G/T are powers of 1024)."""
    value = str(text).strip().upper().removesuffix("B").removesuffix("I")
    suffix = value[-1:] if value[-1:] in _SUFFIXES and value[-1:] else ""
    number = value[: -len(suffix)] if suffix else value
    try:
        size = float(number) * _SUFFIXES[suffix]
    except ValueError:
        raise ValueError(f"{name} must be a size like 4G or 1000000 bytes, got {text!r}") from None
    if not size > 0 or size == float("inf"):
        raise ValueError(f"{name} must be a size > 0, got {text!r}")
    return int(size)


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def available_memory() -> int | None:
    """Bytes this process may still allocate: ``PYTORCH_ES_MEMORY_LIMIT`` if set, else
    ``MemAvailable`` (Linux), else the physical memory; ``None`` if unknown."""
    limit = os.environ.get(MEMORY_LIMIT_VARIABLE)
    if limit:
        return parse_size(limit, MEMORY_LIMIT_VARIABLE)
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def check_memory(estimate: float, what: str, hint: str = "") -> None:
    """Raise :class:`ResourceLimitError` if ``estimate`` bytes exceed the memory available.

    ``what`` names the size asked for (``"--test-episodes 2147483646 (one batch of
    2147483646 sub-envs)"``); ``hint`` says what to do instead.
    """
    available = available_memory()
    if available is None or estimate <= available:
        return
    source = f"the {MEMORY_LIMIT_VARIABLE} limit" if os.environ.get(MEMORY_LIMIT_VARIABLE) else "available"
    raise ResourceLimitError(
        f"{what} needs at least {format_bytes(estimate)} of memory, more than the {format_bytes(available)} "
        f"{source}" + (f"; {hint}" if hint else "")
    )


def batch_bytes(sub_envs: int, num_parameters: int) -> int:
    """Lower bound of a batch of ``sub_envs`` sub-envs whose members each hold
    ``num_parameters`` float32 parameters."""
    return int(sub_envs) * (BYTES_PER_SUB_ENV + 4 * int(num_parameters))


def max_load_bytes(max_bytes: int | None = None) -> int:
    """The cap on what a loaded file may expand to: ``max_bytes``, else
    ``PYTORCH_ES_MAX_LOAD_BYTES``, else 4 GiB."""
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be an int >= 1 (bytes), got {max_bytes!r}")
        return max_bytes
    text = os.environ.get(LOAD_LIMIT_VARIABLE)
    return parse_size(text, LOAD_LIMIT_VARIABLE) if text else DEFAULT_MAX_LOAD_BYTES
