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
