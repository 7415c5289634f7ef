"""A real two-node Ray cluster on this machine: a head and a second node started with
``ray start`` (one CPU each), trained against with ``RayEvaluator(address=...)`` and
with ``pytorch-es train --backend ray --ray-address``, then stopped.

The nodes are stopped by killing their own process groups, not with ``ray stop``
(which would stop every Ray instance of the machine, other users' included); the
test then checks that no process of either node is left.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from backend_problems import alive, wait_gone
from pytorch_es.evaluation.ray_evaluator import LOOPBACK_NODE_IP

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RAY = shutil.which("ray", path=str(BIN)) or shutil.which("ray")
CLI = shutil.which("pytorch-es", path=str(BIN)) or shutil.which("pytorch-es")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK_NODE_IP, 0))
        return sock.getsockname()[1]


def process_group_members(groups: list[int]) -> list[int]:
    """Live processes whose process group is one of ``groups``."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) in groups and alive(int(entry)):
                members.append(int(entry))
    return members


def assert_loopback_only(groups: list[int]) -> None:
    """Every node process advertises a loopback address (Ray would rewrite 127.0.0.1)."""
    seen = 0
    for pid in process_group_members(groups):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                arguments = file.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        for argument in arguments:
            for flag in ("--node-ip-address=", "--node_ip_address=", "--node-ip="):
                if argument.startswith(flag):
                    seen += 1
                    assert argument[len(flag):].startswith("127."), argument
    assert seen > 0


def ray_start(*arguments: str) -> int:
    """Run ``ray start`` in a new session; return its process group (the node's daemons stay in it)."""
    process = subprocess.Popen(
        [RAY, "start", *arguments], env=ENV, start_new_session=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    output, _ = process.communicate(timeout=180)
    if process.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(arguments)} failed:\n{output}")
    return process.pid


def stop_groups(groups: list[int]) -> list[int]:
    """SIGTERM, then SIGKILL, every process of the nodes; return survivors."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        if wait_gone(process_group_members(groups), 3) == []:
            return []
    return process_group_members(groups)


@pytest.fixture(scope="module")
def cluster():
    if RAY is None:
        pytest.skip("the ray command is not installed")
    temp = tempfile.mkdtemp(prefix="pes-ray-", dir="/tmp")  # short: Ray puts unix sockets in it
    port = free_port()
    address = f"{LOOPBACK_NODE_IP}:{port}"  # not 127.0.0.1: Ray rewrites that
    groups: list[int] = []
    common = (
        f"--node-ip-address={LOOPBACK_NODE_IP}", "--num-cpus=1", f"--temp-dir={temp}", "--disable-usage-stats"
    )
    try:
        groups.append(
            ray_start(
                "--head", f"--port={port}", *common, "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
            )
        )
        groups.append(
            ray_start(f"--address={address}", *common, f"--dashboard-agent-listen-port={free_port()}")
        )
        assert_loopback_only(groups)
        yield address
    finally:
        survivors = stop_groups(groups)
        shutil.rmtree(temp, ignore_errors=True)
    assert survivors == [], f"Ray processes left behind: {survivors}"


DRIVER = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, {tests!r})
    from ray.job_config import JobConfig
    from backend_problems import Quadratic, train
    from pytorch_es import SerialEvaluator
    from pytorch_es.evaluation.ray_evaluator import RayEvaluator

    job = JobConfig(code_search_path=[{tests!r}])  # the test problems, importable on every node
    with RayEvaluator(2, address={address!r}, init_kwargs={{"job_config": job}}) as evaluator:
        evaluator.start()  # wait for both actors, one per node
        nodes = sorted({{info["node"] for info in evaluator.worker_info()}})
        center, history = train(evaluator, Quadratic())
        stats = evaluator.stats
    expected_center, expected_history = train(SerialEvaluator(), Quadratic())
    print(json.dumps({{
        "nodes": nodes,
        "same": bool(torch.equal(center, expected_center) and torch.equal(history, expected_history)),
        "bytes": stats.bytes_sent,
    }}))
    """
)


def test_ray_evaluator_on_two_node_cluster(cluster, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), address=cluster))
    done = subprocess.run(
        [sys.executable, str(script)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["nodes"]) == 2  # one actor on the head, one on the second node
    assert report["same"]


def read_rewards(run: Path) -> list[tuple[str, ...]]:
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    keys = ("generation", "env_steps", "reward_mean", "reward_max", "update_norm")
    return [tuple(row[key] for key in keys) for row in rows]


def test_cli_trains_on_the_cluster(cluster, tmp_path):
    if CLI is None:
        pytest.skip("the pytorch-es command is not installed")
    common = [
        "train", "CartPole-v1", "--generations", "3", "--population", "8", "--seed", "3",
        "--target", "none", "--test-episodes", "2", "--quiet",
    ]
    runs = {}
    for backend in ("ray", "serial"):
        extra = ["--backend", "ray", "--ray-address", cluster, "--workers", "2"] if backend == "ray" else [
            "--backend", "serial"
        ]
        out = tmp_path / backend
        started = time.monotonic()
        done = subprocess.run(
            [CLI, *common, *extra, "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{backend}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        runs[backend] = read_rewards(out)
        assert len(runs[backend]) == 3, time.monotonic() - started
    assert runs["ray"] == runs["serial"]  # same seed, same numbers on the cluster
