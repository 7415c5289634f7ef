"""Hardening (issue 12): signal storms, one run per directory, corrupted and hostile files,
bounded costs, and the leftovers. Real processes, real files, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, run_cli
from pytorch_es.training import load_checkpoint
from pytorch_es.training.loop import deferred_signals

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
STORM = ["CartPole-v1", "--checkpoint-every", "0", "--hidden", "256,256", "--generations", "100000"]
STORM += ["--target", "none", "--seed", "1", "--workers", "1", "--quiet"]


def train_process(out: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytorch_es", "train", *argv, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_training(process: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    """Until metrics.csv has a row: the training loop runs."""
    deadline = time.monotonic() + timeout
    metrics = out / "metrics.csv"
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            return
        time.sleep(0.005)
    process.kill()
    pytest.fail("training did not start in time")


def signal_storm(process: subprocess.Popen, signum: int, every: float = 0.001, limit: float = 60) -> int:
    """Send ``signum`` every ``every`` seconds until the process exits; how many were sent."""
    sent, deadline = 0, time.monotonic() + limit
    while process.poll() is None and time.monotonic() < deadline:
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(every)
    return sent


# ----------------------------------------------------------------- item 2: signal storms
def test_deferred_signals_hold_back_and_collect_sigint():
    with deferred_signals() as arrived:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert arrived and set(arrived) == {signal.SIGINT}  # collected, never raised
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("trial", range(3))
def test_sigint_storm_never_loses_the_final_checkpoint(tmp_path, trial):
    out = tmp_path / "run"
    process = train_process(out, *STORM)
    wait_training(process, out)
    sent = signal_storm(process, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert sent > 1
    assert "Traceback" not in err, err
    assert process.returncode == 130, err
    payload = load_checkpoint(out / "checkpoint.pt")  # written, complete
    generation = payload["state"]["generation"]
    assert f"Interrupted at generation {generation} " in err and "checkpoint saved in" in err, err


def test_sigterm_storm_never_loses_the_final_checkpoint(tmp_path):
    out = tmp_path / "run"
    process = train_process(out, *STORM)
    wait_training(process, out)
    signal_storm(process, signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    generation = load_checkpoint(out / "checkpoint.pt")["state"]["generation"]
    assert f"Terminated (SIGTERM) at generation {generation} " in err, err


def test_the_report_says_only_what_was_written(tmp_path):
    from pytorch_es.cli import _checkpoint_note
    from pytorch_es.training.checkpoint import save_checkpoint

    assert _checkpoint_note(tmp_path, 5, None) == ("no checkpoint was written", False)
    save_checkpoint(tmp_path / "checkpoint.pt", {"generation": 3}, {})
    note, resumable = _checkpoint_note(tmp_path, 5, None)
    assert "NOT saved" in note and "generation 3" in note and resumable
    assert _checkpoint_note(tmp_path, 5, 5)[0].startswith("checkpoint saved in")


# ------------------------------------------------------- item 3: one run per directory
QUICK = ["CartPole-v1", "--seed", "2", "--population", "8", "--hidden", "4", "--test-episodes", "2"]
QUICK += ["--target", "none", "--workers", "1", "--quiet"]


def test_a_second_run_in_the_same_directory_fails_at_once_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    first = train_process(out, *QUICK, "--generations", "100000", "--checkpoint-every", "0")
    try:
        wait_training(first, out)
        started = time.monotonic()
        code, _, err = run_cli(capsys, "train", *QUICK, "--generations", "3", "--out", str(out))
        assert time.monotonic() - started < 10
        assert_one_line_error(code, err, "is in use by another pytorch-es run", f"pid {first.pid}")
        code, _, err = run_cli(capsys, "train", "--resume", str(out), "--quiet")  # a resume too
        assert_one_line_error(code, err, f"pid {first.pid}")
        assert (out / "metrics.csv").read_text().count("\n") >= 2  # the first run's files, untouched
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert load_checkpoint(out / "checkpoint.pt")["state"]["generation"] >= 1


def test_a_killed_runs_lock_and_temporaries_do_not_block_its_resume(tmp_path, capsys):
    out = tmp_path / "run"
    first = train_process(out, *QUICK, "--generations", "100000", "--checkpoint-every", "1")
    wait_training(first, out)
    while not (out / "checkpoint.pt").exists():
        time.sleep(0.01)
    first.kill()
    first.communicate(timeout=30)
    assert (out / ".lock").read_text().strip() == str(first.pid)  # a stale lock file stays behind
    stale = out / ".checkpoint.pt.abc123.tmp"  # what a SIGKILL inside atomic_write leaves
    stale.write_bytes(b"half a checkpoint")
    generation = load_checkpoint(out / "checkpoint.pt")["state"]["generation"]
    code, _, err = run_cli(capsys, "train", "--resume", str(out), "--generations", str(generation + 1), "--quiet")
    assert code == 0, err
    assert not stale.exists()
    assert load_checkpoint(out / "checkpoint.pt")["state"]["generation"] == generation + 1


def test_a_train_that_fails_leaves_no_empty_out_directory(tmp_path, capsys):
    out = tmp_path / "new"
    code, _, err = run_cli(capsys, "train", *QUICK, "--population", "1000000000", "--out", str(out))
    assert code != 0 and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------- item 4: every failure is one line
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    from pytorch_es.cli import main

    assert main(["train", *QUICK, "--generations", "2", "--out", str(out)]) == 0
    return out


def _damaged(data: bytes, rng) -> bytes:
    kind = rng.random()
    if kind < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    if kind < 0.3:  # a pickle header, then noise (torch's legacy format)
        return b"\x80" + bytes([rng.randrange(6)]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    if kind < 0.6:
        return data[: rng.randrange(len(data))]
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    return bytes(damaged)


def test_fuzzed_checkpoints_and_policies_load_or_raise_the_projects_error(finished, tmp_path):
    import random
    import warnings

    from pytorch_es.training.checkpoint import CheckpointError
    from pytorch_es.training.rundir import RunDirectoryError, load_policy

    rng = random.Random(12)
    checkpoint = (finished / "checkpoint.pt").read_bytes()
    weights = (finished / "policy.safetensors").read_bytes()
    description = (finished / "policy.json").read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    outcomes = {"loaded": 0, "refused": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about odd pickle protocols in the noise
        for trial in range(400):
            (tmp_path / "checkpoint.pt").write_bytes(_damaged(checkpoint, rng))
            try:
                load_checkpoint(tmp_path / "checkpoint.pt")
                outcomes["loaded"] += 1
            except CheckpointError:
                outcomes["refused"] += 1
            (run / "policy.safetensors").write_bytes(_damaged(weights, rng) if trial % 2 else weights)
            (run / "policy.json").write_bytes(description if trial % 2 else _damaged(description, rng))
            try:
                load_policy(run)
                outcomes["loaded"] += 1
            except RunDirectoryError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > 300  # any other exception type fails the test above


def test_a_checkpoint_replaced_by_text_offers_the_previous_one(finished, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    shutil.copy(run / "checkpoint.pt", run / "checkpoint.prev.pt")
    (run / "checkpoint.pt").write_text("hello, I am not a checkpoint\n" * 10)
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert_one_line_error(code, err, "checkpoint.pt", "is intact", "--resume")


def test_a_policy_edited_to_another_env_says_which_spaces_differ(finished, tmp_path, capsys):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    description = json.loads((run / "policy.json").read_text())
    description["env_id"] = "Acrobot-v1"
    (run / "policy.json").write_text(json.dumps(description))
    code, _, err = run_cli(capsys, "eval", str(run), "--episodes", "2")
    assert_one_line_error(code, err, "does not fit Acrobot-v1", "observations", "(4,)", "(6,)", "actions")


def test_a_raising_env_is_one_line(tmp_path, capsys):
    import gymnasium as gym
    from gymnasium.envs.classic_control import CartPoleEnv

    class RaisingCartPole(CartPoleEnv):
        def step(self, action):
            raise RuntimeError("the env broke\nand said more\non several\nlines")

    gym.register("PytorchEsTest/Raising-v0", entry_point=RaisingCartPole, max_episode_steps=50)
    code, _, err = run_cli(
        capsys, "train", "PytorchEsTest/Raising-v0", "--population", "4", "--hidden", "4", "--backend", "serial",
        "--generations", "1", "--seed", "1", "--quiet", "--out", str(tmp_path / "run"),
    )
    assert_one_line_error(code, err, "RuntimeError: the env broke", "PYTORCH_ES_DEBUG=1")


# ------------------------------------------------ item 5: bounded memory, bounded files
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--population", "1000000000"], "needs at least"),
        (["--episodes", "1000000000"], "needs at least"),
        (["--test-episodes", "2147483648"], "--test-episodes must be at most"),
        (["--test-episodes", "2147483646"], "--test-episodes must be at most"),
        (["--test-episodes", "1000000000"], "needs at least"),
        (["--seed", str(1 << 64)], "must be <= 9223372036854775807"),
    ],
)
def test_huge_sizes_fail_at_once_with_the_size_and_the_estimate(tmp_path, capsys, argv, fragment):
    out = tmp_path / "run"
    started = time.monotonic()
    code, _, err = run_cli(capsys, "train", "CartPole-v1", "--generations", "1", "--quiet", "--out", str(out), *argv)
    assert_one_line_error(code, err, fragment)
    assert time.monotonic() - started < 20
    assert not out.exists()  # nothing left behind


def test_eval_of_a_billion_episodes_fails_at_once(finished, capsys):
    code, _, err = run_cli(capsys, "eval", str(finished), "--episodes", "1000000000")
    assert_one_line_error(code, err, "episodes=1000000000", "needs at least", "available")


def test_a_deflated_zip_bomb_is_refused_before_it_expands(tmp_path, monkeypatch):
    import zipfile

    import torch

    from pytorch_es.io import UnsafeOrCorruptFileError, load_state, load_weights, save_weights

    plain = tmp_path / "plain.pt"
    torch.save({"x": torch.zeros(96 << 20, dtype=torch.uint8)}, plain)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(UnsafeOrCorruptFileError, match=r"would expand to 96\.0 MiB"):
        load_state(bomb)
    # the cap on plain files: configurable, by argument and by environment
    with pytest.raises(UnsafeOrCorruptFileError, match=r"more than the 1\.0 MiB allowed"):
        load_state(plain, max_bytes=1 << 20)
    save_weights(tmp_path / "w.pt", [torch.ones(300_000)])
    monkeypatch.setenv("PYTORCH_ES_MAX_LOAD_BYTES", "1M")
    with pytest.raises(UnsafeOrCorruptFileError, match="PYTORCH_ES_MAX_LOAD_BYTES"):
        load_weights(tmp_path / "w.pt")
    monkeypatch.delenv("PYTORCH_ES_MAX_LOAD_BYTES")
    assert load_weights(tmp_path / "w.pt")[0].shape == (300_000,)


# ------------------------------------------------------------- item 6: load_weights
def test_load_weights_checks_what_it_returns(tmp_path):
    import torch

    from pytorch_es.io import WEIGHTS_FORMAT, UnsafeOrCorruptFileError, load_weights, save_state

    save_state(tmp_path / "a.pt", {"format": WEIGHTS_FORMAT, "tensors": [torch.ones(2), "not a tensor"]})
    with pytest.raises(UnsafeOrCorruptFileError, match="entry 1 of 'tensors' is a str"):
        load_weights(tmp_path / "a.pt")
    save_state(tmp_path / "b.pt", {"format": WEIGHTS_FORMAT})
    with pytest.raises(UnsafeOrCorruptFileError, match="no 'tensors' entry"):
        load_weights(tmp_path / "b.pt")
    save_state(tmp_path / "c.pt", {"format": WEIGHTS_FORMAT, "tensors": {"a": torch.ones(1)}})
    with pytest.raises(UnsafeOrCorruptFileError, match="must be a list of tensors"):
        load_weights(tmp_path / "c.pt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_weights(tmp_path)


# ------------------------------------------------------------------- item 8: leftovers
def test_an_unsafe_file_is_refused_without_suggesting_weights_only_false(tmp_path):
    import torch

    from pytorch_es.io import UnsafeOrCorruptFileError, load_state

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should never run",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeOrCorruptFileError) as caught:
        load_state(tmp_path / "evil.pt")
    message = str(caught.value)
    assert "refused" in message and "system" in message
    assert "weights_only" not in message and "False" not in message


def test_a_full_disk_names_the_file(tmp_path):
    import errno

    from pytorch_es.io import atomic_write

    def write(file):
        file.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() gives on a full disk

    with pytest.raises(OSError, match=r"cannot write .*checkpoint\.pt.*No space left on device") as caught:
        atomic_write(tmp_path / "checkpoint.pt", write)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_plot_of_a_missing_run_blames_the_run(capsys):
    code, _, err = run_cli(capsys, "plot", "/nonexistent")
    assert_one_line_error(code, err, "run directory '/nonexistent' does not exist")


def test_a_stuck_search_warns_once(recwarn):
    import torch

    from pytorch_es import BatchFunctionProblem, OpenAIES
    from pytorch_es.training import Trainer
    from pytorch_es.training.loop import ZERO_UPDATE_GENERATIONS

    def flat(members: torch.Tensor) -> torch.Tensor:  # the reward ignores the parameters
        return torch.zeros(len(members))

    strategy = OpenAIES(torch.zeros(5), population_size=8, sigma=0.1, lr=0.1, seed=0)
    Trainer(strategy, BatchFunctionProblem(flat)).run(3 * ZERO_UPDATE_GENERATIONS, handle_interrupts=False)
    stuck = [w for w in recwarn.list if "has not moved" in str(w.message)]
    assert len(stuck) == 1 and "all rewards equal" in str(stuck[0].message)
    # a search that moves never warns
    recwarn.clear()
    strategy = OpenAIES(torch.ones(5), population_size=8, sigma=0.1, lr=0.1, seed=0)
    Trainer(strategy, BatchFunctionProblem(lambda m: -(m**2).sum(1))).run(
        3 * ZERO_UPDATE_GENERATIONS, handle_interrupts=False
    )
    assert not [w for w in recwarn.list if "has not moved" in str(w.message)]


# --------------------------------------------------- item 7: a hung reward function
HANGING = """
import sys, threading, time, torch
from pytorch_es import EvolutionModule, ThreadEvaluator, BatchFunctionProblem, OpenAIES
from pytorch_es.training import Trainer

