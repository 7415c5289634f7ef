"""Gymnasium environments: validated creation and batched stepping for population rollouts.

Two batch steppers hide how a group of sub-environments advances one step:

* :class:`VectorEntryPointBatch` wraps an env's own vectorised implementation
  (``gym.make_vec(..., vectorization_mode="vector_entry_point")``, CartPole's
  numpy ``CartPoleVectorEnv``): one numpy call steps every sub-env.
* :class:`SyncBatch` wraps ``gym.make_vec(..., vectorization_mode="sync")`` and steps
  its sub-envs itself, **only the ones whose episode is still running**, so a finished
  member costs nothing (Gymnasium's ``SyncVectorEnv.step`` would autoreset it and keep
  simulating a new episode nobody reads).

* :class:`EnvPoolBatch` wraps an EnvPool pool (``envpool.make_gymnasium``, the
  optional ``envpool`` extra): C++ envs stepped in one call, only the running ones.
  Its physics is EnvPool's build, not Gymnasium's: returns are comparable, not
  bit-identical to the other two.

The first two give every sub-env the *same start as a single env reset with the same seed*,
so a member's return in a batch equals ``run_episode`` on ``gym.make(env_id)``.
Gymnasium 1.x vector envs autoreset a finished sub-env on the *next* ``step`` call
(``AutoresetMode.NEXT_STEP``); the rollout masks every sub-env from its first
``terminated or truncated`` on, so the reset step's reward (0) and observation
never reach a member.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

__all__ = [
    "EnvPoolBatch",
    "SyncBatch",
    "VectorEntryPointBatch",
    "check_env_id",
    "check_spaces",
    "choose_vector",
    "env_spaces",
    "envpool_env_ids",
    "is_pixel_space",
    "make_batch",
    "make_env",
    "max_episode_steps",
    "reward_threshold",
    "survival_bonus",
]


# Env families whose ids need a package that gymnasium does not bring: id prefix ->
# (module that registers them, the install line).
EXTRAS = {
    "ALE/": ("ale_py", 'pip install "gymnasium[atari]"'),
}
# Families that gymnasium registers but cannot make without an extra.
MUJOCO_INSTALL = 'pip install "pytorch-es[mujoco]" (or pip install "gymnasium[mujoco]")'
ENVPOOL_INSTALL = 'pip install "pytorch-es[envpool]" (EnvPool 1.2.5, Python >= 3.11)'
MUJOCO_NAMES = {"ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "invertedpendulum",
                "inverteddoublependulum", "pusher", "reacher", "swimmer", "walker2d"}


def check_env_id(env_id: str) -> str:
    """Return ``env_id`` if Gymnasium knows it, else raise ``ValueError`` with close names,
    or with the install line when the id belongs to a family whose package is missing.

    Suggestions come from ``difflib.get_close_matches`` over ``gymnasium.registry``
    (case-insensitive), e.g. ``"LunarLander-v2"`` -> ``LunarLander-v3``. ``ALE/...`` ids
    register when ``ale_py`` is installed (it is imported here).
    """
    if not isinstance(env_id, str) or not env_id:
        raise TypeError(f"env_id must be a non-empty string, got {env_id!r}")
    if env_id in gym.registry:
        if is_mujoco(env_id) and not _importable("mujoco"):
            raise ValueError(f"{env_id} is a MuJoCo env and the mujoco package is missing: {MUJOCO_INSTALL}")
        return env_id
    for prefix, (module, install) in EXTRAS.items():
        if env_id.startswith(prefix):
            try:
                gym.register_envs(importlib.import_module(module))
            except ImportError:
                raise ValueError(f"{env_id!r} needs the {module} package: {install}") from None
            if env_id in gym.registry:
                return env_id
    ids = list(gym.registry.keys())
    lowered = {name.lower(): name for name in ids}
    matches = difflib.get_close_matches(env_id.lower(), list(lowered), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(lowered[m] for m in matches)}?" if matches else ""
    if not matches and env_id.split("/")[-1].split("-")[0].lower() in MUJOCO_NAMES:
        hint = '; MuJoCo envs need pip install "gymnasium[mujoco]"'
    raise ValueError(f"unknown Gymnasium env id {env_id!r}{hint}")


def _importable(name: str) -> bool:
    """Whether ``import name`` would find the module (without importing it: MuJoCo reads
    ``MUJOCO_GL`` when it is first imported)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_mujoco(env_id: str) -> bool:
    """Whether ``env_id`` is one of Gymnasium's MuJoCo envs (its entry point is in
    ``gymnasium.envs.mujoco``)."""
    spec = gym.registry.get(env_id)
    entry = getattr(spec, "entry_point", None)
    return isinstance(entry, str) and entry.startswith("gymnasium.envs.mujoco")


