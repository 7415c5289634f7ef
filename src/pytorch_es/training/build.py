"""The objects of a run, built from its :class:`TrainConfig`: the problem, the strategy,
the greedy test of the center, and the checks of settings and memory made before any of
them is allocated."""

from __future__ import annotations

import platform
from typing import Any

from pytorch_es.training.config import TrainConfig

__all__ = ["UsageError", "check_run_costs", "check_settings", "describe_evaluator", "make_problem",
           "make_strategy", "make_test", "versions"]

# Backends whose evaluation runs in this process: a task cannot be killed, so a timeout does not apply.
UNKILLABLE_BACKENDS = ("serial", "threads")
TEST_SEED_TAG = 0x7E57
SCREEN_EPISODES = 10
MAX_TEST_EPISODES = 1 << 30  # test episodes take env seeds from a 31-bit range


class UsageError(ValueError):
    """Settings that cannot go together (the CLI exits with its usage status, 2)."""


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