said = threading.Lock()

def reward(weights, render=False):
    if float(weights[0].sum()) > 0.3:  # some members never return
        if said.acquire(blocking=False):  # one line, whichever thread hangs first
            print("hung", flush=True)
        time.sleep(10**6)
    return -float((weights[0] ** 2).sum())

if sys.argv[1] == "module":
    EvolutionModule([torch.zeros(3)], reward, population_size=8, sigma=0.5, threadcount=2, seed=0).run(5)
else:
    from pytorch_es.evolution_module import WeightListProblem
    strategy = OpenAIES(torch.zeros(3), population_size=8, sigma=0.5, lr=0.1, seed=0)
    result = Trainer(strategy, WeightListProblem(reward, [torch.zeros(3)]), ThreadEvaluator(2)).run(5)
    print("reason", result.reason, flush=True)
"""


@pytest.mark.parametrize("face", ["module", "trainer"])
def test_ctrl_c_always_interrupts_a_threaded_run_with_a_hung_reward(tmp_path, face):
    script = tmp_path / "hang.py"
    script.write_text(HANGING)
    process = subprocess.Popen(
        [sys.executable, str(script), face], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    assert process.stdout.readline().strip() == "hung"
    time.sleep(0.5)
    for _ in range(1 if face == "module" else 2):  # the Trainer's first Ctrl-C waits for the generation
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
    try:
        out, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("Ctrl-C did not end a run with a hung reward function")
    assert "abandoning" in err and "evaluation thread(s)" in err, err
    if face == "trainer":
        assert "reason interrupted" in out


def test_evolution_module_timeout_bounds_a_hung_reward():
    import torch

    from pytorch_es import EvolutionModule
    from pytorch_es.evaluation import MemberEvaluationError

    def reward(weights, render=False):
        if float(weights[0].sum()) > 0.3:
            time.sleep(10**6)
        return -float((weights[0] ** 2).sum())

    started = time.monotonic()
    module = EvolutionModule([torch.zeros(3)], reward, population_size=8, sigma=0.5, threadcount=2, seed=0, timeout=1)
    with pytest.raises(MemberEvaluationError, match="timeout=1 s"):
        module.run(2, print_step=1)
    assert time.monotonic() - started < 60
    with pytest.raises(ValueError, match="timeout"):
        EvolutionModule([torch.zeros(3)], reward, timeout=0)


def test_workers_are_replaced_after_the_forkserver_was_killed():
    from multiprocessing import forkserver

    from backend_problems import Quadratic, train, wait_gone
    from pytorch_es import SerialEvaluator
    from pytorch_es.evaluation import ProcessEvaluator

    reference = train(SerialEvaluator(), Quadratic())
    with ProcessEvaluator(2) as evaluator:
        evaluator.start()
        os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)
        for pid in evaluator.worker_pids():  # replacements must come from a new forkserver
            os.kill(pid, signal.SIGKILL)
        assert wait_gone(evaluator.worker_pids(), 10) == []
        run = train(evaluator, Quadratic())
    assert all(a.equal(b) for a, b in zip(run, reference))


def test_a_checkpoint_whose_tensors_do_not_fit_the_config_is_refused_before_loading(finished, tmp_path, capsys):
    import shutil

    import torch

    from pytorch_es.training.checkpoint import save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    payload = load_checkpoint(run / "checkpoint.pt")
    payload["state"]["best"]["center"] = torch.zeros(10**6)  # a crafted, oversized best center
    save_checkpoint(run / "checkpoint.pt", payload["state"], payload["config"], keep_previous=False)
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", "3", "--quiet")
    assert_one_line_error(code, err, "does not fit this run", "the best center has 1000000 entries")


def test_the_cli_warns_of_a_stuck_search_in_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", *QUICK, "--sigma", "1e300", "--generations", "12",
                           "--out", str(tmp_path / "run"))
    assert code == 0, err
    warned = [line for line in err.splitlines() if "has not moved" in line]
    assert len(warned) == 1 and warned[0].startswith("pytorch-es train: warning: the center has not moved"), err
