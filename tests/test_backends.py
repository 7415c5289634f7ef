"""Local backends: serial, threads and worker processes give identical results, and the
process pool survives SIGKILLed and hanging workers, reports user errors once, ships
only scalars per member and leaves no process behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
import torch

from backend_problems import (
    DIM,
    FirstCoordinate,
    Quadratic,
    Raising,
    Sabotage,
    Sleepy,
    alive,
    descendants,
    kill_when_marked,
    train,
    wait_gone,
    weights_reward,
)
from pytorch_es import (
    BatchFunctionProblem,
    EvolutionModule,
    FunctionProblem,
    OpenAIES,
    SerialEvaluator,
    ThreadEvaluator,
)
from pytorch_es.evaluation import (
    MemberEvaluationError,
    ProcessEvaluator,
    WorkerSetupError,
    make_evaluator,
    resolve_backend,
)
from pytorch_es.evaluation.base import Evaluation, Problem
from pytorch_es.evaluation.pool import split_indices

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def pool():
    """Two worker processes shared by the tests of this module (spawning costs seconds)."""
    with ProcessEvaluator(2) as evaluator:
        yield evaluator
    assert wait_gone(evaluator.worker_pids()) == []


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted serial run every backend must reproduce exactly."""
    return train(SerialEvaluator(), Quadratic())


def check_same(run, reference) -> None:
    center, history = run
    assert torch.equal(history, reference[1])
    assert torch.equal(center, reference[0])


# --------------------------------------------------------------------------- identical results


def test_serial_threads_processes_identical(pool, reference):
    check_same(train(ThreadEvaluator(3), Quadratic()), reference)
    check_same(train(pool, Quadratic()), reference)
    assert pool.stats.tasks == 4 and sum(pool.stats.members.values()) == 12
    assert pool.stats.crashes == 0


def test_result_independent_of_chunking(pool, reference):
    pool.chunks_per_worker = 5
    try:
        check_same(train(pool, Quadratic()), reference)
    finally:
        pool.chunks_per_worker = 2


def test_function_problems_and_lambdas(pool):
    strategy = OpenAIES(torch.zeros(DIM), population_size=10, sigma=0.1, seed=3)
    population = strategy.ask()
    problem = FunctionProblem(lambda x: float(x.sum()))  # shipped by value with cloudpickle
    expected = SerialEvaluator().evaluate(population, problem).rewards
    assert torch.equal(pool.evaluate(population, problem).rewards, expected)
    batch = BatchFunctionProblem(lambda m: -(m**2).sum(1))
    expected = SerialEvaluator().evaluate(population, batch).rewards
    assert torch.equal(pool.evaluate(population, batch).rewards, expected)


def test_gym_problem_identical_with_obs_norm(pool):
    rl = pytest.importorskip("pytorch_es.rl")
    results = []
    for evaluator in (SerialEvaluator(), pool):
        problem = rl.GymProblem("LunarLander-v3", [8], obs_norm=True, max_steps=60)
        strategy = OpenAIES(problem.initial_center(0), population_size=8, sigma=0.1, lr=0.05, seed=5)
        rewards = []
        for _ in range(2):
            result = evaluator.evaluate(strategy.ask(), problem)
            strategy.tell(result.rewards)
            rewards.append(result.rewards)
        normalizer = problem.normalizer.state_dict()
        results.append((strategy.center, torch.stack(rewards), normalizer, result.env_steps))
    (c1, r1, n1, s1), (c2, r2, n2, s2) = results
    assert torch.equal(r1, r2) and torch.equal(c1, c2) and s1 == s2
    for key in n1:
        assert torch.equal(torch.as_tensor(n1[key]), torch.as_tensor(n2[key])), key


def test_evolution_module_takes_the_process_evaluator():
    def run(evaluator):
        weights = [torch.zeros(3, 4), torch.zeros(4)]
        module = EvolutionModule(weights, weights_reward, population_size=10, seed=11, evaluator=evaluator)
        module.run(4, print_step=100)  # closes the evaluator at the end
        return torch.cat([w.flatten() for w in weights])

    processes = ProcessEvaluator(2)
    assert torch.equal(run(processes), run(ThreadEvaluator(2)))
    assert processes.worker_pids() == []


# --------------------------------------------------------------------------- communication


def test_bytes_per_worker_are_scalars(pool):
    """Population 1000, 100k parameters: each worker gets <= 1% of its members' parameters."""
    dim = 100_000
    strategy = OpenAIES(torch.zeros(dim), population_size=1000, sigma=0.1, seed=1)
    population = strategy.ask()
    result = pool.evaluate(population, FirstCoordinate())
    for i in (0, 1, 499, 500, 999):  # spot checks: the serial reference would take seconds
        assert result.rewards[i] == float(population.member(i)[0])
    stats = pool.stats
    assert stats.center_bytes == dim * 4
    for slot, sent in stats.bytes_sent.items():
        all_parameters = stats.members[slot] * dim * 4
        assert sent <= 0.01 * all_parameters, (slot, sent, all_parameters)
        assert sent < 2000  # setup + index ranges, no vector at all (the center is in shared memory)


