"""``pytorch-es train --vector torch [--device ...]``: runs, resumes, exports for eval; bad input."""

from __future__ import annotations

import csv

import torch

from cli_helpers import assert_one_line_error, run_cli

COMMON = ("--seed", "3", "--population", "64", "--hidden", "none", "--test-episodes", "10", "--quiet")


def _rows(directory):
    with open(directory / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(handle)]


def test_train_with_torch_envs_then_eval_with_gymnasium(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--vector", "torch", "--device", "cpu",
                           "--generations", "2", "--target", "none", "--out", str(out), *COMMON)
    assert code == 0, err
    assert len(_rows(out)) == 2
    code, printed, err = run_cli(capsys, "eval", str(out), "--episodes", "5", "--json")
    assert code == 0, err
    assert '"mean_return"' in printed


def test_resume_continues_bit_identically(capsys, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    args = ("CartPole-v1", "--vector", "torch", "--target", "none", "--obs-norm", *COMMON)
    assert run_cli(capsys, "train", *args, "--generations", "3", "--out", str(whole))[0] == 0
    assert run_cli(capsys, "train", *args, "--generations", "1", "--out", str(part))[0] == 0
    code, _, err = run_cli(capsys, "train", "--resume", str(part), "--generations", "3", "--quiet")
    assert code == 0, err
    assert _rows(part) == _rows(whole)


def test_bad_input_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "LunarLander-v3", "--vector", "torch", "--out", str(tmp_path / "a"))
    assert_one_line_error(code, err, "no torch-native env", "CartPole-v1, Acrobot-v1, Pendulum-v1")
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--vector", "torch", "--backend", "processes")
    assert_one_line_error(code, err, "--vector torch", "--backend processes")
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--device", "tpu", "--out", str(tmp_path / "b"))
    assert_one_line_error(code, err, "device must be")
    if not torch.cuda.is_available():
        code, _, err = run_cli(capsys, "train", "CartPole-v1", "--vector", "torch", "--device", "cuda",
                               "--out", str(tmp_path / "c"))
        assert_one_line_error(code, err, "CUDA is not available", "--device cpu")
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--vector", "torch", "--population", "2000000000",
                           "--generations", "1", "--quiet", "--out", str(tmp_path / "d"))
    assert_one_line_error(code, err, "population of 2,000,000,000 members", "needs about", "GiB", "free")
