"""Strategy benchmark: evaluations to reach f - f* < 1e-8, side by side with the reference.

Quality (counts, not noisy): for each function in {sphere, ellipsoid, rosenbrock,
rotated ellipsoid}, dim in {10, 40} and seed, our CMA-ES / sep-CMA-ES and pycma's
(``cma``, with ``CMA_diagonal=True`` for sep), or our CR-FM-NES and the authors'
(``crfmnes`` 1.0.0, run by ``benchmarks/peers/crfmnes_run.py`` in ``--crfmnes-python``,
default ``.peers/crfmnes/bin/python``, with the same population size) start from the
same ``x0 ~ U(-1, 1)^n`` and ``sigma0 = 0.5`` and run ask/tell until the best f is below
1e-8 or ``--budget`` evaluations; the median evaluations over the seeds and the ratio
ours / reference are printed (target: ratio <= 1.1). A run that does not reach the
target counts as the budget (the table shows how many reached it). An algo without a
reference (``ipop-cma-es``, ``ipop-cr-fm-nes``, ...) runs alone. On ``rastrigin``
(no restarts), and on every cell with ``--best-f``, the medians are of the best f after
``--budget`` evaluations instead; a
cell ``algo:function:dim:population`` sets the population of both. ``--png`` writes
median best-so-far curves.

Against the peers (issue 13): SNES, xNES, CR-FM-NES, CMA-ES, PGPE, OpenAI-ES, ARS and CEM
(``PEERS``) run beside every peer implementation of the same algorithm: evosax 0.3, EvoTorch 0.6.1
and EvoX 1.4 through ``benchmarks/peers/peer_run.py`` in ``.peers/<library>`` (``bash
benchmarks/peers/setup.sh``), the authors' crfmnes, and pycma (in this process) for CMA-ES, with
the same functions (checked equal on 4 points), x0, sigma0 = 0.5 and population (ours), each
library's defaults otherwise (``PEERS`` gives the exceptions); ``--peers evox`` runs only the
peers of the libraries named. SNES, xNES, CR-FM-NES and CMA-ES report evaluations to 1e-8; PGPE,
OpenAI-ES, ARS and CEM, not built to get there,
the best f and the f of the final center after ``--fixed-budget`` evaluations. docs/strategies.md,
"Against the peers", has the results and the commands.

Speed (``--speed``, preliminary: wall time on a busy machine is noisy): ask + tell
seconds per generation of every registered strategy at the given dims, beside EvoTorch's and
EvoX's (``benchmarks/peers/evotorch_speed.py``, ``evox_speed.py``) where they have the algo.

pycma is a benchmark-only dependency: ``pip install cma``.

    python benchmarks/strategies.py --seeds 15 --png docs/strategies_convergence.png
    python benchmarks/strategies.py --seeds 3 --dims 10 --functions sphere
    python benchmarks/strategies.py --algos cr-fm-nes --seeds 15
    python benchmarks/strategies.py --cells cr-fm-nes:rastrigin:10:200 --budget 100000
    python benchmarks/strategies.py --speed --speed-dims 100 10000
    python benchmarks/strategies.py --algos snes xnes pgpe openai-es ars cem --seeds 3 --json peers.json
    python benchmarks/strategies.py --algos snes xnes cma-es openai-es ars --peers evox --seeds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

TARGET = 1e-8
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = {"cma-es": "pycma", "sep-cma-es": "pycma", "ipop-cma-es": "pycma", "bipop-cma-es": "pycma",
        "cr-fm-nes": "crfmnes"}


def rotation(n: int, seed: int = 12345) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def make_function(name: str, n: int):
    coefficients = 10 ** (6 * torch.arange(n, dtype=torch.float64) / (n - 1))
    if name == "sphere":
        return lambda x: (x**2).sum(-1)
    if name == "ellipsoid":
        return lambda x: (coefficients * x**2).sum(-1)
    if name == "rosenbrock":
        return lambda x: (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(-1)
    if name == "rotated-ellipsoid":
        rot = rotation(n)
        return lambda x: (coefficients * (x @ rot.T) ** 2).sum(-1)
    if name == "rastrigin":
        return lambda x: 10 * n + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1)
    raise ValueError(f"unknown function {name!r}")


def start(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1000 + seed)
    return torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1


def run_ours(algo: str, function, x0: torch.Tensor, seed: int, budget: int,
             population: int | None = None) -> tuple[int, list]:
    from pytorch_es import strategies

    size = {} if population is None else {"population_size": population}
    strategy = strategies.get(algo)(x0.clone(), sigma=0.5, maximize=False, seed=seed, **size)
    return ask_tell_until_target(strategy, function, budget)


def ask_tell_until_target(strategy, function, budget: int) -> tuple[int, list]:
    """ask/tell until the best f is below ``TARGET`` or ``budget`` evaluations: (evaluations,
    best-so-far curve)."""
    evaluations, best, curve = 0, math.inf, []
    while evaluations < budget:
        population = strategy.ask()
        values = function(population.members())
        strategy.tell(values, population=population)
        evaluations += len(values)
        best = min(best, float(values.min()))
        curve.append((evaluations, best))
        if best < TARGET:
            break
    return evaluations, curve


class _BudgetSpent(Exception):
    pass


def run_pycma_restarts(algo: str, function, x0: torch.Tensor, seed: int, budget: int) -> tuple[int, list]:
    """pycma's own IPOP (``restarts``, ``incpopsize=2``) or BIPOP (``bipop=True``) through
    ``cma.fmin2``, with its default termination criteria, restarting from ``x0`` as ours does;
    the objective stops the whole run at ``budget`` evaluations or below ``TARGET``."""
    import cma

    evaluations, best, curve = 0, math.inf, []

    def objective(x) -> float:
        nonlocal evaluations, best
        if evaluations >= budget or best < TARGET:
            raise _BudgetSpent
        value = float(function(torch.as_tensor(x, dtype=torch.float64)))
        evaluations += 1
        best = min(best, value)
        curve.append((evaluations, best))
        return value

    options = {"seed": seed + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0, "maxfevals": budget}
    with contextlib.suppress(_BudgetSpent):
        cma.fmin2(objective, x0.numpy(), 0.5, options, restarts=10**6, incpopsize=2,
                  bipop=algo == "bipop-cma-es")
    return evaluations, curve


def run_pycma(algo: str, function, x0: torch.Tensor, seed: int, budget: int) -> tuple[int, list]:
    import cma
    import numpy

    if algo in ("ipop-cma-es", "bipop-cma-es"):
        return run_pycma_restarts(algo, function, x0, seed, budget)
    options = {"seed": seed + 1, "verbose": -9, "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolflatfitness": 0,
               "tolstagnation": 10**9, "maxfevals": budget, "CMA_diagonal": algo == "sep-cma-es"}
    es = cma.CMAEvolutionStrategy(x0.numpy(), 0.5, options)
    evaluations, best, curve = 0, math.inf, []
    while evaluations < budget:
        xs = es.ask()
        values = function(torch.from_numpy(numpy.asarray(xs, dtype=numpy.float64))).tolist()
        es.tell(xs, values)
        evaluations += len(values)
        best = min(best, min(values))
        curve.append((evaluations, best))
        if best < TARGET:
            break
    return evaluations, curve


def crfmnes_population(n: int) -> int:
    """Our CR-FM-NES default, which the reference (it has none) is given too."""
    return 2 * math.ceil((4 + int(3 * math.log(n))) / 2)


def run_crfmnes(args: argparse.Namespace, name: str, n: int, population: int | None) -> list[tuple[int, list]]:
    """All seeds of one cell in the authors' implementation, in its own venv."""
    python = args.crfmnes_python or os.path.join(ROOT, ".peers", "crfmnes", "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"no CR-FM-NES reference at {python}: python3 -m venv .peers/crfmnes && "
                         ".peers/crfmnes/bin/pip install numpy crfmnes==1.0.0 (or --crfmnes-python PATH)")
    job = {"function": name, "dim": n, "population": population or crfmnes_population(n), "sigma": 0.5,
           "budget": args.budget, "target": TARGET,
           "rotation": rotation(n).tolist() if name == "rotated-ellipsoid" else None,
           "runs": [{"seed": seed + 1, "x0": start(n, seed).tolist()} for seed in range(args.seeds)]}
    script = os.path.join(ROOT, "benchmarks", "peers", "crfmnes_run.py")
    reply = subprocess.run([python, script], input=json.dumps(job), capture_output=True, text=True, check=True)
    return [(r["evaluations"], [tuple(point) for point in r["curve"]]) for r in json.loads(reply.stdout)]


