"""Lazy plug-ins: a package higher up fills a registry of a lower layer, on first need.

Lower layers keep registries that packages above them fill when they are imported:

- ``"parameter_sources"`` (:func:`pytorch_es.core.parameters.register_parameter_source`):
  how to get the torch tensors of a model type; keyed by the top-level package that
  defines the type (``type(obj).__module__.split(".")[0]``);
- ``"policy_kinds"`` (:func:`pytorch_es.rl.policy.register_policy`): how to rebuild a
  policy from its ``config()``; keyed by the config's ``"type"``.

The lower layers never name those packages. So that a user need not import such a
package before handing its objects to the library, the top of the house *declares* here
which module fills which key, without importing it (:func:`declare`); a registry that
meets a key it has nothing for calls :func:`load`, which imports the declared module
once (its import registers what it provides). This module imports nothing, so
declaring costs nothing at ``import pytorch_es``.
"""

from __future__ import annotations

import importlib

__all__ = ["declare", "declared", "generation", "load"]

REGISTRIES = ("parameter_sources", "policy_kinds")

_DECLARED: dict[str, dict[str, str]] = {registry: {} for registry in REGISTRIES}
_LOADED: set[tuple[str, str]] = set()
_GENERATION = [0]  # bumped by every declaration: registries may cache what they did not find


def _check(registry: str, key: str) -> None:
    if registry not in _DECLARED:
        raise ValueError(f"registry must be one of {REGISTRIES}, got {registry!r}")
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be a non-empty str, got {key!r}")


def declare(registry: str, key: str, module: str) -> None:
    """Import ``module`` the first time ``registry`` meets ``key`` (``module`` registers it).

    E.g. ``declare("policy_kinds", "linear", "mypackage.policies")`` makes
    ``policy_from_config({"type": "linear", ...})`` import ``mypackage.policies`` first.
    """
    _check(registry, key)
    if not isinstance(module, str) or not module:
        raise TypeError(f"module must be a non-empty module name, got {module!r}")
    _DECLARED[registry][key] = module
    _GENERATION[0] += 1


def generation() -> int:
    """A counter that every :func:`declare` increments (a cached miss is stale once it moves)."""
    return _GENERATION[0]


def declared(registry: str) -> dict[str, str]:
    """A copy of ``registry``'s declarations: key -> module."""
    _check(registry, "?")
    return dict(_DECLARED[registry])


def load(registry: str, key: str) -> bool:
    """Import the module declared for ``key`` in ``registry`` (once); False if none is.

    The import's own error (e.g. an optional dependency that is missing, with its
    install hint) propagates, and a later call tries again.
    """
    module = _DECLARED.get(registry, {}).get(key)
    if module is None or (registry, key) in _LOADED:
        return False
    importlib.import_module(module)
    _LOADED.add((registry, key))
    return True
