"""Torch-native envs against Gymnasium: same starts, same actions, same trajectories."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pytorch_es.rl.torch_envs import TORCH_ENVS, check_torch_env_id, make_torch_env

SEEDS = [0, 1, 2, 3, 7, 11, 123, 2024]


def _heuristic(env_id: str):
    """A policy (gymnasium obs, rng) -> action that reaches termination, mixed with random actions."""

    def act(obs: np.ndarray, rng: np.random.Generator):
        if env_id == "CartPole-v1":
            return int(obs[2] + 0.5 * obs[3] > 0) if rng.random() < 0.9 else int(rng.integers(2))
        if env_id == "Acrobot-v1":
            return 2 if obs[5] > 0 else 0  # pump energy with the second link's velocity
        if env_id == "MountainCar-v0":
            return 2 if obs[1] >= 0 else 0
        if env_id == "MountainCarContinuous-v0":
            return np.array([1.3 if obs[1] >= 0 else -1.3], np.float32) * np.float32(rng.uniform(0.5, 1.2))
        if env_id == "Pendulum-v1":
            return rng.uniform(-3.0, 3.0, size=(1,)).astype(np.float32)  # outside the bounds, clipped
        raise KeyError(env_id)

    return act


def _drive(env_id: str, dtype: torch.dtype, seeds=SEEDS, reinject: bool = False):
    """Step Gymnasium envs and one torch env with the same actions; collect both sides.

    ``reinject``: before each step the torch env gets the Gymnasium states (one-step
    errors only: float32 trajectories of chaotic systems drift apart by design)."""
    rng = np.random.default_rng(5)
    act = _heuristic(env_id)
    envs = [gym.make(env_id) for _ in seeds]
    torch_env = make_torch_env(env_id, len(seeds), dtype=dtype)
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)]
    torch_obs = torch_env.reset(seeds=seeds)
    active = [True] * len(seeds)
    returns = np.zeros(len(seeds))
    torch_returns = np.zeros(len(seeds))
    lengths = [0] * len(seeds)
    worst = {"obs": 0.0, "state": 0.0, "reward": 0.0}
    ends: list[tuple[bool, bool]] = [(False, False)] * len(seeds)
    discrete = isinstance(envs[0].action_space, gym.spaces.Discrete)
    last = [0 if discrete else np.zeros(1, np.float32) for _ in seeds]
    while any(active):
        actions = [act(o, rng) if a else last[j] for j, (o, a) in enumerate(zip(obs, active, strict=True))]
        last = actions
        batch = torch.tensor(actions) if discrete else torch.from_numpy(np.stack(actions))
        if reinject:
            states = np.stack([np.asarray(env.unwrapped.state, np.float64) for env in envs])
            torch_env.state = torch.from_numpy(states).to(dtype)
        t_obs, t_rew, t_term, t_trunc = torch_env.step(batch)
        for j, env in enumerate(envs):
            if not active[j]:
                continue
            obs[j], reward, terminated, truncated, _ = env.step(actions[j])
            lengths[j] += 1
            returns[j] += reward
            torch_returns[j] += float(t_rew[j])
            worst["obs"] = max(worst["obs"], float(np.abs(obs[j] - t_obs[j].numpy()).max()))
            state = np.asarray(env.unwrapped.state, np.float64)
            worst["state"] = max(worst["state"], float(np.abs(state - torch_env.state[j].numpy()).max()))
            worst["reward"] = max(worst["reward"], abs(reward - float(t_rew[j])))
            assert (bool(t_term[j]), bool(t_trunc[j])) == (terminated, truncated), (env_id, j, lengths[j])
            if terminated or truncated:
                active[j] = False
                ends[j] = (terminated, truncated)
    del torch_obs
    return worst, returns, torch_returns, lengths, ends


# Bit-exact here: CartPole's trajectories (the same arithmetic on the same float64 values, no
# transcendental function of the state). MountainCar and MountainCarContinuous take cos(3x):
# torch's vectorised float64 cos and the platform libm's agree bit for bit on some CPUs and by
# ~1e-18 on others (AVX-512), so they are exact to 1e-15 and end their episodes at the same
# steps. Acrobot and Pendulum agree to a few ulps per step (Acrobot's chaos grows them to ~1e-8
# over an episode): torch's float64 sin/cos are not the platform libm's, and NumPy's float32
# *scalar* ``u**2`` (Pendulum's cost) is not always correctly rounded (1 float32 ulp of the torque
# term, ~3e-11).
EXACT = {"CartPole-v1"}
NEARLY_EXACT = {"MountainCar-v0", "MountainCarContinuous-v0"}


@pytest.mark.parametrize("env_id", list(TORCH_ENVS))
def test_float64_trajectories_match_gymnasium(env_id):
    worst, returns, torch_returns, lengths, ends = _drive(env_id, torch.float64)
    if env_id in EXACT:
        assert worst == {"obs": 0.0, "state": 0.0, "reward": 0.0}
        assert np.array_equal(torch_returns, returns)
    if env_id in NEARLY_EXACT:
        assert max(worst.values()) <= 1e-15, worst
        np.testing.assert_allclose(torch_returns, returns, rtol=0, atol=1e-12)
    assert worst["state"] <= 1e-6, worst
    assert worst["obs"] <= 1e-6, worst
    assert worst["reward"] <= 1e-9, worst
    np.testing.assert_allclose(torch_returns, returns, rtol=0, atol=1e-8)
    assert min(lengths) >= 1 and all(t or tr for t, tr in ends)


@pytest.mark.parametrize("env_id", list(TORCH_ENVS))
def test_float32_trajectories_match_to_float_tolerance(env_id):
    worst, returns, torch_returns, _lengths, _ = _drive(env_id, torch.float32, SEEDS[:4], reinject=True)
    assert worst["state"] <= 2e-5, worst
    assert worst["obs"] <= 2e-5, worst
    np.testing.assert_allclose(torch_returns, returns, rtol=1e-5, atol=1e-4)


def test_terminations_and_truncations_are_exercised():
    """The heuristics reach both ends of an episode, so the comparisons above test them."""
    seen = {}
    for env_id in TORCH_ENVS:
        _, _, _, _, ends = _drive(env_id, torch.float64, SEEDS[:3])
        seen[env_id] = ({t for t, _ in ends}, {t for _, t in ends})
    assert True in seen["CartPole-v1"][0]
    assert True in seen["MountainCar-v0"][0]
    assert True in seen["MountainCarContinuous-v0"][0]
    assert True in seen["Acrobot-v1"][0]
    assert seen["Pendulum-v1"] == ({False}, {True})  # 200-step TimeLimit only


@pytest.mark.parametrize("env_id", list(TORCH_ENVS))
def test_seeded_starts_equal_gymnasium_resets(env_id):
    env = make_torch_env(env_id, len(SEEDS) + 2, dtype=torch.float64)
    seeds = [*SEEDS, SEEDS[0], SEEDS[1]]  # repeated seeds share a start
    obs = env.reset(seeds=seeds)
    single = gym.make(env_id)
    for j, seed in enumerate(seeds):
        expected, _ = single.reset(seed=seed)
        assert np.array_equal(obs[j].numpy(), expected)
        assert np.array_equal(env.state[j].numpy(), np.asarray(single.unwrapped.state, np.float64))


@pytest.mark.parametrize("env_id", list(TORCH_ENVS))
def test_device_starts_lie_in_gymnasium_reset_ranges(env_id):
    env = make_torch_env(env_id, 4096)
    generator = torch.Generator().manual_seed(0)
    env.reset(generator=generator)
    state = env.state.double()
    gym_env = make_torch_env(env_id, 256, dtype=torch.float64)
    gym_env.reset(seeds=list(range(256)))
    low, high = gym_env.state.min(0).values, gym_env.state.max(0).values
    spread = (high - low).clamp(min=1e-12)
    assert bool((state.min(0).values >= low - 0.05 * spread).all())
    assert bool((state.max(0).values <= high + 0.05 * spread).all())
    again = make_torch_env(env_id, 4096)
    again.reset(generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.state, env.state)


def test_time_limit_and_select():
    env = make_torch_env("Pendulum-v1", 3, max_episode_steps=5)
    env.reset(seeds=[0, 1, 2])
    for step in range(5):
        _, _, terminated, truncated = env.step(torch.zeros(3, 1))
        assert not terminated.any()
        assert bool(truncated.all()) == (step == 4)
    env.select(torch.tensor([2, 0]))
    assert env.num_envs == 2 and env.state.shape == (2, 2)


def test_unknown_torch_env_lists_the_supported_ones():
    with pytest.raises(ValueError, match="CartPole-v1, Acrobot-v1, Pendulum-v1, MountainCar-v0"):
        check_torch_env_id("LunarLander-v3")
    with pytest.raises(ValueError, match="dtype"):
        make_torch_env("CartPole-v1", 2, dtype=torch.float16)
    with pytest.raises(ValueError, match="num_envs"):
        make_torch_env("CartPole-v1", 0)
    env = make_torch_env("CartPole-v1", 2)
    with pytest.raises(ValueError, match="2 sub-envs"):
        env.reset(seeds=[1])
    with pytest.raises(ValueError, match="one of"):
        env.reset(seeds=[1, 2], generator=torch.Generator())
