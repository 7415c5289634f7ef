"""``EvolutionModule``: the 2018 PyTorch-ES API, on the new engine.

A drop-in for ``from evolution.strategies import EvolutionModule``: same
arguments, defaults, reward-function calls and printout, with the original's
faults fixed (decay once per iteration, no NaN on equal rewards, no deep copies,
no pickle, a seed, a goal of 0 that works).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_es.core.parameters import ParametersLike, as_parameter_list, flatten, unflatten, write_back
from pytorch_es.core.population import Population
from pytorch_es.core.shaping import FitnessShaping
from pytorch_es.evaluation.base import Evaluator, FunctionProblem, MemberEvaluationError
from pytorch_es.evaluation.threads import ThreadEvaluator
from pytorch_es.io import WEIGHTS_FORMAT, check_output_path, save_state
from pytorch_es.strategies.base import check_reward
from pytorch_es.strategies.openai_es import (
    OpenAIES,
    OptimizerFactory,
    check_decay,
    check_population_size,
    check_positive,
)
from pytorch_es.strategies.registry import get as get_strategy
from pytorch_es.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    config_differences,
    keep_previous_copy,
    load_checkpoint,
)
from pytorch_es.training.loop import deferred_signals, load_rng_state, rng_state

RewardFunction = Callable[..., float]


def resolve_device(cuda: bool, device: torch.device | str | None, fallback: torch.device) -> torch.device:
    """The device asked for by ``cuda=True`` or ``device=``; a clear error without CUDA."""
    if device is None and not cuda:
        return fallback
    chosen = torch.device(device if device is not None else "cuda")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        flag = "cuda=True" if device is None else f"device={str(device)!r}"
        raise RuntimeError(
            f"{flag} but CUDA is not available (torch {torch.__version__}, "
            f"torch.cuda.is_available() is False); use cuda=False or device='cpu'"
        )
    return chosen


class WeightListProblem(FunctionProblem):
    """Calls ``reward_function(weights)`` with ``weights`` a list of tensors shaped like
    the parameters, as the original library did. Holds only shapes, so it pickles."""

    def __init__(self, reward_function: RewardFunction, like: Sequence[torch.Tensor]) -> None:
        super().__init__(reward_function)
        self.like = [torch.empty(t.shape, dtype=t.dtype, device="meta") for t in like]

    def evaluate_member(self, population: Population, index: int) -> float:
        weights = unflatten(population.member(index), self.like)
        try:
            value = self.function(weights)
        except Exception as error:  # re-raised with the member index
            raise MemberEvaluationError(index, f"{type(error).__name__}: {error}") from error
        return check_reward(value, index)


def _default_evaluator(threadcount: int, timeout: float | None, population_size: int) -> Evaluator:
    """Threads, or with a ``timeout`` worker processes that can be killed when they overrun."""
    if timeout is None:
        return ThreadEvaluator(threadcount)
    from pytorch_es.evaluation.pool import check_timeout
    from pytorch_es.evaluation.processes import ProcessEvaluator

    # the pool's timeout is per task: one member per task makes it a bound on one reward call
    chunks = max(1, -(-population_size // threadcount))
    return ProcessEvaluator(threadcount, timeout=check_timeout(timeout), chunks_per_worker=chunks)


class EvolutionModule:
    """Train parameters with OpenAI-ES, with the original PyTorch-ES signature.

    Args:
        parameters: list of floating-point tensors (e.g. ``list(model.parameters())``)
            or an ``nn.Module``. They are updated in place.
        reward_function: called as ``reward_function(weights)`` for each member, where
            ``weights`` is a list of tensors shaped like ``parameters``, and as
            ``reward_function(weights, render=render_test)`` for the test run on the
            current parameters. Returns a finite number (higher is better).
        population_size: members per iteration (>= 2). Members come in mirrored pairs
            ``+eps, -eps`` unless ``antithetic=False``; an odd size leaves the last one
            unpaired.
        sigma: perturbation scale (> 0). learning_rate: step size (>= 0).
        decay, sigma_decay: multiply the learning rate and sigma once per iteration,
            in (0, 1].
        threadcount: threads evaluating members.
        render_test: passed as ``render=`` to the test run.
        cuda: keep noise and updates on the GPU (or pass ``device=``).
        reward_goal, consecutive_goal_stopping: stop after that many consecutive test
            runs scored at or above the goal (both must be given).
        save_path: write the weights at each test run and when ``run`` ends (atomically;
            load them with ``pytorch_es.load_weights``). The file is also a checkpoint
            (strategy and optimizer state, generation, RNG states): continue an
            interrupted run with :meth:`load_checkpoint`. The file it replaces is kept as
            ``<name>.prev<suffix>`` (e.g. ``weights.prev.p``).
        seed: makes the run reproducible. antithetic: mirrored sampling (default True).
        fitness_shaping: ``"z_score"`` (the original's, default), ``"centered_ranks"``,
            ``"raw"`` or a callable. optimizer: ``"sgd"`` (the original rule,
            ``theta += lr / (N sigma) * sum_i u_i eps_i``), ``"adam"``, ``"clipup"`` or a
            factory. evaluator: where members run (default: ``threadcount`` threads).
        timeout: seconds one member's ``reward_function`` call may take. When set, members
            run in ``threadcount`` worker processes (``ProcessEvaluator``) instead of
            threads: a worker that overruns is killed and replaced, and its members re-run
            (a member that keeps hanging ends the run with ``MemberEvaluationError``). The
            reward function must then be picklable (cloudpickle: lambdas and local
            functions work). Without it, a reward function that never returns can only be
            abandoned with Ctrl-C (threads cannot be killed).
        strategy: a registered strategy name (``pytorch_es.strategies.available()``,
            default ``"openai-es"``); ``sigma``, ``learning_rate`` (its ``lr``),
            ``population_size`` and ``seed`` go to it, ``strategy_kwargs`` adds its own
            settings. ``decay`` drives its ``lr`` whatever the strategy.
    """

    def __init__(
        self,
        parameters: ParametersLike,
        reward_function: RewardFunction,
        population_size: int = 50,
        sigma: float = 0.1,
        learning_rate: float = 0.001,
        decay: float = 1.0,
        sigma_decay: float = 1.0,
        threadcount: int = 4,
        render_test: bool = False,
        cuda: bool = False,
        reward_goal: float | None = None,
        consecutive_goal_stopping: int | None = None,
        save_path: str | os.PathLike[str] | None = None,
        *,
        seed: int | None = None,
        antithetic: bool = True,
        fitness_shaping: str | FitnessShaping = "z_score",
        optimizer: str | OptimizerFactory = "sgd",
        device: torch.device | str | None = None,
        evaluator: Evaluator | None = None,
        strategy: str = "openai-es",
        strategy_kwargs: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.weights = as_parameter_list(parameters, "parameters")
        if not callable(reward_function):
            raise TypeError(
                f"reward_function must be callable, got {type(reward_function).__name__}"
            )
        self.reward_function = reward_function
        check_population_size(population_size)
        check_positive("sigma", sigma)
        check_positive("learning_rate", learning_rate, allow_zero=True)
        self.decay = check_decay("decay", decay)
        check_decay("sigma_decay", sigma_decay)
        if reward_goal is not None and (
            isinstance(reward_goal, bool) or not isinstance(reward_goal, numbers.Real)
        ):
            raise TypeError(f"reward_goal must be a number or None, got {type(reward_goal).__name__}")
        if consecutive_goal_stopping is not None and (
            isinstance(consecutive_goal_stopping, bool)
            or not isinstance(consecutive_goal_stopping, int)
            or consecutive_goal_stopping < 1
        ):
            raise ValueError(
                f"consecutive_goal_stopping must be an int >= 1 or None, got {consecutive_goal_stopping!r}"
            )
        self.reward_goal = reward_goal
        self.consecutive_goal_stopping = consecutive_goal_stopping
        self.consecutive_goal_count = 0
        self.save_path = None if save_path is None else check_output_path(save_path, "save_path")
        self.render_test = render_test
        self.device = resolve_device(cuda, device, self.weights[0].device)
        if evaluator is not None and timeout is not None:
            raise ValueError("timeout= builds the evaluator (processes); with evaluator= set the timeout on it")
        if evaluator is None:
            evaluator = _default_evaluator(threadcount, timeout, population_size)
        self.evaluator = evaluator
        cls = get_strategy(strategy)
        extra = dict(strategy_kwargs or {})
        if cls is OpenAIES:
            self.strategy = OpenAIES(
                flatten(self.weights).to(self.device),
                population_size=population_size,
                sigma=sigma,
                lr=learning_rate,
                optimizer=optimizer,
                fitness_shaping=fitness_shaping,
                antithetic=antithetic,
                sigma_decay=sigma_decay,
                seed=seed,
                **extra,
            )
        else:
            if sigma_decay != 1.0 or optimizer != "sgd":
                raise ValueError(
                    f"sigma_decay and optimizer apply to strategy='openai-es'; pass {strategy}'s own "
                    "settings in strategy_kwargs"
                )
            self.strategy = cls(
                flatten(self.weights).to(self.device), population_size=population_size, sigma=sigma,
                lr=learning_rate, seed=seed, **extra,
            )
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.strategy.optimizer, gamma=decay)
        self.problem = WeightListProblem(reward_function, self.weights)
        self.iteration = 0
        self._config = {
            "shapes": [list(t.shape) for t in self.weights],
            "population_size": population_size,
            "sigma": float(sigma),
            "learning_rate": float(learning_rate),
            "decay": float(decay),
            "sigma_decay": float(sigma_decay),
            "antithetic": bool(antithetic),
            "fitness_shaping": fitness_shaping if isinstance(fitness_shaping, str) else "callable",
            "optimizer": optimizer if isinstance(optimizer, str) else "callable",
        }
        if cls is not OpenAIES:  # absent for OpenAI-ES, so older checkpoints still match
            self._config["strategy"] = self.strategy.name
        self._run_start: int | None = None  # iteration at which the current run() began
        self._resumed_run_start: int | None = None
        self._consistent = True
        self._saved_iteration: int | None = None

    @property
    def population_size(self) -> int:
        return self.strategy.population_size

    @property
    def sigma(self) -> float:
        """Current sigma (after ``sigma_decay`` of the iterations so far)."""
        return self.strategy.sigma

    @property
    def learning_rate(self) -> float:
        """Current learning rate (after ``decay`` of the iterations so far)."""
        return self.strategy.lr

    @property
    def seed(self) -> int:
        return self.strategy.seed

    def step(self) -> dict[str, Any]:
        """One iteration: evaluate the population, update, decay lr and sigma once."""
        population = self.strategy.ask()
        result = self.evaluator.evaluate(population, self.problem)
        self._consistent = False
        stats = self.strategy.tell(result.rewards)
        self.scheduler.step()
        write_back(self.strategy.center, self.weights)
        self.iteration += 1
        self._consistent = True
        rewards = result.rewards
        return {**stats, "reward_mean": float(rewards.mean()), "reward_max": float(rewards.max())}

    def test(self) -> float:
        """Score the current parameters with ``reward_function(weights, render=...)``."""
        try:
            value = self.reward_function(self.weights, render=self.render_test)
        except Exception as error:
            raise RuntimeError(f"reward_function raised on the test run: {error}") from error
        return check_reward(value, "the test run")

    def run(self, iterations: int, print_step: int = 10) -> list[torch.Tensor]:
        """Run ``iterations`` iterations; every ``print_step`` test, print and save.

        Returns the parameters (the same tensors that were passed in, updated).
        """
        for name, value, low in (("iterations", iterations, 0), ("print_step", print_step, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        # After load_checkpoint, the interrupted run() continues where it stopped.
        start = self.iteration if self._resumed_run_start is None else self._resumed_run_start
        self._resumed_run_start = None
        self._run_start = start
        finished = False
        try:
            while self.iteration < start + iterations:
                self.step()
                if self.iteration % print_step == 0 and self._test_and_check_goal():
                    break
            finished = True
        finally:
            try:
                if finished:  # a checkpoint of a finished run: the next run() starts afresh
                    self._run_start = None
                unsaved = self._saved_iteration != self.iteration
                if self.save_path is not None and self._consistent and (finished or unsaved):
                    # re-saving the same iteration (now marked finished) keeps the older previous;
                    # more Ctrl-C meanwhile (a storm) must not cut the save short: held back, dropped
                    with deferred_signals():
                        self.save_checkpoint(keep_previous=unsaved)
            finally:
                self.evaluator.close()
        return self.weights

    def _test_and_check_goal(self) -> bool:
        test_reward = self.test()
        print("iter %d. reward: %f" % (self.iteration, test_reward))
        if self.save_path is not None:
            self.save_checkpoint()
        if self.reward_goal is not None and self.consecutive_goal_stopping is not None:
            if test_reward >= self.reward_goal:
                self.consecutive_goal_count += 1
            else:
                self.consecutive_goal_count = 0
            return self.consecutive_goal_count >= self.consecutive_goal_stopping
        return False

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue bit-identically (strategy, optimizer, lr schedule,
        iteration and goal counters, global RNG states)."""
        return {
            "strategy": self.strategy.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": self.iteration,
            "run_start": self.iteration if self._run_start is None else self._run_start,
            "consecutive_goal_count": self.consecutive_goal_count,
            "rng": rng_state(),
        }

    def save_checkpoint(
        self, path: str | os.PathLike[str] | None = None, *, keep_previous: bool = True
    ) -> os.PathLike[str]:
        """Write the weights and a checkpoint to ``path`` (default ``save_path``), atomically,
        keeping the file it replaces as ``<name>.prev<suffix>``.

        The file holds ``{"format": "pytorch-es/weights", "tensors": [...], "checkpoint":
        {...}}``: :func:`pytorch_es.load_weights` reads its weights, :meth:`load_checkpoint`
        the whole state.
        """
        target = self.save_path if path is None else check_output_path(path, "path")
        if target is None:
            raise ValueError("save_checkpoint needs a path (or save_path= in the constructor)")
        payload = {
            "format": WEIGHTS_FORMAT,
            "tensors": [t.detach().cpu().clone() for t in self.weights],
            "checkpoint": {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "config": dict(self._config),
                "state": self.state_dict(),
            },
        }
        if keep_previous:
            keep_previous_copy(target)
        save_state(target, payload)
        self._saved_iteration = self.iteration
        return target

    def load_checkpoint(self, path: str | os.PathLike[str] | None = None) -> int:
        """Continue from a file written through ``save_path`` (default: ``save_path``).

        Restores the parameters, strategy, optimizer, learning-rate schedule, goal
        counter and RNG states; the next ``run(iterations)`` finishes the interrupted
        ``run`` call (up to its ``iterations``), so with a fixed seed and a
        deterministic reward function the result equals an uninterrupted run.
        Returns the iteration it continues from. Raises
        :class:`~pytorch_es.training.CheckpointError` naming the file if it is
        corrupted, unsafe, or made with other settings (the message lists them).
        """
        source = self.save_path if path is None else path
        if source is None:
            raise ValueError("load_checkpoint needs a path (or save_path= in the constructor)")
        payload = load_checkpoint(source, key="checkpoint")
        differences = config_differences(payload["config"], self._config)
        if differences:
            raise CheckpointError(
                f"checkpoint {str(source)!r} was made with other settings: " + "; ".join(differences)
            )
        state = payload["state"]
        self.strategy.load_state_dict(state["strategy"])
        self.scheduler.load_state_dict(state["scheduler"])
        write_back(self.strategy.center, self.weights)
        self.iteration = int(state["iteration"])
        self._resumed_run_start = int(state["run_start"])
        self.consecutive_goal_count = int(state["consecutive_goal_count"])
        load_rng_state(state["rng"])
        self._saved_iteration = self.iteration
        return self.iteration