# --------------------------------------------------------------------------- failures


def test_sigkilled_worker_is_replaced_and_result_unchanged(pool, reference, tmp_path):
    marker = tmp_path / "killed"
    run = train(pool, Sabotage(member=5, mode="kill", marker=marker))
    killed = int(marker.read_text())
    check_same(run, reference)
    assert not alive(killed)
    assert killed not in pool.worker_pids()
    assert pool.stats.restarts >= 1


def test_worker_killed_from_outside(pool, reference, tmp_path):
    marker = tmp_path / "pid"
    thread = kill_when_marked(marker)
    run = train(pool, Sabotage(member=9, mode="wait", marker=marker))
    thread.join(5)
    check_same(run, reference)
    assert not alive(int(marker.read_text()))


def test_hanging_worker_times_out_and_is_replaced(pool, reference, tmp_path):
    marker = tmp_path / "hung"
    pool.timeout = 2.0
    try:
        run = train(pool, Sabotage(member=2, mode="hang", marker=marker))
        assert pool.stats.timeouts == 0  # the last generation was clean
    finally:
        pool.timeout = None
    check_same(run, reference)
    assert not alive(int(marker.read_text()))


def test_user_exception_reported_once_with_remote_traceback(pool):
    strategy = OpenAIES(torch.zeros(DIM), population_size=12, seed=0)
    restarts = pool.stats.restarts
    with pytest.raises(MemberEvaluationError) as info:
        pool.evaluate(strategy.ask(), Raising(member=7))
    error = info.value
    assert error.member == 7
    assert "boom at member 7" in str(error)
    assert "_explode" in error.remote_traceback and "ValueError" in error.remote_traceback
    assert pool.stats.crashes == 0 and pool.stats.restarts == restarts  # not retried
    with pytest.raises(MemberEvaluationError, match=r"env crashed \(while evaluating members") as info:
        pool.evaluate(strategy.ask(), Raising(member=4, bare=True))
    assert "RuntimeError" in info.value.remote_traceback
    # the pool is still usable afterwards
    population = strategy.ask()
    expected = SerialEvaluator().evaluate(population, Quadratic()).rewards
    assert torch.equal(pool.evaluate(population, Quadratic()).rewards, expected)


def test_member_that_always_kills_its_worker_is_an_error(tmp_path):
    strategy = OpenAIES(torch.zeros(DIM), population_size=4, seed=0)
    problem = Sabotage(member=3, mode="kill", marker=tmp_path / "k", once=False)
    with ProcessEvaluator(2, max_crashes=2) as evaluator:  # chunks of one member
        with pytest.raises(MemberEvaluationError, match="died 2 times") as info:
            evaluator.evaluate(strategy.ask(), problem)
        assert info.value.member == 3
        assert "SIGKILL" in str(info.value)
        assert evaluator.stats.crashes == 2


def test_unpicklable_problem_is_a_clear_error(pool):
    class Locked(Quadratic):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()

    class LockedState(Quadratic):
        def worker_state(self):
            return threading.Lock()

    population = OpenAIES(torch.zeros(DIM), population_size=4, seed=0).ask()
    with pytest.raises(TypeError, match="must be picklable"):
        pool.evaluate(population, Locked())
    with pytest.raises(TypeError, match=r"worker_state\(\) of LockedState must return picklable"):
        pool.evaluate(population, LockedState())


def test_problem_not_importable_in_worker(pool):
    ghost = types.ModuleType("ghost_module_for_workers")  # exists in this process only
    exec(
        "from pytorch_es.evaluation.base import Evaluation, Problem\n"
        "class Ghost(Problem):\n"
        "    def evaluate(self, population, indices):\n"
        "        return Evaluation(list(indices), None)\n",
        ghost.__dict__,
    )
    sys.modules[ghost.__name__] = ghost
    try:
        population = OpenAIES(torch.zeros(DIM), population_size=4, seed=0).ask()
        with pytest.raises(WorkerSetupError, match="ghost_module_for_workers"):
            pool.evaluate(population, ghost.Ghost())
    finally:
        del sys.modules[ghost.__name__]


# --------------------------------------------------------------------------- shutdown


