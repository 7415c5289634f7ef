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


MINIMAL_ES = """
import contextlib, io, re, runpy, sys
path, outputs = sys.argv[1], []
for _ in range(2):  # the same seed twice: the same numbers
    sys.argv = [path, "--seed", "1", "--generations", "3", "--population-size", "8", "--test-episodes", "4"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        runpy.run_path(path, run_name="__main__")
    outputs.append(re.sub(r"[0-9.]+ s\\b", "T s", buffer.getvalue()))
assert outputs[0] == outputs[1], outputs
print(outputs[0], end="")
print("library imported:", sorted({m.split(".")[0] for m in sys.modules} & {"pytorch_es", "evolution"}))
sys.argv, errors = [path, "--population-size", "7"], io.StringIO()
with contextlib.redirect_stderr(errors):
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exit_:
        print("exit", exit_.code, errors.getvalue().strip().splitlines()[-1])
"""


def test_minimal_es_runs_alone_with_torch_and_gymnasium():
    """examples/minimal_es.py with a tiny budget (the full run solves CartPole-v1: see its docstring)."""
    import re
    import subprocess

    script = EXAMPLES / "minimal_es.py"
    done = subprocess.run([sys.executable, "-c", MINIMAL_ES, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 7, done.stdout
    for number, line in enumerate(lines[:3], start=1):
        assert re.fullmatch(
            rf"generation {number}: reward mean [0-9.]+ max [0-9]+, test [0-9.]+, env steps [0-9]+, T s", line
        ), line
    assert re.fullmatch(r"(NOT )?solved: test mean [0-9.]+ over 4 episodes \(target 475\) after 3 generations, "
                        r"[0-9]+ env steps, T s", lines[3]), lines[3]
    assert re.fullmatch(r"final center: mean [0-9.]+ \(min [0-9]+\) over 100 fresh episodes", lines[4]), lines[4]
    assert lines[5] == "library imported: []"  # only torch and gymnasium
    assert lines[6].startswith("exit 2 ")  # argparse's one-line error
    assert lines[6].endswith("error: --population-size must be an even int >= 2, got 7")
