"""Vectorised population rollouts equal single-env rollouts, exactly; obs-norm merging."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from pytorch_es import OpenAIES, SerialEvaluator
from pytorch_es.core.population import Population
from pytorch_es.rl import GymProblem, MLPPolicy, evaluate_policy, rollout_single
from pytorch_es.rl.envs import SyncBatch, VectorEntryPointBatch


def cartpole_center(problem: GymProblem) -> torch.Tensor:
    """A linear CartPole controller (push toward the falling side) that balances for a
    while, so a population around it has short, long and time-limited episodes."""
    assert problem.policy.hidden == ()
    weight = torch.tensor([[0.0, 0.0], [0.0, 0.1], [0.0, 1.0], [0.0, 0.5]])  # logits = obs @ W
    return torch.cat([weight.reshape(-1), torch.zeros(2)])


def population_around(center: torch.Tensor, size: int, sigma: float, seed: int, generation: int) -> Population:
    strategy = OpenAIES(center, population_size=size, sigma=sigma, seed=seed)
    strategy.generation = generation
    return strategy.ask()


def assert_equal_to_single(problem: GymProblem, population: Population, members: list[int]) -> list[float]:
    evaluation = problem.evaluate(population, range(len(population)))
    seeds = problem.episode_seeds(population.noise.seed, population.generation)
    single_total = 0
    lengths = []
    for index in members:
        single = [problem.rollout_single(population.member(index), seed) for seed in seeds]
        lengths += [steps for _, steps in single]
        expected = single[0][0]
        for value, _ in single[1:]:
            expected += value
        expected /= len(seeds)
        assert evaluation.rewards[index].item() == expected, (index, evaluation.rewards[index].item(), single)
        single_total += sum(steps for _, steps in single)
    if len(members) == len(population):
        assert evaluation.env_steps == single_total
    return lengths


def test_cartpole_vector_entry_point_returns_equal_single_env_returns():
    problem = GymProblem("CartPole-v1", [], episodes_per_member=2, obs_norm=False)
    lengths = []
    for generation in (0, 3, 11):  # different env seeds
        population = population_around(cartpole_center(problem), 12, 0.2, seed=5, generation=generation)
        lengths += assert_equal_to_single(problem, population, list(range(12)))
    assert isinstance(problem._batch(24), VectorEntryPointBatch)
    assert min(lengths) < 100 and max(lengths) == 500  # terminated and truncated episodes


def test_cartpole_with_hidden_layer_obs_norm_and_short_limit():
    problem = GymProblem("CartPole-v1", {"hidden": [16], "activation": "relu"}, max_steps=120, obs_norm=True)
    strategy = OpenAIES(problem.initial_center(1), population_size=10, sigma=0.5, seed=2)
    SerialEvaluator().evaluate(strategy.ask(), problem)  # fills the normaliser
    assert problem.normalizer.count > 0
    strategy.tell(torch.arange(10.0))
    lengths = assert_equal_to_single(problem, strategy.ask(), list(range(10)))
    assert max(lengths) <= 120


def test_box_actions_pendulum_sync_equal_single_env_returns():
    problem = GymProblem("Pendulum-v1", {"hidden": [8]}, episodes_per_member=2, max_steps=60, obs_norm=True)
    population = population_around(problem.initial_center(0), 6, 0.5, seed=3, generation=4)
    problem.normalizer.update(torch.randn(50, 3, generator=torch.Generator().manual_seed(0)))
    assert_equal_to_single(problem, population, list(range(6)))
    assert isinstance(problem._batch(12), SyncBatch)


def test_box_actions_clip_mode_mountain_car_equal_single_env_returns():
    problem = GymProblem("MountainCarContinuous-v0", {"hidden": [], "action_mode": "clip"}, max_steps=80,
                         obs_norm=False)
    population = population_around(torch.zeros(problem.num_parameters), 4, 2.0, seed=1, generation=0)
    assert_equal_to_single(problem, population, [0, 1, 2, 3])


def test_lunar_lander_sync_equal_single_env_returns():
    problem = GymProblem("LunarLander-v3", [8], max_steps=150, obs_norm=True)
    population = population_around(problem.initial_center(0), 4, 0.5, seed=9, generation=1)
    lengths = assert_equal_to_single(problem, population, [0, 1, 2, 3])
    assert min(lengths) < 150  # some landed or crashed: terminated, not only truncated


def test_chunks_in_any_order_give_the_same_rewards_and_normaliser():
    def run(chunks):
        problem = GymProblem("CartPole-v1", [], episodes_per_member=2, obs_norm=True)
        population = population_around(cartpole_center(problem), 10, 0.3, seed=4, generation=2)
        evaluations = [problem.evaluate(population, chunk) for chunk in chunks]
        problem.merge(evaluations)
        rewards = torch.empty(10, dtype=torch.float64)
        for evaluation in evaluations:
            rewards[evaluation.indices] = evaluation.rewards
        return rewards, problem.normalizer.state_dict()

    whole_rewards, whole_state = run([list(range(10))])
    split_rewards, split_state = run([[7, 8, 9], [3, 4, 5, 6], [0, 1, 2]])
    assert torch.equal(whole_rewards, split_rewards)
    for key in whole_state:
        assert torch.equal(whole_state[key], split_state[key]), key


def test_worker_state_round_trip_and_pickled_problem_gives_the_same_rewards():
    problem = GymProblem("CartPole-v1", [], obs_norm=True)
    population = population_around(cartpole_center(problem), 8, 0.3, seed=4, generation=0)
    SerialEvaluator().evaluate(population, problem)
    problem.max_steps = 200
    worker = pickle.loads(pickle.dumps(problem))
    worker.load_worker_state(problem.worker_state())
    assert worker.max_steps == 200
    assert worker._batches == {}
    next_population = population_around(cartpole_center(problem), 8, 0.3, seed=4, generation=1)
    expected = problem.evaluate(next_population, range(8))
    got = worker.evaluate(next_population, [4, 5, 6, 7])
    assert torch.equal(got.rewards, expected.rewards[4:])


def test_merge_ignores_payload_order_of_evaluations():
    problem = GymProblem("CartPole-v1", [], obs_norm=True)
    population = population_around(cartpole_center(problem), 6, 0.3, seed=4, generation=0)
    a = problem.evaluate(population, [0, 1, 2])
    b = problem.evaluate(population, [3, 4, 5])
    other = pickle.loads(pickle.dumps(problem))
    problem.merge([a, b])
    other.merge([b, a])
    assert torch.equal(problem.normalizer.mean, other.normalizer.mean)
    assert problem.normalizer.count == sum(e.env_steps for e in (a, b))


def test_episode_seeds_are_shared_deterministic_and_change_per_generation():
    problem = GymProblem("CartPole-v1", [], episodes_per_member=3)
    assert problem.episode_seeds(1, 0) == problem.episode_seeds(1, 0)
    assert problem.episode_seeds(1, 0) != problem.episode_seeds(1, 1)
    assert problem.episode_seeds(1, 0) != problem.episode_seeds(2, 0)
    assert len(set(problem.episode_seeds(1, 0))) == 3


def test_evaluate_policy_uses_seeds_seed_to_seed_plus_episodes():
    problem = GymProblem("CartPole-v1", [], obs_norm=False, max_steps=100)
    center = cartpole_center(problem)
    returns = problem.evaluate_policy(center, episodes=5, seed=1000)
    assert returns.dtype == torch.float64 and returns.shape == (5,)
    for k in range(5):  # the env's own limit (500), not the training limit
        assert returns[k].item() == rollout_single("CartPole-v1", problem.policy, center, seed=1000 + k)[0]
    assert torch.equal(returns, evaluate_policy("CartPole-v1", problem.policy, center, episodes=5, seed=1000))


class CountingEnv(gym.Env):
    """Terminates when the action is 1 (or after 20 steps); counts its step calls."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self) -> None:
        self.steps_taken = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        self.steps_taken += 1
        self.t += 1
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, 1.0, bool(action == 1) or self.t >= 20, False, {}


