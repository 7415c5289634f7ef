"""OpenAIES: the gradient estimate, convergence, antithetic variance, reproducibility."""

import math

import pytest
import torch

from pytorch_es import ClipUp, OpenAIES


def quadratic_rewards(population, target):
    members = population.members()
    return -((members - target) ** 2).sum(dim=1)


def es_gradient(strategy, target):
    population = strategy.ask()
    rewards = quadratic_rewards(population, target)
    return strategy.gradient(population, rewards.to(torch.float64))


def test_gradient_estimate_agrees_with_true_gradient_of_a_quadratic():
    dim = 20
    target = torch.linspace(-2, 2, dim, dtype=torch.float64)
    center = torch.zeros(dim, dtype=torch.float64)
    strategy = OpenAIES(center, population_size=4000, sigma=0.05, fitness_shaping="raw", seed=1)
    estimate = es_gradient(strategy, target)
    true_gradient = -2 * (center - target)  # d/dtheta of -||theta - target||^2
    cosine = torch.nn.functional.cosine_similarity(estimate, true_gradient, dim=0)
    assert cosine > 0.9
    # with raw (unshaped) rewards the estimate is unbiased: same scale as the true gradient
    assert 0.8 < float(estimate.norm() / true_gradient.norm()) < 1.25


def test_antithetic_sampling_lowers_the_variance_of_the_estimate():
    # Near the optimum the reward's even (curvature) part dominates the noise of the
    # estimate; mirrored pairs cancel it exactly, independent samples do not.
    dim = 30
    target = torch.randn(dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    center = target + 0.05
    true_gradient = -2 * (center - target)

    def squared_error(antithetic, seed):
        strategy = OpenAIES(
            center, population_size=50, sigma=0.5, fitness_shaping="raw", antithetic=antithetic, seed=seed
        )
        return float((es_gradient(strategy, target) - true_gradient).pow(2).sum())

    mirrored = sum(squared_error(True, s) for s in range(40))
    independent = sum(squared_error(False, s) for s in range(40))
    assert mirrored < 0.5 * independent


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "clipup"])
def test_convex_problem_in_many_dimensions_converges(optimizer):
    dim = 1000
    target = torch.randn(dim, generator=torch.Generator().manual_seed(3))
    lr, sigma = {"sgd": (0.05, 0.05), "adam": (0.02, 0.02), "clipup": (0.1, 0.05)}[optimizer]
    strategy = OpenAIES(torch.zeros(dim), population_size=100, sigma=sigma, lr=lr, optimizer=optimizer, seed=0)
    start = float((strategy.center - target).norm())
    for _ in range(300):
        strategy.tell(quadratic_rewards(strategy.ask(), target))
    assert float((strategy.center - target).norm()) < 0.1 * start


def test_minimisation_is_explicit():
    target = torch.tensor([1.0, -1.0, 2.0])
    strategy = OpenAIES(torch.zeros(3), population_size=20, sigma=0.1, lr=0.05, maximize=False, seed=0)
    for _ in range(200):
        population = strategy.ask()
        strategy.tell(-quadratic_rewards(population, target))  # a loss to minimise
    assert float((strategy.center - target).norm()) < 0.2


