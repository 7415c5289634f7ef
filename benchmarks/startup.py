"""Start-up time of the ``pytorch-es`` command: wall-clock medians of fresh processes.

Each case runs ``--repeats`` times (default 7) in a new process, interleaved (case 1, case
2, ..., case 1, ...) so that a burst of load from other work hits all cases alike; the
median and the min-max are printed with the 1-minute load average before and after.

    python benchmarks/startup.py                # all cases, 7 runs each
    python benchmarks/startup.py --repeats 11 --json
    PYTHONPATH=/tmp/old/src python benchmarks/startup.py --module   # another checkout

Cases: ``pytorch-es --help`` and ``pytorch-es train --help`` (argparse only: no torch),
a usage error (``--population 1``), ``python -c "import pytorch_es"``, ``from pytorch_es
import OpenAIES`` (what a library user pays), ``import torch`` alone (the floor of any
command that needs torch), ``pytorch-es eval DIR`` (5 episodes) on a tiny CartPole run
trained once, before the timings, in a temporary directory, and a whole ``pytorch-es
train`` of one generation (start-up, the torch._dynamo import an optimizer needs, exit),
and the headline command itself, ``pytorch-es train CartPole-v1`` with its defaults: its
wall time minus ``import torch`` minus the training time it reports is the start-up and
exit overhead of the command (target: at most 1.5 s).
``--module`` runs ``python -m pytorch_es`` instead of the installed console script, so
that ``PYTHONPATH`` picks the checkout to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADLINE = "pytorch-es train CartPole-v1 (defaults, solves)"


def command(name: str) -> list[str]:
    """``pytorch-es`` as installed (the console script), else ``python -m pytorch_es``."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", "pytorch_es"]


def run_once(argv: list[str], expect: int) -> tuple[float, str]:
    """(wall seconds, stdout) of one fresh process."""
    start = time.perf_counter()
    process = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if process.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} exited with {process.returncode} (expected {expect}): {process.stderr}")
    return elapsed, process.stdout


def reported_training_time(stdout: str) -> float:
    """The seconds in ``Solved ... in 0.4 s, ...``, what the command reports as training."""
    match = re.search(r"^Solved .* in ([0-9.]+) s, ", stdout, re.M)
    if match is None:
        raise SystemExit(f"pytorch-es train CartPole-v1 did not report a solve:\n{stdout}")
    return float(match[1])


def tiny_run(directory: Path, cli: list[str]) -> Path:
    """A CartPole run directory: 2 generations of 16 members, a linear policy."""
    run = directory / "cartpole"
    argv = [*cli, "train", "CartPole-v1", "--seed", "0", "--population", "16", "--generations", "2"]
    argv += ["--hidden", "none", "--test-episodes", "2", "--target", "none", "--backend", "serial"]
    subprocess.run([*argv, "--quiet", "--out", str(run)], check=True, stdout=subprocess.DEVNULL)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per case (>= 5 recommended)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    parser.add_argument("--module", action="store_true", help="run python -m pytorch_es, not the console script")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    cli = [sys.executable, "-m", "pytorch_es"] if args.module else command("pytorch-es")
    python = [sys.executable]
    with tempfile.TemporaryDirectory() as scratch:
        run = tiny_run(Path(scratch), cli)
        train = [*cli, "train", "CartPole-v1", "--seed", "0", "--population", "16", "--generations", "1"]
        train += ["--hidden", "none", "--test-episodes", "2", "--target", "none", "--backend", "serial", "--quiet"]
        cases = {
            "pytorch-es --help": ([*cli, "--help"], 0),
            "pytorch-es train --help": ([*cli, "train", "--help"], 0),
            "pytorch-es train CartPole-v1 --population 1": ([*cli, "train", "CartPole-v1", "--population", "1"], 2),
            'python -c "import pytorch_es"': ([*python, "-c", "import pytorch_es"], 0),
            'python -c "from pytorch_es import OpenAIES"': ([*python, "-c", "from pytorch_es import OpenAIES"], 0),
            'python -c "import torch"': ([*python, "-c", "import torch"], 0),
            "pytorch-es eval DIR --episodes 5": ([*cli, "eval", str(run), "--episodes", "5"], 0),
            "pytorch-es train CartPole-v1 (1 generation)": (train, 0),
            HEADLINE: ([*cli, "train", "CartPole-v1", "--quiet"], 0),
        }
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in cases}
        trained: list[float] = []  # the headline command's reported training seconds
        for repeat in range(args.repeats):
            for name, (argv, expect) in cases.items():
                if name in (HEADLINE, "pytorch-es train CartPole-v1 (1 generation)"):  # a new run directory
                    argv = [*argv, "--out", str(Path(scratch) / f"train-{repeat}-{len(name)}")]
                elapsed, stdout = run_once(argv, expect)
                times[name].append(elapsed)
                if name == HEADLINE:
                    trained.append(reported_training_time(stdout))
        load_after = os.getloadavg()[0]

    print(f"{args.repeats} fresh processes per case; 1-min load average {load_before:.2f} -> {load_after:.2f}")
    width = max(len(name) for name in cases)
    print(f"{'command':<{width}}  median s  (min - max)")
    for name, values in times.items():
        print(f"{name:<{width}}  {statistics.median(values):8.3f}  ({min(values):.3f} - {max(values):.3f})")
    # the start-up target: wall <= import torch + 1.5 s + the reported training time, per repetition
    torch_s = times['python -c "import torch"']
    overheads = [wall - torch - train for wall, torch, train in zip(times[HEADLINE], torch_s, trained, strict=True)]
    print(f"{HEADLINE}: reported training {statistics.median(trained):.3f} s (median); wall - import torch - "
          f"training = {statistics.median(overheads):.3f} s median ({min(overheads):.3f} - {max(overheads):.3f}), "
          f"target <= 1.5 s: {'met' if statistics.median(overheads) <= 1.5 else 'NOT met'}")
    if args.json:
        print(
            json.dumps(
                {
                    "repeats": args.repeats,
                    "load": [load_before, load_after],
                    "median_s": {name: statistics.median(values) for name, values in times.items()},
                    "headline_training_s": statistics.median(trained),
                    "headline_overhead_s": statistics.median(overheads),
                }
            )
        )


if __name__ == "__main__":
    main()
