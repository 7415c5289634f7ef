"""Progress display: a rich progress bar on a terminal, plain lines elsewhere (CI logs).

Each update shows the generation, the population's mean and max reward, the last
test reward of the center, env steps per second of the generation, elapsed time, and
the time left to the generation budget at the mean pace so far (an upper bound: a run
stops earlier when it reaches its target).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any, TextIO

from pytorch_es.training.callbacks import Callback
from pytorch_es.training.loop import Trainer, TrainResult


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.2f}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def eta(trainer: Trainer, row: dict[str, Any]) -> str | None:
    """Time left to ``max_generations`` at the mean seconds per generation so far."""
    generation, left = row["generation"], trainer.max_generations - row["generation"]
    if left <= 0 or generation <= 0 or not row.get("wall_time"):
        return None
    return _duration(row["wall_time"] / generation * left)


def format_line(trainer: Trainer, row: dict[str, Any]) -> str:
    """One plain progress line for a metrics row."""
    rate = row.get("generation_env_steps", 0) / max(row.get("generation_time", 0.0), 1e-9)
    parts = [
        f"gen {row['generation']}/{trainer.max_generations}",
        f"mean {_number(row['reward_mean'])}",
        f"max {_number(row['reward_max'])}",
        f"test {_number(trainer.last_test_reward)}",
    ]
    if row.get("generation_env_steps"):
        parts.append(f"{rate:,.0f} steps/s")
    parts.append(f"{row['wall_time']:.1f}s")
    left = eta(trainer, row)
    if left is not None:
        parts.append(f"eta {left}")
    return "  ".join(parts)


class ProgressCallback(Callback):
    """Shows progress on ``stream`` (default ``sys.stdout``).

    Args:
        stream: where to write.
        every: plain mode prints every ``every`` generations, and the last one.
        rich: use a rich live bar; default: only when ``stream`` is a terminal and rich
            is installed.
    """

    def __init__(self, stream: TextIO | None = None, every: int = 1, rich: bool | None = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.stream = stream if stream is not None else sys.stdout
        self.every = every
        if rich is None:
            isatty = getattr(self.stream, "isatty", None)
            rich = bool(isatty and isatty())
        self.use_rich = bool(rich) and importlib.util.find_spec("rich") is not None
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if not self.use_rich:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("gen"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=trainer.max_generations, completed=trainer.generation, stats=""
        )

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self._progress is not None:
            rate = row.get("generation_env_steps", 0) / max(row.get("generation_time", 0.0), 1e-9)
            stats = (
                f"mean {_number(row['reward_mean'])}  max {_number(row['reward_max'])}  "
                f"test {_number(trainer.last_test_reward)}"
            )
            if row.get("generation_env_steps"):
                stats += f"  {rate:,.0f} steps/s"
            left = eta(trainer, row)
            if left is not None:
                stats += f"  eta {left}"
            self._progress.update(self._task, completed=row["generation"], stats=stats)
            return
        generation = row["generation"]
        if generation % self.every == 0 or generation >= trainer.max_generations or trainer.stop_requested:
            print(format_line(trainer, row), file=self.stream, flush=True)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class SlowGenerationHint(Callback):
    """After the first generation of a run, prints ``hint(seconds)`` once (when it is not
    ``None``) if that generation took more than ``seconds`` (default 10 s)."""

    def __init__(self, hint: Callable[[float], str | None], seconds: float = 10.0,
                 stream: TextIO | None = None) -> None:
        self.hint = hint
        self.seconds = float(seconds)
        self.stream = stream if stream is not None else sys.stdout
        self._checked = False

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self._checked:
            return
        self._checked = True
        took = float(row.get("generation_time", 0.0))
        message = self.hint(took) if took > self.seconds else None
        if message:
            print(message, file=self.stream, flush=True)
