"""Local worker processes: one evaluator for envs that need many cores.

Each worker is a fresh Python process (``forkserver`` start method where available:
forked from a server process that imported torch once but never ran it, so starting
or replacing a worker takes milliseconds and no thread pool or CUDA state is
inherited; else ``spawn``) connected to the driver by a pipe. The center is
written once per generation into one block of shared memory that every worker
reads; the pipe carries only the scalars of :class:`~pytorch_es.evaluation.wire.GenerationSetup`
and the member index ranges (a few hundred bytes per worker per generation).
Scheduling, retries and timeouts are in :mod:`pytorch_es.evaluation.scheduler`.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.util  # imported before our atexit hook, so ours runs first
import os
import pickle
import queue as queue_module
import signal
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import torch

from pytorch_es.core.checks import check_int
from pytorch_es.evaluation.backend import Event, WorkerBackend, WorkerGoneError, WorkerSetupError
from pytorch_es.evaluation.scheduler import PoolEvaluator
from pytorch_es.evaluation.wire import GenerationSetup, Task, center_bytes, center_from_bytes
from pytorch_es.evaluation.worker import WorkerRuntime

PRELOAD = "pytorch_es.evaluation.processes"
SPAWN_ATTEMPTS = 4


def default_start_method() -> str:
    """``forkserver`` where available (workers fork from a server that imported torch
    once, so starting or replacing a worker takes milliseconds), else ``spawn``."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _context(start_method: str) -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        from multiprocessing import forkserver

        preload = list(getattr(forkserver._forkserver, "_preload_modules", None) or [])
        if PRELOAD not in preload:  # keep what the user preloads
            context.set_forkserver_preload([*preload, PRELOAD])
    return context


def available_cores() -> int:
    """Cores this process may run on (CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- worker process


def _watch_parent() -> None:
    """Exit as soon as the driver process is gone (even after a SIGKILL of the driver)."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always set for spawned children
        return
    multiprocessing.connection.wait([parent.sentinel])
    os._exit(3)


class _SharedCenter:
    """Worker side: attach the driver's shared-memory block and copy the center out."""

    def __init__(self) -> None:
        self.block: SharedMemory | None = None

    def __call__(self, setup: GenerationSetup) -> torch.Tensor:
        name, nbytes = setup.center
        if self.block is None or self.block.name != name:
            if self.block is not None:
                with contextlib.suppress(BufferError):  # a view still alive
                    self.block.close()
            # Spawned children share the driver's resource tracker, so attaching here
            # does not make the tracker unlink the block when this worker exits.
            self.block = SharedMemory(name=name)
        return center_from_bytes(self.block.buf[:nbytes], setup.center_dtype, setup.dim)


