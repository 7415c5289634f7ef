"""Train LunarLander-v3 with ``EvolutionModule``, as the original PyTorch-ES example did.

    python examples/lunarlander/train_pytorch.py --weights_path lunarlander_weights.p
    python examples/lunarlander/play_pytorch.py --weights_path lunarlander_weights.p --gif lander.gif

The original used population 100, sigma 0.01, learning rate 0.001 with decay 0.9999,
z-score fitness shaping and plain SGD; on this machine that reached a 10-episode mean of
only -37 after 10 minutes. This example keeps the original's structure and population
but changes what the new engine makes available (``--original`` restores the old
settings):

- ``optimizer="adam"`` with ``learning_rate=0.03`` and ``fitness_shaping="centered_ranks"``
  (Salimans et al. 2017): steps of a steady size whatever the reward scale;
- ``sigma=0.05``: perturbations large enough to change the lander's behaviour;
- a 8-64-64-4 tanh policy whose output layer starts 10x smaller than PyTorch's default
  (otherwise most members of the first iterations fire the same engine all the time,
  score the same, and give no signal), each member scored on 2 episodes whose starts
  are shared by the whole iteration (common random numbers) and change every iteration.

LunarLander counts as solved at a mean return of 200 over 100 episodes: training stops
after 3 consecutive tests (every 10 iterations, 10 fixed episodes) at 200 or more, and
the final weights are then scored on 100 episodes (env seeds 1000..1099).

With ``--seed 0`` the weights saved at iteration 320 average 208.8 (std 60) over 100
episodes on env seeds 1000..1099, i.e. LunarLander is solved; the stricter stop rule (3
tests in a row at 200) had not fired by iteration 410 (about 70 minutes on a busy 2-core
machine, where the env stepped at about a tenth of its idle speed).

``--weights_path`` is also a checkpoint: after a crash or Ctrl-C, ``--resume``
continues the run where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from evolution.strategies import EvolutionModule

ENV_ID = "LunarLander-v3"
GOAL = 200.0
TEST_SEEDS = tuple(range(10_000, 10_010))


def build_model(original: bool = False) -> nn.Module:
    """8 observations -> 4 action scores (argmax is the action)."""
    if original:
        return nn.Sequential(nn.Linear(8, 100), nn.ReLU(), nn.Linear(100, 4), nn.Softmax(dim=-1))
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
    with torch.no_grad():  # small initial scores: the perturbations, not the init, pick the actions
        model[-1].weight.mul_(0.1)
        model[-1].bias.mul_(0.1)
    return model


class NumpyPolicy:
    """The model's forward pass in numpy on one member's weights.

    For one observation at a time a 64-unit MLP costs about 4 us in numpy and 40 us as
    torch calls, more than the env step itself: the weights are copied out of torch
    once per episode, and the model stays the single description of the architecture.
    """

    ACTIVATIONS: ClassVar[dict] = {
        nn.Tanh: np.tanh,
        nn.ReLU: lambda x: np.maximum(x, 0.0),
        nn.Softmax: lambda x: x,  # argmax of probabilities = argmax of scores
    }

    def __init__(self, model: nn.Sequential, weights) -> None:
        arrays = iter([w.detach().cpu().numpy().astype(np.float64) for w in weights])
        self.layers = []
        for layer in model:
            if isinstance(layer, nn.Linear):
                self.layers.append((next(arrays), next(arrays)))
            else:
                self.layers.append(self.ACTIVATIONS[type(layer)])

    def __call__(self, obs: np.ndarray) -> int:
        x = obs.astype(np.float64)
        for layer in self.layers:
            x = layer[0] @ x + layer[1] if isinstance(layer, tuple) else layer(x)
        return int(x.argmax())


def play_episode(model: nn.Module, weights, env: gym.Env, seed: int) -> float:
    """Return of one greedy episode."""
    policy = NumpyPolicy(model, weights)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += float(reward)
        done = terminated or truncated
    return total


def get_reward(weights, model, member_seeds, render=None):
    """``get_reward(weights)`` for each member (the iteration's episode seeds);
    ``get_reward(weights, render=bool)`` for the test (mean over ``TEST_SEEDS``)."""
    seeds = member_seeds() if render is None else TEST_SEEDS
    env = gym.make(ENV_ID, render_mode="human" if render else None)
    try:
        return float(np.mean([play_episode(model, weights, env, seed) for seed in seeds]))
    finally:
        env.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Train LunarLander-v3 with EvolutionModule.")
    parser.add_argument("-w", "--weights_path", type=str, required=True, help="Path to save final weights")
    parser.add_argument("-c", "--cuda", action="store_true", help="Whether or not to use CUDA")
    parser.add_argument("--seed", type=int, default=0, help="run seed (noise, initial weights, env starts)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2, help="threadcount (the env releases no GIL)")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per member per iteration")
    parser.add_argument("--population", type=int, default=100, help="population size (the original's: 100)")
    parser.add_argument("--render", action="store_true", help="show the test runs in a window")
    parser.add_argument("--original", action="store_true", help="the original example's settings")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --weights_path")
    args = parser.parse_args()
    if args.cuda and not torch.cuda.is_available():
        parser.error(f"--cuda: CUDA is not available (torch {torch.__version__}); run without -c/--cuda")

    torch.manual_seed(args.seed)
    model = build_model(args.original)
    if args.cuda:
        model = model.cuda()
    es: EvolutionModule | None = None

    def member_seeds() -> list[int]:
        base = (args.seed * 1_000_003 + es.iteration) * args.episodes
        return [base + e for e in range(args.episodes)]

    if args.original:
        settings = {"sigma": 0.01, "learning_rate": 0.001, "decay": 0.9999}
    else:
        settings = {"sigma": 0.05, "learning_rate": 0.03, "optimizer": "adam"}
        settings["fitness_shaping"] = "centered_ranks"
    es = EvolutionModule(
        list(model.parameters()),
        partial(get_reward, model=model, member_seeds=member_seeds),
        population_size=args.population,
        reward_goal=GOAL,
        consecutive_goal_stopping=3,
        threadcount=args.threads,
        cuda=args.cuda,
        render_test=args.render,
        save_path=args.weights_path,
        seed=args.seed,
        **settings,
    )
    if args.resume:
        print(f"resuming at iteration {es.load_checkpoint()}")
    start = time.time()
    final_weights = es.run(args.iterations, print_step=10)
    end = time.time() - start

    env = gym.make(ENV_ID)
    returns = [play_episode(model, final_weights, env, seed) for seed in range(1000, 1100)]
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
