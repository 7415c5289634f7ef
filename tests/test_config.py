"""TrainConfig, config files and presets: validation, layering, round trips, and the
Python API giving the CLI's weights bit for bit."""

from __future__ import annotations

import json

import pytest
import tomllib
import torch

import pytorch_es
from cli_helpers import assert_one_line_error, run_cli
from pytorch_es.rl.presets import available_presets, default_strategy, defaults_for, find_preset, get_preset
from pytorch_es.training.checkpoint import load_checkpoint
from pytorch_es.training.config import TrainConfig, resolve_config


def test_every_shipped_preset_is_a_valid_config_and_names_its_env_and_result():
    names = [preset.name for preset in available_presets()]
    shipped = {"CartPole-v1", "CartPole-v1-pgpe", "CartPole-v1-snes", "LunarLander-v3", "LunarLander-v3-pgpe"}
    assert shipped <= set(names)
    for preset in available_presets():
        config = resolve_config(preset=preset.name, new_seed=lambda: 1)
        assert config.env_id == preset.env_id and config.strategy.name == preset.algo
        assert preset.measured.get("result") and preset.measured.get("command"), preset.name
        assert find_preset(preset.env_id, preset.algo) is preset


def test_the_cartpole_preset_sets_what_the_first_release_tuned():
    config = resolve_config("CartPole-v1", new_seed=lambda: 1)
    assert (config.strategy.population_size, config.strategy.sigma, config.strategy.lr) == (512, 0.1, 0.2)
    assert config.strategy.optimizer == "sgd" and config.policy.hidden == () and config.target == 475.0
    assert config.problem.max_steps is None and config.generations == 100 and config.origin == "preset CartPole-v1"


def test_an_env_without_preset_takes_the_generic_defaults_and_its_threshold():
    config = resolve_config("Pendulum-v1", new_seed=lambda: 1)
    assert config.origin.startswith("no preset for Pendulum-v1: generic defaults (a linear policy")
    assert config.target is None and config.strategy.population_size == 64 and config.policy.hidden == ()
    # the dataclass defaults are generic.toml's
    assert TrainConfig(env_id="Pendulum-v1", seed=1, target=None) == config
    assert resolve_config("MountainCar-v0", new_seed=lambda: 1).origin == "preset MountainCar-v0"


def test_another_strategy_on_a_preset_env_borrows_the_env_settings_not_the_strategy_ones():
    settings, origin = defaults_for("CartPole-v1", "cma-es")
    assert origin == "preset CartPole-v1 with cma-es's generic settings"
    assert settings["strategy"]["population_size"] == 512 and settings["strategy"]["optimizer"] == "none"
    assert settings["policy"]["hidden"] == []
    lander, origin = defaults_for("LunarLander-v3", "snes")  # the env's own settings come along
    assert origin == "preset LunarLander-v3 with snes's generic settings"
    assert lander["problem"]["episodes_per_member"] == 4 and lander["target"] == 200.0
    assert lander["strategy"]["fitness_shaping"] == "nes" and lander["strategy"]["lr"] == 1.0  # snes's generic


def test_a_strategy_with_its_own_preset_on_the_env_takes_that_preset():
    """``pytorch-es train LunarLander-v3 --algo pgpe`` trains with ``LunarLander-v3-pgpe``."""
    config = resolve_config("LunarLander-v3", overrides={"strategy": {"name": "pgpe"}}, new_seed=lambda: 1)
    assert config.origin == "preset LunarLander-v3-pgpe" and config.strategy.name == "pgpe"
    assert (config.strategy.sigma, config.strategy.lr, config.strategy.optimizer) == (0.2, 0.1, "clipup")
    assert config.problem.episodes_per_member == 4 and config.problem.obs_norm


def test_an_env_whose_own_preset_is_not_openai_es_trains_with_that_strategy():
    """``pytorch-es train Swimmer-v5`` takes its preset (ARS) without ``--algo``; the ARS preset
    sits on ARS's generic settings (no optimizer, no shaping); ``--algo openai-es`` says why it
    gets the generic defaults."""
    assert default_strategy("Swimmer-v5") == "ars" and default_strategy("Pendulum-v1") == "openai-es"
    assert default_strategy("MountainCar-v0") == "cma-es"
    config = resolve_config("Swimmer-v5", new_seed=lambda: 1)
    assert config.origin == "preset Swimmer-v5" and config.strategy.name == "ars"
    assert config.strategy.optimizer is None and config.strategy.fitness_shaping is None
    assert config.strategy.options["top_directions"] == 1 and config.target == 325.0
    other = resolve_config("Swimmer-v5", overrides={"strategy": {"name": "openai-es"}}, new_seed=lambda: 1)
    assert other.origin.startswith("no openai-es preset for Swimmer-v5 (its preset is for ars): generic defaults")
    assert other.strategy.population_size == 64 and other.target == 360.0  # Gymnasium's threshold


