"""benchmarks/gpu.py keeps working: one tiny point of each part, on the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_parts_run_on_cpu():
    gpu = _load("gpu")
    cpu = torch.device("cpu")
    (row,) = gpu.throughput("CartPole-v1", [32], cpu, repeats=1, gym_max=32)
    assert row["env_steps"] > 0 and row["steps_per_s"] > 0 and row["ratio_vs_numpy"] > 0
    assert row["build_members"] >= 0 and row["forward_per_step"] > 0
    (solve,) = gpu.solve_cartpole(cpu, [0], generations=1)
    assert solve["generations"] == 1 and solve["env_steps"] > 0
    skipped = gpu.jax_side_by_side([32], 1, python=str(ROOT / "no-such-python"), timeout=5)
    assert "skipped" in skipped
