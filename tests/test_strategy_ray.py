"""Every strategy gives the same numbers on Ray actors as serially: the distribution's
tensors (per-parameter scale, transform, bounds) travel in the one object-store block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from backend_problems import Quadratic, processes_matching, wait_gone  # noqa: E402
from pytorch_es import SerialEvaluator, strategies  # noqa: E402
from pytorch_es.evaluation import make_evaluator  # noqa: E402
from pytorch_es.evaluation.ray_evaluator import LOOPBACK_NODE_IP  # noqa: E402

TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module")
def actors():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():  # pragma: no cover - another module left Ray running
        ray.shutdown()
    ray.init(num_cpus=2, _node_ip_address=LOOPBACK_NODE_IP, include_dashboard=False, log_to_driver=False,
             job_config=ray.job_config.JobConfig(code_search_path=[TESTS]))
    session = ray._private.worker._global_node.get_session_dir_path()
    with make_evaluator("ray", workers=2) as evaluator:
        yield evaluator
    ray.shutdown()
    assert wait_gone(processes_matching(session), 15) == [], "Ray processes left behind"


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
