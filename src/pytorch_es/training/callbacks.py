"""Callbacks: what a training loop does around each generation, one concern each.

A callback sees the :class:`~pytorch_es.training.loop.Trainer` and the metrics row of
every finished generation. It must not change the search (that would break the
"same seed, same numbers" contract); it logs, saves and displays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytorch_es.training.loop import Trainer, TrainResult


class Callback:
    """Base class: override the hooks you need. All hooks do nothing by default."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once by :meth:`Trainer.run` before the first generation."""

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Called after every generation with its metrics row (see ``metrics.FIELDS``)."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Called once when :meth:`Trainer.run` stops, for any reason (also on an error,
        with ``result.reason == "error"``)."""

    def close(self) -> None:
        """Release files and displays. Idempotent."""


class CallbackList(Callback):
    """Calls several callbacks in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(callback).__name__}")

    def on_train_begin(self, trainer: Trainer) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(trainer)

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.on_generation_end(trainer, row)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        for callback in self.callbacks:
            callback.on_train_end(trainer, result)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.close()


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_generation_end=lambda t, row: ...)``."""

    def __init__(
        self,
        on_train_begin: Callable[[Trainer], None] | None = None,
        on_generation_end: Callable[[Trainer, dict[str, Any]], None] | None = None,
        on_train_end: Callable[[Trainer, TrainResult], None] | None = None,
    ) -> None:
        self._begin = on_train_begin
        self._generation = on_generation_end
        self._end = on_train_end

    def on_train_begin(self, trainer: Trainer) -> None:
        if self._begin is not None:
            self._begin(trainer)

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self._generation is not None:
            self._generation(trainer, row)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if self._end is not None:
            self._end(trainer, result)


class GoalStop(Callback):
    """Stops the run once ``consecutive`` tests in a row scored at or above ``goal``.

    A test below the goal resets the count; generations without a test leave it alone.
    This is the 2018 ``reward_goal`` / ``consecutive_goal_stopping`` rule of
    ``EvolutionModule`` (``Trainer(target=...)`` is the special case ``consecutive=1``).
    The stop is asked for with ``trainer.request_stop("target")``, so the run ends with
    reason ``"target"`` after the generation. ``count`` is the current streak; it carries
    over between runs (restore it when resuming).
    """

    def __init__(self, goal: float, consecutive: int = 1) -> None:
        if isinstance(goal, bool) or not isinstance(goal, numbers.Real):
            raise TypeError(f"goal must be a number, got {type(goal).__name__}")
        if math.isnan(goal):
            raise ValueError("goal must be a number, got nan")
        if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
            raise ValueError(f"consecutive must be an int >= 1, got {consecutive!r}")
        self.goal = float(goal)
        self.consecutive = consecutive
        self.count = 0

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        test_reward = row.get("test_reward")
        if test_reward is None:
            return
        self.count = self.count + 1 if test_reward >= self.goal else 0
        if self.count >= self.consecutive:
            trainer.request_stop("target")