# The other strategies against their peers (issue 13): per algo, each peer as label -> (library,
# settings); settings {} is the library's own defaults, a dict replaces those it names (see
# benchmarks/peers/peer_run.py). "=ours" marks a peer given our default values where its own
# defaults differ, so the two rows separate the implementation from the default. crfmnes runs in
# its own runner (crfmnes_run.py).
PEERS: dict[str, dict[str, tuple[str, dict]]] = {
    # EvoX's SNES defaults to evosax's old temperature weights; "recomb" is the NES utilities
    "snes": {"evosax": ("evosax", {}), "evotorch": ("evotorch", {}), "evox": ("evox", {}),
             "evox=ours": ("evox", {"weights": "recomb"})},
    "xnes": {"evosax": ("evosax", {}), "evotorch": ("evotorch", {}), "evox": ("evox", {})},
    # pycma runs in this process (run_pycma); EvoX's CMAES with dynamo disabled (peer_run.py)
    "cma-es": {"pycma": ("pycma", {}), "evox": ("evox", {})},
    "cr-fm-nes": {"crfmnes": ("crfmnes", {}), "evosax": ("evosax", {})},
    # EvoTorch's PGPE has no default center_learning_rate / stdev_learning_rate: ours for it
    "pgpe": {"evosax": ("evosax", {}), "evosax=ours": ("evosax", {"lr": 0.05}),
             "evotorch=ours": ("evotorch", {"lr": 0.05, "scale_lr": 0.1})},
    # EvoX's OpenES has no default lr and no fitness shaping (raw f): ours, raw and centered ranks
    "openai-es": {"evosax": ("evosax", {}), "evosax=ours": ("evosax", {"lr": 0.01}),
                  "evox=ours,raw": ("evox", {"lr": 0.01}),
                  "evox=ours": ("evox", {"lr": 0.01, "shaping": "centered_ranks"})},
    "ars": {"evosax": ("evosax", {}), "evosax=ours": ("evosax", {"lr": 0.02, "top_directions": "half"}),
            "evox": ("evox", {}), "evox=ours": ("evox", {"lr": 0.02, "top_directions": "half"})},
    # EvoTorch's CEM has no default parenthood_ratio: our elite_ratio 0.2 for it
    "cem": {"evotorch=ours": ("evotorch", {"elite_ratio": 0.2})},
}
# not designed to reach 1e-8 (a fixed sigma, a fixed ClipUp step, or a collapsing variance): these
# report the median best f and the median f at the final center after --fixed-budget evaluations
FIXED_BUDGET_ALGOS = {"pgpe", "openai-es", "ars", "cem"}
# the diagonal strategies cannot solve the rotated ellipsoid; CR-FM-NES (one direction v) neither
DIAGONAL_ALGOS = {"snes", "cr-fm-nes", "sep-cma-es"}


