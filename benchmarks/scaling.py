"""Scaling benchmark: LunarLander-v3 population evaluation on 1 core vs 2 processes vs
2 Ray actors, bytes sent per worker per generation, and the driver's tell() cost.

1. Env-steps/s of evaluating one LunarLander-v3 population (by default the CLI's
   LunarLander settings: population 64 x 4 episodes, the default policy), serial in
   this process vs ``ProcessEvaluator(W)`` vs ``RayEvaluator(W)`` (local Ray) vs
   :class:`IdealSplit` (W independent processes, 1/W of the population each, no pool:
   the machine's ceiling), interleaved repetitions, medians of the per-repetition
   ratios. Targets with W = 2: processes >= 1.7x serial, Ray >= 1.6x serial. All
   backends must return the same rewards (checked). Also measured: the CPU time of the
   busiest process (driver or worker) per evaluation, whose ratio to the serial CPU
   time is the speed-up on idle cores, whatever else the machine is running.
2. Communication for population 1000 and a 100k-parameter policy: bytes each worker
   receives per generation (measured: the pickled messages) vs sending every member's
   parameters (target: <= 1%), and vs sending the center in each worker's message.
3. Driver-side cost: ``OpenAIES.tell`` for the given dims at population 1000, and the
   pool's per-task overhead on a trivial problem; the script prints what they predict
   for 100 and 1000 workers.

The machine's load average is printed before and after: the speed-ups need two idle
cores (on a shared machine, measure when ``uptime`` shows a load well under 1).

    python benchmarks/scaling.py                 # everything, 7 repetitions
    python benchmarks/scaling.py --repeats 9 --population 128 --episodes 1 --workers 2
    python benchmarks/scaling.py --skip-ray --json scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

from pytorch_es import OpenAIES, SerialEvaluator
from pytorch_es.core.population import Population
from pytorch_es.evaluation import Evaluation, Evaluator, Problem, ProcessEvaluator
from pytorch_es.evaluation.base import GenerationResult, combine
from pytorch_es.evaluation.processes import available_cores
from pytorch_es.evaluation.scheduler import split_indices


class FirstCoordinate(Problem):
    """A trivial reward (the member's first parameter): isolates communication costs."""

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        indices = list(indices)
        rewards = torch.tensor([float(population.member(i)[0]) for i in indices], dtype=torch.float64)
        return Evaluation(indices, rewards)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    text = f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {available_cores()} cores"
    if one > 0.5:
        text += (
            " -- BUSY: the speed-ups below need idle cores"
            + (
                " (and with the kernel's autogroup scheduling, CPU is shared per session, so this "
                "run's extra processes get no extra CPU while other sessions are busy)"
                if autogroup()
                else ""
            )
        )
    return text


def autogroup() -> bool:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as file:
            return file.read().strip() == "1"
    except OSError:
        return False


def make_ray(workers: int) -> Evaluator:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from pytorch_es.evaluation.ray_evaluator import RayEvaluator

    # a benchmark on a private machine: Ray 2.60 cannot bind to loopback only (docs/cluster.md, Security)
    return RayEvaluator(workers, init_kwargs={"log_to_driver": False}, allow_network=True)


def env_steps_per_second(args: argparse.Namespace) -> dict:
    from pytorch_es.rl import GymProblem

    def make_problem() -> GymProblem:  # one per backend: merge() updates its obs-norm statistics
        return GymProblem("LunarLander-v3", episodes_per_member=args.episodes)

    problems: dict[str, GymProblem] = {}
    strategy = OpenAIES(
        make_problem().initial_center(0), population_size=args.population, sigma=0.05, seed=args.seed
    )
    population = strategy.ask()
    evaluators: dict[str, Evaluator] = {"serial": SerialEvaluator()}
    evaluators["ideal"] = IdealSplit(args.workers, args.episodes)
    evaluators["processes"] = ProcessEvaluator(args.workers, chunks_per_worker=args.chunks_per_worker)
    if not args.skip_ray:
        evaluators["ray"] = make_ray(args.workers)
    times: dict[str, list[float]] = {name: [] for name in evaluators}
    critical: dict[str, list[float]] = {name: [] for name in evaluators}  # CPU s on the busiest process
    steps: dict[str, list[int]] = {name: [] for name in evaluators}
    rewards: dict[str, list[torch.Tensor]] = {name: [] for name in evaluators}
    try:
        for name, evaluator in evaluators.items():  # start workers, build envs: not timed
            if hasattr(evaluator, "start"):
                evaluator.start()
            problems[name] = make_problem()
            evaluator.evaluate(population, problems[name])
        for _ in range(args.repeats):
            for name, evaluator in evaluators.items():
                pids = evaluator.worker_pids() if hasattr(evaluator, "worker_pids") else []
                before = [cpu_seconds(pid) for pid in pids]
                driver, start = time.process_time(), time.perf_counter()
                result = evaluator.evaluate(population, problems[name])
                times[name].append(time.perf_counter() - start)
                driver = time.process_time() - driver
                used = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
                critical[name].append(max([driver, *used]))
                steps[name].append(result.env_steps)
                rewards[name].append(result.rewards)
    finally:
        for evaluator in evaluators.values():
            evaluator.close()
    for name in evaluators:  # same seed, same numbers on every backend
        same = all(torch.equal(a, b) for a, b in zip(rewards[name], rewards["serial"], strict=True))
        assert same and steps[name] == steps["serial"], f"{name}: results differ from serial"
    report = {
        "population": args.population,
        "episodes": args.episodes,
        "env_steps": statistics.median(steps["serial"]),
    }
    # ratios within each repetition (serial and the others ran back to back), then medians
    for name, values in times.items():
        report[name] = {
            "median_s": statistics.median(values),
            "steps_per_s": statistics.median(s / t for s, t in zip(steps[name], values, strict=True)),
            "speedup": statistics.median(a / b for a, b in zip(times["serial"], values, strict=True)),
            "of_ideal": statistics.median(a / b for a, b in zip(times["ideal"], values, strict=True)),
            "all_s": [round(v, 3) for v in values],
            "busiest_cpu_s": statistics.median(critical[name]),
            "idle_core_speedup": statistics.median(
                a / b for a, b in zip(critical["serial"], critical[name], strict=True)
            ),
        }
    return report


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


IDEAL_WORKER_CODE = """
import pickle, sys, torch
torch.set_num_threads(1)
from pytorch_es.rl import GymProblem
problem = GymProblem("LunarLander-v3", episodes_per_member=int(sys.argv[1]))
source, sink = sys.stdin.buffer, sys.stdout.buffer
sink.write(b"ready\\n"); sink.flush()
while header := source.readline():
    population, indices, state = pickle.loads(source.read(int(header)))
    problem.load_worker_state(state)
    evaluation = problem.evaluate(population, indices)
    reply = pickle.dumps(evaluation)
    sink.write(b"%d\\n" % len(reply)); sink.write(reply); sink.flush()
"""


class IdealSplit(Evaluator):
    """The upper bound of any pool on this machine: W independent processes, each
    evaluating ``1/W`` of the population as one batch (the same code a worker runs),
    started at the same instant, with no scheduling, no retries and nothing but one
    pipe message each way. Timed like the evaluators, in the same repetitions, so its
    ratio to serial is this machine's ceiling at that moment (other sessions, shared
    caches and the hypervisor all lower it)."""

    def __init__(self, workers: int, episodes: int) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-c", IDEAL_WORKER_CODE, str(episodes)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            for _ in range(workers)
        ]
        for process in self.processes:  # imports and env set-up are not timed
            assert process.stdout.readline().strip() == b"ready"

    def worker_pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def evaluate(self, population: Population, problem: Problem) -> GenerationResult:
        parts = split_indices(len(population), len(self.processes))
        state = problem.worker_state()
        messages = [pickle.dumps((population, part, state)) for part in parts]
        for process, message in zip(self.processes, messages, strict=True):
            process.stdin.write(b"%d\n" % len(message) + message)
            process.stdin.flush()
        replies = [pickle.loads(p.stdout.read(int(p.stdout.readline()))) for p in self.processes]
        result = combine(replies, len(population))
        problem.merge(result.evaluations)  # the observation statistics, as every evaluator does
        return result

    def close(self) -> None:
        for process in self.processes:
            process.stdin.close()
            process.wait(timeout=30)