def test_layers_file_then_options_over_the_preset(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text('env_id = "CartPole-v1"\n[strategy]\nsigma = 0.3\nlr = 0.5\n')
    config = resolve_config(config=path, overrides={"strategy": {"lr": 0.7}}, new_seed=lambda: 9)
    assert (config.strategy.sigma, config.strategy.lr, config.strategy.population_size) == (0.3, 0.7, 512)
    assert config.seed == 9


def test_toml_and_json_round_trips_are_exact():
    config = resolve_config("CartPole-v1", overrides={"strategy": {"name": "cem", "elite_ratio": 0.25}},
                            new_seed=lambda: 5)
    assert TrainConfig.from_dict(tomllib.loads(config.to_toml())) == config
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.strategy.kwargs()["elite_ratio"] == 0.25


@pytest.mark.parametrize(
    ("data", "error", "fragments"),
    [
        ({"env_id": "CartPole-v1", "strategy": {"sigmaa": 0.1}}, ValueError, ("unknown key 'strategy.sigmaa'",
                                                                              "did you mean 'sigma'")),
        ({"env_id": "CartPole-v1", "genrations": 3}, ValueError, ("unknown key 'genrations'", "'generations'")),
        ({"env_id": "CartPole-v1", "strategy": {"name": "cem", "elite_rato": 0.1}}, ValueError, ("'elite_ratio'",)),
        ({"env_id": "CartPole-v1", "generations": "10"}, TypeError, ("generations must be an integer", "str")),
        ({"env_id": "CartPole-v1", "tensorboard": 1}, TypeError, ("tensorboard must be true or false",)),
        ({"env_id": "CartPole-v1", "seed": True}, TypeError, ("seed must be an integer",)),
        ({"env_id": "CartPole-v1", "strategy": {"sigma": -1.0}}, ValueError, ("strategy.sigma must be a positive",)),
        ({"env_id": "CartPole-v1", "evaluation": {"backend": "gpu"}}, ValueError, ("one of auto, serial",)),
        ({"env_id": "CartPole-v1", "policy": {"hidden": 64}}, TypeError, ("policy.hidden must be a list",)),
        ({"env_id": "CartPole-v1", "policy": "mlp"}, TypeError, ("policy must be a table",)),
        ({"env_id": "CartPole-v1", "generations": "none"}, ValueError, ("generations must be set",)),
        ({"generations": 3}, ValueError, ("missing required key 'env_id'",)),
    ],
)
def test_bad_configs_name_the_key_and_what_was_expected(data, error, fragments):
    with pytest.raises(error) as raised:
        TrainConfig.from_dict(data, source="f.toml")
    for fragment in ("f.toml", *fragments):
        assert fragment in str(raised.value)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        TrainConfig(env_id="CartPole-v1", seed=-1)
    with pytest.raises(TypeError, match="strategy must be a table"):
        TrainConfig(env_id="CartPole-v1", strategy=3)


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown preset 'CartPole-v2' \(did you mean CartPole-v1"):
        get_preset("CartPole-v2")


# ------------------------------------------------------------------------ the CLI
def test_print_config_shows_the_resolved_config_and_trains_nothing(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "CartPole-v1", "--seed", "4", "--sigma", "0.3", "--print-config",
                             "--out", str(tmp_path / "x"))
    assert code == 0, err
    data = tomllib.loads(out)
    assert data["seed"] == 4 and data["strategy"]["sigma"] == 0.3 and data["strategy"]["population_size"] == 512
    assert "preset CartPole-v1" in out.splitlines()[0] and not (tmp_path / "x").exists()


def test_set_gives_any_config_key_from_the_command_line(capsys):
    """``--set KEY=VALUE`` reaches keys without an option (a strategy's own keyword), parses TOML
    values, and loses to a named option of the same key; a bad key or form is one line."""
    code, out, err = run_cli(capsys, "train", "Swimmer-v5", "--set", "strategy.top_directions=2", "--set",
                             "strategy.population_size=8", "--population", "6", "--set", "policy.hidden=[4]",
                             "--set", "problem.max_steps=none", "--print-config")
    assert code == 0, err
    data = tomllib.loads(out)
    assert data["strategy"]["top_directions"] == 2 and data["strategy"]["population_size"] == 6
    assert data["policy"]["hidden"] == [4] and data["problem"]["max_steps"] == "none"
    code, _, err = run_cli(capsys, "train", "Swimmer-v5", "--set", "strategy.top_direction=2", "--print-config")
    assert_one_line_error(code, err, "unknown key 'strategy.top_direction'", "did you mean 'top_directions'")
    code, _, err = run_cli(capsys, "train", "Swimmer-v5", "--set", "top-directions", "--print-config")
    assert_one_line_error(code, err, "--set", "expected KEY=VALUE", "'top-directions'")


def test_a_copied_preset_trains_and_config_json_replays_it_bit_for_bit(capsys, tmp_path):
    code, preset_text, _ = run_cli(capsys, "presets", "CartPole-v1")
    assert code == 0 and tomllib.loads(preset_text)["env_id"] == "CartPole-v1"
    edited = tmp_path / "edited.toml"
    edited.write_text(preset_text.replace("population_size = 512", "population_size = 16")
                      .replace("generations = 100", "generations = 2").replace("test_episodes = 100",
                                                                              "test_episodes = 2"))
    first, again = tmp_path / "first", tmp_path / "again"
    code, _, err = run_cli(capsys, "train", "--config", str(edited), "--seed", "3", "--out", str(first), "--quiet")
    assert code in (0, 3), err
    config = json.loads((first / "config.json").read_text())
    assert config["strategy"]["population_size"] == 16 and config["generations"] == 2
    code, _, err = run_cli(capsys, "train", "--config", str(first / "config.json"), "--out", str(again), "--quiet")
    assert code in (0, 3), err
    a, b = (load_checkpoint(d / "checkpoint.pt")["state"]["strategy"]["center"] for d in (first, again))
    assert torch.equal(a, b)


def test_python_train_gives_the_cli_weights_bit_for_bit(capsys, tmp_path):
    argv = ["train", "CartPole-v1", "--seed", "11", "--population", "8", "--generations", "2", "--target", "none",
            "--test-episodes", "2", "--hidden", "4", "--quiet", "--out", str(tmp_path / "cli")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    config = pytorch_es.resolve_config("CartPole-v1", overrides={
        "seed": 11, "generations": 2, "target": "none", "test_episodes": 2, "out": str(tmp_path / "py"),
        "strategy": {"population_size": 8}, "policy": {"hidden": [4]}})
    outcome = pytorch_es.train(config)
    assert outcome.result.generation == 2 and outcome.directory == tmp_path / "py"
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt")["state"]["strategy"]["center"] for d in ("cli", "py"))
    assert torch.equal(a, b)
    cli_config = json.loads((tmp_path / "cli" / "config.json").read_text())
    py_config = json.loads((tmp_path / "py" / "config.json").read_text())
    for data in (cli_config, py_config):
        data.pop("command"), data.pop("out")
    assert cli_config == py_config


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["train", "--config", "nope.toml"], ("--config 'nope.toml': no such file",)),
        (["train", "CartPole-v1", "--preset", "CartPole-v9"], ("unknown preset 'CartPole-v9'", "did you mean")),
        (["train", "CartPole-v1", "--preset", "CartPole-v1", "--algo", "snes"], ("tuned for openai-es",)),
    ],
)
def test_bad_config_input_is_one_line(capsys, tmp_path, argv, fragments):
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "x"))
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("env_id = CartPole", ("is not TOML",)),
        ('env_id = "CartPole-v1"\n[strategy]\npopulaton_size = 8\n', ("unknown key 'strategy.populaton_size'",
                                                                      "did you mean 'population_size'")),
        ('env_id = "CartPole-v1"\ngenerations = "ten"\n', ("generations must be an integer", "str")),
        ("generations = 3\n", ("no env id",)),
    ],
)
def test_bad_config_files_are_one_line(capsys, tmp_path, text, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", str(path), "--out", str(tmp_path / "x"))
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "x").exists()


