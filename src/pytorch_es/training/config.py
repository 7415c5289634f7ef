"""``TrainConfig``: one typed, validated description of a whole training run.

A config has a few run-level fields and one table per object the run builds, each
holding that object's constructor arguments under their constructor names:

- ``[strategy]``: ``pytorch_es.strategies.get(name)(center, **the rest)``; any other
  keyword of the strategy's constructor (e.g. CEM's ``elite_ratio``) may be added;
- ``[policy]``: the MLP (``hidden``, ``activation``);
- ``[problem]``: the rollouts (``GymProblem`` / ``TorchEnvProblem``: ``episodes_per_member``,
  ``max_steps``, ``obs_norm``, ``reward_shift``), which envs (``vector``) and ``device``;
- ``[evaluation]``: ``make_evaluator`` (``backend``, ``workers``, ``ray_address``, ``timeout``).

``resolve_config`` layers, lowest first: ``presets/generic.toml``, the env's preset, a
config file, explicit overrides (the command line's options). ``config.json`` in a run
directory is ``TrainConfig.to_dict()``; ``pytorch-es train --config config.json`` replays it.
In TOML files the string ``"none"`` stands for ``None``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EvaluationConfig",
    "PolicyConfig",
    "ProblemConfig",
    "StrategyConfig",
    "TrainConfig",
    "flatten_config",
    "load_config_file",
    "resolve_config",
]

NONE = "none"
BACKENDS = ("auto", "serial", "threads", "processes", "ray")
VECTORS = ("gymnasium", "torch", "envpool", "auto")
OPTIMIZERS = ("sgd", "adam", "adamw", "clipup")
SHAPINGS = ("centered_ranks", "z_score", "raw", "nes")
MAX_SEED = (1 << 63) - 1
# Keys that describe a config but are not settings: config.json's package versions and
# command line, a preset's measured result.
METADATA_KEYS = ("versions", "command", "measured")


@dataclass
class StrategyConfig:
    """The strategy: ``name`` in the registry and its constructor arguments.
    ``optimizer`` / ``fitness_shaping`` ``None``: the strategy has none to set."""

    name: str = "openai-es"
    population_size: int = 64
    sigma: float = 0.1
    lr: float = 0.1
    optimizer: str | None = "sgd"
    fitness_shaping: str | None = "centered_ranks"
    options: dict[str, Any] = field(default_factory=dict)  # any other keyword of the strategy

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the strategy's constructor (``seed`` aside)."""
        kwargs = {"population_size": self.population_size, "sigma": self.sigma, "lr": self.lr}
        for key in ("optimizer", "fitness_shaping"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return {**kwargs, **self.options}


@dataclass
class PolicyConfig:
    """The MLP policy: hidden sizes (``()``: linear) and hidden activation.
    The dataclasses' defaults are ``presets/generic.toml``'s (a test checks it)."""

    hidden: tuple[int, ...] = ()
    activation: str = "tanh"


@dataclass
class ProblemConfig:
    """The rollouts of a member: episodes, step limit (``None``: the env's), observation
    normalisation, the training-only reward shift, the envs (``vector``) and ``device``."""

    episodes_per_member: int = 1
    max_steps: int | None = None
    obs_norm: bool = True
    reward_shift: float = 0.0
    vector: str = "gymnasium"
    device: str = "cpu"


@dataclass
class EvaluationConfig:
    """Where members run: ``backend``, ``workers`` (``None``: automatic), a Ray cluster's
    ``ray_address``, and the seconds a task may run on a worker (``timeout``)."""

    backend: str = "auto"
    workers: int | None = None
    ray_address: str | None = None
    timeout: float | None = None


@dataclass
class TrainConfig:
    """A whole run. ``seed`` ``None``: drawn at random (and recorded) when the run starts;
    ``target`` ``None``: no target; ``out`` ``None``: ``runs/ENV_ID-TIMESTAMP``."""

    env_id: str
    seed: int | None = None
    generations: int = 500
    target: float | None = None
    test_every: int = 1
    test_episodes: int = 100
    checkpoint_every: int = 10
    tensorboard: bool = False
    out: str | None = None
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self) -> None:
        values = _validate({name: getattr(self, name) for name in _fields(TrainConfig)}, "TrainConfig")
        for name, value in values.items():
            setattr(self, name, value)

    # ---------------------------------------------------------------- (de)serialising
    def to_dict(self) -> dict[str, Any]:
        """Nested plain data (``None`` kept), as written to ``config.json``."""
        data = dataclasses.asdict(self)
        data["policy"]["hidden"] = list(self.policy.hidden)
        data["strategy"].update(data["strategy"].pop("options"))
        return data

    def to_toml(self) -> str:
        """The config as a TOML file that ``--config`` reads back (``None`` as ``"none"``)."""
        data = self.to_dict()
        lines = [f"{key} = {_toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
        for table, values in data.items():
            if isinstance(values, dict):
                lines += ["", f"[{table}]", *(f"{key} = {_toml_value(value)}" for key, value in values.items())]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """A config from nested data such as ``to_dict()`` gives (``"none"`` read as ``None``);
        missing settings take the dataclasses' defaults. ``source`` names the data in errors."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{source} must be a table (a dict), got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k not in METADATA_KEYS}
        _check_keys(data, _fields(cls), "", source)
        if "env_id" not in data:
            raise ValueError(f"{source}: missing required key 'env_id' (the Gymnasium env id, e.g. 'CartPole-v1')")
        return cls(**_validate(data, source))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (top-level fields, or whole tables), validated."""
        return dataclasses.replace(self, **changes)


# -------------------------------------------------------------------- resolution
def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The table in a config file: TOML (``.toml``), or JSON (a run's ``config.json``)."""
    from pytorch_es.rl.presets import read_toml

    path = Path(path)
    if path.suffix.lower() != ".json":
        return read_toml(path, "--config")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"--config {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--config {str(path)!r} is not a JSON config: {error}") from None
    if isinstance(data, dict) and "population" in data and "strategy" not in data:
        data = legacy_to_nested(data)  # a run directory of release 0.2
    return data


def resolve_config(
    env_id: str | None = None,
    *,
    preset: str | None = None,
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    labels: Callable[[str], str] | None = None,
    new_seed: Callable[[], int] | None = None,
) -> TrainConfig:
    """The config of a new run, from (lowest first) the generic settings, the preset
    (``preset``, else the one shipped for the env and strategy, if any), ``config`` (a
    file's path or its table) and ``overrides`` (nested, like ``to_dict()``; ``None``
    values are left out). A missing ``target`` is the env's ``reward_threshold``; a
    missing ``seed`` is drawn with ``new_seed``. ``labels`` names a dotted key in errors
    about ``overrides`` (the CLI gives its options' names).
    """
    from pytorch_es.rl import check_env_id, reward_threshold
    from pytorch_es.rl.presets import defaults_for, get_preset, merge_tables

    label = labels or (lambda key: key)
    if isinstance(config, (str, os.PathLike)):
        file_layer, source = load_config_file(config), f"--config {str(config)!r}"
    else:
        file_layer, source = dict(config or {}), "config"
    file_layer = {k: v for k, v in file_layer.items() if k not in METADATA_KEYS}
    user = merge_tables(copy.deepcopy(file_layer), _drop_none(overrides or {}))
    chosen = get_preset(preset) if preset is not None else None
    env = env_id or user.get("env_id") or (chosen.env_id if chosen is not None else None)
    if not env:
        raise ValueError("no env id: give ENV_ID, or env_id in the --config file")
    if not isinstance(env, str):
        raise TypeError(f"{source}: env_id must be a str, got {type(env).__name__}")
    env = check_env_id(env)
    user_strategy = user.get("strategy") if isinstance(user.get("strategy"), Mapping) else {}
    algo = _strategy_name(user_strategy, chosen, env)
    if chosen is not None and algo != chosen.algo:
        raise ValueError(f"preset {chosen.name} is tuned for {chosen.algo}, not {label('strategy.name')} {algo}: "
                         "leave one of them out")
    base, origin = defaults_for(chosen.env_id, algo) if chosen is not None else defaults_for(env, algo)
    if chosen is not None and chosen.env_id != env:  # a preset borrowed for another env: not its target
        base.pop("target", None)
        origin = f"preset {chosen.name} (tuned for {chosen.env_id}, not {env})"
        warnings.warn(f"preset {chosen.name} was tuned and measured on {chosen.env_id}, not {env}; its settings "
                      f"apply, with {env}'s own target", stacklevel=2)
    for key in ("optimizer", "fitness_shaping"):
        if base["strategy"].get(key) == NONE and user_strategy.get(key) not in (None, NONE):
            raise ValueError(f"{label(f'strategy.{key}')} does not apply to {label('strategy.name')} {algo}")
    merged = merge_tables(base, user)
    merged["env_id"] = env
    if "target" not in merged:
        merged["target"] = reward_threshold(env)
    if merged.get("seed") in (None, NONE):
        merged["seed"] = (new_seed or random_seed)()
    resolved = TrainConfig.from_dict(merged, source=source)
    resolved.origin = origin  # type: ignore[attr-defined]  # not a setting: what the defaults came from
    return resolved


def _strategy_name(strategy: Mapping[str, Any], chosen: Any, env_id: str) -> str:
    """The strategy's registered name: the user's, else the chosen preset's, else that of the
    env's own preset (``rl.presets.default_strategy``), else OpenAI-ES."""
    if strategy.get("name") is not None:
        name = strategy["name"]
        if not isinstance(name, str):
            raise TypeError(f"strategy.name must be a str, got {type(name).__name__}")
        from pytorch_es.strategies import registry

        registry.get(name)  # one line with close names when unknown
        return name.lower()
    if chosen is not None:
        return chosen.algo
    from pytorch_es.rl.presets import default_strategy

    return default_strategy(env_id)


def random_seed() -> int:
    """A fresh run seed (31 bits), drawn from the OS."""
    from pytorch_es.strategies.openai_es import new_seed

    return new_seed() % (1 << 31)


# ------------------------------------------------------------------ flat views
def flatten_config(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"strategy": {"sigma": 0.1}}`` -> ``{"strategy.sigma": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``flatten_config``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *tables, name = key.split(".")
        target = nested
        for table in tables:
            target = target.setdefault(table, {})
        target[name] = value
    return nested


# Release 0.2 wrote a flat config.json and checkpoint config; their keys, as dotted keys.
LEGACY_KEYS = {
    "algo": "strategy.name",
    "population": "strategy.population_size",
    "sigma": "strategy.sigma",
    "lr": "strategy.lr",
    "optimizer": "strategy.optimizer",
    "fitness_shaping": "strategy.fitness_shaping",
    "hidden": "policy.hidden",
    "activation": "policy.activation",
    "episodes": "problem.episodes_per_member",
    "max_steps": "problem.max_steps",
    "obs_norm": "problem.obs_norm",
    "reward_shift": "problem.reward_shift",
    "vector": "problem.vector",
    "device": "problem.device",
    "backend": "evaluation.backend",
    "workers": "evaluation.workers",
    "ray_address": "evaluation.ray_address",
    "timeout": "evaluation.timeout",
}


def legacy_to_nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A release-0.2 flat config as a nested one (``algo`` missing: OpenAI-ES; no
    ``reward_shift``: 0, as those runs had)."""
    data = {LEGACY_KEYS.get(key, key): value for key, value in flat.items() if key not in METADATA_KEYS}
    data.setdefault("strategy.name", "openai-es")
    data.setdefault("problem.reward_shift", 0.0)
    return nest(data)


# -------------------------------------------------------------------- validation
def _fields(cls: type) -> dict[str, type | None]:
    """Field name -> its table's dataclass, or ``None`` for a plain value."""
    tables = {"strategy": StrategyConfig, "policy": PolicyConfig, "problem": ProblemConfig,
              "evaluation": EvaluationConfig}
    return {f.name: tables.get(f.name) if cls is TrainConfig else None
            for f in dataclasses.fields(cls) if f.name != "options"}


def _check_keys(data: Mapping[str, Any], known: Mapping[str, Any], table: str, source: str,
                extra: Mapping[str, Any] = ()) -> dict[str, Any]:
    for key in data:
        if key not in known and key not in extra:
            where = f"{table}.{key}" if table else key
            close = difflib.get_close_matches(str(key), [*known, *extra], n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            keys = ", ".join([*known, *extra])
            raise ValueError(f"{source}: unknown key {where!r}{hint}; {table or 'the top level'} has {keys}")
    return dict(data)


def _validate(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Checked values of the top-level keys in ``data``; every table is built (missing: defaults)."""
    values: dict[str, Any] = {}
    for name, kind in _fields(TrainConfig).items():
        if kind is not None:
            values[name] = _table(kind, data.get(name, {}), name, source)
        elif name in data:
            values[name] = _check(name, data[name], source)
    return values


def _table(kind: type, data: Any, name: str, source: str) -> Any:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
        if name == "strategy":
            data.update(data.pop("options"))
    if not isinstance(data, Mapping):
        raise TypeError(f"{source}: {name} must be a table, got {type(data).__name__}")
    known = _fields(kind)
    extra: dict[str, Any] = {}
    if name == "strategy":
        extra = _strategy_keywords(data.get("name", "openai-es"), known)
    values = _check_keys(data, known, name, source, extra)
    checked = {key: _check(f"{name}.{key}", value, source) for key, value in values.items() if key in known}
    if name == "strategy":
        checked["options"] = {key: _check_option(f"strategy.{key}", value, source)
                              for key, value in values.items() if key not in known}
    return kind(**checked)


def _strategy_keywords(name: Any, known: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of strategy ``name``'s constructor (its class and bases) that
    a config may set, beyond the standard ones."""
    from pytorch_es.strategies import registry

    if not isinstance(name, str):
        raise TypeError(f"strategy.name must be a str, got {type(name).__name__}")
    cls = registry.get(name)
    keywords: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind is parameter.KEYWORD_ONLY and parameter.name not in (*known, "seed", "device"):
                keywords.setdefault(parameter.name, parameter.default)
    return keywords


def _check_option(key: str, value: Any, source: str) -> Any:
    if value == NONE:
        return None
    if not isinstance(value, (bool, int, float, str, list)):
        raise TypeError(f"{source}: {key} must be a number, a string, a bool or a list, got {type(value).__name__}")
    return value


def _expect(key: str, value: Any, what: str, source: str, error: type[Exception] = TypeError) -> Exception:
    return error(f"{source}: {key} must be {what}, got {value!r}" + (
        f" ({type(value).__name__})" if error is TypeError else ""))


def _integer(key: str, value: Any, source: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expect(key, value, f"an integer >= {low}", source)
    if value < low or (high is not None and value > high):
        raise _expect(key, value, f"an integer >= {low}" + (f" and <= {high}" if high else ""), source, ValueError)
    return value


def _number(key: str, value: Any, source: str, *, positive: bool = False, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _expect(key, value, "a number", source)
    value = float(value)
    if math.isnan(value) or (finite and not math.isfinite(value)) or (positive and not value > 0):
        raise _expect(key, value, "a positive finite number" if positive else "a finite number", source, ValueError)
    return value


def _text(key: str, value: Any, source: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise _expect(key, value, "a non-empty string", source)
    if choices is not None and value not in choices:
        raise _expect(key, value, "one of " + ", ".join(choices), source, ValueError)
    return value


def _flag(key: str, value: Any, source: str) -> bool:
    if not isinstance(value, bool):
        raise _expect(key, value, "true or false", source)
    return value


def _hidden(key: str, value: Any, source: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise _expect(key, value, "a list of layer sizes, e.g. [64, 64] ([] for a linear policy)", source)
    return tuple(_integer(f"{key}[{i}]", size, source, 1) for i, size in enumerate(value))


def _device(key: str, value: Any, source: str) -> str:
    text = _text(key, value, source)
    if text.split(":")[0] not in ("cpu", "cuda", "mps", "xpu"):
        raise _expect(key, value, "cpu, cuda or cuda:N", source, ValueError)
    return text


# dotted key -> (check, nullable)
_CHECKS: dict[str, tuple[Callable[[str, Any, str], Any], bool]] = {
    "env_id": (_text, False),
    "seed": (lambda k, v, s: _integer(k, v, s, 0, MAX_SEED), True),
    "generations": (lambda k, v, s: _integer(k, v, s, 0), False),
    "target": (lambda k, v, s: _number(k, v, s, finite=False), True),
    "test_every": (lambda k, v, s: _integer(k, v, s, 1), False),
    "test_episodes": (lambda k, v, s: _integer(k, v, s, 1), False),
    "checkpoint_every": (lambda k, v, s: _integer(k, v, s, 0), False),
    "tensorboard": (_flag, False),
    "out": (_text, True),
    "strategy.name": (_text, False),
    "strategy.population_size": (lambda k, v, s: _integer(k, v, s, 2), False),
    "strategy.sigma": (lambda k, v, s: _number(k, v, s, positive=True), False),
    "strategy.lr": (lambda k, v, s: _number(k, v, s, positive=True), False),
    "strategy.optimizer": (lambda k, v, s: _text(k, v, s, OPTIMIZERS), True),
    "strategy.fitness_shaping": (lambda k, v, s: _text(k, v, s, SHAPINGS), True),
    "policy.hidden": (_hidden, False),
    "policy.activation": (_text, False),
    "problem.episodes_per_member": (lambda k, v, s: _integer(k, v, s, 1), False),
    "problem.max_steps": (lambda k, v, s: _integer(k, v, s, 1), True),
    "problem.obs_norm": (_flag, False),
    "problem.reward_shift": (_number, False),
    "problem.vector": (lambda k, v, s: _text(k, v, s, VECTORS), False),
    "problem.device": (_device, False),
    "evaluation.backend": (lambda k, v, s: _text(k, v, s, BACKENDS), False),
    "evaluation.workers": (lambda k, v, s: _integer(k, v, s, 1), True),
    "evaluation.ray_address": (_text, True),
    "evaluation.timeout": (lambda k, v, s: _number(k, v, s, positive=True), True),
}


def _check(key: str, value: Any, source: str) -> Any:
    check, nullable = _CHECKS[key]
    if value is None or value == NONE:
        if nullable:
            return None
        raise _expect(key, value, "set (it has no 'none')", source, ValueError)
    return check(key, value, source)


def _toml_value(value: Any) -> str:
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # numbers, and strings (JSON's escapes are TOML's basic strings')


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out[key] = _drop_none(value)
        elif value is not None:
            out[key] = value
    return out