def communication(args: argparse.Namespace) -> dict:
    dim, size = args.comm_dim, args.comm_population
    population = OpenAIES(torch.zeros(dim), population_size=size, sigma=0.1, seed=1).ask()
    report: dict = {"dim": dim, "population": size, "workers": args.workers}
    backends = {"processes": lambda: ProcessEvaluator(args.workers, chunks_per_worker=args.chunks_per_worker)}
    if not args.skip_ray:
        backends["ray"] = lambda: make_ray(args.workers)
    for name, factory in backends.items():
        with factory() as evaluator:
            evaluator.start()
            evaluator.evaluate(population, FirstCoordinate())
            stats = evaluator.stats
            per_worker = []
            for slot, sent in sorted(stats.bytes_sent.items()):
                members = stats.members.get(slot, 0)
                all_parameters = members * dim * 4
                per_worker.append(
                    {
                        "worker": slot,
                        "members": members,
                        "bytes_sent": sent,
                        "all_parameters_bytes": all_parameters,
                        "ratio": sent / all_parameters if all_parameters else None,
                        "ratio_with_center_in_message": (sent + stats.center_bytes) / all_parameters
                        if all_parameters
                        else None,
                    }
                )
            # the driver's own cost per task: many one-member tasks of a trivial problem
            tiny = OpenAIES(torch.zeros(8), population_size=200, sigma=0.1, seed=1).ask()
            evaluator.chunks_per_worker = 200 // args.workers
            evaluator.evaluate(tiny, FirstCoordinate())
            walls, cpus = [], []
            for _ in range(args.repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                evaluator.evaluate(tiny, FirstCoordinate())
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            tasks = evaluator.stats.tasks
            report[name] = {
                "center_bytes_once": stats.center_bytes,
                "workers": per_worker,
                "tasks_per_generation": stats.tasks,
                "driver_cpu_per_task_s": statistics.median(cpus) / tasks,
                "wall_per_task_s": statistics.median(walls) / tasks,
            }
    return report


def tell_cost(args: argparse.Namespace) -> dict:
    report = {}
    for dim in args.tell_dims:
        strategy = OpenAIES(torch.zeros(dim), population_size=1000, sigma=0.1, lr=0.01, seed=0)
        _ = strategy.noise.values  # table generation is one-off
        walls = []
        for _ in range(3):
            strategy.ask()
            rewards = torch.randn(1000)
            start = time.perf_counter()
            strategy.tell(rewards)
            walls.append(time.perf_counter() - start)
        report[str(dim)] = statistics.median(walls)
    return report


def predictions(comm: dict, tell: dict, dim: int, size: int) -> list[str]:
    lines = []
    for backend in ("processes", "ray"):
        if backend not in comm:
            continue
        info = comm[backend]
        per_worker = max(w["bytes_sent"] for w in info["workers"])
        per_task = info["driver_cpu_per_task_s"]
        for workers in (100, 1000):
            members = size / workers
            all_parameters = members * dim * 4
            lines.append(
                f"{backend:9s} {workers:5d} workers: ~{per_worker} B/worker/generation "
                f"(+ the {info['center_bytes_once'] / 1e3:.0f} kB center once per host), "
                f"{workers * per_worker / 1e6:.2f} MB from the driver in all vs "
                f"{size * dim * 4 / 1e6:.0f} MB for all members' parameters; ratio per worker "
                f"{per_worker / all_parameters:.2%} (center in each message: "
                f"{(per_worker + info['center_bytes_once']) / all_parameters:.1%}); "
                f"driver dispatch ~{per_task * 2 * workers:.3f} s/generation at 2 tasks/worker "
                f"({per_task * 1e3:.2f} ms of driver CPU per task measured)"
            )
    for dim_text, seconds in tell.items():
        lines.append(f"tell() at dim {int(dim_text):.0e}, population {size}: {seconds:.3f} s per generation "
                     "on the driver, whatever the number of workers")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, help="LunarLander population (default: the CLI's, 64)")
    parser.add_argument("--episodes", type=int, help="episodes per member (default: the CLI's, 4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks-per-worker", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--comm-dim", type=int, default=100_000)
    parser.add_argument("--comm-population", type=int, default=1000)
    parser.add_argument("--tell-dims", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-steps", action="store_true", help="skip the LunarLander timing")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    from pytorch_es.rl.defaults import get_defaults

    lunar = get_defaults("LunarLander-v3")  # what `pytorch-es train LunarLander-v3 --workers 2` evaluates
    args.population = args.population or lunar.population
    args.episodes = args.episodes or lunar.episodes
    torch.set_num_threads(1)  # like every worker: one core per process, for a fair serial baseline

    report: dict = {"load_before": load(), "python": sys.version.split()[0], "torch": torch.__version__}
    print(report["load_before"])
    if not args.skip_steps:
        steps = env_steps_per_second(args)
        report["env_steps"] = steps
        print(f"\nLunarLander-v3, population {steps['population']} x {steps['episodes']} episode(s), "
              f"{steps['env_steps']} env steps per evaluation, {args.workers} workers, "
              f"median of {args.repeats}:")
        targets = {"processes": 1.7, "ray": 1.6}
        for name in ("serial", "ideal", "processes", "ray"):
            if name in steps:
                row = steps[name]
                note = f"  (target >= {targets[name]}x; {row['of_ideal']:.2f} of ideal)" if name in targets else ""
                if name == "ideal":
                    note = "  (the ceiling now: independent processes, 1/W of the population each, no pool)"
                print(f"  {name:9s} {row['median_s']:7.3f} s  {row['steps_per_s']:9.0f} steps/s  "
                      f"{row['speedup']:5.2f}x{note}   runs {row['all_s']}")
        print("  CPU seconds of the busiest process (driver or worker) per evaluation, and the speed-up "
              "they give on idle cores (serial CPU / busiest):")
        for name in ("serial", "ideal", "processes", "ray"):
            if name in steps:
                row = steps[name]
                print(f"  {name:9s} {row['busiest_cpu_s']:7.3f} s  {row['idle_core_speedup']:5.2f}x")
    comm = communication(args)
    report["communication"] = comm
    print(f"\nPopulation {comm['population']}, {comm['dim']} parameters, {args.workers} workers: "
          "bytes each worker receives per generation")
    for backend in ("processes", "ray"):
        if backend in comm:
            info = comm[backend]
            for w in info["workers"]:
                print(f"  {backend:9s} worker {w['worker']}: {w['members']} members, "
                      f"{w['bytes_sent']} B sent "
                      f"vs {w['all_parameters_bytes'] / 1e6:.0f} MB of member parameters: ratio "
                      f"{w['ratio']:.6%} (target <= 1%); with the center in the message "
                      f"{w['ratio_with_center_in_message']:.3%}")
            print(f"  {backend:9s} center published once per generation: {info['center_bytes_once']} B; "
                  f"{info['tasks_per_generation']} tasks; driver CPU per task "
                  f"{info['driver_cpu_per_task_s'] * 1e3:.3f} ms "
                  f"(wall {info['wall_per_task_s'] * 1e3:.3f} ms)")
    tell = tell_cost(args)
    report["tell_s"] = tell
    report["predictions"] = predictions(comm, tell, comm["dim"], comm["population"])
    print("\nPredicted for larger pools (population 1000, 100k parameters):")
    for line in report["predictions"]:
        print(f"  {line}")
    report["load_after"] = load()
    print(f"\n{report['load_after']}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    main()
