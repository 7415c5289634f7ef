"""The run directory of ``pytorch-es train``: its files, its lock, and the callback that
saves the trained policy into it.

::

    DIR/config.json          how the run was made (env id, hyperparameters, seed, versions)
    DIR/metrics.csv          one row per generation (see pytorch_es.training.metrics)
    DIR/policy.safetensors   weights of the best center (by greedy test), named tensors
    DIR/policy.json          env id, architecture, observation-normalisation statistics
    DIR/checkpoint.pt        everything to resume; DIR/checkpoint.prev.pt the one before
    DIR/tensorboard/         TensorBoard events (with --tensorboard)
    DIR/.lock                held (flock) by the one train or resume writing DIR; holds its PID

Every file is written atomically (temporary file + rename). Nothing here loads a
pickle: weights are safetensors, the policy description and config are JSON. The policy
files (``policy.json`` + ``policy.safetensors``, :func:`save_policy` / :func:`load_policy`)
are the policy artifact of :mod:`pytorch_es.rl.artifact`; their names are importable
from here too (imported on first use, so that this module needs no Gymnasium).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from pathlib import Path
from typing import Any

from pytorch_es.io import RunDirectoryError, load_safetensors, read_json, write_json  # noqa: F401 - re-exported
from pytorch_es.training.callbacks import Callback
from pytorch_es.training.loop import Trainer, TrainResult

CONFIG_NAME = "config.json"
TENSORBOARD_DIR = "tensorboard"
LOCK_NAME = ".lock"

# names that moved to pytorch_es.rl.artifact, still importable from here (PEP 562)
_ARTIFACT_NAMES = ("POLICY_CONFIG_NAME", "POLICY_WEIGHTS_NAME", "check_run_directory", "load_policy", "save_policy")


def __getattr__(name: str) -> Any:
    if name in _ARTIFACT_NAMES:
        return getattr(importlib.import_module("pytorch_es.rl.artifact"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RunDirectoryLock:
    """An exclusive ``fcntl.flock`` on ``DIR/.lock``, held while one run writes ``DIR``.

    The kernel drops the lock when its process exits, however it dies (SIGKILL
    included), so a stale lock file never blocks a resume; the PID written into the
    file is only there to name the holder in the error. Where ``fcntl`` does not exist
    (Windows) no lock is taken.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunDirectoryLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            reason = error.strerror or error
            raise RunDirectoryError(f"cannot create the lock file {str(self.path)!r}: {reason}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirectoryError(
                f"run directory {str(self.path.parent)!r} is in use by another pytorch-es run (pid {holder}); "
                "wait for it to end, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunDirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temporaries(directory: str | os.PathLike[str], older_than: float = 0.0) -> list[Path]:
    """Delete ``.NAME.*.tmp`` files that an atomic write killed midway (SIGKILL, power
    loss) left behind, if at least ``older_than`` seconds old.

    Call it holding the directory's :class:`RunDirectoryLock`: then no write to it is in
    flight, and every temporary file there is a dead writer's.
    """
    removed = []
    now = time.time()
    for path in Path(directory).glob(".*.tmp"):
        try:
            if path.is_file() and now - path.stat().st_mtime >= older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def remove_if_empty(directory: str | os.PathLike[str]) -> bool:
    """Remove a run directory that holds nothing but its lock file (a run that failed
    before writing anything); True if it was removed."""
    path = Path(directory)
    try:
        entries = [entry.name for entry in path.iterdir()]
        if any(name != LOCK_NAME for name in entries):
            return False
        (path / LOCK_NAME).unlink(missing_ok=True)
        path.rmdir()
    except OSError:
        return False
    return True


class PolicySaver(Callback):
    """Writes ``policy.safetensors`` and ``policy.json`` whenever the best test improves,
    and at the end of the run (the best center and its normalisation statistics)."""

    def __init__(self, directory: str | os.PathLike[str], problem: Any, **extra: Any) -> None:
        self.directory = Path(directory)
        self.problem = problem
        self.extra = extra
        self._written: int | None = None

    def save(self, trainer: Trainer) -> None:
        if trainer.best_center is None:
            return
        extra = dict(self.extra)
        extra.update(generation=trainer.best_generation, test_reward=trainer.best_test_reward)
        from pytorch_es.rl.artifact import save_policy

        save_policy(self.directory, self.problem, trainer.best_center, trainer.best_problem_state, **extra)
        self._written = trainer.best_generation

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if trainer.best_generation == row["generation"] and row.get("test_reward") is not None:
            self.save(trainer)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if trainer.best_generation is not None and self._written != trainer.best_generation:
            self.save(trainer)


# ------------------------------------------------- the directory of a new or resumed run
def default_out(env_id: str) -> Path:
    """``runs/ENV_ID-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... if that exists already)."""
    base = Path("runs") / f"{env_id.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = base, 1
    while path.exists():
        count += 1
        path = base.with_name(f"{base.name}-{count}")
    return path


def new_run_directory(resources: contextlib.ExitStack, config: Any) -> Path:
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
    lock = RunDirectoryLock(directory).acquire()  # RunDirectoryError names the holder
    resources.callback(lock.release)
    if created:
        resources.callback(remove_if_empty, directory)  # runs first: the lock is still held
    remove_stale_temporaries(directory)