def survival_bonus(env_id: str, env_kwargs: dict[str, Any] | None = None) -> float | None:
    """The reward an env pays per step just for staying alive (MuJoCo's ``healthy_reward``:
    1 for Hopper, Walker2d and Ant, 5 for Humanoid), or ``None`` if it pays none.

    ARS (Mania et al. 2018, section 3) subtracts it from training rewards
    (``GymProblem(reward_shift=...)``): otherwise a policy that stands still scores
    ``bonus * max_steps`` and random search settles there.
    """
    spec = gym.spec(check_env_id(env_id))
    kwargs = {**spec.kwargs, **(env_kwargs or {})}
    if "healthy_reward" in kwargs:
        bonus = kwargs["healthy_reward"]
    else:  # the env class's default, read from its signature: no env is made (nor a model compiled)
        creator = spec.entry_point
        if isinstance(creator, str):
            creator = gym.envs.registration.load_env_creator(creator)
        try:
            parameter = inspect.signature(creator).parameters.get("healthy_reward")
        except (TypeError, ValueError):
            parameter = None
        bonus = None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default
    return None if bonus is None or not float(bonus) else float(bonus)


def is_pixel_space(space: spaces.Space) -> bool:
    """Whether observations are images: a ``uint8`` Box of two or more dimensions
    (Atari frames, CarRacing's 96x96x3)."""
    return isinstance(space, spaces.Box) and len(space.shape) >= 2 and space.dtype == np.uint8


def _describe(space: spaces.Space) -> str:
    text = repr(space)
    return text if len(text) <= 120 else text[:117] + "..."


def check_spaces(
    observation_space: spaces.Space, action_space: spaces.Space, env_id: str = "the env"
) -> None:
    """Raise ``ValueError`` naming the space unless observations are a ``Box`` and actions
    a ``Discrete`` or a bounded-or-unbounded ``Box``."""
    if not isinstance(observation_space, spaces.Box):
        kind = type(observation_space).__name__
        hint = (
            " (wrap it with gymnasium.wrappers.FlattenObservation)"
            if isinstance(observation_space, (spaces.Dict, spaces.Tuple))
            else ""
        )
        raise ValueError(
            f"{env_id} has a {kind} observation space {_describe(observation_space)}; "
            f"pytorch-es policies need a Box observation space{hint}"
        )
    if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
        kind = type(action_space).__name__
        raise ValueError(
            f"{env_id} has a {kind} action space {_describe(action_space)}; "
            "pytorch-es policies support Discrete and Box action spaces"
        )
    if isinstance(action_space, spaces.Discrete) and action_space.n < 1:
        raise ValueError(f"{env_id} has an empty Discrete action space {action_space}")


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's C-level warnings (e.g. mujoco 4's "compiler attribute 'settotalmass' is
    deprecated", printed at every HalfCheetah model load) to Python's ``warnings``, which show a
    message once per process instead of once per env. A handler the user installed is kept."""
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(lambda text: warnings.warn(f"MuJoCo: {text}", RuntimeWarning, stacklevel=2))


def _env_kwargs(max_steps: int | None, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    kwargs = dict(env_kwargs or {})
    if max_steps is not None:
        kwargs["max_episode_steps"] = int(max_steps)
    return kwargs


def make_env(
    env_id: str,
    *,
    max_steps: int | None = None,
    render_mode: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> gym.Env:
    """``gym.make(env_id)`` after checking the id and the spaces (one single env).

    ``max_steps`` replaces the spec's ``max_episode_steps`` (the ``TimeLimit``).
    """
    check_env_id(env_id)
    kwargs = _env_kwargs(max_steps, env_kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if is_mujoco(env_id):
        _route_mujoco_warnings()
    env = gym.make(env_id, **kwargs)
    try:
        check_spaces(env.observation_space, env.action_space, env_id)
    except ValueError:
        env.close()
        raise
    return env


def env_spaces(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[spaces.Box, spaces.Space]:
    """The validated ``(observation_space, action_space)`` of ``env_id``."""
    env = make_env(env_id, env_kwargs=env_kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def max_episode_steps(env_id: str) -> int | None:
    """The spec's step limit (``TimeLimit``), or ``None``."""
    return gym.spec(check_env_id(env_id)).max_episode_steps


