"""``pytorch-es train --algo NAME`` for every registered strategy: runs, resumes
bit-identically, reports its scale, and refuses bad names in one line."""

from __future__ import annotations

import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from pytorch_es import strategies
from pytorch_es.cli import main
from pytorch_es.training import load_checkpoint, read_metrics

BASE = ["CartPole-v1", "--seed", "5", "--population", "16", "--test-episodes", "3", "--target", "none"]
BASE += ["--checkpoint-every", "1", "--quiet", "--backend", "serial"]


def test_unknown_algo_suggests_close_names(capsys):
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--algo", "pgep")
    assert_one_line_error(code, err, "unknown strategy 'pgep'", "did you mean pgpe", "available: ")


def test_an_option_the_strategy_lacks_is_refused(capsys, tmp_path):
    out = str(tmp_path / "r")
    code, _, err = run_cli(capsys, "train", *BASE, "--algo", "snes", "--optimizer", "adam", "--out", out)
    assert_one_line_error(code, err, "--optimizer does not apply to --algo snes")


@pytest.mark.parametrize("algo", [name for name in strategies.available() if name != "openai-es"])
def test_train_and_resume_are_bit_identical(algo, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", *BASE, "--algo", algo, "--generations", "4", "--out", str(straight)]) == 0
    assert main(["train", *BASE, "--algo", algo, "--generations", "2", "--out", str(split)]) == 0
    assert main(["train", "--resume", str(split), "--generations", "4", "--quiet"]) == 0
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["config"]["strategy"]["name"] == algo
    sa, sb = a["state"]["strategy"], b["state"]["strategy"]
    assert sa["strategy"] == algo and torch.equal(sa["center"], sb["center"])
    rows_a, rows_b = read_metrics(straight / "metrics.csv"), read_metrics(split / "metrics.csv")
    keys = ("reward_mean", "sigma", "scale_min", "scale_max")
    assert [[r[k] for k in keys] for r in rows_a] == [[r[k] for k in keys] for r in rows_b]
    assert all(r["scale_min"] * (1 - 1e-12) <= r["sigma"] <= r["scale_max"] * (1 + 1e-12) for r in rows_a)


def test_the_help_lists_every_registered_strategy():
    from pytorch_es.cli.train import ALGOS
    from pytorch_es.strategies import available

    assert sorted(ALGOS) == available()