def test_sgd_reproduces_the_original_update_rule():
    dim, n, sigma, lr = 8, 6, 0.3, 0.01
    strategy = OpenAIES(
        torch.zeros(dim, dtype=torch.float64), population_size=n, sigma=sigma, lr=lr,
        fitness_shaping="z_score", seed=5,
    )
    population = strategy.ask()
    rewards = torch.tensor([1.0, 3.0, -2.0, 0.5, 4.0, 2.0], dtype=torch.float64)
    shaped = (rewards - rewards.mean()) / rewards.std(unbiased=False)
    expected = lr / (n * sigma) * sum(shaped[i] * population.epsilon(i).double() for i in range(n))
    strategy.tell(rewards)
    assert torch.allclose(strategy.center, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inline_sgd_step_equals_torch_optim_step_bit_for_bit(dtype):
    """Unwatched plain SGD is applied inline (no torch.optim wrapper); a registered step hook
    makes the strategy call ``optimizer.step()`` instead. Both give the same bits."""
    from pytorch_es.strategies.openai_es import plain_sgd_lr

    inline, stepped = (OpenAIES(torch.zeros(30, dtype=dtype), population_size=10, lr=0.37, seed=4) for _ in "ab")
    calls = []
    stepped.optimizer.register_step_post_hook(lambda *args: calls.append(1))
    assert plain_sgd_lr(inline.optimizer, inline.center) == 0.37
    assert plain_sgd_lr(stepped.optimizer, stepped.center) is None
    target = torch.linspace(-1, 1, 30, dtype=dtype)
    for _ in range(8):
        stats = [s.tell(quadratic_rewards(s.ask(), target)) for s in (inline, stepped)]
        assert stats[0] == stats[1]
    assert torch.equal(inline.center, stepped.center) and len(calls) == 8
    assert inline.state_dict()["optimizer"] == stepped.state_dict()["optimizer"]
    for unusual in ({"momentum": 0.9}, {"weight_decay": 0.1}, {"maximize": True}):
        strategy = OpenAIES(torch.zeros(3), population_size=4, optimizer_kwargs=unusual, seed=0)
        assert plain_sgd_lr(strategy.optimizer, strategy.center) is None


def test_all_equal_rewards_give_a_zero_update_not_nan():
    for shaping in ("centered_ranks", "z_score", "raw"):
        strategy = OpenAIES(torch.ones(5), population_size=7, fitness_shaping=shaping, seed=0)
        stats = strategy.tell([2.0] * 7)
        assert torch.equal(strategy.center, torch.ones(5))
        assert stats["update_norm"] == 0.0


def test_same_seed_gives_identical_runs_and_state_dict_resumes_bit_identically():
    target = torch.randn(50, generator=torch.Generator().manual_seed(1))

    def run(strategy, generations):
        for _ in range(generations):
            strategy.tell(quadratic_rewards(strategy.ask(), target))
        return strategy

    make = lambda: OpenAIES(torch.zeros(50), population_size=20, optimizer="adam", lr=0.05, seed=42)  # noqa: E731
    a, b = run(make(), 30), run(make(), 30)
    assert torch.equal(a.center, b.center)
    assert not torch.equal(a.center, run(OpenAIES(torch.zeros(50), population_size=20, seed=43), 30).center)

    half = run(make(), 15)
    resumed = make()
    resumed.load_state_dict(half.state_dict())
    assert torch.equal(run(resumed, 15).center, a.center)


def test_weight_decay_comes_from_the_optimizer_and_sigma_decays():
    strategy = OpenAIES(
        torch.ones(4), population_size=4, lr=0.1, optimizer_kwargs={"weight_decay": 0.5},
        sigma=0.2, sigma_decay=0.5, sigma_min=0.06, seed=0,
    )
    strategy.tell([1.0, 1.0, 1.0, 1.0])  # zero ES gradient: only weight decay moves the center
    assert torch.allclose(strategy.center, torch.full((4,), 1 - 0.1 * 0.5))
    assert math.isclose(strategy.sigma, 0.1)
    strategy.tell([1.0] * 4)
    assert math.isclose(strategy.sigma, 0.06)


def test_clipup_speed_is_limited():
    param = torch.zeros(3)
    optimizer = ClipUp([param], lr=0.1, momentum=0.9, max_speed=0.15)
    for _ in range(20):
        param.grad = torch.tensor([-100.0, 0.0, 0.0])
        before = param.clone()
        optimizer.step()
        assert float((param - before).norm()) <= 0.15 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"population_size": 1}, "population_size must be >= 2"),
        ({"sigma": 0.0}, "sigma must be > 0"),
        ({"sigma": -1.0}, "sigma must be > 0"),
        ({"lr": -0.1}, "lr must be >= 0"),
        ({"sigma_decay": 1.5}, r"sigma_decay must be in \(0, 1\]"),
        ({"optimizer": "rmsprop-ish"}, "optimizer must be one of"),
        ({"fitness_shaping": "nope"}, "fitness_shaping must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        OpenAIES(torch.zeros(3), **kwargs)


def test_bad_rewards_name_the_member():
    strategy = OpenAIES(torch.zeros(3), population_size=4, seed=0)
    with pytest.raises(ValueError, match="reward of member 2 is nan"):
        strategy.tell([1.0, 2.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="reward of member 1 is inf"):
        strategy.tell(torch.tensor([1.0, float("inf"), 0.0, 0.0]))
    with pytest.raises(TypeError, match="reward of member 3 must be a real number"):
        strategy.tell([1.0, 2.0, 0.0, "high"])
    with pytest.raises(ValueError, match="expected 4 rewards"):
        strategy.tell([1.0, 2.0])
    assert strategy.generation == 0  # nothing was applied


def test_tell_learns_from_the_population_ask_returned_and_builds_the_best_member_on_read():
    def run(change_before_tell: bool) -> tuple[OpenAIES, object, torch.Tensor]:
        strategy = OpenAIES(torch.zeros(6), population_size=8, sigma=0.1, lr=0.1, seed=4)
        population = strategy.ask()
        rewards = -(population.members() - 1).square().sum(1)
        if change_before_tell:
            strategy.sigma = 0.5  # applies from the next generation
        strategy.tell(rewards, population=population)
        strategy.sigma = 0.5
        return strategy, population, rewards

    changed, population, rewards = run(True)
    unchanged, _, _ = run(False)
    assert torch.equal(changed.center, unchanged.center)
    assert torch.equal(changed.best_member, population.members([int(rewards.argmax())])[0])
    assert torch.equal(changed.state_dict()["best_member"], changed.best_member)
