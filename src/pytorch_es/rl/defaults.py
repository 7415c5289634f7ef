"""``get_defaults(env_id)``: the OpenAI-ES settings of an env as one flat record.

The settings themselves live in the preset files (:mod:`pytorch_es.rl.presets`); this
flat view is kept for code written against the first release. A whole run is described by
:class:`pytorch_es.training.TrainConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pytorch_es.rl.presets import NONE, available_presets, defaults_for

__all__ = ["DEFAULTS", "GENERIC", "RLDefaults", "get_defaults"]


@dataclass(frozen=True)
class RLDefaults:
    """Hyperparameters of a run on one env (flat; the preset files' values).

    Attributes:
        population: members per generation (``strategy.population_size``).
        sigma: perturbation scale.
        lr: learning rate of ``optimizer``.
        optimizer: ``"sgd"``, ``"adam"``, ``"clipup"``, or ``None`` for a strategy without one.
        hidden: MLP hidden sizes.
        activation: MLP activation.
        episodes: episodes per member per generation (``problem.episodes_per_member``).
        max_steps: training step limit per episode (``None``: the env's).
        generations: generation budget.
        target: stop when the greedy test mean reaches this (``None``: the env's
            ``reward_threshold``).
        obs_norm: running observation normalisation.
        fitness_shaping: ``"centered_ranks"``, ``"z_score"``, ``"raw"``, ``"nes"`` or ``None``.
        test_episodes: episodes of the greedy test of the center.
    """

    population: int
    sigma: float
    lr: float
    optimizer: str | None
    hidden: tuple[int, ...]
    activation: str
    episodes: int
    max_steps: int | None
    generations: int
    target: float | None
    obs_norm: bool
    fitness_shaping: str | None
    test_episodes: int

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data


def _none(value: Any) -> Any:
    return None if value == NONE else value


def flat_defaults(env_id: str, algo: str = "openai-es") -> RLDefaults:
    """The settings of strategy ``algo`` on ``env_id`` (see ``defaults_for``), flat."""
    settings, _ = defaults_for(env_id, algo)
    strategy, policy, problem = settings["strategy"], settings["policy"], settings["problem"]
    target = _none(settings.get("target"))
    return RLDefaults(
        population=strategy["population_size"], sigma=strategy["sigma"], lr=strategy["lr"],
        optimizer=_none(strategy["optimizer"]), fitness_shaping=_none(strategy["fitness_shaping"]),
        hidden=tuple(policy["hidden"]), activation=policy["activation"],
        episodes=problem["episodes_per_member"], max_steps=_none(problem["max_steps"]),
        generations=settings["generations"], target=None if target is None else float(target),
        obs_norm=problem["obs_norm"], test_episodes=settings["test_episodes"],
    )


def get_defaults(env_id: str) -> RLDefaults:
    """The OpenAI-ES settings of ``env_id``: its preset, else the generic ones with the
    env's reward threshold as target."""
    defaults = flat_defaults(env_id)
    if defaults.target is not None:
        return defaults
    from dataclasses import replace

    from pytorch_es.rl.envs import reward_threshold

    try:
        target = reward_threshold(env_id)
    except Exception:  # unknown ids are reported by check_env_id where they are used
        target = None
    return replace(defaults, target=target)


GENERIC = flat_defaults("")  # no env has the empty id: the generic settings
DEFAULTS: dict[str, RLDefaults] = {
    preset.env_id: flat_defaults(preset.env_id) for preset in available_presets() if preset.algo == "openai-es"
}