def reward_threshold(env_id: str) -> float | None:
    """The spec's ``reward_threshold`` (the score that counts as solved), or ``None``."""
    value = gym.spec(check_env_id(env_id)).reward_threshold
    return None if value is None else float(value)


class Batch:
    """A fixed number of sub-envs stepped together; finished ones are masked.

    ``reset(seeds)`` starts sub-env ``j`` exactly as ``env.reset(seed=seeds[j])`` would
    and returns the ``(num_envs, *obs_shape)`` observations. ``step(actions, active)``
    advances the sub-envs where ``active`` is True and returns ``(obs, rewards,
    done)``; entries of inactive sub-envs are meaningless and must be ignored.
    """

    num_envs: int

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def step(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# Wrappers that ``gym.make`` adds and that change no value: stepping past them saves a
# few Python calls per step. The rollout enforces the step limit itself.
_INERT_WRAPPERS = (TimeLimit, OrderEnforcing, PassiveEnvChecker)


def _strip_inert_wrappers(env: gym.Env) -> gym.Env:
    """``env`` without its outer TimeLimit / OrderEnforcing / PassiveEnvChecker layers
    (stops at the first other wrapper, e.g. one from ``spec.additional_wrappers``)."""
    while isinstance(env, _INERT_WRAPPERS):
        env = env.env
    return env


class SyncBatch(Batch):
    """``gym.make_vec(..., "sync")``'s sub-envs, stepped one by one, only while running.

    Sub-envs are reset through their wrappers and stepped past the inert ones
    (``TimeLimit``, ``OrderEnforcing``, ``PassiveEnvChecker``); the rollout applies the
    step limit.
    """

    def __init__(self, env_id: str, num_envs: int, *, max_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None) -> None:
        if is_mujoco(env_id):
            _route_mujoco_warnings()
        self.vector_env = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="sync", **_env_kwargs(max_steps, env_kwargs)
        )
        self.envs = list(self.vector_env.envs)
        self._steppers = [_strip_inert_wrappers(env) for env in self.envs]
        self.num_envs = num_envs
        space = self.vector_env.single_observation_space
        self._obs = np.zeros((num_envs, *space.shape), dtype=space.dtype)
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._done = np.zeros(num_envs, dtype=bool)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        for j, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            self._obs[j], _ = env.reset(seed=int(seed))
        return self._obs

    def step(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs, rewards, done, envs = self._obs, self._rewards, self._done, self._steppers
        rewards[:] = 0.0
        done[:] = True
        for j in np.flatnonzero(active).tolist():
            obs[j], reward, terminated, truncated, _ = envs[j].step(actions[j])
            rewards[j] = reward
            done[j] = terminated or truncated
        return obs, rewards, done

    def close(self) -> None:
        self.vector_env.close()


def _seed_cartpole_vector(vector_env: Any, single: gym.Env, seeds: Sequence[int]) -> None:
    """Give ``CartPoleVectorEnv``'s sub-env ``j`` the start of ``CartPoleEnv.reset(seed=seeds[j])``.

    The vector env draws every sub-env's start from one generator, so it cannot be
    seeded per sub-env; the starts are taken from a single env instead (one reset
    per distinct seed: the population shares its episode seeds).
    """
    starts: dict[int, np.ndarray] = {}
    for seed in dict.fromkeys(int(s) for s in seeds):
        single.reset(seed=seed)
        starts[seed] = np.array(single.unwrapped.state, dtype=np.float64)
    unwrapped = vector_env.unwrapped
    unwrapped.state = np.stack([starts[int(s)] for s in seeds], axis=1)
    unwrapped.steps[:] = 0
    unwrapped.prev_done[:] = False


# Vector entry points whose per-sub-env start can be set exactly. Others use SyncBatch.
_VECTOR_SEEDERS = {
    "gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv": _seed_cartpole_vector,
}


def has_exact_vector_entry_point(env_id: str) -> bool:
    """Whether ``env_id``'s ``vector_entry_point`` can be started per sub-env exactly."""
    entry = gym.spec(check_env_id(env_id)).vector_entry_point
    return isinstance(entry, str) and entry in _VECTOR_SEEDERS


class VectorEntryPointBatch(Batch):
    """An env's own vector implementation (``vectorization_mode="vector_entry_point"``).

    Every sub-env advances in one numpy call; finished ones are autoreset by the env
    on the next call (``AutoresetMode.NEXT_STEP``) and masked by the rollout.
    """

    def __init__(self, env_id: str, num_envs: int, *, max_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None) -> None:
        entry = gym.spec(env_id).vector_entry_point
        self._seeder = _VECTOR_SEEDERS[entry]
        self.vector_env = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
            **_env_kwargs(max_steps, env_kwargs),
        )
        self._single = gym.make(env_id, **(env_kwargs or {}))  # the reference for the starts
        self.num_envs = num_envs
        self._step = self.vector_env.step

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        self.vector_env.reset(seed=int(seeds[0]))
        self._seeder(self.vector_env, self._single, seeds)
        return self.vector_env.unwrapped.state.T.astype(np.float32)

    def step(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs, rewards, terminated, truncated, _ = self._step(actions)
        return obs, rewards, terminated | truncated

    def close(self) -> None:
        self.vector_env.close()
        self._single.close()


def envpool_env_ids() -> set[str]:
    """The env ids EnvPool provides; ``ValueError`` with the install line without it."""
    if not _importable("envpool"):
        raise ValueError(f"--vector envpool needs the envpool package: {ENVPOOL_INSTALL}")
    try:
        import envpool
    except ImportError as error:  # installed but broken (e.g. built for another numpy)
        raise ValueError(f"envpool is installed but cannot be imported ({error}); {ENVPOOL_INSTALL}") from None
    return set(envpool.list_all_envs())


def check_envpool_env(env_id: str) -> str:
    """``env_id`` if EnvPool has it (and Gymnasium knows it: the policy's spaces come
    from Gymnasium's env), else ``ValueError`` in one line."""
    ids = envpool_env_ids()
    if env_id not in ids:
        raise ValueError(
            f"EnvPool has no {env_id}; --vector envpool covers its MuJoCo, Box2D and classic-control "
            "envs (e.g. Hopper-v5, HalfCheetah-v5, LunarLander-v3, CartPole-v1); use --vector gymnasium"
        )
    return env_id


def choose_vector(env_id: str) -> tuple[str, str]:
    """What ``--vector auto`` runs ``env_id`` on, and why: ``"envpool"`` where EnvPool is
    installed and has the env (never slower in ``benchmarks/vector_speed.py``: 1.0x to 6.5x
    Gymnasium's env steps per second on one core, docs/mujoco.md), else ``"gymnasium"``.
    Decided once, when a run starts; the run records the choice, so a resumed run keeps its
    envs."""
    if not _importable("envpool"):
        return "gymnasium", "auto: envpool is not installed"
    try:
        ids = envpool_env_ids()
    except ValueError:  # installed but broken
        return "gymnasium", "auto: envpool cannot be imported"
    if env_id not in ids:
        return "gymnasium", f"auto: EnvPool has no {env_id}"
    return "envpool", "auto: EnvPool has it and steps faster; its physics, not Gymnasium's"


class EnvPoolBatch(Batch):
    """An EnvPool pool (``envpool.make_gymnasium``) of ``num_envs`` C++ sub-envs.

    * Starts: EnvPool seeds a sub-env only when the pool is made (``env_seed=[...]``;
      its ``reset(seed=...)`` ignores the seed), so ``reset(seeds)`` makes a new pool
      with ``env_seed=seeds`` (about 2 ms per Hopper sub-env here, once per
      generation). Sub-env ``j`` starts from EnvPool's generator seeded with
      ``seeds[j]``: the same start for the same seed in any pool (a member's return
      does not depend on the batch or chunk it ran in), but *not* Gymnasium's start
      for that seed.
    * Steps: only the running sub-envs are stepped (``step(actions, env_id)``, the
      actions batched as ``(running, *action_shape)`` in EnvPool's dtype: its action
      space is the single env's); results are put back by ``info["env_id"]``.
    * Autoreset: EnvPool resets a finished sub-env on its next step; a finished
      sub-env is never stepped again here, so that reset is never seen.
    * Step limit: the pool's ``max_episode_steps`` is the env's (or the run's, if
      longer); the rollout applies the run's limit.

    ``num_threads`` is EnvPool's thread count (0: one per core).
    """

    def __init__(self, env_id: str, num_envs: int, *, max_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None, num_threads: int = 0) -> None:
        check_envpool_env(env_id)
        import envpool

        self._make = envpool.make_gymnasium
        self.env_id = env_id
        self.num_envs = num_envs
        self._kwargs = dict(env_kwargs or {})
        limit = max_steps if max_steps is not None else gym.spec(env_id).max_episode_steps
        if limit is not None:
            self._kwargs["max_episode_steps"] = int(limit)
        self._kwargs["num_threads"] = int(num_threads)
        self.pool: Any = None
        self._new_pool(list(range(num_envs)))  # fails here, not mid-training, on bad kwargs
        space = self.pool.observation_space
        self._obs = np.zeros((num_envs, *space.shape), dtype=space.dtype)
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._done = np.ones(num_envs, dtype=bool)
        self._action_dtype = np.dtype(self.pool.action_space.dtype)
        self._all = np.arange(num_envs, dtype=np.int32)

    def _new_pool(self, seeds: list[int]) -> None:
        self.close()
        self.pool = self._make(self.env_id, num_envs=self.num_envs, env_seed=seeds, **self._kwargs)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        self._new_pool([int(s) for s in seeds])
        obs, info = self.pool.reset()
        self._obs[info["env_id"]] = obs
        return self._obs

    def step(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = self._all if active.all() else np.flatnonzero(active).astype(np.int32)
        sent = np.asarray(actions, dtype=self._action_dtype)
        if len(ids) < self.num_envs:
            sent = sent[ids]
        obs, rewards, terminated, truncated, info = self.pool.step(sent, ids)
        where = info["env_id"]
        self._rewards[:] = 0.0
        self._done[:] = True
        self._obs[where] = obs
        self._rewards[where] = rewards
        self._done[where] = np.logical_or(terminated, truncated)
        return self._obs, self._rewards, self._done

    def close(self) -> None:
        pool, self.pool = self.pool, None
        close = getattr(pool, "close", None)
        if callable(close):
            close()


VECTORIZATIONS = ("auto", "sync", "vector_entry_point", "envpool")


def make_batch(env_id: str, num_envs: int, *, max_steps: int | None = None,
               env_kwargs: dict[str, Any] | None = None, vectorization: str = "auto") -> Batch:
    """A :class:`Batch` of ``num_envs`` sub-envs of ``env_id``.

    ``vectorization="auto"`` uses the env's vector entry point where it can be seeded
    per sub-env (CartPole), ``"sync"`` otherwise; ``"vector_entry_point"`` or
    ``"sync"`` force one; ``"envpool"`` is :class:`EnvPoolBatch` (EnvPool's physics).
    """
    if vectorization not in VECTORIZATIONS:
        raise ValueError(
            f"vectorization must be 'auto', 'sync', 'vector_entry_point' or 'envpool', got {vectorization!r}"
        )
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    if vectorization == "envpool":
        return EnvPoolBatch(env_id, num_envs, max_steps=max_steps, env_kwargs=env_kwargs)
    exact = has_exact_vector_entry_point(env_id)
    if vectorization == "vector_entry_point" and not exact:
        raise ValueError(
            f"{env_id} has no vector entry point that pytorch-es can seed per sub-env; use 'sync'"
        )
    # "auto" leaves envs with extra kwargs to sync: the vector class may not take them
    if vectorization == "vector_entry_point" or (vectorization == "auto" and exact and not env_kwargs):
        return VectorEntryPointBatch(env_id, num_envs, max_steps=max_steps, env_kwargs=env_kwargs)
    return SyncBatch(env_id, num_envs, max_steps=max_steps, env_kwargs=env_kwargs)
