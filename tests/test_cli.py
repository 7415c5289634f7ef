"""The ``pytorch-es`` command end to end (real Gymnasium, real files), and its bad input.

These tests call ``main()`` in this process (fast); the resume/SIGKILL/SIGINT tests in
test_cli_resume.py run the real ``python -m pytorch_es``.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_one_line_error, modules_after, run_cli
from pytorch_es.cli import main
from pytorch_es.training import load_checkpoint, read_metrics

# Small CartPole run: a couple of seconds.
TRAIN = ["--seed", "1", "--population", "32", "--generations", "6", "--test-episodes", "10", "--quiet"]
TRAIN += ["--target", "none", "--hidden", "16"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A trained CartPole run directory (shared; tests copy it before damaging it)."""
    directory = tmp_path_factory.mktemp("cli") / "cartpole"
    argv = ["train", "CartPole-v1", *TRAIN, "--out", str(directory), "--tensorboard"]
    argv += ["--checkpoint-every", "4"]
    assert main(argv) == 0
    return directory


@pytest.fixture
def copy_of_run(run_dir, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if code runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def live_payload(marker: Path) -> bytes:
    data = pickle.dumps(Payload(marker))
    probe = marker.with_name("probe")  # prove the payload is live when plain pickle loads it
    pickle.loads(pickle.dumps(Payload(probe))).close()
    assert probe.exists()
    probe.unlink()
    return data


# ------------------------------------------------------------------ end to end
def test_train_writes_the_run_directory(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "metrics.csv", "policy.safetensors", "policy.json", "checkpoint.pt"} <= names
    assert "checkpoint.prev.pt" in names and "tensorboard" in names
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "CartPole-v1" and config["strategy"]["population_size"] == 32 and config["seed"] == 1
    assert config["target"] is None
    rows = read_metrics(run_dir / "metrics.csv")
    assert [r["generation"] for r in rows] == list(range(1, 7))
    assert all(r["env_steps"] > 0 and r["test_reward"] is not None for r in rows)
    policy = json.loads((run_dir / "policy.json").read_text())
    assert policy["env_id"] == "CartPole-v1" and policy["policy"]["hidden"] == [16]
    best = max(r["test_reward"] for r in rows)
    assert policy["test_reward"] == best
    state = load_checkpoint(run_dir / "checkpoint.pt")["state"]
    assert state["generation"] == 6 and len(state["metrics"]) == 6
    assert (run_dir / "config.json").stat().st_mode & 0o044  # readable by others, like any file


def test_eval_json_prints_one_line(run_dir, capsys):
    code, out, err = run_cli(capsys, "eval", str(run_dir), "--episodes", "5", "--seed", "1000", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"env_id", "episodes", "mean_return", "std_return"}
    assert result["env_id"] == "CartPole-v1" and result["episodes"] == 5
    assert 8 <= result["mean_return"] <= 500 and result["std_return"] >= 0
    code, out, _ = run_cli(capsys, "eval", str(run_dir), "--episodes", "5")
    assert code == 0 and "mean return" in out and "1000..1004" in out


def test_play_records_a_gif_without_a_display(run_dir, tmp_path, capsys):
    import imageio.v3 as iio

    gif = tmp_path / "agent.gif"
    code, out, err = run_cli(capsys, "play", str(run_dir), "--gif", str(gif), "--episodes", "2", "--max-steps", "60")
    assert code == 0, err
    assert "episode 2:" in out and err == ""
    frames = iio.imread(gif, index=None)
    assert frames.ndim == 4 and frames.shape[0] > 1 and frames.shape[-1] in (3, 4)
    assert frames.shape[1:3] == (200, 300)  # half of CartPole's 400x600
    assert gif.stat().st_size < 2_000_000


def test_plot_writes_a_valid_nonblank_png(run_dir, tmp_path, capsys):
    from PIL import Image

    out_png = tmp_path / "curves.png"
    code, _, err = run_cli(capsys, "plot", str(run_dir), str(run_dir), "-o", str(out_png))
    assert code == 0, err
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out_png) as image:
        image.verify()
    with Image.open(out_png) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert pixels.var() > 100  # not blank: lines, bands and text on white
    assert (pixels < 200).mean() > 0.01


