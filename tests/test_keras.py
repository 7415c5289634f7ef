"""Keras 3 models (torch backend) trained by pytorch-es: flat vectors, batched forward,
EvolutionModule and OpenAIES on Keras weights, CartPole, and Keras's own save/load."""

import os
import subprocess
import sys
import threading

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

import pytest
import torch

keras = pytest.importorskip("keras", reason="keras is not installed (pip install 'pytorch-es[keras]')")
if keras.backend.backend() != "torch":  # keras was imported earlier with another backend
    pytest.skip(
        f"keras was already imported with backend {keras.backend.backend()!r}; run with KERAS_BACKEND=torch",
        allow_module_level=True,
    )

from pytorch_es import EvolutionModule, OpenAIES, write_back  # noqa: E402
from pytorch_es.core import as_parameter_list  # noqa: E402
from pytorch_es.keras import (  # noqa: E402
    KerasForward,
    NotConvertibleError,
    model_to_vector,
    trainable_tensors,
    vector_to_model,
)

layers = keras.layers


def cartpole_model(seed: int = 0) -> keras.Model:
    """The original's Keras CartPole policy: Input(4) -> Dense(100, relu) -> Dense(2, softmax)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((4,)), layers.Dense(100, activation="relu"), layers.Dense(2, activation="softmax")]
    )


def model_outputs(model: keras.Model, members: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The reference: write each member into the variables and call the model itself."""
    saved = model_to_vector(model)
    try:
        outputs = []
        for i in range(members.shape[0]):
            vector_to_model(members[i], model)
            outputs.append(torch.as_tensor(model(inputs[i])).detach())
        return torch.stack(outputs)
    finally:
        vector_to_model(saved, model)


