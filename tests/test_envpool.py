"""``--vector envpool``: EnvPool's C++ envs as a batch. Returns are correct for every member
(batched, masked, chunked exactly like a member alone), episode boundaries follow the env's
rules, and EnvPool's physics scores like Gymnasium's (comparable, not bit-identical)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from pytorch_es import OpenAIES
from pytorch_es.rl import GymProblem
from pytorch_es.rl.envs import EnvPoolBatch, _importable, make_batch
from pytorch_es.rl.rollout import rollout_batch

needs_envpool = pytest.mark.skipif(not _importable("envpool"), reason="needs the envpool extra")
needs_both = pytest.mark.skipif(not (_importable("envpool") and _importable("mujoco")),
                                reason="needs the envpool and mujoco extras")


def test_envpool_without_the_package_gives_the_install_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--vector", "envpool", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "--vector envpool needs the envpool package", 'pip install "pytorch-es[envpool]"')
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="needs the envpool package"):
        GymProblem("CartPole-v1", vectorization="envpool")


@needs_envpool
def test_envpool_on_an_env_it_lacks_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "Hopper-v2", "--vector", "envpool", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "EnvPool has no Hopper-v2", "--vector gymnasium")


def _population(problem: GymProblem, size: int, sigma: float, seed: int = 1, generation: int = 0):
    center = problem.initial_center(seed)
    if problem.env_id == "CartPole-v1":  # push toward the falling side: short, long and capped episodes
        center = torch.cat([torch.tensor([[0.0, 0.0], [0.0, 0.1], [0.0, 1.0], [0.0, 0.5]]).reshape(-1), torch.zeros(2)])
    strategy = OpenAIES(center, population_size=size, sigma=sigma, seed=seed)
    strategy.generation = generation
    return strategy.ask()


def _alone(problem: GymProblem, vector: torch.Tensor, seed: int) -> tuple[float, int]:
    """One member in a pool of its own."""
    batch = make_batch(problem.env_id, 1, vectorization="envpool")
    try:
        result = rollout_batch(batch, problem.policy.bind(vector[None]), [seed], max_steps=problem.max_steps,
                               action_space=problem.action_space)
    finally:
        batch.close()
    return float(result.returns[0]), int(result.lengths[0])


@needs_envpool
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_every_member_scores_in_the_batch_what_it_scores_alone(env_id):
    problem = GymProblem(env_id, [], obs_norm=False, episodes_per_member=2, vectorization="envpool")
    problem.max_steps = 150
    assert problem.vectorized  # auto runs it in one in-process batch
    population = _population(problem, 10, 0.3)
    evaluation = problem.evaluate(population, range(10))
    chunks = [problem.evaluate(population, chunk) for chunk in ([0, 1, 2], [3, 4, 5, 6, 7, 8, 9])]
    assert torch.equal(torch.cat([c.rewards for c in chunks]), evaluation.rewards)  # chunking changes nothing
    seeds = problem.episode_seeds(population.noise.seed, population.generation)
    lengths, steps = [], 0
    for index in range(10):
        episodes = [_alone(problem, population.member(index), seed) for seed in seeds]
        lengths += [length for _, length in episodes]
        steps += sum(length for _, length in episodes)
        assert evaluation.rewards[index].item() == (episodes[0][0] + episodes[1][0]) / 2
    assert evaluation.env_steps == steps
    if env_id == "CartPole-v1":  # terminated, and cut at the step limit: both boundaries were crossed
        assert min(lengths) < 150 and max(lengths) == 150


@needs_envpool
def test_the_batch_steps_only_running_sub_envs_and_hides_autoresets():
    batch = EnvPoolBatch("CartPole-v1", 3)
    try:
        obs = batch.reset([5, 5, 9])
        assert np.array_equal(obs[0], obs[1]) and not np.array_equal(obs[0], obs[2])  # starts follow the seed
        active = np.array([True, False, True])
        before = obs[1].copy()
        obs, rewards, done = batch.step(np.array([0, 1, 1]), active)
        assert rewards[1] == 0.0 and done[1] and rewards[0] == rewards[2] == 1.0
        assert np.array_equal(batch._obs[1], before)  # sub-env 1 was not stepped
    finally:
        batch.close()


def _healthy(obs: np.ndarray) -> bool:
    """Gymnasium's Hopper-v5 health rule on the observation: z = qpos[1] > 0.7, |angle| < 0.2."""
    return obs[0] > 0.7 and abs(obs[1]) < 0.2


