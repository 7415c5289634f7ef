"""Core benchmark: time per generation of OpenAIES ask()+tell(), and peak memory.

For dim in {1e4, 1e6} and population in {100, 1000}, each configuration runs in a
fresh subprocess so its peak RSS is its own. The reference is one ``torch.mv`` over
a (population x dim) float32 matrix, the memory-bandwidth bound of the update,
measured in the same run.

Targets (dim 1e6, population 1000): tell() within 3x of that mv; peak memory under
1 GB, where the matrix alone is 4 GB.

    python benchmarks/core.py            # all four configurations, 7 generations each
    python benchmarks/core.py --repeats 11
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

DIMS = (10_000, 1_000_000)
POPULATIONS = (100, 1000)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * resource.getpagesize() / 2**20


def child_es(dim: int, population: int, repeats: int) -> dict:
    import torch

    from pytorch_es import OpenAIES

    torch.manual_seed(0)
    baseline = current_rss_mb()
    start = time.perf_counter()
    strategy = OpenAIES(torch.zeros(dim), population_size=population, sigma=0.1, lr=0.01, seed=0)
    _ = strategy.noise.values  # the one-off table generation, timed apart
    setup = time.perf_counter() - start
    rewards = torch.randn(population)
    ask_times, tell_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        strategy.ask()
        t1 = time.perf_counter()
        strategy.tell(rewards)
        t2 = time.perf_counter()
        ask_times.append(t1 - t0)
        tell_times.append(t2 - t1)
    return {
        "setup_s": setup,
        "ask_s": statistics.median(ask_times),
        "tell_s": statistics.median(tell_times),
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "table_mb": strategy.noise.size * 4 / 2**20,
    }


def child_mv(dim: int, population: int, repeats: int) -> dict:
    import torch

    matrix = torch.randn(population, dim)
    weights = torch.randn(population)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mv(matrix.T, weights)  # sum_i w_i * row_i: the ES update as one mat-vec
        times.append(time.perf_counter() - t0)
    return {"mv_s": statistics.median(times), "peak_rss_mb": peak_rss_mb()}


def run_child(kind: str, dim: int, population: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(dim), str(population), str(repeats)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="generations timed per configuration")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, dim, population, repeats = args.child[0], *map(int, args.child[1:])
        result = (child_es if kind == "es" else child_mv)(dim, population, repeats)
        print(json.dumps(result))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} generations")
    header = (
        f"{'dim':>9} {'pop':>5} {'ask ms':>8} {'tell ms':>9} {'mv ms':>8} {'tell/mv':>8} "
        f"{'peak MB':>8} {'matrix MB':>10} {'table MB':>9} {'setup s':>8}"
    )
    print(header)
    for dim in DIMS:
        for population in POPULATIONS:
            es = run_child("es", dim, population, args.repeats)
            mv = run_child("mv", dim, population, args.repeats)
            ratio = es["tell_s"] / mv["mv_s"]
            print(
                f"{dim:>9} {population:>5} {es['ask_s'] * 1e3:>8.2f} {es['tell_s'] * 1e3:>9.2f} "
                f"{mv['mv_s'] * 1e3:>8.2f} {ratio:>8.2f} {es['peak_rss_mb']:>8.0f} "
                f"{population * dim * 4 / 2**20:>10.0f} {es['table_mb']:>9.0f} {es['setup_s']:>8.2f}",
                flush=True,
            )
    print(
        "targets at dim 1e6, pop 1000: tell/mv <= 3, peak MB < 1024 "
        "(peak is the whole process: Python + torch + noise table + center)"
    )


if __name__ == "__main__":
    main()