def random_members(forward: KerasForward, n: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    center = forward.initial_vector()
    return center + 0.3 * torch.randn(n, center.numel(), generator=generator)


# ---------------------------------------------------------------- backend checks


BACKEND_SCRIPT = """
import importlib, os, sys

def attempt():
    for name in [m for m in sys.modules if m.startswith("pytorch_es.keras")]:
        del sys.modules[name]
    try:
        importlib.import_module("pytorch_es.keras")
        return "ok"
    except Exception as error:
        return f"{type(error).__name__}: {error}"

os.environ["KERAS_BACKEND"] = "jax"  # asked for another backend
print(attempt())
del os.environ["KERAS_BACKEND"]
sys.modules["keras"] = None  # keras not installed
print(attempt())
del sys.modules["keras"]
print(attempt())  # KERAS_BACKEND unset: pytorch_es.keras chooses torch
import keras
print(keras.backend.backend())
keras.backend.backend = lambda: "jax"  # keras already loaded with another backend (none other is installed)
print(attempt())
"""


def test_backend_checks():
    """Another backend asked for, keras missing, KERAS_BACKEND unset, keras already loaded
    with another backend: one fresh interpreter (importing torch and keras takes seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", BACKEND_SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    asked, missing, unset, backend, other = result.stdout.strip().splitlines()[-5:]
    assert asked.startswith("RuntimeError:") and "KERAS_BACKEND='jax'" in asked and "torch" in asked
    assert missing.startswith("ImportError:") and "pip install 'pytorch-es[keras]'" in missing
    assert unset == "ok" and backend == "torch"
    assert other.startswith("RuntimeError:") and "backend 'jax'" in other and "KERAS_BACKEND=torch" in other


# ---------------------------------------------------------------- flat vectors


def test_flat_vector_round_trip_in_keras_order():
    model = cartpole_model()
    weights = model.get_weights()  # numpy, Keras order: kernel, bias, kernel, bias
    vector = model_to_vector(model)
    assert vector.shape == (4 * 100 + 100 + 100 * 2 + 2,)
    expected = torch.cat([torch.as_tensor(w).reshape(-1) for w in weights])
    assert torch.equal(vector, expected)

    new = torch.linspace(-1, 1, vector.numel())
    vector_to_model(new, model)
    assert torch.equal(model_to_vector(model), new)
    assert torch.equal(torch.as_tensor(model.get_weights()[0]), new[:400].view(4, 100))
    x = torch.randn(3, 4)
    before = model(x).detach()
    vector_to_model(vector, model)
    assert torch.equal(model_to_vector(model), vector)
    assert not torch.allclose(model(x).detach(), before)


def test_core_helpers_take_keras_weights_and_models_in_keras_order():
    model = keras.Sequential(
        [keras.Input((3,)), layers.Dense(5), layers.BatchNormalization(), layers.Dense(2)]
    )
    from_weights = as_parameter_list(model.trainable_weights)
    from_model = as_parameter_list(model)  # Keras order, trainable only (no BN statistics)
    assert [tuple(t.shape) for t in from_model] == [(3, 5), (5,), (5,), (5,), (5, 2), (2,)]
    assert all(a is b for a, b in zip(from_weights, from_model, strict=True))
    assert all(a is b for a, b in zip(from_model, trainable_tensors(model), strict=True))
    # In-place write back (torch backend: each variable holds an nn.Parameter).
    vector = torch.arange(float(sum(t.numel() for t in from_model)))
    write_back(vector, model.trainable_weights)
    assert torch.equal(model_to_vector(model), vector)
    assert torch.equal(torch.as_tensor(model.trainable_weights[0].numpy()), vector[:15].view(3, 5))


def test_vector_to_model_rejects_bad_shapes():
    model = cartpole_model()
    with pytest.raises(ValueError, match="702"):
        vector_to_model(torch.zeros(10), model)
    with pytest.raises(ValueError, match="shape"):
        vector_to_model([torch.zeros(4, 100), torch.zeros(100), torch.zeros(2, 100), torch.zeros(2)], model)
    with pytest.raises(TypeError, match="Keras 3 model"):
        model_to_vector(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="build it first"):
        model_to_vector(keras.Sequential([layers.Dense(3)]))


# ---------------------------------------------------------------- batched forward


@pytest.mark.parametrize(
    "build",
    [
        lambda: [keras.Input((4,)), layers.Dense(100, activation="relu"), layers.Dense(2, "softmax")],
        lambda: [keras.Input((5,)), layers.Dense(7, activation="tanh"), layers.Dense(3, "sigmoid")],
        lambda: [
            keras.Input((5,)), layers.Dense(6, use_bias=False), layers.Activation("relu"),
            layers.Dense(4, activation="linear"), layers.Activation("softmax"),
        ],
    ],
    ids=["cartpole", "tanh-sigmoid", "activation-layers-no-bias"],
)
def test_dense_batched_forward_equals_the_model(build):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(build())
    forward = KerasForward(model)
    assert forward.mode == "dense" and forward.reason is None
    members = random_members(forward)
    inputs = torch.randn(members.shape[0], 9, model.inputs[0].shape[-1])
    outputs = forward.batched(members, inputs)
    torch.testing.assert_close(outputs, model_outputs(model, members, inputs), rtol=1e-5, atol=1e-6)
    # single member, and extra batch dimensions
    torch.testing.assert_close(forward(members[2], inputs[2]), outputs[2], rtol=1e-5, atol=1e-6)
    deep = forward.batched(members, inputs.view(members.shape[0], 3, 3, -1))
    torch.testing.assert_close(deep.reshape(outputs.shape), outputs)


def test_dense_forward_keeps_frozen_layers_fixed():
    keras.utils.set_random_seed(2)
    frozen = layers.Dense(6, activation="relu")
    model = keras.Sequential([keras.Input((4,)), frozen, layers.Dense(2)])
    frozen.trainable = False
    forward = KerasForward(model)
    assert forward.mode == "dense" and forward.dim == 6 * 2 + 2
    members = random_members(forward)
    inputs = torch.randn(members.shape[0], 5, 4)
    torch.testing.assert_close(
        forward.batched(members, inputs), model_outputs(model, members, inputs), rtol=1e-5, atol=1e-6
    )


def test_other_models_use_stateless_call_and_match_the_model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6, 2)), layers.Conv1D(4, 3, activation="elu"), layers.BatchNormalization(),
            layers.Flatten(), layers.Dense(3, activation="gelu"),
        ]
    )
    forward = KerasForward(model)
    assert forward.mode == "stateless" and "Conv1D" in forward.reason
    members = random_members(forward)
    inputs = torch.randn(members.shape[0], 5, 6, 2)
    outputs = forward.batched(members, inputs)
    assert forward._vmap_works is True
    torch.testing.assert_close(outputs, model_outputs(model, members, inputs), rtol=1e-5, atol=1e-5)
    with pytest.raises(NotConvertibleError, match="Conv1D"):
        KerasForward(model, mode="dense")


class DataDependent(keras.layers.Layer):
    """Python control flow on tensor values: torch.func.vmap cannot trace it."""

    def call(self, x):
        return x * 2.0 if float(x.sum()) > 0 else x - 1.0


def test_stateless_falls_back_to_a_loop_where_vmap_cannot_trace():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4), DataDependent(), layers.Dense(2)])
    forward = KerasForward(model)
    members = random_members(forward, n=5)
    inputs = torch.randn(5, 2, 3)
    outputs = forward.batched(members, inputs)
    assert forward._vmap_works is False
    torch.testing.assert_close(outputs, model_outputs(model, members, inputs), rtol=1e-5, atol=1e-6)


def test_forward_is_pure_and_thread_safe():
    model = keras.Sequential(
        [keras.Input((3,)), layers.Dense(4), layers.LayerNormalization(), layers.Dense(2)]
    )
    before = model_to_vector(model)
    forward = KerasForward(model)
    members = random_members(forward, n=8)
    inputs = torch.randn(8, 4, 3)
    expected = model_outputs(model, members, inputs)
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = forward(members[i], inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    torch.testing.assert_close(torch.stack([results[i] for i in range(8)]), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(model_to_vector(model), before)  # the model itself never changed


def test_forward_bad_inputs():
    forward = KerasForward(cartpole_model())
    with pytest.raises(ValueError, match="mode"):
        KerasForward(cartpole_model(), mode="fast")
    with pytest.raises(ValueError, match=r"\(n, 702\)"):
        forward.batched(torch.zeros(3, 5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="3 members"):
        forward.batched(torch.zeros(3, 702), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="features"):
        forward.batched(torch.zeros(3, 702), torch.zeros(3, 1, 5))
    with pytest.raises(TypeError, match="Keras 3 model"):
        KerasForward(torch.nn.Linear(4, 2))


# ---------------------------------------------------------------- strategies on Keras weights

X_TOY = torch.linspace(-1, 1, 16).unsqueeze(1)
Y_TOY = 0.5 * X_TOY - 0.25


def toy_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((1,)), layers.Dense(1)])


def test_evolution_module_trains_keras_trainable_weights_in_place():
    model = toy_model()
    forward = KerasForward(model)  # a pure function: safe in EvolutionModule's threads

    def reward(weights, render=False):
        return -float(((forward(weights, X_TOY) - Y_TOY) ** 2).mean())

    start = reward(model.trainable_weights)
    es = EvolutionModule(
        model.trainable_weights, reward, population_size=20, sigma=0.05, learning_rate=0.05, optimizer="adam",
        threadcount=2, seed=0,
    )
    es.run(120, print_step=1000)
    kernel, bias = (float(torch.as_tensor(w.numpy()).reshape(())) for w in model.trainable_weights)
    assert abs(kernel - 0.5) < 0.05 and abs(bias + 0.25) < 0.05, (kernel, bias, start)
    assert -float(((model(X_TOY) - Y_TOY) ** 2).mean()) > -1e-3  # the Keras model itself learned


def test_openai_es_takes_a_keras_model_as_center():
    model = toy_model()
    strategy = OpenAIES(model, population_size=20, sigma=0.1, lr=0.1, optimizer="adam", seed=1)
    assert torch.equal(strategy.center, model_to_vector(model))
    forward = KerasForward(model)
    for _ in range(60):
        population = strategy.ask()
        members = population.members()
        outputs = forward.batched(members, X_TOY.expand(len(population), -1, -1))
        strategy.tell(-((outputs - Y_TOY) ** 2).mean(dim=(1, 2)))
    vector_to_model(strategy.center, model)
    assert float(((model(X_TOY) - Y_TOY) ** 2).mean()) < 1e-3


# ---------------------------------------------------------------- Keras's own files


@pytest.mark.parametrize("name", ["policy.keras", "policy.weights.h5"])
def test_save_and_load_round_trip(tmp_path, name):
    model = cartpole_model(seed=6)
    vector_to_model(model_to_vector(model) + 0.5, model)  # weights that differ from any init
    path = tmp_path / name
    x = torch.randn(7, 4)
    if name.endswith(".keras"):
        model.save(path)
        loaded = keras.models.load_model(path)
    else:
        model.save_weights(path)
        loaded = cartpole_model(seed=7)
        loaded.load_weights(path)
    assert torch.equal(model_to_vector(loaded), model_to_vector(model))
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert KerasForward(loaded).mode == "dense"


# ---------------------------------------------------------------- Gymnasium policy

try:
    import gymnasium

    from pytorch_es.keras import KerasPolicy, keras_policy
    from pytorch_es.rl import GymProblem, from_config, policy_config, rollout_single
except ModuleNotFoundError as missing:  # the `gym` extra is not installed
    if missing.name != "gymnasium":
        raise
    gymnasium = None

needs_gym = pytest.mark.skipif(
    gymnasium is None, reason="gymnasium is not installed: pip install 'pytorch-es[gym]'"
)

GOAL = 475.0  # CartPole-v1 "solved": greedy mean over 100 episodes on env seeds 1000..1099


@needs_gym
def test_policy_actions_are_the_models_greedy_actions():
    model = cartpole_model(seed=8)
    policy = keras_policy(model, "CartPole-v1")
    assert policy.mode == "dense" and policy.num_parameters == 702
    members = random_members(policy.keras_forward, n=32, seed=1)
    obs = torch.randn(32, 4) * 2
    actions = policy.forward(members, obs)
    expected = model_outputs(model, members, obs.unsqueeze(1)).squeeze(1).argmax(-1)
    assert actions.dtype == torch.int64 and torch.equal(actions, expected)
    bound = policy.bind(members)
    rows = torch.tensor([3, 17, 30])
    assert torch.equal(bound.select(rows)(obs[rows]), expected[rows])


@needs_gym
@pytest.mark.parametrize("action_mode", ["clip", "squash"])
def test_box_actions_within_bounds(action_mode):
    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])
    policy = keras_policy(model, "Pendulum-v1", action_mode=action_mode)  # Box(-2, 2, (1,))
    members = random_members(policy.keras_forward, n=16, seed=2) * 10
    obs = torch.randn(16, 3)
    actions = policy.forward(members, obs)
    raw = model_outputs(model, members, obs.unsqueeze(1)).reshape(16, 1)
    expected = raw.clamp(-2, 2) if action_mode == "clip" else 2 * torch.tanh(raw)
    assert actions.shape == (16, 1)
    torch.testing.assert_close(actions, expected, rtol=1e-5, atol=1e-5)


@needs_gym
def test_vectorised_returns_equal_single_env_returns_in_both_modes():
    keras.utils.set_random_seed(10)
    model = keras.Sequential(
        [keras.Input((4,)), layers.Dense(8, activation="tanh"), layers.LayerNormalization(), layers.Dense(2)]
    )
    for policy in (keras_policy(cartpole_model(seed=10), "CartPole-v1"), keras_policy(model, "CartPole-v1")):
        problem = GymProblem("CartPole-v1", policy=policy, max_steps=100)
        strategy = OpenAIES(problem.initial_center(), population_size=6, sigma=0.5, seed=3)
        population = strategy.ask()
        evaluation = problem.evaluate(population, range(6))
        (seed,) = problem.episode_seeds(population.noise.seed, population.generation)
        single = [
            rollout_single("CartPole-v1", policy, population.member(i), seed=seed, max_steps=100)[0]
            for i in range(6)
        ]
        assert evaluation.rewards.tolist() == single, policy.mode
        problem.close()


@needs_gym
def test_keras_cartpole_is_solved_saved_and_loaded(tmp_path):
    """The original's Keras policy solves CartPole-v1 in a small budget, then Keras's own
    .keras file round-trips it with the same greedy returns."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batched matmuls: threads only contend on a busy machine
    try:
        solve_save_and_load(tmp_path)
    finally:
        torch.set_num_threads(threads)


def solve_save_and_load(tmp_path):
    model = cartpole_model(seed=0)
    problem = GymProblem("CartPole-v1", policy=keras_policy(model, "CartPole-v1"))
    strategy = OpenAIES(model, population_size=48, sigma=0.1, lr=0.1, optimizer="adam", seed=0)
    solved = None
    for generation in range(30):
        population = strategy.ask()
        rewards = problem.evaluate(population, range(len(population))).rewards
        strategy.tell(rewards)
        if rewards.max() >= 500 and problem.evaluate_policy(strategy.center).mean() >= GOAL:
            solved = generation + 1
            break
    assert solved is not None, "CartPole-v1 not solved in 30 generations"
    returns = problem.evaluate_policy(strategy.center, episodes=100, seed=1000)
    assert returns.mean() >= GOAL
    assert_cli_evaluates_the_run_directory(tmp_path / "run", problem, strategy.center, returns)

    problem.policy.to_model(strategy.center)
    model.save(tmp_path / "cartpole.keras")
    loaded = keras.models.load_model(tmp_path / "cartpole.keras")
    again = GymProblem("CartPole-v1", policy=keras_policy(loaded, "CartPole-v1"))
    assert torch.equal(again.evaluate_policy(model_to_vector(loaded), episodes=100, seed=1000), returns)
    # The model itself, called by Keras, picks the same actions on the states it visits.
    env = gymnasium.make("CartPole-v1")
    obs, _ = env.reset(seed=1000)
    total, done = 0.0, False
    while not done:
        action = int(keras.ops.argmax(loaded(obs[None]), axis=-1)[0])
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    env.close()
    assert total == float(returns[0])


def assert_cli_evaluates_the_run_directory(directory, problem, center, returns):
    """A Keras policy saved as a run directory is rebuilt by ``pytorch-es eval`` in a fresh
    process (which has not imported pytorch_es.keras) with the same greedy returns."""
    import json

    from pytorch_es.training.rundir import save_policy

    save_policy(directory, problem, center)  # creates the directory
    command = [sys.executable, "-m", "pytorch_es", "eval", str(directory), "--episodes", "100", "--seed", "1000"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mean_return"] == float(returns.mean())


@needs_gym
def test_policy_config_round_trip_and_pickle():
    import pickle

    model = cartpole_model(seed=11)
    policy = keras_policy(model, "CartPole-v1")
    vector = model_to_vector(model) + 0.25
    config = json_round_trip(policy_config("CartPole-v1", policy))
    assert config["policy"]["type"] == "keras"
    named = policy.named_parameters(vector)
    assert list(named) == [f"trainable_weights.{i}.{n}" for i, n in enumerate(["kernel", "bias"] * 2)]
    loaded = from_config(config, named)
    assert isinstance(loaded.policy, KerasPolicy) and torch.equal(loaded.vector, vector)
    obs = torch.randn(5, 4)
    members = vector.expand(5, -1)
    assert torch.equal(loaded.policy.forward(members, obs), policy.forward(members, obs))
    copy = pickle.loads(pickle.dumps(policy))
    assert torch.equal(copy.forward(members, obs), policy.forward(members, obs))
    assert torch.equal(copy.initial_parameters(), policy.initial_parameters())


def json_round_trip(data):
    import json

    return json.loads(json.dumps(data))


@needs_gym
def test_policy_bad_inputs():
    wrong_outputs = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    with pytest.raises(ValueError, match=r"3 outputs per observation.*needs 2"):
        keras_policy(wrong_outputs, "CartPole-v1")
    wrong_inputs = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"observations of shape \(4,\)"):
        keras_policy(wrong_inputs, "CartPole-v1")
    with pytest.raises(ValueError, match="action_mode"):
        keras_policy(cartpole_model(), "CartPole-v1", action_mode="tanh")
