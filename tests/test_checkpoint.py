"""Checkpoint files: atomic with the previous kept, never executing code, clear errors;
and ``EvolutionModule``'s ``save_path`` checkpoints with resume after a SIGKILL."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pytorch_es import EvolutionModule, UnsafeOrCorruptFileError, load_weights
from pytorch_es.training import CheckpointError, config_differences, load_checkpoint, save_checkpoint
from pytorch_es.training.checkpoint import previous_path


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if code runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_round_trip_keeps_the_previous_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"generation": 1, "x": torch.ones(3)}, {"env_id": "A"})
    save_checkpoint(path, {"generation": 2, "x": torch.zeros(3)}, {"env_id": "A"})
    assert load_checkpoint(path)["state"]["generation"] == 2
    previous = load_checkpoint(tmp_path / "checkpoint.prev.pt")
    assert previous["state"]["generation"] == 1 and previous["config"] == {"env_id": "A"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    assert previous_path(tmp_path / "w.p") == tmp_path / "w.prev.p"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_checkpoint_names_the_file_and_offers_the_previous(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"generation": 4}, {})
    save_checkpoint(path, {"generation": 5}, {})
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:-200], "garbage": b"\x00garbage" * 9, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt") as error:
        load_checkpoint(path)
    assert error.value.previous == tmp_path / "checkpoint.prev.pt"
    assert error.value.previous_generation == 4


def test_no_previous_is_offered_when_there_is_none(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"nonsense")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert error.value.previous is None
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_file_of_another_kind_is_not_a_checkpoint(tmp_path):
    torch.save({"format": "something-else", "state": {}}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="not a pytorch-es checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    torch.save({"format": "pytorch-es/checkpoint", "version": 99, "state": {}, "config": {}}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "d.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:
        torch.save({"format": "pytorch-es/checkpoint", "state": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt"):
        load_checkpoint(path)
    with pytest.raises(UnsafeOrCorruptFileError):
        load_weights(path)
    assert not marker.exists()
    if kind == "pickle":  # the payload is live: plain pickle runs it
        pickle.loads(path.read_bytes()).close()
        assert marker.exists()


def test_config_differences_lists_each_setting():
    saved = {"env_id": "CartPole-v1", "population": 32, "hidden": [16], "sigma": 0.1}
    now = {"env_id": "LunarLander-v3", "population": 32, "hidden": [64, 64], "sigma": 0.1, "extra": 1}
    assert config_differences(saved, now) == [
        "env_id: checkpoint has 'CartPole-v1', this run has 'LunarLander-v3'",
        "extra: checkpoint has (absent), this run has 1",
        "hidden: checkpoint has [16], this run has [64, 64]",
    ]
    assert config_differences(saved, now, ["population", "sigma"]) == []
    assert config_differences({"lr": 1}, {"lr": 1.0}) == []


# ------------------------------------------------------------ EvolutionModule
TARGET = torch.linspace(-1, 1, 6)

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from evolution.strategies import EvolutionModule

    path, kill_at = sys.argv[1], int(sys.argv[2])
    target = torch.linspace(-1, 1, 6)
    calls = [0]

    def reward(weights, render=False):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return -float(((weights[0] - target) ** 2).sum())

    params = [torch.zeros(6)]
    es = EvolutionModule(params, reward, population_size=8, sigma=0.1, learning_rate=0.05, decay=0.99,
                         threadcount=2, save_path=path, seed=7)
    es.run(20, print_step=3)
    """
)


def make_module(path: Path | None, params: list[torch.Tensor], **kwargs) -> EvolutionModule:
    def reward(weights, render=False):
        return -float(((weights[0] - TARGET) ** 2).sum())

    settings = {"population_size": 8, "sigma": 0.1, "learning_rate": 0.05, "decay": 0.99, "threadcount": 2}
    settings.update(kwargs)
    return EvolutionModule(params, reward, save_path=path, seed=7, **settings)


@pytest.mark.slow
def test_evolution_module_resumes_bit_identically_after_sigkill(tmp_path, capsys):
    reference = [torch.zeros(6)]
    make_module(tmp_path / "reference.p", reference).run(20, print_step=3)

    path = tmp_path / "weights.p"
    killed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), str(8 * 11 + 4)],  # dies inside iteration 12
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "iter 9. reward" in killed.stdout and "iter 12." not in killed.stdout
    assert load_checkpoint(path, key="checkpoint")["state"]["iteration"] == 9
    assert load_checkpoint(tmp_path / "weights.prev.p", key="checkpoint")["state"]["iteration"] == 6

    params = [torch.zeros(6)]
    es = make_module(path, params)
    assert es.load_checkpoint() == 9
    assert torch.equal(params[0], load_weights(path)[0])  # the weights are back in place
    capsys.readouterr()
    es.run(20, print_step=3)
    assert capsys.readouterr().out.splitlines()[0].startswith("iter 12. reward")
    assert es.iteration == 20
    assert torch.equal(params[0], reference[0])
    assert torch.equal(load_weights(path)[0], load_weights(tmp_path / "reference.p")[0])
    assert es.learning_rate == pytest.approx(0.05 * 0.99**20)


def test_evolution_module_checkpoint_in_process(tmp_path):
    reference = [torch.zeros(6)]
    make_module(None, reference).run(10, print_step=3)

    path = tmp_path / "w.p"
    first = [torch.zeros(6)]
    make_module(path, first).run(7, print_step=3)  # saved at 3, 6 and at the end (7)
    assert load_checkpoint(path, key="checkpoint")["state"]["iteration"] == 7
    params = [torch.zeros(6)]
    es = make_module(path, params)
    es.load_checkpoint()
    es.run(3, print_step=3)  # a fresh run() call after a *finished* one: 3 more iterations
    assert es.iteration == 10 and torch.equal(params[0], reference[0])


def test_evolution_module_refuses_a_checkpoint_of_other_settings(tmp_path):
    path = tmp_path / "w.p"
    make_module(path, [torch.zeros(6)]).run(3, print_step=3)
    es = make_module(path, [torch.zeros(6)], population_size=10, sigma=0.2)
    with pytest.raises(CheckpointError, match="other settings") as error:
        es.load_checkpoint()
    assert "population_size: checkpoint has 8, this run has 10" in str(error.value)
    assert "sigma: checkpoint has 0.1, this run has 0.2" in str(error.value)
    with pytest.raises(CheckpointError, match=r"shapes: checkpoint has \[\[6\]\], this run has \[\[5\]\]"):
        make_module(path, [torch.zeros(5)]).load_checkpoint()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_evolution_module_refuses_a_pickle_and_offers_the_previous(tmp_path):
    path = tmp_path / "w.p"
    make_module(path, [torch.zeros(6)]).run(6, print_step=3)
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match=r"w\.p") as error:
        make_module(path, [torch.zeros(6)]).load_checkpoint()
    assert error.value.previous == tmp_path / "w.prev.p" and error.value.previous_generation == 3
    assert not marker.exists()
    es = make_module(path, [torch.zeros(6)])
    assert es.load_checkpoint(error.value.previous) == 3


def test_weights_files_without_a_checkpoint_are_named(tmp_path):
    from pytorch_es import save_weights

    save_weights(tmp_path / "plain.p", [torch.zeros(6)])
    with pytest.raises(CheckpointError, match="not a pytorch-es checkpoint"):
        make_module(None, [torch.zeros(6)]).load_checkpoint(tmp_path / "plain.p")
    with pytest.raises(ValueError, match="needs a path"):
        make_module(None, [torch.zeros(6)]).load_checkpoint()
