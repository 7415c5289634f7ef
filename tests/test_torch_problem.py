"""A device-resident generation (TorchEnvProblem) against the Gymnasium path (GymProblem)."""

from __future__ import annotations

import pytest
import torch

from pytorch_es.evaluation.base import SerialEvaluator
from pytorch_es.rl import GymProblem
from pytorch_es.rl.torch_envs import TORCH_ENVS
from pytorch_es.rl.torch_problem import TorchEnvProblem, estimate_memory
from pytorch_es.strategies import OpenAIES
from pytorch_es.training import Trainer

F64 = torch.float64
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _population(problem, size=33, seed=3, sigma=0.5):
    return OpenAIES(problem.initial_center(0), population_size=size, sigma=sigma, lr=0.1, seed=seed).ask()


def _same_evaluation(a, b):
    assert torch.equal(a.rewards, b.rewards), (a.rewards - b.rewards).abs().max()
    assert a.env_steps == b.env_steps
    if a.payload is None:
        assert b.payload is None
        return
    for key in ("counts", "sums", "squares"):
        assert torch.equal(a.payload[key], b.payload[key]), key


# Discrete envs whose float64 trajectories are bit-exact: the same generation, bit for bit.
@pytest.mark.parametrize(
    ("env_id", "policy"),
    [("CartPole-v1", {"hidden": ()}), ("CartPole-v1", {"hidden": (64,)}), ("MountainCar-v0", {"hidden": (8,)})],
)
def test_generation_equals_the_gymnasium_path(env_id, policy):
    kwargs = {"episodes_per_member": 2, "obs_norm": True}
    torch_problem = TorchEnvProblem(env_id, policy, dtype=F64, **kwargs)
    gym_problem = GymProblem(env_id, policy, **kwargs)
    population = _population(torch_problem)
    _same_evaluation(torch_problem.evaluate(population, range(33)), gym_problem.evaluate(population, range(33)))
    center = population.center
    assert torch.equal(torch_problem.evaluate_policy(center, episodes=7, seed=11),
                       gym_problem.evaluate_policy(center, episodes=7, seed=11))


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_continuous_generation_matches_to_float_tolerance(env_id):
    # the squash head's tanh is torch's here and numpy's there: actions differ in the last bits
    torch_problem = TorchEnvProblem(env_id, {"hidden": (16,)}, dtype=F64, max_steps=120)
    gym_problem = GymProblem(env_id, {"hidden": (16,)}, max_steps=120)
    population = _population(torch_problem, size=9)
    a, b = torch_problem.evaluate(population, range(9)), gym_problem.evaluate(population, range(9))
    torch.testing.assert_close(a.rewards, b.rewards, rtol=1e-4, atol=1e-3)
    assert a.env_steps == b.env_steps


def test_float32_generation_is_close_and_deterministic():
    problem = TorchEnvProblem("CartPole-v1", {"hidden": (64,)})
    population = _population(problem, size=16, sigma=0.1)
    first = problem.evaluate(population, range(16))
    again = TorchEnvProblem("CartPole-v1", {"hidden": (64,)}).evaluate(population, range(16))
    _same_evaluation(first, again)  # a seed gives the same numbers run to run
    gym = GymProblem("CartPole-v1", {"hidden": (64,)}).evaluate(population, range(16))
    assert abs(float(first.rewards.mean()) - float(gym.rewards.mean())) <= 0.1 * float(gym.rewards.mean())


def test_chunks_check_period_and_compaction_change_nothing():
    problem = TorchEnvProblem("CartPole-v1", {"hidden": (64,)}, obs_norm=True, episodes_per_member=2)
    population = _population(problem, size=21)
    whole = problem.evaluate(population, range(21))
    parts = [problem.evaluate(population, range(0, 5)), problem.evaluate(population, range(5, 21))]
    assert torch.equal(torch.cat([p.rewards for p in parts]), whole.rewards)
    for check_every in (1, 3, 500):
        problem.check_every = check_every
        _same_evaluation(problem.evaluate(population, range(21)), whole)


def test_training_equals_the_gymnasium_path():
    """Three generations of OpenAI-ES, float64 envs: the same centers and normalisers."""
    centers = []
    for problem in (TorchEnvProblem("CartPole-v1", {"hidden": ()}, dtype=F64, obs_norm=True, max_steps=100),
                    GymProblem("CartPole-v1", {"hidden": ()}, obs_norm=True, max_steps=100)):
        strategy = OpenAIES(problem.initial_center(1), population_size=32, sigma=0.1, lr=0.2, seed=9)
        trainer = Trainer(strategy, problem, SerialEvaluator(), test=lambda c, p=problem: float(
            p.evaluate_policy(c, episodes=5, seed=3).mean()))
        trainer.run(3)
        centers.append((strategy.center.clone(), problem.normalizer.mean.clone(), trainer.metrics[-1]))
    assert torch.equal(centers[0][0], centers[1][0])
    assert torch.equal(centers[0][1], centers[1][1])
    for key in ("reward_mean", "test_reward", "env_steps"):
        assert centers[0][2][key] == centers[1][2][key]


def test_bad_input():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            TorchEnvProblem("CartPole-v1", device="cuda")
    with pytest.raises(ValueError, match="those with one: CartPole-v1, Acrobot-v1"):
        TorchEnvProblem("LunarLander-v3")
    with pytest.raises(ValueError, match="device must be"):
        TorchEnvProblem("CartPole-v1", device="tpu")
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
        TorchEnvProblem("CartPole-v1", cuda_graph=True)
    problem = TorchEnvProblem("CartPole-v1", {"hidden": (64,)}, memory_fraction=1e-9)
    with pytest.raises(ValueError, match=r"population of 8 members x 1 episode.* needs about .* GiB on cpu"):
        problem.evaluate(_population(problem, size=8), range(8))


