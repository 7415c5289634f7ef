"""``reward_shift``: training rewards lose ``shift`` per step; greedy tests and evaluations never do."""

from __future__ import annotations

import pytest
import torch

from pytorch_es import OpenAIES
from pytorch_es.rl import GymProblem
from pytorch_es.rl.envs import _importable, survival_bonus

needs_mujoco = pytest.mark.skipif(not _importable("mujoco"), reason="needs the mujoco extra")


def _population(problem: GymProblem, size: int = 8, sigma: float = 0.3, seed: int = 4):
    center = problem.initial_center(seed)
    strategy = OpenAIES(center, population_size=size, sigma=sigma, seed=seed)
    strategy.generation = 2
    return strategy.ask()


def _check_shift_applies_to_training_only(env_id: str, shift: float, **kwargs) -> None:
    plain = GymProblem(env_id, [], obs_norm=False, **kwargs)
    shifted = GymProblem(env_id, [], obs_norm=False, reward_shift=shift, **kwargs)
    population = _population(plain)
    true = plain.evaluate(population, range(len(population)))
    training = shifted.evaluate(population, range(len(population)))
    assert training.env_steps == true.env_steps
    seeds = plain.episode_seeds(population.noise.seed, population.generation)
    lengths = []
    for index in range(len(population)):  # member i scores R_i - shift * T_i, exactly
        episode_return, steps = plain.rollout_single(population.member(index), seeds[0])
        lengths.append(steps)
        assert true.rewards[index].item() == episode_return
        assert training.rewards[index].item() == episode_return - shift * steps
    assert len(set(lengths)) > 1  # episodes of different lengths: the shift changes the ranking's input
    assert not torch.equal(training.rewards, true.rewards)
    vector = population.member(0)
    assert torch.equal(shifted.evaluate_policy(vector, episodes=4, seed=7),
                       plain.evaluate_policy(vector, episodes=4, seed=7))  # tests use the true reward
    assert shifted.rollout_single(vector, 7) == plain.rollout_single(vector, 7)


def test_the_shift_changes_training_rewards_but_not_evaluations_on_cartpole():
    with pytest.warns(UserWarning, match="CartPole-v1, which pays no per-step survival bonus"):
        _check_shift_applies_to_training_only("CartPole-v1", 0.5)


@needs_mujoco
def test_the_shift_changes_training_rewards_but_not_evaluations_on_hopper(recwarn):
    _check_shift_applies_to_training_only("Hopper-v5", 1.0, max_steps=40)
    assert not [w for w in recwarn if "survival bonus" in str(w.message)]


def test_no_shift_is_the_default_and_bad_shifts_are_refused():
    problem = GymProblem("CartPole-v1", [])
    assert problem.reward_shift == 0.0 and "reward_shift" not in repr(problem)
    with pytest.raises(TypeError, match="reward_shift must be a number"):
        GymProblem("CartPole-v1", [], reward_shift="1")
    with pytest.raises(ValueError, match="reward_shift must be finite"):
        GymProblem("CartPole-v1", [], reward_shift=float("inf"))


def test_survival_bonus_of_envs_without_one():
    assert survival_bonus("CartPole-v1") is None
    assert survival_bonus("LunarLander-v3") is None


@needs_mujoco
def test_survival_bonus_of_the_locomotion_envs():
    assert survival_bonus("Hopper-v5") == 1.0
    assert survival_bonus("Walker2d-v5") == 1.0
    assert survival_bonus("Ant-v5") == 1.0
    assert survival_bonus("Humanoid-v5") == 5.0
    assert survival_bonus("HalfCheetah-v5") is None and survival_bonus("Swimmer-v5") is None


def test_the_cli_warns_once_for_a_shift_on_an_env_without_survival_bonus(capsys, tmp_path):
    from cli_helpers import run_cli

    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--reward-shift", "1", "--generations", "1",
                           "--population", "8", "--test-episodes", "2", "--quiet", "--target", "none",
                           "--out", str(tmp_path / "run"))
    assert code == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pytorch-es train: warning: reward_shift 1 on CartPole-v1")


def _as_release_0_2(config: dict) -> dict:
    """A nested config as release 0.2 wrote it: flat, with the old key names."""
    from pytorch_es.training.config import LEGACY_KEYS, flatten_config

    flat = flatten_config(config)
    old = {key: value for key, value in flat.items() if "." not in key and key != "out"}
    old.update({legacy: flat[key] for legacy, key in LEGACY_KEYS.items()})
    return old


def test_a_run_from_before_the_option_resumes_with_no_shift(capsys, tmp_path):
    import json

    from cli_helpers import run_cli
    from pytorch_es.training.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    small = ["--population", "8", "--test-episodes", "2", "--quiet", "--target", "none", "--hidden", "none"]
    code, _, err = run_cli(capsys, "train", "CartPole-v1", *small, "--generations", "1", "--out", str(run))
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["problem"]["reward_shift"] == 0.0
    old = _as_release_0_2(config)
    del old["reward_shift"], old["algo"]  # as an older version wrote it (flat, before --reward-shift, --algo)
    (run / "config.json").write_text(json.dumps(old))
    payload = load_checkpoint(run / "checkpoint.pt")
    save_checkpoint(run / "checkpoint.pt", payload["state"], old, keep_previous=False)
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", "2", "--reward-shift", "0",
                           "--quiet")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["problem"]["reward_shift"] == 0.0 and config["strategy"]["population_size"] == 8
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--reward-shift", "1", "--quiet")
    assert code != 0 and "--reward-shift: checkpoint has 0.0, this run has 1.0" in err