# ------------------------------------------------------------------- bad input
def test_default_target_is_the_env_threshold(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--generations", "0", "--quiet", "--out", str(tmp_path))
    assert code == 0, err
    assert json.loads((tmp_path / "config.json").read_text())["target"] == 475.0


def test_default_run_directories_are_distinct(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, out, err = run_cli(capsys, "train", "CartPole-v1", "--generations", "0")
        assert code == 0, err
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(name.startswith("CartPole-v1-") for name in runs)
    assert "run directory runs/CartPole-v1-" in out


def test_unknown_env_id_suggests_close_names(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "CartPoel-v1", "--out", str(tmp_path / "x"))
    assert_one_line_error(code, err, "unknown Gymnasium env id 'CartPoel-v1'", "CartPole-v1")


def test_unsupported_spaces_are_named(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "Blackjack-v1", "--out", str(tmp_path / "x"))
    assert_one_line_error(code, err, "Tuple observation space")
    code, _, err = run_cli(capsys, "train", "CliffWalking-v1", "--out", str(tmp_path / "y"))
    assert_one_line_error(code, err, "Discrete observation space")


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--population", "1"], "--population: must be >= 2, got 1"),
        (["--sigma", "0"], "--sigma: must be > 0"),
        (["--lr", "nan"], "--lr: must be > 0"),
        (["--hidden", "64,x"], "--hidden: takes layer sizes"),
        (["--episodes", "0"], "--episodes: must be >= 1"),
        (["--backend", "gpu"], "--backend: invalid choice"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(capsys, tmp_path, option, fragment):
    code, _, err = run_cli(capsys, "train", "CartPole-v1", *option, "--out", str(tmp_path / "x"))
    assert code == 2
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "x").exists()


def test_train_without_env_id_or_resume(capsys):
    code, _, err = run_cli(capsys, "train")
    assert_one_line_error(code, err, "needs an ENV_ID")


def test_train_refuses_to_overwrite_a_run(capsys, copy_of_run):
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--out", str(copy_of_run))
    assert_one_line_error(code, err, "already holds a run", "--resume")


@pytest.mark.parametrize("command", ["eval", "play"])
def test_missing_directory(capsys, tmp_path, command):
    code, _, err = run_cli(capsys, command, str(tmp_path / "nope"))
    assert_one_line_error(code, err, "does not exist", "nope")


@pytest.mark.parametrize("command", ["eval", "play"])
def test_directory_without_a_policy(capsys, tmp_path, command):
    code, _, err = run_cli(capsys, command, str(tmp_path))
    assert_one_line_error(code, err, "holds no trained policy")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_weights_are_named(capsys, copy_of_run, damage):
    weights = copy_of_run / "policy.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x07" * 300, "empty": b""}[damage])
    code, _, err = run_cli(capsys, "eval", str(copy_of_run), "--episodes", "2")
    assert_one_line_error(code, err, "policy.safetensors", "corrupted")


def test_weights_of_another_architecture_show_the_shapes(capsys, copy_of_run):
    from safetensors.torch import save_file

    save_file(
        {
            "layers.0.weight": torch.zeros(8, 64),
            "layers.0.bias": torch.zeros(64),
            "layers.1.weight": torch.zeros(64, 4),
            "layers.1.bias": torch.zeros(4),
        },
        str(copy_of_run / "policy.safetensors"),
    )
    code, _, err = run_cli(capsys, "eval", str(copy_of_run), "--episodes", "2")
    assert_one_line_error(code, err, "(8, 64)", "(4, 16)", "policy.safetensors")


def test_a_pickle_placed_as_weights_is_refused_without_running(capsys, copy_of_run, tmp_path):
    marker = tmp_path / "pwned"
    (copy_of_run / "policy.safetensors").write_bytes(live_payload(marker))
    code, _, err = run_cli(capsys, "eval", str(copy_of_run), "--episodes", "2")
    assert_one_line_error(code, err, "policy.safetensors")
    code, _, err = run_cli(capsys, "play", str(copy_of_run), "--gif", str(tmp_path / "a.gif"))
    assert_one_line_error(code, err, "policy.safetensors")
    assert not marker.exists()


def test_a_corrupted_policy_json_is_named(capsys, copy_of_run):
    (copy_of_run / "policy.json").write_text('{"format": "pytorch-es/policy", "env_')
    code, _, err = run_cli(capsys, "eval", str(copy_of_run))
    assert_one_line_error(code, err, "policy.json", "not valid JSON")


@pytest.mark.parametrize(
    ("gif", "fragment"),
    [
        ("no/such/dir/a.gif", "does not exist"),
        ("agent.png", "must end in .gif"),
        (".", "is a directory"),
    ],
)
def test_unwritable_gif_path(capsys, run_dir, tmp_path, monkeypatch, gif, fragment):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "play", str(run_dir), "--gif", gif)
    assert_one_line_error(code, err, fragment)
    assert "episode" not in out  # checked before playing


def test_gif_in_a_read_only_directory(capsys, run_dir, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "play", str(run_dir), "--gif", str(locked / "a.gif"))
    finally:
        locked.chmod(0o700)
    assert_one_line_error(code, err, "permission denied")


def test_plot_of_a_directory_without_metrics(capsys, tmp_path):
    code, _, err = run_cli(capsys, "plot", str(tmp_path), "-o", str(tmp_path / "a.png"))
    assert_one_line_error(code, err, "has no metrics.csv")
    code, _, err = run_cli(capsys, "plot", str(tmp_path / "nope"), "-o", str(tmp_path / "a.png"))
    assert_one_line_error(code, err, "does not exist")


