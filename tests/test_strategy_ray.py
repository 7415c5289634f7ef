"""Every strategy gives the same numbers on Ray actors as serially: the distribution's
tensors (per-parameter scale, transform, bounds) travel in the one object-store block."""

from __future__ import annotations

import pytest
import torch

ray = pytest.importorskip("ray")

from backend_problems import Quadratic, local_ray  # noqa: E402
from pytorch_es import SerialEvaluator, strategies  # noqa: E402
from pytorch_es.evaluation import make_evaluator  # noqa: E402


@pytest.fixture(scope="module")
def actors():
    with local_ray(), make_evaluator("ray", workers=2) as evaluator:
        yield evaluator


@pytest.mark.parametrize("name", strategies.available())
def test_identical_on_serial_and_ray(name, actors):
    runs = []
    for evaluator in (SerialEvaluator(), actors):
        strategy = strategies.get(name)(torch.zeros(20), population_size=12, sigma=0.3, seed=4, bounds=(-0.5, 2.0))
        rewards = []
        for _ in range(3):
            result = evaluator.evaluate(strategy.ask(), Quadratic())
            rewards.append(result.rewards)
            strategy.tell(result.rewards)
        runs.append((torch.cat(rewards), strategy.center.clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