def test_presets_lists_every_preset_with_its_result(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    for preset in available_presets():
        assert any(line.startswith(preset.name + " ") and preset.measured["result"] in line
                   for line in out.splitlines())


def test_resume_refuses_config_and_preset(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path), "--config", "x.toml")
    assert code == 2 and "applies to a new run" in err


def test_python_trains_from_a_file_and_resumes_like_the_cli(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(f'env_id = "CartPole-v1"\nseed = 2\ngenerations = 2\ntarget = "none"\ntest_episodes = 2\n'
                    f'out = "{tmp_path / "run"}"\n[strategy]\npopulation_size = 8\n')
    outcome = pytorch_es.train(path)
    assert outcome.trained and outcome.result.generation == 2 and outcome.config.strategy.sigma == 0.1
    with pytorch_es.Run.resume(tmp_path / "run", overrides={"generations": 4}) as run:
        assert run.trainer.generation == 2 and run.config.generations == 4
        assert run.train().result.generation == 4
    with pytest.raises(ValueError, match="only generations, target"), pytorch_es.Run.resume(
            tmp_path / "run", overrides={"strategy": {"sigma": 0.5}}):
        pass
    straight = pytorch_es.train(resolve_config(config=path, overrides={"generations": 4,
                                                                        "out": str(tmp_path / "straight")}))
    a, b = (load_checkpoint(d / "checkpoint.pt")["state"]["strategy"]["center"]
            for d in (tmp_path / "run", straight.directory))
    assert torch.equal(a, b)


def test_a_preset_borrowed_for_another_env_warns_and_takes_that_envs_target():
    with pytest.warns(UserWarning, match="tuned and measured on LunarLander-v3, not CartPole-v1"):
        config = resolve_config("CartPole-v1", preset="LunarLander-v3", new_seed=lambda: 1)
    assert config.target == 475.0 and config.problem.episodes_per_member == 4
    assert config.origin == "preset LunarLander-v3 (tuned for LunarLander-v3, not CartPole-v1)"
