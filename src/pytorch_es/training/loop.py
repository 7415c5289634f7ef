"""The training loop: ask -> evaluate -> tell, with tests, early stop and callbacks.

One generation of :class:`Trainer`::

    population = strategy.ask()                            # a description, no matrix
    result = evaluator.evaluate(population, problem)       # one reward per member
    stats = strategy.tell(result.rewards)                  # optimizer step on the center
    test = test_fn(strategy.center)  every `test_every`    # greedy score of the center
    callbacks.on_generation_end(trainer, row)              # metrics, checkpoint, progress

The run stops at ``generations``, when a test reaches ``target``, on Ctrl-C or on
SIGTERM. The first SIGINT lets the current generation finish, a second abandons it.
SIGTERM (a cluster's preemption notice, ``kill``, ``docker stop``) abandons the
generation being evaluated at once, since SIGKILL usually follows within seconds, and
stops with reason ``"terminated"``. An abandoned generation's effect on the problem's
state is rolled back, so the saved state is that after the last finished generation.
Everything needed to continue bit-identically is in :meth:`Trainer.state_dict`.
"""

from __future__ import annotations

import math
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pytorch_es.core.checks import check_int, check_reward
from pytorch_es.evaluation.base import Evaluator, Problem, SerialEvaluator
from pytorch_es.strategies.base import Strategy
from pytorch_es.training.callbacks import Callback, CallbackList

TestFunction = Callable[[torch.Tensor], float]

STOP_REASONS = ("generations", "target", "interrupted", "terminated", "stopped", "error")


@dataclass
class TrainResult:
    """How a :meth:`Trainer.run` ended.

    Attributes:
        reason: ``"generations"`` (budget used), ``"target"`` (a test reached the
            target), ``"interrupted"`` (Ctrl-C), ``"terminated"`` (SIGTERM),
            ``"stopped"`` (``request_stop``) or ``"error"``.
        generation: generations completed (counting those before a resume).
        env_steps: environment steps of the training rollouts (tests not counted).
        elapsed: wall-clock seconds of training (counting those before a resume).
        best_test_reward, best_generation: the best greedy test of the center so far
            (``None`` without a test function).
        abandoned: a generation was in progress and was dropped (second Ctrl-C, SIGTERM).
    """

    reason: str
    generation: int
    env_steps: int
    elapsed: float
    best_test_reward: float | None
    best_generation: int | None
    abandoned: bool = False

    @property
    def solved(self) -> bool:
        return self.reason == "target"


def problem_state(problem: Problem) -> Any:
    """The problem's own state (e.g. observation-normalisation statistics), or ``None``.

    ``problem.state_dict()`` if it has one, else ``problem.worker_state()`` (what workers
    need each generation is what evolves; e.g. ``GymProblem``'s normaliser).
    """
    state_dict = getattr(problem, "state_dict", None)
    return state_dict() if callable(state_dict) else problem.worker_state()


def load_problem_state(problem: Problem, state: Any) -> None:
    """Restore what :func:`problem_state` returned (no-op for stateless problems)."""
    if state is None:
        return
    load = getattr(problem, "load_state_dict", None)
    if callable(load):
        load(state)
    else:
        problem.load_worker_state(state)


def rng_state() -> dict[str, Any]:
    """The global torch, numpy and Python RNG states, as tensors and plain lists.

    Stored in checkpoints so a resumed run draws the same numbers; only plain
    containers and tensors, so ``torch.load(weights_only=True)`` reads it.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }


def load_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["internal"]), py_state["gauss"]))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
ZERO_UPDATE_GENERATIONS = 10  # generations in a row without a move of the center before a warning


@contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back while the block runs (a rollback, the final save).

    On the main thread: the signals are masked for this thread (``pthread_sigmask``,
    where the platform has it) and, since another thread may still receive one and
    Python runs every handler on the main thread, the handlers are also replaced by one
    that only records the signal. The yielded list collects what arrived (pending masked
    signals are consumed with ``sigwait`` before unmasking); the caller decides whether
    to deliver them (``signal.raise_signal``) or drop them. Elsewhere: a no-op.
    """
    arrived: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return
    mask = hasattr(signal, "pthread_sigmask")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if mask else None

    def record(signum: int, frame: object) -> None:
        arrived.append(signum)

    previous = {signum: signal.signal(signum, record) for signum in STOP_SIGNALS}
    try:
        yield arrived
    finally:
        if mask:
            pending = signal.sigpending() & set(STOP_SIGNALS)
            for signum in pending:
                signal.sigwait({signum})  # pending, so returns at once: consumed
                arrived.append(signum)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if mask:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


