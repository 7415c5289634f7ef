"""The scheduler of the worker pool shared by the process and Ray evaluators.

:class:`PoolEvaluator` cuts a generation into chunks of member indices, hands them
to workers as they become free, and handles retries and timeouts, once for every
backend (:mod:`pytorch_es.evaluation.backend`); what travels is in
:mod:`pytorch_es.evaluation.wire`, what runs in a worker in
:mod:`pytorch_es.evaluation.worker`.

Failures. A worker that dies (SIGKILL, OOM, segfault) or runs past ``timeout`` on a
task is killed and replaced, and its chunk is evaluated again: its first crash
re-runs the same chunk (so the chunking, and thus every result, matches an
uninterrupted run), later crashes split it in halves to isolate a member that keeps
killing its worker; a single member whose worker died ``max_crashes`` times is
reported as a :class:`MemberEvaluationError`. An exception raised by the problem
is reported once, with the member index and the remote traceback, and not retried.
"""

from __future__ import annotations

import itertools
import pickle
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pytorch_es.core.checks import check_int, check_timeout
from pytorch_es.core.population import Population
from pytorch_es.evaluation.backend import Event, WorkerBackend, WorkerGoneError, WorkerSetupError
from pytorch_es.evaluation.base import (
    Evaluation,
    Evaluator,
    GenerationResult,
    MemberEvaluationError,
    Problem,
    combine,
)
from pytorch_es.evaluation.wire import (
    GenerationSetup,
    Task,
    dtype_name,
    dumps_problem,
    pack_distribution,
    unpack_evaluation,
)


@dataclass
class Chunk:
    """Member indices evaluated together, with how many workers died on them."""

    indices: range
    crashes: int = 0


@dataclass
class _Running:
    epoch: int
    task_id: int
    chunk: Chunk
    started: float
    deadline: float | None


_STATES = ("down", "starting", "idle", "busy")


@dataclass
class _Slot:
    index: int
    handle: Any = None
    state: str = "down"  # down | starting | idle | busy
    started: float = 0.0
    info: dict = field(default_factory=dict)
    problem_key: int | None = None
    epoch: int | None = None
    running: _Running | None = None
    start_failures: int = 0
    overdue: bool = False


@dataclass
class PoolStats:
    """Communication and failure counts of the last generation (restarts: cumulative).

    ``bytes_sent`` maps a worker slot to the bytes of the messages it received this
    generation (setup and tasks, the one-off problem excluded) and ``members`` to the
    members it evaluated; ``center_bytes`` is the center, published once per
    generation (shared memory / object store).
    """

    workers: int = 0
    tasks: int = 0
    bytes_sent: dict[int, int] = field(default_factory=dict)
    members: dict[int, int] = field(default_factory=dict)
    center_bytes: int = 0
    problem_bytes: int = 0
    crashes: int = 0
    timeouts: int = 0
    restarts: int = 0
    seconds: float = 0.0

    @property
    def max_bytes_per_worker(self) -> int:
        return max(self.bytes_sent.values(), default=0)


def split_indices(size: int, parts: int) -> list[range]:
    """``range(size)`` cut into ``min(parts, size)`` contiguous, nearly equal ranges."""
    parts = max(1, min(parts, size))
    bounds = [size * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]


