"""Policies (heads, config round trip, weight shapes) and the observation normaliser."""

import json
import pickle

import numpy as np
import pytest
import torch
from gymnasium import spaces

from pytorch_es.rl import (
    GymProblem,
    MLPPolicy,
    ObservationNormalizer,
    Policy,
    from_config,
    make_policy,
    policy_config,
    policy_from_config,
)

BOX4 = spaces.Box(-np.inf, np.inf, (4,), np.float32)


def test_mlp_layout_matches_to_module():
    policy = MLPPolicy(BOX4, spaces.Discrete(3), hidden=(5, 6), activation="relu")
    assert policy.num_parameters == 4 * 5 + 5 + 5 * 6 + 6 + 6 * 3 + 3
    vector = torch.randn(policy.num_parameters)
    obs = torch.randn(7, 4)
    logits = policy.to_module(vector)(obs)
    assert torch.equal(policy.forward(vector.expand(7, -1), obs), logits.argmax(-1))
    assert "MLP 4-5-6-3" in policy.describe()
    linear = MLPPolicy(BOX4, spaces.Discrete(3), hidden=(), activation="tanh")
    assert linear.describe() == "linear 4-3 (15 parameters)"  # no hidden layer: no activation named


def test_box_heads_squash_and_clip_to_bounds():
    action_space = spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32), dtype=np.float32)
    squash = MLPPolicy(BOX4, action_space, hidden=())
    clip = MLPPolicy(BOX4, action_space, hidden=(), action_mode="clip")
    members = torch.randn(50, squash.num_parameters) * 10
    obs = torch.randn(50, 4) * 10
    for policy in (squash, clip):
        actions = policy.forward(members, obs)
        assert actions.shape == (50, 2) and actions.dtype == torch.float32
        assert (actions[:, 0] >= -2).all() and (actions[:, 0] <= 2).all()
        assert (actions[:, 1] >= 0).all() and (actions[:, 1] <= 1).all()
    zero = squash.forward(torch.zeros(1, squash.num_parameters), torch.zeros(1, 4))
    assert torch.allclose(zero, torch.tensor([[0.0, 0.5]]))  # middle of the bounds
    unbounded = MLPPolicy(BOX4, spaces.Box(-np.inf, np.inf, (1,), np.float32), hidden=())
    vector = torch.zeros(unbounded.num_parameters)
    vector[-1] = 7.0  # the bias
    assert unbounded.act(vector, torch.zeros(4)).item() == 7.0


def test_discrete_with_start_offset():
    policy = MLPPolicy(BOX4, spaces.Discrete(3, start=-1), hidden=())
    vector = torch.zeros(policy.num_parameters)
    vector[-1] = 1.0  # bias of the last logit
    assert policy.act(vector, torch.zeros(4)).item() == 1


def test_wrong_weight_shapes_show_both_shapes():
    policy = MLPPolicy(BOX4, spaces.Discrete(2), hidden=(8,))
    with pytest.raises(ValueError, match=r"shape \(3,\), but the MLP 4-8-2 .* expects \(58,\)"):
        policy.check_vector(torch.zeros(3))
    with pytest.raises(ValueError, match=r"members have shape \(2, 5\).*\(n, 58\)"):
        policy.forward(torch.zeros(2, 5), torch.zeros(2, 4))
    problem = GymProblem("CartPole-v1", [8])
    with pytest.raises(ValueError, match=r"shape \(10,\).*expects \(58,\)"):
        problem.evaluate_policy(torch.zeros(10), episodes=1)


def test_policy_config_round_trip_through_json_and_named_weights():
    problem = GymProblem("LunarLander-v3", {"hidden": [16, 16], "activation": "elu"}, obs_norm=True)
    problem.normalizer.update(torch.randn(100, 8, dtype=torch.float64))
    center = problem.initial_center(3)
    config = json.loads(json.dumps(problem.policy_config(generation=7)))
    tensors = problem.policy.named_parameters(center)
    assert tensors["layers.0.weight"].shape == (8, 16)
    loaded = from_config(config, tensors)
    assert loaded.env_id == "LunarLander-v3" and config["generation"] == 7
    assert torch.equal(loaded.vector, center)
    assert torch.equal(loaded.normalizer.mean, problem.normalizer.mean)
    assert torch.equal(loaded.normalizer.m2, problem.normalizer.m2)
    assert loaded.policy.config() == problem.policy.config()
    expected = problem.evaluate_policy(center, episodes=3, seed=5, max_steps=60)
    assert torch.equal(loaded.evaluate(episodes=3, seed=5, max_steps=60), expected)


