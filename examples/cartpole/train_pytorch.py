"""Train CartPole-v1 with ``EvolutionModule``, as the original PyTorch-ES example did.

    python examples/cartpole/train_pytorch.py --weights_path cartpole_weights.p
    python examples/cartpole/play_pytorch.py --weights_path cartpole_weights.p --gif cartpole.gif

The original's settings: a 4-100-2 softmax MLP, population 10, sigma 0.1, learning rate
0.001, a test every 10 iterations, stop after 20 consecutive tests at the goal. Ported
to Gymnasium 1.x: ``CartPole-v1`` (goal 475, its reward threshold) and env seeds, so a
run is reproducible. Every member of an iteration plays the same episode start (common
random numbers), a new one each iteration; the test plays 5 fixed other starts.

Measured (``--seed 0 --threads 2``, torch 2.13 CPU, a 2-core machine with load average 5
to 7): the tests score 478.6 at iteration 170 and 500 from iteration 190 on, as the
original's "about 200 iterations" promised; the goal (20 consecutive tests >= 475) is
reached at iteration 360 in 177.5 s, and the final weights average 500.0 over 100
episodes (env seeds 1000..1099). The same seed gives the same weights at any
``--threads``: each member evaluation builds its own model (see :func:`member_model`).
A run that ends without reaching the goal says so and exits with status 3.

``--weights_path`` is written at every test (atomically, no pickle; read it with
``pytorch_es.load_weights``) and is also a checkpoint: after a crash or Ctrl-C,
``--resume`` continues the run where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from evolution.strategies import EvolutionModule

ENV_ID = "CartPole-v1"
GOAL = 475.0
TEST_SEEDS = tuple(range(10_000, 10_005))


def build_model() -> nn.Module:
    """The original's policy: 4 observations -> 100 ReLU -> 2 action probabilities."""
    return nn.Sequential(nn.Linear(4, 100), nn.ReLU(), nn.Linear(100, 2), nn.Softmax(dim=-1))


def member_model(weights) -> nn.Module:
    """A model of its own holding ``weights``: each member evaluation builds one (about
    50 us), so threads never share a module. ``torch.func.functional_call`` on one shared
    model is not thread-safe: it swaps the parameters of that module in place, and with
    10 threads most calls returned another thread's member."""
    model = build_model().to(weights[0].device)
    with torch.no_grad():
        for parameter, weight in zip(model.parameters(), weights, strict=True):
            parameter.copy_(weight)
    return model


def play_episode(weights, env: gym.Env, seed: int) -> float:
    """Return of one greedy episode of the policy with ``weights``."""
    model = member_model(weights)
    device = weights[0].device
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    with torch.no_grad():
        while not done:
            batch = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
            obs, reward, terminated, truncated, _ = env.step(int(model(batch).argmax()))
            total += float(reward)
            done = terminated or truncated
    return total


def get_reward(weights, member_seeds, render=None):
    """``EvolutionModule`` calls ``get_reward(weights)`` for each member (``render`` stays
    ``None``: the iteration's episode seeds) and ``get_reward(weights, render=bool)`` for
    its test (the mean over ``TEST_SEEDS``, in a window if ``render`` is true)."""
    seeds = member_seeds() if render is None else TEST_SEEDS
    env = gym.make(ENV_ID, render_mode="human" if render else None)
    try:
        return float(np.mean([play_episode(weights, env, seed) for seed in seeds]))
    finally:
        env.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Train CartPole-v1 with EvolutionModule.")
    parser.add_argument("-w", "--weights_path", type=str, required=True, help="Path to save final weights")
    parser.add_argument("-c", "--cuda", action="store_true", help="Whether or not to use CUDA")
    parser.add_argument("--seed", type=int, default=0, help="run seed (noise, initial weights, env starts)")
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=10, help="threadcount")
    parser.add_argument("--render", action="store_true", help="show the test runs in a window")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --weights_path")
    args = parser.parse_args()
    if args.cuda and not torch.cuda.is_available():
        parser.error(f"--cuda: CUDA is not available (torch {torch.__version__}); run without -c/--cuda")

    torch.manual_seed(args.seed)
    model = build_model()
    if args.cuda:
        model = model.cuda()
    es: EvolutionModule | None = None

    def member_seeds() -> list[int]:
        # read while members are evaluated: the iteration counter moves only after them
        return [args.seed * 1_000_003 + es.iteration]

    es = EvolutionModule(
        list(model.parameters()),
        partial(get_reward, member_seeds=member_seeds),
        population_size=10,
        sigma=0.1,
        learning_rate=0.001,
        reward_goal=GOAL,
        consecutive_goal_stopping=20,
        threadcount=args.threads,
        cuda=args.cuda,
        render_test=args.render,
        save_path=args.weights_path,
        seed=args.seed,
    )
    if args.resume:
        print(f"resuming at iteration {es.load_checkpoint()}")
    start = time.time()
    final_weights = es.run(args.iterations, print_step=10)
    end = time.time() - start

    env = gym.make(ENV_ID)
    returns = [play_episode(final_weights, env, seed) for seed in range(1000, 1100)]
    env.close()
    print(f"Reward from final weights: {np.mean(returns):.2f} (mean of 100 episodes, env seeds 1000..1099)")
    if es.consecutive_goal_count >= es.consecutive_goal_stopping:
        print(f"Goal reached: {es.consecutive_goal_stopping} consecutive tests >= {GOAL:g}, "
              f"at iteration {es.iteration} ({end:.1f} s)")
        return 0
    print(f"Goal NOT reached in {es.iteration} iterations ({end:.1f} s): fewer than "
          f"{es.consecutive_goal_stopping} consecutive tests >= {GOAL:g}; continue with --resume")
    return 3


if __name__ == "__main__":
    sys.exit(main())
