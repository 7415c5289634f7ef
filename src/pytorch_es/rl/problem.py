"""``GymProblem``: score population members by their return in a Gymnasium env.

Member ``i`` of generation ``g`` plays ``episodes_per_member`` episodes; episode ``e``
starts from env seed ``mix_seed(run_seed, g, ENV_SEED_TAG, e) % 2**31``, the same for
every member (common random numbers: members are compared on the same starts), and a
function of ``(run seed, generation)`` only, so a member's reward never depends on
which worker evaluated it. Its reward is the mean return over its episodes.

``reward_shift=b`` (ARS's survival-bonus removal, Mania et al. 2018) makes a training
episode of ``T`` steps score ``sum_t (r_t - b) = R - b T``; greedy tests
(:meth:`GymProblem.evaluate_policy`), ``pytorch-es eval`` and every reported return use
the env's true reward ``R``.

All members (times episodes) step together through one batch of sub-envs with one
batched policy forward per step (see :mod:`pytorch_es.rl.rollout`). Envs are created
lazily and dropped when pickled, so a problem can be shipped to process or Ray
workers and evaluated on any chunk of member indices.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pytorch_es.core.checks import check_finite, check_int
from pytorch_es.core.noise import mix_seed
from pytorch_es.core.population import Population
from pytorch_es.evaluation.base import Evaluation, Problem
from pytorch_es.rl.artifact import POLICY_FORMAT, LoadedPolicy, from_config, policy_config  # noqa: F401 - old home
from pytorch_es.rl.envs import (
    VECTORIZATIONS,
    Batch,
    check_env_id,
    env_spaces,
    make_batch,
    make_env,
    max_episode_steps,
)
from pytorch_es.rl.mlp import make_policy
from pytorch_es.rl.normalization import ObservationNormalizer
from pytorch_es.rl.policy import Policy
from pytorch_es.rl.rollout import rollout_batch, run_episode
from pytorch_es.rl.spaces import space_differences  # noqa: F401 - old home

__all__ = [
    "ENV_SEED_TAG",
    "GymProblem",
    "episode_seeds",
    "evaluate_policy",
    "rollout_single",
]

ENV_SEED_TAG = 0x5EED_E4F


def episode_seeds(run_seed: int, generation: int, episodes: int) -> list[int]:
    """The env seeds of generation ``generation``: one per episode, shared by all members."""
    return [mix_seed(run_seed, generation, ENV_SEED_TAG, e) % (1 << 31) for e in range(episodes)]


def _resolve_max_steps(env_id: str, max_steps: int | None) -> tuple[int, int | None]:
    """(the rollout's step limit, the TimeLimit to build the env with; None = the spec's)."""
    spec_limit = max_episode_steps(env_id)
    if max_steps is None:
        if spec_limit is None:
            raise ValueError(f"{env_id} has no step limit (max_episode_steps); pass max_steps")
        return spec_limit, None
    if spec_limit is None or max_steps > spec_limit:
        return max_steps, max_steps
    return max_steps, None


class GymProblem(Problem):
    """Members of a population are scored by episodes of a policy in ``env_id``.

    Args:
        env_id: a Gymnasium id whose observations are a ``Box`` and actions ``Discrete``
            or ``Box`` (checked here, with close names for unknown ids).
        policy: a :class:`~pytorch_es.rl.policy.Policy`, MLP options
            (``{"hidden": (64,), "activation": "tanh", "action_mode": "squash"}``),
            a list of hidden sizes, or ``None`` (per-env default from
            :mod:`pytorch_es.rl.defaults`).
        episodes_per_member: episodes per member per generation (rewards are averaged).
        max_steps: step limit per episode (default the env's ``max_episode_steps``).
            May be changed between generations (e.g. a short limit early on).
        obs_norm: running observation normalisation (``None``: the per-env default).
        obs_clip: normalised observations are clipped to ``±obs_clip``.
        env_kwargs: extra ``gym.make`` arguments.
        vectorization: ``"auto"`` (the env's vector entry point if it has one that can be
            seeded per sub-env, else sync), ``"sync"``, ``"vector_entry_point"`` or
            ``"envpool"`` (EnvPool's C++ envs, the optional ``envpool`` extra: its
            physics, so returns are comparable to Gymnasium's but not bit-identical).
        reward_shift: subtracted from every step's reward of *training* episodes only
            (a member scores ``R - reward_shift * T`` for an episode of ``T`` steps and
            return ``R``), as ARS removes the survival bonus (``survival_bonus(env_id)``:
            Hopper, Walker2d, Ant 1, Humanoid 5). Greedy tests and evaluations use the
            true reward. A warning if the env pays no survival bonus.
    """

    def __init__(
        self,
        env_id: str,
        policy: Policy | dict[str, Any] | Sequence[int] | None = None,
        *,
        episodes_per_member: int = 1,
        max_steps: int | None = None,
        obs_norm: bool | None = None,
        obs_clip: float = 5.0,
        env_kwargs: dict[str, Any] | None = None,
        vectorization: str = "auto",
        reward_shift: float = 0.0,
    ) -> None:
        from pytorch_es.rl.defaults import get_defaults

        self.env_id = check_env_id(env_id)
        if vectorization == "envpool":  # before the env is made: EnvPool may have an env Gymnasium cannot make
            from pytorch_es.rl.envs import check_envpool_env

            check_envpool_env(self.env_id)
        self.env_kwargs = dict(env_kwargs or {})
        self.observation_space, self.action_space = env_spaces(self.env_id, self.env_kwargs)
        defaults = get_defaults(self.env_id)
        if policy is None:
            policy = {"hidden": defaults.hidden, "activation": defaults.activation}
        self.policy = make_policy(policy, self.observation_space, self.action_space)
        self.episodes_per_member = check_int("episodes_per_member", episodes_per_member)
        check_int("max_steps", max_steps, allow_none=True)
        self._max_steps, self._env_limit = _resolve_max_steps(self.env_id, max_steps)
        self._max_steps_ceiling = self._max_steps if self._env_limit is not None else max(
            self._max_steps, max_episode_steps(self.env_id) or 0
        )
        if vectorization not in VECTORIZATIONS:
            raise ValueError(
                f"vectorization must be 'auto', 'sync', 'vector_entry_point' or 'envpool', got {vectorization!r}"
            )
        self.vectorization = vectorization
        self.reward_shift = check_finite("reward_shift", reward_shift)
        if self.reward_shift:
            from pytorch_es.rl.envs import survival_bonus

            if survival_bonus(self.env_id, self.env_kwargs) is None:
                warnings.warn(
                    f"reward_shift {self.reward_shift:g} on {self.env_id}, which pays no per-step survival bonus: "
                    "training rewards are shifted anyway (the shift is meant for Hopper, Walker2d, Ant, Humanoid)",
                    UserWarning,
                    stacklevel=2,
                )
        obs_norm = defaults.obs_norm if obs_norm is None else bool(obs_norm)
        self.normalizer = (
            ObservationNormalizer(self.observation_space.shape, clip=obs_clip) if obs_norm else None
        )
        # Vector envs cached per (thread, size): a thread pool evaluator runs chunks of the
        # same generation at once, and a vector env must never be stepped by two threads.
        self._batches: dict[tuple[int, int], Batch] = {}
        self._batches_lock = threading.Lock()

    @property
    def max_steps(self) -> int:
        """The step limit per episode; may be lowered (or raised up to the env's limit)
        between generations, e.g. short episodes early in training."""
        return self._max_steps

    @max_steps.setter
    def max_steps(self, value: int) -> None:
        value = check_int("max_steps", value)
        if value > self._max_steps_ceiling:
            raise ValueError(
                f"max_steps {value} exceeds the env's step limit {self._max_steps_ceiling}; "
                "create the problem with a larger max_steps"
            )
        self._max_steps = value

    # ---- Problem protocol --------------------------------------------------------------

    def initial_center(self, seed: int = 0) -> torch.Tensor:
        """The policy's initial parameters (``policy.initial_parameters(seed)``)."""
        return self.policy.initial_parameters(seed)

    @property
    def num_parameters(self) -> int:
        return self.policy.num_parameters

    @property
    def vectorized(self) -> bool:
        """True when the env steps all sub-envs in one numpy call (CartPole's vector entry
        point): one in-process batch is then the fastest backend. Sync envs (Box2D,
        MuJoCo) step sub-envs one by one and gain from worker processes."""
        if self.vectorization == "sync":
            return False
        if self.vectorization == "envpool":
            return True  # one pool steps every sub-env in C++
        from pytorch_es.rl.envs import has_exact_vector_entry_point

        return has_exact_vector_entry_point(self.env_id) and (
            self.vectorization == "vector_entry_point" or not self.env_kwargs
        )

    def episode_seeds(self, run_seed: int, generation: int) -> list[int]:
        return episode_seeds(run_seed, generation, self.episodes_per_member)

    def _batch(self, num_envs: int) -> Batch:
        key = (threading.get_ident(), num_envs)
        with self._batches_lock:
            batch = self._batches.get(key)
            if batch is None:
                mine = [k for k in self._batches if k[0] == key[0]]
                if len(mine) >= 4:  # keep a few sizes per thread (full population, chunks, tests)
                    self._batches.pop(mine[0]).close()
                batch = make_batch(
                    self.env_id, num_envs, max_steps=self._env_limit,
                    env_kwargs=self.env_kwargs, vectorization=self.vectorization,
                )
                self._batches[key] = batch
        return batch

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        """Mean return of members ``indices`` over ``episodes_per_member`` episodes each."""
        indices = [int(i) for i in indices]
        if not indices:
            return Evaluation([], torch.zeros(0, dtype=torch.float64))
        if population.dim != self.policy.num_parameters:
            raise ValueError(
                f"population members have {population.dim} parameters, but the "
                f"{self.policy.describe()} expects {self.policy.num_parameters}"
            )
        episodes = self.episodes_per_member
        check_batch_memory(
            len(indices) * episodes, self.policy.num_parameters,
            f"{len(indices)} members x {episodes} episodes (one batch of {len(indices) * episodes} sub-envs)",
            "use a smaller population or fewer episodes per member",
        )
        members = population.members(indices).detach().to("cpu", torch.float32)
        if episodes > 1:
            members = members.repeat_interleave(episodes, dim=0)  # sub-env j = member j // E
        seeds = self.episode_seeds(population.seed, population.generation) * len(indices)
        batch = self._batch(len(seeds))
        stats = self.normalizer.stats(len(seeds)) if self.normalizer is not None else None
        with torch.inference_mode():
            result = rollout_batch(
                batch, self.policy.bind(members), seeds, max_steps=self.max_steps,
                action_space=self.action_space, normalizer=self.normalizer, stats=stats,
            )
        returns = result.returns
        if self.reward_shift:  # training rewards only: sum_t (r_t - shift) = R - shift * T
            returns = returns - self.reward_shift * result.lengths
        returns = returns.reshape(len(indices), episodes)
        rewards = returns[:, 0].copy()
        for e in range(1, episodes):  # in episode order: exact and chunking-independent
            rewards += returns[:, e]
        rewards /= episodes
        payload = None
        if stats is not None:
            payload = stats.payload()
            if episodes > 1:
                for key in ("counts", "sums", "squares"):
                    value = payload[key].reshape(len(indices), episodes, *payload[key].shape[1:])
                    total = value[:, 0].clone()
                    for e in range(1, episodes):
                        total += value[:, e]
                    payload[key] = total
        return Evaluation(indices, torch.from_numpy(rewards), env_steps=result.env_steps, payload=payload)

    def worker_state(self) -> dict[str, Any]:
        """Normaliser statistics and the step limit, sent to workers each generation."""
        return {
            "obs_norm": None if self.normalizer is None else self.normalizer.state_dict(),
            "max_steps": self.max_steps,
        }

    def load_worker_state(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        if state.get("obs_norm") is not None and self.normalizer is not None:
            self.normalizer.load_state_dict(state["obs_norm"])
        if state.get("max_steps") is not None:
            self.max_steps = int(state["max_steps"])

    def merge(self, evaluations: Sequence[Evaluation]) -> None:
        """Fold the generation's observation statistics into the normaliser, rows sorted by
        member index (the same numbers however the population was split)."""
        if self.normalizer is None:
            return
        parts = [(e.indices, e.payload) for e in evaluations if e.payload is not None and e.indices]
        if not parts:
            return
        order = torch.argsort(torch.tensor([i for indices, _ in parts for i in indices]), stable=True)
        merged = {"shift": parts[0][1]["shift"]}
        for key in ("counts", "sums", "squares"):
            merged[key] = torch.cat([payload[key] for _, payload in parts]).index_select(0, order)
        self.normalizer.merge_payloads([merged])

    # ---- greedy evaluation and single rollouts -----------------------------------------

    def evaluate_policy(
        self, vector: torch.Tensor, *, episodes: int = 100, seed: int = 1000, max_steps: int | None = None
    ) -> torch.Tensor:
        """Returns of ``vector`` on env seeds ``seed .. seed + episodes - 1`` (float64).

        The step limit is the env's own (not a shortened training limit) unless given.
        """
        return evaluate_policy(
            self.env_id, self.policy, vector, normalizer=self.normalizer, episodes=episodes,
            seed=seed, max_steps=max_steps, env_kwargs=self.env_kwargs, vectorization=self.vectorization,
            _batch_source=self._batch,
        )

    def rollout_single(
        self, vector: torch.Tensor, seed: int, max_steps: int | None = None
    ) -> tuple[float, int]:
        """One episode of ``vector`` in a single ``gym.make`` env: ``(return, steps)``."""
        return rollout_single(
            self.env_id, self.policy, vector, seed=seed, normalizer=self.normalizer,
            max_steps=self.max_steps if max_steps is None else max_steps, env_kwargs=self.env_kwargs,
        )

    def policy_config(self, **extra: Any) -> dict[str, Any]:
        """JSON-able description of the policy (see :func:`pytorch_es.rl.artifact.policy_config`)."""
        return policy_config(self.env_id, self.policy, self.normalizer, env_kwargs=self.env_kwargs, **extra)

    # ---- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the cached envs (they are rebuilt on the next evaluation)."""
        with self._batches_lock:
            for batch in self._batches.values():
                batch.close()
            self._batches = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_batches"] = {}
        del state["_batches_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._batches_lock = threading.Lock()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def __repr__(self) -> str:
        return (
            f"GymProblem({self.env_id!r}, {self.policy.describe()}, episodes_per_member="
            f"{self.episodes_per_member}, max_steps={self.max_steps}, obs_norm={self.normalizer is not None}"
            + (f", reward_shift={self.reward_shift:g}" if self.reward_shift else "") + ")"
        )


def evaluate_policy(
    env_id: str,
    policy: Policy,
    vector: torch.Tensor,
    *,
    normalizer: ObservationNormalizer | None = None,
    episodes: int = 100,
    seed: int = 1000,
    max_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vectorization: str = "auto",
    _batch_source: Any = None,
) -> torch.Tensor:
    """Greedy returns of one parameter vector on env seeds ``seed .. seed + episodes - 1``.

    All episodes run together in one batch of ``episodes`` sub-envs. The policies here
    are deterministic (argmax / squashed mean), so this is the greedy evaluation.
    Returns a float64 tensor of ``episodes`` returns.
    """
    check_int("episodes", episodes)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    vector = policy.check_vector(vector)
    limit, env_limit = _resolve_max_steps(check_env_id(env_id), max_steps)
    check_batch_memory(episodes, policy.num_parameters, f"episodes={episodes} (one batch of {episodes} sub-envs)",
                       "evaluate fewer episodes")
    owned = _batch_source is None or env_limit is not None
    if owned:
        batch = make_batch(env_id, episodes, max_steps=env_limit, env_kwargs=env_kwargs,
                           vectorization=vectorization)
    else:
        batch = _batch_source(episodes)
    try:
        with torch.inference_mode():
            members = vector.unsqueeze(0).expand(episodes, -1)
            result = rollout_batch(
                batch, policy.bind(members), list(range(seed, seed + episodes)), max_steps=limit,
                action_space=policy.action_space, normalizer=normalizer,
            )
    finally:
        if owned:
            batch.close()
    return torch.from_numpy(result.returns)


def rollout_single(
    env_id: str,
    policy: Policy,
    vector: torch.Tensor,
    *,
    seed: int,
    normalizer: ObservationNormalizer | None = None,
    max_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[float, int]:
    """One episode of ``vector`` in a single (non-vector) ``gym.make(env_id)``: ``(return, steps)``.

    The reference that vectorised rollouts must match exactly.
    """
    limit, env_limit = _resolve_max_steps(check_env_id(env_id), max_steps)
    env = make_env(env_id, max_steps=env_limit, env_kwargs=env_kwargs)
    try:
        return run_episode(env, policy, vector, seed=seed, normalizer=normalizer, max_steps=limit)
    finally:
        env.close()


def check_batch_memory(sub_envs: int, num_parameters: int, what: str, hint: str = "") -> None:
    """Fail before allocating a batch of ``sub_envs`` sub-envs (members of
    ``num_parameters`` parameters each) that cannot fit in memory."""
    from pytorch_es.limits import batch_bytes, check_memory

    check_memory(batch_bytes(sub_envs, num_parameters), what, hint)
