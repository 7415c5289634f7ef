"""OpenAI-ES on CartPole-v1 in one file, with only torch and gymnasium (no pytorch_es).

Evolution strategies (Salimans et al. 2017, "Evolution Strategies as a Scalable Alternative
to Reinforcement Learning", arXiv:1703.03864) treat the policy's weights theta as the mean
of a Gaussian search distribution N(theta, sigma^2 I), and climb the smoothed objective
J(theta) = E_eps[F(theta + sigma eps)] with a Monte-Carlo estimate of its gradient: no
backpropagation through the environment, only episode returns F. The library
(pytorch_es.OpenAIES) does the same with a shared noise table, parallel workers and
checkpoints; this file is the algorithm alone.

    python examples/minimal_es.py --seed 0

Measured (torch 2.13 CPU, a shared 2-core machine, load average 3 to 4): seeds 0..9 all reach a
test mean >= 475 over 100 episodes, in 14 to 35 generations (1 to 8 s of training; the whole
command, with Python's start-up, 8 to 11 s for seeds 0..4); the final center then averages 483
to 500 over 100 further episodes.
"""

import argparse
import time

import gymnasium as gym
import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seed", type=int, default=0, help="seeds the noise and the episode starts")
parser.add_argument("--generations", type=int, default=100, help="budget of ES updates")
parser.add_argument("--population-size", type=int, default=128, help="members per generation (even: +-eps pairs)")
parser.add_argument("--sigma", type=float, default=0.1, help="std of the parameter perturbations")
parser.add_argument("--lr", type=float, default=0.1, help="Adam step size on theta")
parser.add_argument("--test-episodes", type=int, default=100, help="greedy episodes of the center per test")
parser.add_argument("--target", type=float, default=475.0, help="stop when the test mean reaches it")
args = parser.parse_args()
if args.population_size < 2 or args.population_size % 2:
    parser.error(f"--population-size must be an even int >= 2, got {args.population_size}")
if args.generations < 1 or args.test_episodes < 1 or args.sigma <= 0:
    parser.error("--generations and --test-episodes must be >= 1, --sigma > 0")
torch.manual_seed(args.seed)

# The policy: logits = obs @ W + b, action = argmax (a linear policy; CartPole needs no more).
OBS, ACTIONS = 4, 2
DIM = OBS * ACTIONS + ACTIONS  # theta = [W.flatten(), b]


def returns(thetas: torch.Tensor, seed: int) -> torch.Tensor:
    """Return of one episode per row of ``thetas`` (n, DIM), all n played at once in
    gymnasium's vectorised CartPole (same dynamics as gym.make, 500 steps at most)."""
    n = thetas.shape[0]
    envs = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    W, b = thetas[:, : OBS * ACTIONS].view(n, OBS, ACTIONS), thetas[:, OBS * ACTIONS :]
    obs, _ = envs.reset(seed=seed)
    total, alive = torch.zeros(n), torch.ones(n, dtype=torch.bool)
    while alive.any():  # finished envs auto-reset: their later rewards are masked out
        logits = torch.bmm(torch.from_numpy(obs).unsqueeze(1), W).squeeze(1) + b  # (n, ACTIONS)
        obs, reward, terminated, truncated, _ = envs.step(logits.argmax(1).numpy())
        total += torch.from_numpy(reward) * alive
        alive &= ~torch.from_numpy(terminated | truncated)
    envs.close()
    return total


theta = torch.zeros(DIM)
optimizer = torch.optim.Adam([theta], lr=args.lr)  # the paper's choice; plain SGD works too
half = args.population_size // 2
start, env_steps = time.perf_counter(), 0
for generation in range(1, args.generations + 1):
    # 1. Antithetic Gaussian perturbations: eps_1..eps_{N/2} ~ N(0, I) and their mirrors -eps_k,
    #    members theta_i = theta + sigma * eps_i. Mirrored pairs cancel the even terms of F's
    #    Taylor expansion: same expected gradient, lower variance.
    eps = torch.randn(half, DIM)
    eps = torch.cat([eps, -eps])
    # 2. Fitness F_i: the return of one episode per member, from random starts (a new env seed each generation).
    rewards = returns(theta + args.sigma * eps, seed=args.seed * 100_003 + generation)
    env_steps += int(rewards.sum())  # CartPole pays 1 per step
    # 3. Centered ranks: u_i = rank(F_i) / (N - 1) - 1/2 in [-1/2, 1/2]; invariant to the scale of the
    #    returns, robust to outliers, zero-sum. Tied members (many episodes end at 500) share their mean
    #    rank: breaking ties by index would push theta along the eps of whichever member came later.
    below, equal = (rewards[None] < rewards[:, None]).sum(1), (rewards[None] == rewards[:, None]).sum(1)
    utilities = (below + (equal - 1) / 2) / (args.population_size - 1) - 0.5
    # 4. The gradient estimate: grad_theta E[F(theta + sigma eps)] ~ 1 / (N sigma) * sum_i u_i eps_i.
    gradient = utilities @ eps / (args.population_size * args.sigma)
    # 5. The update: ascent on J, so the optimizer (which minimises) gets -gradient.
    optimizer.zero_grad()
    theta.grad = -gradient
    optimizer.step()
    # Test the center itself (no noise) on fixed, unseen starts.
    test = returns(theta.expand(args.test_episodes, DIM), seed=10**6).mean().item()
    print(f"generation {generation}: reward mean {rewards.mean():.1f} max {rewards.max():.0f}, "
          f"test {test:.1f}, env steps {env_steps}, {time.perf_counter() - start:.1f} s")
    if test >= args.target:
        break
solved = "solved" if test >= args.target else "NOT solved"
print(f"{solved}: test mean {test:.1f} over {args.test_episodes} episodes (target {args.target:g}) "
      f"after {generation} generations, {env_steps} env steps, {time.perf_counter() - start:.1f} s")
final = returns(theta.expand(100, DIM), seed=2 * 10**6)  # 100 more starts, never used above
print(f"final center: mean {final.mean():.1f} (min {final.min():.0f}) over 100 fresh episodes")
