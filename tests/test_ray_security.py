"""A Ray started by pytorch-es listens on loopback only, or is refused (issue 12, item 1).

Ray 2.60 binds its GCS, raylet, worker and driver gRPC servers to all interfaces whatever
the node address, so the local Ray backend checks the sockets of the Ray it started and
shuts it down with ``RayExposureError`` unless ``allow_network=True``
(``--ray-allow-network``). The check reads ``/proc`` (Linux); it is tested here against
real sockets first, then against real Ray runs in fresh interpreters.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("ray")

from pytorch_es.evaluation import listening

pytestmark = pytest.mark.skipif(not listening.supported(), reason="reads /proc (Linux)")
SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def test_listeners_sees_wildcard_and_loopback_sockets():
    sockets = []
    try:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
            s.listen()
            sockets.append((s, host))
        found = {(item.address, item.port): item for item in listening.listeners({os.getpid()})}
        for s, host in sockets:
            item = found[(host, s.getsockname()[1])]
            assert item.pid == os.getpid()
            assert item.wildcard == (host != "127.0.0.1") and item.loopback == (host == "127.0.0.1")
        before = {inode for s, _ in sockets for inode in listening.socket_inodes(os.getpid())}
        assert listening.listeners({os.getpid()}, exclude_inodes=before) == []
    finally:
        for s, _ in sockets:
            s.close()


PROBE = textwrap.dedent(
    """
    import json, os, warnings
    from pytorch_es.evaluation import listening
    from pytorch_es.evaluation.ray_evaluator import RayEvaluator, RayExposureError
    import ray
    allow = {allow}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            evaluator = RayEvaluator(1, allow_network=allow, init_kwargs={{"log_to_driver": False}})
    except RayExposureError as error:
        print(json.dumps({{"refused": str(error), "ray_left": ray.is_initialized(),
                          "children": sorted(listening.descendants(os.getpid()))}}))
    else:
        evaluator.start()
        pid = os.getpid()
        found = listening.listeners(listening.descendants(pid) | {{pid}})
        print(json.dumps({{"refused": None, "warnings": [str(w.message) for w in caught],
                          "exposed": [str(item) for item in found if not item.loopback],
                          "actors_report": evaluator.exposed_actors()}}))
        evaluator.close()
    """
)


def probe(allow: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(allow=allow)], capture_output=True, text=True, timeout=180, env=ENV
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_local_ray_listens_on_loopback_only_or_is_refused():
    outcome = probe(allow=False)
    if outcome["refused"] is None:  # a Ray that can bind to loopback: nothing may listen elsewhere
        assert outcome["exposed"] == []
    else:
        assert "listens beyond loopback" in outcome["refused"] and "--ray-allow-network" in outcome["refused"]
        assert "[::]" in outcome["refused"] or "0.0.0.0" in outcome["refused"]
        assert not outcome["ray_left"]  # shut down again at once
    # the explicit opt-in starts it, and says loudly what listens where
    allowed = probe(allow=True)
    assert allowed["refused"] is None
    if allowed["exposed"]:
        assert any("listens beyond loopback WITHOUT authentication" in w for w in allowed["warnings"])
        # each actor reports its own sockets too (what refuses actors started after the check)
        assert allowed["actors_report"] and all("ray::" in item or "on [" in item for item in allowed["actors_report"])


def test_cli_local_ray_refused_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytorch_es", "train", "CartPole-v1", "--backend", "ray", "--workers", "1",
         "--generations", "1", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, timeout=180, env=ENV,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip() and "INFO worker.py" not in line]
    if done.returncode == 0:  # a Ray that binds to loopback: the run went through
        return
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "refusing to run a local Ray that listens beyond loopback" in lines[0]
