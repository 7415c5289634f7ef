"""Extension points: parameter sources (core), policy kinds (rl) and their lazy
declarations (pytorch_es.plugins), used by a user's own types as pytorch_es.keras uses them."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pytorch_es import OpenAIES, flatten, plugins, write_back
from pytorch_es.core import as_parameter_list
from pytorch_es.core.parameters import parameter_source, register_parameter_source

# ---------------------------------------------------------------- parameter sources


class Bag:
    """A user's model type that is not an nn.Module: named tensors in a dict."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.tensors = tensors


register_parameter_source(Bag, lambda bag: list(bag.tensors.values()))


class Frozen(torch.nn.Module):
    """An nn.Module whose registered source leaves out its frozen layer."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = torch.nn.Linear(3, 3)
        self.head = torch.nn.Linear(3, 2)


register_parameter_source(Frozen, lambda module: [module.head.weight, module.head.bias])


def test_a_registered_type_is_flattened_written_back_and_searched():
    bag = Bag(w=torch.ones(2, 3), b=torch.zeros(3))
    assert parameter_source(bag) is not None and parameter_source(torch.zeros(1)) is None
    assert torch.equal(flatten(bag), torch.cat([torch.ones(6), torch.zeros(3)]))
    storage = bag.tensors["w"]
    write_back(torch.arange(9.0), bag)
    assert bag.tensors["w"] is storage and torch.equal(storage, torch.arange(6.0).view(2, 3))  # in place
    assert torch.equal(bag.tensors["b"], torch.tensor([6.0, 7.0, 8.0]))
    # an item of a list that is a registered source stands for its tensors
    assert len(as_parameter_list([bag, torch.ones(4)])) == 3
    strategy = OpenAIES(bag, population_size=4, sigma=0.1, seed=0)
    assert torch.equal(strategy.center, flatten(bag))


def test_a_registered_source_comes_before_the_nn_module_rule():
    module = Frozen()
    tensors = as_parameter_list(module)
    assert [tuple(t.shape) for t in tensors] == [(2, 3), (2,)]
    assert tensors[0] is module.head.weight
    assert len(as_parameter_list(list(module.parameters()))) == 4  # a plain list is taken as it is


class Unbuilt:
    """A model type whose source refuses until it is built."""


def refuse(_: Unbuilt) -> list[torch.Tensor]:
    raise ValueError("the model is not built yet")


register_parameter_source(Unbuilt, refuse)


def test_source_errors_name_the_argument_and_bad_registrations_are_refused():
    with pytest.raises(ValueError, match=r"^parameters is empty"):
        as_parameter_list(Bag())
    with pytest.raises(ValueError, match=r"^parameters: the model is not built yet$"):
        flatten(Unbuilt())
    with pytest.raises(ValueError, match=r"^center\[1\]: the model is not built yet$"):
        as_parameter_list([torch.ones(1), Unbuilt()], "center")
    with pytest.raises(TypeError, match=r"^center\[0\] must be a torch.Tensor, got str"):
        as_parameter_list([Bag(x="not a tensor")], "center")
    with pytest.raises(TypeError, match="cls must be a class"):
        register_parameter_source("Bag", list)
    with pytest.raises(TypeError, match="source must be callable"):
        register_parameter_source(Bag, 3)


def write_module(directory, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def test_a_declared_package_is_imported_when_its_type_is_first_met(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "es_test_models", """
        import torch

        class Weights:
            def __init__(self):
                self.values = [torch.full((2,), 3.0)]
    """)
    write_module(tmp_path, "es_test_models_plugin", """
        from es_test_models import Weights
        from pytorch_es.core.parameters import register_parameter_source

        register_parameter_source(Weights, lambda weights: weights.values)
    """)
    import es_test_models

    weights = es_test_models.Weights()
    with pytest.raises(TypeError, match=r"must be an nn\.Module or a list of tensors"):
        flatten(weights)  # nothing registered or declared for it yet
    plugins.declare("parameter_sources", "es_test_models", "es_test_models_plugin")
    assert "es_test_models_plugin" not in sys.modules
    assert torch.equal(flatten(weights), torch.full((2,), 3.0))
    assert "es_test_models_plugin" in sys.modules


def test_plugins_bad_inputs():
    with pytest.raises(ValueError, match="registry must be one of"):
        plugins.declare("strategies", "x", "y")
    with pytest.raises(TypeError, match="module must be a non-empty module name"):
        plugins.declare("policy_kinds", "x", "")
    with pytest.raises(TypeError, match="key must be a non-empty str"):
        plugins.declare("policy_kinds", 3, "y")
    assert plugins.load("policy_kinds", "nothing-declared") is False


def test_import_pytorch_es_declares_keras_without_importing_torch_or_keras():
    code = (
        "import json, sys, pytorch_es.plugins as p; "
        "print(json.dumps([p.declared('parameter_sources').get('keras'), p.declared('policy_kinds').get('keras'), "
        "'torch' in sys.modules, 'keras' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["pytorch_es.keras", "pytorch_es.keras.policy", False, False]


@pytest.mark.slow  # a fresh process that imports torch and keras
def test_a_keras_model_is_taken_in_keras_order_without_importing_pytorch_es_keras():
    pytest.importorskip("keras", reason="keras is not installed (pip install 'pytorch-es[keras]')")
    code = textwrap.dedent("""
        import sys, keras
        from pytorch_es import OpenAIES
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5), keras.layers.BatchNormalization(),
                                  keras.layers.Dense(2)])
        before = 'pytorch_es.keras' in sys.modules
        strategy = OpenAIES(model, population_size=4, seed=0)
        print(before, 'pytorch_es.keras' in sys.modules, strategy.center.numel())
    """)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    # trainable weights only (3*5 + 5 + BatchNorm gamma/beta 5 + 5 + 5*2 + 2), not BN statistics
    assert done.stdout.split() == ["False", "True", str(15 + 5 + 5 + 5 + 10 + 2)]


# ---------------------------------------------------------------- policy kinds

gymnasium = pytest.importorskip("gymnasium")

from pytorch_es.rl import (  # noqa: E402
    ActionHead,
    GymProblem,
    from_config,
    load_policy,
    policy_from_config,
    register_policy,
    rollout_single,
    save_policy,
)
from pytorch_es.rl.policy import policy_kinds  # noqa: E402

LINEAR_POLICY = """
import torch

