"""The worker runtime: what runs inside a worker process or Ray actor.

:class:`WorkerRuntime` is the same in both; the backend (processes.py,
ray_evaluator.py) only carries its messages (:mod:`pytorch_es.evaluation.wire`).
It loads the problem, rebuilds the generation's population from its
:class:`~pytorch_es.evaluation.wire.GenerationSetup`, evaluates the chunks it is sent
and turns a problem's exception into a reply (with the member index and the
traceback), so the driver reports it once without retrying it.
"""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable, Sequence

import torch

from pytorch_es.core.noise import NoiseTable
from pytorch_es.core.population import Population
from pytorch_es.evaluation.base import Evaluation, MemberEvaluationError, Problem
from pytorch_es.evaluation.wire import GenerationSetup, Task, dtype_from_name, pack_evaluation, unpack_population


class WorkerRuntime:
    """The worker side of the protocol, the same in a process and in a Ray actor.

    ``fetch_center(setup)`` turns ``setup.center`` (a backend reference) into the
    center tensor. :meth:`handle` never raises for a problem's error: it returns a
    reply tuple, which the driver turns into an exception.

    Replies: ``("done", task_id, pack_evaluation(evaluation))``, ``("error", task_id, member, message,
    traceback)`` for an exception of the problem, ``("fatal", task_id, message,
    traceback)`` when the problem or the generation could not be set up.
    """

    def __init__(self, fetch_center: Callable[[GenerationSetup], torch.Tensor]) -> None:
        self.fetch_center = fetch_center
        self.problem: Problem | None = None
        self.population: Population | None = None
        self.epoch: int | None = None

    def handle(self, problem_blob: bytes | None, setup: GenerationSetup | None, task: Task) -> tuple:
        try:
            if problem_blob is not None:
                self.problem = pickle.loads(problem_blob)
                self.epoch = None
            if self.problem is None:
                raise RuntimeError("no problem was sent to this worker")
            if setup is not None:
                self.population = None
                block = self.fetch_center(setup)
                noise = NoiseTable(
                    setup.noise_seed, setup.noise_size, "cpu", dtype_from_name(setup.noise_dtype)
                )
                self.population = unpack_population(block, setup, noise)
                self.problem.load_worker_state(setup.worker_state)
                self.epoch = setup.epoch
            if self.epoch != task.epoch or self.population is None:
                raise RuntimeError(f"task of generation {task.epoch} without its setup (have {self.epoch})")
        except Exception as error:
            return ("fatal", task.task_id, f"{type(error).__name__}: {error}", traceback.format_exc())
        indices = list(task.indices)
        try:
            evaluation = self.problem.evaluate(self.population, indices)
            check_evaluation(evaluation, indices)
        except MemberEvaluationError as error:
            return ("error", task.task_id, error.member, error_message(error), format_remote(error))
        except Exception as error:
            span = f"{indices[0]}..{indices[-1]}" if len(indices) > 1 else f"{indices[0]}"
            message = f"{type(error).__name__}: {error} (while evaluating members {span})"
            return ("error", task.task_id, indices[0], message, format_remote(error))
        return ("done", task.task_id, pack_evaluation(evaluation))


def error_message(error: MemberEvaluationError) -> str:
    """The message of a MemberEvaluationError without its prefix and traceback."""
    text = str(error).split("\n--- original traceback ---\n", 1)[0]
    prefix = f"evaluating member {error.member} failed: "
    return text.removeprefix(prefix)


def format_remote(error: BaseException) -> str:
    """The full traceback of ``error`` (with its causes) as text, with the worker's pid."""
    if isinstance(error, MemberEvaluationError) and error.remote_traceback:
        return error.remote_traceback
    text = "".join(traceback.format_exception(error))
    return f"(in worker process {os.getpid()})\n{text}"


def check_evaluation(evaluation: object, indices: Sequence[int]) -> None:
    """A problem must return an Evaluation of exactly the requested indices."""
    if not isinstance(evaluation, Evaluation):
        raise TypeError(f"problem.evaluate must return an Evaluation, got {type(evaluation).__name__}")
    if list(evaluation.indices) != list(indices):
        raise ValueError(
            f"problem.evaluate returned indices {list(evaluation.indices)[:8]}... for the "
            f"requested {list(indices)[:8]}..."
        )
    if evaluation.rewards.numel() != len(indices):
        raise ValueError(f"problem.evaluate returned {evaluation.rewards.numel()} rewards for {len(indices)}")
