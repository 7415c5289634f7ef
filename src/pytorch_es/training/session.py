"""A training run from a :class:`TrainConfig`: ``train(config)``, the Python equal of
``pytorch-es train``, and the :class:`Run` that both are made of.

A :class:`Run` holds its run directory (one run per directory, under its lock), builds
the problem, strategy, evaluator, callbacks and :class:`Trainer` from the config, writes
``config.json`` and, on resume, checks the checkpoint against the config::

    with Run(config) as run:      # or Run.resume("runs/x", overrides={"generations": 200})
        result = run.train()

Seed for seed, a config gives the same weights from ``train()`` and from the CLI.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytorch_es.training.build import (
    UsageError,
    check_run_costs,
    check_settings,
    describe_evaluator,
    make_problem,
    make_strategy,
    make_test,
    versions,
)
from pytorch_es.training.config import TrainConfig, random_seed, resolve_config
from pytorch_es.training.resume import load_resume, resume_paths
from pytorch_es.training.rundir import hold_run_directory, new_run_directory

__all__ = ["Run", "RunResult", "UsageError", "train"]


@dataclass
class RunResult:
    """What :func:`train` returns: how the run ended (``result``), where it is
    (``directory``: ``pytorch_es.rl.load_policy(directory)`` loads the best policy), its
    ``config``, whether this call trained at all, and the generation of the checkpoint it
    wrote last (``None``: none)."""

    result: Any
    directory: Path
    config: TrainConfig
    trained: bool
    saved_generation: int | None


def train(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    progress: bool = False,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train as ``pytorch-es train --config FILE`` does, and return the outcome.

    ``config``: a :class:`TrainConfig` (used as it is), or a config file's path or table
    (layered over the env's preset, like ``--config``). ``progress``: print the
    progress lines. ``callbacks``: more :class:`pytorch_es.training.Callback` objects.
    """
    if not isinstance(config, TrainConfig):
        config = resolve_config(config=config)
    with Run(config, progress=progress, callbacks=callbacks) as run:
        return run.train()