def our_population(algo: str, n: int, population: int | None) -> int:
    """The population our strategy uses (its default unless given), which the peers get too."""
    from pytorch_es import strategies

    size = {} if population is None else {"population_size": population}
    return strategies.get(algo)(torch.zeros(n, dtype=torch.float64), sigma=0.5, seed=0, **size).population_size


def run_ours_against_peers(algo: str, function, x0: torch.Tensor, seed: int, budget: int,
                           population: int) -> dict:
    """One run of ours, as ``run_ours`` plus f at the final center (not counted)."""
    from pytorch_es import strategies

    strategy = strategies.get(algo)(x0.clone(), sigma=0.5, maximize=False, seed=seed, population_size=population)
    evaluations, curve = ask_tell_until_target(strategy, function, budget)
    return {"evaluations": evaluations, "curve": curve,
            "center_f": float(function(strategy.center.to(torch.float64).unsqueeze(0))[0])}


def check_peer_values(label: str, name: str, n: int, values: list, points: torch.Tensor) -> None:
    """The peer's function values on ``points`` must equal ours (relative 1e-12)."""
    ours = make_function(name, n)(points)
    theirs = torch.tensor(values, dtype=torch.float64)
    if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-12, atol=0.0):
        raise SystemExit(f"{label}'s {name} in {n}-D differs from ours: {theirs.tolist()} vs {ours.tolist()}")


