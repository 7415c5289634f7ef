"""EvoTorch 0.6.1's ask + tell wall time per generation, run in its own venv by
``benchmarks/strategies.py --speed``:

    .peers/evotorch/bin/python benchmarks/peers/evotorch_speed.py ALGO DIM POPULATION REPEATS

One ``searcher.step()`` is a sample, an evaluation and an update; the objective returns
precomputed random values without reading the members (as ours is told precomputed
rewards), so the time is the library's. float32, one thread, sigma 0.1. Prints JSON:
``{"median_s": ..., "peak_rss_mib": ...}``.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time

import torch
from evotorch import Problem
from evotorch.algorithms import CEM, PGPE, SNES, XNES


def main() -> None:
    algo, n, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    values = torch.randn(size, generator=torch.Generator().manual_seed(0))

    def objective(xs: torch.Tensor) -> torch.Tensor:
        return values[: xs.shape[0]].clone()

    problem = Problem("max", objective, solution_length=n, initial_bounds=(-1.0, 1.0), vectorized=True, seed=0)
    common = {"popsize": size, "stdev_init": 0.1}
    searcher = {
        "snes": lambda: SNES(problem, **common),
        "xnes": lambda: XNES(problem, **common),
        "pgpe": lambda: PGPE(problem, **common, center_learning_rate=0.05, stdev_learning_rate=0.1,
                             optimizer="clipup"),
        "cem": lambda: CEM(problem, **common, parenthood_ratio=0.2),
    }[algo]()
    searcher.step()  # first generation: allocations
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        searcher.step()
        times.append(time.perf_counter() - began)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median_s": statistics.median(times), "peak_rss_mib": peak}))


if __name__ == "__main__":
    main()
