"""What every subcommand shares: exit statuses, the one-line user error, argparse types."""

from __future__ import annotations

import argparse
import math
from typing import Any

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_TARGET_MISSED = 3  # training ended (generation budget) without reaching --target


class CLIError(Exception):
    """A user error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Terminated(BaseException):
    """SIGTERM outside the training loop (which handles it itself): unwinds, closing workers."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``pytorch-es train: error: ...``) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- argparse types
def positive_int(minimum: int = 1, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum} (2^63 - 1), got {value}")
        return value

    return parse


def positive_float(allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}, got {text}")
        return value

    return parse


def timeout(text: str) -> float | str:
    if text.lower() in ("none", "off"):
        return "none"
    return positive_float()(text)


def target(text: str) -> float | str:
    if text.lower() in ("none", "off"):
        return "none"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'none', got {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("must not be NaN")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def algo(text: str) -> str:
    """A registered strategy name (one line with close names otherwise)."""
    from pytorch_es.strategies import registry

    try:
        registry.get(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.lower()


def hidden(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "linear"):
        return []  # no hidden layer: a linear policy
    sizes = []
    for part in text.replace(",", " ").split():
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes layer sizes like '64' or '64,64', got {text!r}") from None
        if size < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {size}")
        sizes.append(size)
    return sizes


def setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``: a dotted config key and a TOML value (``8``, ``0.5``,
    ``true``, ``[64, 64]``, ``"none"``); a value that is not TOML is taken as a string."""
    import tomllib

    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with a dotted config key, e.g. strategy.top_directions=8, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key, parsed
