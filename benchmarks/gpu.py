"""Whole generations on one device: env-steps/s of ``TorchEnvProblem`` (``--vector torch``).

1. Throughput: env-steps/s of a full generation (ask -> evaluate -> tell) at populations
   1k, 10k, 100k (and 1M on a GPU) for CartPole-v1 with a 4-64-2 tanh MLP and for
   Pendulum-v1 with a 3-64-1 MLP, one episode per member, the envs' default observation
   normalisation. The generation is that of the initial center (so CartPole episodes are
   short, about 10-40 steps, and the generation runs as long as its longest episode), and
   for ``CartPole-v1:balancing`` that of a hand-set center whose members mostly balance
   for all 500 steps (the regime of a trained population). On CUDA each workload runs
   eagerly and with every env step replayed as one CUDA graph (``cuda_graph=True``).
   Populations whose estimate does not fit in the device's memory are skipped (the
   problem's own check). Where the time goes: building the members, the policy forward,
   the env steps, the update (measured apart).
2. On CPU, the same generation through today's numpy path (``GymProblem``, the
   Gymnasium vector env for CartPole, sync envs for Pendulum) in the same run, and the
   ratio torch / numpy.
3. Time to solve CartPole-v1 (a 100-episode greedy mean >= 475, tested every generation
   on the device) with the CLI's tuned CartPole settings, per seed: wall time and
   generations.
4. ``--jax``: the JAX side-by-side, ``benchmarks/gpu_jax.py`` (evosax 0.3 OpenES on gymnax
   CartPole-v1, the same MLP and populations, jitted with ``lax.scan``), run in a
   subprocess where ``jax``, ``evosax`` and ``gymnax`` import, skipped otherwise; its
   env-steps/s are printed beside ours with the ratio.

    python benchmarks/gpu.py --device cpu --populations 1000,10000      # short, this machine
    python benchmarks/gpu.py --device cuda --jax --json gpu.json         # on a GPU

Wall-clock figures on a shared machine are noisy; env-step counts are not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from pytorch_es.evaluation.base import SerialEvaluator
from pytorch_es.rl import GymProblem, get_defaults
from pytorch_es.rl.torch_problem import DeviceMLP, TorchEnvProblem, check_device
from pytorch_es.strategies import OpenAIES
from pytorch_es.training import Trainer

HERE = Path(__file__).resolve().parent
WORKLOADS = {"CartPole-v1": (64,), "Pendulum-v1": (64,), "CartPole-v1:balancing": (64,)}


def balancing_center(problem) -> torch.Tensor:
    """A 4-64-2 center whose members (sigma 0.1) mostly balance the pole for all 500 steps:
    hidden unit 0 is ``tanh(10 x + 20 x_dot + 100 theta + 20 theta_dot)``, the logits
    ``(-50, 50)`` times it.
    The long-episode regime of a trained population, without training first."""
    center = torch.zeros(problem.num_parameters)
    w1 = center[: 4 * 64].view(4, 64)
    w1[:, 0] = torch.tensor([10.0, 20.0, 100.0, 20.0])
    w2 = center[4 * 64 + 64 : 4 * 64 + 64 + 64 * 2].view(64, 2)
    w2[0, 0], w2[0, 1] = -50.0, 50.0
    return center


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _strategy(problem, population: int, device: torch.device, seed: int = 0, balancing: bool = False) -> OpenAIES:
    center = balancing_center(problem) if balancing else problem.initial_center(seed)
    return OpenAIES(center.to(device), population_size=population, sigma=0.1, lr=0.01, optimizer="adam", seed=seed)


def _generation(problem, strategy: OpenAIES, device: torch.device) -> dict[str, float]:
    """One timed ask -> evaluate -> tell, from the problem's first state (a fresh normaliser:
    every timed generation then plays the same episodes)."""
    if problem.normalizer is not None:
        fresh = type(problem.normalizer)(problem.normalizer.shape, clip=problem.normalizer.clip)
        problem.normalizer.load_state_dict(fresh.state_dict())
    _sync(device)
    start = time.perf_counter()
    population = strategy.ask()
    result = SerialEvaluator().evaluate(population, problem)
    evaluated = time.perf_counter()
    strategy.tell(result.rewards)
    _sync(device)
    end = time.perf_counter()
    return {"wall": end - start, "evaluate": evaluated - start, "tell": end - evaluated,
            "env_steps": int(result.env_steps), "reward_mean": float(result.rewards.mean())}


def _split(problem: TorchEnvProblem, strategy: OpenAIES, device: torch.device, steps: int = 20) -> dict[str, float]:
    """Where a generation's time goes: members, one forward, one env step (per step)."""
    population = strategy.ask()
    indices = list(range(len(population)))
    with torch.inference_mode():
        _sync(device)
        start = time.perf_counter()
        members = problem._members(population, indices)
        net = DeviceMLP(problem.policy, members)
        _sync(device)
        build = time.perf_counter() - start
        env = problem._env(len(indices))
        seeds = problem.episode_seeds(strategy.seed, strategy.generation)
        obs = env.reset(state=env.start_states(seeds).repeat(len(indices), 1))
        actions = net(obs)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            actions = net(obs)
        _sync(device)
        forward = (time.perf_counter() - start) / steps
        start = time.perf_counter()
        for _ in range(steps):
            obs, *_ = env.step(actions)
        _sync(device)
        env_step = (time.perf_counter() - start) / steps
    return {"build_members": build, "forward_per_step": forward, "env_step_per_step": env_step}


