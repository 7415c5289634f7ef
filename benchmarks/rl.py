"""Gymnasium benchmarks: the headline commands' solve rates over fresh random seeds, and
population rollout throughput.

    python benchmarks/rl.py --cartpole-seeds 50 --no-throughput
    python benchmarks/rl.py --cartpole-seeds 0 --lunar-seeds 10 --lunar-budget 300 --lunar-workers 2
    python benchmarks/rl.py --cartpole-seeds 0 --throughput

Each run is ``pytorch-es train ENV --seed S`` with the per-env defaults, exactly as a user
types it (CartPole in this process through ``pytorch_es.cli.main``, LunarLander as a
subprocess stopped with SIGTERM at its time budget). The seeds are drawn fresh from the
OS's random source at every invocation and printed, never a fixed list that tuning
looked at (``--seeds`` replays given ones). *Solved* means the command's own test passed
the target (CartPole-v1: 475, LunarLander-v3: 200, greedy means over 100 episodes) and it
exited 0; the time is the run's training wall time from ``metrics.csv`` (everything
after start-up, the command's tests included). The machine is usually shared: the load
average is printed with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pytorch_es import OpenAIES
from pytorch_es.rl import GymProblem, get_defaults
from pytorch_es.training import read_metrics


def load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def fresh_seeds(count: int) -> list[int]:
    """``count`` distinct seeds in [0, 2**31) from the OS's random source."""
    rng = random.SystemRandom()
    seeds: set[int] = set()
    while len(seeds) < count:
        seeds.add(rng.randrange(1 << 31))
    return sorted(seeds)


def run_summary(seed: int, code: int, directory: Path, target: float) -> dict[str, Any]:
    """What a finished ``pytorch-es train`` left in ``directory``."""
    rows = read_metrics(directory / "metrics.csv") if (directory / "metrics.csv").exists() else []
    last = rows[-1] if rows else {}
    tests = [float(r["test_reward"]) for r in rows if r.get("test_reward") is not None]
    return {
        "seed": seed, "exit": code, "solved": code == 0 and bool(tests) and tests[-1] >= target,
        "seconds": float(last.get("wall_time") or 0.0), "generations": len(rows),
        "env_steps": int(float(last.get("env_steps") or 0)), "test_mean": max(tests) if tests else float("nan"),
    }


def train_in_process(env_id: str, seed: int, *extra: str) -> dict[str, Any]:
    from pytorch_es.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "run"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["train", env_id, "--seed", str(seed), "--quiet", "--out", str(directory), *extra])
        return run_summary(seed, code, directory, get_defaults(env_id).target)


