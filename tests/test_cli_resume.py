"""Runs that survive: SIGKILL then --resume is bit-identical, Ctrl-C checkpoints and exits 130,
SIGTERM abandons the generation, checkpoints and exits 143, and checkpoints that are
corrupted, unsafe or from another run are refused clearly.

The kill, interrupt and terminate tests start the real ``python -m pytorch_es`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_helpers import assert_equal, assert_one_line_error, run_cli, strip_times
from pytorch_es.cli import main
from pytorch_es.training import load_checkpoint, read_metrics

BASE = ["CartPole-v1", "--seed", "3", "--population", "32", "--test-episodes", "5", "--target", "none"]
BASE += ["--test-every", "1", "--checkpoint-every", "3", "--quiet"]
# pinned, so the test does not depend on the tuned defaults: Adam state and obs-norm statistics to restore
BASE += ["--hidden", "8", "--optimizer", "adam", "--lr", "0.05", "--obs-norm"]


def start(out: Path, *extra: str, new_session: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pytorch_es", "train", *BASE, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=new_session,
    )


def wait_for_rows(process: subprocess.Popen, metrics: Path, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended before it was interrupted: {process.communicate()}")
        try:
            if len(metrics.read_text().splitlines()) > rows:  # header + rows
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    process.kill()
    pytest.fail("training did not reach the expected generation in time")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of 15 generations (serial, in this process)."""
    directory = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *BASE, "--generations", "15", "--out", str(directory)]) == 0
    return directory


def assert_same_run(run: Path, reference: Path) -> None:
    """``run`` ended with exactly the weights, checkpoint and metrics (but wall times) of ``reference``."""
    assert (run / "policy.safetensors").read_bytes() == (reference / "policy.safetensors").read_bytes()
    assert json.loads((run / "policy.json").read_text()) == json.loads((reference / "policy.json").read_text())
    done = load_checkpoint(run / "checkpoint.pt")["state"]
    expected = load_checkpoint(reference / "checkpoint.pt")["state"]
    assert done["generation"] == expected["generation"] == 15
    assert torch.equal(done["strategy"]["center"], expected["strategy"]["center"])
    assert_equal(done["strategy"]["optimizer"], expected["strategy"]["optimizer"])
    assert_equal(done["problem"], expected["problem"])  # observation-normalisation statistics
    assert done["problem"]["obs_norm"]["count"] > 0
    assert_equal(done["best"], expected["best"])
    assert done["env_steps"] == expected["env_steps"]
    # metrics.csv: each generation exactly once, rows after the checkpoint recomputed
    assert strip_times(read_metrics(run / "metrics.csv")) == strip_times(read_metrics(reference / "metrics.csv"))


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, capsys, reference):
    killed = tmp_path / "killed"
    process = start(killed, "--generations", "1000")
    wait_for_rows(process, killed / "metrics.csv", 5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    generation = load_checkpoint(killed / "checkpoint.pt")["state"]["generation"]
    assert 3 <= generation < 15, generation

    code, _, err = run_cli(capsys, "train", "--resume", str(killed), "--generations", "15", "--quiet")
    assert code == 0, err
    assert_same_run(killed, reference)


@pytest.mark.slow
def test_sigint_finishes_the_generation_checkpoints_and_exits_130(tmp_path, capsys):
    run = tmp_path / "run"
    process = start(run, "--generations", "1000")
    wait_for_rows(process, run / "metrics.csv", 2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert f"Resume with: pytorch-es train --resume {run}" in err
    rows = read_metrics(run / "metrics.csv")
    state = load_checkpoint(run / "checkpoint.pt")["state"]
    assert state["generation"] == len(rows) == rows[-1]["generation"]  # the generation was finished
    # and it continues
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", str(len(rows) + 2), "--quiet")
    assert code == 0, err
    assert len(read_metrics(run / "metrics.csv")) == len(rows) + 2


def child_pids(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_ctrl_c_to_the_process_group_leaves_no_worker_processes(tmp_path):
    run = tmp_path / "run"
    process = start(run, "--generations", "1000", "--backend", "processes", "--workers", "2", new_session=True)
    wait_for_rows(process, run / "metrics.csv", 2)
    workers = child_pids(process.pid)
    assert workers, "the processes backend started no worker"
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)]
    assert load_checkpoint(run / "checkpoint.pt")["state"]["generation"] >= 2


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_sigterm_abandons_the_generation_saves_exits_143_and_resumes_bit_identically(tmp_path, capsys, reference):
    """SIGTERM (a preemption notice, ``kill``, ``docker stop``) to the driver only: the
    generation in progress is dropped, the checkpoint written, the workers stopped."""
    run = tmp_path / "run"
    process = start(run, "--generations", "1000", "--backend", "processes", "--workers", "2")
    wait_for_rows(process, run / "metrics.csv", 2)
    workers = child_pids(process.pid)
    assert workers, "the processes backend started no worker"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, (out, err)
    assert "Traceback" not in err, err
    state = load_checkpoint(run / "checkpoint.pt")["state"]
    generation = state["generation"]
    assert 2 <= generation < 15, generation
    assert (
        f"Terminated (SIGTERM) at generation {generation} (" in err
        and f"checkpoint saved in {run / 'checkpoint.pt'}." in err
    ), err
    assert f"Resume with: pytorch-es train --resume {run}" in err
    rows = read_metrics(run / "metrics.csv")
    assert len(rows) == rows[-1]["generation"] == generation  # no row for an abandoned generation
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)]

    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", "15", "--quiet")
    assert code == 0, err
    assert_same_run(run, reference)


