"""CartPole is solved from a fixed seed within a small budget (greedy 100-episode mean >= 475)."""

import torch

from pytorch_es import OpenAIES, SerialEvaluator
from pytorch_es.rl import GymProblem, get_defaults


def test_cartpole_is_solved_with_the_defaults_within_a_small_budget():
    d = get_defaults("CartPole-v1")
    problem = GymProblem(
        "CartPole-v1", {"hidden": d.hidden, "activation": d.activation},
        episodes_per_member=d.episodes, max_steps=d.max_steps, obs_norm=d.obs_norm,
    )
    strategy = OpenAIES(problem.initial_center(0), population_size=d.population, sigma=d.sigma, lr=d.lr,
                        optimizer=d.optimizer, fitness_shaping=d.fitness_shaping, seed=0)
    scores = []
    with SerialEvaluator() as evaluator:
        for _ in range(15):
            result = evaluator.evaluate(strategy.ask(), problem)
            strategy.tell(result.rewards)
            returns = problem.evaluate_policy(strategy.center, episodes=100, seed=1000)
            scores.append(float(returns.mean()))
            if scores[-1] >= 475:
                break
    assert scores[-1] >= 475, scores
    assert problem.normalizer is None or problem.normalizer.count > 0


def test_training_is_reproducible_from_the_seed():
    def run():
        problem = GymProblem("CartPole-v1", [], max_steps=100, obs_norm=True)
        strategy = OpenAIES(problem.initial_center(1), population_size=32, sigma=0.1, lr=0.2,
                            optimizer="sgd", seed=7)
        evaluator = SerialEvaluator()
        rewards = []
        for _ in range(3):
            result = evaluator.evaluate(strategy.ask(), problem)
            strategy.tell(result.rewards)
            rewards.append(result.rewards)
        return torch.stack(rewards), strategy.center, problem.normalizer.state_dict()

    first, second = run(), run()
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    for key in first[2]:
        assert torch.equal(first[2][key], second[2][key])
