"""Bad Gymnasium inputs: unknown ids (with suggestions), unsupported spaces, bad options."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from pytorch_es.rl import GymProblem, check_env_id, get_defaults, make_env, reward_threshold
from pytorch_es.rl.envs import make_batch


class _SpacesEnv(gym.Env):
    """A real (tiny) env with configurable spaces, registered below."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)
gym.register(
    "pytorch_es_test/DictObs-v0",
    entry_point=lambda: _SpacesEnv(spaces.Dict({"position": BOX, "goal": BOX}), spaces.Discrete(2)),
    max_episode_steps=10,
)
gym.register(
    "pytorch_es_test/MultiDiscreteActions-v0",
    entry_point=lambda: _SpacesEnv(BOX, spaces.MultiDiscrete([3, 2])),
    max_episode_steps=10,
)
gym.register(
    "pytorch_es_test/NoTimeLimit-v0", entry_point=lambda: _SpacesEnv(BOX, spaces.Discrete(2))
)


def test_unknown_env_id_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown Gymnasium env id 'CartPol-v1'.*CartPole-v1"):
        check_env_id("CartPol-v1")
    with pytest.raises(ValueError, match=r"LunarLander-v3"):
        GymProblem("LunarLander-v2")
    with pytest.raises(ValueError, match=r"did you mean CartPole-v1"):
        make_env("cartpole-v1")
    with pytest.raises(ValueError, match=r"unknown Gymnasium env id 'NoSuchThing-v9'$"):
        check_env_id("NoSuchThing-v9")
    with pytest.raises(TypeError, match="env_id"):
        check_env_id(None)


def test_tuple_observations_are_refused_naming_the_space():
    with pytest.raises(ValueError, match=r"Blackjack-v1 has a Tuple observation space Tuple\(Discrete\(32\)"):
        GymProblem("Blackjack-v1")


def test_dict_observations_are_refused_naming_the_space():
    with pytest.raises(ValueError, match=r"has a Dict observation space Dict\(.*FlattenObservation"):
        GymProblem("pytorch_es_test/DictObs-v0")


def test_multidiscrete_actions_are_refused_naming_the_space():
    with pytest.raises(ValueError, match=r"has a MultiDiscrete action space MultiDiscrete\(\[3 2\]\)"):
        GymProblem("pytorch_es_test/MultiDiscreteActions-v0")


def test_discrete_observations_are_refused():
    with pytest.raises(ValueError, match=r"FrozenLake-v1 has a Discrete observation space Discrete\(16\)"):
        GymProblem("FrozenLake-v1")


def test_bad_problem_options_name_the_argument():
    with pytest.raises(ValueError, match="episodes_per_member"):
        GymProblem("CartPole-v1", episodes_per_member=0)
    with pytest.raises(ValueError, match="max_steps"):
        GymProblem("CartPole-v1", max_steps=0)
    with pytest.raises(ValueError, match="vectorization"):
        GymProblem("CartPole-v1", vectorization="async")
    with pytest.raises(ValueError, match="no step limit"):
        GymProblem("pytorch_es_test/NoTimeLimit-v0")
    with pytest.raises(ValueError, match="hidden"):
        GymProblem("CartPole-v1", {"hidden": [0]})
    with pytest.raises(ValueError, match="activation"):
        GymProblem("CartPole-v1", {"activation": "swish2"})
    with pytest.raises(ValueError, match="invalid MLP policy spec"):
        GymProblem("CartPole-v1", {"hiden": [4]})
    with pytest.raises(ValueError, match="action_mode"):
        GymProblem("Pendulum-v1", {"action_mode": "sample"})
    problem = GymProblem("CartPole-v1", max_steps=100)
    with pytest.raises(ValueError, match="exceeds the env's step limit 500"):
        problem.max_steps = 501
    with pytest.raises(ValueError, match="vector entry point"):
        make_batch("Pendulum-v1", 2, vectorization="vector_entry_point")


def test_vectorized_flag_tells_evaluators_which_envs_batch_in_numpy():
    assert GymProblem("CartPole-v1", []).vectorized is True
    assert GymProblem("CartPole-v1", [], vectorization="sync").vectorized is False
    assert GymProblem("Pendulum-v1", []).vectorized is False


def test_longer_max_steps_than_the_spec_raises_the_time_limit():
    problem = GymProblem("CartPole-v1", [], max_steps=700, obs_norm=False)
    assert problem.max_steps == 700
    assert problem._batch(2).vector_env.unwrapped.max_episode_steps == 700


def test_reward_threshold_and_defaults():
    assert reward_threshold("CartPole-v1") == 475.0
    assert reward_threshold("LunarLander-v3") == 200.0
    assert get_defaults("CartPole-v1").target == 475.0
    assert get_defaults("CartPole-v0").target == 195.0  # generic fallback, spec threshold
    assert get_defaults("LunarLander-v3").obs_norm is True
    assert get_defaults("CartPole-v1").as_dict()["hidden"] == list(get_defaults("CartPole-v1").hidden)
