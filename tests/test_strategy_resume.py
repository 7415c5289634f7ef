"""Every registered strategy survives a SIGKILL: a real CLI training run is killed after a
checkpoint, resumed with ``pytorch-es train --resume``, and ends bit-identical to an
uninterrupted run (weights, the strategy's whole ``state_dict``, RNGs, metrics).

The runs are forked, an uninterrupted and a killed one per strategy, from one interpreter
that has imported torch, the CLI and Gymnasium once (a fresh ``python -m pytorch_es`` costs
seconds of imports per strategy). Each child seeds the global RNGs alike (so both runs start
from the same states) and runs ``pytorch_es.cli.main``; a killed one SIGKILLs itself inside
the ``tell`` of generation ``KILL_AT + 1``: the checkpoint of generation ``CHECKPOINT_AT`` is
on disk, generation ``KILL_AT``'s metrics row is written but not checkpointed, and the
strategy dies between evaluation and update. Strategies with restarts get a ``tol_x`` so large that they
restart after every generation, so the checkpoint holds a grown population and the resumed
run goes on restarting.
"""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import assert_equal, run_cli, strip_times
from pytorch_es import strategies
from pytorch_es.training import load_checkpoint, read_metrics

NAMES = strategies.available()
GENERATIONS, CHECKPOINT_AT, KILL_AT = 6, 4, 5
ARGS = ["CartPole-v1", "--seed", "3", "--population", "10", "--hidden", "none", "--max-steps", "50",
        "--obs-norm", "--test-every", "2", "--test-episodes", "2", "--target", "none", "--backend", "serial",
        "--checkpoint-every", "2", "--quiet"]
FORCED_RESTARTS = "[strategy]\ntol_x = 10.0\n"  # sigma * scale < 10 at once: a restart every generation

KILLER = f"""
import json, os, random, signal, sys, traceback
import numpy, torch
import gymnasium.envs.classic_control, torch._dynamo  # noqa: F401 - imported once, before the forks
import pytorch_es.evaluation, pytorch_es.rl, pytorch_es.training  # noqa: F401
from pytorch_es.cli import main
from pytorch_es.strategies import base

tell = base.Strategy.tell

def tell_then_die(self, *args, **kwargs):
    if self.generation == {KILL_AT}:
        os.kill(os.getpid(), signal.SIGKILL)
    return tell(self, *args, **kwargs)

status = {{}}
for line in sys.stdin:
    run, argv, kill = json.loads(line)
    pid = os.fork()
    if pid == 0:
        random.seed(0), numpy.random.seed(0), torch.manual_seed(0)  # (fork reseeds random)
        if kill:
            base.Strategy.tell = tell_then_die
        code = 1
        try:
            code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
    status[run] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(status))
"""


def argv(name: str, root: Path, out: Path) -> list[str]:
    extra = ["--algo", name, "--generations", str(GENERATIONS), "--out", str(out)]
    if "tol_x" in inspect.signature(strategies.get(name)).parameters:
        config = root / f"{name}.toml"
        config.write_text(FORCED_RESTARTS)
        extra += ["--config", str(config)]
    return ["train", *ARGS, *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict[str, int], str]:
    """Per strategy, ``root / name / "reference"`` (uninterrupted) and ``root / name / "killed"``;
    each child's exit status by run directory; the children's stderr."""
    root = tmp_path_factory.mktemp("runs")
    lines = ""
    for name in NAMES:
        for kind in ("reference", "killed"):
            out = root / name / kind
            lines += json.dumps([str(out), argv(name, root, out), kind == "killed"]) + "\n"
    done = subprocess.run([sys.executable, "-c", KILLER], input=lines, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return root, json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def comparable(run: Path) -> dict:
    """The final checkpoint's state without wall-clock times."""
    state = load_checkpoint(run / "checkpoint.pt")["state"]
    state.pop("elapsed")
    state["metrics"] = [{k: v for k, v in row.items() if k not in ("wall_time", "generation_time")}
                        for row in state["metrics"]]
    return state


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_sigkill_then_resume_is_bit_identical(name, runs, capsys):
    root, status, stderr = runs
    run, reference = root / name / "killed", root / name / "reference"
    assert status[str(reference)] == 0, stderr
    assert status[str(run)] == -signal.SIGKILL, stderr
    assert load_checkpoint(run / "checkpoint.pt")["state"]["generation"] == CHECKPOINT_AT
    assert len(read_metrics(run / "metrics.csv")) == KILL_AT  # a generation past the checkpoint

    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", str(GENERATIONS), "--quiet")
    assert code == 0, err

    assert (run / "policy.safetensors").read_bytes() == (reference / "policy.safetensors").read_bytes()
    done, expected = comparable(run), comparable(reference)
    assert done["generation"] == GENERATIONS
    assert_equal(done, expected)  # center, strategy state_dict, problem, best, RNGs, metrics
    assert strip_times(read_metrics(run / "metrics.csv")) == strip_times(read_metrics(reference / "metrics.csv"))
    if "restart" in done["strategy"]:
        assert done["strategy"]["restart"]["restarts"] == GENERATIONS
