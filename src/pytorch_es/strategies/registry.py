"""The strategy registry: ``get(name)`` and ``available()`` feed ``pytorch-es train --algo``
and ``EvolutionModule(..., strategy=...)``."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys

# name -> "module:Class" (imported on first use) or a registered class
_REGISTRY: dict[str, str | type] = {
    "openai-es": "pytorch_es.strategies.openai_es:OpenAIES",
    "snes": "pytorch_es.strategies.snes:SNES",
    "pgpe": "pytorch_es.strategies.pgpe:PGPE",
    "cma-es": "pytorch_es.strategies.cma_es:CMAES",
    "sep-cma-es": "pytorch_es.strategies.sep_cma_es:SepCMAES",
    "ipop-cma-es": "pytorch_es.strategies.restarts:IPOPCMAES",
    "bipop-cma-es": "pytorch_es.strategies.restarts:BIPOPCMAES",
    "cem": "pytorch_es.strategies.cem:CEM",
    "ars": "pytorch_es.strategies.ars:ARS",
    "xnes": "pytorch_es.strategies.xnes:XNES",
    "cr-fm-nes": "pytorch_es.strategies.cr_fm_nes:CRFMNES",
    "ipop-cr-fm-nes": "pytorch_es.strategies.restarts:IPOPCRFMNES",
}


def available() -> list[str]:
    """The registered strategy names, sorted."""
    return sorted(name for name in _REGISTRY if _importable(name))


def _importable(name: str) -> bool:
    target = _REGISTRY[name]
    if not isinstance(target, str):
        return True
    module = target.split(":", 1)[0]
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def unknown_message(name: object) -> str:
    """One line: the unknown name, close names if any, and every name."""
    close = difflib.get_close_matches(str(name).lower(), available(), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown strategy {name!r}{hint}; available: {', '.join(available())}"


def get(name: str) -> type:
    """The strategy class registered as ``name`` (case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"strategy name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY or not _importable(key):
        raise ValueError(unknown_message(name))
    target = _REGISTRY[key]
    if not isinstance(target, str):
        return target
    module, cls = target.split(":", 1)
    return getattr(importlib.import_module(module), cls)


def register(name: str, target: str | type) -> None:
    """Register a strategy class (or its ``"module:Class"`` path) under ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"strategy name must be a non-empty str, got {name!r}")
    if not isinstance(target, str):
        from pytorch_es.strategies.base import Strategy

        if not (isinstance(target, type) and issubclass(target, Strategy)):
            raise TypeError(f"register() needs a Strategy subclass or a 'module:Class' path, got {target!r}")
    _REGISTRY[name.lower()] = target
