"""Fault storms: kills, signal storms and hangs in a loop, with the figures that matter.

Each trial runs the real ``python -m pytorch_es train`` (CartPole-v1, small and fixed
settings) in a subprocess and attacks it:

- ``kill``: SIGKILL at a random moment of training, then ``--resume`` to the budget; the
  result must equal an uninterrupted reference run bit for bit (weights, checkpoint
  state, metrics but wall times). Figures: kills survived (the resume worked), resumes
  identical.
- ``sigint`` / ``sigterm``: a storm of signals every ``--interval`` seconds (default
  1 ms) from the moment training runs until the process exits; the final checkpoint
  must exist, load, and be the generation the report names. Figure: checkpoints lost
  (target 0), tracebacks seen (target 0).
- ``hang``: a threaded ``EvolutionModule`` whose reward function never returns for some
  members, then Ctrl-C: the process must exit within ``--hang-limit`` seconds. Figure:
  hangs escaped.

    python benchmarks/faults.py                      # 3 trials of each, about a minute
    python benchmarks/faults.py --trials 20 --only kill sigint
    python benchmarks/faults.py --backend processes --workers 2 --json faults.json

The trials are independent and sequential; on a busy machine they only take longer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pytorch_es.training import load_checkpoint, read_metrics

SETTINGS = ["CartPole-v1", "--seed", "5", "--population", "32", "--hidden", "16", "--test-episodes", "5"]
SETTINGS += ["--target", "none", "--optimizer", "adam", "--lr", "0.05", "--obs-norm", "--quiet"]
HANG = """
import time, torch
from pytorch_es import EvolutionModule
def reward(weights, render=False):
    if float(weights[0].sum()) > 0.3:
        print("hung", flush=True)
        time.sleep(10**6)
    return -float((weights[0] ** 2).sum())
EvolutionModule([torch.zeros(3)], reward, population_size=8, sigma=0.5, threadcount=2, seed=0).run(5)
"""


def train(out: Path, *extra: str, backend: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytorch_es", "train", *SETTINGS, *backend, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def rows(out: Path) -> int:
    try:
        return max(0, len((out / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def wait_rows(process: subprocess.Popen, out: Path, count: int, limit: float = 120) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if rows(out) >= count:
            return True
        time.sleep(0.005)
    return False


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def identical(run: Path, reference: Path) -> bool:
    done, expected = (load_checkpoint(d / "checkpoint.pt")["state"] for d in (run, reference))
    metrics = [[{k: v for k, v in r.items() if k != "wall_time"} for r in read_metrics(d / "metrics.csv")]
               for d in (run, reference)]
    keys = ("generation", "strategy", "problem", "best", "env_steps")
    return (
        (run / "policy.safetensors").read_bytes() == (reference / "policy.safetensors").read_bytes()
        and all(same(done[k], expected[k]) for k in keys)
        and metrics[0] == metrics[1]
    )


def kill_trials(args: argparse.Namespace, work: Path, rng: random.Random) -> dict:
    reference = work / "reference"
    done = subprocess.run(
        [sys.executable, "-m", "pytorch_es", "train", *SETTINGS, *args.backend_args, "--out", str(reference),
         "--generations", str(args.generations), "--checkpoint-every", "1"],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the reference run failed: {done.stderr.strip()}")
    survived = identical_count = 0
    for trial in range(args.trials):
        out = work / f"kill-{trial}"
        process = train(out, "--generations", str(args.generations), "--checkpoint-every", "1",
                        backend=args.backend_args)
        wait_rows(process, out, 1)
        time.sleep(rng.uniform(0.0, args.kill_window))
        process.kill()
        process.communicate(timeout=60)
        resumed = subprocess.run(
            [sys.executable, "-m", "pytorch_es", "train", "--resume", str(out), "--quiet"],
            capture_output=True, text=True,
        )
        if resumed.returncode == 0:
            survived += 1
            identical_count += identical(out, reference)
        else:
            print(f"  kill {trial}: resume failed: {resumed.stderr.strip()}", file=sys.stderr)
    return {"kills": args.trials, "kills_survived": survived, "resumes_identical": identical_count}


def storm_trials(args: argparse.Namespace, work: Path, signum: int) -> dict:
    lost = tracebacks = wrong_report = sent_total = 0
    name = signal.Signals(signum).name
    for trial in range(args.trials):
        out = work / f"{name.lower()}-{trial}"
        process = train(out, "--generations", "100000", "--checkpoint-every", "0", "--hidden", "256,256",
                        backend=args.backend_args)
        if not wait_rows(process, out, 1):
            process.kill()
            raise SystemExit(f"{name} trial {trial}: training did not start: {process.communicate()[1][-500:]}")
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:
                break
            sent_total += 1
            time.sleep(args.interval)
        _, err = process.communicate(timeout=60)
        tracebacks += "Traceback" in err
        try:
            generation = load_checkpoint(out / "checkpoint.pt")["state"]["generation"]
        except Exception:
            lost += 1
            continue
        wrong_report += f" at generation {generation} " not in err
    return {f"{name}_storms": args.trials, f"{name}_sent": sent_total, "checkpoints_lost": lost,
            "tracebacks": tracebacks, "reports_wrong": wrong_report}


def hang_trials(args: argparse.Namespace, work: Path) -> dict:
    script = work / "hang.py"
    script.write_text(HANG)
    escaped = 0
    for _ in range(args.trials):
        process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        process.stdout.readline()  # "hung"
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=args.hang_limit)
        except subprocess.TimeoutExpired:
            escaped += 1
            process.kill()
            process.communicate()
        else:
            print(f"  hang: exited {time.monotonic() - started:.1f} s after Ctrl-C", file=sys.stderr)
    return {"hangs": args.trials, "hangs_escaped": escaped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="trials of each kind")
    parser.add_argument("--only", nargs="+", choices=("kill", "sigint", "sigterm", "hang"),
                        default=["kill", "sigint", "sigterm", "hang"])
    parser.add_argument("--generations", type=int, default=12, help="budget of the kill/resume runs")
    parser.add_argument("--kill-window", type=float, default=2.0, help="SIGKILL within this many s of training")
    parser.add_argument("--interval", type=float, default=0.001, help="seconds between signals of a storm")
    parser.add_argument("--hang-limit", type=float, default=15.0, help="seconds a Ctrl-C'd hang may take to exit")
    parser.add_argument("--backend", default="serial", choices=("serial", "threads", "processes"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    args.backend_args = ["--backend", args.backend] + ([] if args.workers is None else ["--workers", str(args.workers)])
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="pytorch-es-faults-"))
    figures: dict = {"backend": args.backend, "trials": args.trials, "load_before": os.getloadavg()[0]}
    started = time.monotonic()
    try:
        if "kill" in args.only:
            figures.update(kill_trials(args, work, rng))
        storms = [s for s in ("sigint", "sigterm") if s in args.only]
        lost = tracebacks = 0
        for kind in storms:
            result = storm_trials(args, work, signal.SIGINT if kind == "sigint" else signal.SIGTERM)
            lost += result.pop("checkpoints_lost")
            tracebacks += result.pop("tracebacks")
            figures.update({f"{kind}_{k}" if k == "reports_wrong" else k: v for k, v in result.items()})
        if storms:
            figures.update({"checkpoints_lost": lost, "tracebacks": tracebacks})
        if "hang" in args.only:
            figures.update(hang_trials(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["load_after"] = os.getloadavg()[0]
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
