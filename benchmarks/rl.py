"""Gymnasium benchmarks: CartPole time-to-solve, population rollout throughput, LunarLander.

    python benchmarks/rl.py --cartpole-seeds 5 --throughput --lunar-seeds 0
    python benchmarks/rl.py --cartpole-seeds 0 --lunar-seeds 5 --lunar-budget 300

*Solved* means a greedy mean return >= the target over 100 episodes on env seeds
1000..1099 (CartPole-v1: 475, LunarLander-v3: 200). Training time counts everything
after the imports (env creation, rollouts, updates) except those solve checks; the
loop is a plain ask -> evaluate -> tell with OpenAI-ES and the per-env defaults of
``pytorch_es.rl.defaults``. The machine is usually shared: the load average is
printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pytorch_es import OpenAIES
from pytorch_es.evaluation import SerialEvaluator
from pytorch_es.rl import GymProblem, get_defaults


def load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def train(
    env_id: str,
    seed: int,
    *,
    budget_s: float,
    check_every: int = 1,
    check_above: float | None = None,
    verbose: bool = False,
    workers: int = 1,
    **overrides: Any,
) -> dict[str, Any]:
    """Train with the env's defaults (``overrides`` replace some) until the 100-episode greedy
    mean of the center reaches the target, or ``budget_s`` seconds of training pass."""
    start = time.perf_counter()
    excluded = 0.0
    defaults = replace(get_defaults(env_id), **overrides)
    problem = GymProblem(
        env_id, {"hidden": defaults.hidden, "activation": defaults.activation},
        episodes_per_member=defaults.episodes, max_steps=defaults.max_steps, obs_norm=defaults.obs_norm,
    )
    strategy = OpenAIES(
        problem.initial_center(seed), population_size=defaults.population, sigma=defaults.sigma,
        lr=defaults.lr, optimizer=defaults.optimizer, fitness_shaping=defaults.fitness_shaping, seed=seed,
    )
    if workers > 1:  # worker processes, each evaluating chunks of members
        from pytorch_es.evaluation import make_evaluator

        evaluator = make_evaluator("processes", workers, problem=problem)
    else:
        evaluator = SerialEvaluator()
    target = defaults.target
    env_steps, generation, score = 0, 0, float("-inf")
    while time.perf_counter() - start - excluded < budget_s and generation < defaults.generations:
        population = strategy.ask()
        result = evaluator.evaluate(population, problem)
        strategy.tell(result.rewards)
        env_steps += result.env_steps
        generation += 1
        mean_reward = float(result.rewards.mean())
        check_start = time.perf_counter()
        if generation % check_every == 0 and (check_above is None or mean_reward >= check_above):
            score = float(problem.evaluate_policy(strategy.center, episodes=100, seed=1000).mean())
        excluded += time.perf_counter() - check_start
        if verbose:
            elapsed = time.perf_counter() - start - excluded
            print(f"    gen {generation:4d}  mean {mean_reward:8.1f}  max {float(result.rewards.max()):8.1f}"
                  f"  test {score:8.1f}  steps {env_steps:9d}  t {elapsed:6.1f}s", flush=True)
        if score >= target:
            break
    elapsed = time.perf_counter() - start - excluded
    evaluator.close()
    problem.close()
    return {
        "seed": seed, "solved": score >= target, "seconds": elapsed, "generations": generation,
        "env_steps": env_steps, "test_mean": score, "steps_per_s": env_steps / max(elapsed, 1e-9),
    }


def report_solves(name: str, runs: list[dict[str, Any]], limit_s: float) -> dict[str, Any]:
    for run in runs:
        print(f"  seed {run['seed']}: {'solved' if run['solved'] else 'NOT solved'} in "
              f"{run['seconds']:.3f} s, {run['generations']} generations, {run['env_steps']} env steps "
              f"({run['steps_per_s']:,.0f}/s), test mean {run['test_mean']:.1f}")
    times = [r["seconds"] if r["solved"] else float("inf") for r in runs]
    summary = {
        "median_s": statistics.median(times),
        "max_s": max(times),
        "solved": sum(r["solved"] for r in runs),
        "within_limit": sum(t <= limit_s for t in times),
        "median_env_steps": statistics.median(r["env_steps"] for r in runs),
        "median_generations": statistics.median(r["generations"] for r in runs),
        "runs": runs,
    }
    print(f"  {name}: median {summary['median_s']:.3f} s, max {summary['max_s']:.3f} s, "
          f"{summary['solved']}/{len(runs)} solved, {summary['within_limit']} within {limit_s:g} s, "
          f"median env steps {summary['median_env_steps']:,.0f}  [{load()}]", flush=True)
    return summary


def cartpole(seeds: int, verbose: bool) -> dict[str, Any]:
    print(f"CartPole-v1 time to solve (defaults {get_defaults('CartPole-v1').as_dict()})")
    train("CartPole-v1", 10_000, budget_s=0.2)  # warm up (imports of lazily loaded modules, caches)
    runs = [train("CartPole-v1", seed, budget_s=30.0, verbose=verbose) for seed in range(seeds)]
    return report_solves("CartPole-v1", runs, 0.5)


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


def lunar(seeds: int, budget_s: float, verbose: bool, workers: int) -> dict[str, Any]:
    print(f"LunarLander-v3 time to solve (defaults {get_defaults('LunarLander-v3').as_dict()}), "
          f"budget {budget_s:g} s per seed, {workers} evaluation process(es)")
    runs = [
        train("LunarLander-v3", seed, budget_s=budget_s, check_every=1, check_above=100.0, verbose=verbose,
              workers=workers)
        for seed in range(seeds)
    ]
    return report_solves("LunarLander-v3", runs, 300.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cartpole-seeds", type=int, default=5)
    parser.add_argument("--throughput", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--throughput-repeats", type=int, default=5,
                        help="interleaved raw-env / rollout repeats of the throughput figure (default 5)")
    parser.add_argument("--lunar-seeds", type=int, default=0)
    parser.add_argument("--lunar-budget", type=float, default=300.0, help="training seconds per seed")
    parser.add_argument("--lunar-workers", type=int, default=1,
                        help="evaluation processes for LunarLander (default 1: serial, in-process)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every generation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, {args.threads} torch thread(s), "
          f"{os.cpu_count()} cpus, {load()}")
    figures: dict[str, Any] = {}
    if args.cartpole_seeds:
        figures["cartpole"] = cartpole(args.cartpole_seeds, args.verbose)
    if args.throughput:
        figures["throughput"] = throughput(args.throughput_repeats)
    if args.lunar_seeds:
        figures["lunarlander"] = lunar(args.lunar_seeds, args.lunar_budget, args.verbose, args.lunar_workers)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=2, default=float)


if __name__ == "__main__":
    main()
