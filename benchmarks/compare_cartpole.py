"""Time to solve CartPole-v1, side by side in one run: pytorch-es against its peers.

- pytorch-es: ``pytorch-es train CartPole-v1 --seed S`` itself, in this process, on fresh
  random seeds (``benchmarks/rl.py``'s ``train_in_process``); its time is the run's training
  wall time, the command's own tests included (the peers' exclude their solve checks).
- the original library, pytorch-es 0.1.1, with its README settings (``peers/original_cartpole.py``).
- EvoTorch 0.6.1, PGPE + ClipUp on GymNE and on VecGymNE (``peers/evotorch_gym.py``).

The peers run in their own venvs (``bash benchmarks/peers/setup.sh`` makes them under
``.peers/``). Solved means a greedy mean >= 475 over 100 episodes on env seeds 1000..1099;
only training time counts, never imports (and for the peers, not their solve checks). Prints each run, the medians
over ``--seeds`` seeds, and each peer's median divided by ours.

    bash benchmarks/peers/setup.sh
    python benchmarks/compare_cartpole.py --seeds 5 --max-seconds 120
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

PEERS = {
    "original (pytorch-es 0.1.1, 1 thread)": (".peers/original", ["original_cartpole.py", "--threads", "1"]),
    "original (pytorch-es 0.1.1, 4 threads)": (".peers/original", ["original_cartpole.py", "--threads", "4"]),
    "EvoTorch 0.6.1 PGPE+ClipUp, GymNE": (".peers/evotorch", ["evotorch_gym.py", "--problem", "gymne"]),
    "EvoTorch 0.6.1 PGPE+ClipUp, VecGymNE": (".peers/evotorch", ["evotorch_gym.py", "--problem", "vecgymne"]),
}


def run_peer(venv: str, script: list[str], seed: int, max_seconds: float) -> dict:
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `bash benchmarks/peers/setup.sh` first")
    command = [str(python), str(HERE / "peers" / script[0]), *script[1:], "--seed", str(seed),
               "--max-seconds", str(max_seconds)]
    env = {**os.environ, "PYTHONPATH": ""}  # never our src/: the original imports as pytorch_es too
    output = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
    if output.returncode != 0 or not lines:
        return {"solved": False, "train_seconds": float("inf"), "error": output.stderr.strip()[-300:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="training budget per peer run")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), help="which peers (default all)")
    args = parser.parse_args()

    import torch

    from rl import fresh_seeds, load, train_in_process

    torch.set_num_threads(1)
    train_in_process("CartPole-v1", 1, "--generations", "1")  # warm-up, as in rl.py
    medians: dict[str, float] = {}
    ours = [train_in_process("CartPole-v1", seed) for seed in fresh_seeds(args.seeds)]
    for run in ours:
        print(f"pytorch-es seed {run['seed']}: solved={run['solved']} {run['seconds']:.3f} s "
              f"{run['env_steps']} env steps", flush=True)
    medians["pytorch-es"] = statistics.median(r["seconds"] if r["solved"] else float("inf") for r in ours)
    for name in args.peers:
        venv, script = PEERS[name]
        runs = [run_peer(venv, script, seed, args.max_seconds) for seed in range(args.seeds)]
        for seed, run in enumerate(runs):
            detail = run.get("error") or f"{run.get('env_steps', '?')} env steps"
            print(f"{name} seed {seed}: solved={run['solved']} {run['train_seconds']:.2f} s {detail}", flush=True)
        medians[name] = statistics.median(r["train_seconds"] if r["solved"] else float("inf") for r in runs)

    print(f"\nCartPole-v1 time to solve, median of {args.seeds} seeds [{load()}]")
    for name, median in medians.items():
        ratio = median / medians["pytorch-es"]
        print(f"  {name:42s} {median:9.3f} s   {ratio:8.1f}x pytorch-es")


if __name__ == "__main__":
    main()
