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
    "ipop-cma-es": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": None},
    "bipop-cma-es": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": None},
    "xnes": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": "nes"},
    "cem": {"sigma": 0.1, "lr": 1.0, "optimizer": None, "fitness_shaping": None},
    "ars": {"sigma": 0.03, "lr": 0.02, "optimizer": None, "fitness_shaping": None},
}

_CARTPOLE = {"hidden": (), "activation": "tanh", "episodes": 1, "max_steps": 150, "generations": 100,
             "target": 475.0, "obs_norm": True}

# Measured with ``pytorch-es train CartPole-v1 --algo NAME --seed S`` on seeds not used to
# choose them (see docs/strategies.md). PGPE trains on full 500-step episodes: with the
# 150-step cap every member of a good population scores 150, the ranks tie, and the
# center stalls below the 500-step test (1 seed in 20).
ALGO_DEFAULTS: dict[tuple[str, str], RLDefaults] = {
    ("CartPole-v1", "pgpe"): RLDefaults(population=64, sigma=0.1, lr=0.05, optimizer="clipup",
                                         **{**_CARTPOLE, "max_steps": None}),
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
