"""The contract every registered strategy must keep (parametrised over ``available()``)."""

from __future__ import annotations

import io
import math

import pytest
import torch

from backend_problems import Quadratic
from pytorch_es import strategies
from pytorch_es.evaluation import ProcessEvaluator, SerialEvaluator

NAMES = strategies.available()
DIM = 6
TARGET = torch.linspace(-1.0, 1.0, DIM)
# settings that make a 60-generation run on a 6-d quadratic converge; strategies not
# listed take their own defaults
SETTINGS = {
    "openai-es": {"lr": 0.1, "optimizer": "adam", "sigma": 0.3},
    "pgpe": {"lr": 0.1, "sigma": 0.3},
    "cem": {"elite_ratio": 0.5, "extra_noise": 0.01, "extra_noise_decay": 0.95},
    "ars": {"lr": 0.1},
}


def make(name, **kwargs):
    settings = {"population_size": 12, "sigma": 0.3, "seed": 7, **SETTINGS.get(name, {}), **kwargs}
    center = settings.pop("center", torch.zeros(DIM))
    return strategies.get(name)(center, **settings)


def loss(members):
    return (members - TARGET).pow(2).sum(-1)


def run(strategy, generations, sign=1.0):
    for _ in range(generations):
        population = strategy.ask()
        strategy.tell(sign * loss(population.members()), population=population)
    return strategy


def scale_of(strategy):
    scale = strategy.ask().scale
    return scale if isinstance(scale, torch.Tensor) else torch.tensor([scale])


