"""Time for EvoTorch 0.6.1 (PGPE + ClipUp) to solve CartPole-v1 or LunarLander-v3.

Runs inside .peers/evotorch (see setup.sh). ``--problem gymne`` uses GymNE (one env
per solution, in this process, or ``--actors N`` Ray actors); ``--problem vecgymne`` uses
VecGymNE (Gymnasium vector envs). Solved means a greedy mean >= the env's target (475,
200) over 100 episodes on env seeds 1000..1099, checked on the search center; checks are
not timed.

CartPole-v1: a 16-unit tanh MLP, PGPE with center lr 0.1, ClipUp max speed 0.2. LunarLander-v3:
the settings of EvoTorch's README example (a linear policy on normalised observations;
``PGPE(popsize=200, center_learning_rate=0.01125, stdev_learning_rate=0.1,
optimizer_config={"max_speed": 0.015}, radius_init=0.27, num_interactions=150000,
popsize_max=3200)``), without its reward decrease (LunarLander pays no survival bonus).

Prints one JSON line: {"library", "seed", "solved", "train_seconds", "generations", "env_steps"}.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

ENVS = {
    "CartPole-v1": {
        "target": 475.0, "network": "Linear(obs_length, 16) >> Tanh() >> Linear(16, act_length)",
        "pgpe": {"center_learning_rate": 0.1, "stdev_learning_rate": 0.1, "optimizer_config": {"max_speed": 0.2},
                 "radius_init": 0.27},
    },
    "LunarLander-v3": {
        "target": 200.0, "network": "Linear(obs_length, act_length)",
        "pgpe": {"center_learning_rate": 0.01125, "stdev_learning_rate": 0.1, "optimizer_config": {"max_speed": 0.015},
                 "radius_init": 0.27, "num_interactions": 150_000, "popsize_max": 3200},
    },
}


def greedy_mean(policy, env_id, episodes=100, seed=1000):
    env = gym.make(env_id)
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
    parser.add_argument("--env", choices=sorted(ENVS), default="CartPole-v1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problem", choices=["gymne", "vecgymne"], default="gymne")
    parser.add_argument("--popsize", type=int, default=50)
    parser.add_argument("--actors", type=int, default=0, help="Ray actors of GymNE (0: this process)")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--check-every", type=int, default=2)
    args = parser.parse_args()

    from evotorch.algorithms import PGPE
    from evotorch.neuroevolution import GymNE, VecGymNE

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.actors:
        import ray

        # a local Ray on loopback, as pytorch-es starts its own (Ray 2.60 rewrites 127.0.0.1)
        ray.init(num_cpus=args.actors, include_dashboard=False, _node_ip_address="127.0.0.2")
    env = ENVS[args.env]
    kind = GymNE if args.problem == "gymne" else VecGymNE
    problem = kind(args.env, env["network"], observation_normalization=True, num_actors=args.actors)
    searcher = PGPE(problem, popsize=args.popsize, optimizer="clipup", **env["pgpe"])
    train_seconds, generations, solved = 0.0, 0, False
    while train_seconds < args.max_seconds:
        start = time.perf_counter()
        for _ in range(args.check_every):
            searcher.step()
        train_seconds += time.perf_counter() - start
        generations += args.check_every
        policy = problem.to_policy(searcher.status["center"])
        target = env["target"]
        if greedy_mean(policy, args.env, episodes=10) >= target and greedy_mean(policy, args.env) >= target:
            solved = True
            break
    steps = int(searcher.status.get("total_interaction_count", 0))
    print(json.dumps({
        "library": f"EvoTorch 0.6.1 (PGPE+ClipUp, {args.problem})", "env": args.env, "seed": args.seed,
        "solved": solved, "train_seconds": train_seconds, "generations": generations, "env_steps": steps,
    }))


if __name__ == "__main__":
    main()
