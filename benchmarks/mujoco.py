"""MuJoCo locomotion benchmark (issue 15): env steps and wall time to published thresholds,
median over seeds, and the raw env-steps/s of the vector backends.

    python benchmarks/mujoco.py --throughput-only                 # raw env-steps/s, Hopper and HalfCheetah
    python benchmarks/mujoco.py --envs Hopper-v5 --seeds 5 --workers 2 --budget 600 -- --algo ars ...

Training part (a skeleton until the presets of issues 13/14 exist): each run is
``pytorch-es train ENV --seed S --target THRESHOLD`` as a user types it, in a subprocess
stopped with SIGTERM at ``--budget`` seconds; options after ``--`` are passed through
(strategy, population, ``--hidden none``, ``--reward-shift``, ...). From the run's
``metrics.csv`` it takes the first generation whose greedy test mean reached each
threshold: env steps (training episodes only, the tests' steps excluded, as in both papers),
training episodes (generations x population x episodes per member) and wall time.
Per env it reports the median over seeds; a seed that never reached a threshold counts as
not reached (the median is then reported only if more than half reached it).

Thresholds:

* ``ARS``: Mania, Guy & Recht (2018), "Simple random search provides a competitive
  approach to reinforcement learning", Table 1's reward thresholds, as filed in issue 15
  (Swimmer 325, Hopper 3120, HalfCheetah 3430, Walker2d 4390, Ant 3580, Humanoid 6000).
  NOT YET CHECKED against the paper here (the text of the table could not be read in
  this session): check before quoting.
* ``TRPO``: Salimans et al. (2017), "Evolution strategies as a scalable alternative to
  reinforcement learning", Table 3 compares timesteps to reach fractions of TRPO's
  score at 5M timesteps; the score levels themselves are left as ``None`` until they are
  read from the paper (its Figure/Table data), so no unverified number is printed.

The papers used the ``-v1`` MuJoCo envs (mujoco-py); these are Gymnasium's ``-v5`` on
MuJoCo >= 3: scores are comparable, not identical. The machine is usually shared: the
load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file's name shadows the mujoco package for anything importing it from this
# directory (sys.path[0] of a script, inherited by Gymnasium's async workers): drop it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

ARS_THRESHOLDS = {  # as filed in issue 15 (Mania et al. 2018, Table 1); unverified here
    "Swimmer-v5": 325.0, "Hopper-v5": 3120.0, "HalfCheetah-v5": 3430.0,
    "Walker2d-v5": 4390.0, "Ant-v5": 3580.0, "Humanoid-v5": 6000.0,
}
TRPO_5M_LEVELS: dict[str, float | None] = {  # Salimans et al. 2017, Table 3: to be read from the paper
    "Swimmer-v5": None, "Hopper-v5": None, "HalfCheetah-v5": None, "Walker2d-v5": None,
}
THROUGHPUT_ENVS = ("Hopper-v5", "HalfCheetah-v5")


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- raw env-steps/s
def _steps_per_second(step, reset, num_envs: int, seconds: float) -> tuple[float, int]:
    reset()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += num_envs
    return steps / (time.perf_counter() - start), steps


def throughput(env_id: str, num_envs: int, seconds: float, envpool_threads: int) -> dict[str, Any]:
    """Random actions, autoreset on: the env backends alone (no policy, no rollout)."""
    import gymnasium as gym

    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"env_id": env_id, "num_envs": num_envs}
    for mode in ("sync", "async"):
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
        low, high = env.single_action_space.low, env.single_action_space.high
        actions = rng.uniform(low, high, size=(num_envs, *low.shape)).astype(np.float32)
        try:
            rate, steps = _steps_per_second(lambda env=env, a=actions: env.step(a),
                                            lambda env=env: env.reset(seed=0), num_envs, seconds)
        finally:
            env.close()
        result[f"gymnasium_{mode}"] = {"steps_per_s": rate, "steps": steps}
    try:
        import envpool
    except ImportError as error:
        result["envpool"] = {"error": f"not installed ({error}): pip install 'pytorch-es[envpool]'"}
        return result
    pool = envpool.make_gymnasium(env_id, num_envs=num_envs, num_threads=envpool_threads, seed=0)
    low, high = pool.action_space.low, pool.action_space.high
    actions = rng.uniform(low, high, size=(num_envs, *low.shape))
    rate, steps = _steps_per_second(lambda: pool.step(actions), pool.reset, num_envs, seconds)
    result["envpool"] = {"steps_per_s": rate, "steps": steps, "threads": envpool_threads}
    return result


# ---------------------------------------------------------------------------- thresholds
def _first_reached(rows: list[dict[str, str]], threshold: float, members_per_generation: int) -> dict | None:
    for row in rows:
        value = row.get("test_reward") or ""
        if value and float(value) >= threshold:
            generation = int(row["generation"])
            return {"generation": generation, "env_steps": int(float(row["env_steps"])),
                    "episodes": generation * members_per_generation, "wall_s": float(row["wall_time"])}
    return None


def train_run(env_id: str, seed: int, out: Path, budget: float, workers: int, extra: list[str]) -> dict[str, Any]:
    """One ``pytorch-es train`` run, stopped at the budget; what it reached and when."""
    thresholds = {"ars": ARS_THRESHOLDS.get(env_id), "trpo": TRPO_5M_LEVELS.get(env_id)}
    target = max((t for t in thresholds.values() if t is not None), default=None)
    command = [sys.executable, "-m", "pytorch_es", "train", env_id, "--seed", str(seed), "--out", str(out),
               "--workers", str(workers), "--quiet", "--target", "none" if target is None else str(target),
               "--generations", "1000000", *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = process.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else {}
    rows = []
    if (out / "metrics.csv").exists():
        with open(out / "metrics.csv") as file:
            rows = list(csv.DictReader(file))
    members = int(config.get("population", 0)) * int(config.get("episodes", 1))
    tests = [float(r["test_reward"]) for r in rows if r.get("test_reward")]
    return {
        "env_id": env_id, "seed": seed, "exit": process.returncode, "elapsed_s": time.perf_counter() - start,
        "generations": len(rows), "env_steps": int(float(rows[-1]["env_steps"])) if rows else 0,
        "best_test": max(tests) if tests else None,
        "reached": {name: (None if t is None else _first_reached(rows, t, members)) for name, t in thresholds.items()},
        "stderr_tail": err.strip().splitlines()[-1:] if err else [],
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in ("ars", "trpo"):
        hits = [r["reached"][name] for r in runs if r["reached"].get(name)]
        entry: dict[str, Any] = {"reached": f"{len(hits)}/{len(runs)}"}
        if len(hits) * 2 > len(runs):
            for key in ("env_steps", "episodes", "wall_s"):
                values = [h[key] for h in hits] + [float("inf")] * (len(runs) - len(hits))
                entry[f"median_{key}"] = statistics.median(values)
        summary[name] = entry
    bests = [r["best_test"] for r in runs if r["best_test"] is not None]
    summary["median_best_test"] = statistics.median(bests) if bests else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ARS_THRESHOLDS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds per env (fresh random ones)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    parser.add_argument("--envpool-threads", type=int, default=2)
    parser.add_argument("--json", help="also write all results to this file")
    args, extra = parser.parse_known_args()
    if extra and extra[0] == "--":
        extra = extra[1:]
    results: dict[str, Any] = {"load_before": _load()}
    if not args.no_throughput:
        results["throughput"] = []
        for env_id in THROUGHPUT_ENVS:
            row = throughput(env_id, args.num_envs, args.seconds, args.envpool_threads)
            results["throughput"].append(row)
            parts = [f"{k} {v['steps_per_s']:,.0f}/s" if "steps_per_s" in v else f"{k}: {v['error']}"
                     for k, v in row.items() if isinstance(v, dict)]
            print(f"{env_id} x{args.num_envs} raw env-steps/s: " + ", ".join(parts) + f" ({_load()})", flush=True)
    if not args.throughput_only:
        results["training"] = {}
        for env_id in args.envs:
            seeds = [int.from_bytes(os.urandom(4), "little") % (1 << 31) for _ in range(args.seeds)]
            runs = []
            with tempfile.TemporaryDirectory() as tmp:
                for seed in seeds:
                    run = train_run(env_id, seed, Path(tmp) / str(seed), args.budget, args.workers, extra)
                    runs.append(run)
                    print(json.dumps(run), flush=True)
            results["training"][env_id] = {"runs": runs, "summary": summarise(runs)}
            print(f"{env_id}: {json.dumps(results['training'][env_id]['summary'])} ({_load()})", flush=True)
    results["load_after"] = _load()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