def test_memory_estimate_grows_with_the_population():
    problem = TorchEnvProblem("CartPole-v1", {"hidden": (64,)})
    small = estimate_memory(problem.policy, TORCH_ENVS["CartPole-v1"], 1000)
    big = estimate_memory(problem.policy, TORCH_ENVS["CartPole-v1"], 1_000_000)
    assert big["total"] == pytest.approx(1000 * small["total"], rel=1e-6)
    assert big["weights"] == 1_000_000 * 450 * 4


# ---- CUDA (skipped without it; run by benchmarks/gpu_check.sh) ---------------------------


@cuda
@pytest.mark.cuda
def test_cuda_generation_matches_cpu():
    cpu = TorchEnvProblem("CartPole-v1", {"hidden": (64,)}, obs_norm=True)
    gpu = TorchEnvProblem("CartPole-v1", {"hidden": (64,)}, obs_norm=True, device="cuda")
    strategy = OpenAIES(cpu.initial_center(0).cuda(), population_size=256, sigma=0.1, lr=0.1, seed=3)
    population = strategy.ask()
    assert population.noise.values.is_cuda
    a, b = gpu.evaluate(population, range(256)), cpu.evaluate(population, range(256))
    # sin/cos/tanh and FMA contraction differ from the CPU's: most members play the same episode
    assert float((a.rewards == b.rewards).double().mean()) >= 0.8
    assert abs(float(a.rewards.mean()) - float(b.rewards.mean())) <= 0.05 * float(b.rewards.mean())
    again = TorchEnvProblem("CartPole-v1", {"hidden": (64,)}, obs_norm=True, device="cuda")
    _same_evaluation(again.evaluate(population, range(256)), a)  # run to run on one GPU


@cuda
@pytest.mark.cuda
def test_cuda_tf32_is_off_during_the_forward_and_restored(monkeypatch):
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    seen = []
    original = torch.baddbmm

    def spy(*args, **kwargs):
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "baddbmm", spy)
    try:
        problem = TorchEnvProblem("CartPole-v1", {"hidden": (64, 64)}, device="cuda")  # 64x64: a bmm layer
        problem.evaluate(_population(problem, size=4), range(4))
        assert seen and not any(seen)
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


@cuda
@pytest.mark.cuda
def test_cuda_population_too_large_is_a_clear_error():
    problem = TorchEnvProblem("CartPole-v1", {"hidden": (256, 256)}, device="cuda")
    free, _ = torch.cuda.mem_get_info()
    size = int(free // (problem.num_parameters * 4)) + 1  # the weights alone exceed the free memory
    strategy = OpenAIES(problem.initial_center(0).cuda(), population_size=size, sigma=0.1, lr=0.1, seed=1)
    with pytest.raises(ValueError, match=f"population of {size:,} members .* needs about"):
        problem.evaluate(strategy.ask(), range(size))


@cuda
@pytest.mark.cuda
def test_cuda_training_solves_cartpole():
    problem = TorchEnvProblem("CartPole-v1", {"hidden": ()}, obs_norm=True, max_steps=150, device="cuda")
    strategy = OpenAIES(problem.initial_center(0).cuda(), population_size=512, sigma=0.1, lr=0.2,
                        optimizer="sgd", seed=1)
    trainer = Trainer(strategy, problem, SerialEvaluator(),
                      test=lambda c: float(problem.evaluate_policy(c, episodes=100, seed=5).mean()), target=475.0)
    result = trainer.run(50)
    assert result.solved, trainer.metrics[-1]


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize(
    ("env_id", "hidden"),
    [("CartPole-v1", (64,)), ("MountainCarContinuous-v0", (16,)), ("Acrobot-v1", (64, 64)), ("Pendulum-v1", (64,))],
)
def test_cuda_graph_replays_the_eager_steps(env_id, hidden):
    """The captured step is the eager step: the same numbers as eager without compaction."""
    from pytorch_es.rl.torch_problem import DeviceMLP, _Normalization, rollout_device

    problem = TorchEnvProblem(env_id, {"hidden": hidden}, obs_norm=True, device="cuda", max_steps=120)
    problem.normalizer.update(torch.randn(50, *problem.observation_space.shape))
    population = OpenAIES(problem.initial_center(0).cuda(), population_size=64, sigma=0.3, lr=0.1, seed=2).ask()
    results = []
    for graph in (False, True):
        members = problem._members(population, list(range(64)))
        env = problem._env(64)
        start = env.start_states(problem.episode_seeds(2, 0)).repeat(64, 1)
        results.append(rollout_device(
            env, DeviceMLP(problem.policy, members), None, start_state=start, max_steps=120, check_every=4,
            normalization=_Normalization(problem.normalizer, problem.device), stats=True, compact=False,
            cuda_graph=graph,
        ))
    for key in ("returns", "lengths", "sums", "squares"):
        assert torch.equal(results[0][key], results[1][key]), key
    graphed = TorchEnvProblem(env_id, {"hidden": hidden}, device="cuda", max_steps=120, cuda_graph=True)
    eager = TorchEnvProblem(env_id, {"hidden": hidden}, device="cuda", max_steps=120)
    a, b = graphed.evaluate(population, range(64)), eager.evaluate(population, range(64))
    # eager drops finished rows: CUDA may pick other reduction/bmm kernels for the smaller batches
    assert float((a.rewards == b.rewards).double().mean()) >= 0.8
