"""The backend interface of the worker pool: how to start, message, wait for and kill workers.

A :class:`WorkerBackend` (processes.py: local processes; ray_evaluator.py: Ray
actors) knows no scheduling: it starts a worker, sends it a
:class:`~pytorch_es.evaluation.wire.Task` (with the problem and the generation's setup
when the worker lacks them), reports what happened as :class:`Event` values and kills
a worker on request. Scheduling, retries and timeouts are in
:mod:`pytorch_es.evaluation.scheduler`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_es.evaluation.wire import GenerationSetup, Task


class WorkerSetupError(RuntimeError):
    """A worker could not start, load the problem, or install its per-generation state."""


class WorkerGoneError(RuntimeError):
    """Raised by a backend's ``send`` when the worker is no longer there."""


@dataclass
class Event:
    """What a backend's ``wait`` reports for one worker.

    kind: ``"ready"`` (data: info dict), ``"reply"`` (data: a WorkerRuntime reply) or
    ``"died"`` (data: a reason string).
    """

    handle: Any
    kind: str
    data: Any


class WorkerBackend(ABC):
    """How to start, message, wait for and kill workers. No scheduling logic."""

    name: str = "workers"

    @abstractmethod
    def spawn(self, slot: int) -> Any:
        """Start a worker (non-blocking); it later reports a ``"ready"`` event."""

    @abstractmethod
    def publish(self, center: torch.Tensor) -> Any:
        """Make this generation's center available to workers, once; return a reference."""

    @abstractmethod
    def send(self, handle: Any, problem_blob: bytes | None, setup: GenerationSetup | None, task: Task) -> int:
        """Send a task (with the problem / setup if the worker lacks them); return the
        bytes sent, not counting ``problem_blob``."""

    @abstractmethod
    def wait(self, handles: Sequence[Any], timeout: float | None) -> list[Event]:
        """Wait up to ``timeout`` seconds for events from ``handles``."""

    @abstractmethod
    def kill(self, handle: Any) -> None:
        """Kill a worker now (SIGKILL or equivalent) and release its resources."""

    def stop(self, handles: Sequence[Any]) -> None:
        """Stop all ``handles`` (default: kill each)."""
        for handle in handles:
            self.kill(handle)

    def start_hint(self) -> str:
        """Why a worker may not start (appended to the error), e.g. missing resources."""
        return ""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`publish` allocated. Called after every worker is stopped."""