def test_close_kills_workers_and_is_idempotent():
    evaluator = ProcessEvaluator(2)
    population = OpenAIES(torch.zeros(DIM), population_size=4, seed=0).ask()
    evaluator.evaluate(population, Quadratic())
    pids = evaluator.worker_pids()
    assert len(pids) == 2 and all(alive(p) for p in pids)
    evaluator.close()
    evaluator.close()
    assert wait_gone(pids, 5) == []
    with pytest.raises(RuntimeError, match="closed"):
        evaluator.evaluate(population, Quadratic())


def test_keyboard_interrupt_then_close_leaves_no_worker():
    population = OpenAIES(torch.zeros(DIM), population_size=4, seed=0).ask()
    main = threading.main_thread().ident
    with pytest.raises(KeyboardInterrupt), ProcessEvaluator(2) as evaluator:
        evaluator.evaluate(population, Quadratic())  # workers started
        pids = evaluator.worker_pids()
        timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        evaluator.evaluate(population, Sleepy(60))
    assert wait_gone(pids, 5) == []


DRIVER = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {tests!r})
    from backend_problems import Quadratic, Sleepy
    from pytorch_es import OpenAIES
    from pytorch_es.evaluation import ProcessEvaluator

    if __name__ == "__main__":
        evaluator = ProcessEvaluator(2)  # never closed
        population = OpenAIES(torch.zeros(20), population_size=4, seed=0).ask()
        evaluator.evaluate(population, Quadratic())
        print(*evaluator.worker_pids(), flush=True)
        if sys.argv[1] == "raise":
            raise RuntimeError("driver failed")
        evaluator.evaluate(population, Sleepy(300))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["raise", "sigkill"])
def test_no_orphans_when_the_driver_dies(tmp_path, how):
    """A driver that never closes its evaluator and dies (an exception, or SIGKILL)
    leaves no worker, fork server or resource tracker behind."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS)))
    process = subprocess.Popen(
        [sys.executable, str(script), how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        pids = [int(p) for p in process.stdout.readline().split()]
        assert len(pids) == 2
        family = sorted({*descendants(process.pid), *pids})  # fork server, tracker, workers
        if how == "sigkill":
            assert len(family) >= 3
            time.sleep(0.5)
            process.kill()
        process.wait(timeout=30)  # an unclosed evaluator must not block interpreter exit
        if how == "raise":
            assert "driver failed" in process.stderr.read()
        assert wait_gone(family, 10) == []
    finally:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- factory


class Vectorised(Problem):
    vectorized = True

    def evaluate(self, population, indices):
        return Evaluation(list(indices), torch.zeros(len(indices), dtype=torch.float64))


def test_make_evaluator_backends():
    assert isinstance(make_evaluator("serial"), SerialEvaluator)
    threads = make_evaluator("threads", workers=3)
    assert isinstance(threads, ThreadEvaluator) and threads.threads == 3
    processes = make_evaluator("processes", workers=2, timeout=5, max_crashes=4)
    assert isinstance(processes, ProcessEvaluator)
    assert (processes.workers, processes.timeout, processes.max_crashes) == (2, 5.0, 4)
    processes.close()  # never started: nothing to kill
    assert isinstance(make_evaluator("auto", problem=Vectorised()), SerialEvaluator)
    batch = BatchFunctionProblem(lambda m: m.sum(1))
    assert isinstance(make_evaluator("auto", problem=batch), SerialEvaluator)
    auto = make_evaluator("auto", workers=2, problem=Quadratic())
    assert isinstance(auto, ProcessEvaluator)
    auto.close()
    assert resolve_backend("auto", workers=1).backend == "serial"
    assert resolve_backend("auto", ray_address="127.0.0.1:6379").backend == "ray"
    assert resolve_backend("auto").backend in ("serial", "processes")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "gpu"}, "backend must be one of"),
        ({"backend": "serial", "workers": 4}, "workers=4 applies to"),
        ({"backend": "threads", "timeout": 3}, "timeout applies to"),
        ({"backend": "processes", "workers": 0}, "workers must be an int >= 1"),
        ({"backend": "processes", "timeout": -1}, "timeout must be a positive"),
        ({"backend": "serial", "ray_address": "127.0.0.1:1"}, "ray_address is only used"),
    ],
)
def test_make_evaluator_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_evaluator(**kwargs)


def test_process_evaluator_bad_input():
    with pytest.raises(ValueError, match="start_method"):
        ProcessEvaluator(2, start_method="teleport")
    with pytest.raises(ValueError, match="max_crashes"):
        ProcessEvaluator(2, max_crashes=0)
    with pytest.raises(ValueError, match="chunks_per_worker"):
        ProcessEvaluator(2, chunks_per_worker=0)


def test_split_indices():
    assert split_indices(10, 4) == [range(0, 2), range(2, 5), range(5, 7), range(7, 10)]
    assert split_indices(3, 8) == [range(0, 1), range(1, 2), range(2, 3)]