class PoolEvaluator(Evaluator):
    """An evaluator that farms chunks of members out to a pool of workers.

    Args:
        backend: starts and talks to the workers.
        workers: pool size.
        timeout: seconds one task (a chunk of members) may run before its worker is
            treated as dead, killed and replaced (``None``: no limit).
        max_crashes: a member is reported as an error once its worker died this many
            times while evaluating it alone (see the module docstring).
        chunks_per_worker: the population is cut into ``workers * chunks_per_worker``
            contiguous chunks handed out as workers become free (load balancing vs
            per-task overhead and batch size).
        start_timeout: seconds a worker may take to start (spawn, imports).
    """

    def __init__(
        self,
        backend: WorkerBackend,
        workers: int,
        *,
        timeout: float | None = None,
        max_crashes: int = 3,
        chunks_per_worker: int = 2,
        start_timeout: float = 120.0,
    ) -> None:
        self.workers = check_int("workers", workers)
        self.timeout = check_timeout(timeout)
        self.max_crashes = check_int("max_crashes", max_crashes)
        self.chunks_per_worker = check_int("chunks_per_worker", chunks_per_worker)
        self.start_timeout = check_timeout(start_timeout, "start_timeout")
        self._backend = backend
        self._slots = [_Slot(i) for i in range(self.workers)]
        # slots by state and by handle, kept up to date so that handling an event never
        # scans the whole pool
        self._in: dict[str, dict[int, _Slot]] = {state: {} for state in _STATES}
        self._in["down"] = {slot.index: slot for slot in self._slots}
        self._by_handle: dict[int, _Slot] = {}
        self._epoch = 0
        self._task_ids = 0
        self._problem_ref: Problem | None = None  # kept alive so its id stays unique
        self._problem_key = 0
        self._problem_blob = b""
        self._closed = False
        self._restarts = 0
        self.stats = PoolStats(workers=self.workers)

    # ----------------------------------------------------------------- public

    def evaluate(self, population: Population, problem: Problem) -> GenerationResult:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a pytorch_es Problem, got {type(problem).__name__}")
        began = time.perf_counter()
        self._load_problem(problem)
        self._epoch += 1
        epoch = self._epoch
        self.stats = PoolStats(workers=self.workers, restarts=self._restarts)
        center, fields = pack_distribution(population)
        setup = GenerationSetup(
            epoch=epoch,
            center=self._backend.publish(center),
            center_dtype=dtype_name(center.dtype),
            dim=center.numel(),
            noise_seed=population.noise.seed,
            noise_size=population.noise.size,
            noise_dtype=dtype_name(population.noise.dtype),
            generation=int(population.generation),
            size=len(population),
            antithetic=bool(population.antithetic),
            worker_state=problem.worker_state(),
            run_seed=population.seed,
            **fields,
        )
        try:
            pickle.dumps(setup.worker_state, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise TypeError(
                f"problem.worker_state() of {type(problem).__name__} must return picklable data "
                f"(it is sent to every worker each generation): {type(error).__name__}: {error}"
            ) from error
        self.stats.center_bytes = center.numel() * center.element_size()
        queue = deque(Chunk(r) for r in split_indices(len(population), self.workers * self.chunks_per_worker))
        expected = len(queue)
        done: list[Evaluation] = []
        for slot in list(self._in["down"].values()):
            self._spawn(slot)
        while len(done) < expected:
            self._dispatch(queue, setup)
            self._pump(queue, epoch, done)
        done.sort(key=lambda e: e.indices[0] if len(e.indices) else 0)
        result = combine(done, len(population))
        problem.merge(result.evaluations)
        self.stats.seconds = time.perf_counter() - began
        self.stats.restarts = self._restarts
        return result

    def start(self) -> None:
        """Start the workers now and wait until they are ready (otherwise they start
        during the first :meth:`evaluate`, which then begins with the first one ready)."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        for slot in list(self._in["down"].values()):
            self._spawn(slot)
        while any(not s.overdue for s in self._in["starting"].values()):
            self._pump(deque(), -1, [])  # no generation running: replies are stale

    def close(self) -> None:
        """Stop every worker (killing busy ones at once) and release shared resources. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # busy workers (an abandoned generation: Ctrl-C, SIGTERM, an error) are killed at
        # once; the others are asked to exit
        busy = [s.handle for s in self._in["busy"].values()]
        others = [s.handle for s in self._slots if s.handle is not None and s.state != "busy"]
        for slot in self._slots:
            self._set(slot, "down")
            slot.handle, slot.running = None, None
        self._by_handle.clear()
        try:
            for handle in busy:
                self._backend.kill(handle)
            self._backend.stop(others)
        finally:
            self._backend.shutdown()

    def worker_info(self) -> list[dict]:
        """What each live worker reported when it started (pid, host, node)."""
        ready = sorted([*self._in["idle"], *self._in["busy"]])
        return [dict(self._slots[i].info) for i in ready]

    # ----------------------------------------------------------------- internals

    def _load_problem(self, problem: Problem) -> None:
        if problem is self._problem_ref:
            return
        self._problem_blob = dumps_problem(problem)
        self._problem_ref = problem
        self._problem_key += 1

    def _set(self, slot: _Slot, state: str) -> None:
        del self._in[slot.state][slot.index]
        self._in[state][slot.index] = slot
        slot.state = state

    def _spawn(self, slot: _Slot) -> None:
        if slot.handle is not None:
            self._by_handle.pop(id(slot.handle), None)
        slot.handle = self._backend.spawn(slot.index)
        self._by_handle[id(slot.handle)] = slot
        self._set(slot, "starting")
        slot.started = time.monotonic()
        slot.info = {}
        slot.problem_key = None
        slot.epoch = None
        slot.running = None
        slot.overdue = False

    def _replace(self, slot: _Slot) -> None:
        if slot.handle is not None:
            self._backend.kill(slot.handle)
        self._restarts += 1
        self._spawn(slot)

    def _pump(self, queue: deque[Chunk], epoch: int, done: list[Evaluation]) -> None:
        """Wait for and handle one batch of worker events and expired deadlines. Every
        event is handled before the first error is raised, so none is lost."""
        handles = self._active_handles()
        if not handles:
            raise RuntimeError("internal error: waiting with no worker starting or busy")
        events = self._backend.wait(handles, self._wait_time())
        error: BaseException | None = None
        for event in events:
            slot = self._by_handle.get(id(event.handle))
            if slot is None or slot.handle is not event.handle:
                continue  # an event of a worker already replaced
            outcome = self._on_event(slot, event, queue, epoch)
            if isinstance(outcome, Evaluation):
                done.append(outcome)
            elif isinstance(outcome, BaseException) and error is None:
                error = outcome
        expired = self._expire(queue, epoch)
        error = error or expired
        if error is not None:
            raise error

    def _active_handles(self) -> list[Any]:
        return [s.handle for s in (*self._in["starting"].values(), *self._in["busy"].values())]

    def _deadlines(self) -> list[tuple[float, _Slot]]:
        """(deadline, slot) of running tasks and of starting workers."""
        deadlines = [
            (s.running.deadline, s) for s in self._in["busy"].values() if s.running and s.running.deadline
        ]
        if self.start_timeout is not None:
            deadlines += [
                (s.started + self.start_timeout, s) for s in self._in["starting"].values() if not s.overdue
            ]
        return deadlines

    def _wait_time(self) -> float | None:
        deadlines = self._deadlines()
        if not deadlines:
            return None
        return max(0.0, min(d for d, _ in deadlines) - time.monotonic())

    def _dispatch(self, queue: deque[Chunk], setup: GenerationSetup) -> None:
        for slot in list(self._in["idle"].values()):
            if not queue:
                return
            chunk = queue.popleft()
            self._task_ids += 1
            task = Task(setup.epoch, self._task_ids, chunk.indices)
            blob = self._problem_blob if slot.problem_key != self._problem_key else None
            fresh = setup if slot.epoch != setup.epoch else None
            try:
                sent = self._backend.send(slot.handle, blob, fresh, task)
            except WorkerGoneError as error:  # replace the worker, keep the chunk
                queue.appendleft(chunk)
                self._count_death(slot, f"sending failed: {error}")
                continue
            slot.problem_key, slot.epoch = self._problem_key, setup.epoch
            now = time.monotonic()
            deadline = now + self.timeout if self.timeout is not None else None
            slot.running = _Running(setup.epoch, task.task_id, chunk, now, deadline)
            self._set(slot, "busy")
            self.stats.tasks += 1
            self.stats.bytes_sent[slot.index] = self.stats.bytes_sent.get(slot.index, 0) + sent
            if blob is not None:
                self.stats.problem_bytes += len(blob)

    def _on_event(self, slot: _Slot, event: Event, queue: deque[Chunk], epoch: int) -> Any:
        if event.kind == "ready":
            if slot.state == "starting":
                self._set(slot, "idle")
                slot.info = dict(event.data or {})
                slot.start_failures = 0
            return None
        if event.kind == "died":
            return self._count_death(slot, str(event.data), queue, epoch)
        reply = event.data
        running = slot.running
        if running is None or reply[1] != running.task_id:
            return None  # not the task we are waiting for (should not happen)
        slot.running = None
        self._set(slot, "idle")
        current = running.epoch == epoch
        kind = reply[0]
        if kind == "done":
            if not current:
                return None
            members = self.stats.members
            members[slot.index] = members.get(slot.index, 0) + len(running.chunk.indices)
            return unpack_evaluation(reply[2])
        if kind == "error":
            _, _, member, message, remote = reply
            return MemberEvaluationError(int(member), message, remote) if current else None
        # fatal: the worker's problem / generation state is unknown: resend both next time
        slot.problem_key, slot.epoch = None, None
        _, _, message, remote = reply
        who = ", ".join(f"{k} {v}" for k, v in slot.info.items())
        return WorkerSetupError(
            f"a worker ({who}) could not set up the problem: {message}\n"
            f"--- original traceback ---\n{remote}\n"
            "The problem's code must be importable by every worker (install your package on "
            "every node, or define the problem in an importable module)."
        )

    def _count_death(
        self, slot: _Slot, reason: str, queue: deque[Chunk] | None = None, epoch: int | None = None
    ) -> BaseException | None:
        """A worker died: replace it; re-queue or give up on its chunk."""
        running, state = slot.running, slot.state
        self._replace(slot)
        if state == "starting":
            slot.start_failures += 1
            if slot.start_failures >= 3:
                return WorkerSetupError(
                    f"a {self._backend.name} worker failed to start {slot.start_failures} times in a row "
                    f"(last: {reason}){self._backend.start_hint()}"
                )
            return None
        if running is None or running.epoch != epoch or queue is None:
            return None
        self.stats.crashes += 1
        chunk = running.chunk
        chunk.crashes += 1
        if len(chunk.indices) == 1 and chunk.crashes >= self.max_crashes:
            return MemberEvaluationError(
                chunk.indices[0],
                f"its {self._backend.name} worker died {chunk.crashes} times while evaluating it "
                f"(last: {reason}); giving up on it",
            )
        if chunk.crashes == 1 or len(chunk.indices) == 1:
            queue.appendleft(chunk)
        else:  # a repeat offender: halve the chunk to isolate the member
            middle = len(chunk.indices) // 2
            queue.appendleft(Chunk(chunk.indices[middle:], chunk.crashes))
            queue.appendleft(Chunk(chunk.indices[:middle], chunk.crashes))
        return None

    def _overdue(self, slot: _Slot) -> BaseException | None:
        """A worker has not started in time: carry on with the others if there are any
        (it may still start, e.g. when a Ray cluster frees CPUs), else give up."""
        slot.overdue = True
        if self._in["idle"] or self._in["busy"]:
            waiting = sum(s.overdue for s in self._in["starting"].values())
            warnings.warn(
                f"{waiting} of {self.workers} {self._backend.name} workers did not start within "
                f"start_timeout={self.start_timeout:g} s; continuing with the others"
                f"{self._backend.start_hint()}",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        return WorkerSetupError(
            f"no {self._backend.name} worker started within start_timeout={self.start_timeout:g} s"
            f"{self._backend.start_hint()}"
        )

    def _expire(self, queue: deque[Chunk], epoch: int) -> BaseException | None:
        now = time.monotonic()
        error: BaseException | None = None
        for deadline, slot in self._deadlines():
            if now < deadline:
                continue
            if slot.state == "busy":
                self.stats.timeouts += 1
                reason = f"no reply within timeout={self.timeout:g} s; killed"
                outcome = self._count_death(slot, reason, queue, epoch)
            else:
                outcome = self._overdue(slot)
            error = error or outcome
        return error
