"""Time for the ORIGINAL PyTorch-ES (pytorch-es==0.1.1) to solve CartPole-v1.

Runs inside .peers/original (see setup.sh), never in the project's venv: the old
package imports as ``pytorch_es`` too. Its README's CartPole settings: a 4-100-2
softmax MLP, population 10, sigma 0.1, learning rate 0.001; the reward function is
its example's, ported to the Gymnasium API. Solved means a greedy mean >= 475 over
100 episodes on env seeds 1000..1099; those checks are not timed.

Prints one JSON line: {"library", "seed", "solved", "train_seconds", "iterations", "env_steps"}.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import time
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pytorch_es import EvolutionModule

STEPS = [0]


def get_reward(weights, model, render=False):
    """The original example's reward function, on Gymnasium's API."""
    cloned_model = copy.deepcopy(model)
    for i, param in enumerate(cloned_model.parameters()):
        param.data.copy_(weights[i])
    env = gym.make("CartPole-v1")
    ob, _ = env.reset()
    done = False
    total_reward = 0.0
    while not done:
        batch = torch.from_numpy(ob[np.newaxis, ...]).float()
        prediction = cloned_model(batch)
        action = int(prediction.data.numpy().argmax())
        ob, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        total_reward += reward
        STEPS[0] += 1
    env.close()
    return total_reward


def greedy_mean(model, episodes=100, seed=1000):
    env = gym.make("CartPole-v1")
    returns = []
    with torch.no_grad():
        for episode in range(episodes):
            ob, _ = env.reset(seed=seed + episode)
            done, total = False, 0.0
            while not done:
                action = int(model(torch.from_numpy(ob).float()).argmax())
                ob, reward, terminated, truncated, _ = env.step(action)
                done, total = terminated or truncated, total + reward
            returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = nn.Sequential(nn.Linear(4, 100), nn.ReLU(True), nn.Linear(100, 2), nn.Softmax(dim=-1))
    es = EvolutionModule(
        list(model.parameters()), partial(get_reward, model=model), population_size=10,
        sigma=0.1, learning_rate=0.001, threadcount=args.threads,
    )
    np.random.seed(args.seed)  # the old module reseeds from the clock; make runs repeatable
    train_seconds, iterations, solved = 0.0, 0, False
    while train_seconds < args.max_seconds:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its test-run printout
            es.run(args.check_every, print_step=args.check_every)
        train_seconds += time.perf_counter() - start
        iterations += args.check_every
        # a 10-episode screen first, then the real 100-episode check (neither is timed)
        if greedy_mean(model, episodes=10) >= 475 and greedy_mean(model) >= 475:
            solved = True
            break
    print(json.dumps({
        "library": f"pytorch-es 0.1.1 (original, {args.threads} thread(s))", "seed": args.seed,
        "solved": solved, "train_seconds": train_seconds, "iterations": iterations, "env_steps": STEPS[0],
    }))


if __name__ == "__main__":
    main()
