"""The EvolutionModule examples run as their docstrings show (a few iterations here; the
full runs reach the goal, see the report in docs/runs.md and the examples' docstrings)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from pytorch_es import load_weights
from pytorch_es.training import load_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(monkeypatch, script: Path, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    monkeypatch.syspath_prepend(str(script.parent))
    for name in ("train_pytorch", "play_pytorch"):  # each example directory has its own
        monkeypatch.delitem(sys.modules, name, raising=False)
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("env", ["cartpole", "lunarlander"])
def test_example_trains_saves_a_checkpoint_and_plays(monkeypatch, capsys, tmp_path, env):
    weights = tmp_path / f"{env}_weights.p"
    extra = ["--episodes", "1", "--population", "10"] if env == "lunarlander" else []
    with pytest.raises(SystemExit) as exit_:  # 10 iterations do not reach the goal, and say so
        run_example(monkeypatch, EXAMPLES / env / "train_pytorch.py", "-w", str(weights), "--iterations", "10", *extra)
    assert exit_.value.code == 3
    out = capsys.readouterr().out
    assert "iter 10. reward:" in out and "Reward from final weights" in out
    assert "Goal NOT reached in 10 iterations" in out
    assert len(load_weights(weights)) == (2 if env == "lunarlander" else 4)  # LunarLander: a linear policy
    assert load_checkpoint(weights, key="checkpoint")["state"]["iteration"] == 10

    gif = tmp_path / f"{env}.gif"
    run_example(monkeypatch, EXAMPLES / env / "play_pytorch.py", "-w", str(weights), "--gif", str(gif))
    assert "wrote" in capsys.readouterr().out
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")


@pytest.mark.parametrize("env", ["cartpole", "lunarlander"])
@pytest.mark.parametrize("script", ["train_pytorch.py", "play_pytorch.py"])
def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch, capsys, tmp_path, env, script):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exit_:
        run_example(monkeypatch, EXAMPLES / env / script, "-w", str(tmp_path / "w.p"), "-c")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--cuda: CUDA is not available" in err and "Traceback" not in err


def test_play_refuses_missing_or_foreign_weights(monkeypatch, capsys, tmp_path):
    script = EXAMPLES / "cartpole" / "play_pytorch.py"
    with pytest.raises(SystemExit):
        run_example(monkeypatch, script, "-w", str(tmp_path / "missing.p"))
    assert "does not exist" in capsys.readouterr().err
    from pytorch_es import save_weights

    save_weights(tmp_path / "other.p", [torch.zeros(3, 3)])
    with pytest.raises(SystemExit):
        run_example(monkeypatch, script, "-w", str(tmp_path / "other.p"))
    assert "shapes [(3, 3)]" in capsys.readouterr().err


def test_same_seed_same_weights_at_any_threadcount(monkeypatch):
    """The CartPole example's reward function builds a model per member evaluation, so
    threads share no state: threadcount 1, 2 and 4 give bit-identical weights."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "cartpole"))
    monkeypatch.delitem(sys.modules, "train_pytorch", raising=False)
    import train_pytorch as example

    from pytorch_es import EvolutionModule

    finals = []
    for threads in (1, 2, 4):
        torch.manual_seed(0)
        model = example.build_model()
        initial = [p.detach().clone() for p in model.parameters()]
        holder: list[EvolutionModule] = []

        def member_seeds(holder=holder):
            return [holder[0].iteration]

        es = EvolutionModule(
            list(model.parameters()), lambda w, render=None: example.get_reward(w, member_seeds, render),
            population_size=10, sigma=0.1, learning_rate=0.001, threadcount=threads, seed=0,
        )
        holder.append(es)
        finals.append([w.clone() for w in es.run(6, print_step=100)])
    for other in finals[1:]:
        assert all(torch.equal(a, b) for a, b in zip(finals[0], other, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(finals[0], initial, strict=True))  # it trained
