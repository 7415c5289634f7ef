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
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytorch_es.training.config import (
    TrainConfig,
    flatten_config,
    legacy_to_nested,
    nest,
    random_seed,
    resolve_config,
)

__all__ = ["IDENTITY_KEYS", "MUTABLE_KEYS", "Run", "RunResult", "UsageError", "train"]

# Dotted keys that define a run: a checkpoint only continues a run made with the same ones
# (every key of [strategy] too, including a strategy's own options).
IDENTITY_KEYS = (
    "env_id",
    "seed",
    "test_every",
    "test_episodes",
    "policy.hidden",
    "policy.activation",
    "problem.episodes_per_member",
    "problem.max_steps",
    "problem.obs_norm",
    "problem.reward_shift",
)
# Dotted keys that a resumed run may change.
MUTABLE_KEYS = (
    "generations",
    "target",
    "checkpoint_every",
    "tensorboard",
    "problem.vector",
    "problem.device",
    "evaluation.backend",
    "evaluation.workers",
    "evaluation.ray_address",
    "evaluation.timeout",
)
# Backends whose evaluation runs in this process: a task cannot be killed, so a timeout does not apply.
UNKILLABLE_BACKENDS = ("serial", "threads")
TEST_SEED_TAG = 0x7E57
SCREEN_EPISODES = 10
MAX_TEST_EPISODES = 1 << 30  # test episodes take env seeds from a 31-bit range


class UsageError(ValueError):
    """Settings that cannot go together (the CLI exits with its usage status, 2)."""


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
        run = cls.__new__(cls)
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
            + f"{describe_evaluator(evaluator, config.evaluation.timeout)} "
            f"({config.evaluation.backend}: {self.choice.reason}); run directory {self.directory}"
            + (f"; {origin}" if origin and origin.startswith("no preset") else "")
        )


def _with(config: TrainConfig, **changes: Any) -> TrainConfig:
    """``config.replace(**changes)``, keeping what its defaults came from."""
    changed = config.replace(**changes)
    if hasattr(config, "origin"):
        changed.origin = config.origin  # type: ignore[attr-defined]
    return changed


# ------------------------------------------------------------------------ builders
def make_problem(config: TrainConfig) -> Any:
    """``GymProblem`` (``vector`` gymnasium or envpool) or ``TorchEnvProblem`` on ``device`` (torch)."""
    from pytorch_es.rl import GymProblem
    from pytorch_es.rl.torch_problem import TorchEnvProblem, check_device

    problem = config.problem
    check_device(problem.device)  # one line for cuda without CUDA, on either path
    kwargs = {"episodes_per_member": problem.episodes_per_member, "max_steps": problem.max_steps,
              "obs_norm": problem.obs_norm}
    policy = {"hidden": tuple(config.policy.hidden), "activation": config.policy.activation}
    if problem.vector == "torch":
        return TorchEnvProblem(config.env_id, policy, device=problem.device, **kwargs)
    vectorization = "envpool" if problem.vector == "envpool" else "auto"
    return GymProblem(config.env_id, policy, vectorization=vectorization, reward_shift=problem.reward_shift, **kwargs)


def make_strategy(config: TrainConfig, center: Any) -> Any:
    """``strategies.get(config.strategy.name)(center, **config.strategy.kwargs(), seed=config.seed)``."""
    from pytorch_es.strategies import get

    return get(config.strategy.name)(center, **config.strategy.kwargs(), seed=config.seed)


def make_test(problem: Any, config: TrainConfig) -> Any:
    """Greedy test of the center: a screen of 10 episodes, completed to ``test_episodes``
    only when the screen reaches the target. Seeds depend only on the run seed."""
    import torch

    from pytorch_es.core.noise import mix_seed

    episodes = config.test_episodes
    screen = min(SCREEN_EPISODES, episodes)
    start = mix_seed(config.seed, TEST_SEED_TAG) % ((1 << 31) - episodes)
    target = config.target

    def test(center: torch.Tensor) -> float:
        returns = problem.evaluate_policy(center, episodes=screen, seed=start)
        if episodes > screen and (target is None or float(returns.mean()) >= target):
            rest = problem.evaluate_policy(center, episodes=episodes - screen, seed=start + screen)
            returns = torch.cat([returns, rest])
        return float(returns.mean())

    return test