def _worker_main(conn: multiprocessing.connection.Connection, threads: int) -> None:
    """Entry point of a worker process: answer tasks until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's business
    threading.Thread(target=_watch_parent, daemon=True, name="pytorch-es-parent-watch").start()
    torch.set_num_threads(threads)
    runtime = WorkerRuntime(_SharedCenter())
    conn.send_bytes(pickle.dumps(("ready", {"pid": os.getpid(), "host": socket.gethostname()})))
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, problem_blob, setup, task = message
        reply = runtime.handle(problem_blob, setup, task)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            message = f"the evaluation could not be pickled: {type(error).__name__}: {error}"
            data = pickle.dumps(("error", task.task_id, task.indices[0], message, ""))
        try:
            conn.send_bytes(data)
        except OSError:
            return


# --------------------------------------------------------------------------- driver side


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    outbox: queue_module.SimpleQueue
    sender: threading.Thread
    dead: bool = False


def _send_loop(conn: multiprocessing.connection.Connection, outbox: queue_module.SimpleQueue) -> None:
    """Per-worker sender thread: the driver never blocks on a full pipe (e.g. a large
    problem sent to a worker still importing torch)."""
    while True:
        data = outbox.get()
        if data is None:
            return
        try:
            conn.send_bytes(data)
        except (OSError, ValueError):  # the worker died or the pipe was closed
            return


_LIVE_BACKENDS: weakref.WeakSet[_ProcessBackend] = weakref.WeakSet()


@atexit.register
def _kill_live_workers() -> None:
    """At interpreter exit, kill workers of evaluators that were never closed (runs
    before multiprocessing's own exit hook, which would wait for them forever)."""
    for backend in list(_LIVE_BACKENDS):
        backend.stop(list(backend.workers))
        backend.shutdown()


class _ProcessBackend(WorkerBackend):
    name = "process"

    def __init__(self, start_method: str, threads_per_worker: int) -> None:
        self.context = _context(start_method)
        self.threads_per_worker = threads_per_worker
        self.block: SharedMemory | None = None
        self.workers: set[_Worker] = set()
        _LIVE_BACKENDS.add(self)

    def spawn(self, slot: int) -> _Worker:
        parent_conn, child_conn = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_worker_main,
            args=(child_conn, self.threads_per_worker),
            name=f"pytorch-es-worker-{slot}",
            daemon=False,  # workers may start processes of their own (e.g. vector envs)
        )
        for attempt in range(SPAWN_ATTEMPTS):
            try:
                process.start()
                break
            except (EOFError, ConnectionError, FileNotFoundError) as error:
                # the forkserver died (killed) while asked for a worker: multiprocessing starts
                # a new one on the next request, once it has seen the old one exit
                if attempt + 1 == SPAWN_ATTEMPTS:
                    parent_conn.close()
                    child_conn.close()
                    raise WorkerSetupError(
                        f"could not start worker process {slot}: the {self.context.get_start_method()} "
                        f"start method failed {SPAWN_ATTEMPTS} times ({type(error).__name__}: {error or 'no reply'})"
                    ) from None
                time.sleep(0.05 * (attempt + 1))
                process = self.context.Process(
                    target=_worker_main,
                    args=(child_conn, self.threads_per_worker),
                    name=f"pytorch-es-worker-{slot}",
                    daemon=False,
                )
        child_conn.close()
        outbox: queue_module.SimpleQueue = queue_module.SimpleQueue()
        sender = threading.Thread(target=_send_loop, args=(parent_conn, outbox), daemon=True)
        sender.start()
        worker = _Worker(process, parent_conn, outbox, sender)
        self.workers.add(worker)
        return worker

    def publish(self, center: torch.Tensor) -> tuple[str, int]:
        data = center_bytes(center)
        nbytes = data.numel()
        if self.block is None or self.block.size < nbytes:
            self._release_block()
            self.block = SharedMemory(create=True, size=max(nbytes, 1))
        self.block.buf[:nbytes] = data.numpy().tobytes()
        return (self.block.name, nbytes)

    def send(
        self, handle: _Worker, problem_blob: bytes | None, setup: GenerationSetup | None, task: Task
    ) -> int:
        if handle.dead or not handle.process.is_alive():
            raise WorkerGoneError(describe_exit(handle.process.pid, handle.process.exitcode))
        data = pickle.dumps(("task", problem_blob, setup, task), protocol=pickle.HIGHEST_PROTOCOL)
        handle.outbox.put(data)
        return len(data) - (len(problem_blob) if problem_blob is not None else 0)

    def wait(self, handles: Sequence[_Worker], timeout: float | None) -> list[Event]:
        by_object: dict[Any, _Worker] = {}
        for worker in handles:
            by_object[worker.conn] = worker
            by_object[worker.process.sentinel] = worker
        ready = multiprocessing.connection.wait(list(by_object), timeout)
        events: list[Event] = []
        seen: set[int] = set()
        for obj in ready:
            worker = by_object[obj]
            if id(worker) in seen:
                continue
            seen.add(id(worker))
            event = self._read(worker)
            if event is not None:
                events.append(event)
        return events

    def _read(self, worker: _Worker) -> Event | None:
        try:
            if worker.conn.poll():
                data = worker.conn.recv_bytes()
                try:
                    message = pickle.loads(data)
                except Exception as error:  # e.g. a payload class the driver cannot import
                    self.kill(worker)
                    reason = f"its reply could not be read: {type(error).__name__}: {error}"
                    return Event(worker, "died", reason)
                kind = "ready" if message[0] == "ready" else "reply"
                return Event(worker, kind, message[1] if kind == "ready" else message)
        except (EOFError, OSError):
            pass
        worker.process.join(timeout=1.0)
        if worker.process.exitcode is None and worker.process.is_alive():
            return None  # spurious wake-up
        worker.dead = True
        return Event(worker, "died", describe_exit(worker.process.pid, worker.process.exitcode))

    def kill(self, handle: _Worker) -> None:
        handle.dead = True
        handle.outbox.put(None)
        if handle.process.is_alive():
            handle.process.kill()
        handle.process.join(timeout=10)
        handle.conn.close()
        self.workers.discard(handle)

    def stop(self, handles: Sequence[_Worker]) -> None:
        """Ask idle workers to exit, wait briefly, then SIGKILL the rest."""
        for handle in handles:
            if not handle.dead:
                handle.outbox.put(pickle.dumps(("stop",)))
        deadline = 1.0
        for handle in handles:
            handle.process.join(timeout=deadline)
            deadline = 0.05
        for handle in handles:
            self.kill(handle)

    def _release_block(self) -> None:
        if self.block is not None:
            try:
                self.block.close()
                self.block.unlink()
            except (BufferError, FileNotFoundError):  # pragma: no cover
                pass
            self.block = None

    def start_hint(self) -> str:
        return (
            " (a worker's own error, if any, is printed above; a script that starts worker "
            "processes needs an `if __name__ == '__main__':` guard, and cannot be read from stdin)"
        )

    def shutdown(self) -> None:
        self._release_block()


