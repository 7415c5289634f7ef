"""``EvolutionModule``: the 2018 PyTorch-ES API, on the new engine.

A drop-in for ``from evolution.strategies import EvolutionModule``: same
arguments, defaults, reward-function calls and printout, with the original's
faults fixed (decay once per iteration, no NaN on equal rewards, no deep copies,
no pickle, a seed, a goal of 0 that works).

It is a face over :class:`~pytorch_es.training.Trainer`, the one training loop::

    Trainer(strategy, WeightListProblem(f), evaluator, test=f(weights, render=...),
            test_every=print_step, test_at_end=False, scheduler=ExponentialLR(decay),
            callbacks=[WriteBack(weights), PrintTestReward(),
                       GoalStop(reward_goal, consecutive_goal_stopping), SaveCallback(module)])

and its ``save_path`` file holds the Trainer's checkpoint (``training/checkpoint.py``)
beside the weights.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_es.core.checks import check_decay, check_population_size, check_positive, check_reward
from pytorch_es.core.parameters import ParametersLike, as_parameter_list, flatten, unflatten, write_back
from pytorch_es.core.population import Population
from pytorch_es.core.shaping import FitnessShaping
from pytorch_es.evaluation.base import Evaluator, FunctionProblem, MemberEvaluationError
from pytorch_es.evaluation.threads import ThreadEvaluator
from pytorch_es.io import WEIGHTS_FORMAT, check_output_path, save_state
from pytorch_es.strategies.openai_es import OpenAIES, OptimizerFactory
from pytorch_es.strategies.registry import get as get_strategy
from pytorch_es.training.callbacks import Callback, GoalStop
from pytorch_es.training.checkpoint import (
    CheckpointError,
    checkpoint_payload,
    config_differences,
    keep_previous_copy,
    load_checkpoint,
)
from pytorch_es.training.loop import Trainer, TrainResult, deferred_signals

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
    from pytorch_es.core.checks import check_timeout
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
        if reward_goal is not None and reward_goal != reward_goal:
            raise ValueError("reward_goal must be a number or None, got nan")
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
        both = reward_goal is not None and consecutive_goal_stopping is not None
        self.goal_stop = GoalStop(float(reward_goal), consecutive_goal_stopping) if both else None
        self.trainer = Trainer(
            self.strategy,
            self.problem,
            self.evaluator,
            test=self._test_center,
            test_at_end=False,
            scheduler=self.scheduler,
            callbacks=[
                WriteBack(self.weights),
                PrintTestReward(),
                *([self.goal_stop] if self.goal_stop else []),
                SaveCallback(self),
            ],
        )
        self._run_start: int | None = None  # iteration at which the current run() began
        self._resumed_run_start: int | None = None
        self._saved_iteration: int | None = None

    @property
    def iteration(self) -> int:
        """Iterations done (counting those before a resume); moves after the members of
        an iteration are evaluated."""
        return self.trainer.generation

    @property
    def consecutive_goal_count(self) -> int:
        """Tests in a row at or above ``reward_goal`` so far."""
        return 0 if self.goal_stop is None else self.goal_stop.count

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
        """One iteration without a test: evaluate the population, update, decay lr and
        sigma once, write the new center into the parameters. Returns the Trainer's
        metrics row (``reward_mean``, ``reward_max``, ``lr``, ``update_norm``, ...)."""
        row = self.trainer.step(test=False)
        write_back(self.strategy.center, self.weights)
        return row

    def test(self) -> float:
        """Score the current parameters with ``reward_function(weights, render=...)``."""
        try:
            value = self.reward_function(self.weights, render=self.render_test)
        except Exception as error:
            raise RuntimeError(f"reward_function raised on the test run: {error}") from error
        return check_reward(value, "the test run")

    def _test_center(self, center: torch.Tensor) -> float:
        """The Trainer's test: the center written into the parameters, then :meth:`test`."""
        write_back(center, self.weights)
        return self.test()

    def run(self, iterations: int, print_step: int = 10) -> list[torch.Tensor]:
        """Run ``iterations`` iterations; every ``print_step`` test, print and save.

        Returns the parameters (the same tensors that were passed in, updated).
        Ctrl-C abandons the iteration being evaluated, saves (with ``save_path``) the
        state after the last finished one and raises ``KeyboardInterrupt``, as in 2018.
        """
        for name, value, low in (("iterations", iterations, 0), ("print_step", print_step, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        # After load_checkpoint, the interrupted run() continues where it stopped.
        start = self.iteration if self._resumed_run_start is None else self._resumed_run_start
        self._resumed_run_start = None
        self._run_start = start
        self.trainer.test_every = print_step
        try:
            result = self.trainer.run(max(start + iterations, self.iteration), handle_interrupts=False)
        finally:
            self.evaluator.close()
        if result.reason == "interrupted":
            raise KeyboardInterrupt
        return self.weights

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue bit-identically: the Trainer's state (strategy,
        optimizer, lr schedule, generation, RNG states, ...) with the iteration, the
        start of the current ``run`` and the goal counter."""
        return {
            **self.trainer.state_dict(),
            "iteration": self.iteration,
            "run_start": self.iteration if self._run_start is None else self._run_start,
            "consecutive_goal_count": self.consecutive_goal_count,
        }

    def save_checkpoint(
        self, path: str | os.PathLike[str] | None = None, *, keep_previous: bool = True
    ) -> os.PathLike[str]:
        """Write the weights and a checkpoint to ``path`` (default ``save_path``), atomically,
        keeping the file it replaces as ``<name>.prev<suffix>``.

        The file holds ``{"format": "pytorch-es/weights", "tensors": [...], "checkpoint":
        {...}}`` with the Trainer's checkpoint (``pytorch_es.training.checkpoint``) under
        ``"checkpoint"``: :func:`pytorch_es.load_weights` reads its weights,
        :meth:`load_checkpoint` the whole state.
        """
        target = self.save_path if path is None else check_output_path(path, "path")
        if target is None:
            raise ValueError("save_checkpoint needs a path (or save_path= in the constructor)")
        payload = {
            "format": WEIGHTS_FORMAT,
            "tensors": [t.detach().cpu().clone() for t in self.weights],
            "checkpoint": checkpoint_payload(self.state_dict(), self._config),
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
        Files of earlier versions (before ``EvolutionModule`` ran on the Trainer) load
        too. Returns the iteration it continues from. Raises
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
        if "generation" not in state:  # written before EvolutionModule ran on the Trainer
            state = trainer_state_of_a_module_state(state)
        self.trainer.load_state_dict(state)
        write_back(self.strategy.center, self.weights)
        self._resumed_run_start = int(state["run_start"])
        if self.goal_stop is not None:
            self.goal_stop.count = int(state["consecutive_goal_count"])
        self._saved_iteration = self.iteration
        return self.iteration


def trainer_state_of_a_module_state(state: dict[str, Any]) -> dict[str, Any]:
    """A Trainer state from the state of an ``EvolutionModule`` file written before it ran
    on the Trainer (``strategy``, ``scheduler``, ``iteration``, ``run_start``,
    ``consecutive_goal_count``, ``rng``): no metrics, no best center, no env steps."""
    return {
        **state,
        "problem": None,
        "generation": int(state["iteration"]),
        "env_steps": 0,
        "elapsed": 0.0,
        "metrics": [],
        "best": {"test_reward": None, "generation": None, "center": None, "problem": None},
        "last_test_reward": None,
    }


class WriteBack(Callback):
    """Writes the center into the parameters (tensors or Keras variables) in place after
    every iteration, as the 2018 module did."""

    def __init__(self, weights: list[Any]) -> None:
        self.weights = weights

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        write_back(trainer.strategy.center, self.weights)


class PrintTestReward(Callback):
    """The 2018 printout: ``iter 10. reward: 187.000000`` after each test."""

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if row["test_reward"] is not None:
            print("iter %d. reward: %f" % (trainer.generation, row["test_reward"]))


class SaveCallback(Callback):
    """Writes ``module.save_path`` at each test, and when the run ends (finished, or
    stopped by an error or Ctrl-C between iterations, unless that iteration is saved)."""

    def __init__(self, module: EvolutionModule) -> None:
        self.module = module

    def on_generation_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if row["test_reward"] is not None and self.module.save_path is not None:
            self.module.save_checkpoint()

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        module = self.module
        finished = result.reason in ("generations", "target")
        if finished:  # a checkpoint of a finished run: the next run() starts afresh
            module._run_start = None
        unsaved = module._saved_iteration != module.iteration
        if module.save_path is not None and trainer.consistent and (finished or unsaved):
            # re-saving the same iteration (now marked finished) keeps the older previous;
            # more Ctrl-C meanwhile (a storm) must not cut the save short: held back, dropped
            with deferred_signals():
                module.save_checkpoint(keep_previous=unsaved)
