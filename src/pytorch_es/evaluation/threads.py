"""A thread pool evaluator: the original PyTorch-ES ``threadcount``.

Threads help when the reward function releases the GIL (torch ops, C++ envs);
they share the process, so nothing is copied.

A thread cannot be killed, so a reward function that never returns cannot be stopped
here: Ctrl-C (a ``KeyboardInterrupt`` while :meth:`ThreadEvaluator.evaluate` waits)
abandons the threads still running, says so on stderr, and lets the program go on or
exit. The threads are daemon threads, so an abandoned one never holds up the exit. To
bound a reward function's time, use processes (``ProcessEvaluator(timeout=...)``, or
``EvolutionModule(timeout=...)``), which kill and replace a worker that overruns.
"""

from __future__ import annotations

import queue
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from typing import Any

from pytorch_es.core.checks import check_int
from pytorch_es.core.population import Population
from pytorch_es.evaluation.base import Evaluator, GenerationResult, Problem, combine

WAIT_SLICE = 0.25  # seconds per wait: the main thread sees Ctrl-C between slices


class _DaemonPool:
    """``threads`` daemon threads running submitted calls (ThreadPoolExecutor's threads
    are joined at interpreter exit, so one hung call would block the exit forever)."""

    def __init__(self, threads: int) -> None:
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._loop, name=f"pytorch-es-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def _loop(self) -> None:
        while True:
            item = self.tasks.get()
            if item is None:
                return
            future, function, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:  # delivered to the waiting thread
                future.set_exception(error)

    def submit(self, function: Any, *args: Any) -> Future:
        future: Future = Future()
        self.tasks.put((future, function, args))
        return future

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        for _ in self.threads:
            self.tasks.put(None)
        if wait:
            for thread in self.threads:
                thread.join(timeout)


class ThreadEvaluator(Evaluator):
    """Evaluates members on ``threads`` threads, in small interleaved chunks
    (about four per thread, which balances load at a fraction of the per-task cost).

    If any member raises, the members not yet started are cancelled, the running
    ones finish, and the first error is re-raised: no thread is left running. On
    Ctrl-C the members not started are cancelled and the running ones abandoned
    (see the module docstring).
    """

    def __init__(self, threads: int = 4) -> None:
        self.threads = check_int("threads (threadcount)", threads)
        self._pool: _DaemonPool | None = None
        self.abandoned_threads = 0

    def _executor(self) -> _DaemonPool:
        if self._pool is None:
            self._pool = _DaemonPool(self.threads)
        return self._pool

    @staticmethod
    def _wait(futures: list[Future], return_when: str = FIRST_EXCEPTION) -> tuple[set, set]:
        while True:  # in slices: a signal handler runs between them
            done, pending = wait(futures, timeout=WAIT_SLICE, return_when=return_when)
            if not pending or (return_when == FIRST_EXCEPTION and any(f.exception() for f in done)):
                return done, pending

    def evaluate(self, population: Population, problem: Problem) -> GenerationResult:
        pool = self._executor()
        chunks = min(len(population), 4 * self.threads)
        futures = [
            pool.submit(problem.evaluate, population, range(start, len(population), chunks))
            for start in range(chunks)
        ]
        try:
            done, pending = self._wait(futures)
        except KeyboardInterrupt:
            self._abandon(futures)
            raise
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            for future in pending:
                future.cancel()
            try:
                self._wait(list(pending), "ALL_COMPLETED")
            except KeyboardInterrupt:
                self._abandon(futures)
                raise
            raise failed[0].exception()
        result = combine([f.result() for f in futures], len(population))
        problem.merge(result.evaluations)
        return result

    def _abandon(self, futures: list[Future]) -> None:
        """Ctrl-C while members run: cancel the rest and leave the running threads behind."""
        for future in futures:
            future.cancel()
        running = sum(1 for future in futures if future.running())
        if running and self._pool is not None:
            self.abandoned_threads += running
            print(
                f"pytorch-es: interrupted; abandoning {running} evaluation thread(s) still running a reward "
                "function (threads cannot be killed: they are left to finish or to die with the process; "
                "to bound a reward function's time use processes with a timeout)",
                file=sys.stderr,
                flush=True,
            )
            self._pool.shutdown(wait=False)
            self._pool = None  # a fresh pool next time: the abandoned threads may never return

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, timeout=None if not self.abandoned_threads else 1.0)
            self._pool = None