class Trainer:
    """Runs a strategy on a problem, generation after generation.

    Args:
        strategy: an ask/tell strategy (e.g. :class:`~pytorch_es.OpenAIES`).
        problem: scores members (e.g. a Gymnasium problem or a ``FunctionProblem``).
        evaluator: where members run (default: :class:`SerialEvaluator`). The caller
            closes it.
        test: ``test(center) -> float``, a greedy evaluation of the center; called every
            ``test_every`` generations and after the last one. It must not depend on
            global random state (use fixed seeds) so that a resumed run tests the same.
        test_every: test period in generations (>= 1).
        test_at_end: also test after the last generation of a run, when it does not fall
            on the period (default ``True``; ``EvolutionModule`` tests only on the period).
        target: stop as soon as a test scores ``>= target`` (needs ``test``).
        callbacks: :class:`Callback` objects (metrics, checkpoints, progress, ...).
        scheduler: an optional ``torch.optim.lr_scheduler`` on ``strategy.optimizer``,
            stepped once per generation and saved in the state.
    """

    def __init__(
        self,
        strategy: Strategy,
        problem: Problem,
        evaluator: Evaluator | None = None,
        *,
        test: TestFunction | None = None,
        test_every: int = 1,
        test_at_end: bool = True,
        target: float | None = None,
        callbacks: Iterable[Callback] = (),
        scheduler: Any | None = None,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a pytorch_es Strategy, got {type(strategy).__name__}")
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a pytorch_es Problem, got {type(problem).__name__}")
        if evaluator is not None and not isinstance(evaluator, Evaluator):
            raise TypeError(f"evaluator must be an Evaluator or None, got {type(evaluator).__name__}")
        if test is not None and not callable(test):
            raise TypeError(f"test must be callable center -> float, got {type(test).__name__}")
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, (int, float)) or math.isnan(target):
                raise ValueError(f"target must be a number or None, got {target!r}")
            if test is None:
                raise ValueError("target needs a test function (the target is checked on the test reward)")
        self.strategy = strategy
        self.problem = problem
        self.evaluator = evaluator if evaluator is not None else SerialEvaluator()
        self.test = test
        self.test_every = check_int("test_every", test_every, 1)
        if not isinstance(test_at_end, bool):
            raise TypeError(f"test_at_end must be a bool, got {type(test_at_end).__name__}")
        self.test_at_end = test_at_end
        self.target = None if target is None else float(target)
        self.callbacks = CallbackList(callbacks)
        self.scheduler = scheduler
        self.generation = int(getattr(strategy, "generation", 0))
        self.max_generations = self.generation
        self.env_steps = 0
        self.elapsed = 0.0
        self.metrics: list[dict[str, Any]] = []
        self.best_test_reward: float | None = None
        self.best_generation: int | None = None
        self.best_center: torch.Tensor | None = None
        self.best_problem_state: Any = None
        self.last_test_reward: float | None = None
        self._stop_reason: str | None = None
        self._phase = "idle"
        self._zero_updates = 0
        self._warned_zero_updates = False
        self._clock_start: float | None = None
        self._elapsed_at_start = 0.0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue bit-identically: strategy, problem, scheduler, counters,
        best center, metrics so far and the global RNG states."""
        return {
            "strategy": self.strategy.state_dict(),
            "problem": problem_state(self.problem),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "generation": self.generation,
            "env_steps": self.env_steps,
            "elapsed": self.elapsed,
            "metrics": [dict(row) for row in self.metrics],
            "best": {
                "test_reward": self.best_test_reward,
                "generation": self.best_generation,
                "center": None if self.best_center is None else self.best_center.detach().cpu().clone(),
                "problem": self.best_problem_state,
            },
            "last_test_reward": self.last_test_reward,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (e.g. from a checkpoint) before :meth:`run`."""
        self.strategy.load_state_dict(state["strategy"])
        load_problem_state(self.problem, state.get("problem"))
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generation = int(state["generation"])
        self.max_generations = self.generation
        self.env_steps = int(state["env_steps"])
        self.elapsed = float(state["elapsed"])
        self.metrics = [dict(row) for row in state["metrics"]]
        best = state["best"]
        self.best_test_reward = best["test_reward"]
        self.best_generation = best["generation"]
        center = best["center"]
        self.best_center = None if center is None else center.to(self.strategy.center.device)
        self.best_problem_state = best.get("problem")
        self.last_test_reward = state.get("last_test_reward")
        if state.get("rng") is not None:
            load_rng_state(state["rng"])

    # --------------------------------------------------------------- control
    def request_stop(self, reason: str = "stopped") -> None:
        """Stop after the current generation (safe to call from a callback or a signal)."""
        if reason not in STOP_REASONS:
            raise ValueError(f"reason must be one of {STOP_REASONS}, got {reason!r}")
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_requested(self) -> bool:
        return self._stop_reason is not None

    @property
    def consistent(self) -> bool:
        """True between generations: :meth:`state_dict` is then a state to resume from."""
        return self._phase == "idle"

    def current_elapsed(self) -> float:
        """Training wall time so far, counting the time before a resume."""
        if self._clock_start is None:
            return self.elapsed
        return self._elapsed_at_start + (time.perf_counter() - self._clock_start)

    @contextmanager
    def _interrupts(self, enabled: bool) -> Iterator[None]:
        """SIGINT: finish the generation, then stop; a second one abandons it.
        SIGTERM: abandon the generation being evaluated now (or stop after the update in
        progress). Both previous handlers are restored on exit."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum: int, frame: object) -> None:
            if self._stop_reason in ("interrupted", "terminated"):
                if self._phase == "evaluate":
                    self._phase = "abandoning"  # one KeyboardInterrupt: later signals do not cut the rollback
                    raise KeyboardInterrupt
                return
            self._stop_reason = "interrupted"
            print(
                f"\nInterrupted: finishing generation {self.generation + 1}, then saving "
                "(press Ctrl-C again to abandon it).",
                file=sys.stderr,
                flush=True,
            )

        def on_sigterm(signum: int, frame: object) -> None:
            first = self._stop_reason != "terminated"
            if self._stop_reason in (None, "interrupted"):  # a reached target stays the reason
                self._stop_reason = "terminated"
            if first:
                doing = "abandoning" if self._phase == "evaluate" else "finishing"
                print(
                    f"\nTerminated (SIGTERM): {doing} generation {self.generation + 1}, then saving.",
                    file=sys.stderr,
                    flush=True,
                )
            if self._phase == "evaluate":
                self._phase = "abandoning"
                raise KeyboardInterrupt

        previous = {
            signal.SIGINT: signal.signal(signal.SIGINT, on_sigint),
            signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm),
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # ------------------------------------------------------------------ loop
    def _should_test(self) -> bool:
        return self.test is not None and (
            self.generation % self.test_every == 0
            or (self.test_at_end and self.generation >= self.max_generations)
        )

    def step(self, *, test: bool | None = None) -> dict[str, Any]:
        """Run one generation and return its metrics row (also appended to ``metrics``).

        ``test``: ``None`` tests on the schedule (every ``test_every`` generations and after
        the last one), ``False`` skips the test of this generation, ``True`` forces it.
        """
        if test is not None and not isinstance(test, bool):
            raise TypeError(f"test must be a bool or None, got {type(test).__name__}")
        if self._clock_start is None:
            self._clock_start = time.perf_counter()
            self._elapsed_at_start = self.elapsed
        started = time.perf_counter()
        snapshot = problem_state(self.problem)
        self._phase = "evaluate"
        try:
            population = self.strategy.ask()
            result = self.evaluator.evaluate(population, self.problem)
        except BaseException:  # abandoned (Ctrl-C) or failed: roll the problem back
            with deferred_signals() as arrived:  # a signal storm must not cut the rollback short
                load_problem_state(self.problem, snapshot)
                self._phase = "idle"
            for signum in dict.fromkeys(arrived):  # delivered now, to the handlers of the run
                signal.raise_signal(signum)
            raise
        self._phase = "update"
        rewards = result.rewards.to(torch.float64)
        stats = self.strategy.tell(rewards)
        if self.scheduler is not None:
            self.scheduler.step()
        self.generation += 1
        self.env_steps += int(result.env_steps)
        generation_time = time.perf_counter() - started
        test_reward = None
        if self.test is not None and (self._should_test() if test is None else test):
            assert self.test is not None
            test_reward = check_reward(self.test(self.strategy.center.detach().clone()), "the test run")
            self.last_test_reward = test_reward
            if self.best_test_reward is None or test_reward > self.best_test_reward:
                self.best_test_reward = test_reward
                self.best_generation = self.generation
                self.best_center = self.strategy.center.detach().clone()
                self.best_problem_state = problem_state(self.problem)
        elif self.test is None:
            self.best_generation = self.generation
            self.best_center = self.strategy.center.detach().clone()
            self.best_problem_state = problem_state(self.problem)
        self.elapsed = self.current_elapsed()
        row = {
            "generation": self.generation,
            "wall_time": self.elapsed,
            "env_steps": self.env_steps,
            "reward_mean": float(rewards.mean()),
            "reward_max": float(rewards.max()),
            "reward_min": float(rewards.min()),
            "reward_std": float(rewards.std(unbiased=False)),
            "test_reward": test_reward,
            "sigma": float(population.sigma),
            "scale_min": population.scale_stats()["scale_min"],
            "scale_max": population.scale_stats()["scale_max"],
            "lr": float(stats.get("lr", float("nan"))),
            "update_norm": float(stats.get("update_norm", float("nan"))),
            "generation_time": generation_time,
            "generation_env_steps": int(result.env_steps),
        }
        self.metrics.append(row)
        self._phase = "idle"
        self._watch_updates(row, rewards)
        return row

    def _watch_updates(self, row: dict[str, Any], rewards: torch.Tensor) -> None:
        """Warn once when the center has not moved for ``ZERO_UPDATE_GENERATIONS`` generations
        in a row (e.g. ``sigma=1e300``: every member is garbage and all rewards are equal)."""
        if row["update_norm"] == 0.0:
            self._zero_updates += 1
        else:
            self._zero_updates = 0
        if self._zero_updates >= ZERO_UPDATE_GENERATIONS and not self._warned_zero_updates:
            self._warned_zero_updates = True
            equal = bool((rewards == rewards[0]).all())
            warnings.warn(
                f"the center has not moved for {self._zero_updates} generations (update norm 0"
                + (", all rewards equal" if equal else "")
                + f", sigma {row['sigma']:g}): the search is stuck; sigma may be far too large or too small "
                "for this problem, or the reward may not depend on the parameters",
                RuntimeWarning,
                stacklevel=3,
            )

    def run(self, generations: int, *, handle_interrupts: bool = True) -> TrainResult:
        """Train until ``generations`` generations in total are done (counting those
        before a resume), a test reaches ``target``, or Ctrl-C.

        With ``handle_interrupts`` (and on the main thread) SIGINT and SIGTERM are
        handled as described in the module docstring: the run returns with reason
        ``"interrupted"`` or ``"terminated"`` instead of raising ``KeyboardInterrupt``
        or dying.
        """
        self.max_generations = check_int("generations", generations, 0)
        self._stop_reason = None
        self._clock_start = None
        abandoned = False
        reason = "generations"
        self.callbacks.on_train_begin(self)
        arrived: list[int] = []
        with self._interrupts(handle_interrupts):
            try:
                try:
                    while self.generation < self.max_generations and self._stop_reason is None:
                        row = self.step()
                        test_reward = row["test_reward"]
                        if self.target is not None and test_reward is not None and test_reward >= self.target:
                            self.request_stop("target")
                        self.callbacks.on_generation_end(self, row)
                except KeyboardInterrupt:  # a second Ctrl-C, or SIGTERM, during evaluate()
                    if self._stop_reason not in ("interrupted", "terminated"):
                        self._stop_reason = "interrupted"
                    abandoned = True
                    if self._phase == "abandoning":  # raised outside step's rollback: nothing to roll back
                        self._phase = "idle"
            except BaseException:
                # the final save is held safe from further signals, then the error goes on
                with self._final_section(handle_interrupts):
                    self.callbacks.on_train_end(self, self._result("error", abandoned))
                raise
            reason = self._stop_reason or "generations"
            with self._final_section(handle_interrupts) as arrived:
                result = self._result(reason, abandoned)
                self.callbacks.on_train_end(self, result)
        if reason not in ("interrupted", "terminated"):  # a stop asked for after the run ended: deliver it
            for signum in dict.fromkeys(arrived):
                signal.raise_signal(signum)
        return result

    @contextmanager
    def _final_section(self, enabled: bool) -> Iterator[list[int]]:
        """SIGINT/SIGTERM held back (see :func:`deferred_signals`) while the run's end is
        written: a signal storm cannot cut the final checkpoint short."""
        if not enabled:
            yield []
            return
        with deferred_signals() as arrived:
            yield arrived

    def _result(self, reason: str, abandoned: bool) -> TrainResult:
        self.elapsed = self.current_elapsed()
        self._clock_start = None
        return TrainResult(
            reason=reason,
            generation=self.generation,
            env_steps=self.env_steps,
            elapsed=self.elapsed,
            best_test_reward=self.best_test_reward,
            best_generation=self.best_generation,
            abandoned=abandoned,
        )
