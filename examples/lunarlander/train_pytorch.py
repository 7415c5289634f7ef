"""Train LunarLander-v3 with ``EvolutionModule``, as the original PyTorch-ES example did.

    python examples/lunarlander/train_pytorch.py --weights_path lunarlander_weights.p
    python examples/lunarlander/play_pytorch.py --weights_path lunarlander_weights.p --gif lander.gif

The original used an 8-100-4 softmax MLP, population 100, sigma 0.01, learning rate 0.001
with decay 0.9999, z-score fitness shaping and plain SGD (``--original`` restores them);
on this machine that reached a 10-episode mean of only -37 after 10 minutes. An 8-64-64-4
tanh MLP with Adam learned, but its center first settled on never firing an engine (tests
stuck at -118 for 50 iterations). This example uses what ``pytorch-es train
LunarLander-v3`` measured to work:

- a linear policy (8 observations -> 4 action scores, argmax), starting at zero, on
  observations normalised by fixed statistics: the mean and standard deviation of 20
  random-action episodes, computed the same way by the train and play scripts
  (:func:`observation_stats`), clipped to +-5;
- plain SGD, ``sigma=0.2``, ``learning_rate=0.2``, centered-rank fitness shaping;
- population 64, each member scored on 4 episodes whose starts are shared by the whole
  iteration (common random numbers) and change every iteration.

LunarLander counts as solved at a mean return of 200 over 100 episodes: training stops
after 3 consecutive tests (every 10 iterations, 10 fixed episodes) at 200 or more, and
the final weights are then scored on 100 episodes (env seeds 1000..1099). Measured with
``--seed 0`` on a 2-core machine with load average 6 to 8 from other work: tests of -46.5
at iteration 10, 137.5 at 20 and 210.3 at 40; the goal was reached at iteration 60 in
476 s, and the final weights average 246.4 over the 100 episodes. A run that ends
without reaching the goal says so and exits with status 3.

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


STATS_SEEDS = tuple(range(1_000_000, 1_000_020))  # the random-action episodes of observation_stats


class ObservationScaler(nn.Module):
    """``clip((obs - mean) / std, -5, 5)`` with fixed statistics (buffers, not trained)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / self.std).clamp(-5.0, 5.0)


def observation_stats() -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the observations of 20 random-action episodes
    (fixed env seeds and action seed: the same numbers in every run and in play)."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(0)
    observations = []
    for seed in STATS_SEEDS:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            observations.append(obs)
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
            done = terminated or truncated
    env.close()
    data = np.asarray(observations, dtype=np.float64)
    return data.mean(0), data.std(0) + 1e-8


def build_model(original: bool = False) -> nn.Module:
    """8 observations -> 4 action scores (argmax is the action)."""
    if original:
        return nn.Sequential(nn.Linear(8, 100), nn.ReLU(), nn.Linear(100, 4), nn.Softmax(dim=-1))
    model = nn.Sequential(ObservationScaler(*observation_stats()), nn.Linear(8, 4))
    with torch.no_grad():  # start from "no preference": the perturbations pick the first actions
        model[1].weight.zero_()
        model[1].bias.zero_()
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
            elif isinstance(layer, ObservationScaler):
                mean, std = layer.mean.numpy(), layer.std.numpy()
                self.layers.append(lambda x, mean=mean, std=std: np.clip((x - mean) / std, -5.0, 5.0))
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
    parser.add_argument("--episodes", type=int, help="episodes per member per iteration (default 4; --original 2)")
    parser.add_argument("--population", type=int, help="population size (default 64; --original 100)")
    parser.add_argument("--render", action="store_true", help="show the test runs in a window")
    parser.add_argument("--original", action="store_true", help="the original example's settings")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --weights_path")
    args = parser.parse_args()
    args.episodes = args.episodes or (2 if args.original else 4)
    args.population = args.population or (100 if args.original else 64)
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
        settings = {"sigma": 0.2, "learning_rate": 0.2, "fitness_shaping": "centered_ranks"}
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