@pytest.mark.parametrize("name", NAMES)
def test_an_lr_scheduler_drives_lr_and_sees_every_step(name):
    """A scheduler wraps ``optimizer.step``: every tell must then call it (torch warns
    "lr_scheduler.step() before optimizer.step()" otherwise), and step hooks run once a tell."""
    import warnings

    strategy = make(name, lr=0.8)
    schedule = torch.optim.lr_scheduler.StepLR(strategy.optimizer, step_size=1, gamma=0.5)
    hooked = []
    strategy.optimizer.register_step_post_hook(lambda *args: hooked.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for generation in range(3):
            run(strategy, 1)
            schedule.step()
            assert strategy.lr == pytest.approx(0.8 * 0.5 ** (generation + 1))
    assert len(hooked) == 3


def test_registry_lists_the_strategies_and_suggests_close_names():
    assert {"openai-es", "pgpe", "snes"} <= set(NAMES)
    assert strategies.get("OpenAI-ES") is strategies.OpenAIES
    with pytest.raises(ValueError, match=r"unknown strategy 'pgep' \(did you mean pgpe\?\)"):
        strategies.get("pgep")


@pytest.mark.parametrize("name", NAMES)
def test_minimise_and_maximise(name):
    start = float(loss(torch.zeros(DIM)))
    minimised = run(make(name, maximize=False), 60)
    assert float(loss(minimised.center)) < 0.3 * start
    maximised = run(make(name, maximize=True), 60, sign=-1.0)
    assert float(loss(maximised.center)) < 0.3 * start
    assert minimised.best_reward is not None and minimised.best_reward <= start
    assert maximised.best_reward >= -start


@pytest.mark.parametrize("name", NAMES)
def test_all_equal_rewards_give_a_finite_safe_update(name):
    strategy = make(name)
    before = scale_of(strategy).clone()
    for _ in range(3):
        strategy.ask()
        stats = strategy.tell([2.5] * strategy.population_size)
    assert torch.isfinite(strategy.center).all()
    after = scale_of(strategy)
    assert torch.isfinite(after).all() and bool((after > 0).all())
    assert bool((after < 5 * before).all()) and bool((after > 0.2 * before).all())
    assert all(math.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("name", NAMES)
def test_bad_rewards_are_refused_before_anything_changes(name):
    strategy = make(name)
    n = strategy.population_size
    center = strategy.center.clone()
    with pytest.raises(ValueError, match="reward of member 1 is nan"):
        strategy.tell([0.0, float("nan")] + [0.0] * (n - 2))
    with pytest.raises(ValueError, match=f"expected {n} rewards"):
        strategy.tell([0.0] * (n - 1))
    with pytest.raises(TypeError, match="got a dict"):
        strategy.tell({i: float(i) for i in range(n)})
    assert strategy.generation == 0 and torch.equal(strategy.center, center)


@pytest.mark.parametrize("name", NAMES)
def test_ask_tell_pairing(name):
    strategy = make(name)
    population = strategy.ask()
    strategy.tell([float(i) for i in range(strategy.population_size)])
    with pytest.raises(ValueError, match="without a matching ask"):
        strategy.tell([0.0] * strategy.population_size)
    with pytest.raises(ValueError, match="population of generation 0"):
        strategy.tell([0.0] * strategy.population_size, population=population)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_and_bit_identical_resume(name):
    reference = run(make(name, maximize=False), 12)
    half = run(make(name, maximize=False), 6)
    buffer = io.BytesIO()
    torch.save(half.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = make(name, maximize=True, seed=99)  # the state's settings win
    resumed.load_state_dict(state)
    assert resumed.maximize is False and resumed.seed == 7 and resumed.generation == 6
    run(resumed, 6)
    assert torch.equal(resumed.center, reference.center)
    assert torch.equal(scale_of(resumed), scale_of(reference))
    assert resumed.state_dict()["hyperparameters"] == reference.state_dict()["hyperparameters"]


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_refuses_another_run(name):
    state = run(make(name), 2).state_dict()
    with pytest.raises(ValueError, match="population_size 12, this strategy has 14"):
        make(name, population_size=14).load_state_dict(state)
    with pytest.raises(ValueError, match="center of shape"):
        make(name, center=torch.zeros(DIM + 1)).load_state_dict(state)
    other = "snes" if name != "snes" else "pgpe"
    with pytest.raises(ValueError, match=f"state is of strategy '{name}'"):
        make(other).load_state_dict(state)
    with pytest.raises(ValueError, match="population_size must be >= "):
        make(name).load_state_dict({**state, "population_size": 1})
    with pytest.raises(ValueError, match="non-finite center"):
        make(name).load_state_dict({**state, "center": torch.full((DIM,), float("nan"))})


@pytest.fixture(scope="module")
def processes():
    with ProcessEvaluator(2) as evaluator:
        yield evaluator


@pytest.mark.parametrize("name", NAMES)
def test_identical_on_serial_and_processes(name, processes):
    runs = []
    for evaluator in (SerialEvaluator(), processes):
        strategy = make(name, center=torch.zeros(20), maximize=True, bounds=(-0.5, 2.0))
        problem = Quadratic()
        rewards = []
        for _ in range(3):
            result = evaluator.evaluate(strategy.ask(), problem)
            rewards.append(result.rewards)
            strategy.tell(result.rewards)
        runs.append((torch.cat(rewards), strategy.center.clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("name", NAMES)
def test_bounds_are_respected(name):
    low = torch.full((DIM,), -0.2)
    low[0] = -1.0
    strategy = make(name, center=torch.full((DIM,), 0.1), sigma=2.0, bounds=(low, 0.3), maximize=False)
    for _ in range(5):
        population = strategy.ask()
        members = population.members()
        assert bool((members >= low).all()) and bool((members <= 0.3).all())
        assert torch.equal(population.member(3), members[3])
        strategy.tell(loss(members))
        assert bool((strategy.center >= low).all()) and bool((strategy.center <= 0.3).all())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bounds": (1.0, 0.0)}, "bounds need low < high"),
        ({"bounds": (torch.zeros(DIM + 1), 1.0)}, "bounds low must be a number or have shape"),
        ({"bounds": (0.5, 1.0)}, r"center\[0\] = 0.0 lies outside bounds"),
        ({"center": torch.tensor([0.0, float("inf")])}, r"center\[1\] is inf"),
        ({"population_size": 1}, "population_size must be >= "),
        ({"device": "cuda:7" if torch.cuda.is_available() else "cuda"}, "device='cuda"),
    ],
)
def test_bad_arguments_are_named(name, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make(name, **kwargs)


def test_openai_es_state_checks_name_the_problem():
    sgd = strategies.OpenAIES(torch.zeros(3), optimizer="sgd", seed=0)
    adam = strategies.OpenAIES(torch.zeros(3), optimizer="adam", seed=0)
    with pytest.raises(ValueError, match=r"optimizer state is not for this Adam: it lacks \['betas', 'eps'\]"):
        adam.load_state_dict(sgd.state_dict())
    state = {**sgd.state_dict(), "sigma": float("nan"), "generation": 5}
    with pytest.raises(ValueError, match="state sigma must be finite"):
        sgd.load_state_dict(state)
    assert sgd.generation == 0 and sgd.sigma == 0.1  # nothing half-loaded


def test_state_dict_keeps_every_hyperparameter():
    strategy = strategies.OpenAIES(
        torch.zeros(3), sigma=0.2, sigma_decay=0.5, sigma_min=0.01, fitness_shaping="z_score", seed=0
    )
    fresh = strategies.OpenAIES(torch.zeros(3), seed=1)
    fresh.load_state_dict(strategy.state_dict())
    assert (fresh.sigma, fresh.sigma_decay, fresh.sigma_min) == (0.2, 0.5, 0.01)
    assert fresh.fitness_shaping.__name__ == "z_score"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda' cannot be used here .*torch.cuda.is_available\(\) is False"):
        strategies.OpenAIES(torch.zeros(3), device="cuda")


@pytest.mark.parametrize("name", [n for n in NAMES if n != "openai-es"])
def test_evolution_module_takes_any_strategy(name, tmp_path):
    from pytorch_es import EvolutionModule

    weights = [torch.zeros(DIM)]

    def reward(parameters, render=False):
        return -float(loss(parameters[0]))

    es = EvolutionModule(weights, reward, population_size=12, sigma=0.3, learning_rate=SETTINGS.get(name, {}).get(
        "lr", strategies.get(name)(torch.zeros(DIM), population_size=12).lr), threadcount=1, seed=3,
        strategy=name, save_path=tmp_path / "w.p")
    start = -float(loss(weights[0]))
    es.run(40, print_step=20)
    assert es.strategy.name == name and -float(loss(weights[0])) > start
    with pytest.raises(ValueError, match="apply to strategy='openai-es'"):
        EvolutionModule(weights, reward, strategy=name, sigma_decay=0.9)


def test_register_a_user_strategy():
    from pytorch_es.strategies.base import Hyperparameters

    class Toy(strategies.Strategy):
        name = "toy"

        def __init__(self, center, **common):
            super().__init__(center, population_size=common.pop("population_size", 8), **common)
            self.optimizer = Hyperparameters(lr=1.0)

        def _distribution(self):
            return 0.1, None

        def _update(self, population, fitness):
            return {}

    strategies.register("toy", Toy)
    try:
        assert "toy" in strategies.available() and strategies.get("TOY") is Toy
        strategy = Toy(torch.zeros(2), seed=0)
        strategy.tell(strategy.ask().members().sum(1))
        assert strategy.generation == 1 and strategy.state_dict()["strategy"] == "toy"
    finally:
        strategies.registry._REGISTRY.pop("toy")
    with pytest.raises(TypeError, match="needs a Strategy subclass"):
        strategies.register("bad", dict)
