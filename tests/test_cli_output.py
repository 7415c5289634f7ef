"""What ``pytorch-es train`` tells its user: outcome lines, exit status, hints, warnings."""

from __future__ import annotations

import importlib.util
import io
import time

import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from pytorch_es import BatchFunctionProblem, OpenAIES
from pytorch_es.cli import EXIT_TARGET_MISSED
from pytorch_es.training import ProgressCallback, Trainer
from pytorch_es.training.progress import SlowGenerationHint

SMALL = ["--seed", "2", "--population", "16", "--test-episodes", "5", "--hidden", "8"]


def test_a_missed_target_says_so_in_one_line_and_exits_3(capsys, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "CartPole-v1", *SMALL, "--generations", "2", "--target", "499",
                             "--quiet", "--out", str(run))
    assert code == EXIT_TARGET_MISSED == 3
    assert "Stopped after 2 generations" in out and f"Run directory: {run}" in out  # --quiet keeps these
    assert "gen 1/2" not in out  # ... and drops the progress lines
    line = assert_one_line_error(code, err, "target 499 not reached in 2 generations",
                                 f"pytorch-es train --resume {run} --generations 4")
    assert "--population" in line and "--seed" in line


def test_a_reached_target_exits_0_and_quiet_prints_the_summary(capsys, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "CartPole-v1", *SMALL, "--target", "15", "--quiet",
                             "--out", str(run))
    assert code == 0, err
    assert "Solved CartPole-v1 at generation" in out and f"Run directory: {run}" in out
    assert err == ""


def test_no_target_is_no_miss(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "CartPole-v1", *SMALL, "--generations", "1", "--target", "none",
                           "--quiet", "--out", str(tmp_path / "run"))
    assert code == 0, err


def test_the_start_line_says_why_auto_chose_its_backend_and_lines_have_an_eta(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "train", "CartPole-v1", *SMALL, "--generations", "2", "--target", "none",
                           "--out", str(tmp_path / "run"))
    assert code == 0
    assert "serial evaluation (auto: the problem is vectorised: one in-process batch)" in out
    first = next(line for line in out.splitlines() if line.startswith("gen 1/2"))
    assert " eta " in first
    last = next(line for line in out.splitlines() if line.startswith("gen 2/2"))
    assert " eta " not in last  # nothing left


def test_a_slow_in_process_generation_gets_one_workers_hint():
    def slow(members: torch.Tensor) -> torch.Tensor:
        time.sleep(0.05)
        return -members.pow(2).sum(1)

    stream = io.StringIO()
    hint = SlowGenerationHint(lambda seconds: f"hint: {seconds:.2f} s; try --workers 2", seconds=0.01,
                              stream=stream)
    strategy = OpenAIES(torch.ones(3), population_size=4, sigma=0.1, lr=0.1, seed=0)
    Trainer(strategy, BatchFunctionProblem(slow), callbacks=[hint, ProgressCallback(io.StringIO())]).run(3)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hint: 0.") and "--workers 2" in lines[0]
    quiet = io.StringIO()
    fast = SlowGenerationHint(lambda seconds: "hint", seconds=60.0, stream=quiet)
    Trainer(OpenAIES(torch.ones(3), population_size=4, seed=0), BatchFunctionProblem(slow), callbacks=[fast]).run(2)
    assert quiet.getvalue() == ""


def test_pixel_observations_get_a_warning_naming_the_parameter_count(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "CarRacing-v3", "--generations", "0", "--hidden", "8", "--quiet",
                           "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert "warning: CarRacing-v3 observes pixels (96, 96, 3): 27,648 inputs give the policy 221,219 parameters" \
        in err


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is not None, reason="ale-py is installed")
def test_an_atari_id_without_ale_py_gives_the_install_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "ALE/Pong-v5", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "'ALE/Pong-v5' needs the ale_py package", 'pip install "gymnasium[atari]"')
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is not None, reason="mujoco is installed")
def test_a_mujoco_id_without_mujoco_gives_the_install_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "Hopper-v5", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "MuJoCo", 'pip install "gymnasium[mujoco]"')
