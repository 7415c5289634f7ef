"""MuJoCo locomotion benchmark (issue 15): env steps and wall time to published thresholds,
median over seeds, and the raw env-steps/s of the vector backends.

    python benchmarks/mujoco.py --throughput-only                 # raw env-steps/s, Hopper and HalfCheetah
    python benchmarks/mujoco.py --envs Hopper-v5 --seeds 5 --workers 2 --budget 600 -- --algo ars ...

Training part: each run is ``pytorch-es train ENV --seed S --target THRESHOLD`` as a user
types it (the env's preset, e.g. ARS on Swimmer-v5), in a subprocess stopped with SIGTERM at
``--budget`` seconds; options after ``--`` are passed through (strategy, population,
``--hidden none``, ``--reward-shift``, ...). From the run's ``metrics.csv`` it takes the first
generation whose greedy test mean reached each threshold: env steps (training episodes only,
the tests' steps excluded, as in both papers), training episodes (generations x population x
episodes per member) and wall time. Per env it reports the median over seeds; a seed that
never reached a threshold counts as not reached (the median is then reported only if more
than half reached it).

Thresholds:

* ``ARS``: Mania, Guy & Recht (2018), "Simple random search provides a competitive
  approach to reinforcement learning", Table 1's reward thresholds (Rajeswaran et al.'s),
  as filed in issue 15 (Swimmer 325, Hopper 3120, HalfCheetah 3430, Walker2d 4390, Ant 3580,
  Humanoid 6000). Humanoid's 6000 is in the paper's text (Sec. 4.2); the other numbers could
  not be read from the copies of the paper reachable here (their tables are stripped): check
  before quoting.
* ``TRPO``: Salimans et al. (2017), "Evolution strategies as a scalable alternative to
  reinforcement learning", supplement Table 3, the "TRPO score" of its 100% row (TRPO's level
  at 5M timesteps), which ES reached in 1.39e6 (Swimmer), 3.16e7 (Hopper), 2.88e6
  (HalfCheetah) and 3.79e7 (Walker2d) timesteps. These levels are lower than ARS's thresholds:
  the two papers' step counts are for different scores and are not compared with each other.

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

ARS_THRESHOLDS = {  # as filed in issue 15 (Mania et al. 2018, Table 1); only Humanoid's checked here
    "Swimmer-v5": 325.0, "Hopper-v5": 3120.0, "HalfCheetah-v5": 3430.0,
    "Walker2d-v5": 4390.0, "Ant-v5": 3580.0, "Humanoid-v5": 6000.0,
}
TRPO_5M_LEVELS: dict[str, float | None] = {  # Salimans et al. 2017, supplement Table 3, "TRPO score" at 100%
    "Swimmer-v5": 128.25, "Hopper-v5": 3403.46, "HalfCheetah-v5": 2385.79, "Walker2d-v5": 3830.03,
    "InvertedPendulum-v5": 1000.00, "InvertedDoublePendulum-v5": 9104.07,
}
ES_STEPS_TO_TRPO = {  # the same table: ES timesteps to reach those levels (the paper's anchor)
    "Swimmer-v5": 1.39e6, "Hopper-v5": 3.16e7, "HalfCheetah-v5": 2.88e6, "Walker2d-v5": 3.79e7,
    "InvertedPendulum-v5": 4.55e5, "InvertedDoublePendulum-v5": 5.39e6,
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
    members = (int(config.get("strategy", {}).get("population_size", 0))
               * int(config.get("problem", {}).get("episodes_per_member", 1)))
    tests = [float(r["test_reward"]) for r in rows if r.get("test_reward")]
    return {
        "env_id": env_id, "seed": seed, "exit": process.returncode, "elapsed_s": time.perf_counter() - start,
        "generations": len(rows), "env_steps": int(float(rows[-1]["env_steps"])) if rows else 0,
        "best_test": max(tests) if tests else None,
        "reached": {name: (None if t is None else _first_reached(rows, t, members)) for name, t in thresholds.items()},
        "stderr_tail": err.strip().splitlines()[-1:] if err else [],
    }


def summarise(env_id: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per threshold: how many seeds reached it and the medians; for TRPO's level, Salimans
    et al.'s ES timesteps beside ours and the ratio ours / theirs."""
    summary: dict[str, Any] = {}
    for name in ("ars", "trpo"):
        hits = [r["reached"][name] for r in runs if r["reached"].get(name)]
        entry: dict[str, Any] = {"reached": f"{len(hits)}/{len(runs)}"}
        if len(hits) * 2 > len(runs):
            for key in ("env_steps", "episodes", "wall_s"):
                values = [h[key] for h in hits] + [float("inf")] * (len(runs) - len(hits))
                entry[f"median_{key}"] = statistics.median(values)
        if name == "trpo" and "median_env_steps" in entry and env_id in ES_STEPS_TO_TRPO:
            entry["salimans_es_env_steps"] = ES_STEPS_TO_TRPO[env_id]
            entry["ratio_to_salimans"] = entry["median_env_steps"] / ES_STEPS_TO_TRPO[env_id]
        summary[name] = entry
    bests = [r["best_test"] for r in runs if r["best_test"] is not None]
    summary["median_best_test"] = statistics.median(bests) if bests else None
    return summary