# ------------------------------------------------------------------- start-up
def test_help_and_usage_errors_do_not_import_torch():
    imported = modules_after(
        ["--help"],
        ["train", "--help"],
        ["--version"],
        ["frobnicate"],  # unknown command
        ["train", "CartPole-v1", "--population", "1"],
        ["train", "CartPole-v1", "--timeout", "0"],
        ["train", "CartPole-v1", "--backend", "serial", "--timeout", "5"],
        ["train"],  # no ENV_ID
    )
    assert imported == {"torch": False, "torch._dynamo": False}


def test_eval_and_plot_do_not_import_dynamo(run_dir, tmp_path):
    imported = modules_after(
        ["eval", str(run_dir), "--episodes", "2"],
        ["plot", str(run_dir), "-o", str(tmp_path / "curve.png")],
    )
    assert imported == {"torch": True, "torch._dynamo": False}  # dynamo: ~2 s, for optimizers only
    assert (tmp_path / "curve.png").exists()


def test_the_package_keeps_its_public_names():
    import pytorch_es

    namespace: dict = {}
    exec("from pytorch_es import *", namespace)
    assert set(pytorch_es.__all__) <= set(namespace) and set(pytorch_es.__all__) <= set(dir(pytorch_es))
    assert pytorch_es.OpenAIES.__module__ == "pytorch_es.strategies.openai_es"
    assert pytorch_es.core.flatten is pytorch_es.flatten  # submodules as attributes, as before
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytorch_es.nope  # noqa: B018


# -------------------------------------------------------------------- --timeout
@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--timeout", "0"], "argument --timeout: must be > 0, got 0"),
        (["--timeout", "-1"], "argument --timeout: must be > 0, got -1"),
        (["--timeout", "abc"], "argument --timeout: must be a number, got 'abc'"),
        (["--timeout", "inf"], "argument --timeout: must be > 0"),
        (["--backend", "serial", "--timeout", "5"], "--timeout applies to --backend processes and ray"),
        (["--backend", "threads", "--timeout", "5"], "a threads evaluation runs in this process"),
    ],
)
def test_bad_timeouts_are_one_line_usage_errors(capsys, tmp_path, option, fragment):
    code, _, err = run_cli(capsys, "train", "CartPole-v1", *option, "--out", str(tmp_path / "x"))
    assert code == 2
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "x").exists()


def test_timeout_is_recorded_and_may_change_on_resume(capsys, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "CartPole-v1", *TRAIN, "--generations", "2", "--out", str(run)]
    code, _, err = run_cli(capsys, *argv, "--backend", "processes", "--workers", "2", "--timeout", "60")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["evaluation"]["timeout"] == 60.0 and config["evaluation"]["backend"] == "processes"
    assert load_checkpoint(run / "checkpoint.pt")["config"]["evaluation"]["timeout"] == 60.0
    assert [r["generation"] for r in read_metrics(run / "metrics.csv")] == [1, 2]

    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", "3", "--timeout", "30", "--quiet")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["evaluation"]["timeout"] == 30.0
    # another backend: the run's timeout is dropped, unless given again (then refused)
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--backend", "serial", "--timeout", "5")
    assert_one_line_error(code, err, "--timeout applies to --backend processes and ray")
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", "4", "--backend", "serial")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["evaluation"]["timeout"] is None and config["evaluation"]["backend"] == "serial"
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--timeout", "5", "--quiet")
    assert_one_line_error(code, err, "--timeout", "a serial evaluation")
    assert [r["generation"] for r in read_metrics(run / "metrics.csv")] == [1, 2, 3, 4]


def test_exported_module_acts_on_raw_observations_like_eval(capsys, tmp_path):
    """``load_policy(DIR).to_module()`` carries the run's observation normalisation and
    action head: its greedy returns on raw observations are ``pytorch-es eval``'s."""
    import gymnasium as gym

    from pytorch_es.training.rundir import load_policy

    directory = tmp_path / "solved"
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--seed", "5", "--quiet", "--out", str(directory))
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", str(directory), "--episodes", "20", "--seed", "1000", "--json")
    assert code == 0, err
    expected = json.loads(out)["mean_return"]
    loaded = load_policy(directory)
    assert loaded.normalizer is not None  # the CartPole defaults normalise observations

    def greedy_mean(module: torch.nn.Module) -> float:
        env, returns = gym.make("CartPole-v1"), []
        for seed in range(1000, 1020):
            obs, _ = env.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                with torch.no_grad():
                    action = module(torch.as_tensor(obs)[None])[0]
                obs, reward, terminated, truncated, _ = env.step(int(action))
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        env.close()
        return sum(returns) / len(returns)

    assert greedy_mean(loaded.to_module()) == expected
    raw_layers = loaded.policy.to_module(loaded.vector, actions=True)  # no normalisation: another policy
    assert greedy_mean(raw_layers) != expected
    logits = loaded.to_module(actions=False)(torch.zeros(3, 4))
    assert logits.shape == (3, 2)
