"""Evaluation: a population and a problem in, one reward per member out.

A :class:`Problem` scores any subset of a population's members; an
:class:`Evaluator` decides where those subsets run (this thread, a thread pool,
processes, Ray). Workers receive the :class:`~pytorch_es.core.population.Population`
description, never one parameter vector per member.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pytorch_es.core.checks import check_reward
from pytorch_es.core.population import Population


class MemberEvaluationError(RuntimeError):
    """A user's reward function or environment raised while evaluating a member."""

    def __init__(self, member: int, message: str, remote_traceback: str | None = None) -> None:
        self.member = member
        self.remote_traceback = remote_traceback
        text = f"evaluating member {member} failed: {message}"
        if remote_traceback:
            text += f"\n--- original traceback ---\n{remote_traceback}"
        super().__init__(text)


@dataclass
class Evaluation:
    """Rewards of some members, with what the problem reports back.

    Attributes:
        indices: the member indices, in the order of ``rewards``.
        rewards: float64 tensor, one reward per index.
        env_steps: environment steps spent (0 for plain functions).
        payload: problem-specific data for :meth:`Problem.merge` (e.g. observation
            statistics gathered by the rollouts); ``None`` if there is none.
    """

    indices: list[int]
    rewards: torch.Tensor
    env_steps: int = 0
    payload: Any = field(default=None, repr=False)


class Problem(ABC):
    """Something that scores members of a population (reward is maximised)."""

    @abstractmethod
    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        """Score members ``indices`` of ``population``."""

    def worker_state(self) -> Any:
        """State a remote copy needs each generation (e.g. normaliser statistics)."""
        return None

    def load_worker_state(self, state: Any) -> None:  # noqa: B027 (optional hook)
        """Install what :meth:`worker_state` returned, on a worker's copy."""

    def merge(self, evaluations: Sequence[Evaluation]) -> None:  # noqa: B027 (optional hook)
        """Fold the payloads of one generation's evaluations into the driver's copy."""


class FunctionProblem(Problem):
    """Calls ``function(member_vector) -> float`` once per member."""

    def __init__(self, function: Callable[[torch.Tensor], float]) -> None:
        if not callable(function):
            raise TypeError(f"function must be callable, got {type(function).__name__}")
        self.function = function

    def evaluate_member(self, population: Population, index: int) -> float:
        try:
            value = self.function(population.member(index))
        except Exception as error:  # re-raised with the member index
            raise MemberEvaluationError(index, f"{type(error).__name__}: {error}") from error
        return check_reward(value, index)

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        rewards = [self.evaluate_member(population, i) for i in indices]
        return Evaluation(list(indices), torch.tensor(rewards, dtype=torch.float64))


class BatchFunctionProblem(Problem):
    """Calls ``function(members) -> rewards`` on a ``(n, dim)`` matrix of members."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor | Sequence[float]]) -> None:
        if not callable(function):
            raise TypeError(f"function must be callable, got {type(function).__name__}")
        self.function = function

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        indices = list(indices)
        values = self.function(population.members(indices))
        if isinstance(values, torch.Tensor):
            values = values.detach().reshape(-1).cpu().tolist()
        values = list(values)
        if len(values) != len(indices):
            raise ValueError(f"batched function returned {len(values)} rewards for {len(indices)} members")
        rewards = [check_reward(v, i) for v, i in zip(values, indices)]
        return Evaluation(indices, torch.tensor(rewards, dtype=torch.float64))


@dataclass
class GenerationResult:
    """All rewards of one generation, in member order."""

    rewards: torch.Tensor
    env_steps: int = 0
    evaluations: list[Evaluation] = field(default_factory=list, repr=False)


def combine(evaluations: Sequence[Evaluation], size: int) -> GenerationResult:
    """Put evaluations of disjoint index sets back into member order."""
    values: list[float | None] = [None] * size
    for evaluation in evaluations:
        for index, reward in zip(evaluation.indices, evaluation.rewards.tolist()):
            values[index] = reward
    missing = [i for i, value in enumerate(values) if value is None]
    if missing:
        raise RuntimeError(f"members {missing[:10]} were not evaluated")
    rewards = torch.tensor(values, dtype=torch.float64)
    steps = sum(e.env_steps for e in evaluations)
    return GenerationResult(rewards, steps, list(evaluations))


class Evaluator(ABC):
    """Runs a problem over a whole population. Use as a context manager or ``close()``."""

    @abstractmethod
    def evaluate(self, population: Population, problem: Problem) -> GenerationResult: ...

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release workers. Idempotent."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SerialEvaluator(Evaluator):
    """Evaluates the whole population in this thread, in one ``problem.evaluate`` call
    (vectorised problems step every member together)."""

    def evaluate(self, population: Population, problem: Problem) -> GenerationResult:
        evaluation = problem.evaluate(population, range(len(population)))
        result = combine([evaluation], len(population))
        problem.merge(result.evaluations)
        return result
