"""Time for EvoTorch 0.6.1 (PGPE + ClipUp) to solve CartPole-v1.

Runs inside .peers/evotorch (see setup.sh). ``--problem gymne`` uses GymNE (one env
per solution, in this process); ``--problem vecgymne`` uses VecGymNE (Gymnasium
vector envs). Solved means a greedy mean >= 475 over 100 episodes on env seeds
1000..1099, checked on the search center; checks are not timed.

Prints one JSON line: {"library", "seed", "solved", "train_seconds", "generations", "env_steps"}.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

NETWORK = "Linear(obs_length, 16) >> Tanh() >> Linear(16, act_length)"


def greedy_mean(policy, episodes=100, seed=1000):
    env = gym.make("CartPole-v1")
    returns = []
    with torch.no_grad():
        for episode in range(episodes):
            ob, _ = env.reset(seed=seed + episode)
            done, total = False, 0.0
            while not done:
                action = int(policy(torch.as_tensor(ob, dtype=torch.float32)).argmax())
                ob, reward, terminated, truncated, _ = env.step(action)
                done, total = terminated or truncated, total + reward
            returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problem", choices=["gymne", "vecgymne"], default="gymne")
    parser.add_argument("--popsize", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--check-every", type=int, default=2)
    args = parser.parse_args()

    from evotorch.algorithms import PGPE
    from evotorch.neuroevolution import GymNE, VecGymNE

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.problem == "gymne":
        problem = GymNE("CartPole-v1", NETWORK, observation_normalization=True, num_actors=0)
    else:
        problem = VecGymNE("CartPole-v1", NETWORK, observation_normalization=True, num_actors=0)
    searcher = PGPE(
        problem, popsize=args.popsize, center_learning_rate=0.1, stdev_learning_rate=0.1,
        optimizer="clipup", optimizer_config={"max_speed": 0.2}, radius_init=0.27,
    )
    train_seconds, generations, solved = 0.0, 0, False
    while train_seconds < args.max_seconds:
        start = time.perf_counter()
        for _ in range(args.check_every):
            searcher.step()
        train_seconds += time.perf_counter() - start
        generations += args.check_every
        policy = problem.to_policy(searcher.status["center"])
        if greedy_mean(policy, episodes=10) >= 475 and greedy_mean(policy) >= 475:
            solved = True
            break
    steps = int(searcher.status.get("total_interaction_count", 0))
    print(json.dumps({
        "library": f"EvoTorch 0.6.1 (PGPE+ClipUp, {args.problem})", "seed": args.seed, "solved": solved,
        "train_seconds": train_seconds, "generations": generations, "env_steps": steps,
    }))


if __name__ == "__main__":
    main()
