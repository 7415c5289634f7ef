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
