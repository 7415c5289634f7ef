"""EvoX 1.4's ask + tell wall time per generation, run in its own venv by
``benchmarks/strategies.py --speed``:

    .peers/evox/bin/python benchmarks/peers/evox_speed.py ALGO DIM POPULATION REPEATS

One ``StdWorkflow.step()`` is a sample, an evaluation and an update (EvoX's algorithms have no
separate ask and tell); the problem returns precomputed random values without reading the
members (as ours is told precomputed rewards), so the time is the library's. float32, one
thread, sigma 0.1, eager (no ``torch.compile``; dynamo disabled, which its CMAES's
``torch.cond`` needs under torch 2.13). ALGO is our registry name: snes, xnes, cma-es,
openai-es, ars. Prints JSON: ``{"median_s": ..., "peak_rss_mib": ...}``.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time

import torch
import torch._dynamo

torch._dynamo.config.disable = True
from evox.algorithms import ARS, CMAES, SNES, XNES, OpenES  # noqa: E402 (after the dynamo switch)
from evox.core import Problem  # noqa: E402
from evox.workflows import StdWorkflow  # noqa: E402


def main() -> None:
    algo, n, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    values = torch.randn(size, generator=torch.Generator().manual_seed(0))

    class Precomputed(Problem):
        def evaluate(self, pop: torch.Tensor) -> torch.Tensor:
            return values[: pop.shape[0]].clone()

    center = torch.zeros(n)
    algorithm = {
        "snes": lambda: SNES(size, center, sigma=0.1),
        "xnes": lambda: XNES(center, 0.01 * torch.eye(n), pop_size=size),
        "cma-es": lambda: CMAES(center, 0.1, pop_size=size),
        "openai-es": lambda: OpenES(size, center, learning_rate=0.01, noise_stdev=0.1),
        "ars": lambda: ARS(size, center, elite_ratio=1.0, lr=0.02, sigma=0.1),
    }[algo]()
    workflow = StdWorkflow(algorithm, Precomputed())
    workflow.step()  # first generation: allocations
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        workflow.step()
        times.append(time.perf_counter() - began)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median_s": statistics.median(times), "peak_rss_mib": peak}))


if __name__ == "__main__":
    main()
