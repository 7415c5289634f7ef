"""Defaults per (env, strategy) for ``pytorch-es train --algo NAME``.

OpenAI-ES takes :func:`pytorch_es.rl.defaults.get_defaults`. Another strategy takes
its own tuned entry in :data:`ALGO_DEFAULTS` when the env has one, else the env's
defaults with the strategy's generic settings (:data:`ALGO_GENERIC`) on top.
``optimizer`` or ``fitness_shaping`` ``None`` means the strategy has none to set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pytorch_es.rl.defaults import RLDefaults, get_defaults

__all__ = ["ALGO_DEFAULTS", "ALGO_GENERIC", "get_algo_defaults"]

ALGO_GENERIC: dict[str, dict[str, Any]] = {
    "snes": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": "nes"},
    "pgpe": {"sigma": 0.1, "lr": 0.05, "optimizer": "clipup", "fitness_shaping": "centered_ranks"},
    "cma-es": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": None},
    "sep-cma-es": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": None},
}

_CARTPOLE = {"hidden": (), "activation": "tanh", "episodes": 1, "max_steps": 150, "generations": 100,
             "target": 475.0, "obs_norm": True}

ALGO_DEFAULTS: dict[tuple[str, str], RLDefaults] = {
    ("CartPole-v1", "pgpe"): RLDefaults(population=64, sigma=0.1, lr=0.05, optimizer="clipup", **_CARTPOLE),
    ("CartPole-v1", "snes"): RLDefaults(population=64, sigma=0.1, lr=1.0, optimizer=None, fitness_shaping="nes",
                                         **_CARTPOLE),
}


def get_algo_defaults(env_id: str, algo: str) -> RLDefaults:
    """The defaults of strategy ``algo`` on ``env_id``."""
    if algo == "openai-es":
        return get_defaults(env_id)
    if (env_id, algo) in ALGO_DEFAULTS:
        return ALGO_DEFAULTS[(env_id, algo)]
    return replace(get_defaults(env_id), **ALGO_GENERIC.get(algo, {}))