def test_weights_of_another_env_show_both_shapes():
    cartpole = GymProblem("CartPole-v1", [64])
    lunar = GymProblem("LunarLander-v3", [64])
    lunar_weights = lunar.policy.named_parameters(lunar.initial_center(0))
    with pytest.raises(ValueError, match=r"policy.safetensors have \{layers.0.weight: \(8, 64\).*expects "
                                         r"\{layers.0.weight: \(4, 64\)"):
        from_config(cartpole.policy_config(), lunar_weights, source="policy.safetensors")
    with pytest.raises(ValueError, match="not a pytorch-es policy config"):
        from_config({"env_id": "CartPole-v1"})
    config = cartpole.policy_config()
    config["policy"]["type"] = "transformer"
    with pytest.raises(ValueError, match="unknown policy type 'transformer'"):
        from_config(config)
    config = cartpole.policy_config()
    config["policy"]["num_parameters"] = 3
    with pytest.raises(ValueError, match="says 3 parameters"):
        policy_from_config(config["policy"])


def test_make_policy_specs_and_custom_policy():
    obs, act = BOX4, spaces.Discrete(2)
    assert make_policy(None, obs, act).hidden == (64,)
    assert make_policy([3, 3], obs, act).hidden == (3, 3)
    with pytest.raises(TypeError, match="policy must be"):
        make_policy("mlp", obs, act)
    with pytest.raises(ValueError, match="observations of shape"):
        make_policy(MLPPolicy(spaces.Box(-1, 1, (3,)), act), obs, act)

    class Constant(Policy):
        """A minimal custom policy: always action 1, one (unused) parameter."""

        observation_space, action_space = obs, act
        num_parameters = 1

        def forward(self, members, observations):
            return torch.ones(len(members), dtype=torch.int64)

        def initial_parameters(self, seed=0):
            return torch.zeros(1)

        def config(self):
            return {"type": "constant"}

    problem = GymProblem("CartPole-v1", Constant(), obs_norm=False)
    returns = problem.evaluate_policy(torch.zeros(1), episodes=4)
    assert (returns < 20).all()  # always pushing right fails fast
    assert problem.rollout_single(torch.zeros(1), seed=1000)[0] == returns[0].item()


def test_pickled_policy_still_acts():
    policy = MLPPolicy(BOX4, spaces.Box(-1, 1, (2,), np.float32), hidden=(4,))
    vector = torch.randn(policy.num_parameters)
    copy = pickle.loads(pickle.dumps(policy))
    assert torch.equal(copy.act(vector, torch.ones(4)), policy.act(vector, torch.ones(4)))


def test_normalizer_welford_merge_equals_batch_statistics():
    data = torch.randn(1000, 3, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]) + 5.0
    normalizer = ObservationNormalizer(3)
    for chunk in data.split(137):
        normalizer.update(chunk)
    assert normalizer.count == 1000
    assert torch.allclose(normalizer.mean, data.mean(0), rtol=0, atol=1e-12)
    assert torch.allclose(normalizer.var, data.var(0, unbiased=False), rtol=1e-10)
    stats = ObservationNormalizer(3).stats(4)
    rows = torch.arange(1000) % 4
    for start in range(0, 1000, 100):
        stats.add(data[start:start + 100], rows[start:start + 100])
    fresh = ObservationNormalizer(3)
    fresh.merge_payloads([stats.payload()])
    assert torch.allclose(fresh.mean, data.mean(0), rtol=0, atol=1e-12)
    assert torch.allclose(fresh.var, data.var(0, unbiased=False), rtol=1e-10)
    normalized = normalizer.normalize(data.to(torch.float32))
    assert normalized.dtype == torch.float32
    assert torch.allclose(normalized.mean(0), torch.zeros(3, dtype=torch.float32), atol=1e-4)