def train_subprocess(env_id: str, seed: int, budget_s: float, *extra: str) -> dict[str, Any]:
    """``pytorch-es train`` in its own process, sent SIGTERM once its training wall time
    (``metrics.csv``) passes ``budget_s`` (it then checkpoints and exits 143)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "run"
        argv = [sys.executable, "-m", "pytorch_es", "train", env_id, "--seed", str(seed), "--quiet",
                "--out", str(directory), *extra]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.monotonic()
        while process.poll() is None:
            time.sleep(1.0)
            elapsed = run_summary(seed, 1, directory, 0.0)["seconds"] if (directory / "metrics.csv").exists() else 0
            if elapsed > budget_s or time.monotonic() - start > budget_s + 120:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=120)
        return run_summary(seed, process.returncode, directory, get_defaults(env_id).target)


def print_run(run: dict[str, Any]) -> dict[str, Any]:
    print(f"  seed {run['seed']}: {'solved' if run['solved'] else 'NOT solved'} (exit {run['exit']}) in "
          f"{run['seconds']:.3f} s, {run['generations']} generations, {run['env_steps']} env steps, "
          f"best test mean {run['test_mean']:.1f}", flush=True)
    return run


def report_solves(name: str, runs: list[dict[str, Any]], limit_s: float) -> dict[str, Any]:
    times = [r["seconds"] if r["solved"] else float("inf") for r in runs]
    summary = {
        "median_s": statistics.median(times),
        "max_s": max(times),
        "solved": sum(r["solved"] for r in runs),
        "within_limit": sum(t <= limit_s for t in times),
        "median_env_steps": statistics.median(r["env_steps"] for r in runs),
        "median_generations": statistics.median(r["generations"] for r in runs),
        "seeds": [r["seed"] for r in runs],
        "runs": runs,
    }
    print(f"  {name}: {summary['solved']}/{len(runs)} solved, {summary['within_limit']} within {limit_s:g} s; "
          f"median {summary['median_s']:.3f} s, max {summary['max_s']:.3f} s (unsolved count as inf), "
          f"median {summary['median_generations']:g} generations, median env steps "
          f"{summary['median_env_steps']:,.0f}  [{load()}]", flush=True)
    return summary


def cartpole(seeds: list[int]) -> dict[str, Any]:
    print(f"pytorch-es train CartPole-v1 on {len(seeds)} fresh random seeds "
          f"(defaults {get_defaults('CartPole-v1').as_dict()})\n  seeds: {seeds}", flush=True)
    train_in_process("CartPole-v1", 1, "--generations", "1")  # warm up: lazy imports, caches
    return report_solves("CartPole-v1", [print_run(train_in_process("CartPole-v1", seed)) for seed in seeds], 0.5)


def throughput(repeats: int = 5) -> dict[str, Any]:
    """Env steps per second of a population rollout (256 members, 4-64-2 MLP) against the
    raw vector env stepping random actions, interleaved in the same run.

    The population is centred on a policy that balances, with a small sigma, so members
    run full episodes: this measures the rollout machinery, not the episode lengths.
    Measured with ``relu`` and ``tanh`` hidden units (``tanh`` costs about 20x more
    per element on the CPU). The ratio is printed as the ratio of the medians and the
    median of the per-repeat ratios (each repeat times the raw env, then the rollout).
    """
    n, steps = 256, 500
    print(f"Throughput on CartPole-v1, population {n}, 4-64-2 MLP")
    raw_env = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    raw_env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, (steps, n))
    figures: dict[str, Any] = {}
    for activation in ("relu", "tanh"):
        problem = GymProblem("CartPole-v1", {"hidden": [64], "activation": activation}, obs_norm=False)
        strategy = OpenAIES(balancing_center(problem), population_size=n, sigma=0.002, seed=0)
        raw_rates, pop_rates, fractions = [], [], []
        for _ in range(repeats):
            t = time.perf_counter()
            for k in range(steps):
                raw_env.step(actions[k])
            raw_rates.append(n * steps / (time.perf_counter() - t))
            population = strategy.ask()
            t = time.perf_counter()
            evaluation = problem.evaluate(population, range(n))
            pop_rates.append(evaluation.env_steps / (time.perf_counter() - t))
            fractions.append(evaluation.env_steps / (n * steps))
            strategy.generation += 1  # new env seeds
        problem.close()
        raw, pop = statistics.median(raw_rates), statistics.median(pop_rates)
        paired = statistics.median(p / r for p, r in zip(pop_rates, raw_rates, strict=True))
        print(f"  {activation}: raw vector env (random actions) {raw:,.0f} env-steps/s, population rollout "
              f"{pop:,.0f} env-steps/s ({statistics.median(fractions):.0%} of member-steps run): "
              f"ratio {pop / raw:.2f} (median of {repeats} paired ratios {paired:.2f})  [{load()}]", flush=True)
        figures[activation] = {"raw_steps_per_s": raw, "population_steps_per_s": pop, "ratio": pop / raw,
                               "paired_ratio": paired, "repeats": repeats}
    raw_env.close()
    return figures


def balancing_center(problem: GymProblem) -> torch.Tensor:
    """A 4-64-2 MLP that balances CartPole: the hidden units copy a linear controller."""
    policy = problem.policy
    named = {k: torch.zeros(v) for k, v in policy.parameter_shapes().items()}
    gains = torch.tensor([0.1, 0.5, 3.0, 1.0])  # push toward the side the pole falls to
    named["layers.0.weight"][:, 0] = gains  # hidden unit 0: the controller's signal
    named["layers.0.weight"][:, 1] = -gains  # hidden unit 1: its negative (relu keeps one)
    named["layers.1.weight"][0, 1] = named["layers.1.weight"][1, 0] = 1.0
    return policy.vector_from_named(named)


def lunar(seeds: list[int], budget_s: float, workers: int) -> dict[str, Any]:
    extra = ["--workers", str(workers)] if workers > 1 else ["--backend", "serial"]
    print(f"pytorch-es train LunarLander-v3 {' '.join(extra)} on {len(seeds)} fresh random seeds, "
          f"budget {budget_s:g} s of training each (defaults {get_defaults('LunarLander-v3').as_dict()})\n"
          f"  seeds: {seeds}", flush=True)
    runs = [print_run(train_subprocess("LunarLander-v3", seed, budget_s, *extra)) for seed in seeds]
    return report_solves("LunarLander-v3", runs, budget_s)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cartpole-seeds", type=int, default=50, help="fresh random seeds for CartPole")
    parser.add_argument("--throughput", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--throughput-repeats", type=int, default=5,
                        help="interleaved raw-env / rollout repeats of the throughput figure (default 5)")
    parser.add_argument("--lunar-seeds", type=int, default=0, help="fresh random seeds for LunarLander")
    parser.add_argument("--lunar-budget", type=float, default=300.0, help="training seconds per seed")
    parser.add_argument("--lunar-workers", type=int, default=2,
                        help="evaluation processes for LunarLander (default 2; 1: serial, in-process)")
    parser.add_argument("--seeds", type=int, nargs="+", help="replay these seeds instead of fresh ones")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, {os.cpu_count()} cpus, {load()}", flush=True)
    figures: dict[str, Any] = {}
    if args.cartpole_seeds:
        figures["cartpole"] = cartpole(args.seeds or fresh_seeds(args.cartpole_seeds))
    if args.throughput:
        figures["throughput"] = throughput(args.throughput_repeats)
    if args.lunar_seeds:
        figures["lunarlander"] = lunar(args.seeds or fresh_seeds(args.lunar_seeds), args.lunar_budget,
                                       args.lunar_workers)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=2, default=float)


if __name__ == "__main__":
    main()
