"""Keras benchmark: generations per second of the Keras CartPole policy against torch.

The original's Keras policy, Input(4) -> Dense(100, relu) -> Dense(2, softmax), trained
with OpenAI-ES on CartPole-v1 through ``GymProblem`` (one vector env, one batched
forward per step), against the same architecture as a torch ``MLPPolicy`` (4-100-2,
relu). Both start from the same flat vector (the Keras initialisation; the two flat
layouts are the same, ``W`` (in x out) then ``b`` per layer) and use the same seed,
so they play exactly the same episodes: same rewards, same updates, same env steps
(checked). Only the policy forward differs. Each repeat runs ``--generations``
generations of ask -> evaluate -> tell per policy, in alternating order; the figure is
the median over repeats. Target: Keras within 2x of torch (ratio <= 2).

``--stateless`` also times the generic path (``vmap`` over ``model.stateless_call``) that
models other than a Sequential of Dense layers use.

    python benchmarks/keras.py                       # 7 repeats x 10 generations, population 256
    python benchmarks/keras.py --repeats 11 --threads 1 --stateless
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
# `python benchmarks/keras.py` puts benchmarks/ first on sys.path, where this file would
# shadow the real keras package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402

ENV_ID = "CartPole-v1"


def build_keras_model(seed: int):  # -> keras.Model
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def run(
    problem, center: torch.Tensor, population: int, generations: int, seed: int
) -> tuple[float, int, float]:
    """``generations`` of ask -> evaluate -> tell: (seconds, env steps, final mean reward)."""
    from pytorch_es import OpenAIES

    strategy = OpenAIES(center, population_size=population, sigma=0.1, lr=0.05, optimizer="adam", seed=seed)
    steps, rewards = 0, torch.zeros(1)
    start = time.perf_counter()
    for _ in range(generations):
        members = strategy.ask()
        result = problem.evaluate(members, range(len(members)))
        strategy.tell(result.rewards)
        steps += result.env_steps
        rewards = result.rewards
    return time.perf_counter() - start, steps, float(rewards.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--stateless", action="store_true", help="also time the stateless_call path")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import keras

    from pytorch_es.keras import keras_policy
    from pytorch_es.rl import GymProblem, MLPPolicy

    model = build_keras_model(0)
    keras_problem = GymProblem(ENV_ID, policy=keras_policy(model, ENV_ID))
    spaces = (keras_problem.observation_space, keras_problem.action_space)
    torch_problem = GymProblem(ENV_ID, policy=MLPPolicy(*spaces, hidden=(100,), activation="relu"))
    problems = {"torch": torch_problem, "keras": keras_problem}
    if args.stateless:
        problems["keras-stateless"] = GymProblem(ENV_ID, policy=keras_policy(model, ENV_ID, mode="stateless"))
    print(
        f"{ENV_ID}, population {args.population}, {args.generations} generations x {args.repeats} repeats, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), keras {keras.__version__}"
    )
    for name, problem in problems.items():
        print(f"  {name:16s} {problem.policy.describe()}")

    results: dict[str, list[tuple[float, int, float]]] = {name: [] for name in problems}
    names = list(problems)
    run(torch_problem, keras_problem.initial_center(), args.population, 1, 0)  # warm-up: envs, noise table
    for repeat in range(args.repeats):
        center = build_keras_model(repeat).trainable_weights
        center = torch.cat([torch.as_tensor(v.value).detach().reshape(-1) for v in center])
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(run(problems[name], center, args.population, args.generations, repeat))
        steps = {name: results[name][-1][1] for name in names}
        if len(set(steps.values())) != 1:
            raise SystemExit(f"repeat {repeat}: the policies played different episodes: env steps {steps}")
        print(
            f"repeat {repeat}: {steps['torch']} env steps, final mean reward {results['torch'][-1][2]:.1f}; "
            + ", ".join(f"{name} {args.generations / results[name][-1][0]:.2f} gen/s" for name in names)
        )

    print(f"\nmedian over {args.repeats} repeats (generations per second; env steps per second):")
    median = {}
    for name in names:
        rates = [args.generations / seconds for seconds, _, _ in results[name]]
        step_rates = [steps / seconds for seconds, steps, _ in results[name]]
        median[name] = statistics.median(rates)
        print(f"  {name:16s} {median[name]:7.2f} gen/s  {statistics.median(step_rates):10,.0f} env-steps/s")
    print("time ratio to torch (same episodes, so per-repeat ratios are paired; median of them):")
    for name in names[1:]:
        paired = statistics.median(
            mine[0] / theirs[0] for mine, theirs in zip(results[name], results["torch"], strict=True)
        )
        verdict = "within" if paired <= 2.0 else "NOT within"
        print(
            f"  {name} / torch: {paired:.2f}x ({verdict} the 2x target); "
            f"ratio of the medians above {median['torch'] / median[name]:.2f}x"
        )


if __name__ == "__main__":
    main()