def check_settings(config: TrainConfig) -> None:
    """Settings that cannot go together (:class:`UsageError`)."""
    evaluation, problem = config.evaluation, config.problem
    if evaluation.timeout is not None and evaluation.backend in UNKILLABLE_BACKENDS:
        raise UsageError(
            f"--timeout applies to --backend processes and ray: a {evaluation.backend} evaluation runs in this "
            "process and cannot be killed"
        )
    if problem.vector == "torch" and evaluation.backend not in ("auto", "serial"):
        raise UsageError(
            f"--vector torch evaluates the whole population in this process, on --device; "
            f"--backend {evaluation.backend} does not apply (use auto or serial)"
        )
    if problem.vector == "torch" and problem.reward_shift:
        raise UsageError("--reward-shift applies to --vector gymnasium and envpool (the torch envs pay no "
                         "survival bonus)")


def check_run_costs(config: TrainConfig, num_parameters: int) -> None:
    """Fail before allocating when a generation's batch or the test's cannot fit in memory
    (lower bounds: the members' parameters and about 1 KiB per sub-env)."""
    from pytorch_es.limits import batch_bytes, check_memory

    if config.test_episodes > MAX_TEST_EPISODES:
        raise ValueError(f"--test-episodes must be at most {MAX_TEST_EPISODES:,} (env seeds are 31-bit), "
                         f"got {config.test_episodes:,}")
    population, episodes = config.strategy.population_size, config.problem.episodes_per_member
    if config.problem.vector != "torch":  # TorchEnvProblem checks its device's memory itself
        check_memory(
            batch_bytes(population * episodes, num_parameters),
            f"--population {population:,} x --episodes {episodes:,} ({population * episodes:,} sub-envs per "
            f"generation, {num_parameters:,} parameters each)",
            "use a smaller --population or fewer --episodes",
        )
    check_memory(
        batch_bytes(config.test_episodes, num_parameters),
        f"--test-episodes {config.test_episodes:,} (one batch of that many sub-envs)",
        "use fewer --test-episodes",
    )


def describe_evaluator(evaluator: Any, timeout: float | None = None) -> str:
    """``"processes evaluation on 2 workers, timeout 60 s per task"`` and the like."""
    workers = getattr(evaluator, "workers", None) or getattr(evaluator, "threads", None)
    name = type(evaluator).__name__.replace("Evaluator", "").lower() or "custom"
    text = f"{name} evaluation" + (f" on {workers} workers" if isinstance(workers, int) else "")
    if timeout is not None:  # backend auto may have picked an in-process backend
        used = getattr(evaluator, "timeout", None) is not None
        text += f", timeout {timeout:g} s per task" if used else f" (--timeout {timeout:g} unused: runs in-process)"
    return text


def versions() -> dict[str, str]:
    import gymnasium
    import torch

    from pytorch_es._version import __version__

    return {"pytorch_es": __version__, "torch": torch.__version__, "gymnasium": gymnasium.__version__,
            "python": platform.python_version()}


# ----------------------------------------------------------------- run directories
def default_out(env_id: str) -> Path:
    """``runs/ENV_ID-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... if that exists already)."""
    base = Path("runs") / f"{env_id.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = base, 1
    while path.exists():
        count += 1
        path = base.with_name(f"{base.name}-{count}")
    return path


def new_run_directory(resources: contextlib.ExitStack, config: TrainConfig) -> Path:
    """The directory of a new run, created if needed and held; refused if it holds a run."""
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME

    directory = Path(config.out) if config.out else default_out(config.env_id)
    taken = (f"--out {str(directory)!r} already holds a run; continue it with "
             f"pytorch-es train --resume {directory}, or choose another --out")
    if (directory / CHECKPOINT_NAME).exists():
        raise ValueError(taken)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--out {str(directory)!r} exists and is not a directory")
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create --out {str(directory)!r}: {error.strerror or error}") from None
    hold_run_directory(resources, directory, created=created)
    if (directory / CHECKPOINT_NAME).exists():  # written by a run that ended while this one started
        raise ValueError(taken)
    return directory