def throughput(workload: str, populations: list[int], device: torch.device, repeats: int, gym_max: int,
               cuda_graph: bool = False) -> list[dict]:
    hidden = WORKLOADS[workload]
    env_id, _, variant = workload.partition(":")
    balancing = variant == "balancing"
    obs_norm = get_defaults(env_id).obs_norm
    rows = []
    for n in populations:
        row: dict = {"env_id": env_id, "workload": workload, "population": n, "policy": None, "device": str(device),
                     "cuda_graph": cuda_graph}
        problem = TorchEnvProblem(env_id, {"hidden": hidden}, obs_norm=obs_norm, device=device, cuda_graph=cuda_graph)
        row["policy"] = problem.policy.describe()
        strategy = _strategy(problem, n, device, balancing=balancing)
        try:
            _generation(problem, strategy, device)  # warm-up: allocator, kernels, caches
            strategy = _strategy(problem, n, device, balancing=balancing)
        except ValueError as error:  # the memory estimate
            row["skipped"] = str(error)
            print(f"{workload} population {n:,}: skipped ({error})", flush=True)
            rows.append(row)
            continue
        # every repeat is generation 0 of the same seed: the same members, the same episodes
        runs = [_generation(problem, _strategy(problem, n, device, balancing=balancing), device)
                for _ in range(repeats)]
        best = min(runs, key=lambda r: r["wall"])
        row.update({k: best[k] for k in ("wall", "evaluate", "tell", "env_steps")})
        row["steps_per_s"] = best["env_steps"] / best["wall"]
        row["eval_steps_per_s"] = best["env_steps"] / best["evaluate"]
        row.update(_split(problem, strategy, device))  # where the time goes (on CUDA: launch-bound or not)
        label = workload + (" [CUDA graph]" if cuda_graph else "")
        text = (f"{label} {row['policy']} population {n:>9,}: {row['steps_per_s']:>14,.0f} env-steps/s per "
                f"generation ({best['env_steps']:,} steps, {best['wall'] * 1e3:.1f} ms; evaluate "
                f"{best['evaluate'] * 1e3:.1f} ms, tell {best['tell'] * 1e3:.1f} ms)")
        if "forward_per_step" in row:
            text += (f"; members {row['build_members'] * 1e3:.1f} ms, forward {row['forward_per_step'] * 1e3:.2f} ms"
                     f" + env step {row['env_step_per_step'] * 1e3:.2f} ms per step")
        print(text, flush=True)
        if device.type == "cpu" and n <= gym_max and not cuda_graph:
            gym_problem = GymProblem(env_id, {"hidden": hidden}, obs_norm=obs_norm)
            _generation(gym_problem, _strategy(gym_problem, n, device, balancing=balancing), device)
            gym_runs = [_generation(gym_problem, _strategy(gym_problem, n, device, balancing=balancing), device)
                        for _ in range(repeats)]
            gym_best = min(gym_runs, key=lambda r: r["wall"])
            row["gym_steps_per_s"] = gym_best["env_steps"] / gym_best["wall"]
            row["gym_env_steps"] = gym_best["env_steps"]
            row["ratio_vs_numpy"] = row["steps_per_s"] / row["gym_steps_per_s"]
            print(f"{'':>{len(workload)}} numpy path (GymProblem) population {n:>9,}: {row['gym_steps_per_s']:>14,.0f} "
                  f"env-steps/s ({gym_best['env_steps']:,} steps, {gym_best['wall'] * 1e3:.1f} ms); torch / numpy "
                  f"= {row['ratio_vs_numpy']:.2f}", flush=True)
            gym_problem.close()
        rows.append(row)
        del problem, strategy
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def solve_cartpole(device: torch.device, seeds: list[int], vector: str = "torch", generations: int = 100) -> list[dict]:
    """Wall time to a 100-episode greedy mean >= 475 with the CLI's CartPole settings."""
    d = get_defaults("CartPole-v1")
    rows = []
    for seed in seeds:
        policy = {"hidden": d.hidden, "activation": d.activation}
        if vector == "torch":
            problem = TorchEnvProblem("CartPole-v1", policy, max_steps=d.max_steps, obs_norm=d.obs_norm, device=device)
        else:
            problem = GymProblem("CartPole-v1", policy, max_steps=d.max_steps, obs_norm=d.obs_norm)
        strategy = OpenAIES(problem.initial_center(seed).to(device), population_size=d.population, sigma=d.sigma,
                            lr=d.lr, optimizer=d.optimizer, fitness_shaping=d.fitness_shaping, seed=seed)
        test_seed = 10_000 + seed

        def test(center, problem=problem, test_seed=test_seed):
            return float(problem.evaluate_policy(center, episodes=100, seed=test_seed).mean())

        if vector == "torch":  # warm-up of the device (CUDA context, kernels) outside the timed run
            problem.evaluate_policy(strategy.center, episodes=100, seed=0)
        trainer = Trainer(strategy, problem, SerialEvaluator(), test=test, target=475.0)
        _sync(device)
        start = time.perf_counter()
        result = trainer.run(generations)
        _sync(device)
        wall = time.perf_counter() - start
        row = {"vector": vector, "seed": seed, "solved": result.solved, "generations": result.generation,
               "wall": wall, "env_steps": result.env_steps, "best_test": result.best_test_reward}
        rows.append(row)
        where = "torch envs on " + str(device) if vector == "torch" else "Gymnasium (numpy) envs"
        print(f"CartPole-v1 solve, {where}, seed {seed}: {'solved' if result.solved else 'NOT solved'} in "
              f"{result.generation} generations, {wall:.2f} s wall (tests included), {result.env_steps:,} env "
              f"steps, best test {result.best_test_reward:.1f}", flush=True)
        if hasattr(problem, "close"):
            problem.close()
    return rows


