"""The env zoo table: every preset (or the generic defaults on an env without one), trained
from the CLI on fresh random seeds, then evaluated greedily on 100 episodes.

    python benchmarks/zoo.py                              # every shipped preset, 5 seeds each
    python benchmarks/zoo.py --preset CartPole-v1 --seeds 3
    python benchmarks/zoo.py --env Acrobot-v1 --env MountainCarContinuous-v0   # no preset: generic defaults
    python benchmarks/zoo.py --preset Hopper-v5 --json hopper.json --png curves.png   # test curves too
    python benchmarks/zoo.py --replot swimmer.json hopper.json --png docs/mujoco_curves.png

Each run is ``pytorch-es train (--preset NAME | ENV) --seed S`` in its own process, stopped
with SIGTERM once its training wall time passes ``--budget`` seconds, then ``pytorch-es eval
DIR --episodes 100`` of the best policy it saved (env seeds 10000..10099, never used in
training or its tests). Per preset it prints one markdown row: env, strategy, population x
episodes, how many seeds reached the target, the median env steps and training wall time of
those that did, and the final 100-episode greedy mean over the seeds (median, min, max). The
seeds are drawn fresh from the OS and printed; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
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

from pytorch_es.rl.presets import available_presets
from pytorch_es.training import read_metrics
from pytorch_es.training.config import resolve_config


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def fresh_seeds(count: int) -> list[int]:
    rng = random.SystemRandom()
    return sorted(rng.sample(range(1 << 31), count))


def train_and_eval(what: list[str], seed: int, budget_s: float, workers: str | None) -> dict[str, Any]:
    """One seed: train (SIGTERM at the budget), then the 100-episode greedy eval of its best policy."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "run"
        argv = [sys.executable, "-m", "pytorch_es", "train", *what, "--seed", str(seed), "--quiet",
                "--out", str(directory), *(["--workers", workers] if workers else [])]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        start = time.monotonic()
        while process.poll() is None:
            time.sleep(0.5)
            if time.monotonic() - start > budget_s:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=300)
        stderr = process.stderr.read() if process.stderr else ""
        rows = read_metrics(directory / "metrics.csv") if (directory / "metrics.csv").exists() else []
        config = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
        tests = [r["test_reward"] for r in rows if r.get("test_reward") is not None]
        result = {
            "seed": seed, "exit": process.returncode, "solved": process.returncode == 0,
            "generations": len(rows), "env_steps": int(rows[-1]["env_steps"]) if rows else 0,
            "seconds": float(rows[-1]["wall_time"]) if rows else 0.0,
            "best_test": max(tests) if tests else None, "target": config.get("target"),
            "members_per_generation": (config.get("strategy", {}).get("population_size", 0)
                                       * config.get("problem", {}).get("episodes_per_member", 1)),
            "curve": [[int(r["generation"]), int(r["env_steps"]), round(float(r["wall_time"]), 2), r["test_reward"]]
                      for r in rows if r.get("test_reward") is not None],
            "error": stderr.strip().splitlines()[-1] if process.returncode not in (0, 3, 143) and stderr else None,
        }
        if (directory / "policy.json").exists():
            done = subprocess.run([sys.executable, "-m", "pytorch_es", "eval", str(directory), "--episodes", "100",
                                   "--seed", "10000", "--json"], capture_output=True, text=True, timeout=1800)
            result["final_mean"] = json.loads(done.stdout)["mean_return"] if done.returncode == 0 else None
        return result


def plot_curves(everything: dict[str, list[dict[str, Any]]], path: str) -> None:
    """One panel per preset: each seed's greedy test mean against training env steps, with
    the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, runs in everything.items() if any(r.get("curve") for r in runs)]
    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        for run in everything[name]:
            if run.get("curve"):
                steps = [point[1] for point in run["curve"]]
                axis.plot(steps, [point[3] for point in run["curve"]], linewidth=1)
            if run.get("target") is not None:
                axis.axhline(run["target"], color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(name.split(":")[-1] if name.split(":")[0] == name.split(":")[-1] else name, fontsize=9)
        axis.set_xlabel("training env steps")
        axis.set_ylabel("greedy test mean")
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def row(name: str, config: Any, runs: list[dict[str, Any]]) -> str:
    solved = [r for r in runs if r["solved"]]
    finals = [r["final_mean"] for r in runs if r.get("final_mean") is not None]
    steps = f"{statistics.median(r['env_steps'] for r in solved):,.0f}" if solved else "-"
    wall = f"{statistics.median(r['seconds'] for r in solved):.1f}" if solved else "-"
    final = (f"{statistics.median(finals):.1f} ({min(finals):.1f} to {max(finals):.1f})" if finals else "-")
    target = "-" if config.target is None else f"{config.target:g}"
    return (f"| {config.env_id} | {name} | {config.strategy.name} | {config.strategy.population_size} x "
            f"{config.problem.episodes_per_member} | {target} | {len(solved)}/{len(runs)} | {steps} | {wall} | "
            f"{final} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="a preset to run (repeatable; default: every one)")
    parser.add_argument("--env", action="append", default=[], help="an env to run with its defaults (repeatable)")
    parser.add_argument("--seeds", type=int, default=5, help="fresh random seeds per preset")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training per seed")
    parser.add_argument("--workers", help="--workers of each run (default: the CLI's choice)")
    parser.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    parser.add_argument("--png", metavar="FILE", help="also plot each run's test curve (with --replot: from JSONs)")
    parser.add_argument("--replot", metavar="JSON", nargs="+", help="only plot --png from earlier --json files")
    args = parser.parse_args()
    if args.replot:
        plot_curves({k: v for path in args.replot for k, v in json.loads(Path(path).read_text()).items()}, args.png)
        return

    jobs: list[tuple[str, list[str]]] = []
    if args.preset or not args.env:
        names = args.preset or [preset.name for preset in available_presets()]
        jobs += [(name, ["--preset", name]) for name in names]
    jobs += [("(generic)", [env]) for env in args.env]
    print(f"{len(jobs)} configs x {args.seeds} fresh seeds, {args.budget:g} s each; {load()}", flush=True)
    lines, everything = [], {}
    for name, what in jobs:
        config = resolve_config(what[0] if name == "(generic)" else None,
                                preset=None if name == "(generic)" else name, new_seed=lambda: 0)
        seeds = fresh_seeds(args.seeds)
        print(f"{name} ({config.env_id}): seeds {seeds}", flush=True)
        runs = []
        for seed in seeds:
            run = train_and_eval(what, seed, args.budget, args.workers)
            print(f"  seed {seed}: exit {run['exit']}, {run['generations']} generations, {run['env_steps']:,} "
                  f"env steps, {run['seconds']:.1f} s, best test {run['best_test']}, "
                  f"final 100-episode mean {run.get('final_mean')}" + (f"; {run['error']}" if run["error"] else ""),
                  flush=True)
            runs.append(run)
        lines.append(row(name, config, runs))
        everything[f"{name}:{config.env_id}"] = runs
        print(lines[-1], f"({load()})", flush=True)
    print("\n| env | preset | strategy | population x episodes | target | reached | median env steps | "
          "median wall s | final 100-episode mean: median (min to max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    if args.png:
        plot_curves(everything, args.png)


if __name__ == "__main__":
    main()
