"""Time to solve LunarLander-v3 with PGPE, side by side in one run: pytorch-es against EvoTorch.

- pytorch-es: ``pytorch-es train --preset LunarLander-v3-pgpe --workers W --seed S`` in its own
  process (``benchmarks/rl.py``'s ``train_subprocess``; SIGTERM at ``--budget`` seconds of
  training). Solved means the command's own 100-episode greedy test passed 200 and it exited
  0; its time is the run's training wall time from ``metrics.csv``, those tests included.
- EvoTorch 0.6.1: PGPE + ClipUp with the settings of its README's LunarLander example
  (population 200, adaptive up to 3200), on GymNE or VecGymNE with ``--actors`` Ray actors
  (``peers/evotorch_gym.py``). Solved means a greedy mean >= 200 over 100 episodes on env
  seeds 1000..1099, checked on the center every 2 generations; the checks are not timed.

Both get the same fresh seeds. Prints each run, the medians (an unsolved run counts as
infinite) and EvoTorch's median over ours. Pin the whole run to the cores it may use, e.g.
``taskset -c 0`` with ``--workers 1 --actors 0``::

    bash benchmarks/peers/setup.sh evotorch
    taskset -c 0 python benchmarks/compare_lunarlander.py --seeds 5 --peer-seeds 3 --workers 1 --actors 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds for pytorch-es")
    parser.add_argument("--peer-seeds", type=int, default=None, help="how many of them EvoTorch runs (default all)")
    parser.add_argument("--budget", type=float, default=900.0, help="training seconds per run")
    parser.add_argument("--workers", type=int, default=1, help="pytorch-es --workers")
    parser.add_argument("--actors", type=int, default=0, help="EvoTorch's Ray actors (0: in its process)")
    parser.add_argument("--problem", choices=["gymne", "vecgymne"], default="vecgymne", help="EvoTorch's problem class")
    args = parser.parse_args()

    from compare_cartpole import run_peer
    from rl import fresh_seeds, train_subprocess

    print("load average %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    seeds = fresh_seeds(args.seeds)
    ours = []
    for seed in seeds:
        run = train_subprocess("LunarLander-v3", seed, args.budget, "--preset", "LunarLander-v3-pgpe",
                               "--workers", str(args.workers))
        ours.append(run)
        print(f"pytorch-es seed {seed}: solved={run['solved']} {run['seconds']:.1f} s, {run['generations']} "
              f"generations, {run['env_steps']} env steps", flush=True)
    peer = f"EvoTorch 0.6.1 PGPE+ClipUp, {args.problem}, {args.actors} actors"
    theirs = []
    for seed in seeds[: args.peer_seeds]:
        run = run_peer(".peers/evotorch", ["evotorch_gym.py", "--env", "LunarLander-v3", "--problem", args.problem,
                                           "--popsize", "200", "--actors", str(args.actors)], seed, args.budget)
        theirs.append(run)
        detail = run.get("error") or f"{run.get('generations')} generations, {run.get('env_steps')} env steps"
        print(f"{peer} seed {seed}: solved={run['solved']} {run['train_seconds']:.1f} s, {detail}", flush=True)

    def median_seconds(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] if r["solved"] else float("inf") for r in runs)

    mine, peer_median = median_seconds(ours, "seconds"), median_seconds(theirs, "train_seconds")
    print(f"\npytorch-es (--workers {args.workers}): {sum(r['solved'] for r in ours)}/{len(ours)} solved, "
          f"median {mine:.1f} s")
    print(f"{peer}: {sum(r['solved'] for r in theirs)}/{len(theirs)} solved, median {peer_median:.1f} s, "
          f"{peer_median / mine:.2f}x ours")
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