def hold_run_directory(resources: contextlib.ExitStack, directory: Path, created: bool) -> None:
    """One run per directory: its lock until ``resources`` close (a second train or resume
    fails at once, naming the holder's PID), stale temporary files of a killed run removed,
    and a directory this run created removed again if the run fails before writing into it."""
    from pytorch_es.training.rundir import RunDirectoryLock, remove_if_empty, remove_stale_temporaries

    lock = RunDirectoryLock(directory).acquire()  # RunDirectoryError names the holder
    resources.callback(lock.release)
    if created:
        resources.callback(remove_if_empty, directory)  # runs first: the lock is still held
    remove_stale_temporaries(directory)


def resume_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(run directory, checkpoint file) of a run directory or a checkpoint file."""
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME

    path = Path(path)
    if path.is_dir():
        return path, path / CHECKPOINT_NAME
    if path.is_file():
        return path.parent, path
    raise ValueError(f"--resume {str(path)!r}: no such run directory or checkpoint file")


def saved_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's or config.json's config, nested (release 0.2 wrote it flat)."""
    data = dict(data)
    if "strategy" not in data:
        data = legacy_to_nested(data)
    data.pop("versions", None)
    data.pop("command", None)
    return data


def _labelled(flat: Mapping[str, Any], label: Callable[[str], str]) -> dict[str, Any]:
    return {label(key): value for key, value in flat.items()}


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flat identity settings of a nested config (see :data:`IDENTITY_KEYS`)."""
    flat = flatten_config(config)
    return {k: v for k, v in flat.items() if k in IDENTITY_KEYS or k.startswith("strategy.")}


def load_resume(path: str | os.PathLike[str], overrides: Mapping[str, Any],
                labels: Callable[[str], str] | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """(merged config, trainer state) to continue the run at ``path``; ``overrides``
    (nested) may change :data:`MUTABLE_KEYS` only; ``labels`` names a dotted key in errors."""
    label = labels or (lambda key: key)
    from pytorch_es.io import read_json
    from pytorch_es.training.checkpoint import CheckpointError, config_differences, load_checkpoint
    from pytorch_es.training.rundir import CONFIG_NAME

    directory, checkpoint = resume_paths(path)
    try:
        payload = load_checkpoint(checkpoint)
    except CheckpointError as error:
        message = str(error)
        if error.previous is not None:
            message += (
                f"; the previous checkpoint {str(error.previous)!r} (generation {error.previous_generation}) "
                f"is intact: resume from it with: pytorch-es train --resume {error.previous}"
            )
        raise ValueError(message) from None
    if not payload["config"].get("env_id"):
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} was not written by pytorch-es train (no env_id in its config)"
        )
    saved = saved_config(payload["config"])
    config_path = directory / CONFIG_NAME
    if config_path.is_file():
        differences = config_differences(_labelled(identity(saved_config(read_json(config_path))), label),
                                         _labelled(identity(saved), label))
        if differences:
            raise ValueError(
                f"checkpoint {str(checkpoint)!r} is from another run than {str(config_path)!r}: "
                + "; ".join(
                    d.replace("checkpoint has", "config.json has").replace("this run has", "checkpoint has")
                    for d in differences
                )
            )
    flat_overrides = {k: v for k, v in flatten_config(overrides).items() if v is not None}
    differences = config_differences(
        _labelled(identity(saved), label),
        _labelled({**identity(saved), **{k: v for k, v in flat_overrides.items() if k not in MUTABLE_KEYS}}, label),
    )
    if differences:
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} was made with other settings than this command: "
            + "; ".join(differences)
            + " (a resumed run keeps its settings; only "
            + ", ".join(label(key) for key in MUTABLE_KEYS)
            + " may change)"
        )
    flat = flatten_config(saved)
    flat.update({k: v for k, v in flat_overrides.items() if k in MUTABLE_KEYS})
    # settings of the run that do not apply to the backend asked for now are dropped
    backend = flat_overrides.get("evaluation.backend")
    if backend in UNKILLABLE_BACKENDS and "evaluation.timeout" not in flat_overrides:
        flat["evaluation.timeout"] = None
    if backend == "serial" and "evaluation.workers" not in flat_overrides:
        flat["evaluation.workers"] = None
    if backend not in (None, "auto", "ray") and "evaluation.ray_address" not in flat_overrides:
        flat["evaluation.ray_address"] = None
    flat["out"] = str(directory)
    config = TrainConfig.from_dict(nest(flat), source=f"checkpoint {str(checkpoint)!r}")
    return config, payload["state"]
