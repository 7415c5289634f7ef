"""Argument validators, one convention for the whole library.

* ``TypeError`` for a wrong type, ``ValueError`` for a wrong value.
* ``bool`` is not a number: ``True`` is refused where an int or a float is expected.
* The message names the argument and what was expected, then what was given.
* A validator returns the value it accepted (converted: a float for a number, an
  int for a count), so a constructor reads ``self.sigma = check_positive("sigma", sigma)``.

A generic validator takes the argument's name first (``check_positive("sigma", value)``,
``check_int("workers", value)``); a validator for one particular argument takes the
value first and names it by default (``check_timeout(value)``, ``check_reward(value, member)``).
"""

from __future__ import annotations

import math
import numbers

import torch


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float ``> 0`` (``>= 0`` with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def check_fraction(name: str, value: float, *, closed: bool = True) -> float:
    """A number in (0, 1] (or (0, 1) when not ``closed``)."""
    value = check_positive(name, value)
    if value > 1.0 or (value == 1.0 and not closed):
        raise ValueError(f"{name} must be in (0, {'1]' if closed else '1)'}, got {value}")
    return value


def check_decay(name: str, value: float) -> float:
    """A multiplicative per-iteration decay must lie in (0, 1]."""
    return check_fraction(name, value)


def check_int(name: str, value: int | None, minimum: int = 1, *, allow_none: bool = False) -> int | None:
    """``value`` as an int ``>= minimum`` (any integral type but ``bool``: numpy ints too),
    or ``None`` when ``allow_none``."""
    if value is None and allow_none:
        return None
    expected = f"an int >= {minimum}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_finite(name: str, value: float) -> float:
    """``value`` as a finite float (any real number but ``bool``: numpy scalars too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    """A positive finite number of seconds as a float, or ``None`` (no limit)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, got {timeout!r}")
    return float(timeout)


def check_population_size(population_size: int, minimum: int = 2) -> int:
    """The number of members of a generation: an int ``>= minimum``."""
    if isinstance(population_size, bool) or not isinstance(population_size, int):
        raise TypeError(f"population_size must be an int, got {type(population_size).__name__}")
    if population_size < minimum:
        raise ValueError(f"population_size must be >= {minimum}, got {population_size}")
    return population_size


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a torch.device that can hold tensors here.

    TypeError unless it is a ``str``, ``torch.device`` or device index; ValueError when
    this torch build or machine cannot allocate on it (e.g. ``'cuda'`` without CUDA).
    """
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"device must be a str or torch.device (e.g. 'cpu'), got {type(device).__name__}")
    try:
        device = torch.device(device)
        torch.empty(1, device=device)
    except Exception as error:
        raise ValueError(
            f"device={str(device)!r} cannot be used here ({type(error).__name__}: {error}); "
            "use device='cpu' or a device this torch build supports"
            + (" (torch.cuda.is_available() is False)" if "cuda" in str(device) else "")
        ) from None
    return device


def check_reward(value: object, member: int | str) -> float:
    """Return ``value`` as a finite float, or raise naming the member (an index or a label).

    A one-element tensor and a numpy scalar are accepted; TypeError for anything
    that is not one real number (``bool`` included), ValueError for NaN and infinities.
    """
    who = f"member {member}" if isinstance(member, int) else member
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"reward of {who} is a tensor of shape {tuple(value.shape)}; "
                "expected a single number"
            )
        value = value.item()
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"reward of {who} must be a real number, got {type(value).__name__} "
            f"({value!r})"
        )
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"reward of {who} is {value}; rewards must be finite")
    return value