gym.register("pytorch_es_test/Counting-v0", entry_point=CountingEnv, max_episode_steps=50)


def test_finished_members_are_not_stepped_in_sync_batches():
    problem = GymProblem("pytorch_es_test/Counting-v0", [], obs_norm=False)
    population = population_around(torch.zeros(problem.num_parameters), 16, 1.0, seed=3, generation=0)
    evaluation = problem.evaluate(population, range(16))
    counts = [env.unwrapped.steps_taken for env in problem._batch(16).envs]
    assert counts == evaluation.rewards.tolist()  # reward 1 per step: no step after the end
    assert 1 <= min(counts) < max(counts) <= 20
    assert evaluation.env_steps == sum(counts)


def test_empty_indices_and_mismatched_population():
    problem = GymProblem("CartPole-v1", [])
    population = population_around(cartpole_center(problem), 4, 0.1, seed=0, generation=0)
    empty = problem.evaluate(population, [])
    assert empty.indices == [] and empty.rewards.shape == (0,) and empty.env_steps == 0
    wrong = population_around(torch.zeros(7), 4, 0.1, seed=0, generation=0)
    with pytest.raises(ValueError, match=r"7 parameters.*expects 10"):
        problem.evaluate(wrong, [0])


def test_policy_forward_batched_equals_rowwise():
    problem = GymProblem("LunarLander-v3", [32, 32])
    policy = problem.policy
    assert isinstance(policy, MLPPolicy)
    members = torch.randn(9, policy.num_parameters)
    obs = torch.randn(9, 8)
    actions = policy.forward(members, obs)
    assert actions.dtype == torch.int64
    for i in range(9):
        assert policy.act(members[i], obs[i]) == actions[i]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "LunarLander-v3"])
def test_thread_pool_gives_the_same_training_as_serial(env_id):
    """Threads evaluate chunks of one generation at once: each needs its own vector env."""
    from pytorch_es import ThreadEvaluator

    centers = []
    for evaluator in (SerialEvaluator(), ThreadEvaluator(3)):
        problem = GymProblem(env_id, episodes_per_member=1, max_steps=60)
        strategy = OpenAIES(problem.initial_center(0), population_size=24, seed=1)
        with evaluator:
            for _ in range(3):
                strategy.tell(evaluator.evaluate(strategy.ask(), problem).rewards)
        problem.close()
        centers.append(strategy.center)
    assert torch.equal(centers[0], centers[1])