def from_zoo(paths: list[str]) -> None:
    """The anchors of runs that ``benchmarks/zoo.py --json`` recorded (each run's test curve):
    per env, seeds that reached ARS's threshold and TRPO's level, median training episodes and
    env steps to each, beside the papers' figures (ARS's episodes are not printed: unverified)."""
    from pytorch_es.rl.presets import get_preset

    runs_by_env: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for key, runs in json.loads(Path(path).read_text()).items():
            name = key.split(":")[0]
            for run in runs:  # files written before zoo.py recorded it: the preset's population
                if "members_per_generation" not in run and name != "(generic)":
                    settings = get_preset(name).settings
                    run["members_per_generation"] = (settings["strategy"]["population_size"]
                                                     * settings.get("problem", {}).get("episodes_per_member", 1))
            runs_by_env.setdefault(key.split(":")[-1], []).extend(runs)
    for env_id, runs in runs_by_env.items():
        line = [f"{env_id} ({len(runs)} seeds)"]
        for name, threshold in (("ARS", ARS_THRESHOLDS.get(env_id)), ("TRPO", TRPO_5M_LEVELS.get(env_id))):
            if threshold is None:
                continue
            hits = []
            for run in runs:
                config_members = run.get("members_per_generation")
                first = next((point for point in run.get("curve", []) if point[3] >= threshold), None)
                if first is not None:
                    hits.append((first[0] * config_members if config_members else None, first[1], first[2]))
            text = f"{name} {threshold:g}: {len(hits)}/{len(runs)}"
            if len(hits) * 2 > len(runs):
                pad = [(float("inf"),) * 3] * (len(runs) - len(hits))
                episodes = statistics.median([h[0] if h[0] is not None else float("nan") for h in hits + pad])
                steps = statistics.median([h[1] for h in hits + pad])
                wall = statistics.median([h[2] for h in hits + pad])
                text += f", median {episodes:,.0f} episodes, {steps:,.0f} env steps, {wall:.0f} s"
                if name == "TRPO" and env_id in ES_STEPS_TO_TRPO:
                    text += (f" (Salimans et al.'s ES: {ES_STEPS_TO_TRPO[env_id]:.3g} steps; "
                             f"ratio {steps / ES_STEPS_TO_TRPO[env_id]:.2f})")
            line.append(text)
        print("; ".join(line))


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
    parser.add_argument("--from-zoo", nargs="+", metavar="JSON",
                        help="only print the anchors of runs recorded by benchmarks/zoo.py --json")
    args, extra = parser.parse_known_args()
    if args.from_zoo:
        from_zoo(args.from_zoo)
        return
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
            results["training"][env_id] = {"runs": runs, "summary": summarise(env_id, runs)}
            print(f"{env_id}: {json.dumps(results['training'][env_id]['summary'])} ({_load()})", flush=True)
    results["load_after"] = _load()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
