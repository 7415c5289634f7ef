"""The Ray backend on a real local Ray (started once for this module, shut down after,
no Ray process left): same results as serial, SIGKILLed and hanging actors replaced,
user errors reported once, only scalars and an object ref per worker."""

from __future__ import annotations

import pytest
import torch

ray = pytest.importorskip("ray")

from backend_problems import (  # noqa: E402
    DIM,
    FirstCoordinate,
    Quadratic,
    Raising,
    Sabotage,
    alive,
    kill_when_marked,
    train,
    wait_gone,
)
from backend_problems import local_ray as start_local_ray  # noqa: E402
from pytorch_es import OpenAIES, SerialEvaluator  # noqa: E402
from pytorch_es.evaluation import MemberEvaluationError, WorkerSetupError, make_evaluator  # noqa: E402
from pytorch_es.evaluation.ray_evaluator import RayEvaluator, is_loopback  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """A real 2-CPU Ray on this machine, for this module."""
    with start_local_ray():
        yield


@pytest.fixture(scope="module")
def actors(local_ray):
    with make_evaluator("ray", workers=2) as evaluator:
        assert isinstance(evaluator, RayEvaluator)
        yield evaluator
    assert ray.is_initialized()  # the evaluators did not start Ray, so they leave it running


@pytest.fixture(scope="module")
def reference():
    return train(SerialEvaluator(), Quadratic())


def check_same(run, reference) -> None:
    assert torch.equal(run[1], reference[1])
    assert torch.equal(run[0], reference[0])


def test_ray_identical_to_serial(actors, reference):
    check_same(train(actors, Quadratic()), reference)
    assert actors.stats.crashes == 0 and sum(actors.stats.members.values()) == 12


def test_ray_bytes_per_worker(actors):
    dim = 100_000
    population = OpenAIES(torch.zeros(dim), population_size=1000, sigma=0.1, seed=1).ask()
    result = actors.evaluate(population, FirstCoordinate())
    for i in (0, 1, 499, 500, 999):
        assert result.rewards[i] == float(population.member(i)[0])
    stats = actors.stats
    assert stats.center_bytes == dim * 4
    for slot, sent in stats.bytes_sent.items():
        assert sent <= 0.01 * stats.members[slot] * dim * 4
        assert sent < 2000  # scalars, index ranges and one object ref


def test_ray_actor_sigkilled_mid_generation(actors, reference, tmp_path):
    marker = tmp_path / "pid"
    thread = kill_when_marked(marker)
    run = train(actors, Sabotage(member=4, mode="wait", marker=marker))
    thread.join(5)
    check_same(run, reference)
    assert not alive(int(marker.read_text()))
    assert actors.stats.restarts >= 1


def test_ray_hanging_actor_times_out(actors, reference, tmp_path):
    marker = tmp_path / "hung"
    actors.timeout = 3.0
    try:
        run = train(actors, Sabotage(member=10, mode="hang", marker=marker))
    finally:
        actors.timeout = None
    check_same(run, reference)
    assert wait_gone([int(marker.read_text())], 10) == []


def test_ray_user_exception_once(actors):
    restarts = actors.stats.restarts
    population = OpenAIES(torch.zeros(DIM), population_size=12, seed=0).ask()
    with pytest.raises(MemberEvaluationError) as info:
        actors.evaluate(population, Raising(member=6))
    assert info.value.member == 6 and "boom at member 6" in str(info.value)
    assert "_explode" in info.value.remote_traceback
    assert actors.stats.restarts == restarts and actors.stats.crashes == 0


def test_ray_unschedulable_actor_is_a_clear_error(actors):
    """The module's actors hold both CPUs: a third cannot start."""
    population = OpenAIES(torch.zeros(DIM), population_size=4, seed=0).ask()
    with pytest.warns(RuntimeWarning, match="need more CPUs than the cluster has"):
        RayEvaluator(3).close()  # 3 actors on 2 CPUs: warned up front
    evaluator = RayEvaluator(1, start_timeout=2.0)
    with evaluator, pytest.raises(WorkerSetupError, match=r"no Ray actor worker started .* CPUs free"):
        evaluator.evaluate(population, Quadratic())


def test_ray_close_kills_actors(actors):
    """Last test of the module: closes the shared actors (the fixture's close is a no-op)."""
    evaluator = actors
    population = OpenAIES(torch.zeros(DIM), population_size=6, seed=0).ask()
    expected = SerialEvaluator().evaluate(population, Quadratic()).rewards
    assert torch.equal(evaluator.evaluate(population, Quadratic()).rewards, expected)
    pids = evaluator.worker_pids()
    assert pids and all(alive(p) for p in pids)
    evaluator.close()
    evaluator.close()
    assert wait_gone(pids, 10) == []


def test_ray_bad_input():
    with pytest.raises(ValueError, match="address"):
        RayEvaluator(2, address="  ")
    with pytest.raises(ValueError, match="num_cpus_per_worker"):
        RayEvaluator(2, num_cpus_per_worker=0)
    assert is_loopback("127.0.0.1:6379") and is_loopback("ray://localhost:10001")
    assert not is_loopback("10.0.0.5:6379")
