"""``get_algo_defaults(env_id, algo)``: the settings of ``pytorch-es train ENV --algo NAME``,
flat (see :func:`pytorch_es.rl.presets.defaults_for` for where they come from)."""

from __future__ import annotations

from pytorch_es.rl.defaults import RLDefaults, flat_defaults, get_defaults

__all__ = ["get_algo_defaults"]


def get_algo_defaults(env_id: str, algo: str) -> RLDefaults:
    """The defaults of strategy ``algo`` on ``env_id``."""
    if algo == "openai-es":
        return get_defaults(env_id)
    return flat_defaults(env_id, algo)