from pytorch_es.rl import ActionHead, Policy, register_policy
from pytorch_es.rl.policy import check_config_parameters
from pytorch_es.rl.spaces import space_from_config, space_to_config


class LinearPolicy(Policy):
    \"\"\"Actions argmax(obs @ W): a user's own policy kind, with the shared action head.\"\"\"

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space
        self.head = ActionHead(action_space)

    @property
    def num_parameters(self):
        return self.obs_dim * int(self.action_space.n)

    def forward(self, members, obs):
        weights = self.check_members(members).reshape(-1, self.obs_dim, int(self.action_space.n))
        return self.head(torch.bmm(obs.reshape(len(weights), 1, -1), weights).squeeze(1))

    def initial_parameters(self, seed=0):
        return torch.zeros(self.num_parameters)

    def config(self):
        return {"type": self.type_name, "observation_space": space_to_config(self.observation_space),
                "action_space": space_to_config(self.action_space), "num_parameters": self.num_parameters}

    @classmethod
    def from_config(cls, config):
        policy = cls(space_from_config(config["observation_space"]), space_from_config(config["action_space"]))
        return check_config_parameters(config, policy, "the linear policy")


def register(name):
    kind = type("LinearPolicy", (LinearPolicy,), {"type_name": name})
    register_policy(name, kind.from_config)
    return kind
