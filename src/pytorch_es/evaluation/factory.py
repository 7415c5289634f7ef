"""``make_evaluator``: one switch for the four backends (the CLI's ``--backend``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pytorch_es.core.checks import check_int, check_timeout
from pytorch_es.evaluation.base import BatchFunctionProblem, Evaluator, Problem, SerialEvaluator
from pytorch_es.evaluation.processes import ProcessEvaluator, available_cores
from pytorch_es.evaluation.threads import ThreadEvaluator

BACKENDS = ("auto", "serial", "threads", "processes", "ray")


def is_vectorized(problem: Problem | None) -> bool:
    """Whether ``problem`` evaluates a whole chunk of members at once in numpy/torch
    (a ``vectorized = True`` attribute, or a :class:`BatchFunctionProblem`)."""
    if problem is None:
        return False
    flag = getattr(problem, "vectorized", None)
    if flag is not None:
        return bool(flag)
    return isinstance(problem, BatchFunctionProblem)


def free_cores() -> int:
    """Cores not busy with other work: the usable cores minus the 1-minute load
    average of everything else (this process counted as idle), at least 1."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not available
        return cores
    busy_elsewhere = max(0, round(load) - 1)
    return max(1, cores - busy_elsewhere)


@dataclass
class BackendChoice:
    """What ``auto`` (or an explicit backend) resolved to, and why."""

    backend: str
    workers: int | None
    reason: str

    def __str__(self) -> str:
        workers = "" if self.workers is None else f", {self.workers} workers"
        return f"{self.backend}{workers} ({self.reason})"


def resolve_backend(
    backend: str = "auto",
    workers: int | None = None,
    ray_address: str | None = None,
    problem: Problem | None = None,
) -> BackendChoice:
    """Decide the backend: ``auto`` takes Ray when ``ray_address`` is given, serial
    (in-process, vectorised) for vectorised problems, else processes when more than
    one core is free (or ``workers > 1`` was asked for), else serial."""
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    backend = backend.lower()
    workers = check_int("workers", workers, allow_none=True)
    if ray_address is not None and backend not in ("auto", "ray"):
        raise ValueError(f"ray_address is only used with backend 'ray' (or 'auto'), not {backend!r}")
    if backend != "auto":
        if backend == "serial" and workers not in (None, 1):
            raise ValueError(
                f"backend 'serial' runs in this process; workers={workers} applies to "
                "'threads', 'processes' and 'ray'"
            )
        return BackendChoice(backend, None if backend == "serial" else workers, "asked for")
    if ray_address is not None:
        return BackendChoice("ray", workers, f"ray_address={ray_address}")
    if is_vectorized(problem):
        return BackendChoice("serial", None, "the problem is vectorised: one in-process batch")
    if workers is not None:
        if workers > 1:
            return BackendChoice("processes", workers, f"workers={workers}")
        return BackendChoice("serial", None, "workers=1")
    free = free_cores()
    if free > 1:
        return BackendChoice("processes", free, f"{free} free cores")
    return BackendChoice("serial", None, f"{free} free core of {available_cores()}")


def make_evaluator(
    backend: str = "auto",
    workers: int | None = None,
    ray_address: str | None = None,
    timeout: float | None = None,
    *,
    problem: Problem | None = None,
    choice: BackendChoice | None = None,
    **options: Any,
) -> Evaluator:
    """Build the evaluator for ``--backend {auto,serial,threads,processes,ray}``.

    Args:
        backend: see :func:`resolve_backend` for ``auto``.
        workers: threads / processes / actors (default: the free cores; 4 threads).
        ray_address: a running Ray cluster (``HOST:PORT``); implies ``ray`` under ``auto``.
        timeout: seconds a chunk of members may take before its worker is killed and
            replaced (``processes`` and ``ray``; a thread cannot be killed).
        problem: lets ``auto`` tell vectorised problems from the rest.
        choice: what :func:`resolve_backend` already returned for these arguments (the
            CLI shows it before building), so ``auto`` is decided only once.
        options: passed to :class:`ProcessEvaluator` / :class:`RayEvaluator`
            (``max_crashes``, ``chunks_per_worker``, ...).

    Every backend gives the same rewards for the same seed.
    """
    timeout = check_timeout(timeout)
    if choice is None:
        choice = resolve_backend(backend, workers, ray_address, problem)
    if choice.backend in ("serial", "threads"):
        if timeout is not None and backend != "auto":
            raise ValueError(
                f"timeout applies to the 'processes' and 'ray' backends (a {choice.backend} "
                "evaluation cannot be killed), got timeout={timeout}"
            )
        if options:
            raise TypeError(f"backend {choice.backend!r} takes no options, got {sorted(options)}")
        if choice.backend == "serial":
            return SerialEvaluator()
        return ThreadEvaluator(choice.workers if choice.workers is not None else 4)
    if choice.backend == "processes":
        return ProcessEvaluator(choice.workers, timeout=timeout, **options)
    from pytorch_es.evaluation.ray_evaluator import RayEvaluator

    return RayEvaluator(choice.workers, address=ray_address, timeout=timeout, **options)
