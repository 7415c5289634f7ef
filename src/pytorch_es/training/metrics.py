"""Metrics: ``metrics.csv`` (one row per generation) and TensorBoard events.

Columns of ``metrics.csv`` (:data:`FIELDS`):

- ``generation``: generations completed (1 for the first row).
- ``wall_time``: seconds of training so far (continues across a resume).
- ``env_steps``: environment steps of the training rollouts so far (tests excluded).
- ``reward_mean``, ``reward_max``, ``reward_min``, ``reward_std``: population rewards of
  this generation (std is the population std, ``unbiased=False``).
- ``test_reward``: greedy test of the center after this generation's update (empty when
  not tested this generation).
- ``sigma``: the perturbation scale used this generation (the mean of a per-parameter
  scale); ``scale_min``, ``scale_max``: its extremes (equal to ``sigma`` for a scalar
  scale); ``lr``: the learning rate of this update; ``update_norm``: ``||theta_new - theta_old||``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_es.io import atomic_write
from pytorch_es.training.callbacks import Callback
from pytorch_es.training.loop import Trainer, TrainResult

FIELDS = (
    "generation",
    "wall_time",
    "env_steps",
    "reward_mean",
    "reward_max",
    "reward_min",
    "reward_std",
    "test_reward",
    "sigma",
    "scale_min",
    "scale_max",
    "lr",
    "update_norm",
)
INT_FIELDS = ("generation", "env_steps")
METRICS_NAME = "metrics.csv"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def format_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text (header and rows) of metrics rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([_format(row.get(name)) for name in FIELDS])
    return buffer.getvalue()


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a ``metrics.csv`` into rows (ints, floats, ``None`` for empty cells).

    Raises ``ValueError`` naming the file if it is not a metrics file.
    """
    path = Path(path)
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or []
        missing = [name for name in ("generation", "reward_mean") if name not in header]
        if missing:
            raise ValueError(f"{str(path)!r} is not a metrics file: no column {missing[0]!r}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = {}
            for name, text in raw.items():
                if name is None:
                    continue
                text = (text or "").strip()
                if not text:
                    row[name] = None
                    continue
                try:
                    row[name] = int(text) if name in INT_FIELDS else float(text)
                except ValueError:
                    raise ValueError(f"{str(path)!r} line {line}: column {name!r} is not a number: {text!r}") from None
            rows.append(row)
    return rows


class MetricsCSV(Callback):
    """Appends one row per generation to ``path`` (flushed each time, so a kill loses
    nothing that was printed). On a resumed run the file is first rewritten from the
    trainer's metrics, dropping rows of generations after the checkpoint."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: io.TextIOWrapper | None = None
        self._writer: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        text = format_rows(trainer.metrics)
        atomic_write(self.path, lambda file: file.write(text.encode()))
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (kept open for the run)
        self._writer = csv.writer(self._file, lineterminator="\n")

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self._writer is None:
            return
        self._writer.writerow([_format(row.get(name)) for name in FIELDS])
        assert self._file is not None
        self._file.flush()

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


class TensorBoardLogger(Callback):
    """TensorBoard events through ``torch.utils.tensorboard``.

    ``log_dir/generations`` holds every metric as ``es/<name>`` at step = generation;
    ``log_dir/env_steps`` holds the mean and test rewards at step = env steps. On a
    resumed run, events after the checkpoint are purged (``SummaryWriter(purge_step=)``)
    so curves do not fold back on themselves.
    """

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as error:  # tensorboard is an optional dependency
            raise ImportError(
                f"TensorBoard logging needs the tensorboard package: pip install 'pytorch-es[viz]' ({error})"
            ) from None
        self.log_dir = Path(log_dir)
        self._by_generation: Any = None
        self._by_steps: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        resumed = trainer.generation > 0
        self._by_generation = SummaryWriter(
            log_dir=str(self.log_dir / "generations"), purge_step=trainer.generation + 1 if resumed else None
        )
        self._by_steps = SummaryWriter(
            log_dir=str(self.log_dir / "env_steps"), purge_step=trainer.env_steps + 1 if resumed else None
        )

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self._by_generation is None:
            return
        step = row["generation"]
        for name in FIELDS[1:]:
            value = row.get(name)
            if value is not None:
                self._by_generation.add_scalar(f"es/{name}", value, step)
        self._by_steps.add_scalar("es/reward_mean", row["reward_mean"], row["env_steps"])
        if row.get("test_reward") is not None:
            self._by_steps.add_scalar("es/test_reward", row["test_reward"], row["env_steps"])

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        for writer in (self._by_generation, self._by_steps):
            if writer is not None:
                writer.flush()
                writer.close()
        self._by_generation = self._by_steps = None
