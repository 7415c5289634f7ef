"""What ``--vector auto`` rests on: a generation of a population's rollouts on Gymnasium's envs
against EnvPool's, in the same run.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/vector_speed.py
    python benchmarks/vector_speed.py --envs Hopper-v5 --population 64 --generations 7

Per env: ``GymProblem(env, linear policy, obs_norm=True)`` with ``vectorization="auto"``
(Gymnasium's vector entry point or sync vector env, what ``--vector gymnasium`` runs) and
``"envpool"`` (what ``--vector envpool`` runs; EnvPool's thread count is its default, one per
core it may use), each evaluating the same OpenAI-ES generations of ``--population`` members
(one episode each, episodes cut at 1000 steps). Prints the median seconds per generation, env
steps per second and EnvPool's time over Gymnasium's. The physics differ (EnvPool's build), so
episode lengths and returns are close, not equal: compare steps per second as well as time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# benchmarks/mujoco.py would shadow the mujoco package that Gymnasium's MuJoCo envs import
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

ENVS = ["CartPole-v1", "Acrobot-v1", "LunarLander-v3", "Hopper-v5", "HalfCheetah-v5"]


def seconds_per_generation(env_id: str, vector: str, population: int, generations: int) -> tuple[float, float]:
    """Median wall seconds of one generation's evaluation, and env steps per second overall."""
    from pytorch_es import strategies
    from pytorch_es.rl import GymProblem

    problem = GymProblem(env_id, {"hidden": ()}, vectorization=vector, obs_norm=True, max_steps=1000)
    try:
        strategy = strategies.get("openai-es")(problem.initial_center(0), population_size=population,
                                               sigma=0.1, seed=0)
        times, steps = [], 0
        for _ in range(generations):
            members = strategy.ask()
            began = time.perf_counter()
            evaluation = problem.evaluate(members, range(population))
            times.append(time.perf_counter() - began)
            steps += evaluation.env_steps
            strategy.tell(evaluation.rewards)
    finally:
        problem.close()
    return statistics.median(times), steps / sum(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--generations", type=int, default=5)
    args = parser.parse_args()
    print("load average %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    for env_id in args.envs:
        gym_s, gym_rate = seconds_per_generation(env_id, "auto", args.population, args.generations)
        pool_s, pool_rate = seconds_per_generation(env_id, "envpool", args.population, args.generations)
        print(f"{env_id:16s} population {args.population}: gymnasium {gym_s * 1e3:8.1f} ms/generation "
              f"({gym_rate:9,.0f} steps/s), envpool {pool_s * 1e3:8.1f} ms ({pool_rate:9,.0f} steps/s); "
              f"envpool/gymnasium time {pool_s / gym_s:.2f}, steps/s {pool_rate / gym_rate:.1f}x", flush=True)
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