"""


@pytest.fixture
def linear_policy(tmp_path, monkeypatch):
    """A user's module defining a policy kind (``es_test_linear_policy.register(name)``)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "es_test_linear_policy.py").write_text(LINEAR_POLICY)
    (tmp_path / "es_test_lazy_plugin.py").write_text(
        "from es_test_linear_policy import register\n\nregister('test-lazy-linear')\n"
    )
    import es_test_linear_policy

    yield es_test_linear_policy
    sys.modules.pop("es_test_linear_policy", None)


def cartpole_spaces():
    env = gymnasium.make("CartPole-v1")
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def test_a_registered_policy_kind_trains_saves_and_loads(tmp_path, linear_policy):
    kind = linear_policy.register("test-linear")
    policy = kind(*cartpole_spaces())
    problem = GymProblem("CartPole-v1", policy=policy, max_steps=60, obs_norm=False)
    strategy = OpenAIES(problem.initial_center(), population_size=6, sigma=0.5, seed=2)
    population = strategy.ask()
    rewards = problem.evaluate(population, range(6)).rewards
    (seed,) = problem.episode_seeds(population.seed, population.generation)
    single = [rollout_single("CartPole-v1", policy, population.member(i), seed=seed, max_steps=60)[0] for i in range(6)]
    assert rewards.tolist() == single and len(set(single)) > 1  # members differ, batch == single env
    vector = population.member(int(rewards.argmax()))
    config = json.loads(json.dumps(problem.policy_config()))
    assert config["policy"]["type"] == "test-linear" and "test-linear" in policy_kinds()
    loaded = from_config(config, policy.named_parameters(vector))
    assert loaded.policy.type_name == "test-linear" and torch.equal(loaded.vector, vector)
    save_policy(tmp_path / "run", problem, vector)
    returns = load_policy(tmp_path / "run").evaluate(episodes=3, seed=10, max_steps=60)
    assert torch.equal(returns, problem.evaluate_policy(vector, episodes=3, seed=10, max_steps=60))
    problem.close()


def test_a_declared_policy_kind_is_imported_on_first_use(linear_policy):
    config = linear_policy.LinearPolicy(*cartpole_spaces()).config()
    config["type"] = "test-lazy-linear"
    with pytest.raises(ValueError, match=r"unknown policy type 'test-lazy-linear'; known: .*'keras'.*'mlp'"):
        policy_from_config(config)
    plugins.declare("policy_kinds", "test-lazy-linear", "es_test_lazy_plugin")
    assert "es_test_lazy_plugin" not in sys.modules
    rebuilt = policy_from_config(config)
    assert rebuilt.type_name == "test-lazy-linear" and "es_test_lazy_plugin" in sys.modules
    assert rebuilt.act(torch.ones(8), torch.tensor([1.0, 0.0, 0.0, 0.0])).item() == 0  # ties pick 0


def test_register_policy_bad_inputs():
    with pytest.raises(TypeError, match="type_name must be a non-empty str"):
        register_policy("", dict)
    with pytest.raises(TypeError, match="from_config must be callable"):
        register_policy("x", None)


def test_one_action_head_for_every_policy():
    from gymnasium import spaces

    box = spaces.Box(np.array([-2.0, -np.inf], np.float32), np.array([2.0, np.inf], np.float32))
    y = torch.tensor([[10.0, -1e39], [-0.5, 3.0]], dtype=torch.float64)
    squash, clip = ActionHead(box, "squash"), ActionHead(box, "clip")
    assert squash(y).dtype == torch.float32  # other float dtypes are cast first
    torch.testing.assert_close(squash(y)[:, 0], 2 * torch.tanh(y[:, 0].float()))
    assert squash(y)[1, 1] == 3.0  # identity on an unbounded dimension
    assert clip(y)[0, 0] == 2.0 and torch.isfinite(clip(y)).all()  # unbounded sides clamp to the float32 range
    with pytest.raises(ValueError, match="action_mode must be one of"):
        ActionHead(box, "tanh")
    keras = pytest.importorskip("keras", reason="keras is not installed")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    from pytorch_es.keras import keras_policy

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    assert isinstance(keras_policy(model, "Pendulum-v1", action_mode="squash").head, ActionHead)
