"""Fingerprints of every registered strategy's trajectory, to check that a speed change is
bit for bit the same: run it on two commits and compare the output.

    python benchmarks/fingerprint_strategies.py > after.txt
    git stash; python benchmarks/fingerprint_strategies.py > before.txt; git stash pop
    diff before.txt after.txt && echo identical

Each line is one setting (strategy, dim, population, options) and the sha256 prefixes of the
strategy's ``state_dict()`` and of the statistics ``tell()`` returned over 10 to 15
generations on a rugged function of the members: plain, minimising, bounded, a large dim,
OpenAI-ES with SGD and Adam, an lr scheduler, and rewards with ties.
"""

from __future__ import annotations

import hashlib
import io

import torch

from pytorch_es import strategies

FULL_COVARIANCE = ("xnes", "cma-es", "ipop-cma-es", "bipop-cma-es")
SETTINGS = ((10, 12, {}), (100, 100, {}), (100, 24, {"maximize": False}), (30, 20, {"bounds": (-0.5, 0.5)}),
            (5000, 40, {}))


def digest(value: object) -> str:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]


def rugged(members: torch.Tensor) -> torch.Tensor:
    x = members.double()
    return -(x**2).sum(1) + 0.3 * torch.cos(5 * x).sum(1)


def trajectory(strategy: strategies.Strategy, generations: int, rewards=rugged, schedule=None) -> str:
    stats = []
    for _ in range(generations):
        population = strategy.ask()
        stats.append(strategy.tell(rewards(population.members()), population=population))
        if schedule is not None:
            schedule.step()
    return f"{digest(strategy.state_dict())} {digest(stats)}"


def main() -> None:
    torch.set_num_threads(1)
    for name in strategies.available():
        for dim, size, options in SETTINGS:
            if name in FULL_COVARIANCE and dim > 1000:
                continue
            optimizers = ("sgd", "adam") if name == "openai-es" else (None,)
            for optimizer in optimizers:
                extra = {"optimizer": optimizer, "sigma": 0.1} if optimizer else {}
                strategy = strategies.get(name)(torch.full((dim,), 0.3), population_size=size, seed=7,
                                                **options, **extra)
                print(name, optimizer or "-", dim, size, options, trajectory(strategy, 15))
        strategy = strategies.get(name)(torch.full((20,), 0.3), population_size=16, seed=5)
        print(name, "ties", trajectory(strategy, 10, rewards=lambda m: (rugged(m) * 2).round() / 2))
    for name in ("openai-es", "snes"):
        strategy = strategies.get(name)(torch.full((50,), 0.3), population_size=20, seed=3)
        schedule = torch.optim.lr_scheduler.StepLR(strategy.optimizer, step_size=3, gamma=0.5)
        print(name, "scheduler", trajectory(strategy, 12, schedule=schedule), strategy.lr)


if __name__ == "__main__":
    main()
