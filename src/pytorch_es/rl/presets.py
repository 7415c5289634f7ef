"""Presets: tuned settings per env (and strategy), shipped as TOML files.

Each file in ``pytorch_es/presets/`` is a fragment of a run's config (the keys of
:class:`pytorch_es.training.TrainConfig`), named after what it tunes: ``CartPole-v1.toml``
(OpenAI-ES), ``CartPole-v1-pgpe.toml`` (PGPE), ... Its ``[measured]`` table records the
result it was measured at (not a setting). ``generic.toml`` holds the settings of every
env that has no preset, and per strategy the ``[strategy]`` settings of ``--algo NAME``.

In a preset, as in a user's config file, the string ``"none"`` means no value (no target,
the env's own step limit, ...), since TOML has no null.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "NONE",
    "PRESET_DIR",
    "Preset",
    "available_presets",
    "defaults_for",
    "find_preset",
    "get_preset",
    "merge_tables",
    "read_toml",
]

NONE = "none"
PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
GENERIC_NAME = "generic"
METADATA_KEY = "measured"
STRATEGY_KEYS = ("sigma", "lr", "optimizer", "fitness_shaping")  # what [strategies.NAME] may set


def read_toml(path: str | os.PathLike[str], what: str = "--config") -> dict[str, Any]:
    """The table in the TOML file ``path``; ``ValueError`` naming ``what`` when the file
    is missing, unreadable or not TOML."""
    path = Path(path)
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "no such file"
        raise ValueError(f"{what} {str(path)!r}: {reason}")
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{what} {str(path)!r} is not TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {str(path)!r} cannot be read: {getattr(error, 'strerror', None) or error}") from None


@dataclass(frozen=True)
class Preset:
    """One preset file: its ``settings`` (a config fragment) and what it was ``measured`` at."""

    name: str
    path: Path
    settings: dict[str, Any] = field(repr=False)
    measured: dict[str, Any] = field(repr=False)

    @property
    def env_id(self) -> str:
        return str(self.settings.get("env_id", ""))

    @property
    def algo(self) -> str:
        return str(self.settings.get("strategy", {}).get("name", "openai-es"))


@functools.lru_cache(maxsize=1)
def _presets() -> dict[str, Preset]:
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.toml"), key=lambda path: path.stem):
        if path.stem == GENERIC_NAME:
            continue
        data = read_toml(path, "preset")
        measured = data.pop(METADATA_KEY, {})
        presets[path.stem] = Preset(path.stem, path, data, measured)
    return presets


def available_presets() -> list[Preset]:
    """Every shipped preset, sorted by name."""
    return list(_presets().values())


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``ValueError`` with the close names otherwise."""
    presets = _presets()
    if name in presets:
        return presets[name]
    close = difflib.get_close_matches(str(name), list(presets), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown preset {name!r}{hint}; available: {', '.join(presets)} (pytorch-es presets)")


def find_preset(env_id: str, algo: str = "openai-es") -> Preset | None:
    """The preset tuned for ``algo`` on ``env_id``, if one is shipped."""
    for preset in _presets().values():
        if preset.env_id == env_id and preset.algo == algo:
            return preset
    return None


def default_strategy(env_id: str) -> str:
    """The strategy ``pytorch-es train ENV`` uses without ``--algo``: that of the env's own
    preset (the one named ``ENV``, e.g. ARS for ``Swimmer-v5``), else OpenAI-ES."""
    preset = _presets().get(env_id)
    return preset.algo if preset is not None and preset.env_id == env_id else "openai-es"


@functools.lru_cache(maxsize=1)
def _generic() -> dict[str, Any]:
    return read_toml(PRESET_DIR / f"{GENERIC_NAME}.toml", "preset")


def defaults_for(env_id: str, algo: str = "openai-es") -> tuple[dict[str, Any], str]:
    """(settings, where they came from) of strategy ``algo`` on ``env_id``: the generic
    settings with those of ``algo`` from ``generic.toml``'s ``[strategies.NAME]``, under the
    env's preset for ``algo`` if there is one; else under the env's OpenAI-ES preset, if any,
    without its strategy settings but the population size. Values are as in the files
    ("none": no value).
    """
    generic = copy.deepcopy(_generic())
    per_strategy = generic.pop("strategies", {})
    settings = generic
    settings["strategy"]["name"] = algo
    settings["strategy"].update({k: v for k, v in per_strategy.get(algo, {}).items() if k in STRATEGY_KEYS})
    preset = find_preset(env_id, algo)
    if preset is not None:
        merge_tables(settings, preset.settings)
        return settings, f"preset {preset.name}"
    fallback = find_preset(env_id, "openai-es")
    if fallback is not None:  # its policy, problem, target, ...; of its strategy only the population size
        borrowed = copy.deepcopy(fallback.settings)
        size = borrowed.pop("strategy", {}).get("population_size")
        merge_tables(settings, borrowed)
        if size is not None:
            settings["strategy"]["population_size"] = size
        return settings, f"preset {fallback.name} with {algo}'s generic settings"
    own = _presets().get(env_id)
    missing = f"no {algo} preset for {env_id} (its preset is for {own.algo})" if own is not None else (
        f"no preset for {env_id}")
    return settings, (f"{missing}: generic defaults (a linear policy on normalised observations, {algo}; "
                      "pytorch-es presets lists the tuned envs)")


def merge_tables(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base`` in place, table by table (``layer``'s values copied)."""
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_tables(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base