class Run:
    """A run directory held by this process, and the objects of its run.

    ``Run(config)`` starts a new run in ``config.out`` (default ``runs/ENV_ID-TIMESTAMP``);
    :meth:`resume` continues one. Use it as a context manager: leaving it closes the
    evaluator and the problem, releases the directory's lock, and removes a directory it
    created if the run failed before writing anything. ``progress``: print progress lines;
    ``callbacks``: more callbacks; ``command``: recorded in config.json; ``allow_network``:
    passed to a Ray backend; ``slow_hint(seconds) -> str | None``: a hint printed when a
    serial generation is slow.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        progress: bool = True,
        callbacks: Sequence[Any] = (),
        command: Sequence[str] | None = None,
        allow_network: bool = False,
        slow_hint: Any = None,
        _state: Mapping[str, Any] | None = None,
        _directory: Path | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if config.seed is None:  # drawn now, and recorded in config.json
            config = _with(config, seed=random_seed())
        self.config = config
        self.state = _state
        self.progress = progress
        self.extra_callbacks = list(callbacks)
        self.command = list(command) if command is not None else ["python", *sys.argv]
        self.allow_network = allow_network
        self.slow_hint = slow_hint
        self._resources = contextlib.ExitStack()
        self._directory = _directory
        self.problem: Any = None
        self.evaluator: Any = None
        self.trainer: Any = None

    @classmethod
    def resume(cls, path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None,
               labels: Callable[[str], str] | None = None, **kwargs: Any) -> Run:
        """Continue the run in directory ``path`` (or from the checkpoint file ``path``);
        ``overrides`` (nested) may change only :data:`MUTABLE_KEYS`; ``labels`` names a
        dotted key in errors."""
        directory, _ = resume_paths(path)
        run = cls.__new__(cls)  # built on __enter__, once the directory is held and the checkpoint read
        run.config, run.state, run.problem, run.evaluator, run.trainer = None, None, None, None, None
        run._resources = contextlib.ExitStack()
        run._pending_resume = (Path(path), dict(overrides or {}), labels, kwargs)
        run._directory = directory
        return run

    # ------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Run:
        pending = getattr(self, "_pending_resume", None)
        if pending is not None:
            path, overrides, labels, kwargs = pending
            del self._pending_resume
            resources = contextlib.ExitStack()
            try:
                hold_run_directory(resources, self._directory, created=False)  # before reading the checkpoint
                config, state = load_resume(path, overrides, labels)
            except BaseException:
                resources.close()
                raise
            Run.__init__(self, config, _state=state, _directory=self._directory, **kwargs)
            self._resources = resources
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the evaluator and the problem, then release the run directory."""
        try:
            if self.evaluator is not None:
                self.evaluator.close()
        finally:
            try:
                if self.problem is not None:
                    self.problem.close()
            finally:
                self._resources.close()

    @property
    def directory(self) -> Path:
        assert self._directory is not None
        return self._directory

    # --------------------------------------------------------------------- building
    def _open(self) -> None:
        from pytorch_es.evaluation import make_evaluator, resolve_backend

        config = self.config
        if self.state is None:
            self._directory = new_run_directory(self._resources, config)
            self.config = config = _with(config, out=str(self._directory))
        if not os.access(self.directory, os.W_OK):
            raise ValueError(f"run directory {str(self.directory)!r} is not writable")
        self.vector_choice = None
        if config.problem.vector == "auto":  # decided once; config.json records the choice
            from pytorch_es.rl.envs import choose_vector

            vector, self.vector_choice = choose_vector(config.env_id)
            self.config = config = _with(config, problem=replace(config.problem, vector=vector))
        check_settings(config)
        self.problem = make_problem(config)
        check_run_costs(config, self.problem.policy.num_parameters)
        strategy = make_strategy(config, self.problem.initial_center(config.seed).to(config.problem.device))
        evaluation = config.evaluation
        self.choice = resolve_backend(evaluation.backend, evaluation.workers, evaluation.ray_address, self.problem)
        options = {"allow_network": True} if self.allow_network and (
            evaluation.backend == "ray" or evaluation.ray_address) else {}
        self.evaluator = make_evaluator(evaluation.backend, evaluation.workers, evaluation.ray_address,
                                        evaluation.timeout, problem=self.problem, choice=self.choice, **options)
        self.trainer = self._make_trainer(strategy)
        if self.state is not None:
            self._load_state()
        from pytorch_es.io import write_json
        from pytorch_es.training.rundir import CONFIG_NAME

        write_json(self.directory / CONFIG_NAME, {**config.to_dict(), "versions": versions(),
                                                  "command": self.command})

    def _make_trainer(self, strategy: Any) -> Any:
        from pytorch_es.training import CheckpointCallback, MetricsCSV, ProgressCallback, TensorBoardLogger, Trainer
        from pytorch_es.training.progress import SlowGenerationHint
        from pytorch_es.training.rundir import TENSORBOARD_DIR, PolicySaver

        config = self.config
        callbacks: list[Any] = [ProgressCallback()] if self.progress else []
        if self.progress and self.slow_hint is not None and self.choice.backend == "serial":
            callbacks.append(SlowGenerationHint(self.slow_hint))
        callbacks += self.extra_callbacks
        callbacks.append(MetricsCSV(self.directory / "metrics.csv"))
        if config.tensorboard:
            callbacks.append(TensorBoardLogger(self.directory / TENSORBOARD_DIR))
        callbacks.append(PolicySaver(self.directory, self.problem, seed=config.seed))
        self.checkpointer = CheckpointCallback(self.directory, config.to_dict(), every=config.checkpoint_every)
        callbacks.append(self.checkpointer)
        return Trainer(strategy, self.problem, self.evaluator, test=make_test(self.problem, config),
                       test_every=config.test_every, target=config.target, callbacks=callbacks)

    def _load_state(self) -> None:
        from pytorch_es.training.checkpoint import shape_mismatches

        mismatches = shape_mismatches(self.state, self.problem.policy.num_parameters)
        if mismatches:
            raise ValueError(f"checkpoint in {str(self.directory)!r} does not fit this run: " + "; ".join(mismatches))
        try:
            self.trainer.load_state_dict(self.state)
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            raise ValueError(
                f"checkpoint in {str(self.directory)!r} does not fit this run: {str(error).splitlines()[0]}"
            ) from None

    # ---------------------------------------------------------------------- running
    @property
    def solved(self) -> float | None:
        """The last test reward when the run has already reached its target, else ``None``."""
        target, metrics = self.config.target, self.trainer.metrics
        last = metrics[-1]["test_reward"] if metrics else None
        return last if target is not None and last is not None and last >= target else None

    def train(self) -> RunResult:
        """Run the trainer to ``config.generations`` (or the target) and return the outcome
        (a resumed run that has reached its target already: see :attr:`solved`)."""
        start = self.trainer.generation
        if start < self.config.generations and callable(getattr(self.evaluator, "start", None)):
            self.evaluator.start()  # worker start-up (a second or more) out of the first timed generation
        result = self.trainer.run(self.config.generations)
        return RunResult(result, self.directory, self.config, result.generation > start,
                         self.checkpointer.saved_generation)

    def describe(self) -> str:
        """The start line: env, policy, population, seed, target, evaluation and directory."""
        config, evaluator = self.config, self.evaluator
        where = f"resuming at generation {self.trainer.generation}" if self.state is not None else "starting"
        shift = config.problem.reward_shift
        origin = getattr(config, "origin", None)
        return (
            f"{config.env_id}: {where}; {self.problem.policy.describe()}, "
            f"population {config.strategy.population_size}, seed {config.seed}, target {config.target}, "
            + (f"reward shift {shift:g} (training only), " if shift else "")
            + (f"{config.problem.vector} envs ({self.vector_choice}), " if self.vector_choice else "")
            + f"{describe_evaluator(evaluator, config.evaluation.timeout)} "
            f"({config.evaluation.backend}: {self.choice.reason}); run directory {self.directory}"
            + (f"; {origin}" if origin and not origin.startswith("preset " + config.env_id) else "")
        )


def _with(config: TrainConfig, **changes: Any) -> TrainConfig:
    """``config.replace(**changes)``, keeping what its defaults came from."""
    changed = config.replace(**changes)
    if hasattr(config, "origin"):
        changed.origin = config.origin  # type: ignore[attr-defined]
    return changed
