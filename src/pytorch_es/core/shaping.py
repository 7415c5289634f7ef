"""Fitness shaping: rewards -> utilities, all with the signature ``f(rewards) -> Tensor``.

Every function returns a tensor of the same shape whose entries sum to zero, so a
population with all-equal rewards yields a zero update (never NaN), and the
gradient estimate ``1/(N sigma) sum_i u_i eps_i`` is invariant to adding a constant
to every reward.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

FitnessShaping = Callable[[torch.Tensor], torch.Tensor]


def centered_ranks(rewards: torch.Tensor) -> torch.Tensor:
    """Ranks mapped linearly onto [-0.5, 0.5]; tied rewards share their mean rank.

    Salimans et al. (2017), section 2.2; evosax ``centered_rank_trafo``.
    """
    n = rewards.numel()
    if n < 2:
        return torch.zeros_like(rewards, dtype=torch.float64)
    flat = _flat_float64(rewards)
    ordered, order = torch.sort(flat, stable=True)
    if _strictly_increasing(ordered):  # no ties: the rank is the sorted position
        ranks = torch.empty(n, dtype=torch.float64).index_copy_(0, order, _centered_positions(n))
        return ranks if rewards.dim() == 1 else ranks.reshape(rewards.shape)
    _, inverse, counts = torch.unique(flat, sorted=True, return_inverse=True, return_counts=True)
    # Ranks 0..n-1 in sorted order; a group of c ties starting at rank s gets s + (c-1)/2.
    starts = torch.cumsum(counts, 0) - counts
    mean_rank = starts.to(torch.float64) + (counts.to(torch.float64) - 1) / 2
    ranks = mean_rank[inverse]
    return (ranks / (n - 1) - 0.5).reshape(rewards.shape)


def z_score(rewards: torch.Tensor) -> torch.Tensor:
    """``(r - mean) / std`` (population std), the original PyTorch-ES shaping.

    All-equal rewards give zeros instead of the original's 0/0 = NaN.
    """
    flat = rewards.to(torch.float64)
    centered = flat - flat.mean()
    std = flat.std(unbiased=False)
    if not torch.isfinite(std) or std <= 1e-12 * max(1.0, float(flat.abs().max())):
        return torch.zeros_like(centered)
    return centered / std


def raw(rewards: torch.Tensor) -> torch.Tensor:
    """Raw rewards minus their mean: the baseline keeps the expected gradient and
    makes all-equal rewards a zero update."""
    flat = rewards.to(torch.float64)
    return flat - flat.mean()


def nes_utilities(rewards: torch.Tensor) -> torch.Tensor:
    """The NES rank utilities of Wierstra et al. (2014), "Natural Evolution Strategies", eq. 13:

        u_k = max(0, log(N/2 + 1) - log(k)) / sum_j max(0, log(N/2 + 1) - log(j)) - 1/N

    for the member of rank ``k`` (1 = best of ``N``). Tied rewards share the mean
    utility of their ranks, so the utilities always sum to zero.
    """
    n = rewards.numel()
    if n < 2:
        return torch.zeros_like(rewards, dtype=torch.float64)
    single, group_sums = _nes_position_utilities(n)
    flat = _flat_float64(rewards)
    ordered, order = torch.sort(flat, stable=True)
    if _strictly_increasing(ordered):  # no ties: each member takes its position's utility
        utilities = torch.empty(n, dtype=torch.float64).index_copy_(0, order, single)
        utilities = utilities - utilities.mean()
        return utilities if rewards.dim() == 1 else utilities.reshape(rewards.shape)
    _, inverse, counts = torch.unique(flat, sorted=True, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group_mean = (group_sums[starts + counts] - group_sums[starts]) / counts.to(torch.float64)
    utilities = group_mean[inverse]
    return (utilities - utilities.mean()).reshape(rewards.shape)


def _flat_float64(rewards: torch.Tensor) -> torch.Tensor:
    """``rewards`` as a 1-D float64 tensor (itself when it already is one)."""
    if rewards.dim() == 1 and rewards.dtype == torch.float64:
        return rewards
    return rewards.reshape(-1).to(torch.float64)


def _strictly_increasing(ordered: torch.Tensor) -> bool:
    """No two sorted values are equal (no ties)."""
    return bool(torch.lt(ordered[:-1], ordered[1:]).all())


@functools.lru_cache(maxsize=8)
def _centered_positions(n: int) -> torch.Tensor:
    """``k / (n - 1) - 0.5`` for positions ``k = 0 .. n-1`` (shared: do not modify)."""
    return torch.arange(n, dtype=torch.float64) / (n - 1) - 0.5


@functools.lru_cache(maxsize=8)
def _nes_position_utilities(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Running sums (from 0) of the utilities of the positions in ascending reward order, and
    each position's utility as their difference (what a group of one tie gets, bit for bit)."""
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    raw_utility = (math.log(n / 2 + 1) - torch.log(ranks)).clamp(min=0.0)
    by_position = (raw_utility / raw_utility.sum() - 1.0 / n).flip(0)
    group_sums = torch.cumsum(torch.cat([by_position.new_zeros(1), by_position]), 0)
    return group_sums[1:] - group_sums[:-1], group_sums


FITNESS_SHAPINGS: dict[str, FitnessShaping] = {
    "centered_ranks": centered_ranks,
    "nes": nes_utilities,
    "z_score": z_score,
    "raw": raw,
}


def get_fitness_shaping(shaping: str | FitnessShaping) -> FitnessShaping:
    """Look up a shaping by name, or pass a callable through."""
    if callable(shaping):
        return shaping
    try:
        return FITNESS_SHAPINGS[shaping]
    except (KeyError, TypeError):
        raise ValueError(
            f"fitness_shaping must be one of {sorted(FITNESS_SHAPINGS)} or a callable, "
            f"got {shaping!r}"
        ) from None