def run_peer(args: argparse.Namespace, label: str, algo: str, name: str, n: int, population: int,
             budget: int) -> tuple[list[dict], dict]:
    """All seeds of one cell in a peer library, in its venv (.peers/<library>); returns the runs
    and the hyperparameters it used."""
    library, settings = PEERS[algo][label]
    if library == "crfmnes":
        return [{"evaluations": count, "curve": curve, "center_f": math.nan}
                for count, curve in run_crfmnes(args, name, n, population)], {"class": "crfmnes.CRFMNES"}
    if library == "pycma":
        function = make_function(name, n)
        runs = [run_pycma(algo, function, start(n, seed), seed, budget) for seed in range(args.seeds)]
        return [{"evaluations": count, "curve": curve, "center_f": math.nan} for count, curve in runs], \
            {"class": "cma.CMAEvolutionStrategy"}
    python = os.path.join(args.peers_dir or os.path.join(ROOT, ".peers"), library, "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"no {library} venv at {python}: bash benchmarks/peers/setup.sh {library}")
    settings = {key: population // 2 if value == "half" else value for key, value in settings.items()}
    points = torch.rand(4, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 4 - 2
    job = {"library": library, "algo": algo, "function": name, "dim": n, "population": population, "sigma": 0.5,
           "budget": budget, "target": TARGET, "settings": settings, "points": points.tolist(),
           "rotation": rotation(n).tolist() if name == "rotated-ellipsoid" else None,
           "runs": [{"seed": seed + 1, "x0": start(n, seed).tolist()} for seed in range(args.seeds)]}
    script = os.path.join(ROOT, "benchmarks", "peers", "peer_run.py")
    reply = subprocess.run([python, script], input=json.dumps(job), capture_output=True, text=True)
    if reply.returncode:
        raise SystemExit(f"{label} failed on {algo} {name} {n}-D:\n{reply.stderr[-2000:]}")
    out = json.loads(reply.stdout)
    check_peer_values(label, name, n, out["values"], points)
    return out["runs"], out["used"]


def peer_labels(args: argparse.Namespace, algo: str) -> list[str]:
    """The peers of ``algo`` to run: every one in ``PEERS``, or those of the ``--peers`` libraries."""
    return [label for label, (library, _) in PEERS.get(algo, {}).items()
            if args.peers is None or library in args.peers]


def peer_cells(args: argparse.Namespace) -> list[tuple[str, str, int, int | None]]:
    """The cells of the algos in ``PEERS`` with a peer to run (``--cells`` or the product, without
    the diagonal strategies' rotated ellipsoid unless ``--all-pairs``)."""
    every = [(algo, name, n, None) for algo in args.algos for name in args.functions for n in args.dims
             if args.all_pairs or algo in FIXED_BUDGET_ALGOS
             or not (algo in DIAGONAL_ALGOS and name == "rotated-ellipsoid")]
    return [cell for cell in (cells(args) if args.cells else every) if peer_labels(args, cell[0])]


def peer_quality(args: argparse.Namespace, results: dict) -> dict:
    """Ours and every peer of ``PEERS`` on the same cells, seeds, x0, sigma0 = 0.5 and population.
    Rows are saved to ``--json`` after each cell like ``quality``'s, with ``peers`` (labels) and
    ``used`` (each peer's hyperparameters)."""
    for algo, name, n, population in peer_cells(args):
        size = our_population(algo, n, population)
        fixed = algo in FIXED_BUDGET_ALGOS or name == "rastrigin" or args.best_f
        budget = args.fixed_budget if algo in FIXED_BUDGET_ALGOS else args.budget
        key = f"{algo} {name} {n}" + ("" if population is None else f" {population}")
        if key not in results:
            function = make_function(name, n)
            labels = peer_labels(args, algo)
            row = {"peers": labels, "budget": budget, "population": size, "seeds": args.seeds,
                   "metric": "best_f" if fixed else "evaluations", "used": {}, "curves": {}, "center_f": {}}
            began = time.perf_counter()
            ours = [run_ours_against_peers(algo, function, start(n, seed), seed, budget, size)
                    for seed in range(args.seeds)]
            row["seconds"] = {"ours": time.perf_counter() - began}
            runs = {"ours": ours}
            for label in labels:
                began = time.perf_counter()
                runs[label], row["used"][label] = run_peer(args, label, algo, name, n, size, budget)
                row["seconds"][label] = time.perf_counter() - began
            for who, outcome in runs.items():
                row[who] = [r["curve"][-1][1] if fixed else r["evaluations"] if r["curve"][-1][1] < TARGET
                            else budget for r in outcome]
                row["center_f"][who] = [r["center_f"] for r in outcome]
                row["curves"][who] = [thin(r["curve"]) for r in outcome]
            results[key] = row
            if args.json:
                with open(args.json, "w") as file:
                    json.dump(results, file)
        if "peers" not in results[key]:  # a row quality() wrote before cma-es moved here: kept as it is
            print(f"{key:30s} kept from --json as quality() wrote it (no peer columns); delete it to rerun")
            continue
        print_peer_row(key, results[key])
    return results


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney U test: the normal approximation with the tie and continuity
    corrections (values equal to 1e-9 relative count as ties, as Rastrigin's basins repeat)."""
    values = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks, i = [0.0] * len(values), 0
    ties = 0.0
    while i < len(values):
        j = i
        while j + 1 < len(values) and math.isclose(values[j + 1][0], values[i][0], rel_tol=1e-9, abs_tol=1e-12):
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        ties += (j - i + 1) ** 3 - (j - i + 1)
        i = j + 1
    n1, n2 = len(a), len(b)
    u = sum(rank for rank, (_, group) in zip(ranks, values) if group == 0) - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = max(0.0, abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return math.erfc(z / math.sqrt(2))


def print_peer_row(key: str, row: dict) -> None:
    """One line per cell: ours and each peer, the ratio ours / peer, and ours / the best peer."""
    labels, budget = row["peers"], row["budget"]
    medians = {who: statistics.median(row[who]) for who in ["ours", *labels]}
    best = min(labels, key=lambda label: medians[label])
    if row["metric"] == "best_f":
        centers = {who: statistics.median(row["center_f"][who]) for who in ["ours", *labels]}
        parts = [f"{who} {medians[who]:.3g} (center {centers[who]:.3g})" for who in ["ours", *labels]]
        print(f"{key:30s} median best f after {budget} evaluations, {len(row['ours'])} seeds: " + "  ".join(parts)
              + f"  ratio to best ({best}) {medians['ours'] / max(medians[best], 1e-300):.3g}", flush=True)
        return
    parts = [f"{who} {medians[who]:.0f} ({sum(c < budget for c in row[who])}/{len(row[who])})"
             + ("" if who == "ours" else f" ratio {medians['ours'] / medians[who]:.2f}")
             for who in ["ours", *labels]]
    print(f"{key:30s} median evaluations to 1e-8: " + "  ".join(parts)
          + f"  ratio to best ({best}) {medians['ours'] / medians[best]:.2f}", flush=True)


def cells(args: argparse.Namespace) -> list[tuple[str, str, int, int | None]]:
    """(algo, function, dim, population) to run: ``--cells algo:function:dim[:population] ...``
    or the product (default populations)."""
    if args.cells:
        out = []
        for text in args.cells:
            algo, name, n, *size = text.split(":")
            out.append((algo, name, int(n), int(size[0]) if size else None))
        return out
    return [(algo, name, n, None) for algo in args.algos for name in args.functions for n in args.dims
            if args.all_pairs or not (algo == "sep-cma-es" and name == "rotated-ellipsoid")]


def thin(curve: list, points: int = 200) -> list:
    step = max(1, len(curve) // points)
    return curve[::step] + ([curve[-1]] if len(curve) % step != 1 else [])


def quality(args: argparse.Namespace) -> dict:
    """Run the cells; with ``--json``, results (counts and thinned curves) are saved after each
    cell and cells already in the file are kept, so a long benchmark can be continued."""
    results: dict = {}
    if args.json:
        try:
            with open(args.json) as file:
                results = json.load(file)
        except FileNotFoundError:
            pass
    for algo, name, n, population in cells(args):
        if algo in PEERS:
            continue  # peer_quality runs these
        key = f"{algo} {name} {n}" + ("" if population is None else f" {population}")
        peer = PEER.get(algo)  # None: ours alone
        fixed = name == "rastrigin" or args.best_f  # best f at the budget, not evaluations to the target
        if key not in results:
            function = make_function(name, n)
            who_runs = ("ours", peer) if peer else ("ours",)
            row = {**{who: [] for who in who_runs}, "curves": {who: [] for who in who_runs}, "budget": args.budget,
                   "peer": peer, "metric": "best_f" if fixed else "evaluations"}
            theirs = run_crfmnes(args, name, n, population) if peer == "crfmnes" else None
            for seed in range(args.seeds):
                x0 = start(n, seed)
                for who in who_runs:
                    if who == "ours":
                        count, curve = run_ours(algo, function, x0, seed, args.budget, population)
                    elif theirs is not None:
                        count, curve = theirs[seed]
                    else:
                        count, curve = run_pycma(algo, function, x0, seed, args.budget)
                    row[who].append(curve[-1][1] if fixed else count if curve[-1][1] < TARGET else args.budget)
                    row["curves"][who].append(thin(curve))
            results[key] = row
            if args.json:
                with open(args.json, "w") as file:
                    json.dump(results, file)
        row = results[key]
        peer = row.get("peer", "pycma")
        budget = row.get("budget", args.budget)
        ours, theirs = statistics.median(row["ours"]), statistics.median(row[peer]) if peer else None
        label = f"{algo:11s} {name:18s} dim {n:3d}" + ("" if population is None else f" population {population}")
        if peer is None:
            metric = "best f after" if row.get("metric") == "best_f" else "evaluations to 1e-8 within"
            print(f"{label}: median {metric} {budget} evaluations {ours:.3g} (per seed "
                  f"{[round(v, 2) for v in row['ours']]})", flush=True)
            continue
        if row.get("metric") == "best_f":
            print(f"{label}: median best f after {budget} evaluations ours {ours:.3g}  {peer} {theirs:.3g}  "
                  f"(Mann-Whitney p = {mann_whitney_p(row['ours'], row[peer]):.3f}; ours per seed "
                  f"{[round(v, 2) for v in row['ours']]}, {peer} {[round(v, 2) for v in row[peer]]})", flush=True)
            continue
        reached_ours = sum(c < budget for c in row["ours"])
        reached_theirs = sum(c < budget for c in row[peer])
        print(f"{label}: median evaluations ours {ours:9.0f} "
              f"({reached_ours}/{len(row['ours'])} reached)  {peer} {theirs:9.0f} "
              f"({reached_theirs}/{len(row[peer])})  ratio {ours / theirs:5.2f}", flush=True)
    return results


def median_curve(curves: list[list], grid: list[int]) -> list[float]:
    out = []
    for point in grid:
        values = []
        for curve in curves:
            best = math.inf
            for evaluations, value in curve:
                if evaluations > point:
                    break
                best = value
            values.append(max(best, TARGET / 10) if math.isfinite(best) else math.inf)
        out.append(statistics.median(values))
    return out


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(results, key=lambda k: (k.split()[0], k.split()[1], int(k.split()[2])))
    columns = 4
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        algo, name, n = key.split()[:3]
        row = results[key]
        whos = ["ours", *[who for who in row.get("peers", [row.get("peer", "pycma")]) if who]]
        reached = [c[-1][0] for who in whos for c in row["curves"][who] if c[-1][1] < TARGET]
        last = max(reached or [c[-1][0] for who in whos for c in row["curves"][who]])
        grid = [int(last * k / 200) + 1 for k in range(201)]
        for who, style in zip(whos, ("-", "--", ":", "-.")):
            axis.semilogy(grid, median_curve(row["curves"][who], grid), style,
                          label="pytorch-es" if who == "ours" else who)
        axis.set_title(f"{algo} {name} {n}-D", fontsize=9)
        axis.set_xlabel("evaluations", fontsize=8)
        axis.axhline(TARGET, color="grey", linewidth=0.5)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    figure.suptitle("median best f so far (lower is better)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    print(f"wrote {path}")


# per speed peer (its venv in .peers/, its runner in benchmarks/peers/): what it has of ours
SPEED_PEERS = {"evotorch": ("evotorch_speed.py", ("snes", "xnes", "pgpe", "cem")),  # EvoTorch 0.6.1
               "evox": ("evox_speed.py", ("snes", "xnes", "cma-es", "openai-es", "ars"))}  # EvoX 1.4


def speed_cell(algo: str, n: int, size: int, repeats: int) -> dict:
    """One speed cell in this process (a fresh one per cell, so its peak memory is the cell's):
    ask + tell of ours (``algo``) with precomputed rewards, or (``algo == "mv"``) one
    ``torch.mv`` over a (population x dim) float32 matrix, the floor the targets refer to."""
    import resource

    torch.set_num_threads(1)
    times = []
    if algo == "mv":
        matrix, vector = torch.randn(size, n), torch.randn(n)
        for _ in range(repeats):
            began = time.perf_counter()
            matrix.mv(vector)
            times.append(time.perf_counter() - began)
    else:
        from pytorch_es import strategies

        strategy = strategies.get(algo)(torch.zeros(n), population_size=size, sigma=0.1, seed=0)
        rewards = torch.randn(size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        _ = strategy.noise.values
        strategy.tell(rewards, population=strategy.ask())  # first generation: allocations
        for _ in range(repeats):
            began = time.perf_counter()
            strategy.tell(rewards, population=strategy.ask())
            times.append(time.perf_counter() - began)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "peak_rss_mib": peak_mib}


def milliseconds(seconds: float) -> str:
    """Milliseconds to three significant digits (whole ones from 1000 up)."""
    value = seconds * 1e3
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _cell_in_subprocess(command: list[str]) -> dict | str:
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:120]
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> None:
    """ask + tell seconds per generation, ours against EvoTorch 0.6.1 and EvoX 1.4 where they
    have the algo and their venv exists (same algo, dim, population, float32, one thread; each
    cell in a fresh process) and against one ``torch.mv`` over the (population x dim) matrix;
    with the peak resident memory of each process."""
    from pytorch_es import strategies

    peers = {name: (os.path.join(args.peers_dir or os.path.join(ROOT, ".peers"), name, "bin", "python"),
                    os.path.join(ROOT, "benchmarks", "peers", runner), has)
             for name, (runner, has) in SPEED_PEERS.items()}
    script = os.path.abspath(__file__)
    print(f"speed: median of {args.repeats} generations; load average {os.getloadavg()[0]:.2f}")
    algos = args.speed_algos or strategies.available()
    for n in args.speed_dims:
        for size in args.speed_populations:
            floor = _cell_in_subprocess([sys.executable, script, "--speed-cell", "mv", str(n), str(size),
                                         str(args.repeats)])
            floor_s = floor["median_s"] if isinstance(floor, dict) else None
            for algo in algos:
                ours = _cell_in_subprocess([sys.executable, script, "--speed-cell", algo, str(n), str(size),
                                            str(args.repeats)])
                if not isinstance(ours, dict):
                    print(f"{algo:14s} dim {n:8d} population {size:5d}: refused ({ours})", flush=True)
                    continue
                line = (f"{algo:14s} dim {n:8d} population {size:5d}: ours {milliseconds(ours['median_s']):>7s} ms "
                        f"({ours['peak_rss_mib']:,.0f} MiB)")
                if floor_s:
                    line += f", {ours['median_s'] / floor_s:.2f}x torch.mv ({milliseconds(floor_s)} ms)"
                for name, (python, runner, has) in peers.items():
                    if algo not in has or not os.path.exists(python):
                        continue
                    theirs = _cell_in_subprocess([python, runner, algo, str(n), str(size), str(args.repeats)])
                    line += (f"; {name} {milliseconds(theirs['median_s'])} ms ({theirs['peak_rss_mib']:,.0f} MiB), "
                             f"ratio {ours['median_s'] / theirs['median_s']:.2f}" if isinstance(theirs, dict)
                             else f"; {name} failed ({theirs})")
                print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--algos", nargs="+", default=["cma-es", "sep-cma-es"])
    parser.add_argument("--functions", nargs="+", default=["sphere", "ellipsoid", "rosenbrock", "rotated-ellipsoid"])
    parser.add_argument("--dims", nargs="+", type=int, default=[10, 40])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--cells", nargs="+", help="algo:function:dim cells to run, in this order")
    parser.add_argument("--all-pairs", action="store_true", help="also sep-CMA-ES on the rotated ellipsoid")
    parser.add_argument("--best-f", action="store_true", help="report the best f at the budget for every cell")
    parser.add_argument("--crfmnes-python", help="python of the venv with crfmnes (default .peers/crfmnes)")
    parser.add_argument("--fixed-budget", type=int, default=50_000,
                        help="evaluations of the fixed-budget algos (pgpe, openai-es, ars, cem) against peers")
    parser.add_argument("--peers", nargs="+", choices=sorted({library for peers in PEERS.values()
                                                               for library, _ in peers.values()}),
                        help="run only the peers of these libraries (default: every peer in PEERS)")
    parser.add_argument("--peers-dir", help="where the peer venvs are (default .peers; benchmarks/peers/setup.sh)")
    parser.add_argument("--png", help="write median convergence curves here")
    parser.add_argument("--json", help="results file: counts and curves, saved after each cell and continued")
    parser.add_argument("--speed", action="store_true", help="time ask+tell instead")
    parser.add_argument("--speed-algos", nargs="+", help="strategies to time (default: every registered one)")
    parser.add_argument("--speed-cell", nargs=4, metavar=("ALGO", "DIM", "POPULATION", "REPEATS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--speed-dims", nargs="+", type=int, default=[100, 10_000, 1_000_000])
    parser.add_argument("--speed-populations", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.speed_cell:
        algo, n, size, repeats = args.speed_cell
        print(json.dumps(speed_cell(algo, int(n), int(size), int(repeats))))
        return
    if args.speed:
        speed(args)
        return
    results = quality(args)
    results = peer_quality(args, results)
    if args.png:
        plot(results, args.png)


if __name__ == "__main__":
    main()