def test_stats_of_a_row_do_not_depend_on_which_other_rows_are_active():
    """A member's sums must be bit-identical whether every row of its batch is active
    (one branch) or only some are (another): which one a step takes depends on how the
    population was split into batches (serial vs worker chunks)."""
    obs = torch.randn(200, 4, 4, dtype=torch.float32) * 3.7
    shift = torch.randn(4, dtype=torch.float64)
    everyone = ObservationNormalizer(4).stats(4)
    some = ObservationNormalizer(4).stats(4)
    everyone.shift = some.shift = shift
    for step in obs:
        everyone.add(step)
        some.add(step, torch.arange(4))
    for key in ("counts", "sums", "squares"):
        assert torch.equal(everyone.payload()[key], some.payload()[key]), key


def test_normalizer_identity_before_data_clips_and_round_trips():
    normalizer = ObservationNormalizer((2,), clip=3.0)
    assert torch.equal(normalizer.normalize(torch.tensor([[1.0, -10.0]])), torch.tensor([[1.0, -3.0]]))
    normalizer.update(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    again = ObservationNormalizer.from_config(json.loads(json.dumps(normalizer.to_config())))
    assert torch.equal(again.mean, normalizer.mean) and again.count == 2 and again.clip == 3.0
    state = ObservationNormalizer(2)
    state.load_state_dict(normalizer.state_dict())
    assert torch.equal(state.m2, normalizer.m2)
    with pytest.raises(ValueError, match="observation statistics have 2 values"):
        ObservationNormalizer(3).load_state_dict(normalizer.state_dict())
    with pytest.raises(ValueError, match="clip"):
        ObservationNormalizer(2, clip=0)
    assert policy_config("CartPole-v1", MLPPolicy(BOX4, spaces.Discrete(2)), normalizer)["obs_norm"]["count"] == 2


@pytest.mark.parametrize(
    ("hidden", "activation", "action_space"),
    [
        ((64,), "tanh", spaces.Discrete(2)),  # cols (4 -> 64) then the Discrete(2) difference
        ((64,), "relu", spaces.Discrete(2, start=3)),
        ((), "tanh", spaces.Discrete(2)),  # linear: the difference on the observations
        ((10, 20, 32, 32), "gelu", spaces.Discrete(3)),  # cols, sum_in, bmm, bmm, sum_last
        ((7,), "sigmoid", spaces.Box(-1.0, 2.0, (3,), np.float32)),
    ],
)
def test_batched_forward_is_row_wise_exact_and_select_keeps_rows(hidden, activation, action_space):
    """Each row's actions do not depend on the other rows (what makes batch returns equal
    single-env returns), for every layer layout; ``select`` keeps the chosen rows."""
    policy = MLPPolicy(BOX4, action_space, hidden=hidden, activation=activation)
    generator = torch.Generator().manual_seed(0)
    members = torch.randn(130, policy.num_parameters, generator=generator)
    obs = torch.randn(130, 4, generator=generator) * 2
    bound = policy.bind(members)
    actions = bound(obs)
    for i in range(130):
        assert torch.equal(policy.forward(members[i : i + 1], obs[i : i + 1])[0], actions[i])
        assert torch.equal(policy.act(members[i], obs[i]), actions[i])
    rows = torch.tensor([3, 4, 20, 31, 129])
    assert torch.equal(bound.select(rows)(obs[rows]), actions[rows])
    assert torch.equal(bound(obs), actions)  # scratch buffers reused: same result again
    if isinstance(action_space, spaces.Discrete):
        assert actions.dtype == torch.int64
        logits = torch.stack([policy.to_module(m)(o[None])[0] for m, o in zip(members, obs, strict=True)])
        assert torch.equal(actions, logits.argmax(-1) + action_space.start)


def test_binary_head_ties_pick_the_first_action_like_argmax():
    policy = MLPPolicy(BOX4, spaces.Discrete(2), hidden=())
    vector = torch.zeros(policy.num_parameters)  # equal logits
    assert policy.act(vector, torch.ones(4)).item() == 0
    vector[-1] = 1e-3  # bias of action 1
    assert policy.act(vector, torch.ones(4)).item() == 1