def describe_exit(pid: int | None, exitcode: int | None) -> str:
    """'worker process 123 was killed by SIGKILL' and the like."""
    if exitcode is None:
        return f"worker process {pid} stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process {pid} was killed by {name}"
    return f"worker process {pid} exited with code {exitcode}"


class ProcessEvaluator(PoolEvaluator):
    """Evaluates a population on ``workers`` local worker processes.

    For envs that cannot be vectorised in numpy (Box2D, MuJoCo): each process runs
    chunks of members (``problem.evaluate(population, chunk)``). Per generation the
    center goes once into shared memory and each worker gets only scalars and index
    ranges; see :mod:`pytorch_es.evaluation.wire` for what travels and
    :mod:`pytorch_es.evaluation.scheduler` for the failure behaviour.

    Args:
        workers: number of processes (default: the cores this process may use).
        timeout: seconds one chunk may take before its worker is treated as dead,
            killed and replaced (default: no limit).
        max_crashes: give up on a member (``MemberEvaluationError``) after its worker
            died this many times evaluating it.
        chunks_per_worker: chunks per worker per generation (load balancing).
        start_method: ``"forkserver"`` (default where available), ``"spawn"`` (default
            elsewhere) or ``"fork"`` (not recommended with torch).
        threads_per_worker: ``torch.set_num_threads`` in each worker (default 1, so
            ``workers`` processes use ``workers`` cores).
        start_timeout: seconds a worker may take to start.

    The problem must be picklable (cloudpickle is used, so lambdas work); per-generation
    changes of the driver's problem reach the workers only through ``worker_state()``.
    Use as a context manager, or call :meth:`close` (also on Ctrl-C): it kills the workers.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout: float | None = None,
        max_crashes: int = 3,
        chunks_per_worker: int = 2,
        start_method: str | None = None,
        threads_per_worker: int = 1,
        start_timeout: float = 120.0,
    ) -> None:
        workers = check_int("workers", workers, allow_none=True)
        start_method = default_start_method() if start_method is None else start_method
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {multiprocessing.get_all_start_methods()}, got {start_method!r}"
            )
        check_int("threads_per_worker", threads_per_worker)
        super().__init__(
            _ProcessBackend(start_method, threads_per_worker),
            workers if workers is not None else available_cores(),
            timeout=timeout,
            max_crashes=max_crashes,
            chunks_per_worker=chunks_per_worker,
            start_timeout=start_timeout,
        )

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [s.handle.process.pid for s in self._slots if s.handle is not None and not s.handle.dead]

    def __repr__(self) -> str:
        return f"ProcessEvaluator(workers={self.workers}, timeout={self.timeout})"
