"""Callbacks: what a training loop does around each generation, one concern each.

A callback sees the :class:`~pytorch_es.training.loop.Trainer` and the metrics row of
every finished generation. It must not change the search (that would break the
"same seed, same numbers" contract); it logs, saves and displays.
"""

from __future__ import annotations

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