# ---------------------------------------------------------------- bad checkpoints
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", *BASE, "--generations", "7", "--out", str(directory)]) == 0
    return directory


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(finished_run, target)
    return target


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupted_checkpoint_names_the_file_and_offers_the_previous(capsys, run_copy, damage):
    checkpoint = run_copy / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"PK\x03\x04" + b"\x00" * 100)
    code, _, err = run_cli(capsys, "train", "--resume", str(run_copy), "--quiet")
    line = assert_one_line_error(code, err, str(checkpoint), "checkpoint.prev.pt", "generation 6")
    assert f"pytorch-es train --resume {run_copy / 'checkpoint.prev.pt'}" in line
    # taking the offer works, and the damaged file does not become the new "previous"
    code, _, err = run_cli(
        capsys, "train", "--resume", str(run_copy / "checkpoint.prev.pt"), "--generations", "8", "--quiet"
    )
    assert code == 0, err
    assert load_checkpoint(checkpoint)["state"]["generation"] == 8
    assert load_checkpoint(run_copy / "checkpoint.prev.pt")["state"]["generation"] == 6


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_a_pickle_placed_as_checkpoint_is_refused_without_running(capsys, run_copy, tmp_path, kind):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    if kind == "pickle":
        (run_copy / "checkpoint.pt").write_bytes(pickle.dumps({"state": Payload()}))
    else:
        torch.save({"format": "pytorch-es/checkpoint", "state": Payload()}, run_copy / "checkpoint.pt")
    (run_copy / "checkpoint.prev.pt").unlink()
    code, _, err = run_cli(capsys, "train", "--resume", str(run_copy), "--quiet")
    assert_one_line_error(code, err, "checkpoint.pt", "refused")
    assert not marker.exists()
    if kind == "pickle":  # the payload is live when loaded unsafely
        pickle.loads((run_copy / "checkpoint.pt").read_bytes())
    else:
        torch.load(run_copy / "checkpoint.pt", weights_only=False)
    assert marker.exists()


def test_resume_with_other_settings_lists_what_differs(capsys, run_copy):
    code, _, err = run_cli(
        capsys, "train", "LunarLander-v3", "--resume", str(run_copy), "--population", "64", "--sigma", "0.5"
    )
    line = assert_one_line_error(code, err, "other settings")
    assert "env_id: checkpoint has 'CartPole-v1', this run has 'LunarLander-v3'" in line
    assert "population: checkpoint has 32, this run has 64" in line and "sigma:" in line
    assert "seed" not in line


def test_a_checkpoint_from_another_run_is_refused(capsys, run_copy, tmp_path):
    other = tmp_path / "other"
    assert main(["train", *BASE, "--population", "16", "--generations", "1", "--out", str(other)]) == 0
    shutil.copy(other / "checkpoint.pt", run_copy / "checkpoint.pt")
    code, _, err = run_cli(capsys, "train", "--resume", str(run_copy), "--quiet")
    assert_one_line_error(code, err, "another run", "population", "32", "16")


def test_resume_of_a_missing_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path / "nope"))
    assert_one_line_error(code, err, "no such run directory")


def test_resume_may_extend_the_budget(capsys, run_copy):
    code, _, err = run_cli(capsys, "train", "--resume", str(run_copy), "--generations", "9", "--quiet")
    assert code == 0, err
    assert [r["generation"] for r in read_metrics(run_copy / "metrics.csv")] == list(range(1, 10))
    assert json.loads((run_copy / "config.json").read_text())["generations"] == 9


def test_resuming_a_solved_run_says_so_and_trains_no_further(capsys, tmp_path):
    run = tmp_path / "solved"
    argv = ["train", "CartPole-v1", "--seed", "1", "--population", "16", "--test-episodes", "5"]
    assert main([*argv, "--target", "30", "--generations", "50", "--quiet", "--out", str(run)]) == 0
    generation = load_checkpoint(run / "checkpoint.pt")["state"]["generation"]
    assert generation < 50
    code, out, err = run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 0, err
    assert "already reached the target" in out
    assert load_checkpoint(run / "checkpoint.pt")["state"]["generation"] == generation
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--target", "none", "--generations", "3")
    assert code == 0, err  # a smaller budget than done: nothing to do either