@needs_both
def test_hopper_episodes_end_where_gymnasiums_rule_ends_them_and_score_alike():
    gym_problem = GymProblem("Hopper-v5", [], obs_norm=False)
    pool_problem = GymProblem("Hopper-v5", [], obs_norm=False, vectorization="envpool")
    still = torch.zeros(gym_problem.num_parameters)  # zero torques: the hopper falls after 100-200 steps
    # boundaries: replay each episode, checking health step by step
    batch = EnvPoolBatch("Hopper-v5", 4)
    try:
        seeds = [0, 1, 2, 3]
        result = rollout_batch(batch, pool_problem.policy.bind(still.expand(4, -1)), seeds, max_steps=1000,
                               action_space=pool_problem.action_space)
        obs, steps = batch.reset(seeds).copy(), 0
        active = np.ones(4, dtype=bool)
        ended = np.zeros(4, dtype=np.int64)
        while active.any():
            obs, _, done = batch.step(np.zeros((4, 3)), active)
            steps += 1
            for j in np.flatnonzero(active):
                assert _healthy(obs[j]) != bool(done[j]), (j, steps, obs[j])
                if done[j]:
                    ended[j] = steps
            active &= ~done
    finally:
        batch.close()
    assert np.array_equal(ended, result.lengths) and ended.min() > 50 and ended.max() < 1000
    # same policy, same env id, 64 starts each: EnvPool's physics scores within 15% of Gymnasium's
    gym_returns = gym_problem.evaluate_policy(still, episodes=64, seed=0)
    pool_returns = pool_problem.evaluate_policy(still, episodes=64, seed=0)
    assert not torch.equal(gym_returns, pool_returns)  # not bit-identical: another build, other starts
    assert abs(float(pool_returns.mean()) / float(gym_returns.mean()) - 1) < 0.15


@needs_both
def test_hopper_on_envpool_gives_identical_results_on_serial_and_processes(capsys, tmp_path):
    import csv

    rows = {}
    for backend in ("serial", "processes"):
        run = tmp_path / backend
        code, _, err = run_cli(capsys, "train", "Hopper-v5", "--vector", "envpool", "--max-steps", "20",
                               "--population", "8", "--generations", "2", "--test-episodes", "2", "--seed", "5",
                               "--target", "none", "--quiet", "--backend", backend,
                               *(["--workers", "2"] if backend == "processes" else []), "--out", str(run))
        assert code == 0, err
        with open(run / "metrics.csv") as file:
            rows[backend] = [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(file)]
    assert rows["serial"] == rows["processes"] and len(rows["serial"]) == 2


def _auto_run(capsys, out, env_id: str = "CartPole-v1", *options: str, vector: str = "auto") -> tuple[str, dict]:
    """A 2-generation ``train ENV --vector VECTOR``: its start line and config.json."""
    import json

    code, stdout, err = run_cli(capsys, "train", env_id, "--vector", vector, "--generations", "2", "--seed", "3",
                                "--population", "8", "--target", "none", "--out", str(out), *options)
    assert code == 0, err
    return stdout.splitlines()[0], json.loads((out / "config.json").read_text())


def test_vector_auto_without_envpool_runs_gymnasium_and_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)
    line, config = _auto_run(capsys, tmp_path / "run")
    assert "gymnasium envs (auto: envpool is not installed)" in line
    assert config["problem"]["vector"] == "gymnasium"  # recorded: a resumed run keeps its envs


@needs_envpool
def test_vector_auto_picks_envpool_and_records_the_choice(capsys, tmp_path):
    import csv

    line, config = _auto_run(capsys, tmp_path / "auto")
    assert "envpool envs (auto: EnvPool has it" in line and config["problem"]["vector"] == "envpool"
    _auto_run(capsys, tmp_path / "explicit", vector="envpool")

    def rewards(run: str) -> list[tuple[str, str]]:
        with open(tmp_path / run / "metrics.csv") as file:
            return [(row["reward_mean"], row["test_reward"]) for row in csv.DictReader(file)]

    assert rewards("auto") == rewards("explicit")  # the same run as --vector envpool


@needs_envpool
def test_vector_auto_on_an_env_envpool_lacks_runs_gymnasium(capsys, tmp_path):
    import gymnasium as gym

    gym.register("PytorchEsTest/CartPoleCopy-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                 max_episode_steps=50)
    try:
        # serial: worker processes would not know the env registered here
        line, config = _auto_run(capsys, tmp_path / "run", "PytorchEsTest/CartPoleCopy-v0", "--backend", "serial")
    finally:
        gym.registry.pop("PytorchEsTest/CartPoleCopy-v0")
    assert "(auto: EnvPool has no PytorchEsTest/CartPoleCopy-v0)" in line and config["problem"]["vector"] == "gymnasium"