def jax_side_by_side(populations: list[int], repeats: int, python: str, timeout: float) -> dict:
    """Run ``gpu_jax.py`` in a subprocess; its JSON, or why it was skipped."""
    try:
        probe = subprocess.run([python, str(HERE / "gpu_jax.py"), "--probe"], capture_output=True, text=True,
                               timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"JAX side-by-side skipped: {error}", flush=True)
        return {"skipped": str(error)}
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        print(f"JAX side-by-side skipped: {reason}", flush=True)
        return {"skipped": reason}
    out = HERE / ".gpu_jax.json"
    out.unlink(missing_ok=True)
    command = [python, str(HERE / "gpu_jax.py"), "--populations", ",".join(map(str, populations)),
               "--repeats", str(repeats), "--json", str(out)]
    try:
        done = subprocess.run(command, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"JAX side-by-side stopped after {timeout:g} s", flush=True)
        if not out.exists():
            return {"skipped": f"timeout {timeout:g} s"}
        done = subprocess.CompletedProcess(command, 0)  # keep the populations it finished
    if done.returncode != 0 or not out.exists():
        return {"skipped": f"gpu_jax.py exited {done.returncode}"}
    result = json.loads(out.read_text())
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--populations", help="comma-separated (default 1k,10k,100k,1M on CUDA; 1k,10k on CPU)")
    parser.add_argument("--envs", default="CartPole-v1,Pendulum-v1,CartPole-v1:balancing",
                        help=f"workloads, of {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per point (the fastest counts)")
    parser.add_argument("--gym-max", type=int, default=100_000, help="largest population run through GymProblem (CPU)")
    parser.add_argument("--solve-seeds", default="0,1,2", help="seeds of the CartPole solve runs ('' skips them)")
    parser.add_argument("--solve-gym", action="store_true", help="also solve through GymProblem (CPU), for the ratio")
    parser.add_argument("--cuda-graph", choices=("off", "on", "both"), default=None,
                        help="replay each env step as a CUDA graph (default: both on CUDA, off on CPU)")
    parser.add_argument("--jax", action="store_true", help="run benchmarks/gpu_jax.py beside ours")
    parser.add_argument("--jax-python", default=sys.executable, help="interpreter with jax, evosax and gymnax")
    parser.add_argument("--jax-timeout", type=float, default=120.0, help="seconds for the whole JAX side")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a busy machine more threads wait on each other)")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args()
    try:
        device = check_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    default = "1000,10000,100000,1000000" if device.type == "cuda" else "1000,10000"
    populations = [int(p) for p in (args.populations or default).split(",") if p]
    machine = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
               "threads": torch.get_num_threads(), "load": os.getloadavg()[0]}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    print(f"machine: {machine}", flush=True)
    figures: dict = {"machine": machine, "throughput": [], "solve": []}

    def save() -> None:  # after every part: a run stopped by a timeout keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))

    graphs = args.cuda_graph or ("both" if device.type == "cuda" else "off")
    variants = {"off": [False], "on": [True], "both": [False, True]}[graphs]
    for workload in [e for e in args.envs.split(",") if e]:
        for graph in variants:
            figures["throughput"] += throughput(workload, populations, device, args.repeats, args.gym_max, graph)
            save()
    seeds = [int(s) for s in args.solve_seeds.split(",") if s]
    if seeds:
        figures["solve"] += solve_cartpole(device, seeds)
        if args.solve_gym:
            figures["solve"] += solve_cartpole(torch.device("cpu"), seeds, vector="gymnasium")
        save()
    if args.jax:
        figures["jax"] = jax_side_by_side(populations, args.repeats, args.jax_python, args.jax_timeout)
        ours: dict[int, dict] = {}  # the faster of the eager and graphed variants
        for r in figures["throughput"]:
            if r["workload"] != "CartPole-v1" or "wall" not in r:
                continue
            if r["population"] not in ours or r["steps_per_s"] > ours[r["population"]]["steps_per_s"]:
                ours[r["population"]] = r
        for row in figures["jax"].get("throughput", []):
            mine = ours.get(row["population"])
            if mine is not None:
                ratio = mine["steps_per_s"] / row["live_steps_per_s"]
                print(f"CartPole-v1 population {row['population']:>9,}: pytorch-es {mine['steps_per_s']:,.0f} vs "
                      f"evosax+gymnax {row['live_steps_per_s']:,.0f} env-steps/s (episode steps; "
                      f"{row['computed_steps_per_s']:,.0f} counting the scan's steps after the episode ends): "
                      f"ratio {ratio:.2f}", flush=True)
    figures["machine"]["load_after"] = os.getloadavg()[0]
    save()


if __name__ == "__main__":
    main()
